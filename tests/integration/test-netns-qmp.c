/* Integration tests: QMP over TCP between two network-namespace hosts, and
 * what a cut link does to it.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-test.h"
#include "vms-test-netns.h"
#include "vms-test-vm.h"

#include <sys/wait.h>

#define QMP_PORT "4444"

typedef struct
{
  VmsTestHosts *hosts; /* host A runs QEMU, host B runs vmshift */
  VmsTestVm *vm;       /* QEMU in host A */
} Fixture;

static const char *vmshift;

static int
setup (void **state)
{
  Fixture *fixture = g_new0 (Fixture, 1);
  g_autoptr (GError) error = NULL;
  VmsTestVmOptions options = {
    .no_guest = TRUE,
    .qmp_tcp = VMS_TEST_HOST_A_ADDRESS ":" QMP_PORT,
  };

  *state = fixture;
  fixture->hosts = vms_test_hosts_new (&error);
  if (!fixture->hosts)
    {
      print_error ("cannot make test hosts: %s\n", error->message);
      return -1;
    }
  options.netns = fixture->hosts->namespace[0];
  fixture->vm = vms_test_vm_start (&options, &error);
  if (!fixture->vm)
    {
      print_error ("cannot start QEMU in host A: %s\n", error->message);
      return -1;
    }
  return 0;
}

static int
teardown (void **state)
{
  Fixture *fixture = *state;

  vms_test_vm_free (fixture->vm);
  vms_test_hosts_free (fixture->hosts);
  g_free (fixture);
  return 0;
}

/* Run vmshift qmp from host B against QEMU's TCP monitor on host A. */
static int
qmp_from_host_b (Fixture *fixture, const char *timeout, char **out,
                 char **err)
{
  const char *program[] = { vmshift, "qmp", "--timeout", timeout,
                            "tcp:" VMS_TEST_HOST_A_ADDRESS ":" QMP_PORT,
                            "query-status", NULL };
  g_auto (GStrv) argv = vms_test_hosts_wrap_argv (fixture->hosts, 1, program);
  g_autoptr (GError) error = NULL;
  int status;

  if (!g_spawn_sync (NULL, argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, out,
                     err, &status, &error))
    fail_msg ("cannot run vmshift in host B: %s", error->message);
  return WIFEXITED (status) ? WEXITSTATUS (status) : -1;
}

static void
test_qmp_across_hosts_and_link_cut (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (GError) error = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  gint64 start;

  assert_int_equal (qmp_from_host_b (fixture, "10", &out, &err), 0);
  assert_non_null (strstr (out, "\"status\":\"running\""));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* With the link down a connect cannot complete: a clear timeout, not a
   * hang. */
  assert_true (vms_test_hosts_set_link (fixture->hosts, 0, FALSE, &error));
  vms_assert_no_error (error);
  start = g_get_monotonic_time ();
  assert_int_equal (qmp_from_host_b (fixture, "2", &out, &err), 3);
  assert_true (g_get_monotonic_time () - start < 20 * G_USEC_PER_SEC);
  assert_non_null (strstr (err, "vmshift: qmp: "));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  assert_true (vms_test_hosts_set_link (fixture->hosts, 0, TRUE, &error));
  assert_int_equal (qmp_from_host_b (fixture, "10", &out, &err), 0);
  assert_non_null (strstr (out, "\"status\":\"running\""));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_qmp_across_hosts_and_link_cut, setup,
                                     teardown),
  };

  vms_test_require_root ("network namespaces");
  vms_test_require_program ("ip", "iproute2");
  vms_test_require_program ("qemu-system-x86_64", "qemu-system-x86");
  vmshift = vms_test_built_program ("VMS_VMSHIFT");
  return cmocka_run_group_tests_name ("netns-qmp", tests, NULL, NULL);
}
