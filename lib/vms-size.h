/* vmshift: sizes as people type them ("64M", "1G", "512K", "4096").
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Parse text into *out (bytes).  NULL text leaves *out as it is.  A
 * refusal is G_OPTION_ERROR_BAD_VALUE naming option and the minimum. */
gboolean vms_size_parse (const char *option, const char *text, guint64 minimum,
                         guint64 *out, GError **error);

G_END_DECLS
