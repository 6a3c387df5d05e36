/* vmshift: files that must survive a crash.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

gboolean
vms_file_sync_directory (const char *path, GError **error)
{
  int fd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int saved;

  if (fd >= 0 && fsync (fd) == 0)
    {
      close (fd);
      return TRUE;
    }
  saved = errno;
  if (fd >= 0)
    close (fd);
  g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved),
               "fsync %s: %s", path, g_strerror (saved));
  return FALSE;
}

gboolean
vms_file_replace_durably (const char *path, const char *contents, int mode,
                          GError **error)
{
  g_autofree char *dir = g_path_get_dirname (path);

  /* CONSISTENT writes a temporary file and renames it; DURABLE fsyncs the
   * file first.  The rename itself is durable once the directory is. */
  return g_file_set_contents_full (path, contents, -1,
                                   G_FILE_SET_CONTENTS_CONSISTENT
                                       | G_FILE_SET_CONTENTS_DURABLE,
                                   mode, error)
         && vms_file_sync_directory (dir, error);
}

/* Write contents to a new temporary file beside path and fsync it; its
 * name in *temp (caller unlinks and frees). */
static gboolean
write_temporary (const char *path, const char *contents, int mode, char **temp,
                 GError **error)
{
  g_autofree char *name = g_strconcat (path, ".XXXXXX", NULL);
  gsize length = strlen (contents);
  int fd = g_mkstemp_full (name, O_WRONLY | O_CLOEXEC, mode);
  int saved = 0;

  if (fd < 0)
    {
      saved = errno;
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved),
                   "create %s: %s", name, g_strerror (saved));
      return FALSE;
    }
  *temp = g_steal_pointer (&name);
  for (gsize done = 0; done < length && !saved;)
    {
      ssize_t n = write (fd, contents + done, length - done);

      if (n < 0 && errno != EINTR)
        saved = errno;
      else if (n > 0)
        done += n;
    }
  if (!saved && fsync (fd) < 0)
    saved = errno;
  if (close (fd) < 0 && !saved)
    saved = errno;
  if (saved)
    {
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved),
                   "write %s: %s", *temp, g_strerror (saved));
      return FALSE;
    }
  return TRUE;
}

gboolean
vms_file_create_durably (const char *path, const char *contents, int mode,
                         GError **error)
{
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *temp = NULL;
  gboolean linked;
  int saved;

  if (!write_temporary (path, contents, mode, &temp, error))
    {
      if (temp)
        unlink (temp);
      return FALSE;
    }
  /* link(2), unlike rename(2), never replaces an existing file. */
  linked = link (temp, path) == 0;
  saved = errno;
  unlink (temp);
  if (!linked)
    {
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved),
                   "create %s: %s", path, g_strerror (saved));
      return FALSE;
    }
  return vms_file_sync_directory (dir, error);
}
