/* vmshift engine: the migration's state machine.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Each state has one step; the source stays authoritative until COMMIT,
 * and any failure before it rolls back (vms-migration-rollback.c).  What
 * a step does to QEMU, libvirt or the sink is behind the tables of
 * vms-migration-backend.h.
 */
#include "vms-migration-backend.h"
#include "vms-backpressure.h"
#include "vms-estimate-file.h"
#include "vms-granularity.h"
#include "vms-memory-uri.h"

#include <unistd.h>

/* The macro makes a string of the quark name: keep it whole. */
/* clang-format off */
G_DEFINE_QUARK (vms-migration-error-quark, vms_migration_error)
/* clang-format on */

void
vms_migration_config_init (VmsMigrationConfig *config)
{
  memset (config, 0, sizeof *config);
  vms_replicate_config_init (&config->copy);
  config->max_downtime_ms = VMS_MIGRATION_DEFAULT_MAX_DOWNTIME_MS;
  config->mode = VMS_MIGRATE_FINAL_AUTO;
  config->switchover_timeout_s = VMS_MIGRATION_DEFAULT_SWITCHOVER_TIMEOUT_S;
}

int
vms_migration_multifd_channels (const VmsMigrationConfig *config)
{
  if (config->multifd_channels > 0)
    return config->multifd_channels;
  return config->compress != VMS_MEMORY_COMPRESS_NONE
             ? VMS_MIGRATION_COMPRESS_CHANNELS
             : 0;
}

gboolean
vms_migration_ram_backpressure (const VmsMigrationConfig *config)
{
  return config->auto_converge
         || config->copy.write_backpressure == VMS_REPLICATE_BACKPRESSURE_AUTO;
}

int
vms_migration_ram_throttle_threshold (const VmsMigrationConfig *config)
{
  return config->auto_converge ? VMS_MIGRATION_QEMU_THROTTLE_THRESHOLD
                               : VMS_MIGRATION_AUTO_THROTTLE_THRESHOLD;
}

const char *
vms_memory_compress_name (VmsMemoryCompress compress)
{
  return compress == VMS_MEMORY_COMPRESS_ZSTD ? "zstd" : "none";
}

gboolean
vms_memory_compress_parse (const char *word, VmsMemoryCompress *compress,
                           GError **error)
{
  if (g_strcmp0 (word, "none") == 0)
    *compress = VMS_MEMORY_COMPRESS_NONE;
  else if (g_strcmp0 (word, "zstd") == 0)
    *compress = VMS_MEMORY_COMPRESS_ZSTD;
  else
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--compress %s: the methods are none and zstd", word);
      return FALSE;
    }
  return TRUE;
}

gboolean
vms_migration_check_clear_text (const char *dest_uri, gboolean tls,
                                gboolean insecure, GError **error)
{
  if (!dest_uri || tls || insecure || vms_memory_uri_is_loopback (dest_uri))
    return TRUE;
  g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_INVALID,
               "--dest-uri %s is not on loopback: anyone on the network "
               "could read the VM's memory; use --tls (QEMU then uses the "
               "sink URI's keys), or --insecure to send it in clear text "
               "anyway",
               dest_uri);
  return FALSE;
}

static void
libvirt_config_clear (VmsMigrationLibvirtConfig *config)
{
  g_clear_pointer (&config->connect_uri, g_free);
  g_clear_pointer (&config->domain, g_free);
  g_clear_pointer (&config->dest_uri, g_free);
  g_clear_pointer (&config->migrate_uri, g_free);
  g_clear_pointer (&config->dname, g_free);
  g_clear_pointer (&config->replica_dir, g_free);
}

void
vms_migration_config_clear (VmsMigrationConfig *config)
{
  vms_replicate_config_clear (&config->copy);
  g_clear_pointer (&config->source, g_free);
  g_clear_pointer (&config->dest_qmp, g_free);
  g_clear_pointer (&config->dest_uri, g_free);
  g_clear_pointer (&config->dest_restart, g_strfreev);
  g_clear_pointer (&config->estimate, g_free);
  g_clear_pointer (&config->group, vms_group_unref);
  libvirt_config_clear (&config->libvirt);
}

static void
forward_event (const char *event, JsonObject *fields, const char *text,
               gpointer user_data)
{
  VmsMigration *migration = user_data;

  if (migration->func)
    migration->func (event, fields, text, migration->user_data);
}

VmsMigration *
vms_migration_new_full (VmsMigrationConfig *config,
                        const VmsMigrationBackend *backend,
                        const VmsMigrationDisks *disks, gpointer disks_data,
                        VmsMigrationEventFunc func, gpointer user_data)
{
  VmsMigration *migration = g_new0 (VmsMigration, 1);

  migration->config = *config;
  memset (config, 0, sizeof *config);
  migration->backend = backend;
  migration->disks = disks;
  migration->disks_data = disks_data;
  migration->func = func;
  migration->user_data = user_data;
  migration->progress = vms_progress_new_callback (forward_event, migration);
  migration->mode = migration->config.mode;
  if (migration->config.hold_on_miss && !migration->config.memory_timeout_s)
    migration->config.memory_timeout_s = VMS_MIGRATION_HOLD_TIMEOUT_S;
  vms_downtime_init (&migration->downtime, migration->config.max_downtime_ms);
  migration->written_bytes = -1;
  migration->write_bytes_rate = -1;
  migration->qemu_downtime_ms = -1;
  vms_replicate_init (&migration->rep, &migration->config.copy, NULL,
                      migration->progress);
  migration->rep.more_rounds = vms_migration_more_rounds;
  migration->rep.more_rounds_data = migration;
  return migration;
}

VmsMigration *
vms_migration_new (VmsMigrationConfig *config, VmsMigrationEventFunc func,
                   gpointer user_data)
{
  /* A resumed job may turn out to be a libvirt one: vms_migration_run
   * chooses again once it has read the job. */
  return vms_migration_new_full (config, &vms_migration_qmp_backend,
                                 &vms_migration_replicate_disks, NULL, func,
                                 user_data);
}

void
vms_migration_free (VmsMigration *migration)
{
  if (!migration)
    return;
  if (migration->backend && migration->backend->free)
    migration->backend->free (migration);
  vms_replicate_clear (&migration->rep);
  g_clear_pointer (&migration->saved_job, vms_job_free);
  vms_progress_free (migration->progress);
  vms_migration_config_clear (&migration->config);
  g_clear_error (&migration->rollback_error);
  g_clear_error (&migration->save_error);
  g_free (migration->source_name);
  g_free (migration->tls_object);
  g_free (migration->final_sync_reason);
  vms_sink_handover_free (migration->handover);
  vms_prediction_clear (&migration->prediction);
  g_free (migration);
}

VmsMigrationOutcome
vms_migration_get_outcome (VmsMigration *migration)
{
  return migration->outcome;
}

const GError *
vms_migration_get_rollback_error (VmsMigration *migration)
{
  return migration->rollback_error;
}

const GError *
vms_migration_get_save_error (VmsMigration *migration)
{
  return migration->save_error;
}

VmsJob *
vms_migration_get_job (VmsMigration *migration)
{
  return migration->rep.job;
}

VmsMigrateState
vms_migration_get_state (VmsMigration *migration)
{
  return migration->state;
}

gboolean
vms_migration_restart_destination (VmsMigration *migration)
{
  return migration->migration_started && migration->backend->owns_destination;
}

int
vms_migration_qemu_downtime_limit (VmsMigration *migration)
{
  return vms_downtime_qemu_limit (migration->config.max_downtime_ms,
                                  VMS_DOWNTIME_QEMU_OVERHEAD_MS
                                      + migration->final_steps_ms
                                      + migration->network_ms);
}

gboolean
vms_migration_stop_requested (VmsMigration *migration, GError **error)
{
  if (!g_cancellable_is_cancelled (migration->cancellable))
    return FALSE;
  /* Stopped because another member failed: that is what to read. */
  if (!migration->config.group
      || !vms_group_failed (migration->config.group, error))
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED, "stopped on request");
  return TRUE;
}

gboolean
vms_migration_move_to (VmsMigration *migration, VmsMigrateState to,
                       GError **error)
{
  VmsJob *job = migration->rep.job;
  JsonObject *fields;

  g_return_val_if_fail (
      vms_migrate_state_can_move (migration->state, to, migration->mode),
      FALSE);
  migration->state = to;
  if (!job)
    return TRUE;
  g_free (vms_job_get_migration (job)->state);
  job->migration->state = g_strdup (vms_migrate_state_name (to));
  fields = json_object_new ();
  json_object_set_string_member (fields, "state", vms_migrate_state_name (to));
  vms_progress_event (migration->progress, "state", fields,
                      "migration state: %s", vms_migrate_state_name (to));
  /* The source is paused from here: no fsync in the downtime for a state
   * that a resume, a rollback or 'vmshift abort' treats as the memory
   * phase's anyway (the next state is saved). */
  if (to == VMS_MIGRATE_SWITCHOVER)
    return TRUE;
  return vms_job_save (job, error);
}

/* ---- the steps ---- */

/* Whether the job's disks have the bits the estimate observed them with,
 * a warning for each that does not: its rounds' bytes are not the ones
 * predicted (a 4 KiB writer dirties 16 times as much with 64 KiB bits). */
static gboolean
granularities_match (VmsMigration *migration)
{
  VmsJob *job = migration->rep.job;
  GHashTable *estimated = migration->prediction.granularities;
  gboolean match = TRUE;

  for (guint i = 0; i < job->disks->len; i++)
    {
      VmsJobDisk *disk = job->disks->pdata[i];
      gpointer value;
      g_autofree char *ours = NULL, *theirs = NULL;

      if (!estimated
          || !g_hash_table_lookup_extended (estimated, disk->name, NULL, &value)
          || GPOINTER_TO_UINT (value) == disk->granularity)
        continue;
      match = FALSE;
      ours = vms_granularity_format (disk->granularity);
      theirs = vms_granularity_format (GPOINTER_TO_UINT (value));
      vms_progress_event (migration->progress, "warning", NULL,
                          "%s: estimate %s observed bitmaps of %s, this job "
                          "has %s: its rounds' bytes are not the predicted "
                          "ones (--granularity %s would match)",
                          disk->name, migration->config.estimate, theirs, ours,
                          theirs);
    }
  return match;
}

/* --compress zstd where the estimate recommends it and nothing else was
 * asked.  libvirt cannot (vms-migration-libvirt.c): there it stays a
 * recommendation. */
static void
apply_compression (VmsMigration *migration)
{
  VmsMigrationConfig *config = &migration->config;

  if (config->compress_set || !migration->prediction.compress_zstd)
    return;
  if (config->libvirt.connect_uri)
    {
      vms_progress_event (migration->progress, "warning", NULL,
                          "estimate %s recommends --compress zstd, which "
                          "libvirt cannot do: memory goes uncompressed",
                          config->estimate);
      return;
    }
  config->compress = VMS_MEMORY_COMPRESS_ZSTD;
  vms_progress_event (migration->progress, "memory-compress-chosen", NULL,
                      "memory: --compress zstd, as estimate %s recommends "
                      "(--compress none to not)",
                      config->estimate);
}

/* Where the estimate says the rounds will not converge, auto write
 * backpressure's first step is the rate it recommends, not a guess from
 * what the guest wrote: rounds are not spent finding it. */
static void
apply_backpressure (VmsMigration *migration)
{
  VmsReplicateConfig *copy = &migration->config.copy;
  guint64 rate = (guint64)migration->prediction.backpressure_rate;
  g_autofree char *rate_text = NULL;
  JsonObject *fields;

  if (rate == 0 || copy->write_backpressure != VMS_REPLICATE_BACKPRESSURE_AUTO)
    return;
  copy->write_backpressure_first = MAX (rate, VMS_BACKPRESSURE_FLOOR);
  rate_text = vms_format_size (copy->write_backpressure_first);
  fields = json_object_new ();
  json_object_set_int_member (fields, "rate", copy->write_backpressure_first);
  json_object_set_string_member (fields, "estimate",
                                 migration->config.estimate);
  vms_progress_event (migration->progress, "backpressure-recommended", fields,
                      "estimate %s: the rounds will not converge unless the "
                      "guest's disk writes are held to %s/s; the first step "
                      "of write backpressure goes there if they do not "
                      "(--write-backpressure off to not)",
                      migration->config.estimate, rate_text);
}

/* --max-guest-latency where the estimate recommends it (its copy probe
 * slowed the guest's writes) and replication backpressure was not
 * chosen either way. */
static void
apply_replication_backpressure (VmsMigration *migration)
{
  VmsReplicateConfig *copy = &migration->config.copy;
  guint latency_ms = migration->prediction.guest_latency_ms;
  g_autofree char *rate_text = NULL;
  JsonObject *fields;

  if (latency_ms == 0 || copy->max_guest_latency_asked)
    return;
  copy->max_guest_latency_ms = latency_ms;
  vms_replicate_enable_replication_backpressure (&migration->rep);
  rate_text = vms_format_size (migration->prediction.replication_rate);
  fields = json_object_new ();
  json_object_set_int_member (fields, "latency-ms", latency_ms);
  json_object_set_int_member (fields, "rate",
                              (gint64)migration->prediction.replication_rate);
  json_object_set_string_member (fields, "estimate",
                                 migration->config.estimate);
  vms_progress_event (
      migration->progress, "replication-backpressure-recommended", fields,
      "estimate %s: the copy slowed the guest's writes; it "
      "slows down when they take %u ms more than before it "
      "(--max-guest-latency %u; about %s/s expected), "
      "--replication-backpressure off to not",
      migration->config.estimate, latency_ms, latency_ms, rate_text);
}

/* The estimate's prediction, and its best link configuration unless the
 * config says otherwise. */
static gboolean
load_prediction (VmsMigration *migration, GError **error)
{
  VmsJob *job = migration->rep.job;
  VmsJobMigration *part = vms_job_get_migration (job);
  VmsReplicateConfig *copy = &migration->config.copy;

  if (!migration->config.estimate)
    return TRUE;
  if (!vms_estimate_file_load_prediction (
          copy->state_dir, migration->config.estimate, job->vm_uuid,
          job->vm_name, job->source, &migration->prediction, error))
    return FALSE;
  migration->predicted = TRUE;
  migration->prediction_same_bits = granularities_match (migration);
  /* A resumed job reports against the same prediction. */
  g_free (part->estimate);
  part->estimate = g_strdup (migration->config.estimate);
  if (copy->connections == 0 && migration->prediction.connections)
    copy->connections
        = MIN (migration->prediction.connections, VMS_COPY_MAX_CONNECTIONS);
  if (copy->request_size == 0 && migration->prediction.request_size)
    copy->request_size
        = MIN (migration->prediction.request_size, VMS_COPY_MAX_REQUEST_SIZE);
  apply_compression (migration);
  apply_backpressure (migration);
  apply_replication_backpressure (migration);
  return TRUE;
}

/* What the job records of this attempt. */
static void
record_attempt (VmsMigration *migration)
{
  VmsJobMigration *part = vms_job_get_migration (migration->rep.job);

  if (migration->config.dest_qmp)
    {
      g_free (part->dest_qmp);
      part->dest_qmp = g_strdup (migration->config.dest_qmp);
    }
  if (migration->config.dest_uri)
    {
      g_free (part->dest_uri);
      part->dest_uri = g_strdup (migration->config.dest_uri);
    }
  g_free (part->final_sync);
  part->final_sync = g_strdup (vms_migrate_final_sync_name (migration->mode));
  part->tls = migration->config.tls;
  g_clear_pointer (&part->last_error, g_free);
  part->pid = getpid ();
  part->attempts++;
}

static gboolean
preflight (VmsMigration *migration, GError **error)
{
  const VmsMigrationDisks *disks = migration->disks;
  VmsJob *job;

  if (!migration->backend->preflight (migration, error)
      || !disks->open_job (migration, error))
    return FALSE;
  job = migration->rep.job;
  record_attempt (migration);
  if (!load_prediction (migration, error))
    return FALSE;
  job->phase = VMS_JOB_PHASE_MIGRATING;
  /* Asked once: the overall ETA and auto's forecasts use it. */
  migration->guest_ram = vms_migration_guest_ram (migration);
  /* The RAM crosses after the disks: part of the overall ETA. */
  migration->rep.after_disks = migration->guest_ram;
  vms_migration_sample_writes (migration);
  if (!migration->backend->check_job (migration, error)
      || !vms_job_save (job, error) || !disks->start (migration, error))
    return FALSE;
  /* A mirror of an earlier attempt (its vmshift killed) may still run and
   * have left live ranges: stop it, then forget them, or the plain writes
   * of this attempt would be dropped. */
  return disks->stop_mirror (migration, error)
         && disks->forget_live (migration, error);
}

static gboolean
rounds (VmsMigration *migration, GError **error)
{
  /* A round that copies within the pause's share for disks is as small
   * as rounds need to get, whatever its bytes. */
  migration->config.copy.converge_ms = MAX (
      vms_downtime_disk_share_ms (migration->config.max_downtime_ms), 10);
  if (!migration->disks->rounds (migration, error))
    return FALSE;
  vms_migration_sample_writes (migration);
  vms_migration_choose_final_sync (migration);
  return TRUE;
}

static gboolean
start_mirror (VmsMigration *migration, GError **error)
{
  VmsReplicate *rep = &migration->rep;
  gboolean caught_up;

  /* The mirror first, then what the bitmap holds: from then on nothing
   * the guest writes is missed.  The guest gets the rate its write
   * backpressure promised it beside the catch-up. */
  if (!migration->disks->start_mirror (migration, error))
    return FALSE;
  vms_replicate_leave_room (rep, vms_backpressure_held_rate (rep->job));
  caught_up = migration->disks->final_round (migration, error);
  vms_replicate_end_room (rep);
  return caught_up;
}

/* The guest's own disk limits back on the source (why says when): the
 * throttle is vmshift's, never the destination's. */
static gboolean
release_backpressure (VmsMigration *migration, const char *why, GError **error)
{
  return vms_backpressure_release (migration->rep.qmp, migration->rep.job,
                                   migration->progress, why, error);
}

static gboolean
hand_over (VmsMigration *migration, GError **error)
{
  const VmsMigrationDisks *disks = migration->disks;

  if (disks->handover)
    return disks->handover (migration, error);
  return disks->flush (migration, error)
         && disks->forget_live (migration, error);
}

/* The member's source is paused with its disks across: wait for the
 * group's other members to be, the wait said. */
static gboolean
group_paused (VmsMigration *migration, GError **error)
{
  VmsGroup *group = migration->config.group;
  JsonObject *fields = json_object_new ();
  gint64 started_us = g_get_monotonic_time ();
  gboolean ok;

  json_object_set_string_member (fields, "group", vms_group_get_name (group));
  vms_progress_event (migration->progress, "group-paused", fields,
                      "group %s: paused before the switchover, waiting for "
                      "the other members",
                      vms_group_get_name (group));
  ok = vms_group_paused (group, migration->rep.job->id, error);
  fields = json_object_new ();
  json_object_set_string_member (fields, "group", vms_group_get_name (group));
  json_object_set_int_member (fields, "waited-ms",
                              (g_get_monotonic_time () - started_us) / 1000);
  if (ok)
    vms_progress_event (migration->progress, "group-switchover", fields,
                        "group %s: every member is paused; switching over",
                        vms_group_get_name (group));
  else
    json_object_unref (fields);
  return ok;
}

/* The source is held paused (no guest write can happen): the disks'
 * last writes cross, then QEMU goes on.  A backend that switches over by
 * itself has done it already, the mirror keeping the replicas exact. */
static gboolean
switchover (VmsMigration *migration, GError **error)
{
  const VmsMigrationDisks *disks = migration->disks;

  if (!migration->backend->continue_switchover)
    return TRUE;
  if (migration->mode == VMS_MIGRATE_FINAL_PAUSE)
    {
      if (!disks->final_round (migration, error))
        return FALSE;
    }
  /* Every guest write completed only after the sink acknowledged it; one
   * FLUSH makes them all durable.  The destination may reach its disks
   * through the sink's plain export: from now on its writes are the
   * newest and must not be dropped for ranges the mirror wrote. */
  else if (!disks->check_mirror (migration, error)
           || !hand_over (migration, error))
    return FALSE;
  if (vms_migration_stop_requested (migration, error))
    return FALSE;
  /* Paused, the guest cannot write: its own limits go back before it
   * runs at the destination, so the throttle is never carried there. */
  if (!release_backpressure (migration, "switchover", error))
    return FALSE;
  /* No member goes on while another may still fail and roll back. */
  if (migration->config.group && !group_paused (migration, error))
    return FALSE;
  return migration->backend->continue_switchover (migration, error);
}

static gboolean
commit (VmsMigration *migration, GError **error)
{
  if (!migration->disks->commit (migration, error))
    {
      g_prefix_error (error,
                      "the destination runs, but marking the replicas "
                      "complete failed (run 'vmshift migrate --resume %s' to "
                      "finish): ",
                      migration->rep.job->id);
      return FALSE;
    }
  return TRUE;
}

/* The source is left as QEMU leaves it after a migration (paused, in
 * postmigrate), without our bitmaps, mirror or NBD server. */
static gboolean
cleanup (VmsMigration *migration, GError **error)
{
  VmsJob *job = migration->rep.job;
  /* A backend may have ended the source QEMU, and with it the mirror,
   * the NBD server and the in-memory bitmaps. */
  gboolean source_gone = !migration->backend->source_active (migration);

  if (!source_gone && migration->mode == VMS_MIGRATE_FINAL_MIRROR
      && !migration->disks->stop_mirror (migration, error))
    return FALSE;
  if (!source_gone)
    {
      migration->disks->stop_exports (migration);
      /* Done at the switchover; a resumed run may find a killed one's. */
      if (!release_backpressure (migration, "switchover", error))
        return FALSE;
    }
  migration->disks->drop_bitmaps (migration, source_gone);
  /* The mirror's handover, kept open past the switchover. */
  g_clear_pointer (&migration->handover, vms_sink_handover_free);
  job->phase = VMS_JOB_PHASE_MIGRATED;
  job->migration->pid = 0;
  return vms_job_save (job, error);
}

static gboolean
step (VmsMigration *migration, GError **error)
{
  const VmsMigrationDisks *disks = migration->disks;

  switch (migration->state)
    {
    case VMS_MIGRATE_PREFLIGHT:
      return preflight (migration, error);
    case VMS_MIGRATE_BACKGROUND:
      return disks->background (migration, error);
    case VMS_MIGRATE_ROUNDS:
      return rounds (migration, error);
    case VMS_MIGRATE_MIRROR:
      return start_mirror (migration, error);
    case VMS_MIGRATE_MEMORY:
      return vms_migration_memory (migration, error);
    case VMS_MIGRATE_SWITCHOVER:
      return switchover (migration, error);
    case VMS_MIGRATE_DESTINATION:
      return migration->backend->wait_destination (migration, error);
    case VMS_MIGRATE_COMMIT:
      return commit (migration, error);
    case VMS_MIGRATE_CLEANUP:
      return cleanup (migration, error);
    default:
      return TRUE;
    }
}

static gboolean
forward (VmsMigration *migration, GError **error)
{
  for (;;)
    {
      VmsMigrateState next;

      if (vms_migrate_state_can_roll_back (migration->state)
          && vms_migration_stop_requested (migration, error))
        return FALSE;
      if (migration->state == VMS_MIGRATE_DONE)
        return TRUE;
      if (!step (migration, error))
        return FALSE;
      next = vms_migrate_state_next (migration->state, migration->mode);
      if (!vms_migration_move_to (migration, next, error))
        return FALSE;
      if (next == VMS_MIGRATE_DONE)
        return TRUE;
    }
}

/* ---- a run ---- */

/* A job started with --tls sends memory over TLS in every attempt: a
 * resume that forgot the option must not fall back to clear text, and
 * one that asks for clear text (--insecure) is refused, not obeyed.  A
 * job in clear text may go on over TLS. */
static gboolean
resumed_tls (const VmsJob *saved, VmsMigrationConfig *config, GError **error)
{
  if (!saved->migration->tls)
    return TRUE;
  if (config->insecure)
    {
      g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_INVALID,
                   "--insecure: job %s sends memory over TLS (it was "
                   "started with --tls), and a resume does not send it in "
                   "clear text; leave --insecure out",
                   saved->id);
      return FALSE;
    }
  config->tls = TRUE;
  return TRUE;
}

/* A resumed job: what was saved fills what the config leaves out. */
static gboolean
load_resumed (VmsMigration *migration, GError **error)
{
  VmsMigrationConfig *config = &migration->config;
  VmsJob *saved;
  VmsJobMigration *part;

  migration->stopped_in = -1;
  if (!config->copy.resume)
    return TRUE;
  /* Locked before it is read: no other run may change it meanwhile. */
  if (!vms_replicate_lock_job (&migration->rep, config->copy.resume, error))
    return FALSE;
  saved = migration->saved_job
      = vms_job_load (config->copy.state_dir, config->copy.resume, error);
  if (!saved)
    return FALSE;
  part = saved->migration;
  if (saved->phase == VMS_JOB_PHASE_MIGRATED)
    {
      g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_PRECONDITION,
                   "job %s is migrated already", saved->id);
      return FALSE;
    }
  if (!config->source)
    config->source = g_strdup (saved->source);
  if (part && part->final_sync && !config->mode_set)
    vms_migrate_final_sync_parse (part->final_sync, &migration->mode);
  if (part && !config->dest_qmp)
    config->dest_qmp = g_strdup (part->dest_qmp);
  if (part && !config->estimate)
    config->estimate = g_strdup (part->estimate);
  if (part && !config->dest_uri)
    config->dest_uri = g_strdup (part->dest_uri);
  if (part && !resumed_tls (saved, config, error))
    return FALSE;
  if (part)
    migration->stopped_in = vms_migrate_state_parse (part->state);
  return TRUE;
}

/* libvirt's when the config or the resumed job says so; the backend
 * table is chosen once, here. */
gboolean
vms_migration_choose_backend (VmsMigration *migration, GError **error)
{
  VmsJob *saved = migration->saved_job;

  if (!migration->config.libvirt.connect_uri
      && !(saved && saved->migration && saved->migration->libvirt))
    return TRUE;
  if (!vms_migration_libvirt_backend ())
    {
      g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_INVALID,
                   "this vmshift was built without libvirt: --connect is "
                   "not available");
      return FALSE;
    }
  migration->backend = vms_migration_libvirt_backend ();
  return TRUE;
}

static void
on_source_stop (VmsQmp *qmp, const char *event, JsonObject *data,
                gint64 timestamp_us, gpointer user_data)
{
  VmsMigration *migration = user_data;

  if (migration->state >= VMS_MIGRATE_MEMORY && migration->downtime.stop_us < 0)
    migration->downtime.stop_us
        = timestamp_us >= 0 ? timestamp_us : g_get_real_time ();
}

/* The source's side of the switchover, for the downtime's parts. */
static void
on_source_migration (VmsQmp *qmp, const char *event, JsonObject *data,
                     gint64 timestamp_us, gpointer user_data)
{
  VmsMigration *migration = user_data;
  VmsDowntime *downtime = &migration->downtime;
  const char *status
      = data ? json_object_get_string_member_with_default (data, "status", "")
             : "";
  gint64 at = timestamp_us >= 0 ? timestamp_us : g_get_real_time ();

  if (g_str_equal (status, "pre-switchover") && downtime->pre_switchover_us < 0)
    downtime->pre_switchover_us = at;
  else if (g_str_equal (status, "device") && downtime->device_us < 0)
    downtime->device_us = at;
  else if (g_str_equal (status, "completed") && downtime->completed_us < 0)
    downtime->completed_us = at;
}

/* Reach the source, and find where a resumed job goes on: the preflight,
 * or only the commit when the VM moved before the job was committed. */
static gboolean
open_source (VmsMigration *migration, GError **error)
{
  VmsMigrateState resume_at
      = migration->stopped_in >= 0
            ? vms_migrate_resume_state (migration->stopped_in)
            : VMS_MIGRATE_PREFLIGHT;
  g_autoptr (GError) open_error = NULL;

  if (!migration->backend->open (migration, &open_error))
    {
      if (migration->stopped_in < VMS_MIGRATE_MEMORY
          || !migration->backend->moved_already (migration))
        {
          g_propagate_error (error, g_steal_pointer (&open_error));
          return FALSE;
        }
      vms_progress_event (migration->progress, "warning", NULL,
                          "the domain left the source and runs at the "
                          "destination: committing");
      migration->rep.job = g_steal_pointer (&migration->saved_job);
      migration->state = VMS_MIGRATE_COMMIT;
      return TRUE;
    }
  migration->source_opened = TRUE;
  if (migration->rep.qmp)
    {
      vms_qmp_subscribe (migration->rep.qmp, "STOP", on_source_stop, migration,
                         NULL);
      vms_qmp_subscribe (migration->rep.qmp, "MIGRATION", on_source_migration,
                         migration, NULL);
    }
  if ((migration->stopped_in == VMS_MIGRATE_DESTINATION
       || migration->stopped_in == VMS_MIGRATE_ROLLBACK)
      && migration->backend->moved_already (migration))
    resume_at = VMS_MIGRATE_COMMIT;
  /* Killed halfway through a rollback, the source may still be paused,
   * or QEMU's migration still run: that is undone first. */
  if (migration->stopped_in == VMS_MIGRATE_ROLLBACK
      && resume_at != VMS_MIGRATE_COMMIT && migration->saved_job
      && migration->saved_job->phase == VMS_JOB_PHASE_MIGRATING)
    {
      g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_PRECONDITION,
                   "job %s stopped in the middle of a rollback: finish it "
                   "with 'vmshift abort %s' first",
                   migration->saved_job->id, migration->saved_job->id);
      return FALSE;
    }
  if (resume_at == VMS_MIGRATE_PREFLIGHT)
    return migration->backend->connect_destination (migration, error);
  /* The destination ran: only the commit and cleanup are left. */
  migration->state = resume_at;
  return migration->disks->open_job (migration, error);
}

/* A failure while waiting for the destination, which runs the VM all the
 * same: rolling back would run it twice; commit instead. */
static gboolean
commit_instead (VmsMigration *migration, GError **error)
{
  if (migration->state != VMS_MIGRATE_DESTINATION
      || !migration->backend->destination_runs (migration))
    return FALSE;
  vms_progress_event (migration->progress, "warning", NULL,
                      "%s; the destination runs the VM: committing instead "
                      "of rolling back",
                      (*error)->message);
  g_clear_error (error);
  return vms_migration_move_to (migration, VMS_MIGRATE_COMMIT, error)
         && forward (migration, error);
}

/* The name the group knows the migration by: its job's id. */
static const char *
member_name (VmsMigration *migration)
{
  const VmsReplicateConfig *copy = &migration->config.copy;

  if (migration->rep.job)
    return migration->rep.job->id;
  return copy->job_id ? copy->job_id : copy->resume;
}

static gboolean
fail (VmsMigration *migration, GError **error)
{
  migration->outcome = VMS_MIGRATION_STOPPED;
  /* The other members roll back while this one does; one already past
   * its switchover cannot, and says so in its own run. */
  if (migration->config.group
      && !g_error_matches (*error, VMS_GROUP_ERROR, VMS_GROUP_ERROR_FAILED))
    vms_group_fail (migration->config.group, member_name (migration),
                    (*error)->message);
  if (commit_instead (migration, error))
    {
      migration->outcome = VMS_MIGRATION_MIGRATED;
      vms_migration_report (migration);
      return TRUE;
    }
  if (vms_migrate_state_can_roll_back (migration->state)
      && migration->source_opened && migration->rep.job
      && vms_migration_roll_back (migration, *error,
                                  &migration->rollback_error))
    migration->outcome = VMS_MIGRATION_ROLLED_BACK;
  /* The failure stays the error; the caller reports this one beside it. */
  if (migration->rep.job)
    vms_job_save (migration->rep.job, &migration->save_error);
  return FALSE;
}

/* A group holds each member before its switchover, which only a backend
 * that knows the meeting points allows. */
static gboolean
check_group (VmsMigration *migration, GError **error)
{
  if (!migration->config.group || migration->backend->joins_groups)
    return TRUE;
  g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_INVALID,
               "group %s: %s cannot be in a group (the %s backend cannot "
               "hold it before its switchover)",
               vms_group_get_name (migration->config.group),
               member_name (migration), migration->backend->name);
  return FALSE;
}

gboolean
vms_migration_run (VmsMigration *migration, GCancellable *cancellable,
                   GError **error)
{
  migration->cancellable = cancellable;
  migration->rep.cancellable = cancellable;
  migration->started_us = g_get_monotonic_time ();
  migration->state = VMS_MIGRATE_PREFLIGHT;
  if (!load_resumed (migration, error)
      || !vms_migration_choose_backend (migration, error)
      || !check_group (migration, error))
    {
      migration->outcome = VMS_MIGRATION_STOPPED;
      if (migration->config.group)
        vms_group_fail (migration->config.group, member_name (migration),
                        (*error)->message);
      return FALSE;
    }
  if (!open_source (migration, error) || !forward (migration, error))
    return fail (migration, error);
  migration->outcome = VMS_MIGRATION_MIGRATED;
  vms_migration_report (migration);
  return TRUE;
}
