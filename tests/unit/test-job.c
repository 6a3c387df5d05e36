/* Unit tests: job state files, and the zero test of the copy engine.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <glib/gstdio.h>
#include <string.h>

#include "vms-copy.h"
#include "vms-job.h"
#include "vms-job-lock.h"

#include <unistd.h>

static int
make_dir (void **state)
{
  *state = g_dir_make_tmp ("vms-job-XXXXXX", NULL);
  return *state ? 0 : -1;
}

static int
remove_dir (void **state)
{
  g_autoptr (GDir) dir = g_dir_open (*state, 0, NULL);
  const char *name;

  while (dir && (name = g_dir_read_name (dir)))
    {
      g_autofree char *path = g_build_filename (*state, name, NULL);

      g_unlink (path);
    }
  g_rmdir (*state);
  g_free (*state);
  return 0;
}

static void
test_round_trip (void **state)
{
  const char *dir = *state;
  g_autoptr (VmsJob) job = vms_job_new (dir, "job-1");
  g_autoptr (VmsJob) loaded = NULL;
  g_autoptr (GError) error = NULL;
  VmsJobDisk *disk;

  job->source = g_strdup ("qmp:/run/vm.qmp");
  job->sink = g_strdup ("nbd+unix:///?socket=/run/sink.sock");
  g_free (job->vm_name);
  job->vm_name = g_strdup ("web1");
  job->runs = 3;
  disk = vms_job_add_disk (job, "vd0");
  disk->node = g_strdup ("#block155");
  disk->format = g_strdup ("qcow2");
  disk->size = G_GUINT64_CONSTANT (1) << 40;
  disk->replica = g_strdup ("web1-vd0");
  disk->persistent = TRUE;
  disk->round = 4;
  disk->recording_bitmap = g_strdup ("vmshift-job-1-5");
  disk->copying_bitmap = g_strdup ("vmshift-job-1-4");
  disk->watermark = 123456789;
  disk->bytes_written = 42;
  disk->bytes_final = 7;
  disk->granularity = 4096;
  disk->granularity_reason = g_strdup ("the 4 KiB floor");
  assert_null (job->migration);
  job->phase = VMS_JOB_PHASE_ROLLED_BACK;
  vms_job_get_migration (job)->dest_qmp = g_strdup ("qmp:/run/dest.qmp");
  job->migration->final_sync = g_strdup ("mirror");
  job->migration->state = g_strdup ("memory");
  job->migration->pid = 4242;
  job->migration->attempts = 2;
  job->migration->estimate = g_strdup ("est-1");
  job->migration->tls = TRUE;
  job->migration->libvirt = json_object_new ();
  json_object_set_string_member (job->migration->libvirt, "domain", "web1");
  assert_true (vms_job_save (job, &error));

  loaded = vms_job_load (dir, "job-1", &error);
  assert_non_null (loaded);
  assert_string_equal (loaded->source, job->source);
  assert_string_equal (loaded->sink, job->sink);
  assert_string_equal (loaded->vm_name, "web1");
  assert_int_equal (loaded->runs, 3);
  disk = vms_job_find_disk (loaded, "vd0");
  assert_non_null (disk);
  assert_string_equal (disk->node, "#block155");
  assert_int_equal (disk->size, G_GUINT64_CONSTANT (1) << 40);
  assert_true (disk->persistent);
  assert_int_equal (disk->round, 4);
  assert_string_equal (disk->recording_bitmap, "vmshift-job-1-5");
  assert_string_equal (disk->copying_bitmap, "vmshift-job-1-4");
  assert_int_equal (disk->watermark, 123456789);
  assert_int_equal (disk->bytes_written, 42);
  assert_int_equal (disk->bytes_final, 7);
  assert_int_equal (disk->granularity, 4096);
  assert_string_equal (disk->granularity_reason, "the 4 KiB floor");
  assert_null (vms_job_find_disk (loaded, "vd1"));
  assert_int_equal (loaded->phase, VMS_JOB_PHASE_ROLLED_BACK);
  assert_non_null (loaded->migration);
  assert_string_equal (loaded->migration->dest_qmp, "qmp:/run/dest.qmp");
  assert_null (loaded->migration->dest_uri);
  assert_string_equal (loaded->migration->final_sync, "mirror");
  assert_string_equal (loaded->migration->state, "memory");
  assert_null (loaded->migration->last_error);
  assert_int_equal (loaded->migration->pid, 4242);
  assert_int_equal (loaded->migration->attempts, 2);
  assert_string_equal (loaded->migration->estimate, "est-1");
  assert_true (loaded->migration->tls);
  assert_non_null (loaded->migration->libvirt);
  assert_string_equal (
      json_object_get_string_member (loaded->migration->libvirt, "domain"),
      "web1");
}

/* A job with one disk vd0 as version 1 first wrote it, with more
 * members in the disk appended. */
#define OLD_DISK_JOB(id, more)                                                 \
  "{\"version\":1,\"id\":\"" id "\",\"source\":\"s\",\"sink\":\"k\","          \
  "\"vm-name\":\"\",\"vm-uuid\":\"\",\"phase\":\"copying\",\"runs\":1,"        \
  "\"created\":1,\"updated\":1,\"disks\":[{\"name\":\"vd0\",\"node\":"         \
  "\"d0\",\"format\":\"raw\",\"size\":10,\"replica\":\"r\","                   \
  "\"persistent\":false,\"round\":1,\"recording-bitmap\":\"b\","               \
  "\"copying-bitmap\":null,\"round-dirty\":0,\"watermark\":0,"                 \
  "\"last-round-dirty\":0,\"bytes-read\":0,\"bytes-written\":0,"               \
  "\"bytes-zeroed\":0,\"resumed-from\":0" more "}]}"

static void
assert_load_fails (const char *dir, const char *id, const char *contents,
                   VmsJobError code)
{
  g_autofree char *file = g_strconcat (id, ".json", NULL);
  g_autofree char *path = g_build_filename (dir, file, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsJob) job = NULL;

  if (contents)
    assert_true (g_file_set_contents (path, contents, -1, NULL));
  job = vms_job_load (dir, id, &error);
  assert_null (job);
  if (!g_error_matches (error, VMS_JOB_ERROR, code))
    fail_msg ("'%s': unexpected error %s", contents ? contents : "(none)",
              error ? error->message : "(none)");
}

static void
test_bad_files_refused (void **state)
{
  const char *dir = *state;

  assert_load_fails (dir, "absent", NULL, VMS_JOB_ERROR_NOT_FOUND);
  assert_load_fails (dir, "garbage", "{not json", VMS_JOB_ERROR_CORRUPT);
  assert_load_fails (dir, "array", "[]", VMS_JOB_ERROR_CORRUPT);
  assert_load_fails (dir, "wrongid",
                     "{\"version\":1,\"id\":\"other\",\"disks\":[]}",
                     VMS_JOB_ERROR_CORRUPT);
  assert_load_fails (dir, "future",
                     "{\"version\":2,\"id\":\"future\",\"disks\":[]}",
                     VMS_JOB_ERROR_CORRUPT);
  /* A watermark past the end of the disk would skip data. */
  assert_load_fails (
      dir, "beyond",
      "{\"version\":1,\"id\":\"beyond\",\"source\":\"s\",\"sink\":\"k\","
      "\"vm-name\":\"\",\"vm-uuid\":\"\",\"phase\":\"copying\",\"runs\":1,"
      "\"created\":1,\"updated\":1,\"disks\":[{\"name\":\"vd0\",\"node\":"
      "\"d0\",\"format\":\"raw\",\"size\":10,\"replica\":\"r\","
      "\"persistent\":false,\"round\":0,\"recording-bitmap\":null,"
      "\"copying-bitmap\":null,\"round-dirty\":0,\"watermark\":11,"
      "\"last-round-dirty\":0,\"bytes-read\":0,\"bytes-written\":0,"
      "\"bytes-zeroed\":0,\"resumed-from\":0}]}",
      VMS_JOB_ERROR_CORRUPT);
  assert_load_fails (dir, "../etc/passwd", NULL, VMS_JOB_ERROR_INVALID);
  /* QEMU would refuse such a granularity for the next round. */
  assert_load_fails (dir, "oddgran",
                     OLD_DISK_JOB ("oddgran", ",\"granularity\":3"),
                     VMS_JOB_ERROR_CORRUPT);
}

/* A job written before granularity was recorded: 0, and its bitmaps
 * tell what they have (vms-replicate asks QEMU on resume). */
static void
test_old_job_without_granularity (void **state)
{
  const char *dir = *state;
  g_autofree char *path = g_build_filename (dir, "nogran.json", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsJob) job = NULL;
  VmsJobDisk *disk;

  assert_true (
      g_file_set_contents (path, OLD_DISK_JOB ("nogran", ""), -1, NULL));
  job = vms_job_load (dir, "nogran", &error);
  if (!job)
    fail_msg ("load: %s", error->message);
  disk = vms_job_find_disk (job, "vd0");
  assert_int_equal (disk->granularity, 0);
  assert_null (disk->granularity_reason);
}

/* The backpressure applied and the device's own limits before it survive
 * a save: 'vmshift abort' of a killed run restores them from the file. */
static void
test_throttle_round_trip (void **state)
{
  const char *dir = *state;
  g_autoptr (VmsJob) job = vms_job_new (dir, "throttled");
  g_autoptr (VmsJob) loaded = NULL;
  g_autoptr (GError) error = NULL;
  VmsJobDisk *disk = vms_job_add_disk (job, "vd0");
  VmsJobDisk *plain = vms_job_add_disk (job, "vd1");
  JsonObject *original;

  job->source = g_strdup ("qmp:/run/vm.qmp");
  job->sink = g_strdup ("nbd+unix:///?socket=/run/sink.sock");
  disk->throttle_bps_wr = 3 * 1024 * 1024;
  disk->throttle_original = json_object_new ();
  json_object_set_int_member (disk->throttle_original, "bps_rd", 1000000);
  json_object_set_int_member (disk->throttle_original, "iops_wr", 300);
  json_object_set_string_member (disk->throttle_original, "group", "g1");
  for (guint i = 0; i < job->disks->len; i++)
    {
      VmsJobDisk *each = job->disks->pdata[i];

      each->node = g_strdup ("d0");
      each->format = g_strdup ("qcow2");
      each->replica = g_strdup ("r");
    }
  assert_true (vms_job_save (job, &error));

  loaded = vms_job_load (dir, "throttled", &error);
  if (!loaded)
    fail_msg ("load: %s", error->message);
  disk = vms_job_find_disk (loaded, "vd0");
  assert_int_equal (disk->throttle_bps_wr, 3 * 1024 * 1024);
  original = disk->throttle_original;
  assert_non_null (original);
  assert_int_equal (json_object_get_size (original), 3);
  assert_int_equal (json_object_get_int_member (original, "bps_rd"), 1000000);
  assert_int_equal (json_object_get_int_member (original, "iops_wr"), 300);
  assert_string_equal (json_object_get_string_member (original, "group"), "g1");
  plain = vms_job_find_disk (loaded, "vd1");
  assert_int_equal (plain->throttle_bps_wr, 0);
  assert_null (plain->throttle_original);
}

/* A job written before backpressure existed has none applied; a record
 * that is not an object is refused rather than restored as nothing. */
static void
test_old_job_without_throttle (void **state)
{
  const char *dir = *state;
  g_autofree char *path = g_build_filename (dir, "nothrottle.json", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsJob) job = NULL;
  VmsJobDisk *disk;

  assert_true (
      g_file_set_contents (path, OLD_DISK_JOB ("nothrottle", ""), -1, NULL));
  job = vms_job_load (dir, "nothrottle", &error);
  if (!job)
    fail_msg ("load: %s", error->message);
  disk = vms_job_find_disk (job, "vd0");
  assert_int_equal (disk->throttle_bps_wr, 0);
  assert_null (disk->throttle_original);
  assert_load_fails (dir, "badthrottle",
                     OLD_DISK_JOB ("badthrottle", ",\"throttle-original\":7"),
                     VMS_JOB_ERROR_CORRUPT);
}

/* A job file written before paths were saved absolute: its relative
 * paths meant the directory vmshift ran in, and load them so. */
static void
test_old_relative_paths (void **state)
{
  const char *dir = *state;
  g_autofree char *path = g_build_filename (dir, "old.json", NULL);
  g_autofree char *cwd = g_get_current_dir ();
  g_autofree char *source = g_strdup_printf ("qmp:%s/run/vm.qmp", cwd);
  g_autofree char *sink
      = g_strdup_printf ("nbd+unix:///?socket=%s/sink.sock", cwd);
  g_autofree char *dest_uri = g_strdup_printf ("unix:%s/mig.sock", cwd);
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsJob) job = NULL;

  assert_true (g_file_set_contents (
      path,
      "{\"version\":1,\"id\":\"old\",\"source\":\"qmp:run/vm.qmp\","
      "\"sink\":\"nbd+unix:///?socket=sink.sock\",\"vm-name\":\"\","
      "\"vm-uuid\":\"\",\"phase\":\"synced\",\"runs\":1,"
      "\"created\":1,\"updated\":1,\"disks\":[],\"migration\":{"
      "\"dest-qmp\":\"tcp:h:4445\",\"dest-uri\":\"unix:mig.sock\","
      "\"final-sync\":null,\"state\":null,\"last-error\":null,"
      "\"pid\":0,\"attempts\":1,\"estimate\":null}}",
      -1, NULL));
  job = vms_job_load (dir, "old", &error);
  if (!job)
    fail_msg ("load: %s", error->message);
  assert_string_equal (job->source, source);
  assert_string_equal (job->sink, sink);
  assert_string_equal (job->migration->dest_qmp, "tcp:h:4445");
  assert_string_equal (job->migration->dest_uri, dest_uri);
  /* Written before "tls" was saved: memory went in clear text. */
  assert_false (job->migration->tls);
}

static void
test_job_ids (void **state)
{
  g_autofree char *long_id = g_strnfill (VMS_JOB_MAX_ID + 1, 'a');

  assert_true (vms_job_id_is_valid ("web1-2026.11_25", NULL));
  assert_false (vms_job_id_is_valid ("", NULL));
  assert_false (vms_job_id_is_valid ("a/b", NULL));
  assert_false (vms_job_id_is_valid ("..", NULL));
  assert_false (vms_job_id_is_valid ("-x", NULL));
  assert_false (vms_job_id_is_valid ("a b", NULL));
  assert_false (vms_job_id_is_valid (long_id, NULL));
}

static void
test_default_ids (void **state)
{
  static const char *const names[]
      = { "web1", "", "a/b", "\xc3\xa9", "..", ".hidden", "-x", "a b.c" };
  g_autofree char *long_name = g_strnfill (200, 'n');
  g_autofree char *first = vms_job_default_id ("web1", 1764090000, 0);
  g_autofree char *second = vms_job_default_id ("web1", 1764090000, 1);
  g_autofree char *odd = vms_job_default_id ("a/b", 1764090000, 0);
  g_autofree char *dots = vms_job_default_id ("..", 1764090000, 0);
  g_autofree char *longest
      = vms_job_default_id (long_name, G_MAXINT64, G_MAXUINT);

  assert_string_equal (first, "web1-1764090000");
  assert_string_equal (second, "web1-1764090000-1");
  assert_string_equal (odd, "a_b-1764090000");
  assert_string_equal (dots, "vm..-1764090000");
  assert_true (vms_job_id_is_valid (longest, NULL));
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autofree char *id = vms_job_default_id (names[i], 1, 0);

      if (!vms_job_id_is_valid (id, NULL))
        fail_msg ("default id '%s' of VM '%s' is not valid", id, names[i]);
    }
}

/* Two runs that pick one id: only the first gets it, and the second
 * writes nothing. */
static void
test_save_new_is_exclusive (void **state)
{
  const char *dir = *state;
  g_autoptr (VmsJob) first = vms_job_new (dir, "web1-1");
  g_autoptr (VmsJob) second = vms_job_new (dir, "web1-1");
  g_autoptr (VmsJob) loaded = NULL;
  g_autoptr (GError) error = NULL;

  first->source = g_strdup ("qmp:/first");
  first->sink = g_strdup ("nbd+unix:///?socket=/s");
  second->source = g_strdup ("qmp:/second");
  second->sink = g_strdup ("nbd+unix:///?socket=/s");
  assert_false (first->saved);
  assert_true (vms_job_save_new (first, NULL));
  assert_true (first->saved);
  assert_false (vms_job_save_new (second, &error));
  assert_true (g_error_matches (error, VMS_JOB_ERROR, VMS_JOB_ERROR_EXISTS));
  assert_false (second->saved);
  loaded = vms_job_load (dir, "web1-1", NULL);
  assert_non_null (loaded);
  assert_true (loaded->saved);
  assert_string_equal (loaded->source, "qmp:/first");
}

/* A state directory that cannot hold a file is refused, and a failed
 * save is remembered. */
static void
test_unwritable_state_dir (void **state)
{
  const char *dir = *state;
  g_autofree char *file = g_build_filename (dir, "file", NULL);
  g_autofree char *below = g_build_filename (file, "state", NULL);
  g_autoptr (VmsJob) job = vms_job_new (below, "web1");
  g_autoptr (GError) error = NULL;
  g_autoptr (GError) save_error = NULL;

  assert_true (vms_job_check_state_dir (dir, NULL));
  assert_true (g_file_set_contents (file, "", 0, NULL));
  /* A path under a regular file: no directory there even for root. */
  assert_false (vms_job_check_state_dir (below, &error));
  assert_true (g_error_matches (error, VMS_JOB_ERROR, VMS_JOB_ERROR_IO));
  assert_non_null (strstr (error->message, below));
  job->saved = TRUE;
  assert_false (vms_job_save (job, &save_error));
  assert_false (job->saved);
}

/* A second lock on a job fails naming the holder; released, the job is
 * free again.  (flock conflicts between two opens in one process as
 * between two processes.) */
static void
test_lock (void **state)
{
  const char *dir = *state;
  g_autoptr (GError) error = NULL;
  g_autofree char *holder = g_strdup_printf ("pid %d", (int)getpid ());
  VmsJobLock *first = vms_job_lock_take (dir, "web1", &error);
  VmsJobLock *second;
  g_autoptr (VmsJobLock) other = NULL;

  assert_null (error);
  assert_non_null (first);
  assert_int_equal (vms_job_lock_holder (dir, "web1"), getpid ());
  assert_int_equal (vms_job_lock_holder (dir, "web2"), 0);
  other = vms_job_lock_take (dir, "web2", &error);
  assert_non_null (other);

  second = vms_job_lock_take (dir, "web1", &error);
  assert_null (second);
  assert_true (g_error_matches (error, VMS_JOB_ERROR, VMS_JOB_ERROR_LOCKED));
  assert_non_null (strstr (error->message, holder));
  g_clear_error (&error);

  vms_job_lock_release (first);
  assert_int_equal (vms_job_lock_holder (dir, "web1"), 0);
  second = vms_job_lock_take (dir, "web1", &error);
  assert_non_null (second);
  vms_job_lock_release (second);
}

static void
test_is_zero (void **state)
{
  guint8 buffer[4096] = { 0 };

  assert_true (vms_copy_is_zero (buffer, sizeof buffer));
  assert_true (vms_copy_is_zero (buffer, 0));
  assert_true (vms_copy_is_zero (buffer, 7));
  for (gsize at = 0; at < sizeof buffer; at += 511)
    {
      buffer[at] = 1;
      assert_false (vms_copy_is_zero (buffer, sizeof buffer));
      buffer[at] = 0;
    }
  buffer[4095] = 0x80;
  assert_false (vms_copy_is_zero (buffer, sizeof buffer));
  assert_true (vms_copy_is_zero (buffer, 4095));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_round_trip, make_dir, remove_dir),
    cmocka_unit_test_setup_teardown (test_bad_files_refused, make_dir,
                                     remove_dir),
    cmocka_unit_test_setup_teardown (test_old_job_without_granularity, make_dir,
                                     remove_dir),
    cmocka_unit_test_setup_teardown (test_old_relative_paths, make_dir,
                                     remove_dir),
    cmocka_unit_test (test_job_ids),
    cmocka_unit_test (test_default_ids),
    cmocka_unit_test_setup_teardown (test_save_new_is_exclusive, make_dir,
                                     remove_dir),
    cmocka_unit_test_setup_teardown (test_unwritable_state_dir, make_dir,
                                     remove_dir),
    cmocka_unit_test_setup_teardown (test_lock, make_dir, remove_dir),
    cmocka_unit_test (test_is_zero),
    cmocka_unit_test_setup_teardown (test_throttle_round_trip, make_dir,
                                     remove_dir),
    cmocka_unit_test_setup_teardown (test_old_job_without_throttle, make_dir,
                                     remove_dir),
  };

  return cmocka_run_group_tests_name ("job", tests, NULL, NULL);
}
