/* vmshift engine: the write-blocking mirror of every disk to the sink's
 * live export, for the mirror switchover: from its start on, every guest
 * write reaches the sink before the guest sees it complete.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-migration-mirror.h"
#include "vms-backpressure.h"
#include "vms-mirror.h"
#include "vms-qemu-migration.h"
#include "vms-sink-client.h"
#include "vms-sink-name.h"
#include "vms-migration-tls.h"

/* QEMU's NBD client holds requests while it connects again, up to its
 * reconnect-delay (--retry-timeout), and a write-blocking mirror holds
 * the guest's writes with them: past this bound a guest's I/O would stall
 * long enough for hung-task warnings, so the mirror fails instead and is
 * started again, dirty rounds sending what it missed. */
#define MIRROR_RECONNECT_DELAY_MAX_S 10
#define MIRROR_READY_TIMEOUT_MS 60000
/* Pause between attempts to start a failed mirror again. */
#define MIRROR_RESTART_INTERVAL_US (G_USEC_PER_SEC / 2)

/* What a VmsMirrorTarget points into. */
typedef struct
{
  char *socket;       /* the sink's unix socket, or NULL */
  char *host;         /* or its host */
  char *port;         /* and port */
  char *export_name;  /* the disk's live export */
  char *tls_hostname; /* the name the sink's certificate holds, or NULL */
} MirrorStrings;

static void
mirror_strings_clear (MirrorStrings *strings)
{
  g_free (strings->socket);
  g_free (strings->host);
  g_free (strings->port);
  g_free (strings->export_name);
  g_free (strings->tls_hostname);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (MirrorStrings, mirror_strings_clear)

/* QEMU allows node names of 31 characters: a job id (up to 64) and a
 * disk name do not fit, so the mirror's names carry a digest of them;
 * the same job and disk always give the same names, which lets a later
 * attempt find what a killed one left. */
static char *
mirror_name (const char *kind, VmsJob *job, VmsJobDisk *disk)
{
  g_autofree char *key = g_strdup_printf ("%s/%s", job->id, disk->name);
  g_autofree char *digest
      = g_compute_checksum_for_string (G_CHECKSUM_SHA256, key, -1);

  return g_strdup_printf ("vms%s-%.16s", kind, digest);
}

static char *
mirror_job_id (VmsJob *job, VmsJobDisk *disk)
{
  return mirror_name ("mirror", job, disk);
}

static char *
mirror_node (VmsJob *job, VmsJobDisk *disk)
{
  return mirror_name ("live", job, disk);
}

/* The TLS credentials QEMU's NBD client needs for an nbds:// sink, made
 * once per migration (an object an earlier attempt left is reused). */
static gboolean
ensure_tls (VmsMigration *migration, GError **error)
{
  g_autofree char *id = NULL, *dir = NULL, *user = NULL;
  VmsTlsCreds creds;

  if (migration->tls_object)
    return TRUE;
  if (!vms_migration_sink_tls_creds (migration, "--final-sync mirror over TLS",
                                     &creds, &dir, &user, error))
    return FALSE;
  id = g_strdup_printf ("vmshift-%s-tls", migration->rep.job->id);
  if (!vms_tls_add (migration->rep.qmp, id, &creds, error))
    return FALSE;
  migration->tls_object = g_steal_pointer (&id);
  return TRUE;
}

/* Where QEMU's NBD client finds the sink: a unix socket or host:port. */
static gboolean
target_address (VmsMigration *migration, GUri *uri, GHashTable *query,
                VmsMirrorTarget *target, MirrorStrings *strings, GError **error)
{
  const char *socket = query ? g_hash_table_lookup (query, "socket") : NULL;

  if (!g_str_has_suffix (g_uri_get_scheme (uri), "+unix"))
    {
      strings->host = g_strdup (g_uri_get_host (uri));
      strings->port = g_strdup_printf (
          "%d", g_uri_get_port (uri) > 0 ? g_uri_get_port (uri) : 10809);
      target->host = strings->host;
      target->port = strings->port;
      return TRUE;
    }
  if (!socket)
    {
      g_set_error (error, G_URI_ERROR, G_URI_ERROR_BAD_QUERY,
                   "sink %s: no socket= in the URI", migration->rep.job->sink);
      return FALSE;
    }
  strings->socket = g_strdup (socket);
  target->socket_path = strings->socket;
  return TRUE;
}

/* The sink URI as QEMU's NBD client wants it, for the disk's live
 * export of that kind. */
static gboolean
mirror_target (VmsMigration *migration, VmsJobDisk *disk, VmsSinkNameKind kind,
               VmsMirrorTarget *target, MirrorStrings *strings, GError **error)
{
  g_autoptr (GUri) uri = g_uri_parse (migration->rep.job->sink,
                                      G_URI_FLAGS_ENCODED_QUERY, error);
  g_autoptr (GHashTable) query = NULL;

  if (!uri)
    return FALSE;
  if (g_uri_get_query (uri))
    {
      query = g_uri_parse_params (g_uri_get_query (uri), -1, "&",
                                  G_URI_PARAMS_NONE, error);
      if (!query)
        return FALSE;
    }
  memset (target, 0, sizeof *target);
  strings->export_name = vms_sink_name_build (kind, disk->replica, 0, error);
  if (!strings->export_name)
    return FALSE;
  target->export_name = strings->export_name;
  if (!target_address (migration, uri, query, target, strings, error))
    return FALSE;
  if (!g_str_has_prefix (g_uri_get_scheme (uri), "nbds"))
    return TRUE;
  if (!ensure_tls (migration, error)
      || !vms_migration_sink_tls_hostname (migration, strings->socket != NULL,
                                           &strings->tls_hostname, error))
    return FALSE;
  target->tls_creds = migration->tls_object;
  target->tls_hostname = strings->tls_hostname;
  return TRUE;
}

static gboolean
start_disk_mirror (VmsMigration *migration, VmsJobDisk *disk,
                   VmsSinkNameKind kind, GError **error)
{
  VmsJob *job = migration->rep.job;
  g_autofree char *id = mirror_job_id (job, disk);
  g_autofree char *node = mirror_node (job, disk);
  g_auto (MirrorStrings) strings = { 0 };
  VmsMirrorTarget target;

  if (!mirror_target (migration, disk, kind, &target, &strings, error)
      || !vms_mirror_start (migration->rep.qmp, disk->node, &target, id, node,
                            MIN (migration->config.copy.retry_timeout_s,
                                 MIRROR_RECONNECT_DELAY_MAX_S),
                            MIRROR_READY_TIMEOUT_MS, error))
    return FALSE;
  vms_progress_event (migration->progress, "mirror", NULL,
                      "%s: every guest write now reaches %s", disk->name,
                      strings.export_name);
  return TRUE;
}

/* When vmshift drives the switchover, its @handover FLUSH makes the
 * replicas durable while the source is paused, and the mirror's target
 * offers QEMU no FLUSH of its own: QEMU's stop would send it behind the
 * RAM queued on the link.  A sink older than @live-noflush gets @live. */
static gboolean
start_disk_mirror_for_handover (VmsMigration *migration, VmsJobDisk *disk,
                                GError **error)
{
  g_autoptr (GError) noflush_error = NULL;

  if (!migration->backend->continue_switchover)
    return start_disk_mirror (migration, disk, VMS_SINK_NAME_KIND_LIVE, error);
  if (start_disk_mirror (migration, disk, VMS_SINK_NAME_KIND_LIVE_NOFLUSH,
                         &noflush_error))
    return TRUE;
  if (!start_disk_mirror (migration, disk, VMS_SINK_NAME_KIND_LIVE, error))
    return FALSE;
  vms_progress_event (migration->progress, "warning", NULL,
                      "%s: mirrored to @live (%s; a sink before "
                      "@live-noflush?): QEMU's stop flushes the replica "
                      "over the network, inside the downtime",
                      disk->name, noflush_error->message);
  return TRUE;
}

gboolean
vms_migration_mirror_start (VmsMigration *migration, GError **error)
{
  VmsJob *job = migration->rep.job;

  for (guint i = 0; i < job->disks->len; i++)
    {
      VmsJobDisk *disk = job->disks->pdata[i];

      if (!start_disk_mirror_for_handover (migration, disk, error))
        {
          g_prefix_error (error, "disk %s: ", disk->name);
          return FALSE;
        }
    }
  return TRUE;
}

static gboolean
stop_disk_mirror (VmsMigration *migration, VmsJobDisk *disk, GError **error)
{
  g_autofree char *id = mirror_job_id (migration->rep.job, disk);
  g_autofree char *node = mirror_node (migration->rep.job, disk);

  return vms_mirror_stop (migration->rep.qmp, id, node, error);
}

/* One attempt: the failed job and its node go; the sink forgets the
 * ranges the failed mirror wrote (a guest write it missed may have landed
 * on one, and the catch-up round must be able to replace it); a new
 * mirror starts before that round reads the source. */
static gboolean
restart_once (VmsMigration *migration, VmsJobDisk *disk, GError **error)
{
  return stop_disk_mirror (migration, disk, error)
         && vms_sink_client_live_reset (migration->rep.job->sink, disk->replica,
                                        error)
         && start_disk_mirror_for_handover (migration, disk, error);
}

/* Once the memory migration runs, QEMU may pause the source at
 * pre-switchover while the mirror is being started again: that pause is
 * downtime, so it is given no longer than a final round's retries.
 * *paused_since (monotonic us, 0: running) follows it. */
static gboolean
source_paused_too_long (VmsMigration *migration, gint64 *paused_since)
{
  g_autofree char *state = NULL;
  gint64 now = g_get_monotonic_time ();

  if (!migration->migration_started)
    return FALSE;
  state = vms_qemu_migration_run_state (migration->rep.qmp, NULL);
  if (!state || g_str_equal (state, "running"))
    {
      *paused_since = 0;
      return FALSE;
    }
  if (*paused_since == 0)
    *paused_since = now;
  return now - *paused_since
         >= (gint64)VMS_REPLICATE_FINAL_RETRY_TIMEOUT_S * G_USEC_PER_SEC;
}

/* Start disk's failed mirror again, trying for up to --retry-timeout
 * (the sink may be restarting or the link down), but for no more than a
 * final round's retries while the source is paused.  The source runs on
 * otherwise; its recording bitmap keeps every write the mirror misses. */
static gboolean
restart_disk_mirror (VmsMigration *migration, VmsJobDisk *disk,
                     const GError *cause, GError **error)
{
  gint64 deadline
      = g_get_monotonic_time ()
        + (gint64)migration->config.copy.retry_timeout_s * G_USEC_PER_SEC;
  gint64 paused_since = 0;

  vms_progress_event (migration->progress, "mirror-restart", NULL,
                      "%s: %s; starting the mirror again, a dirty round "
                      "sends what it missed",
                      disk->name, cause->message);
  for (guint attempt = 1;; attempt++)
    {
      g_autoptr (GError) attempt_error = NULL;

      if (restart_once (migration, disk, &attempt_error))
        return TRUE;
      if (g_get_monotonic_time () >= deadline
          || source_paused_too_long (migration, &paused_since)
          || vms_migration_stop_requested (migration, NULL))
        {
          g_propagate_prefixed_error (
              error, g_steal_pointer (&attempt_error),
              "%s: the mirror failed (%s) and could not be started again "
              "within --retry-timeout, or %d s of the source paused "
              "(%u attempts): ",
              disk->name, cause->message, VMS_REPLICATE_FINAL_RETRY_TIMEOUT_S,
              attempt);
          return FALSE;
        }
      g_usleep (MIRROR_RESTART_INTERVAL_US);
    }
}

/* Every mirror still runs; one that failed (its NBD connection lost for
 * longer than its reconnect-delay, say) is started again and its disk
 * caught up, so that the migration goes on in the same run. */
gboolean
vms_migration_mirror_check (VmsMigration *migration, GError **error)
{
  VmsJob *job = migration->rep.job;
  g_autoptr (GPtrArray) restarted = g_ptr_array_new ();
  gboolean caught_up;

  if (migration->mode != VMS_MIGRATE_FINAL_MIRROR)
    return TRUE;
  for (guint i = 0; i < job->disks->len; i++)
    {
      VmsJobDisk *disk = job->disks->pdata[i];
      g_autofree char *id = mirror_job_id (job, disk);
      g_autoptr (GError) check_error = NULL;

      if (vms_mirror_check (migration->rep.qmp, id, &check_error))
        continue;
      if (!vms_qmp_is_connected (migration->rep.qmp)
          || !restart_disk_mirror (migration, disk, check_error, error))
        {
          if (error && !*error)
            g_propagate_error (error, g_steal_pointer (&check_error));
          return FALSE;
        }
      g_ptr_array_add (restarted, disk);
    }
  if (restarted->len == 0)
    return TRUE;
  vms_replicate_leave_room (&migration->rep, vms_backpressure_held_rate (job));
  caught_up = vms_replicate_catch_up (&migration->rep, restarted, error);
  vms_replicate_end_room (&migration->rep);
  if (!caught_up || !vms_job_save (job, error))
    return FALSE;
  vms_progress_event (migration->progress, "mirror", NULL,
                      "%u mirror(s) running again, their disks caught up",
                      restarted->len);
  return TRUE;
}

gboolean
vms_migration_mirror_stop (VmsMigration *migration, GError **error)
{
  VmsJob *job = migration->rep.job;
  gboolean ok = TRUE;

  for (guint i = 0; i < job->disks->len; i++)
    {
      VmsJobDisk *disk = job->disks->pdata[i];
      g_autofree char *id = mirror_job_id (job, disk);
      g_autofree char *node = mirror_node (job, disk);
      g_autoptr (GError) stop_error = NULL;

      if (!vms_mirror_stop (migration->rep.qmp, id, node, &stop_error))
        {
          ok = FALSE;
          if (error && !*error)
            g_propagate_error (error, g_steal_pointer (&stop_error));
        }
    }
  /* The mirrors' NBD nodes are gone: nothing uses the credentials. */
  if (migration->tls_object)
    {
      g_autoptr (GError) remove_error = NULL;

      if (!vms_tls_remove (migration->rep.qmp, migration->tls_object,
                           &remove_error))
        vms_progress_event (migration->progress, "warning", NULL,
                            "removing QEMU's TLS credentials %s: %s",
                            migration->tls_object, remove_error->message);
      g_clear_pointer (&migration->tls_object, g_free);
    }
  return ok;
}
