/* vmshift engine: the mirror switchover's steps.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "vms-migration-backend.h"

G_BEGIN_DECLS

/* Start the write-blocking mirror of every disk of the job to its
 * replica's live export (TLS credentials made when the sink needs them). */
gboolean vms_migration_mirror_start (VmsMigration *migration, GError **error);

/* Every mirror still runs (TRUE at once in pause mode). */
gboolean vms_migration_mirror_check (VmsMigration *migration, GError **error);

/* Stop every mirror, one of an earlier attempt too (same names), and drop
 * the TLS credentials; the first error is returned, all are tried. */
gboolean vms_migration_mirror_stop (VmsMigration *migration, GError **error);

G_END_DECLS
