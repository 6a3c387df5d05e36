/* vmshift --server URL: a command sent to a running vmshiftd (see
 * vmshiftd(8)) instead of run here: requests with its bearer token, and
 * the events of what it runs followed on its event stream and shown as
 * a local run shows them.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "vms-progress.h"

#include <gio/gio.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define VMS_SERVER_ERROR (vms_server_error_quark ())
GQuark vms_server_error_quark (void);

typedef enum
{
  VMS_SERVER_ERROR_CONNECT,  /* not reached, or the stream broke */
  VMS_SERVER_ERROR_INVALID,  /* it refused what was sent as wrong (400) */
  VMS_SERVER_ERROR_REFUSED,  /* it answered with another error (4xx,
                                5xx) */
  VMS_SERVER_ERROR_PROTOCOL, /* it answered what is not its API */
} VmsServerError;

typedef struct _VmsServer VmsServer;

/* url: vmshiftd's base (http[s]://HOST:PORT); token_file: the token's
 * file (NULL: $VMSHIFT_TOKEN, else the local vmshiftd's, STATE_DIR/
 * vmshiftd.token); ca_file: the CA an HTTPS server's certificate is
 * checked against (NULL: the system's). */
VmsServer *vms_server_new (const char *url, const char *token_file,
                           const char *ca_file, GError **error);
void vms_server_free (VmsServer *server);

/* method on path (under /api/v1, e.g. "/jobs") with body (NULL: none)
 * of content_type; the JSON object answered, or NULL with an error (a
 * refusal's message is vmshiftd's own). */
JsonObject *vms_server_request (VmsServer *server, const char *method,
                                const char *path, const char *content_type,
                                const char *body, GError **error);

/* The event stream, opened before what it is to follow is started (so
 * that nothing is missed). */
GInputStream *vms_server_open_events (VmsServer *server,
                                      GCancellable *cancellable,
                                      GError **error);

/* The events of a run after event_id (as the request that started it
 * answered), those whose member tag is name ("plan" and the plan's name,
 * "estimate-id" and its id), each shown by progress, until end_event: TRUE
 * when it came, *ok its outcome ("ok"); FALSE when the stream broke or
 * cancellable was cancelled. */
gboolean vms_server_follow (GInputStream *events, const char *tag,
                            const char *name, const char *end_event,
                            gint64 event_id, VmsProgress *progress,
                            gboolean *ok, GCancellable *cancellable,
                            GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsServer, vms_server_free)

G_END_DECLS
