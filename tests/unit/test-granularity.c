/* Unit tests: the dirty-bitmap granularity chosen per disk.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vms-granularity.h"

#include <string.h>

#define KiB G_GUINT64_CONSTANT (1024)
#define MiB (1024 * KiB)
#define GiB (1024 * MiB)
#define TiB (1024 * GiB)

/* QEMU's HBitmap: 1 GiB at 4 KiB is 262144 bits, 4096 words, and the
 * levels above it 64 words and 1 word. */
static void
test_bitmap_bytes_counts_hbitmap_levels (void **state)
{
  (void)state;
  assert_int_equal (vms_granularity_bitmap_bytes (GiB, 4096),
                    (4096 + 64 + 1) * 8);
  assert_int_equal (vms_granularity_bitmap_bytes (GiB, 65536),
                    (256 + 4 + 1) * 8);
  /* A partial last granule still takes a bit. */
  assert_int_equal (vms_granularity_bitmap_bytes (4097, 4096), 8);
}

/* The default budget keeps 4 KiB bits up to 1007 GiB of disks per VM
 * (two bitmaps each); beyond, bits double until the bitmaps fit. */
static void
test_memory_floor_follows_the_budget (void **state)
{
  const guint64 budget = VMS_GRANULARITY_DEFAULT_BITMAP_MEMORY;

  (void)state;
  assert_int_equal (vms_granularity_memory_floor (GiB, budget), 4096);
  assert_int_equal (vms_granularity_memory_floor (1007 * GiB, budget), 4096);
  assert_int_equal (vms_granularity_memory_floor (TiB, budget), 8192);
  assert_int_equal (vms_granularity_memory_floor (16 * TiB, budget), 128 * KiB);
  /* 64 GiB in 1 MiB: 16 KiB bits need 2 x 512 KiB plus the upper
   * levels, one more than the budget. */
  assert_int_equal (vms_granularity_memory_floor (64 * GiB, MiB), 32 * KiB);
  /* Nothing fits: QEMU's coarsest. */
  assert_int_equal (vms_granularity_memory_floor (G_MAXUINT64 / 2, 1),
                    VMS_GRANULARITY_MAX);
}

static void
test_choice_follows_writes_and_memory (void **state)
{
  VmsGranularityChoice choice;

  (void)state;
  /* Writes unknown: the floor. */
  vms_granularity_choose (GiB, 4096, 0, 0, &choice);
  assert_int_equal (choice.granularity, 4096);
  assert_int_equal (choice.why, VMS_GRANULARITY_WHY_FLOOR);
  assert_int_equal (choice.write_average, 0);
  assert_int_equal (choice.memory,
                    2 * vms_granularity_bitmap_bytes (GiB, 4096));
  /* 4 KiB writes, and 6000-byte ones, still the floor. */
  vms_granularity_choose (GiB, 4096, 400 * 4096, 400, &choice);
  assert_int_equal (choice.granularity, 4096);
  assert_int_equal (choice.why, VMS_GRANULARITY_WHY_FLOOR);
  vms_granularity_choose (GiB, 4096, 6000 * 10, 10, &choice);
  assert_int_equal (choice.granularity, 4096);
  /* Larger writes: rounded down to a power of two, at most 64 KiB. */
  vms_granularity_choose (GiB, 4096, 20000, 1, &choice);
  assert_int_equal (choice.granularity, 16 * KiB);
  assert_int_equal (choice.why, VMS_GRANULARITY_WHY_WRITES);
  vms_granularity_choose (GiB, 4096, 8 * MiB, 2, &choice);
  assert_int_equal (choice.granularity, 64 * KiB);
  assert_int_equal (choice.why, VMS_GRANULARITY_WHY_WRITES);
  /* Memory over writes where it asks for more, or as much. */
  vms_granularity_choose (GiB, 8192, 4096, 1, &choice);
  assert_int_equal (choice.granularity, 8192);
  assert_int_equal (choice.why, VMS_GRANULARITY_WHY_MEMORY);
  vms_granularity_choose (GiB, 64 * KiB, 64 * KiB, 1, &choice);
  assert_int_equal (choice.why, VMS_GRANULARITY_WHY_MEMORY);
}

static void
test_format_and_describe (void **state)
{
  VmsGranularityChoice choice;
  g_autofree char *b = vms_granularity_format (512);
  g_autofree char *k = vms_granularity_format (4096);
  g_autofree char *g = vms_granularity_format (VMS_GRANULARITY_MAX);
  g_autofree char *text = NULL;

  (void)state;
  assert_string_equal (b, "512 B");
  assert_string_equal (k, "4 KiB");
  assert_string_equal (g, "2 GiB");
  vms_granularity_choose (GiB, 4096, 0, 0, &choice);
  text = vms_granularity_describe (&choice);
  assert_string_equal (text, "the 4 KiB floor; average guest write not "
                             "seen; 2 bitmaps of 65.0 KiB in QEMU");
}

/* --granularity overrides the choice (its memory counted at that size);
 * without it the choice is vms_granularity_choose's. */
static void
test_asked_overrides_the_choice (void **state)
{
  VmsGranularityChoice chosen, asked;

  (void)state;
  vms_granularity_choose_asked (GiB, 4096, 4096 * 100, 100, 0, &chosen);
  assert_int_equal (chosen.granularity, 4096);
  assert_int_equal (chosen.why, VMS_GRANULARITY_WHY_FLOOR);
  vms_granularity_choose_asked (GiB, 4096, 4096 * 100, 100, 65536, &asked);
  assert_int_equal (asked.granularity, 65536);
  assert_int_equal (asked.why, VMS_GRANULARITY_WHY_OPTION);
  assert_int_equal (asked.write_average, 4096);
  assert_int_equal (asked.memory,
                    VMS_GRANULARITY_BITMAPS_PER_DISK
                        * vms_granularity_bitmap_bytes (GiB, 65536));
}

/* The options sync, migrate and estimate share: checked one way. */
static void
test_options_parsed_one_way (void **state)
{
  guint32 granularity = 1;
  guint64 memory = 7;
  g_autoptr (GError) error = NULL;

  (void)state;
  assert_true (vms_granularity_parse_options (NULL, NULL, &granularity, &memory,
                                              &error));
  assert_int_equal (granularity, 0);
  assert_int_equal (memory, 7);
  assert_true (vms_granularity_parse_options ("64K", "1M", &granularity,
                                              &memory, &error));
  assert_int_equal (granularity, 65536);
  assert_int_equal (memory, 1024 * 1024);
  assert_false (vms_granularity_parse_options ("3K", NULL, &granularity,
                                               &memory, &error));
  assert_non_null (strstr (error->message, "--granularity must be a power"));
  g_clear_error (&error);
  assert_false (vms_granularity_parse_options ("256", NULL, &granularity,
                                               &memory, &error));
  assert_non_null (strstr (error->message, "--granularity"));
  g_clear_error (&error);
  assert_false (vms_granularity_parse_options (NULL, "1K", &granularity,
                                               &memory, &error));
  assert_non_null (strstr (error->message, "--bitmap-memory"));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_bitmap_bytes_counts_hbitmap_levels),
    cmocka_unit_test (test_memory_floor_follows_the_budget),
    cmocka_unit_test (test_choice_follows_writes_and_memory),
    cmocka_unit_test (test_format_and_describe),
    cmocka_unit_test (test_asked_overrides_the_choice),
    cmocka_unit_test (test_options_parsed_one_way),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
