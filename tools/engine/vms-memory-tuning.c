/* vmshift engine: QEMU's memory pre-copy kept converging.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * QEMU switches over once it expects the RAM left to cross within its
 * downtime-limit.  A limit derived from a 100 ms objective can be below
 * what a guest that keeps dirtying RAM ever allows, and QEMU then copies
 * rounds forever; a RAM capped below the link (to keep its queues empty
 * at the switchover) can be too slow for such a guest as well.  The cap
 * widens to the link's rest first, then goes, then the limit doubles, each step
 * after QEMU had its rounds and its time at the one before, up to a cap; the
 * report shows the objective missed rather than a migration that does not end.
 * Whether the RAM left shrinks is judged from single looks at it, which
 * land anywhere in a round; a step off our cap is also taken, more
 * surely, when the guest dirties RAM about as fast as the cap lets it
 * cross.
 */
#include "vms-memory-tuning.h"
#include "vms-estimate-model.h"

void
vms_memory_tuning_init (VmsMemoryTuning *tuning, int limit_ms, int objective_ms,
                        gboolean bandwidth_fixed, gboolean capped,
                        guint64 wide_bandwidth, gint64 now_us)
{
  tuning->started_us = now_us;
  tuning->bandwidth_fixed = bandwidth_fixed || capped;
  tuning->capped = capped;
  tuning->wide_bandwidth = capped ? wide_bandwidth : 0;
  tuning->limit_ms = limit_ms;
  tuning->cap_ms = MAX (objective_ms, VMS_MEMORY_TUNING_MIN_CAP_MS);
  tuning->rounds_at = 0;
  tuning->remaining_at = 0;
  tuning->transferred_at = 0;
  tuning->changed_us = now_us;
}

void
vms_memory_tuning_uncap (VmsMemoryTuning *tuning)
{
  tuning->capped = FALSE;
  tuning->wide_bandwidth = 0;
  tuning->bandwidth_fixed = TRUE;
}

void
vms_memory_tuning_stop_raising (VmsMemoryTuning *tuning, int limit_ms)
{
  tuning->limit_ms = limit_ms;
  tuning->cap_ms = limit_ms;
}

void
vms_memory_tuning_restart (VmsMemoryTuning *tuning, gint64 now_us)
{
  tuning->rounds_at = 0;
  tuning->remaining_at = 0;
  tuning->transferred_at = 0;
  tuning->changed_us = now_us;
}

static void
look_from (VmsMemoryTuning *tuning, const VmsQemuMigrationInfo *info,
           gint64 now_us)
{
  tuning->rounds_at = info->dirty_sync_count;
  tuning->remaining_at = info->ram_remaining;
  tuning->transferred_at = info->ram_transferred;
  tuning->changed_us = now_us;
}

/* Under a cap of ours (whether the next step widens it or lifts it),
 * the guest dirtied RAM nearly as fast as it was sent since the last
 * change: QEMU's dirty rate is its last round's, the rate sent is
 * averaged over all the rounds since.  (Seen over 50 Mbit/s with a
 * mirror: the cap at a quarter of the link, a few hundred KiB left
 * swinging from round to round, and 13 s of rounds, with QEMU's
 * auto-converge slowing the vCPUs by 70 %, before a look happened to
 * land on a RAM left that did not look smaller.) */
static gboolean
dirties_as_fast_as_sent (VmsMemoryTuning *tuning,
                         const VmsQemuMigrationInfo *info, gint64 now_us)
{
  double dirty_rate = (double)info->dirty_pages_rate * info->page_size;
  double sent_rate;

  if (!tuning->capped || now_us <= tuning->changed_us
      || info->ram_transferred <= tuning->transferred_at)
    return FALSE;
  sent_rate = (info->ram_transferred - tuning->transferred_at)
              * (double)G_USEC_PER_SEC / (now_us - tuning->changed_us);
  return dirty_rate >= sent_rate * VMS_MEMORY_TUNING_DIRTY_SHARE;
}

/* The RAM left is within what the guest dirties in one of QEMU's
 * shortest rounds (its rate limit period, which the estimate's model
 * also counts on): as small as it gets.  Looks
 * that land lower there are not progress.  (Seen over 50 Mbit/s: 0 to
 * a few hundred KiB left for 7 s while QEMU, its rate estimate taken
 * over nearly nothing sent, expected 99 ms and did not switch over.) */
static gboolean
at_floor (const VmsQemuMigrationInfo *info)
{
  double per_round = (double)info->dirty_pages_rate * info->page_size
                     * VMS_ESTIMATE_QEMU_PERIOD_S;

  return info->ram_remaining <= per_round;
}

/* QEMU had its rounds and its time since the last change, and still
 * expects more than its limit. */
static gboolean
not_converging (VmsMemoryTuning *tuning, const VmsQemuMigrationInfo *info,
                gint64 now_us)
{
  /* The first round sends all RAM: nothing is known of convergence
   * before it ends. */
  if (info->status != VMS_QEMU_MIGRATION_ACTIVE || info->dirty_sync_count < 2)
    return FALSE;
  if (tuning->rounds_at == 0)
    {
      look_from (tuning, info, now_us);
      return FALSE;
    }
  if (info->dirty_sync_count < tuning->rounds_at + VMS_MEMORY_TUNING_WAIT_ROUNDS
      || now_us - tuning->changed_us < VMS_MEMORY_TUNING_WAIT_US)
    return FALSE;
  /* Still shrinking: it gets there by itself. */
  if (!dirties_as_fast_as_sent (tuning, info, now_us) && !at_floor (info)
      && info->ram_remaining < tuning->remaining_at * 0.9)
    {
      look_from (tuning, info, now_us);
      return FALSE;
    }
  /* QEMU expects to fit its limit: it switches over at its next check. */
  return info->expected_downtime_ms < 0
         || info->expected_downtime_ms > tuning->limit_ms;
}

VmsMemoryTuningStep
vms_memory_tuning_next (VmsMemoryTuning *tuning,
                        const VmsQemuMigrationInfo *info, gint64 now_us,
                        guint64 *bandwidth, int *limit_ms)
{
  if ((!tuning->capped && tuning->limit_ms >= tuning->cap_ms)
      || !not_converging (tuning, info, now_us))
    return VMS_MEMORY_TUNING_KEEP;
  look_from (tuning, info, now_us);
  /* Over a link with deep queues an unlimited QEMU queues seconds of RAM
   * there; the link's rest bounds that to one burst. */
  if (tuning->capped && tuning->wide_bandwidth)
    {
      *bandwidth = tuning->wide_bandwidth;
      tuning->wide_bandwidth = 0;
      return VMS_MEMORY_TUNING_WIDEN;
    }
  if (tuning->capped)
    {
      tuning->capped = FALSE;
      return VMS_MEMORY_TUNING_UNCAP;
    }
  tuning->limit_ms = MIN (tuning->limit_ms * 2, tuning->cap_ms);
  *limit_ms = tuning->limit_ms;
  return VMS_MEMORY_TUNING_RAISE;
}

gboolean
vms_memory_tuning_bandwidth (VmsMemoryTuning *tuning,
                             const VmsQemuMigrationInfo *info, gint64 now_us,
                             guint64 *bandwidth)
{
  gint64 spent_us = now_us - tuning->started_us;
  double rate;

  if (tuning->bandwidth_fixed || info->status != VMS_QEMU_MIGRATION_ACTIVE
      || info->dirty_sync_count < 2 || spent_us <= 0)
    return FALSE;
  tuning->bandwidth_fixed = TRUE;
  rate = info->ram_transferred * (double)G_USEC_PER_SEC / spent_us;
  /* A round that short measured the start-up, not the link. */
  if (spent_us < G_USEC_PER_SEC || rate <= 0)
    return FALSE;
  tuning->capped = TRUE;
  look_from (tuning, info, now_us);
  *bandwidth
      = MAX ((guint64)(rate * VMS_MEMORY_TUNING_LINK_SHARE), 1024 * 1024);
  /* That round had what the disks left of the link; a cap at the floor
   * may already be above it. */
  tuning->wide_bandwidth = rate > *bandwidth ? (guint64)rate : 0;
  return TRUE;
}
