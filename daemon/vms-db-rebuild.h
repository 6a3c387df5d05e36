/* vmshiftd: the database filled from the state directory's files, the
 * truth: each job file, each estimate file, each plan ledger (the
 * migrations' predicted against measured figures).  At start, so that a
 * lost database comes back; and one job or one plan's migrations again
 * when an event says their files changed.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "vms-db.h"

G_BEGIN_DECLS

/* Every job, estimate and ledger in state_dir into db, rows replaced.
 * A file that cannot be read is said on stderr and skipped; FALSE only
 * when the database fails. */
gboolean vms_db_rebuild (VmsDb *db, const char *state_dir, GError **error);

/* The same, of the files modified at since_ns (ns since the epoch) or
 * later, and the jobs their ledgers name; what did not change keeps its
 * rows. */
gboolean vms_db_rebuild_changed (VmsDb *db, const char *state_dir,
                                 gint64 since_ns, GError **error);

/* Job id's row from its file, run by plan (NULL: none known; a row's
 * plan is then kept).  A job without a file is left alone. */
gboolean vms_db_rebuild_job (VmsDb *db, const char *state_dir, const char *id,
                             const char *plan, GError **error);

/* The migrations of vmshiftd's plan (STATE_DIR/plans/PLAN.plan) from
 * its ledger, and its VMs' jobs with their plan and downtime.  A plan or
 * ledger that cannot be read is said on stderr. */
gboolean vms_db_rebuild_plan (VmsDb *db, const char *state_dir,
                              const char *plan, GError **error);

G_END_DECLS
