/* vmshift --server URL: requests to vmshiftd.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-server.h"
#include "vms-json.h"
#include "vms-job.h"

#include <libsoup/soup.h>
#include <string.h>

#define TOKEN_FILE "vmshiftd.token"
/* vmshiftd's events are single JSON lines far below this; a longer
 * line is not its stream. */
#define MAX_EVENT_LINE (1024 * 1024)

G_DEFINE_QUARK (vms - server - error - quark, vms_server_error)

struct _VmsServer
{
  SoupSession *session;
  char *api; /* URL/api/v1 */
  char *authorization;
};

void
vms_server_free (VmsServer *server)
{
  if (!server)
    return;
  g_clear_object (&server->session);
  g_free (server->api);
  if (server->authorization)
    memset (server->authorization, 0, strlen (server->authorization));
  g_free (server->authorization);
  g_free (server);
}

/* The token: $VMSHIFT_TOKEN, or the first line of its file. */
static char *
read_token (const char *token_file, GError **error)
{
  g_autofree char *path = NULL;
  g_autofree char *text = NULL;
  const char *variable = g_getenv ("VMSHIFT_TOKEN");

  if (!token_file && variable && *variable)
    return g_strdup (variable);
  if (token_file)
    path = g_strdup (token_file);
  else
    {
      g_autofree char *state_dir = vms_job_default_state_dir ();

      path = g_build_filename (state_dir, TOKEN_FILE, NULL);
    }
  if (!g_file_get_contents (path, &text, NULL, error))
    {
      g_prefix_error (error, "vmshiftd's bearer token (--token-file, or "
                             "$VMSHIFT_TOKEN): ");
      return NULL;
    }
  return g_strndup (text, strcspn (text, "\r\n"));
}

static gboolean
check_url (const char *url, GError **error)
{
  g_autoptr (GUri) uri = g_uri_parse (url, G_URI_FLAGS_NONE, error);
  const char *scheme = uri ? g_uri_get_scheme (uri) : NULL;

  if (!uri)
    return FALSE;
  if (g_strcmp0 (scheme, "http") != 0 && g_strcmp0 (scheme, "https") != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "--server %s: give http://HOST:PORT or https://HOST:PORT",
                   url);
      return FALSE;
    }
  return TRUE;
}

VmsServer *
vms_server_new (const char *url, const char *token_file, const char *ca_file,
                GError **error)
{
  g_autoptr (VmsServer) server = g_new0 (VmsServer, 1);
  g_autofree char *token = NULL;
  g_autofree char *base = NULL;

  if (!check_url (url, error) || !(token = read_token (token_file, error)))
    return NULL;
  server->session
      = soup_session_new_with_options ("user-agent", "vmshift", NULL);
  if (ca_file)
    {
      g_autoptr (GTlsDatabase) database
          = g_tls_file_database_new (ca_file, error);

      if (!database)
        return NULL;
      soup_session_set_tls_database (server->session, database);
    }
  base = g_strdup (url);
  while (g_str_has_suffix (base, "/"))
    base[strlen (base) - 1] = '\0';
  server->api = g_strconcat (base, "/api/v1", NULL);
  server->authorization = g_strconcat ("Bearer ", token, NULL);
  memset (token, 0, strlen (token));
  return g_steal_pointer (&server);
}

static SoupMessage *
new_message (VmsServer *server, const char *method, const char *path,
             GError **error)
{
  g_autofree char *url = g_strconcat (server->api, path, NULL);
  g_autoptr (GUri) uri = g_uri_parse (url, SOUP_HTTP_URI_FLAGS, error);
  SoupMessage *msg;

  if (!uri)
    return NULL;
  msg = soup_message_new_from_uri (method, uri);
  soup_message_headers_replace (soup_message_get_request_headers (msg),
                                "Authorization", server->authorization);
  return msg;
}

static gboolean
boolean_member (JsonObject *object, const char *member)
{
  JsonNode *node = json_object_get_member (object, member);

  return node && JSON_NODE_HOLDS_VALUE (node)
         && json_node_get_value_type (node) == G_TYPE_BOOLEAN
         && json_node_get_boolean (node);
}

/* What vmshiftd said of a refused request: its "error", else the
 * status. */
static void
set_refusal (SoupMessage *msg, JsonObject *object, GError **error)
{
  const char *why = object ? vms_json_string_member (object, "error") : NULL;

  g_set_error (error, VMS_SERVER_ERROR,
               soup_message_get_status (msg) == SOUP_STATUS_BAD_REQUEST
                   ? VMS_SERVER_ERROR_INVALID
                   : VMS_SERVER_ERROR_REFUSED,
               "vmshiftd: %s (HTTP %u)",
               why ? why : soup_message_get_reason_phrase (msg),
               soup_message_get_status (msg));
}

static JsonObject *
parse_object (GBytes *bytes)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  gsize length;
  const char *data = g_bytes_get_data (bytes, &length);
  JsonNode *root;

  if (!data || !json_parser_load_from_data (parser, data, length, NULL))
    return NULL;
  root = json_parser_get_root (parser);
  return JSON_NODE_HOLDS_OBJECT (root)
             ? json_object_ref (json_node_get_object (root))
             : NULL;
}

JsonObject *
vms_server_request (VmsServer *server, const char *method, const char *path,
                    const char *content_type, const char *body, GError **error)
{
  g_autoptr (SoupMessage) msg = new_message (server, method, path, error);
  g_autoptr (GBytes) answer = NULL;
  g_autoptr (JsonObject) object = NULL;

  if (!msg)
    return NULL;
  if (body)
    {
      g_autoptr (GBytes) bytes = g_bytes_new (body, strlen (body));

      soup_message_set_request_body_from_bytes (msg, content_type, bytes);
    }
  answer = soup_session_send_and_read (server->session, msg, NULL, error);
  if (!answer)
    {
      g_prefix_error (error, "vmshiftd at %s: ", server->api);
      (*error)->domain = VMS_SERVER_ERROR;
      (*error)->code = VMS_SERVER_ERROR_CONNECT;
      return NULL;
    }
  object = parse_object (answer);
  if (soup_message_get_status (msg) >= 300)
    {
      set_refusal (msg, object, error);
      return NULL;
    }
  if (!object)
    g_set_error (error, VMS_SERVER_ERROR, VMS_SERVER_ERROR_PROTOCOL,
                 "%s %s%s: the answer is not a JSON object", method,
                 server->api, path);
  return g_steal_pointer (&object);
}

GInputStream *
vms_server_open_events (VmsServer *server, GCancellable *cancellable,
                        GError **error)
{
  g_autoptr (SoupMessage) msg = new_message (server, "GET", "/events", error);
  g_autoptr (GInputStream) stream = NULL;

  if (!msg)
    return NULL;
  soup_message_headers_replace (soup_message_get_request_headers (msg),
                                "Accept", "text/event-stream");
  stream = soup_session_send (server->session, msg, cancellable, error);
  if (!stream)
    {
      g_prefix_error (error, "vmshiftd at %s: ", server->api);
      return NULL;
    }
  if (soup_message_get_status (msg) != SOUP_STATUS_OK)
    {
      set_refusal (msg, NULL, error);
      return NULL;
    }
  return G_INPUT_STREAM (g_data_input_stream_new (stream));
}

/* What is followed: the run whose events have tag name, after
 * event_id, to its end_event. */
typedef struct
{
  const char *tag;
  const char *name;
  const char *end_event;
  gint64 event_id;
} Run;

/* One SSE frame's data: shown when it is of the run; *ended when it is
 * the run's end. */
static void
dispatch (const char *data, gint64 id, const Run *run, VmsProgress *progress,
          gboolean *ended, gboolean *ok)
{
  g_autoptr (GBytes) bytes = g_bytes_new_static (data, strlen (data));
  g_autoptr (JsonObject) fields = parse_object (bytes);
  g_autofree char *event = NULL;
  g_autofree char *text = NULL;

  if (!fields || id <= run->event_id
      || g_strcmp0 (vms_json_string_member (fields, run->tag), run->name) != 0
      || !vms_json_string_member (fields, "event"))
    return;
  event = g_strdup (vms_json_string_member (fields, "event"));
  text = g_strdup (vms_json_string_member (fields, "message"));
  json_object_remove_member (fields, "event");
  if (json_object_has_member (fields, "message"))
    json_object_remove_member (fields, "message");
  if (g_str_equal (event, run->end_event))
    {
      *ended = TRUE;
      *ok = boolean_member (fields, "ok");
    }
  vms_progress_forward (progress, event, fields, text);
}

gboolean
vms_server_follow (GInputStream *events, const char *tag, const char *name,
                   const char *end_event, gint64 event_id,
                   VmsProgress *progress, gboolean *ok,
                   GCancellable *cancellable, GError **error)
{
  GDataInputStream *lines = G_DATA_INPUT_STREAM (events);
  const Run run = { tag, name, end_event, event_id };
  gboolean ended = FALSE;
  gint64 id = 0;

  *ok = FALSE;
  while (!ended)
    {
      g_autoptr (GError) local = NULL;
      gsize length;
      g_autofree char *line
          = g_data_input_stream_read_line (lines, &length, cancellable, &local);

      if (!line || length > MAX_EVENT_LINE)
        {
          if (local)
            g_propagate_error (error, g_steal_pointer (&local));
          else
            g_set_error (error, VMS_SERVER_ERROR,
                         line ? VMS_SERVER_ERROR_PROTOCOL
                              : VMS_SERVER_ERROR_CONNECT,
                         "vmshiftd's event stream %s",
                         line ? "sent a line too long to be an event"
                              : "ended (vmshiftd stopped?)");
          return FALSE;
        }
      /* "id: N" then "event: NAME", "data: JSON": the JSON has it all. */
      if (g_str_has_prefix (line, "id: "))
        id = g_ascii_strtoll (line + strlen ("id: "), NULL, 10);
      else if (g_str_has_prefix (line, "data: "))
        dispatch (line + strlen ("data: "), id, &run, progress, &ended, ok);
    }
  return TRUE;
}
