/* vmshiftd: the database filled from the state directory's files.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-db-rebuild.h"
#include "vms-job.h"
#include "vms-plan-ledger.h"
#include "vms-plan.h"

#include <glib/gstdio.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define ESTIMATE_PREFIX "estimate-"
#define LEDGER_PREFIX "plan-"
/* A ledger's name ends with 8 hex digits of its plan's path's digest
 * (vms-plan-ledger.c). */
#define LEDGER_DIGEST_LENGTH 8

/* What the ledgers say of a job (a plan's job is named after its VM):
 * the latest plan that ran it, and its downtime. */
typedef struct
{
  char *plan;         /* the plan's name */
  gint64 started_at;  /* its attempt's start, seconds since the epoch */
  gint64 downtime_ms; /* measured, or -1 */
} LedgerEntry;

static void
ledger_entry_free (gpointer data)
{
  LedgerEntry *entry = data;

  g_free (entry->plan);
  g_free (entry);
}

static void
note_job (GHashTable *jobs_plan, const VmsDbMigration *migration)
{
  LedgerEntry *entry = g_hash_table_lookup (jobs_plan, migration->vm);

  if (entry && entry->started_at > migration->started_at)
    return;
  entry = g_new0 (LedgerEntry, 1);
  entry->plan = g_strdup (migration->plan);
  entry->started_at = migration->started_at;
  entry->downtime_ms = migration->downtime_ms;
  g_hash_table_replace (jobs_plan, g_strdup (migration->vm), entry);
}

static void
say_skipped (const char *path, const GError *error)
{
  fprintf (stderr, "vmshiftd: database: %s skipped: %s\n", path,
           error->message);
}

static gboolean
put_job (VmsDb *db, const VmsJob *job, const char *plan, gint64 downtime_ms,
         GError **error)
{
  VmsDbJob row = { .id = job->id,
                   .vm_name = job->vm_name,
                   .phase = vms_job_phase_name (job->phase),
                   .plan = plan,
                   .created = job->created,
                   .updated = job->updated,
                   .attempts = -1,
                   .downtime_ms = downtime_ms };

  for (guint i = 0; i < job->disks->len; i++)
    row.bytes_written += ((VmsJobDisk *)job->disks->pdata[i])->bytes_written;
  if (job->migration)
    {
      row.migration_state = job->migration->state;
      row.estimate = job->migration->estimate;
      row.last_error = job->migration->last_error;
      row.attempts = job->migration->attempts;
    }
  return vms_db_put_job (db, &row, error);
}

gboolean
vms_db_rebuild_job (VmsDb *db, const char *state_dir, const char *id,
                    const char *plan, GError **error)
{
  g_autoptr (VmsJob) job = NULL;

  if (!vms_job_id_is_valid (id, NULL))
    return TRUE;
  job = vms_job_load (state_dir, id, NULL);
  return !job || put_job (db, job, plan, -1, error);
}

/* What a ledger holds of vm (vms-plan-ledger.h) as a row. */
static void
migration_of (JsonObject *record, const char *plan, const char *vm,
              VmsDbMigration *out)
{
  *out = (VmsDbMigration){
    .plan = plan,
    .vm = vm,
    .outcome
    = json_object_get_string_member_with_default (record, "outcome", NULL),
    .attempt = json_object_get_int_member_with_default (record, "attempt", -1),
    .started_at
    = json_object_get_int_member_with_default (record, "started-at", -1),
    .ended_at
    = json_object_get_int_member_with_default (record, "ended-at", -1),
    .predicted_seconds = json_object_get_double_member_with_default (
        record, "estimated-seconds", NAN),
    .predicted_downtime_ms = json_object_get_int_member_with_default (
        record, "estimated-downtime-ms", -1),
    .foreseen_downtime_ms = json_object_get_int_member_with_default (
        record, "predicted-downtime-ms", -1),
    .seconds
    = json_object_get_double_member_with_default (record, "seconds", NAN),
    .downtime_ms
    = json_object_get_int_member_with_default (record, "downtime-ms", -1),
    .max_downtime_ms
    = json_object_get_int_member_with_default (record, "max-downtime-ms", -1),
  };
}

/* The ledger at path's VMs, as migrations of plan; jobs_plan gets each
 * VM's plan and downtime (its job is named after it). */
static gboolean
put_ledger (VmsDb *db, const char *path, const char *plan,
            GHashTable *jobs_plan, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) read_error = NULL;
  g_autoptr (GList) members = NULL;
  JsonNode *root, *vms;

  if (!json_parser_load_from_file (parser, path, &read_error))
    {
      say_skipped (path, read_error);
      return TRUE;
    }
  root = json_parser_get_root (parser);
  vms = JSON_NODE_HOLDS_OBJECT (root)
            ? json_object_get_member (json_node_get_object (root), "vms")
            : NULL;
  if (!vms || !JSON_NODE_HOLDS_OBJECT (vms))
    return TRUE;
  members = json_object_get_members (json_node_get_object (vms));
  for (GList *l = members; l; l = l->next)
    {
      JsonNode *node
          = json_object_get_member (json_node_get_object (vms), l->data);
      VmsDbMigration migration;

      if (!JSON_NODE_HOLDS_OBJECT (node))
        continue;
      migration_of (json_node_get_object (node), plan, l->data, &migration);
      if (!vms_db_put_migration (db, &migration, error))
        return FALSE;
      note_job (jobs_plan, &migration);
    }
  return TRUE;
}

/* The plan's name in a ledger's file name, plan-BASE-DIGEST.json, BASE
 * being the plan file's name: without ".plan" (caller frees), or
 * NULL. */
static char *
ledger_plan_name (const char *file)
{
  gsize length = strlen (file);
  gsize tail = 1 + LEDGER_DIGEST_LENGTH + strlen (".json");
  char *base;

  if (!g_str_has_prefix (file, LEDGER_PREFIX)
      || length <= strlen (LEDGER_PREFIX) + tail || file[length - tail] != '-')
    return NULL;
  base = g_strndup (file + strlen (LEDGER_PREFIX),
                    length - strlen (LEDGER_PREFIX) - tail);
  if (g_str_has_suffix (base, ".plan") && strlen (base) > strlen (".plan"))
    base[strlen (base) - strlen (".plan")] = '\0';
  return base;
}

static gboolean
put_estimate_file (VmsDb *db, const char *path, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) read_error = NULL;
  JsonNode *root;

  if (!json_parser_load_from_file (parser, path, &read_error))
    {
      say_skipped (path, read_error);
      return TRUE;
    }
  root = json_parser_get_root (parser);
  if (!JSON_NODE_HOLDS_OBJECT (root)
      || !vms_db_put_estimate (db, json_node_get_object (root), &read_error))
    {
      if (read_error && read_error->domain == VMS_DB_ERROR
          && read_error->code == VMS_DB_ERROR_SQL)
        {
          g_propagate_error (error, g_steal_pointer (&read_error));
          return FALSE;
        }
      if (read_error)
        say_skipped (path, read_error);
    }
  return TRUE;
}

/* Whether the file at path was modified at since_ns or later (0: any
 * file). */
static gboolean
changed_since (const char *path, gint64 since_ns)
{
  GStatBuf st;

  if (since_ns <= 0)
    return TRUE;
  return g_stat (path, &st) == 0
         && st.st_mtim.tv_sec * G_GINT64_CONSTANT (1000000000)
                    + st.st_mtim.tv_nsec
                >= since_ns;
}

/* Ledgers and estimates first: a job's row takes its plan and downtime
 * from its plan's ledger. */
static gboolean
put_ledgers_and_estimates (VmsDb *db, const char *state_dir, GDir *dir,
                           gint64 since_ns, GHashTable *jobs_plan,
                           GError **error)
{
  for (const char *file; (file = g_dir_read_name (dir));)
    {
      g_autofree char *path = g_build_filename (state_dir, file, NULL);
      g_autofree char *plan = ledger_plan_name (file);

      if (!g_str_has_suffix (file, ".json") || !changed_since (path, since_ns))
        continue;
      if (plan && !put_ledger (db, path, plan, jobs_plan, error))
        return FALSE;
      if (g_str_has_prefix (file, ESTIMATE_PREFIX)
          && !put_estimate_file (db, path, error))
        return FALSE;
    }
  return TRUE;
}

/* The jobs changed since since_ns, and those a ledger read names. */
static gboolean
put_jobs (VmsDb *db, const char *state_dir, GDir *dir, gint64 since_ns,
          GHashTable *jobs_plan, GError **error)
{
  for (const char *file; (file = g_dir_read_name (dir));)
    {
      g_autofree char *id = NULL;
      g_autofree char *path = g_build_filename (state_dir, file, NULL);
      g_autoptr (VmsJob) job = NULL;
      LedgerEntry *known;

      if (!g_str_has_suffix (file, ".json"))
        continue;
      id = g_strndup (file, strlen (file) - strlen (".json"));
      known = g_hash_table_lookup (jobs_plan, id);
      /* Estimates and ledgers are not jobs: their loading fails. */
      if (!vms_job_id_is_valid (id, NULL)
          || (!known && !changed_since (path, since_ns))
          || !(job = vms_job_load (state_dir, id, NULL)))
        continue;
      if (!put_job (db, job, known ? known->plan : NULL,
                    known ? known->downtime_ms : -1, error))
        return FALSE;
    }
  return TRUE;
}

gboolean
vms_db_rebuild (VmsDb *db, const char *state_dir, GError **error)
{
  return vms_db_rebuild_changed (db, state_dir, 0, error);
}

gboolean
vms_db_rebuild_changed (VmsDb *db, const char *state_dir, gint64 since_ns,
                        GError **error)
{
  g_autoptr (GError) open_error = NULL;
  g_autoptr (GDir) dir = g_dir_open (state_dir, 0, &open_error);
  g_autoptr (GHashTable) jobs_plan = g_hash_table_new_full (
      g_str_hash, g_str_equal, g_free, ledger_entry_free);

  if (!dir)
    {
      g_set_error (error, VMS_DB_ERROR, VMS_DB_ERROR_OPEN,
                   "cannot read the state directory: %s", open_error->message);
      return FALSE;
    }
  if (!put_ledgers_and_estimates (db, state_dir, dir, since_ns, jobs_plan,
                                  error))
    return FALSE;
  g_dir_rewind (dir);
  return put_jobs (db, state_dir, dir, since_ns, jobs_plan, error);
}

/* One VM of a plan from its ledger record: its migration, and its
 * job's plan and downtime. */
static gboolean
put_plan_vm (VmsDb *db, const char *state_dir, const char *plan,
             VmsPlanLedger *ledger, const char *vm, GError **error)
{
  JsonObject *record = vms_plan_ledger_vm (ledger, vm);
  VmsDbMigration migration;
  g_autoptr (VmsJob) job = NULL;

  if (!record)
    return TRUE;
  migration_of (record, plan, vm, &migration);
  if (!vms_db_put_migration (db, &migration, error))
    return FALSE;
  job = vms_job_id_is_valid (vm, NULL) ? vms_job_load (state_dir, vm, NULL)
                                       : NULL;
  return !job || put_job (db, job, plan, migration.downtime_ms, error);
}

gboolean
vms_db_rebuild_plan (VmsDb *db, const char *state_dir, const char *plan,
                     GError **error)
{
  g_autofree char *file = g_strconcat (plan, ".plan", NULL);
  g_autofree char *plan_path
      = g_build_filename (state_dir, "plans", file, NULL);
  g_autoptr (GError) read_error = NULL;
  g_autoptr (VmsPlan) loaded = NULL;
  g_autoptr (VmsPlanLedger) ledger = NULL;

  if (!vms_job_id_is_valid (plan, NULL))
    return TRUE;
  loaded = vms_plan_load (plan_path, &read_error);
  if (loaded)
    ledger = vms_plan_ledger_open (state_dir, plan_path, &read_error);
  if (!ledger)
    {
      say_skipped (plan_path, read_error);
      return TRUE;
    }
  for (guint i = 0; i < loaded->vms->len; i++)
    {
      const VmsPlanVm *vm = loaded->vms->pdata[i];

      if (!put_plan_vm (db, state_dir, plan, ledger, vm->name, error))
        return FALSE;
    }
  return TRUE;
}
