/* vmshift qemu-filter: the disks of a running QEMU.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-disk.h"
#include "vms-qemu-reply.h"

#include <gio/gio.h>

/* qdev paths of devices created with an id: "/machine/peripheral/ID/..."
 * (virtio-blk reports its inner "virtio-backend" below it). */
#define PERIPHERAL_PREFIX "/machine/peripheral/"

/* Filters stacked on one disk before its format node is reached.  vmshift
 * adds one (the live mirror's), a user may have a throttle; more than this
 * means a graph we do not understand. */
#define MAX_FILTER_DEPTH 8

/* Drivers whose node only passes I/O to one child ("file" or "backing").
 * query-block reports a filter with a user-given node name instead of the
 * format node below it (e.g. "vmslive", drv "mirror_top", while the live
 * mirror runs); bitmaps and exports belong on the format node. */
static const char *const filter_drivers[] = {
  "mirror_top",        "commit_top",   "throttle",
  "copy-before-write", "copy-on-read", "compress",
  "preallocate",       "blklogwrites", NULL,
};

/* Replies fetched at most once per discovery, only when a filter is met. */
typedef struct
{
  VmsQmp *qmp;     /* the client, borrowed */
  JsonNode *graph; /* x-debug-query-block-graph reply, or NULL */
  JsonNode *nodes; /* query-named-block-nodes {flat} reply, or NULL */
} Discovery;

static void
discovery_clear (Discovery *discovery)
{
  g_clear_pointer (&discovery->graph, json_node_unref);
  g_clear_pointer (&discovery->nodes, json_node_unref);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Discovery, discovery_clear)

void
vms_disk_free (VmsDisk *disk)
{
  if (!disk)
    return;
  g_free (disk->name);
  g_free (disk->node_name);
  g_free (disk->format);
  g_free (disk->filename);
  g_free (disk);
}

static gboolean
is_filter (const char *driver)
{
  return g_strv_contains (filter_drivers, driver);
}

char *
vms_disk_name (const char *qdev, const char *device, const char *node_name)
{
  if (g_str_has_prefix (qdev, PERIPHERAL_PREFIX))
    {
      const char *id = qdev + strlen (PERIPHERAL_PREFIX);
      const char *end = strchr (id, '/');
      gsize length = end ? (gsize)(end - id) : strlen (id);

      if (length > 0)
        return g_strndup (id, length);
    }
  /* A device that is itself the block backend's user and has an id (ide-cd,
   * scsi-hd) is reported by that id alone. */
  if (*qdev && qdev[0] != '/')
    return g_strdup (qdev);
  /* Anonymous devices ("/machine/peripheral-anon/device[3]/...") have no
   * stable name; a -drive backend name is the next best thing. */
  if (*device)
    return g_strdup (device);
  return g_strdup (node_name);
}

/* The graph node id of node_name, or -1. */
static gint64
graph_node_id (JsonArray *graph_nodes, const char *node_name, GError **error)
{
  for (guint i = 0; i < json_array_get_length (graph_nodes); i++)
    {
      JsonObject *node = vms_reply_array_object (
          graph_nodes, i, "x-debug-query-block-graph", error);
      const char *name;
      guint64 id;

      if (!node
          || !vms_reply_string (node, "name", "x-debug-query-block-graph",
                                &name, error)
          || !vms_reply_uint (node, "id", "x-debug-query-block-graph", &id,
                              error))
        return -1;
      if (g_str_equal (name, node_name))
        return (gint64)id;
    }
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
               "node '%s' is not in QEMU's block graph", node_name);
  return -1;
}

/* The name of the node that filter_name passes its I/O to. */
static const char *
filtered_child (Discovery *discovery, const char *filter_name, GError **error)
{
  static const char command[] = "x-debug-query-block-graph";
  JsonObject *graph;
  JsonArray *nodes = NULL, *edges = NULL;
  gint64 parent;

  /* The only query naming a node's children.  It is "x-" (unstable), but
   * it is needed only when a filter sits on the disk. */
  if (!discovery->graph
      && !(discovery->graph
           = vms_qmp_execute (discovery->qmp, command, NULL, error)))
    return NULL;
  if (!JSON_NODE_HOLDS_OBJECT (discovery->graph))
    {
      g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_PROTOCOL,
                   "reply to %s is not an object", command);
      return NULL;
    }
  graph = json_node_get_object (discovery->graph);
  if (!vms_reply_opt_array (graph, "nodes", command, &nodes, error)
      || !vms_reply_opt_array (graph, "edges", command, &edges, error))
    return NULL;
  if (!nodes || !edges)
    {
      g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_PROTOCOL,
                   "reply to %s lacks 'nodes' or 'edges'", command);
      return NULL;
    }
  parent = graph_node_id (nodes, filter_name, error);
  if (parent < 0)
    return NULL;
  for (guint i = 0; i < json_array_get_length (edges); i++)
    {
      JsonObject *edge = vms_reply_array_object (edges, i, command, error);
      const char *role;
      guint64 from, to;

      if (!edge || !vms_reply_uint (edge, "parent", command, &from, error)
          || !vms_reply_uint (edge, "child", command, &to, error)
          || !vms_reply_string (edge, "name", command, &role, error))
        return NULL;
      if ((gint64)from != parent
          || !(g_str_equal (role, "file") || g_str_equal (role, "backing")))
        continue;
      for (guint j = 0; j < json_array_get_length (nodes); j++)
        {
          JsonObject *node = vms_reply_array_object (nodes, j, command, error);
          const char *name;
          guint64 id;

          if (!node || !vms_reply_uint (node, "id", command, &id, error)
              || !vms_reply_string (node, "name", command, &name, error))
            return NULL;
          if (id == to)
            return name;
        }
    }
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
               "filter node '%s' has no 'file' or 'backing' child",
               filter_name);
  return NULL;
}

/* The query-named-block-nodes entry of node_name (borrowed), queried
 * once per discovery. */
static JsonObject *
named_node (Discovery *discovery, const char *node_name, GError **error)
{
  return vms_reply_find_node (discovery->qmp, node_name, &discovery->nodes,
                              error);
}

/* inserted (a BlockDeviceInfo) itself, or the first non-filter node below
 * it (borrowed from discovery). */
static JsonObject *
format_node (Discovery *discovery, JsonObject *inserted, GError **error)
{
  JsonObject *node = inserted;

  for (guint depth = 0;; depth++)
    {
      const char *name, *driver;

      if (!vms_reply_string (node, "node-name", "query-block", &name, error)
          || !vms_reply_string (node, "drv", "query-block", &driver, error))
        return NULL;
      if (!is_filter (driver))
        return node;
      if (depth == MAX_FILTER_DEPTH)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                       "more than %d filters stacked above node '%s'",
                       MAX_FILTER_DEPTH, name);
          return NULL;
        }
      if (!(name = filtered_child (discovery, name, error))
          || !(node = named_node (discovery, name, error)))
        return NULL;
    }
}

/* One query-block entry as a disk; NULL without error for an entry
 * without a medium. */
static VmsDisk *
parse_disk (Discovery *discovery, JsonObject *entry, GError **error)
{
  static const char command[] = "query-block";
  g_autoptr (VmsDisk) disk = g_new0 (VmsDisk, 1);
  JsonObject *inserted = NULL, *node, *image = NULL;
  const char *device, *qdev, *node_name, *driver, *file;
  gboolean read_only;

  if (!vms_reply_opt_object (entry, "inserted", command, &inserted, error))
    return NULL;
  if (!inserted)
    return NULL;
  if (!vms_reply_string (entry, "device", command, &device, error)
      || !vms_reply_opt_string (entry, "qdev", command, "", &qdev, error)
      || !vms_reply_bool (inserted, "ro", command, &read_only, error)
      || !(node = format_node (discovery, inserted, error))
      || !vms_reply_string (node, "node-name", command, &node_name, error)
      || !vms_reply_string (node, "drv", command, &driver, error)
      || !vms_reply_string (node, "file", command, &file, error)
      || !vms_reply_opt_object (node, "image", command, &image, error))
    return NULL;
  if (!image
      || !vms_reply_uint (image, "virtual-size", command, &disk->size, error))
    {
      if (!image)
        g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_PROTOCOL,
                     "reply to %s: node '%s' has no 'image'", command,
                     node_name);
      return NULL;
    }
  disk->name = vms_disk_name (qdev, device, node_name);
  disk->node_name = g_strdup (node_name);
  disk->format = g_strdup (driver);
  disk->filename = g_strdup (file);
  disk->read_only = read_only;
  return g_steal_pointer (&disk);
}

GPtrArray *
vms_disk_discover (VmsQmp *qmp, GError **error)
{
  g_autoptr (GPtrArray) disks
      = g_ptr_array_new_with_free_func ((GDestroyNotify)vms_disk_free);
  g_autoptr (JsonNode) reply = NULL;
  g_auto (Discovery) discovery = { .qmp = qmp };
  JsonArray *entries;

  reply = vms_qmp_execute (qmp, "query-block", NULL, error);
  if (!reply || !(entries = vms_reply_array (reply, "query-block", error)))
    {
      g_prefix_error (error, "discovering disks: ");
      return NULL;
    }
  for (guint i = 0; i < json_array_get_length (entries); i++)
    {
      JsonObject *entry
          = vms_reply_array_object (entries, i, "query-block", error);
      g_autoptr (GError) local_error = NULL;
      VmsDisk *disk;

      if (!entry)
        {
          g_prefix_error (error, "discovering disks: ");
          return NULL;
        }
      disk = parse_disk (&discovery, entry, &local_error);
      if (local_error)
        {
          const char *device = json_object_get_string_member_with_default (
              entry, "device", "");
          const char *qdev
              = json_object_get_string_member_with_default (entry, "qdev", "");

          g_propagate_prefixed_error (
              error, g_steal_pointer (&local_error),
              "discovering disks: block device %u ('%s', qdev '%s'): ", i,
              device, qdev);
          return NULL;
        }
      if (disk)
        g_ptr_array_add (disks, disk);
    }
  if (disks->len == 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   "discovering disks: QEMU has no block device with a "
                   "medium (query-block lists %u without one); nothing to "
                   "migrate",
                   json_array_get_length (entries));
      return NULL;
    }
  return g_steal_pointer (&disks);
}

VmsDisk *
vms_disk_find (GPtrArray *disks, const char *name, GError **error)
{
  g_autoptr (GString) known = g_string_new (NULL);

  for (guint i = 0; i < disks->len; i++)
    {
      VmsDisk *disk = disks->pdata[i];

      if (g_str_equal (disk->name, name))
        return disk;
    }
  /* Names win over node names: a device "d0" beats node "d0" of another. */
  for (guint i = 0; i < disks->len; i++)
    {
      VmsDisk *disk = disks->pdata[i];

      if (g_str_equal (disk->node_name, name))
        return disk;
      g_string_append_printf (known, "%s%s (node %s, %s)", i ? ", " : "",
                              disk->name, disk->node_name, disk->format);
    }
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
               "no disk named '%s'; the disks are: %s", name,
               disks->len ? known->str : "none");
  return NULL;
}
