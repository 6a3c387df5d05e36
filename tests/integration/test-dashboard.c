/* Integration tests: vmshiftd's web dashboard.  Its files are served
 * without the token (and nothing else is), and headless Chromium (Debian's
 * chromium, driven by tests/browser/dashboard.mjs) follows a plan that
 * vmshiftd runs over HTTP, migrating a real QEMU (TCG) to a real sink: the
 * VM's progress moves, then it is migrated with its downtime.  The
 * screenshots are kept in the build directory.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-test-command.h"
#include "vms-test-sink.h"
#include "vms-test-vm.h"
#include "vms-test.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>
#include <string.h>

#define DISK_SIZE (32 * 1024 * 1024)
/* Slow enough for the page to see the copy's progress move (it is
 * streamed once a second). */
#define PLAN_BANDWIDTH "2M"
/* dashboard.mjs's end: its own bounds (the migration's start, then its
 * end, on a busy machine) and a margin. */
#define DASHBOARD_TIMEOUT_S 600
/* The run's end after the page saw the VM migrated. */
#define PLAN_END_TIMEOUT_S 60

static const char *vmshiftd;
static const char *browser_dir;     /* tests/browser, its node_modules in */
static char *browser_why;           /* why the browser test cannot run here,
                                       or NULL */
static const char *screenshots_dir; /* where the screenshots are kept */

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

/* ---- the daemon and requests (as test-vmshiftd's) ---- */

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

/* method path with body (or NULL), with the token when with_token; the
 * status, and the message (for its headers) and the body when asked. */
static guint
request (Fixture *fixture, const char *method, const char *path,
         const char *body, gboolean with_token, SoupMessage **msg_out,
         GBytes **answer_out)
{
  g_autofree char *uri = g_strconcat (fixture->url, path + 1, NULL);
  g_autoptr (SoupMessage) msg = soup_message_new (method, uri);
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) answer = NULL;
  guint status;

  assert_non_null (msg);
  if (with_token)
    {
      g_autofree char *header = g_strconcat ("Bearer ", fixture->token, NULL);

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
  status = soup_message_get_status (msg);
  if (msg_out)
    *msg_out = g_steal_pointer (&msg);
  if (answer_out)
    *answer_out = g_steal_pointer (&answer);
  return status;
}

/* The JSON object of an API reply (caller unrefs); fails the test when
 * the reply is not one. */
static JsonObject *
call_json (Fixture *fixture, const char *method, const char *path,
           const char *body, guint expected_status)
{
  g_autoptr (GBytes) answer = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;
  gsize length;
  const char *data;

  assert_int_equal (request (fixture, method, path, body, TRUE, NULL, &answer),
                    expected_status);
  data = g_bytes_get_data (answer, &length);
  if (!json_parser_load_from_data (parser, data, length, &error)
      || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    fail_msg ("%s %s: not a JSON object: %.*s", method, path, (int)length,
              data);
  return json_object_ref (json_node_get_object (json_parser_get_root (parser)));
}

/* ---- the VM (as test-vmshiftd's) ---- */

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

/* The plan of the fixture's VM, its copy slowed to bandwidth. */
static char *
plan_text (Fixture *fixture, const char *bandwidth)
{
  g_autofree char *sink = vms_test_sink_uri (fixture->sink, "");

  return g_strdup_printf (
      "[plan]\nsink = %s\nsuspend = true\nfinal-sync = pause\n"
      "bandwidth = %s\n"
      "[vm web]\nsource = qmp:%s\ndest-qmp = qmp:%s\n"
      "dest-uri = unix:%s/memory.sock\n",
      sink, bandwidth, fixture->source->qmp2_path, fixture->dest->qmp2_path,
      fixture->dest->dir);
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
  /* The test says so and skips: no VM for it. */
  if (browser_why)
    return 0;
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

/* path is served without the token, as type, with the page's
 * Content-Security-Policy; its body holds needle. */
static void
assert_served (Fixture *fixture, const char *path, const char *type,
               const char *needle)
{
  g_autoptr (SoupMessage) msg = NULL;
  g_autoptr (GBytes) answer = NULL;
  SoupMessageHeaders *headers;
  g_autofree char *body = NULL;

  assert_int_equal (request (fixture, "GET", path, NULL, FALSE, &msg, &answer),
                    200);
  headers = soup_message_get_response_headers (msg);
  assert_string_equal (soup_message_headers_get_one (headers, "Content-Type"),
                       type);
  assert_non_null (
      strstr (soup_message_headers_get_one (headers, "Content-Security-Policy"),
              "default-src 'self'"));
  body = g_strndup (g_bytes_get_data (answer, NULL), g_bytes_get_size (answer));
  assert_non_null (strstr (body, needle));
}

/* The page and its files need no token; the API still does; no other
 * path, and no path out of the files, is served. */
static void
test_static_files (void **state)
{
  Fixture *fixture = *state;
  guint status;

  assert_served (fixture, "/", "text/html; charset=utf-8",
                 "<script src=\"/static/app.js\"");
  assert_served (fixture, "/static/app.js", "text/javascript; charset=utf-8",
                 "/api/v1/events");
  assert_served (fixture, "/static/style.css", "text/css; charset=utf-8",
                 ".bar");
  assert_int_equal (
      request (fixture, "GET", "/api/v1/plans", NULL, FALSE, NULL, NULL), 401);
  assert_int_equal (
      request (fixture, "GET", "/api/v1/plans", NULL, TRUE, NULL, NULL), 200);
  assert_int_equal (request (fixture, "GET", "/static/vmshiftd.gresource.xml",
                             NULL, FALSE, NULL, NULL),
                    404);
  /* libsoup refuses an encoded '/' itself (400); either way, unserved. */
  status = request (fixture, "GET", "/static/..%2Fvmshiftd.token", NULL, FALSE,
                    NULL, NULL);
  assert_true (status == 400 || status == 404);
  assert_int_equal (
      request (fixture, "GET", "/static/nope.js", NULL, FALSE, NULL, NULL),
      404);
  assert_int_equal (
      request (fixture, "GET", "/vmshiftd.token", NULL, FALSE, NULL, NULL),
      404);
  assert_int_equal (request (fixture, "POST", "/", "x", FALSE, NULL, NULL),
                    405);
}

/* The screenshots' directory, emptied of an earlier run's. */
static void
prepare_screenshots (void)
{
  if (g_file_test (screenshots_dir, G_FILE_TEST_IS_DIR))
    vms_test_rmtree (screenshots_dir);
  assert_int_equal (g_mkdir_with_parents (screenshots_dir, 0755), 0);
}

/* Polled until the plan's run ended; its state then. */
static JsonObject *
wait_plan_ended (Fixture *fixture, const char *path)
{
  for (guint i = 0; i < PLAN_END_TIMEOUT_S * 10; i++)
    {
      JsonObject *plan = call_json (fixture, "GET", path, NULL, 200);

      if (!json_object_get_boolean_member (plan, "running"))
        return plan;
      json_object_unref (plan);
      g_usleep (G_USEC_PER_SEC / 10);
    }
  fail_msg ("%s still runs %d s after the page saw its VM migrated", path,
            PLAN_END_TIMEOUT_S);
  return NULL;
}

/* The downtime the page showed (its "downtime N ms" line) is the one
 * vmshiftd's plan state gives. */
static void
assert_same_downtime (VmsTestCommand *node, JsonObject *plan)
{
  JsonObject *vm = json_array_get_object_element (
      json_object_get_array_member (plan, "vms"), 0);
  g_autofree char *shown = NULL;

  assert_string_equal (json_object_get_string_member (vm, "status"),
                       "migrated");
  assert_true (json_object_has_member (vm, "downtime-ms"));
  shown = g_strdup_printf ("finished: web migrated, downtime %" G_GINT64_FORMAT
                           " ms",
                           json_object_get_int_member (vm, "downtime-ms"));
  if (!strstr (node->out->str, shown))
    fail_msg ("the page did not show \"%s\":\n%s", shown, node->out->str);
}

/* Chromium follows the plan's run on the dashboard: the VM's progress
 * moving, then the VM migrated with its downtime; the disk arrived byte
 * for byte. */
static void
test_dashboard_follows_a_migration (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *plan = NULL;
  g_autofree char *script
      = g_build_filename (browser_dir, "dashboard.mjs", NULL);
  g_autofree char *replica
      = vms_test_sink_replica_path (fixture->sink, "web-vd0");
  const char *argv[] = { "node",          script, fixture->url, fixture->token,
                         screenshots_dir, "web",  NULL };
  g_autoptr (VmsTestCommand) node = NULL;
  g_autoptr (JsonObject) reply = NULL;
  g_autoptr (JsonObject) ended = NULL;
  gint64 deadline_us;
  int status;

  if (browser_why)
    vms_test_skip ("%s", browser_why);
  plan = plan_text (fixture, PLAN_BANDWIDTH);

  prepare_screenshots ();
  reply = call_json (fixture, "PUT", "/api/v1/plans/dash", plan, 201);
  node = vms_test_command_start (NULL, argv, fixture->sink->dir);
  vms_test_command_wait_for (node, "dashboard.mjs: watching", 60000);
  g_clear_pointer (&reply, json_object_unref);
  reply = call_json (fixture, "POST", "/api/v1/plans/dash/run", NULL, 202);
  deadline_us = g_get_monotonic_time () + DASHBOARD_TIMEOUT_S * G_USEC_PER_SEC;
  while (!vms_test_command_pump (node, 1000))
    if (g_get_monotonic_time () > deadline_us)
      fail_msg ("dashboard.mjs did not end within %d s:\n%s",
                DASHBOARD_TIMEOUT_S, node->out->str);
  status = vms_test_command_wait (node);
  print_message ("%s", node->out->str);
  print_message ("screenshots in %s\n", screenshots_dir);
  if (status != 0)
    {
      g_autofree char *err = vms_test_command_stderr (node);

      fail_msg ("dashboard.mjs exited %d:\n%s", status, err);
    }
  ended = wait_plan_ended (fixture, "/api/v1/plans/dash");
  assert_same_downtime (node, ended);
  vms_test_assert_identical (fixture->source->disk_paths[0], "raw", replica);
}

/* A path meson's test environment gives. */
static const char *
env_path (const char *variable)
{
  const char *path = g_getenv (variable);

  if (!path)
    {
      printf ("SKIP: %s is not set; run the tests with 'meson test'\n",
              variable);
      exit (VMS_TEST_EXIT_SKIP);
    }
  return path;
}

/* Why the browser test cannot run here, or NULL when it can. */
static char *
browser_missing (void)
{
  g_autofree char *modules
      = g_build_filename (browser_dir, "node_modules", "puppeteer-core", NULL);

  if (!g_find_program_in_path ("node"))
    return g_strdup ("node is missing (Debian's nodejs)");
  if (!g_find_program_in_path ("chromium"))
    return g_strdup ("chromium is missing (Debian's chromium)");
  if (!g_file_test (modules, G_FILE_TEST_IS_DIR))
    return g_strdup_printf ("%s is missing (scripts/setup runs npm ci there, "
                            "which needs the npm registry)",
                            modules);
  return NULL;
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_static_files, setup, teardown),
    cmocka_unit_test_setup_teardown (test_dashboard_follows_a_migration,
                                     setup_vm, teardown),
  };

  vmshiftd = vms_test_built_program ("VMS_VMSHIFTD");
  browser_dir = env_path ("VMS_BROWSER_TESTS");
  screenshots_dir = env_path ("VMS_DASHBOARD_SCREENSHOTS");
  browser_why = browser_missing ();
  vms_test_guest_prepare ();
  return vms_test_run_group ("dashboard", tests, G_N_ELEMENTS (tests), NULL,
                             NULL);
}
