/* vmshift: a plan's ledger.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-plan-ledger.h"

#include <stdio.h>

struct _VmsPlanLedger
{
  GMutex lock;
  char *path;
  JsonObject *vms;    /* name → what was said of it */
  JsonObject *groups; /* likewise */
  gboolean write_failed;
};

/* Beside the jobs, named after the plan's file and, so that two plans of
 * one name in different directories do not share it, its path. */
static char *
ledger_path (const char *state_dir, const char *plan_path)
{
  g_autofree char *absolute = g_canonicalize_filename (plan_path, NULL);
  g_autofree char *base = g_path_get_basename (absolute);
  g_autofree char *digest
      = g_compute_checksum_for_string (G_CHECKSUM_SHA256, absolute, -1);
  g_autofree char *name = g_strdup_printf ("plan-%s-%.8s.json", base, digest);

  return g_build_filename (state_dir, name, NULL);
}

/* object's member name if it is an object, else NULL; borrowed.
 * (json_object_get_object_member complains of a missing one.) */
static JsonObject *
object_member (JsonObject *object, const char *name)
{
  JsonNode *node = json_object_get_member (object, name);

  return node && JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node)
                                               : NULL;
}

static JsonObject *
member_object (JsonObject *root, const char *name)
{
  JsonObject *object = object_member (root, name);

  return object ? json_object_ref (object) : json_object_new ();
}

VmsPlanLedger *
vms_plan_ledger_open (const char *state_dir, const char *plan_path,
                      GError **error)
{
  g_autoptr (VmsPlanLedger) ledger = g_new0 (VmsPlanLedger, 1);
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonNode *root;

  g_mutex_init (&ledger->lock);
  ledger->path = ledger_path (state_dir, plan_path);
  if (!g_file_test (ledger->path, G_FILE_TEST_EXISTS))
    {
      ledger->vms = json_object_new ();
      ledger->groups = json_object_new ();
      return g_steal_pointer (&ledger);
    }
  if (!json_parser_load_from_file (parser, ledger->path, error))
    {
      g_prefix_error (error, "plan ledger %s: ", ledger->path);
      return NULL;
    }
  root = json_parser_get_root (parser);
  if (!JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                   "plan ledger %s: not a JSON object", ledger->path);
      return NULL;
    }
  ledger->vms = member_object (json_node_get_object (root), "vms");
  ledger->groups = member_object (json_node_get_object (root), "groups");
  return g_steal_pointer (&ledger);
}

void
vms_plan_ledger_free (VmsPlanLedger *ledger)
{
  if (!ledger)
    return;
  g_mutex_clear (&ledger->lock);
  g_free (ledger->path);
  g_clear_pointer (&ledger->vms, json_object_unref);
  g_clear_pointer (&ledger->groups, json_object_unref);
  g_free (ledger);
}

/* Called locked. */
static void
write_locked (VmsPlanLedger *ledger)
{
  g_autoptr (JsonObject) root = json_object_new ();
  g_autoptr (JsonNode) node = json_node_new (JSON_NODE_OBJECT);
  g_autoptr (GError) error = NULL;
  g_autofree char *text = NULL;

  json_object_set_object_member (root, "vms", json_object_ref (ledger->vms));
  json_object_set_object_member (root, "groups",
                                 json_object_ref (ledger->groups));
  json_node_set_object (node, root);
  text = json_to_string (node, TRUE);
  if (g_file_set_contents (ledger->path, text, -1, &error)
      || ledger->write_failed)
    return;
  ledger->write_failed = TRUE;
  fprintf (stderr, "vmshift: plan: warning: %s (plan status will lack it)\n",
           error->message);
}

/* Called locked: the record of name in records, made if missing. */
static JsonObject *
record_locked (JsonObject *records, const char *name)
{
  JsonObject *record = object_member (records, name);

  if (!record)
    {
      record = json_object_new ();
      json_object_set_object_member (records, name, record);
    }
  return record;
}

static void
copy_int (JsonObject *to, JsonObject *from, const char *member)
{
  if (from && json_object_has_member (from, member))
    json_object_set_int_member (to, member,
                                json_object_get_int_member (from, member));
}

static gint64
now_s (void)
{
  return g_get_real_time () / G_USEC_PER_SEC;
}

/* Called locked: TRUE when event changed vm's record. */
static gboolean
note_vm_locked (VmsPlanLedger *ledger, const char *vm, const char *event,
                JsonObject *fields)
{
  JsonObject *record;

  if (g_str_equal (event, "plan-vm-start"))
    {
      /* A new attempt: what the last one measured is no longer it. */
      record = json_object_new ();
      json_object_set_int_member (record, "started-at", now_s ());
      copy_int (record, fields, "attempt");
      json_object_set_string_member (record, "outcome", "running");
      json_object_set_object_member (ledger->vms, vm, record);
      return TRUE;
    }
  record = record_locked (ledger->vms, vm);
  if (g_str_equal (event, "downtime-miss-predicted") && fields)
    {
      gint64 predicted = json_object_get_int_member_with_default (
          fields, "predicted-ms", -1);

      if (predicted <= json_object_get_int_member_with_default (
              record, "predicted-downtime-ms", -1))
        return FALSE;
      json_object_set_int_member (record, "predicted-downtime-ms", predicted);
      return TRUE;
    }
  if (g_str_equal (event, "migrated"))
    {
      copy_int (record, fields, "downtime-ms");
      copy_int (record, fields, "max-downtime-ms");
      /* The estimate's prediction, when it was reported against one. */
      if (fields && json_object_has_member (fields, "predicted-seconds"))
        {
          json_object_set_double_member (
              record, "estimated-seconds",
              json_object_get_double_member (fields, "predicted-seconds"));
          json_object_set_int_member (
              record, "estimated-downtime-ms",
              json_object_get_int_member (fields, "predicted-downtime-ms"));
        }
      if (fields && json_object_has_member (fields, "seconds"))
        json_object_set_double_member (
            record, "seconds",
            json_object_get_double_member (fields, "seconds"));
      return TRUE;
    }
  if (g_str_equal (event, "plan-vm") && fields)
    {
      const char *outcome
          = json_object_get_string_member_with_default (fields, "outcome", "");

      /* Skipped by this run: what the run that moved it said stays. */
      if (g_str_equal (outcome, "migrated-earlier")
          && json_object_has_member (record, "started-at"))
        return FALSE;
      json_object_set_string_member (record, "outcome", outcome);
      json_object_set_int_member (record, "ended-at", now_s ());
      return TRUE;
    }
  return FALSE;
}

void
vms_plan_ledger_note (VmsPlanLedger *ledger, const char *vm, const char *event,
                      JsonObject *fields)
{
  gboolean changed = FALSE;

  if (!ledger)
    return;
  g_mutex_lock (&ledger->lock);
  if (vm)
    changed = note_vm_locked (ledger, vm, event, fields);
  else if (g_str_equal (event, "plan-group") && fields
           && json_object_has_member (fields, "group"))
    {
      JsonObject *record = json_object_new ();

      json_object_set_string_member (
          record, "outcome",
          json_object_get_string_member_with_default (fields, "outcome", ""));
      copy_int (record, fields, "group-downtime-ms");
      copy_int (record, fields, "switchover-spread-ms");
      json_object_set_int_member (record, "ended-at", now_s ());
      json_object_set_object_member (
          ledger->groups, json_object_get_string_member (fields, "group"),
          record);
      changed = TRUE;
    }
  if (changed)
    write_locked (ledger);
  g_mutex_unlock (&ledger->lock);
}

JsonObject *
vms_plan_ledger_vm (VmsPlanLedger *ledger, const char *vm)
{
  return object_member (ledger->vms, vm);
}

JsonObject *
vms_plan_ledger_group (VmsPlanLedger *ledger, const char *group)
{
  return object_member (ledger->groups, group);
}
