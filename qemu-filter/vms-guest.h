/* vmshift qemu-filter: the guest as its QEMU reports it: identity, RAM
 * and its dirty rate, and what it wrote to its disks.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Errors are QEMU's own (VMS_QMP_ERROR, code of the QMP class), or
 * VMS_QMP_ERROR_PROTOCOL when a reply does not have the shape QEMU 7.2
 * documents, prefixed with what was being done.
 *
 * QEMU 7.2 sends no event when a dirty rate measurement ends (its
 * query-qmp-schema lists none), so a caller waits for one by asking
 * vms_guest_query_dirty_rate() again.
 */
#pragma once

#include <glib.h>

#include "vms-qmp.h"

G_BEGIN_DECLS

/* The VM's name and UUID are vms-vm.h's. */

/* query-memory-size-summary. */
typedef struct
{
  guint64 base_memory;    /* RAM the machine started with (-m), bytes */
  guint64 plugged_memory; /* hot-plugged memory devices, bytes; 0: none */
} VmsGuestMemorySize;

gboolean vms_guest_query_memory_size (VmsQmp *qmp, VmsGuestMemorySize *out,
                                      GError **error);

/* pmemsave: size bytes of guest physical memory from address, written by
 * QEMU to path, read back and removed (caller unrefs).  QEMU opens path
 * itself, so it must be a file QEMU's host and user can write: a scratch
 * file in a directory of the caller's on the same host. */
GBytes *vms_guest_read_memory (VmsQmp *qmp, guint64 address, guint64 size,
                               const char *path, GError **error);

/* query-dirty-rate's status. */
typedef enum
{
  VMS_GUEST_DIRTY_RATE_UNSTARTED, /* no measurement was asked for */
  VMS_GUEST_DIRTY_RATE_MEASURING, /* one is running */
  VMS_GUEST_DIRTY_RATE_MEASURED,  /* the last one is done */
} VmsGuestDirtyRateStatus;

typedef struct
{
  VmsGuestDirtyRateStatus status; /* where the last measurement stands */
  double bytes_per_second;        /* RAM the guest dirtied, once measured;
                                     0 before */
} VmsGuestDirtyRate;

/* calc-dirty-rate: start measuring how fast the guest dirties its RAM,
 * over calc_time_s seconds, by sampling sample_pages pages per GiB (0:
 * QEMU's default, 512; it takes 128 to 16384).  The other mode,
 * dirty-bitmap, kills QEMU 7.2 under TCG (SIGSEGV), so this module never
 * sends it.  QEMU answers at once; the figure comes from
 * vms_guest_query_dirty_rate() once calc_time_s has passed. */
gboolean vms_guest_calc_dirty_rate (VmsQmp *qmp, guint calc_time_s,
                                    guint sample_pages, GError **error);

/* query-dirty-rate: the last measurement. */
gboolean vms_guest_query_dirty_rate (VmsQmp *qmp, VmsGuestDirtyRate *out,
                                     GError **error);

/* One entry of query-blockstats: a block backend, or a named node. */
typedef struct
{
  char *device;     /* the backend's name, "" for a -blockdev disk */
  char *node_name;  /* the node's name, or NULL when QEMU gives none */
  char *qdev;       /* the device's QOM path (e.g.
                       "/machine/peripheral/vd0/virtio-backend"), or NULL */
  guint64 wr_bytes; /* bytes the guest wrote through it since QEMU
                       started, rewrites included */
  guint64 wr_operations; /* write requests behind wr_bytes */
  /* The time those took, and the guest's flushes and theirs (ns, from
   * QEMU's block layer taking a request to its completion); 0 when QEMU
   * does not say: */
  guint64 wr_total_time_ns;
  guint64 flush_operations;
  guint64 flush_total_time_ns;
} VmsGuestBlockStats;

void vms_guest_block_stats_free (VmsGuestBlockStats *stats);

/* A disk's write figures at one moment: two of them give what the
 * guest's writes cost it in between (vms_guest_write_latency_us). */
typedef struct
{
  guint64 writes;  /* wr_operations */
  guint64 time_ns; /* wr_total_time_ns + flush_total_time_ns */
  gboolean known;  /* QEMU gave the disk's figures */
} VmsGuestWriteCounters;

/* Fewer writes than this between two samples tell no latency. */
#define VMS_GUEST_LATENCY_MIN_WRITES 5

/* entry's write figures; unknown when entry is NULL. */
VmsGuestWriteCounters
vms_guest_write_counters (const VmsGuestBlockStats *entry);

/* The time QEMU's block layer spent on the guest's writes and flushes
 * between before and after, per write (µs): for a guest writing
 * synchronously (a flush per write) what each write costs it.  -1 when
 * either is unknown, the guest wrote fewer than
 * VMS_GUEST_LATENCY_MIN_WRITES, or the figures went back (QEMU's only
 * grow: another device). */
double vms_guest_write_latency_us (const VmsGuestWriteCounters *before,
                                   const VmsGuestWriteCounters *after);

/* query-blockstats: every backend's figures (VmsGuestBlockStats*, caller
 * unrefs), one query for all disks. */
GPtrArray *vms_guest_query_blockstats (VmsQmp *qmp, GError **error);

/* The entry of a disk, borrowed from stats, NULL if none: the one whose
 * node is node_name, else the one of the device device_id (its -device
 * id=, e.g. "vd0").  QEMU names the device's top node, which is not the
 * format node while a filter sits above it (a live mirror's). */
VmsGuestBlockStats *vms_guest_block_stats_find (GPtrArray *stats,
                                                const char *node_name,
                                                const char *device_id);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsGuestBlockStats, vms_guest_block_stats_free)

G_END_DECLS
