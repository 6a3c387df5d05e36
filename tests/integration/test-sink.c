/* Integration tests: the sink plugin in real nbdkit, driven by real NBD
 * clients (libnbd, qemu-img, nbdcopy, nbdinfo).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-test.h"
#include "vms-test-sink.h"
#include "vms-sink-client.h"
#include "vms-copy.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MiB (1024 * 1024)
/* The source image: data, an explicit zero run, holes, data at the end. */
#define SOURCE_SIZE (8 * MiB)

typedef struct
{
  VmsTestSink *sink; /* nbdkit with the plugin */
  char *source;      /* source image with data, zeroes and holes */
} Fixture;

static void
fill_random (guint8 *buffer, gsize length, guint32 seed)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed (seed);

  for (gsize i = 0; i < length; i += 4)
    {
      guint32 value = g_rand_int (rand);

      memcpy (buffer + i, &value, MIN (4, length - i));
    }
}

static void
write_at (int fd, const guint8 *data, gsize length, off_t offset)
{
  assert_int_equal (pwrite (fd, data, length, offset), (ssize_t)length);
}

/* [0,2M) data, [2M,3M) zeroes written out, [3M,5M) hole, [5M,6M) data,
 * [6M,8M-4K) hole, last 4K data. */
static char *
make_source (const char *dir)
{
  char *path = g_build_filename (dir, "source.raw", NULL);
  g_autofree guint8 *data = g_malloc (2 * MiB);
  int fd = open (path, O_RDWR | O_CREAT | O_TRUNC, 0600);

  assert_true (fd >= 0);
  assert_int_equal (ftruncate (fd, SOURCE_SIZE), 0);
  fill_random (data, 2 * MiB, 1);
  write_at (fd, data, 2 * MiB, 0);
  memset (data, 0, MiB);
  write_at (fd, data, MiB, 2 * MiB);
  fill_random (data, MiB, 2);
  write_at (fd, data, MiB, 5 * MiB);
  fill_random (data, 4096, 3);
  write_at (fd, data, 4096, SOURCE_SIZE - 4096);
  close (fd);
  return path;
}

static void
assert_files_equal (const char *a, const char *b)
{
  g_autofree char *x = NULL;
  g_autofree char *y = NULL;
  gsize x_length, y_length;

  assert_true (g_file_get_contents (a, &x, &x_length, NULL));
  assert_true (g_file_get_contents (b, &y, &y_length, NULL));
  assert_int_equal (x_length, y_length);
  for (gsize i = 0; i < x_length; i++)
    if (x[i] != y[i])
      fail_msg ("%s and %s differ first at byte %" G_GSIZE_FORMAT, a, b, i);
}

static int
setup (void **state)
{
  Fixture *fixture = g_new0 (Fixture, 1);
  const char *args[] = { "hash-chunk=64K", NULL };

  if (!(fixture->sink = vms_test_sink_setup (args)))
    {
      g_free (fixture);
      return -1;
    }
  fixture->source = make_source (fixture->sink->dir);
  *state = fixture;
  return 0;
}

static int
teardown (void **state)
{
  Fixture *fixture = *state;
  int result = vms_test_sink_teardown (fixture->sink);

  g_free (fixture->source);
  g_free (fixture);
  return result;
}

static void
run_ok (const char *const *argv, char **out)
{
  g_autoptr (GError) error = NULL;

  vms_assert_ok (vms_test_run (argv, out, &error), error);
}

/* Every byte range of [offset, offset + length) in nbdinfo's map has the
 * given hole bit. */
static void
assert_map_range (JsonArray *map, guint64 offset, guint64 length, gboolean hole)
{
  guint64 end = offset + length;

  for (guint i = 0; i < json_array_get_length (map); i++)
    {
      JsonObject *extent = json_array_get_object_element (map, i);
      guint64 start = json_object_get_int_member (extent, "offset");
      guint64 stop = start + json_object_get_int_member (extent, "length");
      gboolean is_hole = json_object_get_int_member (extent, "type") & 1;

      if (stop <= offset || start >= end)
        continue;
      if (is_hole != hole)
        fail_msg ("extent [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT
                  ") is %s, expected %s",
                  start, stop, is_hole ? "a hole" : "data",
                  hole ? "a hole" : "data");
    }
}

static void
test_third_party_clients (void **state)
{
  Fixture *fixture = *state;
  VmsTestSink *sink = fixture->sink;
  g_autofree char *qemu_uri = vms_test_sink_uri (sink, "by-qemu-img");
  g_autofree char *copy_uri
      = vms_test_sink_uri (sink, "by-nbdcopy@create=8388608");
  g_autofree char *map_uri = vms_test_sink_uri (sink, "by-nbdcopy");
  g_autofree char *qemu_path = vms_test_sink_replica_path (sink, "by-qemu-img");
  g_autofree char *copy_path = vms_test_sink_replica_path (sink, "by-nbdcopy");
  g_autofree char *map_text = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonArray *map;

  /* qemu-img writes into an existing target: create it over NBD first. */
  vms_test_sink_create_replica (sink, "by-qemu-img", SOURCE_SIZE);
  const char *qemu_img[]
      = { "qemu-img", "convert",       "-n",     "-f", "raw", "-O",
          "raw",      fixture->source, qemu_uri, NULL };
  run_ok (qemu_img, NULL);
  assert_files_equal (fixture->source, qemu_path);

  const char *nbdcopy[] = { "nbdcopy", fixture->source, copy_uri, NULL };
  run_ok (nbdcopy, NULL);
  assert_files_equal (fixture->source, copy_path);

  /* Holes where the source has holes or zeroes, data where it has data. */
  const char *nbdinfo[] = { "nbdinfo", "--map", "--json", map_uri, NULL };
  run_ok (nbdinfo, &map_text);
  assert_true (json_parser_load_from_data (parser, map_text, -1, NULL));
  map = json_node_get_array (json_parser_get_root (parser));
  assert_map_range (map, 0, 2 * MiB, FALSE);
  assert_map_range (map, 2 * MiB, 3 * MiB, TRUE);
  assert_map_range (map, 5 * MiB, MiB, FALSE);
  assert_map_range (map, 6 * MiB, 2 * MiB - 4096, TRUE);
  assert_map_range (map, SOURCE_SIZE - 4096, 4096, FALSE);
}

static void
test_flush_survives_kill9 (void **state)
{
  Fixture *fixture = *state;
  VmsTestSink *sink = fixture->sink;
  g_autoptr (GError) error = NULL;
  g_autoptr (nbd_handle) writer = NULL;
  g_autoptr (nbd_handle) flusher = NULL;
  g_autoptr (nbd_handle) reader = NULL;
  g_autofree guint8 *data = g_malloc (MiB);
  g_autofree guint8 *back = g_malloc (MiB);

  vms_test_sink_create_replica (sink, "durable", 4 * MiB);
  writer = vms_test_sink_connect (sink, "durable", &error);
  flusher = vms_test_sink_connect (sink, "durable", &error);
  vms_assert_ok (writer && flusher, error);
  assert_true (nbd_can_multi_conn (writer) == 1);
  fill_random (data, MiB, 7);
  assert_int_equal (nbd_pwrite (writer, data, MiB, MiB, 0), 0);
  /* Multi-conn: a FLUSH on another connection covers this write. */
  assert_int_equal (nbd_flush (flusher, 0), 0);

  vms_test_sink_kill (sink);
  vms_assert_ok (vms_test_sink_restart (sink, &error), error);
  reader = vms_test_sink_connect (sink, "durable", &error);
  vms_assert_ok (reader, error);
  assert_int_equal (nbd_pread (reader, back, MiB, MiB, 0), 0);
  assert_memory_equal (back, data, MiB);
}

/* ---- live ordering ---- */

#define BLOCK 4096

static void
pattern (guint8 *buffer, gsize length, guint8 value)
{
  memset (buffer, value, length);
}

static void
assert_bytes (nbd_handle *nbd, guint64 offset, gsize length, guint8 value)
{
  g_autofree guint8 *back = g_malloc (length);

  assert_int_equal (nbd_pread (nbd, back, length, offset, 0), 0);
  for (gsize i = 0; i < length; i++)
    if (back[i] != value)
      fail_msg ("byte %" G_GUINT64_FORMAT " is 0x%02x, expected 0x%02x",
                offset + i, back[i], value);
}

static void
test_live_ordering_sequences (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (GError) error = NULL;
  g_autoptr (nbd_handle) plain = NULL;
  g_autoptr (nbd_handle) live = NULL;
  guint8 buffer[16 * BLOCK];

  vms_test_sink_create_replica (fixture->sink, "ordered", MiB);
  plain = vms_test_sink_connect (fixture->sink, "ordered", &error);
  live = vms_test_sink_connect (fixture->sink, "ordered@live", &error);
  vms_assert_ok (plain && live, error);

  /* Plain first, then live: live lands on top. */
  pattern (buffer, sizeof buffer, 0xaa);
  assert_int_equal (nbd_pwrite (plain, buffer, 16 * BLOCK, 0, 0), 0);
  pattern (buffer, 4 * BLOCK, 0x11);
  assert_int_equal (nbd_pwrite (live, buffer, 4 * BLOCK, 4 * BLOCK, 0), 0);
  assert_bytes (plain, 0, 4 * BLOCK, 0xaa);
  assert_bytes (plain, 4 * BLOCK, 4 * BLOCK, 0x11);
  assert_bytes (plain, 8 * BLOCK, 8 * BLOCK, 0xaa);

  /* Live first, then plain over it: the older plain data is dropped where
   * live wrote, and applied around it. */
  pattern (buffer, 4 * BLOCK, 0x22);
  assert_int_equal (nbd_pwrite (live, buffer, 2 * BLOCK, 20 * BLOCK, 0), 0);
  pattern (buffer, sizeof buffer, 0xbb);
  assert_int_equal (nbd_pwrite (plain, buffer, 8 * BLOCK, 18 * BLOCK, 0), 0);
  assert_bytes (plain, 18 * BLOCK, 2 * BLOCK, 0xbb);
  assert_bytes (plain, 20 * BLOCK, 2 * BLOCK, 0x22);
  assert_bytes (plain, 22 * BLOCK, 4 * BLOCK, 0xbb);
  /* ... and the earlier live range too. */
  assert_int_equal (nbd_pwrite (plain, buffer, 16 * BLOCK, 0, 0), 0);
  assert_bytes (plain, 4 * BLOCK, 4 * BLOCK, 0x11);

  /* Zeroes and trims through the plain export respect live data. */
  assert_int_equal (nbd_zero (plain, 16 * BLOCK, 0, LIBNBD_CMD_FLAG_NO_HOLE),
                    0);
  assert_bytes (plain, 0, 4 * BLOCK, 0);
  assert_bytes (plain, 4 * BLOCK, 4 * BLOCK, 0x11);
  assert_int_equal (nbd_zero (plain, 16 * BLOCK, 0, 0), 0);
  assert_bytes (plain, 4 * BLOCK, 4 * BLOCK, 0x11);
  assert_int_equal (nbd_trim (plain, 16 * BLOCK, 0, 0), 0);
  assert_bytes (plain, 4 * BLOCK, 4 * BLOCK, 0x11);

  /* A live zero is live data too. */
  assert_int_equal (nbd_zero (live, BLOCK, 40 * BLOCK, 0), 0);
  pattern (buffer, BLOCK, 0xcc);
  assert_int_equal (nbd_pwrite (plain, buffer, BLOCK, 40 * BLOCK, 0), 0);
  assert_bytes (plain, 40 * BLOCK, BLOCK, 0);

  /* A commit ends the migration: plain writes apply everywhere again. */
  {
    g_autoptr (nbd_handle) commit
        = vms_test_sink_connect (fixture->sink, "ordered@commit", &error);

    vms_assert_ok (commit, error);
  }
  pattern (buffer, 4 * BLOCK, 0xdd);
  assert_int_equal (nbd_pwrite (plain, buffer, 4 * BLOCK, 4 * BLOCK, 0), 0);
  assert_bytes (plain, 4 * BLOCK, 4 * BLOCK, 0xdd);
}

/* QEMU's mirror reconnects (reconnect-delay) while no replicator
 * connection is open: what it wrote must still win afterwards. */
static void
test_live_ranges_outlive_connections (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (GError) error = NULL;
  g_autoptr (nbd_handle) plain = NULL;
  guint8 buffer[2 * BLOCK];

  vms_test_sink_create_replica (fixture->sink, "reconnected", MiB);
  {
    g_autoptr (nbd_handle) live
        = vms_test_sink_connect (fixture->sink, "reconnected@live", &error);

    vms_assert_ok (live, error);
    pattern (buffer, BLOCK, 0x77);
    assert_int_equal (nbd_pwrite (live, buffer, BLOCK, BLOCK, 0), 0);
    nbd_shutdown (live, 0);
  }
  plain = vms_test_sink_connect (fixture->sink, "reconnected", &error);
  vms_assert_ok (plain, error);
  pattern (buffer, sizeof buffer, 0x33);
  assert_int_equal (nbd_pwrite (plain, buffer, 2 * BLOCK, 0, 0), 0);
  assert_bytes (plain, 0, BLOCK, 0x33);
  assert_bytes (plain, BLOCK, BLOCK, 0x77);

  /* A rolled-back mirror: after @live-reset plain writes land everywhere. */
  {
    g_autoptr (nbd_handle) reset = vms_test_sink_connect (
        fixture->sink, "reconnected@live-reset", &error);

    vms_assert_ok (reset, error);
    assert_int_equal (nbd_get_size (reset), 0);
  }
  assert_int_equal (nbd_pwrite (plain, buffer, 2 * BLOCK, 0, 0), 0);
  assert_bytes (plain, 0, 2 * BLOCK, 0x33);
}

/* kill -9 and a restart of the sink while the mirror writes: the ranges
 * @live wrote, unflushed, must still win over a catch-up write that
 * arrives afterwards; and a @live-reset must outlive a restart too. */
static void
test_live_ranges_outlive_sink_restart (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (GError) error = NULL;
  g_autoptr (nbd_handle) plain = NULL;
  guint8 buffer[4 * BLOCK];

  vms_test_sink_create_replica (fixture->sink, "restarted", MiB);
  {
    g_autoptr (nbd_handle) live
        = vms_test_sink_connect (fixture->sink, "restarted@live", &error);

    vms_assert_ok (live, error);
    pattern (buffer, BLOCK, 0x77);
    assert_int_equal (nbd_pwrite (live, buffer, BLOCK, BLOCK, 0), 0);
    assert_int_equal (nbd_pwrite (live, buffer, BLOCK, 3 * BLOCK, 0), 0);
    /* No FLUSH: a killed process keeps the page cache, so the data and
     * its range survive together. */
    vms_test_sink_kill (fixture->sink);
  }
  vms_assert_ok (vms_test_sink_restart (fixture->sink, &error), error);
  plain = vms_test_sink_connect (fixture->sink, "restarted", &error);
  vms_assert_ok (plain, error);
  pattern (buffer, sizeof buffer, 0x33);
  assert_int_equal (nbd_pwrite (plain, buffer, 4 * BLOCK, 0, 0), 0);
  assert_bytes (plain, 0, BLOCK, 0x33);
  assert_bytes (plain, BLOCK, BLOCK, 0x77);
  assert_bytes (plain, 2 * BLOCK, BLOCK, 0x33);
  assert_bytes (plain, 3 * BLOCK, BLOCK, 0x77);
  g_clear_pointer (&plain, nbd_close);

  {
    g_autoptr (nbd_handle) reset
        = vms_test_sink_connect (fixture->sink, "restarted@live-reset", &error);

    vms_assert_ok (reset, error);
  }
  vms_test_sink_kill (fixture->sink);
  vms_assert_ok (vms_test_sink_restart (fixture->sink, &error), error);
  plain = vms_test_sink_connect (fixture->sink, "restarted", &error);
  vms_assert_ok (plain, error);
  assert_int_equal (nbd_pwrite (plain, buffer, 4 * BLOCK, 0, 0), 0);
  assert_bytes (plain, 0, 4 * BLOCK, 0x33);
}

/* A live write through a fresh connection, then kill -9 and restart. */
static void
live_write_then_restart (Fixture *fixture, const char *export_name,
                         guint64 offset, guint8 value)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (nbd_handle) live
      = vms_test_sink_connect (fixture->sink, export_name, &error);
  guint8 buffer[BLOCK];

  vms_assert_ok (live, error);
  pattern (buffer, BLOCK, value);
  assert_int_equal (nbd_pwrite (live, buffer, BLOCK, offset, 0), 0);
  vms_test_sink_kill (fixture->sink);
  vms_assert_ok (vms_test_sink_restart (fixture->sink, &error), error);
}

/* A torn last record in the live log (only a host crash leaves one) is
 * dropped: the ranges before it still hold, and ranges recorded after the
 * restart are read back too. */
static void
test_live_log_torn_record (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *log = g_build_filename (fixture->sink->replica_dir,
                                           ".vmshift", "torn.live", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (nbd_handle) plain = NULL;
  guint8 buffer[4 * BLOCK];
  FILE *file;

  vms_test_sink_create_replica (fixture->sink, "torn", MiB);
  live_write_then_restart (fixture, "torn@live", BLOCK, 0x77);
  file = fopen (log, "ab");
  assert_non_null (file);
  assert_int_equal (fwrite ("\x01\x02\x03\x04\x05", 1, 5, file), 5);
  fclose (file);
  vms_test_sink_kill (fixture->sink);
  vms_assert_ok (vms_test_sink_restart (fixture->sink, &error), error);
  live_write_then_restart (fixture, "torn@live", 3 * BLOCK, 0x77);

  plain = vms_test_sink_connect (fixture->sink, "torn", &error);
  vms_assert_ok (plain, error);
  pattern (buffer, sizeof buffer, 0x33);
  assert_int_equal (nbd_pwrite (plain, buffer, 4 * BLOCK, 0, 0), 0);
  assert_bytes (plain, 0, BLOCK, 0x33);
  assert_bytes (plain, BLOCK, BLOCK, 0x77);
  assert_bytes (plain, 2 * BLOCK, BLOCK, 0x33);
  assert_bytes (plain, 3 * BLOCK, BLOCK, 0x77);
}

/* A long mirror writes sequential blocks: a few more live writes than
 * the live log takes before it is compacted (1 MiB of 16-byte records:
 * 65536 writes; each takes tens of microseconds, as live writes are
 * serialised), so that without compaction it would hold 1.03 MiB. */
#define LONG_MIRROR_BLOCKS (66 * 1024)
/* Compacted, it holds one record, plus those of the blocks after. */
#define COMPACTED_LOG_BOUND (512 * 1024)
/* Live writes in flight at once, as QEMU's mirror keeps many. */
#define LONG_MIRROR_IN_FLIGHT 64

static int
count_failure (void *user_data, int *error)
{
  if (*error)
    (*(guint *)user_data)++;
  /* Retire the command: the test checks the count. */
  return 1;
}

/* Blocks [0, blocks) written through live, many at a time, then FLUSH. */
static void
write_sequentially (nbd_handle *live, guint64 blocks, guint8 value)
{
  nbd_completion_callback completion = { .callback = count_failure };
  guint8 buffer[BLOCK];
  guint failures = 0;

  pattern (buffer, BLOCK, value);
  completion.user_data = &failures;
  for (guint64 block = 0; block < blocks; block++)
    {
      while (nbd_aio_in_flight (live) >= LONG_MIRROR_IN_FLIGHT)
        assert_true (nbd_poll (live, -1) >= 0);
      assert_true (
          nbd_aio_pwrite (live, buffer, BLOCK, block * BLOCK, completion, 0)
          >= 0);
    }
  while (nbd_aio_in_flight (live) > 0)
    assert_true (nbd_poll (live, -1) >= 0);
  assert_int_equal (failures, 0);
  assert_int_equal (nbd_flush (live, 0), 0);
}

/* The live log is compacted while the mirror runs: small on disk, and
 * still protecting every block after a restart of the sink. */
static void
test_live_log_compacted (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *log = g_build_filename (fixture->sink->replica_dir,
                                           ".vmshift", "long.live", NULL);
  guint64 end = (guint64)LONG_MIRROR_BLOCKS * BLOCK;
  g_autoptr (GError) error = NULL;
  g_autoptr (nbd_handle) plain = NULL;
  guint8 buffer[2 * BLOCK];
  struct stat st;

  vms_test_sink_create_replica (fixture->sink, "long", end + MiB);
  {
    g_autoptr (nbd_handle) live
        = vms_test_sink_connect (fixture->sink, "long@live", &error);

    vms_assert_ok (live, error);
    write_sequentially (live, LONG_MIRROR_BLOCKS, 0x77);
  }
  assert_int_equal (g_lstat (log, &st), 0);
  if (st.st_size >= COMPACTED_LOG_BOUND)
    fail_msg ("%s holds %" G_GINT64_FORMAT " bytes after %d sequential "
              "live writes: not compacted",
              log, (gint64)st.st_size, LONG_MIRROR_BLOCKS);

  vms_test_sink_kill (fixture->sink);
  vms_assert_ok (vms_test_sink_restart (fixture->sink, &error), error);
  plain = vms_test_sink_connect (fixture->sink, "long", &error);
  vms_assert_ok (plain, error);
  pattern (buffer, sizeof buffer, 0x33);
  /* Over the first block, the middle, and across the end of the live
   * writes: only what lies past the end lands. */
  assert_int_equal (nbd_pwrite (plain, buffer, BLOCK, 0, 0), 0);
  assert_int_equal (nbd_pwrite (plain, buffer, BLOCK, end / 2, 0), 0);
  assert_int_equal (nbd_pwrite (plain, buffer, 2 * BLOCK, end - BLOCK, 0), 0);
  assert_bytes (plain, 0, BLOCK, 0x77);
  assert_bytes (plain, end / 2, BLOCK, 0x77);
  assert_bytes (plain, end - BLOCK, BLOCK, 0x77);
  assert_bytes (plain, end, BLOCK, 0x33);
}

/* The mirror's switchover: a connection to @handover opened while the
 * mirror writes changes nothing; its FLUSH makes the replica durable and
 * lets plain writes (the destination's) land everywhere. */
static void
test_handover (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (GError) error = NULL;
  g_autoptr (nbd_handle) plain = NULL;
  g_autoptr (nbd_handle) live = NULL;
  g_autoptr (nbd_handle) handover = NULL;
  guint8 buffer[2 * BLOCK];

  vms_test_sink_create_replica (fixture->sink, "handed", MiB);
  live = vms_test_sink_connect (fixture->sink, "handed@live", &error);
  vms_assert_ok (live, error);
  handover = vms_test_sink_connect (fixture->sink, "handed@handover", &error);
  vms_assert_ok (handover, error);
  assert_int_equal (nbd_get_size (handover), 0);
  assert_true (nbd_is_read_only (handover));
  assert_int_equal (nbd_can_flush (handover), 1);

  pattern (buffer, BLOCK, 0x77);
  assert_int_equal (nbd_pwrite (live, buffer, BLOCK, BLOCK, 0), 0);
  plain = vms_test_sink_connect (fixture->sink, "handed", &error);
  vms_assert_ok (plain, error);
  pattern (buffer, sizeof buffer, 0x33);
  /* Opened, not flushed: the live data still wins. */
  assert_int_equal (nbd_pwrite (plain, buffer, 2 * BLOCK, 0, 0), 0);
  assert_bytes (plain, BLOCK, BLOCK, 0x77);

  assert_int_equal (nbd_flush (handover, 0), 0);
  assert_int_equal (nbd_pwrite (plain, buffer, 2 * BLOCK, 0, 0), 0);
  assert_bytes (plain, 0, 2 * BLOCK, 0x33);
}

/* @live-noflush orders writes as @live does, but offers no FLUSH (nor
 * FUA): the handover's FLUSH makes what it wrote durable. */
static void
test_live_noflush (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (GError) error = NULL;
  g_autoptr (nbd_handle) plain = NULL;
  g_autoptr (nbd_handle) live = NULL;
  g_autoptr (nbd_handle) handover = NULL;
  guint8 buffer[2 * BLOCK];

  vms_test_sink_create_replica (fixture->sink, "unflushed", MiB);
  live
      = vms_test_sink_connect (fixture->sink, "unflushed@live-noflush", &error);
  vms_assert_ok (live, error);
  plain = vms_test_sink_connect (fixture->sink, "unflushed", &error);
  vms_assert_ok (plain, error);
  assert_int_equal (nbd_can_flush (live), 0);
  assert_int_equal (nbd_can_fua (live), 0);
  assert_false (nbd_is_read_only (live));
  assert_int_equal (nbd_can_flush (plain), 1);

  pattern (buffer, BLOCK, 0x55);
  assert_int_equal (nbd_pwrite (live, buffer, BLOCK, BLOCK, 0), 0);
  pattern (buffer, sizeof buffer, 0x66);
  assert_int_equal (nbd_pwrite (plain, buffer, 2 * BLOCK, 0, 0), 0);
  assert_bytes (plain, 0, BLOCK, 0x66);
  assert_bytes (plain, BLOCK, BLOCK, 0x55);

  handover
      = vms_test_sink_connect (fixture->sink, "unflushed@handover", &error);
  vms_assert_ok (handover, error);
  assert_int_equal (nbd_flush (handover, 0), 0);
  assert_int_equal (nbd_pwrite (plain, buffer, 2 * BLOCK, 0, 0), 0);
  assert_bytes (plain, 0, 2 * BLOCK, 0x66);
}

/* vmshift's side of it: connections to several replicas, one FLUSH on
 * each at once. */
static void
test_handover_client (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (GError) error = NULL;
  g_autoptr (nbd_handle) plain = NULL;
  g_autoptr (nbd_handle) live = NULL;
  g_autoptr (VmsSinkHandover) handover = NULL;
  g_autofree char *sink_uri = vms_test_sink_uri (fixture->sink, "");
  const char *const replicas[] = { "one", "two", NULL };
  const char *const missing[] = { "one", "nosuch", NULL };
  guint8 buffer[BLOCK];

  vms_test_sink_create_replica (fixture->sink, "one", MiB);
  vms_test_sink_create_replica (fixture->sink, "two", MiB);
  live = vms_test_sink_connect (fixture->sink, "two@live", &error);
  vms_assert_ok (live, error);
  pattern (buffer, BLOCK, 0x77);
  assert_int_equal (nbd_pwrite (live, buffer, BLOCK, 0, 0), 0);

  handover = vms_sink_handover_open (sink_uri, replicas, &error);
  vms_assert_ok (handover, error);
  vms_assert_ok (vms_sink_handover_run (handover, 10000, &error), error);

  plain = vms_test_sink_connect (fixture->sink, "two", &error);
  vms_assert_ok (plain, error);
  pattern (buffer, BLOCK, 0x33);
  assert_int_equal (nbd_pwrite (plain, buffer, BLOCK, 0, 0), 0);
  assert_bytes (plain, 0, BLOCK, 0x33);

  /* A replica the sink does not have is refused when connecting. */
  assert_null (vms_sink_handover_open (sink_uri, missing, &error));
  assert_true (g_error_matches (error, VMS_COPY_ERROR, VMS_COPY_ERROR_CONNECT));
}

/* Stale replicator writes race with live writes to the same blocks; every
 * block the live export wrote must end with live data, whatever order
 * the requests were processed in. */
static void
test_live_ordering_concurrent (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (GError) error = NULL;
  g_autoptr (nbd_handle) plain = NULL;
  g_autoptr (nbd_handle) live = NULL;
  g_autoptr (GRand) rand = g_rand_new_with_seed (99);
  const guint blocks = 256;
  g_autofree gboolean *live_written = g_new0 (gboolean, blocks);
  guint8 stale[BLOCK], fresh[BLOCK];

  vms_test_sink_create_replica (fixture->sink, "racing", blocks * BLOCK);
  plain = vms_test_sink_connect (fixture->sink, "racing", &error);
  live = vms_test_sink_connect (fixture->sink, "racing@live", &error);
  vms_assert_ok (plain && live, error);
  pattern (stale, BLOCK, 0x5a);
  pattern (fresh, BLOCK, 0xa5);

  for (guint round = 0; round < 8; round++)
    {
      /* Queue stale writes to every block, then live writes to some while
       * the stale ones are in flight. */
      for (guint block = 0; block < blocks; block++)
        assert_true (nbd_aio_pwrite (plain, stale, BLOCK,
                                     (guint64)block * BLOCK,
                                     NBD_NULL_COMPLETION, 0)
                     >= 0);
      for (guint i = 0; i < 16; i++)
        {
          guint block = g_rand_int_range (rand, 0, blocks);

          live_written[block] = TRUE;
          assert_int_equal (
              nbd_pwrite (live, fresh, BLOCK, (guint64)block * BLOCK, 0), 0);
        }
      while (nbd_aio_in_flight (plain) > 0)
        assert_true (nbd_poll (plain, -1) >= 0);
    }
  for (guint block = 0; block < blocks; block++)
    assert_bytes (plain, (guint64)block * BLOCK, BLOCK,
                  live_written[block] ? 0xa5 : 0x5a);
}

/* ---- hashes ---- */

/* The sink's hashes of export (chunk bytes each) are xxhsum's of data. */
static void
assert_hashes_match (VmsTestSink *sink, const char *export, guint64 chunk,
                     const guint8 *data, guint64 size)
{
  g_autofree char *piece = g_build_filename (sink->dir, "piece", NULL);
  g_autofree guint8 *hashes = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (nbd_handle) nbd = NULL;
  guint64 chunks = (size + chunk - 1) / chunk;

  nbd = vms_test_sink_connect (sink, export, &error);
  vms_assert_ok (nbd, error);
  assert_int_equal (nbd_get_size (nbd), (int64_t)(chunks * 16));
  assert_int_equal (nbd_is_read_only (nbd), 1);
  hashes = g_malloc (chunks * 16);
  assert_int_equal (nbd_pread (nbd, hashes, chunks * 16, 0, 0), 0);

  for (guint64 i = 0; i < chunks; i++)
    {
      guint64 length = MIN (chunk, size - i * chunk);
      g_autofree char *out = NULL;
      g_autofree char *ours = NULL;
      const char *argv[] = { "xxhsum", "-H2", piece, NULL };

      assert_true (
          g_file_set_contents (piece, (char *)data + i * chunk, length, NULL));
      run_ok (argv, &out);
      ours = g_strnfill (32, ' ');
      for (int b = 0; b < 16; b++)
        g_snprintf (ours + 2 * b, 3, "%02x", hashes[i * 16 + b]);
      if (!g_str_has_prefix (out, ours))
        fail_msg ("%s chunk %" G_GUINT64_FORMAT
                  ": sink says %s, xxhsum says %s",
                  export, i, ours, out);
    }
}

static void
test_hashes_match_xxhsum (void **state)
{
  Fixture *fixture = *state;
  VmsTestSink *sink = fixture->sink;
  /* Not a multiple of the chunks: the last chunk is short. */
  const guint64 size = MiB + 1000;
  const guint64 chunk = 64 * 1024;
  g_autofree char *copy_uri = vms_test_sink_uri (sink, "hashed@create=1049576");
  g_autofree char *source = g_build_filename (sink->dir, "hash-src.raw", NULL);
  g_autofree guint8 *data = g_malloc0 (size);
  g_autofree char *xxhsum = g_find_program_in_path ("xxhsum");

  if (!xxhsum)
    vms_test_skip ("xxhsum not found (install the Debian package xxhash)");
  /* Chunks of data, one all-zero chunk in the middle, a short tail. */
  fill_random (data, size, 5);
  memset (data + 3 * chunk, 0, chunk);
  assert_true (g_file_set_contents (source, (char *)data, size, NULL));
  const char *nbdcopy[] = { "nbdcopy", source, copy_uri, NULL };
  run_ok (nbdcopy, NULL);

  /* The sink's chunk (the fixture's hash-chunk=64K), then a client's own
   * 4 KiB one, hashed many to a read, and a larger one. */
  assert_hashes_match (sink, "hashed@hashes", chunk, data, size);
  assert_hashes_match (sink, "hashed@hashes=4096", 4096, data, size);
  assert_hashes_match (sink, "hashed@hashes=2097152", 2 * MiB, data, size);
}

/* ---- commit and names ---- */

static JsonObject *
load_meta (VmsTestSink *sink, const char *name, JsonParser *parser)
{
  g_autofree char *file = g_strconcat (name, ".json", NULL);
  g_autofree char *path
      = g_build_filename (sink->replica_dir, ".vmshift", file, NULL);

  assert_true (json_parser_load_from_file (parser, path, NULL));
  return json_node_get_object (json_parser_get_root (parser));
}

static void
test_commit_is_explicit (void **state)
{
  Fixture *fixture = *state;
  VmsTestSink *sink = fixture->sink;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonParser) before = json_parser_new ();
  g_autoptr (JsonParser) after = json_parser_new ();
  g_autoptr (JsonParser) rewritten = json_parser_new ();
  g_autoptr (nbd_handle) commit = NULL;
  g_autoptr (nbd_handle) writer = NULL;
  g_autoptr (nbd_handle) missing = NULL;
  guint8 byte = 1;

  vms_test_sink_create_replica (sink, "committed", MiB);
  assert_false (json_object_get_boolean_member (
      load_meta (sink, "committed", before), "complete"));

  commit = vms_test_sink_connect (sink, "committed@commit", &error);
  vms_assert_ok (commit, error);
  assert_int_equal (nbd_get_size (commit), 0);
  assert_true (json_object_get_boolean_member (
      load_meta (sink, "committed", after), "complete"));

  /* Writing to a complete replica makes it incomplete again. */
  writer = vms_test_sink_connect (sink, "committed", &error);
  vms_assert_ok (writer, error);
  assert_int_equal (nbd_pwrite (writer, &byte, 1, 0, 0), 0);
  assert_false (json_object_get_boolean_member (
      load_meta (sink, "committed", rewritten), "complete"));

  missing = vms_test_sink_connect (sink, "never-created@commit", &error);
  assert_null (missing);
}

/* Connections close on the server a moment after the client's: retry an
 * open that a closing connection may still hold up. */
#define ORPHAN_RETRY_MS 5000
#define ORPHAN_POLL_MS 50

static nbd_handle *
connect_when_free (VmsTestSink *sink, const char *export_name)
{
  g_autoptr (GError) error = NULL;

  for (int waited = 0; waited < ORPHAN_RETRY_MS; waited += ORPHAN_POLL_MS)
    {
      nbd_handle *nbd = vms_test_sink_connect (sink, export_name, NULL);

      if (nbd)
        return nbd;
      g_usleep (ORPHAN_POLL_MS * 1000);
    }
  fail_msg ("export '%s' still refused after %d ms; sink log:\n%s", export_name,
            ORPHAN_RETRY_MS, vms_test_sink_log (sink));
  return NULL;
}

/* The plain export of an orphaned replica is refused, and the sink's log
 * (emptied first: nbdkit appends to it) says why. */
static void
assert_refused_as_orphan (VmsTestSink *sink, const char *name)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (nbd_handle) refused = NULL;
  g_autofree char *log = NULL;

  assert_int_equal (truncate (sink->log_path, 0), 0);
  refused = vms_test_sink_connect (sink, name, &error);
  assert_null (refused);
  log = vms_test_sink_log (sink);
  if (!strstr (log, "replica 'orphan' is orphaned"))
    fail_msg ("the sink's log does not say the replica is orphaned:\n%s", log);
}

/* vmshift-sink list --json's object for the replica, or NULL. */
static JsonObject *
list_replica (VmsTestSink *sink, const char *name, int expected_status,
              JsonParser *parser)
{
  const char *program = vms_test_built_program ("VMS_SINK");
  g_auto (VmsTestRun) run = { 0 };

  vms_test_run_capture (&run, NULL, NULL, program, "list", "--dir",
                        sink->replica_dir, "--json", NULL);
  assert_int_equal (run.status, expected_status);
  return vms_test_sink_listed (run.out, name, parser);
}

/* A replica whose data file was deleted by hand: list shows it orphaned,
 * a plain open is refused saying so, @create makes it afresh (while the
 * sink still had it open, and after a restart), and vmshift-sink remove
 * leaves nothing of it. */
static void
test_orphaned_replica (void **state)
{
  Fixture *fixture = *state;
  VmsTestSink *sink = fixture->sink;
  const char *program = vms_test_built_program ("VMS_SINK");
  g_autofree char *data = vms_test_sink_replica_path (sink, "orphan");
  g_autofree char *meta
      = g_build_filename (sink->replica_dir, ".vmshift", "orphan.json", NULL);
  g_autoptr (JsonParser) listed = json_parser_new ();
  g_autoptr (JsonParser) remade = json_parser_new ();
  g_autoptr (JsonParser) emptied = json_parser_new ();
  g_autoptr (GError) error = NULL;
  g_auto (VmsTestRun) removed = { 0 };
  g_auto (VmsTestRun) again = { 0 };
  JsonObject *row;
  struct stat st;

  vms_test_sink_create_replica (sink, "orphan", MiB);
  {
    g_autoptr (nbd_handle) commit = connect_when_free (sink, "orphan@commit");
  }
  /* By hand, as rm -rf DIR/x leaves DIR/.vmshift. */
  assert_int_equal (g_unlink (data), 0);
  assert_refused_as_orphan (sink, "orphan");
  row = list_replica (sink, "orphan", 1, listed);
  assert_non_null (row);
  assert_true (json_object_get_boolean_member (row, "orphaned"));

  /* The sink still holds the deleted file open: it is forgotten. */
  {
    g_autoptr (nbd_handle) fresh
        = connect_when_free (sink, "orphan@create=2097152");

    assert_int_equal (nbd_get_size (fresh), 2 * MiB);
  }
  assert_int_equal (stat (data, &st), 0);
  assert_int_equal (st.st_size, 2 * MiB);
  assert_false (json_object_get_boolean_member (
      load_meta (sink, "orphan", remade), "complete"));

  /* A sink started after the deletion knows only the metadata. */
  vms_assert_ok (vms_test_sink_stop (sink, &error), error);
  assert_int_equal (g_unlink (data), 0);
  vms_assert_ok (vms_test_sink_restart (sink, &error), error);
  assert_refused_as_orphan (sink, "orphan");
  vms_test_sink_create_replica (sink, "orphan", MiB);

  vms_test_run_capture (&removed, NULL, NULL, program, "remove", "--dir",
                        sink->replica_dir, "orphan", NULL);
  assert_int_equal (removed.status, 0);
  assert_false (g_file_test (data, G_FILE_TEST_EXISTS));
  assert_false (g_file_test (meta, G_FILE_TEST_EXISTS));
  assert_null (list_replica (sink, "orphan", 0, emptied));
  vms_test_run_capture (&again, NULL, NULL, program, "remove", "--dir",
                        sink->replica_dir, "orphan", NULL);
  assert_int_equal (again.status, 1);
  assert_non_null (strstr (again.err, "no replica named 'orphan'"));
}

static void
test_bad_export_names_refused (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *long_name = g_strnfill (201, 'a');
  const char *const refused[] = {
    "",
    "a/b",
    "../etc",
    "a..b",
    ".hidden",
    "-x",
    "x@unknown",
    "x@create=0",
    "x@create=12abc",
    "x@create=-5",
    "x@create=",
    "bad\x01name",
    "sp ace",
    "never-created",
    "never-created@live",
    "never-created@hashes",
    long_name,
  };

  for (gsize i = 0; i < G_N_ELEMENTS (refused); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (nbd_handle) nbd
          = vms_test_sink_connect (fixture->sink, refused[i], &error);

      if (nbd)
        fail_msg ("export name '%s' was accepted", refused[i]);
    }
  /* Nothing was created by the refused names. */
  {
    g_autoptr (GError) error = NULL;
    g_autoptr (nbd_handle) good = vms_test_sink_connect (
        fixture->sink, "Good-name_1.2+3@create=4096", &error);

    vms_assert_ok (good, error);
    assert_false (g_file_test (fixture->sink->replica_dir, G_FILE_TEST_IS_DIR)
                  && g_file_test ("x", G_FILE_TEST_EXISTS));
  }
}

static void
test_requests_beyond_end_refused (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (GError) error = NULL;
  g_autoptr (nbd_handle) nbd = NULL;
  g_autofree char *path = vms_test_sink_replica_path (fixture->sink, "small");
  guint8 buffer[1024] = { 0 };
  GStatBuf st;

  vms_test_sink_create_replica (fixture->sink, "small", 8192);
  nbd = vms_test_sink_connect (fixture->sink, "small", &error);
  vms_assert_ok (nbd, error);
  /* Let the requests reach the server instead of libnbd refusing them. */
  assert_int_equal (nbd_set_strict_mode (nbd, 0), 0);
  assert_int_equal (nbd_pwrite (nbd, buffer, 1024, 8192 - 512, 0), -1);
  assert_int_equal (nbd_pread (nbd, buffer, 1024, 8192, 0), -1);
  assert_int_equal (nbd_zero (nbd, 1024, G_MAXINT64 - 10, 0), -1);
  assert_int_equal (nbd_trim (nbd, 4096, 8192, 0), -1);
  /* The connection and the replica are still fine. */
  assert_int_equal (nbd_pwrite (nbd, buffer, 1024, 0, 0), 0);
  assert_int_equal (g_stat (path, &st), 0);
  assert_int_equal (st.st_size, 8192);
}

/* A client that dies with requests in flight leaves the replica as it was
 * acknowledged, and the sink serving. */
static void
test_client_hangup_mid_request (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (GError) error = NULL;
  g_autoptr (nbd_handle) nbd = NULL;
  g_autofree guint8 *kept = g_malloc (MiB);
  pid_t child;
  int status;

  vms_test_sink_create_replica (fixture->sink, "hangup", 16 * MiB);
  nbd = vms_test_sink_connect (fixture->sink, "hangup", &error);
  vms_assert_ok (nbd, error);
  fill_random (kept, MiB, 11);
  assert_int_equal (nbd_pwrite (nbd, kept, MiB, 0, 0), 0);
  assert_int_equal (nbd_flush (nbd, 0), 0);

  child = fork ();
  assert_true (child >= 0);
  if (child == 0)
    {
      struct nbd_handle *doomed = nbd_create ();
      static guint8 junk[MiB];

      if (nbd_set_export_name (doomed, "hangup") < 0
          || nbd_connect_unix (doomed, fixture->sink->socket_path) < 0)
        _exit (2);
      for (int i = 1; i < 16; i++)
        nbd_aio_pwrite (doomed, junk, MiB, (guint64)i * MiB,
                        NBD_NULL_COMPLETION, 0);
      nbd_aio_notify_write (doomed);
      kill (getpid (), SIGKILL);
      _exit (3);
    }
  assert_int_equal (waitpid (child, &status, 0), child);
  assert_true (WIFSIGNALED (status));

  assert_bytes (nbd, 0, 1, kept[0]);
  {
    g_autofree guint8 *back = g_malloc (MiB);

    assert_int_equal (nbd_pread (nbd, back, MiB, 0, 0), 0);
    assert_memory_equal (back, kept, MiB);
  }
  nbd_close (g_steal_pointer (&nbd));
  nbd = vms_test_sink_connect (fixture->sink, "hangup", &error);
  vms_assert_ok (nbd, error);
}

/* ---- a full disk ---- */

static void
test_disk_full_is_enospc (void **state)
{
  g_autofree char *mount_dir = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsTestSink) sink = NULL;
  g_autoptr (nbd_handle) nbd = NULL;
  g_autofree guint8 *data = g_malloc (256 * 1024);
  guint64 acknowledged = 0;
  int failed_errno = 0;

  if (!vms_test_is_root ())
    vms_test_skip ("needs root to mount a small tmpfs");
  mount_dir = vms_test_make_tmpdir ("vms-full");
  if (mount ("tmpfs", mount_dir, "tmpfs", 0, "size=2m") < 0)
    {
      int saved = errno;

      vms_test_rmtree (mount_dir);
      vms_test_skip ("cannot mount a small tmpfs (%s)", g_strerror (saved));
    }
  sink = vms_test_sink_start (mount_dir, NULL, &error);
  if (!sink)
    {
      umount (mount_dir);
      vms_test_rmtree (mount_dir);
      fail_msg ("cannot start sink on tmpfs: %s", error->message);
    }
  vms_test_sink_create_replica (sink, "full", 8 * MiB);
  nbd = vms_test_sink_connect (sink, "full", &error);
  vms_assert_ok (nbd, error);

  for (guint64 offset = 0; offset < 8 * MiB; offset += 256 * 1024)
    {
      fill_random (data, 256 * 1024, offset / 4096 + 1);
      if (nbd_pwrite (nbd, data, 256 * 1024, offset, 0) < 0)
        {
          failed_errno = nbd_get_errno ();
          break;
        }
      acknowledged = offset + 256 * 1024;
    }
  assert_int_equal (failed_errno, ENOSPC);
  assert_true (acknowledged > 0);
  /* What was acknowledged is there, byte for byte. */
  for (guint64 offset = 0; offset < acknowledged; offset += 256 * 1024)
    {
      g_autofree guint8 *back = g_malloc (256 * 1024);

      fill_random (data, 256 * 1024, offset / 4096 + 1);
      assert_int_equal (nbd_pread (nbd, back, 256 * 1024, offset, 0), 0);
      assert_memory_equal (back, data, 256 * 1024);
    }
  nbd_close (g_steal_pointer (&nbd));
  vms_test_sink_free (g_steal_pointer (&sink));
  umount (mount_dir);
  vms_test_rmtree (mount_dir);
}

/* ---- a block device as replica ---- */

static void
test_block_device_replica (void **state)
{
  g_autofree char *dir = NULL;
  g_autofree char *backing = NULL;
  g_autofree char *loop = NULL;
  g_autofree char *device_arg = NULL;
  g_autofree guint8 *data = g_malloc (MiB);
  g_autofree char *contents = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsTestSink) sink = NULL;
  g_autoptr (nbd_handle) nbd = NULL;
  g_autoptr (nbd_handle) too_big = NULL;
  g_autofree char *losetup = g_find_program_in_path ("losetup");

  if (!vms_test_is_root () || !losetup)
    vms_test_skip ("needs root and losetup for a loop device");
  dir = vms_test_make_tmpdir ("vms-blk");
  backing = g_build_filename (dir, "backing.img", NULL);
  {
    int fd = open (backing, O_RDWR | O_CREAT, 0600);

    assert_true (fd >= 0);
    assert_int_equal (ftruncate (fd, 8 * MiB), 0);
    close (fd);
  }
  const char *attach[] = { "losetup", "--find", "--show", backing, NULL };
  if (!vms_test_run (attach, &loop, &error))
    {
      vms_test_rmtree (dir);
      vms_test_skip ("no loop device (%s)", error->message);
    }
  g_strstrip (loop);
  device_arg = g_strdup_printf ("device=blk:%s", loop);
  {
    const char *args[] = { device_arg, NULL };

    sink = vms_test_sink_start (NULL, args, &error);
  }
  if (sink)
    {
      too_big = vms_test_sink_connect (sink, "blk@create=16777216", NULL);
      nbd = vms_test_sink_connect (sink, "blk@create=4194304", &error);
    }
  if (sink && nbd)
    {
      fill_random (data, MiB, 13);
      assert_int_equal (nbd_pwrite (nbd, data, MiB, MiB, 0), 0);
      assert_int_equal (nbd_flush (nbd, 0), 0);
      assert_bytes (nbd, 0, 4096, 0);
      assert_int_equal (nbd_zero (nbd, 4096, MiB, 0), 0);
    }
  g_clear_pointer (&nbd, nbd_close);
  vms_test_sink_free (g_steal_pointer (&sink));
  const char *detach[] = { "losetup", "--detach", loop, NULL };
  vms_test_run (detach, NULL, NULL);

  assert_null (too_big);
  vms_assert_ok (g_file_get_contents (backing, &contents, NULL, &error), error);
  for (gsize i = 0; i < 4096; i++)
    assert_int_equal (contents[MiB + i], 0);
  assert_memory_equal (contents + MiB + 4096, data + 4096, MiB - 4096);
  vms_test_rmtree (dir);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_third_party_clients, setup, teardown),
    cmocka_unit_test_setup_teardown (test_flush_survives_kill9, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_live_ordering_sequences, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_live_ordering_concurrent, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_handover, setup, teardown),
    cmocka_unit_test_setup_teardown (test_live_noflush, setup, teardown),
    cmocka_unit_test_setup_teardown (test_handover_client, setup, teardown),
    cmocka_unit_test_setup_teardown (test_live_ranges_outlive_sink_restart,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_live_log_torn_record, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_live_log_compacted, setup, teardown),
    cmocka_unit_test_setup_teardown (test_live_ranges_outlive_connections,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_hashes_match_xxhsum, setup, teardown),
    cmocka_unit_test_setup_teardown (test_commit_is_explicit, setup, teardown),
    cmocka_unit_test_setup_teardown (test_orphaned_replica, setup, teardown),
    cmocka_unit_test_setup_teardown (test_bad_export_names_refused, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_requests_beyond_end_refused, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_client_hangup_mid_request, setup,
                                     teardown),
    cmocka_unit_test (test_disk_full_is_enospc),
    cmocka_unit_test (test_block_device_replica),
  };

  vms_test_require_program ("nbdkit", "nbdkit");
  vms_test_require_program ("nbdcopy", "libnbd-bin");
  vms_test_require_program ("nbdinfo", "libnbd-bin");
  vms_test_require_program ("qemu-img", "qemu-utils");
  /* VMS_TEST_FILTER=test_orphan* runs one test when debugging. */
  return vms_test_run_group ("sink", tests, G_N_ELEMENTS (tests), NULL, NULL);
}
