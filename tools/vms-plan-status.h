/* vmshift plan status and plan abort: where each VM of a plan stands,
 * from its job's state file, and a stop of every migration of it that
 * runs.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "vms-plan.h"

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* Print each VM's and group's state, in the plan's order (a
 * "plan-status" event with json).  Exit code: 0. */
int vms_plan_status (const VmsPlan *plan, const char *state_dir, gboolean json);

/* The same of state (vms_plan_state_new's, or vmshiftd's answer) of
 * plan name; where: where its jobs are, for people. */
void vms_plan_status_print (JsonObject *state, const char *name,
                            const char *where, gboolean json);

/* Every job of the plan being migrated rolls back, as 'vmshift abort'
 * does for one: the running vmshift (plan run, or a migrate) is asked to,
 * a dead one's job is rolled back here.  Waits at most timeout_s per
 * job.  Exit code: the worst of theirs, 0 when none needed it. */
int vms_plan_abort (const VmsPlan *plan, const char *state_dir,
                    guint timeout_s);

G_END_DECLS
