/* vmshiftd: the REST API.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-api.h"
#include "vms-api-events.h"
#include "vms-api-plans.h"
#include "vms-api-reply.h"
#include "vms-api-stats.h"
#include "vms-job.h"

#include <string.h>

/* Events replayed to a client that connects late. */
#define KEPT_EVENTS 1000

struct _VmsApi
{
  SoupServer *server;
  char *state_dir;
  char *token;
  VmsApiEvents *events;
  VmsApiPlans *plans;
  VmsApiStats *stats;
};

/* The same bytes, in a time that does not tell how many matched. */
static gboolean
same_secret (const char *given, const char *secret)
{
  gsize n = strlen (secret), m = strlen (given);
  guint diff = n != m;

  for (gsize i = 0; i < n; i++)
    diff |= (guint)(guchar)secret[i] ^ (guint)(guchar)given[i < m ? i : 0];
  return diff == 0 && m > 0;
}

static gboolean
authenticated (VmsApi *api, SoupServerMessage *msg)
{
  const char *header = soup_message_headers_get_one (
      soup_server_message_get_request_headers (msg), "Authorization");

  if (header && g_str_has_prefix (header, "Bearer ")
      && same_secret (header + strlen ("Bearer "), api->token))
    return TRUE;
  soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                "WWW-Authenticate",
                                "Bearer realm=\"vmshiftd\"");
  vms_api_reply_error (msg, SOUP_STATUS_UNAUTHORIZED,
                       "a bearer token is needed (vmshiftd --token-file)");
  return FALSE;
}

/* One job's state file, as it is. */
static void
show_job (VmsApi *api, SoupServerMessage *msg, const char *id)
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
  path = g_build_filename (api->state_dir, file, NULL);
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

/* Every job in the state directory: id, phase, VM, updated. */
static void
list_jobs (VmsApi *api, SoupServerMessage *msg)
{
  g_autoptr (GDir) dir = g_dir_open (api->state_dir, 0, NULL);
  JsonArray *jobs = json_array_new ();
  JsonObject *object = json_object_new ();

  for (const char *file; dir && (file = g_dir_read_name (dir));)
    {
      g_autofree char *id = NULL;
      g_autoptr (VmsJob) job = NULL;
      JsonObject *one;

      if (!g_str_has_suffix (file, ".json"))
        continue;
      id = g_strndup (file, strlen (file) - strlen (".json"));
      /* Estimates and plans' ledgers live here too: not jobs. */
      if (!vms_job_id_is_valid (id, NULL)
          || !(job = vms_job_load (api->state_dir, id, NULL)))
        continue;
      one = json_object_new ();
      json_object_set_string_member (one, "id", job->id);
      json_object_set_string_member (one, "phase",
                                     vms_job_phase_name (job->phase));
      json_object_set_string_member (one, "vm-name", job->vm_name);
      json_object_set_int_member (one, "updated", job->updated);
      json_array_add_object_element (jobs, one);
    }
  json_object_set_array_member (object, "jobs", jobs);
  vms_api_reply (msg, SOUP_STATUS_OK, object);
}

static void
route (VmsApi *api, SoupServerMessage *msg, const char *path)
{
  const char *method = soup_server_message_get_method (msg);
  const char *rest;

  if (vms_api_stats_serves (msg, path))
    vms_api_stats_handle (api->stats, msg, path);
  else if (g_str_equal (path, "/api/v1/events")
           && g_str_equal (method, SOUP_METHOD_GET))
    vms_api_events_subscribe (api->events, msg);
  else if ((rest = g_str_has_prefix (path, "/api/v1/plans")
                       ? path + strlen ("/api/v1/plans")
                       : NULL)
           && (!*rest || *rest == '/'))
    vms_api_plans_handle (api->plans, msg, rest);
  else if (g_str_equal (path, "/api/v1/jobs")
           && g_str_equal (method, SOUP_METHOD_GET))
    list_jobs (api, msg);
  else if (g_str_has_prefix (path, "/api/v1/jobs/")
           && g_str_equal (method, SOUP_METHOD_GET))
    show_job (api, msg, path + strlen ("/api/v1/jobs/"));
  else
    vms_api_reply_error (msg, SOUP_STATUS_NOT_FOUND, "%s %s: no such request",
                         method, path);
}

/* Before the body is read: who asks, and how much it sends (a body is
 * held in memory whole, so one without a length, or a long one, is
 * refused unread). */
static void
check_early (SoupServer *server, SoupServerMessage *msg, const char *path,
             GHashTable *query, gpointer data)
{
  VmsApi *api = data;
  SoupMessageHeaders *headers = soup_server_message_get_request_headers (msg);

  if (!authenticated (api, msg))
    return;
  if (soup_message_headers_get_encoding (headers) == SOUP_ENCODING_CHUNKED)
    vms_api_reply_error (msg, SOUP_STATUS_LENGTH_REQUIRED,
                         "a request body needs its Content-Length");
  else if (soup_message_headers_get_content_length (headers) > VMS_API_MAX_BODY)
    vms_api_reply_error (msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE,
                         "a request body is at most %d bytes",
                         VMS_API_MAX_BODY);
}

static void
handle (SoupServer *server, SoupServerMessage *msg, const char *path,
        GHashTable *query, gpointer data)
{
  route (data, msg, path);
}

VmsApi *
vms_api_new (SoupServer *server, const char *state_dir, const char *token,
             VmsDb *db)
{
  VmsApi *api = g_new0 (VmsApi, 1);

  api->server = g_object_ref (server);
  api->state_dir = g_strdup (state_dir);
  api->token = g_strdup (token);
  api->events = vms_api_events_new (g_main_context_default (), KEPT_EVENTS);
  api->plans = vms_api_plans_new (state_dir, api->events);
  api->stats = vms_api_stats_new (db, state_dir, api->events);
  soup_server_add_early_handler (server, "/api/v1", check_early, api, NULL);
  soup_server_add_handler (server, "/api/v1", handle, api, NULL);
  return api;
}

void
vms_api_free (VmsApi *api)
{
  if (!api)
    return;
  soup_server_remove_handler (api->server, "/api/v1");
  vms_api_plans_free (api->plans);
  vms_api_stats_free (api->stats);
  vms_api_events_free (api->events);
  g_object_unref (api->server);
  g_free (api->state_dir);
  memset (api->token, 0, strlen (api->token));
  g_free (api->token);
  g_free (api);
}
