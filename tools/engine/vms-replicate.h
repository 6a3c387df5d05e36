/* vmshift: replicating a running VM's disks to the sink (background copy,
 * dirty rounds, the last round), shared by sync and migrate.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>

#include "vms-backpressure-option.h"
#include "vms-copy.h"
#include "vms-job.h"
#include "vms-job-lock.h"
#include "vms-progress.h"
#include "vms-qmp.h"
#include "vms-rate.h"

G_BEGIN_DECLS

/* Rounds stop when one dirties no more than this (bytes), unless told. */
#define VMS_REPLICATE_DEFAULT_CONVERGE_BYTES (16 * 1024 * 1024)
/* Lost connections are made again for this long (s) before a run gives
 * up: a link reset or a sink restart is over well within it. */
#define VMS_REPLICATE_DEFAULT_RETRY_TIMEOUT_S 600
/* ... but while the source is paused for the final round, this long. */
#define VMS_REPLICATE_FINAL_RETRY_TIMEOUT_S 5

/* Chunk of the replica's hashes a copy compares with: the guest's
 * smallest write. */
#define VMS_REPLICATE_COMPARE_CHUNK 4096

/* When a copy reads the replica's chunk hashes and sends only the chunks
 * that differ (--compare). */
typedef enum
{
  VMS_REPLICATE_COMPARE_AUTO,   /* dirty rounds of disks whose bitmaps are
                                   coarser than the chunk, and the copy of a
                                   disk whose bitmaps were lost */
  VMS_REPLICATE_COMPARE_ALWAYS, /* also every background copy: a replica
                                   that holds an older copy already */
  VMS_REPLICATE_COMPARE_NEVER,  /* send all that is read */
} VmsReplicateCompare;

/* Write backpressure (--write-backpressure, vms-backpressure.h). */
typedef enum
{
  VMS_REPLICATE_BACKPRESSURE_AUTO, /* steps from the guest's rate down */
  VMS_REPLICATE_BACKPRESSURE_OFF,  /* never throttle the guest */
  VMS_REPLICATE_BACKPRESSURE_RATE, /* one step, to the rate given */
} VmsReplicateBackpressure;

/* The run's write backpressure state (vms-backpressure.c). */
typedef struct VmsBackpressure VmsBackpressure;

/* The run's replication backpressure state
 * (vms-replication-backpressure.c). */
typedef struct VmsReplicationBackpressure VmsReplicationBackpressure;

/* What to replicate and how: the parsed options of sync and migrate. */
typedef struct
{
  char *sink;                  /* sink URI, without export name; NULL: the
                                  resumed job's */
  char *job_id;                /* new job's id, NULL: VM name and time */
  char *resume;                /* job to continue, or NULL */
  char *state_dir;             /* where job files live */
  char **disks;                /* disks to copy, NULL: all */
  char *replica_prefix;        /* replicas are PREFIX-DISK; NULL: VM name */
  int rounds;                  /* dirty rounds to run, -1: until converged */
  guint64 converge_bytes;      /* a round this small ends the rounds */
  gboolean converge_bytes_set; /* converge_bytes was asked for */
  int converge_ms;             /* when converge_bytes was not asked for and
                                  this is not 0: a round that copies within
                                  this many ms at the measured rate ends the
                                  rounds (migrate: its downtime budget) */
  guint connections;           /* per side, 0: the copy engine's default */
  guint queue_depth;           /* per connection, 0: default */
  guint32 request_size;        /* bytes per request, 0: default */
  guint64 checkpoint_bytes;    /* FLUSH and checkpoint after this much */
  guint checkpoint_seconds;    /* ... or this long, 0: default */
  guint io_timeout_s;    /* a silent peer is gone after this, 0: default */
  guint retry_timeout_s; /* lost connections are made again for up to
                            this long; 0: fail at once */
  guint32 granularity;   /* bytes per bitmap bit of a new job, 0: chosen
                            per disk (vms-granularity) */
  guint64 bitmap_memory; /* bytes QEMU may spend on the job's bitmaps, all
                            disks together */
  guint64 max_bandwidth; /* bytes per second, 0: unlimited */
  VmsReplicateCompare compare;                 /* --compare */
  VmsReplicateBackpressure write_backpressure; /* --write-backpressure */
  guint64 write_backpressure_rate;             /* its RATE, bytes/s */
  guint64 write_backpressure_first; /* auto: the first step, all disks
                                       together (an estimate's
                                       recommendation), bytes/s; 0: a
                                       step down from what the guest
                                       wrote */
  guint max_guest_latency_ms;       /* --max-guest-latency: replication
                                       backpressure slows the copy when the
                                       guest's writes take this much longer
                                       than before it; 0: off */
  gboolean max_guest_latency_asked; /* the user chose replication
                                       backpressure (on or off): an
                                       estimate's recommendation does not
                                       change it */
} VmsReplicateConfig;

/* The defaults of the options not given. */
void vms_replicate_config_init (VmsReplicateConfig *config);
void vms_replicate_config_clear (VmsReplicateConfig *config);

/* Set config's backpressure (write_backpressure and its rate,
 * max_guest_latency_ms) to what options say: the one mapping of the
 * parsed settings of migrate's options and of a plan's keys. */
void
vms_replicate_config_set_backpressure (VmsReplicateConfig *config,
                                       const VmsBackpressureOptions *options);

/* Which kind of pass is running, for the bytes-per-pass figures. */
typedef enum
{
  VMS_REPLICATE_PASS_BACKGROUND,
  VMS_REPLICATE_PASS_ROUNDS,
  VMS_REPLICATE_PASS_FINAL,
  VMS_REPLICATE_N_PASSES,
} VmsReplicatePass;

typedef struct
{
  const VmsReplicateConfig *config; /* what to do; borrowed */
  GCancellable *cancellable;        /* cancelled: stop cleanly; borrowed */
  VmsJob *job;                      /* state, saved at every checkpoint */
  VmsJobLock *lock;                 /* the job's lock, held from before its
                                       file is read to the end of the run */
  VmsQmp *qmp;                      /* the source QEMU */
  char *nbd_socket;                 /* QEMU's NBD server socket */
  VmsProgress *progress;            /* output */
  VmsRate *rate;                    /* config->max_bandwidth, or NULL; with
                                       replication backpressure always (no
                                       limit until it cuts, without
                                       --max-bandwidth) */
  GHashTable *replica_names;        /* disk name -> name in the replica's name
                                       (libvirt: "virtio-disk0" -> "vda"), or
                                       NULL: the disk name itself; borrowed */
  VmsReplicatePass pass;            /* kind of pass running */
  guint64 run_bytes[VMS_REPLICATE_N_PASSES]; /* sent by this run, per pass */
  gint64 run_us[VMS_REPLICATE_N_PASSES];     /* spent copying, per pass (the
                                                disks copy at once) */
  gint64 recording_since_us; /* monotonic: the recording bitmaps started
                                (0: not in this run) */
  double guest_write_rate;   /* bytes/s the guest wrote while the last
                                round's bitmaps recorded, -1: unknown */
  /* Asked after each round of an open-ended run (rounds -1): FALSE ends
   * the rounds (the caller says why); NULL: rounds end by their size. */
  gboolean (*more_rounds) (gpointer data);
  gpointer more_rounds_data;
  gint64 after_disks;          /* bytes the job sends after the disks' passes
                                  (a migration's RAM), -1: no overall ETA */
  guint64 longest_round_bytes; /* the round recorded over the longest
                                  span of this run, and that span: a
                                  shorter one dirties no more */
  gint64 longest_round_span_us;
  gint64 round_flush_us;         /* the last round's closing FLUSH, the
                                    slowest disk's: the sink writing back
                                    what a round wrote, which a final round
                                    does inside the downtime */
  gboolean room_left;            /* the copy's limit leaves the mirror
                                    room (vms_replicate_leave_room) */
  VmsBackpressure *backpressure; /* write backpressure of this run */
  VmsReplicationBackpressure *replication_backpressure; /* its replication
                                  backpressure, NULL: off */
} VmsReplicate;

/* Borrow config, cancellable and progress for a replication. */
void vms_replicate_init (VmsReplicate *rep, const VmsReplicateConfig *config,
                         GCancellable *cancellable, VmsProgress *progress);

/* Replication backpressure on from now (the next pass), with
 * rep->config->max_guest_latency_ms (not 0) set since vms_replicate_init:
 * an estimate's recommendation, read once the job is known. */
void vms_replicate_enable_replication_backpressure (VmsReplicate *rep);

/* Take job id's lock for this run (held until vms_replicate_clear); TRUE
 * at once when the run holds it already.  VMS_JOB_ERROR_LOCKED names the
 * process that holds it. */
gboolean vms_replicate_lock_job (VmsReplicate *rep, const char *id,
                                 GError **error);

/* Open a new job (or the one --resume names) for the QEMU at rep->qmp:
 * disks discovered, checked against a resumed job, state saved. */
gboolean vms_replicate_open_job (VmsReplicate *rep, const char *source,
                                 GError **error);

/* The background copy's start on one disk: its bitmap, recording before
 * the copy reads anything (or, for a resumed copy, checked). */
gboolean vms_replicate_start_recording (VmsReplicate *rep, VmsJobDisk *disk,
                                        GError **error);

/* A resumed job's disks whose dirty bitmaps are gone or inconsistent (QEMU
 * restarted or crashed) start over from a new bitmap with a background
 * copy that compares every chunk with the replica's hashes
 * (VmsJobDisk.compare_all), instead of failing; one "bitmaps-lost" event
 * per disk says so.  vms_replicate_open_job calls it. */
gboolean vms_replicate_recover_bitmaps (VmsReplicate *rep, GError **error);

/* Settle each disk's bitmap granularity (vms_replicate_open_job does):
 * a disk with bitmaps keeps theirs, a new one gets --granularity or one
 * chosen from the disks' sizes, config->bitmap_memory and the guest's
 * average write; one "granularity" event per disk says which and why. */
gboolean vms_replicate_settle_granularity (VmsReplicate *rep, GError **error);

/* Start QEMU's NBD server and make sure every replica exists. */
gboolean vms_replicate_start (VmsReplicate *rep, GError **error);

/* The background copy of every disk (done ones are skipped), the disks
 * at once (vms-replicate-copy.h). */
gboolean vms_replicate_background (VmsReplicate *rep, GError **error);

/* Dirty rounds as the options ask (a round a killed run left half done is
 * finished first), each round on every disk at once. */
gboolean vms_replicate_rounds (VmsReplicate *rep, GError **error);

/* One more round on every disk, counted as the final pass: run while the
 * guest cannot write, it leaves the replicas equal to the disks. */
gboolean vms_replicate_final_round (VmsReplicate *rep, GError **error);

/* One round on disks only (VmsJobDisk*): what their recording bitmaps
 * hold crosses, and new bitmaps record from the switch on.  For disks
 * whose mirror failed and was started again: the writes it missed are in
 * the bitmap that recorded since the last round. */
gboolean vms_replicate_catch_up (VmsReplicate *rep, GPtrArray *disks,
                                 GError **error);

/* rep->nbd_socket: where the job's NBD server listens (a killed run's
 * too), without starting it. */
void vms_replicate_name_server (VmsReplicate *rep);

/* Stop QEMU's NBD server if it is ours (errors ignored). */
void vms_replicate_stop_server (VmsReplicate *rep);

/* Bytes per second the copies of this run reached (background and
 * rounds, checkpoints included), or -1 when too little was copied to
 * tell. */
double vms_replicate_copy_rate (VmsReplicate *rep);

/* Bytes per second the dirty rounds of this run reached, or the copies'
 * rate (vms_replicate_copy_rate) when they copied too little to tell:
 * a round's scattered small writes cross far slower than the background
 * copy's long runs (15 against 210 MiB/s on loopback for a guest's 4 KiB
 * writes), and a final round is one of them. */
double vms_replicate_round_rate (VmsReplicate *rep);

/* The copy's limit (0: none) on rep->rate, with the bucket every limit
 * of the copy gets. */
void vms_replicate_set_rate_limit (VmsReplicate *rep, guint64 limit);

/* The copy behind a write-blocking mirror shares the link with the
 * guest's writes, which the mirror sends as they happen: a copy with many
 * requests in flight leaves them a sliver of it (0.5 of the 2.8 MiB/s
 * write backpressure allowed the guest over 50 Mbit/s).  Until
 * vms_replicate_end_room the copy gets the rounds' rate less guest_rate
 * (bytes/s the guest is held to; a quarter of that rate at least), one
 * "catch-up-limit" event says so.  Nothing when guest_rate is 0, the
 * rate is unknown, replication backpressure sets the limit, or
 * --max-bandwidth is lower already. */
void vms_replicate_leave_room (VmsReplicate *rep, guint64 guest_rate);
/* The copy's own limit back: --max-bandwidth's, or none. */
void vms_replicate_end_room (VmsReplicate *rep);

/* One event per disk with what was sent. */
void vms_replicate_report_disks (VmsReplicate *rep);

void vms_replicate_clear (VmsReplicate *rep);

G_END_DECLS
