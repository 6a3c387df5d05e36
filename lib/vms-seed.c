/* vmshift: the seed format, a VM's disks on a shipped device or file.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-seed.h"
#include "vms-copy.h"
#include "vms-sink-name.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

G_DEFINE_QUARK (vms - seed - error - quark, vms_seed_error)

#define MAGIC "VMSHIFT-SEED-V1\n"
#define MAGIC_LENGTH 16
#define HEADER_SIZE 64
#define RECORD_MAGIC 0x4b434d56u /* "VMCK" */
#define RECORD_SIZE 48
#define ENCODING_RAW 0
#define ENCODING_ZSTD 1
/* zstd's default level: fast, and most of what higher levels get. */
#define ZSTD_LEVEL 3
/* A manifest is a few hundred bytes per disk. */
#define MAX_MANIFEST (1024 * 1024)
#define HASH_SIZE VMS_SINK_NAME_HASH_SIZE

typedef struct
{
  guint32 chunk;
  gboolean finished;
  guint64 manifest_offset;
  guint64 manifest_length;
  guint64 records;
  guint8 manifest_hash[HASH_SIZE];
} Header;

typedef struct
{
  guint32 disk;
  guint64 offset;
  guint32 length;
  guint32 stored;
  guint32 encoding;
  guint8 hash[HASH_SIZE];
} Record;

/* ---- encoding ---- */

static void
put32 (guint8 *at, guint32 value)
{
  value = GUINT32_TO_LE (value);
  memcpy (at, &value, 4);
}

static void
put64 (guint8 *at, guint64 value)
{
  value = GUINT64_TO_LE (value);
  memcpy (at, &value, 8);
}

static guint32
get32 (const guint8 *at)
{
  guint32 value;

  memcpy (&value, at, 4);
  return GUINT32_FROM_LE (value);
}

static guint64
get64 (const guint8 *at)
{
  guint64 value;

  memcpy (&value, at, 8);
  return GUINT64_FROM_LE (value);
}

static void
hash (const void *data, gsize length, guint8 *out)
{
  XXH128_canonical_t canonical;

  XXH128_canonicalFromHash (&canonical, XXH3_128bits (data, length));
  memcpy (out, canonical.digest, HASH_SIZE);
}

static void
encode_header (const Header *header, guint8 *out)
{
  memset (out, 0, HEADER_SIZE);
  memcpy (out, MAGIC, MAGIC_LENGTH);
  put32 (out + 16, header->chunk);
  put32 (out + 20, header->finished);
  put64 (out + 24, header->manifest_offset);
  put64 (out + 32, header->manifest_length);
  put64 (out + 40, header->records);
  memcpy (out + 48, header->manifest_hash, HASH_SIZE);
}

static void
decode_header (const guint8 *in, Header *header)
{
  header->chunk = get32 (in + 16);
  header->finished = get32 (in + 20) == 1;
  header->manifest_offset = get64 (in + 24);
  header->manifest_length = get64 (in + 32);
  header->records = get64 (in + 40);
  memcpy (header->manifest_hash, in + 48, HASH_SIZE);
}

static void
encode_record (const Record *record, guint8 *out)
{
  put32 (out, RECORD_MAGIC);
  put32 (out + 4, record->disk);
  put64 (out + 8, record->offset);
  put32 (out + 16, record->length);
  put32 (out + 20, record->stored);
  put32 (out + 24, record->encoding);
  put32 (out + 28, 0);
  memcpy (out + 32, record->hash, HASH_SIZE);
}

static gboolean
io_error (GError **error, const char *what, const char *path, int err)
{
  g_set_error (error, VMS_SEED_ERROR, VMS_SEED_ERROR_IO, "%s %s: %s", what,
               path, g_strerror (err));
  return FALSE;
}

static gboolean
write_at (int fd, const char *path, const void *data, gsize length,
          guint64 offset, GError **error)
{
  const guint8 *bytes = data;

  while (length > 0)
    {
      ssize_t done = pwrite (fd, bytes, length, offset);

      if (done < 0 && errno == EINTR)
        continue;
      if (done <= 0)
        return io_error (error, "writing", path, done < 0 ? errno : ENOSPC);
      bytes += done;
      length -= done;
      offset += done;
    }
  return TRUE;
}

/* ---- writing ---- */

struct _VmsSeedWriter
{
  char *path;
  int fd;
  guint32 chunk;
  guint64 position;                   /* where the next record goes */
  guint64 records;                    /* written so far */
  guint64 counts[VMS_SEED_MAX_DISKS]; /* records per disk */
  ZSTD_CCtx *cctx;
  guint8 *buffer; /* record header and compressed bytes */
  gsize buffer_size;
};

VmsSeedWriter *
vms_seed_writer_create (const char *path, guint32 chunk, GError **error)
{
  g_autoptr (VmsSeedWriter) writer = g_new0 (VmsSeedWriter, 1);
  guint8 header[HEADER_SIZE];
  Header empty = { .chunk = chunk };
  struct stat st;

  writer->fd = -1;
  writer->path = g_strdup (path);
  writer->chunk = chunk;
  if (stat (path, &st) == 0 && S_ISBLK (st.st_mode))
    writer->fd = open (path, O_WRONLY | O_CLOEXEC);
  else
    writer->fd = open (
        path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (writer->fd < 0)
    {
      if (errno == EEXIST)
        g_set_error (error, VMS_SEED_ERROR, VMS_SEED_ERROR_EXISTS,
                     "%s exists: a seed is written to a new file or a block "
                     "device",
                     path);
      else
        io_error (error, "creating", path, errno);
      return NULL;
    }
  writer->cctx = ZSTD_createCCtx ();
  writer->buffer_size = RECORD_SIZE + ZSTD_compressBound (chunk);
  writer->buffer = g_malloc (writer->buffer_size);
  encode_header (&empty, header);
  if (!write_at (writer->fd, path, header, HEADER_SIZE, 0, error))
    return NULL;
  writer->position = HEADER_SIZE;
  return g_steal_pointer (&writer);
}

gboolean
vms_seed_writer_add (VmsSeedWriter *writer, guint disk, guint64 offset,
                     const void *data, guint32 length, guint64 *stored,
                     GError **error)
{
  Record record = { .disk = disk, .offset = offset, .length = length };
  gsize compressed;

  *stored = 0;
  g_return_val_if_fail (disk < VMS_SEED_MAX_DISKS && length <= writer->chunk,
                        FALSE);
  if (vms_copy_is_zero (data, length))
    return TRUE;
  hash (data, length, record.hash);
  compressed = ZSTD_compressCCtx (writer->cctx, writer->buffer + RECORD_SIZE,
                                  writer->buffer_size - RECORD_SIZE, data,
                                  length, ZSTD_LEVEL);
  if (ZSTD_isError (compressed) || compressed >= length)
    {
      /* Random data: stored as it is. */
      memcpy (writer->buffer + RECORD_SIZE, data, length);
      record.encoding = ENCODING_RAW;
      record.stored = length;
    }
  else
    {
      record.encoding = ENCODING_ZSTD;
      record.stored = compressed;
    }
  encode_record (&record, writer->buffer);
  if (!write_at (writer->fd, writer->path, writer->buffer,
                 RECORD_SIZE + record.stored, writer->position, error))
    return FALSE;
  writer->position += RECORD_SIZE + record.stored;
  writer->records++;
  writer->counts[disk]++;
  *stored = RECORD_SIZE + record.stored;
  return TRUE;
}

static gboolean
sync_seed (VmsSeedWriter *writer, GError **error)
{
  if (fdatasync (writer->fd) < 0)
    return io_error (error, "flushing", writer->path, errno);
  return TRUE;
}

gboolean
vms_seed_writer_finish (VmsSeedWriter *writer, JsonObject *manifest,
                        GError **error)
{
  JsonArray *disks = json_object_get_array_member (manifest, "disks");
  g_autoptr (JsonNode) root = json_node_new (JSON_NODE_OBJECT);
  g_autofree char *text = NULL;
  Header header = { .chunk = writer->chunk, .finished = TRUE };
  guint8 encoded[HEADER_SIZE];
  gsize length;

  json_object_set_string_member (manifest, "format", "vmshift-seed");
  json_object_set_int_member (manifest, "version", 1);
  json_object_set_int_member (manifest, "chunk-size", writer->chunk);
  for (guint i = 0; i < json_array_get_length (disks); i++)
    json_object_set_int_member (json_array_get_object_element (disks, i),
                                "data-chunks",
                                i < VMS_SEED_MAX_DISKS ? writer->counts[i] : 0);
  json_node_set_object (root, manifest);
  text = json_to_string (root, TRUE);
  length = strlen (text);
  header.manifest_offset = writer->position;
  header.manifest_length = length;
  header.records = writer->records;
  hash (text, length, header.manifest_hash);
  /* The header last, after the rest is durable: a crash before leaves a
   * seed that says it is not finished. */
  if (!write_at (writer->fd, writer->path, text, length, writer->position,
                 error)
      || !sync_seed (writer, error))
    return FALSE;
  encode_header (&header, encoded);
  return write_at (writer->fd, writer->path, encoded, HEADER_SIZE, 0, error)
         && sync_seed (writer, error);
}

guint64
vms_seed_writer_get_size (VmsSeedWriter *writer)
{
  return writer->position;
}

void
vms_seed_writer_free (VmsSeedWriter *writer)
{
  if (!writer)
    return;
  if (writer->fd >= 0)
    close (writer->fd);
  ZSTD_freeCCtx (writer->cctx);
  g_free (writer->buffer);
  g_free (writer->path);
  g_free (writer);
}

/* ---- reading ---- */

typedef struct
{
  char *name;
  guint64 size;
  guint64 data_chunks;
  guint64 seen;
} Disk;

struct _VmsSeedReader
{
  char *path;
  int fd;
  Header header;
  JsonObject *manifest;
  Disk disks[VMS_SEED_MAX_DISKS];
  guint n_disks;
  guint64 position; /* next record */
  guint64 records;  /* read so far */
  ZSTD_DCtx *dctx;
  guint8 *stored; /* a record's bytes as stored */
  guint8 *data;   /* ... and decompressed */
};

static gboolean corrupt (GError **error, const char *format, ...)
    G_GNUC_PRINTF (2, 3);

static gboolean
corrupt (GError **error, const char *format, ...)
{
  va_list args;
  g_autofree char *message = NULL;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error_literal (error, VMS_SEED_ERROR, VMS_SEED_ERROR_CORRUPT, message);
  return FALSE;
}

static gboolean
read_at (VmsSeedReader *reader, void *data, gsize length, guint64 offset,
         GError **error)
{
  guint8 *bytes = data;

  while (length > 0)
    {
      ssize_t done = pread (reader->fd, bytes, length, offset);

      if (done < 0 && errno == EINTR)
        continue;
      if (done < 0)
        return io_error (error, "reading", reader->path, errno);
      if (done == 0)
        return corrupt (error, "%s is cut short at byte %" G_GUINT64_FORMAT,
                        reader->path, offset);
      bytes += done;
      length -= done;
      offset += done;
    }
  return TRUE;
}

static gboolean
check_header (VmsSeedReader *reader, guint64 size, GError **error)
{
  guint8 raw[HEADER_SIZE];
  Header *header = &reader->header;
  guint32 chunk;

  if (size < HEADER_SIZE || !read_at (reader, raw, HEADER_SIZE, 0, error)
      || memcmp (raw, MAGIC, MAGIC_LENGTH) != 0)
    {
      g_clear_error (error);
      return corrupt (error, "%s is not a vmshift seed", reader->path);
    }
  decode_header (raw, header);
  chunk = header->chunk;
  if (!header->finished)
    return corrupt (error,
                    "%s was never finished (its export stopped or failed)",
                    reader->path);
  if (chunk < VMS_SEED_CHUNK_MIN || chunk > VMS_SEED_CHUNK_MAX
      || (chunk & (chunk - 1)) != 0)
    return corrupt (error,
                    "%s: chunk size %u is not a power of two from %d "
                    "to %d",
                    reader->path, chunk, VMS_SEED_CHUNK_MIN,
                    VMS_SEED_CHUNK_MAX);
  if (header->manifest_length == 0 || header->manifest_length > MAX_MANIFEST
      || header->manifest_offset < HEADER_SIZE || header->manifest_offset > size
      || header->manifest_length > size - header->manifest_offset)
    return corrupt (error,
                    "%s is cut short or damaged: its manifest would be bytes "
                    "%" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT
                    " of %" G_GUINT64_FORMAT,
                    reader->path, header->manifest_offset,
                    header->manifest_offset + header->manifest_length, size);
  return TRUE;
}

static gboolean
check_disk (VmsSeedReader *reader, JsonNode *node, Disk *disk, GError **error)
{
  JsonObject *object
      = JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
  const char *name
      = object
            ? json_object_get_string_member_with_default (object, "name", NULL)
            : NULL;
  const char *replica = object ? json_object_get_string_member_with_default (
                            object, "replica", NULL)
                               : NULL;
  gint64 size
      = object ? json_object_get_int_member_with_default (object, "size", 0)
               : 0;
  gint64 chunks = object ? json_object_get_int_member_with_default (
                      object, "data-chunks", -1)
                         : -1;
  guint64 most;

  if (!name || !*name || !replica || size <= 0
      || !vms_sink_name_is_valid (replica, NULL))
    return corrupt (error,
                    "%s: a disk of the manifest lacks a name, a valid "
                    "replica name or a size",
                    reader->path);
  most = ((guint64)size + reader->header.chunk - 1) / reader->header.chunk;
  if (chunks < 0 || (guint64)chunks > most)
    return corrupt (error, "%s: disk '%s' claims %" G_GINT64_FORMAT " chunks",
                    reader->path, name, chunks);
  disk->name = g_strdup (name);
  disk->size = size;
  disk->data_chunks = chunks;
  return TRUE;
}

static gboolean
check_manifest (VmsSeedReader *reader, GError **error)
{
  const Header *header = &reader->header;
  g_autofree char *text = g_malloc (header->manifest_length + 1);
  g_autoptr (JsonParser) parser = json_parser_new ();
  guint8 digest[HASH_SIZE];
  JsonNode *root;
  JsonArray *disks;
  guint64 total = 0;

  if (!read_at (reader, text, header->manifest_length, header->manifest_offset,
                error))
    return FALSE;
  text[header->manifest_length] = '\0';
  hash (text, header->manifest_length, digest);
  if (memcmp (digest, header->manifest_hash, HASH_SIZE) != 0)
    return corrupt (error, "%s: its manifest does not match its hash",
                    reader->path);
  if (!json_parser_load_from_data (parser, text, -1, NULL)
      || !(root = json_parser_get_root (parser))
      || !JSON_NODE_HOLDS_OBJECT (root))
    return corrupt (error, "%s: its manifest is not JSON", reader->path);
  reader->manifest = json_object_ref (json_node_get_object (root));
  disks = json_object_get_array_member (reader->manifest, "disks");
  if (!json_object_has_member (reader->manifest, "disks") || !disks
      || json_array_get_length (disks) == 0
      || json_array_get_length (disks) > VMS_SEED_MAX_DISKS)
    return corrupt (error, "%s: its manifest names no disks (or more than %d)",
                    reader->path, VMS_SEED_MAX_DISKS);
  reader->n_disks = json_array_get_length (disks);
  for (guint i = 0; i < reader->n_disks; i++)
    {
      if (!check_disk (reader, json_array_get_element (disks, i),
                       &reader->disks[i], error))
        return FALSE;
      total += reader->disks[i].data_chunks;
    }
  if (total != header->records)
    return corrupt (error,
                    "%s: the manifest counts %" G_GUINT64_FORMAT
                    " chunks, the header %" G_GUINT64_FORMAT,
                    reader->path, total, header->records);
  return TRUE;
}

VmsSeedReader *
vms_seed_reader_open (const char *path, GError **error)
{
  g_autoptr (VmsSeedReader) reader = g_new0 (VmsSeedReader, 1);
  off_t size;

  reader->path = g_strdup (path);
  reader->fd = open (path, O_RDONLY | O_CLOEXEC);
  if (reader->fd < 0)
    {
      io_error (error, "opening", path, errno);
      return NULL;
    }
  /* The end of a file or of a block device alike. */
  size = lseek (reader->fd, 0, SEEK_END);
  if (size < 0)
    {
      io_error (error, "measuring", path, errno);
      return NULL;
    }
  if (!check_header (reader, size, error) || !check_manifest (reader, error))
    return NULL;
  reader->dctx = ZSTD_createDCtx ();
  reader->stored = g_malloc (ZSTD_compressBound (reader->header.chunk));
  reader->data = g_malloc (reader->header.chunk);
  reader->position = HEADER_SIZE;
  return g_steal_pointer (&reader);
}

JsonObject *
vms_seed_reader_get_manifest (VmsSeedReader *reader)
{
  return reader->manifest;
}

guint32
vms_seed_reader_get_chunk_size (VmsSeedReader *reader)
{
  return reader->header.chunk;
}

/* Every disk got what the manifest counts. */
static gboolean
check_counts (VmsSeedReader *reader, GError **error)
{
  for (guint i = 0; i < reader->n_disks; i++)
    if (reader->disks[i].seen != reader->disks[i].data_chunks)
      return corrupt (error,
                      "%s: disk '%s' has %" G_GUINT64_FORMAT
                      " chunks, its manifest says %" G_GUINT64_FORMAT,
                      reader->path, reader->disks[i].name,
                      reader->disks[i].seen, reader->disks[i].data_chunks);
  return TRUE;
}

/* The record header at the reader's position, bounded. */
static gboolean
read_record (VmsSeedReader *reader, Record *record, GError **error)
{
  guint64 end = reader->header.manifest_offset;
  guint64 at = reader->position;
  guint8 raw[RECORD_SIZE];
  Disk *disk;

  if (end - at < RECORD_SIZE || !read_at (reader, raw, RECORD_SIZE, at, error))
    return corrupt (error,
                    "%s: the record at byte %" G_GUINT64_FORMAT
                    " runs into the manifest",
                    reader->path, at);
  record->disk = get32 (raw + 4);
  record->offset = get64 (raw + 8);
  record->length = get32 (raw + 16);
  record->stored = get32 (raw + 20);
  record->encoding = get32 (raw + 24);
  memcpy (record->hash, raw + 32, HASH_SIZE);
  if (get32 (raw) != RECORD_MAGIC || record->disk >= reader->n_disks)
    return corrupt (error, "%s: no chunk record at byte %" G_GUINT64_FORMAT,
                    reader->path, at);
  disk = &reader->disks[record->disk];
  if (record->length == 0 || record->length > reader->header.chunk
      || record->offset % reader->header.chunk != 0
      || record->offset >= disk->size
      || record->length > disk->size - record->offset
      || (record->encoding == ENCODING_RAW && record->stored != record->length)
      || (record->encoding == ENCODING_ZSTD
          && record->stored > ZSTD_compressBound (reader->header.chunk))
      || record->encoding > ENCODING_ZSTD
      || record->stored > end - at - RECORD_SIZE)
    return corrupt (error,
                    "%s: the record of disk '%s' at byte %" G_GUINT64_FORMAT
                    " is damaged (offset %" G_GUINT64_FORMAT ", length %u, "
                    "stored %u)",
                    reader->path, disk->name, at, record->offset,
                    record->length, record->stored);
  return TRUE;
}

gboolean
vms_seed_reader_next (VmsSeedReader *reader, VmsSeedChunk *chunk,
                      GError **error)
{
  Record record;
  guint8 digest[HASH_SIZE];
  const guint8 *data;
  const char *name;

  if (reader->position == reader->header.manifest_offset)
    {
      /* The end: no chunk, and an error only if some were missing. */
      check_counts (reader, error);
      return FALSE;
    }
  if (!read_record (reader, &record, error)
      || !read_at (reader, reader->stored, record.stored,
                   reader->position + RECORD_SIZE, error))
    return FALSE;
  name = reader->disks[record.disk].name;
  data = reader->stored;
  if (record.encoding == ENCODING_ZSTD)
    {
      gsize size = ZSTD_decompressDCtx (reader->dctx, reader->data,
                                        reader->header.chunk, reader->stored,
                                        record.stored);

      if (ZSTD_isError (size) || size != record.length)
        return corrupt (error,
                        "%s: disk '%s' chunk at offset %" G_GUINT64_FORMAT
                        " (record at byte %" G_GUINT64_FORMAT
                        ") does not decompress",
                        reader->path, name, record.offset, reader->position);
      data = reader->data;
    }
  hash (data, record.length, digest);
  if (memcmp (digest, record.hash, HASH_SIZE) != 0)
    return corrupt (error,
                    "%s: disk '%s' chunk at offset %" G_GUINT64_FORMAT
                    " (record at byte %" G_GUINT64_FORMAT
                    ") does not match its hash",
                    reader->path, name, record.offset, reader->position);
  chunk->disk = record.disk;
  chunk->offset = record.offset;
  chunk->length = record.length;
  chunk->data = data;
  chunk->seed_offset = reader->position;
  reader->position += RECORD_SIZE + record.stored;
  reader->records++;
  reader->disks[record.disk].seen++;
  return TRUE;
}

void
vms_seed_reader_free (VmsSeedReader *reader)
{
  if (!reader)
    return;
  if (reader->fd >= 0)
    close (reader->fd);
  g_clear_pointer (&reader->manifest, json_object_unref);
  for (guint i = 0; i < VMS_SEED_MAX_DISKS; i++)
    g_free (reader->disks[i].name);
  ZSTD_freeDCtx (reader->dctx);
  g_free (reader->stored);
  g_free (reader->data);
  g_free (reader->path);
  g_free (reader);
}
