/* vmshift: which chunks of a copy request are compared with the sink's
 * NAME@hashes=CHUNK export, and their hashes as the sink computes them.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

#include "vms-sink-name.h"

G_BEGIN_DECLS

/* The compared part of a request: chunks on the sink's grid (multiples of
 * chunk from 0) that lie wholly inside it, and the disk's short last chunk
 * when the request reaches the end of the disk. */
typedef struct
{
  guint64 start; /* first byte of the first compared chunk */
  guint64 end;   /* one past the last compared byte */
  guint count;   /* chunks, 0 when none is whole inside the request */
} VmsChunkSpan;

/* The compared chunks of [offset, offset + length) on a disk of size
 * bytes (offset + length <= size, chunk a power of two). */
VmsChunkSpan vms_chunk_hash_span (guint64 offset, guint64 length, guint64 size,
                                  guint64 chunk);

/* Where the hash of the chunk starting at offset lies in @hashes=CHUNK. */
guint64 vms_chunk_hash_offset (guint64 offset, guint64 chunk);

/* TRUE if the XXH3-128 of length bytes at data, in canonical form, is
 * hash (VMS_SINK_NAME_HASH_SIZE bytes): what the sink holds there is
 * these bytes, with the odds of a 128-bit collision. */
gboolean vms_chunk_hash_matches (const void *data, gsize length,
                                 const guint8 *hash);

G_END_DECLS
