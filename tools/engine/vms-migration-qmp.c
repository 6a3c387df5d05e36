/* vmshift engine: the QMP backend: both QEMUs driven directly, the
 * source held paused before switchover (pause-before-switchover) while
 * the disks' last writes cross.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-migration-backend.h"
#include "vms-sink-client.h"
#include "vms-disk.h"
#include "vms-vm.h"
#include "vms-qemu-migration.h"
#include "vms-writeback.h"
#include "vms-memory-tuning.h"
#include "vms-migration-tls.h"
#include "vms-ram-sample.h"
#include "vms-dest-restart.h"
#include "vms-estimate-model.h"

#include <unistd.h>

/* How often the memory phase looks at both QEMUs. */
#define POLL_INTERVAL_MS 200
#define CANCEL_TIMEOUT_MS 30000
/* How long the two ends of a broken memory stream may take to notice
 * it (a reset reaches one at once, the other at its next write). */
#define SETTLE_TIMEOUT_MS 5000
/* What libvirt sets for "no limit" too: far above any link. */
#define UNLIMITED_BANDWIDTH (G_GINT64_CONSTANT (1) << 50)

typedef struct
{
  VmsQmp *dest;            /* the destination QEMU's monitor, or NULL */
  gint64 setup_event_us;   /* its MIGRATION setup, which migrate-incoming
                              causes: a clock sample; -1 until seen */
  VmsWriteback *writeback; /* the source's images, when local */
  VmsMemoryTuning tuning;  /* QEMU's downtime-limit, raised if need be */
  gboolean dest_failed;    /* the destination's incoming migration failed
                              (its MIGRATION event said so) */
  gboolean listening;      /* the destination still listens from an
                              earlier migrate-incoming: a new attempt
                              only connects again */
  double zstd_ratio;       /* with --compress zstd, the RAM's pages
                              compressed, bytes out per byte in; 0: not
                              known */
  gboolean group_held;     /* QEMU runs under VMS_GROUP_HOLD_LIMIT_MS until
                              the group's other members can switch over */
  gboolean group_ready;    /* ... and could switch over, said so */
  gboolean group_released; /* every member could: no attempt is held */
  gboolean group_wants_link; /* held, it did not converge under its RAM
                                cap: ready all the same */
} QmpBackend;

static QmpBackend *
backend_of (VmsMigration *migration)
{
  if (!migration->backend_data)
    {
      QmpBackend *backend = g_new0 (QmpBackend, 1);

      backend->setup_event_us = -1;
      migration->backend_data = backend;
    }
  return migration->backend_data;
}

static VmsQmp *
dest_of (VmsMigration *migration)
{
  return backend_of (migration)->dest;
}

static void
qmp_free (VmsMigration *migration)
{
  QmpBackend *backend = migration->backend_data;

  if (!backend)
    return;
  vms_qmp_free (backend->dest);
  vms_writeback_free (backend->writeback);
  g_free (backend);
  migration->backend_data = NULL;
}

/* ---- events ---- */

static void
on_destination_migration (VmsQmp *qmp, const char *event, JsonObject *data,
                          gint64 timestamp_us, gpointer user_data)
{
  VmsMigration *migration = user_data;
  QmpBackend *backend = backend_of (migration);
  VmsDowntime *downtime = &migration->downtime;
  const char *status
      = data ? json_object_get_string_member_with_default (data, "status", "")
             : "";

  vms_downtime_clock_event (downtime, timestamp_us, g_get_real_time ());
  if (g_str_equal (status, "setup") && backend->setup_event_us < 0)
    backend->setup_event_us = timestamp_us;
  if (g_str_equal (status, "failed"))
    backend->dest_failed = TRUE;
  if (g_str_equal (status, "completed") && downtime->dest_completed_us < 0)
    downtime->dest_completed_us
        = timestamp_us >= 0 ? timestamp_us : g_get_real_time ();
}

static void
on_destination_resume (VmsQmp *qmp, const char *event, JsonObject *data,
                       gint64 timestamp_us, gpointer user_data)
{
  VmsMigration *migration = user_data;
  VmsDowntime *downtime = &migration->downtime;
  gint64 now = g_get_real_time ();

  vms_downtime_clock_event (downtime, timestamp_us, now);
  if (downtime->resume_us < 0)
    {
      downtime->resume_us = timestamp_us >= 0 ? timestamp_us : now;
      downtime->resume_received_us = now;
    }
}

/* ---- connections ---- */

static gboolean
qmp_open (VmsMigration *migration, GError **error)
{
  const char *source = migration->config.source;

  if (!source)
    {
      g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_INVALID,
                   "no SOURCE to migrate");
      return FALSE;
    }
  migration->source_name = g_strdup (source);
  migration->rep.qmp = vms_qmp_connect (source, 0, error);
  return migration->rep.qmp != NULL;
}

static gboolean
qmp_connect_destination (VmsMigration *migration, GError **error)
{
  const char *address = migration->config.dest_qmp;
  QmpBackend *backend = backend_of (migration);

  if (!address)
    {
      g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_INVALID,
                   "--dest-qmp is required");
      return FALSE;
    }
  backend->dest = vms_qmp_connect (address, 0, error);
  if (!backend->dest)
    {
      g_prefix_error (error, "destination %s: ", address);
      return FALSE;
    }
  vms_qmp_subscribe (backend->dest, "MIGRATION", on_destination_migration,
                     migration, NULL);
  vms_qmp_subscribe (backend->dest, "RESUME", on_destination_resume, migration,
                     NULL);
  return TRUE;
}

static gboolean
qmp_open_for_rollback (VmsMigration *migration, GError **error)
{
  VmsJob *job = migration->rep.job;

  migration->rep.qmp = vms_qmp_connect (job->source, 0, error);
  if (!migration->rep.qmp)
    {
      g_prefix_error (error, "source %s: ", job->source);
      return FALSE;
    }
  /* The destination only helps decide a completed migration. */
  if (job->migration->dest_qmp)
    backend_of (migration)->dest
        = vms_qmp_connect (job->migration->dest_qmp, 0, NULL);
  return TRUE;
}

/* ---- checks ---- */

static char *
basename_without_query (const char *filename)
{
  g_autofree char *path = g_strndup (filename, strcspn (filename, "?"));

  return g_path_get_basename (path);
}

static gboolean
check_destination_disk (const char *sink, VmsJobDisk *disk, VmsDisk *there,
                        GError **error)
{
  g_autofree char *base = basename_without_query (there->filename);

  if (there->size != disk->size)
    {
      g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_MISMATCH,
                   "destination disk %s is %" G_GUINT64_FORMAT
                   " bytes, the source's %" G_GUINT64_FORMAT,
                   disk->name, there->size, disk->size);
      return FALSE;
    }
  if (!g_str_equal (there->format, "raw")
      && !g_str_equal (there->format, "nbd"))
    {
      g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_MISMATCH,
                   "destination disk %s is %s; a replica is a raw "
                   "image: open it with format raw",
                   disk->name, there->format);
      return FALSE;
    }
  /* A disk on a file must be the replica itself, where the sink keeps
   * it: a file of the same name elsewhere (an old copy, another sink's
   * directory) is not.  An older sink does not say where: the name is
   * all there is to check then. */
  if (!g_str_equal (there->format, "nbd"))
    {
      g_autoptr (GError) where_error = NULL;
      g_autofree char *where
          = vms_sink_client_where (sink, disk->replica, &where_error);

      if (where_error)
        {
          g_propagate_error (error, g_steal_pointer (&where_error));
          return FALSE;
        }
      if (where && !g_str_equal (there->filename, where))
        {
          g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_MISMATCH,
                       "destination disk %s opens %s, but the sink keeps "
                       "the replica %s at %s: open that one",
                       disk->name, there->filename, disk->replica, where);
          return FALSE;
        }
      if (where)
        return TRUE;
    }
  if (!g_str_equal (base, disk->replica))
    {
      g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_MISMATCH,
                   "destination disk %s opens %s, not the replica %s",
                   disk->name, there->filename, disk->replica);
      return FALSE;
    }
  return TRUE;
}

/* How the source's RAM compresses, for its cap on the link: QEMU 7.2
 * counts multifd's bytes before compression.  Best effort: without it
 * the cap comes from QEMU's first round. */
static void
sample_compression (VmsMigration *migration)
{
  /* By job: a plan runs several migrations in one process. */
  g_autofree char *file = g_strdup_printf ("ram-sample-%s-%d.bin",
                                           migration->rep.job->id, getpid ());
  g_autofree char *path
      = g_build_filename (migration->config.copy.state_dir, file, NULL);
  g_autoptr (GError) error = NULL;
  VmsRamSample sample;

  if (!vms_ram_sample (migration->rep.qmp, path, &sample, &error))
    {
      vms_progress_event (migration->progress, "warning", NULL,
                          "--compress: the RAM could not be sampled for its "
                          "compression ratio (%s); its cap will come from "
                          "QEMU's first round",
                          error->message);
      return;
    }
  backend_of (migration)->zstd_ratio = sample.zstd_ratio;
}

/* Both QEMUs take the method now, not after the disks are copied: a
 * QEMU built without it refuses the value. */
static gboolean
check_compression (VmsMigration *migration, GError **error)
{
  const char *method = vms_memory_compress_name (migration->config.compress);
  VmsQmp *qemus[] = { migration->rep.qmp, dest_of (migration) };

  if (migration->config.compress == VMS_MEMORY_COMPRESS_NONE)
    return TRUE;
  for (guint i = 0; i < G_N_ELEMENTS (qemus); i++)
    {
      g_autoptr (JsonObject) parameters = json_object_new ();

      json_object_set_string_member (parameters, "multifd-compression", method);
      if (!vms_qemu_migration_set_parameters (qemus[i], parameters, error))
        {
          g_prefix_error (error, "--compress %s: the %s QEMU: ", method,
                          i == 0 ? "source" : "destination");
          return FALSE;
        }
    }
  sample_compression (migration);
  return TRUE;
}

/* Each disk of the job must be at the destination under the same name,
 * raw, the same size, opened on its replica; and a compression both
 * QEMUs take. */
static gboolean
qmp_check_job (VmsMigration *migration, GError **error)
{
  VmsJob *job = migration->rep.job;
  g_autoptr (GPtrArray) found = vms_disk_discover (dest_of (migration), error);

  if (!found)
    {
      g_prefix_error (error, "destination: ");
      return FALSE;
    }
  for (guint i = 0; i < job->disks->len; i++)
    {
      VmsJobDisk *disk = job->disks->pdata[i];
      VmsDisk *there = vms_disk_find (found, disk->name, error);

      if (!there)
        {
          g_prefix_error (error, "destination: ");
          return FALSE;
        }
      if (!check_destination_disk (job->sink, disk, there, error))
        return FALSE;
    }
  /* Here rather than in the preflight: an estimate, read once the job
   * is open, may have chosen it. */
  return check_compression (migration, error);
}

static gboolean
check_versions (VmsMigration *migration, GError **error)
{
  int smajor, sminor, smicro, dmajor, dminor, dmicro;
  g_autofree char *source_machine = NULL;
  g_autofree char *dest_machine = NULL;

  vms_qmp_get_version (migration->rep.qmp, &smajor, &sminor, &smicro);
  vms_qmp_get_version (dest_of (migration), &dmajor, &dminor, &dmicro);
  /* QEMU accepts a stream from the same or an older version only. */
  if (dmajor < smajor || (dmajor == smajor && dminor < sminor))
    {
      g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_MISMATCH,
                   "the destination runs QEMU %d.%d.%d, older than the "
                   "source's %d.%d.%d: QEMU cannot migrate to an older "
                   "version",
                   dmajor, dminor, dmicro, smajor, sminor, smicro);
      return FALSE;
    }
  source_machine = vms_qemu_migration_machine_type (migration->rep.qmp, error);
  if (!source_machine)
    return FALSE;
  dest_machine = vms_qemu_migration_machine_type (dest_of (migration), error);
  if (!dest_machine)
    return FALSE;
  if (!g_str_equal (source_machine, dest_machine))
    {
      g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_MISMATCH,
                   "machine types differ: the source is %s, the destination "
                   "%s; start the destination with the source's -machine",
                   source_machine, dest_machine);
      return FALSE;
    }
  return TRUE;
}

static gboolean
check_source_state (VmsMigration *migration, GError **error)
{
  g_autofree char *source
      = vms_qemu_migration_run_state (migration->rep.qmp, error);
  g_auto (VmsQemuMigrationInfo) info = { 0 };

  if (!source || !vms_qemu_migration_query (migration->rep.qmp, &info, error))
    return FALSE;
  if (info.status != VMS_QEMU_MIGRATION_NONE
      && !vms_qemu_migration_status_is_final (info.status))
    {
      g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_PRECONDITION,
                   "a migration is already under way on the source "
                   "(status %s); if it is a killed vmshift's, 'vmshift abort "
                   "JOB' cancels it",
                   info.status_name);
      return FALSE;
    }
  if (!g_str_equal (source, "running") && !g_str_equal (source, "paused"))
    {
      g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_PRECONDITION,
                   "the source VM is '%s', not running or paused", source);
      return FALSE;
    }
  migration->source_was_running = g_str_equal (source, "running");
  return TRUE;
}

static gboolean
qmp_preflight (VmsMigration *migration, GError **error)
{
  g_autofree char *dest = NULL;

  if (!check_source_state (migration, error))
    return FALSE;
  dest = vms_qemu_migration_run_state (dest_of (migration), error);
  if (!dest)
    return FALSE;
  if (!g_str_equal (dest, "inmigrate"))
    {
      g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_PRECONDITION,
                   "the destination QEMU is '%s', not waiting for a "
                   "migration: start it with -incoming defer (after a "
                   "failed attempt QEMU exits, so start a new one)",
                   dest);
      return FALSE;
    }
  if (!migration->config.dest_uri)
    {
      g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_INVALID,
                   "job %s has no --dest-uri yet: give it",
                   migration->config.copy.resume);
      return FALSE;
    }
  /* Again for a resumed job, whose --dest-uri the CLI did not see. */
  if (!vms_migration_check_clear_text (migration->config.dest_uri,
                                       migration->config.tls,
                                       migration->config.insecure, error))
    return FALSE;
  return check_versions (migration, error);
}

/* ---- memory ---- */

static gboolean
set_capabilities (VmsMigration *migration, GError **error)
{
  static const char *const both[]
      = { "events", "pause-before-switchover", NULL };
  static const char *const multifd[] = { "multifd", NULL };
  static const char *const auto_converge[] = { "auto-converge", NULL };
  const VmsMigrationConfig *config = &migration->config;
  VmsQmp *source = migration->rep.qmp, *dest = dest_of (migration);
  gboolean use_multifd = vms_migration_multifd_channels (config) > 0;

  return vms_qemu_migration_set_capabilities (source, both, TRUE, error)
         && vms_qemu_migration_set_capabilities (dest, both, TRUE, error)
         && vms_qemu_migration_set_capabilities (source, multifd, use_multifd,
                                                 error)
         && vms_qemu_migration_set_capabilities (dest, multifd, use_multifd,
                                                 error)
         && vms_qemu_migration_set_capabilities (
             source, auto_converge, vms_migration_ram_backpressure (config),
             error);
}

/* The RAM's share of the link the disks crossed, from the start: an
 * unlimited QEMU fills the socket's and the network's queues in its first
 * round, and an idle guest switches over right after it, with what waits
 * there inside the downtime.  0 when the link's rate is not known (QEMU's
 * first round then measures it).  *wide is all the link the mirror leaves
 * the RAM, where a RAM that does not converge under the cap goes next. */
static guint64
link_bandwidth (VmsMigration *migration, guint64 *wide)
{
  double link = vms_replicate_copy_rate (&migration->rep);
  /* The mirror sends the guest's writes themselves, not the bitmaps'
   * whole granules. */
  double writes = migration->write_bytes_rate >= 0
                      ? migration->write_bytes_rate
                      : migration->rep.guest_write_rate;
  double mirror
      = migration->mode == VMS_MIGRATE_FINAL_MIRROR ? MAX (writes, 0) : 0;
  guint64 bandwidth;
  g_autofree char *bandwidth_text = NULL;
  g_autofree char *link_text = NULL;

  *wide = 0;
  if (link <= 0)
    return 0;
  /* The mirror's writes cross too; RAM keeps at least a quarter. */
  bandwidth = MAX (link * VMS_MEMORY_TUNING_LINK_SHARE - mirror, link / 4);
  /* Where the quarter is the cap, there is no wider step. */
  *wide = link - mirror > bandwidth ? (guint64)(link - mirror) : 0;
  bandwidth_text = vms_format_size (bandwidth);
  link_text = vms_format_size ((guint64)link);
  vms_progress_event (migration->progress, "memory-bandwidth", NULL,
                      "memory: RAM capped at %s/s, below the %s/s the disks "
                      "crossed the link at",
                      bandwidth_text, link_text);
  return bandwidth;
}

/* tls-creds on both QEMUs: the credentials' id with --tls, "" without,
 * which also clears an earlier attempt's on a source that lived on; the
 * same for the name the source checks the certificate against. */
static gboolean
set_tls (VmsMigration *migration, JsonObject *source_parameters,
         JsonObject *dest_parameters, GError **error)
{
  const char *uri = vms_job_get_migration (migration->rep.job)->dest_uri;
  g_autofree char *id = NULL, *hostname = NULL;

  if (!vms_migration_memory_tls (migration, dest_of (migration), &id, error)
      || (id
          && !vms_migration_sink_tls_hostname (
              migration, g_str_has_prefix (uri, "unix:"), &hostname, error)))
    return FALSE;
  json_object_set_string_member (source_parameters, "tls-creds", id ? id : "");
  json_object_set_string_member (dest_parameters, "tls-creds", id ? id : "");
  json_object_set_string_member (source_parameters, "tls-hostname",
                                 hostname ? hostname : "");
  return TRUE;
}

static void
report_compression (VmsMigration *migration, int channels, double ratio,
                    guint64 bandwidth)
{
  const char *method = vms_memory_compress_name (migration->config.compress);
  JsonObject *fields = json_object_new ();
  g_autofree char *cap = vms_format_size (bandwidth);

  json_object_set_string_member (fields, "method", method);
  json_object_set_int_member (fields, "channels", channels);
  json_object_set_double_member (fields, "sampled-ratio", ratio);
  if (ratio > 0 && bandwidth)
    {
      /* What QEMU makes of the cap: it tells how soon the RAM crosses. */
      double sends = vms_estimate_multifd_rate ((double)bandwidth);
      g_autofree char *sent = vms_format_size ((guint64)sends);
      g_autofree char *quantum
          = sends > bandwidth * 1.05
                ? g_strdup_printf (" (QEMU sends whole packets of 128 pages, "
                                   "so %s/s)",
                                   sent)
                : g_strdup ("");

      json_object_set_int_member (fields, "qemu-rate", (gint64)sends);
      vms_progress_event (migration->progress, "memory-compress", fields,
                          "memory: compressed with %s over %d connections; "
                          "sampled pages compress to %.0f%%, so the RAM's cap "
                          "is %s/s before compression%s",
                          method, channels, ratio * 100, cap, quantum);
    }
  else
    vms_progress_event (migration->progress, "memory-compress", fields,
                        "memory: compressed with %s over %d connections%s",
                        method, channels,
                        bandwidth ? ""
                                  : "; the RAM's cap, if any, comes from "
                                    "QEMU's first round");
}

static gboolean
set_parameters (VmsMigration *migration, GError **error)
{
  const VmsMigrationConfig *config = &migration->config;
  g_autoptr (JsonObject) source_parameters = json_object_new ();
  g_autoptr (JsonObject) dest_parameters = json_object_new ();
  const char *uri = vms_job_get_migration (migration->rep.job)->dest_uri;
  guint64 bandwidth = config->bandwidth;
  guint64 wide = 0;
  /* Over a unix socket nothing queues in a network. */
  gboolean local = g_str_has_prefix (uri, "unix:");
  gboolean compressed = config->compress != VMS_MEMORY_COMPRESS_NONE;
  /* At least 1 %: a sample of zeroes-like pages says little of the rest. */
  double ratio = compressed && backend_of (migration)->zstd_ratio > 0
                     ? MAX (backend_of (migration)->zstd_ratio, 0.01)
                     : 0;
  int channels = vms_migration_multifd_channels (config);
  int limit_ms;

  if (!bandwidth && !local && (!compressed || ratio > 0))
    bandwidth = link_bandwidth (migration, &wide);
  /* QEMU 7.2 counts multifd's bytes before compression, in its rate and
   * in max-bandwidth: the link's share is worth 1 / ratio of them.
   * Without a ratio the cap comes from QEMU's first round, as when the
   * link's rate is not known. */
  if (compressed && bandwidth && !config->bandwidth)
    {
      bandwidth = (guint64)(bandwidth / ratio);
      wide = (guint64)(wide / ratio);
    }
  if (compressed)
    report_compression (migration, channels, ratio, bandwidth);
  migration->network_ms = local ? 0 : VMS_MEMORY_TUNING_QUEUE_MS;
  limit_ms = vms_migration_qemu_downtime_limit (migration);
  vms_migration_check_limit (
      migration, limit_ms,
      "QEMU's RAM tail needs its least, and the rest of the pause (QEMU's "
      "stop and the destination's start, the disks' last writes, what the "
      "network may hold) leaves it no room");
  if (config->hold_on_miss && migration->miss_predicted_ms > 0)
    {
      g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_FAILED,
                   "the downtime is predicted at %d ms, above the %d ms "
                   "objective whatever the memory does (the rest of the "
                   "pause leaves QEMU's RAM no room): "
                   "--on-downtime-miss=hold does not switch over",
                   migration->miss_predicted_ms, config->max_downtime_ms);
      return FALSE;
    }
  vms_memory_tuning_init (
      &backend_of (migration)->tuning, limit_ms, config->max_downtime_ms,
      config->bandwidth != 0 || local, !config->bandwidth && bandwidth != 0,
      wide, g_get_monotonic_time ());
  backend_of (migration)->group_held
      = config->group && !backend_of (migration)->group_released;
  json_object_set_int_member (
      source_parameters, "downtime-limit",
      backend_of (migration)->group_held ? VMS_GROUP_HOLD_LIMIT_MS : limit_ms);
  /* Always set: QEMU keeps an earlier attempt's limit, and its own
   * default (128 MiB/s) would throttle a fast link. */
  json_object_set_int_member (source_parameters, "max-bandwidth",
                              bandwidth ? bandwidth : UNLIMITED_BANDWIDTH);
  if (channels > 0)
    {
      const char *method = vms_memory_compress_name (config->compress);

      json_object_set_int_member (source_parameters, "multifd-channels",
                                  channels);
      json_object_set_int_member (dest_parameters, "multifd-channels",
                                  channels);
      /* Always: QEMU keeps an earlier attempt's method. */
      json_object_set_string_member (source_parameters, "multifd-compression",
                                     method);
      json_object_set_string_member (dest_parameters, "multifd-compression",
                                     method);
    }
  /* Always set: QEMU keeps an earlier attempt's threshold. */
  json_object_set_int_member (source_parameters, "throttle-trigger-threshold",
                              vms_migration_ram_throttle_threshold (config));
  return set_tls (migration, source_parameters, dest_parameters, error)
         && vms_qemu_migration_set_parameters (dest_of (migration),
                                               dest_parameters, error)
         && vms_qemu_migration_set_parameters (migration->rep.qmp,
                                               source_parameters, error);
}

/* migrate-incoming makes the destination send MIGRATION "setup" before
 * it answers: the event's stamp, read on the destination's clock, lies
 * between sending and answer on ours. */
static gboolean
start_incoming (VmsMigration *migration, const char *uri, GError **error)
{
  QmpBackend *backend = backend_of (migration);
  gint64 sent_us = g_get_real_time ();

  backend->setup_event_us = -1;
  if (!vms_qemu_migration_incoming (backend->dest, uri, error))
    return FALSE;
  vms_downtime_clock_command (&migration->downtime, backend->setup_event_us,
                              sent_us, g_get_real_time ());
  return TRUE;
}

/* The source's images this host can reach, written back every few ms
 * from now on: the dirty pages of the guest's writes are on disk before
 * QEMU's stop flushes them inside the downtime. */
static void
start_writeback (VmsMigration *migration)
{
  QmpBackend *backend = backend_of (migration);
  g_autoptr (GPtrArray) found = vms_disk_discover (migration->rep.qmp, NULL);
  VmsJob *job = migration->rep.job;

  g_clear_pointer (&backend->writeback, vms_writeback_free);
  backend->writeback = vms_writeback_new ();
  for (guint i = 0; found && i < job->disks->len; i++)
    {
      VmsJobDisk *disk = job->disks->pdata[i];
      VmsDisk *now = vms_disk_find (found, disk->name, NULL);

      if (now)
        vms_writeback_add (backend->writeback, now->filename);
    }
  vms_writeback_start_thread (backend->writeback, VMS_WRITEBACK_INTERVAL_MS);
}

static gboolean
qmp_start_memory (VmsMigration *migration, GError **error)
{
  const char *uri = vms_job_get_migration (migration->rep.job)->dest_uri;
  QmpBackend *backend = backend_of (migration);
  /* A destination that never accepted the last attempt listens still,
   * and refuses a second migrate-incoming. */
  gboolean listening = backend->listening;

  backend->listening = FALSE;
  backend->dest_failed = FALSE;
  if (!set_capabilities (migration, error) || !set_parameters (migration, error)
      || (!listening && !start_incoming (migration, uri, error))
      || !vms_qemu_migration_start (migration->rep.qmp, uri, error))
    return FALSE;
  migration->migration_started = TRUE;
  start_writeback (migration);
  return TRUE;
}

static void
report_memory_round (VmsMigration *migration, const VmsQemuMigrationInfo *info)
{
  JsonObject *fields = json_object_new ();
  g_autofree char *remaining = vms_format_size (info->ram_remaining);
  g_autofree char *rate
      = vms_format_size (info->dirty_pages_rate * info->page_size);

  migration->last_sync_count = info->dirty_sync_count;
  json_object_set_int_member (fields, "dirty-sync-count",
                              info->dirty_sync_count);
  json_object_set_int_member (fields, "remaining", info->ram_remaining);
  json_object_set_int_member (fields, "transferred", info->ram_transferred);
  json_object_set_int_member (fields, "dirty-pages-rate",
                              info->dirty_pages_rate);
  json_object_set_double_member (fields, "mbps", info->mbps);
  vms_progress_event (migration->progress, "memory-round", fields,
                      "memory round %" G_GUINT64_FORMAT ": %s still "
                      "dirty, guest dirties %s/s, %.0f Mbit/s",
                      info->dirty_sync_count, remaining, rate, info->mbps);
}

/* auto-converge slowed the guest further: the RAM needed backpressure. */
static void
report_ram_backpressure (VmsMigration *migration,
                         const VmsQemuMigrationInfo *info)
{
  JsonObject *fields = json_object_new ();
  g_autofree char *rate
      = vms_format_size (info->dirty_pages_rate * info->page_size);

  migration->ram_throttle_percent = info->cpu_throttle_percent;
  json_object_set_int_member (fields, "percent", info->cpu_throttle_percent);
  json_object_set_int_member (fields, "dirty-sync-count",
                              info->dirty_sync_count);
  vms_progress_event (
      migration->progress, "ram-backpressure", fields,
      "RAM: the guest's vCPUs slowed by %" G_GUINT64_FORMAT
      " %% (QEMU's auto-converge: the guest dirtied RAM "
      "faster than the link carried it, %s/s at round %" G_GUINT64_FORMAT ")",
      info->cpu_throttle_percent, rate, info->dirty_sync_count);
}

static void
take_memory_figures (VmsMigration *migration, const VmsQemuMigrationInfo *info)
{
  migration->ram_bytes = info->ram_transferred;
  if (info->downtime_ms >= 0)
    migration->qemu_downtime_ms = info->downtime_ms;
  if (info->ram_total > 0)
    vms_progress_update (migration->progress, "RAM", "memory",
                         MIN (info->ram_transferred, info->ram_total),
                         info->ram_total, info->ram_transferred);
  if (info->dirty_sync_count > migration->last_sync_count)
    report_memory_round (migration, info);
  if (info->cpu_throttle_percent > migration->ram_throttle_percent)
    report_ram_backpressure (migration, info);
}

static gboolean
set_source_parameter (VmsMigration *migration, const char *name, gint64 value,
                      GError **error)
{
  g_autoptr (JsonObject) parameters = json_object_new ();

  json_object_set_int_member (parameters, name, value);
  return vms_qemu_migration_set_parameters (migration->rep.qmp, parameters,
                                            error);
}

/* The RAM a little below the link's rate, once its first round measured
 * it: nothing waits in queues at the switchover. */
static gboolean
cap_bandwidth (VmsMigration *migration, const VmsQemuMigrationInfo *info,
               GError **error)
{
  g_autofree char *rate = NULL;
  guint64 bandwidth;

  if (!vms_memory_tuning_bandwidth (&backend_of (migration)->tuning, info,
                                    g_get_monotonic_time (), &bandwidth))
    return TRUE;
  if (!set_source_parameter (migration, "max-bandwidth", bandwidth, error))
    return FALSE;
  rate = vms_format_size (bandwidth);
  vms_progress_event (migration->progress, "memory-bandwidth", NULL,
                      "memory: RAM capped at %s/s, a little below the rate "
                      "its first round reached",
                      rate);
  return TRUE;
}

static void
warn_not_converging (VmsMigration *migration, const VmsQemuMigrationInfo *info,
                     const char *remedy)
{
  g_autofree char *left = vms_format_size (info->ram_remaining);

  vms_progress_event (migration->progress, "warning", NULL,
                      "memory is not converging (QEMU expects "
                      "%" G_GINT64_FORMAT " ms for the %s left): %s",
                      info->expected_downtime_ms, left, remedy);
}

/* --on-downtime-miss=hold: QEMU keeps a limit within the objective, so
 * that it switches over only once its RAM fits, within --memory-timeout;
 * the miss a raise would bring is told once, held. */
static void
hold_on_miss (VmsMigration *migration, const VmsQemuMigrationInfo *info,
              int limit_ms)
{
  g_autofree char *remedy = g_strdup_printf (
      "the guest dirties RAM as fast as it crosses; the switchover is held "
      "within the %d ms objective (--on-downtime-miss=hold) until it fits, "
      "at most %d s (--memory-timeout)",
      migration->config.max_downtime_ms, migration->config.memory_timeout_s);

  vms_memory_tuning_stop_raising (&backend_of (migration)->tuning, limit_ms);
  vms_migration_check_limit (
      migration, MAX (info->expected_downtime_ms, limit_ms),
      "the guest dirties RAM faster than it crosses; the switchover is held");
  warn_not_converging (migration, info, remedy);
}

/* A guest that dirties RAM faster than it crosses: first the RAM gets
 * the link's rest, then no cap, then QEMU a higher limit, rather than
 * rounds without end. */
static gboolean
tune_memory (VmsMigration *migration, const VmsQemuMigrationInfo *info,
             GError **error)
{
  g_autofree char *remedy = NULL;
  guint64 bandwidth = 0;
  int limit_ms = 0;
  int before_ms = backend_of (migration)->tuning.limit_ms;
  VmsMemoryTuningStep step
      = vms_memory_tuning_next (&backend_of (migration)->tuning, info,
                                g_get_monotonic_time (), &bandwidth, &limit_ms);

  /* Held, QEMU keeps its hold: a RAM cap widened or lifted now would
   * make it converge at once, alone (its burst measures as the rate, and
   * 1 ms of that is pages).  The member is as ready as it gets under the
   * cap: its RAM goes uncapped at the release (as every member's), with
   * the limit the tuning reached by then. */
  if (step != VMS_MEMORY_TUNING_KEEP && backend_of (migration)->group_held)
    {
      if (!backend_of (migration)->group_wants_link)
        warn_not_converging (migration, info,
                             "held for its group; the RAM goes uncapped at "
                             "the release");
      backend_of (migration)->group_wants_link = TRUE;
      return TRUE;
    }
  switch (step)
    {
    case VMS_MEMORY_TUNING_WIDEN:
      {
        g_autofree char *rate = vms_format_size (bandwidth);

        if (!set_source_parameter (migration, "max-bandwidth", bandwidth,
                                   error))
          return FALSE;
        remedy = g_strdup_printf ("the RAM gets all the link the disks leave "
                                  "it, %s/s",
                                  rate);
        break;
      }
    case VMS_MEMORY_TUNING_UNCAP:
      if (!set_source_parameter (migration, "max-bandwidth",
                                 UNLIMITED_BANDWIDTH, error))
        return FALSE;
      remedy = g_strdup ("the RAM gets no cap, and what it queues in the "
                         "network may cross inside the downtime");
      break;
    case VMS_MEMORY_TUNING_RAISE:
      if (migration->config.hold_on_miss)
        {
          hold_on_miss (migration, info, before_ms);
          return TRUE;
        }
      /* A held group member keeps QEMU's hold: the raised limit is what
       * it is measured against, and what QEMU gets at the release. */
      if (!backend_of (migration)->group_held
          && !set_source_parameter (migration, "downtime-limit", limit_ms,
                                    error))
        return FALSE;
      vms_migration_check_limit (migration, limit_ms,
                                 "the guest dirties RAM faster than it "
                                 "crosses; QEMU's limit was raised");
      remedy = g_strdup_printf (
          "the guest dirties RAM as fast as it crosses; QEMU's downtime "
          "limit raised to %d ms, the %d ms objective may be missed "
          "(--auto-converge slows the guest instead, --memory-timeout gives "
          "up)",
          limit_ms, migration->config.max_downtime_ms);
      break;
    default:
      return TRUE;
    }
  warn_not_converging (migration, info, remedy);
  return TRUE;
}

/* A held member's QEMU would switch over under its own limit: the
 * first pass is over and what is left crosses within it. */
static gboolean
could_switch_over (VmsMigration *migration, const VmsQemuMigrationInfo *info)
{
  return backend_of (migration)->group_wants_link
         || (info->status == VMS_QEMU_MIGRATION_ACTIVE
             && info->dirty_sync_count >= 2 && info->expected_downtime_ms >= 0
             && info->expected_downtime_ms
                    <= backend_of (migration)->tuning.limit_ms);
}

/* QEMU gets its own limit back: it switches over as soon as it can. */
static gboolean
release_from_group (VmsMigration *migration, GError **error)
{
  QmpBackend *backend = backend_of (migration);

  backend->group_held = FALSE;
  backend->group_released = TRUE;
  vms_memory_tuning_restart (&backend->tuning, g_get_monotonic_time ());
  /* Every member's RAM uncapped (unless --bandwidth said otherwise): the
   * members converge within a round or two of each other, the first
   * paused waiting for the last; a cap's tuning steps would take 5 s
   * each.  What the link's queues then hold crosses in the downtime. */
  if (!migration->config.bandwidth)
    {
      vms_memory_tuning_uncap (&backend->tuning);
      if (!set_source_parameter (migration, "max-bandwidth",
                                 UNLIMITED_BANDWIDTH, error))
        return FALSE;
    }
  vms_migration_report_group (
      migration, "group-released",
      migration->config.bandwidth
          ? "released; QEMU may switch over"
          : "released; QEMU may switch over, its RAM uncapped");
  return set_source_parameter (migration, "downtime-limit",
                               backend->tuning.limit_ms, error);
}

/* The group's other members hold this one before its switchover: once
 * it could switch over it waits for them (*waited: instead of waiting
 * for QEMU's event), and when all could, QEMU gets its own limit back. */
static gboolean
hold_for_group (VmsMigration *migration, const VmsQemuMigrationInfo *info,
                gboolean *waited, GError **error)
{
  QmpBackend *backend = backend_of (migration);
  gboolean released = FALSE;

  *waited = FALSE;
  if (!backend->group_held)
    return TRUE;
  /* Not ready yet, but another member paused: no point holding. */
  if (!backend->group_ready && !could_switch_over (migration, info))
    return !vms_group_released (migration->config.group)
           || release_from_group (migration, error);
  if (!backend->group_ready)
    vms_migration_report_group (
        migration, "group-ready",
        "could switch over; waiting for the other members");
  backend->group_ready = TRUE;
  *waited = TRUE;
  if (!vms_group_ready (migration->config.group, migration->rep.job->id,
                        POLL_INTERVAL_MS, &released, error))
    return FALSE;
  return !released || release_from_group (migration, error);
}

/* Reached wanted (or beyond it), FALSE with error when it failed. */
static gboolean
migration_reached (const VmsQemuMigrationInfo *info,
                   VmsQemuMigrationStatus wanted, gboolean *reached,
                   GError **error)
{
  *reached = info->status == wanted
             || (info->status == VMS_QEMU_MIGRATION_COMPLETED
                 && (wanted == VMS_QEMU_MIGRATION_PRE_SWITCHOVER
                     || wanted == VMS_QEMU_MIGRATION_DEVICE));
  if (info->status == VMS_QEMU_MIGRATION_FAILED
      || info->status == VMS_QEMU_MIGRATION_CANCELLED
      || info->status == VMS_QEMU_MIGRATION_CANCELLING)
    {
      g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_FAILED,
                   "QEMU's memory migration %s%s%s", info->status_name,
                   info->error_desc ? ": " : "",
                   info->error_desc ? info->error_desc : "");
      return FALSE;
    }
  return TRUE;
}

/* The destination's monitor closed: if the source's migration fails
 * too within a moment, its error says why (a lost connection, which
 * ended the destination), and replaces *error; else the destination went
 * away by itself (killed, crashed). */
static void
source_failure_instead (VmsMigration *migration, GError **error)
{
  gint64 deadline = g_get_monotonic_time () + SETTLE_TIMEOUT_MS * 1000;

  while (g_get_monotonic_time () < deadline)
    {
      g_auto (VmsQemuMigrationInfo) info = { 0 };
      gboolean reached = FALSE;

      if (!vms_qemu_migration_query (migration->rep.qmp, &info, NULL))
        break;
      if (!migration_reached (&info, VMS_QEMU_MIGRATION_COMPLETED, &reached,
                              NULL))
        {
          g_clear_error (error);
          migration_reached (&info, VMS_QEMU_MIGRATION_COMPLETED, &reached,
                             error);
          g_prefix_error (error, "the destination QEMU went away, and ");
          return;
        }
      g_usleep (POLL_INTERVAL_MS * 1000);
    }
  g_prefix_error (error, "destination QEMU: ");
}

/* Wait for the source's migration to reach the status wanted; a failure,
 * a cancel, a broken mirror or a stop request end the wait. */
static gboolean
wait_migration (VmsMigration *migration, VmsQemuMigrationStatus wanted,
                gint64 timeout_s, GError **error)
{
  gint64 deadline = timeout_s > 0
                        ? g_get_monotonic_time () + timeout_s * G_USEC_PER_SEC
                        : G_MAXINT64;

  for (;;)
    {
      g_auto (VmsQemuMigrationInfo) info = { 0 };
      gboolean reached = FALSE;
      gboolean held = FALSE;

      if (vms_migration_stop_requested (migration, error))
        return FALSE;
      if (!vms_qmp_poll (dest_of (migration), error))
        {
          source_failure_instead (migration, error);
          return FALSE;
        }
      if (!vms_qemu_migration_query (migration->rep.qmp, &info, error))
        return FALSE;
      take_memory_figures (migration, &info);
      if (!migration_reached (&info, wanted, &reached, error))
        return FALSE;
      if (!reached && wanted == VMS_QEMU_MIGRATION_PRE_SWITCHOVER
          && (!cap_bandwidth (migration, &info, error)
              || !hold_for_group (migration, &info, &held, error)
              || !tune_memory (migration, &info, error)))
        return FALSE;
      if (reached)
        return TRUE;
      if (!migration->disks->check_mirror (migration, error))
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
       * latest, for progress.  A held member waited for its group. */
      if (!held)
        vms_qmp_wait_event (migration->rep.qmp, "MIGRATION", POLL_INTERVAL_MS,
                            NULL, NULL, NULL, NULL);
    }
}

static gboolean
qmp_wait_memory (VmsMigration *migration, GError **error)
{
  return wait_migration (migration, VMS_QEMU_MIGRATION_PRE_SWITCHOVER,
                         migration->config.memory_timeout_s, error);
}

static gboolean
qmp_continue_switchover (VmsMigration *migration, GError **error)
{
  return vms_qemu_migration_continue (migration->rep.qmp, error);
}

/* ---- the destination ---- */

/* The RESUME event (or the MIGRATION completed one, with --suspend) may
 * trail the status by a moment. */
static void
wait_destination_event (VmsMigration *migration)
{
  gint64 *wanted = migration->config.suspend
                       ? &migration->downtime.dest_completed_us
                       : &migration->downtime.resume_us;

  for (int i = 0; i < 20 && *wanted < 0; i++)
    vms_qmp_wait_event (dest_of (migration),
                        migration->config.suspend ? "MIGRATION" : "RESUME", 50,
                        NULL, NULL, NULL, NULL);
}

static gboolean
qmp_wait_destination (VmsMigration *migration, GError **error)
{
  static const char *const settled[] = { "running", "paused", NULL };
  gint64 timeout_s = migration->config.switchover_timeout_s;
  gint64 deadline = g_get_monotonic_time () + timeout_s * G_USEC_PER_SEC;
  g_auto (VmsQemuMigrationInfo) info = { 0 };
  g_autofree char *state = NULL;
  guint left_ms;

  if (!wait_migration (migration, VMS_QEMU_MIGRATION_COMPLETED, timeout_s,
                       error))
    return FALSE;
  g_clear_pointer (&backend_of (migration)->writeback, vms_writeback_free);
  left_ms = MAX (deadline - g_get_monotonic_time (), 1000) / 1000;
  state = vms_vm_wait_run_state (dest_of (migration), settled, left_ms, error);
  if (!state)
    {
      g_prefix_error (error, "destination QEMU, after the migration "
                             "completed: ");
      return FALSE;
    }
  /* With --suspend the destination holding the VM paused is the end;
   * without, one started with -S waits for cont. */
  if (g_str_equal (state, "paused") && !migration->config.suspend
      && migration->source_was_running
      && !vms_vm_resume (dest_of (migration), left_ms, error))
    {
      g_prefix_error (error, "destination QEMU: ");
      return FALSE;
    }
  wait_destination_event (migration);
  if (migration->config.tls)
    vms_migration_memory_tls_forget (migration, dest_of (migration),
                                     "destination");
  if (vms_qemu_migration_query (migration->rep.qmp, &info, NULL))
    {
      migration->ram_bytes = info.ram_transferred;
      migration->qemu_downtime_ms = info.downtime_ms;
    }
  return TRUE;
}

static gboolean
qmp_destination_runs (VmsMigration *migration)
{
  VmsQmp *dest = dest_of (migration);
  g_autofree char *state = NULL;

  if (!dest || !vms_qmp_is_connected (dest))
    return FALSE;
  state = vms_qemu_migration_run_state (dest, NULL);
  return g_strcmp0 (state, "running") == 0;
}

/* Stopped around the switchover: if the destination got the VM and runs
 * it, the migration happened and only the commit is left. */
static gboolean
qmp_moved_already (VmsMigration *migration)
{
  QmpBackend *backend = backend_of (migration);
  g_autofree char *source_state = NULL;
  gboolean moved;

  if (!migration->rep.qmp)
    return FALSE;
  source_state = vms_qemu_migration_run_state (migration->rep.qmp, NULL);
  moved = g_strcmp0 (source_state, "postmigrate") == 0
          && qmp_connect_destination (migration, NULL)
          && qmp_destination_runs (migration);
  g_clear_pointer (&backend->dest, vms_qmp_free);
  return moved;
}

/* ---- rollback ---- */

static gboolean
qmp_source_active (VmsMigration *migration)
{
  return migration->rep.qmp && vms_qmp_is_connected (migration->rep.qmp);
}

static gboolean
qmp_check_source (VmsMigration *migration, GError **error)
{
  if (qmp_source_active (migration))
    return TRUE;
  g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_DISCONNECTED,
               "the source QEMU's monitor is gone: check the source VM");
  return FALSE;
}

/* QEMU's part on the source is over: whether the destination runs
 * decides who owns the VM now.  Never run both. */
static gboolean
settle_completed (VmsMigration *migration, GError **error)
{
  VmsQmp *dest = dest_of (migration);
  const char *job_id = migration->rep.job ? migration->rep.job->id : "JOB";

  if (qmp_destination_runs (migration))
    {
      g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_MOVED,
                   "the destination runs the VM: not rolling back; "
                   "'vmshift migrate --resume %s' marks the replicas complete",
                   job_id);
      return FALSE;
    }
  /* It holds the VM's state but will not run it: it ends for good
   * before the source goes on. */
  if (dest && vms_qmp_is_connected (dest))
    {
      if (vms_vm_quit (dest, CANCEL_TIMEOUT_MS, error))
        return TRUE;
      g_prefix_error (error, "the memory migration completed and the "
                             "destination, which does not run the VM, did "
                             "not quit; the source stays paused: ");
      return FALSE;
    }
  g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_UNSAFE,
               "the memory migration completed but the destination cannot be "
               "reached, so it may run the VM: the source stays paused.  "
               "Check the destination; if it does not run the VM, resume the "
               "source with 'vmshift qmp %s cont'",
               migration->rep.job ? migration->rep.job->source : "SOURCE");
  return FALSE;
}

static gboolean
qmp_cancel (VmsMigration *migration, gboolean check_destination, GError **error)
{
  g_auto (VmsQemuMigrationInfo) info = { 0 };

  if (!qmp_check_source (migration, error))
    return FALSE;
  if (check_destination
      && vms_qemu_migration_query (migration->rep.qmp, &info, NULL)
      && info.status == VMS_QEMU_MIGRATION_COMPLETED)
    return settle_completed (migration, error);
  if (migration->migration_started)
    vms_qemu_migration_cancel (migration->rep.qmp, CANCEL_TIMEOUT_MS, NULL,
                               NULL);
  vms_migration_memory_tls_forget (migration, migration->rep.qmp, "source");
  return TRUE;
}

static gboolean
qmp_resume_source (VmsMigration *migration, GError **error)
{
  g_autofree char *state = NULL;
  g_autoptr (GError) cont_error = NULL;

  if (!migration->source_was_running)
    return TRUE;
  state = vms_qemu_migration_run_state (migration->rep.qmp, NULL);
  if (!state || g_str_equal (state, "running"))
    return TRUE;
  if (vms_vm_resume (migration->rep.qmp, CANCEL_TIMEOUT_MS, &cont_error))
    return TRUE;
  g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_UNSAFE,
               "the source VM is '%s' and did not resume: %s", state,
               cont_error->message);
  return FALSE;
}

/* ---- a new memory attempt ---- */

/* Wait for the destination to settle after a broken stream: FALSE once
 * its monitor is gone; else its incoming migration's status, once it no
 * longer holds the stream (or when it keeps holding it). */
static gboolean
settle_destination (VmsMigration *migration, VmsQemuMigrationStatus *status)
{
  VmsQmp *dest = dest_of (migration);
  gint64 deadline = g_get_monotonic_time () + SETTLE_TIMEOUT_MS * 1000;

  for (;;)
    {
      g_auto (VmsQemuMigrationInfo) info = { 0 };

      if (!dest || !vms_qmp_poll (dest, NULL)
          || !vms_qemu_migration_query (dest, &info, NULL))
        return FALSE;
      *status = info.status;
      if (info.status != VMS_QEMU_MIGRATION_ACTIVE
          || g_get_monotonic_time () > deadline)
        return TRUE;
      vms_qmp_wait_event (dest, "MIGRATION", POLL_INTERVAL_MS, NULL, NULL, NULL,
                          NULL);
    }
}

static void
set_destination_gone (VmsMigration *migration, const GError *cause,
                      GError **error)
{
  const char *job = migration->rep.job->id;

  if (backend_of (migration)->dest_failed)
    g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_FAILED,
                 "%s; the destination QEMU exited: QEMU 7.2 ends a failed "
                 "incoming migration, so vmshift cannot retry the memory "
                 "migration with it.  The source runs on and the replicas "
                 "are kept: start the destination QEMU again (-incoming "
                 "defer, on the replicas) and run 'vmshift migrate --resume "
                 "%s'",
                 cause->message, job);
  else
    g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_FAILED,
                 "%s; the destination QEMU's monitor closed without its "
                 "incoming migration failing (was it killed?).  The source "
                 "runs on and the replicas are kept: start the destination "
                 "QEMU again and run 'vmshift migrate --resume %s'",
                 cause->message, job);
}

/* A destination started again by --dest-restart gets this long to open
 * its monitor. */
#define RESTART_QMP_TIMEOUT_MS 30000
#define RESTART_QMP_POLL_MS 200

static gboolean
go_on_restarting (gpointer user_data, GError **error)
{
  return !vms_migration_stop_requested (user_data, error);
}

/* Its monitor, once the restarted QEMU opened it, and a QEMU waiting for
 * a migration behind it. */
static gboolean
reconnect_destination (VmsMigration *migration, GError **error)
{
  gint64 deadline
      = g_get_monotonic_time () + RESTART_QMP_TIMEOUT_MS * (gint64)1000;
  g_autofree char *state = NULL;

  for (;;)
    {
      g_autoptr (GError) connect_error = NULL;

      if (qmp_connect_destination (migration, &connect_error))
        break;
      if (g_get_monotonic_time () >= deadline)
        {
          g_propagate_prefixed_error (
              error, g_steal_pointer (&connect_error),
              "the destination started again by --dest-restart did not "
              "open its monitor within %d s: ",
              RESTART_QMP_TIMEOUT_MS / 1000);
          return FALSE;
        }
      if (!go_on_restarting (migration, error))
        return FALSE;
      g_usleep (RESTART_QMP_POLL_MS * 1000);
    }
  state = vms_qemu_migration_run_state (dest_of (migration), error);
  if (state && !g_str_equal (state, "inmigrate"))
    g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_PRECONDITION,
                 "the destination started again by --dest-restart is '%s', "
                 "not waiting for a migration (-incoming defer)",
                 state);
  return state && g_str_equal (state, "inmigrate");
}

/* --dest-restart: QEMU 7.2's destination exited on the failed stream;
 * the user's command starts it again, and the next attempt begins with
 * migrate-incoming on the new one. */
static gboolean
restart_destination (VmsMigration *migration, GError **error)
{
  QmpBackend *backend = backend_of (migration);
  char **argv = migration->config.dest_restart;
  JsonObject *fields = json_object_new ();

  json_object_set_string_member (fields, "command", argv[0]);
  vms_progress_event (migration->progress, "destination-restart", fields,
                      "the destination QEMU exited (QEMU 7.2 ends a failed "
                      "incoming migration): starting it again with %s",
                      argv[0]);
  g_clear_pointer (&backend->dest, vms_qmp_free);
  backend->dest_failed = FALSE;
  backend->listening = FALSE;
  return vms_dest_restart_run (argv, go_on_restarting, migration, error)
         && reconnect_destination (migration, error);
}

/* The memory stream broke.  QEMU 7.2's destination exits on that, and
 * vmshift, which did not start it, cannot start it again: then the
 * migration rolls back.  A destination that lives on either still
 * listens (it never accepted the stream: connect again) or failed its
 * incoming migration (a QEMU that does not exit: migrate-incoming
 * again). */
static gboolean
qmp_prepare_memory_retry (VmsMigration *migration, const GError *cause,
                          GError **error)
{
  QmpBackend *backend = backend_of (migration);
  VmsQemuMigrationStatus status = VMS_QEMU_MIGRATION_NONE;

  if (!qmp_check_source (migration, error))
    return FALSE;
  if (!settle_destination (migration, &status))
    {
      if (migration->config.dest_restart && backend->dest_failed)
        {
          if (restart_destination (migration, error))
            return qmp_resume_source (migration, error);
          g_prefix_error (error,
                          "%s; the destination QEMU exited and starting it "
                          "again failed: ",
                          cause->message);
          return FALSE;
        }
      set_destination_gone (migration, cause, error);
      return FALSE;
    }
  if (status != VMS_QEMU_MIGRATION_SETUP && status != VMS_QEMU_MIGRATION_FAILED
      && status != VMS_QEMU_MIGRATION_CANCELLED)
    {
      g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_FAILED,
                   "%s; the destination QEMU's incoming migration is still "
                   "'%s' after %d s, so no new attempt can start: start the "
                   "destination QEMU again and run 'vmshift migrate --resume "
                   "%s'",
                   cause->message, vms_qemu_migration_status_name (status),
                   SETTLE_TIMEOUT_MS / 1000, migration->rep.job->id);
      return FALSE;
    }
  backend->listening = status == VMS_QEMU_MIGRATION_SETUP;
  /* QEMU resumes a source whose migration failed; a failure at its very
   * end may leave it paused. */
  return qmp_resume_source (migration, error);
}

const VmsMigrationBackend vms_migration_qmp_backend = {
  .name = "qmp",
  .owns_destination = TRUE,
  .joins_groups = TRUE,
  .open = qmp_open,
  .connect_destination = qmp_connect_destination,
  .preflight = qmp_preflight,
  .check_job = qmp_check_job,
  .start_memory = qmp_start_memory,
  .wait_memory = qmp_wait_memory,
  .prepare_memory_retry = qmp_prepare_memory_retry,
  .continue_switchover = qmp_continue_switchover,
  .wait_destination = qmp_wait_destination,
  .destination_runs = qmp_destination_runs,
  .moved_already = qmp_moved_already,
  .source_active = qmp_source_active,
  .check_source = qmp_check_source,
  .open_for_rollback = qmp_open_for_rollback,
  .cancel = qmp_cancel,
  .resume_source = qmp_resume_source,
  .free = qmp_free,
};
