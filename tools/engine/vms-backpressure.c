/* vmshift engine: write backpressure.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-backpressure.h"
#include "vms-guest.h"
#include "vms-throttle.h"

/* A disk the guest writes less than this to (bytes/s) is not throttled:
 * its rounds are not what keeps the others from converging. */
#define IDLE_RATE (VMS_BACKPRESSURE_FLOOR / 2)

/* Less than this between two samples is mostly noise. */
#define MIN_SAMPLE_US (200 * 1000)

struct VmsBackpressure
{
  GArray *written;    /* guint64 per job disk: wr_bytes at the last sample */
  GArray *rate;       /* double per job disk: bytes/s the guest wrote between
                         the last two samples, -1: unknown */
  gint64 sampled_us;  /* monotonic time of the last sample, 0: none */
  gboolean rate_done; /* RATE mode: its one step is taken */
  guint64 lowest;     /* the lowest limit set, 0: none */
};

VmsBackpressure *
vms_backpressure_new (void)
{
  VmsBackpressure *bp = g_new0 (VmsBackpressure, 1);

  bp->written = g_array_new (FALSE, TRUE, sizeof (guint64));
  bp->rate = g_array_new (FALSE, TRUE, sizeof (double));
  return bp;
}

void
vms_backpressure_free (VmsBackpressure *bp)
{
  if (!bp)
    return;
  g_array_unref (bp->written);
  g_array_unref (bp->rate);
  g_free (bp);
}

void
vms_backpressure_sample (VmsReplicate *rep)
{
  VmsBackpressure *bp = rep->backpressure;
  g_autoptr (GPtrArray) stats = NULL;
  gint64 now = g_get_monotonic_time ();
  guint n = rep->job ? rep->job->disks->len : 0;

  if (!bp || !rep->qmp || n == 0)
    return;
  stats = vms_guest_query_blockstats (rep->qmp, NULL);
  if (!stats)
    return;
  g_array_set_size (bp->written, n);
  g_array_set_size (bp->rate, n);
  for (guint i = 0; i < n; i++)
    {
      VmsJobDisk *disk = rep->job->disks->pdata[i];
      VmsGuestBlockStats *entry
          = vms_guest_block_stats_find (stats, disk->node, disk->name);
      guint64 *written = &g_array_index (bp->written, guint64, i);
      double *rate = &g_array_index (bp->rate, double, i);

      if (!entry)
        {
          *rate = -1;
          continue;
        }
      *rate = bp->sampled_us && now - bp->sampled_us >= MIN_SAMPLE_US
                      && entry->wr_bytes >= *written
                  ? (entry->wr_bytes - *written) * (double)G_USEC_PER_SEC
                        / (now - bp->sampled_us)
                  : -1;
      *written = entry->wr_bytes;
    }
  bp->sampled_us = now;
}

/* The fraction of what the guest writes now that lets rounds shrink to
 * VMS_BACKPRESSURE_TARGET_SHRINK at the copy rate: the dirty rate the
 * bitmaps measured may exceed the bytes written (a bit covers a whole
 * granule), so the ratio of the two rates, not the bytes, is used. */
static double
needed_ratio (VmsReplicate *rep)
{
  double copy_rate = vms_replicate_copy_rate (rep);
  double dirty_rate = rep->guest_write_rate;

  if (copy_rate <= 0 || dirty_rate <= 0)
    return VMS_BACKPRESSURE_TARGET_SHRINK;
  return MIN (VMS_BACKPRESSURE_TARGET_SHRINK * copy_rate / dirty_rate,
              VMS_BACKPRESSURE_TARGET_SHRINK);
}

/* Disk i's share of the first step an estimate recommended for all the
 * disks: as it wrote among them, else an equal one. */
static guint64
first_step (VmsReplicate *rep, guint i)
{
  const GArray *rates = rep->backpressure->rate;
  guint64 first = rep->config->write_backpressure_first;
  double sum = 0;

  for (guint k = 0; k < rates->len; k++)
    sum += MAX (g_array_index (rates, double, k), 0);
  if (i < rates->len && sum > 0)
    first = first * (MAX (g_array_index (rates, double, i), 0) / sum);
  else
    first /= MAX (rep->job->disks->len, 1);
  return MAX (first, VMS_BACKPRESSURE_FLOOR);
}

/* The next limit of disk i, 0 when it is not to change. */
static guint64
next_rate (VmsReplicate *rep, guint i, VmsJobDisk *disk, double ratio)
{
  VmsBackpressure *bp = rep->backpressure;
  const VmsReplicateConfig *config = rep->config;
  double wrote = i < bp->rate->len ? g_array_index (bp->rate, double, i) : -1;
  double base;

  if (config->write_backpressure == VMS_REPLICATE_BACKPRESSURE_RATE)
    return disk->throttle_bps_wr == config->write_backpressure_rate
               ? 0
               : config->write_backpressure_rate;
  /* Held already: the step goes down from the limit, or from what the
   * guest wrote under it when that was less. */
  base = disk->throttle_bps_wr ? disk->throttle_bps_wr : wrote;
  if (disk->throttle_bps_wr && wrote >= 0 && wrote < base)
    base = wrote;
  if (base < IDLE_RATE
      || (disk->throttle_bps_wr
          && disk->throttle_bps_wr <= VMS_BACKPRESSURE_FLOOR))
    return 0;
  if (!disk->throttle_bps_wr && config->write_backpressure_first)
    return first_step (rep, i);
  return MAX ((guint64)(base * ratio), VMS_BACKPRESSURE_FLOOR);
}

/* Throttle disk's device to rate, its own limits recorded (and saved)
 * first, so that nothing can throttle it without a way back. */
static gboolean
apply (VmsReplicate *rep, VmsJobDisk *disk, guint64 rate, const char **member,
       GError **error)
{
  g_autoptr (JsonObject) limited = NULL;

  if (!disk->throttle_original)
    {
      disk->throttle_original
          = vms_throttle_query (rep->qmp, disk->name, error);
      if (!disk->throttle_original || !vms_job_save (rep->job, error))
        return FALSE;
    }
  limited = vms_throttle_limit_writes (disk->throttle_original, rate, member);
  if (!vms_throttle_set (rep->qmp, disk->name, limited, error))
    return FALSE;
  disk->throttle_bps_wr = rate;
  if (!rep->backpressure->lowest || rate < rep->backpressure->lowest)
    rep->backpressure->lowest = rate;
  return vms_job_save (rep->job, error);
}

/* Why a step was taken, for people. */
static const char *
why_text (const char *why)
{
  if (g_str_equal (why, "estimate"))
    return "the estimate foresaw rounds that do not converge";
  if (g_str_equal (why, "not-shrinking"))
    return "rounds stopped shrinking";
  return "writes outpace the copy";
}

static void
report_step (VmsReplicate *rep, VmsJobDisk *disk, guint i, const char *member,
             const char *why)
{
  VmsBackpressure *bp = rep->backpressure;
  double wrote = i < bp->rate->len ? g_array_index (bp->rate, double, i) : -1;
  double copy_rate = vms_replicate_copy_rate (rep);
  g_autofree char *rate_text = vms_format_size (disk->throttle_bps_wr);
  g_autofree char *wrote_text = vms_format_size (wrote > 0 ? wrote : 0);
  g_autofree char *copy_text = vms_format_size (copy_rate > 0 ? copy_rate : 0);
  JsonObject *fields = json_object_new ();

  json_object_set_string_member (fields, "disk", disk->name);
  json_object_set_int_member (fields, "rate", disk->throttle_bps_wr);
  json_object_set_string_member (fields, "why", why);
  json_object_set_string_member (fields, "limit", member);
  if (wrote >= 0)
    json_object_set_int_member (fields, "guest-rate", (gint64)wrote);
  if (copy_rate > 0)
    json_object_set_int_member (fields, "copy-rate", (gint64)copy_rate);
  vms_progress_event (
      rep->progress, "backpressure", fields,
      "%s: guest writes held to %s/s (%s%s; it wrote %s/s, the copy "
      "runs at %s/s)",
      disk->name, rate_text, why_text (why),
      g_str_equal (member, "bps") ? "; the guest's total limit, reads too" : "",
      wrote_text, copy_text);
}

gboolean
vms_backpressure_step (VmsReplicate *rep, const char *why, gboolean *stepped,
                       GError **error)
{
  double ratio = needed_ratio (rep);

  *stepped = FALSE;
  if (!rep->backpressure
      || rep->config->write_backpressure == VMS_REPLICATE_BACKPRESSURE_OFF)
    return TRUE;
  for (guint i = 0; i < rep->job->disks->len; i++)
    {
      VmsJobDisk *disk = rep->job->disks->pdata[i];
      guint64 rate = next_rate (rep, i, disk, ratio);
      const char *member = NULL;

      if (rate == 0)
        continue;
      if (!apply (rep, disk, rate, &member, error))
        return FALSE;
      report_step (rep, disk, i, member, why);
      *stepped = TRUE;
    }
  return TRUE;
}

guint64
vms_backpressure_lowest_rate (const VmsBackpressure *bp)
{
  return bp ? bp->lowest : 0;
}

guint64
vms_backpressure_held_rate (const VmsJob *job)
{
  guint64 held = 0;

  for (guint i = 0; job && i < job->disks->len; i++)
    held += ((VmsJobDisk *)job->disks->pdata[i])->throttle_bps_wr;
  return held;
}

gboolean
vms_backpressure_applied (const VmsJob *job)
{
  for (guint i = 0; job && i < job->disks->len; i++)
    if (((VmsJobDisk *)job->disks->pdata[i])->throttle_original)
      return TRUE;
  return FALSE;
}

static void
report_release (VmsProgress *progress, VmsJobDisk *disk, const char *why)
{
  JsonObject *fields = json_object_new ();
  guint64 own = vms_throttle_get (disk->throttle_original, "bps_wr");
  g_autofree char *own_text = vms_format_size (own);

  json_object_set_string_member (fields, "disk", disk->name);
  json_object_set_int_member (fields, "rate", 0);
  json_object_set_string_member (fields, "why", why);
  json_object_set_boolean_member (fields, "restored", TRUE);
  json_object_set_int_member (fields, "own-bps-wr", own);
  vms_progress_event (progress, "backpressure", fields,
                      "%s: write backpressure removed (%s); the guest's own "
                      "limits are back%s%s%s",
                      disk->name, why, own ? " (writes " : "",
                      own ? own_text : "", own ? "/s)" : "");
}

gboolean
vms_backpressure_release (VmsQmp *qmp, VmsJob *job, VmsProgress *progress,
                          const char *why, GError **error)
{
  GError *first = NULL;

  if (!vms_backpressure_applied (job))
    return TRUE;
  for (guint i = 0; i < job->disks->len; i++)
    {
      VmsJobDisk *disk = job->disks->pdata[i];
      GError *local = NULL;

      if (!disk->throttle_original)
        continue;
      if (!qmp
          || !vms_throttle_set (qmp, disk->name, disk->throttle_original,
                                &local))
        {
          if (!local)
            local = g_error_new (G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED,
                                 "disk %s: no connection to QEMU to remove "
                                 "the write backpressure",
                                 disk->name);
          if (!first)
            first = local;
          else
            g_error_free (local);
          continue;
        }
      if (progress)
        report_release (progress, disk, why);
      g_clear_pointer (&disk->throttle_original, json_object_unref);
      disk->throttle_bps_wr = 0;
    }
  if (!vms_job_save (job, first ? NULL : &first) || first)
    {
      g_propagate_error (error, first);
      return FALSE;
    }
  return TRUE;
}
