/* vmshift engine: the memory phase, and its retries after a lost
 * connection.  A precopy stream that breaks cannot be resumed (QEMU 7.2
 * has no way to go on with it), but nothing of it is worth keeping
 * either: the RAM is sent again by a new migration, while the disks stay
 * as they are (the recording bitmap, or the mirror, keeps every write the
 * guest makes meanwhile).  So a lost connection costs a new memory
 * migration, within --retry-timeout, if the backend can start one.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-migration-backend.h"
#include "vms-backpressure.h"

/* The pauses between attempts grow from the first to the last, doubling:
 * a link that flapped is back within the first, one that is down for
 * minutes is not asked every second. */
#define RETRY_FIRST_DELAY_MS 1000
#define RETRY_MAX_DELAY_MS 8000
/* How often a pause looks for a stop request. */
#define STOP_POLL_MS 100

/* Words of QEMU's and libvirt's messages (strerror's, mostly) that say
 * the connection broke under a stream that was flowing. */
static const char *const lost_words[] = {
  "connection reset",
  "broken pipe",
  "econnreset",
  "epipe",
  "connection aborted",
  /* QEMU's socket channel failed under the stream, whatever errno it
   * got (under libvirt, which hands QEMU the connected socket, a reset
   * shows as "Bad file descriptor"); a refused stream's content fails
   * elsewhere, with the words below. */
  "unable to write to socket",
  "unable to read from socket",
  /* The destination's read of the stream failed with EIO: in a section
   * footer, or between sections, where all QEMU says is the errno. */
  "read section footer failed: -5",
  "load of migration failed: input/output error",
  NULL,
};

/* Words of a destination that read the stream and refused what it held:
 * sending it again would fail the same way. */
static const char *const refused_words[] = {
  "error while loading state", "unknown savevm section",
  "missing section footer",    "unknown ramblock",
  "length mismatch",           NULL,
};

/* And those that say a new connection could not be made: a lost link
 * while retrying, but on a first attempt more likely a wrong address. */
static const char *const unreachable_words[] = {
  "connection refused",
  "no route to host",
  "network is unreachable",
  "connection timed out",
  NULL,
};

static gboolean
says_any (const char *message, const char *const *words)
{
  g_autofree char *lower = g_utf8_strdown (message, -1);

  for (guint i = 0; words[i]; i++)
    if (strstr (lower, words[i]))
      return TRUE;
  return FALSE;
}

gboolean
vms_migration_memory_link_lost (const GError *error, gboolean retrying)
{
  if (!error || g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED)
      || says_any (error->message, refused_words))
    return FALSE;
  return says_any (error->message, lost_words)
         || (retrying && says_any (error->message, unreachable_words));
}

/* Sleep delay_ms unless a stop is asked first. */
static gboolean
pause_unless_stopped (VmsMigration *migration, gint64 delay_ms, GError **error)
{
  gint64 until = g_get_monotonic_time () + delay_ms * 1000;

  while (g_get_monotonic_time () < until)
    {
      if (vms_migration_stop_requested (migration, error))
        return FALSE;
      g_usleep (MIN (STOP_POLL_MS * 1000, until - g_get_monotonic_time ()));
    }
  return !vms_migration_stop_requested (migration, error);
}

static void
report_retry (VmsMigration *migration, const GError *cause, gint64 delay_ms)
{
  JsonObject *fields = json_object_new ();

  json_object_set_int_member (fields, "attempt",
                              migration->memory_attempts + 1);
  json_object_set_int_member (fields, "delay-ms", delay_ms);
  json_object_set_string_member (fields, "cause", cause->message);
  vms_progress_event (migration->progress, "memory-retry", fields,
                      "memory: the connection was lost (%s); the disks stay "
                      "as they are; retrying (attempt %u) in %.0f s",
                      cause->message, migration->memory_attempts + 1,
                      delay_ms / 1000.0);
}

/* A group's members whose backend switches over by itself cannot be held
 * there: they start their memory migrations together instead. */
static gboolean
group_memory_starts (VmsMigration *migration, GError **error)
{
  VmsGroup *group = migration->config.group;
  gboolean wait = !migration->backend->continue_switchover;
  gint64 started_us = g_get_monotonic_time ();
  JsonObject *fields;

  if (!group)
    return TRUE;
  if (!vms_group_memory_starts (group, migration->rep.job->id, wait, error))
    return FALSE;
  if (!wait)
    return TRUE;
  fields = json_object_new ();
  json_object_set_string_member (fields, "group", vms_group_get_name (group));
  json_object_set_int_member (fields, "waited-ms",
                              (g_get_monotonic_time () - started_us) / 1000);
  vms_progress_event (migration->progress, "group-memory", fields,
                      "group %s: every member's memory migration starts",
                      vms_group_get_name (group));
  return TRUE;
}

static gboolean
attempt (VmsMigration *migration, GError **error)
{
  vms_downtime_reset_moments (&migration->downtime);
  return group_memory_starts (migration, error)
         && migration->backend->start_memory (migration, error)
         && migration->backend->wait_memory (migration, error);
}

/* Another attempt may follow the failure in *error: it broke on a lost
 * connection, the budget is not spent, and the disks are still in sync
 * (a mirror that failed meanwhile is started again). */
static gboolean
may_retry (VmsMigration *migration, gint64 deadline, GError **error)
{
  g_autoptr (GError) mirror_error = NULL;

  if (!vms_migration_memory_link_lost (*error, migration->memory_attempts > 1)
      || !migration->config.copy.retry_timeout_s
      || !migration->backend->prepare_memory_retry)
    return FALSE;
  if (g_get_monotonic_time () >= deadline)
    {
      g_prefix_error (error,
                      "memory: %u attempts within --retry-timeout %u s; the "
                      "last: ",
                      migration->memory_attempts,
                      migration->config.copy.retry_timeout_s);
      return FALSE;
    }
  if (!migration->disks->check_mirror (migration, &mirror_error))
    {
      GError *both = g_error_new (mirror_error->domain, mirror_error->code,
                                  "%s; before a new memory attempt: %s",
                                  (*error)->message, mirror_error->message);

      g_clear_error (error);
      g_propagate_error (error, both);
      return FALSE;
    }
  return TRUE;
}

gboolean
vms_migration_memory (VmsMigration *migration, GError **error)
{
  gint64 deadline = G_MAXINT64;

  /* The RAM's own progress is the rest of the overall ETA. */
  vms_progress_set_after_pass (migration->progress, 0);
  if (migration->mode == VMS_MIGRATE_FINAL_MIRROR
      && migration->backend->continue_switchover
      && migration->disks->prepare_handover)
    migration->disks->prepare_handover (migration);
  /* A backend that switches over by itself gives no moment with the
   * source paused before the destination runs: the guest's own disk
   * limits go back now, so the throttle never reaches the destination. */
  if (!migration->backend->continue_switchover
      && !vms_backpressure_release (migration->rep.qmp, migration->rep.job,
                                    migration->progress, "switchover", error))
    return FALSE;
  for (migration->memory_attempts = 1;; migration->memory_attempts++)
    {
      g_autoptr (GError) cause = NULL;
      gint64 delay_ms = MIN ((gint64)RETRY_FIRST_DELAY_MS
                                 << MIN (migration->memory_attempts - 1, 4),
                             RETRY_MAX_DELAY_MS);

      if (attempt (migration, &cause))
        return TRUE;
      /* The budget runs from the moment the connection was first lost. */
      if (deadline == G_MAXINT64)
        deadline
            = g_get_monotonic_time ()
              + (gint64)migration->config.copy.retry_timeout_s * G_USEC_PER_SEC;
      if (!may_retry (migration, deadline, &cause))
        {
          g_propagate_error (error, g_steal_pointer (&cause));
          return FALSE;
        }
      /* The backend says why not itself, with the cause. */
      if (!migration->backend->prepare_memory_retry (migration, cause, error))
        return FALSE;
      report_retry (migration, cause, delay_ms);
      if (!pause_unless_stopped (migration, delay_ms, error))
        return FALSE;
    }
}
