/* vmshift qemu-filter (internal): waiting on QEMU's events.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A watch subscribes to a few events for the length of one wait and keeps
 * those about one object.  Subscribing before the command that causes them
 * means an event that arrives while the command's reply is pending is kept
 * (the client hands events to subscribers while it reads replies), and only
 * events sent after the subscription count: one left in the client's queue
 * by an earlier attempt with the same job id is not taken for a new one.
 * The client's own queue is left alone, so vms_qmp_wait_event() callers
 * still find every event there.
 */
#pragma once

#include <json-glib/json-glib.h>

#include "vms-qmp.h"

G_BEGIN_DECLS

typedef struct _VmsEventWatch VmsEventWatch;

/* Watch the events named in names (NULL-terminated).  When object_id is not
 * NULL only events whose data names it as "device" (BLOCK_JOB_*) or "id"
 * (JOB_STATUS_CHANGE) are kept. */
VmsEventWatch *vms_event_watch_new (VmsQmp *qmp, const char *const *names,
                                    const char *object_id);
void vms_event_watch_free (VmsEventWatch *watch);

/* Take the oldest kept event, reading from QEMU until one arrives or the
 * monotonic time deadline_us passes.  FALSE with VMS_QMP_ERROR_TIMEOUT
 * then, or with the client's error once the connection is gone.  On success
 * *name_out and *data_out (each may be NULL) receive the event's name and
 * data (NULL when it has none); caller frees both. */
gboolean vms_event_watch_next (VmsEventWatch *watch, gint64 deadline_us,
                               char **name_out, JsonObject **data_out,
                               GError **error);

/* Read from QEMU until it closes the connection (TRUE) or the monotonic
 * time deadline_us passes (FALSE with VMS_QMP_ERROR_TIMEOUT).  Events
 * meanwhile reach subscribers and the client's queue as always. */
gboolean vms_event_wait_disconnect (VmsQmp *qmp, gint64 deadline_us,
                                    GError **error);

/* The monotonic time timeout_ms from now, for vms_event_watch_next(). */
gint64 vms_event_deadline (guint timeout_ms);

/* The string member of an event's data (borrowed), or NULL when data is
 * NULL or the member is absent or not a string. */
const char *vms_event_string (JsonObject *data, const char *member);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsEventWatch, vms_event_watch_free)

G_END_DECLS
