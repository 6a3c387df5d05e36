/* vmshift: writing back files another process writes through the page
 * cache (a source QEMU's images), so that its flush at the switchover
 * finds little left to write.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _VmsWriteback VmsWriteback;

/* How often migrate writes the source's images back during the memory
 * phase: QEMU's stop then waits only for what the guest wrote in the last
 * few of these ms.  The estimate counts on it too. */
#define VMS_WRITEBACK_INTERVAL_MS 20

VmsWriteback *vms_writeback_new (void);
void vms_writeback_free (VmsWriteback *writeback);

/* Watch the file or block device at path.  FALSE (and nothing watched)
 * when it is not one this host can open: a QEMU on another host, a
 * network disk, a "json:" filename. */
gboolean vms_writeback_add (VmsWriteback *writeback, const char *path);

/* Write back every watched file's dirty pages (fdatasync) interval_ms
 * after the last time ended, in a thread of its own until freed: a flush
 * waits for the disk, and the caller, who must react to QEMU at once,
 * never does.  Errors are left to QEMU's own flush. */
void vms_writeback_start_thread (VmsWriteback *writeback, guint interval_ms);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsWriteback, vms_writeback_free)

G_END_DECLS
