/* vmshift abort: stop a running migration, or roll back one whose vmshift
 * died; the source VM keeps running.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-cli.h"
#include "vms-migration.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

static gboolean
process_is_vmshift (gint64 pid)
{
  g_autofree char *path
      = g_strdup_printf ("/proc/%" G_GINT64_FORMAT "/cmdline", pid);
  g_autofree char *cmdline = NULL;
  gsize length = 0;

  if (pid <= 0 || !g_file_get_contents (path, &cmdline, &length, NULL))
    return FALSE;
  /* NUL-separated arguments: a vmshift program running "migrate". */
  if (length == 0 || !strstr (cmdline, "vmshift"))
    return FALSE;
  for (gsize at = 0; at < length; at += strlen (cmdline + at) + 1)
    if (g_str_equal (cmdline + at, "migrate"))
      return TRUE;
  return FALSE;
}

static void
on_event (const char *event, JsonObject *fields, const char *text,
          gpointer user_data)
{
  vms_progress_forward (user_data, event, fields, text);
}

/* Roll back a job whose vmshift died, from what its state file says. */
static gboolean
roll_back_orphan (const char *state_dir, const char *job_id, GError **error)
{
  g_autoptr (VmsProgress) progress = vms_progress_new (VMS_PROGRESS_TEXT);
  g_autoptr (VmsMigration) migration = NULL;
  VmsMigrationConfig config;

  vms_migration_config_init (&config);
  config.copy.state_dir = g_strdup (state_dir);
  config.copy.resume = g_strdup (job_id);
  migration = vms_migration_new (&config, on_event, progress);
  vms_migration_config_clear (&config);
  return vms_migration_roll_back_job (migration, error);
}

int
vms_cmd_abort (int argc, char **argv)
{
  char *state_dir = NULL;
  int timeout_s = 120;
  const GOptionEntry entries[]
      = { { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &state_dir,
            "Where job state lives (default /var/lib/vmshift as root)", "DIR" },
          { "timeout", 't', 0, G_OPTION_ARG_INT, &timeout_s,
            "Wait at most S s for the rollback (default 120)", "S" },
          G_OPTION_ENTRY_NULL };
  g_autoptr (GOptionContext) context = g_option_context_new ("JOB");
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsJob) job = NULL;
  gint64 pid, deadline;
  int status = VMS_EXIT_OK;

  g_option_context_set_summary (
      context, "Stop a running 'vmshift migrate' JOB; it rolls back and the "
               "source VM keeps running.");
  g_option_context_add_main_entries (context, entries, NULL);
  g_set_prgname ("vmshift abort");
  if (!g_option_context_parse (context, &argc, &argv, &error) || argc != 2
      || timeout_s < 1)
    {
      vms_cli_error ("abort", "%s",
                     error ? error->message
                           : "expected one JOB (see 'vmshift abort --help')");
      status = VMS_EXIT_USAGE;
      goto out;
    }
  if (!state_dir)
    state_dir = vms_job_default_state_dir ();
  job = vms_job_load (state_dir, argv[1], &error);
  if (!job)
    {
      vms_cli_error ("abort", "%s", error->message);
      status = VMS_EXIT_FAILED;
      goto out;
    }
  pid = job->migration ? job->migration->pid : 0;
  if (job->phase == VMS_JOB_PHASE_MIGRATING && !process_is_vmshift (pid))
    {
      /* Its vmshift died (kill -9, a crash): QEMU may still migrate, or
       * hold the source paused at pre-switchover.  Roll back here. */
      g_printerr ("vmshift: abort: the vmshift of job %s is gone; rolling "
                  "back from state %s\n",
                  job->id,
                  job->migration->state ? job->migration->state : "unknown");
      if (!roll_back_orphan (state_dir, argv[1], &error))
        {
          vms_cli_error ("abort", "%s", error->message);
          status = vms_cli_exit_code (error);
          goto out;
        }
      g_clear_pointer (&job, vms_job_free);
      job = vms_job_load (state_dir, argv[1], NULL);
      if (job)
        g_print ("job %s: %s\n", job->id, vms_job_phase_name (job->phase));
      goto out;
    }
  if (!process_is_vmshift (pid))
    {
      vms_cli_error (
          "abort",
          "job %s is not being migrated (phase %s%s%s); "
          "nothing to abort",
          job->id, vms_job_phase_name (job->phase),
          job->migration ? ", state " : "",
          job->migration && job->migration->state ? job->migration->state : "");
      status = VMS_EXIT_FAILED;
      goto out;
    }
  if (kill ((pid_t)pid, SIGTERM) < 0)
    {
      vms_cli_error ("abort",
                     "cannot signal vmshift (pid %" G_GINT64_FORMAT "): %s",
                     pid, g_strerror (errno));
      status = VMS_EXIT_FAILED;
      goto out;
    }
  g_printerr ("vmshift: abort: asked vmshift (pid %" G_GINT64_FORMAT
              ") to roll job %s back\n",
              pid, job->id);
  deadline = g_get_monotonic_time () + timeout_s * (gint64)G_USEC_PER_SEC;
  while (process_is_vmshift (pid))
    {
      if (g_get_monotonic_time () > deadline)
        {
          vms_cli_error ("abort",
                         "vmshift (pid %" G_GINT64_FORMAT ") still "
                         "runs after %d s",
                         pid, timeout_s);
          status = VMS_EXIT_CONNECT;
          goto out;
        }
      g_usleep (100 * 1000);
    }
  g_clear_pointer (&job, vms_job_free);
  job = vms_job_load (state_dir, argv[1], &error);
  if (job)
    g_print ("job %s: %s%s%s\n", job->id, vms_job_phase_name (job->phase),
             job->migration && job->migration->last_error ? ": " : "",
             job->migration && job->migration->last_error
                 ? job->migration->last_error
                 : "");

out:
  g_free (state_dir);
  return status;
}
