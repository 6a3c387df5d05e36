/* vmshift sink: hashes of a replica's chunks, served by NAME@hashes.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#define _GNU_SOURCE
#include "vms-sink-hash.h"
#include "vms-sink-error.h"
#include "vms-sink-name.h"

#include <errno.h>
#include <unistd.h>
#include <xxhash.h>

/* Reads for hashing go in pieces of this size, so a 64 MiB chunk does not
 * need a 64 MiB buffer. */
#define HASH_READ_SIZE (1024 * 1024)

guint64
vms_sink_hash_export_size (guint64 size, guint64 chunk)
{
  return (size / chunk + (size % chunk != 0)) * VMS_SINK_NAME_HASH_SIZE;
}

/* TRUE if [offset, offset + length) of a regular file is all hole. */
static gboolean
is_hole (VmsSinkReplica *replica, guint64 offset, guint64 length)
{
  off_t data;

  if (vms_sink_replica_is_device (replica))
    return FALSE;
  data = lseek (vms_sink_replica_get_fd (replica), offset, SEEK_DATA);
  if (data < 0)
    return errno == ENXIO;
  return (guint64) data >= offset + length;
}

static int
hash_chunk (VmsSinkReplica *replica, guint64 offset, guint64 length,
            guint8 *scratch, XXH128_canonical_t *out, GError **error)
{
  XXH3_state_t *state = XXH3_createState ();
  gboolean hole = is_hole (replica, offset, length);
  int err = 0;

  XXH3_128bits_reset (state);
  memset (scratch, 0, HASH_READ_SIZE);
  while (length > 0)
    {
      guint32 piece = MIN (length, HASH_READ_SIZE);

      if (!hole)
        err = vms_sink_replica_read (replica, scratch, piece, offset, error);
      if (err)
        break;
      XXH3_128bits_update (state, scratch, piece);
      offset += piece;
      length -= piece;
    }
  if (!err)
    XXH128_canonicalFromHash (out, XXH3_128bits_digest (state));
  XXH3_freeState (state);
  return err;
}

/* Hashes of the chunks of [start, start + length), which fits in one read
 * (small chunks: one read and one hole check for many hashes). */
static int
hash_chunks (VmsSinkReplica *replica, guint64 chunk, guint64 start,
             guint64 length, guint8 *scratch, guint8 *out, GError **error)
{
  if (is_hole (replica, start, length))
    memset (scratch, 0, length);
  else
    {
      int err = vms_sink_replica_read (replica, scratch, length, start, error);

      if (err)
        return err;
    }
  for (guint64 done = 0; done < length; done += chunk)
    {
      XXH128_canonical_t hash;

      XXH128_canonicalFromHash (
          &hash, XXH3_128bits (scratch + done, MIN (chunk, length - done)));
      memcpy (out, hash.digest, VMS_SINK_NAME_HASH_SIZE);
      out += VMS_SINK_NAME_HASH_SIZE;
    }
  return 0;
}

int
vms_sink_hash_read (VmsSinkReplica *replica, guint64 chunk, void *buffer,
                    guint32 count, guint64 offset, GError **error)
{
  guint64 size = vms_sink_replica_get_size (replica);
  guint64 export_size = vms_sink_hash_export_size (size, chunk);
  g_autofree guint8 *scratch = NULL;
  guint8 *out = buffer;

  if (offset > export_size || count > export_size - offset)
    {
      g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_IO,
                   "hash read beyond the end of the @hashes export");
      return EINVAL;
    }
  scratch = g_malloc (HASH_READ_SIZE);
  while (count > 0)
    {
      guint64 index = offset / VMS_SINK_NAME_HASH_SIZE;
      guint64 within = offset % VMS_SINK_NAME_HASH_SIZE;
      guint64 start = index * chunk;
      guint32 take = MIN (count, VMS_SINK_NAME_HASH_SIZE - within);
      XXH128_canonical_t hash;
      int err;

      if (within == 0 && take == VMS_SINK_NAME_HASH_SIZE
          && chunk < HASH_READ_SIZE)
        {
          guint64 hashes
              = MIN (count / VMS_SINK_NAME_HASH_SIZE, HASH_READ_SIZE / chunk);
          guint64 length = MIN (hashes * chunk, size - start);

          err = hash_chunks (replica, chunk, start, length, scratch, out,
                             error);
          if (err)
            return err;
          take = hashes * VMS_SINK_NAME_HASH_SIZE;
        }
      else
        {
          err = hash_chunk (replica, start, MIN (chunk, size - start), scratch,
                            &hash, error);
          if (err)
            return err;
          memcpy (out, hash.digest + within, take);
        }
      out += take;
      offset += take;
      count -= take;
    }
  return 0;
}
