/* vmshift abort: stop a running migration, or roll back one whose vmshift
 * died; the source VM keeps running.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-cli.h"
#include "vms-cli-server.h"
#include "vms-backpressure.h"
#include "vms-job-lock.h"
#include "vms-migration.h"
#include "vms-option.h"
#include "vms-path.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

#define MAX_TIMEOUT_S (24 * 3600) /* a typo guard */

/* Wait this long at most for a holder that has locked the job but not
 * written its pid yet (it does so at once). */
#define HOLDER_PID_WAIT_US (2 * G_USEC_PER_SEC)

/* The pid of the process holding job id's lock, 0 when none does.  The
 * lock, not a pid saved in the job, says who runs it: a pid in a held
 * lock file is the holder's own, never a reused one. */
static gint64
job_holder (const char *state_dir, const char *id)
{
  gint64 deadline = g_get_monotonic_time () + HOLDER_PID_WAIT_US;
  gint64 holder;

  while ((holder = vms_job_lock_holder (state_dir, id)) < 0
         && g_get_monotonic_time () < deadline)
    g_usleep (10 * 1000);
  return holder;
}

static void
on_event (const char *event, JsonObject *fields, const char *text,
          gpointer user_data)
{
  vms_progress_forward (user_data, event, fields, text);
}

/* The migration of job job_id, whose vmshift died, as its state file
 * has it; its events go to progress. */
static VmsMigration *
orphan_migration (const char *state_dir, const char *job_id,
                  VmsProgress *progress)
{
  VmsMigrationConfig config;
  VmsMigration *migration;

  vms_migration_config_init (&config);
  config.copy.state_dir = g_strdup (state_dir);
  config.copy.resume = g_strdup (job_id);
  migration = vms_migration_new (&config, on_event, progress);
  vms_migration_config_clear (&config);
  return migration;
}

/* Roll back a job whose vmshift died, from what its state file says. */
static gboolean
roll_back_orphan (const char *state_dir, const char *job_id, GError **error)
{
  g_autoptr (VmsProgress) progress = vms_progress_new (VMS_PROGRESS_TEXT);
  g_autoptr (VmsMigration) migration
      = orphan_migration (state_dir, job_id, progress);

  return vms_migration_roll_back_job (migration, error);
}

/* The destination already runs the VM: going back would lose what the
 * guest wrote there, so abort finishes the commit, as the job's vmshift
 * would have on SIGTERM. */
static gboolean
finish_orphan (const char *state_dir, const char *job_id, GError **error)
{
  g_autoptr (VmsProgress) progress = vms_progress_new (VMS_PROGRESS_TEXT);
  g_autoptr (VmsMigration) migration
      = orphan_migration (state_dir, job_id, progress);

  g_printerr ("vmshift: abort: the destination of job %s runs the VM; "
              "finishing its commit instead of rolling back\n",
              job_id);
  return vms_migration_run (migration, NULL, error);
}

/* Its vmshift died (kill -9, a crash): QEMU may still migrate, or hold
 * the source paused at pre-switchover.  Roll back here, or finish the
 * commit when it is too late to go back. */
static int
abort_orphan (const char *state_dir, VmsJob *job)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsJob) after = NULL;
  gboolean ok;

  g_printerr ("vmshift: abort: the vmshift of job %s is gone; rolling back "
              "from state %s\n",
              job->id,
              job->migration->state ? job->migration->state : "unknown");
  ok = roll_back_orphan (state_dir, job->id, &error);
  if (!ok
      && g_error_matches (error, VMS_MIGRATION_ERROR,
                          VMS_MIGRATION_ERROR_MOVED))
    {
      g_clear_error (&error);
      ok = finish_orphan (state_dir, job->id, &error);
    }
  if (!ok)
    {
      vms_cli_error ("abort", "%s", error->message);
      return vms_cli_exit_code (error);
    }
  after = vms_job_load (state_dir, job->id, NULL);
  if (after)
    g_print ("job %s: %s\n", after->id, vms_job_phase_name (after->phase));
  return VMS_EXIT_OK;
}

/* A sync (or a rolled-back migration) whose vmshift died with the guest's
 * writes throttled: the guest gets its own limits back. */
static int
release_orphan (const char *state_dir, VmsJob *job)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsProgress) progress = vms_progress_new (VMS_PROGRESS_TEXT);
  g_autoptr (VmsJobLock) lock = vms_job_lock_take (state_dir, job->id, &error);
  g_autoptr (VmsJob) locked = NULL;
  g_autoptr (VmsQmp) qmp = NULL;

  /* Read again under the lock: what the dead run saved last. */
  if (lock)
    locked = vms_job_load (state_dir, job->id, &error);
  if (locked)
    qmp = vms_qmp_connect (locked->source, 0, &error);
  if (!qmp
      || !vms_backpressure_release (qmp, locked, progress, "abort", &error))
    {
      vms_cli_error ("abort", "job %s: %s", job->id, error->message);
      return vms_cli_exit_code (error);
    }
  g_print ("job %s: %s, write backpressure removed\n", job->id,
           vms_job_phase_name (job->phase));
  return VMS_EXIT_OK;
}

/* Ask the vmshift running the job to roll back, and wait for it. */
static int
abort_running (const char *state_dir, VmsJob *job, gint64 pid, int timeout_s)
{
  gint64 deadline;
  g_autoptr (VmsJob) after = NULL;

  if (kill ((pid_t)pid, SIGTERM) < 0)
    {
      vms_cli_error ("abort",
                     "cannot signal vmshift (pid %" G_GINT64_FORMAT "): %s",
                     pid, g_strerror (errno));
      return VMS_EXIT_FAILED;
    }
  g_printerr ("vmshift: abort: asked vmshift (pid %" G_GINT64_FORMAT
              ") to roll job %s back\n",
              pid, job->id);
  deadline = g_get_monotonic_time () + timeout_s * (gint64)G_USEC_PER_SEC;
  while (vms_job_lock_holder (state_dir, job->id) != 0)
    {
      if (g_get_monotonic_time () > deadline)
        {
          vms_cli_error ("abort",
                         "vmshift (pid %" G_GINT64_FORMAT ") still "
                         "runs after %d s",
                         pid, timeout_s);
          return VMS_EXIT_CONNECT;
        }
      g_usleep (100 * 1000);
    }
  after = vms_job_load (state_dir, job->id, NULL);
  if (after)
    g_print ("job %s: %s%s%s\n", after->id, vms_job_phase_name (after->phase),
             after->migration && after->migration->last_error ? ": " : "",
             after->migration && after->migration->last_error
                 ? after->migration->last_error
                 : "");
  return VMS_EXIT_OK;
}

int
vms_cli_abort_job (const char *state_dir, const char *id, int timeout_s)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsJob) job = vms_job_load (state_dir, id, &error);
  gint64 pid;

  if (!job)
    {
      vms_cli_error ("abort", "%s", error->message);
      return VMS_EXIT_FAILED;
    }
  pid = job_holder (state_dir, id);
  if (pid < 0)
    {
      vms_cli_error ("abort",
                     "job %s is locked by a process that does not "
                     "say its pid",
                     job->id);
      return VMS_EXIT_FAILED;
    }
  if (job->phase == VMS_JOB_PHASE_MIGRATING && pid == 0)
    return abort_orphan (state_dir, job);
  if (pid == 0 && vms_backpressure_applied (job))
    return release_orphan (state_dir, job);
  if (job->phase != VMS_JOB_PHASE_MIGRATING || !job->migration)
    {
      if (pid > 0)
        vms_cli_error ("abort",
                       "job %s is not being migrated (phase %s) but vmshift "
                       "pid %" G_GINT64_FORMAT " works on it: stop that one "
                       "with Ctrl-C or SIGTERM; its state is saved",
                       job->id, vms_job_phase_name (job->phase), pid);
      else
        vms_cli_error ("abort",
                       "job %s is not being migrated (phase %s%s%s); "
                       "nothing to abort",
                       job->id, vms_job_phase_name (job->phase),
                       job->migration ? ", state " : "",
                       job->migration && job->migration->state
                           ? job->migration->state
                           : "");
      return VMS_EXIT_FAILED;
    }
  return abort_running (state_dir, job, pid, timeout_s);
}

/* vmshiftd stops job id and rolls it back: done when its state says
 * rolled-back. */
static int
abort_on_server (const VmsCliServerOptions *server, const char *id,
                 gboolean json)
{
  g_autofree char *path = g_strconcat ("/jobs/", id, "/abort", NULL);
  g_autofree char *what = g_strconcat ("job ", id, NULL);
  int status = vms_cli_server_start (server, "abort", what, "POST", path, NULL,
                                     NULL, json);
  g_autoptr (JsonObject) job = NULL;
  const char *phase;

  if (status != VMS_EXIT_OK)
    return status;
  path[strlen (path) - strlen ("/abort")] = '\0';
  job = vms_cli_server_call (server, "abort", "GET", path, NULL, NULL, &status);
  if (!job)
    return status;
  phase = json_object_get_string_member_with_default (job, "phase", "?");
  if (g_str_equal (phase, "rolled-back"))
    return VMS_EXIT_OK;
  vms_cli_error ("abort", "job %s is %s in vmshiftd, not rolled back", id,
                 phase);
  return VMS_EXIT_FAILED;
}

int
vms_cmd_abort (int argc, char **argv)
{
  g_autofree char *state_dir = NULL;
  g_autofree char *timeout = NULL;
  guint64 timeout_s = VMS_ABORT_DEFAULT_TIMEOUT_S;
  g_auto (VmsCliServerOptions) server = { 0 };
  g_autofree GOptionEntry *server_entries
      = vms_cli_server_option_entries (&server);
  gboolean json = FALSE;
  const GOptionEntry entries[]
      = { { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &state_dir,
            "Where job state lives (default /var/lib/vmshift as root)", "DIR" },
          { "timeout", 't', 0, G_OPTION_ARG_STRING, &timeout,
            "Wait at most S s for the rollback (default 120)", "S" },
          { "json", 0, 0, G_OPTION_ARG_NONE, &json,
            "With --server: the rollback's events as JSON lines", NULL },
          G_OPTION_ENTRY_NULL };
  g_autoptr (GOptionContext) context = g_option_context_new ("JOB");
  g_autoptr (GError) error = NULL;

  g_option_context_set_summary (
      context, "Stop a running 'vmshift migrate' JOB; it rolls back and the "
               "source VM keeps running, or, once the destination runs the "
               "VM, finishes.  A JOB whose vmshift died is rolled back (or "
               "finished) here.  With --server, a job vmshiftd "
               "runs (alone: a job of a plan of many VMs stops with its "
               "plan, 'vmshift plan abort'), followed until it rolled "
               "back.");
  g_option_context_add_main_entries (context, entries, NULL);
  g_option_context_add_main_entries (context, server_entries, NULL);
  g_set_prgname ("vmshift abort");
  if (!g_option_context_parse (context, &argc, &argv, &error)
      || !vms_option_seconds ("--timeout", timeout, 1, MAX_TIMEOUT_S,
                              &timeout_s, &error))
    {
      vms_cli_error ("abort", "%s", error->message);
      return VMS_EXIT_USAGE;
    }
  if (argc != 2)
    {
      vms_cli_error ("abort", "expected one JOB (see 'vmshift abort --help')");
      return VMS_EXIT_USAGE;
    }
  if (!vms_job_id_is_valid (argv[1], &error))
    {
      vms_cli_error ("abort", "JOB '%s': %s", argv[1], error->message);
      return VMS_EXIT_USAGE;
    }
  if (server.url)
    return abort_on_server (&server, argv[1], json);
  if (!state_dir)
    state_dir = vms_job_default_state_dir ();
  /* A rollback of an orphan talks to QEMU about sockets in it. */
  vms_path_make_absolute (&state_dir, vms_path_absolute);
  return vms_cli_abort_job (state_dir, argv[1], timeout_s);
}
