/* vmshiftd: the event stream.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-api-events.h"

struct _VmsApiEvents
{
  GMainContext *context;
  GQueue kept; /* char*: "data: {...}\n\n" lines, oldest first */
  guint kept_max;
  GPtrArray *clients; /* SoupServerMessage*, streaming (main loop only) */
  VmsApiEventsRecorder recorder; /* also given each event, or NULL */
  gpointer recorder_data;
};

typedef struct
{
  VmsApiEvents *events;
  char *line;
  char *event;        /* its name */
  JsonObject *object; /* as streamed */
  char *json;         /* likewise, as text */
  gint64 time_us;     /* when it was published */
} Pending;

VmsApiEvents *
vms_api_events_new (GMainContext *context, guint kept)
{
  VmsApiEvents *events = g_new0 (VmsApiEvents, 1);

  events->context = g_main_context_ref (context);
  g_queue_init (&events->kept);
  events->kept_max = kept;
  events->clients = g_ptr_array_new_with_free_func (g_object_unref);
  return events;
}

void
vms_api_events_free (VmsApiEvents *events)
{
  if (!events)
    return;
  g_queue_clear_full (&events->kept, g_free);
  g_ptr_array_unref (events->clients);
  g_main_context_unref (events->context);
  g_free (events);
}

static void
send_line (SoupServerMessage *msg, const char *line)
{
  soup_message_body_append (soup_server_message_get_response_body (msg),
                            SOUP_MEMORY_COPY, line, strlen (line));
  soup_server_message_unpause (msg);
}

/* In the main loop: to every client, and kept. */
static gboolean
deliver (gpointer data)
{
  Pending *pending = data;
  VmsApiEvents *events = pending->events;

  for (guint i = 0; i < events->clients->len; i++)
    send_line (events->clients->pdata[i], pending->line);
  if (events->recorder)
    events->recorder (pending->event, pending->object, pending->json,
                      pending->time_us, events->recorder_data);
  g_queue_push_tail (&events->kept, g_steal_pointer (&pending->line));
  while (g_queue_get_length (&events->kept) > events->kept_max)
    g_free (g_queue_pop_head (&events->kept));
  return G_SOURCE_REMOVE;
}

static void
pending_free (gpointer data)
{
  Pending *pending = data;

  g_free (pending->line);
  g_free (pending->event);
  json_object_unref (pending->object);
  g_free (pending->json);
  g_free (pending);
}

void
vms_api_events_publish (VmsApiEvents *events, const char *event,
                        JsonObject *fields, const char *text, const char *plan,
                        const char *vm)
{
  g_autoptr (JsonObject) object = json_object_new ();
  g_autoptr (JsonNode) node = json_node_new (JSON_NODE_OBJECT);
  Pending *pending = g_new0 (Pending, 1);

  if (fields)
    {
      g_autoptr (GList) members = json_object_get_members (fields);

      for (GList *m = members; m; m = m->next)
        json_object_set_member (
            object, m->data,
            json_node_copy (json_object_get_member (fields, m->data)));
    }
  if (plan)
    json_object_set_string_member (object, "plan", plan);
  if (vm)
    json_object_set_string_member (object, "vm", vm);
  json_object_set_string_member (object, "event", event);
  if (text)
    json_object_set_string_member (object, "message", text);
  json_node_set_object (node, object);
  pending->json = json_to_string (node, FALSE);
  pending->events = events;
  pending->event = g_strdup (event);
  /* Handed over whole: json-glib's counts are not for two threads. */
  g_clear_pointer (&node, json_node_unref);
  pending->object = g_steal_pointer (&object);
  pending->time_us = g_get_real_time ();
  /* One event per message: a JSON line never holds a newline. */
  pending->line
      = g_strdup_printf ("event: %s\ndata: %s\n\n", event, pending->json);
  g_main_context_invoke_full (events->context, G_PRIORITY_DEFAULT, deliver,
                              pending, pending_free);
}

static void
on_client_gone (SoupServerMessage *msg, gpointer data)
{
  VmsApiEvents *events = data;

  g_signal_handlers_disconnect_by_data (msg, events);
  g_ptr_array_remove (events->clients, msg);
}

void
vms_api_events_subscribe (VmsApiEvents *events, SoupServerMessage *msg)
{
  SoupMessageHeaders *headers = soup_server_message_get_response_headers (msg);

  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_message_headers_set_encoding (headers, SOUP_ENCODING_CHUNKED);
  soup_message_headers_set_content_type (headers, "text/event-stream", NULL);
  soup_message_headers_replace (headers, "Cache-Control", "no-cache");
  soup_message_body_set_accumulate (soup_server_message_get_response_body (msg),
                                    FALSE);
  g_ptr_array_add (events->clients, g_object_ref (msg));
  g_signal_connect (msg, "finished", G_CALLBACK (on_client_gone), events);
  g_signal_connect (msg, "disconnected", G_CALLBACK (on_client_gone), events);
  /* A comment first, so that the client sees the stream open. */
  send_line (msg, ": vmshiftd events\n\n");
  for (GList *l = events->kept.head; l; l = l->next)
    send_line (msg, l->data);
}

void
vms_api_events_set_recorder (VmsApiEvents *events,
                             VmsApiEventsRecorder recorder, gpointer user_data)
{
  events->recorder = recorder;
  events->recorder_data = user_data;
}

guint
vms_api_events_clients (VmsApiEvents *events)
{
  return events->clients->len;
}
