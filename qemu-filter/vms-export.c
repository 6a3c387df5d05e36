/* vmshift qemu-filter: read-only NBD exports of the source's disks.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#define _GNU_SOURCE /* struct ucred */

#include "vms-export.h"
#include "vms-qemu-reply.h"

#include <errno.h>
#include <gio/gio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* QEMU 7.2's texts for the two states of its one NBD server; both are
 * GenericError, and 7.2 has no query-nbd-server to ask instead. */
#define ALREADY_RUNNING_TEXT "NBD server already running"
#define NOT_RUNNING_TEXT "NBD server not running"

/* How long the probe of a running server's socket may take.  QEMU answers
 * a new NBD client at once; a socket nobody serves refuses at once. */
#define PROBE_TIMEOUT_MS 5000

/* How long an export may take to go after block-export-del.  With mode
 * "hard" QEMU cancels client requests and drops the connections, which
 * takes milliseconds; a guest I/O stuck in the image is the only wait. */
#define EXPORT_DELETE_TIMEOUT_MS 30000

/* Between looks at query-block-exports while waiting for the deletion
 * event, in case the event went to another waiter. */
#define EXPORT_POLL_INTERVAL_MS 1000

/* NBD newstyle handshake (NBD protocol, "Newstyle negotiation"). */
#define NBD_GREETING_MAGIC "NBDMAGIC"
#define NBD_OPTION_MAGIC "IHAVEOPT"
#define NBD_GREETING_SIZE 18 /* two magics and 16 bits of server flags */
#define NBD_FLAG_FIXED_NEWSTYLE 0x1
#define NBD_FLAG_NO_ZEROES 0x2
#define NBD_OPT_ABORT 2
#define NBD_OPTION_REPLY_SIZE 20 /* magic, option, type, length */

static gboolean
full_io (int fd, gboolean writing, void *buffer, gsize length)
{
  guint8 *p = buffer;

  while (length > 0)
    {
      gssize n = writing ? send (fd, p, length, MSG_NOSIGNAL)
                         : recv (fd, p, length, 0);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          if (n == 0)
            errno = ECONNRESET;
          return FALSE;
        }
      p += n;
      length -= n;
    }
  return TRUE;
}

/* The process at the other end of a unix socket, or 0 when unknown (TCP,
 * or credentials not available). */
static pid_t
peer_pid (int fd)
{
  struct ucred credentials = { 0 };
  socklen_t length = sizeof credentials;

  if (getsockopt (fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0)
    return 0;
  return credentials.pid;
}

/* Read the NBD greeting and say goodbye (NBD_OPT_ABORT) so that QEMU logs
 * no failed negotiation. */
static gboolean
nbd_hello_goodbye (int fd, const char *path, GError **error)
{
  guint8 greeting[NBD_GREETING_SIZE];
  guint8 reply[NBD_OPTION_REPLY_SIZE];
  guint8 goodbye[4 + 16];
  guint32 flags, value;

  if (!full_io (fd, FALSE, greeting, sizeof greeting))
    {
      int saved_errno = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   "%s accepts connections but sends no NBD greeting: %s", path,
                   g_strerror (saved_errno));
      return FALSE;
    }
  if (memcmp (greeting, NBD_GREETING_MAGIC, 8) != 0
      || memcmp (greeting + 8, NBD_OPTION_MAGIC, 8) != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s is not a newstyle NBD server", path);
      return FALSE;
    }
  flags = ((greeting[16] << 8) | greeting[17])
          & (NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
  value = GUINT32_TO_BE (flags);
  memcpy (goodbye, &value, 4);
  memcpy (goodbye + 4, NBD_OPTION_MAGIC, 8);
  value = GUINT32_TO_BE (NBD_OPT_ABORT);
  memcpy (goodbye + 12, &value, 4);
  memset (goodbye + 16, 0, 4);
  /* The server's acknowledgement is read only so that QEMU does not write
   * into a closed socket; whether it comes does not matter. */
  if (full_io (fd, TRUE, goodbye, sizeof goodbye))
    full_io (fd, FALSE, reply, sizeof reply);
  return TRUE;
}

/* Whether the NBD server QEMU says is running serves socket_path: the
 * socket accepts a connection, speaks NBD, and (when both ends are unix
 * sockets, so the kernel tells) belongs to the same process as the QMP
 * connection.  7.2 cannot tell us the server's address itself. */
static gboolean
check_running_server (VmsQmp *qmp, const char *socket_path, GError **error)
{
  struct sockaddr_un address = { .sun_family = AF_UNIX };
  struct timeval timeout = { .tv_sec = PROBE_TIMEOUT_MS / 1000,
                             .tv_usec = PROBE_TIMEOUT_MS % 1000 * 1000 };
  pid_t qemu_pid, server_pid;
  int fd, saved_errno;
  gboolean ok;

  if (strlen (socket_path) >= sizeof address.sun_path)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FILENAME_TOO_LONG,
                   "socket path is longer than %zu bytes",
                   sizeof address.sun_path - 1);
      return FALSE;
    }
  strcpy (address.sun_path, socket_path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    {
      saved_errno = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   "socket: %s", g_strerror (saved_errno));
      return FALSE;
    }
  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  if (connect (fd, (struct sockaddr *)&address, sizeof address) != 0)
    {
      saved_errno = errno;
      close (fd);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY,
                   "QEMU's NBD server is already running, but not on this "
                   "socket (connecting to it: %s); someone else started it: "
                   "use its socket, or stop it with nbd-server-stop",
                   g_strerror (saved_errno));
      return FALSE;
    }
  server_pid = peer_pid (fd);
  qemu_pid = peer_pid (vms_qmp_get_fd (qmp));
  /* Through libvirt the monitor's peer is our own bridge thread, not
   * QEMU: then only the socket's answering as NBD below tells. */
  if (qemu_pid == getpid ())
    qemu_pid = -1;
  if (server_pid > 0 && qemu_pid > 0 && server_pid != qemu_pid)
    {
      close (fd);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY,
                   "QEMU's NBD server is already running, but not on this "
                   "socket: process %ld serves it, QEMU is process %ld",
                   (long)server_pid, (long)qemu_pid);
      return FALSE;
    }
  ok = nbd_hello_goodbye (fd, socket_path, error);
  close (fd);
  return ok;
}

gboolean
vms_export_server_start (VmsQmp *qmp, const char *socket_path, GError **error)
{
  g_autoptr (JsonObject) arguments = json_object_new ();
  g_autoptr (JsonObject) address = json_object_new ();
  g_autoptr (JsonObject) data = json_object_new ();
  g_autoptr (JsonNode) reply = NULL;
  g_autoptr (GError) start_error = NULL;

  json_object_set_string_member (data, "path", socket_path);
  json_object_set_string_member (address, "type", "unix");
  json_object_set_object_member (address, "data", g_steal_pointer (&data));
  json_object_set_object_member (arguments, "addr", g_steal_pointer (&address));
  reply = vms_qmp_execute (qmp, "nbd-server-start", arguments, &start_error);
  if (reply)
    return TRUE;
  if (!vms_reply_error_says (start_error, ALREADY_RUNNING_TEXT))
    {
      g_propagate_prefixed_error (
          error, g_steal_pointer (&start_error),
          "starting QEMU's NBD server on %s: ", socket_path);
      return FALSE;
    }
  if (!check_running_server (qmp, socket_path, error))
    {
      g_prefix_error (error, "starting QEMU's NBD server on %s: ", socket_path);
      return FALSE;
    }
  return TRUE;
}

gboolean
vms_export_server_serves (VmsQmp *qmp, const char *socket_path, GError **error)
{
  return check_running_server (qmp, socket_path, error);
}

gboolean
vms_export_server_stop (VmsQmp *qmp, GError **error)
{
  g_autoptr (JsonNode) reply = NULL;
  g_autoptr (GError) stop_error = NULL;

  reply = vms_qmp_execute (qmp, "nbd-server-stop", NULL, &stop_error);
  if (reply || vms_reply_error_says (stop_error, NOT_RUNNING_TEXT))
    return TRUE;
  g_propagate_prefixed_error (error, g_steal_pointer (&stop_error),
                              "stopping QEMU's NBD server: ");
  return FALSE;
}

/* Whether block export id exists, and whether QEMU is already deleting
 * it. */
static gboolean
find_export (VmsQmp *qmp, const char *id, gboolean *found,
             gboolean *shutting_down, GError **error)
{
  static const char command[] = "query-block-exports";
  g_autoptr (JsonNode) reply = vms_qmp_execute (qmp, command, NULL, error);
  JsonArray *exports;

  *found = *shutting_down = FALSE;
  if (!reply || !(exports = vms_reply_array (reply, command, error)))
    return FALSE;
  for (guint i = 0; i < json_array_get_length (exports); i++)
    {
      JsonObject *export = vms_reply_array_object (exports, i, command, error);
      const char *export_id;

      if (!export
          || !vms_reply_string (export, "id", command, &export_id, error))
        return FALSE;
      if (g_str_equal (export_id, id))
        {
          *found = TRUE;
          return vms_reply_bool (export, "shutting-down", command,
                                 shutting_down, error);
        }
    }
  return TRUE;
}

/* Forget queued BLOCK_EXPORT_DELETED events.  They are about exports that
 * are gone (nbd-server-stop deletes every export, and nobody waits for
 * those); one left for the id about to be deleted would otherwise end the
 * wait for the new deletion early. */
static void
drop_queued_deletions (VmsQmp *qmp)
{
  for (;;)
    {
      g_autoptr (GError) error = NULL;

      if (!vms_qmp_wait_event (qmp, "BLOCK_EXPORT_DELETED", 0, NULL, NULL, NULL,
                               &error))
        return;
    }
}

static gboolean
wait_deleted (VmsQmp *qmp, const char *id, GError **error)
{
  gint64 deadline
      = g_get_monotonic_time () + EXPORT_DELETE_TIMEOUT_MS * (gint64)1000;

  for (;;)
    {
      gint64 remaining_ms = (deadline - g_get_monotonic_time ()) / 1000;
      g_autoptr (JsonObject) data = NULL;
      g_autoptr (GError) wait_error = NULL;
      gboolean found, shutting_down;

      if (vms_qmp_wait_event (qmp, "BLOCK_EXPORT_DELETED",
                              CLAMP (remaining_ms, 0, EXPORT_POLL_INTERVAL_MS),
                              &data, NULL, NULL, &wait_error))
        {
          /* Another export's deletion: nobody is waiting for it. */
          if (data
              && g_strcmp0 (json_object_get_string_member_with_default (
                                data, "id", NULL),
                            id)
                     == 0)
            return TRUE;
          continue;
        }
      if (!g_error_matches (wait_error, VMS_QMP_ERROR, VMS_QMP_ERROR_TIMEOUT))
        {
          g_propagate_error (error, g_steal_pointer (&wait_error));
          return FALSE;
        }
      /* QEMU drops the export from the list before it sends the event, so
       * an absent export is deleted even if its event went elsewhere. */
      if (!find_export (qmp, id, &found, &shutting_down, error))
        return FALSE;
      if (!found)
        return TRUE;
      if (remaining_ms <= 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                       "QEMU still has not deleted it %d ms after "
                       "block-export-del (an NBD client request stuck?)",
                       EXPORT_DELETE_TIMEOUT_MS);
          return FALSE;
        }
    }
}

static gboolean
remove_export (VmsQmp *qmp, const char *id, GError **error)
{
  g_autoptr (JsonObject) arguments = json_object_new ();
  g_autoptr (JsonNode) reply = NULL;
  gboolean found, shutting_down;

  if (!find_export (qmp, id, &found, &shutting_down, error))
    return FALSE;
  if (!found)
    return TRUE;
  /* Already being deleted (by an earlier call that gave up waiting):
   * another block-export-del would fail, the wait is all that is left. */
  if (!shutting_down)
    {
      drop_queued_deletions (qmp);
      json_object_set_string_member (arguments, "id", id);
      /* "hard": a client still connected is a reader that outlived its
       * round; QEMU's default ("safe") refuses with "export still in use"
       * while it is connected, and the bitmap stays busy meanwhile. */
      json_object_set_string_member (arguments, "mode", "hard");
      reply = vms_qmp_execute (qmp, "block-export-del", arguments, error);
      if (!reply)
        return FALSE;
    }
  return wait_deleted (qmp, id, error);
}

gboolean
vms_export_remove (VmsQmp *qmp, const char *export_name, GError **error)
{
  if (!remove_export (qmp, export_name, error))
    {
      g_prefix_error (error, "removing export '%s': ", export_name);
      return FALSE;
    }
  return TRUE;
}

static gboolean
add_export (VmsQmp *qmp, const char *node, const char *export_name,
            const char *bitmap_name, GError **error)
{
  g_autoptr (JsonObject) arguments = json_object_new ();
  g_autoptr (JsonNode) reply = NULL;
  gboolean found, shutting_down;

  if (!find_export (qmp, export_name, &found, &shutting_down, error))
    return FALSE;
  if (found && !remove_export (qmp, export_name, error))
    {
      g_prefix_error (error, "replacing the existing export: ");
      return FALSE;
    }
  json_object_set_string_member (arguments, "type", "nbd");
  json_object_set_string_member (arguments, "id", export_name);
  json_object_set_string_member (arguments, "node-name", node);
  json_object_set_string_member (arguments, "name", export_name);
  json_object_set_boolean_member (arguments, "writable", FALSE);
  if (bitmap_name)
    {
      JsonArray *bitmaps = json_array_new ();

      json_array_add_string_element (bitmaps, bitmap_name);
      json_object_set_array_member (arguments, "bitmaps", bitmaps);
    }
  reply = vms_qmp_execute (qmp, "block-export-add", arguments, error);
  return reply != NULL;
}

gboolean
vms_export_add (VmsQmp *qmp, const char *node, const char *export_name,
                const char *bitmap_name, GError **error)
{
  if (!add_export (qmp, node, export_name, bitmap_name, error))
    {
      if (bitmap_name)
        g_prefix_error (error,
                        "exporting node '%s' as '%s' with bitmap '%s': ", node,
                        export_name, bitmap_name);
      else
        g_prefix_error (error, "exporting node '%s' as '%s': ", node,
                        export_name);
      return FALSE;
    }
  return TRUE;
}
