/* vmshift: replicating a running VM's disks to the sink, shared by sync
 * and migrate.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-replicate.h"
#include "vms-backpressure.h"
#include "vms-replication-backpressure.h"
#include "vms-bitmap.h"
#include "vms-replicate-copy.h"
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

/* ---- passes ---- */

/* The chunk a pass on disk compares with the replica's hashes, or 0 to
 * send all it reads. */
static guint32
compare_chunk (VmsReplicate *rep, VmsJobDisk *disk, gboolean background)
{
  switch (rep->config->compare)
    {
    case VMS_REPLICATE_COMPARE_NEVER:
      return 0;
    case VMS_REPLICATE_COMPARE_ALWAYS:
      return VMS_REPLICATE_COMPARE_CHUNK;
    default:
      /* A round sends a whole bit's worth for each small write: where a
       * bit covers more than the chunk, most of that is at the sink. */
      if (background)
        return disk->compare_all ? VMS_REPLICATE_COMPARE_CHUNK : 0;
      return disk->granularity > VMS_REPLICATE_COMPARE_CHUNK
                 ? VMS_REPLICATE_COMPARE_CHUNK
                 : 0;
    }
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

/* A failure after the first one: both are told. */
static void
add_error (GError **error, GError *more)
{
  char *message;

  if (!error || !*error)
    {
      g_propagate_error (error, more);
      return;
    }
  message = g_strdup_printf ("%s; then %s", (*error)->message, more->message);
  g_free ((*error)->message);
  (*error)->message = message;
  g_error_free (more);
}

/* Save the job after a pass that went as ok says; a failed save is told
 * with the pass's failure, if any. */
static gboolean
save_after_pass (VmsReplicate *rep, gboolean ok, GError **error)
{
  GError *save_error = NULL;

  if (vms_job_save (rep->job, &save_error))
    return ok;
  add_error (error, save_error);
  return FALSE;
}

gboolean
vms_replicate_start_recording (VmsReplicate *rep, VmsJobDisk *disk,
                               GError **error)
{
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

  if (disk->watermark > 0)
    vms_progress_event (rep->progress, "resume", NULL,
                        "%s: resuming the background copy at %" G_GUINT64_FORMAT
                        " of %" G_GUINT64_FORMAT " bytes",
                        disk->name, disk->watermark, disk->size);
  return TRUE;
}

/* A dirty round's start on one disk: its bitmap switched (unless a killed
 * run did that already).  Returns the round's phase name, or NULL. */
static char *
round_prepare (VmsReplicate *rep, VmsJobDisk *disk, GError **error)
{
  if (!disk->copying_bitmap)
    {
      g_autofree char *next = bitmap_name (rep->job, disk->round + 1);
      g_autoptr (VmsBitmapInfo) info = NULL;

      if (!check_bitmap (rep, disk, disk->recording_bitmap, error)
          || !vms_bitmap_switch (rep->qmp, disk->node, disk->recording_bitmap,
                                 next, disk->persistent, error))
        return NULL;
      disk->copying_bitmap = g_steal_pointer (&disk->recording_bitmap);
      disk->recording_bitmap = g_steal_pointer (&next);
      info = vms_bitmap_query (rep->qmp, disk->node, disk->copying_bitmap,
                               error);
      if (!info)
        return NULL;
      disk->round_dirty = info->count;
      disk->watermark = 0;
      if (!vms_job_save (rep->job, error))
        return NULL;
    }
  else if (!check_bitmap (rep, disk, disk->copying_bitmap, error)
           || !check_bitmap (rep, disk, disk->recording_bitmap, error))
    return NULL;

  return rep->pass == VMS_REPLICATE_PASS_FINAL
             ? g_strdup_printf ("final round %u", disk->round)
             : g_strdup_printf ("round %u", disk->round);
}

/* A dirty round copied and flushed on one disk: its bitmap goes, the next
 * round begins.  *dirty gets the round's size. */
static gboolean
round_finish (VmsReplicate *rep, VmsJobDisk *disk, guint64 *dirty,
              GError **error)
{
  JsonObject *fields;
  g_autofree char *size = NULL;

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
  fields = json_object_new ();
  size = vms_format_size (*dirty);
  json_object_set_string_member (fields, "disk", disk->name);
  json_object_set_int_member (fields, "round", disk->round - 1);
  json_object_set_int_member (fields, "dirty", *dirty);
  vms_progress_event (rep->progress, "round", fields,
                      "%s: round %u copied %s of writes", disk->name,
                      disk->round - 1, size);
  return TRUE;
}

/* One dirty round on every disk of disks (VmsJobDisk*) at once; *dirty
 * gets their total size.  A disk whose round completed is finished even
 * when another's failed, so that a resumed job does not copy it again. */
static gboolean
round_on_disks (VmsReplicate *rep, GPtrArray *disks, guint64 *dirty,
                GError **error)
{
  g_autoptr (GPtrArray) copies = g_ptr_array_new_with_free_func (
      (GDestroyNotify)vms_replicate_copy_free);
  gboolean ok;

  *dirty = 0;
  for (guint i = 0; i < disks->len; i++)
    {
      VmsJobDisk *disk = disks->pdata[i];
      char *phase = round_prepare (rep, disk, error);
      VmsReplicateCopy *copy;

      if (!phase)
        return FALSE;
      copy = vms_replicate_copy_new (disk, disk->copying_bitmap, phase);
      copy->compare_chunk = compare_chunk (rep, disk, FALSE);
      g_ptr_array_add (copies, copy);
    }
  if (copies->len == 0)
    return TRUE;
  ok = vms_replicate_copy_disks (rep, copies, error);
  for (guint i = 0; i < copies->len; i++)
    {
      VmsReplicateCopy *copy = copies->pdata[i];
      GError *finish_error = NULL;
      guint64 disk_dirty = 0;

      if (!copy->done)
        continue;
      if (!round_finish (rep, copy->disk, &disk_dirty, &finish_error))
        {
          add_error (error, finish_error);
          ok = FALSE;
        }
      *dirty += disk_dirty;
    }
  return ok;
}

/* The disks of the job, all or those a killed run left in the middle of
 * a round (caller frees the array, not the disks). */
static GPtrArray *
job_disks (VmsReplicate *rep, gboolean half_done_only)
{
  GPtrArray *disks = g_ptr_array_new ();

  for (guint i = 0; i < rep->job->disks->len; i++)
    {
      VmsJobDisk *disk = rep->job->disks->pdata[i];

      if (!half_done_only || disk->copying_bitmap)
        g_ptr_array_add (disks, disk);
    }
  return disks;
}

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

double
vms_replicate_round_rate (VmsReplicate *rep)
{
  guint64 bytes = rep->run_bytes[VMS_REPLICATE_PASS_ROUNDS];
  gint64 spent_us = rep->run_us[VMS_REPLICATE_PASS_ROUNDS];

  /* Less than this is mostly a round's fixed steps. */
  if (bytes < 1024 * 1024 || spent_us < 50000)
    return vms_replicate_copy_rate (rep);
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

/* Why the last round calls for (more) write backpressure, or NULL: it
 * is not small, and the estimate foresaw rounds that do not converge
 * (the first step, its rate, comes after the first round rather than
 * after rounds spent finding out), or it did not shrink, or the guest
 * dirties faster than the link copies (rounds cannot converge then). */
static const char *
backpressure_reason (VmsReplicate *rep, guint64 total, gboolean not_shrinking)
{
  double copy_rate = vms_replicate_copy_rate (rep);

  if (round_is_small (rep, total))
    return NULL;
  if (rep->config->write_backpressure_first
      && !vms_backpressure_applied (rep->job))
    return "estimate";
  if (not_shrinking)
    return "not-shrinking";
  if (copy_rate > 0 && rep->guest_write_rate >= copy_rate)
    return "writes-outpace-copy";
  return NULL;
}

/* After a round of an open-ended run: TRUE when the rounds end (reported),
 * with *error set if a backpressure step failed.  *settling is set after a
 * step: the next round recorded partly before it, so it is not judged. */
static gboolean
rounds_end (VmsReplicate *rep, guint64 total, guint64 previous, int done,
            gboolean *settling, GError **error)
{
  gboolean not_shrinking = !*settling && previous != G_MAXUINT64
                           && total >= NOT_SHRINKING_RATIO * previous;
  const char *why = backpressure_reason (rep, total, not_shrinking);
  gboolean stepped = FALSE;

  *settling = FALSE;
  if (why && done < MAX_ROUNDS)
    {
      if (!vms_backpressure_step (rep, why, &stepped, error))
        return TRUE;
      if (stepped)
        {
          *settling = TRUE;
          return FALSE;
        }
    }
  if (round_is_small (rep, total) || not_shrinking || done >= MAX_ROUNDS)
    {
      report_converged (rep, total);
      return TRUE;
    }
  return FALSE;
}

gboolean
vms_replicate_rounds (VmsReplicate *rep, GError **error)
{
  const VmsReplicateConfig *config = rep->config;
  guint64 previous = G_MAXUINT64;
  gboolean settling = FALSE;
  int done = 0;

  rep->pass = VMS_REPLICATE_PASS_ROUNDS;
  vms_progress_set_after_pass (rep->progress, rep->after_disks);
  if (config->rounds == 0)
    {
      /* No new round, but one a killed run left half done is finished:
       * its bitmap is already disabled and holds writes nobody else has. */
      g_autoptr (GPtrArray) half_done = job_disks (rep, TRUE);
      guint64 dirty;

      return round_on_disks (rep, half_done, &dirty, error);
    }
  for (;;)
    {
      g_autoptr (GPtrArray) disks = job_disks (rep, FALSE);
      g_autoptr (GError) step_error = NULL;
      guint64 total = 0;
      gint64 switched_us = g_get_monotonic_time ();

      if (g_cancellable_is_cancelled (rep->cancellable))
        break;
      /* What the guest wrote is sampled at each round's end, so that a
       * step after round 1 (the estimate's) knows its rate. */
      if (done == 0)
        vms_backpressure_sample (rep);
      if (!round_on_disks (rep, disks, &total, error))
        return FALSE;
      vms_backpressure_sample (rep);
      note_write_rate (rep, total, switched_us);
      done++;
      if (config->rounds >= 0 && done >= config->rounds)
        break;
      if (config->rounds < 0
          && rounds_end (rep, total, previous, done, &settling, &step_error))
        {
          if (!step_error)
            return TRUE;
          g_propagate_error (error, g_steal_pointer (&step_error));
          return FALSE;
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
  g_autoptr (GPtrArray) copies = g_ptr_array_new_with_free_func (
      (GDestroyNotify)vms_replicate_copy_free);
  gboolean ok;

  rep->pass = VMS_REPLICATE_PASS_BACKGROUND;
  for (guint i = 0; i < rep->job->disks->len; i++)
    {
      VmsJobDisk *disk = rep->job->disks->pdata[i];
      VmsReplicateCopy *copy;

      if (disk->round > 0)
        continue;
      if (!vms_replicate_start_recording (rep, disk, error))
        return FALSE;
      copy = vms_replicate_copy_new (disk, NULL, g_strdup ("background"));
      copy->compare_chunk = compare_chunk (rep, disk, TRUE);
      g_ptr_array_add (copies, copy);
    }
  if (copies->len == 0)
    return TRUE;
  /* The disks copy at once: after them come only the later passes. */
  vms_progress_set_after_pass (rep->progress, rep->after_disks);
  ok = vms_replicate_copy_disks (rep, copies, error);
  for (guint i = 0; i < copies->len; i++)
    {
      VmsReplicateCopy *copy = copies->pdata[i];

      if (copy->done)
        {
          copy->disk->round = 1;
          copy->disk->watermark = 0;
          copy->disk->compare_all = FALSE;
        }
    }
  return save_after_pass (rep, ok, error);
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
  g_autoptr (GPtrArray) disks = g_ptr_array_new ();
  g_autoptr (GPtrArray) half_done = g_ptr_array_new ();
  guint64 dirty;

  rep->pass = VMS_REPLICATE_PASS_FINAL;
  for (guint i = 0; i < rep->job->disks->len; i++)
    {
      VmsJobDisk *disk = rep->job->disks->pdata[i];

      if (nothing_recorded (rep, disk))
        continue;
      g_ptr_array_add (disks, disk);
      if (disk->copying_bitmap)
        g_ptr_array_add (half_done, disk);
    }
  /* A round a killed run left half done holds writes of its own; those
   * since it began are in the recording bitmap. */
  return round_on_disks (rep, half_done, &dirty, error)
         && round_on_disks (rep, disks, &dirty, error);
}

gboolean
vms_replicate_catch_up (VmsReplicate *rep, GPtrArray *disks, GError **error)
{
  guint64 dirty;

  /* As the round after the mirror's start, which this one repeats. */
  rep->pass = VMS_REPLICATE_PASS_FINAL;
  return round_on_disks (rep, disks, &dirty, error);
}

void
vms_replicate_name_server (VmsReplicate *rep)
{
  g_autofree char *socket_name = g_strconcat (rep->job->id, ".nbd", NULL);

  g_free (rep->nbd_socket);
  rep->nbd_socket
      = g_build_filename (rep->config->state_dir, socket_name, NULL);
}

/* Whether QEMU's NBD server is the one a killed vmshift of another job
 * left (its socket in our state directory, its job unlocked): then it is
 * stopped and TRUE returned.  A job that a live vmshift runs keeps its
 * server, and error says which. */
static gboolean
stop_stale_server (VmsReplicate *rep, GError **error)
{
  const char *state_dir = rep->config->state_dir;
  g_autoptr (GDir) dir = g_dir_open (state_dir, 0, NULL);
  const char *name;

  while (dir && (name = g_dir_read_name (dir)))
    {
      g_autofree char *id = g_strndup (name, strlen (name) - strlen (".nbd"));
      g_autofree char *path = g_build_filename (state_dir, name, NULL);
      g_autoptr (VmsJob) other = NULL;
      gint64 holder;

      /* Only a job's socket: an estimate's server is not ours to stop. */
      if (!g_str_has_suffix (name, ".nbd") || g_str_equal (id, rep->job->id)
          || !(other = vms_job_load (state_dir, id, NULL))
          || !vms_export_server_serves (rep->qmp, path, NULL))
        continue;
      holder = vms_job_lock_holder (state_dir, id);
      if (holder != 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY,
                       "QEMU's NBD server serves job %s, which vmshift "
                       "(pid %" G_GINT64_FORMAT ") runs: QEMU has one NBD "
                       "server, so one job of a VM runs at a time",
                       id, holder);
          return FALSE;
        }
      vms_progress_event (rep->progress, "warning", NULL,
                          "stopping QEMU's NBD server that the killed "
                          "vmshift of job %s left running",
                          id);
      return vms_export_server_stop (rep->qmp, error);
    }
  return FALSE;
}

static gboolean
start_server (VmsReplicate *rep, GError **error)
{
  g_autoptr (GError) busy = NULL;

  if (vms_export_server_start (rep->qmp, rep->nbd_socket, &busy))
    return TRUE;
  if (!g_error_matches (busy, G_IO_ERROR, G_IO_ERROR_BUSY))
    {
      g_propagate_error (error, g_steal_pointer (&busy));
      return FALSE;
    }
  if (!stop_stale_server (rep, error))
    {
      /* Nothing of ours: someone else's server, as start said. */
      if (error && !*error)
        g_propagate_error (error, g_steal_pointer (&busy));
      return FALSE;
    }
  return vms_export_server_start (rep->qmp, rep->nbd_socket, error);
}

gboolean
vms_replicate_start (VmsReplicate *rep, GError **error)
{
  /* A sink that accepts and never answers is given --io-timeout, as a
   * silent peer of the copy is. */
  guint io_timeout_ms = rep->config->io_timeout_s
                            ? rep->config->io_timeout_s * 1000
                            : VMS_COPY_DEFAULT_IO_TIMEOUT_MS;

  vms_replicate_name_server (rep);
  if (!start_server (rep, error))
    return FALSE;
  /* Created over NBD: the sink needs no shell.  A job seeding a device
   * has no sink yet: the seed's import makes its replicas. */
  for (guint i = 0; rep->job->sink && i < rep->job->disks->len; i++)
    {
      VmsJobDisk *disk = rep->job->disks->pdata[i];

      if (!vms_sink_client_create (rep->job->sink, disk->replica, disk->size,
                                   io_timeout_ms, rep->cancellable, error))
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
  g_clear_pointer (&rep->lock, vms_job_lock_release);
  g_clear_pointer (&rep->qmp, vms_qmp_free);
  g_clear_pointer (&rep->rate, vms_rate_free);
  g_clear_pointer (&rep->nbd_socket, g_free);
  g_clear_pointer (&rep->backpressure, vms_backpressure_free);
  g_clear_pointer (&rep->replication_backpressure,
                   vms_replication_backpressure_free);
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
vms_replicate_config_set_backpressure (VmsReplicateConfig *config,
                                       const VmsBackpressureOptions *options)
{
  switch (options->write_backpressure)
    {
    case VMS_BACKPRESSURE_OPTION_AUTO:
      config->write_backpressure = VMS_REPLICATE_BACKPRESSURE_AUTO;
      break;
    case VMS_BACKPRESSURE_OPTION_OFF:
      config->write_backpressure = VMS_REPLICATE_BACKPRESSURE_OFF;
      break;
    case VMS_BACKPRESSURE_OPTION_RATE:
      config->write_backpressure = VMS_REPLICATE_BACKPRESSURE_RATE;
      break;
    }
  config->write_backpressure_rate = options->write_backpressure_rate;
  config->max_guest_latency_ms = options->max_guest_latency_ms;
  config->max_guest_latency_asked = options->replication_asked;
}

/* The copy's token bucket at limit bytes/s holds a tenth of a second,
 * one request at least: it smooths without starving. */
static guint64
copy_burst (const VmsReplicateConfig *config, guint64 limit)
{
  return MAX (limit / 10, config->request_size ? config->request_size
                                               : VMS_COPY_DEFAULT_REQUEST_SIZE);
}

/* The copy's token bucket, at --max-bandwidth (0: unlimited). */
static VmsRate *
new_rate (const VmsReplicateConfig *config)
{
  return vms_rate_new (config->max_bandwidth,
                       copy_burst (config, config->max_bandwidth));
}

void
vms_replicate_set_rate_limit (VmsReplicate *rep, guint64 limit)
{
  vms_rate_set_limit (rep->rate, limit, copy_burst (rep->config, limit));
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
  rep->backpressure = vms_backpressure_new ();
  if (config->max_guest_latency_ms)
    vms_replicate_enable_replication_backpressure (rep);
  else if (config->max_bandwidth)
    rep->rate = new_rate (config);
}

void
vms_replicate_leave_room (VmsReplicate *rep, guint64 guest_rate)
{
  const VmsReplicateConfig *config = rep->config;
  double rate = vms_replicate_round_rate (rep);
  guint64 limit;
  JsonObject *fields;
  g_autofree char *limit_text = NULL;
  g_autofree char *guest_text = NULL;

  if (!guest_rate || rate <= 0 || rep->replication_backpressure
      || rep->room_left)
    return;
  limit = (guint64)MAX (rate - (double)guest_rate, rate / 4);
  if (config->max_bandwidth && config->max_bandwidth <= limit)
    return;
  /* Without replication backpressure the copy has a bucket only for
   * --max-bandwidth. */
  if (config->max_bandwidth)
    vms_replicate_set_rate_limit (rep, limit);
  else
    rep->rate = vms_rate_new (limit, copy_burst (config, limit));
  rep->room_left = TRUE;
  limit_text = vms_format_size (limit);
  guest_text = vms_format_size (guest_rate);
  fields = json_object_new ();
  json_object_set_int_member (fields, "rate", (gint64)limit);
  json_object_set_int_member (fields, "guest-rate", (gint64)guest_rate);
  json_object_set_int_member (fields, "round-rate", (gint64)rate);
  vms_progress_event (rep->progress, "catch-up-limit", fields,
                      "catch-up copy held to %s/s: the mirror carries the "
                      "guest's writes, held to %s/s, beside it",
                      limit_text, guest_text);
}

void
vms_replicate_end_room (VmsReplicate *rep)
{
  const VmsReplicateConfig *config = rep->config;

  if (!rep->room_left)
    return;
  rep->room_left = FALSE;
  /* The bucket vms_replicate_leave_room made, or --max-bandwidth's. */
  if (config->max_bandwidth)
    vms_replicate_set_rate_limit (rep, config->max_bandwidth);
  else
    g_clear_pointer (&rep->rate, vms_rate_free);
}

void
vms_replicate_enable_replication_backpressure (VmsReplicate *rep)
{
  if (!rep->replication_backpressure)
    rep->replication_backpressure = vms_replication_backpressure_new ();
  /* It changes the limit as the copy runs: the copy needs one. */
  if (!rep->rate)
    rep->rate = new_rate (rep->config);
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
    return vms_replicate_lock_job (rep, job->id, error)
           && vms_job_save_new (job, error);
  for (guint attempt = 0;; attempt++)
    {
      g_autoptr (GError) local = NULL;

      g_free (job->id);
      job->id = vms_job_default_id (*job->vm_name ? job->vm_name : "vm", now,
                                    attempt);
      /* Nobody knows this id yet: it is locked right after its file is
       * made, before anything else is done. */
      if (vms_job_save_new (job, &local))
        return vms_replicate_lock_job (rep, job->id, error);
      if (attempt == MAX_DEFAULT_ID_ATTEMPTS
          || !g_error_matches (local, VMS_JOB_ERROR, VMS_JOB_ERROR_EXISTS))
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
    }
}

/* The job id a bitmap name vmshift-ID-N gives, or NULL (an estimate's
 * vmshift-estimate-..., anything else).  Caller frees. */
static char *
bitmap_job_id (const char *bitmap)
{
  const char *dash = strrchr (bitmap, '-');
  const char *id = bitmap + strlen ("vmshift-");

  if (!g_str_has_prefix (bitmap, "vmshift-")
      || g_str_has_prefix (bitmap, "vmshift-estimate-") || dash < id || !dash[1]
      || strspn (dash + 1, "0123456789") != strlen (dash + 1))
    return NULL;
  return g_strndup (id, dash - id);
}

/* Older jobs' bitmaps are not removed silently (a job may go on), but a
 * new job says how many the disks hold, since each costs QEMU memory and
 * work on every guest write, and how to drop them. */
static void
warn_other_bitmaps (VmsReplicate *rep)
{
  for (guint i = 0; i < rep->job->disks->len; i++)
    {
      VmsJobDisk *disk = rep->job->disks->pdata[i];
      /* Only a warning: a list that fails here fails loudly in the
       * run's own bitmap steps right after. */
      g_autoptr (GPtrArray) bitmaps
          = vms_bitmap_list (rep->qmp, disk->node, NULL);
      g_autoptr (GPtrArray) jobs = g_ptr_array_new_with_free_func (g_free);
      g_autofree char *names = NULL;
      guint count = 0;

      for (guint k = 0; bitmaps && k < bitmaps->len; k++)
        {
          g_autofree char *id
              = bitmap_job_id (((VmsBitmapInfo *)bitmaps->pdata[k])->name);

          if (!id || g_str_equal (id, rep->job->id))
            continue;
          count++;
          if (!g_ptr_array_find_with_equal_func (jobs, id, g_str_equal, NULL))
            g_ptr_array_add (jobs, g_steal_pointer (&id));
        }
      g_ptr_array_add (jobs, NULL);
      names = g_strjoinv (", ", (char **)jobs->pdata);
      if (count)
        vms_progress_event (rep->progress, "warning", NULL,
                            "%s holds %u bitmap%s of other jobs (%s); drop "
                            "the jobs given up with 'vmshift job drop JOB' "
                            "(see 'vmshift job list')",
                            disk->name, count, count == 1 ? "" : "s", names);
    }
}

gboolean
vms_replicate_lock_job (VmsReplicate *rep, const char *id, GError **error)
{
  if (!rep->lock)
    rep->lock = vms_job_lock_take (rep->config->state_dir, id, error);
  return rep->lock != NULL;
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
      job = vms_replicate_lock_job (rep, config->resume, error)
                ? vms_job_load (config->state_dir, config->resume, error)
                : NULL;
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
      if (!job->sink)
        {
          g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_INVALID,
                       "job %s was seeded to a device: name the sink that "
                       "imported the seed with --sink URI",
                       job->id);
          return FALSE;
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
  if (!config->resume)
    warn_other_bitmaps (rep);
  return vms_replicate_settle_granularity (rep, error)
         && (!config->resume || vms_replicate_recover_bitmaps (rep, error));
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
      g_autofree char *matched_size = vms_format_size (disk->bytes_matched);
      g_autofree char *matched
          = disk->bytes_matched ? g_strdup_printf (
                ", %s read but at the sink already", matched_size)
                                : g_strdup ("");

      json_object_set_string_member (fields, "disk", disk->name);
      json_object_set_string_member (fields, "replica", disk->replica);
      json_object_set_int_member (fields, "bytes-written", disk->bytes_written);
      json_object_set_int_member (fields, "bytes-zeroed", disk->bytes_zeroed);
      json_object_set_int_member (fields, "bytes-read", disk->bytes_read);
      json_object_set_int_member (fields, "rounds", disk->round - 1);
      json_object_set_int_member (fields, "reconnects", disk->reconnects);
      json_object_set_int_member (fields, "bytes-resent", disk->bytes_resent);
      json_object_set_int_member (fields, "bytes-matched", disk->bytes_matched);
      json_object_set_int_member (fields, "last-round-dirty",
                                  disk->last_round_dirty);
      json_object_set_string_member (fields, "recording-bitmap",
                                     disk->recording_bitmap);
      json_object_set_int_member (fields, "granularity", disk->granularity);
      json_object_set_int_member (fields, "bytes-rounds", disk->bytes_rounds);
      vms_progress_event (rep->progress, "disk-synced", fields,
                          "%s -> %s: %s sent, %s zeroed%s, %u rounds, last "
                          "round %s, bitmap granularity %s%s%s%s",
                          disk->name, disk->replica, written, zeroed, matched,
                          disk->round - 1, last, granularity,
                          disk->recording_bitmap ? "; bitmap " : "",
                          disk->recording_bitmap ? disk->recording_bitmap : "",
                          disk->recording_bitmap ? " keeps recording" : "");
    }
  vms_replication_backpressure_report (rep);
}
