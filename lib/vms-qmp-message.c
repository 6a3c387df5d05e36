/* vmshift: classify one QMP message.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-qmp-message.h"
#include "vms-json.h"
#include "vms-qmp-error.h"

void
vms_qmp_message_free (VmsQmpMessage *message)
{
  if (!message)
    return;
  if (message->root)
    json_node_unref (message->root);
  g_free (message->id);
  g_free (message->event);
  g_free (message->error_class);
  g_free (message->error_desc);
  g_free (message);
}

static gboolean
protocol_error (GError **error, const char *what)
{
  g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_PROTOCOL,
               "not a QMP message: %s", what);
  return FALSE;
}

static gboolean
get_int_member (JsonObject *object, const char *name, gint64 *out)
{
  JsonNode *node = json_object_get_member (object, name);

  if (!node || !JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_INT64)
    return FALSE;
  *out = json_node_get_int (node);
  return TRUE;
}

static void
take_id (VmsQmpMessage *message, JsonObject *object)
{
  JsonNode *id = json_object_get_member (object, "id");
  const char *id_string = vms_json_string_member (object, "id");

  message->has_id = id != NULL;
  message->id = g_strdup (id_string);
}

static gboolean
classify_error (VmsQmpMessage *message, JsonObject *object, GError **error)
{
  JsonNode *node = json_object_get_member (object, "error");
  JsonObject *details;
  const char *error_class, *desc;

  if (!JSON_NODE_HOLDS_OBJECT (node))
    return protocol_error (error, "\"error\" is not an object");
  details = json_node_get_object (node);
  error_class = vms_json_string_member (details, "class");
  desc = vms_json_string_member (details, "desc");
  if (!error_class || !desc)
    return protocol_error (error, "\"error\" lacks string \"class\" or \"desc\"");
  message->kind = VMS_QMP_MESSAGE_ERROR;
  message->error_class = g_strdup (error_class);
  message->error_desc = g_strdup (desc);
  take_id (message, object);
  return TRUE;
}

static gboolean
classify_event (VmsQmpMessage *message, JsonObject *object, GError **error)
{
  const char *name = vms_json_string_member (object, "event");
  JsonNode *data = json_object_get_member (object, "data");
  JsonNode *timestamp = json_object_get_member (object, "timestamp");
  gint64 seconds, microseconds;

  if (!name)
    return protocol_error (error, "\"event\" is not a string");
  if (data && !JSON_NODE_HOLDS_OBJECT (data))
    return protocol_error (error, "event \"data\" is not an object");
  message->kind = VMS_QMP_MESSAGE_EVENT;
  message->event = g_strdup (name);
  message->value = data;
  message->timestamp_us = -1;
  /* QEMU stamps events with -1/-1 when the clock failed; keep that as absent. */
  if (timestamp && JSON_NODE_HOLDS_OBJECT (timestamp)
      && get_int_member (json_node_get_object (timestamp), "seconds", &seconds)
      && get_int_member (json_node_get_object (timestamp), "microseconds",
                         &microseconds)
      && seconds >= 0 && microseconds >= 0 && microseconds < G_USEC_PER_SEC
      && seconds < G_MAXINT64 / G_USEC_PER_SEC - 1)
    message->timestamp_us = seconds * G_USEC_PER_SEC + microseconds;
  return TRUE;
}

static gboolean
classify (VmsQmpMessage *message, GError **error)
{
  JsonObject *object;
  JsonNode *node;

  if (!JSON_NODE_HOLDS_OBJECT (message->root))
    return protocol_error (error, "top level is not a JSON object");
  object = json_node_get_object (message->root);

  if ((node = json_object_get_member (object, "return")))
    {
      message->kind = VMS_QMP_MESSAGE_RETURN;
      message->value = node;
      take_id (message, object);
      return TRUE;
    }
  if (json_object_has_member (object, "error"))
    return classify_error (message, object, error);
  if (json_object_has_member (object, "event"))
    return classify_event (message, object, error);
  if ((node = json_object_get_member (object, "QMP")))
    {
      if (!JSON_NODE_HOLDS_OBJECT (node))
        return protocol_error (error, "greeting \"QMP\" is not an object");
      message->kind = VMS_QMP_MESSAGE_GREETING;
      message->value = node;
      return TRUE;
    }
  return protocol_error (error,
                         "object has none of return, error, event or QMP");
}

VmsQmpMessage *
vms_qmp_message_parse (const char *text, gssize length, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  g_autoptr (VmsQmpMessage) message = g_new0 (VmsQmpMessage, 1);
  g_autoptr (GError) parse_error = NULL;

  if (!json_parser_load_from_data (parser, text, length, &parse_error))
    {
      g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_PROTOCOL,
                   "not a QMP message: invalid JSON: %s", parse_error->message);
      return NULL;
    }
  message->root = json_parser_steal_root (parser);
  if (!message->root)
    {
      protocol_error (error, "empty JSON text");
      return NULL;
    }
  if (!classify (message, error))
    return NULL;
  return g_steal_pointer (&message);
}

GError *
vms_qmp_message_to_error (const VmsQmpMessage *message)
{
  VmsQmpError code;

  g_return_val_if_fail (message->kind == VMS_QMP_MESSAGE_ERROR, NULL);
  code = vms_qmp_error_from_class (message->error_class);
  if (g_strcmp0 (vms_qmp_error_class_name (code), message->error_class) != 0)
    return g_error_new (VMS_QMP_ERROR, code, "%s: %s", message->error_class,
                        message->error_desc);
  return g_error_new_literal (VMS_QMP_ERROR, code, message->error_desc);
}
