/* vmshift engine: where the estimated disks' data lies, read through
 * QEMU's own NBD server (base:allocation), bucket by bucket.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-estimate-internal.h"
#include "vms-copy.h"
#include "vms-export.h"

#include <libnbd.h>

/* Block status is asked for this much at a time: an NBD request's length
 * is 32 bits. */
#define MAP_REQUEST_BYTES (G_GUINT64_CONSTANT (1) << 30)

/* What the block status replies of one map added up to. */
typedef struct
{
  guint64 allocated;   /* bytes not a hole */
  guint64 data;        /* bytes neither a hole nor known zero */
  guint64 covered;     /* bytes the last reply described */
  guint64 *buckets;    /* data per bucket, VMS_ESTIMATE_MAP_BUCKETS */
  guint64 bucket_size; /* bytes per bucket (the last takes the rest) */
} Allocation;

/* Add length bytes of data at offset to the buckets they fall in. */
static void
add_data (Allocation *allocation, guint64 offset, guint64 length)
{
  guint64 at = offset, end = offset + length;

  allocation->data += length;
  while (at < end)
    {
      guint64 bucket
          = MIN (at / allocation->bucket_size, VMS_ESTIMATE_MAP_BUCKETS - 1);
      guint64 stop = MIN (end, (bucket + 1) * allocation->bucket_size);

      if (bucket == VMS_ESTIMATE_MAP_BUCKETS - 1)
        stop = end;
      allocation->buckets[bucket] += stop - at;
      at = stop;
    }
}

static int
count_extents (void *user_data, const char *context, uint64_t offset,
               uint32_t *entries, size_t n, int *error)
{
  Allocation *allocation = user_data;

  if (!g_str_equal (context, LIBNBD_CONTEXT_BASE_ALLOCATION))
    return 0;
  for (size_t i = 0; i + 1 < n; i += 2)
    {
      allocation->covered += entries[i];
      if (!(entries[i + 1] & LIBNBD_STATE_HOLE))
        allocation->allocated += entries[i];
      if (!(entries[i + 1] & (LIBNBD_STATE_HOLE | LIBNBD_STATE_ZERO)))
        add_data (allocation, offset, entries[i]);
      offset += entries[i];
    }
  return 0;
}

char *
vms_estimate_server_socket (EstimateRun *run, EstimateVm *vm)
{
  g_autofree char *name
      = g_strdup_printf ("estimate-%s-%u.nbd", run->config->id, vm->index);

  return g_build_filename (run->config->state_dir, name, NULL);
}

char *
vms_estimate_export_disk (EstimateVm *vm, EstimateDisk *disk,
                          const char *socket_path, const char *export_name,
                          const char *bitmap, GError **error)
{
  g_autofree char *escaped = g_uri_escape_string (socket_path, "/", FALSE);

  if (!vms_export_add (vm->qmp, disk->disk->node_name, export_name, bitmap,
                       error))
    return NULL;
  return g_strdup_printf ("nbd+unix:///%s?socket=%s", export_name, escaped);
}

/* Ask for the whole disk's block status over nbd, a request at a time. */
static gboolean
walk_extents (struct nbd_handle *nbd, EstimateDisk *disk,
              Allocation *allocation, GError **error)
{
  guint64 offset = 0;

  while (offset < disk->disk->size)
    {
      guint64 length = MIN (disk->disk->size - offset, MAP_REQUEST_BYTES);
      nbd_extent_callback callback
          = { .callback = count_extents, .user_data = allocation };

      allocation->covered = 0;
      if (nbd_block_status (nbd, length, offset, callback, 0) < 0)
        {
          g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_SOURCE,
                       "mapping disk %s: %s", disk->disk->name,
                       nbd_get_error ());
          return FALSE;
        }
      /* The server may describe less than asked (never nothing). */
      if (allocation->covered == 0)
        {
          g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_SOURCE,
                       "mapping disk %s: empty block status reply",
                       disk->disk->name);
          return FALSE;
        }
      offset += MIN (allocation->covered, length);
    }
  return TRUE;
}

gboolean
vms_estimate_map_disk (EstimateDisk *disk, const char *uri, guint64 *buckets,
                       guint64 *allocated, guint64 *data, GError **error)
{
  Allocation allocation = { .buckets = buckets };
  struct nbd_handle *nbd = nbd_create ();
  gboolean ok = FALSE;

  allocation.bucket_size
      = MAX (1, (disk->disk->size + VMS_ESTIMATE_MAP_BUCKETS - 1)
                    / VMS_ESTIMATE_MAP_BUCKETS);
  if (!nbd || nbd_add_meta_context (nbd, LIBNBD_CONTEXT_BASE_ALLOCATION) < 0
      || nbd_connect_uri (nbd, uri) < 0)
    g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_CONNECT,
                 "mapping disk %s: %s", disk->disk->name, nbd_get_error ());
  else if (walk_extents (nbd, disk, &allocation, error))
    {
      *allocated = MIN (allocation.allocated, disk->disk->size);
      *data = MIN (allocation.data, disk->disk->size);
      ok = TRUE;
    }
  if (nbd)
    {
      nbd_shutdown (nbd, 0);
      nbd_close (nbd);
    }
  return ok;
}

gboolean
vms_estimate_map_first (EstimateRun *run, EstimateVm *vm, GError **error)
{
  g_autofree char *socket_path = vms_estimate_server_socket (run, vm);
  gboolean ok = TRUE;

  /* A server that is not ours (a sync or migrate of this VM) is refused
   * by vms_export_server_start, and must then not be stopped. */
  if (!vms_export_server_start (vm->qmp, socket_path, error))
    return FALSE;
  for (guint i = 0; ok && i < vm->disks->len; i++)
    {
      EstimateDisk *disk = vm->disks->pdata[i];
      g_autofree char *export_name
          = g_strdup_printf ("vmshift-estimate-%s", disk->disk->name);
      g_autofree char *uri = vms_estimate_export_disk (
          vm, disk, socket_path, export_name, NULL, error);

      disk->buckets = g_new0 (guint64, VMS_ESTIMATE_MAP_BUCKETS);
      ok = uri
           && vms_estimate_map_disk (disk, uri, disk->buckets,
                                     &disk->out->allocated,
                                     &disk->out->data_start, error);
      disk->out->data = disk->out->data_start;
      disk->mapped_us = g_get_monotonic_time ();
      if (uri)
        vms_export_remove (vm->qmp, export_name, NULL);
    }
  vms_export_server_stop (vm->qmp, NULL);
  return ok;
}
