/* Unit tests: the estimator's model on synthetic VMs whose answers are
 * worked out by hand in the comments.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "vms-estimate-model.h"

#define MB 1000000.0
#define GB 1000000000.0

static void
assert_near (double value, double expected, double tolerance, const char *what)
{
  if (fabs (value - expected) > tolerance)
    fail_msg ("%s: %.6f, expected %.6f (+-%g)", what, value, expected,
              tolerance);
}

/* Exact figures: no fixed costs. */
static void
exact_params (VmsEstimateParams *params)
{
  vms_estimate_params_init (params);
  params->round_overhead_s = 0;
  params->switchover_s = 0;
  params->mirror_handover_s = 0;
  params->setup_s = 0;
  params->converge_bytes = 16 * 1000 * 1000;
  params->converge_s = 0;
  params->ram_link_share = 1;
  params->min_memory_pass_s = 0;
  params->max_downtime_s = 0.065;
  params->host_flush_rate = 1e9;
  /* No stop flush unless a test asks for one. */
  params->dirty_expire_s = 0;
  params->stop_flush_fixed_s = 0;
}

/* A disk whose dirty set grows by rate bytes/s, sampled every 10 s for a
 * minute. */
typedef struct
{
  double seconds[7];
  guint64 dirty[7];
  VmsEstimateDisk disk;
} LinearDisk;

static void
linear_disk (LinearDisk *d, const char *name, double data, double rate,
             double size)
{
  for (guint i = 0; i < 7; i++)
    {
      d->seconds[i] = 10.0 * i;
      d->dirty[i] = (guint64)(rate * 10.0 * i);
    }
  d->disk = (VmsEstimateDisk){ name, (guint64)size, (guint64)data,
                               7,    d->seconds,    d->dirty };
}

static void
test_dirty_curve (void **state)
{
  /* Fills a 20 MB hot set in 20 s, then adds 0.5 MB/s of new data. */
  const double seconds[] = { 10, 20, 30, 40 };
  const guint64 dirty[] = { 10 * MB, 20 * MB, 25 * MB, 30 * MB };
  VmsEstimateDisk disk = { "vd0", 100 * MB, 0, 4, seconds, dirty };

  assert_near (vms_estimate_disk_dirty_after (&disk, 0), 0, 1, "at 0");
  assert_near (vms_estimate_disk_dirty_after (&disk, 5), 5 * MB, 1, "at 5");
  assert_near (vms_estimate_disk_dirty_after (&disk, 25), 22.5 * MB, 1,
               "at 25");
  /* Past the window: the slope of its second half, (30 - 20) MB over
   * 20 s = 0.5 MB/s, so 30 + 0.5 x 20 = 40 MB at 60 s. */
  assert_near (vms_estimate_disk_dirty_after (&disk, 60), 40 * MB, 1, "at 60");
  /* ... never more than the disk. */
  assert_near (vms_estimate_disk_dirty_after (&disk, 1e6), 100 * MB, 1,
               "capped");
  disk.n_samples = 0;
  assert_near (vms_estimate_disk_dirty_after (&disk, 60), 0, 0, "no data");
}

/* Idle VM: 1 GB of data at 100 MB/s is 10 s; round 1 is empty and ends
 * the rounds; 200 MB of RAM with nothing dirtied is one 2 s pass. */
static void
test_idle_vm (void **state)
{
  LinearDisk d;
  VmsEstimateMemory memory = { 200 * MB, 0 };
  VmsEstimateLink link = { 100 * MB, 0.001 };
  VmsEstimateParams params;
  VmsEstimate e;

  exact_params (&params);
  linear_disk (&d, "vd0", GB, 0, 10 * GB);
  vms_estimate_run (&d.disk, 1, &memory, &link, &params, &e);
  assert_near (e.background_s, 10, 1e-9, "background");
  assert_int_equal (e.n_rounds, 1);
  assert_int_equal (e.round_bytes[0], 0);
  assert_true (e.disks_converge);
  assert_near (e.memory_s, 2, 1e-9, "memory");
  assert_int_equal (e.memory_passes, 1);
  assert_true (e.memory_converges);
  assert_int_equal (e.final_bytes_pause, 0);
  /* Either way the replica's FLUSH: one round trip. */
  assert_near (e.downtime_pause_s, 0.001, 1e-9, "downtime pause");
  assert_near (e.downtime_mirror_s, 0.001, 1e-9, "downtime mirror");
  assert_near (e.total_pause_s, 12.001, 1e-9, "total pause");
  assert_near (e.offline_s, 10, 1e-9, "offline");
  assert_int_equal (e.method, VMS_ESTIMATE_NETWORK);
}

/* A guest writing 10 MB/s over a 100 MB/s link: the 10 s background copy
 * leaves 100 MB for round 1 (1 s), which leaves 10 MB for round 2 (0.1 s):
 * below 16 MB, converged.  Memory (100 MB, 1 s) then the last round in
 * pause mode holds 10 MB/s x (0.1 + 1) s = 11 MB: 0.11 s of downtime. */
static void
test_writing_vm_converges (void **state)
{
  LinearDisk d;
  VmsEstimateMemory memory = { 100 * MB, 0 };
  VmsEstimateLink link = { 100 * MB, 0 };
  VmsEstimateParams params;
  VmsEstimate e;

  exact_params (&params);
  linear_disk (&d, "vd0", GB, 10 * MB, 10 * GB);
  vms_estimate_run (&d.disk, 1, &memory, &link, &params, &e);
  assert_int_equal (e.n_rounds, 2);
  assert_near (e.round_bytes[0], 100 * MB, 1, "round 1");
  assert_near (e.round_s[0], 1, 1e-6, "round 1 time");
  assert_near (e.round_bytes[1], 10 * MB, 1, "round 2");
  assert_true (e.disks_converge);
  assert_near (e.disk_write_rate, 10 * MB, 1, "write rate");
  assert_near (e.backpressure_rate, 0, 0, "no backpressure");
  assert_near (e.final_bytes_pause, 11 * MB, 2, "final round");
  assert_near (e.downtime_pause_s, 0.11, 1e-6, "downtime pause");
  /* Mirror: a 1 MB catch-up (0.01 s); memory shares the link with the
   * 10 MB/s of mirrored writes: 100 MB at 90 MB/s. */
  assert_near (e.catchup_s_mirror, 0.01, 1e-6, "catch-up");
  assert_near (e.total_mirror_s, 10 + 1.1 + 0.01 + 100 / 90.0, 1e-6,
               "total mirror");
  assert_near (e.total_pause_s, 10 + 1.1 + 1 + 0.11, 1e-6, "total pause");
  assert_true (e.downtime_mirror_s < e.downtime_pause_s);

  /* The guest writes 20 MB/s into the host's page cache, which keeps 30 s
   * of it and writes back 1 GB/s: its pages, 10 MB/s of distinct ones
   * (it rewrites every other), 300 MB when the memory starts.  migrate
   * writes them back during the memory's 1 s, every 20 ms: stopping the
   * VM flushes the 0.4 MB of the last 20 ms, 0.4 ms more in both
   * downtimes. */
  d.disk.write_rate = 20 * MB;
  params.dirty_expire_s = 30;
  params.host_flush_rate = GB;
  vms_estimate_run (&d.disk, 1, &memory, &link, &params, &e);
  assert_near (e.memory_s, 1, 1e-6, "memory");
  assert_near (e.stop_flush_s, 0.0004, 1e-9, "stop flush");
  assert_near (e.downtime_pause_s, 0.11 + 0.0004, 1e-6, "downtime pause");

  /* A 10 MB RAM crosses in 0.1 s, too short to write 300 MB back: the
   * stop flushes the other 200 MB. */
  memory.ram_bytes = 10 * MB;
  vms_estimate_run (&d.disk, 1, &memory, &link, &params, &e);
  assert_near (e.memory_s, 0.1, 1e-6, "short memory");
  assert_near (e.stop_flush_s, 0.2, 1e-9, "stop flush, short memory");
}

/* Writing 95 MB/s over 100 MB/s: round 2 is 95% of round 1, not
 * shrinking.  To converge in 8 rounds from round 1's 950 MB to 16 MB the
 * guest must write at most (16/950)^(1/8) = 0.600 of the link, capped at
 * half of it: 50 MB/s, over half of what it writes, so still network.
 * As migrate --estimate runs it, that is the step after round 1 (the
 * estimate foresaw it): round 2 recorded before it (95 x 9.5 s = 902.5
 * MB), and from round 3 on each round holds 50 MB/s of the one before
 * it, halving: 451.25, 225.625, ... until round 8's 14.102 MB is below
 * 16 MB. */
static void
test_not_converging_needs_backpressure (void **state)
{
  LinearDisk d;
  VmsEstimateMemory memory = { 100 * MB, 0 };
  VmsEstimateLink link = { 100 * MB, 0 };
  VmsEstimateParams params;
  VmsEstimate e;

  exact_params (&params);
  params.dirty_expire_s = 30;
  linear_disk (&d, "vd0", GB, 95 * MB, 100 * GB);
  d.disk.write_rate = 95 * MB;
  vms_estimate_run (&d.disk, 1, &memory, &link, &params, &e);
  assert_false (e.disks_converge);
  assert_true (e.disks_converge_with_backpressure);
  /* The page cache holds 30 s of the writes held to 50 MB/s (the guest
   * goes through its curve at 50/95 of its pace: 1500 MB) when the memory
   * starts, 1 GB/s of them written back during its 1 s. */
  assert_near (e.memory_s, 1, 1e-6, "memory");
  assert_near (e.stop_flush_s, 0.5, 1e-9, "stop flush");
  assert_near (e.backpressure_rate, 50 * MB, 1, "backpressure");
  assert_near (e.write_share, 50.0 / 95, 1e-9, "what the guest keeps");
  assert_int_equal (e.n_rounds, 8);
  assert_near (e.round_bytes[0], 950 * MB, 1, "round 1");
  assert_near (e.round_bytes[1], 902.5 * MB, 1, "round 2");
  assert_near (e.round_bytes[2], 451.25 * MB, 1, "round 3");
  assert_near (e.round_bytes[3], 225.625 * MB, 1, "round 4");
  assert_near (e.round_bytes[7], 14.1015625 * MB, 1, "round 8");
  assert_int_equal (e.method, VMS_ESTIMATE_NETWORK);
  /* Behind a mirror the held writes (50 MB/s) cross beside the catch-up,
   * which gets the other 50 MB/s of the link: what the guest wrote during
   * the last round, at half the link's rate. */
  assert_near (e.catchup_s_mirror,
               95 * MB * e.last_round_share * e.last_round_s / (50 * MB), 1e-6,
               "catch-up beside the held writes");

  /* 400 MB/s of writes over the same link: the backpressure would leave
   * the guest an eighth of its writes: offline. */
  linear_disk (&d, "vd0", GB, 400 * MB, 100 * GB);
  vms_estimate_run (&d.disk, 1, &memory, &link, &params, &e);
  assert_false (e.disks_converge);
  assert_int_equal (e.method, VMS_ESTIMATE_OFFLINE);
}

/* 100 MB of RAM, 12 MB/s dirtied, 10 MB/s link, 0.3 s limit (3 MB): it
 * does not converge; with auto-converge at 80 % the second pass that
 * dirtied all of it slows the vCPUs by 20 % (passes 3, 4), the fourth
 * (92.16 MB after 96) by 30 %, the sixth (65.03 after 77.41) by 40 %;
 * then each pass leaves 0.72 of the one before: 46.82, 33.71, ... 2.43
 * MB after the sixteenth pass. */
static void
test_memory_auto_converge (void **state)
{
  VmsEstimateMemory memory = { 100 * MB, 12 * MB };
  VmsEstimateLink link = { 10 * MB, 0 };
  VmsEstimateParams params;
  VmsEstimate e;
  double seconds = 10 + 10 + 10 + 9.6 + 9.216 + 7.74144;

  exact_params (&params);
  params.max_downtime_s = 0.3;
  vms_estimate_run (NULL, 0, &memory, &link, &params, &e);
  assert_false (e.memory_converges);
  assert_near (e.ram_throttle_percent, 40, 1e-9, "RAM throttle");
  assert_int_equal (e.memory_passes, 16);
  /* Passes 7 to 16: 6.502810 s shrinking by 0.72 each. */
  seconds += 6.5028096 * (1 - pow (0.72, 10)) / (1 - 0.72);
  assert_near (e.memory_s, seconds, 1e-3, "memory seconds");
}

/* 1000 MB of RAM, 50 MB/s dirtied, 100 MB/s link, 0.3 s limit (30 MB):
 * passes of 10, 5, 2.5, 1.25, 0.625 s leave 500, 250, 125, 62.5, 31.25
 * MB; the sixth (0.3125 s) leaves 15.625 MB: switch over. */
static void
test_memory_passes (void **state)
{
  VmsEstimateMemory memory = { 1000 * MB, 50 * MB };
  VmsEstimateLink link = { 100 * MB, 0 };
  VmsEstimateParams params;
  VmsEstimate e;

  exact_params (&params);
  /* The figures below are worked out for a 0.3 s limit. */
  params.max_downtime_s = 0.3;
  vms_estimate_run (NULL, 0, &memory, &link, &params, &e);
  assert_int_equal (e.memory_passes, 6);
  assert_near (e.memory_s, 19.6875, 1e-9, "memory time");
  assert_near (e.downtime_pause_s, 0.15625, 1e-9, "RAM downtime");
  assert_true (e.memory_converges);

  /* RAM that fits the downtime limit is still sent once while the guest
   * runs: 50 MB at 1000 MB/s is a 0.05 s pass, after which only what
   * was dirtied meanwhile (10 MB/s x 0.05 s) is left for the downtime. */
  {
    VmsEstimateMemory small = { 50 * MB, 10 * MB };
    VmsEstimateLink fast = { 1000 * MB, 0 };

    vms_estimate_run (NULL, 0, &small, &fast, &params, &e);
    assert_int_equal (e.memory_passes, 1);
    assert_near (e.memory_s, 0.05, 1e-9, "one pass");
    assert_near (e.downtime_pause_s, 0.5 * MB / (1000 * MB), 1e-9,
                 "RAM left");
  }

  /* Dirtying faster than the link: never converges. */
  memory.dirty_rate = 150 * MB;
  vms_estimate_run (NULL, 0, &memory, &link, &params, &e);
  assert_false (e.memory_converges);
}

/* --compress zstd: 1000 MB of RAM over 100 MB/s, pages compressing to
 * 40 % at 400 MB/s on one CPU: the link then carries 250 MB/s of RAM, a
 * 4 s pass instead of 10 s.  Where the CPU or the pages limit it, or the
 * RAM is quick anyway, it is not recommended, and says why. */
static void
test_compression (void **state)
{
  VmsEstimateMemory memory = { 1000 * MB, 0, 0.4, 400 * MB };
  VmsEstimateLink link = { 100 * MB, 0 };
  VmsEstimateParams params;
  VmsEstimate e;

  exact_params (&params);
  vms_estimate_run (NULL, 0, &memory, &link, &params, &e);
  assert_near (e.compress_memory_s, 4, 1e-9, "compressed memory time");
  assert_true (e.compress);
  /* As migrate --estimate runs it: compressed. */
  assert_near (e.memory_s, 4, 1e-9, "memory time");
  assert_near (e.total_pause_s, 4, 1e-9, "total");

  /* One CPU compresses 100 MB/s: no faster than the link. */
  memory.compress_rate = 100 * MB;
  vms_estimate_run (NULL, 0, &memory, &link, &params, &e);
  assert_false (e.compress);
  assert_near (e.memory_s, 10, 1e-9, "memory time, not compressed");
  assert_non_null (strstr (e.compress_reason, "slower than the link"));

  /* Pages that compress to 90 %. */
  memory.compress_rate = 400 * MB;
  memory.compress_ratio = 0.9;
  vms_estimate_run (NULL, 0, &memory, &link, &params, &e);
  assert_false (e.compress);
  assert_non_null (strstr (e.compress_reason, "compress too little"));

  /* 50 MB of RAM: half a second. */
  memory.ram_bytes = 50 * MB;
  memory.compress_ratio = 0.4;
  vms_estimate_run (NULL, 0, &memory, &link, &params, &e);
  assert_false (e.compress);
  assert_non_null (strstr (e.compress_reason, "under a second"));

  /* RAM dirtied at 120 MB/s: it never converges at 100 MB/s, does at
   * 250 MB/s compressed. */
  memory.ram_bytes = 1000 * MB;
  memory.dirty_rate = 120 * MB;
  vms_estimate_run (NULL, 0, &memory, &link, &params, &e);
  assert_false (e.memory_converges);
  assert_true (e.compress);
  assert_non_null (strstr (e.compress_reason, "converges over the link only"));

  /* Not sampled. */
  memory.compress_ratio = 0;
  vms_estimate_run (NULL, 0, &memory, &link, &params, &e);
  assert_false (e.compress);
  assert_true (e.compress_memory_s == 0);
}

/* Several disks are copied one after another, each bitmap added as its
 * copy starts: disk 0 (5 s of data) has been recording 10 s when round 1
 * starts, disk 1 only 5 s. */
static void
test_two_disks (void **state)
{
  LinearDisk d[2];
  VmsEstimateDisk disks[2];
  VmsEstimateMemory memory = { 0, 0 };
  VmsEstimateLink link = { 100 * MB, 0 };
  VmsEstimateParams params;
  VmsEstimate e;

  exact_params (&params);
  linear_disk (&d[0], "vd0", 500 * MB, 2 * MB, 10 * GB);
  linear_disk (&d[1], "vd1", 500 * MB, 4 * MB, 10 * GB);
  disks[0] = d[0].disk;
  disks[1] = d[1].disk;
  vms_estimate_run (disks, 2, &memory, &link, &params, &e);
  assert_near (e.background_s, 10, 1e-9, "background");
  assert_near (e.round_bytes[0], 2 * MB * 10 + 4 * MB * 5, 1, "round 1");
  assert_near (e.disk_write_rate, 6 * MB, 1, "write rate");
}

/* 2 TB over 10 MB/s is 55 hours; a 4 TB device written and read at
 * 500 MB/s and shipped in 24 h is about 26 h: seed.  Without a device:
 * network. */
static void
test_seed_device (void **state)
{
  LinearDisk d;
  VmsEstimateMemory memory = { GB, 0 };
  VmsEstimateLink link = { 10 * MB, 0.05 };
  VmsEstimateParams params;
  VmsEstimate e;

  exact_params (&params);
  linear_disk (&d, "vd0", 2000 * GB, 0.1 * MB, 4000 * GB);
  vms_estimate_run (&d.disk, 1, &memory, &link, &params, &e);
  assert_int_equal (e.method, VMS_ESTIMATE_NETWORK);
  assert_near (e.seed_s, 0, 0, "no device");

  params.seed_capacity = (guint64)(4000 * GB);
  params.seed_rate = 500 * MB;
  params.seed_shipping_s = 24 * 3600;
  vms_estimate_run (&d.disk, 1, &memory, &link, &params, &e);
  assert_int_equal (e.method, VMS_ESTIMATE_SEED);
  /* 8000 s of writing and reading, 86400 s shipping, then the delta:
   * 0.1 MB/s x 94400 s = 9.44 GB at 10 MB/s = 944 s, plus rounds and
   * memory (100 s). */
  assert_true (e.seed_s > 8000 + 86400 + 944 + 100);
  assert_true (e.seed_s < 8000 + 86400 + 944 + 100 + 200);
  /* The plan: the 2 TB of data on the device, 94400 s until it is
   * imported, then the 9.44 GB delta and the rounds over the link. */
  assert_near (e.seed_device_bytes, 2000 * GB, 1, "on the device");
  assert_near (e.seed_period_s, 8000 + 86400, 1, "device period");
  assert_true (e.seed_link_bytes >= 9.44 * GB);
  assert_true (e.seed_link_bytes < 9.44 * GB + 2 * GB);
  assert_true (e.total_pause_s > 200000);

  /* A device too small for the data does not count. */
  params.seed_capacity = (guint64)(1000 * GB);
  vms_estimate_run (&d.disk, 1, &memory, &link, &params, &e);
  assert_int_equal (e.method, VMS_ESTIMATE_NETWORK);
}

/* The disk's own rates: 500 MB copied at 50 MB/s is 10 s although the
 * link carries 100 MB/s; a guest dirtying 2 MB/s leaves 20 MB for round 1,
 * which at its 20 MB/s takes 1 s; round 2 holds 2 MB (converged, 0.1 s).
 * RAM goes at the link's 100 MB/s: 100 MB in 1 s.  The last round in
 * pause mode holds 2 MB/s x (0.1 + 1) s = 2.2 MB, 0.11 s at 20 MB/s. */
static void
test_disk_rates (void **state)
{
  LinearDisk d;
  VmsEstimateMemory memory = { 100 * MB, 0 };
  VmsEstimateLink link = { 100 * MB, 0 };
  VmsEstimateParams params;
  VmsEstimate e;

  exact_params (&params);
  linear_disk (&d, "vd0", 500 * MB, 2 * MB, 10 * GB);
  d.disk.copy_rate = 50 * MB;
  d.disk.round_rate = 20 * MB;
  vms_estimate_run (&d.disk, 1, &memory, &link, &params, &e);
  assert_near (e.background_s, 10, 1e-9, "background");
  assert_int_equal (e.n_rounds, 2);
  assert_near (e.round_bytes[0], 20 * MB, 1, "round 1");
  assert_near (e.round_s[0], 1, 1e-9, "round 1 time");
  assert_near (e.round_bytes[1], 2 * MB, 1, "round 2");
  assert_near (e.round_s[1], 0.1, 1e-9, "round 2 time");
  assert_near (e.memory_s, 1, 1e-9, "memory at the link");
  assert_near (e.final_bytes_pause, 2.2 * MB, 1, "final round");
  assert_near (e.downtime_pause_s, 0.11, 1e-9, "downtime pause");
  assert_near (e.total_pause_s, 10 + 1.1 + 1 + 0.11, 1e-9, "total pause");
  assert_near (e.offline_s, 10, 1e-9, "offline");

  /* Without a round rate the rounds go at the copy rate: round 1 is
   * 0.4 s, round 2 holds 0.8 MB. */
  d.disk.round_rate = 0;
  vms_estimate_run (&d.disk, 1, &memory, &link, &params, &e);
  assert_near (e.round_s[0], 0.4, 1e-9, "round 1 at the copy rate");
  assert_near (e.round_bytes[1], 0.8 * MB, 1, "round 2");

  /* Rates above the link's are the link's. */
  d.disk.copy_rate = 1000 * MB;
  vms_estimate_run (&d.disk, 1, &memory, &link, &params, &e);
  assert_near (e.background_s, 5, 1e-9, "background at the link");

  /* The fixed cost of a pass counts in the background copy and the
   * rounds, not in the downtime's last round (the link's round trip
   * there, 0 here). */
  d.disk.copy_rate = 50 * MB;
  d.disk.round_rate = 20 * MB;
  params.round_overhead_s = 0.02;
  vms_estimate_run (&d.disk, 1, &memory, &link, &params, &e);
  assert_near (e.background_s, 10.02, 1e-9, "background with its cost");
  /* Round 1: 2 MB/s x 10.02 s = 20.04 MB, 1.002 + 0.02 s; round 2:
   * 2 MB/s x 1.022 s = 2.044 MB, 0.1022 + 0.02 s; the last round:
   * 2 MB/s x (0.1222 + 1) s = 2.2444 MB, 0.11222 s. */
  assert_near (e.round_s[0], 1.022, 1e-9, "round 1 with its cost");
  assert_near (e.round_s[1], 0.1222, 1e-9, "round 2 with its cost");
  assert_near (e.downtime_pause_s, 0.11222, 1e-9, "downtime");
  assert_near (e.offline_s, 10.02, 1e-9, "offline with its cost");

  /* A guest that dirties at half its pace while the copy runs: round 1
   * holds 2 MB/s x 0.5 x 10 s = 10 MB (0.5 s), converged; the last round
   * 2 MB/s x 0.5 x (0.5 + 1) s = 1.5 MB. */
  params.round_overhead_s = 0;
  d.disk.pace = 0.5;
  vms_estimate_run (&d.disk, 1, &memory, &link, &params, &e);
  assert_int_equal (e.n_rounds, 1);
  assert_near (e.round_bytes[0], 10 * MB, 1, "round 1 at half pace");
  assert_near (e.round_s[0], 0.5, 1e-9, "round 1 time at half pace");
  assert_near (e.final_bytes_pause, 1.5 * MB, 1, "last round at half pace");
}

/* Replication backpressure: 500 MB of data copied at 50 MB/s (10 s),
 * rounds at 20 MB/s.  A copy that raised the guest's writes from 0.5 ms
 * to 5.5 ms (5 ms more) is recommended --max-guest-latency 1 (as long
 * again as before, at least 1 ms) and taken slowed to a fifth: 10 MB/s,
 * 50 s, rounds at 4 MB/s.  Offline nothing holds the copy back. */
static void
test_replication_backpressure (void **state)
{
  LinearDisk d;
  VmsEstimateMemory memory = { 100 * MB, 0 };
  VmsEstimateLink link = { 100 * MB, 0 };
  VmsEstimateParams params;
  VmsEstimate e;

  exact_params (&params);
  linear_disk (&d, "vd0", 500 * MB, 2 * MB, 10 * GB);
  d.disk.copy_rate = 50 * MB;
  d.disk.round_rate = 20 * MB;
  d.disk.latency_before_us = 500;
  d.disk.latency_copying_us = 5500;
  vms_estimate_run (&d.disk, 1, &memory, &link, &params, &e);
  assert_int_equal (e.guest_latency_ms, 1);
  assert_near (e.latency_before_us, 500, 1e-9, "latency before");
  assert_near (e.latency_copying_us, 5500, 1e-9, "latency copying");
  assert_near (e.replication_rate, 10 * MB, 1, "copy rate under it");
  assert_near (e.background_s, 50, 1e-9, "background slowed");
  /* Round 1: 2 MB/s x 50 s = 100 MB at 4 MB/s. */
  assert_near (e.round_bytes[0], 100 * MB, 1, "round 1");
  assert_near (e.round_s[0], 25, 1e-9, "round 1 slowed");
  assert_near (e.offline_s, 10, 1e-9, "offline unslowed");

  /* Writes that took 3 ms before may take 3 ms more: 5.5 ms (2.5 ms
   * more) is within, nothing recommended, the copy at its rate. */
  d.disk.latency_before_us = 3000;
  vms_estimate_run (&d.disk, 1, &memory, &link, &params, &e);
  assert_int_equal (e.guest_latency_ms, 0);
  assert_near (e.replication_rate, 0, 1e-9, "no rate");
  assert_near (e.latency_copying_us, 5500, 1e-9, "latency still told");
  assert_near (e.background_s, 10, 1e-9, "background at its rate");

  /* A 2.2 ms baseline rounds the allowance up to 3 ms; 32.2 ms copying
   * (30 ms more) slows the copy to a tenth, 5 MB/s. */
  d.disk.latency_before_us = 2200;
  d.disk.latency_copying_us = 32200;
  vms_estimate_run (&d.disk, 1, &memory, &link, &params, &e);
  assert_int_equal (e.guest_latency_ms, 3);
  assert_near (e.replication_rate, 5 * MB, 1, "a tenth");

  /* Never below the controller's floor (1 MiB/s). */
  d.disk.latency_copying_us = 2200 + 3000 * 1000.0;
  vms_estimate_run (&d.disk, 1, &memory, &link, &params, &e);
  assert_near (e.replication_rate, 1024 * 1024, 1, "the floor");

  /* A guest that wrote too little to tell: no recommendation. */
  d.disk.latency_before_us = 0;
  vms_estimate_run (&d.disk, 1, &memory, &link, &params, &e);
  assert_int_equal (e.guest_latency_ms, 0);
  assert_near (e.background_s, 10, 1e-9, "unknown: unslowed");
}

/* The guest fills holes as the background copy runs: 1000 MB of data
 * copied at 100 MB/s, growing by 10 MB/s halfway through the data.  The
 * frontier reaches that place after half the copy, so the copy sends
 * 5 MB/s x T more: T = 1000 / (100 - 5) = 10.526 s, sending 1052.6 MB. */
static void
test_hole_filling (void **state)
{
  LinearDisk d;
  VmsEstimateMemory memory = { 0, 0 };
  VmsEstimateLink link = { 100 * MB, 0 };
  VmsEstimateParams params;
  VmsEstimate e;

  exact_params (&params);
  linear_disk (&d, "vd0", 1000 * MB, 0, 10 * GB);
  d.disk.growth_rate = 10 * MB;
  d.disk.growth_position = 0.5;
  vms_estimate_run (&d.disk, 1, &memory, &link, &params, &e);
  assert_near (e.background_s, 1000 / 95.0, 1e-9, "background");
  assert_near (e.background_bytes, 1000 * MB + 5 * MB * 1000 / 95.0, 1,
               "sent");
  /* Offline the guest does not write: 10 s. */
  assert_near (e.offline_s, 10, 1e-9, "offline");

  /* Growth at the start of the data is behind the frontier at once: the
   * rounds send it, not the background copy. */
  d.disk.growth_position = 0;
  vms_estimate_run (&d.disk, 1, &memory, &link, &params, &e);
  assert_near (e.background_s, 10, 1e-9, "growth behind");

  /* Never more than the holes: a 1010 MB disk has 10 MB of them, so
   * 1010 MB at 100 MB/s. */
  d.disk.growth_position = 0.5;
  d.disk.size = (guint64)(1010 * MB);
  vms_estimate_run (&d.disk, 1, &memory, &link, &params, &e);
  assert_near (e.background_s, 10.1, 1e-9, "capped by the holes");
  assert_near (e.background_bytes, 1010 * MB, 1, "sent, capped");
}

/* Rounds whose sizes vary: the guest writing 10 MB/s over 100 MB/s gives
 * rounds of 100 MB (1 s) and 10 MB (0.1 s).  With a relative standard
 * deviation of 0.5, round 1 already holds 16 MB or less with probability
 * Phi((16/100 - 1) / 0.5) = Phi(-1.68) = 0.04648, and ends the rounds:
 * they take 1 + (1 - 0.04648) 0.1 = 1.09535 s, and the last one
 * 0.04648 x 1 + 0.95352 x 0.1 = 0.14183 s, expected. */
static void
test_round_noise (void **state)
{
  LinearDisk d;
  VmsEstimateMemory memory = { 0, 0 };
  VmsEstimateLink link = { 100 * MB, 0 };
  VmsEstimateParams params;
  VmsEstimate e;

  exact_params (&params);
  linear_disk (&d, "vd0", GB, 10 * MB, 10 * GB);
  vms_estimate_run (&d.disk, 1, &memory, &link, &params, &e);
  assert_near (e.rounds_s, 1.1, 1e-9, "no noise");
  assert_near (e.last_round_s, 0.1, 1e-9, "no noise, last");
  assert_near (e.rounds_expected, 2, 1e-9, "no noise, rounds");

  params.round_noise = 0.5;
  vms_estimate_run (&d.disk, 1, &memory, &link, &params, &e);
  assert_int_equal (e.n_rounds, 2);
  assert_near (e.rounds_s, 1.09535, 1e-4, "expected rounds time");
  assert_near (e.last_round_s, 0.14183, 1e-4, "expected last round");
  assert_near (e.rounds_expected, 1.95352, 1e-4, "expected rounds");
  /* The last round in the downtime: 10 MB/s x 0.14183 s. */
  assert_near (e.final_bytes_pause, 1.4183 * MB, 200, "final round");
}

static void
test_group_order (void **state)
{
  const double totals[] = { 30, 10, 20 };
  guint order[3];

  assert_near (vms_estimate_group_order (totals, 3, order), 60, 0, "sum");
  assert_int_equal (order[0], 1);
  assert_int_equal (order[1], 2);
  assert_int_equal (order[2], 0);
  assert_near (vms_estimate_group_order (totals, 0, order), 0, 0, "empty");
}

/* migrate's default ends the rounds by time: a round that copies within
 * converge_s at the background copy's rate.  The guest of
 * test_writing_vm_converges with 0.05 s (5 MB at 100 MB/s): its 10 MB
 * round 2 does not end them, its 1 MB round 3 does. */
static void
test_converge_by_time (void **state)
{
  LinearDisk d;
  VmsEstimateMemory memory = { 100 * MB, 0 };
  VmsEstimateLink link = { 100 * MB, 0 };
  VmsEstimateParams params;
  VmsEstimate e;

  exact_params (&params);
  params.converge_s = 0.05;
  linear_disk (&d, "vd0", GB, 10 * MB, 10 * GB);
  vms_estimate_run (&d.disk, 1, &memory, &link, &params, &e);
  assert_int_equal (e.n_rounds, 3);
  assert_near (e.round_bytes[2], 1 * MB, 1, "round 3");
  assert_true (e.disks_converge);
}

/* --final-sync auto: after round 1 (100 MB the guest wrote in 10 s), a
 * final round of 10 MB/s over the RAM's 1 s at 100 MB/s, 0.1 s plus
 * 0.03 s, does not fit 0.055 s: mirror, the rounds end.  The mirror's
 * catch-up holds what the guest wrote during round 1 (10 MB, 0.1 s);
 * the RAM (100 MB) crosses at what the mirror's 10 MB/s leave, 90 MB/s.
 * An idle guest is left to pause, with its figures. */
static void
test_auto_final_sync (void **state)
{
  LinearDisk d;
  VmsEstimateMemory memory = { 100 * MB, 0 };
  VmsEstimateLink link = { 100 * MB, 0 };
  VmsEstimateParams params;
  VmsEstimate e;

  exact_params (&params);
  linear_disk (&d, "vd0", GB, 10 * MB, 10 * GB);
  vms_estimate_run (&d.disk, 1, &memory, &link, &params, &e);
  assert_true (e.auto_mirror);
  assert_int_equal (e.auto_rounds, 1);
  assert_near (e.total_auto_s, 10 + 1 + 0.1 + 100.0 / 90, 1e-6, "auto total");
  assert_near (e.downtime_auto_s, 0, 1e-9, "auto downtime");
  /* The explicit modes keep all their rounds. */
  assert_int_equal (e.n_rounds, 2);

  linear_disk (&d, "vd0", GB, 0, 10 * GB);
  vms_estimate_run (&d.disk, 1, &memory, &link, &params, &e);
  assert_false (e.auto_mirror);
  assert_near (e.total_auto_s, e.total_pause_s, 1e-9, "auto as pause");
  assert_near (e.downtime_auto_s, e.downtime_pause_s, 1e-9,
               "auto downtime as pause");
}

/* migrate caps the RAM at a share of the link, and lifts the cap when the
 * RAM stops shrinking under it, 5 s after the first pass at the
 * earliest.  200 MB, nothing dirtied, at 0.75 of 100 MB/s: 2.667 s.
 * 100 MB dirtied at 80 MB/s: the first pass (1.333 s) leaves all of it;
 * from 6.333 s on at 100 MB/s, passes of 1, 0.8, ... 0.328 s leave 80,
 * 64, ... 26.2 MB, below the 0.3 s limit's 30 MB. */
static void
test_ram_cap (void **state)
{
  VmsEstimateMemory memory = { 200 * MB, 0 };
  VmsEstimateLink link = { 100 * MB, 0 };
  VmsEstimateParams params;
  VmsEstimate e;

  exact_params (&params);
  params.ram_link_share = 0.75;
  vms_estimate_run (NULL, 0, &memory, &link, &params, &e);
  assert_near (e.memory_s, 200.0 / 75, 1e-9, "capped pass");

  memory = (VmsEstimateMemory){ 100 * MB, 80 * MB };
  params.max_downtime_s = 0.3;
  vms_estimate_run (NULL, 0, &memory, &link, &params, &e);
  assert_true (e.memory_converges);
  assert_int_equal (e.memory_passes, 7);
  assert_near (e.memory_s, 100.0 / 75 + 5 + 5 * (1 - pow (0.8, 6)), 1e-6,
               "cap lifted");
}

/* Under the cap QEMU waits out its 0.1 s period however little is left,
 * and migrate looks at the RAM every 5 s from the end of the first pass.
 * 100 MB dirtied at 60 MB/s under a 75 MB/s cap: passes of 100 x 0.8^k
 * MB shrink until 6.87 MB take the 0.1 s period and leave 6 MB, which
 * the next leaves again: the RAM stopped shrinking 5.08 s after the
 * first pass (1.333 s), so the second look lifts the cap, at 11.333 s.
 * At 100 MB/s, with no period to wait, passes of 0.06 and 0.036 s leave
 * 2.16 MB, under the 0.03 s limit's 3 MB. */
static void
test_ram_cap_looks (void **state)
{
  VmsEstimateMemory memory = { 100 * MB, 60 * MB };
  VmsEstimateLink link = { 100 * MB, 0 };
  VmsEstimateParams params;
  VmsEstimate e;

  exact_params (&params);
  params.ram_link_share = 0.75;
  params.min_memory_pass_s = 0.1;
  params.max_downtime_s = 0.03;
  vms_estimate_run (NULL, 0, &memory, &link, &params, &e);
  assert_true (e.memory_converges);
  assert_int_equal (e.memory_passes, 16);
  assert_near (e.memory_s, 100.0 / 75 + 10 + 0.06 + 0.036, 1e-6,
               "lifted at the second look");

  /* QEMU rates the link by the last pass: dirtied at 18 MB/s, passes of
   * 1.333, 0.32 and 0.1 s leave 24, 5.76 and 1.8 MB; the last sent 5.76
   * MB in its 0.1 s, so 0.03 s fit 1.728 MB, not 1.8.  The next 0.1 s
   * leaves 1.8 MB again, and the first look lifts the cap at 6.333 s; at
   * 100 MB/s the 1.8 MB take 0.018 s and leave 0.324 MB. */
  memory.dirty_rate = 18 * MB;
  vms_estimate_run (NULL, 0, &memory, &link, &params, &e);
  assert_true (e.memory_converges);
  assert_int_equal (e.memory_passes, 5);
  assert_near (e.memory_s, 100.0 / 75 + 5 + 0.018, 1e-6,
               "no fit under the cap");
  assert_near (e.downtime_pause_s, 0.324 * MB / (100 * MB), 1e-9, "RAM left");
}

/* QEMU 7.2's multifd charges its rate limit whole 128-page packets
 * (525632 bytes with the header) and checks it after each: a period
 * (0.1 s) sends packets until its share is passed.  So 5.26 MB/s at
 * least, and 3 packets a period under a 15 MB/s cap.  Compressed to
 * 50 % over a 10 MB/s link, 100 MB of RAM under migrate's cap (7.5
 * MB/s of the link, 15 MB/s before compression) crosses at 15.77 MB/s,
 * not 15, below the link's 20. */
static void
test_multifd_cap (void **state)
{
  VmsEstimateMemory memory = { 100 * MB, 0, 0.5, 400 * MB };
  VmsEstimateLink link = { 10 * MB, 0 };
  VmsEstimateParams params;
  VmsEstimate e;

  assert_near (vms_estimate_multifd_rate (0), 5256320, 1e-3, "floor");
  assert_near (vms_estimate_multifd_rate (3.3 * 1024 * 1024), 5256320, 1e-3,
               "under a packet a period");
  assert_near (vms_estimate_multifd_rate (15 * MB), 3 * 5256320, 1e-3,
               "three packets");
  assert_near (vms_estimate_multifd_rate (10 * 525632), 2 * 5256320, 1e-3,
               "a period of exactly 1 packet sends 2");

  exact_params (&params);
  params.ram_link_share = 0.75;
  vms_estimate_run (NULL, 0, &memory, &link, &params, &e);
  assert_true (e.compress);
  assert_near (e.memory_s, 100 * MB / (3 * 5256320), 1e-9,
               "compressed under the cap");
}

/* A guest that rewrites the same pages: 2 MB distinct in 1 s, 5 MB in
 * 5 s (1 MB/s), so 2 + 0.75 (t - 1) MB in t s.  100 MB at 10 MB/s: the
 * first pass (10 s) leaves 8.75 MB, the second (0.875 s) 1.75 MB, under
 * the 0.3 s limit's 3 MB.  At 2 MB/s throughout it would have taken
 * passes of 10, 2 and 0.4 s. */
static void
test_ram_curve (void **state)
{
  VmsEstimateMemory memory = { 100 * MB, 2 * MB };
  VmsEstimateLink link = { 10 * MB, 0 };
  VmsEstimateParams params;
  VmsEstimate e;

  exact_params (&params);
  params.max_downtime_s = 0.3;
  memory.dirty_long_rate = 1 * MB;
  memory.dirty_long_s = 5;
  vms_estimate_run (NULL, 0, &memory, &link, &params, &e);
  assert_int_equal (e.memory_passes, 2);
  assert_near (e.memory_s, 10.875, 1e-9, "memory with the curve");
  assert_near (e.downtime_pause_s, 0.175, 1e-9, "RAM left");

  memory.dirty_long_s = 0;
  vms_estimate_run (NULL, 0, &memory, &link, &params, &e);
  assert_int_equal (e.memory_passes, 3);
  assert_near (e.memory_s, 12.4, 1e-9, "memory at the 1 s rate");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_dirty_curve),
    cmocka_unit_test (test_idle_vm),
    cmocka_unit_test (test_writing_vm_converges),
    cmocka_unit_test (test_not_converging_needs_backpressure),
    cmocka_unit_test (test_memory_auto_converge),
    cmocka_unit_test (test_memory_passes),
    cmocka_unit_test (test_compression),
    cmocka_unit_test (test_two_disks),
    cmocka_unit_test (test_seed_device),
    cmocka_unit_test (test_disk_rates),
    cmocka_unit_test (test_replication_backpressure),
    cmocka_unit_test (test_hole_filling),
    cmocka_unit_test (test_round_noise),
    cmocka_unit_test (test_group_order),
    cmocka_unit_test (test_converge_by_time),
    cmocka_unit_test (test_auto_final_sync),
    cmocka_unit_test (test_ram_cap),
    cmocka_unit_test (test_ram_curve),
    cmocka_unit_test (test_ram_cap_looks),
    cmocka_unit_test (test_multifd_cap),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
