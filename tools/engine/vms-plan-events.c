/* vmshift engine: a plan run's events, said, noted in the
 * plan's ledger, and given to the alert command.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-plan-run-internal.h"

static void
copy_member (JsonObject *object, const char *member, JsonNode *node,
             gpointer user_data)
{
  json_object_set_member (user_data, member, json_node_copy (node));
}

/* The group vm is in, or NULL. */
static const char *
group_of (const VmsPlan *plan, const char *vm)
{
  for (guint i = 0; i < plan->vms->len; i++)
    {
      const VmsPlanVm *one = plan->vms->pdata[i];

      if (g_str_equal (one->name, vm))
        return one->group;
    }
  return NULL;
}

/* Threads take turns on the output; each event says whose it is: the
 * VM's, and its group's. */
void
vms_plan_emit (Runner *runner, const char *vm, const char *event,
               JsonObject *fields, const char *text)
{
  g_autoptr (JsonObject) tagged = json_object_new ();
  g_autofree char *tagged_text
      = text && vm ? g_strdup_printf ("%s: %s", vm, text) : g_strdup (text);
  const char *group = vm ? group_of (runner->plan, vm) : NULL;

  if (fields)
    json_object_foreach_member (fields, copy_member, tagged);
  if (vm)
    json_object_set_string_member (tagged, "vm", vm);
  if (group && !json_object_has_member (tagged, "group"))
    json_object_set_string_member (tagged, "group", group);
  g_mutex_lock (&runner->lock);
  vms_progress_forward (runner->progress, event, tagged, tagged_text);
  g_mutex_unlock (&runner->lock);
  vms_plan_ledger_note (runner->ledger, vm, event, tagged);
}

/* Said as emit says it, and given to the alert command, with the VM's
 * name (vm: NULL for the plan's own), its group when group is not NULL,
 * and the text as "message"; fields are not taken. */
void
vms_plan_tell (Runner *runner, const char *vm, const char *group,
               const char *event, JsonObject *fields, const char *text)
{
  g_autoptr (JsonObject) alerted = NULL;
  g_autoptr (JsonNode) node = NULL;
  g_autofree char *line = NULL;

  vms_plan_emit (runner, vm, event, fields, text);
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
guint
vms_plan_count_migrated (GPtrArray *workers)
{
  guint migrated = 0;

  for (guint i = 0; i < workers->len; i++)
    migrated += ((const Worker *)workers->pdata[i])->migrated;
  return migrated;
}

typedef struct
{
  GAsyncResult *result; /* the communication's, once it ended */
  gboolean timed_out;
} AlertWait;

static void
on_alert_done (GObject *source, GAsyncResult *result, gpointer data)
{
  ((AlertWait *)data)->result = g_object_ref (result);
}

static gboolean
on_alert_timeout (gpointer data)
{
  ((AlertWait *)data)->timed_out = TRUE;
  return G_SOURCE_REMOVE;
}

/* child gets line on its stdin and ends within timeout_s, else it is
 * killed (a hung one would hold every later alert and the plan's end);
 * FALSE with error when not. */
static gboolean
communicate (GSubprocess *child, const char *line, guint timeout_s,
             GError **error)
{
  g_autoptr (GMainContext) context = g_main_context_new ();
  g_autoptr (GSource) timeout = g_timeout_source_new_seconds (timeout_s);
  AlertWait wait = { NULL, FALSE };
  gboolean ok;

  g_main_context_push_thread_default (context);
  g_source_set_callback (timeout, on_alert_timeout, &wait, NULL);
  g_source_attach (timeout, context);
  g_subprocess_communicate_utf8_async (child, line, NULL, on_alert_done, &wait);
  while (!wait.result && !wait.timed_out)
    g_main_context_iteration (context, TRUE);
  if (!wait.result)
    {
      g_subprocess_force_exit (child);
      while (!wait.result)
        g_main_context_iteration (context, TRUE);
    }
  g_source_destroy (timeout);
  ok = g_subprocess_communicate_utf8_finish (child, wait.result, NULL, NULL,
                                             error);
  g_object_unref (wait.result);
  g_main_context_pop_thread_default (context);
  if (wait.timed_out)
    {
      g_clear_error (error);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                   "it did not end within %u s and was killed", timeout_s);
      return FALSE;
    }
  return ok;
}

/* The plan's alert command gets each alert as one JSON line on its
 * stdin; it runs without a shell, one at a time, in a thread of its own:
 * a slow command never holds a migration up, and one that hangs is
 * killed.  Its failure is said, not fatal. */
static void
run_alert (Runner *runner, const char *line)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GSubprocess) child
      = g_subprocess_newv ((const char *const *)runner->plan->alert,
                           G_SUBPROCESS_FLAGS_STDIN_PIPE, &error);

  if (child && communicate (child, line, runner->plan->alert_timeout_s, &error))
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

    vms_plan_emit (runner, NULL, "warning", NULL, said);
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

void
vms_plan_alerts_start (Runner *runner)
{
  if (!runner->plan->alert)
    return;
  runner->alerts = g_async_queue_new ();
  runner->alerter = g_thread_new ("alerts", alerter_main, runner);
}

/* Every alert queued has run. */
void
vms_plan_alerts_finish (Runner *runner)
{
  if (!runner->alerter)
    return;
  g_async_queue_push (runner->alerts, (gpointer)alerts_end);
  g_thread_join (runner->alerter);
  g_async_queue_unref (runner->alerts);
}
