/* vmshiftd: the event stream.  Every event of every run the daemon
 * drives (the same JSON objects vmshift --json prints, with the plan's
 * name) goes to each client of GET /api/v1/events as a server-sent
 * event, and the last ones are kept for clients that come later.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

G_BEGIN_DECLS

typedef struct _VmsApiEvents VmsApiEvents;

/* Events are delivered in context (the daemon's main loop); kept: how
 * many of the last are replayed to a new client. */
VmsApiEvents *vms_api_events_new (GMainContext *context, guint kept);
void vms_api_events_free (VmsApiEvents *events);

/* From any thread: event with its fields (borrowed) and text, tagged
 * with the plan's and the VM's names (each NULL: none). */
void vms_api_events_publish (VmsApiEvents *events, const char *event,
                             JsonObject *fields, const char *text,
                             const char *plan, const char *vm);

/* msg (GET /api/v1/events, authenticated) becomes a stream: the kept
 * events, then each new one, until the client goes. */
void vms_api_events_subscribe (VmsApiEvents *events, SoupServerMessage *msg);

/* In the main loop: the SSE id of the newest event delivered (0: none
 * yet); what is published after this call has a greater one. */
guint64 vms_api_events_last_id (VmsApiEvents *events);

/* What a recorder is given of each event, in the main loop, as it is
 * delivered: its name, its object as streamed (borrowed) and as text,
 * and when it was published (µs since the epoch). */
typedef void (*VmsApiEventsRecorder) (const char *event, JsonObject *object,
                                      const char *json, gint64 time_us,
                                      gpointer user_data);

/* Every event from now on also goes to recorder (NULL: none). */
void vms_api_events_set_recorder (VmsApiEvents *events,
                                  VmsApiEventsRecorder recorder,
                                  gpointer user_data);

/* Clients streaming now. */
guint vms_api_events_clients (VmsApiEvents *events);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsApiEvents, vms_api_events_free)

G_END_DECLS
