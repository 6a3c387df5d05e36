/* Unit tests: the QMP client against a scripted peer on a socketpair.
 *
 * Real QEMU is exercised by the integration suite; these tests feed the
 * client what QEMU never sends on purpose (garbage, half messages, hang-ups
 * at bad moments) to prove it fails cleanly instead of crashing or hanging.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "vms-qmp.h"

#define GREETING                                                              \
  "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 3, \"minor\": 2, "          \
  "\"major\": 7}, \"package\": \"test peer\"}, \"capabilities\": []}}\r\n"

/* Long enough for a loaded CI machine, short enough to notice a hang. */
#define PEER_IO_TIMEOUT_S 10

typedef void (*PeerScript) (int fd);

typedef struct
{
  int fd;            /* the peer's end of the socketpair */
  PeerScript script; /* what the peer does */
} Peer;

static void
peer_send (int fd, const char *text)
{
  gsize length = strlen (text);

  while (length > 0)
    {
      ssize_t n = send (fd, text, length, MSG_NOSIGNAL);

      if (n <= 0)
        return; /* the client hung up; the test checks the client side */
      text += n;
      length -= n;
    }
}

/* Read one command line from the client; return its id (caller frees) and
 * command name, or NULL on EOF. */
static char *
peer_read_command (int fd, char **command_out)
{
  g_autoptr (GString) line = g_string_new (NULL);
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonObject *object;
  char c;

  while (recv (fd, &c, 1, 0) == 1)
    {
      if (c == '\n')
        break;
      g_string_append_c (line, c);
    }
  if (line->len == 0)
    return NULL;
  if (!json_parser_load_from_data (parser, line->str, line->len, NULL))
    return NULL;
  object = json_node_get_object (json_parser_get_root (parser));
  if (command_out)
    *command_out = g_strdup (json_object_get_string_member (object,
                                                            "execute"));
  return g_strdup (json_object_get_string_member (object, "id"));
}

static void
peer_reply (int fd, const char *id, const char *value)
{
  g_autofree char *text = g_strdup_printf ("{\"return\": %s, \"id\": \"%s\"}"
                                           "\r\n", value, id);

  peer_send (fd, text);
}

/* Greeting and capabilities negotiation, as QEMU does it. */
static void
peer_handshake (int fd)
{
  g_autofree char *command = NULL;
  g_autofree char *id = NULL;

  peer_send (fd, GREETING);
  id = peer_read_command (fd, &command);
  if (id && g_str_equal (command, "qmp_capabilities"))
    peer_reply (fd, id, "{}");
}

static gpointer
peer_thread (gpointer data)
{
  Peer *peer = data;
  struct timeval timeout = { .tv_sec = PEER_IO_TIMEOUT_S };

  setsockopt (peer->fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  peer->script (peer->fd);
  close (peer->fd);
  g_free (peer);
  return NULL;
}

/* Start a peer running script; return the client's end. */
static int
start_peer (PeerScript script, GThread **thread_out)
{
  int fds[2];
  Peer *peer = g_new0 (Peer, 1);

  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds),
                    0);
  peer->fd = fds[1];
  peer->script = script;
  *thread_out = g_thread_new ("qmp-peer", peer_thread, peer);
  return fds[0];
}

/* ---- the happy path ---- */

static void
script_event_during_command (int fd)
{
  g_autofree char *id = NULL;
  g_autofree char *command = NULL;

  peer_handshake (fd);
  id = peer_read_command (fd, &command);
  /* QEMU sends STOP before the reply to "stop". */
  peer_send (fd, "{\"timestamp\": {\"seconds\": 10, \"microseconds\": 5}, "
                 "\"event\": \"STOP\"}\r\n");
  peer_send (fd, "{\"event\": \"BLOCK_JOB_READY\", \"data\": {\"device\": "
                 "\"j0\"}, \"timestamp\": {\"seconds\": 11, "
                 "\"microseconds\": 0}}\r\n");
  peer_reply (fd, id, "{}");
  g_clear_pointer (&id, g_free);
  g_clear_pointer (&command, g_free);
  id = peer_read_command (fd, &command);
  peer_reply (fd, id, "{\"status\": \"paused\"}");
}

typedef struct
{
  guint calls;        /* events seen */
  char *last_event;   /* name of the last one */
  gint64 last_time;   /* its timestamp */
} EventLog;

static void
log_event (VmsQmp *qmp, const char *event, JsonObject *data,
           gint64 timestamp_us, gpointer user_data)
{
  EventLog *log = user_data;

  log->calls++;
  g_free (log->last_event);
  log->last_event = g_strdup (event);
  log->last_time = timestamp_us;
}

static void
test_events_delivered_during_command (void **state)
{
  GThread *thread;
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsQmp) qmp = NULL;
  g_autoptr (JsonNode) result = NULL;
  g_autoptr (JsonObject) data = NULL;
  g_autofree char *name = NULL;
  EventLog all = { 0 }, stops = { 0 };
  int major, minor, micro;
  gint64 timestamp;

  qmp = vms_qmp_new_for_fd (start_peer (script_event_during_command, &thread),
                            5000, &error);
  assert_non_null (qmp);
  vms_qmp_get_version (qmp, &major, &minor, &micro);
  assert_int_equal (major * 100 + minor * 10 + micro, 723);
  assert_string_equal (vms_qmp_get_package (qmp), "test peer");

  vms_qmp_subscribe (qmp, NULL, log_event, &all, NULL);
  vms_qmp_subscribe (qmp, "STOP", log_event, &stops, NULL);
  result = vms_qmp_execute (qmp, "stop", NULL, &error);
  assert_non_null (result);
  /* Both events arrived while "stop" was in flight. */
  assert_int_equal (all.calls, 2);
  assert_string_equal (all.last_event, "BLOCK_JOB_READY");
  assert_int_equal (stops.calls, 1);
  assert_int_equal (stops.last_time, 10 * G_USEC_PER_SEC + 5);

  /* They were also queued: a later wait finds them, in order, by name. */
  assert_true (vms_qmp_wait_event (qmp, "BLOCK_JOB_READY", 100, &data, &name,
                                   &timestamp, &error));
  assert_string_equal (name, "BLOCK_JOB_READY");
  assert_string_equal (json_object_get_string_member (data, "device"), "j0");
  g_clear_pointer (&name, g_free);
  assert_true (vms_qmp_wait_event (qmp, NULL, 100, NULL, &name, NULL, &error));
  assert_string_equal (name, "STOP");
  assert_false (vms_qmp_wait_event (qmp, NULL, 50, NULL, NULL, NULL, &error));
  assert_true (g_error_matches (error, VMS_QMP_ERROR, VMS_QMP_ERROR_TIMEOUT));
  g_clear_error (&error);

  g_clear_pointer (&result, json_node_unref);
  result = vms_qmp_execute (qmp, "query-status", NULL, &error);
  assert_non_null (result);
  assert_string_equal (json_object_get_string_member (
                           json_node_get_object (result), "status"),
                       "paused");
  g_thread_join (thread);
  g_free (all.last_event);
  g_free (stops.last_event);
}

/* A reply dribbled out one byte at a time is still one reply. */
static void
script_byte_by_byte (int fd)
{
  g_autofree char *id = NULL;
  g_autofree char *text = NULL;

  for (const char *p = GREETING; *p; p++)
    {
      char byte[2] = { *p, 0 };
      peer_send (fd, byte);
    }
  id = peer_read_command (fd, NULL);
  text = g_strdup_printf ("{\"return\": {}, \"id\": \"%s\"}\r\n", id);
  for (const char *p = text; *p; p++)
    {
      char byte[2] = { *p, 0 };

      peer_send (fd, byte);
      g_usleep (200);
    }
}

static void
test_split_reply (void **state)
{
  GThread *thread;
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsQmp) qmp = vms_qmp_new_for_fd (
      start_peer (script_byte_by_byte, &thread), 5000, &error);

  assert_non_null (qmp);
  g_thread_join (thread);
}

/* ---- bad peers ---- */

static void
script_garbage_greeting (int fd)
{
  peer_send (fd, "SSH-2.0-OpenSSH_9.2\r\n");
}

static void
script_json_not_qmp (int fd)
{
  peer_send (fd, "{\"jsonrpc\": \"2.0\", \"result\": 1}\r\n");
}

static void
script_event_before_greeting (int fd)
{
  peer_send (fd, "{\"event\": \"STOP\"}\r\n");
}

static void
script_silent (int fd)
{
  char c;

  /* Like a second client queued behind the first on QEMU's monitor. */
  while (recv (fd, &c, 1, 0) == 1)
    ;
}

static void
script_close_mid_greeting (int fd)
{
  peer_send (fd, "{\"QMP\": {\"version\": ");
}

static void
assert_handshake_fails (PeerScript script, VmsQmpError code,
                        const char *needle)
{
  GThread *thread;
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsQmp) qmp = vms_qmp_new_for_fd (start_peer (script, &thread),
                                               300, &error);

  assert_null (qmp);
  assert_non_null (error);
  if (!g_error_matches (error, VMS_QMP_ERROR, code)
      || !strstr (error->message, needle))
    fail_msg ("unexpected error %d '%s' (want %d, '%s')", error->code,
              error->message, code, needle);
  g_thread_join (thread);
}

static void
test_garbage_instead_of_greeting (void **state)
{
  assert_handshake_fails (script_garbage_greeting, VMS_QMP_ERROR_PROTOCOL,
                          "expected '{'");
}

static void
test_json_that_is_not_qmp (void **state)
{
  assert_handshake_fails (script_json_not_qmp, VMS_QMP_ERROR_PROTOCOL,
                          "none of return, error, event or QMP");
}

static void
test_event_before_greeting (void **state)
{
  assert_handshake_fails (script_event_before_greeting,
                          VMS_QMP_ERROR_PROTOCOL, "QMP greeting");
}

static void
test_no_greeting_times_out (void **state)
{
  assert_handshake_fails (script_silent, VMS_QMP_ERROR_TIMEOUT,
                          "another client");
}

static void
test_close_mid_greeting (void **state)
{
  assert_handshake_fails (script_close_mid_greeting,
                          VMS_QMP_ERROR_DISCONNECTED,
                          "in the middle of a message");
}

static void
script_close_mid_command (int fd)
{
  peer_handshake (fd);
  g_free (peer_read_command (fd, NULL));
  peer_send (fd, "{\"return\": {\"sta");
}

static void
test_close_mid_command (void **state)
{
  GThread *thread;
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsQmp) qmp = vms_qmp_new_for_fd (
      start_peer (script_close_mid_command, &thread), 5000, &error);
  g_autoptr (JsonNode) result = NULL;
  gint64 start = g_get_monotonic_time ();

  assert_non_null (qmp);
  result = vms_qmp_execute (qmp, "query-status", NULL, &error);
  assert_null (result);
  assert_true (g_error_matches (error, VMS_QMP_ERROR,
                                VMS_QMP_ERROR_DISCONNECTED));
  /* Noticed at once, not after the 5 s timeout. */
  assert_true (g_get_monotonic_time () - start < 2 * G_USEC_PER_SEC);
  assert_false (vms_qmp_is_connected (qmp));

  /* Every later call fails the same way without touching the socket. */
  g_clear_error (&error);
  assert_null (vms_qmp_execute (qmp, "query-status", NULL, &error));
  assert_true (g_error_matches (error, VMS_QMP_ERROR,
                                VMS_QMP_ERROR_DISCONNECTED));
  g_clear_error (&error);
  assert_false (vms_qmp_wait_event (qmp, "STOP", 1000, NULL, NULL, NULL,
                                    &error));
  assert_true (g_error_matches (error, VMS_QMP_ERROR,
                                VMS_QMP_ERROR_DISCONNECTED));
  g_thread_join (thread);
}

static void
script_garbage_mid_session (int fd)
{
  peer_handshake (fd);
  g_free (peer_read_command (fd, NULL));
  peer_send (fd, "{\"return\": {}}\r\n\x01\x02\x03");
  g_usleep (500 * 1000);
}

static void
test_garbage_after_reply (void **state)
{
  GThread *thread;
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsQmp) qmp = vms_qmp_new_for_fd (
      start_peer (script_garbage_mid_session, &thread), 5000, &error);
  g_autoptr (JsonNode) result = NULL;

  assert_non_null (qmp);
  /* The reply before the garbage is good (no id: goes to the oldest). */
  result = vms_qmp_execute (qmp, "query-status", NULL, &error);
  assert_non_null (result);
  assert_false (vms_qmp_poll (qmp, &error));
  assert_true (g_error_matches (error, VMS_QMP_ERROR, VMS_QMP_ERROR_PROTOCOL));
  assert_non_null (strstr (error->message, "byte 0x01"));
  g_thread_join (thread);
}

/* A reply that comes after its command timed out must not be taken for the
 * reply to the next command. */
static void
script_late_reply (int fd)
{
  g_autofree char *first = NULL;
  g_autofree char *second = NULL;

  peer_handshake (fd);
  first = peer_read_command (fd, NULL);
  g_usleep (400 * 1000);
  peer_reply (fd, first, "\"late\"");
  second = peer_read_command (fd, NULL);
  peer_reply (fd, second, "\"fresh\"");
}

static void
test_late_reply_is_dropped (void **state)
{
  GThread *thread;
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsQmp) qmp = vms_qmp_new_for_fd (
      start_peer (script_late_reply, &thread), 5000, &error);
  g_autoptr (JsonNode) result = NULL;

  assert_non_null (qmp);
  vms_qmp_set_timeout (qmp, 100);
  assert_null (vms_qmp_execute (qmp, "query-status", NULL, &error));
  assert_true (g_error_matches (error, VMS_QMP_ERROR, VMS_QMP_ERROR_TIMEOUT));
  assert_non_null (strstr (error->message, "query-status"));
  g_clear_error (&error);

  vms_qmp_set_timeout (qmp, 5000);
  result = vms_qmp_execute (qmp, "query-name", NULL, &error);
  assert_non_null (result);
  assert_string_equal (json_node_get_string (result), "fresh");
  g_thread_join (thread);
}

static void
script_error_reply (int fd)
{
  g_autofree char *id = NULL;
  g_autofree char *text = NULL;

  peer_handshake (fd);
  id = peer_read_command (fd, NULL);
  text = g_strdup_printf ("{\"error\": {\"class\": \"DeviceNotFound\", "
                          "\"desc\": \"Device 'vd9' not found\"}, "
                          "\"id\": \"%s\"}\r\n", id);
  peer_send (fd, text);
}

static void
test_error_reply (void **state)
{
  GThread *thread;
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsQmp) qmp = vms_qmp_new_for_fd (
      start_peer (script_error_reply, &thread), 5000, &error);

  assert_non_null (qmp);
  assert_null (vms_qmp_execute_json (qmp, "block_resize",
                                     "{\"device\": \"vd9\", \"size\": 1}",
                                     &error));
  assert_true (g_error_matches (error, VMS_QMP_ERROR,
                                VMS_QMP_ERROR_DEVICE_NOT_FOUND));
  assert_string_equal (error->message, "Device 'vd9' not found");
  /* An error reply does not break the connection. */
  assert_true (vms_qmp_is_connected (qmp));
  g_thread_join (thread);
}

/* An event callback may itself run a command and unsubscribe itself. */
static void
script_reentrant (int fd)
{
  g_autofree char *first = NULL;
  g_autofree char *second = NULL;

  peer_handshake (fd);
  first = peer_read_command (fd, NULL);
  peer_send (fd, "{\"event\": \"RESET\", \"data\": {}}\r\n");
  second = peer_read_command (fd, NULL);
  peer_reply (fd, second, "\"inner\"");
  peer_reply (fd, first, "\"outer\"");
}

typedef struct
{
  guint subscription; /* our own subscription, to drop */
  char *inner;        /* what the command in the callback returned */
} Reentrant;

static void
run_command_from_callback (VmsQmp *qmp, const char *event, JsonObject *data,
                           gint64 timestamp_us, gpointer user_data)
{
  Reentrant *reentrant = user_data;
  g_autoptr (JsonNode) result = vms_qmp_execute (qmp, "query-name", NULL,
                                                 NULL);

  vms_qmp_unsubscribe (qmp, reentrant->subscription);
  if (result)
    reentrant->inner = json_node_dup_string (result);
}

static void
test_reentrant_callback (void **state)
{
  GThread *thread;
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsQmp) qmp = vms_qmp_new_for_fd (
      start_peer (script_reentrant, &thread), 5000, &error);
  g_autoptr (JsonNode) result = NULL;
  Reentrant reentrant = { 0 };

  assert_non_null (qmp);
  reentrant.subscription = vms_qmp_subscribe (qmp, "RESET",
                                              run_command_from_callback,
                                              &reentrant, NULL);
  result = vms_qmp_execute (qmp, "system_reset", NULL, &error);
  assert_non_null (result);
  assert_string_equal (json_node_get_string (result), "outer");
  assert_string_equal (reentrant.inner, "inner");
  g_free (reentrant.inner);
  g_thread_join (thread);
}

static void
test_bad_addresses (void **state)
{
  static const struct
  {
    const char *address; /* what a user typed */
    VmsQmpError code;    /* what they must get */
  } cases[] = {
    { "monitor", VMS_QMP_ERROR_INVALID_ARGUMENT },
    { "tcp:localhost", VMS_QMP_ERROR_INVALID_ARGUMENT },
    { "tcp:", VMS_QMP_ERROR_INVALID_ARGUMENT },
    { "unix:", VMS_QMP_ERROR_INVALID_ARGUMENT },
    { "/nonexistent/vmshift/qmp.sock", VMS_QMP_ERROR_CONNECT },
    { "qmp:/nonexistent/vmshift/qmp.sock", VMS_QMP_ERROR_CONNECT },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (VmsQmp) qmp = vms_qmp_connect (cases[i].address, 1000,
                                                &error);

      assert_null (qmp);
      if (!g_error_matches (error, VMS_QMP_ERROR, cases[i].code))
        fail_msg ("'%s': unexpected error '%s'", cases[i].address,
                  error ? error->message : "(none)");
      assert_non_null (strstr (error->message, cases[i].address));
    }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_events_delivered_during_command),
    cmocka_unit_test (test_split_reply),
    cmocka_unit_test (test_garbage_instead_of_greeting),
    cmocka_unit_test (test_json_that_is_not_qmp),
    cmocka_unit_test (test_event_before_greeting),
    cmocka_unit_test (test_no_greeting_times_out),
    cmocka_unit_test (test_close_mid_greeting),
    cmocka_unit_test (test_close_mid_command),
    cmocka_unit_test (test_garbage_after_reply),
    cmocka_unit_test (test_late_reply_is_dropped),
    cmocka_unit_test (test_error_reply),
    cmocka_unit_test (test_reentrant_callback),
    cmocka_unit_test (test_bad_addresses),
  };

  return cmocka_run_group_tests_name ("qmp-client", tests, NULL, NULL);
}
