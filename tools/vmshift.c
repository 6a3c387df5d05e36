/* vmshift: live migration of QEMU/KVM virtual machines with their disks.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-config.h"
#include "vms-cli.h"
#include "vms-copy.h"
#include "vms-migration.h"
#include "vms-qmp.h"

#include <stdio.h>

static const VmsCliCommand commands[] = {
  { "qmp", "Run one QMP command on a QEMU monitor socket and print the reply",
    vms_cmd_qmp },
  { "sync", "Copy a running VM's disks to a sink, then dirty rounds",
    vms_cmd_sync },
  { "estimate", "Predict duration, downtime and method before migrating",
    vms_cmd_estimate },
  { "migrate", "Live-migrate a running VM with its disks to another QEMU",
    vms_cmd_migrate },
  { "abort", "Stop a running migration; the source VM keeps running",
    vms_cmd_abort },
  { "job", "List jobs, or drop one with its bitmaps, exports and state",
    vms_cmd_job },
  { "seed", "Write a running VM's disks to a seed to ship on a device",
    vms_cmd_seed },
  { "plan", "Check or run a migration plan of many VMs (vmshift-plan(5))",
    vms_cmd_plan },
};

void
vms_cli_error (const char *subcommand, const char *format, ...)
{
  va_list args;
  g_autofree char *message = NULL;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  if (subcommand)
    g_printerr ("vmshift: %s: %s\n", subcommand, message);
  else
    g_printerr ("vmshift: %s\n", message);
}

int
vms_cli_exit_code (const GError *error)
{
  if (error->domain == G_OPTION_ERROR
      || (error->domain == VMS_MIGRATION_ERROR
          && error->code == VMS_MIGRATION_ERROR_INVALID))
    return VMS_EXIT_USAGE;
  if (error->domain == VMS_COPY_ERROR && error->code == VMS_COPY_ERROR_STOPPED)
    return VMS_EXIT_STOPPED;
  if (error->domain == G_IO_ERROR && error->code == G_IO_ERROR_CANCELLED)
    return VMS_EXIT_STOPPED;
  if (error->domain == VMS_COPY_ERROR
      && (error->code == VMS_COPY_ERROR_CONNECT
          || error->code == VMS_COPY_ERROR_TIMEOUT))
    return VMS_EXIT_CONNECT;
  if (error->domain != VMS_QMP_ERROR)
    return VMS_EXIT_FAILED;
  switch ((VmsQmpError)error->code)
    {
    case VMS_QMP_ERROR_CONNECT:
    case VMS_QMP_ERROR_PROTOCOL:
    case VMS_QMP_ERROR_TIMEOUT:
    case VMS_QMP_ERROR_DISCONNECTED:
      return VMS_EXIT_CONNECT;
    case VMS_QMP_ERROR_INVALID_ARGUMENT:
      return VMS_EXIT_USAGE;
    default:
      return VMS_EXIT_FAILED;
    }
}

int
main (int argc, char **argv)
{
  const VmsCliProgram program = {
    .name = VMS_PACKAGE,
    .version = VMS_VERSION,
    .description = "Live-migrate QEMU/KVM virtual machines together with "
                   "their local disks.",
    .see_also = "vmshift(1) for details and exit codes",
    .commands = commands,
    .n_commands = G_N_ELEMENTS (commands),
  };

  return vms_cli_main (&program, argc, argv);
}
