/* vmshift plan status and plan abort.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-plan-status.h"
#include "vms-cli.h"
#include "vms-job-lock.h"
#include "vms-job.h"
#include "vms-progress.h"

#include <json-glib/json-glib.h>

/* One VM as its job says it stands; "not-started" without a job. */
static JsonObject *
vm_status (const char *state_dir, const VmsPlanVm *vm)
{
  JsonObject *status = json_object_new ();
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsJob) job = vms_job_load (state_dir, vm->name, &error);
  guint64 size = 0, sent = 0;

  json_object_set_string_member (status, "vm", vm->name);
  if (vm->group)
    json_object_set_string_member (status, "group", vm->group);
  if (!job)
    {
      gboolean missing
          = g_error_matches (error, VMS_JOB_ERROR, VMS_JOB_ERROR_NOT_FOUND);

      json_object_set_string_member (status, "status",
                                     missing ? "not-started" : "unreadable");
      if (!missing)
        json_object_set_string_member (status, "error", error->message);
      return status;
    }
  for (guint i = 0; i < job->disks->len; i++)
    {
      const VmsJobDisk *disk = job->disks->pdata[i];

      size += disk->size;
      sent += disk->bytes_written;
    }
  json_object_set_string_member (status, "status",
                                 vms_job_phase_name (job->phase));
  json_object_set_int_member (
      status, "pid", MAX (vms_job_lock_holder (state_dir, vm->name), 0));
  json_object_set_int_member (status, "disk-bytes", size);
  json_object_set_int_member (status, "sent-bytes", sent);
  json_object_set_int_member (status, "updated", job->updated);
  if (job->migration)
    {
      if (job->migration->state)
        json_object_set_string_member (status, "state", job->migration->state);
      json_object_set_int_member (status, "attempts", job->migration->attempts);
      if (job->migration->last_error && job->phase != VMS_JOB_PHASE_MIGRATED)
        json_object_set_string_member (status, "error",
                                       job->migration->last_error);
    }
  return status;
}

static void
print_vm_status (JsonObject *status, const char *indent)
{
  const char *state
      = json_object_get_string_member_with_default (status, "state", NULL);
  gint64 pid = json_object_get_int_member_with_default (status, "pid", 0);
  const char *error
      = json_object_get_string_member_with_default (status, "error", NULL);
  g_autoptr (GString) line = g_string_new (NULL);

  g_string_printf (line, "%s%s: %s", indent,
                   json_object_get_string_member (status, "vm"),
                   json_object_get_string_member (status, "status"));
  if (state)
    g_string_append_printf (line, ", state %s", state);
  if (pid > 0)
    g_string_append_printf (line, ", vmshift pid %" G_GINT64_FORMAT, pid);
  if (json_object_has_member (status, "disk-bytes"))
    {
      g_autofree char *sent
          = vms_format_size (json_object_get_int_member (status, "sent-bytes"));
      g_autofree char *size
          = vms_format_size (json_object_get_int_member (status, "disk-bytes"));

      g_string_append_printf (line, "; %s sent of disks of %s", sent, size);
    }
  if (json_object_has_member (status, "attempts"))
    g_string_append_printf (line, "; %" G_GINT64_FORMAT " attempt(s)",
                            json_object_get_int_member (status, "attempts"));
  if (error)
    g_string_append_printf (line, "; last error: %s", error);
  g_print ("%s\n", line->str);
}

static gboolean
is_migrated (JsonObject *status)
{
  return g_str_equal (json_object_get_string_member (status, "status"),
                      vms_job_phase_name (VMS_JOB_PHASE_MIGRATED));
}

/* A group's members, with how many migrated. */
static JsonObject *
group_status (const VmsPlanGroup *group, GHashTable *by_vm)
{
  JsonObject *status = json_object_new ();
  JsonArray *members = json_array_new ();
  guint migrated = 0;

  for (guint i = 0; i < group->members->len; i++)
    {
      const VmsPlanVm *vm = group->members->pdata[i];
      JsonObject *member = g_hash_table_lookup (by_vm, vm->name);

      migrated += is_migrated (member);
      json_array_add_string_element (members, vm->name);
    }
  json_object_set_string_member (status, "group", group->name);
  json_object_set_array_member (status, "members", members);
  json_object_set_int_member (status, "migrated", migrated);
  return status;
}

int
vms_plan_status (const VmsPlan *plan, const char *state_dir, gboolean json)
{
  g_autoptr (GHashTable) by_vm = g_hash_table_new_full (
      g_str_hash, g_str_equal, NULL, (GDestroyNotify)json_object_unref);
  JsonArray *vms = json_array_new ();
  JsonArray *groups = json_array_new ();
  guint migrated = 0;

  for (guint i = 0; i < plan->vms->len; i++)
    {
      const VmsPlanVm *vm = plan->vms->pdata[i];
      JsonObject *status = vm_status (state_dir, vm);

      migrated += is_migrated (status);
      g_hash_table_insert (by_vm, vm->name, json_object_ref (status));
      json_array_add_object_element (vms, status);
    }
  for (guint i = 0; i < plan->groups->len; i++)
    json_array_add_object_element (
        groups, group_status (plan->groups->pdata[i], by_vm));
  if (json)
    {
      g_autoptr (VmsProgress) progress = vms_progress_new (VMS_PROGRESS_JSON);
      JsonObject *fields = json_object_new ();

      json_object_set_string_member (fields, "plan", plan->path);
      json_object_set_string_member (fields, "state-dir", state_dir);
      json_object_set_int_member (fields, "migrated", migrated);
      json_object_set_array_member (fields, "vms", vms);
      json_object_set_array_member (fields, "groups", groups);
      vms_progress_event (progress, "plan-status", fields,
                          "plan %s: %u of %u VMs migrated", plan->path,
                          migrated, plan->vms->len);
      return VMS_EXIT_OK;
    }
  g_print ("plan %s: %u of %u VMs migrated (jobs in %s)\n", plan->path,
           migrated, plan->vms->len, state_dir);
  for (guint i = 0; i < json_array_get_length (groups); i++)
    {
      JsonObject *group = json_array_get_object_element (groups, i);

      g_print ("group %s: %" G_GINT64_FORMAT " of %u migrated\n",
               json_object_get_string_member (group, "group"),
               json_object_get_int_member (group, "migrated"),
               json_array_get_length (
                   json_object_get_array_member (group, "members")));
    }
  for (guint i = 0; i < json_array_get_length (vms); i++)
    print_vm_status (json_array_get_object_element (vms, i), "  ");
  json_array_unref (vms);
  json_array_unref (groups);
  return VMS_EXIT_OK;
}

int
vms_plan_abort (const VmsPlan *plan, const char *state_dir, guint timeout_s)
{
  int worst = VMS_EXIT_OK;
  guint asked = 0;

  for (guint i = 0; i < plan->vms->len; i++)
    {
      const VmsPlanVm *vm = plan->vms->pdata[i];
      g_autoptr (VmsJob) job = vms_job_load (state_dir, vm->name, NULL);
      gint64 holder = vms_job_lock_holder (state_dir, vm->name);
      int code;

      /* Nothing runs for it: never started, done, or rolled back. */
      if (!job || (job->phase != VMS_JOB_PHASE_MIGRATING && holder == 0))
        continue;
      asked++;
      code = vms_cli_abort_job (state_dir, vm->name, timeout_s);
      if (code != VMS_EXIT_OK && (worst == VMS_EXIT_OK || code > worst))
        worst = code;
    }
  if (!asked)
    g_print ("plan %s: no VM is being migrated; nothing to abort\n",
             plan->path);
  return worst;
}
