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

/* The reply to a request that started run: what a client follows on the
 * event stream (the events after event-id, tagged with the plan). */
static void
reply_started (VmsApiPlans *plans, SoupServerMessage *msg, PlanRun *run,
               const char *job, const char *state)
{
  JsonObject *object = json_object_new ();

  json_object_set_string_member (object, "plan", run->name);
  if (job)
    json_object_set_string_member (object, "job", job);
  json_object_set_boolean_member (object, state, TRUE);
  json_object_set_int_member (object, "event-id",
                              vms_api_events_last_id (plans->events));
  if (run->orphans)
    json_object_set_int_member (object, "orphans",
                                g_strv_length (run->orphans));
  vms_api_reply (msg, SOUP_STATUS_ACCEPTED, object);
}

/* A run of the stored plan name in a thread, or NULL with the HTTP
 * status and why not. */
static PlanRun *
start_run_of (VmsApiPlans *plans, const char *name, guint *status,
              GError **error)
{
  g_autofree char *path = plan_path (plans, name);
  VmsPlan *plan;
  PlanRun *run;

  *status = SOUP_STATUS_CONFLICT;
  if (running (plans, name))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY, "plan %s runs already",
                   name);
      return NULL;
    }
  *status = SOUP_STATUS_NOT_FOUND;
  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "no plan %s", name);
      return NULL;
    }
  *status = SOUP_STATUS_BAD_REQUEST;
  plan = vms_plan_load (path, error);
  if (!plan)
    return NULL;
  run = new_run (plans, name, plan);
  run->thread = g_thread_new ("plan", run_main, run);
  return run;
}

static void
start_run (VmsApiPlans *plans, SoupServerMessage *msg, const char *name)
{
  g_autoptr (GError) error = NULL;
  guint status;
  PlanRun *run = start_run_of (plans, name, &status, &error);

  if (run)
    reply_started (plans, msg, run, NULL, "running");
  else
    vms_api_reply_error (msg, status, "%s", error->message);
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
  reply_started (plans, msg, run, NULL, "aborting");
}

static void
abort_run (VmsApiPlans *plans, SoupServerMessage *msg, const char *name)
{
  PlanRun *run = g_hash_table_lookup (plans->runs, name);

  if (!running (plans, name))
    {
      abort_orphans (plans, msg, name);
      return;
    }
  /* Its migrations roll back; the run's end says how they went. */
  g_cancellable_cancel (run->cancellable);
  reply_started (plans, msg, run, NULL, "aborting");
}

/* ---- stored plans ---- */

/* msg's body written to temporary and read as a plan, checked as
 * vmshift plan check does (the file is gone again when it is not a
 * plan).  A plan the daemon runs keeps its jobs in the daemon's state
 * directory. */
static VmsPlan *
load_body (VmsApiPlans *plans, SoupServerMessage *msg, const char *temporary,
           guint *status, GError **error)
{
  g_autoptr (GBytes) body
      = soup_message_body_flatten (soup_server_message_get_request_body (msg));
  g_autoptr (VmsPlan) plan = NULL;
  gsize length;
  const char *data = g_bytes_get_data (body, &length);

  *status = SOUP_STATUS_INTERNAL_SERVER_ERROR;
  if (g_mkdir_with_parents (plans->plans_dir, 0700) < 0)
    {
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno),
                   "cannot create %s: %s", plans->plans_dir,
                   g_strerror (errno));
      return NULL;
    }
  if (!g_file_set_contents_full (temporary, data ? data : "", length,
                                 G_FILE_SET_CONTENTS_CONSISTENT, 0600, error))
    return NULL;
  *status = SOUP_STATUS_BAD_REQUEST;
  plan = vms_plan_load (temporary, error);
  if (plan && plan->state_dir
      && g_strcmp0 (plan->state_dir, plans->state_dir) != 0)
    {
      g_set_error (error, VMS_PLAN_ERROR, VMS_PLAN_ERROR_INVALID,
                   "[plan]: state-dir: a plan vmshiftd runs keeps its jobs in "
                   "vmshiftd's state directory");
      g_clear_pointer (&plan, vms_plan_free);
    }
  if (!plan)
    {
      g_unlink (temporary);
      /* The loader names the file it read: the client knows it by name. */
      if (g_str_has_prefix ((*error)->message, temporary))
        {
          char *why = g_strdup ((*error)->message + strlen (temporary)
                                + strlen (": "));

          g_free ((*error)->message);
          (*error)->message = why;
        }
    }
  return g_steal_pointer (&plan);
}

/* The checked plan at temporary becomes plan name (not running). */
static gboolean
keep (VmsApiPlans *plans, const char *temporary, const char *name,
      gboolean *existed, GError **error)
{
  g_autofree char *path = plan_path (plans, name);

  *existed = g_file_test (path, G_FILE_TEST_EXISTS);
  if (g_rename (temporary, path) == 0)
    return TRUE;
  g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno),
               "cannot keep plan %s: %s", name, g_strerror (errno));
  g_unlink (temporary);
  return FALSE;
}

static void
store (VmsApiPlans *plans, SoupServerMessage *msg, const char *name)
{
  g_autofree char *path = plan_path (plans, name);
  g_autofree char *temporary = g_strconcat (path, ".new", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsPlan) plan = NULL;
  gboolean existed;
  guint status;
  JsonObject *object;

  if (running (plans, name))
    {
      vms_api_reply_error (msg, SOUP_STATUS_CONFLICT,
                           "plan %s runs: it cannot be replaced now", name);
      return;
    }
  plan = load_body (plans, msg, temporary, &status, &error);
  if (!plan || !keep (plans, temporary, name, &existed, &error))
    {
      vms_api_reply_error (msg,
                           plan ? SOUP_STATUS_INTERNAL_SERVER_ERROR : status,
                           "plan %s: %s", name, error->message);
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

/* ---- jobs: each a VM of a plan ---- */

static gboolean
plan_has_vm (const VmsPlan *plan, const char *id)
{
  for (guint i = 0; i < plan->vms->len; i++)
    if (g_str_equal (((VmsPlanVm *)plan->vms->pdata[i])->name, id))
      return TRUE;
  return FALSE;
}

/* The run of this vmshiftd that migrates job id, or NULL. */
static PlanRun *
run_holding (VmsApiPlans *plans, const char *id)
{
  GHashTableIter iter;
  PlanRun *run;

  g_hash_table_iter_init (&iter, plans->runs);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *)&run))
    if (!g_atomic_int_get (&run->ended) && run->plan
        && plan_has_vm (run->plan, id))
      return run;
  return NULL;
}

static gboolean
stored_plan_has_vm (VmsApiPlans *plans, const char *name, const char *id)
{
  g_autofree char *path = plan_path (plans, name);
  g_autoptr (VmsPlan) plan = vms_plan_load (path, NULL);

  return plan && plan_has_vm (plan, id);
}

/* The stored plan with job id's VM: the plan of its own name first (a
 * job submitted alone), else the first that names it; NULL: none. */
static char *
plan_of_job (VmsApiPlans *plans, const char *id)
{
  g_autoptr (GDir) dir = NULL;

  if (stored_plan_has_vm (plans, id, id))
    return g_strdup (id);
  dir = g_dir_open (plans->plans_dir, 0, NULL);
  for (const char *file; dir && (file = g_dir_read_name (dir));)
    {
      g_autofree char *name = NULL;

      if (!g_str_has_suffix (file, ".plan"))
        continue;
      name = g_strndup (file, strlen (file) - strlen (".plan"));
      if (vms_job_id_is_valid (name, NULL)
          && stored_plan_has_vm (plans, name, id))
        return g_steal_pointer (&name);
    }
  return NULL;
}

void
vms_api_plans_submit_job (VmsApiPlans *plans, SoupServerMessage *msg)
{
  g_autofree char *temporary
      = g_build_filename (plans->plans_dir, ".job.new", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsPlan) plan = NULL;
  const char *id;
  gboolean existed;
  guint status;
  PlanRun *run;

  plan = load_body (plans, msg, temporary, &status, &error);
  if (!plan)
    {
      vms_api_reply_error (msg, status, "job: %s", error->message);
      return;
    }
  if (plan->vms->len != 1)
    {
      g_unlink (temporary);
      vms_api_reply_error (msg, SOUP_STATUS_BAD_REQUEST,
                           "job: a job is a plan of one VM, this one has %u "
                           "(PUT it to /api/v1/plans/NAME)",
                           plan->vms->len);
      return;
    }
  id = ((VmsPlanVm *)plan->vms->pdata[0])->name;
  if ((run = run_holding (plans, id)) || running (plans, id))
    {
      g_unlink (temporary);
      vms_api_reply_error (msg, SOUP_STATUS_CONFLICT,
                           "job %s runs already (plan %s)", id,
                           run ? run->name : id);
      return;
    }
  if (!keep (plans, temporary, id, &existed, &error)
      || !(run = start_run_of (plans, id, &status, &error)))
    {
      vms_api_reply_error (msg, SOUP_STATUS_INTERNAL_SERVER_ERROR, "job %s: %s",
                           id, error->message);
      return;
    }
  reply_started (plans, msg, run, id, "running");
}

/* A job no run of this vmshiftd holds: rolled back when its runner
 * died while it migrated. */
static void
abort_dead_job (VmsApiPlans *plans, SoupServerMessage *msg, const char *id)
{
  g_autoptr (VmsJob) job = vms_job_load (plans->state_dir, id, NULL);
  g_autofree char *name = plan_of_job (plans, id);
  const char *key = name ? name : id;
  gint64 holder = vms_job_lock_holder (plans->state_dir, id);
  PlanRun *run;

  if (!job)
    vms_api_reply_error (msg, SOUP_STATUS_NOT_FOUND, "no job %s", id);
  else if (holder > 0)
    vms_api_reply_error (msg, SOUP_STATUS_CONFLICT,
                         "job %s is run by process %" G_GINT64_FORMAT
                         ", not by vmshiftd: stop it with vmshift abort %s",
                         id, holder, id);
  else if (job->phase != VMS_JOB_PHASE_MIGRATING || running (plans, key))
    vms_api_reply_error (msg, SOUP_STATUS_CONFLICT,
                         "job %s does not run (it is %s)", id,
                         vms_job_phase_name (job->phase));
  else
    {
      char *orphans[] = { (char *)id, NULL };

      run = new_run (plans, key, NULL);
      run->orphans = g_strdupv (orphans);
      run->thread = g_thread_new ("abort", abort_main, run);
      reply_started (plans, msg, run, id, "aborting");
    }
}

static void
abort_job (VmsApiPlans *plans, SoupServerMessage *msg, const char *id)
{
  PlanRun *run = run_holding (plans, id);

  if (!run)
    abort_dead_job (plans, msg, id);
  else if (run->plan->vms->len > 1)
    vms_api_reply_error (msg, SOUP_STATUS_CONFLICT,
                         "job %s runs in plan %s with other VMs: abort the "
                         "plan (POST /api/v1/plans/%s/abort)",
                         id, run->name, run->name);
  else
    {
      g_cancellable_cancel (run->cancellable);
      reply_started (plans, msg, run, id, "aborting");
    }
}

/* A job stopped or failed goes on: its plan runs again, which skips what
 * migrated and resumes the rest. */
static void
resume_job (VmsApiPlans *plans, SoupServerMessage *msg, const char *id)
{
  g_autoptr (VmsJob) job = vms_job_load (plans->state_dir, id, NULL);
  g_autofree char *name = NULL;
  g_autoptr (GError) error = NULL;
  PlanRun *run = run_holding (plans, id);
  guint status;

  if (run)
    {
      vms_api_reply_error (msg, SOUP_STATUS_CONFLICT, "job %s runs (plan %s)",
                           id, run->name);
      return;
    }
  if (job && job->phase == VMS_JOB_PHASE_MIGRATED)
    {
      vms_api_reply_error (msg, SOUP_STATUS_CONFLICT, "job %s migrated already",
                           id);
      return;
    }
  name = plan_of_job (plans, id);
  if (!name)
    {
      vms_api_reply_error (msg, SOUP_STATUS_NOT_FOUND,
                           "no plan of vmshiftd names job %s (vmshift "
                           "migrate --resume %s resumes a job run outside)",
                           id, id);
      return;
    }
  run = start_run_of (plans, name, &status, &error);
  if (run)
    reply_started (plans, msg, run, id, "running");
  else
    vms_api_reply_error (msg, status, "job %s: %s", id, error->message);
}

void
vms_api_plans_job_action (VmsApiPlans *plans, SoupServerMessage *msg,
                          const char *id, const char *action)
{
  if (g_str_equal (action, "abort"))
    abort_job (plans, msg, id);
  else if (g_str_equal (action, "resume"))
    resume_job (plans, msg, id);
  else
    vms_api_reply_error (msg, SOUP_STATUS_NOT_FOUND,
                         "POST /api/v1/jobs/%s/%s: no such request", id,
                         action);
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
