/* vmshift: the dirty-bitmap granularity of each disk, chosen from the
 * disk's size, the memory QEMU may spend on bitmaps and the guest's
 * average write.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The finest bit vmshift chooses: guests write whole pages and 4 KiB
 * sectors, so a finer bit finds no smaller write and only costs memory. */
#define VMS_GRANULARITY_MIN 4096

/* The coarsest bit a guest's write size leads to: QEMU's default, what
 * every job used before granularity was chosen.  Only the memory budget
 * makes bits coarser than this. */
#define VMS_GRANULARITY_MAX_FOR_WRITES 65536

/* QEMU's limit for block-dirty-bitmap-add. */
#define VMS_GRANULARITY_MAX (G_GUINT64_CONSTANT (1) << 31)

/* --bitmap-memory unless told: 4 KiB bits for up to 1007 GiB of disks
 * per VM with the bitmaps a round holds at once; QEMU's RSS grows by
 * about this much at the most (see vmshift(1), --bitmap-memory). */
#define VMS_GRANULARITY_DEFAULT_BITMAP_MEMORY (64 * 1024 * 1024)

/* Bitmaps a disk has in QEMU at once during the rounds: the recording one
 * and the disabled one being copied.  The previous round's is removed
 * before the next switch, and a sync's resting state has one. */
#define VMS_GRANULARITY_BITMAPS_PER_DISK 2

/* What decided a disk's granularity. */
typedef enum
{
  VMS_GRANULARITY_WHY_FLOOR,  /* VMS_GRANULARITY_MIN: nothing asked more */
  VMS_GRANULARITY_WHY_WRITES, /* the guest's average write */
  VMS_GRANULARITY_WHY_MEMORY, /* the bitmaps of all disks must fit
                                 --bitmap-memory */
  VMS_GRANULARITY_WHY_OPTION, /* --granularity */
} VmsGranularityWhy;

typedef struct
{
  guint32 granularity;   /* bytes per bit */
  VmsGranularityWhy why; /* what decided it */
  guint64 write_average; /* the guest's average write in bytes, 0: unknown */
  guint64 memory;        /* bytes QEMU spends on this disk's bitmaps at
                            once (VMS_GRANULARITY_BITMAPS_PER_DISK) */
} VmsGranularityChoice;

/* Bytes of QEMU memory one bitmap of a disk of disk_size bytes takes at
 * granularity: one bit per granule plus HBitmap's upper levels (one bit
 * per 64-bit word of the level below), in 64-bit words. */
guint64 vms_granularity_bitmap_bytes (guint64 disk_size, guint32 granularity);

/* The finest power of two from VMS_GRANULARITY_MIN on at which the
 * bitmaps of disks of total_size bytes (all of a VM's disks) fit budget
 * bytes; VMS_GRANULARITY_MAX when even that does not fit. */
guint32 vms_granularity_memory_floor (guint64 total_size, guint64 budget);

/* Choose one disk's granularity: the coarser of memory_floor
 * (vms_granularity_memory_floor over all the VM's disks) and the
 * guest's average write (write_bytes / write_operations, rounded down to
 * a power of two, within VMS_GRANULARITY_MIN ..
 * VMS_GRANULARITY_MAX_FOR_WRITES; write_operations 0: unknown). */
void vms_granularity_choose (guint64 disk_size, guint32 memory_floor,
                             guint64 write_bytes, guint64 write_operations,
                             VmsGranularityChoice *out);

/* Choose one disk's granularity as a job does: asked (--granularity)
 * when not 0, else vms_granularity_choose.  vmshift sync, migrate and
 * estimate all go through here, so an estimate observes the bits its
 * job will copy. */
void vms_granularity_choose_asked (guint64 disk_size, guint32 memory_floor,
                                   guint64 write_bytes,
                                   guint64 write_operations, guint32 asked,
                                   VmsGranularityChoice *out);

/* Parse --granularity (granularity_text; NULL: 0, chosen per disk) and
 * --bitmap-memory (memory_text; NULL: *bitmap_memory stays) as sync,
 * migrate and estimate take them; a refusal is G_OPTION_ERROR naming the
 * option. */
gboolean vms_granularity_parse_options (const char *granularity_text,
                                        const char *memory_text,
                                        guint32 *granularity,
                                        guint64 *bitmap_memory, GError **error);

/* The choice for people, e.g. "the 4 KiB floor; average guest write
 * 4.0 KiB; 2 bitmaps of 64.0 KiB in QEMU" (caller frees). */
char *vms_granularity_describe (const VmsGranularityChoice *choice);

/* A granularity for people: "4 KiB", "64 KiB", "512 B" (caller frees). */
char *vms_granularity_format (guint64 granularity);

/* The machine name of why: "floor", "writes", "memory", "option". */
const char *vms_granularity_why_name (VmsGranularityWhy why);

G_END_DECLS
