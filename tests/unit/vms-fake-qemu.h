/* Unit test helper: a scripted QEMU monitor on a socketpair.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The script says, command by command, what the client must send and what
 * QEMU answers, with events before the reply (as QEMU sends STOP before the
 * reply to "stop"), and after it, optionally after a pause.  Any command
 * not in the script is refused and reported, so a test proves both what a
 * function sends and that it sends nothing more (no polling).
 */
#pragma once

#include <glib.h>

#include "vms-qmp.h"

/* An event line for a script, with a fixed timestamp. */
#define VMS_FAKE_EVENT(name, data)                                             \
  "{\"event\": \"" name "\", \"data\": " data ", \"timestamp\": "              \
  "{\"seconds\": 1, \"microseconds\": 0}}\r\n"

typedef struct
{
  const char *command; /* what the client must send next; NULL ends */
  const char *before;  /* lines sent before the reply (events), or NULL */
  const char *reply;   /* JSON text of "return"; NULL: a GenericError */
  const char *error;   /* the error's desc when reply is NULL */
  guint delay_ms;      /* pause after the reply, before after; the client
                          must send nothing meanwhile (it should be waiting
                          for those events, not polling) */
  const char *after;   /* lines sent after the reply and pause, or NULL */
  gboolean hang_up;    /* then close the connection, as QEMU on quit */
} VmsFakeStep;

typedef struct _VmsFakeQemu VmsFakeQemu;

/* Start the fake on steps (kept by reference: keep them alive) and return
 * a client connected to it. */
VmsFakeQemu *vms_fake_qemu_start (const VmsFakeStep *steps, VmsQmp **qmp_out);

/* Write lines to the client now, outside any step (events that arrive
 * between commands). */
void vms_fake_qemu_send (VmsFakeQemu *fake, const char *lines);

/* After the client is freed: wait for the fake to see the hang-up and
 * return what went against the script (caller frees), or NULL. */
char *vms_fake_qemu_finish (VmsFakeQemu *fake);
