/* vmshiftd: plans.  A plan is stored under STATE_DIR/plans/NAME.plan
 * (PUT), run in a thread of its own by the engine's plan runner (POST
 * .../run), its state served as vmshift plan status --json prints it
 * (GET), and stopped (POST .../abort: every migration of it rolls back).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "vms-api-events.h"

#include <libsoup/soup.h>

G_BEGIN_DECLS

typedef struct _VmsApiPlans VmsApiPlans;

VmsApiPlans *vms_api_plans_new (const char *state_dir, VmsApiEvents *events);
/* Stops the plans that run (their migrations roll back) and waits. */
void vms_api_plans_free (VmsApiPlans *plans);

/* /api/v1/plans[/NAME[/run|/abort]]: rest is the path after
 * "/api/v1/plans" ("" or "/NAME..."). */
void vms_api_plans_handle (VmsApiPlans *plans, SoupServerMessage *msg,
                           const char *rest);

/* POST /api/v1/jobs: the body is a plan of one VM, kept as the plan of
 * the VM's name (its job's id) and run. */
void vms_api_plans_submit_job (VmsApiPlans *plans, SoupServerMessage *msg);

/* POST /api/v1/jobs/ID/ACTION (id valid): abort (the run of the job's
 * plan of one VM stops and rolls back, or the job a dead runner left
 * migrating is rolled back) or resume (the stored plan that names it
 * runs again). */
void vms_api_plans_job_action (VmsApiPlans *plans, SoupServerMessage *msg,
                               const char *id, const char *action);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsApiPlans, vms_api_plans_free)

G_END_DECLS
