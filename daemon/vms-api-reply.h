/* vmshiftd: how the API answers: JSON bodies, and errors as
 * {"error": MESSAGE} with their HTTP status.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

G_BEGIN_DECLS

/* Request bodies larger than this are refused (413). */
#define VMS_API_MAX_BODY (1024 * 1024)

/* status with object (taken) as the body. */
void vms_api_reply (SoupServerMessage *msg, guint status, JsonObject *object);

/* status with {"error": message}. */
void vms_api_reply_error (SoupServerMessage *msg, guint status,
                          const char *format, ...) G_GNUC_PRINTF (3, 4);

G_END_DECLS
