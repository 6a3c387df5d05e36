/* vmshift engine: replication backpressure (--max-guest-latency).  While
 * the background copy and the dirty rounds run, the guest's disk latency
 * is sampled from query-blockstats once a second and the copy's bandwidth
 * (the run's token bucket) cut when the guest's writes take longer than
 * before the copy by more than the allowance, and raised again once they
 * are back near their level (lib/vms-latency-control).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Latency here is the time QEMU's block layer spent on the guest's writes
 * and flushes, per write: for a guest writing synchronously (a flush per
 * write) what each of its writes costs it, for one that does not, its
 * writes' own latency.  Nothing is applied to the guest, only to the copy:
 * nothing to undo when a run ends or is killed.
 *
 * Off (every function returns at once) unless config->max_guest_latency_ms
 * is set.
 */
#pragma once

#include "vms-replicate.h"

G_BEGIN_DECLS

/* The guest's latency before the copy is measured over this long. */
#define VMS_REPLICATION_BACKPRESSURE_BASELINE_US (2 * G_USEC_PER_SEC)
/* Samples are this far apart, at least. */
#define VMS_REPLICATION_BACKPRESSURE_INTERVAL_US G_USEC_PER_SEC

VmsReplicationBackpressure *vms_replication_backpressure_new (void);
void vms_replication_backpressure_free (VmsReplicationBackpressure *rbp);

/* Before a pass's copies start (not the final round's: the guest is
 * paused): the first time, the guest's latency before the copy, measured
 * for VMS_REPLICATION_BACKPRESSURE_BASELINE_US (one event says what it
 * is); every time, the pass's byte count starts from 0. */
void vms_replication_backpressure_begin_pass (VmsReplicate *rep);

/* While a pass's copies run, from the thread that talks to QEMU, as
 * often as it likes: copied is the bytes the pass sent so far.  Once an
 * interval has passed, a sample, and a step if the latency calls for one
 * (one "replication-backpressure" event each). */
void vms_replication_backpressure_tick (VmsReplicate *rep, guint64 copied);

/* The final report's part: whether it slowed the copy, how often, to
 * what, and the highest latency seen ("replication-backpressure" event,
 * why "summary"). */
void vms_replication_backpressure_report (VmsReplicate *rep);

G_END_DECLS
