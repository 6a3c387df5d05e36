/* vmshift: live migration of QEMU/KVM virtual machines with their disks.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-config.h"
#include "vms-cli.h"
#include "vms-qmp.h"

#include <locale.h>
#include <stdio.h>

static const VmsCliCommand commands[] = {
  { "qmp", "Run one QMP command on a QEMU monitor socket and print the reply",
    vms_cmd_qmp },
  { "sync", "Copy a running VM's disks to a sink, then dirty rounds",
    vms_cmd_sync },
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
vms_cli_exit_code_for (const GError *error)
{
  if (error->domain != VMS_QMP_ERROR)
    return VMS_EXIT_FAILED;
  switch ((VmsQmpError) error->code)
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

static void
print_usage (FILE *stream)
{
  fprintf (stream,
           "Usage: vmshift COMMAND [OPTION...] [ARGUMENT...]\n"
           "       vmshift --help | --version\n"
           "\n"
           "Live-migrate QEMU/KVM virtual machines together with their "
           "local disks.\n"
           "\n"
           "Commands:\n");
  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
    fprintf (stream, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf (stream,
           "\n"
           "Run 'vmshift COMMAND --help' for the options of a command.\n"
           "See vmshift(1) for details and exit codes.\n");
}

int
main (int argc, char **argv)
{
  setlocale (LC_ALL, "");

  if (argc < 2)
    {
      print_usage (stderr);
      return VMS_EXIT_USAGE;
    }
  if (g_str_equal (argv[1], "--help") || g_str_equal (argv[1], "-h")
      || g_str_equal (argv[1], "help"))
    {
      if (argc > 2 && g_str_equal (argv[1], "help"))
        {
          char *help_argv[] = { argv[2], (char *) "--help", NULL };

          for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
            if (g_str_equal (argv[2], commands[i].name))
              return commands[i].run (2, help_argv);
          vms_cli_error (NULL, "unknown command '%s'", argv[2]);
          return VMS_EXIT_USAGE;
        }
      print_usage (stdout);
      return VMS_EXIT_OK;
    }
  if (g_str_equal (argv[1], "--version") || g_str_equal (argv[1], "-V"))
    {
      printf ("%s %s\n", VMS_PACKAGE, VMS_VERSION);
      return VMS_EXIT_OK;
    }

  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
    if (g_str_equal (argv[1], commands[i].name))
      return commands[i].run (argc - 1, argv + 1);

  vms_cli_error (NULL, "unknown command '%s' (see 'vmshift --help')",
                 argv[1]);
  return VMS_EXIT_USAGE;
}
