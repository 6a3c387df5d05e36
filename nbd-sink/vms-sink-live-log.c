/* vmshift sink: the ranges a replica's @live export wrote, on disk.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-sink-live-log.h"
#include "vms-sink-error.h"
#include "vms-sink-file.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

/* One record: offset and length, little-endian. */
#define RECORD_SIZE 16
/* Records read per pread when the log is loaded. */
#define READ_RECORDS 4096

struct _VmsSinkLiveLog
{
  int fd;      /* DIR/.vmshift/NAME.live, read-write */
  char *path;  /* its path, for messages */
  guint64 end; /* where the next record goes */
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
  g_autofree char *file = file_name (name);
  g_autoptr (VmsSinkLiveLog) log = g_new0 (VmsSinkLiveLog, 1);

  log->path = g_build_filename (dir, file, NULL);
  *ranges = NULL;
  log->fd = open_or_make (dir_fd, dir, file, error);
  if (log->fd < 0 || !load (log, ranges, error))
    {
      g_clear_pointer (ranges, vms_range_set_free);
      return NULL;
    }
  return g_steal_pointer (&log);
}

void
vms_sink_live_log_free (VmsSinkLiveLog *log)
{
  if (!log)
    return;
  if (log->fd >= 0)
    close (log->fd);
  g_free (log->path);
  g_free (log);
}

gboolean
vms_sink_live_log_append (VmsSinkLiveLog *log, guint64 offset, guint64 length,
                          GError **error)
{
  guint64 record[2] = { GUINT64_TO_LE (offset), GUINT64_TO_LE (length) };
  ssize_t put;

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
  if (fdatasync (log->fd) < 0)
    return fail (error, errno, "fdatasync", log->path);
  return TRUE;
}

gboolean
vms_sink_live_log_reset (VmsSinkLiveLog *log, GError **error)
{
  if (ftruncate (log->fd, 0) < 0)
    return fail (error, errno, "truncate", log->path);
  log->end = 0;
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
  return TRUE;
}
