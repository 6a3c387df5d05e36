/* vmshift: the libvirt side of vmshift migrate --connect.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * vmshift copies the disks through the domain's own QEMU (over libvirt's
 * monitor passthrough) and keeps them in sync with the write-blocking
 * mirror; then libvirt migrates the domain as it always does, memory only,
 * with a destination XML whose disks are the replicas.  libvirt drives the
 * switchover itself and sets QEMU's migration capabilities to its own
 * choice, so vmshift cannot hold the source at pre-switchover: only the
 * mirror keeps the replicas exact at the moment libvirt stops the source.
 */
#include "vms-libvirt-migrate.h"
#include "vms-domain-xml.h"

#include <libvirt/virterror.h>

static void collect_destination_figures (VmsLibvirtMigration *migration);
static void on_job_completed (virConnectPtr connection, virDomainPtr domain,
                              virTypedParameterPtr params, int n_params,
                              void *opaque);

VmsLibvirtMigration *
vms_libvirt_migration_new (void)
{
  VmsLibvirtMigration *migration = g_new0 (VmsLibvirtMigration, 1);

  migration->downtime_ms = -1;
  migration->job_callback = -1;
  g_mutex_init (&migration->figures_lock);
  g_cond_init (&migration->figures_cond);
  return migration;
}

void
vms_libvirt_migration_free (VmsLibvirtMigration *migration)
{
  if (!migration)
    return;
  if (migration->thread)
    vms_libvirt_migration_abort (migration);
  if (migration->job_callback >= 0)
    virConnectDomainEventDeregisterAny (migration->source,
                                        migration->job_callback);
  g_clear_pointer (&migration->connect_uri, g_free);
  g_clear_pointer (&migration->domain_name, g_free);
  g_clear_pointer (&migration->dest_uri, g_free);
  g_clear_pointer (&migration->migrate_uri, g_free);
  g_clear_pointer (&migration->dname, g_free);
  g_clear_pointer (&migration->replica_dir, g_free);
  g_clear_pointer (&migration->disk_aliases, g_strfreev);
  g_clear_pointer (&migration->disk_targets, g_hash_table_unref);
  g_clear_error (&migration->failure);
  g_clear_pointer (&migration->domain, virDomainFree);
  g_clear_pointer (&migration->source, virConnectClose);
  g_clear_pointer (&migration->destination, virConnectClose);
  g_mutex_clear (&migration->figures_lock);
  g_cond_clear (&migration->figures_cond);
  g_free (migration);
}

/* ---- the domain and its disks ---- */

/* Which disks vmshift copies: every one with a medium; refuse what would
 * leave the destination without a disk it needs or with a wrong one. */
static gboolean
choose_disks (VmsLibvirtMigration *migration, const char *xml, GError **error)
{
  g_autoptr (GPtrArray) disks = vms_domain_xml_disks (xml, error);
  g_autoptr (GStrvBuilder) aliases = g_strv_builder_new ();

  if (!disks)
    return FALSE;
  migration->disk_targets
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  for (guint i = 0; i < disks->len; i++)
    {
      VmsDomainDisk *disk = disks->pdata[i];

      if (!disk->source)
        continue; /* an empty CD-ROM or floppy: nothing to move */
      if (disk->kind == VMS_DOMAIN_DISK_OTHER)
        {
          g_set_error (error, VMS_LIBVIRT_ERROR, VMS_LIBVIRT_ERROR_UNSUPPORTED,
                       "disk %s of domain %s is a '%s' disk: vmshift copies "
                       "file and block disks only",
                       disk->target, migration->domain_name, disk->type);
          return FALSE;
        }
      if (disk->readonly || g_strcmp0 (disk->device, "cdrom") == 0
          || g_strcmp0 (disk->device, "floppy") == 0)
        {
          g_set_error (error, VMS_LIBVIRT_ERROR, VMS_LIBVIRT_ERROR_UNSUPPORTED,
                       "disk %s of domain %s (%s, read-only: %s) is not "
                       "supported: vmshift copies writable disks; eject it "
                       "first ('virsh change-media %s %s --eject')",
                       disk->target, migration->domain_name, disk->device,
                       disk->source, migration->domain_name, disk->target);
          return FALSE;
        }
      if (disk->shareable)
        {
          g_set_error (error, VMS_LIBVIRT_ERROR, VMS_LIBVIRT_ERROR_UNSUPPORTED,
                       "disk %s of domain %s is shareable: another domain may "
                       "write it, so no copy of it can be exact",
                       disk->target, migration->domain_name);
          return FALSE;
        }
      if (!disk->alias)
        {
          g_set_error (error, VMS_LIBVIRT_ERROR, VMS_LIBVIRT_ERROR_FAILED,
                       "disk %s of domain %s has no alias in the live XML",
                       disk->target, migration->domain_name);
          return FALSE;
        }
      g_strv_builder_add (aliases, disk->alias);
      g_hash_table_insert (migration->disk_targets, g_strdup (disk->alias),
                           g_strdup (disk->target));
    }
  if (g_hash_table_size (migration->disk_targets) == 0)
    {
      g_set_error (error, VMS_LIBVIRT_ERROR, VMS_LIBVIRT_ERROR_UNSUPPORTED,
                   "domain %s has no disk to copy", migration->domain_name);
      return FALSE;
    }
  migration->disk_aliases = g_strv_builder_end (aliases);
  return TRUE;
}

gboolean
vms_libvirt_migration_open (VmsLibvirtMigration *migration, GError **error)
{
  g_autofree char *xml = NULL;
  int state = VIR_DOMAIN_NOSTATE, reason = 0;

  migration->source = vms_libvirt_connect (migration->connect_uri, error);
  if (!migration->source)
    return FALSE;
  migration->domain
      = vms_libvirt_lookup (migration->source, migration->domain_name, error);
  if (!migration->domain)
    return FALSE;
  /* A UUID or id on the command line: the name is what both ends share. */
  g_free (migration->domain_name);
  migration->domain_name = g_strdup (virDomainGetName (migration->domain));
  if (virDomainGetState (migration->domain, &state, &reason, 0) < 0)
    {
      vms_libvirt_set_error (error, VMS_LIBVIRT_ERROR_FAILED,
                             "domain %s: reading its state",
                             migration->domain_name);
      return FALSE;
    }
  if (state != VIR_DOMAIN_RUNNING && state != VIR_DOMAIN_PAUSED
      && state != VIR_DOMAIN_BLOCKED)
    {
      g_set_error (error, VMS_LIBVIRT_ERROR, VMS_LIBVIRT_ERROR_NOT_RUNNING,
                   "domain %s is %s: vmshift migrate moves a running domain "
                   "(start it with 'virsh start %s')",
                   migration->domain_name, vms_libvirt_state_name (state),
                   migration->domain_name);
      return FALSE;
    }
  migration->was_running = state != VIR_DOMAIN_PAUSED;
  xml = virDomainGetXMLDesc (migration->domain, 0);
  if (!xml)
    {
      vms_libvirt_set_error (error, VMS_LIBVIRT_ERROR_FAILED,
                             "domain %s: reading its XML",
                             migration->domain_name);
      return FALSE;
    }
  return choose_disks (migration, xml, error);
}

gboolean
vms_libvirt_migration_connect_destination (VmsLibvirtMigration *migration,
                                           GError **error)
{
  g_autoptr (GError) connect_error = NULL;

  if (migration->destination)
    return TRUE;
  migration->destination
      = vms_libvirt_connect (migration->dest_uri, &connect_error);
  if (migration->destination)
    return TRUE;
  if (migration->p2p
      && !g_error_matches (connect_error, VMS_LIBVIRT_ERROR,
                           VMS_LIBVIRT_ERROR_VERSION))
    {
      /* The source libvirtd may reach what this host cannot. */
      g_printerr ("vmshift: migrate: warning: %s; the checks at the "
                  "destination are skipped\n",
                  connect_error->message);
      return TRUE;
    }
  g_propagate_prefixed_error (error, g_steal_pointer (&connect_error),
                              "the destination refuses: ");
  return FALSE;
}

static const char *
destination_name (VmsLibvirtMigration *migration)
{
  return migration->dname ? migration->dname : migration->domain_name;
}

gboolean
vms_libvirt_migration_preflight (VmsLibvirtMigration *migration, GError **error)
{
  g_autoptr (virDomain) there = NULL;
  char source_uuid[VIR_UUID_STRING_BUFLEN] = "";
  char there_uuid[VIR_UUID_STRING_BUFLEN] = "";

  if (!migration->destination)
    return TRUE;
  there = virDomainLookupByName (migration->destination,
                                 destination_name (migration));
  if (there && virDomainIsActive (there) == 1)
    {
      g_set_error (error, VMS_LIBVIRT_ERROR, VMS_LIBVIRT_ERROR_FAILED,
                   "the destination refuses: a domain named %s already "
                   "runs at %s",
                   destination_name (migration), migration->dest_uri);
      return FALSE;
    }
  if (there && virDomainGetUUIDString (there, there_uuid) == 0
      && virDomainGetUUIDString (migration->domain, source_uuid) == 0
      && !g_str_equal (there_uuid, source_uuid))
    {
      g_set_error (error, VMS_LIBVIRT_ERROR, VMS_LIBVIRT_ERROR_FAILED,
                   "the destination refuses: %s there is another domain "
                   "(uuid %s, not %s); give --dname another name",
                   destination_name (migration), there_uuid, source_uuid);
      return FALSE;
    }
  return TRUE;
}

/* ---- libvirt's migration ---- */

static char *
xml_for_replicas (VmsLibvirtMigration *migration, VmsJob *job,
                  unsigned int xml_flags, GError **error)
{
  g_autofree char *xml = virDomainGetXMLDesc (migration->domain, xml_flags);
  g_autoptr (GArray) replicas
      = g_array_new (FALSE, TRUE, sizeof (VmsDomainReplica));
  g_autoptr (GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);

  if (!xml)
    {
      vms_libvirt_set_error (error, VMS_LIBVIRT_ERROR_FAILED,
                             "domain %s: reading its XML",
                             migration->domain_name);
      return NULL;
    }
  for (guint i = 0; i < job->disks->len; i++)
    {
      VmsJobDisk *disk = job->disks->pdata[i];
      const char *target
          = g_hash_table_lookup (migration->disk_targets, disk->name);
      char *path;
      VmsDomainReplica replica = { 0 };

      if (!target)
        {
          g_set_error (error, VMS_LIBVIRT_ERROR, VMS_LIBVIRT_ERROR_FAILED,
                       "disk %s of job %s is no disk of domain %s any more",
                       disk->name, job->id, migration->domain_name);
          return NULL;
        }
      path = g_build_filename (migration->replica_dir, disk->replica, NULL);
      g_ptr_array_add (paths, path);
      replica.target = target;
      replica.replica = disk->replica;
      replica.path = path;
      replica.size = disk->size;
      g_array_append_val (replicas, replica);
    }
  return vms_domain_xml_for_replicas (xml, job->id,
                                      (const VmsDomainReplica *)replicas->data,
                                      replicas->len, migration->dname, error);
}

typedef struct
{
  VmsLibvirtMigration *migration;
  virTypedParameterPtr params;
  int n_params;
  unsigned int flags;
} MigrateCall;

static gpointer
run_migration (gpointer data)
{
  MigrateCall *call = data;
  VmsLibvirtMigration *migration = call->migration;
  int ok;

  if (migration->p2p)
    ok = virDomainMigrateToURI3 (migration->domain, migration->dest_uri,
                                 call->params, call->n_params, call->flags)
         == 0;
  else
    {
      virDomainPtr there
          = virDomainMigrate3 (migration->domain, migration->destination,
                               call->params, call->n_params, call->flags);

      ok = there != NULL;
      if (there)
        virDomainFree (there);
    }
  /* libvirt's last error is per thread: keep it here. */
  if (!ok)
    vms_libvirt_set_error (&migration->failure, VMS_LIBVIRT_ERROR_FAILED,
                           "libvirt's migration of %s to %s failed",
                           migration->domain_name, migration->dest_uri);
  migration->succeeded = ok;
  virTypedParamsFree (call->params, call->n_params);
  g_free (call);
  g_atomic_int_set (&migration->finished, 1);
  return NULL;
}

unsigned int
vms_libvirt_migration_flags (const VmsLibvirtMigration *migration)
{
  /* The disks are in sync by vmshift's hand; libvirt, which sees local
   * storage without a storage copy, would call that unsafe. */
  unsigned int flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_UNSAFE;

  if (migration->persistent)
    flags |= VIR_MIGRATE_PERSIST_DEST;
  if (migration->undefine_source)
    flags |= VIR_MIGRATE_UNDEFINE_SOURCE;
  if (migration->p2p)
    flags |= VIR_MIGRATE_PEER2PEER;
  if (migration->suspend)
    flags |= VIR_MIGRATE_PAUSED;
  if (migration->auto_converge)
    flags |= VIR_MIGRATE_AUTO_CONVERGE;
  if (migration->parallel > 0)
    flags |= VIR_MIGRATE_PARALLEL;
  /* libvirt's own certificates (migrate_tls_x509_cert_dir in qemu.conf),
   * not the sink's keys: libvirt makes QEMU's credentials itself. */
  if (migration->tls)
    flags |= VIR_MIGRATE_TLS;
  return flags;
}

gboolean
vms_libvirt_migration_start (VmsLibvirtMigration *migration, VmsJob *job,
                             GError **error)
{
  const unsigned int xml_flags
      = VIR_DOMAIN_XML_SECURE | VIR_DOMAIN_XML_MIGRATABLE;
  g_autofree char *dest_xml = NULL;
  g_autofree char *persist_xml = NULL;
  MigrateCall *call;
  int max_params = 0;

  dest_xml = xml_for_replicas (migration, job, xml_flags, error);
  if (!dest_xml)
    return FALSE;
  if (migration->persistent)
    {
      /* The definition kept at the destination must name the replicas
       * too, or the next boot there would look for the source's paths. */
      persist_xml = xml_for_replicas (
          migration, job, xml_flags | VIR_DOMAIN_XML_INACTIVE, error);
      if (!persist_xml)
        return FALSE;
    }
  call = g_new0 (MigrateCall, 1);
  call->migration = migration;
  call->flags = vms_libvirt_migration_flags (migration);
  virTypedParamsAddString (&call->params, &call->n_params, &max_params,
                           VIR_MIGRATE_PARAM_DEST_XML, dest_xml);
  if (persist_xml)
    virTypedParamsAddString (&call->params, &call->n_params, &max_params,
                             VIR_MIGRATE_PARAM_PERSIST_XML, persist_xml);
  if (migration->migrate_uri)
    virTypedParamsAddString (&call->params, &call->n_params, &max_params,
                             VIR_MIGRATE_PARAM_URI, migration->migrate_uri);
  if (migration->dname)
    virTypedParamsAddString (&call->params, &call->n_params, &max_params,
                             VIR_MIGRATE_PARAM_DEST_NAME, migration->dname);
  if (migration->bandwidth)
    virTypedParamsAddULLong (&call->params, &call->n_params, &max_params,
                             VIR_MIGRATE_PARAM_BANDWIDTH,
                             MAX (1, migration->bandwidth / (1024 * 1024)));
  if (migration->parallel > 0)
    virTypedParamsAddInt (&call->params, &call->n_params, &max_params,
                          VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS,
                          migration->parallel);
  if (migration->max_downtime_ms > 0
      && virDomainMigrateSetMaxDowntime (migration->domain,
                                         migration->max_downtime_ms, 0)
             < 0)
    g_printerr ("vmshift: migrate: warning: libvirt did not take the "
                "downtime limit: %s\n",
                virGetLastErrorMessage ());
  g_clear_error (&migration->failure);
  migration->succeeded = FALSE;
  migration->suspended_on_timeout = FALSE;
  g_atomic_int_set (&migration->finished, 0);
  migration->started_us = g_get_monotonic_time ();
  migration->job_completed = FALSE;
  if (migration->job_callback < 0)
    migration->job_callback = virConnectDomainEventRegisterAny (
        migration->source, migration->domain, VIR_DOMAIN_EVENT_ID_JOB_COMPLETED,
        VIR_DOMAIN_EVENT_CALLBACK (on_job_completed), migration, NULL);
  migration->thread = g_thread_new ("libvirt-migrate", run_migration, call);
  return TRUE;
}

gboolean
vms_libvirt_migration_set_max_downtime (VmsLibvirtMigration *migration,
                                        int limit_ms, GError **error)
{
  if (virDomainMigrateSetMaxDowntime (migration->domain, limit_ms, 0) == 0)
    return TRUE;
  vms_libvirt_set_error (error, VMS_LIBVIRT_ERROR_FAILED,
                         "libvirt did not set %s's downtime limit to %d ms",
                         migration->domain_name, limit_ms);
  return FALSE;
}

/* libvirt reports a finished job, with its statistics, as an event on
 * the source domain: the only place they are sure to be, since the
 * domain is gone there and the destination need not keep them. */

/* The figures of a completed job, from its statistics. */
static void
take_figures (VmsLibvirtMigration *migration, virTypedParameterPtr params,
              int n_params)
{
  unsigned long long value;

  if (virTypedParamsGetULLong (params, n_params, VIR_DOMAIN_JOB_DOWNTIME,
                               &value)
      == 1)
    migration->downtime_ms = value;
  if (virTypedParamsGetULLong (params, n_params,
                               VIR_DOMAIN_JOB_MEMORY_PROCESSED, &value)
      == 1)
    migration->memory_bytes = value;
  if (virTypedParamsGetULLong (params, n_params, VIR_DOMAIN_JOB_TIME_ELAPSED,
                               &value)
      == 1)
    migration->elapsed_ms = value;
}

static void
on_job_completed (virConnectPtr connection, virDomainPtr domain,
                  virTypedParameterPtr params, int n_params, void *opaque)
{
  VmsLibvirtMigration *migration = opaque;

  g_mutex_lock (&migration->figures_lock);
  take_figures (migration, params, n_params);
  migration->job_completed = TRUE;
  g_cond_broadcast (&migration->figures_cond);
  g_mutex_unlock (&migration->figures_lock);
}

static void
collect_figures (VmsLibvirtMigration *migration)
{
  gint64 deadline = g_get_monotonic_time () + G_USEC_PER_SEC;

  /* The event may trail the end of libvirt's call a moment. */
  g_mutex_lock (&migration->figures_lock);
  while (!migration->job_completed
         && g_cond_wait_until (&migration->figures_cond,
                               &migration->figures_lock, deadline))
    ;
  g_mutex_unlock (&migration->figures_lock);
  if (!migration->job_completed)
    collect_destination_figures (migration);
}

static void
collect_destination_figures (VmsLibvirtMigration *migration)
{
  virTypedParameterPtr params = NULL;
  int n_params = 0, type = 0;
  g_autoptr (virDomain) there = NULL;
  virDomainPtr domain = NULL;

  /* The destination keeps the statistics of the job that brought the
   * domain; the source's domain is gone by now. */
  if (migration->destination)
    domain = there = virDomainLookupByName (migration->destination,
                                            destination_name (migration));
  if (!domain)
    return;
  if (virDomainGetJobStats (domain, &type, &params, &n_params,
                            VIR_DOMAIN_JOB_STATS_COMPLETED)
      < 0)
    return;
  take_figures (migration, params, n_params);
  virTypedParamsFree (params, n_params);
}

static void
report_progress (VmsLibvirtMigration *migration, VmsProgress *progress)
{
  virTypedParameterPtr params = NULL;
  int n_params = 0, type = 0;
  unsigned long long processed = 0, remaining = 0, total = 0, rate = 0;
  unsigned long long iteration = 0;
  JsonObject *fields;
  g_autofree char *processed_text = NULL, *remaining_text = NULL;

  if (virDomainGetJobStats (migration->domain, &type, &params, &n_params, 0) < 0
      || type == VIR_DOMAIN_JOB_NONE)
    {
      virTypedParamsFree (params, n_params);
      return;
    }
  virTypedParamsGetULLong (params, n_params, VIR_DOMAIN_JOB_MEMORY_PROCESSED,
                           &processed);
  virTypedParamsGetULLong (params, n_params, VIR_DOMAIN_JOB_MEMORY_REMAINING,
                           &remaining);
  virTypedParamsGetULLong (params, n_params, VIR_DOMAIN_JOB_MEMORY_TOTAL,
                           &total);
  virTypedParamsGetULLong (params, n_params, VIR_DOMAIN_JOB_MEMORY_DIRTY_RATE,
                           &rate);
  virTypedParamsGetULLong (params, n_params, VIR_DOMAIN_JOB_MEMORY_ITERATION,
                           &iteration);
  virTypedParamsFree (params, n_params);
  fields = json_object_new ();
  json_object_set_int_member (fields, "memory-processed", processed);
  json_object_set_int_member (fields, "memory-remaining", remaining);
  json_object_set_int_member (fields, "memory-total", total);
  json_object_set_int_member (fields, "dirty-pages-rate", rate);
  json_object_set_int_member (fields, "iteration", iteration);
  processed_text = vms_format_size (processed);
  remaining_text = vms_format_size (remaining);
  vms_progress_event (progress, "memory", fields,
                      "libvirt migration: RAM pass %llu, %s sent, %s left, "
                      "%llu pages/s dirtied",
                      iteration, processed_text, remaining_text, rate);
}

gboolean
vms_libvirt_migration_poll (VmsLibvirtMigration *migration,
                            VmsProgress *progress, gboolean *finished,
                            GError **error)
{
  static const gint64 report_interval_us = 2 * G_USEC_PER_SEC;
  static gint64 last_report_us;
  gint64 now = g_get_monotonic_time ();

  *finished = FALSE;
  if (g_atomic_int_get (&migration->finished))
    {
      g_thread_join (g_steal_pointer (&migration->thread));
      *finished = TRUE;
      if (!migration->succeeded)
        {
          g_propagate_error (error, g_steal_pointer (&migration->failure));
          return FALSE;
        }
      collect_figures (migration);
      return TRUE;
    }
  if (migration->timeout_s > 0 && !migration->suspended_on_timeout
      && now - migration->started_us
             > migration->timeout_s * (gint64)G_USEC_PER_SEC)
    {
      /* virsh migrate --timeout: a paused domain stops dirtying memory,
       * so the migration ends, with a longer downtime. */
      migration->suspended_on_timeout = TRUE;
      vms_progress_event (progress, "timeout", NULL,
                          "--timeout %d s reached: suspending %s so the "
                          "migration completes",
                          migration->timeout_s, migration->domain_name);
      if (virDomainSuspend (migration->domain) < 0)
        g_printerr ("vmshift: migrate: warning: suspending %s: %s\n",
                    migration->domain_name, virGetLastErrorMessage ());
    }
  if (migration->verbose || now - last_report_us > report_interval_us)
    {
      last_report_us = now;
      report_progress (migration, progress);
    }
  return TRUE;
}

/* A migration of the domain under way that this process did not start
 * (a vmshift killed during a --p2p migration, which the source libvirtd
 * carries on alone). */
static gboolean
foreign_migration_runs (VmsLibvirtMigration *migration)
{
  virTypedParameterPtr params = NULL;
  int n_params = 0, type = VIR_DOMAIN_JOB_NONE, operation = 0;
  gboolean runs;

  if (!migration->domain
      || virDomainGetJobStats (migration->domain, &type, &params, &n_params, 0)
             < 0)
    return FALSE;
  runs = type != VIR_DOMAIN_JOB_NONE
         && virTypedParamsGetInt (params, n_params, VIR_DOMAIN_JOB_OPERATION,
                                  &operation)
                == 1
         && operation == VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT;
  virTypedParamsFree (params, n_params);
  return runs;
}

void
vms_libvirt_migration_abort (VmsLibvirtMigration *migration)
{
  if (!migration->thread)
    {
      if (foreign_migration_runs (migration)
          && virDomainAbortJob (migration->domain) < 0)
        g_printerr ("vmshift: warning: aborting libvirt's migration of %s: "
                    "%s\n",
                    migration->domain_name, virGetLastErrorMessage ());
      return;
    }
  if (!g_atomic_int_get (&migration->finished)
      && virDomainAbortJob (migration->domain) < 0)
    g_printerr ("vmshift: migrate: warning: aborting libvirt's job: %s\n",
                virGetLastErrorMessage ());
  g_thread_join (g_steal_pointer (&migration->thread));
  /* It may have completed all the same. */
  if (migration->succeeded)
    collect_figures (migration);
}

gboolean
vms_libvirt_migration_destination_runs (VmsLibvirtMigration *migration)
{
  g_autoptr (virDomain) there = NULL;
  int state = VIR_DOMAIN_NOSTATE, reason = 0;

  if (!migration->destination)
    return FALSE;
  there = virDomainLookupByName (migration->destination,
                                 destination_name (migration));
  return there && virDomainGetState (there, &state, &reason, 0) == 0
         && (state == VIR_DOMAIN_RUNNING || state == VIR_DOMAIN_BLOCKED
             || (migration->suspend && state == VIR_DOMAIN_PAUSED));
}

gboolean
vms_libvirt_migration_fix_definition (VmsLibvirtMigration *migration,
                                      GError **error)
{
  g_autoptr (virDomain) there = NULL;
  g_autofree char *live = NULL;
  g_autofree char *inactive = NULL;
  g_autofree char *job_id = NULL;
  g_autofree char *fixed = NULL;
  g_autoptr (GArray) replicas = NULL;
  gboolean found = FALSE;
  virDomainPtr defined;

  if (!migration->persistent || !migration->destination)
    return TRUE;
  there = virDomainLookupByName (migration->destination,
                                 destination_name (migration));
  if (there)
    live = virDomainGetXMLDesc (there, 0);
  if (live)
    inactive = virDomainGetXMLDesc (there, VIR_DOMAIN_XML_INACTIVE
                                               | VIR_DOMAIN_XML_SECURE);
  if (!inactive)
    {
      vms_libvirt_set_error (error, VMS_LIBVIRT_ERROR_FAILED,
                             "reading the definition of %s at %s",
                             destination_name (migration), migration->dest_uri);
      return FALSE;
    }
  /* The running domain's disks are where the hook (or vmshift) put them;
   * the persistent definition did not pass through the hook. */
  if (!vms_domain_xml_read_request (live, &found, &job_id, &replicas, error))
    return found ? FALSE : TRUE;
  for (guint i = 0; i < replicas->len; i++)
    if (!g_array_index (replicas, VmsDomainReplica, i).path)
      return TRUE;
  fixed = vms_domain_xml_for_replicas (inactive, job_id,
                                       (const VmsDomainReplica *)replicas->data,
                                       replicas->len, NULL, error);
  if (!fixed)
    return FALSE;
  if (g_str_equal (fixed, inactive))
    return TRUE;
  defined = virDomainDefineXML (migration->destination, fixed);
  if (!defined)
    {
      vms_libvirt_set_error (error, VMS_LIBVIRT_ERROR_FAILED,
                             "pointing the persistent definition of %s at "
                             "%s at the replicas",
                             destination_name (migration), migration->dest_uri);
      return FALSE;
    }
  virDomainFree (defined);
  return TRUE;
}

gboolean
vms_libvirt_migration_source_active (VmsLibvirtMigration *migration)
{
  return migration->domain && virDomainIsActive (migration->domain) == 1;
}

gboolean
vms_libvirt_migration_resume_source (VmsLibvirtMigration *migration,
                                     GError **error)
{
  int state = VIR_DOMAIN_NOSTATE, reason = 0;

  if (!migration->domain || !migration->was_running
      || virDomainGetState (migration->domain, &state, &reason, 0) < 0
      || state != VIR_DOMAIN_PAUSED)
    return TRUE;
  if (virDomainResume (migration->domain) == 0)
    return TRUE;
  vms_libvirt_set_error (error, VMS_LIBVIRT_ERROR_FAILED,
                         "the source domain %s is paused and did not resume",
                         migration->domain_name);
  return FALSE;
}

/* libvirt ends a cancelled incoming migration when it notices that its
 * client went away; this is long enough for that, short enough for a
 * rollback. */
#define INCOMING_TEARDOWN_TIMEOUT_US (30 * G_USEC_PER_SEC)

gboolean
vms_libvirt_migration_drop_incoming (VmsLibvirtMigration *migration,
                                     GError **error)
{
  gint64 deadline = g_get_monotonic_time () + INCOMING_TEARDOWN_TIMEOUT_US;

  if (!migration->destination)
    return TRUE;
  for (;;)
    {
      g_autoptr (virDomain) there = virDomainLookupByName (
          migration->destination, destination_name (migration));
      int state = VIR_DOMAIN_NOSTATE, reason = 0;

      if (!there || virDomainIsActive (there) != 1)
        return TRUE;
      if (virDomainGetState (there, &state, &reason, 0) == 0
          && (state == VIR_DOMAIN_RUNNING || state == VIR_DOMAIN_BLOCKED))
        {
          g_set_error (error, VMS_LIBVIRT_ERROR, VMS_LIBVIRT_ERROR_FAILED,
                       "the destination runs domain %s: check both hosts "
                       "('virsh list --all') before resuming the source",
                       destination_name (migration));
          return FALSE;
        }
      if (g_get_monotonic_time () > deadline)
        {
          /* Paused, never run: the source holds the VM. */
          if (virDomainDestroy (there) == 0)
            return TRUE;
          vms_libvirt_set_error (error, VMS_LIBVIRT_ERROR_FAILED,
                                 "destroying the incoming domain %s at %s",
                                 destination_name (migration),
                                 migration->dest_uri);
          return FALSE;
        }
      g_usleep (100 * 1000);
    }
}

/* ---- what --resume needs ---- */

static void
put (JsonObject *object, const char *name, const char *value)
{
  if (value)
    json_object_set_string_member (object, name, value);
}

void
vms_libvirt_migration_save (VmsLibvirtMigration *migration, VmsJob *job)
{
  VmsJobMigration *part = vms_job_get_migration (job);
  JsonObject *object = json_object_new ();

  put (object, "connect", migration->connect_uri);
  put (object, "domain", migration->domain_name);
  put (object, "destination", migration->dest_uri);
  put (object, "migrate-uri", migration->migrate_uri);
  put (object, "dname", migration->dname);
  put (object, "replica-dir", migration->replica_dir);
  json_object_set_boolean_member (object, "p2p", migration->p2p);
  json_object_set_boolean_member (object, "persistent", migration->persistent);
  json_object_set_boolean_member (object, "undefine-source",
                                  migration->undefine_source);
  json_object_set_boolean_member (object, "tls", migration->tls);
  if (part->libvirt)
    json_object_unref (part->libvirt);
  part->libvirt = object;
}

static void
take (JsonObject *object, const char *name, char **value)
{
  const char *saved
      = json_object_get_string_member_with_default (object, name, NULL);

  if (!*value && saved)
    *value = g_strdup (saved);
}

void
vms_libvirt_migration_load (VmsLibvirtMigration *migration, VmsJob *job)
{
  JsonObject *object = job->migration ? job->migration->libvirt : NULL;

  if (!object)
    return;
  take (object, "connect", &migration->connect_uri);
  take (object, "domain", &migration->domain_name);
  take (object, "destination", &migration->dest_uri);
  take (object, "migrate-uri", &migration->migrate_uri);
  take (object, "dname", &migration->dname);
  take (object, "replica-dir", &migration->replica_dir);
  migration->p2p
      |= json_object_get_boolean_member_with_default (object, "p2p", FALSE);
  migration->persistent |= json_object_get_boolean_member_with_default (
      object, "persistent", FALSE);
  migration->undefine_source |= json_object_get_boolean_member_with_default (
      object, "undefine-source", FALSE);
  migration->tls
      |= json_object_get_boolean_member_with_default (object, "tls", FALSE);
}
