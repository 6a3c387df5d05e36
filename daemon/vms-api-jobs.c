/* vmshiftd: jobs.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-api-jobs.h"
#include "vms-api-reply.h"
#include "vms-job.h"

#include <glib/gstdio.h>
#include <string.h>

struct _VmsApiJobs
{
  char *state_dir;
  VmsApiPlans *plans;
  GHashTable *summaries; /* file name → Summary*: a listing parses only
                            the files that changed since the last */
};

/* What a listing shows of one file, as of its change time and size. */
typedef struct
{
  gint64 changed_ns;
  goffset size;
  JsonObject *job; /* NULL: the file is not a job (an estimate, a
                      ledger) */
} Summary;

static void
summary_free (Summary *summary)
{
  if (summary->job)
    json_object_unref (summary->job);
  g_free (summary);
}

VmsApiJobs *
vms_api_jobs_new (const char *state_dir, VmsApiPlans *plans)
{
  VmsApiJobs *jobs = g_new0 (VmsApiJobs, 1);

  jobs->state_dir = g_strdup (state_dir);
  jobs->plans = plans;
  jobs->summaries = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                           (GDestroyNotify)summary_free);
  return jobs;
}

void
vms_api_jobs_free (VmsApiJobs *jobs)
{
  if (!jobs)
    return;
  g_hash_table_unref (jobs->summaries);
  g_free (jobs->state_dir);
  g_free (jobs);
}

/* One job's state file, as it is. */
static void
show (VmsApiJobs *jobs, SoupServerMessage *msg, const char *id)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *file = g_strconcat (id, ".json", NULL);
  g_autofree char *path = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonNode *root;

  if (!vms_job_id_is_valid (id, &error))
    {
      vms_api_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "job: %s",
                           error->message);
      return;
    }
  path = g_build_filename (jobs->state_dir, file, NULL);
  if (!json_parser_load_from_file (parser, path, &error))
    {
      gboolean missing
          = g_error_matches (error, G_FILE_ERROR, G_FILE_ERROR_NOENT);

      vms_api_reply_error (
          msg,
          missing ? SOUP_STATUS_NOT_FOUND : SOUP_STATUS_INTERNAL_SERVER_ERROR,
          "job %s: %s", id, missing ? "no such job" : error->message);
      return;
    }
  root = json_parser_get_root (parser);
  if (!JSON_NODE_HOLDS_OBJECT (root))
    {
      vms_api_reply_error (msg, SOUP_STATUS_INTERNAL_SERVER_ERROR,
                           "job %s: its state file is not a JSON object", id);
      return;
    }
  vms_api_reply (msg, SOUP_STATUS_OK,
                 json_object_ref (json_node_get_object (root)));
}

/* The summary of file in the state directory, read again only when it
 * changed (job files are replaced whole, so their change time moves). */
static Summary *
summarize (VmsApiJobs *jobs, const char *file, GHashTable *fresh)
{
  g_autofree char *path = g_build_filename (jobs->state_dir, file, NULL);
  g_autofree char *id = g_strndup (file, strlen (file) - strlen (".json"));
  g_autoptr (VmsJob) job = NULL;
  GStatBuf st;
  Summary *summary = g_hash_table_lookup (jobs->summaries, file);
  gint64 changed_ns;

  if (g_stat (path, &st) < 0)
    return NULL;
  changed_ns = (gint64)st.st_ctim.tv_sec * G_GINT64_CONSTANT (1000000000)
               + st.st_ctim.tv_nsec;
  if (summary && summary->changed_ns == changed_ns
      && summary->size == st.st_size)
    {
      g_hash_table_steal (jobs->summaries, file);
      g_hash_table_insert (fresh, g_strdup (file), summary);
      return summary;
    }
  summary = g_new0 (Summary, 1);
  summary->changed_ns = changed_ns;
  summary->size = st.st_size;
  /* Estimates and plans' ledgers live here too: not jobs. */
  if (vms_job_id_is_valid (id, NULL)
      && (job = vms_job_load (jobs->state_dir, id, NULL)))
    {
      summary->job = json_object_new ();
      json_object_set_string_member (summary->job, "id", job->id);
      json_object_set_string_member (summary->job, "phase",
                                     vms_job_phase_name (job->phase));
      json_object_set_string_member (summary->job, "vm-name", job->vm_name);
      json_object_set_int_member (summary->job, "updated", job->updated);
    }
  g_hash_table_insert (fresh, g_strdup (file), summary);
  return summary;
}

/* Every job in the state directory: id, phase, VM, updated. */
static void
list (VmsApiJobs *jobs, SoupServerMessage *msg)
{
  g_autoptr (GDir) dir = g_dir_open (jobs->state_dir, 0, NULL);
  GHashTable *fresh = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                             (GDestroyNotify)summary_free);
  JsonArray *array = json_array_new ();
  JsonObject *object = json_object_new ();

  for (const char *file; dir && (file = g_dir_read_name (dir));)
    {
      Summary *summary;

      if (g_str_has_suffix (file, ".json")
          && (summary = summarize (jobs, file, fresh)) && summary->job)
        json_array_add_object_element (array, json_object_ref (summary->job));
    }
  /* What is gone from the directory is gone from the cache. */
  g_hash_table_unref (jobs->summaries);
  jobs->summaries = fresh;
  json_object_set_array_member (object, "jobs", array);
  vms_api_reply (msg, SOUP_STATUS_OK, object);
}

void
vms_api_jobs_handle (VmsApiJobs *jobs, SoupServerMessage *msg, const char *rest)
{
  const char *method = soup_server_message_get_method (msg);
  g_auto (GStrv) parts = g_strsplit (*rest == '/' ? rest + 1 : rest, "/", 3);
  g_autoptr (GError) error = NULL;
  const char *id = parts[0];
  const char *action = id ? parts[1] : NULL;
  gboolean get = g_str_equal (method, SOUP_METHOD_GET);
  gboolean post = g_str_equal (method, SOUP_METHOD_POST);

  if (!id || !*id)
    {
      if (get)
        list (jobs, msg);
      else if (post)
        vms_api_plans_submit_job (jobs->plans, msg);
      else
        vms_api_reply_error (msg, SOUP_STATUS_METHOD_NOT_ALLOWED,
                             "%s /api/v1/jobs: only GET and POST", method);
      return;
    }
  /* An id names no path outside the state directory. */
  if (!vms_job_id_is_valid (id, &error) || (action && parts[2]))
    vms_api_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "job: %s",
                         error ? error->message : "too many parts");
  else if (!action && get)
    show (jobs, msg, id);
  else if (action && post)
    vms_api_plans_job_action (jobs->plans, msg, id, action);
  else
    vms_api_reply_error (msg, SOUP_STATUS_NOT_FOUND, "%s %s: no such request",
                         method,
                         g_uri_get_path (soup_server_message_get_uri (msg)));
}
