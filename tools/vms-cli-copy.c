/* vmshift: the disk copy options of sync and migrate.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-cli-copy.h"
#include "vms-copy.h"
#include "vms-granularity.h"
#include "vms-job.h"
#include "vms-option.h"
#include "vms-path.h"
#include "vms-sink-client.h"

/* Typo guards: nobody means more than these, and the engine's counters
 * stay far from overflowing. */
#define MAX_ROUNDS 1000
#define MAX_SECONDS (24 * 3600)
#define MAX_RATE (G_GUINT64_CONSTANT (1) << 40)
#define MAX_BYTES (G_GUINT64_CONSTANT (1) << 40)

static gboolean
parse_counts (const VmsCliCopyOptions *options, VmsReplicateConfig *config,
              GError **error)
{
  guint64 rounds = 0, connections = config->connections;
  guint64 queue_depth = config->queue_depth;
  guint64 checkpoint_s = config->checkpoint_seconds;
  guint64 io_timeout_s = config->io_timeout_s;
  guint64 retry_timeout_s = config->retry_timeout_s;

  if (options->rounds && options->until_converged)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--rounds and --until-converged exclude each other");
      return FALSE;
    }
  if (!vms_option_count ("--rounds", options->rounds, 0, MAX_ROUNDS, &rounds,
                         error)
      || !vms_option_count ("--connections", options->connections, 1,
                            VMS_COPY_MAX_CONNECTIONS, &connections, error)
      || !vms_option_count ("--queue-depth", options->queue_depth, 1,
                            VMS_COPY_MAX_QUEUE_DEPTH, &queue_depth, error)
      || !vms_option_seconds ("--checkpoint-seconds",
                              options->checkpoint_seconds, 1, MAX_SECONDS,
                              &checkpoint_s, error)
      || !vms_option_seconds ("--io-timeout", options->io_timeout, 1,
                              MAX_SECONDS, &io_timeout_s, error)
      || !vms_option_seconds ("--retry-timeout", options->retry_timeout, 0,
                              MAX_SECONDS, &retry_timeout_s, error))
    return FALSE;
  if (options->rounds)
    config->rounds = rounds;
  config->connections = connections;
  config->queue_depth = queue_depth;
  config->checkpoint_seconds = checkpoint_s;
  config->io_timeout_s = io_timeout_s;
  config->retry_timeout_s = retry_timeout_s;
  return TRUE;
}

static gboolean
parse_sizes (const VmsCliCopyOptions *options, VmsReplicateConfig *config,
             GError **error)
{
  guint64 request = 0;

  if (!vms_option_rate ("--max-bandwidth", options->max_bandwidth, 1024,
                        MAX_RATE, &config->max_bandwidth, error)
      || !vms_option_size ("--request-size", options->request_size, 4096,
                           VMS_COPY_MAX_REQUEST_SIZE, &request, error)
      || !vms_option_size ("--converge-bytes", options->converge, 0, MAX_BYTES,
                           &config->converge_bytes, error)
      || !vms_option_size ("--checkpoint-bytes", options->checkpoint_bytes,
                           1024 * 1024, MAX_BYTES, &config->checkpoint_bytes,
                           error)
      || !vms_granularity_parse_options (
          options->granularity, options->bitmap_memory, &config->granularity,
          &config->bitmap_memory, error))
    return FALSE;
  config->converge_bytes_set = options->converge != NULL;
  config->request_size = request;
  return TRUE;
}

static gboolean
parse_compare (const char *text, VmsReplicateConfig *config, GError **error)
{
  static const char *const names[] = { "auto", "always", "never" };

  if (!text)
    return TRUE;
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    if (g_str_equal (text, names[i]))
      {
        config->compare = (VmsReplicateCompare)i;
        return TRUE;
      }
  g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
               "--compare takes auto, always or never, not '%s'", text);
  return FALSE;
}

static gboolean
parse_backpressure (const VmsCliCopyOptions *options,
                    VmsReplicateConfig *config, GError **error)
{
  const VmsBackpressureOptionText text = {
    .write_backpressure = options->write_backpressure,
    .max_guest_latency = options->max_guest_latency,
    .replication_backpressure = options->replication_backpressure,
  };
  VmsBackpressureOptions parsed;

  if (!vms_backpressure_options_parse ("--", &text, &parsed, error))
    return FALSE;
  vms_replicate_config_set_backpressure (config, &parsed);
  return TRUE;
}

/* Names are refused as typed, never rewritten: a job is resumed by the
 * name it was given, and the sink must be one before a job file is
 * written for it. */
static gboolean
check_names (const VmsCliCopyOptions *options, GError **error)
{
  g_autoptr (GError) id_error = NULL;
  const char *option = options->job_id ? "--job" : "--resume";
  const char *id = options->job_id ? options->job_id : options->resume;

  if (options->job_id && options->resume)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--job names a new job, --resume an existing one: give "
                   "one of them");
      return FALSE;
    }
  if (id && !vms_job_id_is_valid (id, &id_error))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "%s '%s': %s", option, id, id_error->message);
      return FALSE;
    }
  return !options->sink || vms_sink_client_check_uri (options->sink, error);
}

gboolean
vms_cli_copy_options_parse (VmsCliCopyOptions *options,
                            VmsReplicateConfig *config, GError **error)
{
  if (!check_names (options, error) || !parse_counts (options, config, error)
      || !parse_sizes (options, config, error)
      || !parse_compare (options->compare, config, error)
      || !parse_backpressure (options, config, error))
    return FALSE;
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
  g_clear_pointer (&options->rounds, g_free);
  g_clear_pointer (&options->connections, g_free);
  g_clear_pointer (&options->queue_depth, g_free);
  g_clear_pointer (&options->checkpoint_seconds, g_free);
  g_clear_pointer (&options->io_timeout, g_free);
  g_clear_pointer (&options->retry_timeout, g_free);
  g_clear_pointer (&options->bitmap_memory, g_free);
  g_clear_pointer (&options->compare, g_free);
  g_clear_pointer (&options->write_backpressure, g_free);
  g_clear_pointer (&options->replication_backpressure, g_free);
  g_clear_pointer (&options->max_guest_latency, g_free);
}

GOptionEntry *
vms_cli_copy_option_entries (VmsCliCopyOptions *options)
{
  const GOptionEntry entries[] = {
    { "sink", 's', 0, G_OPTION_ARG_STRING, &options->sink,
      "NBD URI of the vmshift sink", "URI" },
    { "job", 'j', 0, G_OPTION_ARG_STRING, &options->job_id,
      "Name the new job: letters, digits, '-', '_', '.' (default: VM name "
      "and time)",
      "ID" },
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
    { "rounds", 'n', 0, G_OPTION_ARG_STRING, &options->rounds,
      "Run exactly N dirty rounds, 0..1000 (0: the background copy only)",
      "N" },
    { "until-converged", 0, 0, G_OPTION_ARG_NONE, &options->until_converged,
      "Run rounds until small or no longer shrinking (default)", NULL },
    { "converge-bytes", 0, 0, G_OPTION_ARG_STRING, &options->converge,
      "A round this small ends the rounds (default 16M)", "SIZE" },
    /* No -c: that is --connect wherever vmshift takes a libvirt URI,
     * as for virsh. */
    { "connections", 0, 0, G_OPTION_ARG_STRING, &options->connections,
      "Connections per side and disk, 1..16 (default: CPUs, at most 4; "
      "the disks together at most 16)",
      "N" },
    { "queue-depth", 'q', 0, G_OPTION_ARG_STRING, &options->queue_depth,
      "Requests in flight per connection, 1..256 (default 64)", "N" },
    { "request-size", 0, 0, G_OPTION_ARG_STRING, &options->request_size,
      "Bytes per request (default 256K)", "SIZE" },
    { "checkpoint-bytes", 0, 0, G_OPTION_ARG_STRING, &options->checkpoint_bytes,
      "FLUSH and checkpoint after this much data (default 64M)", "SIZE" },
    { "checkpoint-seconds", 0, 0, G_OPTION_ARG_STRING,
      &options->checkpoint_seconds,
      "... or after this many seconds (default 10)", "S" },
    { "io-timeout", 0, 0, G_OPTION_ARG_STRING, &options->io_timeout,
      "Give up on a silent peer after S seconds (default 60)", "S" },
    { "retry-timeout", 0, 0, G_OPTION_ARG_STRING, &options->retry_timeout,
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
    { "compare", 0, 0, G_OPTION_ARG_STRING, &options->compare,
      "Send only the chunks whose hash differs from the replica's: auto "
      "(rounds of bitmaps coarser than 4K, and disks whose bitmaps were "
      "lost), always (also every background copy), never",
      "WHEN" },
    { "write-backpressure", 0, 0, G_OPTION_ARG_STRING,
      &options->write_backpressure,
      "When dirty rounds stop converging, throttle the guest's disk writes "
      "(QEMU I/O limits, removed when the run ends): auto (steps down from "
      "the rate it writes, default), off, or RATE (bytes/s, e.g. 2M)",
      "auto|off|RATE" },
    { "max-guest-latency", 0, 0, G_OPTION_ARG_STRING,
      &options->max_guest_latency,
      "Replication backpressure: slow the copy while the guest's disk "
      "writes take more than MS milliseconds longer than before it, speed "
      "it up when they are back (default: off)",
      "MS" },
    { "replication-backpressure", 0, 0, G_OPTION_ARG_STRING,
      &options->replication_backpressure,
      "auto (the default with --max-guest-latency) or off (off all the "
      "same)",
      "auto|off" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &options->json,
      "Print one JSON event per line on stdout", NULL },
    G_OPTION_ENTRY_NULL
  };

  return g_memdup2 (entries, sizeof entries);
}
