/* Integration tests: vmshift migrate --connect between two real libvirt
 * hosts (each a libvirtd in namespaces of its own, storage not shared), a
 * TCG domain with two disks and a writing guest, the sink and the hook on
 * the destination host.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-test.h"
#include "vms-test-command.h"
#include "vms-test-libvirt.h"
#include "vms-test-netns.h"
#include "vms-test-sink.h"
#include "vms-test-x509.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <signal.h>

#define MiB (1024 * 1024)
#define VDA_SIZE (48 * MiB)
#define VDB_SIZE (32 * MiB)

static const char *vmshift;
static const char *hook;

typedef struct
{
  VmsTestHosts *hosts;
  VmsTestLibvirtHost *source;      /* host A */
  VmsTestLibvirtHost *destination; /* host B, with the hook */
  VmsTestSink *sink;               /* in host B's namespace, TLS-PSK */
  char *sink_uri;
  char *state_dir;
  char *hook_config;  /* host B's hook configuration file */
  char *certificates; /* both hosts' migrate_tls_x509_cert_dir, or NULL
                         (no openssl) */
} Fixture;

/* The hook on B reads its configuration at every migration. */
static void
configure_hook (Fixture *fixture, const char *replica_dir)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *text = g_strdup_printf ("[replicas]\ndir=%s\n", replica_dir);

  vms_assert_ok (g_file_set_contents (fixture->hook_config, text, -1, &error),
                 error);
}

/* Certificates for memory over libvirt's TLS (--tls), naming both hosts
 * by address and name; NULL without openssl (the test skips). */
static char *
make_certificates (GError **error)
{
  const char *const names[]
      = { "IP:" VMS_TEST_HOST_A_ADDRESS, "IP:" VMS_TEST_HOST_B_ADDRESS,
          "DNS:vms-host-a", "DNS:vms-host-b", NULL };
  g_autofree char *openssl = g_find_program_in_path ("openssl");

  return openssl ? vms_test_x509_make (names, error) : g_strdup ("");
}

static int
group_setup (void **state)
{
  Fixture *fixture = g_new0 (Fixture, 1);
  g_autoptr (GError) error = NULL;
  g_autofree char *config = NULL;
  const char *tls_args[4] = { NULL };

  *state = fixture;
  fixture->certificates = make_certificates (&error);
  if (!fixture->certificates)
    {
      print_error ("cannot make certificates: %s\n", error->message);
      return -1;
    }
  if (!*fixture->certificates)
    g_clear_pointer (&fixture->certificates, g_free);
  else
    {
      /* libvirt's migration TLS, and its QMP commands in libvirtd.log for
       * the test to see that it used it. */
      tls_args[0] = "--migrate-tls";
      tls_args[1] = fixture->certificates;
      tls_args[2] = "--log-monitor";
    }
  fixture->hosts = vms_test_hosts_new (&error);
  if (!fixture->hosts)
    {
      print_error ("cannot make the hosts: %s\n", error->message);
      return -1;
    }
  fixture->source = vms_test_libvirt_host_start_with (fixture->hosts, 0, NULL,
                                                      NULL, tls_args, &error);
  if (!fixture->source)
    {
      print_error ("cannot start libvirt host A: %s\n", error->message);
      return -1;
    }
  fixture->sink = vms_test_sink_start_tcp (
      fixture->hosts->namespace[1], fixture -> hosts -> address[1], &error);
  if (!fixture->sink)
    {
      print_error ("cannot start the sink: %s\n", error->message);
      return -1;
    }
  config = g_strdup_printf ("[replicas]\ndir=%s\n", fixture->sink->replica_dir);
  fixture->destination = vms_test_libvirt_host_start_with (
      fixture->hosts, 1, hook, config, tls_args, &error);
  if (!fixture->destination)
    {
      print_error ("cannot start libvirt host B: %s\n", error->message);
      return -1;
    }
  fixture->hook_config
      = g_build_filename (fixture->destination->dir, "etc", "libvirt", "hooks",
                          "vmshift.conf", NULL);
  fixture->sink_uri = vms_test_sink_tcp_uri (fixture->sink, "");
  fixture->state_dir = g_build_filename (fixture->sink->dir, "state", NULL);
  g_mkdir (fixture->state_dir, 0700);
  return 0;
}

static int
group_teardown (void **state)
{
  Fixture *fixture = *state;

  vms_test_libvirt_host_free (fixture->destination);
  vms_test_libvirt_host_free (fixture->source);
  vms_test_sink_free (fixture->sink);
  vms_test_hosts_free (fixture->hosts);
  g_free (fixture->sink_uri);
  g_free (fixture->state_dir);
  g_free (fixture->hook_config);
  if (fixture->certificates)
    vms_test_rmtree (fixture->certificates);
  g_free (fixture->certificates);
  g_free (fixture);
  return 0;
}

/* A guest writing 1 MiB/s to vda (qcow2) and holding data on vdb (raw). */
static void
start_guest (Fixture *fixture, const char *name)
{
  g_autoptr (GError) error = NULL;
  VmsTestLibvirtGuest guest = {
    .name = name,
    .workload = "writer+dirtier",
    .extra_cmdline = "vms.write_rate_kib=1024 vms.write_span_mib=24",
    .disks = { { "qcow2", VDA_SIZE, "vda" }, { "raw", VDB_SIZE, "vdb" } },
  };
  g_autofree char *vdb = NULL;
  g_autofree char *fill = NULL;

  vms_assert_ok (vms_test_libvirt_guest_start (fixture->source, &guest, &error),
                 error);
  /* Data on vdb for the background copy to carry. */
  fill = g_strdup_printf ("qemu-io -d /machine/peripheral/virtio-disk1/"
                          "virtio-backend \"write -P 0x42 4M 16M\"");
  vms_assert_ok (vms_test_libvirt_virsh (fixture->source, NULL, &error,
                                         "qemu-monitor-command", name, "--hmp",
                                         fill, NULL),
                 error);
}

static VmsTestCommand *
vmshift_start (Fixture *fixture, ...)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  va_list args;

  g_ptr_array_add (argv, g_strdup (vmshift));
  g_ptr_array_add (argv, g_strdup ("migrate"));
  va_start (args, fixture);
  for (const char *arg; (arg = va_arg (args, const char *));)
    g_ptr_array_add (argv, g_strdup (arg));
  va_end (args);
  g_ptr_array_add (argv,
                   g_strdup_printf ("--state-dir=%s", fixture->state_dir));
  g_ptr_array_add (argv, g_strdup ("--json"));
  g_ptr_array_add (argv, NULL);
  /* vmshift runs on host A: the sink is reachable from there. */
  return vms_test_command_start (fixture->hosts->namespace[0],
                                 (const char *const *)argv -> pdata,
                                 fixture -> state_dir);
}

static VmsTestCommand *
migrate_domain (Fixture *fixture, const char *domain, const char *job)
{
  return vmshift_start (fixture, "--connect", fixture->source->uri, domain,
                        fixture->destination->uri, "--sink", fixture->sink_uri,
                        "--job", job, "--migrateuri", "tcp://10.231.0.2",
                        "--persistent", "--undefinesource", "--suspend", NULL);
}

/* The destination holds the domain paused (--suspend), so its disks are
 * still exactly what the source left at the switchover. */
static void
assert_disks_identical (Fixture *fixture, const char *domain)
{
  const struct
  {
    const char *target, *format, *suffix;
  } disks[] = { { "vda", "qcow2", "qcow2" }, { "vdb", "raw", "raw" } };

  for (guint i = 0; i < G_N_ELEMENTS (disks); i++)
    {
      g_autofree char *file = g_strdup_printf (
          "%s-%s.%s", domain, disks[i].target, disks[i].suffix);
      g_autofree char *image
          = vms_test_libvirt_guest_image (fixture->source, file);
      g_autofree char *name
          = g_strdup_printf ("%s-%s", domain, disks[i].target);
      g_autofree char *replica
          = vms_test_sink_replica_path (fixture->sink, name);

      vms_test_assert_identical (image, disks[i].format, replica);
    }
}

/* Resumed at the destination, the guest goes on from where it was. */
static void
assert_runs_at_destination (Fixture *fixture, const char *domain)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *source_log
      = vms_test_libvirt_serial_path (fixture->source, domain);
  guint64 beat = vms_test_libvirt_last_heartbeat (source_log);
  g_autofree char *needle
      = g_strdup_printf ("vms-heartbeat %" G_GUINT64_FORMAT, beat + 2);

  vms_assert_ok (vms_test_libvirt_virsh (fixture->destination, NULL, &error,
                                         "resume", domain, NULL),
                 error);
  if (!vms_test_libvirt_wait_serial (fixture->destination, domain, needle,
                                     60000, &error))
    fail_msg ("no heartbeat at the destination after %" G_GUINT64_FORMAT ": %s",
              beat, error->message);
}

static void
assert_domstate (VmsTestLibvirtHost *host, const char *domain,
                 const char *expected)
{
  g_autofree char *state = vms_test_libvirt_domstate (host, domain);

  if (g_strcmp0 (state, expected) != 0)
    fail_msg ("domain %s on %s is %s, not %s", domain, host->hostname,
              state ? state : "unknown", expected ? expected : "unknown");
}

static void
assert_contains (const char *text, const char *needle)
{
  if (!strstr (text, needle))
    fail_msg ("'%s' not in: %s", needle, text);
}

/* Bytes in host's libvirtd.log so far: what a test's run adds starts
 * there. */
static gsize
libvirtd_log_size (VmsTestLibvirtHost *host)
{
  g_autofree char *path
      = g_build_filename (host->dir, "log", "libvirt", "libvirtd.log", NULL);
  g_autofree char *text = NULL;
  gsize length = 0;

  if (!g_file_get_contents (path, &text, &length, NULL))
    return 0;
  return length;
}

/* What host's libvirtd logged from offset on (caller frees). */
static char *
libvirtd_log_since (VmsTestLibvirtHost *host, gsize offset)
{
  g_autofree char *path
      = g_build_filename (host->dir, "log", "libvirt", "libvirtd.log", NULL);
  g_autofree char *text = NULL;
  gsize length = 0;
  g_autoptr (GError) error = NULL;

  vms_assert_ok (g_file_get_contents (path, &text, &length, &error), error);
  return g_strdup (text + MIN (offset, length));
}

/* libvirt gave host's QEMU X.509 credentials for the migration (endpoint
 * client on the source, server on the destination) and named them in
 * the migration parameter tls-creds: QEMU then speaks TLS on the memory
 * stream or fails the migration. */
static void
assert_libvirt_used_tls (VmsTestLibvirtHost *host, gsize offset,
                         const char *endpoint)
{
  g_autofree char *log = libvirtd_log_since (host, offset);
  g_autofree char *object = g_strdup_printf ("\"endpoint\":\"%s\"", endpoint);
  g_autofree char *pattern
      = g_strdup_printf ("\"qom-type\":\"tls-creds-x509\",\"id\":\"([^\"]+)\"");
  g_autoptr (GRegex) regex = g_regex_new (pattern, 0, 0, NULL);
  g_autoptr (GMatchInfo) match = NULL;
  g_autofree char *id = NULL, *parameter = NULL;

  if (!g_regex_match (regex, log, 0, &match))
    fail_msg ("%s: libvirt added no tls-creds-x509 object", host->hostname);
  id = g_match_info_fetch (match, 1);
  assert_contains (log, object);
  parameter = g_strdup_printf ("\"tls-creds\":\"%s\"", id);
  assert_contains (log, parameter);
}

/* ---- tests ---- */

/* A rolled-back job resumed: it finishes without the background copy
 * again, the domain left the source and waits paused at the destination
 * on replicas equal to the source's disks, and goes on there. */
static void
resume_to_destination (Fixture *fixture, const char *domain, const char *job)
{
  g_autoptr (VmsTestCommand) resumed
      = vmshift_start (fixture, "--resume", job, "--suspend", NULL);

  vms_test_command_expect_success (resumed);
  assert_int_equal (vms_test_command_event_int (resumed, "migrated", NULL,
                                                "disk-background-bytes"),
                    0);
  assert_domstate (fixture->destination, domain, "paused");
  assert_domstate (fixture->source, domain, NULL);
  assert_disks_identical (fixture, domain);
  assert_runs_at_destination (fixture, domain);
  vms_test_libvirt_virsh (fixture->destination, NULL, NULL, "destroy", domain,
                          NULL);
}

/* The job as a vmshift killed just after libvirt's migration returned
 * leaves it: the domain runs at the destination, the job says "memory".
 * --resume must only commit, never try to migrate again. */
static void
resume_after_libvirt_moved_it (Fixture *fixture, const char *job)
{
  g_autofree char *file = g_strconcat (job, ".json", NULL);
  g_autofree char *path = g_build_filename (fixture->state_dir, file, NULL);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsTestCommand) resumed = NULL;
  g_autofree char *err = NULL;
  JsonObject *root, *migration;

  vms_assert_ok (json_parser_load_from_file (parser, path, &error), error);
  root = json_node_get_object (json_parser_get_root (parser));
  json_object_set_string_member (root, "phase", "migrating");
  migration = json_object_get_object_member (root, "migration");
  json_object_set_string_member (migration, "state", "memory");
  json_generator_set_root (generator, json_parser_get_root (parser));
  vms_assert_ok (json_generator_to_file (generator, path, &error), error);

  resumed = vmshift_start (fixture, "--resume", job, NULL);
  vms_test_command_expect_success (resumed);
  err = vms_test_command_stderr (resumed);
  assert_contains (err, "runs at the destination: committing");
  assert_non_null (strstr (resumed->out->str, "\"state\":\"done\""));
  {
    g_autoptr (JsonParser) again = json_parser_new ();

    vms_assert_ok (json_parser_load_from_file (again, path, &error), error);
    assert_string_equal (
        json_object_get_string_member (
            json_node_get_object (json_parser_get_root (again)), "phase"),
        "migrated");
  }
}

/* What a libvirt user gets wrong is said in libvirt's words. */
static void
test_refusals (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) no_domain = NULL;
  g_autoptr (VmsTestCommand) pause = NULL;
  g_autoptr (VmsTestCommand) compressed = NULL;
  g_autofree char *err = NULL;

  no_domain = migrate_domain (fixture, "no-such-domain", "refused");
  assert_int_not_equal (vms_test_command_wait (no_domain), 0);
  err = vms_test_command_stderr (no_domain);
  assert_contains (err, "domain 'no-such-domain' not found");
  g_clear_pointer (&err, g_free);

  pause = vmshift_start (fixture, "--connect", fixture->source->uri, "x",
                         fixture->destination->uri, "--sink", fixture->sink_uri,
                         "--final-sync=pause", NULL);
  assert_int_equal (vms_test_command_wait (pause), 2);
  err = vms_test_command_stderr (pause);
  assert_contains (err, "libvirt drives the switchover");
  g_clear_pointer (&err, g_free);

  compressed = vmshift_start (fixture, "--connect", fixture->source->uri, "x",
                              fixture->destination->uri, "--sink",
                              fixture->sink_uri, "--compress=zstd", NULL);
  assert_int_equal (vms_test_command_wait (compressed), 2);
  err = vms_test_command_stderr (compressed);
  assert_contains (err, "libvirt sets QEMU's migration parameters itself");
}

/* Two disks and a writing guest: the domain runs at the destination on
 * the replicas the hook chose, it is gone from the source (--persistent
 * --undefinesource), and the disks are identical. */
static void
test_migrate (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) run = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *xml = NULL;
  g_autofree char *info = NULL;
  g_autofree char *expected_path = NULL;
  g_autofree char *log = NULL;
  gsize log_offset;

  configure_hook (fixture, fixture->sink->replica_dir);
  start_guest (fixture, "lv1");
  log_offset = libvirtd_log_size (fixture->source);
  run = migrate_domain (fixture, "lv1", "lv1-job");
  vms_test_command_expect_success (run);
  /* Without --tls, memory in clear text: no TLS credentials. */
  log = libvirtd_log_since (fixture->source, log_offset);
  if (fixture->certificates && strstr (log, "tls-creds-x509"))
    fail_msg ("libvirt used TLS without --tls: %s", log);
  assert_non_null (strstr (run->out->str, "\"state\":\"done\""));
  assert_true (vms_test_command_event_int (run, "migrated", NULL,
                                           "disk-background-bytes")
               >= 16 * MiB);
  /* libvirt's own figures of its job. */
  assert_true (vms_test_command_event_int (run, "migrated", NULL, "ram-bytes")
               > 0);
  assert_true (
      vms_test_command_event_int (run, "migrated", NULL, "qemu-downtime-ms")
      >= 0);

  assert_domstate (fixture->destination, "lv1", "paused");
  /* --undefinesource: host A does not know it any more. */
  assert_domstate (fixture->source, "lv1", NULL);
  assert_disks_identical (fixture, "lv1");

  /* vmshift named /var/lib/vmshift/replicas; the hook pointed the disks at
   * its sink's directory, and the persistent definition too. */
  vms_assert_ok (vms_test_libvirt_virsh (fixture->destination, &xml, &error,
                                         "dumpxml", "lv1", "--inactive", NULL),
                 error);
  expected_path = vms_test_sink_replica_path (fixture->sink, "lv1-vda");
  if (!strstr (xml, expected_path))
    fail_msg ("the destination's definition does not use %s: %s", expected_path,
              xml);
  assert_non_null (strstr (xml, "https://vmshift.org/xmlns/libvirt/1"));
  vms_assert_ok (vms_test_libvirt_virsh (fixture->destination, &info, &error,
                                         "dominfo", "lv1", NULL),
                 error);
  assert_non_null (g_regex_match_simple ("Persistent: +yes", info, 0, 0));

  assert_runs_at_destination (fixture, "lv1");
  resume_after_libvirt_moved_it (fixture, "lv1-job");
  vms_test_libvirt_virsh (fixture->destination, NULL, NULL, "destroy", "lv1",
                          NULL);
}

/* The destination refuses (its hook finds no replica) after the disks
 * were copied and the mirror ran: the domain goes on at the source under
 * libvirt, and --resume later finishes without copying the disks again. */
static void
test_refused_then_resume (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) refused = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *source_log = NULL;
  g_autofree char *needle = NULL;
  guint64 beat;

  configure_hook (fixture, "/nonexistent/vmshift-replicas");
  start_guest (fixture, "lv2");
  refused = migrate_domain (fixture, "lv2", "lv2-job");
  assert_int_not_equal (vms_test_command_wait (refused), 0);
  assert_non_null (strstr (refused->out->str, "\"event\":\"rolled-back\""));
  {
    g_autofree char *err = vms_test_command_stderr (refused);

    if (!strstr (err, "lv2-vda"))
      fail_msg ("the hook's refusal is not in vmshift's message: %s", err);
  }
  assert_domstate (fixture->source, "lv2", "running");
  assert_domstate (fixture->destination, "lv2", NULL);
  source_log = vms_test_libvirt_serial_path (fixture->source, "lv2");
  beat = vms_test_libvirt_last_heartbeat (source_log);
  needle = g_strdup_printf ("vms-heartbeat %" G_GUINT64_FORMAT, beat + 2);
  vms_assert_ok (vms_test_libvirt_wait_serial (fixture->source, "lv2", needle,
                                               60000, &error),
                 error);

  configure_hook (fixture, fixture->sink->replica_dir);
  resume_to_destination (fixture, "lv2", "lv2-job");
}

/* vmshift killed (kill -9) during libvirt's migration: libvirt cancels
 * the migration of a client that went away, 'vmshift abort' undoes the
 * rest through libvirt, the domain runs at the source, and --resume
 * finishes the job. */
static void
test_kill9_then_abort (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) first = NULL;
  g_autoptr (VmsTestCommand) abort_run = NULL;
  g_autofree char *state_arg
      = g_strdup_printf ("--state-dir=%s", fixture->state_dir);
  const char *abort_argv[] = { vmshift, "abort", state_arg, "lv4-job", NULL };

  configure_hook (fixture, fixture->sink->replica_dir);
  start_guest (fixture, "lv4");
  /* RAM at 8 MiB/s: libvirt's migration runs for seconds. */
  first = vmshift_start (fixture, "--connect", fixture->source->uri, "lv4",
                         fixture->destination->uri, "--sink", fixture->sink_uri,
                         "--job", "lv4-job", "--migrateuri", "tcp://10.231.0.2",
                         "--bandwidth=8M", "--max-bandwidth=1G", "--persistent",
                         "--undefinesource", NULL);
  vms_test_command_wait_for (first, "\"state\":\"memory\"", 120000);
  g_usleep (G_USEC_PER_SEC);
  kill (first->pid, SIGKILL);
  vms_test_command_wait (first);

  abort_run = vms_test_command_start (fixture->hosts->namespace[0], abort_argv,
                                      fixture -> state_dir);
  if (vms_test_command_wait (abort_run) != 0)
    {
      g_autofree char *err = vms_test_command_stderr (abort_run);

      fail_msg ("vmshift abort failed: %s", err);
    }
  {
    g_autofree char *err = vms_test_command_stderr (abort_run);

    assert_contains (err, "is gone; rolling back");
  }
  assert_domstate (fixture->source, "lv4", "running");
  assert_domstate (fixture->destination, "lv4", NULL);
  {
    g_autofree char *jobs = NULL;
    g_autoptr (GError) error = NULL;

    /* No migration left running at the source. */
    vms_assert_ok (vms_test_libvirt_virsh (fixture->source, &jobs, &error,
                                           "domjobinfo", "lv4", NULL),
                   error);
    assert_contains (jobs, "None");
  }

  resume_to_destination (fixture, "lv4", "lv4-job");
}

/* libvirt's migration ports on the hosts (tests/libvirt-host's
 * qemu.conf): the destination QEMU takes the memory stream on one. */
#define MIGRATION_PORT_MIN 49152
#define MIGRATION_PORT_MAX 49215

/* The local port of an established connection on libvirt's migration
 * ports at host B (the memory stream), waited for; 0 if none came. */
static guint
memory_stream_port (Fixture *fixture, guint timeout_ms)
{
  const char *argv[] = { "ss", "-Htn", "state", "established", NULL };
  g_auto (GStrv) wrapped = vms_test_hosts_wrap_argv (fixture->hosts, 1, argv);
  gint64 deadline = g_get_monotonic_time () + timeout_ms * (gint64)1000;

  while (g_get_monotonic_time () < deadline)
    {
      g_autofree char *out = NULL;
      g_auto (GStrv) lines = NULL;

      if (!vms_test_run ((const char *const *)wrapped, &out, NULL))
        return 0;
      lines = g_strsplit (out, "\n", -1);
      for (guint i = 0; lines[i]; i++)
        {
          /* Recv-Q Send-Q Local:Port Peer:Port */
          g_auto (GStrv) fields
              = g_strsplit_set (g_strstrip (lines[i]), " \t", -1);
          g_autoptr (GPtrArray) words = g_ptr_array_new ();
          const char *colon;
          guint port;

          for (guint j = 0; fields[j]; j++)
            if (*fields[j])
              g_ptr_array_add (words, fields[j]);
          if (words->len < 4 || !(colon = strrchr (words->pdata[2], ':')))
            continue;
          port = (guint)g_ascii_strtoull (colon + 1, NULL, 10);
          if (port >= MIGRATION_PORT_MIN && port <= MIGRATION_PORT_MAX)
            return port;
        }
      g_usleep (100 * 1000);
    }
  return 0;
}

/* Host B resets the memory stream (nft reject with tcp reset, ss -K) for
 * 8 s once it flows: libvirt's migration fails, vmshift starts a new one
 * with the disks as they are (the mirror kept them in sync), again while
 * the port still refuses connections, and the domain arrives in the same
 * run, on replicas equal to the source's disks, after two or more memory
 * attempts. */
static void
test_memory_reset_retried (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) run = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonObject *retry;
  guint port;

  configure_hook (fixture, fixture->sink->replica_dir);
  start_guest (fixture, "lv5");
  /* RAM at 16 MiB/s: the first pass takes seconds; a downtime limit
   * wide enough for the guest's dirtying lets the second one end it. */
  run = vmshift_start (fixture, "--connect", fixture->source->uri, "lv5",
                       fixture->destination->uri, "--sink", fixture->sink_uri,
                       "--job", "lv5-job", "--migrateuri", "tcp://10.231.0.2",
                       "--bandwidth=16M", "--max-downtime=5000", "--persistent",
                       "--undefinesource", "--suspend", NULL);
  vms_test_command_wait_for (run, "\"state\":\"memory\"", 120000);
  port = memory_stream_port (fixture, 60000);
  if (!port)
    fail_msg ("no memory stream on host B's migration ports: %s",
              run->out->str);
  vms_assert_ok (
      vms_test_hosts_reset_tcp (fixture->hosts, 1, port, TRUE, &error), error);
  g_usleep (8 * G_USEC_PER_SEC);
  vms_assert_ok (
      vms_test_hosts_reset_tcp (fixture->hosts, 1, port, FALSE, &error), error);
  vms_test_command_expect_success (run);
  retry = vms_test_command_find_event (run, "memory-retry", parser);
  if (!retry)
    fail_msg ("the memory migration was never retried: %s", run->out->str);
  print_message ("retried: %s\n",
                 json_object_get_string_member (retry, "message"));
  {
    g_auto (GStrv) lines = g_strsplit (run->out->str, "\n", -1);

    for (guint i = 0; lines[i]; i++)
      if (strstr (lines[i], "\"event\":\"memory-retry\""))
        print_message ("%s\n", lines[i]);
  }
  assert_non_null (strstr (run->out->str, "retrying (attempt 2)"));
  assert_true (
      vms_test_command_event_int (run, "migrated", NULL, "memory-attempts")
      >= 2);
  if (strstr (run->out->str, "\"event\":\"rolled-back\""))
    fail_msg ("the migration rolled back: %s", run->out->str);
  /* No background copy again: only the memory was retried. */
  assert_domstate (fixture->destination, "lv5", "paused");
  assert_domstate (fixture->source, "lv5", NULL);
  assert_disks_identical (fixture, "lv5");
  assert_runs_at_destination (fixture, "lv5");
  vms_test_libvirt_virsh (fixture->destination, NULL, NULL, "destroy", "lv5",
                          NULL);
}

/* A group estimate by libvirt names: the domain's disks and RAM are
 * observed through libvirt, and the migration reports predicted against
 * actual. */
static void
test_estimate_then_migrate (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) estimate = NULL;
  g_autoptr (VmsTestCommand) run = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autofree char *p2p_uri = NULL;
  g_autofree char *state_arg
      = g_strdup_printf ("--state-dir=%s", fixture->state_dir);
  /* As start_guest() makes it, for its RAM. */
  const VmsTestLibvirtGuest lv3 = { .name = "lv3" };
  JsonObject *event, *vm;
  const char *argv[] = {
    vmshift,   "estimate",        "--connect", fixture->source->uri, "lv3",
    "--sink",  fixture->sink_uri, "--id",      "lv3-estimate",       "--window",
    "4",       "--interval",      "1",         "--probe-seconds",    "1",
    state_arg, "--json",          NULL
  };

  configure_hook (fixture, fixture->sink->replica_dir);
  start_guest (fixture, "lv3");
  estimate = vms_test_command_start (fixture->hosts->namespace[0], argv,
                                     fixture -> state_dir);
  vms_test_command_expect_success (estimate);
  event = vms_test_command_find_event (estimate, "estimate", parser);
  assert_non_null (event);
  vm = json_array_get_object_element (
      json_object_get_array_member (
          json_object_get_object_member (event, "estimate"), "vms"),
      0);
  assert_string_equal (json_object_get_string_member (vm, "vm-name"), "lv3");
  assert_int_equal (
      json_array_get_length (json_object_get_array_member (vm, "disks")), 2);
  assert_true (json_object_get_int_member (vm, "ram-size")
               == (gint64)vms_test_libvirt_guest_ram (&lv3));

  /* Peer to peer, libvirtd A opens the destination itself: a plain
   * qemu:/// URI would be its own driver, qemu+unix:// is host B's. */
  p2p_uri = g_strconcat ("qemu+unix", strchr (fixture->destination->uri, ':'),
                         NULL);
  run = vmshift_start (fixture, "--connect", fixture->source->uri, "lv3",
                       p2p_uri, "--sink", fixture->sink_uri, "--job", "lv3-job",
                       "--migrateuri", "tcp://10.231.0.2", "--estimate",
                       "lv3-estimate", "--p2p", NULL);
  vms_test_command_expect_success (run);
  assert_non_null (strstr (run->out->str, "\"event\":\"predicted\""));
  assert_true (vms_test_command_event_int (run, "migrated", NULL,
                                           "predicted-downtime-ms")
               > 0);
  assert_domstate (fixture->destination, "lv3", "running");
  vms_test_libvirt_virsh (fixture->destination, NULL, NULL, "destroy", "lv3",
                          NULL);
}

/* --tls reaches libvirt as VIR_MIGRATE_TLS: both QEMUs get X.509
 * credentials from qemu.conf's migrate_tls_x509_cert_dir and migrate
 * memory over TLS; the migration completes and the disks are identical.
 * (test_migrate checks that without --tls libvirt adds no such
 * credentials.) */
static void
test_migrate_tls (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (VmsTestCommand) run = NULL;
  gsize source_offset, destination_offset;

  if (!fixture->certificates)
    vms_test_skip ("openssl missing (Debian package openssl)");
  configure_hook (fixture, fixture->sink->replica_dir);
  start_guest (fixture, "lv6");
  source_offset = libvirtd_log_size (fixture->source);
  destination_offset = libvirtd_log_size (fixture->destination);
  run = vmshift_start (fixture, "--connect", fixture->source->uri, "lv6",
                       fixture->destination->uri, "--sink", fixture->sink_uri,
                       "--job", "lv6-job", "--migrateuri", "tcp://10.231.0.2",
                       "--tls", "--persistent", "--undefinesource", "--suspend",
                       NULL);
  vms_test_command_expect_success (run);
  assert_domstate (fixture->destination, "lv6", "paused");
  assert_domstate (fixture->source, "lv6", NULL);
  assert_disks_identical (fixture, "lv6");
  assert_libvirt_used_tls (fixture->source, source_offset, "client");
  assert_libvirt_used_tls (fixture->destination, destination_offset, "server");
  assert_runs_at_destination (fixture, "lv6");
  vms_test_libvirt_virsh (fixture->destination, NULL, NULL, "destroy", "lv6",
                          NULL);
}

/* Some line of output (JSON lines) holds both needles. */
static gboolean
has_line (const char *output, const char *a, const char *b)
{
  g_auto (GStrv) lines = g_strsplit (output, "\n", -1);

  for (guint i = 0; lines[i]; i++)
    if (strstr (lines[i], a) && strstr (lines[i], b))
      return TRUE;
  return FALSE;
}

/* A plan through libvirt with a group of two domains: they start their
 * memory together and move; the group's downtime is reported, their
 * disks are identical and they go on at the destination. */
static void
test_plan_group (void **state)
{
  static const char *const domains[] = { "lvg1", "lvg2" };
  Fixture *fixture = *state;
  g_autoptr (GString) plan = g_string_new (NULL);
  g_autoptr (GError) error = NULL;
  g_autofree char *plan_path
      = g_build_filename (fixture->state_dir, "group.plan", NULL);
  g_autofree char *state_arg
      = g_strdup_printf ("--state-dir=%s", fixture->state_dir);
  const char *argv[]
      = { vmshift, "plan", "run", plan_path, state_arg, "--json", NULL };
  g_autoptr (VmsTestCommand) run = NULL;
  g_autoptr (JsonObject) group = NULL;

  configure_hook (fixture, fixture->sink->replica_dir);
  g_string_append_printf (plan,
                          "[plan]\nconcurrency = 2\nsink = %s\nsuspend = "
                          "true\n[group pair]\n",
                          fixture->sink_uri);
  for (guint i = 0; i < G_N_ELEMENTS (domains); i++)
    {
      start_guest (fixture, domains[i]);
      g_string_append_printf (
          plan,
          "[vm %s]\nconnect = %s\ndomain = %s\ndest = %s\nmigrate-uri = "
          "tcp://10.231.0.2\npersistent = true\nundefine-source = true\n"
          "group = pair\n",
          domains[i], fixture->source->uri, domains[i],
          fixture->destination->uri);
    }
  vms_assert_ok (g_file_set_contents (plan_path, plan->str, -1, &error), error);
  run = vms_test_command_start (fixture->hosts->namespace[0], argv,
                                fixture -> state_dir);
  vms_test_command_expect_success (run);
  group = vms_test_command_last_event (run, "plan-group", NULL);
  assert_non_null (group);
  assert_string_equal (json_object_get_string_member (group, "outcome"),
                       "migrated");
  if (json_object_get_int_member_with_default (group, "group-downtime-ms", -1)
      < 0)
    {
      g_printerr ("%s", run->out->str);
      fail_msg ("no group downtime (the plan's events above)");
    }
  /* libvirt switches over by itself: the two start their memory
   * migrations together (and, on a link slow enough to hold them, wait
   * for each other held at 1 ms of downtime; this one is not). */
  for (guint i = 0; i < G_N_ELEMENTS (domains); i++)
    {
      g_autofree char *vm = g_strdup_printf ("\"vm\":\"%s\"", domains[i]);

      if (!has_line (run->out->str, "\"event\":\"group-memory\"", vm))
        {
          g_printerr ("%s", run->out->str);
          fail_msg ("%s did not start its memory with the group (the plan's "
                    "events above)",
                    domains[i]);
        }
    }
  print_message ("group pair through libvirt: group downtime %" G_GINT64_FORMAT
                 " ms, switchovers %" G_GINT64_FORMAT " ms apart\n",
                 json_object_get_int_member (group, "group-downtime-ms"),
                 json_object_get_int_member_with_default (
                     group, "switchover-spread-ms", -1));
  for (guint i = 0; i < G_N_ELEMENTS (domains); i++)
    {
      assert_domstate (fixture->destination, domains[i], "paused");
      assert_domstate (fixture->source, domains[i], NULL);
      assert_disks_identical (fixture, domains[i]);
      assert_runs_at_destination (fixture, domains[i]);
      vms_test_libvirt_virsh (fixture->destination, NULL, NULL, "destroy",
                              domains[i], NULL);
    }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_refusals),
    cmocka_unit_test (test_migrate),
    cmocka_unit_test (test_refused_then_resume),
    cmocka_unit_test (test_kill9_then_abort),
    cmocka_unit_test (test_memory_reset_retried),
    cmocka_unit_test (test_estimate_then_migrate),
    cmocka_unit_test (test_migrate_tls),
    cmocka_unit_test (test_plan_group),
  };

  vms_test_libvirt_require ();
  vms_test_require_program ("nbdkit", "nbdkit");
  vmshift = vms_test_built_program ("VMS_VMSHIFT");
  hook = vms_test_built_program ("VMS_LIBVIRT_HOOK");
  if (g_getenv ("VMS_TEST_FILTER"))
    cmocka_set_test_filter (g_getenv ("VMS_TEST_FILTER"));
  return cmocka_run_group_tests (tests, group_setup, group_teardown);
}
