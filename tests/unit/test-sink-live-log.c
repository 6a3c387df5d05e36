/* Unit tests: the sink's live log (nbd-sink/vms-sink-live-log.c) on real
 * files: its compaction, and that what it protected survives a reopen.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <glib/gstdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vms-sink-live-log.h"

#define BLOCK 4096
#define MiB (1024 * 1024)
#define RECORD_SIZE 16
/* A long mirror writing sequential blocks: 3.2 MB of records if nothing
 * compacts them. */
#define SEQUENTIAL_BLOCKS 200000
/* Every other block: ranges that cannot merge, 1.6 MB of records. */
#define SCATTERED_BLOCKS 100000
/* Any compacted log is far below this, and the uncompacted logs of the
 * tests are above it. */
#define COMPACTED_BOUND (2 * MiB)
#define NAME "disk"

typedef struct
{
  char *dir;  /* the metadata directory */
  int dir_fd; /* dir, opened */
} Fixture;

static void
assert_ok (gboolean ok, GError *error)
{
  if (!ok)
    fail_msg ("%s", error ? error->message : "failed without an error");
}

static int
setup (void **state)
{
  Fixture *fixture = g_new0 (Fixture, 1);

  fixture->dir = g_dir_make_tmp ("vms-live-log-XXXXXX", NULL);
  if (!fixture->dir)
    return -1;
  fixture->dir_fd = open (fixture->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  *state = fixture;
  return fixture->dir_fd >= 0 ? 0 : -1;
}

static int
teardown (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (GDir) dir = g_dir_open (fixture->dir, 0, NULL);
  const char *name;

  while (dir && (name = g_dir_read_name (dir)))
    {
      g_autofree char *path = g_build_filename (fixture->dir, name, NULL);

      if (g_remove (path) < 0)
        g_rmdir (path);
    }
  g_rmdir (fixture->dir);
  close (fixture->dir_fd);
  g_free (fixture->dir);
  g_free (fixture);
  return 0;
}

static VmsSinkLiveLog *
open_log (Fixture *fixture, VmsRangeSet **ranges)
{
  g_autoptr (GError) error = NULL;
  VmsSinkLiveLog *log = vms_sink_live_log_open (fixture->dir_fd, fixture->dir,
                                                NAME, ranges, &error);

  assert_ok (log != NULL, error);
  return log;
}

/* What the replica does for a live write to bytes not yet live: the
 * record, then the set, then perhaps a compaction. */
static void
record (VmsSinkLiveLog *log, VmsRangeSet *set, guint64 offset, guint64 length)
{
  g_autoptr (GError) error = NULL;

  assert_ok (vms_sink_live_log_append (log, offset, length, &error), error);
  vms_range_set_add (set, offset, length);
  assert_ok (vms_sink_live_log_maybe_compact (log, set, &error), error);
}

static struct stat
stat_log (Fixture *fixture)
{
  g_autofree char *path = g_build_filename (fixture->dir, NAME ".live", NULL);
  struct stat st;

  assert_int_equal (g_lstat (path, &st), 0);
  return st;
}

/* The log reopened holds exactly set: the same merged ranges, and no
 * byte more. */
static void
assert_reopens_as (Fixture *fixture, VmsRangeSet *set)
{
  g_autoptr (VmsRangeSet) reread = NULL;
  g_autoptr (VmsSinkLiveLog) log = open_log (fixture, &reread);

  assert_non_null (reread);
  assert_int_equal (vms_range_set_count (reread), vms_range_set_count (set));
  assert_int_equal (vms_range_set_total (reread), vms_range_set_total (set));
}

/* Sequential blocks merge into one range: without compaction the log
 * would hold a record per block. */
static void
test_sequential_writes_compact (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsRangeSet) set = vms_range_set_new ();
  g_autoptr (VmsRangeSet) reread = NULL;
  g_autoptr (VmsSinkLiveLog) log = open_log (fixture, &reread);
  guint64 end = (guint64)SEQUENTIAL_BLOCKS * BLOCK;

  assert_null (reread);
  for (guint64 block = 0; block < SEQUENTIAL_BLOCKS; block++)
    record (log, set, block * BLOCK, BLOCK);
  assert_true (stat_log (fixture).st_size < COMPACTED_BOUND);
  assert_int_equal (stat_log (fixture).st_size % RECORD_SIZE, 0);

  g_clear_pointer (&log, vms_sink_live_log_free);
  log = open_log (fixture, &reread);
  assert_int_equal (vms_range_set_count (reread), 1);
  assert_int_equal (vms_range_set_total (reread), end);
  assert_true (vms_range_set_overlaps (reread, 0, 1));
  assert_true (vms_range_set_overlaps (reread, end / 2, 1));
  assert_true (vms_range_set_overlaps (reread, end - 1, 1));
  assert_false (vms_range_set_overlaps (reread, end, BLOCK));
}

/* Ranges that do not merge all survive a compaction and a reopen. */
static void
test_scattered_writes_survive_compaction (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsRangeSet) set = vms_range_set_new ();
  g_autoptr (VmsRangeSet) reread = NULL;
  g_autoptr (VmsSinkLiveLog) log = open_log (fixture, &reread);
  struct stat before = stat_log (fixture);

  for (guint64 block = 0; block < SCATTERED_BLOCKS; block++)
    record (log, set, 2 * block * BLOCK, BLOCK);
  /* A compaction renamed a new file over the log: another inode. */
  assert_true (stat_log (fixture).st_ino != before.st_ino);
  assert_int_equal (stat_log (fixture).st_size, SCATTERED_BLOCKS * RECORD_SIZE);

  g_clear_pointer (&log, vms_sink_live_log_free);
  log = open_log (fixture, &reread);
  assert_non_null (reread);
  assert_int_equal (vms_range_set_count (reread), SCATTERED_BLOCKS);
  assert_int_equal (vms_range_set_total (reread),
                    (guint64)SCATTERED_BLOCKS * BLOCK);
  for (guint64 block = 0; block < SCATTERED_BLOCKS; block += 997)
    {
      assert_true (vms_range_set_overlaps (reread, 2 * block * BLOCK, BLOCK));
      assert_false (
          vms_range_set_overlaps (reread, (2 * block + 1) * BLOCK, BLOCK));
    }
}

/* A log written before compaction existed, bloated, is compacted by the
 * first append that finds it twice its ranges. */
static void
test_bloated_log_compacts_after_reopen (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsRangeSet) set = vms_range_set_new ();
  g_autoptr (VmsRangeSet) reread = NULL;
  g_autoptr (VmsSinkLiveLog) log = open_log (fixture, &reread);
  g_autoptr (GError) error = NULL;

  /* Appends without compaction, as an older sink made them. */
  for (guint64 block = 0; block < SEQUENTIAL_BLOCKS; block++)
    {
      assert_ok (vms_sink_live_log_append (log, block * BLOCK, BLOCK, &error),
                 error);
      vms_range_set_add (set, block * BLOCK, BLOCK);
    }
  assert_int_equal (stat_log (fixture).st_size,
                    SEQUENTIAL_BLOCKS * RECORD_SIZE);
  g_clear_pointer (&log, vms_sink_live_log_free);

  log = open_log (fixture, &reread);
  record (log, reread, (guint64)SEQUENTIAL_BLOCKS * BLOCK, BLOCK);
  vms_range_set_add (set, (guint64)SEQUENTIAL_BLOCKS * BLOCK, BLOCK);
  assert_int_equal (stat_log (fixture).st_size, RECORD_SIZE);
  g_clear_pointer (&log, vms_sink_live_log_free);
  assert_reopens_as (fixture, set);
}

/* A compaction that fails (here: no descriptor left for its temporary
 * file) loses nothing: the old log takes the next records. */
static void
test_failed_compaction_keeps_appending (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsRangeSet) set = vms_range_set_new ();
  g_autoptr (VmsRangeSet) reread = NULL;
  g_autoptr (VmsSinkLiveLog) log = open_log (fixture, &reread);
  g_autoptr (GError) error = NULL;
  struct rlimit saved, none;
  guint64 failures = 0;
  int lowest_free = dup (0);

  assert_true (lowest_free >= 0);
  close (lowest_free);
  assert_int_equal (getrlimit (RLIMIT_NOFILE, &saved), 0);
  none = saved;
  none.rlim_cur = lowest_free;
  assert_int_equal (setrlimit (RLIMIT_NOFILE, &none), 0);
  for (guint64 block = 0; block < SEQUENTIAL_BLOCKS; block++)
    {
      gboolean appended
          = vms_sink_live_log_append (log, block * BLOCK, BLOCK, NULL);

      vms_range_set_add (set, block * BLOCK, BLOCK);
      if (!appended)
        break;
      if (!vms_sink_live_log_maybe_compact (log, set, &error))
        {
          failures++;
          g_clear_error (&error);
        }
    }
  assert_int_equal (setrlimit (RLIMIT_NOFILE, &saved), 0);
  /* Tried at 1 MiB and, backing off, at 2 MiB. */
  assert_int_equal (failures, 2);
  assert_int_equal (stat_log (fixture).st_size,
                    SEQUENTIAL_BLOCKS * RECORD_SIZE);
  g_clear_pointer (&log, vms_sink_live_log_free);
  assert_reopens_as (fixture, set);
}

/* A reset after a compaction empties the log for good. */
static void
test_reset_after_compaction (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsRangeSet) set = vms_range_set_new ();
  g_autoptr (VmsRangeSet) reread = NULL;
  g_autoptr (VmsSinkLiveLog) log = open_log (fixture, &reread);
  g_autoptr (GError) error = NULL;

  for (guint64 block = 0; block < SEQUENTIAL_BLOCKS / 2; block++)
    record (log, set, block * BLOCK, BLOCK);
  assert_ok (vms_sink_live_log_reset (log, &error), error);
  g_clear_pointer (&set, vms_range_set_free);
  set = vms_range_set_new ();
  record (log, set, 7 * BLOCK, BLOCK);
  assert_ok (vms_sink_live_log_sync (log, &error), error);
  assert_int_equal (stat_log (fixture).st_size, RECORD_SIZE);
  g_clear_pointer (&log, vms_sink_live_log_free);
  assert_reopens_as (fixture, set);
}

static void
plant (Fixture *fixture, const char *name)
{
  g_autofree char *path = g_build_filename (fixture->dir, name, NULL);

  assert_true (g_file_set_contents (path, "not a log", -1, NULL));
}

static gboolean
exists (Fixture *fixture, const char *name)
{
  g_autofree char *path = g_build_filename (fixture->dir, name, NULL);

  return g_file_test (path, G_FILE_TEST_EXISTS);
}

/* The temporary file of a compaction that a crash interrupted neither
 * breaks the next open nor stays; other files stay. */
static void
test_stale_temporary_file_removed (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsRangeSet) set = vms_range_set_new ();
  g_autoptr (VmsRangeSet) reread = NULL;
  g_autoptr (VmsSinkLiveLog) log = open_log (fixture, &reread);

  record (log, set, BLOCK, BLOCK);
  g_clear_pointer (&log, vms_sink_live_log_free);
  plant (fixture, "." NAME ".live.0123abcd");
  plant (fixture, "." NAME ".json.0123abcd");
  plant (fixture, "." NAME ".live.0123abcd~");
  plant (fixture, "other.live");
  /* Named like one, but no replace makes directories. */
  assert_int_equal (mkdirat (fixture->dir_fd, "." NAME ".live.89abcdef", 0700),
                    0);

  assert_reopens_as (fixture, set);
  assert_false (exists (fixture, "." NAME ".live.0123abcd"));
  assert_true (exists (fixture, "." NAME ".json.0123abcd"));
  assert_true (exists (fixture, "." NAME ".live.0123abcd~"));
  assert_true (exists (fixture, "other.live"));
  assert_true (exists (fixture, "." NAME ".live.89abcdef"));
}

/* Removing a replica's log takes a crashed compaction's leftovers too. */
static void
test_remove_takes_temporary_files (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsRangeSet) reread = NULL;
  g_autoptr (VmsSinkLiveLog) log = open_log (fixture, &reread);
  g_autoptr (GError) error = NULL;

  g_clear_pointer (&log, vms_sink_live_log_free);
  plant (fixture, "." NAME ".live.fedcba98");
  assert_ok (
      vms_sink_live_log_remove (fixture->dir_fd, fixture->dir, NAME, &error),
      error);
  assert_false (exists (fixture, NAME ".live"));
  assert_false (exists (fixture, "." NAME ".live.fedcba98"));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_sequential_writes_compact, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_scattered_writes_survive_compaction,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_bloated_log_compacts_after_reopen,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_failed_compaction_keeps_appending,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_reset_after_compaction, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_stale_temporary_file_removed, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_remove_takes_temporary_files, setup,
                                     teardown),
  };

  return cmocka_run_group_tests_name ("sink-live-log", tests, NULL, NULL);
}
