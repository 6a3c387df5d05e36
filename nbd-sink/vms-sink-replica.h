/* vmshift sink: the replicas a sink serves, and I/O on them.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

#include "vms-sink-meta.h"

G_BEGIN_DECLS

/* All replicas in one directory.  Connections to the same replica share one
 * VmsSinkReplica (one file descriptor, one live-range set), so a FLUSH on
 * any connection covers writes made on all of them (NBD multi-conn). */
typedef struct _VmsSinkStore VmsSinkStore;
typedef struct _VmsSinkReplica VmsSinkReplica;

/* Called for each extent found by vms_sink_replica_extents(). */
typedef gboolean (*VmsSinkExtentFunc) (guint64 offset, guint64 length,
                                       gboolean hole, gpointer user_data);

/* Says what the store did on its own (e.g. remade an orphaned replica),
 * for the sink's log. */
typedef void (*VmsSinkNoticeFunc) (const char *message);

VmsSinkStore *vms_sink_store_new (const char *dir, GError **error);
void vms_sink_store_set_notice (VmsSinkStore *store, VmsSinkNoticeFunc notice);
void vms_sink_store_free (VmsSinkStore *store);
const char *vms_sink_store_get_dir (VmsSinkStore *store);

/* Serve replica name from a block device instead of DIR/name. */
gboolean vms_sink_store_add_device (VmsSinkStore *store, const char *name,
                                    const char *path, GError **error);

/* Open replica name.  With create, make it with create_size bytes if it
 * does not exist; an existing replica must then have that size, and a
 * create that fails leaves no data file behind.  An orphaned replica
 * (metadata whose data file was deleted) is refused with
 * VMS_SINK_ERROR_ORPHANED, or made afresh with create: the old metadata
 * described data that no longer exists.  Data and metadata that are not
 * regular files (links, FIFOs...) are refused with
 * VMS_SINK_ERROR_NOT_REGULAR (vms-sink-file.h), and so is a block device
 * other than the one given to vms_sink_store_add_device for name.
 * Functions on replicas return 0 or an errno value for the NBD client, and
 * set error to say what failed. */
VmsSinkReplica *vms_sink_store_open (VmsSinkStore *store, const char *name,
                                     gboolean create, guint64 create_size,
                                     int *errno_out, GError **error);
void vms_sink_replica_unref (VmsSinkReplica *replica);

guint64 vms_sink_replica_get_size (VmsSinkReplica *replica);
gboolean vms_sink_replica_is_device (VmsSinkReplica *replica);
/* Where the replica's data is on this host: the device, or DIR/NAME
 * (caller frees). */
char *vms_sink_replica_dup_data_path (VmsSinkReplica *replica);
int vms_sink_replica_get_fd (VmsSinkReplica *replica);

int vms_sink_replica_read (VmsSinkReplica *replica, void *buffer, guint32 count,
                           guint64 offset, GError **error);

/* Writes, zeroes and trims.  live marks a request from the @live export:
 * it is applied in full and its range remembered; one from the plain
 * export is applied only outside remembered ranges (live data is newer).
 * Once the data file is found deleted (FLUSH always looks, these every
 * 100 ms at most), they and FLUSH fail with EIO and
 * VMS_SINK_ERROR_DELETED. */
int vms_sink_replica_write (VmsSinkReplica *replica, const void *buffer,
                            guint32 count, guint64 offset, gboolean live,
                            gboolean fua, GError **error);
/* may_trim allows a hole; fast means fail with ENOTSUP rather than write
 * zeroes by hand. */
int vms_sink_replica_zero (VmsSinkReplica *replica, guint32 count,
                           guint64 offset, gboolean may_trim, gboolean fast,
                           gboolean live, gboolean fua, GError **error);
int vms_sink_replica_trim (VmsSinkReplica *replica, guint32 count,
                           guint64 offset, gboolean live, gboolean fua,
                           GError **error);
int vms_sink_replica_flush (VmsSinkReplica *replica, GError **error);

/* Report data and hole extents covering [offset, offset + count). */
int vms_sink_replica_extents (VmsSinkReplica *replica, guint32 count,
                              guint64 offset, gboolean req_one,
                              VmsSinkExtentFunc func, gpointer user_data,
                              GError **error);

/* Make the replica durable and mark it complete. */
int vms_sink_replica_commit (VmsSinkReplica *replica, GError **error);

/* Forget the ranges @live wrote: a mirror that was stopped no longer
 * writes, so plain writes must land everywhere again (a resumed migration
 * re-copies what the guest wrote after the mirror went away).  The ranges
 * are kept on disk (vms-sink-live-log.h) and outlive a restart of the
 * sink until this forgets them there too. */
int vms_sink_replica_forget_live (VmsSinkReplica *replica, GError **error);

/* Bytes remembered as written through @live (for tests and debugging). */
guint64 vms_sink_replica_live_bytes (VmsSinkReplica *replica);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsSinkStore, vms_sink_store_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsSinkReplica, vms_sink_replica_unref)

G_END_DECLS
