/* vmshift qemu-filter: QEMU's own memory migration, driven over QMP on the
 * source and on the destination.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

#include "vms-qmp.h"

G_BEGIN_DECLS

/* query-migrate's status, in the order a migration goes through them. */
typedef enum
{
  VMS_QEMU_MIGRATION_NONE, /* never started */
  VMS_QEMU_MIGRATION_SETUP,
  VMS_QEMU_MIGRATION_ACTIVE,         /* RAM pre-copy rounds */
  VMS_QEMU_MIGRATION_PRE_SWITCHOVER, /* source paused, waiting for continue */
  VMS_QEMU_MIGRATION_DEVICE,         /* device state after continue */
  VMS_QEMU_MIGRATION_COMPLETED,
  VMS_QEMU_MIGRATION_FAILED,
  VMS_QEMU_MIGRATION_CANCELLING,
  VMS_QEMU_MIGRATION_CANCELLED,
  VMS_QEMU_MIGRATION_OTHER, /* a status we do not drive (postcopy...) */
} VmsQemuMigrationStatus;

typedef struct
{
  VmsQemuMigrationStatus status;
  char *status_name;           /* QEMU's word for it */
  char *error_desc;            /* why it failed, or NULL */
  guint64 ram_transferred;     /* bytes of RAM sent so far */
  guint64 ram_remaining;       /* bytes still dirty */
  guint64 ram_total;           /* guest RAM */
  guint64 dirty_sync_count;    /* RAM rounds so far */
  guint64 dirty_pages_rate;    /* pages per second the guest dirties */
  guint64 page_size;           /* bytes per page */
  double mbps;                 /* current throughput, megabits per second */
  gint64 total_time_ms;        /* since the migration started */
  gint64 downtime_ms;          /* QEMU's own figure, -1 until completed */
  gint64 expected_downtime_ms; /* QEMU's estimate while active, -1 if none */
  guint64 cpu_throttle_percent; /* auto-converge's slowing of the guest's
                                   vCPUs, 0: none */
} VmsQemuMigrationInfo;

VmsQemuMigrationStatus vms_qemu_migration_status_parse (const char *name);
const char *vms_qemu_migration_status_name (VmsQemuMigrationStatus status);

/* TRUE for statuses after which nothing more happens. */
gboolean vms_qemu_migration_status_is_final (VmsQemuMigrationStatus status);

/* query-migrate. */
gboolean vms_qemu_migration_query (VmsQmp *qmp, VmsQemuMigrationInfo *info,
                                   GError **error);
void vms_qemu_migration_info_clear (VmsQemuMigrationInfo *info);

/* migrate-set-capabilities: every named capability to state. */
gboolean vms_qemu_migration_set_capabilities (VmsQmp *qmp,
                                              const char *const *names,
                                              gboolean state, GError **error);

/* migrate-set-parameters (parameters is not taken). */
gboolean vms_qemu_migration_set_parameters (VmsQmp *qmp, JsonObject *parameters,
                                            GError **error);

/* migrate-incoming on a destination started with -incoming defer. */
gboolean vms_qemu_migration_incoming (VmsQmp *qmp, const char *uri,
                                      GError **error);

/* migrate on the source. */
gboolean vms_qemu_migration_start (VmsQmp *qmp, const char *uri,
                                   GError **error);

/* migrate-continue from pre-switchover. */
gboolean vms_qemu_migration_continue (VmsQmp *qmp, GError **error);

/* migrate_cancel, then wait up to timeout_ms for a final status; returns
 * that status in *final (may be NULL). */
gboolean vms_qemu_migration_cancel (VmsQmp *qmp, guint timeout_ms,
                                    VmsQemuMigrationStatus *final,
                                    GError **error);

/* query-status: the run state ("running", "paused", "inmigrate",
 * "postmigrate", "finish-migrate", ...); caller frees. */
char *vms_qemu_migration_run_state (VmsQmp *qmp, GError **error);

/* The QOM type of /machine, e.g. "pc-q35-7.2-machine"; caller frees. */
char *vms_qemu_migration_machine_type (VmsQmp *qmp, GError **error);

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (VmsQemuMigrationInfo,
                                  vms_qemu_migration_info_clear)

G_END_DECLS
