/* vmshift: a plan's ledger, what its runs said of each VM and group that
 * a job's state does not keep: when a VM's attempt started and ended,
 * the downtime predicted before its switchover against the one measured,
 * a group's downtime.  vmshift plan run writes it as the events come;
 * vmshift plan status reads it for the ETA and predicted against actual.
 * A JSON file beside the jobs, one per plan.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef struct _VmsPlanLedger VmsPlanLedger;

/* The ledger of the plan at plan_path in state_dir: what an
 * earlier run wrote, or an empty one.  NULL with error only when a file
 * that is there cannot be read. */
VmsPlanLedger *vms_plan_ledger_open (const char *state_dir,
                                     const char *plan_path, GError **error);
void vms_plan_ledger_free (VmsPlanLedger *ledger);

/* Take what event says of vm (NULL: the plan's or a group's own event)
 * and, if it changed anything, write the file.  Thread-safe; events it
 * does not keep are ignored.  A failed write is said once on stderr: the
 * ledger serves status, not the migrations. */
void vms_plan_ledger_note (VmsPlanLedger *ledger, const char *vm,
                           const char *event, JsonObject *fields);

/* What the ledger holds of vm (started-at, ended-at: seconds since the
 * epoch; attempts, outcome, predicted-downtime-ms (a miss foreseen
 * before the switchover), downtime-ms, max-downtime-ms, seconds, and
 * with an estimate estimated-seconds, estimated-downtime-ms), or NULL;
 * borrowed. */
JsonObject *vms_plan_ledger_vm (VmsPlanLedger *ledger, const char *vm);

/* Likewise of group (outcome, group-downtime-ms, switchover-spread-ms). */
JsonObject *vms_plan_ledger_group (VmsPlanLedger *ledger, const char *group);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsPlanLedger, vms_plan_ledger_free)

G_END_DECLS
