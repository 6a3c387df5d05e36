/* vmshift test harness: a real QEMU (TCG) running the test guest.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-test-vm.h"
#include "vms-test.h"
#include "vms-guest.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* QEMU creates its QMP socket before the guest runs; this bounds how long a
 * QEMU that fails to start is waited for. */
#define QMP_SOCKET_TIMEOUT_MS 20000

/* Polling interval for files written by QEMU (serial log, socket). */
#define POLL_INTERVAL_US (50 * 1000)

static char *guest_kernel; /* built guest kernel, set once per process */
static char *guest_initrd; /* built guest initramfs */

void
vms_test_guest_prepare (void)
{
  const char *script = g_getenv ("VMS_GUEST_BUILD_SCRIPT");
  const char *workload = g_getenv ("VMS_GUEST_WORKLOAD");
  const char *outdir = g_getenv ("VMS_GUEST_DIR");
  g_autoptr (GError) error = NULL;

  if (guest_kernel)
    return;
  vms_test_require_program ("qemu-system-x86_64", "qemu-system-x86");
  if (!script || !workload || !outdir)
    {
      printf ("SKIP: VMS_GUEST_* not set; run the tests with 'meson test'\n");
      exit (VMS_TEST_EXIT_SKIP);
    }
  const char *argv[] = { "bash", script, outdir, workload, NULL };
  if (!vms_test_run (argv, NULL, &error))
    {
      /* A missing package is a reason to skip; the script names it. */
      printf ("SKIP: cannot build the test guest: %s\n", error->message);
      exit (VMS_TEST_EXIT_SKIP);
    }
  guest_kernel = g_build_filename (outdir, "vmlinuz", NULL);
  guest_initrd = g_build_filename (outdir, "initramfs.cpio.gz", NULL);
}

const char *
vms_test_guest_kernel (void)
{
  g_assert (guest_kernel);
  return guest_kernel;
}

const char *
vms_test_guest_initrd (void)
{
  g_assert (guest_initrd);
  return guest_initrd;
}

/* Runs in the child between fork and exec: QEMU must not outlive a test
 * that crashed or was killed by meson's timeout. */
static void
child_setup (gpointer data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  setpgid (0, 0);
}

static char *
read_tail (const char *path, gsize max)
{
  g_autofree char *contents = NULL;
  gsize length = 0;

  if (!g_file_get_contents (path, &contents, &length, NULL) || length == 0)
    return g_strdup ("(QEMU printed nothing)");
  if (length > max)
    return g_strdup (contents + length - max);
  return g_steal_pointer (&contents);
}

static char *
read_log_tail (const char *path)
{
  return read_tail (path, 2000);
}

char *
vms_test_vm_trace_tail (VmsTestVm *vm)
{
  return read_tail (vm->trace_path, 4000);
}

static gboolean
create_disk (VmsTestVm *vm, guint index, const VmsTestDisk *disk,
             GError **error)
{
  g_autofree char *size = NULL;
  g_autofree char *name = NULL;

  if (disk->path)
    {
      vm->disk_paths[index] = g_strdup (disk->path);
      return TRUE;
    }
  name = g_strdup_printf ("disk%u.%s", index, disk->format);
  vm->disk_paths[index] = g_build_filename (vm->dir, name, NULL);
  size = g_strdup_printf ("%" G_GUINT64_FORMAT, disk->size);
  const char *argv[]
      = { "qemu-img", "create", "-q", "-f", disk->format, vm->disk_paths[index],
          size,       NULL };
  return vms_test_run (argv, NULL, error);
}

static const char *const traced_events[] = {
  "qmp_enter_*",        "migrate_set_state", "migration_thread_after_loop",
  "migrate_fd_cleanup", "migrate_fd_cancel", "runstate_set"
};

static GPtrArray *
build_argv (VmsTestVm *vm, const VmsTestVmOptions *options)
{
  GPtrArray *argv = g_ptr_array_new_with_free_func (g_free);
  guint memory = options->memory_mib ? options->memory_mib : 256;

#define ADD(...) g_ptr_array_add (argv, g_strdup_printf (__VA_ARGS__))
  if (options->netns)
    {
      /* nsenter, unlike "ip netns exec", works in a chroot too. */
      ADD ("nsenter");
      ADD ("--net=/run/netns/%s", options->netns);
      ADD ("--");
    }
  ADD ("qemu-system-x86_64");
  ADD ("-accel");
  ADD ("tcg");
  ADD ("-machine");
  ADD ("%s", options->machine ? options->machine : "q35");
  if (options->start_paused)
    ADD ("-S");
  if (options->name)
    {
      ADD ("-name");
      ADD ("%s", options->name);
    }
  if (options->uuid)
    {
      ADD ("-uuid");
      ADD ("%s", options->uuid);
    }
  /* QEMU < 9.0 under TCG loses guest stores during a live migration when
   * a RAM block's size is a multiple of 256 KiB: the fast path of
   * cpu_physical_memory_sync_dirty_bitmap() clears the dirty bits without
   * resetting TCG's TLB, so pages written through cached entries are not
   * sent again (fixed upstream by 03bfc2188f06, "physmem: Fix migration
   * dirty bitmap coherency with TCG memory access").  The destination's
   * guest then crashes or stops.  8 KiB more RAM makes QEMU take the
   * per-page path, which resets the TLB. */
  ADD ("-m");
  ADD ("%" G_GUINT64_FORMAT "k",
       (guint64)memory * 1024 + VMS_TEST_VM_RAM_EXTRA / 1024);
  ADD ("-nodefaults");
  ADD ("-no-user-config");
  ADD ("-display");
  ADD ("none");
  ADD ("-qmp");
  ADD ("unix:%s,server=on,wait=off", vm->qmp_path);
  if (vm->qmp2_path)
    {
      ADD ("-qmp");
      ADD ("unix:%s,server=on,wait=off", vm->qmp2_path);
    }
  if (options->qmp_tcp)
    {
      ADD ("-qmp");
      ADD ("tcp:%s,server=on,wait=off", options->qmp_tcp);
    }
  ADD ("-serial");
  ADD ("file:%s", vm->serial_path);
  /* QEMU 7.2 has died a few times in CI after a failed outgoing
   * migration, never here: its trace says which commands came before. */
  ADD ("-D");
  ADD ("%s", vm->trace_path);
  for (guint i = 0; i < G_N_ELEMENTS (traced_events); i++)
    {
      ADD ("-trace");
      ADD ("enable=%s", traced_events[i]);
    }
  if (!options->no_guest)
    {
      ADD ("-kernel");
      ADD ("%s", guest_kernel);
      ADD ("-initrd");
      ADD ("%s", guest_initrd);
      ADD ("-append");
      ADD ("console=ttyS0 panic=-1 quiet vms.workload=%s%s%s",
           options->workload ? options->workload : "idle",
           options->extra_cmdline ? " " : "",
           options->extra_cmdline ? options->extra_cmdline : "");
    }
  for (guint i = 0; i < VMS_TEST_VM_MAX_DISKS && vm->disk_paths[i]; i++)
    {
      const char *format
          = options->disks[i].format ? options->disks[i].format : "raw";

      ADD ("-blockdev");
      ADD ("driver=file,filename=%s,node-name=f%u", vm->disk_paths[i], i);
      ADD ("-blockdev");
      ADD ("driver=%s,file=f%u,node-name=d%u", format, i, i);
      ADD ("-device");
      ADD ("virtio-blk-pci,drive=d%u,id=vd%u", i, i);
    }
  if (options->incoming)
    {
      ADD ("-incoming");
      ADD ("defer");
    }
#undef ADD
  g_ptr_array_add (argv, NULL);
  return argv;
}

static gboolean
wait_for_qmp (VmsTestVm *vm, GError **error)
{
  gint64 deadline
      = g_get_monotonic_time () + QMP_SOCKET_TIMEOUT_MS * (gint64)1000;
  g_autoptr (GError) last_error = NULL;

  while (g_get_monotonic_time () < deadline)
    {
      int status;

      if (waitpid (vm->pid, &status, WNOHANG) == vm->pid)
        {
          g_autofree char *log = read_log_tail (vm->log_path);

          vm->exited = TRUE;
          g_set_error (error, G_SPAWN_ERROR, G_SPAWN_ERROR_FAILED,
                       "QEMU exited at start: %s", log);
          return FALSE;
        }
      if (g_file_test (vm->qmp_path, G_FILE_TEST_EXISTS))
        {
          g_clear_error (&last_error);
          vm->qmp = vms_qmp_connect (vm->qmp_path, 10000, &last_error);
          if (vm->qmp)
            return TRUE;
        }
      g_usleep (POLL_INTERVAL_US);
    }
  g_set_error (error, G_SPAWN_ERROR, G_SPAWN_ERROR_FAILED,
               "QEMU's QMP socket did not come up: %s",
               last_error ? last_error->message : "no socket");
  return FALSE;
}

/* Start QEMU with vm->argv and connect QMP. */
static gboolean
spawn (VmsTestVm *vm, GError **error)
{
  int log_fd;
  gboolean spawned;

  log_fd = open (vm->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (log_fd < 0)
    {
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno),
                   "open %s: %s", vm->log_path, g_strerror (errno));
      return FALSE;
    }
  spawned = g_spawn_async_with_fds (
      NULL, vm->argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD,
      child_setup, NULL, &vm->pid, -1, log_fd, log_fd, error);
  close (log_fd);
  return spawned && wait_for_qmp (vm, error);
}

VmsTestVm *
vms_test_vm_start (const VmsTestVmOptions *options, GError **error)
{
  g_autoptr (VmsTestVm) vm = g_new0 (VmsTestVm, 1);
  g_autoptr (GPtrArray) argv = NULL;

  if (!options->no_guest)
    vms_test_guest_prepare ();
  vm->dir = vms_test_make_tmpdir ("vms-vm");
  vm->qmp_path = g_build_filename (vm->dir, "qmp.sock", NULL);
  vm->serial_path = g_build_filename (vm->dir, "serial.log", NULL);
  if (options->second_qmp)
    vm->qmp2_path = g_build_filename (vm->dir, "vmshift.qmp", NULL);
  vm->log_path = g_build_filename (vm->dir, "qemu.log", NULL);
  vm->trace_path = g_build_filename (vm->dir, "trace.log", NULL);
  for (guint i = 0; i < VMS_TEST_VM_MAX_DISKS; i++)
    if ((options->disks[i].size || options->disks[i].path)
        && !create_disk (vm, i, &options->disks[i], error))
      return NULL;

  argv = build_argv (vm, options);
  g_ptr_array_add (argv, NULL);
  vm->argv = (char **)g_ptr_array_free (g_steal_pointer (&argv), FALSE);
  if (!spawn (vm, error))
    return NULL;
  return g_steal_pointer (&vm);
}

gboolean
vms_test_vm_restart (VmsTestVm *vm, gboolean clean, GError **error)
{
  if (clean)
    {
      g_autoptr (JsonNode) reply
          = vms_qmp_execute (vm->qmp, "quit", NULL, error);

      /* QEMU may close the monitor before it replies. */
      g_clear_error (error);
      if (!vms_test_vm_wait_exit (vm, QMP_SOCKET_TIMEOUT_MS))
        {
          g_set_error (error, G_SPAWN_ERROR, G_SPAWN_ERROR_FAILED,
                       "QEMU did not quit within %d ms", QMP_SOCKET_TIMEOUT_MS);
          return FALSE;
        }
    }
  g_clear_pointer (&vm->qmp, vms_qmp_free);
  vms_test_vm_kill (vm);
  /* Not the dead QEMU's sockets: wait_for_qmp waits for the new ones. */
  g_unlink (vm->qmp_path);
  if (vm->qmp2_path)
    g_unlink (vm->qmp2_path);
  vm->exited = FALSE;
  return spawn (vm, error);
}

gboolean
vms_test_vm_wait_serial (VmsTestVm *vm, const char *needle, guint timeout_ms,
                         GError **error)
{
  gint64 deadline = g_get_monotonic_time () + timeout_ms * (gint64)1000;

  for (;;)
    {
      g_autofree char *contents = NULL;

      if (g_file_get_contents (vm->serial_path, &contents, NULL, NULL)
          && strstr (contents, needle))
        return TRUE;
      if (g_get_monotonic_time () >= deadline)
        {
          g_autofree char *tail = read_log_tail (vm->serial_path);

          g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                       "guest did not print '%s' within %u ms; serial "
                       "log ends: %s",
                       needle, timeout_ms, tail);
          return FALSE;
        }
      g_usleep (POLL_INTERVAL_US);
    }
}

gboolean
vms_test_vm_wait_ready (VmsTestVm *vm, GError **error)
{
  return vms_test_vm_wait_serial (vm, "vms-guest: ready",
                                  VMS_TEST_VM_BOOT_TIMEOUT_MS, error);
}

guint64
vms_test_vm_last_heartbeat (VmsTestVm *vm)
{
  return vms_test_serial_last_heartbeat (vm->serial_path);
}

guint64
vms_test_serial_last_heartbeat (const char *serial_path)
{
  g_autofree char *contents = NULL;
  const char *p, *last = NULL;

  if (!g_file_get_contents (serial_path, &contents, NULL, NULL))
    return 0;
  for (p = contents; (p = strstr (p, "vms-heartbeat ")); p++)
    last = p;
  return last ? g_ascii_strtoull (last + strlen ("vms-heartbeat "), NULL, 10)
              : 0;
}

static gsize
file_size (const char *path)
{
  GStatBuf st;

  return g_stat (path, &st) == 0 ? (gsize)st.st_size : 0;
}

gboolean
vms_test_vm_qemu_io (VmsTestVm *vm, const char *device_id,
                     const char *qemu_io_command, GError **error)
{
  g_autofree char *line = g_strdup_printf (
      "qemu-io -d /machine/peripheral/%s/virtio-backend \"%s\"", device_id,
      qemu_io_command);
  gsize log_before = file_size (vm->log_path);
  g_autofree char *reply = vms_qmp_execute_hmp (vm->qmp, line, error);
  g_autofree char *log = NULL;
  g_autofree char *output = NULL;
  gsize log_length = 0;

  if (!reply)
    return FALSE;
  /* QEMU 7.2's qemu-io prints to QEMU's stdout, not into the HMP reply,
   * and reports failure only in that text.  QEMU's stdout is our log. */
  if (!g_file_get_contents (vm->log_path, &log, &log_length, error))
    return FALSE;
  output = g_strconcat (reply, log_length > log_before ? log + log_before : "",
                        NULL);
  if (strstr (output, "failed") || strstr (output, "not found")
      || strstr (output, "rror"))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   "qemu-io '%s' on %s failed: %s", qemu_io_command, device_id,
                   g_strstrip (output));
      return FALSE;
    }
  return TRUE;
}

guint64
vms_test_vm_bytes_written (VmsTestVm *vm, const char *device)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) stats = vms_guest_query_blockstats (vm->qmp, &error);
  VmsGuestBlockStats *entry;

  vms_assert_ok (stats, error);
  entry = vms_guest_block_stats_find (stats, "-", device);
  assert_non_null (entry);
  return entry->wr_bytes;
}

gboolean
vms_test_vm_wait_exit (VmsTestVm *vm, guint timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + timeout_ms * (gint64)1000;
  int status;

  while (!vm->exited)
    {
      if (waitpid (vm->pid, &status, WNOHANG) == vm->pid)
        vm->exited = TRUE;
      else if (g_get_monotonic_time () >= deadline)
        return FALSE;
      else
        g_usleep (POLL_INTERVAL_US / 5);
    }
  return TRUE;
}

void
vms_test_vm_kill (VmsTestVm *vm)
{
  int status;

  if (vm->exited || vm->pid <= 0)
    return;
  kill (vm->pid, SIGKILL);
  waitpid (vm->pid, &status, 0);
  vm->exited = TRUE;
}

void
vms_test_vm_free (VmsTestVm *vm)
{
  if (!vm)
    return;
  g_clear_pointer (&vm->qmp, vms_qmp_free);
  if (vm->pid > 0)
    vms_test_vm_kill (vm);
  if (g_getenv ("VMS_TEST_KEEP"))
    g_printerr ("# kept %s\n", vm->dir);
  else
    vms_test_rmtree (vm->dir);
  g_free (vm->dir);
  g_free (vm->qmp_path);
  g_free (vm->qmp2_path);
  g_free (vm->serial_path);
  g_free (vm->log_path);
  g_free (vm->trace_path);
  for (guint i = 0; i < VMS_TEST_VM_MAX_DISKS; i++)
    g_free (vm->disk_paths[i]);
  g_strfreev (vm->argv);
  g_free (vm);
}
