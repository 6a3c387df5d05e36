/* Integration tests: vmshift sync against a real QEMU whose guest writes
 * to its disks, into the real sink; replicas compared byte for byte.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-test.h"
#include "vms-test-netns.h"
#include "vms-test-command.h"
#include "vms-test-sink.h"
#include "vms-test-vm.h"
#include "vms-bitmap.h"
#include "vms-disk.h"
#include "vms-guest.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define MiB (1024 * 1024)

static const char *vmshift;

typedef struct
{
  VmsTestVm *vm;       /* source QEMU, guest writing to vd0 */
  VmsTestSink *sink;   /* destination */
  char *state_dir;     /* vmshift job state */
  char *sink_uri;      /* --sink */
  char *data_dir;      /* holds a prefilled source image, or NULL */
  VmsTestHosts *hosts; /* vmshift in host A, the sink in host B, or NULL */
} Fixture;

/* ---- running vmshift ---- */

typedef VmsTestCommand Run;

/* vmshift sync ARGS --state-dir STATE_DIR --json, in cwd (NULL: ours). */
static Run *
run_start_va (Fixture *fixture, const char *cwd, const char *state_dir,
              va_list args)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();

  g_ptr_array_add (argv, (gpointer)vmshift);
  g_ptr_array_add (argv, (gpointer) "sync");
  for (const char *arg; (arg = va_arg (args, const char *));)
    g_ptr_array_add (argv, (gpointer)arg);
  g_ptr_array_add (argv, (gpointer) "--state-dir");
  g_ptr_array_add (argv, (gpointer)state_dir);
  g_ptr_array_add (argv, (gpointer) "--json");
  g_ptr_array_add (argv, NULL);
  return vms_test_command_start_in (
      fixture->hosts ? fixture->hosts->namespace[0] : NULL, cwd,
      (const char *const *)argv->pdata, fixture->state_dir);
}

static Run *
run_start (Fixture *fixture, ...)
{
  va_list args;
  Run *run;

  va_start (args, fixture);
  run = run_start_va (fixture, NULL, fixture->state_dir, args);
  va_end (args);
  return run;
}

/* From another working directory, with another --state-dir. */
static Run *
run_start_in (Fixture *fixture, const char *cwd, const char *state_dir, ...)
{
  va_list args;
  Run *run;

  va_start (args, state_dir);
  run = run_start_va (fixture, cwd, state_dir, args);
  va_end (args);
  return run;
}

#define run_pump vms_test_command_pump
#define run_wait vms_test_command_wait
#define run_stderr vms_test_command_stderr
#define run_expect_success vms_test_command_expect_success
#define last_progress vms_test_command_last_progress
#define assert_identical vms_test_assert_identical

/* ---- state and comparison ---- */

static JsonObject *
job_disk (Fixture *fixture, const char *job, const char *disk,
          JsonParser *parser)
{
  g_autofree char *file = g_strconcat (job, ".json", NULL);
  g_autofree char *path = g_build_filename (fixture->state_dir, file, NULL);
  JsonArray *disks;

  if (!json_parser_load_from_file (parser, path, NULL))
    fail_msg ("no job state at %s", path);
  disks = json_object_get_array_member (
      json_node_get_object (json_parser_get_root (parser)), "disks");
  for (guint i = 0; i < json_array_get_length (disks); i++)
    {
      JsonObject *object = json_array_get_object_element (disks, i);

      if (g_str_equal (json_object_get_string_member (object, "name"), disk))
        return object;
    }
  fail_msg ("job %s has no disk %s", job, disk);
  return NULL;
}

/* ---- fixtures ---- */

/* A source started with options, a sink on a unix socket, and a state
 * directory in the sink's. */
static int
setup_source (void **state, const VmsTestVmOptions *options)
{
  Fixture *fixture = g_new0 (Fixture, 1);
  g_autoptr (GError) error = NULL;

  *state = fixture;
  fixture->vm = vms_test_vm_start (options, &error);
  if (!fixture->vm || !vms_test_vm_wait_ready (fixture->vm, &error))
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
  fixture->sink_uri
      = g_strdup_printf ("nbd+unix:///?socket=%s", fixture->sink->socket_path);
  return 0;
}

/* vd0 (qcow2, the guest writes to it) and vd1 (raw, disk1_path's image
 * if not NULL), and a vd2 (qcow2) of disk2_size bytes unless 0. */
static int
setup_with (void **state, const char *disk1_path, guint64 disk2_size)
{
  VmsTestVmOptions options = {
    .workload = "writer",
    .extra_cmdline = "vms.write_rate_kib=2048 vms.write_span_mib=24",
    .disks = { { "qcow2", 48 * MiB },
               { "raw", 32 * MiB, disk1_path },
               { disk2_size ? "qcow2" : NULL, disk2_size } },
    .second_qmp = TRUE,
  };

  return setup_source (state, &options);
}

static int
setup (void **state)
{
  return setup_with (state, NULL, 0);
}

/* vd1 is a raw image full of random data: a copy with something to send;
 * with disk2_size, a vd2 too. */
static int
setup_data_with (void **state, guint64 disk2_size)
{
  g_autofree char *dir = vms_test_make_tmpdir ("vms-sync-data");
  g_autofree char *path = g_build_filename (dir, "data.raw", NULL);
  g_autoptr (GRand) rand = g_rand_new_with_seed (17);
  g_autofree guint32 *chunk = g_new (guint32, MiB / 4);
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  int result;

  if (fd < 0)
    return -1;
  for (int i = 0; i < 32; i++)
    {
      for (gsize j = 0; j < MiB / 4; j++)
        chunk[j] = g_rand_int (rand);
      if (write (fd, chunk, MiB) != MiB)
        return -1;
    }
  close (fd);
  result = setup_with (state, path, disk2_size);
  ((Fixture *)*state)->data_dir = g_steal_pointer (&dir);
  return result;
}

static int
setup_data (void **state)
{
  return setup_data_with (state, 0);
}

/* Three disks: vd0 written by the guest, vd1 random data, vd2 (32 MiB). */
static int
setup_three (void **state)
{
  return setup_data_with (state, 32 * MiB);
}

/* Two hosts: the sink listens with TLS on host B; vmshift runs in host A
 * (it reaches QEMU through unix sockets, which ignore namespaces). */
static int
setup_hosts (void **state)
{
  g_autoptr (GError) error = NULL;
  Fixture *fixture;

  if (setup_data (state) < 0)
    return -1;
  fixture = *state;
  if (!vms_test_is_root ())
    return 0; /* the test skips */
  fixture->hosts = vms_test_hosts_new (&error);
  if (!fixture->hosts)
    {
      print_error ("cannot make test hosts: %s\n", error->message);
      return -1;
    }
  vms_test_sink_free (fixture->sink);
  fixture->sink = vms_test_sink_start_tcp (
      fixture->hosts->namespace[1], fixture -> hosts -> address[1], &error);
  if (!fixture->sink)
    {
      print_error ("cannot start the sink in host B: %s\n", error->message);
      return -1;
    }
  g_free (fixture->state_dir);
  fixture->state_dir = g_build_filename (fixture->sink->dir, "state", NULL);
  g_mkdir (fixture->state_dir, 0700);
  g_free (fixture->sink_uri);
  fixture->sink_uri = vms_test_sink_tcp_uri (fixture->sink, "");
  return 0;
}

static int
teardown (void **state)
{
  Fixture *fixture = *state;

  vms_test_vm_free (fixture->vm);
  vms_test_sink_free (fixture->sink);
  vms_test_hosts_free (fixture->hosts);
  g_free (fixture->state_dir);
  g_free (fixture->sink_uri);
  if (fixture->data_dir)
    vms_test_rmtree (fixture->data_dir);
  g_free (fixture->data_dir);
  g_free (fixture);
  return 0;
}

static void
qemu_io (Fixture *fixture, const char *device, const char *command)
{
  g_autoptr (GError) error = NULL;

  vms_assert_ok (vms_test_vm_qemu_io (fixture->vm, device, command, &error),
                 error);
}

static void
pause_guest (Fixture *fixture)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) stopped
      = vms_qmp_execute (fixture->vm->qmp, "stop", NULL, &error);

  vms_assert_ok (stopped, error);
}

static char *
replica_path (Fixture *fixture, const char *name)
{
  return vms_test_sink_replica_path (fixture->sink, name);
}

/* ---- tests ---- */

/* Copy and rounds while the guest writes; pause; one last round; the
 * replicas equal the paused source disks. */
static void
test_sync_rounds_then_final_round (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *source = g_strdup_printf ("qmp:%s", fixture->vm->qmp2_path);
  g_autoptr (VmsTestCommand) first = NULL;
  g_autoptr (VmsTestCommand) last = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autofree char *vd0 = replica_path (fixture, "t1-vd0");
  g_autofree char *vd1 = replica_path (fixture, "t1-vd1");
  g_autoptr (GError) error = NULL;
  JsonObject *disk;

  /* Data on the raw disk before, and writes to it during, the sync. */
  qemu_io (fixture, "vd1", "write -P 0x42 1M 3M");
  qemu_io (fixture, "vd1", "write -z 2M 512k");
  first = run_start (fixture, source, "--sink", fixture->sink_uri, "--job",
                     "j1", "--replica-prefix", "t1", "--rounds", "2",
                     "--granularity", "4K", NULL);
  for (int i = 0; i < 5 && !run_pump (first, 200); i++)
    {
      g_autofree char *command
          = g_strdup_printf ("write -P 0x%02x %dM 64k", 0x60 + i, 8 + i);

      qemu_io (fixture, "vd1", command);
    }
  run_expect_success (first);
  assert_non_null (strstr (first->out->str, "\"event\":\"synced\""));

  pause_guest (fixture);
  qemu_io (fixture, "vd1", "write -P 0x77 20M 128k"); /* after the pause */
  last = run_start (fixture, "--resume", "j1", "--rounds", "1", NULL);
  run_expect_success (last);

  assert_identical (fixture->vm->disk_paths[0], "qcow2", vd0);
  assert_identical (fixture->vm->disk_paths[1], "raw", vd1);

  disk = job_disk (fixture, "j1", "vd0", parser);
  assert_true (json_object_get_boolean_member (disk, "persistent"));
  {
    g_autoptr (VmsBitmapInfo) info = vms_bitmap_query (
        fixture->vm->qmp, "d0",
        json_object_get_string_member (disk, "recording-bitmap"), &error);

    /* --granularity reached QEMU and carried over to later rounds. */
    vms_assert_ok (info, error);
    assert_int_equal (info->granularity, 4096);
    assert_true (info->recording);
  }
  assert_int_equal (json_object_get_int_member (disk, "round"), 4);
  assert_true (json_object_get_int_member (disk, "bytes-written") > 0);
}

/* A guest writing 4 KiB blocks at random over its whole 256 MiB raw disk
 * at a known rate (512 KiB/s): with 64 KiB bits nearly every write would
 * dirty a bit of its own, sixteen times its size. */
static int
setup_random_4k (void **state)
{
  VmsTestVmOptions options = {
    .workload = "writer",
    .extra_cmdline = "vms.write_rate_kib=512 vms.write_span_mib=0",
    .disks = { { "raw", 256 * MiB } },
    .second_qmp = TRUE,
  };

  return setup_source (state, &options);
}

/* A job file from before granularity was recorded. */
static void
forget_granularity (Fixture *fixture, const char *job)
{
  g_autofree char *file = g_strconcat (job, ".json", NULL);
  g_autofree char *path = g_build_filename (fixture->state_dir, file, NULL);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  JsonObject *disk = job_disk (fixture, job, "vd0", parser);

  json_object_remove_member (disk, "granularity");
  json_object_remove_member (disk, "granularity-reason");
  json_generator_set_root (generator, json_parser_get_root (parser));
  assert_true (json_generator_to_file (generator, path, NULL));
}

/* The default granularity follows a guest's 4 KiB random writes: the
 * job and the report say 4 KiB and why, the rounds carry about what the
 * guest wrote (64 KiB bits would carry ~16 times that), a job file
 * without the record resumes with its bitmaps' granularity, and the
 * replica ends identical. */
static void
test_granularity_follows_4k_writes (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *source = g_strdup_printf ("qmp:%s", fixture->vm->qmp2_path);
  g_autofree char *replica = replica_path (fixture, "g4-vd0");
  g_autoptr (VmsTestCommand) first = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (JsonParser) event_parser = json_parser_new ();
  JsonObject *disk, *event;
  guint64 before, written, rounds;

  before = vms_test_vm_bytes_written (fixture->vm, "vd0");
  first = run_start (fixture, source, "--sink", fixture->sink_uri, "--job",
                     "g4", "--replica-prefix", "g4", "--rounds", "0", NULL);
  run_expect_success (first);
  event = vms_test_command_find_event (first, "granularity", event_parser);
  assert_non_null (event);
  assert_int_equal (json_object_get_int_member (event, "granularity"), 4096);
  assert_string_equal (json_object_get_string_member (event, "why"), "floor");
  /* The guest's own writes are 4 KiB (O_DIRECT, one block each). */
  assert_int_equal (json_object_get_int_member (event, "write-average"), 4096);
  assert_non_null (strstr (json_object_get_string_member (event, "message"),
                           "vd0: bitmap granularity 4 KiB (chosen: the 4 KiB "
                           "floor; average guest write 4.0 KiB"));
  disk = job_disk (fixture, "g4", "vd0", parser);
  assert_int_equal (json_object_get_int_member (disk, "granularity"), 4096);

  forget_granularity (fixture, "g4");
  for (int i = 0; i < 3; i++)
    {
      g_autoptr (VmsTestCommand) round = NULL;

      g_usleep (2 * G_USEC_PER_SEC);
      round = run_start (fixture, "--resume", "g4", "--rounds", "1", NULL);
      run_expect_success (round);
      event = vms_test_command_find_event (round, "disk-synced", event_parser);
      assert_non_null (event);
      assert_int_equal (json_object_get_int_member (event, "granularity"),
                        4096);
      assert_non_null (strstr (json_object_get_string_member (event, "message"),
                               "bitmap granularity 4 KiB"));
    }
  written = vms_test_vm_bytes_written (fixture->vm, "vd0") - before;
  disk = job_disk (fixture, "g4", "vd0", parser);
  rounds = json_object_get_int_member (disk, "bytes-rounds");
  /* Restored from the bitmap, not from the (removed) record. */
  assert_int_equal (json_object_get_int_member (disk, "granularity"), 4096);
  assert_non_null (
      strstr (json_object_get_string_member (disk, "granularity-reason"),
              "predates the record"));
  print_message ("guest wrote %" G_GUINT64_FORMAT " bytes, the rounds "
                 "carried %" G_GUINT64_FORMAT " (%.2fx)\n",
                 written, rounds, (double)rounds / written);
  /* At 512 KiB/s for 7 s and more; then the rounds hold each write once
   * (at most 1.2x, 64 KiB bits: ~16x), and all but what came after the
   * last switch (at least half). */
  assert_true (written >= 2 * MiB);
  assert_true (rounds * 10 <= written * 12);
  assert_true (rounds * 2 >= written);

  pause_guest (fixture);
  {
    g_autoptr (VmsTestCommand) last
        = run_start (fixture, "--resume", "g4", "--rounds", "1", NULL);

    run_expect_success (last);
  }
  assert_identical (fixture->vm->disk_paths[0], "raw", replica);
}

/* Bitmaps coarser than the guest's writes (--granularity 64K, as a huge
 * disk would get): each 4 KiB write dirties a 64 KiB bit, but the rounds
 * compare the bit's 4 KiB chunks with the replica's hashes and send only
 * those that changed, so they still carry about what the guest wrote
 * (sending whole bits: ~16 times that), and the replica ends identical. */
static void
test_coarse_bitmap_rounds_send_what_changed (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *source = g_strdup_printf ("qmp:%s", fixture->vm->qmp2_path);
  g_autofree char *replica = replica_path (fixture, "g64-vd0");
  g_autoptr (VmsTestCommand) first = NULL;
  g_autoptr (VmsTestCommand) last = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonObject *disk;
  guint64 before, written, rounds, matched;

  first = run_start (fixture, source, "--sink", fixture->sink_uri, "--job",
                     "g64", "--replica-prefix", "g64", "--granularity", "64K",
                     "--rounds", "0", NULL);
  run_expect_success (first);
  before = vms_test_vm_bytes_written (fixture->vm, "vd0");
  for (int i = 0; i < 3; i++)
    {
      g_autoptr (VmsTestCommand) round = NULL;

      g_usleep (2 * G_USEC_PER_SEC);
      round = run_start (fixture, "--resume", "g64", "--rounds", "1", NULL);
      run_expect_success (round);
    }
  written = vms_test_vm_bytes_written (fixture->vm, "vd0") - before;
  disk = job_disk (fixture, "g64", "vd0", parser);
  assert_int_equal (json_object_get_int_member (disk, "granularity"), 65536);
  rounds = json_object_get_int_member (disk, "bytes-rounds");
  matched = json_object_get_int_member (disk, "bytes-matched");
  print_message ("guest wrote %" G_GUINT64_FORMAT " bytes, the rounds "
                 "carried %" G_GUINT64_FORMAT
                 " (%.2fx) and found %" G_GUINT64_FORMAT " at the sink\n",
                 written, rounds, (double)rounds / written, matched);
  assert_true (written >= 2 * MiB);
  assert_true (rounds * 10 <= written * 12);
  /* The rest of the 64 KiB bits was read and not sent. */
  assert_true (matched >= 8 * written);

  pause_guest (fixture);
  last = run_start (fixture, "--resume", "g64", "--rounds", "1", NULL);
  run_expect_success (last);
  assert_identical (fixture->vm->disk_paths[0], "raw", replica);
}

/* A working directory for vmshift inside the sink's private directory,
 * which is neither QEMU's (the test's) nor the other runs' (caller
 * frees). */
static char *
make_cwd (Fixture *fixture, const char *name)
{
  char *dir = g_build_filename (fixture->sink->dir, name, NULL);

  assert_int_equal (g_mkdir_with_parents (dir, 0700), 0);
  return dir;
}

/* A new user's command line: relative --state-dir, QMP socket and sink
 * socket, from a working directory that is not QEMU's (QEMU's NBD server
 * listens in the state directory); the job keeps absolute paths, and
 * resumes from yet another directory, with --state-dir relative to it. */
static void
test_relative_paths_resume_elsewhere (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *here = make_cwd (fixture, "here");
  g_autofree char *there = make_cwd (fixture, "there/deeper");
  g_autofree char *qmp = vms_test_relative_path (here, fixture->vm->qmp2_path);
  g_autofree char *socket
      = vms_test_relative_path (here, fixture->sink->socket_path);
  g_autofree char *source = g_strdup_printf ("qmp:%s", qmp);
  g_autofree char *sink_uri
      = g_strdup_printf ("nbd+unix:///?socket=%s", socket);
  g_autofree char *state_dir
      = g_build_filename (fixture->sink->dir, "rel", NULL);
  g_autofree char *job_path = g_build_filename (state_dir, "rel.json", NULL);
  g_autofree char *expected_source
      = g_strdup_printf ("qmp:%s", fixture->vm->qmp2_path);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (VmsTestCommand) first = NULL;
  g_autoptr (VmsTestCommand) resumed = NULL;
  g_autofree char *vd0 = replica_path (fixture, "rel-vd0");
  g_autofree char *vd1 = replica_path (fixture, "rel-vd1");
  JsonObject *job;

  first = run_start_in (fixture, here, "../rel", source, "--sink", sink_uri,
                        "--job", "rel", "--replica-prefix", "rel", "--rounds",
                        "1", NULL);
  run_expect_success (first);
  assert_true (json_parser_load_from_file (parser, job_path, NULL));
  job = json_node_get_object (json_parser_get_root (parser));
  assert_string_equal (json_object_get_string_member (job, "source"),
                       expected_source);
  assert_string_equal (json_object_get_string_member (job, "sink"),
                       fixture->sink_uri);

  pause_guest (fixture);
  resumed = run_start_in (fixture, there, "../../rel", "--resume", "rel",
                          "--rounds", "1", NULL);
  run_expect_success (resumed);
  assert_identical (fixture->vm->disk_paths[0], "qcow2", vd0);
  assert_identical (fixture->vm->disk_paths[1], "raw", vd1);
}

/* kill -9 of vmshift in the middle of the background copy: the rerun
 * resumes from the last checkpoint and sends again at most a checkpoint
 * interval plus what was in flight. */
static void
test_resume_after_kill9_of_vmshift (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *source = g_strdup_printf ("qmp:%s", fixture->vm->qmp2_path);
  g_autoptr (VmsTestCommand) first = NULL;
  g_autoptr (VmsTestCommand) second = NULL;
  g_autoptr (VmsTestCommand) last = NULL;
  g_autoptr (JsonParser) killed = json_parser_new ();
  g_autofree char *vd1 = replica_path (fixture, "t2-vd1");
  const guint64 checkpoint = 4 * MiB;
  /* --connections 2 --queue-depth 4 of 256 KiB requests. */
  const guint64 in_flight = 2 * 4 * 256 * 1024;
  guint64 reached = 0, durable;
  gint64 deadline = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;

  first
      = run_start (fixture, source, "--sink", fixture->sink_uri, "--job", "j2",
                   "--replica-prefix", "t2", "--disk", "vd1", "--max-bandwidth",
                   "4M", "--checkpoint-bytes", "4M", "--connections", "2",
                   "--queue-depth", "4", "--rounds", "1", NULL);
  while (reached < 18 * MiB)
    {
      if (run_pump (first, 100))
        fail_msg ("vmshift ended before it could be killed: %s",
                  first->out->str);
      if (g_get_monotonic_time () > deadline)
        fail_msg ("no progress from vmshift: %s", first->out->str);
      reached = last_progress (first, "vd1", "background");
    }
  kill (first->pid, SIGKILL);
  run_wait (first);
  reached = last_progress (first, "vd1", "background");

  durable = json_object_get_int_member (job_disk (fixture, "j2", "vd1", killed),
                                        "watermark");
  assert_true (durable > 0);
  assert_true (durable <= reached);
  if (reached - durable > checkpoint + in_flight)
    fail_msg ("%" G_GUINT64_FORMAT " bytes would be sent again",
              reached - durable);

  second = run_start (fixture, "--resume", "j2", "--rounds", "1", NULL);
  run_expect_success (second);
  {
    g_autofree char *resumed_at = g_strdup_printf (
        "resuming the background copy at %" G_GUINT64_FORMAT " of", durable);

    assert_non_null (strstr (second->out->str, resumed_at));
  }
  pause_guest (fixture);
  last = run_start (fixture, "--resume", "j2", "--rounds", "1", NULL);
  run_expect_success (last);
  assert_identical (fixture->vm->disk_paths[1], "raw", vd1);
}

/* kill -9 of the sink mid-copy: vmshift fails with the state saved; once
 * the sink is back, a rerun finishes. */
static void
test_resume_after_sink_killed (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *source = g_strdup_printf ("qmp:%s", fixture->vm->qmp2_path);
  g_autoptr (VmsTestCommand) first = NULL;
  g_autoptr (VmsTestCommand) second = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *vd1 = replica_path (fixture, "t3-vd1");
  g_autofree char *err = NULL;
  int status;

  /* Told not to wait for the sink to come back. */
  first = run_start (fixture, source, "--sink", fixture->sink_uri, "--job",
                     "j3", "--replica-prefix", "t3", "--disk", "vd1",
                     "--max-bandwidth", "4M", "--checkpoint-bytes", "4M",
                     "--rounds", "1", "--retry-timeout", "0", NULL);
  while (last_progress (first, "vd1", "background") < 10 * MiB)
    if (run_pump (first, 100))
      fail_msg ("vmshift ended early: %s", first->out->str);
  vms_test_sink_kill (fixture->sink);
  status = run_wait (first);
  err = run_stderr (first);
  assert_int_not_equal (status, 0);
  assert_non_null (strstr (first->out->str, "--resume j3"));

  vms_assert_ok (vms_test_sink_restart (fixture->sink, &error), error);
  pause_guest (fixture);
  second = run_start (fixture, "--resume", "j3", "--rounds", "1", NULL);
  run_expect_success (second);
  assert_identical (fixture->vm->disk_paths[1], "raw", vd1);
}

/* The link between the hosts goes down for 30 s mid-copy: vmshift stops
 * at its I/O timeout with the state saved (or rides it out), and a rerun
 * after the link is back finishes with an identical replica, having sent
 * again no more than a checkpoint interval plus what was in flight. */
static void
test_resume_after_link_cut (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *source = g_strdup_printf ("qmp:%s", fixture->vm->qmp2_path);
  g_autofree char *vd1 = replica_path (fixture, "t4-vd1");
  g_autoptr (VmsTestCommand) first = NULL;
  g_autoptr (VmsTestCommand) second = NULL;
  g_autoptr (VmsTestCommand) last = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;
  const guint64 checkpoint = 4 * MiB;
  const guint64 in_flight = 2 * 4 * 256 * 1024;
  guint64 reached, durable;
  int status;

  if (!fixture->hosts)
    vms_test_skip ("needs root for two network-namespace hosts");
  first = run_start (fixture, source, "--sink", fixture->sink_uri, "--job",
                     "j4", "--replica-prefix", "t4", "--disk", "vd1",
                     "--max-bandwidth", "4M", "--checkpoint-bytes", "4M",
                     "--connections", "2", "--queue-depth", "4", "--io-timeout",
                     "10", "--rounds", "1", NULL);
  while (last_progress (first, "vd1", "background") < 8 * MiB)
    if (run_pump (first, 100))
      {
        g_autofree char *err = run_stderr (first);

        fail_msg ("vmshift ended early: %s %s", first->out->str, err);
      }
  vms_assert_ok (vms_test_hosts_set_link (fixture->hosts, 1, FALSE, &error),
                 error);
  for (int waited = 0; waited < 30000; waited += 100)
    run_pump (first, 100);
  vms_assert_ok (vms_test_hosts_set_link (fixture->hosts, 1, TRUE, &error),
                 error);
  status = run_wait (first);
  reached = last_progress (first, "vd1", "background");
  if (status != 0)
    {
      /* It gave up during the cut: the state is the last checkpoint. */
      assert_int_equal (status, 3);
      durable = json_object_get_int_member (
          job_disk (fixture, "j4", "vd1", parser), "watermark");
      assert_true (durable > 0 && durable <= reached);
      if (reached - durable > checkpoint + in_flight)
        fail_msg ("%" G_GUINT64_FORMAT " bytes would be sent again",
                  reached - durable);
      print_message ("vmshift stopped during the cut at %" G_GUINT64_FORMAT
                     ", durable %" G_GUINT64_FORMAT "\n",
                     reached, durable);
      second = run_start (fixture, "--resume", "j4", "--rounds", "1", NULL);
      run_expect_success (second);
    }
  else
    print_message ("vmshift rode out the link cut\n");
  pause_guest (fixture);
  last = run_start (fixture, "--resume", "j4", "--rounds", "1", NULL);
  run_expect_success (last);
  assert_identical (fixture->vm->disk_paths[1], "raw", vd1);
}

/* The bytes a run sent again after lost connections, from its report. */
static guint64
resent_bytes (Run *run, const char *disk)
{
  assert_true (
      vms_test_command_event_int (run, "disk-synced", disk, "reconnects") > 0);
  return vms_test_command_event_int (run, "disk-synced", disk, "bytes-resent");
}

/* The sink's connections are reset mid-copy (nft reject with tcp reset,
 * ss -K), and every new one too until vmshift's third attempt: it then
 * connects again by itself and finishes in the same run, sending again at
 * most 1 % of the data plus a request per connection.  Without reconnects
 * the run fails. */
static void
test_reconnect_after_tcp_resets (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *source = g_strdup_printf ("qmp:%s", fixture->vm->qmp2_path);
  g_autofree char *vd1 = replica_path (fixture, "t9-vd1");
  g_autoptr (VmsTestCommand) first = NULL;
  g_autoptr (VmsTestCommand) last = NULL;
  g_autoptr (GError) error = NULL;
  /* 1 % of the data and a request per connection, as the issue asks,
   * plus what the pace keeps in flight on this link: twice its
   * bandwidth-delay product, a request's 52 ms at 40 Mbit/s (on a disk
   * of realistic size the 1 % dwarfs it; here it does not).  The queues'
   * depth would be 32 MiB. */
  const guint64 link_product = 2 * (40000000 / 8) * 52 / 1000;
  const guint64 bound = 32 * MiB / 100 + 2 * 256 * 1024 + link_product;
  guint64 resent;
  int status;

  if (!fixture->hosts)
    vms_test_skip ("needs root for two network-namespace hosts");
  /* A 40 Mbit/s link, and no cap of vmshift's own: what is in flight
   * when the connections go is what the pace allows, not the queues'
   * 2 x 64 requests. */
  vms_assert_ok (vms_test_hosts_limit_rate (fixture->hosts, 0, 40000, &error),
                 error);
  first = run_start (fixture, source, "--sink", fixture->sink_uri, "--job",
                     "j9", "--replica-prefix", "t9", "--disk", "vd1",
                     "--connections", "2", "--rounds", "1", NULL);
  while (last_progress (first, "vd1", "background") < 8 * MiB)
    if (run_pump (first, 100))
      fail_msg ("vmshift ended early: %s", first->out->str);
  vms_assert_ok (vms_test_hosts_reset_tcp (fixture->hosts, 1,
                                           VMS_TEST_SINK_PORT, TRUE, &error),
                 error);
  /* Seen, and then refused for a while: a run that connected at once
   * would not have been tested. */
  vms_test_command_wait_for (first, "\"event\":\"reconnecting\"", 20000);
  vms_test_command_wait_for (first, "\"attempt\":3", 20000);
  vms_assert_ok (vms_test_hosts_reset_tcp (fixture->hosts, 1,
                                           VMS_TEST_SINK_PORT, FALSE, &error),
                 error);
  status = run_wait (first);
  if (status != 0)
    {
      g_autofree char *err = run_stderr (first);

      fail_msg ("vmshift did not ride out the resets (exit %d): %s", status,
                err);
    }
  resent = resent_bytes (first, "vd1");
  print_message ("sent again after the resets: %" G_GUINT64_FORMAT
                 " bytes (at most %" G_GUINT64_FORMAT ")\n",
                 resent, bound);
  if (resent > bound)
    {
      g_autofree char *err = run_stderr (first);

      fail_msg ("%s", err);
    }
  pause_guest (fixture);
  last = run_start (fixture, "--resume", "j9", "--rounds", "1", NULL);
  run_expect_success (last);
  assert_identical (fixture->vm->disk_paths[1], "raw", vd1);
}

/* The sink is killed (kill -9) mid-copy and started again a few seconds
 * later: vmshift connects again and goes on in the same run from what the
 * sink acknowledged (nbdkit died, the host's page cache kept it), and the
 * replica is identical. */
static void
test_reconnect_after_sink_restart (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *source = g_strdup_printf ("qmp:%s", fixture->vm->qmp2_path);
  g_autofree char *vd1 = replica_path (fixture, "t10-vd1");
  g_autoptr (VmsTestCommand) first = NULL;
  g_autoptr (VmsTestCommand) last = NULL;
  g_autoptr (GError) error = NULL;

  first = run_start (fixture, source, "--sink", fixture->sink_uri, "--job",
                     "j10", "--replica-prefix", "t10", "--disk", "vd1",
                     "--max-bandwidth", "4M", "--rounds", "1", NULL);
  while (last_progress (first, "vd1", "background") < 8 * MiB)
    if (run_pump (first, 100))
      fail_msg ("vmshift ended early: %s", first->out->str);
  vms_test_sink_kill (fixture->sink);
  vms_test_command_wait_for (first, "\"attempt\":2", 20000);
  vms_assert_ok (vms_test_sink_restart (fixture->sink, &error), error);
  run_expect_success (first);
  /* From the acknowledged watermark, not from the last FLUSH (none yet:
   * that would be the whole 8 MiB again). */
  assert_true (resent_bytes (first, "vd1") <= 32 * MiB / 100 + 2 * 256 * 1024);
  pause_guest (fixture);
  last = run_start (fixture, "--resume", "j10", "--rounds", "1", NULL);
  run_expect_success (last);
  assert_identical (fixture->vm->disk_paths[1], "raw", vd1);
}

/* The source QEMU is killed mid-copy and started again on the same raw
 * image, which loses its dirty bitmaps, and the image changes while no
 * bitmap records it.  --resume compares the disk with the replica's
 * hashes and sends only what differs: the changed 64 KiB and what the
 * first run had not copied, not the whole disk again (the job's
 * bytes-matched says how much it did not send).  Replica identical. */
static void
test_resume_after_source_restart (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *source = g_strdup_printf ("qmp:%s", fixture->vm->qmp2_path);
  g_autofree char *vd1 = replica_path (fixture, "t11-vd1");
  g_autoptr (VmsTestCommand) first = NULL;
  g_autoptr (VmsTestCommand) second = NULL;
  g_autoptr (VmsTestCommand) last = NULL;
  g_autoptr (JsonParser) before = json_parser_new ();
  g_autoptr (JsonParser) after = json_parser_new ();
  g_autoptr (GError) error = NULL;
  JsonObject *disk;
  guint64 durable, written, matched, sent;
  gint64 restarted_us;

  first = run_start (fixture, source, "--sink", fixture->sink_uri, "--job",
                     "j11", "--replica-prefix", "t11", "--disk", "vd1",
                     "--max-bandwidth", "4M", "--checkpoint-bytes", "4M",
                     "--rounds", "1", NULL);
  while (last_progress (first, "vd1", "background") < 16 * MiB)
    if (run_pump (first, 100))
      {
        g_autofree char *err = run_stderr (first);

        fail_msg ("vmshift ended early: %s %s", first->out->str, err);
      }
  restarted_us = g_get_monotonic_time ();
  vms_assert_ok (vms_test_vm_restart (fixture->vm, FALSE, &error), error);
  /* QEMU's export is gone with it: no waiting --retry-timeout for it. */
  assert_int_not_equal (run_wait (first), 0);
  {
    g_autofree char *err = run_stderr (first);

    print_message ("first run, %.1f s after the restart: %s",
                   (g_get_monotonic_time () - restarted_us) / 1e6, err);
    assert_true (g_get_monotonic_time () - restarted_us < 30 * G_USEC_PER_SEC);
  }
  vms_assert_ok (vms_test_vm_wait_ready (fixture->vm, &error), error);
  /* Below what the first run copied, unrecorded. */
  qemu_io (fixture, "vd1", "write -P 0x77 4M 64k");

  disk = job_disk (fixture, "j11", "vd1", before);
  durable = json_object_get_int_member (disk, "watermark");
  written = json_object_get_int_member (disk, "bytes-written");
  assert_true (durable >= 4 * MiB + 64 * 1024);
  second = run_start (fixture, "--resume", "j11", "--rounds", "1", NULL);
  run_expect_success (second);
  assert_non_null (strstr (second->out->str, "\"event\":\"bitmaps-lost\""));

  disk = job_disk (fixture, "j11", "vd1", after);
  matched = json_object_get_int_member (disk, "bytes-matched");
  sent = json_object_get_int_member (disk, "bytes-written") - written;
  print_message ("copied %" G_GUINT64_FORMAT " bytes before the restart; "
                 "after it, sent %" G_GUINT64_FORMAT
                 ", found at the sink %" G_GUINT64_FORMAT "\n",
                 durable, sent, matched);
  /* What the first run made durable, but the changed 64 KiB, is not sent
   * again; the rest of the disk is, and the change. */
  assert_true (matched >= durable - 64 * 1024);
  assert_true (sent <= 32 * MiB - durable + 64 * 1024 + 256 * 1024);
  pause_guest (fixture);
  last = run_start (fixture, "--resume", "j11", "--rounds", "1", NULL);
  run_expect_success (last);
  assert_identical (fixture->vm->disk_paths[1], "raw", vd1);
}

/* The disk-synced event of a run, parsed into parser. */
static JsonObject *
disk_synced (VmsTestCommand *run, JsonParser *parser)
{
  JsonObject *event = vms_test_command_find_event (run, "disk-synced", parser);

  assert_non_null (event);
  return event;
}

/* A qcow2 disk keeps its bitmaps in the image: after QEMU quits and starts
 * again, --resume goes on with the rounds from them (no new copy, nothing
 * compared).  After QEMU is killed they are inconsistent: --resume copies
 * the disk again comparing it with the replica, and sends little.  Both
 * times the replica ends identical. */
static void
test_resume_after_qcow2_source_restarts (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *source = g_strdup_printf ("qmp:%s", fixture->vm->qmp2_path);
  g_autofree char *vd0 = replica_path (fixture, "t12-vd0");
  g_autoptr (VmsTestCommand) first = NULL;
  g_autoptr (VmsTestCommand) after_quit = NULL;
  g_autoptr (VmsTestCommand) after_kill = NULL;
  g_autoptr (VmsTestCommand) last = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;
  JsonObject *disk;
  guint64 background, matched;

  /* Data the guest never rewrites (its writer keeps to 0-24M). */
  vms_assert_ok (
      vms_test_vm_qemu_io (fixture->vm, "vd0", "write -P 0x6d 28M 16M", &error),
      error);
  first = run_start (fixture, source, "--sink", fixture->sink_uri, "--job",
                     "j12", "--replica-prefix", "t12", "--disk", "vd0",
                     "--rounds", "1", NULL);
  run_expect_success (first);
  background = json_object_get_int_member (
      job_disk (fixture, "j12", "vd0", parser), "bytes-background");

  vms_assert_ok (vms_test_vm_restart (fixture->vm, TRUE, &error), error);
  vms_assert_ok (vms_test_vm_wait_ready (fixture->vm, &error), error);
  after_quit = run_start (fixture, "--resume", "j12", "--rounds", "1", NULL);
  run_expect_success (after_quit);
  assert_null (strstr (after_quit->out->str, "bitmaps-lost"));
  disk = job_disk (fixture, "j12", "vd0", parser);
  assert_int_equal (json_object_get_int_member (disk, "bytes-background"),
                    background);
  assert_int_equal (json_object_get_int_member (disk, "bytes-matched"), 0);

  vms_assert_ok (vms_test_vm_restart (fixture->vm, FALSE, &error), error);
  vms_assert_ok (vms_test_vm_wait_ready (fixture->vm, &error), error);
  pause_guest (fixture);
  after_kill = run_start (fixture, "--resume", "j12", "--rounds", "1", NULL);
  run_expect_success (after_kill);
  assert_non_null (strstr (after_kill->out->str, "bitmaps-lost"));
  disk = disk_synced (after_kill, parser);
  matched = json_object_get_int_member (disk, "bytes-matched");
  print_message ("after kill -9: copied again, %" G_GUINT64_FORMAT
                 " bytes found at the sink\n",
                 matched);
  /* At least the 16 MiB written before the first run, outside the
   * guest's span and made durable by the clean quit; how much of the
   * guest's own span is found besides depends on how long it ran. */
  assert_true (matched >= 16 * MiB);

  last = run_start (fixture, "--resume", "j12", "--rounds", "1", NULL);
  run_expect_success (last);
  assert_identical (fixture->vm->disk_paths[0], "qcow2", vd0);
}

/* A new job onto a replica that holds an older copy (a job given up, a
 * seed): --compare always sends only the chunks that changed since. */
static void
test_compare_always_sends_only_changes (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *source = g_strdup_printf ("qmp:%s", fixture->vm->qmp2_path);
  g_autofree char *vd1 = replica_path (fixture, "t13-vd1");
  g_autoptr (VmsTestCommand) old = NULL;
  g_autoptr (VmsTestCommand) again = NULL;
  g_autoptr (VmsTestCommand) last = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonObject *disk;
  guint64 sent, matched;

  old = run_start (fixture, source, "--sink", fixture->sink_uri, "--job",
                   "j13a", "--replica-prefix", "t13", "--disk", "vd1",
                   "--rounds", "0", NULL);
  run_expect_success (old);
  qemu_io (fixture, "vd1", "write -P 0x5c 10M 1M");
  qemu_io (fixture, "vd1", "write -z 20M 64k");

  again = run_start (fixture, source, "--sink", fixture->sink_uri, "--job",
                     "j13b", "--replica-prefix", "t13", "--disk", "vd1",
                     "--rounds", "0", "--compare", "always", NULL);
  run_expect_success (again);
  disk = job_disk (fixture, "j13b", "vd1", parser);
  sent = json_object_get_int_member (disk, "bytes-written")
         + json_object_get_int_member (disk, "bytes-zeroed");
  matched = json_object_get_int_member (disk, "bytes-matched");
  print_message (
      "new job onto the old replica: sent or zeroed %" G_GUINT64_FORMAT
      " bytes, found %" G_GUINT64_FORMAT " at the sink\n",
      sent, matched);
  assert_true (sent >= MiB + 64 * 1024);
  assert_true (sent <= MiB + 64 * 1024 + 256 * 1024);
  assert_true (matched >= 30 * MiB);

  pause_guest (fixture);
  last = run_start (fixture, "--resume", "j13b", "--rounds", "1", NULL);
  run_expect_success (last);
  assert_identical (fixture->vm->disk_paths[1], "raw", vd1);
}

/* vmshift-sink seed import --dir dir seed, into run. */
static void
import_seed (VmsTestRun *run, const char *dir, const char *seed)
{
  g_autofree char *dir_arg = g_strdup_printf ("--dir=%s", dir);

  vms_test_run_capture (run, NULL, NULL, vms_test_built_program ("VMS_SINK"),
                        "seed", "import", dir_arg, seed, NULL);
}

/* A copy of seed with the byte at offset changed, or cut to length
 * bytes (offset G_MAXUINT64); imported into an empty directory, it is
 * refused with a message holding needle, and no replica is left. */
static void
assert_bad_seed_refused (Fixture *fixture, const char *seed, guint64 offset,
                         gsize length, const char *needle)
{
  g_autofree char *dir = g_build_filename (fixture->sink->dir, "bad", NULL);
  g_autofree char *copy
      = g_build_filename (fixture->sink->dir, "bad.seed", NULL);
  g_autofree char *contents = NULL;
  g_auto (VmsTestRun) run = { 0 };
  gsize size;

  assert_true (g_file_get_contents (seed, &contents, &size, NULL));
  if (offset != G_MAXUINT64)
    contents[offset] ^= 0x10;
  else
    size = length;
  assert_true (g_file_set_contents (copy, contents, size, NULL));
  g_mkdir (dir, 0700);
  import_seed (&run, dir, copy);
  if (run.status != 1 || !strstr (run.err, needle))
    fail_msg ("import of a bad seed: exit %d: %s (expected '%s')", run.status,
              run.err, needle);
  {
    g_autoptr (GDir) listing = g_dir_open (dir, 0, NULL);
    const char *name;

    while ((name = g_dir_read_name (listing)))
      if (!g_str_equal (name, ".vmshift"))
        fail_msg ("a refused import left %s", name);
  }
  vms_test_rmtree (dir);
}

/* Seed vd1 to a file as job job (replicas PREFIX-vd1 with prefix job),
 * check the damaged copies are refused, and import it at the sink. */
static void
seed_and_import (Fixture *fixture, const char *job)
{
  g_autofree char *source = g_strdup_printf ("qmp:%s", fixture->vm->qmp2_path);
  g_autofree char *seed
      = g_build_filename (fixture->sink->dir, "vm.seed", NULL);
  g_autofree char *state_arg
      = g_strdup_printf ("--state-dir=%s", fixture->state_dir);
  g_autofree char *replica = g_strdup_printf ("imported %s-vd1", job);
  g_auto (VmsTestRun) exported = { 0 };
  g_auto (VmsTestRun) imported = { 0 };

  vms_test_run_capture (&exported, NULL, NULL, vmshift, "seed", "export",
                        source, "--to", seed, "--job", job, "--replica-prefix",
                        job, "--disk", "vd1", state_arg, "--json", NULL);
  if (exported.status != 0)
    fail_msg ("seed export exited %d: %s", exported.status, exported.err);
  assert_non_null (strstr (exported.out, "\"event\":\"seeded\""));
  /* Shipped: the sink's host imports it. */
  assert_bad_seed_refused (fixture, seed, 64 + 48 + 4096, 0,
                           "disk 'vd1' chunk at offset 0 (record at byte 64) "
                           "does not match its hash");
  assert_bad_seed_refused (fixture, seed, G_MAXUINT64, 3 * MiB, "cut short");
  import_seed (&imported, fixture->sink->replica_dir, seed);
  if (imported.status != 0)
    fail_msg ("seed import exited %d: %s", imported.status, imported.err);
  assert_non_null (strstr (imported.out, replica));
}

/* Resume job with the sink named, then pause the guest and end with a
 * last round: the replica is identical.  Returns the bytes the first
 * resume sent. */
static guint64
resume_seeded (Fixture *fixture, const char *job, VmsTestCommand **delta)
{
  g_autofree char *replica_name = g_strdup_printf ("%s-vd1", job);
  g_autofree char *vd1 = replica_path (fixture, replica_name);
  g_autoptr (VmsTestCommand) last = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  guint64 sent;

  *delta = run_start (fixture, "--resume", job, "--sink", fixture->sink_uri,
                      "--rounds", "1", NULL);
  run_expect_success (*delta);
  sent = json_object_get_int_member (job_disk (fixture, job, "vd1", parser),
                                     "bytes-written");
  pause_guest (fixture);
  last = run_start (fixture, "--resume", job, "--rounds", "1", NULL);
  run_expect_success (last);
  assert_identical (fixture->vm->disk_paths[1], "raw", vd1);
  return sent;
}

/* A running guest's disk seeded to a file, the file imported at the sink
 * ("shipped"), the guest writes 1 MiB meanwhile: the resumed job sends
 * that 1 MiB, not the disk, and the replica ends identical.  A seed with
 * a damaged chunk, or cut short, is refused and leaves no replica. */
static void
test_seed_then_delta (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) delta = NULL;
  guint64 sent;

  seed_and_import (fixture, "j14");
  qemu_io (fixture, "vd1", "write -P 0x3c 5M 1M");
  sent = resume_seeded (fixture, "j14", &delta);
  print_message ("after the seed: sent %" G_GUINT64_FORMAT " bytes\n", sent);
  /* The guest's 1 MiB, at the bitmap's 4 KiB grain. */
  assert_true (sent >= MiB);
  assert_true (sent <= MiB + 8 * 1024);
}

/* The same, but the source QEMU is killed and started again after the
 * seed (a raw disk's bitmap is lost): the resumed job compares the disk
 * with the imported replica's hashes and sends only the changed 1 MiB. */
static void
test_seed_then_source_restart (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) delta = NULL;
  g_autoptr (GError) error = NULL;
  guint64 sent;

  seed_and_import (fixture, "j15");
  vms_assert_ok (vms_test_vm_restart (fixture->vm, FALSE, &error), error);
  vms_assert_ok (vms_test_vm_wait_ready (fixture->vm, &error), error);
  qemu_io (fixture, "vd1", "write -P 0x3d 7M 1M");
  sent = resume_seeded (fixture, "j15", &delta);
  assert_non_null (strstr (delta->out->str, "\"event\":\"bitmaps-lost\""));
  print_message (
      "after the seed and a restart: sent %" G_GUINT64_FORMAT " bytes\n", sent);
  assert_true (sent >= MiB);
  assert_true (sent <= MiB + 256 * 1024);
}

/* Ctrl-C (SIGINT) stops at once with the state saved; --resume goes on. */
static void
test_interrupt_saves_state (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *source = g_strdup_printf ("qmp:%s", fixture->vm->qmp2_path);
  g_autofree char *vd1 = replica_path (fixture, "t5-vd1");
  g_autoptr (VmsTestCommand) first = NULL;
  g_autoptr (VmsTestCommand) second = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  gint64 interrupted;

  first
      = run_start (fixture, source, "--sink", fixture->sink_uri, "--job", "j5",
                   "--replica-prefix", "t5", "--disk", "vd1", "--max-bandwidth",
                   "4M", "--checkpoint-bytes", "4M", "--rounds", "0", NULL);
  while (last_progress (first, "vd1", "background") < 6 * MiB)
    if (run_pump (first, 100))
      fail_msg ("vmshift ended early: %s", first->out->str);
  kill (first->pid, SIGINT);
  interrupted = g_get_monotonic_time ();
  assert_int_equal (run_wait (first), 4);
  assert_true (g_get_monotonic_time () - interrupted < 5 * G_USEC_PER_SEC);
  assert_non_null (strstr (first->out->str, "--resume j5"));
  /* Everything acknowledged before the stop was flushed and recorded. */
  assert_true (json_object_get_int_member (
                   job_disk (fixture, "j5", "vd1", parser), "watermark")
               >= 6 * MiB);

  pause_guest (fixture);
  second = run_start (fixture, "--resume", "j5", "--rounds", "1", NULL);
  run_expect_success (second);
  assert_identical (fixture->vm->disk_paths[1], "raw", vd1);
}

/* A unix socket that takes connections (the kernel's backlog) and never
 * says a word: a sink that hangs, or not a sink at all.  Caller closes
 * the fd and frees *path. */
static int
listen_silently (Fixture *fixture, char **path)
{
  struct sockaddr_un address = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  *path = g_build_filename (fixture->state_dir, "silent.sock", NULL);
  assert_true (fd >= 0);
  assert_true (strlen (*path) < sizeof address.sun_path);
  strcpy (address.sun_path, *path);
  assert_int_equal (bind (fd, (struct sockaddr *)&address, sizeof address), 0);
  assert_int_equal (listen (fd, 16), 0);
  return fd;
}

/* Wait until a client connects to the listening fd (left pending). */
static void
wait_for_client (int fd, Run *run)
{
  struct pollfd pending = { .fd = fd, .events = POLLIN };

  for (guint i = 0; i < 600 && poll (&pending, 1, 100) == 0; i++)
    if (run_pump (run, 0))
      {
        g_autofree char *err = run_stderr (run);

        fail_msg ("vmshift ended before connecting: %s", err);
      }
  assert_true (pending.revents & POLLIN);
}

/* A sink that accepts and never speaks NBD: --io-timeout bounds the
 * handshake too, and Ctrl-C in it stops at once with the job saved. */
static void
test_silent_sink (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *source = g_strdup_printf ("qmp:%s", fixture->vm->qmp2_path);
  g_autofree char *path = NULL;
  int fd = listen_silently (fixture, &path);
  g_autofree char *uri = g_strdup_printf ("nbd+unix:///?socket=%s", path);
  g_autoptr (VmsTestCommand) timed = NULL;
  g_autoptr (VmsTestCommand) interrupted = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  gint64 started = g_get_monotonic_time ();
  g_autofree char *err = NULL;

  timed = run_start (fixture, source, "--sink", uri, "--job", "silent1",
                     "--disk", "vd1", "--io-timeout", "3", NULL);
  assert_int_equal (run_wait (timed), 3);
  assert_true (g_get_monotonic_time () - started < 15 * G_USEC_PER_SEC);
  err = run_stderr (timed);
  if (!strstr (err, "no NBD answer within 3000 ms"))
    fail_msg ("no timeout named: %s", err);
  g_free (err);

  /* The default timeout is a minute: Ctrl-C must not wait for it. */
  interrupted = run_start (fixture, source, "--sink", uri, "--job", "silent2",
                           "--disk", "vd1", NULL);
  wait_for_client (fd, interrupted);
  g_usleep (500 * 1000);
  started = g_get_monotonic_time ();
  kill (interrupted->pid, SIGINT);
  assert_int_equal (run_wait (interrupted), 4);
  assert_true (g_get_monotonic_time () - started < 5 * G_USEC_PER_SEC);
  err = run_stderr (interrupted);
  if (!strstr (err, "stopped on request") || !strstr (err, "--resume silent2"))
    fail_msg ("not stopped with the state saved: %s", err);
  assert_non_null (job_disk (fixture, "silent2", "vd1", parser));
  close (fd);
}

/* One NBD server per QEMU: a new job on a VM whose sync was killed -9
 * stops the server that run left (it is its job's, and nobody runs that
 * job) instead of taking it for someone else's. */
static void
test_new_job_after_kill9 (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *source = g_strdup_printf ("qmp:%s", fixture->vm->qmp2_path);
  g_autofree char *vd1 = replica_path (fixture, "t9b-vd1");
  g_autoptr (VmsTestCommand) first = NULL;
  g_autoptr (VmsTestCommand) second = NULL;

  first = run_start (fixture, source, "--sink", fixture->sink_uri, "--job",
                     "j9a", "--replica-prefix", "t9a", "--disk", "vd1",
                     "--max-bandwidth", "2M", "--rounds", "0", NULL);
  while (last_progress (first, "vd1", "background") < 2 * MiB)
    if (run_pump (first, 100))
      fail_msg ("vmshift ended early: %s", first->out->str);

  kill (first->pid, SIGKILL);
  run_wait (first);
  second = run_start (fixture, source, "--sink", fixture->sink_uri, "--job",
                      "j9b", "--replica-prefix", "t9b", "--disk", "vd1",
                      "--rounds", "0", NULL);
  run_expect_success (second);
  assert_non_null (
      strstr (second->out->str, "the killed vmshift of job j9a left running"));
  pause_guest (fixture);
  {
    g_autoptr (VmsTestCommand) last
        = run_start (fixture, "--resume", "j9b", "--rounds", "1", NULL);

    run_expect_success (last);
  }
  assert_identical (fixture->vm->disk_paths[1], "raw", vd1);
}

/* How many bitmaps of job id disk vd0 holds in QEMU now. */
static guint
job_bitmaps_in_qemu (Fixture *fixture, const char *id)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) disks = vms_disk_discover (fixture->vm->qmp, &error);
  g_autofree char *prefix = g_strdup_printf ("vmshift-%s-", id);
  g_autoptr (GPtrArray) bitmaps = NULL;
  VmsDisk *vd0;
  guint count = 0;

  vms_assert_ok (disks, error);
  vd0 = vms_disk_find (disks, "vd0", &error);
  vms_assert_ok (vd0, error);
  bitmaps = vms_bitmap_list (fixture->vm->qmp, vd0->node_name, &error);
  vms_assert_ok (bitmaps, error);
  for (guint i = 0; i < bitmaps->len; i++)
    if (g_str_has_prefix (((VmsBitmapInfo *)bitmaps->pdata[i])->name, prefix))
      count++;
  return count;
}

static void
run_job_command (Fixture *fixture, VmsTestRun *run, const char *verb,
                 const char *arg1, const char *arg2)
{
  g_autofree char *state_arg
      = g_strdup_printf ("--state-dir=%s", fixture->state_dir);

  vms_test_run_capture (run, NULL, NULL, vmshift, "job", verb, state_arg, arg1,
                        arg2, NULL);
}

/* Every sync job leaves a recording bitmap (persistent in a qcow2):
 * vmshift job list shows the jobs with it, and job drop removes one
 * job's bitmaps and state, not another's; a VM that is gone refuses the
 * drop unless --force. */
static void
test_job_list_and_drop (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *source = g_strdup_printf ("qmp:%s", fixture->vm->qmp2_path);
  g_autofree char *jd1_file
      = g_build_filename (fixture->state_dir, "jd1.json", NULL);
  g_autofree char *jd2_file
      = g_build_filename (fixture->state_dir, "jd2.json", NULL);
  const char *const ids[] = { "jd1", "jd2" };

  for (guint i = 0; i < G_N_ELEMENTS (ids); i++)
    {
      g_autoptr (VmsTestCommand) run = run_start (
          fixture, source, "--sink", fixture->sink_uri, "--job", ids[i],
          "--replica-prefix", ids[i], "--disk", "vd0", "--rounds", "0", NULL);

      run_expect_success (run);
      assert_int_equal (job_bitmaps_in_qemu (fixture, ids[i]), 1);
      /* The second job is told of the first's bitmap. */
      if (i == 1
          && !strstr (run->out->str, "vd0 holds 1 bitmap of other jobs (jd1)"))
        fail_msg ("no warning of jd1's bitmap: %s", run->out->str);
    }
  {
    g_auto (VmsTestRun) list = { 0 };
    g_autoptr (JsonParser) parser = json_parser_new ();
    JsonArray *jobs;

    run_job_command (fixture, &list, "list", "--json", NULL);
    assert_int_equal (list.status, 0);
    assert_true (json_parser_load_from_data (parser, list.out, -1, NULL));
    jobs = json_node_get_array (json_parser_get_root (parser));
    assert_int_equal (json_array_get_length (jobs), 2);
    assert_string_equal (json_object_get_string_member (
                             json_array_get_object_element (jobs, 0), "id"),
                         "jd1");
    assert_string_equal (
        json_array_get_string_element (
            json_object_get_array_member (
                json_array_get_object_element (jobs, 0), "bitmaps"),
            0),
        "vd0:vmshift-jd1-1");
  }
  {
    g_auto (VmsTestRun) drop = { 0 };

    run_job_command (fixture, &drop, "drop", "jd1", NULL);
    if (drop.status != 0)
      fail_msg ("job drop jd1 exited %d: %s", drop.status, drop.err);
    assert_non_null (strstr (drop.out, "1 bitmap removed"));
  }
  assert_int_equal (job_bitmaps_in_qemu (fixture, "jd1"), 0);
  assert_int_equal (job_bitmaps_in_qemu (fixture, "jd2"), 1);
  assert_false (g_file_test (jd1_file, G_FILE_TEST_EXISTS));
  assert_true (g_file_test (jd2_file, G_FILE_TEST_EXISTS));

  /* The VM is gone: its bitmaps cannot be removed. */
  vms_test_vm_kill (fixture->vm);
  {
    g_auto (VmsTestRun) refused = { 0 };
    g_auto (VmsTestRun) forced = { 0 };

    run_job_command (fixture, &refused, "drop", "jd2", NULL);
    assert_int_equal (refused.status, 3);
    assert_non_null (strstr (refused.err, "--force"));
    assert_true (g_file_test (jd2_file, G_FILE_TEST_EXISTS));
    run_job_command (fixture, &forced, "drop", "jd2", "--force");
    if (forced.status != 0)
      fail_msg ("job drop --force exited %d: %s", forced.status, forced.err);
    assert_false (g_file_test (jd2_file, G_FILE_TEST_EXISTS));
  }
}

/* The sink creates a replica sparse: a copy to a new one sends no zero
 * request for the source's holes or for zeroes it reads, and progress
 * counts only the data as work.  A new job onto a replica that holds data
 * where the source is zero still zeroes it. */
static void
test_new_replica_gets_no_zeroes (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *source = g_strdup_printf ("qmp:%s", fixture->vm->qmp2_path);
  g_autofree char *vd1 = replica_path (fixture, "t8-vd1");
  g_autoptr (VmsTestCommand) fresh = NULL;
  g_autoptr (VmsTestCommand) again = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autofree char *garbage = g_malloc (MiB);
  JsonObject *event;
  int fd;

  /* 2 MiB of data, 4 MiB of written zeroes, 26 MiB of holes. */
  qemu_io (fixture, "vd1", "write -P 0x42 1M 2M");
  qemu_io (fixture, "vd1", "write -P 0 8M 4M");
  pause_guest (fixture);
  fresh = run_start (fixture, source, "--sink", fixture->sink_uri, "--job",
                     "j8", "--replica-prefix", "t8", "--disk", "vd1",
                     "--rounds", "0", NULL);
  run_expect_success (fresh);
  event = vms_test_command_find_event (fresh, "disk-synced", parser);
  assert_non_null (event);
  assert_int_equal (json_object_get_int_member (event, "bytes-zeroed"), 0);
  assert_in_range (json_object_get_int_member (event, "bytes-written"), 2 * MiB,
                   2 * MiB + 64 * 1024);
  event = vms_test_command_find_event (fresh, "progress", parser);
  assert_non_null (event);
  /* The work is the mapped data, not the 32 MiB disk. */
  assert_in_range (json_object_get_int_member (event, "total"), 6 * MiB,
                   6 * MiB + 64 * 1024);
  assert_int_equal (json_object_get_int_member (event, "done"),
                    json_object_get_int_member (event, "total"));
  assert_non_null (json_object_get_string_member (event, "message"));
  assert_identical (fixture->vm->disk_paths[1], "raw", vd1);

  /* Data in the replica where the source has a hole. */
  memset (garbage, 0x5a, MiB);
  fd = open (vd1, O_WRONLY);
  assert_true (fd >= 0);
  assert_int_equal (pwrite (fd, garbage, MiB, 20 * MiB), MiB);
  close (fd);
  again = run_start (fixture, source, "--sink", fixture->sink_uri, "--job",
                     "j8b", "--replica-prefix", "t8", "--disk", "vd1",
                     "--rounds", "0", NULL);
  run_expect_success (again);
  event = vms_test_command_find_event (again, "disk-synced", parser);
  assert_non_null (event);
  assert_true (json_object_get_int_member (event, "bytes-zeroed") >= MiB);
  assert_identical (fixture->vm->disk_paths[1], "raw", vd1);
}

/* The durable watermark of a disk in a job's file. */
static guint64
job_watermark (Fixture *fixture, const char *job, const char *disk)
{
  g_autoptr (JsonParser) parser = json_parser_new ();

  return json_object_get_int_member (job_disk (fixture, job, disk, parser),
                                     "watermark");
}

/* A VM's three disks copy at once, under one bandwidth cap: vd1's and
 * vd2's background copies are both under way before either ends.  kill -9
 * in the middle leaves each disk's own durable mark in the job; the rerun
 * resumes each disk there, and after rounds and a last round on the
 * paused guest the three replicas equal the disks. */
static void
test_three_disks_at_once_resume_after_kill9 (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *source = g_strdup_printf ("qmp:%s", fixture->vm->qmp2_path);
  g_autoptr (VmsTestCommand) first = NULL;
  g_autoptr (VmsTestCommand) second = NULL;
  g_autoptr (VmsTestCommand) last = NULL;
  g_autofree char *replicas[3]
      = { replica_path (fixture, "par-vd0"), replica_path (fixture, "par-vd1"),
          replica_path (fixture, "par-vd2") };
  const char *formats[3] = { "qcow2", "raw", "qcow2" };
  gint64 deadline = g_get_monotonic_time () + 120 * G_USEC_PER_SEC;
  guint64 vd1 = 0, vd2 = 0, durable1, durable2;

  qemu_io (fixture, "vd2", "write -P 0x33 0 24M");
  qemu_io (fixture, "vd2", "write -z 4M 1M");
  first = run_start (fixture, source, "--sink", fixture->sink_uri, "--job",
                     "par", "--replica-prefix", "par", "--max-bandwidth", "8M",
                     "--checkpoint-bytes", "2M", "--rounds", "1", NULL);
  /* Copied one after the other, vd1 (32 MiB) would end before vd2 began. */
  while (vd1 < 6 * MiB || vd2 < 6 * MiB)
    {
      if (run_pump (first, 100))
        fail_msg ("vmshift ended before it could be killed: %s",
                  first->out->str);
      if (g_get_monotonic_time () > deadline)
        fail_msg ("vd1 and vd2 are not copied at once: %s", first->out->str);
      vd1 = last_progress (first, "vd1", "background");
      vd2 = last_progress (first, "vd2", "background");
      if (vd1 >= 32 * MiB || vd2 >= 24 * MiB)
        fail_msg ("one disk's copy ended before the other's reached 6 MiB "
                  "(vd1 %" G_GUINT64_FORMAT ", vd2 %" G_GUINT64_FORMAT "): %s",
                  vd1, vd2, first->out->str);
    }
  kill (first->pid, SIGKILL);
  run_wait (first);

  durable1 = job_watermark (fixture, "par", "vd1");
  durable2 = job_watermark (fixture, "par", "vd2");
  assert_true (durable1 >= 2 * MiB && durable1 < 32 * MiB);
  assert_true (durable2 >= 2 * MiB && durable2 < 32 * MiB);

  second = run_start (fixture, "--resume", "par", "--rounds", "1", NULL);
  run_expect_success (second);
  for (int i = 0; i < 2; i++)
    {
      g_autofree char *resumed_at = g_strdup_printf (
          "vd%d: resuming the background copy at %" G_GUINT64_FORMAT " of",
          i + 1, i ? durable2 : durable1);

      if (!strstr (second->out->str, resumed_at))
        fail_msg ("no '%s': %s", resumed_at, second->out->str);
    }

  pause_guest (fixture);
  last = run_start (fixture, "--resume", "par", "--rounds", "1", NULL);
  run_expect_success (last);
  for (int i = 0; i < 3; i++)
    assert_identical (fixture->vm->disk_paths[i], formats[i], replicas[i]);
}

/* One disk's copy fails (the sink's file system fills up) while the three
 * copy at once: the failure stops the others, the error is that disk's
 * (not another's stop), and every disk keeps what it checkpointed. */
static void
test_three_disks_one_fails (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *source = g_strdup_printf ("qmp:%s", fixture->vm->qmp2_path);
  g_autofree char *mount_dir = NULL;
  g_autofree char *sink_uri = NULL;
  g_autofree char *err = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsTestSink) small = NULL;
  g_autoptr (VmsTestCommand) full = NULL;

  if (!vms_test_is_root ())
    vms_test_skip ("needs root to mount a small tmpfs");
  qemu_io (fixture, "vd2", "write -P 0x33 0 24M");
  mount_dir = vms_test_make_tmpdir ("vms-sync-full3");
  if (mount ("tmpfs", mount_dir, "tmpfs", 0, "size=24m") < 0)
    {
      int saved = errno;

      vms_test_rmtree (mount_dir);
      vms_test_skip ("cannot mount a small tmpfs (%s)", g_strerror (saved));
    }
  small = vms_test_sink_start (mount_dir, NULL, &error);
  if (small)
    {
      sink_uri = g_strdup_printf ("nbd+unix:///?socket=%s", small->socket_path);
      full = run_start (fixture, source, "--sink", sink_uri, "--job", "full3",
                        "--checkpoint-bytes", "2M", "--rounds", "0", NULL);
      run_wait (full);
    }
  vms_test_sink_free (g_steal_pointer (&small));
  umount (mount_dir);
  vms_test_rmtree (mount_dir);
  vms_assert_ok (full, error);
  assert_int_equal (full->status, 1);
  if (!strstr (full->out->str, "No space left on device")
      || strstr (full->out->str, "stopped at"))
    fail_msg ("not the failing disk's error: %s", full->out->str);
  assert_non_null (strstr (full->out->str, "--resume full3"));
  /* What was copied before the failure was kept (a progress event per
   * disk is not sure: 24 MiB fill in less than the progress interval on
   * a quiet machine). */
  assert_true (job_watermark (fixture, "full3", "vd1")
                   + job_watermark (fixture, "full3", "vd2")
               > 0);
}

/* A replica of another size, a full sink and a job of another VM are
 * refused with messages that say so. */
static void
test_refusals (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *source = g_strdup_printf ("qmp:%s", fixture->vm->qmp2_path);
  g_autofree char *file
      = g_build_filename (fixture->state_dir, "j6.json", NULL);
  g_autofree char *contents = NULL;
  g_autofree char *forged = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsTestCommand) mismatch = NULL;
  g_autoptr (VmsTestCommand) other_vm = NULL;
  g_autoptr (GRegex) regex
      = g_regex_new ("\"vm-uuid\" : \"[^\"]*\"", 0, 0, NULL);

  {
    g_autoptr (nbd_handle) nbd = vms_test_sink_connect (
        fixture->sink, "t6-vd1@create=1048576", &error);

    vms_assert_ok (nbd, error);
  }
  mismatch = run_start (fixture, source, "--sink", fixture->sink_uri, "--job",
                        "j6", "--replica-prefix", "t6", "--disk", "vd1", NULL);
  assert_int_equal (run_wait (mismatch), 3);
  assert_non_null (strstr (mismatch->out->str, "exists with another size"));

  /* The job file of j6 now exists; pretend it came from another VM. */
  assert_true (g_file_get_contents (file, &contents, NULL, NULL));
  forged = g_regex_replace_literal (
      regex, contents, -1, 0,
      "\"vm-uuid\" : \"11111111-2222-3333-4444-555555555555\"", 0, NULL);
  assert_true (g_file_set_contents (file, forged, -1, NULL));
  other_vm = run_start (fixture, "--resume", "j6", NULL);
  assert_int_equal (run_wait (other_vm), 1);
  assert_non_null (strstr (other_vm->out->str, "belongs to VM"));
}

/* A sink that runs out of space: the error says so, and what was
 * checkpointed before stays valid for a resume elsewhere. */
static void
test_full_sink (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *source = g_strdup_printf ("qmp:%s", fixture->vm->qmp2_path);
  g_autofree char *mount_dir = NULL;
  g_autofree char *sink_uri = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsTestSink) small = NULL;
  g_autoptr (VmsTestCommand) full = NULL;

  if (!vms_test_is_root ())
    vms_test_skip ("needs root to mount a small tmpfs");
  mount_dir = vms_test_make_tmpdir ("vms-sync-full");
  if (mount ("tmpfs", mount_dir, "tmpfs", 0, "size=8m") < 0)
    {
      int saved = errno;

      vms_test_rmtree (mount_dir);
      vms_test_skip ("cannot mount a small tmpfs (%s)", g_strerror (saved));
    }
  small = vms_test_sink_start (mount_dir, NULL, &error);
  if (small)
    {
      sink_uri = g_strdup_printf ("nbd+unix:///?socket=%s", small->socket_path);
      full = run_start (fixture, source, "--sink", sink_uri, "--job", "j7",
                        "--disk", "vd1", "--rounds", "0", NULL);
      run_wait (full);
    }
  vms_test_sink_free (g_steal_pointer (&small));
  umount (mount_dir);
  vms_test_rmtree (mount_dir);
  vms_assert_ok (full, error);
  assert_int_equal (full->status, 1);
  assert_non_null (strstr (full->out->str, "No space left on device"));
  assert_non_null (strstr (full->out->str, "--resume j7"));
}

/* Mistakes a user makes get a clear message and no half work. */
static void
test_sync_errors (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *source = g_strdup_printf ("qmp:%s", fixture->vm->qmp2_path);
  g_autofree char *missing_sink = g_strdup_printf (
      "nbd+unix:///?socket=%s/nowhere.sock", fixture->sink->dir);
  g_autoptr (VmsTestCommand) no_socket = NULL;
  g_autoptr (VmsTestCommand) no_disk = NULL;
  g_autoptr (VmsTestCommand) no_sink = NULL;
  g_autoptr (VmsTestCommand) no_job = NULL;
  g_autoptr (VmsTestCommand) usage = NULL;
  g_autofree char *err = NULL;

  no_socket = run_start (fixture, "qmp:/nonexistent/qmp.sock", "--sink",
                         fixture->sink_uri, NULL);
  assert_int_equal (run_wait (no_socket), 3);
  assert_non_null (strstr (no_socket->out->str, "cannot connect to QMP"));

  no_disk = run_start (fixture, source, "--sink", fixture->sink_uri, "--disk",
                       "vd9", NULL);
  assert_int_equal (run_wait (no_disk), 1);
  assert_non_null (strstr (no_disk->out->str, "vd9"));

  no_sink = run_start (fixture, source, "--sink", missing_sink, "--job",
                       "nosink", NULL);
  assert_int_not_equal (run_wait (no_sink), 0);
  assert_non_null (strstr (no_sink->out->str, "sink"));

  no_job = run_start (fixture, "--resume", "never-was", NULL);
  assert_int_equal (run_wait (no_job), 1);
  err = run_stderr (no_job);
  assert_non_null (strstr (err, "no job 'never-was'"));

  usage = run_start (fixture, source, NULL);
  assert_int_equal (run_wait (usage), 2);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_sync_rounds_then_final_round, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_resume_after_kill9_of_vmshift,
                                     setup_data, teardown),
    cmocka_unit_test_setup_teardown (test_resume_after_sink_killed, setup_data,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_granularity_follows_4k_writes,
                                     setup_random_4k, teardown),
    cmocka_unit_test_setup_teardown (
        test_coarse_bitmap_rounds_send_what_changed, setup_random_4k, teardown),
    cmocka_unit_test_setup_teardown (test_sync_errors, setup, teardown),
    cmocka_unit_test_setup_teardown (test_interrupt_saves_state, setup_data,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_refusals, setup, teardown),
    cmocka_unit_test_setup_teardown (test_silent_sink, setup, teardown),
    cmocka_unit_test_setup_teardown (test_job_list_and_drop, setup, teardown),
    cmocka_unit_test_setup_teardown (test_new_job_after_kill9, setup_data,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_relative_paths_resume_elsewhere,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_new_replica_gets_no_zeroes, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_full_sink, setup_data, teardown),
    cmocka_unit_test_setup_teardown (test_resume_after_link_cut, setup_hosts,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_reconnect_after_tcp_resets,
                                     setup_hosts, teardown),
    cmocka_unit_test_setup_teardown (test_reconnect_after_sink_restart,
                                     setup_data, teardown),
    cmocka_unit_test_setup_teardown (test_resume_after_source_restart,
                                     setup_data, teardown),
    cmocka_unit_test_setup_teardown (test_resume_after_qcow2_source_restarts,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_compare_always_sends_only_changes,
                                     setup_data, teardown),
    cmocka_unit_test_setup_teardown (test_seed_then_delta, setup_data,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_seed_then_source_restart, setup_data,
                                     teardown),
    cmocka_unit_test_setup_teardown (
        test_three_disks_at_once_resume_after_kill9, setup_three, teardown),
    cmocka_unit_test_setup_teardown (test_three_disks_one_fails, setup_three,
                                     teardown),
  };

  vmshift = vms_test_built_program ("VMS_VMSHIFT");
  vms_test_require_program ("nbdkit", "nbdkit");
  vms_test_require_program ("qemu-img", "qemu-utils");
  vms_test_guest_prepare ();
  /* VMS_TEST_FILTER=test_relative* runs one test when debugging. */
  return vms_test_run_group ("sync", tests, G_N_ELEMENTS (tests), NULL, NULL);
}
