/* vmshiftd: estimates run over HTTP.  POST /api/v1/estimates observes
 * running VMs and predicts their migration, as vmshift estimate does, in
 * a thread of its own; its events go on the stream tagged with the
 * estimate's id, the estimate is kept in the state directory (where
 * vmshift migrate --estimate and a plan's estimate key find it).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "vms-api-events.h"

#include <libsoup/soup.h>

G_BEGIN_DECLS

typedef struct _VmsApiEstimateRuns VmsApiEstimateRuns;

VmsApiEstimateRuns *vms_api_estimate_runs_new (const char *state_dir,
                                               VmsApiEvents *events);
/* Stops the estimates that run (their bitmaps go) and waits. */
void vms_api_estimate_runs_free (VmsApiEstimateRuns *runs);

/* POST /api/v1/estimates[/ID/abort]: rest is the path after
 * "/api/v1/estimates".  A new estimate's body, a JSON object, says what
 * to observe and how long (see vmshiftd(8)); 202 with its id and the
 * event id its events come after.  An abort stops it. */
void vms_api_estimate_runs_handle (VmsApiEstimateRuns *runs,
                                   SoupServerMessage *msg, const char *rest);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsApiEstimateRuns, vms_api_estimate_runs_free)

G_END_DECLS
