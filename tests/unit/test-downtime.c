/* Unit tests: the downtime budget (tools/engine/vms-downtime.c) and the
 * raises of QEMU's limit (tools/engine/vms-memory-tuning.c).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vms-downtime.h"
#include "vms-memory-tuning.h"

#define MS G_GINT64_CONSTANT (1000) /* microseconds */

/* The destination's clock runs 7 s ahead of the source's. */
static void
test_clock_offset (void **state)
{
  VmsDowntime downtime;
  gint64 offset, error;
  const gint64 ahead = 7000 * MS;

  vms_downtime_init (&downtime, 100);
  assert_false (vms_downtime_clock_offset (&downtime, &offset, &error));
  /* An event read 3 ms after it happened only bounds it from below. */
  vms_downtime_clock_event (&downtime, 1000 * MS + ahead, 1003 * MS);
  assert_false (vms_downtime_clock_offset (&downtime, &offset, &error));
  /* A command sent at 2000 ms, answered at 2004 ms, its event in between. */
  vms_downtime_clock_command (&downtime, 2001 * MS + ahead, 2000 * MS,
                              2004 * MS);
  assert_true (vms_downtime_clock_offset (&downtime, &offset, &error));
  assert_true (offset >= ahead - 3 * MS && offset <= ahead + 1 * MS);
  assert_true (error <= 2 * MS);
  /* An event read at once narrows it further. */
  vms_downtime_clock_event (&downtime, 3000 * MS + ahead, 3000 * MS);
  assert_true (vms_downtime_clock_offset (&downtime, &offset, &error));
  assert_true (offset >= ahead && offset <= ahead + 1 * MS);
  /* Missing stamps change nothing. */
  vms_downtime_clock_command (&downtime, -1, 10, 20);
  vms_downtime_clock_event (&downtime, -1, 10);
  assert_true (vms_downtime_clock_offset (&downtime, &offset, &error));
  assert_true (offset >= ahead && offset <= ahead + 1 * MS);
}

static void
moments (VmsDowntime *downtime, gint64 dest_ahead)
{
  downtime->stop_us = 10000 * MS;
  downtime->pre_switchover_us = 10004 * MS;
  downtime->device_us = 10010 * MS;
  downtime->completed_us = 10050 * MS;
  downtime->dest_completed_us = 10055 * MS + dest_ahead;
  downtime->resume_us = 10062 * MS + dest_ahead;
  downtime->resume_received_us = 10063 * MS;
}

static void
test_parts (void **state)
{
  VmsDowntime downtime;
  VmsDowntimeParts parts;
  const gint64 ahead = -2500 * MS;

  vms_downtime_init (&downtime, 100);
  moments (&downtime, ahead);
  vms_downtime_clock_command (&downtime, 5000 * MS + ahead, 5000 * MS,
                              5000 * MS);
  vms_downtime_parts (&downtime, FALSE, &parts);
  assert_int_equal (parts.total_ms, 62);
  assert_int_equal (parts.stop_ms, 4);
  assert_int_equal (parts.vmshift_ms, 6);
  assert_int_equal (parts.ram_device_ms, 40);
  assert_int_equal (parts.activation_ms, 12);
  assert_false (parts.one_clock);
  assert_int_equal (parts.stop_ms + parts.vmshift_ms + parts.ram_device_ms
                        + parts.activation_ms,
                    parts.total_ms);
  assert_null (vms_downtime_describe_miss (&parts, 100));

  /* Left paused: ready when loaded. */
  vms_downtime_parts (&downtime, TRUE, &parts);
  assert_int_equal (parts.total_ms, 55);
  assert_int_equal (parts.activation_ms, 5);
}

/* Without a clock sample the source's reading of RESUME stands in, an
 * upper bound; without it either, nothing is claimed. */
static void
test_parts_one_clock (void **state)
{
  VmsDowntime downtime;
  VmsDowntimeParts parts;

  vms_downtime_init (&downtime, 100);
  moments (&downtime, 3600 * 1000 * MS);
  vms_downtime_parts (&downtime, FALSE, &parts);
  assert_true (parts.one_clock);
  assert_int_equal (parts.total_ms, 63);
  assert_int_equal (parts.activation_ms, 13);

  vms_downtime_parts (&downtime, TRUE, &parts);
  assert_int_equal (parts.total_ms, -1);
  assert_int_equal (parts.activation_ms, -1);
  assert_int_equal (parts.stop_ms, 4);
  assert_null (vms_downtime_describe_miss (&parts, 10));

  vms_downtime_reset_moments (&downtime);
  vms_downtime_parts (&downtime, FALSE, &parts);
  assert_int_equal (parts.total_ms, -1);
  assert_int_equal (parts.vmshift_ms, -1);
}

static void
test_missed (void **state)
{
  VmsDowntime downtime;
  VmsDowntimeParts parts;
  g_autofree char *text = NULL;

  vms_downtime_init (&downtime, 30);
  moments (&downtime, 0);
  vms_downtime_clock_command (&downtime, 500 * MS, 500 * MS, 500 * MS);
  vms_downtime_parts (&downtime, FALSE, &parts);
  text = vms_downtime_describe_miss (&parts, 30);
  assert_non_null (text);
  assert_non_null (strstr (text, "missed by 32 ms"));
  assert_non_null (strstr (text, "RAM tail and device state (40 ms)"));
}

static void
test_qemu_limit (void **state)
{
  assert_int_equal (vms_downtime_qemu_limit (100, 35), 65);
  assert_int_equal (vms_downtime_qemu_limit (100, 500),
                    VMS_DOWNTIME_MIN_QEMU_LIMIT_MS);
  assert_int_equal (vms_downtime_qemu_limit (1, 0),
                    VMS_DOWNTIME_MIN_QEMU_LIMIT_MS);
  assert_int_equal (vms_downtime_qemu_limit (2000, -5), 2000);
  assert_int_equal (vms_downtime_disk_share_ms (100), 55);
  assert_true (vms_downtime_disk_share_ms (1) < 0);
}

#define assert_keep(step) assert_int_equal (step, VMS_MEMORY_TUNING_KEEP)
#define assert_raise(step) assert_int_equal (step, VMS_MEMORY_TUNING_RAISE)

static VmsQemuMigrationInfo
active (guint64 rounds, gint64 expected_ms)
{
  VmsQemuMigrationInfo info = { 0 };

  info.status = VMS_QEMU_MIGRATION_ACTIVE;
  info.dirty_sync_count = rounds;
  info.ram_remaining = 32 * 1024 * 1024;
  info.expected_downtime_ms = expected_ms;
  return info;
}

static void
test_limit_raised (void **state)
{
  VmsMemoryTuning tuning;
  VmsQemuMigrationInfo info;
  gint64 now = 1000 * G_USEC_PER_SEC;
  guint64 bandwidth_step = 0;
  int limit = 0;

  vms_memory_tuning_init (&tuning, 65, 100, FALSE, FALSE, 0, now);
  /* The first RAM round says nothing. */
  info = active (1, 900);
  assert_keep (vms_memory_tuning_next (
      &tuning, &info, now + 60 * G_USEC_PER_SEC, &bandwidth_step, &limit));
  /* The second starts the watch. */
  info = active (2, 900);
  now += 60 * G_USEC_PER_SEC;
  assert_keep (
      vms_memory_tuning_next (&tuning, &info, now, &bandwidth_step, &limit));
  /* Rounds but not the time, the time but not the rounds: not yet. */
  info = active (9, 900);
  assert_keep (vms_memory_tuning_next (&tuning, &info, now + MS,
                                       &bandwidth_step, &limit));
  info = active (3, 900);
  assert_keep (vms_memory_tuning_next (&tuning, &info,
                                       now + VMS_MEMORY_TUNING_WAIT_US,
                                       &bandwidth_step, &limit));
  /* QEMU expects to fit: it will switch over by itself. */
  info = active (9, 60);
  assert_keep (vms_memory_tuning_next (&tuning, &info,
                                       now + VMS_MEMORY_TUNING_WAIT_US,
                                       &bandwidth_step, &limit));
  info = active (9, 900);
  now += VMS_MEMORY_TUNING_WAIT_US;
  assert_raise (
      vms_memory_tuning_next (&tuning, &info, now, &bandwidth_step, &limit));
  assert_int_equal (limit, 130);
  /* Doubled again after another wait, up to the cap (QEMU's default for
   * a small objective). */
  info = active (11, 900);
  now += VMS_MEMORY_TUNING_WAIT_US;
  assert_raise (
      vms_memory_tuning_next (&tuning, &info, now, &bandwidth_step, &limit));
  assert_int_equal (limit, 260);
  info = active (13, 900);
  now += VMS_MEMORY_TUNING_WAIT_US;
  assert_raise (
      vms_memory_tuning_next (&tuning, &info, now, &bandwidth_step, &limit));
  assert_int_equal (limit, VMS_MEMORY_TUNING_MIN_CAP_MS);
  info = active (15, 900);
  now += VMS_MEMORY_TUNING_WAIT_US;
  assert_keep (
      vms_memory_tuning_next (&tuning, &info, now, &bandwidth_step, &limit));
}

/* A large objective is its own cap; a QEMU past its rounds is left
 * alone. */
static void
test_limit_cap (void **state)
{
  VmsMemoryTuning tuning;
  VmsQemuMigrationInfo info = active (5, 5000);
  guint64 bandwidth_step = 0;
  int limit = 0;

  vms_memory_tuning_init (&tuning, 1200, 1250, FALSE, FALSE, 0, 0);
  assert_keep (
      vms_memory_tuning_next (&tuning, &info, 0, &bandwidth_step, &limit));
  info.dirty_sync_count = 7;
  assert_raise (vms_memory_tuning_next (
      &tuning, &info, VMS_MEMORY_TUNING_WAIT_US, &bandwidth_step, &limit));
  assert_int_equal (limit, 1250);
  info.status = VMS_QEMU_MIGRATION_PRE_SWITCHOVER;
  info.dirty_sync_count = 20;
  vms_memory_tuning_init (&tuning, 65, 100, FALSE, FALSE, 0, 0);
  assert_keep (vms_memory_tuning_next (&tuning, &info,
                                       100 * VMS_MEMORY_TUNING_WAIT_US,
                                       &bandwidth_step, &limit));
}

/* The RAM is capped below the rate of its first round, once; not when
 * the user chose a bandwidth, nor from a round too short to tell. */
static void
test_bandwidth (void **state)
{
  VmsMemoryTuning tuning;
  VmsQemuMigrationInfo info = active (1, -1);
  guint64 bandwidth = 0;

  vms_memory_tuning_init (&tuning, 65, 100, FALSE, FALSE, 0, 0);
  info.ram_transferred = 100 * 1024 * 1024;
  assert_false (vms_memory_tuning_bandwidth (&tuning, &info,
                                             10 * G_USEC_PER_SEC, &bandwidth));
  info.dirty_sync_count = 2;
  assert_true (vms_memory_tuning_bandwidth (&tuning, &info, 10 * G_USEC_PER_SEC,
                                            &bandwidth));
  assert_int_equal (bandwidth,
                    (guint64)(10 * 1024 * 1024 * VMS_MEMORY_TUNING_LINK_SHARE));
  assert_false (vms_memory_tuning_bandwidth (&tuning, &info,
                                             20 * G_USEC_PER_SEC, &bandwidth));

  vms_memory_tuning_init (&tuning, 65, 100, TRUE, FALSE, 0, 0);
  assert_false (vms_memory_tuning_bandwidth (&tuning, &info,
                                             10 * G_USEC_PER_SEC, &bandwidth));
  vms_memory_tuning_init (&tuning, 65, 100, FALSE, FALSE, 0, 0);
  assert_false (vms_memory_tuning_bandwidth (&tuning, &info, G_USEC_PER_SEC / 2,
                                             &bandwidth));
}

/* A memory still shrinking is left to converge by itself. */
static void
test_shrinking_left_alone (void **state)
{
  VmsMemoryTuning tuning;
  VmsQemuMigrationInfo info = active (2, 9000);
  gint64 now = 0;
  guint64 bandwidth_step = 0;
  int limit = 0;

  vms_memory_tuning_init (&tuning, 65, 100, FALSE, FALSE, 0, now);
  assert_keep (
      vms_memory_tuning_next (&tuning, &info, now, &bandwidth_step, &limit));
  info.dirty_sync_count = 4;
  info.ram_remaining = 20 * 1024 * 1024;
  now += VMS_MEMORY_TUNING_WAIT_US;
  assert_keep (
      vms_memory_tuning_next (&tuning, &info, now, &bandwidth_step, &limit));
  /* Then it stops shrinking. */
  info.dirty_sync_count = 6;
  info.ram_remaining = 19 * 1024 * 1024;
  now += VMS_MEMORY_TUNING_WAIT_US;
  assert_raise (
      vms_memory_tuning_next (&tuning, &info, now, &bandwidth_step, &limit));
}

/* A RAM left within one of QEMU's 0.1 s rounds of dirtying does not
 * get smaller than that: a look that lands lower there is no progress,
 * and QEMU, still expecting more than its limit, gets the next step
 * after its fair try. */
static void
test_floor_is_not_shrinking (void **state)
{
  VmsMemoryTuning tuning;
  VmsQemuMigrationInfo info = active (2, 99);
  gint64 now = 0;
  guint64 bandwidth_step = 0;
  int limit = 0;

  vms_memory_tuning_init (&tuning, 28, 100, FALSE, FALSE, 0, now);
  info.page_size = 4096;
  /* 2.2 MiB/s dirtied: 225 KiB a round. */
  info.dirty_pages_rate = 563;
  info.ram_remaining = 200 * 1024;
  assert_keep (
      vms_memory_tuning_next (&tuning, &info, now, &bandwidth_step, &limit));
  info.dirty_sync_count = 6;
  info.ram_remaining = 0;
  now += VMS_MEMORY_TUNING_WAIT_US;
  assert_raise (
      vms_memory_tuning_next (&tuning, &info, now, &bandwidth_step, &limit));

  /* Above the floor, the same drop is progress. */
  vms_memory_tuning_init (&tuning, 28, 100, FALSE, FALSE, 0, 0);
  info = active (2, 99);
  info.page_size = 4096;
  info.dirty_pages_rate = 563;
  info.ram_remaining = 20 * 1024 * 1024;
  assert_keep (
      vms_memory_tuning_next (&tuning, &info, 0, &bandwidth_step, &limit));
  info.dirty_sync_count = 6;
  info.ram_remaining = 10 * 1024 * 1024;
  assert_keep (vms_memory_tuning_next (
      &tuning, &info, VMS_MEMORY_TUNING_WAIT_US, &bandwidth_step, &limit));
}

/* RAM under our cap that does not converge gets the whole link first,
 * then more downtime. */
static void
test_uncap_first (void **state)
{
  VmsMemoryTuning tuning;
  VmsQemuMigrationInfo info = active (2, 9000);
  gint64 now = 0;
  guint64 bandwidth_step = 0;
  int limit = 0;

  vms_memory_tuning_init (&tuning, 65, 100, FALSE, TRUE, 0, now);
  assert_keep (
      vms_memory_tuning_next (&tuning, &info, now, &bandwidth_step, &limit));
  info.dirty_sync_count = 4;
  now += VMS_MEMORY_TUNING_WAIT_US;
  assert_int_equal (
      vms_memory_tuning_next (&tuning, &info, now, &bandwidth_step, &limit),
      VMS_MEMORY_TUNING_UNCAP);
  /* Then a fair try without the cap. */
  info.dirty_sync_count = 5;
  assert_keep (vms_memory_tuning_next (&tuning, &info,
                                       now + VMS_MEMORY_TUNING_WAIT_US,
                                       &bandwidth_step, &limit));
  info.dirty_sync_count = 6;
  now += VMS_MEMORY_TUNING_WAIT_US;
  assert_raise (
      vms_memory_tuning_next (&tuning, &info, now, &bandwidth_step, &limit));
  assert_int_equal (limit, 130);

  /* The cap set after the first round counts as ours too. */
  {
    guint64 bandwidth;

    vms_memory_tuning_init (&tuning, 65, 100, FALSE, FALSE, 0, 0);
    info = active (2, 9000);
    info.ram_transferred = 64 * 1024 * 1024;
    assert_true (vms_memory_tuning_bandwidth (&tuning, &info,
                                              8 * G_USEC_PER_SEC, &bandwidth));
    info.dirty_sync_count = 4;
    assert_int_equal (
        vms_memory_tuning_next (&tuning, &info,
                                8 * G_USEC_PER_SEC + VMS_MEMORY_TUNING_WAIT_US,
                                &bandwidth_step, &limit),
        VMS_MEMORY_TUNING_WIDEN);
    /* All that first round reached, 64 MiB in 8 s. */
    assert_int_equal (bandwidth_step, 8 * 1024 * 1024);
    info.dirty_sync_count = 6;
    assert_int_equal (vms_memory_tuning_next (
                          &tuning, &info,
                          8 * G_USEC_PER_SEC + 2 * VMS_MEMORY_TUNING_WAIT_US,
                          &bandwidth_step, &limit),
                      VMS_MEMORY_TUNING_UNCAP);
  }
}

/* A cap with room above it widens to the link's rest before it goes:
 * unlimited, QEMU would queue seconds of RAM on a link with deep
 * queues. */
static void
test_widen_first (void **state)
{
  VmsMemoryTuning tuning;
  VmsQemuMigrationInfo info = active (2, 9000);
  gint64 now = 0;
  guint64 bandwidth = 0;
  int limit = 0;

  vms_memory_tuning_init (&tuning, 65, 100, FALSE, TRUE, 7 * 1024 * 1024, now);
  assert_keep (
      vms_memory_tuning_next (&tuning, &info, now, &bandwidth, &limit));
  info.dirty_sync_count = 4;
  now += VMS_MEMORY_TUNING_WAIT_US;
  assert_int_equal (
      vms_memory_tuning_next (&tuning, &info, now, &bandwidth, &limit),
      VMS_MEMORY_TUNING_WIDEN);
  assert_int_equal (bandwidth, 7 * 1024 * 1024);
  /* A fair try at the wider cap first. */
  info.dirty_sync_count = 5;
  assert_keep (vms_memory_tuning_next (
      &tuning, &info, now + VMS_MEMORY_TUNING_WAIT_US, &bandwidth, &limit));
  info.dirty_sync_count = 6;
  now += VMS_MEMORY_TUNING_WAIT_US;
  assert_int_equal (
      vms_memory_tuning_next (&tuning, &info, now, &bandwidth, &limit),
      VMS_MEMORY_TUNING_UNCAP);
  info.dirty_sync_count = 8;
  now += VMS_MEMORY_TUNING_WAIT_US;
  assert_raise (
      vms_memory_tuning_next (&tuning, &info, now, &bandwidth, &limit));
  assert_int_equal (limit, 130);

  /* A cap at the 1 MiB/s floor, above the 0.8 MiB/s the first round
   * reached, has no wider step: the next is no cap. */
  vms_memory_tuning_init (&tuning, 65, 100, FALSE, FALSE, 0, 0);
  info = active (2, 9000);
  info.ram_transferred = 8 * 1024 * 1024;
  assert_true (vms_memory_tuning_bandwidth (&tuning, &info, 10 * G_USEC_PER_SEC,
                                            &bandwidth));
  assert_int_equal (bandwidth, 1024 * 1024);
  info.dirty_sync_count = 4;
  assert_int_equal (
      vms_memory_tuning_next (&tuning, &info,
                              10 * G_USEC_PER_SEC + VMS_MEMORY_TUNING_WAIT_US,
                              &bandwidth, &limit),
      VMS_MEMORY_TUNING_UNCAP);

  /* Without a cap of ours there is nothing to widen. */
  vms_memory_tuning_init (&tuning, 65, 100, TRUE, FALSE, 7 * 1024 * 1024, 0);
  info = active (2, 9000);
  assert_keep (vms_memory_tuning_next (&tuning, &info, 0, &bandwidth, &limit));
  info.dirty_sync_count = 4;
  assert_raise (vms_memory_tuning_next (
      &tuning, &info, VMS_MEMORY_TUNING_WAIT_US, &bandwidth, &limit));
}

/* Under a cap with room above it, a first look at 540 KiB left, then,
 * after a fair try at 4.5 MiB/s sent, a look at 300 KiB with the guest
 * dirtying dirty_pages_rate pages per second: the step taken. */
static VmsMemoryTuningStep
step_after_a_low_look (guint64 dirty_pages_rate, guint64 wide,
                       guint64 *bandwidth)
{
  VmsMemoryTuning tuning;
  VmsQemuMigrationInfo info = active (2, 150);
  int limit = 0;

  vms_memory_tuning_init (&tuning, 28, 100, FALSE, TRUE, wide, 0);
  info.page_size = 4096;
  info.ram_remaining = 540 * 1024;
  info.ram_transferred = 100 * 1024 * 1024;
  assert_keep (vms_memory_tuning_next (&tuning, &info, 0, bandwidth, &limit));
  info.dirty_sync_count = 6;
  info.ram_remaining = 300 * 1024;
  info.ram_transferred += 45 * 1024 * 1024 / 2;
  info.dirty_pages_rate = dirty_pages_rate;
  return vms_memory_tuning_next (&tuning, &info, VMS_MEMORY_TUNING_WAIT_US,
                                 bandwidth, &limit);
}

/* The RAM left, looked at once per check, swings within a round: a look
 * that lands low must not pass for shrinking when the guest dirties RAM
 * nearly as fast as the cap sends it (seen on a 100 Mbit/s link: the
 * widening came after 50 rounds in one run, 105 in the next). */
static void
test_widen_when_dirtied_as_fast_as_sent (void **state)
{
  guint64 bandwidth = 0;

  /* 4.4 MiB/s dirtied. */
  assert_int_equal (step_after_a_low_look (1126, 7 * 1024 * 1024, &bandwidth),
                    VMS_MEMORY_TUNING_WIDEN);
  assert_int_equal (bandwidth, 7 * 1024 * 1024);
  /* Half as fast: it shrinks by itself. */
  assert_keep (step_after_a_low_look (563, 7 * 1024 * 1024, &bandwidth));
  /* A cap with no wider step (a mirror's quarter of the link) goes. */
  assert_int_equal (step_after_a_low_look (1126, 0, &bandwidth),
                    VMS_MEMORY_TUNING_UNCAP);
  assert_keep (step_after_a_low_look (563, 0, &bandwidth));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_clock_offset),
    cmocka_unit_test (test_parts),
    cmocka_unit_test (test_parts_one_clock),
    cmocka_unit_test (test_missed),
    cmocka_unit_test (test_qemu_limit),
    cmocka_unit_test (test_limit_raised),
    cmocka_unit_test (test_limit_cap),
    cmocka_unit_test (test_widen_when_dirtied_as_fast_as_sent),
    cmocka_unit_test (test_bandwidth),
    cmocka_unit_test (test_uncap_first),
    cmocka_unit_test (test_widen_first),
    cmocka_unit_test (test_shrinking_left_alone),
    cmocka_unit_test (test_floor_is_not_shrinking),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
