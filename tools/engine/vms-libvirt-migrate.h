/* vmshift: the libvirt side of vmshift migrate --connect: the domain, its
 * disks, and libvirt's own migration of it once the disks are in sync.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

#include "vms-job.h"
#include "vms-libvirt.h"
#include "vms-progress.h"

G_BEGIN_DECLS

/* Where vmshift-sink keeps replicas unless told otherwise; the
 * destination's hook may point the disks elsewhere. */
#define VMS_LIBVIRT_DEFAULT_REPLICA_DIR "/var/lib/vmshift/replicas"

typedef struct
{
  /* What the user asked (virsh's names where they mean the same). */
  char *connect_uri;        /* --connect: the source libvirt */
  char *domain_name;        /* DOMAIN */
  char *dest_uri;           /* DESTURI: the destination libvirt */
  char *migrate_uri;        /* --migrateuri: where memory goes */
  char *dname;              /* --dname: the domain's name at the destination */
  char *replica_dir;        /* --replica-dir: the sink's directory there */
  gboolean p2p;             /* --p2p: the source libvirtd talks to the
                               destination itself */
  gboolean persistent;      /* --persistent */
  gboolean undefine_source; /* --undefinesource */
  gboolean verbose;         /* --verbose: progress of libvirt's job */
  int timeout_s;            /* --timeout: suspend the domain after S s */
  gboolean suspend;         /* --suspend: leave it paused at the destination */
  gboolean tls;             /* --tls: memory over libvirt's TLS */
  gboolean auto_converge;
  int parallel;      /* --multifd N: parallel connections */
  guint64 bandwidth; /* bytes/s, 0: none */
  int max_downtime_ms;

  /* What was found. */
  virConnectPtr source;
  virConnectPtr destination; /* NULL with --p2p when not reachable */
  virDomainPtr domain;
  char **disk_aliases;      /* QEMU device ids of the disks to copy */
  GHashTable *disk_targets; /* alias -> target ("virtio-disk0" -> "vda") */
  gboolean was_running;     /* to resume it on rollback */

  /* libvirt's migration, run in a thread of its own. */
  GThread *thread;
  gint finished;      /* the thread is done */
  gboolean succeeded; /* it migrated */
  GError *failure;    /* why not */
  gint64 started_us;
  gboolean suspended_on_timeout;
  /* The source QEMU's last migration before this call's (query-migrate's
   * RAM sent and time), to tell its error from an earlier call's. */
  guint64 before_ram_transferred;
  gint64 before_total_time_ms;

  /* Figures from libvirt's completed job, set by its event. */
  GMutex figures_lock;
  GCond figures_cond;
  int job_callback;       /* JOB_COMPLETED registration, -1: none */
  gboolean job_completed; /* the event came */
  gint64 downtime_ms;     /* -1 until known */
  guint64 memory_bytes;
  gint64 elapsed_ms;
} VmsLibvirtMigration;

VmsLibvirtMigration *vms_libvirt_migration_new (void);
/* Cancels a migration this process runs, and frees. */
void vms_libvirt_migration_free (VmsLibvirtMigration *migration);

/* Connect to the source, find the running domain and the disks to copy;
 * refuse, naming the disk, what cannot be moved. */
gboolean vms_libvirt_migration_open (VmsLibvirtMigration *migration,
                                     GError **error);

/* The destination libvirt, for the checks before and after.  With --p2p
 * an unreachable one is only a warning: the source libvirtd reaches it. */
gboolean
vms_libvirt_migration_connect_destination (VmsLibvirtMigration *migration,
                                           GError **error);

/* Refuse early what libvirt would refuse late: a domain of that name
 * already running at the destination, the same host at both ends. */
gboolean vms_libvirt_migration_preflight (VmsLibvirtMigration *migration,
                                          GError **error);

/* The virDomainMigrate flags of what the user asked (--tls:
 * VIR_MIGRATE_TLS). */
unsigned int vms_libvirt_migration_flags (const VmsLibvirtMigration *migration);

/* Start libvirt's live migration with the destination XML pointing every
 * copied disk at its replica. */
gboolean vms_libvirt_migration_start (VmsLibvirtMigration *migration,
                                      VmsJob *job, GError **error);

/* Once per tick while it runs: progress, --timeout.  TRUE with
 * *finished when it ended (then migration->succeeded says how). */
gboolean vms_libvirt_migration_poll (VmsLibvirtMigration *migration,
                                     VmsProgress *progress, gboolean *finished,
                                     GError **error);

/* QEMU's downtime limit, while libvirt's migration runs or before. */
gboolean vms_libvirt_migration_set_max_downtime (VmsLibvirtMigration *migration,
                                                 int limit_ms, GError **error);

/* Ask libvirt to cancel a migration that runs, and wait for the thread;
 * migration->succeeded then says whether it completed all the same. */
void vms_libvirt_migration_abort (VmsLibvirtMigration *migration);

/* The domain runs at the destination (or, with --suspend, is there
 * paused). */
gboolean
vms_libvirt_migration_destination_runs (VmsLibvirtMigration *migration);

/* With --persistent: libvirt passes only the running domain's XML
 * through the destination's hook, so make the definition kept there use
 * the disks the running domain uses. */
gboolean vms_libvirt_migration_fix_definition (VmsLibvirtMigration *migration,
                                               GError **error);

/* The source domain still exists and is active (running or paused). */
gboolean vms_libvirt_migration_source_active (VmsLibvirtMigration *migration);

/* Resume the source domain if it is paused (libvirt resumes it itself
 * after most failed migrations). */
gboolean vms_libvirt_migration_resume_source (VmsLibvirtMigration *migration,
                                              GError **error);

/* After an aborted migration, the destination may still hold the
 * incoming domain, paused, that libvirt has not torn down yet (its
 * vmshift was killed): wait for it to go, and destroy it if it stays.
 * Refuses if the destination runs the domain. */
gboolean vms_libvirt_migration_drop_incoming (VmsLibvirtMigration *migration,
                                              GError **error);

/* Keep what --resume needs in the job, and take it back. */
void vms_libvirt_migration_save (VmsLibvirtMigration *migration, VmsJob *job);
void vms_libvirt_migration_load (VmsLibvirtMigration *migration, VmsJob *job);

G_END_DECLS
