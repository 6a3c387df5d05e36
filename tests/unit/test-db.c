/* Unit tests: vmshiftd's state and statistics database (daemon/vms-db.c,
 * daemon/vms-db-rebuild.c), on real SQLite files: the schema made, in
 * WAL mode; an older file upgraded, a newer one refused; rows in and
 * out; events bounded; and the rows rebuilt from real job, estimate,
 * plan and ledger files.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <glib/gstdio.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "vms-db-rebuild.h"
#include "vms-db.h"
#include "vms-estimate-file.h"
#include "vms-job.h"
#include "vms-plan-ledger.h"

/* Schema version 1 as it was released (vms-db.c's first step): the
 * upgrade is tested on a file made by it, not by the code under test. */
#define SCHEMA_V1                                                              \
  "CREATE TABLE jobs (id TEXT PRIMARY KEY, vm_name TEXT NOT NULL,"             \
  " phase TEXT NOT NULL, plan TEXT, migration_state TEXT, estimate TEXT,"      \
  " last_error TEXT, created INTEGER NOT NULL, updated INTEGER NOT NULL,"      \
  " bytes_written INTEGER NOT NULL, attempts INTEGER);"                        \
  "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT,"                \
  " time_us INTEGER NOT NULL, plan TEXT, vm TEXT, event TEXT NOT NULL,"        \
  " json TEXT NOT NULL);"                                                      \
  "INSERT INTO jobs VALUES ('old', 'oldvm', 'migrated', NULL, 'done',"         \
  " NULL, NULL, 100, 200, 4096, 1);"                                           \
  "PRAGMA user_version = 1;"

static void
remove_tree (const char *path)
{
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);

  for (const char *name; dir && (name = g_dir_read_name (dir));)
    {
      g_autofree char *child = g_build_filename (path, name, NULL);

      if (g_file_test (child, G_FILE_TEST_IS_DIR))
        remove_tree (child);
      else
        g_unlink (child);
    }
  g_rmdir (path);
}

static int
make_dir (void **state)
{
  *state = g_dir_make_tmp ("vms-db-XXXXXX", NULL);
  return *state ? 0 : -1;
}

static int
remove_dir (void **state)
{
  remove_tree (*state);
  g_free (*state);
  return 0;
}

/* sql run on path by SQLite itself, outside the code under test. */
static void
sqlite_exec (const char *path, const char *sql)
{
  sqlite3 *handle = NULL;
  char *message = NULL;

  assert_int_equal (sqlite3_open (path, &handle), SQLITE_OK);
  if (sqlite3_exec (handle, sql, NULL, NULL, &message) != SQLITE_OK)
    fail_msg ("%s: %s", sql, message);
  sqlite3_close (handle);
}

/* The first column of the first row sql gives on path, as text. */
static char *
sqlite_text (const char *path, const char *sql)
{
  sqlite3 *handle = NULL;
  sqlite3_stmt *stmt = NULL;
  char *text = NULL;

  assert_int_equal (sqlite3_open (path, &handle), SQLITE_OK);
  assert_int_equal (sqlite3_prepare_v2 (handle, sql, -1, &stmt, NULL),
                    SQLITE_OK);
  if (sqlite3_step (stmt) == SQLITE_ROW)
    text = g_strdup ((const char *)sqlite3_column_text (stmt, 0));
  sqlite3_finalize (stmt);
  sqlite3_close (handle);
  return text;
}

/* A new file: the newest schema, every table, in WAL mode. */
static void
test_fresh_file (void **state)
{
  g_autofree char *path = g_build_filename (*state, "new.db", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsDb) db = vms_db_open (path, &error);
  g_autofree char *mode = NULL;
  g_autofree char *tables = NULL;
  g_autoptr (JsonArray) jobs = NULL;

  assert_non_null (db);
  assert_int_equal (vms_db_schema_version (db), VMS_DB_SCHEMA_VERSION);
  mode = sqlite_text (path, "PRAGMA journal_mode");
  assert_string_equal (mode, "wal");
  tables = sqlite_text (path, "SELECT group_concat (name, ',') FROM"
                              " (SELECT name FROM sqlite_master WHERE"
                              " type = 'table' AND name NOT LIKE 'sqlite_%'"
                              " ORDER BY name)");
  assert_string_equal (tables, "estimate_samples,estimate_vms,estimates,"
                               "events,jobs,migrations");
  jobs = vms_db_list_jobs (db, &error);
  assert_non_null (jobs);
  assert_int_equal (json_array_get_length (jobs), 0);
  assert_int_equal (vms_db_count_jobs (db, NULL), 0);
}

/* A version 1 file, with a row: upgraded in place, the row kept, the
 * new column and tables there; opened again, nothing more happens. */
static void
test_upgrade_v1 (void **state)
{
  g_autofree char *path = g_build_filename (*state, "v1.db", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsDb) db = NULL;
  g_autoptr (JsonArray) jobs = NULL;
  g_autoptr (JsonArray) migrations = NULL;
  JsonObject *old;
  VmsDbJob job = { .id = "old",
                   .vm_name = "oldvm",
                   .phase = "migrated",
                   .created = 100,
                   .updated = 300,
                   .bytes_written = 4096,
                   .attempts = 1,
                   .downtime_ms = 42 };

  sqlite_exec (path, SCHEMA_V1);
  db = vms_db_open (path, &error);
  assert_non_null (db);
  assert_int_equal (vms_db_schema_version (db), 2);
  jobs = vms_db_list_jobs (db, &error);
  assert_int_equal (json_array_get_length (jobs), 1);
  old = json_array_get_object_element (jobs, 0);
  assert_string_equal (json_object_get_string_member (old, "vm-name"), "oldvm");
  assert_false (json_object_has_member (old, "downtime-ms"));
  g_clear_pointer (&jobs, json_array_unref);
  /* The column version 2 added takes values. */
  assert_true (vms_db_put_job (db, &job, &error));
  jobs = vms_db_list_jobs (db, &error);
  assert_int_equal (json_object_get_int_member (
                        json_array_get_object_element (jobs, 0), "downtime-ms"),
                    42);
  migrations = vms_db_list_migrations (db, &error);
  assert_non_null (migrations);
  g_clear_pointer (&db, vms_db_free);
  db = vms_db_open (path, &error);
  assert_non_null (db);
  assert_int_equal (vms_db_schema_version (db), 2);
}

/* A file a newer vmshiftd made is refused and left as it is. */
static void
test_newer_refused (void **state)
{
  g_autofree char *path = g_build_filename (*state, "newer.db", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsDb) db = NULL;
  g_autofree char *version = NULL;
  g_autofree char *sql
      = g_strdup_printf ("CREATE TABLE future (x); PRAGMA user_version = %d;",
                         VMS_DB_SCHEMA_VERSION + 1);

  sqlite_exec (path, sql);
  db = vms_db_open (path, &error);
  assert_null (db);
  assert_true (g_error_matches (error, VMS_DB_ERROR, VMS_DB_ERROR_NEWER));
  assert_non_null (strstr (error->message, "newer than this vmshiftd's"));
  version = sqlite_text (path, "PRAGMA user_version");
  assert_int_equal (atoi (version), VMS_DB_SCHEMA_VERSION + 1);
  g_clear_error (&error);
  /* Not a database at all: said, not overwritten. */
  g_free (path);
  path = g_build_filename (*state, "junk.db", NULL);
  assert_true (g_file_set_contents (path,
                                    "not a database, but long enough "
                                    "to be read as a header\n",
                                    -1, NULL));
  assert_null (vms_db_open (path, &error));
  assert_true (g_error_matches (error, VMS_DB_ERROR, VMS_DB_ERROR_OPEN));
}

/* Jobs and migrations in and out; an unknown plan or downtime keeps the
 * row's, a known one replaces it; strings go in as they are. */
static void
test_rows (void **state)
{
  g_autofree char *path = g_build_filename (*state, "rows.db", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsDb) db = vms_db_open (path, &error);
  g_autoptr (JsonArray) jobs = NULL;
  g_autoptr (JsonArray) migrations = NULL;
  VmsDbJob job = { .id = "web",
                   .vm_name = "it's \"web\"; DROP TABLE jobs",
                   .phase = "migrating",
                   .plan = "p1",
                   .created = 10,
                   .updated = 20,
                   .bytes_written = 1 << 20,
                   .attempts = 1,
                   .downtime_ms = 150 };
  VmsDbMigration migration = { .plan = "p1",
                               .vm = "web",
                               .outcome = "migrated",
                               .attempt = 2,
                               .started_at = 1000,
                               .ended_at = 1060,
                               .predicted_seconds = 55.5,
                               .predicted_downtime_ms = 120,
                               .foreseen_downtime_ms = -1,
                               .seconds = 58.25,
                               .downtime_ms = 131,
                               .max_downtime_ms = 500 };
  JsonObject *row;

  assert_non_null (db);
  assert_true (vms_db_put_job (db, &job, &error));
  job.phase = "migrated";
  job.plan = NULL;
  job.downtime_ms = -1;
  assert_true (vms_db_put_job (db, &job, &error));
  jobs = vms_db_list_jobs (db, &error);
  assert_int_equal (json_array_get_length (jobs), 1);
  row = json_array_get_object_element (jobs, 0);
  assert_string_equal (json_object_get_string_member (row, "vm-name"),
                       "it's \"web\"; DROP TABLE jobs");
  assert_string_equal (json_object_get_string_member (row, "phase"),
                       "migrated");
  assert_string_equal (json_object_get_string_member (row, "plan"), "p1");
  assert_int_equal (json_object_get_int_member (row, "downtime-ms"), 150);
  assert_int_equal (json_object_get_int_member (row, "bytes-written"), 1 << 20);

  assert_true (vms_db_put_migration (db, &migration, &error));
  migration.vm = "db";
  migration.outcome = "failed";
  migration.seconds = NAN;
  migration.downtime_ms = -1;
  assert_true (vms_db_put_migration (db, &migration, &error));
  migrations = vms_db_list_migrations (db, &error);
  assert_int_equal (json_array_get_length (migrations), 2);
  for (guint i = 0; i < 2; i++)
    {
      row = json_array_get_object_element (migrations, i);
      if (g_str_equal (json_object_get_string_member (row, "vm"), "web"))
        {
          assert_float_equal (
              json_object_get_double_member (row, "predicted-seconds"), 55.5,
              1e-9);
          assert_float_equal (json_object_get_double_member (row, "seconds"),
                              58.25, 1e-9);
          assert_int_equal (
              json_object_get_int_member (row, "predicted-downtime-ms"), 120);
          assert_int_equal (json_object_get_int_member (row, "downtime-ms"),
                            131);
        }
      else
        {
          assert_false (json_object_has_member (row, "seconds"));
          assert_false (json_object_has_member (row, "downtime-ms"));
          assert_false (json_object_has_member (row, "foreseen-downtime-ms"));
        }
    }
}

/* Events in order with their objects; only the newest are kept; since
 * and limit page through them. */
static void
test_events_bounded (void **state)
{
  g_autofree char *path = g_build_filename (*state, "events.db", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsDb) db = vms_db_open (path, &error);
  g_autoptr (JsonArray) all = NULL;
  g_autoptr (JsonArray) page = NULL;
  g_autofree char *count = NULL;
  JsonObject *first, *data;

  assert_non_null (db);
  vms_db_set_max_events (db, 5);
  for (int i = 1; i <= 12; i++)
    {
      g_autofree char *json
          = g_strdup_printf ("{\"event\":\"round\",\"n\":%d}", i);

      assert_int_equal (vms_db_add_event (db, 1000 + i, i % 2 ? "p" : NULL,
                                          "web", "round", json, &error),
                        i);
    }
  count = sqlite_text (path, "SELECT count(*) FROM events");
  assert_string_equal (count, "5");
  all = vms_db_list_events (db, 0, 100, &error);
  assert_int_equal (json_array_get_length (all), 5);
  first = json_array_get_object_element (all, 0);
  assert_int_equal (json_object_get_int_member (first, "seq"), 8);
  assert_int_equal (json_object_get_int_member (first, "time-us"), 1008);
  assert_false (json_object_has_member (first, "plan"));
  data = json_object_get_object_member (first, "data");
  assert_int_equal (json_object_get_int_member (data, "n"), 8);
  assert_string_equal (json_object_get_string_member (
                           json_array_get_object_element (all, 1), "plan"),
                       "p");
  page = vms_db_list_events (db, 9, 2, &error);
  assert_int_equal (json_array_get_length (page), 2);
  assert_int_equal (json_object_get_int_member (
                        json_array_get_object_element (page, 1), "seq"),
                    11);
  g_clear_pointer (&page, json_array_unref);
  page = vms_db_list_events (db, 12, 10, &error);
  assert_int_equal (json_array_get_length (page), 0);
}

/* A real estimate (lib/vms-estimate-file.c's tree) of two VMs, one with
 * two disks and three samples, one with QEMU's written counts. */
static VmsEstimateFile *
make_estimate (const char *id, guint samples)
{
  VmsEstimateFile *estimate = vms_estimate_file_new (id);

  estimate->created = 1700000000;
  estimate->window_s = 60;
  estimate->interval_s = 5;
  estimate->rtt_s = 0.002;
  estimate->best.throughput = 1e8;
  estimate->best.connections = 4;
  estimate->best.request_size = 1 << 20;
  estimate->group_s = 99.5;
  for (guint v = 0; v < 2; v++)
    {
      VmsEstimateFileVm *vm = vms_estimate_file_add_vm (
          estimate, v ? "qmp:/run/db.qmp" : "qmp:/run/web.qmp");

      g_free (vm->vm_name);
      vm->vm_name = g_strdup (v ? "db" : "web");
      vm->ram_size = 256 << 20;
      vm->prediction.total_pause_s = 40 + v;
      vm->prediction.total_mirror_s = 41 + v;
      vm->prediction.downtime_pause_s = 0.25;
      vm->prediction.downtime_mirror_s = 0.125;
      vm->prediction.reason = "because";
      for (guint d = 0; d <= v; d++)
        {
          VmsEstimateFileDisk *disk
              = vms_estimate_file_add_disk (vm, d ? "vd1" : "vd0", 1 << 30);

          for (guint k = 0; k < samples; k++)
            {
              double second = 5.0 * k;
              guint64 dirty = 4096 * (k + 1) * (d + 1);
              guint64 written = 2 * dirty;

              g_array_append_val (disk->seconds, second);
              g_array_append_val (disk->dirty, dirty);
              if (v)
                g_array_append_val (disk->written, written);
            }
        }
    }
  estimate->order = g_new0 (guint, 2);
  estimate->order[0] = 0;
  estimate->order[1] = 1;
  return estimate;
}

static void
put_estimate (VmsDb *db, const VmsEstimateFile *estimate)
{
  g_autoptr (JsonNode) root = vms_estimate_file_to_json (estimate);
  g_autoptr (GError) error = NULL;

  assert_true (vms_db_put_estimate (db, json_node_get_object (root), &error));
}

/* An estimate in and out with its predictions and samples; put again
 * with fewer samples, the old ones are gone. */
static void
test_estimate_round_trip (void **state)
{
  g_autofree char *path = g_build_filename (*state, "estimates.db", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsDb) db = vms_db_open (path, &error);
  g_autoptr (VmsEstimateFile) three = make_estimate ("e1", 3);
  g_autoptr (VmsEstimateFile) one = make_estimate ("e1", 1);
  g_autoptr (JsonArray) list = NULL;
  g_autoptr (JsonObject) shown = NULL;
  JsonObject *estimate, *vm;
  JsonArray *disks, *samples, *sample;

  assert_non_null (db);
  put_estimate (db, three);
  list = vms_db_list_estimates (db, &error);
  assert_int_equal (json_array_get_length (list), 1);
  estimate = json_array_get_object_element (list, 0);
  assert_int_equal (json_object_get_int_member (estimate, "window-seconds"),
                    60);
  assert_int_equal (json_object_get_int_member (estimate, "connections"), 4);
  assert_float_equal (json_object_get_double_member (estimate, "group-seconds"),
                      99.5, 1e-9);
  vm = json_array_get_object_element (
      json_object_get_array_member (estimate, "vms"), 1);
  assert_string_equal (json_object_get_string_member (vm, "vm-name"), "db");
  assert_float_equal (json_object_get_double_member (vm, "total-pause-seconds"),
                      41, 1e-9);
  assert_float_equal (
      json_object_get_double_member (vm, "downtime-mirror-seconds"), 0.125,
      1e-9);
  assert_false (json_object_has_member (vm, "disks"));

  shown = vms_db_get_estimate (db, "e1", &error);
  assert_non_null (shown);
  vm = json_array_get_object_element (
      json_object_get_array_member (shown, "vms"), 1);
  disks = json_object_get_array_member (vm, "disks");
  assert_int_equal (json_array_get_length (disks), 2);
  samples = json_object_get_array_member (
      json_array_get_object_element (disks, 1), "samples");
  assert_int_equal (json_array_get_length (samples), 3);
  sample = json_array_get_array_element (samples, 2);
  assert_float_equal (json_array_get_double_element (sample, 0), 10, 1e-9);
  assert_int_equal (json_array_get_int_element (sample, 1), 4096 * 3 * 2);
  assert_int_equal (json_array_get_int_element (sample, 2), 4096 * 3 * 2 * 2);
  /* The first VM's QEMU said nothing of its writes. */
  sample = json_array_get_array_element (
      json_object_get_array_member (
          json_array_get_object_element (
              json_object_get_array_member (
                  json_array_get_object_element (
                      json_object_get_array_member (shown, "vms"), 0),
                  "disks"),
              0),
          "samples"),
      0);
  assert_int_equal (json_array_get_length (sample), 2);
  g_clear_pointer (&shown, json_object_unref);

  put_estimate (db, one);
  shown = vms_db_get_estimate (db, "e1", &error);
  vm = json_array_get_object_element (
      json_object_get_array_member (shown, "vms"), 1);
  samples = json_object_get_array_member (
      json_array_get_object_element (json_object_get_array_member (vm, "disks"),
                                     0),
      "samples");
  assert_int_equal (json_array_get_length (samples), 1);
  assert_null (vms_db_get_estimate (db, "e2", &error));
  assert_null (error);
}

/* A job's source, sink and disk, as vms_job_load wants them. */
static VmsJobDisk *
add_disk (VmsJob *job)
{
  VmsJobDisk *disk = vms_job_add_disk (job, "vd0");

  job->source = g_strdup ("qmp:/w.qmp");
  job->sink = g_strdup ("nbd+unix:///?socket=/s");
  disk->node = g_strdup ("#block1");
  disk->format = g_strdup ("raw");
  disk->replica = g_strdup ("web-vd0");
  disk->size = 1 << 20;
  return disk;
}

/* A state directory as vmshift leaves it: a plan's job, its ledger, an
 * estimate, a job run by hand, and files of no kind. */
static void
write_state (const char *dir)
{
  g_autofree char *plans = g_build_filename (dir, "plans", NULL);
  g_autofree char *plan_path = g_build_filename (plans, "p1.plan", NULL);
  g_autofree char *junk = g_build_filename (dir, "estimate-bad.json", NULL);
  g_autoptr (VmsJob) web = vms_job_new (dir, "web");
  g_autoptr (VmsJob) manual = vms_job_new (dir, "by-hand");
  g_autoptr (VmsPlanLedger) ledger = NULL;
  g_autoptr (VmsEstimateFile) estimate = make_estimate ("e7", 2);
  g_autoptr (JsonObject) start = json_object_new ();
  g_autoptr (JsonObject) migrated = json_object_new ();
  g_autoptr (JsonObject) end = json_object_new ();
  g_autoptr (GError) error = NULL;
  VmsJobMigration *migration;

  g_mkdir (plans, 0700);
  assert_true (g_file_set_contents (
      plan_path,
      "[plan]\nsink = nbd+unix:///?socket=/s\n[vm web]\nsource = qmp:/w.qmp\n"
      "dest-qmp = qmp:/d.qmp\ndest-uri = unix:/m\n",
      -1, NULL));
  add_disk (web)->bytes_written = 12345;
  web->phase = VMS_JOB_PHASE_MIGRATED;
  migration = vms_job_get_migration (web);
  migration->dest_qmp = g_strdup ("qmp:/d.qmp");
  migration->dest_uri = g_strdup ("unix:/m");
  migration->final_sync = g_strdup ("pause");
  migration->state = g_strdup ("done");
  migration->attempts = 1;
  assert_true (vms_job_save (web, &error));
  add_disk (manual);
  assert_true (vms_job_save (manual, &error));
  assert_true (vms_estimate_file_save (estimate, dir, &error));
  assert_true (g_file_set_contents (junk, "{", -1, NULL));

  ledger = vms_plan_ledger_open (dir, plan_path, &error);
  assert_non_null (ledger);
  json_object_set_int_member (start, "attempt", 1);
  vms_plan_ledger_note (ledger, "web", "plan-vm-start", start);
  json_object_set_int_member (migrated, "downtime-ms", 87);
  json_object_set_int_member (migrated, "max-downtime-ms", 300);
  json_object_set_double_member (migrated, "seconds", 12.5);
  json_object_set_double_member (migrated, "predicted-seconds", 11.0);
  json_object_set_int_member (migrated, "predicted-downtime-ms", 95);
  vms_plan_ledger_note (ledger, "web", "migrated", migrated);
  json_object_set_string_member (end, "outcome", "migrated");
  vms_plan_ledger_note (ledger, "web", "plan-vm", end);
}

/* A lost database comes back from the files: the jobs (the plan's with
 * its plan and downtime), the estimate, the migration predicted against
 * measured; a plan's rows are read again the same way. */
static void
test_rebuild (void **state)
{
  g_autofree char *path = g_build_filename (*state, "rebuilt.db", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsDb) db = NULL;
  g_autoptr (JsonArray) jobs = NULL;
  g_autoptr (JsonArray) migrations = NULL;
  g_autoptr (JsonArray) estimates = NULL;
  JsonObject *row;

  write_state (*state);
  db = vms_db_open (path, &error);
  assert_non_null (db);
  assert_true (vms_db_rebuild (db, *state, &error));
  jobs = vms_db_list_jobs (db, &error);
  assert_int_equal (json_array_get_length (jobs), 2);
  row = json_array_get_object_element (jobs, 1);
  assert_string_equal (json_object_get_string_member (row, "id"), "web");
  assert_string_equal (json_object_get_string_member (row, "phase"),
                       "migrated");
  assert_string_equal (json_object_get_string_member (row, "plan"), "p1");
  assert_int_equal (json_object_get_int_member (row, "downtime-ms"), 87);
  assert_int_equal (json_object_get_int_member (row, "bytes-written"), 12345);
  row = json_array_get_object_element (jobs, 0);
  assert_string_equal (json_object_get_string_member (row, "id"), "by-hand");
  assert_false (json_object_has_member (row, "plan"));

  migrations = vms_db_list_migrations (db, &error);
  assert_int_equal (json_array_get_length (migrations), 1);
  row = json_array_get_object_element (migrations, 0);
  assert_string_equal (json_object_get_string_member (row, "plan"), "p1");
  assert_string_equal (json_object_get_string_member (row, "outcome"),
                       "migrated");
  assert_float_equal (json_object_get_double_member (row, "predicted-seconds"),
                      11.0, 1e-9);
  assert_int_equal (json_object_get_int_member (row, "predicted-downtime-ms"),
                    95);
  assert_float_equal (json_object_get_double_member (row, "seconds"), 12.5,
                      1e-9);
  assert_int_equal (json_object_get_int_member (row, "downtime-ms"), 87);

  estimates = vms_db_list_estimates (db, &error);
  assert_int_equal (json_array_get_length (estimates), 1);
  assert_string_equal (json_object_get_string_member (
                           json_array_get_object_element (estimates, 0), "id"),
                       "e7");

  /* Again, and for the plan alone: the same rows, none twice. */
  assert_true (vms_db_rebuild (db, *state, &error));
  assert_true (vms_db_rebuild_plan (db, *state, "p1", &error));
  assert_true (vms_db_rebuild_plan (db, *state, "../nope", &error));
  assert_int_equal (vms_db_count_jobs (db, &error), 2);
  g_clear_pointer (&migrations, json_array_unref);
  migrations = vms_db_list_migrations (db, &error);
  assert_int_equal (json_array_get_length (migrations), 1);

  /* Only what changed since is read: a file older is not. */
  {
    g_autoptr (VmsEstimateFile) later = make_estimate ("e9", 1);
    gint64 hour_ns = 3600 * G_GINT64_CONSTANT (1000000000);
    gint64 future_ns = g_get_real_time () * 1000 + hour_ns;

    assert_true (vms_estimate_file_save (later, *state, &error));
    assert_true (vms_db_rebuild_changed (db, *state, future_ns, &error));
    g_clear_pointer (&estimates, json_array_unref);
    estimates = vms_db_list_estimates (db, &error);
    assert_int_equal (json_array_get_length (estimates), 1);
    assert_true (
        vms_db_rebuild_changed (db, *state, future_ns - 2 * hour_ns, &error));
    g_clear_pointer (&estimates, json_array_unref);
    estimates = vms_db_list_estimates (db, &error);
    assert_int_equal (json_array_get_length (estimates), 2);
    assert_int_equal (vms_db_count_jobs (db, &error), 2);
  }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_fresh_file, make_dir, remove_dir),
    cmocka_unit_test_setup_teardown (test_upgrade_v1, make_dir, remove_dir),
    cmocka_unit_test_setup_teardown (test_newer_refused, make_dir, remove_dir),
    cmocka_unit_test_setup_teardown (test_rows, make_dir, remove_dir),
    cmocka_unit_test_setup_teardown (test_events_bounded, make_dir, remove_dir),
    cmocka_unit_test_setup_teardown (test_estimate_round_trip, make_dir,
                                     remove_dir),
    cmocka_unit_test_setup_teardown (test_rebuild, make_dir, remove_dir),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
