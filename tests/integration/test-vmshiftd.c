/* Integration tests: vmshiftd, the real daemon over HTTP (libsoup's
 * client): requests it must refuse, events posted to its stream, and a
 * plan submitted, run and followed on the event stream, migrating a
 * real QEMU (TCG) to a real sink; one aborted and run again; jobs and
 * estimates over HTTP and vmshift --server; its database lost and
 * rebuilt.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-test-command.h"
#include "vms-test-sink.h"
#include "vms-test-vm.h"
#include "vms-test-x509.h"
#include "vms-test.h"
#include "vms-estimate-file.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>
#include <signal.h>
#include <string.h>

#define DISK_SIZE (32 * 1024 * 1024)

static const char *vmshiftd;
static const char *vmshift;

typedef struct
{
  VmsTestSink *sink;
  char *state_dir;
  VmsTestCommand *daemon;
  char *url; /* http://127.0.0.1:PORT/ */
  char *token;
  SoupSession *session;
  VmsTestVm *source;
  VmsTestVm *dest;
} Fixture;

/* ---- the daemon and requests ---- */

static void
start_daemon (Fixture *fixture)
{
  const char *argv[] = { vmshiftd,      "--listen",         "127.0.0.1:0",
                         "--state-dir", fixture->state_dir, NULL };
  g_autofree char *token_file
      = g_build_filename (fixture->state_dir, "vmshiftd.token", NULL);
  g_autofree char *token = NULL;
  const char *at;

  fixture->daemon = vms_test_command_start (NULL, argv, fixture->state_dir);
  vms_test_command_wait_for (fixture->daemon, "listening on http://", 30000);
  at = strstr (fixture->daemon->out->str, "http://");
  fixture->url = g_strndup (at, strcspn (at, "\n"));
  assert_true (g_file_get_contents (token_file, &token, NULL, NULL));
  fixture->token = g_strndup (token, strcspn (token, "\n"));
}

/* method path with body (or NULL) and token (NULL: none); the status,
 * and *reply the JSON body when there is one. */
static guint
request (Fixture *fixture, const char *method, const char *path,
         const char *body, const char *token, JsonObject **reply)
{
  g_autofree char *uri = g_strconcat (fixture->url, path + 1, NULL);
  g_autoptr (SoupMessage) msg = soup_message_new (method, uri);
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) answer = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  gsize length;
  const char *data;

  assert_non_null (msg);
  if (token)
    {
      g_autofree char *header = g_strconcat ("Bearer ", token, NULL);

      soup_message_headers_replace (soup_message_get_request_headers (msg),
                                    "Authorization", header);
    }
  if (body)
    {
      g_autoptr (GBytes) bytes = g_bytes_new (body, strlen (body));

      soup_message_set_request_body_from_bytes (msg, "text/plain", bytes);
    }
  answer = soup_session_send_and_read (fixture->session, msg, NULL, &error);
  vms_assert_ok (answer, error);
  data = g_bytes_get_data (answer, &length);
  if (reply)
    {
      *reply = NULL;
      if (length && json_parser_load_from_data (parser, data, length, NULL)
          && JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
        *reply = json_object_ref (
            json_node_get_object (json_parser_get_root (parser)));
    }
  return soup_message_get_status (msg);
}

static guint
call (Fixture *fixture, const char *method, const char *path, const char *body,
      JsonObject **reply)
{
  return request (fixture, method, path, body, fixture->token, reply);
}

/* The event stream, opened. */
typedef struct
{
  SoupMessage *msg;
  GInputStream *body;
  GDataInputStream *lines;
} Stream;

static void
stream_open (Fixture *fixture, Stream *stream)
{
  g_autofree char *uri = g_strconcat (fixture->url, "api/v1/events", NULL);
  g_autofree char *header = g_strconcat ("Bearer ", fixture->token, NULL);
  g_autoptr (GError) error = NULL;

  stream->msg = soup_message_new ("GET", uri);
  soup_message_headers_replace (soup_message_get_request_headers (stream->msg),
                                "Authorization", header);
  stream->body
      = soup_session_send (fixture->session, stream->msg, NULL, &error);
  vms_assert_ok (stream->body, error);
  assert_int_equal (soup_message_get_status (stream->msg), 200);
  stream->lines = g_data_input_stream_new (stream->body);
}

static void
stream_close (Stream *stream)
{
  g_clear_object (&stream->lines);
  g_clear_object (&stream->body);
  g_clear_object (&stream->msg);
}

/* The next event named event whose data holds needle (NULL: any); its
 * object (caller unrefs).  Fails the test if the stream ends. */
static JsonObject *
stream_wait (Stream *stream, const char *event, const char *needle)
{
  g_autofree char *wanted = g_strconcat ("event: ", event, NULL);
  gboolean named = FALSE;

  for (;;)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char *line = g_data_input_stream_read_line_utf8 (
          stream->lines, NULL, NULL, &error);

      if (!line)
        fail_msg ("the event stream ended before %s: %s", event,
                  error ? error->message : "closed");
      if (g_str_has_prefix (line, "event: "))
        named = g_str_equal (line, wanted);
      else if (named && g_str_has_prefix (line, "data: ")
               && (!needle || strstr (line, needle)))
        {
          g_autoptr (JsonParser) parser = json_parser_new ();

          assert_true (json_parser_load_from_data (parser, line + 6, -1, NULL));
          return json_object_ref (
              json_node_get_object (json_parser_get_root (parser)));
        }
    }
}

/* The next event on the stream, whatever its name (*event, caller
 * frees), as its object (caller unrefs). */
static JsonObject *
stream_next (Stream *stream, char **event)
{
  *event = NULL;
  for (;;)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char *line = g_data_input_stream_read_line_utf8 (
          stream->lines, NULL, NULL, &error);

      if (!line)
        fail_msg ("the event stream ended: %s",
                  error ? error->message : "closed");
      if (g_str_has_prefix (line, "event: "))
        {
          g_free (*event);
          *event = g_strdup (line + strlen ("event: "));
        }
      else if (g_str_has_prefix (line, "data: "))
        {
          g_autoptr (JsonParser) parser = json_parser_new ();

          assert_non_null (*event);
          assert_true (json_parser_load_from_data (parser, line + 6, -1, NULL));
          return json_object_ref (
              json_node_get_object (json_parser_get_root (parser)));
        }
    }
}

/* ---- the VM ---- */

static VmsTestVm *
start_source (GError **error)
{
  VmsTestVmOptions options = {
    .workload = "writer",
    .extra_cmdline = "vms.write_rate_kib=256 vms.write_span_mib=8",
    .memory_mib = 96,
    .disks = { { "raw", DISK_SIZE } },
    .second_qmp = TRUE,
    .name = "web",
  };
  VmsTestVm *vm = vms_test_vm_start (&options, error);

  if (!vm || !vms_test_vm_wait_ready (vm, error)
      || !vms_test_vm_qemu_io (vm, "vd0", "write -P 0x5a 4M 8M", error))
    g_clear_pointer (&vm, vms_test_vm_free);
  return vm;
}

static VmsTestVm *
start_destination (Fixture *fixture, GError **error)
{
  g_autofree char *path = vms_test_sink_replica_path (fixture->sink, "web-vd0");
  VmsTestVmOptions options = {
    .workload = "writer",
    .extra_cmdline = "vms.write_rate_kib=256 vms.write_span_mib=8",
    .memory_mib = 96,
    .disks = { { "raw", 0, path } },
    .incoming = TRUE,
    .start_paused = TRUE,
    .second_qmp = TRUE,
  };

  vms_test_sink_create_replica (fixture->sink, "web-vd0", DISK_SIZE);
  return vms_test_vm_start (&options, error);
}

/* The plan of the fixture's VM; bandwidth (or NULL) slows its copy. */
static char *
plan_text (Fixture *fixture, const char *bandwidth)
{
  g_autofree char *sink = vms_test_sink_uri (fixture->sink, "");

  return g_strdup_printf (
      "[plan]\nsink = %s\nsuspend = true\nfinal-sync = pause\n%s%s%s"
      "[vm web]\nsource = qmp:%s\ndest-qmp = qmp:%s\n"
      "dest-uri = unix:%s/memory.sock\n",
      sink, bandwidth ? "bandwidth = " : "", bandwidth ? bandwidth : "",
      bandwidth ? "\n" : "", fixture->source->qmp2_path,
      fixture->dest->qmp2_path, fixture->dest->dir);
}

/* ---- fixtures ---- */

static int
setup (void **state)
{
  Fixture *fixture = g_new0 (Fixture, 1);

  *state = fixture;
  fixture->sink = vms_test_sink_setup (NULL);
  if (!fixture->sink)
    return -1;
  fixture->state_dir = g_build_filename (fixture->sink->dir, "state", NULL);
  g_mkdir (fixture->state_dir, 0700);
  fixture->session = soup_session_new ();
  start_daemon (fixture);
  return 0;
}

static int
setup_vm (void **state)
{
  Fixture *fixture;
  g_autoptr (GError) error = NULL;

  if (setup (state) < 0)
    return -1;
  fixture = *state;
  if (!(fixture->source = start_source (&error))
      || !(fixture->dest = start_destination (fixture, &error)))
    {
      print_error ("cannot start the VMs: %s\n", error->message);
      return -1;
    }
  return 0;
}

static int
teardown (void **state)
{
  Fixture *fixture = *state;

  vms_test_command_free (fixture->daemon);
  g_clear_pointer (&fixture->source, vms_test_vm_free);
  g_clear_pointer (&fixture->dest, vms_test_vm_free);
  g_clear_object (&fixture->session);
  vms_test_sink_free (fixture->sink);
  g_free (fixture->state_dir);
  g_free (fixture->url);
  g_free (fixture->token);
  g_free (fixture);
  return 0;
}

/* ---- tests ---- */

/* Unauthenticated, malformed and oversized requests are refused with
 * their status, and nothing is kept. */
static void
test_refusals (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *plans_dir
      = g_build_filename (fixture->state_dir, "plans", NULL);
  g_autofree char *kept = g_build_filename (plans_dir, "p.plan", NULL);
  g_autofree char *big = g_strnfill (2 * 1024 * 1024, '#');
  g_autofree char *elsewhere = g_strdup_printf (
      "[plan]\nsink = nbd+unix:///?socket=/s\nstate-dir = /tmp\n"
      "[vm a]\nsource = qmp:/a.qmp\ndest-qmp = qmp:/b.qmp\n"
      "dest-uri = unix:/m\n");
  const char *two_vms = "[plan]\nsink = nbd+unix:///?socket=/s\n"
                        "[vm a]\nsource = qmp:/a.qmp\ndest-qmp = qmp:/b.qmp\n"
                        "dest-uri = unix:/m\n"
                        "[vm b]\nsource = qmp:/c.qmp\ndest-qmp = qmp:/d.qmp\n"
                        "dest-uri = unix:/n\n";
  JsonObject *reply = NULL;

  assert_int_equal (
      request (fixture, "GET", "/api/v1/plans", NULL, NULL, &reply), 401);
  g_clear_pointer (&reply, json_object_unref);
  assert_int_equal (request (fixture, "PUT", "/api/v1/plans/p", "[plan]\n",
                             "not-the-token-at-all", &reply),
                    401);
  g_clear_pointer (&reply, json_object_unref);
  assert_false (g_file_test (kept, G_FILE_TEST_EXISTS));
  assert_int_equal (call (fixture, "PUT", "/api/v1/plans/p", "junk", &reply),
                    400);
  assert_non_null (
      strstr (json_object_get_string_member (reply, "error"), "plan p: "));
  g_clear_pointer (&reply, json_object_unref);
  assert_false (g_file_test (kept, G_FILE_TEST_EXISTS));
  assert_int_equal (call (fixture, "PUT", "/api/v1/plans/p", elsewhere, &reply),
                    400);
  g_clear_pointer (&reply, json_object_unref);
  assert_false (g_file_test (kept, G_FILE_TEST_EXISTS));
  assert_int_equal (call (fixture, "PUT", "/api/v1/plans/-p", "x", &reply),
                    400);
  g_clear_pointer (&reply, json_object_unref);
  assert_int_equal (call (fixture, "PUT", "/api/v1/plans/p", big, &reply), 413);
  g_clear_pointer (&reply, json_object_unref);
  assert_int_equal (call (fixture, "GET", "/api/v1/plans/nope", NULL, &reply),
                    404);
  g_clear_pointer (&reply, json_object_unref);
  assert_int_equal (
      call (fixture, "POST", "/api/v1/plans/nope/run", NULL, &reply), 404);
  g_clear_pointer (&reply, json_object_unref);
  assert_int_equal (call (fixture, "GET", "/api/v1/jobs/..%2F..%2Fetc%2Fpasswd",
                          NULL, &reply),
                    400);
  g_clear_pointer (&reply, json_object_unref);
  assert_int_equal (call (fixture, "DELETE", "/api/v1/jobs", NULL, &reply),
                    405);
  g_clear_pointer (&reply, json_object_unref);
  /* A job is a plan of one VM. */
  assert_int_equal (call (fixture, "POST", "/api/v1/jobs", two_vms, &reply),
                    400);
  assert_non_null (strstr (json_object_get_string_member (reply, "error"),
                           "this one has 2"));
  g_clear_pointer (&reply, json_object_unref);
  assert_int_equal (call (fixture, "POST", "/api/v1/jobs", "junk", &reply),
                    400);
  g_clear_pointer (&reply, json_object_unref);
  assert_int_equal (
      call (fixture, "POST", "/api/v1/jobs/nope/abort", NULL, &reply), 404);
  g_clear_pointer (&reply, json_object_unref);
  assert_int_equal (
      call (fixture, "POST", "/api/v1/jobs/nope/resume", NULL, &reply), 404);
  g_clear_pointer (&reply, json_object_unref);
  assert_int_equal (
      call (fixture, "POST", "/api/v1/jobs/nope/erase", NULL, &reply), 404);
  g_clear_pointer (&reply, json_object_unref);
  assert_int_equal (call (fixture, "GET", "/api/v1/plans", NULL, &reply), 200);
  assert_int_equal (
      json_array_get_length (json_object_get_array_member (reply, "plans")), 0);
  g_clear_pointer (&reply, json_object_unref);
}

/* A plan put, run and followed on the event stream to its end: the VM
 * moved, its disk identical, the plan's and the job's state say so. */
static void
test_plan_over_http (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *plan = plan_text (fixture, NULL);
  g_autofree char *replica
      = vms_test_sink_replica_path (fixture->sink, "web-vd0");
  g_autoptr (JsonObject) ended = NULL;
  g_autoptr (JsonObject) vm_end = NULL;
  g_autoptr (JsonObject) progress = NULL;
  JsonObject *reply = NULL;
  Stream stream = { 0 };

  assert_int_equal (call (fixture, "PUT", "/api/v1/plans/one", plan, &reply),
                    201);
  assert_int_equal (json_object_get_int_member (reply, "vm-count"), 1);
  g_clear_pointer (&reply, json_object_unref);
  stream_open (fixture, &stream);
  assert_int_equal (
      call (fixture, "POST", "/api/v1/plans/one/run", NULL, &reply), 202);
  g_clear_pointer (&reply, json_object_unref);
  /* A second run of it while it runs is refused. */
  assert_int_equal (
      call (fixture, "POST", "/api/v1/plans/one/run", NULL, &reply), 409);
  g_clear_pointer (&reply, json_object_unref);
  /* The copy's progress crosses too (at most once a second per pass). */
  progress = stream_wait (&stream, "progress", "\"vm\":\"web\"");
  assert_true (json_object_has_member (progress, "disk"));
  vm_end = stream_wait (&stream, "plan-vm", "\"vm\":\"web\"");
  assert_string_equal (json_object_get_string_member (vm_end, "outcome"),
                       "migrated");
  assert_string_equal (json_object_get_string_member (vm_end, "plan"), "one");
  ended = stream_wait (&stream, "plan-run-ended", NULL);
  assert_true (json_object_get_boolean_member (ended, "ok"));
  stream_close (&stream);
  vms_test_assert_identical (fixture->source->disk_paths[0], "raw", replica);

  assert_int_equal (call (fixture, "GET", "/api/v1/plans/one", NULL, &reply),
                    200);
  assert_int_equal (json_object_get_int_member (reply, "migrated"), 1);
  assert_false (json_object_get_boolean_member (reply, "running"));
  g_clear_pointer (&reply, json_object_unref);
  assert_int_equal (call (fixture, "GET", "/api/v1/jobs/web", NULL, &reply),
                    200);
  assert_string_equal (json_object_get_string_member (reply, "phase"),
                       "migrated");
  g_clear_pointer (&reply, json_object_unref);
  assert_int_equal (call (fixture, "GET", "/api/v1/jobs", NULL, &reply), 200);
  assert_int_equal (
      json_array_get_length (json_object_get_array_member (reply, "jobs")), 1);
  g_clear_pointer (&reply, json_object_unref);
}

/* Aborted over HTTP while its disk copies: the source runs on, the job
 * is rolled back; run again, it resumes and moves the VM. */
static void
test_abort_then_run_again (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *plan = plan_text (fixture, "2M");
  g_autofree char *faster = plan_text (fixture, NULL);
  g_autoptr (JsonObject) copying = NULL;
  g_autoptr (JsonObject) ended = NULL;
  g_autoptr (JsonObject) again = NULL;
  g_autoptr (JsonObject) started = NULL;
  g_autoptr (GError) error = NULL;
  JsonObject *reply = NULL;
  Stream stream = { 0 };
  guint64 beat;
  g_autofree char *needle = NULL;

  assert_int_equal (call (fixture, "PUT", "/api/v1/plans/slow", plan, &reply),
                    201);
  g_clear_pointer (&reply, json_object_unref);
  stream_open (fixture, &stream);
  assert_int_equal (
      call (fixture, "POST", "/api/v1/plans/slow/run", NULL, &reply), 202);
  g_clear_pointer (&reply, json_object_unref);
  copying = stream_wait (&stream, "state", "\"state\":\"background\"");
  assert_int_equal (
      call (fixture, "POST", "/api/v1/plans/slow/abort", NULL, &reply), 202);
  g_clear_pointer (&reply, json_object_unref);
  ended = stream_wait (&stream, "plan-run-ended", NULL);
  assert_false (json_object_get_boolean_member (ended, "ok"));
  beat = vms_test_vm_last_heartbeat (fixture->source);
  needle = g_strdup_printf ("vms-heartbeat %" G_GUINT64_FORMAT, beat + 2);
  vms_assert_ok (
      vms_test_vm_wait_serial (fixture->source, needle, 60000, &error), error);
  assert_int_equal (
      call (fixture, "POST", "/api/v1/plans/slow/abort", NULL, &reply), 409);
  g_clear_pointer (&reply, json_object_unref);

  /* At full speed now; the job is resumed, not started anew. */
  assert_int_equal (call (fixture, "PUT", "/api/v1/plans/slow", faster, &reply),
                    200);
  g_clear_pointer (&reply, json_object_unref);
  assert_int_equal (
      call (fixture, "POST", "/api/v1/plans/slow/run", NULL, &reply), 202);
  g_clear_pointer (&reply, json_object_unref);
  started = stream_wait (&stream, "plan-vm-start", "\"vm\":\"web\"");
  assert_true (json_object_get_boolean_member (started, "resume"));
  again = stream_wait (&stream, "plan-run-ended", NULL);
  assert_true (json_object_get_boolean_member (again, "ok"));
  stream_close (&stream);
}

/* ---- vmshift --server ---- */

/* vmshift with args and the options that send it to the fixture's
 * vmshiftd, started. */
static VmsTestCommand *
start_client (Fixture *fixture, const char *const *args)
{
  g_autofree char *token_file
      = g_build_filename (fixture->state_dir, "vmshiftd.token", NULL);
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();

  g_ptr_array_add (argv, (char *)vmshift);
  for (guint i = 0; args[i]; i++)
    g_ptr_array_add (argv, (char *)args[i]);
  g_ptr_array_add (argv, "--server");
  g_ptr_array_add (argv, fixture->url);
  g_ptr_array_add (argv, "--token-file");
  g_ptr_array_add (argv, token_file);
  g_ptr_array_add (argv, NULL);
  return vms_test_command_start (NULL, (const char *const *)argv->pdata,
                                 fixture->state_dir);
}

/* Run to its end: its exit status. */
static int
run_client (Fixture *fixture, const char *const *args)
{
  g_autoptr (VmsTestCommand) client = start_client (fixture, args);

  return vms_test_command_wait (client);
}

/* vmshift migrate --server: the migration runs in vmshiftd as a job,
 * followed by the client as a local run is (its JSON events); aborted
 * from another vmshift --server, it rolls back with the source running;
 * submitted again at full speed, the job resumes and the VM moves, disk
 * identical; job list and plan status --server say so. */
static void
test_cli_server (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *sink = vms_test_sink_uri (fixture->sink, "");
  g_autofree char *source
      = g_strconcat ("qmp:", fixture->source->qmp2_path, NULL);
  g_autofree char *dest_qmp
      = g_strconcat ("qmp:", fixture->dest->qmp2_path, NULL);
  g_autofree char *dest_uri
      = g_strdup_printf ("unix:%s/memory.sock", fixture->dest->dir);
  g_autofree char *replica
      = vms_test_sink_replica_path (fixture->sink, "web-vd0");
  const char *slow[]
      = { "migrate",    "--job",       "web",        source,
          "--dest-qmp", dest_qmp,      "--dest-uri", dest_uri,
          "--sink",     sink,          "--suspend",  "--final-sync",
          "pause",      "--bandwidth", "2M",         "--json",
          NULL };
  const char *fast[]
      = { "migrate",   "--job",        "web",    source,   "--dest-qmp",
          dest_qmp,    "--dest-uri",   dest_uri, "--sink", sink,
          "--suspend", "--final-sync", "pause",  "--json", NULL };
  const char *abort_web[] = { "abort", "web", NULL };
  const char *not_for_server[]
      = { "migrate", "--job", "web", "--rounds", "3", source, NULL };
  const char *resume[] = { "migrate", "--resume", "web", NULL };
  const char *list[] = { "job", "list", "--json", NULL };
  const char *status[] = { "plan", "status", "web", NULL };
  g_autoptr (VmsTestCommand) slow_client = NULL;
  g_autoptr (VmsTestCommand) fast_client = NULL;
  g_autoptr (VmsTestCommand) lister = NULL;
  g_autoptr (VmsTestCommand) shower = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *needle = NULL;
  JsonObject *reply = NULL;
  JsonObject *event;

  /* What a plan cannot say is refused before anything is sent. */
  assert_int_equal (run_client (fixture, not_for_server), 2);
  assert_int_equal (call (fixture, "GET", "/api/v1/jobs/web", NULL, &reply),
                    404);
  g_clear_pointer (&reply, json_object_unref);

  slow_client = start_client (fixture, slow);
  vms_test_command_wait_for (slow_client, "\"state\":\"background\"", 60000);
  assert_int_equal (run_client (fixture, abort_web), 0);
  /* The client sees its run end, not well. */
  assert_int_equal (vms_test_command_wait (slow_client), 1);
  event = vms_test_command_last_event (slow_client, "plan-run-ended", NULL);
  assert_non_null (event);
  g_clear_pointer (&event, json_object_unref);
  assert_int_equal (call (fixture, "GET", "/api/v1/jobs/web", NULL, &reply),
                    200);
  assert_string_equal (json_object_get_string_member (reply, "phase"),
                       "rolled-back");
  g_clear_pointer (&reply, json_object_unref);
  needle = g_strdup_printf ("vms-heartbeat %" G_GUINT64_FORMAT,
                            vms_test_vm_last_heartbeat (fixture->source) + 2);
  vms_assert_ok (
      vms_test_vm_wait_serial (fixture->source, needle, 60000, &error), error);

  fast_client = start_client (fixture, fast);
  assert_int_equal (vms_test_command_wait (fast_client), 0);
  event = vms_test_command_last_event (fast_client, "plan-vm-start", NULL);
  assert_non_null (event);
  assert_true (json_object_get_boolean_member (event, "resume"));
  g_clear_pointer (&event, json_object_unref);
  event = vms_test_command_last_event (fast_client, "plan-vm", NULL);
  assert_non_null (event);
  assert_string_equal (json_object_get_string_member (event, "outcome"),
                       "migrated");
  g_clear_pointer (&event, json_object_unref);
  vms_test_assert_identical (fixture->source->disk_paths[0], "raw", replica);
  /* Migrated: nothing to resume. */
  assert_int_equal (run_client (fixture, resume), 1);

  lister = start_client (fixture, list);
  assert_int_equal (vms_test_command_wait (lister), 0);
  assert_non_null (strstr (lister->out->str, "\"phase\" : \"migrated\""));
  shower = start_client (fixture, status);
  assert_int_equal (vms_test_command_wait (shower), 0);
  assert_non_null (strstr (shower->out->str, "1 of 1 VMs migrated"));
}

/* ---- estimates ---- */

/* vmshift estimate --server: vmshiftd observes the VM and predicts its
 * migration, kept in its state directory; the client prints the same
 * "estimate" event a local run prints.  Requests it cannot run are 400;
 * one aborted over HTTP ends, not well, and its client says so. */
static void
test_estimate_over_http (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *sink = vms_test_sink_uri (fixture->sink, "");
  g_autofree char *source
      = g_strconcat ("qmp:", fixture->source->qmp2_path, NULL);
  g_autofree char *zero_window = g_strdup_printf (
      "{\"sink\": \"%s\", \"sources\": [\"%s\"], \"window-s\": 0}", sink,
      source);
  g_autofree char *stranger = g_strdup_printf (
      "{\"sink\": \"%s\", \"sources\": [\"%s\"], \"state-dir\": \"/\"}", sink,
      source);
  g_autofree char *kept
      = g_build_filename (fixture->state_dir, "estimate-e1.json", NULL);
  const char *quick[] = { "estimate",   source, "--sink",          sink,
                          "--id",       "e1",   "--window",        "4",
                          "--interval", "2",    "--probe-seconds", "0.3",
                          "--json",     NULL };
  const char *long_one[] = { "estimate", source,     "--sink", sink,     "--id",
                             "e2",       "--window", "600",    "--json", NULL };
  const char *refused[]
      = { "estimate", source, "--sink", sink, "--granularity", "64K", NULL };
  g_autoptr (VmsTestCommand) client = NULL;
  g_autoptr (VmsTestCommand) waiting = NULL;
  g_autoptr (JsonObject) result = NULL;
  g_autoptr (JsonObject) ended = NULL;
  JsonObject *reply = NULL;
  JsonObject *estimate;

  assert_int_equal (call (fixture, "POST", "/api/v1/estimates", "junk", &reply),
                    400);
  g_clear_pointer (&reply, json_object_unref);
  assert_int_equal (
      call (fixture, "POST", "/api/v1/estimates", "{\"sources\": []}", &reply),
      400);
  g_clear_pointer (&reply, json_object_unref);
  assert_int_equal (
      call (fixture, "POST", "/api/v1/estimates", zero_window, &reply), 400);
  assert_non_null (
      strstr (json_object_get_string_member (reply, "error"), "window-s"));
  g_clear_pointer (&reply, json_object_unref);
  assert_int_equal (
      call (fixture, "POST", "/api/v1/estimates", stranger, &reply), 400);
  g_clear_pointer (&reply, json_object_unref);
  assert_int_equal (
      call (fixture, "POST", "/api/v1/estimates/nope/abort", NULL, &reply),
      404);
  g_clear_pointer (&reply, json_object_unref);
  assert_int_equal (run_client (fixture, refused), 2);

  client = start_client (fixture, quick);
  assert_int_equal (vms_test_command_wait (client), 0);
  result = vms_test_command_last_event (client, "estimate", NULL);
  assert_non_null (result);
  estimate = json_object_get_object_member (result, "estimate");
  assert_string_equal (json_object_get_string_member (estimate, "id"), "e1");
  assert_int_equal (
      json_array_get_length (json_object_get_array_member (estimate, "vms")),
      1);
  assert_true (g_file_test (kept, G_FILE_TEST_EXISTS));

  waiting = start_client (fixture, long_one);
  vms_test_command_wait_for (waiting, "\"event\":\"sample\"", 60000);
  assert_int_equal (
      call (fixture, "POST", "/api/v1/estimates/e2/abort", NULL, &reply), 202);
  g_clear_pointer (&reply, json_object_unref);
  assert_int_equal (vms_test_command_wait (waiting), 1);
  ended = vms_test_command_last_event (waiting, "estimate-run-ended", NULL);
  assert_non_null (ended);
  assert_false (json_object_get_boolean_member (ended, "ok"));
}

/* Off loopback only over TLS: plain HTTP there is refused at the start;
 * with a certificate the API answers over HTTPS to a client that trusts
 * its CA, and a client that does not is refused by TLS. */
static void
test_tls (void **state)
{
  Fixture *fixture = *state;
  const char *const names[] = { "IP:127.0.0.1", NULL };
  const char *plain[] = { vmshiftd,      "--listen",         "0.0.0.0:0",
                          "--state-dir", fixture->state_dir, NULL };
  g_auto (VmsTestRun) refused = { 0 };
  g_autoptr (GError) error = NULL;
  g_autofree char *openssl = g_find_program_in_path ("openssl");
  g_autofree char *dir = NULL;
  g_autofree char *cert = NULL, *key = NULL, *ca = NULL;
  g_autoptr (GTlsDatabase) trust = NULL;
  g_autoptr (SoupSession) untrusting = NULL;
  JsonObject *reply = NULL;

  vms_test_run_capturev (&refused, NULL, NULL, plain);
  assert_int_equal (refused.status, 2);
  assert_non_null (strstr (refused.err, "is off loopback: give "
                                        "--tls-certificate"));
  if (!openssl)
    vms_test_skip ("openssl missing (Debian package openssl)");
  dir = vms_test_x509_make (names, &error);
  vms_assert_ok (dir, error);
  cert = g_build_filename (dir, "server-cert.pem", NULL);
  key = g_build_filename (dir, "server-key.pem", NULL);
  ca = g_build_filename (dir, "ca-cert.pem", NULL);
  vms_test_command_free (fixture->daemon);
  g_clear_pointer (&fixture->url, g_free);
  {
    const char *argv[]
        = { vmshiftd,      "--listen",         "127.0.0.1:0",
            "--state-dir", fixture->state_dir, "--tls-certificate",
            cert,          "--tls-key",        key,
            NULL };
    const char *at;

    fixture->daemon = vms_test_command_start (NULL, argv, fixture->state_dir);
    vms_test_command_wait_for (fixture->daemon, "listening on https://", 30000);
    at = strstr (fixture->daemon->out->str, "https://");
    fixture->url = g_strndup (at, strcspn (at, "\n"));
  }
  trust = g_tls_file_database_new (ca, &error);
  vms_assert_ok (trust, error);
  g_object_set (fixture->session, "tls-database", trust, NULL);
  assert_int_equal (call (fixture, "GET", "/api/v1/plans", NULL, &reply), 200);
  g_clear_pointer (&reply, json_object_unref);
  untrusting = soup_session_new ();
  {
    g_autofree char *uri = g_strconcat (fixture->url, "api/v1/plans", NULL);
    g_autoptr (SoupMessage) msg = soup_message_new ("GET", uri);
    g_autoptr (GBytes) answer
        = soup_session_send_and_read (untrusting, msg, NULL, &error);

    assert_null (answer);
    assert_true (error->domain == G_TLS_ERROR);
  }
  vms_test_rmtree (dir);
}

/* vmshiftd killed (-9) while a plan's memory crosses, and started
 * again: nothing is lost.  Its abort finds the job the dead one left
 * migrating and rolls it back (the source runs on); run again with a
 * new destination, the job resumes without sending its disk again. */
static void
test_restart_mid_migration (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *plan = plan_text (fixture, "2M");
  g_autofree char *faster = NULL;
  g_autoptr (JsonObject) memory = NULL;
  g_autoptr (JsonObject) rolled_back = NULL;
  g_autoptr (JsonObject) migrated = NULL;
  g_autoptr (JsonObject) ended = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *needle = NULL;
  JsonObject *reply = NULL;
  Stream stream = { 0 };
  guint64 beat;

  assert_int_equal (call (fixture, "PUT", "/api/v1/plans/r", plan, &reply),
                    201);
  g_clear_pointer (&reply, json_object_unref);
  stream_open (fixture, &stream);
  assert_int_equal (call (fixture, "POST", "/api/v1/plans/r/run", NULL, &reply),
                    202);
  g_clear_pointer (&reply, json_object_unref);
  memory = stream_wait (&stream, "state", "\"state\":\"memory\"");
  stream_close (&stream);
  vms_test_command_free (fixture->daemon);
  g_clear_pointer (&fixture->url, g_free);
  g_clear_pointer (&fixture->token, g_free);
  start_daemon (fixture);

  stream_open (fixture, &stream);
  assert_int_equal (
      call (fixture, "POST", "/api/v1/plans/r/abort", NULL, &reply), 202);
  assert_int_equal (json_object_get_int_member (reply, "orphans"), 1);
  g_clear_pointer (&reply, json_object_unref);
  rolled_back = stream_wait (&stream, "plan-run-ended", NULL);
  assert_true (json_object_get_boolean_member (rolled_back, "ok"));
  assert_int_equal (call (fixture, "GET", "/api/v1/jobs/web", NULL, &reply),
                    200);
  assert_string_equal (json_object_get_string_member (reply, "phase"),
                       "rolled-back");
  g_clear_pointer (&reply, json_object_unref);
  beat = vms_test_vm_last_heartbeat (fixture->source);
  needle = g_strdup_printf ("vms-heartbeat %" G_GUINT64_FORMAT, beat + 2);
  vms_assert_ok (
      vms_test_vm_wait_serial (fixture->source, needle, 60000, &error), error);

  /* A rolled-back memory migration ends its destination: a new one. */
  vms_assert_ok (vms_test_vm_restart (fixture->dest, FALSE, &error), error);
  faster = plan_text (fixture, NULL);
  assert_int_equal (call (fixture, "PUT", "/api/v1/plans/r", faster, &reply),
                    200);
  g_clear_pointer (&reply, json_object_unref);
  assert_int_equal (call (fixture, "POST", "/api/v1/plans/r/run", NULL, &reply),
                    202);
  g_clear_pointer (&reply, json_object_unref);
  migrated = stream_wait (&stream, "migrated", "\"vm\":\"web\"");
  assert_int_equal (
      json_object_get_int_member (migrated, "disk-background-bytes"), 0);
  ended = stream_wait (&stream, "plan-run-ended", NULL);
  assert_true (json_object_get_boolean_member (ended, "ok"));
  stream_close (&stream);
}

/* Events posted by a run outside the daemon reach a client of the
 * stream in order, tagged with the plan and VM the query names; a body
 * with one bad line, a bad name or no token publishes none of it. */
static void
test_ingest (void **state)
{
  Fixture *fixture = *state;
  const char *good
      = "{\"event\":\"state\",\"state\":\"background\"}\n"
        "{\"event\":\"progress\",\"disk\":\"vd0\",\"phase\":\"bulk\","
        "\"done\":5,\"total\":10,\"vm\":\"liar\"}\n"
        "\n"
        "{\"event\":\"migrated\",\"message\":\"web moved\"}\n";
  const char *bad_line = "{\"event\":\"state\",\"state\":\"x\"}\n"
                         "{\"event\":\"Bad name\"}\n";
  const char *bad_bodies[]
      = { bad_line,        "[1]\n",
          "{\"event\":3}", "{\"event\":\"a\",\"message\":[]}",
          "not json",      "\n\n" };
  const char *expected[] = { "state", "progress", "migrated" };
  JsonObject *reply = NULL;
  Stream stream = { 0 };

  stream_open (fixture, &stream);
  assert_int_equal (
      call (fixture, "POST", "/api/v1/events?plan=p1&vm=web", good, &reply),
      202);
  assert_int_equal (json_object_get_int_member (reply, "published"), 3);
  g_clear_pointer (&reply, json_object_unref);
  for (guint i = 0; i < G_N_ELEMENTS (expected); i++)
    {
      g_autofree char *event = NULL;
      g_autoptr (JsonObject) object = stream_next (&stream, &event);

      assert_string_equal (event, expected[i]);
      assert_string_equal (json_object_get_string_member (object, "event"),
                           expected[i]);
      assert_string_equal (json_object_get_string_member (object, "plan"),
                           "p1");
      assert_string_equal (json_object_get_string_member (object, "vm"), "web");
      if (i == 1)
        assert_int_equal (json_object_get_int_member (object, "done"), 5);
      if (i == 2)
        assert_string_equal (json_object_get_string_member (object, "message"),
                             "web moved");
    }

  for (guint i = 0; i < G_N_ELEMENTS (bad_bodies); i++)
    {
      assert_int_equal (call (fixture, "POST", "/api/v1/events?vm=web",
                              bad_bodies[i], &reply),
                        400);
      assert_true (json_object_has_member (reply, "error"));
      g_clear_pointer (&reply, json_object_unref);
    }
  assert_int_equal (
      call (fixture, "POST", "/api/v1/events?vm=..%2Fx", good, &reply), 400);
  g_clear_pointer (&reply, json_object_unref);
  assert_int_equal (
      call (fixture, "POST", "/api/v1/events?plan=p1", good, &reply), 400);
  g_clear_pointer (&reply, json_object_unref);
  assert_int_equal (
      call (fixture, "POST", "/api/v1/events?vm=web&x=1", good, &reply), 400);
  g_clear_pointer (&reply, json_object_unref);
  assert_int_equal (
      request (fixture, "POST", "/api/v1/events?vm=web", good, NULL, &reply),
      401);
  g_clear_pointer (&reply, json_object_unref);

  /* None of the refused reached the stream: the next is a new one, and
   * without a plan in the query it has none. */
  assert_int_equal (call (fixture, "POST", "/api/v1/events?vm=web2",
                          "{\"event\":\"marker\",\"plan\":\"p9\"}", &reply),
                    202);
  g_clear_pointer (&reply, json_object_unref);
  {
    g_autofree char *event = NULL;
    g_autoptr (JsonObject) object = stream_next (&stream, &event);

    assert_string_equal (event, "marker");
    assert_string_equal (json_object_get_string_member (object, "vm"), "web2");
    assert_false (json_object_has_member (object, "plan"));
  }
  stream_close (&stream);
}

/* The member of array's objects whose member is value, or NULL. */
static JsonObject *
find_in (JsonArray *array, const char *member, const char *value)
{
  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      JsonObject *one = json_array_get_object_element (array, i);

      if (g_strcmp0 (
              json_object_get_string_member_with_default (one, member, NULL),
              value)
          == 0)
        return one;
    }
  return NULL;
}

static char *
to_text (JsonObject *object)
{
  g_autoptr (JsonNode) node = json_node_new (JSON_NODE_OBJECT);

  json_node_set_object (node, object);
  return json_to_string (node, FALSE);
}

/* An estimate of the fixture's VM, as vmshift estimate saves one, with
 * two dirty samples of its disk. */
static void
save_estimate (Fixture *fixture, const char *id)
{
  g_autoptr (VmsEstimateFile) estimate = vms_estimate_file_new (id);
  g_autoptr (GError) error = NULL;
  VmsEstimateFileVm *vm = vms_estimate_file_add_vm (estimate, "qmp:/web");
  VmsEstimateFileDisk *disk = vms_estimate_file_add_disk (vm, "vd0", DISK_SIZE);

  g_free (vm->vm_name);
  vm->vm_name = g_strdup ("web");
  vm->prediction.total_pause_s = 7.5;
  vm->prediction.reason = "a test's";
  for (guint k = 0; k < 2; k++)
    {
      double second = 5.0 * k;
      guint64 dirty = 65536 * (k + 1);

      g_array_append_val (disk->seconds, second);
      g_array_append_val (disk->dirty, dirty);
    }
  estimate->order = g_new0 (guint, 1);
  vms_assert_ok (vms_estimate_file_save (estimate, fixture->state_dir, &error),
                 error);
}

/* The database's figures of a plan's migration, its events' history
 * paged by since and limit (bad numbers refused); the database deleted
 * while vmshiftd is stopped, the migration comes back from the files;
 * an estimate saved while it runs is served with its samples. */
static void
test_database_rebuilt (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *plan = plan_text (fixture, NULL);
  g_autofree char *database
      = g_build_filename (fixture->state_dir, "vmshiftd.db", NULL);
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;
  g_autoptr (JsonObject) ended = NULL;
  JsonObject *reply = NULL;
  JsonObject *migration;
  JsonArray *events;
  gint64 first;
  Stream stream = { 0 };
  static const char *const bad[]
      = { "since=-1",   "since=x", "since=1e3",     "limit=0",
          "limit=1001", "limit=",  "since=1&what=2" };

  assert_int_equal (call (fixture, "PUT", "/api/v1/plans/db", plan, &reply),
                    201);
  g_clear_pointer (&reply, json_object_unref);
  stream_open (fixture, &stream);
  assert_int_equal (
      call (fixture, "POST", "/api/v1/plans/db/run", NULL, &reply), 202);
  g_clear_pointer (&reply, json_object_unref);
  ended = stream_wait (&stream, "plan-run-ended", NULL);
  assert_true (json_object_get_boolean_member (ended, "ok"));
  stream_close (&stream);

  assert_int_equal (call (fixture, "GET", "/api/v1/migrations", NULL, &reply),
                    200);
  migration = find_in (json_object_get_array_member (reply, "migrations"), "vm",
                       "web");
  assert_non_null (migration);
  assert_string_equal (json_object_get_string_member (migration, "plan"), "db");
  assert_string_equal (json_object_get_string_member (migration, "outcome"),
                       "migrated");
  assert_true (json_object_get_double_member (migration, "seconds") > 0);
  assert_true (json_object_has_member (migration, "downtime-ms"));
  /* No estimate was named: nothing was predicted. */
  assert_false (json_object_has_member (migration, "predicted-seconds"));
  before = to_text (migration);
  g_clear_pointer (&reply, json_object_unref);

  /* The history: every event the run published, in order, paged. */
  assert_int_equal (
      call (fixture, "GET", "/api/v1/events?since=0&limit=1000", NULL, &reply),
      200);
  events = json_object_get_array_member (reply, "events");
  assert_non_null (find_in (events, "event", "migrated"));
  assert_non_null (find_in (events, "event", "plan-run-ended"));
  first = json_object_get_int_member (json_array_get_object_element (events, 0),
                                      "seq");
  g_clear_pointer (&reply, json_object_unref);
  {
    g_autofree char *path = g_strdup_printf (
        "/api/v1/events?since=%" G_GINT64_FORMAT "&limit=2", first);

    assert_int_equal (call (fixture, "GET", path, NULL, &reply), 200);
    events = json_object_get_array_member (reply, "events");
    assert_int_equal (json_array_get_length (events), 2);
    assert_int_equal (json_object_get_int_member (
                          json_array_get_object_element (events, 0), "seq"),
                      first + 1);
    g_clear_pointer (&reply, json_object_unref);
  }
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autofree char *path = g_strconcat ("/api/v1/events?", bad[i], NULL);

      assert_int_equal (call (fixture, "GET", path, NULL, &reply), 400);
      assert_true (json_object_has_member (reply, "error"));
      g_clear_pointer (&reply, json_object_unref);
    }

  /* Stopped as a service manager stops it, and the database lost. */
  kill (fixture->daemon->pid, SIGTERM);
  assert_int_equal (vms_test_command_wait (fixture->daemon), 0);
  vms_test_command_free (fixture->daemon);
  g_clear_pointer (&fixture->url, g_free);
  g_clear_pointer (&fixture->token, g_free);
  for (const char *const *suffix
       = (const char *const[]){ "", "-wal", "-shm", NULL };
       *suffix; suffix++)
    {
      g_autofree char *file = g_strconcat (database, *suffix, NULL);

      g_unlink (file);
    }
  start_daemon (fixture);
  assert_true (g_file_test (database, G_FILE_TEST_EXISTS));

  assert_int_equal (call (fixture, "GET", "/api/v1/migrations", NULL, &reply),
                    200);
  migration = find_in (json_object_get_array_member (reply, "migrations"), "vm",
                       "web");
  assert_non_null (migration);
  after = to_text (migration);
  assert_string_equal (after, before);
  g_clear_pointer (&reply, json_object_unref);
  assert_int_equal (call (fixture, "GET", "/api/v1/jobs", NULL, &reply), 200);
  migration
      = find_in (json_object_get_array_member (reply, "jobs"), "id", "web");
  assert_non_null (migration);
  assert_string_equal (json_object_get_string_member (migration, "phase"),
                       "migrated");
  g_clear_pointer (&reply, json_object_unref);

  /* An estimate vmshift saved while vmshiftd runs is served too. */
  save_estimate (fixture, "late");
  assert_int_equal (call (fixture, "GET", "/api/v1/estimates", NULL, &reply),
                    200);
  assert_non_null (find_in (json_object_get_array_member (reply, "estimates"),
                            "id", "late"));
  g_clear_pointer (&reply, json_object_unref);
  assert_int_equal (
      call (fixture, "GET", "/api/v1/estimates/late", NULL, &reply), 200);
  {
    JsonObject *vm = json_array_get_object_element (
        json_object_get_array_member (reply, "vms"), 0);
    JsonObject *disk = json_array_get_object_element (
        json_object_get_array_member (vm, "disks"), 0);

    assert_float_equal (
        json_object_get_double_member (vm, "total-pause-seconds"), 7.5, 1e-9);
    assert_int_equal (
        json_array_get_length (json_object_get_array_member (disk, "samples")),
        2);
  }
  g_clear_pointer (&reply, json_object_unref);
  assert_int_equal (
      call (fixture, "GET", "/api/v1/estimates/nope", NULL, &reply), 404);
  g_clear_pointer (&reply, json_object_unref);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_refusals, setup, teardown),
    cmocka_unit_test_setup_teardown (test_tls, setup, teardown),
    cmocka_unit_test_setup_teardown (test_ingest, setup, teardown),
    cmocka_unit_test_setup_teardown (test_plan_over_http, setup_vm, teardown),
    cmocka_unit_test_setup_teardown (test_abort_then_run_again, setup_vm,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_restart_mid_migration, setup_vm,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_cli_server, setup_vm, teardown),
    cmocka_unit_test_setup_teardown (test_estimate_over_http, setup_vm,
                                     teardown),

    cmocka_unit_test_setup_teardown (test_database_rebuilt, setup_vm, teardown),
  };

  vms_test_guest_prepare ();
  vmshiftd = vms_test_built_program ("VMS_VMSHIFTD");
  vmshift = vms_test_built_program ("VMS_VMSHIFT");
  return vms_test_run_group ("vmshiftd", tests, G_N_ELEMENTS (tests), NULL,
                             NULL);
}
