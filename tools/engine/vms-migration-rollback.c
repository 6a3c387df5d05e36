/* vmshift engine: rollback before commit.  The source VM runs again and
 * nothing is lost; what was copied stays at the sink for --resume.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The undo actions of each state are lib/vms-migrate-state's table.  Each
 * is harmless when there is nothing to undo, so a rollback that was
 * interrupted (its vmshift killed, the source unreachable a moment) is
 * simply done again from state ROLLBACK, in full.
 */
#include "vms-migration-backend.h"
#include "vms-backpressure.h"

static void
record_failure (VmsMigration *migration, VmsMigrateState failed_in,
                const GError *cause)
{
  VmsJobMigration *part = vms_job_get_migration (migration->rep.job);

  /* Redone, the rollback keeps the first cause. */
  if (failed_in == VMS_MIGRATE_ROLLBACK && part->last_error)
    return;
  g_free (part->last_error);
  part->last_error = g_strdup_printf (
      "in state %s: %s", vms_migrate_state_name (failed_in), cause->message);
}

gboolean
vms_migration_roll_back (VmsMigration *migration, const GError *cause,
                         GError **error)
{
  const VmsMigrationBackend *backend = migration->backend;
  const VmsMigrationDisks *disks = migration->disks;
  VmsMigrateState failed_in = migration->state;
  VmsMigrateUndo undo
      = vms_migrate_rollback_actions (failed_in, migration->mode);
  VmsJob *job = migration->rep.job;
  g_autoptr (GError) release_error = NULL;
  gboolean source_ok = TRUE;

  vms_migration_move_to (migration, VMS_MIGRATE_ROLLBACK, NULL);
  if ((undo & VMS_MIGRATE_UNDO_CANCEL_MIGRATION)
      && !backend->cancel (migration, undo & VMS_MIGRATE_UNDO_CHECK_DESTINATION,
                           error))
    return FALSE;
  if (!backend->check_source (migration, error))
    return FALSE;
  /* The source runs on with its own disk limits, exactly as before.  A
   * failure does not hold the rollback: the job keeps the record, and
   * 'vmshift abort' puts them back. */
  if (!vms_backpressure_release (migration->rep.qmp, job, migration->progress,
                                 "rollback", &release_error))
    vms_progress_event (migration->progress, "warning", NULL,
                        "%s; the guest's disk writes are still throttled: "
                        "'vmshift abort %s' removes the throttle",
                        release_error->message, job->id);
  if (undo & VMS_MIGRATE_UNDO_STOP_MIRROR)
    disks->stop_mirror (migration, NULL);
  if (undo & VMS_MIGRATE_UNDO_RESUME_SOURCE)
    source_ok = backend->resume_source (migration, error);
  /* A dead sink forgot them anyway. */
  if (undo & VMS_MIGRATE_UNDO_FORGET_LIVE)
    disks->forget_live (migration, NULL);
  if (undo & VMS_MIGRATE_UNDO_STOP_EXPORTS)
    disks->stop_exports (migration);
  if (!source_ok)
    return FALSE;
  job->phase = VMS_JOB_PHASE_ROLLED_BACK;
  record_failure (migration, failed_in, cause);
  job->migration->pid = 0;
  vms_migration_move_to (migration, VMS_MIGRATE_ROLLED_BACK, NULL);
  return TRUE;
}

gboolean
vms_migration_roll_back_job (VmsMigration *migration, GError **error)
{
  g_autoptr (GError) cause = NULL;
  VmsJob *job;
  int state;

  migration->outcome = VMS_MIGRATION_STOPPED;
  if (!migration->config.copy.resume)
    {
      g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_INVALID,
                   "no job to roll back");
      return FALSE;
    }
  if (!vms_replicate_lock_job (&migration->rep, migration->config.copy.resume,
                               error))
    return FALSE;
  migration->saved_job = vms_job_load (migration->config.copy.state_dir,
                                       migration->config.copy.resume, error);
  if (!migration->saved_job || !vms_migration_choose_backend (migration, error))
    return FALSE;
  job = migration->rep.job = g_steal_pointer (&migration->saved_job);
  vms_job_get_migration (job);
  vms_migrate_final_sync_parse (job->migration->final_sync, &migration->mode);
  state = vms_migrate_state_parse (job->migration->state);
  migration->state = state >= 0 ? state : VMS_MIGRATE_PREFLIGHT;
  if (!vms_migrate_state_can_roll_back (migration->state))
    {
      g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_MOVED,
                   "job %s stopped in state %s, after the destination ran: "
                   "'vmshift migrate --resume %s' finishes it",
                   job->id, job->migration->state, job->id);
      return FALSE;
    }
  /* The preflight wanted the source running or paused; from the memory
   * phase on a paused source is QEMU's doing. */
  migration->migration_started = migration->state >= VMS_MIGRATE_MEMORY;
  migration->source_was_running = migration->state >= VMS_MIGRATE_MEMORY;
  if (!migration->backend->open_for_rollback (migration, error))
    return FALSE;
  /* The killed run's NBD server, whichever backend reached the source. */
  vms_replicate_name_server (&migration->rep);
  cause = g_error_new (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                       "vmshift died; rolled back by vmshift abort");
  if (!vms_migration_roll_back (migration, cause, error))
    return FALSE;
  migration->outcome = VMS_MIGRATION_ROLLED_BACK;
  return vms_job_save (job, error);
}
