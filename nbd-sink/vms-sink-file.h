/* vmshift sink: files in the replica directory, opened without following
 * a symbolic link or waiting on a FIFO.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Whoever can write to the replica directory can plant links, FIFOs and
 * device nodes in it.  The sink, often root, must neither write through a
 * link to a file outside the directory, nor hang on a FIFO while every
 * other connection waits behind it.  So names in the directory are opened
 * relative to a descriptor of it with O_NOFOLLOW | O_NONBLOCK, and only
 * regular files (directories where a directory is expected) are accepted;
 * anything else is refused with VMS_SINK_ERROR_NOT_REGULAR and a message
 * naming the file and what it is.  Other failures are G_FILE_ERROR's
 * (G_FILE_ERROR_NOENT when the name does not exist).  Every descriptor
 * returned is close-on-exec and blocking.
 */
#pragma once

#include <glib.h>
#include <sys/stat.h>

G_BEGIN_DECLS

/* What mode says a file is, for messages: "a symbolic link", "a FIFO". */
const char *vms_sink_file_kind (mode_t mode);

/* Open the directory dir itself: a path the operator gave, so links in it
 * are followed. */
int vms_sink_file_open_dir (const char *dir, GError **error);

/* Open the subdirectory name of dir_fd (whose path, for messages, is
 * dir), making it (mode 0700) first if create. */
int vms_sink_file_open_subdir (int dir_fd, const char *dir, const char *name,
                               gboolean create, GError **error);

/* Open the regular file name of dir_fd with flags: O_RDONLY, O_WRONLY or
 * O_RDWR, with O_CREAT | O_EXCL to make a new one (mode 0600). */
int vms_sink_file_open (int dir_fd, const char *dir, const char *name,
                        int flags, GError **error);

/* The contents of the regular file name of dir_fd, which must hold at
 * most max_size bytes; *length gets their length.  Caller frees. */
char *vms_sink_file_read (int dir_fd, const char *dir, const char *name,
                          gsize max_size, gsize *length, GError **error);

/* Replace name in dir_fd with contents atomically and durably: a
 * temporary file in dir_fd is written and fsynced, renamed over name
 * (which replaces a link there rather than following it), and the
 * directory fsynced. */
gboolean vms_sink_file_replace (int dir_fd, const char *dir, const char *name,
                                const char *contents, gsize length,
                                GError **error);

/* Remove the temporary files that vms_sink_file_replace of name in
 * dir_fd left when its process died between creating and renaming
 * them.  Only for a name no other process may be replacing now. */
gboolean vms_sink_file_remove_temps (int dir_fd, const char *dir,
                                     const char *name, GError **error);

G_END_DECLS
