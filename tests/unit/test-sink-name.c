/* Unit tests: export names the sink accepts and refuses, and the names its
 * clients build.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vms-sink-name.h"

static void
assert_parses (const char *name, VmsSinkNameKind kind, const char *replica,
               guint64 size)
{
  g_auto (VmsSinkName) parsed = { 0 };
  g_autoptr (GError) error = NULL;

  if (!vms_sink_name_parse (name, &parsed, &error))
    fail_msg ("'%s' refused: %s", name, error->message);
  assert_int_equal (parsed.kind, kind);
  assert_string_equal (parsed.replica ? parsed.replica : "(none)",
                       replica ? replica : "(none)");
  assert_int_equal (parsed.size, size);
}

static void
test_accepted (void **state)
{
  g_autofree char *longest = g_strnfill (VMS_SINK_NAME_MAX_LENGTH, 'z');

  assert_parses ("vm1-disk0", VMS_SINK_NAME_KIND_DATA, "vm1-disk0", 0);
  assert_parses ("vm1-disk0@live", VMS_SINK_NAME_KIND_LIVE, "vm1-disk0", 0);
  assert_parses ("a.b_c+d@hashes", VMS_SINK_NAME_KIND_HASHES, "a.b_c+d", 0);
  assert_parses ("x@hashes=4096", VMS_SINK_NAME_KIND_HASHES, "x", 4096);
  assert_parses ("x@hashes=67108864", VMS_SINK_NAME_KIND_HASHES, "x",
                 64 * 1024 * 1024);
  assert_parses ("x@commit", VMS_SINK_NAME_KIND_COMMIT, "x", 0);
  assert_parses ("x@live-reset", VMS_SINK_NAME_KIND_LIVE_RESET, "x", 0);
  assert_parses ("x@handover", VMS_SINK_NAME_KIND_HANDOVER, "x", 0);
  assert_parses ("x@live-noflush", VMS_SINK_NAME_KIND_LIVE_NOFLUSH, "x", 0);
  assert_parses ("x@create=1073741824", VMS_SINK_NAME_KIND_CREATE, "x",
                 G_GUINT64_CONSTANT (1073741824));
  assert_parses ("x@create=9223372036854775807", VMS_SINK_NAME_KIND_CREATE, "x",
                 G_MAXINT64);
  assert_parses ("@probe", VMS_SINK_NAME_KIND_PROBE, NULL, 0);
  assert_parses (longest, VMS_SINK_NAME_KIND_DATA, longest, 0);
}

static void
assert_refused (const char *name, const char *needle)
{
  g_auto (VmsSinkName) parsed = { 0 };
  g_autoptr (GError) error = NULL;

  if (vms_sink_name_parse (name, &parsed, &error))
    fail_msg ("'%s' accepted", name);
  assert_true (g_error_matches (error, VMS_SINK_NAME_ERROR,
                                VMS_SINK_NAME_ERROR_INVALID));
  if (!strstr (error->message, needle))
    fail_msg ("error for '%s' is '%s', expected it to mention '%s'", name,
              error->message, needle);
  /* No control byte is ever echoed back. */
  for (const char *p = error->message; *p; p++)
    assert_true ((guchar)*p >= 0x20);
}

static void
test_refused (void **state)
{
  g_autofree char *too_long = g_strnfill (VMS_SINK_NAME_MAX_LENGTH + 1, 'z');

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
  /* A chunk the sink would hash at a cost, or not on its grid. */
  assert_refused ("x@hashes=2048", "@hashes wants a chunk");
  assert_refused ("x@hashes=134217728", "@hashes wants a chunk");
  assert_refused ("x@hashes=12288", "@hashes wants a chunk");
  assert_refused ("x@hashes=0", "@hashes wants a chunk");
  assert_refused ("x@hashes=", "@hashes wants a chunk");
  assert_refused ("x@hashes=+4096", "@hashes wants a chunk");
  assert_refused ("x@create=99999999999999999999999", "@create wants a size");
}

/* Build, then parse: the sink reads back what the client meant. */
static void
assert_round_trip (VmsSinkNameKind kind, const char *replica, guint64 size,
                   const char *expected)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *name = vms_sink_name_build (kind, replica, size, &error);

  if (!name)
    fail_msg ("%s of '%s' refused: %s", vms_sink_name_kind_name (kind),
              replica ? replica : "(none)", error->message);
  assert_string_equal (name, expected);
  assert_parses (name, kind, replica, size);
}

static void
test_built (void **state)
{
  g_autofree char *longest = g_strnfill (VMS_SINK_NAME_MAX_LENGTH, 'z');
  g_autofree char *longest_live = g_strconcat (longest, "@live", NULL);

  assert_round_trip (VMS_SINK_NAME_KIND_DATA, "vm1-disk0", 0, "vm1-disk0");
  assert_round_trip (VMS_SINK_NAME_KIND_LIVE, "vm1-disk0", 0, "vm1-disk0@live");
  assert_round_trip (VMS_SINK_NAME_KIND_LIVE_NOFLUSH, "vm1-disk0", 0,
                     "vm1-disk0@live-noflush");
  assert_round_trip (VMS_SINK_NAME_KIND_LIVE_RESET, "a.b_c+d", 0,
                     "a.b_c+d@live-reset");
  assert_round_trip (VMS_SINK_NAME_KIND_HASHES, "x", 0, "x@hashes");
  assert_round_trip (VMS_SINK_NAME_KIND_HASHES, "x", 65536, "x@hashes=65536");
  assert_round_trip (VMS_SINK_NAME_KIND_COMMIT, "x", 0, "x@commit");
  assert_round_trip (VMS_SINK_NAME_KIND_CREATE, "x", 1, "x@create=1");
  assert_round_trip (VMS_SINK_NAME_KIND_CREATE, "x",
                     G_GUINT64_CONSTANT (1073741824), "x@create=1073741824");
  assert_round_trip (VMS_SINK_NAME_KIND_CREATE, "x", G_MAXINT64,
                     "x@create=9223372036854775807");
  assert_round_trip (VMS_SINK_NAME_KIND_PROBE, NULL, 0, "@probe");
  assert_round_trip (VMS_SINK_NAME_KIND_LIVE, longest, 0, longest_live);
}

/* The size only matters to @create. */
static void
test_built_size_ignored (void **state)
{
  g_autofree char *data
      = vms_sink_name_build (VMS_SINK_NAME_KIND_DATA, "x", 4096, NULL);
  g_autofree char *probe
      = vms_sink_name_build (VMS_SINK_NAME_KIND_PROBE, NULL, 4096, NULL);

  assert_string_equal (data, "x");
  assert_string_equal (probe, "@probe");
}

static void
assert_not_built (VmsSinkNameKind kind, const char *replica, guint64 size,
                  const char *needle)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *name = vms_sink_name_build (kind, replica, size, &error);

  if (name)
    fail_msg ("'%s' built", name);
  assert_true (g_error_matches (error, VMS_SINK_NAME_ERROR,
                                VMS_SINK_NAME_ERROR_INVALID));
  if (!strstr (error->message, needle))
    fail_msg ("error is '%s', expected it to mention '%s'", error->message,
              needle);
  for (const char *p = error->message; *p; p++)
    assert_true ((guchar)*p >= 0x20);
}

static void
test_not_built (void **state)
{
  g_autofree char *too_long = g_strnfill (VMS_SINK_NAME_MAX_LENGTH + 1, 'z');

  /* A name the sink would split or refuse is never sent. */
  assert_not_built (VMS_SINK_NAME_KIND_DATA, "", 0, "replica name is empty");
  assert_not_built (VMS_SINK_NAME_KIND_DATA, "x@live", 0, "contains '@'");
  assert_not_built (VMS_SINK_NAME_KIND_LIVE, "a/b", 0, "contains '/'");
  assert_not_built (VMS_SINK_NAME_KIND_COMMIT, "a..b", 0, "contains '..'");
  assert_not_built (VMS_SINK_NAME_KIND_HASHES, "-rf", 0,
                    "must not start with '-'");
  assert_not_built (VMS_SINK_NAME_KIND_LIVE_RESET, "a\nb", 0, "byte 0x0a");
  assert_not_built (VMS_SINK_NAME_KIND_CREATE, too_long, 1, "longer than");
  assert_not_built (VMS_SINK_NAME_KIND_CREATE, "x", 0, "@create wants a size");
  assert_not_built (VMS_SINK_NAME_KIND_CREATE, "x", (guint64)G_MAXINT64 + 1,
                    "not 9223372036854775808");
  assert_not_built (VMS_SINK_NAME_KIND_CREATE, "x", G_MAXUINT64,
                    "@create wants a size");
  assert_not_built (VMS_SINK_NAME_KIND_HASHES, "x", 1000,
                    "@hashes wants a chunk");
  assert_not_built (VMS_SINK_NAME_KIND_LIVE, NULL, 0, "no replica name");
  assert_not_built (VMS_SINK_NAME_KIND_PROBE, "x", 0, "has no replica");
  assert_not_built ((VmsSinkNameKind)99, "x", 0, "no export of kind 99");
}

/* What vms_replicate_sink_open's callers pass: the part after NAME@. */
static void
test_suffix (void **state)
{
  static const struct
  {
    const char *suffix;   /* what follows NAME@ */
    VmsSinkNameKind kind; /* export it names */
    guint64 size;         /* size it asks for */
  } cases[] = {
    { "live", VMS_SINK_NAME_KIND_LIVE, 0 },
    { "live-reset", VMS_SINK_NAME_KIND_LIVE_RESET, 0 },
    { "live-noflush", VMS_SINK_NAME_KIND_LIVE_NOFLUSH, 0 },
    { "handover", VMS_SINK_NAME_KIND_HANDOVER, 0 },
    { "hashes", VMS_SINK_NAME_KIND_HASHES, 0 },
    { "commit", VMS_SINK_NAME_KIND_COMMIT, 0 },
    { "create=4096", VMS_SINK_NAME_KIND_CREATE, 4096 },
    { "hashes=8192", VMS_SINK_NAME_KIND_HASHES, 8192 },
  };
  g_autoptr (GError) error = NULL;
  VmsSinkNameKind kind;
  guint64 size = 1;

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      if (!vms_sink_name_parse_suffix (cases[i].suffix, &kind, &size, &error))
        fail_msg ("'%s' refused: %s", cases[i].suffix, error->message);
      assert_int_equal (kind, cases[i].kind);
      assert_int_equal (size, cases[i].size);
    }
  assert_false (vms_sink_name_parse_suffix ("probe", &kind, &size, &error));
  assert_true (g_error_matches (error, VMS_SINK_NAME_ERROR,
                                VMS_SINK_NAME_ERROR_INVALID));
  assert_non_null (strstr (error->message, "unknown export suffix '@probe'"));
  g_clear_error (&error);
  assert_false (vms_sink_name_parse_suffix ("create=0", &kind, &size, &error));
  assert_non_null (strstr (error->message, "@create wants a size"));
}

/* A replica's description names its path; the path comes back out, even
 * one holding "; ", and a description without it gives none. */
static void
test_description_path (void **state)
{
  const char *const paths[]
      = { "/var/lib/vmshift/replicas/web1-vda", "/dev/loop3", "/odd; dir/x" };

  for (guint i = 0; i < G_N_ELEMENTS (paths); i++)
    {
      g_autofree char *description = vms_sink_name_describe (
          paths[i], "writes kept while boot 1234 lasts");
      g_autofree char *path = vms_sink_name_description_path (description);

      assert_string_equal (path, paths[i]);
    }
  assert_null (vms_sink_name_description_path (
      "vmshift replica; writes kept while boot 1234 lasts"));
  assert_null (vms_sink_name_description_path (NULL));
  assert_null (vms_sink_name_description_path ("vmshift replica at "));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_accepted),
    cmocka_unit_test (test_refused),
    cmocka_unit_test (test_built),
    cmocka_unit_test (test_built_size_ignored),
    cmocka_unit_test (test_not_built),
    cmocka_unit_test (test_suffix),
    cmocka_unit_test (test_description_path),
  };

  return cmocka_run_group_tests_name ("sink-name", tests, NULL, NULL);
}
