/* vmshiftd: estimates run over HTTP.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-api-estimate-runs.h"
#include "vms-api-reply.h"
#include "vms-estimate.h"
#include "vms-granularity.h"
#include "vms-job.h"
#include "vms-path.h"
#include "vms-sink-client.h"

#include <string.h>

/* As vmshift estimate's bound on --bandwidth. */
#define MAX_RATE (G_GUINT64_CONSTANT (1) << 40)
/* VMs observed together share the link: a group, not a fleet. */
#define MAX_SOURCES 64
#define MAX_SOURCE_LENGTH 4096

/* One estimate's run in its thread; kept after it ended. */
typedef struct
{
  VmsApiEstimateRuns *runs;
  char *id;
  char *sink;
  char *connect;
  char **sources;
  int window_s;
  int interval_s;
  double probe_seconds;
  guint64 bandwidth;
  GCancellable *cancellable;
  GThread *thread;
  gint ended; /* atomic */
} EstimateRun;

struct _VmsApiEstimateRuns
{
  char *state_dir;
  VmsApiEvents *events;
  GHashTable *runs; /* id → EstimateRun* (main loop only) */
};

static void
estimate_run_free (EstimateRun *run)
{
  g_cancellable_cancel (run->cancellable);
  if (run->thread)
    g_thread_join (run->thread);
  g_clear_object (&run->cancellable);
  g_free (run->id);
  g_free (run->sink);
  g_free (run->connect);
  g_strfreev (run->sources);
  g_free (run);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (EstimateRun, estimate_run_free)

VmsApiEstimateRuns *
vms_api_estimate_runs_new (const char *state_dir, VmsApiEvents *events)
{
  VmsApiEstimateRuns *runs = g_new0 (VmsApiEstimateRuns, 1);

  runs->state_dir = g_strdup (state_dir);
  runs->events = events;
  runs->runs = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                      (GDestroyNotify)estimate_run_free);
  return runs;
}

void
vms_api_estimate_runs_free (VmsApiEstimateRuns *runs)
{
  if (!runs)
    return;
  g_hash_table_unref (runs->runs);
  g_free (runs->state_dir);
  g_free (runs);
}

/* ---- the run ---- */

static void
on_event (const char *event, JsonObject *fields, const char *text,
          gpointer user_data)
{
  EstimateRun *run = user_data;

  /* Not "estimate": the result's event holds the estimate there. */
  json_object_set_string_member (fields, "estimate-id", run->id);
  vms_api_events_publish (run->runs->events, event, fields, text, NULL, NULL);
}

/* For people: each VM's method, time and downtimes. */
static char *
summary (const EstimateRun *run, const VmsEstimateFile *result)
{
  GString *text = g_string_new (NULL);

  g_string_printf (text, "estimate %s kept (vmshift migrate --estimate %s)",
                   run->id, run->id);
  for (guint i = 0; i < result->vms->len; i++)
    {
      const VmsEstimateFileVm *vm = result->vms->pdata[i];
      const VmsEstimate *e = &vm->prediction;

      g_string_append_printf (
          text,
          "\nVM %s: %s; about %.1f s with --final-sync pause (downtime %.0f "
          "ms), %.1f s with mirror (%.0f ms)",
          *vm->vm_name ? vm->vm_name : vm->source,
          vms_estimate_method_name (e->method), e->total_pause_s,
          e->downtime_pause_s * 1000, e->total_mirror_s,
          e->downtime_mirror_s * 1000);
    }
  return g_string_free (text, FALSE);
}

/* Its result kept and said: the whole estimate, as vmshift estimate
 * --json prints it. */
static gboolean
report (EstimateRun *run, VmsEstimateFile *result, GError **error)
{
  g_autofree char *path
      = vms_estimate_file_path (run->runs->state_dir, run->id);
  g_autoptr (JsonObject) fields = json_object_new ();
  g_autofree char *text = summary (run, result);

  if (!vms_estimate_file_save (result, run->runs->state_dir, error))
    return FALSE;
  json_object_set_string_member (fields, "file", path);
  json_object_set_member (fields, "estimate",
                          vms_estimate_file_to_json (result));
  on_event ("estimate", fields, text, run);
  return TRUE;
}

static void
run_ended (EstimateRun *run, const GError *error)
{
  g_autoptr (JsonObject) fields = json_object_new ();

  json_object_set_boolean_member (fields, "ok", error == NULL);
  if (error)
    json_object_set_string_member (fields, "error", error->message);
  on_event ("estimate-run-ended", fields, error ? error->message : "estimated",
            run);
  g_atomic_int_set (&run->ended, 1);
}

static gpointer
run_main (gpointer data)
{
  EstimateRun *run = data;
  g_autoptr (VmsProgress) progress = vms_progress_new_callback (on_event, run);
  VmsEstimateConfig config = {
    .sink = run->sink,
    .id = run->id,
    .state_dir = run->runs->state_dir,
    .connect = run->connect,
    .sources = (const char *const *)run->sources,
    .window_s = run->window_s,
    .interval_s = run->interval_s,
    .probe_seconds = run->probe_seconds,
    .bitmap_memory = VMS_GRANULARITY_DEFAULT_BITMAP_MEMORY,
    .progress = progress,
  };
  g_autoptr (VmsEstimateFile) result = NULL;
  g_autoptr (GError) error = NULL;
  VmsEstimateParams params;

  vms_estimate_params_init_for_host (&params);
  result = vms_estimate_measure (&config, run->cancellable, &error);
  if (result)
    {
      vms_estimate_predict (result, &params, (double)run->bandwidth);
      report (run, result, &error);
    }
  run_ended (run, error);
  return NULL;
}

/* ---- the request ---- */

static gboolean refuse (GError **error, const char *format, ...)
    G_GNUC_PRINTF (2, 3);

static gboolean
refuse (GError **error, const char *format, ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, message);
  return FALSE;
}

static const char *const members[]
    = { "id",         "sink",          "sources",   "connect", "window-s",
        "interval-s", "probe-seconds", "bandwidth", NULL };

/* member of request as a string (NULL when not given). */
static gboolean
get_string (JsonObject *request, const char *member, char **out, GError **error)
{
  JsonNode *node = json_object_get_member (request, member);

  if (!node)
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_STRING)
    return refuse (error, "%s: give a string", member);
  *out = g_strdup (json_node_get_string (node));
  return TRUE;
}

/* member of request as a number in [minimum, maximum] (*out kept when
 * not given). */
static gboolean
get_number (JsonObject *request, const char *member, double minimum,
            double maximum, double *out, GError **error)
{
  JsonNode *node = json_object_get_member (request, member);

  if (!node)
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (node)
      || (json_node_get_value_type (node) != G_TYPE_INT64
          && json_node_get_value_type (node) != G_TYPE_DOUBLE))
    return refuse (error, "%s: give a number", member);
  *out = json_node_get_double (node);
  if (!(*out >= minimum && *out <= maximum))
    return refuse (error, "%s: %g is not within %g and %g", member, *out,
                   minimum, maximum);
  return TRUE;
}

/* "sources": QMP addresses or, with "connect", libvirt domains. */
static gboolean
get_sources (JsonObject *request, EstimateRun *run, GError **error)
{
  JsonNode *node = json_object_get_member (request, "sources");
  JsonArray *array = node && JSON_NODE_HOLDS_ARRAY (node)
                         ? json_node_get_array (node)
                         : NULL;
  guint n = array ? json_array_get_length (array) : 0;

  if (n == 0 || n > MAX_SOURCES)
    return refuse (error,
                   "sources: give the VMs to observe, 1 to %d "
                   "strings",
                   MAX_SOURCES);
  run->sources = g_new0 (char *, n + 1);
  for (guint i = 0; i < n; i++)
    {
      JsonNode *source = json_array_get_element (array, i);
      const char *text;

      if (!JSON_NODE_HOLDS_VALUE (source)
          || json_node_get_value_type (source) != G_TYPE_STRING
          || !*(text = json_node_get_string (source))
          || strlen (text) > MAX_SOURCE_LENGTH)
        return refuse (error,
                       "sources[%u]: give a QMP address or, with "
                       "connect, a domain",
                       i);
      run->sources[i] = run->connect ? g_strdup (text)
                                     : vms_path_absolute_qmp_address (text);
    }
  return TRUE;
}

static gboolean
check_members (JsonObject *request, GError **error)
{
  g_autoptr (GList) names = json_object_get_members (request);

  for (GList *l = names; l; l = l->next)
    if (!g_strv_contains (members, l->data))
      return refuse (error, "%s: not a member of an estimate request",
                     (const char *)l->data);
  return TRUE;
}

/* The request, checked as vmshift estimate checks its options. */
static gboolean
parse_request (JsonObject *request, EstimateRun *run, GError **error)
{
  double window = VMS_ESTIMATE_DEFAULT_WINDOW_S,
         interval = VMS_ESTIMATE_DEFAULT_INTERVAL_S;
  double probe = VMS_ESTIMATE_DEFAULT_PROBE_SECONDS, bandwidth = 0;
  g_autoptr (GError) local = NULL;

  if (!check_members (request, error)
      || !get_string (request, "id", &run->id, error)
      || !get_string (request, "sink", &run->sink, error)
      || !get_string (request, "connect", &run->connect, error)
      || !get_sources (request, run, error)
      || !get_number (request, "window-s", 1, VMS_ESTIMATE_MAX_WINDOW_S,
                      &window, error)
      || !get_number (request, "interval-s", 1, window, &interval, error)
      || !get_number (request, "probe-seconds", 0.001,
                      VMS_ESTIMATE_MAX_PROBE_SECONDS, &probe, error)
      || !get_number (request, "bandwidth", 0, MAX_RATE, &bandwidth, error))
    return FALSE;
  if (!run->sink)
    return refuse (error, "sink: give the sink's NBD URI");
  if (!vms_sink_client_check_uri (run->sink, error))
    return FALSE;
  if (!run->id)
    run->id = g_strdup_printf ("%" G_GINT64_FORMAT,
                               g_get_real_time () / G_USEC_PER_SEC);
  if (!vms_job_id_is_valid (run->id, &local))
    return refuse (error, "id '%s': %s", run->id, local->message);
  run->window_s = (int)window;
  run->interval_s = MIN ((int)interval, run->window_s);
  run->probe_seconds = probe;
  run->bandwidth = (guint64)bandwidth;
  return TRUE;
}

static JsonObject *
body_object (SoupServerMessage *msg, GError **error)
{
  g_autoptr (GBytes) body
      = soup_message_body_flatten (soup_server_message_get_request_body (msg));
  g_autoptr (JsonParser) parser = json_parser_new ();
  gsize length;
  const char *data = g_bytes_get_data (body, &length);
  JsonNode *root;

  if (!data || !json_parser_load_from_data (parser, data, length, error))
    {
      if (!data)
        refuse (error, "give a JSON object");
      return NULL;
    }
  root = json_parser_get_root (parser);
  if (!JSON_NODE_HOLDS_OBJECT (root))
    {
      refuse (error, "give a JSON object");
      return NULL;
    }
  return json_object_ref (json_node_get_object (root));
}

static gboolean
running (VmsApiEstimateRuns *runs, const char *id)
{
  EstimateRun *run = g_hash_table_lookup (runs->runs, id);

  return run && !g_atomic_int_get (&run->ended);
}

static void
reply_started (VmsApiEstimateRuns *runs, SoupServerMessage *msg,
               EstimateRun *run, const char *state)
{
  JsonObject *object = json_object_new ();

  json_object_set_string_member (object, "estimate", run->id);
  json_object_set_boolean_member (object, state, TRUE);
  json_object_set_int_member (object, "event-id",
                              vms_api_events_last_id (runs->events));
  vms_api_reply (msg, SOUP_STATUS_ACCEPTED, object);
}

static void
start (VmsApiEstimateRuns *runs, SoupServerMessage *msg)
{
  g_autoptr (EstimateRun) run = g_new0 (EstimateRun, 1);
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) request = body_object (msg, &error);

  if (!request || !parse_request (request, run, &error))
    {
      vms_api_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "estimate: %s",
                           error->message);
      return;
    }
  if (running (runs, run->id))
    {
      vms_api_reply_error (msg, SOUP_STATUS_CONFLICT,
                           "estimate %s runs already", run->id);
      return;
    }
  run->runs = runs;
  run->cancellable = g_cancellable_new ();
  g_hash_table_replace (runs->runs, run->id, run);
  run->thread = g_thread_new ("estimate", run_main, run);
  reply_started (runs, msg, g_steal_pointer (&run), "running");
}

static void
abort_run (VmsApiEstimateRuns *runs, SoupServerMessage *msg, const char *id)
{
  EstimateRun *run = g_hash_table_lookup (runs->runs, id);

  if (!running (runs, id))
    {
      vms_api_reply_error (msg,
                           run ? SOUP_STATUS_CONFLICT : SOUP_STATUS_NOT_FOUND,
                           "estimate %s does not run", id);
      return;
    }
  g_cancellable_cancel (run->cancellable);
  reply_started (runs, msg, run, "aborting");
}

void
vms_api_estimate_runs_handle (VmsApiEstimateRuns *runs, SoupServerMessage *msg,
                              const char *rest)
{
  g_auto (GStrv) parts = g_strsplit (*rest == '/' ? rest + 1 : rest, "/", 3);
  g_autoptr (GError) error = NULL;

  if (!parts[0] || !*parts[0])
    start (runs, msg);
  else if (!vms_job_id_is_valid (parts[0], &error))
    vms_api_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "estimate: %s",
                         error->message);
  else if (g_strcmp0 (parts[1], "abort") == 0 && !parts[2])
    abort_run (runs, msg, parts[0]);
  else
    vms_api_reply_error (msg, SOUP_STATUS_NOT_FOUND, "POST %s: no such request",
                         g_uri_get_path (soup_server_message_get_uri (msg)));
}
