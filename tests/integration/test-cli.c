/* Integration tests: the vmshift program as a user runs it, against a real
 * QEMU.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-test.h"
#include "vms-test-vm.h"

#include <glib/gstdio.h>
#include <string.h>
#include <sys/wait.h>

static const char *vmshift;

/* Run vmshift with args (NULL-terminated). */
#define run_vmshift(run, ...)                                                  \
  vms_test_run_capture (run, NULL, NULL, vmshift, __VA_ARGS__)

static int
start_bare (void **state)
{
  /* A disk, so that a sync that got past its checks would get as far as
   * writing its job. */
  VmsTestVmOptions options
      = { .no_guest = TRUE, .disks = { { "qcow2", 64 * 1024 * 1024 } } };
  g_autoptr (GError) error = NULL;
  VmsTestVm *vm = vms_test_vm_start (&options, &error);

  if (!vm)
    {
      print_error ("cannot start QEMU: %s\n", error->message);
      return -1;
    }
  /* The CLI needs the monitor to itself: QEMU serves one client. */
  g_clear_pointer (&vm->qmp, vms_qmp_free);
  *state = vm;
  return 0;
}

static int
stop_vm (void **state)
{
  vms_test_vm_free (*state);
  return 0;
}

static void
test_version_and_help (void **state)
{
  g_auto (VmsTestRun) version = { 0 };
  g_auto (VmsTestRun) help = { 0 };
  g_auto (VmsTestRun) qmp_help = { 0 };
  g_auto (VmsTestRun) none = { 0 };
  g_auto (VmsTestRun) unknown = { 0 };

  run_vmshift (&version, "--version", NULL);
  assert_int_equal (version.status, 0);
  assert_true (g_str_has_prefix (version.out, "vmshift "));
  run_vmshift (&help, "--help", NULL);
  assert_int_equal (help.status, 0);
  assert_non_null (strstr (help.out, "qmp"));
  run_vmshift (&qmp_help, "qmp", "--help", NULL);
  assert_int_equal (qmp_help.status, 0);
  assert_non_null (strstr (qmp_help.out, "SOCKET COMMAND [JSON-ARGS]"));
  run_vmshift (&none, NULL);
  assert_int_equal (none.status, 2);
  run_vmshift (&unknown, "frobnicate", NULL);
  assert_int_equal (unknown.status, 2);
  assert_non_null (strstr (unknown.err, "unknown command 'frobnicate'"));
}

/* vmshift job: in --help, its usage errors are exit 2 naming what. */
static void
test_job_usage (void **state)
{
  g_auto (VmsTestRun) help = { 0 };
  g_auto (VmsTestRun) job_help = { 0 };
  g_auto (VmsTestRun) bare = { 0 };
  g_auto (VmsTestRun) bad_id = { 0 };
  g_auto (VmsTestRun) unknown = { 0 };

  run_vmshift (&help, "--help", NULL);
  assert_non_null (strstr (help.out, "job"));
  run_vmshift (&job_help, "job", "--help", NULL);
  assert_int_equal (job_help.status, 0);
  assert_non_null (strstr (job_help.out, "list | drop JOB"));
  assert_non_null (strstr (job_help.out, "--force"));
  run_vmshift (&bare, "job", NULL);
  assert_int_equal (bare.status, 2);
  assert_non_null (strstr (bare.err, "expected 'list' or 'drop JOB'"));
  run_vmshift (&bad_id, "job", "drop", "a/b", NULL);
  assert_int_equal (bad_id.status, 2);
  assert_non_null (strstr (bad_id.err, "JOB 'a/b': job id may hold"));
  run_vmshift (&unknown, "job", "drop", "nosuchjob", "--state-dir",
               "/nonexistent-vmshift-state", NULL);
  assert_int_equal (unknown.status, 1);
}

/* vmshift plan check: a plan's units in order, a group with its members;
 * a wrong plan is exit 2 naming the section and key. */
static void
test_plan_check (void **state)
{
  g_autofree char *dir = g_dir_make_tmp ("vms-plan-XXXXXX", NULL);
  g_autofree char *good = g_build_filename (dir, "good.plan", NULL);
  g_autofree char *bad = g_build_filename (dir, "bad.plan", NULL);
  g_auto (VmsTestRun) checked = { 0 };
  g_auto (VmsTestRun) as_json = { 0 };
  g_auto (VmsTestRun) refused = { 0 };
  g_auto (VmsTestRun) no_file = { 0 };
  g_auto (VmsTestRun) run = { 0 };
  g_auto (VmsTestRun) estimated = { 0 };
  g_auto (VmsTestRun) no_estimate = { 0 };
  const char *plan = "[plan]\nconcurrency = 2\nsink = nbds://10.0.0.2/\n"
                     "[group front]\nmax-downtime = 300\n"
                     "[vm web1]\nsource = qmp:/run/web1.qmp\n"
                     "dest-qmp = qmp:10.0.0.2:4401\n"
                     "dest-uri = tcp:10.0.0.2:5501\ngroup = front\n"
                     "[vm db]\nconnect = qemu:///system\ndomain = db\n"
                     "dest = qemu+ssh://b/system\n"
                     "[vm web2]\nsource = qmp:/run/web2.qmp\n"
                     "dest-qmp = qmp:10.0.0.2:4402\n"
                     "dest-uri = tcp:10.0.0.2:5502\ngroup = front\n";

  assert_non_null (dir);
  assert_true (g_file_set_contents (good, plan, -1, NULL));
  assert_true (
      g_file_set_contents (bad, "[vm web1]\nsource = qmp:/a\n", -1, NULL));
  run_vmshift (&checked, "plan", "check", good, NULL);
  assert_int_equal (checked.status, 0);
  assert_non_null (strstr (checked.out, "1. group front: 2 VMs"));
  assert_non_null (strstr (checked.out, "2. db: libvirt domain db"));
  run_vmshift (&as_json, "plan", "check", "--json", good, NULL);
  assert_int_equal (as_json.status, 0);
  assert_non_null (strstr (as_json.out, "\"members\":[{\"vm\":\"web1\""));
  run_vmshift (&refused, "plan", "check", bad, NULL);
  assert_int_equal (refused.status, 2);
  assert_non_null (strstr (refused.err, "[vm web1]: a VM needs source, "
                                        "dest-qmp and dest-uri"));
  run_vmshift (&no_file, "plan", "check", "/nonexistent/x.plan", NULL);
  assert_int_equal (no_file.status, 2);
  assert_non_null (strstr (no_file.err, "/nonexistent/x.plan: "));
  /* In an estimate's order, which must be there. */
  {
    g_autofree char *estimate
        = g_build_filename (dir, "estimate-e1.json", NULL);

    assert_true (g_file_set_contents (
        estimate,
        "{\"group\": {\"order\": [\"qmp:/run/b.qmp\", \"qmp:/run/a.qmp\"]}}",
        -1, NULL));
    assert_true (g_file_set_contents (
        good,
        "[plan]\nsink = nbds://10.0.0.2/\nestimate = e1\n"
        "[vm a]\nsource = qmp:/run/a.qmp\ndest-qmp = qmp:10.0.0.2:4401\n"
        "dest-uri = tcp:10.0.0.2:5501\n"
        "[vm b]\nsource = qmp:/run/b.qmp\ndest-qmp = qmp:10.0.0.2:4402\n"
        "dest-uri = tcp:10.0.0.2:5502\n",
        -1, NULL));
    run_vmshift (&estimated, "plan", "check", "--state-dir", dir, good, NULL);
    assert_int_equal (estimated.status, 0);
    assert_non_null (strstr (estimated.out, "in estimate e1's order"));
    assert_non_null (strstr (estimated.out, "1. b: "));
    g_unlink (estimate);
    run_vmshift (&no_estimate, "plan", "check", "--state-dir", dir, good, NULL);
    assert_int_equal (no_estimate.status, 2);
    assert_non_null (strstr (no_estimate.err, "estimate e1: "));
  }
  /* A member that cannot start fails its group: the other rolls back
   * with it, named. */
  assert_true (g_file_set_contents (
      good,
      "[plan]\nconcurrency = 2\nsink = "
      "nbd+unix:///?socket=/nonexistent/sink.sock\n"
      "alert = /bin/sleep 600\nalert-timeout = 1\n"
      "[group front]\n"
      "[vm web1]\nsource = qmp:/nonexistent/web1.qmp\n"
      "dest-qmp = qmp:/nonexistent/d1.qmp\ndest-uri = unix:/nonexistent/m1\n"
      "group = front\n"
      "[vm web2]\nsource = qmp:/nonexistent/web2.qmp\n"
      "dest-qmp = qmp:/nonexistent/d2.qmp\ndest-uri = unix:/nonexistent/m2\n"
      "group = front\n",
      -1, NULL));
  run_vmshift (&run, "plan", "run", "--state-dir", dir, good, NULL);
  assert_int_equal (run.status, 1);
  assert_non_null (strstr (run.err, "group front rolled back: web"));
  assert_non_null (strstr (run.err, "2 of 2 VMs did not migrate"));
  /* A hung alert command is killed, said, and holds nothing up. */
  assert_non_null (strstr (run.err, "the alert command /bin/sleep failed: it "
                                    "did not end within 1 s and was killed"));
  vms_test_rmtree (dir);
}

static void
test_qmp_command_prints_json (void **state)
{
  VmsTestVm *vm = *state;
  g_autofree char *source = g_strdup_printf ("qmp:%s", vm->qmp_path);
  g_auto (VmsTestRun) status = { 0 };
  g_auto (VmsTestRun) hmp = { 0 };
  g_autoptr (JsonParser) parser = json_parser_new ();

  run_vmshift (&status, "qmp", source, "query-status", NULL);
  assert_int_equal (status.status, 0);
  assert_true (json_parser_load_from_data (parser, status.out, -1, NULL));
  assert_string_equal (
      json_object_get_string_member (
          json_node_get_object (json_parser_get_root (parser)), "status"),
      "running");

  run_vmshift (&hmp, "qmp", "--hmp", vm->qmp_path, "info status", NULL);
  assert_int_equal (hmp.status, 0);
  assert_non_null (strstr (hmp.out, "VM status: running"));
}

static void
test_qmp_wait_event (void **state)
{
  VmsTestVm *vm = *state;
  g_auto (VmsTestRun) stop = { 0 };

  run_vmshift (&stop, "qmp", "--wait-event", "STOP", vm->qmp_path, "stop",
               NULL);
  assert_int_equal (stop.status, 0);
  assert_non_null (strstr (stop.out, "\"event\":\"STOP\""));
}

static void
test_qmp_errors_and_exit_codes (void **state)
{
  VmsTestVm *vm = *state;
  g_auto (VmsTestRun) unknown = { 0 };
  g_auto (VmsTestRun) bad_json = { 0 };
  g_auto (VmsTestRun) not_object = { 0 };
  g_auto (VmsTestRun) early = { 0 };
  g_auto (VmsTestRun) missing = { 0 };
  g_auto (VmsTestRun) usage = { 0 };
  g_auto (VmsTestRun) bad_timeout = { 0 };

  run_vmshift (&unknown, "qmp", vm->qmp_path, "no-such-command", NULL);
  assert_int_equal (unknown.status, 1);
  assert_non_null (strstr (unknown.err, "CommandNotFound: "));

  run_vmshift (&bad_json, "qmp", vm->qmp_path, "query-status", "{oops", NULL);
  assert_int_equal (bad_json.status, 2);
  assert_non_null (strstr (bad_json.err, "not valid JSON"));

  /* Checked before connecting: no QEMU needed to learn about a typo. */
  run_vmshift (&early, "qmp", "/nonexistent/qmp.sock", "query-status", "{oops",
               NULL);
  assert_int_equal (early.status, 2);

  run_vmshift (&not_object, "qmp", vm->qmp_path, "query-status", "[1]", NULL);
  assert_int_equal (not_object.status, 2);
  assert_non_null (strstr (not_object.err, "must be a JSON object"));

  run_vmshift (&missing, "qmp", "/nonexistent/qmp.sock", "query-status", NULL);
  assert_int_equal (missing.status, 3);
  assert_non_null (strstr (missing.err, "cannot connect"));

  run_vmshift (&usage, "qmp", vm->qmp_path, NULL);
  assert_int_equal (usage.status, 2);

  run_vmshift (&bad_timeout, "qmp", "--timeout", "-1", vm->qmp_path,
               "query-status", NULL);
  assert_int_equal (bad_timeout.status, 2);
}

/* ---- bad input: refused up front, naming the option, writing nothing */

/* A sink URI that parses but where nothing listens: a run that got past
 * its checks fails later, after it wrote a job file. */
#define NO_SINK "nbd+unix:///?socket=/nonexistent/vmshift-sink.sock"

/* A bad command line: what follows the command, and a part of the
 * message that names the option at fault. */
typedef struct
{
  const char *args[8]; /* after "vmshift COMMAND SOURCE" */
  const char *message; /* part of the expected error */
} BadInput;

static const BadInput bad_copy_options[] = {
  { { "-b", "-5" }, "--max-bandwidth wants a rate" },
  { { "--max-bandwidth", "-1" }, "--max-bandwidth wants a rate" },
  { { "--max-bandwidth", "99999999999999999999" }, "--max-bandwidth wants" },
  { { "--max-bandwidth", "17179869184G" }, "--max-bandwidth wants" },
  { { "--request-size", "-1024" }, "--request-size wants a size" },
  { { "--converge-bytes", "-1" }, "--converge-bytes wants a size" },
  { { "--checkpoint-bytes", "1x" }, "--checkpoint-bytes wants a size" },
  { { "--rounds", "-1" }, "--rounds wants a count from 0 to" },
  { { "-n", "x" }, "--rounds wants a count" },
  { { "-q", "0" }, "--queue-depth wants a count from 1 to 256, not '0'" },
  { { "--queue-depth", "257" }, "--queue-depth wants a count from 1 to 256" },
  { { "--connections", "0" }, "--connections wants a count from 1 to 16" },
  { { "--connections", "17" }, "--connections wants a count from 1 to 16" },
  { { "--io-timeout", "0" }, "--io-timeout wants a number of seconds" },
  { { "--checkpoint-seconds", "-1" }, "--checkpoint-seconds wants" },
  { { "--granularity", "3000" }, "--granularity must be a power of two" },
  { { "--retry-timeout", "-1" }, "--retry-timeout wants a number of seconds" },
  { { "--bitmap-memory", "-1" }, "--bitmap-memory wants a size" },
  { { "--bitmap-memory", "1K" }, "--bitmap-memory wants a size" },
  { { "--rounds", "2", "--until-converged" }, "exclude each other" },
  { { "--sink", "foo" }, "--sink wants an NBD URI" },
  { { "--sink", "http://sink.example/" }, "--sink wants an NBD URI" },
  { { "--sink", "nbd+unix:///" }, "add ?socket=PATH" },
  { { "--sink", "nbd:///x" }, "names no host" },
  { { "--job", "a/b" }, "--job 'a/b'" },
  { { "--job", "\xc3\xa9" }, "--job '\xc3\xa9'" },
  { { "--job", ".." }, "--job '..'" },
  { { "--job", "" }, "--job ''" },
  { { "--job", "x", "--resume", "x" }, "give one of them" },
  { { "--max-guest-latency", "0" },
    "--max-guest-latency wants a number of milliseconds from 1 to 60000" },
  { { "--max-guest-latency", "1.5" }, "--max-guest-latency wants" },
  { { "--replication-backpressure", "auto" }, "needs --max-guest-latency" },
  { { "--write-backpressure", "255K" },
    "--write-backpressure takes auto, off or a RATE of at least 256K "
    "(bytes/s), not '255K'" },
  { { "--write-backpressure", "on" }, "--write-backpressure takes auto, off" },
  { { "--replication-backpressure", "on", "--max-guest-latency", "5" },
    "--replication-backpressure takes auto or off, not 'on'" },
};

static const BadInput bad_migrate_options[] = {
  { { "--dest-qmp", "/nonexistent/d.qmp", "--dest-uri", "unix:/nonexistent/m",
      "--max-downtime", "-1" },
    "--max-downtime wants a number of milliseconds from 1 to" },
  { { "--dest-qmp", "/nonexistent/d.qmp", "--dest-uri", "unix:/nonexistent/m",
      "--multifd", "256" },
    "--multifd wants a count from 0 to 255" },
  { { "--dest-qmp", "/nonexistent/d.qmp", "--dest-uri", "unix:/nonexistent/m",
      "--switchover-timeout", "0" },
    "--switchover-timeout wants a number of seconds from 1" },
  { { "--dest-qmp", "/nonexistent/d.qmp", "--dest-uri", "unix:/nonexistent/m",
      "--memory-timeout", "-1" },
    "--memory-timeout wants a number of seconds from 0" },
  { { "--dest-qmp", "/nonexistent/d.qmp", "--dest-uri", "unix:/nonexistent/m",
      "--bandwidth", "-1" },
    "--bandwidth wants a rate" },
  { { "--dest-qmp", "/nonexistent/d.qmp", "--dest-uri", "unix:/nonexistent/m",
      "--rounds", "-1" },
    "--rounds wants a count" },
  { { "--dest-qmp", "/nonexistent/d.qmp", "--dest-uri", "tcp:192.0.2.1:4444" },
    "not on loopback: anyone on the network could read the VM's memory; use "
    "--tls" },
  { { "--dest-qmp", "/nonexistent/d.qmp", "--dest-uri",
      "tcp:dest.example:4444" },
    "or --insecure to send it in clear text" },
  { { "--connect", "qemu:///nonexistent", "dest", "--insecure" },
    "--insecure is for --dest-uri" },
  { { "--dest-uri", "unix:/nonexistent/m" }, "--dest-qmp ADDRESS is required" },
  { { "--dest-qmp", "/nonexistent/d.qmp" }, "--dest-uri URI is required" },
};

/* The JSON files in dir (job and estimate files), as a list for a
 * message; "" when there is none. */
static char *
state_files (const char *dir)
{
  g_autoptr (GDir) listing = g_dir_open (dir, 0, NULL);
  GString *found = g_string_new (NULL);
  const char *name;

  while (listing && (name = g_dir_read_name (listing)))
    if (g_str_has_suffix (name, ".json"))
      g_string_append_printf (found, " %s", name);
  return g_string_free (found, FALSE);
}

/* Run vmshift COMMAND SOURCE ARGS... --state-dir DIR [--sink NO_SINK]
 * against the real QEMU: a run that got past its checks would write a
 * job and fail later with another status. */
static void
assert_bad_input (VmsTestVm *vm, const char *command, const BadInput *bad,
                  gboolean add_sink)
{
  g_autofree char *source = g_strdup_printf ("qmp:%s", vm->qmp_path);
  g_autofree char *state_dir = vms_test_make_tmpdir ("vms-cli-state");
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_autofree char *shown = NULL;
  g_autofree char *files = NULL;
  g_auto (VmsTestRun) run = { 0 };
  gboolean has_sink = FALSE;

  g_ptr_array_add (argv, (gpointer)vmshift);
  g_ptr_array_add (argv, (gpointer)command);
  g_ptr_array_add (argv, source);
  for (const char *const *arg = bad->args; *arg; arg++)
    {
      has_sink |= g_str_equal (*arg, "--sink");
      g_ptr_array_add (argv, (gpointer)*arg);
    }
  g_ptr_array_add (argv, "--state-dir");
  g_ptr_array_add (argv, state_dir);
  if (add_sink && !has_sink)
    {
      g_ptr_array_add (argv, "--sink");
      g_ptr_array_add (argv, NO_SINK);
    }
  g_ptr_array_add (argv, NULL);
  shown = g_strjoinv (" ", (char **)argv->pdata + 1);
  vms_test_run_capturev (&run, NULL, NULL, (const char *const *)argv->pdata);
  files = state_files (state_dir);
  if (run.status != 2 || !strstr (run.err, bad->message) || *files)
    fail_msg ("'%s' exited %d with '%s' leaving [%s]; expected 2, '%s' and "
              "no file",
              shown, run.status, run.err, files, bad->message);
  vms_test_rmtree (state_dir);
}

static void
test_sync_bad_input (void **state)
{
  for (gsize i = 0; i < G_N_ELEMENTS (bad_copy_options); i++)
    assert_bad_input (*state, "sync", &bad_copy_options[i], TRUE);
}

static void
test_migrate_bad_input (void **state)
{
  static const BadInput no_sink = { { "--dest-qmp", "/nonexistent/d.qmp",
                                      "--dest-uri", "unix:/nonexistent/m" },
                                    "--sink URI is required" };

  for (gsize i = 0; i < G_N_ELEMENTS (bad_migrate_options); i++)
    assert_bad_input (*state, "migrate", &bad_migrate_options[i], TRUE);
  assert_bad_input (*state, "migrate", &no_sink, FALSE);
}

static void
test_estimate_bad_input (void **state)
{
  static const BadInput cases[] = {
    { { "-w", "0" }, "--window wants a number of seconds from 1" },
    { { "--window", "-1" }, "--window wants a number of seconds" },
    { { "--window", "3", "--interval", "4" },
      "--interval wants a number of seconds from 1 to 3, not '4'" },
    { { "--interval", "0" }, "--interval wants a number of seconds" },
    { { "--probe-seconds", "0" }, "--probe-seconds wants a number of seconds" },
    { { "--probe-seconds", "nan" }, "--probe-seconds wants" },
    { { "--seed-shipping-hours", "-1" }, "--seed-shipping-hours wants" },
    { { "--bandwidth", "-1" }, "--bandwidth wants a rate" },
    { { "--seed-capacity", "-1" }, "--seed-capacity wants a size" },
    { { "--seed-rate", "-1" }, "--seed-rate wants a rate" },
    { { "--sink", "foo" }, "--sink wants an NBD URI" },
    { { "--id", "a/b" }, "--id 'a/b': job id may hold" },
    /* Checked as sync and migrate check them. */
    { { "--granularity", "3K" }, "--granularity must be a power of two" },
    { { "-g", "256" }, "--granularity wants a size" },
    { { "--bitmap-memory", "1K" }, "--bitmap-memory wants a size" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    assert_bad_input (*state, "estimate", &cases[i], TRUE);
}

static void
test_qmp_and_abort_timeouts (void **state)
{
  VmsTestVm *vm = *state;
  g_auto (VmsTestRun) zero = { 0 };
  g_auto (VmsTestRun) negative = { 0 };
  g_auto (VmsTestRun) abort_negative = { 0 };
  g_auto (VmsTestRun) abort_zero = { 0 };
  g_auto (VmsTestRun) abort_garbage = { 0 };
  g_auto (VmsTestRun) abort_name = { 0 };
  g_auto (VmsTestRun) fraction = { 0 };

  /* The message gives the range that is accepted: 0 is not in it. */
  run_vmshift (&zero, "qmp", "-t", "0", vm->qmp_path, "query-status", NULL);
  assert_int_equal (zero.status, 2);
  assert_non_null (strstr (zero.err, "--timeout wants a number of seconds "
                                     "from 0.001 to 86400, not '0'"));
  run_vmshift (&negative, "qmp", "--timeout", "-1", vm->qmp_path,
               "query-status", NULL);
  assert_int_equal (negative.status, 2);
  assert_non_null (strstr (negative.err, "--timeout wants"));
  run_vmshift (&fraction, "qmp", "-t", "0.5", vm->qmp_path, "query-status",
               NULL);
  assert_int_equal (fraction.status, 0);

  run_vmshift (&abort_negative, "abort", "-t", "-1", "job", NULL);
  assert_int_equal (abort_negative.status, 2);
  assert_non_null (strstr (abort_negative.err, "--timeout wants a number of "
                                               "seconds from 1"));
  run_vmshift (&abort_zero, "abort", "--timeout", "0", "job", NULL);
  assert_int_equal (abort_zero.status, 2);
  assert_non_null (strstr (abort_zero.err, "--timeout wants"));
  run_vmshift (&abort_garbage, "abort", "--timeout", "5s", "job", NULL);
  assert_int_equal (abort_garbage.status, 2);
  assert_non_null (strstr (abort_garbage.err, "not '5s'"));
  run_vmshift (&abort_name, "abort", "a/b", NULL);
  assert_int_equal (abort_name.status, 2);
  assert_non_null (strstr (abort_name.err, "JOB 'a/b': job id may hold"));
}

/* -c is --connect wherever vmshift takes a libvirt URI, and nothing
 * else anywhere. */
static void
test_short_c_is_connect (void **state)
{
  g_auto (VmsTestRun) migrate_help = { 0 };
  g_auto (VmsTestRun) sync_help = { 0 };
  g_auto (VmsTestRun) estimate_help = { 0 };
  g_auto (VmsTestRun) sync_c = { 0 };

  run_vmshift (&migrate_help, "migrate", "--help", NULL);
  run_vmshift (&sync_help, "sync", "--help", NULL);
  run_vmshift (&estimate_help, "estimate", "--help", NULL);
  assert_non_null (strstr (migrate_help.out, "-c, --connect=URI"));
  assert_non_null (strstr (estimate_help.out, "-c, --connect=URI"));
  assert_non_null (strstr (estimate_help.out, "-g, --granularity=SIZE"));
  assert_non_null (strstr (estimate_help.out, "--bitmap-memory=SIZE"));
  assert_non_null (strstr (migrate_help.out, "  --connections=N"));
  assert_null (strstr (migrate_help.out, "-c, --connections"));
  assert_null (strstr (sync_help.out, "-c, --connections"));
  run_vmshift (&sync_c, "sync", "-c", "4", "qmp:/nonexistent", "--sink",
               NO_SINK, NULL);
  assert_int_equal (sync_c.status, 2);
}

/* A state directory that cannot hold a file stops sync before it
 * touches the VM, and it does not claim to have saved anything. */
static void
test_unwritable_state_dir (void **state)
{
  VmsTestVm *vm = *state;
  g_autofree char *source = g_strdup_printf ("qmp:%s", vm->qmp_path);
  g_autofree char *tmp = vms_test_make_tmpdir ("vms-cli-state");
  g_autofree char *file = g_build_filename (tmp, "file", NULL);
  g_autofree char *state_dir = g_build_filename (file, "state", NULL);
  g_auto (VmsTestRun) run = { 0 };
  g_auto (VmsTestRun) block = { 0 };
  g_auto (VmsTestRun) migrate = { 0 };

  assert_true (g_file_set_contents (file, "", 0, NULL));
  run_vmshift (&run, "sync", source, "--sink", NO_SINK, "--state-dir",
               state_dir, "--job", "web1", NULL);
  assert_int_equal (run.status, 1);
  assert_non_null (strstr (run.err, state_dir));
  assert_non_null (strstr (run.err, "--state-dir"));
  assert_null (strstr (run.err, "state saved"));
  assert_null (strstr (run.err, "--resume"));
  /* Untouched: no bitmap was added. */
  run_vmshift (&block, "qmp", vm->qmp_path, "query-block", NULL);
  assert_int_equal (block.status, 0);
  assert_null (strstr (block.out, "vmshift-web1"));

  run_vmshift (&migrate, "migrate", source, "--sink", NO_SINK, "--dest-qmp",
               "/nonexistent/d.qmp", "--dest-uri", "unix:/nonexistent/m",
               "--state-dir", state_dir, "--job", "web1", NULL);
  assert_int_equal (migrate.status, 1);
  assert_non_null (strstr (migrate.err, "--state-dir"));
  assert_null (strstr (migrate.err, "--resume"));
  vms_test_rmtree (tmp);
}

/* A typed job id is kept as typed, so --resume finds it; a default id
 * taken by another run in the same second gets a number instead of
 * replacing that run's job. */
static void
test_job_names (void **state)
{
  VmsTestVm *vm = *state;
  g_autofree char *source = g_strdup_printf ("qmp:%s", vm->qmp_path);
  g_autofree char *state_dir = vms_test_make_tmpdir ("vms-cli-state");
  g_autofree char *dotted = g_build_filename (state_dir, "a.b.json", NULL);
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  g_autofree char *files = NULL;
  g_auto (VmsTestRun) typed = { 0 };
  g_auto (VmsTestRun) resumed = { 0 };
  g_auto (VmsTestRun) unnamed = { 0 };

  run_vmshift (&typed, "sync", source, "--sink", NO_SINK, "--state-dir",
               state_dir, "--job", "a.b", NULL);
  /* The sink is not there: the run fails after it saved the job. */
  assert_int_equal (typed.status, 3);
  assert_true (g_file_test (dotted, G_FILE_TEST_EXISTS));
  assert_non_null (strstr (typed.err, "vmshift sync --resume a.b"));
  run_vmshift (&resumed, "sync", "--resume", "a.b", "--state-dir", state_dir,
               NULL);
  assert_int_equal (resumed.status, 3);
  assert_null (strstr (resumed.err, "no job"));

  /* Every default id the run could pick in the next minute is taken by
   * another run's file, which must survive as it is. */
  for (gint64 second = now; second < now + 60; second++)
    {
      g_autofree char *path = g_strdup_printf (
          "%s/vm-%" G_GINT64_FORMAT ".json", state_dir, second);

      assert_true (g_file_set_contents (path, "another run's", -1, NULL));
    }
  run_vmshift (&unnamed, "sync", source, "--sink", NO_SINK, "--state-dir",
               state_dir, NULL);
  assert_int_equal (unnamed.status, 3);
  files = state_files (state_dir);
  for (gint64 second = now; second < now + 60; second++)
    {
      g_autofree char *path = g_strdup_printf (
          "%s/vm-%" G_GINT64_FORMAT ".json", state_dir, second);
      g_autofree char *text = NULL;

      assert_true (g_file_get_contents (path, &text, NULL, NULL));
      assert_string_equal (text, "another run's");
    }
  if (!strstr (files, "-1.json") || !strstr (unnamed.err, "-1.json; continue"))
    fail_msg ("no vm-SECONDS-1 job among [%s]: %s", files, unnamed.err);
  vms_test_rmtree (state_dir);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_version_and_help),
    cmocka_unit_test (test_job_usage),
    cmocka_unit_test (test_plan_check),
    cmocka_unit_test (test_qmp_command_prints_json),
    cmocka_unit_test (test_qmp_errors_and_exit_codes),
    cmocka_unit_test (test_qmp_wait_event),
    cmocka_unit_test (test_sync_bad_input),
    cmocka_unit_test (test_migrate_bad_input),
    cmocka_unit_test (test_estimate_bad_input),
    cmocka_unit_test (test_qmp_and_abort_timeouts),
    cmocka_unit_test (test_short_c_is_connect),
    cmocka_unit_test (test_unwritable_state_dir),
    cmocka_unit_test (test_job_names),
  };

  vmshift = vms_test_built_program ("VMS_VMSHIFT");
  vms_test_require_program ("qemu-system-x86_64", "qemu-system-x86");
  return cmocka_run_group_tests_name ("cli", tests, start_bare, stop_vm);
}
