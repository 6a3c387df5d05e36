/* vmshift test harness: real libvirt hosts on one machine (see the header).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-test-libvirt.h"
#include "vms-test-vm.h"
#include "vms-test.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* Bounds one virsh run (a migration of the small test guests takes
 * seconds; this only keeps a hang from lasting until meson's timeout). */
#define VIRSH_TIMEOUT "240"

#define POLL_INTERVAL_US (100 * 1000)

static const char *
libvirt_host_script (void)
{
  const char *script = g_getenv ("VMS_LIBVIRT_HOST");

  if (!script || !g_file_test (script, G_FILE_TEST_IS_EXECUTABLE))
    {
      printf ("SKIP: VMS_LIBVIRT_HOST is not set to tests/libvirt-host; run "
              "the tests with 'meson test'\n");
      exit (VMS_TEST_EXIT_SKIP);
    }
  return script;
}

void
vms_test_libvirt_require (void)
{
  vms_test_require_root ("network namespaces and libvirtd");
  libvirt_host_script ();
  vms_test_require_program ("libvirtd", "libvirt-daemon-system");
  vms_test_require_program ("virtlogd", "libvirt-daemon-system");
  vms_test_require_program ("virsh", "libvirt-clients");
  vms_test_require_program ("unshare", "util-linux");
  vms_test_require_program ("nsenter", "util-linux");
  vms_test_require_program ("ip", "iproute2");
  vms_test_require_program ("qemu-img", "qemu-utils");
  vms_test_require_program ("qemu-system-x86_64", "qemu-system-x86");
  {
    /* A host needs a private mount namespace; in a chroot whose root is
     * no mount point (as in a bare debootstrap tree) there is none. */
    const char *argv[]
        = { "unshare", "--mount", "--propagation", "private", "true", NULL };
    g_autofree char *err = NULL;
    int status = -1;

    if (!g_spawn_sync (NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL,
                       NULL, NULL, &err, &status, NULL)
        || !g_spawn_check_wait_status (status, NULL))
      {
        g_printerr ("skipped: no private mount namespace can be made here "
                    "(is / a mount point?): %s",
                    err ? err : "");
        exit (77);
      }
  }
}

/* Run the script; its stderr becomes the error's message. */
static gboolean
run_script (const char *const *argv, char **stdout_out, GError **error)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  int status;

  if (!g_spawn_sync (NULL, (char **) argv, NULL, 0, NULL, NULL, &out, &err,
                     &status, error))
    return FALSE;
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    {
      g_set_error (error, G_SPAWN_ERROR, G_SPAWN_ERROR_FAILED,
                   "%s %s failed (%s %d): %s", argv[0], argv[1],
                   WIFEXITED (status) ? "exit status" : "signal",
                   WIFEXITED (status) ? WEXITSTATUS (status)
                                      : WTERMSIG (status),
                   g_strstrip (err));
      return FALSE;
    }
  if (stdout_out)
    *stdout_out = g_steal_pointer (&out);
  return TRUE;
}

VmsTestLibvirtHost *
vms_test_libvirt_host_start (VmsTestHosts *hosts, guint index,
                             const char *hook_program,
                             const char *hook_config_text, GError **error)
{
  return vms_test_libvirt_host_start_with (hosts, index, hook_program,
                                           hook_config_text, NULL, error);
}

VmsTestLibvirtHost *
vms_test_libvirt_host_start_with (VmsTestHosts *hosts, guint index,
                                  const char *hook_program,
                                  const char *hook_config_text,
                                  const char *const *extra_args, GError **error)
{
  g_autoptr (VmsTestLibvirtHost) host = g_new0 (VmsTestLibvirtHost, 1);
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_autofree char *hook_config = NULL;
  g_autofree char *out = NULL;
  g_autofree char *peer = NULL;
  g_autofree char *owner = g_strdup_printf ("%d", (int) getpid ());

  g_return_val_if_fail (index < 2, NULL);
  /* Short: libvirt's sockets live under DIR/run. */
  host->dir = vms_test_make_tmpdir ("vms-lv");
  host->images_dir = g_build_filename (host->dir, "lib", "libvirt", "images",
                                       NULL);
  host->netns = g_strdup (hosts->namespace[index]);
  host->address = g_strdup (hosts->address[index]);
  host->hostname = g_strdup_printf ("vms-host-%c", 'a' + index);

  g_ptr_array_add (argv, (gpointer) libvirt_host_script ());
  g_ptr_array_add (argv, "start");
  g_ptr_array_add (argv, host->dir);
  g_ptr_array_add (argv, host->netns);
  g_ptr_array_add (argv, host->hostname);
  /* The other host by name, as libvirt migrates to it without
   * --migrateuri. */
  peer = g_strdup_printf ("vms-host-%c=%s", 'a' + !index,
                          hosts->address[!index]);
  g_ptr_array_add (argv, "--add-host");
  g_ptr_array_add (argv, peer);
  /* A test that crashes or times out does not leave the daemons behind. */
  g_ptr_array_add (argv, "--owner");
  g_ptr_array_add (argv, owner);
  if (hook_program)
    {
      g_ptr_array_add (argv, "--hook");
      g_ptr_array_add (argv, (gpointer) hook_program);
    }
  if (hook_config_text)
    {
      hook_config = g_build_filename (host->dir, "hook-config", NULL);
      if (!g_file_set_contents (hook_config, hook_config_text, -1, error))
        return NULL;
      g_ptr_array_add (argv, "--hook-config");
      g_ptr_array_add (argv, hook_config);
    }
  for (guint i = 0; extra_args && extra_args[i]; i++)
    g_ptr_array_add (argv, (gpointer)extra_args[i]);
  g_ptr_array_add (argv, NULL);
  if (!run_script ((const char *const *) argv->pdata, &out, error))
    {
      g_prefix_error (error, "cannot start libvirt host %s: ",
                      host->hostname);
      return NULL;
    }
  host->uri = g_strdup (g_strstrip (out));
  return g_steal_pointer (&host);
}

void
vms_test_libvirt_host_free (VmsTestLibvirtHost *host)
{
  g_autoptr (GError) error = NULL;

  if (!host)
    return;
  if (host->dir)
    {
      const char *argv[] = { libvirt_host_script (), "stop", host->dir,
                             NULL };

      if (!run_script (argv, NULL, &error))
        g_printerr ("# %s\n", error->message);
      if (g_getenv ("VMS_TEST_KEEP"))
        g_printerr ("# kept %s\n", host->dir);
      else
        vms_test_rmtree (host->dir);
    }
  g_free (host->dir);
  g_free (host->uri);
  g_free (host->images_dir);
  g_free (host->netns);
  g_free (host->address);
  g_free (host->hostname);
  g_free (host);
}

gboolean
vms_test_libvirt_virsh (VmsTestLibvirtHost *host, char **output,
                        GError **error, const char *first_arg, ...)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  va_list args;

  g_ptr_array_add (argv, "timeout");
  g_ptr_array_add (argv, "--kill-after=10");
  g_ptr_array_add (argv, VIRSH_TIMEOUT);
  g_ptr_array_add (argv, "virsh");
  g_ptr_array_add (argv, "-q");
  g_ptr_array_add (argv, "-c");
  g_ptr_array_add (argv, host->uri);
  va_start (args, first_arg);
  for (const char *arg = first_arg; arg; arg = va_arg (args, const char *))
    g_ptr_array_add (argv, (gpointer) arg);
  va_end (args);
  g_ptr_array_add (argv, NULL);
  return vms_test_run ((const char *const *) argv->pdata, output, error);
}

char *
vms_test_libvirt_guest_image (VmsTestLibvirtHost *host, const char *file_name)
{
  return g_build_filename (host->images_dir, file_name, NULL);
}

char *
vms_test_libvirt_serial_path (VmsTestLibvirtHost *host, const char *domain)
{
  g_autofree char *name = g_strdup_printf ("%s-serial.log", domain);

  return g_build_filename (host->dir, "log", "libvirt", "qemu", name, NULL);
}

static char *
image_name (const VmsTestLibvirtGuest *guest, guint i)
{
  return g_strdup_printf ("%s-%s.%s", guest->name, guest->disks[i].target,
                          guest->disks[i].format);
}

gboolean
vms_test_libvirt_guest_create_images (VmsTestLibvirtHost *host,
                                      const VmsTestLibvirtGuest *guest,
                                      GError **error)
{
  for (guint i = 0; i < VMS_TEST_LIBVIRT_MAX_DISKS && guest->disks[i].size;
       i++)
    {
      g_autofree char *name = image_name (guest, i);
      g_autofree char *path = vms_test_libvirt_guest_image (host, name);
      g_autofree char *size = g_strdup_printf ("%" G_GUINT64_FORMAT,
                                               guest->disks[i].size);
      const char *argv[] = { "qemu-img", "create", "-q", "-f",
                             guest->disks[i].format, path, size, NULL };

      if (!vms_test_run (argv, NULL, error))
        return FALSE;
    }
  return TRUE;
}

/* tests/libvirt-qemu when meson gives it: QEMU with the harness's RAM
 * margin against QEMU 7.2's TCG dirty-bitmap bug (see that script). */
static const char *
guest_emulator (void)
{
  const char *wrapper = g_getenv ("VMS_LIBVIRT_QEMU");

  return wrapper && *wrapper ? wrapper : "/usr/bin/qemu-system-x86_64";
}

guint64
vms_test_libvirt_guest_ram (const VmsTestLibvirtGuest *guest)
{
  guint64 mib = guest->memory_mib ? guest->memory_mib : 256;
  gboolean wrapped
      = g_strcmp0 (guest_emulator (), "/usr/bin/qemu-system-x86_64") != 0;

  /* tests/libvirt-qemu adds the same 8 KiB. */
  return mib * 1024 * 1024 + (wrapped ? VMS_TEST_VM_RAM_EXTRA : 0);
}

char *
vms_test_libvirt_guest_xml (const VmsTestLibvirtGuest *guest)
{
  GString *xml = g_string_new (NULL);
  g_autofree char *head = NULL;
  g_autofree char *cmdline = g_strdup_printf (
      "console=ttyS0 panic=-1 quiet vms.workload=%s%s%s",
      guest->workload ? guest->workload : "idle",
      guest->extra_cmdline ? " " : "",
      guest->extra_cmdline ? guest->extra_cmdline : "");
  g_autofree char *serial = g_strdup_printf (
      "/var/log/libvirt/qemu/%s-serial.log", guest->name);

  /* Nothing host-specific (TCG's default qemu64 CPU, no host devices, no
   * network): the same XML is valid on the destination of a migration. */
  head = g_markup_printf_escaped (
      "<domain type='qemu'>\n"
      "  <name>%s</name>\n"
      "  <memory unit='MiB'>%u</memory>\n"
      "  <vcpu>1</vcpu>\n"
      "  <os>\n"
      "    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>\n"
      "    <kernel>%s</kernel>\n"
      "    <initrd>%s</initrd>\n"
      "    <cmdline>%s</cmdline>\n"
      "  </os>\n"
      "  <on_poweroff>destroy</on_poweroff>\n"
      "  <on_reboot>restart</on_reboot>\n"
      "  <on_crash>destroy</on_crash>\n"
      "  <devices>\n"
      "    <emulator>%s</emulator>\n",
      guest->name, guest->memory_mib ? guest->memory_mib : 256,
      vms_test_guest_kernel (), vms_test_guest_initrd (), cmdline,
      guest_emulator ());
  g_string_append (xml, head);
  for (guint i = 0; i < VMS_TEST_LIBVIRT_MAX_DISKS && guest->disks[i].size;
       i++)
    {
      g_autofree char *name = image_name (guest, i);
      g_autofree char *disk = g_markup_printf_escaped (
          "    <disk type='file' device='disk'>\n"
          "      <driver name='qemu' type='%s'/>\n"
          "      <source file='/var/lib/libvirt/images/%s'/>\n"
          "      <target dev='%s' bus='virtio'/>\n"
          "    </disk>\n",
          guest->disks[i].format, name, guest->disks[i].target);

      g_string_append (xml, disk);
    }
  g_autofree char *tail = g_markup_printf_escaped (
      "    <controller type='usb' model='none'/>\n"
      "    <serial type='file'>\n"
      "      <source path='%s' append='on'/>\n"
      "      <target port='0'/>\n"
      "    </serial>\n"
      "    <console type='file'>\n"
      "      <source path='%s' append='on'/>\n"
      "      <target type='serial' port='0'/>\n"
      "    </console>\n"
      "    <memballoon model='none'/>\n"
      "  </devices>\n"
      "</domain>\n",
      serial, serial);
  g_string_append (xml, tail);
  return g_string_free (xml, FALSE);
}

gboolean
vms_test_libvirt_guest_start (VmsTestLibvirtHost *host,
                              const VmsTestLibvirtGuest *guest,
                              GError **error)
{
  g_autofree char *xml = NULL;
  g_autofree char *xml_name = g_strdup_printf ("%s.xml", guest->name);
  g_autofree char *xml_path = g_build_filename (host->dir, xml_name, NULL);

  vms_test_guest_prepare ();
  xml = vms_test_libvirt_guest_xml (guest);
  if (!vms_test_libvirt_guest_create_images (host, guest, error)
      || !g_file_set_contents (xml_path, xml, -1, error)
      || !vms_test_libvirt_virsh (host, NULL, error, "define", xml_path, NULL)
      || !vms_test_libvirt_virsh (host, NULL, error, "start", guest->name,
                                  NULL))
    return FALSE;
  return vms_test_libvirt_wait_serial (host, guest->name, "vms-guest: ready",
                                       VMS_TEST_VM_BOOT_TIMEOUT_MS, error);
}

gboolean
vms_test_libvirt_wait_serial (VmsTestLibvirtHost *host, const char *domain,
                              const char *needle, guint timeout_ms,
                              GError **error)
{
  g_autofree char *path = vms_test_libvirt_serial_path (host, domain);
  gint64 deadline = g_get_monotonic_time () + timeout_ms * (gint64) 1000;

  for (;;)
    {
      g_autofree char *contents = NULL;
      gsize length = 0;

      if (g_file_get_contents (path, &contents, &length, NULL)
          && strstr (contents, needle))
        return TRUE;
      if (g_get_monotonic_time () >= deadline)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                       "%s on %s did not print '%s' within %u ms; serial "
                       "log ends: %s", domain, host->hostname, needle,
                       timeout_ms,
                       contents ? contents + (length > 2000 ? length - 2000
                                                            : 0)
                                : "(no serial log)");
          return FALSE;
        }
      g_usleep (POLL_INTERVAL_US);
    }
}

char *
vms_test_libvirt_domstate (VmsTestLibvirtHost *host, const char *domain)
{
  g_autofree char *out = NULL;

  if (!vms_test_libvirt_virsh (host, &out, NULL, "domstate", domain, NULL))
    return NULL;
  return g_strdup (g_strstrip (out));
}

guint64
vms_test_libvirt_last_heartbeat (const char *serial_path)
{
  return vms_test_serial_last_heartbeat (serial_path);
}
