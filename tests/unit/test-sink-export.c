/* Unit tests: export names the sink accepts and refuses.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vms-sink-export.h"

static void
assert_parses (const char *name, VmsSinkExportKind kind, const char *replica,
               guint64 size)
{
  g_auto (VmsSinkExport) parsed = { 0 };
  g_autoptr (GError) error = NULL;

  if (!vms_sink_export_parse (name, &parsed, &error))
    fail_msg ("'%s' refused: %s", name, error->message);
  assert_int_equal (parsed.kind, kind);
  assert_string_equal (parsed.replica ? parsed.replica : "(none)",
                       replica ? replica : "(none)");
  assert_int_equal (parsed.create_size, size);
}

static void
test_accepted (void **state)
{
  g_autofree char *longest = g_strnfill (VMS_SINK_MAX_NAME, 'z');

  assert_parses ("vm1-disk0", VMS_SINK_EXPORT_DATA, "vm1-disk0", 0);
  assert_parses ("vm1-disk0@live", VMS_SINK_EXPORT_LIVE, "vm1-disk0", 0);
  assert_parses ("a.b_c+d@hashes", VMS_SINK_EXPORT_HASHES, "a.b_c+d", 0);
  assert_parses ("x@commit", VMS_SINK_EXPORT_COMMIT, "x", 0);
  assert_parses ("x@live-reset", VMS_SINK_EXPORT_LIVE_RESET, "x", 0);
  assert_parses ("x@create=1073741824", VMS_SINK_EXPORT_CREATE, "x",
                 G_GUINT64_CONSTANT (1073741824));
  assert_parses ("x@create=9223372036854775807", VMS_SINK_EXPORT_CREATE, "x",
                 G_MAXINT64);
  assert_parses ("@probe", VMS_SINK_EXPORT_PROBE, NULL, 0);
  assert_parses (longest, VMS_SINK_EXPORT_DATA, longest, 0);
}

static void
assert_refused (const char *name, const char *needle)
{
  g_auto (VmsSinkExport) parsed = { 0 };
  g_autoptr (GError) error = NULL;

  if (vms_sink_export_parse (name, &parsed, &error))
    fail_msg ("'%s' accepted", name);
  assert_true (g_error_matches (error, VMS_SINK_ERROR,
                                VMS_SINK_ERROR_BAD_NAME));
  if (!strstr (error->message, needle))
    fail_msg ("error for '%s' is '%s', expected it to mention '%s'", name,
              error->message, needle);
  /* No control byte is ever echoed back. */
  for (const char *p = error->message; *p; p++)
    assert_true ((guchar) *p >= 0x20);
}

static void
test_refused (void **state)
{
  g_autofree char *too_long = g_strnfill (VMS_SINK_MAX_NAME + 1, 'z');

  assert_refused ("", "no export name");
  assert_refused ("a/b", "contains '/'");
  assert_refused ("../x", "contains '/'");
  assert_refused ("a..b", "contains '..'");
  assert_refused ("..", "must not start with '.'");
  assert_refused (".vmshift", "must not start with '.'");
  assert_refused ("-rf", "must not start with '-'");
  assert_refused ("a b", "contains ' '");
  assert_refused ("a\nb", "byte 0x0a");
  assert_refused ("\x1b[31mred", "byte 0x1b");
  assert_refused ("caf\xc3\xa9", "byte 0xc3");
  assert_refused (too_long, "longer than");
  assert_refused ("@", "replica name is empty");
  assert_refused ("@live", "replica name is empty");
  assert_refused ("x@", "unknown export suffix");
  assert_refused ("x@LIVE", "unknown export suffix");
  assert_refused ("x@live@live", "unknown export suffix '@live@live'");
  assert_refused ("x@create", "unknown export suffix");
  assert_refused ("x@create=", "@create wants a size");
  assert_refused ("x@create=0", "@create wants a size");
  assert_refused ("x@create=-1", "@create wants a size");
  assert_refused ("x@create=+1", "@create wants a size");
  assert_refused ("x@create=1k", "@create wants a size");
  assert_refused ("x@create=0x10", "@create wants a size");
  assert_refused ("x@create=9223372036854775808", "@create wants a size");
  assert_refused ("x@create=99999999999999999999999", "@create wants a size");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_accepted),
    cmocka_unit_test (test_refused),
  };

  return cmocka_run_group_tests_name ("sink-export", tests, NULL, NULL);
}
