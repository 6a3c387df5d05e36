/* vmshift: the seed format, a VM's disks on a shipped device or file.
 *
 * A seed is a header, chunk records and a manifest, all little-endian:
 *
 *   header (64 bytes)  "VMSHIFT-SEED-V1\n", chunk size, whether finished,
 *                      where the manifest is, its XXH3-128, record count
 *   records            per chunk of data (holes and zero chunks have
 *                      none): a 48-byte record header (disk index, offset,
 *                      length, stored length, encoding, XXH3-128 of the
 *                      chunk's bytes) and the bytes, zstd-compressed or raw
 *   manifest           JSON: the job, the VM, each disk's name, replica,
 *                      size, data chunks and recording bitmap
 *
 * The header is written last, so a seed cut short or never finished says
 * so, and the seed may be a block device whose end is not the seed's.
 * Everything read is checked: a reader never trusts a length, offset or
 * count it did not bound, and a chunk whose hash differs is named.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define VMS_SEED_ERROR (vms_seed_error_quark ())
GQuark vms_seed_error_quark (void);

typedef enum
{
  VMS_SEED_ERROR_IO,      /* the seed could not be read or written */
  VMS_SEED_ERROR_CORRUPT, /* not a seed, cut short, or a chunk that is not
                             what it says */
  VMS_SEED_ERROR_EXISTS,  /* a seed file is there already */
} VmsSeedError;

/* Bytes per chunk: large enough to compress well and to keep the records'
 * overhead small, small enough to send again cheaply. */
#define VMS_SEED_CHUNK (1024 * 1024)
#define VMS_SEED_CHUNK_MIN (64 * 1024)
#define VMS_SEED_CHUNK_MAX (64 * 1024 * 1024)
/* Disks in one seed, at most. */
#define VMS_SEED_MAX_DISKS 64

typedef struct _VmsSeedWriter VmsSeedWriter;

/* Start a seed at path: a new regular file (refused with
 * VMS_SEED_ERROR_EXISTS if there is one) or a block device. */
VmsSeedWriter *vms_seed_writer_create (const char *path, guint32 chunk,
                                       GError **error);

/* Add length bytes (at most the chunk) of disk at offset.  Zeroes add
 * nothing.  *stored gets the bytes the seed grew by. */
gboolean vms_seed_writer_add (VmsSeedWriter *writer, guint disk, guint64 offset,
                              const void *data, guint32 length, guint64 *stored,
                              GError **error);

/* Write the manifest and the header, and make the seed durable. */
gboolean vms_seed_writer_finish (VmsSeedWriter *writer, JsonObject *manifest,
                                 GError **error);

/* Close; a seed not finished is left as it is (its header says so): the
 * caller removes a file it created. */
void vms_seed_writer_free (VmsSeedWriter *writer);

/* Bytes written so far. */
guint64 vms_seed_writer_get_size (VmsSeedWriter *writer);

typedef struct _VmsSeedReader VmsSeedReader;

/* One chunk of a disk, as read back and checked. */
typedef struct
{
  guint disk;          /* index in the manifest's disks */
  guint64 offset;      /* where it goes in the disk */
  guint32 length;      /* bytes */
  const guint8 *data;  /* the bytes; valid until the next call */
  guint64 seed_offset; /* where its record starts in the seed */
} VmsSeedChunk;

/* Open a finished seed and check its header and manifest (disks, names,
 * sizes, counts). */
VmsSeedReader *vms_seed_reader_open (const char *path, GError **error);

JsonObject *vms_seed_reader_get_manifest (VmsSeedReader *reader);
guint32 vms_seed_reader_get_chunk_size (VmsSeedReader *reader);

/* The next chunk, its hash checked; FALSE with no error at the end (after
 * checking that every disk got the chunks the manifest counts). */
gboolean vms_seed_reader_next (VmsSeedReader *reader, VmsSeedChunk *chunk,
                               GError **error);

void vms_seed_reader_free (VmsSeedReader *reader);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsSeedWriter, vms_seed_writer_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsSeedReader, vms_seed_reader_free)

G_END_DECLS
