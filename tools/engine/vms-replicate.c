/* vmshift: replicating a running VM's disks to the sink, shared by sync
 * and migrate.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-replicate.h"
#include "vms-bitmap.h"
#include "vms-disk.h"
#include "vms-export.h"
#include "vms-guest.h"
#include "vms-size.h"

#include <errno.h>
#include <libnbd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* A round that is at least this fraction of the previous one is not
 * shrinking: more rounds would not converge. */
#define NOT_SHRINKING_RATIO 0.9
/* Hard stop for --until-converged, whatever the figures say. */
#define MAX_ROUNDS 50

/* The sink URI with the export path set to export_name (caller frees). */
char *
vms_replicate_sink_uri (const char *sink, const char *export_name,
                        GError **error)
{
  g_autoptr (GUri) base = g_uri_parse (sink, G_URI_FLAGS_ENCODED_QUERY, error);
  g_autofree char *path = NULL;
  g_autoptr (GUri) uri = NULL;

  if (!base)
    {
      g_prefix_error (error, "--sink %s: ", sink);
      return NULL;
    }
  if (!g_str_has_prefix (g_uri_get_scheme (base), "nbd"))
    {
      g_set_error (error, G_URI_ERROR, G_URI_ERROR_BAD_SCHEME,
                   "--sink %s: expected an NBD URI (nbd://, nbds://, "
                   "nbd+unix://, nbds+unix://)",
                   sink);
      return NULL;
    }
  path = g_strconcat ("/", export_name, NULL);
  uri = g_uri_build (G_URI_FLAGS_ENCODED_QUERY, g_uri_get_scheme (base),
                     g_uri_get_userinfo (base), g_uri_get_host (base),
                     g_uri_get_port (base), path, g_uri_get_query (base), NULL);
  return g_uri_to_string (uri);
}

/* Replica and bitmap names are built from these, so keep only the
 * characters the sink accepts. */
static char *
sanitise_name (const char *text)
{
  GString *out = g_string_new (NULL);

  for (const char *p = text; *p; p++)
    g_string_append_c (
        out, g_ascii_isalnum (*p) || *p == '-' || *p == '_' ? *p : '_');
  if (out->len == 0)
    g_string_append (out, "vm");
  return g_string_free (out, FALSE);
}

static char *
bitmap_name (VmsJob *job, guint round)
{
  return g_strdup_printf ("vmshift-%s-%u", job->id, round);
}

static char *
export_name (VmsJob *job, VmsJobDisk *disk)
{
  return g_strdup_printf ("vmshift-%s-%s-r%u", job->id, disk->name,
                          disk->round);
}

/* ---- the sink ---- */

gboolean
vms_replicate_sink_open (VmsReplicate *rep, VmsJobDisk *disk,
                         const char *suffix, gboolean flush, GError **error)
{
  g_autofree char *export_name
      = suffix ? g_strdup_printf ("%s@%s", disk->replica, suffix)
               : g_strdup (disk->replica);
  g_autofree char *uri
      = vms_replicate_sink_uri (rep->job->sink, export_name, error);
  struct nbd_handle *nbd;

  if (!uri)
    return FALSE;
  nbd = nbd_create ();
  if (!nbd)
    {
      g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_CONNECT, "%s",
                   nbd_get_error ());
      return FALSE;
    }
  nbd_set_uri_allow_local_file (nbd, true);
  if (nbd_connect_uri (nbd, uri) < 0 || (flush && nbd_flush (nbd, 0) < 0))
    {
      g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_CONNECT,
                   "sink %s: replica '%s'%s%s: %s", rep->job->sink,
                   disk->replica, suffix ? " @" : "", suffix ? suffix : "",
                   nbd_get_error ());
      nbd_close (nbd);
      return FALSE;
    }
  nbd_shutdown (nbd, 0);
  nbd_close (nbd);
  return TRUE;
}

gboolean
vms_replicate_sink_open_all (VmsReplicate *rep, const char *suffix,
                             gboolean flush, GError **error)
{
  for (guint i = 0; i < rep->job->disks->len; i++)
    if (!vms_replicate_sink_open (rep, rep->job->disks->pdata[i], suffix, flush,
                                  error))
      return FALSE;
  return TRUE;
}

/* Make sure the replica exists with the disk's size (creates it over NBD:
 * the sink needs no shell). */
static gboolean
ensure_replica (VmsReplicate *rep, VmsJobDisk *disk, GError **error)
{
  g_autofree char *create
      = g_strdup_printf ("create=%" G_GUINT64_FORMAT, disk->size);

  if (!vms_replicate_sink_open (rep, disk, create, FALSE, error))
    {
      g_prefix_error (error,
                      "cannot open the replica with %" G_GUINT64_FORMAT
                      " bytes (sink unreachable, or the replica exists with "
                      "another size): ",
                      disk->size);
      return FALSE;
    }
  return TRUE;
}

/* ---- copying ---- */

static gboolean
on_checkpoint (const VmsCopyStats *stats, gpointer user_data, GError **error)
{
  VmsReplicate *rep = user_data;
  VmsJobDisk *disk = rep->disk;
  guint64 sent;

  disk->watermark = stats->durable;
  disk->bytes_read += stats->bytes_read - rep->last.bytes_read;
  disk->bytes_written += stats->bytes_written - rep->last.bytes_written;
  disk->bytes_zeroed += stats->bytes_zeroed - rep->last.bytes_zeroed;
  sent = stats->bytes_written - rep->last.bytes_written;
  rep->run_bytes[rep->pass] += sent;
  switch (rep->pass)
    {
    case VMS_REPLICATE_PASS_BACKGROUND:
      disk->bytes_background += sent;
      break;
    case VMS_REPLICATE_PASS_ROUNDS:
      disk->bytes_rounds += sent;
      break;
    default:
      disk->bytes_final += sent;
      break;
    }
  rep->last = *stats;
  return vms_job_save (rep->job, error);
}

static void
on_progress (const VmsCopyStats *stats, gpointer user_data)
{
  VmsReplicate *rep = user_data;

  vms_progress_update (rep->progress, rep->disk->name, rep->phase,
                       stats->watermark, stats->end, stats->bytes_written);
}

/* One pass over a disk: all of it (bitmap NULL) or what bitmap marks,
 * from the disk's watermark on. */
static gboolean
copy_pass (VmsReplicate *rep, VmsJobDisk *disk, const char *bitmap,
           GError **error)
{
  VmsReplicateOptions *options = rep->options;
  g_autofree char *export = export_name (rep->job, disk);
  g_autofree char *source_uri = NULL;
  g_autofree char *dest_uri
      = vms_replicate_sink_uri (rep->job->sink, disk->replica, error);
  g_autofree char *escaped_socket = NULL;
  VmsCopyStats stats = { 0 };
  VmsCopySpec spec = { 0 };
  gboolean ok;

  if (!dest_uri)
    return FALSE;
  if (!vms_export_add (rep->qmp, disk->node, export, bitmap, error))
    return FALSE;
  escaped_socket = g_uri_escape_string (rep->nbd_socket, "/", FALSE);
  source_uri
      = g_strdup_printf ("nbd+unix:///%s?socket=%s", export, escaped_socket);

  spec.source_uri = source_uri;
  spec.dest_uri = dest_uri;
  spec.bitmap = bitmap;
  spec.start = disk->watermark;
  spec.end = disk->size;
  spec.connections = options->connections;
  spec.queue_depth = options->queue_depth;
  spec.request_size = rep->request_size;
  spec.checkpoint_bytes = rep->checkpoint_bytes;
  spec.checkpoint_ms = options->checkpoint_seconds * 1000;
  spec.io_timeout_ms = options->io_timeout * 1000;
  spec.rate = rep->rate;
  spec.stop = rep->stop;
  spec.checkpoint = on_checkpoint;
  spec.progress = on_progress;
  spec.user_data = rep;
  rep->disk = disk;
  memset (&rep->last, 0, sizeof rep->last);

  ok = vms_copy_run (&spec, &stats, error);
  /* The export goes in every case: a resumed run makes a new one. */
  vms_export_remove (rep->qmp, export, NULL);
  if (!ok)
    g_prefix_error (error, "disk %s (%s): ", disk->name, rep->phase);
  return ok;
}

static gboolean
check_bitmap (VmsReplicate *rep, VmsJobDisk *disk, const char *name,
              GError **error)
{
  g_autoptr (VmsBitmapInfo) info = NULL;
  g_autoptr (GError) query_error = NULL;

  if (!name)
    return TRUE;
  info = vms_bitmap_query (rep->qmp, disk->node, name, &query_error);
  if (!info && !g_error_matches (query_error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
    {
      g_propagate_error (error, g_steal_pointer (&query_error));
      return FALSE;
    }
  if (!info)
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                   "disk %s: dirty bitmap %s is gone from node %s (did QEMU "
                   "restart%s?); writes since the last round cannot be "
                   "found, so start a new job",
                   disk->name, name, disk->node,
                   disk->persistent ? " uncleanly"
                                    : "; raw images keep "
                                      "bitmaps only in memory");
      return FALSE;
    }
  return TRUE;
}

static gboolean
background_copy (VmsReplicate *rep, VmsJobDisk *disk, GError **error)
{
  if (disk->round > 0)
    return TRUE;
  if (!disk->recording_bitmap)
    {
      g_autofree char *name = bitmap_name (rep->job, 1);

      /* The bitmap comes first: every write from now on is recorded, so
       * whatever the copy reads too early is copied again in round 1. */
      if (!vms_bitmap_add (rep->qmp, disk->node, name, rep->granularity,
                           &disk->persistent, error))
        return FALSE;
      disk->recording_bitmap = g_steal_pointer (&name);
      disk->watermark = 0;
      if (!vms_job_save (rep->job, error))
        return FALSE;
    }
  else if (!check_bitmap (rep, disk, disk->recording_bitmap, error))
    return FALSE;

  rep->phase = "background";
  rep->pass = VMS_REPLICATE_PASS_BACKGROUND;
  disk->resumed_from = disk->watermark;
  if (disk->watermark > 0)
    vms_progress_event (rep->progress, "resume", NULL,
                        "%s: resuming the background copy at %" G_GUINT64_FORMAT
                        " of %" G_GUINT64_FORMAT " bytes",
                        disk->name, disk->watermark, disk->size);
  if (!copy_pass (rep, disk, NULL, error))
    return FALSE;
  disk->round = 1;
  disk->watermark = 0;
  return vms_job_save (rep->job, error);
}

/* One dirty round on one disk; *dirty gets the round's size. */
static gboolean
dirty_round (VmsReplicate *rep, VmsJobDisk *disk, guint64 *dirty,
             GError **error)
{
  g_autofree char *phase = NULL;

  if (!disk->copying_bitmap)
    {
      g_autofree char *next = bitmap_name (rep->job, disk->round + 1);
      g_autoptr (VmsBitmapInfo) info = NULL;

      if (!check_bitmap (rep, disk, disk->recording_bitmap, error)
          || !vms_bitmap_switch (rep->qmp, disk->node, disk->recording_bitmap,
                                 next, disk->persistent, error))
        return FALSE;
      disk->copying_bitmap = g_steal_pointer (&disk->recording_bitmap);
      disk->recording_bitmap = g_steal_pointer (&next);
      info = vms_bitmap_query (rep->qmp, disk->node, disk->copying_bitmap,
                               error);
      if (!info)
        return FALSE;
      disk->round_dirty = info->count;
      disk->watermark = 0;
      if (!vms_job_save (rep->job, error))
        return FALSE;
    }
  else if (!check_bitmap (rep, disk, disk->copying_bitmap, error)
           || !check_bitmap (rep, disk, disk->recording_bitmap, error))
    return FALSE;

  phase = rep->pass == VMS_REPLICATE_PASS_FINAL
              ? g_strdup_printf ("final round %u", disk->round)
              : g_strdup_printf ("round %u", disk->round);
  rep->phase = phase;
  disk->resumed_from = disk->watermark;
  if (!copy_pass (rep, disk, disk->copying_bitmap, error))
    return FALSE;

  /* Flushed at the sink: only now may the round's bitmap go. */
  if (!vms_bitmap_remove (rep->qmp, disk->node, disk->copying_bitmap, error))
    return FALSE;
  g_clear_pointer (&disk->copying_bitmap, g_free);
  *dirty = disk->last_round_dirty = disk->round_dirty;
  disk->round_dirty = 0;
  disk->round++;
  disk->watermark = 0;
  if (!vms_job_save (rep->job, error))
    return FALSE;
  {
    JsonObject *fields = json_object_new ();
    g_autofree char *size = vms_format_size (*dirty);

    json_object_set_string_member (fields, "disk", disk->name);
    json_object_set_int_member (fields, "round", disk->round - 1);
    json_object_set_int_member (fields, "dirty", *dirty);
    vms_progress_event (rep->progress, "round", fields,
                        "%s: round %u copied %s of writes", disk->name,
                        disk->round - 1, size);
  }
  return TRUE;
}

gboolean
vms_replicate_rounds (VmsReplicate *rep, GError **error)
{
  VmsReplicateOptions *options = rep->options;
  guint64 previous = G_MAXUINT64;
  int done = 0;

  rep->pass = VMS_REPLICATE_PASS_ROUNDS;
  if (options->rounds == 0)
    {
      /* No new round, but one a killed run left half done is finished:
       * its bitmap is already disabled and holds writes nobody else has. */
      for (guint i = 0; i < rep->job->disks->len; i++)
        {
          VmsJobDisk *disk = rep->job->disks->pdata[i];
          guint64 dirty;

          if (disk->copying_bitmap && !dirty_round (rep, disk, &dirty, error))
            return FALSE;
        }
      return TRUE;
    }
  for (;;)
    {
      guint64 total = 0;

      if (g_atomic_int_get (rep->stop))
        break;
      for (guint i = 0; i < rep->job->disks->len; i++)
        {
          guint64 dirty = 0;

          if (!dirty_round (rep, rep->job->disks->pdata[i], &dirty, error))
            return FALSE;
          total += dirty;
        }
      done++;
      if (options->rounds >= 0 && done >= options->rounds)
        break;
      if (options->rounds < 0
          && (total <= rep->converge_bytes
              || (previous != G_MAXUINT64
                  && total >= NOT_SHRINKING_RATIO * previous)
              || done >= MAX_ROUNDS))
        {
          g_autofree char *size = vms_format_size (total);

          vms_progress_event (rep->progress, "converged", NULL,
                              "rounds end: the last round held %s%s", size,
                              total <= rep->converge_bytes
                                  ? ""
                                  : " and is not shrinking (the guest "
                                    "writes as fast as the link "
                                    "copies)");
          break;
        }
      previous = total;
    }
  return TRUE;
}

gboolean
vms_replicate_background (VmsReplicate *rep, GError **error)
{
  for (guint i = 0; i < rep->job->disks->len; i++)
    if (!background_copy (rep, rep->job->disks->pdata[i], error))
      return FALSE;
  return TRUE;
}

gboolean
vms_replicate_final_round (VmsReplicate *rep, GError **error)
{
  rep->pass = VMS_REPLICATE_PASS_FINAL;
  for (guint i = 0; i < rep->job->disks->len; i++)
    {
      VmsJobDisk *disk = rep->job->disks->pdata[i];
      guint64 dirty;

      /* A round a killed run left half done holds writes of its own;
       * those since it began are in the recording bitmap. */
      if (disk->copying_bitmap && !dirty_round (rep, disk, &dirty, error))
        return FALSE;
      if (!dirty_round (rep, disk, &dirty, error))
        return FALSE;
    }
  return TRUE;
}

gboolean
vms_replicate_start (VmsReplicate *rep, GError **error)
{
  g_autofree char *socket_name = g_strconcat (rep->job->id, ".nbd", NULL);

  g_free (rep->nbd_socket);
  rep->nbd_socket
      = g_build_filename (rep->options->state_dir, socket_name, NULL);
  if (!vms_export_server_start (rep->qmp, rep->nbd_socket, error))
    return FALSE;
  for (guint i = 0; i < rep->job->disks->len; i++)
    if (!ensure_replica (rep, rep->job->disks->pdata[i], error))
      return FALSE;
  return TRUE;
}

void
vms_replicate_stop_server (VmsReplicate *rep)
{
  if (rep->qmp && vms_qmp_is_connected (rep->qmp))
    vms_export_server_stop (rep->qmp, NULL);
}

void
vms_replicate_clear (VmsReplicate *rep)
{
  g_clear_pointer (&rep->job, vms_job_free);
  g_clear_pointer (&rep->qmp, vms_qmp_free);
  g_clear_pointer (&rep->rate, vms_rate_free);
  g_clear_pointer (&rep->nbd_socket, g_free);
}

void
vms_replicate_options_clear (VmsReplicateOptions *options)
{
  g_clear_pointer (&options->sink, g_free);
  g_clear_pointer (&options->job_id, g_free);
  g_clear_pointer (&options->resume, g_free);
  g_clear_pointer (&options->state_dir, g_free);
  g_clear_pointer (&options->disks, g_strfreev);
  g_clear_pointer (&options->replica_prefix, g_free);
  g_clear_pointer (&options->max_bandwidth, g_free);
  g_clear_pointer (&options->converge, g_free);
  g_clear_pointer (&options->request_size, g_free);
  g_clear_pointer (&options->checkpoint_bytes, g_free);
  g_clear_pointer (&options->granularity, g_free);
}

/* ---- the job ---- */

static gboolean
select_disks (VmsReplicate *rep, GPtrArray *found, GError **error)
{
  VmsReplicateOptions *options = rep->options;
  VmsJob *job = rep->job;
  g_autofree char *prefix = sanitise_name (
      options->replica_prefix ? options->replica_prefix
                              : (*job->vm_name ? job->vm_name : "vm"));

  for (guint i = 0; i < found->len; i++)
    {
      VmsDisk *disk = found->pdata[i];
      VmsJobDisk *job_disk;
      const char *replica_name
          = rep->replica_names
                ? g_hash_table_lookup (rep->replica_names, disk->name)
                : NULL;
      g_autofree char *disk_name
          = sanitise_name (replica_name ? replica_name : disk->name);

      if (options->disks
          && !g_strv_contains ((const char *const *)options->disks, disk->name))
        continue;
      job_disk = vms_job_add_disk (job, disk->name);
      job_disk->node = g_strdup (disk->node_name);
      job_disk->format = g_strdup (disk->format);
      job_disk->size = disk->size;
      job_disk->replica = g_strdup_printf ("%s-%s", prefix, disk_name);
    }
  for (guint i = 0; options->disks && options->disks[i]; i++)
    if (!vms_job_find_disk (job, options->disks[i]))
      {
        /* vms_disk_find says which disks there are. */
        return vms_disk_find (found, options->disks[i], error) != NULL;
      }
  if (job->disks->len == 0)
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                   "the VM has no disk to copy");
      return FALSE;
    }
  return TRUE;
}

/* A resumed job must find its disks again, the same size. */
static gboolean
match_disks (VmsReplicate *rep, GPtrArray *found, GError **error)
{
  for (guint i = 0; i < rep->job->disks->len; i++)
    {
      VmsJobDisk *disk = rep->job->disks->pdata[i];
      VmsDisk *now = vms_disk_find (found, disk->name, error);

      if (!now)
        {
          g_prefix_error (error, "job %s: ", rep->job->id);
          return FALSE;
        }
      if (now->size != disk->size)
        {
          g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                       "job %s: disk %s is now %" G_GUINT64_FORMAT " bytes, "
                       "was %" G_GUINT64_FORMAT " (resized?)",
                       rep->job->id, disk->name, now->size, disk->size);
          return FALSE;
        }
      /* Auto-generated node names change when QEMU restarts. */
      g_free (disk->node);
      disk->node = g_strdup (now->node_name);
    }
  return TRUE;
}

gboolean
vms_replicate_open_job (VmsReplicate *rep, const char *source, GError **error)
{
  VmsReplicateOptions *options = rep->options;
  g_autofree char *vm_name = NULL;
  g_autofree char *vm_uuid = NULL;
  g_autoptr (GPtrArray) found = NULL;
  g_autoptr (VmsJob) job = NULL;

  vm_name = vms_guest_query_name (rep->qmp, error);
  vm_uuid = vm_name ? vms_guest_query_uuid (rep->qmp, error) : NULL;
  found = vm_uuid ? vms_disk_discover (rep->qmp, error) : NULL;
  if (!found)
    return FALSE;

  if (options->resume)
    {
      job = vms_job_load (options->state_dir, options->resume, error);
      if (!job)
        return FALSE;
      if (!g_str_equal (job->vm_name, vm_name)
          || !g_str_equal (job->vm_uuid, vm_uuid))
        {
          g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                       "job %s belongs to VM '%s' (uuid %s), but %s is VM "
                       "'%s' (uuid %s)",
                       job->id, job->vm_name, job->vm_uuid, source, vm_name,
                       vm_uuid);
          return FALSE;
        }
      if (options->sink)
        {
          g_free (job->sink);
          job->sink = g_strdup (options->sink);
        }
      rep->job = g_steal_pointer (&job);
      if (!match_disks (rep, found, error))
        return FALSE;
    }
  else
    {
      g_autofree char *id
          = options->job_id
                ? g_strdup (options->job_id)
                : g_strdup_printf ("%s-%" G_GINT64_FORMAT,
                                   *vm_name ? vm_name : "vm",
                                   g_get_real_time () / G_USEC_PER_SEC);
      g_autofree char *safe_id = sanitise_name (id);

      if (!vms_job_id_is_valid (safe_id, error))
        return FALSE;
      job = vms_job_load (options->state_dir, safe_id, NULL);
      if (job)
        {
          g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                       "job %s exists; continue it with --resume %s", safe_id,
                       safe_id);
          return FALSE;
        }
      rep->job = vms_job_new (options->state_dir, safe_id);
      rep->job->source = g_strdup (source);
      rep->job->sink = g_strdup (options->sink);
      g_free (rep->job->vm_name);
      rep->job->vm_name = g_steal_pointer (&vm_name);
      g_free (rep->job->vm_uuid);
      rep->job->vm_uuid = g_steal_pointer (&vm_uuid);
      if (!select_disks (rep, found, error))
        return FALSE;
    }
  rep->job->runs++;
  rep->job->phase = VMS_JOB_PHASE_COPYING;
  return vms_job_save (rep->job, error);
}

void
vms_replicate_report_disks (VmsReplicate *rep)
{
  for (guint i = 0; i < rep->job->disks->len; i++)
    {
      VmsJobDisk *disk = rep->job->disks->pdata[i];
      JsonObject *fields = json_object_new ();
      g_autofree char *written = vms_format_size (disk->bytes_written);
      g_autofree char *zeroed = vms_format_size (disk->bytes_zeroed);
      g_autofree char *last = vms_format_size (disk->last_round_dirty);

      json_object_set_string_member (fields, "disk", disk->name);
      json_object_set_string_member (fields, "replica", disk->replica);
      json_object_set_int_member (fields, "bytes-written", disk->bytes_written);
      json_object_set_int_member (fields, "bytes-zeroed", disk->bytes_zeroed);
      json_object_set_int_member (fields, "bytes-read", disk->bytes_read);
      json_object_set_int_member (fields, "rounds", disk->round - 1);
      json_object_set_int_member (fields, "last-round-dirty",
                                  disk->last_round_dirty);
      json_object_set_string_member (fields, "recording-bitmap",
                                     disk->recording_bitmap);
      vms_progress_event (rep->progress, "disk-synced", fields,
                          "%s -> %s: %s sent, %s zeroed, %u rounds, last "
                          "round %s%s%s%s",
                          disk->name, disk->replica, written, zeroed,
                          disk->round - 1, last,
                          disk->recording_bitmap ? "; bitmap " : "",
                          disk->recording_bitmap ? disk->recording_bitmap : "",
                          disk->recording_bitmap ? " keeps recording" : "");
    }
}

gboolean
vms_replicate_check_options (VmsReplicate *rep, GError **error)
{
  VmsReplicateOptions *options = rep->options;
  guint64 bandwidth = 0, request = VMS_COPY_DEFAULT_REQUEST_SIZE;

  if (options->rounds < -1 || (options->rounds >= 0 && options->until_converged)
      || options->connections < 0
      || options->connections > VMS_COPY_MAX_CONNECTIONS
      || options->queue_depth < 0
      || options->queue_depth > VMS_COPY_MAX_QUEUE_DEPTH
      || options->checkpoint_seconds < 0 || options->io_timeout < 0)
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                   "--rounds N (0 or more) and --until-converged exclude "
                   "each other; "
                   "--connections is 1..%d, --queue-depth 1..%d, and counts "
                   "and times are not negative",
                   VMS_COPY_MAX_CONNECTIONS, VMS_COPY_MAX_QUEUE_DEPTH);
      return FALSE;
    }
  rep->converge_bytes = VMS_REPLICATE_DEFAULT_CONVERGE_BYTES;
  rep->checkpoint_bytes = VMS_COPY_DEFAULT_CHECKPOINT_BYTES;
  if (!vms_size_parse ("--max-bandwidth", options->max_bandwidth,
                                 1024, &bandwidth, error)
      || !vms_size_parse ("--request-size", options->request_size,
                                    4096, &request, error)
      || !vms_size_parse ("--converge-bytes", options->converge, 0,
                                    &rep->converge_bytes, error)
      || !vms_size_parse ("--checkpoint-bytes",
                                    options->checkpoint_bytes, 1024 * 1024,
                                    &rep->checkpoint_bytes, error))
    return FALSE;
  {
    guint64 granularity = 0;

    if (!vms_size_parse ("--granularity", options->granularity, 512,
                                   &granularity, error))
      return FALSE;
    /* QEMU wants a power of two from 512 bytes to 2 GiB. */
    if (granularity > (G_GUINT64_CONSTANT (1) << 31)
        || (granularity & (granularity - 1)) != 0)
      {
        g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                     "--granularity must be a power of two from 512 to 2G");
        return FALSE;
      }
    rep->granularity = granularity;
  }
  if (request > VMS_COPY_MAX_REQUEST_SIZE)
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                   "--request-size is at most %d bytes",
                   VMS_COPY_MAX_REQUEST_SIZE);
      return FALSE;
    }
  rep->request_size = request;
  if (bandwidth)
    /* A bucket of a tenth of a second smooths without starving. */
    rep->rate = vms_rate_new (bandwidth, MAX (bandwidth / 10, request));
  if (!options->state_dir)
    options->state_dir = vms_job_default_state_dir ();
  return TRUE;
}

GOptionEntry *
vms_replicate_option_entries (VmsReplicateOptions *options)
{
  const GOptionEntry entries[] = {
    { "sink", 's', 0, G_OPTION_ARG_STRING, &options->sink,
      "NBD URI of the vmshift sink", "URI" },
    { "job", 'j', 0, G_OPTION_ARG_STRING, &options->job_id,
      "Name the new job (default: VM name and time)", "ID" },
    { "resume", 'r', 0, G_OPTION_ARG_STRING, &options->resume,
      "Continue job JOB where it stopped", "JOB" },
    { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &options->state_dir,
      "Where job state lives (default /var/lib/vmshift as root)", "DIR" },
    { "disk", 'd', 0, G_OPTION_ARG_STRING_ARRAY, &options->disks,
      "Copy only this disk (repeatable; default: all)", "NAME" },
    { "replica-prefix", 0, 0, G_OPTION_ARG_STRING, &options->replica_prefix,
      "Replicas are PREFIX-DISK (default: the VM name)", "PREFIX" },
    { "max-bandwidth", 'b', 0, G_OPTION_ARG_STRING, &options->max_bandwidth,
      "Send at most RATE bytes per second (e.g. 50M)", "RATE" },
    { "rounds", 'n', 0, G_OPTION_ARG_INT, &options->rounds,
      "Run exactly N dirty rounds (0: the background copy only)", "N" },
    { "until-converged", 0, 0, G_OPTION_ARG_NONE, &options->until_converged,
      "Run rounds until small or no longer shrinking (default)", NULL },
    { "converge-bytes", 0, 0, G_OPTION_ARG_STRING, &options->converge,
      "A round this small ends the rounds (default 16M)", "SIZE" },
    { "connections", 'c', 0, G_OPTION_ARG_INT, &options->connections,
      "Connections per side (default: CPUs, at most 4)", "N" },
    { "queue-depth", 'q', 0, G_OPTION_ARG_INT, &options->queue_depth,
      "Requests in flight per connection (default 64)", "N" },
    { "request-size", 0, 0, G_OPTION_ARG_STRING, &options->request_size,
      "Bytes per request (default 256K)", "SIZE" },
    { "checkpoint-bytes", 0, 0, G_OPTION_ARG_STRING, &options->checkpoint_bytes,
      "FLUSH and checkpoint after this much data (default 64M)", "SIZE" },
    { "checkpoint-seconds", 0, 0, G_OPTION_ARG_INT,
      &options->checkpoint_seconds,
      "... or after this many seconds (default 10)", "S" },
    { "io-timeout", 0, 0, G_OPTION_ARG_INT, &options->io_timeout,
      "Give up on a silent peer after S seconds (default 60)", "S" },
    { "granularity", 'g', 0, G_OPTION_ARG_STRING, &options->granularity,
      "Bytes per dirty-bitmap bit for a new job (default 64K)", "SIZE" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &options->json,
      "Print one JSON event per line on stdout", NULL },
    G_OPTION_ENTRY_NULL
  };

  return g_memdup2 (entries, sizeof entries);
}
