/* vmshift: where a plan stands, from its jobs' state files and its
 * ledger (vms-plan-ledger.h): each VM's phase, migration state, the
 * vmshift pid on it, bytes sent, attempts, last error, times, copy ETA,
 * predicted against measured downtime; each group's count and downtime;
 * the plan's ETA.  What vmshift plan status prints and vmshiftd serves.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "vms-plan.h"

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* The plan's state (caller unrefs): members plan, state-dir, migrated,
 * vm-count, eta-s (once a VM migrated), vms, groups.  A ledger that
 * cannot be read leaves its parts out and sets *ledger_error. */
JsonObject *vms_plan_state_new (const VmsPlan *plan, const char *state_dir,
                                GError **ledger_error);

G_END_DECLS
