/* vmshift: removing what a job left in its VM (vmshift job drop).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

#include "vms-job.h"

G_BEGIN_DECLS

/* Whether bitmap is one of job id's (vmshift-ID-N). */
gboolean vms_job_drop_is_job_bitmap (const char *id, const char *bitmap);

/* Reach the job's source QEMU (its QMP address) and remove what the job
 * left there: QEMU's NBD server when it serves the job's socket (its
 * exports go with it), then every bitmap of the job on the job's disks,
 * persistent ones from the image too.  *removed counts the bitmaps.  A
 * VM that cannot be reached is a VMS_QMP_ERROR. */
gboolean vms_job_drop_from_vm (const VmsJob *job, guint *removed,
                               GError **error);

G_END_DECLS
