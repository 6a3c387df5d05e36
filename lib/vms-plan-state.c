/* vmshift: where a plan stands, from its jobs' state files and its
 * ledger: what vmshift plan status prints and vmshiftd serves.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-plan-state.h"
#include "vms-job-lock.h"
#include "vms-job.h"
#include "vms-plan-ledger.h"

static void
copy_member (JsonObject *object, const char *member, JsonNode *node,
             gpointer user_data)
{
  json_object_set_member (user_data, member, json_node_copy (node));
}

/* What the plan's runs said of it (times, downtimes), and, while its
 * disks' background copy runs, when that should end at the rate since
 * its attempt started. */
static void
add_ledger (JsonObject *status, JsonObject *record, const char *state,
            guint64 size, guint64 sent)
{
  gint64 started, elapsed;

  if (!record)
    return;
  json_object_foreach_member (record, copy_member, status);
  started = json_object_get_int_member_with_default (record, "started-at", 0);
  elapsed = g_get_real_time () / G_USEC_PER_SEC - started;
  if (g_strcmp0 (state, "background") == 0 && started > 0 && elapsed > 0
      && sent > 0 && sent < size
      && !json_object_has_member (record, "ended-at"))
    json_object_set_int_member (
        status, "copy-eta-s", (gint64)((size - sent) * (double)elapsed / sent));
}

/* One VM as its job says it stands; "not-started" without a job. */
static JsonObject *
vm_status (const char *state_dir, const VmsPlanVm *vm, VmsPlanLedger *ledger)
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
  if (ledger)
    add_ledger (status, vms_plan_ledger_vm (ledger, vm->name),
                job->migration ? job->migration->state : NULL, size, sent);
  return status;
}

static gboolean
is_migrated (JsonObject *status)
{
  return g_str_equal (json_object_get_string_member (status, "status"),
                      vms_job_phase_name (VMS_JOB_PHASE_MIGRATED));
}

/* A group's members, with how many migrated. */
static JsonObject *
group_status (const VmsPlanGroup *group, GHashTable *by_vm,
              VmsPlanLedger *ledger)
{
  JsonObject *status = json_object_new ();
  JsonObject *record
      = ledger ? vms_plan_ledger_group (ledger, group->name) : NULL;

  if (record)
    json_object_foreach_member (record, copy_member, status);
  if (group->max_downtime_ms)
    json_object_set_int_member (status, "max-downtime-ms",
                                group->max_downtime_ms);
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

/* The rest of the plan at the pace of its VMs migrated so far (their
 * mean time, as many at once as its concurrency), -1 when none was. */
static gint64
plan_eta (const VmsPlan *plan, JsonArray *vms)
{
  double total_s = 0;
  guint timed = 0, left = 0;

  for (guint i = 0; i < json_array_get_length (vms); i++)
    {
      JsonObject *status = json_array_get_object_element (vms, i);

      if (!is_migrated (status))
        left++;
      else if (json_object_has_member (status, "seconds"))
        {
          total_s += json_object_get_double_member (status, "seconds");
          timed++;
        }
    }
  if (!timed)
    return -1;
  return (gint64)(total_s / timed
                  * ((left + plan->concurrency - 1) / plan->concurrency));
}

JsonObject *
vms_plan_state_new (const VmsPlan *plan, const char *state_dir,
                    GError **ledger_error)
{
  g_autoptr (GHashTable) by_vm = g_hash_table_new_full (
      g_str_hash, g_str_equal, NULL, (GDestroyNotify)json_object_unref);
  JsonObject *state = json_object_new ();
  JsonArray *vms = json_array_new ();
  JsonArray *groups = json_array_new ();
  g_autoptr (VmsPlanLedger) ledger
      = vms_plan_ledger_open (state_dir, plan->path, ledger_error);
  guint migrated = 0;
  gint64 eta_s;

  for (guint i = 0; i < plan->vms->len; i++)
    {
      const VmsPlanVm *vm = plan->vms->pdata[i];
      JsonObject *status = vm_status (state_dir, vm, ledger);

      migrated += is_migrated (status);
      g_hash_table_insert (by_vm, vm->name, json_object_ref (status));
      json_array_add_object_element (vms, status);
    }
  for (guint i = 0; i < plan->groups->len; i++)
    json_array_add_object_element (
        groups, group_status (plan->groups->pdata[i], by_vm, ledger));
  eta_s = plan_eta (plan, vms);
  json_object_set_string_member (state, "plan", plan->path);
  json_object_set_string_member (state, "state-dir", state_dir);
  json_object_set_int_member (state, "migrated", migrated);
  json_object_set_int_member (state, "vm-count", plan->vms->len);
  if (eta_s >= 0)
    json_object_set_int_member (state, "eta-s", eta_s);
  json_object_set_array_member (state, "vms", vms);
  json_object_set_array_member (state, "groups", groups);
  return state;
}
