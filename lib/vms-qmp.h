/* vmshift: a QMP client on glib and json-glib.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "vms-qmp-error.h"

G_BEGIN_DECLS

/* How long to wait for QEMU by default.  Most commands answer in
 * milliseconds; a TCG guest under load or a big query-named-block-nodes can
 * take seconds, and a QEMU that has not answered in half a minute is stuck. */
#define VMS_QMP_DEFAULT_TIMEOUT_MS 30000

/* Events kept for vms_qmp_wait_event() until someone asks for them.  A
 * migration produces a few dozen; the bound only protects memory when a
 * program never asks. */
#define VMS_QMP_MAX_QUEUED_EVENTS 1024

typedef struct _VmsQmp VmsQmp;

/* Called for every event QEMU sends, also while a command is in flight.
 * data is NULL when the event carries none; timestamp_us is -1 when absent.
 * The callback may run commands on the same client. */
typedef void (*VmsQmpEventFunc) (VmsQmp *qmp, const char *event,
                                 JsonObject *data, gint64 timestamp_us,
                                 gpointer user_data);

/* Connect, read the greeting and negotiate capabilities.  address is
 * "qmp:PATH" or "unix:PATH" (a unix socket), "tcp:HOST:PORT", or a path
 * (anything with a '/').  A client
 * is used from one thread. */
VmsQmp *vms_qmp_connect (const char *address, guint timeout_ms,
                         GError **error);

/* The same over a connected socket (fd is taken, also on failure). */
VmsQmp *vms_qmp_new_for_fd (int fd, guint timeout_ms, GError **error);
/* The same, called name in messages ("QEMU at NAME did not answer"). */
VmsQmp *vms_qmp_new_for_fd_named (int fd, const char *name, guint timeout_ms,
                                  GError **error);

void vms_qmp_free (VmsQmp *qmp);

/* Per-command timeout for later calls; 0 means the default. */
void vms_qmp_set_timeout (VmsQmp *qmp, guint timeout_ms);

/* QEMU's version from the greeting. */
void vms_qmp_get_version (VmsQmp *qmp, int *major, int *minor, int *micro);
/* Distribution package string from the greeting, e.g. "Debian 1:7.2+dfsg-7". */
const char *vms_qmp_get_package (VmsQmp *qmp);

/* Run one command.  arguments may be NULL and is not taken.  Returns QEMU's
 * "return" value (caller unrefs).  A QMP error reply becomes a GError whose
 * code mirrors the QMP class (see vms-qmp-error.h). */
JsonNode *vms_qmp_execute (VmsQmp *qmp, const char *command,
                           JsonObject *arguments, GError **error);

/* The same with arguments as JSON text (an object), as a user types them. */
JsonNode *vms_qmp_execute_json (VmsQmp *qmp, const char *command,
                                const char *arguments_json, GError **error);

/* Parse arguments typed by a user: a JSON object, or an INVALID_ARGUMENT
 * error naming command.  Caller unrefs. */
JsonObject *vms_qmp_parse_arguments (const char *command,
                                     const char *arguments_json,
                                     GError **error);

/* Run an HMP command line through human-monitor-command; returns its
 * output (caller frees). */
char *vms_qmp_execute_hmp (VmsQmp *qmp, const char *command_line,
                           GError **error);

/* Subscribe to one event name, or to all when event is NULL.  Returns an id
 * for vms_qmp_unsubscribe(). */
guint vms_qmp_subscribe (VmsQmp *qmp, const char *event, VmsQmpEventFunc func,
                         gpointer user_data, GDestroyNotify notify);
void vms_qmp_unsubscribe (VmsQmp *qmp, guint id);

/* Take the oldest received event named event (any name if NULL), waiting up
 * to timeout_ms for one.  Events are queued from the moment of connecting,
 * so an event that arrived during an earlier command is not missed.  On
 * success *data_out (may be NULL) receives the event's data or NULL and
 * *name_out (may be NULL) its name; caller frees both. */
gboolean vms_qmp_wait_event (VmsQmp *qmp, const char *event, guint timeout_ms,
                             JsonObject **data_out, char **name_out,
                             gint64 *timestamp_us_out, GError **error);

/* Read whatever QEMU has sent without blocking and deliver its events. */
gboolean vms_qmp_poll (VmsQmp *qmp, GError **error);

/* The socket, for callers that watch it in their own main loop and call
 * vms_qmp_poll() when it is readable. */
int vms_qmp_get_fd (VmsQmp *qmp);

/* FALSE once the connection died; every later call then fails. */
gboolean vms_qmp_is_connected (VmsQmp *qmp);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsQmp, vms_qmp_free)

G_END_DECLS
