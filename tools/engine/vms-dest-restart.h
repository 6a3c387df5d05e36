/* vmshift engine: starting the destination QEMU again (--dest-restart).
 * QEMU 7.2's destination exits when its incoming migration fails, and
 * vmshift, which did not start it, cannot start it again by itself: the
 * user's command can (a unit of their service manager, a script), so that
 * a memory stream broken by a reset is retried in the same run, as the
 * libvirt backend's is (libvirt starts its destination itself).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* The command may take this long; it must return once the destination
 * QEMU is started (or starting: its monitor is waited for afterwards). */
#define VMS_DEST_RESTART_TIMEOUT_MS (60 * 1000)

/* Whether a stop was asked (FALSE with error set: stop). */
typedef gboolean (*VmsDestRestartGoOn) (gpointer user_data, GError **error);

/* Run argv (no shell; its standard output goes to our standard error, as
 * JSON events own our standard output), waiting for it to exit, at most
 * VMS_DEST_RESTART_TIMEOUT_MS, and asking go_on every 100 ms.  FALSE when
 * it cannot start, fails, is killed for taking too long, or a stop was
 * asked (it is then killed). */
gboolean vms_dest_restart_run (char *const *argv, VmsDestRestartGoOn go_on,
                               gpointer user_data, GError **error);

G_END_DECLS
