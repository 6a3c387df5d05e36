/* vmshift sync: copy a running VM's disks to the sink, then dirty rounds,
 * resumable at any point.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-cli.h"
#include "vms-cli-copy.h"
#include "vms-replicate.h"
#include "vms-backpressure.h"
#include "vms-path.h"

static const char *const description
    = "SOURCE is the QEMU to copy from: qmp:PATH (a QMP monitor socket that\n"
      "vmshift may use alone while it runs).  URI names the sink server, e.g.\n"
      "  nbd+unix:///?socket=/run/vmshift-sink.sock\n"
      "  nbds://dest.example:10809/?tls-psk-file=/etc/vmshift/psk\n"
      "Each disk becomes the replica PREFIX-DISK on that server.\n"
      "\n"
      "sync adds a dirty bitmap to every disk, copies each disk while the VM\n"
      "runs, then copies what the guest wrote meanwhile, round after round,\n"
      "until a round is small or stops shrinking.  It leaves the last bitmap\n"
      "recording, so 'vmshift sync --resume JOB' (or a migration) goes on "
      "from\n"
      "there.  Progress is checkpointed after each FLUSH at the sink; after a\n"
      "crash, Ctrl-C, a killed sink or a cut link, --resume sends again only\n"
      "what was not checkpointed.\n"
      "\n"
      "Relative paths (state directory, sockets, key files in URI) are taken\n"
      "from the current directory and saved absolute in the job, so --resume\n"
      "works from any directory.\n";

static gboolean
run_sync (VmsReplicate *rep, const char *source, GError **error)
{
  rep->qmp = vms_qmp_connect (source, 0, error);
  if (!rep->qmp)
    return FALSE;
  if (!vms_replicate_open_job (rep, source, error)
      || !vms_replicate_start (rep, error)
      || !vms_replicate_background (rep, error)
      || !vms_replicate_rounds (rep, error))
    return FALSE;
  if (g_cancellable_is_cancelled (rep->cancellable))
    {
      g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_STOPPED,
                   "stopped on request");
      return FALSE;
    }
  rep->job->phase = VMS_JOB_PHASE_SYNCED;
  return vms_job_save (rep->job, error);
}

/* Nobody watches the rounds once sync ends: the guest gets its own limits
 * back whatever ended it.  A failure here is the run's failure: a guest
 * left throttled must be said loudly ('vmshift abort JOB' retries). */
static gboolean
release_backpressure (VmsReplicate *rep, gboolean ok, GError **error)
{
  g_autoptr (GError) local = NULL;

  if (!rep->job
      || vms_backpressure_release (rep->qmp, rep->job, rep->progress,
                                   ok ? "synced" : "stopped", &local))
    return TRUE;
  g_prefix_error (&local,
                  "the guest's disk writes are still throttled; remove "
                  "the throttle with 'vmshift abort %s': ",
                  rep->job->id);
  if (error && !*error)
    g_propagate_error (error, g_steal_pointer (&local));
  else
    vms_cli_error ("sync", "%s", local->message);
  return FALSE;
}

static void
report (VmsReplicate *rep, gint64 started)
{
  double seconds = (g_get_monotonic_time () - started) / 1e6;
  JsonObject *fields = json_object_new ();

  vms_replicate_report_disks (rep);
  json_object_set_string_member (fields, "job", rep->job->id);
  json_object_set_double_member (fields, "seconds", seconds);
  vms_progress_event (rep->progress, "synced", fields,
                      "job %s synced in %.1f s; continue with 'vmshift "
                      "sync --resume %s' or a migration",
                      rep->job->id, seconds, rep->job->id);
}

/* A sync goes on from copying, synced or a rolled-back migration; a
 * migration's bitmaps and exports are its own until it ends. */
static gboolean
check_phase (const VmsJob *job, GError **error)
{
  if (job->phase == VMS_JOB_PHASE_MIGRATING)
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_PHASE,
                   "job %s is in a migration (phase migrating): go on with "
                   "'vmshift migrate --resume %s', or roll it back with "
                   "'vmshift abort %s' and then sync",
                   job->id, job->id, job->id);
      return FALSE;
    }
  if (job->phase == VMS_JOB_PHASE_MIGRATED)
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_PHASE,
                   "job %s is migrated: the destination runs the VM, there "
                   "is nothing left to sync (a new copy needs a new job)",
                   job->id);
      return FALSE;
    }
  return TRUE;
}

static gboolean
check_arguments (VmsCliCopyOptions *options, int argc,
                 VmsReplicateConfig *config, GError **error)
{
  if (options->resume ? argc > 2 : argc != 2)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                   "expected SOURCE --sink URI, or --resume JOB (see "
                   "'vmshift sync --help')");
      return FALSE;
    }
  if (!options->resume && !options->sink)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                   "--sink URI is required");
      return FALSE;
    }
  return vms_cli_copy_options_parse (options, config, error);
}

int
vms_cmd_sync (int argc, char **argv)
{
  VmsCliCopyOptions options = { 0 };
  VmsReplicateConfig config;
  VmsReplicate rep = { 0 };
  g_autofree GOptionEntry *entries = vms_cli_copy_option_entries (&options);
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsProgress) progress = NULL;
  g_autofree char *source = NULL;
  gint64 started = g_get_monotonic_time ();
  int status = VMS_EXIT_OK;

  context = g_option_context_new ("[SOURCE] --sink URI");
  g_option_context_set_summary (context,
                                "Copy a running VM's disks to the sink, then "
                                "dirty rounds; resumable.");
  g_option_context_set_description (context, description);
  g_option_context_add_main_entries (context, entries, NULL);
  vms_replicate_config_init (&config);
  g_set_prgname ("vmshift sync");
  if (!g_option_context_parse (context, &argc, &argv, &error)
      || !check_arguments (&options, argc, &config, &error))
    {
      vms_cli_error ("sync", "%s", error->message);
      status = VMS_EXIT_USAGE;
      goto out;
    }
  progress
      = vms_progress_new (options.json ? VMS_PROGRESS_JSON : VMS_PROGRESS_TEXT);
  vms_replicate_init (&rep, &config, vms_cli_cancel_on_signals (), progress);

  if (config.resume)
    {
      g_autoptr (VmsJob) saved = NULL;

      /* Locked before it is read, and kept to the end of the run. */
      if (vms_replicate_lock_job (&rep, config.resume, &error))
        saved = vms_job_load (config.state_dir, config.resume, &error);
      if (!saved || !check_phase (saved, &error))
        {
          vms_cli_error ("sync", "%s", error->message);
          status = VMS_EXIT_FAILED;
          goto out;
        }
      source = g_strdup (argc == 2 ? argv[1] : saved->source);
    }
  else
    source = g_strdup (argv[1]);
  /* Before the VM is touched: a run that cannot save cannot resume. */
  if (!vms_job_check_state_dir (config.state_dir, &error))
    {
      vms_cli_error ("sync", "%s", error->message);
      status = vms_cli_exit_code (error);
      goto out;
    }
  /* Kept in the job: absolute, for a --resume from another directory. */
  vms_path_make_absolute (&source, vms_path_absolute_qmp_address);

  if (!release_backpressure (&rep, run_sync (&rep, source, &error), &error)
      || error)
    {
      /* Only a state that was saved can be resumed from. */
      g_autofree char *hint
          = rep.job && rep.job->saved
                ? g_strdup_printf ("state saved in %s/%s.json; continue with: "
                                   "vmshift sync --resume %s",
                                   config.state_dir, rep.job->id, rep.job->id)
                : g_strdup ("");

      status = vms_cli_exit_code (error);
      /* People read stderr even with --json; programs get the event. */
      vms_cli_error ("sync", "%s", error->message);
      if (*hint)
        g_printerr ("%s\n", hint);
      if (options.json)
        vms_progress_event (progress, "error", NULL, "%s%s%s", error->message,
                            *hint ? "; " : "", hint);
    }
  else
    report (&rep, started);
  vms_replicate_stop_server (&rep);

out:
  vms_replicate_clear (&rep);
  vms_replicate_config_clear (&config);
  vms_cli_copy_options_clear (&options);
  return status;
}
