/* vmshift engine: the downtime as one budget.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The destination's moments are stamped by its own clock, which nothing
 * guarantees is the source's (NTP is not always there).  Its events give
 * bounds on the offset: an event is read after it happened, and an event
 * a command causes happens between sending the command and its answer.
 */
#include "vms-downtime.h"

void
vms_downtime_reset_moments (VmsDowntime *downtime)
{
  downtime->stop_us = -1;
  downtime->pre_switchover_us = -1;
  downtime->device_us = -1;
  downtime->completed_us = -1;
  downtime->dest_completed_us = -1;
  downtime->resume_us = -1;
  downtime->resume_received_us = -1;
}

void
vms_downtime_init (VmsDowntime *downtime, int objective_ms)
{
  downtime->objective_ms = objective_ms;
  downtime->offset_low_us = G_MININT64;
  downtime->offset_high_us = G_MAXINT64;
  vms_downtime_reset_moments (downtime);
}

void
vms_downtime_clock_event (VmsDowntime *downtime, gint64 event_us,
                          gint64 received_us)
{
  if (event_us < 0 || received_us < 0)
    return;
  /* event_us - offset <= received_us */
  downtime->offset_low_us
      = MAX (downtime->offset_low_us, event_us - received_us);
}

void
vms_downtime_clock_command (VmsDowntime *downtime, gint64 event_us,
                            gint64 sent_us, gint64 answered_us)
{
  if (event_us < 0 || sent_us < 0 || answered_us < sent_us)
    return;
  /* sent_us <= event_us - offset <= answered_us */
  downtime->offset_low_us
      = MAX (downtime->offset_low_us, event_us - answered_us);
  downtime->offset_high_us = MIN (downtime->offset_high_us, event_us - sent_us);
}

gboolean
vms_downtime_clock_offset (const VmsDowntime *downtime, gint64 *offset_us,
                           gint64 *error_us)
{
  gint64 low = downtime->offset_low_us, high = downtime->offset_high_us;

  if (low == G_MININT64 || high == G_MAXINT64)
    return FALSE;
  /* Bounds that cross come from a clock stepped in between: the later
   * ones are no better than the earlier, so take the middle all the
   * same and say how wide the doubt is. */
  *offset_us = low + (high - low) / 2;
  *error_us = ABS (high - low) / 2;
  return TRUE;
}

static gint64
span_ms (gint64 from_us, gint64 to_us)
{
  return from_us >= 0 && to_us >= 0 ? (to_us - from_us) / 1000 : -1;
}

void
vms_downtime_parts (const VmsDowntime *downtime, gboolean suspend,
                    VmsDowntimeParts *parts)
{
  gint64 ready_us = suspend ? downtime->dest_completed_us : downtime->resume_us;
  gint64 offset_us, error_us;

  parts->one_clock = FALSE;
  if (ready_us >= 0
      && vms_downtime_clock_offset (downtime, &offset_us, &error_us))
    ready_us -= offset_us;
  else if (!suspend && downtime->resume_received_us >= 0)
    {
      /* Read on the source's clock: later than it happened, never
       * earlier. */
      ready_us = downtime->resume_received_us;
      parts->one_clock = TRUE;
    }
  else
    ready_us = -1;
  parts->total_ms = span_ms (downtime->stop_us, ready_us);
  parts->stop_ms = span_ms (downtime->stop_us, downtime->pre_switchover_us);
  parts->vmshift_ms
      = span_ms (downtime->pre_switchover_us, downtime->device_us);
  parts->ram_device_ms = span_ms (downtime->device_us, downtime->completed_us);
  parts->activation_ms = span_ms (downtime->completed_us, ready_us);
}

int
vms_downtime_qemu_limit (int objective_ms, int reserve_ms)
{
  return MAX (objective_ms - MAX (reserve_ms, 0),
              VMS_DOWNTIME_MIN_QEMU_LIMIT_MS);
}

int
vms_downtime_disk_share_ms (int objective_ms)
{
  return objective_ms - VMS_DOWNTIME_QEMU_OVERHEAD_MS
         - VMS_DOWNTIME_MIN_QEMU_LIMIT_MS;
}

JsonObject *
vms_downtime_parts_to_json (const VmsDowntimeParts *parts)
{
  JsonObject *object = json_object_new ();

  json_object_set_int_member (object, "stop-ms", parts->stop_ms);
  json_object_set_int_member (object, "vmshift-ms", parts->vmshift_ms);
  json_object_set_int_member (object, "ram-device-ms", parts->ram_device_ms);
  json_object_set_int_member (object, "activation-ms", parts->activation_ms);
  return object;
}

char *
vms_downtime_describe_miss (const VmsDowntimeParts *parts, int objective_ms)
{
  static const char *const names[]
      = { "QEMU stopping the source (disk drain and flush)",
          "vmshift's final disk steps", "QEMU's RAM tail and device state",
          "the destination's activation" };
  gint64 values[] = { parts->stop_ms, parts->vmshift_ms, parts->ram_device_ms,
                      parts->activation_ms };
  guint largest = 0;

  if (parts->total_ms < 0 || parts->total_ms <= objective_ms)
    return NULL;
  for (guint i = 1; i < G_N_ELEMENTS (values); i++)
    if (values[i] > values[largest])
      largest = i;
  if (values[largest] < 0)
    return g_strdup_printf ("the downtime objective of %d ms was missed by "
                            "%" G_GINT64_FORMAT " ms",
                            objective_ms, parts->total_ms - objective_ms);
  return g_strdup_printf ("the downtime objective of %d ms was missed by "
                          "%" G_GINT64_FORMAT " ms; the largest part was %s "
                          "(%" G_GINT64_FORMAT " ms)",
                          objective_ms, parts->total_ms - objective_ms,
                          names[largest], values[largest]);
}
