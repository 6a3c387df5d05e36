/* vmshift: what the subcommands of the vmshift program share.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

#include "vms-cli-main.h"

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
int vms_cmd_estimate (int argc, char **argv);

/* What vmshift estimate predicted for one VM. */
typedef struct
{
  double total_pause_s, total_mirror_s;
  double downtime_pause_s, downtime_mirror_s;
  guint connections; /* best link configuration */
  guint32 request_size;
} VmsPrediction;

/* Read STATE_DIR/estimate-ID.json and find the VM with this UUID (or,
 * when it has none, this name; unnamed, this QMP address). */
gboolean vms_estimate_load_prediction (const char *state_dir, const char *id,
                                       const char *vm_uuid, const char *vm_name,
                                       const char *source, VmsPrediction *out,
                                       GError **error);

/* Print "vmshift: SUBCOMMAND: message" on stderr. */
void vms_cli_error (const char *subcommand, const char *format, ...)
    G_GNUC_PRINTF (2, 3);

/* The exit code that says what kind of failure error is. */
int vms_cli_exit_code (const GError *error);
