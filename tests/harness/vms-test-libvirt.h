/* vmshift test harness: real libvirt hosts on one machine.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * How it works.  Each host is a libvirtd and a virtlogd started by the
 * script tests/libvirt-host (meson passes its path in VMS_LIBVIRT_HOST)
 * inside one of the network namespaces of VmsTestHosts (so host A listens
 * on 10.231.0.1, host B on 10.231.0.2, joined by veth) and inside a
 * private mount and UTS namespace of its own: a temporary directory DIR
 * holds the host's /run, /var/lib/libvirt, /etc/libvirt, /var/log/libvirt
 * and /var/cache/libvirt, bind-mounted over the real ones, which stay
 * untouched.  Each host has its own hostname (vms-host-a, vms-host-b) and
 * host_uuid, and its own images directory (/var/lib/libvirt/images inside,
 * DIR/lib/libvirt/images outside): storage is not shared, as between two
 * real machines.  The test process reaches a host through its socket,
 * qemu:///system?socket=DIR/run/libvirt/libvirt-sock, and reads the files
 * of its guests (images, serial logs) at their real paths under DIR.
 *
 * Guests are the test guest of vms-test-vm.h as libvirt domains of type
 * 'qemu' (TCG), booted directly from the built kernel and initramfs, whose
 * paths are the same on both hosts.  Disk i of a guest NAME with target T
 * is the image NAME-T.FORMAT in the host's images directory; the serial
 * console goes to /var/log/libvirt/qemu/NAME-serial.log inside the host.
 *
 * Live migration between the hosts, the baseline vmshift is compared with
 * (create the destination images first; libvirt 9 needs them to exist):
 *   virsh -c URI_A migrate --live --copy-storage-all --persistent
 *         --undefinesource DOMAIN URI_B --migrateuri tcp://10.231.0.2
 *
 * Needs root, libvirt-daemon-system, libvirt-clients, qemu-system-x86,
 * qemu-utils, iproute2, util-linux: vms_test_libvirt_require() exits 77
 * (skipped) when one is missing.  A host starts in ~8 s the first time
 * (libvirtd probes QEMU), then in 0.2 s from the probe cache meson names
 * in VMS_LIBVIRT_CAPS_CACHE.  vms_test_libvirt_host_free() destroys the
 * domains and ends every process of the host; call it before
 * vms_test_hosts_free().  If the test process dies, the host stops by
 * itself.  More in tests/README.md.
 */
#pragma once

#include <glib.h>

#include "vms-test-netns.h"

#define VMS_TEST_LIBVIRT_MAX_DISKS 4

typedef struct
{
  char *dir;        /* the host's directory (removed by free) */
  char *uri;        /* qemu:///system?socket=DIR/run/libvirt/libvirt-sock */
  char *images_dir; /* DIR/lib/libvirt/images: real path, visible from the
                       test process; /var/lib/libvirt/images in the host */
  char *netns;      /* network namespace the daemons and QEMUs run in */
  char *address;    /* the host's address on the link */
  char *hostname;   /* vms-host-a or vms-host-b */
} VmsTestLibvirtHost;

/* Exit 77 (skipped) unless root and every program a libvirt host needs is
 * here; call it before making the hosts' namespaces. */
void vms_test_libvirt_require (void);

/* Start libvirtd and virtlogd as host index (0: A, 1: B) of hosts.  When
 * hook_program is given, it becomes the host's qemu hook
 * /etc/libvirt/hooks/qemu.d/vmshift, and hook_config_text (if given)
 * /etc/libvirt/hooks/vmshift.conf.  Exits 77 when not root or a program
 * is missing. */
VmsTestLibvirtHost *vms_test_libvirt_host_start (VmsTestHosts *hosts,
                                                 guint index,
                                                 const char *hook_program,
                                                 const char *hook_config_text,
                                                 GError **error);

/* The same with more options for tests/libvirt-host start (NULL-
 * terminated, or NULL), such as "--migrate-tls", DIR, "--log-monitor". */
VmsTestLibvirtHost *vms_test_libvirt_host_start_with (
    VmsTestHosts *hosts, guint index, const char *hook_program,
    const char *hook_config_text, const char *const *extra_args,
    GError **error);

/* Stop the host (domains destroyed, every process ended) and remove its
 * directory (kept when VMS_TEST_KEEP is set). */
void vms_test_libvirt_host_free (VmsTestLibvirtHost *host);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsTestLibvirtHost, vms_test_libvirt_host_free)

/* Run "virsh -c URI first_arg ..." (NULL-terminated, no shell), bounded in
 * time; fails with virsh's stderr.  output (may be NULL) receives stdout. */
gboolean vms_test_libvirt_virsh (VmsTestLibvirtHost *host, char **output,
                                 GError **error, const char *first_arg, ...)
    G_GNUC_NULL_TERMINATED;

typedef struct
{
  const char *name;          /* domain name */
  const char *workload;      /* vms.workload= as in vms-test-vm; NULL: idle */
  guint memory_mib;          /* 0: 256 */
  struct
  {
    const char *format;      /* "raw" or "qcow2" */
    guint64 size;            /* bytes; 0 ends the list */
    const char *target;      /* "vda", "vdb", ... */
  } disks[VMS_TEST_LIBVIRT_MAX_DISKS];
  const char *extra_cmdline; /* more kernel parameters, or NULL */
} VmsTestLibvirtGuest;

/* Create guest's empty images in host's images directory (also what a
 * migration destination needs before --copy-storage-all). */
gboolean vms_test_libvirt_guest_create_images (VmsTestLibvirtHost *host,
                                               const VmsTestLibvirtGuest *guest,
                                               GError **error);

/* The RAM QEMU gives guest, in bytes: its <memory>, and under
 * tests/libvirt-qemu (VMS_LIBVIRT_QEMU) VMS_TEST_VM_RAM_EXTRA more. */
guint64 vms_test_libvirt_guest_ram (const VmsTestLibvirtGuest *guest);

/* The domain XML of guest as the harness defines it (caller frees). */
char *vms_test_libvirt_guest_xml (const VmsTestLibvirtGuest *guest);

/* Create the images, define the domain (persistent), start it and wait
 * for the guest's "vms-guest: ready" line. */
gboolean vms_test_libvirt_guest_start (VmsTestLibvirtHost *host,
                                       const VmsTestLibvirtGuest *guest,
                                       GError **error);

/* Real path of an image in host's images directory (caller frees). */
char *vms_test_libvirt_guest_image (VmsTestLibvirtHost *host,
                                    const char *file_name);

/* Real path of domain's serial log on host (caller frees). */
char *vms_test_libvirt_serial_path (VmsTestLibvirtHost *host,
                                    const char *domain);

/* Wait until domain's serial log on host contains needle. */
gboolean vms_test_libvirt_wait_serial (VmsTestLibvirtHost *host,
                                       const char *domain, const char *needle,
                                       guint timeout_ms, GError **error);

/* The domain's state on host as "virsh domstate" prints it ("running",
 * "paused", "shut off"), or NULL if host does not know the domain. */
char *vms_test_libvirt_domstate (VmsTestLibvirtHost *host,
                                 const char *domain);

/* The highest "vms-heartbeat N" in a serial log, 0 if none. */
guint64 vms_test_libvirt_last_heartbeat (const char *serial_path);
