/* Integration tests: qemu-filter (disk discovery, dirty bitmap rounds,
 * read-only NBD exports and what the guest reports of itself) against a
 * real QEMU whose guest keeps writing.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-test.h"
#include "vms-test-vm.h"

#include "vms-bitmap.h"
#include "vms-disk.h"
#include "vms-export.h"
#include "vms-qemu-migration.h"
#include "vms-mirror.h"
#include "vms-guest.h"
#include "vms-range-set.h"
#include "vms-tls.h"
#include "vms-vm.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <libnbd.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB (1024 * 1024)
#define DISK_SIZE (32 * MIB)

/* The guest writer writes 4 KiB blocks at random in [0, WRITER_SPAN) of
 * vd0 at 512 KiB/s: about 128 bitmap bits of 64 KiB, so a fresh bitmap
 * takes seconds to fill up and its count visibly grows meanwhile. */
#define WRITER_SPAN (8 * MIB)
#define WRITER_CMDLINE "vms.write_rate_kib=512 vms.write_span_mib=8"

/* A qemu-io write on vd1 (the guest never writes vd1) that starts and ends
 * inside a 64 KiB bit, so the bitmap must round it out to
 * [RAW_DIRTY_START, RAW_DIRTY_END). */
#define RAW_WRITE_OFFSET (20 * MIB + 4096)
#define RAW_WRITE_LENGTH (136 * 1024)
#define RAW_DIRTY_START (20 * MIB)
#define RAW_DIRTY_END (20 * MIB + 192 * 1024)

/* How long a growing count is waited for; the writer needs well under a
 * second, the margin is for TCG on shared cores. */
#define GROW_TIMEOUT_MS 30000
/* How long a disabled bitmap is watched for changes while the guest
 * writes: a few hundred guest writes. */
#define STABLE_WATCH_MS 1500
/* Polling interval for counts and sockets. */
#define POLL_INTERVAL_US (100 * 1000)
/* Reads queued behind a throttle of THROTTLED_IOPS keep an export alive
 * after block-export-del for about THROTTLED_READS / THROTTLED_IOPS
 * seconds; the wait must be at least THROTTLED_MIN_WAIT_MS (the first
 * reads pass at once, and some time goes before the delete). */
#define THROTTLED_IOPS 2
#define THROTTLED_READS 8
#define THROTTLED_READ_SIZE 4096
#define THROTTLED_MIN_WAIT_MS 1000
/* Time for QEMU to receive the queued reads. */
#define QUEUE_SETTLE_US (300 * 1000)
/* A dirty rate measurement of 1 s is done within this long under TCG on
 * shared cores. */
#define DIRTY_RATE_TIMEOUT_MS 30000
/* A QEMU or nbdkit started by hand listens within a second or two. */
#define SOCKET_TIMEOUT_MS 20000
/* A write-blocking mirror with sync=none is ready within a second; the
 * margin is for TCG on shared cores. */
#define MIRROR_READY_TIMEOUT_MS 30000
/* A TLS-PSK key for the mirror's sink: identity and hex key, the format
 * of QEMU's keys.psk and nbdkit's --tls-psk file. */
#define PSK_USERNAME "vmshift"
#define PSK_LINE PSK_USERNAME ":0123456789abcdef0123456789abcdef\n"

typedef struct
{
  VmsTestVm *vm;     /* the writing guest: d0/vd0 qcow2, d1/vd1 raw */
  char *dir;         /* private directory for sockets */
  char *socket_path; /* where our NBD server listens */
  GPid sink_pid;     /* an nbdkit the mirror writes to, or 0 */
} Fixture;

/* ---- helpers ---------------------------------------------------------- */

/* Runs in a child between fork and exec: it must not outlive the test. */
static void
die_with_parent (gpointer data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

static GPid
spawn_daemon (const char *const *argv, const char *socket_path)
{
  g_autoptr (GError) error = NULL;
  gint64 deadline = g_get_monotonic_time () + SOCKET_TIMEOUT_MS * (gint64)1000;
  GPid pid;

  if (!g_spawn_async (NULL, (char **)argv, NULL,
                      G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD,
                      die_with_parent, NULL, &pid, &error))
    fail_msg ("cannot start %s: %s", argv[0], error->message);
  while (!g_file_test (socket_path, G_FILE_TEST_EXISTS))
    {
      if (g_get_monotonic_time () > deadline)
        fail_msg ("%s did not create %s", argv[0], socket_path);
      g_usleep (POLL_INTERVAL_US);
    }
  return pid;
}

static void
kill_daemon (GPid pid)
{
  int status;

  kill (pid, SIGKILL);
  waitpid (pid, &status, 0);
}

static void
create_image (const char *format, const char *path, guint64 size)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *size_text = g_strdup_printf ("%" G_GUINT64_FORMAT, size);
  const char *argv[]
      = { "qemu-img", "create", "-q", "-f", format, path, size_text, NULL };

  vms_assert_ok (vms_test_run (argv, NULL, &error), error);
}

static VmsBitmapInfo *
query_bitmap (VmsQmp *qmp, const char *node, const char *name)
{
  g_autoptr (GError) error = NULL;
  VmsBitmapInfo *info = vms_bitmap_query (qmp, node, name, &error);

  vms_assert_ok (info, error);
  return info;
}

/* Poll until the bitmap's count exceeds floor; returns the count. */
static guint64
wait_count_above (VmsQmp *qmp, const char *node, const char *name,
                  guint64 floor)
{
  gint64 deadline = g_get_monotonic_time () + GROW_TIMEOUT_MS * (gint64)1000;

  for (;;)
    {
      g_autoptr (VmsBitmapInfo) info = query_bitmap (qmp, node, name);

      if (info->count > floor)
        return info->count;
      if (g_get_monotonic_time () > deadline)
        fail_msg ("bitmap %s on %s stayed at %" G_GUINT64_FORMAT
                  " dirty bytes for %d ms while the guest writes",
                  name, node, info->count, GROW_TIMEOUT_MS);
      g_usleep (POLL_INTERVAL_US);
    }
}

static void
add_bitmap (VmsQmp *qmp, const char *node, const char *name,
            gboolean expect_persistent)
{
  g_autoptr (GError) error = NULL;
  gboolean persistent = !expect_persistent;

  vms_assert_ok (vms_bitmap_add (qmp, node, name, 0, &persistent, &error),
                 error);
  assert_int_equal (persistent, expect_persistent);
}

static void
remove_bitmap (VmsQmp *qmp, const char *node, const char *name)
{
  g_autoptr (GError) error = NULL;

  vms_assert_ok (vms_bitmap_remove (qmp, node, name, &error), error);
}

static void
start_server (Fixture *fixture)
{
  g_autoptr (GError) error = NULL;

  vms_assert_ok (
      vms_export_server_start (fixture->vm->qmp, fixture->socket_path, &error),
      error);
}

static struct nbd_handle *
connect_export (const char *socket_path, const char *export,
                const char *context)
{
  g_autofree char *uri
      = g_strdup_printf ("nbd+unix:///%s?socket=%s", export, socket_path);
  struct nbd_handle *nbd = nbd_create ();

  assert_non_null (nbd);
  if ((context && nbd_add_meta_context (nbd, context) == -1)
      || nbd_connect_uri (nbd, uri) == -1)
    fail_msg ("%s: %s", uri, nbd_get_error ());
  return nbd;
}

typedef struct
{
  const char *context; /* the meta context asked for */
  VmsRangeSet *dirty;  /* dirty ranges reported */
  guint64 next;        /* offset after the last extent of the reply */
} DirtyScan;

static int
collect_dirty (void *user_data, const char *metacontext, uint64_t offset,
               uint32_t *entries, size_t nr_entries, int *error)
{
  DirtyScan *scan = user_data;

  if (strcmp (metacontext, scan->context) != 0)
    return 0;
  /* Pairs of (length, flags); flag 1 is "dirty" in qemu:dirty-bitmap. */
  for (size_t i = 0; i + 1 < nr_entries; i += 2)
    {
      if (entries[i + 1] & 1)
        vms_range_set_add (scan->dirty, offset, entries[i]);
      offset += entries[i];
    }
  scan->next = offset;
  return 0;
}

/* The dirty ranges of bitmap as a reader of the export sees them. */
static VmsRangeSet *
read_dirty_ranges (const char *socket_path, const char *export,
                   const char *bitmap)
{
  g_autofree char *context = g_strdup_printf ("qemu:dirty-bitmap:%s", bitmap);
  struct nbd_handle *nbd = connect_export (socket_path, export, context);
  DirtyScan scan = { .context = context, .dirty = vms_range_set_new () };
  guint64 offset = 0;
  gint64 size;

  assert_int_equal (nbd_can_meta_context (nbd, context), 1);
  size = nbd_get_size (nbd);
  assert_int_equal (size, DISK_SIZE);
  while (offset < (guint64)size)
    {
      scan.next = offset;
      if (nbd_block_status (nbd, size - offset, offset,
                            (nbd_extent_callback){ .callback = collect_dirty,
                                                   .user_data = &scan },
                            0)
          == -1)
        fail_msg ("block status of %s at %" G_GUINT64_FORMAT ": %s", export,
                  offset, nbd_get_error ());
      assert_true (scan.next > offset);
      offset = scan.next;
    }
  nbd_shutdown (nbd, 0);
  nbd_close (nbd);
  return scan.dirty;
}

static gboolean
found_gap (guint64 offset, guint64 length, gpointer user_data)
{
  *(gboolean *)user_data = TRUE;
  return FALSE;
}

static gboolean
covers (VmsRangeSet *set, guint64 start, guint64 end)
{
  gboolean gap = FALSE;

  vms_range_set_foreach_gap (set, start, end - start, found_gap, &gap);
  return !gap;
}

/* ---- fixtures --------------------------------------------------------- */

static int
start_writing_guest (void **state)
{
  VmsTestVmOptions options = {
    .workload = "writer",
    .extra_cmdline = WRITER_CMDLINE,
    .disks = { { "qcow2", DISK_SIZE }, { "raw", DISK_SIZE } },
  };
  g_autoptr (GError) error = NULL;
  Fixture *fixture = g_new0 (Fixture, 1);

  fixture->vm = vms_test_vm_start (&options, &error);
  if (!fixture->vm || !vms_test_vm_wait_ready (fixture->vm, &error))
    {
      print_error ("cannot start the guest: %s\n", error->message);
      vms_test_vm_free (fixture->vm);
      g_free (fixture);
      return -1;
    }
  fixture->dir = vms_test_make_tmpdir ("vms-qf");
  fixture->socket_path = g_build_filename (fixture->dir, "nbd.sock", NULL);
  *state = fixture;
  return 0;
}

static int
stop_writing_guest (void **state)
{
  Fixture *fixture = *state;

  vms_test_vm_free (fixture->vm);
  vms_test_rmtree (fixture->dir);
  g_free (fixture->dir);
  g_free (fixture->socket_path);
  g_free (fixture);
  return 0;
}

/* A command whose failure does not matter: undoing what a failed test may
 * have left, so that the tests after it start from a clean guest. */
static void
run_quietly (VmsQmp *qmp, const char *command, const char *arguments)
{
  g_autoptr (JsonNode) reply
      = vms_qmp_execute_json (qmp, command, arguments, NULL);
}

static int
undo_mirror (void **state)
{
  Fixture *fixture = *state;
  VmsQmp *qmp = fixture->vm->qmp;
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  run_quietly (qmp, "block-job-cancel",
               "{\"device\": \"live1\", \"force\": true}");
  while (g_get_monotonic_time () < deadline)
    {
      g_autoptr (JsonNode) jobs
          = vms_qmp_execute (qmp, "query-block-jobs", NULL, NULL);

      if (!jobs || json_array_get_length (json_node_get_array (jobs)) == 0)
        break;
      g_usleep (POLL_INTERVAL_US);
    }
  run_quietly (qmp, "blockdev-del", "{\"node-name\": \"sink1\"}");
  return 0;
}

static int
undo_throttle (void **state)
{
  Fixture *fixture = *state;
  VmsQmp *qmp = fixture->vm->qmp;

  vms_export_remove (qmp, "x3", NULL);
  run_quietly (qmp, "blockdev-del", "{\"node-name\": \"slow1\"}");
  run_quietly (qmp, "object-del", "{\"id\": \"slow1\"}");
  vms_bitmap_remove (qmp, "d1", "w0", NULL);
  vms_bitmap_remove (qmp, "d1", "w1", NULL);
  return 0;
}

/* ---- discovery -------------------------------------------------------- */

static void
assert_disk (VmsDisk *disk, const char *name, const char *node,
             const char *format, const char *filename, gboolean read_only)
{
  assert_string_equal (disk->name, name);
  assert_string_equal (disk->node_name, node);
  assert_string_equal (disk->format, format);
  assert_string_equal (disk->filename, filename);
  assert_int_equal (disk->size, DISK_SIZE);
  assert_int_equal (disk->read_only, read_only);
}

static void
test_discover_finds_blockdev_disks (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) disks = vms_disk_discover (fixture->vm->qmp, &error);

  vms_assert_ok (disks, error);
  assert_int_equal (disks->len, 2);
  assert_disk (disks->pdata[0], "vd0", "d0", "qcow2",
               fixture->vm->disk_paths[0], FALSE);
  assert_disk (disks->pdata[1], "vd1", "d1", "raw", fixture->vm->disk_paths[1],
               FALSE);
}

static void
test_find_by_name_or_node_and_list_on_error (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) disks = vms_disk_discover (fixture->vm->qmp, &error);
  VmsDisk *disk;

  vms_assert_ok (disks, error);
  disk = vms_disk_find (disks, "vd1", &error);
  vms_assert_ok (disk, error);
  assert_string_equal (disk->node_name, "d1");
  disk = vms_disk_find (disks, "d0", &error);
  vms_assert_ok (disk, error);
  assert_string_equal (disk->name, "vd0");

  assert_null (vms_disk_find (disks, "vd7", &error));
  assert_true (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND));
  assert_non_null (strstr (error->message, "'vd7'"));
  assert_non_null (strstr (error->message, "vd0 (node d0, qcow2)"));
  assert_non_null (strstr (error->message, "vd1 (node d1, raw)"));
}

/* While the live mirror runs, query-block names its filter node instead of
 * d1; discovery must still give the format node. */
static void
test_discover_looks_through_named_filter (void **state)
{
  Fixture *fixture = *state;
  VmsQmp *qmp = fixture->vm->qmp;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) disks = NULL;
  g_autoptr (GPtrArray) after = NULL;
  g_autoptr (JsonNode) target = NULL;
  g_autoptr (JsonNode) mirror = NULL;
  g_autoptr (JsonNode) cancelled = NULL;
  g_autoptr (JsonNode) deleted = NULL;
  g_autoptr (JsonNode) block = NULL;
  gboolean seen = FALSE;

  target = vms_qmp_execute_json (qmp, "blockdev-add",
                                 "{\"driver\": \"null-co\", \"node-name\": "
                                 "\"sink1\", \"size\": 33554432}",
                                 &error);
  vms_assert_ok (target, error);
  mirror = vms_qmp_execute_json (qmp, "blockdev-mirror",
                                 "{\"job-id\": \"live1\", \"device\": \"d1\", "
                                 "\"target\": \"sink1\", \"sync\": \"none\", "
                                 "\"filter-node-name\": \"vmslive1\"}",
                                 &error);
  vms_assert_ok (mirror, error);

  /* The premise: QEMU itself reports the filter. */
  block = vms_qmp_execute (qmp, "query-block", NULL, &error);
  vms_assert_ok (block, error);
  for (guint i = 0; i < json_array_get_length (json_node_get_array (block));
       i++)
    {
      JsonObject *entry
          = json_array_get_object_element (json_node_get_array (block), i);

      if (g_str_has_prefix (json_object_get_string_member (entry, "qdev"),
                            "/machine/peripheral/vd1/"))
        {
          JsonObject *inserted
              = json_object_get_object_member (entry, "inserted");

          seen = TRUE;
          assert_string_equal (
              json_object_get_string_member (inserted, "node-name"),
              "vmslive1");
          assert_string_equal (json_object_get_string_member (inserted, "drv"),
                               "mirror_top");
        }
    }
  assert_true (seen);

  disks = vms_disk_discover (qmp, &error);
  vms_assert_ok (disks, error);
  assert_int_equal (disks->len, 2);
  assert_disk (disks->pdata[1], "vd1", "d1", "raw", fixture->vm->disk_paths[1],
               FALSE);

  /* A ready mirror cancelled completes without pivot and takes its filter
   * away. */
  cancelled = vms_qmp_execute_json (qmp, "block-job-cancel",
                                    "{\"device\": \"live1\"}", &error);
  vms_assert_ok (cancelled, error);
  vms_assert_ok (vms_qmp_wait_event (qmp, "BLOCK_JOB_COMPLETED", 30000, NULL,
                                     NULL, NULL, &error),
                 error);
  deleted = vms_qmp_execute_json (qmp, "blockdev-del",
                                  "{\"node-name\": \"sink1\"}", &error);
  vms_assert_ok (deleted, error);
  after = vms_disk_discover (qmp, &error);
  vms_assert_ok (after, error);
  assert_disk (after->pdata[1], "vd1", "d1", "raw", fixture->vm->disk_paths[1],
               FALSE);
}

/* ---- bitmaps ---------------------------------------------------------- */

static void
test_bitmap_persistent_on_qcow2_fallback_on_raw (void **state)
{
  Fixture *fixture = *state;
  VmsQmp *qmp = fixture->vm->qmp;
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsBitmapInfo) on_qcow2 = NULL;
  g_autoptr (VmsBitmapInfo) on_raw = NULL;
  g_autoptr (GPtrArray) listed = NULL;

  add_bitmap (qmp, "d0", "p0", TRUE);
  add_bitmap (qmp, "d1", "p1", FALSE);
  on_qcow2 = query_bitmap (qmp, "d0", "p0");
  assert_string_equal (on_qcow2->name, "p0");
  assert_true (on_qcow2->persistent);
  assert_true (on_qcow2->recording);
  assert_false (on_qcow2->busy);
  assert_false (on_qcow2->inconsistent);
  assert_int_equal (on_qcow2->granularity, VMS_BITMAP_DEFAULT_GRANULARITY);
  on_raw = query_bitmap (qmp, "d1", "p1");
  assert_false (on_raw->persistent);
  assert_true (on_raw->recording);
  assert_int_equal (on_raw->granularity, VMS_BITMAP_DEFAULT_GRANULARITY);

  listed = vms_bitmap_list (qmp, "d1", &error);
  vms_assert_ok (listed, error);
  assert_int_equal (listed->len, 1);
  assert_string_equal (((VmsBitmapInfo *)listed->pdata[0])->name, "p1");

  /* Failures other than persistence are not retried, and say where. */
  assert_false (vms_bitmap_add (qmp, "d1", "p1", 0, NULL, &error));
  /* QEMU 7.2 checks persistence before the name, so this is the
   * non-persistent retry's error. */
  assert_true (
      g_str_has_prefix (error->message, "adding bitmap 'p1' on node 'd1'"));
  assert_true (
      g_str_has_suffix (error->message, ": Bitmap already exists: p1"));
  g_clear_error (&error);
  assert_false (vms_bitmap_add (qmp, "d0", "p0", 0, NULL, &error));
  assert_string_equal (error->message, "adding bitmap 'p0' on node 'd0': "
                                       "Bitmap already exists: p0");
  g_clear_error (&error);
  assert_false (vms_bitmap_add (qmp, "nope", "p2", 0, NULL, &error));
  assert_non_null (strstr (error->message, "node 'nope'"));
  assert_non_null (strstr (error->message, "Cannot find device='nope'"));
  g_clear_error (&error);

  remove_bitmap (qmp, "d0", "p0");
  remove_bitmap (qmp, "d1", "p1");
  assert_null (vms_bitmap_query (qmp, "d1", "p1", &error));
  assert_true (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND));
  assert_non_null (strstr (error->message, "'p1'"));
  g_clear_error (&error);
  assert_null (vms_bitmap_query (qmp, "d9", "p1", &error));
  assert_true (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND));
  assert_non_null (strstr (error->message, "'d9'"));
  g_clear_error (&error);
  assert_false (vms_bitmap_remove (qmp, "d1", "p1", &error));
  assert_non_null (strstr (error->message,
                           "removing bitmap 'p1' from node 'd1': "
                           "Dirty bitmap 'p1' not found"));
}

static void
test_bitmap_count_grows_while_guest_writes (void **state)
{
  Fixture *fixture = *state;
  VmsQmp *qmp = fixture->vm->qmp;
  g_autoptr (VmsBitmapInfo) first = NULL;
  guint64 later;

  add_bitmap (qmp, "d0", "g0", TRUE);
  first = query_bitmap (qmp, "d0", "g0");
  later = wait_count_above (qmp, "d0", "g0", first->count);
  assert_true (later <= WRITER_SPAN);
  assert_int_equal (later % VMS_BITMAP_DEFAULT_GRANULARITY, 0);
  remove_bitmap (qmp, "d0", "g0");
}

static void
test_round_switch_freezes_old_and_records_new (void **state)
{
  Fixture *fixture = *state;
  VmsQmp *qmp = fixture->vm->qmp;
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsBitmapInfo) old_frozen = NULL;
  g_autoptr (VmsBitmapInfo) new_first = NULL;
  g_autoptr (VmsBitmapInfo) old_later = NULL;
  g_autoptr (VmsBitmapInfo) new_later = NULL;
  gint64 switched;

  add_bitmap (qmp, "d0", "r0", TRUE);
  wait_count_above (qmp, "d0", "r0", 0);
  vms_assert_ok (vms_bitmap_switch (qmp, "d0", "r0", "r1", TRUE, &error),
                 error);
  switched = g_get_monotonic_time ();
  old_frozen = query_bitmap (qmp, "d0", "r0");
  new_first = query_bitmap (qmp, "d0", "r1");
  assert_false (old_frozen->recording);
  assert_true (new_first->recording);
  assert_true (new_first->persistent);

  wait_count_above (qmp, "d0", "r1", new_first->count);
  while (g_get_monotonic_time () - switched < STABLE_WATCH_MS * 1000)
    g_usleep (POLL_INTERVAL_US);
  old_later = query_bitmap (qmp, "d0", "r0");
  new_later = query_bitmap (qmp, "d0", "r1");
  assert_int_equal (old_later->count, old_frozen->count);
  assert_true (new_later->count > new_first->count);

  /* A resumed job repeats the switch that already went through. */
  vms_assert_ok (vms_bitmap_switch (qmp, "d0", "r0", "r1", TRUE, &error),
                 error);
  /* A missing old bitmap is named. */
  assert_false (vms_bitmap_switch (qmp, "d0", "r9", "r10", TRUE, &error));
  assert_true (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND));
  assert_non_null (strstr (error->message, "from bitmap 'r9' to 'r10'"));
  g_clear_error (&error);

  remove_bitmap (qmp, "d0", "r0");
  remove_bitmap (qmp, "d0", "r1");
}

/* A transaction is all or nothing: a new bitmap that cannot be added
 * leaves the old one recording. */
static void
test_failed_switch_changes_nothing (void **state)
{
  Fixture *fixture = *state;
  VmsQmp *qmp = fixture->vm->qmp;
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsBitmapInfo) old = NULL;

  add_bitmap (qmp, "d1", "f0", FALSE);
  assert_false (vms_bitmap_switch (qmp, "d1", "f0", "f1", TRUE, &error));
  assert_non_null (strstr (error->message,
                           "switching dirty round on node 'd1' from bitmap "
                           "'f0' to 'f1': Can't store persistent bitmaps"));
  g_clear_error (&error);
  old = query_bitmap (qmp, "d1", "f0");
  assert_true (old->recording);
  assert_null (vms_bitmap_query (qmp, "d1", "f1", &error));
  remove_bitmap (qmp, "d1", "f0");
}

/* ---- exports ---------------------------------------------------------- */

static void
test_raw_export_bitmap_matches_block_status (void **state)
{
  Fixture *fixture = *state;
  VmsQmp *qmp = fixture->vm->qmp;
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsBitmapInfo) frozen = NULL;
  g_autoptr (VmsRangeSet) dirty = NULL;
  g_autofree char *io = g_strdup_printf ("write -P 0x22 %d %d",
                                         RAW_WRITE_OFFSET, RAW_WRITE_LENGTH);
  g_autofree char *buffer = g_malloc (RAW_WRITE_LENGTH);
  struct nbd_handle *nbd;

  start_server (fixture);
  add_bitmap (qmp, "d1", "e0", FALSE);
  vms_assert_ok (vms_test_vm_qemu_io (fixture->vm, "vd1", io, &error), error);
  vms_assert_ok (vms_bitmap_switch (qmp, "d1", "e0", "e1", FALSE, &error),
                 error);
  frozen = query_bitmap (qmp, "d1", "e0");
  assert_int_equal (frozen->count, RAW_DIRTY_END - RAW_DIRTY_START);
  vms_assert_ok (vms_export_add (qmp, "d1", "x1", "e0", &error), error);

  dirty = read_dirty_ranges (fixture->socket_path, "x1", "e0");
  assert_int_equal (vms_range_set_total (dirty), frozen->count);
  assert_int_equal (vms_range_set_count (dirty), 1);
  assert_true (covers (dirty, RAW_DIRTY_START, RAW_DIRTY_END));

  /* The export serves the disk's bytes, read-only. */
  nbd = connect_export (fixture->socket_path, "x1", NULL);
  assert_int_equal (nbd_is_read_only (nbd), 1);
  assert_int_equal (
      nbd_pread (nbd, buffer, RAW_WRITE_LENGTH, RAW_WRITE_OFFSET, 0), 0);
  for (gsize i = 0; i < RAW_WRITE_LENGTH; i++)
    assert_int_equal ((guchar)buffer[i], 0x22);
  nbd_shutdown (nbd, 0);
  nbd_close (nbd);

  vms_assert_ok (vms_export_remove (qmp, "x1", &error), error);
  remove_bitmap (qmp, "d1", "e0");
  remove_bitmap (qmp, "d1", "e1");
}

/* The same on the disk the guest is writing: the export shows exactly the
 * frozen bitmap while the next round records. */
static void
test_qcow2_export_bitmap_matches_while_guest_writes (void **state)
{
  Fixture *fixture = *state;
  VmsQmp *qmp = fixture->vm->qmp;
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsBitmapInfo) frozen = NULL;
  g_autoptr (VmsBitmapInfo) after = NULL;
  g_autoptr (VmsRangeSet) dirty = NULL;

  start_server (fixture);
  add_bitmap (qmp, "d0", "q0", TRUE);
  wait_count_above (qmp, "d0", "q0", 0);
  vms_assert_ok (vms_bitmap_switch (qmp, "d0", "q0", "q1", TRUE, &error),
                 error);
  frozen = query_bitmap (qmp, "d0", "q0");
  vms_assert_ok (vms_export_add (qmp, "d0", "x0", "q0", &error), error);

  dirty = read_dirty_ranges (fixture->socket_path, "x0", "q0");
  assert_int_equal (vms_range_set_total (dirty), frozen->count);
  /* Only the writer's span was written. */
  assert_false (
      vms_range_set_overlaps (dirty, WRITER_SPAN, DISK_SIZE - WRITER_SPAN));
  after = query_bitmap (qmp, "d0", "q0");
  assert_int_equal (after->count, frozen->count);
  assert_true (after->busy);

  vms_assert_ok (vms_export_remove (qmp, "x0", &error), error);
  remove_bitmap (qmp, "d0", "q0");
  remove_bitmap (qmp, "d0", "q1");
}

static void
test_export_refuses_recording_bitmap (void **state)
{
  Fixture *fixture = *state;
  VmsQmp *qmp = fixture->vm->qmp;
  g_autoptr (GError) error = NULL;

  start_server (fixture);
  add_bitmap (qmp, "d1", "n0", FALSE);
  assert_false (vms_export_add (qmp, "d1", "x2", "n0", &error));
  assert_true (g_error_matches (error, VMS_QMP_ERROR, VMS_QMP_ERROR_GENERIC));
  assert_non_null (strstr (error->message,
                           "exporting node 'd1' as 'x2' with bitmap 'n0': "
                           "Enabled bitmap 'n0' incompatible with readonly "
                           "export"));
  g_clear_error (&error);
  /* Nothing was left behind: removing the export finds none. */
  vms_assert_ok (vms_export_remove (qmp, "x2", &error), error);
  remove_bitmap (qmp, "d1", "n0");
}

/* QEMU deletes an export only when its last request has finished.  A
 * throttle node under the export makes queued reads keep it for seconds
 * after block-export-del, and its bitmap busy: vms_export_remove must
 * wait that out, and a bitmap removal right after it must succeed. */
static void
test_export_remove_waits_for_requests_in_flight (void **state)
{
  Fixture *fixture = *state;
  VmsQmp *qmp = fixture->vm->qmp;
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsBitmapInfo) exported = NULL;
  g_autoptr (JsonNode) group = NULL;
  g_autoptr (JsonNode) throttle = NULL;
  g_autoptr (JsonNode) throttle_gone = NULL;
  g_autoptr (JsonNode) group_gone = NULL;
  g_autofree char *buffers = g_malloc (THROTTLED_READS * THROTTLED_READ_SIZE);
  g_autofree char *data = g_strdup_printf (
      "write -P 0x44 0 %d", THROTTLED_READS * THROTTLED_READ_SIZE);
  struct nbd_handle *reader;
  gint64 start, waited_ms;

  /* An earlier export of the same id went with the server, and left its
   * deletion event queued: it must not end the wait below early. */
  start_server (fixture);
  vms_assert_ok (vms_export_add (qmp, "d1", "x3", NULL, &error), error);
  vms_assert_ok (vms_export_server_stop (qmp, &error), error);
  start_server (fixture);

  /* Data, so that reads reach the throttle: QEMU answers reads of holes
   * from block status, without reading. */
  vms_assert_ok (vms_test_vm_qemu_io (fixture->vm, "vd1", data, &error), error);
  group = vms_qmp_execute_json (
      qmp, "object-add",
      "{\"qom-type\": \"throttle-group\", "
      "\"id\": \"slow1\", \"limits\": "
      "{\"iops-total\": " G_STRINGIFY (THROTTLED_IOPS) "}}",
      &error);
  vms_assert_ok (group, error);
  throttle = vms_qmp_execute_json (qmp, "blockdev-add",
                                   "{\"driver\": \"throttle\", "
                                   "\"node-name\": \"slow1\", "
                                   "\"throttle-group\": \"slow1\", "
                                   "\"file\": \"d1\"}",
                                   &error);
  vms_assert_ok (throttle, error);
  add_bitmap (qmp, "d1", "w0", FALSE);
  vms_assert_ok (vms_bitmap_switch (qmp, "d1", "w0", "w1", FALSE, &error),
                 error);
  /* The bitmap is found below the throttle filter. */
  vms_assert_ok (vms_export_add (qmp, "slow1", "x3", "w0", &error), error);
  exported = query_bitmap (qmp, "d1", "w0");
  assert_true (exported->busy);

  reader = connect_export (fixture->socket_path, "x3", NULL);
  for (int i = 0; i < THROTTLED_READS; i++)
    if (nbd_aio_pread (reader, buffers + i * THROTTLED_READ_SIZE,
                       THROTTLED_READ_SIZE, (guint64)i * THROTTLED_READ_SIZE,
                       NBD_NULL_COMPLETION, 0)
        == -1)
      fail_msg ("aio_pread: %s", nbd_get_error ());
  /* libnbd sends the requests as they are issued; let QEMU queue them. */
  g_usleep (QUEUE_SETTLE_US);

  start = g_get_monotonic_time ();
  vms_assert_ok (vms_export_remove (qmp, "x3", &error), error);
  waited_ms = (g_get_monotonic_time () - start) / 1000;
  remove_bitmap (qmp, "d1", "w0");
  /* The premise: QEMU really kept the export after block-export-del. */
  assert_true (waited_ms >= THROTTLED_MIN_WAIT_MS);
  /* The deletion event was taken, not left for someone else. */
  assert_false (vms_qmp_wait_event (qmp, "BLOCK_EXPORT_DELETED", 0, NULL, NULL,
                                    NULL, &error));
  assert_true (g_error_matches (error, VMS_QMP_ERROR, VMS_QMP_ERROR_TIMEOUT));
  g_clear_error (&error);
  /* Removing it again is fine. */
  vms_assert_ok (vms_export_remove (qmp, "x3", &error), error);

  nbd_close (reader);
  remove_bitmap (qmp, "d1", "w1");
  throttle_gone = vms_qmp_execute_json (qmp, "blockdev-del",
                                        "{\"node-name\": \"slow1\"}", &error);
  vms_assert_ok (throttle_gone, error);
  group_gone
      = vms_qmp_execute_json (qmp, "object-del", "{\"id\": \"slow1\"}", &error);
  vms_assert_ok (group_gone, error);
}

/* A vmshift that crashed left its export behind; the new one replaces it. */
static void
test_export_add_replaces_existing (void **state)
{
  Fixture *fixture = *state;
  VmsQmp *qmp = fixture->vm->qmp;
  g_autoptr (GError) error = NULL;
  struct nbd_handle *nbd;

  start_server (fixture);
  add_bitmap (qmp, "d1", "o0", FALSE);
  vms_assert_ok (vms_bitmap_switch (qmp, "d1", "o0", "o1", FALSE, &error),
                 error);
  vms_assert_ok (vms_export_add (qmp, "d1", "x4", "o0", &error), error);
  vms_assert_ok (vms_export_add (qmp, "d1", "x4", NULL, &error), error);
  nbd = connect_export (fixture->socket_path, "x4", "qemu:dirty-bitmap:o0");
  /* The new export has no bitmap... */
  assert_int_equal (nbd_can_meta_context (nbd, "qemu:dirty-bitmap:o0"), 0);
  nbd_close (nbd);
  /* ...and the old one let go of it. */
  remove_bitmap (qmp, "d1", "o0");
  remove_bitmap (qmp, "d1", "o1");
  vms_assert_ok (vms_export_remove (qmp, "x4", &error), error);
}

static void
test_server_start_same_socket_ok_elsewhere_error (void **state)
{
  Fixture *fixture = *state;
  VmsQmp *qmp = fixture->vm->qmp;
  g_autoptr (GError) error = NULL;
  g_autofree char *other = g_build_filename (fixture->dir, "other.sock", NULL);

  start_server (fixture);
  /* Twice on our socket: a resumed job. */
  start_server (fixture);

  assert_false (vms_export_server_start (qmp, other, &error));
  assert_true (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_BUSY));
  assert_non_null (strstr (error->message, other));
  assert_non_null (strstr (error->message, "already running, but not on "
                                           "this socket"));
  g_clear_error (&error);

  /* Our socket file gone (a cleaned state directory): not ours any more. */
  assert_int_equal (g_unlink (fixture->socket_path), 0);
  assert_false (vms_export_server_start (qmp, fixture->socket_path, &error));
  assert_true (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_BUSY));
  g_clear_error (&error);

  vms_assert_ok (vms_export_server_stop (qmp, &error), error);
  /* Stopping what is not running is fine. */
  vms_assert_ok (vms_export_server_stop (qmp, &error), error);
  start_server (fixture);
}

/* Another NBD server listens on the socket we ask for, while QEMU's runs
 * elsewhere: the socket answers in NBD, but it is not QEMU's. */
static void
test_server_start_detects_foreign_server (void **state)
{
  Fixture *fixture = *state;
  VmsQmp *qmp = fixture->vm->qmp;
  g_autoptr (GError) error = NULL;
  g_autofree char *foreign
      = g_build_filename (fixture->dir, "nbdkit.sock", NULL);
  const char *argv[]
      = { "nbdkit", "--foreground", "--unix", foreign, "memory", "1M", NULL };
  g_autofree char *pid_text = NULL;
  GPid nbdkit;

  start_server (fixture);
  nbdkit = spawn_daemon (argv, foreign);
  assert_false (vms_export_server_start (qmp, foreign, &error));
  kill_daemon (nbdkit);
  assert_true (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_BUSY));
  pid_text = g_strdup_printf ("process %ld serves it", (long)nbdkit);
  assert_non_null (strstr (error->message, pid_text));
}

/* ---- the live mirror -------------------------------------------------- */

/* An nbdkit memory disk of DISK_SIZE on socket_path for the mirror to
 * write to; extra_args (may be NULL) go before the plugin. */
static void
start_sink (Fixture *fixture, const char *socket_path,
            const char *const *extra_args)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_autofree char *size = g_strdup_printf ("%d", DISK_SIZE);

  g_ptr_array_add (argv, "nbdkit");
  g_ptr_array_add (argv, "--foreground");
  g_ptr_array_add (argv, "--unix");
  g_ptr_array_add (argv, (char *)socket_path);
  for (guint i = 0; extra_args && extra_args[i]; i++)
    g_ptr_array_add (argv, (char *)extra_args[i]);
  g_ptr_array_add (argv, "memory");
  g_ptr_array_add (argv, size);
  g_ptr_array_add (argv, NULL);
  fixture->sink_pid
      = spawn_daemon ((const char *const *)argv->pdata, socket_path);
}

/* QEMU's own word on job_id: its query-block-jobs entry's "ready". */
static gboolean
qemu_says_ready (VmsQmp *qmp, const char *job_id)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) jobs
      = vms_qmp_execute (qmp, "query-block-jobs", NULL, &error);
  JsonArray *array;

  vms_assert_ok (jobs, error);
  array = json_node_get_array (jobs);
  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      JsonObject *job = json_array_get_object_element (array, i);

      if (g_str_equal (json_object_get_string_member (job, "device"), job_id))
        return json_object_get_boolean_member (job, "ready");
    }
  fail_msg ("QEMU has no job %s", job_id);
  return FALSE;
}

static gboolean
job_exists (VmsQmp *qmp, const char *job_id)
{
  g_autoptr (GError) error = NULL;

  return vms_mirror_check (qmp, job_id, &error)
         || !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
}

static gboolean
node_exists (VmsQmp *qmp, const char *node_name)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) nodes
      = vms_qmp_execute (qmp, "query-named-block-nodes", NULL, &error);
  JsonArray *array;

  vms_assert_ok (nodes, error);
  array = json_node_get_array (nodes);
  for (guint i = 0; i < json_array_get_length (array); i++)
    if (g_str_equal (json_object_get_string_member (
                         json_array_get_object_element (array, i), "node-name"),
                     node_name))
      return TRUE;
  return FALSE;
}

/* Read length bytes at offset of the sink and check they are all byte. */
static void
assert_sink_holds (const char *socket_path, guint64 offset, gsize length,
                   guint8 byte)
{
  struct nbd_handle *nbd = connect_export (socket_path, "", NULL);
  g_autofree guint8 *buffer = g_malloc (length);

  if (nbd_pread (nbd, buffer, length, offset, 0) == -1)
    fail_msg ("reading the sink: %s", nbd_get_error ());
  for (gsize i = 0; i < length; i++)
    if (buffer[i] != byte)
      fail_msg ("sink byte %" G_GUINT64_FORMAT " is 0x%02x, not 0x%02x",
                offset + i, buffer[i], byte);
  nbd_shutdown (nbd, 0);
  nbd_close (nbd);
}

/* vms_mirror_start returns when QEMU says the job is ready, and from then
 * on a guest write reaches the sink before the guest sees it done. */
static void
test_mirror_ready_writes_reach_sink_then_stop (void **state)
{
  Fixture *fixture = *state;
  VmsQmp *qmp = fixture->vm->qmp;
  g_autoptr (GError) error = NULL;
  g_autofree char *sink = g_build_filename (fixture->dir, "sink.sock", NULL);
  VmsMirrorTarget target = { .socket_path = sink, .export_name = "" };

  start_sink (fixture, sink, NULL);
  vms_assert_ok (vms_mirror_start (qmp, "d1", &target, "live2", "sink2", 10,
                                   MIRROR_READY_TIMEOUT_MS, &error),
                 error);
  assert_true (qemu_says_ready (qmp, "live2"));
  vms_assert_ok (vms_mirror_check (qmp, "live2", &error), error);

  vms_assert_ok (
      vms_test_vm_qemu_io (fixture->vm, "vd1", "write -P 0x5a 4M 64k", &error),
      error);
  assert_sink_holds (sink, 4 * MIB, 64 * 1024, 0x5a);

  vms_assert_ok (vms_mirror_stop (qmp, "live2", "sink2", &error), error);
  assert_false (job_exists (qmp, "live2"));
  assert_false (node_exists (qmp, "sink2"));
  /* Nothing left to stop is fine. */
  vms_assert_ok (vms_mirror_stop (qmp, "live2", "sink2", &error), error);
}

/* The mirror over TLS-PSK to a sink that requires it, with credentials
 * added twice as a retried attempt does. */
static void
test_mirror_over_tls (void **state)
{
  Fixture *fixture = *state;
  VmsQmp *qmp = fixture->vm->qmp;
  g_autoptr (GError) error = NULL;
  g_autofree char *sink = g_build_filename (fixture->dir, "tls.sock", NULL);
  g_autofree char *keys = g_build_filename (fixture->dir, "keys.psk", NULL);
  g_autofree char *psk_arg = g_strdup_printf ("--tls-psk=%s", keys);
  const char *const tls_args[] = { "--tls=require", psk_arg, NULL };
  VmsTlsCreds creds = { VMS_TLS_PSK, fixture->dir, PSK_USERNAME };
  VmsMirrorTarget target
      = { .socket_path = sink, .export_name = "", .tls_creds = "tls2" };

  vms_assert_ok (g_file_set_contents (keys, PSK_LINE, -1, &error), error);
  start_sink (fixture, sink, tls_args);
  vms_assert_ok (vms_tls_add (qmp, "tls2", &creds, &error), error);
  vms_assert_ok (vms_tls_add (qmp, "tls2", &creds, &error), error);
  vms_assert_ok (vms_mirror_start (qmp, "d1", &target, "live2", "sink2", 10,
                                   MIRROR_READY_TIMEOUT_MS, &error),
                 error);
  assert_true (qemu_says_ready (qmp, "live2"));
  /* In use by the NBD node, and still the same: a retry goes on. */
  vms_assert_ok (vms_tls_add (qmp, "tls2", &creds, &error), error);

  vms_assert_ok (vms_mirror_stop (qmp, "live2", "sink2", &error), error);
  vms_assert_ok (vms_tls_remove (qmp, "tls2", &error), error);
}

static int
undo_live_mirror (void **state)
{
  Fixture *fixture = *state;
  VmsQmp *qmp = fixture->vm->qmp;

  vms_mirror_stop (qmp, "live2", "sink2", NULL);
  vms_tls_remove (qmp, "tls2", NULL);
  if (fixture->sink_pid > 0)
    kill_daemon (fixture->sink_pid);
  fixture->sink_pid = 0;
  return 0;
}

/* ---- persistence, -drive disks, no disks: their own QEMUs ------------- */

typedef struct
{
  char *dir;     /* private directory for images and sockets */
  GPid pid;      /* a QEMU started by the test itself, or 0 */
  VmsTestVm *vm; /* a QEMU started through the harness, or NULL */
} Scratch;

static int
make_scratch (void **state)
{
  Scratch *scratch = g_new0 (Scratch, 1);

  scratch->dir = vms_test_make_tmpdir ("vms-qf-own");
  *state = scratch;
  return 0;
}

/* Also after a failed test, which skips its own cleanup. */
static int
drop_scratch (void **state)
{
  Scratch *scratch = *state;

  if (scratch->pid > 0)
    kill_daemon (scratch->pid);
  vms_test_vm_free (scratch->vm);
  vms_test_rmtree (scratch->dir);
  g_free (scratch->dir);
  g_free (scratch);
  return 0;
}

static void
test_persistent_bitmap_survives_quit (void **state)
{
  Scratch *scratch = *state;
  g_autofree char *image = g_build_filename (scratch->dir, "keep.qcow2", NULL);
  VmsTestVmOptions options
      = { .no_guest = TRUE, .disks = { { "qcow2", 0, image } } };
  g_autoptr (GError) error = NULL;
  VmsTestVm *first, *second;
  g_autoptr (VmsBitmapInfo) before = NULL;
  g_autoptr (VmsBitmapInfo) reloaded = NULL;
  g_autoptr (JsonNode) quit = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autofree char *info = NULL;
  const char *argv[] = { "qemu-img", "info", "--output=json", image, NULL };
  JsonObject *image_data;
  JsonArray *bitmaps;

  create_image ("qcow2", image, DISK_SIZE);
  first = scratch->vm = vms_test_vm_start (&options, &error);
  vms_assert_ok (first, error);
  add_bitmap (first->qmp, "d0", "k0", TRUE);
  vms_assert_ok (
      vms_test_vm_qemu_io (first, "vd0", "write -P 0x33 1M 128k", &error),
      error);
  before = query_bitmap (first->qmp, "d0", "k0");
  assert_int_equal (before->count, 128 * 1024);
  quit = vms_qmp_execute (first->qmp, "quit", NULL, &error);
  vms_assert_ok (quit, error);
  assert_true (vms_test_vm_wait_exit (first, 30000));

  vms_assert_ok (vms_test_run (argv, &info, &error), error);
  vms_assert_ok (json_parser_load_from_data (parser, info, -1, &error), error);
  image_data = json_object_get_object_member (
      json_object_get_object_member (
          json_node_get_object (json_parser_get_root (parser)),
          "format-specific"),
      "data");
  /* qemu-img leaves "bitmaps" out of an image without any. */
  if (!json_object_has_member (image_data, "bitmaps"))
    fail_msg ("no bitmap stored in %s: %s", image, info);
  bitmaps = json_object_get_array_member (image_data, "bitmaps");
  assert_int_equal (json_array_get_length (bitmaps), 1);
  assert_string_equal (json_object_get_string_member (
                           json_array_get_object_element (bitmaps, 0), "name"),
                       "k0");

  /* A new QEMU on the image finds the bitmap with its bits. */
  g_clear_pointer (&scratch->vm, vms_test_vm_free);
  second = scratch->vm = vms_test_vm_start (&options, &error);
  vms_assert_ok (second, error);
  reloaded = query_bitmap (second->qmp, "d0", "k0");
  assert_true (reloaded->persistent);
  assert_true (reloaded->recording);
  assert_false (reloaded->inconsistent);
  assert_int_equal (reloaded->count, before->count);
}

static VmsDisk *
disk_named (GPtrArray *disks, const char *name)
{
  for (guint i = 0; i < disks->len; i++)
    if (g_str_equal (((VmsDisk *)disks->pdata[i])->name, name))
      return disks->pdata[i];
  fail_msg ("no disk %s", name);
  return NULL;
}

/* Disks from -drive, which the harness does not make: an anonymous device
 * (named by its backend), a named one, CD-ROMs with and without a medium,
 * and a backend no device uses. */
static void
test_discover_drive_disks (void **state)
{
  Scratch *scratch = *state;
  const char *dir = scratch->dir;
  g_autofree char *qmp_path = g_build_filename (dir, "qmp.sock", NULL);
  g_autofree char *anon = g_build_filename (dir, "anon.qcow2", NULL);
  g_autofree char *named = g_build_filename (dir, "named.raw", NULL);
  g_autofree char *iso = g_build_filename (dir, "cd.raw", NULL);
  g_autofree char *spare = g_build_filename (dir, "spare.raw", NULL);
  g_autofree char *qmp_arg
      = g_strdup_printf ("unix:%s,server=on,wait=off", qmp_path);
  g_autofree char *anon_arg
      = g_strdup_printf ("file=%s,format=qcow2,if=none,id=drvanon", anon);
  g_autofree char *named_arg = g_strdup_printf (
      "file=%s,format=raw,if=none,id=drvnamed,readonly=on", named);
  g_autofree char *iso_arg = g_strdup_printf (
      "file=%s,format=raw,if=none,id=cdfull,media=cdrom", iso);
  g_autofree char *spare_arg
      = g_strdup_printf ("file=%s,format=raw,if=none,id=spare", spare);
  const char *argv[] = { "qemu-system-x86_64",
                         "-accel",
                         "tcg",
                         "-machine",
                         "q35",
                         "-m",
                         "64",
                         "-nodefaults",
                         "-no-user-config",
                         "-display",
                         "none",
                         "-qmp",
                         qmp_arg,
                         "-drive",
                         anon_arg,
                         "-device",
                         "virtio-blk-pci,drive=drvanon",
                         "-drive",
                         named_arg,
                         "-device",
                         "virtio-blk-pci,drive=drvnamed,id=vdn",
                         "-drive",
                         "if=none,id=cdempty",
                         "-device",
                         "ide-cd,drive=cdempty,id=cd0,bus=ide.0",
                         "-drive",
                         iso_arg,
                         "-device",
                         "ide-cd,drive=cdfull,id=cd1,bus=ide.1",
                         "-drive",
                         spare_arg,
                         NULL };
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsQmp) qmp = NULL;
  g_autoptr (GPtrArray) disks = NULL;
  VmsDisk *disk;

  create_image ("qcow2", anon, DISK_SIZE);
  create_image ("raw", named, DISK_SIZE);
  create_image ("raw", iso, DISK_SIZE);
  create_image ("raw", spare, DISK_SIZE);
  scratch->pid = spawn_daemon (argv, qmp_path);
  qmp = vms_qmp_connect (qmp_path, 10000, &error);
  vms_assert_ok (qmp, error);

  disks = vms_disk_discover (qmp, &error);
  vms_assert_ok (disks, error);
  /* The empty CD-ROM is not a disk. */
  assert_int_equal (disks->len, 4);
  disk = disk_named (disks, "drvanon");
  assert_true (g_str_has_prefix (disk->node_name, "#block"));
  assert_string_equal (disk->format, "qcow2");
  assert_string_equal (disk->filename, anon);
  assert_int_equal (disk->size, DISK_SIZE);
  assert_false (disk->read_only);
  /* Automatic node names work in commands and in vms_disk_find. */
  add_bitmap (qmp, disk->node_name, "a0", TRUE);
  assert_ptr_equal (vms_disk_find (disks, disk->node_name, &error), disk);
  disk = disk_named (disks, "vdn");
  assert_string_equal (disk->format, "raw");
  assert_string_equal (disk->filename, named);
  assert_true (disk->read_only);
  disk = disk_named (disks, "cd1");
  assert_true (disk->read_only);
  disk = disk_named (disks, "spare");
  assert_string_equal (disk->filename, spare);
}

static void
test_discover_without_disks_fails (void **state)
{
  Scratch *scratch = *state;
  VmsTestVmOptions options = { .no_guest = TRUE };
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) disks = NULL;

  scratch->vm = vms_test_vm_start (&options, &error);
  vms_assert_ok (scratch->vm, error);
  disks = vms_disk_discover (scratch->vm->qmp, &error);
  assert_null (disks);
  assert_true (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND));
  assert_non_null (strstr (error->message, "no block device with a medium"));
}

/* ---- the VM: TLS objects, identity, run state, quit -------------------- */

/* A QEMU without a guest, for what needs only its monitor. */
static VmsQmp *
start_bare_vm (Scratch *scratch, const VmsTestVmOptions *options)
{
  g_autoptr (GError) error = NULL;

  scratch->vm = vms_test_vm_start (options, &error);
  vms_assert_ok (scratch->vm, error);
  return scratch->vm->qmp;
}

static char *
tls_dir_with_keys (Scratch *scratch, const char *name)
{
  g_autoptr (GError) error = NULL;
  char *dir = g_build_filename (scratch->dir, name, NULL);
  g_autofree char *keys = g_build_filename (dir, "keys.psk", NULL);

  assert_int_equal (g_mkdir (dir, 0700), 0);
  vms_assert_ok (g_file_set_contents (keys, PSK_LINE, -1, &error), error);
  return dir;
}

static char *
object_dir (VmsQmp *qmp, const char *id)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *arguments = g_strdup_printf (
      "{\"path\": \"/objects/%s\", \"property\": \"dir\"}", id);
  g_autoptr (JsonNode) dir
      = vms_qmp_execute_json (qmp, "qom-get", arguments, &error);

  vms_assert_ok (dir, error);
  return json_node_dup_string (dir);
}

/* A retried attempt adds its credentials again; a wrong dir fails with
 * QEMU's own words; removing what is not there is fine. */
static void
test_tls_creds_add_twice_bad_dir_remove_absent (void **state)
{
  Scratch *scratch = *state;
  VmsTestVmOptions options = { .no_guest = TRUE };
  VmsQmp *qmp = start_bare_vm (scratch, &options);
  g_autoptr (GError) error = NULL;
  g_autofree char *first = tls_dir_with_keys (scratch, "psk1");
  g_autofree char *second = tls_dir_with_keys (scratch, "psk2");
  g_autofree char *dir = NULL;
  VmsTlsCreds creds = { VMS_TLS_PSK, first, PSK_USERNAME };
  VmsTlsCreds missing = { VMS_TLS_X509, "/nonexistent/vmshift-tls", NULL };
  g_autoptr (JsonNode) secret = NULL;

  vms_assert_ok (vms_tls_add (qmp, "tls0", &creds, &error), error);
  vms_assert_ok (vms_tls_add (qmp, "tls0", &creds, &error), error);
  /* An earlier attempt's object with other settings is replaced. */
  creds.dir = second;
  vms_assert_ok (vms_tls_add (qmp, "tls0", &creds, &error), error);
  dir = object_dir (qmp, "tls0");
  assert_string_equal (dir, second);

  assert_false (vms_tls_add (qmp, "tls1", &missing, &error));
  assert_true (g_error_matches (error, VMS_QMP_ERROR, VMS_QMP_ERROR_GENERIC));
  assert_non_null (strstr (error->message, "adding TLS credentials tls1"));
  assert_non_null (strstr (error->message,
                           "Unable to access credentials "
                           "/nonexistent/vmshift-tls/ca-cert.pem"));
  g_clear_error (&error);

  /* An id that is not TLS credentials is left alone. */
  secret = vms_qmp_execute_json (
      qmp, "object-add",
      "{\"qom-type\": \"secret\", \"id\": \"sec0\", \"data\": \"x\"}", &error);
  vms_assert_ok (secret, error);
  assert_false (vms_tls_add (qmp, "sec0", &creds, &error));
  assert_true (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_EXISTS));
  assert_non_null (strstr (error->message, "type secret"));
  g_clear_error (&error);

  vms_assert_ok (vms_tls_remove (qmp, "tls0", &error), error);
  vms_assert_ok (vms_tls_remove (qmp, "tls0", &error), error);
  vms_assert_ok (vms_tls_remove (qmp, "tls1", &error), error);
}

static void
assert_run_state (VmsQmp *qmp, const char *expected)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *state = vms_qemu_migration_run_state (qmp, &error);

  vms_assert_ok (state, error);
  assert_string_equal (state, expected);
}

/* A VM started with -S, and one stopped later, both resume. */
static void
test_resume_paused_vm (void **state)
{
  Scratch *scratch = *state;
  VmsTestVmOptions options = { .no_guest = TRUE, .start_paused = TRUE };
  VmsQmp *qmp = start_bare_vm (scratch, &options);
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) stopped = NULL;

  assert_run_state (qmp, "prelaunch");
  vms_assert_ok (vms_vm_resume (qmp, 10000, &error), error);
  assert_run_state (qmp, "running");
  /* QEMU announced it, and the event is still there for others. */
  vms_assert_ok (
      vms_qmp_wait_event (qmp, "RESUME", 0, NULL, NULL, NULL, &error), error);

  stopped = vms_qmp_execute (qmp, "stop", NULL, &error);
  vms_assert_ok (stopped, error);
  assert_run_state (qmp, "paused");
  vms_assert_ok (vms_vm_resume (qmp, 10000, &error), error);
  assert_run_state (qmp, "running");
  /* Resuming a running VM changes nothing. */
  vms_assert_ok (vms_vm_resume (qmp, 10000, &error), error);
}

/* vms_vm_quit returns once QEMU is gone. */
static void
test_quit_ends_qemu (void **state)
{
  Scratch *scratch = *state;
  VmsTestVmOptions options = { .no_guest = TRUE };
  VmsQmp *qmp = start_bare_vm (scratch, &options);
  g_autoptr (GError) error = NULL;

  vms_assert_ok (vms_vm_quit (qmp, 30000, &error), error);
  assert_false (vms_qmp_is_connected (qmp));
  assert_true (vms_test_vm_wait_exit (scratch->vm, 10000));
}

static void
test_identity_named_and_unnamed (void **state)
{
  Scratch *scratch = *state;
  VmsTestVmOptions named_options
      = { .no_guest = TRUE,
          .name = "web1",
          .uuid = "11111111-2222-3333-4444-555555555555" };
  VmsTestVmOptions unnamed_options = { .no_guest = TRUE };
  VmsQmp *named = start_bare_vm (scratch, &named_options);
  g_autoptr (VmsTestVm) unnamed_vm = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *name = NULL, *uuid = NULL;
  g_autofree char *no_name = NULL, *no_uuid = NULL;

  name = vms_vm_query_name (named, &error);
  vms_assert_ok (name, error);
  assert_string_equal (name, "web1");
  uuid = vms_vm_query_uuid (named, &error);
  vms_assert_ok (uuid, error);
  assert_string_equal (uuid, "11111111-2222-3333-4444-555555555555");

  unnamed_vm = vms_test_vm_start (&unnamed_options, &error);
  vms_assert_ok (unnamed_vm, error);
  no_name = vms_vm_query_name (unnamed_vm->qmp, &error);
  vms_assert_ok (no_name, error);
  assert_string_equal (no_name, "");
  no_uuid = vms_vm_query_uuid (unnamed_vm->qmp, &error);
  vms_assert_ok (no_uuid, error);
  assert_string_equal (no_uuid, VMS_VM_NO_UUID);
}

/* ---- the guest ------------------------------------------------------ */

/* The harness starts QEMU with 256 MiB. */
static void
test_guest_memory (void **state)
{
  Fixture *fixture = *state;
  VmsQmp *qmp = fixture->vm->qmp;
  g_autoptr (GError) error = NULL;
  g_autofree char *path = g_build_filename (fixture->dir, "ram.bin", NULL);
  g_autoptr (GBytes) bytes = NULL;
  VmsGuestMemorySize memory;

  vms_assert_ok (vms_guest_query_memory_size (qmp, &memory, &error), error);
  assert_int_equal (memory.base_memory, 256 * MIB + VMS_TEST_VM_RAM_EXTRA);
  bytes = vms_guest_read_memory (qmp, MIB, 64 * 1024, path, &error);
  vms_assert_ok (bytes, error);
  assert_int_equal (g_bytes_get_size (bytes), 64 * 1024);
  /* The scratch file does not stay behind. */
  assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
}

/* calc-dirty-rate (page sampling: this is TCG) ends in a measurement. */
static void
test_guest_dirty_rate_measured (void **state)
{
  Fixture *fixture = *state;
  VmsQmp *qmp = fixture->vm->qmp;
  g_autoptr (GError) error = NULL;
  gint64 deadline
      = g_get_monotonic_time () + DIRTY_RATE_TIMEOUT_MS * (gint64)1000;
  VmsGuestDirtyRate rate = { 0 };

  vms_assert_ok (vms_guest_calc_dirty_rate (qmp, 1, 0, &error), error);
  while (rate.status != VMS_GUEST_DIRTY_RATE_MEASURED)
    {
      if (g_get_monotonic_time () > deadline)
        fail_msg ("no dirty rate after %d ms", DIRTY_RATE_TIMEOUT_MS);
      g_usleep (POLL_INTERVAL_US);
      vms_assert_ok (vms_guest_query_dirty_rate (qmp, &rate, &error), error);
      assert_int_not_equal (rate.status, VMS_GUEST_DIRTY_RATE_UNSTARTED);
    }
  assert_true (rate.bytes_per_second >= 0);
}

/* Each disk is found in query-blockstats by its node or its device, and
 * the writer's count grows. */
static void
test_guest_blockstats_count_writes (void **state)
{
  Fixture *fixture = *state;
  VmsQmp *qmp = fixture->vm->qmp;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) before = vms_guest_query_blockstats (qmp, &error);
  gint64 deadline = g_get_monotonic_time () + GROW_TIMEOUT_MS * (gint64)1000;
  guint64 written;

  vms_assert_ok (before, error);
  assert_non_null (vms_guest_block_stats_find (before, "d1", "vd1"));
  assert_non_null (vms_guest_block_stats_find (before, "no-node", "vd1"));
  assert_null (vms_guest_block_stats_find (before, "no-node", "vd9"));
  written = vms_guest_block_stats_find (before, "d0", "vd0")->wr_bytes;
  for (;;)
    {
      g_autoptr (GPtrArray) now = vms_guest_query_blockstats (qmp, &error);

      vms_assert_ok (now, error);
      if (vms_guest_block_stats_find (now, "d0", "vd0")->wr_bytes > written)
        break;
      if (g_get_monotonic_time () > deadline)
        fail_msg ("vd0's wr_bytes stayed at %" G_GUINT64_FORMAT, written);
      g_usleep (POLL_INTERVAL_US);
    }
}

int
main (void)
{
  const struct CMUnitTest guest_tests[] = {
    cmocka_unit_test (test_discover_finds_blockdev_disks),
    cmocka_unit_test (test_find_by_name_or_node_and_list_on_error),
    cmocka_unit_test_teardown (test_discover_looks_through_named_filter,
                               undo_mirror),
    cmocka_unit_test (test_bitmap_persistent_on_qcow2_fallback_on_raw),
    cmocka_unit_test (test_bitmap_count_grows_while_guest_writes),
    cmocka_unit_test (test_round_switch_freezes_old_and_records_new),
    cmocka_unit_test (test_failed_switch_changes_nothing),
    cmocka_unit_test (test_raw_export_bitmap_matches_block_status),
    cmocka_unit_test (test_qcow2_export_bitmap_matches_while_guest_writes),
    cmocka_unit_test (test_export_refuses_recording_bitmap),
    cmocka_unit_test_teardown (test_export_remove_waits_for_requests_in_flight,
                               undo_throttle),
    cmocka_unit_test (test_export_add_replaces_existing),
    cmocka_unit_test (test_server_start_same_socket_ok_elsewhere_error),
    cmocka_unit_test (test_server_start_detects_foreign_server),
    cmocka_unit_test_teardown (test_mirror_ready_writes_reach_sink_then_stop,
                               undo_live_mirror),
    cmocka_unit_test_teardown (test_mirror_over_tls, undo_live_mirror),
    cmocka_unit_test (test_guest_memory),
    cmocka_unit_test (test_guest_dirty_rate_measured),
    cmocka_unit_test (test_guest_blockstats_count_writes),
  };
  const struct CMUnitTest own_qemu_tests[] = {
    cmocka_unit_test_setup_teardown (test_persistent_bitmap_survives_quit,
                                     make_scratch, drop_scratch),
    cmocka_unit_test_setup_teardown (test_discover_drive_disks, make_scratch,
                                     drop_scratch),
    cmocka_unit_test_setup_teardown (test_discover_without_disks_fails,
                                     make_scratch, drop_scratch),
    cmocka_unit_test_setup_teardown (
        test_tls_creds_add_twice_bad_dir_remove_absent, make_scratch,
        drop_scratch),
    cmocka_unit_test_setup_teardown (test_resume_paused_vm, make_scratch,
                                     drop_scratch),
    cmocka_unit_test_setup_teardown (test_quit_ends_qemu, make_scratch,
                                     drop_scratch),
    cmocka_unit_test_setup_teardown (test_identity_named_and_unnamed,
                                     make_scratch, drop_scratch),
  };
  int failures = 0;

  vms_test_require_program ("qemu-img", "qemu-utils");
  vms_test_require_program ("nbdkit", "nbdkit");
  vms_test_guest_prepare ();
  failures += cmocka_run_group_tests_name (
      "qemu-filter", guest_tests, start_writing_guest, stop_writing_guest);
  failures += cmocka_run_group_tests_name ("qemu-filter-own-qemu",
                                           own_qemu_tests, NULL, NULL);
  return failures ? 1 : 0;
}
