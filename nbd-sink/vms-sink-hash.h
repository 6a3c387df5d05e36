/* vmshift sink: hashes of a replica's chunks, served by NAME@hashes.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

#include "vms-sink-name.h"
#include "vms-sink-replica.h"

G_BEGIN_DECLS

#define VMS_SINK_HASH_CHUNK_DEFAULT (1024 * 1024)
#define VMS_SINK_HASH_CHUNK_MIN VMS_SINK_NAME_HASH_CHUNK_MIN
#define VMS_SINK_HASH_CHUNK_MAX VMS_SINK_NAME_HASH_CHUNK_MAX

/* Bytes of the @hashes export of a replica of size bytes. */
guint64 vms_sink_hash_export_size (guint64 size, guint64 chunk);

/* Fill buffer with count bytes of the @hashes export at offset: 16 bytes
 * per chunk, the XXH3-128 of the chunk in canonical (big-endian) form, as
 * "xxhsum -H2" prints it.  The last chunk may be short.  Holes are hashed
 * without being read.  Returns 0 or an errno value. */
int vms_sink_hash_read (VmsSinkReplica *replica, guint64 chunk, void *buffer,
                        guint32 count, guint64 offset, GError **error);

G_END_DECLS
