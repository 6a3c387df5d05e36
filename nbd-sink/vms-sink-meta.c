/* vmshift sink: what the sink knows about a replica besides its bytes.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-sink-meta.h"
#include "vms-sink-error.h"
#include "vms-sink-name.h"
#include "vms-sink-file.h"
#include "vms-sink-live-log.h"

#include <dirent.h>
#include <errno.h>
#include <json-glib/json-glib.h>
#include <string.h>
#include <unistd.h>

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
  g_free (meta->seed);
  g_free (meta);
}

char *
vms_sink_meta_data_path (const char *dir, const VmsSinkMeta *meta)
{
  return meta->device ? g_strdup (meta->device)
                      : g_build_filename (dir, meta->name, NULL);
}

/* Metadata is a few hundred bytes; anything much larger was not written
 * by the sink, and is not read into memory. */
#define META_MAX_SIZE (64 * 1024)

/* DIR/.vmshift, opened without following a link (made first if create);
 * G_FILE_ERROR_NOENT if it does not exist. */
static int
meta_dir_open (const char *dir, gboolean create, GError **error)
{
  int dir_fd = vms_sink_file_open_dir (dir, error);
  int fd;

  if (dir_fd < 0)
    return -1;
  fd = vms_sink_file_open_subdir (dir_fd, dir, VMS_SINK_META_DIR, create,
                                  error);
  close (dir_fd);
  return fd;
}

static gboolean
metadata_error (GError **error, const char *path, const char *what)
{
  g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_METADATA,
               "replica metadata %s: %s", path, what);
  return FALSE;
}

/* The metadata of replica name from text, read from path. */
static VmsSinkMeta *
meta_parse (const char *path, const char *name, const char *text, gsize length,
            GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  g_autoptr (GError) parse_error = NULL;
  g_autoptr (VmsSinkMeta) meta = NULL;
  JsonObject *object;
  JsonNode *root;
  gint64 size;

  if (!json_parser_load_from_data (parser, text, length, &parse_error))
    {
      metadata_error (error, path, parse_error->message);
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
      || g_strcmp0 (
             json_object_get_string_member_with_default (object, "name", NULL),
             name)
             != 0)
    {
      metadata_error (error, path, "size or name missing or wrong");
      return NULL;
    }
  meta = vms_sink_meta_new (
      name, size,
      json_object_get_string_member_with_default (object, "device", NULL));
  meta->complete
      = json_object_get_boolean_member_with_default (object, "complete", FALSE);
  meta->created
      = json_object_get_int_member_with_default (object, "created", 0);
  meta->committed
      = json_object_get_int_member_with_default (object, "committed", 0);
  meta->seed = g_strdup (
      json_object_get_string_member_with_default (object, "seed", NULL));
  return g_steal_pointer (&meta);
}

VmsSinkMeta *
vms_sink_meta_load (const char *dir, const char *name, GError **error)
{
  g_autofree char *meta_dir = g_build_filename (dir, VMS_SINK_META_DIR, NULL);
  g_autofree char *file = g_strconcat (name, ".json", NULL);
  g_autofree char *path = g_build_filename (meta_dir, file, NULL);
  g_autoptr (GError) read_error = NULL;
  g_autofree char *text = NULL;
  gsize length = 0;
  int fd = meta_dir_open (dir, FALSE, &read_error);

  if (fd >= 0)
    {
      text = vms_sink_file_read (fd, meta_dir, file, META_MAX_SIZE, &length,
                                 &read_error);
      close (fd);
    }
  if (text)
    return meta_parse (path, name, text, length, error);
  if (g_error_matches (read_error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
    g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_NOT_FOUND,
                 "no replica named '%s'; create it by opening the "
                 "export %s@create=SIZE",
                 name, name);
  else if (read_error->domain == VMS_SINK_ERROR)
    g_set_error (error, VMS_SINK_ERROR, read_error->code,
                 "replica metadata: %s", read_error->message);
  else
    g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_METADATA,
                 "replica metadata: %s", read_error->message);
  return NULL;
}

gboolean
vms_sink_meta_save (const char *dir, const VmsSinkMeta *meta, GError **error)
{
  g_autofree char *meta_dir = g_build_filename (dir, VMS_SINK_META_DIR, NULL);
  g_autofree char *file = g_strconcat (meta->name, ".json", NULL);
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree char *text = NULL;
  gboolean saved;
  int fd;

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
  if (meta->seed)
    {
      json_builder_set_member_name (builder, "seed");
      json_builder_add_string_value (builder, meta->seed);
    }
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  json_generator_set_pretty (generator, TRUE);
  text = json_generator_to_data (generator, NULL);

  /* Made again if someone deleted it while the sink runs. */
  fd = meta_dir_open (dir, TRUE, error);
  if (fd < 0)
    return FALSE;
  saved
      = vms_sink_file_replace (fd, meta_dir, file, text, strlen (text), error);
  close (fd);
  return saved;
}

gboolean
vms_sink_meta_remove (const char *dir, const char *name, gboolean *existed,
                      GError **error)
{
  g_autofree char *meta_dir = g_build_filename (dir, VMS_SINK_META_DIR, NULL);
  g_autofree char *file = g_strconcat (name, ".json", NULL);
  g_autoptr (GError) open_error = NULL;
  int fd = meta_dir_open (dir, FALSE, &open_error);
  int err = 0;

  *existed = FALSE;
  if (fd < 0)
    {
      if (g_error_matches (open_error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        return TRUE;
      g_propagate_error (error, g_steal_pointer (&open_error));
      return FALSE;
    }
  /* The live ranges of a replica that is gone protect nothing, and
   * must not come back with a new replica of that name. */
  if (!vms_sink_live_log_remove (fd, meta_dir, name, error))
    {
      close (fd);
      return FALSE;
    }
  /* unlinkat removes a link itself, never what it points to. */
  *existed = unlinkat (fd, file, 0) == 0;
  if (!*existed && errno != ENOENT)
    err = errno;
  else if (*existed && fsync (fd) < 0)
    err = errno;
  close (fd);
  if (err)
    g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_IO, "%s %s/%s: %s",
                 *existed ? "fsync" : "unlink", meta_dir, file,
                 g_strerror (err));
  return err == 0;
}

static int
compare_strings (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (*(char *const *)a, *(char *const *)b);
}

GStrv
vms_sink_meta_list (const char *dir, GError **error)
{
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GError) open_error = NULL;
  int fd = meta_dir_open (dir, FALSE, &open_error);
  DIR *handle = NULL;
  struct dirent *entry;

  if (fd < 0 && !g_error_matches (open_error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
    {
      g_propagate_error (error, g_steal_pointer (&open_error));
      return NULL;
    }
  if (fd >= 0 && !(handle = fdopendir (fd)))
    {
      g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_IO,
                   "fdopendir %s/%s: %s", dir, VMS_SINK_META_DIR,
                   g_strerror (errno));
      close (fd);
      return NULL;
    }
  /* Names only: what each entry is, is checked when it is opened. */
  while (handle && (entry = readdir (handle)))
    {
      g_autofree char *name = NULL;

      if (!g_str_has_suffix (entry->d_name, ".json"))
        continue;
      name = g_strndup (entry->d_name,
                        strlen (entry->d_name) - strlen (".json"));
      /* Skip leftovers such as editor backups or temp files. */
      if (vms_sink_name_is_valid (name, NULL))
        g_ptr_array_add (names, g_steal_pointer (&name));
    }
  if (handle)
    closedir (handle);
  g_ptr_array_sort (names, compare_strings);
  g_ptr_array_add (names, NULL);
  return (GStrv)g_ptr_array_free (g_steal_pointer (&names), FALSE);
}
