/* Unit tests: the vmshift-libvirt-hook program, run as libvirt runs it.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * argv[1] is the built hook.  Each test gets a replica directory and a
 * configuration file naming it (VMSHIFT_HOOK_CONFIG), then runs the hook
 * with libvirt's arguments and a domain XML on stdin, no shell between.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "vms-config.h"
#include "vms-domain-xml.h"

static const char *hook_path;

/* A domain as the destination's libvirt hands it to the hook: inactive,
 * migratable, with no vmshift metadata. */
static const char plain_xml[]
    = "<domain type='kvm'>\n"
      "  <name>web1</name>\n"
      "  <uuid>6f2b9a54-2c1e-4d3a-9d8e-1b2c3d4e5f60</uuid>\n"
      "  <memory unit='KiB'>1048576</memory>\n"
      "  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>\n"
      "  <devices>\n"
      "    <disk type='file' device='disk'>\n"
      "      <driver name='qemu' type='qcow2' cache='none'/>\n"
      "      <source file='/var/lib/libvirt/images/web1.qcow2'/>\n"
      "      <target dev='vda' bus='virtio'/>\n"
      "    </disk>\n"
      "    <disk type='block' device='disk'>\n"
      "      <driver name='qemu' type='raw'/>\n"
      "      <source dev='/dev/vg0/web1-data'/>\n"
      "      <target dev='vdb' bus='virtio'/>\n"
      "    </disk>\n"
      "  </devices>\n"
      "</domain>\n";

#define VDA_SIZE 65536
#define VDB_SIZE 131072

typedef struct
{
  char *dir;         /* temporary directory of the test */
  char *replicas;    /* DIR/replicas, named by the configuration */
  char *config;      /* DIR/vmshift.conf */
  char *request_xml; /* plain_xml with a vmshift request for vda, vdb */
} Fixture;

static int
setup (void **state)
{
  Fixture *fixture = g_new0 (Fixture, 1);
  /* The source side does not know the destination's directory. */
  const VmsDomainReplica replicas[] = {
    { "vda", "web1-vda", "/srv/source-guess/web1-vda", VDA_SIZE },
    { "vdb", "web1-vdb", "/srv/source-guess/web1-vdb", VDB_SIZE },
  };
  g_autofree char *config = NULL;

  fixture->dir = g_dir_make_tmp ("vms-hook-XXXXXX", NULL);
  assert_non_null (fixture->dir);
  fixture->replicas = g_build_filename (fixture->dir, "replicas", NULL);
  fixture->config = g_build_filename (fixture->dir, "vmshift.conf", NULL);
  assert_int_equal (g_mkdir (fixture->replicas, 0700), 0);
  config = g_strdup_printf ("# test\n[replicas]\ndir=%s\n", fixture->replicas);
  assert_true (g_file_set_contents (fixture->config, config, -1, NULL));
  fixture->request_xml = vms_domain_xml_for_replicas (
      plain_xml, "job-42", replicas, G_N_ELEMENTS (replicas), NULL, NULL);
  assert_non_null (fixture->request_xml);
  *state = fixture;
  return 0;
}

static void
remove_tree (const char *path)
{
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  while (dir && (name = g_dir_read_name (dir)))
    {
      g_autofree char *child = g_build_filename (path, name, NULL);

      if (g_file_test (child, G_FILE_TEST_IS_DIR)
          && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
        remove_tree (child);
      else
        g_unlink (child);
    }
  g_rmdir (path);
}

static int
teardown (void **state)
{
  Fixture *fixture = *state;

  remove_tree (fixture->dir);
  g_free (fixture->dir);
  g_free (fixture->replicas);
  g_free (fixture->config);
  g_free (fixture->request_xml);
  g_free (fixture);
  return 0;
}

static void
make_replica (Fixture *fixture, const char *name, goffset size)
{
  g_autofree char *path = g_build_filename (fixture->replicas, name, NULL);
  g_autoptr (GError) error = NULL;
  FILE *file;

  assert_true (g_file_set_contents (path, "", 0, &error));
  file = fopen (path, "r+");
  assert_non_null (file);
  assert_int_equal (ftruncate (fileno (file), size), 0);
  fclose (file);
}

/* Run the hook; returns its exit status. */
static int
run_hook (Fixture *fixture, const char *const *args, const char *input,
          char **out, char **err)
{
  g_autoptr (GSubprocessLauncher) launcher = g_subprocess_launcher_new (
      G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE
      | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_autoptr (GSubprocess) process = NULL;
  g_autoptr (GError) error = NULL;

  g_subprocess_launcher_setenv (launcher, "VMSHIFT_HOOK_CONFIG",
                                fixture->config, TRUE);
  g_ptr_array_add (argv, (char *)hook_path);
  for (guint i = 0; args[i]; i++)
    g_ptr_array_add (argv, (char *)args[i]);
  g_ptr_array_add (argv, NULL);
  process = g_subprocess_launcher_spawnv (
      launcher, (const char *const *)argv->pdata, &error);
  assert_non_null (process);
  assert_true (
      g_subprocess_communicate_utf8 (process, input, NULL, out, err, &error));
  assert_true (g_subprocess_get_if_exited (process));
  return g_subprocess_get_exit_status (process);
}

static const char *const migrate_args[]
    = { "web1", "migrate", "begin", "-", NULL };

/* Exit 1 with one line on stderr that says what. */
static void
expect_refusal (Fixture *fixture, const char *input, const char *message)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  assert_int_equal (run_hook (fixture, migrate_args, input, &out, &err), 1);
  assert_string_equal (out, "");
  assert_true (g_str_has_prefix (err, "vmshift hook: "));
  assert_true (g_str_has_suffix (err, "\n"));
  assert_true (strchr (err, '\n') == err + strlen (err) - 1);
  if (!strstr (err, message))
    fail_msg ("'%s' does not say '%s'", err, message);
}

/* Operations other than migrate are none of our business, even with our
 * metadata and no replicas. */
static void
test_other_operations_pass (void **state)
{
  Fixture *fixture = *state;
  const char *const operations[][5] = {
    { "web1", "prepare", "begin", "-", NULL },
    { "web1", "start", "begin", "-", NULL },
    { "web1", "started", "begin", "-", NULL },
    { "web1", "stopped", "end", "-", NULL },
    { "web1", "release", "end", "migrated", NULL },
    { "web1", "restore", "begin", "-", NULL },
    { "web1", "reconnect", "begin", "-", NULL },
    /* Not libvirt's argument count: still no harm done. */
    { "web1", "migrate", NULL },
    { NULL },
  };

  for (guint i = 0; i < G_N_ELEMENTS (operations); i++)
    {
      g_autofree char *out = NULL;
      g_autofree char *err = NULL;

      assert_int_equal (
          run_hook (fixture, operations[i], fixture->request_xml, &out, &err),
          0);
      assert_string_equal (out, "");
      assert_string_equal (err, "");
    }
}

static void
test_version_and_help (void **state)
{
  Fixture *fixture = *state;
  const char *const version[] = { "--version", NULL };
  const char *const help[] = { "--help", NULL };
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  assert_int_equal (run_hook (fixture, version, "", &out, &err), 0);
  assert_string_equal (out, "vmshift-libvirt-hook " VMS_VERSION "\n");
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  assert_int_equal (run_hook (fixture, help, "", &out, &err), 0);
  assert_non_null (strstr (out, "qemu.d/vmshift"));
}

static void
test_migration_without_request (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  assert_int_equal (run_hook (fixture, migrate_args, plain_xml, &out, &err), 0);
  assert_string_equal (out, "");
  assert_string_equal (err, "");
  /* What libvirt would reject anyway is not ours to refuse either. */
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  assert_int_equal (
      run_hook (fixture, migrate_args, "<domain><name>x", &out, &err), 0);
  assert_string_equal (out, "");
  assert_string_equal (err, "");
}

/* Check the output with libvirt's own schema when libvirt-clients is here. */
static void
validate_with_libvirt (Fixture *fixture, const char *xml)
{
  g_autofree char *validator = g_find_program_in_path ("virt-xml-validate");
  g_autofree char *path = g_build_filename (fixture->dir, "out.xml", NULL);
  g_autofree char *out = NULL;
  int status;
  g_autoptr (GError) error = NULL;

  g_autofree char *xmllint = g_find_program_in_path ("xmllint");

  /* virt-xml-validate is a script around xmllint (libxml2-utils, which
   * scripts/setup installs). */
  if (!validator || !xmllint)
    return;
  assert_true (g_file_set_contents (path, xml, -1, NULL));
  assert_true (g_spawn_sync (
      NULL, (char *[]){ validator, path, "domain", NULL }, NULL,
      G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, &out, NULL, &status, &error));
  if (!g_spawn_check_wait_status (status, NULL))
    fail_msg ("virt-xml-validate refused the hook's XML: %s", out);
}

static void
test_migration_to_replicas (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) disks = NULL;
  g_autoptr (GArray) request = NULL;
  g_autofree char *job_id = NULL;
  g_autofree char *vda = g_build_filename (fixture->replicas, "web1-vda", NULL);
  g_autofree char *vdb = g_build_filename (fixture->replicas, "web1-vdb", NULL);
  gboolean found;

  make_replica (fixture, "web1-vda", VDA_SIZE);
  make_replica (fixture, "web1-vdb", VDB_SIZE);
  assert_int_equal (
      run_hook (fixture, migrate_args, fixture->request_xml, &out, &err), 0);
  assert_string_equal (err, "");

  disks = vms_domain_xml_disks (out, &error);
  assert_non_null (disks);
  assert_int_equal (disks->len, 2);
  for (guint i = 0; i < disks->len; i++)
    {
      VmsDomainDisk *disk = disks->pdata[i];

      assert_string_equal (disk->type, "file");
      assert_string_equal (disk->format, "raw");
      assert_string_equal (disk->source, i == 0 ? vda : vdb);
    }
  assert_true (
      vms_domain_xml_read_request (out, &found, &job_id, &request, &error));
  assert_string_equal (job_id, "job-42");
  assert_int_equal (request->len, 2);
  assert_int_equal (g_array_index (request, VmsDomainReplica, 1).size,
                    VDB_SIZE);
  validate_with_libvirt (fixture, out);
}

static void
test_missing_replica (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *message = g_strdup_printf (
      "replica web1-vdb for disk vdb not found in %s (is this the host "
      "vmshift copied to?)",
      fixture->replicas);

  make_replica (fixture, "web1-vda", VDA_SIZE);
  expect_refusal (fixture, fixture->request_xml, message);
}

static void
test_wrong_size (void **state)
{
  Fixture *fixture = *state;

  make_replica (fixture, "web1-vda", VDA_SIZE);
  make_replica (fixture, "web1-vdb", VDB_SIZE - 512);
  expect_refusal (fixture, fixture->request_xml,
                  "replica web1-vdb for disk vdb");
  expect_refusal (fixture, fixture->request_xml,
                  "has 130560 bytes, but the migration expects 131072");
}

static void
test_symlink_refused (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *outside = g_build_filename (fixture->dir, "outside", NULL);
  g_autofree char *link
      = g_build_filename (fixture->replicas, "web1-vdb", NULL);
  FILE *file;

  make_replica (fixture, "web1-vda", VDA_SIZE);
  file = fopen (outside, "w");
  assert_non_null (file);
  assert_int_equal (ftruncate (fileno (file), VDB_SIZE), 0);
  fclose (file);
  assert_int_equal (symlink (outside, link), 0);
  expect_refusal (fixture, fixture->request_xml, "is a symbolic link");
}

static void
test_directory_refused (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *dir = g_build_filename (fixture->replicas, "web1-vda", NULL);

  assert_int_equal (g_mkdir (dir, 0700), 0);
  expect_refusal (fixture, fixture->request_xml, "is not a regular file");
}

static void
test_bad_configuration (void **state)
{
  Fixture *fixture = *state;

  assert_true (g_file_set_contents (
      fixture->config, "[replicas]\ndir=relative/dir\n", -1, NULL));
  expect_refusal (fixture, fixture->request_xml, "not an absolute path");
  assert_true (
      g_file_set_contents (fixture->config, "not a key file", -1, NULL));
  expect_refusal (fixture, fixture->request_xml, "cannot read");
}

/* No configuration file: the default directory, named in the message. */
static void
test_default_directory (void **state)
{
  Fixture *fixture = *state;

  g_unlink (fixture->config);
  expect_refusal (fixture, fixture->request_xml,
                  "not found in /var/lib/vmshift/replicas");
}

static void
test_bad_request_refused (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *bad = g_strdup (fixture->request_xml);
  char *at = strstr (bad, "replica=\"web1-vda\"");

  assert_non_null (at);
  /* Same length, so the rest of the document stays as it was. */
  memcpy (at, "replica=\"../etc12\"", strlen ("replica=\"../etc12\""));
  expect_refusal (fixture, bad, "replica name");
  /* Unreadable XML that carries our namespace is ours to refuse. */
  bad[strlen (bad) - strlen ("</domain>\n")] = '\0';
  expect_refusal (fixture, bad, "not well-formed");
}

int
main (int argc, char **argv)
{
#define FIXTURE_TEST(name)                                                     \
  cmocka_unit_test_setup_teardown (name, setup, teardown)
  const struct CMUnitTest tests[] = {
    FIXTURE_TEST (test_other_operations_pass),
    FIXTURE_TEST (test_version_and_help),
    FIXTURE_TEST (test_migration_without_request),
    FIXTURE_TEST (test_migration_to_replicas),
    FIXTURE_TEST (test_missing_replica),
    FIXTURE_TEST (test_wrong_size),
    FIXTURE_TEST (test_symlink_refused),
    FIXTURE_TEST (test_directory_refused),
    FIXTURE_TEST (test_bad_configuration),
    FIXTURE_TEST (test_default_directory),
    FIXTURE_TEST (test_bad_request_refused),
  };

  if (argc != 2)
    {
      g_printerr ("usage: %s PATH-OF-vmshift-libvirt-hook\n", argv[0]);
      return 2;
    }
  hook_path = argv[1];
  return cmocka_run_group_tests_name ("libvirt-hook", tests, NULL, NULL);
}
