/* vmshift qemu-filter: the disks of a running QEMU.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

#include "vms-qmp.h"

G_BEGIN_DECLS

typedef struct
{
  char *name;         /* stable disk name: the guest device id (e.g. "vd0"),
                         else the block backend name, else the node name */
  char *node_name;    /* format node attached to the device (e.g. "d0",
                         "#block155"): bitmaps and exports use it */
  char *format;       /* "qcow2", "raw", ... */
  char *filename;     /* image file as QEMU reports it */
  guint64 size;       /* virtual size in bytes */
  gboolean read_only; /* the device is read-only */
} VmsDisk;

void vms_disk_free (VmsDisk *disk);

/* Every block device with a medium, from query-block, in QEMU's order
 * (VmsDisk*, caller unrefs).  Devices without a medium (an empty CD-ROM)
 * are skipped; a -drive backend no device uses is included (its image must
 * reach the destination too), named by its backend name.  When a filter
 * with a user-given node name sits on the disk (e.g. the live mirror's
 * "mirror_top" node), node_name, format, filename and size are those of
 * the format node below it, found with x-debug-query-block-graph.  Fails
 * with a clear message if there is no disk. */
GPtrArray *vms_disk_discover (VmsQmp *qmp, GError **error);

/* The disk called name (as in VmsDisk.name, or its node name; names are
 * tried first), borrowed from disks: do not free it.  NULL with a
 * G_IO_ERROR_NOT_FOUND error listing the disks there are. */
VmsDisk *vms_disk_find (GPtrArray *disks, const char *name, GError **error);

/* The name a user knows a query-block entry by (VmsDisk.name), from its
 * qdev path, backend name and node name ("" when absent).  Caller
 * frees. */
char *vms_disk_name (const char *qdev, const char *device,
                     const char *node_name);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsDisk, vms_disk_free)

G_END_DECLS
