/* Unit tests: what a copy keeps in flight, over a simulated path.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vms-pace.h"

#define REQUEST (256 * 1024)

typedef struct
{
  double rate;       /* the path's bytes per us */
  gint64 delay_us;   /* its fixed delay */
  guint64 delivered; /* bytes acknowledged after warm_up_us */
  guint64 max_cap;   /* largest cap after warm_up_us */
  guint64 min_cap;   /* smallest cap after warm_up_us */
} Path;

/* A sender keeping what the pace allows in flight over one FIFO path for
 * duration_us: each request is acknowledged when the path has carried it
 * and the delay has passed. */
static void
simulate (VmsPace *pace, Path *path, gint64 duration_us, gint64 warm_up_us)
{
  GQueue flight = G_QUEUE_INIT; /* acknowledgement times, in order */
  g_autoptr (GArray) issued = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_autoptr (GArray) marks = g_array_new (FALSE, FALSE, sizeof (guint64));
  guint64 flight_bytes = 0;
  gint64 now = 1, path_free = 1;

  path->min_cap = G_MAXUINT64;
  while (now < duration_us)
    {
      while (flight_bytes == 0 || flight_bytes + REQUEST <= vms_pace_cap (pace))
        {
          gint64 start = MAX (now, path_free);
          gint64 *ack = g_new (gint64, 1);

          path_free = start + (gint64)(REQUEST / path->rate);
          *ack = path_free + path->delay_us;
          g_queue_push_tail (&flight, ack);
          guint64 mark = vms_pace_mark (pace);

          g_array_append_val (issued, now);
          g_array_append_val (marks, mark);
          flight_bytes += REQUEST;
        }
      {
        g_autofree gint64 *ack = g_queue_pop_head (&flight);
        gint64 sent = g_array_index (issued, gint64, 0);
        guint64 mark = g_array_index (marks, guint64, 0);

        g_array_remove_index (issued, 0);
        g_array_remove_index (marks, 0);
        now = *ack;
        flight_bytes -= REQUEST;
        vms_pace_delivered (pace, REQUEST, sent, mark, now);
        if (now > warm_up_us)
          {
            path->delivered += REQUEST;
            path->max_cap = MAX (path->max_cap, vms_pace_cap (pace));
            path->min_cap = MIN (path->min_cap, vms_pace_cap (pace));
          }
      }
    }
  g_queue_clear_full (&flight, g_free);
}

/* A 100 Mbit/s link: a few requests keep it busy; the cap stays near
 * twice the product, not at the ceiling (64 MiB), so a reset costs
 * little. */
static void
test_slow_link_keeps_little_in_flight (void **state)
{
  VmsPace pace;
  Path path = { .rate = 12.5, .delay_us = 200 };
  double product = (REQUEST / path.rate + path.delay_us) * path.rate;

  vms_pace_init (&pace, 2 * REQUEST, 64 * 1024 * 1024);
  simulate (&pace, &path, 20 * G_USEC_PER_SEC, 2 * G_USEC_PER_SEC);
  /* The link was kept busy... */
  assert_true (path.delivered >= 0.97 * path.rate * 18 * G_USEC_PER_SEC);
  /* ... with no more than the floor or twice the product in flight. */
  assert_true (path.max_cap <= MAX (2 * REQUEST, 2.1 * product));
}

/* 1 GB/s with 10 ms of delay: the cap grows from the floor to about
 * twice the product (20 MB) and the path is kept busy. */
static void
test_long_fat_path_grows_the_cap (void **state)
{
  VmsPace pace;
  Path path = { .rate = 1000, .delay_us = 10000 };
  double product = (REQUEST / path.rate + path.delay_us) * path.rate;

  vms_pace_init (&pace, 2 * REQUEST, 256 * 1024 * 1024);
  simulate (&pace, &path, 5 * G_USEC_PER_SEC, G_USEC_PER_SEC);
  assert_true (path.delivered >= 0.95 * path.rate * 4 * G_USEC_PER_SEC);
  assert_true (path.min_cap >= product);
  assert_true (path.max_cap <= 2.1 * product);
}

/* Never above the ceiling, never below the floor. */
static void
test_floor_and_ceiling (void **state)
{
  VmsPace pace;
  Path fast = { .rate = 1000, .delay_us = 10000 };
  Path slow = { .rate = 0.1, .delay_us = 0 };

  vms_pace_init (&pace, REQUEST, 4 * REQUEST);
  simulate (&pace, &fast, G_USEC_PER_SEC, G_USEC_PER_SEC / 2);
  assert_int_equal (pace.cap, 4 * REQUEST);
  vms_pace_init (&pace, 2 * REQUEST, 64 * REQUEST);
  simulate (&pace, &slow, 60 * G_USEC_PER_SEC, G_USEC_PER_SEC);
  assert_true (slow.min_cap >= 2 * REQUEST);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_slow_link_keeps_little_in_flight),
    cmocka_unit_test (test_long_fat_path_grows_the_cap),
    cmocka_unit_test (test_floor_and_ceiling),
  };

  return cmocka_run_group_tests_name ("pace", tests, NULL, NULL);
}
