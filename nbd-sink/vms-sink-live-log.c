/* vmshift sink: the ranges a replica's @live export wrote, on disk.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-sink-live-log.h"
#include "vms-sink-error.h"
#include "vms-sink-file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* One record: offset and length, little-endian. */
#define RECORD_SIZE 16
/* Records read per pread when the log is loaded. */
#define READ_RECORDS 4096

/* The log is compacted when appends have made it COMPACT_GROWTH times
 * what it was after its last compaction.  Growth by a factor makes the
 * rewriting cheap overall: a compaction writes at most what the log
 * holds, and the log doubled since the one before, so the rewrites add
 * up to about one record written per record appended; and the log never
 * holds much more than twice its merged ranges.  Under COMPACT_MIN_SIZE
 * (65536 records) it is left alone: reading that much at a restart takes
 * milliseconds, and a compaction's fsyncs, during which every write to
 * the replica waits, would cost more than they save. */
#define COMPACT_GROWTH 2
#define COMPACT_MIN_SIZE (1024 * 1024)

/* Why the log may be rewritten from the replica's set of live ranges:
 *
 * - The set is a superset of every record in the log: it is built from
 *   the log when the log is opened, every range appended is added to it,
 *   and a range whose append failed is added too (remember_live in
 *   vms-sink-replica.c).  So the compacted log protects at least every
 *   byte the old one did.
 * - vms_sink_file_replace fsyncs the new log before it renames it, so
 *   the compacted records are durable at once, before the next FLUSH:
 *   FLUSH's order (the data's fdatasync, then the log's) still makes
 *   every range at least as durable as the data it protects.
 * - The rename is atomic: a crash during a compaction leaves the old log
 *   or the new one whole under the name, never a mix.  Its temporary
 *   file may stay behind; the next open removes it.
 * - It runs under the caller's lock that orders appends (the replica's
 *   order_lock, exclusive), so no record is appended to the old file
 *   between the walk of the set and the switch to the new one. */

struct _VmsSinkLiveLog
{
  int dir_fd;            /* DIR/.vmshift, where compaction makes the new log */
  char *dir;             /* its path, for messages */
  char *file;            /* NAME.live, the log's name in dir_fd */
  char *path;            /* the log's path, for messages */
  GMutex fd_lock;        /* held to change fd, and by sync, which the caller's
                            ordering lock does not cover */
  int fd;                /* the log, read-write; -1 when a compaction renamed a
                            new log in but could not open it */
  guint64 end;           /* where the next record goes */
  guint64 compacted_end; /* end after the last compaction, or the last try
                            (or what one would leave, for a log just
                            opened): the base of COMPACT_GROWTH */
};

static gboolean
fail (GError **error, int err, const char *what, const char *path)
{
  g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_IO, "%s %s: %s", what,
               path, g_strerror (err));
  return FALSE;
}

static char *
file_name (const char *name)
{
  return g_strconcat (name, ".live", NULL);
}

static int
open_or_make (int dir_fd, const char *dir, const char *file, GError **error)
{
  g_autoptr (GError) open_error = NULL;
  int fd = vms_sink_file_open (dir_fd, dir, file, O_RDWR, &open_error);

  if (fd >= 0
      || !g_error_matches (open_error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
    {
      if (fd < 0)
        g_propagate_error (error, g_steal_pointer (&open_error));
      return fd;
    }
  return vms_sink_file_open (dir_fd, dir, file, O_RDWR | O_CREAT | O_EXCL,
                             error);
}

/* Read every whole record into *ranges; log->end is after the last. */
static gboolean
load (VmsSinkLiveLog *log, VmsRangeSet **ranges, GError **error)
{
  g_autofree guint64 *records = g_new (guint64, 2 * READ_RECORDS);

  *ranges = NULL;
  log->end = 0;
  for (;;)
    {
      ssize_t got
          = pread (log->fd, records, READ_RECORDS * RECORD_SIZE, log->end);

      if (got < 0 && errno == EINTR)
        continue;
      if (got < 0)
        return fail (error, errno, "read", log->path);
      for (ssize_t i = 0; i + RECORD_SIZE <= got; i += RECORD_SIZE)
        {
          if (!*ranges)
            *ranges = vms_range_set_new ();
          vms_range_set_add (*ranges, GUINT64_FROM_LE (records[i / 8]),
                             GUINT64_FROM_LE (records[i / 8 + 1]));
          log->end += RECORD_SIZE;
        }
      if (got < READ_RECORDS * RECORD_SIZE)
        return TRUE;
    }
}

VmsSinkLiveLog *
vms_sink_live_log_open (int dir_fd, const char *dir, const char *name,
                        VmsRangeSet **ranges, GError **error)
{
  g_autoptr (VmsSinkLiveLog) log = g_new0 (VmsSinkLiveLog, 1);

  log->fd = -1;
  g_mutex_init (&log->fd_lock);
  log->dir = g_strdup (dir);
  log->file = file_name (name);
  log->path = g_build_filename (dir, log->file, NULL);
  *ranges = NULL;
  log->dir_fd = fcntl (dir_fd, F_DUPFD_CLOEXEC, 0);
  if (log->dir_fd < 0)
    {
      fail (error, errno, "dup of the descriptor of", dir);
      return NULL;
    }
  /* Left by a compaction that a crash interrupted: the name still holds
   * a whole log (the old or the new), and nothing else reads them. */
  if (!vms_sink_file_remove_temps (log->dir_fd, dir, log->file, error))
    return NULL;
  log->fd = open_or_make (log->dir_fd, dir, log->file, error);
  if (log->fd < 0 || !load (log, ranges, error))
    {
      g_clear_pointer (ranges, vms_range_set_free);
      return NULL;
    }
  /* A log written before compaction existed, or by appends that failed
   * to compact, is compacted once it holds twice its ranges. */
  log->compacted_end
      = *ranges ? (guint64)vms_range_set_count (*ranges) * RECORD_SIZE : 0;
  return g_steal_pointer (&log);
}

void
vms_sink_live_log_free (VmsSinkLiveLog *log)
{
  if (!log)
    return;
  if (log->fd >= 0)
    close (log->fd);
  if (log->dir_fd >= 0)
    close (log->dir_fd);
  g_mutex_clear (&log->fd_lock);
  g_free (log->dir);
  g_free (log->file);
  g_free (log->path);
  g_free (log);
}

/* Replace the log's descriptor with fd (-1: none). */
static void
swap_fd (VmsSinkLiveLog *log, int fd)
{
  g_autoptr (GMutexLocker) locker = g_mutex_locker_new (&log->fd_lock);

  if (log->fd >= 0)
    close (log->fd);
  log->fd = fd;
}

/* Point the log at the file its name holds now; records go after its
 * last whole one. */
static gboolean
reopen (VmsSinkLiveLog *log, GError **error)
{
  int fd = vms_sink_file_open (log->dir_fd, log->dir, log->file, O_RDWR, error);
  struct stat st;

  if (fd < 0)
    return FALSE;
  if (fstat (fd, &st) < 0)
    {
      int err = errno;

      close (fd);
      return fail (error, err, "fstat", log->path);
    }
  swap_fd (log, fd);
  log->end = st.st_size - st.st_size % RECORD_SIZE;
  return TRUE;
}

/* The log was detached by a compaction that could not open what it
 * renamed in: a live write tries again. */
static gboolean
attach (VmsSinkLiveLog *log, GError **error)
{
  return log->fd >= 0 || reopen (log, error);
}

/* TRUE when the name holds a file other than the log's descriptor: a
 * replace that failed after its rename (the directory's fsync) left
 * the new log there and the descriptor on a file no longer named. */
static gboolean
renamed_over (VmsSinkLiveLog *log)
{
  struct stat named, open;

  if (fstatat (log->dir_fd, log->file, &named, AT_SYMLINK_NOFOLLOW) < 0
      || fstat (log->fd, &open) < 0)
    return FALSE;
  return named.st_dev != open.st_dev || named.st_ino != open.st_ino;
}

static gboolean
add_record (guint64 offset, guint64 length, gpointer user_data)
{
  GArray *records = user_data;
  guint64 record[2] = { GUINT64_TO_LE (offset), GUINT64_TO_LE (length) };

  g_array_append_vals (records, record, 2);
  return TRUE;
}

/* Rewrite the log as the records of ranges' merged ranges (see the
 * argument at the top of the file). */
static gboolean
compact (VmsSinkLiveLog *log, VmsRangeSet *ranges, GError **error)
{
  g_autoptr (GArray) records = g_array_sized_new (
      FALSE, FALSE, sizeof (guint64), 2 * vms_range_set_count (ranges));
  gboolean replaced;

  vms_range_set_foreach (ranges, add_record, records);
  replaced
      = vms_sink_file_replace (log->dir_fd, log->dir, log->file, records->data,
                               records->len * sizeof (guint64), error);
  if ((replaced || renamed_over (log))
      && !reopen (log, replaced ? error : NULL))
    {
      /* Appends to the old descriptor would go to a file that a restart
       * never reads: refuse them until the new log opens. */
      swap_fd (log, -1);
      return FALSE;
    }
  /* After a failure too, so that a failing disk is tried again only when
   * the log has doubled, not on every live write. */
  log->compacted_end = log->end;
  return replaced;
}

gboolean
vms_sink_live_log_maybe_compact (VmsSinkLiveLog *log, VmsRangeSet *ranges,
                                 GError **error)
{
  if (log->fd < 0 || log->end < COMPACT_MIN_SIZE
      || log->end / COMPACT_GROWTH < log->compacted_end)
    return TRUE;
  return compact (log, ranges, error);
}

gboolean
vms_sink_live_log_append (VmsSinkLiveLog *log, guint64 offset, guint64 length,
                          GError **error)
{
  guint64 record[2] = { GUINT64_TO_LE (offset), GUINT64_TO_LE (length) };
  ssize_t put;

  if (!attach (log, error))
    return FALSE;
  do
    put = pwrite (log->fd, record, RECORD_SIZE, log->end);
  while (put < 0 && errno == EINTR);
  if (put < 0)
    return fail (error, errno, "write", log->path);
  if (put != RECORD_SIZE)
    return fail (error, ENOSPC, "write", log->path);
  log->end += RECORD_SIZE;
  return TRUE;
}

gboolean
vms_sink_live_log_sync (VmsSinkLiveLog *log, GError **error)
{
  g_autoptr (GMutexLocker) locker = g_mutex_locker_new (&log->fd_lock);

  /* Detached, the log's records are in a file it could not open: it
   * cannot make them durable. */
  if (log->fd < 0)
    return fail (error, EBADF, "fdatasync (not reopened since compaction)",
                 log->path);
  if (fdatasync (log->fd) < 0)
    return fail (error, errno, "fdatasync", log->path);
  return TRUE;
}

gboolean
vms_sink_live_log_reset (VmsSinkLiveLog *log, GError **error)
{
  if (!attach (log, error))
    return FALSE;
  if (ftruncate (log->fd, 0) < 0)
    return fail (error, errno, "truncate", log->path);
  log->end = 0;
  log->compacted_end = 0;
  return vms_sink_live_log_sync (log, error);
}

gboolean
vms_sink_live_log_remove (int dir_fd, const char *dir, const char *name,
                          GError **error)
{
  g_autofree char *file = file_name (name);
  g_autofree char *path = g_build_filename (dir, file, NULL);

  /* unlinkat removes a link itself, never what it points to. */
  if (unlinkat (dir_fd, file, 0) < 0 && errno != ENOENT)
    return fail (error, errno, "unlink", path);
  return vms_sink_file_remove_temps (dir_fd, dir, file, error);
}
