/* vmshift sink: what the sink knows about a replica besides its bytes.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-sink-meta.h"
#include "vms-sink-error.h"
#include "vms-sink-name.h"
#include "vms-file.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

VmsSinkMeta *
vms_sink_meta_new (const char *name, guint64 size, const char *device)
{
  VmsSinkMeta *meta = g_new0 (VmsSinkMeta, 1);

  meta->name = g_strdup (name);
  meta->size = size;
  meta->device = g_strdup (device);
  meta->created = g_get_real_time () / G_USEC_PER_SEC;
  return meta;
}

void
vms_sink_meta_free (VmsSinkMeta *meta)
{
  if (!meta)
    return;
  g_free (meta->name);
  g_free (meta->device);
  g_free (meta);
}

char *
vms_sink_meta_data_path (const char *dir, const VmsSinkMeta *meta)
{
  return meta->device ? g_strdup (meta->device)
                      : g_build_filename (dir, meta->name, NULL);
}

static char *
meta_path (const char *dir, const char *name)
{
  g_autofree char *file = g_strconcat (name, ".json", NULL);

  return g_build_filename (dir, VMS_SINK_META_DIR, file, NULL);
}

static gboolean
metadata_error (GError **error, const char *path, const char *what)
{
  g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_METADATA,
               "replica metadata %s: %s", path, what);
  return FALSE;
}

VmsSinkMeta *
vms_sink_meta_load (const char *dir, const char *name, GError **error)
{
  g_autofree char *path = meta_path (dir, name);
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  g_autoptr (GError) load_error = NULL;
  g_autoptr (VmsSinkMeta) meta = NULL;
  JsonObject *object;
  JsonNode *root;
  gint64 size;

  if (!json_parser_load_from_mapped_file (parser, path, &load_error))
    {
      if (g_error_matches (load_error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_NOT_FOUND,
                     "no replica named '%s'; create it by opening the "
                     "export %s@create=SIZE", name, name);
      else
        g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_METADATA,
                     "replica metadata: %s", load_error->message);
      return NULL;
    }
  root = json_parser_get_root (parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root))
    {
      metadata_error (error, path, "not a JSON object");
      return NULL;
    }
  object = json_node_get_object (root);
  size = json_object_get_int_member_with_default (object, "size", -1);
  if (size < 0
      || g_strcmp0 (json_object_get_string_member_with_default (object,
                                                                "name", NULL),
                    name) != 0)
    {
      metadata_error (error, path, "size or name missing or wrong");
      return NULL;
    }
  meta = vms_sink_meta_new (
      name, size,
      json_object_get_string_member_with_default (object, "device", NULL));
  meta->complete = json_object_get_boolean_member_with_default (
      object, "complete", FALSE);
  meta->created = json_object_get_int_member_with_default (object, "created",
                                                           0);
  meta->committed = json_object_get_int_member_with_default (
      object, "committed", 0);
  return g_steal_pointer (&meta);
}

gboolean
vms_sink_meta_save (const char *dir, const VmsSinkMeta *meta, GError **error)
{
  g_autofree char *meta_dir = g_build_filename (dir, VMS_SINK_META_DIR, NULL);
  g_autofree char *path = meta_path (dir, meta->name);
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree char *text = NULL;

  if (g_mkdir_with_parents (meta_dir, 0700) < 0)
    {
      g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_IO, "mkdir %s: %s",
                   meta_dir, g_strerror (errno));
      return FALSE;
    }
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "name");
  json_builder_add_string_value (builder, meta->name);
  json_builder_set_member_name (builder, "size");
  json_builder_add_int_value (builder, meta->size);
  json_builder_set_member_name (builder, "complete");
  json_builder_add_boolean_value (builder, meta->complete);
  json_builder_set_member_name (builder, "created");
  json_builder_add_int_value (builder, meta->created);
  json_builder_set_member_name (builder, "committed");
  json_builder_add_int_value (builder, meta->committed);
  if (meta->device)
    {
      json_builder_set_member_name (builder, "device");
      json_builder_add_string_value (builder, meta->device);
    }
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  json_generator_set_pretty (generator, TRUE);
  text = json_generator_to_data (generator, NULL);

  return vms_file_replace_durably (path, text, 0600, error);
}

gboolean
vms_sink_meta_remove (const char *dir, const char *name, gboolean *existed,
                      GError **error)
{
  g_autofree char *meta_dir = g_build_filename (dir, VMS_SINK_META_DIR, NULL);
  g_autofree char *path = meta_path (dir, name);

  *existed = g_unlink (path) == 0;
  if (!*existed && errno != ENOENT)
    {
      g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_IO, "unlink %s: %s",
                   path, g_strerror (errno));
      return FALSE;
    }
  return !*existed || vms_file_sync_directory (meta_dir, error);
}

static int
compare_strings (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (*(char *const *) a, *(char *const *) b);
}

GStrv
vms_sink_meta_list (const char *dir, GError **error)
{
  g_autofree char *meta_dir = g_build_filename (dir, VMS_SINK_META_DIR, NULL);
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GDir) handle = NULL;
  g_autoptr (GError) open_error = NULL;
  const char *entry;

  handle = g_dir_open (meta_dir, 0, &open_error);
  if (!handle && !g_error_matches (open_error, G_FILE_ERROR,
                                   G_FILE_ERROR_NOENT))
    {
      g_propagate_error (error, g_steal_pointer (&open_error));
      return NULL;
    }
  while (handle && (entry = g_dir_read_name (handle)))
    {
      g_autofree char *name = NULL;

      if (!g_str_has_suffix (entry, ".json"))
        continue;
      name = g_strndup (entry, strlen (entry) - strlen (".json"));
      /* Skip leftovers such as editor backups or temp files. */
      if (vms_sink_name_is_valid (name, NULL))
        g_ptr_array_add (names, g_steal_pointer (&name));
    }
  g_ptr_array_sort (names, compare_strings);
  g_ptr_array_add (names, NULL);
  return (GStrv) g_ptr_array_free (g_steal_pointer (&names), FALSE);
}
