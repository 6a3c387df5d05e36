/* vmshift engine: the downtime as one budget: what QEMU may spend of it,
 * the two hosts' clocks brought together, and the measured pause broken
 * into its parts.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* The whole pause vmshift aims for unless told: the source's STOP to the
 * destination running the VM. */
#define VMS_DOWNTIME_DEFAULT_OBJECTIVE_MS 100
/* What QEMU's RAM tail gets at least, however little the budget leaves:
 * below this QEMU rarely converges on a guest that dirties any RAM. */
#define VMS_DOWNTIME_MIN_QEMU_LIMIT_MS 20
/* QEMU's stop (drain and flush of the source disks), the device state and
 * the destination's activation, on hosts whose disks are not congested;
 * kept out of QEMU's share of the budget. */
#define VMS_DOWNTIME_QEMU_OVERHEAD_MS 25

/* Moments of one switchover, in microseconds of wall-clock time; -1 until
 * seen.  Source events are on the source's clock, destination events on
 * the destination's. */
typedef struct
{
  int objective_ms;          /* --max-downtime */
  gint64 stop_us;            /* source STOP */
  gint64 pre_switchover_us;  /* source MIGRATION pre-switchover */
  gint64 device_us;          /* source MIGRATION device: vmshift let go */
  gint64 completed_us;       /* source MIGRATION completed */
  gint64 dest_completed_us;  /* destination MIGRATION completed */
  gint64 resume_us;          /* destination RESUME */
  gint64 resume_received_us; /* when vmshift read RESUME (source clock) */
  /* The destination's clock minus the source's lies in [low, high]. */
  gint64 offset_low_us;
  gint64 offset_high_us;
} VmsDowntime;

void vms_downtime_init (VmsDowntime *downtime, int objective_ms);
/* Forget the moments (not the clocks): a new attempt at the memory. */
void vms_downtime_reset_moments (VmsDowntime *downtime);

/* A destination event stamped event_us (its clock) that the source host
 * read at received_us: it happened before it was read. */
void vms_downtime_clock_event (VmsDowntime *downtime, gint64 event_us,
                               gint64 received_us);
/* A destination event caused by a command sent at sent_us and answered at
 * answered_us (source clock): it happened in between. */
void vms_downtime_clock_command (VmsDowntime *downtime, gint64 event_us,
                                 gint64 sent_us, gint64 answered_us);
/* TRUE and the estimate (midpoint) and its error when both bounds are
 * known. */
gboolean vms_downtime_clock_offset (const VmsDowntime *downtime,
                                    gint64 *offset_us, gint64 *error_us);

/* The pause in parts, in ms; -1 for a part whose moments are missing. */
typedef struct
{
  gint64 total_ms;      /* STOP to the destination ready */
  gint64 stop_ms;       /* QEMU stopping the source (drain, flush) */
  gint64 vmshift_ms;    /* pre-switchover to migrate-continue taking effect:
                           vmshift's final disk steps */
  gint64 ram_device_ms; /* QEMU's RAM tail and device state */
  gint64 activation_ms; /* the destination loading the rest, activating its
                           disks and resuming */
  gboolean one_clock;   /* the destination's moment was read on the
                           source's clock (offset unknown): total is an
                           upper bound */
} VmsDowntimeParts;

/* ready_us is the destination's RESUME, or its MIGRATION completed when it
 * stays paused (suspend). */
void vms_downtime_parts (const VmsDowntime *downtime, gboolean suspend,
                         VmsDowntimeParts *parts);

/* QEMU's downtime-limit for the RAM tail: the objective less what the
 * other parts are expected to take (reserve_ms), and never below
 * VMS_DOWNTIME_MIN_QEMU_LIMIT_MS. */
int vms_downtime_qemu_limit (int objective_ms, int reserve_ms);

/* What the objective leaves for vmshift's final disk steps once QEMU's
 * share (its overhead and its least limit) is kept; negative when
 * nothing is left. */
int vms_downtime_disk_share_ms (int objective_ms);

/* The parts as a JSON object: stop-ms, vmshift-ms, ram-device-ms,
 * activation-ms. */
JsonObject *vms_downtime_parts_to_json (const VmsDowntimeParts *parts);

/* NULL when the objective was met or the total is unknown; else a
 * sentence: by how much it was missed and which part took most. */
char *vms_downtime_describe_miss (const VmsDowntimeParts *parts,
                                  int objective_ms);

G_END_DECLS
