/* Integration tests: the vmshift program as a user runs it, against a real
 * QEMU.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-test.h"
#include "vms-test-vm.h"

#include <sys/wait.h>

static const char *vmshift;



/* Run vmshift with args (NULL-terminated). */
#define run_vmshift(run, ...)                                                 \
  vms_test_run_capture (run, NULL, NULL, vmshift, __VA_ARGS__)

static int
start_bare (void **state)
{
  VmsTestVmOptions options = { .no_guest = TRUE };
  g_autoptr (GError) error = NULL;
  VmsTestVm *vm = vms_test_vm_start (&options, &error);

  if (!vm)
    {
      print_error ("cannot start QEMU: %s\n", error->message);
      return -1;
    }
  /* The CLI needs the monitor to itself: QEMU serves one client. */
  g_clear_pointer (&vm->qmp, vms_qmp_free);
  *state = vm;
  return 0;
}

static int
stop_vm (void **state)
{
  vms_test_vm_free (*state);
  return 0;
}

static void
test_version_and_help (void **state)
{
  g_auto (VmsTestRun) version = { 0 };
  g_auto (VmsTestRun) help = { 0 };
  g_auto (VmsTestRun) qmp_help = { 0 };
  g_auto (VmsTestRun) none = { 0 };
  g_auto (VmsTestRun) unknown = { 0 };

  run_vmshift (&version, "--version", NULL);
  assert_int_equal (version.status, 0);
  assert_true (g_str_has_prefix (version.out, "vmshift "));
  run_vmshift (&help, "--help", NULL);
  assert_int_equal (help.status, 0);
  assert_non_null (strstr (help.out, "qmp"));
  run_vmshift (&qmp_help, "qmp", "--help", NULL);
  assert_int_equal (qmp_help.status, 0);
  assert_non_null (strstr (qmp_help.out, "SOCKET COMMAND [JSON-ARGS]"));
  run_vmshift (&none, NULL);
  assert_int_equal (none.status, 2);
  run_vmshift (&unknown, "frobnicate", NULL);
  assert_int_equal (unknown.status, 2);
  assert_non_null (strstr (unknown.err, "unknown command 'frobnicate'"));
}

static void
test_qmp_command_prints_json (void **state)
{
  VmsTestVm *vm = *state;
  g_autofree char *source = g_strdup_printf ("qmp:%s", vm->qmp_path);
  g_auto (VmsTestRun) status = { 0 };
  g_auto (VmsTestRun) hmp = { 0 };
  g_autoptr (JsonParser) parser = json_parser_new ();

  run_vmshift (&status, "qmp", source, "query-status", NULL);
  assert_int_equal (status.status, 0);
  assert_true (json_parser_load_from_data (parser, status.out, -1, NULL));
  assert_string_equal (json_object_get_string_member (
                           json_node_get_object (json_parser_get_root (parser)),
                           "status"),
                       "running");

  run_vmshift (&hmp, "qmp", "--hmp", vm->qmp_path, "info status", NULL);
  assert_int_equal (hmp.status, 0);
  assert_non_null (strstr (hmp.out, "VM status: running"));
}

static void
test_qmp_wait_event (void **state)
{
  VmsTestVm *vm = *state;
  g_auto (VmsTestRun) stop = { 0 };

  run_vmshift (&stop, "qmp", "--wait-event", "STOP", vm->qmp_path, "stop",
               NULL);
  assert_int_equal (stop.status, 0);
  assert_non_null (strstr (stop.out, "\"event\":\"STOP\""));
}

static void
test_qmp_errors_and_exit_codes (void **state)
{
  VmsTestVm *vm = *state;
  g_auto (VmsTestRun) unknown = { 0 };
  g_auto (VmsTestRun) bad_json = { 0 };
  g_auto (VmsTestRun) not_object = { 0 };
  g_auto (VmsTestRun) early = { 0 };
  g_auto (VmsTestRun) missing = { 0 };
  g_auto (VmsTestRun) usage = { 0 };
  g_auto (VmsTestRun) bad_timeout = { 0 };

  run_vmshift (&unknown, "qmp", vm->qmp_path, "no-such-command", NULL);
  assert_int_equal (unknown.status, 1);
  assert_non_null (strstr (unknown.err, "CommandNotFound: "));

  run_vmshift (&bad_json, "qmp", vm->qmp_path, "query-status", "{oops", NULL);
  assert_int_equal (bad_json.status, 2);
  assert_non_null (strstr (bad_json.err, "not valid JSON"));

  /* Checked before connecting: no QEMU needed to learn about a typo. */
  run_vmshift (&early, "qmp", "/nonexistent/qmp.sock", "query-status", "{oops",
               NULL);
  assert_int_equal (early.status, 2);

  run_vmshift (&not_object, "qmp", vm->qmp_path, "query-status", "[1]", NULL);
  assert_int_equal (not_object.status, 2);
  assert_non_null (strstr (not_object.err, "must be a JSON object"));

  run_vmshift (&missing, "qmp", "/nonexistent/qmp.sock", "query-status",
               NULL);
  assert_int_equal (missing.status, 3);
  assert_non_null (strstr (missing.err, "cannot connect"));

  run_vmshift (&usage, "qmp", vm->qmp_path, NULL);
  assert_int_equal (usage.status, 2);

  run_vmshift (&bad_timeout, "qmp", "--timeout", "-1", vm->qmp_path,
               "query-status", NULL);
  assert_int_equal (bad_timeout.status, 2);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_version_and_help),
    cmocka_unit_test (test_qmp_command_prints_json),
    cmocka_unit_test (test_qmp_errors_and_exit_codes),
    cmocka_unit_test (test_qmp_wait_event),
  };

  vmshift = vms_test_built_program ("VMS_VMSHIFT");
  vms_test_require_program ("qemu-system-x86_64", "qemu-system-x86");
  return cmocka_run_group_tests_name ("cli", tests, start_bare, stop_vm);
}
