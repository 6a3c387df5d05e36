/* vmshift: the command dispatch shared by vmshift and vmshift-sink.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-cli-main.h"

#include <locale.h>
#include <stdio.h>

/* Exit status of a usage error, the same in every vmshift program. */
#define EXIT_USAGE 2

static void
print_usage (const VmsCliProgram *program, FILE *stream)
{
  fprintf (stream,
           "Usage: %s COMMAND [OPTION...] [ARGUMENT...]\n"
           "       %s --help | --version\n"
           "\n"
           "%s\n"
           "\n"
           "Commands:\n",
           program->name, program->name, program->description);
  for (gsize i = 0; i < program->n_commands; i++)
    fprintf (stream, "  %-10s %s\n", program->commands[i].name,
             program->commands[i].summary);
  fprintf (stream,
           "\n"
           "Run '%s COMMAND --help' for the options of a command.\n"
           "See %s.\n",
           program->name, program->see_also);
}

static const VmsCliCommand *
find_command (const VmsCliProgram *program, const char *name)
{
  for (gsize i = 0; i < program->n_commands; i++)
    if (g_str_equal (name, program->commands[i].name))
      return &program->commands[i];
  return NULL;
}

int
vms_cli_main (const VmsCliProgram *program, int argc, char **argv)
{
  const VmsCliCommand *command;

  setlocale (LC_ALL, "");
  if (argc < 2)
    {
      print_usage (program, stderr);
      return EXIT_USAGE;
    }
  if (g_str_equal (argv[1], "help") && argc > 2)
    {
      char *help_argv[] = { argv[2], (char *) "--help", NULL };

      command = find_command (program, argv[2]);
      if (command)
        return command->run (2, help_argv);
      g_printerr ("%s: unknown command '%s'\n", program->name, argv[2]);
      return EXIT_USAGE;
    }
  if (g_str_equal (argv[1], "--help") || g_str_equal (argv[1], "-h")
      || g_str_equal (argv[1], "help"))
    {
      print_usage (program, stdout);
      return 0;
    }
  if (g_str_equal (argv[1], "--version") || g_str_equal (argv[1], "-V"))
    {
      printf ("%s %s\n", program->name, program->version);
      return 0;
    }
  command = find_command (program, argv[1]);
  if (command)
    return command->run (argc - 1, argv + 1);
  g_printerr ("%s: unknown command '%s' (see '%s --help')\n", program->name,
              argv[1], program->name);
  return EXIT_USAGE;
}
