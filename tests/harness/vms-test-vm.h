/* vmshift test harness: a real QEMU (TCG) running the test guest.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

#include "vms-qmp.h"

/* A TCG guest boots in about 3 s when the machine is idle; the margin is
 * for two cores shared with parallel tests. */
#define VMS_TEST_VM_BOOT_TIMEOUT_MS 60000

#define VMS_TEST_VM_MAX_DISKS 4

/* What a test VM gets beyond memory_mib MiB of RAM: QEMU < 9.0 under TCG
 * loses guest stores in a migration when a RAM block is a multiple of
 * 256 KiB (see build_argv). */
#define VMS_TEST_VM_RAM_EXTRA (8 * 1024)

typedef struct
{
  const char *format; /* "raw" or "qcow2" */
  guint64 size;       /* bytes; the image is created empty */
  const char *path;   /* use this existing image instead (size ignored) */
} VmsTestDisk;

typedef struct
{
  const char *workload;      /* vms.workload= for the guest; NULL: idle */
  const char *extra_cmdline; /* more kernel parameters, or NULL */
  guint memory_mib;          /* guest RAM; 0: 256 (QEMU gets
                                VMS_TEST_VM_RAM_EXTRA more) */
  VmsTestDisk
      disks[VMS_TEST_VM_MAX_DISKS]; /* disk i is node d<i>, device vd<i> */
  const char *netns;                /* run QEMU inside this network namespace */
  const char *qmp_tcp;              /* also serve QMP on tcp HOST:PORT */
  gboolean incoming;                /* start with -incoming defer */
  gboolean start_paused;            /* -S: the CPUs wait for cont */
  const char *machine;              /* -machine; NULL: q35 */
  gboolean no_guest;   /* no kernel: just a machine, for QMP tests */
  gboolean second_qmp; /* a second monitor for vmshift (QEMU serves
                          one client per monitor) */
  const char *name;    /* -name, or NULL for an unnamed VM */
  const char *uuid;    /* -uuid, or NULL for none */
} VmsTestVmOptions;

typedef struct
{
  char *dir;         /* private directory with all files below */
  char *qmp_path;    /* QMP unix socket, the harness's */
  char *qmp2_path;   /* second monitor socket, or NULL */
  char *serial_path; /* guest serial console log */
  char *log_path;    /* QEMU's stderr */
  char *trace_path;  /* QEMU's trace of QMP commands and migration states */
  char *disk_paths[VMS_TEST_VM_MAX_DISKS]; /* images, NULL-terminated */
  GPid pid;                                /* QEMU's process id */
  gboolean exited;                         /* QEMU has been reaped */
  VmsQmp *qmp;                             /* connected QMP client */
  char **argv;                             /* QEMU's command line */
} VmsTestVm;

/* The end of QEMU's trace: the QMP commands and migration states that led
 * to a failure, for a test's message.  Never NULL. */
char *vms_test_vm_trace_tail (VmsTestVm *vm);

/* Build the guest kernel and initramfs once per process (the build is
 * cached and safe to run from parallel tests).  Exits 77 when a needed
 * package is missing. */
void vms_test_guest_prepare (void);

/* The guest's kernel and initramfs, after vms_test_guest_prepare(). */
const char *vms_test_guest_kernel (void);
const char *vms_test_guest_initrd (void);

/* The highest "vms-heartbeat N" in a serial log file, 0 if none. */
guint64 vms_test_serial_last_heartbeat (const char *serial_path);

/* Start QEMU, connect QMP.  QEMU dies with the test process even when the
 * test crashes.  Returns NULL with an error that includes QEMU's log. */
VmsTestVm *vms_test_vm_start (const VmsTestVmOptions *options, GError **error);

/* Wait until the serial log contains needle. */
gboolean vms_test_vm_wait_serial (VmsTestVm *vm, const char *needle,
                                  guint timeout_ms, GError **error);

/* The guest printed "vms-guest: ready". */
gboolean vms_test_vm_wait_ready (VmsTestVm *vm, GError **error);

/* The highest "vms-heartbeat N" seen on the serial console, 0 if none. */
guint64 vms_test_vm_last_heartbeat (VmsTestVm *vm);

/* Write through the guest's virtio device with HMP qemu-io, e.g.
 * "write -P 0x11 1M 64k"; fails if qemu-io reports an error (a failed I/O,
 * a pattern mismatch on "read -P", an unknown command). */
gboolean vms_test_vm_qemu_io (VmsTestVm *vm, const char *device_id,
                              const char *qemu_io_command, GError **error);

/* SIGKILL QEMU and reap it. */
void vms_test_vm_kill (VmsTestVm *vm);

/* Stop QEMU, with QMP "quit" when clean (qcow2 images keep their
 * persistent bitmaps) or else SIGKILL (a crash: raw images lose their
 * bitmaps, qcow2's are left inconsistent), and start it again with the
 * same command line and images.  The guest boots again; wait with
 * vms_test_vm_wait_ready. */
gboolean vms_test_vm_restart (VmsTestVm *vm, gboolean clean, GError **error);

/* Bytes the guest has written through device (e.g. "vd0") since QEMU
 * started (query-blockstats wr_bytes); fails the test if there is no
 * such device.  By device: a destination's nodes have other names. */
guint64 vms_test_vm_bytes_written (VmsTestVm *vm, const char *device);

/* Wait up to timeout_ms for QEMU to exit by itself; TRUE if it did. */
gboolean vms_test_vm_wait_exit (VmsTestVm *vm, guint timeout_ms);

/* Kill QEMU if still running and remove every file. */
void vms_test_vm_free (VmsTestVm *vm);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsTestVm, vms_test_vm_free)
