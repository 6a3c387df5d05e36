/* vmshift qemu-filter (internal): type-checked reading of QMP replies.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Every reply is checked before use, in one place, so that a QEMU that
 * answers with an unexpected shape gives a VMS_QMP_ERROR_PROTOCOL error
 * naming the command and member instead of a GLib critical.
 */
#pragma once

#include <json-glib/json-glib.h>

#include "vms-qmp.h"

G_BEGIN_DECLS

/* The reply of command as an object (borrowed from reply), or an error. */
JsonObject *vms_reply_object (JsonNode *reply, const char *command,
                              GError **error);

/* The reply of command as an array (borrowed from reply), or an error. */
JsonArray *vms_reply_array (JsonNode *reply, const char *command,
                            GError **error);

/* Element i of array as an object (borrowed), or an error. */
JsonObject *vms_reply_array_object (JsonArray *array, guint i,
                                    const char *command, GError **error);

/* Required members: FALSE with a protocol error naming command and member
 * when absent or of another type.  Strings are borrowed. */
gboolean vms_reply_string (JsonObject *object, const char *member,
                           const char *command, const char **out,
                           GError **error);
gboolean vms_reply_uint (JsonObject *object, const char *member,
                         const char *command, guint64 *out, GError **error);
gboolean vms_reply_bool (JsonObject *object, const char *member,
                         const char *command, gboolean *out, GError **error);

/* Optional members: absent gives fallback; present with another type is an
 * error. */
gboolean vms_reply_opt_string (JsonObject *object, const char *member,
                               const char *command, const char *fallback,
                               const char **out, GError **error);
gboolean vms_reply_opt_bool (JsonObject *object, const char *member,
                             const char *command, gboolean fallback,
                             gboolean *out, GError **error);
/* An optional object member (borrowed), NULL when absent. */
gboolean vms_reply_opt_object (JsonObject *object, const char *member,
                               const char *command, JsonObject **out,
                               GError **error);
/* An optional array member (borrowed), NULL when absent. */
gboolean vms_reply_opt_array (JsonObject *object, const char *member,
                              const char *command, JsonArray **out,
                              GError **error);

/* The query-named-block-nodes {flat: true} entry of node_name, or NULL
 * and G_IO_ERROR_NOT_FOUND.  *nodes holds the reply (caller unrefs): when
 * NULL it is queried and stored, else reused, so several lookups cost one
 * query.  The returned object is borrowed from it. */
JsonObject *vms_reply_find_node (VmsQmp *qmp, const char *node_name,
                                 JsonNode **nodes, GError **error);

/* TRUE when error is a QMP error whose text (QEMU's "desc") contains
 * needle: the only way to tell some GenericErrors apart. */
gboolean vms_reply_error_says (const GError *error, const char *needle);

G_END_DECLS
