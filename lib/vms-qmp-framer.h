/* vmshift: split a QMP byte stream into JSON texts.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* QEMU ends every QMP message with CRLF, but a peer may split a message
 * across reads or send several in one, and a hostile or broken peer may send
 * anything.  The framer does not trust line breaks: it tracks JSON object
 * nesting and strings, and hands out each complete top-level object. */

/* A reply to query-named-block-nodes on a large block graph runs to a few
 * MiB; anything far beyond that is a broken peer, and bounding it bounds
 * our memory. */
#define VMS_QMP_FRAMER_DEFAULT_MAX_MESSAGE (64 * 1024 * 1024)

/* QMP replies nest a handful of levels; a deep nesting is an attack on the
 * recursive JSON parser behind us. */
#define VMS_QMP_FRAMER_MAX_DEPTH 128

typedef struct _VmsQmpFramer VmsQmpFramer;

VmsQmpFramer *vms_qmp_framer_new (gsize max_message_size);
void vms_qmp_framer_free (VmsQmpFramer *framer);

/* Append bytes from the peer.  On malformed input returns FALSE with
 * VMS_QMP_ERROR_PROTOCOL; the framer then refuses all further input, since a
 * byte stream cannot be resynchronised safely. */
gboolean vms_qmp_framer_feed (VmsQmpFramer *framer, const char *data,
                              gsize length, GError **error);

/* The next complete JSON text, NUL-terminated (caller frees), or NULL when
 * none is complete yet. */
char *vms_qmp_framer_pop (VmsQmpFramer *framer, gsize *length_out);

/* TRUE when part of a message has arrived but not its end. */
gboolean vms_qmp_framer_has_partial (const VmsQmpFramer *framer);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsQmpFramer, vms_qmp_framer_free)

G_END_DECLS
