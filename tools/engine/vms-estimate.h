/* vmshift engine: the estimate's observations.  Watch running VMs (their
 * disks' dirty bitmaps, their RAM, what they write), probe the link to
 * the sink and each disk's copy as a migration would run it, then hand
 * the figures to lib/vms-estimate-model.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>

#include "vms-estimate-file.h"
#include "vms-estimate-model.h"
#include "vms-progress.h"

G_BEGIN_DECLS

/* What to observe, and how long: vmshift estimate's parsed options. */
typedef struct
{
  const char *sink;           /* NBD URI of the sink; its @probe export
                                 measures the link */
  const char *id;             /* the estimate's name: in its bitmaps',
                                 sockets' and scratch files' names */
  const char *state_dir;      /* where QEMU's NBD sockets and the scratch
                                 files go; must exist */
  const char *connect;        /* libvirt URI: the sources are its domains
                                 (name, UUID or id); NULL: QMP addresses */
  const char *const *sources; /* the VMs, NULL-terminated; several are a
                                 group sharing the link */
  int window_s;               /* observe this long, seconds (at least 1) */
  int interval_s;             /* a sample this often (1 to window_s) */
  double probe_seconds;       /* each link configuration and each disk's
                                 copy is probed this long */
  guint32 granularity;        /* --granularity: bytes per bitmap bit of
                                 every disk, 0: chosen per disk as a job
                                 does */
  guint64 bitmap_memory;      /* --bitmap-memory, as a job takes it */
  VmsProgress *progress;      /* "observing", "sample" and "probing"
                                 events go there (borrowed) */
} VmsEstimateConfig;

/* vmshift estimate's window, interval and probe time when not given, and
 * their bounds (the command line and vmshiftd's requests alike). */
#define VMS_ESTIMATE_DEFAULT_WINDOW_S 120
#define VMS_ESTIMATE_DEFAULT_INTERVAL_S 5
#define VMS_ESTIMATE_DEFAULT_PROBE_SECONDS 2.0
#define VMS_ESTIMATE_MAX_WINDOW_S (24 * 3600)
#define VMS_ESTIMATE_MAX_PROBE_SECONDS 3600.0

/* Observe config's VMs for the window, then probe the link with 1, 2, 4
 * and 8 connections and two request sizes, then per VM time vmshift's own
 * steps, map its disks again and probe their copy and dirty rounds with
 * the link's best configuration.  Returns the figures without a
 * prediction (caller frees), or NULL with an error, prefixed "VM SOURCE:"
 * when one VM failed.  Cancelling cancellable stops it at the next wait or
 * copy (a G_IO_ERROR_CANCELLED error, "stopped on request").  The
 * temporary bitmaps go whatever happens, also those of a killed earlier
 * run.  The VMs must not be migrated or synced meanwhile: QEMU has one
 * NBD server, and a running one that is not ours is refused. */
VmsEstimateFile *vms_estimate_measure (const VmsEstimateConfig *config,
                                       GCancellable *cancellable,
                                       GError **error);

/* Run the model on estimate's figures: each VM's prediction, the link's
 * throughput and the setup it used, the round overhead, and the group's
 * order.  params are vmshift's defaults with the user's seed device and
 * the host's page cache settings; bandwidth caps the link, bytes/s (0:
 * no cap). */
void vms_estimate_predict (VmsEstimateFile *estimate,
                           const VmsEstimateParams *params, double bandwidth);

G_END_DECLS
