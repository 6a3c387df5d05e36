/* Unit tests: the limits a write backpressure step gives a device
 * (qemu-filter/vms-throttle.c); QEMU itself is in test-backpressure.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vms-throttle.h"

/* No limits of its own: bps_wr is set, nothing else. */
static void
test_unlimited_gets_bps_wr (void **state)
{
  g_autoptr (JsonObject) own = json_object_new ();
  g_autoptr (JsonObject) limited = NULL;
  const char *member = NULL;

  (void)state;
  json_object_set_int_member (own, "bps_wr", 0);
  limited = vms_throttle_limit_writes (own, 1048576, &member);
  assert_string_equal (member, "bps_wr");
  assert_int_equal (vms_throttle_get (limited, "bps_wr"), 1048576);
  assert_int_equal (json_object_get_size (limited), 1);
  /* The guest's own record is not touched: it is what comes back. */
  assert_int_equal (vms_throttle_get (own, "bps_wr"), 0);
}

/* The guest's other limits stay as they are; a lower bps_wr of its own
 * is never raised. */
static void
test_own_limits_kept (void **state)
{
  g_autoptr (JsonObject) own = json_object_new ();
  g_autoptr (JsonObject) lowered = NULL;
  g_autoptr (JsonObject) kept = NULL;
  const char *member = NULL;

  (void)state;
  json_object_set_int_member (own, "bps_wr", 4000000);
  json_object_set_int_member (own, "bps_wr_max", 8000000);
  json_object_set_int_member (own, "iops_rd", 300);
  json_object_set_string_member (own, "group", "tenant");
  lowered = vms_throttle_limit_writes (own, 1000000, &member);
  assert_string_equal (member, "bps_wr");
  assert_int_equal (vms_throttle_get (lowered, "bps_wr"), 1000000);
  assert_int_equal (vms_throttle_get (lowered, "bps_wr_max"), 8000000);
  assert_int_equal (vms_throttle_get (lowered, "iops_rd"), 300);
  assert_string_equal (json_object_get_string_member (lowered, "group"),
                       "tenant");
  kept = vms_throttle_limit_writes (own, 6000000, &member);
  assert_int_equal (vms_throttle_get (kept, "bps_wr"), 4000000);
}

/* QEMU refuses bps_wr beside a total bps: the total is lowered. */
static void
test_total_limit_lowered (void **state)
{
  g_autoptr (JsonObject) own = json_object_new ();
  g_autoptr (JsonObject) limited = NULL;
  const char *member = NULL;

  (void)state;
  json_object_set_int_member (own, "bps", 50000000);
  limited = vms_throttle_limit_writes (own, 2000000, &member);
  assert_string_equal (member, "bps");
  assert_int_equal (vms_throttle_get (limited, "bps"), 2000000);
  assert_int_equal (vms_throttle_get (limited, "bps_wr"), 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_unlimited_gets_bps_wr),
    cmocka_unit_test (test_own_limits_kept),
    cmocka_unit_test (test_total_limit_lowered),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
