/* Integration tests: the QMP client against a real QEMU running the test
 * guest.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-test.h"
#include "vms-test-vm.h"

#include <glib/gstdio.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#define DISK_SIZE (64 * 1024 * 1024)

static int
start_vm (void **state, const VmsTestVmOptions *options)
{
  g_autoptr (GError) error = NULL;
  VmsTestVm *vm = vms_test_vm_start (options, &error);

  if (!vm)
    {
      print_error ("cannot start QEMU: %s\n", error->message);
      return -1;
    }
  *state = vm;
  return 0;
}

static int
start_guest (void **state)
{
  VmsTestVmOptions options = { .disks = { { "raw", DISK_SIZE } } };

  return start_vm (state, &options);
}

static int
stop_guest (void **state)
{
  vms_test_vm_free (*state);
  return 0;
}

/* A bare machine with no guest kernel: enough for channel faults. */
static int
start_bare (void **state)
{
  VmsTestVmOptions options = { .no_guest = TRUE };

  return start_vm (state, &options);
}

static void
test_greeting_version_matches_query (void **state)
{
  VmsTestVm *vm = *state;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) result = NULL;
  JsonObject *qemu;
  int major, minor, micro;

  vms_qmp_get_version (vm->qmp, &major, &minor, &micro);
  assert_true (major >= 7);
  result = vms_qmp_execute (vm->qmp, "query-version", NULL, &error);
  vms_assert_no_error (error);
  qemu = json_object_get_object_member (json_node_get_object (result),
                                        "qemu");
  assert_int_equal (json_object_get_int_member (qemu, "major"), major);
  assert_int_equal (json_object_get_int_member (qemu, "minor"), minor);
  assert_int_equal (json_object_get_int_member (qemu, "micro"), micro);
  assert_string_equal (vms_qmp_get_package (vm->qmp),
                       json_object_get_string_member (
                           json_node_get_object (result), "package"));
}

static JsonObject *
find_node (JsonArray *nodes, const char *node_name)
{
  for (guint i = 0; i < json_array_get_length (nodes); i++)
    {
      JsonObject *node = json_array_get_object_element (nodes, i);

      if (g_strcmp0 (json_object_get_string_member_with_default (
                         node, "node-name", NULL),
                     node_name)
          == 0)
        return node;
    }
  return NULL;
}

/* A command with arguments changes QEMU's state, and a query sees it. */
static void
test_command_with_arguments (void **state)
{
  VmsTestVm *vm = *state;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) added = NULL;
  g_autoptr (JsonNode) nodes = NULL;
  g_autoptr (JsonNode) removed = NULL;
  JsonObject *d0;
  JsonArray *bitmaps;

  added = vms_qmp_execute_json (vm->qmp, "block-dirty-bitmap-add",
                                "{\"node\": \"d0\", \"name\": \"t0\", "
                                "\"granularity\": 65536}", &error);
  vms_assert_no_error (error);
  nodes = vms_qmp_execute (vm->qmp, "query-named-block-nodes", NULL, &error);
  vms_assert_no_error (error);
  d0 = find_node (json_node_get_array (nodes), "d0");
  assert_non_null (d0);
  assert_string_equal (json_object_get_string_member (d0, "drv"), "raw");
  bitmaps = json_object_get_array_member (d0, "dirty-bitmaps");
  assert_int_equal (json_array_get_length (bitmaps), 1);
  assert_string_equal (json_object_get_string_member (
                           json_array_get_object_element (bitmaps, 0), "name"),
                       "t0");
  removed = vms_qmp_execute_json (vm->qmp, "block-dirty-bitmap-remove",
                                  "{\"node\": \"d0\", \"name\": \"t0\"}",
                                  &error);
  vms_assert_no_error (error);
}

static void
test_error_replies_keep_class_and_desc (void **state)
{
  VmsTestVm *vm = *state;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) result = NULL;

  assert_null (vms_qmp_execute (vm->qmp, "no-such-command", NULL, &error));
  assert_true (g_error_matches (error, VMS_QMP_ERROR,
                                VMS_QMP_ERROR_COMMAND_NOT_FOUND));
  assert_non_null (strstr (error->message, "no-such-command"));
  g_clear_error (&error);

  assert_null (vms_qmp_execute_json (vm->qmp, "block-dirty-bitmap-add",
                                     "{\"node\": \"nope\", \"name\": \"b\"}",
                                     &error));
  assert_true (g_error_matches (error, VMS_QMP_ERROR, VMS_QMP_ERROR_GENERIC));
  assert_non_null (strstr (error->message, "nope"));
  g_clear_error (&error);

  assert_null (vms_qmp_execute_json (vm->qmp, "query-status",
                                     "{\"bogus\": 1}", &error));
  assert_true (g_error_matches (error, VMS_QMP_ERROR, VMS_QMP_ERROR_GENERIC));
  assert_non_null (strstr (error->message, "bogus"));
  g_clear_error (&error);

  /* Errors leave the channel usable. */
  result = vms_qmp_execute (vm->qmp, "query-status", NULL, &error);
  vms_assert_no_error (error);
}

typedef struct
{
  guint stops;         /* STOP events seen by the subscriber */
  gint64 stop_time;    /* timestamp of the last one */
} StopLog;

static void
count_stop (VmsQmp *qmp, const char *event, JsonObject *data,
            gint64 timestamp_us, gpointer user_data)
{
  StopLog *log = user_data;

  log->stops++;
  log->stop_time = timestamp_us;
}

static void
test_events_stop_and_resume (void **state)
{
  VmsTestVm *vm = *state;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) stopped = NULL;
  g_autoptr (JsonNode) resumed = NULL;
  g_autoptr (JsonNode) status = NULL;
  StopLog log = { 0 };
  gint64 resume_time = 0;
  guint subscription;

  subscription = vms_qmp_subscribe (vm->qmp, "STOP", count_stop, &log, NULL);
  stopped = vms_qmp_execute (vm->qmp, "stop", NULL, &error);
  vms_assert_no_error (error);
  /* QEMU sends STOP before the reply; the subscriber already has it. */
  assert_int_equal (log.stops, 1);
  assert_true (log.stop_time > 0);
  status = vms_qmp_execute (vm->qmp, "query-status", NULL, &error);
  assert_string_equal (json_object_get_string_member (
                           json_node_get_object (status), "status"),
                       "paused");

  resumed = vms_qmp_execute (vm->qmp, "cont", NULL, &error);
  vms_assert_no_error (error);
  assert_true (vms_qmp_wait_event (vm->qmp, "RESUME", 10000, NULL, NULL,
                                   &resume_time, &error));
  vms_assert_no_error (error);
  assert_true (resume_time >= log.stop_time);
  vms_qmp_unsubscribe (vm->qmp, subscription);
  /* The queued STOP is still there for a waiter. */
  assert_true (vms_qmp_wait_event (vm->qmp, "STOP", 100, NULL, NULL, NULL,
                                   &error));
}

static void
test_guest_runs_and_qemu_io_writes (void **state)
{
  VmsTestVm *vm = *state;
  g_autoptr (GError) error = NULL;
  g_autofree char *contents = NULL;
  guint64 first;
  gsize length;

  vms_assert_ok (vms_test_vm_wait_ready (vm, &error), error);
  vms_assert_no_error (error);
  vms_assert_ok (vms_test_vm_wait_serial (vm, "vms-heartbeat 2", 30000, &error), error);
  first = vms_test_vm_last_heartbeat (vm);
  vms_assert_ok (vms_test_vm_wait_serial (vm, "vms-heartbeat 4", 30000, &error), error);
  assert_true (vms_test_vm_last_heartbeat (vm) > first);

  vms_assert_ok (vms_test_vm_qemu_io (vm, "vd0", "write -P 0x5a 1M 64k",
                                    &error), error);
  vms_assert_no_error (error);
  vms_assert_ok (vms_test_vm_qemu_io (vm, "vd0", "read -P 0x5a 1M 64k",
                                    &error), error);
  /* A wrong pattern is reported as a failure, not ignored. */
  assert_false (vms_test_vm_qemu_io (vm, "vd0", "read -P 0x11 1M 64k",
                                     &error));
  g_clear_error (&error);
  /* And the bytes are in the image file itself. */
  assert_true (g_file_get_contents (vm->disk_paths[0], &contents, &length,
                                    &error));
  assert_int_equal (length, DISK_SIZE);
  for (gsize i = 1024 * 1024; i < 1024 * 1024 + 65536; i++)
    assert_int_equal ((guchar) contents[i], 0x5a);
  assert_int_equal ((guchar) contents[1024 * 1024 + 65536], 0);
}

/* Another client queued on the same monitor gets no greeting: QEMU serves
 * one QMP client per socket. */
static void
test_second_client_times_out (void **state)
{
  VmsTestVm *vm = *state;
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsQmp) second = vms_qmp_connect (vm->qmp_path, 500, &error);

  assert_null (second);
  assert_true (g_error_matches (error, VMS_QMP_ERROR, VMS_QMP_ERROR_TIMEOUT));
  assert_non_null (strstr (error->message, "another client"));
}

static gpointer
kill_later (gpointer data)
{
  VmsTestVm *vm = data;

  g_usleep (300 * 1000);
  kill (vm->pid, SIGKILL);
  return NULL;
}

/* QEMU is frozen so the command is certainly in flight, then killed. */
static void
test_qemu_killed_mid_command (void **state)
{
  VmsTestVm *vm = *state;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) result = NULL;
  GThread *killer;
  gint64 start;

  kill (vm->pid, SIGSTOP);
  killer = g_thread_new ("killer", kill_later, vm);
  start = g_get_monotonic_time ();
  result = vms_qmp_execute (vm->qmp, "query-status", NULL, &error);
  g_thread_join (killer);
  assert_null (result);
  assert_true (g_error_matches (error, VMS_QMP_ERROR,
                                VMS_QMP_ERROR_DISCONNECTED));
  assert_non_null (strstr (error->message, vm->qmp_path));
  /* Noticed when the socket closed, long before the 30 s timeout. */
  assert_true (g_get_monotonic_time () - start < 10 * G_USEC_PER_SEC);
  assert_false (vms_qmp_is_connected (vm->qmp));
  g_clear_error (&error);
  assert_false (vms_qmp_wait_event (vm->qmp, NULL, 1000, NULL, NULL, NULL,
                                    &error));
  assert_true (g_error_matches (error, VMS_QMP_ERROR,
                                VMS_QMP_ERROR_DISCONNECTED));
  assert_true (vms_test_vm_wait_exit (vm, 10000));
}

static void
test_frozen_qemu_times_out_then_recovers (void **state)
{
  VmsTestVm *vm = *state;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) result = NULL;

  kill (vm->pid, SIGSTOP);
  vms_qmp_set_timeout (vm->qmp, 300);
  assert_null (vms_qmp_execute (vm->qmp, "query-name", NULL, &error));
  assert_true (g_error_matches (error, VMS_QMP_ERROR, VMS_QMP_ERROR_TIMEOUT));
  g_clear_error (&error);
  kill (vm->pid, SIGCONT);

  /* The late reply to query-name must not be taken for this one. */
  vms_qmp_set_timeout (vm->qmp, 0);
  result = vms_qmp_execute (vm->qmp, "query-status", NULL, &error);
  vms_assert_no_error (error);
  assert_true (json_object_has_member (json_node_get_object (result),
                                       "status"));
}

int
main (void)
{
  const struct CMUnitTest guest_tests[] = {
    cmocka_unit_test (test_greeting_version_matches_query),
    cmocka_unit_test (test_command_with_arguments),
    cmocka_unit_test (test_error_replies_keep_class_and_desc),
    cmocka_unit_test (test_events_stop_and_resume),
    cmocka_unit_test (test_guest_runs_and_qemu_io_writes),
    cmocka_unit_test (test_second_client_times_out),
  };
  const struct CMUnitTest fault_tests[] = {
    cmocka_unit_test_setup_teardown (test_qemu_killed_mid_command, start_bare,
                                     stop_guest),
    cmocka_unit_test_setup_teardown (test_frozen_qemu_times_out_then_recovers,
                                     start_bare, stop_guest),
  };
  int failures = 0;

  vms_test_require_program ("qemu-img", "qemu-utils");
  vms_test_guest_prepare ();
  failures += cmocka_run_group_tests_name ("qmp-qemu", guest_tests,
                                           start_guest, stop_guest);
  failures += cmocka_run_group_tests_name ("qmp-qemu-faults", fault_tests,
                                           NULL, NULL);
  return failures ? 1 : 0;
}
