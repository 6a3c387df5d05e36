/* Integration tests: the sink plugin in real nbdkit against a replica
 * directory that someone else also writes to: symbolic links, FIFOs, a
 * create the file system refuses, a data file deleted while served.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-test.h"
#include "vms-test-sink.h"
#include "vms-sink-client.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <sys/stat.h>
#include <unistd.h>

#define MiB (1024 * 1024)
/* Bytes of the file outside the replica directory that links point to,
 * and what it holds: a write through a link would change them. */
#define OUTSIDE_SIZE MiB
#define OUTSIDE_BYTE 0xAA
/* A sink that takes longer than this to answer an open has hung. */
#define CONNECT_TIMEOUT_MS 5000
/* vmshift-sink list is given this long before timeout(1) kills it. */
#define LIST_TIMEOUT "20"
/* A deleted replica must fail writes within this time (the sink looks at
 * most every 100 ms). */
#define DELETED_DETECT_MS 2000
/* 16 TiB: more than ext4 (with 4 KiB blocks) lets a file have. */
#define HUGE_SIZE G_GUINT64_CONSTANT (17592186044416)

typedef struct
{
  VmsTestSink *sink; /* nbdkit with the plugin */
  char *outside;     /* a file outside the replica directory */
} Fixture;

static int
setup (void **state)
{
  Fixture *fixture = g_new0 (Fixture, 1);
  g_autoptr (GError) error = NULL;
  g_autofree char *contents = g_malloc (OUTSIDE_SIZE);

  if (!(fixture->sink = vms_test_sink_setup (NULL)))
    {
      g_free (fixture);
      return -1;
    }
  fixture->outside = g_build_filename (fixture->sink->dir, "outside.img", NULL);
  memset (contents, OUTSIDE_BYTE, OUTSIDE_SIZE);
  if (!g_file_set_contents (fixture->outside, contents, OUTSIDE_SIZE, &error))
    {
      print_error ("%s\n", error->message);
      return -1;
    }
  *state = fixture;
  return 0;
}

static int
teardown (void **state)
{
  Fixture *fixture = *state;
  int result = vms_test_sink_teardown (fixture->sink);

  g_free (fixture->outside);
  g_free (fixture);
  return result;
}

/* ---- helpers ---- */

/* A connection to export_name, or NULL if the sink refused it; the test
 * fails if the sink does not answer within CONNECT_TIMEOUT_MS. */
static nbd_handle *
connect_or_refused (VmsTestSink *sink, const char *export_name)
{
  g_autoptr (nbd_handle) nbd = nbd_create ();
  gint64 deadline = g_get_monotonic_time () + CONNECT_TIMEOUT_MS * 1000;

  assert_non_null (nbd);
  assert_int_equal (nbd_set_export_name (nbd, export_name), 0);
  if (nbd_aio_connect_unix (nbd, sink->socket_path) < 0)
    return NULL;
  while (!nbd_aio_is_ready (nbd))
    {
      if (nbd_aio_is_dead (nbd) || nbd_aio_is_closed (nbd))
        return NULL;
      if (g_get_monotonic_time () > deadline)
        fail_msg ("the sink did not answer the open of '%s' within %d ms",
                  export_name, CONNECT_TIMEOUT_MS);
      if (nbd_poll (nbd, 100) < 0)
        return NULL;
    }
  return g_steal_pointer (&nbd);
}

/* export_name is refused, and the sink's log (emptied first: nbdkit
 * appends to it) says why with reason. */
static void
assert_refused_saying (VmsTestSink *sink, const char *export_name,
                       const char *reason)
{
  g_autoptr (nbd_handle) nbd = NULL;
  g_autofree char *log = NULL;

  assert_int_equal (truncate (sink->log_path, 0), 0);
  nbd = connect_or_refused (sink, export_name);
  if (nbd)
    fail_msg ("export '%s' was accepted", export_name);
  log = vms_test_sink_log (sink);
  if (!strstr (log, reason))
    fail_msg ("the sink's log does not say '%s' for '%s':\n%s", reason,
              export_name, log);
}

/* The file outside the replica directory still holds what setup wrote. */
static void
assert_outside_untouched (Fixture *fixture)
{
  g_autofree char *contents = NULL;
  gsize length = 0;

  assert_true (
      g_file_get_contents (fixture->outside, &contents, &length, NULL));
  assert_int_equal (length, OUTSIDE_SIZE);
  for (gsize i = 0; i < length; i++)
    if ((guint8)contents[i] != OUTSIDE_BYTE)
      fail_msg ("%s was written through a link, at byte %" G_GSIZE_FORMAT,
                fixture->outside, i);
}

static char *
meta_path (VmsTestSink *sink, const char *name)
{
  g_autofree char *file = g_strconcat (name, ".json", NULL);

  return g_build_filename (sink->replica_dir, ".vmshift", file, NULL);
}

/* Replace path by a symbolic link to target in one rename, as an
 * attacker racing the sink would. */
static void
swap_for_link (const char *path, const char *target)
{
  g_autofree char *temp = g_strconcat (path, ".swap", NULL);

  assert_int_equal (symlink (target, temp), 0);
  assert_int_equal (rename (temp, path), 0);
}

/* vmshift-sink list --json on the sink's directory, under timeout(1): it
 * must neither hang nor succeed.  Returns its stderr (caller frees) and
 * the object of name in parser, or NULL. */
static JsonObject *
list_failing (VmsTestSink *sink, const char *name, JsonParser *parser,
              char **err)
{
  g_auto (VmsTestRun) run = { 0 };

  vms_test_run_capture (&run, NULL, NULL, "timeout", LIST_TIMEOUT,
                        vms_test_built_program ("VMS_SINK"), "list", "--dir",
                        sink->replica_dir, "--json", NULL);
  if (run.status == 124)
    fail_msg ("vmshift-sink list hung");
  assert_int_equal (run.status, 1);
  *err = g_strdup (run.err);
  return vms_test_sink_listed (run.out, name, parser);
}

/* ---- symbolic links ---- */

/* A replica's data file swapped for a link to a file outside the
 * directory: opens are refused saying why, nothing is written outside,
 * the client's error says where the reason is, list reports the link. */
static void
test_replica_symlink_refused (void **state)
{
  Fixture *fixture = *state;
  VmsTestSink *sink = fixture->sink;
  g_autofree char *data = vms_test_sink_replica_path (sink, "evil");
  g_autofree char *sink_uri = vms_test_sink_uri (sink, "");
  g_autoptr (JsonParser) listed = json_parser_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *list_err = NULL;
  JsonObject *row;

  vms_test_sink_create_replica (sink, "evil", OUTSIDE_SIZE);
  swap_for_link (data, fixture->outside);

  assert_refused_saying (sink, "evil", "is a symbolic link");
  assert_refused_saying (sink, "evil@create=1048576", "is a symbolic link");
  assert_refused_saying (sink, "evil@live", "is a symbolic link");
  assert_outside_untouched (fixture);

  assert_false (vms_sink_client_create (sink_uri, "evil", OUTSIDE_SIZE,
                                        VMS_SINK_CLIENT_TIMEOUT_MS, NULL,
                                        &error));
  assert_non_null (error);
  if (!strstr (error->message, "refused it and logged why"))
    fail_msg ("the client's error does not point to the sink's log: %s",
              error->message);

  row = list_failing (sink, "evil", listed, &list_err);
  assert_non_null (row);
  assert_non_null (
      strstr (json_object_get_string_member_with_default (row, "error", ""),
              "is a symbolic link"));
  assert_true (json_object_get_null_member (row, "allocated"));
}

/* The same while a connection to the old file is still open (or still
 * being closed by nbdkit, which a busy machine shows): the refusal names
 * the link, not the deletion. */
static void
test_replica_symlink_refused_while_open (void **state)
{
  Fixture *fixture = *state;
  VmsTestSink *sink = fixture->sink;
  g_autofree char *data = vms_test_sink_replica_path (sink, "evil");
  g_autoptr (nbd_handle) open_one = NULL;

  vms_test_sink_create_replica (sink, "evil", OUTSIDE_SIZE);
  open_one = connect_or_refused (sink, "evil");
  assert_non_null (open_one);
  swap_for_link (data, fixture->outside);
  assert_refused_saying (sink, "evil", "is a symbolic link");
  assert_outside_untouched (fixture);
}

/* A dangling link with @create: nothing is made outside the directory. */
static void
test_dangling_symlink_create_refused (void **state)
{
  Fixture *fixture = *state;
  VmsTestSink *sink = fixture->sink;
  g_autofree char *data = vms_test_sink_replica_path (sink, "dangle");
  g_autofree char *target = g_build_filename (sink->dir, "made-outside", NULL);
  g_autofree char *meta = meta_path (sink, "dangle");

  assert_int_equal (symlink (target, data), 0);
  assert_refused_saying (sink, "dangle@create=1048576", "is a symbolic link");
  assert_false (g_file_test (target, G_FILE_TEST_EXISTS));
  assert_false (g_file_test (meta, G_FILE_TEST_EXISTS));
}

/* Metadata that is a link to a file outside: refused, not read. */
static void
test_metadata_symlink_refused (void **state)
{
  Fixture *fixture = *state;
  VmsTestSink *sink = fixture->sink;
  g_autofree char *data = vms_test_sink_replica_path (sink, "metalink");
  g_autofree char *meta = meta_path (sink, "metalink");
  g_autofree char *outside_meta
      = g_build_filename (sink->dir, "outside.json", NULL);
  g_autoptr (JsonParser) listed = json_parser_new ();
  g_autofree char *list_err = NULL;
  int fd;

  /* A data file of the right size, and metadata a link to valid JSON. */
  fd = open (data, O_RDWR | O_CREAT | O_EXCL, 0600);
  assert_true (fd >= 0);
  assert_int_equal (ftruncate (fd, MiB), 0);
  close (fd);
  assert_true (g_file_set_contents (
      outside_meta, "{\"name\": \"metalink\", \"size\": 1048576}", -1, NULL));
  assert_int_equal (symlink (outside_meta, meta), 0);

  assert_refused_saying (sink, "metalink", "is a symbolic link");
  assert_null (list_failing (sink, "metalink", listed, &list_err));
  if (!strstr (list_err, "metalink.json is a symbolic link"))
    fail_msg ("list does not report the link: %s", list_err);
}

/* The live-range log (.vmshift/NAME.live) swapped for a link to a file
 * outside while the sink was down: the restarted sink refuses the replica
 * rather than append the mirror's ranges through the link. */
static void
test_live_log_symlink_refused (void **state)
{
  Fixture *fixture = *state;
  VmsTestSink *sink = fixture->sink;
  g_autofree char *live_log
      = g_build_filename (sink->replica_dir, ".vmshift", "livelink.live", NULL);
  g_autoptr (GError) error = NULL;

  vms_test_sink_create_replica (sink, "livelink", MiB);
  assert_true (g_file_test (live_log, G_FILE_TEST_IS_REGULAR));
  vms_test_sink_kill (sink);
  swap_for_link (live_log, fixture->outside);
  vms_assert_ok (vms_test_sink_restart (sink, &error), error);

  assert_refused_saying (sink, "livelink@live", "is a symbolic link");
  assert_outside_untouched (fixture);
}

/* A replica directory whose .vmshift is a link elsewhere: the sink does
 * not start, rather than keep its metadata out of the directory. */
static void
test_metadata_dir_symlink_refused (void **state)
{
  g_autofree char *dir = vms_test_make_tmpdir ("vms-hostile");
  g_autofree char *replicas = g_build_filename (dir, "replicas", NULL);
  g_autofree char *elsewhere = g_build_filename (dir, "elsewhere", NULL);
  g_autofree char *link = g_build_filename (replicas, ".vmshift", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsTestSink) sink = NULL;

  assert_int_equal (g_mkdir (replicas, 0700), 0);
  assert_int_equal (g_mkdir (elsewhere, 0700), 0);
  assert_int_equal (symlink (elsewhere, link), 0);

  sink = vms_test_sink_start (replicas, NULL, &error);
  vms_test_rmtree (dir);
  assert_null (sink);
  if (!strstr (error->message, ".vmshift is a symbolic link"))
    fail_msg ("the sink's refusal does not say why: %s", error->message);
}

/* ---- FIFOs ---- */

/* A FIFO as metadata or as data: refused at once, saying so, while the
 * sink and list go on serving the other replicas. */
static void
test_fifo_refused_without_hanging (void **state)
{
  Fixture *fixture = *state;
  VmsTestSink *sink = fixture->sink;
  g_autofree char *fifo_meta = meta_path (sink, "fifo");
  g_autofree char *pipe_data = vms_test_sink_replica_path (sink, "pipe");
  g_autoptr (JsonParser) listed = json_parser_new ();
  g_autofree char *list_err = NULL;
  JsonObject *row;

  vms_test_sink_create_replica (sink, "pipe", MiB);
  assert_int_equal (g_unlink (pipe_data), 0);
  assert_int_equal (mkfifo (pipe_data, 0600), 0);
  assert_int_equal (mkfifo (fifo_meta, 0600), 0);

  assert_refused_saying (sink, "fifo", "fifo.json is a FIFO");
  assert_refused_saying (sink, "fifo@create=4096", "fifo.json is a FIFO");
  assert_refused_saying (sink, "pipe", "pipe is a FIFO");
  {
    g_autoptr (nbd_handle) good = connect_or_refused (sink, "good@create=4096");

    assert_non_null (good);
  }

  row = list_failing (sink, "pipe", listed, &list_err);
  assert_non_null (row);
  assert_non_null (
      strstr (json_object_get_string_member_with_default (row, "error", ""),
              "is a FIFO"));
  if (!strstr (list_err, "fifo.json is a FIFO"))
    fail_msg ("list does not report the FIFO: %s", list_err);
}

/* ---- a create the file system refuses ---- */

static void
test_failed_create_leaves_nothing (void **state)
{
  Fixture *fixture = *state;
  VmsTestSink *sink = fixture->sink;
  g_autofree char *data = vms_test_sink_replica_path (sink, "huge");
  g_autofree char *meta = meta_path (sink, "huge");
  g_autofree char *export_name
      = g_strdup_printf ("huge@create=%" G_GUINT64_FORMAT, HUGE_SIZE);
  g_autoptr (nbd_handle) nbd = NULL;

  nbd = connect_or_refused (sink, export_name);
  if (nbd)
    {
      /* A skip leaves by longjmp, past g_autoptr: an open connection
       * would keep nbdkit from stopping at teardown. */
      g_clear_pointer (&nbd, nbd_close);
      vms_test_skip ("the file system of %s takes a 16 TiB file",
                     sink->replica_dir);
    }
  assert_refused_saying (sink, export_name, "File too large");
  assert_false (g_file_test (data, G_FILE_TEST_EXISTS));
  assert_false (g_file_test (meta, G_FILE_TEST_EXISTS));
}

/* ---- a data file deleted while served ---- */

/* Write on nbd until a write fails, for up to DELETED_DETECT_MS; the
 * errno of the failure. */
static int
write_until_refused (nbd_handle *nbd)
{
  guint8 block[4096];
  gint64 deadline = g_get_monotonic_time () + DELETED_DETECT_MS * 1000;

  memset (block, 0x55, sizeof block);
  while (g_get_monotonic_time () < deadline)
    {
      if (nbd_pwrite (nbd, block, sizeof block, 0, 0) < 0)
        return nbd_get_errno ();
      g_usleep (10 * 1000);
    }
  fail_msg ("writes to a deleted replica still succeed after %d ms",
            DELETED_DETECT_MS);
  return 0;
}

static void
test_deleted_replica_fails_writes (void **state)
{
  Fixture *fixture = *state;
  VmsTestSink *sink = fixture->sink;
  g_autofree char *data = vms_test_sink_replica_path (sink, "ghost");
  g_autoptr (GError) error = NULL;
  g_autoptr (nbd_handle) nbd = NULL;
  g_autofree char *log = NULL;
  guint8 byte = 1;

  vms_test_sink_create_replica (sink, "ghost", MiB);
  nbd = vms_test_sink_connect (sink, "ghost", &error);
  vms_assert_ok (nbd, error);
  assert_int_equal (nbd_pwrite (nbd, &byte, 1, 0, 0), 0);
  assert_int_equal (nbd_flush (nbd, 0), 0);

  assert_int_equal (g_unlink (data), 0);
  assert_int_equal (write_until_refused (nbd), EIO);
  /* For good: not only when the sink happens to look again. */
  assert_int_equal (nbd_pwrite (nbd, &byte, 1, 0, 0), -1);
  assert_int_equal (nbd_get_errno (), EIO);
  assert_int_equal (nbd_flush (nbd, 0), -1);
  assert_int_equal (nbd_get_errno (), EIO);
  log = vms_test_sink_log (sink);
  if (!strstr (log, "was deleted while the sink served it"))
    fail_msg ("the sink's log does not say the replica was deleted:\n%s", log);
}

/* Swapped for a link while served: FLUSH fails at once, and nothing goes
 * through the link. */
static void
test_swapped_replica_fails_flush (void **state)
{
  Fixture *fixture = *state;
  VmsTestSink *sink = fixture->sink;
  g_autofree char *data = vms_test_sink_replica_path (sink, "swap");
  g_autoptr (GError) error = NULL;
  g_autoptr (nbd_handle) nbd = NULL;
  guint8 byte = 1;

  vms_test_sink_create_replica (sink, "swap", OUTSIDE_SIZE);
  nbd = vms_test_sink_connect (sink, "swap", &error);
  vms_assert_ok (nbd, error);
  assert_int_equal (nbd_pwrite (nbd, &byte, 1, 0, 0), 0);

  swap_for_link (data, fixture->outside);
  assert_int_equal (nbd_flush (nbd, 0), -1);
  assert_int_equal (nbd_get_errno (), EIO);
  assert_int_equal (write_until_refused (nbd), EIO);
  assert_outside_untouched (fixture);
}

/* ---- block devices ---- */

/* Metadata naming a block device the sink was not given (device=): the
 * sink does not open it, whatever the metadata says. */
static void
test_unconfigured_device_refused (void **state)
{
  Fixture *fixture = *state;
  VmsTestSink *sink = fixture->sink;
  g_autofree char *losetup = g_find_program_in_path ("losetup");
  g_autofree char *backing = g_build_filename (sink->dir, "backing.img", NULL);
  g_autofree char *meta = meta_path (sink, "dev");
  g_autofree char *contents = NULL;
  g_autofree char *loop = NULL;
  g_autoptr (GError) error = NULL;
  const char *attach[] = { "losetup", "--find", "--show", backing, NULL };
  int fd;

  if (!vms_test_is_root () || !losetup)
    vms_test_skip ("needs root and losetup for a loop device");
  fd = open (backing, O_RDWR | O_CREAT | O_EXCL, 0600);
  assert_true (fd >= 0);
  assert_int_equal (ftruncate (fd, MiB), 0);
  close (fd);
  if (!vms_test_run (attach, &loop, &error))
    {
      vms_test_skip ("no loop device (%s)", error->message);
    }
  g_strstrip (loop);
  contents = g_strdup_printf (
      "{\"name\": \"dev\", \"size\": 1048576, \"device\": \"%s\"}", loop);
  assert_true (g_file_set_contents (meta, contents, -1, NULL));

  assert_int_equal (truncate (sink->log_path, 0), 0);
  {
    g_autoptr (nbd_handle) nbd = connect_or_refused (sink, "dev");
    const char *detach[] = { "losetup", "--detach", loop, NULL };

    vms_test_run (detach, NULL, NULL);
    if (nbd)
      fail_msg ("a replica on %s, which the sink was not given, was served",
                loop);
  }
  {
    g_autofree char *log = vms_test_sink_log (sink);

    if (!strstr (log, "but the sink was not given device=dev:"))
      fail_msg ("the sink's log does not say why:\n%s", log);
  }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_replica_symlink_refused, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_replica_symlink_refused_while_open,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_dangling_symlink_create_refused,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_metadata_symlink_refused, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_live_log_symlink_refused, setup,
                                     teardown),
    cmocka_unit_test (test_metadata_dir_symlink_refused),
    cmocka_unit_test_setup_teardown (test_fifo_refused_without_hanging, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_failed_create_leaves_nothing, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_deleted_replica_fails_writes, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_swapped_replica_fails_flush, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_unconfigured_device_refused, setup,
                                     teardown),
  };

  vms_test_require_program ("nbdkit", "nbdkit");
  vms_test_require_program ("timeout", "coreutils");
  /* VMS_TEST_FILTER=test_fifo* runs one test when debugging. */
  return vms_test_run_group ("sink-hostile", tests, G_N_ELEMENTS (tests), NULL,
                             NULL);
}
