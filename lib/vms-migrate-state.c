/* vmshift: the states of a live migration.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-migrate-state.h"

static const char *const state_names[VMS_MIGRATE_N_STATES] = {
  [VMS_MIGRATE_PREFLIGHT] = "preflight",
  [VMS_MIGRATE_BACKGROUND] = "background",
  [VMS_MIGRATE_ROUNDS] = "rounds",
  [VMS_MIGRATE_MIRROR] = "mirror",
  [VMS_MIGRATE_MEMORY] = "memory",
  [VMS_MIGRATE_SWITCHOVER] = "switchover",
  [VMS_MIGRATE_DESTINATION] = "destination",
  [VMS_MIGRATE_COMMIT] = "commit",
  [VMS_MIGRATE_CLEANUP] = "cleanup",
  [VMS_MIGRATE_DONE] = "done",
  [VMS_MIGRATE_ROLLBACK] = "rollback",
  [VMS_MIGRATE_ROLLED_BACK] = "rolled-back",
};

const char *
vms_migrate_state_name (VmsMigrateState state)
{
  return state < VMS_MIGRATE_N_STATES ? state_names[state] : "unknown";
}

int
vms_migrate_state_parse (const char *name)
{
  for (int i = 0; name && i < VMS_MIGRATE_N_STATES; i++)
    if (g_str_equal (name, state_names[i]))
      return i;
  return -1;
}

gboolean
vms_migrate_final_sync_parse (const char *name, VmsMigrateFinalSync *out)
{
  if (g_strcmp0 (name, "pause") == 0)
    *out = VMS_MIGRATE_FINAL_PAUSE;
  else if (g_strcmp0 (name, "mirror") == 0)
    *out = VMS_MIGRATE_FINAL_MIRROR;
  else if (g_strcmp0 (name, "auto") == 0)
    *out = VMS_MIGRATE_FINAL_AUTO;
  else
    return FALSE;
  return TRUE;
}

const char *
vms_migrate_final_sync_name (VmsMigrateFinalSync mode)
{
  switch (mode)
    {
    case VMS_MIGRATE_FINAL_MIRROR:
      return "mirror";
    case VMS_MIGRATE_FINAL_AUTO:
      return "auto";
    default:
      return "pause";
    }
}

VmsMigrateState
vms_migrate_state_next (VmsMigrateState from, VmsMigrateFinalSync mode)
{
  switch (from)
    {
    case VMS_MIGRATE_ROUNDS:
      return mode == VMS_MIGRATE_FINAL_MIRROR ? VMS_MIGRATE_MIRROR
                                              : VMS_MIGRATE_MEMORY;
    case VMS_MIGRATE_DONE:
    case VMS_MIGRATE_ROLLED_BACK:
      return from;
    default:
      return from + 1;
    }
}

gboolean
vms_migrate_state_can_roll_back (VmsMigrateState state)
{
  /* A rollback that was interrupted (vmshift killed, the source
   * unreachable for a moment) is one that can still be done. */
  return state < VMS_MIGRATE_COMMIT || state == VMS_MIGRATE_ROLLBACK;
}

gboolean
vms_migrate_state_can_move (VmsMigrateState from, VmsMigrateState to,
                            VmsMigrateFinalSync mode)
{
  if (from >= VMS_MIGRATE_N_STATES || to >= VMS_MIGRATE_N_STATES)
    return FALSE;
  if (from == VMS_MIGRATE_ROLLBACK)
    return to == VMS_MIGRATE_ROLLED_BACK || to == VMS_MIGRATE_ROLLBACK;
  if (to == VMS_MIGRATE_ROLLBACK)
    return vms_migrate_state_can_roll_back (from);
  return from != VMS_MIGRATE_DONE && from != VMS_MIGRATE_ROLLED_BACK
         && to == vms_migrate_state_next (from, mode);
}

VmsMigrateUndo
vms_migrate_rollback_actions (VmsMigrateState state, VmsMigrateFinalSync mode)
{
  VmsMigrateUndo undo = VMS_MIGRATE_UNDO_STOP_EXPORTS;

  /* A rollback interrupted halfway is done again in full, as from the
   * last state that can roll back: each action is harmless when there is
   * nothing to undo. */
  if (state == VMS_MIGRATE_ROLLBACK)
    state = VMS_MIGRATE_DESTINATION;
  if (!vms_migrate_state_can_roll_back (state))
    return 0;
  if (state >= VMS_MIGRATE_MEMORY)
    undo |= VMS_MIGRATE_UNDO_CANCEL_MIGRATION;
  if (mode == VMS_MIGRATE_FINAL_MIRROR && state >= VMS_MIGRATE_MIRROR)
    undo |= VMS_MIGRATE_UNDO_STOP_MIRROR | VMS_MIGRATE_UNDO_FORGET_LIVE;
  /* QEMU pauses the source at pre-switchover, which the memory phase can
   * reach at any moment; a cancel does not always resume it. */
  if (state >= VMS_MIGRATE_MEMORY)
    undo |= VMS_MIGRATE_UNDO_RESUME_SOURCE;
  if (state >= VMS_MIGRATE_DESTINATION)
    undo |= VMS_MIGRATE_UNDO_CHECK_DESTINATION;
  return undo;
}

VmsMigrateState
vms_migrate_resume_state (VmsMigrateState stopped_in)
{
  /* Once the destination ran, only commit and cleanup are left.  Before,
   * everything starts over from the preflight: the disk copy goes on from
   * its checkpoints (a finished pass is not redone), while a mirror, the
   * memory migration and a switchover cannot be resumed. */
  if (stopped_in >= VMS_MIGRATE_COMMIT && stopped_in <= VMS_MIGRATE_DONE)
    return stopped_in;
  return VMS_MIGRATE_PREFLIGHT;
}
