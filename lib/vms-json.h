/* vmshift: reading members of JSON that came from elsewhere (QMP, a
 * file, vmshiftd), where a member may be missing or of another type:
 * json-glib's own getters log a critical for those, and tests make
 * criticals fatal.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* object's member when it is a string; NULL when object is NULL, the
 * member is missing or it is anything else. */
const char *vms_json_string_member (JsonObject *object, const char *member);

G_END_DECLS
