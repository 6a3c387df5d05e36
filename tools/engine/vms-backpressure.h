/* vmshift engine: write backpressure.  When dirty rounds stop converging,
 * the guest's disk writes are throttled with QEMU's own I/O throttling
 * (qemu-filter/vms-throttle), step by step from the rate the guest wrote
 * down to a floor, only as far as the rounds need; and the guest's own
 * limits are put back whatever ends the run.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The job records, per disk, the device's limits before the first step
 * (before the throttle is set), so a killed run's throttle is undone by
 * 'vmshift abort' or the next run, to exactly what the guest had.
 */
#pragma once

#include "vms-estimate-model.h"
#include "vms-replicate.h"

G_BEGIN_DECLS

/* No step goes below this (bytes/s): a guest held lower is as good as
 * stopped, and then a larger last round in the pause costs it less. */
#define VMS_BACKPRESSURE_FLOOR VMS_ESTIMATE_BACKPRESSURE_FLOOR

/* Each step aims at rounds that shrink to this fraction of the one before
 * at the measured copy rate: converging in a few rounds, not at the edge. */
#define VMS_BACKPRESSURE_TARGET_SHRINK VMS_ESTIMATE_BACKPRESSURE_SHRINK

VmsBackpressure *vms_backpressure_new (void);
void vms_backpressure_free (VmsBackpressure *bp);

/* Note what every disk's device has written so far (query-blockstats),
 * before the first round and at each round's end: each sample gives the
 * guest's write rate over the round just copied. */
void vms_backpressure_sample (VmsReplicate *rep);

/* One step after a round that does not converge (why: "not-shrinking" or
 * "writes-outpace-copy"): every disk the guest writes to is throttled
 * further, one "backpressure" event each.  FALSE without error when no
 * step is left (off, RATE applied already, every disk at the floor). */
gboolean vms_backpressure_step (VmsReplicate *rep, const char *why,
                                gboolean *stepped, GError **error);

/* Give every disk of job that a run throttled its own limits back, forget
 * the record and save the job; one "backpressure" event each, rate 0,
 * with why (e.g. "switchover", "rollback", "stopped").  A disk that could
 * not be restored keeps its record (for 'vmshift abort'), and the first
 * such failure is the error.  TRUE at once when nothing is throttled. */
gboolean vms_backpressure_release (VmsQmp *qmp, VmsJob *job,
                                   VmsProgress *progress, const char *why,
                                   GError **error);

/* The lowest write limit this run set on any disk (bytes/s), 0: none. */
guint64 vms_backpressure_lowest_rate (const VmsBackpressure *bp);

/* The write rate the guest is held to on all of job's disks together
 * (bytes/s), 0: none is held. */
guint64 vms_backpressure_held_rate (const VmsJob *job);

/* job has a disk whose limits a run changed. */
gboolean vms_backpressure_applied (const VmsJob *job);

G_END_DECLS
