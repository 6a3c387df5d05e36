/* vmshift qemu-filter: QEMU's I/O throttling of a guest's disk device, for
 * write backpressure.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * QEMU 7.2 throttles a device's BlockBackend with block_set_io_throttle
 * (id: the device's qdev path, e.g. /machine/peripheral/vd0/virtio-backend;
 * the bare id "vd0" names the virtio proxy and is refused with "Device does
 * not have a block device backend"), and query-block reports the limits in
 * the device's "inserted" object: bps, bps_rd, bps_wr, iops, iops_rd,
 * iops_wr always, the *_max, *_max_length and iops_size members when set,
 * and "group" while any limit is.  Every call sets the whole set: a member
 * left out is 0 (no limit), so restoring means sending back all of them.
 * A total limit (bps) and a per-direction one (bps_wr) cannot be set
 * together.  All zero takes the device out of its throttle group.
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#include "vms-qmp.h"

G_BEGIN_DECLS

/* The limits of the device of disk (VmsDisk.name): a new object with the
 * members of query-block's "inserted" that block_set_io_throttle takes
 * (caller unrefs).  Fails when no device has that name. */
JsonObject *vms_throttle_query (VmsQmp *qmp, const char *disk, GError **error);

/* Give disk's device exactly limits (members missing from it are 0). */
gboolean vms_throttle_set (VmsQmp *qmp, const char *disk, JsonObject *limits,
                           GError **error);

/* A limit member of limits, 0 when absent (no limit). */
guint64 vms_throttle_get (JsonObject *limits, const char *member);

/* limits with the guest's writes held to bps_wr bytes/s at most, as a new
 * object (caller unrefs): bps_wr lowered, or, when limits has a total bps
 * (which excludes bps_wr), the total lowered, reads included.  *member
 * gets which ("bps_wr" or "bps"). */
JsonObject *vms_throttle_limit_writes (JsonObject *limits, guint64 bps_wr,
                                       const char **member);

G_END_DECLS
