/* vmshift seed export: a running VM's disks written to a seed file or
 * device to ship, the rest sent later as a delta.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-cli.h"
#include "vms-job.h"
#include "vms-path.h"
#include "vms-seed-export.h"

static const char *const description
    = "seed export adds a dirty bitmap to every disk of the VM at SOURCE\n"
      "(qmp:PATH) and writes the disks to PATH, a new file or a block device\n"
      "(zstd-compressed chunks with a hash each; holes and zeroes take no\n"
      "room), reads it back to check it and makes it durable.  Ship it, then\n"
      "at the destination:\n"
      "  vmshift-sink seed import --dir DIR PATH\n"
      "and at the source:\n"
      "  vmshift sync --resume JOB --sink URI     (or vmshift migrate "
      "--resume)\n"
      "which send only what the guest wrote since the seed (what the bitmaps\n"
      "recorded; if they were lost, only the chunks that differ).\n";

typedef struct
{
  char *to;             /* --to */
  char *job_id;         /* --job */
  char *state_dir;      /* --state-dir */
  char **disks;         /* --disk */
  char *replica_prefix; /* --replica-prefix */
  gboolean json;        /* --json */
} Options;

static void
options_clear (Options *options)
{
  g_free (options->to);
  g_free (options->job_id);
  g_free (options->state_dir);
  g_strfreev (options->disks);
  g_free (options->replica_prefix);
}

static gboolean
check_arguments (Options *options, int argc, char **argv,
                 VmsReplicateConfig *config, GError **error)
{
  g_autoptr (GError) id_error = NULL;

  if (argc != 3 || !g_str_equal (argv[1], "export"))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                   "expected: export SOURCE --to PATH (see 'vmshift seed "
                   "--help')");
      return FALSE;
    }
  if (!options->to)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                   "--to PATH is required: the new seed file or device");
      return FALSE;
    }
  if (options->job_id && !vms_job_id_is_valid (options->job_id, &id_error))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--job '%s': %s", options->job_id, id_error->message);
      return FALSE;
    }
  if (!options->state_dir)
    options->state_dir = vms_job_default_state_dir ();
  config->job_id = g_steal_pointer (&options->job_id);
  config->state_dir = vms_path_absolute (options->state_dir);
  config->disks = g_steal_pointer (&options->disks);
  config->replica_prefix = g_steal_pointer (&options->replica_prefix);
  return TRUE;
}

static gboolean
run_export (VmsReplicate *rep, const char *source, const char *to,
            GError **error)
{
  rep->qmp = vms_qmp_connect (source, 0, error);
  return rep->qmp && vms_job_check_state_dir (rep->config->state_dir, error)
         && vms_replicate_open_job (rep, source, error)
         && vms_replicate_start (rep, error)
         && vms_seed_export (rep, to, error);
}

int
vms_cmd_seed (int argc, char **argv)
{
  Options options = { 0 };
  const GOptionEntry entries[]
      = { { "to", 't', 0, G_OPTION_ARG_FILENAME, &options.to,
            "The new seed: a file (must not exist) or a block device", "PATH" },
          { "job", 'j', 0, G_OPTION_ARG_STRING, &options.job_id,
            "Name the new job (default: VM name and time)", "ID" },
          { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &options.state_dir,
            "Where job state lives (default /var/lib/vmshift as root)", "DIR" },
          { "disk", 'd', 0, G_OPTION_ARG_STRING_ARRAY, &options.disks,
            "Seed only this disk (repeatable; default: all)", "NAME" },
          { "replica-prefix", 0, 0, G_OPTION_ARG_STRING,
            &options.replica_prefix,
            "Replicas are PREFIX-DISK (default: the VM name)", "PREFIX" },
          { "json", 0, 0, G_OPTION_ARG_NONE, &options.json,
            "Print one JSON event per line on stdout", NULL },
          G_OPTION_ENTRY_NULL };
  VmsReplicateConfig config;
  VmsReplicate rep = { 0 };
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsProgress) progress = NULL;
  g_autofree char *source = NULL;
  g_autofree char *to = NULL;
  int status = VMS_EXIT_OK;

  context = g_option_context_new ("export SOURCE --to PATH");
  g_option_context_set_summary (
      context, "Write a running VM's disks to a seed to ship on a device.");
  g_option_context_set_description (context, description);
  g_option_context_add_main_entries (context, entries, NULL);
  vms_replicate_config_init (&config);
  g_set_prgname ("vmshift seed");
  if (!g_option_context_parse (context, &argc, &argv, &error)
      || !check_arguments (&options, argc, argv, &config, &error))
    {
      vms_cli_error ("seed", "%s", error->message);
      status = VMS_EXIT_USAGE;
      goto out;
    }
  progress
      = vms_progress_new (options.json ? VMS_PROGRESS_JSON : VMS_PROGRESS_TEXT);
  vms_replicate_init (&rep, &config, vms_cli_cancel_on_signals (), progress);
  source = g_strdup (argv[2]);
  vms_path_make_absolute (&source, vms_path_absolute_qmp_address);
  to = vms_path_absolute (options.to);
  if (!run_export (&rep, source, to, &error))
    {
      status = vms_cli_exit_code (error);
      vms_cli_error ("seed", "%s", error->message);
      if (rep.job && rep.job->saved)
        g_printerr ("job %s keeps its bitmaps: drop it with 'vmshift job "
                    "drop %s', or seed again with a new job\n",
                    rep.job->id, rep.job->id);
      if (options.json)
        vms_progress_event (progress, "error", NULL, "%s", error->message);
    }
  vms_replicate_stop_server (&rep);

out:
  vms_replicate_clear (&rep);
  vms_replicate_config_clear (&config);
  options_clear (&options);
  return status;
}
