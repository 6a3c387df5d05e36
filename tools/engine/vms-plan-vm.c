/* vmshift engine: one VM of a plan: its migration's config,
 * its attempts, its end.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-plan-run-internal.h"

#include "vms-job.h"
#include "vms-migration.h"
#include "vms-path.h"

void
vms_plan_worker_free (Worker *worker)
{
  g_free (worker->error_message);
  g_free (worker);
}

static void
on_migration_event (const char *event, JsonObject *fields, const char *text,
                    gpointer user_data)
{
  Worker *worker = user_data;

  /* A group's report lays its members' pauses side by side. */
  if (g_str_equal (event, "migrated") && fields)
    {
      worker->stopped_at_us = json_object_get_int_member_with_default (
          fields, "stopped-at-us", -1);
      worker->running_at_us = json_object_get_int_member_with_default (
          fields, "running-at-us", -1);
      worker->downtime_ms
          = json_object_get_int_member_with_default (fields, "downtime-ms", -1);
    }
  /* Told before the switchover, while something can still be done. */
  if (g_str_equal (event, "downtime-miss-predicted") && fields)
    vms_plan_tell (worker->runner, worker->vm->name,
                   worker->group ? worker->group->group->name : NULL, event,
                   fields, text);
  else
    vms_plan_emit (worker->runner, worker->vm->name, event, fields, text);
}

/* The config of the VM's migration: a new job named after it, or the
 * resume of that job. */
static void
build_config (const Runner *runner, const VmsPlanVm *vm, gboolean resume,
              VmsMigrationConfig *config)
{
  const VmsPlan *plan = runner->plan;
  VmsMigrateFinalSync mode;

  vms_migration_config_init (config);
  config->copy.state_dir = g_strdup (runner->state_dir);
  config->copy.sink = g_strdup (vm->sink);
  config->copy.replica_prefix = g_strdup (vm->name);
  if (resume)
    config->copy.resume = g_strdup (vm->name);
  else
    config->copy.job_id = g_strdup (vm->name);
  /* Its link's budget (or the plan's), shared evenly by the VMs that
   * may copy at once. */
  config->copy.max_bandwidth = config->bandwidth
      = vms_plan_vm_bandwidth (plan, vm);
  config->max_downtime_ms = vm->max_downtime_ms;
  /* A group's pause holds each member's: no member may take longer. */
  if (vm->group)
    {
      const VmsPlanGroup *group = vms_plan_find_group (plan, vm->group);

      if (group && group->max_downtime_ms)
        config->max_downtime_ms
            = MIN ((guint64)config->max_downtime_ms, group->max_downtime_ms);
    }
  /* auto is the default, which leaves a resumed job's own choice. */
  if (vms_migrate_final_sync_parse (vm->final_sync, &mode)
      && mode != VMS_MIGRATE_FINAL_AUTO)
    {
      config->mode = mode;
      config->mode_set = TRUE;
    }
  config->tls = vm->tls;
  config->insecure = vm->insecure;
  config->suspend = vm->suspend;
  config->hold_on_miss = vm->hold_on_miss;
  vms_replicate_config_set_backpressure (&config->copy, &vm->backpressure);
  /* Reported against its prediction, when the estimate has one. */
  if (plan->estimate && vms_plan_vm_in_order (vm, runner->estimate_order) >= 0)
    config->estimate = g_strdup (plan->estimate);
  if (vm->domain)
    {
      config->libvirt.connect_uri = vms_path_absolute_libvirt_uri (vm->connect);
      config->libvirt.domain = g_strdup (vm->domain);
      config->libvirt.dest_uri = vms_path_absolute_libvirt_uri (vm->dest);
      config->libvirt.migrate_uri = g_strdup (vm->migrate_uri);
      config->libvirt.persistent = vm->persistent;
      config->libvirt.undefine_source = vm->undefine_source;
      return;
    }
  config->source = resume ? NULL : vms_path_absolute_qmp_address (vm->source);
  config->dest_qmp = vms_path_absolute_qmp_address (vm->dest_qmp);
  config->dest_uri = vms_path_absolute_migration_uri (vm->dest_uri);
}

/* What an earlier run left of the VM's job: whether there is one, and
 * whether it committed.  FALSE when it cannot be read. */
gboolean
vms_plan_vm_look_at_job (Worker *worker, gboolean *exists, gboolean *migrated,
                         GError **error)
{
  g_autoptr (GError) local = NULL;
  g_autoptr (VmsJob) job
      = vms_job_load (worker->runner->state_dir, worker->vm->name, &local);

  *exists = job != NULL;
  *migrated = job && job->phase == VMS_JOB_PHASE_MIGRATED;
  if (job || g_error_matches (local, VMS_JOB_ERROR, VMS_JOB_ERROR_NOT_FOUND))
    return TRUE;
  g_propagate_error (error, g_steal_pointer (&local));
  return FALSE;
}

/* One attempt at the VM's migration; a group's member runs under the
 * group's cancellable, which its failure cancels. */
gboolean
vms_plan_vm_attempt (Worker *worker, gboolean resume, VmsGroup *group,
                     GError **error)
{
  VmsMigrationConfig config;
  g_autoptr (VmsMigration) migration = NULL;
  JsonObject *fields = json_object_new ();
  gint64 started_us;

  json_object_set_int_member (fields, "attempt", worker->attempts);
  json_object_set_boolean_member (fields, "resume", resume);
  if (group)
    json_object_set_string_member (fields, "group", vms_group_get_name (group));
  vms_plan_emit (worker->runner, worker->vm->name, "plan-vm-start", fields,
                 resume ? "resuming its job" : "starting");
  json_object_unref (fields);
  worker->stopped_at_us = worker->running_at_us = worker->downtime_ms = -1;
  build_config (worker->runner, worker->vm, resume, &config);
  if (group)
    config.group = vms_group_ref (group);
  migration = vms_migration_new (&config, on_migration_event, worker);
  vms_migration_config_clear (&config);
  started_us = g_get_monotonic_time ();
  if (!vms_migration_run (migration,
                          group ? vms_group_get_cancellable (group)
                                : worker->runner->cancellable,
                          error))
    return FALSE;
  worker->seconds = (g_get_monotonic_time () - started_us) / 1e6;
  return TRUE;
}

/* The VM's end, said and alerted. */
void
vms_plan_vm_report_end (Worker *worker)
{
  JsonObject *fields = json_object_new ();
  const char *outcome = !worker->migrated ? "failed"
                        : worker->earlier ? "migrated-earlier"
                                          : "migrated";
  g_autofree char *text
      = worker->error_message
            ? g_strdup_printf (
                "did not migrate after %u attempt%s: %s", worker->attempts,
                worker->attempts == 1 ? "" : "s", worker->error_message)
            : g_strdup_printf ("%s", worker->earlier
                                         ? "migrated by an earlier run"
                                         : "migrated");

  json_object_set_string_member (fields, "outcome", outcome);
  json_object_set_int_member (fields, "attempts", worker->attempts);
  if (worker->group)
    json_object_set_string_member (fields, "group", worker->group->group->name);
  if (worker->error_message)
    json_object_set_string_member (fields, "error", worker->error_message);
  vms_plan_tell (worker->runner, worker->vm->name, NULL, "plan-vm", fields,
                 text);
  json_object_unref (fields);
}

void
vms_plan_unit_finished (Runner *runner, Unit *unit)
{
  g_mutex_lock (&runner->lock);
  g_queue_push_tail (&runner->finished, unit);
  g_cond_signal (&runner->cond);
  g_mutex_unlock (&runner->lock);
}

gpointer
vms_plan_vm_main (gpointer data)
{
  Worker *worker = data;
  Runner *runner = worker->runner;
  guint tries = 1 + runner->plan->retries;

  while (worker->attempts < tries
         && !g_cancellable_is_cancelled (runner->cancellable))
    {
      g_autoptr (GError) error = NULL;
      gboolean exists = FALSE, committed = FALSE;

      if (vms_plan_vm_look_at_job (worker, &exists, &committed, &error)
          && committed)
        {
          worker->migrated = TRUE;
          worker->earlier = worker->attempts == 0;
          break;
        }
      worker->attempts++;
      if (!error && vms_plan_vm_attempt (worker, exists, NULL, &error))
        {
          worker->migrated = TRUE;
          break;
        }
      g_free (worker->error_message);
      worker->error_message = g_strdup (error->message);
    }
  if (worker->migrated)
    g_clear_pointer (&worker->error_message, g_free);
  else if (!worker->error_message)
    worker->error_message = g_strdup ("the plan was stopped");
  vms_plan_vm_report_end (worker);
  vms_plan_unit_finished (runner, &worker->unit);
  return NULL;
}
