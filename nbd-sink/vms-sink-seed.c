/* vmshift sink: replicas made from a shipped seed (lib/vms-seed.h).
 *
 * Each replica is written under a temporary name that no replica can
 * have (replica names never start with '.'), made durable, and only
 * then given its metadata and its name: an import that fails or is cut
 * short leaves nothing that looks like a replica.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-sink-seed.h"
#include "vms-file.h"
#include "vms-seed.h"
#include "vms-sink-error.h"
#include "vms-sink-file.h"
#include "vms-sink-meta.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#define TEMP_PREFIX ".seed-"

typedef struct
{
  char *replica; /* its name */
  char *temp;    /* its data's name while imported */
  guint64 size;
  int fd;
} Target;

typedef struct
{
  const char *dir;
  int dir_fd;
  char *job;
  Target targets[VMS_SEED_MAX_DISKS];
  guint n;
} Import;

static void
import_clear (Import *import, gboolean failed)
{
  for (guint i = 0; i < import->n; i++)
    {
      Target *target = &import->targets[i];

      if (target->fd >= 0)
        close (target->fd);
      if (failed)
        unlinkat (import->dir_fd, target->temp, 0);
      g_free (target->replica);
      g_free (target->temp);
    }
  if (import->dir_fd >= 0)
    close (import->dir_fd);
  g_free (import->job);
}

/* A replica of that name exists (data or metadata): refused, never
 * overwritten. */
static gboolean
check_absent (Import *import, const char *name, GError **error)
{
  g_autoptr (VmsSinkMeta) meta = vms_sink_meta_load (import->dir, name, NULL);
  struct stat st;

  if (meta || fstatat (import->dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
    {
      g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_IO,
                   "replica '%s' exists in %s: remove it first "
                   "(vmshift-sink remove) to import the seed",
                   name, import->dir);
      return FALSE;
    }
  return TRUE;
}

static gboolean
make_targets (Import *import, JsonObject *manifest, GError **error)
{
  JsonArray *disks = json_object_get_array_member (manifest, "disks");

  import->job = g_strdup (
      json_object_get_string_member_with_default (manifest, "job", "?"));
  for (guint i = 0; i < json_array_get_length (disks); i++)
    {
      JsonObject *disk = json_array_get_object_element (disks, i);
      Target *target = &import->targets[i];

      target->fd = -1;
      target->replica
          = g_strdup (json_object_get_string_member (disk, "replica"));
      target->temp = g_strconcat (TEMP_PREFIX, target->replica, NULL);
      target->size = json_object_get_int_member (disk, "size");
      import->n = i + 1;
      if (!check_absent (import, target->replica, error))
        return FALSE;
      /* Ours: left by an import that died. */
      unlinkat (import->dir_fd, target->temp, 0);
      target->fd
          = vms_sink_file_open (import->dir_fd, import->dir, target->temp,
                                O_RDWR | O_CREAT | O_EXCL, error);
      if (target->fd < 0)
        return FALSE;
      if (ftruncate (target->fd, target->size) < 0)
        {
          g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_IO,
                       "sizing %s/%s to %" G_GUINT64_FORMAT " bytes: %s",
                       import->dir, target->temp, target->size,
                       g_strerror (errno));
          return FALSE;
        }
    }
  return TRUE;
}

static gboolean
write_chunk (Import *import, const VmsSeedChunk *chunk, GError **error)
{
  Target *target = &import->targets[chunk->disk];
  const guint8 *data = chunk->data;
  guint64 offset = chunk->offset;
  gsize left = chunk->length;

  while (left > 0)
    {
      ssize_t done = pwrite (target->fd, data, left, offset);

      if (done < 0 && errno == EINTR)
        continue;
      if (done <= 0)
        {
          g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_IO,
                       "writing replica '%s' at %" G_GUINT64_FORMAT ": %s",
                       target->replica, offset,
                       g_strerror (done < 0 ? errno : ENOSPC));
          return FALSE;
        }
      data += done;
      offset += done;
      left -= done;
    }
  return TRUE;
}

/* The data durable, then the metadata, then the name: a crash leaves a
 * temporary file, or metadata without data (an orphan, which list shows
 * and remove clears), never a replica with part of its data. */
static gboolean
install (Import *import, Target *target, GError **error)
{
  g_autoptr (VmsSinkMeta) meta
      = vms_sink_meta_new (target->replica, target->size, NULL);

  meta->complete = FALSE;
  meta->created = g_get_real_time () / G_USEC_PER_SEC;
  meta->seed = g_strdup (import->job);
  if (fsync (target->fd) < 0)
    {
      g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_IO,
                   "flushing %s/%s: %s", import->dir, target->temp,
                   g_strerror (errno));
      return FALSE;
    }
  if (!vms_sink_meta_save (import->dir, meta, error))
    return FALSE;
  if (renameat (import->dir_fd, target->temp, import->dir_fd, target->replica)
      < 0)
    {
      g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_IO,
                   "renaming %s/%s: %s", import->dir, target->temp,
                   g_strerror (errno));
      return FALSE;
    }
  return vms_file_sync_directory (import->dir, error);
}

static gboolean
import_chunks (Import *import, VmsSeedReader *reader,
               VmsSinkSeedProgress progress, gpointer user_data, GError **error)
{
  JsonObject *manifest = vms_seed_reader_get_manifest (reader);
  JsonArray *disks = json_object_get_array_member (manifest, "disks");
  guint64 total = 0, done = 0;
  VmsSeedChunk chunk;

  for (guint i = 0; i < json_array_get_length (disks); i++)
    total += json_object_get_int_member (
        json_array_get_object_element (disks, i), "data-chunks");
  while (vms_seed_reader_next (reader, &chunk, error))
    {
      if (!write_chunk (import, &chunk, error))
        return FALSE;
      if (progress)
        progress (++done, total, user_data);
    }
  return *error == NULL;
}

gboolean
vms_sink_seed_import (const char *dir, const char *path,
                      VmsSinkSeedProgress progress, gpointer user_data,
                      GStrv *names, GError **error)
{
  g_autoptr (VmsSeedReader) reader = vms_seed_reader_open (path, error);
  Import import = { .dir = dir, .dir_fd = -1 };
  g_autoptr (GStrvBuilder) made = g_strv_builder_new ();
  gboolean ok;

  if (!reader)
    return FALSE;
  import.dir_fd = vms_sink_file_open_dir (dir, error);
  ok = import.dir_fd >= 0
       && make_targets (&import, vms_seed_reader_get_manifest (reader), error)
       && import_chunks (&import, reader, progress, user_data, error);
  for (guint i = 0; ok && i < import.n; i++)
    {
      ok = install (&import, &import.targets[i], error);
      if (ok)
        g_strv_builder_add (made, import.targets[i].replica);
    }
  import_clear (&import, !ok);
  *names = g_strv_builder_end (made);
  return ok;
}
