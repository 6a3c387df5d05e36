/* vmshift engine: after the window, what a migration's copy will meet.
 * The link to the sink with several configurations, vmshift's own steps
 * timed, and each disk's background copy and dirty rounds run for real
 * into the sink's discarding @probe export.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-estimate-internal.h"
#include "vms-bitmap.h"
#include "vms-copy.h"
#include "vms-export.h"
#include "vms-file.h"
#include "vms-qemu-migration.h"
#include "vms-sink-client.h"
#include "vms-replicate.h"

#include <glib/gstdio.h>
#include <math.h>

#define RTT_SAMPLES 20
/* Dirty rounds the round probe runs. */
#define PROBE_ROUNDS 3
/* The background copy is probed in this many slices, at the middle of
 * each of as many equal shares of the data. */
#define PROBE_SLICES 4
/* A probe that read less tells no rate. */
#define PROBE_MIN_BYTES (1024 * 1024)
/* An empty round's copy finds nothing to copy; it is given this long at
 * most, as a guard. */
#define EMPTY_ROUND_LIMIT_S 60

/* ---- the copy engine, for real ---- */

/* One copy probe under way. */
typedef struct
{
  gint64 start;              /* monotonic, before connecting */
  guint64 bytes;             /* bytes read so far */
  double limit_s;            /* stop after this long */
  GCancellable *cancellable; /* stops it early, or NULL */
  GCancellable *stop;        /* cancelled to stop the copy */
} CopyProbe;

/* Called by the copy's threads: g_cancellable_is_cancelled is safe
 * there. */
static void
on_copy_probe_progress (const VmsCopyStats *stats, gpointer user_data)
{
  CopyProbe *probe = user_data;

  probe->bytes = stats->bytes_read;
  if ((g_get_monotonic_time () - probe->start) / 1e6 >= probe->limit_s
      || g_cancellable_is_cancelled (probe->cancellable))
    g_cancellable_cancel (probe->stop);
}

/* What one copy probe measured. */
typedef struct
{
  double rate;      /* bytes over the run less a pass's fixed cost, per
                       second; 0 when it read less than PROBE_MIN_BYTES */
  guint64 bytes;    /* bytes it read */
  double elapsed_s; /* the whole run */
} CopyResult;

/* The real copy engine, from source_uri (an export of a disk, with its
 * dirty bitmap when bitmap is not NULL) to the sink's discarding @probe
 * export, from offset start to end for at most seconds, as a migration
 * with this estimate will copy: the best link probe's connections and
 * request size. */
static gboolean
copy_probe (EstimateRun *run, EstimateDisk *disk, const char *source_uri,
            const char *bitmap, guint64 start, guint64 end, double seconds,
            CopyResult *result, GError **error)
{
  g_autofree char *dest_uri
      = vms_sink_client_probe_uri (run->config->sink, error);
  g_autoptr (GError) copy_error = NULL;
  g_autoptr (GCancellable) stop = g_cancellable_new ();
  CopyProbe probe = { .start = g_get_monotonic_time (),
                      .limit_s = seconds,
                      .cancellable = run->cancellable,
                      .stop = stop };
  double fixed_s = run->result->steps.empty_copy_s;
  VmsCopySpec spec = { 0 };
  VmsCopyStats stats = { 0 };

  if (!dest_uri)
    return FALSE;
  spec.source_uri = source_uri;
  spec.dest_uri = dest_uri;
  spec.bitmap = bitmap;
  spec.start = start;
  spec.end = end;
  spec.connections = run->result->best.connections;
  spec.request_size = run->result->best.request_size;
  /* A FLUSH every 64 MiB, as a migration's copy does (which also saves
   * its job then, a few milliseconds the probe leaves out). */
  spec.checkpoint_bytes = VMS_COPY_DEFAULT_CHECKPOINT_BYTES;
  spec.checkpoint_ms = VMS_COPY_DEFAULT_CHECKPOINT_MS;
  spec.cancellable = probe.stop;
  spec.progress = on_copy_probe_progress;
  spec.user_data = &probe;
  if (!vms_copy_run (&spec, &stats, &copy_error)
      && !g_error_matches (copy_error, VMS_COPY_ERROR, VMS_COPY_ERROR_STOPPED))
    {
      g_propagate_prefixed_error (
          error, g_steal_pointer (&copy_error),
          "probing the copy of disk %s: ", disk->disk->name);
      return FALSE;
    }
  if (vms_estimate_stopped (run, error))
    return FALSE;
  result->elapsed_s = (g_get_monotonic_time () - probe.start) / 1e6;
  result->bytes = MAX (probe.bytes, stats.bytes_read);
  /* Connecting, the map's first request, the drain and the FLUSH are a
   * pass's fixed cost (the empty copy, once measured), counted apart: the
   * rest is the copy's pace, its ramp-up included as a pass has one. */
  result->rate = result->bytes >= PROBE_MIN_BYTES && result->elapsed_s > fixed_s
                     ? result->bytes / (result->elapsed_s - fixed_s)
                     : 0;
  return TRUE;
}

/* ---- a disk's data and background copy ---- */

/* The share of the data in buckets before offset bucket (+ half of it). */
static double
data_share_before (const guint64 *buckets, guint bucket, guint64 data)
{
  double before = 0;

  for (guint b = 0; b < bucket; b++)
    before += buckets[b];
  return data ? (before + buckets[bucket] / 2.0) / data : 0;
}

/* The bucket where the k-th of n equal shares of the data begins. */
static guint
quantile_bucket (const guint64 *buckets, guint64 data, guint k, guint n)
{
  guint64 wanted = data * k / n, sum = 0;
  guint b = 0;

  while (b + 1 < VMS_ESTIMATE_MAP_BUCKETS && sum + buckets[b] <= wanted)
    sum += buckets[b++];
  /* An empty bucket is no start. */
  while (b + 1 < VMS_ESTIMATE_MAP_BUCKETS && buckets[b] == 0)
    b++;
  return b;
}

static guint64
bucket_size (EstimateDisk *disk)
{
  return MAX (1, (disk->disk->size + VMS_ESTIMATE_MAP_BUCKETS - 1)
                     / VMS_ESTIMATE_MAP_BUCKETS);
}

/* Map the disk through uri again: its data now, and how fast and where it
 * grew since the first map; buckets gets the data per bucket. */
static gboolean
remap_disk (EstimateDisk *disk, const char *uri, guint64 *buckets,
            GError **error)
{
  VmsEstimateFileDisk *out = disk->out;
  double seconds, weighted = 0, grown = 0;

  if (!vms_estimate_map_disk (disk, uri, buckets, &out->allocated, &out->data,
                              error))
    return FALSE;
  seconds = (g_get_monotonic_time () - disk->mapped_us) / 1e6;
  for (guint b = 0; b < VMS_ESTIMATE_MAP_BUCKETS; b++)
    if (buckets[b] > disk->buckets[b])
      {
        double growth = buckets[b] - disk->buckets[b];

        grown += growth;
        weighted += growth * data_share_before (buckets, b, out->data);
      }
  out->growth_rate = seconds > 0 ? grown / seconds : 0;
  out->growth_position = grown > 0 ? weighted / grown : 0;
  return TRUE;
}

/* The background copy's rate, in time per byte of data: the mean of the
 * slices' (each stands for a share of the data, and copies from its start
 * to its end or for --probe-seconds), whose inverse is the rate.  And
 * what it cost the guest's writes, for replication backpressure: the
 * worst slice's latency, since its controller acts on a second's, not
 * on the mean. */
static gboolean
probe_background (EstimateRun *run, EstimateVm *vm, EstimateDisk *disk,
                  const char *uri, const guint64 *buckets, GError **error)
{
  guint64 size = disk->disk->size, data = disk->out->data;
  guint64 step = bucket_size (disk);
  double inverse = 0;
  guint measured = 0;

  for (guint k = 0; k < PROBE_SLICES && data > 0; k++)
    {
      guint first = quantile_bucket (buckets, data, k, PROBE_SLICES);
      guint64 end
          = k + 1 < PROBE_SLICES
                ? quantile_bucket (buckets, data, k + 1, PROBE_SLICES) * step
                : size;
      CopyResult copy;
      VmsGuestWriteCounters before, after;

      /* A share within one bucket: that bucket. */
      end = MIN (MAX (end, (first + 1) * step), size);
      before = vms_estimate_write_counters (vm, disk);
      if (!copy_probe (run, disk, uri, NULL, first * step, end,
                       run->config->probe_seconds, &copy, error))
        return FALSE;
      after = vms_estimate_write_counters (vm, disk);
      disk->out->latency_copying_us
          = MAX (disk->out->latency_copying_us,
                 vms_guest_write_latency_us (&before, &after));
      if (copy.rate > 0)
        {
          inverse += 1 / copy.rate;
          measured++;
        }
    }
  disk->out->copy_rate = measured ? measured / inverse : 0;
  return TRUE;
}

/* ---- a disk's dirty rounds ---- */

/* What the probe rounds of one disk measured. */
typedef struct
{
  double round_s[PROBE_ROUNDS];  /* each round, switch to switch */
  double recorded[PROBE_ROUNDS]; /* bytes its next bitmap recorded */
  guint64 first_bytes;           /* the first round's copy */
  double first_s;                /* its time, less a pass's fixed cost */
  guint64 copied;                /* the later rounds' copies */
  double copy_s;                 /* their time, likewise */
  double paces;                  /* the guest's paces, summed */
  guint n_paces;                 /* how many */
} Rounds;

/* The guest dirtied the disk by dirty bytes in seconds while a copy ran:
 * the share of seconds at which the window's curve has as much (found by
 * bisection; the curve never falls), at most 1 (a guest that wrote more
 * meanwhile is taken as unslowed).  1 when the curve is flat there. */
static double
guest_pace (const VmsEstimateDisk *curve, double seconds, guint64 dirty)
{
  double low = 0, high = 1;

  if (seconds <= 0 || vms_estimate_disk_dirty_after (curve, seconds) <= 0
      || (double)dirty >= vms_estimate_disk_dirty_after (curve, seconds))
    return 1;
  for (guint i = 0; i < 40; i++)
    {
      double middle = (low + high) / 2;

      if (vms_estimate_disk_dirty_after (curve, middle * seconds) < dirty)
        low = middle;
      else
        high = middle;
    }
  return MAX (high, 0.01);
}

/* Round r: switch from *copying to the next bitmap, export *copying and
 * copy it as a migration's round does, then read what the next one
 * recorded meanwhile; *copying becomes the next. */
static gboolean
probe_round (EstimateRun *run, EstimateVm *vm, guint index, EstimateDisk *disk,
             const char *socket_path, const VmsEstimateDisk *curve,
             char **copying, guint r, Rounds *rounds, GError **error)
{
  const char *node = disk->disk->node_name;
  g_autofree char *next
      = g_strdup_printf (VMS_ESTIMATE_BITMAP_PREFIX "%s-round-%u-%u",
                         run->config->id, index, r + 1);
  g_autofree char *export_name
      = g_strdup_printf ("vmshift-estimate-%s-round", disk->disk->name);
  gint64 switched = g_get_monotonic_time ();
  g_autoptr (VmsBitmapInfo) recorded = NULL;
  g_autofree char *uri = NULL;
  CopyResult copy;
  gboolean ok;
  double elapsed;

  ok = vms_bitmap_switch (vm->qmp, node, *copying, next, FALSE, error)
       && (uri = vms_estimate_export_disk (vm, disk, socket_path, export_name,
                                           *copying, error))
       && copy_probe (run, disk, uri, *copying, 0, disk->disk->size,
                      run->config->probe_seconds, &copy, error);
  if (uri)
    vms_export_remove (vm->qmp, export_name, NULL);
  if (!ok)
    return FALSE;
  vms_bitmap_remove (vm->qmp, node, *copying, NULL);
  rounds->round_s[r] = (g_get_monotonic_time () - switched) / 1e6;
  /* Less a pass's fixed cost, as copy_probe's rate. */
  elapsed = MAX (copy.elapsed_s - run->result->steps.empty_copy_s,
                 copy.elapsed_s / 2);
  if (r == 0)
    {
      rounds->first_bytes = copy.bytes;
      rounds->first_s = elapsed;
    }
  else
    {
      rounds->copied += copy.bytes;
      rounds->copy_s += elapsed;
    }
  if (!(recorded = vms_bitmap_query (vm->qmp, node, next, error)))
    return FALSE;
  rounds->recorded[r] = recorded->count;
  if (vms_estimate_disk_dirty_after (curve, rounds->round_s[r]) > 0)
    {
      rounds->paces += guest_pace (curve, rounds->round_s[r], recorded->count);
      rounds->n_paces++;
    }
  g_free (*copying);
  *copying = g_steal_pointer (&next);
  return TRUE;
}

/* The disk's round rate, the guest's pace, and how much the rounds'
 * sizes varied around what the curve gives at that pace (their relative
 * standard deviation). */
static void
summarize_rounds (EstimateDisk *disk, const VmsEstimateDisk *curve,
                  Rounds *rounds)
{
  VmsEstimateFileDisk *out = disk->out;
  double squares = 0;
  guint n = 0;

  /* The rounds that copied less than PROBE_MIN_BYTES tell no rate: then
   * the first round's. */
  if (rounds->copied < PROBE_MIN_BYTES)
    {
      rounds->copied = rounds->first_bytes;
      rounds->copy_s = rounds->first_s;
    }
  out->round_rate = rounds->copied >= PROBE_MIN_BYTES && rounds->copy_s > 0
                        ? rounds->copied / rounds->copy_s
                        : 0;
  out->pace = rounds->n_paces ? rounds->paces / rounds->n_paces : 0;
  if (!rounds->n_paces)
    return;
  for (guint r = 0; r < PROBE_ROUNDS; r++)
    {
      double expected = vms_estimate_disk_dirty_after (
          curve, out->pace * rounds->round_s[r]);

      if (expected > 0)
        {
          squares += pow (rounds->recorded[r] / expected - 1, 2);
          n++;
        }
    }
  out->round_noise = n ? sqrt (squares / n) : 0;
}

/* Dirty rounds, as a migration runs them: a bitmap records the guest for
 * --probe-seconds, then each round switches to the next bitmap and copies
 * the last while the next records.  The first round's bitmap was recorded
 * with no copy running, so it is denser than a migration's; from the
 * second on, each records during the round before, as in a migration, and
 * is laid out as its rounds are: the round rate is theirs.  What each
 * bitmap recorded during a copy gives the guest's pace then.  The
 * bitmaps left go with the others at the end. */
static gboolean
probe_rounds (EstimateRun *run, EstimateVm *vm, guint index, EstimateDisk *disk,
              const char *socket_path, GError **error)
{
  g_autofree char *copying = g_strdup_printf (
      VMS_ESTIMATE_BITMAP_PREFIX "%s-round-%u-0", run->config->id, index);
  Rounds rounds = { 0 };
  VmsEstimateDisk curve;

  vms_estimate_model_disk (disk->out, &curve);
  /* The window's bitmap is done with; the new ones go with it. */
  if (!vms_bitmap_switch (vm->qmp, disk->disk->node_name, disk->bitmap, copying,
                          FALSE, error)
      || !vms_estimate_sleep_until (
          run,
          g_get_monotonic_time ()
              + (gint64)(run->config->probe_seconds * G_USEC_PER_SEC),
          error))
    return FALSE;
  for (guint r = 0; r < PROBE_ROUNDS; r++)
    if (!probe_round (run, vm, index, disk, socket_path, &curve, &copying, r,
                      &rounds, error))
      return FALSE;
  summarize_rounds (disk, &curve, &rounds);
  return TRUE;
}

/* Tell that the probe of disk's step begins: the probes are the long part
 * of the estimate, and they load the guest's disks (a harness that
 * watches the guest tells them from the rest by these). */
static void
announce_disk_probe (EstimateRun *run, EstimateVm *vm, EstimateDisk *disk,
                     const char *step, const char *what)
{
  JsonObject *fields = json_object_new ();

  json_object_set_string_member (fields, "vm", vm->out->source);
  json_object_set_string_member (fields, "disk", disk->disk->name);
  json_object_set_string_member (fields, "step", step);
  vms_progress_event (run->config->progress, "probing-disk", fields,
                      "%s: probing disk %s's %s", vm->out->source,
                      disk->disk->name, what);
}

/* After the window, as close to the migration as the estimate gets: map
 * the disk again, then probe its background copy and its dirty rounds. */
static gboolean
probe_disk (EstimateRun *run, EstimateVm *vm, guint index, EstimateDisk *disk,
            const char *socket_path, GError **error)
{
  g_autofree char *export_name
      = g_strdup_printf ("vmshift-estimate-%s", disk->disk->name);
  g_autofree guint64 *buckets = g_new0 (guint64, VMS_ESTIMATE_MAP_BUCKETS);
  g_autofree char *uri = vms_estimate_export_disk (vm, disk, socket_path,
                                                   export_name, NULL, error);

  gboolean ok;

  ok = uri && remap_disk (disk, uri, buckets, error);
  if (ok)
    {
      announce_disk_probe (run, vm, disk, "background", "background copy");
      ok = probe_background (run, vm, disk, uri, buckets, error);
    }
  if (uri)
    vms_export_remove (vm->qmp, export_name, NULL);
  if (!ok || !disk->bitmap)
    return ok;
  announce_disk_probe (run, vm, disk, "rounds", "dirty rounds");
  return probe_rounds (run, vm, index, disk, socket_path, error);
}

/* ---- vmshift's own steps ---- */

/* A dirty round of the disk that holds nothing, timed as vmshift runs
 * one: a new bitmap, an export of it, a copy pass (connections to QEMU
 * and to the sink, the map, a FLUSH), the export and the bitmap removed. */
static gboolean
empty_round (EstimateRun *run, EstimateVm *vm, guint index, EstimateDisk *disk,
             const char *socket_path, GError **error)
{
  VmsEstimateFileSteps *steps = &run->result->steps;
  const char *node = disk->disk->node_name;
  g_autofree char *bitmap = g_strdup_printf (
      VMS_ESTIMATE_BITMAP_PREFIX "%s-empty-%u", run->config->id, index);
  g_autofree char *next = g_strdup_printf (
      VMS_ESTIMATE_BITMAP_PREFIX "%s-next-%u", run->config->id, index);
  g_autofree char *export_name
      = g_strdup_printf ("vmshift-estimate-%s-empty", disk->disk->name);
  g_autofree char *uri = NULL;
  CopyResult copy;
  gint64 start;
  gboolean ok;

  if (!vms_bitmap_add_temporary (vm->qmp, node, bitmap, disk->out->granularity,
                                 error))
    return FALSE;
  /* From here as a round: the switch to the next bitmap (which disables
   * this one, as an export of a bitmap needs), the export, the copy, the
   * round's bitmap removed. */
  start = g_get_monotonic_time ();
  ok = vms_bitmap_switch (vm->qmp, node, bitmap, next, FALSE, error)
       && (uri = vms_estimate_export_disk (vm, disk, socket_path, export_name,
                                           bitmap, error))
       && copy_probe (run, disk, uri, bitmap, 0, disk->disk->size,
                      EMPTY_ROUND_LIMIT_S, &copy, error);
  if (uri)
    vms_export_remove (vm->qmp, export_name, NULL);
  vms_bitmap_remove (vm->qmp, node, bitmap, NULL);
  if (!ok)
    return FALSE;
  /* Over several disks and VMs: the mean. */
  steps->empty_copy_s
      = (steps->empty_copy_s * steps->n_empty_rounds + copy.elapsed_s)
        / (steps->n_empty_rounds + 1);
  steps->empty_round_s = (steps->empty_round_s * steps->n_empty_rounds
                          + (g_get_monotonic_time () - start) / 1e6)
                         / (steps->n_empty_rounds + 1);
  steps->n_empty_rounds++;
  /* Not part of a round: the next one goes with the others. */
  vms_bitmap_remove (vm->qmp, node, next, NULL);
  return TRUE;
}

static int
compare_doubles (gconstpointer a, gconstpointer b)
{
  double x = *(const double *)a, y = *(const double *)b;

  return x < y ? -1 : x > y;
}

static double
median (double *values, guint n)
{
  qsort (values, n, sizeof *values, compare_doubles);
  return n ? values[n / 2] : 0;
}

/* A QMP round trip and a durable save, each the median of a few. */
static gboolean
measure_steps (EstimateRun *run, EstimateVm *vm, GError **error)
{
  g_autofree char *file
      = g_strdup_printf ("estimate-%s-save.tmp", run->config->id);
  g_autofree char *path = g_build_filename (run->config->state_dir, file, NULL);
  double qmp[5], save[3];

  for (guint i = 0; i < G_N_ELEMENTS (qmp); i++)
    {
      gint64 start = g_get_monotonic_time ();
      /* Any command that changes nothing: the run state. */
      g_autofree char *state = vms_qemu_migration_run_state (vm->qmp, error);

      if (!state)
        return FALSE;
      qmp[i] = (g_get_monotonic_time () - start) / 1e6;
    }
  for (guint i = 0; i < G_N_ELEMENTS (save); i++)
    {
      gint64 start = g_get_monotonic_time ();

      if (!vms_file_replace_durably (path, "{}\n", 0600, error))
        {
          g_unlink (path);
          return FALSE;
        }
      save[i] = (g_get_monotonic_time () - start) / 1e6;
    }
  g_unlink (path);
  run->result->steps.qmp_s = median (qmp, G_N_ELEMENTS (qmp));
  run->result->steps.save_s = median (save, G_N_ELEMENTS (save));
  return TRUE;
}

gboolean
vms_estimate_probe_vm (EstimateRun *run, EstimateVm *vm, GError **error)
{
  g_autofree char *socket_path = vms_estimate_server_socket (run, vm);
  gint64 start = g_get_monotonic_time ();
  double server_s;
  gboolean ok = TRUE;

  if (!measure_steps (run, vm, error)
      || !vms_export_server_start (vm->qmp, socket_path, error))
    return FALSE;
  server_s = (g_get_monotonic_time () - start) / 1e6;
  for (guint i = 0; ok && i < vm->disks->len; i++)
    ok = empty_round (run, vm, i, vm->disks->pdata[i], socket_path, error)
         && probe_disk (run, vm, i, vm->disks->pdata[i], socket_path, error);
  start = g_get_monotonic_time ();
  vms_export_server_stop (vm->qmp, NULL);
  run->result->steps.server_s
      = server_s + (g_get_monotonic_time () - start) / 1e6;
  return ok;
}

/* ---- the link ---- */

gboolean
vms_estimate_probe_link (EstimateRun *run, GError **error)
{
  static const guint connections[] = { 1, 2, 4, 8 };
  static const guint32 sizes[] = { 256 * 1024, 1024 * 1024 };
  VmsEstimateFile *result = run->result;
  g_autofree char *uri = vms_sink_client_probe_uri (run->config->sink, error);
  gint64 start = g_get_monotonic_time ();

  if (!uri || !vms_probe_rtt (uri, RTT_SAMPLES, &result->rtt_s, error))
    return FALSE;
  /* That was a connection to the sink (TLS and NBD's handshake) and the
   * reads: the connection's cost is the rest. */
  result->steps.sink_connect_s
      = MAX (0.0, (g_get_monotonic_time () - start) / 1e6
                      - RTT_SAMPLES * result->rtt_s);
  for (guint c = 0; c < G_N_ELEMENTS (connections); c++)
    for (guint s = 0; s < G_N_ELEMENTS (sizes); s++)
      {
        VmsProbeResult probe = { 0 };

        if (vms_estimate_stopped (run, error)
            || !vms_probe_throughput (uri, connections[c], sizes[s],
                                      run->config->probe_seconds, &probe,
                                      error))
          return FALSE;
        g_array_append_val (result->probes, probe);
        /* Fewer connections win unless more give 5% more. */
        if (probe.throughput > result->best.throughput * 1.05)
          result->best = probe;
      }
  return TRUE;
}
