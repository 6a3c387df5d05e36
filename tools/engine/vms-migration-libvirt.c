/* vmshift engine: the libvirt backend: the domain's QEMU reached through
 * libvirt's monitor passthrough for the disks, libvirt's own migration for
 * memory and the switchover.  libvirt switches over by itself, so the
 * mirror is what keeps the replicas exact (continue_switchover is NULL).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-migration-backend.h"

#if VMS_HAVE_LIBVIRT
#include "vms-libvirt-migrate.h"
#include "vms-qemu-migration.h"

/* How often libvirt's migration is looked at. */
#define POLL_INTERVAL_MS 200

typedef struct
{
  VmsLibvirtMigration *libvirt;
  int limit_ms;            /* the domain's own downtime limit */
  gboolean group_held;     /* libvirt's QEMU runs under
                              VMS_GROUP_HOLD_LIMIT_MS until the group's
                              other members could switch over */
  gboolean group_ready;    /* ... and could switch over, said so */
  gboolean group_released; /* past the group's meeting points: no attempt
                              is held */
} LibvirtBackend;

static LibvirtBackend *
backend_of (VmsMigration *migration)
{
  return migration->backend_data;
}

static VmsLibvirtMigration *
libvirt_of (VmsMigration *migration)
{
  return backend_of (migration) ? backend_of (migration)->libvirt : NULL;
}

static void
set_backend (VmsMigration *migration, VmsLibvirtMigration *libvirt)
{
  LibvirtBackend *backend = g_new0 (LibvirtBackend, 1);

  backend->libvirt = libvirt;
  migration->backend_data = backend;
}

/* The backend with what the config and a resumed job say of it; what
 * is given now wins over what was saved. */
static VmsLibvirtMigration *
libvirt_new (VmsMigration *migration)
{
  const VmsMigrationLibvirtConfig *config = &migration->config.libvirt;
  VmsLibvirtMigration *libvirt = vms_libvirt_migration_new ();

  libvirt->connect_uri = g_strdup (config->connect_uri);
  libvirt->migrate_uri = g_strdup (config->migrate_uri);
  libvirt->dname = g_strdup (config->dname);
  libvirt->replica_dir = g_strdup (config->replica_dir);
  libvirt->domain_name = g_strdup (config->domain);
  libvirt->dest_uri = g_strdup (config->dest_uri);
  if (migration->saved_job)
    vms_libvirt_migration_load (libvirt, migration->saved_job);
  else if (migration->rep.job)
    vms_libvirt_migration_load (libvirt, migration->rep.job);
  if (!libvirt->replica_dir)
    libvirt->replica_dir = g_strdup (VMS_LIBVIRT_DEFAULT_REPLICA_DIR);
  libvirt->p2p |= config->p2p;
  libvirt->persistent |= config->persistent;
  libvirt->undefine_source |= config->undefine_source;
  libvirt->verbose = config->verbose;
  libvirt->timeout_s = config->timeout_s;
  libvirt->suspend = migration->config.suspend;
  libvirt->tls |= migration->config.tls;
  return libvirt;
}

/* --disk names targets (vda), as virsh does; vmshift finds the disks in
 * QEMU by their aliases. */
static gboolean
choose_disks (VmsMigration *migration, GError **error)
{
  VmsLibvirtMigration *libvirt = libvirt_of (migration);
  VmsReplicateConfig *copy = &migration->config.copy;
  g_autoptr (GStrvBuilder) chosen = g_strv_builder_new ();

  for (guint i = 0; libvirt->disk_aliases[i]; i++)
    {
      const char *alias = libvirt->disk_aliases[i];
      const char *target = g_hash_table_lookup (libvirt->disk_targets, alias);

      if (!copy->disks
          || g_strv_contains ((const char *const *)copy->disks, target)
          || g_strv_contains ((const char *const *)copy->disks, alias))
        g_strv_builder_add (chosen, alias);
    }
  g_strfreev (copy->disks);
  copy->disks = g_strv_builder_end (chosen);
  if (!copy->disks[0])
    {
      g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_INVALID,
                   "--disk names no disk of domain %s", libvirt->domain_name);
      return FALSE;
    }
  return TRUE;
}

static gboolean
libvirt_open (VmsMigration *migration, GError **error)
{
  VmsLibvirtMigration *libvirt = libvirt_new (migration);

  set_backend (migration, libvirt);
  migration->mode = VMS_MIGRATE_FINAL_MIRROR;
  if (!vms_libvirt_migration_open (libvirt, error))
    return FALSE;
  migration->rep.qmp = vms_libvirt_qmp_open (libvirt->domain, error);
  if (!migration->rep.qmp)
    return FALSE;
  /* Replicas are named after the disks' targets. */
  migration->rep.replica_names = libvirt->disk_targets;
  migration->source_name = g_strdup (libvirt->domain_name);
  return migration->config.copy.resume || choose_disks (migration, error);
}

static gboolean
libvirt_connect_destination (VmsMigration *migration, GError **error)
{
  return vms_libvirt_migration_connect_destination (libvirt_of (migration),
                                                    error);
}

/* libvirt checks versions, machine and run states itself, and the
 * destination domain does not exist before libvirt's migration. */
static gboolean
libvirt_preflight (VmsMigration *migration, GError **error)
{
  /* libvirt sets QEMU's migration parameters itself, and 9.0 (Debian
   * 12's) knows only its "mt" and "xbzrle" compression, not multifd's. */
  if (migration->config.compress != VMS_MEMORY_COMPRESS_NONE)
    {
      g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_INVALID,
                   "--compress %s is for QEMU driven directly (--dest-qmp, "
                   "--dest-uri): libvirt sets QEMU's migration parameters "
                   "itself, without multifd compression",
                   vms_memory_compress_name (migration->config.compress));
      return FALSE;
    }
  migration->source_was_running = libvirt_of (migration)->was_running;
  return vms_libvirt_migration_preflight (libvirt_of (migration), error);
}

static gboolean
libvirt_check_job (VmsMigration *migration, GError **error)
{
  vms_libvirt_migration_save (libvirt_of (migration), migration->rep.job);
  return TRUE;
}

/* What the source QEMU says of its last migration now, so that after
 * this call its error is told from an earlier call's (a call that
 * failed before QEMU started leaves the earlier one there). */
static void
remember_source_qemu (VmsMigration *migration)
{
  VmsLibvirtMigration *libvirt = libvirt_of (migration);
  g_auto (VmsQemuMigrationInfo) info = { 0 };

  libvirt->before_ram_transferred = 0;
  libvirt->before_total_time_ms = -1;
  if (migration->rep.qmp
      && vms_qemu_migration_query (migration->rep.qmp, &info, NULL))
    {
      libvirt->before_ram_transferred = info.ram_transferred;
      libvirt->before_total_time_ms = info.total_time_ms;
    }
}

static gboolean
libvirt_start_memory (VmsMigration *migration, GError **error)
{
  VmsLibvirtMigration *libvirt = libvirt_of (migration);
  LibvirtBackend *backend = backend_of (migration);

  libvirt->bandwidth = migration->config.bandwidth;
  backend->limit_ms = vms_migration_qemu_downtime_limit (migration);
  backend->group_held = migration->config.group && !backend->group_released;
  libvirt->max_downtime_ms
      = backend->group_held ? VMS_GROUP_HOLD_LIMIT_MS : backend->limit_ms;
  libvirt->auto_converge = migration->config.auto_converge;
  libvirt->parallel = migration->config.multifd_channels;
  remember_source_qemu (migration);
  if (!vms_libvirt_migration_start (libvirt, migration->rep.job, error))
    return FALSE;
  migration->migration_started = TRUE;
  return TRUE;
}

/* Past the group's meeting points: the others need not wait for it. */
static void
leave_hold (VmsMigration *migration)
{
  LibvirtBackend *backend = backend_of (migration);

  backend->group_held = FALSE;
  backend->group_released = TRUE;
  vms_group_pass (migration->config.group, migration->rep.job->id);
}

/* libvirt's QEMU gets the domain's own limit back and switches over as
 * soon as it can, by itself. */
static gboolean
release_from_group (VmsMigration *migration, GError **error)
{
  LibvirtBackend *backend = backend_of (migration);

  leave_hold (migration);
  vms_migration_report_group (migration, "group-released",
                              "released; libvirt switches over by itself");
  return vms_libvirt_migration_set_max_downtime (backend->libvirt,
                                                 backend->limit_ms, error);
}

/* The source QEMU's RAM would cross within the domain's own limit: its
 * first pass is over and what is left crosses within it.  A query that
 * fails (libvirt busy with its job) is not ready yet: the next poll asks
 * again, and libvirt's own failure is its poll's to say. */
static gboolean
could_switch_over (VmsMigration *migration)
{
  g_auto (VmsQemuMigrationInfo) info = { 0 };

  if (!vms_qemu_migration_query (migration->rep.qmp, &info, NULL))
    return FALSE;
  return info.status == VMS_QEMU_MIGRATION_ACTIVE && info.dirty_sync_count >= 2
         && info.expected_downtime_ms >= 0
         && info.expected_downtime_ms <= backend_of (migration)->limit_ms;
}

/* The group's other members hold this one: libvirt's QEMU runs under a
 * 1 ms limit until every member could switch over (*waited: the group
 * was waited for, instead of QEMU's event).  libvirt has no pause vmshift
 * could hold at the switchover, so this is the member's only meeting
 * point. */
static gboolean
hold_for_group (VmsMigration *migration, gboolean *waited, GError **error)
{
  LibvirtBackend *backend = backend_of (migration);
  gboolean released = FALSE;

  *waited = FALSE;
  if (!backend->group_held)
    return TRUE;
  if (!backend->group_ready)
    {
      if (!could_switch_over (migration))
        return !vms_group_released (migration->config.group)
               || release_from_group (migration, error);
      vms_migration_report_group (
          migration, "group-ready",
          "could switch over; waiting for the other members");
      backend->group_ready = TRUE;
    }
  *waited = TRUE;
  if (!vms_group_ready (migration->config.group, migration->rep.job->id,
                        POLL_INTERVAL_MS, &released, error))
    return FALSE;
  return !released || release_from_group (migration, error);
}

/* Aborted on a stop request, a broken mirror or the timeout: TRUE when
 * the domain moved all the same (then it must not run twice). */
static gboolean
abort_moved (VmsLibvirtMigration *libvirt)
{
  vms_libvirt_migration_abort (libvirt);
  return libvirt->succeeded || !vms_libvirt_migration_source_active (libvirt);
}

/* libvirt tells what ended its job, often the destination QEMU that
 * exited ("qemu unexpectedly closed the monitor"), rarely why: the
 * source QEMU's own migration error (a reset connection, say) goes
 * beside it. */
static void
add_source_qemu_error (VmsMigration *migration, GError *error)
{
  VmsLibvirtMigration *libvirt = libvirt_of (migration);
  g_auto (VmsQemuMigrationInfo) info = { 0 };
  char *message;

  if (!migration->rep.qmp
      || !vms_qemu_migration_query (migration->rep.qmp, &info, NULL)
      || info.status != VMS_QEMU_MIGRATION_FAILED || !info.error_desc)
    return;
  /* An earlier call's: this one failed before QEMU migrated. */
  if (info.ram_transferred == libvirt->before_ram_transferred
      && info.total_time_ms == libvirt->before_total_time_ms)
    return;
  message = g_strdup_printf ("%s (the source QEMU's migration: %s)",
                             error->message, info.error_desc);
  g_free (error->message);
  error->message = message;
}

/* Failed as libvirt says, unless the domain moved after all. */
static gboolean
failed_unless_moved (VmsMigration *migration, GError **error)
{
  VmsLibvirtMigration *libvirt = libvirt_of (migration);

  if (vms_libvirt_migration_source_active (libvirt)
      || !vms_libvirt_migration_destination_runs (libvirt))
    return FALSE;
  vms_progress_event (migration->progress, "warning", NULL,
                      "%s; but the domain left the source and runs at the "
                      "destination: going on",
                      (*error)->message);
  g_clear_error (error);
  return TRUE;
}

/* libvirt migrates memory, switches over and starts the destination in
 * one call; the mirror and stop requests are watched meanwhile. */
static gboolean
libvirt_wait_memory (VmsMigration *migration, GError **error)
{
  VmsLibvirtMigration *libvirt = libvirt_of (migration);
  int timeout_s = migration->config.memory_timeout_s;
  gint64 deadline = timeout_s > 0
                        ? g_get_monotonic_time () + timeout_s * G_USEC_PER_SEC
                        : G_MAXINT64;
  gboolean finished = FALSE;

  while (!finished)
    {
      g_autoptr (GError) watch_error = NULL;
      gboolean held = FALSE;

      if (!vms_libvirt_migration_poll (libvirt, migration->progress, &finished,
                                       error))
        {
          add_source_qemu_error (migration, *error);
          return failed_unless_moved (migration, error);
        }
      if (finished)
        break;
      if (vms_migration_stop_requested (migration, error)
          || !hold_for_group (migration, &held, error))
        {
          if (!abort_moved (libvirt))
            return FALSE;
          g_clear_error (error); /* too late: it moved */
          break;
        }
      /* The source QEMU ends as libvirt completes: a mirror that cannot
       * be asked any more may mean just that. */
      if (!migration->disks->check_mirror (migration, &watch_error)
          || g_get_monotonic_time () > deadline)
        {
          if (abort_moved (libvirt))
            break;
          if (watch_error)
            g_propagate_error (error, g_steal_pointer (&watch_error));
          else
            g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_TIMEOUT,
                         "libvirt's migration did not end within "
                         "--memory-timeout %d s",
                         timeout_s);
          return FALSE;
        }
      if (!held)
        vms_qmp_wait_event (migration->rep.qmp, "MIGRATION", POLL_INTERVAL_MS,
                            NULL, NULL, NULL, NULL);
    }
  /* Converged while held (a round left under 1 ms of RAM): the others
   * follow as soon as they can. */
  if (backend_of (migration)->group_held)
    leave_hold (migration);
  migration->ram_bytes = libvirt->memory_bytes;
  migration->qemu_downtime_ms = libvirt->downtime_ms;
  return TRUE;
}

/* libvirt starts the destination's QEMU itself at every migration call,
 * and tears down the incoming domain of one that failed: after a lost
 * connection a new call is a new attempt, once the domain is back to
 * running at the source and gone from the destination. */
static gboolean
libvirt_prepare_memory_retry (VmsMigration *migration, const GError *cause,
                              GError **error)
{
  VmsLibvirtMigration *libvirt = libvirt_of (migration);

  if (libvirt->thread)
    vms_libvirt_migration_abort (libvirt);
  if (!vms_libvirt_migration_source_active (libvirt))
    {
      g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_FAILED,
                   "%s; the domain %s is no longer active at the source, so "
                   "no new attempt can start",
                   cause->message, libvirt->domain_name);
      return FALSE;
    }
  if (!vms_libvirt_migration_drop_incoming (libvirt, error)
      || !vms_libvirt_migration_resume_source (libvirt, error))
    {
      g_prefix_error (error, "%s; before a new attempt: ", cause->message);
      return FALSE;
    }
  return TRUE;
}

/* libvirt returned once the destination resumed the domain. */
static gboolean
libvirt_wait_destination (VmsMigration *migration, GError **error)
{
  VmsLibvirtMigration *libvirt = libvirt_of (migration);
  gint64 deadline
      = g_get_monotonic_time ()
        + migration->config.switchover_timeout_s * (gint64)G_USEC_PER_SEC;

  while (!vms_libvirt_migration_destination_runs (libvirt))
    {
      if (g_get_monotonic_time () > deadline)
        {
          g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_TIMEOUT,
                       "libvirt migrated the domain, but it does not run at "
                       "%s",
                       libvirt->dest_uri);
          return FALSE;
        }
      g_usleep (100 * 1000);
    }
  return vms_libvirt_migration_fix_definition (libvirt, error);
}

static gboolean
libvirt_destination_runs (VmsMigration *migration)
{
  return libvirt_of (migration)
         && vms_libvirt_migration_destination_runs (libvirt_of (migration));
}

static gboolean
libvirt_source_active (VmsMigration *migration)
{
  return libvirt_of (migration)
         && vms_libvirt_migration_source_active (libvirt_of (migration));
}

/* libvirt moved the domain before the job was committed (the vmshift
 * that ran it was stopped): only the commit is left. */
static gboolean
libvirt_moved_already (VmsMigration *migration)
{
  VmsLibvirtMigration *libvirt = libvirt_of (migration);

  return libvirt && !vms_libvirt_migration_source_active (libvirt)
         && vms_libvirt_migration_connect_destination (libvirt, NULL)
         && vms_libvirt_migration_destination_runs (libvirt);
}

/* Never run both: whoever holds the domain now keeps it. */
static gboolean
libvirt_check_source (VmsMigration *migration, GError **error)
{
  VmsLibvirtMigration *libvirt = libvirt_of (migration);
  VmsJob *job = migration->rep.job;

  if (libvirt_source_active (migration))
    return TRUE;
  if (libvirt_destination_runs (migration))
    g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_MOVED,
                 "the destination runs the domain: not rolling back; "
                 "'vmshift migrate --resume %s' marks the replicas complete",
                 job ? job->id : "JOB");
  else
    g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_UNSAFE,
                 "the source domain %s is no longer active and the "
                 "destination does not run it: check both hosts ('virsh "
                 "list --all')",
                 libvirt ? libvirt->domain_name : "");
  return FALSE;
}

static gboolean
libvirt_cancel (VmsMigration *migration, gboolean check_destination,
                GError **error)
{
  VmsLibvirtMigration *libvirt = libvirt_of (migration);

  if (!libvirt)
    return TRUE;
  vms_libvirt_migration_abort (libvirt);
  /* A domain that moved after all is check_source's to report. */
  if (!vms_libvirt_migration_source_active (libvirt))
    return TRUE;
  return vms_libvirt_migration_drop_incoming (libvirt, error);
}

/* Through libvirt, so that it knows the domain runs. */
static gboolean
libvirt_resume_source (VmsMigration *migration, GError **error)
{
  return vms_libvirt_migration_resume_source (libvirt_of (migration), error);
}

static gboolean
libvirt_open_for_rollback (VmsMigration *migration, GError **error)
{
  VmsLibvirtMigration *libvirt = libvirt_new (migration);

  set_backend (migration, libvirt);
  if (!vms_libvirt_migration_open (libvirt, error)
      || !(migration->rep.qmp = vms_libvirt_qmp_open (libvirt->domain, error)))
    {
      g_prefix_error (error, "source %s: ", migration->rep.job->source);
      return FALSE;
    }
  /* Back to running, as libvirt leaves a failed migration. */
  libvirt->was_running = TRUE;
  migration->source_was_running = TRUE;
  vms_libvirt_migration_connect_destination (libvirt, NULL);
  return TRUE;
}

static void
libvirt_free (VmsMigration *migration)
{
  LibvirtBackend *backend = backend_of (migration);

  if (!backend)
    return;
  vms_libvirt_migration_free (backend->libvirt);
  g_clear_pointer (&migration->backend_data, g_free);
}

static const VmsMigrationBackend libvirt_backend = {
  .name = "libvirt",
  .owns_destination = FALSE,
  .joins_groups = TRUE,
  .open = libvirt_open,
  .connect_destination = libvirt_connect_destination,
  .preflight = libvirt_preflight,
  .check_job = libvirt_check_job,
  .start_memory = libvirt_start_memory,
  .wait_memory = libvirt_wait_memory,
  .prepare_memory_retry = libvirt_prepare_memory_retry,
  .continue_switchover = NULL,
  .wait_destination = libvirt_wait_destination,
  .destination_runs = libvirt_destination_runs,
  .moved_already = libvirt_moved_already,
  .source_active = libvirt_source_active,
  .check_source = libvirt_check_source,
  .open_for_rollback = libvirt_open_for_rollback,
  .cancel = libvirt_cancel,
  .resume_source = libvirt_resume_source,
  .free = libvirt_free,
};

const VmsMigrationBackend *
vms_migration_libvirt_backend (void)
{
  return &libvirt_backend;
}

#else

const VmsMigrationBackend *
vms_migration_libvirt_backend (void)
{
  return NULL;
}

#endif
