/* vmshift engine: what the migration's phases ask of the outside world,
 * as two tables of operations (like nbdcopy's struct rw_ops).  The state
 * machine in vms-migration.c never asks which implementation it talks to.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * - VmsMigrationBackend: the hypervisor side, QEMU over QMP
 *   (vms-migration-qmp.c) or libvirt (vms-migration-libvirt.c);
 * - VmsMigrationDisks: the disks, copied to the sink through the source
 *   QEMU's NBD exports and mirror (vms-migration-disks.c).
 * Unit tests put fakes in both: the tables are the seam.
 */
#pragma once

#include "vms-config.h"
#include "vms-estimate-file.h"
#include "vms-migration.h"
#include "vms-downtime.h"
#include "vms-qmp.h"
#include "vms-replicate.h"
#include "vms-sink-client.h"

G_BEGIN_DECLS

typedef struct
{
  const char *name; /* "qmp", "libvirt" */
  /* The destination QEMU is ours: its events time the downtime, and it
   * exits when a migration fails (the user starts a new one). */
  gboolean owns_destination;
  /* Its wait_memory holds a group member at the group's meeting points
   * (vms-group.h); a backend that cannot is refused in a group. */
  gboolean joins_groups;
  /* Reach the source; sets migration->rep.qmp (the monitor the disk
   * operations use) and migration->source_name. */
  gboolean (*open) (VmsMigration *migration, GError **error);
  /* Reach the destination. */
  gboolean (*connect_destination) (VmsMigration *migration, GError **error);
  /* Refuse early what would fail late (run states, versions, names);
   * sets migration->source_was_running. */
  gboolean (*preflight) (VmsMigration *migration, GError **error);
  /* With the job open: the destination matches it; the backend's
   * settings are put in it for --resume (the engine saves it next). */
  gboolean (*check_job) (VmsMigration *migration, GError **error);
  /* Start the memory migration (sets migration->migration_started). */
  gboolean (*start_memory) (VmsMigration *migration, GError **error);
  /* Wait for it to hold the source paused before switchover, or, for a
   * backend that switches over by itself, to end. */
  gboolean (*wait_memory) (VmsMigration *migration, GError **error);
  /* After start_memory or wait_memory failed on a lost connection (the
   * source runs on, the disks are left as they are): make the backend
   * ready for start_memory again, or FALSE with an error that names
   * cause, says why no new attempt can be made, and what to do.  NULL:
   * the backend never retries. */
  gboolean (*prepare_memory_retry) (VmsMigration *migration,
                                    const GError *cause, GError **error);
  /* Release a source held before switchover; NULL for a backend that
   * switches over by itself (then the engine has nothing to do there). */
  gboolean (*continue_switchover) (VmsMigration *migration, GError **error);
  /* Wait for the destination to run the VM. */
  gboolean (*wait_destination) (VmsMigration *migration, GError **error);
  /* The destination runs the VM (or holds it paused with --suspend). */
  gboolean (*destination_runs) (VmsMigration *migration);
  /* On resume: the VM moved already (source done, destination runs), so
   * only the commit is left. */
  gboolean (*moved_already) (VmsMigration *migration);
  /* The source still has the VM (QEMU alive, domain active). */
  gboolean (*source_active) (VmsMigration *migration);
  /* The same for a rollback: FALSE with an error saying what to check. */
  gboolean (*check_source) (VmsMigration *migration, GError **error);
  /* Reach the source (and, if it can be, the destination) of the job in
   * migration->rep.job, whose vmshift died, to roll it back. */
  gboolean (*open_for_rollback) (VmsMigration *migration, GError **error);
  /* Rollback: cancel the memory migration; with check_destination, one
   * that completed must be looked at (never run the VM twice). */
  gboolean (*cancel) (VmsMigration *migration, gboolean check_destination,
                      GError **error);
  /* Rollback: the source VM runs again if it ran before. */
  gboolean (*resume_source) (VmsMigration *migration, GError **error);
  /* Forget the backend's state. */
  void (*free) (VmsMigration *migration);
} VmsMigrationBackend;

typedef struct
{
  /* A new job, or the resumed one, for the source's disks. */
  gboolean (*open_job) (VmsMigration *migration, GError **error);
  /* Exports of the source and replicas at the sink ready. */
  gboolean (*start) (VmsMigration *migration, GError **error);
  gboolean (*background) (VmsMigration *migration, GError **error);
  gboolean (*rounds) (VmsMigration *migration, GError **error);
  /* One more round, run while the guest cannot write (or behind the
   * mirror): the replicas equal the disks. */
  gboolean (*final_round) (VmsMigration *migration, GError **error);
  /* The write-blocking mirror of every disk to the sink. */
  gboolean (*start_mirror) (VmsMigration *migration, GError **error);
  gboolean (*check_mirror) (VmsMigration *migration, GError **error);
  gboolean (*stop_mirror) (VmsMigration *migration, GError **error);
  /* FLUSH every replica. */
  gboolean (*flush) (VmsMigration *migration, GError **error);
  /* The sink forgets what the mirror wrote: plain writes win again. */
  gboolean (*forget_live) (VmsMigration *migration, GError **error);
  /* The mirror's switchover prepared while the VM runs (optional; a
   * failure only costs time later, and says so). */
  void (*prepare_handover) (VmsMigration *migration);
  /* flush, then forget_live, in the fewest round trips (optional: NULL
   * calls those two). */
  gboolean (*handover) (VmsMigration *migration, GError **error);
  /* Mark every replica complete. */
  gboolean (*commit) (VmsMigration *migration, GError **error);
  /* The source's NBD server goes. */
  void (*stop_exports) (VmsMigration *migration);
  /* Bitmaps go (those QEMU still has, unless the source is gone). */
  void (*drop_bitmaps) (VmsMigration *migration, gboolean source_gone);
} VmsMigrationDisks;

struct _VmsMigration
{
  VmsMigrationConfig config;          /* what was asked */
  const VmsMigrationBackend *backend; /* QMP or libvirt */
  gpointer backend_data;              /* the backend's own state */
  const VmsMigrationDisks *disks;     /* the disk operations */
  gpointer disks_data;                /* theirs (a fake's) */
  VmsProgress *progress;              /* events out, to func */
  VmsMigrationEventFunc func;         /* the caller's event sink */
  gpointer user_data;                 /* for func */
  GCancellable *cancellable;          /* of the run; borrowed */
  VmsReplicate rep;                   /* the disk side: job, source QMP */
  char *source_name;                  /* what the job records as source */
  VmsMigrateFinalSync mode;           /* how the disks' last writes cross */
  VmsMigrateState state;              /* where the orchestration stands */
  VmsMigrationOutcome outcome;        /* how the run ended */
  GError *rollback_error;             /* why a rollback failed */
  GError *save_error;                 /* why the state after a failure was
                                         not saved */
  gint64 started_us;                  /* monotonic start */
  VmsDowntime downtime;               /* the switchover's moments, the
                                         objective */
  char *final_sync_reason;            /* why this final sync, for the
                                         report */
  VmsSinkHandover *handover;          /* the mirror's switchover, prepared
                                         (or done: closed with the
                                         migration) */
  gint64 written_at_us;               /* monotonic time of written_bytes */
  gint64 written_bytes;               /* the guest's writes to the job's
                                         disks then, -1: not known */
  double write_bytes_rate;            /* bytes/s the guest itself wrote
                                         (what a mirror sends), -1 */
  guint64 guest_ram;                  /* bytes, from the preflight; 0:
                                         QEMU did not say */
  int network_ms;                     /* what the RAM stream may still have
                                         queued in a network at the
                                         switchover, 0 over a unix socket */
  int final_steps_ms;                 /* vmshift's expected part of the
                                         pause (the final round, or the
                                         mirror's handover) */
  gboolean source_opened;             /* backend->open succeeded */
  gboolean source_was_running;        /* to resume it on rollback */
  gboolean migration_started;         /* memory migration was started */
  guint memory_attempts;              /* memory migrations this run
                                         started (retries after lost
                                         connections), 0: none yet */
  guint64 ram_bytes;                  /* RAM sent */
  gint64 qemu_downtime_ms;            /* QEMU's own downtime figure */
  guint64 last_sync_count;            /* RAM rounds already reported */
  guint64 ram_throttle_percent;       /* the most auto-converge slowed the
                                         guest's vCPUs, 0: never */
  char *tls_object;                   /* the mirror's tls-creds object */
  VmsJob *saved_job;                  /* the job --resume names, as saved;
                                         NULL once opened */
  int stopped_in;                     /* state the resumed job stopped in,
                                         -1: none */
  VmsPrediction prediction;           /* from config.estimate */
  gboolean predicted;                 /* prediction holds one */
  gboolean prediction_same_bits;      /* every disk has the granularity
                                         the estimate observed it with */
  int miss_predicted_ms;              /* the highest downtime predicted
                                         above the objective, 0: none */
};

/* Settle the final sync (auto: by the rates the rounds measured and the
 * downtime objective), with the reason for the report, and what vmshift's
 * steps are expected to take of the pause. */
void vms_migration_choose_final_sync (VmsMigration *migration);

/* Sample the bytes the guest wrote to the job's disks; from the second
 * sample on, write_bytes_rate is their rate since the first. */
void vms_migration_sample_writes (VmsMigration *migration);

/* For VmsReplicate.more_rounds: FALSE once auto foresees mirror. */
gboolean vms_migration_more_rounds (gpointer data);

/* The guest's RAM in bytes, 0 when QEMU does not say. */
guint64 vms_migration_guest_ram (VmsMigration *migration);

/* QEMU's downtime-limit: the objective less what the rest of the pause
 * is expected to take. */
int vms_migration_qemu_downtime_limit (VmsMigration *migration);

/* The implementations. */
extern const VmsMigrationBackend vms_migration_qmp_backend;
extern const VmsMigrationDisks vms_migration_replicate_disks;

/* The libvirt backend, or NULL in a build without libvirt. */
const VmsMigrationBackend *vms_migration_libvirt_backend (void);
/* Set up a migration on explicit tables (unit tests, other backends). */
VmsMigration *vms_migration_new_full (VmsMigrationConfig *config,
                                      const VmsMigrationBackend *backend,
                                      const VmsMigrationDisks *disks,
                                      gpointer disks_data,
                                      VmsMigrationEventFunc func,
                                      gpointer user_data);

/* The libvirt backend when the config or the saved job (saved_job) asks
 * for it; the table is chosen once, here. */
gboolean vms_migration_choose_backend (VmsMigration *migration, GError **error);

/* Move to state to, record it durably, and say so. */
gboolean vms_migration_move_to (VmsMigration *migration, VmsMigrateState to,
                                GError **error);

/* Undo what the state reached needs undone (vms-migration-rollback.c);
 * FALSE if the source could not be brought back: the state stays
 * ROLLBACK, so that the rollback is done again later. */
gboolean vms_migration_roll_back (VmsMigration *migration, const GError *cause,
                                  GError **error);

/* The memory phase: start the backend's memory migration and wait for
 * it, again after a lost connection within --retry-timeout
 * (vms-migration-memory.c). */
gboolean vms_migration_memory (VmsMigration *migration, GError **error);

/* error says the memory stream's connection was lost (reset, broken
 * pipe), or, when retrying, that a new one could not be made. */
gboolean vms_migration_memory_link_lost (const GError *error,
                                         gboolean retrying);

/* Before the switchover: the pause is predicted to take predicted_ms,
 * above the objective, because of why.  Said as a
 * "downtime-miss-predicted" event whenever the prediction grows. */
void vms_migration_predict_miss (VmsMigration *migration, int predicted_ms,
                                 const char *why);

/* QEMU's limit is limit_ms: a miss predicted if the rest of the pause
 * leaves it no room within the objective. */
void vms_migration_check_limit (VmsMigration *migration, int limit_ms,
                                const char *why);

/* A group member's event (group-ready, group-released), with the
 * group's name and text. */
void vms_migration_report_group (VmsMigration *migration, const char *event,
                                 const char *text);

/* The "migrated" event (vms-migration-report.c). */
void vms_migration_report (VmsMigration *migration);

/* For the backends: a stop was asked. */
gboolean vms_migration_stop_requested (VmsMigration *migration, GError **error);

G_END_DECLS
