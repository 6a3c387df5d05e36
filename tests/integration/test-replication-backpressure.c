/* Integration tests: replication backpressure (--max-guest-latency).  A
 * guest doing small synchronous writes (O_DSYNC 4 KiB, a flush after
 * each) to the disk vmshift copies: the copy, unlimited, makes its writes
 * slower; with --max-guest-latency vmshift slows the copy while they take
 * longer than before it by more than the allowance, and speeds it up
 * when they are back.  The guest's latency is measured here too, from
 * query-blockstats on the harness's own monitor, the way vmshift does.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-test.h"
#include "vms-test-command.h"
#include "vms-test-sink.h"
#include "vms-test-vm.h"
#include "vms-guest.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <string.h>

#define MiB (1024 * 1024)
/* Filled with data: a copy that takes a while at full speed. */
#define VD0_MIB 2048
/* Filled in parts: each within the harness's QMP timeout. */
#define FILL_PART_MIB 256
/* The guest: 4 KiB synchronous writes, 64 a second, over 8 MiB. */
#define GUEST_CMDLINE                                                          \
  "vms.write_rate_kib=256 vms.write_span_mib=8 vms.write_sync=1"
/* How much longer the guest's writes may take (ms). */
#define ALLOWANCE_MS 2
#define SAMPLE_MS 1000
/* A sync that takes longer is stuck. */
#define RUN_LIMIT_S 150

static const char *vmshift;

typedef struct
{
  VmsTestVm *source; /* guest writing synchronously to vd0 */
  VmsTestSink *sink; /* replicas */
  char *state_dir;   /* vmshift job state */
  char *sink_uri;    /* --sink */
  guint64 writes;    /* vd0's write and flush figures at the last sample */
  guint64 time_ns;
} Fixture;

/* ---- the guest's latency ---- */

/* vd0's writes and the time they and the flushes took since the last
 * call: µs per write, -1 when it wrote too little to tell. */
static double
latency_since (Fixture *fixture)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) stats
      = vms_guest_query_blockstats (fixture->source->qmp, &error);
  VmsGuestBlockStats *vd0;
  guint64 writes, time_ns;
  double latency = -1;

  vms_assert_ok (stats, error);
  vd0 = vms_guest_block_stats_find (stats, "d0", "vd0");
  assert_non_null (vd0);
  writes = vd0->wr_operations;
  time_ns = vd0->wr_total_time_ns + vd0->flush_total_time_ns;
  if (fixture->writes && writes >= fixture->writes + 5)
    latency
        = (time_ns - fixture->time_ns) / 1000.0 / (writes - fixture->writes);
  fixture->writes = writes;
  fixture->time_ns = time_ns;
  return latency;
}

/* The guest's latency over seconds seconds, with the run going on. */
static double
latency_over (Fixture *fixture, guint seconds)
{
  latency_since (fixture);
  g_usleep (seconds * G_USEC_PER_SEC);
  return latency_since (fixture);
}

/* ---- vmshift ---- */

static VmsTestCommand *
sync_start (Fixture *fixture, const char *job, const char *latency_ms)
{
  g_autofree char *source
      = g_strdup_printf ("qmp:%s", fixture->source->qmp2_path);
  g_autofree char *state_arg
      = g_strdup_printf ("--state-dir=%s", fixture->state_dir);
  const char *argv[] = { vmshift,
                         "sync",
                         source,
                         "--sink",
                         fixture->sink_uri,
                         "--job",
                         job,
                         "--replica-prefix",
                         "rbp",
                         state_arg,
                         "--json",
                         latency_ms ? "--max-guest-latency" : NULL,
                         latency_ms,
                         NULL };

  return vms_test_command_start (NULL, argv, fixture->state_dir);
}

/* Sample the guest's latency every second until run exits: into
 * samples (double µs, -1: too few writes). */
static GArray *
watch (Fixture *fixture, VmsTestCommand *run)
{
  GArray *samples = g_array_new (FALSE, FALSE, sizeof (double));
  GString *shown = g_string_new ("");

  gint64 deadline = g_get_monotonic_time () + RUN_LIMIT_S * G_USEC_PER_SEC;
  gint64 sampled = g_get_monotonic_time ();

  latency_since (fixture);
  while (!vms_test_command_pump (run, 100))
    {
      double latency;

      if (g_get_monotonic_time () > deadline)
        fail_msg ("the sync took more than %d s: %s", RUN_LIMIT_S,
                  run->out->str + MAX ((gssize)run->out->len - 1500, 0));
      if (g_get_monotonic_time () - sampled < SAMPLE_MS * 1000)
        continue;
      sampled = g_get_monotonic_time ();
      latency = latency_since (fixture);
      g_array_append_val (samples, latency);
      g_string_append_printf (shown, " %.2f", latency / 1000);
    }
  print_message ("  the guest's latency under the copy (ms, a second "
                 "each):%s\n",
                 shown->str);
  g_string_free (shown, TRUE);
  return samples;
}

static void
qmp_ok (VmsTestVm *vm, const char *command)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) reply = vms_qmp_execute (vm->qmp, command, NULL, &error);

  vms_assert_ok (reply, error);
}

/* After a sync, the paused source's vd0 and its replica are the same. */
static void
assert_replica_identical (Fixture *fixture, const char *job)
{
  g_autofree char *replica
      = vms_test_sink_replica_path (fixture->sink, "rbp-vd0");
  g_autofree char *state_arg
      = g_strdup_printf ("--state-dir=%s", fixture->state_dir);
  const char *argv[] = { vmshift, "sync",    "--resume", job, "--rounds",
                         "1",     state_arg, "--json",   NULL };
  g_autoptr (VmsTestCommand) last = NULL;

  qmp_ok (fixture->source, "stop");
  last = vms_test_command_start (NULL, argv, fixture->state_dir);
  vms_test_command_expect_success (last);
  vms_test_assert_identical (fixture->source->disk_paths[0], "qcow2", replica);
}

/* The run's "replication-backpressure" steps, in order. */
typedef struct
{
  gboolean cut;      /* else a raise */
  gint64 rate;       /* the copy's new limit, 0: none */
  gint64 latency_us; /* what vmshift measured */
  gint64 baseline_us;
  gint64 allowance_us;
} Step;

static GArray *
steps_of (VmsTestCommand *run)
{
  g_auto (GStrv) lines = g_strsplit (run->out->str, "\n", -1);
  g_autoptr (JsonParser) parser = json_parser_new ();
  GArray *steps = g_array_new (FALSE, FALSE, sizeof (Step));

  for (guint i = 0; lines[i]; i++)
    {
      JsonObject *object;
      const char *why;
      Step step;

      if (!strstr (lines[i], "\"event\":\"replication-backpressure\"")
          || !json_parser_load_from_data (parser, lines[i], -1, NULL))
        continue;
      object = json_node_get_object (json_parser_get_root (parser));
      why = json_object_get_string_member (object, "why");
      if (!g_str_equal (why, "latency-high")
          && !g_str_equal (why, "latency-low"))
        continue;
      step = (Step){
        .cut = g_str_equal (why, "latency-high"),
        .rate = json_object_get_int_member (object, "rate"),
        .latency_us = json_object_get_int_member (object, "latency-us"),
        .baseline_us = json_object_get_int_member (object, "baseline-us"),
        .allowance_us = json_object_get_int_member (object, "allowance-us"),
      };
      print_message ("  %s: copy to %" G_GINT64_FORMAT
                     " KiB/s (latency %.2f ms, baseline %.2f ms, "
                     "allowance %.2f ms)\n",
                     step.cut ? "cut" : "raise", step.rate / 1024,
                     step.latency_us / 1000.0, step.baseline_us / 1000.0,
                     step.allowance_us / 1000.0);
      g_array_append_val (steps, step);
    }
  return steps;
}

/* ---- fixtures ---- */

/* vd0 full of data, but for the 8 MiB the guest writes. */
static gboolean
fill (VmsTestVm *vm, GError **error)
{
  for (guint mib = 8; mib < VD0_MIB; mib += FILL_PART_MIB)
    {
      g_autofree char *command = g_strdup_printf (
          "write -P 0x5a %uM %uM", mib, MIN (FILL_PART_MIB, VD0_MIB - mib));

      if (!vms_test_vm_qemu_io (vm, "vd0", command, error))
        return FALSE;
    }
  return TRUE;
}

static int
setup (void **state)
{
  Fixture *fixture = g_new0 (Fixture, 1);
  g_autoptr (GError) error = NULL;
  VmsTestVmOptions options = {
    .workload = "writer",
    .extra_cmdline = GUEST_CMDLINE,
    .disks = { { "qcow2", VD0_MIB * (guint64)MiB } },
    .second_qmp = TRUE,
  };

  *state = fixture;
  fixture->source = vms_test_vm_start (&options, &error);
  /* Data beyond the area the guest writes: the copy has all of it to
   * read and send. */
  if (!fixture->source || !vms_test_vm_wait_ready (fixture->source, &error)
      || !fill (fixture->source, &error))
    {
      print_error ("cannot start the source: %s\n", error->message);
      return -1;
    }
  fixture->sink = vms_test_sink_start (NULL, NULL, &error);
  if (!fixture->sink)
    {
      print_error ("cannot start the sink: %s\n", error->message);
      return -1;
    }
  fixture->state_dir = g_build_filename (fixture->sink->dir, "state", NULL);
  g_mkdir (fixture->state_dir, 0700);
  fixture->sink_uri = vms_test_sink_uri (fixture->sink, "");
  return 0;
}

static int
teardown (void **state)
{
  Fixture *fixture = *state;

  vms_test_vm_free (fixture->source);
  vms_test_sink_free (fixture->sink);
  g_free (fixture->state_dir);
  g_free (fixture->sink_uri);
  g_free (fixture);
  return 0;
}

/* ---- tests ---- */

static void
test_sync_slows_for_the_guest (void **state)
{
  Fixture *fixture = *state;
  double before = latency_over (fixture, 3);
  g_autoptr (VmsTestCommand) run = NULL;
  g_autoptr (GArray) samples = NULL;
  g_autoptr (GArray) steps = NULL;
  g_autoptr (JsonObject) summary = NULL;

  print_message ("  the guest's latency before the copy: %.2f ms\n",
                 before / 1000);
  run = sync_start (fixture, "rbp", G_STRINGIFY (ALLOWANCE_MS));
  samples = watch (fixture, run);
  vms_test_command_expect_success (run);
  steps = steps_of (run);
  summary = vms_test_command_last_event (run, "replication-backpressure", NULL);
  assert_non_null (summary);
  print_message ("  %s\n", json_object_get_string_member (summary, "message"));
  (void)samples;
  assert_replica_identical (fixture, "rbp");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_sync_slows_for_the_guest, setup,
                                     teardown),
  };

  vms_test_require_program ("qemu-system-x86_64", "qemu-system-x86");
  vms_test_require_program ("qemu-img", "qemu-utils");
  vms_test_require_program ("nbdkit", "nbdkit");
  vmshift = vms_test_built_program ("VMS_VMSHIFT");
  return vms_test_run_group ("replication-backpressure", tests,
                             G_N_ELEMENTS (tests), NULL, NULL);
}
