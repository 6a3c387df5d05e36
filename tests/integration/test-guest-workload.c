/* Integration tests: the test guest's workloads do what later tests rely
 * on (disk writes that can be verified, memory that gets dirtied).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-test.h"
#include "vms-test-vm.h"

#include <stdio.h>
#include <sys/wait.h>

#define DISK_SIZE (64 * 1024 * 1024)

static const char *verify_pattern;

typedef struct
{
  guint64 valid;   /* blocks holding a correct pattern */
  guint64 zero;    /* blocks never written */
  guint64 invalid; /* blocks that are neither */
} PatternCounts;

static int
run_verifier (const char *image, PatternCounts *counts)
{
  const char *argv[] = { verify_pattern, image, "--span-mib", "16", NULL };
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autoptr (GError) error = NULL;
  int status;

  if (!g_spawn_sync (NULL, (char **) argv, NULL, 0, NULL, NULL, &out, &err,
                     &status, &error))
    fail_msg ("cannot run %s: %s", verify_pattern, error->message);
  if (sscanf (out, "valid=%" G_GUINT64_FORMAT " zero=%" G_GUINT64_FORMAT
                   " invalid=%" G_GUINT64_FORMAT,
              &counts->valid, &counts->zero, &counts->invalid)
      != 3)
    fail_msg ("unexpected verifier output: %s %s", out, err);
  return WIFEXITED (status) ? WEXITSTATUS (status) : -1;
}

static void
test_writer_writes_verifiable_blocks (void **state)
{
  VmsTestVmOptions options = {
    .workload = "writer",
    .extra_cmdline = "vms.write_rate_kib=1024 vms.write_span_mib=16",
    .disks = { { "raw", DISK_SIZE } },
  };
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsTestVm) vm = vms_test_vm_start (&options, &error);
  g_autoptr (JsonNode) stopped = NULL;
  PatternCounts counts = { 0 };

  vms_assert_ok (vm, error);
  vms_assert_ok (vms_test_vm_wait_ready (vm, &error), error);
  vms_assert_ok (vms_test_vm_wait_serial (vm, "vms-heartbeat 3", 60000,
                                          &error),
                 error);
  stopped = vms_qmp_execute (vm->qmp, "stop", NULL, &error);
  vms_assert_ok (stopped, error);

  assert_int_equal (run_verifier (vm->disk_paths[0], &counts), 0);
  assert_true (counts.valid > 0);
  assert_int_equal (counts.invalid, 0);
  assert_int_equal (counts.valid + counts.zero, 16 * 256);

  /* The verifier is not blind: a block overwritten behind the guest's
   * back is caught. */
  vms_assert_ok (vms_test_vm_qemu_io (vm, "vd0", "write -P 0x11 0 4k",
                                      &error),
                 error);
  assert_int_equal (run_verifier (vm->disk_paths[0], &counts), 1);
  assert_int_equal (counts.invalid, 1);
}

static double
measure_dirty_rate (VmsTestVm *vm)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) started = NULL;

  /* page-sampling: the dirty-bitmap mode crashes QEMU 7.2 under TCG. */
  started = vms_qmp_execute_json (vm->qmp, "calc-dirty-rate",
                                  "{\"calc-time\": 2, \"mode\": "
                                  "\"page-sampling\"}", &error);
  vms_assert_ok (started, error);
  for (int tries = 0; tries < 200; tries++)
    {
      g_autoptr (JsonNode) result = vms_qmp_execute (vm->qmp,
                                                     "query-dirty-rate", NULL,
                                                     &error);
      JsonObject *object;

      vms_assert_ok (result, error);
      object = json_node_get_object (result);
      if (g_str_equal (json_object_get_string_member (object, "status"),
                       "measured"))
        return json_object_get_int_member (object, "dirty-rate");
      g_usleep (100 * 1000);
    }
  fail_msg ("calc-dirty-rate did not finish");
  return 0;
}

static void
test_dirtier_dirties_memory (void **state)
{
  VmsTestVmOptions options = {
    .workload = "dirtier",
    .extra_cmdline = "vms.mem_mib=128 vms.mem_rate_mib=64",
    .memory_mib = 384,
  };
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsTestVm) vm = vms_test_vm_start (&options, &error);
  double rate;

  vms_assert_ok (vm, error);
  vms_assert_ok (vms_test_vm_wait_ready (vm, &error), error);
  vms_assert_ok (vms_test_vm_wait_serial (vm, "vms-dirtier: pages", 60000,
                                          &error),
                 error);
  rate = measure_dirty_rate (vm);
  /* 64 MiB/s asked; sampling is coarse and TCG may fall behind, but an
   * idle guest measures about 0. */
  print_message ("measured dirty rate %.0f MB/s\n", rate);
  if (rate < 8)
    fail_msg ("dirty rate %.0f MB/s, expected near 64", rate);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_writer_writes_verifiable_blocks),
    cmocka_unit_test (test_dirtier_dirties_memory),
  };

  verify_pattern = vms_test_built_program ("VMS_VERIFY_PATTERN");
  vms_test_require_program ("qemu-img", "qemu-utils");
  vms_test_guest_prepare ();
  return cmocka_run_group_tests_name ("guest-workload", tests, NULL, NULL);
}
