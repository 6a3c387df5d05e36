/* vmshift engine: the report of a completed migration, one "migrated"
 * event with what it took: time, downtime, bytes per pass, RAM, and the
 * estimate's prediction against them.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-migration-backend.h"
#include "vms-backpressure.h"

/* The downtime as people read it, and its parts as "migrated" carries
 * them; a missed objective becomes a warning of its own. */
static char *
describe_downtime (VmsMigration *migrate, JsonObject *fields,
                   gint64 *downtime_ms)
{
  VmsDowntimeParts parts;
  g_autofree char *miss = NULL;

  json_object_set_int_member (fields, "max-downtime-ms",
                              migrate->config.max_downtime_ms);
  /* A backend whose destination's events are not ours to watch tells
   * the downtime QEMU measured. */
  if (!migrate->backend->owns_destination)
    {
      *downtime_ms = migrate->qemu_downtime_ms;
      if (*downtime_ms >= 0)
        json_object_set_boolean_member (fields, "downtime-objective-met",
                                        *downtime_ms
                                            <= migrate->config.max_downtime_ms);
      return *downtime_ms >= 0
                 ? g_strdup_printf ("%" G_GINT64_FORMAT " ms (libvirt's "
                                    "statistics of the completed job)",
                                    *downtime_ms)
                 : g_strdup ("not measured (libvirt did not say)");
    }
  vms_downtime_parts (&migrate->downtime, migrate->config.suspend, &parts);
  *downtime_ms = parts.total_ms;
  json_object_set_object_member (fields, "downtime-parts",
                                 vms_downtime_parts_to_json (&parts));
  {
    gint64 offset_us, error_us;

    if (vms_downtime_clock_offset (&migrate->downtime, &offset_us, &error_us))
      {
        json_object_set_double_member (fields, "clock-offset-ms",
                                       offset_us / 1000.0);
        json_object_set_double_member (fields, "clock-error-ms",
                                       error_us / 1000.0);
      }
  }
  json_object_set_boolean_member (
      fields, "downtime-objective-met",
      parts.total_ms >= 0 && parts.total_ms <= migrate->config.max_downtime_ms);
  miss = vms_downtime_describe_miss (&parts, migrate->config.max_downtime_ms);
  if (miss)
    vms_progress_event (migrate->progress, "warning", NULL, "%s", miss);
  if (parts.total_ms < 0)
    return g_strdup ("not measured (events missing)");
  return g_strdup_printf (
      "%" G_GINT64_FORMAT " ms%s from the source's STOP to %s (QEMU stopping "
      "%" G_GINT64_FORMAT ", vmshift %" G_GINT64_FORMAT ", RAM and devices "
      "%" G_GINT64_FORMAT ", destination activation %" G_GINT64_FORMAT
      " ms; objective %d ms)",
      parts.total_ms, parts.one_clock ? " at most" : "",
      migrate->config.suspend
          ? "the destination holding the VM, paused (--suspend)"
          : "the destination's RESUME",
      parts.stop_ms, parts.vmshift_ms, parts.ram_device_ms, parts.activation_ms,
      migrate->config.max_downtime_ms);
}

static void
report_prediction (VmsMigration *migrate, JsonObject *fields, double seconds,
                   gint64 downtime_ms)
{
  gboolean mirror = migrate->mode == VMS_MIGRATE_FINAL_MIRROR;
  /* auto's rounds end early where it foresees mirror: its own figures. */
  gboolean chosen = migrate->config.mode == VMS_MIGRATE_FINAL_AUTO;
  double total = chosen   ? migrate->prediction.total_auto_s
                 : mirror ? migrate->prediction.total_mirror_s
                          : migrate->prediction.total_pause_s;
  double downtime = chosen   ? migrate->prediction.downtime_auto_s
                    : mirror ? migrate->prediction.downtime_mirror_s
                             : migrate->prediction.downtime_pause_s;

  json_object_set_double_member (fields, "predicted-seconds", total);
  json_object_set_int_member (fields, "predicted-downtime-ms",
                              (gint64)(downtime * 1000));
  json_object_set_boolean_member (fields, "predicted-same-granularity",
                                  migrate->prediction_same_bits);
  vms_progress_event (migrate->progress, "predicted", NULL,
                      "estimate %s: predicted %.1f s and %.0f ms of "
                      "downtime; actual %.1f s and %" G_GINT64_FORMAT " ms%s",
                      migrate->config.estimate, total, downtime * 1000, seconds,
                      downtime_ms,
                      migrate->prediction_same_bits
                          ? ""
                          : " (observed with other bitmap granularities)");
}

void
vms_migration_predict_miss (VmsMigration *migration, int predicted_ms,
                            const char *why)
{
  JsonObject *fields;

  if (predicted_ms <= migration->config.max_downtime_ms
      || predicted_ms <= migration->miss_predicted_ms)
    return;
  migration->miss_predicted_ms = predicted_ms;
  fields = json_object_new ();
  json_object_set_int_member (fields, "predicted-ms", predicted_ms);
  json_object_set_int_member (fields, "max-downtime-ms",
                              migration->config.max_downtime_ms);
  json_object_set_string_member (fields, "reason", why);
  /* What vmshift does of it: proceed, or hold the switchover. */
  json_object_set_string_member (
      fields, "action", migration->config.hold_on_miss ? "hold" : "proceed");
  vms_progress_event (migration->progress, "downtime-miss-predicted", fields,
                      "the downtime is predicted at %d ms, above the %d ms "
                      "objective: %s",
                      predicted_ms, migration->config.max_downtime_ms, why);
}

void
vms_migration_check_limit (VmsMigration *migration, int limit_ms,
                           const char *why)
{
  /* What vms_migration_qemu_downtime_limit keeps for the rest. */
  int reserve_ms = VMS_DOWNTIME_QEMU_OVERHEAD_MS + migration->final_steps_ms
                   + migration->network_ms;

  vms_migration_predict_miss (migration, reserve_ms + limit_ms, why);
}

/* Which of the disks and the RAM needed backpressure, and how much:
 * members "disk-backpressure-rate" (the lowest write limit, 0: none) and
 * "ram-throttle-percent" (the most the vCPUs were slowed, 0: never); the
 * text for the message. */
static char *
describe_backpressure (VmsMigration *migrate, JsonObject *fields)
{
  guint64 disk = vms_backpressure_lowest_rate (migrate->rep.backpressure);
  guint64 ram = migrate->ram_throttle_percent;
  g_autofree char *rate = vms_format_size (disk);
  GString *text;

  json_object_set_int_member (fields, "disk-backpressure-rate", disk);
  json_object_set_int_member (fields, "ram-throttle-percent", ram);
  if (!disk && !ram)
    return g_strdup ("; no backpressure");
  text = g_string_new ("; backpressure:");
  if (disk)
    g_string_append_printf (text, " disk writes held down to %s/s", rate);
  if (ram)
    g_string_append_printf (
        text, "%s vCPUs slowed by up to %" G_GUINT64_FORMAT " %% for RAM",
        disk ? "," : "", ram);
  return g_string_free (text, FALSE);
}

void
vms_migration_report (VmsMigration *migrate)
{
  VmsReplicate *rep = &migrate->rep;
  JsonObject *fields = json_object_new ();
  double seconds = (g_get_monotonic_time () - migrate->started_us) / 1e6;
  gint64 downtime_ms = -1;
  g_autofree char *background
      = vms_format_size (rep->run_bytes[VMS_REPLICATE_PASS_BACKGROUND]);
  g_autofree char *rounds
      = vms_format_size (rep->run_bytes[VMS_REPLICATE_PASS_ROUNDS]);
  g_autofree char *final
      = vms_format_size (rep->run_bytes[VMS_REPLICATE_PASS_FINAL]);
  g_autofree char *ram = vms_format_size (migrate->ram_bytes);
  g_autofree char *downtime_text = NULL;
  g_autofree char *backpressure_text = NULL;

  vms_replicate_report_disks (rep);
  downtime_text = describe_downtime (migrate, fields, &downtime_ms);
  /* On the source's wall clock (its STOP event's time; the downtime's
   * end is the destination's start, or, through libvirt, its figure
   * counted from there): a group's pauses are laid side by side with
   * these (sources on one host share it). */
  if (migrate->downtime.stop_us >= 0 && downtime_ms >= 0)
    {
      json_object_set_int_member (fields, "stopped-at-us",
                                  migrate->downtime.stop_us);
      json_object_set_int_member (fields, "running-at-us",
                                  migrate->downtime.stop_us
                                      + downtime_ms * 1000);
    }
  json_object_set_string_member (fields, "job", rep->job->id);
  json_object_set_string_member (fields, "final-sync",
                                 vms_migrate_final_sync_name (migrate->mode));
  if (migrate->final_sync_reason)
    json_object_set_string_member (fields, "final-sync-reason",
                                   migrate->final_sync_reason);
  json_object_set_double_member (fields, "seconds", seconds);
  json_object_set_int_member (fields, "downtime-ms", downtime_ms);
  json_object_set_int_member (fields, "qemu-downtime-ms",
                              migrate->qemu_downtime_ms);
  json_object_set_int_member (fields, "disk-background-bytes",
                              rep->run_bytes[VMS_REPLICATE_PASS_BACKGROUND]);
  json_object_set_int_member (fields, "disk-rounds-bytes",
                              rep->run_bytes[VMS_REPLICATE_PASS_ROUNDS]);
  json_object_set_int_member (fields, "disk-final-bytes",
                              rep->run_bytes[VMS_REPLICATE_PASS_FINAL]);
  /* With compression QEMU 7.2 counts the RAM before it: what the guest's
   * pages were, not what crossed. */
  json_object_set_int_member (fields, "ram-bytes", migrate->ram_bytes);
  json_object_set_string_member (
      fields, "memory-compress",
      vms_memory_compress_name (migrate->config.compress));
  backpressure_text = describe_backpressure (migrate, fields);
  json_object_set_int_member (fields, "attempts",
                              rep->job->migration->attempts);
  /* More than one: the memory stream's connection was lost and the RAM
   * sent again. */
  json_object_set_int_member (fields, "memory-attempts",
                              migrate->memory_attempts);
  if (migrate->predicted)
    report_prediction (migrate, fields, seconds, downtime_ms);
  vms_progress_event (
      migrate->progress, "migrated", fields,
      "job %s migrated in %.1f s (%s%s%s): downtime %s (QEMU says "
      "%" G_GINT64_FORMAT " ms); sent disk background %s, disk rounds %s, "
      "disk final %s, RAM %s%s (%u memory attempt%s)%s",
      rep->job->id, seconds, vms_migrate_final_sync_name (migrate->mode),
      migrate->final_sync_reason ? ": " : "",
      migrate->final_sync_reason ? migrate->final_sync_reason : "",
      downtime_text, migrate->qemu_downtime_ms, background, rounds, final, ram,
      migrate->config.compress != VMS_MEMORY_COMPRESS_NONE
          ? " before zstd compression"
          : "",
      migrate->memory_attempts, migrate->memory_attempts == 1 ? "" : "s",
      backpressure_text);
}

void
vms_migration_report_group (VmsMigration *migration, const char *event,
                            const char *text)
{
  const char *name = vms_group_get_name (migration->config.group);
  JsonObject *fields = json_object_new ();

  json_object_set_string_member (fields, "group", name);
  vms_progress_event (migration->progress, event, fields, "group %s: %s", name,
                      text);
}
