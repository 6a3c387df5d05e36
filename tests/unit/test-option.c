/* Unit tests: every number typed on a command line goes through one
 * checked parser; each boundary is accepted or refused here.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vms-option.h"

#include <string.h>

#define KIB G_GUINT64_CONSTANT (1024)
#define TIB (KIB * KIB * KIB * KIB)

typedef gboolean (*Parse) (const char *option, const char *text,
                           guint64 minimum, guint64 maximum, guint64 *out,
                           GError **error);

static void
assert_parses (Parse parse, const char *text, guint64 minimum, guint64 maximum,
               guint64 expected)
{
  g_autoptr (GError) error = NULL;
  guint64 out = 12345;

  if (!parse ("--opt", text, minimum, maximum, &out, &error))
    fail_msg ("'%s' refused: %s", text, error->message);
  assert_int_equal (out, expected);
}

/* Refused, *out untouched, and the message names the option, the
 * range and the text as typed. */
static void
assert_refused (Parse parse, const char *text, guint64 minimum, guint64 maximum,
                const char *range)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *quoted = g_strdup_printf ("not '%s'", text);
  guint64 out = 12345;

  if (parse ("--opt", text, minimum, maximum, &out, &error))
    fail_msg ("'%s' accepted as %" G_GUINT64_FORMAT, text, out);
  assert_int_equal (out, 12345);
  assert_true (
      g_error_matches (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE));
  if (!g_str_has_prefix (error->message, "--opt wants ")
      || !strstr (error->message, range) || !strstr (error->message, quoted))
    fail_msg ("'%s': message '%s' lacks '%s'", text, error->message, range);
}

static void
test_count_boundaries (void **state)
{
  assert_parses (vms_option_count, "0", 0, 10, 0);
  assert_parses (vms_option_count, "10", 0, 10, 10);
  assert_parses (vms_option_count, "007", 1, 10, 7);
  assert_parses (vms_option_count, "18446744073709551615", 0, G_MAXUINT64,
                 G_MAXUINT64);
  assert_refused (vms_option_count, "11", 0, 10, "a count from 0 to 10");
  assert_refused (vms_option_count, "0", 1, 10, "from 1 to 10");
  for (guint i = 0; i < 8; i++)
    {
      static const char *const bad[]
          = { "-1", "+1", " 1", "1 ", "", "1x", "0x10", "1K" };

      assert_refused (vms_option_count, bad[i], 0, 100, "from 0 to 100");
    }
  /* One past 2^64 - 1, and far past: no wrap to a small number. */
  assert_refused (vms_option_count, "18446744073709551616", 0, G_MAXUINT64,
                  "a count");
  assert_refused (vms_option_count, "99999999999999999999999", 0, G_MAXUINT64,
                  "a count");
}

static void
test_null_keeps_default (void **state)
{
  guint64 out = 42;
  double seconds = 1.5;

  assert_true (vms_option_count ("--opt", NULL, 1, 2, &out, NULL));
  assert_true (vms_option_size ("--opt", NULL, 1, 2, &out, NULL));
  assert_true (vms_option_decimal ("--opt", NULL, "x", 1, 2, &seconds, NULL));
  assert_int_equal (out, 42);
  assert_true (seconds == 1.5);
}

static void
test_seconds_and_integer_name_the_unit (void **state)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GError) ms_error = NULL;
  guint64 out = 0;

  assert_false (
      vms_option_seconds ("--io-timeout", "0", 1, 86400, &out, &error));
  assert_string_equal (error->message, "--io-timeout wants a number of "
                                       "seconds from 1 to 86400, not '0'");
  assert_false (vms_option_integer ("--max-downtime", "-5",
                                    "a number of milliseconds", 1, 2000000,
                                    &out, &ms_error));
  assert_string_equal (ms_error->message,
                       "--max-downtime wants a number of milliseconds from 1 "
                       "to 2000000, not '-5'");
  assert_true (
      vms_option_seconds ("--io-timeout", "86400", 1, 86400, &out, NULL));
  assert_int_equal (out, 86400);
}

static void
test_size_suffixes (void **state)
{
  assert_parses (vms_option_size, "4096", 0, TIB, 4096);
  assert_parses (vms_option_size, "64K", 0, TIB, 64 * KIB);
  assert_parses (vms_option_size, "64k", 0, TIB, 64 * KIB);
  assert_parses (vms_option_size, "64KB", 0, TIB, 64 * KIB);
  assert_parses (vms_option_size, "64KiB", 0, TIB, 64 * KIB);
  assert_parses (vms_option_size, "3M", 0, TIB, 3 * KIB * KIB);
  assert_parses (vms_option_size, "2G", 0, TIB, 2 * KIB * KIB * KIB);
  assert_parses (vms_option_size, "1T", 0, TIB, TIB);
  assert_parses (vms_option_size, "0", 0, TIB, 0);
}

static void
test_size_boundaries (void **state)
{
  const char *range = "a size in bytes like 64M or 1G from 4K to 32M";

  assert_parses (vms_option_size, "4096", 4096, 32 * KIB * KIB, 4096);
  assert_parses (vms_option_size, "32M", 4096, 32 * KIB * KIB, 32 * KIB * KIB);
  assert_refused (vms_option_size, "4095", 4096, 32 * KIB * KIB, range);
  assert_refused (vms_option_size, "33554433", 4096, 32 * KIB * KIB, range);
  assert_refused (vms_option_size, "-1", 0, TIB, "from 0 to 1T");
  assert_refused (vms_option_size, "-1024", 0, TIB, "from 0 to 1T");
  assert_refused (vms_option_size, "+1M", 0, TIB, "from 0 to 1T");
  assert_refused (vms_option_size, "1.5G", 0, TIB, "from 0 to 1T");
  assert_refused (vms_option_size, "M", 0, TIB, "from 0 to 1T");
  assert_refused (vms_option_size, "1X", 0, TIB, "from 0 to 1T");
  assert_refused (vms_option_size, "1MM", 0, TIB, "from 0 to 1T");
  assert_refused (vms_option_size, "1Mb ", 0, TIB, "from 0 to 1T");
  /* The suffix must not wrap a big number round to a small one. */
  assert_refused (vms_option_size, "16777216T", 0, G_MAXUINT64, "from 0 to");
  assert_refused (vms_option_size, "18446744073709551615K", 0, G_MAXUINT64,
                  "from 0 to");
  assert_refused (vms_option_size, "1025G", 0, TIB, "from 0 to 1T");
  /* A maximum that is no round unit is printed as digits. */
  assert_refused (vms_option_size, "1001", 0, 1000, "from 0 to 1000");
}

static void
test_rate_says_per_second (void **state)
{
  g_autoptr (GError) error = NULL;
  guint64 out = 0;

  assert_false (
      vms_option_rate ("--max-bandwidth", "-5", KIB, TIB, &out, &error));
  assert_string_equal (error->message,
                       "--max-bandwidth wants a rate in bytes per second "
                       "like 50M from 1K to 1T, not '-5'");
  assert_true (
      vms_option_rate ("--max-bandwidth", "50M", KIB, TIB, &out, NULL));
  assert_int_equal (out, 50 * KIB * KIB);
}

static void
test_decimal (void **state)
{
  static const char *const bad[]
      = { "-1",  "+1",  "",    ".5", "5.",  "1e3",
          "inf", "nan", "0x1", " 1", "1,5", "1.2.3" };
  double out = 7;
  g_autoptr (GError) error = NULL;

  assert_true (
      vms_option_decimal ("--t", "0.5", "s", 0.001, 86400, &out, NULL));
  assert_true (out == 0.5);
  assert_true (
      vms_option_decimal ("--t", "86400", "s", 0.001, 86400, &out, NULL));
  assert_true (out == 86400);
  assert_true (
      vms_option_decimal ("--t", "0.001", "s", 0.001, 86400, &out, NULL));
  assert_false (vms_option_decimal ("--t", "0", "a number of seconds", 0.001,
                                    86400, &out, &error));
  assert_string_equal (error->message, "--t wants a number of seconds from "
                                       "0.001 to 86400, not '0'");
  assert_false (
      vms_option_decimal ("--t", "86400.5", "s", 0.001, 86400, &out, NULL));
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    if (vms_option_decimal ("--t", bad[i], "s", 0, 1e9, &out, NULL))
      fail_msg ("'%s' accepted as %g", bad[i], out);
  assert_true (out == 0.001);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_count_boundaries),
    cmocka_unit_test (test_null_keeps_default),
    cmocka_unit_test (test_seconds_and_integer_name_the_unit),
    cmocka_unit_test (test_size_suffixes),
    cmocka_unit_test (test_size_boundaries),
    cmocka_unit_test (test_rate_says_per_second),
    cmocka_unit_test (test_decimal),
  };

  return cmocka_run_group_tests_name ("option", tests, NULL, NULL);
}
