/* vmshiftd: the REST API.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-api.h"
#include "vms-api-estimate-runs.h"
#include "vms-api-events.h"
#include "vms-api-jobs.h"
#include "vms-api-ingest.h"
#include "vms-api-plans.h"
#include "vms-api-reply.h"
#include "vms-api-stats.h"

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
  VmsApiJobs *jobs;
  VmsApiEstimateRuns *estimate_runs;
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

static void
route (VmsApi *api, SoupServerMessage *msg, const char *path)
{
  const char *method = soup_server_message_get_method (msg);
  gboolean post = g_str_equal (method, SOUP_METHOD_POST);
  const char *rest;

  /* What is posted first: the statistics' paths are read-only, and a
   * posted event names its VM in the query. */
  if (post && g_str_equal (path, "/api/v1/events"))
    vms_api_ingest_handle (api->events, msg);
  else if (post
           && (rest = g_str_has_prefix (path, "/api/v1/estimates")
                          ? path + strlen ("/api/v1/estimates")
                          : NULL)
           && (!*rest || *rest == '/'))
    vms_api_estimate_runs_handle (api->estimate_runs, msg, rest);
  else if (vms_api_stats_serves (msg, path))
    vms_api_stats_handle (api->stats, msg, path);
  else if (g_str_equal (path, "/api/v1/events")
           && g_str_equal (method, SOUP_METHOD_GET))
    vms_api_events_subscribe (api->events, msg);
  else if ((rest = g_str_has_prefix (path, "/api/v1/plans")
                       ? path + strlen ("/api/v1/plans")
                       : NULL)
           && (!*rest || *rest == '/'))
    vms_api_plans_handle (api->plans, msg, rest);
  else if ((rest = g_str_has_prefix (path, "/api/v1/jobs")
                       ? path + strlen ("/api/v1/jobs")
                       : NULL)
           && (!*rest || *rest == '/'))
    vms_api_jobs_handle (api->jobs, msg, rest);
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
  api->jobs = vms_api_jobs_new (state_dir, api->plans);
  api->estimate_runs = vms_api_estimate_runs_new (state_dir, api->events);
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
  vms_api_jobs_free (api->jobs);
  vms_api_estimate_runs_free (api->estimate_runs);
  vms_api_plans_free (api->plans);
  vms_api_stats_free (api->stats);
  vms_api_events_free (api->events);
  g_object_unref (api->server);
  g_free (api->state_dir);
  memset (api->token, 0, strlen (api->token));
  g_free (api->token);
  g_free (api);
}
