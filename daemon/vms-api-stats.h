/* vmshiftd: the statistics, served from its database (vms-db.h):
 * GET /api/v1/estimates[/ID] (each with its VMs' predictions; one with
 * its samples), GET /api/v1/migrations (each plan migration's predicted
 * against actual time and downtime), GET /api/v1/events?since=SEQ&limit=N
 * (the events published, from the database; without a query the path is
 * the live stream, vms-api-events.h).  It records every event the daemon
 * publishes, keeps the jobs' and migrations' rows up to date as their
 * events come, and puts in what vmshift wrote in the state directory
 * itself before it serves the estimates or the migrations.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "vms-api-events.h"
#include "vms-db.h"

#include <libsoup/soup.h>

G_BEGIN_DECLS

typedef struct _VmsApiStats VmsApiStats;

/* Served from db (borrowed; the main loop's thread only), recording
 * events's events; the job and ledger files are read in state_dir. */
VmsApiStats *vms_api_stats_new (VmsDb *db, const char *state_dir,
                                VmsApiEvents *events);
void vms_api_stats_free (VmsApiStats *stats);

/* Whether msg to path is one of these requests. */
gboolean vms_api_stats_serves (SoupServerMessage *msg, const char *path);

/* Answer msg to path (vms_api_stats_serves said yes). */
void vms_api_stats_handle (VmsApiStats *stats, SoupServerMessage *msg,
                           const char *path);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsApiStats, vms_api_stats_free)

G_END_DECLS
