/* vmshift: the command dispatch shared by vmshift and vmshift-sink.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-cli-main.h"

#include <glib-unix.h>

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

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
      char *help_argv[] = { argv[2], (char *)"--help", NULL };

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

/* A signal handler may only do async-signal-safe things, and
 * g_cancellable_cancel() takes locks: the handler writes a byte to a
 * pipe, and a thread reading it cancels.  (g_unix_signal_add would need
 * a main loop that the blocking engine does not run.) */
static int signal_pipe[2] = { -1, -1 };

static void
on_stop_signal (int signal_number)
{
  int saved_errno = errno;
  char byte = 1;

  if (write (signal_pipe[1], &byte, 1) < 0)
    {
      /* The pipe is full: a cancel is already on its way. */
    }
  errno = saved_errno;
}

static gpointer
cancel_on_read (gpointer data)
{
  GCancellable *cancellable = data;
  char byte;

  while (read (signal_pipe[0], &byte, 1) < 0 && errno == EINTR)
    ;
  g_cancellable_cancel (cancellable);
  return NULL;
}

GCancellable *
vms_cli_cancel_on_signals (void)
{
  static GCancellable *cancellable;
  struct sigaction action = { .sa_handler = on_stop_signal };

  if (cancellable)
    return cancellable;
  if (!g_unix_open_pipe (signal_pipe, FD_CLOEXEC, NULL))
    g_error ("vmshift: cannot make a pipe for signals: %s", g_strerror (errno));
  fcntl (signal_pipe[1], F_SETFL, O_NONBLOCK);
  cancellable = g_cancellable_new ();
  g_thread_unref (g_thread_new ("vms-signals", cancel_on_read, cancellable));
  sigemptyset (&action.sa_mask);
  /* No SA_RESTART: a blocking wait ends at once and looks again. */
  sigaction (SIGINT, &action, NULL);
  sigaction (SIGTERM, &action, NULL);
  return cancellable;
}
