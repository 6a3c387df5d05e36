/* vmshiftd: events posted by runs outside the daemon.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-api-ingest.h"
#include "vms-api-reply.h"
#include "vms-job.h"

#include <string.h>

G_DEFINE_QUARK (vms - api - ingest - error - quark, vms_api_ingest_error)

static gboolean
event_name_is_valid (const char *name)
{
  gsize length = strlen (name);

  if (length == 0 || length > VMS_API_INGEST_MAX_NAME
      || !g_ascii_islower (name[0]))
    return FALSE;
  for (gsize i = 1; i < length; i++)
    if (!g_ascii_islower (name[i]) && !g_ascii_isdigit (name[i])
        && name[i] != '-')
      return FALSE;
  return TRUE;
}

/* One line as vmshift --json prints an event: an object with its name
 * in "event", its text (if any) a string in "message".  The object
 * (caller unrefs), or NULL with error. */
static JsonObject *
parse_line (const char *line, gsize length, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonNode *root;
  JsonObject *object;
  JsonNode *event, *message;

  if (!json_parser_load_from_data (parser, line, length, error))
    return NULL;
  root = json_parser_get_root (parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error (error, VMS_API_INGEST_ERROR, VMS_API_INGEST_ERROR_EVENTS,
                   "not a JSON object");
      return NULL;
    }
  object = json_node_get_object (root);
  event = json_object_get_member (object, "event");
  message = json_object_get_member (object, "message");
  if (!event || json_node_get_value_type (event) != G_TYPE_STRING
      || !event_name_is_valid (json_node_get_string (event)))
    {
      g_set_error (error, VMS_API_INGEST_ERROR, VMS_API_INGEST_ERROR_EVENTS,
                   "\"event\" must be a name of 1 to %d characters, "
                   "[a-z][a-z0-9-]*",
                   VMS_API_INGEST_MAX_NAME);
      return NULL;
    }
  if (message && json_node_get_value_type (message) != G_TYPE_STRING)
    {
      g_set_error (error, VMS_API_INGEST_ERROR, VMS_API_INGEST_ERROR_EVENTS,
                   "\"message\" must be a string");
      return NULL;
    }
  return json_object_ref (object);
}

/* Every non-empty line of the body, parsed and checked, in order
 * (JsonObject*), or NULL with error naming the first bad line. */
static GPtrArray *
parse_body (const char *data, gsize length, GError **error)
{
  g_autoptr (GPtrArray) parsed
      = g_ptr_array_new_with_free_func ((GDestroyNotify)json_object_unref);
  const char *end = data + length;
  guint number = 0;

  /* Checked whole, once: no NUL byte or broken UTF-8 reaches the
   * parser, nor through it the clients. */
  if (!g_utf8_validate (data, length, NULL))
    {
      g_set_error (error, VMS_API_INGEST_ERROR, VMS_API_INGEST_ERROR_EVENTS,
                   "the body is not UTF-8 text");
      return NULL;
    }
  for (const char *line = data; line < end;)
    {
      const char *newline = memchr (line, '\n', end - line);
      gsize line_length = (newline ? newline : end) - line;
      g_autoptr (GError) local = NULL;
      JsonObject *object;

      number++;
      if (line_length > 0)
        {
          if (parsed->len == VMS_API_INGEST_MAX_EVENTS)
            {
              g_set_error (
                  error, VMS_API_INGEST_ERROR, VMS_API_INGEST_ERROR_EVENTS,
                  "more than %d events in one body", VMS_API_INGEST_MAX_EVENTS);
              return NULL;
            }
          if (!(object = parse_line (line, line_length, &local)))
            {
              g_set_error (error, VMS_API_INGEST_ERROR,
                           VMS_API_INGEST_ERROR_EVENTS, "line %u: %s", number,
                           local->message);
              return NULL;
            }
          g_ptr_array_add (parsed, object);
        }
      line += line_length + 1;
    }
  if (parsed->len == 0)
    {
      g_set_error (error, VMS_API_INGEST_ERROR, VMS_API_INGEST_ERROR_EVENTS,
                   "the body holds no event (one vmshift --json line each)");
      return NULL;
    }
  return g_steal_pointer (&parsed);
}

/* The query's plan and vm (vm required: an event belongs to a VM's run;
 * plan only when the run is a plan's), each a name as a job's id. */
static gboolean
parse_query (SoupServerMessage *msg, char **plan, char **vm, GError **error)
{
  const char *query = g_uri_get_query (soup_server_message_get_uri (msg));
  g_autoptr (GHashTable) params = NULL;
  GHashTableIter iter;
  const char *key, *value;

  params = g_uri_parse_params (query ? query : "", -1, "&", G_URI_PARAMS_NONE,
                               error);
  if (!params)
    return FALSE;
  g_hash_table_iter_init (&iter, params);
  while (g_hash_table_iter_next (&iter, (gpointer *)&key, (gpointer *)&value))
    {
      g_autoptr (GError) local = NULL;

      if (!g_str_equal (key, "plan") && !g_str_equal (key, "vm"))
        {
          g_set_error (error, VMS_API_INGEST_ERROR, VMS_API_INGEST_ERROR_QUERY,
                       "unknown query parameter '%s' (plan, vm)", key);
          return FALSE;
        }
      if (!vms_job_id_is_valid (value, &local))
        {
          g_set_error (error, VMS_API_INGEST_ERROR, VMS_API_INGEST_ERROR_QUERY,
                       "%s name: %s", key, local->message);
          return FALSE;
        }
    }
  if (!g_hash_table_contains (params, "vm"))
    {
      g_set_error (error, VMS_API_INGEST_ERROR, VMS_API_INGEST_ERROR_QUERY,
                   "the query needs vm=NAME (and plan=NAME for a plan's run)");
      return FALSE;
    }
  *plan = g_strdup (g_hash_table_lookup (params, "plan"));
  *vm = g_strdup (g_hash_table_lookup (params, "vm"));
  return TRUE;
}

static void
publish (VmsApiEvents *events, JsonObject *object, const char *plan,
         const char *vm)
{
  g_autofree char *event
      = g_strdup (json_object_get_string_member (object, "event"));
  g_autofree char *text = NULL;

  if (json_object_has_member (object, "message"))
    text = g_strdup (json_object_get_string_member (object, "message"));
  /* Said again by publish, after the fields: not fields themselves.
   * The tags are the query's, whatever the line claims. */
  json_object_remove_member (object, "event");
  json_object_remove_member (object, "message");
  json_object_remove_member (object, "plan");
  json_object_remove_member (object, "vm");
  vms_api_events_publish (events, event, object, text, plan, vm);
}

void
vms_api_ingest_handle (VmsApiEvents *events, SoupServerMessage *msg)
{
  g_autoptr (GBytes) body
      = soup_message_body_flatten (soup_server_message_get_request_body (msg));
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) parsed = NULL;
  g_autofree char *plan = NULL;
  g_autofree char *vm = NULL;
  gsize length;
  const char *data = g_bytes_get_data (body, &length);
  JsonObject *object;

  if (!parse_query (msg, &plan, &vm, &error)
      || !(parsed = parse_body (data ? data : "", length, &error)))
    {
      vms_api_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "events: %s",
                           error->message);
      return;
    }
  for (guint i = 0; i < parsed->len; i++)
    publish (events, parsed->pdata[i], plan, vm);
  object = json_object_new ();
  json_object_set_int_member (object, "published", parsed->len);
  vms_api_reply (msg, SOUP_STATUS_ACCEPTED, object);
}
