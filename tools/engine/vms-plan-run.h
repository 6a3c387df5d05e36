/* vmshift engine: a plan's VMs migrated unattended, as many at once as
 * its concurrency allows, each in a thread of its own with its own
 * VmsMigration.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "vms-plan.h"
#include "vms-progress.h"

G_BEGIN_DECLS

/* Run plan to its end: every VM not migrated yet (a job of the VM's name
 * in state_dir that committed counts as migrated and is skipped; one
 * that stopped earlier is resumed), in the plan's order, at most its
 * concurrency at once, each retried up to its retries.  One VM's failure
 * does not stop the others.  Every event goes to progress with the VM's
 * name ("vm") added; the plan's alert command gets each VM's end.
 * A group's members migrate together (vms-group.h): a group is started
 * as one, and retried as one.  FALSE with error
 * when a VM did not migrate (the message counts them) or the run was
 * cancelled. */
gboolean vms_plan_run (const VmsPlan *plan, const char *state_dir,
                       VmsProgress *progress, GCancellable *cancellable,
                       GError **error);

G_END_DECLS
