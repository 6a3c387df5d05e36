/* vmshift sink: the ranges a replica's @live export wrote, kept in a file
 * next to its metadata so that a restarted sink still drops plain writes
 * over them.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * DIR/.vmshift/NAME.live is an append-only log of (offset, length) pairs,
 * 16 bytes each, little-endian.  A record is written (to the page cache)
 * before the live write it describes, and made durable with the replica's
 * FLUSH: the ranges then live exactly as long as the data they protect.
 * A sink process that is killed and restarted keeps both (the page cache
 * survives it); a host crash may lose unflushed records, but then it lost
 * the unflushed live data as well, and the client sends those writes again.
 *
 * The log is compacted: once appends have doubled it (and it holds at
 * least 1 MiB), it is rewritten, atomically and durably, as one record
 * per merged range of the replica's set, so a long mirror writing
 * sequential blocks keeps it small and a restarted sink reads little.
 *
 * Append, maybe_compact and reset must not run at the same time as each
 * other (the replica's order_lock, held exclusively, keeps them apart);
 * sync may run at any time.
 */
#pragma once

#include <glib.h>

#include "vms-range-set.h"

G_BEGIN_DECLS

typedef struct _VmsSinkLiveLog VmsSinkLiveLog;

/* Open (making it if need be) the live log of replica name in the
 * metadata directory dir_fd (whose path, for messages, is dir; the log
 * keeps a descriptor of its own), and put the ranges it records into
 * *ranges (a new set; NULL when there are none).  A torn last record,
 * which only a host crash can leave, is dropped: its write was never
 * acknowledged.  Temporary files of a compaction a crash interrupted
 * are removed. */
VmsSinkLiveLog *vms_sink_live_log_open (int dir_fd, const char *dir,
                                        const char *name, VmsRangeSet **ranges,
                                        GError **error);
void vms_sink_live_log_free (VmsSinkLiveLog *log);

/* Record [offset, offset + length) before it is written. */
gboolean vms_sink_live_log_append (VmsSinkLiveLog *log, guint64 offset,
                                   guint64 length, GError **error);

/* Once an append has brought the log to twice what it was after its
 * last compaction, rewrite it from ranges: the set of live ranges
 * every record was added to, so a superset of the log (it must hold the
 * range just appended).  On failure the log keeps what it had and takes
 * further appends, and tries again when it has doubled once more; only
 * if the new log was renamed in but could not be opened do appends (and
 * syncs) fail, until one of them opens it. */
gboolean vms_sink_live_log_maybe_compact (VmsSinkLiveLog *log,
                                          VmsRangeSet *ranges, GError **error);

/* Make the records durable (the replica's FLUSH). */
gboolean vms_sink_live_log_sync (VmsSinkLiveLog *log, GError **error);

/* Forget every record, durably: plain writes land everywhere again. */
gboolean vms_sink_live_log_reset (VmsSinkLiveLog *log, GError **error);

/* Remove replica name's live log from dir_fd, and the temporary files
 * of a compaction a crash interrupted; none is success. */
gboolean vms_sink_live_log_remove (int dir_fd, const char *dir,
                                   const char *name, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsSinkLiveLog, vms_sink_live_log_free)

G_END_DECLS
