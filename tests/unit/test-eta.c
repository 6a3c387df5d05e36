/* Unit tests: the smoothed rate and ETA of a copy, on a simulated clock.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vms-eta.h"

#define MiB (1024 * 1024)
#define TICK_US (250 * 1000)

/* A 22 s copy whose completions come in bursts (as a queue of requests
 * and a FLUSH give them): each tick sees between half and one and a half
 * times the mean.  From the fourth second on, the ETA stays near the true time
 * left and counts down with the clock instead of jumping. */
static void
test_bursty_copy_counts_down_steadily (void **state)
{
  const guint64 total = 220 * MiB;
  const double rate = 10 * MiB;
  g_autoptr (GRand) rand = g_rand_new_with_seed (3);
  VmsEta eta;
  gint64 now = 5 * G_USEC_PER_SEC;
  guint64 done = 0;
  double previous = -1, elapsed = 0, truth;

  vms_eta_start (&eta, 0, now, 0);
  while (done < total)
    {
      double seconds;

      now += TICK_US;
      done = MIN (total, done
                             + (guint64)(g_rand_double_range (rand, 0.5, 1.5)
                                         * rate * TICK_US / G_USEC_PER_SEC));
      vms_eta_sample (&eta, done, now);
      seconds = vms_eta_seconds (&eta, total - done);
      elapsed += TICK_US / (double)G_USEC_PER_SEC;
      truth = (total - done) / rate;
      if (elapsed > 3 && done < total)
        {
          if (fabs (seconds - truth) > MAX (2.0, 0.25 * truth))
            fail_msg ("ETA %.1f s at %.1f s, %.1f s left", seconds, elapsed,
                      truth);
          if (fabs (seconds - (previous - 0.25)) > MAX (1.0, 0.1 * previous))
            fail_msg ("ETA jumped from %.1f s to %.1f s at %.1f s", previous,
                      seconds, elapsed);
        }
      previous = seconds;
    }
  assert_true (fabs (vms_eta_rate (&eta) - rate) < 0.2 * rate);
}

/* Nothing is claimed from the first tenths of a second; then the rate is
 * the average since the start, not the first sample nor a value dragged
 * towards zero. */
static void
test_warm_up_gives_the_average_so_far (void **state)
{
  VmsEta eta;
  gint64 now = G_USEC_PER_SEC;

  vms_eta_start (&eta, 0, now, 0);
  vms_eta_sample (&eta, 8 * MiB, now + 500 * 1000);
  assert_true (vms_eta_rate (&eta) == 0);
  assert_true (vms_eta_seconds (&eta, MiB) < 0);
  /* 16 MiB/s for half a second, then 4 MiB/s for a second. */
  vms_eta_sample (&eta, 12 * MiB, now + 1500 * 1000);
  assert_true (vms_eta_rate (&eta) > 7 * MiB);
  assert_true (vms_eta_rate (&eta) < 10 * MiB);
  assert_true (vms_eta_seconds (&eta, 0) == 0);
}

/* A pass that starts with the previous pass's rate has an ETA at once,
 * and moves to its own rate within a few time constants. */
static void
test_prior_rate_then_own_rate (void **state)
{
  VmsEta eta;
  gint64 now = G_USEC_PER_SEC;
  guint64 done = 0;

  vms_eta_start (&eta, 0, now, 20 * MiB);
  assert_true (fabs (vms_eta_seconds (&eta, 40 * MiB) - 2.0) < 0.01);
  for (int i = 0; i < 4 * VMS_ETA_TIME_CONSTANT_S * 4; i++)
    {
      now += TICK_US;
      done += 5 * MiB / 4;
      vms_eta_sample (&eta, done, now);
    }
  assert_true (fabs (vms_eta_rate (&eta) - 5 * MiB) < 0.1 * 5 * MiB);
}

/* Samples closer together than the minimum add up into one; a count that
 * restarts (a new origin) keeps the rate. */
static void
test_short_samples_and_restart (void **state)
{
  VmsEta eta;
  gint64 now = G_USEC_PER_SEC;
  guint64 done = 0;

  vms_eta_start (&eta, 0, now, 0);
  for (int i = 0; i < 300; i++)
    {
      /* 10 ms apart at 4 MiB/s. */
      now += 10 * 1000;
      done += 4 * MiB / 100;
      vms_eta_sample (&eta, done, now);
    }
  assert_true (fabs (vms_eta_rate (&eta) - 4 * MiB) < 0.05 * 4 * MiB);
  vms_eta_sample (&eta, 0, now + 10 * 1000);
  assert_true (fabs (vms_eta_rate (&eta) - 4 * MiB) < 0.05 * 4 * MiB);
  vms_eta_sample (&eta, MiB, now + 260 * 1000);
  assert_true (fabs (vms_eta_rate (&eta) - 4 * MiB) < 0.05 * 4 * MiB);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_bursty_copy_counts_down_steadily),
    cmocka_unit_test (test_warm_up_gives_the_average_so_far),
    cmocka_unit_test (test_prior_rate_then_own_rate),
    cmocka_unit_test (test_short_samples_and_restart),
  };

  return cmocka_run_group_tests_name ("eta", tests, NULL, NULL);
}
