/* vmshift engine: one live migration of a VM with its disks, as an
 * object: a config in, events out through a callback, cancel through a
 * GCancellable.  Several can run in one process (groups, plans, a server).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "vms-estimate-model.h"
#include "vms-group.h"
#include "vms-job.h"
#include "vms-migrate-state.h"
#include "vms-progress.h"
#include "vms-replicate.h"

G_BEGIN_DECLS

#define VMS_MIGRATION_ERROR (vms_migration_error_quark ())
GQuark vms_migration_error_quark (void);

typedef enum
{
  VMS_MIGRATION_ERROR_INVALID,      /* the config asks for something wrong */
  VMS_MIGRATION_ERROR_PRECONDITION, /* a QEMU or domain is not as needed */
  VMS_MIGRATION_ERROR_MISMATCH,     /* the two ends do not match */
  VMS_MIGRATION_ERROR_FAILED,       /* QEMU's or libvirt's migration failed */
  VMS_MIGRATION_ERROR_MOVED,        /* the VM runs at the destination: it
                                       must not be rolled back */
  VMS_MIGRATION_ERROR_UNSAFE,       /* the source could not be brought back */
} VmsMigrationError;

/* The downtime objective for the whole pause, STOP to a running
 * destination. */
#define VMS_MIGRATION_DEFAULT_MAX_DOWNTIME_MS 100
/* From migrate-continue to a running destination; a TCG guest with
 * hundreds of MiB of RAM left to send can take this long. */
#define VMS_MIGRATION_DEFAULT_SWITCHOVER_TIMEOUT_S 300

/* The libvirt backend's part of the config, as virsh migrate names it. */
typedef struct
{
  char *connect_uri;        /* the source libvirt; NULL: QEMU over QMP */
  char *domain;             /* DOMAIN: name, UUID or id */
  char *dest_uri;           /* DESTURI: the destination libvirt */
  char *migrate_uri;        /* where memory goes */
  char *dname;              /* the domain's name at the destination */
  char *replica_dir;        /* the sink's directory there */
  gboolean p2p;             /* the source libvirtd talks to DESTURI */
  gboolean persistent;      /* define the domain at the destination */
  gboolean undefine_source; /* undefine it at the source */
  gboolean verbose;         /* report libvirt's progress at every tick */
  int timeout_s;            /* suspend the domain after S s, 0: never */
} VmsMigrationLibvirtConfig;

/* How QEMU compresses the RAM it sends (multifd-compression). */
typedef enum
{
  VMS_MEMORY_COMPRESS_NONE,
  VMS_MEMORY_COMPRESS_ZSTD,
} VmsMemoryCompress;

/* With compression and no --multifd: QEMU's own default channel count. */
#define VMS_MIGRATION_COMPRESS_CHANNELS 2

typedef struct
{
  VmsReplicateConfig copy;  /* the disks: sink, job, copy tuning */
  char *source;             /* QMP address; NULL: the resumed job's */
  gboolean mode_set;        /* mode was asked, not defaulted */
  VmsMigrateFinalSync mode; /* how the disks' last writes cross */
  char *dest_qmp;           /* the destination QEMU's monitor */
  char *dest_uri;           /* where memory goes (QMP backend) */
  char **dest_restart;      /* argv that starts the destination QEMU
                               again after it exited (QMP), or NULL */
  gboolean tls;             /* memory over TLS, with the sink's keys (QMP)
                               or libvirt's (VIR_MIGRATE_TLS) */
  gboolean insecure;        /* clear-text memory off loopback allowed */
  guint64 bandwidth;        /* bytes/s for RAM, 0: unlimited */
  int max_downtime_ms;      /* objective for the whole pause; QEMU's
                               downtime-limit is derived from it */
  int multifd_channels;     /* parallel RAM connections, 0: one */
  VmsMemoryCompress compress; /* RAM compressed by QEMU (needs multifd) */
  gboolean compress_set;      /* compress was asked, not defaulted: an
                                 estimate's recommendation does not
                                 override it */
  gboolean auto_converge;   /* let QEMU slow the guest's CPUs */
  int switchover_timeout_s; /* continue to a running destination */
  gboolean suspend;         /* leave the destination paused */
  int memory_timeout_s;     /* roll back if RAM takes longer, 0: wait
                               (VMS_MIGRATION_HOLD_TIMEOUT_S with
                               hold_on_miss) */
  gboolean hold_on_miss;    /* a downtime miss predicted before the
                               switchover holds it: QEMU's limit is not
                               raised past the objective, and a miss no
                               wait can clear rolls back (QMP) */
  char *estimate;           /* report against this estimate, or NULL */
  VmsGroup *group;          /* switch over with its other members (a
                               reference; the job's id is the member's
                               name), or NULL */
  VmsMigrationLibvirtConfig libvirt; /* connect_uri set: libvirt backend */
} VmsMigrationConfig;

/* How long a switchover held for a predicted miss waits for the memory
 * to fit, when --memory-timeout does not say. */
#define VMS_MIGRATION_HOLD_TIMEOUT_S 600

void vms_migration_config_init (VmsMigrationConfig *config);

/* QEMU's multifd channels for config: --multifd, or with --compress
 * VMS_MIGRATION_COMPRESS_CHANNELS; 0 without multifd. */
int vms_migration_multifd_channels (const VmsMigrationConfig *config);

/* RAM backpressure: QEMU's auto-converge, which slows the guest's vCPUs
 * while it dirties RAM about as fast as the link carries it.  Armed from
 * the start (QEMU 7.2 refuses to change a capability while a migration
 * runs) with --auto-converge, or by --write-backpressure auto (the
 * default) at a threshold that a RAM converging at a useful pace does
 * not reach: QEMU slows the guest after every second pass that dirtied
 * more than threshold % of what it sent (at 100 a RAM just below the
 * link would crawl to the end; the estimate's model uses the same). */
#define VMS_MIGRATION_QEMU_THROTTLE_THRESHOLD 50 /* QEMU's own default */
#define VMS_MIGRATION_AUTO_THROTTLE_THRESHOLD                                  \
  VMS_ESTIMATE_RAM_THROTTLE_THRESHOLD
gboolean vms_migration_ram_backpressure (const VmsMigrationConfig *config);
int vms_migration_ram_throttle_threshold (const VmsMigrationConfig *config);

/* "none" or "zstd": QEMU's and the option's name of a method. */
const char *vms_memory_compress_name (VmsMemoryCompress compress);

/* compress from the option's word; FALSE with a message naming the
 * methods for anything else. */
gboolean vms_memory_compress_parse (const char *word,
                                    VmsMemoryCompress *compress,
                                    GError **error);

/* Memory to dest_uri in clear text only where it stays on this host, or
 * with insecure: a VM's RAM holds its secrets.  A refusal is
 * VMS_MIGRATION_ERROR_INVALID naming --tls and --insecure. */
gboolean vms_migration_check_clear_text (const char *dest_uri, gboolean tls,
                                         gboolean insecure, GError **error);
void vms_migration_config_clear (VmsMigrationConfig *config);

/* Receives every event of a migration (state changes, rounds, progress,
 * the final "migrated" report); fields are borrowed. */
typedef void (*VmsMigrationEventFunc) (const char *event, JsonObject *fields,
                                       const char *text, gpointer user_data);

/* How a run ended. */
typedef enum
{
  VMS_MIGRATION_MIGRATED,    /* the destination runs; job committed */
  VMS_MIGRATION_ROLLED_BACK, /* failed before commit; the source runs */
  VMS_MIGRATION_STOPPED,     /* failed and not rolled back (the message
                                says what to do) */
} VmsMigrationOutcome;

typedef struct _VmsMigration VmsMigration;

/* config is taken (its contents moved out; clear it after). */
VmsMigration *vms_migration_new (VmsMigrationConfig *config,
                                 VmsMigrationEventFunc func,
                                 gpointer user_data);
void vms_migration_free (VmsMigration *migration);

/* Run it to the end: forward through the states, and on a failure before
 * the destination runs, roll back.  FALSE with error when it did not
 * migrate; vms_migration_get_outcome says what was left. */
gboolean vms_migration_run (VmsMigration *migration, GCancellable *cancellable,
                            GError **error);

/* Roll back the migration of a job whose vmshift died, from what its
 * state file says. */
gboolean vms_migration_roll_back_job (VmsMigration *migration, GError **error);

VmsMigrationOutcome vms_migration_get_outcome (VmsMigration *migration);
/* Why the rollback failed, when the outcome is STOPPED after one. */
const GError *vms_migration_get_rollback_error (VmsMigration *migration);
/* Why the job's state could not be saved after the run failed (its file
 * then holds an older state), or NULL. */
const GError *vms_migration_get_save_error (VmsMigration *migration);
/* The job, once opened (NULL before). */
VmsJob *vms_migration_get_job (VmsMigration *migration);
VmsMigrateState vms_migration_get_state (VmsMigration *migration);
/* QEMU's migration was started and failed: a QMP destination has exited. */
gboolean vms_migration_restart_destination (VmsMigration *migration);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsMigration, vms_migration_free)

G_END_DECLS
