/* vmshiftd: the database's estimates: an estimate file's tree in, its
 * VMs' predictions and samples out.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-db-internal.h"
#include "vms-json.h"

#include <math.h>

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
  g_autoptr (sqlite3_stmt) stmt = vms_db_prepare (
      db,
      "INSERT INTO estimates (id, created, window_s, interval_s, rtt_s,"
      " throughput, connections, request_size, group_s)"
      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
      error);

  if (!stmt)
    return FALSE;
  vms_db_bind_text (stmt, 1, id);
  sqlite3_bind_int64 (stmt, 2, MAX (count_member (estimate, "created"), 0));
  vms_db_bind_count (stmt, 3, count_member (estimate, "window-seconds"));
  vms_db_bind_count (stmt, 4, count_member (estimate, "interval-seconds"));
  vms_db_bind_real (stmt, 5, real_member (link, "rtt-seconds"));
  vms_db_bind_real (stmt, 6, real_member (link, "throughput"));
  vms_db_bind_count (stmt, 7, count_member (link, "connections"));
  vms_db_bind_count (stmt, 8, count_member (link, "request-size"));
  vms_db_bind_real (stmt, 9, real_member (group, "total-seconds"));
  return vms_db_run (db, stmt, error);
}

static gboolean
put_estimate_vm (VmsDb *db, const char *id, guint index, JsonObject *vm,
                 GError **error)
{
  JsonObject *prediction = object_member (vm, "prediction");
  g_autoptr (sqlite3_stmt) stmt = vms_db_prepare (
      db,
      "INSERT INTO estimate_vms (estimate, idx, source, vm_name, vm_uuid,"
      " ram_size, ram_dirty_rate, throughput, total_pause_s, total_mirror_s,"
      " downtime_pause_s, downtime_mirror_s, method, final_sync)"
      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      error);

  if (!stmt)
    return FALSE;
  vms_db_bind_text (stmt, 1, id);
  sqlite3_bind_int64 (stmt, 2, index);
  vms_db_bind_text (stmt, 3, vms_json_string_member (vm, "source"));
  vms_db_bind_text (stmt, 4, vms_json_string_member (vm, "vm-name"));
  vms_db_bind_text (stmt, 5, vms_json_string_member (vm, "vm-uuid"));
  vms_db_bind_count (stmt, 6, count_member (vm, "ram-size"));
  vms_db_bind_real (stmt, 7, real_member (vm, "ram-dirty-rate"));
  vms_db_bind_real (stmt, 8, real_member (vm, "throughput"));
  vms_db_bind_real (stmt, 9, real_member (prediction, "total-pause-seconds"));
  vms_db_bind_real (stmt, 10, real_member (prediction, "total-mirror-seconds"));
  vms_db_bind_real (stmt, 11,
                    real_member (prediction, "downtime-pause-seconds"));
  vms_db_bind_real (stmt, 12,
                    real_member (prediction, "downtime-mirror-seconds"));
  vms_db_bind_text (stmt, 13, vms_json_string_member (prediction, "method"));
  vms_db_bind_text (stmt, 14,
                    vms_json_string_member (prediction, "final-sync"));
  return vms_db_run (db, stmt, error);
}

/* A disk's dirty samples: [seconds, dirty bytes, written bytes (when
 * QEMU said)] each; one of another shape is skipped. */
static gboolean
put_estimate_samples (VmsDb *db, const char *id, guint vm_index,
                      JsonObject *disk, GError **error)
{
  const char *name = vms_json_string_member (disk, "name");
  JsonArray *samples = array_member (disk, "dirty-samples");
  g_autoptr (sqlite3_stmt) stmt = vms_db_prepare (
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
      vms_db_bind_text (stmt, 1, id);
      sqlite3_bind_int64 (stmt, 2, vm_index);
      vms_db_bind_text (stmt, 3, name);
      sqlite3_bind_int64 (stmt, 4, k);
      sqlite3_bind_double (stmt, 5, json_array_get_double_element (sample, 0));
      sqlite3_bind_int64 (stmt, 6, json_array_get_int_element (sample, 1));
      if (length > 2 && is_number (json_array_get_element (sample, 2)))
        sqlite3_bind_int64 (stmt, 7, json_array_get_int_element (sample, 2));
      else
        sqlite3_bind_null (stmt, 7);
      if (!vms_db_run (db, stmt, error))
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
      g_autoptr (sqlite3_stmt) stmt = vms_db_prepare (db, deletes[i], error);

      if (!stmt)
        return FALSE;
      vms_db_bind_text (stmt, 1, id);
      if (!vms_db_run (db, stmt, error))
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
  const char *id = vms_json_string_member (estimate, "id");

  if (!id || !*id)
    {
      g_set_error (error, VMS_DB_ERROR, VMS_DB_ERROR_FORMAT,
                   "an estimate without its id");
      return FALSE;
    }
  if (!vms_db_exec (db, "BEGIN IMMEDIATE", error))
    return FALSE;
  if (!put_estimate_locked (db, id, estimate, error)
      || !vms_db_exec (db, "COMMIT", error))
    {
      vms_db_exec (db, "ROLLBACK", NULL);
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
  g_autoptr (sqlite3_stmt) stmt = vms_db_prepare (
      db,
      "SELECT idx, source, vm_name, vm_uuid, ram_size, ram_dirty_rate,"
      " throughput, total_pause_s, total_mirror_s, downtime_pause_s,"
      " downtime_mirror_s, method, final_sync FROM estimate_vms"
      " WHERE estimate = ? ORDER BY idx",
      error);

  if (!stmt)
    return NULL;
  vms_db_bind_text (stmt, 1, id);
  return vms_db_rows_array (db, stmt, estimate_vm_names, error);
}

/* Each estimate row of stmt, with its VMs. */
static JsonArray *
estimates_with_vms (VmsDb *db, sqlite3_stmt *stmt, GError **error)
{
  g_autoptr (JsonArray) estimates
      = vms_db_rows_array (db, stmt, estimate_names, error);

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
  g_autoptr (sqlite3_stmt) stmt = vms_db_prepare (
      db,
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
  g_autoptr (sqlite3_stmt) stmt = vms_db_prepare (
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
  vms_db_bind_text (stmt, 1, id);
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
      vms_db_fail (db, error, sqlite3_sql (stmt));
      return NULL;
    }
  return g_steal_pointer (&disks);
}

JsonObject *
vms_db_get_estimate (VmsDb *db, const char *id, GError **error)
{
  g_autoptr (sqlite3_stmt) stmt = vms_db_prepare (
      db,
      "SELECT id, created, window_s, interval_s, rtt_s, throughput,"
      " connections, request_size, group_s FROM estimates WHERE id = ?",
      error);
  g_autoptr (JsonArray) found = NULL;
  JsonObject *estimate;
  JsonArray *vms;

  if (!stmt)
    return NULL;
  vms_db_bind_text (stmt, 1, id);
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
