/* vmshift engine: a plan's VMs migrated unattended: the scheduler,
 * the deadline, the summary.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-plan-run-internal.h"
#include "vms-estimate-file.h"
#include "vms-migration.h"

/* ---- the deadline ---- */

/* When the VMs left would be done at the pace of those this run
 * migrated: their mean time each, as many at once as the concurrency. */
static GDateTime *
predict_end (const Runner *runner, GPtrArray *workers, guint left,
             double *per_vm)
{
  g_autoptr (GDateTime) now = g_date_time_new_now_utc ();
  guint timed = 0;
  double total = 0;
  guint64 waves;

  for (guint i = 0; i < workers->len; i++)
    {
      const Worker *worker = workers->pdata[i];

      if (worker->seconds > 0)
        {
          timed++;
          total += worker->seconds;
        }
    }
  if (!timed)
    return NULL;
  *per_vm = total / timed;
  waves = (left + runner->plan->concurrency - 1) / runner->plan->concurrency;
  return g_date_time_add_seconds (now, waves * *per_vm);
}

/* Once per run, when the deadline has passed with VMs left, or the pace
 * so far says it will: said, and alerted. */
static void
check_deadline (Runner *runner, GPtrArray *workers)
{
  const VmsPlan *plan = runner->plan;
  g_autoptr (GDateTime) now = g_date_time_new_now_utc ();
  g_autoptr (GDateTime) end = NULL;
  g_autofree char *deadline = NULL;
  g_autofree char *text = NULL;
  JsonObject *fields;
  guint left;
  double per_vm = 0;
  gboolean passed;

  if (!plan->deadline || runner->deadline_told)
    return;
  left = plan->vms->len - vms_plan_count_migrated (workers);
  passed = g_date_time_compare (now, plan->deadline) >= 0;
  if (!left
      || (!passed && !(end = predict_end (runner, workers, left, &per_vm))))
    return;
  if (!passed && g_date_time_compare (end, plan->deadline) <= 0)
    return;
  runner->deadline_told = TRUE;
  deadline = g_date_time_format_iso8601 (plan->deadline);
  fields = json_object_new ();
  json_object_set_string_member (fields, "deadline", deadline);
  json_object_set_int_member (fields, "vms-left", left);
  json_object_set_boolean_member (fields, "passed", passed);
  if (passed)
    text = g_strdup_printf ("plan %s: the deadline %s has passed with %u VMs "
                            "not migrated",
                            plan->path, deadline, left);
  else
    {
      g_autofree char *predicted = g_date_time_format_iso8601 (end);

      json_object_set_string_member (fields, "predicted-end", predicted);
      json_object_set_double_member (fields, "seconds-per-vm", per_vm);
      text = g_strdup_printf ("plan %s: predicted to end at %s, after the "
                              "deadline %s (%u VMs left, %.0f s each so "
                              "far, %" G_GUINT64_FORMAT " at once)",
                              plan->path, predicted, deadline, left, per_vm,
                              plan->concurrency);
    }
  vms_plan_tell (runner, NULL, NULL, "deadline-miss-predicted", fields, text);
  json_object_unref (fields);
}

/* ---- the plan ---- */

/* A unit that ended, joined; NULL when none did within a second. */
static Unit *
wait_for_one (Runner *runner)
{
  gint64 until = g_get_monotonic_time () + G_USEC_PER_SEC;
  Unit *unit;

  g_mutex_lock (&runner->lock);
  while (g_queue_is_empty (&runner->finished)
         && g_cond_wait_until (&runner->cond, &runner->lock, until))
    ;
  unit = g_queue_pop_head (&runner->finished);
  g_mutex_unlock (&runner->lock);
  if (unit)
    g_thread_join (unit->thread);
  return unit;
}

static Worker *
new_worker (Runner *runner, const VmsPlanVm *vm, GPtrArray *workers)
{
  Worker *worker = g_new0 (Worker, 1);

  worker->runner = runner;
  worker->vm = vm;
  worker->stopped_at_us = worker->running_at_us = worker->downtime_ms = -1;
  g_ptr_array_add (workers, worker);
  return worker;
}

/* VMs a unit copies at once: a group all its members, but never more
 * than the concurrency (alone, it always runs). */
static guint
unit_weight (const Runner *runner, const VmsPlanVm *vm)
{
  if (!vm->group)
    return 1;
  return MIN (vms_plan_find_group (runner->plan, vm->group)->members->len,
              runner->plan->concurrency);
}

/* The unit vm starts: the VM on its own, or its whole group. */
static Unit *
start_unit (Runner *runner, const VmsPlanVm *vm, GPtrArray *workers,
            GPtrArray *groups)
{
  const VmsPlanGroup *group;
  GroupRun *run;

  if (!vm->group)
    {
      Worker *worker = new_worker (runner, vm, workers);

      worker->unit.weight = unit_weight (runner, vm);
      worker->unit.thread = g_thread_new (vm->name, vms_plan_vm_main, worker);
      return &worker->unit;
    }
  group = vms_plan_find_group (runner->plan, vm->group);
  run = g_new0 (GroupRun, 1);
  run->runner = runner;
  run->group = group;
  run->members = g_ptr_array_new ();
  for (guint i = 0; i < group->members->len; i++)
    {
      Worker *member = new_worker (runner, group->members->pdata[i], workers);

      member->group = run;
      g_ptr_array_add (run->members, member);
    }
  run->unit.weight = unit_weight (runner, vm);
  g_ptr_array_add (groups, run);
  run->unit.thread = g_thread_new (group->name, vms_plan_group_main, run);
  return &run->unit;
}

/* A group's members after its first were started with it. */
static gboolean
started_with_group (const VmsPlanVm *vm, GPtrArray *groups)
{
  for (guint i = 0; vm->group && i < groups->len; i++)
    if (g_str_equal (((GroupRun *)groups->pdata[i])->group->name, vm->group))
      return TRUE;
  return FALSE;
}

static gboolean
summarize (Runner *runner, GPtrArray *workers, GError **error)
{
  g_autoptr (GString) failed = g_string_new (NULL);
  guint n_failed = 0, n_earlier = 0, n_migrated = 0;
  guint n_vms = runner->plan->vms->len;
  JsonObject *fields = json_object_new ();
  g_autofree char *text = NULL;

  for (guint i = 0; i < workers->len; i++)
    {
      const Worker *worker = workers->pdata[i];

      n_earlier += worker->earlier;
      n_migrated += worker->migrated;
      if (worker->migrated)
        continue;
      n_failed++;
      g_string_append_printf (failed, "%s%s (%s)", failed->len ? "; " : "",
                              worker->vm->name, worker->error_message);
    }
  json_object_set_int_member (fields, "vms", n_vms);
  json_object_set_int_member (fields, "migrated", n_migrated);
  json_object_set_int_member (fields, "migrated-earlier", n_earlier);
  json_object_set_int_member (fields, "failed", n_failed);
  /* Those a stop kept from starting. */
  json_object_set_int_member (fields, "not-started", n_vms - workers->len);
  text = g_strdup_printf ("plan %s: %u of %u VMs migrated (%u by an "
                          "earlier run), %u failed, %u not started",
                          runner->plan->path, n_migrated, n_vms, n_earlier,
                          n_failed, n_vms - workers->len);
  vms_plan_tell (runner, NULL, NULL, "plan-done", fields, text);
  json_object_unref (fields);
  if (g_cancellable_set_error_if_cancelled (runner->cancellable, error))
    return FALSE;
  if (!n_failed)
    return TRUE;
  g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_FAILED,
               "%u of %u VMs did not migrate: %s", n_failed, n_vms,
               failed->str);
  return FALSE;
}

/* A ledger that cannot be read is said and left alone (it serves plan
 * status, not the migrations). */
static void
open_ledger (Runner *runner)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *text = NULL;

  runner->ledger
      = vms_plan_ledger_open (runner->state_dir, runner->plan->path, &error);
  if (runner->ledger)
    return;
  text = g_strdup_printf ("%s: not written by this run (plan status lacks "
                          "the times and downtimes it keeps)",
                          error->message);
  vms_plan_emit (runner, NULL, "warning", NULL, text);
}

gboolean
vms_plan_run (const VmsPlan *plan, const char *state_dir, VmsProgress *progress,
              GCancellable *cancellable, GError **error)
{
  Runner runner = { plan, state_dir, progress, cancellable };
  g_autoptr (GPtrArray) workers
      = g_ptr_array_new_with_free_func ((GDestroyNotify)vms_plan_worker_free);
  g_autoptr (GPtrArray) groups = g_ptr_array_new_with_free_func (
      (GDestroyNotify)vms_plan_group_run_free);
  g_auto (GStrv) order = NULL;
  g_autoptr (GPtrArray) vms = NULL;
  guint next = 0, running = 0;
  gboolean ok;
  Unit *unit;

  if (plan->estimate
      && !(order
           = vms_estimate_file_load_order (state_dir, plan->estimate, error)))
    return FALSE;
  runner.estimate_order = (const char *const *)order;
  vms = vms_plan_run_order (plan, runner.estimate_order);
  g_mutex_init (&runner.lock);
  g_cond_init (&runner.cond);
  g_queue_init (&runner.finished);
  open_ledger (&runner);
  vms_plan_alerts_start (&runner);
  while (next < vms->len || running > 0)
    {
      while (next < vms->len && !g_cancellable_is_cancelled (cancellable))
        {
          const VmsPlanVm *vm = vms->pdata[next];
          guint weight = unit_weight (&runner, vm);

          if (started_with_group (vm, groups))
            {
              next++;
              continue;
            }
          if (running > 0 && running + weight > plan->concurrency)
            break;
          running += start_unit (&runner, vm, workers, groups)->weight;
          next++;
        }
      if (!running)
        break;
      /* The deadline is looked at every second, and as units end. */
      check_deadline (&runner, workers);
      unit = wait_for_one (&runner);
      if (unit)
        running -= unit->weight;
    }
  ok = summarize (&runner, workers, error);
  vms_plan_alerts_finish (&runner);
  vms_plan_ledger_free (runner.ledger);
  g_cond_clear (&runner.cond);
  g_mutex_clear (&runner.lock);
  return ok;
}
