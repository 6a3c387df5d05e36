/* vmshiftd: the REST API under /api/v1: every request authenticated by
 * the bearer token, bodies bounded, then routed: /events (the event
 * stream; events posted to it, vms-api-ingest.h), /plans
 * (vms-api-plans.h), /jobs (each job's state file, as vmshift job would
 * show it; jobs created, aborted, resumed: vms-api-jobs.h), /estimates
 * (run: vms-api-estimate-runs.h; kept: vms-api-stats.h), /migrations
 * and the events' history (vms-api-stats.h).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "vms-db.h"

#include <libsoup/soup.h>

G_BEGIN_DECLS

typedef struct _VmsApi VmsApi;

/* The API of the jobs in state_dir on server, for clients that send
 * "Authorization: Bearer token"; its statistics in db (borrowed). */
VmsApi *vms_api_new (SoupServer *server, const char *state_dir,
                     const char *token, VmsDb *db);
void vms_api_free (VmsApi *api);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsApi, vms_api_free)

G_END_DECLS
