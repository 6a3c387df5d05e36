/* vmshift engine: a plan's VMs migrated unattended.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-plan-run.h"
#include "vms-job.h"
#include "vms-migration.h"
#include "vms-path.h"

#include <json-glib/json-glib.h>

typedef struct Runner Runner;

/* One VM's thread and what became of it. */
typedef struct
{
  Runner *runner;
  const VmsPlanVm *vm;
  GThread *thread;
  gboolean migrated;   /* the destination runs it */
  gboolean earlier;    /* ... since an earlier run of the plan */
  guint attempts;      /* made by this run */
  char *error_message; /* the last attempt's failure, or NULL */
} Worker;

struct Runner
{
  const VmsPlan *plan;
  const char *state_dir;
  VmsProgress *progress;
  GCancellable *cancellable;
  GMutex lock;     /* the progress output, and finished */
  GCond cond;      /* signalled when a worker is finished */
  GQueue finished; /* Worker*: ended, not yet joined */
};

static void
worker_free (Worker *worker)
{
  g_free (worker->error_message);
  g_free (worker);
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
}

static void
on_migration_event (const char *event, JsonObject *fields, const char *text,
                    gpointer user_data)
{
  Worker *worker = user_data;

  emit (worker->runner, worker->vm->name, event, fields, text);
}

/* The plan's alert command gets event as one JSON line on its stdin; it
 * runs without a shell.  Its failure is said, not fatal. */
static void
alert (Runner *runner, const char *event, JsonObject *fields)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GSubprocess) child = NULL;
  g_autoptr (JsonNode) node = json_node_new (JSON_NODE_OBJECT);
  g_autofree char *line = NULL;
  g_autofree char *text = NULL;

  if (!runner->plan->alert)
    return;
  json_object_set_string_member (fields, "event", event);
  json_node_set_object (node, fields);
  text = json_to_string (node, FALSE);
  line = g_strconcat (text, "\n", NULL);
  child = g_subprocess_newv ((const char *const *)runner->plan->alert,
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
  /* The budget shared evenly by the VMs that may copy at once. */
  if (plan->bandwidth)
    config->copy.max_bandwidth = config->bandwidth
        = MAX (plan->bandwidth / plan->concurrency, 1024);
  config->max_downtime_ms = vm->max_downtime_ms;
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
  if (vm->domain)
    {
      config->libvirt.connect_uri = vms_path_absolute_libvirt_uri (vm->connect);
      config->libvirt.domain = g_strdup (vm->domain);
      config->libvirt.dest_uri = vms_path_absolute_libvirt_uri (vm->dest);
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

static gboolean
attempt (Worker *worker, gboolean resume, GError **error)
{
  VmsMigrationConfig config;
  g_autoptr (VmsMigration) migration = NULL;
  JsonObject *fields = json_object_new ();

  json_object_set_int_member (fields, "attempt", worker->attempts);
  json_object_set_boolean_member (fields, "resume", resume);
  emit (worker->runner, worker->vm->name, "plan-vm-start", fields,
        resume ? "resuming its job" : "starting");
  json_object_unref (fields);
  build_config (worker->runner, worker->vm, resume, &config);
  migration = vms_migration_new (&config, on_migration_event, worker);
  vms_migration_config_clear (&config);
  return vms_migration_run (migration, worker->runner->cancellable, error);
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
  if (worker->error_message)
    json_object_set_string_member (fields, "error", worker->error_message);
  emit (worker->runner, worker->vm->name, "plan-vm", fields, text);
  json_object_set_string_member (fields, "vm", worker->vm->name);
  json_object_set_string_member (fields, "message", text);
  alert (worker->runner, "plan-vm", fields);
  json_object_unref (fields);
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
      if (!error && attempt (worker, exists, &error))
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
  g_mutex_lock (&runner->lock);
  g_queue_push_tail (&runner->finished, worker);
  g_cond_signal (&runner->cond);
  g_mutex_unlock (&runner->lock);
  return NULL;
}

/* ---- the plan ---- */

static Worker *
wait_for_one (Runner *runner)
{
  Worker *worker;

  g_mutex_lock (&runner->lock);
  while (g_queue_is_empty (&runner->finished))
    g_cond_wait (&runner->cond, &runner->lock);
  worker = g_queue_pop_head (&runner->finished);
  g_mutex_unlock (&runner->lock);
  g_thread_join (worker->thread);
  return worker;
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
  emit (runner, NULL, "plan-done", fields, text);
  alert (runner, "plan-done", fields);
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

gboolean
vms_plan_run (const VmsPlan *plan, const char *state_dir, VmsProgress *progress,
              GCancellable *cancellable, GError **error)
{
  Runner runner = { plan, state_dir, progress, cancellable };
  g_autoptr (GPtrArray) workers
      = g_ptr_array_new_with_free_func ((GDestroyNotify)worker_free);
  guint next = 0, running = 0;
  gboolean ok;

  if (plan->groups->len)
    {
      g_set_error (error, VMS_MIGRATION_ERROR, VMS_MIGRATION_ERROR_INVALID,
                   "%s: groups are not run yet (only VMs that migrate on "
                   "their own): 'vmshift plan check' reads them",
                   plan->path);
      return FALSE;
    }
  g_mutex_init (&runner.lock);
  g_cond_init (&runner.cond);
  g_queue_init (&runner.finished);
  while (next < plan->vms->len || running > 0)
    {
      while (next < plan->vms->len && running < plan->concurrency
             && !g_cancellable_is_cancelled (cancellable))
        {
          Worker *worker = g_new0 (Worker, 1);

          worker->runner = &runner;
          worker->vm = plan->vms->pdata[next++];
          g_ptr_array_add (workers, worker);
          worker->thread = g_thread_new (worker->vm->name, worker_main, worker);
          running++;
        }
      if (!running)
        break;
      wait_for_one (&runner);
      running--;
    }
  ok = summarize (&runner, workers, error);
  g_cond_clear (&runner.cond);
  g_mutex_clear (&runner.lock);
  return ok;
}
