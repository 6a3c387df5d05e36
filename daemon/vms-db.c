/* vmshiftd: the state and statistics database.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-db.h"

#include <math.h>
#include <sqlite3.h>

G_DEFINE_QUARK (vms - db - error - quark, vms_db_error)

G_DEFINE_AUTOPTR_CLEANUP_FUNC (sqlite3_stmt, sqlite3_finalize)

/* How long a statement waits for a lock another process holds (someone
 * reading the file with sqlite3) before it fails. */
#define BUSY_TIMEOUT_MS 5000

struct _VmsDb
{
  sqlite3 *handle;  /* the open file */
  char *path;       /* its name, for messages */
  guint max_events; /* events kept at most */
};

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

static gboolean
fail (VmsDb *db, GError **error, const char *what)
{
  g_set_error (error, VMS_DB_ERROR, VMS_DB_ERROR_SQL, "database %s: %s: %s",
               db->path, what, sqlite3_errmsg (db->handle));
  return FALSE;
}

/* sql (constant text, no parameters) run whole. */
static gboolean
exec (VmsDb *db, const char *sql, GError **error)
{
  char *message = NULL;

  if (sqlite3_exec (db->handle, sql, NULL, NULL, &message) == SQLITE_OK)
    return TRUE;
  g_set_error (error, VMS_DB_ERROR, VMS_DB_ERROR_SQL, "database %s: %s",
               db->path, message ? message : sqlite3_errmsg (db->handle));
  sqlite3_free (message);
  return FALSE;
}

static sqlite3_stmt *
prepare (VmsDb *db, const char *sql, GError **error)
{
  sqlite3_stmt *stmt = NULL;

  if (sqlite3_prepare_v2 (db->handle, sql, -1, &stmt, NULL) != SQLITE_OK)
    {
      fail (db, error, "prepare");
      return NULL;
    }
  return stmt;
}

/* A statement that returns no row, stepped to its end. */
static gboolean
run (VmsDb *db, sqlite3_stmt *stmt, GError **error)
{
  if (sqlite3_step (stmt) == SQLITE_DONE)
    return TRUE;
  return fail (db, error, sqlite3_sql (stmt));
}

static void
bind_text (sqlite3_stmt *stmt, int index, const char *text)
{
  if (text)
    sqlite3_bind_text (stmt, index, text, -1, SQLITE_TRANSIENT);
  else
    sqlite3_bind_null (stmt, index);
}

/* Below 0: unknown. */
static void
bind_count (sqlite3_stmt *stmt, int index, gint64 value)
{
  if (value >= 0)
    sqlite3_bind_int64 (stmt, index, value);
  else
    sqlite3_bind_null (stmt, index);
}

static void
bind_real (sqlite3_stmt *stmt, int index, double value)
{
  if (isfinite (value))
    sqlite3_bind_double (stmt, index, value);
  else
    sqlite3_bind_null (stmt, index);
}

static int
read_user_version (VmsDb *db, GError **error)
{
  g_autoptr (sqlite3_stmt) stmt = prepare (db, "PRAGMA user_version", error);

  if (!stmt)
    return -1;
  if (sqlite3_step (stmt) != SQLITE_ROW)
    {
      fail (db, error, "PRAGMA user_version");
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

      if (!exec (db, "BEGIN IMMEDIATE", error))
        return FALSE;
      if (!exec (db, migration_steps[step], error)
          || !exec (db, set_version, error) || !exec (db, "COMMIT", error))
        {
          g_prefix_error (error, "schema version %d: ", step + 1);
          exec (db, "ROLLBACK", NULL);
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
      = prepare (db, "PRAGMA journal_mode = WAL", error);
  const char *mode;

  if (!stmt)
    return FALSE;
  if (sqlite3_step (stmt) != SQLITE_ROW)
    return fail (db, error, "PRAGMA journal_mode = WAL");
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
  if (!use_wal (db, error) || !exec (db, "PRAGMA synchronous = NORMAL", error)
      || !migrate (db, version, error))
    return NULL;
  return g_steal_pointer (&db);
}

void
vms_db_free (VmsDb *db)
{
  if (!db)
    return;
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

/* Every row stmt gives, as objects. */
static JsonArray *
rows_array (VmsDb *db, sqlite3_stmt *stmt, const char *const *names,
            GError **error)
{
  g_autoptr (JsonArray) array = json_array_new ();
  int status;

  while ((status = sqlite3_step (stmt)) == SQLITE_ROW)
    json_array_add_object_element (array, row_object (stmt, names));
  if (status != SQLITE_DONE)
    {
      fail (db, error, sqlite3_sql (stmt));
      return NULL;
    }
  return g_steal_pointer (&array);
}

/* ---- jobs ---- */

gboolean
vms_db_put_job (VmsDb *db, const VmsDbJob *job, GError **error)
{
  g_autoptr (sqlite3_stmt) stmt = prepare (
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
  bind_text (stmt, 1, job->id);
  bind_text (stmt, 2, job->vm_name ? job->vm_name : "");
  bind_text (stmt, 3, job->phase);
  bind_text (stmt, 4, job->plan);
  bind_text (stmt, 5, job->migration_state);
  bind_text (stmt, 6, job->estimate);
  bind_text (stmt, 7, job->last_error);
  sqlite3_bind_int64 (stmt, 8, job->created);
  sqlite3_bind_int64 (stmt, 9, job->updated);
  sqlite3_bind_int64 (stmt, 10, MAX (job->bytes_written, 0));
  bind_count (stmt, 11, job->attempts);
  bind_count (stmt, 12, job->downtime_ms);
  return run (db, stmt, error);
}

gint64
vms_db_count_jobs (VmsDb *db, GError **error)
{
  g_autoptr (sqlite3_stmt) stmt
      = prepare (db, "SELECT count(*) FROM jobs", error);

  if (!stmt)
    return -1;
  if (sqlite3_step (stmt) != SQLITE_ROW)
    {
      fail (db, error, "SELECT count(*) FROM jobs");
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
  g_autoptr (sqlite3_stmt) stmt = prepare (
      db,
      "SELECT id, vm_name, phase, plan, migration_state, estimate,"
      " last_error, created, updated, bytes_written, attempts, downtime_ms"
      " FROM jobs ORDER BY id",
      error);

  return stmt ? rows_array (db, stmt, names, error) : NULL;
}

/* ---- events ---- */

gint64
vms_db_add_event (VmsDb *db, gint64 time_us, const char *plan, const char *vm,
                  const char *event, const char *json, GError **error)
{
  g_autoptr (sqlite3_stmt) insert
      = prepare (db,
                 "INSERT INTO events (time_us, plan, vm, event, json)"
                 " VALUES (?, ?, ?, ?, ?)",
                 error);
  g_autoptr (sqlite3_stmt) prune = NULL;
  gint64 seq;

  if (!insert)
    return 0;
  sqlite3_bind_int64 (insert, 1, time_us);
  bind_text (insert, 2, plan);
  bind_text (insert, 3, vm);
  bind_text (insert, 4, event);
  bind_text (insert, 5, json);
  if (!run (db, insert, error))
    return 0;
  seq = sqlite3_last_insert_rowid (db->handle);
  /* Sequence numbers only grow (AUTOINCREMENT): the newest max_events
   * lie above seq - max_events. */
  prune = prepare (db, "DELETE FROM events WHERE seq <= ?", error);
  if (!prune)
    return 0;
  sqlite3_bind_int64 (prune, 1, seq - (gint64)db->max_events);
  return run (db, prune, error) ? seq : 0;
}

JsonArray *
vms_db_list_events (VmsDb *db, gint64 since, guint limit, GError **error)
{
  static const char *const names[]
      = { "seq", "time-us", "plan", "vm", "event", NULL };
  g_autoptr (sqlite3_stmt) stmt
      = prepare (db,
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
      fail (db, error, sqlite3_sql (stmt));
      return NULL;
    }
  return g_steal_pointer (&array);
}

/* ---- migrations ---- */

gboolean
vms_db_put_migration (VmsDb *db, const VmsDbMigration *migration,
                      GError **error)
{
  g_autoptr (sqlite3_stmt) stmt = prepare (
      db,
      "INSERT OR REPLACE INTO migrations (plan, vm, outcome, attempt,"
      " started_at, ended_at, predicted_s, predicted_downtime_ms,"
      " foreseen_downtime_ms, seconds, downtime_ms, max_downtime_ms)"
      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      error);

  if (!stmt)
    return FALSE;
  bind_text (stmt, 1, migration->plan);
  bind_text (stmt, 2, migration->vm);
  bind_text (stmt, 3, migration->outcome);
  bind_count (stmt, 4, migration->attempt);
  bind_count (stmt, 5, migration->started_at);
  bind_count (stmt, 6, migration->ended_at);
  bind_real (stmt, 7, migration->predicted_seconds);
  bind_count (stmt, 8, migration->predicted_downtime_ms);
  bind_count (stmt, 9, migration->foreseen_downtime_ms);
  bind_real (stmt, 10, migration->seconds);
  bind_count (stmt, 11, migration->downtime_ms);
  bind_count (stmt, 12, migration->max_downtime_ms);
  return run (db, stmt, error);
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
  g_autoptr (sqlite3_stmt) stmt = prepare (
      db,
      "SELECT plan, vm, outcome, attempt, started_at, ended_at, predicted_s,"
      " predicted_downtime_ms, foreseen_downtime_ms, seconds, downtime_ms,"
      " max_downtime_ms FROM migrations ORDER BY started_at, plan, vm",
      error);

  return stmt ? rows_array (db, stmt, names, error) : NULL;
}

/* ---- estimates ---- */

/* Members of an estimate file as read: another shape gives NULL or NAN
 * (json-glib's getters would complain of a missing one). */
static JsonNode *
member_of_type (JsonObject *object, const char *member, JsonNodeType type)
{
  JsonNode *node = object ? json_object_get_member (object, member) : NULL;

  return node && JSON_NODE_TYPE (node) == type ? node : NULL;
}

static JsonObject *
object_member (JsonObject *object, const char *member)
{
  JsonNode *node = member_of_type (object, member, JSON_NODE_OBJECT);

  return node ? json_node_get_object (node) : NULL;
}

static JsonArray *
array_member (JsonObject *object, const char *member)
{
  JsonNode *node = member_of_type (object, member, JSON_NODE_ARRAY);

  return node ? json_node_get_array (node) : NULL;
}

static const char *
string_member (JsonObject *object, const char *member)
{
  JsonNode *node = member_of_type (object, member, JSON_NODE_VALUE);

  return node && json_node_get_value_type (node) == G_TYPE_STRING
             ? json_node_get_string (node)
             : NULL;
}

static gboolean
is_number (JsonNode *node)
{
  GType type = node && JSON_NODE_HOLDS_VALUE (node)
                   ? json_node_get_value_type (node)
                   : G_TYPE_INVALID;

  return type == G_TYPE_DOUBLE || type == G_TYPE_INT64;
}

static double
real_member (JsonObject *object, const char *member)
{
  JsonNode *node = member_of_type (object, member, JSON_NODE_VALUE);

  return is_number (node) ? json_node_get_double (node) : NAN;
}

static gint64
count_member (JsonObject *object, const char *member)
{
  JsonNode *node = member_of_type (object, member, JSON_NODE_VALUE);

  return node && json_node_get_value_type (node) == G_TYPE_INT64
             ? json_node_get_int (node)
             : -1;
}

static gboolean
put_estimate_row (VmsDb *db, const char *id, JsonObject *estimate,
                  GError **error)
{
  JsonObject *link = object_member (estimate, "link");
  JsonObject *group = object_member (estimate, "group");
  g_autoptr (sqlite3_stmt) stmt = prepare (
      db,
      "INSERT INTO estimates (id, created, window_s, interval_s, rtt_s,"
      " throughput, connections, request_size, group_s)"
      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
      error);

  if (!stmt)
    return FALSE;
  bind_text (stmt, 1, id);
  sqlite3_bind_int64 (stmt, 2, MAX (count_member (estimate, "created"), 0));
  bind_count (stmt, 3, count_member (estimate, "window-seconds"));
  bind_count (stmt, 4, count_member (estimate, "interval-seconds"));
  bind_real (stmt, 5, real_member (link, "rtt-seconds"));
  bind_real (stmt, 6, real_member (link, "throughput"));
  bind_count (stmt, 7, count_member (link, "connections"));
  bind_count (stmt, 8, count_member (link, "request-size"));
  bind_real (stmt, 9, real_member (group, "total-seconds"));
  return run (db, stmt, error);
}

static gboolean
put_estimate_vm (VmsDb *db, const char *id, guint index, JsonObject *vm,
                 GError **error)
{
  JsonObject *prediction = object_member (vm, "prediction");
  g_autoptr (sqlite3_stmt) stmt = prepare (
      db,
      "INSERT INTO estimate_vms (estimate, idx, source, vm_name, vm_uuid,"
      " ram_size, ram_dirty_rate, throughput, total_pause_s, total_mirror_s,"
      " downtime_pause_s, downtime_mirror_s, method, final_sync)"
      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      error);

  if (!stmt)
    return FALSE;
  bind_text (stmt, 1, id);
  sqlite3_bind_int64 (stmt, 2, index);
  bind_text (stmt, 3, string_member (vm, "source"));
  bind_text (stmt, 4, string_member (vm, "vm-name"));
  bind_text (stmt, 5, string_member (vm, "vm-uuid"));
  bind_count (stmt, 6, count_member (vm, "ram-size"));
  bind_real (stmt, 7, real_member (vm, "ram-dirty-rate"));
  bind_real (stmt, 8, real_member (vm, "throughput"));
  bind_real (stmt, 9, real_member (prediction, "total-pause-seconds"));
  bind_real (stmt, 10, real_member (prediction, "total-mirror-seconds"));
  bind_real (stmt, 11, real_member (prediction, "downtime-pause-seconds"));
  bind_real (stmt, 12, real_member (prediction, "downtime-mirror-seconds"));
  bind_text (stmt, 13, string_member (prediction, "method"));
  bind_text (stmt, 14, string_member (prediction, "final-sync"));
  return run (db, stmt, error);
}

/* A disk's dirty samples: [seconds, dirty bytes, written bytes (when
 * QEMU said)] each; one of another shape is skipped. */
static gboolean
put_estimate_samples (VmsDb *db, const char *id, guint vm_index,
                      JsonObject *disk, GError **error)
{
  const char *name = string_member (disk, "name");
  JsonArray *samples = array_member (disk, "dirty-samples");
  g_autoptr (sqlite3_stmt) stmt = prepare (
      db,
      "INSERT OR REPLACE INTO estimate_samples (estimate, vm, disk, idx,"
      " seconds, dirty_bytes, written_bytes) VALUES (?, ?, ?, ?, ?, ?, ?)",
      error);

  if (!stmt)
    return FALSE;
  for (guint k = 0; name && samples && k < json_array_get_length (samples); k++)
    {
      JsonNode *node = json_array_get_element (samples, k);
      JsonArray *sample
          = JSON_NODE_HOLDS_ARRAY (node) ? json_node_get_array (node) : NULL;
      guint length = sample ? json_array_get_length (sample) : 0;

      if (length < 2 || !is_number (json_array_get_element (sample, 0))
          || !is_number (json_array_get_element (sample, 1)))
        continue;
      sqlite3_reset (stmt);
      bind_text (stmt, 1, id);
      sqlite3_bind_int64 (stmt, 2, vm_index);
      bind_text (stmt, 3, name);
      sqlite3_bind_int64 (stmt, 4, k);
      sqlite3_bind_double (stmt, 5, json_array_get_double_element (sample, 0));
      sqlite3_bind_int64 (stmt, 6, json_array_get_int_element (sample, 1));
      if (length > 2 && is_number (json_array_get_element (sample, 2)))
        sqlite3_bind_int64 (stmt, 7, json_array_get_int_element (sample, 2));
      else
        sqlite3_bind_null (stmt, 7);
      if (!run (db, stmt, error))
        return FALSE;
    }
  return TRUE;
}

static gboolean
delete_estimate (VmsDb *db, const char *id, GError **error)
{
  static const char *const deletes[]
      = { "DELETE FROM estimate_samples WHERE estimate = ?",
          "DELETE FROM estimate_vms WHERE estimate = ?",
          "DELETE FROM estimates WHERE id = ?" };

  for (guint i = 0; i < G_N_ELEMENTS (deletes); i++)
    {
      g_autoptr (sqlite3_stmt) stmt = prepare (db, deletes[i], error);

      if (!stmt)
        return FALSE;
      bind_text (stmt, 1, id);
      if (!run (db, stmt, error))
        return FALSE;
    }
  return TRUE;
}

static gboolean
put_estimate_locked (VmsDb *db, const char *id, JsonObject *estimate,
                     GError **error)
{
  JsonArray *vms = array_member (estimate, "vms");

  if (!delete_estimate (db, id, error)
      || !put_estimate_row (db, id, estimate, error))
    return FALSE;
  for (guint v = 0; vms && v < json_array_get_length (vms); v++)
    {
      JsonNode *node = json_array_get_element (vms, v);
      JsonObject *vm
          = JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
      JsonArray *disks = array_member (vm, "disks");

      if (!vm || !put_estimate_vm (db, id, v, vm, error))
        {
          if (!vm)
            g_set_error (error, VMS_DB_ERROR, VMS_DB_ERROR_FORMAT,
                         "estimate %s: VM %u is not an object", id, v);
          return FALSE;
        }
      for (guint d = 0; disks && d < json_array_get_length (disks); d++)
        {
          JsonNode *disk = json_array_get_element (disks, d);

          if (JSON_NODE_HOLDS_OBJECT (disk)
              && !put_estimate_samples (db, id, v, json_node_get_object (disk),
                                        error))
            return FALSE;
        }
    }
  return TRUE;
}

gboolean
vms_db_put_estimate (VmsDb *db, JsonObject *estimate, GError **error)
{
  const char *id = string_member (estimate, "id");

  if (!id || !*id)
    {
      g_set_error (error, VMS_DB_ERROR, VMS_DB_ERROR_FORMAT,
                   "an estimate without its id");
      return FALSE;
    }
  if (!exec (db, "BEGIN IMMEDIATE", error))
    return FALSE;
  if (!put_estimate_locked (db, id, estimate, error)
      || !exec (db, "COMMIT", error))
    {
      exec (db, "ROLLBACK", NULL);
      return FALSE;
    }
  return TRUE;
}

static const char *const estimate_names[] = { "id",
                                              "created",
                                              "window-seconds",
                                              "interval-seconds",
                                              "rtt-seconds",
                                              "throughput",
                                              "connections",
                                              "request-size",
                                              "group-seconds",
                                              NULL };

static const char *const estimate_vm_names[] = { "index",
                                                 "source",
                                                 "vm-name",
                                                 "vm-uuid",
                                                 "ram-size",
                                                 "ram-dirty-rate",
                                                 "throughput",
                                                 "total-pause-seconds",
                                                 "total-mirror-seconds",
                                                 "downtime-pause-seconds",
                                                 "downtime-mirror-seconds",
                                                 "method",
                                                 "final-sync",
                                                 NULL };

/* The VMs of estimate id, with their predictions. */
static JsonArray *
estimate_vms (VmsDb *db, const char *id, GError **error)
{
  g_autoptr (sqlite3_stmt) stmt = prepare (
      db,
      "SELECT idx, source, vm_name, vm_uuid, ram_size, ram_dirty_rate,"
      " throughput, total_pause_s, total_mirror_s, downtime_pause_s,"
      " downtime_mirror_s, method, final_sync FROM estimate_vms"
      " WHERE estimate = ? ORDER BY idx",
      error);

  if (!stmt)
    return NULL;
  bind_text (stmt, 1, id);
  return rows_array (db, stmt, estimate_vm_names, error);
}

/* Each estimate row of stmt, with its VMs. */
static JsonArray *
estimates_with_vms (VmsDb *db, sqlite3_stmt *stmt, GError **error)
{
  g_autoptr (JsonArray) estimates
      = rows_array (db, stmt, estimate_names, error);

  for (guint i = 0; estimates && i < json_array_get_length (estimates); i++)
    {
      JsonObject *estimate = json_array_get_object_element (estimates, i);
      JsonArray *vms = estimate_vms (
          db, json_object_get_string_member (estimate, "id"), error);

      if (!vms)
        return NULL;
      json_object_set_array_member (estimate, "vms", vms);
    }
  return g_steal_pointer (&estimates);
}

JsonArray *
vms_db_list_estimates (VmsDb *db, GError **error)
{
  g_autoptr (sqlite3_stmt) stmt
      = prepare (db,
                 "SELECT id, created, window_s, interval_s, rtt_s, throughput,"
                 " connections, request_size, group_s FROM estimates"
                 " ORDER BY created, id",
                 error);

  return stmt ? estimates_with_vms (db, stmt, error) : NULL;
}

/* The samples of VM vm_index of estimate id, by disk: [{name, samples:
 * [[seconds, dirty, written?]]}]. */
static JsonArray *
estimate_disks (VmsDb *db, const char *id, gint64 vm_index, GError **error)
{
  g_autoptr (sqlite3_stmt) stmt = prepare (
      db,
      "SELECT disk, seconds, dirty_bytes, written_bytes FROM estimate_samples"
      " WHERE estimate = ? AND vm = ? ORDER BY disk, idx",
      error);
  g_autoptr (JsonArray) disks = json_array_new ();
  JsonArray *samples = NULL;
  const char *last = NULL;
  int status;

  if (!stmt)
    return NULL;
  bind_text (stmt, 1, id);
  sqlite3_bind_int64 (stmt, 2, vm_index);
  while ((status = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      const char *disk = (const char *)sqlite3_column_text (stmt, 0);
      JsonArray *sample = json_array_new ();

      if (!last || g_strcmp0 (last, disk) != 0)
        {
          JsonObject *object = json_object_new ();

          json_object_set_string_member (object, "name", disk);
          samples = json_array_new ();
          json_object_set_array_member (object, "samples", samples);
          json_array_add_object_element (disks, object);
          last = json_object_get_string_member (object, "name");
        }
      json_array_add_double_element (sample, sqlite3_column_double (stmt, 1));
      json_array_add_int_element (sample, sqlite3_column_int64 (stmt, 2));
      if (sqlite3_column_type (stmt, 3) == SQLITE_INTEGER)
        json_array_add_int_element (sample, sqlite3_column_int64 (stmt, 3));
      json_array_add_array_element (samples, sample);
    }
  if (status != SQLITE_DONE)
    {
      fail (db, error, sqlite3_sql (stmt));
      return NULL;
    }
  return g_steal_pointer (&disks);
}

JsonObject *
vms_db_get_estimate (VmsDb *db, const char *id, GError **error)
{
  g_autoptr (sqlite3_stmt) stmt = prepare (
      db,
      "SELECT id, created, window_s, interval_s, rtt_s, throughput,"
      " connections, request_size, group_s FROM estimates WHERE id = ?",
      error);
  g_autoptr (JsonArray) found = NULL;
  JsonObject *estimate;
  JsonArray *vms;

  if (!stmt)
    return NULL;
  bind_text (stmt, 1, id);
  found = estimates_with_vms (db, stmt, error);
  if (!found || json_array_get_length (found) == 0)
    return NULL;
  estimate = json_array_get_object_element (found, 0);
  vms = json_object_get_array_member (estimate, "vms");
  for (guint v = 0; v < json_array_get_length (vms); v++)
    {
      JsonObject *vm = json_array_get_object_element (vms, v);
      JsonArray *disks = estimate_disks (
          db, id, json_object_get_int_member (vm, "index"), error);

      if (!disks)
        return NULL;
      json_object_set_array_member (vm, "disks", disks);
    }
  return json_object_ref (estimate);
}
