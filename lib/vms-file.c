/* vmshift: files that must survive a crash.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-file.h"

#include <errno.h>
#include <fcntl.h>
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
