/* vmshift qemu-filter: QEMU's I/O throttling of a guest's disk device.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-throttle.h"
#include "vms-disk.h"
#include "vms-qemu-reply.h"

#include <gio/gio.h>

/* What block_set_io_throttle takes besides the device, as query-block
 * names them in QEMU 7.2; the first six are mandatory arguments. */
static const char *const limit_members[] = {
  "bps",
  "bps_rd",
  "bps_wr",
  "iops",
  "iops_rd",
  "iops_wr",
  "bps_max",
  "bps_rd_max",
  "bps_wr_max",
  "iops_max",
  "iops_rd_max",
  "iops_wr_max",
  "bps_max_length",
  "bps_rd_max_length",
  "bps_wr_max_length",
  "iops_max_length",
  "iops_rd_max_length",
  "iops_wr_max_length",
  "iops_size",
  NULL,
};
#define MANDATORY_MEMBERS 6

/* The query-block entry of disk (borrowed from reply), or an error. */
static JsonObject *
find_entry (JsonNode *reply, const char *disk, GError **error)
{
  static const char command[] = "query-block";
  JsonArray *entries = vms_reply_array (reply, command, error);

  for (guint i = 0; entries && i < json_array_get_length (entries); i++)
    {
      JsonObject *entry = vms_reply_array_object (entries, i, command, error);
      JsonObject *inserted = NULL;
      g_autofree char *name = NULL;

      if (!entry
          || !vms_reply_opt_object (entry, "inserted", command, &inserted,
                                    error))
        return NULL;
      if (!inserted)
        continue;
      name = vms_disk_name (
          json_object_get_string_member_with_default (entry, "qdev", ""),
          json_object_get_string_member_with_default (entry, "device", ""),
          json_object_get_string_member_with_default (inserted, "node-name",
                                                      ""));
      if (g_strcmp0 (name, disk) == 0)
        return entry;
    }
  if (entries)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                 "throttling disk %s: QEMU has no such device", disk);
  return NULL;
}

JsonObject *
vms_throttle_query (VmsQmp *qmp, const char *disk, GError **error)
{
  g_autoptr (JsonNode) reply
      = vms_qmp_execute (qmp, "query-block", NULL, error);
  JsonObject *entry = reply ? find_entry (reply, disk, error) : NULL;
  JsonObject *inserted, *limits;

  if (!entry)
    return NULL;
  inserted = json_object_get_object_member (entry, "inserted");
  limits = json_object_new ();
  for (guint i = 0; limit_members[i]; i++)
    if (json_object_has_member (inserted, limit_members[i]))
      json_object_set_int_member (
          limits, limit_members[i],
          json_object_get_int_member (inserted, limit_members[i]));
  if (json_object_has_member (inserted, "group"))
    json_object_set_string_member (
        limits, "group", json_object_get_string_member (inserted, "group"));
  return limits;
}

gboolean
vms_throttle_set (VmsQmp *qmp, const char *disk, JsonObject *limits,
                  GError **error)
{
  g_autoptr (JsonNode) query
      = vms_qmp_execute (qmp, "query-block", NULL, error);
  JsonObject *entry = query ? find_entry (query, disk, error) : NULL;
  g_autoptr (JsonObject) arguments = NULL;
  g_autoptr (JsonNode) reply = NULL;
  const char *qdev;

  if (!entry)
    return FALSE;
  arguments = json_object_new ();
  /* A device has a qdev path; a -drive backend without one its name. */
  qdev = json_object_get_string_member_with_default (entry, "qdev", "");
  if (*qdev)
    json_object_set_string_member (arguments, "id", qdev);
  else
    json_object_set_string_member (
        arguments, "device", json_object_get_string_member (entry, "device"));
  for (guint i = 0; limit_members[i]; i++)
    if (i < MANDATORY_MEMBERS
        || json_object_has_member (limits, limit_members[i]))
      json_object_set_int_member (arguments, limit_members[i],
                                  vms_throttle_get (limits, limit_members[i]));
  if (json_object_has_member (limits, "group"))
    json_object_set_string_member (
        arguments, "group", json_object_get_string_member (limits, "group"));
  reply = vms_qmp_execute (qmp, "block_set_io_throttle", arguments, error);
  if (!reply)
    {
      g_prefix_error (error, "throttling disk %s: ", disk);
      return FALSE;
    }
  return TRUE;
}

guint64
vms_throttle_get (JsonObject *limits, const char *member)
{
  gint64 value = json_object_get_int_member_with_default (limits, member, 0);

  return value > 0 ? (guint64)value : 0;
}

JsonObject *
vms_throttle_limit_writes (JsonObject *limits, guint64 bps_wr,
                           const char **member)
{
  JsonObject *limited = json_object_new ();
  GList *members = json_object_get_members (limits);
  guint64 current;

  for (GList *l = members; l; l = l->next)
    json_object_set_member (limited, l->data,
                            json_object_dup_member (limits, l->data));
  g_list_free (members);
  *member = vms_throttle_get (limits, "bps") ? "bps" : "bps_wr";
  current = vms_throttle_get (limits, *member);
  if (!current || bps_wr < current)
    json_object_set_int_member (limited, *member, bps_wr);
  return limited;
}
