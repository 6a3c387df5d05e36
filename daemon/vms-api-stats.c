/* vmshiftd: the statistics, served from its database.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-api-stats.h"
#include "vms-api-reply.h"
#include "vms-db-rebuild.h"

#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>

/* Events one GET returns at most, and when the client does not say: a
 * reply is built whole in memory. */
#define MAX_EVENT_LIMIT 1000
#define DEFAULT_EVENT_LIMIT 100
/* A file written before the last catch-up's look at the directory and
 * renamed into it only after is read again: such a file was written
 * this much before at most (vmshift renames what it has just written). */
#define CATCH_UP_MARGIN_NS (2 * G_GINT64_CONSTANT (1000000000))
/* An estimate id is a file name's part (vms-estimate-file.h). */
#define MAX_ESTIMATE_ID 255

struct _VmsApiStats
{
  VmsDb *db;            /* borrowed */
  char *state_dir;      /* where the job and ledger files are */
  VmsApiEvents *events; /* borrowed: recorded from */
  gboolean failing;     /* the last write failed (and was said) */
  gint64 synced_mtime_ns; /* the state directory's mtime when its files
                             were last put in the database */
};

/* ---- recording ---- */

static const char *
string_of (JsonObject *object, const char *member)
{
  JsonNode *node = json_object_get_member (object, member);

  return node && JSON_NODE_HOLDS_VALUE (node)
                 && json_node_get_value_type (node) == G_TYPE_STRING
             ? json_node_get_string (node)
             : NULL;
}

/* The events after which a plan's ledger has changed (what
 * vms-plan-ledger.c notes); the run's end comes after every note of it. */
static gboolean
changes_ledger (const char *event)
{
  static const char *const events[]
      = { "plan-vm-start", "downtime-miss-predicted", "migrated",
          "plan-vm",       "plan-run-ended",          NULL };

  return g_strv_contains (events, event);
}

static void
record (const char *event, JsonObject *object, const char *json, gint64 time_us,
        gpointer user_data)
{
  VmsApiStats *stats = user_data;
  g_autoptr (GError) error = NULL;
  const char *plan = string_of (object, "plan");
  const char *vm = string_of (object, "vm");
  const char *job = string_of (object, "job");
  gboolean ok;

  ok = vms_db_add_event (stats->db, time_us, plan, vm, event, json, &error) > 0;
  /* A job's file is saved before its new state is said. */
  if (ok && plan && g_str_equal (event, "state") && (job || vm))
    ok = vms_db_rebuild_job (stats->db, stats->state_dir, job ? job : vm, plan,
                             &error);
  if (ok && plan && changes_ledger (event))
    ok = vms_db_rebuild_plan (stats->db, stats->state_dir, plan, &error);
  /* Said once until it works again: a full disk would say it per
   * event. */
  if (!ok && !stats->failing)
    fprintf (stderr, "vmshiftd: database: event %s not recorded: %s\n", event,
             error->message);
  stats->failing = !ok;
}

/* The state directory's mtime in ns, or -1: every file in it is
 * written to a temporary name and renamed, which changes it. */
static gint64
state_dir_mtime_ns (const char *state_dir)
{
  GStatBuf st;

  if (g_stat (state_dir, &st) < 0)
    return -1;
  return st.st_mtim.tv_sec * G_GINT64_CONSTANT (1000000000)
         + st.st_mtim.tv_nsec;
}

/* What vmshift wrote there itself since (an estimate, a plan run from
 * the command line) is put in before the database answers. */
static void
catch_up (VmsApiStats *stats)
{
  g_autoptr (GError) error = NULL;
  gint64 mtime_ns = state_dir_mtime_ns (stats->state_dir);
  gint64 since_ns = stats->synced_mtime_ns - CATCH_UP_MARGIN_NS;

  if (mtime_ns == stats->synced_mtime_ns)
    return;
  /* Taken first: a file written meanwhile changes it again. */
  stats->synced_mtime_ns = mtime_ns;
  if (!vms_db_rebuild_changed (stats->db, stats->state_dir, MAX (since_ns, 1),
                               &error))
    fprintf (stderr, "vmshiftd: database: %s\n", error->message);
}

VmsApiStats *
vms_api_stats_new (VmsDb *db, const char *state_dir, VmsApiEvents *events)
{
  VmsApiStats *stats = g_new0 (VmsApiStats, 1);

  stats->db = db;
  stats->state_dir = g_strdup (state_dir);
  stats->events = events;
  /* vmshiftd put them in as it started. */
  stats->synced_mtime_ns = state_dir_mtime_ns (state_dir);
  vms_api_events_set_recorder (events, record, stats);
  return stats;
}

void
vms_api_stats_free (VmsApiStats *stats)
{
  if (!stats)
    return;
  vms_api_events_set_recorder (stats->events, NULL, NULL);
  g_free (stats->state_dir);
  g_free (stats);
}

/* ---- serving ---- */

static const char *
query_of (SoupServerMessage *msg)
{
  const char *query = g_uri_get_query (soup_server_message_get_uri (msg));

  return query && *query ? query : NULL;
}

gboolean
vms_api_stats_serves (SoupServerMessage *msg, const char *path)
{
  return g_str_equal (path, "/api/v1/estimates")
         || g_str_has_prefix (path, "/api/v1/estimates/")
         || g_str_equal (path, "/api/v1/migrations")
         || (g_str_equal (path, "/api/v1/events") && query_of (msg));
}

static void
reply_array (SoupServerMessage *msg, const char *member, JsonArray *array,
             GError *error)
{
  JsonObject *object;

  if (!array)
    {
      vms_api_reply_error (msg, SOUP_STATUS_INTERNAL_SERVER_ERROR, "%s",
                           error->message);
      return;
    }
  object = json_object_new ();
  json_object_set_array_member (object, member, array);
  vms_api_reply (msg, SOUP_STATUS_OK, object);
}

static void
show_estimate (VmsApiStats *stats, SoupServerMessage *msg, const char *id)
{
  g_autoptr (GError) error = NULL;
  JsonObject *estimate;

  if (!*id || strlen (id) > MAX_ESTIMATE_ID || strchr (id, '/')
      || !g_utf8_validate (id, -1, NULL))
    {
      vms_api_reply_error (msg, SOUP_STATUS_BAD_REQUEST,
                           "estimate: an id is 1 to %d bytes of UTF-8, no '/'",
                           MAX_ESTIMATE_ID);
      return;
    }
  estimate = vms_db_get_estimate (stats->db, id, &error);
  if (estimate)
    vms_api_reply (msg, SOUP_STATUS_OK, estimate);
  else if (error)
    vms_api_reply_error (msg, SOUP_STATUS_INTERNAL_SERVER_ERROR, "%s",
                         error->message);
  else
    vms_api_reply_error (msg, SOUP_STATUS_NOT_FOUND, "no estimate %s", id);
}

/* A parameter of the query as a number in [min, max]; absent: fallback.
 * FALSE with error when it is not one. */
static gboolean
number_parameter (GHashTable *params, const char *name, gint64 min, gint64 max,
                  gint64 fallback, gint64 *out, GError **error)
{
  const char *text = g_hash_table_lookup (params, name);
  guint64 value;

  *out = fallback;
  if (!text)
    return TRUE;
  /* Unsigned parsing: no sign, no space, decimal digits only. */
  if (!g_ascii_string_to_unsigned (text, 10, min, max, &value, NULL))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "%s: give a number from %" G_GINT64_FORMAT
                   " to %" G_GINT64_FORMAT,
                   name, min, max);
      return FALSE;
    }
  *out = value;
  return TRUE;
}

static void
list_events (VmsApiStats *stats, SoupServerMessage *msg)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GHashTable) params
      = g_uri_parse_params (query_of (msg), -1, "&", G_URI_PARAMS_NONE, &error);
  GHashTableIter iter;
  gpointer key;
  gint64 since, limit;
  JsonArray *events;

  if (params)
    {
      g_hash_table_iter_init (&iter, params);
      while (g_hash_table_iter_next (&iter, &key, NULL))
        if (!g_str_equal (key, "since") && !g_str_equal (key, "limit"))
          {
            vms_api_reply_error (msg, SOUP_STATUS_BAD_REQUEST,
                                 "events: no parameter %s (since, limit)",
                                 (const char *)key);
            return;
          }
    }
  if (!params
      || !number_parameter (params, "since", 0, G_MAXINT64, 0, &since, &error)
      || !number_parameter (params, "limit", 1, MAX_EVENT_LIMIT,
                            DEFAULT_EVENT_LIMIT, &limit, &error))
    {
      vms_api_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "events: %s",
                           error->message);
      return;
    }
  events = vms_db_list_events (stats->db, since, limit, &error);
  reply_array (msg, "events", events, error);
}

void
vms_api_stats_handle (VmsApiStats *stats, SoupServerMessage *msg,
                      const char *path)
{
  g_autoptr (GError) error = NULL;
  const char *method = soup_server_message_get_method (msg);
  JsonArray *array;

  if (!g_str_equal (method, SOUP_METHOD_GET))
    {
      vms_api_reply_error (msg, SOUP_STATUS_METHOD_NOT_ALLOWED,
                           "%s %s: only GET", method, path);
      return;
    }
  /* The events are the daemon's own: no file holds them. */
  if (g_str_equal (path, "/api/v1/events"))
    {
      list_events (stats, msg);
      return;
    }
  catch_up (stats);
  if (g_str_equal (path, "/api/v1/estimates"))
    {
      array = vms_db_list_estimates (stats->db, &error);
      reply_array (msg, "estimates", array, error);
    }
  else if (g_str_has_prefix (path, "/api/v1/estimates/"))
    show_estimate (stats, msg, path + strlen ("/api/v1/estimates/"));
  else if (g_str_equal (path, "/api/v1/migrations"))
    {
      array = vms_db_list_migrations (stats->db, &error);
      reply_array (msg, "migrations", array, error);
    }
}
