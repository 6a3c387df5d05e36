/* vmshift: copy a disk range from an NBD source to an NBD destination.
 *
 * One thread drives every connection through libnbd's asynchronous API:
 * reads are issued in offset order on the source connections, each read's
 * completion issues the write (or a zero request, when the data is all
 * zeroes) on the matching destination connection.  Issuing in order keeps
 * a single watermark below which everything has been acknowledged; a FLUSH
 * makes it durable, and that is what a checkpoint records.  After a crash
 * the copy resumes at the last durable watermark, so what is sent twice is
 * bounded by the checkpoint interval plus the requests in flight.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-copy.h"
#include "vms-chunk-hash.h"
#include "vms-nbd-poll.h"
#include "vms-pace.h"

#include <errno.h>
#include <libnbd.h>
#include <poll.h>

G_DEFINE_QUARK (vms - copy - error - quark, vms_copy_error)

/* Block status is asked for this much of the disk at a time: one reply
 * covers a large area while keeping the reply small. */
#define STATUS_WINDOW (G_GUINT64_CONSTANT (1) << 30)
/* One zero request covers at most this much (NBD counts are 32-bit). */
#define MAX_ZERO_REQUEST (G_GUINT64_CONSTANT (1) << 30)
/* How often the progress callback runs. */
#define PROGRESS_INTERVAL_US (250 * 1000)
/* Longest single wait in poll(), so stop requests are seen promptly. */
#define MAX_POLL_MS 200
/* Data is checked for zeroes in blocks of this size... */
#define ZERO_BLOCK 4096
/* ... and a run of zero blocks inside a read becomes a zero request only
 * from this length on: shorter runs cost more in requests than they save
 * on the wire. */
#define MIN_ZERO_RUN (64 * 1024)
/* Connecting again after a lost connection waits this long at first,
 * doubling each attempt up to the most: a reset link often comes back
 * within seconds, and each second waited past its return is a second
 * more for the whole migration (a 2 s cap overshot a 5 s outage by
 * 0.55 s, 1 s on average; at 0.5 s, 0.25 s).  An attempt while the
 * peer refuses costs a SYN and its reset; one that gets no answer waits
 * for --io-timeout, which paces it anyway. */
#define RECONNECT_FIRST_DELAY_MS 100
#define RECONNECT_MAX_DELAY_MS 500

typedef struct _Copy Copy;

typedef struct
{
  guint64 offset; /* first byte */
  guint64 length; /* bytes */
  guint32 flags;  /* NBD block status flags for the chosen context */
} Extent;

typedef struct
{
  Copy *copy;       /* owner */
  guint64 offset;   /* first byte */
  guint64 length;   /* bytes */
  guint8 *buffer;   /* read buffer, NULL for a zero request */
  guint conn;       /* connection pair index */
  guint64 work;     /* bytes of it counted in stats->work_total */
  guint64 sent;     /* bytes of it written to the destination */
  gint64 issued_us; /* when its read was issued; 0: not paced (zeroes) */
  guint64 mark;     /* the pace's mark then */
  guint reads;      /* reads still to complete: the data, and the
                       destination's hashes when comparing */
  guint8 *hashes;   /* the destination's hashes of span, or NULL */
  VmsChunkSpan span; /* the chunks compared */
  guint parts;      /* destination requests still to complete */
  gboolean done;    /* acknowledged by the destination */
  gboolean failed;  /* failed: the watermark stops before it */
} Request;

struct _Copy
{
  const VmsCopySpec *spec;      /* what to do */
  VmsCopyStats *stats;          /* figures, shared with the caller */
  guint n;                      /* connection pairs */
  guint wanted;                 /* connection pairs asked for */
  guint slots;                  /* length of src and dst */
  struct nbd_handle **src;      /* source connections, reads */
  struct nbd_handle **dst;      /* destination connections */
  struct nbd_handle *map;       /* source connection for block status */
  const char *map_context;      /* meta context asked on map */
  struct nbd_handle *cmp;       /* destination connection for its hashes, or
                                   NULL when not comparing */
  struct nbd_handle *dst_map;   /* destination connection for its map, or
                                   NULL: zeroes are always sent */
  guint64 dst_known_start;      /* the destination's map says that */
  guint64 dst_known_end;        /* [dst_known_start, dst_known_end)... */
  gboolean dst_known_zero;      /* ... reads as zeroes, or holds data */
  gboolean dst_multi_conn;      /* one FLUSH covers every dst connection */
  guint32 request_size;         /* bytes per read */
  guint depth;                  /* requests in flight per pair */
  guint *in_flight;             /* requests in flight per pair */
  GQueue requests;              /* Request*, in flight, by offset */
  GArray *extents;              /* Extent, fetched but not yet issued */
  guint next_extent;            /* first extent of extents not done */
  guint64 frontier;             /* next byte to issue */
  GPtrArray *free_buffers;      /* request_size buffers to reuse */
  GError *error;                /* first failure, or NULL */
  gboolean link_lost;           /* that failure was a lost connection */
  gboolean connect_link_failed; /* the last failed connect failed for the
                                   link (refused, reset, timed out) */
  char *dst_identity;           /* the destination's export description at
                                   the first connection, or NULL */
  char *dst_description;        /* ... and at the last one */
  gint64 last_activity_us;      /* last completion or issue */
  gint64 last_checkpoint_us;    /* last FLUSH */
  guint64 checkpoint_watermark; /* watermark at the last FLUSH */
  gint64 last_progress_us;      /* last progress callback */
  gint64 rate_wake_us;          /* when the rate limit allows more, or 0 */
  guint io_timeout_ms;          /* silence taken for a dead peer */
  gboolean flush_pending;       /* a FLUSH is in flight */
  int flush_errno;              /* how the last FLUSH ended */
  guint64 flush_watermark;      /* watermark when the pending FLUSH was sent */
  gboolean flush_done;          /* a FLUSH completed, not yet recorded */
  gint64 flush_sent_us;         /* when it was sent */
  guint64 size;                 /* the source's size */
  VmsPace pace;                 /* what may be in flight */
  GArray *acked;                /* Extent: ranges past the watermark the
                                   destination acknowledged before the
                                   connections were lost, by offset */
  guint next_acked;             /* first of acked not passed yet */
  guint64 flight_bytes;         /* data of the reads and writes in flight */
};

gboolean
vms_copy_is_zero (const void *buffer, gsize length)
{
  const guint8 *bytes = buffer;
  gsize head = MIN (length, 16);

  /* The first 16 bytes one by one, then the rest against itself shifted by
   * 16: memcmp is far faster than a byte loop. */
  for (gsize i = 0; i < head; i++)
    if (bytes[i])
      return FALSE;
  return length <= 16 || memcmp (bytes, bytes + 16, length - 16) == 0;
}

static void set_error (Copy *copy, VmsCopyError code, const char *format, ...)
    G_GNUC_PRINTF (3, 4);
static void set_link_error (Copy *copy, VmsCopyError code, const char *format,
                            ...) G_GNUC_PRINTF (3, 4);

/* Keep the first failure: later ones are usually its consequences. */
static void
set_error (Copy *copy, VmsCopyError code, const char *format, ...)
{
  va_list args;

  if (copy->error)
    return;
  va_start (args, format);
  copy->error = g_error_new_valist (VMS_COPY_ERROR, code, format, args);
  va_end (args);
}

/* A failure of the connection rather than of the request: connecting
 * again can cure it. */
static void
set_link_error (Copy *copy, VmsCopyError code, const char *format, ...)
{
  va_list args;

  if (copy->error)
    return;
  va_start (args, format);
  copy->error = g_error_new_valist (VMS_COPY_ERROR, code, format, args);
  va_end (args);
  copy->link_lost = TRUE;
}

/* errno values that say the connection, not the request, failed.  libnbd
 * fails the requests of a dead connection with ENOTCONN. */
static gboolean
is_link_errno (int err)
{
  switch (err)
    {
    case ENOTCONN:
    case ECONNRESET:
    case ECONNABORTED:
    case ECONNREFUSED:
    case EPIPE:
    case ESHUTDOWN:
    case ETIMEDOUT:
    case EHOSTUNREACH:
    case EHOSTDOWN:
    case ENETUNREACH:
    case ENETDOWN:
      return TRUE;
    default:
      return FALSE;
    }
}

/* A request failed with err: the connection's failure or the request's. */
#define set_request_error(copy, err, code, ...)                                \
  (is_link_errno (err) ? set_link_error ((copy), (code), __VA_ARGS__)          \
                       : set_error ((copy), (code), __VA_ARGS__))

/* ---- connections ---- */

/* The source is QEMU on this host: when it cannot be reached again, QEMU
 * is gone (killed, restarted without its export), and waiting for a link
 * to come back would wait for nothing. */
static gboolean
is_source (Copy *copy, const char *uri)
{
  return uri == copy->spec->source_uri;
}

static struct nbd_handle *
open_endpoint (Copy *copy, const char *uri, const char *name,
               const char *meta_context, guint timeout_ms, GError **error)
{
  struct nbd_handle *nbd = nbd_create ();
  g_autofree char *what = g_strdup_printf ("%s (%s)", name, uri);

  if (!nbd)
    {
      g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_CONNECT, "%s: %s",
                   what, nbd_get_error ());
      return NULL;
    }
  nbd_set_handle_name (nbd, name);
  /* The URI comes from the operator, who may name a TLS key file in it. */
  nbd_set_uri_allow_local_file (nbd, true);
  /* The export description tells whether the destination is the same
   * after a reconnect (see vms_copy_run). */
  nbd_set_full_info (nbd, true);
  copy->connect_link_failed = FALSE;
  if ((meta_context && nbd_add_meta_context (nbd, meta_context) < 0)
      || nbd_aio_connect_uri (nbd, uri) < 0)
    {
      copy->connect_link_failed
          = is_link_errno (nbd_get_errno ()) && !is_source (copy, uri);
      g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_CONNECT, "%s: %s",
                   what, nbd_get_error ());
      nbd_close (nbd);
      return NULL;
    }
  if (!vms_nbd_wait_connected (nbd, what, timeout_ms, copy->spec->cancellable,
                               error))
    {
      copy->connect_link_failed
          = (g_error_matches (*error, VMS_COPY_ERROR, VMS_COPY_ERROR_TIMEOUT)
             || is_link_errno (nbd_get_errno ()))
            && !is_source (copy, uri);
      nbd_close (nbd);
      return NULL;
    }
  if (meta_context && nbd_can_meta_context (nbd, meta_context) != 1)
    {
      g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_SOURCE,
                   "%s does not offer %s (is the bitmap exported?)", what,
                   meta_context);
      nbd_close (nbd);
      return NULL;
    }
  return nbd;
}

static void
close_all (Copy *copy)
{
  for (guint i = 0; i < copy->slots; i++)
    {
      g_clear_pointer (&copy->src[i], nbd_close);
      g_clear_pointer (&copy->dst[i], nbd_close);
    }
  g_clear_pointer (&copy->map, nbd_close);
  g_clear_pointer (&copy->dst_map, nbd_close);
  g_clear_pointer (&copy->cmp, nbd_close);
  copy->n = 0;
}

static gboolean
connect_all (Copy *copy, guint wanted, guint timeout_ms, GError **error)
{
  const VmsCopySpec *spec = copy->spec;

  /* Made again after a reconnect. */
  g_free (copy->src);
  g_free (copy->dst);
  copy->src = g_new0 (struct nbd_handle *, wanted);
  copy->dst = g_new0 (struct nbd_handle *, wanted);
  copy->slots = wanted;
  copy->n = 0;
  copy->map = open_endpoint (copy, spec->source_uri, "source-map",
                             copy->map_context, timeout_ms, error);
  if (!copy->map)
    return FALSE;
  copy->src[0] = open_endpoint (copy, spec->source_uri, "source0", NULL,
                                timeout_ms, error);
  if (!copy->src[0])
    return FALSE;
  copy->dst[0]
      = open_endpoint (copy, spec->dest_uri, "dest0", NULL, timeout_ms, error);
  if (!copy->dst[0])
    return FALSE;
  copy->n = 1;
  g_free (copy->dst_description);
  copy->dst_description = nbd_get_export_description (copy->dst[0]);
  if (nbd_is_read_only (copy->dst[0]) == 1)
    {
      g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_DEST,
                   "destination %s is read-only", spec->dest_uri);
      return FALSE;
    }
  /* More connections only where each side says they see one another's
   * writes (the source is read-only, so only the destination matters). */
  copy->dst_multi_conn = nbd_can_multi_conn (copy->dst[0]) == 1;
  if (spec->skip_dest_zeroes && !spec->bitmap)
    {
      g_autoptr (GError) map_error = NULL;

      /* An optimisation: without the map, zeroes are sent as before. */
      copy->dst_map = open_endpoint (copy, spec->dest_uri, "dest-map",
                                     "base:allocation", timeout_ms, &map_error);
    }
  if (spec->compare_uri)
    {
      /* One connection: hash reads are small, and the sink hashes
       * requests of one connection in parallel. */
      copy->cmp = open_endpoint (copy, spec->compare_uri, "dest-hashes", NULL,
                                 timeout_ms, error);
      if (!copy->cmp)
        return FALSE;
    }
  if (!copy->dst_multi_conn)
    wanted = 1;
  for (guint i = 1; i < wanted; i++)
    {
      g_autofree char *src_name = g_strdup_printf ("source%u", i);
      g_autofree char *dst_name = g_strdup_printf ("dest%u", i);

      copy->src[i] = open_endpoint (copy, spec->source_uri, src_name, NULL,
                                    timeout_ms, error);
      if (!copy->src[i])
        return FALSE;
      copy->dst[i] = open_endpoint (copy, spec->dest_uri, dst_name, NULL,
                                    timeout_ms, error);
      if (!copy->dst[i])
        return FALSE;
      copy->n = i + 1;
    }
  return TRUE;
}

/* ---- the map of what to copy ---- */

typedef struct
{
  Copy *copy;    /* owner */
  guint64 start; /* first byte asked */
  guint64 end;   /* one past the last byte asked */
} MapQuery;

static int
collect_extents (void *user_data, const char *context, uint64_t offset,
                 uint32_t *entries, size_t count, int *error)
{
  MapQuery *query = user_data;
  Copy *copy = query->copy;

  if (g_strcmp0 (context, copy->map_context) != 0)
    return 0;
  for (size_t i = 0; i + 1 < count && offset < query->end; i += 2)
    {
      Extent extent
          = { offset, MIN (entries[i], query->end - offset), entries[i + 1] };

      if (entries[i] == 0)
        break; /* a broken server; the caller sees no progress */
      if (offset >= query->start)
        g_array_append_val (copy->extents, extent);
      offset += entries[i];
    }
  return 0;
}

/* Fetch the map from the frontier on.  The source is QEMU's export on a
 * local socket, so a synchronous call costs little. */
static gboolean
fetch_extents (Copy *copy)
{
  guint64 end = copy->stats->end;
  MapQuery query
      = { copy, copy->frontier,
          copy->frontier + MIN (end - copy->frontier, STATUS_WINDOW) };
  nbd_extent_callback callback
      = { .callback = collect_extents, .user_data = &query };

  g_array_set_size (copy->extents, 0);
  copy->next_extent = 0;
  if (nbd_block_status (copy->map, query.end - query.start, query.start,
                        callback, 0)
      < 0)
    {
      set_request_error (copy, nbd_get_errno (), VMS_COPY_ERROR_SOURCE,
                         "block status of the source at %" G_GUINT64_FORMAT
                         ": %s",
                         query.start, nbd_get_error ());
      return FALSE;
    }
  if (copy->extents->len == 0
      || g_array_index (copy->extents, Extent, 0).offset != query.start)
    {
      set_error (copy, VMS_COPY_ERROR_SOURCE,
                 "the source's %s map does not cover offset %" G_GUINT64_FORMAT,
                 copy->map_context, query.start);
      return FALSE;
    }
  return TRUE;
}

/* TRUE if an extent with these flags is work for the pass: dirty, or
 * (copying all) not known to read as zeroes. */
static gboolean
is_work (Copy *copy, guint32 flags)
{
  return copy->spec->bitmap ? (flags & 1) : !(flags & LIBNBD_STATE_ZERO);
}

typedef struct
{
  Copy *copy;   /* owner */
  guint64 end;  /* one past the last byte asked */
  guint64 next; /* first byte the replies do not cover yet */
  guint64 work; /* work found so far */
} WorkQuery;

static int
count_work (void *user_data, const char *context, uint64_t offset,
            uint32_t *entries, size_t count, int *error)
{
  WorkQuery *query = user_data;

  if (g_strcmp0 (context, query->copy->map_context) != 0)
    return 0;
  for (size_t i = 0; i + 1 < count && offset < query->end; i += 2)
    {
      if (entries[i] == 0)
        break;
      if (is_work (query->copy, entries[i + 1]))
        query->work += MIN (entries[i], query->end - offset);
      offset += entries[i];
    }
  query->next = MIN (offset, query->end);
  return 0;
}

/* stats->work_total: the bytes of [start, end) the pass has to copy,
 * asked of the whole map before the copy starts, so that progress can
 * tell how much is left of the work rather than of the disk. */
static gboolean
measure_work (Copy *copy, guint64 start, GError **error)
{
  WorkQuery query = { copy, copy->stats->end, start, 0 };
  nbd_extent_callback callback
      = { .callback = count_work, .user_data = &query };

  while (query.next < query.end)
    {
      guint64 offset = query.next;

      if (nbd_block_status (copy->map, MIN (query.end - offset, STATUS_WINDOW),
                            offset, callback, 0)
          < 0)
        {
          g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_SOURCE,
                       "block status of the source at %" G_GUINT64_FORMAT
                       ": %s",
                       offset, nbd_get_error ());
          return FALSE;
        }
      if (query.next <= offset)
        {
          g_set_error (
              error, VMS_COPY_ERROR, VMS_COPY_ERROR_SOURCE,
              "the source's %s map does not cover offset %" G_GUINT64_FORMAT,
              copy->map_context, offset);
          return FALSE;
        }
    }
  copy->stats->work_total = query.work;
  return TRUE;
}

/* Remember the first extent of the destination's reply. */
static int
note_dest_extent (void *user_data, const char *context, uint64_t offset,
                  uint32_t *entries, size_t count, int *error)
{
  Copy *copy = user_data;

  if (g_strcmp0 (context, "base:allocation") != 0 || count < 2
      || entries[0] == 0)
    return 0;
  copy->dst_known_start = offset;
  copy->dst_known_end = offset + entries[0];
  copy->dst_known_zero = (entries[1] & LIBNBD_STATE_ZERO) != 0;
  return 0;
}

/* How many bytes from offset (up to end) the destination already reads as
 * zeroes, e.g. a replica the sink created sparse and nothing wrote to:
 * no zero request need go there.  0 when it holds data or cannot say.
 * Each range is written once in a pass, and offset's not yet, so what the
 * map says of it is still true. */
static guint64
dest_zero_run (Copy *copy, guint64 offset, guint64 end)
{
  nbd_extent_callback callback
      = { .callback = note_dest_extent, .user_data = copy };

  if (!copy->dst_map)
    return 0;
  if (offset < copy->dst_known_start || offset >= copy->dst_known_end)
    {
      /* A whole window, not just this run: the next runs are likely in
       * the same extent. */
      guint64 length = MIN (copy->stats->end - offset, STATUS_WINDOW);

      copy->dst_known_start = copy->dst_known_end = 0;
      if (nbd_block_status (copy->dst_map, length, offset, callback,
                            LIBNBD_CMD_FLAG_REQ_ONE)
              < 0
          || offset < copy->dst_known_start || offset >= copy->dst_known_end)
        {
          /* Cannot tell: send zeroes from now on. */
          g_clear_pointer (&copy->dst_map, nbd_close);
          return 0;
        }
    }
  return copy->dst_known_zero ? MIN (copy->dst_known_end, end) - offset : 0;
}

/* ---- requests ---- */

static guint8 *
take_buffer (Copy *copy)
{
  if (copy->free_buffers->len > 0)
    return g_ptr_array_steal_index_fast (copy->free_buffers,
                                         copy->free_buffers->len - 1);
  return g_malloc (copy->request_size);
}

static void
give_buffer (Copy *copy, guint8 *buffer)
{
  if (buffer)
    g_ptr_array_add (copy->free_buffers, buffer);
}

/* The request's data and hashes are no longer needed. */
static void
release_buffers (Copy *copy, Request *request)
{
  give_buffer (copy, g_steal_pointer (&request->buffer));
  g_clear_pointer (&request->hashes, g_free);
}

/* The request is out of flight: acknowledged, failed or never issued. */
static void
leave_flight (Copy *copy, Request *request)
{
  copy->in_flight[request->conn]--;
  if (request->issued_us)
    {
      copy->flight_bytes -= request->length;
      if (!request->failed)
        vms_pace_delivered (&copy->pace, request->length, request->issued_us,
                            request->mark, g_get_monotonic_time ());
    }
}

static int
write_done (void *user_data, int *error)
{
  Request *request = user_data;
  Copy *copy = request->copy;

  copy->last_activity_us = g_get_monotonic_time ();
  if (*error)
    {
      set_request_error (copy, *error, VMS_COPY_ERROR_DEST,
                         "writing %" G_GUINT64_FORMAT
                         " bytes at %" G_GUINT64_FORMAT
                         " to the destination: %s",
                         request->length, request->offset, g_strerror (*error));
      request->failed = TRUE;
    }
  /* A read that turned into several writes is done with the last. */
  if (--request->parts > 0)
    return 1;
  leave_flight (copy, request);
  if (!request->failed)
    request->done = TRUE;
  release_buffers (copy, request);
  return 1;
}

/* Send [offset, offset + length) of request as a zero request. */
static gboolean
issue_zero (Copy *copy, Request *request, guint64 offset, guint64 length)
{
  nbd_completion_callback done
      = { .callback = write_done, .user_data = request };

  /* No NO_HOLE flag: the sink may punch a hole, which reads as zeroes. */
  request->parts++;
  if (nbd_aio_zero (copy->dst[request->conn], length, offset, done, 0) < 0)
    {
      request->parts--;
      set_request_error (copy, nbd_get_errno (), VMS_COPY_ERROR_DEST,
                         "zeroing at %" G_GUINT64_FORMAT ": %s", offset,
                         nbd_get_error ());
      return FALSE;
    }
  copy->stats->bytes_zeroed += length;
  return TRUE;
}

static gboolean
issue_write (Copy *copy, Request *request, guint64 offset, guint64 length)
{
  nbd_completion_callback done
      = { .callback = write_done, .user_data = request };

  request->parts++;
  if (nbd_aio_pwrite (copy->dst[request->conn],
                      request->buffer + (offset - request->offset), length,
                      offset, done, 0)
      < 0)
    {
      request->parts--;
      set_request_error (copy, nbd_get_errno (), VMS_COPY_ERROR_DEST,
                         "writing at %" G_GUINT64_FORMAT ": %s", offset,
                         nbd_get_error ());
      return FALSE;
    }
  copy->stats->bytes_written += length;
  request->sent += length;
  return TRUE;
}

/* Length of the run of zero blocks (or of data blocks, when zero is FALSE)
 * starting at position within the request's buffer, up to limit. */
static guint64
run_length (Request *request, guint64 position, guint64 limit, gboolean zero)
{
  guint64 end = position;

  while (end < limit)
    {
      guint64 block = MIN (ZERO_BLOCK, limit - end);

      if (vms_copy_is_zero (request->buffer + end, block) != zero)
        break;
      end += block;
    }
  return end - position;
}

/* TRUE if the destination reads [offset, offset + length) as zeroes
 * already: counted as skipped, nothing to send. */
static gboolean
skip_dest_zeroes (Copy *copy, guint64 offset, guint64 length)
{
  if (copy->spec->bitmap
      || dest_zero_run (copy, offset, offset + length) < length)
    return FALSE;
  copy->stats->bytes_skipped += length;
  return TRUE;
}

/* Write [from, to) of what was read: data as writes, long zero runs as
 * zero requests (they carry no payload), short ones inside the data. */
static gboolean
issue_writes_between (Copy *copy, Request *request, guint64 from, guint64 to)
{
  guint64 position = from, data_start = from;

  while (position < to)
    {
      guint64 zeroes = run_length (request, position, to, TRUE);

      if (zeroes >= MIN_ZERO_RUN || (zeroes > 0 && zeroes == to - from))
        {
          if (position > data_start
              && !issue_write (copy, request, request->offset + data_start,
                               position - data_start))
            return FALSE;
          vms_rate_refund (copy->spec->rate, zeroes);
          if (!skip_dest_zeroes (copy, request->offset + position, zeroes)
              && !issue_zero (copy, request, request->offset + position,
                              zeroes))
            return FALSE;
          position += zeroes;
          data_start = position;
        }
      else
        position
            += MAX (zeroes, run_length (request, position + zeroes, to, FALSE)
                                + zeroes);
    }
  if (position > data_start
      && !issue_write (copy, request, request->offset + data_start,
                       position - data_start))
    return FALSE;
  return TRUE;
}

/* Write what was read, but for the compared chunks the destination holds
 * already. */
static gboolean
issue_writes (Copy *copy, Request *request)
{
  guint64 chunk = copy->spec->compare_chunk;
  guint64 position = 0;

  /* Taking a part for ourselves keeps the request alive until all its
   * writes are issued, even if the first completes at once. */
  request->parts = 1;
  for (guint i = 0; request->hashes && i < request->span.count; i++)
    {
      guint64 start = request->span.start - request->offset + i * chunk;
      guint64 length = MIN (chunk, request->span.end - request->offset - start);

      if (!vms_chunk_hash_matches (request->buffer + start, length,
                                   request->hashes
                                       + i * VMS_SINK_NAME_HASH_SIZE))
        continue;
      if (!issue_writes_between (copy, request, position, start))
        return FALSE;
      vms_rate_refund (copy->spec->rate, length);
      copy->stats->bytes_matched += length;
      position = start + length;
    }
  return issue_writes_between (copy, request, position, request->length);
}

/* Both reads of a request (data and hashes) are done, or one could not be
 * issued: write, or give up the request. */
static int
reads_done (Request *request)
{
  Copy *copy = request->copy;
  int no_error = 0;

  if (--request->reads > 0)
    return 1;
  if (request->failed)
    {
      leave_flight (copy, request);
      release_buffers (copy, request);
      return 1;
    }
  if (!issue_writes (copy, request))
    request->failed = TRUE;
  /* Drop the part issue_writes held; completes the request if the writes
   * already have, or if none could be issued. */
  write_done (request, &no_error);
  return 1;
}

static int
hashes_done (void *user_data, int *error)
{
  Request *request = user_data;
  Copy *copy = request->copy;

  copy->last_activity_us = g_get_monotonic_time ();
  if (*error)
    {
      set_request_error (
          copy, *error, VMS_COPY_ERROR_DEST,
          "reading the destination's hashes of %" G_GUINT64_FORMAT
          " bytes at %" G_GUINT64_FORMAT ": %s",
          request->span.end - request->span.start, request->span.start,
          g_strerror (*error));
      request->failed = TRUE;
    }
  return reads_done (request);
}

static int
read_done (void *user_data, int *error)
{
  Request *request = user_data;
  Copy *copy = request->copy;

  copy->last_activity_us = g_get_monotonic_time ();
  if (*error)
    {
      set_request_error (copy, *error, VMS_COPY_ERROR_SOURCE,
                         "reading %" G_GUINT64_FORMAT
                         " bytes at %" G_GUINT64_FORMAT " from the source: %s",
                         request->length, request->offset, g_strerror (*error));
      request->failed = TRUE;
    }
  else
    copy->stats->bytes_read += request->length;
  return reads_done (request);
}

/* The least busy pair with room, or -1. */
static int
pick_connection (Copy *copy)
{
  int best = -1;

  for (guint i = 0; i < copy->n; i++)
    if (copy->in_flight[i] < copy->depth
        && (best < 0 || copy->in_flight[i] < copy->in_flight[best]))
      best = i;
  return best;
}

static Request *
new_request (Copy *copy, guint64 offset, guint64 length, guint conn)
{
  Request *request = g_new0 (Request, 1);

  request->copy = copy;
  request->offset = offset;
  request->length = length;
  request->conn = conn;
  g_queue_push_tail (&copy->requests, request);
  copy->in_flight[conn]++;
  copy->last_activity_us = g_get_monotonic_time ();
  return request;
}

/* Ask the destination for its hashes of the request's whole chunks. */
static gboolean
issue_hash_read (Copy *copy, Request *request)
{
  guint64 chunk = copy->spec->compare_chunk;
  nbd_completion_callback done
      = { .callback = hashes_done, .user_data = request };

  if (!copy->cmp)
    return TRUE;
  request->span = vms_chunk_hash_span (request->offset, request->length,
                                       copy->size, chunk);
  if (request->span.count == 0)
    return TRUE;
  request->hashes = g_malloc (request->span.count * VMS_SINK_NAME_HASH_SIZE);
  request->reads++;
  if (nbd_aio_pread (copy->cmp, request->hashes,
                     request->span.count * VMS_SINK_NAME_HASH_SIZE,
                     vms_chunk_hash_offset (request->span.start, chunk), done,
                     0)
      < 0)
    {
      request->reads--;
      set_request_error (
          copy, nbd_get_errno (), VMS_COPY_ERROR_DEST,
          "reading the destination's hashes at %" G_GUINT64_FORMAT ": %s",
          request->span.start, nbd_get_error ());
      return FALSE;
    }
  return TRUE;
}

/* Read length bytes at the frontier on connection pair conn (and, when
 * comparing, the destination's hashes of them). */
static gboolean
issue_read (Copy *copy, guint64 length, int conn, gint64 now)
{
  Request *request = new_request (copy, copy->frontier, length, conn);
  nbd_completion_callback done
      = { .callback = read_done, .user_data = request };

  if (copy->spec->bitmap)
    copy->stats->dirty_bytes += length;
  request->work = length;
  request->buffer = take_buffer (copy);
  request->issued_us = now;
  request->mark = vms_pace_mark (&copy->pace);
  copy->flight_bytes += length;
  copy->frontier += length;
  /* Our own count until both reads are issued: one may complete before
   * the other is. */
  request->reads = 1;
  if (!issue_hash_read (copy, request))
    request->failed = TRUE;
  else
    {
      request->reads++;
      if (nbd_aio_pread (copy->src[conn], request->buffer, length,
                         request->offset, done, 0)
          < 0)
        {
          request->reads--;
          set_request_error (copy, nbd_get_errno (), VMS_COPY_ERROR_SOURCE,
                             "reading at %" G_GUINT64_FORMAT ": %s",
                             request->offset, nbd_get_error ());
          request->failed = TRUE;
        }
    }
  reads_done (request);
  return !copy->error;
}

/* Jump over the range acknowledged before a reconnect that the frontier
 * reached; returns where the next one starts, which requests stop short
 * of. */
static guint64
skip_acked (Copy *copy)
{
  while (copy->next_acked < copy->acked->len)
    {
      Extent *range = &g_array_index (copy->acked, Extent, copy->next_acked);

      if (range->offset > copy->frontier)
        return range->offset;
      copy->frontier = MAX (copy->frontier, range->offset + range->length);
      copy->next_acked++;
    }
  return G_MAXUINT64;
}

/* Issue what the limits allow.  Returns FALSE on a failure to issue. */
static gboolean
issue_more (Copy *copy, gint64 now)
{
  gboolean copy_dirty_only = copy->spec->bitmap != NULL;

  while (!copy->error && copy->frontier < copy->stats->end
         && !g_cancellable_is_cancelled (copy->spec->cancellable))
    {
      Extent *extent;
      guint64 extent_end, length, acked_start = skip_acked (copy);
      int conn;

      if (copy->frontier >= copy->stats->end)
        break;
      if (copy->next_extent >= copy->extents->len && !fetch_extents (copy))
        return FALSE;
      extent = &g_array_index (copy->extents, Extent, copy->next_extent);
      extent_end = MIN (extent->offset + extent->length, acked_start);
      if (copy->frontier >= extent_end)
        {
          copy->next_extent++;
          continue;
        }

      if (copy_dirty_only && !(extent->flags & 1))
        {
          /* Clean: nothing to send. */
          copy->stats->bytes_skipped += extent_end - copy->frontier;
          copy->frontier = extent_end;
          continue;
        }
      if (!copy_dirty_only && (extent->flags & LIBNBD_STATE_ZERO))
        {
          guint64 zeroes = dest_zero_run (copy, copy->frontier, extent_end);

          if (zeroes > 0)
            {
              copy->stats->bytes_skipped += zeroes;
              copy->frontier += zeroes;
              continue;
            }
        }
      conn = pick_connection (copy);
      if (conn < 0)
        break;

      if (!copy_dirty_only && (extent->flags & LIBNBD_STATE_ZERO))
        {
          Request *request;

          length = MIN (extent_end - copy->frontier, MAX_ZERO_REQUEST);
          /* Only over the destination's data: past it, it may be zero. */
          if (copy->dst_map && copy->dst_known_end > copy->frontier
              && copy->dst_known_start <= copy->frontier)
            length = MIN (length, copy->dst_known_end - copy->frontier);
          request = new_request (copy, copy->frontier, length, conn);
          copy->frontier += length;
          if (!issue_zero (copy, request, request->offset, length))
            {
              request->failed = TRUE;
              copy->in_flight[conn]--;
              return FALSE;
            }
          continue;
        }

      length = MIN (extent_end - copy->frontier, copy->request_size);
      /* One request goes whatever the cap, or nothing would move. */
      if (copy->flight_bytes > 0
          && copy->flight_bytes + length > vms_pace_cap (&copy->pace))
        break;
      if (copy->spec->rate)
        {
          gint64 wait = vms_rate_try_take (copy->spec->rate, length, now);

          if (wait > 0)
            {
              copy->rate_wake_us = now + wait;
              break;
            }
        }
      if (!issue_read (copy, length, conn, now))
        return FALSE;
    }
  return TRUE;
}

/* Drop finished requests from the head and move the watermark. */
static void
retire (Copy *copy)
{
  Request *head;

  while ((head = g_queue_peek_head (&copy->requests)) && head->done)
    {
      g_queue_pop_head (&copy->requests);
      copy->stats->work_done += head->work;
      g_free (head);
    }
  head = g_queue_peek_head (&copy->requests);
  copy->stats->watermark = head ? head->offset : copy->frontier;
}

static guint
requests_in_flight (Copy *copy)
{
  guint total = 0;

  for (guint i = 0; i < copy->n; i++)
    total += copy->in_flight[i];
  return total;
}

/* ---- durability ---- */

static int poll_handles (Copy *copy, int timeout_ms);
static void check_dead_handles (Copy *copy);

static int
flush_done (void *user_data, int *error)
{
  Copy *copy = user_data;

  copy->flush_pending = FALSE;
  copy->flush_done = TRUE;
  copy->flush_errno = *error;
  copy->last_activity_us = g_get_monotonic_time ();
  return 1;
}

/* Wait for the pending FLUSH, no longer than the I/O timeout: a
 * synchronous flush would hang for as long as a cut link stays cut.  Other
 * requests keep completing meanwhile. */
static gboolean
wait_flush (Copy *copy)
{
  gint64 deadline
      = g_get_monotonic_time () + copy->io_timeout_ms * (gint64)1000;

  while (copy->flush_pending)
    {
      if (g_get_monotonic_time () > deadline)
        {
          set_link_error (copy, VMS_COPY_ERROR_TIMEOUT,
                          "the destination did not answer a FLUSH for %u s",
                          copy->io_timeout_ms / 1000);
          return FALSE;
        }
      if (poll_handles (copy, MAX_POLL_MS) < 0)
        {
          set_error (copy, VMS_COPY_ERROR_DEST, "poll: %s", g_strerror (errno));
          return FALSE;
        }
      if (nbd_aio_is_dead (copy->dst[0]))
        {
          set_link_error (
              copy, VMS_COPY_ERROR_DEST,
              "the destination connection was lost during a FLUSH: %s",
              nbd_get_error ());
          return FALSE;
        }
    }
  return TRUE;
}

/* Send a FLUSH; flush_done() notes its completion.  With multi-conn one
 * FLUSH covers writes acknowledged on every connection; without it there
 * is only one connection. */
static gboolean
send_flush (Copy *copy)
{
  nbd_completion_callback done = { .callback = flush_done, .user_data = copy };

  copy->flush_errno = 0;
  copy->flush_sent_us = g_get_monotonic_time ();
  copy->flush_pending = TRUE;
  if (nbd_aio_flush (copy->dst[0], done, 0) < 0)
    {
      copy->flush_pending = FALSE;
      set_request_error (copy, nbd_get_errno (), VMS_COPY_ERROR_DEST,
                         "flushing the destination: %s", nbd_get_error ());
      return FALSE;
    }
  return TRUE;
}

/* FLUSH the destination and wait for it. */
static gboolean
flush_destination (Copy *copy)
{
  if (!send_flush (copy) || !wait_flush (copy))
    return FALSE;
  copy->flush_done = FALSE;
  if (copy->flush_errno)
    {
      set_request_error (copy, copy->flush_errno, VMS_COPY_ERROR_DEST,
                         "flushing the destination: %s",
                         g_strerror (copy->flush_errno));
      return FALSE;
    }
  return TRUE;
}

/* The FLUSH sent at flush_watermark came back: that much is durable, and
 * the caller may record it. */
static gboolean
record_checkpoint (Copy *copy)
{
  GError *error = NULL;

  if (copy->flush_errno)
    {
      set_request_error (copy, copy->flush_errno, VMS_COPY_ERROR_DEST,
                         "flushing the destination: %s",
                         g_strerror (copy->flush_errno));
      return FALSE;
    }
  copy->stats->flushes++;
  copy->stats->durable = copy->flush_watermark;
  if (copy->spec->checkpoint
      && !copy->spec->checkpoint (copy->stats, copy->spec->user_data, &error))
    {
      if (!copy->error)
        copy->error = error;
      else
        g_error_free (error);
      return FALSE;
    }
  return TRUE;
}

/* Send a FLUSH for everything below the watermark without waiting: the
 * copy goes on meanwhile, and the loop records the checkpoint when the
 * FLUSH completes.  A FLUSH covers every write completed before it was
 * sent, and every request below the watermark has completed. */
static gboolean
start_checkpoint (Copy *copy)
{
  copy->last_checkpoint_us = g_get_monotonic_time ();
  copy->flush_watermark = copy->checkpoint_watermark = copy->stats->watermark;
  return send_flush (copy);
}

/* FLUSH and record synchronously: at the end of a copy. */
static gboolean
checkpoint (Copy *copy)
{
  guint64 watermark;

  /* A background FLUSH still in flight is waited for first, so that its
   * completion cannot be taken for this one's. */
  if (!wait_flush (copy))
    return FALSE;
  copy->flush_done = FALSE;
  watermark = copy->stats->watermark;
  copy->last_checkpoint_us = g_get_monotonic_time ();
  if (!flush_destination (copy))
    return FALSE;
  copy->stats->final_flush_us
      = g_get_monotonic_time () - copy->last_checkpoint_us;
  copy->flush_watermark = copy->checkpoint_watermark = watermark;
  return record_checkpoint (copy);
}

static gboolean
checkpoint_due (Copy *copy, gint64 now)
{
  const VmsCopySpec *spec = copy->spec;
  guint64 bytes = spec->checkpoint_bytes ? spec->checkpoint_bytes
                                         : VMS_COPY_DEFAULT_CHECKPOINT_BYTES;
  guint ms = spec->checkpoint_ms ? spec->checkpoint_ms
                                 : VMS_COPY_DEFAULT_CHECKPOINT_MS;

  if (copy->stats->watermark <= copy->checkpoint_watermark)
    return FALSE;
  return copy->stats->watermark - copy->checkpoint_watermark >= bytes
         || now - copy->last_checkpoint_us >= ms * (gint64)1000;
}

/* ---- the loop ---- */

static int
poll_handles (Copy *copy, int timeout_ms)
{
  struct nbd_handle *handles[2 * VMS_COPY_MAX_CONNECTIONS + 1];
  guint count = 2 * copy->n;

  for (guint i = 0; i < copy->n; i++)
    {
      handles[i] = copy->src[i];
      handles[copy->n + i] = copy->dst[i];
    }
  if (copy->cmp)
    handles[count++] = copy->cmp;
  return vms_nbd_poll (handles, count, timeout_ms);
}

static void
check_dead_handles (Copy *copy)
{
  for (guint i = 0; i < copy->n; i++)
    {
      if (nbd_aio_is_dead (copy->src[i]) || nbd_aio_is_closed (copy->src[i]))
        set_link_error (copy, VMS_COPY_ERROR_SOURCE,
                        "the source connection was lost: %s", nbd_get_error ());
      if (nbd_aio_is_dead (copy->dst[i]) || nbd_aio_is_closed (copy->dst[i]))
        set_link_error (copy, VMS_COPY_ERROR_DEST,
                        "the destination connection was lost: %s",
                        nbd_get_error ());
    }
  if (copy->cmp
      && (nbd_aio_is_dead (copy->cmp) || nbd_aio_is_closed (copy->cmp)))
    set_link_error (copy, VMS_COPY_ERROR_DEST,
                    "the destination's hashes connection was lost: %s",
                    nbd_get_error ());
}

/* Requests that failed or never completed are lost with the connections;
 * free their records. */
static void
free_requests (Copy *copy)
{
  Request *request;

  while ((request = g_queue_pop_head (&copy->requests)))
    {
      g_free (request->buffer);
      g_free (request->hashes);
      g_free (request);
    }
}

static gboolean
run_loop (Copy *copy)
{
  const VmsCopySpec *spec = copy->spec;
  guint io_timeout_ms = copy->io_timeout_ms;

  for (;;)
    {
      gint64 now = g_get_monotonic_time ();
      gboolean stopping
          = g_cancellable_is_cancelled (spec->cancellable) || copy->error;
      int timeout_ms = MAX_POLL_MS;

      if (!stopping && (!copy->rate_wake_us || now >= copy->rate_wake_us))
        {
          copy->rate_wake_us = 0;
          issue_more (copy, now);
        }
      retire (copy);
      if (requests_in_flight (copy) == 0 && !copy->flush_pending
          && (copy->error || copy->frontier >= copy->stats->end
              || g_cancellable_is_cancelled (spec->cancellable)))
        break;
      if (copy->flush_done)
        {
          copy->flush_done = FALSE;
          record_checkpoint (copy);
          continue;
        }
      if (!copy->error && !copy->flush_pending && checkpoint_due (copy, now))
        {
          start_checkpoint (copy);
          continue;
        }
      if (copy->flush_pending
          && now - copy->flush_sent_us > io_timeout_ms * (gint64)1000)
        {
          set_link_error (copy, VMS_COPY_ERROR_TIMEOUT,
                          "the destination did not answer a FLUSH for %u s",
                          io_timeout_ms / 1000);
          return FALSE;
        }

      if (now - copy->last_progress_us >= PROGRESS_INTERVAL_US)
        {
          copy->last_progress_us = now;
          if (spec->progress)
            spec->progress (copy->stats, spec->user_data);
        }
      if (requests_in_flight (copy) > 0
          && now - copy->last_activity_us > io_timeout_ms * (gint64)1000)
        {
          set_link_error (copy, VMS_COPY_ERROR_TIMEOUT,
                          "no reply from the source or destination for %u s "
                          "(link down?)",
                          io_timeout_ms / 1000);
          /* The stuck requests will never complete: leave now. */
          return FALSE;
        }
      if (copy->rate_wake_us)
        timeout_ms
            = CLAMP ((copy->rate_wake_us - now) / 1000 + 1, 1, MAX_POLL_MS);
      if (poll_handles (copy, timeout_ms) < 0)
        {
          set_error (copy, VMS_COPY_ERROR_SOURCE, "poll: %s",
                     g_strerror (errno));
          return FALSE;
        }
      check_dead_handles (copy);
      /* A dead connection's requests may never complete: with others
       * still in flight, waiting for them all would wait for the I/O
       * timeout.  They are all sent again. */
      if (copy->link_lost)
        return FALSE;
    }
  return copy->error == NULL;
}

/* What the pass leaves behind, done or failed: retire what completed, and
 * FLUSH what the destination acknowledged, also after a failure (it is
 * less to send again), unless its connection is gone or stuck. */
static gboolean
finish_pass (Copy *copy, gboolean ok)
{
  retire (copy);
  /* A background FLUSH that completed as the loop ended still counts. */
  if (copy->flush_done)
    {
      copy->flush_done = FALSE;
      record_checkpoint (copy);
    }
  if (copy->n > 0 && !nbd_aio_is_dead (copy->dst[0])
      && !g_error_matches (copy->error, VMS_COPY_ERROR, VMS_COPY_ERROR_TIMEOUT)
      && (copy->stats->watermark > copy->checkpoint_watermark || ok))
    ok = checkpoint (copy) && ok;
  return ok && !copy->error;
}

/* Both ends as big as the copy needs, at the start and after a
 * reconnect. */
static gboolean
check_sizes (Copy *copy, GError **error)
{
  int64_t size = nbd_get_size (copy->map);
  int64_t dest_size = nbd_get_size (copy->dst[0]);

  if (size < 0 || dest_size < size
      || (copy->stats->end && (guint64)size < copy->stats->end))
    {
      g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_DEST,
                   "the destination holds %" G_GINT64_FORMAT " bytes, the "
                   "source %" G_GINT64_FORMAT,
                   dest_size, size);
      return FALSE;
    }
  if (copy->cmp
      && nbd_get_size (copy->cmp)
             != (int64_t)vms_chunk_hash_offset (size + copy->spec->compare_chunk
                                                    - 1,
                                                copy->spec->compare_chunk))
    {
      g_set_error (
          error, VMS_COPY_ERROR, VMS_COPY_ERROR_DEST,
          "the destination's hashes (%s) do not cover %" G_GINT64_FORMAT
          " bytes in chunks of %u",
          copy->spec->compare_uri, size, copy->spec->compare_chunk);
      return FALSE;
    }
  copy->size = size;
  return TRUE;
}

/* ---- reconnecting ---- */

/* Sleep for us microseconds; FALSE if stopped meanwhile. */
static gboolean
sleep_unless_stopped (GCancellable *cancellable, gint64 us)
{
  gint64 until = g_get_monotonic_time () + us;

  for (;;)
    {
      gint64 left = until - g_get_monotonic_time ();

      if (g_cancellable_is_cancelled (cancellable))
        return FALSE;
      if (left <= 0)
        return TRUE;
      g_usleep (MIN (left, MAX_POLL_MS * 1000));
    }
}

/* The connections are gone, and with them whatever was in flight: forget
 * those requests.  Returns the bytes they had written, which go again. */
static guint64
drop_connections (Copy *copy)
{
  guint64 sent = 0;
  Request *request;

  g_autoptr (GArray) acked = g_array_new (FALSE, FALSE, sizeof (Extent));

  /* Close first: closing retires the requests' callbacks. */
  close_all (copy);
  retire (copy);
  while ((request = g_queue_pop_head (&copy->requests)))
    {
      if (request->done)
        {
          /* Past the watermark but acknowledged: not sent again. */
          Extent range = { request->offset, request->length, 0 };

          g_array_append_val (acked, range);
          copy->stats->work_done += request->work;
          g_free (request);
          continue;
        }
      sent += request->sent;
      /* Counted again when issued again. */
      if (copy->spec->bitmap)
        copy->stats->dirty_bytes -= request->work;
      release_buffers (copy, request);
      g_free (request);
    }
  /* Those of an earlier reconnect not passed yet lie beyond. */
  if (copy->next_acked < copy->acked->len)
    g_array_append_vals (acked,
                         &g_array_index (copy->acked, Extent, copy->next_acked),
                         copy->acked->len - copy->next_acked);
  g_array_unref (copy->acked);
  copy->acked = g_steal_pointer (&acked);
  copy->next_acked = 0;
  copy->flush_pending = copy->flush_done = FALSE;
  return sent;
}

/* From the floor again: the path may have changed with the connections. */
static void
start_pacing (Copy *copy)
{
  /* A request per connection at least: what a lost connection may cost
   * again whatever the path. */
  vms_pace_init (&copy->pace, (guint64)copy->n * copy->request_size,
                 (guint64)copy->n * copy->depth * copy->request_size);
}

/* Go on from offset with the new connections. */
static void
restart_at (Copy *copy, guint64 offset)
{
  copy->frontier = copy->stats->watermark = offset;
  copy->checkpoint_watermark = copy->stats->durable;
  g_array_set_size (copy->extents, 0);
  copy->next_extent = 0;
  copy->dst_known_start = copy->dst_known_end = 0;
  g_free (copy->in_flight);
  copy->in_flight = g_new0 (guint, copy->n);
  copy->flight_bytes = 0;
  start_pacing (copy);
  copy->rate_wake_us = 0;
  copy->last_activity_us = copy->last_checkpoint_us = g_get_monotonic_time ();
  copy->link_lost = FALSE;
  g_clear_error (&copy->error);
}

/* The destination still holds what it acknowledged if it says it is the
 * same as at the start (the sink's description names its host's boot);
 * otherwise only what the last FLUSH covered is sure. */
static gboolean
same_destination (Copy *copy)
{
  return copy->dst_identity && *copy->dst_identity
         && g_strcmp0 (copy->dst_identity, copy->dst_description) == 0;
}

/* One attempt to connect again within deadline (monotonic us). */
static gboolean
connect_again (Copy *copy, gint64 deadline, GError **error)
{
  gint64 left_ms = (deadline - g_get_monotonic_time ()) / 1000;

  if (connect_all (copy, copy->wanted,
                   CLAMP (left_ms, 1000, (gint64)copy->io_timeout_ms), error)
      && check_sizes (copy, error))
    return TRUE;
  close_all (copy);
  return FALSE;
}

/* The connections were lost: connect again with growing pauses until
 * spec->retry_timeout_ms is up, and go on from what the destination still
 * holds.  FALSE, with copy->error set, when that fails or is stopped. */
static gboolean
reconnect (Copy *copy)
{
  const VmsCopySpec *spec = copy->spec;
  gint64 deadline
      = g_get_monotonic_time () + spec->retry_timeout_ms * (gint64)1000;
  g_autoptr (GError) cause = g_steal_pointer (&copy->error);
  guint64 lost = drop_connections (copy);
  guint64 watermark = copy->stats->watermark;
  gint64 lost_us = g_get_monotonic_time ();
  guint64 resume;

  for (guint attempt = 1;; attempt++)
    {
      g_autoptr (GError) error = NULL;
      gint64 delay_us
          = (gint64)MIN (RECONNECT_FIRST_DELAY_MS << MIN (attempt - 1, 5),
                         RECONNECT_MAX_DELAY_MS)
            * 1000;

      if (spec->reconnect)
        spec->reconnect (attempt, cause, copy->stats, spec->user_data);
      if (!sleep_unless_stopped (
              spec->cancellable,
              CLAMP (deadline - g_get_monotonic_time (), 0, delay_us)))
        {
          copy->error = g_error_new (VMS_COPY_ERROR, VMS_COPY_ERROR_STOPPED,
                                     "stopped while connecting again (%s)",
                                     cause->message);
          return FALSE;
        }
      if (connect_again (copy, deadline, &error))
        break;
      if (!copy->connect_link_failed || g_get_monotonic_time () >= deadline)
        {
          copy->error = g_error_new (
              VMS_COPY_ERROR,
              copy->connect_link_failed ? cause->code : error->code,
              "%s; connecting again failed (%u attempt%s in %.1f s): %s",
              cause->message, attempt, attempt == 1 ? "" : "s",
              (g_get_monotonic_time () - lost_us) / (double)G_USEC_PER_SEC,
              error->message);
          return FALSE;
        }
    }
  resume = same_destination (copy) ? watermark : copy->stats->durable;
  /* Another destination may have lost what it acknowledged. */
  if (!same_destination (copy))
    g_array_set_size (copy->acked, 0);
  copy->stats->bytes_resent += lost + (watermark - resume);
  copy->stats->reconnects++;
  copy->stats->reconnect_us += g_get_monotonic_time () - lost_us;
  restart_at (copy, resume);
  if (spec->reconnect)
    spec->reconnect (0, NULL, copy->stats, spec->user_data);
  return TRUE;
}

static gboolean
validate (const VmsCopySpec *spec, GError **error)
{
  if (!spec->source_uri || !spec->dest_uri)
    {
      g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_INVALID,
                   "a source and a destination are needed");
      return FALSE;
    }
  if (spec->request_size
      && (spec->request_size < 4096
          || spec->request_size > VMS_COPY_MAX_REQUEST_SIZE))
    {
      g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_INVALID,
                   "request size %u is outside 4096..%d", spec->request_size,
                   VMS_COPY_MAX_REQUEST_SIZE);
      return FALSE;
    }
  if (spec->connections > VMS_COPY_MAX_CONNECTIONS
      || spec->queue_depth > VMS_COPY_MAX_QUEUE_DEPTH)
    {
      g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_INVALID,
                   "at most %d connections and %d requests in flight each",
                   VMS_COPY_MAX_CONNECTIONS, VMS_COPY_MAX_QUEUE_DEPTH);
      return FALSE;
    }
  if (spec->compare_uri
      && (spec->compare_chunk < VMS_SINK_NAME_HASH_CHUNK_MIN
          || spec->compare_chunk > VMS_SINK_NAME_HASH_CHUNK_MAX
          || (spec->compare_chunk & (spec->compare_chunk - 1)) != 0))
    {
      g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_INVALID,
                   "compare chunk %u is not a power of two from %d to %d",
                   spec->compare_chunk, VMS_SINK_NAME_HASH_CHUNK_MIN,
                   VMS_SINK_NAME_HASH_CHUNK_MAX);
      return FALSE;
    }
  return TRUE;
}

guint
vms_copy_default_connections (void)
{
  return CLAMP (g_get_num_processors (), 1, VMS_COPY_DEFAULT_CONNECTIONS);
}

gboolean
vms_copy_run (const VmsCopySpec *spec, VmsCopyStats *stats, GError **error)
{
  Copy copy = { .spec = spec, .stats = stats };
  g_autofree char *bitmap_context = NULL;
  guint io_timeout_ms = spec->io_timeout_ms ? spec->io_timeout_ms
                                            : VMS_COPY_DEFAULT_IO_TIMEOUT_MS;
  gboolean ok = FALSE;

  if (!validate (spec, error))
    return FALSE;
  if (spec->bitmap)
    bitmap_context = g_strdup_printf ("qemu:dirty-bitmap:%s", spec->bitmap);
  copy.map_context = spec->bitmap ? bitmap_context : "base:allocation";
  copy.io_timeout_ms = io_timeout_ms;
  copy.request_size
      = spec->request_size ? spec->request_size : VMS_COPY_DEFAULT_REQUEST_SIZE;
  copy.depth
      = spec->queue_depth ? spec->queue_depth : VMS_COPY_DEFAULT_QUEUE_DEPTH;
  copy.extents = g_array_new (FALSE, FALSE, sizeof (Extent));
  copy.acked = g_array_new (FALSE, FALSE, sizeof (Extent));
  copy.free_buffers = g_ptr_array_new_with_free_func (g_free);
  g_queue_init (&copy.requests);

  copy.wanted
      = spec->connections ? spec->connections : vms_copy_default_connections ();
  if (!connect_all (&copy, copy.wanted, io_timeout_ms, error))
    goto out;
  copy.in_flight = g_new0 (guint, copy.n);
  start_pacing (&copy);
  copy.dst_identity = g_strdup (copy.dst_description);
  stats->end = 0;
  if (!check_sizes (&copy, error))
    goto out;
  stats->end = spec->end ? MIN (spec->end, copy.size) : copy.size;
  if (spec->start > stats->end)
    {
      g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_INVALID,
                   "start %" G_GUINT64_FORMAT
                   " is beyond the end %" G_GUINT64_FORMAT,
                   spec->start, stats->end);
      goto out;
    }
  if (!measure_work (&copy, spec->start, error))
    goto out;
  copy.frontier = spec->start;
  stats->watermark = stats->durable = copy.checkpoint_watermark = spec->start;
  copy.last_checkpoint_us = copy.last_activity_us = g_get_monotonic_time ();

  for (;;)
    {
      ok = finish_pass (&copy, run_loop (&copy));
      if (ok || !copy.link_lost || !spec->retry_timeout_ms
          || g_cancellable_is_cancelled (spec->cancellable)
          || !reconnect (&copy))
        break;
    }
  if (spec->progress)
    spec->progress (stats, spec->user_data);
  if (!ok || copy.error)
    {
      ok = FALSE;
      if (copy.error)
        g_propagate_error (error, g_steal_pointer (&copy.error));
    }
  else if (g_cancellable_is_cancelled (spec->cancellable)
           && stats->durable < stats->end)
    {
      ok = FALSE;
      g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_STOPPED,
                   "stopped at %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT,
                   stats->durable, stats->end);
    }

out:
  /* Close before freeing requests: closing retires pending callbacks. */
  close_all (&copy);
  free_requests (&copy);
  g_clear_error (&copy.error);
  g_free (copy.dst_identity);
  g_free (copy.dst_description);
  g_free (copy.src);
  g_free (copy.dst);
  g_free (copy.in_flight);
  g_array_unref (copy.extents);
  g_array_unref (copy.acked);
  g_ptr_array_unref (copy.free_buffers);
  return ok;
}
