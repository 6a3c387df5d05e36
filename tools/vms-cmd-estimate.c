/* vmshift estimate: observe running VMs and the link to the sink, then
 * predict how long migrating them takes, their downtime, and the method.
 * The observing is tools/engine/vms-estimate's, the model
 * lib/vms-estimate-model's, the result file lib/vms-estimate-file's: this
 * file parses the options, reports, and gives the exit code.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-cli.h"
#include "vms-cli-server.h"
#include "vms-config.h"
#include "vms-estimate.h"
#include "vms-granularity.h"
#include "vms-job.h"
#include "vms-path.h"
#include "vms-sink-client.h"
#include "vms-option.h"

#include <errno.h>

/* Typo guards. */
#define MAX_SHIPPING_HOURS (366 * 24.0)
#define MAX_RATE (G_GUINT64_CONSTANT (1) << 40)
#define MAX_SEED_BYTES (G_GUINT64_CONSTANT (1) << 50)

static const char *const description
    = "Each SOURCE is a running QEMU (qmp:PATH, a monitor vmshift may use\n"
      "alone), or with --connect URI a libvirt domain (name, UUID or id);\n"
      "several are estimated as a group sharing one link.  URI is\n"
      "the sink, as for 'vmshift sync'; its @probe export measures the link.\n"
      "\n"
      "estimate watches each VM for --window seconds, sampling every\n"
      "--interval: a temporary dirty bitmap per disk (always removed), the\n"
      "RAM dirty rate (calc-dirty-rate, page sampling), the disks' data and\n"
      "the share of RAM that is not zero.  Each bitmap has the granularity\n"
      "that 'vmshift migrate' would choose for the disk (--granularity and\n"
      "--bitmap-memory as there), so a disk's dirty bytes are those its\n"
      "rounds would copy.  Then it probes the link with 1, 2, 4 and 8\n"
      "connections and two request sizes, maps the disks again (their\n"
      "growth), times an empty round and probes each disk's background copy\n"
      "and dirty rounds with the best of those, and predicts each phase,\n"
      "the downtime of both switchover modes, the total, and the method.\n"
      "The result is kept in the state directory as estimate-ID.json;\n"
      "'vmshift migrate --estimate ID' uses its tuning and reports\n"
      "predicted against actual.  The model is in vmshift(1).\n";

typedef struct
{
  char *sink;                  /* --sink */
  char *id;                    /* --id, or the time */
  char *state_dir;             /* --state-dir, or the default */
  char *window;                /* --window as typed */
  char *interval;              /* --interval as typed */
  char *probe;                 /* --probe-seconds as typed */
  char *shipping;              /* --seed-shipping-hours as typed */
  int window_s;                /* --window parsed */
  int interval_s;              /* --interval parsed */
  double probe_seconds;        /* --probe-seconds parsed */
  char *bandwidth;             /* --bandwidth as typed */
  char *seed_capacity;         /* --seed-capacity as typed */
  char *seed_rate;             /* --seed-rate as typed */
  gboolean json;               /* --json */
  char *connect;               /* --connect: SOURCEs are libvirt domains */
  char *granularity;           /* --granularity as typed */
  char *bitmap_memory;         /* --bitmap-memory as typed */
  char *converge;              /* --converge-bytes as typed */
  guint32 granularity_bytes;   /* --granularity parsed, 0: chosen per disk */
  guint64 bitmap_memory_bytes; /* --bitmap-memory parsed */
  guint64 bandwidth_bytes;     /* --bandwidth parsed, 0: none */
  VmsEstimateParams params;    /* the model's, with the seed options */
  VmsCliServerOptions server;  /* --server: vmshiftd estimates */
} EstimateOptions;

static void
options_clear (EstimateOptions *options)
{
  g_clear_pointer (&options->sink, g_free);
  g_clear_pointer (&options->id, g_free);
  g_clear_pointer (&options->state_dir, g_free);
  g_clear_pointer (&options->bandwidth, g_free);
  g_clear_pointer (&options->seed_capacity, g_free);
  g_clear_pointer (&options->seed_rate, g_free);
  g_clear_pointer (&options->connect, g_free);
  g_clear_pointer (&options->window, g_free);
  g_clear_pointer (&options->interval, g_free);
  g_clear_pointer (&options->probe, g_free);
  g_clear_pointer (&options->shipping, g_free);
  g_clear_pointer (&options->granularity, g_free);
  g_clear_pointer (&options->bitmap_memory, g_free);
  g_clear_pointer (&options->converge, g_free);
  vms_cli_server_options_clear (&options->server);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (EstimateOptions, options_clear)

/* ---- options ---- */

static gboolean
usage_error (GError **error, const char *message)
{
  g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       message);
  return FALSE;
}

/* The model's parameters: vmshift's defaults, the seed device, and how
 * long this host keeps written data in its page cache. */
static gboolean
check_params (EstimateOptions *options, GError **error)
{
  VmsEstimateParams *params = &options->params;
  guint64 seed_rate = 0;
  double hours = 0;

  vms_estimate_params_init_for_host (params);
  if (!vms_option_size ("--seed-capacity", options->seed_capacity, 0,
                        MAX_SEED_BYTES, &params->seed_capacity, error)
      || !vms_option_size ("--converge-bytes", options->converge, 0,
                           MAX_SEED_BYTES, &params->converge_bytes, error)
      || !vms_option_rate ("--seed-rate", options->seed_rate, 1024, MAX_RATE,
                           &seed_rate, error)
      || !vms_option_decimal ("--seed-shipping-hours", options->shipping,
                              "a number of hours", 0, MAX_SHIPPING_HOURS,
                              &hours, error))
    return FALSE;
  params->seed_rate = seed_rate;
  /* migrate ends its rounds by size, not time, when given one. */
  if (options->converge)
    params->converge_s = 0;
  params->seed_shipping_s = hours * 3600;
  return TRUE;
}

/* The window, its interval (at most the window) and the probes' time. */
static gboolean
check_times (EstimateOptions *options, GError **error)
{
  guint64 window = options->window_s, interval = options->interval_s;

  if (!vms_option_seconds ("--window", options->window, 1,
                           VMS_ESTIMATE_MAX_WINDOW_S, &window, error)
      || !vms_option_seconds ("--interval", options->interval, 1, window,
                              &interval, error)
      || !vms_option_decimal (
          "--probe-seconds", options->probe, "a number of seconds", 0.001,
          VMS_ESTIMATE_MAX_PROBE_SECONDS, &options->probe_seconds, error))
    return FALSE;
  options->window_s = window;
  /* The default interval fits any window. */
  options->interval_s = options->interval ? interval : MIN (interval, window);
  return TRUE;
}

static gboolean
check_options (EstimateOptions *options, int argc, GError **error)
{
  g_autoptr (GError) id_error = NULL;

  if (argc < 2 || !options->sink)
    return usage_error (error, "expected SOURCE... --sink URI (see 'vmshift "
                               "estimate --help')");
  if (!vms_sink_client_check_uri (options->sink, error)
      || !check_times (options, error) || !check_params (options, error)
      || !vms_granularity_parse_options (
          options->granularity, options->bitmap_memory,
          &options->granularity_bytes, &options->bitmap_memory_bytes, error))
    return FALSE;
  if (!options->id)
    options->id = g_strdup_printf ("%" G_GINT64_FORMAT,
                                   g_get_real_time () / G_USEC_PER_SEC);
  if (!vms_job_id_is_valid (options->id, &id_error))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--id '%s': %s", options->id, id_error->message);
      return FALSE;
    }
  /* QEMU's NBD servers and its memory samples are files in it, and QEMU
   * does not share our working directory. */
  if (!options->state_dir)
    options->state_dir = vms_job_default_state_dir ();
  vms_path_make_absolute (&options->state_dir, vms_path_absolute);
  vms_path_make_absolute (&options->sink, vms_path_absolute_sink_uri);
  vms_path_make_absolute (&options->connect, vms_path_absolute_libvirt_uri);
  if (!VMS_HAVE_LIBVIRT && options->connect)
    return usage_error (error, "this vmshift was built without libvirt: "
                               "--connect is not available");
  /* The result is written there after minutes of observing. */
  return vms_option_rate ("--bandwidth", options->bandwidth, 1024, MAX_RATE,
                          &options->bandwidth_bytes, error)
         && vms_job_check_state_dir (options->state_dir, error);
}

/* With --server: what vmshiftd's estimates take (its state directory,
 * vmshift's default granularity, no seed). */
static gboolean
check_server_options (EstimateOptions *options, int argc, GError **error)
{
  const char *refused = options->state_dir       ? "--state-dir"
                        : options->seed_capacity ? "--seed-capacity"
                        : options->seed_rate     ? "--seed-rate"
                        : options->shipping      ? "--seed-shipping-hours"
                        : options->granularity   ? "--granularity"
                        : options->bitmap_memory ? "--bitmap-memory"
                                                 : NULL;

  if (argc < 2 || !options->sink)
    return usage_error (error, "expected SOURCE... --sink URI (see 'vmshift "
                               "estimate --help')");
  if (refused)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "%s cannot go to vmshiftd, whose estimates take its "
                   "defaults",
                   refused);
      return FALSE;
    }
  return check_times (options, error)
         && vms_option_rate ("--bandwidth", options->bandwidth, 1024, MAX_RATE,
                             &options->bandwidth_bytes, error);
}

static gboolean
parse_options (EstimateOptions *options, int *argc, char ***argv,
               GError **error)
{
  g_autofree GOptionEntry *server_entries
      = vms_cli_server_option_entries (&options->server);
  const GOptionEntry entries[] = {
    { "sink", 's', 0, G_OPTION_ARG_STRING, &options->sink,
      "NBD URI of the vmshift sink (its @probe export is used)", "URI" },
    { "id", 0, 0, G_OPTION_ARG_STRING, &options->id,
      "Name of this estimate (default: the time)", "ID" },
    { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &options->state_dir,
      "Where the estimate is kept (default /var/lib/vmshift as root)", "DIR" },
    { "window", 'w', 0, G_OPTION_ARG_STRING, &options->window,
      "Observe for S seconds (default 120)", "S" },
    { "interval", 'i', 0, G_OPTION_ARG_STRING, &options->interval,
      "Sample every S seconds (default 5)", "S" },
    { "probe-seconds", 0, 0, G_OPTION_ARG_STRING, &options->probe,
      "Measure each link configuration and each disk's copy for S seconds "
      "(default 2)",
      "S" },
    { "bandwidth", 0, 0, G_OPTION_ARG_STRING, &options->bandwidth,
      "The migration will be limited to RATE bytes/s", "RATE" },
    { "seed-capacity", 0, 0, G_OPTION_ARG_STRING, &options->seed_capacity,
      "A seed device of SIZE is available", "SIZE" },
    { "seed-rate", 0, 0, G_OPTION_ARG_STRING, &options->seed_rate,
      "... written and read at RATE bytes/s", "RATE" },
    { "seed-shipping-hours", 0, 0, G_OPTION_ARG_STRING, &options->shipping,
      "... and shipped in H hours", "H" },
    { "granularity", 'g', 0, G_OPTION_ARG_STRING, &options->granularity,
      "Bytes per dirty-bitmap bit, as for migrate (default: chosen per disk "
      "as migrate would, from 4K)",
      "SIZE" },
    { "bitmap-memory", 0, 0, G_OPTION_ARG_STRING, &options->bitmap_memory,
      "QEMU memory for the dirty bitmaps of all disks, as for migrate "
      "(default 64M)",
      "SIZE" },
    { "converge-bytes", 0, 0, G_OPTION_ARG_STRING, &options->converge,
      "The migration's --converge-bytes (default: as migrate, a round that "
      "copies within the downtime objective's share)",
      "SIZE" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &options->json,
      "Print the result as one JSON event on stdout", NULL },
    { "connect", 'c', 0, G_OPTION_ARG_STRING, &options->connect,
      "The SOURCEs are domains of the libvirt at URI", "URI" },
    G_OPTION_ENTRY_NULL
  };
  g_autoptr (GOptionContext) context
      = g_option_context_new ("[--connect URI] SOURCE... --sink URI");

  g_option_context_set_summary (
      context, "Predict the duration, downtime and method of migrating "
               "running VMs, before anything is copied.");
  g_option_context_set_description (context, description);
  g_option_context_add_main_entries (context, entries, NULL);
  g_option_context_add_main_entries (context, server_entries, NULL);
  g_set_prgname ("vmshift estimate");
  if (!g_option_context_parse (context, argc, argv, error))
    return FALSE;
  return options->server.url ? check_server_options (options, *argc, error)
                             : check_options (options, *argc, error);
}

/* ---- the report ---- */

static void
print_disk (const VmsEstimateFileDisk *disk, int window_s)
{
  g_autofree char *size = vms_format_size (disk->size);
  g_autofree char *allocated = vms_format_size (disk->allocated);
  g_autofree char *data = vms_format_size (disk->data);
  guint64 last = disk->dirty->len ? g_array_index (disk->dirty, guint64,
                                                   disk->dirty->len - 1)
                                  : 0;
  g_autofree char *dirtied = vms_format_size (last);
  g_autofree char *read = vms_format_size (disk->copy_rate);
  g_autofree char *granularity = vms_granularity_format (disk->granularity);

  g_print ("  disk %s: %s, %s allocated, %s data, copied at %s/s; %s "
           "dirtied in %d s in bits of %s (%s)\n",
           disk->name, size, allocated, data, read, dirtied, window_s,
           granularity,
           disk->granularity_reason ? disk->granularity_reason : "");
}

/* The seed route as a plan: what goes on the device, what over the link
 * afterwards, and the commands when it is the one recommended. */
static void
print_seed_plan (const VmsEstimate *e, gboolean recommended)
{
  g_autofree char *device = vms_format_size (e->seed_device_bytes);
  g_autofree char *link = vms_format_size (e->seed_link_bytes);

  g_print ("  %-22s %10.1f s: %s of data on the device (less after zstd), "
           "written, shipped and imported in %.1f h; then %s of disk delta "
           "and the RAM over the link\n",
           "seed route", e->seed_s, device, e->seed_period_s / 3600, link);
  if (!recommended)
    return;
  g_print ("  plan: vmshift seed export SOURCE --to DEVICE --job JOB; ship "
           "DEVICE; vmshift-sink seed import --dir DIR DEVICE; vmshift "
           "migrate --resume JOB --sink URI ...\n");
}

/* --compress zstd: what the sample says, and whether it pays. */
static void
print_compression (const VmsEstimateFileVm *vm)
{
  const VmsEstimate *e = &vm->prediction;
  g_autofree char *rate = vms_format_size (vm->ram_zstd_rate);

  if (vm->ram_zstd_ratio <= 0)
    return;
  g_print ("  %-22s %10.1f s  (--compress zstd: its pages to %.0f%%, zstd "
           "at %s/s on one CPU here; %s: %s)\n",
           "memory, compressed", e->compress_memory_s, vm->ram_zstd_ratio * 100,
           rate, e->compress ? "recommended" : "not worth it",
           e->compress_reason);
}

/* What backpressure does to the guest in a migration with this estimate
 * (write and RAM backpressure are migrate's defaults, replication
 * backpressure its recommendation), which the times printed include. */
static void
print_backpressure (const VmsEstimate *e)
{
  if (e->backpressure_rate > 0)
    {
      g_autofree char *cap = vms_format_size (e->backpressure_rate);

      g_print ("  write backpressure: the guest's disk writes held to %s/s "
               "first%s, %.0f%% of them left at the end (migrate "
               "--write-backpressure auto, its default; times above "
               "with it)\n",
               cap, e->disks_converge_with_backpressure ? "" : " (not enough)",
               e->write_share * 100);
    }
  if (e->guest_latency_ms > 0)
    {
      g_autofree char *rate = vms_format_size (e->replication_rate);

      g_print ("  replication backpressure: the copy made the guest's writes "
               "take %.2f ms (%.2f ms before); migrate --max-guest-latency "
               "%u slows it to about %s/s to keep them within %u ms more "
               "(migrate --estimate applies it; times above with it)\n",
               e->latency_copying_us / 1000, e->latency_before_us / 1000,
               e->guest_latency_ms, rate, e->guest_latency_ms);
    }
  else if (e->latency_copying_us > 0)
    g_print ("  replication backpressure: not needed (the guest's writes "
             "took %.2f ms with the copy running, %.2f ms before)\n",
             e->latency_copying_us / 1000, e->latency_before_us / 1000);
  if (e->ram_throttle_percent > 0)
    g_print ("  RAM backpressure: QEMU's auto-converge slows the vCPUs by "
             "up to %.0f%% (armed by --write-backpressure auto; times above "
             "with it)\n",
             e->ram_throttle_percent);
}

static void
print_vm (const VmsEstimateFileVm *vm, int window_s)
{
  const VmsEstimate *e = &vm->prediction;
  g_autofree char *ram = vms_format_size (vm->ram_size);
  g_autofree char *write_rate = vms_format_size (e->disk_write_rate);
  g_autofree char *ram_rate = vms_format_size (vm->ram_dirty_rate);
  g_autofree char *long_rate = vms_format_size (vm->ram_dirty_long_rate);
  g_autofree char *over = g_strdup_printf (" (%s/s over %.0f s)", long_rate,
                                           vm->ram_dirty_long_s);
  gboolean mirror = e->downtime_mirror_s < e->downtime_pause_s;

  g_print ("VM %s (%s): RAM %s, %.0f%% not zero, dirtied at %s/s%s\n",
           *vm->vm_name ? vm->vm_name : "(unnamed)", vm->source, ram,
           vm->ram_nonzero * 100, ram_rate,
           vm->ram_dirty_long_s > 0 ? over : "");
  for (guint i = 0; i < vm->disks->len; i++)
    print_disk (vm->disks->pdata[i], window_s);
  g_print ("  disks write new data at %s/s\n", write_rate);
  g_print ("  %-22s %10.1f s\n", "background copy", e->background_s);
  g_print ("  %-22s %10.1f s  (%.1f rounds%s)\n", "dirty rounds", e->rounds_s,
           e->rounds_expected,
           e->disks_converge ? ""
           : e->backpressure_rate > 0
               ? ", converging only with write backpressure"
               : ", not converging");
  g_print ("  %-22s %10.1f s  (%u passes%s%s)\n", "memory pre-copy",
           e->memory_s, e->memory_passes, e->compress ? ", compressed" : "",
           e->memory_converges ? ""
           : e->ram_throttle_percent > 0
               ? ", converging only with RAM backpressure"
               : ", not converging");
  print_compression (vm);
  g_print ("  %-22s %10.0f ms with --final-sync pause, %.0f ms with "
           "mirror, %.0f ms with auto (the default: %s after %u round%s)\n",
           "downtime", e->downtime_pause_s * 1000, e->downtime_mirror_s * 1000,
           e->downtime_auto_s * 1000, e->auto_mirror ? "mirror" : "pause",
           e->auto_rounds, e->auto_rounds == 1 ? "" : "s");
  g_print ("  %-22s %10.1f s with pause, %.1f s with mirror, %.1f s with "
           "auto\n",
           "total", e->total_pause_s, e->total_mirror_s, e->total_auto_s);
  if (e->seed_s > 0)
    print_seed_plan (e, e->method == VMS_ESTIMATE_SEED);
  print_backpressure (e);
  g_print ("  recommended: %s%s: %s\n", vms_estimate_method_name (e->method),
           e->method == VMS_ESTIMATE_NETWORK
               ? (mirror ? ", --final-sync mirror" : ", --final-sync pause")
               : "",
           e->reason);
}

static void
print_human (const VmsEstimateFile *estimate)
{
  g_autofree char *rate = vms_format_size (estimate->best.throughput);
  g_autofree char *request = vms_format_size (estimate->best.request_size);

  for (guint v = 0; v < estimate->vms->len; v++)
    print_vm (estimate->vms->pdata[v], estimate->window_s);
  g_print ("link: %s/s with --connections %u --request-size %s; "
           "round trip %.2f ms\n",
           rate, estimate->best.connections, request, estimate->rtt_s * 1000);
  if (estimate->vms->len > 1)
    {
      g_print ("group, one after another over the link (%.1f s):",
               estimate->group_s);
      for (guint v = 0; v < estimate->vms->len; v++)
        g_print (" %s",
                 ((VmsEstimateFileVm *)estimate->vms->pdata[estimate->order[v]])
                     ->source);
      g_print ("\n");
    }
}

/* Keep the estimate, then show it: one JSON event, or text for people. */
static gboolean
report (const EstimateOptions *options, const VmsEstimateFile *estimate,
        VmsProgress *progress, GError **error)
{
  g_autofree char *path
      = vms_estimate_file_path (options->state_dir, options->id);

  if (!vms_estimate_file_save (estimate, options->state_dir, error))
    return FALSE;
  if (options->json)
    {
      JsonObject *fields = json_object_new ();

      json_object_set_string_member (fields, "file", path);
      json_object_set_member (fields, "estimate",
                              vms_estimate_file_to_json (estimate));
      vms_progress_event (progress, "estimate", fields, "estimate %s",
                          options->id);
    }
  else
    {
      print_human (estimate);
      g_print ("kept in %s; use it with 'vmshift migrate --estimate %s'\n",
               path, options->id);
    }
  return TRUE;
}

/* Observe, predict and report, until done or cancelled. */
static gboolean
estimate (EstimateOptions *options, const char *const *sources,
          GCancellable *cancellable, GError **error)
{
  g_autoptr (VmsProgress) progress = vms_progress_new (
      options->json ? VMS_PROGRESS_JSON : VMS_PROGRESS_TEXT);
  VmsEstimateConfig config = {
    .sink = options->sink,
    .id = options->id,
    .state_dir = options->state_dir,
    .connect = options->connect,
    .sources = sources,
    .window_s = options->window_s,
    .interval_s = options->interval_s,
    .probe_seconds = options->probe_seconds,
    .granularity = options->granularity_bytes,
    .bitmap_memory = options->bitmap_memory_bytes,
    .progress = progress,
  };
  g_autoptr (VmsEstimateFile) result = NULL;

  if (g_mkdir_with_parents (options->state_dir, 0700) < 0)
    {
      int code = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (code),
                   "cannot create %s: %s", options->state_dir,
                   g_strerror (code));
      return FALSE;
    }
  result = vms_estimate_measure (&config, cancellable, error);
  if (!result)
    return FALSE;
  vms_estimate_predict (result, &options->params,
                        (double)options->bandwidth_bytes);
  return report (options, result, progress, error);
}

/* vmshiftd observes and predicts; the client follows it to its end. */
static int
estimate_on_server (const EstimateOptions *options, int argc, char **argv)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree char *body = NULL;
  g_autofree char *what = NULL;

  json_builder_begin_object (b);
  if (options->id)
    {
      json_builder_set_member_name (b, "id");
      json_builder_add_string_value (b, options->id);
    }
  json_builder_set_member_name (b, "sink");
  json_builder_add_string_value (b, options->sink);
  if (options->connect)
    {
      json_builder_set_member_name (b, "connect");
      json_builder_add_string_value (b, options->connect);
    }
  json_builder_set_member_name (b, "sources");
  json_builder_begin_array (b);
  for (int i = 1; i < argc; i++)
    json_builder_add_string_value (b, argv[i]);
  json_builder_end_array (b);
  json_builder_set_member_name (b, "window-s");
  json_builder_add_int_value (b, options->window_s);
  json_builder_set_member_name (b, "interval-s");
  json_builder_add_int_value (b, options->interval_s);
  json_builder_set_member_name (b, "probe-seconds");
  json_builder_add_double_value (b, options->probe_seconds);
  json_builder_set_member_name (b, "bandwidth");
  json_builder_add_int_value (b, options->bandwidth_bytes);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  body = json_to_string (root, FALSE);
  what = g_strdup_printf ("the estimate%s%s", options->id ? " " : "",
                          options->id ? options->id : "");
  return vms_cli_server_start (&options->server, "estimate", what, "POST",
                               "/estimates", "application/json", body,
                               options->json);
}

int
vms_cmd_estimate (int argc, char **argv)
{
  g_auto (EstimateOptions) options
      = { .window_s = VMS_ESTIMATE_DEFAULT_WINDOW_S,
          .interval_s = VMS_ESTIMATE_DEFAULT_INTERVAL_S,
          .probe_seconds = VMS_ESTIMATE_DEFAULT_PROBE_SECONDS,
          .bitmap_memory_bytes = VMS_GRANULARITY_DEFAULT_BITMAP_MEMORY };
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) sources = g_ptr_array_new_with_free_func (g_free);
  gboolean ok;

  ok = parse_options (&options, &argc, &argv, &error);
  if (ok && options.server.url)
    return estimate_on_server (&options, argc, argv);
  /* QMP sockets; with --connect, domain names (left as they are). */
  for (int i = 1; ok && i < argc; i++)
    g_ptr_array_add (sources, options.connect
                                  ? g_strdup (argv[i])
                                  : vms_path_absolute_qmp_address (argv[i]));
  g_ptr_array_add (sources, NULL);
  ok = ok
       && estimate (&options, (const char *const *)sources->pdata,
                    vms_cli_cancel_on_signals (), &error);
  if (ok)
    return VMS_EXIT_OK;
  vms_cli_error ("estimate", "%s", error->message);
  return vms_cli_exit_code (error);
}
