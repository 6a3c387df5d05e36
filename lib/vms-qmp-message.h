/* vmshift: classify one QMP message.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef enum
{
  VMS_QMP_MESSAGE_GREETING, /* {"QMP": {...}} sent once on connect */
  VMS_QMP_MESSAGE_RETURN,   /* {"return": ..., "id": ...} */
  VMS_QMP_MESSAGE_ERROR,    /* {"error": {"class", "desc"}, "id": ...} */
  VMS_QMP_MESSAGE_EVENT,    /* {"event": NAME, "data": {...}, "timestamp": {...}} */
} VmsQmpMessageKind;

typedef struct
{
  VmsQmpMessageKind kind; /* which of the four shapes this is */
  JsonNode *root;         /* the whole parsed message; owns what follows */
  JsonNode *value;        /* greeting's "QMP" object, reply's "return", event's
                             "data" (NULL if the event has none); borrowed */
  char *id;               /* reply id if it was a string, else NULL */
  gboolean has_id;        /* reply carried an "id" member of any type */
  char *event;            /* event name */
  gint64 timestamp_us;    /* event time, microseconds since the epoch; -1 if absent */
  char *error_class;      /* QMP error class, e.g. "GenericError" */
  char *error_desc;       /* QMP error description */
} VmsQmpMessage;

/* Parse and type-check one JSON text from the framer.  Anything that is not
 * one of the four QMP shapes is VMS_QMP_ERROR_PROTOCOL. */
VmsQmpMessage *vms_qmp_message_parse (const char *text, gssize length,
                                      GError **error);
void vms_qmp_message_free (VmsQmpMessage *message);

/* For an error reply: a GError in VMS_QMP_ERROR whose code mirrors the class
 * and whose message is QEMU's description (prefixed with the class when the
 * class is one we do not know). */
GError *vms_qmp_message_to_error (const VmsQmpMessage *message);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsQmpMessage, vms_qmp_message_free)

G_END_DECLS
