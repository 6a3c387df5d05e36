/* Unit tests: the estimate's result file, written as vmshift estimate
 * writes it and read back as vmshift migrate --estimate reads it.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include <glib/gstdio.h>

#include "vms-estimate-file.h"

#define NO_UUID "00000000-0000-0000-0000-000000000000"
#define WEB_UUID "6f1c2a0e-7d35-4a8e-9a42-2b8e0f3c5d11"

static int
make_dir (void **state)
{
  *state = g_dir_make_tmp ("vms-estimate-XXXXXX", NULL);
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

/* A VM with one disk and a prediction whose figures tell VMs apart:
 * total pause k, mirror k + 0.5, downtimes k / 10 and k / 100; its disk
 * observed in bits of k KiB, except the VM of k 30, whose disk has none
 * recorded (a file written before granularity was). */
static void
add_vm (VmsEstimateFile *estimate, const char *source, const char *name,
        const char *uuid, double k)
{
  VmsEstimateFileVm *vm = vms_estimate_file_add_vm (estimate, source);
  VmsEstimateFileDisk *disk = vms_estimate_file_add_disk (vm, "vd0", 1 << 30);
  double second = 1.5;
  guint64 dirty = 4096;

  g_free (vm->vm_name);
  vm->vm_name = g_strdup (name);
  g_free (vm->vm_uuid);
  vm->vm_uuid = g_strdup (uuid);
  vm->ram_size = 256 << 20;
  disk->data = 384 << 20;
  if (k != 30)
    {
      disk->granularity = (guint32)k * 1024;
      disk->granularity_reason = g_strdup ("the guest's average write");
    }
  g_array_append_val (disk->seconds, second);
  g_array_append_val (disk->dirty, dirty);
  vm->prediction.total_pause_s = k;
  vm->prediction.total_mirror_s = k + 0.5;
  vm->prediction.downtime_pause_s = k / 10;
  vm->prediction.downtime_mirror_s = k / 100;
  vm->prediction.reason = "because";
  /* The VM of 20 only: it is read back per VM. */
  vm->prediction.compress = k == 20;
  /* Replication backpressure: k / 10 ms at k MB/s. */
  vm->prediction.guest_latency_ms = (guint)k / 10;
  vm->prediction.replication_rate = k * 1e6;
}

/* Three VMs: one told by its UUID, one by its name (no -uuid), one by
 * its address alone; the link's best configuration is 4 x 1 MiB. */
static void
save_three (const char *dir, const char *id)
{
  g_autoptr (VmsEstimateFile) estimate = vms_estimate_file_new (id);
  g_autoptr (GError) error = NULL;
  VmsProbeResult best
      = { .connections = 4, .request_size = 1 << 20, .throughput = 1e8 };

  estimate->window_s = 60;
  estimate->interval_s = 5;
  estimate->best = best;
  g_array_append_val (estimate->probes, best);
  add_vm (estimate, "qmp:/run/web.qmp", "web", WEB_UUID, 10);
  add_vm (estimate, "qmp:/run/db.qmp", "db", NO_UUID, 20);
  add_vm (estimate, "qmp:/run/anon.qmp", "", NO_UUID, 30);
  estimate->order = g_new0 (guint, 3);
  estimate->order[0] = 2;
  estimate->order[1] = 0;
  estimate->order[2] = 1;
  estimate->group_s = 60;
  assert_true (vms_estimate_file_save (estimate, dir, &error));
  assert_null (error);
}

static void
assert_loads (const char *dir, const char *uuid, const char *name,
              const char *source, double k)
{
  g_autoptr (GError) error = NULL;
  VmsPrediction prediction = { 0 };

  assert_true (vms_estimate_file_load_prediction (dir, "e1", uuid, name, source,
                                                  &prediction, &error));
  assert_null (error);
  assert_true (prediction.total_pause_s == k);
  assert_true (prediction.total_mirror_s == k + 0.5);
  assert_true (prediction.downtime_pause_s == k / 10);
  assert_true (prediction.downtime_mirror_s == k / 100);
  assert_int_equal (prediction.connections, 4);
  assert_int_equal (prediction.request_size, 1 << 20);
  assert_int_equal (prediction.compress_zstd, k == 20);
  assert_int_equal (prediction.guest_latency_ms, (guint)k / 10);
  assert_true (prediction.replication_rate == k * 1e6);
  assert_non_null (prediction.granularities);
  if (k == 30)
    assert_false (g_hash_table_contains (prediction.granularities, "vd0"));
  else
    assert_int_equal (GPOINTER_TO_UINT (g_hash_table_lookup (
                          prediction.granularities, "vd0")),
                      k * 1024);
  vms_prediction_clear (&prediction);
}

static void
test_found_by_uuid (void **state)
{
  save_three (*state, "e1");
  /* The UUID decides, whatever the name and address are now. */
  assert_loads (*state, WEB_UUID, "renamed", "qmp:/elsewhere", 10);
}

static void
test_found_by_name (void **state)
{
  save_three (*state, "e1");
  /* Without a UUID: the name, wherever the VM's monitor is now. */
  assert_loads (*state, NO_UUID, "db", "qmp:/elsewhere", 20);
}

static void
test_found_by_source (void **state)
{
  save_three (*state, "e1");
  assert_loads (*state, NO_UUID, "", "qmp:/run/anon.qmp", 30);
}

static void
assert_load_fails (const char *dir, const char *id, const char *uuid,
                   VmsEstimateFileError code, const char *message)
{
  g_autoptr (GError) error = NULL;
  VmsPrediction prediction = { 0 };

  assert_false (vms_estimate_file_load_prediction (
      dir, id, uuid, "web", "qmp:/run/web.qmp", &prediction, &error));
  assert_non_null (error);
  assert_true (g_error_matches (error, VMS_ESTIMATE_FILE_ERROR, code));
  if (!strstr (error->message, message))
    fail_msg ("'%s' does not say '%s'", error->message, message);
}

static void
test_missing_vm (void **state)
{
  save_three (*state, "e1");
  /* Another UUID: the web entry's UUID no longer matches. */
  assert_load_fails (*state, "e1", "11111111-2222-3333-4444-555555555555",
                     VMS_ESTIMATE_FILE_ERROR_NO_VM,
                     "estimate e1 has no prediction for VM 'web'");
}

static void
write_file (const char *dir, const char *id, const char *contents)
{
  g_autofree char *path = vms_estimate_file_path (dir, id);
  g_autoptr (GError) error = NULL;

  assert_true (g_file_set_contents (path, contents, -1, &error));
}

static void
test_corrupt_file (void **state)
{
  write_file (*state, "broken", "{\"link\": {\"connections\": 4}, \"vms\": [");
  assert_load_fails (*state, "broken", WEB_UUID,
                     VMS_ESTIMATE_FILE_ERROR_CORRUPT, "estimate broken: ");
  /* JSON, but not an estimate: a job's state file, say. */
  write_file (*state, "job", "{\"version\": 1, \"disks\": []}");
  assert_load_fails (*state, "job", WEB_UUID, VMS_ESTIMATE_FILE_ERROR_CORRUPT,
                     "is not an estimate");
  write_file (*state, "strange", "{\"link\": {}, \"vms\": [1]}");
  assert_load_fails (*state, "strange", WEB_UUID,
                     VMS_ESTIMATE_FILE_ERROR_CORRUPT, "is not an estimate");
}

static void
test_missing_file (void **state)
{
  assert_load_fails (*state, "never", WEB_UUID,
                     VMS_ESTIMATE_FILE_ERROR_NOT_FOUND, "estimate never: ");
  assert_load_fails (*state, "../e1", WEB_UUID,
                     VMS_ESTIMATE_FILE_ERROR_INVALID_ID, "job id");
}

/* The file is what vmshift estimate --json prints, member for member. */
static void
test_saved_as_printed (void **state)
{
  g_autofree char *path = vms_estimate_file_path (*state, "e1");
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;
  JsonObject *root, *group;

  save_three (*state, "e1");
  assert_true (json_parser_load_from_file (parser, path, &error));
  root = json_node_get_object (json_parser_get_root (parser));
  assert_string_equal (json_object_get_string_member (root, "id"), "e1");
  assert_int_equal (json_object_get_int_member (root, "window-seconds"), 60);
  assert_int_equal (
      json_array_get_length (json_object_get_array_member (root, "vms")), 3);
  group = json_object_get_object_member (root, "group");
  assert_string_equal (json_array_get_string_element (
                           json_object_get_array_member (group, "order"), 0),
                       "qmp:/run/anon.qmp");
  assert_true (json_object_get_double_member (group, "total-seconds") == 60);
  {
    JsonObject *web = json_array_get_object_element (
        json_object_get_array_member (root, "vms"), 0);
    JsonObject *vd0 = json_array_get_object_element (
        json_object_get_array_member (web, "disks"), 0);

    assert_int_equal (json_object_get_int_member (vd0, "granularity"),
                      10 * 1024);
    assert_string_equal (
        json_object_get_string_member (vd0, "granularity-reason"),
        "the guest's average write");
  }
}

/* The order a plan runs its VMs in, as the estimate gives it; a file
 * without one is refused. */
static void
test_order (void **state)
{
  g_autoptr (GError) error = NULL;
  g_auto (GStrv) order = NULL;
  g_auto (GStrv) none = NULL;

  save_three (*state, "e1");
  order = vms_estimate_file_load_order (*state, "e1", &error);
  assert_non_null (order);
  assert_int_equal (g_strv_length (order), 3);
  assert_string_equal (order[0], "qmp:/run/anon.qmp");
  assert_string_equal (order[1], "qmp:/run/web.qmp");
  assert_string_equal (order[2], "qmp:/run/db.qmp");
  write_file (*state, "job", "{\"version\": 1, \"disks\": []}");
  none = vms_estimate_file_load_order (*state, "job", &error);
  assert_null (none);
  assert_non_null (strstr (error->message, "holds no order of its VMs"));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_found_by_uuid, make_dir, remove_dir),
    cmocka_unit_test_setup_teardown (test_found_by_name, make_dir, remove_dir),
    cmocka_unit_test_setup_teardown (test_found_by_source, make_dir,
                                     remove_dir),
    cmocka_unit_test_setup_teardown (test_missing_vm, make_dir, remove_dir),
    cmocka_unit_test_setup_teardown (test_corrupt_file, make_dir, remove_dir),
    cmocka_unit_test_setup_teardown (test_missing_file, make_dir, remove_dir),
    cmocka_unit_test_setup_teardown (test_order, make_dir, remove_dir),
    cmocka_unit_test_setup_teardown (test_saved_as_printed, make_dir,
                                     remove_dir),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
