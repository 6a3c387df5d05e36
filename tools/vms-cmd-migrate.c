/* vmshift migrate: the command line of a live migration; the engine
 * (tools/engine/vms-migration) does it.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-cli.h"
#include "vms-cli-copy.h"
#include "vms-cli-server.h"
#include "vms-migration.h"
#include "vms-option.h"
#include "vms-path.h"

static const char *const description
    = "SOURCE is the running QEMU: qmp:PATH (a QMP monitor vmshift may use\n"
      "alone).  The destination QEMU waits with -incoming defer, each disk\n"
      "opened (format raw) on its replica at the sink, with the same device\n"
      "ids.  URI names the sink as for 'vmshift sync'.\n"
      "\n"
      "migrate copies the disks while the VM runs (background copy, dirty\n"
      "rounds), then migrates memory with QEMU's pre-copy, and switches over:\n"
      "  --final-sync auto    (default) pause when the last round fits the\n"
      "                       --max-downtime objective at the measured rates,\n"
      "                       mirror otherwise; the report says why\n"
      "  --final-sync pause   the last dirty round runs while QEMU holds the\n"
      "                       source paused before switchover (no guest\n"
      "                       overhead; that round is part of the downtime)\n"
      "  --final-sync mirror  before memory, a write-blocking mirror sends\n"
      "                       every guest write to the sink as it happens\n"
      "                       (guests pay write latency; the downtime holds\n"
      "                       only a FLUSH)\n"
      "The replicas are committed only once the destination runs.  Any\n"
      "failure before that, Ctrl-C or 'vmshift abort JOB' cancels the\n"
      "migration: the source VM keeps running, the replicas stay incomplete\n"
      "and 'vmshift migrate --resume JOB' goes on without sending again what\n"
      "the sink already holds.  --resume also takes a job of 'vmshift sync'.\n"
      "A memory stream broken by a lost connection is started again, the\n"
      "disks kept as they are, within --retry-timeout, when the destination\n"
      "can take it: always with --connect (libvirt starts its QEMU anew);\n"
      "a QEMU 7.2 destination exits instead, so the migration rolls back and\n"
      "says to start it again before --resume.\n"
      "\n"
      "Memory to a --dest-uri off loopback needs --tls (or --insecure for\n"
      "clear text).  With --tls both QEMUs read the sink URI's keys: the\n"
      "directory of its tls-psk-file (which must be named keys.psk), or its\n"
      "tls-certificates directory (ca-cert.pem; server-cert.pem and\n"
      "server-key.pem on the destination), at the same path on both hosts.\n"
      "QEMU checks an X.509 certificate against the host of the address,\n"
      "or on a unix socket against the sink URI's tls-hostname= (default\n"
      "localhost).\n"
      "--resume keeps a job's --tls (--insecure is then refused); give\n"
      "--insecure again with --resume of a job in clear text.\n"
      "\n"
      "With --connect URI, DOMAIN is a libvirt domain and DESTURI the\n"
      "destination libvirt, as for 'virsh migrate': vmshift copies the\n"
      "disks to the sink on the destination host and keeps them in sync\n"
      "with the mirror, then libvirt migrates the domain with every disk\n"
      "pointing at its replica (in --replica-dir).  Install\n"
      "vmshift-libvirt-hook on the destination to let it point the disks\n"
      "at the replicas where its sink keeps them.\n"
      "\n"
      "Relative paths are taken from the current directory and saved\n"
      "absolute in the job, as for 'vmshift sync'; --replica-dir, a\n"
      "directory on the destination host, must be absolute.\n";

typedef struct
{
  VmsCliCopyOptions base;   /* disk copy options, shared with sync */
  char *dest_qmp;           /* --dest-qmp */
  char *dest_uri;           /* --dest-uri */
  char *dest_restart;       /* --dest-restart COMMAND */
  char *final_sync;         /* --final-sync */
  char *on_miss;            /* --on-downtime-miss */
  char *bandwidth;          /* --bandwidth (disks and RAM) */
  char *max_downtime;       /* --max-downtime MS */
  char *multifd;            /* --multifd N */
  char *compress;           /* --compress METHOD */
  gboolean auto_converge;   /* --auto-converge */
  char *switchover_timeout; /* --switchover-timeout S */
  gboolean suspend;         /* --suspend: leave the destination paused */
  char *memory_timeout;     /* --memory-timeout S */
  char *estimate;           /* --estimate ID */
  gboolean tls;             /* --tls: memory over TLS */
  gboolean insecure;        /* --insecure: clear-text memory off loopback */
  /* The libvirt backend, as virsh migrate names them. */
  char *connect;            /* --connect URI: DOMAIN and DESTURI follow */
  gboolean live;            /* --live: the only kind; accepted */
  gboolean p2p;             /* --p2p */
  gboolean persistent;      /* --persistent */
  gboolean undefine_source; /* --undefinesource */
  gboolean verbose;         /* --verbose */
  char *timeout;            /* --timeout S */
  char *migrate_uri;        /* --migrateuri */
  char *dname;              /* --dname */
  char *replica_dir;        /* --replica-dir */
} MigrateOptions;

/* --connect URI DOMAIN DESTURI: what libvirt's backend takes. */
static gboolean
check_libvirt_arguments (MigrateOptions *options, int argc,
                         VmsMigrationConfig *config, GError **error)
{
  VmsCliCopyOptions *base = &options->base;

  if (base->resume ? argc > 1 : argc != 3)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                   "expected --connect URI DOMAIN DESTURI --sink URI, "
                   "or --resume JOB (see 'vmshift migrate --help')");
      return FALSE;
    }
  if (!base->resume && !base->sink)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                   "--sink is required: the sink on the destination "
                   "host that receives the disks");
      return FALSE;
    }
  if (options->dest_qmp || options->dest_uri || options->dest_restart)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                   "--dest-qmp, --dest-uri and --dest-restart drive QEMU "
                   "directly; with --connect libvirt starts the "
                   "destination (use --migrateuri for where memory "
                   "goes)");
      return FALSE;
    }
  /* libvirt chooses where memory goes (--migrateuri, or the destination's
   * name): vmshift cannot tell whether it stays on this host. */
  if (options->insecure)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                   "--insecure is for --dest-uri; with --connect libvirt "
                   "sends memory in clear text unless --tls is given");
      return FALSE;
    }
  if (options->compress && !g_str_equal (options->compress, "none"))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                   "--compress %s is for QEMU driven directly (--dest-qmp, "
                   "--dest-uri): with --connect libvirt sets QEMU's "
                   "migration parameters itself, without multifd "
                   "compression",
                   options->compress);
      return FALSE;
    }
  if (options->final_sync && !g_str_equal (options->final_sync, "mirror")
      && !g_str_equal (options->final_sync, "auto"))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                   "--final-sync %s is not possible with --connect: "
                   "libvirt drives the switchover and does not let "
                   "vmshift hold the source paused before it, so only "
                   "mirror keeps the replicas exact",
                   options->final_sync);
      return FALSE;
    }
  /* It names a directory on the destination host, which vmshift's
   * working directory says nothing about. */
  if (options->replica_dir && !g_path_is_absolute (options->replica_dir))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                   "--replica-dir %s: give the absolute path of the sink's "
                   "directory on the destination host",
                   options->replica_dir);
      return FALSE;
    }
  config->mode = VMS_MIGRATE_FINAL_MIRROR;
  return TRUE;
}

/* Typo guards, and QEMU's own limits where it has them. */
#define MAX_DOWNTIME_MS 2000000 /* QEMU's downtime-limit: 2000 s */
#define MAX_MULTIFD 255         /* QEMU's multifd-channels */
#define MAX_RATE (G_GUINT64_CONSTANT (1) << 40)
#define MAX_SECONDS (7 * 24 * 3600)

static gboolean
parse_numbers (MigrateOptions *options, VmsMigrationConfig *config,
               GError **error)
{
  guint64 downtime = config->max_downtime_ms;
  guint64 multifd = config->multifd_channels;
  guint64 switchover = config->switchover_timeout_s;
  guint64 memory = config->memory_timeout_s;
  guint64 timeout = config->libvirt.timeout_s;

  if (!vms_option_integer ("--max-downtime", options->max_downtime,
                           "a number of milliseconds", 1, MAX_DOWNTIME_MS,
                           &downtime, error)
      || !vms_option_count ("--multifd", options->multifd, 0, MAX_MULTIFD,
                            &multifd, error)
      || !vms_option_seconds ("--switchover-timeout",
                              options->switchover_timeout, 1, MAX_SECONDS,
                              &switchover, error)
      || !vms_option_seconds ("--memory-timeout", options->memory_timeout, 0,
                              MAX_SECONDS, &memory, error)
      || !vms_option_seconds ("--timeout", options->timeout, 1, MAX_SECONDS,
                              &timeout, error)
      || !vms_option_rate ("--bandwidth", options->bandwidth, 1024, MAX_RATE,
                           &config->bandwidth, error))
    return FALSE;
  config->max_downtime_ms = downtime;
  config->multifd_channels = multifd;
  config->switchover_timeout_s = switchover;
  config->memory_timeout_s = memory;
  config->libvirt.timeout_s = timeout;
  return TRUE;
}

/* A new migration driven over QMP needs all three; say which is
 * missing. */
static gboolean
check_required (const MigrateOptions *options, GError **error)
{
  const char *missing = !options->base.sink  ? "--sink URI"
                        : !options->dest_qmp ? "--dest-qmp ADDRESS"
                        : !options->dest_uri ? "--dest-uri URI"
                                             : NULL;

  if (!missing)
    return TRUE;
  g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
               "%s is required for a new migration (see 'vmshift migrate "
               "--help')",
               missing);
  return FALSE;
}

/* --dest-restart COMMAND: words as a shell splits them, for a run
 * without one. */
static gboolean
parse_dest_restart (MigrateOptions *options, VmsMigrationConfig *config,
                    GError **error)
{
  g_autoptr (GError) parse_error = NULL;
  g_auto (GStrv) argv = NULL;

  if (!g_shell_parse_argv (options->dest_restart, NULL, &argv, &parse_error))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                   "--dest-restart '%s': %s", options->dest_restart,
                   parse_error->message);
      return FALSE;
    }
  config->dest_restart = g_steal_pointer (&argv);
  return TRUE;
}

static gboolean
check_arguments (MigrateOptions *options, int argc, VmsMigrationConfig *config,
                 GError **error)
{
  VmsCliCopyOptions *base = &options->base;

  if (options->connect)
    {
      if (!check_libvirt_arguments (options, argc, config, error))
        return FALSE;
    }
  else if (options->p2p || options->persistent || options->undefine_source
           || options->timeout || options->migrate_uri || options->dname
           || options->replica_dir || options->verbose)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                   "--p2p, --persistent, --undefinesource, --timeout, "
                   "--migrateuri, --dname, --replica-dir and --verbose "
                   "are for libvirt domains: give --connect URI");
      return FALSE;
    }
  if (!options->connect && (base->resume ? argc > 2 : argc != 2))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                   "expected SOURCE --dest-qmp ADDRESS --dest-uri URI --sink "
                   "URI, or --resume JOB (see 'vmshift migrate --help')");
      return FALSE;
    }
  if (!options->connect && !base->resume && !check_required (options, error))
    return FALSE;
  if (options->final_sync
      && !vms_migrate_final_sync_parse (options->final_sync, &config->mode))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                   "--final-sync is auto, pause or mirror, not '%s'",
                   options->final_sync);
      return FALSE;
    }
  config->mode_set = options->final_sync != NULL;
  if (options->dest_restart && !parse_dest_restart (options, config, error))
    return FALSE;
  if (options->on_miss && !g_str_equal (options->on_miss, "proceed")
      && !g_str_equal (options->on_miss, "hold"))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                   "--on-downtime-miss is proceed or hold, not '%s'",
                   options->on_miss);
      return FALSE;
    }
  config->hold_on_miss = g_strcmp0 (options->on_miss, "hold") == 0;
  /* Before anything is touched; a resumed job, whose saved --dest-uri
   * and --tls count too, is checked by the engine's preflight. */
  if (!options->connect && !base->resume
      && !vms_migration_check_clear_text (options->dest_uri, options->tls,
                                          options->insecure, error))
    return FALSE;
  if (!parse_numbers (options, config, error)
      || (options->compress
          && !vms_memory_compress_parse (options->compress, &config->compress,
                                         error)))
    return FALSE;
  config->compress_set = options->compress != NULL;
  if (options->bandwidth && !base->max_bandwidth)
    base->max_bandwidth = g_strdup (options->bandwidth);
  return vms_cli_copy_options_parse (base, &config->copy, error);
}

static void
options_clear (MigrateOptions *options)
{
  vms_cli_copy_options_clear (&options->base);
  g_clear_pointer (&options->dest_qmp, g_free);
  g_clear_pointer (&options->dest_uri, g_free);
  g_clear_pointer (&options->final_sync, g_free);
  g_clear_pointer (&options->on_miss, g_free);
  g_clear_pointer (&options->bandwidth, g_free);
  g_clear_pointer (&options->dest_restart, g_free);
  g_clear_pointer (&options->estimate, g_free);
  g_clear_pointer (&options->connect, g_free);
  g_clear_pointer (&options->migrate_uri, g_free);
  g_clear_pointer (&options->dname, g_free);
  g_clear_pointer (&options->replica_dir, g_free);
  g_clear_pointer (&options->max_downtime, g_free);
  g_clear_pointer (&options->multifd, g_free);
  g_clear_pointer (&options->compress, g_free);
  g_clear_pointer (&options->switchover_timeout, g_free);
  g_clear_pointer (&options->memory_timeout, g_free);
  g_clear_pointer (&options->timeout, g_free);
}

/* The engine's config from the parsed options (strings taken). */
static void
fill_config (MigrateOptions *options, int argc, char **argv,
             VmsMigrationConfig *config)
{
  VmsMigrationLibvirtConfig *libvirt = &config->libvirt;

  /* Paths absolute from here on: QEMU and libvirtd do not share our
   * working directory, and the job keeps them for --resume elsewhere. */
  config->source = argc == 2 && !options->connect
                       ? vms_path_absolute_qmp_address (argv[1])
                       : NULL;
  config->dest_qmp = vms_path_absolute_qmp_address (options->dest_qmp);
  config->dest_uri = vms_path_absolute_migration_uri (options->dest_uri);
  config->auto_converge = options->auto_converge;
  config->suspend = options->suspend;
  config->tls = options->tls;
  config->insecure = options->insecure;
  config->estimate = g_steal_pointer (&options->estimate);
  libvirt->connect_uri = vms_path_absolute_libvirt_uri (options->connect);
  if (libvirt->connect_uri && argc == 3)
    {
      libvirt->domain = g_strdup (argv[1]);
      libvirt->dest_uri = vms_path_absolute_libvirt_uri (argv[2]);
    }
  libvirt->migrate_uri = g_steal_pointer (&options->migrate_uri);
  libvirt->dname = g_steal_pointer (&options->dname);
  libvirt->replica_dir = g_steal_pointer (&options->replica_dir);
  libvirt->p2p = options->p2p;
  libvirt->persistent = options->persistent;
  libvirt->undefine_source = options->undefine_source;
  libvirt->verbose = options->verbose;
}

/* What to do next, on stderr for people and as an event for programs. */
static void
report_failure (VmsMigration *migration, const GError *error,
                VmsProgress *progress, gboolean json)
{
  VmsJob *job = vms_migration_get_job (migration);
  const GError *rollback_error = vms_migration_get_rollback_error (migration);
  const GError *save_error = vms_migration_get_save_error (migration);
  gboolean rolled_back
      = vms_migration_get_outcome (migration) == VMS_MIGRATION_ROLLED_BACK;
  g_autofree char *hint = NULL;

  vms_cli_error ("migrate", "%s", error->message);
  if (rollback_error)
    vms_cli_error ("migrate", "%s", rollback_error->message);
  if (save_error)
    vms_cli_error ("migrate",
                   "the job's state after this failure was not saved: %s",
                   save_error->message);
  if (!job)
    {
      if (json)
        vms_progress_event (progress, "error", NULL, "%s", error->message);
      return;
    }
  /* A failed save leaves the file with an older state, or none. */
  if (rolled_back)
    hint = g_strdup_printf (
        "migration rolled back: the source VM runs and nothing is lost; the "
        "replicas are incomplete and keep what was copied.  Continue with: "
        "vmshift migrate --resume %s%s%s",
        job->id,
        vms_migration_restart_destination (migration)
            ? " (after starting the destination QEMU again: it exits when a "
              "migration fails)"
            : "",
        job->saved ? "" : " (from its last saved state, if any: see above)");
  else
    hint = g_strdup_printf (
        "job %s stopped in state %s%s", job->id,
        vms_migrate_state_name (vms_migration_get_state (migration)),
        job->saved ? "" : " (not saved: see above)");
  g_printerr ("%s\n", hint);
  if (json)
    vms_progress_event (progress, rolled_back ? "rolled-back" : "error", NULL,
                        "%s; %s", error->message, hint);
}

/* Where the engine's events are shown. */
typedef struct
{
  VmsProgress *progress; /* a bar, text lines or JSON lines */
  gboolean json;         /* progress prints JSON on stdout */
} Output;

/* The engine's events, shown as the user asked; warnings are for people
 * on stderr in any case. */
static void
on_event (const char *event, JsonObject *fields, const char *text,
          gpointer user_data)
{
  Output *output = user_data;

  if (g_str_equal (event, "warning"))
    {
      vms_cli_error ("migrate", "%s", text);
      if (!output->json)
        return;
    }
  vms_progress_forward (output->progress, event, fields, text);
}

static GOptionContext *
option_context (GOptionEntry *entries, GOptionEntry *copy_entries,
                GOptionEntry *server_entries)
{
  GOptionContext *context = g_option_context_new (
      "[SOURCE] --dest-qmp ADDRESS --dest-uri URI --sink URI | --connect URI "
      "DOMAIN DESTURI --sink URI");

  g_option_context_set_summary (context,
                                "Live-migrate a running QEMU VM with its "
                                "disks; roll back on any failure before "
                                "the destination runs.");
  g_option_context_set_description (context, description);
  g_option_context_add_main_entries (context, entries, NULL);
  /* One list in --help: the copy options matter as much here as in sync. */
  g_option_context_add_main_entries (context, copy_entries, NULL);
  g_option_context_add_main_entries (context, server_entries, NULL);
  return context;
}

/* Before the VM is touched: a migration that cannot save its state
 * cannot be resumed or rolled back by vmshift abort. */
static int
check_state_dir (const char *state_dir)
{
  g_autoptr (GError) error = NULL;

  if (vms_job_check_state_dir (state_dir, &error))
    return VMS_EXIT_OK;
  vms_cli_error ("migrate", "%s", error->message);
  return vms_cli_exit_code (error);
}

static int
run (MigrateOptions *options, VmsMigrationConfig *config)
{
  g_autoptr (VmsProgress) progress = vms_progress_new (
      options->base.json ? VMS_PROGRESS_JSON : VMS_PROGRESS_TEXT);
  g_autoptr (VmsMigration) migration = NULL;
  g_autoptr (GError) error = NULL;
  GCancellable *cancellable = vms_cli_cancel_on_signals ();
  Output output = { progress, options->base.json };

  migration = vms_migration_new (config, on_event, &output);
  if (vms_migration_run (migration, cancellable, &error))
    return VMS_EXIT_OK;
  report_failure (migration, error, progress, options->base.json);
  return vms_cli_exit_code (error);
}

/* ---- --server: the migration as a job of vmshiftd ---- */

/* What a plan (vmshift-plan(5)) cannot say, so what vmshiftd cannot be
 * asked to do: the first such option given, or NULL. */
static const char *
not_for_server (const MigrateOptions *options)
{
  const VmsCliCopyOptions *base = &options->base;
  const struct
  {
    gboolean given;
    const char *name;
  } options_given[] = {
    { options->multifd != NULL, "--multifd" },
    { options->compress != NULL, "--compress" },
    { options->auto_converge, "--auto-converge" },
    { options->estimate != NULL, "--estimate" },
    { options->memory_timeout != NULL, "--memory-timeout" },
    { options->switchover_timeout != NULL, "--switchover-timeout" },
    { options->p2p, "--p2p" },
    { options->timeout != NULL, "--timeout" },
    { options->dname != NULL, "--dname" },
    { options->replica_dir != NULL, "--replica-dir" },
    { base->state_dir != NULL, "--state-dir (vmshiftd keeps the job)" },
    { base->disks != NULL, "--disk" },
    { base->replica_prefix != NULL, "--replica-prefix" },
    { base->max_bandwidth != NULL, "--max-bandwidth" },
    { base->rounds != NULL, "--rounds" },
    { base->until_converged, "--until-converged" },
    { base->converge != NULL, "--converge-bytes" },
    { base->connections != NULL, "--connections" },
    { base->queue_depth != NULL, "--queue-depth" },
    { base->request_size != NULL, "--request-size" },
    { base->checkpoint_bytes != NULL, "--checkpoint-bytes" },
    { base->granularity != NULL, "--granularity" },
    { base->bitmap_memory != NULL, "--bitmap-memory" },
    { base->compare != NULL, "--compare" },
    { base->checkpoint_seconds != NULL, "--checkpoint-seconds" },
    { base->io_timeout != NULL, "--io-timeout" },
    { base->retry_timeout != NULL, "--retry-timeout" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (options_given); i++)
    if (options_given[i].given)
      return options_given[i].name;
  return NULL;
}

static void
set_if (GKeyFile *plan, const char *section, const char *key, const char *value)
{
  if (value)
    g_key_file_set_string (plan, section, key, value);
}

static void
set_flag (GKeyFile *plan, const char *section, const char *key, gboolean on)
{
  if (on)
    g_key_file_set_boolean (plan, section, key, TRUE);
}

/* The migration as a plan of one VM named after its job (GKeyFile
 * quotes what the values hold); empty when no option says anything. */
static GKeyFile *
job_plan (const MigrateOptions *options, const char *id, char **argv)
{
  g_autoptr (GKeyFile) plan = g_key_file_new ();
  g_autofree char *section = g_strconcat ("vm ", id, NULL);

  set_if (plan, "plan", "bandwidth", options->bandwidth);
  if (options->connect)
    {
      set_if (plan, section, "connect", options->connect);
      set_if (plan, section, "domain", argv[1]);
      set_if (plan, section, "dest", argv[2]);
      set_if (plan, section, "migrate-uri", options->migrate_uri);
      set_flag (plan, section, "persistent", options->persistent);
      set_flag (plan, section, "undefine-source", options->undefine_source);
    }
  else
    {
      set_if (plan, section, "source", argv[1]);
      set_if (plan, section, "dest-qmp", options->dest_qmp);
      set_if (plan, section, "dest-uri", options->dest_uri);
    }
  set_if (plan, section, "sink", options->base.sink);
  set_if (plan, section, "max-downtime", options->max_downtime);
  set_if (plan, section, "final-sync", options->final_sync);
  set_if (plan, section, "on-downtime-miss", options->on_miss);
  set_flag (plan, section, "tls", options->tls);
  set_flag (plan, section, "insecure", options->insecure);
  set_flag (plan, section, "suspend", options->suspend);
  set_if (plan, section, "write-backpressure",
          options->base.write_backpressure);
  set_if (plan, section, "max-guest-latency", options->base.max_guest_latency);
  set_if (plan, section, "replication-backpressure",
          options->base.replication_backpressure);
  return g_steal_pointer (&plan);
}

/* vmshiftd runs the migration (a new job, or --resume of one of its
 * own), followed here to its end. */
static int
migrate_on_server (const MigrateOptions *options,
                   const VmsCliServerOptions *server, int argc, char **argv)
{
  const VmsCliCopyOptions *base = &options->base;
  const char *id = base->resume       ? base->resume
                   : base->job_id     ? base->job_id
                   : options->connect ? argv[1]
                                      : NULL;
  const char *refused = not_for_server (options);
  g_autofree char *what = g_strconcat ("job ", id ? id : "", NULL);
  g_autofree char *resume = NULL;
  g_autofree char *plan = NULL;

  /* vmshiftd checks the rest as it checks a plan, naming the key. */
  if (argc != (base->resume ? 1 : options->connect ? 3 : 2))
    {
      vms_cli_error ("migrate", "expected SOURCE, or DOMAIN DESTURI with "
                                "--connect, or --resume JOB (see 'vmshift "
                                "migrate --help')");
      return VMS_EXIT_USAGE;
    }
  if (refused)
    {
      vms_cli_error ("migrate",
                     "%s cannot go to vmshiftd: a plan (vmshift-plan(5)) "
                     "cannot say it",
                     refused);
      return VMS_EXIT_USAGE;
    }
  if (!id)
    {
      vms_cli_error ("migrate", "--server needs --job NAME: the job's name "
                                "in vmshiftd");
      return VMS_EXIT_USAGE;
    }
  if (base->resume)
    {
      g_autoptr (GKeyFile) asked = job_plan (options, id, argv);
      g_auto (GStrv) sections = g_key_file_get_groups (asked, NULL);

      if (base->job_id || sections[0])
        {
          vms_cli_error ("migrate",
                         "with --server, --resume takes no other option: "
                         "vmshiftd resumes the job as its plan says");
          return VMS_EXIT_USAGE;
        }
      resume = g_strconcat ("/jobs/", id, "/resume", NULL);
      return vms_cli_server_start (server, "migrate", what, "POST", resume,
                                   NULL, NULL, base->json);
    }
  {
    g_autoptr (GKeyFile) file = job_plan (options, id, argv);

    plan = g_key_file_to_data (file, NULL, NULL);
  }
  return vms_cli_server_start (server, "migrate", what, "POST", "/jobs",
                               "text/plain", plan, base->json);
}

int
vms_cmd_migrate (int argc, char **argv)
{
  MigrateOptions options = { 0 };
  VmsMigrationConfig config;
  g_autofree GOptionEntry *copy_entries
      = vms_cli_copy_option_entries (&options.base);
  g_auto (VmsCliServerOptions) server = { 0 };
  g_autofree GOptionEntry *server_entries
      = vms_cli_server_option_entries (&server);
  GOptionEntry entries[] = {
    { "dest-qmp", 'D', 0, G_OPTION_ARG_STRING, &options.dest_qmp,
      "QMP monitor of the destination QEMU (-incoming defer)", "ADDRESS" },
    { "dest-uri", 'u', 0, G_OPTION_ARG_STRING, &options.dest_uri,
      "Where the destination listens for memory (tcp:HOST:PORT, unix:PATH)",
      "URI" },
    { "dest-restart", 0, 0, G_OPTION_ARG_STRING, &options.dest_restart,
      "Command that starts the destination QEMU again (-incoming defer, "
      "same --dest-qmp) when it exited on a broken memory stream: the "
      "memory is then retried in the same run (split as a shell would, run "
      "without one)",
      "COMMAND" },
    { "tls", 0, 0, G_OPTION_ARG_NONE, &options.tls,
      "Memory over TLS: QEMU uses the sink URI's tls-psk-file or "
      "tls-certificates on both hosts (with --connect: libvirt's TLS)",
      NULL },
    { "insecure", 0, 0, G_OPTION_ARG_NONE, &options.insecure,
      "Send memory in clear text to a --dest-uri off loopback", NULL },
    { "final-sync", 'f', 0, G_OPTION_ARG_STRING, &options.final_sync,
      "auto (default), pause or mirror: how the disks' last writes cross",
      "MODE" },
    { "max-downtime", 0, 0, G_OPTION_ARG_STRING, &options.max_downtime,
      "Objective for the whole pause, the source's stop to the destination "
      "running (default 100)",
      "MS" },
    { "on-downtime-miss", 0, 0, G_OPTION_ARG_STRING, &options.on_miss,
      "proceed (default) or hold: a miss of --max-downtime predicted "
      "before the switchover holds it until it fits (QMP)",
      "ACTION" },
    { "bandwidth", 0, 0, G_OPTION_ARG_STRING, &options.bandwidth,
      "At most RATE bytes/s for disks and for RAM (e.g. 100M)", "RATE" },
    { "multifd", 0, 0, G_OPTION_ARG_STRING, &options.multifd,
      "Send RAM over N parallel connections, 0..255 (default 0: one)", "N" },
    { "compress", 0, 0, G_OPTION_ARG_STRING, &options.compress,
      "none (default) or zstd: RAM compressed by QEMU, over multifd "
      "(QMP backend)",
      "METHOD" },
    { "auto-converge", 0, 0, G_OPTION_ARG_NONE, &options.auto_converge,
      "Let QEMU slow the guest's CPUs if RAM does not converge", NULL },
    { "suspend", 0, 0, G_OPTION_ARG_NONE, &options.suspend,
      "Leave the VM paused on the destination (started with -S), as "
      "virsh migrate --suspend",
      NULL },
    { "estimate", 0, 0, G_OPTION_ARG_STRING, &options.estimate,
      "Use estimate ID's tuning; report predicted against actual", "ID" },
    { "memory-timeout", 0, 0, G_OPTION_ARG_STRING, &options.memory_timeout,
      "Roll back if memory has not converged after S s (default 0: wait)",
      "S" },
    { "switchover-timeout", 0, 0, G_OPTION_ARG_STRING,
      &options.switchover_timeout,
      "Roll back if the destination does not run within S s (default 300)",
      "S" },
    { "connect", 'c', 0, G_OPTION_ARG_STRING, &options.connect,
      "The source libvirt: migrate DOMAIN to DESTURI through libvirt", "URI" },
    { "live", 0, 0, G_OPTION_ARG_NONE, &options.live,
      "Live migration (the default and only kind)", NULL },
    { "p2p", 0, 0, G_OPTION_ARG_NONE, &options.p2p,
      "Peer-to-peer: the source libvirtd connects to DESTURI itself", NULL },
    { "persistent", 0, 0, G_OPTION_ARG_NONE, &options.persistent,
      "Define the domain at the destination for good", NULL },
    { "undefinesource", 0, 0, G_OPTION_ARG_NONE, &options.undefine_source,
      "Undefine the domain at the source once migrated", NULL },
    { "verbose", 0, 0, G_OPTION_ARG_NONE, &options.verbose,
      "Report libvirt's migration progress at every tick", NULL },
    { "timeout", 0, 0, G_OPTION_ARG_STRING, &options.timeout,
      "Suspend the domain if libvirt's migration takes more than S s", "S" },
    { "migrateuri", 0, 0, G_OPTION_ARG_STRING, &options.migrate_uri,
      "Where memory goes, e.g. tcp://10.0.0.2 (libvirt's default: the "
      "destination's host name)",
      "URI" },
    { "dname", 0, 0, G_OPTION_ARG_STRING, &options.dname,
      "The domain's name at the destination", "NAME" },
    { "replica-dir", 0, 0, G_OPTION_ARG_FILENAME, &options.replica_dir,
      "The sink's directory on the destination host, absolute (default "
      "/var/lib/vmshift/replicas; the destination's hook may correct it)",
      "DIR" },
    G_OPTION_ENTRY_NULL
  };
  g_autoptr (GOptionContext) context
      = option_context (entries, copy_entries, server_entries);
  g_autoptr (GError) error = NULL;
  int status;

  vms_migration_config_init (&config);
  g_set_prgname ("vmshift migrate");
  if (!g_option_context_parse (context, &argc, &argv, &error)
      || (!server.url && !check_arguments (&options, argc, &config, &error)))
    {
      vms_cli_error ("migrate", "%s", error->message);
      status = VMS_EXIT_USAGE;
    }
  else if (server.url)
    status = migrate_on_server (&options, &server, argc, argv);
  else
    {
      fill_config (&options, argc, argv, &config);
      status = check_state_dir (config.copy.state_dir);
      if (status == VMS_EXIT_OK)
        status = run (&options, &config);
    }
  vms_migration_config_clear (&config);
  options_clear (&options);
  return status;
}
