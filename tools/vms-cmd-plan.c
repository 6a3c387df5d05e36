/* vmshift plan: migration plans (vmshift-plan(5)).  "check" reads a plan
 * and says what it would run, in which order; "run" runs it; "status"
 * and "abort" look at and stop its jobs (vms-plan-status.c).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-cli.h"
#include "vms-cli-server.h"
#include "vms-estimate-file.h"
#include "vms-job.h"
#include "vms-path.h"
#include "vms-option.h"
#include "vms-plan-run.h"
#include "vms-plan-status.h"
#include "vms-plan.h"
#include "vms-progress.h"

#include <errno.h>
#include <json-glib/json-glib.h>

/* Where a VM goes, for people. */
static char *
describe_vm (const VmsPlanVm *vm)
{
  if (vm->domain)
    return g_strdup_printf ("libvirt domain %s at %s -> %s", vm->domain,
                            vm->connect, vm->dest);
  return g_strdup_printf ("QEMU %s -> %s (memory to %s)", vm->source,
                          vm->dest_qmp, vm->dest_uri);
}

/* The units the plan runs, in order (its estimate's, order, when not
 * NULL): a group where its first member stands, each other VM on its
 * own. */
static GPtrArray *
plan_order (const VmsPlan *plan, const char *const *order)
{
  GPtrArray *units = g_ptr_array_new ();
  g_autoptr (GPtrArray) vms = vms_plan_run_order (plan, order);

  for (guint i = 0; i < vms->len; i++)
    {
      const VmsPlanVm *vm = vms->pdata[i];
      gpointer unit = vm->group
                          ? (gpointer)vms_plan_find_group (plan, vm->group)
                          : (gpointer)vm;

      if (!g_ptr_array_find (units, unit, NULL))
        g_ptr_array_add (units, unit);
    }
  return units;
}

static gboolean
is_group (const VmsPlan *plan, gconstpointer unit)
{
  return g_ptr_array_find (plan->groups, unit, NULL);
}

static void
print_header (const VmsPlan *plan)
{
  g_autofree char *rate
      = plan->bandwidth ? vms_format_size (plan->bandwidth) : NULL;
  g_autofree char *deadline
      = plan->deadline ? g_date_time_format_iso8601 (plan->deadline) : NULL;
  g_autofree char *alert = plan->alert ? g_strjoinv (" ", plan->alert) : NULL;

  g_print ("plan %s: %u VM%s, %u group%s; %" G_GUINT64_FORMAT
           " copying at once; bandwidth %s%s; deadline %s; alert %s\n",
           plan->path, plan->vms->len, plan->vms->len == 1 ? "" : "s",
           plan->groups->len, plan->groups->len == 1 ? "" : "s",
           plan->concurrency, rate ? rate : "unlimited", rate ? "/s" : "",
           deadline ? deadline : "none", alert ? alert : "none");
}

static void
print_vm (const VmsPlan *plan, const VmsPlanVm *vm, const char *indent)
{
  g_autofree char *where = describe_vm (vm);
  guint64 bandwidth = vms_plan_vm_bandwidth (plan, vm);
  g_autofree char *rate = bandwidth ? vms_format_size (bandwidth) : NULL;
  g_autofree char *link
      = vm->link ? g_strdup_printf (" (link %s)", vm->link) : g_strdup ("");

  g_print ("%s%s: %s; sink %s; max-downtime %" G_GUINT64_FORMAT
           " ms; final-sync %s; bandwidth %s%s%s\n",
           indent, vm->name, where, vm->sink, vm->max_downtime_ms,
           vm->final_sync, rate ? rate : "unlimited", rate ? "/s" : "", link);
}

static void
print_plan (const VmsPlan *plan, GPtrArray *units)
{
  print_header (plan);
  if (plan->estimate)
    g_print ("in estimate %s's order (shortest predicted first), each VM "
             "reported against its prediction\n",
             plan->estimate);
  for (guint i = 0; i < units->len; i++)
    {
      const VmsPlanGroup *group = units->pdata[i];
      g_autofree char *objective = NULL;

      if (!is_group (plan, group))
        {
          g_print ("%u. ", i + 1);
          print_vm (plan, units->pdata[i], "");
          continue;
        }
      objective = group->max_downtime_ms ? g_strdup_printf (
                      "%" G_GUINT64_FORMAT " ms", group->max_downtime_ms)
                                         : g_strdup ("none");
      g_print ("%u. group %s: %u VMs switch over together (group downtime "
               "objective %s, a member ready waits %" G_GUINT64_FORMAT
               " s for the others)\n",
               i + 1, group->name, group->members->len, objective,
               group->hold_s);
      for (guint k = 0; k < group->members->len; k++)
        print_vm (plan, group->members->pdata[k], "   ");
    }
}

static void
add_vm (JsonBuilder *b, const VmsPlan *plan, const VmsPlanVm *vm)
{
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "vm");
  json_builder_add_string_value (b, vm->name);
  json_builder_set_member_name (b, "backend");
  json_builder_add_string_value (b, vm->domain ? "libvirt" : "qmp");
  json_builder_set_member_name (b, "source");
  json_builder_add_string_value (b, vm->domain ? vm->domain : vm->source);
  json_builder_set_member_name (b, "sink");
  json_builder_add_string_value (b, vm->sink);
  json_builder_set_member_name (b, "max-downtime-ms");
  json_builder_add_int_value (b, vm->max_downtime_ms);
  json_builder_set_member_name (b, "final-sync");
  json_builder_add_string_value (b, vm->final_sync);
  json_builder_set_member_name (b, "bandwidth");
  json_builder_add_int_value (b, vms_plan_vm_bandwidth (plan, vm));
  if (vm->link)
    {
      json_builder_set_member_name (b, "link");
      json_builder_add_string_value (b, vm->link);
    }
  json_builder_end_object (b);
}

/* The order as JSON: one entry per unit, a group with its members. */
static JsonNode *
order_to_json (const VmsPlan *plan, GPtrArray *units)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();

  json_builder_begin_array (b);
  for (guint i = 0; i < units->len; i++)
    {
      const VmsPlanGroup *group = units->pdata[i];

      if (!is_group (plan, group))
        {
          add_vm (b, plan, units->pdata[i]);
          continue;
        }
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "group");
      json_builder_add_string_value (b, group->name);
      json_builder_set_member_name (b, "max-downtime-ms");
      json_builder_add_int_value (b, group->max_downtime_ms);
      json_builder_set_member_name (b, "hold-seconds");
      json_builder_add_int_value (b, group->hold_s);
      json_builder_set_member_name (b, "members");
      json_builder_begin_array (b);
      for (guint k = 0; k < group->members->len; k++)
        add_vm (b, plan, group->members->pdata[k]);
      json_builder_end_array (b);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  return json_builder_get_root (b);
}

/* Where the plan's jobs live: --state-dir, the plan's, or the default;
 * absolute (a rollback talks to QEMU about sockets in it). */
static char *
plan_state_dir (const VmsPlan *plan, const char *state_dir_option)
{
  char *state_dir = g_strdup (state_dir_option  ? state_dir_option
                              : plan->state_dir ? plan->state_dir
                                                : NULL);

  if (!state_dir)
    state_dir = vms_job_default_state_dir ();
  vms_path_make_absolute (&state_dir, vms_path_absolute);
  return state_dir;
}

static int
plan_check (const char *path, const char *state_dir_option, gboolean json)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsPlan) plan = vms_plan_load (path, &error);
  g_autoptr (GPtrArray) units = NULL;
  g_auto (GStrv) order = NULL;

  if (!plan)
    {
      vms_cli_error ("plan", "%s", error->message);
      return VMS_EXIT_USAGE;
    }
  if (plan->estimate)
    {
      g_autofree char *state_dir = plan_state_dir (plan, state_dir_option);

      order = vms_estimate_file_load_order (state_dir, plan->estimate, &error);
      if (!order)
        {
          vms_cli_error ("plan", "%s: %s", path, error->message);
          return VMS_EXIT_USAGE;
        }
    }
  units = plan_order (plan, (const char *const *)order);
  if (json)
    {
      g_autoptr (VmsProgress) progress = vms_progress_new (VMS_PROGRESS_JSON);
      JsonObject *fields = json_object_new ();

      json_object_set_string_member (fields, "plan", plan->path);
      json_object_set_int_member (fields, "concurrency", plan->concurrency);
      json_object_set_int_member (fields, "bandwidth", plan->bandwidth);
      if (plan->estimate)
        json_object_set_string_member (fields, "estimate", plan->estimate);
      json_object_set_member (fields, "order", order_to_json (plan, units));
      vms_progress_event (progress, "plan", fields, "plan %s: %u units",
                          plan->path, units->len);
    }
  else
    print_plan (plan, units);
  return VMS_EXIT_OK;
}

/* Every VM of the plan migrated, or as many as can be. */
static int
plan_run (const VmsPlan *plan, const char *state_dir, gboolean json)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsProgress) progress = NULL;
  GCancellable *cancellable;

  if (g_mkdir_with_parents (state_dir, 0700) < 0)
    {
      vms_cli_error ("plan", "cannot create %s: %s", state_dir,
                     g_strerror (errno));
      return VMS_EXIT_FAILED;
    }
  progress = vms_progress_new (json ? VMS_PROGRESS_JSON : VMS_PROGRESS_TEXT);
  cancellable = vms_cli_cancel_on_signals ();
  if (vms_plan_run (plan, state_dir, progress, cancellable, &error))
    return VMS_EXIT_OK;
  vms_cli_error ("plan", "%s", error->message);
  return vms_cli_exit_code (error);
}

/* run, status or abort of the plan at path. */
static int
plan_command (const char *command, const char *path,
              const char *state_dir_option, gboolean json, guint timeout_s)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsPlan) plan = vms_plan_load (path, &error);
  g_autofree char *state_dir = NULL;

  if (!plan)
    {
      vms_cli_error ("plan", "%s", error->message);
      return VMS_EXIT_USAGE;
    }
  state_dir = plan_state_dir (plan, state_dir_option);
  if (g_str_equal (command, "run"))
    return plan_run (plan, state_dir, json);
  if (g_str_equal (command, "status"))
    return vms_plan_status (plan, state_dir, json);
  return vms_plan_abort (plan, state_dir, timeout_s);
}

/* ---- with --server: the plan kept and run by vmshiftd ---- */

/* What vmshiftd calls the plan in file or name arg: its base name
 * without ".plan". */
static char *
server_plan_name (const char *arg)
{
  g_autofree char *base = g_path_get_basename (arg);

  if (g_str_has_suffix (base, ".plan"))
    base[strlen (base) - strlen (".plan")] = '\0';
  return g_steal_pointer (&base);
}

static int
server_plan_run (const VmsCliServerOptions *server, const char *path,
                 const char *name, gboolean json)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *text = NULL;
  g_autofree char *where = g_strconcat ("/plans/", name, NULL);
  g_autofree char *run = g_strconcat (where, "/run", NULL);
  g_autofree char *what = g_strconcat ("plan ", name, NULL);
  g_autoptr (JsonObject) kept = NULL;
  int status = VMS_EXIT_OK;

  if (!g_file_get_contents (path, &text, NULL, &error))
    {
      vms_cli_error ("plan", "%s", error->message);
      return VMS_EXIT_USAGE;
    }
  kept = vms_cli_server_call (server, "plan", "PUT", where, "text/plain", text,
                              &status);
  if (!kept)
    return status;
  return vms_cli_server_start (server, "plan", what, "POST", run, NULL, NULL,
                               json);
}

static int
server_plan_status (const VmsCliServerOptions *server, const char *name,
                    gboolean json)
{
  g_autofree char *path = g_strconcat ("/plans/", name, NULL);
  g_autofree char *where = NULL;
  int status = VMS_EXIT_OK;
  g_autoptr (JsonObject) state
      = vms_cli_server_call (server, "plan", "GET", path, NULL, NULL, &status);
  const char *last_error;

  if (!state)
    return status;
  if (!json_object_has_member (state, "vms")
      || !json_object_has_member (state, "groups")
      || !json_object_has_member (state, "migrated"))
    {
      vms_cli_error ("plan", "vmshiftd's answer is not a plan's state");
      return VMS_EXIT_CONNECT;
    }
  where = g_strdup_printf (
      "in vmshiftd at %s, %s", server->url,
      json_object_get_boolean_member_with_default (state, "running", FALSE)
          ? "running"
          : "not running");
  vms_plan_status_print (state, name, where, json);
  last_error
      = json_object_get_string_member_with_default (state, "last-error", NULL);
  if (last_error && !json)
    g_print ("its last run: %s\n", last_error);
  return VMS_EXIT_OK;
}

static int
plan_on_server (const VmsCliServerOptions *server, const char *command,
                const char *arg, gboolean json)
{
  g_autofree char *name = server_plan_name (arg);
  g_autofree char *path = g_strconcat ("/plans/", name, "/abort", NULL);
  g_autofree char *what = g_strconcat ("plan ", name, NULL);
  int status;

  if (g_str_equal (command, "run"))
    return server_plan_run (server, arg, name, json);
  if (g_str_equal (command, "status"))
    return server_plan_status (server, name, json);
  status = vms_cli_server_start (server, "plan", what, "POST", path, NULL, NULL,
                                 json);
  /* What the abort left, as plan status shows it. */
  return status == VMS_EXIT_OK ? server_plan_status (server, name, json)
                               : status;
}

int
vms_cmd_plan (int argc, char **argv)
{
  gboolean json = FALSE;
  g_autofree char *state_dir = NULL;
  g_autofree char *timeout = NULL;
  guint64 timeout_s = VMS_ABORT_DEFAULT_TIMEOUT_S;
  g_auto (VmsCliServerOptions) server = { 0 };
  g_autofree GOptionEntry *server_entries
      = vms_cli_server_option_entries (&server);
  const GOptionEntry entries[]
      = { { "json", 0, 0, G_OPTION_ARG_NONE, &json,
            "JSON events instead of text", NULL },
          { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &state_dir,
            "where the VMs' jobs (and the plan's estimate) live (default: "
            "the plan's state-dir, else /var/lib/vmshift as root)",
            "DIR" },
          { "timeout", 't', 0, G_OPTION_ARG_STRING, &timeout,
            "abort: wait at most S s for each job's rollback (default 120)",
            "S" },
          G_OPTION_ENTRY_NULL };
  g_autoptr (GOptionContext) context = g_option_context_new (
      "check PLAN | run PLAN | status PLAN | abort PLAN");
  g_autoptr (GError) error = NULL;

  g_option_context_set_summary (
      context, "check PLAN: read the plan file (vmshift-plan(5)), refuse "
               "what is wrong in it with the section and key, and print "
               "its VMs and groups in the order a run takes them.\n"
               "run PLAN: migrate its VMs, at most its concurrency at "
               "once; one that fails does not stop the others; run again "
               "after a stop, it skips what migrated and resumes the "
               "rest.  A group's members switch over together, or all "
               "roll back.\n"
               "status PLAN: each VM's job: phase, state, what was sent, "
               "attempts, the last error; each group's count.\n"
               "abort PLAN: every migration of the plan that runs rolls "
               "back (the plan's run stops), as 'vmshift abort' does for "
               "one job.\n"
               "With --server URL, run sends the plan file to vmshiftd, "
               "which keeps it by its base name (without .plan) and runs "
               "it, and follows it to its end; status and abort take that "
               "name (or the file) and ask vmshiftd.");
  g_option_context_add_main_entries (context, entries, NULL);
  g_option_context_add_main_entries (context, server_entries, NULL);
  g_set_prgname ("vmshift plan");
  if (!g_option_context_parse (context, &argc, &argv, &error)
      || !vms_option_seconds ("--timeout", timeout, 1, 24 * 3600, &timeout_s,
                              &error))
    {
      vms_cli_error ("plan", "%s", error->message);
      return VMS_EXIT_USAGE;
    }
  if (argc == 3 && g_str_equal (argv[1], "check"))
    return plan_check (argv[2], state_dir, json);
  if (argc == 3 && server.url
      && (g_str_equal (argv[1], "run") || g_str_equal (argv[1], "status")
          || g_str_equal (argv[1], "abort")))
    return plan_on_server (&server, argv[1], argv[2], json);
  if (argc == 3
      && (g_str_equal (argv[1], "run") || g_str_equal (argv[1], "status")
          || g_str_equal (argv[1], "abort")))
    return plan_command (argv[1], argv[2], state_dir, json, timeout_s);
  vms_cli_error ("plan", "expected 'check PLAN', 'run PLAN', 'status PLAN' "
                         "or 'abort PLAN' (see 'vmshift plan --help')");
  return VMS_EXIT_USAGE;
}
