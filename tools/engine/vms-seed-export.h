/* vmshift engine: a running VM's disks written to a seed (lib/vms-seed.h)
 * to ship on a device, with the dirty bitmaps that make the rest a delta.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "vms-replicate.h"

G_BEGIN_DECLS

/* Write every disk of rep's new job (opened, its NBD server started) to a
 * new seed at path, each disk's recording bitmap started before the disk
 * is read, and read the seed back to check it.  The job's disks are then
 * past their background copy: once the seed is imported at the sink
 * (vmshift-sink seed import), a resume sends only what the bitmaps
 * recorded since.  A seed that could not be finished is removed (a file)
 * or left saying so (a device). */
gboolean vms_seed_export (VmsReplicate *rep, const char *path, GError **error);

G_END_DECLS
