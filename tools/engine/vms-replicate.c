/* vmshift: replicating a running VM's disks to the sink, shared by sync
 * and migrate.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-replicate.h"
#include "vms-bitmap.h"
#include "vms-disk.h"
#include "vms-export.h"
#include "vms-granularity.h"
#include "vms-vm.h"
#include "vms-sink-client.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* A round that is at least this fraction of the previous one is not
 * shrinking: more rounds would not converge. */
#define NOT_SHRINKING_RATIO 0.9
/* Hard stop for --until-converged, whatever the figures say. */
#define MAX_ROUNDS 50

/* Runs started in the same second that a new job's default id may
 * count; more would be a loop gone wrong. */
#define MAX_DEFAULT_ID_ATTEMPTS 1000

/* Replica names are built from these, so keep only the
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
  disk->reconnects += stats->reconnects - rep->last.reconnects;
  disk->bytes_resent += stats->bytes_resent - rep->last.bytes_resent;
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
                       stats->work_done, stats->work_total,
                       stats->bytes_written);
}

static void
on_reconnect (guint attempt, const GError *cause, const VmsCopyStats *stats,
              gpointer user_data)
{
  VmsReplicate *rep = user_data;
  JsonObject *fields = json_object_new ();

  json_object_set_string_member (fields, "disk", rep->disk->name);
  json_object_set_string_member (fields, "phase", rep->phase);
  if (attempt == 0)
    {
      g_autofree char *resent = vms_format_size (stats->bytes_resent);

      json_object_set_int_member (fields, "from", stats->watermark);
      json_object_set_int_member (fields, "bytes-resent", stats->bytes_resent);
      vms_progress_event (
          rep->progress, "reconnected", fields,
          "%s: connected again; the %s goes on from byte %" G_GUINT64_FORMAT
          " (%s sent again so far)",
          rep->disk->name, rep->phase, stats->watermark, resent);
      return;
    }
  json_object_set_int_member (fields, "attempt", attempt);
  json_object_set_string_member (fields, "cause", cause->message);
  vms_progress_event (rep->progress, "reconnecting", fields,
                      "%s: connection lost (%s); reconnecting (attempt %u)",
                      rep->disk->name, cause->message, attempt);
}

/* One pass over a disk: all of it (bitmap NULL) or what bitmap marks,
 * from the disk's watermark on. */
static gboolean
copy_pass (VmsReplicate *rep, VmsJobDisk *disk, const char *bitmap,
           GError **error)
{
  const VmsReplicateConfig *config = rep->config;
  g_autofree char *export = export_name (rep->job, disk);
  g_autofree char *source_uri = NULL;
  g_autofree char *dest_uri = vms_sink_client_export_uri (
      rep->job->sink, VMS_SINK_NAME_KIND_DATA, disk->replica, 0, error);
  g_autofree char *escaped_socket = NULL;
  VmsCopyStats stats = { 0 };
  VmsCopySpec spec = { 0 };
  gint64 started_us;
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
  /* The sink creates a replica sparse, so on a new one (or above a
   * resumed copy's watermark) zeroes are there already; on a replica
   * that held data, its map says so and zeroes are sent. */
  spec.skip_dest_zeroes = TRUE;
  spec.start = disk->watermark;
  spec.end = disk->size;
  spec.connections = config->connections;
  spec.queue_depth = config->queue_depth;
  spec.request_size = config->request_size;
  spec.checkpoint_bytes = config->checkpoint_bytes;
  spec.checkpoint_ms = config->checkpoint_seconds * 1000;
  spec.io_timeout_ms = config->io_timeout_s * 1000;
  /* The source is paused in the final round: a sink that stays away is
   * given up on soon, and the migration rolls back. */
  spec.retry_timeout_ms = (rep->pass == VMS_REPLICATE_PASS_FINAL
                               ? MIN (config->retry_timeout_s,
                                      VMS_REPLICATE_FINAL_RETRY_TIMEOUT_S)
                               : config->retry_timeout_s)
                          * 1000;
  spec.reconnect = on_reconnect;
  spec.rate = rep->rate;
  spec.cancellable = rep->cancellable;
  spec.checkpoint = on_checkpoint;
  spec.progress = on_progress;
  spec.user_data = rep;
  rep->disk = disk;
  memset (&rep->last, 0, sizeof rep->last);

  started_us = g_get_monotonic_time ();
  ok = vms_copy_run (&spec, &stats, error);
  rep->run_us[rep->pass] += g_get_monotonic_time () - started_us;
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
      if (!vms_bitmap_add (rep->qmp, disk->node, name, disk->granularity,
                           &disk->persistent, error))
        return FALSE;
      disk->recording_bitmap = g_steal_pointer (&name);
      disk->watermark = 0;
      if (!rep->recording_since_us)
        rep->recording_since_us = g_get_monotonic_time ();
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

/* A round holds what the guest wrote since the round before began. */
static void
note_write_rate (VmsReplicate *rep, guint64 round_bytes, gint64 switched_us)
{
  gint64 span_us = switched_us - rep->recording_since_us;

  if (rep->recording_since_us > 0 && span_us > 0)
    {
      rep->guest_write_rate = round_bytes * (double)G_USEC_PER_SEC / span_us;
      if (span_us >= rep->longest_round_span_us)
        {
          rep->longest_round_span_us = span_us;
          rep->longest_round_bytes = round_bytes;
        }
    }
  rep->recording_since_us = switched_us;
}

double
vms_replicate_copy_rate (VmsReplicate *rep)
{
  guint64 bytes = rep->run_bytes[VMS_REPLICATE_PASS_BACKGROUND]
                  + rep->run_bytes[VMS_REPLICATE_PASS_ROUNDS];
  gint64 spent_us = rep->run_us[VMS_REPLICATE_PASS_BACKGROUND]
                    + rep->run_us[VMS_REPLICATE_PASS_ROUNDS];

  /* Less than this is mostly connection setup. */
  if (bytes < 4 * 1024 * 1024 || spent_us < 50000)
    return -1;
  return bytes * (double)G_USEC_PER_SEC / spent_us;
}

/* Small enough to end the rounds: by time at the measured rate when a
 * budget is given (and the rate known), else by size. */
static gboolean
round_is_small (VmsReplicate *rep, guint64 total)
{
  const VmsReplicateConfig *config = rep->config;
  double rate = vms_replicate_copy_rate (rep);

  if (!config->converge_bytes_set && config->converge_ms > 0 && rate > 0)
    return total * 1000.0 / rate <= config->converge_ms;
  return total <= config->converge_bytes;
}

static void
report_converged (VmsReplicate *rep, guint64 total)
{
  const VmsReplicateConfig *config = rep->config;
  g_autofree char *size = vms_format_size (total);
  g_autofree char *rate_text = NULL;
  double rate = vms_replicate_copy_rate (rep);
  JsonObject *fields = json_object_new ();

  json_object_set_int_member (fields, "bytes", total);
  if (!round_is_small (rep, total))
    {
      json_object_set_string_member (fields, "why", "not-shrinking");
      vms_progress_event (rep->progress, "converged", fields,
                          "rounds end: the last round held %s and is not "
                          "shrinking (the guest writes as fast as the link "
                          "copies)",
                          size);
      return;
    }
  if (config->converge_bytes_set || config->converge_ms <= 0 || rate <= 0)
    {
      json_object_set_string_member (fields, "why", "small");
      vms_progress_event (rep->progress, "converged", fields,
                          "rounds end: the last round held %s", size);
      return;
    }
  rate_text = vms_format_size ((guint64)rate);
  json_object_set_string_member (fields, "why", "fits");
  json_object_set_int_member (fields, "budget-ms", config->converge_ms);
  vms_progress_event (rep->progress, "converged", fields,
                      "rounds end: the last round held %s, %.0f ms at the "
                      "measured %s/s, within the %d ms budget",
                      size, total * 1000.0 / rate, rate_text,
                      config->converge_ms);
}

gboolean
vms_replicate_rounds (VmsReplicate *rep, GError **error)
{
  const VmsReplicateConfig *config = rep->config;
  guint64 previous = G_MAXUINT64;
  int done = 0;

  rep->pass = VMS_REPLICATE_PASS_ROUNDS;
  vms_progress_set_after_pass (rep->progress, rep->after_disks);
  if (config->rounds == 0)
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
      gint64 switched_us = g_get_monotonic_time ();

      if (g_cancellable_is_cancelled (rep->cancellable))
        break;
      for (guint i = 0; i < rep->job->disks->len; i++)
        {
          guint64 dirty = 0;

          if (!dirty_round (rep, rep->job->disks->pdata[i], &dirty, error))
            return FALSE;
          total += dirty;
        }
      note_write_rate (rep, total, switched_us);
      done++;
      if (config->rounds >= 0 && done >= config->rounds)
        break;
      if (config->rounds < 0
          && (round_is_small (rep, total)
              || (previous != G_MAXUINT64
                  && total >= NOT_SHRINKING_RATIO * previous)
              || done >= MAX_ROUNDS))
        {
          report_converged (rep, total);
          break;
        }
      if (config->rounds < 0 && rep->more_rounds
          && !rep->more_rounds (rep->more_rounds_data))
        break;
      previous = total;
    }
  return TRUE;
}

gboolean
vms_replicate_background (VmsReplicate *rep, GError **error)
{
  for (guint i = 0; i < rep->job->disks->len; i++)
    {
      /* What the later disks have left is not mapped yet: their size
       * above the watermark bounds it, so the overall ETA can only
       * shrink faster than foreseen, never grow. */
      gint64 after = rep->after_disks;

      for (guint j = i + 1; after >= 0 && j < rep->job->disks->len; j++)
        {
          VmsJobDisk *later = rep->job->disks->pdata[j];

          if (later->round == 0)
            after += later->size - later->watermark;
        }
      vms_progress_set_after_pass (rep->progress, after);
      if (!background_copy (rep, rep->job->disks->pdata[i], error))
        return FALSE;
    }
  return TRUE;
}

/* Nothing recorded since the last round: with the guest paused (or its
 * writes mirrored from before the query) there is nothing to copy, and
 * the bitmap switch, export and connections a round costs are saved from
 * the downtime. */
static gboolean
nothing_recorded (VmsReplicate *rep, VmsJobDisk *disk)
{
  g_autoptr (VmsBitmapInfo) info = NULL;

  if (disk->copying_bitmap || !disk->recording_bitmap)
    return FALSE;
  /* A failed query goes the long way, which says what is wrong. */
  info = vms_bitmap_query (rep->qmp, disk->node, disk->recording_bitmap, NULL);
  return info && info->count == 0;
}

gboolean
vms_replicate_final_round (VmsReplicate *rep, GError **error)
{
  rep->pass = VMS_REPLICATE_PASS_FINAL;
  for (guint i = 0; i < rep->job->disks->len; i++)
    {
      VmsJobDisk *disk = rep->job->disks->pdata[i];
      guint64 dirty;

      if (nothing_recorded (rep, disk))
        continue;

      /* A round a killed run left half done holds writes of its own;
       * those since it began are in the recording bitmap. */
      if (disk->copying_bitmap && !dirty_round (rep, disk, &dirty, error))
        return FALSE;
      if (!dirty_round (rep, disk, &dirty, error))
        return FALSE;
    }
  return TRUE;
}

void
vms_replicate_name_server (VmsReplicate *rep)
{
  g_autofree char *socket_name = g_strconcat (rep->job->id, ".nbd", NULL);

  g_free (rep->nbd_socket);
  rep->nbd_socket
      = g_build_filename (rep->config->state_dir, socket_name, NULL);
}

gboolean
vms_replicate_start (VmsReplicate *rep, GError **error)
{
  vms_replicate_name_server (rep);
  if (!vms_export_server_start (rep->qmp, rep->nbd_socket, error))
    return FALSE;
  /* Created over NBD: the sink needs no shell. */
  for (guint i = 0; i < rep->job->disks->len; i++)
    {
      VmsJobDisk *disk = rep->job->disks->pdata[i];

      if (!vms_sink_client_create (rep->job->sink, disk->replica, disk->size,
                                   error))
        return FALSE;
    }
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
vms_replicate_config_init (VmsReplicateConfig *config)
{
  memset (config, 0, sizeof *config);
  config->rounds = -1;
  config->converge_bytes = VMS_REPLICATE_DEFAULT_CONVERGE_BYTES;
  config->checkpoint_bytes = VMS_COPY_DEFAULT_CHECKPOINT_BYTES;
  config->retry_timeout_s = VMS_REPLICATE_DEFAULT_RETRY_TIMEOUT_S;
  config->bitmap_memory = VMS_GRANULARITY_DEFAULT_BITMAP_MEMORY;
}

void
vms_replicate_config_clear (VmsReplicateConfig *config)
{
  g_clear_pointer (&config->sink, g_free);
  g_clear_pointer (&config->job_id, g_free);
  g_clear_pointer (&config->resume, g_free);
  g_clear_pointer (&config->state_dir, g_free);
  g_clear_pointer (&config->disks, g_strfreev);
  g_clear_pointer (&config->replica_prefix, g_free);
}

void
vms_replicate_init (VmsReplicate *rep, const VmsReplicateConfig *config,
                    GCancellable *cancellable, VmsProgress *progress)
{
  memset (rep, 0, sizeof *rep);
  rep->guest_write_rate = -1;
  rep->after_disks = -1;
  rep->config = config;
  rep->cancellable = cancellable;
  rep->progress = progress;
  if (config->max_bandwidth)
    /* A bucket of a tenth of a second smooths without starving. */
    rep->rate = vms_rate_new (
        config->max_bandwidth,
        MAX (config->max_bandwidth / 10, config->request_size
                                             ? config->request_size
                                             : VMS_COPY_DEFAULT_REQUEST_SIZE));
}

/* ---- the job ---- */

static gboolean
select_disks (VmsReplicate *rep, GPtrArray *found, GError **error)
{
  const VmsReplicateConfig *config = rep->config;
  VmsJob *job = rep->job;
  g_autofree char *prefix = sanitise_name (
      config->replica_prefix ? config->replica_prefix
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

      if (config->disks
          && !g_strv_contains ((const char *const *)config->disks, disk->name))
        continue;
      job_disk = vms_job_add_disk (job, disk->name);
      job_disk->node = g_strdup (disk->node_name);
      job_disk->format = g_strdup (disk->format);
      job_disk->size = disk->size;
      job_disk->replica = g_strdup_printf ("%s-%s", prefix, disk_name);
    }
  for (guint i = 0; config->disks && config->disks[i]; i++)
    if (!vms_job_find_disk (job, config->disks[i]))
      {
        /* vms_disk_find says which disks there are. */
        return vms_disk_find (found, config->disks[i], error) != NULL;
      }
  if (job->disks->len == 0)
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_INVALID,
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

/* The first save of a new job.  A default id that another run took in
 * the same second gets a number; a typed one is refused. */
static gboolean
save_new_job (VmsReplicate *rep, GError **error)
{
  VmsJob *job = rep->job;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;

  if (rep->config->job_id)
    return vms_job_save_new (job, error);
  for (guint attempt = 0;; attempt++)
    {
      g_autoptr (GError) local = NULL;

      g_free (job->id);
      job->id = vms_job_default_id (*job->vm_name ? job->vm_name : "vm", now,
                                    attempt);
      if (vms_job_save_new (job, &local))
        return TRUE;
      if (attempt == MAX_DEFAULT_ID_ATTEMPTS
          || !g_error_matches (local, VMS_JOB_ERROR, VMS_JOB_ERROR_EXISTS))
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
    }
}

gboolean
vms_replicate_open_job (VmsReplicate *rep, const char *source, GError **error)
{
  const VmsReplicateConfig *config = rep->config;
  g_autofree char *vm_name = NULL;
  g_autofree char *vm_uuid = NULL;
  g_autoptr (GPtrArray) found = NULL;
  g_autoptr (VmsJob) job = NULL;

  vm_name = vms_vm_query_name (rep->qmp, error);
  vm_uuid = vm_name ? vms_vm_query_uuid (rep->qmp, error) : NULL;
  found = vm_uuid ? vms_disk_discover (rep->qmp, error) : NULL;
  if (!found)
    return FALSE;

  if (config->resume)
    {
      job = vms_job_load (config->state_dir, config->resume, error);
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
      if (config->sink)
        {
          g_free (job->sink);
          job->sink = g_strdup (config->sink);
        }
      rep->job = g_steal_pointer (&job);
      if (!match_disks (rep, found, error))
        return FALSE;
    }
  else
    {
      /* A typed id is taken as it is: refused if invalid, never
       * rewritten, or --resume would not find the job. */
      if (config->job_id && !vms_job_id_is_valid (config->job_id, error))
        return FALSE;
      rep->job = vms_job_new (config->state_dir,
                              config->job_id ? config->job_id : "");
      rep->job->source = g_strdup (source);
      rep->job->sink = g_strdup (config->sink);
      g_free (rep->job->vm_name);
      rep->job->vm_name = g_steal_pointer (&vm_name);
      g_free (rep->job->vm_uuid);
      rep->job->vm_uuid = g_steal_pointer (&vm_uuid);
      if (!select_disks (rep, found, error))
        return FALSE;
    }
  rep->job->runs++;
  rep->job->phase = VMS_JOB_PHASE_COPYING;
  /* A new job's file is made first, and only if its id is free: from
   * here on the id is this run's alone. */
  if (!config->resume && !save_new_job (rep, error))
    return FALSE;
  return vms_replicate_settle_granularity (rep, error);
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
      g_autofree char *granularity = vms_granularity_format (disk->granularity);

      json_object_set_string_member (fields, "disk", disk->name);
      json_object_set_string_member (fields, "replica", disk->replica);
      json_object_set_int_member (fields, "bytes-written", disk->bytes_written);
      json_object_set_int_member (fields, "bytes-zeroed", disk->bytes_zeroed);
      json_object_set_int_member (fields, "bytes-read", disk->bytes_read);
      json_object_set_int_member (fields, "rounds", disk->round - 1);
      json_object_set_int_member (fields, "reconnects", disk->reconnects);
      json_object_set_int_member (fields, "bytes-resent", disk->bytes_resent);
      json_object_set_int_member (fields, "last-round-dirty",
                                  disk->last_round_dirty);
      json_object_set_string_member (fields, "recording-bitmap",
                                     disk->recording_bitmap);
      json_object_set_int_member (fields, "granularity", disk->granularity);
      json_object_set_int_member (fields, "bytes-rounds", disk->bytes_rounds);
      vms_progress_event (rep->progress, "disk-synced", fields,
                          "%s -> %s: %s sent, %s zeroed, %u rounds, last "
                          "round %s, bitmap granularity %s%s%s%s",
                          disk->name, disk->replica, written, zeroed,
                          disk->round - 1, last, granularity,
                          disk->recording_bitmap ? "; bitmap " : "",
                          disk->recording_bitmap ? disk->recording_bitmap : "",
                          disk->recording_bitmap ? " keeps recording" : "");
    }
}
