/* vmshift: the disk copy options that sync and migrate share, parsed into
 * the engine's VmsReplicateConfig.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

#include "vms-replicate.h"

G_BEGIN_DECLS

/* The options as typed; numbers are parsed (lib/vms-option) by
 * vms_cli_copy_options_parse, which names the option that is wrong. */
typedef struct
{
  char *sink;               /* --sink */
  char *job_id;             /* --job */
  char *resume;             /* --resume JOB */
  char *state_dir;          /* --state-dir */
  char **disks;             /* --disk, repeatable */
  char *replica_prefix;     /* --replica-prefix */
  char *max_bandwidth;      /* --max-bandwidth */
  char *rounds;             /* --rounds */
  gboolean until_converged; /* --until-converged */
  char *converge;           /* --converge-bytes */
  char *connections;        /* --connections */
  char *queue_depth;        /* --queue-depth */
  char *request_size;       /* --request-size */
  char *checkpoint_bytes;   /* --checkpoint-bytes */
  char *granularity;        /* --granularity */
  char *bitmap_memory;      /* --bitmap-memory */
  char *compare;            /* --compare */
  char *write_backpressure; /* --write-backpressure */
  char *replication_backpressure; /* --replication-backpressure */
  char *max_guest_latency;        /* --max-guest-latency */
  char *checkpoint_seconds; /* --checkpoint-seconds */
  char *io_timeout;         /* --io-timeout */
  char *retry_timeout;      /* --retry-timeout */
  gboolean json;            /* --json */
} VmsCliCopyOptions;

/* Option entries pointing into options; caller frees the array with
 * g_free(). */
GOptionEntry *vms_cli_copy_option_entries (VmsCliCopyOptions *options);

/* Check the sink's URI and the job's name, parse the numbers and fill
 * config (taking the strings); a refusal is G_OPTION_ERROR naming the
 * option. */
gboolean vms_cli_copy_options_parse (VmsCliCopyOptions *options,
                                     VmsReplicateConfig *config,
                                     GError **error);

void vms_cli_copy_options_clear (VmsCliCopyOptions *options);

G_END_DECLS
