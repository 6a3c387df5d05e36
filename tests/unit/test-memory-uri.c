/* Unit tests: which --dest-uri keeps memory on this host, and so may
 * carry it in clear text without --insecure.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vms-memory-uri.h"

static void
test_loopback (void **state)
{
  assert_true (vms_memory_uri_is_loopback ("unix:/run/mig.sock"));
  assert_true (vms_memory_uri_is_loopback ("tcp:127.0.0.1:4444"));
  assert_true (vms_memory_uri_is_loopback ("tcp:127.1.2.3:4444"));
  assert_true (vms_memory_uri_is_loopback ("tcp:localhost:4444"));
  assert_true (vms_memory_uri_is_loopback ("tcp:LocalHost:4444"));
  assert_true (vms_memory_uri_is_loopback ("tcp:[::1]:4444"));
}

static void
test_off_loopback (void **state)
{
  assert_false (vms_memory_uri_is_loopback ("tcp:10.231.0.2:4444"));
  assert_false (vms_memory_uri_is_loopback ("tcp:192.0.2.10:4444"));
  assert_false (vms_memory_uri_is_loopback ("tcp:[2001:db8::1]:4444"));
  assert_false (vms_memory_uri_is_loopback ("tcp:0.0.0.0:4444"));
  /* Names are not resolved: one that is loopback today may not be. */
  assert_false (vms_memory_uri_is_loopback ("tcp:dest.example:4444"));
  assert_false (vms_memory_uri_is_loopback ("exec:nc 192.0.2.10 4444"));
  assert_false (vms_memory_uri_is_loopback ("fd:mig"));
  assert_false (vms_memory_uri_is_loopback ("rdma:192.0.2.10:4444"));
  /* Malformed: QEMU would refuse it, and it is not proven local. */
  assert_false (vms_memory_uri_is_loopback ("tcp:127.0.0.1"));
  assert_false (vms_memory_uri_is_loopback ("tcp:::1:4444"));
  assert_false (vms_memory_uri_is_loopback ("tcp:[::1]4444"));
  assert_false (vms_memory_uri_is_loopback (NULL));
}

static void
test_tcp_host (void **state)
{
  g_autofree char *v4 = vms_memory_uri_tcp_host ("tcp:10.0.0.2:4444");
  g_autofree char *v6 = vms_memory_uri_tcp_host ("tcp:[fe80::1]:4444");

  assert_string_equal (v4, "10.0.0.2");
  assert_string_equal (v6, "fe80::1");
  assert_null (vms_memory_uri_tcp_host ("unix:/x"));
  assert_null (vms_memory_uri_tcp_host ("tcp::4444"));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_loopback),
    cmocka_unit_test (test_off_loopback),
    cmocka_unit_test (test_tcp_host),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
