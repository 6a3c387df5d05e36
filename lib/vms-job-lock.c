/* vmshift: one process at a time on a job (sync, migrate, a rollback).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-job-lock.h"
#include "vms-job.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <unistd.h>

/* Longer than vms_job_lock_holder's probe ever holds its lock. */
#define PROBE_RETRY_US (20 * 1000)

struct VmsJobLock
{
  int fd; /* the open lock file; closing it releases the flock */
};

static char *
lock_path (const char *state_dir, const char *id)
{
  g_autofree char *file = g_strconcat (id, ".lock", NULL);

  return g_build_filename (state_dir, file, NULL);
}

/* The pid a holder wrote, 0 if none can be read. */
static gint64
read_pid (int fd)
{
  char text[32] = { 0 };
  ssize_t length = pread (fd, text, sizeof text - 1, 0);

  return length > 0 ? g_ascii_strtoll (text, NULL, 10) : 0;
}

static gboolean
write_pid (int fd, GError **error)
{
  char text[32];
  int length = g_snprintf (text, sizeof text, "%d\n", (int)getpid ());

  if (ftruncate (fd, 0) < 0 || pwrite (fd, text, length, 0) != length)
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_IO,
                   "cannot write the job's lock file: %s", g_strerror (errno));
      return FALSE;
    }
  return TRUE;
}

VmsJobLock *
vms_job_lock_take (const char *state_dir, const char *id, GError **error)
{
  g_autofree char *path = lock_path (state_dir, id);
  VmsJobLock *lock;
  int fd;

  if (g_mkdir_with_parents (state_dir, 0700) < 0
      || (fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600))
             < 0)
    {
      int saved = errno;

      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_IO,
                   "cannot open lock file %s: %s", path, g_strerror (saved));
      return NULL;
    }
  /* vms_job_lock_holder's probe holds a shared lock for an instant. */
  if (flock (fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK)
    g_usleep (PROBE_RETRY_US);
  if (flock (fd, LOCK_EX | LOCK_NB) < 0)
    {
      int saved = errno;
      gint64 holder = read_pid (fd);

      close (fd);
      if (saved == EWOULDBLOCK)
        g_set_error (
            error, VMS_JOB_ERROR, VMS_JOB_ERROR_LOCKED,
            "job %s is in use by another vmshift (pid %" G_GINT64_FORMAT
            "): wait for it to end, or stop it (Ctrl-C or SIGTERM; "
            "'vmshift abort %s' for a migration)",
            id, holder, id);
      else
        g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_IO,
                     "cannot lock %s: %s", path, g_strerror (saved));
      return NULL;
    }
  if (!write_pid (fd, error))
    {
      close (fd);
      return NULL;
    }
  lock = g_new0 (VmsJobLock, 1);
  lock->fd = fd;
  return lock;
}

void
vms_job_lock_release (VmsJobLock *lock)
{
  if (!lock)
    return;
  /* Emptied first, so a reader never takes a stale pid for a holder. */
  if (ftruncate (lock->fd, 0) < 0)
    g_debug ("cannot empty a job's lock file: %s", g_strerror (errno));
  close (lock->fd);
  g_free (lock);
}

gint64
vms_job_lock_holder (const char *state_dir, const char *id)
{
  g_autofree char *path = lock_path (state_dir, id);
  int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  gint64 holder = 0;

  if (fd < 0)
    return 0;
  /* A shared lock we get means no one holds the exclusive one. */
  if (flock (fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK)
    {
      holder = read_pid (fd);
      /* Locked, but its pid not written yet (or garbage): never a pid
       * for kill(2) to take as "every process". */
      if (holder <= 1)
        holder = -1;
    }
  close (fd);
  return holder;
}
