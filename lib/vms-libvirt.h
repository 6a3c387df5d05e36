/* vmshift: libvirt connections, domains, and QMP through libvirt.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>
#include <libvirt/libvirt.h>

#include "vms-qmp.h"

G_BEGIN_DECLS

#define VMS_LIBVIRT_ERROR (vms_libvirt_error_quark ())
GQuark vms_libvirt_error_quark (void);

typedef enum
{
  VMS_LIBVIRT_ERROR_FAILED,      /* libvirt said no; its message follows */
  VMS_LIBVIRT_ERROR_CONNECT,     /* the URI could not be opened */
  VMS_LIBVIRT_ERROR_NO_DOMAIN,   /* no such domain */
  VMS_LIBVIRT_ERROR_NOT_RUNNING, /* the domain is not running */
  VMS_LIBVIRT_ERROR_UNSUPPORTED, /* a disk or setting vmshift cannot move */
  VMS_LIBVIRT_ERROR_VERSION,     /* libvirt or its driver is too old */
} VmsLibvirtError;

/* Node names of -blockdev, which the disk copy works on, came with
 * libvirt 5.10 (with QEMU 4.2); the QEMU monitor event API and migration
 * parameters are older. */
#define VMS_LIBVIRT_MIN_VERSION 5010000UL

/* Start libvirt's event loop in a thread of its own, once per process:
 * keepalives, QEMU monitor events and the close callback need one. */
gboolean vms_libvirt_init (GError **error);

/* Open uri (NULL: libvirt's default) read-write, with keepalives, and
 * check the libvirt version. */
virConnectPtr vms_libvirt_connect (const char *uri, GError **error);

/* A domain by name, UUID or id, with a message naming the host. */
virDomainPtr vms_libvirt_lookup (virConnectPtr connection, const char *name,
                                 GError **error);

/* The domain's state as virsh names it ("running", "paused", "shut off"). */
const char *vms_libvirt_state_name (int state);

/* Set error from libvirt's last error, prefixed by the printf-style
 * message: "MESSAGE: LIBVIRT'S MESSAGE". */
void vms_libvirt_set_error (GError **error, VmsLibvirtError code,
                            const char *format, ...) G_GNUC_PRINTF (3, 4);

/* A QMP client whose commands run in the domain's QEMU through
 * virDomainQemuMonitorCommand and whose events come from
 * virConnectDomainQemuMonitorEventRegister.  Every caller of VmsQmp works
 * unchanged over it; when the domain stops running, the client reports
 * the connection closed.  libvirt marks such a domain tainted
 * ("custom-monitor"). */
VmsQmp *vms_libvirt_qmp_open (virDomainPtr domain, GError **error);

/* libvirt's types as g_autoptr knows them. */
G_DEFINE_AUTOPTR_CLEANUP_FUNC (virConnect, virConnectClose)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (virDomain, virDomainFree)

G_END_DECLS
