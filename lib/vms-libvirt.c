/* vmshift: libvirt connections, domains, and QMP through libvirt.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The QMP bridge lets everything written for a QMP socket (bitmaps,
 * exports, mirrors, the copy engine's setup) run unchanged on a domain
 * libvirt owns: VmsQmp talks to one end of a socket pair, and a thread on
 * the other end speaks QMP back, passing each command to
 * virDomainQemuMonitorCommand and each QEMU event libvirt relays into the
 * stream.  QEMU serves only one monitor and libvirt holds it, so this is
 * the only way in.
 */
#include "vms-libvirt.h"
#include "vms-qmp-framer.h"

#include <errno.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>
#include <sys/socket.h>
#include <unistd.h>

/* libvirt's keepalive: a daemon that misses this many 5 s probes is
 * gone, and calls fail instead of hanging. */
#define KEEPALIVE_INTERVAL_S 5
#define KEEPALIVE_COUNT 3

/* The macro makes a string of the quark name: keep it whole. */
/* clang-format off */
G_DEFINE_QUARK (vms-libvirt-error-quark, vms_libvirt_error)
/* clang-format on */

/* ---- errors ---- */

static void
ignore_libvirt_error (void *data, virErrorPtr error)
{
  /* libvirt prints every error to stderr by default; ours carry them in
   * GErrors with context instead. */
}

void
vms_libvirt_set_error (GError **error, VmsLibvirtError code, const char *format,
                       ...)
{
  g_autofree char *message = NULL;
  const char *libvirt_message = virGetLastErrorMessage ();
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, VMS_LIBVIRT_ERROR, code, "%s: %s", message,
               libvirt_message ? libvirt_message : "unknown libvirt error");
}

/* ---- the event loop ---- */

static gpointer
run_event_loop (gpointer data)
{
  for (;;)
    if (virEventRunDefaultImpl () < 0)
      g_usleep (100 * 1000);
  return NULL;
}

gboolean
vms_libvirt_init (GError **error)
{
  static gsize initialised;
  static gboolean ok;

  if (g_once_init_enter (&initialised))
    {
      ok = virInitialize () == 0 && virEventRegisterDefaultImpl () == 0;
      if (ok)
        {
          virSetErrorFunc (NULL, ignore_libvirt_error);
          g_thread_unref (
              g_thread_new ("libvirt-events", run_event_loop, NULL));
        }
      g_once_init_leave (&initialised, 1);
    }
  if (!ok)
    vms_libvirt_set_error (error, VMS_LIBVIRT_ERROR_FAILED,
                           "initialising libvirt");
  return ok;
}

/* ---- connections and domains ---- */

virConnectPtr
vms_libvirt_connect (const char *uri, GError **error)
{
  virConnectPtr connection;
  unsigned long version = 0;

  if (!vms_libvirt_init (error))
    return NULL;
  connection = virConnectOpenAuth (uri, virConnectAuthPtrDefault, 0);
  if (!connection)
    {
      vms_libvirt_set_error (error, VMS_LIBVIRT_ERROR_CONNECT,
                             "cannot connect to libvirt at %s",
                             uri ? uri : "the default URI");
      return NULL;
    }
  /* A local connection has no keepalive; that is fine. */
  virConnectSetKeepAlive (connection, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT);
  if (virConnectGetLibVersion (connection, &version) < 0)
    {
      vms_libvirt_set_error (error, VMS_LIBVIRT_ERROR_FAILED,
                             "asking libvirt at %s for its version",
                             uri ? uri : "the default URI");
      virConnectClose (connection);
      return NULL;
    }
  if (version < VMS_LIBVIRT_MIN_VERSION)
    {
      g_set_error (error, VMS_LIBVIRT_ERROR, VMS_LIBVIRT_ERROR_VERSION,
                   "libvirt at %s is version %lu.%lu.%lu; vmshift needs "
                   "%lu.%lu.%lu or newer (for -blockdev node names)",
                   uri ? uri : "the default URI", version / 1000000,
                   version / 1000 % 1000, version % 1000,
                   VMS_LIBVIRT_MIN_VERSION / 1000000,
                   VMS_LIBVIRT_MIN_VERSION / 1000 % 1000,
                   VMS_LIBVIRT_MIN_VERSION % 1000);
      virConnectClose (connection);
      return NULL;
    }
  return connection;
}

virDomainPtr
vms_libvirt_lookup (virConnectPtr connection, const char *name, GError **error)
{
  virDomainPtr domain = virDomainLookupByName (connection, name);
  g_autofree char *uri = NULL;
  g_autofree char *message = NULL;
  int code = VIR_ERR_NO_DOMAIN;
  guint64 id;

  /* Every libvirt call clears the thread's last error: keep it now. */
  if (!domain && virGetLastError ())
    {
      code = virGetLastError ()->code;
      message = g_strdup (virGetLastErrorMessage ());
    }
  if (!domain && code == VIR_ERR_NO_DOMAIN && g_uuid_string_is_valid (name))
    domain = virDomainLookupByUUIDString (connection, name);
  if (!domain && code == VIR_ERR_NO_DOMAIN
      && g_ascii_string_to_unsigned (name, 10, 0, G_MAXINT, &id, NULL))
    domain = virDomainLookupByID (connection, (int)id);
  if (domain)
    return domain;
  uri = virConnectGetURI (connection);
  if (code == VIR_ERR_NO_DOMAIN)
    g_set_error (error, VMS_LIBVIRT_ERROR, VMS_LIBVIRT_ERROR_NO_DOMAIN,
                 "domain '%s' not found on %s ('virsh -c %s list --all' "
                 "lists the domains there)",
                 name, uri ? uri : "libvirt", uri ? uri : "URI");
  else
    g_set_error (error, VMS_LIBVIRT_ERROR, VMS_LIBVIRT_ERROR_FAILED,
                 "looking up domain '%s' on %s: %s", name,
                 uri ? uri : "libvirt", message ? message : "unknown error");
  return NULL;
}

const char *
vms_libvirt_state_name (int state)
{
  switch (state)
    {
    case VIR_DOMAIN_RUNNING:
      return "running";
    case VIR_DOMAIN_BLOCKED:
      return "idle";
    case VIR_DOMAIN_PAUSED:
      return "paused";
    case VIR_DOMAIN_SHUTDOWN:
      return "in shutdown";
    case VIR_DOMAIN_SHUTOFF:
      return "shut off";
    case VIR_DOMAIN_CRASHED:
      return "crashed";
    case VIR_DOMAIN_PMSUSPENDED:
      return "pmsuspended";
    default:
      return "no state";
    }
}

/* ---- QMP through libvirt ---- */

typedef struct
{
  virDomainPtr domain; /* a reference of our own */
  char *name;          /* for messages */
  GMutex write_lock;   /* replies and events share the stream */
  int fd;              /* our end of the pair; -1 once closed */
  int callback_id;     /* monitor event registration, -1 if none */
} Bridge;

static void
bridge_clear (Bridge *bridge)
{
  if (bridge->fd >= 0)
    close (bridge->fd);
  virDomainFree (bridge->domain);
  g_free (bridge->name);
  g_mutex_clear (&bridge->write_lock);
}

static void
bridge_unref (gpointer data)
{
  g_atomic_rc_box_release_full (data, (GDestroyNotify)bridge_clear);
}

/* Write one message and its CRLF whole; FALSE once the client is gone. */
static gboolean
bridge_send (Bridge *bridge, JsonNode *message)
{
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autofree char *text = NULL;
  g_autofree char *line = NULL;
  gsize length, done = 0;
  gboolean ok = TRUE;

  json_generator_set_root (generator, message);
  text = json_generator_to_data (generator, NULL);
  line = g_strconcat (text, "\r\n", NULL);
  length = strlen (line);
  g_mutex_lock (&bridge->write_lock);
  while (ok && done < length)
    {
      ssize_t n = bridge->fd < 0 ? -1
                                 : send (bridge->fd, line + done, length - done,
                                         MSG_NOSIGNAL);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        ok = FALSE;
      else
        done += n;
    }
  g_mutex_unlock (&bridge->write_lock);
  return ok;
}

static void
on_monitor_event (virConnectPtr connection, virDomainPtr domain,
                  const char *event, long long seconds, unsigned int micros,
                  const char *details, void *opaque)
{
  Bridge *bridge = opaque;
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonNode) message = NULL;

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "event");
  json_builder_add_string_value (builder, event);
  if (details)
    {
      g_autoptr (JsonParser) parser = json_parser_new_immutable ();

      if (json_parser_load_from_data (parser, details, -1, NULL)
          && json_parser_get_root (parser))
        {
          json_builder_set_member_name (builder, "data");
          json_builder_add_value (
              builder, json_node_copy (json_parser_get_root (parser)));
        }
    }
  json_builder_set_member_name (builder, "timestamp");
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "seconds");
  json_builder_add_int_value (builder, seconds);
  json_builder_set_member_name (builder, "microseconds");
  json_builder_add_int_value (builder, micros);
  json_builder_end_object (builder);
  json_builder_end_object (builder);
  message = json_builder_get_root (builder);
  bridge_send (bridge, message);
}

/* A reply {"error": {"class": "GenericError", "desc": ...}} for a command
 * libvirt could not pass on. */
static JsonNode *
error_reply (const char *description, JsonNode *id)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "error");
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "class");
  json_builder_add_string_value (builder, "GenericError");
  json_builder_set_member_name (builder, "desc");
  json_builder_add_string_value (builder, description);
  json_builder_end_object (builder);
  if (id)
    {
      json_builder_set_member_name (builder, "id");
      json_builder_add_value (builder, json_node_copy (id));
    }
  json_builder_end_object (builder);
  return json_builder_get_root (builder);
}

/* Run one command in QEMU through libvirt.  Returns the reply to send, or
 * NULL when the domain is gone and the stream must end. */
static JsonNode *
run_command (Bridge *bridge, JsonObject *command)
{
  JsonNode *id = json_object_get_member (command, "id");
  const char *name
      = json_object_get_string_member_with_default (command, "execute", NULL);
  g_autoptr (JsonObject) forwarded = json_object_new ();
  g_autoptr (JsonNode) forwarded_node = json_node_new (JSON_NODE_OBJECT);
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  g_autofree char *text = NULL;
  g_autofree char *result = NULL;
  JsonNode *reply;

  if (!name)
    return error_reply ("QMP input lacks member 'execute'", id);
  /* libvirt negotiated capabilities long ago. */
  if (g_str_equal (name, "qmp_capabilities"))
    {
      reply = json_from_string ("{\"return\": {}}", NULL);
      if (id)
        json_object_set_member (json_node_get_object (reply), "id",
                                json_node_copy (id));
      return reply;
    }
  json_object_set_string_member (forwarded, "execute", name);
  if (json_object_has_member (command, "arguments"))
    json_object_set_member (
        forwarded, "arguments",
        json_node_copy (json_object_get_member (command, "arguments")));
  json_node_set_object (forwarded_node, forwarded);
  json_generator_set_root (generator, forwarded_node);
  text = json_generator_to_data (generator, NULL);
  if (virDomainQemuMonitorCommand (bridge->domain, text, &result, 0) < 0)
    {
      virErrorPtr last = virGetLastError ();
      g_autofree char *description = g_strdup_printf (
          "libvirt could not pass '%s' to domain %s: %s", name, bridge->name,
          last && last->message ? last->message : "unknown error");

      /* The domain stopped, or libvirt went away: like a QMP socket that
       * closed. */
      if (!last || last->code == VIR_ERR_NO_DOMAIN
          || last->code == VIR_ERR_OPERATION_INVALID
          || virConnectIsAlive (virDomainGetConnect (bridge->domain)) != 1)
        return NULL;
      return error_reply (description, id);
    }
  if (!json_parser_load_from_data (parser, result, -1, NULL)
      || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    return error_reply ("libvirt returned a reply that is not a JSON object",
                        id);
  reply = json_node_copy (json_parser_get_root (parser));
  /* libvirt's own id means nothing to the client. */
  if (id)
    json_object_set_member (json_node_get_object (reply), "id",
                            json_node_copy (id));
  else
    json_object_remove_member (json_node_get_object (reply), "id");
  return reply;
}

static gpointer
run_bridge (gpointer data)
{
  Bridge *bridge = data;
  g_autoptr (VmsQmpFramer) framer = vms_qmp_framer_new (0);
  char buffer[65536];
  gboolean open = TRUE;

  while (open)
    {
      ssize_t n = read (bridge->fd, buffer, sizeof buffer);
      char *text;
      gsize length;

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0 || !vms_qmp_framer_feed (framer, buffer, n, NULL))
        break;
      while (open && (text = vms_qmp_framer_pop (framer, &length)))
        {
          g_autoptr (JsonParser) parser = json_parser_new_immutable ();
          g_autoptr (JsonNode) reply = NULL;

          if (json_parser_load_from_data (parser, text, length, NULL)
              && JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
            reply = run_command (
                bridge, json_node_get_object (json_parser_get_root (parser)));
          else
            reply = error_reply ("QMP input is not a JSON object", NULL);
          g_free (text);
          open = reply && bridge_send (bridge, reply);
        }
    }
  if (bridge->callback_id >= 0)
    virConnectDomainQemuMonitorEventDeregister (
        virDomainGetConnect (bridge->domain), bridge->callback_id);
  /* The client sees the stream end, as when QEMU exits. */
  g_mutex_lock (&bridge->write_lock);
  shutdown (bridge->fd, SHUT_RDWR);
  g_mutex_unlock (&bridge->write_lock);
  bridge_unref (bridge);
  return NULL;
}

/* The greeting QEMU would send, with its real version. */
static gboolean
send_greeting (Bridge *bridge, GError **error)
{
  g_autofree char *result = NULL;
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  g_autoptr (JsonNode) greeting = NULL;
  JsonObject *reply;

  if (virDomainQemuMonitorCommand (
          bridge->domain, "{\"execute\": \"query-version\"}", &result, 0)
      < 0)
    {
      virErrorPtr last = virGetLastError ();

      vms_libvirt_set_error (error,
                             last && last->code == VIR_ERR_OPERATION_INVALID
                                 ? VMS_LIBVIRT_ERROR_NOT_RUNNING
                                 : VMS_LIBVIRT_ERROR_FAILED,
                             "domain %s: reaching its QEMU monitor through "
                             "libvirt",
                             bridge->name);
      return FALSE;
    }
  if (!json_parser_load_from_data (parser, result, -1, NULL)
      || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser))
      || !(reply = json_node_get_object (json_parser_get_root (parser)))
      || !json_object_has_member (reply, "return"))
    {
      g_set_error (error, VMS_LIBVIRT_ERROR, VMS_LIBVIRT_ERROR_FAILED,
                   "domain %s: query-version through libvirt gave no "
                   "version: %s",
                   bridge->name, result);
      return FALSE;
    }
  {
    g_autoptr (JsonObject) qmp = json_object_new ();
    g_autoptr (JsonObject) root = json_object_new ();

    json_object_set_member (
        qmp, "version",
        json_node_copy (json_object_get_member (reply, "return")));
    json_object_set_array_member (qmp, "capabilities", json_array_new ());
    json_object_set_object_member (root, "QMP", g_steal_pointer (&qmp));
    greeting = json_node_new (JSON_NODE_OBJECT);
    json_node_set_object (greeting, root);
  }
  if (!bridge_send (bridge, greeting))
    {
      g_set_error (error, VMS_LIBVIRT_ERROR, VMS_LIBVIRT_ERROR_FAILED,
                   "domain %s: the QMP bridge closed at once", bridge->name);
      return FALSE;
    }
  return TRUE;
}

VmsQmp *
vms_libvirt_qmp_open (virDomainPtr domain, GError **error)
{
  int pair[2];
  Bridge *bridge;
  g_autofree char *address = NULL;

  if (!vms_libvirt_init (error))
    return NULL;
  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno),
                   "socketpair: %s", g_strerror (errno));
      return NULL;
    }
  bridge = g_atomic_rc_box_new0 (Bridge);
  g_mutex_init (&bridge->write_lock);
  bridge->fd = pair[1];
  bridge->callback_id = -1;
  virDomainRef (domain);
  bridge->domain = domain;
  bridge->name = g_strdup (virDomainGetName (domain));
  address = g_strdup_printf ("libvirt domain %s", bridge->name);
  if (!send_greeting (bridge, error))
    {
      close (pair[0]);
      bridge_unref (bridge);
      return NULL;
    }
  /* One reference for the event callback, dropped by libvirt when it is
   * deregistered; one for the thread. */
  bridge->callback_id = virConnectDomainQemuMonitorEventRegister (
      virDomainGetConnect (domain), domain, NULL, on_monitor_event,
      g_atomic_rc_box_acquire (bridge), bridge_unref, 0);
  if (bridge->callback_id < 0)
    {
      vms_libvirt_set_error (error, VMS_LIBVIRT_ERROR_FAILED,
                             "domain %s: subscribing to QEMU events",
                             bridge->name);
      /* The callback's reference is left: whether libvirt already freed it
       * on this failure is not documented, and a leak beats a double free. */
      close (pair[0]);
      bridge_unref (bridge);
      return NULL;
    }
  g_thread_unref (g_thread_new ("libvirt-qmp", run_bridge, bridge));
  return vms_qmp_new_for_fd_named (pair[0], address, 0, error);
}
