/* vmshift: the disk copy options of sync and migrate.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-cli-copy.h"
#include "vms-copy.h"
#include "vms-granularity.h"
#include "vms-job.h"
#include "vms-path.h"
#include "vms-size.h"

static gboolean
check_counts (const VmsCliCopyOptions *options, GError **error)
{
  if (options->rounds < -1 || (options->rounds >= 0 && options->until_converged)
      || options->connections < 0
      || options->connections > VMS_COPY_MAX_CONNECTIONS
      || options->queue_depth < 0
      || options->queue_depth > VMS_COPY_MAX_QUEUE_DEPTH
      || options->checkpoint_seconds < 0 || options->io_timeout < 0
      || options->retry_timeout < -1)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--rounds N (0 or more) and --until-converged exclude "
                   "each other; "
                   "--connections is 1..%d, --queue-depth 1..%d, and counts "
                   "and times are not negative",
                   VMS_COPY_MAX_CONNECTIONS, VMS_COPY_MAX_QUEUE_DEPTH);
      return FALSE;
    }
  return TRUE;
}

/* The smallest --bitmap-memory: about what the two 4 KiB-grained bitmaps
 * of a 1 GiB disk take (65 KiB); less would make any real disk coarse. */
#define BITMAP_MEMORY_MIN (64 * 1024)

static gboolean
parse_sizes (const VmsCliCopyOptions *options, VmsReplicateConfig *config,
             GError **error)
{
  guint64 request = 0, granularity = 0;

  if (!vms_size_parse ("--max-bandwidth", options->max_bandwidth, 1024,
                       &config->max_bandwidth, error)
      || !vms_size_parse ("--request-size", options->request_size, 4096,
                          &request, error)
      || !vms_size_parse ("--converge-bytes", options->converge, 0,
                          &config->converge_bytes, error)
      || !vms_size_parse ("--checkpoint-bytes", options->checkpoint_bytes,
                          1024 * 1024, &config->checkpoint_bytes, error)
      || !vms_size_parse ("--granularity", options->granularity, 512,
                          &granularity, error)
      || !vms_size_parse ("--bitmap-memory", options->bitmap_memory,
                          BITMAP_MEMORY_MIN, &config->bitmap_memory, error))
    return FALSE;
  config->converge_bytes_set = options->converge != NULL;
  /* QEMU wants a power of two from 512 bytes to 2 GiB. */
  if (granularity > (G_GUINT64_CONSTANT (1) << 31)
      || (granularity & (granularity - 1)) != 0)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--granularity must be a power of two from 512 to 2G");
      return FALSE;
    }
  if (request > VMS_COPY_MAX_REQUEST_SIZE)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--request-size is at most %d bytes",
                   VMS_COPY_MAX_REQUEST_SIZE);
      return FALSE;
    }
  config->request_size = request;
  config->granularity = granularity;
  return TRUE;
}

gboolean
vms_cli_copy_options_parse (VmsCliCopyOptions *options,
                            VmsReplicateConfig *config, GError **error)
{
  if (!check_counts (options, error) || !parse_sizes (options, config, error))
    return FALSE;
  config->rounds = options->rounds;
  config->connections = options->connections;
  config->queue_depth = options->queue_depth;
  config->checkpoint_seconds = options->checkpoint_seconds;
  config->io_timeout_s = options->io_timeout;
  if (options->retry_timeout >= 0)
    config->retry_timeout_s = options->retry_timeout;
  /* QEMU gets the sink's socket and keys for the mirror, in its own
   * working directory; the job keeps them for a run from another one. */
  config->sink = vms_path_absolute_sink_uri (options->sink);
  config->job_id = g_steal_pointer (&options->job_id);
  config->resume = g_steal_pointer (&options->resume);
  /* QEMU's NBD server listens on a socket in it. */
  if (!options->state_dir)
    options->state_dir = vms_job_default_state_dir ();
  config->state_dir = vms_path_absolute (options->state_dir);
  config->disks = g_steal_pointer (&options->disks);
  config->replica_prefix = g_steal_pointer (&options->replica_prefix);
  return TRUE;
}

void
vms_cli_copy_options_clear (VmsCliCopyOptions *options)
{
  g_clear_pointer (&options->sink, g_free);
  g_clear_pointer (&options->job_id, g_free);
  g_clear_pointer (&options->resume, g_free);
  g_clear_pointer (&options->state_dir, g_free);
  g_clear_pointer (&options->disks, g_strfreev);
  g_clear_pointer (&options->replica_prefix, g_free);
  g_clear_pointer (&options->max_bandwidth, g_free);
  g_clear_pointer (&options->converge, g_free);
  g_clear_pointer (&options->request_size, g_free);
  g_clear_pointer (&options->checkpoint_bytes, g_free);
  g_clear_pointer (&options->granularity, g_free);
  g_clear_pointer (&options->bitmap_memory, g_free);
}

GOptionEntry *
vms_cli_copy_option_entries (VmsCliCopyOptions *options)
{
  const GOptionEntry entries[] = {
    { "sink", 's', 0, G_OPTION_ARG_STRING, &options->sink,
      "NBD URI of the vmshift sink", "URI" },
    { "job", 'j', 0, G_OPTION_ARG_STRING, &options->job_id,
      "Name the new job (default: VM name and time)", "ID" },
    { "resume", 'r', 0, G_OPTION_ARG_STRING, &options->resume,
      "Continue job JOB where it stopped", "JOB" },
    { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &options->state_dir,
      "Where job state lives (default /var/lib/vmshift as root)", "DIR" },
    { "disk", 'd', 0, G_OPTION_ARG_STRING_ARRAY, &options->disks,
      "Copy only this disk (repeatable; default: all)", "NAME" },
    { "replica-prefix", 0, 0, G_OPTION_ARG_STRING, &options->replica_prefix,
      "Replicas are PREFIX-DISK (default: the VM name)", "PREFIX" },
    { "max-bandwidth", 'b', 0, G_OPTION_ARG_STRING, &options->max_bandwidth,
      "Send at most RATE bytes per second, all disks together (e.g. 50M)",
      "RATE" },
    { "rounds", 'n', 0, G_OPTION_ARG_INT, &options->rounds,
      "Run exactly N dirty rounds (0: the background copy only)", "N" },
    { "until-converged", 0, 0, G_OPTION_ARG_NONE, &options->until_converged,
      "Run rounds until small or no longer shrinking (default)", NULL },
    { "converge-bytes", 0, 0, G_OPTION_ARG_STRING, &options->converge,
      "A round this small ends the rounds (default 16M)", "SIZE" },
    { "connections", 'c', 0, G_OPTION_ARG_INT, &options->connections,
      "Connections per side and disk (default: CPUs, at most 4; "
      "the disks together at most 16)",
      "N" },
    { "queue-depth", 'q', 0, G_OPTION_ARG_INT, &options->queue_depth,
      "Requests in flight per connection (default 64)", "N" },
    { "request-size", 0, 0, G_OPTION_ARG_STRING, &options->request_size,
      "Bytes per request (default 256K)", "SIZE" },
    { "checkpoint-bytes", 0, 0, G_OPTION_ARG_STRING, &options->checkpoint_bytes,
      "FLUSH and checkpoint after this much data (default 64M)", "SIZE" },
    { "checkpoint-seconds", 0, 0, G_OPTION_ARG_INT,
      &options->checkpoint_seconds,
      "... or after this many seconds (default 10)", "S" },
    { "io-timeout", 0, 0, G_OPTION_ARG_INT, &options->io_timeout,
      "Give up on a silent peer after S seconds (default 60)", "S" },
    { "retry-timeout", 0, 0, G_OPTION_ARG_INT, &options->retry_timeout,
      "Reconnect lost connections for up to S seconds (default 600; "
      "0: fail at once)",
      "S" },
    { "granularity", 'g', 0, G_OPTION_ARG_STRING, &options->granularity,
      "Bytes per dirty-bitmap bit for a new job (default: chosen per disk, "
      "from 4K)",
      "SIZE" },
    { "bitmap-memory", 0, 0, G_OPTION_ARG_STRING, &options->bitmap_memory,
      "QEMU memory for the dirty bitmaps of all disks, which sets how fine "
      "they can be (default 64M)",
      "SIZE" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &options->json,
      "Print one JSON event per line on stdout", NULL },
    G_OPTION_ENTRY_NULL
  };

  return g_memdup2 (entries, sizeof entries);
}
