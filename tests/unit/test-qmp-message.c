/* Unit tests: classifying and type-checking QMP messages.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vms-qmp-error.h"
#include "vms-qmp-message.h"

static VmsQmpMessage *
parse_ok (const char *text)
{
  g_autoptr (GError) error = NULL;
  VmsQmpMessage *message = vms_qmp_message_parse (text, -1, &error);

  if (!message)
    fail_msg ("'%s' rejected: %s", text, error->message);
  return message;
}

static void
test_greeting (void **state)
{
  g_autoptr (VmsQmpMessage) message = parse_ok (
      "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, "
      "\"major\": 7}, \"package\": \"Debian\"}, \"capabilities\": "
      "[\"oob\"]}}");

  assert_int_equal (message->kind, VMS_QMP_MESSAGE_GREETING);
  assert_true (JSON_NODE_HOLDS_OBJECT (message->value));
}

static void
test_return_with_id (void **state)
{
  g_autoptr (VmsQmpMessage) message = parse_ok (
      "{\"return\": {\"status\": \"running\"}, \"id\": \"vms-7\"}");

  assert_int_equal (message->kind, VMS_QMP_MESSAGE_RETURN);
  assert_true (message->has_id);
  assert_string_equal (message->id, "vms-7");
  assert_string_equal (
      json_object_get_string_member (json_node_get_object (message->value),
                                     "status"),
      "running");
}

static void
test_return_without_id (void **state)
{
  g_autoptr (VmsQmpMessage) message = parse_ok ("{\"return\": []}");

  assert_int_equal (message->kind, VMS_QMP_MESSAGE_RETURN);
  assert_false (message->has_id);
  assert_null (message->id);
  assert_true (JSON_NODE_HOLDS_ARRAY (message->value));
}

static void
test_return_with_foreign_id (void **state)
{
  g_autoptr (VmsQmpMessage) message = parse_ok ("{\"return\": {}, \"id\": 5}");

  assert_true (message->has_id);
  assert_null (message->id);
}

static void
test_error_known_class (void **state)
{
  g_autoptr (VmsQmpMessage) message = parse_ok (
      "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command "
      "x has not been found\"}, \"id\": \"vms-1\"}");
  g_autoptr (GError) error = NULL;

  assert_int_equal (message->kind, VMS_QMP_MESSAGE_ERROR);
  assert_string_equal (message->id, "vms-1");
  error = vms_qmp_message_to_error (message);
  assert_true (g_error_matches (error, VMS_QMP_ERROR,
                                VMS_QMP_ERROR_COMMAND_NOT_FOUND));
  assert_string_equal (error->message, "The command x has not been found");
  assert_string_equal (vms_qmp_error_class_name (error->code),
                       "CommandNotFound");
}

static void
test_error_unknown_class (void **state)
{
  g_autoptr (VmsQmpMessage) message = parse_ok (
      "{\"error\": {\"class\": \"FutureError\", \"desc\": \"boom\"}}");
  g_autoptr (GError) error = vms_qmp_message_to_error (message);

  assert_true (g_error_matches (error, VMS_QMP_ERROR, VMS_QMP_ERROR_GENERIC));
  /* The class is kept in the text since no code mirrors it. */
  assert_string_equal (error->message, "FutureError: boom");
}

static void
test_error_classes_round_trip (void **state)
{
  static const char *const classes[] = { "GenericError", "CommandNotFound",
                                         "DeviceNotActive", "DeviceNotFound",
                                         "KVMMissingCap" };

  for (gsize i = 0; i < G_N_ELEMENTS (classes); i++)
    assert_string_equal (
        vms_qmp_error_class_name (vms_qmp_error_from_class (classes[i])),
        classes[i]);
  assert_null (vms_qmp_error_class_name (VMS_QMP_ERROR_TIMEOUT));
}

static void
test_event_with_data (void **state)
{
  g_autoptr (VmsQmpMessage) message = parse_ok (
      "{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 123456}, "
      "\"event\": \"MIGRATION\", \"data\": {\"status\": \"active\"}}");

  assert_int_equal (message->kind, VMS_QMP_MESSAGE_EVENT);
  assert_string_equal (message->event, "MIGRATION");
  assert_int_equal (message->timestamp_us, 1700000000123456LL);
  assert_true (JSON_NODE_HOLDS_OBJECT (message->value));
}

static void
test_event_without_data_or_clock (void **state)
{
  g_autoptr (VmsQmpMessage) message = parse_ok (
      "{\"timestamp\": {\"seconds\": -1, \"microseconds\": -1}, "
      "\"event\": \"STOP\"}");

  assert_int_equal (message->kind, VMS_QMP_MESSAGE_EVENT);
  assert_null (message->value);
  assert_int_equal (message->timestamp_us, -1);
}

static void
assert_malformed (const char *text, const char *needle)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsQmpMessage) message = vms_qmp_message_parse (text, -1,
                                                             &error);

  assert_null (message);
  assert_true (g_error_matches (error, VMS_QMP_ERROR, VMS_QMP_ERROR_PROTOCOL));
  if (!strstr (error->message, needle))
    fail_msg ("error '%s' for '%s' does not mention '%s'", error->message,
              text, needle);
}

static void
test_malformed (void **state)
{
  assert_malformed ("{\"return\": ", "invalid JSON");
  assert_malformed ("{\"return\": {}}}", "invalid JSON");
  assert_malformed ("[1, 2]", "top level is not a JSON object");
  assert_malformed ("\"hello\"", "top level is not a JSON object");
  assert_malformed ("{}", "none of return, error, event or QMP");
  assert_malformed ("{\"retrun\": {}}", "none of return");
  assert_malformed ("{\"error\": \"bad\"}", "\"error\" is not an object");
  assert_malformed ("{\"error\": {\"class\": \"GenericError\"}}",
                    "lacks string");
  assert_malformed ("{\"error\": {\"class\": 1, \"desc\": \"x\"}}",
                    "lacks string");
  assert_malformed ("{\"event\": 42}", "\"event\" is not a string");
  assert_malformed ("{\"event\": \"STOP\", \"data\": [1]}",
                    "\"data\" is not an object");
  assert_malformed ("{\"QMP\": 1}", "greeting");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_greeting),
    cmocka_unit_test (test_return_with_id),
    cmocka_unit_test (test_return_without_id),
    cmocka_unit_test (test_return_with_foreign_id),
    cmocka_unit_test (test_error_known_class),
    cmocka_unit_test (test_error_unknown_class),
    cmocka_unit_test (test_error_classes_round_trip),
    cmocka_unit_test (test_event_with_data),
    cmocka_unit_test (test_event_without_data_or_clock),
    cmocka_unit_test (test_malformed),
  };

  return cmocka_run_group_tests_name ("qmp-message", tests, NULL, NULL);
}
