/* vmshiftd: how the API answers.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-api-reply.h"

void
vms_api_reply (SoupServerMessage *msg, guint status, JsonObject *object)
{
  g_autoptr (JsonNode) node = json_node_new (JSON_NODE_OBJECT);
  g_autofree char *text = NULL;

  json_node_take_object (node, object);
  text = json_to_string (node, FALSE);
  soup_server_message_set_status (msg, status, NULL);
  soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_COPY,
                                    text, strlen (text));
}

void
vms_api_reply_error (SoupServerMessage *msg, guint status, const char *format,
                     ...)
{
  JsonObject *object = json_object_new ();
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  json_object_set_string_member (object, "error", message);
  vms_api_reply (msg, status, object);
}
