/* vmshift: the states of a live migration, the moves between them, and
 * what a rollback from each must undo.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Kept apart from the code that drives QEMU so that the rules can be
 * tested alone: the source stays authoritative until COMMIT, and every
 * state before it has a rollback that leaves the source VM running.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum
{
  VMS_MIGRATE_PREFLIGHT,   /* checking both QEMUs and the sink */
  VMS_MIGRATE_BACKGROUND,  /* disks copied while the VM runs */
  VMS_MIGRATE_ROUNDS,      /* dirty rounds while the VM runs */
  VMS_MIGRATE_MIRROR,      /* mirror mode: active mirror started, the last
                              bitmap copied behind it */
  VMS_MIGRATE_MEMORY,      /* QEMU's RAM pre-copy */
  VMS_MIGRATE_SWITCHOVER,  /* source paused at pre-switchover: final disk
                              round or sink FLUSH, then continue */
  VMS_MIGRATE_DESTINATION, /* waiting for the destination to run */
  VMS_MIGRATE_COMMIT,      /* destination runs: replicas marked complete */
  VMS_MIGRATE_CLEANUP,     /* source side cleaned up */
  VMS_MIGRATE_DONE,
  VMS_MIGRATE_ROLLBACK,    /* undoing, before COMMIT */
  VMS_MIGRATE_ROLLED_BACK, /* source runs, job resumable */
  VMS_MIGRATE_N_STATES,
} VmsMigrateState;

typedef enum
{
  VMS_MIGRATE_FINAL_PAUSE,  /* last disk round inside the downtime */
  VMS_MIGRATE_FINAL_MIRROR, /* write-blocking mirror; no disk data in the
                               downtime */
  VMS_MIGRATE_FINAL_AUTO,   /* not chosen yet: the engine picks pause or
                               mirror after the rounds, by the downtime
                               objective; the states follow pause's until
                               then */
} VmsMigrateFinalSync;

/* What a rollback must undo, in this order. */
typedef enum
{
  VMS_MIGRATE_UNDO_CANCEL_MIGRATION = 1 << 0,  /* migrate_cancel */
  VMS_MIGRATE_UNDO_STOP_MIRROR = 1 << 1,       /* cancel the mirror job and
                                                  delete its NBD node */
  VMS_MIGRATE_UNDO_RESUME_SOURCE = 1 << 2,     /* cont if QEMU left the
                                                  source paused */
  VMS_MIGRATE_UNDO_FORGET_LIVE = 1 << 3,       /* the sink's @live-reset */
  VMS_MIGRATE_UNDO_STOP_EXPORTS = 1 << 4,      /* the source's NBD server */
  VMS_MIGRATE_UNDO_CHECK_DESTINATION = 1 << 5, /* the destination may run
                                                  already: look before
                                                  resuming the source */
} VmsMigrateUndo;

const char *vms_migrate_state_name (VmsMigrateState state);
/* -1 for an unknown name. */
int vms_migrate_state_parse (const char *name);

gboolean vms_migrate_final_sync_parse (const char *name,
                                       VmsMigrateFinalSync *out);
const char *vms_migrate_final_sync_name (VmsMigrateFinalSync mode);

/* The state after from when all goes well in mode. */
VmsMigrateState vms_migrate_state_next (VmsMigrateState from,
                                        VmsMigrateFinalSync mode);

/* TRUE if the orchestrator may move from one state to the other: the next
 * state, or ROLLBACK before COMMIT, or ROLLED_BACK from ROLLBACK. */
gboolean vms_migrate_state_can_move (VmsMigrateState from, VmsMigrateState to,
                                     VmsMigrateFinalSync mode);

/* TRUE before COMMIT, and in ROLLBACK (an interrupted rollback is done
 * again): the source is still authoritative. */
gboolean vms_migrate_state_can_roll_back (VmsMigrateState state);

/* What a failure in state must undo (0 at and after COMMIT). */
VmsMigrateUndo vms_migrate_rollback_actions (VmsMigrateState state,
                                             VmsMigrateFinalSync mode);

/* Where a resumed migration starts after stopping in stopped_in. */
VmsMigrateState vms_migrate_resume_state (VmsMigrateState stopped_in);

G_END_DECLS
