/* vmshiftd: plans.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-api-plans.h"
#include "vms-api-reply.h"
#include "vms-job-lock.h"
#include "vms-job.h"
#include "vms-migration.h"
#include "vms-plan-run.h"
#include "vms-plan-state.h"
#include "vms-progress.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>

/* A plan's run in its thread; kept after it ended, for its outcome. */
typedef struct
{
  VmsApiPlans *plans;
  char *name;
  VmsPlan *plan;
  GCancellable *cancellable;
  GThread *thread;
  gint ended;  /* atomic: the thread is done */
  GMutex lock; /* progress_at */
  GHashTable *progress_at; /* "vm/disk/phase" → monotonic µs of the last
                              progress event streamed */
  char *error; /* why it did not migrate every VM, or NULL; set once
                  ended */
  char **orphans; /* an abort's run: the jobs a dead runner left
                     migrating, to roll back; NULL for a plan's run */
} PlanRun;

struct _VmsApiPlans
{
  char *state_dir;
  char *plans_dir;
  VmsApiEvents *events;
  GHashTable *runs; /* name → PlanRun* (main loop only) */
};

static void
plan_run_free (PlanRun *run)
{
  g_cancellable_cancel (run->cancellable);
  g_thread_join (run->thread);
  vms_plan_free (run->plan);
  g_hash_table_unref (run->progress_at);
  g_strfreev (run->orphans);
  g_mutex_clear (&run->lock);
  g_object_unref (run->cancellable);
  g_free (run->name);
  g_free (run->error);
  g_free (run);
}

VmsApiPlans *
vms_api_plans_new (const char *state_dir, VmsApiEvents *events)
{
  VmsApiPlans *plans = g_new0 (VmsApiPlans, 1);

  plans->state_dir = g_strdup (state_dir);
  plans->plans_dir = g_build_filename (state_dir, "plans", NULL);
  plans->events = events;
  plans->runs = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                       (GDestroyNotify)plan_run_free);
  return plans;
}

void
vms_api_plans_free (VmsApiPlans *plans)
{
  if (!plans)
    return;
  g_hash_table_unref (plans->runs);
  g_free (plans->state_dir);
  g_free (plans->plans_dir);
  g_free (plans);
}

static char *
plan_path (VmsApiPlans *plans, const char *name)
{
  g_autofree char *file = g_strconcat (name, ".plan", NULL);

  return g_build_filename (plans->plans_dir, file, NULL);
}

static gboolean
running (VmsApiPlans *plans, const char *name)
{
  PlanRun *run = g_hash_table_lookup (plans->runs, name);

  return run && !g_atomic_int_get (&run->ended);
}

/* ---- a run ---- */

/* How often a pass's progress is streamed: the engine reports each step
 * of a copy, far more than a dashboard can show. */
#define PROGRESS_INTERVAL_US G_USEC_PER_SEC

/* A pass's progress goes out once a second, and at its end. */
static gboolean
progress_due (PlanRun *run, JsonObject *fields, const char *vm)
{
  g_autofree char *key = g_strdup_printf (
      "%s/%s/%s",
      vm ? vm : json_object_get_string_member_with_default (fields, "vm", ""),
      json_object_get_string_member_with_default (fields, "disk", ""),
      json_object_get_string_member_with_default (fields, "phase", ""));
  gint64 now = g_get_monotonic_time ();
  gboolean last
      = json_object_get_int_member_with_default (fields, "done", 0)
        >= json_object_get_int_member_with_default (fields, "total", 0);
  gpointer at;
  gboolean due;

  g_mutex_lock (&run->lock);
  at = g_hash_table_lookup (run->progress_at, key);
  due = last || !at || now - *(gint64 *)at >= PROGRESS_INTERVAL_US;
  if (due)
    g_hash_table_replace (run->progress_at, g_steal_pointer (&key),
                          g_memdup2 (&now, sizeof now));
  g_mutex_unlock (&run->lock);
  return due;
}

/* An event of run on the stream, tagged with the plan's name and vm's
 * (NULL: the event names its VM itself, or has none). */
static void
publish (PlanRun *run, const char *event, JsonObject *fields, const char *text,
         const char *vm)
{
  if (g_str_equal (event, "progress") && fields
      && !progress_due (run, fields, vm))
    return;
  vms_api_events_publish (run->plans->events, event, fields, text, run->name,
                          vm);
}

static void
on_plan_event (const char *event, JsonObject *fields, const char *text,
               gpointer user_data)
{
  publish (user_data, event, fields, text, NULL);
}

/* A run's end: said on the stream, kept for GET. */
static void
run_ended (PlanRun *run, gboolean ok, const char *why)
{
  JsonObject *fields = json_object_new ();

  json_object_set_string_member (fields, "plan", run->name);
  json_object_set_boolean_member (fields, "ok", ok);
  if (!ok)
    {
      run->error = g_strdup (why);
      json_object_set_string_member (fields, "error", why);
    }
  vms_api_events_publish (
      run->plans->events, "plan-run-ended", fields,
      ok ? (run->orphans ? "rolled back" : "every VM migrated") : why, NULL,
      NULL);
  json_object_unref (fields);
  g_atomic_int_set (&run->ended, 1);
}

/* What a rollback says, with the plan's and the VM's names. */
typedef struct
{
  PlanRun *run;
  const char *vm;
} RollbackContext;

static void
on_rollback_event (const char *event, JsonObject *fields, const char *text,
                   gpointer user_data)
{
  RollbackContext *context = user_data;

  publish (context->run, event, fields, text, context->vm);
}

/* An abort of a plan that no run of this vmshiftd holds: each job its
 * dead runner left migrating is rolled back, as vmshift abort does. */
static gpointer
abort_main (gpointer data)
{
  PlanRun *run = data;
  g_autoptr (GString) failed = g_string_new (NULL);

  for (guint i = 0; run->orphans[i]; i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (VmsMigration) migration = NULL;
      RollbackContext context = { run, run->orphans[i] };
      VmsMigrationConfig config;

      vms_migration_config_init (&config);
      config.copy.state_dir = g_strdup (run->plans->state_dir);
      config.copy.resume = g_strdup (run->orphans[i]);
      migration = vms_migration_new (&config, on_rollback_event, &context);
      vms_migration_config_clear (&config);
      if (!vms_migration_roll_back_job (migration, &error))
        g_string_append_printf (failed, "%s%s: %s", failed->len ? "; " : "",
                                run->orphans[i], error->message);
    }
  run_ended (run, failed->len == 0, failed->str);
  return NULL;
}

static gpointer
run_main (gpointer data)
{
  PlanRun *run = data;
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsProgress) progress
      = vms_progress_new_callback (on_plan_event, run);
  gboolean ok = vms_plan_run (run->plan, run->plans->state_dir, progress,
                              run->cancellable, &error);

  run_ended (run, ok, ok ? NULL : error->message);
  return NULL;
}

/* A new run of plan name, replacing one that ended (its thread
 * joined); the caller starts its thread. */
static PlanRun *
new_run (VmsApiPlans *plans, const char *name, VmsPlan *plan)
{
  PlanRun *run = g_new0 (PlanRun, 1);

  run->plans = plans;
  run->name = g_strdup (name);
  run->plan = plan;
  run->cancellable = g_cancellable_new ();
  g_mutex_init (&run->lock);
  run->progress_at
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_hash_table_replace (plans->runs, run->name, run);
  return run;
}

static void
start_run (VmsApiPlans *plans, SoupServerMessage *msg, const char *name)
{
  g_autofree char *path = plan_path (plans, name);
  g_autoptr (GError) error = NULL;
  VmsPlan *plan;
  PlanRun *run;

  if (running (plans, name))
    {
      vms_api_reply_error (msg, SOUP_STATUS_CONFLICT, "plan %s runs already",
                           name);
      return;
    }
  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    {
      vms_api_reply_error (msg, SOUP_STATUS_NOT_FOUND, "no plan %s", name);
      return;
    }
  plan = vms_plan_load (path, &error);
  if (!plan)
    {
      vms_api_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "%s", error->message);
      return;
    }
  run = new_run (plans, name, plan);
  run->thread = g_thread_new ("plan", run_main, run);
  {
    JsonObject *object = json_object_new ();

    json_object_set_string_member (object, "plan", name);
    json_object_set_boolean_member (object, "running", TRUE);
    vms_api_reply (msg, SOUP_STATUS_ACCEPTED, object);
  }
}

/* The jobs of plan's VMs that a dead runner left migrating (NULL when
 * none). */
static char **
orphans_of (VmsApiPlans *plans, const VmsPlan *plan)
{
  g_autoptr (GStrvBuilder) orphans = g_strv_builder_new ();
  g_auto (GStrv) found = NULL;

  for (guint i = 0; i < plan->vms->len; i++)
    {
      const VmsPlanVm *vm = plan->vms->pdata[i];
      g_autoptr (VmsJob) job = vms_job_load (plans->state_dir, vm->name, NULL);

      if (job && job->phase == VMS_JOB_PHASE_MIGRATING
          && vms_job_lock_holder (plans->state_dir, vm->name) == 0)
        g_strv_builder_add (orphans, vm->name);
    }
  found = g_strv_builder_end (orphans);
  return found[0] ? g_steal_pointer (&found) : NULL;
}

/* A plan no run here holds (vmshiftd restarted, or a vmshift plan run
 * killed): its orphaned jobs are rolled back in a thread. */
static void
abort_orphans (VmsApiPlans *plans, SoupServerMessage *msg, const char *name)
{
  g_autofree char *path = plan_path (plans, name);
  g_autoptr (GError) error = NULL;
  VmsPlan *plan = vms_plan_load (path, &error);
  char **orphans = plan ? orphans_of (plans, plan) : NULL;
  JsonObject *object;
  PlanRun *run;

  if (!orphans)
    {
      vms_api_reply_error (
          msg, plan ? SOUP_STATUS_CONFLICT : SOUP_STATUS_NOT_FOUND,
          "plan %s: %s", name,
          plan ? "it does not run, and none of its jobs is left migrating"
               : error->message);
      if (plan)
        vms_plan_free (plan);
      return;
    }
  run = new_run (plans, name, plan);
  run->orphans = orphans;
  run->thread = g_thread_new ("abort", abort_main, run);
  object = json_object_new ();
  json_object_set_string_member (object, "plan", name);
  json_object_set_boolean_member (object, "aborting", TRUE);
  json_object_set_int_member (object, "orphans", g_strv_length (orphans));
  vms_api_reply (msg, SOUP_STATUS_ACCEPTED, object);
}

static void
abort_run (VmsApiPlans *plans, SoupServerMessage *msg, const char *name)
{
  PlanRun *run = g_hash_table_lookup (plans->runs, name);
  JsonObject *object;

  if (!running (plans, name))
    {
      abort_orphans (plans, msg, name);
      return;
    }
  /* Its migrations roll back; the run's end says how they went. */
  g_cancellable_cancel (run->cancellable);
  object = json_object_new ();
  json_object_set_string_member (object, "plan", name);
  json_object_set_boolean_member (object, "aborting", TRUE);
  vms_api_reply (msg, SOUP_STATUS_ACCEPTED, object);
}

/* ---- stored plans ---- */

/* The body as a plan: checked as vmshift plan check does, then kept.  A
 * plan the daemon runs keeps its jobs in the daemon's state directory. */
static void
store (VmsApiPlans *plans, SoupServerMessage *msg, const char *name)
{
  g_autoptr (GBytes) body
      = soup_message_body_flatten (soup_server_message_get_request_body (msg));
  g_autofree char *path = plan_path (plans, name);
  g_autofree char *temporary = g_strconcat (path, ".new", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsPlan) plan = NULL;
  gsize length;
  const char *data = g_bytes_get_data (body, &length);
  gboolean existed = g_file_test (path, G_FILE_TEST_EXISTS);
  JsonObject *object;

  if (running (plans, name))
    {
      vms_api_reply_error (msg, SOUP_STATUS_CONFLICT,
                           "plan %s runs: it cannot be replaced now", name);
      return;
    }
  if (g_mkdir_with_parents (plans->plans_dir, 0700) < 0
      || !g_file_set_contents_full (temporary, data ? data : "", length,
                                    G_FILE_SET_CONTENTS_CONSISTENT, 0600,
                                    &error))
    {
      vms_api_reply_error (msg, SOUP_STATUS_INTERNAL_SERVER_ERROR,
                           "cannot keep plan %s: %s", name,
                           error ? error->message : g_strerror (errno));
      return;
    }
  plan = vms_plan_load (temporary, &error);
  if (plan && plan->state_dir
      && g_strcmp0 (plan->state_dir, plans->state_dir) != 0)
    {
      g_set_error (&error, VMS_PLAN_ERROR, VMS_PLAN_ERROR_INVALID,
                   "[plan]: state-dir: a plan vmshiftd runs keeps its jobs in "
                   "vmshiftd's state directory");
      g_clear_pointer (&plan, vms_plan_free);
    }
  if (!plan || g_rename (temporary, path) < 0)
    {
      const char *why = error ? error->message : g_strerror (errno);

      /* The loader names the file it read: the client knows it as NAME. */
      if (g_str_has_prefix (why, temporary))
        why += strlen (temporary) + strlen (": ");
      g_unlink (temporary);
      vms_api_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "plan %s: %s", name,
                           why);
      return;
    }
  object = json_object_new ();
  json_object_set_string_member (object, "plan", name);
  json_object_set_int_member (object, "vm-count", plan->vms->len);
  json_object_set_int_member (object, "group-count", plan->groups->len);
  vms_api_reply (msg, existed ? SOUP_STATUS_OK : SOUP_STATUS_CREATED, object);
}

static void
show (VmsApiPlans *plans, SoupServerMessage *msg, const char *name)
{
  g_autofree char *path = plan_path (plans, name);
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsPlan) plan = NULL;
  PlanRun *run = g_hash_table_lookup (plans->runs, name);
  JsonObject *state;

  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    {
      vms_api_reply_error (msg, SOUP_STATUS_NOT_FOUND, "no plan %s", name);
      return;
    }
  plan = vms_plan_load (path, &error);
  if (!plan)
    {
      vms_api_reply_error (msg, SOUP_STATUS_INTERNAL_SERVER_ERROR, "%s",
                           error->message);
      return;
    }
  state = vms_plan_state_new (plan, plans->state_dir, NULL);
  json_object_set_string_member (state, "name", name);
  json_object_set_boolean_member (state, "running", running (plans, name));
  if (run && g_atomic_int_get (&run->ended) && run->error)
    json_object_set_string_member (state, "last-error", run->error);
  vms_api_reply (msg, SOUP_STATUS_OK, state);
}

static void
list (VmsApiPlans *plans, SoupServerMessage *msg)
{
  g_autoptr (GDir) dir = g_dir_open (plans->plans_dir, 0, NULL);
  JsonArray *array = json_array_new ();
  JsonObject *object = json_object_new ();

  for (const char *file; dir && (file = g_dir_read_name (dir));)
    {
      g_autofree char *name = NULL;
      JsonObject *one;

      if (!g_str_has_suffix (file, ".plan"))
        continue;
      name = g_strndup (file, strlen (file) - strlen (".plan"));
      one = json_object_new ();
      json_object_set_string_member (one, "name", name);
      json_object_set_boolean_member (one, "running", running (plans, name));
      json_array_add_object_element (array, one);
    }
  json_object_set_array_member (object, "plans", array);
  vms_api_reply (msg, SOUP_STATUS_OK, object);
}

void
vms_api_plans_handle (VmsApiPlans *plans, SoupServerMessage *msg,
                      const char *rest)
{
  const char *method = soup_server_message_get_method (msg);
  g_auto (GStrv) parts = g_strsplit (*rest == '/' ? rest + 1 : rest, "/", 3);
  g_autoptr (GError) error = NULL;
  const char *name = parts[0];
  const char *action = name ? parts[1] : NULL;

  if (!name || !*name)
    {
      if (g_str_equal (method, SOUP_METHOD_GET))
        list (plans, msg);
      else
        vms_api_reply_error (msg, SOUP_STATUS_METHOD_NOT_ALLOWED,
                             "%s /api/v1/plans: only GET", method);
      return;
    }
  /* A name that is a job id names no path outside plans/. */
  if (!vms_job_id_is_valid (name, &error) || (action && parts[2]))
    {
      vms_api_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "plan name: %s",
                           error ? error->message : "too many parts");
      return;
    }
  if (!action && g_str_equal (method, SOUP_METHOD_GET))
    show (plans, msg, name);
  else if (!action && g_str_equal (method, SOUP_METHOD_PUT))
    store (plans, msg, name);
  else if (g_strcmp0 (action, "run") == 0
           && g_str_equal (method, SOUP_METHOD_POST))
    start_run (plans, msg, name);
  else if (g_strcmp0 (action, "abort") == 0
           && g_str_equal (method, SOUP_METHOD_POST))
    abort_run (plans, msg, name);
  else
    vms_api_reply_error (msg, SOUP_STATUS_NOT_FOUND, "%s %s: no such request",
                         method,
                         g_uri_get_path (soup_server_message_get_uri (msg)));
}
