/* Unit tests: the byte range set, against a plain bitmap as the model.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vms-range-set.h"

/* Small enough to check every byte, big enough for many ranges. */
#define MODEL_SIZE 4096

typedef struct
{
  guint8 *covered;  /* one byte per position, set to 1 by each piece */
  guint64 pieces;   /* gap pieces seen */
  guint64 last_end; /* end of the previous piece, to check order */
} GapCheck;

static gboolean
mark_gap (guint64 offset, guint64 length, gpointer user_data)
{
  GapCheck *check = user_data;

  assert_true (length > 0);
  /* Pieces come in order and never touch: touching ones would be one. */
  assert_true (check->pieces == 0 || offset > check->last_end);
  for (guint64 i = offset; i < offset + length; i++)
    check->covered[i] = 1;
  check->pieces++;
  check->last_end = offset + length;
  return TRUE;
}

/* The set's ranges, walked whole, cover exactly the model's bytes, in
 * order and without touching (mark_gap checks both). */
static void
assert_ranges_match_model (VmsRangeSet *set, const guint8 *model)
{
  g_autofree guint8 *seen = g_new0 (guint8, MODEL_SIZE);
  GapCheck check = { seen };

  assert_true (vms_range_set_foreach (set, mark_gap, &check));
  assert_memory_equal (seen, model, MODEL_SIZE);
  assert_int_equal (check.pieces, vms_range_set_count (set));
}

static void
test_random_against_model (void **state)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed (42);

  for (int round = 0; round < 50; round++)
    {
      g_autoptr (VmsRangeSet) set = vms_range_set_new ();
      g_autofree guint8 *model = g_new0 (guint8, MODEL_SIZE);
      g_autofree guint8 *gaps = g_new0 (guint8, MODEL_SIZE);
      guint64 total = 0;

      for (int op = 0; op < 200; op++)
        {
          guint64 offset = g_rand_int_range (rand, 0, MODEL_SIZE);
          guint64 length = g_rand_int_range (rand, 0, 64);

          length = MIN (length, MODEL_SIZE - offset);
          vms_range_set_add (set, offset, length);
          for (guint64 i = offset; i < offset + length; i++)
            model[i] = 1;
        }
      for (guint i = 0; i < MODEL_SIZE; i++)
        total += model[i];
      assert_int_equal (vms_range_set_total (set), total);
      assert_ranges_match_model (set, model);

      /* Queries over random windows agree with the model. */
      for (int query = 0; query < 200; query++)
        {
          guint64 offset = g_rand_int_range (rand, 0, MODEL_SIZE);
          guint64 length = g_rand_int_range (rand, 1, 256);
          GapCheck check = { gaps };
          gboolean any = FALSE;

          length = MIN (length, MODEL_SIZE - offset);
          memset (gaps, 0, MODEL_SIZE);
          assert_true (vms_range_set_foreach_gap (set, offset, length,
                                                  mark_gap, &check));
          for (guint64 i = 0; i < MODEL_SIZE; i++)
            {
              gboolean inside = i >= offset && i < offset + length;

              assert_int_equal (gaps[i], inside && !model[i]);
              any |= inside && model[i];
            }
          assert_int_equal (vms_range_set_overlaps (set, offset, length),
                            any);
        }
    }
}

static void
test_merging (void **state)
{
  g_autoptr (VmsRangeSet) set = vms_range_set_new ();

  vms_range_set_add (set, 100, 10);
  vms_range_set_add (set, 120, 10);
  assert_int_equal (vms_range_set_count (set), 2);
  /* Touching ranges merge: [110, 120) joins both. */
  vms_range_set_add (set, 110, 10);
  assert_int_equal (vms_range_set_count (set), 1);
  assert_int_equal (vms_range_set_total (set), 30);
  /* A range covering several swallows them. */
  vms_range_set_add (set, 200, 5);
  vms_range_set_add (set, 300, 5);
  vms_range_set_add (set, 0, 1000);
  assert_int_equal (vms_range_set_count (set), 1);
  assert_int_equal (vms_range_set_total (set), 1000);
  vms_range_set_add (set, 5, 0);
  assert_int_equal (vms_range_set_total (set), 1000);
}

static gboolean
fail_on_gap (guint64 offset, guint64 length, gpointer user_data)
{
  (*(guint *) user_data)++;
  return FALSE;
}

static void
test_edges (void **state)
{
  g_autoptr (VmsRangeSet) set = vms_range_set_new ();
  guint calls = 0;

  /* Near 2^64 nothing wraps around. */
  vms_range_set_add (set, G_MAXUINT64 - 10, 100);
  assert_int_equal (vms_range_set_total (set), 10);
  assert_true (vms_range_set_overlaps (set, G_MAXUINT64 - 1, 1));
  assert_false (vms_range_set_overlaps (set, 0, 1000));
  assert_false (vms_range_set_overlaps (set, 0, 0));
  /* A callback that fails stops the walk. */
  assert_false (vms_range_set_foreach_gap (set, 0, 100, fail_on_gap, &calls));
  assert_int_equal (calls, 1);
  vms_range_set_add (set, 0, 10);
  calls = 0;
  assert_false (vms_range_set_foreach (set, fail_on_gap, &calls));
  assert_int_equal (calls, 1);
}

static gboolean
never_called (guint64 offset, guint64 length, gpointer user_data)
{
  fail_msg ("called for [%" G_GUINT64_FORMAT ", +%" G_GUINT64_FORMAT
            ") of an empty set",
            offset, length);
  return FALSE;
}

static void
test_foreach_empty (void **state)
{
  g_autoptr (VmsRangeSet) set = vms_range_set_new ();

  assert_true (vms_range_set_foreach (set, never_called, NULL));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_random_against_model),
    cmocka_unit_test (test_merging),
    cmocka_unit_test (test_edges),
    cmocka_unit_test (test_foreach_empty),
  };

  return cmocka_run_group_tests_name ("range-set", tests, NULL, NULL);
}
