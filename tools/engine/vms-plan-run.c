/* vmshift engine: a plan's VMs migrated unattended.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-plan-run.h"
#include "vms-job.h"
#include "vms-migration.h"
#include "vms-path.h"
#include "vms-plan-ledger.h"

#include <json-glib/json-glib.h>

typedef struct Runner Runner;
typedef struct GroupRun GroupRun;

/* What the scheduler starts and joins: a VM on its own, or a group. */
typedef struct
{
  GThread *thread;
  guint weight; /* VMs it copies at once */
} Unit;

/* One VM's thread and what became of it. */
typedef struct
{
  Unit unit; /* on its own; a member's thread is its group's */
  Runner *runner;
  const VmsPlanVm *vm;
  GroupRun *group;     /* its group's run, or NULL */
  GThread *thread;     /* a member's attempt */
  gboolean migrated;   /* the destination runs it */
  gboolean earlier;    /* ... since an earlier run of the plan */
  guint attempts;      /* made by this run */
  char *error_message; /* the last attempt's failure, or NULL */
  gint64 stopped_at_us; /* its switchover, from "migrated": the source's */
  gint64 running_at_us; /* STOP and the destination running, -1 */
  gint64 downtime_ms;   /* that pause, -1: not known */
  double seconds;       /* its migration took, in this run; 0: none */
} Worker;

/* A group's thread: its members' attempts, together. */
struct GroupRun
{
  Unit unit;
  Runner *runner;
  const VmsPlanGroup *group;
  GPtrArray *members;  /* Worker* (the runner's) */
  VmsGroup *current;   /* the attempt's, while it runs */
  guint attempts;      /* made by this run */
  char *error_message; /* why the last attempt rolled back, or NULL */
};

struct Runner
{
  const VmsPlan *plan;
  const char *state_dir;
  VmsProgress *progress;
  GCancellable *cancellable;
  GMutex lock;     /* the progress output, and finished */
  GCond cond;      /* signalled when a unit is finished */
  GQueue finished; /* Unit*: ended, not yet joined */
  gboolean deadline_told; /* a miss of the deadline was said */
  GAsyncQueue *alerts; /* lines for the alert command, or NULL */
  VmsPlanLedger *ledger; /* what plan status reads, or NULL */
  GThread *alerter;    /* runs them, or NULL */
};

static void
worker_free (Worker *worker)
{
  g_free (worker->error_message);
  g_free (worker);
}

static void
group_run_free (GroupRun *run)
{
  g_ptr_array_unref (run->members);
  g_free (run->error_message);
  g_free (run);
}

/* ---- events ---- */

static void
copy_member (JsonObject *object, const char *member, JsonNode *node,
             gpointer user_data)
{
  json_object_set_member (user_data, member, json_node_copy (node));
}

/* Threads take turns on the output; each event says whose it is. */
static void
emit (Runner *runner, const char *vm, const char *event, JsonObject *fields,
      const char *text)
{
  g_autoptr (JsonObject) tagged = json_object_new ();
  g_autofree char *tagged_text
      = text && vm ? g_strdup_printf ("%s: %s", vm, text) : g_strdup (text);

  if (fields)
    json_object_foreach_member (fields, copy_member, tagged);
  if (vm)
    json_object_set_string_member (tagged, "vm", vm);
  g_mutex_lock (&runner->lock);
  vms_progress_forward (runner->progress, event, tagged, tagged_text);
  g_mutex_unlock (&runner->lock);
  vms_plan_ledger_note (runner->ledger, vm, event, tagged);
}

/* Said as emit says it, and given to the alert command, with the VM's
 * name (vm: NULL for the plan's own), its group when group is not NULL,
 * and the text as "message"; fields are not taken. */
static void
tell (Runner *runner, const char *vm, const char *group, const char *event,
      JsonObject *fields, const char *text)
{
  g_autoptr (JsonObject) alerted = NULL;
  g_autoptr (JsonNode) node = NULL;
  g_autofree char *line = NULL;

  emit (runner, vm, event, fields, text);
  if (!runner->plan->alert)
    return;
  alerted = json_object_new ();
  json_object_foreach_member (fields, copy_member, alerted);
  if (vm)
    json_object_set_string_member (alerted, "vm", vm);
  if (group)
    json_object_set_string_member (alerted, "group", group);
  if (text)
    json_object_set_string_member (alerted, "message", text);
  json_object_set_string_member (alerted, "event", event);
  node = json_node_new (JSON_NODE_OBJECT);
  json_node_set_object (node, alerted);
  line = json_to_string (node, FALSE);
  /* The alerts' thread (below) runs the command. */
  g_async_queue_push (runner->alerts, g_strconcat (line, "\n", NULL));
}

/* How many of workers (Worker*) migrated. */
static guint
count_migrated (GPtrArray *workers)
{
  guint migrated = 0;

  for (guint i = 0; i < workers->len; i++)
    migrated += ((const Worker *)workers->pdata[i])->migrated;
  return migrated;
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
    tell (worker->runner, worker->vm->name,
          worker->group ? worker->group->group->name : NULL, event, fields,
          text);
  else
    emit (worker->runner, worker->vm->name, event, fields, text);
}

/* The plan's alert command gets each alert as one JSON line on its
 * stdin; it runs without a shell, one at a time, in a thread of its own:
 * a slow command never holds a migration up.  Its failure is said, not
 * fatal. */
static void
run_alert (Runner *runner, const char *line)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GSubprocess) child
      = g_subprocess_newv ((const char *const *)runner->plan->alert,
                           G_SUBPROCESS_FLAGS_STDIN_PIPE, &error);

  if (child
      && g_subprocess_communicate_utf8 (child, line, NULL, NULL, NULL, &error))
    {
      if (g_subprocess_get_if_exited (child)
          && g_subprocess_get_exit_status (child) == 0)
        return;
      error = g_error_new (G_IO_ERROR, G_IO_ERROR_FAILED,
                           "it ended with status %d",
                           g_subprocess_get_status (child));
    }
  {
    g_autofree char *said
        = g_strdup_printf ("plan: the alert command %s failed: %s",
                           runner->plan->alert[0], error->message);

    emit (runner, NULL, "warning", NULL, said);
  }
}

/* The end of the queue: no alert follows. */
static const char alerts_end[] = "";

static gpointer
alerter_main (gpointer data)
{
  Runner *runner = data;

  for (;;)
    {
      char *line = g_async_queue_pop (runner->alerts);

      if (line == alerts_end)
        return NULL;
      run_alert (runner, line);
      g_free (line);
    }
}

static void
start_alerts (Runner *runner)
{
  if (!runner->plan->alert)
    return;
  runner->alerts = g_async_queue_new ();
  runner->alerter = g_thread_new ("alerts", alerter_main, runner);
}

/* Every alert queued has run. */
static void
finish_alerts (Runner *runner)
{
  if (!runner->alerter)
    return;
  g_async_queue_push (runner->alerts, (gpointer)alerts_end);
  g_thread_join (runner->alerter);
  g_async_queue_unref (runner->alerts);
}

/* ---- one VM ---- */

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
static gboolean
look_at_job (Worker *worker, gboolean *exists, gboolean *migrated,
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
static gboolean
attempt (Worker *worker, gboolean resume, VmsGroup *group, GError **error)
{
  VmsMigrationConfig config;
  g_autoptr (VmsMigration) migration = NULL;
  JsonObject *fields = json_object_new ();
  gint64 started_us;

  json_object_set_int_member (fields, "attempt", worker->attempts);
  json_object_set_boolean_member (fields, "resume", resume);
  if (group)
    json_object_set_string_member (fields, "group", vms_group_get_name (group));
  emit (worker->runner, worker->vm->name, "plan-vm-start", fields,
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
static void
report_end (Worker *worker)
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
  tell (worker->runner, worker->vm->name, NULL, "plan-vm", fields, text);
  json_object_unref (fields);
}

static void
unit_finished (Runner *runner, Unit *unit)
{
  g_mutex_lock (&runner->lock);
  g_queue_push_tail (&runner->finished, unit);
  g_cond_signal (&runner->cond);
  g_mutex_unlock (&runner->lock);
}

static gpointer
worker_main (gpointer data)
{
  Worker *worker = data;
  Runner *runner = worker->runner;
  guint tries = 1 + runner->plan->retries;

  while (worker->attempts < tries
         && !g_cancellable_is_cancelled (runner->cancellable))
    {
      g_autoptr (GError) error = NULL;
      gboolean exists = FALSE, committed = FALSE;

      if (look_at_job (worker, &exists, &committed, &error) && committed)
        {
          worker->migrated = TRUE;
          worker->earlier = worker->attempts == 0;
          break;
        }
      worker->attempts++;
      if (!error && attempt (worker, exists, NULL, &error))
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
  report_end (worker);
  unit_finished (runner, &worker->unit);
  return NULL;
}

/* ---- a group ---- */

/* One member's attempt, in a thread of its own: its failure fails the
 * group, which stops the others. */
static gpointer
member_main (gpointer data)
{
  Worker *worker = data;
  VmsGroup *group = worker->group->current;
  g_autoptr (GError) error = NULL;
  gboolean exists = FALSE, committed = FALSE;

  worker->attempts++;
  if (look_at_job (worker, &exists, &committed, &error)
      && attempt (worker, exists, group, &error))
    {
      worker->migrated = TRUE;
      g_clear_pointer (&worker->error_message, g_free);
      return NULL;
    }
  g_free (worker->error_message);
  worker->error_message = g_strdup (error->message);
  vms_group_fail (group, worker->vm->name, error->message);
  return NULL;
}

static void
on_plan_cancelled (GCancellable *cancellable, gpointer data)
{
  vms_group_fail (data, "plan", "the plan was stopped");
}

/* The members an earlier attempt or run has not migrated; NULL when a
 * job cannot be read. */
static GPtrArray *
members_left (GroupRun *run, GError **error)
{
  g_autoptr (GPtrArray) left = g_ptr_array_new ();

  for (guint i = 0; i < run->members->len; i++)
    {
      Worker *worker = run->members->pdata[i];
      gboolean exists = FALSE, committed = FALSE;

      if (worker->migrated)
        continue;
      if (!look_at_job (worker, &exists, &committed, error))
        return NULL;
      worker->migrated = committed;
      worker->earlier = committed && run->attempts == 0;
      if (!committed)
        g_ptr_array_add (left, worker);
    }
  return g_steal_pointer (&left);
}

static void
report_group_start (GroupRun *run, GPtrArray *left)
{
  JsonObject *fields = json_object_new ();
  JsonArray *names = json_array_new ();
  g_autoptr (GString) text = g_string_new (NULL);

  for (guint i = 0; i < left->len; i++)
    {
      const Worker *worker = left->pdata[i];

      json_array_add_string_element (names, worker->vm->name);
      g_string_append_printf (text, "%s%s", i ? ", " : "", worker->vm->name);
    }
  json_object_set_string_member (fields, "group", run->group->name);
  json_object_set_int_member (fields, "attempt", run->attempts);
  json_object_set_array_member (fields, "members", names);
  g_string_prepend (text, ": migrating together: ");
  g_string_prepend (text, run->group->name);
  g_string_prepend (text, "group ");
  emit (run->runner, NULL, "plan-group-start", fields, text->str);
  json_object_unref (fields);
}

/* Every member left migrates, or the group rolls back. */
static gboolean
group_attempt (GroupRun *run, GPtrArray *left, GError **error)
{
  g_autofree const char **names = g_new0 (const char *, left->len + 1);
  g_autoptr (VmsGroup) group = NULL;
  g_autofree char *failure = NULL;
  GCancellable *plan_cancellable = run->runner->cancellable;
  gulong handler = 0;

  for (guint i = 0; i < left->len; i++)
    names[i] = ((Worker *)left->pdata[i])->vm->name;
  group = vms_group_new (run->group->name, names, run->group->hold_s,
                         VMS_GROUP_DEFAULT_WINDOW_S);
  run->current = group;
  if (plan_cancellable)
    handler = g_cancellable_connect (
        plan_cancellable, G_CALLBACK (on_plan_cancelled), group, NULL);
  for (guint i = 0; i < left->len; i++)
    {
      Worker *worker = left->pdata[i];

      worker->thread = g_thread_new (worker->vm->name, member_main, worker);
    }
  for (guint i = 0; i < left->len; i++)
    g_thread_join (g_steal_pointer (&((Worker *)left->pdata[i])->thread));
  if (plan_cancellable)
    g_cancellable_disconnect (plan_cancellable, handler);
  run->current = NULL;
  if (count_migrated (left) == left->len)
    return TRUE;
  failure = vms_group_dup_failure (group);
  g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_FAILED,
               "group %s rolled back: %s", run->group->name,
               failure ? failure : "a member did not migrate");
  return FALSE;
}

/* The span of the members' pauses (first STOP to last running) and
 * between their STOPs; FALSE when a member's is not known. */
static gboolean
group_pauses (GroupRun *run, gint64 *downtime_ms, gint64 *spread_ms)
{
  gint64 first_stop = G_MAXINT64, last_stop = 0, last_running = 0;

  for (guint i = 0; i < run->members->len; i++)
    {
      const Worker *worker = run->members->pdata[i];

      if (!worker->migrated || worker->earlier || worker->stopped_at_us < 0
          || worker->running_at_us < 0)
        return FALSE;
      first_stop = MIN (first_stop, worker->stopped_at_us);
      last_stop = MAX (last_stop, worker->stopped_at_us);
      last_running = MAX (last_running, worker->running_at_us);
    }
  *downtime_ms = (last_running - first_stop) / 1000;
  *spread_ms = (last_stop - first_stop) / 1000;
  return run->members->len > 0;
}

static void
report_group_end (GroupRun *run)
{
  JsonObject *fields = json_object_new ();
  guint migrated = count_migrated (run->members);
  gint64 downtime_ms = -1, spread_ms = -1;
  g_autofree char *text = NULL;

  json_object_set_string_member (fields, "group", run->group->name);
  json_object_set_string_member (fields, "outcome",
                                 migrated == run->members->len ? "migrated"
                                 : migrated                    ? "split"
                                                               : "failed");
  json_object_set_int_member (fields, "attempts", run->attempts);
  json_object_set_int_member (fields, "members", run->members->len);
  json_object_set_int_member (fields, "migrated", migrated);
  if (group_pauses (run, &downtime_ms, &spread_ms))
    {
      json_object_set_int_member (fields, "group-downtime-ms", downtime_ms);
      json_object_set_int_member (fields, "switchover-spread-ms", spread_ms);
      if (run->group->max_downtime_ms)
        json_object_set_boolean_member (fields, "downtime-objective-met",
                                        (guint64)downtime_ms
                                            <= run->group->max_downtime_ms);
    }
  if (run->error_message && migrated < run->members->len)
    json_object_set_string_member (fields, "error", run->error_message);
  if (migrated == run->members->len && downtime_ms >= 0)
    text = g_strdup_printf ("group %s: %u members migrated together; group "
                            "downtime %" G_GINT64_FORMAT " ms (first STOP to "
                            "last RESUME), switchovers %" G_GINT64_FORMAT
                            " ms apart",
                            run->group->name, migrated, downtime_ms, spread_ms);
  else
    text = g_strdup_printf (
        "group %s: %u of %u members migrated%s%s", run->group->name, migrated,
        run->members->len, run->error_message ? ": " : "",
        run->error_message && migrated < run->members->len ? run->error_message
                                                           : "");
  tell (run->runner, NULL, NULL, "plan-group", fields, text);
  json_object_unref (fields);
}

static gpointer
group_main (gpointer data)
{
  GroupRun *run = data;
  Runner *runner = run->runner;
  guint tries = 1 + runner->plan->retries;

  while (run->attempts < tries
         && !g_cancellable_is_cancelled (runner->cancellable))
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (GPtrArray) left = members_left (run, &error);

      if (left && !left->len)
        break;
      if (left)
        {
          run->attempts++;
          report_group_start (run, left);
          if (group_attempt (run, left, &error))
            break;
        }
      g_free (run->error_message);
      run->error_message = g_strdup (error->message);
      if (!left)
        break;
    }
  for (guint i = 0; i < run->members->len; i++)
    {
      Worker *worker = run->members->pdata[i];

      if (worker->migrated)
        g_clear_pointer (&worker->error_message, g_free);
      else if (!worker->error_message)
        worker->error_message = g_strdup (
            run->error_message ? run->error_message : "the plan was stopped");
      report_end (worker);
    }
  report_group_end (run);
  unit_finished (runner, &run->unit);
  return NULL;
}

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
  left = plan->vms->len - count_migrated (workers);
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
  tell (runner, NULL, NULL, "deadline-miss-predicted", fields, text);
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
      worker->unit.thread = g_thread_new (vm->name, worker_main, worker);
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
  run->unit.thread = g_thread_new (group->name, group_main, run);
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
  tell (runner, NULL, NULL, "plan-done", fields, text);
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
  emit (runner, NULL, "warning", NULL, text);
}

gboolean
vms_plan_run (const VmsPlan *plan, const char *state_dir, VmsProgress *progress,
              GCancellable *cancellable, GError **error)
{
  Runner runner = { plan, state_dir, progress, cancellable };
  g_autoptr (GPtrArray) workers
      = g_ptr_array_new_with_free_func ((GDestroyNotify)worker_free);
  g_autoptr (GPtrArray) groups
      = g_ptr_array_new_with_free_func ((GDestroyNotify)group_run_free);
  guint next = 0, running = 0;
  gboolean ok;
  Unit *unit;

  g_mutex_init (&runner.lock);
  g_cond_init (&runner.cond);
  g_queue_init (&runner.finished);
  open_ledger (&runner);
  start_alerts (&runner);
  while (next < plan->vms->len || running > 0)
    {
      while (next < plan->vms->len && !g_cancellable_is_cancelled (cancellable))
        {
          const VmsPlanVm *vm = plan->vms->pdata[next];
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
  finish_alerts (&runner);
  vms_plan_ledger_free (runner.ledger);
  g_cond_clear (&runner.cond);
  g_mutex_clear (&runner.lock);
  return ok;
}
