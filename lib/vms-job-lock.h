/* vmshift: one process at a time on a job (sync, migrate, a rollback).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct VmsJobLock VmsJobLock;

/* Take STATE_DIR/ID.lock (flock, exclusive, not waiting) and write our
 * pid in it.  It is held until vms_job_lock_release() or the process
 * ends (a kill -9 too: the kernel drops flocks with the file).  A job
 * that another process holds is VMS_JOB_ERROR_LOCKED, naming its pid. */
VmsJobLock *vms_job_lock_take (const char *state_dir, const char *id,
                               GError **error);

/* Release the lock (NULL: nothing).  The lock file stays: removing it
 * would let a waiting process and a new one lock two different files. */
void vms_job_lock_release (VmsJobLock *lock);

/* The pid written by the process holding the lock of job ID; 0 when the
 * job is not locked (a lock file left by a dead process is not a lock);
 * -1 when it is locked but the holder has not written its pid yet. */
gint64 vms_job_lock_holder (const char *state_dir, const char *id);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsJobLock, vms_job_lock_release)

G_END_DECLS
