/* vmshift: copy a disk range from an NBD source to an NBD destination.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>

#include "vms-rate.h"

G_BEGIN_DECLS

#define VMS_COPY_ERROR (vms_copy_error_quark ())
GQuark vms_copy_error_quark (void);

typedef enum
{
  VMS_COPY_ERROR_CONNECT,   /* an endpoint could not be reached */
  VMS_COPY_ERROR_SOURCE,    /* reading or mapping the source failed */
  VMS_COPY_ERROR_DEST,      /* writing or flushing the destination failed */
  VMS_COPY_ERROR_TIMEOUT,   /* no reply within the I/O timeout */
  VMS_COPY_ERROR_STOPPED,   /* stopped on request (Ctrl-C) */
  VMS_COPY_ERROR_INVALID,   /* bad parameters */
} VmsCopyError;

/* nbdcopy's default request: big enough to amortise a round trip on a
 * LAN, small enough to keep many in flight. */
#define VMS_COPY_DEFAULT_REQUEST_SIZE (256 * 1024)
/* QEMU's NBD server refuses requests above 32 MiB. */
#define VMS_COPY_MAX_REQUEST_SIZE (32 * 1024 * 1024)
/* Requests in flight per connection: nbdcopy's default, and what
 * bench/sync-throughput needed to match it. */
#define VMS_COPY_DEFAULT_QUEUE_DEPTH 64
#define VMS_COPY_MAX_QUEUE_DEPTH 256
/* Connections per side when the server allows multi-conn: one per CPU up
 * to this many (as nbdcopy does), since more than the machine can serve
 * only lengthen the sink's queues. */
#define VMS_COPY_DEFAULT_CONNECTIONS 4
#define VMS_COPY_MAX_CONNECTIONS 16
/* A FLUSH and a checkpoint after this much data, or this much time,
 * whichever comes first: what a crash can cost us again. */
#define VMS_COPY_DEFAULT_CHECKPOINT_BYTES (64 * 1024 * 1024)
#define VMS_COPY_DEFAULT_CHECKPOINT_MS 10000
/* A peer that answers nothing for this long is taken for gone. */
#define VMS_COPY_DEFAULT_IO_TIMEOUT_MS 60000

typedef struct
{
  guint64 watermark;      /* every byte below is at the destination */
  guint64 durable;        /* every byte below was covered by a FLUSH */
  guint64 end;            /* end of the range being copied */
  guint64 bytes_read;     /* read from the source */
  guint64 bytes_written;  /* data written to the destination (on the wire) */
  guint64 bytes_zeroed;   /* ranges zeroed at the destination (no payload) */
  guint64 bytes_skipped;  /* ranges not sent: clean, or zeroes the
                             destination already reads as zeroes */
  guint64 bytes_matched;  /* read, but not sent: the destination's hash of
                             the chunk was the same (compare_uri) */
  guint64 dirty_bytes;    /* dirty mode: dirty bytes seen in the map so far */
  guint64 work_total;     /* bytes of [start, end) to copy, as mapped at the
                             start: dirty, or not known to read as zeroes */
  guint64 work_done;      /* of those, bytes below the watermark (more than
                             work_total if the guest filled holes since) */
  guint flushes;          /* FLUSH requests completed */
  gint64 final_flush_us;  /* how long the FLUSH that ended the copy took:
                             a final round's pays as much inside the
                             downtime */
  guint reconnects;       /* times the connections were made again */
  gint64 reconnect_us;    /* spent without connections, from their loss
                             to connecting again */
  guint64 bytes_resent;   /* of bytes_written, sent again after a lost
                             connection (an upper bound when the copy went
                             back to its last FLUSH) */
} VmsCopyStats;

/* Called before each attempt to connect again after the connections were
 * lost (attempt counts from 1; cause says how they were lost), and with
 * attempt 0 and no cause once connected again. */
typedef void (*VmsCopyReconnectFunc) (guint attempt, const GError *cause,
                                      const VmsCopyStats *stats,
                                      gpointer user_data);

/* Called after each FLUSH: stats->durable may be recorded as done.
 * Returning FALSE stops the copy with that error. */
typedef gboolean (*VmsCopyCheckpointFunc) (const VmsCopyStats *stats,
                                           gpointer user_data,
                                           GError **error);

/* Called a few times a second with the current figures. */
typedef void (*VmsCopyProgressFunc) (const VmsCopyStats *stats,
                                     gpointer user_data);

typedef struct
{
  const char *source_uri;  /* NBD URI of the source (QEMU's export) */
  const char *bitmap;      /* copy only what qemu:dirty-bitmap:BITMAP marks;
                              NULL: copy all, zeroing holes and zeroes */
  const char *dest_uri;    /* NBD URI of the destination replica */
  guint64 start;           /* first byte to copy */
  guint64 end;             /* one past the last; 0 means the source size */
  guint connections;       /* per side; 0: CPUs, at most the default */
  guint queue_depth;       /* per connection; 0: default */
  guint32 request_size;    /* bytes per read; 0: default */
  guint64 checkpoint_bytes;/* 0: default */
  guint checkpoint_ms;     /* 0: default */
  guint io_timeout_ms;     /* 0: default */
  guint retry_timeout_ms;  /* connections lost (reset, timeout): connect
                              again for up to this long and go on; 0: fail
                              at once */
  const char *compare_uri; /* the destination's NAME@hashes=CHUNK, or
                              NULL: chunks of what is read that hash the
                              same there are not sent */
  guint32 compare_chunk;   /* CHUNK of compare_uri */
  gboolean skip_dest_zeroes; /* copying all: where the destination's map
                                says it reads as zeroes already, send no
                                zero request (a new sparse replica) */
  VmsRate *rate;           /* bandwidth limit, or NULL */
  GCancellable *cancellable; /* cancelled: stop cleanly; or NULL */
  VmsCopyCheckpointFunc checkpoint; /* or NULL */
  VmsCopyProgressFunc progress;     /* or NULL */
  VmsCopyReconnectFunc reconnect;   /* or NULL */
  gpointer user_data;      /* for both callbacks */
} VmsCopySpec;

/* Copy [start, end) of the source to the destination.  Requests are
 * issued in offset order, many in flight on several connections; data that
 * reads as zeroes is sent as a zero request (unless skip_dest_zeroes finds
 * the destination zero there already).  With compare_uri, each read's
 * chunks are hashed and only those whose hash differs from the
 * destination's are sent: for a source whose dirty bitmap was lost, or
 * bitmaps coarser than the guest's writes.  On success everything is
 * flushed and stats->durable == end.  On failure or stop, whatever could
 * be flushed was, and the last checkpoint says where to resume.
 *
 * Lost connections (a reset, a peer silent for io_timeout_ms) are made
 * again within retry_timeout_ms, and the copy goes on from the first
 * request the destination did not acknowledge, as long as the
 * destination's export description is the same non-empty text before and
 * after (the sink's names its host's boot: what it acknowledged is in that
 * host's page cache).  Otherwise it goes on from its last FLUSH. */
gboolean vms_copy_run (const VmsCopySpec *spec, VmsCopyStats *stats,
                       GError **error);

/* Connections per side when spec->connections is 0: one per CPU, at
 * most VMS_COPY_DEFAULT_CONNECTIONS. */
guint vms_copy_default_connections (void);

/* TRUE if length bytes at buffer are all zero. */
gboolean vms_copy_is_zero (const void *buffer, gsize length);

G_END_DECLS
