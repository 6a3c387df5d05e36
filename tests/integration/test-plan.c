/* Integration tests: vmshift plan run, several real QEMUs (TCG) migrated
 * unattended to one real sink, as many at once as the plan allows.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-test-command.h"
#include "vms-test-sink.h"
#include "vms-test-vm.h"
#include "vms-test.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <string.h>

#define N_VMS 3
#define CONCURRENCY 2
#define DISK_SIZE (32 * 1024 * 1024)
/* Small guests: three sources and three destinations under TCG. */
#define RAM_MIB 96

static const char *vmshift;

typedef struct
{
  VmsTestVm *source[N_VMS];
  VmsTestVm *dest[N_VMS];
  VmsTestSink *sink;
  char *state_dir;
  char *plan_path;
  char *alerts_path;
} Fixture;

static const char *
vm_name (guint i)
{
  static const char *const names[N_VMS] = { "pa", "pb", "pc" };

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

  g_string_append_printf (plan,
                          "[plan]\nconcurrency = %d\nsink = %s\n"
                          "final-sync = pause\nsuspend = true\n"
                          "alert = /bin/sh -c 'cat >> \"$0\"' %s\n",
                          CONCURRENCY, sink, fixture->alerts_path);
  for (guint i = 0; i < N_VMS; i++)
    g_string_append_printf (plan,
                            "[vm %s]\nsource = qmp:%s\ndest-qmp = qmp:%s\n"
                            "dest-uri = unix:%s/memory.sock\n",
                            vm_name (i), fixture->source[i]->qmp2_path,
                            fixture->dest[i]->qmp2_path, fixture->dest[i]->dir);
  assert_true (g_file_set_contents (fixture->plan_path, plan->str, -1, NULL));
}

static int
setup (void **state)
{
  Fixture *fixture = g_new0 (Fixture, 1);
  g_autoptr (GError) error = NULL;

  *state = fixture;
  fixture->sink = vms_test_sink_setup (NULL);
  if (!fixture->sink)
    return -1;
  fixture->state_dir = g_build_filename (fixture->sink->dir, "state", NULL);
  fixture->plan_path = g_build_filename (fixture->sink->dir, "vms.plan", NULL);
  fixture->alerts_path = g_build_filename (fixture->sink->dir, "alerts", NULL);
  for (guint i = 0; i < N_VMS; i++)
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
teardown (void **state)
{
  Fixture *fixture = *state;
  int status = 0;

  for (guint i = 0; i < N_VMS; i++)
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

static VmsTestCommand *
plan_run (Fixture *fixture)
{
  g_autofree char *state_arg
      = g_strdup_printf ("--state-dir=%s", fixture->state_dir);
  const char *argv[] = { vmshift,   "plan",   "run", fixture->plan_path,
                         state_arg, "--json", NULL };

  return vms_test_command_start (NULL, argv, fixture->sink->dir);
}

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

/* The plan's own events in output, to show in a failure (caller frees). */
static char *
plan_events (const char *output)
{
  g_auto (GStrv) lines = g_strsplit (output, "\n", -1);
  GString *found = g_string_new (NULL);

  for (guint i = 0; lines[i]; i++)
    if (strstr (lines[i], "\"event\":\"plan-"))
      g_string_append_printf (found, "%s\n", lines[i]);
  return g_string_free (found, FALSE);
}

/* The plan-vm events of output, by VM: their outcomes. */
static void
assert_outcomes (VmsTestCommand *command, const char *outcome)
{
  for (guint i = 0; i < N_VMS; i++)
    {
      g_autoptr (GString) found = g_string_new (NULL);
      g_auto (GStrv) lines = g_strsplit (command->out->str, "\n", -1);

      for (guint k = 0; lines[k]; k++)
        {
          g_autofree char *who = g_strdup_printf ("\"vm\":\"%s\"", vm_name (i));

          if (strstr (lines[k], "\"event\":\"plan-vm\"")
              && strstr (lines[k], who))
            g_string_assign (found, lines[k]);
        }
      if (!found->len)
        fail_msg ("no end for VM %s: %s", vm_name (i), command->out->str);
      g_autofree char *want = g_strdup_printf ("\"outcome\":\"%s\"", outcome);
      if (!strstr (found->str, want))
        fail_msg ("VM %s: %s", vm_name (i), found->str);
    }
}

/* Three VMs, two at a time: all migrate, never more than two copying at
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
      g_autofree char *events = plan_events (run->out->str);

      fail_msg ("%u VMs at once, not %d:\n%s", most, CONCURRENCY, events);
    }
  assert_outcomes (run, "migrated");
  for (guint i = 0; i < N_VMS; i++)
    {
      g_autofree char *name = replica_name (i);
      g_autofree char *replica
          = vms_test_sink_replica_path (fixture->sink, name);
      g_autoptr (GError) error = NULL;
      guint64 beat = vms_test_vm_last_heartbeat (fixture->source[i]);
      g_autofree char *needle
          = g_strdup_printf ("vms-heartbeat %" G_GUINT64_FORMAT, beat + 2);
      g_autoptr (JsonNode) reply = NULL;

      vms_test_assert_identical (fixture->source[i]->disk_paths[0], "raw",
                                 replica);
      reply = vms_qmp_execute (fixture->dest[i]->qmp, "cont", NULL, &error);
      vms_assert_ok (reply, error);
      if (!vms_test_vm_wait_serial (fixture->dest[i], needle, 60000, &error))
        fail_msg ("VM %s does not run at its destination: %s", vm_name (i),
                  error->message);
    }
  {
    g_autoptr (GError) error = NULL;

    vms_assert_ok (
        g_file_get_contents (fixture->alerts_path, &alerts, NULL, &error),
        error);
  }
  for (guint i = 0; i < N_VMS; i++)
    {
      g_autofree char *who = g_strdup_printf ("\"vm\":\"%s\"", vm_name (i));

      if (!strstr (alerts, who))
        fail_msg ("no alert for %s: %s", vm_name (i), alerts);
    }
  assert_non_null (strstr (alerts, "\"event\":\"plan-done\""));

  again = plan_run (fixture);
  vms_test_command_expect_success (again);
  assert_outcomes (again, "migrated-earlier");
  assert_null (strstr (again->out->str, "\"event\":\"plan-vm-start\""));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_plan_runs_vms_unattended, setup,
                                     teardown),
  };

  vms_test_guest_prepare ();
  vmshift = vms_test_built_program ("VMS_VMSHIFT");
  return vms_test_run_group ("plan", tests, G_N_ELEMENTS (tests), NULL, NULL);
}
