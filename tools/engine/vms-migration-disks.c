/* vmshift engine: a migration's disk operations, done by vms-replicate
 * through the source QEMU (bitmaps, NBD exports, the mirror) and the sink.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-migration-backend.h"
#include "vms-migration-mirror.h"
#include "vms-bitmap.h"
#include "vms-sink-client.h"

static gboolean
disks_open_job (VmsMigration *migration, GError **error)
{
  return vms_replicate_open_job (&migration->rep, migration->source_name,
                                 error);
}

static gboolean
disks_start (VmsMigration *migration, GError **error)
{
  return vms_replicate_start (&migration->rep, error);
}

static gboolean
disks_background (VmsMigration *migration, GError **error)
{
  return vms_replicate_background (&migration->rep, error);
}

static gboolean
disks_rounds (VmsMigration *migration, GError **error)
{
  return vms_replicate_rounds (&migration->rep, error);
}

static gboolean
disks_final_round (VmsMigration *migration, GError **error)
{
  return vms_replicate_final_round (&migration->rep, error);
}

/* One action of the sink's on every replica of the job; with
 * keep_going, every replica is tried and the first error returned (a
 * rollback undoes what it can). */
static gboolean
each_replica (VmsMigration *migration,
              gboolean (*action) (const char *sink, const char *replica,
                                  GError **error),
              gboolean keep_going, GError **error)
{
  VmsJob *job = migration->rep.job;
  gboolean ok = TRUE;

  for (guint i = 0; i < job->disks->len && (ok || keep_going); i++)
    {
      VmsJobDisk *disk = job->disks->pdata[i];

      if (!action (job->sink, disk->replica, ok ? error : NULL))
        ok = FALSE;
    }
  return ok;
}

static gboolean
disks_flush (VmsMigration *migration, GError **error)
{
  return each_replica (migration, vms_sink_client_flush, FALSE, error);
}

static gboolean
disks_forget_live (VmsMigration *migration, GError **error)
{
  return each_replica (migration, vms_sink_client_live_reset, TRUE, error);
}

/* The switchover's FLUSH of a mirror must not wait for connections to a
 * sink a WAN away: they are opened during the memory phase. */
#define HANDOVER_TIMEOUT_MS 60000

static void
disks_prepare_handover (VmsMigration *migration)
{
  VmsJob *job = migration->rep.job;
  g_autoptr (GPtrArray) replicas = g_ptr_array_new ();
  g_autoptr (GError) error = NULL;

  for (guint i = 0; i < job->disks->len; i++)
    g_ptr_array_add (replicas, ((VmsJobDisk *)job->disks->pdata[i])->replica);
  g_ptr_array_add (replicas, NULL);
  g_clear_pointer (&migration->handover, vms_sink_handover_free);
  migration->handover = vms_sink_handover_open (
      job->sink, (const char *const *)replicas->pdata, &error);
  if (!migration->handover)
    vms_progress_event (migration->progress, "warning", NULL,
                        "the switchover will flush and reset each replica "
                        "on a new connection (%s; a sink before @handover?)",
                        error->message);
}

/* The handover's connections are idempotent to replace: a sink that
 * restarted since they opened gets the long way instead.  Done, they stay
 * open until the migration ends: closing one waits for the sink to close
 * it, a round trip behind whatever the link queued, which the paused
 * guest need not wait for. */
static gboolean
disks_handover (VmsMigration *migration, GError **error)
{
  g_autoptr (VmsSinkHandover) handover = g_steal_pointer (&migration->handover);
  g_autoptr (GError) handover_error = NULL;

  if (handover
      && vms_sink_handover_run (handover, HANDOVER_TIMEOUT_MS, &handover_error))
    {
      migration->handover = g_steal_pointer (&handover);
      return TRUE;
    }
  if (handover_error)
    vms_progress_event (migration->progress, "warning", NULL,
                        "%s: flushing and resetting each replica on a new "
                        "connection instead",
                        handover_error->message);
  return disks_flush (migration, error) && disks_forget_live (migration, error);
}

static gboolean
disks_commit (VmsMigration *migration, GError **error)
{
  return each_replica (migration, vms_sink_client_commit, FALSE, error);
}

static void
disks_stop_exports (VmsMigration *migration)
{
  /* Only a server we started: the preflight may have failed before. */
  if (migration->rep.nbd_socket)
    vms_replicate_stop_server (&migration->rep);
}

static void
disks_drop_bitmaps (VmsMigration *migration, gboolean source_gone)
{
  VmsJob *job = migration->rep.job;

  for (guint i = 0; i < job->disks->len; i++)
    {
      VmsJobDisk *disk = job->disks->pdata[i];

      /* QEMU stored persistent bitmaps into the image and dropped them
       * when the migration inactivated it; they stay in the qcow2 file,
       * unused (removing them needs the image active). */
      if (!source_gone && disk->copying_bitmap)
        vms_bitmap_remove (migration->rep.qmp, disk->node, disk->copying_bitmap,
                           NULL);
      if (!source_gone && disk->recording_bitmap)
        vms_bitmap_remove (migration->rep.qmp, disk->node,
                           disk->recording_bitmap, NULL);
      g_clear_pointer (&disk->copying_bitmap, g_free);
      g_clear_pointer (&disk->recording_bitmap, g_free);
    }
}

const VmsMigrationDisks vms_migration_replicate_disks = {
  .open_job = disks_open_job,
  .start = disks_start,
  .background = disks_background,
  .rounds = disks_rounds,
  .final_round = disks_final_round,
  .start_mirror = vms_migration_mirror_start,
  .check_mirror = vms_migration_mirror_check,
  .stop_mirror = vms_migration_mirror_stop,
  .flush = disks_flush,
  .forget_live = disks_forget_live,
  .prepare_handover = disks_prepare_handover,
  .handover = disks_handover,
  .commit = disks_commit,
  .stop_exports = disks_stop_exports,
  .drop_bitmaps = disks_drop_bitmaps,
};
