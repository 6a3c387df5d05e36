/* vmshift: the disk copy options that sync and migrate share, parsed into
 * the engine's VmsReplicateConfig.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

#include "vms-replicate.h"

G_BEGIN_DECLS

/* The options as typed; sizes are parsed by vms_cli_copy_options_parse. */
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
  char *bitmap_memory;      /* --bitmap-memory */
  int checkpoint_seconds;   /* --checkpoint-seconds */
  int io_timeout;           /* --io-timeout */
  int retry_timeout;        /* --retry-timeout, -1: not given */
  gboolean json;            /* --json */
} VmsCliCopyOptions;

/* Option entries pointing into options; caller frees the array with
 * g_free(). */
GOptionEntry *vms_cli_copy_option_entries (VmsCliCopyOptions *options);

/* Check ranges, parse sizes and fill config (taking the strings); a
 * refusal is G_OPTION_ERROR. */
gboolean vms_cli_copy_options_parse (VmsCliCopyOptions *options,
                                     VmsReplicateConfig *config,
                                     GError **error);

void vms_cli_copy_options_clear (VmsCliCopyOptions *options);

G_END_DECLS
