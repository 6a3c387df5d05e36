/* vmshift qemu-filter: read-only NBD exports of the source's disks, served
 * by QEMU's own NBD server on a unix socket in the job's state directory.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

#include "vms-qmp.h"

G_BEGIN_DECLS

/* Errors start with what was being done on which socket, node, export or
 * bitmap, followed by QEMU's own message (VMS_QMP_ERROR) or, for checks of
 * our own, a G_IO_ERROR. */

/* Start QEMU's NBD server on socket_path.  If it is already running on
 * that same socket (a resumed job), that is success; running elsewhere
 * (someone else's) is a G_IO_ERROR_BUSY error that says so.  QEMU 7.2
 * cannot report where its server listens, so "that same socket" means:
 * socket_path accepts a connection, greets in NBD, and its listener is the
 * QEMU process at the other end of qmp (compared when QMP runs over a
 * unix socket; over TCP the pid check is skipped). */
gboolean vms_export_server_start (VmsQmp *qmp, const char *socket_path,
                                  GError **error);
/* Whether QEMU's running NBD server listens on socket_path, by the test
 * vms_export_server_start makes (a G_IO_ERROR says why not). */
gboolean vms_export_server_serves (VmsQmp *qmp, const char *socket_path,
                                   GError **error);

/* Stop the server; this also deletes every NBD export (QEMU waits for
 * that before it answers).  A server that is not running is success. */
gboolean vms_export_server_stop (VmsQmp *qmp, GError **error);

/* Export node read-only as export_name (also the block export id), with
 * the disabled bitmap bitmap_name visible as qemu:dirty-bitmap:NAME, or
 * no bitmap when NULL.  An existing export of the same name is replaced
 * (resume after a crash of vmshift), as by vms_export_remove.  QEMU
 * refuses a recording bitmap ("Enabled bitmap 'B' incompatible with
 * readonly export"): switch the round first.  The server must run. */
gboolean vms_export_add (VmsQmp *qmp, const char *node, const char *export_name,
                         const char *bitmap_name, GError **error);

/* Remove the export and wait until QEMU has really dropped it (the
 * BLOCK_EXPORT_DELETED event), so that its bitmap can be removed next.
 * Absent exports are not an error.  NBD clients still connected are
 * disconnected (block-export-del mode "hard"): their round is over, and
 * waiting for them could wait forever with the bitmap busy.  Uses the
 * client's event queue: BLOCK_EXPORT_DELETED events queued before the
 * call are dropped. */
gboolean vms_export_remove (VmsQmp *qmp, const char *export_name,
                            GError **error);

G_END_DECLS
