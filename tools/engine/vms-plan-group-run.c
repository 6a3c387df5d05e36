/* vmshift engine: a plan's group: its members migrated
 * together, retried as one, and its report.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-plan-run-internal.h"

#include "vms-migration.h"

void
vms_plan_group_run_free (GroupRun *run)
{
  g_ptr_array_unref (run->members);
  g_free (run->error_message);
  g_free (run);
}

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
  if (vms_plan_vm_look_at_job (worker, &exists, &committed, &error)
      && vms_plan_vm_attempt (worker, exists, group, &error))
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
      if (!vms_plan_vm_look_at_job (worker, &exists, &committed, error))
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
  vms_plan_emit (run->runner, NULL, "plan-group-start", fields, text->str);
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
  if (vms_plan_count_migrated (left) == left->len)
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
  guint migrated = vms_plan_count_migrated (run->members);
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
  vms_plan_tell (run->runner, NULL, NULL, "plan-group", fields, text);
  json_object_unref (fields);
}

gpointer
vms_plan_group_main (gpointer data)
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
      vms_plan_vm_report_end (worker);
    }
  report_group_end (run);
  vms_plan_unit_finished (runner, &run->unit);
  return NULL;
}
