/* vmshift: the estimator's model.  From what was observed of a VM (disk
 * data, how its disks' dirty sets grow, its RAM dirty rate) and of the
 * link, predict each phase of a migration, the downtime in both switchover
 * modes, and recommend a method.  Pure arithmetic: no I/O, so it is tested
 * on synthetic inputs with known answers.  The model is documented in
 * vmshift(1), ESTIMATE MODEL.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* One disk as observed. */
typedef struct
{
  const char *name;
  guint64 size;          /* virtual size */
  guint64 data_bytes;    /* allocated and not known to read as zeroes: what
                            the background copy sends */
  guint n_samples;       /* points of the dirty curve */
  const double *seconds; /* when, since a fresh bitmap was added; ascending */
  const guint64 *dirty;  /* bytes that bitmap held then (distinct blocks:
                            a rewrite of the same block counts once) */
  double write_rate;     /* bytes per second the guest writes, rewrites
                            included (QEMU's blockstats); 0 if unknown */
  double copy_rate;      /* bytes of data per second its background copy
                            moves (holes it passes included); 0: the
                            link's throughput */
  double round_rate;     /* bytes per second a dirty round of it moves;
                            0: copy_rate */
  double growth_rate;    /* bytes per second its data grows by, as the
                            guest writes into holes; 0 if unknown */
  double growth_position; /* where it grows: the share of its data that
                             lies before (0..1), weighted by growth */
  double pace;           /* how fast the guest dirties it while a copy
                            runs, against the window (0..1]: in t seconds
                            of a migration it dirties what the curve has
                            at pace x t; 0: 1 */
  double latency_before_us;  /* what the guest's writes cost it (µs per
                                write, flushes included) with no copy
                                running; 0: unknown (it wrote too little) */
  double latency_copying_us; /* ... while its background copy ran at
                                copy_rate (the worst of a few seconds');
                                0: unknown */
} VmsEstimateDisk;

typedef struct
{
  guint64 ram_bytes; /* what the first RAM pass sends (RAM minus zero
                        pages when known, else the RAM size) */
  double dirty_rate; /* bytes per second the guest dirties in RAM, as
                        distinct pages over 1 s */
  double compress_ratio; /* zstd as QEMU's multifd: bytes out per byte of
                            those pages, 0: not measured */
  double compress_rate;  /* ... bytes in per second on one CPU */
  guint64 ram_size;      /* the guest's RAM: what migrate's --final-sync
                            auto takes the memory to cross (ram_bytes when
                            0) */
  double dirty_long_rate; /* the distinct pages dirtied over dirty_long_s,
                             per second (a guest that rewrites the same
                             pages dirties fewer per second over longer),
                             0: not known */
  double dirty_long_s;
} VmsEstimateMemory;

typedef struct
{
  double throughput; /* bytes per second over the link: RAM, and the
                        disks' copies at most */
  double rtt_s;      /* round-trip time */
} VmsEstimateLink;

typedef struct
{
  guint64 converge_bytes;        /* a round this small ends the rounds ... */
  double converge_s;             /* ... or, when not 0 (migrate's default), one
                                    that copies within this many seconds at the
                                    background copy's rate */
  double final_round_s;          /* --final-sync auto: a final round foreseen to
                                    take more than this chooses mirror, and ends
                                    the rounds (the objective's share for disks) */
  double final_round_overhead_s; /* ... its fixed cost per disk */
  double ram_link_share;         /* RAM capped at this share of the link (less
                                    a mirror's writes), 1: not capped ... */
  double ram_cap_wait_s;         /* ... and the cap lifted when RAM does not
                                    converge under it this long after the first
                                    pass */
  double min_memory_pass_s;      /* the shortest of QEMU's RAM passes under a
                                    cap */
  double not_shrinking;    /* a round >= this x the previous: stop */
  guint max_rounds;        /* hard stop */
  double max_downtime_s;   /* QEMU's downtime limit for RAM */
  double round_overhead_s; /* fixed cost of one round of one disk */
  double switchover_s;     /* fixed part of the downtime (QEMU stops,
                              flushes, the destination activates) */
  double mirror_handover_s; /* ... and a mirror's handover on top */
  double setup_s;          /* fixed cost of a migration outside copying
                              (preflight, exports, replicas, commit,
                              cleanup), not per round */
  double dirty_expire_s;   /* the source host keeps written data this
                              long in its page cache before writing it
                              back (vm.dirty_expire_centisecs) */
  double host_flush_rate;  /* bytes per second the source host writes its
                              page cache back at */
  double writeback_interval_s; /* migrate writes the source's images back
                                  this often during the memory phase */
  double stop_flush_fixed_s;   /* an fdatasync's own cost in QEMU's stop */
  double round_noise;      /* relative standard deviation of a dirty
                              round's size around W (measured); 0: the
                              rounds stop exactly as predicted */
  guint64 seed_capacity;   /* bytes of a seed device, 0: none */
  double seed_rate;        /* bytes per second to write or read it */
  double seed_shipping_s;  /* door to door */
} VmsEstimateParams;

/* vmshift's defaults (as in sync and migrate). */
void vms_estimate_params_init (VmsEstimateParams *params);

/* The same, with how long this host keeps written data in its page
 * cache (the kernel's dirty_expire_centisecs). */
void vms_estimate_params_init_for_host (VmsEstimateParams *params);

typedef enum
{
  VMS_ESTIMATE_NETWORK, /* migrate over the link */
  VMS_ESTIMATE_SEED,    /* seed device first, then the link */
  VMS_ESTIMATE_OFFLINE, /* stop the VM and copy */
} VmsEstimateMethod;

const char *vms_estimate_method_name (VmsEstimateMethod method);

#define VMS_ESTIMATE_MAX_ROUNDS 64

/* QEMU 7.2's rate limit: each period of this may send max-bandwidth's
 * share of it, and is checked only after each send. */
#define VMS_ESTIMATE_QEMU_PERIOD_S 0.1
/* multifd (which --compress uses) sends its pages in packets of 128,
 * and charges the rate limit a whole packet as if not compressed: 512
 * KiB and its 1344-byte header. */
#define VMS_ESTIMATE_MULTIFD_PACKET (128 * 4096 + 1344)

/* Bytes per second QEMU's multifd sends, before compression, under a
 * max-bandwidth of max_bandwidth: whole packets each period until the
 * period's share is passed, so one at least (5.3 MB/s), however low the
 * cap.  (bench/estimate-accuracy, write30-50mbit: capped at 3.3 MiB/s,
 * QEMU sent 5.3 MB/s.) */
double vms_estimate_multifd_rate (double max_bandwidth);

/* Write backpressure as migrate steps it (tools/engine/vms-backpressure.h):
 * no disk held below the floor (bytes/s), and each step aims at rounds
 * that shrink to this fraction of the one before. */
#define VMS_ESTIMATE_BACKPRESSURE_FLOOR (256 * 1024)
#define VMS_ESTIMATE_BACKPRESSURE_SHRINK 0.5

/* RAM backpressure as migrate arms it (QEMU's auto-converge,
 * throttle-trigger-threshold): QEMU slows the vCPUs after every second
 * pass that dirtied more than this percentage of what it sent. */
#define VMS_ESTIMATE_RAM_THROTTLE_THRESHOLD 80

/* Replication backpressure as the estimate recommends it: the guest's
 * writes may take as long again as before the copy, and at least this
 * much longer (ms): --max-guest-latency. */
#define VMS_ESTIMATE_MIN_LATENCY_ALLOWANCE_MS 1

typedef struct
{
  double background_s; /* background copy of every disk */
  guint64 background_bytes; /* what it sends: the data, and what the
                               guest writes into holes ahead of it */
  guint n_rounds;      /* dirty rounds before memory */
  guint64 round_bytes[VMS_ESTIMATE_MAX_ROUNDS]; /* size of each */
  double round_s[VMS_ESTIMATE_MAX_ROUNDS];      /* duration of each */
  double rounds_s;      /* all rounds (expected, with round_noise) */
  double rounds_expected; /* how many rounds, expected */
  double last_round_s;  /* the last round's duration, expected */
  gboolean disks_converge;   /* rounds got below converge_bytes */
  double disk_write_rate;    /* new distinct dirty bytes per second,
                                long-run (all disks) */
  double backpressure_rate;  /* when not converging: cap guest disk
                                writes at this (bytes/s) to converge;
                                0 when not needed */
  gboolean disks_converge_with_backpressure; /* ... and then they do */
  double write_share;          /* of its disk writes, what backpressure
                                  leaves the guest at the end of the rounds
                                  (1: all); the rounds, memory and downtime
                                  below are with it, as migrate runs */
  double last_round_share;     /* ... and what it left while the last
                                  round copied (what a mirror's catch-up
                                  recorded) */
  double ram_throttle_percent; /* how much QEMU's auto-converge slows the
                                  vCPUs for a RAM that does not converge
                                  (memory_s is with it), 0: not needed */
  guint guest_latency_ms;      /* --max-guest-latency recommended: the copy
                                  made a disk's writes take longer than
                                  that much more; 0: not needed, or not
                                  known (the guest wrote too little) */
  double latency_before_us;    /* the disk whose writes the copy slowed
                                  most: their latency before it (µs, 0:
                                  unknown) ... */
  double latency_copying_us;   /* ... and while it ran */
  double replication_rate;     /* with guest_latency_ms, the slowest copy
                                  held to this (bytes/s): the copies and
                                  rounds above are with it; 0: none */
  double memory_s;           /* RAM pre-copy until switchover */
  guint memory_passes;       /* RAM passes */
  gboolean memory_converges; /* RAM dirty rate below the link's */
  double compress_memory_s;  /* RAM pre-copy with --compress zstd, 0: not
                                known */
  gboolean compress;         /* --compress zstd recommended */
  const char *compress_reason; /* why or why not (static) */
  guint64 final_bytes_pause; /* last disk round inside the downtime */
  double catchup_s_mirror;   /* mirror: copying the bitmap behind the
                                started mirror */
  double mirror_memory_s;    /* ... and its RAM pre-copy */
  double stop_flush_s;       /* QEMU flushes the source's page cache when
                                it stops the VM: in both downtimes */
  double downtime_pause_s;   /* predicted downtime, --final-sync pause */
  double downtime_mirror_s;  /* likewise, mirror */
  gboolean auto_mirror;      /* --final-sync auto (migrate's default)
                                chooses mirror ... */
  guint auto_rounds;         /* ... after this many rounds */
  double auto_catchup_s;     /* ... its catch-up copy and RAM pre-copy
                                when it chooses mirror */
  double auto_memory_s;
  double downtime_auto_s;    /* predicted downtime, --final-sync auto */
  double total_auto_s;       /* whole migration, auto */
  double total_pause_s;      /* whole migration, pause */
  double total_mirror_s;     /* whole migration, mirror */
  double offline_s;          /* VM stopped, everything copied */
  double seed_s;             /* seed route, 0 when not possible */
  guint64 seed_device_bytes; /* seed route: the disks' data on the device
                                (before zstd) */
  double seed_period_s;      /* ... writing, shipping and importing it */
  guint64 seed_link_bytes;   /* ... then the disks' delta over the link:
                                what the guest wrote meanwhile, and the
                                rounds (RAM comes on top) */
  VmsEstimateMethod method;  /* recommended */
  const char *reason;        /* why, one sentence (static) */
} VmsEstimate;

/* The distinct dirty bytes of one disk after seconds: the observed curve,
 * interpolated, extended past the window by its last slope, at most the
 * disk's size. */
double vms_estimate_disk_dirty_after (const VmsEstimateDisk *disk,
                                      double seconds);

/* Predict a migration of one VM over link. */
void vms_estimate_run (const VmsEstimateDisk *disks, guint n_disks,
                       const VmsEstimateMemory *memory,
                       const VmsEstimateLink *link,
                       const VmsEstimateParams *params, VmsEstimate *out);

/* Several VMs over one shared link, one after another: fills order with
 * indexes into totals (shortest first, which ends the most migrations
 * soonest) and returns the sum. */
double vms_estimate_group_order (const double *totals, guint n, guint *order);

G_END_DECLS
