/* vmshift engine: replication backpressure.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-replication-backpressure.h"
#include "vms-guest.h"
#include "vms-latency-control.h"

struct VmsReplicationBackpressure
{
  VmsLatencyControl control;
  gboolean started;  /* the baseline is measured */
  gboolean warned;   /* a failed sample was reported */
  GArray *counters;  /* VmsGuestWriteCounters per job disk, at the last
                        sample */
  GArray *baseline;  /* double µs per job disk, -1: the guest did not write
                        to it before the copy (its writes may then take
                        the allowance, from 0) */
  gint64 sampled_us; /* monotonic time of the last sample */
  guint64 copied;    /* the pass's bytes at the last sample */
  /* For the report: */
  guint cuts, raises;
  guint64 lowest_rate;     /* lowest limit set, 0: none */
  double highest_latency;  /* µs, the worst sample's, -1: none */
  double highest_baseline; /* the baseline of that disk */
};

VmsReplicationBackpressure *
vms_replication_backpressure_new (void)
{
  VmsReplicationBackpressure *rbp = g_new0 (VmsReplicationBackpressure, 1);

  rbp->counters = g_array_new (FALSE, TRUE, sizeof (VmsGuestWriteCounters));
  rbp->baseline = g_array_new (FALSE, TRUE, sizeof (double));
  rbp->highest_latency = -1;
  return rbp;
}

void
vms_replication_backpressure_free (VmsReplicationBackpressure *rbp)
{
  if (!rbp)
    return;
  g_array_unref (rbp->counters);
  g_array_unref (rbp->baseline);
  g_free (rbp);
}

/* Each job disk's latency since the last sample (µs, -1: too few writes
 * or no figures) into latency, and the sample noted.  FALSE when QEMU
 * gave no figures at all (the sample is skipped). */
static gboolean
sample (VmsReplicate *rep, double *latency)
{
  VmsReplicationBackpressure *rbp = rep->replication_backpressure;
  g_autoptr (GPtrArray) stats = NULL;
  g_autoptr (GError) error = NULL;
  guint n = rep->job->disks->len;

  stats = vms_guest_query_blockstats (rep->qmp, &error);
  if (!stats)
    {
      /* Once: a QEMU that stopped answering fails the copy anyway. */
      if (!rbp->warned)
        vms_progress_event (rep->progress, "warning", NULL,
                            "replication backpressure: no latency figures "
                            "from QEMU (%s); the copy's rate stays as it is "
                            "until they come back",
                            error->message);
      rbp->warned = TRUE;
      return FALSE;
    }
  g_array_set_size (rbp->counters, n);
  for (guint i = 0; i < n; i++)
    {
      VmsJobDisk *disk = rep->job->disks->pdata[i];
      VmsGuestBlockStats *entry
          = vms_guest_block_stats_find (stats, disk->node, disk->name);
      VmsGuestWriteCounters *last
          = &g_array_index (rbp->counters, VmsGuestWriteCounters, i);
      VmsGuestWriteCounters now = vms_guest_write_counters (entry);

      latency[i] = vms_guest_write_latency_us (last, &now);
      *last = now;
    }
  rbp->sampled_us = g_get_monotonic_time ();
  return TRUE;
}

static void
report_baseline (VmsReplicate *rep)
{
  VmsReplicationBackpressure *rbp = rep->replication_backpressure;

  for (guint i = 0; i < rep->job->disks->len; i++)
    {
      VmsJobDisk *disk = rep->job->disks->pdata[i];
      double baseline = g_array_index (rbp->baseline, double, i);
      JsonObject *fields = json_object_new ();

      json_object_set_string_member (fields, "disk", disk->name);
      json_object_set_string_member (fields, "why", "baseline");
      json_object_set_int_member (fields, "allowance-us",
                                  (gint64)rbp->control.allowance_us);
      if (baseline >= 0)
        json_object_set_int_member (fields, "baseline-us", (gint64)baseline);
      vms_progress_event (
          rep->progress, "replication-backpressure", fields,
          baseline >= 0 ? "%s: the guest's writes take %.2f ms before the "
                          "copy; the copy slows when they take %.2f ms more"
                        : "%s: the guest did not write before the copy; the "
                          "copy slows when its writes take %.2f ms",
          disk->name,
          baseline >= 0 ? baseline / 1000 : rbp->control.allowance_us / 1000,
          rbp->control.allowance_us / 1000);
    }
}

/* Sleep for us, or until the run is stopped. */
static void
wait_unless_stopped (VmsReplicate *rep, gint64 us)
{
  gint64 end = g_get_monotonic_time () + us;

  while (g_get_monotonic_time () < end
         && !g_cancellable_is_cancelled (rep->cancellable))
    g_usleep (MIN (100000, MAX (end - g_get_monotonic_time (), 1)));
}

static void
measure_baseline (VmsReplicate *rep)
{
  VmsReplicationBackpressure *rbp = rep->replication_backpressure;
  guint n = rep->job->disks->len;
  g_autofree double *latency = g_new (double, n);

  g_array_set_size (rbp->baseline, n);
  for (guint i = 0; i < n; i++)
    g_array_index (rbp->baseline, double, i) = -1;
  if (sample (rep, latency))
    {
      wait_unless_stopped (rep, VMS_REPLICATION_BACKPRESSURE_BASELINE_US);
      if (sample (rep, latency))
        for (guint i = 0; i < n; i++)
          g_array_index (rbp->baseline, double, i) = latency[i];
    }
  vms_latency_control_init (&rbp->control, 0,
                            rep->config->max_guest_latency_ms * 1000.0,
                            rep->config->max_bandwidth);
  rbp->started = TRUE;
  report_baseline (rep);
}

void
vms_replication_backpressure_begin_pass (VmsReplicate *rep)
{
  VmsReplicationBackpressure *rbp = rep->replication_backpressure;

  if (!rbp || rep->pass == VMS_REPLICATE_PASS_FINAL)
    return;
  if (!rbp->started)
    measure_baseline (rep);
  rbp->copied = 0;
}

/* The disk whose latency is furthest above its baseline, or -1 when no
 * disk had writes enough to tell. */
static int
worst_disk (VmsReplicationBackpressure *rbp, const double *latency, guint n)
{
  int worst = -1;
  double worst_excess = 0;

  for (guint i = 0; i < n; i++)
    {
      double baseline = MAX (g_array_index (rbp->baseline, double, i), 0);

      if (latency[i] >= 0
          && (worst < 0 || latency[i] - baseline > worst_excess))
        {
          worst = i;
          worst_excess = latency[i] - baseline;
        }
    }
  return worst;
}

static void
report_step (VmsReplicate *rep, VmsLatencyControlStep step, int disk_index,
             double latency, double copy_rate)
{
  VmsReplicationBackpressure *rbp = rep->replication_backpressure;
  const VmsLatencyControl *control = &rbp->control;
  const char *why
      = step == VMS_LATENCY_CONTROL_CUT ? "latency-high" : "latency-low";
  g_autofree char *rate_text = vms_format_size (control->rate);
  g_autofree char *copy_text = vms_format_size (MAX (copy_rate, 0));
  JsonObject *fields = json_object_new ();

  json_object_set_int_member (fields, "rate", control->rate);
  json_object_set_string_member (fields, "why", why);
  json_object_set_int_member (fields, "allowance-us",
                              (gint64)control->allowance_us);
  json_object_set_int_member (fields, "baseline-us",
                              (gint64)control->baseline_us);
  if (disk_index >= 0)
    {
      VmsJobDisk *disk = rep->job->disks->pdata[disk_index];

      json_object_set_string_member (fields, "disk", disk->name);
      json_object_set_int_member (fields, "latency-us", (gint64)latency);
    }
  if (copy_rate > 0)
    json_object_set_int_member (fields, "copy-rate", (gint64)copy_rate);
  vms_progress_event (
      rep->progress, "replication-backpressure", fields,
      "copy %s to %s%s (the guest's writes took %.2f ms, %.2f ms before "
      "the copy, %.2f ms allowed more; the copy ran at %s/s)",
      step == VMS_LATENCY_CONTROL_CUT ? "slowed" : "sped up",
      control->rate ? rate_text : "its full speed", control->rate ? "/s" : "",
      MAX (latency, 0) / 1000, control->baseline_us / 1000,
      control->allowance_us / 1000, copy_text);
}

void
vms_replication_backpressure_tick (VmsReplicate *rep, guint64 copied)
{
  VmsReplicationBackpressure *rbp = rep->replication_backpressure;
  guint n;
  g_autofree double *latency = NULL;
  gint64 since;
  double copy_rate;
  int worst;
  VmsLatencyControlStep step;

  if (!rbp || !rbp->started || rep->pass == VMS_REPLICATE_PASS_FINAL)
    return;
  since = g_get_monotonic_time () - rbp->sampled_us;
  if (since < VMS_REPLICATION_BACKPRESSURE_INTERVAL_US)
    return;
  n = rep->job->disks->len;
  latency = g_new (double, n);
  copy_rate = copied >= rbp->copied
                  ? (copied - rbp->copied) * (double)G_USEC_PER_SEC / since
                  : -1;
  rbp->copied = copied;
  if (!sample (rep, latency))
    return;
  worst = worst_disk (rbp, latency, n);
  /* The controller compares with the baseline of the disk at hand. */
  rbp->control.baseline_us
      = worst >= 0 ? MAX (g_array_index (rbp->baseline, double, worst), 0) : 0;
  if (worst >= 0
      && latency[worst] - rbp->control.baseline_us
             > rbp->highest_latency - rbp->highest_baseline)
    {
      rbp->highest_latency = latency[worst];
      rbp->highest_baseline = rbp->control.baseline_us;
    }
  step = vms_latency_control_sample (
      &rbp->control, worst >= 0 ? latency[worst] : -1, copy_rate);
  if (step == VMS_LATENCY_CONTROL_HOLD)
    return;
  vms_replicate_set_rate_limit (rep, rbp->control.rate);
  if (step == VMS_LATENCY_CONTROL_CUT)
    {
      rbp->cuts++;
      if (!rbp->lowest_rate || rbp->control.rate < rbp->lowest_rate)
        rbp->lowest_rate = rbp->control.rate;
    }
  else
    rbp->raises++;
  report_step (rep, step, worst, worst >= 0 ? latency[worst] : -1, copy_rate);
}

void
vms_replication_backpressure_report (VmsReplicate *rep)
{
  VmsReplicationBackpressure *rbp = rep->replication_backpressure;
  JsonObject *fields;
  g_autofree char *lowest = NULL;

  if (!rbp || !rbp->started)
    return;
  fields = json_object_new ();
  lowest = vms_format_size (rbp->lowest_rate);
  json_object_set_string_member (fields, "why", "summary");
  json_object_set_boolean_member (fields, "acted", rbp->cuts > 0);
  json_object_set_int_member (fields, "cuts", rbp->cuts);
  json_object_set_int_member (fields, "raises", rbp->raises);
  json_object_set_int_member (fields, "rate", rbp->control.rate);
  json_object_set_int_member (fields, "lowest-rate", rbp->lowest_rate);
  if (rbp->highest_latency >= 0)
    json_object_set_int_member (fields, "highest-latency-us",
                                (gint64)rbp->highest_latency);
  if (rbp->cuts == 0)
    vms_progress_event (rep->progress, "replication-backpressure", fields,
                        "replication backpressure: the copy never had to "
                        "slow down for the guest");
  else
    vms_progress_event (
        rep->progress, "replication-backpressure", fields,
        "replication backpressure: the copy slowed %u time%s (to %s/s at "
        "the least) and sped up %u time%s for the guest's latency "
        "(at worst %.2f ms)",
        rbp->cuts, rbp->cuts == 1 ? "" : "s", lowest, rbp->raises,
        rbp->raises == 1 ? "" : "s", MAX (rbp->highest_latency, 0) / 1000);
}
