/* vmshift: reading members of JSON that came from elsewhere.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-json.h"

const char *
vms_json_string_member (JsonObject *object, const char *member)
{
  JsonNode *node = object ? json_object_get_member (object, member) : NULL;

  if (!node || !JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (node);
}
