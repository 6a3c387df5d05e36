/* vmshift engine (internal): what the files of the estimate share.
 * vms-estimate.c runs an estimate and predicts, vms-estimate-observe.c
 * opens and watches the VMs, vms-estimate-granularity.c chooses their
 * bitmaps' granularity, vms-estimate-map.c maps their disks through
 * QEMU's NBD server, vms-estimate-probe.c probes the link and the copies.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "vms-disk.h"
#include "vms-estimate.h"
#include "vms-guest.h"
#include "vms-qmp.h"

G_BEGIN_DECLS

/* Temporary bitmaps carry this prefix, so that a later run can remove
 * what a killed one left. */
#define VMS_ESTIMATE_BITMAP_PREFIX "vmshift-estimate-"

/* A disk's map keeps its data per bucket, a MAP_BUCKETS-th of the disk:
 * where the data lies, to place the copy probes, and where it grows. */
#define VMS_ESTIMATE_MAP_BUCKETS 256

/* One disk being observed. */
typedef struct
{
  VmsDisk *disk;            /* as discovered (borrowed from the VM's list) */
  VmsEstimateFileDisk *out; /* its figures (borrowed from the result) */
  char *bitmap;             /* the window's bitmap, NULL once removed */
  guint64 *buckets;         /* data per bucket at the first map */
  gint64 mapped_us;         /* monotonic time of the first map */
  guint64 written_start;    /* QEMU's wr_bytes when the window opened */
  gboolean written_lost;    /* QEMU's count was missing or went back */
  VmsGuestWriteCounters window_writes; /* QEMU's write figures when the
                                          window opened */
} EstimateDisk;

/* One VM being observed. */
typedef struct
{
  guint index;            /* its place among the sources */
  gpointer domain;        /* its libvirt domain (virDomainPtr), or NULL:
                             out->source is a QMP address */
  VmsQmp *qmp;            /* its QEMU */
  VmsEstimateFileVm *out; /* its figures (borrowed from the result) */
  GPtrArray *found;       /* VmsDisk*: its disks as discovered */
  GPtrArray *disks;       /* EstimateDisk*, as found */
  GArray *ram_rates;      /* double: RAM dirty rates measured over 1 s,
                             bytes/s ... */
  GArray *ram_long_rates; /* ... and over RAM_RATE_LONG_SECONDS */
  guint rate_pending_s;   /* a calc-dirty-rate of this many seconds runs,
                             0: none */
  guint ram_measures;     /* calc-dirty-rates started */
} EstimateVm;

/* One run of vms_estimate_measure. */
typedef struct
{
  const VmsEstimateConfig *config; /* what to do (borrowed) */
  GCancellable *cancellable;       /* stops it, or NULL (borrowed) */
  VmsEstimateFile *result;         /* the figures so far */
  GPtrArray *vms;                  /* EstimateVm* */
} EstimateRun;

/* TRUE, with the error, once the run is cancelled. */
gboolean vms_estimate_stopped (EstimateRun *run, GError **error);

/* Wait until the monotonic time until_us, FALSE early if cancelled. */
gboolean vms_estimate_sleep_until (EstimateRun *run, gint64 until_us,
                                   GError **error);

/* The model's view of a disk, as far as it is known (borrows from disk). */
void vms_estimate_model_disk (const VmsEstimateFileDisk *disk,
                              VmsEstimateDisk *out);

/* vms-estimate-observe.c */

/* Connect to the VM (vm->domain or the QMP address vm->out->source), read
 * who it is and its disks, remove the bitmaps a killed run left, map its
 * disks, sample its RAM, and start the window's bitmaps. */
gboolean vms_estimate_open_vm (EstimateRun *run, EstimateVm *vm,
                               GError **error);

/* The window: sample every VM's dirty bitmaps, RAM dirty rate and disk
 * writes until config->window_s. */
gboolean vms_estimate_observe (EstimateRun *run, GError **error);

/* The disk's write figures now (unknown when QEMU gives none). */
VmsGuestWriteCounters vms_estimate_write_counters (EstimateVm *vm,
                                                   EstimateDisk *disk);

/* Remove every temporary bitmap of ours on the VM's disks, also those a
 * killed earlier run left (errors ignored; reconnects if QMP broke). */
void vms_estimate_remove_bitmaps (EstimateVm *vm);

/* vms-estimate-granularity.c */

/* Each disk's bitmap granularity into its out->granularity and
 * out->granularity_reason, chosen exactly as a job started now would
 * (config->granularity, config->bitmap_memory, the guest's average write
 * since QEMU started); one "granularity" event per disk. */
void vms_estimate_choose_granularity (EstimateRun *run, EstimateVm *vm);

/* vms-estimate-map.c */

/* QEMU's NBD server for the estimate, on a socket in the state dir
 * (caller frees). */
char *vms_estimate_server_socket (EstimateRun *run, EstimateVm *vm);

/* Export the disk (with bitmap when not NULL) as export_name on the
 * running server at socket_path: its NBD URI (caller frees). */
char *vms_estimate_export_disk (EstimateVm *vm, EstimateDisk *disk,
                                const char *socket_path,
                                const char *export_name, const char *bitmap,
                                GError **error);

/* The disk's map through uri: allocated bytes, data, and data per bucket
 * into buckets (VMS_ESTIMATE_MAP_BUCKETS, zeroed). */
gboolean vms_estimate_map_disk (EstimateDisk *disk, const char *uri,
                                guint64 *buckets, guint64 *allocated,
                                guint64 *data, GError **error);

/* The first map of the VM's disks, as the window opens. */
gboolean vms_estimate_map_first (EstimateRun *run, EstimateVm *vm,
                                 GError **error);

/* vms-estimate-probe.c */

/* The link to the sink: round trip, a connection's cost, and the best of
 * the configurations tried. */
gboolean vms_estimate_probe_link (EstimateRun *run, GError **error);

/* After the window and the link probe: vmshift's own steps timed, and each
 * disk mapped again and its copy and dirty rounds probed. */
gboolean vms_estimate_probe_vm (EstimateRun *run, EstimateVm *vm,
                                GError **error);

G_END_DECLS
