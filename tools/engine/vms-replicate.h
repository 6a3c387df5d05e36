/* vmshift: replicating a running VM's disks to the sink (background copy,
 * dirty rounds, the last round), shared by sync and migrate.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

#include "vms-copy.h"
#include "vms-job.h"
#include "vms-progress.h"
#include "vms-qmp.h"
#include "vms-rate.h"

G_BEGIN_DECLS

/* Rounds stop when one dirties no more than this (bytes), unless told. */
#define VMS_REPLICATE_DEFAULT_CONVERGE_BYTES (16 * 1024 * 1024)

/* The command-line options both commands take. */
typedef struct
{
  char *sink;               /* --sink */
  char *job_id;             /* --job */
  char *resume;             /* --resume JOB */
  char *state_dir;          /* --state-dir */
  char **disks;             /* --disk, repeatable */
  char *replica_prefix;     /* --replica-prefix */
  char *max_bandwidth;      /* --max-bandwidth */
  int rounds;               /* --rounds; -1: until converged */
  gboolean until_converged; /* --until-converged */
  char *converge;           /* --converge-bytes */
  int connections;          /* --connections */
  int queue_depth;          /* --queue-depth */
  char *request_size;       /* --request-size */
  char *checkpoint_bytes;   /* --checkpoint-bytes */
  char *granularity;        /* --granularity */
  int checkpoint_seconds;   /* --checkpoint-seconds */
  int io_timeout;           /* --io-timeout */
  gboolean json;            /* --json */
} VmsReplicateOptions;

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
  VmsReplicateOptions *options; /* what the user asked */
  volatile gint *stop;          /* set by a signal handler: stop cleanly */
  VmsJob *job;                  /* state, saved at every checkpoint */
  VmsQmp *qmp;                  /* the source QEMU */
  char *nbd_socket;             /* QEMU's NBD server socket */
  VmsProgress *progress;        /* output */
  VmsRate *rate;                /* --max-bandwidth, or NULL */
  guint64 converge_bytes;       /* round size that counts as converged */
  guint32 request_size;         /* bytes per request */
  guint64 checkpoint_bytes;     /* bytes between checkpoints */
  guint32 granularity;          /* bytes per bitmap bit, 0: QEMU's default */
  GHashTable *replica_names;    /* disk name -> name in the replica's name
                                   (libvirt: "virtio-disk0" -> "vda"), or
                                   NULL: the disk name itself; borrowed */
  VmsJobDisk *disk;             /* disk being copied */
  const char *phase;            /* "background" or "round N" */
  VmsReplicatePass pass;        /* kind of pass running */
  VmsCopyStats last;            /* figures at the last checkpoint */
  guint64 run_bytes[VMS_REPLICATE_N_PASSES]; /* sent by this run, per pass */
} VmsReplicate;

/* Option entries shared by sync and migrate, pointing into options;
 * caller frees the array with g_free(). */
GOptionEntry *vms_replicate_option_entries (VmsReplicateOptions *options);
void vms_replicate_options_clear (VmsReplicateOptions *options);

/* Parse sizes and check ranges; fills the derived fields of rep. */
gboolean vms_replicate_check_options (VmsReplicate *rep, GError **error);

/* The sink URI with the export path set to export_name (caller frees). */
char *vms_replicate_sink_uri (const char *sink, const char *export_name,
                              GError **error);

/* Connect to the disk's replica export REPLICA@suffix (REPLICA when
 * suffix is NULL), FLUSH it if asked, and disconnect: enough for the
 * exports whose opening is the action (create=, commit, live-reset). */
gboolean vms_replicate_sink_open (VmsReplicate *rep, VmsJobDisk *disk,
                                  const char *suffix, gboolean flush,
                                  GError **error);

/* The same for every disk of the job, stopping at the first failure. */
gboolean vms_replicate_sink_open_all (VmsReplicate *rep, const char *suffix,
                                      gboolean flush, GError **error);

/* Open a new job (or the one --resume names) for the QEMU at rep->qmp:
 * disks discovered, checked against a resumed job, state saved. */
gboolean vms_replicate_open_job (VmsReplicate *rep, const char *source,
                                 GError **error);

/* Start QEMU's NBD server and make sure every replica exists. */
gboolean vms_replicate_start (VmsReplicate *rep, GError **error);

/* The background copy of every disk (done ones are skipped). */
gboolean vms_replicate_background (VmsReplicate *rep, GError **error);

/* Dirty rounds as the options ask (a round a killed run left half done is
 * finished first). */
gboolean vms_replicate_rounds (VmsReplicate *rep, GError **error);

/* One more round on every disk, counted as the final pass: run while the
 * guest cannot write, it leaves the replicas equal to the disks. */
gboolean vms_replicate_final_round (VmsReplicate *rep, GError **error);

/* Stop QEMU's NBD server if it is ours (errors ignored). */
void vms_replicate_stop_server (VmsReplicate *rep);

/* One event per disk with what was sent. */
void vms_replicate_report_disks (VmsReplicate *rep);

void vms_replicate_clear (VmsReplicate *rep);

G_END_DECLS
