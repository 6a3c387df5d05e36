/* vmshift: a QMP client on glib and json-glib.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The client is synchronous from the caller's side but never blind: while
 * it waits for a reply it keeps reading, so events that QEMU sends in the
 * meantime reach subscribers at once and are queued for
 * vms_qmp_wait_event().  Replies are matched by id, so a reply that comes
 * after its command timed out is recognised and dropped.
 */
#include "vms-qmp.h"
#include "vms-qmp-framer.h"
#include "vms-qmp-message.h"

#include <gio/gunixsocketaddress.h>

/* Bytes read from the socket at a time; replies are mostly small. */
#define READ_CHUNK_SIZE 65536

typedef struct
{
  char *id;          /* the "id" we sent with the command */
  char *command;     /* command name, for messages */
  gboolean done;     /* a reply (or a fatal error) has arrived */
  JsonNode *result;  /* "return" value once done without error */
  GError *error;     /* error once done with one */
} PendingCommand;

typedef struct
{
  guint id;                /* handle returned to the subscriber */
  char *event;             /* event name, NULL for all events */
  VmsQmpEventFunc func;    /* NULL once unsubscribed during a dispatch */
  gpointer user_data;      /* passed to func */
  GDestroyNotify notify;   /* frees user_data */
} Subscriber;

typedef struct
{
  char *name;          /* event name */
  JsonObject *data;    /* event data or NULL */
  gint64 timestamp_us; /* QEMU's timestamp or -1 */
} QueuedEvent;

struct _VmsQmp
{
  GSocketConnection *connection; /* keeps the socket when we connected it */
  GSocket *socket;               /* the QMP channel */
  char *address;                 /* what we connected to, for messages */
  VmsQmpFramer *framer;          /* splits the byte stream into messages */
  guint timeout_ms;              /* per-command and per-wait limit */
  guint64 last_command_number;   /* makes command ids unique */
  GQueue pending;                /* PendingCommand*, in the order sent */
  GList *subscribers;            /* Subscriber* */
  guint last_subscriber_id;      /* makes subscriber ids unique */
  guint dispatch_depth;          /* nested event dispatches in progress */
  GQueue events;                 /* QueuedEvent* not yet taken by a wait */
  gboolean greeted;              /* the greeting has arrived */
  GError *dead;                  /* why the connection is gone, or NULL */
  int version[3];                /* QEMU major, minor, micro */
  char *package;                 /* QEMU package string */
};

static void
queued_event_free (gpointer data)
{
  QueuedEvent *event = data;

  g_free (event->name);
  if (event->data)
    json_object_unref (event->data);
  g_free (event);
}

static void
subscriber_free (Subscriber *subscriber)
{
  if (subscriber->notify)
    subscriber->notify (subscriber->user_data);
  g_free (subscriber->event);
  g_free (subscriber);
}

/* Mark the connection dead: fail every command still waiting and refuse all
 * later calls with the same reason.  Takes reason. */
static void
die (VmsQmp *qmp, GError *reason)
{
  PendingCommand *pending;

  if (qmp->dead)
    {
      g_error_free (reason);
      return;
    }
  qmp->dead = reason;
  while ((pending = g_queue_pop_head (&qmp->pending)))
    {
      pending->done = TRUE;
      pending->error = g_error_copy (reason);
    }
  g_socket_close (qmp->socket, NULL);
}

static gboolean
check_alive (VmsQmp *qmp, GError **error)
{
  if (qmp->dead)
    {
      g_propagate_error (error, g_error_copy (qmp->dead));
      return FALSE;
    }
  return TRUE;
}

static PendingCommand *
find_pending (VmsQmp *qmp, const VmsQmpMessage *reply)
{
  /* QEMU answers a command it could not even parse without an id; since it
   * answers in order, that reply belongs to the oldest command. */
  if (!reply->has_id)
    return g_queue_peek_head (&qmp->pending);
  if (!reply->id)
    return NULL;
  for (GList *l = qmp->pending.head; l; l = l->next)
    {
      PendingCommand *pending = l->data;

      if (g_str_equal (pending->id, reply->id))
        return pending;
    }
  return NULL;
}

static void
handle_reply (VmsQmp *qmp, VmsQmpMessage *reply)
{
  PendingCommand *pending = find_pending (qmp, reply);

  if (!pending)
    {
      /* Normal after a timeout: the caller has given up on it. */
      g_debug ("QMP %s: dropping reply with unknown id %s", qmp->address,
               reply->id ? reply->id : "(none)");
      return;
    }
  g_queue_remove (&qmp->pending, pending);
  pending->done = TRUE;
  if (reply->kind == VMS_QMP_MESSAGE_ERROR)
    pending->error = vms_qmp_message_to_error (reply);
  else
    pending->result = json_node_copy (reply->value);
}

static void
sweep_subscribers (VmsQmp *qmp)
{
  GList *l = qmp->subscribers;

  while (l)
    {
      GList *next = l->next;
      Subscriber *subscriber = l->data;

      if (!subscriber->func)
        {
          qmp->subscribers = g_list_delete_link (qmp->subscribers, l);
          subscriber_free (subscriber);
        }
      l = next;
    }
}

static void
handle_event (VmsQmp *qmp, VmsQmpMessage *message)
{
  QueuedEvent *queued = g_new0 (QueuedEvent, 1);
  JsonObject *data = message->value ? json_node_get_object (message->value)
                                    : NULL;

  queued->name = g_strdup (message->event);
  queued->data = data ? json_object_ref (data) : NULL;
  queued->timestamp_us = message->timestamp_us;
  if (g_queue_get_length (&qmp->events) >= VMS_QMP_MAX_QUEUED_EVENTS)
    queued_event_free (g_queue_pop_head (&qmp->events));
  g_queue_push_tail (&qmp->events, queued);

  qmp->dispatch_depth++;
  for (GList *l = qmp->subscribers; l; l = l->next)
    {
      Subscriber *subscriber = l->data;

      if (subscriber->func
          && (!subscriber->event
              || g_str_equal (subscriber->event, message->event)))
        subscriber->func (qmp, message->event, data, message->timestamp_us,
                          subscriber->user_data);
    }
  if (--qmp->dispatch_depth == 0)
    sweep_subscribers (qmp);
}

static gboolean
handle_greeting (VmsQmp *qmp, VmsQmpMessage *message, GError **error)
{
  JsonObject *greeting = json_node_get_object (message->value);
  JsonObject *version = NULL, *qemu = NULL;
  static const char *const fields[] = { "major", "minor", "micro" };

  if (qmp->greeted)
    {
      g_debug ("QMP %s: ignoring a second greeting", qmp->address);
      return TRUE;
    }
  qmp->greeted = TRUE;
  if (json_object_has_member (greeting, "version"))
    version = json_object_get_object_member (greeting, "version");
  if (version && json_object_has_member (version, "qemu"))
    qemu = json_object_get_object_member (version, "qemu");
  if (!qemu)
    {
      g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_PROTOCOL,
                   "QMP greeting from %s has no QEMU version", qmp->address);
      return FALSE;
    }
  for (guint i = 0; i < G_N_ELEMENTS (fields); i++)
    qmp->version[i] = json_object_get_int_member_with_default (qemu, fields[i],
                                                               0);
  qmp->package = g_strdup (
      json_object_get_string_member_with_default (version, "package", ""));
  return TRUE;
}

static gboolean
handle_message (VmsQmp *qmp, const char *text, gsize length, GError **error)
{
  g_autoptr (VmsQmpMessage) message = vms_qmp_message_parse (text, length,
                                                             error);

  if (!message)
    return FALSE;
  if (!qmp->greeted && message->kind != VMS_QMP_MESSAGE_GREETING)
    {
      g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_PROTOCOL,
                   "%s did not begin with a QMP greeting (is it a QMP "
                   "monitor socket?)", qmp->address);
      return FALSE;
    }
  switch (message->kind)
    {
    case VMS_QMP_MESSAGE_GREETING:
      return handle_greeting (qmp, message, error);
    case VMS_QMP_MESSAGE_RETURN:
    case VMS_QMP_MESSAGE_ERROR:
      handle_reply (qmp, message);
      return TRUE;
    case VMS_QMP_MESSAGE_EVENT:
      handle_event (qmp, message);
      return TRUE;
    }
  g_assert_not_reached ();
}

/* Handle each complete message.  Messages are taken from the framer one at a
 * time, so an event callback that runs a command (and so reads again) sees a
 * consistent stream. */
static void
handle_complete_messages (VmsQmp *qmp)
{
  char *text;
  gsize length;

  while (!qmp->dead && (text = vms_qmp_framer_pop (qmp->framer, &length)))
    {
      GError *error = NULL;
      gboolean ok = handle_message (qmp, text, length, &error);

      g_free (text);
      if (!ok)
        {
          g_prefix_error (&error, "from %s: ", qmp->address);
          die (qmp, error);
        }
    }
}

/* Read all that is available without blocking and handle it.  Messages that
 * were complete before a fault are still handled: a reply followed by
 * garbage or a hang-up is a good reply. */
static void
read_available (VmsQmp *qmp)
{
  char buffer[READ_CHUNK_SIZE];

  while (!qmp->dead)
    {
      GError *error = NULL;
      gssize n = g_socket_receive (qmp->socket, buffer, sizeof buffer, NULL,
                                   &error);

      if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        {
          g_error_free (error);
          return;
        }
      if (n < 0)
        {
          handle_complete_messages (qmp);
          die (qmp, g_error_new (VMS_QMP_ERROR, VMS_QMP_ERROR_DISCONNECTED,
                                 "QMP connection to %s failed: %s",
                                 qmp->address, error->message));
          g_error_free (error);
          return;
        }
      if (n == 0)
        {
          handle_complete_messages (qmp);
          die (qmp, g_error_new (VMS_QMP_ERROR, VMS_QMP_ERROR_DISCONNECTED,
                                 "QMP connection to %s closed by QEMU (did "
                                 "it exit?)%s", qmp->address,
                                 vms_qmp_framer_has_partial (qmp->framer)
                                     ? " in the middle of a message" : ""));
          return;
        }
      if (!vms_qmp_framer_feed (qmp->framer, buffer, n, &error))
        {
          handle_complete_messages (qmp);
          g_prefix_error (&error, "from %s: ", qmp->address);
          die (qmp, error);
          return;
        }
      handle_complete_messages (qmp);
      if ((gsize) n < sizeof buffer)
        return;
    }
}

static gint64
deadline_after (guint timeout_ms)
{
  return g_get_monotonic_time () + (gint64) timeout_ms * 1000;
}

/* Wait until the socket is readable or the deadline passes; FALSE only on
 * timeout. */
static gboolean
wait_condition (VmsQmp *qmp, GIOCondition condition, gint64 deadline)
{
  gint64 remaining = deadline - g_get_monotonic_time ();
  g_autoptr (GError) error = NULL;

  if (remaining <= 0)
    return FALSE;
  if (g_socket_condition_timed_wait (qmp->socket, condition, remaining, NULL,
                                     &error))
    return TRUE;
  /* Anything but a timeout shows up on the next read or write. */
  return !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
}

static gboolean
send_all (VmsQmp *qmp, const char *text, gsize length, gint64 deadline,
          GError **error)
{
  while (length > 0)
    {
      g_autoptr (GError) send_error = NULL;
      gssize n = g_socket_send (qmp->socket, text, length, NULL, &send_error);

      if (n < 0 && g_error_matches (send_error, G_IO_ERROR,
                                    G_IO_ERROR_WOULD_BLOCK))
        {
          if (!wait_condition (qmp, G_IO_OUT, deadline))
            {
              g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_TIMEOUT,
                           "QEMU at %s did not take a command within %u ms",
                           qmp->address, qmp->timeout_ms);
              return FALSE;
            }
          continue;
        }
      if (n < 0)
        {
          die (qmp, g_error_new (VMS_QMP_ERROR, VMS_QMP_ERROR_DISCONNECTED,
                                 "QMP connection to %s failed: %s",
                                 qmp->address, send_error->message));
          return check_alive (qmp, error);
        }
      text += n;
      length -= n;
    }
  return TRUE;
}

static char *
build_command (const char *command, JsonObject *arguments, const char *id)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "execute");
  json_builder_add_string_value (builder, command);
  if (arguments)
    {
      JsonNode *node = json_node_new (JSON_NODE_OBJECT);

      json_node_set_object (node, arguments);
      json_builder_set_member_name (builder, "arguments");
      json_builder_add_value (builder, node);
    }
  json_builder_set_member_name (builder, "id");
  json_builder_add_string_value (builder, id);
  json_builder_end_object (builder);

  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  return json_generator_to_data (generator, NULL);
}

JsonNode *
vms_qmp_execute (VmsQmp *qmp, const char *command, JsonObject *arguments,
                 GError **error)
{
  PendingCommand pending = { 0 };
  g_autofree char *id = NULL;
  g_autofree char *text = NULL;
  gint64 deadline = deadline_after (qmp->timeout_ms);

  g_return_val_if_fail (command != NULL, NULL);
  if (!check_alive (qmp, error))
    return NULL;

  id = g_strdup_printf ("vms-%" G_GUINT64_FORMAT, ++qmp->last_command_number);
  text = build_command (command, arguments, id);
  pending.id = id;
  pending.command = (char *) command;
  g_queue_push_tail (&qmp->pending, &pending);

  if (!send_all (qmp, text, strlen (text), deadline, error)
      || !send_all (qmp, "\r\n", 2, deadline, error))
    {
      g_queue_remove (&qmp->pending, &pending);
      g_clear_error (&pending.error);
      return NULL;
    }

  while (!pending.done)
    {
      if (!wait_condition (qmp, G_IO_IN, deadline))
        {
          g_queue_remove (&qmp->pending, &pending);
          g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_TIMEOUT,
                       "QEMU at %s did not answer '%s' within %u ms",
                       qmp->address, command, qmp->timeout_ms);
          return NULL;
        }
      read_available (qmp);
    }

  if (pending.error)
    {
      g_propagate_error (error, pending.error);
      return NULL;
    }
  return pending.result;
}

JsonObject *
vms_qmp_parse_arguments (const char *command, const char *arguments_json,
                         GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  g_autoptr (GError) parse_error = NULL;
  JsonNode *root;

  if (!json_parser_load_from_data (parser, arguments_json, -1, &parse_error))
    {
      g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_INVALID_ARGUMENT,
                   "arguments of '%s' are not valid JSON: %s", command,
                   parse_error->message);
      return NULL;
    }
  root = json_parser_get_root (parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_INVALID_ARGUMENT,
                   "arguments of '%s' must be a JSON object, like "
                   "'{\"device\": \"vd0\"}'", command);
      return NULL;
    }
  return json_object_ref (json_node_get_object (root));
}

JsonNode *
vms_qmp_execute_json (VmsQmp *qmp, const char *command,
                      const char *arguments_json, GError **error)
{
  g_autoptr (JsonObject) arguments = NULL;

  if (!arguments_json || !*arguments_json)
    return vms_qmp_execute (qmp, command, NULL, error);
  arguments = vms_qmp_parse_arguments (command, arguments_json, error);
  if (!arguments)
    return NULL;
  return vms_qmp_execute (qmp, command, arguments, error);
}

char *
vms_qmp_execute_hmp (VmsQmp *qmp, const char *command_line, GError **error)
{
  g_autoptr (JsonObject) arguments = json_object_new ();
  g_autoptr (JsonNode) result = NULL;

  json_object_set_string_member (arguments, "command-line", command_line);
  result = vms_qmp_execute (qmp, "human-monitor-command", arguments, error);
  if (!result)
    return NULL;
  if (!JSON_NODE_HOLDS_VALUE (result)
      || json_node_get_value_type (result) != G_TYPE_STRING)
    {
      g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_PROTOCOL,
                   "human-monitor-command on %s returned no string",
                   qmp->address);
      return NULL;
    }
  return json_node_dup_string (result);
}

static QueuedEvent *
take_queued_event (VmsQmp *qmp, const char *event)
{
  for (GList *l = qmp->events.head; l; l = l->next)
    {
      QueuedEvent *queued = l->data;

      if (!event || g_str_equal (queued->name, event))
        {
          g_queue_delete_link (&qmp->events, l);
          return queued;
        }
    }
  return NULL;
}

gboolean
vms_qmp_wait_event (VmsQmp *qmp, const char *event, guint timeout_ms,
                    JsonObject **data_out, char **name_out,
                    gint64 *timestamp_us_out, GError **error)
{
  gint64 deadline = deadline_after (timeout_ms);
  QueuedEvent *queued;

  /* Deliver what is already here, so the queue is current. */
  if (!qmp->dead)
    read_available (qmp);
  while (!(queued = take_queued_event (qmp, event)))
    {
      if (!check_alive (qmp, error))
        return FALSE;
      if (!wait_condition (qmp, G_IO_IN, deadline))
        {
          g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_TIMEOUT,
                       "no %s event from QEMU at %s within %u ms",
                       event ? event : "QMP", qmp->address, timeout_ms);
          return FALSE;
        }
      read_available (qmp);
    }

  if (data_out)
    *data_out = g_steal_pointer (&queued->data);
  if (name_out)
    *name_out = g_steal_pointer (&queued->name);
  if (timestamp_us_out)
    *timestamp_us_out = queued->timestamp_us;
  queued_event_free (queued);
  return TRUE;
}

gboolean
vms_qmp_poll (VmsQmp *qmp, GError **error)
{
  if (check_alive (qmp, NULL))
    read_available (qmp);
  return check_alive (qmp, error);
}

guint
vms_qmp_subscribe (VmsQmp *qmp, const char *event, VmsQmpEventFunc func,
                   gpointer user_data, GDestroyNotify notify)
{
  Subscriber *subscriber = g_new0 (Subscriber, 1);

  g_return_val_if_fail (func != NULL, 0);
  subscriber->id = ++qmp->last_subscriber_id;
  subscriber->event = g_strdup (event);
  subscriber->func = func;
  subscriber->user_data = user_data;
  subscriber->notify = notify;
  qmp->subscribers = g_list_append (qmp->subscribers, subscriber);
  return subscriber->id;
}

void
vms_qmp_unsubscribe (VmsQmp *qmp, guint id)
{
  for (GList *l = qmp->subscribers; l; l = l->next)
    {
      Subscriber *subscriber = l->data;

      if (subscriber->id == id)
        subscriber->func = NULL;
    }
  if (qmp->dispatch_depth == 0)
    sweep_subscribers (qmp);
}

void
vms_qmp_set_timeout (VmsQmp *qmp, guint timeout_ms)
{
  qmp->timeout_ms = timeout_ms ? timeout_ms : VMS_QMP_DEFAULT_TIMEOUT_MS;
}

void
vms_qmp_get_version (VmsQmp *qmp, int *major, int *minor, int *micro)
{
  if (major)
    *major = qmp->version[0];
  if (minor)
    *minor = qmp->version[1];
  if (micro)
    *micro = qmp->version[2];
}

const char *
vms_qmp_get_package (VmsQmp *qmp)
{
  return qmp->package;
}

int
vms_qmp_get_fd (VmsQmp *qmp)
{
  return g_socket_get_fd (qmp->socket);
}

gboolean
vms_qmp_is_connected (VmsQmp *qmp)
{
  return qmp->dead == NULL;
}

void
vms_qmp_free (VmsQmp *qmp)
{
  if (!qmp)
    return;
  g_warn_if_fail (g_queue_is_empty (&qmp->pending));
  g_list_free_full (qmp->subscribers, (GDestroyNotify) subscriber_free);
  g_queue_clear_full (&qmp->events, queued_event_free);
  g_clear_error (&qmp->dead);
  if (qmp->socket)
    g_socket_close (qmp->socket, NULL);
  g_clear_object (&qmp->socket);
  g_clear_object (&qmp->connection);
  vms_qmp_framer_free (qmp->framer);
  g_free (qmp->address);
  g_free (qmp->package);
  g_free (qmp);
}

static VmsQmp *
qmp_new (GSocket *socket, const char *address, guint timeout_ms)
{
  VmsQmp *qmp = g_new0 (VmsQmp, 1);

  qmp->socket = g_object_ref (socket);
  g_socket_set_blocking (socket, FALSE);
  qmp->address = g_strdup (address);
  qmp->framer = vms_qmp_framer_new (0);
  vms_qmp_set_timeout (qmp, timeout_ms);
  g_queue_init (&qmp->pending);
  g_queue_init (&qmp->events);
  return qmp;
}

/* Read the greeting and leave capabilities negotiation mode. */
static gboolean
handshake (VmsQmp *qmp, GError **error)
{
  gint64 deadline = deadline_after (qmp->timeout_ms);
  g_autoptr (JsonNode) result = NULL;

  while (!qmp->greeted)
    {
      if (!check_alive (qmp, error))
        return FALSE;
      if (!wait_condition (qmp, G_IO_IN, deadline))
        {
          g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_TIMEOUT,
                       "no QMP greeting from %s within %u ms (is another "
                       "client already connected to this monitor?)",
                       qmp->address, qmp->timeout_ms);
          return FALSE;
        }
      read_available (qmp);
    }
  if (!check_alive (qmp, error))
    return FALSE;
  result = vms_qmp_execute (qmp, "qmp_capabilities", NULL, error);
  return result != NULL;
}

VmsQmp *
vms_qmp_new_for_fd (int fd, guint timeout_ms, GError **error)
{
  g_autofree char *name = g_strdup_printf ("fd %d", fd);

  return vms_qmp_new_for_fd_named (fd, name, timeout_ms, error);
}

VmsQmp *
vms_qmp_new_for_fd_named (int fd, const char *name, guint timeout_ms,
                          GError **error)
{
  g_autoptr (GSocket) socket = NULL;
  g_autoptr (VmsQmp) qmp = NULL;
  g_autoptr (GError) socket_error = NULL;

  socket = g_socket_new_from_fd (fd, &socket_error);
  if (!socket)
    {
      close (fd);
      g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_CONNECT,
                   "cannot use %s as a QMP socket: %s", name,
                   socket_error->message);
      return NULL;
    }
  qmp = qmp_new (socket, name, timeout_ms);
  if (!handshake (qmp, error))
    return NULL;
  return g_steal_pointer (&qmp);
}

static GSocketConnectable *
parse_address (const char *address, GError **error)
{
  /* "qmp:" is how vmshift names a QEMU source on the command line. */
  if (g_str_has_prefix (address, "unix:") && address[5])
    return G_SOCKET_CONNECTABLE (g_unix_socket_address_new (address + 5));
  if (g_str_has_prefix (address, "qmp:") && address[4])
    return G_SOCKET_CONNECTABLE (g_unix_socket_address_new (address + 4));
  if (g_str_has_prefix (address, "tcp:"))
    {
      g_autoptr (GError) parse_error = NULL;
      GSocketConnectable *connectable
          = g_network_address_parse (address + 4, 0, &parse_error);

      if (!connectable || g_network_address_get_port (
                              G_NETWORK_ADDRESS (connectable)) == 0)
        {
          g_clear_object (&connectable);
          g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_INVALID_ARGUMENT,
                       "cannot parse QMP address '%s': want tcp:HOST:PORT",
                       address);
          return NULL;
        }
      return connectable;
    }
  if (strchr (address, '/'))
    return G_SOCKET_CONNECTABLE (g_unix_socket_address_new (address));
  g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_INVALID_ARGUMENT,
               "cannot parse QMP address '%s': use qmp:PATH, unix:PATH, "
               "tcp:HOST:PORT or a socket path containing '/'", address);
  return NULL;
}

VmsQmp *
vms_qmp_connect (const char *address, guint timeout_ms, GError **error)
{
  g_autoptr (GSocketConnectable) connectable = NULL;
  g_autoptr (GSocketClient) client = g_socket_client_new ();
  g_autoptr (GSocketConnection) connection = NULL;
  g_autoptr (GError) connect_error = NULL;
  g_autoptr (VmsQmp) qmp = NULL;
  guint timeout = timeout_ms ? timeout_ms : VMS_QMP_DEFAULT_TIMEOUT_MS;

  g_return_val_if_fail (address != NULL, NULL);
  connectable = parse_address (address, error);
  if (!connectable)
    return NULL;

  /* GSocketClient counts whole seconds; round up so a short timeout is not
   * zero, which would mean none. */
  g_socket_client_set_timeout (client, (timeout + 999) / 1000);
  connection = g_socket_client_connect (client, connectable, NULL,
                                        &connect_error);
  if (!connection)
    {
      g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_CONNECT,
                   "cannot connect to QMP at %s: %s", address,
                   connect_error->message);
      return NULL;
    }

  qmp = qmp_new (g_socket_connection_get_socket (connection), address,
                 timeout_ms);
  qmp->connection = g_steal_pointer (&connection);
  if (!handshake (qmp, error))
    return NULL;
  return g_steal_pointer (&qmp);
}
