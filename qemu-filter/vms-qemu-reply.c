/* vmshift qemu-filter (internal): type-checked reading of QMP replies.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-qemu-reply.h"

#include <gio/gio.h>

static gboolean
shape_error (GError **error, const char *command, const char *member,
             const char *expected)
{
  g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_PROTOCOL,
               "reply to %s: '%s' is missing or not %s", command, member,
               expected);
  return FALSE;
}

/* The member's value node when it holds a value of type, else NULL. */
static JsonNode *
value_member (JsonObject *object, const char *member, GType type)
{
  JsonNode *node = json_object_get_member (object, member);

  if (!node || !JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != type)
    return NULL;
  return node;
}

JsonObject *
vms_reply_object (JsonNode *reply, const char *command, GError **error)
{
  if (!reply || !JSON_NODE_HOLDS_OBJECT (reply))
    {
      shape_error (error, command, "return", "an object");
      return NULL;
    }
  return json_node_get_object (reply);
}

JsonArray *
vms_reply_array (JsonNode *reply, const char *command, GError **error)
{
  if (!reply || !JSON_NODE_HOLDS_ARRAY (reply))
    {
      shape_error (error, command, "return", "an array");
      return NULL;
    }
  return json_node_get_array (reply);
}

JsonObject *
vms_reply_array_object (JsonArray *array, guint i, const char *command,
                        GError **error)
{
  JsonNode *node = json_array_get_element (array, i);

  if (!JSON_NODE_HOLDS_OBJECT (node))
    {
      g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_PROTOCOL,
                   "reply to %s: element %u is not an object", command, i);
      return NULL;
    }
  return json_node_get_object (node);
}

gboolean
vms_reply_string (JsonObject *object, const char *member, const char *command,
                  const char **out, GError **error)
{
  JsonNode *node = value_member (object, member, G_TYPE_STRING);

  if (!node)
    return shape_error (error, command, member, "a string");
  *out = json_node_get_string (node);
  return TRUE;
}

gboolean
vms_reply_uint (JsonObject *object, const char *member, const char *command,
                guint64 *out, GError **error)
{
  JsonNode *node = value_member (object, member, G_TYPE_INT64);

  if (!node || json_node_get_int (node) < 0)
    return shape_error (error, command, member, "a non-negative integer");
  *out = (guint64)json_node_get_int (node);
  return TRUE;
}

gboolean
vms_reply_bool (JsonObject *object, const char *member, const char *command,
                gboolean *out, GError **error)
{
  JsonNode *node = value_member (object, member, G_TYPE_BOOLEAN);

  if (!node)
    return shape_error (error, command, member, "a boolean");
  *out = json_node_get_boolean (node);
  return TRUE;
}

gboolean
vms_reply_opt_string (JsonObject *object, const char *member,
                      const char *command, const char *fallback,
                      const char **out, GError **error)
{
  if (!json_object_has_member (object, member))
    {
      *out = fallback;
      return TRUE;
    }
  return vms_reply_string (object, member, command, out, error);
}

gboolean
vms_reply_opt_bool (JsonObject *object, const char *member, const char *command,
                    gboolean fallback, gboolean *out, GError **error)
{
  if (!json_object_has_member (object, member))
    {
      *out = fallback;
      return TRUE;
    }
  return vms_reply_bool (object, member, command, out, error);
}

gboolean
vms_reply_opt_object (JsonObject *object, const char *member,
                      const char *command, JsonObject **out, GError **error)
{
  JsonNode *node = json_object_get_member (object, member);

  *out = NULL;
  if (!node)
    return TRUE;
  if (!JSON_NODE_HOLDS_OBJECT (node))
    return shape_error (error, command, member, "an object");
  *out = json_node_get_object (node);
  return TRUE;
}

gboolean
vms_reply_opt_array (JsonObject *object, const char *member,
                     const char *command, JsonArray **out, GError **error)
{
  JsonNode *node = json_object_get_member (object, member);

  *out = NULL;
  if (!node)
    return TRUE;
  if (!JSON_NODE_HOLDS_ARRAY (node))
    return shape_error (error, command, member, "an array");
  *out = json_node_get_array (node);
  return TRUE;
}

JsonObject *
vms_reply_find_node (VmsQmp *qmp, const char *node_name, JsonNode **nodes,
                     GError **error)
{
  static const char command[] = "query-named-block-nodes";
  JsonArray *array;

  if (!*nodes)
    {
      g_autoptr (JsonObject) arguments = json_object_new ();

      /* flat: without it every node also carries its whole backing chain. */
      json_object_set_boolean_member (arguments, "flat", TRUE);
      *nodes = vms_qmp_execute (qmp, command, arguments, error);
      if (!*nodes)
        return NULL;
    }
  if (!(array = vms_reply_array (*nodes, command, error)))
    return NULL;
  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      JsonObject *node = vms_reply_array_object (array, i, command, error);
      const char *name;

      if (!node || !vms_reply_string (node, "node-name", command, &name, error))
        return NULL;
      if (g_str_equal (name, node_name))
        return node;
    }
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
               "QEMU has no block node named '%s'", node_name);
  return NULL;
}

gboolean
vms_reply_error_says (const GError *error, const char *needle)
{
  return error && error->domain == VMS_QMP_ERROR
         && strstr (error->message, needle) != NULL;
}
