/* vmshift qemu-filter: the write-blocking mirror to the sink.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-mirror.h"
#include "vms-qemu-reply.h"

#define POLL_INTERVAL_MS 50
/* A cancelled mirror with nothing in flight ends at once; one stuck on a
 * dead target ends when its reconnect-delay runs out. */
#define STOP_TIMEOUT_MS 60000

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

static gboolean
node_exists (VmsQmp *qmp, const char *node_name)
{
  g_autoptr (JsonNode) nodes = NULL;
  g_autoptr (GError) error = NULL;

  return vms_reply_find_node (qmp, node_name, &nodes, &error) != NULL;
}

gboolean
vms_mirror_start (VmsQmp *qmp, const char *node, const VmsMirrorTarget *target,
                  const char *job_id, const char *target_node,
                  guint reconnect_delay_s, guint timeout_ms, GError **error)
{
  g_autoptr (JsonObject) add = json_object_new ();
  g_autoptr (JsonObject) mirror = json_object_new ();
  g_autoptr (JsonNode) reply = NULL;
  JsonObject *server = json_object_new ();
  gint64 deadline = g_get_monotonic_time () + timeout_ms * (gint64)1000;

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
  json_object_set_int_member (add, "reconnect-delay", reconnect_delay_s);
  reply = vms_qmp_execute (qmp, "blockdev-add", add, error);
  if (!reply)
    {
      g_prefix_error (error, "connecting QEMU to the sink's export %s: ",
                      target->export_name);
      return FALSE;
    }
  g_clear_pointer (&reply, json_node_unref);

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
      vms_mirror_stop (qmp, job_id, target_node, NULL);
      return FALSE;
    }

  for (;;)
    {
      g_autoptr (JsonNode) jobs = NULL;
      g_autoptr (GError) find_error = NULL;
      JsonObject *job = find_job (qmp, job_id, &jobs, &find_error);
      gboolean ready = FALSE;

      if (job
          && vms_reply_opt_bool (job, "ready", "query-block-jobs", FALSE,
                                 &ready, NULL)
          && ready)
        return TRUE;
      if (!vms_mirror_check (qmp, job_id, error)
          || g_get_monotonic_time () > deadline)
        {
          if (error && !*error)
            g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_TIMEOUT,
                         "the mirror of %s is not ready after %u ms", node,
                         timeout_ms);
          vms_mirror_stop (qmp, job_id, target_node, NULL);
          return FALSE;
        }
      g_usleep (POLL_INTERVAL_MS * 1000);
    }
}

gboolean
vms_mirror_check (VmsQmp *qmp, const char *job_id, GError **error)
{
  g_autoptr (JsonNode) jobs = NULL;
  g_autoptr (GError) find_error = NULL;
  JsonObject *job = find_job (qmp, job_id, &jobs, &find_error);
  const char *status = NULL, *job_error = NULL;

  if (find_error)
    {
      g_propagate_error (error, g_steal_pointer (&find_error));
      return FALSE;
    }
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
vms_mirror_stop (VmsQmp *qmp, const char *job_id, const char *target_node,
                 GError **error)
{
  gint64 deadline = g_get_monotonic_time () + STOP_TIMEOUT_MS * 1000;

  for (;;)
    {
      g_autoptr (JsonNode) jobs = NULL;
      g_autoptr (JsonObject) arguments = json_object_new ();
      g_autoptr (JsonNode) reply = NULL;
      g_autoptr (GError) find_error = NULL;
      JsonObject *job = find_job (qmp, job_id, &jobs, &find_error);
      const char *status = "running";

      if (find_error)
        {
          g_propagate_error (error, g_steal_pointer (&find_error));
          return FALSE;
        }
      if (!job)
        break;
      vms_reply_opt_string (job, "status", "query-block-jobs", "running",
                            &status, NULL);
      json_object_set_string_member (arguments, "id", job_id);
      if (g_str_equal (status, "concluded"))
        reply = vms_qmp_execute (qmp, "job-dismiss", arguments, NULL);
      else if (!g_str_equal (status, "aborting"))
        {
          /* force: a ready mirror would otherwise first copy what is left,
           * and there is nothing left: every write went through it. */
          json_object_set_boolean_member (arguments, "force", TRUE);
          json_object_remove_member (arguments, "id");
          json_object_set_string_member (arguments, "device", job_id);
          reply = vms_qmp_execute (qmp, "block-job-cancel", arguments, NULL);
        }
      if (g_get_monotonic_time () > deadline)
        {
          g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_TIMEOUT,
                       "mirror job %s did not end within %d s", job_id,
                       STOP_TIMEOUT_MS / 1000);
          return FALSE;
        }
      g_usleep (POLL_INTERVAL_MS * 1000);
    }
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
