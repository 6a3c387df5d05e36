/* vmshift qemu-filter: the write-blocking mirror to the sink.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-mirror.h"
#include "vms-qemu-event.h"
#include "vms-qemu-reply.h"

/* A cancelled mirror with nothing in flight ends at once; one stuck on a
 * dead target ends when its reconnect-delay runs out. */
#define STOP_TIMEOUT_MS 60000

/* Every event QEMU sends about a block job's progress or end; each names
 * the job ("device" or "id"). */
static const char *const job_events[]
    = { "BLOCK_JOB_READY",     "BLOCK_JOB_ERROR",   "BLOCK_JOB_COMPLETED",
        "BLOCK_JOB_CANCELLED", "JOB_STATUS_CHANGE", NULL };

/* The job's entry in query-block-jobs, or NULL (and no error) when there
 * is none; *jobs holds the reply (caller unrefs). */
static JsonObject *
find_job (VmsQmp *qmp, const char *job_id, JsonNode **jobs, GError **error)
{
  JsonArray *array;

  *jobs = vms_qmp_execute (qmp, "query-block-jobs", NULL, error);
  if (!*jobs || !(array = vms_reply_array (*jobs, "query-block-jobs", error)))
    return NULL;
  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      JsonObject *job
          = vms_reply_array_object (array, i, "query-block-jobs", error);
      const char *device;

      if (!job
          || !vms_reply_string (job, "device", "query-block-jobs", &device,
                                error))
        return NULL;
      if (g_str_equal (device, job_id))
        return job;
    }
  return NULL;
}

/* FALSE with a message saying what became of job (its query-block-jobs
 * entry, or NULL when there is none) unless it still runs. */
static gboolean
check_job (JsonObject *job, const char *job_id, GError **error)
{
  const char *status = NULL, *job_error = NULL;

  if (!job)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   "mirror job %s is gone", job_id);
      return FALSE;
    }
  if (!vms_reply_opt_string (job, "status", "query-block-jobs", "running",
                             &status, error)
      || !vms_reply_opt_string (job, "error", "query-block-jobs", NULL,
                                &job_error, error))
    return FALSE;
  if (job_error || g_str_equal (status, "concluded")
      || g_str_equal (status, "aborting") || g_str_equal (status, "null"))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   "mirror job %s stopped (%s)%s%s", job_id, status,
                   job_error ? ": " : "", job_error ? job_error : "");
      return FALSE;
    }
  return TRUE;
}

gboolean
vms_mirror_check (VmsQmp *qmp, const char *job_id, GError **error)
{
  g_autoptr (JsonNode) jobs = NULL;
  g_autoptr (GError) find_error = NULL;
  JsonObject *job = find_job (qmp, job_id, &jobs, &find_error);

  if (find_error)
    {
      g_propagate_error (error, g_steal_pointer (&find_error));
      return FALSE;
    }
  return check_job (job, job_id, error);
}

static gboolean
node_exists (VmsQmp *qmp, const char *node_name)
{
  g_autoptr (JsonNode) nodes = NULL;
  g_autoptr (GError) error = NULL;

  return vms_reply_find_node (qmp, node_name, &nodes, &error) != NULL;
}

static gboolean
add_target_node (VmsQmp *qmp, const VmsMirrorTarget *target,
                 const char *target_node, guint reconnect_delay_s,
                 GError **error)
{
  g_autoptr (JsonObject) add = json_object_new ();
  g_autoptr (JsonNode) reply = NULL;
  JsonObject *server = json_object_new ();

  json_object_set_string_member (add, "driver", "nbd");
  json_object_set_string_member (add, "node-name", target_node);
  json_object_set_string_member (add, "export", target->export_name);
  if (target->socket_path)
    {
      json_object_set_string_member (server, "type", "unix");
      json_object_set_string_member (server, "path", target->socket_path);
    }
  else
    {
      json_object_set_string_member (server, "type", "inet");
      json_object_set_string_member (server, "host", target->host);
      json_object_set_string_member (server, "port", target->port);
    }
  json_object_set_object_member (add, "server", server);
  if (target->tls_creds)
    json_object_set_string_member (add, "tls-creds", target->tls_creds);
  if (target->tls_hostname)
    json_object_set_string_member (add, "tls-hostname", target->tls_hostname);
  json_object_set_int_member (add, "reconnect-delay", reconnect_delay_s);
  reply = vms_qmp_execute (qmp, "blockdev-add", add, error);
  if (!reply)
    {
      g_prefix_error (error, "connecting QEMU to the sink's export %s: ",
                      target->export_name);
      return FALSE;
    }
  return TRUE;
}

static gboolean
start_job (VmsQmp *qmp, const char *node, const char *job_id,
           const char *target_node, GError **error)
{
  g_autoptr (JsonObject) mirror = json_object_new ();
  g_autoptr (JsonNode) reply = NULL;

  json_object_set_string_member (mirror, "job-id", job_id);
  json_object_set_string_member (mirror, "device", node);
  json_object_set_string_member (mirror, "target", target_node);
  json_object_set_string_member (mirror, "sync", "none");
  json_object_set_string_member (mirror, "copy-mode", "write-blocking");
  /* The job stays after an error so that we can read what happened. */
  json_object_set_boolean_member (mirror, "auto-dismiss", FALSE);
  reply = vms_qmp_execute (qmp, "blockdev-mirror", mirror, error);
  if (!reply)
    {
      g_prefix_error (error, "starting the mirror of %s: ", node);
      return FALSE;
    }
  return TRUE;
}

/* Whether query-block-jobs says job_id is ready; FALSE with an error when
 * the job failed or is gone. */
static gboolean
query_ready (VmsQmp *qmp, const char *job_id, gboolean *ready, GError **error)
{
  g_autoptr (JsonNode) jobs = NULL;
  g_autoptr (GError) find_error = NULL;
  JsonObject *job = find_job (qmp, job_id, &jobs, &find_error);

  *ready = FALSE;
  if (find_error)
    {
      g_propagate_error (error, g_steal_pointer (&find_error));
      return FALSE;
    }
  return check_job (job, job_id, error)
         && vms_reply_opt_bool (job, "ready", "query-block-jobs", FALSE, ready,
                                error);
}

static gboolean
event_says_ready (const char *name, JsonObject *data)
{
  return g_str_equal (name, "BLOCK_JOB_READY")
         || (g_str_equal (name, "JOB_STATUS_CHANGE")
             && g_strcmp0 (vms_event_string (data, "status"), "ready") == 0);
}

/* Whether an event may mean the job failed: worth a query to find out.
 * The job's "created" and "running" come with every start. */
static gboolean
event_may_end_job (const char *name, JsonObject *data)
{
  const char *status = vms_event_string (data, "status");

  if (!g_str_equal (name, "JOB_STATUS_CHANGE"))
    return TRUE;
  return g_strcmp0 (status, "aborting") == 0
         || g_strcmp0 (status, "concluded") == 0
         || g_strcmp0 (status, "null") == 0;
}

/* Wait for QEMU to say the job is ready.  watch was set up before the job
 * started, so a BLOCK_JOB_READY sent before blockdev-mirror's reply is in
 * it.  One query first catches a job that failed at once, or that was
 * ready before the watch began; after it only events wake us. */
static gboolean
wait_ready (VmsQmp *qmp, VmsEventWatch *watch, const char *node,
            const char *job_id, guint timeout_ms, GError **error)
{
  gint64 deadline = vms_event_deadline (timeout_ms);
  gboolean ready;

  if (!query_ready (qmp, job_id, &ready, error))
    return FALSE;
  while (!ready)
    {
      g_autofree char *name = NULL;
      g_autoptr (JsonObject) data = NULL;
      g_autoptr (GError) wait_error = NULL;

      if (!vms_event_watch_next (watch, deadline, &name, &data, &wait_error))
        {
          if (!g_error_matches (wait_error, VMS_QMP_ERROR,
                                VMS_QMP_ERROR_TIMEOUT))
            {
              g_propagate_error (error, g_steal_pointer (&wait_error));
              return FALSE;
            }
          /* A job that failed says why; one that still runs timed out. */
          if (vms_mirror_check (qmp, job_id, error))
            g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_TIMEOUT,
                         "the mirror of %s is not ready after %u ms", node,
                         timeout_ms);
          return FALSE;
        }
      if (event_says_ready (name, data))
        return TRUE;
      if (event_may_end_job (name, data)
          && !vms_mirror_check (qmp, job_id, error))
        return FALSE;
    }
  return TRUE;
}

gboolean
vms_mirror_start (VmsQmp *qmp, const char *node, const VmsMirrorTarget *target,
                  const char *job_id, const char *target_node,
                  guint reconnect_delay_s, guint timeout_ms, GError **error)
{
  g_autoptr (VmsEventWatch) watch = NULL;

  if (!add_target_node (qmp, target, target_node, reconnect_delay_s, error))
    return FALSE;
  watch = vms_event_watch_new (qmp, job_events, job_id);
  if (!start_job (qmp, node, job_id, target_node, error)
      || !wait_ready (qmp, watch, node, job_id, timeout_ms, error))
    {
      g_clear_pointer (&watch, vms_event_watch_free);
      vms_mirror_stop (qmp, job_id, target_node, NULL);
      return FALSE;
    }
  return TRUE;
}

/* One step towards the end of job (its query-block-jobs entry): dismiss a
 * concluded job, cancel a running one.  *wait says whether the next step
 * must wait for QEMU to move the job on. */
static gboolean
end_job_step (VmsQmp *qmp, const char *job_id, JsonObject *job, gboolean *wait,
              GError **error)
{
  g_autoptr (JsonObject) arguments = json_object_new ();
  g_autoptr (JsonNode) reply = NULL;
  const char *status = "running";

  vms_reply_opt_string (job, "status", "query-block-jobs", "running", &status,
                        NULL);
  *wait = TRUE;
  if (g_str_equal (status, "concluded"))
    {
      /* job-dismiss takes the job away before it answers. */
      json_object_set_string_member (arguments, "id", job_id);
      reply = vms_qmp_execute (qmp, "job-dismiss", arguments, error);
      if (!reply)
        g_prefix_error (error, "dismissing mirror job %s: ", job_id);
      *wait = FALSE;
      return reply != NULL;
    }
  if (!g_str_equal (status, "aborting"))
    {
      /* force: a ready mirror would otherwise first copy what is left,
       * and there is nothing left: every write went through it.  An error
       * means the job moved on meanwhile; its event says where. */
      json_object_set_string_member (arguments, "device", job_id);
      json_object_set_boolean_member (arguments, "force", TRUE);
      reply = vms_qmp_execute (qmp, "block-job-cancel", arguments, NULL);
    }
  return TRUE;
}

/* Cancel and dismiss job_id, waiting on its events between steps; every
 * status change of a job comes with JOB_STATUS_CHANGE. */
static gboolean
end_job (VmsQmp *qmp, const char *job_id, GError **error)
{
  gint64 deadline = vms_event_deadline (STOP_TIMEOUT_MS);
  g_autoptr (VmsEventWatch) watch
      = vms_event_watch_new (qmp, job_events, job_id);

  for (;;)
    {
      g_autoptr (JsonNode) jobs = NULL;
      g_autoptr (GError) find_error = NULL;
      g_autoptr (GError) wait_error = NULL;
      JsonObject *job = find_job (qmp, job_id, &jobs, &find_error);
      gboolean wait;

      if (find_error)
        {
          g_propagate_error (error, g_steal_pointer (&find_error));
          return FALSE;
        }
      if (!job)
        return TRUE;
      if (!end_job_step (qmp, job_id, job, &wait, error))
        return FALSE;
      if (wait
          && !vms_event_watch_next (watch, deadline, NULL, NULL, &wait_error))
        {
          if (g_error_matches (wait_error, VMS_QMP_ERROR,
                               VMS_QMP_ERROR_TIMEOUT))
            g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_TIMEOUT,
                         "mirror job %s did not end within %d s", job_id,
                         STOP_TIMEOUT_MS / 1000);
          else
            g_propagate_error (error, g_steal_pointer (&wait_error));
          return FALSE;
        }
    }
}

gboolean
vms_mirror_stop (VmsQmp *qmp, const char *job_id, const char *target_node,
                 GError **error)
{
  if (!end_job (qmp, job_id, error))
    return FALSE;
  if (target_node && node_exists (qmp, target_node))
    {
      g_autoptr (JsonObject) arguments = json_object_new ();
      g_autoptr (JsonNode) reply = NULL;

      json_object_set_string_member (arguments, "node-name", target_node);
      reply = vms_qmp_execute (qmp, "blockdev-del", arguments, error);
      if (!reply)
        {
          g_prefix_error (error, "removing node %s: ", target_node);
          return FALSE;
        }
    }
  return TRUE;
}
