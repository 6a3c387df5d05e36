/* vmshift: starting the kernel's writeback of a QEMU's images.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The page cache is per file, not per descriptor: dirty pages QEMU wrote
 * through its own descriptor are written back through ours.  QEMU's stop
 * before the switchover flushes its images (bdrv_flush_all), and with
 * cache.direct=off that is seconds of a writing guest's data unless the
 * writeback started earlier.
 *
 * An fdatasync, not a sync_file_range: starting the writeback left the
 * stop waiting for writes still in the disk's queue and for the journal,
 * 4-18 ms (median 8) for a guest held to 2.7 MiB/s; after our fdatasync
 * 20 ms earlier, QEMU's took 1.5-2.8 ms (30 stops each, this host's
 * ext4).  Since Linux 4.13 a writeback error is reported once to each
 * open file, so ours does not hide it from QEMU's.
 */
#include "vms-writeback.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

struct _VmsWriteback
{
  GArray *fds;       /* int */
  GThread *thread;   /* vms_writeback_start_thread's, or NULL */
  GMutex lock;       /* for stop */
  GCond wake;        /* stop was set */
  gboolean stop;     /* the thread ends */
  guint interval_ms; /* between two starts */
};

VmsWriteback *
vms_writeback_new (void)
{
  VmsWriteback *writeback = g_new0 (VmsWriteback, 1);

  writeback->fds = g_array_new (FALSE, FALSE, sizeof (int));
  g_mutex_init (&writeback->lock);
  g_cond_init (&writeback->wake);
  return writeback;
}

void
vms_writeback_free (VmsWriteback *writeback)
{
  if (!writeback)
    return;
  if (writeback->thread)
    {
      g_mutex_lock (&writeback->lock);
      writeback->stop = TRUE;
      g_cond_signal (&writeback->wake);
      g_mutex_unlock (&writeback->lock);
      g_thread_join (writeback->thread);
    }
  g_mutex_clear (&writeback->lock);
  g_cond_clear (&writeback->wake);
  for (guint i = 0; i < writeback->fds->len; i++)
    close (g_array_index (writeback->fds, int, i));
  g_array_free (writeback->fds, TRUE);
  g_free (writeback);
}

gboolean
vms_writeback_add (VmsWriteback *writeback, const char *path)
{
  struct stat st;
  int fd;

  if (!path || !g_path_is_absolute (path))
    return FALSE;
  /* Read-only and without locks: QEMU's image locks are not ours to
   * take, and a FIFO or socket must not block the open. */
  fd = open (path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0)
    return FALSE;
  if (fstat (fd, &st) < 0 || !(S_ISREG (st.st_mode) || S_ISBLK (st.st_mode)))
    {
      close (fd);
      return FALSE;
    }
  g_array_append_val (writeback->fds, fd);
  return TRUE;
}

static void
write_back (VmsWriteback *writeback)
{
  /* An error is QEMU's to report (its own flush sees it too); ours would
   * only repeat it every interval. */
  for (guint i = 0; writeback && i < writeback->fds->len; i++)
    (void)fdatasync (g_array_index (writeback->fds, int, i));
}

static gpointer
writeback_thread (gpointer data)
{
  VmsWriteback *writeback = data;

  g_mutex_lock (&writeback->lock);
  while (!writeback->stop)
    {
      gint64 until = g_get_monotonic_time ()
                     + writeback->interval_ms * (gint64)G_TIME_SPAN_MILLISECOND;

      g_mutex_unlock (&writeback->lock);
      write_back (writeback);
      g_mutex_lock (&writeback->lock);
      while (!writeback->stop
             && g_cond_wait_until (&writeback->wake, &writeback->lock, until))
        ;
    }
  g_mutex_unlock (&writeback->lock);
  return NULL;
}

void
vms_writeback_start_thread (VmsWriteback *writeback, guint interval_ms)
{
  g_return_if_fail (!writeback->thread);
  /* Nothing watched: no thread either. */
  if (writeback->fds->len == 0)
    return;
  writeback->interval_ms = MAX (interval_ms, 1);
  writeback->thread
      = g_thread_new ("vms-writeback", writeback_thread, writeback);
}
