/* Integration tests: vmshift migrate between two real QEMUs (TCG) with a
 * writing guest, through the real sink; faults before commit roll back
 * and a resumed migration finishes without sending the disks again.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-test.h"
#include "vms-test-command.h"
#include "vms-test-netns.h"
#include "vms-test-sink.h"
#include "vms-test-vm.h"
#include "vms-test-x509.h"
#include "vms-bitmap.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <signal.h>
#include <sys/wait.h>

#define MiB (1024 * 1024)
#define VD0_SIZE (48 * MiB)
#define VD1_SIZE (32 * MiB)
/* The source's raw disk holds this much data before the migration. */
#define VD1_DATA (16 * MiB)
/* A third disk (qcow2) for the tests of a VM with three. */
#define VD2_SIZE (24 * MiB)

/* The source's disks: vd<i> of size sizes[i], in format formats[i]. */
static const guint64 disk_sizes[] = { VD0_SIZE, VD1_SIZE, VD2_SIZE };
static const char *const disk_formats[] = { "qcow2", "raw", "qcow2" };

static const char *vmshift;

typedef struct
{
  VmsTestVm *source;   /* running guest, writer on vd0 */
  VmsTestVm *dest;     /* waiting with -incoming defer */
  VmsTestSink *sink;   /* replicas */
  char *state_dir;     /* vmshift job state */
  char *sink_uri;      /* --sink */
  const char *prefix;  /* replica prefix of the test */
  guint attempts;      /* destinations started, for socket names */
  guint disks;         /* the VM's disks: vd0, vd1 and maybe vd2 */
  VmsTestHosts *hosts; /* setup_hosts: the source QEMU and vmshift in host
                          A, the sink on TCP in host B; else NULL */
  char *memory_uri;    /* --dest-uri; NULL: a new unix socket per attempt */
  const char *memory_option; /* e.g. --tls, given with it, or NULL */
  char *certificates;        /* the X.509 sink's, or NULL */
  gboolean dest_in_b;        /* the destination QEMU in host B (memory
                                over TCP across the hosts' link) */
} Fixture;

/* ---- the two QEMUs ---- */

static char *
replica_path (Fixture *fixture, const char *disk)
{
  g_autofree char *name = g_strdup_printf ("%s-%s", fixture->prefix, disk);

  return vms_test_sink_replica_path (fixture->sink, name);
}

/* A sink on TCP in host B is reached from host A only, over TLS. */
static void
create_replica_over_tcp (Fixture *fixture, const char *name)
{
  g_autofree char *uri = vms_test_sink_tcp_uri (fixture->sink, name);
  const char *argv[] = { "nbdinfo", "--size", uri, NULL };
  g_auto (GStrv) wrapped = vms_test_hosts_wrap_argv (fixture->hosts, 0, argv);
  g_autoptr (GError) error = NULL;

  vms_assert_ok (vms_test_run ((const char *const *)wrapped, NULL, &error),
                 error);
}

/* The replicas must exist before a destination can open them. */
static void
create_replicas (Fixture *fixture)
{
  for (guint i = 0; i < fixture->disks; i++)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char *name
          = g_strdup_printf ("%s-vd%u@create=%" G_GUINT64_FORMAT,
                             fixture->prefix, i, disk_sizes[i]);
      g_autoptr (nbd_handle) nbd = NULL;

      if (fixture->hosts)
        {
          create_replica_over_tcp (fixture, name);
          continue;
        }
      nbd = vms_test_sink_connect (fixture->sink, name, &error);
      vms_assert_ok (nbd, error);
      nbd_shutdown (nbd, 0);
    }
}

/* A destination QEMU waiting for the VM, its disks on the replicas. */
static void
start_destination (Fixture *fixture, gboolean paused)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *vd0 = replica_path (fixture, "vd0");
  g_autofree char *vd1 = replica_path (fixture, "vd1");
  g_autofree char *vd2
      = fixture->disks > 2 ? replica_path (fixture, "vd2") : NULL;
  VmsTestVmOptions options = {
    .workload = "writer",
    .extra_cmdline = "vms.write_rate_kib=1024 vms.write_span_mib=24",
    .disks = { { "raw", 0, vd0 }, { "raw", 0, vd1 }, { "raw", 0, vd2 } },
    .incoming = TRUE,
    .start_paused = paused,
    .second_qmp = TRUE,
    .netns = fixture->dest_in_b ? fixture->hosts->namespace[1] : NULL,
  };

  if (fixture->dest)
    vms_test_vm_free (fixture->dest);
  fixture->dest = vms_test_vm_start (&options, &error);
  vms_assert_ok (fixture->dest, error);
  fixture->attempts++;
}

static char *
run_state (VmsTestVm *vm)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) reply
      = vms_qmp_execute (vm->qmp, "query-status", NULL, &error);

  if (!reply)
    {
      /* Seen twice in CI, never here: say whether QEMU died, and what it
       * wrote before. */
      g_autofree char *log = NULL;
      g_autofree char *trace = NULL;
      gboolean gone = vms_test_vm_wait_exit (vm, 1000);

      g_file_get_contents (vm->log_path, &log, NULL, NULL);
      trace = vms_test_vm_trace_tail (vm);
      fail_msg ("QMP of %s failed (%s): QEMU %s; its log: %s\nthe end of "
                "its trace:\n%s",
                vm->dir, error->message, gone ? "exited" : "still runs",
                log ? log : "(none)", trace);
    }
  return g_strdup (
      json_object_get_string_member (json_node_get_object (reply), "status"));
}

static void
assert_running (VmsTestVm *vm, const char *who)
{
  g_autofree char *state = run_state (vm);

  if (!g_str_equal (state, "running"))
    fail_msg ("%s is '%s', not running", who, state);
}

/* The guest's heartbeat goes on in vm (the serial log grows). */
static void
assert_heartbeat_continues (VmsTestVm *vm, guint64 after, const char *who)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *needle
      = g_strdup_printf ("vms-heartbeat %" G_GUINT64_FORMAT, after + 2);

  if (!vms_test_vm_wait_serial (vm, needle, 60000, &error))
    fail_msg ("no heartbeat on %s after %" G_GUINT64_FORMAT ": %s", who, after,
              error->message);
}

static void
cont (VmsTestVm *vm)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) reply = vms_qmp_execute (vm->qmp, "cont", NULL, &error);

  vms_assert_ok (reply, error);
}

/* ---- running vmshift ---- */

static VmsTestCommand *
migrate_start (Fixture *fixture, ...)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  va_list args;

  g_ptr_array_add (argv, g_strdup (vmshift));
  g_ptr_array_add (argv, g_strdup ("migrate"));
  va_start (args, fixture);
  for (const char *arg; (arg = va_arg (args, const char *));)
    g_ptr_array_add (argv, g_strdup (arg));
  va_end (args);
  /* A new destination listens on a new socket. */
  g_ptr_array_add (
      argv, g_strdup_printf ("--dest-qmp=qmp:%s", fixture->dest->qmp2_path));
  if (fixture->memory_uri)
    g_ptr_array_add (argv,
                     g_strdup_printf ("--dest-uri=%s", fixture->memory_uri));
  else
    g_ptr_array_add (argv,
                     g_strdup_printf ("--dest-uri=unix:%s/mig-%u.sock",
                                      fixture->dest->dir, fixture->attempts));
  if (fixture->memory_option)
    g_ptr_array_add (argv, g_strdup (fixture->memory_option));
  g_ptr_array_add (argv,
                   g_strdup_printf ("--state-dir=%s", fixture->state_dir));
  g_ptr_array_add (argv, g_strdup ("--json"));
  g_ptr_array_add (argv, NULL);
  return vms_test_command_start (
      fixture->hosts ? fixture->hosts->namespace[0] : NULL,
      (const char *const *)argv->pdata, fixture->state_dir);
}

static VmsTestCommand *
migrate_new (Fixture *fixture, const char *job, ...)
{
  g_autofree char *source
      = g_strdup_printf ("qmp:%s", fixture->source->qmp2_path);
  const char *extra[8] = { NULL };
  guint n = 0;
  va_list args;

  va_start (args, job);
  for (const char *arg;
       n < G_N_ELEMENTS (extra) - 1 && (arg = va_arg (args, const char *));)
    extra[n++] = arg;
  va_end (args);
  return migrate_start (fixture, source, "--sink", fixture->sink_uri, "--job",
                        job, "--replica-prefix", fixture->prefix, extra[0],
                        extra[1], extra[2], extra[3], extra[4], extra[5],
                        extra[6], NULL);
}

static const char *
event_string (VmsTestCommand *command, const char *event, const char *member,
              JsonParser *parser)
{
  JsonObject *object = vms_test_command_find_event (command, event, parser);

  if (!object || !json_object_has_member (object, member))
    fail_msg ("no %s in a '%s' event: %s", member, event, command->out->str);
  return json_object_get_string_member (object, member);
}

/* The downtime's parts add up to it, and the source's three (on its own
 * clock) to what QEMU measured of it. */
static void
assert_downtime_parts (VmsTestCommand *command)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonObject *migrated
      = vms_test_command_find_event (command, "migrated", parser);
  JsonObject *parts;
  gint64 stop, vmshift_part, ram, activation, total, qemu;

  assert_non_null (migrated);
  assert_true (json_object_has_member (migrated, "downtime-parts"));
  parts = json_object_get_object_member (migrated, "downtime-parts");
  stop = json_object_get_int_member (parts, "stop-ms");
  vmshift_part = json_object_get_int_member (parts, "vmshift-ms");
  ram = json_object_get_int_member (parts, "ram-device-ms");
  activation = json_object_get_int_member (parts, "activation-ms");
  total = json_object_get_int_member (migrated, "downtime-ms");
  qemu = json_object_get_int_member (migrated, "qemu-downtime-ms");
  if (stop < 0 || vmshift_part < 0 || ram < 0 || activation < 0 || total <= 0
      || ABS (stop + vmshift_part + ram + activation - total) > 10
      || ABS (stop + vmshift_part + ram - qemu) > 10)
    fail_msg ("downtime %" G_GINT64_FORMAT " ms (QEMU: %" G_GINT64_FORMAT
              ") is not stop %" G_GINT64_FORMAT " + vmshift %" G_GINT64_FORMAT
              " + RAM %" G_GINT64_FORMAT " + activation %" G_GINT64_FORMAT,
              total, qemu, stop, vmshift_part, ram, activation);
  /* Both QEMUs run on this host: one clock. */
  assert_true (json_object_has_member (migrated, "clock-offset-ms"));
  assert_true (ABS (json_object_get_double_member (migrated, "clock-offset-ms"))
               < 5.0);
}

static char *
job_phase (Fixture *fixture, const char *job)
{
  g_autofree char *file = g_strconcat (job, ".json", NULL);
  g_autofree char *path = g_build_filename (fixture->state_dir, file, NULL);
  g_autoptr (JsonParser) parser = json_parser_new ();

  if (!json_parser_load_from_file (parser, path, NULL))
    fail_msg ("no job state at %s", path);
  return g_strdup (json_object_get_string_member (
      json_node_get_object (json_parser_get_root (parser)), "phase"));
}

/* Source (paused since the switchover) and replicas, byte for byte. */
static void
assert_replicas_identical (Fixture *fixture)
{
  for (guint i = 0; i < fixture->disks; i++)
    {
      g_autofree char *disk = g_strdup_printf ("vd%u", i);
      g_autofree char *replica = replica_path (fixture, disk);

      vms_test_assert_identical (fixture->source->disk_paths[i],
                                 disk_formats[i], replica);
    }
}

/* A migration that failed before commit left the source running, its
 * guest writing, and the job resumable. */
static void
assert_rolled_back (Fixture *fixture, VmsTestCommand *command, const char *job)
{
  g_autofree char *phase = job_phase (fixture, job);
  g_autofree char *resume_hint = g_strdup_printf ("--resume %s", job);

  assert_non_null (strstr (command->out->str, "\"event\":\"rolled-back\""));
  assert_non_null (strstr (command->out->str, resume_hint));
  assert_string_equal (phase, "rolled-back");
  assert_running (fixture->source, "the source");
  assert_heartbeat_continues (fixture->source,
                              vms_test_vm_last_heartbeat (fixture->source),
                              "the source");
}

/* The integer member of disk's entry in job's state file. */
static gint64
job_disk_int (Fixture *fixture, const char *job, const char *disk,
              const char *member)
{
  g_autofree char *file = g_strconcat (job, ".json", NULL);
  g_autofree char *path = g_build_filename (fixture->state_dir, file, NULL);
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonArray *disks;

  if (!json_parser_load_from_file (parser, path, NULL))
    fail_msg ("no job state at %s", path);
  disks = json_object_get_array_member (
      json_node_get_object (json_parser_get_root (parser)), "disks");
  for (guint i = 0; i < json_array_get_length (disks); i++)
    {
      JsonObject *object = json_array_get_object_element (disks, i);

      if (g_str_equal (json_object_get_string_member (object, "name"), disk))
        return json_object_get_int_member (object, member);
    }
  fail_msg ("job %s has no disk %s", job, disk);
  return -1;
}

/* The resumed run sent nothing of the background copy again, and nothing
 * at all of vd1, which the guest does not write: what the sink held was
 * kept.  (vd0 gets the writer's new data.) */
static void
assert_resumed_cheaply (Fixture *fixture, const char *job, gint64 vd1_before,
                        VmsTestCommand *resumed)
{
  assert_int_equal (vms_test_command_event_int (resumed, "migrated", NULL,
                                                "disk-background-bytes"),
                    0);
  assert_true (vd1_before >= VD1_DATA);
  assert_int_equal (job_disk_int (fixture, job, "vd1", "bytes-written"),
                    vd1_before);
}

/* After a rollback: a new destination, --resume --suspend, and the
 * replicas equal the source at the pause. */
static void
resume_to_paused_destination (Fixture *fixture, const char *job)
{
  g_autoptr (VmsTestCommand) resumed = NULL;
  gint64 vd1_before = job_disk_int (fixture, job, "vd1", "bytes-written");

  start_destination (fixture, TRUE);
  resumed = migrate_start (fixture, "--resume", job, "--suspend", NULL);
  vms_test_command_expect_success (resumed);
  assert_resumed_cheaply (fixture, job, vd1_before, resumed);
  assert_replicas_identical (fixture);
}

/* ---- fixtures ---- */

typedef enum
{
  SINK_CLEAR, /* no TLS */
  SINK_PSK,   /* TLS-PSK */
  SINK_X509,  /* TLS with certificates */
} SinkTls;

static VmsTestSink *
start_x509_sink (Fixture *fixture, GError **error)
{
  /* Host B for the TCP sink of setup_hosts_x509. */
  const char *const names[] = { "IP:127.0.0.1", "DNS:localhost",
                                "IP:" VMS_TEST_HOST_B_ADDRESS, NULL };

  fixture->certificates = vms_test_x509_make (names, error);
  if (!fixture->certificates)
    return NULL;
  if (fixture->hosts)
    return vms_test_sink_start_tcp_x509 (fixture->hosts->namespace[1],
                                         fixture -> hosts -> address[1],
                                         fixture -> certificates, error);
  return vms_test_sink_start_x509 (fixture->certificates, error);
}

/* The sink with TLS as tls says; with hosts, on TCP in host B (TLS-PSK
 * unless tls asks for X.509). */
static VmsTestSink *
start_sink (Fixture *fixture, SinkTls tls, GError **error)
{
  if (tls == SINK_X509)
    return start_x509_sink (fixture, error);
  if (fixture->hosts)
    return vms_test_sink_start_tcp (fixture->hosts->namespace[1],
                                    fixture -> hosts -> address[1], error);
  return tls == SINK_PSK ? vms_test_sink_start_tls (error)
                         : vms_test_sink_start (NULL, NULL, error);
}

/* A source with disks disks (2 or 3), vd1 (and vd2) holding data; the
 * sink with TLS as tls says; with hosts, in host A, the sink on TCP in
 * host B (not root: nothing is started, and the test skips). */
static int
setup_with (void **state, guint disks, SinkTls tls, gboolean hosts)
{
  Fixture *fixture = g_new0 (Fixture, 1);
  g_autoptr (GError) error = NULL;
  VmsTestVmOptions options = {
    .workload = "writer+dirtier",
    .extra_cmdline = "vms.write_rate_kib=1024 vms.write_span_mib=24",
    .second_qmp = TRUE,
  };

  for (guint i = 0; i < disks; i++)
    options.disks[i] = (VmsTestDisk){ disk_formats[i], disk_sizes[i] };
  fixture->disks = disks;
  *state = fixture;
  if (hosts && !vms_test_is_root ())
    return 0;
  if (hosts && !(fixture->hosts = vms_test_hosts_new (&error)))
    {
      print_error ("cannot make test hosts: %s\n", error->message);
      return -1;
    }
  options.netns = hosts ? fixture->hosts->namespace[0] : NULL;
  fixture->source = vms_test_vm_start (&options, &error);
  if (!fixture->source || !vms_test_vm_wait_ready (fixture->source, &error))
    {
      print_error ("cannot start the source: %s\n", error->message);
      return -1;
    }
  if (!vms_test_vm_qemu_io (fixture->source, "vd1", "write -P 0x42 4M 16M",
                            &error))
    {
      print_error ("cannot fill vd1: %s\n", error->message);
      return -1;
    }
  if (disks > 2
      && (!vms_test_vm_qemu_io (fixture->source, "vd2", "write -P 0x5a 0 12M",
                                &error)
          || !vms_test_vm_qemu_io (fixture->source, "vd2",
                                   "write -P 0xa5 20M 4M", &error)))
    {
      print_error ("cannot fill vd2: %s\n", error->message);
      return -1;
    }
  fixture->sink = start_sink (fixture, tls, &error);
  if (!fixture->sink)
    {
      print_error ("cannot start the sink: %s\n", error->message);
      return -1;
    }
  fixture->state_dir = g_build_filename (fixture->sink->dir, "state", NULL);
  g_mkdir (fixture->state_dir, 0700);
  fixture->sink_uri = hosts ? vms_test_sink_tcp_uri (fixture->sink, "")
                            : vms_test_sink_uri (fixture->sink, "");
  return 0;
}

static int
setup (void **state)
{
  return setup_with (state, 2, SINK_CLEAR, FALSE);
}

static int
setup_hosts (void **state)
{
  return setup_with (state, 2, SINK_CLEAR, TRUE);
}

static int
setup_three (void **state)
{
  return setup_with (state, 3, SINK_CLEAR, FALSE);
}

/* The sink over TLS-PSK (a unix socket still): its keys serve memory. */
static int
setup_tls (void **state)
{
  return setup_with (state, 2, SINK_PSK, FALSE);
}

/* The same with X.509 certificates made for the test. */
static int
setup_x509 (void **state)
{
  g_autofree char *program = g_find_program_in_path ("openssl");

  /* Without it the test skips itself: the others need no openssl. */
  return setup_with (state, 2, program ? SINK_X509 : SINK_CLEAR, FALSE);
}

/* X.509 on TCP: the source QEMU and vmshift in host A, the sink in host
 * B, its certificate naming B's address. */
static int
setup_hosts_x509 (void **state)
{
  g_autofree char *program = g_find_program_in_path ("openssl");

  return setup_with (state, 2, program ? SINK_X509 : SINK_CLEAR, TRUE);
}

static int
teardown (void **state)
{
  Fixture *fixture = *state;

  vms_test_vm_free (fixture->dest);
  vms_test_vm_free (fixture->source);
  vms_test_sink_free (fixture->sink);
  vms_test_hosts_free (fixture->hosts);
  g_free (fixture->state_dir);
  g_free (fixture->sink_uri);
  g_free (fixture->memory_uri);
  if (fixture->certificates)
    vms_test_rmtree (fixture->certificates);
  g_free (fixture->certificates);
  g_free (fixture);
  return 0;
}

/* The guest writes vd0 in 4 KiB blocks: its bitmaps are 4 KiB, chosen
 * at the start, recorded in the job and in the report's disk lines;
 * vd1's too, whatever it was chosen from. */
static void
assert_granularity_reported (Fixture *fixture, VmsTestCommand *run,
                             const char *job)
{
  g_autoptr (JsonObject) chosen
      = vms_test_command_last_event (run, "granularity", "vd0");
  g_autoptr (JsonObject) synced
      = vms_test_command_last_event (run, "disk-synced", "vd0");
  g_autoptr (JsonObject) vd1_chosen
      = vms_test_command_last_event (run, "granularity", "vd1");

  if (!chosen)
    fail_msg ("no granularity event for vd0: %s", run->out->str);
  assert_int_equal (json_object_get_int_member (chosen, "granularity"), 4096);
  assert_true (
      g_str_has_prefix (json_object_get_string_member (chosen, "message"),
                        "vd0: bitmap granularity 4 KiB (chosen: "));
  assert_non_null (synced);
  assert_int_equal (json_object_get_int_member (synced, "granularity"), 4096);
  assert_non_null (strstr (json_object_get_string_member (synced, "message"),
                           "bitmap granularity 4 KiB"));
  assert_int_equal (job_disk_int (fixture, job, "vd0", "granularity"), 4096);
  {
    gint64 vd1 = job_disk_int (fixture, job, "vd1", "granularity");

    assert_true (vd1 >= 4096 && vd1 <= 65536 && (vd1 & (vd1 - 1)) == 0);
    assert_non_null (vd1_chosen);
  }
}

/* ---- tests ---- */

/* One mode end to end: the destination holds the VM paused (--suspend),
 * its disks equal the source's at the pause, and once continued the
 * guest's heartbeat goes on there. */
static void
migrate_and_check (Fixture *fixture, const char *job, const char *mode)
{
  g_autoptr (VmsTestCommand) run = NULL;
  g_autofree char *mode_arg = g_strdup_printf ("--final-sync=%s", mode);
  guint64 beat;

  create_replicas (fixture);
  start_destination (fixture, TRUE);
  run = migrate_new (fixture, job, mode_arg, "--suspend", NULL);
  vms_test_command_expect_success (run);
  assert_non_null (strstr (run->out->str, "\"state\":\"done\""));

  /* The source stopped at the switchover and stays so. */
  {
    g_autofree char *state = run_state (fixture->source);

    assert_string_equal (state, "postmigrate");
  }
  assert_replicas_identical (fixture);
  assert_true (vms_test_command_event_int (run, "migrated", NULL, "ram-bytes")
               > 0);
  assert_true (vms_test_command_event_int (run, "migrated", NULL,
                                           "disk-background-bytes")
               >= VD1_DATA);
  if (g_str_equal (mode, "pause"))
    assert_true (
        vms_test_command_event_int (run, "migrated", NULL, "disk-final-bytes")
        > 0);
  /* The mirror's switchover went by the connections prepared for it. */
  if (strstr (run->out->str, "on a new connection"))
    fail_msg ("the switchover did not use the handover: %s", run->out->str);
  /* ... so QEMU's stop had no FLUSH of the mirror's target to send. */
  if (g_str_equal (mode, "mirror")
      && (!strstr (run->out->str, "@live-noflush")
          || strstr (run->out->str, "a sink before @live-noflush")))
    fail_msg ("the mirror did not use @live-noflush: %s", run->out->str);
  assert_downtime_parts (run);
  assert_granularity_reported (fixture, run, job);
  {
    g_autofree char *phase = job_phase (fixture, job);

    assert_string_equal (phase, "migrated");
  }

  beat = vms_test_vm_last_heartbeat (fixture->source);
  cont (fixture->dest);
  assert_heartbeat_continues (fixture->dest, beat, "the destination");
}

static void
test_migrate_pause (void **state)
{
  Fixture *fixture = *state;

  fixture->prefix = "p";
  migrate_and_check (fixture, "pause", "pause");
}

static void
test_migrate_mirror (void **state)
{
  Fixture *fixture = *state;

  fixture->prefix = "m";
  /* A job id as long as allowed: the mirror's QEMU node names must still
   * fit QEMU's 31 characters. */
  migrate_and_check (fixture,
                     "mirror-0123456789-0123456789-0123456789-0123456789-0123",
                     "mirror");
}

/* ---- seeding ---- */

/* The running VM's disks seeded to a file, the seed imported by the sink
 * in host B (the file "shipped"), the guest writing meanwhile; then the
 * migration over a 100 Mbit/s link resumes the seeded job: no background
 * copy, vd1's data (which the guest does not write) is not sent again,
 * vd0 gets no more than the guest wrote since the seed (4 KiB bits, 4 KiB
 * writes), and the replicas end identical. */
static void
test_seed_then_migrate (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *source
      = g_strdup_printf ("qmp:%s", fixture->source->qmp2_path);
  g_autofree char *seed
      = g_build_filename (fixture->sink->dir, "vm.seed", NULL);
  g_autofree char *state_arg
      = g_strdup_printf ("--state-dir=%s", fixture->state_dir);
  g_autofree char *dir_arg
      = g_strdup_printf ("--dir=%s", fixture->sink->replica_dir);
  g_auto (VmsTestRun) exported = { 0 };
  g_auto (VmsTestRun) imported = { 0 };
  g_autoptr (VmsTestCommand) run = NULL;
  g_autoptr (GError) error = NULL;
  guint64 before, written;
  gint64 vd0_sent;

  if (!fixture->hosts)
    vms_test_skip ("needs root for two network-namespace hosts");
  fixture->prefix = "sd";
  before = vms_test_vm_bytes_written (fixture->source, "vd0");
  vms_test_run_capture (&exported, NULL, NULL, vmshift, "seed", "export",
                        source, "--to", seed, "--job", "seeded",
                        "--replica-prefix", "sd", state_arg, NULL);
  if (exported.status != 0)
    fail_msg ("seed export exited %d: %s", exported.status, exported.err);
  vms_test_run_capture (&imported, NULL, NULL,
                        vms_test_built_program ("VMS_SINK"), "seed", "import",
                        dir_arg, seed, NULL);
  if (imported.status != 0)
    fail_msg ("seed import exited %d: %s", imported.status, imported.err);
  /* What the guest writes while the seed travels. */
  g_usleep (2 * G_USEC_PER_SEC);

  vms_assert_ok (vms_test_hosts_limit_rate (fixture->hosts, 0, 100000, &error),
                 error);
  start_destination (fixture, TRUE);
  run = migrate_start (fixture, "--resume", "seeded", "--sink",
                       fixture->sink_uri, "--suspend", NULL);
  vms_test_command_expect_success (run);
  written = vms_test_vm_bytes_written (fixture->source, "vd0") - before;
  assert_replicas_identical (fixture);
  vd0_sent = job_disk_int (fixture, "seeded", "vd0", "bytes-written");
  print_message ("after the seed: vd0 sent %" G_GINT64_FORMAT
                 " bytes (the guest wrote %" G_GUINT64_FORMAT
                 "), vd1 %" G_GINT64_FORMAT "\n",
                 vd0_sent, written,
                 job_disk_int (fixture, "seeded", "vd1", "bytes-written"));
  assert_int_equal (job_disk_int (fixture, "seeded", "vd0", "bytes-background"),
                    0);
  assert_int_equal (job_disk_int (fixture, "seeded", "vd1", "bytes-background"),
                    0);
  assert_true (vd0_sent > 0);
  assert_true ((guint64)vd0_sent <= written);
  assert_true (job_disk_int (fixture, "seeded", "vd1", "bytes-written")
               < VD1_DATA / 16);
}

/* ---- memory over TLS ---- */

/* A TCP port on 127.0.0.1 that nothing listens on now. */
static guint16
free_loopback_port (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocket) socket
      = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                      G_SOCKET_PROTOCOL_TCP, &error);
  g_autoptr (GInetAddress) loopback
      = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
  g_autoptr (GSocketAddress) bound = NULL;

  vms_assert_ok (socket, error);
  vms_assert_ok (g_socket_bind (socket, any, FALSE, &error), error);
  bound = g_socket_get_local_address (socket, &error);
  vms_assert_ok (bound, error);
  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}

/* A string that QEMU answers to command (path, property). */
static char *
qmp_string (VmsTestVm *vm, const char *command, const char *path,
            const char *property)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) arguments = json_object_new ();
  g_autoptr (JsonNode) reply = NULL;

  json_object_set_string_member (arguments, "path", path);
  json_object_set_string_member (arguments, "property", property);
  reply = vms_qmp_execute (vm->qmp, command, arguments, &error);
  vms_assert_ok (reply, error);
  return json_node_dup_string (reply);
}

/* vm (the source) migrated with the migration parameter tls-creds naming
 * id, a tls-creds object of that type and endpoint: QEMU then speaks TLS
 * on the memory stream or not at all, so a destination that completed
 * the migration spoke it too. */
static void
assert_memory_tls (VmsTestVm *vm, const char *id, const char *endpoint,
                   const char *qom_type)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) reply
      = vms_qmp_execute (vm->qmp, "query-migrate-parameters", NULL, &error);
  g_autofree char *path = g_strdup_printf ("/objects/%s", id);
  g_autofree char *type = NULL, *end = NULL;

  vms_assert_ok (reply, error);
  assert_string_equal (json_object_get_string_member_with_default (
                           json_node_get_object (reply), "tls-creds", ""),
                       id);
  type = qmp_string (vm, "qom-get", path, "type");
  end = qmp_string (vm, "qom-get", path, "endpoint");
  assert_string_equal (type, qom_type);
  assert_string_equal (end, endpoint);
}

/* vm, which runs the VM on, has neither vmshift's credentials id nor a
 * tls-creds naming them. */
static void
assert_tls_forgotten (VmsTestVm *vm, const char *id)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) parameters = NULL;
  g_autoptr (JsonObject) arguments = json_object_new ();
  g_autoptr (JsonNode) objects = NULL;
  g_autofree char *listed = NULL;

  parameters
      = vms_qmp_execute (vm->qmp, "query-migrate-parameters", NULL, &error);
  vms_assert_ok (parameters, error);
  assert_string_equal (json_object_get_string_member_with_default (
                           json_node_get_object (parameters), "tls-creds", "?"),
                       "");
  json_object_set_string_member (arguments, "path", "/objects");
  objects = vms_qmp_execute (vm->qmp, "qom-list", arguments, &error);
  vms_assert_ok (objects, error);
  listed = json_to_string (objects, FALSE);
  if (strstr (listed, id))
    fail_msg ("%s is still there: %s", id, listed);
}

/* A migration end to end (as migrate_and_check) with memory over TLS
 * with the sink's credentials, on TCP (on a unix socket with
 * unix_memory): QEMU's object of type creds (tls-creds-psk or
 * tls-creds-x509) serves it, and is gone after. */
static void
migrate_over_tls (Fixture *fixture, const char *job, const char *mode,
                  const char *creds, gboolean unix_memory)
{
  g_autofree char *id = g_strdup_printf ("vmshift-%s-mtls", job);

  fixture->memory_uri = unix_memory ? NULL
                                    : g_strdup_printf ("tcp:127.0.0.1:%u",
                                                       free_loopback_port ());
  fixture->memory_option = "--tls";
  migrate_and_check (fixture, job, mode);
  assert_memory_tls (fixture->source, id, "client", creds);
  assert_tls_forgotten (fixture->dest, id);
}

static void
test_migrate_pause_over_tls (void **state)
{
  Fixture *fixture = *state;

  fixture->prefix = "tp";
  migrate_over_tls (fixture, "tls-pause", "pause", "tls-creds-psk", FALSE);
}

/* The mirror reaches the sink over TLS too, with the same keys. */
static void
test_migrate_mirror_over_tls (void **state)
{
  Fixture *fixture = *state;

  fixture->prefix = "tm";
  migrate_over_tls (fixture, "tls-mirror", "mirror", "tls-creds-psk", FALSE);
}

/* X.509: the destination QEMU serves the sink's server certificate, the
 * source checks it against the CA and the address of --dest-uri, on TCP;
 * on a unix socket (unix_memory), against the name vmshift gives it. */
static void
test_migrate_pause_over_x509 (void **state)
{
  Fixture *fixture = *state;

  if (!fixture->certificates)
    {
      print_message ("openssl missing (Debian package openssl): skipped\n");
      skip ();
    }
  fixture->prefix = "xp";
  migrate_over_tls (fixture, "x509-pause", "pause", "tls-creds-x509", FALSE);
}

/* The mirror's NBD client checks the sink's certificate against a host
 * name; on a unix socket there is none in the address, so vmshift gives
 * QEMU localhost, which the certificate names. */
static void
test_migrate_mirror_over_x509 (void **state)
{
  Fixture *fixture = *state;

  if (!fixture->certificates)
    vms_test_skip ("openssl missing (Debian package openssl)");
  fixture->prefix = "xm";
  migrate_over_tls (fixture, "x509-mirror", "mirror", "tls-creds-x509", FALSE);
}

/* The same with the sink on TCP in another host: QEMU checks the
 * certificate against the sink's address.  Memory goes over a unix
 * socket, where the source checks the destination's certificate
 * against the name vmshift gives it, as for the mirror. */
static void
test_migrate_mirror_over_x509_tcp (void **state)
{
  Fixture *fixture = *state;

  if (!fixture->hosts || !fixture->certificates)
    vms_test_skip ("needs root for two network-namespace hosts, and openssl");
  fixture->prefix = "xt";
  migrate_over_tls (fixture, "x509-tcp", "mirror", "tls-creds-x509", TRUE);
}

/* Memory in clear text to an address off loopback is refused before
 * anything is touched; --insecure lets it go on to QEMU; a resumed job's
 * saved address is refused in the preflight.  192.0.2.1 (TEST-NET-1) is
 * no address of this host: the destination cannot listen there, so
 * nothing is sent anywhere. */
static void
test_clear_text_memory_off_loopback (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *job_file
      = g_build_filename (fixture->state_dir, "clear.json", NULL);

  fixture->prefix = "c";
  create_replicas (fixture);
  start_destination (fixture, TRUE);
  fixture->memory_uri = g_strdup ("tcp:192.0.2.1:4444");
  {
    g_autoptr (VmsTestCommand) run = migrate_new (fixture, "clear", NULL);
    g_autofree char *err = NULL;

    assert_int_equal (vms_test_command_wait (run), 2);
    err = vms_test_command_stderr (run);
    if (!strstr (err, "--dest-uri tcp:192.0.2.1:4444 is not on loopback")
        || !strstr (err, "--tls") || !strstr (err, "--insecure"))
      fail_msg ("no refusal naming --tls and --insecure: %s", err);
    assert_false (g_file_test (job_file, G_FILE_TEST_EXISTS));
  }
  fixture->memory_option = "--insecure";
  {
    g_autoptr (VmsTestCommand) run = migrate_new (fixture, "clear", NULL);
    int status = vms_test_command_wait (run);

    if (status == 0 || status == 2
        || !strstr (run->out->str, "migrate-incoming tcp:192.0.2.1:4444"))
      fail_msg ("--insecure did not reach QEMU (status %d): %s", status,
                run->out->str);
    assert_rolled_back (fixture, run, "clear");
  }
  start_destination (fixture, TRUE);
  {
    g_autofree char *dest_qmp
        = g_strdup_printf ("--dest-qmp=qmp:%s", fixture->dest->qmp2_path);
    g_autofree char *state_dir
        = g_strdup_printf ("--state-dir=%s", fixture->state_dir);
    g_auto (VmsTestRun) run = { 0 };

    vms_test_run_capture (&run, NULL, NULL, vmshift, "migrate", "--resume",
                          "clear", dest_qmp, state_dir, NULL);
    assert_int_equal (run.status, 2);
    if (!strstr (run.err, "is not on loopback") || !strstr (run.err, "--tls"))
      fail_msg ("the resumed job's address was not refused: %s", run.err);
  }
  /* A new address given to the resume is checked as well. */
  {
    g_autofree char *dest_qmp
        = g_strdup_printf ("--dest-qmp=qmp:%s", fixture->dest->qmp2_path);
    g_autofree char *state_dir
        = g_strdup_printf ("--state-dir=%s", fixture->state_dir);
    g_auto (VmsTestRun) run = { 0 };

    vms_test_run_capture (&run, NULL, NULL, vmshift, "migrate", "--resume",
                          "clear", dest_qmp, "--dest-uri=tcp:192.0.2.2:4444",
                          state_dir, NULL);
    assert_int_equal (run.status, 2);
    if (!strstr (run.err, "--dest-uri tcp:192.0.2.2:4444 is not on loopback")
        || !strstr (run.err, "--insecure"))
      fail_msg ("the resume's new address was not refused: %s", run.err);
  }
  assert_running (fixture->source, "the source");
}

/* TRUE if command showed the background copies of disks a and b under
 * way at the same moment: each had progress before the other's ended. */
static gboolean
copied_at_once (VmsTestCommand *command, const char *a, const char *b)
{
  g_auto (GStrv) lines = g_strsplit (command->out->str, "\n", -1);
  g_autoptr (JsonParser) parser = json_parser_new ();
  gboolean running[2] = { FALSE, FALSE };

  for (guint i = 0; lines[i]; i++)
    {
      JsonObject *event;
      const char *disk;
      int which;

      if (!*lines[i] || !json_parser_load_from_data (parser, lines[i], -1, NULL)
          || !json_parser_get_root (parser)
          || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
        continue;
      event = json_node_get_object (json_parser_get_root (parser));
      if (g_strcmp0 (
              json_object_get_string_member_with_default (event, "event", ""),
              "progress")
              != 0
          || g_strcmp0 (json_object_get_string_member_with_default (
                            event, "phase", ""),
                        "background")
                 != 0)
        continue;
      disk = json_object_get_string_member_with_default (event, "disk", "");
      which = g_str_equal (disk, a) ? 0 : g_str_equal (disk, b) ? 1 : -1;
      if (which < 0)
        continue;
      running[which] = json_object_get_int_member (event, "done")
                       < json_object_get_int_member (event, "total");
      if (running[0] && running[1])
        return TRUE;
    }
  return FALSE;
}

/* A VM with three disks, copied at once in each pass (the last one while
 * the source is paused, under the disks' shared cap): all three replicas
 * equal the disks at the switchover, and the guest runs on at the
 * destination. */
static void
test_migrate_three_disks (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) run = NULL;
  guint64 beat;

  fixture->prefix = "three";
  create_replicas (fixture);
  start_destination (fixture, TRUE);
  /* 16 MiB/s for the disks: vd1's 16 MiB and vd2's take seconds. */
  run = migrate_new (fixture, "three", "--final-sync=pause", "--suspend",
                     "--max-bandwidth=16M", NULL);
  vms_test_command_expect_success (run);
  assert_replicas_identical (fixture);
  if (!copied_at_once (run, "vd1", "vd2"))
    fail_msg ("vd1 and vd2 were not copied at once: %s", run->out->str);
  assert_true (
      vms_test_command_event_int (run, "migrated", NULL, "disk-final-bytes")
      > 0);
  {
    g_autofree char *phase = job_phase (fixture, "three");

    assert_string_equal (phase, "migrated");
  }
  beat = vms_test_vm_last_heartbeat (fixture->source);
  cont (fixture->dest);
  assert_heartbeat_continues (fixture->dest, beat, "the destination");
}

/* auto, with room in the objective for the final round of a guest
 * writing 1 MiB/s: pause, and the report says why.  (The room is wide:
 * the guest's rate is the bitmaps', whole 64 KiB granules for its 4 KiB
 * writes, and the memory's time is foreseen at the disk copy's rate, both
 * on the safe side, and a loaded machine copies slowly.) */
static void
test_auto_chooses_pause (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) run = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();

  fixture->prefix = "ap";
  create_replicas (fixture);
  start_destination (fixture, TRUE);
  run = migrate_new (fixture, "autopause", "--max-downtime=20000", "--suspend",
                     NULL);
  vms_test_command_expect_success (run);
  print_message ("auto: %s\n",
                 event_string (run, "migrated", "final-sync-reason", parser));
  if (!g_str_equal (event_string (run, "migrated", "final-sync", parser),
                    "pause")
      || !strstr (event_string (run, "migrated", "final-sync-reason", parser),
                  "within"))
    fail_msg ("auto chose %s: %s",
              event_string (run, "migrated", "final-sync", parser),
              event_string (run, "migrated", "final-sync-reason", parser));
  assert_int_equal (
      vms_test_command_event_int (run, "migrated", NULL, "max-downtime-ms"),
      20000);
  /* The rounds ended by time: the first fits the objective's share for
   * disks at the measured rate. */
  assert_string_equal (event_string (run, "converged", "why", parser), "fits");
  assert_int_equal (
      vms_test_command_event_int (run, "converged", NULL, "budget-ms"), 19955);
  assert_replicas_identical (fixture);
  assert_downtime_parts (run);
}

/* auto with an objective no final round can fit: mirror; the objective
 * is missed all the same, and the report says so instead of hiding it. */
static void
test_auto_chooses_mirror_and_misses (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) run = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonObject *migrated;

  fixture->prefix = "am";
  create_replicas (fixture);
  start_destination (fixture, TRUE);
  run = migrate_new (fixture, "automirror", "--max-downtime=1", "--suspend",
                     NULL);
  vms_test_command_expect_success (run);
  assert_string_equal (event_string (run, "migrated", "final-sync", parser),
                       "mirror");
  assert_non_null (
      strstr (event_string (run, "migrated", "final-sync-reason", parser),
              "more than"));
  migrated = vms_test_command_find_event (run, "migrated", parser);
  assert_false (
      json_object_get_boolean_member (migrated, "downtime-objective-met"));
  assert_non_null (strstr (run->out->str, "objective of 1 ms was missed by"));
  assert_replicas_identical (fixture);
}

/* --on-downtime-miss=hold with an objective no pause can meet: the miss
 * is predicted when the memory starts, said held, and nothing switches
 * over; the source runs on. */
static void
test_hold_on_predicted_miss (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) run = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autofree char *err = NULL;

  fixture->prefix = "hm";
  create_replicas (fixture);
  start_destination (fixture, TRUE);
  run = migrate_new (fixture, "holdmiss", "--max-downtime=1",
                     "--on-downtime-miss=hold", NULL);
  assert_int_equal (vms_test_command_wait (run), 1);
  assert_string_equal (
      event_string (run, "downtime-miss-predicted", "action", parser), "hold");
  err = vms_test_command_stderr (run);
  if (!strstr (err, "--on-downtime-miss=hold does not switch over"))
    fail_msg ("the hold is not what failed: %s", err);
  assert_null (strstr (run->out->str, "\"state\":\"switchover\""));
  assert_rolled_back (fixture, run, "holdmiss");
}

/* The destination QEMU dies during memory pre-copy: rollback; with a new
 * destination, --resume migrates and the destination runs by itself. */
static void
test_destination_killed_in_memory (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) first = NULL;
  g_autoptr (VmsTestCommand) resumed = NULL;
  g_autofree char *vd0 = NULL;
  guint64 beat;
  gint64 vd1_before;

  fixture->prefix = "k";
  create_replicas (fixture);
  start_destination (fixture, FALSE);
  /* Slow enough that memory takes many seconds. */
  first = migrate_new (fixture, "killdest", "--bandwidth=8M", NULL);
  vms_test_command_wait_for (first, "\"event\":\"memory-round\"", 120000);
  vms_test_vm_kill (fixture->dest);
  assert_int_not_equal (vms_test_command_wait (first), 0);
  assert_rolled_back (fixture, first, "killdest");

  vd1_before = job_disk_int (fixture, "killdest", "vd1", "bytes-written");
  start_destination (fixture, FALSE);
  resumed = migrate_start (fixture, "--resume", "killdest", NULL);
  vms_test_command_expect_success (resumed);
  assert_resumed_cheaply (fixture, "killdest", vd1_before, resumed);
  assert_true (
      vms_test_command_event_int (resumed, "migrated", NULL, "downtime-ms")
      > 0);
  beat = vms_test_vm_last_heartbeat (fixture->source);
  assert_heartbeat_continues (fixture->dest, beat, "the destination");
  assert_running (fixture->dest, "the destination");

  /* Every block the guest wrote is whole on the replica. */
  vms_test_vm_kill (fixture->dest);
  vd0 = replica_path (fixture, "vd0");
  {
    const char *argv[] = { vms_test_built_program ("VMS_VERIFY_PATTERN"), vd0,
                           "--span-mib", "24", NULL };
    g_autoptr (GError) error = NULL;

    vms_assert_ok (vms_test_run (argv, NULL, &error), error);
  }
}

/* The sink dies during the last round, with the source paused at
 * pre-switchover: rollback resumes the source; --resume finishes. */
static void
test_sink_killed_in_final_round (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) first = NULL;
  g_autoptr (GError) error = NULL;

  fixture->prefix = "s";
  create_replicas (fixture);
  start_destination (fixture, TRUE);
  /* No rounds before memory, and a slow disk copy: the last round holds
   * seconds of the guest's writes. */
  first = migrate_new (fixture, "killsink", "--rounds=0", "--max-bandwidth=2M",
                       "--checkpoint-bytes=1M", NULL);
  vms_test_command_wait_for (first, "\"state\":\"switchover\"", 120000);
  vms_test_sink_kill (fixture->sink);
  assert_int_not_equal (vms_test_command_wait (first), 0);
  assert_rolled_back (fixture, first, "killsink");

  vms_assert_ok (vms_test_sink_restart (fixture->sink, &error), error);
  resume_to_paused_destination (fixture, "killsink");
}

/* A mirror migration that had to ride out a fault: done in the same run,
 * never rolled back, the replicas equal the source at the pause. */
static void
assert_mirror_rode_out (Fixture *fixture, VmsTestCommand *run)
{
  vms_test_command_expect_success (run);
  if (strstr (run->out->str, "\"event\":\"rolled-back\""))
    fail_msg ("the migration rolled back: %s", run->out->str);
  assert_non_null (strstr (run->out->str, "\"state\":\"done\""));
  assert_replicas_identical (fixture);
}

/* The sink is killed (kill -9) while the mirror runs and the catch-up
 * round copies beside it, the guest writing, and is back a second later:
 * QEMU's NBD client connects again within its reconnect-delay, the copy
 * goes on, and the ranges the mirror wrote before the kill still win over
 * the catch-up's writes (the sink keeps them on disk). */
static void
test_sink_restarted_during_mirror (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) run = NULL;
  g_autoptr (GError) error = NULL;

  fixture->prefix = "q";
  create_replicas (fixture);
  start_destination (fixture, TRUE);
  /* No rounds before the mirror, and a slow disk copy: the catch-up round
   * holds seconds of the guest's writes. */
  run = migrate_new (fixture, "sinkback", "--final-sync=mirror", "--rounds=0",
                     "--max-bandwidth=2M", "--checkpoint-bytes=1M", "--suspend",
                     NULL);
  vms_test_command_wait_for (run, "\"state\":\"mirror\"", 120000);
  g_usleep (G_USEC_PER_SEC);
  vms_test_sink_kill (fixture->sink);
  g_usleep (G_USEC_PER_SEC);
  vms_assert_ok (vms_test_sink_restart (fixture->sink, &error), error);
  assert_mirror_rode_out (fixture, run);
}

/* A fault between the source and the sink: on, it becomes unreachable;
 * off, reachable again. */
typedef void (*MirrorFault) (Fixture *fixture, gboolean on);

/* How long the fault lasts: longer than the mirror's reconnect-delay
 * (10 s at most). */
#define MIRROR_FAULT_S 14

/* During the memory migration the fault makes the mirror fail while the
 * source runs on; once the sink is reachable again vmshift starts the
 * mirror again and sends what it missed from the recording bitmap, in
 * the same run. */
static void
mirror_rides_out (Fixture *fixture, const char *job, MirrorFault fault)
{
  g_autoptr (VmsTestCommand) run = NULL;

  create_replicas (fixture);
  start_destination (fixture, TRUE);
  /* RAM crosses slowly, and converges once the sink is back: the
   * fault falls inside the memory migration. */
  run = migrate_new (fixture, job, "--final-sync=mirror", "--bandwidth=8M",
                     "--max-downtime=8000", "--suspend", NULL);
  vms_test_command_wait_for (run, "\"event\":\"memory-round\"", 120000);
  fault (fixture, TRUE);
  g_usleep (MIRROR_FAULT_S * G_USEC_PER_SEC);
  fault (fixture, FALSE);
  assert_mirror_rode_out (fixture, run);
  if (!strstr (run->out->str, "\"event\":\"mirror-restart\""))
    fail_msg ("the mirror never failed: nothing was tested: %s", run->out->str);
}

/* The sink is killed (kill -9), then started again. */
static void
sink_outage (Fixture *fixture, gboolean on)
{
  g_autoptr (GError) error = NULL;

  if (on)
    vms_test_sink_kill (fixture->sink);
  else
    vms_assert_ok (vms_test_sink_restart (fixture->sink, &error), error);
}

/* The sink's host answers TCP to the sink's port with resets (nft reject
 * with tcp reset, ss -K), then no longer. */
static void
sink_tcp_resets (Fixture *fixture, gboolean on)
{
  g_autoptr (GError) error = NULL;

  vms_assert_ok (vms_test_hosts_reset_tcp (fixture->hosts, 1,
                                           VMS_TEST_SINK_PORT, on, &error),
                 error);
}

/* The sink is killed and stays away past the reconnect-delay. */
static void
test_mirror_restarted_after_outage (void **state)
{
  Fixture *fixture = *state;

  fixture->prefix = "o";
  mirror_rides_out (fixture, "outage", sink_outage);
}

/* The sink's host answers the mirror's and the replicator's TCP with
 * resets for as long. */
static void
test_mirror_rides_out_tcp_resets (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *nbdinfo = g_find_program_in_path ("nbdinfo");

  if (!fixture->hosts || !nbdinfo)
    vms_test_skip ("needs root for two network-namespace hosts, and "
                   "nbdinfo (libnbd-bin)");
  fixture->prefix = "t";
  mirror_rides_out (fixture, "resets", sink_tcp_resets);
}

/* Set the source QEMU's max-bandwidth for memory (bytes/s). */
static void
set_memory_bandwidth (Fixture *fixture, gint64 bandwidth)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) arguments = json_object_new ();
  g_autoptr (JsonNode) reply = NULL;

  json_object_set_int_member (arguments, "max-bandwidth", bandwidth);
  reply = vms_qmp_execute (fixture->source->qmp, "migrate-set-parameters",
                           arguments, &error);
  vms_assert_ok (reply, error);
}

/* Wait (at most timeout_s) until the source QEMU is not running: QEMU
 * paused it at pre-switchover.  Returns when, monotonic us. */
static gint64
wait_source_paused (Fixture *fixture, guint timeout_s)
{
  gint64 deadline = g_get_monotonic_time () + timeout_s * G_USEC_PER_SEC;

  while (g_get_monotonic_time () < deadline)
    {
      g_autofree char *state = run_state (fixture->source);

      if (!g_str_equal (state, "running"))
        return g_get_monotonic_time ();
      g_usleep (G_USEC_PER_SEC / 20);
    }
  fail_msg ("the source was not paused within %u s", timeout_s);
  return -1;
}

/* The sink is gone for good during the memory migration: the mirror
 * fails and vmshift tries to start it again for up to --retry-timeout
 * (120 s here), the source running on.  Once QEMU pauses the source at
 * pre-switchover, that pause is downtime: the restarts get 5 s of it
 * (VMS_REPLICATE_FINAL_RETRY_TIMEOUT_S), then the migration rolls back,
 * the source runs and nothing is lost (a resume makes the replicas
 * equal). */
static void
test_mirror_restart_capped_while_paused (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) run = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *err = NULL;
  gint64 paused_at, pause_s;

  fixture->prefix = "z";
  create_replicas (fixture);
  start_destination (fixture, TRUE);
  /* RAM at 4 MB/s does not converge while the guest dirties it (as in
   * test_memory_timeout): the source is not paused before the mirror
   * failed; disks at full speed. */
  run = migrate_new (fixture, "capped", "--final-sync=mirror", "--bandwidth=4M",
                     "--max-bandwidth=1G", "--retry-timeout=120", NULL);
  vms_test_command_wait_for (run, "\"event\":\"memory-round\"", 120000);
  vms_test_sink_kill (fixture->sink);
  /* The mirror's reconnect-delay is 10 s at most. */
  vms_test_command_wait_for (run, "\"event\":\"mirror-restart\"", 60000);
  assert_running (fixture->source, "the source");
  /* vmshift is in its restart loop and does not tune RAM meanwhile: at
   * full speed it converges and QEMU pauses the source. */
  set_memory_bandwidth (fixture, G_GINT64_CONSTANT (1) << 30);
  paused_at = wait_source_paused (fixture, 60);
  assert_int_not_equal (vms_test_command_wait (run), 0);
  pause_s = (g_get_monotonic_time () - paused_at) / G_USEC_PER_SEC;
  err = vms_test_command_stderr (run);
  print_message ("source paused to rolled back: %" G_GINT64_FORMAT " s\n",
                 pause_s);
  /* 5 s of restarts, an attempt in progress, and the rollback. */
  if (pause_s > 15)
    fail_msg ("vmshift held the source paused for %" G_GINT64_FORMAT " s: %s",
              pause_s, err);
  if (!strstr (err, "could not be started again"))
    fail_msg ("not the mirror's restart that gave up: %s", err);
  assert_rolled_back (fixture, run, "capped");

  vms_assert_ok (vms_test_sink_restart (fixture->sink, &error), error);
  resume_to_paused_destination (fixture, "capped");
}

/* The port host B's destination QEMU takes the memory on. */
#define MEMORY_PORT 4590

/* Host B resets every connection to the memory port (nft reject with
 * tcp reset, and ss -K on those established) for seconds. */
static void
reset_memory_stream (Fixture *fixture, guint seconds)
{
  g_autoptr (GError) error = NULL;

  vms_assert_ok (
      vms_test_hosts_reset_tcp (fixture->hosts, 1, MEMORY_PORT, TRUE, &error),
      error);
  g_usleep (seconds * G_USEC_PER_SEC);
  vms_assert_ok (
      vms_test_hosts_reset_tcp (fixture->hosts, 1, MEMORY_PORT, FALSE, &error),
      error);
}

/* Host B resets the memory stream (nft reject with tcp reset, ss -K) for
 * 3 s once the source's migration transfers RAM (its first round
 * reported): QEMU 7.2's destination exits on a failed incoming
 * migration, so vmshift, which cannot start it again, rolls back: the
 * source runs on, the message says why and what to do, and the replicas
 * stay.  A new destination and --resume then finish without the
 * background copy again. */
static void
test_memory_reset_rolls_back (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) first = NULL;
  g_autofree char *err = NULL;

  if (!fixture->hosts)
    vms_test_skip ("needs root for two network-namespace hosts");
  fixture->prefix = "mr";
  fixture->dest_in_b = TRUE;
  fixture->memory_uri
      = g_strdup_printf ("tcp:%s:%u", fixture->hosts->address[1], MEMORY_PORT);
  /* Clear text across the test's own namespaces. */
  fixture->memory_option = "--insecure";
  create_replicas (fixture);
  start_destination (fixture, TRUE);
  first = migrate_new (fixture, "memreset", "--final-sync=pause",
                       "--bandwidth=8M", NULL);
  vms_test_command_wait_for (first, "\"event\":\"memory-round\"", 120000);
  reset_memory_stream (fixture, 3);
  assert_int_not_equal (vms_test_command_wait (first), 0);
  err = vms_test_command_stderr (first);
  print_message ("rolled back: %s\n", err);
  if (!strstr (err, "the destination QEMU exited: QEMU 7.2 ends a failed "
                    "incoming migration")
      || !strstr (err, "start the destination QEMU again")
      || !strstr (err, "'vmshift migrate --resume memreset'"))
    fail_msg ("the rollback does not say why and what to do: %s", err);
  assert_rolled_back (fixture, first, "memreset");
  resume_to_paused_destination (fixture, "memreset");
}

/* Wait (at most timeout_s) until the source's migration is status. */
static void
wait_source_migration (Fixture *fixture, const char *status, guint timeout_s)
{
  gint64 deadline = g_get_monotonic_time () + timeout_s * G_USEC_PER_SEC;
  g_autofree char *last = NULL;

  while (g_get_monotonic_time () < deadline)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (JsonNode) reply = vms_qmp_execute (
          fixture->source->qmp, "query-migrate", NULL, &error);
      JsonObject *object;

      vms_assert_ok (reply, error);
      object = json_node_get_object (reply);
      g_free (last);
      last = g_strdup (json_object_has_member (object, "status")
                           ? json_object_get_string_member (object, "status")
                           : "none");
      if (g_str_equal (last, status))
        return;
      g_usleep (G_USEC_PER_SEC / 20);
    }
  fail_msg ("the source's migration is '%s', not '%s', after %u s", last,
            status, timeout_s);
}

/* A --dest-restart command for the test: it asks for a new destination
 * (the file wanted appears) and returns once the test made one (the file
 * done appears), as a service manager's start would. */
static char *
restart_script (Fixture *fixture, char **wanted, char **done)
{
  g_autofree char *script
      = g_build_filename (fixture->state_dir, "dest-restart.sh", NULL);
  g_autofree char *text = NULL;
  g_autoptr (GError) error = NULL;

  *wanted = g_build_filename (fixture->state_dir, "restart-wanted", NULL);
  *done = g_build_filename (fixture->state_dir, "restart-done", NULL);
  text = g_strdup_printf ("#!/bin/sh\n"
                          ": > '%s'\n"
                          "for i in $(seq 600); do\n"
                          "  [ -e '%s' ] && exit 0\n"
                          "  sleep 0.1\n"
                          "done\n"
                          "exit 1\n",
                          *wanted, *done);
  vms_assert_ok (g_file_set_contents (script, text, -1, &error), error);
  return g_strdup_printf ("--dest-restart=/bin/sh %s", script);
}

/* As test_memory_reset_rolls_back, with --dest-restart: once QEMU 7.2's
 * destination exited on the reset stream, the command has it started
 * again (the same command line and monitor), and vmshift retries the
 * memory on it in the same run, the disks as they were: migrated,
 * replicas identical.  Without the restart the run rolls back (the test
 * above). */
static void
test_memory_reset_destination_restarted (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) first = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *wanted = NULL, *done = NULL, *restart = NULL;
  gint64 deadline;

  if (!fixture->hosts)
    vms_test_skip ("needs root for two network-namespace hosts");
  fixture->prefix = "md";
  fixture->dest_in_b = TRUE;
  fixture->memory_uri
      = g_strdup_printf ("tcp:%s:%u", fixture->hosts->address[1], MEMORY_PORT);
  fixture->memory_option = "--insecure";
  restart = restart_script (fixture, &wanted, &done);
  create_replicas (fixture);
  start_destination (fixture, TRUE);
  first = migrate_new (fixture, "memrestart", "--final-sync=pause",
                       "--bandwidth=8M", "--suspend", restart, NULL);
  vms_test_command_wait_for (first, "\"event\":\"memory-round\"", 120000);
  reset_memory_stream (fixture, 3);
  vms_test_command_wait_for (first, "\"event\":\"destination-restart\"", 60000);
  deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;
  while (!g_file_test (wanted, G_FILE_TEST_EXISTS))
    {
      if (g_get_monotonic_time () > deadline)
        fail_msg ("vmshift did not run its --dest-restart command");
      g_usleep (G_USEC_PER_SEC / 10);
    }
  vms_assert_ok (vms_test_vm_restart (fixture->dest, FALSE, &error), error);
  vms_assert_ok (g_file_set_contents (done, "", 0, &error), error);
  /* At 8 MB/s this guest's RAM never converges (the first attempt only
   * had to be under way for the reset): once the new attempt runs, its
   * parameters set by vmshift, the RAM gets the link. */
  wait_source_migration (fixture, "active", 60);
  set_memory_bandwidth (fixture, G_GINT64_CONSTANT (1) << 30);
  vms_test_command_expect_success (first);
  assert_true (
      vms_test_command_event_int (first, "migrated", NULL, "memory-attempts")
      >= 2);
  assert_replicas_identical (fixture);
}

/* Run vmshift abort JOB on the fixture's state directory. */
static void
run_abort (Fixture *fixture, const char *job, VmsTestRun *run)
{
  g_autofree char *state_arg
      = g_strdup_printf ("--state-dir=%s", fixture->state_dir);

  vms_test_run_capture (run, NULL, NULL, vmshift, "abort", job, state_arg,
                        NULL);
}

/* Run vmshift sync --resume JOB on the fixture's state directory; it
 * must be refused with a message holding expected. */
static void
assert_sync_refused (Fixture *fixture, const char *job, const char *expected)
{
  g_auto (VmsTestRun) run = { 0 };
  g_autofree char *state_arg
      = g_strdup_printf ("--state-dir=%s", fixture->state_dir);

  vms_test_run_capture (&run, NULL, NULL, vmshift, "sync", "--resume", job,
                        state_arg, NULL);
  if (run.status == 0 || !strstr (run.err, expected))
    fail_msg ("sync --resume %s exited %d without '%s': %s", job, run.status,
              expected, run.err);
}

/* Put pid in the job's file as the pid of its vmshift, as when the
 * kernel gives a dead vmshift's pid to another process. */
static void
set_job_pid (Fixture *fixture, const char *job, GPid pid)
{
  g_autofree char *file = g_strconcat (job, ".json", NULL);
  g_autofree char *path = g_build_filename (fixture->state_dir, file, NULL);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (GError) error = NULL;
  JsonObject *root;

  vms_assert_ok (json_parser_load_from_file (parser, path, &error), error);
  root = json_node_get_object (json_parser_get_root (parser));
  json_object_set_int_member (json_object_get_object_member (root, "migration"),
                              "pid", pid);
  json_generator_set_root (generator, json_parser_get_root (parser));
  vms_assert_ok (json_generator_to_file (generator, path, &error), error);
}

/* A process whose command line reads like a vmshift migrate. */
static GPid
start_impostor (void)
{
  const char *argv[]
      = { "sh", "-c", "sleep 120; :", "vmshift", "migrate", NULL };
  g_autoptr (GError) error = NULL;
  GPid pid = 0;

  vms_assert_ok (g_spawn_async (NULL, (char **)argv, NULL,
                                G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD,
                                NULL, NULL, &pid, &error),
                 error);
  return pid;
}

/* vmshift abort mid-way, in mirror mode: the migration rolls back, the
 * mirror's live ranges are forgotten at the sink (or the rounds of the
 * resumed run would be dropped there), and --resume finishes. */
static void
test_abort_then_resume (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) first = NULL;

  fixture->prefix = "a";
  create_replicas (fixture);
  start_destination (fixture, TRUE);
  first = migrate_new (fixture, "aborted", "--bandwidth=8M",
                       "--final-sync=mirror", NULL);
  vms_test_command_wait_for (first, "\"event\":\"memory-round\"", 120000);
  {
    g_auto (VmsTestRun) abort_run = { 0 };

    run_abort (fixture, "aborted", &abort_run);
    if (abort_run.status != 0)
      fail_msg ("vmshift abort exited %d: %s", abort_run.status, abort_run.err);
    assert_non_null (strstr (abort_run.out, "rolled-back"));
  }
  assert_int_equal (vms_test_command_wait (first), 4);
  assert_rolled_back (fixture, first, "aborted");

  /* Nothing left to abort. */
  {
    g_auto (VmsTestRun) again = { 0 };

    run_abort (fixture, "aborted", &again);
    assert_int_equal (again.status, 1);
    assert_non_null (strstr (again.err, "not being migrated"));
  }

  resume_to_paused_destination (fixture, "aborted");
}

/* kill -9 of vmshift during memory: QEMU goes on migrating without it;
 * vmshift abort rolls back from the state file (a process that took the
 * dead vmshift's pid left alone), and --resume finishes.  Meanwhile the
 * job is refused to a sync: locked while the migration runs, then by its
 * phase. */
static void
test_kill9_of_vmshift_then_abort (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) first = NULL;
  g_auto (VmsTestRun) abort_run = { 0 };
  GPid impostor;

  fixture->prefix = "x";
  create_replicas (fixture);
  start_destination (fixture, TRUE);
  first = migrate_new (fixture, "orphan", "--bandwidth=8M",
                       "--max-bandwidth=1G", NULL);
  vms_test_command_wait_for (first, "\"event\":\"memory-round\"", 120000);
  /* The job is the migration's alone while it runs. */
  {
    g_autofree char *holder
        = g_strdup_printf ("in use by another vmshift (pid %d)", first->pid);

    assert_sync_refused (fixture, "orphan", holder);
  }
  kill (first->pid, SIGKILL);
  vms_test_command_wait (first);
  /* No one runs it now, but its bitmaps and exports are a migration's. */
  assert_sync_refused (fixture, "orphan", "is in a migration");

  /* The dead vmshift's pid now names another process that looks like a
   * vmshift migrate: abort must not take it for the job's, nor kill it. */
  impostor = start_impostor ();
  set_job_pid (fixture, "orphan", impostor);
  run_abort (fixture, "orphan", &abort_run);
  {
    gboolean impostor_lives
        = kill (impostor, 0) == 0 && waitpid (impostor, NULL, WNOHANG) == 0;

    kill (impostor, SIGKILL);
    waitpid (impostor, NULL, 0);
    if (!impostor_lives)
      fail_msg ("vmshift abort killed pid %d, not the job's: %s", impostor,
                abort_run.err);
  }
  if (abort_run.status != 0)
    fail_msg ("vmshift abort exited %d: %s", abort_run.status, abort_run.err);
  assert_non_null (strstr (abort_run.err, "is gone; rolling back"));
  {
    g_autofree char *phase = job_phase (fixture, "orphan");
    g_autoptr (GError) error = NULL;
    g_autoptr (JsonNode) migration
        = vms_qmp_execute (fixture->source->qmp, "query-migrate", NULL, &error);

    assert_string_equal (phase, "rolled-back");
    vms_assert_ok (migration, error);
    assert_string_equal (json_object_get_string_member (
                             json_node_get_object (migration), "status"),
                         "cancelled");
  }
  assert_running (fixture->source, "the source");
  resume_to_paused_destination (fixture, "orphan");
  assert_sync_refused (fixture, "orphan", "is migrated");
}

/* The sink again, opening each connection late (nbdkit's delay filter):
 * a vmshift marking the replicas complete waits there. */
static void
slow_sink_opens (Fixture *fixture, const char *delay)
{
  g_autoptr (GError) error = NULL;
  const char *filters[] = { "delay", NULL };
  g_autofree char *delay_open = g_strconcat ("delay-open=", delay, NULL);
  const char *args[] = { delay_open, NULL };

  g_strfreev (fixture->sink->filters);
  fixture->sink->filters = g_strdupv ((char **)filters);
  g_strfreev (fixture->sink->plugin_args);
  fixture->sink->plugin_args = g_strdupv ((char **)args);
  vms_assert_ok (vms_test_sink_restart (fixture->sink, &error), error);
}

/* kill -9 of vmshift in commit, the destination running the VM: going
 * back would lose what the guest wrote there, so vmshift abort finishes
 * the commit, as the job's vmshift does on SIGTERM, and exits 0.  The
 * sink opens connections 1.5 s late: vmshift is still in commit when
 * killed. */
static void
test_kill9_in_commit_then_abort_finishes (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) first = NULL;
  g_auto (VmsTestRun) abort_run = { 0 };
  guint64 beat;

  fixture->prefix = "c";
  create_replicas (fixture);
  slow_sink_opens (fixture, "1500ms");
  start_destination (fixture, TRUE);
  first = migrate_new (fixture, "late", "--final-sync=pause", NULL);
  vms_test_command_wait_for (first, "\"state\":\"commit\"", 300000);
  kill (first->pid, SIGKILL);
  vms_test_command_wait (first);
  if (strstr (first->out->str, "\"state\":\"cleanup\""))
    fail_msg ("vmshift left commit before it was killed: %s", first->out->str);
  {
    g_autofree char *phase = job_phase (fixture, "late");

    assert_string_equal (phase, "migrating");
  }

  run_abort (fixture, "late", &abort_run);
  if (abort_run.status != 0)
    fail_msg ("vmshift abort exited %d: %s", abort_run.status, abort_run.err);
  assert_non_null (strstr (abort_run.err, "finishing its commit"));
  assert_non_null (strstr (abort_run.out, "job late: migrated"));
  {
    g_autofree char *phase = job_phase (fixture, "late");
    g_autofree char *source_state = run_state (fixture->source);

    assert_string_equal (phase, "migrated");
    assert_string_equal (source_state, "postmigrate");
  }
  assert_running (fixture->dest, "the destination");
  beat = vms_test_vm_last_heartbeat (fixture->source);
  assert_heartbeat_continues (fixture->dest, beat, "the destination");
  assert_sync_refused (fixture, "late", "is migrated");
}

/* Memory that does not converge in --memory-timeout rolls back. */
static void
test_memory_timeout (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) run = NULL;

  fixture->prefix = "t";
  create_replicas (fixture);
  start_destination (fixture, TRUE);
  /* RAM at 4 MB/s while the guest dirties more; disks at full speed. */
  run = migrate_new (fixture, "slowram", "--bandwidth=4M", "--max-bandwidth=1G",
                     "--memory-timeout=4", NULL);
  assert_int_equal (vms_test_command_wait (run), 3);
  assert_non_null (strstr (run->out->str, "after 4 s"));
  assert_rolled_back (fixture, run, "slowram");
}

/* The job's "migration" member says memory goes over TLS. */
static gboolean
job_memory_tls (Fixture *fixture, const char *job)
{
  g_autofree char *file = g_strconcat (job, ".json", NULL);
  g_autofree char *path = g_build_filename (fixture->state_dir, file, NULL);
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonObject *root;

  if (!json_parser_load_from_file (parser, path, NULL))
    fail_msg ("no job state at %s", path);
  root = json_node_get_object (json_parser_get_root (parser));
  return json_object_get_boolean_member_with_default (
      json_object_get_object_member (root, "migration"), "tls", FALSE);
}

/* A job started with --tls keeps it: a resume given --insecure is
 * refused before anything is touched, and one without --tls (to
 * loopback, where clear text would be allowed) migrates over TLS. */
static void
resume_keeps_tls (Fixture *fixture, const char *job)
{
  g_autofree char *id = g_strdup_printf ("vmshift-%s-mtls", job);
  g_autoptr (VmsTestCommand) refused = NULL;
  g_autoptr (VmsTestCommand) resumed = NULL;
  g_autofree char *err = NULL;

  assert_true (job_memory_tls (fixture, job));
  fixture->memory_option = NULL;
  refused = migrate_start (fixture, "--resume", job, "--insecure", NULL);
  assert_int_equal (vms_test_command_wait (refused), 2);
  err = vms_test_command_stderr (refused);
  if (!strstr (err, "--insecure: job ")
      || !strstr (err, "sends memory over TLS"))
    fail_msg ("--insecure on a resumed TLS job was not refused: %s", err);
  assert_running (fixture->source, "the source");

  g_free (fixture->memory_uri);
  fixture->memory_uri
      = g_strdup_printf ("tcp:127.0.0.1:%u", free_loopback_port ());
  start_destination (fixture, TRUE);
  resumed = migrate_start (fixture, "--resume", job, "--suspend", NULL);
  vms_test_command_expect_success (resumed);
  assert_memory_tls (fixture->source, id, "client", "tls-creds-psk");
  assert_tls_forgotten (fixture->dest, id);
  assert_replicas_identical (fixture);
  assert_true (job_memory_tls (fixture, job));
}

/* ---- memory compressed ---- */

/* vm's migration capability name is on. */
static void
assert_capability_on (VmsTestVm *vm, const char *name)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) reply
      = vms_qmp_execute (vm->qmp, "query-migrate-capabilities", NULL, &error);
  JsonArray *list;

  vms_assert_ok (reply, error);
  list = json_node_get_array (reply);
  for (guint i = 0; i < json_array_get_length (list); i++)
    {
      JsonObject *capability = json_array_get_object_element (list, i);

      if (g_str_equal (json_object_get_string_member (capability, "capability"),
                       name))
        {
          if (!json_object_get_boolean_member (capability, "state"))
            fail_msg ("migration capability %s is off", name);
          return;
        }
    }
  fail_msg ("QEMU has no migration capability %s", name);
}

/* vm, a destination that took a whole VM, was set to take it over
 * multifd's 2 connections compressed with zstd: it refuses a multifd
 * packet compressed otherwise, so the RAM crossed zstd-compressed. */
static void
assert_took_zstd (VmsTestVm *vm)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) parameters
      = vms_qmp_execute (vm->qmp, "query-migrate-parameters", NULL, &error);

  vms_assert_ok (parameters, error);
  assert_string_equal (
      json_object_get_string_member (json_node_get_object (parameters),
                                     "multifd-compression"),
      "zstd");
  assert_int_equal (json_object_get_int_member (
                        json_node_get_object (parameters), "multifd-channels"),
                    2);
  assert_capability_on (vm, "multifd");
}

/* --compress zstd: the RAM crosses over multifd, compressed.  A
 * destination refuses a multifd packet compressed otherwise than its
 * multifd-compression says, so one that took the whole VM with zstd set
 * was sent zstd. */
static void
test_migrate_compressed (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) run = NULL;
  g_autoptr (VmsTestCommand) refused = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autofree char *err = NULL;
  double ratio;

  fixture->prefix = "cz";
  fixture->memory_uri
      = g_strdup_printf ("tcp:127.0.0.1:%u", free_loopback_port ());
  create_replicas (fixture);
  start_destination (fixture, TRUE);
  refused = migrate_new (fixture, "lz4", "--compress=lz4", NULL);
  assert_int_equal (vms_test_command_wait (refused), 2);
  err = vms_test_command_stderr (refused);
  assert_non_null (strstr (err, "--compress lz4: the methods are none and "
                                "zstd"));

  run = migrate_new (fixture, "zstd", "--compress=zstd", "--suspend", NULL);
  vms_test_command_expect_success (run);
  assert_string_equal (
      event_string (run, "migrated", "memory-compress", parser), "zstd");
  /* The RAM was sampled for its cap on the link: the guest's pages
   * compress. */
  ratio = json_object_get_double_member (
      vms_test_command_find_event (run, "memory-compress", parser),
      "sampled-ratio");
  if (!(ratio > 0 && ratio < 1))
    fail_msg ("sampled compression ratio %.3f", ratio);
  assert_took_zstd (fixture->dest);
  assert_replicas_identical (fixture);
}

/* A migration over TLS that rolls back leaves the source, which runs on,
 * without vmshift's credentials: a later migration by other hands would
 * otherwise use them unasked.  Its resume goes on over TLS. */
static void
test_tls_rollback_and_resume (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) run = NULL;

  fixture->prefix = "tr";
  fixture->memory_uri
      = g_strdup_printf ("tcp:127.0.0.1:%u", free_loopback_port ());
  fixture->memory_option = "--tls";
  create_replicas (fixture);
  start_destination (fixture, TRUE);
  run = migrate_new (fixture, "tlsback", "--bandwidth=4M", "--max-bandwidth=1G",
                     "--memory-timeout=4", NULL);
  assert_int_equal (vms_test_command_wait (run), 3);
  assert_rolled_back (fixture, run, "tlsback");
  assert_tls_forgotten (fixture->source, "vmshift-tlsback-mtls");
  resume_keeps_tls (fixture, "tlsback");
}

/* Refusals in the preflight leave the source running, untouched. */
static void
test_preflight_refusals (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (GError) error = NULL;
  /* The replica's name, in another directory: an old copy, say. */
  g_autofree char *elsewhere
      = g_build_filename (fixture->sink->dir, "elsewhere", NULL);
  g_autofree char *wrong = g_build_filename (elsewhere, "r-vd0", NULL);

  fixture->prefix = "r";
  create_replicas (fixture);

  /* A destination that is not waiting for a migration. */
  {
    VmsTestVmOptions options = { .no_guest = TRUE, .second_qmp = TRUE };
    g_autoptr (VmsTestCommand) run = NULL;

    fixture->dest = vms_test_vm_start (&options, &error);
    vms_assert_ok (fixture->dest, error);
    run = migrate_new (fixture, "refused1", NULL);
    assert_int_equal (vms_test_command_wait (run), 1);
    assert_non_null (strstr (run->out->str, "-incoming defer"));
  }
  /* A destination of another machine type. */
  {
    VmsTestVmOptions options = {
      .no_guest = TRUE, .second_qmp = TRUE, .incoming = TRUE, .machine = "pc"
    };
    g_autoptr (VmsTestCommand) run = NULL;

    vms_test_vm_free (fixture->dest);
    fixture->dest = vms_test_vm_start (&options, &error);
    vms_assert_ok (fixture->dest, error);
    run = migrate_new (fixture, "refused2", NULL);
    assert_int_equal (vms_test_command_wait (run), 1);
    assert_non_null (strstr (run->out->str, "machine types differ"));
  }
  /* A destination whose disk is not the replica, though named so. */
  {
    g_autofree char *vd1 = replica_path (fixture, "vd1");
    const char *create[]
        = { "qemu-img", "create", "-q", "-f", "raw", wrong, "48M", NULL };
    VmsTestVmOptions options = {
      .no_guest = TRUE,
      .second_qmp = TRUE,
      .incoming = TRUE,
      .disks = { { "raw", 0, wrong }, { "raw", 0, vd1 } },
    };
    g_autoptr (VmsTestCommand) run = NULL;

    assert_int_equal (g_mkdir (elsewhere, 0700), 0);
    vms_assert_ok (vms_test_run (create, NULL, &error), error);
    vms_test_vm_free (fixture->dest);
    fixture->dest = vms_test_vm_start (&options, &error);
    vms_assert_ok (fixture->dest, error);
    run = migrate_new (fixture, "refused3", NULL);
    assert_int_equal (vms_test_command_wait (run), 1);
    if (!strstr (run->out->str, "the sink keeps the replica r-vd0 at "))
      fail_msg ("a file named as the replica was taken for it: %s",
                run->out->str);
  }
  /* Bad options. */
  {
    g_auto (VmsTestRun) run = { 0 };

    vms_test_run_capture (&run, NULL, NULL, vmshift, "migrate", "qmp:/x",
                          "--sink", "nbd+unix:///?socket=/x", "--dest-qmp",
                          "qmp:/y", "--dest-uri", "unix:/z", "--final-sync",
                          "sometimes", NULL);
    assert_int_equal (run.status, 2);
    assert_non_null (strstr (run.err, "pause or mirror"));
  }
  assert_running (fixture->source, "the source");
}

/* ---- vmshift estimate ---- */

/* vmshift estimate of the source, its report in JSON or, json FALSE, for
 * people; extra is one more option or NULL. */
static VmsTestCommand *
estimate_start_with (Fixture *fixture, const char *id, const char *window,
                     const char *bitmap_to_plant, gboolean json,
                     const char *extra)
{
  g_autofree char *source
      = g_strdup_printf ("qmp:%s", fixture->source->qmp2_path);
  g_autofree char *id_arg = g_strdup_printf ("--id=%s", id);
  g_autofree char *window_arg = g_strdup_printf ("--window=%s", window);
  g_autofree char *state_arg
      = g_strdup_printf ("--state-dir=%s", fixture->state_dir);
  const char *argv[] = { vmshift,
                         "estimate",
                         source,
                         "--sink",
                         fixture->sink_uri,
                         id_arg,
                         window_arg,
                         "--interval=2",
                         "--probe-seconds=0.3",
                         state_arg,
                         json ? "--json" : extra,
                         json ? extra : NULL,
                         NULL };

  if (bitmap_to_plant)
    {
      g_autoptr (GError) error = NULL;

      vms_assert_ok (vms_bitmap_add_temporary (fixture->source->qmp, "d0",
                                               bitmap_to_plant, 0, &error),
                     error);
    }
  return vms_test_command_start (NULL, argv, fixture->state_dir);
}

static VmsTestCommand *
estimate_start (Fixture *fixture, const char *id, const char *window,
                const char *bitmap_to_plant)
{
  return estimate_start_with (fixture, id, window, bitmap_to_plant, TRUE, NULL);
}

/* No bitmap of the estimator is left on the source's disks. */
static void
assert_no_estimate_bitmaps (Fixture *fixture)
{
  for (guint i = 0; i < 2; i++)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char *node = g_strdup_printf ("d%u", i);
      g_autoptr (GPtrArray) bitmaps
          = vms_bitmap_list (fixture->source->qmp, node, &error);

      vms_assert_ok (bitmaps, error);
      for (guint j = 0; j < bitmaps->len; j++)
        if (g_str_has_prefix (((VmsBitmapInfo *)bitmaps->pdata[j])->name,
                              "vmshift-estimate-"))
          fail_msg ("bitmap %s left on %s",
                    ((VmsBitmapInfo *)bitmaps->pdata[j])->name, node);
    }
}

/* Estimate a writing guest, then migrate it with the estimate: the
 * report shows predicted and actual side by side. */
static void
test_estimate_then_migrate (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) estimate = NULL;
  g_autoptr (VmsTestCommand) run = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonObject *event, *vm, *prediction, *link;
  JsonArray *disks;

  fixture->prefix = "e";
  /* A bitmap a killed estimate left: the next one removes it. */
  estimate = estimate_start (fixture, "e1", "6", "vmshift-estimate-old-0");
  vms_test_command_expect_success (estimate);
  assert_no_estimate_bitmaps (fixture);

  event = vms_test_command_find_event (estimate, "estimate", parser);
  assert_non_null (event);
  event = json_object_get_object_member (event, "estimate");
  link = json_object_get_object_member (event, "link");
  assert_true (json_object_get_double_member (link, "throughput") > 0);
  assert_true (json_object_get_double_member (link, "rtt-seconds") > 0);
  assert_int_equal (
      json_array_get_length (json_object_get_array_member (link, "probes")), 8);
  vm = json_array_get_object_element (
      json_object_get_array_member (event, "vms"), 0);
  assert_true (json_object_get_int_member (vm, "ram-size")
               == 256 * MiB + VMS_TEST_VM_RAM_EXTRA);
  assert_true (json_object_get_double_member (vm, "ram-nonzero-share") > 0);
  assert_true (json_object_get_double_member (vm, "ram-nonzero-share") < 1);
  /* The dirtier rewrites pages: measured over 1 s and over 4 s in turn,
   * QEMU sampling 4096 pages of its RAM. */
  assert_true (json_object_get_double_member (vm, "ram-dirty-rate") > 0);
  assert_float_equal (json_object_get_double_member_with_default (
                          vm, "ram-dirty-long-seconds", 0),
                      4, 0);
  assert_true (
      json_object_get_double_member_with_default (vm, "ram-dirty-long-rate", 0)
      > 0);
  disks = json_object_get_array_member (vm, "disks");
  assert_int_equal (json_array_get_length (disks), 2);
  {
    JsonObject *vd0 = json_array_get_object_element (disks, 0);
    JsonObject *vd1 = json_array_get_object_element (disks, 1);
    JsonArray *samples = json_object_get_array_member (vd0, "dirty-samples");
    guint n = json_array_get_length (samples);

    /* vd1 holds the 16 MiB the setup wrote (and the 4 KiB QEMU
     * allocates first in a raw image), and nothing writes it. */
    assert_true (json_object_get_int_member (vd1, "data") >= VD1_DATA);
    assert_true (json_object_get_int_member (vd1, "data")
                 <= VD1_DATA + 64 * 1024);
    assert_int_equal (
        json_array_get_int_element (
            json_array_get_array_element (
                json_object_get_array_member (vd1, "dirty-samples"), 0),
            1),
        0);
    /* The writer's disk gets dirtier over the window. */
    assert_true (n >= 3);
    assert_true (json_array_get_int_element (
                     json_array_get_array_element (samples, n - 1), 1)
                 > json_array_get_int_element (
                     json_array_get_array_element (samples, 0), 1));
  }
  prediction = json_object_get_object_member (vm, "prediction");
  assert_true (json_object_get_double_member (prediction, "total-pause-seconds")
               > 0);
  assert_true (json_object_get_double_member (prediction, "disk-write-rate")
               > 0);
  assert_string_equal (json_object_get_string_member (prediction, "method"),
                       "network");

  create_replicas (fixture);
  start_destination (fixture, TRUE);
  run = migrate_new (fixture, "estimated", "--estimate=e1", "--suspend", NULL);
  vms_test_command_expect_success (run);
  assert_true (vms_test_command_event_int (run, "migrated", NULL,
                                           "predicted-downtime-ms")
               >= 0);
  assert_non_null (strstr (run->out->str, "\"predicted-seconds\""));
  assert_non_null (strstr (run->out->str, "estimate e1: predicted"));
  /* Estimated and migrated with the bits chosen the same way. */
  assert_true (json_object_get_boolean_member (
      vms_test_command_find_event (run, "migrated", parser),
      "predicted-same-granularity"));
  assert_replicas_identical (fixture);
}

/* The estimate's first VM (borrowed from parser). */
static JsonObject *
estimate_vm (VmsTestCommand *estimate, JsonParser *parser)
{
  JsonObject *event
      = vms_test_command_find_event (estimate, "estimate", parser);

  if (!event)
    fail_msg ("no estimate event: %s", estimate->out->str);
  event = json_object_get_object_member (event, "estimate");
  return json_array_get_object_element (
      json_object_get_array_member (event, "vms"), 0);
}

/* Disk i of the estimate's first VM (borrowed from parser). */
static JsonObject *
estimate_disk (VmsTestCommand *estimate, guint i, JsonParser *parser)
{
  return json_array_get_object_element (
      json_object_get_array_member (estimate_vm (estimate, parser), "disks"),
      i);
}

/* The first VM of the estimate id as saved in the state directory
 * (borrowed from parser). */
static JsonObject *
saved_estimate_vm (Fixture *fixture, const char *id, JsonParser *parser)
{
  g_autofree char *file = g_strdup_printf ("estimate-%s.json", id);
  g_autofree char *path = g_build_filename (fixture->state_dir, file, NULL);
  g_autoptr (GError) error = NULL;

  vms_assert_ok (json_parser_load_from_file (parser, path, &error), error);
  return json_array_get_object_element (
      json_object_get_array_member (
          json_node_get_object (json_parser_get_root (parser)), "vms"),
      0);
}

/* What QEMU counted vd0 written (wr_bytes, apart from any bitmap) in the
 * first seconds of the window: between samples as the model reads its
 * dirty curve between them, so the two compare over the same time. */
static double
written_after (JsonArray *samples, double seconds)
{
  double t0 = 0, w0 = 0;

  for (guint k = 0; k < json_array_get_length (samples); k++)
    {
      JsonArray *sample = json_array_get_array_element (samples, k);
      double t1 = json_array_get_double_element (sample, 0);
      double w1 = json_array_get_int_element (sample, 2);

      if (seconds <= t1)
        return t1 > t0 ? w0 + (w1 - w0) * (seconds - t0) / (t1 - t0) : w1;
      t0 = t1;
      w0 = w1;
    }
  return w0 * seconds / t0;
}

/* The largest ratio of what the estimate of vm says vd0's bitmaps hold
 * to what the guest wrote over the same time: at the window's last
 * sample, and for each predicted round, whose bitmap records during the
 * background copy (round 1, vd0 being copied first) or the round
 * before, with the guest at its measured pace: the curve's first
 * pace * seconds.  Only vd0 is written, so a round's bytes are vd0's. */
static double
worst_dirty_to_written (JsonObject *vm)
{
  JsonObject *vd0 = json_array_get_object_element (
      json_object_get_array_member (vm, "disks"), 0);
  JsonObject *prediction = json_object_get_object_member (vm, "prediction");
  JsonArray *samples = json_object_get_array_member (vd0, "dirty-samples");
  JsonArray *last = json_array_get_array_element (
      samples, json_array_get_length (samples) - 1);
  JsonArray *rounds = json_object_get_array_member (prediction, "rounds");
  JsonArray *durations
      = json_object_get_array_member (prediction, "rounds-durations");
  double rate = json_object_get_double_member (vd0, "write-rate");
  double pace = json_object_get_double_member (vd0, "pace");
  double recording
      = json_object_get_double_member (prediction, "background-seconds");
  double worst;

  /* The writer writes 1 MiB/s; TCG may slow it, never speed it up. */
  if (rate < 64 * 1024 || rate > 1.2 * MiB)
    fail_msg ("vd0 written at %.0f bytes/s, not up to 1 MiB/s", rate);
  assert_int_equal (json_array_get_length (last), 3);
  pace = pace > 0 ? MIN (pace, 1.0) : 1.0;
  worst = (double)json_array_get_int_element (last, 1)
          / json_array_get_int_element (last, 2);
  print_message ("window: %" G_GINT64_FORMAT " bytes dirty after %.1f s, "
                 "the guest wrote %" G_GINT64_FORMAT "\n",
                 json_array_get_int_element (last, 1),
                 json_array_get_double_element (last, 0),
                 json_array_get_int_element (last, 2));
  assert_true (json_array_get_length (rounds) > 0);
  for (guint k = 0; k < json_array_get_length (rounds); k++)
    {
      double written = written_after (samples, pace * recording);
      double predicted = json_array_get_int_element (rounds, k);

      print_message ("round %u: predicted %.0f bytes, the guest wrote %.0f "
                     "in the window's first %.2f s\n",
                     k + 1, predicted, written, pace * recording);
      if (written <= 0)
        fail_msg ("round %u: %.0f bytes predicted, the guest wrote none", k + 1,
                  predicted);
      worst = MAX (worst, predicted / written);
      recording = json_array_get_double_element (durations, k);
    }
  return worst;
}

/* A guest writing 4 KiB blocks at random: estimate observes with the
 * 4 KiB bits a job would choose, so the predicted rounds hold about what
 * the guest wrote; with 64 KiB bits (--granularity 64K, what estimate
 * used before) they hold many times that.  A migration against the
 * latter says its rounds are not the predicted ones. */
static void
test_estimate_counts_the_job_granularity (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) fine = NULL;
  g_autoptr (VmsTestCommand) coarse = NULL;
  g_autoptr (VmsTestCommand) run = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (JsonObject) chosen = NULL;
  double fine_ratio, coarse_ratio;
  JsonObject *vm, *vd0;

  fixture->prefix = "g";
  fine = estimate_start (fixture, "g4", "6", NULL);
  vms_test_command_expect_success (fine);
  chosen = vms_test_command_last_event (fine, "granularity", "vd0");
  assert_non_null (chosen);
  vd0 = estimate_disk (fine, 0, parser);
  assert_int_equal (json_object_get_int_member (vd0, "granularity"), 4096);
  assert_non_null (json_object_get_string_member (vd0, "granularity-reason"));
  fine_ratio = worst_dirty_to_written (estimate_vm (fine, parser));

  /* For people this time: the report names the bits, and the saved
   * estimate records them. */
  coarse = estimate_start_with (fixture, "g64", "6", NULL, FALSE,
                                "--granularity=64K");
  vms_test_command_expect_success (coarse);
  if (!strstr (coarse->out->str, "dirtied in 6 s in bits of 64 KiB "
                                 "(--granularity;"))
    fail_msg ("no granularity in vd0's line: %s", coarse->out->str);
  vm = saved_estimate_vm (fixture, "g64", parser);
  vd0 = json_array_get_object_element (
      json_object_get_array_member (vm, "disks"), 0);
  assert_int_equal (json_object_get_int_member (vd0, "granularity"), 65536);
  coarse_ratio = worst_dirty_to_written (vm);
  print_message ("dirty / written: %.2f with 4 KiB bits, %.2f with 64 KiB\n",
                 fine_ratio, coarse_ratio);
  if (fine_ratio > 1.5)
    fail_msg ("4 KiB bits: %.2f times what the guest wrote", fine_ratio);
  if (coarse_ratio < 3)
    fail_msg ("64 KiB bits: only %.2f times what the guest wrote",
              coarse_ratio);
  assert_no_estimate_bitmaps (fixture);

  create_replicas (fixture);
  start_destination (fixture, TRUE);
  run = migrate_new (fixture, "gran", "--estimate=g64", "--suspend", NULL);
  vms_test_command_expect_success (run);
  assert_non_null (strstr (run->out->str, "vd0: estimate g64 observed bitmaps "
                                          "of 64 KiB, this job has 4 KiB"));
  assert_false (json_object_get_boolean_member (
      vms_test_command_find_event (run, "migrated", parser),
      "predicted-same-granularity"));
  assert_replicas_identical (fixture);
}

/* Over a slow link (estimate's --bandwidth 4M) the guest's RAM takes
 * seconds and its pages compress: the estimate recommends --compress
 * zstd, and 'migrate --estimate' takes the recommendation. */
static void
test_estimate_recommends_compression (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) estimate = NULL;
  g_autoptr (VmsTestCommand) run = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (JsonParser) run_parser = json_parser_new ();
  JsonObject *vm, *prediction;
  double ratio;

  fixture->prefix = "ez";
  estimate
      = estimate_start_with (fixture, "ez", "4", NULL, FALSE, "--bandwidth=4M");
  vms_test_command_expect_success (estimate);
  if (!strstr (estimate->out->str, "--compress zstd: its pages to ")
      || !strstr (estimate->out->str, "; recommended: "))
    fail_msg ("no compression recommended: %s", estimate->out->str);
  vm = saved_estimate_vm (fixture, "ez", parser);
  ratio = json_object_get_double_member (vm, "ram-zstd-ratio");
  if (!(ratio > 0 && ratio < 1))
    fail_msg ("ram-zstd-ratio %.3f", ratio);
  assert_true (json_object_get_double_member (vm, "ram-zstd-rate") > 0);
  prediction = json_object_get_object_member (vm, "prediction");
  assert_true (json_object_get_boolean_member (prediction, "compress-zstd"));
  assert_true (
      json_object_get_double_member (prediction, "compress-memory-seconds")
      > 0);

  fixture->memory_uri
      = g_strdup_printf ("tcp:127.0.0.1:%u", free_loopback_port ());
  create_replicas (fixture);
  start_destination (fixture, TRUE);
  run = migrate_new (fixture, "ez", "--estimate=ez", "--suspend", NULL);
  vms_test_command_expect_success (run);
  assert_non_null (
      vms_test_command_find_event (run, "memory-compress-chosen", run_parser));
  assert_took_zstd (fixture->dest);
  assert_replicas_identical (fixture);
}

/* Ctrl-C while observing: exit 4, and the bitmaps are gone. */
static void
test_estimate_interrupted (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) estimate = NULL;

  estimate = estimate_start (fixture, "e2", "60", NULL);
  vms_test_command_wait_for (estimate, "\"event\":\"sample\"", 60000);
  kill (estimate->pid, SIGINT);
  assert_int_equal (vms_test_command_wait (estimate), 4);
  assert_no_estimate_bitmaps (fixture);
  {
    g_auto (VmsTestRun) run = { 0 };

    vms_test_run_capture (&run, NULL, NULL, vmshift, "estimate", "qmp:/x",
                          "--sink", fixture->sink_uri, "--window", "2",
                          "--interval", "5", NULL);
    assert_int_equal (run.status, 2);
    assert_non_null (strstr (run.err, "--interval wants a number of seconds "
                                      "from 1 to 2, not '5'"));
  }
}

/* ---- relative paths ---- */

/* A working directory for vmshift in the sink's private directory, not
 * QEMU's (the test's).  Caller frees. */
static char *
make_cwd (Fixture *fixture, const char *name)
{
  char *dir = g_build_filename (fixture->sink->dir, name, NULL);

  assert_int_equal (g_mkdir_with_parents (dir, 0700), 0);
  return dir;
}

/* vmshift ARGS... --json, run in cwd. */
static VmsTestCommand *
start_in (Fixture *fixture, const char *cwd, const char *const *args)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();

  g_ptr_array_add (argv, (gpointer)vmshift);
  for (guint i = 0; args[i]; i++)
    g_ptr_array_add (argv, (gpointer)args[i]);
  g_ptr_array_add (argv, (gpointer) "--json");
  g_ptr_array_add (argv, NULL);
  return vms_test_command_start_in (NULL, cwd, (const char *const *)argv->pdata,
                                    fixture->state_dir);
}

/* A new user's command lines, each from a directory that is not QEMU's,
 * every path relative: an estimate (QEMU's NBD servers and memory samples
 * go to the state directory), a sync that makes the job, and a migration
 * that resumes it from another directory with the mirror (QEMU's NBD
 * client gets the sink's socket from the job, QEMU's migration the
 * --dest-uri socket). */
static void
test_relative_paths (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *here = make_cwd (fixture, "here");
  g_autofree char *there = make_cwd (fixture, "there/deeper");
  g_autofree char *qmp
      = vms_test_relative_path (here, fixture->source->qmp2_path);
  g_autofree char *socket
      = vms_test_relative_path (here, fixture->sink->socket_path);
  g_autofree char *source = g_strdup_printf ("qmp:%s", qmp);
  g_autofree char *sink_uri
      = g_strdup_printf ("nbd+unix:///?socket=%s", socket);
  g_autofree char *estimate_file
      = g_build_filename (fixture->sink->dir, "st", "estimate-rel.json", NULL);
  g_autofree char *dest_qmp = NULL, *dest_uri = NULL, *mig = NULL, *dqmp = NULL;
  g_autoptr (VmsTestCommand) estimate = NULL;
  g_autoptr (VmsTestCommand) sync = NULL;
  g_autoptr (VmsTestCommand) migrate = NULL;

  estimate = start_in (fixture, here,
                       (const char *const[]){
                           "estimate", source, "--sink", sink_uri, "--id=rel",
                           "--window=4", "--interval=2", "--probe-seconds=0.3",
                           "--state-dir=../st", NULL });
  vms_test_command_expect_success (estimate);
  assert_true (g_file_test (estimate_file, G_FILE_TEST_IS_REGULAR));
  assert_no_estimate_bitmaps (fixture);

  sync = start_in (fixture, here,
                   (const char *const[]){ "sync", source, "--sink", sink_uri,
                                          "--job", "rel", "--replica-prefix",
                                          "r", "--rounds", "0",
                                          "--state-dir=../st", NULL });
  vms_test_command_expect_success (sync);

  fixture->prefix = "r";
  start_destination (fixture, TRUE);
  dqmp = vms_test_relative_path (there, fixture->dest->qmp2_path);
  dest_qmp = g_strdup_printf ("--dest-qmp=qmp:%s", dqmp);
  {
    g_autofree char *path = g_strdup_printf (
        "%s/mig-%u.sock", fixture->dest->dir, fixture->attempts);

    mig = vms_test_relative_path (there, path);
  }
  dest_uri = g_strdup_printf ("--dest-uri=unix:%s", mig);
  migrate = start_in (fixture, there,
                      (const char *const[]){ "migrate", "--resume", "rel",
                                             dest_qmp, dest_uri,
                                             "--final-sync=mirror", "--suspend",
                                             "--state-dir=../../st", NULL });
  vms_test_command_expect_success (migrate);
  assert_replicas_identical (fixture);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_migrate_pause, setup, teardown),
    cmocka_unit_test_setup_teardown (test_seed_then_migrate, setup_hosts,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_migrate_mirror, setup, teardown),
    cmocka_unit_test_setup_teardown (test_auto_chooses_pause, setup, teardown),
    cmocka_unit_test_setup_teardown (test_auto_chooses_mirror_and_misses, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_hold_on_predicted_miss, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_destination_killed_in_memory, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_sink_killed_in_final_round, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_sink_restarted_during_mirror, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_mirror_restarted_after_outage, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_mirror_rides_out_tcp_resets,
                                     setup_hosts, teardown),
    cmocka_unit_test_setup_teardown (test_mirror_restart_capped_while_paused,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_memory_reset_destination_restarted,
                                     setup_hosts, teardown),
    cmocka_unit_test_setup_teardown (test_memory_reset_rolls_back, setup_hosts,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_abort_then_resume, setup, teardown),
    cmocka_unit_test_setup_teardown (test_kill9_of_vmshift_then_abort, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_kill9_in_commit_then_abort_finishes,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_memory_timeout, setup, teardown),
    cmocka_unit_test_setup_teardown (test_estimate_then_migrate, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_estimate_counts_the_job_granularity,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_estimate_interrupted, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_preflight_refusals, setup, teardown),
    cmocka_unit_test_setup_teardown (test_relative_paths, setup, teardown),
    cmocka_unit_test_setup_teardown (test_migrate_three_disks, setup_three,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_migrate_pause_over_tls, setup_tls,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_migrate_mirror_over_tls, setup_tls,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_migrate_pause_over_x509, setup_x509,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_migrate_mirror_over_x509, setup_x509,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_migrate_mirror_over_x509_tcp,
                                     setup_hosts_x509, teardown),
    cmocka_unit_test_setup_teardown (test_migrate_compressed, setup, teardown),
    cmocka_unit_test_setup_teardown (test_estimate_recommends_compression,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_tls_rollback_and_resume, setup_tls,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_clear_text_memory_off_loopback, setup,
                                     teardown),
  };

  vms_test_require_program ("qemu-system-x86_64", "qemu-system-x86");
  vms_test_require_program ("qemu-img", "qemu-utils");
  vms_test_require_program ("nbdkit", "nbdkit");
  vmshift = vms_test_built_program ("VMS_VMSHIFT");
  /* VMS_TEST_FILTER=test_abort* runs one test when debugging. */
  return vms_test_run_group ("migrate", tests, G_N_ELEMENTS (tests), NULL,
                             NULL);
}
