/* vmshift: the command dispatch shared by vmshift and vmshift-sink.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct
{
  const char *name;                   /* subcommand as typed */
  const char *summary;                /* one line for PROGRAM --help */
  int (*run) (int argc, char **argv); /* argv[0] is the subcommand */
} VmsCliCommand;

typedef struct
{
  const char *name;              /* program name, e.g. "vmshift" */
  const char *version;           /* printed by --version */
  const char *description;       /* one paragraph for --help */
  const char *see_also;          /* where the details are, for --help */
  const VmsCliCommand *commands; /* the subcommands */
  gsize n_commands;              /* how many */
} VmsCliProgram;

/* Handle --help, -h, help [COMMAND], --version, -V, and run the subcommand
 * named by argv[1].  Returns the exit status: 0, 2 for usage errors, or
 * what the subcommand returned. */
int vms_cli_main (const VmsCliProgram *program, int argc, char **argv);

/* A cancellable that SIGINT and SIGTERM cancel (Ctrl-C, vmshift abort):
 * the way a command asks its engine to stop cleanly.  Call once, from
 * main's thread; the result lives as long as the process. */
GCancellable *vms_cli_cancel_on_signals (void);

G_END_DECLS
