/* vmshift: one pass of a replication (the background copy or a dirty
 * round) over several disks of a VM at once, each disk's copy in a thread
 * of its own, sharing the VM's bandwidth cap and connection budget.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "vms-replicate.h"

G_BEGIN_DECLS

/* Disks copied at once, at most: each needs a connection per side, and the
 * VM's copies together open no more than one copy may (the sink serves a
 * copy with --connections 16 already). */
#define VMS_REPLICATE_MAX_PARALLEL_DISKS VMS_COPY_MAX_CONNECTIONS

/* One disk's part of a pass. */
typedef struct
{
  VmsJobDisk *disk;   /* disk to copy, from its watermark on; borrowed */
  const char *bitmap; /* copy what this bitmap marks; NULL: all of it */
  guint32 compare_chunk; /* send only chunks of this size whose hash
                            differs from the replica's; 0: all */
  char *phase;        /* "background", "round N", "final round N" */
  gboolean done;      /* set by the run: the pass completed and is durable */
} VmsReplicateCopy;

/* phase is taken. */
VmsReplicateCopy *vms_replicate_copy_new (VmsJobDisk *disk, const char *bitmap,
                                          char *phase);
void vms_replicate_copy_free (VmsReplicateCopy *copy);

/* Copy every disk of copies (VmsReplicateCopy*) to its replica at once.
 * Each disk checkpoints its own watermark into rep->job, which is saved
 * whole under one lock, so the file never holds a torn state; progress is
 * shown per disk from the calling thread.  The first failure stops the
 * other copies (each flushes and checkpoints what it has), and is the
 * error returned; a copy that completed before that is marked done all
 * the same, so that a resumed job does not copy it again. */
gboolean vms_replicate_copy_disks (VmsReplicate *rep, GPtrArray *copies,
                                   GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsReplicateCopy, vms_replicate_copy_free)

G_END_DECLS
