/* Unit tests: the token bucket, on a simulated clock.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vms-rate.h"

/* Send as fast as the bucket allows for a simulated duration and check the
 * average rate. */
static void
test_average_rate_holds (void **state)
{
  const guint64 limit = 10 * 1024 * 1024;
  const guint64 request = 256 * 1024;
  g_autoptr (VmsRate) rate = vms_rate_new (limit, 1024 * 1024);
  gint64 now = 1000000;
  const gint64 end = now + 10 * G_USEC_PER_SEC;
  guint64 sent = 0;

  while (now < end)
    {
      gint64 wait = vms_rate_try_take (rate, request, now);

      if (wait == 0)
        sent += request;
      else
        now += wait;
    }
  /* Ten seconds at 10 MiB/s, plus the initial full bucket. */
  assert_true (sent >= 10 * limit - request);
  assert_true (sent <= 10 * limit + 1024 * 1024 + request);
}

static void
test_unlimited_and_refund (void **state)
{
  g_autoptr (VmsRate) none = vms_rate_new (0, 0);
  g_autoptr (VmsRate) rate = vms_rate_new (1000, 1000);

  assert_int_equal (vms_rate_try_take (none, G_MAXUINT32, 1), 0);
  assert_int_equal (vms_rate_try_take (NULL, 5, 1), 0);
  assert_int_equal (vms_rate_try_take (rate, 1000, 1), 0);
  assert_true (vms_rate_try_take (rate, 500, 1) > 0);
  /* A request that turned out to be zeroes gives its bytes back. */
  vms_rate_refund (rate, 600);
  assert_int_equal (vms_rate_try_take (rate, 500, 1), 0);
}

static void
test_oversized_request_waits_for_full_bucket (void **state)
{
  g_autoptr (VmsRate) rate = vms_rate_new (1000, 100);
  gint64 wait;

  assert_int_equal (vms_rate_try_take (rate, 100, 1), 0);
  /* 1000 bytes with a 100-byte bucket: wait for the bucket to fill
   * (0.1 s), then go, and pay for it afterwards. */
  wait = vms_rate_try_take (rate, 1000, 1);
  assert_true (wait > 99000 && wait < 101000);
  assert_int_equal (vms_rate_try_take (rate, 1000, 1 + wait), 0);
  wait = vms_rate_try_take (rate, 100, 1 + wait);
  assert_true (wait >= G_USEC_PER_SEC);
}

/* A limit changed while sending: the rate follows it, from unlimited
 * to a limit, down, up, and back to none. */
static void
test_limit_changes (void **state)
{
  const guint64 request = 64 * 1024;
  g_autoptr (VmsRate) rate = vms_rate_new (0, 1024 * 1024);
  const guint64 limits[] = { 4 * 1024 * 1024, 1024 * 1024, 8 * 1024 * 1024 };
  gint64 now = 1000000;

  assert_int_equal (vms_rate_try_take (rate, request, now), 0);
  for (guint i = 0; i < G_N_ELEMENTS (limits); i++)
    {
      const gint64 end = now + 4 * G_USEC_PER_SEC;
      guint64 sent = 0;

      vms_rate_set_limit (rate, limits[i], limits[i] / 10);
      assert_int_equal (vms_rate_get_limit (rate), limits[i]);
      while (now < end)
        {
          gint64 wait = vms_rate_try_take (rate, request, now);

          if (wait == 0)
            sent += request;
          else
            now += wait;
        }
      /* Four seconds at the limit, give or take a bucket. */
      assert_true (sent >= 4 * limits[i] - limits[i] / 10 - request);
      assert_true (sent <= 4 * limits[i] + limits[i] / 10 + request);
    }
  vms_rate_set_limit (rate, 0, 1024 * 1024);
  assert_int_equal (vms_rate_try_take (rate, 100 * 1024 * 1024, now), 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_average_rate_holds),
    cmocka_unit_test (test_unlimited_and_refund),
    cmocka_unit_test (test_oversized_request_waits_for_full_bucket),
    cmocka_unit_test (test_limit_changes),
  };

  return cmocka_run_group_tests_name ("rate", tests, NULL, NULL);
}
