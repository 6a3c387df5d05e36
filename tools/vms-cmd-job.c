/* vmshift job: list the jobs of a state directory, or drop one with what
 * it left in its VM.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-cli.h"
#include "vms-cli-server.h"
#include "vms-job-drop.h"
#include "vms-job-lock.h"
#include "vms-path.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

/* What a job file's name tells: a job's id, or NULL for another file
 * of the state directory (an estimate's result, a socket).  Caller frees. */
static char *
job_id_of (const char *file)
{
  if (!g_str_has_suffix (file, ".json") || g_str_has_prefix (file, "estimate-"))
    return NULL;
  return g_strndup (file, strlen (file) - strlen (".json"));
}

static gint
compare_ids (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (*(const char *const *)a, *(const char *const *)b);
}

/* The jobs of state_dir, sorted by id; unreadable ones said on stderr. */
static GPtrArray *
load_jobs (const char *state_dir, GError **error)
{
  g_autoptr (GDir) dir = g_dir_open (state_dir, 0, error);
  g_autoptr (GPtrArray) jobs
      = g_ptr_array_new_with_free_func ((GDestroyNotify)vms_job_free);
  g_autoptr (GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
  const char *name;

  if (!dir)
    return NULL;
  while ((name = g_dir_read_name (dir)))
    {
      char *id = job_id_of (name);

      if (id)
        g_ptr_array_add (ids, id);
    }
  g_ptr_array_sort (ids, compare_ids);
  for (guint i = 0; i < ids->len; i++)
    {
      g_autoptr (GError) load_error = NULL;
      VmsJob *job = vms_job_load (state_dir, ids->pdata[i], &load_error);

      if (job)
        g_ptr_array_add (jobs, job);
      else
        g_printerr ("vmshift: job: %s\n", load_error->message);
    }
  return g_steal_pointer (&jobs);
}

/* The job's bitmaps as its state names them, comma-separated. */
static char *
job_bitmaps (const VmsJob *job)
{
  g_autoptr (GString) out = g_string_new (NULL);

  for (guint i = 0; i < job->disks->len; i++)
    {
      const VmsJobDisk *disk = job->disks->pdata[i];
      const char *names[] = { disk->copying_bitmap, disk->recording_bitmap };

      for (guint k = 0; k < G_N_ELEMENTS (names); k++)
        if (names[k])
          g_string_append_printf (out, "%s%s:%s", out->len ? "," : "",
                                  disk->name, names[k]);
    }
  return g_string_free (g_steal_pointer (&out), FALSE);
}

static char *
job_disks (const VmsJob *job)
{
  g_autoptr (GString) out = g_string_new (NULL);

  for (guint i = 0; i < job->disks->len; i++)
    g_string_append_printf (out, "%s%s", i ? "," : "",
                            ((VmsJobDisk *)job->disks->pdata[i])->name);
  return g_string_free (g_steal_pointer (&out), FALSE);
}

static JsonNode *
job_to_json (const VmsJob *job, gint64 holder)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autofree char *bitmaps = job_bitmaps (job);
  g_auto (GStrv) names = g_strsplit (bitmaps, ",", -1);

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "id");
  json_builder_add_string_value (builder, job->id);
  json_builder_set_member_name (builder, "vm");
  json_builder_add_string_value (builder, job->vm_name);
  json_builder_set_member_name (builder, "phase");
  json_builder_add_string_value (builder, vms_job_phase_name (job->phase));
  json_builder_set_member_name (builder, "source");
  json_builder_add_string_value (builder, job->source ? job->source : "");
  json_builder_set_member_name (builder, "disks");
  json_builder_begin_array (builder);
  for (guint i = 0; i < job->disks->len; i++)
    json_builder_add_string_value (builder,
                                   ((VmsJobDisk *)job->disks->pdata[i])->name);
  json_builder_end_array (builder);
  json_builder_set_member_name (builder, "bitmaps");
  json_builder_begin_array (builder);
  for (guint i = 0; names[i] && *names[i]; i++)
    json_builder_add_string_value (builder, names[i]);
  json_builder_end_array (builder);
  json_builder_set_member_name (builder, "updated");
  json_builder_add_int_value (builder, job->updated);
  json_builder_set_member_name (builder, "pid");
  json_builder_add_int_value (builder, holder);
  json_builder_end_object (builder);
  return json_builder_get_root (builder);
}

static void
print_job (const VmsJob *job, gint64 holder)
{
  g_autoptr (GDateTime) when = g_date_time_new_from_unix_local (job->updated);
  g_autofree char *updated
      = when ? g_date_time_format (when, "%Y-%m-%d %H:%M:%S") : g_strdup ("-");
  g_autofree char *disks = job_disks (job);
  g_autofree char *bitmaps = job_bitmaps (job);
  g_autofree char *phase
      = holder ? g_strdup_printf ("%s(pid %" G_GINT64_FORMAT ")",
                                  vms_job_phase_name (job->phase), holder)
               : g_strdup (vms_job_phase_name (job->phase));

  g_print ("%-24s %-16s %-24s %-19s %-12s %s\n", job->id,
           *job->vm_name ? job->vm_name : "-", phase, updated, disks,
           *bitmaps ? bitmaps : "-");
}

static int
job_list (const char *state_dir, gboolean json)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) jobs = load_jobs (state_dir, &error);
  g_autoptr (JsonArray) array = json_array_new ();

  if (!jobs)
    {
      /* No state directory yet: no jobs. */
      if (!g_error_matches (error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        {
          vms_cli_error ("job", "%s", error->message);
          return VMS_EXIT_FAILED;
        }
      jobs = g_ptr_array_new ();
    }
  if (!json)
    g_print ("%-24s %-16s %-24s %-19s %-12s %s\n", "JOB", "VM", "PHASE",
             "UPDATED", "DISKS", "BITMAPS");
  for (guint i = 0; i < jobs->len; i++)
    {
      const VmsJob *job = jobs->pdata[i];
      gint64 holder = vms_job_lock_holder (state_dir, job->id);

      if (json)
        json_array_add_element (array, job_to_json (job, holder));
      else
        print_job (job, holder);
    }
  if (json)
    {
      g_autoptr (JsonNode) root = json_node_new (JSON_NODE_ARRAY);
      g_autoptr (JsonGenerator) generator = json_generator_new ();
      g_autofree char *text = NULL;

      json_node_set_array (root, array);
      json_generator_set_root (generator, root);
      json_generator_set_pretty (generator, TRUE);
      text = json_generator_to_data (generator, NULL);
      g_print ("%s\n", text);
    }
  return VMS_EXIT_OK;
}

/* Remove the job's files; a missing one is fine. */
static gboolean
remove_job_files (const char *state_dir, const char *id, GError **error)
{
  const char *const suffixes[] = { ".json", ".nbd", ".lock" };

  for (guint i = 0; i < G_N_ELEMENTS (suffixes); i++)
    {
      g_autofree char *file = g_strconcat (id, suffixes[i], NULL);
      g_autofree char *path = g_build_filename (state_dir, file, NULL);

      if (g_unlink (path) < 0 && errno != ENOENT)
        {
          int saved = errno;

          g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved),
                       "cannot remove %s: %s", path, g_strerror (saved));
          return FALSE;
        }
    }
  return TRUE;
}

static int
job_drop (const char *state_dir, const char *id, gboolean force)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsJobLock) lock = NULL;
  g_autoptr (VmsJob) job = NULL;
  guint removed = 0;

  /* Read once to refuse a job that does not exist before a lock file
   * (and its directory) is made for it; again under the lock. */
  job = vms_job_load (state_dir, id, &error);
  g_clear_pointer (&job, vms_job_free);
  if (!error)
    lock = vms_job_lock_take (state_dir, id, &error);
  if (lock)
    job = vms_job_load (state_dir, id, &error);

  if (!job)
    {
      vms_cli_error ("job", "%s", error->message);
      return VMS_EXIT_FAILED;
    }
  if (job->phase == VMS_JOB_PHASE_MIGRATING && !force)
    {
      vms_cli_error ("job",
                     "job %s is in a migration: finish it ('vmshift migrate "
                     "--resume %s') or roll it back ('vmshift abort %s') "
                     "first, or drop it anyway with --force",
                     id, id, id);
      return VMS_EXIT_FAILED;
    }
  if (job->migration && job->migration->libvirt)
    g_set_error (&error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                 "job %s runs through libvirt, which 'vmshift job drop' "
                 "does not reach yet",
                 id);
  else
    vms_job_drop_from_vm (job, &removed, &error);
  if (error && !force)
    {
      vms_cli_error ("job",
                     "%s; nothing dropped (with --force the job's state is "
                     "dropped anyway, and its bitmaps stay in the VM)",
                     error->message);
      return vms_cli_exit_code (error);
    }
  if (error)
    g_printerr ("vmshift: job: %s; dropping the state only (--force)\n",
                error->message);
  g_clear_error (&error);
  if (!remove_job_files (state_dir, id, &error))
    {
      vms_cli_error ("job", "%s", error->message);
      return VMS_EXIT_FAILED;
    }
  g_print ("job %s dropped: %u bitmap%s removed from the VM\n", id, removed,
           removed == 1 ? "" : "s");
  return VMS_EXIT_OK;
}

/* The jobs vmshiftd's state directory holds: a line each, or its JSON
 * array. */
static int
job_list_on_server (const VmsCliServerOptions *server, gboolean json)
{
  int status = VMS_EXIT_OK;
  g_autoptr (JsonObject) answer = vms_cli_server_call (
      server, "job", "GET", "/jobs", NULL, NULL, &status);
  JsonArray *jobs;

  if (!answer)
    return status;
  jobs = json_object_has_member (answer, "jobs")
             ? json_object_get_array_member (answer, "jobs")
             : NULL;
  if (!jobs)
    {
      vms_cli_error ("job", "vmshiftd's answer has no jobs");
      return VMS_EXIT_CONNECT;
    }
  if (json)
    {
      g_autoptr (JsonNode) node = json_node_new (JSON_NODE_ARRAY);
      g_autofree char *text = NULL;

      json_node_set_array (node, jobs);
      text = json_to_string (node, TRUE);
      g_print ("%s\n", text);
      return VMS_EXIT_OK;
    }
  for (guint i = 0; i < json_array_get_length (jobs); i++)
    {
      JsonObject *job = json_array_get_object_element (jobs, i);

      if (job)
        g_print (
            "%s: %s, VM %s\n",
            json_object_get_string_member_with_default (job, "id", "?"),
            json_object_get_string_member_with_default (job, "phase", "?"),
            json_object_get_string_member_with_default (job, "vm-name", "?"));
    }
  return VMS_EXIT_OK;
}

int
vms_cmd_job (int argc, char **argv)
{
  g_autofree char *state_dir = NULL;
  gboolean json = FALSE, force = FALSE;
  g_auto (VmsCliServerOptions) server = { 0 };
  g_autofree GOptionEntry *server_entries
      = vms_cli_server_option_entries (&server);
  const GOptionEntry entries[]
      = { { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &state_dir,
            "Where job state lives (default /var/lib/vmshift as root)", "DIR" },
          { "json", 0, 0, G_OPTION_ARG_NONE, &json,
            "list: one JSON array of jobs", NULL },
          { "force", 0, 0, G_OPTION_ARG_NONE, &force,
            "drop: drop the state even when the VM cannot be reached "
            "(its bitmaps stay), or the job is in a migration",
            NULL },
          G_OPTION_ENTRY_NULL };
  g_autoptr (GOptionContext) context = g_option_context_new ("list | drop JOB");
  g_autoptr (GError) error = NULL;

  g_option_context_set_summary (
      context, "list: the jobs of the state directory: VM, phase, last "
               "update, disks, bitmaps, and the pid of a vmshift running it.\n"
               "drop JOB: remove the job's bitmaps and NBD exports from its "
               "VM, then its state.\n"
               "With --server, list shows vmshiftd's jobs.");
  g_option_context_add_main_entries (context, entries, NULL);
  g_option_context_add_main_entries (context, server_entries, NULL);
  g_set_prgname ("vmshift job");
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      vms_cli_error ("job", "%s", error->message);
      return VMS_EXIT_USAGE;
    }
  if (server.url && argc == 2 && g_str_equal (argv[1], "list"))
    return job_list_on_server (&server, json);
  if (server.url)
    {
      vms_cli_error ("job", "with --server: only 'list' (vmshiftd drops "
                            "no job)");
      return VMS_EXIT_USAGE;
    }
  if (!state_dir)
    state_dir = vms_job_default_state_dir ();
  vms_path_make_absolute (&state_dir, vms_path_absolute);
  if (argc == 2 && g_str_equal (argv[1], "list"))
    return job_list (state_dir, json);
  if (argc == 3 && g_str_equal (argv[1], "drop"))
    {
      if (!vms_job_id_is_valid (argv[2], &error))
        {
          vms_cli_error ("job", "JOB '%s': %s", argv[2], error->message);
          return VMS_EXIT_USAGE;
        }
      return job_drop (state_dir, argv[2], force);
    }
  vms_cli_error ("job", "expected 'list' or 'drop JOB' (see 'vmshift job "
                        "--help')");
  return VMS_EXIT_USAGE;
}
