/* vmshift qemu-filter: dirty bitmaps on the source QEMU and their rounds.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-bitmap.h"
#include "vms-qemu-reply.h"

#include <gio/gio.h>

/* How QEMU 7.2 says that a node cannot store a persistent bitmap, as
 * opposed to any other failure of block-dirty-bitmap-add.  A format without
 * the feature (raw) gives "Can't store persistent bitmaps to NODE:
 * Operation not supported"; a qcow2 that cannot take one more (a v2 image,
 * the bitmap directory full) gives "Can't make bitmap 'B' persistent in
 * 'NODE': ...".  The desc text is all QEMU offers: both are GenericError. */
#define CANNOT_STORE_TEXT "Can't store persistent bitmaps"
#define CANNOT_PERSIST_TEXT "persistent in"

void
vms_bitmap_info_free (VmsBitmapInfo *info)
{
  if (!info)
    return;
  g_free (info->name);
  g_free (info);
}

static gboolean
add_bitmap (VmsQmp *qmp, const char *node, const char *name,
            guint32 granularity, gboolean persistent, GError **error)
{
  g_autoptr (JsonObject) arguments = json_object_new ();
  g_autoptr (JsonNode) reply = NULL;

  json_object_set_string_member (arguments, "node", node);
  json_object_set_string_member (arguments, "name", name);
  json_object_set_boolean_member (arguments, "persistent", persistent);
  /* Explicit: QEMU's own default follows the qcow2 cluster size (4 KiB
   * clusters give 4 KiB bits), and a round copies whole bits. */
  json_object_set_int_member (arguments, "granularity",
                              granularity ? granularity
                                          : VMS_BITMAP_DEFAULT_GRANULARITY);
  reply = vms_qmp_execute (qmp, "block-dirty-bitmap-add", arguments, error);
  return reply != NULL;
}

static gboolean
cannot_persist (const GError *error)
{
  return vms_reply_error_says (error, CANNOT_STORE_TEXT)
         || (vms_reply_error_says (error, "Can't make bitmap")
             && vms_reply_error_says (error, CANNOT_PERSIST_TEXT));
}

gboolean
vms_bitmap_add_temporary (VmsQmp *qmp, const char *node, const char *name,
                          guint32 granularity, GError **error)
{
  if (!add_bitmap (qmp, node, name, granularity, FALSE, error))
    {
      g_prefix_error (error, "adding bitmap '%s' on node '%s': ", name,
                      node);
      return FALSE;
    }
  return TRUE;
}

gboolean
vms_bitmap_add (VmsQmp *qmp, const char *node, const char *name,
                guint32 granularity, gboolean *persistent_out, GError **error)
{
  g_autoptr (GError) persistent_error = NULL;

  if (add_bitmap (qmp, node, name, granularity, TRUE, &persistent_error))
    {
      if (persistent_out)
        *persistent_out = TRUE;
      return TRUE;
    }
  if (!cannot_persist (persistent_error))
    {
      g_propagate_prefixed_error (error, g_steal_pointer (&persistent_error),
                                  "adding bitmap '%s' on node '%s': ", name,
                                  node);
      return FALSE;
    }
  if (!add_bitmap (qmp, node, name, granularity, FALSE, error))
    {
      g_prefix_error (error,
                      "adding bitmap '%s' on node '%s' (non-persistent: the "
                      "node cannot store persistent ones): ",
                      name, node);
      return FALSE;
    }
  if (persistent_out)
    *persistent_out = FALSE;
  return TRUE;
}

static JsonObject *
transaction_action (const char *type, JsonObject *data)
{
  JsonObject *action = json_object_new ();

  json_object_set_string_member (action, "type", type);
  json_object_set_object_member (action, "data", data);
  return action;
}

static JsonObject *
bitmap_reference (const char *node, const char *name)
{
  JsonObject *data = json_object_new ();

  json_object_set_string_member (data, "node", node);
  json_object_set_string_member (data, "name", name);
  return data;
}

static VmsBitmapInfo *
find_info (GPtrArray *infos, const char *name)
{
  for (guint i = 0; i < infos->len; i++)
    {
      VmsBitmapInfo *info = infos->pdata[i];

      if (g_str_equal (info->name, name))
        return info;
    }
  return NULL;
}

static gboolean
switch_bitmaps (VmsQmp *qmp, const char *node, const char *old_name,
                const char *new_name, gboolean persistent, GError **error)
{
  g_autoptr (GPtrArray) infos = vms_bitmap_list (qmp, node, error);
  g_autoptr (JsonObject) arguments = json_object_new ();
  g_autoptr (JsonNode) reply = NULL;
  VmsBitmapInfo *old, *next;
  JsonObject *added;
  JsonArray *actions;

  if (!infos)
    return FALSE;
  if (!(old = find_info (infos, old_name)))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   "bitmap '%s' does not exist", old_name);
      return FALSE;
    }
  /* A vmshift that died after the switch and before noting it resumes
   * here: the switch is done, doing it again would fail on the name. */
  next = find_info (infos, new_name);
  if (next && !old->recording && next->recording)
    return TRUE;

  added = bitmap_reference (node, new_name);
  json_object_set_boolean_member (added, "persistent", persistent);
  /* Rounds must agree on what one bit covers. */
  json_object_set_int_member (added, "granularity", old->granularity);
  actions = json_array_new ();
  json_array_add_object_element (
      actions, transaction_action ("block-dirty-bitmap-disable",
                                   bitmap_reference (node, old_name)));
  json_array_add_object_element (
      actions, transaction_action ("block-dirty-bitmap-add", added));
  json_object_set_array_member (arguments, "actions", actions);
  reply = vms_qmp_execute (qmp, "transaction", arguments, error);
  return reply != NULL;
}

gboolean
vms_bitmap_switch (VmsQmp *qmp, const char *node, const char *old_name,
                   const char *new_name, gboolean persistent, GError **error)
{
  if (!switch_bitmaps (qmp, node, old_name, new_name, persistent, error))
    {
      g_prefix_error (error,
                      "switching dirty round on node '%s' from bitmap '%s' "
                      "to '%s': ",
                      node, old_name, new_name);
      return FALSE;
    }
  return TRUE;
}

gboolean
vms_bitmap_remove (VmsQmp *qmp, const char *node, const char *name,
                   GError **error)
{
  g_autoptr (JsonObject) arguments = bitmap_reference (node, name);
  g_autoptr (JsonNode) reply = NULL;

  reply = vms_qmp_execute (qmp, "block-dirty-bitmap-remove", arguments, error);
  if (!reply)
    {
      g_prefix_error (error, "removing bitmap '%s' from node '%s': ", name,
                      node);
      return FALSE;
    }
  return TRUE;
}

static VmsBitmapInfo *
parse_info (JsonObject *object, GError **error)
{
  static const char command[] = "query-named-block-nodes";
  g_autoptr (VmsBitmapInfo) info = g_new0 (VmsBitmapInfo, 1);
  const char *name;
  guint64 granularity;

  if (!vms_reply_string (object, "name", command, &name, error)
      || !vms_reply_uint (object, "count", command, &info->count, error)
      || !vms_reply_uint (object, "granularity", command, &granularity, error)
      || !vms_reply_bool (object, "recording", command, &info->recording, error)
      || !vms_reply_bool (object, "persistent", command, &info->persistent,
                          error)
      || !vms_reply_bool (object, "busy", command, &info->busy, error)
      /* Present only when true. */
      || !vms_reply_opt_bool (object, "inconsistent", command, FALSE,
                              &info->inconsistent, error))
    return NULL;
  if (granularity == 0 || granularity > G_MAXUINT32)
    {
      g_set_error (
          error, VMS_QMP_ERROR, VMS_QMP_ERROR_PROTOCOL,
          "reply to %s: bitmap '%s' has granularity %" G_GUINT64_FORMAT,
          command, name, granularity);
      return NULL;
    }
  info->granularity = (guint32)granularity;
  info->name = g_strdup (name);
  return g_steal_pointer (&info);
}

static GPtrArray *
list_bitmaps (VmsQmp *qmp, const char *node, GError **error)
{
  g_autoptr (GPtrArray) infos
      = g_ptr_array_new_with_free_func ((GDestroyNotify)vms_bitmap_info_free);
  g_autoptr (JsonNode) nodes = NULL;
  JsonObject *entry = vms_reply_find_node (qmp, node, &nodes, error);
  JsonArray *bitmaps;

  /* 7.2 leaves "dirty-bitmaps" out of a node that has none. */
  if (!entry
      || !vms_reply_opt_array (entry, "dirty-bitmaps",
                               "query-named-block-nodes", &bitmaps, error))
    return NULL;
  for (guint i = 0; bitmaps && i < json_array_get_length (bitmaps); i++)
    {
      JsonObject *object = vms_reply_array_object (
          bitmaps, i, "query-named-block-nodes", error);
      VmsBitmapInfo *info;

      if (!object)
        return NULL;
      /* A block job's own bitmap (the mirror's) has no name. */
      if (!json_object_has_member (object, "name"))
        continue;
      info = parse_info (object, error);
      if (!info)
        return NULL;
      g_ptr_array_add (infos, info);
    }
  return g_steal_pointer (&infos);
}

GPtrArray *
vms_bitmap_list (VmsQmp *qmp, const char *node, GError **error)
{
  GPtrArray *infos = list_bitmaps (qmp, node, error);

  if (!infos)
    g_prefix_error (error, "listing bitmaps of node '%s': ", node);
  return infos;
}

VmsBitmapInfo *
vms_bitmap_query (VmsQmp *qmp, const char *node, const char *name,
                  GError **error)
{
  g_autoptr (GPtrArray) infos = list_bitmaps (qmp, node, error);
  g_autoptr (GString) names = g_string_new (NULL);

  if (!infos)
    {
      g_prefix_error (error, "querying bitmap '%s' on node '%s': ", name, node);
      return NULL;
    }
  for (guint i = 0; i < infos->len; i++)
    {
      VmsBitmapInfo *info = infos->pdata[i];

      if (g_str_equal (info->name, name))
        return g_ptr_array_steal_index (infos, i);
      g_string_append_printf (names, "%s'%s'", i ? ", " : "", info->name);
    }
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
               "querying bitmap '%s' on node '%s': no such bitmap (the node "
               "has %s)",
               name, node, infos->len ? names->str : "none");
  return NULL;
}
