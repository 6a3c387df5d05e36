/* Integration tests: write backpressure.  A guest writing faster than
 * vmshift may send (--max-bandwidth) makes dirty rounds that do not
 * converge; vmshift throttles its disk writes through QEMU's I/O limits
 * until they do, and the guest's own limits are back, exactly, whatever
 * ends the run: the end of a sync, a switchover, a rollback, Ctrl-C, or
 * 'vmshift abort' after kill -9.  The guest's write rate is measured from
 * query-blockstats before, during and after.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-test.h"
#include "vms-test-command.h"
#include "vms-test-sink.h"
#include "vms-test-vm.h"
#include "vms-guest.h"
#include "vms-qemu-migration.h"
#include "vms-throttle.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <libnbd.h>
#include <signal.h>
#include <string.h>

#define MiB (1024 * 1024)
#define VD0_SIZE (32 * MiB)
/* What the guest writes (4 KiB blocks at random over 8 MiB) and what
 * vmshift may send: rounds cannot converge without backpressure. */
#define GUEST_KIB "2048"
#define LINK "1M"
#define LINK_BYTES (1024 * 1024)
/* Rounds end when this small. */
#define CONVERGE "384K"
/* The guest's own limits before vmshift: restored exactly, not erased.
 * bps_wr above what the guest writes, so it does not slow it. */
#define OWN_BPS_WR (64 * MiB)
#define OWN_BPS_RD (40 * MiB)
#define OWN_IOPS_WR 20000
/* Long enough for the writer's rate to average out. */
#define RATE_SAMPLE_MS 3000

static const char *vmshift;

typedef struct
{
  VmsTestVm *source; /* guest writing to vd0 */
  VmsTestVm *dest;   /* a migration's destination, or NULL */
  VmsTestSink *sink; /* replicas */
  char *state_dir;   /* vmshift job state */
  char *sink_uri;    /* --sink */
  double before;     /* bytes/s the guest wrote before vmshift ran */
} Fixture;

/* ---- the guest's writes and limits ---- */

/* Bytes/s vm's guest writes to vd0, over RATE_SAMPLE_MS. */
static double
write_rate (VmsTestVm *vm)
{
  guint64 bytes[2];
  gint64 at[2];

  for (int i = 0; i < 2; i++)
    {
      if (i)
        g_usleep (RATE_SAMPLE_MS * 1000);
      bytes[i] = vms_test_vm_bytes_written (vm, "vd0");
      at[i] = g_get_monotonic_time ();
    }
  return (bytes[1] - bytes[0]) * (double)G_USEC_PER_SEC / (at[1] - at[0]);
}

static JsonObject *
own_limits (void)
{
  JsonObject *limits = json_object_new ();

  json_object_set_int_member (limits, "bps_wr", OWN_BPS_WR);
  json_object_set_int_member (limits, "bps_rd", OWN_BPS_RD);
  json_object_set_int_member (limits, "iops_wr", OWN_IOPS_WR);
  return limits;
}

static JsonObject *
limits_of (VmsTestVm *vm)
{
  g_autoptr (GError) error = NULL;
  JsonObject *limits = vms_throttle_query (vm->qmp, "vd0", &error);

  vms_assert_ok (limits, error);
  return limits;
}

/* vd0's limits are the guest's own, all of them (QEMU names the group
 * after the device). */
static void
assert_own_limits (VmsTestVm *vm, gboolean own)
{
  g_autoptr (JsonObject) limits = limits_of (vm);
  g_autoptr (JsonNode) node = json_node_new (JSON_NODE_OBJECT);
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autofree char *text = NULL;
  const char *const members[]
      = { "bps", "iops", "bps_max", "iops_rd", "bps_wr_max", "iops_size" };

  json_node_set_object (node, limits);
  json_generator_set_root (generator, node);
  text = json_generator_to_data (generator, NULL);
  if (vms_throttle_get (limits, "bps_wr") != (own ? OWN_BPS_WR : 0)
      || vms_throttle_get (limits, "bps_rd") != (own ? OWN_BPS_RD : 0)
      || vms_throttle_get (limits, "iops_wr") != (own ? OWN_IOPS_WR : 0))
    fail_msg ("vd0's limits are %s, not the guest's own", text);
  for (guint i = 0; i < G_N_ELEMENTS (members); i++)
    if (vms_throttle_get (limits, members[i]))
      fail_msg ("vd0 has %s set: %s", members[i], text);
}

/* The guest writes about as fast as before vmshift ran. */
static void
assert_rate_back (Fixture *fixture, VmsTestVm *vm, const char *where)
{
  double after = write_rate (vm);

  print_message ("  guest write rate %s: %.0f KiB/s (before: %.0f KiB/s)\n",
                 where, after / 1024, fixture->before / 1024);
  if (after < 0.75 * fixture->before)
    fail_msg ("the guest writes %.0f KiB/s %s, %.0f KiB/s before", after / 1024,
              where, fixture->before / 1024);
}

/* ---- vmshift's events ---- */

/* The run's "backpressure" events: steps (rate > 0) and releases with
 * their why, in order ("2097152 not-shrinking", "0 synced"). */
static char *
backpressure_events (VmsTestCommand *run, guint *steps)
{
  g_auto (GStrv) lines = g_strsplit (run->out->str, "\n", -1);
  g_autoptr (JsonParser) parser = json_parser_new ();
  GString *events = g_string_new ("");

  *steps = 0;
  for (guint i = 0; lines[i]; i++)
    {
      JsonObject *object;

      if (!*lines[i] || !json_parser_load_from_data (parser, lines[i], -1, NULL)
          || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
        continue;
      object = json_node_get_object (json_parser_get_root (parser));
      if (g_strcmp0 (
              json_object_get_string_member_with_default (object, "event", ""),
              "backpressure")
          != 0)
        continue;
      if (json_object_get_int_member (object, "rate") > 0)
        (*steps)++;
      g_string_append_printf (events, "%s%" G_GINT64_FORMAT " %s",
                              events->len ? ", " : "",
                              json_object_get_int_member (object, "rate"),
                              json_object_get_string_member (object, "why"));
    }
  return g_string_free (events, FALSE);
}

/* At least one step throttled vd0, and the last event removed the
 * throttle for why. */
static void
assert_stepped_and_released (VmsTestCommand *run, const char *why)
{
  guint steps;
  g_autofree char *events = backpressure_events (run, &steps);
  g_autofree char *released = g_strdup_printf ("0 %s", why);

  print_message ("  backpressure events: %s\n", events);
  if (steps < 1 || !g_str_has_suffix (events, released))
    fail_msg ("no backpressure step, or no release (%s): %s", why, events);
}

/* Wait until vmshift has throttled the guest; the rate it wrote then,
 * which is at most the step's cap (QEMU's token bucket lets a burst
 * through: 20 % slack) and below what it wrote before. */
static double
wait_for_step (Fixture *fixture, VmsTestCommand *run)
{
  g_autoptr (JsonObject) step = NULL;
  double during, cap;

  vms_test_command_wait_for (run, "\"event\":\"backpressure\"", 150000);
  during = write_rate (fixture->source);
  step = vms_test_command_last_event (run, "backpressure", "vd0");
  assert_non_null (step);
  cap = json_object_get_int_member (step, "rate");
  print_message ("  guest write rate under backpressure: %.0f KiB/s "
                 "(before: %.0f KiB/s, cap %.0f KiB/s)\n",
                 during / 1024, fixture->before / 1024, cap / 1024);
  if (cap <= 0 || during > 1.2 * cap || during >= fixture->before)
    fail_msg ("throttled to %.0f KiB/s, the guest still writes %.0f KiB/s "
              "(%.0f before)",
              cap / 1024, during / 1024, fixture->before / 1024);
  return during;
}

static VmsTestCommand *
vmshift_start (Fixture *fixture, const char *command, ...)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  va_list args;

  g_ptr_array_add (argv, g_strdup (vmshift));
  g_ptr_array_add (argv, g_strdup (command));
  va_start (args, command);
  for (const char *arg; (arg = va_arg (args, const char *));)
    g_ptr_array_add (argv, g_strdup (arg));
  va_end (args);
  g_ptr_array_add (argv,
                   g_strdup_printf ("--state-dir=%s", fixture->state_dir));
  g_ptr_array_add (argv, g_strdup ("--json"));
  g_ptr_array_add (argv, NULL);
  return vms_test_command_start (NULL, (const char *const *)argv->pdata,
                                 fixture->state_dir);
}

/* vmshift sync of the source's vd0 as job, over the slow "link". */
static VmsTestCommand *
sync_start (Fixture *fixture, const char *job, const char *backpressure)
{
  g_autofree char *source
      = g_strdup_printf ("qmp:%s", fixture->source->qmp2_path);

  return vmshift_start (
      fixture, "sync", source, "--sink", fixture->sink_uri, "--job", job,
      "--replica-prefix", "bp", "--max-bandwidth", LINK, "--granularity", "4K",
      "--converge-bytes", CONVERGE, "--write-backpressure", backpressure, NULL);
}

static void
run_abort (Fixture *fixture, const char *job)
{
  g_auto (VmsTestRun) run = { 0 };
  g_autofree char *state_arg
      = g_strdup_printf ("--state-dir=%s", fixture->state_dir);

  vms_test_run_capture (&run, NULL, NULL, vmshift, "abort", job, state_arg,
                        NULL);
  if (run.status != 0)
    fail_msg ("vmshift abort exited %d: %s", run.status, run.err);
  print_message ("  vmshift abort: %s%s", run.out, run.err);
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
      = vms_test_sink_replica_path (fixture->sink, "bp-vd0");
  g_autoptr (VmsTestCommand) last = NULL;

  qmp_ok (fixture->source, "stop");
  last
      = vmshift_start (fixture, "sync", "--resume", job, "--rounds", "1", NULL);
  vms_test_command_expect_success (last);
  vms_test_assert_identical (fixture->source->disk_paths[0], "qcow2", replica);
}

/* ---- fixtures ---- */

/* The source started from options and ready, the sink, the state
 * directory; FALSE, said, when one cannot start. */
static gboolean
start_source_and_sink (Fixture *fixture, const VmsTestVmOptions *options)
{
  g_autoptr (GError) error = NULL;

  fixture->source = vms_test_vm_start (options, &error);
  if (!fixture->source || !vms_test_vm_wait_ready (fixture->source, &error))
    {
      print_error ("cannot start the source: %s\n", error->message);
      return FALSE;
    }
  fixture->sink = vms_test_sink_start (NULL, NULL, &error);
  if (!fixture->sink)
    {
      print_error ("cannot start the sink: %s\n", error->message);
      return FALSE;
    }
  fixture->state_dir = g_build_filename (fixture->sink->dir, "state", NULL);
  g_mkdir (fixture->state_dir, 0700);
  fixture->sink_uri = vms_test_sink_uri (fixture->sink, "");
  return TRUE;
}

static int
setup (void **state)
{
  Fixture *fixture = g_new0 (Fixture, 1);
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) limits = own_limits ();
  VmsTestVmOptions options = {
    .workload = "writer",
    .extra_cmdline = "vms.write_rate_kib=" GUEST_KIB " vms.write_span_mib=8",
    .disks = { { "qcow2", VD0_SIZE } },
    .second_qmp = TRUE,
  };

  *state = fixture;
  if (!start_source_and_sink (fixture, &options))
    return -1;
  if (!vms_throttle_set (fixture->source->qmp, "vd0", limits, &error))
    {
      print_error ("cannot limit the source's writes: %s\n", error->message);
      return -1;
    }
  fixture->before = write_rate (fixture->source);
  print_message ("  guest write rate before: %.0f KiB/s\n",
                 fixture->before / 1024);
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

/* ---- sync ---- */

/* Without backpressure the rounds stop shrinking at the size the link
 * allows: what the tests below get from backpressure is its doing. */
static void
test_sync_off_does_not_converge (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) run = sync_start (fixture, "off", "off");
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonObject *converged;

  vms_test_command_expect_success (run);
  converged = vms_test_command_find_event (run, "converged", parser);
  assert_non_null (converged);
  print_message ("  without backpressure: %s\n",
                 json_object_get_string_member (converged, "message"));
  assert_string_equal (json_object_get_string_member (converged, "why"),
                       "not-shrinking");
  assert_null (strstr (run->out->str, "\"event\":\"backpressure\""));
  assert_own_limits (fixture->source, TRUE);
}

/* With it, the rounds converge to a small one; the guest wrote slower
 * meanwhile, and afterwards as fast as before with its own limits. */
static void
test_sync_converges_with_backpressure (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) run = sync_start (fixture, "bp", "auto");
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonObject *converged;

  wait_for_step (fixture, run);
  vms_test_command_expect_success (run);
  converged = vms_test_command_find_event (run, "converged", parser);
  assert_non_null (converged);
  print_message ("  with backpressure: %s\n",
                 json_object_get_string_member (converged, "message"));
  assert_string_equal (json_object_get_string_member (converged, "why"),
                       "small");
  assert_stepped_and_released (run, "synced");
  assert_own_limits (fixture->source, TRUE);
  assert_rate_back (fixture, fixture->source, "after the sync");
  assert_replica_identical (fixture, "bp");
}

/* A sync killed with the guest throttled leaves the record in the job;
 * 'vmshift abort' gives the guest its own limits back. */
static void
test_sync_kill9_then_abort (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) run = sync_start (fixture, "killed", "auto");
  g_autoptr (JsonObject) held = NULL;

  wait_for_step (fixture, run);
  kill (run->pid, SIGKILL);
  vms_test_command_wait (run);
  held = limits_of (fixture->source);
  /* Still throttled: the killed run could not undo it. */
  assert_true (vms_throttle_get (held, "bps_wr") < OWN_BPS_WR);
  assert_int_equal (vms_throttle_get (held, "bps_rd"), OWN_BPS_RD);
  run_abort (fixture, "killed");
  assert_own_limits (fixture->source, TRUE);
  assert_rate_back (fixture, fixture->source, "after vmshift abort");
}

/* Ctrl-C of a sync: the guest's limits are back before it exits. */
static void
test_sync_interrupted (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) run = sync_start (fixture, "int", "auto");

  wait_for_step (fixture, run);
  kill (run->pid, SIGINT);
  vms_test_command_wait (run);
  assert_stepped_and_released (run, "stopped");
  assert_own_limits (fixture->source, TRUE);
}

/* ---- migrate ---- */

/* The replica exists and a destination QEMU waits on it. */
static void
start_destination (Fixture *fixture)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *name = g_strdup_printf ("bp-vd0@create=%d", VD0_SIZE);
  g_autofree char *replica
      = vms_test_sink_replica_path (fixture->sink, "bp-vd0");
  g_autoptr (nbd_handle) nbd
      = vms_test_sink_connect (fixture->sink, name, &error);
  VmsTestVmOptions options = {
    .workload = "writer",
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

static VmsTestCommand *
migrate_start (Fixture *fixture, const char *job, const char *mode)
{
  g_autofree char *source
      = g_strdup_printf ("qmp:%s", fixture->source->qmp2_path);
  g_autofree char *dest
      = g_strdup_printf ("--dest-qmp=qmp:%s", fixture->dest->qmp2_path);
  g_autofree char *memory
      = g_strdup_printf ("--dest-uri=unix:%s/mig.sock", fixture->dest->dir);
  g_autofree char *final = g_strdup_printf ("--final-sync=%s", mode);

  return vmshift_start (
      fixture, "migrate", source, "--sink", fixture->sink_uri, "--job", job,
      "--replica-prefix", "bp", "--max-bandwidth", LINK, "--granularity", "4K",
      "--converge-bytes", CONVERGE, dest, memory, final, "--suspend", NULL);
}

/* The mirror's catch-up left the guest's held writes their room: the
 * copy got the rounds' rate less what the guest is held to (a quarter
 * of it at least), below the link's --max-bandwidth. */
static void
assert_catch_up_left_room (VmsTestCommand *run)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonObject *limit
      = vms_test_command_find_event (run, "catch-up-limit", parser);
  gint64 rate, guest, rounds;

  if (!limit)
    fail_msg ("no catch-up-limit event: %s", run->out->str);
  print_message ("  %s\n", json_object_get_string_member (limit, "message"));
  rate = json_object_get_int_member (limit, "rate");
  guest = json_object_get_int_member (limit, "guest-rate");
  rounds = json_object_get_int_member (limit, "round-rate");
  assert_true (guest > 0 && rounds > guest);
  assert_true (rate < LINK_BYTES);
  assert_true (ABS (rate - MAX (rounds - guest, rounds / 4)) <= 1);
}

/* Migrated with backpressure: the source (paused at the switchover) and
 * the replica (the destination held paused) are the same; the source got its
 * own limits back before the switchover and the destination has none of
 * vmshift's; there the guest writes as fast as before. */
static void
migrate_with_backpressure (Fixture *fixture, const char *mode)
{
  g_autoptr (VmsTestCommand) run = NULL;
  g_autofree char *replica
      = vms_test_sink_replica_path (fixture->sink, "bp-vd0");

  start_destination (fixture);
  run = migrate_start (fixture, "mig", mode);
  wait_for_step (fixture, run);
  vms_test_command_expect_success (run);
  assert_non_null (strstr (run->out->str, "\"state\":\"done\""));
  assert_stepped_and_released (run, "switchover");
  if (g_str_equal (mode, "mirror"))
    assert_catch_up_left_room (run);
  {
    g_autoptr (JsonParser) parser = json_parser_new ();
    JsonObject *converged
        = vms_test_command_find_event (run, "converged", parser);

    /* The rounds converged, not merely ended. */
    assert_non_null (converged);
    print_message ("  %s\n",
                   json_object_get_string_member (converged, "message"));
    assert_string_equal (json_object_get_string_member (converged, "why"),
                         "small");
  }
  /* Both paused (--suspend): nothing writes. */
  vms_test_assert_identical (fixture->source->disk_paths[0], "qcow2", replica);
  assert_own_limits (fixture->source, TRUE);
  assert_own_limits (fixture->dest, FALSE);
  qmp_ok (fixture->dest, "cont");
  assert_rate_back (fixture, fixture->dest, "at the destination");
}

static void
test_migrate_pause_with_backpressure (void **state)
{
  migrate_with_backpressure (*state, "pause");
}

static void
test_migrate_mirror_with_backpressure (void **state)
{
  migrate_with_backpressure (*state, "mirror");
}

/* An estimate made with the migration's link and options says the
 * rounds will not converge and recommends a rate; migrate --estimate
 * takes it as its first step (one disk: all of it), not a guess from
 * what the guest wrote, after the first round, and converges. */
static void
test_migrate_takes_the_estimates_rate (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *source
      = g_strdup_printf ("qmp:%s", fixture->source->qmp2_path);
  g_auto (GStrv) lines = NULL;
  g_autoptr (VmsTestCommand) estimate = NULL;
  g_autoptr (VmsTestCommand) run = NULL;
  g_autoptr (JsonObject) result = NULL;
  g_autoptr (JsonObject) recommended = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonObject *first = NULL;
  JsonArray *vms;
  double rate;
  guint rounds_before = 0;

  estimate = vmshift_start (fixture, "estimate", source, "--sink",
                            fixture->sink_uri, "--id", "bp", "--window", "4",
                            "--interval", "2", "--probe-seconds", "0.3",
                            "--bandwidth", LINK, "--granularity", "4K",
                            "--converge-bytes", CONVERGE, NULL);
  vms_test_command_expect_success (estimate);
  result = vms_test_command_last_event (estimate, "estimate", NULL);
  assert_non_null (result);
  vms = json_object_get_array_member (
      json_object_get_object_member (result, "estimate"), "vms");
  rate = json_object_get_double_member (
      json_object_get_object_member (json_array_get_object_element (vms, 0),
                                     "prediction"),
      "backpressure-rate");
  print_message ("  the estimate recommends %.0f KiB/s\n", rate / 1024);
  assert_true (rate > 0);

  start_destination (fixture);
  {
    g_autofree char *dest_qmp
        = g_strdup_printf ("--dest-qmp=qmp:%s", fixture->dest->qmp2_path);
    g_autofree char *memory
        = g_strdup_printf ("--dest-uri=unix:%s/mig.sock", fixture->dest->dir);

    run = vmshift_start (
        fixture, "migrate", source, "--sink", fixture->sink_uri, "--job", "mig",
        "--replica-prefix", "bp", "--max-bandwidth", LINK, "--granularity",
        "4K", "--converge-bytes", CONVERGE, dest_qmp, memory,
        "--final-sync=pause", "--suspend", "--estimate", "bp", NULL);
  }
  wait_for_step (fixture, run);
  vms_test_command_expect_success (run);
  recommended
      = vms_test_command_last_event (run, "backpressure-recommended", NULL);
  assert_non_null (recommended);
  assert_int_equal (json_object_get_int_member (recommended, "rate"),
                    MAX ((gint64)rate, 256 * 1024));
  /* The first step, not the last: the first backpressure line. */
  lines = g_strsplit (run->out->str, "\n", -1);
  for (guint i = 0; lines[i] && !first; i++)
    {
      if (strstr (lines[i], "\"event\":\"round\""))
        rounds_before++;
      if (strstr (lines[i], "\"event\":\"backpressure\"")
          && json_parser_load_from_data (parser, lines[i], -1, NULL))
        first = json_node_get_object (json_parser_get_root (parser));
    }
  assert_non_null (first);
  print_message ("  the first step came after %u round(s)\n", rounds_before);
  assert_int_equal (rounds_before, 1);
  assert_int_equal (json_object_get_int_member (first, "rate"),
                    json_object_get_int_member (recommended, "rate"));
  /* Taken after the first round, for the estimate's reason: no rounds
   * spent finding out that they do not shrink. */
  assert_string_equal (json_object_get_string_member (first, "why"),
                       "estimate");
  assert_stepped_and_released (run, "switchover");
}

/* Ctrl-C rolls the migration back: the source runs with its own limits
 * and writes as fast as before. */
static void
test_migrate_rollback_restores (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) run = NULL;

  start_destination (fixture);
  run = migrate_start (fixture, "rb", "pause");
  wait_for_step (fixture, run);
  kill (run->pid, SIGINT);
  vms_test_command_wait (run);
  assert_non_null (strstr (run->out->str, "\"event\":\"rolled-back\""));
  assert_stepped_and_released (run, "rollback");
  assert_own_limits (fixture->source, TRUE);
  assert_rate_back (fixture, fixture->source, "after the rollback");
}

/* kill -9 of vmshift migrate, then 'vmshift abort': rolled back, the
 * throttle gone and the guest's own limits back. */
static void
test_migrate_kill9_then_abort (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) run = NULL;

  start_destination (fixture);
  run = migrate_start (fixture, "orphan", "pause");
  wait_for_step (fixture, run);
  kill (run->pid, SIGKILL);
  vms_test_command_wait (run);
  {
    g_autoptr (JsonObject) held = limits_of (fixture->source);

    assert_true (vms_throttle_get (held, "bps_wr") < OWN_BPS_WR);
  }
  run_abort (fixture, "orphan");
  assert_own_limits (fixture->source, TRUE);
  assert_rate_back (fixture, fixture->source, "after vmshift abort");
}

/* ---- RAM backpressure ---- */

/* The guest rewrites 16 MiB of RAM as fast as its vCPU goes and QEMU may
 * send it at 16 MiB/s: a pass sends less than the guest dirties
 * meanwhile.  As fast as it goes, so that slowing its vCPU slows its
 * writes (a dirtier held to a rate would catch up in the time it is
 * left); that vCPU takes a whole CPU, so the link is fast enough for the
 * first pass over the rest of the RAM to take seconds, not tens. */
#define RAM_GUEST "vms.mem_mib=16 vms.mem_rate_mib=0"
#define RAM_LINK "16M"
/* Past this the memory is taken not to converge. */
#define RAM_TIMEOUT_S 90
/* With backpressure off: QEMU slowed the guest well before this with it
 * (its first step some 8 s into the memory migration here). */
#define RAM_OFF_TIMEOUT_S 25

/* Bytes/s of RAM vm's guest rewrites (its dirtier's count of pages on
 * the serial console), over RATE_SAMPLE_MS. */
static double
dirty_rate (VmsTestVm *vm)
{
  guint64 pages[2];
  gint64 at[2];

  for (int i = 0; i < 2; i++)
    {
      g_autofree char *log = NULL;
      const char *last = NULL;

      if (i)
        g_usleep (RATE_SAMPLE_MS * 1000);
      /* The count follows each heartbeat: wait for a fresh one (a
       * migrated guest goes on counting where it was). */
      {
        g_autoptr (GError) error = NULL;
        g_autofree char *needle = NULL;

        if (!vms_test_vm_last_heartbeat (vm)
            && !vms_test_vm_wait_serial (vm, "vms-heartbeat ", 30000, &error))
          fail_msg ("the guest does not run: %s", error->message);
        needle = g_strdup_printf ("vms-heartbeat %" G_GUINT64_FORMAT,
                                  vms_test_vm_last_heartbeat (vm) + 1);
        if (!vms_test_vm_wait_serial (vm, needle, 30000, &error))
          fail_msg ("the guest stopped: %s", error->message);
      }
      g_usleep (200 * 1000);
      if (!g_file_get_contents (vm->serial_path, &log, NULL, NULL)
          || !(last = g_strrstr (log, "vms-dirtier: pages ")))
        fail_msg ("no dirtier count on %s", vm->serial_path);
      pages[i]
          = g_ascii_strtoull (last + strlen ("vms-dirtier: pages "), NULL, 10);
      at[i] = g_get_monotonic_time ();
    }
  return (pages[1] - pages[0]) * 4096.0 * G_USEC_PER_SEC / (at[1] - at[0]);
}

static int
setup_ram (void **state)
{
  Fixture *fixture = g_new0 (Fixture, 1);
  VmsTestVmOptions options = {
    .workload = "dirtier",
    .extra_cmdline = RAM_GUEST,
    .disks = { { "qcow2", VD0_SIZE } },
    .second_qmp = TRUE,
  };

  *state = fixture;
  if (!start_source_and_sink (fixture, &options))
    return -1;
  fixture->before = dirty_rate (fixture->source);
  print_message ("  guest dirties RAM at %.0f KiB/s before\n",
                 fixture->before / 1024);
  return 0;
}

static VmsTestCommand *
migrate_ram_start (Fixture *fixture, const char *job, const char *backpressure,
                   int timeout_s)
{
  g_autofree char *source
      = g_strdup_printf ("qmp:%s", fixture->source->qmp2_path);
  g_autofree char *dest
      = g_strdup_printf ("--dest-qmp=qmp:%s", fixture->dest->qmp2_path);
  g_autofree char *memory
      = g_strdup_printf ("--dest-uri=unix:%s/mig.sock", fixture->dest->dir);
  g_autofree char *timeout = g_strdup_printf ("--memory-timeout=%d", timeout_s);

  return vmshift_start (fixture, "migrate", source, "--sink", fixture->sink_uri,
                        "--job", job, "--replica-prefix", "bp", "--bandwidth",
                        RAM_LINK, dest, memory, timeout, "--write-backpressure",
                        backpressure, "--suspend", NULL);
}

/* The most a "ram-backpressure" event slowed the guest, 0: none. */
static gint64
ram_throttle_seen (VmsTestCommand *run)
{
  g_auto (GStrv) lines = g_strsplit (run->out->str, "\n", -1);
  g_autoptr (JsonParser) parser = json_parser_new ();
  gint64 most = 0;

  for (guint i = 0; lines[i]; i++)
    if (strstr (lines[i], "\"event\":\"ram-backpressure\"")
        && json_parser_load_from_data (parser, lines[i], -1, NULL))
      most
          = MAX (most, json_object_get_int_member (
                           json_node_get_object (json_parser_get_root (parser)),
                           "percent"));
  return most;
}

/* The source's QEMU slows its vCPUs no more (query-migrate reports the
 * throttle only while it holds). */
static void
assert_not_throttled (VmsTestVm *vm)
{
  g_autoptr (GError) error = NULL;
  g_auto (VmsQemuMigrationInfo) info = { 0 };

  vms_assert_ok (
      GINT_TO_POINTER (vms_qemu_migration_query (vm->qmp, &info, &error)),
      error);
  if (info.cpu_throttle_percent)
    fail_msg ("the source's vCPUs are still slowed by %" G_GUINT64_FORMAT
              " %% (migration %s)",
              info.cpu_throttle_percent, info.status_name);
}

static void
set_downtime_limit (VmsTestVm *vm, gint64 limit_ms)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) parameters = json_object_new ();

  json_object_set_int_member (parameters, "downtime-limit", limit_ms);
  vms_assert_ok (GINT_TO_POINTER (vms_qemu_migration_set_parameters (
                     vm->qmp, parameters, &error)),
                 error);
}

/* By default the RAM that does not converge gets QEMU's auto-converge:
 * QEMU slows the guest, the migration says the RAM needed backpressure
 * (and the disks none), and the guest dirties as fast as before at the
 * destination. */
static void
test_migrate_ram_backpressure (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) run = NULL;
  g_autofree char *replica
      = vms_test_sink_replica_path (fixture->sink, "bp-vd0");
  gint64 reported;
  double after;

  start_destination (fixture);
  run = migrate_ram_start (fixture, "ram", "auto", RAM_TIMEOUT_S);
  vms_test_command_wait_for (run, "\"event\":\"ram-backpressure\"",
                             RAM_TIMEOUT_S * 1000);
  /* Under TCG QEMU's throttle hardly slows a vCPU's memset (it still
   * dirties the 16 MiB each pass at 99 %): the RAM left is made to fit
   * from outside, once vmshift has raised QEMU's limit as far as it goes
   * (it would set it back otherwise). */
  vms_test_command_wait_for (run, "downtime limit raised to 300 ms",
                             RAM_TIMEOUT_S * 1000);
  set_downtime_limit (fixture->source, 10000);
  vms_test_command_expect_success (run);
  reported = vms_test_command_event_int (run, "migrated", NULL,
                                         "ram-throttle-percent");
  print_message ("  the vCPUs were slowed by up to %" G_GINT64_FORMAT
                 " %%; events: %" G_GINT64_FORMAT " %%\n",
                 reported, ram_throttle_seen (run));
  assert_true (reported >= 20);
  assert_int_equal (reported, ram_throttle_seen (run));
  assert_int_equal (vms_test_command_event_int (run, "migrated", NULL,
                                                "disk-backpressure-rate"),
                    0);
  vms_test_assert_identical (fixture->source->disk_paths[0], "qcow2", replica);
  qmp_ok (fixture->dest, "cont");
  after = dirty_rate (fixture->dest);
  print_message ("  guest dirties RAM at %.0f KiB/s at the destination\n",
                 after / 1024);
  /* Half: a vCPU as busy as it can be shares this host's CPUs. */
  if (after < 0.5 * fixture->before)
    fail_msg ("the guest dirties %.0f KiB/s at the destination, %.0f before",
              after / 1024, fixture->before / 1024);
}

/* The same with --write-backpressure off: QEMU never slows the guest
 * (what the test above got is backpressure's doing), and the memory
 * does not converge. */
static void
test_migrate_ram_off_does_not_converge (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) run = NULL;

  start_destination (fixture);
  run = migrate_ram_start (fixture, "ramoff", "off", RAM_OFF_TIMEOUT_S);
  assert_int_equal (vms_test_command_wait (run), 3);
  assert_non_null (strstr (run->out->str, "\"event\":\"rolled-back\""));
  assert_int_equal (ram_throttle_seen (run), 0);
}

/* Ctrl-C while QEMU slows the guest: rolled back, the vCPUs run at full
 * speed again on the source. */
static void
test_migrate_ram_rollback (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) run = NULL;
  double after;

  start_destination (fixture);
  run = migrate_ram_start (fixture, "ramrb", "auto", RAM_TIMEOUT_S);
  vms_test_command_wait_for (run, "\"event\":\"ram-backpressure\"",
                             RAM_TIMEOUT_S * 1000);
  kill (run->pid, SIGINT);
  vms_test_command_wait (run);
  assert_non_null (strstr (run->out->str, "\"event\":\"rolled-back\""));
  assert_not_throttled (fixture->source);
  after = dirty_rate (fixture->source);
  print_message ("  guest dirties RAM at %.0f KiB/s after the rollback\n",
                 after / 1024);
  if (after < 0.5 * fixture->before)
    fail_msg ("the guest dirties %.0f KiB/s after the rollback, %.0f before",
              after / 1024, fixture->before / 1024);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_sync_off_does_not_converge, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_sync_converges_with_backpressure,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_sync_kill9_then_abort, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_sync_interrupted, setup, teardown),
    cmocka_unit_test_setup_teardown (test_migrate_pause_with_backpressure,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_migrate_mirror_with_backpressure,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_migrate_takes_the_estimates_rate,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_migrate_rollback_restores, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_migrate_ram_backpressure, setup_ram,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_migrate_ram_off_does_not_converge,
                                     setup_ram, teardown),
    cmocka_unit_test_setup_teardown (test_migrate_ram_rollback, setup_ram,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_migrate_kill9_then_abort, setup,
                                     teardown),
  };

  vms_test_require_program ("qemu-system-x86_64", "qemu-system-x86");
  vms_test_require_program ("qemu-img", "qemu-utils");
  vms_test_require_program ("nbdkit", "nbdkit");
  vmshift = vms_test_built_program ("VMS_VMSHIFT");
  return vms_test_run_group ("backpressure", tests, G_N_ELEMENTS (tests), NULL,
                             NULL);
}
