/* Unit tests: vmshift --server's reading of vmshiftd's event stream
 * (tools/vms-server.c): only the followed run's events after its id are
 * shown, whole and in order; its end says how it went; a stream that
 * ends early, or sends what no event is, is an error.  What vmshiftd
 * sends is checked, not trusted: wrong types are skipped, not fatal.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-server.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

/* What the followed run showed, one "event|message|fields" line each. */
static void
on_event (const char *event, JsonObject *fields, const char *text,
          gpointer user_data)
{
  GString *seen = user_data;
  g_autoptr (JsonNode) node = json_node_new (JSON_NODE_OBJECT);
  g_autofree char *json = NULL;

  json_node_set_object (node, fields);
  json = json_to_string (node, FALSE);
  g_string_append_printf (seen, "%s|%s|%s\n", event, text ? text : "", json);
}

/* Follow plan "p" after event id 2 in stream; *seen what it showed. */
static gboolean
follow (const char *stream, GString *seen, gboolean *ok, GError **error)
{
  g_autoptr (GInputStream) memory
      = g_memory_input_stream_new_from_data (stream, strlen (stream), NULL);
  g_autoptr (GInputStream) lines
      = G_INPUT_STREAM (g_data_input_stream_new (memory));
  g_autoptr (VmsProgress) progress = vms_progress_new_callback (on_event, seen);

  return vms_server_follow (lines, "plan", "p", "plan-run-ended", 2, progress,
                            ok, NULL, error);
}

static void
test_follows_its_run_only (void **state)
{
  const char *stream
      = ": vmshiftd events\n\n"
        "id: 1\nevent: plan-vm\ndata: "
        "{\"plan\":\"p\",\"event\":\"plan-vm\"}\n\n"
        "id: 2\nevent: x\ndata: {\"plan\":\"p\",\"event\":\"x\"}\n\n"
        "id: 3\nevent: state\ndata: {\"plan\":\"q\",\"event\":\"state\"}\n\n"
        "id: 4\nevent: state\ndata: {\"plan\":\"p\",\"vm\":\"a\","
        "\"state\":\"background\",\"event\":\"state\",\"message\":\"copying\"}"
        "\n\n"
        "id: 5\nevent: bad\ndata: {\"plan\":{},\"event\":\"bad\"}\n\n"
        "id: 6\nevent: bad\ndata: {\"plan\":\"p\",\"event\":7}\n\n"
        "id: 7\nevent: bad\ndata: not json\n\n"
        "id: 8\nevent: plan-run-ended\ndata: {\"plan\":\"p\",\"ok\":true,"
        "\"event\":\"plan-run-ended\",\"message\":\"every VM migrated\"}\n\n"
        "id: 9\nevent: late\ndata: {\"plan\":\"p\",\"event\":\"late\"}\n\n";
  g_autoptr (GString) seen = g_string_new (NULL);
  g_autoptr (GError) error = NULL;
  gboolean ok = FALSE;

  assert_true (follow (stream, seen, &ok, &error));
  assert_null (error);
  assert_true (ok);
  assert_string_equal (
      seen->str,
      "state|copying|{\"plan\":\"p\",\"vm\":\"a\",\"state\":\"background\"}\n"
      "plan-run-ended|every VM migrated|{\"plan\":\"p\",\"ok\":true}\n");
}

static void
test_a_run_that_failed (void **state)
{
  const char *stream = "id: 3\ndata: {\"plan\":\"p\",\"ok\":\"yes\","
                       "\"event\":\"plan-run-ended\"}\n\n";
  g_autoptr (GString) seen = g_string_new (NULL);
  g_autoptr (GError) error = NULL;
  gboolean ok = TRUE;

  /* "ok" that is not true is not a success. */
  assert_true (follow (stream, seen, &ok, &error));
  assert_false (ok);
}

static void
test_stream_ends_early (void **state)
{
  const char *stream = "id: 3\ndata: {\"plan\":\"p\",\"event\":\"state\"}\n\n";
  g_autoptr (GString) seen = g_string_new (NULL);
  g_autoptr (GError) error = NULL;
  gboolean ok = TRUE;

  assert_false (follow (stream, seen, &ok, &error));
  assert_true (
      g_error_matches (error, VMS_SERVER_ERROR, VMS_SERVER_ERROR_CONNECT));
  assert_false (ok);
  assert_string_equal (seen->str, "state||{\"plan\":\"p\"}\n");
}

static void
test_line_too_long (void **state)
{
  g_autofree char *long_line = g_strnfill (2 * 1024 * 1024, 'x');
  g_autofree char *stream = g_strdup_printf ("data: %s\n\n", long_line);
  g_autoptr (GString) seen = g_string_new (NULL);
  g_autoptr (GError) error = NULL;
  gboolean ok;

  assert_false (follow (stream, seen, &ok, &error));
  assert_true (
      g_error_matches (error, VMS_SERVER_ERROR, VMS_SERVER_ERROR_PROTOCOL));
  assert_int_equal (seen->len, 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_follows_its_run_only),
    cmocka_unit_test (test_a_run_that_failed),
    cmocka_unit_test (test_stream_ends_early),
    cmocka_unit_test (test_line_too_long),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
