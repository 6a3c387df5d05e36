/* vmshiftd: its state and statistics database, one SQLite file in WAL
 * mode: jobs, the events the daemon published, estimates with their
 * samples, and each plan migration's predicted against actual time and
 * downtime.  The state directory's files stay the truth (a job resumes
 * from its job file); this is their index and history, rebuilt from them
 * when lost (vms-db-rebuild.h).  The schema's version is SQLite's
 * user_version, raised by ordered migration steps.  One thread only.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define VMS_DB_ERROR (vms_db_error_quark ())
GQuark vms_db_error_quark (void);

typedef enum
{
  VMS_DB_ERROR_OPEN,   /* the file cannot be opened or is not a database */
  VMS_DB_ERROR_NEWER,  /* a newer vmshiftd's schema: not ours to touch */
  VMS_DB_ERROR_SQL,    /* a statement failed */
  VMS_DB_ERROR_FORMAT, /* an estimate that is not in the file format */
} VmsDbError;

/* The schema this code writes (PRAGMA user_version). */
#define VMS_DB_SCHEMA_VERSION 2

/* Events kept by default: a long-lived daemon's file stays bounded. */
#define VMS_DB_MAX_EVENTS 100000

typedef struct _VmsDb VmsDb;

/* A job as its file holds it: strings may be NULL; numbers below 0 are
 * unknown. */
typedef struct
{
  const char *id;              /* job id, the file's name */
  const char *vm_name;         /* the VM's name, "" when unnamed */
  const char *phase;           /* vms_job_phase_name */
  const char *plan;            /* the plan that runs it, or NULL */
  const char *migration_state; /* the orchestration state reached */
  const char *estimate;        /* the estimate it was reported against */
  const char *last_error;      /* why its last attempt rolled back */
  gint64 created;              /* seconds since the epoch */
  gint64 updated;              /* its file's last save, likewise */
  gint64 bytes_written;        /* sent to the sink, every disk, all runs */
  gint64 attempts;             /* migrate runs on it */
  gint64 downtime_ms;          /* its migration's measured downtime */
} VmsDbJob;

/* A plan's migration of one VM, from its ledger: its last attempt.
 * Doubles that are NAN and integers below 0 are unknown. */
typedef struct
{
  const char *plan;             /* the plan's name */
  const char *vm;               /* the VM's name in it (its job's id) */
  const char *outcome;          /* "running", "migrated", "failed"... */
  gint64 attempt;               /* which attempt of the plan's runs */
  gint64 started_at;            /* seconds since the epoch */
  gint64 ended_at;              /* likewise */
  double predicted_seconds;     /* the estimate's whole migration */
  gint64 predicted_downtime_ms; /* the estimate's downtime */
  gint64 foreseen_downtime_ms;  /* a miss foreseen before the switchover */
  double seconds;               /* measured: the whole migration */
  gint64 downtime_ms;           /* measured downtime */
  gint64 max_downtime_ms;       /* the objective */
} VmsDbMigration;

/* path, made with the newest schema or upgraded to it.  A file of a
 * newer schema is refused (VMS_DB_ERROR_NEWER). */
VmsDb *vms_db_open (const char *path, GError **error);
void vms_db_free (VmsDb *db);

/* The schema version of the open file. */
int vms_db_schema_version (VmsDb *db);

/* Events kept at most (the oldest go first); 0 keeps none. */
void vms_db_set_max_events (VmsDb *db, guint max_events);

/* Jobs, rows replaced by id; an unknown plan or downtime keeps the
 * row's (a job file holds neither). */
gboolean vms_db_put_job (VmsDb *db, const VmsDbJob *job, GError **error);
gint64 vms_db_count_jobs (VmsDb *db, GError **error);
/* Every job (caller unrefs): objects with the API's member names. */
JsonArray *vms_db_list_jobs (VmsDb *db, GError **error);

/* One event as published (json: its whole object as text); the oldest
 * beyond the bound are dropped.  Returns its sequence number, or 0 on
 * error. */
gint64 vms_db_add_event (VmsDb *db, gint64 time_us, const char *plan,
                         const char *vm, const char *event, const char *json,
                         GError **error);
/* At most limit events with a sequence number above since, oldest
 * first: {seq, time-us, plan, vm, event, data} (caller unrefs). */
JsonArray *vms_db_list_events (VmsDb *db, gint64 since, guint limit,
                               GError **error);

/* An estimate, its file's contents (vms_estimate_file_to_json's tree),
 * with its VMs' predictions and every dirty sample; replaces one of the
 * same id. */
gboolean vms_db_put_estimate (VmsDb *db, JsonObject *estimate, GError **error);
/* Every estimate with its VMs' predictions (caller unrefs). */
JsonArray *vms_db_list_estimates (VmsDb *db, GError **error);
/* One, with its disks' samples too; NULL without error when there is
 * none (caller unrefs). */
JsonObject *vms_db_get_estimate (VmsDb *db, const char *id, GError **error);

/* A migration, replaced by (plan, vm). */
gboolean vms_db_put_migration (VmsDb *db, const VmsDbMigration *migration,
                               GError **error);
/* Every migration, predicted against actual (caller unrefs). */
JsonArray *vms_db_list_migrations (VmsDb *db, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsDb, vms_db_free)

G_END_DECLS
