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
#include <libnbd.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

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
  VmsTestVm *dest;   /* a migration's destination, or NULL */
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

static gint
compare_doubles (gconstpointer a, gconstpointer b)
{
  double x = *(const double *)a, y = *(const double *)b;

  return (x > y) - (x < y);
}

/* ---- vmshift ---- */

static VmsTestCommand *
sync_start (Fixture *fixture, const char *job, const char *prefix,
            const char *latency_ms)
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
                         prefix,
                         state_arg,
                         "--json",
                         latency_ms ? "--max-guest-latency" : NULL,
                         latency_ms,
                         NULL };

  return vms_test_command_start (NULL, argv, fixture->state_dir);
}

/* The guest's latency, sampled every second while a sync ran. */
typedef struct
{
  GArray *latency;  /* double µs per second, -1: too few writes */
  guint before_cut; /* how many were taken before vmshift's first cut */
  gboolean pause;   /* stop the guest a while after the first cut */
  gboolean to_the_end;         /* ... and keep it stopped until the run ends */
  gboolean calm_while_copying; /* the copy still ran after the guest had
                                  written nothing for CALM_S */
  gboolean stopped;            /* the guest is stopped now */
  /* Under an estimate: the samples wholly within its first copy probe
   * (its "probing-disk" events), from probe_from to before probe_end. */
  guint probe_from, probe_end;
} Samples;

/* After its first cut, the guest is stopped (until the run ends): it
 * writes nothing, which vmshift must read as calm and raise the copy
 * again within this long (when the copy still runs by then), whatever
 * the machine's own noise. */
#define CALM_S 5
/* Samples under the cut rate before the guest is stopped. */
#define SAMPLES_BEFORE_CALM 8

static void
samples_clear (Samples *samples)
{
  g_clear_pointer (&samples->latency, g_array_unref);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Samples, samples_clear)

static void
qmp_ok (VmsTestVm *vm, const char *command)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) reply = vms_qmp_execute (vm->qmp, command, NULL, &error);

  vms_assert_ok (reply, error);
}

/* An estimate's first copy probe, as its events tell it, by the samples
 * taken so far: the next is the first wholly within it once it began,
 * the last taken is the last once it ended. */
static void
mark_probe (VmsTestCommand *run, Samples *samples, GString *shown)
{
  const char *began = strstr (run->out->str, "\"step\":\"background\"");

  if (!began)
    return;
  if (!samples->probe_from)
    {
      samples->probe_from = samples->latency->len;
      g_string_append (shown, " [probe:");
    }
  else if (!samples->probe_end
           && (strstr (began, "\"event\":\"probing-disk\"")
               || strstr (began, "\"event\":\"estimate\"")))
    {
      samples->probe_end = samples->latency->len;
      g_string_append (shown, "]");
    }
}

/* Sample until run exits, and show the samples. */
static void
watch (Fixture *fixture, VmsTestCommand *run, const char *what,
       Samples *samples)
{
  g_autoptr (GString) shown = g_string_new ("");
  gint64 deadline = g_get_monotonic_time () + RUN_LIMIT_S * G_USEC_PER_SEC;
  gint64 sampled = g_get_monotonic_time ();
  gboolean cut = FALSE;

  samples->latency = g_array_new (FALSE, FALSE, sizeof (double));
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
      if (!cut && strstr (run->out->str, "\"why\":\"latency-high\""))
        {
          cut = TRUE;
          samples->before_cut = samples->latency->len;
          g_string_append (shown, " |");
        }
      g_array_append_val (samples->latency, latency);
      g_string_append_printf (shown, " %.2f", latency / 1000);
      mark_probe (run, samples, shown);
      if (samples->pause && cut && !samples->stopped
          && samples->latency->len == samples->before_cut + SAMPLES_BEFORE_CALM)
        {
          /* With to_the_end, stopped until the run ends: a loaded
           * machine's own noise cannot hold the copy down for ever. */
          qmp_ok (fixture->source, "stop");
          samples->stopped = TRUE;
          g_string_append (shown, " [stopped");
          for (gint64 until = g_get_monotonic_time () + CALM_S * G_USEC_PER_SEC;
               g_get_monotonic_time () < until;)
            vms_test_command_pump (run, 100);
          samples->calm_while_copying = run->status < 0;
          /* A migration that ended meanwhile left the guest at its
           * destination: the source must not run again. */
          if (!samples->to_the_end && samples->calm_while_copying)
            {
              qmp_ok (fixture->source, "cont");
              samples->stopped = FALSE;
            }
          g_string_append_printf (shown, " %d s%s]", CALM_S,
                                  !samples->calm_while_copying
                                      ? ", the copy ended meanwhile"
                                  : samples->to_the_end ? ", and on to the end"
                                                        : "");
          latency_since (fixture);
        }
    }
  /* A sync's guest goes on once it ended. */
  if (samples->stopped && samples->to_the_end)
    qmp_ok (fixture->source, "cont");
  if (!cut)
    samples->before_cut = samples->latency->len;
  print_message ("  the guest's latency (ms, a second each) %s:%s%s\n", what,
                 shown->str, cut ? " (| vmshift's first cut)" : "");
}

/* The median of the samples from first to before end that tell (µs),
 * -1: none. */
static double
median_between (const Samples *samples, guint first, guint end)
{
  g_autoptr (GArray) known = g_array_new (FALSE, FALSE, sizeof (double));

  for (guint i = first; i < MIN (end, samples->latency->len); i++)
    if (g_array_index (samples->latency, double, i) >= 0)
      g_array_append_val (known, g_array_index (samples->latency, double, i));
  if (known->len == 0)
    return -1;
  g_array_sort (known, compare_doubles);
  return g_array_index (known, double, known->len / 2);
}

static double
median_from (const Samples *samples, guint first)
{
  return median_between (samples, first, samples->latency->len);
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
  gint64 copy_rate; /* what the copy reached before the step, 0: unknown */
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
        /* None when the guest wrote too little to tell. */
        .latency_us
        = json_object_get_int_member_with_default (object, "latency-us", -1),
        .baseline_us = json_object_get_int_member (object, "baseline-us"),
        .allowance_us = json_object_get_int_member (object, "allowance-us"),
        .copy_rate
        = json_object_get_int_member_with_default (object, "copy-rate", 0),
      };
      print_message ("  %s: copy from %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT
                     " KiB/s (latency %.2f ms, baseline %.2f ms, "
                     "allowance %.2f ms)\n",
                     step.cut ? "cut" : "raise", step.copy_rate / 1024,
                     step.rate / 1024, step.latency_us / 1000.0,
                     step.baseline_us / 1000.0, step.allowance_us / 1000.0);
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
  /* The host writes the fill back now, not while the guest's latency is
   * measured: what the tests see is the copy's doing. */
  sync ();
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

  vms_test_vm_free (fixture->dest);
  vms_test_vm_free (fixture->source);
  vms_test_sink_free (fixture->sink);
  g_free (fixture->state_dir);
  g_free (fixture->sink_uri);
  g_free (fixture);
  return 0;
}

/* ---- tests ---- */

/* Each cut came from a latency above the allowance and slowed the copy
 * below what it reached; each raise from one back near the baseline.
 * The number of cuts and raises after the first cut. */
static void
assert_steps (GArray *steps, guint *cuts, guint *raises)
{
  *cuts = *raises = 0;
  for (guint i = 0; i < steps->len; i++)
    {
      const Step *step = &g_array_index (steps, Step, i);

      if (step->cut)
        {
          (*cuts)++;
          assert_true (step->latency_us
                       > step->baseline_us + step->allowance_us);
          assert_true (step->rate > 0);
          assert_true (step->copy_rate == 0 || step->rate < step->copy_rate);
          continue;
        }
      assert_true (step->latency_us
                   < step->baseline_us + step->allowance_us / 2 + 1);
      if (*cuts > 0)
        (*raises)++;
    }
}

/* The copy at full speed makes the guest's synchronous writes slower;
 * with --max-guest-latency vmshift cuts the copy's rate while they are
 * above the allowance, which brings them back within it, and raises it
 * again once they are calm; the copy completes and the replica is the
 * disk.  A sync without the option first: no step, nothing changed. */
static void
test_sync_slows_for_the_guest (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) plain = NULL;
  g_autoptr (VmsTestCommand) run = NULL;
  g_auto (Samples) unlimited = { 0 };
  g_auto (Samples) held = { 0 };
  g_autoptr (GArray) steps = NULL;
  g_autoptr (JsonObject) summary = NULL;
  double before = latency_over (fixture, 3), after_cut;
  guint cuts, raises;
  gint64 allowed;

  print_message ("  the guest's latency before any copy: %.2f ms\n",
                 before / 1000);
  plain = sync_start (fixture, "plain", "plain", NULL);
  watch (fixture, plain, "under a sync without the option", &unlimited);
  vms_test_command_expect_success (plain);
  assert_null (strstr (plain->out->str, "replication-backpressure"));
  /* Where the copy does not slow the guest (its disk in memory, say),
   * there is nothing to hold back, and nothing to test. */
  if (median_from (&unlimited, 0) <= before + ALLOWANCE_MS * 1000)
    vms_test_skip ("an unlimited copy does not slow the guest's writes here "
                   "(%.2f ms, %.2f ms before it): nothing to hold back",
                   median_from (&unlimited, 0) / 1000, before / 1000);

  run = sync_start (fixture, "rbp", "rbp", G_STRINGIFY (ALLOWANCE_MS));
  held.pause = TRUE;
  held.to_the_end = TRUE;
  watch (fixture, run,
         "under a sync with --max-guest-latency " G_STRINGIFY (ALLOWANCE_MS),
         &held);
  vms_test_command_expect_success (run);
  steps = steps_of (run);
  summary = vms_test_command_last_event (run, "replication-backpressure", NULL);
  assert_non_null (summary);
  print_message ("  %s\n", json_object_get_string_member (summary, "message"));
  assert_steps (steps, &cuts, &raises);
  /* A raise is owed once the guest wrote nothing for CALM_S while the
   * copy ran; a copy that ended first had no time for one. */
  if (cuts == 0 || (raises == 0 && held.calm_while_copying))
    fail_msg ("replication backpressure cut the copy %u times and raised it "
              "%u times after: it should have done both",
              cuts, raises);
  assert_true (json_object_get_boolean_member (summary, "acted"));
  /* Within the allowance once vmshift acted, mostly: the median, with
   * one allowance more for what else the machine runs (the copy without
   * the option takes several times that). */
  allowed = g_array_index (steps, Step, 0).baseline_us
            + 2 * g_array_index (steps, Step, 0).allowance_us;
  after_cut = median_from (&held, held.before_cut);
  print_message ("  median latency: %.2f ms after the first cut (baseline "
                 "and allowance %.2f ms, failing above %.2f ms), %.2f ms "
                 "under the copy without the option\n",
                 after_cut / 1000,
                 (allowed - g_array_index (steps, Step, 0).allowance_us)
                     / 1000.0,
                 allowed / 1000.0, median_from (&unlimited, 0) / 1000);
  if (after_cut < 0 || after_cut > allowed)
    fail_msg ("after the first cut the guest's writes took %.2f ms "
              "(median), more than the baseline and twice the allowance, "
              "%.2f ms",
              after_cut / 1000, allowed / 1000.0);
  assert_replica_identical (fixture, "rbp");
}

/* The replica exists and a destination QEMU waits on it, paused. */
static void
start_destination (Fixture *fixture)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *name = g_strdup_printf ("rbp-vd0@create=%" G_GUINT64_FORMAT,
                                           VD0_MIB * (guint64)MiB);
  g_autofree char *replica
      = vms_test_sink_replica_path (fixture->sink, "rbp-vd0");
  g_autoptr (nbd_handle) nbd
      = vms_test_sink_connect (fixture->sink, name, &error);
  VmsTestVmOptions options = {
    .workload = "writer",
    .extra_cmdline = GUEST_CMDLINE,
    .disks = { { "raw", 0, replica } },
    .incoming = TRUE,
    .start_paused = TRUE,
    .second_qmp = TRUE,
  };

  vms_assert_ok (nbd, error);
  nbd_shutdown (nbd, 0);
  fixture->dest = vms_test_vm_start (&options, &error);
  vms_assert_ok (fixture->dest, error);
}

/* vmshift migrate of the source to fixture->dest (started), paused at
 * both ends (--suspend), job job, with option and its value (how
 * replication backpressure comes in). */
static VmsTestCommand *
migrate_start (Fixture *fixture, const char *job, const char *option,
               const char *value)
{
  g_autofree char *source
      = g_strdup_printf ("qmp:%s", fixture->source->qmp2_path);
  g_autofree char *dest_qmp
      = g_strdup_printf ("--dest-qmp=qmp:%s", fixture->dest->qmp2_path);
  g_autofree char *memory
      = g_strdup_printf ("--dest-uri=unix:%s/mig.sock", fixture->dest->dir);
  g_autofree char *state_arg
      = g_strdup_printf ("--state-dir=%s", fixture->state_dir);
  const char *argv[] = { vmshift,
                         "migrate",
                         source,
                         "--sink",
                         fixture->sink_uri,
                         "--job",
                         job,
                         "--replica-prefix",
                         "rbp",
                         dest_qmp,
                         memory,
                         "--final-sync=pause",
                         "--suspend",
                         option,
                         value,
                         state_arg,
                         "--json",
                         NULL };

  return vms_test_command_start (NULL, argv, fixture->state_dir);
}

/* migrate gets it too: the background copy is cut for the guest, the
 * report says so, and the migration completes with the replica equal to
 * the source (both paused: --suspend). */
static void
test_migrate_slows_for_the_guest (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *replica
      = vms_test_sink_replica_path (fixture->sink, "rbp-vd0");
  g_autoptr (VmsTestCommand) run = NULL;
  g_autoptr (GArray) steps = NULL;
  g_autoptr (JsonObject) summary = NULL;
  g_auto (Samples) held = { 0 };
  guint cuts, raises;
  double before;

  start_destination (fixture);
  before = latency_over (fixture, 2);
  run = migrate_start (fixture, "mig", "--max-guest-latency",
                       G_STRINGIFY (ALLOWANCE_MS));
  held.pause = TRUE;
  watch (
      fixture, run,
      "under a migration with --max-guest-latency " G_STRINGIFY (ALLOWANCE_MS),
      &held);
  vms_test_command_expect_success (run);
  assert_non_null (strstr (run->out->str, "\"state\":\"done\""));
  steps = steps_of (run);
  summary = vms_test_command_last_event (run, "replication-backpressure", NULL);
  assert_non_null (summary);
  print_message ("  %s\n", json_object_get_string_member (summary, "message"));
  assert_steps (steps, &cuts, &raises);
  if (cuts == 0 && median_from (&held, 0) <= before + ALLOWANCE_MS * 1000)
    vms_test_skip ("the copy did not slow the guest's writes here (%.2f ms, "
                   "%.2f ms before it): nothing to hold back",
                   median_from (&held, 0) / 1000, before / 1000);
  if (cuts == 0)
    fail_msg ("replication backpressure never cut the migration's copy");
  assert_true (json_object_get_boolean_member (summary, "acted"));
  vms_test_assert_identical (fixture->source->disk_paths[0], "qcow2", replica);
}

/* vmshift estimate of the guest: what its writes cost with no copy and
 * under its copy probe, and the --max-guest-latency it recommends
 * (0: none), from its "estimate" event. */
static guint
estimate_latency (Fixture *fixture, const char *id)
{
  g_autofree char *source
      = g_strdup_printf ("qmp:%s", fixture->source->qmp2_path);
  g_autofree char *state_arg
      = g_strdup_printf ("--state-dir=%s", fixture->state_dir);
  const char *argv[] = { vmshift,
                         "estimate",
                         source,
                         "--sink",
                         fixture->sink_uri,
                         "--id",
                         id,
                         "--window",
                         "4",
                         "--interval",
                         "2",
                         "--probe-seconds",
                         "2",
                         state_arg,
                         "--json",
                         NULL };
  g_autoptr (VmsTestCommand) run
      = vms_test_command_start (NULL, argv, fixture->state_dir);
  g_autoptr (JsonObject) result = NULL;
  g_auto (Samples) seen = { 0 };
  JsonObject *vm, *prediction, *disk;
  double disk_before, copying, before, probed;
  guint latency_ms;

  watch (fixture, run, "under vmshift estimate", &seen);
  vms_test_command_expect_success (run);
  /* As the harness saw it: before the probe, and under it, in medians a
   * neighbour's passing load on the machine's disk hardly moves. */
  if (!seen.probe_from)
    fail_msg ("the estimate told no copy probe of the disk");
  before = median_between (&seen, 0, seen.probe_from);
  probed = median_between (&seen, seen.probe_from,
                           seen.probe_end ? seen.probe_end : G_MAXUINT);
  result = vms_test_command_last_event (run, "estimate", NULL);
  assert_non_null (result);
  vm = json_array_get_object_element (
      json_object_get_array_member (
          json_object_get_object_member (result, "estimate"), "vms"),
      0);
  prediction = json_object_get_object_member (vm, "prediction");
  disk = json_array_get_object_element (
      json_object_get_array_member (vm, "disks"), 0);
  disk_before = json_object_get_double_member (disk, "latency-before-us");
  copying = json_object_get_double_member (disk, "latency-copying-us");
  latency_ms = json_object_get_int_member (prediction, "guest-latency-ms");
  print_message ("  the estimate: the guest's writes took %.2f ms, %.2f ms "
                 "under its copy probe (the harness: %.2f ms before it, "
                 "%.2f ms under it, medians); --max-guest-latency %u "
                 "recommended\n",
                 disk_before / 1000, copying / 1000, before / 1000,
                 probed / 1000, latency_ms);
  /* The guest writes 64 times a second throughout: both are known. */
  assert_true (disk_before > 0);
  assert_true (copying > 0);
  if (latency_ms == 0)
    {
      guint allowance_ms = MAX (1, (guint)ceil (disk_before / 1000));

      /* Nothing recommended is right where the copy slowed the guest's
       * writes by no more than they took before... */
      assert_true (copying - disk_before <= allowance_ms * 1000.0);
      /* ...as the harness saw it too, from the same counters over the
       * same seconds: the estimate keeps its worst slice, which a
       * median of them cannot exceed by much (a neighbour's load on the
       * machine's disk slows both). */
      if (probed > copying + MAX (before, 1000.0))
        fail_msg ("the guest's writes took %.2f ms under the estimate's "
                  "copy probe as the harness saw them, %.2f ms as the "
                  "estimate did, and it recommends no --max-guest-latency",
                  probed / 1000, copying / 1000);
      vms_test_skip ("the copy probe did not slow the guest's writes here "
                     "(%.2f ms, %.2f ms before it): nothing to recommend",
                     copying / 1000, disk_before / 1000);
    }
  /* As long again as before, at least 1 ms, and exceeded under the
   * probe. */
  assert_int_equal (latency_ms, MAX (1, (guint)ceil (disk_before / 1000)));
  assert_true (copying - disk_before > latency_ms * 1000.0);
  assert_true (json_object_get_double_member (prediction, "replication-rate")
               > 0);
  return latency_ms;
}

/* An estimate of the guest writing synchronously recommends
 * --max-guest-latency, since its copy probe slowed the guest's writes;
 * migrate --estimate, given no latency of its own, takes it: the copy
 * slows for the guest with that allowance, and the migration completes
 * with the replica equal to the source. */
static void
test_migrate_takes_the_estimates_latency (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *replica
      = vms_test_sink_replica_path (fixture->sink, "rbp-vd0");
  g_autoptr (VmsTestCommand) run = NULL;
  g_autoptr (JsonObject) recommended = NULL;
  g_autoptr (JsonObject) summary = NULL;
  g_autoptr (GArray) steps = NULL;
  g_auto (Samples) held = { 0 };
  guint latency_ms = estimate_latency (fixture, "rbp-e"), cuts, raises;

  start_destination (fixture);
  run = migrate_start (fixture, "mig-e", "--estimate", "rbp-e");
  watch (fixture, run, "under a migration with --estimate", &held);
  vms_test_command_expect_success (run);
  assert_non_null (strstr (run->out->str, "\"state\":\"done\""));
  recommended = vms_test_command_last_event (
      run, "replication-backpressure-recommended", NULL);
  assert_non_null (recommended);
  print_message ("  %s\n",
                 json_object_get_string_member (recommended, "message"));
  assert_int_equal (json_object_get_int_member (recommended, "latency-ms"),
                    latency_ms);
  steps = steps_of (run);
  assert_steps (steps, &cuts, &raises);
  for (guint i = 0; i < steps->len; i++)
    assert_int_equal (g_array_index (steps, Step, i).allowance_us,
                      latency_ms * 1000);
  summary = vms_test_command_last_event (run, "replication-backpressure", NULL);
  assert_non_null (summary);
  print_message ("  %s\n", json_object_get_string_member (summary, "message"));
  assert_string_equal (json_object_get_string_member (summary, "why"),
                       "summary");
  vms_test_assert_identical (fixture->source->disk_paths[0], "qcow2", replica);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_sync_slows_for_the_guest, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_migrate_slows_for_the_guest, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_migrate_takes_the_estimates_latency,
                                     setup, teardown),
  };

  vms_test_require_program ("qemu-system-x86_64", "qemu-system-x86");
  vms_test_require_program ("qemu-img", "qemu-utils");
  vms_test_require_program ("nbdkit", "nbdkit");
  /* The disks on a file system that writes to a device: a copy out of a
   * tmpfs /tmp costs the guest's writes nothing to hold back. */
  if (!g_getenv ("TMPDIR"))
    g_setenv ("TMPDIR", "/var/tmp", TRUE);
  vmshift = vms_test_built_program ("VMS_VMSHIFT");
  return vms_test_run_group ("replication-backpressure", tests,
                             G_N_ELEMENTS (tests), NULL, NULL);
}
