/* vmshift plan status and plan abort.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-plan-status.h"
#include "vms-cli.h"
#include "vms-job-lock.h"
#include "vms-job.h"
#include "vms-plan-state.h"
#include "vms-progress.h"

#include <json-glib/json-glib.h>

/* Predicted against measured, against the objective. */
static void
append_downtime (GString *line, JsonObject *status)
{
  gint64 predicted = json_object_get_int_member_with_default (
      status, "predicted-downtime-ms", -1);
  gint64 measured
      = json_object_get_int_member_with_default (status, "downtime-ms", -1);
  gint64 objective
      = json_object_get_int_member_with_default (status, "max-downtime-ms", -1);

  if (predicted >= 0)
    g_string_append_printf (
        line, "; downtime predicted %" G_GINT64_FORMAT " ms", predicted);
  if (measured >= 0)
    g_string_append_printf (line, "%s downtime %" G_GINT64_FORMAT " ms",
                            predicted >= 0 ? ", measured" : ";", measured);
  if (objective >= 0 && (predicted >= 0 || measured >= 0))
    g_string_append_printf (line, " (objective %" G_GINT64_FORMAT " ms)",
                            objective);
  if (json_object_has_member (status, "estimated-seconds"))
    g_string_append_printf (
        line, "; estimated %.0f s and %" G_GINT64_FORMAT " ms, took %.0f s",
        json_object_get_double_member (status, "estimated-seconds"),
        json_object_get_int_member_with_default (status,
                                                 "estimated-downtime-ms", 0),
        json_object_get_double_member_with_default (status, "seconds", 0));
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
  if (json_object_has_member (status, "copy-eta-s"))
    g_string_append_printf (line,
                            ", disks copied in about %" G_GINT64_FORMAT " s",
                            json_object_get_int_member (status, "copy-eta-s"));
  if (json_object_has_member (status, "attempts"))
    g_string_append_printf (line, "; %" G_GINT64_FORMAT " attempt(s)",
                            json_object_get_int_member (status, "attempts"));
  append_downtime (line, status);
  if (error)
    g_string_append_printf (line, "; last error: %s", error);
  g_print ("%s\n", line->str);
}

int
vms_plan_status (const VmsPlan *plan, const char *state_dir, gboolean json)
{
  g_autoptr (GError) ledger_error = NULL;
  g_autoptr (JsonObject) state
      = vms_plan_state_new (plan, state_dir, &ledger_error);
  g_autofree char *where = g_strdup_printf ("jobs in %s", state_dir);

  if (ledger_error)
    g_printerr ("vmshift: plan: warning: %s\n", ledger_error->message);
  vms_plan_status_print (state, plan->path, where, json);
  return VMS_EXIT_OK;
}

void
vms_plan_status_print (JsonObject *state, const char *name, const char *where,
                       gboolean json)
{
  JsonArray *vms = json_object_get_array_member (state, "vms");
  JsonArray *groups = json_object_get_array_member (state, "groups");
  gint64 migrated = json_object_get_int_member (state, "migrated");
  gint64 eta_s = json_object_get_int_member_with_default (state, "eta-s", -1);

  if (json)
    {
      g_autoptr (VmsProgress) progress = vms_progress_new (VMS_PROGRESS_JSON);

      vms_progress_event (progress, "plan-status", json_object_ref (state),
                          "plan %s: %" G_GINT64_FORMAT " of %u VMs migrated",
                          name, migrated, json_array_get_length (vms));
      return;
    }
  g_print ("plan %s: %" G_GINT64_FORMAT " of %u VMs migrated (%s)", name,
           migrated, json_array_get_length (vms), where);
  if (eta_s >= 0)
    g_print ("; the rest in about %" G_GINT64_FORMAT " s at the pace so far",
             eta_s);
  g_print ("\n");
  for (guint i = 0; i < json_array_get_length (groups); i++)
    {
      JsonObject *group = json_array_get_object_element (groups, i);

      gint64 downtime = json_object_get_int_member_with_default (
          group, "group-downtime-ms", -1);

      g_print ("group %s: %" G_GINT64_FORMAT " of %u migrated",
               json_object_get_string_member (group, "group"),
               json_object_get_int_member (group, "migrated"),
               json_array_get_length (
                   json_object_get_array_member (group, "members")));
      if (downtime >= 0)
        g_print ("; group downtime %" G_GINT64_FORMAT
                 " ms, switchovers %" G_GINT64_FORMAT " ms apart",
                 downtime,
                 json_object_get_int_member_with_default (
                     group, "switchover-spread-ms", -1));
      if (json_object_has_member (group, "max-downtime-ms"))
        g_print (" (objective %" G_GINT64_FORMAT " ms)",
                 json_object_get_int_member (group, "max-downtime-ms"));
      g_print ("\n");
    }
  for (guint i = 0; i < json_array_get_length (vms); i++)
    print_vm_status (json_array_get_object_element (vms, i), "  ");
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
