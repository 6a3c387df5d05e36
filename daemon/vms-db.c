/* vmshiftd: the state and statistics database.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-db-internal.h"

#include <math.h>

G_DEFINE_QUARK (vms - db - error - quark, vms_db_error)

/* How long a statement waits for a lock another process holds (someone
 * reading the file with sqlite3) before it fails. */
#define BUSY_TIMEOUT_MS 5000

/* The schema's history, oldest first: step i takes a file from version
 * i to i + 1, in one transaction.  A step, once released, never changes;
 * a new schema is a new step. */
static const char *const migration_steps[] = {
  /* 1: jobs, and the events the daemon published. */
  "CREATE TABLE jobs (id TEXT PRIMARY KEY, vm_name TEXT NOT NULL,"
  " phase TEXT NOT NULL, plan TEXT, migration_state TEXT, estimate TEXT,"
  " last_error TEXT, created INTEGER NOT NULL, updated INTEGER NOT NULL,"
  " bytes_written INTEGER NOT NULL, attempts INTEGER);"
  "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
  " time_us INTEGER NOT NULL, plan TEXT, vm TEXT, event TEXT NOT NULL,"
  " json TEXT NOT NULL);",
  /* 2: estimates with their samples, and each plan migration's
   * prediction against what it took; a job's downtime. */
  "ALTER TABLE jobs ADD COLUMN downtime_ms INTEGER;"
  "CREATE TABLE estimates (id TEXT PRIMARY KEY, created INTEGER NOT NULL,"
  " window_s INTEGER, interval_s INTEGER, rtt_s REAL, throughput REAL,"
  " connections INTEGER, request_size INTEGER, group_s REAL);"
  "CREATE TABLE estimate_vms (estimate TEXT NOT NULL, idx INTEGER NOT NULL,"
  " source TEXT, vm_name TEXT, vm_uuid TEXT, ram_size INTEGER,"
  " ram_dirty_rate REAL, throughput REAL, total_pause_s REAL,"
  " total_mirror_s REAL, downtime_pause_s REAL, downtime_mirror_s REAL,"
  " method TEXT, final_sync TEXT, PRIMARY KEY (estimate, idx));"
  "CREATE TABLE estimate_samples (estimate TEXT NOT NULL,"
  " vm INTEGER NOT NULL, disk TEXT NOT NULL, idx INTEGER NOT NULL,"
  " seconds REAL NOT NULL, dirty_bytes INTEGER NOT NULL,"
  " written_bytes INTEGER, PRIMARY KEY (estimate, vm, disk, idx));"
  "CREATE TABLE migrations (plan TEXT NOT NULL, vm TEXT NOT NULL,"
  " outcome TEXT, attempt INTEGER, started_at INTEGER, ended_at INTEGER,"
  " predicted_s REAL, predicted_downtime_ms INTEGER,"
  " foreseen_downtime_ms INTEGER, seconds REAL, downtime_ms INTEGER,"
  " max_downtime_ms INTEGER, PRIMARY KEY (plan, vm));",
};

G_STATIC_ASSERT (G_N_ELEMENTS (migration_steps) == VMS_DB_SCHEMA_VERSION);

gboolean
vms_db_fail (VmsDb *db, GError **error, const char *what)
{
  g_set_error (error, VMS_DB_ERROR, VMS_DB_ERROR_SQL, "database %s: %s: %s",
               db->path, what, sqlite3_errmsg (db->handle));
  return FALSE;
}

gboolean
vms_db_exec (VmsDb *db, const char *sql, GError **error)
{
  char *message = NULL;

  if (sqlite3_exec (db->handle, sql, NULL, NULL, &message) == SQLITE_OK)
    return TRUE;
  g_set_error (error, VMS_DB_ERROR, VMS_DB_ERROR_SQL, "database %s: %s",
               db->path, message ? message : sqlite3_errmsg (db->handle));
  sqlite3_free (message);
  return FALSE;
}

sqlite3_stmt *
vms_db_prepare (VmsDb *db, const char *sql, GError **error)
{
  sqlite3_stmt *stmt = NULL;

  if (sqlite3_prepare_v2 (db->handle, sql, -1, &stmt, NULL) != SQLITE_OK)
    {
      vms_db_fail (db, error, "prepare");
      return NULL;
    }
  return stmt;
}

gboolean
vms_db_run (VmsDb *db, sqlite3_stmt *stmt, GError **error)
{
  if (sqlite3_step (stmt) == SQLITE_DONE)
    return TRUE;
  return vms_db_fail (db, error, sqlite3_sql (stmt));
}

void
vms_db_bind_text (sqlite3_stmt *stmt, int index, const char *text)
{
  if (text)
    sqlite3_bind_text (stmt, index, text, -1, SQLITE_TRANSIENT);
  else
    sqlite3_bind_null (stmt, index);
}

void
vms_db_bind_count (sqlite3_stmt *stmt, int index, gint64 value)
{
  if (value >= 0)
    sqlite3_bind_int64 (stmt, index, value);
  else
    sqlite3_bind_null (stmt, index);
}

void
vms_db_bind_real (sqlite3_stmt *stmt, int index, double value)
{
  if (isfinite (value))
    sqlite3_bind_double (stmt, index, value);
  else
    sqlite3_bind_null (stmt, index);
}

static int
read_user_version (VmsDb *db, GError **error)
{
  g_autoptr (sqlite3_stmt) stmt
      = vms_db_prepare (db, "PRAGMA user_version", error);

  if (!stmt)
    return -1;
  if (sqlite3_step (stmt) != SQLITE_ROW)
    {
      vms_db_fail (db, error, "PRAGMA user_version");
      return -1;
    }
  return sqlite3_column_int (stmt, 0);
}

/* Each step past the file's version, in a transaction with its new
 * version: a crash leaves the file at one version or the next. */
static gboolean
migrate (VmsDb *db, int version, GError **error)
{
  for (int step = version; step < VMS_DB_SCHEMA_VERSION; step++)
    {
      g_autofree char *set_version
          = g_strdup_printf ("PRAGMA user_version = %d", step + 1);

      if (!vms_db_exec (db, "BEGIN IMMEDIATE", error))
        return FALSE;
      if (!vms_db_exec (db, migration_steps[step], error)
          || !vms_db_exec (db, set_version, error)
          || !vms_db_exec (db, "COMMIT", error))
        {
          g_prefix_error (error, "schema version %d: ", step + 1);
          vms_db_exec (db, "ROLLBACK", NULL);
          return FALSE;
        }
    }
  return TRUE;
}

/* Write-ahead logging: readers (the API, sqlite3 by hand) do not wait
 * for a writer.  A file that refuses it is said. */
static gboolean
use_wal (VmsDb *db, GError **error)
{
  g_autoptr (sqlite3_stmt) stmt
      = vms_db_prepare (db, "PRAGMA journal_mode = WAL", error);
  const char *mode;

  if (!stmt)
    return FALSE;
  if (sqlite3_step (stmt) != SQLITE_ROW)
    return vms_db_fail (db, error, "PRAGMA journal_mode = WAL");
  mode = (const char *)sqlite3_column_text (stmt, 0);
  if (g_strcmp0 (mode, "wal") != 0)
    {
      g_set_error (error, VMS_DB_ERROR, VMS_DB_ERROR_OPEN,
                   "database %s: cannot use write-ahead logging (the journal "
                   "mode stays %s)",
                   db->path, mode ? mode : "unknown");
      return FALSE;
    }
  return TRUE;
}

VmsDb *
vms_db_open (const char *path, GError **error)
{
  g_autoptr (VmsDb) db = g_new0 (VmsDb, 1);
  int version;

  db->path = g_strdup (path);
  db->max_events = VMS_DB_MAX_EVENTS;
  if (sqlite3_open_v2 (path, &db->handle,
                       SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL)
      != SQLITE_OK)
    {
      g_set_error (error, VMS_DB_ERROR, VMS_DB_ERROR_OPEN, "database %s: %s",
                   path,
                   db->handle ? sqlite3_errmsg (db->handle) : "out of memory");
      return NULL;
    }
  sqlite3_busy_timeout (db->handle, BUSY_TIMEOUT_MS);
  version = read_user_version (db, error);
  if (version < 0)
    {
      g_clear_error (error);
      g_set_error (error, VMS_DB_ERROR, VMS_DB_ERROR_OPEN,
                   "database %s: cannot read it: %s", path,
                   sqlite3_errmsg (db->handle));
      return NULL;
    }
  if (version > VMS_DB_SCHEMA_VERSION)
    {
      g_set_error (error, VMS_DB_ERROR, VMS_DB_ERROR_NEWER,
                   "database %s: its schema is version %d, newer than this "
                   "vmshiftd's %d: run the newer vmshiftd, or give another "
                   "--database (the state directory's files rebuild it)",
                   path, version, VMS_DB_SCHEMA_VERSION);
      return NULL;
    }
  /* The statistics can be rebuilt from the files: a power cut may lose
   * the last of them, but never corrupts the file. */
  if (!use_wal (db, error)
      || !vms_db_exec (db, "PRAGMA synchronous = NORMAL", error)
      || !migrate (db, version, error))
    return NULL;
  return g_steal_pointer (&db);
}

void
vms_db_free (VmsDb *db)
{
  if (!db)
    return;
  sqlite3_finalize (db->insert_event);
  sqlite3_finalize (db->prune_events);
  sqlite3_close (db->handle);
  g_free (db->path);
  g_free (db);
}

int
vms_db_schema_version (VmsDb *db)
{
  return read_user_version (db, NULL);
}

void
vms_db_set_max_events (VmsDb *db, guint max_events)
{
  db->max_events = max_events;
}

/* ---- rows as the API shows them ---- */

/* The row stmt stands on, its columns named names (NULL columns left
 * out). */
static JsonObject *
row_object (sqlite3_stmt *stmt, const char *const *names)
{
  JsonObject *object = json_object_new ();

  for (int i = 0; names[i]; i++)
    switch (sqlite3_column_type (stmt, i))
      {
      case SQLITE_INTEGER:
        json_object_set_int_member (object, names[i],
                                    sqlite3_column_int64 (stmt, i));
        break;
      case SQLITE_FLOAT:
        json_object_set_double_member (object, names[i],
                                       sqlite3_column_double (stmt, i));
        break;
      case SQLITE_TEXT:
        json_object_set_string_member (
            object, names[i], (const char *)sqlite3_column_text (stmt, i));
        break;
      default:
        break;
      }
  return object;
}

JsonArray *
vms_db_rows_array (VmsDb *db, sqlite3_stmt *stmt, const char *const *names,
                   GError **error)
{
  g_autoptr (JsonArray) array = json_array_new ();
  int status;

  while ((status = sqlite3_step (stmt)) == SQLITE_ROW)
    json_array_add_object_element (array, row_object (stmt, names));
  if (status != SQLITE_DONE)
    {
      vms_db_fail (db, error, sqlite3_sql (stmt));
      return NULL;
    }
  return g_steal_pointer (&array);
}

/* ---- jobs ---- */

gboolean
vms_db_put_job (VmsDb *db, const VmsDbJob *job, GError **error)
{
  g_autoptr (sqlite3_stmt) stmt = vms_db_prepare (
      db,
      "INSERT INTO jobs (id, vm_name, phase, plan, migration_state,"
      " estimate, last_error, created, updated, bytes_written, attempts,"
      " downtime_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
      " ON CONFLICT (id) DO UPDATE SET vm_name = excluded.vm_name,"
      " phase = excluded.phase, plan = coalesce (excluded.plan, plan),"
      " migration_state = excluded.migration_state,"
      " estimate = excluded.estimate, last_error = excluded.last_error,"
      " created = excluded.created, updated = excluded.updated,"
      " bytes_written = excluded.bytes_written,"
      " attempts = excluded.attempts,"
      " downtime_ms = coalesce (excluded.downtime_ms, downtime_ms)",
      error);

  if (!stmt)
    return FALSE;
  vms_db_bind_text (stmt, 1, job->id);
  vms_db_bind_text (stmt, 2, job->vm_name ? job->vm_name : "");
  vms_db_bind_text (stmt, 3, job->phase);
  vms_db_bind_text (stmt, 4, job->plan);
  vms_db_bind_text (stmt, 5, job->migration_state);
  vms_db_bind_text (stmt, 6, job->estimate);
  vms_db_bind_text (stmt, 7, job->last_error);
  sqlite3_bind_int64 (stmt, 8, job->created);
  sqlite3_bind_int64 (stmt, 9, job->updated);
  sqlite3_bind_int64 (stmt, 10, MAX (job->bytes_written, 0));
  vms_db_bind_count (stmt, 11, job->attempts);
  vms_db_bind_count (stmt, 12, job->downtime_ms);
  return vms_db_run (db, stmt, error);
}

gint64
vms_db_count_jobs (VmsDb *db, GError **error)
{
  g_autoptr (sqlite3_stmt) stmt
      = vms_db_prepare (db, "SELECT count(*) FROM jobs", error);

  if (!stmt)
    return -1;
  if (sqlite3_step (stmt) != SQLITE_ROW)
    {
      vms_db_fail (db, error, "SELECT count(*) FROM jobs");
      return -1;
    }
  return sqlite3_column_int64 (stmt, 0);
}

JsonArray *
vms_db_list_jobs (VmsDb *db, GError **error)
{
  static const char *const names[]
      = { "id",       "vm-name",     "phase",   "plan",    "state",
          "estimate", "last-error",  "created", "updated", "bytes-written",
          "attempts", "downtime-ms", NULL };
  g_autoptr (sqlite3_stmt) stmt = vms_db_prepare (
      db,
      "SELECT id, vm_name, phase, plan, migration_state, estimate,"
      " last_error, created, updated, bytes_written, attempts, downtime_ms"
      " FROM jobs ORDER BY id",
      error);

  return stmt ? vms_db_rows_array (db, stmt, names, error) : NULL;
}

/* ---- events ---- */

/* *stmt, prepared the first time (kept until the database is closed),
 * its bindings cleared for its next use (its user resets it). */
static sqlite3_stmt *
kept_statement (VmsDb *db, sqlite3_stmt **stmt, const char *sql, GError **error)
{
  if (!*stmt)
    {
      if (sqlite3_prepare_v3 (db->handle, sql, -1, SQLITE_PREPARE_PERSISTENT,
                              stmt, NULL)
          != SQLITE_OK)
        {
          vms_db_fail (db, error, "prepare");
          return NULL;
        }
      return *stmt;
    }
  sqlite3_clear_bindings (*stmt);
  return *stmt;
}

gint64
vms_db_add_event (VmsDb *db, gint64 time_us, const char *plan, const char *vm,
                  const char *event, const char *json, GError **error)
{
  sqlite3_stmt *insert
      = kept_statement (db, &db->insert_event,
                        "INSERT INTO events (time_us, plan, vm, event, json)"
                        " VALUES (?, ?, ?, ?, ?)",
                        error);
  sqlite3_stmt *prune;
  gboolean ok;
  gint64 seq;

  if (!insert)
    return 0;
  sqlite3_bind_int64 (insert, 1, time_us);
  vms_db_bind_text (insert, 2, plan);
  vms_db_bind_text (insert, 3, vm);
  vms_db_bind_text (insert, 4, event);
  vms_db_bind_text (insert, 5, json);
  ok = vms_db_run (db, insert, error);
  /* Reset at once: no statement stays pending between events. */
  sqlite3_reset (insert);
  if (!ok)
    return 0;
  seq = sqlite3_last_insert_rowid (db->handle);
  /* Sequence numbers only grow (AUTOINCREMENT): the newest max_events
   * lie above seq - max_events. */
  prune = kept_statement (db, &db->prune_events,
                          "DELETE FROM events WHERE seq <= ?", error);
  if (!prune)
    return 0;
  sqlite3_bind_int64 (prune, 1, seq - (gint64)db->max_events);
  ok = vms_db_run (db, prune, error);
  sqlite3_reset (prune);
  return ok ? seq : 0;
}

JsonArray *
vms_db_list_events (VmsDb *db, gint64 since, guint limit, GError **error)
{
  static const char *const names[]
      = { "seq", "time-us", "plan", "vm", "event", NULL };
  g_autoptr (sqlite3_stmt) stmt
      = vms_db_prepare (db,
                        "SELECT seq, time_us, plan, vm, event, json FROM events"
                        " WHERE seq > ? ORDER BY seq LIMIT ?",
                        error);
  g_autoptr (JsonArray) array = json_array_new ();
  int status;

  if (!stmt)
    return NULL;
  sqlite3_bind_int64 (stmt, 1, since);
  sqlite3_bind_int64 (stmt, 2, limit);
  while ((status = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      JsonObject *object = row_object (stmt, names);
      g_autoptr (JsonParser) parser = json_parser_new ();
      const char *json = (const char *)sqlite3_column_text (stmt, 5);

      /* The event as it was streamed. */
      if (json && json_parser_load_from_data (parser, json, -1, NULL))
        json_object_set_member (object, "data",
                                json_node_copy (json_parser_get_root (parser)));
      json_array_add_object_element (array, object);
    }
  if (status != SQLITE_DONE)
    {
      vms_db_fail (db, error, sqlite3_sql (stmt));
      return NULL;
    }
  return g_steal_pointer (&array);
}

/* ---- migrations ---- */

gboolean
vms_db_put_migration (VmsDb *db, const VmsDbMigration *migration,
                      GError **error)
{
  g_autoptr (sqlite3_stmt) stmt = vms_db_prepare (
      db,
      "INSERT OR REPLACE INTO migrations (plan, vm, outcome, attempt,"
      " started_at, ended_at, predicted_s, predicted_downtime_ms,"
      " foreseen_downtime_ms, seconds, downtime_ms, max_downtime_ms)"
      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      error);

  if (!stmt)
    return FALSE;
  vms_db_bind_text (stmt, 1, migration->plan);
  vms_db_bind_text (stmt, 2, migration->vm);
  vms_db_bind_text (stmt, 3, migration->outcome);
  vms_db_bind_count (stmt, 4, migration->attempt);
  vms_db_bind_count (stmt, 5, migration->started_at);
  vms_db_bind_count (stmt, 6, migration->ended_at);
  vms_db_bind_real (stmt, 7, migration->predicted_seconds);
  vms_db_bind_count (stmt, 8, migration->predicted_downtime_ms);
  vms_db_bind_count (stmt, 9, migration->foreseen_downtime_ms);
  vms_db_bind_real (stmt, 10, migration->seconds);
  vms_db_bind_count (stmt, 11, migration->downtime_ms);
  vms_db_bind_count (stmt, 12, migration->max_downtime_ms);
  return vms_db_run (db, stmt, error);
}

JsonArray *
vms_db_list_migrations (VmsDb *db, GError **error)
{
  static const char *const names[] = { "plan",
                                       "vm",
                                       "outcome",
                                       "attempt",
                                       "started-at",
                                       "ended-at",
                                       "predicted-seconds",
                                       "predicted-downtime-ms",
                                       "foreseen-downtime-ms",
                                       "seconds",
                                       "downtime-ms",
                                       "max-downtime-ms",
                                       NULL };
  g_autoptr (sqlite3_stmt) stmt = vms_db_prepare (
      db,
      "SELECT plan, vm, outcome, attempt, started_at, ended_at, predicted_s,"
      " predicted_downtime_ms, foreseen_downtime_ms, seconds, downtime_ms,"
      " max_downtime_ms FROM migrations ORDER BY started_at, plan, vm",
      error);

  return stmt ? vms_db_rows_array (db, stmt, names, error) : NULL;
}
