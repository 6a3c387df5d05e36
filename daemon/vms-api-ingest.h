/* vmshiftd: events from runs the daemon does not drive (a hook, a local
 * vmshift migrate --json) put on its event stream: POST /api/v1/events
 * with vmshift --json lines as the body, tagged with the plan's and the
 * VM's names from the query (plan=NAME&vm=NAME).  The body is taken
 * whole or not at all.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "vms-api-events.h"

#include <libsoup/soup.h>

G_BEGIN_DECLS

#define VMS_API_INGEST_ERROR vms_api_ingest_error_quark ()
GQuark vms_api_ingest_error_quark (void);

/* Why a request was refused (400). */
typedef enum
{
  VMS_API_INGEST_ERROR_QUERY,  /* the query's plan or vm */
  VMS_API_INGEST_ERROR_EVENTS, /* the body */
} VmsApiIngestError;

/* Events in one body at most: each is held parsed until all are
 * checked, and a dashboard keeps only the last ones anyway. */
#define VMS_API_INGEST_MAX_EVENTS 10000

/* An event's name at most (as vmshift's own, [a-z][a-z0-9-]*). */
#define VMS_API_INGEST_MAX_NAME 64

/* msg (POST /api/v1/events, authenticated, its body read): every line
 * published on events and 202 {"published": N}, or 400 and none. */
void vms_api_ingest_handle (VmsApiEvents *events, SoupServerMessage *msg);

G_END_DECLS
