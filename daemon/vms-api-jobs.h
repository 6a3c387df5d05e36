/* vmshiftd: jobs.  Each job's state file shown as it is (GET), a job
 * created from a plan of one VM (POST), aborted or resumed; a job runs
 * as a VM of a plan (vms-api-plans.h).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "vms-api-plans.h"

#include <libsoup/soup.h>

G_BEGIN_DECLS

typedef struct _VmsApiJobs VmsApiJobs;

/* The jobs in state_dir; plans (borrowed) runs them. */
VmsApiJobs *vms_api_jobs_new (const char *state_dir, VmsApiPlans *plans);
void vms_api_jobs_free (VmsApiJobs *jobs);

/* /api/v1/jobs[/ID[/abort|/resume]]: rest is the path after
 * "/api/v1/jobs" ("" or "/ID..."). */
void vms_api_jobs_handle (VmsApiJobs *jobs, SoupServerMessage *msg,
                          const char *rest);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsApiJobs, vms_api_jobs_free)

G_END_DECLS
