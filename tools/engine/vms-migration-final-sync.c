/* vmshift engine: how the disks' last writes cross, chosen by the
 * downtime objective.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * With pause, the final round holds what the guest wrote since the last
 * round, that is during the memory pre-copy, and it is copied inside the
 * pause.  With mirror, every write already crossed and the pause holds
 * only a FLUSH, but the guest pays write latency for the whole memory
 * phase.  auto takes pause when its final round fits what the objective
 * leaves after QEMU's share, mirror otherwise.
 */
#include "vms-migration-backend.h"
#include "vms-guest.h"

/* What a final round costs in the pause besides its data and its FLUSH,
 * per disk: the bitmap switch, the export, the connections (measured on
 * loopback; a round trip more on a real link).  The FLUSH is the last
 * round's, measured: the sink writes back a round's data then, 10 ms on
 * a quiet disk, 200 ms and more while the source's QEMU flushes a
 * guest's writes to the same disk. */
#define FINAL_ROUND_OVERHEAD_MS 30
/* The mirror's steps in the pause: a query of the job, a FLUSH, the
 * sink's live-range reset, migrate-continue. */
#define MIRROR_STEPS_MS 10
#define MIB (1024.0 * 1024.0)

void
vms_migration_sample_writes (VmsMigration *migration)
{
  VmsJob *job = migration->rep.job;
  g_autoptr (GPtrArray) stats = NULL;
  gint64 now = g_get_monotonic_time ();
  gint64 written = 0;

  stats = migration->rep.qmp && job
              ? vms_guest_query_blockstats (migration->rep.qmp, NULL)
              : NULL;
  for (guint i = 0; stats && job && i < job->disks->len; i++)
    {
      VmsJobDisk *disk = job->disks->pdata[i];
      VmsGuestBlockStats *entry
          = vms_guest_block_stats_find (stats, disk->node, disk->name);

      if (!entry)
        {
          stats = NULL;
          break;
        }
      written += entry->wr_bytes;
    }
  if (!stats)
    return;
  /* A second apart at least, or the rate is mostly noise. */
  if (migration->written_bytes >= 0 && written >= migration->written_bytes
      && now - migration->written_at_us >= G_USEC_PER_SEC)
    migration->write_bytes_rate = (written - migration->written_bytes)
                                  * (double)G_USEC_PER_SEC
                                  / (now - migration->written_at_us);
  if (migration->written_bytes < 0)
    {
      migration->written_bytes = written;
      migration->written_at_us = now;
    }
}

guint64
vms_migration_guest_ram (VmsMigration *migration)
{
  VmsGuestMemorySize size = { 0 };

  if (!migration->rep.qmp
      || !vms_guest_query_memory_size (migration->rep.qmp, &size, NULL))
    return 0;
  return size.base_memory + size.plugged_memory;
}

static double
disks_size (VmsReplicate *rep)
{
  double size = 0;

  for (guint i = 0; rep->job && i < rep->job->disks->len; i++)
    size += ((VmsJobDisk *)rep->job->disks->pdata[i])->size;
  return size;
}

/* The pause's disk part with pause, in ms, or -1 when the rates are not
 * known; *final_bytes gets the round's expected size. */
static int
predict_final_round (VmsMigration *migration, double *final_bytes,
                     double *memory_s)
{
  VmsReplicate *rep = &migration->rep;
  double copy_rate = vms_replicate_copy_rate (rep);
  double round_rate = vms_replicate_round_rate (rep);
  guint disks = rep->job ? rep->job->disks->len : 1;
  guint64 ram = migration->guest_ram;

  *final_bytes = 0;
  *memory_s = 0;
  if (rep->guest_write_rate == 0)
    return 0;
  if (rep->guest_write_rate < 0 || copy_rate <= 0 || ram == 0)
    return -1;
  /* RAM crosses the link the disks crossed, at least once.  The guest's
   * rate is the bitmaps' (whole granules), and no round holds more than
   * the disks. */
  *memory_s = ram / copy_rate;
  *final_bytes = MIN (rep->guest_write_rate * *memory_s, disks_size (rep));
  /* A guest rewriting the same blocks saturates: a round that recorded
   * for longer than the memory will take holds at least as much. */
  if (rep->longest_round_span_us >= *memory_s * G_USEC_PER_SEC)
    *final_bytes = MIN (*final_bytes, rep->longest_round_bytes);
  return FINAL_ROUND_OVERHEAD_MS * disks
         + (int)(*final_bytes / round_rate * 1000)
         + (int)(rep->round_flush_us / 1000);
}

static void
choose_auto (VmsMigration *migration)
{
  int objective_ms = migration->config.max_downtime_ms;
  int share_ms = vms_downtime_disk_share_ms (objective_ms);
  double final_bytes, memory_s;
  int final_ms = predict_final_round (migration, &final_bytes, &memory_s);
  double round_rate = vms_replicate_round_rate (&migration->rep);

  if (final_ms == 0)
    {
      migration->mode = VMS_MIGRATE_FINAL_PAUSE;
      migration->final_sync_reason = g_strdup (
          "auto: the guest wrote nothing during the last round, so the "
          "final round is empty");
    }
  else if (final_ms < 0)
    {
      migration->mode = VMS_MIGRATE_FINAL_MIRROR;
      migration->final_sync_reason
          = g_strdup ("auto: the guest's write rate or the link's rate is "
                      "not known, and mirror keeps disk data out of the "
                      "downtime");
    }
  else
    {
      gboolean fits = final_ms <= share_ms;

      migration->mode
          = fits ? VMS_MIGRATE_FINAL_PAUSE : VMS_MIGRATE_FINAL_MIRROR;
      migration->final_sync_reason = g_strdup_printf (
          "auto: the final round would hold about %.1f MiB (the guest "
          "writes %.1f MiB/s during about %.1f s of memory copy), about %d "
          "ms at the %.1f MiB/s the rounds crossed at, with a FLUSH like "
          "the last round's (%d ms), %s the %d ms the %d ms objective "
          "leaves for it",
          final_bytes / MIB, migration->rep.guest_write_rate / MIB, memory_s,
          final_ms, round_rate / MIB,
          (int)(migration->rep.round_flush_us / 1000),
          fits ? "within" : "more than", MAX (share_ms, 0), objective_ms);
    }
  migration->final_steps_ms = migration->mode == VMS_MIGRATE_FINAL_PAUSE
                                  ? MAX (final_ms, 0)
                                  : MIRROR_STEPS_MS;
}

/* Rounds only shrink what pause would copy inside the downtime; once auto
 * foresees mirror, whose last round crosses while the guest runs, more of
 * them only send the same blocks again. */
gboolean
vms_migration_more_rounds (gpointer data)
{
  VmsMigration *migration = data;
  int share_ms = vms_downtime_disk_share_ms (migration->config.max_downtime_ms);
  double final_bytes, memory_s;
  int final_ms;

  if (migration->mode != VMS_MIGRATE_FINAL_AUTO)
    return TRUE;
  final_ms = predict_final_round (migration, &final_bytes, &memory_s);
  if (final_ms >= 0 && final_ms <= share_ms)
    return TRUE;
  vms_progress_event (migration->progress, "converged", NULL,
                      "rounds end: the final round will not fit the "
                      "downtime objective whatever the rounds do, so the "
                      "mirror will carry the guest's writes");
  return FALSE;
}

void
vms_migration_choose_final_sync (VmsMigration *migration)
{
  VmsJobMigration *part
      = migration->rep.job ? vms_job_get_migration (migration->rep.job) : NULL;

  g_clear_pointer (&migration->final_sync_reason, g_free);
  if (migration->mode == VMS_MIGRATE_FINAL_AUTO)
    choose_auto (migration);
  else
    {
      double final_bytes, memory_s;
      int final_ms = predict_final_round (migration, &final_bytes, &memory_s);

      migration->final_steps_ms = migration->mode == VMS_MIGRATE_FINAL_MIRROR
                                      ? MIRROR_STEPS_MS
                                      : MAX (final_ms, FINAL_ROUND_OVERHEAD_MS);
    }
  {
    JsonObject *fields = json_object_new ();
    const char *name = vms_migrate_final_sync_name (migration->mode);

    json_object_set_string_member (fields, "final-sync", name);
    if (migration->final_sync_reason)
      json_object_set_string_member (fields, "reason",
                                     migration->final_sync_reason);
    json_object_set_int_member (fields, "qemu-downtime-limit-ms",
                                vms_migration_qemu_downtime_limit (migration));
    vms_progress_event (
        migration->progress, "final-sync", fields,
        "final sync: %s%s%s; QEMU's downtime limit %d ms", name,
        migration->final_sync_reason ? ", " : "",
        migration->final_sync_reason ? migration->final_sync_reason : "",
        vms_migration_qemu_downtime_limit (migration));
  }
  /* A resumed job goes on the way it was chosen. */
  if (part)
    {
      g_free (part->final_sync);
      part->final_sync
          = g_strdup (vms_migrate_final_sync_name (migration->mode));
    }
}
