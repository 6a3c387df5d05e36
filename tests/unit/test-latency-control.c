/* Unit tests: replication backpressure's rate controller
 * (lib/vms-latency-control.c): cuts while the guest's latency is above its
 * allowance, raises once it is back near its level, within the floor and
 * the user's --max-bandwidth.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vms-latency-control.h"

#define MiB (1024 * 1024)
/* A guest at 500 µs before the copy, allowed 2 ms more. */
#define BASELINE 500.0
#define ALLOWANCE 2000.0
#define HIGH (BASELINE + ALLOWANCE + 1)
#define CALM (BASELINE + ALLOWANCE / 2 - 1)
#define BETWEEN (BASELINE + ALLOWANCE * 0.75)

/* Unlimited copy at 50 MiB/s: the first cut is from what it reached. */
static void
test_cut_from_measured_rate (void **state)
{
  VmsLatencyControl control;

  vms_latency_control_init (&control, BASELINE, ALLOWANCE, 0);
  assert_int_equal (control.rate, 0);
  assert_int_equal (vms_latency_control_sample (&control, HIGH, 50.0 * MiB),
                    VMS_LATENCY_CONTROL_CUT);
  assert_int_equal (control.rate, (guint64)(50.0 * MiB * 0.6));
  /* Then from the limit, or what the copy reached below it. */
  assert_int_equal (vms_latency_control_sample (&control, HIGH, 30.0 * MiB),
                    VMS_LATENCY_CONTROL_CUT);
  assert_int_equal (control.rate, (guint64)(30.0 * MiB * 0.6));
  assert_int_equal (vms_latency_control_sample (&control, HIGH, 5.0 * MiB),
                    VMS_LATENCY_CONTROL_CUT);
  assert_int_equal (control.rate, 3 * MiB);
}

/* Never below the floor; at the floor, holds. */
static void
test_floor (void **state)
{
  VmsLatencyControl control;

  vms_latency_control_init (&control, BASELINE, ALLOWANCE, 0);
  assert_int_equal (vms_latency_control_sample (&control, HIGH, 1.5 * MiB),
                    VMS_LATENCY_CONTROL_CUT);
  assert_int_equal (control.rate, VMS_LATENCY_CONTROL_FLOOR);
  assert_int_equal (vms_latency_control_sample (&control, HIGH, 1.0 * MiB),
                    VMS_LATENCY_CONTROL_HOLD);
  assert_int_equal (control.rate, VMS_LATENCY_CONTROL_FLOOR);
  /* A copy slower than the floor already is not "cut" to it. */
  vms_latency_control_init (&control, BASELINE, ALLOWANCE, 0);
  assert_int_equal (vms_latency_control_sample (&control, HIGH, 0.5 * MiB),
                    VMS_LATENCY_CONTROL_HOLD);
  assert_int_equal (control.rate, 0);
  /* Nor one whose rate is not known yet. */
  assert_int_equal (vms_latency_control_sample (&control, HIGH, -1),
                    VMS_LATENCY_CONTROL_HOLD);
}

/* Raises after CALM_SAMPLES calm samples in a row, ×1.5, and lifts the
 * limit once back at the rate before the first cut. */
static void
test_raise_back_to_unlimited (void **state)
{
  VmsLatencyControl control;
  guint raises = 0;

  vms_latency_control_init (&control, BASELINE, ALLOWANCE, 0);
  vms_latency_control_sample (&control, HIGH, 10.0 * MiB);
  assert_int_equal (control.rate, 6 * MiB);
  for (guint i = 1; i < VMS_LATENCY_CONTROL_CALM_SAMPLES; i++)
    assert_int_equal (vms_latency_control_sample (&control, CALM, 6.0 * MiB),
                      VMS_LATENCY_CONTROL_HOLD);
  /* Between the half and the whole allowance: not calm, the count
   * starts again. */
  assert_int_equal (vms_latency_control_sample (&control, BETWEEN, 6.0 * MiB),
                    VMS_LATENCY_CONTROL_HOLD);
  for (guint i = 1; i < VMS_LATENCY_CONTROL_CALM_SAMPLES; i++)
    vms_latency_control_sample (&control, CALM, 6.0 * MiB);
  assert_int_equal (control.rate, 6 * MiB);
  assert_int_equal (vms_latency_control_sample (&control, CALM, 6.0 * MiB),
                    VMS_LATENCY_CONTROL_RAISE);
  assert_int_equal (control.rate, 9 * MiB);
  /* Too few writes to tell count as calm: the guest stopped writing. */
  for (guint i = 0; i < 10 * VMS_LATENCY_CONTROL_CALM_SAMPLES; i++)
    if (vms_latency_control_sample (&control, -1, 9.0 * MiB)
        == VMS_LATENCY_CONTROL_RAISE)
      raises++;
  assert_int_equal (raises, 1);
  assert_int_equal (control.rate, 0);
}

/* With --max-bandwidth: the first cut is from it (the copy reaching it),
 * and raises stop there. */
static void
test_ceiling (void **state)
{
  VmsLatencyControl control;

  vms_latency_control_init (&control, BASELINE, ALLOWANCE, 20 * MiB);
  assert_int_equal (control.rate, 20 * MiB);
  assert_int_equal (vms_latency_control_sample (&control, HIGH, 20.0 * MiB),
                    VMS_LATENCY_CONTROL_CUT);
  assert_int_equal (control.rate, 12 * MiB);
  for (guint i = 0; i < VMS_LATENCY_CONTROL_CALM_SAMPLES; i++)
    vms_latency_control_sample (&control, CALM, 12.0 * MiB);
  assert_int_equal (control.rate, 18 * MiB);
  for (guint i = 0; i < VMS_LATENCY_CONTROL_CALM_SAMPLES; i++)
    vms_latency_control_sample (&control, CALM, 18.0 * MiB);
  assert_int_equal (control.rate, 20 * MiB);
  for (guint i = 0; i < 3 * VMS_LATENCY_CONTROL_CALM_SAMPLES; i++)
    assert_int_equal (vms_latency_control_sample (&control, CALM, 20.0 * MiB),
                      VMS_LATENCY_CONTROL_HOLD);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_cut_from_measured_rate),
    cmocka_unit_test (test_floor),
    cmocka_unit_test (test_raise_back_to_unlimited),
    cmocka_unit_test (test_ceiling),
  };

  return cmocka_run_group_tests_name ("latency-control", tests, NULL, NULL);
}
