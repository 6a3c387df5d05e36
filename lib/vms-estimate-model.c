/* vmshift: the estimator's model.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-estimate-model.h"
#include "vms-latency-control.h"
#include "vms-writeback.h"

#include <math.h>

/* Memory passes after which QEMU is taken never to converge. */
#define MAX_MEMORY_PASSES 100
/* The mirror sends every guest write while memory migrates: migrate
 * leaves RAM a quarter of the link at least (vms-migration-qmp.c). */
#define MIN_MEMORY_SHARE 0.25
/* Rounds a backpressured guest may take to converge, and the largest
 * share of the link its writes may then take. */
#define BACKPRESSURE_ROUNDS 8
#define BACKPRESSURE_MAX_SHARE 0.5
/* Backpressure that would cut the guest's disk writes below this share
 * of what it writes is not a live migration any more. */
#define MIN_ACCEPTABLE_WRITE_SHARE 0.25

void
vms_estimate_params_init (VmsEstimateParams *params)
{
  memset (params, 0, sizeof *params);
  params->converge_bytes = 16 * 1024 * 1024;
  /* migrate's own rule (tools/engine/vms-migration.c, rounds): its
   * default 100 ms objective less QEMU's overhead (25 ms) and least
   * limit (20 ms) is what a round may take to end the rounds, and what
   * --final-sync auto lets a final round take in the pause. */
  params->converge_s = 0.055;
  params->final_round_s = 0.055;
  params->final_round_overhead_s = 0.03;
  /* ... and its RAM cap (tools/engine/vms-memory-tuning.h), lifted
   * after QEMU had 5 s at it. */
  params->ram_link_share = 0.75;
  params->ram_cap_wait_s = 5;
  /* QEMU's rate limit period: under a cap, its passes over a RAM with
   * little left came every 0.1 s (bench/estimate-accuracy,
   * write30-50mbit). */
  params->min_memory_pass_s = VMS_ESTIMATE_QEMU_PERIOD_S;
  params->not_shrinking = 0.9;
  params->max_rounds = 50;
  /* What vmshift migrate gives QEMU of its default 100 ms objective over
   * a network (tools/engine/vms-downtime.h: less 25 ms for QEMU's stop,
   * device state and activation, 10 ms for a mirror's handover and 37 ms
   * for what the link's queue may hold). */
  params->max_downtime_s = 0.028;
  params->round_overhead_s = 0.05;
  /* bench/estimate-accuracy, this 2-CPU VM (2026-12-05, once QEMU's stop
   * took 1-2 ms): vmshift's part of the pause and the destination's
   * activation took 12-15 ms with an idle and a 10 MiB/s guest, plus
   * 1-2 ms between the parts; over 50 Mbit/s a mirror's handover took
   * 6-8 ms more (its FLUSH crosses the link).  bench/migrate-downtime's
   * destinations took 30-53 ms to activate alone: a destination's own
   * cost, which the estimate does not see. */
  params->switchover_s = 0.016;
  params->mirror_handover_s = 0.008;
  /* bench/migrate-downtime: a migration spent about 0.5 s outside
   * copying (connections, TLS, exports). */
  params->setup_s = 0.5;
  params->dirty_expire_s = 30.0;
  /* bench/estimate-accuracy write10 (2026-12-05): QEMU's stop took
   * 138 ms with the 187 MB the guest's disk curve gives for 30 s. */
  params->host_flush_rate = 1.35e9;
  /* migrate's writeback, and what QEMU's stop took after it: 1.5-2.8 ms
   * over 30 stops of a guest held to 2.7 MiB/s, this host's ext4
   * (2026-12-05). */
  params->writeback_interval_s = VMS_WRITEBACK_INTERVAL_MS / 1000.0;
  params->stop_flush_fixed_s = 0.002;
}

void
vms_estimate_params_init_for_host (VmsEstimateParams *params)
{
  g_autofree char *text = NULL;

  vms_estimate_params_init (params);
  if (g_file_get_contents ("/proc/sys/vm/dirty_expire_centisecs", &text, NULL,
                           NULL))
    params->dirty_expire_s = g_ascii_strtod (text, NULL) / 100;
}

const char *
vms_estimate_method_name (VmsEstimateMethod method)
{
  switch (method)
    {
    case VMS_ESTIMATE_SEED:
      return "seed";
    case VMS_ESTIMATE_OFFLINE:
      return "offline";
    default:
      return "network";
    }
}

/* The observed curve at t, linear between samples, with (0, 0) before
 * the first. */
static double
interpolate (const VmsEstimateDisk *disk, double t)
{
  double t0 = 0, w0 = 0;

  for (guint i = 0; i < disk->n_samples; i++)
    {
      double t1 = disk->seconds[i], w1 = (double)disk->dirty[i];

      if (t <= t1)
        return t1 > t0 ? w0 + (w1 - w0) * (t - t0) / (t1 - t0) : w1;
      t0 = t1;
      w0 = w1;
    }
  return w0;
}

/* Long-run growth of the dirty set: its slope over the second half of the
 * window, where the hot blocks are already counted and what remains is
 * new data. */
static double
tail_slope (const VmsEstimateDisk *disk)
{
  double last, half;

  if (disk->n_samples == 0)
    return 0;
  last = disk->seconds[disk->n_samples - 1];
  if (last <= 0)
    return 0;
  half = last / 2;
  return MAX (0.0, (interpolate (disk, last) - interpolate (disk, half))
                       / (last - half));
}

double
vms_estimate_disk_dirty_after (const VmsEstimateDisk *disk, double seconds)
{
  double last, value;

  if (disk->n_samples == 0 || seconds <= 0)
    return 0;
  last = disk->seconds[disk->n_samples - 1];
  if (seconds <= last)
    value = interpolate (disk, seconds);
  else
    value = interpolate (disk, last) + tail_slope (disk) * (seconds - last);
  return MIN (value, (double)disk->size);
}

/* The rate of a disk's background copy and of its rounds: as measured,
 * never above the link's. */
static double
copy_rate (const VmsEstimateDisk *disk, double throughput)
{
  return disk->copy_rate > 0 ? MIN (disk->copy_rate, throughput) : throughput;
}

static double
round_rate (const VmsEstimateDisk *disk, double throughput)
{
  return disk->round_rate > 0 ? MIN (disk->round_rate, throughput)
                              : copy_rate (disk, throughput);
}

/* The slowest of the disks' background copies: migrate's one copy rate
 * (it ends the rounds by time at it, and auto times the RAM with it). */
static double
slowest_copy_rate (const VmsEstimateDisk *disks, guint n, double throughput)
{
  double rate = throughput;

  for (guint i = 0; i < n; i++)
    rate = MIN (rate, copy_rate (&disks[i], throughput));
  return rate;
}

/* What the guest writes to its disks, rewrites included (blockstats), or
 * where that is not known the dirty curves' long-run growth. */
static double
guest_writes (const VmsEstimateDisk *disks, guint n, const VmsEstimate *out)
{
  double writes = 0;

  for (guint i = 0; i < n; i++)
    writes += disks[i].write_rate;
  return writes > 0 ? writes : out->disk_write_rate;
}

/* Seconds a dirty round over what the disks dirtied in each's own
 * seconds[i] (or all in seconds when per_disk is NULL) takes to copy,
 * its fixed costs not included; *bytes gets its size.  share is what
 * write backpressure left the guest of its writes (1: all): it goes
 * through its dirty curve that much slower. */
static double
round_time (const VmsEstimateDisk *disks, guint n, const double *per_disk,
            double seconds, double share, double throughput, double *bytes)
{
  double total = 0;

  *bytes = 0;
  for (guint i = 0; i < n; i++)
    {
      /* The guest runs at its pace while the migration copies. */
      double pace
          = share * (disks[i].pace > 0 ? MIN (disks[i].pace, 1.0) : 1.0);
      double dirty = vms_estimate_disk_dirty_after (
          &disks[i], pace * (per_disk ? per_disk[i] : seconds));

      *bytes += dirty;
      total += dirty / round_rate (&disks[i], throughput);
    }
  return total;
}

/* The background copy of one disk holding data bytes: *sent gets what
 * it sends.  The copy runs through the disk in order at its rate c; what
 * the guest writes into holes ahead of its frontier is data by the time
 * the frontier gets there.  Growing at g bytes/s at the share p of the
 * data, that is g p T more in a copy of T seconds: T = (data + g p T) / c,
 * so T = data / (c - g p), and never more than the disk's holes. */
static double
background_time (const VmsEstimateDisk *disk, double data, gboolean growth,
                 double throughput, double *sent)
{
  double c = copy_rate (disk, throughput);
  double ahead = growth ? disk->growth_rate * CLAMP (disk->growth_position,
                                                     0.0, 1.0)
                        : 0;
  double holes = MAX ((double)disk->size - data, 0.0);
  double seconds = data / MAX (c - ahead, c * 0.1);

  if (ahead * seconds > holes)
    seconds = (data + holes) / c;
  *sent = data + MIN (ahead * seconds, holes);
  return seconds;
}

/* Standard normal distribution function. */
static double
normal_cdf (double x)
{
  return 0.5 * erfc (-x / M_SQRT2);
}

/* The rounds' sizes vary around W (the guest does not write evenly):
 * with a relative standard deviation s, round k ends the rounds with
 * probability p_k: it holds converge_bytes or less (P = Phi((C / R_k - 1)
 * / s)), or it is not shrinking (R_k / R_k-1 at least not_shrinking; the
 * ratio of two rounds varies by s sqrt 2: P = 1 - Phi((0.9 / rho_k - 1) /
 * (s sqrt 2))); the last round predicted ends them for sure.  Round k is
 * reached with probability S_k = prod (1 - p_j), j < k: the rounds take
 * sum S_k d_k, and the last one sum S_k p_k d_k, expected.  Without noise
 * that is the sequence as predicted. */
static void
expect_rounds (const VmsEstimateParams *params, gboolean backpressure,
               VmsEstimate *out)
{
  double reach = 1, s = params->round_noise;

  out->rounds_s = 0;
  out->rounds_expected = 0;
  out->last_round_s = 0;
  for (guint k = 0; k < out->n_rounds; k++)
    {
      double r = MAX ((double)out->round_bytes[k], 1.0), stop = 1;

      if (k + 1 < out->n_rounds && s > 0)
        {
          double converge = normal_cdf (((double)params->converge_bytes / r - 1)
                                        / s);
          /* Under backpressure a round that does not shrink brings a
           * step, not the end. */
          double shrinking
              = k == 0 || backpressure
                    ? 1
                    : normal_cdf (
                        (params->not_shrinking
                             * MAX ((double)out->round_bytes[k - 1], 1.0) / r
                         - 1)
                        / (s * M_SQRT2));

          stop = 1 - (1 - converge) * shrinking;
        }
      else if (k + 1 < out->n_rounds)
        stop = 0;
      out->rounds_s += reach * out->round_s[k];
      out->rounds_expected += reach;
      out->last_round_s += reach * stop * out->round_s[k];
      reach *= 1 - stop;
    }
}

/* Write backpressure as vmshift migrate --estimate applies it by default:
 * after the first round that is not small (the estimate foresaw that the
 * rounds do not converge), a step to first_share of the guest's writes
 * (the rate the estimate recommends); after each later one that did not
 * shrink (or that the guest dirtied faster than the rounds copy), the
 * share cut further, never below floor_share.  The round after a step was
 * recorded partly before it and is not judged.  Both 0: no
 * backpressure. */
typedef struct
{
  double first_share;
  double floor_share;
  double share;       /* left to the guest now */
  double recorded_at; /* ... while the round being copied recorded */
  gboolean settling;
  /* --final-sync auto: the RAM's crossing time it foresees a final round
   * over (0: pause or mirror asked, no such check), and whether it chose
   * mirror. */
  double auto_ram_s;
  gboolean auto_mirror;
} Backpressure;

/* migrate's --final-sync auto after a round of bytes that recorded for
 * recorded_s (tools/engine/vms-migration-final-sync.c): the final round
 * pause would copy inside the downtime is what the guest dirties at the
 * round's rate while the RAM crosses (never more than a round that
 * recorded longer held); more than the objective's share chooses
 * mirror. */
static gboolean
auto_chooses_mirror (const Backpressure *bp, const VmsEstimateParams *params,
                     guint n_disks, double bytes, double recorded_s,
                     double round_rate)
{
  double final;

  if (bp->auto_ram_s <= 0 || recorded_s <= 0 || round_rate <= 0)
    return FALSE;
  final = bytes / recorded_s * bp->auto_ram_s;
  if (recorded_s >= bp->auto_ram_s)
    final = MIN (final, bytes);
  return n_disks * params->final_round_overhead_s + final / round_rate
         > params->final_round_s;
}

/* After round k of bytes that recorded for recorded_s: FALSE when the
 * rounds end. */
static gboolean
rounds_go_on (Backpressure *bp, const VmsEstimateParams *params, guint k,
              double bytes, double previous, double recorded_s,
              double copy_rate, VmsEstimate *out)
{
  gboolean not_shrinking
      = !bp->settling && k > 0 && bytes >= params->not_shrinking * previous;
  gboolean outpaced
      = recorded_s > 0 && copy_rate > 0 && bytes / recorded_s >= copy_rate;
  gboolean foreseen = bp->first_share > 0 && bp->share >= 1;

  bp->settling = FALSE;
  if (bytes <= params->converge_bytes)
    {
      out->disks_converge = TRUE;
      return FALSE;
    }
  if ((foreseen || not_shrinking || outpaced) && bp->first_share > 0
      && bp->share > bp->floor_share)
    {
      /* As the engine steps (vms-backpressure.c): to what lets the
       * next rounds shrink to VMS_ESTIMATE_BACKPRESSURE_SHRINK at the
       * copy rate, from the limit held. */
      double dirty_rate = recorded_s > 0 ? bytes / recorded_s : 0;
      double ratio = dirty_rate > 0 ? MIN (VMS_ESTIMATE_BACKPRESSURE_SHRINK
                                               * copy_rate / dirty_rate,
                                           VMS_ESTIMATE_BACKPRESSURE_SHRINK)
                                    : VMS_ESTIMATE_BACKPRESSURE_SHRINK;

      bp->share = bp->share >= 1 ? bp->first_share
                                 : MAX (bp->share * ratio, bp->floor_share);
      bp->settling = TRUE;
      return TRUE;
    }
  return !not_shrinking;
}

/* Background copy and rounds, as vmshift runs them: disk after disk, each
 * disk's bitmap added as its own copy starts.  data overrides the disks'
 * data_bytes when not NULL (a seeded migration sends only the delta, and
 * the guest's growth of it is in the delta already). */
static void
simulate_disks (const VmsEstimateDisk *disks, guint n, const double *data,
                double throughput, const VmsEstimateParams *params,
                Backpressure *bp, VmsEstimate *out)
{
  g_autofree double *recording = g_new0 (double, MAX (n, 1));
  double previous_duration, sent_all = 0, previous = 0, rate = throughput;
  VmsEstimateParams by_bytes = *params;

  out->background_s = 0;
  for (guint i = 0; i < n; i++)
    {
      /* A pass, with a round's fixed cost. */
      double sent, seconds = background_time (
                                 &disks[i],
                                 data ? data[i] : (double)disks[i].data_bytes,
                                 !data, throughput, &sent)
                             + params->round_overhead_s;

      out->background_s += seconds;
      sent_all += sent;
      /* Disk i's bitmap records from the start of its own copy. */
      recording[i] = out->background_s - seconds;
      rate = MIN (rate, round_rate (&disks[i], throughput));
    }
  /* migrate ends the rounds by time at the background copy's rate: in
   * bytes, that is this much. */
  if (params->converge_s > 0)
    {
      by_bytes.converge_bytes
          = (guint64)(params->converge_s
                      * slowest_copy_rate (disks, n, throughput));
      by_bytes.converge_s = 0;
    }
  params = &by_bytes;
  /* ... until round 1 starts. */
  for (guint i = 0; i < n; i++)
    recording[i] = out->background_s - recording[i];
  out->background_bytes = (guint64)sent_all;
  out->n_rounds = 0;
  out->rounds_s = 0;
  out->disks_converge = FALSE;
  previous_duration = out->background_s;
  bp->share = bp->recorded_at = 1;
  bp->settling = FALSE;
  bp->auto_mirror = FALSE;
  while (out->n_rounds < MIN (params->max_rounds, VMS_ESTIMATE_MAX_ROUNDS))
    {
      double bytes = 0, duration, recorded_s = previous_duration;
      guint k = out->n_rounds;
      gboolean go_on;

      duration
          = round_time (disks, n, k == 0 ? recording : NULL, previous_duration,
                        bp->recorded_at, throughput, &bytes)
            + n * params->round_overhead_s;
      out->round_bytes[k] = (guint64)bytes;
      out->round_s[k] = duration;
      out->rounds_s += duration;
      out->n_rounds++;
      previous_duration = duration;
      /* The guest writes at the share before any step while this round
       * copies: the next round holds that. */
      bp->recorded_at = bp->share;
      go_on = rounds_go_on (bp, params, k, bytes, previous, recorded_s, rate,
                            out);
      /* Whether they end or not, auto looks at the final round next. */
      if (auto_chooses_mirror (bp, params, n, bytes, recorded_s, rate))
        {
          bp->auto_mirror = TRUE;
          break;
        }
      if (!go_on)
        break;
      previous = bytes;
    }
  out->write_share = bp->share;
  out->last_round_share = bp->recorded_at;
  expect_rounds (params, bp->first_share > 0, out);
}

/* The distinct RAM the guest dirties in t seconds: at the 1 s rate up to
 * 1 s, then towards what the longer measurement saw, and past it by the
 * same slope (the pages it keeps rewriting counted once); linear at the
 * 1 s rate when only that is known. */
static double
ram_dirty_after (const VmsEstimateMemory *memory, double t)
{
  double one = memory->dirty_rate, span = memory->dirty_long_s, at_span, slope;

  if (t <= 1 || span <= 1 || memory->dirty_long_rate <= 0)
    return one * t;
  at_span = MAX (memory->dirty_long_rate * span, one);
  slope = (at_span - one) / (span - 1);
  return one + slope * (t - 1);
}

/* The time after the first pass at which migrate's looks, wait apart,
 * find a RAM that stopped shrinking spent seconds after it. */
static double
cap_lifted_after (double spent, double wait)
{
  if (wait <= 0)
    return spent;
  /* A look that falls as the RAM stops counts; rounding must not push
   * it to the next. */
  return wait * MAX (1, ceil (spent / wait - 1e-9));
}

/* QEMU's pre-copy: pass after pass over what the guest dirtied during the
 * previous one, until what is left fits the downtime limit, at bandwidth
 * (migrate's cap), and at wide once the cap is lifted: at the first of
 * migrate's looks, ram_cap_wait_s apart from the end of the first pass,
 * after the RAM stopped shrinking under it.  Under the cap a pass takes
 * min_memory_pass_s at least (QEMU's period), so a guest that keeps
 * dirtying does not converge there, however little it dirties (bench
 * runs K, L and M: 0 to 100 KiB left for seconds until the cap went).
 * Returns the bytes left for the downtime. */
static double
simulate_memory (const VmsEstimateMemory *memory, double bandwidth, double wide,
                 const VmsEstimateParams *params, gboolean auto_converge,
                 VmsEstimate *out)
{
  double remaining = (double)memory->ram_bytes;
  double throttle = 0, first_pass_s = 0;
  guint high = 0;

  out->memory_s = 0;
  out->memory_passes = 0;
  out->memory_converges = TRUE;
  out->ram_throttle_percent = 0;
  wide = MAX (wide, bandwidth);
  /* QEMU sends all of RAM once while the guest runs before it looks at
   * what is left: at least one pass. */
  while (out->memory_passes < MAX_MEMORY_PASSES)
    {
      /* Only a cap makes QEMU wait out its period: without one it
       * looks again as soon as it has sent what was left. */
      double pass = MAX (remaining / bandwidth,
                         bandwidth < wide ? params->min_memory_pass_s : 0);
      double next = MIN ((double)memory->ram_bytes,
                         ram_dirty_after (memory, pass) * (1 - throttle));

      out->memory_s += pass;
      if (out->memory_passes++ == 0)
        first_pass_s = out->memory_s;
      /* QEMU expects what is left to cross at the rate it sent the
       * last pass at: under a cap, a pass that waited out the period
       * over a little RAM rates the link low.  A guest that keeps
       * dirtying then never fits a limit below the period there. */
      if (next <= remaining / pass * params->max_downtime_s)
        return next;
      if (bandwidth < wide && next >= params->not_shrinking * remaining)
        {
          /* migrate lifts its cap after QEMU's fair try at it: it looks
           * at the RAM left every ram_cap_wait_s from the first pass on,
           * and lifts it at the first look that finds no progress. */
          out->memory_s = first_pass_s
                          + cap_lifted_after (out->memory_s - first_pass_s,
                                              params->ram_cap_wait_s);
          bandwidth = wide;
        }
      /* auto-converge at vmshift's threshold: every second pass that
       * dirtied more than that share of what it sent slows the vCPUs (and
       * what they dirty) by 20 %, then 10 % more each time, to at most
       * 99 % (QEMU's cpu-throttle-initial, -increment and -max). */
      else if (auto_converge
               && next > remaining * VMS_ESTIMATE_RAM_THROTTLE_THRESHOLD / 100
               && ++high >= 2)
        {
          high = 0;
          throttle = throttle > 0 ? MIN (throttle + 0.1, 0.99) : 0.2;
          out->ram_throttle_percent = throttle * 100;
        }
      else if (!auto_converge && next >= remaining)
        break;
      remaining = next;
    }
  out->memory_converges = FALSE;
  return remaining;
}

/* The RAM as vmshift migrate runs it by default: a RAM that does not
 * converge has QEMU's auto-converge armed (its RAM backpressure), which
 * memory_converges does not count. */
static double
simulate_ram (const VmsEstimateMemory *memory, double bandwidth, double wide,
              const VmsEstimateParams *params, VmsEstimate *out)
{
  double left = simulate_memory (memory, bandwidth, wide, params, FALSE, out);

  if (out->memory_converges)
    return left;
  left = simulate_memory (memory, bandwidth, wide, params, TRUE, out);
  out->memory_converges = FALSE;
  return left;
}

/* The disks' rounds again as migrate runs them by default, with write
 * backpressure stepping from the rate out recommends: out's background
 * and rounds become those; disks_converge stays what it was without. */
static void
simulate_backpressure (const VmsEstimateDisk *disks, guint n, double throughput,
                       const VmsEstimateParams *params, Backpressure *bp,
                       VmsEstimate *out)
{
  double writes = guest_writes (disks, n, out);

  if (writes <= 0 || out->backpressure_rate <= 0)
    return;
  bp->first_share = MIN (out->backpressure_rate / writes, 1.0);
  bp->floor_share = MIN (n * VMS_ESTIMATE_BACKPRESSURE_FLOOR / writes, 1.0);
  simulate_disks (disks, n, NULL, throughput, params, bp, out);
  out->disks_converge_with_backpressure = out->disks_converge;
  out->disks_converge = FALSE;
}

/* --compress zstd: the link carries the RAM at the measured ratio of its
 * size, as fast as the compressing threads let it; one CPU's worth, as
 * the guest's vCPUs need the rest.  Recommended where the RAM takes a
 * second or more and gets a fifth faster. */
#define COMPRESS_MIN_MEMORY_S 1.0
#define COMPRESS_MIN_GAIN 1.2

static void
plan_compression (const VmsEstimateMemory *memory, double throughput,
                  const VmsEstimateParams *params, VmsEstimate *out)
{
  VmsEstimate compressed = { 0 };
  double rate;

  if (memory->compress_ratio <= 0 || memory->compress_rate <= 0)
    {
      out->compress_reason = "the RAM's pages were not sampled";
      return;
    }
  rate = MIN (throughput / memory->compress_ratio, memory->compress_rate);
  simulate_memory (memory, rate, rate, params, FALSE, &compressed);
  out->compress_memory_s = compressed.memory_s;
  if (!out->memory_converges && compressed.memory_converges
      && rate >= COMPRESS_MIN_GAIN * throughput)
    {
      out->compress = TRUE;
      out->compress_reason = "the RAM converges over the link only "
                             "compressed";
    }
  else if (out->memory_s < COMPRESS_MIN_MEMORY_S)
    out->compress_reason = "the RAM crosses in under a second without it";
  else if (memory->compress_rate < COMPRESS_MIN_GAIN * throughput)
    out->compress_reason = "one CPU here compresses slower than the link "
                           "carries";
  else if (rate < COMPRESS_MIN_GAIN * throughput)
    out->compress_reason = "the RAM's pages compress too little";
  else
    {
      out->compress = TRUE;
      out->compress_reason = "the link, not the CPU, limits the RAM, and "
                             "its pages compress";
    }
}

/* The rate the RAM crosses a bandwidth at: compressed where the estimate
 * recommends it, as migrate --estimate then runs. */
static double
ram_rate (const VmsEstimateMemory *memory, const VmsEstimate *out,
          double bandwidth)
{
  if (!out->compress)
    return bandwidth;
  return MIN (bandwidth / memory->compress_ratio, memory->compress_rate);
}

double
vms_estimate_multifd_rate (double max_bandwidth)
{
  double period_bytes = max_bandwidth * VMS_ESTIMATE_QEMU_PERIOD_S;

  return (floor (period_bytes / VMS_ESTIMATE_MULTIFD_PACKET) + 1)
         * VMS_ESTIMATE_MULTIFD_PACKET / VMS_ESTIMATE_QEMU_PERIOD_S;
}

/* The rate the RAM crosses at under migrate's cap (a share of the link
 * that is capped) when wide is the link's rest: compressed RAM goes over
 * multifd, whose whole packets take QEMU past the cap; the link's rest
 * bounds them. */
static double
capped_ram_rate (const VmsEstimateMemory *memory, const VmsEstimate *out,
                 double capped, double wide)
{
  double rate = ram_rate (memory, out, capped);

  if (!out->compress)
    return rate;
  return MIN (vms_estimate_multifd_rate (rate), ram_rate (memory, out, wide));
}

/* pause: memory under migrate's cap, then the last round in the
 * downtime, over what the guest wrote during the last round and memory:
 * a pass of each disk and its FLUSH's round trip.  Not a round's fixed
 * costs: the VM stopped, migrate only copies what the bitmap holds
 * (bench/estimate-accuracy, idle: all of vmshift's part of the pause,
 * that empty round included, took 4-5 ms, where a round's own costs
 * were measured at 40 ms). */
static void
predict_pause (const VmsEstimateDisk *disks, guint n_disks,
               const VmsEstimateMemory *memory, const VmsEstimateLink *link,
               double last_round_s, const VmsEstimateParams *params,
               VmsEstimate *out)
{
  double throughput = MAX (link->throughput, 1.0);
  double wide = ram_rate (memory, out, throughput);
  double rate = capped_ram_rate (
      memory, out, throughput * params->ram_link_share, throughput);
  /* Whether the RAM converges over the link as it is, compressed or not. */
  gboolean converges = out->memory_converges;
  /* QEMU's last pass, in the downtime, is not rate limited. */
  double ram_tail_s = simulate_ram (memory, rate, wide, params, out) / wide;
  double bytes, final_s;

  out->memory_converges = converges;
  final_s = round_time (disks, n_disks, NULL, last_round_s + out->memory_s,
                        out->write_share, throughput, &bytes);
  out->final_bytes_pause = (guint64)bytes;
  out->downtime_pause_s = params->switchover_s + out->stop_flush_s + final_s
                          + n_disks * link->rtt_s + ram_tail_s;
  out->total_pause_s = params->setup_s + out->background_s + out->rounds_s
                       + out->memory_s + out->downtime_pause_s;
}

/* mirror: a catch-up copy behind the mirror (what the guest wrote while
 * the last round copied), then memory while every guest write also
 * crosses the link, under migrate's cap less those writes (a quarter of
 * the link at least); the downtime holds a FLUSH. */
static void
predict_mirror (const VmsEstimateDisk *disks, guint n_disks,
                const VmsEstimateMemory *memory, const VmsEstimateLink *link,
                double last_round_s, const VmsEstimateParams *params,
                VmsEstimate *out)
{
  double throughput = MAX (link->throughput, 1.0);
  /* The mirror sends every write, rewrites included. */
  double writes = guest_writes (disks, n_disks, out) * out->write_share;
  /* Beside the guest's writes that backpressure holds, the catch-up
   * gets the rest of the link (a quarter at least), as migrate leaves
   * them room (vms_replicate_leave_room). */
  double catchup_rate = out->write_share < 1
                            ? MAX (throughput - writes, throughput / 4)
                            : throughput;
  double bytes, capped, wide, ram_tail_s;
  VmsEstimate mirror = { 0 };

  out->catchup_s_mirror
      = round_time (disks, n_disks, NULL, last_round_s, out->last_round_share,
                    catchup_rate, &bytes)
        + n_disks * params->round_overhead_s;
  capped = MAX (throughput * params->ram_link_share - writes,
                throughput * MIN_MEMORY_SHARE);
  wide = MAX (throughput - writes, capped);
  /* QEMU's last pass, in the downtime, is not rate limited, and the
   * guest's writes have stopped. */
  ram_tail_s
      = simulate_ram (memory, capped_ram_rate (memory, out, capped, wide),
                      ram_rate (memory, out, wide), params, &mirror)
        / ram_rate (memory, out, throughput);
  out->mirror_memory_s = mirror.memory_s;
  out->downtime_mirror_s = params->switchover_s + params->mirror_handover_s
                           + out->stop_flush_s + link->rtt_s + ram_tail_s;
  out->total_mirror_s = params->setup_s + out->background_s + out->rounds_s
                        + out->catchup_s_mirror + mirror.memory_s
                        + out->downtime_mirror_s;
}

/* With the host's page cache between QEMU and the image (QEMU's
 * default), what the guest wrote in the last dirty_expire_s waits there
 * when the memory phase starts: the distinct bytes of the disks' dirty
 * curves over that time, gone through at the share of its writes
 * backpressure leaves the guest (the write rate, rewrites included, for
 * a disk without a curve).  migrate writes the images back from then on,
 * every writeback_interval_s (vms-writeback.c), so stopping the VM
 * flushes what the guest wrote since the last of those, or what is left
 * of that backlog when the memory phase is shorter than writing it
 * back; an fdatasync inside the downtime either way. */
static double
stop_flush_time (const VmsEstimateDisk *disks, guint n,
                 const VmsEstimateParams *params, double share, double memory_s)
{
  double backlog = 0, tail = 0, span = share * params->dirty_expire_s;

  if (params->host_flush_rate <= 0)
    return 0;
  for (guint i = 0; i < n; i++)
    {
      backlog += disks[i].n_samples
                     ? vms_estimate_disk_dirty_after (&disks[i], span)
                     : disks[i].write_rate * span;
      tail += disks[i].write_rate * share * params->writeback_interval_s;
    }
  return params->stop_flush_fixed_s
         + MAX (tail, backlog - params->host_flush_rate * memory_s)
               / params->host_flush_rate;
}

/* --final-sync auto, migrate's default: the rounds as pause runs them
 * (with the same backpressure), but a look after each at the final round
 * pause would copy inside the downtime, with the RAM crossing at the
 * background copy's rate; once that does not fit the objective's share,
 * the rounds end and a mirror carries the guest's writes. */
static void
predict_auto (const VmsEstimateDisk *disks, guint n_disks,
              const VmsEstimateMemory *memory, const VmsEstimateLink *link,
              const VmsEstimateParams *params, const Backpressure *pause,
              VmsEstimate *out)
{
  double throughput = MAX (link->throughput, 1.0);
  double ram
      = (double)(memory->ram_size ? memory->ram_size : memory->ram_bytes);
  Backpressure bp = { pause->first_share, pause->floor_share };
  g_autofree VmsEstimate *run = g_memdup2 (out, sizeof *out);

  bp.auto_ram_s = ram / slowest_copy_rate (disks, n_disks, throughput);
  simulate_disks (disks, n_disks, NULL, throughput, params, &bp, run);
  out->auto_mirror = bp.auto_mirror;
  out->auto_rounds = run->n_rounds;
  if (!bp.auto_mirror)
    {
      out->total_auto_s = out->total_pause_s;
      out->downtime_auto_s = out->downtime_pause_s;
      return;
    }
  predict_mirror (disks, n_disks, memory, link,
                  run->n_rounds ? run->last_round_s : run->background_s, params,
                  run);
  out->auto_catchup_s = run->catchup_s_mirror;
  out->auto_memory_s = run->mirror_memory_s;
  out->total_auto_s = run->total_mirror_s;
  out->downtime_auto_s = run->downtime_mirror_s;
}

/* Replication backpressure as the estimate recommends it.  The disk
 * whose writes the probe's copy slowed most sets the allowance (as long
 * again as they took before, at least the minimum); a copy that slowed
 * its guest's writes by more is taken slowed in proportion (the extra
 * latency growing with the copy's rate, a queue the guest shares), never
 * below the controller's floor.  slowed: disks with those rates. */
static void
plan_replication_backpressure (const VmsEstimateDisk *disks, guint n,
                               double throughput, VmsEstimateDisk *slowed,
                               VmsEstimate *out)
{
  double allowance_us, worst_excess = -1;

  for (guint i = 0; i < n; i++)
    {
      slowed[i] = disks[i];
      if (disks[i].latency_before_us > 0 && disks[i].latency_copying_us > 0
          && disks[i].latency_copying_us - disks[i].latency_before_us
                 > worst_excess)
        {
          worst_excess
              = disks[i].latency_copying_us - disks[i].latency_before_us;
          out->latency_before_us = disks[i].latency_before_us;
          out->latency_copying_us = disks[i].latency_copying_us;
        }
    }
  allowance_us = 1000.0
                 * ceil (MAX (out->latency_before_us / 1000.0,
                              VMS_ESTIMATE_MIN_LATENCY_ALLOWANCE_MS));
  if (worst_excess <= allowance_us)
    return;
  out->guest_latency_ms = (guint)(allowance_us / 1000);
  for (guint i = 0; i < n; i++)
    {
      double excess = disks[i].latency_copying_us - disks[i].latency_before_us;
      double share;

      if (disks[i].latency_before_us <= 0 || disks[i].latency_copying_us <= 0
          || excess <= allowance_us)
        continue;
      share = allowance_us / excess;
      slowed[i].copy_rate = MAX (copy_rate (&disks[i], throughput) * share,
                                 VMS_LATENCY_CONTROL_FLOOR);
      slowed[i].round_rate = MAX (round_rate (&disks[i], throughput) * share,
                                  VMS_LATENCY_CONTROL_FLOOR);
      if (!out->replication_rate || slowed[i].copy_rate < out->replication_rate)
        out->replication_rate = slowed[i].copy_rate;
    }
}

/* The method: the seed route when it is shorter than the link with
 * migrate's defaults; offline when live migration would need the guest's
 * disk writes slowed to a crawl; else the network, and why. */
static void
choose_method (VmsEstimate *out)
{
  if (out->seed_s > 0 && out->seed_s < out->total_auto_s)
    {
      out->method = VMS_ESTIMATE_SEED;
      out->reason = "shipping a seed device is faster than the link";
    }
  else if (!out->disks_converge
           && out->backpressure_rate
                  < MIN_ACCEPTABLE_WRITE_SHARE * out->disk_write_rate)
    {
      out->method = VMS_ESTIMATE_OFFLINE;
      out->reason = "the guest writes its disks much faster than the link "
                    "copies; live migration would need it slowed to a "
                    "crawl";
    }
  else
    {
      out->method = VMS_ESTIMATE_NETWORK;
      out->reason = !out->disks_converge
                        ? "converges over the link once guest disk writes "
                          "are throttled (backpressure)"
                    : !out->memory_converges
                        ? "disks converge; RAM converges once QEMU's "
                          "auto-converge slows the guest (RAM "
                          "backpressure, armed by default)"
                        : "the dirty rounds and RAM converge over the link";
    }
}

void
vms_estimate_run (const VmsEstimateDisk *observed, guint n_disks,
                  const VmsEstimateMemory *memory, const VmsEstimateLink *link,
                  const VmsEstimateParams *params, VmsEstimate *out)
{
  double throughput = MAX (link->throughput, 1.0);
  double last_round_s, offline_copy_s = 0;
  double total_data = 0;
  Backpressure no_backpressure = { 0 }, backpressure = { 0 };
  /* The copies as they run live: with replication backpressure. */
  g_autofree VmsEstimateDisk *disks = g_new0 (VmsEstimateDisk, n_disks + 1);

  memset (out, 0, sizeof *out);
  plan_replication_backpressure (observed, n_disks, throughput, disks, out);
  simulate_disks (disks, n_disks, NULL, throughput, params, &no_backpressure,
                  out);
  for (guint i = 0; i < n_disks; i++)
    {
      double sent;

      out->disk_write_rate += tail_slope (&disks[i]);
      total_data += (double)disks[i].data_bytes;
      /* Offline, the guest does not write (no growth) and nothing
       * holds the copy back for it. */
      offline_copy_s
          += background_time (&observed[i], (double)observed[i].data_bytes,
                              FALSE, throughput, &sent)
             + params->round_overhead_s;
    }
  if (!out->disks_converge && out->n_rounds > 0)
    {
      double first = MAX ((double)out->round_bytes[0], 1.0);
      double ratio = pow ((double)params->converge_bytes / first,
                          1.0 / BACKPRESSURE_ROUNDS);
      /* The rounds' own pace: round 1's bytes over its copying time. */
      double copying = out->round_s[0] - n_disks * params->round_overhead_s;
      double rate = copying > 0 && out->round_bytes[0] > 0
                        ? (double)out->round_bytes[0] / copying
                        : throughput;

      out->backpressure_rate = rate * MIN (BACKPRESSURE_MAX_SHARE, ratio);
      simulate_backpressure (disks, n_disks, throughput, params, &backpressure,
                             out);
    }
  last_round_s = out->n_rounds ? out->last_round_s : out->background_s;

  /* Uncompressed first: whether compression is worth it. */
  simulate_ram (memory, throughput, throughput, params, out);
  plan_compression (memory, throughput, params, out);
  out->stop_flush_s = stop_flush_time (disks, n_disks, params, out->write_share,
                                       out->memory_s);
  predict_pause (disks, n_disks, memory, link, last_round_s, params, out);
  predict_mirror (disks, n_disks, memory, link, last_round_s, params, out);
  predict_auto (disks, n_disks, memory, link, params, &backpressure, out);

  out->offline_s = params->setup_s + offline_copy_s;

  /* Seed: write the device, ship it, import it, then migrate what the
   * guest wrote meanwhile over the link. */
  if (params->seed_capacity >= total_data && params->seed_rate > 0
      && n_disks > 0)
    {
      double period
          = 2 * total_data / params->seed_rate + params->seed_shipping_s;
      g_autofree double *delta = g_new (double, n_disks);
      VmsEstimate seeded = { 0 };

      for (guint i = 0; i < n_disks; i++)
        delta[i] = vms_estimate_disk_dirty_after (&disks[i], period);
      simulate_disks (disks, n_disks, delta, throughput, params,
                      &no_backpressure, &seeded);
      out->seed_s = period + params->setup_s + seeded.background_s
                    + seeded.rounds_s + out->memory_s + out->downtime_pause_s;
      out->seed_device_bytes = total_data;
      out->seed_period_s = period;
      out->seed_link_bytes = seeded.background_bytes;
      for (guint k = 0; k < seeded.n_rounds; k++)
        out->seed_link_bytes += seeded.round_bytes[k];
    }

  choose_method (out);
}

static int
compare_totals (gconstpointer a, gconstpointer b, gpointer totals)
{
  double x = ((const double *)totals)[*(const guint *)a];
  double y = ((const double *)totals)[*(const guint *)b];

  return x < y ? -1 : x > y ? 1 : 0;
}

double
vms_estimate_group_order (const double *totals, guint n, guint *order)
{
  double sum = 0;

  for (guint i = 0; i < n; i++)
    {
      order[i] = i;
      sum += totals[i];
    }
  g_qsort_with_data (order, n, sizeof *order, compare_totals, (gpointer)totals);
  return sum;
}
