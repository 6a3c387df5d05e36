/* vmshift estimate: observe running VMs and the link to the sink, then
 * predict how long migrating them takes, their downtime, and the method.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-cli.h"
#include "vms-size.h"
#include "vms-bitmap.h"
#include "vms-copy.h"
#include "vms-disk.h"
#include "vms-estimate-model.h"
#include "vms-export.h"
#include "vms-file.h"
#include "vms-guest.h"
#include "vms-job.h"
#include "vms-migration.h"
#include "vms-probe.h"
#include "vms-progress.h"
#include "vms-replicate.h"
#include "vms-config.h"
#if VMS_HAVE_LIBVIRT
#include "vms-libvirt.h"
#endif

#include <errno.h>
#include <math.h>
#include <glib/gstdio.h>
#include <libnbd.h>
#include <signal.h>
#include <unistd.h>

/* Temporary bitmaps carry this prefix, so that a later run can remove
 * what a killed one left. */
#define BITMAP_PREFIX "vmshift-estimate-"
#define DEFAULT_WINDOW_S 120
#define DEFAULT_INTERVAL_S 5
/* RAM is sampled in this many chunks for its share of zero pages. */
#define RAM_SAMPLES 64
#define RAM_SAMPLE_SIZE (64 * 1024)
#define PAGE_SIZE 4096
/* Below 1 MiB lie ROMs and device memory: not sampled. */
#define RAM_SAMPLE_START (1024 * 1024)
/* q35 and pc keep at least this much RAM below the 4 GiB hole. */
#define RAM_SAMPLE_LOW_LIMIT (G_GUINT64_CONSTANT (2) << 30)
#define RTT_SAMPLES 20
/* What vmshift migrate (QEMU driven directly, pause or mirror) does
 * outside its passes, counted in tools/vms-cmd-migrate.c and
 * tools/vms-replicate.c: QMP commands to both QEMUs (run states,
 * versions, the VM's name, UUID and disks, the destination's disks, the
 * NBD server, mirrors, migration capabilities and parameters, incoming,
 * migrate, continue, the cleanup's bitmaps and server), durable job
 * saves (the state moves, preflight and cleanup), and sink connections
 * per disk (create the replica, live-reset, commit). */
#define SETUP_QMP_COMMANDS 25
#define SETUP_SAVES 10
#define SETUP_SINK_CONNECTIONS 3

static const char *const description
    = "Each SOURCE is a running QEMU (qmp:PATH, a monitor vmshift may use\n"
      "alone), or with --connect URI a libvirt domain (name, UUID or id);\n"
      "several are estimated as a group sharing one link.  URI is\n"
      "the sink, as for 'vmshift sync'; its @probe export measures the link.\n"
      "\n"
      "estimate watches each VM for --window seconds, sampling every\n"
      "--interval: a temporary dirty bitmap per disk (always removed), the\n"
      "RAM dirty rate (calc-dirty-rate, page sampling), the disks' data and\n"
      "the share of RAM that is not zero.  Then it probes the link with 1, 2,\n"
      "4 and 8 connections and two request sizes, maps the disks again (their\n"
      "growth), times an empty round and probes each disk's background copy\n"
      "and dirty rounds with the best of those, and predicts each phase,\n"
      "the downtime of both switchover modes, the total, and the method.\n"
      "The result is kept in the state directory as estimate-ID.json;\n"
      "'vmshift migrate --estimate ID' uses its tuning and reports\n"
      "predicted against actual.  The model is in vmshift(1).\n";

static volatile gint stop_requested;

static void
handle_stop_signal (int signal_number)
{
  g_atomic_int_set (&stop_requested, 1);
}

typedef struct
{
  char *sink;
  char *id;
  char *state_dir;
  int window_s;
  int interval_s;
  double probe_seconds;
  char *bandwidth;
  char *seed_capacity;
  char *seed_rate;
  double seed_shipping_hours;
  gboolean json;
  char *connect; /* --connect: SOURCEs are libvirt domains */
} EstimateOptions;

typedef struct
{
  VmsDisk *disk;         /* as discovered (borrowed from the VM's list) */
  char *bitmap;          /* temporary bitmap, NULL once removed */
  guint64 allocated;     /* not a hole */
  guint64 data;          /* not a hole, not known zero */
  double copy_rate;      /* bytes/s of data its background copy moves */
  double round_rate;     /* bytes/s a dirty round of it moves, 0: unknown */
  guint64 *buckets;      /* data per MAP_BUCKETS-th of it, first map */
  gint64 mapped_us;      /* monotonic time of the first map */
  guint64 data_start;    /* data then */
  double growth_rate;    /* bytes/s its data grew by between the maps */
  double growth_position; /* where: share of its data before, weighted */
  double pace;           /* the guest's pace while a copy runs, 0: unknown */
  double round_noise;    /* the probe rounds' relative deviation from W */
  guint64 written_start; /* QEMU's wr_bytes when the window opened */
  double write_rate;     /* bytes/s written over the window */
  GArray *seconds;       /* double */
  GArray *dirty;         /* guint64 */
} Disk;

typedef struct
{
  char *address;   /* as given */
  gpointer domain; /* the libvirt domain (virDomainPtr), or NULL */
  VmsQmp *qmp;
  char *name;
  char *uuid;
  guint64 ram_size;
  double nonzero;    /* share of RAM pages that are not zero */
  GArray *ram_rates; /* double, bytes/s */
  gboolean rate_pending;
  double ram_dirty_rate; /* mean of the measurements, bytes/s */
  double throughput;
  /* what the model used, bytes/s */ /* a calc-dirty-rate runs */
  double setup_s;                    /* the setup the model used */
  GPtrArray *found;                  /* VmsDisk* */
  GPtrArray *disks;                  /* Disk* */
  VmsEstimate estimate;
} Vm;

typedef struct
{
  EstimateOptions *options;
  VmsProgress *progress;
  GPtrArray *vms;      /* Vm* */
  VmsProbeResult best; /* best link configuration */
  GPtrArray *probes;   /* VmsProbeResult* */
  double rtt_s;
  VmsEstimateParams params;
  gint64 started; /* wall clock, seconds */
  /* Measured costs of vmshift's own steps, seconds: see measure_steps */
  double qmp_s;         /* a QMP round trip */
  double save_s;        /* a durable save of a small file */
  double server_s;      /* QEMU's NBD server started and stopped */
  double empty_copy_s;  /* a copy pass that finds nothing to copy */
  double empty_round_s; /* a whole dirty round that holds nothing */
  double sink_connect_s; /* a connection to the sink */
  guint n_empty_rounds;
} Estimate;

static void
disk_free (Disk *disk)
{
  g_free (disk->bitmap);
  g_free (disk->buckets);
  g_array_unref (disk->seconds);
  g_array_unref (disk->dirty);
  g_free (disk);
}

static void
vm_free (Vm *vm)
{
  g_free (vm->address);
  vms_qmp_free (vm->qmp);
#if VMS_HAVE_LIBVIRT
  if (vm->domain)
    virDomainFree (vm->domain);
#endif
  g_free (vm->name);
  g_free (vm->uuid);
  g_array_unref (vm->ram_rates);
  if (vm->disks)
    g_ptr_array_unref (vm->disks);
  if (vm->found)
    g_ptr_array_unref (vm->found);
  g_free (vm);
}

/* ---- disk data ---- */

/* A disk's map keeps its data per bucket, a MAP_BUCKETS-th of the disk:
 * where the data lies, to place the copy probes, and where it grows. */
#define MAP_BUCKETS 256

typedef struct
{
  guint64 allocated, data;
  guint64 covered;     /* bytes the last reply described */
  guint64 *buckets;    /* MAP_BUCKETS */
  guint64 bucket_size;
} Allocation;

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
        {
          guint64 at = offset, end = offset + entries[i];

          allocation->data += entries[i];
          while (at < end)
            {
              guint64 bucket = MIN (at / allocation->bucket_size,
                                    MAP_BUCKETS - 1);
              guint64 stop
                  = MIN (end, (bucket + 1) * allocation->bucket_size);

              if (bucket == MAP_BUCKETS - 1)
                stop = end;
              allocation->buckets[bucket] += stop - at;
              at = stop;
            }
        }
      offset += entries[i];
    }
  return 0;
}

typedef struct
{
  gint64 start;   /* monotonic, before connecting */
  guint64 bytes;  /* bytes read so far */
  double limit_s; /* stop after this long */
  volatile gint stop;
} CopyProbe;

static void
on_copy_probe_progress (const VmsCopyStats *stats, gpointer user_data)
{
  CopyProbe *probe = user_data;

  probe->bytes = stats->bytes_read;
  if ((g_get_monotonic_time () - probe->start) / 1e6 >= probe->limit_s)
    g_atomic_int_set (&probe->stop, 1);
}

/* The real copy engine, from source_uri (an export of a disk, with its
 * dirty bitmap when bitmap is not NULL) to the sink's discarding @probe
 * export, from offset start to end for at most seconds, as a migration with this
 * estimate will copy: the best link probe's connections and request
 * size.  *bytes gets what it read and *elapsed_s the whole run; *rate
 * the bytes over the run less the fixed cost of a pass (the empty copy,
 * once measured), 0 when it read less than 1 MiB. */
static gboolean
copy_probe (Estimate *estimate, Disk *disk, const char *source_uri,
            const char *bitmap, guint64 start, guint64 end, double seconds,
            double *rate, guint64 *bytes, double *elapsed_s, GError **error)
{
  g_autofree char *dest_uri
      = vms_replicate_sink_uri (estimate->options->sink, "@probe", error);
  g_autoptr (GError) copy_error = NULL;
  CopyProbe probe = { .start = g_get_monotonic_time (), .limit_s = seconds };
  VmsCopySpec spec = { 0 };
  VmsCopyStats stats = { 0 };

  if (!dest_uri)
    return FALSE;
  spec.source_uri = source_uri;
  spec.dest_uri = dest_uri;
  spec.bitmap = bitmap;
  spec.start = start;
  spec.end = end;
  spec.connections = estimate->best.connections;
  spec.request_size = estimate->best.request_size;
  /* A FLUSH every 64 MiB, as a migration's copy does (which also saves
   * its job then, a few milliseconds the probe leaves out). */
  spec.checkpoint_bytes = VMS_COPY_DEFAULT_CHECKPOINT_BYTES;
  spec.checkpoint_ms = VMS_COPY_DEFAULT_CHECKPOINT_MS;
  spec.stop = &probe.stop;
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
  *elapsed_s = (g_get_monotonic_time () - probe.start) / 1e6;
  *bytes = MAX (probe.bytes, stats.bytes_read);
  /* Connecting, the map's first request, the drain and the FLUSH are a
   * pass's fixed cost, counted apart: the rest is the copy's pace, its
   * ramp-up included as a pass has one. */
  *rate = *bytes >= 1024 * 1024 && *elapsed_s > estimate->empty_copy_s
              ? *bytes / (*elapsed_s - estimate->empty_copy_s)
              : 0;
  return TRUE;
}

/* QEMU's NBD server for the estimate, on a socket in the state dir. */
static char *
server_socket (Estimate *estimate, Vm *vm)
{
  guint index = 0;
  g_autofree char *name = NULL;

  g_ptr_array_find (estimate->vms, vm, &index);
  name = g_strdup_printf ("estimate-%s-%u.nbd", estimate->options->id, index);
  return g_build_filename (estimate->options->state_dir, name, NULL);
}

/* Export the disk (with bitmap when not NULL) as export_name on the
 * running server at socket_path: its NBD URI. */
static char *
export_disk (Vm *vm, Disk *disk, const char *socket_path,
             const char *export_name, const char *bitmap, GError **error)
{
  g_autofree char *escaped = g_uri_escape_string (socket_path, "/", FALSE);

  if (!vms_export_add (vm->qmp, disk->disk->node_name, export_name, bitmap,
                       error))
    return NULL;
  return g_strdup_printf ("nbd+unix:///%s?socket=%s", export_name, escaped);
}

/* The disk's map through uri: allocated bytes, data, and data per
 * bucket into buckets (MAP_BUCKETS, zeroed). */
static gboolean
map_disk (Disk *disk, const char *uri, guint64 *buckets, guint64 *allocated,
          guint64 *data, GError **error)
{
  Allocation allocation = { .buckets = buckets };
  struct nbd_handle *nbd = nbd_create ();
  gboolean ok = FALSE;
  guint64 offset = 0;

  allocation.bucket_size = MAX (1, (disk->disk->size + MAP_BUCKETS - 1)
                                       / MAP_BUCKETS);
  if (!nbd || nbd_add_meta_context (nbd, LIBNBD_CONTEXT_BASE_ALLOCATION) < 0
      || nbd_connect_uri (nbd, uri) < 0)
    {
      g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_CONNECT,
                   "mapping disk %s: %s", disk->disk->name, nbd_get_error ());
      goto out;
    }
  while (offset < disk->disk->size)
    {
      guint64 length
          = MIN (disk->disk->size - offset, G_GUINT64_CONSTANT (1) << 30);
      nbd_extent_callback callback
          = { .callback = count_extents, .user_data = &allocation };

      allocation.covered = 0;
      if (nbd_block_status (nbd, length, offset, callback, 0) < 0)
        {
          g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_SOURCE,
                       "mapping disk %s: %s", disk->disk->name,
                       nbd_get_error ());
          goto out;
        }
      /* The server may describe less than asked (never nothing). */
      if (allocation.covered == 0)
        {
          g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_SOURCE,
                       "mapping disk %s: empty block status reply",
                       disk->disk->name);
          goto out;
        }
      offset += MIN (allocation.covered, length);
    }
  *allocated = MIN (allocation.allocated, disk->disk->size);
  *data = MIN (allocation.data, disk->disk->size);
  ok = TRUE;

out:
  if (nbd)
    {
      nbd_shutdown (nbd, 0);
      nbd_close (nbd);
    }
  return ok;
}

/* The first map of the VM's disks, as the window opens. */
static gboolean
map_disks_first (Estimate *estimate, Vm *vm, GError **error)
{
  g_autofree char *socket_path = server_socket (estimate, vm);
  gboolean ok = TRUE;

  /* A server that is not ours (a sync or migrate of this VM) is refused
   * by vms_export_server_start, and must then not be stopped. */
  if (!vms_export_server_start (vm->qmp, socket_path, error))
    return FALSE;
  for (guint i = 0; ok && i < vm->disks->len; i++)
    {
      Disk *disk = vm->disks->pdata[i];
      g_autofree char *export_name
          = g_strdup_printf ("vmshift-estimate-%s", disk->disk->name);
      g_autofree char *uri
          = export_disk (vm, disk, socket_path, export_name, NULL, error);

      disk->buckets = g_new0 (guint64, MAP_BUCKETS);
      ok = uri
           && map_disk (disk, uri, disk->buckets, &disk->allocated,
                        &disk->data_start, error);
      disk->data = disk->data_start;
      disk->mapped_us = g_get_monotonic_time ();
      if (uri)
        vms_export_remove (vm->qmp, export_name, NULL);
    }
  vms_export_server_stop (vm->qmp, NULL);
  return ok;
}

/* The share of the data in buckets before offset bucket (+ half of it). */
static double
data_share_before (const guint64 *buckets, guint bucket, guint64 data)
{
  double before = 0;

  for (guint b = 0; b < bucket; b++)
    before += buckets[b];
  return data ? (before + buckets[bucket] / 2.0) / data : 0;
}

/* The disk's dirty curve, for the model. */
static void
curve_of (Disk *disk, VmsEstimateDisk *out)
{
  memset (out, 0, sizeof *out);
  out->name = disk->disk->name;
  out->size = disk->disk->size;
  out->data_bytes = disk->data;
  out->n_samples = disk->seconds->len;
  out->seconds = (const double *)disk->seconds->data;
  out->dirty = (const guint64 *)disk->dirty->data;
}

/* The guest dirtied the disk by dirty bytes in seconds while a copy ran:
 * the share of seconds at which the window's curve has as much (found by
 * bisection; the curve never falls), at most 1 (a guest that wrote more
 * meanwhile is taken as unslowed).  1 when the curve is flat there. */
static double
guest_pace (Disk *disk, double seconds, guint64 dirty)
{
  VmsEstimateDisk curve;
  double low = 0, high = 1;

  curve_of (disk, &curve);
  if (seconds <= 0
      || vms_estimate_disk_dirty_after (&curve, seconds) <= 0
      || (double)dirty >= vms_estimate_disk_dirty_after (&curve, seconds))
    return 1;
  for (guint i = 0; i < 40; i++)
    {
      double middle = (low + high) / 2;

      if (vms_estimate_disk_dirty_after (&curve, middle * seconds) < dirty)
        low = middle;
      else
        high = middle;
    }
  return MAX (high, 0.01);
}

/* Dirty rounds the round probe runs. */
#define PROBE_ROUNDS 3

/* The bucket where the k-th of n equal shares of the data begins. */
static guint
quantile_bucket (const guint64 *buckets, guint64 data, guint k, guint n)
{
  guint64 wanted = data * k / n, sum = 0;
  guint b = 0;

  while (b + 1 < MAP_BUCKETS && sum + buckets[b] <= wanted)
    sum += buckets[b++];
  /* An empty bucket is no start. */
  while (b + 1 < MAP_BUCKETS && buckets[b] == 0)
    b++;
  return b;
}

/* After the window, as close to the migration as the estimate gets: map
 * the disk again (its data now, and how and where it grew since the
 * first map), then probe its background copy and its dirty rounds. */
static gboolean
probe_disk (Estimate *estimate, Vm *vm, guint index, Disk *disk,
            const char *socket_path, GError **error)
{
  /* The background copy is probed in this many slices, at the middle of
   * each of as many equal shares of the data. */
  const guint slices = 4;
  g_autofree char *export_name
      = g_strdup_printf ("vmshift-estimate-%s", disk->disk->name);
  g_autofree char *round_export
      = g_strdup_printf ("vmshift-estimate-%s-round", disk->disk->name);
  g_autofree guint64 *buckets = g_new0 (guint64, MAP_BUCKETS);
  g_autofree char *uri = NULL;
  g_autofree char *round_uri = NULL;
  guint64 bucket_size = MAX (1, (disk->disk->size + MAP_BUCKETS - 1)
                                    / MAP_BUCKETS);
  double seconds, inverse = 0, weighted = 0, grown = 0;
  guint measured = 0;
  gboolean ok = FALSE;

  if (!(uri = export_disk (vm, disk, socket_path, export_name, NULL, error))
      || !map_disk (disk, uri, buckets, &disk->allocated, &disk->data, error))
    goto out;
  seconds = (g_get_monotonic_time () - disk->mapped_us) / 1e6;
  for (guint b = 0; b < MAP_BUCKETS; b++)
    if (buckets[b] > disk->buckets[b])
      {
        double growth = buckets[b] - disk->buckets[b];

        grown += growth;
        weighted += growth * data_share_before (buckets, b, disk->data);
      }
  disk->growth_rate = seconds > 0 ? grown / seconds : 0;
  disk->growth_position = grown > 0 ? weighted / grown : 0;

  /* The background copy's rate, in time per byte of data: the mean of
   * the slices' (each stands for a quarter of the data, and copies from
   * its start to its end or for --probe-seconds), whose inverse is the
   * rate. */
  for (guint k = 0; k < slices && disk->data > 0; k++)
    {
      guint first = quantile_bucket (buckets, disk->data, k, slices);
      guint64 end = k + 1 < slices
                        ? quantile_bucket (buckets, disk->data, k + 1, slices)
                              * bucket_size
                        : disk->disk->size;
      double rate, elapsed;
      guint64 bytes;

      /* A quarter within one bucket: that bucket. */
      end = MIN (MAX (end, (first + 1) * bucket_size), disk->disk->size);
      if (!copy_probe (estimate, disk, uri, NULL, first * bucket_size, end,
                       estimate->options->probe_seconds, &rate, &bytes,
                       &elapsed, error))
        goto out;
      if (rate > 0)
        {
          inverse += 1 / rate;
          measured++;
        }
    }
  disk->copy_rate = measured ? measured / inverse : 0;
  vms_export_remove (vm->qmp, export_name, NULL);
  g_clear_pointer (&uri, g_free);

  /* Dirty rounds, as a migration runs them: a bitmap records the guest
   * for --probe-seconds, then each round switches to the next bitmap and
   * copies the last while the next records.  The first round's bitmap
   * was recorded with no copy running, so it is denser than a
   * migration's; from the second on, each records during the round
   * before, as in a migration, and is laid out as its rounds are: the
   * round rate is theirs.  What each bitmap recorded during a copy gives
   * the guest's pace then. */
  if (disk->bitmap)
    {
      VmsEstimateDisk curve;
      g_autofree char *copying = NULL;
      double paces = 0, copy_s = 0;
      double rounds_s[PROBE_ROUNDS], recorded_bytes[PROBE_ROUNDS];
      guint n_paces = 0;
      guint64 copied = 0, first_bytes = 0;
      double first_s = 0;
      gint64 until;

      curve_of (disk, &curve);
      copying = g_strdup_printf (BITMAP_PREFIX "%s-round-%u-0",
                                 estimate->options->id, index);
      /* The window's bitmap is done with; the new ones go with it. */
      if (!vms_bitmap_switch (vm->qmp, disk->disk->node_name, disk->bitmap,
                              copying, FALSE, error))
        goto out;
      until = g_get_monotonic_time ()
              + (gint64)(estimate->options->probe_seconds * G_USEC_PER_SEC);
      while (g_get_monotonic_time () < until)
        {
          if (g_atomic_int_get (&stop_requested))
            {
              g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_STOPPED,
                           "stopped on request");
              goto out;
            }
          g_usleep (MIN (50 * 1000, MAX (0, until - g_get_monotonic_time ())));
        }
      for (guint r = 0; r < PROBE_ROUNDS; r++)
        {
          g_autofree char *next = g_strdup_printf (
              BITMAP_PREFIX "%s-round-%u-%u", estimate->options->id, index,
              r + 1);
          gint64 switched = g_get_monotonic_time ();
          g_autoptr (VmsBitmapInfo) recorded = NULL;
          double rate, elapsed, round_s;
          guint64 bytes;

          if (!vms_bitmap_switch (vm->qmp, disk->disk->node_name, copying,
                                  next, FALSE, error)
              || !(round_uri = export_disk (vm, disk, socket_path,
                                            round_export, copying, error))
              || !copy_probe (estimate, disk, round_uri, copying, 0,
                              disk->disk->size,
                              estimate->options->probe_seconds, &rate,
                              &bytes, &elapsed, error))
            goto out;
          vms_export_remove (vm->qmp, round_export, NULL);
          g_clear_pointer (&round_uri, g_free);
          vms_bitmap_remove (vm->qmp, disk->disk->node_name, copying, NULL);
          round_s = (g_get_monotonic_time () - switched) / 1e6;
          /* Less a pass's fixed cost, as copy_probe's rate. */
          elapsed = MAX (elapsed - estimate->empty_copy_s, elapsed / 2);
          if (r == 0)
            {
              first_bytes = bytes;
              first_s = elapsed;
            }
          else
            {
              copied += bytes;
              copy_s += elapsed;
            }
          recorded
              = vms_bitmap_query (vm->qmp, disk->disk->node_name, next, error);
          if (!recorded)
            goto out;
          rounds_s[r] = round_s;
          recorded_bytes[r] = recorded->count;
          if (vms_estimate_disk_dirty_after (&curve, round_s) > 0)
            {
              paces += guest_pace (disk, round_s, recorded->count);
              n_paces++;
            }
          g_free (copying);
          copying = g_steal_pointer (&next);
        }
      /* The rounds that copied less than 1 MiB tell no rate: then the
       * first round's. */
      if (copied < 1024 * 1024)
        {
          copied = first_bytes;
          copy_s = first_s;
        }
      disk->round_rate
          = copied >= 1024 * 1024 && copy_s > 0 ? copied / copy_s : 0;
      disk->pace = n_paces ? paces / n_paces : 0;
      /* How much the rounds' sizes varied around what the curve gives at
       * that pace: their relative standard deviation. */
      if (n_paces)
        {
          double squares = 0;
          guint n = 0;

          for (guint r = 0; r < PROBE_ROUNDS; r++)
            {
              double expected = vms_estimate_disk_dirty_after (
                  &curve, disk->pace * rounds_s[r]);

              if (expected > 0)
                {
                  squares += pow (recorded_bytes[r] / expected - 1, 2);
                  n++;
                }
            }
          disk->round_noise = n ? sqrt (squares / n) : 0;
        }
    }
  ok = TRUE;

out:
  if (uri)
    vms_export_remove (vm->qmp, export_name, NULL);
  if (round_uri)
    vms_export_remove (vm->qmp, round_export, NULL);
  return ok;
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

/* A dirty round of the disk that holds nothing, timed as vmshift runs
 * one: a new bitmap, an export of it, a copy pass (connections to QEMU
 * and to the sink, the map, a FLUSH), the export and the bitmap removed. */
static gboolean
empty_round (Estimate *estimate, Vm *vm, guint index, Disk *disk,
             const char *socket_path, GError **error)
{
  g_autofree char *bitmap = g_strdup_printf (BITMAP_PREFIX "%s-empty-%u",
                                             estimate->options->id, index);
  g_autofree char *next = g_strdup_printf (BITMAP_PREFIX "%s-next-%u",
                                           estimate->options->id, index);
  g_autofree char *export_name
      = g_strdup_printf ("vmshift-estimate-%s-empty", disk->disk->name);
  g_autofree char *uri = NULL;
  gint64 start;
  double rate, copy_s;
  guint64 bytes;
  gboolean ok;

  if (!vms_bitmap_add_temporary (vm->qmp, disk->disk->node_name, bitmap, 0,
                                 error))
    return FALSE;
  /* From here as a round: the switch to the next bitmap (which disables
   * this one, as an export of a bitmap needs), the export, the copy, the
   * round's bitmap removed. */
  start = g_get_monotonic_time ();
  ok = vms_bitmap_switch (vm->qmp, disk->disk->node_name, bitmap, next, FALSE,
                          error)
       && (uri = export_disk (vm, disk, socket_path, export_name, bitmap,
                              error))
       && copy_probe (estimate, disk, uri, bitmap, 0, disk->disk->size, 60,
                      &rate, &bytes, &copy_s, error);
  if (uri)
    vms_export_remove (vm->qmp, export_name, NULL);
  vms_bitmap_remove (vm->qmp, disk->disk->node_name, bitmap, NULL);
  if (!ok)
    return FALSE;
  /* Over several disks and VMs: the mean. */
  estimate->empty_copy_s
      = (estimate->empty_copy_s * estimate->n_empty_rounds + copy_s)
        / (estimate->n_empty_rounds + 1);
  estimate->empty_round_s
      = (estimate->empty_round_s * estimate->n_empty_rounds
         + (g_get_monotonic_time () - start) / 1e6)
        / (estimate->n_empty_rounds + 1);
  estimate->n_empty_rounds++;
  /* Not part of a round: the next one goes with the others. */
  vms_bitmap_remove (vm->qmp, disk->disk->node_name, next, NULL);
  return TRUE;
}

/* A QMP round trip and a durable save, each the median of a few. */
static gboolean
measure_steps (Estimate *estimate, Vm *vm, GError **error)
{
  g_autofree char *file
      = g_strdup_printf ("estimate-%s-save.tmp", estimate->options->id);
  g_autofree char *path
      = g_build_filename (estimate->options->state_dir, file, NULL);
  double qmp[5], save[3];

  for (guint i = 0; i < G_N_ELEMENTS (qmp); i++)
    {
      gint64 start = g_get_monotonic_time ();
      g_autofree char *state = vms_migration_run_state (vm->qmp, error);

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
  estimate->qmp_s = median (qmp, G_N_ELEMENTS (qmp));
  estimate->save_s = median (save, G_N_ELEMENTS (save));
  return TRUE;
}

/* After the window and the link probe: vmshift's own steps timed, and
 * each disk mapped again and its copy probed. */
static gboolean
probe_vm (Estimate *estimate, Vm *vm, GError **error)
{
  g_autofree char *socket_path = server_socket (estimate, vm);
  gint64 start = g_get_monotonic_time ();
  double server_s;
  gboolean ok = TRUE;

  if (!measure_steps (estimate, vm, error)
      || !vms_export_server_start (vm->qmp, socket_path, error))
    return FALSE;
  server_s = (g_get_monotonic_time () - start) / 1e6;
  for (guint i = 0; ok && i < vm->disks->len; i++)
    ok = empty_round (estimate, vm, i, vm->disks->pdata[i], socket_path, error)
         && probe_disk (estimate, vm, i, vm->disks->pdata[i], socket_path,
                        error);
  start = g_get_monotonic_time ();
  vms_export_server_stop (vm->qmp, NULL);
  estimate->server_s = server_s + (g_get_monotonic_time () - start) / 1e6;
  return ok;
}

/* ---- RAM ---- */

static gboolean
sample_ram (Estimate *estimate, Vm *vm, GError **error)
{
  VmsGuestMemorySize memory;
  g_autofree char *file
      = g_strdup_printf ("estimate-%s-ram.bin", estimate->options->id);
  g_autofree char *path
      = g_build_filename (estimate->options->state_dir, file, NULL);
  guint64 low, pages = 0, zero_pages = 0;

  if (!vms_guest_query_memory_size (vm->qmp, &memory, error))
    return FALSE;
  vm->ram_size = memory.base_memory;
  low = MIN (vm->ram_size, RAM_SAMPLE_LOW_LIMIT);
  vm->nonzero = 1.0;
  if (low <= RAM_SAMPLE_START + RAM_SAMPLE_SIZE)
    return TRUE;
  for (guint i = 0; i < RAM_SAMPLES; i++)
    {
      g_autoptr (GBytes) sample = NULL;
      const guint8 *bytes;
      gsize length = 0;
      guint64 address
          = RAM_SAMPLE_START
            + (g_random_double () * (low - RAM_SAMPLE_START - RAM_SAMPLE_SIZE));

      address &= ~(guint64)(PAGE_SIZE - 1);
      sample = vms_guest_read_memory (vm->qmp, address, RAM_SAMPLE_SIZE,
                                      path, error);
      if (!sample)
        {
          g_prefix_error (error, "sampling RAM: ");
          return FALSE;
        }
      bytes = g_bytes_get_data (sample, &length);
      for (gsize at = 0; at + PAGE_SIZE <= length; at += PAGE_SIZE)
        {
          pages++;
          zero_pages += vms_copy_is_zero (bytes + at, PAGE_SIZE);
        }
    }
  if (pages)
    vm->nonzero = 1.0 - (double)zero_pages / pages;
  return TRUE;
}

/* One calc-dirty-rate at a time: start one, read it the next time.  The
 * RAM's rate is best effort (errors ignored): a measurement that failed
 * or is still running gives no sample, and with none the model takes 0. */
static void
sample_ram_rate (Vm *vm, guint calc_time_s)
{
  if (vm->rate_pending)
    {
      VmsGuestDirtyRate rate;

      if (!vms_guest_query_dirty_rate (vm->qmp, &rate, NULL)
          || rate.status != VMS_GUEST_DIRTY_RATE_MEASURED)
        return;
      g_array_append_val (vm->ram_rates, rate.bytes_per_second);
      vm->rate_pending = FALSE;
    }
  if (calc_time_s > 0)
    vm->rate_pending = vms_guest_calc_dirty_rate (vm->qmp, calc_time_s, NULL);
}

/* ---- bitmaps ---- */

/* Remove every temporary bitmap of ours on the VM's disks, also those a
 * killed earlier run left. */
/* QMP to the VM: its monitor, or libvirt's passthrough. */
static VmsQmp *
connect_vm (Vm *vm, GError **error)
{
#if VMS_HAVE_LIBVIRT
  if (vm->domain)
    return vms_libvirt_qmp_open (vm->domain, error);
#endif
  return vms_qmp_connect (vm->address, 0, error);
}

static void
remove_bitmaps (Vm *vm)
{
  if (!vm->qmp || !vms_qmp_is_connected (vm->qmp))
    {
      g_clear_pointer (&vm->qmp, vms_qmp_free);
      vm->qmp = connect_vm (vm, NULL);
    }
  if (!vm->qmp)
    return;
  for (guint i = 0; vm->found && i < vm->found->len; i++)
    {
      VmsDisk *disk = vm->found->pdata[i];
      g_autoptr (GPtrArray) bitmaps
          = vms_bitmap_list (vm->qmp, disk->node_name, NULL);

      for (guint j = 0; bitmaps && j < bitmaps->len; j++)
        {
          VmsBitmapInfo *info = bitmaps->pdata[j];

          if (g_str_has_prefix (info->name, BITMAP_PREFIX))
            vms_bitmap_remove (vm->qmp, disk->node_name, info->name, NULL);
        }
    }
  for (guint i = 0; vm->disks && i < vm->disks->len; i++)
    g_clear_pointer (&((Disk *)vm->disks->pdata[i])->bitmap, g_free);
}

static gboolean
open_vm (Estimate *estimate, Vm *vm, GError **error)
{
  vm->qmp = connect_vm (vm, error);
  if (!vm->qmp)
    return FALSE;
  vm->name = vms_guest_query_name (vm->qmp, error);
  vm->uuid = vm->name ? vms_guest_query_uuid (vm->qmp, error) : NULL;
  vm->found = vm->uuid ? vms_disk_discover (vm->qmp, error) : NULL;
  if (!vm->found)
    return FALSE;
  remove_bitmaps (vm);
  vm->disks = g_ptr_array_new_with_free_func ((GDestroyNotify)disk_free);
  for (guint i = 0; i < vm->found->len; i++)
    {
      Disk *disk = g_new0 (Disk, 1);

      disk->disk = vm->found->pdata[i];
      disk->seconds = g_array_new (FALSE, FALSE, sizeof (double));
      disk->dirty = g_array_new (FALSE, FALSE, sizeof (guint64));
      g_ptr_array_add (vm->disks, disk);
    }
  if (!map_disks_first (estimate, vm, error))
    return FALSE;
  if (!sample_ram (estimate, vm, error))
    return FALSE;
  for (guint i = 0; i < vm->disks->len; i++)
    {
      Disk *disk = vm->disks->pdata[i];
      g_autofree char *name
          = g_strdup_printf (BITMAP_PREFIX "%s-%u", estimate->options->id, i);

      if (!vms_bitmap_add_temporary (vm->qmp, disk->disk->node_name, name, 0,
                                     error))
        return FALSE;
      disk->bitmap = g_steal_pointer (&name);
    }
  return TRUE;
}

static gboolean
sample_disks (Vm *vm, double seconds, GError **error)
{
  for (guint i = 0; i < vm->disks->len; i++)
    {
      Disk *disk = vm->disks->pdata[i];
      g_autoptr (VmsBitmapInfo) info = vms_bitmap_query (
          vm->qmp, disk->disk->node_name, disk->bitmap, error);

      if (!info)
        return FALSE;
      g_array_append_val (disk->seconds, seconds);
      g_array_append_val (disk->dirty, info->count);
    }
  return TRUE;
}

/* ---- observing ---- */

static void
measure_writes (Estimate *estimate, gboolean at_start, double elapsed)
{
  for (guint v = 0; v < estimate->vms->len; v++)
    {
      Vm *vm = estimate->vms->pdata[v];
      /* One query answers for all the VM's disks.  The write rate is
       * best effort: without it the model goes by the bitmaps alone. */
      g_autoptr (GPtrArray) stats
          = vms_guest_query_blockstats (vm->qmp, NULL);

      for (guint i = 0; i < vm->disks->len; i++)
        {
          Disk *disk = vm->disks->pdata[i];
          VmsGuestBlockStats *entry
              = stats ? vms_guest_block_stats_find (stats, disk->disk->node_name,
                                                    disk->disk->name)
                      : NULL;
          guint64 now = entry ? entry->wr_bytes : 0;

          if (at_start)
            disk->written_start = now;
          else if (elapsed > 0 && now >= disk->written_start)
            disk->write_rate = (now - disk->written_start) / elapsed;
        }
    }
}

static void
report_sample (Estimate *estimate, double elapsed)
{
  g_autoptr (GString) text = g_string_new (NULL);
  JsonObject *fields = json_object_new ();

  json_object_set_double_member (fields, "seconds", elapsed);
  for (guint v = 0; v < estimate->vms->len; v++)
    {
      Vm *vm = estimate->vms->pdata[v];

      for (guint i = 0; i < vm->disks->len; i++)
        {
          Disk *disk = vm->disks->pdata[i];
          guint64 dirty
              = g_array_index (disk->dirty, guint64, disk->dirty->len - 1);
          g_autofree char *size = vms_format_size (dirty);

          g_string_append_printf (text, "%s%s %s dirty", text->len ? ", " : "",
                                  disk->disk->name, size);
        }
    }
  vms_progress_event (estimate->progress, "sample", fields, "%.0f of %d s: %s",
                      elapsed, estimate->options->window_s, text->str);
}

static gboolean
observe (Estimate *estimate, GError **error)
{
  /* The first seconds of the dirty curves are sampled more often than
   * --interval: a migration's rounds last seconds, and a guest that
   * rewrites a hot set has marked most of it after a second or two. */
  static const double early[] = { 0.25, 0.5, 1, 1.5, 2, 3, 4 };
  EstimateOptions *options = estimate->options;
  gint64 start = g_get_monotonic_time ();
  guint samples = 0, early_done = 0;

  for (guint v = 0; v < estimate->vms->len; v++)
    sample_ram_rate (estimate->vms->pdata[v], 1);
  measure_writes (estimate, TRUE, 0);
  for (;;)
    {
      gboolean regular = early_done >= G_N_ELEMENTS (early)
                         || early[early_done] >= options->interval_s;
      gint64 next
          = start
            + (gint64)((regular ? (samples + 1.0) * options->interval_s
                                : early[early_done])
                       * G_USEC_PER_SEC);
      double elapsed;

      while (g_get_monotonic_time () < next)
        {
          if (g_atomic_int_get (&stop_requested))
            {
              g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_STOPPED,
                           "stopped on request");
              return FALSE;
            }
          g_usleep (50 * 1000);
        }
      elapsed = (g_get_monotonic_time () - start) / 1e6;
      for (guint v = 0; v < estimate->vms->len; v++)
        {
          Vm *vm = estimate->vms->pdata[v];

          if (!sample_disks (vm, elapsed, error))
            {
              g_prefix_error (error, "VM %s: ", vm->address);
              return FALSE;
            }
          /* Each measurement takes 1 s, so the last one is read soon
           * after the window. */
          if (regular)
            sample_ram_rate (vm, 1);
        }
      if (!regular)
        {
          early_done++;
          continue;
        }
      samples++;
      report_sample (estimate, elapsed);
      if (elapsed >= options->window_s)
        {
          measure_writes (estimate, FALSE, elapsed);
          break;
        }
    }
  /* A rate still being measured is read once more. */
  for (guint v = 0; v < estimate->vms->len; v++)
    {
      Vm *vm = estimate->vms->pdata[v];

      g_usleep (vm->rate_pending ? 1100 * 1000 : 0);
      if (vm->rate_pending)
        sample_ram_rate (vm, 0);
    }
  return TRUE;
}

/* ---- the link ---- */

static gboolean
probe_link (Estimate *estimate, GError **error)
{
  static const guint connections[] = { 1, 2, 4, 8 };
  static const guint32 sizes[] = { 256 * 1024, 1024 * 1024 };
  g_autofree char *uri
      = vms_replicate_sink_uri (estimate->options->sink, "@probe", error);

  gint64 start = g_get_monotonic_time ();

  if (!uri || !vms_probe_rtt (uri, RTT_SAMPLES, &estimate->rtt_s, error))
    return FALSE;
  /* That was a connection to the sink (TLS and NBD's handshake) and the
   * reads: the connection's cost is the rest. */
  estimate->sink_connect_s
      = MAX (0.0, (g_get_monotonic_time () - start) / 1e6
                      - RTT_SAMPLES * estimate->rtt_s);
  for (guint c = 0; c < G_N_ELEMENTS (connections); c++)
    for (guint s = 0; s < G_N_ELEMENTS (sizes); s++)
      {
        VmsProbeResult *result = g_new0 (VmsProbeResult, 1);

        if (g_atomic_int_get (&stop_requested))
          {
            g_free (result);
            g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_STOPPED,
                         "stopped on request");
            return FALSE;
          }
        if (!vms_probe_throughput (uri, connections[c], sizes[s],
                                   estimate->options->probe_seconds, result,
                                   error))
          {
            g_free (result);
            return FALSE;
          }
        g_ptr_array_add (estimate->probes, result);
        /* Fewer connections win unless more give 5% more. */
        if (result->throughput > estimate->best.throughput * 1.05)
          estimate->best = *result;
      }
  return TRUE;
}

/* ---- predicting and reporting ---- */

static void
predict (Estimate *estimate, double bandwidth)
{
  VmsEstimateLink link = { estimate->best.throughput, estimate->rtt_s };

  /* A pass over a disk as vmshift runs it (a dirty round, and the
   * background copy too): the empty round measured, and besides two QMP
   * queries of the bitmap and three saves of the job. */
  if (estimate->n_empty_rounds)
    estimate->params.round_overhead_s = estimate->empty_round_s
                                        + 2 * estimate->qmp_s
                                        + 3 * estimate->save_s;

  if (bandwidth > 0)
    link.throughput = MIN (link.throughput, bandwidth);
  for (guint v = 0; v < estimate->vms->len; v++)
    {
      Vm *vm = estimate->vms->pdata[v];
      g_autofree VmsEstimateDisk *disks
          = g_new0 (VmsEstimateDisk, vm->disks->len);
      VmsEstimateMemory memory = { (guint64)(vm->ram_size * vm->nonzero), 0 };
      VmsEstimateLink vm_link = link;

      for (guint i = 0; i < vm->ram_rates->len; i++)
        memory.dirty_rate
            += g_array_index (vm->ram_rates, double, i) / vm->ram_rates->len;
      for (guint i = 0; i < vm->disks->len; i++)
        {
          Disk *disk = vm->disks->pdata[i];

          disks[i].name = disk->disk->name;
          disks[i].size = disk->disk->size;
          disks[i].data_bytes = disk->data;
          disks[i].n_samples = disk->seconds->len;
          disks[i].seconds = (const double *)disk->seconds->data;
          disks[i].dirty = (const guint64 *)disk->dirty->data;
          disks[i].write_rate = disk->write_rate;
          disks[i].copy_rate = disk->copy_rate;
          disks[i].round_rate = disk->round_rate;
          disks[i].growth_rate = disk->growth_rate;
          disks[i].growth_position = disk->growth_position;
          disks[i].pace = disk->pace;
        }
      vm->ram_dirty_rate = memory.dirty_rate;
      vm->throughput = vm_link.throughput;
      /* A migration's steps outside its passes, as counted in vmshift
       * migrate: its QMP commands and job saves, QEMU's NBD server, and
       * per disk the sink connections of the replica's creation, its
       * live-reset and its commit. */
      if (estimate->n_empty_rounds)
        estimate->params.setup_s
            = SETUP_QMP_COMMANDS * estimate->qmp_s
              + SETUP_SAVES * estimate->save_s + estimate->server_s
              + vm->disks->len * SETUP_SINK_CONNECTIONS
                    * estimate->sink_connect_s;
      /* How the rounds' sizes vary: the mean over the disks measured. */
      {
        double noise = 0;
        guint n = 0;

        for (guint i = 0; i < vm->disks->len; i++)
          if (((Disk *)vm->disks->pdata[i])->pace > 0)
            {
              noise += ((Disk *)vm->disks->pdata[i])->round_noise;
              n++;
            }
        estimate->params.round_noise = n ? noise / n : 0;
      }
      vms_estimate_run (disks, vm->disks->len, &memory, &vm_link,
                        &estimate->params, &vm->estimate);
      vm->setup_s = estimate->params.setup_s;
    }
}

static JsonNode *
build_result (Estimate *estimate, guint *order, double group_total)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();

#define MEMBER(name) json_builder_set_member_name (b, name)
  json_builder_begin_object (b);
  MEMBER ("id");
  json_builder_add_string_value (b, estimate->options->id);
  MEMBER ("created");
  json_builder_add_int_value (b, estimate->started);
  MEMBER ("window-seconds");
  json_builder_add_int_value (b, estimate->options->window_s);
  MEMBER ("interval-seconds");
  json_builder_add_int_value (b, estimate->options->interval_s);
  MEMBER ("link");
  json_builder_begin_object (b);
  MEMBER ("rtt-seconds");
  json_builder_add_double_value (b, estimate->rtt_s);
  MEMBER ("throughput");
  json_builder_add_double_value (b, estimate->best.throughput);
  MEMBER ("connections");
  json_builder_add_int_value (b, estimate->best.connections);
  MEMBER ("request-size");
  json_builder_add_int_value (b, estimate->best.request_size);
  MEMBER ("probes");
  json_builder_begin_array (b);
  for (guint i = 0; i < estimate->probes->len; i++)
    {
      VmsProbeResult *probe = estimate->probes->pdata[i];

      json_builder_begin_object (b);
      MEMBER ("connections");
      json_builder_add_int_value (b, probe->connections);
      MEMBER ("request-size");
      json_builder_add_int_value (b, probe->request_size);
      MEMBER ("throughput");
      json_builder_add_double_value (b, probe->throughput);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  json_builder_end_object (b);
  MEMBER ("steps");
  json_builder_begin_object (b);
  MEMBER ("qmp-seconds");
  json_builder_add_double_value (b, estimate->qmp_s);
  MEMBER ("save-seconds");
  json_builder_add_double_value (b, estimate->save_s);
  MEMBER ("server-seconds");
  json_builder_add_double_value (b, estimate->server_s);
  MEMBER ("empty-copy-seconds");
  json_builder_add_double_value (b, estimate->empty_copy_s);
  MEMBER ("empty-round-seconds");
  json_builder_add_double_value (b, estimate->empty_round_s);
  MEMBER ("round-overhead-seconds");
  json_builder_add_double_value (b, estimate->params.round_overhead_s);
  MEMBER ("sink-connect-seconds");
  json_builder_add_double_value (b, estimate->sink_connect_s);
  json_builder_end_object (b);
  MEMBER ("vms");
  json_builder_begin_array (b);
  for (guint v = 0; v < estimate->vms->len; v++)
    {
      Vm *vm = estimate->vms->pdata[v];
      const VmsEstimate *e = &vm->estimate;

      json_builder_begin_object (b);
      MEMBER ("source");
      json_builder_add_string_value (b, vm->address);
      MEMBER ("vm-name");
      json_builder_add_string_value (b, vm->name);
      MEMBER ("vm-uuid");
      json_builder_add_string_value (b, vm->uuid);
      MEMBER ("ram-size");
      json_builder_add_int_value (b, vm->ram_size);
      MEMBER ("ram-nonzero-share");
      json_builder_add_double_value (b, vm->nonzero);
      MEMBER ("ram-dirty-rate");
      json_builder_add_double_value (b, vm->ram_dirty_rate);
      MEMBER ("throughput");
      json_builder_add_double_value (b, vm->throughput);
      MEMBER ("setup-seconds");
      json_builder_add_double_value (b, vm->setup_s);
      MEMBER ("disks");
      json_builder_begin_array (b);
      for (guint i = 0; i < vm->disks->len; i++)
        {
          Disk *disk = vm->disks->pdata[i];

          json_builder_begin_object (b);
          MEMBER ("name");
          json_builder_add_string_value (b, disk->disk->name);
          MEMBER ("size");
          json_builder_add_int_value (b, disk->disk->size);
          MEMBER ("allocated");
          json_builder_add_int_value (b, disk->allocated);
          MEMBER ("data");
          json_builder_add_int_value (b, disk->data);
          MEMBER ("data-at-start");
          json_builder_add_int_value (b, disk->data_start);
          MEMBER ("growth-rate");
          json_builder_add_double_value (b, disk->growth_rate);
          MEMBER ("growth-position");
          json_builder_add_double_value (b, disk->growth_position);
          MEMBER ("copy-rate");
          json_builder_add_double_value (b, disk->copy_rate);
          MEMBER ("round-rate");
          json_builder_add_double_value (b, disk->round_rate);
          MEMBER ("pace");
          json_builder_add_double_value (b, disk->pace);
          MEMBER ("round-noise");
          json_builder_add_double_value (b, disk->round_noise);
          MEMBER ("write-rate");
          json_builder_add_double_value (b, disk->write_rate);
          MEMBER ("dirty-samples");
          json_builder_begin_array (b);
          for (guint k = 0; k < disk->seconds->len; k++)
            {
              json_builder_begin_array (b);
              json_builder_add_double_value (
                  b, g_array_index (disk->seconds, double, k));
              json_builder_add_int_value (
                  b, g_array_index (disk->dirty, guint64, k));
              json_builder_end_array (b);
            }
          json_builder_end_array (b);
          json_builder_end_object (b);
        }
      json_builder_end_array (b);
      MEMBER ("prediction");
      json_builder_begin_object (b);
      MEMBER ("background-seconds");
      json_builder_add_double_value (b, e->background_s);
      MEMBER ("background-bytes");
      json_builder_add_int_value (b, e->background_bytes);
      MEMBER ("rounds-durations");
      json_builder_begin_array (b);
      for (guint k = 0; k < e->n_rounds; k++)
        json_builder_add_double_value (b, e->round_s[k]);
      json_builder_end_array (b);
      MEMBER ("final-bytes-pause");
      json_builder_add_int_value (b, e->final_bytes_pause);
      MEMBER ("rounds");
      json_builder_begin_array (b);
      for (guint k = 0; k < e->n_rounds; k++)
        json_builder_add_int_value (b, e->round_bytes[k]);
      json_builder_end_array (b);
      MEMBER ("rounds-seconds");
      json_builder_add_double_value (b, e->rounds_s);
      MEMBER ("rounds-expected");
      json_builder_add_double_value (b, e->rounds_expected);
      MEMBER ("disks-converge");
      json_builder_add_boolean_value (b, e->disks_converge);
      MEMBER ("disk-write-rate");
      json_builder_add_double_value (b, e->disk_write_rate);
      MEMBER ("backpressure-rate");
      json_builder_add_double_value (b, e->backpressure_rate);
      MEMBER ("memory-seconds");
      json_builder_add_double_value (b, e->memory_s);
      MEMBER ("memory-converges");
      json_builder_add_boolean_value (b, e->memory_converges);
      MEMBER ("stop-flush-seconds");
      json_builder_add_double_value (b, e->stop_flush_s);
      MEMBER ("downtime-pause-seconds");
      json_builder_add_double_value (b, e->downtime_pause_s);
      MEMBER ("downtime-mirror-seconds");
      json_builder_add_double_value (b, e->downtime_mirror_s);
      MEMBER ("total-pause-seconds");
      json_builder_add_double_value (b, e->total_pause_s);
      MEMBER ("total-mirror-seconds");
      json_builder_add_double_value (b, e->total_mirror_s);
      MEMBER ("offline-seconds");
      json_builder_add_double_value (b, e->offline_s);
      MEMBER ("seed-seconds");
      json_builder_add_double_value (b, e->seed_s);
      MEMBER ("method");
      json_builder_add_string_value (b, vms_estimate_method_name (e->method));
      MEMBER ("final-sync");
      json_builder_add_string_value (
          b, e->downtime_mirror_s < e->downtime_pause_s ? "mirror" : "pause");
      MEMBER ("reason");
      json_builder_add_string_value (b, e->reason);
      json_builder_end_object (b);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  MEMBER ("group");
  json_builder_begin_object (b);
  MEMBER ("order");
  json_builder_begin_array (b);
  for (guint v = 0; v < estimate->vms->len; v++)
    json_builder_add_string_value (
        b, ((Vm *)estimate->vms->pdata[order[v]])->address);
  json_builder_end_array (b);
  MEMBER ("total-seconds");
  json_builder_add_double_value (b, group_total);
  json_builder_end_object (b);
  json_builder_end_object (b);
#undef MEMBER
  return json_builder_get_root (b);
}

static void
print_human (Estimate *estimate, guint *order, double group_total)
{
  for (guint v = 0; v < estimate->vms->len; v++)
    {
      Vm *vm = estimate->vms->pdata[v];
      const VmsEstimate *e = &vm->estimate;
      g_autofree char *ram = vms_format_size (vm->ram_size);
      g_autofree char *write_rate = vms_format_size (e->disk_write_rate);
      double ram_rate = 0;
      g_autofree char *ram_rate_text = NULL;
      gboolean mirror = e->downtime_mirror_s < e->downtime_pause_s;

      for (guint i = 0; i < vm->ram_rates->len; i++)
        ram_rate
            += g_array_index (vm->ram_rates, double, i) / vm->ram_rates->len;
      ram_rate_text = vms_format_size (ram_rate);
      g_print ("VM %s (%s): RAM %s, %.0f%% not zero, dirtied at %s/s\n",
               *vm->name ? vm->name : "(unnamed)", vm->address, ram,
               vm->nonzero * 100, ram_rate_text);
      for (guint i = 0; i < vm->disks->len; i++)
        {
          Disk *disk = vm->disks->pdata[i];
          g_autofree char *size = vms_format_size (disk->disk->size);
          g_autofree char *allocated = vms_format_size (disk->allocated);
          g_autofree char *data = vms_format_size (disk->data);
          guint64 last = disk->dirty->len ? g_array_index (disk->dirty, guint64,
                                                           disk->dirty->len - 1)
                                          : 0;
          g_autofree char *dirtied = vms_format_size (last);
          g_autofree char *read = vms_format_size (disk->copy_rate);

          g_print ("  disk %s: %s, %s allocated, %s data, copied at %s/s; %s "
                   "dirtied in %d s\n",
                   disk->disk->name, size, allocated, data, read, dirtied,
                   estimate->options->window_s);
        }
      g_print ("  disks write new data at %s/s\n", write_rate);
      g_print ("  %-22s %10.1f s\n", "background copy", e->background_s);
      g_print ("  %-22s %10.1f s  (%.1f rounds%s)\n", "dirty rounds",
               e->rounds_s, e->rounds_expected,
               e->disks_converge ? "" : ", not converging");
      g_print ("  %-22s %10.1f s  (%u passes%s)\n", "memory pre-copy",
               e->memory_s, e->memory_passes,
               e->memory_converges ? "" : ", not converging");
      g_print ("  %-22s %10.0f ms with --final-sync pause, %.0f ms with "
               "mirror\n",
               "downtime", e->downtime_pause_s * 1000,
               e->downtime_mirror_s * 1000);
      g_print ("  %-22s %10.1f s with pause, %.1f s with mirror\n", "total",
               e->total_pause_s, e->total_mirror_s);
      if (e->backpressure_rate > 0)
        {
          g_autofree char *cap = vms_format_size (e->backpressure_rate);

          g_print ("  to converge, throttle the guest's disk writes to %s/s "
                   "(block_set_io_throttle bps_wr)\n",
                   cap);
        }
      g_print ("  recommended: %s%s: %s\n",
               vms_estimate_method_name (e->method),
               e->method == VMS_ESTIMATE_NETWORK
                   ? (mirror ? ", --final-sync mirror" : ", --final-sync pause")
                   : "",
               e->reason);
    }
  {
    g_autofree char *rate = vms_format_size (estimate->best.throughput);
    g_autofree char *request = vms_format_size (estimate->best.request_size);

    g_print ("link: %s/s with --connections %u --request-size %s; "
             "round trip %.2f ms\n",
             rate, estimate->best.connections, request, estimate->rtt_s * 1000);
  }
  if (estimate->vms->len > 1)
    {
      g_print ("group, one after another over the link (%.1f s):", group_total);
      for (guint v = 0; v < estimate->vms->len; v++)
        g_print (" %s", ((Vm *)estimate->vms->pdata[order[v]])->address);
      g_print ("\n");
    }
}

static gboolean
check_options (Estimate *estimate, int argc, GError **error)
{
  EstimateOptions *options = estimate->options;
  guint64 value = 0;

  if (argc < 2 || !options->sink)
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                   "expected SOURCE... --sink URI (see 'vmshift estimate "
                   "--help')");
      return FALSE;
    }
  if (options->window_s < 1 || options->interval_s < 1
      || options->interval_s > options->window_s || options->probe_seconds <= 0
      || options->seed_shipping_hours < 0)
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                   "--window and --interval are at least 1 s, the interval "
                   "at most the window; --probe-seconds is positive");
      return FALSE;
    }
  vms_estimate_params_init (&estimate->params);
  if (!vms_size_parse ("--seed-capacity", options->seed_capacity, 0,
                                 &estimate->params.seed_capacity, error)
      || !vms_size_parse ("--seed-rate", options->seed_rate, 0,
                                    &value, error))
    return FALSE;
  estimate->params.seed_rate = value;
  estimate->params.seed_shipping_s = options->seed_shipping_hours * 3600;
  {
    /* How long this host keeps written data in its page cache. */
    g_autofree char *text = NULL;

    if (g_file_get_contents ("/proc/sys/vm/dirty_expire_centisecs", &text, NULL,
                             NULL))
      estimate->params.dirty_expire_s = g_ascii_strtod (text, NULL) / 100;
  }
  if (!options->id)
    options->id = g_strdup_printf ("%" G_GINT64_FORMAT,
                                   g_get_real_time () / G_USEC_PER_SEC);
  if (!vms_job_id_is_valid (options->id, error))
    return FALSE;
  if (!options->state_dir)
    options->state_dir = vms_job_default_state_dir ();
  return TRUE;
}

int
vms_cmd_estimate (int argc, char **argv)
{
  EstimateOptions options = { .window_s = DEFAULT_WINDOW_S,
                              .interval_s = DEFAULT_INTERVAL_S,
                              .probe_seconds = 2.0 };
  Estimate estimate = { .options = &options };
  const GOptionEntry entries[] = {
    { "sink", 's', 0, G_OPTION_ARG_STRING, &options.sink,
      "NBD URI of the vmshift sink (its @probe export is used)", "URI" },
    { "id", 0, 0, G_OPTION_ARG_STRING, &options.id,
      "Name of this estimate (default: the time)", "ID" },
    { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &options.state_dir,
      "Where the estimate is kept (default /var/lib/vmshift as root)", "DIR" },
    { "window", 'w', 0, G_OPTION_ARG_INT, &options.window_s,
      "Observe for S seconds (default 120)", "S" },
    { "interval", 'i', 0, G_OPTION_ARG_INT, &options.interval_s,
      "Sample every S seconds (default 5)", "S" },
    { "probe-seconds", 0, 0, G_OPTION_ARG_DOUBLE, &options.probe_seconds,
      "Measure each link configuration and each disk's copy for S seconds "
      "(default 2)",
      "S" },
    { "bandwidth", 0, 0, G_OPTION_ARG_STRING, &options.bandwidth,
      "The migration will be limited to RATE bytes/s", "RATE" },
    { "seed-capacity", 0, 0, G_OPTION_ARG_STRING, &options.seed_capacity,
      "A seed device of SIZE is available", "SIZE" },
    { "seed-rate", 0, 0, G_OPTION_ARG_STRING, &options.seed_rate,
      "... written and read at RATE bytes/s", "RATE" },
    { "seed-shipping-hours", 0, 0, G_OPTION_ARG_DOUBLE,
      &options.seed_shipping_hours, "... and shipped in H hours", "H" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &options.json,
      "Print the result as one JSON event on stdout", NULL },
    { "connect", 'c', 0, G_OPTION_ARG_STRING, &options.connect,
      "The SOURCEs are domains of the libvirt at URI", "URI" },
    G_OPTION_ENTRY_NULL
  };
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsProgress) progress = NULL;
  g_autofree guint *order = NULL;
  struct sigaction action = { .sa_handler = handle_stop_signal };
  guint64 bandwidth = 0;
  double group_total;
  int status = VMS_EXIT_OK;
#if VMS_HAVE_LIBVIRT
  g_autoptr (virConnect) libvirt = NULL;
#endif

  context = g_option_context_new ("[--connect URI] SOURCE... --sink URI");
  g_option_context_set_summary (
      context, "Predict the duration, downtime and method of migrating "
               "running VMs, before anything is copied.");
  g_option_context_set_description (context, description);
  g_option_context_add_main_entries (context, entries, NULL);
  g_set_prgname ("vmshift estimate");
  if (!g_option_context_parse (context, &argc, &argv, &error)
      || !check_options (&estimate, argc, &error)
      || !vms_size_parse ("--bandwidth", options.bandwidth, 0,
                                    &bandwidth, &error))
    {
      vms_cli_error ("estimate", "%s", error->message);
      status = VMS_EXIT_USAGE;
      goto out;
    }
  progress
      = vms_progress_new (options.json ? VMS_PROGRESS_JSON : VMS_PROGRESS_TEXT);
  estimate.progress = progress;
  estimate.started = g_get_real_time () / G_USEC_PER_SEC;
  estimate.vms = g_ptr_array_new_with_free_func ((GDestroyNotify)vm_free);
  estimate.probes = g_ptr_array_new_with_free_func (g_free);
  sigaction (SIGINT, &action, NULL);
  sigaction (SIGTERM, &action, NULL);
  if (g_mkdir_with_parents (options.state_dir, 0700) < 0)
    {
      vms_cli_error ("estimate", "cannot create %s: %s", options.state_dir,
                     g_strerror (errno));
      status = VMS_EXIT_FAILED;
      goto out;
    }

#if VMS_HAVE_LIBVIRT
  if (options.connect)
    {
      libvirt = vms_libvirt_connect (options.connect, &error);
      if (!libvirt)
        {
          vms_cli_error ("estimate", "%s", error->message);
          status = VMS_EXIT_FAILED;
          goto out;
        }
    }
#else
  if (options.connect)
    {
      vms_cli_error ("estimate", "this vmshift was built without libvirt: "
                                 "--connect is not available");
      status = VMS_EXIT_USAGE;
      goto out;
    }
#endif
  for (int i = 1; i < argc && !error; i++)
    {
      Vm *vm = g_new0 (Vm, 1);

      vm->address = g_strdup (argv[i]);
      vm->ram_rates = g_array_new (FALSE, FALSE, sizeof (double));
      g_ptr_array_add (estimate.vms, vm);
#if VMS_HAVE_LIBVIRT
      if (libvirt
          && !(vm->domain = vms_libvirt_lookup (libvirt, argv[i], &error)))
        break;
#endif
      if (!open_vm (&estimate, vm, &error))
        g_prefix_error (&error, "VM %s: ", vm->address);
    }
  if (!error)
    {
      vms_progress_event (progress, "observing", NULL,
                          "observing %u VM(s) for %d s, a sample every %d s",
                          estimate.vms->len, options.window_s,
                          options.interval_s);
      observe (&estimate, &error);
    }
  if (!error)
    {
      vms_progress_event (progress, "probing", NULL, "probing the link to %s",
                          options.sink);
      probe_link (&estimate, &error);
    }
  /* With the link's best configuration, as migrate will copy. */
  for (guint v = 0; v < estimate.vms->len && !error; v++)
    if (!probe_vm (&estimate, estimate.vms->pdata[v], &error))
      g_prefix_error (&error, "VM %s: ",
                      ((Vm *)estimate.vms->pdata[v])->address);
  /* Whatever happened, our bitmaps go. */
  for (guint v = 0; v < estimate.vms->len; v++)
    remove_bitmaps (estimate.vms->pdata[v]);
  if (error)
    {
      vms_cli_error ("estimate", "%s", error->message);
      status = vms_cli_exit_code (error);
      goto out;
    }

  predict (&estimate, (double)bandwidth);
  order = g_new0 (guint, estimate.vms->len);
  {
    g_autofree double *totals = g_new0 (double, estimate.vms->len);
    g_autoptr (JsonNode) result = NULL;
    g_autoptr (JsonGenerator) generator = json_generator_new ();
    g_autofree char *file = g_strdup_printf ("estimate-%s.json", options.id);
    g_autofree char *path = g_build_filename (options.state_dir, file, NULL);
    g_autofree char *text = NULL;

    for (guint v = 0; v < estimate.vms->len; v++)
      {
        const VmsEstimate *e = &((Vm *)estimate.vms->pdata[v])->estimate;

        totals[v] = MIN (e->total_pause_s, e->total_mirror_s);
      }
    group_total = vms_estimate_group_order (totals, estimate.vms->len, order);
    result = build_result (&estimate, order, group_total);
    json_generator_set_root (generator, result);
    json_generator_set_pretty (generator, TRUE);
    text = json_generator_to_data (generator, NULL);
    if (!vms_file_replace_durably (path, text, 0600, &error))
      {
        vms_cli_error ("estimate", "cannot save %s: %s", path, error->message);
        status = VMS_EXIT_FAILED;
        goto out;
      }
    if (options.json)
      {
        JsonObject *fields = json_object_new ();

        json_object_set_string_member (fields, "file", path);
        json_object_set_member (fields, "estimate", json_node_copy (result));
        vms_progress_event (progress, "estimate", fields, "estimate %s",
                            options.id);
      }
    else
      {
        print_human (&estimate, order, group_total);
        g_print ("kept in %s; use it with 'vmshift migrate --estimate %s'\n",
                 path, options.id);
      }
  }

out:
  if (estimate.vms)
    g_ptr_array_unref (estimate.vms);
  if (estimate.probes)
    g_ptr_array_unref (estimate.probes);
  g_free (options.sink);
  g_free (options.id);
  g_free (options.state_dir);
  g_free (options.bandwidth);
  g_free (options.seed_capacity);
  g_free (options.seed_rate);
  g_free (options.connect);
  return status;
}
