/* vmshift engine: a running VM's disks written to a seed (lib/vms-seed.h)
 * to ship on a device, with the dirty bitmaps that make the rest a delta.
 *
 * Each disk is read through a QEMU NBD export (no bitmap) after its
 * recording bitmap started: what the guest writes after a chunk was read
 * is in the bitmap, so the seed and the first round together hold the
 * disk.  Holes are not read; zero chunks take no room in the seed.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-seed-export.h"
#include "vms-export.h"
#include "vms-nbd-poll.h"
#include "vms-seed.h"

#include <glib/gstdio.h>
#include <libnbd.h>
#include <sys/stat.h>

/* A disk's export while it is read. */
typedef struct
{
  VmsReplicate *rep;
  VmsJobDisk *disk;
  guint index;           /* in the seed's manifest */
  VmsSeedWriter *writer; /* borrowed */
  guint64 read;          /* bytes of the disk handled */
  guint64 stored;        /* bytes the seed grew by */
} DiskExport;

static int
note_data (void *user_data, const char *context, uint64_t offset,
           uint32_t *entries, size_t count, int *error)
{
  gboolean *data = user_data;

  for (size_t i = 0; i + 1 < count; i += 2)
    if (!(entries[i + 1] & LIBNBD_STATE_ZERO))
      *data = TRUE;
  return 0;
}

/* FALSE when the source's map says [offset, offset + length) reads as
 * zeroes: nothing to read. */
static gboolean
holds_data (struct nbd_handle *nbd, guint64 offset, guint64 length)
{
  gboolean data = FALSE;
  nbd_extent_callback noted = { .callback = note_data, .user_data = &data };

  /* Without a map, read: zero detection still keeps zeroes out. */
  if (nbd_block_status (nbd, length, offset, noted, 0) < 0)
    return TRUE;
  return data;
}

static gboolean
read_disk (DiskExport *export, struct nbd_handle *nbd, GError **error)
{
  VmsJobDisk *disk = export->disk;
  g_autofree guint8 *buffer = g_malloc (VMS_SEED_CHUNK);

  for (guint64 offset = 0; offset < disk->size; offset += VMS_SEED_CHUNK)
    {
      guint32 length = MIN (VMS_SEED_CHUNK, disk->size - offset);
      guint64 stored = 0;

      if (g_cancellable_set_error_if_cancelled (export->rep->cancellable,
                                                error))
        return FALSE;
      if (holds_data (nbd, offset, length))
        {
          if (nbd_pread (nbd, buffer, length, offset, 0) < 0)
            {
              g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_SOURCE,
                           "disk %s: reading %u bytes at %" G_GUINT64_FORMAT
                           ": %s",
                           disk->name, length, offset, nbd_get_error ());
              return FALSE;
            }
          if (!vms_seed_writer_add (export->writer, export->index, offset,
                                    buffer, length, &stored, error))
            return FALSE;
        }
      export->read += length;
      export->stored += stored;
      vms_progress_update (export->rep->progress, disk->name, "seed",
                           export->read, disk->size, export->stored);
    }
  return TRUE;
}

static gboolean
export_disk (DiskExport *export, GError **error)
{
  VmsReplicate *rep = export->rep;
  VmsJobDisk *disk = export->disk;
  g_autofree char *name
      = g_strdup_printf ("vmshift-%s-%s-seed", rep->job->id, disk->name);
  g_autofree char *socket = g_uri_escape_string (rep->nbd_socket, "/", FALSE);
  g_autofree char *uri
      = g_strdup_printf ("nbd+unix:///%s?socket=%s", name, socket);
  struct nbd_handle *nbd;
  gboolean ok;

  /* The bitmap first: whatever the guest writes from now on is recorded,
   * so what the seed reads too early goes again in round 1. */
  if (!vms_replicate_start_recording (rep, disk, error)
      || !vms_export_add (rep->qmp, disk->node, name, NULL, error))
    return FALSE;
  nbd = nbd_create ();
  ok = nbd && nbd_add_meta_context (nbd, "base:allocation") == 0
       && nbd_connect_uri (nbd, uri) == 0;
  if (!ok)
    g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_CONNECT,
                 "disk %s: connecting to %s: %s", disk->name, uri,
                 nbd_get_error ());
  else
    ok = read_disk (export, nbd, error);
  if (nbd)
    nbd_close (nbd);
  /* The export goes whatever happened: the bitmap stays with the job. */
  if (!vms_export_remove (rep->qmp, name, ok ? error : NULL))
    ok = FALSE;
  return ok;
}

static JsonObject *
manifest_of (VmsJob *job)
{
  JsonObject *manifest = json_object_new ();
  JsonArray *disks = json_array_new ();

  json_object_set_string_member (manifest, "job", job->id);
  json_object_set_string_member (manifest, "vm-name", job->vm_name);
  json_object_set_string_member (manifest, "vm-uuid", job->vm_uuid);
  json_object_set_int_member (manifest, "created",
                              g_get_real_time () / G_USEC_PER_SEC);
  for (guint i = 0; i < job->disks->len; i++)
    {
      VmsJobDisk *disk = job->disks->pdata[i];
      JsonObject *entry = json_object_new ();

      json_object_set_string_member (entry, "name", disk->name);
      json_object_set_string_member (entry, "replica", disk->replica);
      json_object_set_int_member (entry, "size", disk->size);
      json_object_set_string_member (entry, "bitmap", disk->recording_bitmap);
      json_object_set_int_member (entry, "granularity", disk->granularity);
      json_array_add_object_element (disks, entry);
    }
  json_object_set_array_member (manifest, "disks", disks);
  return manifest;
}

/* Read the seed back, every chunk's hash checked: a seed is written once
 * and trusted far away. */
static gboolean
verify (const char *path, GError **error)
{
  g_autoptr (VmsSeedReader) reader = vms_seed_reader_open (path, error);
  VmsSeedChunk chunk;

  if (!reader)
    return FALSE;
  while (vms_seed_reader_next (reader, &chunk, error))
    ;
  return *error == NULL;
}

static gboolean
write_seed (VmsReplicate *rep, VmsSeedWriter *writer, const char *path,
            guint64 *stored, GError **error)
{
  g_autoptr (JsonObject) manifest = NULL;
  GError *local = NULL;

  if (rep->job->disks->len > VMS_SEED_MAX_DISKS)
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_INVALID,
                   "a seed holds at most %d disks", VMS_SEED_MAX_DISKS);
      return FALSE;
    }
  for (guint i = 0; i < rep->job->disks->len; i++)
    {
      DiskExport export = { rep, rep->job->disks->pdata[i], i, writer };

      if (!export_disk (&export, error))
        return FALSE;
      *stored += export.stored;
    }
  manifest = manifest_of (rep->job);
  if (!vms_seed_writer_finish (writer, manifest, error))
    return FALSE;
  vms_progress_event (rep->progress, "seed-verify", NULL,
                      "reading %s back to check it", path);
  if (!verify (path, &local))
    {
      g_propagate_prefixed_error (error, local, "checking the seed: ");
      return FALSE;
    }
  return TRUE;
}

gboolean
vms_seed_export (VmsReplicate *rep, const char *path, GError **error)
{
  g_autoptr (VmsSeedWriter) writer = NULL;
  struct stat st;
  gboolean device = stat (path, &st) == 0 && S_ISBLK (st.st_mode);
  guint64 stored = 0;

  writer = vms_seed_writer_create (path, VMS_SEED_CHUNK, error);
  if (!writer)
    return FALSE;
  if (!write_seed (rep, writer, path, &stored, error))
    {
      g_clear_pointer (&writer, vms_seed_writer_free);
      /* Nothing half written is left to be taken for a seed. */
      if (!device)
        g_unlink (path);
      return FALSE;
    }
  for (guint i = 0; i < rep->job->disks->len; i++)
    {
      VmsJobDisk *disk = rep->job->disks->pdata[i];

      /* The seed is the background copy; round 1 sends what changed. */
      disk->round = 1;
      disk->watermark = 0;
    }
  rep->job->phase = VMS_JOB_PHASE_SYNCED;
  {
    JsonObject *fields = json_object_new ();
    g_autofree char *size = vms_format_size (stored);

    json_object_set_string_member (fields, "seed", path);
    json_object_set_int_member (fields, "bytes", stored);
    vms_progress_event (rep->progress, "seeded", fields,
                        "seed %s written and checked (%s); import it at the "
                        "destination with 'vmshift-sink seed import', then "
                        "'vmshift sync --resume %s --sink URI' or a "
                        "migration sends what changed since",
                        path, size, rep->job->id);
  }
  return vms_job_save (rep->job, error);
}
