/* vmshift qemu-filter: the VM as a whole.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-vm.h"
#include "vms-qemu-migration.h"
#include "vms-qemu-event.h"
#include "vms-qemu-reply.h"

/* How often a run-state wait asks again without an event: the changes QEMU
 * sends none for are rare, so a second is plenty. */
#define RUN_STATE_FALLBACK_MS 1000

static gboolean
run (VmsQmp *qmp, const char *command, GError **error)
{
  g_autoptr (JsonNode) reply = vms_qmp_execute (qmp, command, NULL, error);

  if (!reply)
    {
      g_prefix_error (error, "%s: ", command);
      return FALSE;
    }
  return TRUE;
}

/* Member of command's object reply as a new string: fallback when absent
 * (NULL: required). */
static char *
query_string (VmsQmp *qmp, const char *command, const char *member,
              const char *fallback, GError **error)
{
  g_autoptr (JsonNode) reply = vms_qmp_execute (qmp, command, NULL, error);
  JsonObject *object;
  const char *value;

  if (!reply || !(object = vms_reply_object (reply, command, error)))
    return NULL;
  if (fallback ? !vms_reply_opt_string (object, member, command, fallback,
                                        &value, error)
               : !vms_reply_string (object, member, command, &value, error))
    return NULL;
  return g_strdup (value);
}

char *
vms_vm_query_name (VmsQmp *qmp, GError **error)
{
  /* An unnamed VM answers {}. */
  return query_string (qmp, "query-name", "name", "", error);
}

char *
vms_vm_query_uuid (VmsQmp *qmp, GError **error)
{
  return query_string (qmp, "query-uuid", "UUID", NULL, error);
}

char *
vms_vm_wait_run_state (VmsQmp *qmp, const char *const *states, guint timeout_ms,
                       GError **error)
{
  static const char *const events[]
      = { "RESUME", "STOP", "SHUTDOWN", "MIGRATION", NULL };
  gint64 deadline = vms_event_deadline (timeout_ms);
  g_autoptr (VmsEventWatch) watch = vms_event_watch_new (qmp, events, NULL);

  for (;;)
    {
      g_autofree char *state = vms_qemu_migration_run_state (qmp, error);
      g_autoptr (GError) wait_error = NULL;

      if (!state)
        return NULL;
      if (g_strv_contains (states, state))
        return g_steal_pointer (&state);
      if (g_get_monotonic_time () >= deadline)
        {
          g_autofree char *wanted = g_strjoinv ("' or '", (char **)states);

          g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_TIMEOUT,
                       "the VM is still '%s', not '%s', after %u ms", state,
                       wanted, timeout_ms);
          return NULL;
        }
      if (!vms_event_watch_next (
              watch, MIN (deadline, vms_event_deadline (RUN_STATE_FALLBACK_MS)),
              NULL, NULL, &wait_error)
          && !g_error_matches (wait_error, VMS_QMP_ERROR,
                               VMS_QMP_ERROR_TIMEOUT))
        {
          g_propagate_error (error, g_steal_pointer (&wait_error));
          return NULL;
        }
    }
}

gboolean
vms_vm_resume (VmsQmp *qmp, guint timeout_ms, GError **error)
{
  static const char *const running[] = { "running", NULL };
  g_autofree char *state = NULL;

  /* cont starts a paused VM before it answers; the wait is for one that
   * is still migrating in, and checks that the VM really runs. */
  if (!run (qmp, "cont", error))
    return FALSE;
  state = vms_vm_wait_run_state (qmp, running, timeout_ms, error);
  return state != NULL;
}

gboolean
vms_vm_quit (VmsQmp *qmp, guint timeout_ms, GError **error)
{
  gint64 deadline = vms_event_deadline (timeout_ms);
  g_autoptr (JsonNode) reply = NULL;
  g_autoptr (GError) quit_error = NULL;

  /* Gone before we asked: whether QEMU still runs is unknown. */
  if (!vms_qmp_is_connected (qmp))
    return run (qmp, "quit", error);
  reply = vms_qmp_execute (qmp, "quit", NULL, &quit_error);
  /* QEMU may go before its reply does: that is quitting too. */
  if (!reply
      && !g_error_matches (quit_error, VMS_QMP_ERROR,
                           VMS_QMP_ERROR_DISCONNECTED))
    {
      g_propagate_prefixed_error (error, g_steal_pointer (&quit_error),
                                  "quit: ");
      return FALSE;
    }
  g_clear_error (&quit_error);
  if (vms_event_wait_disconnect (qmp, deadline, &quit_error))
    return TRUE;
  if (g_error_matches (quit_error, VMS_QMP_ERROR, VMS_QMP_ERROR_TIMEOUT))
    g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_TIMEOUT,
                 "QEMU is still there %u ms after quit", timeout_ms);
  else
    g_propagate_error (error, g_steal_pointer (&quit_error));
  return FALSE;
}
