/* vmshiftd: the event stream.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-api-events.h"

struct _VmsApiEvents
{
  GMainContext *context;
  GQueue kept;     /* char*: "id: N\nevent: ...\ndata: {...}\n\n", oldest
                      first */
  guint64 last_id; /* the SSE id of the newest event (main loop only) */
  guint kept_max;
  GPtrArray *clients; /* SoupServerMessage*, streaming (main loop only) */
  GString *batch;     /* events delivered but not yet sent to the clients */
  GSource *flush;     /* sends batch at the main loop's next turn, or NULL */
  VmsApiEventsRecorder recorder; /* also given each event, or NULL */
  gpointer recorder_data;
};

typedef struct
{
  VmsApiEvents *events;
  char *line;         /* "event: ...\ndata: ...\n\n", without its id */
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
  events->batch = g_string_new (NULL);
  return events;
}

void
vms_api_events_free (VmsApiEvents *events)
{
  if (!events)
    return;
  if (events->flush)
    {
      g_source_destroy (events->flush);
      g_source_unref (events->flush);
    }
  g_string_free (events->batch, TRUE);
  g_queue_clear_full (&events->kept, g_free);
  g_ptr_array_unref (events->clients);
  g_main_context_unref (events->context);
  g_free (events);
}

/* text (shared, not copied) as one chunk of msg's stream. */
static void
send_bytes (SoupServerMessage *msg, GBytes *text)
{
  soup_message_body_append_bytes (soup_server_message_get_response_body (msg),
                                  text);
  soup_server_message_unpause (msg);
}

/* The batch to every client.  libsoup sends each chunk with three
 * send(2)s to each client: under load, the events of one turn of the
 * main loop go out together. */
static void
send_batch (VmsApiEvents *events)
{
  g_autoptr (GBytes) text = NULL;

  if (events->flush)
    {
      g_source_destroy (events->flush);
      g_clear_pointer (&events->flush, g_source_unref);
    }
  if (events->batch->len == 0)
    return;
  text = g_string_free_to_bytes (g_steal_pointer (&events->batch));
  events->batch = g_string_new (NULL);
  for (guint i = 0; i < events->clients->len; i++)
    send_bytes (events->clients->pdata[i], text);
}

static gboolean
on_flush (gpointer data)
{
  send_batch (data);
  return G_SOURCE_REMOVE;
}

/* In the main loop: into the batch, and kept. */
static gboolean
deliver (gpointer data)
{
  Pending *pending = data;
  VmsApiEvents *events = pending->events;
  /* Numbered where they are delivered, in order: a client that started
   * something reads only what came after the id it was given. */
  char *line = g_strdup_printf ("id: %" G_GUINT64_FORMAT "\n%s",
                                ++events->last_id, pending->line);

  g_string_append (events->batch, line);
  if (!events->flush)
    {
      /* At the sockets' priority: an idle one would wait while
       * requests keep coming. */
      events->flush = g_idle_source_new ();
      g_source_set_priority (events->flush, G_PRIORITY_DEFAULT);
      g_source_set_callback (events->flush, on_flush, events, NULL);
      g_source_attach (events->flush, events->context);
    }
  if (events->recorder)
    events->recorder (pending->event, pending->object, pending->json,
                      pending->time_us, events->recorder_data);
  g_queue_push_tail (&events->kept, line);
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

void
vms_api_events_set_recorder (VmsApiEvents *events,
                             VmsApiEventsRecorder recorder, gpointer user_data)
{
  events->recorder = recorder;
  events->recorder_data = user_data;
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
  g_autoptr (GString) replay = g_string_new (": vmshiftd events\n\n");
  g_autoptr (GBytes) text = NULL;

  /* The batch is kept already: the new client gets it once, below. */
  send_batch (events);
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_message_headers_set_encoding (headers, SOUP_ENCODING_CHUNKED);
  soup_message_headers_set_content_type (headers, "text/event-stream", NULL);
  soup_message_headers_replace (headers, "Cache-Control", "no-cache");
  soup_message_body_set_accumulate (soup_server_message_get_response_body (msg),
                                    FALSE);
  g_ptr_array_add (events->clients, g_object_ref (msg));
  g_signal_connect (msg, "finished", G_CALLBACK (on_client_gone), events);
  g_signal_connect (msg, "disconnected", G_CALLBACK (on_client_gone), events);
  /* A comment first, so that the client sees the stream open; the
   * kept events in the same chunk. */
  for (GList *l = events->kept.head; l; l = l->next)
    g_string_append (replay, l->data);
  text = g_string_free_to_bytes (g_steal_pointer (&replay));
  send_bytes (msg, text);
}

guint64
vms_api_events_last_id (VmsApiEvents *events)
{
  return events->last_id;
}

guint
vms_api_events_clients (VmsApiEvents *events)
{
  return events->clients->len;
}
