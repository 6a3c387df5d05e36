/* Integration test: two real libvirt hosts on one machine, and libvirt's
 * own live migration with non-shared storage between them, the baseline
 * vmshift is compared with (see vms-test-libvirt.h).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-test.h"
#include "vms-test-libvirt.h"
#include "vms-test-netns.h"
#include "vms-test-vm.h"

#define DOMAIN "lvguest"
#define HEARTBEAT_TIMEOUT_MS 30000

typedef struct
{
  VmsTestHosts *hosts;
  VmsTestLibvirtHost *host[2]; /* A, B */
} Fixture;

static const VmsTestLibvirtGuest guest = {
  .name = DOMAIN,
  .workload = "writer+dirtier",
  .extra_cmdline = "vms.write_rate_kib=1024 vms.write_span_mib=16",
  .disks = { { "qcow2", 64 * 1024 * 1024, "vda" },
             { "raw", 32 * 1024 * 1024, "vdb" } },
};

static int
setup (void **state)
{
  Fixture *fixture = g_new0 (Fixture, 1);
  g_autoptr (GError) error = NULL;

  *state = fixture;
  fixture->hosts = vms_test_hosts_new (&error);
  if (!fixture->hosts)
    {
      print_error ("cannot make test hosts: %s\n", error->message);
      return -1;
    }
  for (guint i = 0; i < 2; i++)
    {
      fixture->host[i] = vms_test_libvirt_host_start (fixture->hosts, i, NULL,
                                                      NULL, &error);
      if (!fixture->host[i])
        {
          print_error ("%s\n", error->message);
          return -1;
        }
    }
  return 0;
}

static int
teardown (void **state)
{
  Fixture *fixture = *state;

  for (guint i = 0; i < 2; i++)
    vms_test_libvirt_host_free (fixture->host[i]);
  vms_test_hosts_free (fixture->hosts);
  g_free (fixture);
  return 0;
}

/* Wait until the guest's heartbeat in serial_path passes beat. */
static guint64
wait_heartbeat_after (const char *serial_path, guint64 beat)
{
  gint64 deadline = g_get_monotonic_time ()
                    + HEARTBEAT_TIMEOUT_MS * (gint64) 1000;
  guint64 now;

  while ((now = vms_test_libvirt_last_heartbeat (serial_path)) <= beat)
    {
      if (g_get_monotonic_time () >= deadline)
        fail_msg ("heartbeat in %s stayed at %" G_GUINT64_FORMAT,
                  serial_path, now);
      g_usleep (100 * 1000);
    }
  return now;
}

static void
assert_images_identical (Fixture *fixture, const char *file_name)
{
  g_autofree char *a = vms_test_libvirt_guest_image (fixture->host[0],
                                                     file_name);
  g_autofree char *b = vms_test_libvirt_guest_image (fixture->host[1],
                                                     file_name);
  const char *argv[] = { "qemu-img", "compare", "-U", a, b, NULL };
  g_autoptr (GError) error = NULL;

  vms_assert_ok (vms_test_run (argv, NULL, &error), error);
}

static void
test_virsh_migrate_copy_storage (void **state)
{
  Fixture *fixture = *state;
  VmsTestLibvirtHost *a = fixture->host[0], *b = fixture->host[1];
  g_autoptr (GError) error = NULL;
  g_autofree char *serial_a = vms_test_libvirt_serial_path (a, DOMAIN);
  g_autofree char *serial_b = vms_test_libvirt_serial_path (b, DOMAIN);
  g_autofree char *migrate_uri = g_strdup_printf ("tcp://%s", b->address);
  g_autofree char *state_a = NULL;
  g_autofree char *state_b = NULL;
  g_autofree char *domains_a = NULL;
  g_autofree char *log_b = NULL;
  guint64 beat;

  /* Each host has its own images directory and its own hostname. */
  assert_string_not_equal (a->images_dir, b->images_dir);
  assert_string_not_equal (a->uri, b->uri);

  vms_assert_ok (vms_test_libvirt_guest_start (a, &guest, &error), error);
  beat = wait_heartbeat_after (serial_a, 1);

  /* libvirt 9 mirrors into the destination's images but does not create
   * them. */
  vms_assert_ok (vms_test_libvirt_guest_create_images (b, &guest, &error),
                 error);
  /* --suspend: B stays paused after the switchover, so its images can be
   * compared with A's final state before the guest writes on. */
  vms_assert_ok (vms_test_libvirt_virsh (a, NULL, &error, "migrate", "--live",
                                         "--copy-storage-all", "--persistent",
                                         "--undefinesource", "--suspend",
                                         "--verbose", DOMAIN, b->uri,
                                         "--migrateuri", migrate_uri, NULL),
                 error);

  state_b = vms_test_libvirt_domstate (b, DOMAIN);
  assert_non_null (state_b);
  assert_string_equal (state_b, "paused");
  /* Undefined on A: A does not know the domain any more. */
  state_a = vms_test_libvirt_domstate (a, DOMAIN);
  assert_null (state_a);
  vms_assert_ok (vms_test_libvirt_virsh (a, &domains_a, &error, "list",
                                         "--all", "--name", NULL),
                 error);
  assert_string_equal (g_strstrip (domains_a), "");

  /* A's QEMU is gone; B's is paused: the copies must be exact. */
  assert_images_identical (fixture, DOMAIN "-vda.qcow2");
  assert_images_identical (fixture, DOMAIN "-vdb.raw");

  /* The guest runs on in B: its memory came along, so the heartbeat goes
   * on from where it was, and keeps going. */
  vms_assert_ok (vms_test_libvirt_virsh (b, NULL, &error, "resume", DOMAIN,
                                         NULL),
                 error);
  g_clear_pointer (&state_b, g_free);
  state_b = vms_test_libvirt_domstate (b, DOMAIN);
  assert_string_equal (state_b, "running");
  beat = wait_heartbeat_after (serial_b,
                               vms_test_libvirt_last_heartbeat (serial_a));
  wait_heartbeat_after (serial_b, beat);
  vms_assert_ok (vms_test_libvirt_wait_serial (b, DOMAIN, "vms-writer: writes",
                                               HEARTBEAT_TIMEOUT_MS, &error),
                 error);
  vms_assert_ok (g_file_get_contents (serial_b, &log_b, NULL, &error), error);
  if (strstr (log_b, "vms-writer: error"))
    fail_msg ("the guest's writes failed on B: %s",
              strstr (log_b, "vms-writer: error"));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_virsh_migrate_copy_storage, setup,
                                     teardown),
  };

  vms_test_libvirt_require ();
  vms_test_guest_prepare ();
  return cmocka_run_group_tests_name ("libvirt-hosts", tests, NULL, NULL);
}
