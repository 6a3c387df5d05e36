/* vmshift: the estimate file, STATE_DIR/estimate-ID.json.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-estimate-file.h"
#include "vms-job.h"

#include <json-glib/json-glib.h>

/* QEMU's UUID for a VM started without -uuid. */
#define NO_UUID "00000000-0000-0000-0000-000000000000"

gboolean
vms_estimate_load_prediction (const char *state_dir, const char *id,
                              const char *vm_uuid, const char *vm_name,
                              const char *source, VmsPrediction *out,
                              GError **error)
{
  g_autofree char *file = g_strdup_printf ("estimate-%s.json", id);
  g_autofree char *path = g_build_filename (state_dir, file, NULL);
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonObject *root, *link;
  JsonArray *vms;

  if (!vms_job_id_is_valid (id, error))
    return FALSE;
  if (!json_parser_load_from_file (parser, path, error))
    {
      g_prefix_error (error, "estimate %s: ", id);
      return FALSE;
    }
  root = JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser))
             ? json_node_get_object (json_parser_get_root (parser))
             : NULL;
  link = root ? json_object_get_object_member (root, "link") : NULL;
  vms = root ? json_object_get_array_member (root, "vms") : NULL;
  if (!link || !vms)
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_CORRUPT,
                   "estimate %s: %s is not an estimate", id, path);
      return FALSE;
    }
  for (guint i = 0; i < json_array_get_length (vms); i++)
    {
      JsonObject *vm = json_array_get_object_element (vms, i);
      const char *uuid
          = json_object_get_string_member_with_default (vm, "vm-uuid", "");
      const char *name
          = json_object_get_string_member_with_default (vm, "vm-name", "");
      JsonObject *prediction = json_object_get_object_member (vm, "prediction");

      const char *address
          = json_object_get_string_member_with_default (vm, "source", "");
      gboolean match;

      /* QEMU reports an all-zero UUID for a VM started without -uuid:
       * such VMs are told apart by name, and unnamed ones by the QMP
       * address they were estimated at. */
      if (*uuid && !g_str_equal (uuid, NO_UUID))
        match = g_str_equal (uuid, vm_uuid);
      else if (*name)
        match = g_str_equal (name, vm_name);
      else
        match = g_str_equal (address, source);
      if (!prediction || !match)
        continue;
#define NUMBER(object, member)                                                 \
  json_object_get_double_member_with_default (object, member, 0)
      out->total_pause_s = NUMBER (prediction, "total-pause-seconds");
      out->total_mirror_s = NUMBER (prediction, "total-mirror-seconds");
      out->downtime_pause_s = NUMBER (prediction, "downtime-pause-seconds");
      out->downtime_mirror_s = NUMBER (prediction, "downtime-mirror-seconds");
#undef NUMBER
      out->connections
          = json_object_get_int_member_with_default (link, "connections", 0);
      out->request_size
          = json_object_get_int_member_with_default (link, "request-size", 0);
      return TRUE;
    }
  g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
               "estimate %s has no prediction for VM '%s' (uuid %s)", id,
               vm_name, vm_uuid);
  return FALSE;
}

