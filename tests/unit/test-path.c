/* Unit tests: paths the user types become absolute, and only those.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vms-path.h"

#include <unistd.h>

/* The tests run in a known directory. */
#define CWD "/tmp"

typedef char *(*Absolute) (const char *);

static void
assert_absolute (Absolute absolute, const char *given, const char *expected)
{
  g_autofree char *result = absolute (given);

  assert_string_equal (result, expected);
}

static void
test_plain_paths (void **state)
{
  assert_absolute (vms_path_absolute, "st", CWD "/st");
  assert_absolute (vms_path_absolute, "./a/../st/", CWD "/st");
  assert_absolute (vms_path_absolute, "/var/lib//vmshift", "/var/lib/vmshift");
  assert_null (vms_path_absolute (NULL));
}

static void
test_qmp_addresses (void **state)
{
  assert_absolute (vms_path_absolute_qmp_address, "qmp:vm.qmp",
                   "qmp:" CWD "/vm.qmp");
  assert_absolute (vms_path_absolute_qmp_address, "unix:run/vm.qmp",
                   "unix:" CWD "/run/vm.qmp");
  assert_absolute (vms_path_absolute_qmp_address, "run/vm.qmp",
                   CWD "/run/vm.qmp");
  assert_absolute (vms_path_absolute_qmp_address, "qmp:/run/vm.qmp",
                   "qmp:/run/vm.qmp");
  assert_absolute (vms_path_absolute_qmp_address, "tcp:host:4444",
                   "tcp:host:4444");
  /* Not an address: left for the parser to refuse. */
  assert_absolute (vms_path_absolute_qmp_address, "vm", "vm");
}

static void
test_migration_uris (void **state)
{
  assert_absolute (vms_path_absolute_migration_uri, "unix:mig.sock",
                   "unix:" CWD "/mig.sock");
  assert_absolute (vms_path_absolute_migration_uri, "tcp:10.0.0.2:4444",
                   "tcp:10.0.0.2:4444");
  assert_absolute (vms_path_absolute_migration_uri, "exec:cat > x",
                   "exec:cat > x");
}

static void
test_sink_uris (void **state)
{
  assert_absolute (vms_path_absolute_sink_uri, "nbd+unix:///?socket=s.sock",
                   "nbd+unix:///?socket=" CWD "/s.sock");
  assert_absolute (vms_path_absolute_sink_uri,
                   "nbds://vmshift@host:10809/?tls-psk-file=keys/keys.psk",
                   "nbds://vmshift@host:10809/?tls-psk-file=" CWD
                   "/keys/keys.psk");
  assert_absolute (vms_path_absolute_sink_uri,
                   "nbds+unix:///exp?tls-certificates=pki&socket=a%20b#frag",
                   "nbds+unix:///exp?tls-certificates=" CWD "/pki&socket=" CWD
                   "/a%20b#frag");
  /* Absolute values, other keys and no query stay exactly as typed. */
  assert_absolute (vms_path_absolute_sink_uri,
                   "nbd+unix:///?socket=/run/s%2esock&tls=off",
                   "nbd+unix:///?socket=/run/s%2esock&tls=off");
  assert_absolute (vms_path_absolute_sink_uri, "nbd://host:10809/",
                   "nbd://host:10809/");
  assert_absolute (vms_path_absolute_sink_uri,
                   "nbd://h/?socket=", "nbd://h/?socket=");
}

static void
test_libvirt_uris (void **state)
{
  assert_absolute (vms_path_absolute_libvirt_uri,
                   "qemu:///system?socket=run/libvirt-sock",
                   "qemu:///system?socket=" CWD "/run/libvirt-sock");
  assert_absolute (vms_path_absolute_libvirt_uri,
                   "qemu+ssh://root@host/system?keyfile=id&no_verify=1",
                   "qemu+ssh://root@host/system?keyfile=" CWD
                   "/id&no_verify=1");
  assert_absolute (vms_path_absolute_libvirt_uri, "qemu:///system",
                   "qemu:///system");
}

static void
test_make_absolute (void **state)
{
  char *path = g_strdup ("st");
  char *none = NULL;

  vms_path_make_absolute (&path, vms_path_absolute);
  assert_string_equal (path, CWD "/st");
  vms_path_make_absolute (&none, vms_path_absolute);
  assert_null (none);
  g_free (path);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_plain_paths),
    cmocka_unit_test (test_qmp_addresses),
    cmocka_unit_test (test_migration_uris),
    cmocka_unit_test (test_sink_uris),
    cmocka_unit_test (test_libvirt_uris),
    cmocka_unit_test (test_make_absolute),
  };

  if (chdir (CWD) < 0)
    return 1;
  return cmocka_run_group_tests_name ("path", tests, NULL, NULL);
}
