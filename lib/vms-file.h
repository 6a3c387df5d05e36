/* vmshift: files that must survive a crash.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* fsync a directory, so that a file created or renamed in it is durable.
 * Errors are in G_FILE_ERROR. */
gboolean vms_file_sync_directory (const char *path, GError **error);

/* Replace path with contents atomically and durably: a temporary file is
 * written and fsynced, renamed over path, and the directory fsynced.  A
 * crash leaves the old contents or the new, never a mix, and TRUE means
 * the new contents survive power loss. */
gboolean vms_file_replace_durably (const char *path, const char *contents,
                                   int mode, GError **error);

/* Create path with contents, durably, only if it does not exist: the
 * contents are written to a temporary file first and linked to path, so
 * the file appears whole or not at all, and of two processes creating
 * the same path one gets G_FILE_ERROR_EXIST and has written nothing. */
gboolean vms_file_create_durably (const char *path, const char *contents,
                                  int mode, GError **error);

G_END_DECLS
