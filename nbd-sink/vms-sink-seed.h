/* vmshift sink: replicas made from a shipped seed (lib/vms-seed.h).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Called after each chunk with the chunks imported and the seed's
 * total. */
typedef void (*VmsSinkSeedProgress) (guint64 done, guint64 total,
                                     gpointer user_data);

/* Make the replicas of the seed at path in dir: every chunk's hash
 * checked, holes left sparse, data made durable, then each replica's
 * metadata (not complete; "seed": the job) and its data put in place.
 * A replica of the seed that exists already is refused, and a seed that
 * is damaged, cut short or not finished leaves no replica behind (the
 * error names the chunk).  *names gets the replicas made. */
gboolean vms_sink_seed_import (const char *dir, const char *path,
                               VmsSinkSeedProgress progress, gpointer user_data,
                               GStrv *names, GError **error);

G_END_DECLS
