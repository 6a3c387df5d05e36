/* Unit tests: splitting a QMP byte stream into messages.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vms-qmp-error.h"
#include "vms-qmp-framer.h"

static const char *const three_messages
    = "{\"QMP\": {\"version\": {}}}\r\n"
      "{\"return\": {}, \"id\": \"a\"}\r\n"
      "{\"event\": \"STOP\", \"data\": {\"s\": \"}{\\\"\\\\\"}}\r\n";

static const char *const expected[] = {
  "{\"QMP\": {\"version\": {}}}",
  "{\"return\": {}, \"id\": \"a\"}",
  "{\"event\": \"STOP\", \"data\": {\"s\": \"}{\\\"\\\\\"}}",
};

static void
assert_all_expected (VmsQmpFramer *framer)
{
  for (gsize i = 0; i < G_N_ELEMENTS (expected); i++)
    {
      gsize length = 0;
      g_autofree char *message = vms_qmp_framer_pop (framer, &length);

      assert_non_null (message);
      assert_string_equal (message, expected[i]);
      assert_int_equal (length, strlen (expected[i]));
    }
  assert_null (vms_qmp_framer_pop (framer, NULL));
  assert_false (vms_qmp_framer_has_partial (framer));
}

static void
test_merged_messages (void **state)
{
  g_autoptr (VmsQmpFramer) framer = vms_qmp_framer_new (0);
  g_autoptr (GError) error = NULL;

  assert_true (vms_qmp_framer_feed (framer, three_messages,
                                    strlen (three_messages), &error));
  assert_all_expected (framer);
}

/* Every way of cutting the stream in two must give the same messages: a
 * quote or backslash at the cut must not change string tracking. */
static void
test_split_at_every_byte (void **state)
{
  gsize total = strlen (three_messages);

  for (gsize cut = 0; cut <= total; cut++)
    {
      g_autoptr (VmsQmpFramer) framer = vms_qmp_framer_new (0);

      assert_true (vms_qmp_framer_feed (framer, three_messages, cut, NULL));
      assert_true (vms_qmp_framer_feed (framer, three_messages + cut,
                                        total - cut, NULL));
      assert_all_expected (framer);
    }
}

static void
test_one_byte_at_a_time (void **state)
{
  g_autoptr (VmsQmpFramer) framer = vms_qmp_framer_new (0);
  gsize total = strlen (three_messages);

  for (gsize i = 0; i < total; i++)
    {
      assert_true (vms_qmp_framer_feed (framer, three_messages + i, 1, NULL));
      /* The first message is complete only once its closing brace is in. */
      if (i + 1 < strlen (expected[0]))
        assert_true (i == 0 || vms_qmp_framer_has_partial (framer));
    }
  assert_all_expected (framer);
}

static void
test_partial_is_held (void **state)
{
  g_autoptr (VmsQmpFramer) framer = vms_qmp_framer_new (0);
  const char *half = "{\"return\": {\"a\": [1, 2";

  assert_true (vms_qmp_framer_feed (framer, half, strlen (half), NULL));
  assert_null (vms_qmp_framer_pop (framer, NULL));
  assert_true (vms_qmp_framer_has_partial (framer));
  assert_true (vms_qmp_framer_feed (framer, "]}}", 3, NULL));
  g_autofree char *message = vms_qmp_framer_pop (framer, NULL);
  assert_string_equal (message, "{\"return\": {\"a\": [1, 2]}}");
}

static void
assert_rejected (const char *input, gsize length, const char *needle)
{
  g_autoptr (VmsQmpFramer) framer = vms_qmp_framer_new (64);
  g_autoptr (GError) error = NULL;

  assert_false (vms_qmp_framer_feed (framer, input, length, &error));
  assert_non_null (error);
  assert_true (g_error_matches (error, VMS_QMP_ERROR, VMS_QMP_ERROR_PROTOCOL));
  if (!strstr (error->message, needle))
    fail_msg ("error '%s' does not mention '%s'", error->message, needle);

  /* A broken stream stays broken: resynchronising could misread data. */
  g_clear_error (&error);
  assert_false (vms_qmp_framer_feed (framer, "{}", 2, &error));
  assert_non_null (error);
}

static void
test_garbage_before_message (void **state)
{
  assert_rejected ("hello", 5, "expected '{'");
}

static void
test_garbage_between_messages (void **state)
{
  assert_rejected ("{}\r\nx{}", 7, "byte 0x78");
}

static void
test_top_level_array_rejected (void **state)
{
  assert_rejected ("[1]", 3, "expected '{'");
}

static void
test_nul_byte_rejected (void **state)
{
  assert_rejected ("\0{}", 3, "byte 0x00");
}

static void
test_control_byte_in_string (void **state)
{
  assert_rejected ("{\"a\": \"x\ny\"}", 12, "control byte 0x0a");
}

static void
test_oversized_message (void **state)
{
  g_autofree char *big = g_strnfill (100, 'a');
  g_autofree char *input = g_strdup_printf ("{\"a\": \"%s\"}", big);

  assert_rejected (input, strlen (input), "longer than 64 bytes");
}

static void
test_deep_nesting (void **state)
{
  g_autoptr (VmsQmpFramer) framer = vms_qmp_framer_new (0);
  g_autoptr (GString) input = g_string_new ("{\"a\":");
  g_autoptr (GError) error = NULL;

  for (int i = 0; i < VMS_QMP_FRAMER_MAX_DEPTH + 1; i++)
    g_string_append_c (input, '[');
  assert_false (vms_qmp_framer_feed (framer, input->str, input->len, &error));
  assert_true (g_error_matches (error, VMS_QMP_ERROR, VMS_QMP_ERROR_PROTOCOL));
  assert_non_null (strstr (error->message, "nested deeper"));
}

static void
test_whitespace_only (void **state)
{
  g_autoptr (VmsQmpFramer) framer = vms_qmp_framer_new (0);

  assert_true (vms_qmp_framer_feed (framer, " \r\n\t\r\n", 6, NULL));
  assert_null (vms_qmp_framer_pop (framer, NULL));
  assert_false (vms_qmp_framer_has_partial (framer));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_merged_messages),
    cmocka_unit_test (test_split_at_every_byte),
    cmocka_unit_test (test_one_byte_at_a_time),
    cmocka_unit_test (test_partial_is_held),
    cmocka_unit_test (test_garbage_before_message),
    cmocka_unit_test (test_garbage_between_messages),
    cmocka_unit_test (test_top_level_array_rejected),
    cmocka_unit_test (test_nul_byte_rejected),
    cmocka_unit_test (test_control_byte_in_string),
    cmocka_unit_test (test_oversized_message),
    cmocka_unit_test (test_deep_nesting),
    cmocka_unit_test (test_whitespace_only),
  };

  return cmocka_run_group_tests_name ("qmp-framer", tests, NULL, NULL);
}
