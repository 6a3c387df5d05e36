/* vmshift migrate and vmshift abort: a live migration of a QEMU VM with its
 * disks, driven over QMP on both sides, with rollback before commit.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-cli.h"
#include "vms-size.h"
#include "vms-bitmap.h"
#include "vms-disk.h"
#include "vms-migrate-state.h"
#include "vms-migration.h"
#include "vms-mirror.h"
#include "vms-replicate.h"
#include "vms-config.h"
#if VMS_HAVE_LIBVIRT
#include "vms-libvirt-migrate.h"
#endif

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>

/* How often the memory phase looks at both QEMUs. */
#define POLL_INTERVAL_MS 200
/* From migrate-continue to a running destination; a TCG guest with
 * hundreds of MiB of RAM left to send can take this long. */
#define DEFAULT_SWITCHOVER_TIMEOUT_S 300
/* QEMU's own default downtime limit. */
#define DEFAULT_MAX_DOWNTIME_MS 300
/* The mirror's NBD connection may break this long before guest writes
 * fail the mirror (and with it the migration). */
#define MIRROR_RECONNECT_DELAY_S 10
#define MIRROR_READY_TIMEOUT_MS 60000
#define CANCEL_TIMEOUT_MS 30000
/* What libvirt sets for "no limit" too: far above any link. */
#define UNLIMITED_BANDWIDTH (G_GINT64_CONSTANT (1) << 50)

static const char *const description
    = "SOURCE is the running QEMU: qmp:PATH (a QMP monitor vmshift may use\n"
      "alone).  The destination QEMU waits with -incoming defer, each disk\n"
      "opened (format raw) on its replica at the sink, with the same device\n"
      "ids.  URI names the sink as for 'vmshift sync'.\n"
      "\n"
      "migrate copies the disks while the VM runs (background copy, dirty\n"
      "rounds), then migrates memory with QEMU's pre-copy, and switches over:\n"
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
      "\n"
      "With --connect URI, DOMAIN is a libvirt domain and DESTURI the\n"
      "destination libvirt, as for 'virsh migrate': vmshift copies the\n"
      "disks to the sink on the destination host and keeps them in sync\n"
      "with the mirror, then libvirt migrates the domain with every disk\n"
      "pointing at its replica (in --replica-dir).  Install\n"
      "vmshift-libvirt-hook on the destination to let it point the disks\n"
      "at the replicas where its sink keeps them.\n";

static volatile gint stop_requested;

typedef struct
{
  VmsReplicateOptions base; /* disk copy options, shared with sync */
  char *dest_qmp;           /* --dest-qmp */
  char *dest_uri;           /* --dest-uri */
  char *final_sync;         /* --final-sync */
  char *bandwidth;          /* --bandwidth (disks and RAM) */
  int max_downtime_ms;      /* --max-downtime */
  int multifd_channels;     /* --multifd N */
  gboolean auto_converge;   /* --auto-converge */
  int switchover_timeout_s; /* --switchover-timeout */
  gboolean suspend;         /* --suspend: leave the destination paused */
  int memory_timeout_s;     /* --memory-timeout, 0: none */
  char *estimate;           /* --estimate ID */
  /* The libvirt backend, as virsh migrate names them. */
  char *connect;            /* --connect URI: DOMAIN and DESTURI follow */
  gboolean live;            /* --live: the only kind; accepted */
  gboolean p2p;             /* --p2p */
  gboolean persistent;      /* --persistent */
  gboolean undefine_source; /* --undefinesource */
  gboolean verbose;         /* --verbose */
  int timeout_s;            /* --timeout */
  char *migrate_uri;        /* --migrateuri */
  char *dname;              /* --dname */
  char *replica_dir;        /* --replica-dir */
} MigrateOptions;

typedef struct
{
  VmsReplicate rep;            /* the disk side; rep.qmp is the source */
  MigrateOptions *options;     /* what the user asked */
  VmsQmp *dest;                /* the destination QEMU */
  VmsMigrateFinalSync mode;    /* --final-sync */
  VmsMigrateState state;       /* where the orchestration stands */
  guint64 bandwidth;           /* bytes per second, 0: QEMU's default */
  gint64 started_us;           /* monotonic start */
  gint64 stop_us;              /* source STOP event timestamp, -1 if none */
  gint64 resume_us;            /* destination RESUME event timestamp */
  gint64 loaded_us;            /* destination MIGRATION completed: it holds
                                  the VM, ready to run */
  gboolean source_was_running; /* to resume it on rollback */
  gboolean migration_started;  /* migrate was sent */
  guint64 ram_bytes;           /* RAM sent, from query-migrate */
  gint64 qemu_downtime_ms;     /* QEMU's own downtime figure */
  guint64 last_sync_count;     /* RAM rounds already reported */
  VmsPrediction prediction;    /* from --estimate */
  gboolean predicted;          /* prediction holds one */
  char *tls_object;            /* id of the tls-creds object the mirror uses */
#if VMS_HAVE_LIBVIRT
  VmsLibvirtMigration *libvirt; /* the libvirt backend, NULL over QMP */
#else
  gpointer libvirt; /* always NULL */
#endif
} Migrate;

/* No event seen yet, no figure from QEMU yet. */
static void
migrate_init (Migrate *migrate, MigrateOptions *options)
{
  memset (migrate, 0, sizeof *migrate);
  migrate->rep.options = &options->base;
  migrate->rep.stop = &stop_requested;
  migrate->options = options;
  migrate->stop_us = -1;
  migrate->resume_us = -1;
  migrate->loaded_us = -1;
  migrate->qemu_downtime_ms = -1;
}

static void
handle_stop_signal (int signal_number)
{
  g_atomic_int_set (&stop_requested, 1);
}

static gboolean
stop_error (GError **error)
{
  g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_STOPPED,
               "stopped on request");
  return FALSE;
}

/* Move to state to, record it durably, and say so. */
static gboolean
move_to (Migrate *migrate, VmsMigrateState to, GError **error)
{
  VmsJob *job = migrate->rep.job;

  g_return_val_if_fail (
      vms_migrate_state_can_move (migrate->state, to, migrate->mode), FALSE);
  migrate->state = to;
  if (!job)
    return TRUE;
  g_free (vms_job_get_migration (job)->state);
  job->migration->state = g_strdup (vms_migrate_state_name (to));
  {
    JsonObject *fields = json_object_new ();

    json_object_set_string_member (fields, "state",
                                   vms_migrate_state_name (to));
    vms_progress_event (migrate->rep.progress, "state", fields,
                        "migration state: %s", vms_migrate_state_name (to));
  }
  return vms_job_save (job, error);
}

/* ---- naming ---- */

/* QEMU allows node names of 31 characters: a job id (up to 64) and a
 * disk name do not fit, so the mirror's names carry a digest of them;
 * the same job and disk always give the same names, which lets a later
 * attempt find what a killed one left. */
static char *
mirror_name (const char *kind, VmsJob *job, VmsJobDisk *disk)
{
  g_autofree char *key = g_strdup_printf ("%s/%s", job->id, disk->name);
  g_autofree char *digest
      = g_compute_checksum_for_string (G_CHECKSUM_SHA256, key, -1);

  return g_strdup_printf ("vms%s-%.16s", kind, digest);
}

static char *
mirror_job_id (VmsJob *job, VmsJobDisk *disk)
{
  return mirror_name ("mirror", job, disk);
}

static char *
mirror_node (VmsJob *job, VmsJobDisk *disk)
{
  return mirror_name ("live", job, disk);
}

/* ---- events ---- */

static void
on_source_stop (VmsQmp *qmp, const char *event, JsonObject *data,
                gint64 timestamp_us, gpointer user_data)
{
  Migrate *migrate = user_data;

  if (migrate->state >= VMS_MIGRATE_MEMORY && migrate->stop_us < 0)
    migrate->stop_us = timestamp_us >= 0 ? timestamp_us : g_get_real_time ();
}

static void
on_destination_migration (VmsQmp *qmp, const char *event, JsonObject *data,
                          gint64 timestamp_us, gpointer user_data)
{
  Migrate *migrate = user_data;

  if (data && migrate->loaded_us < 0
      && g_strcmp0 (
             json_object_get_string_member_with_default (data, "status", NULL),
             "completed")
             == 0)
    migrate->loaded_us = timestamp_us >= 0 ? timestamp_us : g_get_real_time ();
}

static void
on_destination_resume (VmsQmp *qmp, const char *event, JsonObject *data,
                       gint64 timestamp_us, gpointer user_data)
{
  Migrate *migrate = user_data;

  if (migrate->resume_us < 0)
    migrate->resume_us = timestamp_us >= 0 ? timestamp_us : g_get_real_time ();
}

/* ---- preflight ---- */

static char *
basename_without_query (const char *filename)
{
  g_autofree char *path = g_strndup (filename, strcspn (filename, "?"));

  return g_path_get_basename (path);
}

/* Each disk of the job must be at the destination under the same name,
 * raw, the same size, opened on its replica. */
static gboolean
check_destination_disks (Migrate *migrate, GError **error)
{
  VmsJob *job = migrate->rep.job;
  g_autoptr (GPtrArray) found = vms_disk_discover (migrate->dest, error);

  if (!found)
    {
      g_prefix_error (error, "destination: ");
      return FALSE;
    }
  for (guint i = 0; i < job->disks->len; i++)
    {
      VmsJobDisk *disk = job->disks->pdata[i];
      VmsDisk *there = vms_disk_find (found, disk->name, error);
      g_autofree char *base = NULL;

      if (!there)
        {
          g_prefix_error (error, "destination: ");
          return FALSE;
        }
      base = basename_without_query (there->filename);
      if (there->size != disk->size)
        {
          g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                       "destination disk %s is %" G_GUINT64_FORMAT
                       " bytes, the source's %" G_GUINT64_FORMAT,
                       disk->name, there->size, disk->size);
          return FALSE;
        }
      if (!g_str_equal (there->format, "raw")
          && !g_str_equal (there->format, "nbd"))
        {
          g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                       "destination disk %s is %s; a replica is a raw "
                       "image: open it with format raw",
                       disk->name, there->format);
          return FALSE;
        }
      if (!g_str_equal (base, disk->replica))
        {
          g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                       "destination disk %s opens %s, not the replica %s",
                       disk->name, there->filename, disk->replica);
          return FALSE;
        }
    }
  return TRUE;
}

static gboolean
check_versions (Migrate *migrate, GError **error)
{
  int smajor, sminor, smicro, dmajor, dminor, dmicro;
  g_autofree char *source_machine = NULL;
  g_autofree char *dest_machine = NULL;

  vms_qmp_get_version (migrate->rep.qmp, &smajor, &sminor, &smicro);
  vms_qmp_get_version (migrate->dest, &dmajor, &dminor, &dmicro);
  /* QEMU accepts a stream from the same or an older version only. */
  if (dmajor < smajor || (dmajor == smajor && dminor < sminor))
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                   "the destination runs QEMU %d.%d.%d, older than the "
                   "source's %d.%d.%d: QEMU cannot migrate to an older "
                   "version",
                   dmajor, dminor, dmicro, smajor, sminor, smicro);
      return FALSE;
    }
  source_machine = vms_migration_machine_type (migrate->rep.qmp, error);
  if (!source_machine)
    return FALSE;
  dest_machine = vms_migration_machine_type (migrate->dest, error);
  if (!dest_machine)
    return FALSE;
  if (!g_str_equal (source_machine, dest_machine))
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                   "machine types differ: the source is %s, the destination "
                   "%s; start the destination with the source's -machine",
                   source_machine, dest_machine);
      return FALSE;
    }
  return TRUE;
}

static gboolean
check_run_states (Migrate *migrate, GError **error)
{
  g_autofree char *source = vms_migration_run_state (migrate->rep.qmp, error);
  g_autofree char *dest = NULL;
  g_auto (VmsMigrationInfo) info = { 0 };

  if (!source)
    return FALSE;
  if (!vms_migration_query (migrate->rep.qmp, &info, error))
    return FALSE;
  if (info.status != VMS_MIGRATION_NONE
      && !vms_migration_status_is_final (info.status))
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                   "a migration is already under way on the source "
                   "(status %s); if it is a killed vmshift's, 'vmshift abort "
                   "JOB' cancels it",
                   info.status_name);
      return FALSE;
    }
  if (!g_str_equal (source, "running") && !g_str_equal (source, "paused"))
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                   "the source VM is '%s', not running or paused", source);
      return FALSE;
    }
  migrate->source_was_running = g_str_equal (source, "running");
  dest = vms_migration_run_state (migrate->dest, error);
  if (!dest)
    return FALSE;
  if (!g_str_equal (dest, "inmigrate"))
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                   "the destination QEMU is '%s', not waiting for a "
                   "migration: start it with -incoming defer (after a "
                   "failed attempt QEMU exits, so start a new one)",
                   dest);
      return FALSE;
    }
  return TRUE;
}

static gboolean stop_mirrors (Migrate *migrate, GError **error);

static gboolean
preflight (Migrate *migrate, const char *source, GError **error)
{
  MigrateOptions *options = migrate->options;
  VmsJob *job;
  VmsJobMigration *part;

#if VMS_HAVE_LIBVIRT
  if (migrate->libvirt)
    {
      /* libvirt checks versions, machine and run states itself, and the
       * destination domain does not exist before libvirt's migration. */
      migrate->source_was_running = migrate->libvirt->was_running;
      if (!vms_libvirt_migration_preflight (migrate->libvirt, error)
          || !vms_replicate_open_job (&migrate->rep, source, error))
        return FALSE;
      vms_libvirt_migration_save (migrate->libvirt, migrate->rep.job);
    }
  else
#endif
      if (!check_run_states (migrate, error) || !check_versions (migrate, error)
          || !vms_replicate_open_job (&migrate->rep, source, error))
    return FALSE;
  job = migrate->rep.job;
  part = vms_job_get_migration (job);
  if (options->dest_qmp)
    {
      g_free (part->dest_qmp);
      part->dest_qmp = g_strdup (options->dest_qmp);
    }
  if (options->dest_uri)
    {
      g_free (part->dest_uri);
      part->dest_uri = g_strdup (options->dest_uri);
    }
  g_free (part->final_sync);
  part->final_sync = g_strdup (vms_migrate_final_sync_name (migrate->mode));
  g_clear_pointer (&part->last_error, g_free);
  part->pid = getpid ();
  part->attempts++;
  if (options->estimate)
    {
      if (!vms_estimate_file_load_prediction (
              options->base.state_dir, options->estimate, job->vm_uuid,
              job->vm_name, job->source, &migrate->prediction, error))
        return FALSE;
      migrate->predicted = TRUE;
      /* A resumed job reports against the same prediction. */
      g_free (part->estimate);
      part->estimate = g_strdup (options->estimate);
      /* The estimate's best link configuration, unless told otherwise. */
      if (options->base.connections == 0 && migrate->prediction.connections)
        options->base.connections
            = MIN (migrate->prediction.connections, VMS_COPY_MAX_CONNECTIONS);
      if (!options->base.request_size && migrate->prediction.request_size)
        migrate->rep.request_size
            = MIN (migrate->prediction.request_size, VMS_COPY_MAX_REQUEST_SIZE);
    }
  job->phase = VMS_JOB_PHASE_MIGRATING;
  if (!vms_job_save (job, error)
      || (!migrate->libvirt && !check_destination_disks (migrate, error))
      || !vms_replicate_start (&migrate->rep, error))
    return FALSE;
  /* A mirror of an earlier attempt (its vmshift killed) may still run and
   * have left live ranges: stop it, then forget them, or the plain writes
   * of this attempt would be dropped. */
  return stop_mirrors (migrate, error)
         && vms_replicate_sink_open_all (&migrate->rep, "live-reset", FALSE,
                                         error);
}

/* ---- mirror ---- */

/* The sink URI as QEMU's NBD client wants it; a TLS object is created
 * when the sink needs TLS. */
static gboolean
mirror_target (Migrate *migrate, VmsJobDisk *disk, VmsMirrorTarget *target,
               char **socket_out, char **host_out, char **port_out,
               char **export_out, GError **error)
{
  g_autoptr (GUri) uri
      = g_uri_parse (migrate->rep.job->sink, G_URI_FLAGS_ENCODED_QUERY, error);
  g_autoptr (GHashTable) query = NULL;
  const char *scheme;

  if (!uri)
    return FALSE;
  scheme = g_uri_get_scheme (uri);
  if (g_uri_get_query (uri))
    {
      query = g_uri_parse_params (g_uri_get_query (uri), -1, "&",
                                  G_URI_PARAMS_NONE, error);
      if (!query)
        return FALSE;
    }
  memset (target, 0, sizeof *target);
  *export_out = g_strdup_printf ("%s@live", disk->replica);
  target->export_name = *export_out;
  if (g_str_has_suffix (scheme, "+unix"))
    {
      const char *socket = query ? g_hash_table_lookup (query, "socket") : NULL;

      if (!socket)
        {
          g_set_error (error, G_URI_ERROR, G_URI_ERROR_BAD_QUERY,
                       "sink %s: no socket= in the URI",
                       migrate->rep.job->sink);
          return FALSE;
        }
      *socket_out = g_strdup (socket);
      target->socket_path = *socket_out;
    }
  else
    {
      *host_out = g_strdup (g_uri_get_host (uri));
      *port_out = g_strdup_printf (
          "%d", g_uri_get_port (uri) > 0 ? g_uri_get_port (uri) : 10809);
      target->host = *host_out;
      target->port = *port_out;
    }
  if (g_str_has_prefix (scheme, "nbds"))
    {
      const char *psk
          = query ? g_hash_table_lookup (query, "tls-psk-file") : NULL;
      const char *certificates
          = query ? g_hash_table_lookup (query, "tls-certificates") : NULL;

      if (!migrate->tls_object)
        {
          g_autoptr (JsonObject) arguments = json_object_new ();
          g_autoptr (JsonNode) reply = NULL;
          g_autofree char *id
              = g_strdup_printf ("vmshift-%s-tls", migrate->rep.job->id);
          g_autofree char *base = psk ? g_path_get_basename (psk) : NULL;
          g_autofree char *dir = psk ? g_path_get_dirname (psk) : NULL;

          if (psk && !g_str_equal (base, "keys.psk"))
            {
              g_set_error (error, G_URI_ERROR, G_URI_ERROR_BAD_QUERY,
                           "--final-sync mirror over TLS-PSK: QEMU reads "
                           "its keys from DIR/keys.psk, so name the "
                           "tls-psk-file keys.psk (it is %s)",
                           psk);
              return FALSE;
            }
          if (!psk && !certificates)
            {
              g_set_error (error, G_URI_ERROR, G_URI_ERROR_BAD_QUERY,
                           "--final-sync mirror over TLS needs "
                           "tls-psk-file= or tls-certificates= in the sink "
                           "URI");
              return FALSE;
            }
          json_object_set_string_member (
              arguments, "qom-type", psk ? "tls-creds-psk" : "tls-creds-x509");
          json_object_set_string_member (arguments, "id", id);
          json_object_set_string_member (arguments, "endpoint", "client");
          json_object_set_string_member (arguments, "dir",
                                         psk ? dir : certificates);
          if (psk && g_uri_get_user (uri))
            json_object_set_string_member (arguments, "username",
                                           g_uri_get_user (uri));
          reply = vms_qmp_execute (migrate->rep.qmp, "object-add", arguments,
                                   NULL);
          /* An object left by an earlier attempt is as good. */
          migrate->tls_object = g_steal_pointer (&id);
        }
      target->tls_creds = migrate->tls_object;
    }
  return TRUE;
}

static gboolean
start_mirrors (Migrate *migrate, GError **error)
{
  VmsJob *job = migrate->rep.job;

  for (guint i = 0; i < job->disks->len; i++)
    {
      VmsJobDisk *disk = job->disks->pdata[i];
      g_autofree char *id = mirror_job_id (job, disk);
      g_autofree char *node = mirror_node (job, disk);
      g_autofree char *socket = NULL, *host = NULL, *port = NULL;
      g_autofree char *export_name = NULL;
      VmsMirrorTarget target;

      if (!mirror_target (migrate, disk, &target, &socket, &host, &port,
                          &export_name, error)
          || !vms_mirror_start (migrate->rep.qmp, disk->node, &target, id, node,
                                MIRROR_RECONNECT_DELAY_S,
                                MIRROR_READY_TIMEOUT_MS, error))
        {
          g_prefix_error (error, "disk %s: ", disk->name);
          return FALSE;
        }
      vms_progress_event (migrate->rep.progress, "mirror", NULL,
                          "%s: every guest write now reaches %s", disk->name,
                          export_name);
    }
  return TRUE;
}

static gboolean
check_mirrors (Migrate *migrate, GError **error)
{
  VmsJob *job = migrate->rep.job;

  if (migrate->mode != VMS_MIGRATE_FINAL_MIRROR)
    return TRUE;
  for (guint i = 0; i < job->disks->len; i++)
    {
      g_autofree char *id = mirror_job_id (job, job->disks->pdata[i]);

      if (!vms_mirror_check (migrate->rep.qmp, id, error))
        return FALSE;
    }
  return TRUE;
}

static gboolean
stop_mirrors (Migrate *migrate, GError **error)
{
  VmsJob *job = migrate->rep.job;
  gboolean ok = TRUE;

  for (guint i = 0; i < job->disks->len; i++)
    {
      VmsJobDisk *disk = job->disks->pdata[i];
      g_autofree char *id = mirror_job_id (job, disk);
      g_autofree char *node = mirror_node (job, disk);
      g_autoptr (GError) stop_error = NULL;

      if (!vms_mirror_stop (migrate->rep.qmp, id, node, &stop_error))
        {
          ok = FALSE;
          if (error && !*error)
            g_propagate_error (error, g_steal_pointer (&stop_error));
        }
    }
  if (migrate->tls_object)
    {
      g_autoptr (JsonObject) arguments = json_object_new ();
      g_autoptr (JsonNode) reply = NULL;

      json_object_set_string_member (arguments, "id", migrate->tls_object);
      reply = vms_qmp_execute (migrate->rep.qmp, "object-del", arguments, NULL);
      g_clear_pointer (&migrate->tls_object, g_free);
    }
  return ok;
}

/* ---- memory ---- */

static gboolean
setup_memory_migration (Migrate *migrate, GError **error)
{
  MigrateOptions *options = migrate->options;
  static const char *const both[]
      = { "events", "pause-before-switchover", NULL };
  static const char *const multifd[] = { "multifd", NULL };
  static const char *const auto_converge[] = { "auto-converge", NULL };
  g_autoptr (JsonObject) source_parameters = json_object_new ();
  g_autoptr (JsonObject) dest_parameters = json_object_new ();

  if (!vms_migration_set_capabilities (migrate->rep.qmp, both, TRUE, error)
      || !vms_migration_set_capabilities (migrate->dest, both, TRUE, error)
      || !vms_migration_set_capabilities (migrate->rep.qmp, multifd,
                                          options->multifd_channels > 0, error)
      || !vms_migration_set_capabilities (migrate->dest, multifd,
                                          options->multifd_channels > 0, error)
      || !vms_migration_set_capabilities (migrate->rep.qmp, auto_converge,
                                          options->auto_converge, error))
    return FALSE;
  json_object_set_int_member (source_parameters, "downtime-limit",
                              options->max_downtime_ms);
  /* Always set: QEMU keeps an earlier attempt's limit, and its own
   * default (128 MiB/s) would throttle a fast link. */
  json_object_set_int_member (source_parameters, "max-bandwidth",
                              migrate->bandwidth ? migrate->bandwidth
                                                 : UNLIMITED_BANDWIDTH);
  if (options->multifd_channels > 0)
    {
      json_object_set_int_member (source_parameters, "multifd-channels",
                                  options->multifd_channels);
      json_object_set_int_member (dest_parameters, "multifd-channels",
                                  options->multifd_channels);
      if (!vms_migration_set_parameters (migrate->dest, dest_parameters, error))
        return FALSE;
    }
  return vms_migration_set_parameters (migrate->rep.qmp, source_parameters,
                                       error);
}

static void
report_memory_progress (Migrate *migrate, const VmsMigrationInfo *info)
{
  if (info->ram_total > 0)
    vms_progress_update (migrate->rep.progress, "RAM", "memory",
                         MIN (info->ram_transferred, info->ram_total),
                         info->ram_total, info->ram_transferred);
  if (info->dirty_sync_count > migrate->last_sync_count)
    {
      JsonObject *fields = json_object_new ();
      g_autofree char *remaining = vms_format_size (info->ram_remaining);
      g_autofree char *rate
          = vms_format_size (info->dirty_pages_rate * info->page_size);

      migrate->last_sync_count = info->dirty_sync_count;
      json_object_set_int_member (fields, "dirty-sync-count",
                                  info->dirty_sync_count);
      json_object_set_int_member (fields, "remaining", info->ram_remaining);
      json_object_set_int_member (fields, "transferred", info->ram_transferred);
      json_object_set_int_member (fields, "dirty-pages-rate",
                                  info->dirty_pages_rate);
      json_object_set_double_member (fields, "mbps", info->mbps);
      vms_progress_event (migrate->rep.progress, "memory-round", fields,
                          "memory round %" G_GUINT64_FORMAT ": %s still "
                          "dirty, guest dirties %s/s, %.0f Mbit/s",
                          info->dirty_sync_count, remaining, rate, info->mbps);
    }
}

/* Wait for the source's migration to reach one of the statuses wanted;
 * a failure, a cancel, a broken mirror or Ctrl-C end the wait. */
static gboolean
wait_migration (Migrate *migrate, VmsMigrationStatus wanted, gint64 timeout_s,
                GError **error)
{
  gint64 deadline = timeout_s > 0
                        ? g_get_monotonic_time () + timeout_s * G_USEC_PER_SEC
                        : G_MAXINT64;

  for (;;)
    {
      g_auto (VmsMigrationInfo) info = { 0 };

      if (g_atomic_int_get (&stop_requested))
        return stop_error (error);
      if (!vms_qmp_poll (migrate->dest, error))
        {
          g_prefix_error (error, "destination QEMU: ");
          return FALSE;
        }
      if (!vms_migration_query (migrate->rep.qmp, &info, error))
        return FALSE;
      migrate->ram_bytes = info.ram_transferred;
      if (info.downtime_ms >= 0)
        migrate->qemu_downtime_ms = info.downtime_ms;
      report_memory_progress (migrate, &info);
      if (info.status == wanted
          || (wanted == VMS_MIGRATION_PRE_SWITCHOVER
              && info.status == VMS_MIGRATION_COMPLETED))
        return TRUE;
      if (info.status == VMS_MIGRATION_COMPLETED
          && wanted == VMS_MIGRATION_DEVICE)
        return TRUE;
      if (info.status == VMS_MIGRATION_FAILED
          || info.status == VMS_MIGRATION_CANCELLED
          || info.status == VMS_MIGRATION_CANCELLING)
        {
          g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                       "QEMU's memory migration %s%s%s", info.status_name,
                       info.error_desc ? ": " : "",
                       info.error_desc ? info.error_desc : "");
          return FALSE;
        }
      if (!check_mirrors (migrate, error))
        return FALSE;
      if (g_get_monotonic_time () > deadline)
        {
          g_set_error (
              error, VMS_QMP_ERROR, VMS_QMP_ERROR_TIMEOUT,
              "the memory migration is still '%s' after %" G_GINT64_FORMAT " s",
              info.status_name, timeout_s);
          return FALSE;
        }
      /* React to QEMU's MIGRATION event at once (pre-switchover holds
       * the guest paused); query again after the poll interval at the
       * latest, for progress. */
      vms_qmp_wait_event (migrate->rep.qmp, "MIGRATION", POLL_INTERVAL_MS, NULL,
                          NULL, NULL, NULL);
    }
}

#if VMS_HAVE_LIBVIRT
/* libvirt migrates memory, switches over and starts the destination in
 * one call; vmshift watches the mirror and the stop requests meanwhile. */
static gboolean
libvirt_migrate (Migrate *migrate, GError **error)
{
  VmsLibvirtMigration *libvirt = migrate->libvirt;
  gint64 deadline
      = migrate->options->memory_timeout_s > 0
            ? g_get_monotonic_time ()
                  + migrate->options->memory_timeout_s * G_USEC_PER_SEC
            : G_MAXINT64;

  libvirt->bandwidth = migrate->bandwidth;
  libvirt->max_downtime_ms = migrate->options->max_downtime_ms;
  libvirt->auto_converge = migrate->options->auto_converge;
  libvirt->parallel = migrate->options->multifd_channels;
  if (!vms_libvirt_migration_start (libvirt, migrate->rep.job, error))
    return FALSE;
  migrate->migration_started = TRUE;
  for (;;)
    {
      gboolean finished = FALSE;
      g_autoptr (GError) watch_error = NULL;

      if (!vms_libvirt_migration_poll (libvirt, migrate->rep.progress,
                                       &finished, error))
        {
          /* Failed as libvirt says, unless the domain moved after all:
           * then it must not run twice. */
          if (!vms_libvirt_migration_source_active (libvirt)
              && vms_libvirt_migration_destination_runs (libvirt))
            {
              vms_progress_event (migrate->rep.progress, "warning", NULL,
                                  "%s; but the domain left the source and "
                                  "runs at the destination: going on",
                                  (*error)->message);
              g_clear_error (error);
              return TRUE;
            }
          return FALSE;
        }
      if (finished)
        break;
      if (g_atomic_int_get (&stop_requested))
        {
          vms_libvirt_migration_abort (libvirt);
          if (libvirt->succeeded
              || !vms_libvirt_migration_source_active (libvirt))
            break; /* too late: it moved */
          return stop_error (error);
        }
      /* The source QEMU ends as libvirt completes: a mirror that cannot
       * be asked any more may mean just that. */
      if (!check_mirrors (migrate, &watch_error)
          || g_get_monotonic_time () > deadline)
        {
          vms_libvirt_migration_abort (libvirt);
          if (libvirt->succeeded
              || !vms_libvirt_migration_source_active (libvirt))
            break;
          if (watch_error)
            g_propagate_error (error, g_steal_pointer (&watch_error));
          else
            g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_TIMEOUT,
                         "libvirt's migration did not end within "
                         "--memory-timeout %d s",
                         migrate->options->memory_timeout_s);
          return FALSE;
        }
      vms_qmp_wait_event (migrate->rep.qmp, "MIGRATION", POLL_INTERVAL_MS, NULL,
                          NULL, NULL, NULL);
    }
  migrate->ram_bytes = libvirt->memory_bytes;
  migrate->qemu_downtime_ms = libvirt->downtime_ms;
  return TRUE;
}
#endif

static gboolean
memory_precopy (Migrate *migrate, GError **error)
{
  const char *uri = vms_job_get_migration (migrate->rep.job)->dest_uri;

#if VMS_HAVE_LIBVIRT
  if (migrate->libvirt)
    return libvirt_migrate (migrate, error);
#endif
  if (!setup_memory_migration (migrate, error)
      || !vms_migration_incoming (migrate->dest, uri, error))
    return FALSE;
  migrate->stop_us = -1;
  migrate->resume_us = -1;
  migrate->loaded_us = -1;
  if (!vms_migration_start (migrate->rep.qmp, uri, error))
    return FALSE;
  migrate->migration_started = TRUE;
  return wait_migration (migrate, VMS_MIGRATION_PRE_SWITCHOVER,
                         migrate->options->memory_timeout_s, error);
}

/* ---- switchover ---- */

static gboolean
switchover (Migrate *migrate, GError **error)
{
  /* libvirt did it; the mirror kept the replicas exact through it. */
  if (migrate->libvirt)
    return TRUE;
  /* QEMU holds the source paused here: no guest write can happen. */
  if (migrate->mode == VMS_MIGRATE_FINAL_PAUSE)
    {
      if (!vms_replicate_final_round (&migrate->rep, error))
        return FALSE;
    }
  else
    {
      /* Every guest write completed only after the sink acknowledged it;
       * one FLUSH makes them all durable. */
      if (!check_mirrors (migrate, error)
          || !vms_replicate_sink_open_all (&migrate->rep, NULL, TRUE, error))
        return FALSE;
      /* The destination may reach its disks through the sink's plain
       * export: from now on its writes are the newest and must not be
       * dropped for ranges the mirror wrote. */
      if (!vms_replicate_sink_open_all (&migrate->rep, "live-reset", FALSE,
                                        error))
        return FALSE;
    }
  if (g_atomic_int_get (&stop_requested))
    return stop_error (error);
  return vms_migration_continue (migrate->rep.qmp, error);
}

/* Wait for the migration to complete and the destination to run. */
static gboolean
wait_destination (Migrate *migrate, GError **error)
{
  gint64 deadline
      = g_get_monotonic_time ()
        + migrate->options->switchover_timeout_s * (gint64)G_USEC_PER_SEC;

#if VMS_HAVE_LIBVIRT
  if (migrate->libvirt)
    {
      /* libvirt returned once the destination resumed the domain. */
      while (!vms_libvirt_migration_destination_runs (migrate->libvirt))
        {
          if (g_get_monotonic_time () > deadline)
            {
              g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_TIMEOUT,
                           "libvirt migrated the domain, but it does not "
                           "run at %s",
                           migrate->libvirt->dest_uri);
              return FALSE;
            }
          g_usleep (100 * 1000);
        }
      return vms_libvirt_migration_fix_definition (migrate->libvirt, error);
    }
#endif
  if (!wait_migration (migrate, VMS_MIGRATION_COMPLETED,
                       migrate->options->switchover_timeout_s, error))
    return FALSE;
  for (;;)
    {
      g_autofree char *state = vms_migration_run_state (migrate->dest, error);

      if (!state)
        {
          g_prefix_error (error, "destination QEMU: ");
          return FALSE;
        }
      if (g_str_equal (state, "running"))
        break;
      /* With --suspend the destination holding the VM paused is the end;
       * without, one started with -S waits for cont. */
      if (g_str_equal (state, "paused")
          && (migrate->options->suspend || !migrate->source_was_running))
        break;
      if (g_str_equal (state, "paused") && migrate->source_was_running)
        {
          g_autoptr (JsonNode) reply
              = vms_qmp_execute (migrate->dest, "cont", NULL, error);

          if (!reply)
            return FALSE;
          continue;
        }
      if (g_get_monotonic_time () > deadline)
        {
          g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_TIMEOUT,
                       "the destination is '%s', not running, after the "
                       "migration completed",
                       state);
          return FALSE;
        }
      g_usleep (50 * 1000);
    }
  /* The RESUME event may trail the status by a moment. */
  for (int i = 0;
       i < 20
       && (migrate->options->suspend ? migrate->loaded_us : migrate->resume_us)
              < 0;
       i++)
    {
      vms_qmp_poll (migrate->dest, NULL);
      if ((migrate->options->suspend ? migrate->loaded_us : migrate->resume_us)
          < 0)
        g_usleep (50 * 1000);
    }
  {
    g_auto (VmsMigrationInfo) info = { 0 };

    if (vms_migration_query (migrate->rep.qmp, &info, NULL))
      {
        migrate->ram_bytes = info.ram_transferred;
        migrate->qemu_downtime_ms = info.downtime_ms;
      }
  }
  return TRUE;
}

/* ---- commit and cleanup ---- */

static gboolean
commit (Migrate *migrate, GError **error)
{
  if (!vms_replicate_sink_open_all (&migrate->rep, "commit", FALSE, error))
    {
      g_prefix_error (error,
                      "the destination runs, but marking the "
                      "replicas complete failed (run 'vmshift migrate "
                      "--resume %s' to finish): ",
                      migrate->rep.job->id);
      return FALSE;
    }
  return TRUE;
}

/* The source is left as QEMU leaves it after a migration (paused, in
 * postmigrate), without our bitmaps, mirror or NBD server. */
static gboolean
cleanup (Migrate *migrate, GError **error)
{
  VmsJob *job = migrate->rep.job;
  /* libvirt ended the source QEMU, and with it the mirror, the NBD server
   * and the in-memory bitmaps. */
  gboolean source_gone = FALSE;

#if VMS_HAVE_LIBVIRT
  source_gone = migrate->libvirt
                && !vms_libvirt_migration_source_active (migrate->libvirt);
#endif
  if (!source_gone && migrate->mode == VMS_MIGRATE_FINAL_MIRROR
      && !stop_mirrors (migrate, error))
    return FALSE;
  if (!source_gone)
    vms_replicate_stop_server (&migrate->rep);
  for (guint i = 0; i < job->disks->len; i++)
    {
      VmsJobDisk *disk = job->disks->pdata[i];

      if (!source_gone && disk->copying_bitmap)
        vms_bitmap_remove (migrate->rep.qmp, disk->node, disk->copying_bitmap,
                           NULL);
      /* QEMU stored persistent bitmaps into the image and dropped them
       * when the migration inactivated it; they stay in the qcow2 file,
       * unused (removing them needs the image active). */
      if (!source_gone && disk->recording_bitmap)
        vms_bitmap_remove (migrate->rep.qmp, disk->node, disk->recording_bitmap,
                           NULL);
      g_clear_pointer (&disk->copying_bitmap, g_free);
      g_clear_pointer (&disk->recording_bitmap, g_free);
    }
  job->phase = VMS_JOB_PHASE_MIGRATED;
  job->migration->pid = 0;
  return vms_job_save (job, error);
}

/* ---- rollback ---- */

static gboolean
destination_runs (Migrate *migrate)
{
  g_autofree char *state = NULL;

#if VMS_HAVE_LIBVIRT
  if (migrate->libvirt)
    return vms_libvirt_migration_destination_runs (migrate->libvirt);
#endif
  if (!migrate->dest || !vms_qmp_is_connected (migrate->dest))
    return FALSE;
  state = vms_migration_run_state (migrate->dest, NULL);
  return g_strcmp0 (state, "running") == 0;
}

/* Undo what the state reached needs undone; the source VM runs again.
 * Returns FALSE if the source could not be brought back (the message
 * says what to do), TRUE otherwise. */
static gboolean
roll_back (Migrate *migrate, const GError *cause, GError **error)
{
  VmsMigrateState failed_in = migrate->state;
  VmsMigrateUndo undo = vms_migrate_rollback_actions (failed_in, migrate->mode);
  VmsQmp *source = migrate->rep.qmp;
  VmsJob *job = migrate->rep.job;
  gboolean source_ok = TRUE;

  /* A rollback interrupted earlier is simply done again. */
  if (migrate->state != VMS_MIGRATE_ROLLBACK)
    move_to (migrate, VMS_MIGRATE_ROLLBACK, NULL);
#if VMS_HAVE_LIBVIRT
  if (migrate->libvirt)
    {
      VmsLibvirtMigration *libvirt = migrate->libvirt;

      if (undo & VMS_MIGRATE_UNDO_CANCEL_MIGRATION)
        vms_libvirt_migration_abort (libvirt);
      undo &= ~VMS_MIGRATE_UNDO_CANCEL_MIGRATION;
      if (!vms_libvirt_migration_source_active (libvirt))
        {
          /* Never run both: whoever holds the domain now keeps it. */
          if (destination_runs (migrate))
            g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                         "the destination runs the domain: not rolling "
                         "back; 'vmshift migrate --resume %s' marks the "
                         "replicas complete",
                         job ? job->id : "JOB");
          else
            g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                         "the source domain %s is no longer active and the "
                         "destination does not run it: check both hosts "
                         "('virsh list --all')",
                         libvirt->domain_name);
          return FALSE;
        }
    }
#endif
  if (source && !vms_qmp_is_connected (source))
    {
      g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_DISCONNECTED,
                   "the source QEMU's monitor is gone: check the source VM");
      return FALSE;
    }
  if ((undo & VMS_MIGRATE_UNDO_CANCEL_MIGRATION) && source)
    {
      g_auto (VmsMigrationInfo) info = { 0 };

      if ((undo & VMS_MIGRATE_UNDO_CHECK_DESTINATION)
          && vms_migration_query (source, &info, NULL)
          && info.status == VMS_MIGRATION_COMPLETED)
        {
          /* The source's part is over; whether the destination runs
           * decides who owns the VM now.  Never run both. */
          if (destination_runs (migrate))
            {
              g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                           "the destination runs the VM: not rolling back; "
                           "'vmshift migrate --resume %s' marks the "
                           "replicas complete",
                           job ? job->id : "JOB");
              return FALSE;
            }
          if (migrate->dest && vms_qmp_is_connected (migrate->dest))
            {
              /* It holds the VM's state but will not run it: stop it for
               * good before the source goes on. */
              g_autoptr (JsonNode) reply
                  = vms_qmp_execute (migrate->dest, "quit", NULL, NULL);
            }
          else
            {
              g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                           "the memory migration completed but the "
                           "destination cannot be reached, so it may run "
                           "the VM: the source stays paused.  Check the "
                           "destination; if it does not run the VM, resume "
                           "the source with 'vmshift qmp %s cont'",
                           job ? job->source : "SOURCE");
              return FALSE;
            }
        }
      else if (migrate->migration_started)
        vms_migration_cancel (source, CANCEL_TIMEOUT_MS, NULL, NULL);
    }
  if ((undo & VMS_MIGRATE_UNDO_STOP_MIRROR) && source && job)
    stop_mirrors (migrate, NULL);
#if VMS_HAVE_LIBVIRT
  if ((undo & VMS_MIGRATE_UNDO_RESUME_SOURCE) && migrate->libvirt)
    {
      /* Through libvirt, so that it knows the domain runs. */
      source_ok = vms_libvirt_migration_resume_source (migrate->libvirt, error);
      undo &= ~VMS_MIGRATE_UNDO_RESUME_SOURCE;
    }
#endif
  if ((undo & VMS_MIGRATE_UNDO_RESUME_SOURCE) && source
      && migrate->source_was_running)
    {
      g_autofree char *state = vms_migration_run_state (source, NULL);

      if (state && !g_str_equal (state, "running"))
        {
          g_autoptr (GError) cont_error = NULL;
          g_autoptr (JsonNode) reply
              = vms_qmp_execute (source, "cont", NULL, &cont_error);

          if (!reply)
            {
              source_ok = FALSE;
              g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                           "the source VM is '%s' and did not resume: %s",
                           state, cont_error->message);
            }
        }
    }
  if ((undo & VMS_MIGRATE_UNDO_FORGET_LIVE) && job)
    for (guint i = 0; i < job->disks->len; i++)
      /* A dead sink forgot them anyway. */
      vms_replicate_sink_open (&migrate->rep, job->disks->pdata[i],
                               "live-reset", FALSE, NULL);
  /* Only a server we started: the preflight may have failed before. */
  if ((undo & VMS_MIGRATE_UNDO_STOP_EXPORTS) && migrate->rep.nbd_socket)
    vms_replicate_stop_server (&migrate->rep);
  if (job)
    {
      VmsJobMigration *part = vms_job_get_migration (job);

      job->phase = VMS_JOB_PHASE_ROLLED_BACK;
      g_free (part->last_error);
      part->last_error = g_strdup_printf ("in state %s: %s",
                                          vms_migrate_state_name (failed_in),
                                          cause->message);
      part->pid = 0;
    }
  move_to (migrate, VMS_MIGRATE_ROLLED_BACK, NULL);
  return source_ok;
}

/* ---- the whole ---- */

static gboolean
connect_destination (Migrate *migrate, GError **error)
{
  const char *address = migrate->options->dest_qmp;

#if VMS_HAVE_LIBVIRT
  if (migrate->libvirt)
    return vms_libvirt_migration_connect_destination (migrate->libvirt, error);
#endif
  if (!address && migrate->rep.job && migrate->rep.job->migration)
    address = migrate->rep.job->migration->dest_qmp;
  if (!address)
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                   "--dest-qmp is required");
      return FALSE;
    }
  migrate->dest = vms_qmp_connect (address, 0, error);
  if (!migrate->dest)
    {
      g_prefix_error (error, "destination %s: ", address);
      return FALSE;
    }
  vms_qmp_subscribe (migrate->dest, "MIGRATION", on_destination_migration,
                     migrate, NULL);
  vms_qmp_subscribe (migrate->dest, "RESUME", on_destination_resume, migrate,
                     NULL);
  return TRUE;
}

static gboolean
forward (Migrate *migrate, const char *source, GError **error)
{
  VmsReplicate *rep = &migrate->rep;

  for (;;)
    {
      VmsMigrateState next;

      if (g_atomic_int_get (&stop_requested)
          && vms_migrate_state_can_roll_back (migrate->state))
        return stop_error (error);
      switch (migrate->state)
        {
        case VMS_MIGRATE_PREFLIGHT:
          if (!preflight (migrate, source, error))
            return FALSE;
          break;
        case VMS_MIGRATE_BACKGROUND:
          if (!vms_replicate_background (rep, error))
            return FALSE;
          break;
        case VMS_MIGRATE_ROUNDS:
          if (!vms_replicate_rounds (rep, error))
            return FALSE;
          break;
        case VMS_MIGRATE_MIRROR:
          /* The mirror first, then what the bitmap holds: from then on
           * nothing the guest writes is missed. */
          if (!start_mirrors (migrate, error)
              || !vms_replicate_final_round (rep, error))
            return FALSE;
          break;
        case VMS_MIGRATE_MEMORY:
          if (!memory_precopy (migrate, error))
            return FALSE;
          break;
        case VMS_MIGRATE_SWITCHOVER:
          if (!switchover (migrate, error))
            return FALSE;
          break;
        case VMS_MIGRATE_DESTINATION:
          if (!wait_destination (migrate, error))
            return FALSE;
          break;
        case VMS_MIGRATE_COMMIT:
          if (!commit (migrate, error))
            return FALSE;
          break;
        case VMS_MIGRATE_CLEANUP:
          if (!cleanup (migrate, error))
            return FALSE;
          break;
        default:
          return TRUE;
        }
      next = vms_migrate_state_next (migrate->state, migrate->mode);
      if (!move_to (migrate, next, error))
        return FALSE;
      if (next == VMS_MIGRATE_DONE)
        return TRUE;
    }
}

static void
report (Migrate *migrate)
{
  VmsReplicate *rep = &migrate->rep;
  JsonObject *fields = json_object_new ();
  double seconds = (g_get_monotonic_time () - migrate->started_us) / 1e6;
  /* Left paused, the destination is ready when it has loaded the VM. */
  gint64 ready_us
      = migrate->options->suspend ? migrate->loaded_us : migrate->resume_us;
  gint64 downtime_ms = migrate->stop_us >= 0 && ready_us >= 0
                           ? (ready_us - migrate->stop_us) / 1000
                           : -1;
  g_autofree char *background = NULL;
  g_autofree char *rounds
      = vms_format_size (rep->run_bytes[VMS_REPLICATE_PASS_ROUNDS]);
  g_autofree char *final
      = vms_format_size (rep->run_bytes[VMS_REPLICATE_PASS_FINAL]);
  g_autofree char *ram = vms_format_size (migrate->ram_bytes);
  g_autofree char *downtime_text = NULL;

  /* libvirt tells the downtime QEMU measured; its events for the
   * destination are not ours to watch. */
  if (migrate->libvirt)
    downtime_ms = migrate->qemu_downtime_ms;
  background = vms_format_size (rep->run_bytes[VMS_REPLICATE_PASS_BACKGROUND]);
  downtime_text
      = migrate->libvirt && downtime_ms >= 0
            ? g_strdup_printf ("%" G_GINT64_FORMAT " ms (libvirt's "
                               "statistics of the completed job)",
                               downtime_ms)
        : downtime_ms >= 0
            ? g_strdup_printf ("%" G_GINT64_FORMAT " ms from the source's "
                               "STOP to %s",
                               downtime_ms,
                               migrate->options->suspend
                                   ? "the destination holding the VM, "
                                     "paused (--suspend)"
                                   : "the destination's RESUME")
            : g_strdup ("not measured (events missing)");

  vms_replicate_report_disks (rep);
  json_object_set_string_member (fields, "job", rep->job->id);
  json_object_set_string_member (fields, "final-sync",
                                 vms_migrate_final_sync_name (migrate->mode));
  json_object_set_double_member (fields, "seconds", seconds);
  json_object_set_int_member (fields, "downtime-ms", downtime_ms);
  json_object_set_int_member (fields, "qemu-downtime-ms",
                              migrate->qemu_downtime_ms);
  json_object_set_int_member (fields, "disk-background-bytes",
                              rep->run_bytes[VMS_REPLICATE_PASS_BACKGROUND]);
  json_object_set_int_member (fields, "disk-rounds-bytes",
                              rep->run_bytes[VMS_REPLICATE_PASS_ROUNDS]);
  json_object_set_int_member (fields, "disk-final-bytes",
                              rep->run_bytes[VMS_REPLICATE_PASS_FINAL]);
  json_object_set_int_member (fields, "ram-bytes", migrate->ram_bytes);
  json_object_set_int_member (fields, "attempts",
                              rep->job->migration->attempts);
  if (migrate->predicted)
    {
      gboolean mirror = migrate->mode == VMS_MIGRATE_FINAL_MIRROR;
      double total = mirror ? migrate->prediction.total_mirror_s
                            : migrate->prediction.total_pause_s;
      double downtime = mirror ? migrate->prediction.downtime_mirror_s
                               : migrate->prediction.downtime_pause_s;

      json_object_set_double_member (fields, "predicted-seconds", total);
      json_object_set_int_member (fields, "predicted-downtime-ms",
                                  (gint64)(downtime * 1000));
      vms_progress_event (rep->progress, "predicted", NULL,
                          "estimate %s: predicted %.1f s and %.0f ms of "
                          "downtime; actual %.1f s and %" G_GINT64_FORMAT " ms",
                          migrate->options->estimate, total, downtime * 1000,
                          seconds, downtime_ms);
    }
  vms_progress_event (
      rep->progress, "migrated", fields,
      "job %s migrated in %.1f s (%s): downtime %s (QEMU says "
      "%" G_GINT64_FORMAT " ms); sent disk background %s, disk rounds %s, "
      "disk final %s, RAM %s",
      rep->job->id, seconds, vms_migrate_final_sync_name (migrate->mode),
      downtime_text, migrate->qemu_downtime_ms, background, rounds, final, ram);
}

static gboolean
check_arguments (Migrate *migrate, int argc, GError **error)
{
  MigrateOptions *options = migrate->options;
  VmsReplicateOptions *base = &options->base;

  if (options->connect)
    {
#if !VMS_HAVE_LIBVIRT
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                   "this vmshift was built without libvirt: --connect is "
                   "not available");
      return FALSE;
#endif
      if (base->resume ? argc > 1 : argc != 3)
        {
          g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                       "expected --connect URI DOMAIN DESTURI --sink URI, "
                       "or --resume JOB (see 'vmshift migrate --help')");
          return FALSE;
        }
      if (!base->resume && !base->sink)
        {
          g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                       "--sink is required: the sink on the destination "
                       "host that receives the disks");
          return FALSE;
        }
      if (options->dest_qmp || options->dest_uri)
        {
          g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                       "--dest-qmp and --dest-uri drive QEMU "
                       "directly; with --connect libvirt starts the "
                       "destination (use --migrateuri for where memory "
                       "goes)");
          return FALSE;
        }
      if (options->final_sync && !g_str_equal (options->final_sync, "mirror"))
        {
          g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                       "--final-sync %s is not possible with --connect: "
                       "libvirt drives the switchover and does not let "
                       "vmshift hold the source paused before it, so only "
                       "mirror keeps the replicas exact",
                       options->final_sync);
          return FALSE;
        }
      migrate->mode = VMS_MIGRATE_FINAL_MIRROR;
    }
  else if (options->p2p || options->persistent || options->undefine_source
           || options->timeout_s || options->migrate_uri || options->dname
           || options->replica_dir || options->verbose)
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                   "--p2p, --persistent, --undefinesource, --timeout, "
                   "--migrateuri, --dname, --replica-dir and --verbose "
                   "are for libvirt domains: give --connect URI");
      return FALSE;
    }
  if (options->timeout_s < 0)
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                   "--timeout is at least 0");
      return FALSE;
    }
  if (!options->connect && (base->resume ? argc > 2 : argc != 2))
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                   "expected SOURCE --dest-qmp ADDRESS --dest-uri URI --sink "
                   "URI, or --resume JOB (see 'vmshift migrate --help')");
      return FALSE;
    }
  if (!options->connect && !base->resume
      && (!base->sink || !options->dest_qmp || !options->dest_uri))
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                   "--sink, --dest-qmp and --dest-uri are required");
      return FALSE;
    }
  if (options->final_sync
      && !vms_migrate_final_sync_parse (options->final_sync, &migrate->mode))
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                   "--final-sync is pause or mirror, not '%s'",
                   options->final_sync);
      return FALSE;
    }
  if (options->max_downtime_ms < 1 || options->multifd_channels < 0
      || options->memory_timeout_s < 0 || options->multifd_channels > 255
      || options->switchover_timeout_s < 1)
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                   "--max-downtime and --switchover-timeout are at least 1, "
                   "--memory-timeout at least 0; --multifd is 0..255");
      return FALSE;
    }
  if (options->bandwidth)
    {
      if (!vms_size_parse ("--bandwidth", options->bandwidth, 1024,
                                     &migrate->bandwidth, error))
        return FALSE;
      if (!base->max_bandwidth)
        base->max_bandwidth = g_strdup (options->bandwidth);
    }
  return vms_replicate_check_options (&migrate->rep, error);
}

static void
options_clear (MigrateOptions *options)
{
  vms_replicate_options_clear (&options->base);
  g_clear_pointer (&options->dest_qmp, g_free);
  g_clear_pointer (&options->dest_uri, g_free);
  g_clear_pointer (&options->final_sync, g_free);
  g_clear_pointer (&options->bandwidth, g_free);
  g_clear_pointer (&options->estimate, g_free);
  g_clear_pointer (&options->connect, g_free);
  g_clear_pointer (&options->migrate_uri, g_free);
  g_clear_pointer (&options->dname, g_free);
  g_clear_pointer (&options->replica_dir, g_free);
}

#if VMS_HAVE_LIBVIRT
/* The libvirt backend with what the command line says of it. */
static VmsLibvirtMigration *
libvirt_from_options (const MigrateOptions *options)
{
  VmsLibvirtMigration *libvirt = vms_libvirt_migration_new ();

  libvirt->connect_uri = g_strdup (options->connect);
  libvirt->migrate_uri = g_strdup (options->migrate_uri);
  libvirt->dname = g_strdup (options->dname);
  libvirt->replica_dir = g_strdup (options->replica_dir);
  return libvirt;
}
#endif

int
vms_cmd_migrate (int argc, char **argv)
{
  MigrateOptions options
      = { .base.rounds = -1,
          .max_downtime_ms = DEFAULT_MAX_DOWNTIME_MS,
          .switchover_timeout_s = DEFAULT_SWITCHOVER_TIMEOUT_S };
  Migrate migrate;
  g_autofree GOptionEntry *copy_entries
      = vms_replicate_option_entries (&options.base);
  const GOptionEntry entries[] = {
    { "dest-qmp", 'D', 0, G_OPTION_ARG_STRING, &options.dest_qmp,
      "QMP monitor of the destination QEMU (-incoming defer)", "ADDRESS" },
    { "dest-uri", 'u', 0, G_OPTION_ARG_STRING, &options.dest_uri,
      "Where the destination listens for memory (tcp:HOST:PORT, unix:PATH)",
      "URI" },
    { "final-sync", 'f', 0, G_OPTION_ARG_STRING, &options.final_sync,
      "pause (default) or mirror: how the disks' last writes cross", "MODE" },
    { "max-downtime", 0, 0, G_OPTION_ARG_INT, &options.max_downtime_ms,
      "QEMU's downtime limit for the memory switchover (default 300)", "MS" },
    { "bandwidth", 0, 0, G_OPTION_ARG_STRING, &options.bandwidth,
      "At most RATE bytes/s for disks and for RAM (e.g. 100M)", "RATE" },
    { "multifd", 0, 0, G_OPTION_ARG_INT, &options.multifd_channels,
      "Send RAM over N parallel connections (default: one)", "N" },
    { "auto-converge", 0, 0, G_OPTION_ARG_NONE, &options.auto_converge,
      "Let QEMU slow the guest's CPUs if RAM does not converge", NULL },
    { "suspend", 0, 0, G_OPTION_ARG_NONE, &options.suspend,
      "Leave the VM paused on the destination (started with -S), as "
      "virsh migrate --suspend",
      NULL },
    { "estimate", 0, 0, G_OPTION_ARG_STRING, &options.estimate,
      "Use estimate ID's tuning; report predicted against actual", "ID" },
    { "memory-timeout", 0, 0, G_OPTION_ARG_INT, &options.memory_timeout_s,
      "Roll back if memory has not converged after S s (default: wait)", "S" },
    { "switchover-timeout", 0, 0, G_OPTION_ARG_INT,
      &options.switchover_timeout_s,
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
    { "timeout", 0, 0, G_OPTION_ARG_INT, &options.timeout_s,
      "Suspend the domain if libvirt's migration takes more than S s", "S" },
    { "migrateuri", 0, 0, G_OPTION_ARG_STRING, &options.migrate_uri,
      "Where memory goes, e.g. tcp://10.0.0.2 (libvirt's default: the "
      "destination's host name)",
      "URI" },
    { "dname", 0, 0, G_OPTION_ARG_STRING, &options.dname,
      "The domain's name at the destination", "NAME" },
    { "replica-dir", 0, 0, G_OPTION_ARG_FILENAME, &options.replica_dir,
      "The sink's directory on the destination host (default "
      "/var/lib/vmshift/replicas; the destination's hook may correct it)",
      "DIR" },
    G_OPTION_ENTRY_NULL
  };
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsProgress) progress = NULL;
  const char *source;
  struct sigaction action = { .sa_handler = handle_stop_signal };
  VmsMigrateState resume_at = VMS_MIGRATE_PREFLIGHT;
  int stopped_in = -1;
  gboolean commit_only = FALSE; /* libvirt moved the domain already */
  int status = VMS_EXIT_OK;

  migrate_init (&migrate, &options);
  context = g_option_context_new (
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
  g_set_prgname ("vmshift migrate");
  if (!g_option_context_parse (context, &argc, &argv, &error)
      || !check_arguments (&migrate, argc, &error))
    {
      vms_cli_error ("migrate", "%s", error->message);
      status = VMS_EXIT_USAGE;
      goto out;
    }
  progress = vms_progress_new (options.base.json ? VMS_PROGRESS_JSON
                                                 : VMS_PROGRESS_TEXT);
  migrate.rep.progress = progress;
  migrate.started_us = g_get_monotonic_time ();
  sigaction (SIGINT, &action, NULL);
  sigaction (SIGTERM, &action, NULL);

  source = argc == 2 && !options.connect ? argv[1] : NULL;
#if VMS_HAVE_LIBVIRT
  if (options.connect)
    migrate.libvirt = libvirt_from_options (&options);
#endif
  if (options.base.resume)
    {
      g_autoptr (VmsJob) saved
          = vms_job_load (options.base.state_dir, options.base.resume, &error);

      if (!saved)
        {
          vms_cli_error ("migrate", "%s", error->message);
          status = VMS_EXIT_FAILED;
          goto out;
        }
      if (!source)
        source = g_intern_string (saved->source);
      if (saved->migration && saved->migration->final_sync
          && !options.final_sync)
        vms_migrate_final_sync_parse (saved->migration->final_sync,
                                      &migrate.mode);
      if (saved->phase == VMS_JOB_PHASE_MIGRATED)
        {
          vms_cli_error ("migrate", "job %s is migrated already", saved->id);
          status = VMS_EXIT_FAILED;
          goto out;
        }
#if VMS_HAVE_LIBVIRT
      if (saved->migration && saved->migration->libvirt)
        {
          if (!migrate.libvirt)
            migrate.libvirt = libvirt_from_options (&options);
          /* What is given now wins over what was saved. */
          vms_libvirt_migration_load (migrate.libvirt, saved);
          migrate.mode = VMS_MIGRATE_FINAL_MIRROR;
        }
#endif
      if (saved->migration && !options.dest_qmp)
        options.dest_qmp = g_strdup (saved->migration->dest_qmp);
      if (saved->migration && !options.estimate)
        options.estimate = g_strdup (saved->migration->estimate);
      if (saved->migration && !options.dest_uri)
        options.dest_uri = g_strdup (saved->migration->dest_uri);
      stopped_in = saved->migration
                       ? vms_migrate_state_parse (saved->migration->state)
                       : -1;
      if (stopped_in >= 0)
        resume_at = vms_migrate_resume_state (stopped_in);
      if (!options.dest_uri && resume_at == VMS_MIGRATE_PREFLIGHT
          && !migrate.libvirt)
        {
          vms_cli_error ("migrate", "job %s has no --dest-uri yet: give it",
                         saved->id);
          status = VMS_EXIT_USAGE;
          goto out;
        }
    }

#if VMS_HAVE_LIBVIRT
  if (migrate.libvirt)
    {
      VmsLibvirtMigration *libvirt = migrate.libvirt;

      if (!options.base.resume)
        {
          libvirt->domain_name = g_strdup (argv[1]);
          libvirt->dest_uri = g_strdup (argv[2]);
        }
      if (!libvirt->replica_dir)
        libvirt->replica_dir = g_strdup (VMS_LIBVIRT_DEFAULT_REPLICA_DIR);
      libvirt->p2p |= options.p2p;
      libvirt->persistent |= options.persistent;
      libvirt->undefine_source |= options.undefine_source;
      libvirt->verbose = options.verbose;
      libvirt->timeout_s = options.timeout_s;
      libvirt->suspend = options.suspend;
      if (vms_libvirt_migration_open (libvirt, &error))
        migrate.rep.qmp = vms_libvirt_qmp_open (libvirt->domain, &error);
      else if (stopped_in >= VMS_MIGRATE_MEMORY
               && (g_error_matches (error, VMS_LIBVIRT_ERROR,
                                    VMS_LIBVIRT_ERROR_NO_DOMAIN)
                   || g_error_matches (error, VMS_LIBVIRT_ERROR,
                                       VMS_LIBVIRT_ERROR_NOT_RUNNING))
               && vms_libvirt_migration_connect_destination (libvirt, NULL)
               && vms_libvirt_migration_destination_runs (libvirt))
        {
          /* libvirt moved the domain before this job was committed (the
           * vmshift that ran it was stopped): only the commit is left. */
          g_printerr ("vmshift: migrate: the domain left the source and "
                      "runs at the destination: committing\n");
          g_clear_error (&error);
          migrate.rep.job = vms_job_load (options.base.state_dir,
                                          options.base.resume, &error);
          if (migrate.rep.job)
            {
              migrate.state = VMS_MIGRATE_COMMIT;
              commit_only = TRUE;
              source = libvirt->domain_name;
            }
        }
      if (migrate.rep.qmp)
        {
          /* The disks libvirt knows, named by their targets. */
          if (!options.base.resume)
            {
              /* --disk names targets (vda), as virsh does; vmshift finds
               * the disks in QEMU by their aliases. */
              g_autoptr (GStrvBuilder) chosen = g_strv_builder_new ();

              for (guint i = 0; libvirt->disk_aliases[i]; i++)
                {
                  const char *alias = libvirt->disk_aliases[i];
                  const char *target
                      = g_hash_table_lookup (libvirt->disk_targets, alias);

                  if (!options.base.disks
                      || g_strv_contains (
                          (const char *const *)options.base.disks, target)
                      || g_strv_contains (
                          (const char *const *)options.base.disks, alias))
                    g_strv_builder_add (chosen, alias);
                }
              g_strfreev (options.base.disks);
              options.base.disks = g_strv_builder_end (chosen);
              if (!options.base.disks[0])
                g_set_error (&error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                             "--disk names no disk of domain %s",
                             libvirt->domain_name);
            }
          migrate.rep.replica_names = libvirt->disk_targets;
          source = libvirt->domain_name;
        }
    }
  else
#endif
    migrate.rep.qmp = vms_qmp_connect (source, 0, &error);
  if (migrate.rep.qmp)
    vms_qmp_subscribe (migrate.rep.qmp, "STOP", on_source_stop, &migrate, NULL);
  if (migrate.rep.qmp && !migrate.libvirt
      && (stopped_in == VMS_MIGRATE_DESTINATION
          || stopped_in == VMS_MIGRATE_ROLLBACK))
    {
      /* Stopped around the switchover: if the destination got the VM and
       * runs it, the migration happened and only the commit is left. */
      g_autofree char *source_state
          = vms_migration_run_state (migrate.rep.qmp, NULL);

      if (g_strcmp0 (source_state, "postmigrate") == 0
          && connect_destination (&migrate, NULL)
          && destination_runs (&migrate))
        resume_at = VMS_MIGRATE_COMMIT;
      g_clear_pointer (&migrate.dest, vms_qmp_free);
    }
  if (migrate.rep.qmp && resume_at != VMS_MIGRATE_PREFLIGHT)
    {
      /* The destination ran: only the commit and cleanup are left. */
      migrate.state = resume_at;
      if (!vms_replicate_open_job (&migrate.rep, source, &error))
        migrate.state = VMS_MIGRATE_DONE;
    }
  if ((!migrate.rep.qmp && !commit_only) || error
      || (resume_at == VMS_MIGRATE_PREFLIGHT && !commit_only
          && !connect_destination (&migrate, &error))
      || !forward (&migrate, source, &error))
    {
      g_autoptr (GError) rollback_error = NULL;
      gboolean rolled_back = FALSE;

      status = vms_cli_exit_code (error);
      vms_cli_error ("migrate", "%s", error->message);
      if (migrate.state == VMS_MIGRATE_DESTINATION
          && destination_runs (&migrate))
        {
          /* The VM runs at the destination: rolling back would run it
           * twice.  What failed was only our watching; commit. */
          g_printerr ("vmshift: migrate: the destination runs the VM: "
                      "committing instead of rolling back\n");
          g_clear_error (&error);
          if (move_to (&migrate, VMS_MIGRATE_COMMIT, &error)
              && forward (&migrate, source, &error))
            {
              report (&migrate);
              status = VMS_EXIT_OK;
              goto out;
            }
          status = vms_cli_exit_code (error);
          vms_cli_error ("migrate", "%s", error->message);
        }
      if (vms_migrate_state_can_roll_back (migrate.state) && migrate.rep.qmp)
        {
          rolled_back = roll_back (&migrate, error, &rollback_error);
          if (!rolled_back)
            vms_cli_error ("migrate", "%s", rollback_error->message);
        }
      if (migrate.rep.job)
        {
          g_autofree char *hint = NULL;

          if (rolled_back)
            hint = g_strdup_printf (
                "migration rolled back: the source VM runs and nothing is "
                "lost; the replicas are incomplete and keep what was "
                "copied.  Continue with: vmshift migrate --resume %s%s",
                migrate.rep.job->id,
                migrate.migration_started && !migrate.libvirt
                    ? " (after starting the destination QEMU again: it "
                      "exits when a migration fails)"
                    : "");
          else
            hint = g_strdup_printf ("job %s stopped in state %s",
                                    migrate.rep.job->id,
                                    vms_migrate_state_name (migrate.state));
          g_printerr ("%s\n", hint);
          if (options.base.json)
            vms_progress_event (progress, rolled_back ? "rolled-back" : "error",
                                NULL, "%s; %s", error->message, hint);
          vms_job_save (migrate.rep.job, NULL);
        }
      else if (options.base.json)
        vms_progress_event (progress, "error", NULL, "%s", error->message);
    }
  else
    report (&migrate);

out:
  vms_qmp_free (migrate.dest);
  g_free (migrate.tls_object);
  vms_replicate_clear (&migrate.rep);
#if VMS_HAVE_LIBVIRT
  vms_libvirt_migration_free (migrate.libvirt);
#endif
  options_clear (&options);
  return status;
}

/* ---- vmshift abort ---- */

static gboolean
process_is_vmshift (gint64 pid)
{
  g_autofree char *path
      = g_strdup_printf ("/proc/%" G_GINT64_FORMAT "/cmdline", pid);
  g_autofree char *cmdline = NULL;
  gsize length = 0;

  if (pid <= 0 || !g_file_get_contents (path, &cmdline, &length, NULL))
    return FALSE;
  /* NUL-separated arguments: a vmshift program running "migrate". */
  if (length == 0 || !strstr (cmdline, "vmshift"))
    return FALSE;
  for (gsize at = 0; at < length; at += strlen (cmdline + at) + 1)
    if (g_str_equal (cmdline + at, "migrate"))
      return TRUE;
  return FALSE;
}

/* Roll back a job whose vmshift died, from what its state file says;
 * takes job. */
static gboolean
roll_back_orphan (const char *state_dir, VmsJob *job, GError **error)
{
  MigrateOptions options = { .base.state_dir = (char *)state_dir };
  Migrate migrate;
  int state = vms_migrate_state_parse (job->migration->state);
  g_autofree char *socket_name = g_strconcat (job->id, ".nbd", NULL);
  g_autoptr (GError) cause
      = g_error_new (VMS_COPY_ERROR, VMS_COPY_ERROR_STOPPED,
                     "vmshift died; rolled back by "
                     "vmshift abort");
  g_autoptr (VmsProgress) progress = vms_progress_new (VMS_PROGRESS_TEXT);
  gboolean ok = FALSE;

  migrate_init (&migrate, &options);
  migrate.rep.job = job;
  migrate.rep.progress = progress;
  vms_migrate_final_sync_parse (job->migration->final_sync, &migrate.mode);
  migrate.state = state >= 0 ? state : VMS_MIGRATE_PREFLIGHT;
  if (!vms_migrate_state_can_roll_back (migrate.state))
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                   "job %s stopped in state %s, after the destination ran: "
                   "'vmshift migrate --resume %s' finishes it",
                   job->id, job->migration->state, job->id);
      goto out;
    }
#if VMS_HAVE_LIBVIRT
  if (job->migration->libvirt)
    {
      migrate.libvirt = vms_libvirt_migration_new ();
      vms_libvirt_migration_load (migrate.libvirt, job);
      if (vms_libvirt_migration_open (migrate.libvirt, error))
        migrate.rep.qmp = vms_libvirt_qmp_open (migrate.libvirt->domain, error);
      if (migrate.rep.qmp)
        {
          /* Back to running, as libvirt leaves a failed migration. */
          migrate.libvirt->was_running = TRUE;
          vms_libvirt_migration_connect_destination (migrate.libvirt, NULL);
        }
    }
  else
#endif
    migrate.rep.qmp = vms_qmp_connect (job->source, 0, error);
  if (!migrate.rep.qmp)
    {
      g_prefix_error (error, "source %s: ", job->source);
      goto out;
    }
  /* The destination only helps decide a completed migration. */
  if (job->migration->dest_qmp)
    migrate.dest = vms_qmp_connect (job->migration->dest_qmp, 0, NULL);
  migrate.migration_started = migrate.state >= VMS_MIGRATE_MEMORY;
  /* The preflight wanted it running or paused; from the memory phase on
   * a paused source is QEMU's doing. */
  migrate.source_was_running = migrate.state >= VMS_MIGRATE_MEMORY;
  migrate.rep.nbd_socket = g_build_filename (state_dir, socket_name, NULL);
  ok = roll_back (&migrate, cause, error);
  if (!vms_job_save (job, ok ? error : NULL))
    ok = FALSE;

out:
  vms_qmp_free (migrate.dest);
  g_free (migrate.tls_object);
  migrate.rep.options = NULL;
  vms_replicate_clear (&migrate.rep);
#if VMS_HAVE_LIBVIRT
  vms_libvirt_migration_free (migrate.libvirt);
#endif
  return ok;
}

int
vms_cmd_abort (int argc, char **argv)
{
  char *state_dir = NULL;
  int timeout_s = 120;
  const GOptionEntry entries[]
      = { { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &state_dir,
            "Where job state lives (default /var/lib/vmshift as root)", "DIR" },
          { "timeout", 't', 0, G_OPTION_ARG_INT, &timeout_s,
            "Wait at most S s for the rollback (default 120)", "S" },
          G_OPTION_ENTRY_NULL };
  g_autoptr (GOptionContext) context = g_option_context_new ("JOB");
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsJob) job = NULL;
  gint64 pid, deadline;
  int status = VMS_EXIT_OK;

  g_option_context_set_summary (
      context, "Stop a running 'vmshift migrate' JOB; it rolls back and the "
               "source VM keeps running.");
  g_option_context_add_main_entries (context, entries, NULL);
  g_set_prgname ("vmshift abort");
  if (!g_option_context_parse (context, &argc, &argv, &error) || argc != 2
      || timeout_s < 1)
    {
      vms_cli_error ("abort", "%s",
                     error ? error->message
                           : "expected one JOB (see 'vmshift abort --help')");
      status = VMS_EXIT_USAGE;
      goto out;
    }
  if (!state_dir)
    state_dir = vms_job_default_state_dir ();
  job = vms_job_load (state_dir, argv[1], &error);
  if (!job)
    {
      vms_cli_error ("abort", "%s", error->message);
      status = VMS_EXIT_FAILED;
      goto out;
    }
  pid = job->migration ? job->migration->pid : 0;
  if (job->phase == VMS_JOB_PHASE_MIGRATING && !process_is_vmshift (pid))
    {
      /* Its vmshift died (kill -9, a crash): QEMU may still migrate, or
       * hold the source paused at pre-switchover.  Roll back here. */
      g_printerr ("vmshift: abort: the vmshift of job %s is gone; rolling "
                  "back from state %s\n",
                  job->id,
                  job->migration->state ? job->migration->state : "unknown");
      if (!roll_back_orphan (state_dir, g_steal_pointer (&job), &error))
        {
          vms_cli_error ("abort", "%s", error->message);
          status = vms_cli_exit_code (error);
          goto out;
        }
      job = vms_job_load (state_dir, argv[1], NULL);
      if (job)
        g_print ("job %s: %s\n", job->id, vms_job_phase_name (job->phase));
      goto out;
    }
  if (!process_is_vmshift (pid))
    {
      vms_cli_error (
          "abort",
          "job %s is not being migrated (phase %s%s%s); "
          "nothing to abort",
          job->id, vms_job_phase_name (job->phase),
          job->migration ? ", state " : "",
          job->migration && job->migration->state ? job->migration->state : "");
      status = VMS_EXIT_FAILED;
      goto out;
    }
  if (kill ((pid_t)pid, SIGTERM) < 0)
    {
      vms_cli_error ("abort",
                     "cannot signal vmshift (pid %" G_GINT64_FORMAT "): %s",
                     pid, g_strerror (errno));
      status = VMS_EXIT_FAILED;
      goto out;
    }
  g_printerr ("vmshift: abort: asked vmshift (pid %" G_GINT64_FORMAT
              ") to roll job %s back\n",
              pid, job->id);
  deadline = g_get_monotonic_time () + timeout_s * (gint64)G_USEC_PER_SEC;
  while (process_is_vmshift (pid))
    {
      if (g_get_monotonic_time () > deadline)
        {
          vms_cli_error ("abort",
                         "vmshift (pid %" G_GINT64_FORMAT ") still "
                         "runs after %d s",
                         pid, timeout_s);
          status = VMS_EXIT_CONNECT;
          goto out;
        }
      g_usleep (100 * 1000);
    }
  g_clear_pointer (&job, vms_job_free);
  job = vms_job_load (state_dir, argv[1], &error);
  if (job)
    g_print ("job %s: %s%s%s\n", job->id, vms_job_phase_name (job->phase),
             job->migration && job->migration->last_error ? ": " : "",
             job->migration && job->migration->last_error
                 ? job->migration->last_error
                 : "");

out:
  g_free (state_dir);
  return status;
}
