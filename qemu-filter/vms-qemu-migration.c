/* vmshift qemu-filter: QEMU's memory migration over QMP.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-qemu-migration.h"
#include "vms-qemu-event.h"
#include "vms-qemu-reply.h"

/* How often a waiting caller asks query-migrate again when QEMU sends no
 * MIGRATION events (capability "events" off). */
#define POLL_INTERVAL_MS 100

static const char *const status_names[] = {
  [VMS_QEMU_MIGRATION_NONE] = "none",
  [VMS_QEMU_MIGRATION_SETUP] = "setup",
  [VMS_QEMU_MIGRATION_ACTIVE] = "active",
  [VMS_QEMU_MIGRATION_PRE_SWITCHOVER] = "pre-switchover",
  [VMS_QEMU_MIGRATION_DEVICE] = "device",
  [VMS_QEMU_MIGRATION_COMPLETED] = "completed",
  [VMS_QEMU_MIGRATION_FAILED] = "failed",
  [VMS_QEMU_MIGRATION_CANCELLING] = "cancelling",
  [VMS_QEMU_MIGRATION_CANCELLED] = "cancelled",
  [VMS_QEMU_MIGRATION_OTHER] = "other",
};

VmsQemuMigrationStatus
vms_qemu_migration_status_parse (const char *name)
{
  for (guint i = 0; name && i < G_N_ELEMENTS (status_names); i++)
    if (g_str_equal (name, status_names[i]))
      return i;
  return name ? VMS_QEMU_MIGRATION_OTHER : VMS_QEMU_MIGRATION_NONE;
}

const char *
vms_qemu_migration_status_name (VmsQemuMigrationStatus status)
{
  return status < G_N_ELEMENTS (status_names) ? status_names[status]
                                              : "unknown";
}

gboolean
vms_qemu_migration_status_is_final (VmsQemuMigrationStatus status)
{
  return status == VMS_QEMU_MIGRATION_COMPLETED
         || status == VMS_QEMU_MIGRATION_FAILED
         || status == VMS_QEMU_MIGRATION_CANCELLED;
}

void
vms_qemu_migration_info_clear (VmsQemuMigrationInfo *info)
{
  g_clear_pointer (&info->status_name, g_free);
  g_clear_pointer (&info->error_desc, g_free);
}

static gint64
optional_int (JsonObject *object, const char *member, gint64 fallback)
{
  JsonNode *node = object ? json_object_get_member (object, member) : NULL;

  if (!node || !JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_INT64)
    return fallback;
  return json_node_get_int (node);
}

gboolean
vms_qemu_migration_query (VmsQmp *qmp, VmsQemuMigrationInfo *info,
                          GError **error)
{
  g_autoptr (JsonNode) reply
      = vms_qmp_execute (qmp, "query-migrate", NULL, error);
  JsonObject *object, *ram = NULL;
  const char *status = NULL, *desc = NULL;
  JsonNode *mbps;

  vms_qemu_migration_info_clear (info);
  memset (info, 0, sizeof *info);
  if (!reply)
    return FALSE;
  if (!JSON_NODE_HOLDS_OBJECT (reply))
    {
      g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_PROTOCOL,
                   "query-migrate: reply is not an object");
      return FALSE;
    }
  object = json_node_get_object (reply);
  /* Before any migration QEMU answers {} . */
  if (!vms_reply_opt_string (object, "status", "query-migrate", NULL, &status,
                             error)
      || !vms_reply_opt_string (object, "error-desc", "query-migrate", NULL,
                                &desc, error)
      || !vms_reply_opt_object (object, "ram", "query-migrate", &ram, error))
    return FALSE;
  info->status = vms_qemu_migration_status_parse (status);
  info->status_name = g_strdup (status ? status : "none");
  info->error_desc = g_strdup (desc);
  info->ram_transferred = optional_int (ram, "transferred", 0);
  info->ram_remaining = optional_int (ram, "remaining", 0);
  info->ram_total = optional_int (ram, "total", 0);
  info->dirty_sync_count = optional_int (ram, "dirty-sync-count", 0);
  info->dirty_pages_rate = optional_int (ram, "dirty-pages-rate", 0);
  info->page_size = optional_int (ram, "page-size", 4096);
  mbps = ram ? json_object_get_member (ram, "mbps") : NULL;
  if (mbps && JSON_NODE_HOLDS_VALUE (mbps))
    info->mbps = json_node_get_double (mbps);
  info->total_time_ms = optional_int (object, "total-time", 0);
  info->downtime_ms = optional_int (object, "downtime", -1);
  info->expected_downtime_ms = optional_int (object, "expected-downtime", -1);
  info->cpu_throttle_percent
      = MAX (optional_int (object, "cpu-throttle-percentage", 0), 0);
  return TRUE;
}

static gboolean
run (VmsQmp *qmp, const char *command, JsonObject *arguments, const char *what,
     GError **error)
{
  g_autoptr (JsonNode) reply = vms_qmp_execute (qmp, command, arguments, error);

  if (!reply)
    {
      g_prefix_error (error, "%s: ", what);
      return FALSE;
    }
  return TRUE;
}

gboolean
vms_qemu_migration_set_capabilities (VmsQmp *qmp, const char *const *names,
                                     gboolean state, GError **error)
{
  g_autoptr (JsonObject) arguments = json_object_new ();
  JsonArray *list = json_array_new ();
  g_autofree char *joined = g_strjoinv (", ", (char **)names);
  g_autofree char *what = g_strdup_printf ("setting migration capabilities "
                                           "%s",
                                           joined);

  for (guint i = 0; names[i]; i++)
    {
      JsonObject *capability = json_object_new ();

      json_object_set_string_member (capability, "capability", names[i]);
      json_object_set_boolean_member (capability, "state", state);
      json_array_add_object_element (list, capability);
    }
  json_object_set_array_member (arguments, "capabilities", list);
  return run (qmp, "migrate-set-capabilities", arguments, what, error);
}

gboolean
vms_qemu_migration_set_parameters (VmsQmp *qmp, JsonObject *parameters,
                                   GError **error)
{
  return run (qmp, "migrate-set-parameters", parameters,
              "setting migration parameters", error);
}

static gboolean
run_with_uri (VmsQmp *qmp, const char *command, const char *uri, GError **error)
{
  g_autoptr (JsonObject) arguments = json_object_new ();
  g_autofree char *what = g_strdup_printf ("%s %s", command, uri);

  json_object_set_string_member (arguments, "uri", uri);
  return run (qmp, command, arguments, what, error);
}

gboolean
vms_qemu_migration_incoming (VmsQmp *qmp, const char *uri, GError **error)
{
  return run_with_uri (qmp, "migrate-incoming", uri, error);
}

gboolean
vms_qemu_migration_start (VmsQmp *qmp, const char *uri, GError **error)
{
  return run_with_uri (qmp, "migrate", uri, error);
}

gboolean
vms_qemu_migration_continue (VmsQmp *qmp, GError **error)
{
  g_autoptr (JsonObject) arguments = json_object_new ();

  json_object_set_string_member (arguments, "state", "pre-switchover");
  return run (qmp, "migrate-continue", arguments, "migrate-continue", error);
}

/* Whether migration capability name is on; FALSE with an error when QEMU
 * does not say. */
static gboolean
capability_state (VmsQmp *qmp, const char *name, gboolean *state,
                  GError **error)
{
  static const char command[] = "query-migrate-capabilities";
  g_autoptr (JsonNode) reply = vms_qmp_execute (qmp, command, NULL, error);
  JsonArray *list;

  *state = FALSE;
  if (!reply || !(list = vms_reply_array (reply, command, error)))
    return FALSE;
  for (guint i = 0; i < json_array_get_length (list); i++)
    {
      JsonObject *capability = vms_reply_array_object (list, i, command, error);
      const char *capability_name;

      if (!capability
          || !vms_reply_string (capability, "capability", command,
                                &capability_name, error))
        return FALSE;
      if (g_str_equal (capability_name, name))
        return vms_reply_bool (capability, "state", command, state, error);
    }
  return TRUE;
}

gboolean
vms_qemu_migration_cancel (VmsQmp *qmp, guint timeout_ms,
                           VmsQemuMigrationStatus *final, GError **error)
{
  static const char *const events[] = { "MIGRATION", NULL };
  gint64 deadline = vms_event_deadline (timeout_ms);
  g_autoptr (VmsEventWatch) watch = NULL;
  gboolean events_on = FALSE;

  /* Without the capability QEMU is silent and only asking again helps;
   * a QEMU that cannot say is asked again too. */
  capability_state (qmp, "events", &events_on, NULL);
  watch = vms_event_watch_new (qmp, events, NULL);
  if (!run (qmp, "migrate_cancel", NULL, "cancelling the migration", error))
    return FALSE;
  for (;;)
    {
      g_auto (VmsQemuMigrationInfo) info = { 0 };
      g_autoptr (GError) wait_error = NULL;

      if (!vms_qemu_migration_query (qmp, &info, error))
        return FALSE;
      if (vms_qemu_migration_status_is_final (info.status)
          || info.status == VMS_QEMU_MIGRATION_NONE)
        {
          if (final)
            *final = info.status;
          return TRUE;
        }
      if (g_get_monotonic_time () > deadline)
        {
          g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_TIMEOUT,
                       "the migration is still '%s' %u ms after "
                       "migrate_cancel",
                       info.status_name, timeout_ms);
          return FALSE;
        }
      /* Each MIGRATION event is a status change: ask what it is now. */
      if (!vms_event_watch_next (
              watch,
              events_on ? deadline
                        : MIN (deadline, vms_event_deadline (POLL_INTERVAL_MS)),
              NULL, NULL, &wait_error)
          && !g_error_matches (wait_error, VMS_QMP_ERROR,
                               VMS_QMP_ERROR_TIMEOUT))
        {
          g_propagate_error (error, g_steal_pointer (&wait_error));
          return FALSE;
        }
    }
}

char *
vms_qemu_migration_run_state (VmsQmp *qmp, GError **error)
{
  g_autoptr (JsonNode) reply
      = vms_qmp_execute (qmp, "query-status", NULL, error);
  const char *status;

  if (!reply)
    return NULL;
  if (!JSON_NODE_HOLDS_OBJECT (reply))
    {
      g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_PROTOCOL,
                   "query-status: reply is not an object");
      return NULL;
    }
  if (!vms_reply_string (json_node_get_object (reply), "status", "query-status",
                         &status, error))
    return NULL;
  return g_strdup (status);
}

char *
vms_qemu_migration_machine_type (VmsQmp *qmp, GError **error)
{
  g_autoptr (JsonObject) arguments = json_object_new ();
  g_autoptr (JsonNode) reply = NULL;

  json_object_set_string_member (arguments, "path", "/machine");
  json_object_set_string_member (arguments, "property", "type");
  reply = vms_qmp_execute (qmp, "qom-get", arguments, error);
  if (!reply)
    return NULL;
  if (!JSON_NODE_HOLDS_VALUE (reply)
      || json_node_get_value_type (reply) != G_TYPE_STRING)
    {
      g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_PROTOCOL,
                   "qom-get /machine type: not a string");
      return NULL;
    }
  return g_strdup (json_node_get_string (reply));
}
