/* vmshift: what the subcommands of the vmshift program share.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

#include "vms-cli-main.h"
/* migrate --estimate reads what estimate wrote. */
#include "vms-estimate-file.h"

/* Exit codes, documented in vmshift(1).  Scripts tell "QEMU said no" from
 * "could not talk to QEMU" by them. */
enum
{
  VMS_EXIT_OK = 0,     /* success */
  VMS_EXIT_FAILED = 1, /* the operation ran and failed (e.g. QMP error reply) */
  VMS_EXIT_USAGE = 2,  /* bad command line */
  VMS_EXIT_CONNECT = 3, /* a peer could not be reached, broke, or timed out */
  VMS_EXIT_STOPPED = 4, /* stopped on request (Ctrl-C); state saved */
};

int vms_cmd_qmp (int argc, char **argv);
int vms_cmd_sync (int argc, char **argv);
int vms_cmd_migrate (int argc, char **argv);
int vms_cmd_abort (int argc, char **argv);
int vms_cmd_job (int argc, char **argv);
int vms_cmd_estimate (int argc, char **argv);
int vms_cmd_seed (int argc, char **argv);
int vms_cmd_plan (int argc, char **argv);

/* What 'vmshift abort JOB' does (vms-cmd-abort.c): the vmshift running
 * the job is asked to roll it back (SIGTERM) and waited for, up to
 * timeout_s; a dead one's job is rolled back here.  An exit code. */
int vms_cli_abort_job (const char *state_dir, const char *id, int timeout_s);
#define VMS_ABORT_DEFAULT_TIMEOUT_S 120

/* Print "vmshift: SUBCOMMAND: message" on stderr. */
void vms_cli_error (const char *subcommand, const char *format, ...)
    G_GNUC_PRINTF (2, 3);

/* The exit code that says what kind of failure error is. */
int vms_cli_exit_code (const GError *error);
