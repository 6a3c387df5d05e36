/* vmshift: errors of the QMP client.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-qmp-error.h"

G_DEFINE_QUARK (vms-qmp-error-quark, vms_qmp_error)

static const struct
{
  VmsQmpError code;        /* our code */
  const char *class_name;  /* QEMU's QapiErrorClass name */
} class_table[] = {
  { VMS_QMP_ERROR_GENERIC, "GenericError" },
  { VMS_QMP_ERROR_COMMAND_NOT_FOUND, "CommandNotFound" },
  { VMS_QMP_ERROR_DEVICE_NOT_ACTIVE, "DeviceNotActive" },
  { VMS_QMP_ERROR_DEVICE_NOT_FOUND, "DeviceNotFound" },
  { VMS_QMP_ERROR_KVM_MISSING_CAP, "KVMMissingCap" },
};

VmsQmpError
vms_qmp_error_from_class (const char *error_class)
{
  for (gsize i = 0; i < G_N_ELEMENTS (class_table); i++)
    if (g_strcmp0 (error_class, class_table[i].class_name) == 0)
      return class_table[i].code;
  return VMS_QMP_ERROR_GENERIC;
}

const char *
vms_qmp_error_class_name (VmsQmpError code)
{
  for (gsize i = 0; i < G_N_ELEMENTS (class_table); i++)
    if (class_table[i].code == code)
      return class_table[i].class_name;
  return NULL;
}
