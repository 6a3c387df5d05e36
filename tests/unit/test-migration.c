/* Unit tests of the migration engine (tools/engine/vms-migration) through
 * fake operation tables: the order of phases in both modes, rollback from
 * every state before commit, an interrupted rollback done again, cancel
 * through a GCancellable, and migrations that share nothing.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The tables are the engine's seam to QEMU, libvirt and the sink: here
 * they record what they are asked and fail or cancel where told.  The
 * real implementations are tested against real QEMU, nbdkit and libvirt
 * in tests/integration.
 */
#include <glib/gstdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "vms-migration-backend.h"

typedef struct
{
  GMutex lock;               /* calls is appended from the run's thread */
  GPtrArray *calls;          /* names of the operations, in order */
  const char *fail_at;       /* this operation fails, once */
  const char *fail_also;     /* ...and this one, once */
  const char *cancel_at;     /* this operation cancels the run */
  GCancellable *cancellable; /* the run's */
  gboolean destination_runs; /* what destination_runs answers */
  gint64 delay_us;           /* each operation takes this long */
  const char *lose_state_at; /* from this operation on, no job file can
                                be written */
  guint lose_memory;         /* wait_memory fails this many times as a
                                reset connection makes QEMU fail it */
  gboolean refuse_retry;     /* prepare_memory_retry cannot make ready */
} Fake;

static Fake *
fake_of (VmsMigration *migration)
{
  return migration->disks_data;
}

static gboolean
record (VmsMigration *migration, const char *name, GError **error)
{
  Fake *fake = fake_of (migration);

  if (fake->delay_us)
    g_usleep (fake->delay_us);
  g_mutex_lock (&fake->lock);
  g_ptr_array_add (fake->calls, g_strdup (name));
  g_mutex_unlock (&fake->lock);
  /* Under a regular file: no directory there, even for root. */
  if (g_strcmp0 (fake->lose_state_at, name) == 0)
    {
      g_free (migration->rep.job->state_dir);
      migration->rep.job->state_dir = g_strdup ("/dev/null/state");
    }
  if (g_strcmp0 (fake->cancel_at, name) == 0)
    g_cancellable_cancel (fake->cancellable);
  if (g_strcmp0 (fake->fail_at, name) == 0
      || g_strcmp0 (fake->fail_also, name) == 0)
    {
      if (g_strcmp0 (fake->fail_at, name) == 0)
        fake->fail_at = NULL;
      else
        fake->fail_also = NULL;
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s failed", name);
      return FALSE;
    }
  return TRUE;
}

#define OP(name)                                                               \
  static gboolean fake_##name (VmsMigration *migration, GError **error)        \
  {                                                                            \
    return record (migration, #name, error);                                   \
  }
OP (open)
OP (connect_destination)
OP (preflight)
OP (check_job)
OP (continue_switchover)
OP (wait_destination)
OP (resume_source)
OP (open_for_rollback)
OP (background)
OP (rounds)
OP (final_round)
OP (start_mirror)
OP (check_mirror)
OP (stop_mirror)
OP (flush)
OP (forget_live)
OP (commit)
#undef OP

/* QEMU's own words for a stream whose peer reset it. */
#define RESET_MESSAGE                                                          \
  "QEMU's memory migration failed: Unable to write to socket: Connection "     \
  "reset by peer"

static gboolean
fake_wait_memory (VmsMigration *migration, GError **error)
{
  Fake *fake = fake_of (migration);

  if (!record (migration, "wait_memory", error))
    return FALSE;
  if (!fake->lose_memory)
    return TRUE;
  fake->lose_memory--;
  g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_FAILED,
               RESET_MESSAGE);
  return FALSE;
}

static gboolean
fake_prepare_memory_retry (VmsMigration *migration, const GError *cause,
                           GError **error)
{
  if (!record (migration, "prepare_memory_retry", error))
    return FALSE;
  if (!fake_of (migration)->refuse_retry)
    return TRUE;
  g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_FAILED,
               "%s; the destination is gone", cause->message);
  return FALSE;
}

static gboolean
fake_start_memory (VmsMigration *migration, GError **error)
{
  migration->migration_started = TRUE;
  return record (migration, "start_memory", error);
}

static gboolean
fake_open_job (VmsMigration *migration, GError **error)
{
  const VmsReplicateConfig *copy = &migration->config.copy;

  if (!record (migration, "open_job", error))
    return FALSE;
  migration->rep.job = copy->resume
                           ? vms_job_load (copy->state_dir, copy->resume, error)
                           : vms_job_new (copy->state_dir, copy->job_id);
  if (!migration->rep.job)
    return FALSE;
  if (!copy->resume)
    {
      VmsJob *job = migration->rep.job;
      VmsJobDisk *disk = vms_job_add_disk (job, "vd0");

      job->source = g_strdup (migration->config.source);
      job->sink = g_strdup ("nbd+unix:///?socket=/nonexistent");
      disk->node = g_strdup ("d0");
      disk->format = g_strdup ("raw");
      disk->size = 1 << 20;
      disk->replica = g_strdup ("r0");
    }
  return vms_job_save (migration->rep.job, error);
}

static gboolean
fake_destination_runs (VmsMigration *migration)
{
  record (migration, "destination_runs", NULL);
  return fake_of (migration)->destination_runs;
}

static gboolean
fake_moved_already (VmsMigration *migration)
{
  return FALSE;
}

static gboolean
fake_source_active (VmsMigration *migration)
{
  return TRUE;
}

static gboolean
fake_check_source (VmsMigration *migration, GError **error)
{
  return record (migration, "check_source", error);
}

static gboolean
fake_cancel (VmsMigration *migration, gboolean check_destination,
             GError **error)
{
  return record (migration, "cancel", error);
}

/* Like vms_replicate_start: the server's socket is named first. */
static gboolean
fake_start (VmsMigration *migration, GError **error)
{
  vms_replicate_name_server (&migration->rep);
  return record (migration, "start", error);
}

/* Only a server whose socket is known can be stopped: a rollback must
 * know it even when a killed run named it. */
static void
fake_stop_exports (VmsMigration *migration)
{
  record (migration,
          migration->rep.nbd_socket ? "stop_exports" : "stop_exports-unnamed",
          NULL);
}

static void
fake_drop_bitmaps (VmsMigration *migration, gboolean source_gone)
{
  record (migration, "drop_bitmaps", NULL);
}

static const VmsMigrationBackend fake_backend = {
  .name = "fake",
  .open = fake_open,
  .connect_destination = fake_connect_destination,
  .preflight = fake_preflight,
  .check_job = fake_check_job,
  .start_memory = fake_start_memory,
  .wait_memory = fake_wait_memory,
  .prepare_memory_retry = fake_prepare_memory_retry,
  .continue_switchover = fake_continue_switchover,
  .wait_destination = fake_wait_destination,
  .destination_runs = fake_destination_runs,
  .moved_already = fake_moved_already,
  .source_active = fake_source_active,
  .check_source = fake_check_source,
  .open_for_rollback = fake_open_for_rollback,
  .cancel = fake_cancel,
  .resume_source = fake_resume_source,
};

static const VmsMigrationDisks fake_disks = {
  .open_job = fake_open_job,
  .start = fake_start,
  .background = fake_background,
  .rounds = fake_rounds,
  .final_round = fake_final_round,
  .start_mirror = fake_start_mirror,
  .check_mirror = fake_check_mirror,
  .stop_mirror = fake_stop_mirror,
  .flush = fake_flush,
  .forget_live = fake_forget_live,
  .commit = fake_commit,
  .stop_exports = fake_stop_exports,
  .drop_bitmaps = fake_drop_bitmaps,
};

typedef struct
{
  char *state_dir; /* a fresh directory for job files */
  Fake fake;       /* the first migration's tables */
  Fake other;      /* a second one's */
} Fixture;

static int
setup (void **state)
{
  Fixture *fixture = g_new0 (Fixture, 1);

  fixture->state_dir = g_dir_make_tmp ("test-migration-XXXXXX", NULL);
  assert_non_null (fixture->state_dir);
  fixture->fake.calls = g_ptr_array_new_with_free_func (g_free);
  fixture->other.calls = g_ptr_array_new_with_free_func (g_free);
  g_mutex_init (&fixture->fake.lock);
  g_mutex_init (&fixture->other.lock);
  *state = fixture;
  return 0;
}

static int
teardown (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (GDir) dir = g_dir_open (fixture->state_dir, 0, NULL);
  const char *name;

  while (dir && (name = g_dir_read_name (dir)))
    {
      g_autofree char *path = g_build_filename (fixture->state_dir, name, NULL);

      g_unlink (path);
    }
  g_rmdir (fixture->state_dir);
  g_free (fixture->state_dir);
  g_ptr_array_unref (fixture->fake.calls);
  g_ptr_array_unref (fixture->other.calls);
  g_mutex_clear (&fixture->fake.lock);
  g_mutex_clear (&fixture->other.lock);
  g_free (fixture);
  return 0;
}

static VmsMigration *
new_migration (Fixture *fixture, Fake *fake, const char *job_id,
               VmsMigrateFinalSync mode)
{
  VmsMigrationConfig config;

  vms_migration_config_init (&config);
  config.copy.state_dir = g_strdup (fixture->state_dir);
  config.copy.job_id = g_strdup (job_id);
  config.source = g_strdup ("qmp:/nonexistent");
  config.mode = mode;
  config.mode_set = TRUE;
  return vms_migration_new_full (&config, &fake_backend, &fake_disks, fake,
                                 NULL, NULL);
}

/* The calls made, joined by spaces. */
static char *
calls_of (Fake *fake)
{
  g_autoptr (GString) text = g_string_new (NULL);

  for (guint i = 0; i < fake->calls->len; i++)
    g_string_append_printf (text, "%s%s", i ? " " : "",
                            (char *)fake->calls->pdata[i]);
  return g_string_free (g_steal_pointer (&text), FALSE);
}

static void
assert_calls (Fake *fake, const char *expected)
{
  g_autofree char *calls = calls_of (fake);

  if (!g_str_equal (calls, expected))
    fail_msg ("calls:\n  %s\nexpected:\n  %s", calls, expected);
}

static char *
saved_state (Fixture *fixture, const char *job_id, VmsJobPhase *phase)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsJob) job = vms_job_load (fixture->state_dir, job_id, &error);

  if (!job)
    fail_msg ("job %s: %s", job_id, error->message);
  *phase = job->phase;
  return g_strdup (job->migration->state);
}

#define PREFLIGHT                                                              \
  "open connect_destination preflight open_job check_job start stop_mirror "   \
  "forget_live"

static void
test_order_pause (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsMigration) migration
      = new_migration (fixture, &fixture->fake, "j", VMS_MIGRATE_FINAL_PAUSE);
  g_autoptr (GError) error = NULL;
  g_autofree char *saved = NULL;
  VmsJobPhase phase;

  assert_true (vms_migration_run (migration, NULL, &error));
  assert_int_equal (vms_migration_get_outcome (migration),
                    VMS_MIGRATION_MIGRATED);
  /* The last round runs while the source is held paused, before QEMU
   * goes on; the replicas are committed only once the destination runs. */
  assert_calls (&fixture->fake,
                PREFLIGHT " background rounds start_memory wait_memory "
                          "final_round continue_switchover wait_destination "
                          "commit stop_exports drop_bitmaps");
  saved = saved_state (fixture, "j", &phase);
  assert_string_equal (saved, "done");
  assert_int_equal (phase, VMS_JOB_PHASE_MIGRATED);
}

static void
test_order_mirror (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsMigration) migration
      = new_migration (fixture, &fixture->fake, "j", VMS_MIGRATE_FINAL_MIRROR);
  g_autoptr (GError) error = NULL;

  assert_true (vms_migration_run (migration, NULL, &error));
  /* The mirror before the last bitmap's copy and before memory; in the
   * pause only a FLUSH, and the live ranges forgotten before the
   * destination writes. */
  assert_calls (&fixture->fake,
                PREFLIGHT " background rounds start_mirror final_round "
                          "start_memory wait_memory check_mirror flush "
                          "forget_live continue_switchover wait_destination "
                          "commit stop_mirror stop_exports drop_bitmaps");
}

/* What a rollback from state asks, in order. */
static char *
undo_calls (VmsMigrateState state, VmsMigrateFinalSync mode)
{
  VmsMigrateUndo undo = vms_migrate_rollback_actions (state, mode);
  g_autoptr (GString) text = g_string_new (NULL);

  if (state == VMS_MIGRATE_DESTINATION)
    g_string_append (text, "destination_runs ");
  if (undo & VMS_MIGRATE_UNDO_CANCEL_MIGRATION)
    g_string_append (text, "cancel ");
  g_string_append (text, "check_source ");
  if (undo & VMS_MIGRATE_UNDO_STOP_MIRROR)
    g_string_append (text, "stop_mirror ");
  if (undo & VMS_MIGRATE_UNDO_RESUME_SOURCE)
    g_string_append (text, "resume_source ");
  if (undo & VMS_MIGRATE_UNDO_FORGET_LIVE)
    g_string_append (text, "forget_live ");
  g_string_append (text, "stop_exports");
  return g_string_free (g_steal_pointer (&text), FALSE);
}

/* The calls after the one named. */
static char *
calls_after (Fake *fake, const char *name)
{
  g_autofree char *calls = calls_of (fake);
  g_autofree char *needle = g_strconcat (name, " ", NULL);
  const char *at = strstr (calls, needle);

  return g_strdup (at ? at + strlen (needle) : "");
}

static const struct
{
  const char *op;
  VmsMigrateState state;
} failures[] = {
  { "start", VMS_MIGRATE_PREFLIGHT }, /* after the job is opened */
  { "background", VMS_MIGRATE_BACKGROUND },
  { "rounds", VMS_MIGRATE_ROUNDS },
  { "start_mirror", VMS_MIGRATE_MIRROR },
  { "wait_memory", VMS_MIGRATE_MEMORY },
  { "continue_switchover", VMS_MIGRATE_SWITCHOVER },
  { "wait_destination", VMS_MIGRATE_DESTINATION },
};

static void
roll_back_from (Fixture *fixture, VmsMigrateFinalSync mode, guint i)
{
  g_autofree char *job_id = g_strdup_printf ("j%u-%d", i, mode);
  g_autoptr (VmsMigration) migration = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *undone = NULL, *expected = NULL, *saved = NULL;
  VmsJobPhase phase;

  g_ptr_array_set_size (fixture->fake.calls, 0);
  fixture->fake.fail_at = failures[i].op;
  migration = new_migration (fixture, &fixture->fake, job_id, mode);
  assert_false (vms_migration_run (migration, NULL, &error));
  assert_non_null (strstr (error->message, failures[i].op));
  assert_int_equal (vms_migration_get_outcome (migration),
                    VMS_MIGRATION_ROLLED_BACK);
  undone = calls_after (&fixture->fake, failures[i].op);
  expected = undo_calls (failures[i].state, mode);
  if (!g_str_equal (undone, expected))
    fail_msg ("failed in %s (%s): undid\n  %s\nexpected\n  %s",
              vms_migrate_state_name (failures[i].state),
              vms_migrate_final_sync_name (mode), undone, expected);
  saved = saved_state (fixture, job_id, &phase);
  assert_string_equal (saved, "rolled-back");
  assert_int_equal (phase, VMS_JOB_PHASE_ROLLED_BACK);
}

static void
test_rollback_from_every_state (void **state)
{
  for (guint i = 0; i < G_N_ELEMENTS (failures); i++)
    {
      if (failures[i].state != VMS_MIGRATE_MIRROR)
        roll_back_from (*state, VMS_MIGRATE_FINAL_PAUSE, i);
      roll_back_from (*state, VMS_MIGRATE_FINAL_MIRROR, i);
    }
}

/* Refused before the job is opened: nothing to undo, no job. */
static void
test_refused_before_job (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsMigration) migration
      = new_migration (fixture, &fixture->fake, "j", VMS_MIGRATE_FINAL_PAUSE);
  g_autoptr (GError) error = NULL;

  fixture->fake.fail_at = "preflight";
  assert_false (vms_migration_run (migration, NULL, &error));
  assert_int_equal (vms_migration_get_outcome (migration),
                    VMS_MIGRATION_STOPPED);
  assert_null (vms_migration_get_job (migration));
  assert_calls (&fixture->fake, "open connect_destination preflight");
}

/* The state directory goes away mid-run (a full or failed disk): the
 * failure is reported, and so is the save after it, with its reason,
 * and the job does not pass for saved. */
static void
test_failed_save_after_failure_reported (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsMigration) migration
      = new_migration (fixture, &fixture->fake, "j", VMS_MIGRATE_FINAL_PAUSE);
  g_autoptr (GError) error = NULL;
  const GError *save_error;

  fixture->fake.fail_at = "background";
  fixture->fake.lose_state_at = "background";
  assert_false (vms_migration_run (migration, NULL, &error));
  assert_non_null (strstr (error->message, "background failed"));
  save_error = vms_migration_get_save_error (migration);
  assert_non_null (save_error);
  assert_true (g_error_matches (save_error, VMS_JOB_ERROR, VMS_JOB_ERROR_IO));
  assert_non_null (strstr (save_error->message, "/dev/null/state"));
  assert_false (vms_migration_get_job (migration)->saved);
}

/* A failure whose state was saved has no save error. */
static void
test_saved_after_failure (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsMigration) migration
      = new_migration (fixture, &fixture->fake, "j", VMS_MIGRATE_FINAL_PAUSE);
  g_autoptr (GError) error = NULL;

  fixture->fake.fail_at = "background";
  assert_false (vms_migration_run (migration, NULL, &error));
  assert_null (vms_migration_get_save_error (migration));
  assert_true (vms_migration_get_job (migration)->saved);
}

/* Waiting for the destination failed, but it runs the VM: rolling back
 * would run it twice. */
static void
test_destination_runs_commits (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsMigration) migration
      = new_migration (fixture, &fixture->fake, "j", VMS_MIGRATE_FINAL_PAUSE);
  g_autoptr (GError) error = NULL;
  g_autofree char *after = NULL;

  fixture->fake.fail_at = "wait_destination";
  fixture->fake.destination_runs = TRUE;
  assert_true (vms_migration_run (migration, NULL, &error));
  assert_int_equal (vms_migration_get_outcome (migration),
                    VMS_MIGRATION_MIGRATED);
  after = calls_after (&fixture->fake, "wait_destination");
  assert_string_equal (after,
                       "destination_runs commit stop_exports drop_bitmaps");
}

/* The rollback stopped halfway (the source did not resume): the job
 * stays in ROLLBACK, and vmshift abort's rollback does it all again. */
static void
test_interrupted_rollback_redone (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsMigration) first = NULL;
  g_autoptr (VmsMigration) again = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *saved = NULL, *redone = NULL;
  VmsMigrationConfig config;
  VmsJobPhase phase;

  first
      = new_migration (fixture, &fixture->fake, "j", VMS_MIGRATE_FINAL_MIRROR);
  fixture->fake.fail_at = "wait_memory";
  fixture->fake.fail_also = "resume_source";
  assert_false (vms_migration_run (first, NULL, &error));
  assert_int_equal (vms_migration_get_outcome (first), VMS_MIGRATION_STOPPED);
  assert_non_null (vms_migration_get_rollback_error (first));
  saved = saved_state (fixture, "j", &phase);
  assert_string_equal (saved, "rollback");
  assert_int_equal (phase, VMS_JOB_PHASE_MIGRATING);
  g_clear_pointer (&saved, g_free);
  g_clear_error (&error);

  /* migrate --resume does not go on over a half-undone attempt. */
  {
    g_autoptr (VmsMigration) resumed = NULL;

    vms_migration_config_init (&config);
    config.copy.state_dir = g_strdup (fixture->state_dir);
    config.copy.resume = g_strdup ("j");
    resumed = vms_migration_new_full (&config, &fake_backend, &fake_disks,
                                      &fixture->other, NULL, NULL);
    assert_false (vms_migration_run (resumed, NULL, &error));
    assert_true (g_error_matches (error, VMS_MIGRATION_ERROR,
                                  VMS_MIGRATION_ERROR_PRECONDITION));
    assert_non_null (strstr (error->message, "vmshift abort j"));
    assert_calls (&fixture->other, "open");
    g_ptr_array_set_size (fixture->other.calls, 0);
    g_clear_error (&error);
  }
  vms_migration_config_init (&config);
  config.copy.state_dir = g_strdup (fixture->state_dir);
  config.copy.resume = g_strdup ("j");
  again = vms_migration_new_full (&config, &fake_backend, &fake_disks,
                                  &fixture->other, NULL, NULL);
  if (!vms_migration_roll_back_job (again, &error))
    fail_msg ("%s", error->message);
  redone = calls_of (&fixture->other);
  assert_string_equal (redone, "open_for_rollback cancel check_source "
                               "stop_mirror resume_source forget_live "
                               "stop_exports");
  saved = saved_state (fixture, "j", &phase);
  assert_string_equal (saved, "rolled-back");
  assert_int_equal (phase, VMS_JOB_PHASE_ROLLED_BACK);
}

/* Cancelling the run's GCancellable stops it at the next step and rolls
 * back: what Ctrl-C and vmshift abort do. */
static void
test_cancel (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  g_autoptr (VmsMigration) migration
      = new_migration (fixture, &fixture->fake, "j", VMS_MIGRATE_FINAL_PAUSE);
  g_autoptr (GError) error = NULL;
  g_autofree char *after = NULL;

  fixture->fake.cancel_at = "background";
  fixture->fake.cancellable = cancellable;
  assert_false (vms_migration_run (migration, cancellable, &error));
  assert_true (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED));
  assert_int_equal (vms_migration_get_outcome (migration),
                    VMS_MIGRATION_ROLLED_BACK);
  after = calls_after (&fixture->fake, "background");
  assert_string_equal (after, "check_source stop_exports");
}

typedef struct
{
  VmsMigration *migration;   /* run in a thread of its own */
  GCancellable *cancellable; /* its own */
  gboolean ok;               /* what vms_migration_run returned */
} Run;

static gpointer
run_thread (gpointer data)
{
  Run *run = data;
  g_autoptr (GError) error = NULL;

  run->ok = vms_migration_run (run->migration, run->cancellable, &error);
  return NULL;
}

/* Two migrations at once in one process: one is cancelled, the other
 * goes on to the end; neither sees the other's job, calls or cancel. */
static void
test_two_at_once (void **state)
{
  Fixture *fixture = *state;
  Run a = { 0 }, b = { 0 };
  GThread *thread_a, *thread_b;
  VmsJobPhase phase_a, phase_b;
  g_autofree char *saved_a = NULL, *saved_b = NULL;

  a.cancellable = g_cancellable_new ();
  b.cancellable = g_cancellable_new ();
  fixture->fake.delay_us = fixture->other.delay_us = 2000;
  fixture->fake.cancel_at = "rounds";
  fixture->fake.cancellable = a.cancellable;
  a.migration
      = new_migration (fixture, &fixture->fake, "a", VMS_MIGRATE_FINAL_PAUSE);
  b.migration
      = new_migration (fixture, &fixture->other, "b", VMS_MIGRATE_FINAL_MIRROR);
  thread_a = g_thread_new ("a", run_thread, &a);
  thread_b = g_thread_new ("b", run_thread, &b);
  g_thread_join (thread_a);
  g_thread_join (thread_b);
  assert_false (a.ok);
  assert_true (b.ok);
  assert_false (g_cancellable_is_cancelled (b.cancellable));
  assert_int_equal (vms_migration_get_outcome (a.migration),
                    VMS_MIGRATION_ROLLED_BACK);
  assert_int_equal (vms_migration_get_outcome (b.migration),
                    VMS_MIGRATION_MIGRATED);
  assert_string_equal (vms_migration_get_job (a.migration)->id, "a");
  assert_string_equal (vms_migration_get_job (b.migration)->id, "b");
  saved_a = saved_state (fixture, "a", &phase_a);
  saved_b = saved_state (fixture, "b", &phase_b);
  assert_int_equal (phase_a, VMS_JOB_PHASE_ROLLED_BACK);
  assert_int_equal (phase_b, VMS_JOB_PHASE_MIGRATED);
  /* Each fake saw only its own migration's calls. */
  assert_null (g_ptr_array_find_with_equal_func (
                   fixture->fake.calls, "start_mirror", g_str_equal, NULL)
                   ? "a mirror in the pause migration"
                   : NULL);
  assert_true (g_ptr_array_find_with_equal_func (
      fixture->other.calls, "start_mirror", g_str_equal, NULL));
  vms_migration_free (a.migration);
  vms_migration_free (b.migration);
  g_object_unref (a.cancellable);
  g_object_unref (b.cancellable);
}

/* A memory stream reset twice: the disks stay as they are (no rollback,
 * no disk operation again but the mirror's check), the memory migration
 * starts again after the backend made ready, and the third attempt
 * goes through. */
static void
test_memory_retried_after_lost_connection (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsMigration) migration
      = new_migration (fixture, &fixture->fake, "j", VMS_MIGRATE_FINAL_PAUSE);
  g_autoptr (GError) error = NULL;

  fixture->fake.lose_memory = 2;
  if (!vms_migration_run (migration, NULL, &error))
    fail_msg ("the run failed: %s", error->message);
  assert_calls (&fixture->fake,
                PREFLIGHT " background rounds start_memory wait_memory "
                          "check_mirror prepare_memory_retry start_memory "
                          "wait_memory check_mirror prepare_memory_retry "
                          "start_memory wait_memory final_round "
                          "continue_switchover wait_destination commit "
                          "stop_exports drop_bitmaps");
  assert_int_equal (migration->memory_attempts, 3);
}

/* The backend cannot make another attempt ready (QEMU 7.2's destination
 * exited): the migration rolls back with the backend's message, which
 * holds the cause. */
static void
test_memory_retry_refused_rolls_back (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsMigration) migration
      = new_migration (fixture, &fixture->fake, "j", VMS_MIGRATE_FINAL_PAUSE);
  g_autoptr (GError) error = NULL;

  fixture->fake.lose_memory = 1;
  fixture->fake.refuse_retry = TRUE;
  assert_false (vms_migration_run (migration, NULL, &error));
  assert_int_equal (vms_migration_get_outcome (migration),
                    VMS_MIGRATION_ROLLED_BACK);
  assert_string_equal (error->message,
                       RESET_MESSAGE "; the destination is gone");
  assert_int_equal (migration->memory_attempts, 1);
}

/* --retry-timeout 0: a lost connection rolls back at once. */
static void
test_memory_not_retried_without_budget (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsMigration) migration
      = new_migration (fixture, &fixture->fake, "j", VMS_MIGRATE_FINAL_PAUSE);
  g_autoptr (GError) error = NULL;
  g_autofree char *calls = NULL;

  migration->config.copy.retry_timeout_s = 0;
  fixture->fake.lose_memory = 1;
  assert_false (vms_migration_run (migration, NULL, &error));
  assert_int_equal (vms_migration_get_outcome (migration),
                    VMS_MIGRATION_ROLLED_BACK);
  calls = calls_of (&fixture->fake);
  assert_null (strstr (calls, "prepare_memory_retry"));
}

/* What QEMU and libvirt said when a connection broke (taken from the
 * integration tests' runs), and what they say of other failures. */
static void
test_memory_link_lost_words (void **state)
{
  static const struct
  {
    const char *message;
    gboolean retrying; /* said of an attempt after the first */
    gboolean lost;
  } cases[] = {
    { RESET_MESSAGE, FALSE, TRUE },
    { "QEMU's memory migration failed: Unable to write to socket: Broken "
      "pipe",
      FALSE, TRUE },
    /* libvirt: the destination's exit, and the source QEMU's error. */
    { "libvirt's migration of lv5 to qemu:///system failed: operation "
      "failed: job 'migration out' failed: Unable to write to socket: Bad "
      "file descriptor",
      FALSE, TRUE },
    { "libvirt's migration of lv5 failed: internal error: qemu unexpectedly "
      "closed the monitor: check_section_footer: Read section footer "
      "failed: -5\nload of migration failed: Invalid argument",
      FALSE, TRUE },
    { "libvirt's migration of lv5 failed: internal error: qemu unexpectedly "
      "closed the monitor: 2026-12-04T18:53:59.088291Z qemu-system-x86_64: "
      "load of migration failed: Input/output error",
      FALSE, TRUE },
    /* A destination that refused the stream's content. */
    { "internal error: qemu unexpectedly closed the monitor: error while "
      "loading state for instance 0x0 of device 'virtio-blk' (the source "
      "QEMU's migration: Unable to write to socket: Connection reset by "
      "peer)",
      FALSE, FALSE },
    { "QEMU's memory migration failed: Failed to connect socket: "
      "Connection refused",
      FALSE, FALSE },
    { "QEMU's memory migration failed: Failed to connect socket: "
      "Connection refused",
      TRUE, TRUE },
    { "libvirt's migration failed: hook script execution failed", TRUE, FALSE },
    { "stopped on request", FALSE, FALSE },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = g_error_new_literal (
          VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_FAILED, cases[i].message);

      if (vms_migration_memory_link_lost (error, cases[i].retrying)
          != cases[i].lost)
        fail_msg ("'%s' (retrying: %d) should %sbe a lost connection",
                  cases[i].message, cases[i].retrying,
                  cases[i].lost ? "" : "not ");
    }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_order_pause, setup, teardown),
    cmocka_unit_test_setup_teardown (test_order_mirror, setup, teardown),
    cmocka_unit_test_setup_teardown (test_rollback_from_every_state, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_refused_before_job, setup, teardown),
    cmocka_unit_test_setup_teardown (test_failed_save_after_failure_reported,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_saved_after_failure, setup, teardown),
    cmocka_unit_test_setup_teardown (test_destination_runs_commits, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_interrupted_rollback_redone, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_cancel, setup, teardown),
    cmocka_unit_test_setup_teardown (test_two_at_once, setup, teardown),
    cmocka_unit_test_setup_teardown (test_memory_retried_after_lost_connection,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_memory_retry_refused_rolls_back,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_memory_not_retried_without_budget,
                                     setup, teardown),
    cmocka_unit_test (test_memory_link_lost_words),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
