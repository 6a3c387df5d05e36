/* vmshift engine: the report of a completed migration, one "migrated"
 * event with what it took: time, downtime, bytes per pass, RAM, and the
 * estimate's prediction against them.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-migration-backend.h"

void
vms_migration_report (VmsMigration *migrate)
{
  VmsReplicate *rep = &migrate->rep;
  JsonObject *fields = json_object_new ();
  double seconds = (g_get_monotonic_time () - migrate->started_us) / 1e6;
  /* Left paused, the destination is ready when it has loaded the VM. */
  gint64 ready_us
      = migrate->config.suspend ? migrate->loaded_us : migrate->resume_us;
  gint64 downtime_ms = migrate->stop_us >= 0 && ready_us >= 0
                           ? (ready_us - migrate->stop_us) / 1000
                           : -1;
  g_autofree char *background = NULL;
  g_autofree char *rounds
      = vms_format_size (rep->run_bytes[VMS_REPLICATE_PASS_ROUNDS]);
  g_autofree char *final
      = vms_format_size (rep->run_bytes[VMS_REPLICATE_PASS_FINAL]);
  g_autofree char *ram = vms_format_size (migrate->ram_bytes);
  g_autofree char *downtime_text = NULL;

  /* A backend whose destination's events are not ours to watch tells
   * the downtime QEMU measured. */
  if (!migrate->backend->owns_destination)
    downtime_ms = migrate->qemu_downtime_ms;
  background = vms_format_size (rep->run_bytes[VMS_REPLICATE_PASS_BACKGROUND]);
  downtime_text
      = !migrate->backend->owns_destination && downtime_ms >= 0
            ? g_strdup_printf ("%" G_GINT64_FORMAT " ms (libvirt's "
                               "statistics of the completed job)",
                               downtime_ms)
        : downtime_ms >= 0
            ? g_strdup_printf ("%" G_GINT64_FORMAT " ms from the source's "
                               "STOP to %s",
                               downtime_ms,
                               migrate->config.suspend
                                   ? "the destination holding the VM, "
                                     "paused (--suspend)"
                                   : "the destination's RESUME")
            : g_strdup ("not measured (events missing)");

  vms_replicate_report_disks (rep);
  json_object_set_string_member (fields, "job", rep->job->id);
  json_object_set_string_member (fields, "final-sync",
                                 vms_migrate_final_sync_name (migrate->mode));
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
  json_object_set_int_member (fields, "ram-bytes", migrate->ram_bytes);
  json_object_set_int_member (fields, "attempts",
                              rep->job->migration->attempts);
  if (migrate->predicted)
    {
      gboolean mirror = migrate->mode == VMS_MIGRATE_FINAL_MIRROR;
      double total = mirror ? migrate->prediction.total_mirror_s
                            : migrate->prediction.total_pause_s;
      double downtime = mirror ? migrate->prediction.downtime_mirror_s
                               : migrate->prediction.downtime_pause_s;

      json_object_set_double_member (fields, "predicted-seconds", total);
      json_object_set_int_member (fields, "predicted-downtime-ms",
                                  (gint64)(downtime * 1000));
      vms_progress_event (migrate->progress, "predicted", NULL,
                          "estimate %s: predicted %.1f s and %.0f ms of "
                          "downtime; actual %.1f s and %" G_GINT64_FORMAT " ms",
                          migrate->config.estimate, total, downtime * 1000,
                          seconds, downtime_ms);
    }
  vms_progress_event (
      migrate->progress, "migrated", fields,
      "job %s migrated in %.1f s (%s): downtime %s (QEMU says "
      "%" G_GINT64_FORMAT " ms); sent disk background %s, disk rounds %s, "
      "disk final %s, RAM %s",
      rep->job->id, seconds, vms_migrate_final_sync_name (migrate->mode),
      downtime_text, migrate->qemu_downtime_ms, background, rounds, final, ram);
}
