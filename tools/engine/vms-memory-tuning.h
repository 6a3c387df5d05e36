/* vmshift engine: QEMU's memory pre-copy kept converging: the downtime
 * limit raised, step by step, for a guest that dirties RAM faster than
 * the objective allows, instead of a migration that never ends.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

#include "vms-qemu-migration.h"

G_BEGIN_DECLS

/* A raise waits this long and this many of QEMU's RAM rounds at the
 * limit before: QEMU must have had a fair try. */
#define VMS_MEMORY_TUNING_WAIT_US (5 * G_USEC_PER_SEC)
#define VMS_MEMORY_TUNING_WAIT_ROUNDS 2
/* However small the objective, QEMU may be given this much (its own
 * default) before the migration is left to --memory-timeout. */
#define VMS_MEMORY_TUNING_MIN_CAP_MS 300

/* RAM is capped at this fraction of the link's rate.  QEMU sends a tenth
 * of a second's worth of its bandwidth at once, then waits: at the
 * switchover, up to that burst still crosses the link, on average half of
 * it (VMS_MEMORY_TUNING_QUEUE_MS), inside the downtime. */
#define VMS_MEMORY_TUNING_LINK_SHARE 0.75
#define VMS_MEMORY_TUNING_QUEUE_MS                                             \
  ((int)(100 * VMS_MEMORY_TUNING_LINK_SHARE / 2))

/* A guest that dirties RAM at this fraction of the rate it is sent at
 * leaves each round this fraction of the one before: some 25 rounds
 * from a first pass's leftovers to a 30 ms limit, minutes of pre-copy.
 * Such a RAM under our cap gets the link's rest after its fair try,
 * whatever a look at the RAM left says (it swings within a round). */
#define VMS_MEMORY_TUNING_DIRTY_SHARE 0.8

typedef struct
{
  gint64 started_us;        /* monotonic: the memory migration started */
  gboolean bandwidth_fixed; /* no cap to set: --bandwidth given, a unix
                               socket, or one set already */
  gboolean capped;          /* RAM runs under a cap of ours */
  guint64 wide_bandwidth;   /* bytes/s: the RAM with all the link the
                               disks leave it, the cap's next step; 0 when
                               unknown, not above the cap, or taken */
  int limit_ms;             /* QEMU's downtime-limit now */
  int cap_ms;               /* the most it is raised to */
  guint64 rounds_at;        /* QEMU's dirty-sync-count at the last change */
  guint64 remaining_at;     /* the RAM left then */
  guint64 transferred_at;   /* the RAM sent by then */
  gint64 changed_us;        /* monotonic time of the last change */
} VmsMemoryTuning;

/* limit_ms is what was set at the start, objective_ms --max-downtime;
 * bandwidth_fixed when no cap is to be set later, capped when the RAM
 * starts under a cap of ours, wide_bandwidth what it may widen to (0:
 * straight to no cap). */
void vms_memory_tuning_init (VmsMemoryTuning *tuning, int limit_ms,
                             int objective_ms, gboolean bandwidth_fixed,
                             gboolean capped, guint64 wide_bandwidth,
                             gint64 now_us);

/* Once QEMU's first RAM round is over: TRUE and *bandwidth (bytes/s) to
 * cap the RAM a little below the rate that round reached, the link's.
 * Unlimited, QEMU fills the socket's and the network's queues, and what
 * waits in them at the switchover is sent inside the downtime (hundreds
 * of ms on a 100 Mbit/s link); its own rate estimate, and so the
 * switchover decision, is also off by them. */
gboolean vms_memory_tuning_bandwidth (VmsMemoryTuning *tuning,
                                      const VmsQemuMigrationInfo *info,
                                      gint64 now_us, guint64 *bandwidth);

/* The RAM's cap was lifted (a group's release): no bandwidth step is
 * left, only raises. */
void vms_memory_tuning_uncap (VmsMemoryTuning *tuning);

/* QEMU's limit stays at limit_ms from now on: no raise past it. */
void vms_memory_tuning_stop_raising (VmsMemoryTuning *tuning, int limit_ms);

/* QEMU's limit is tuning's again after it was held lower (a group
 * member's wait): its rounds so far say nothing of convergence. */
void vms_memory_tuning_restart (VmsMemoryTuning *tuning, gint64 now_us);

typedef enum
{
  VMS_MEMORY_TUNING_KEEP,  /* QEMU is converging, or had no fair try */
  VMS_MEMORY_TUNING_WIDEN, /* cap the RAM at *bandwidth, all the link the
                              disks leave: a burst of it still waits in
                              the link's queue at the switchover, but no
                              more */
  VMS_MEMORY_TUNING_UNCAP, /* lift our cap: the RAM needs more than the
                              link measured (it was not the bottleneck)
                              more than the switchover needs empty queues */
  VMS_MEMORY_TUNING_RAISE, /* raise the downtime limit to *limit_ms */
} VmsMemoryTuningStep;

/* After a look at the source's migration, what a memory that does not
 * converge needs next: first the link's rest, then no cap, then more
 * downtime.  Each step waits for QEMU's rounds and time at the one
 * before. */
VmsMemoryTuningStep vms_memory_tuning_next (VmsMemoryTuning *tuning,
                                            const VmsQemuMigrationInfo *info,
                                            gint64 now_us, guint64 *bandwidth,
                                            int *limit_ms);

G_END_DECLS
