/* vmshift: which chunks of a copy request are compared with the sink's
 * NAME@hashes=CHUNK export, and their hashes as the sink computes them.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-chunk-hash.h"

#include <string.h>
#include <xxhash.h>

VmsChunkSpan
vms_chunk_hash_span (guint64 offset, guint64 length, guint64 size,
                     guint64 chunk)
{
  VmsChunkSpan span = { 0 };
  guint64 end = offset + length;
  guint64 first = (offset + chunk - 1) / chunk * chunk;
  guint64 last = end / chunk * chunk; /* start of the chunk end falls in */

  /* The sink hashes the disk's last chunk short: it is whole here if the
   * request reaches the end. */
  if (end == size && last < end)
    last = end;
  if (first >= last)
    return span;
  span.start = first;
  span.end = last;
  span.count = (last - first + chunk - 1) / chunk;
  return span;
}

guint64
vms_chunk_hash_offset (guint64 offset, guint64 chunk)
{
  return offset / chunk * VMS_SINK_NAME_HASH_SIZE;
}

gboolean
vms_chunk_hash_matches (const void *data, gsize length, const guint8 *hash)
{
  XXH128_canonical_t ours;

  XXH128_canonicalFromHash (&ours, XXH3_128bits (data, length));
  return memcmp (ours.digest, hash, VMS_SINK_NAME_HASH_SIZE) == 0;
}
