/* vmshift: errors of the QMP client.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define VMS_QMP_ERROR (vms_qmp_error_quark ())
GQuark vms_qmp_error_quark (void);

/* The first codes mirror QEMU's QMP error classes, so a caller can react to
 * "CommandNotFound" or "DeviceNotFound" without parsing text; the message of
 * such an error is QEMU's own "desc".  The rest are failures of the channel
 * itself. */
typedef enum
{
  VMS_QMP_ERROR_GENERIC,           /* QMP class GenericError, or a class we do not know */
  VMS_QMP_ERROR_COMMAND_NOT_FOUND, /* QMP class CommandNotFound */
  VMS_QMP_ERROR_DEVICE_NOT_ACTIVE, /* QMP class DeviceNotActive */
  VMS_QMP_ERROR_DEVICE_NOT_FOUND,  /* QMP class DeviceNotFound */
  VMS_QMP_ERROR_KVM_MISSING_CAP,   /* QMP class KVMMissingCap */
  VMS_QMP_ERROR_CONNECT,           /* socket could not be reached */
  VMS_QMP_ERROR_PROTOCOL,          /* peer sent something that is not QMP */
  VMS_QMP_ERROR_TIMEOUT,           /* no reply or event within the time allowed */
  VMS_QMP_ERROR_DISCONNECTED,      /* peer closed the connection (QEMU exited?) */
  VMS_QMP_ERROR_INVALID_ARGUMENT,  /* caller passed something unusable */
} VmsQmpError;

/* Map a QMP error class name to a code; unknown classes map to GENERIC. */
VmsQmpError vms_qmp_error_from_class (const char *error_class);

/* The QMP class name of a code that mirrors one, else NULL. */
const char *vms_qmp_error_class_name (VmsQmpError code);

G_END_DECLS
