/* vmshift sink: files in the replica directory, opened without following
 * a symbolic link or waiting on a FIFO.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-sink-file.h"
#include "vms-sink-error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Temporary names tried by vms_sink_file_replace before giving up: each
 * is random, so a clash means someone is filling the directory. */
#define TEMP_ATTEMPTS 16
/* Hex digits of the random part of a temporary name (TEMP_FORMAT). */
#define TEMP_DIGITS 8
/* A temporary file for name: a leading '.' keeps it out of every listing
 * of names. */
#define TEMP_FORMAT ".%s.%08x"

const char *
vms_sink_file_kind (mode_t mode)
{
  switch (mode & S_IFMT)
    {
    case S_IFREG:
      return "a regular file";
    case S_IFDIR:
      return "a directory";
    case S_IFLNK:
      return "a symbolic link";
    case S_IFIFO:
      return "a FIFO";
    case S_IFSOCK:
      return "a socket";
    case S_IFCHR:
      return "a character device";
    case S_IFBLK:
      return "a block device";
    default:
      return "a file of unknown type";
    }
}

static void
refuse (GError **error, const char *dir, const char *name, mode_t mode,
        const char *expected)
{
  g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_NOT_REGULAR,
               "%s/%s is %s, not %s: refused%s", dir, name,
               vms_sink_file_kind (mode), expected,
               S_ISLNK (mode) ? " (the sink never follows links in its "
                                "directory)"
                              : "");
}

static int
fail_errno (GError **error, int err, const char *what, const char *dir,
            const char *name)
{
  g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (err),
               "%s %s%s%s: %s", what, dir, name ? "/" : "", name ? name : "",
               g_strerror (err));
  return -1;
}

/* After an open of name failed with err: refuse it by what it is, if it
 * is not what was expected (it may have been swapped since the first
 * look), or report err. */
static int
open_failed (GError **error, int err, int dir_fd, const char *dir,
             const char *name, mode_t expected_type, const char *expected)
{
  struct stat st;

  if (err != ENOENT && fstatat (dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0
      && (st.st_mode & S_IFMT) != expected_type)
    {
      refuse (error, dir, name, st.st_mode, expected);
      return -1;
    }
  return fail_errno (error, err, "open", dir, name);
}

int
vms_sink_file_open_dir (const char *dir, GError **error)
{
  int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  return fd >= 0 ? fd : fail_errno (error, errno, "open", dir, NULL);
}

int
vms_sink_file_open_subdir (int dir_fd, const char *dir, const char *name,
                           gboolean create, GError **error)
{
  int fd;

  if (create && mkdirat (dir_fd, name, 0700) < 0 && errno != EEXIST)
    return fail_errno (error, errno, "mkdir", dir, name);
  fd = openat (dir_fd, name,
               O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return open_failed (error, errno, dir_fd, dir, name, S_IFDIR,
                        "a directory");
  return fd;
}

/* Make fd, opened with O_NONBLOCK so that a FIFO could not hold up the
 * open, blocking again for the reads and writes that follow. */
static gboolean
set_blocking (int fd)
{
  int flags = fcntl (fd, F_GETFL);

  return flags >= 0 && fcntl (fd, F_SETFL, flags & ~O_NONBLOCK) == 0;
}

int
vms_sink_file_open (int dir_fd, const char *dir, const char *name, int flags,
                    GError **error)
{
  struct stat st;
  int fd;

  /* A first look, so that a FIFO or device node is not even opened
   * (opening some devices acts on them); the check on the descriptor
   * below is the one that counts. */
  if (fstatat (dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
    {
      if (!S_ISREG (st.st_mode))
        {
          refuse (error, dir, name, st.st_mode, "a regular file");
          return -1;
        }
    }
  else if (errno != ENOENT || !(flags & O_CREAT))
    return fail_errno (error, errno, "open", dir, name);

  fd = openat (dir_fd, name,
               flags | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0600);
  if (fd < 0)
    return open_failed (error, errno, dir_fd, dir, name, S_IFREG,
                        "a regular file");
  if (fstat (fd, &st) < 0 || !set_blocking (fd))
    {
      int saved = errno;

      close (fd);
      return fail_errno (error, saved, "fstat", dir, name);
    }
  if (!S_ISREG (st.st_mode))
    {
      close (fd);
      refuse (error, dir, name, st.st_mode, "a regular file");
      return -1;
    }
  return fd;
}

char *
vms_sink_file_read (int dir_fd, const char *dir, const char *name,
                    gsize max_size, gsize *length, GError **error)
{
  int fd = vms_sink_file_open (dir_fd, dir, name, O_RDONLY, error);
  g_autofree char *buffer = NULL;
  gsize got = 0;

  if (fd < 0)
    return NULL;
  /* One byte more than allowed tells a file that is too big. */
  buffer = g_malloc (max_size + 2);
  while (got <= max_size)
    {
      ssize_t n = read (fd, buffer + got, max_size + 1 - got);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          int saved = errno;

          close (fd);
          fail_errno (error, saved, "read", dir, name);
          return NULL;
        }
      if (n == 0)
        break;
      got += n;
    }
  close (fd);
  if (got > max_size)
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
                   "%s/%s holds more than %" G_GSIZE_FORMAT " bytes", dir, name,
                   max_size);
      return NULL;
    }
  buffer[got] = '\0';
  *length = got;
  return g_steal_pointer (&buffer);
}

/* A new temporary file beside name in dir_fd; *temp gets its name. */
static int
open_temp (int dir_fd, const char *dir, const char *name, char **temp,
           GError **error)
{
  for (int attempt = 0; attempt < TEMP_ATTEMPTS; attempt++)
    {
      int fd;

      g_free (*temp);
      *temp = g_strdup_printf (TEMP_FORMAT, name, g_random_int ());
      fd = openat (dir_fd, *temp,
                   O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (fd >= 0)
        return fd;
      if (errno != EEXIST)
        return fail_errno (error, errno, "create", dir, *temp);
    }
  return fail_errno (error, EEXIST, "create", dir, *temp);
}

static gboolean
write_all (int fd, const char *contents, gsize length)
{
  while (length > 0)
    {
      ssize_t n = write (fd, contents, length);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return FALSE;
      contents += n;
      length -= n;
    }
  return TRUE;
}

gboolean
vms_sink_file_replace (int dir_fd, const char *dir, const char *name,
                       const char *contents, gsize length, GError **error)
{
  g_autofree char *temp = NULL;
  int fd = open_temp (dir_fd, dir, name, &temp, error);
  const char *what = NULL;
  int err = 0;

  if (fd < 0)
    return FALSE;
  if (!write_all (fd, contents, length))
    what = "write";
  else if (fsync (fd) < 0)
    what = "fsync";
  err = what ? errno : 0;
  if (close (fd) < 0 && !what)
    {
      what = "close";
      err = errno;
    }
  if (!what && renameat (dir_fd, temp, dir_fd, name) < 0)
    {
      what = "rename";
      err = errno;
    }
  if (what)
    {
      unlinkat (dir_fd, temp, 0);
      fail_errno (error, err, what, dir, temp);
      return FALSE;
    }
  if (fsync (dir_fd) < 0)
    {
      fail_errno (error, errno, "fsync", dir, NULL);
      return FALSE;
    }
  return TRUE;
}

/* Whether entry is a name open_temp could have made for name. */
static gboolean
is_temp_of (const char *entry, const char *name)
{
  gsize length = strlen (name);

  if (entry[0] != '.' || strncmp (entry + 1, name, length) != 0
      || entry[length + 1] != '.')
    return FALSE;
  entry += length + 2;
  for (int i = 0; i < TEMP_DIGITS; i++)
    if (!g_ascii_isxdigit (entry[i]))
      return FALSE;
  return entry[TEMP_DIGITS] == '\0';
}

gboolean
vms_sink_file_remove_temps (int dir_fd, const char *dir, const char *name,
                            GError **error)
{
  /* Its own descriptor: closedir closes it, and readdir moves its
   * offset. */
  int fd = openat (dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *handle = fd >= 0 ? fdopendir (fd) : NULL;
  struct dirent *entry;
  int err = 0;

  if (!handle)
    {
      err = errno;
      if (fd >= 0)
        close (fd);
      fail_errno (error, err, "open", dir, NULL);
      return FALSE;
    }
  errno = 0;
  while (!err && (entry = readdir (handle)))
    {
      /* unlinkat removes a link itself; a directory of that name is not
       * one of ours, and stays. */
      if (is_temp_of (entry->d_name, name)
          && unlinkat (dir_fd, entry->d_name, 0) < 0 && errno != ENOENT
          && errno != EISDIR)
        {
          err = errno;
          fail_errno (error, err, "unlink", dir, entry->d_name);
        }
      errno = 0;
    }
  if (!err && errno)
    {
      err = errno;
      fail_errno (error, err, "read", dir, NULL);
    }
  closedir (handle);
  return err == 0;
}
