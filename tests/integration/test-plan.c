/* Integration tests: vmshift plan run, several real QEMUs (TCG) migrated
 * unattended to one real sink, as many at once as the plan allows.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-test-command.h"
#include "vms-test-sink.h"
#include "vms-test-vm.h"
#include "vms-test.h"

#include <glib/gstdio.h>
#include <signal.h>
#include <json-glib/json-glib.h>
#include <string.h>

/* Five VMs on their own, or three in a group. */
#define MAX_VMS 5
#define GROUP_VMS 3
#define CONCURRENCY 2
#define DISK_SIZE (32 * 1024 * 1024)
/* Small guests: up to five sources and five destinations under TCG. */
#define RAM_MIB 96

static const char *vmshift;

typedef struct
{
  guint n_vms;
  VmsTestVm *source[MAX_VMS];
  VmsTestVm *dest[MAX_VMS];
  VmsTestSink *sink;
  char *state_dir;
  char *plan_path;
  char *alerts_path;
  gboolean grouped; /* the three VMs are one group */
} Fixture;

static const char *
vm_name (guint i)
{
  static const char *const names[MAX_VMS] = { "pa", "pb", "pc", "pd", "pe" };

  return names[i];
}

static char *
replica_name (guint i)
{
  return g_strdup_printf ("%s-vd0", vm_name (i));
}

/* A source writing to its disk, with data for the background copy. */
static VmsTestVm *
start_source (guint i, GError **error)
{
  VmsTestVmOptions options = {
    .workload = "writer",
    .extra_cmdline = "vms.write_rate_kib=256 vms.write_span_mib=8",
    .memory_mib = RAM_MIB,
    .disks = { { "raw", DISK_SIZE } },
    .second_qmp = TRUE,
    .name = vm_name (i),
  };
  VmsTestVm *vm = vms_test_vm_start (&options, error);

  if (!vm || !vms_test_vm_wait_ready (vm, error)
      || !vms_test_vm_qemu_io (vm, "vd0", "write -P 0x3c 8M 8M", error))
    {
      g_clear_pointer (&vm, vms_test_vm_free);
      return NULL;
    }
  return vm;
}

/* Its destination, paused, on the replica the sink made. */
static VmsTestVm *
start_destination (Fixture *fixture, guint i, GError **error)
{
  g_autofree char *name = replica_name (i);
  g_autofree char *path = vms_test_sink_replica_path (fixture->sink, name);
  VmsTestVmOptions options = {
    .workload = "writer",
    .extra_cmdline = "vms.write_rate_kib=256 vms.write_span_mib=8",
    .memory_mib = RAM_MIB,
    .disks = { { "raw", 0, path } },
    .incoming = TRUE,
    .start_paused = TRUE,
    .second_qmp = TRUE,
  };

  vms_test_sink_create_replica (fixture->sink, name, DISK_SIZE);
  return vms_test_vm_start (&options, error);
}

/* Three VMs, each to its own destination QEMU over a unix socket; every
 * end of a VM and of the plan goes to an alert command that appends it
 * to a file. */
static void
write_plan (Fixture *fixture)
{
  g_autoptr (GString) plan = g_string_new (NULL);
  g_autofree char *sink = vms_test_sink_uri (fixture->sink, "");

  /* A group runs with the defaults, but its destinations stay paused
   * until the disks are compared. */
  if (fixture->grouped)
    g_string_append_printf (plan,
                            "[plan]\nconcurrency = %d\nsink = %s\n"
                            "suspend = true\n"
                            "alert = /bin/sh -c 'cat >> \"$0\"' %s\n"
                            "[group trio]\nhold = 120\n",
                            fixture->n_vms, sink, fixture->alerts_path);
  else
    {
      /* A deadline the VMs cannot meet: passed already. */
      g_autoptr (GDateTime) now = g_date_time_new_now_utc ();
      g_autoptr (GDateTime) past = g_date_time_add_seconds (now, -1);
      g_autofree char *deadline
          = g_date_time_format (past, "%Y-%m-%dT%H:%M:%SZ");

      g_string_append_printf (plan,
                              "[plan]\nconcurrency = %d\nsink = %s\n"
                              "final-sync = pause\nsuspend = true\n"
                              "deadline = %s\n"
                              "alert = /bin/sh -c 'cat >> \"$0\"' %s\n",
                              CONCURRENCY, sink, deadline,
                              fixture->alerts_path);
    }
  /* pc alone gets an objective no pause can meet; VM 1 alone replication
   * backpressure (an allowance it never reaches: only its summary). */
  for (guint i = 0; i < fixture->n_vms; i++)
    g_string_append_printf (
        plan,
        "[vm %s]\nsource = qmp:%s\ndest-qmp = qmp:%s\n"
        "dest-uri = unix:%s/memory.sock\n%s%s%s",
        vm_name (i), fixture->source[i]->qmp2_path, fixture->dest[i]->qmp2_path,
        fixture->dest[i]->dir, fixture->grouped ? "group = trio\n" : "",
        !fixture->grouped && i == 2 ? "max-downtime = 1\n" : "",
        !fixture->grouped && i == 1 ? "max-guest-latency = 60000\n" : "");
  assert_true (g_file_set_contents (fixture->plan_path, plan->str, -1, NULL));
}

static int
setup_fixture (void **state, gboolean grouped)
{
  Fixture *fixture = g_new0 (Fixture, 1);
  g_autoptr (GError) error = NULL;

  *state = fixture;
  fixture->grouped = grouped;
  fixture->n_vms = grouped ? GROUP_VMS : MAX_VMS;
  fixture->sink = vms_test_sink_setup (NULL);
  if (!fixture->sink)
    return -1;
  fixture->state_dir = g_build_filename (fixture->sink->dir, "state", NULL);
  fixture->plan_path = g_build_filename (fixture->sink->dir, "vms.plan", NULL);
  fixture->alerts_path = g_build_filename (fixture->sink->dir, "alerts", NULL);
  for (guint i = 0; i < fixture->n_vms; i++)
    if (!(fixture->source[i] = start_source (i, &error))
        || !(fixture->dest[i] = start_destination (fixture, i, &error)))
      {
        print_error ("cannot start VM %u: %s\n", i, error->message);
        return -1;
      }
  write_plan (fixture);
  return 0;
}

static int
setup (void **state)
{
  return setup_fixture (state, FALSE);
}

static int
setup_group (void **state)
{
  return setup_fixture (state, TRUE);
}

static int
teardown (void **state)
{
  Fixture *fixture = *state;
  int status = 0;

  for (guint i = 0; i < fixture->n_vms; i++)
    {
      g_clear_pointer (&fixture->source[i], vms_test_vm_free);
      g_clear_pointer (&fixture->dest[i], vms_test_vm_free);
    }
  g_free (fixture->state_dir);
  g_free (fixture->plan_path);
  g_free (fixture->alerts_path);
  if (fixture->sink)
    status = vms_test_sink_teardown (fixture->sink);
  g_free (fixture);
  return status;
}

/* vmshift plan COMMAND of the fixture's plan, started. */
static VmsTestCommand *
plan_start (Fixture *fixture, const char *command)
{
  g_autofree char *state_arg
      = g_strdup_printf ("--state-dir=%s", fixture->state_dir);
  const char *argv[] = { vmshift,   "plan",   command, fixture->plan_path,
                         state_arg, "--json", NULL };

  return vms_test_command_start (NULL, argv, fixture->sink->dir);
}

static VmsTestCommand *
plan_run (Fixture *fixture)
{
  return plan_start (fixture, "run");
}

/* vm runs: its heartbeat goes two past after (fails the test, saying
 * what, if not within a minute). */
static void
assert_runs_after (VmsTestVm *vm, guint64 after, const char *what,
                   VmsTestCommand *run)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *needle
      = g_strdup_printf ("vms-heartbeat %" G_GUINT64_FORMAT, after + 2);

  if (vms_test_vm_wait_serial (vm, needle, 60000, &error))
    return;
  if (run)
    g_printerr ("what vmshift said:\n%s\n", run->out->str);
  fail_msg ("%s does not run: %s", what, error->message);
}

static void
assert_runs (VmsTestVm *vm, guint64 after, const char *what)
{
  assert_runs_after (vm, after, what, NULL);
}

/* Each VM's disk identical to its replica, each guest running on at its
 * destination once let go. */
static void
assert_moved (Fixture *fixture)
{
  for (guint i = 0; i < fixture->n_vms; i++)
    {
      g_autofree char *name = replica_name (i);
      g_autofree char *replica
          = vms_test_sink_replica_path (fixture->sink, name);
      g_autofree char *what
          = g_strdup_printf ("VM %s at its destination", vm_name (i));
      g_autoptr (GError) error = NULL;
      guint64 beat = vms_test_vm_last_heartbeat (fixture->source[i]);
      g_autoptr (JsonNode) reply = NULL;

      vms_test_assert_identical (fixture->source[i]->disk_paths[0], "raw",
                                 replica);
      reply = vms_qmp_execute (fixture->dest[i]->qmp, "cont", NULL, &error);
      vms_assert_ok (reply, error);
      assert_runs (fixture->dest[i], beat, what);
    }
}

static int line_of (const char *output, const char *needle, const char *second,
                    gboolean from_end);

/* The most VMs that ran at once, from the order of the events: a VM runs
 * from its plan-vm-start to its plan-vm. */
static guint
most_at_once (const char *output)
{
  g_auto (GStrv) lines = g_strsplit (output, "\n", -1);
  guint running = 0, most = 0;

  for (guint i = 0; lines[i]; i++)
    {
      if (strstr (lines[i], "\"event\":\"plan-vm-start\""))
        {
          running++;
          most = MAX (most, running);
        }
      else if (strstr (lines[i], "\"event\":\"plan-vm\""))
        running--;
    }
  return most;
}

/* The events in output whose names start with prefix ("plan-"), to show
 * in a failure (caller frees). */
static char *
events_named (const char *output, const char *prefix)
{
  g_auto (GStrv) lines = g_strsplit (output, "\n", -1);
  GString *found = g_string_new (NULL);
  g_autofree char *needle = g_strdup_printf ("\"event\":\"%s", prefix);

  for (guint i = 0; lines[i]; i++)
    if (strstr (lines[i], needle))
      g_string_append_printf (found, "%s\n", lines[i]);
  return g_string_free (found, FALSE);
}

/* The outcome of vm's last plan-vm event in command's output, or NULL
 * (caller frees). */
static char *
outcome_of (VmsTestCommand *command, const char *vm)
{
  g_auto (GStrv) lines = g_strsplit (command->out->str, "\n", -1);
  g_autofree char *who = g_strdup_printf ("\"vm\":\"%s\"", vm);
  char *outcome = NULL;

  for (guint k = 0; lines[k]; k++)
    {
      g_autoptr (JsonParser) parser = json_parser_new ();

      if (!strstr (lines[k], "\"event\":\"plan-vm\"") || !strstr (lines[k], who)
          || !json_parser_load_from_data (parser, lines[k], -1, NULL))
        continue;
      g_free (outcome);
      outcome = g_strdup (json_object_get_string_member_with_default (
          json_node_get_object (json_parser_get_root (parser)), "outcome",
          ""));
    }
  return outcome;
}

/* Every VM of the fixture ended with outcome. */
static void
assert_outcomes (Fixture *fixture, VmsTestCommand *command,
                 const char *outcome)
{
  for (guint i = 0; i < fixture->n_vms; i++)
    {
      g_autofree char *found = outcome_of (command, vm_name (i));

      if (!found)
        fail_msg ("no end for VM %s: %s", vm_name (i), command->out->str);
      if (!g_str_equal (found, outcome))
        fail_msg ("VM %s: %s, not %s", vm_name (i), found, outcome);
    }
}

static void assert_status_says_downtimes (Fixture *fixture);

/* Five VMs, two at a time: all migrate, never more than two copying at
 * once, each disk identical, each guest running on at its destination;
 * the alert command got each VM's end and the plan's.  A second run
 * finds them migrated and sends nothing. */
static void
test_plan_runs_vms_unattended (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) run = plan_run (fixture);
  g_autoptr (VmsTestCommand) again = NULL;
  g_autofree char *alerts = NULL;
  guint most;

  vms_test_command_expect_success (run);
  most = most_at_once (run->out->str);
  if (most != CONCURRENCY)
    {
      g_autofree char *events = events_named (run->out->str, "plan-");

      fail_msg ("%u VMs at once, not %d:\n%s", most, CONCURRENCY, events);
    }
  assert_outcomes (fixture, run, "migrated");
  assert_moved (fixture);
  /* The plan's keys reach the VM's migration, and only its own. */
  for (guint i = 0; i < fixture->n_vms; i++)
    {
      g_autofree char *who = g_strdup_printf ("\"vm\":\"%s\"", vm_name (i));
      gboolean summary
          = line_of (run->out->str, "\"event\":\"replication-backpressure\"",
                     who, FALSE)
            >= 0;

      if (summary != (i == 1))
        fail_msg ("%s: replication backpressure %s", vm_name (i),
                  summary ? "on, not asked for" : "off, asked for");
    }
  {
    g_autoptr (GError) error = NULL;

    vms_assert_ok (
        g_file_get_contents (fixture->alerts_path, &alerts, NULL, &error),
        error);
  }
  for (guint i = 0; i < fixture->n_vms; i++)
    {
      g_autofree char *who = g_strdup_printf ("\"vm\":\"%s\"", vm_name (i));

      if (!strstr (alerts, who))
        fail_msg ("no alert for %s: %s", vm_name (i), alerts);
    }
  assert_non_null (strstr (alerts, "\"event\":\"plan-done\""));
  /* The deadline's miss was told once. */
  {
    int told = line_of (alerts, "\"event\":\"deadline-miss-predicted\"", NULL,
                        FALSE);

    if (told < 0
        || told
               != line_of (alerts, "\"event\":\"deadline-miss-predicted\"",
                           NULL, TRUE))
      fail_msg ("the deadline's miss was not alerted once:\n%s", alerts);
  }
  /* The impossible objective was told before the VM switched over. */
  {
    int predicted = line_of (alerts, "\"event\":\"downtime-miss-predicted\"",
                             "\"vm\":\"pc\"", FALSE);
    int ended
        = line_of (alerts, "\"event\":\"plan-vm\"", "\"vm\":\"pc\"", FALSE);

    if (predicted < 0 || predicted > ended
        || line_of (run->out->str, "\"event\":\"downtime-miss-predicted\"",
                    "\"vm\":\"pc\"", FALSE)
               > line_of (run->out->str, "\"state\":\"switchover\"",
                          "\"vm\":\"pc\"", FALSE))
      fail_msg ("no miss of pc's 1 ms objective predicted before its "
                "switchover:\n%s",
                alerts);
  }

  again = plan_run (fixture);
  vms_test_command_expect_success (again);
  assert_outcomes (fixture, again, "migrated-earlier");
  assert_null (strstr (again->out->str, "\"event\":\"plan-vm-start\""));
  assert_status_says_downtimes (fixture);
}

/* The index of the first (last: from_end) line of output holding both
 * needles (second may be NULL), -1 if none. */
static int
line_of (const char *output, const char *needle, const char *second,
         gboolean from_end)
{
  g_auto (GStrv) lines = g_strsplit (output, "\n", -1);
  int found = -1;

  for (int i = 0; lines[i]; i++)
    if (strstr (lines[i], needle) && (!second || strstr (lines[i], second)))
      {
        found = i;
        if (!from_end)
          break;
      }
  return found;
}

/* A group of three with the defaults: each member held until all could
 * switch over, then all paused before any went on; every disk identical,
 * every guest running on at its destination; the group's downtime and
 * the spread of its switchovers reported, to the alert command too. */
static void
test_group_switches_over_together (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) run = plan_run (fixture);
  g_autoptr (JsonObject) group = NULL;
  g_autofree char *alerts = NULL;
  const char *out;
  g_autofree char *events = NULL;
  int first_go, last_paused, released;

  vms_test_command_expect_success (run);
  out = run->out->str;
  events = events_named (out, "group-");
  assert_outcomes (fixture, run, "migrated");
  for (guint i = 0; i < fixture->n_vms; i++)
    {
      g_autofree char *who = g_strdup_printf ("\"vm\":\"%s\"", vm_name (i));

      if (line_of (out, "\"event\":\"group-paused\"", who, FALSE) < 0)
        fail_msg ("%s never waited for its group:\n%s", vm_name (i), events);
      /* A member's own events say its group too. */
      {
        g_auto (GStrv) lines = g_strsplit (out, "\n", -1);
        int at = line_of (out, "\"state\":\"memory\"", who, FALSE);

        if (at < 0 || !strstr (lines[at], "\"group\":\"trio\""))
          fail_msg ("%s's state event does not name its group:\n%s",
                    vm_name (i), out);
      }
    }
  /* No member went on before every one was paused. */
  first_go = line_of (out, "\"event\":\"group-switchover\"", NULL, FALSE);
  last_paused = line_of (out, "\"event\":\"group-paused\"", NULL, TRUE);
  if (first_go < last_paused)
    fail_msg ("a member switched over before the others were paused:\n%s",
              events);
  /* Held while it ran: released only once all could switch over (a
   * QEMU that converged while held is not released: it is paused). */
  released = line_of (out, "\"event\":\"group-released\"", NULL, FALSE);
  if (released >= 0
      && released < line_of (out, "\"event\":\"group-ready\"", NULL, TRUE))
    fail_msg ("released before the last member was ready:\n%s", events);
  group = vms_test_command_last_event (run, "plan-group", NULL);
  assert_non_null (group);
  assert_string_equal (json_object_get_string_member (group, "outcome"),
                       "migrated");
  assert_true (json_object_has_member (group, "group-downtime-ms"));
  print_message ("group of %d: group downtime %" G_GINT64_FORMAT
                 " ms, switchovers %" G_GINT64_FORMAT " ms apart\n",
                 fixture->n_vms,
                 json_object_get_int_member (group, "group-downtime-ms"),
                 json_object_get_int_member (group, "switchover-spread-ms"));
  assert_moved (fixture);
  assert_true (g_file_get_contents (fixture->alerts_path, &alerts, NULL, NULL));
  assert_non_null (strstr (alerts, "\"event\":\"plan-group\""));
}

/* One member's destination QEMU killed during its memory phase: the
 * whole group rolls back, naming it, and every source runs on.  With
 * new destinations, a second run resumes the three jobs and moves the
 * group. */
static void
test_group_rolls_back_with_a_member (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) run = plan_run (fixture);
  g_autoptr (VmsTestCommand) again = NULL;
  g_autoptr (JsonObject) group = NULL;
  g_autoptr (GError) error = NULL;

  vms_test_command_wait_for (run, "\"state\":\"memory\",\"vm\":\"pb\"", 300000);
  vms_test_vm_kill (fixture->dest[1]);
  assert_int_equal (vms_test_command_wait (run), 1);
  assert_outcomes (fixture, run, "failed");
  group = vms_test_command_last_event (run, "plan-group", NULL);
  assert_non_null (group);
  assert_string_equal (json_object_get_string_member (group, "outcome"),
                       "failed");
  if (!strstr (json_object_get_string_member (group, "error"), "pb: "))
    fail_msg ("the failure does not name pb: %s",
              json_object_get_string_member (group, "error"));
  {
    g_autofree char *alerts = NULL;

    assert_true (
        g_file_get_contents (fixture->alerts_path, &alerts, NULL, NULL));
    if (line_of (alerts, "\"event\":\"plan-vm\"", "\"outcome\":\"failed\"",
                 FALSE)
            < 0
        || line_of (alerts, "\"event\":\"plan-group\"",
                    "\"outcome\":\"failed\"", FALSE)
               < 0)
      fail_msg ("the alert command was not told of the failure:\n%s", alerts);
  }
  for (guint i = 0; i < fixture->n_vms; i++)
    {
      g_autofree char *what
          = g_strdup_printf ("source %s after the rollback", vm_name (i));

      assert_runs_after (fixture->source[i],
                         vms_test_vm_last_heartbeat (fixture->source[i]), what,
                         run);
      vms_assert_ok (vms_test_vm_restart (fixture->dest[i], FALSE, &error),
                     error);
    }
  again = plan_run (fixture);
  vms_test_command_expect_success (again);
  assert_outcomes (fixture, again, "migrated");
  assert_moved (fixture);
}

/* The event named event of vm in output (a JSON line), or NULL; caller
 * unrefs. */
static JsonObject *
event_of_vm (const char *output, const char *event, const char *vm)
{
  g_autofree char *name = g_strdup_printf ("\"event\":\"%s\"", event);
  g_autofree char *who = g_strdup_printf ("\"vm\":\"%s\"", vm);
  g_auto (GStrv) lines = g_strsplit (output, "\n", -1);
  int at = line_of (output, name, who, TRUE);
  g_autoptr (JsonParser) parser = json_parser_new ();

  if (at < 0 || !json_parser_load_from_data (parser, lines[at], -1, NULL))
    return NULL;
  return json_object_ref (json_node_get_object (json_parser_get_root (parser)));
}

/* vmshift plan COMMAND of the fixture's plan, run to its end. */
static VmsTestCommand *
plan_command (Fixture *fixture, const char *command)
{
  VmsTestCommand *run = plan_start (fixture, command);

  vms_test_command_wait (run);
  return run;
}

/* What plan status says of vm (caller unrefs). */
static JsonObject *
vm_status_of (VmsTestCommand *status, const char *vm)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonObject *event
      = vms_test_command_find_event (status, "plan-status", parser);
  JsonArray *vms;

  assert_non_null (event);
  vms = json_object_get_array_member (event, "vms");
  for (guint i = 0; i < json_array_get_length (vms); i++)
    {
      JsonObject *one = json_array_get_object_element (vms, i);

      if (g_str_equal (json_object_get_string_member (one, "vm"), vm))
        return json_object_ref (one);
    }
  fail_msg ("no status for %s: %s", vm, status->out->str);
  return NULL;
}

/* The status plan status gives vm. */
static char *
status_of (VmsTestCommand *status, const char *vm, gint64 *pid)
{
  g_autoptr (JsonObject) one = vm_status_of (status, vm);

  *pid = json_object_get_int_member_with_default (one, "pid", 0);
  return g_strdup (json_object_get_string_member (one, "status"));
}

/* plan status after the run: each VM's measured downtime against its
 * objective, pc's predicted miss beside it, and nothing left to wait
 * for. */
static void
assert_status_says_downtimes (Fixture *fixture)
{
  g_autoptr (VmsTestCommand) status = plan_command (fixture, "status");
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonObject *plan;

  assert_int_equal (status->status, 0);
  for (guint i = 0; i < fixture->n_vms; i++)
    {
      g_autoptr (JsonObject) one = vm_status_of (status, vm_name (i));

      if (!json_object_has_member (one, "downtime-ms")
          || !json_object_has_member (one, "max-downtime-ms")
          || !json_object_has_member (one, "started-at")
          || !json_object_has_member (one, "ended-at"))
        fail_msg ("plan status lacks %s's times and downtime: %s", vm_name (i),
                  status->out->str);
    }
  {
    g_autoptr (JsonObject) pc = vm_status_of (status, "pc");

    assert_int_equal (json_object_get_int_member (pc, "max-downtime-ms"), 1);
    assert_true (json_object_get_int_member_with_default (
                     pc, "predicted-downtime-ms", -1)
                 > 1);
  }
  plan = vms_test_command_find_event (status, "plan-status", parser);
  assert_int_equal (json_object_get_int_member_with_default (plan, "eta-s", -1),
                    0);
}

/* vmshift killed (-9) while pb's memory crosses: plan status shows pb's
 * job orphaned, plan abort rolls it back and its source runs on (and
 * finishes a job the kill caught past its switchover); the next run
 * skips what committed, and pb's disks are not sent again. */
static void
test_plan_survives_kill9 (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) run = plan_run (fixture);
  g_autoptr (VmsTestCommand) status = NULL;
  g_autoptr (VmsTestCommand) aborted = NULL;
  g_autoptr (VmsTestCommand) after = NULL;
  g_autoptr (VmsTestCommand) again = NULL;
  g_autoptr (JsonObject) migrated = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *pb_status = NULL;
  g_autofree char *pb_after = NULL;
  gboolean done_before[MAX_VMS] = { FALSE };
  gint64 pid = -1;

  /* pa, beside pb, is done first: pb measures its guest's write latency
   * before it copies. */
  vms_test_command_wait_for (run, "\"state\":\"done\",\"vm\":\"pa\"", 300000);
  vms_test_command_wait_for (run, "\"state\":\"memory\",\"vm\":\"pb\"", 300000);
  kill (run->pid, SIGKILL);
  vms_test_command_wait (run);
  status = plan_command (fixture, "status");
  assert_int_equal (status->status, 0);
  pb_status = status_of (status, "pb", &pid);
  assert_string_equal (pb_status, "migrating");
  assert_int_equal (pid, 0);

  aborted = plan_command (fixture, "abort");
  if (aborted->status != 0)
    {
      g_autofree char *err = vms_test_command_stderr (aborted);

      fail_msg ("plan abort: %d: %s", aborted->status, err);
    }
  after = plan_command (fixture, "status");
  pb_after = status_of (after, "pb", &pid);
  assert_string_equal (pb_after, "rolled-back");
  assert_runs (fixture->source[1],
               vms_test_vm_last_heartbeat (fixture->source[1]),
               "pb's source after plan abort");
  /* Those not moved get fresh destinations: a rolled-back memory
   * migration ends its destination QEMU. */
  for (guint i = 0; i < fixture->n_vms; i++)
    {
      g_autofree char *st = status_of (after, vm_name (i), &pid);

      done_before[i] = g_str_equal (st, "migrated");
      if (!done_before[i])
        vms_assert_ok (vms_test_vm_restart (fixture->dest[i], FALSE, &error),
                       error);
    }
  again = plan_run (fixture);
  vms_test_command_expect_success (again);
  /* What committed before the kill is not started again. */
  for (guint i = 0; i < fixture->n_vms; i++)
    {
      g_autofree char *outcome = outcome_of (again, vm_name (i));
      g_autoptr (JsonObject) started
          = event_of_vm (again->out->str, "plan-vm-start", vm_name (i));

      if (g_strcmp0 (outcome, done_before[i] ? "migrated-earlier" : "migrated")
              != 0
          || (done_before[i] && started))
        fail_msg ("%s (%s before the kill) ended %s in the next run:\n%s",
                  vm_name (i), done_before[i] ? "migrated" : "not migrated",
                  outcome ? outcome : "nowhere", again->out->str);
    }
  /* The kill came in the middle: pa was done, pb was not.  (How many
   * others finished meanwhile is the machine's pace: three VMs can
   * migrate while pb measures its guest's writes; one past its
   * switchover at the kill was finished by plan abort.) */
  assert_true (done_before[0]);
  assert_false (done_before[1]);
  {
    g_autoptr (JsonObject) started
        = event_of_vm (again->out->str, "plan-vm-start", "pb");

    assert_non_null (started);
    assert_true (json_object_get_boolean_member (started, "resume"));
  }
  migrated = event_of_vm (again->out->str, "migrated", "pb");
  assert_non_null (migrated);
  assert_int_equal (
      json_object_get_int_member (migrated, "disk-background-bytes"), 0);
  assert_moved (fixture);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_plan_runs_vms_unattended, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_plan_survives_kill9, setup, teardown),
    cmocka_unit_test_setup_teardown (test_group_switches_over_together,
                                     setup_group, teardown),
    cmocka_unit_test_setup_teardown (test_group_rolls_back_with_a_member,
                                     setup_group, teardown),
  };

  vms_test_guest_prepare ();
  vmshift = vms_test_built_program ("VMS_VMSHIFT");
  return vms_test_run_group ("plan", tests, G_N_ELEMENTS (tests), NULL, NULL);
}
