/* vmshift qemu-filter: dirty bitmaps on the source QEMU and their rounds.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

#include "vms-qmp.h"

G_BEGIN_DECLS

/* Bitmaps track at this granularity unless told otherwise: QEMU's default,
 * and the unit a dirty round copies. */
#define VMS_BITMAP_DEFAULT_GRANULARITY 65536

typedef struct
{
  char *name;            /* bitmap name */
  guint64 count;         /* dirty bytes */
  guint32 granularity;   /* bytes per bit */
  gboolean recording;    /* enabled */
  gboolean persistent;   /* stored in the image (qcow2) */
  gboolean busy;         /* in use (e.g. by an export): cannot be changed or
                            removed until that ends */
  gboolean inconsistent; /* a persistent bitmap QEMU did not save cleanly
                            (QEMU crashed): its bits cannot be trusted */
} VmsBitmapInfo;

void vms_bitmap_info_free (VmsBitmapInfo *info);

/* In every function node is a node name (VmsDisk.node_name), and errors
 * start with what was being done on which node and bitmap, followed by
 * QEMU's own message (VMS_QMP_ERROR, code of the QMP class). */

/* Add an enabled bitmap on node.  Persistent where the format can store it (qcow2); where it cannot
 * (raw: "Operation not supported", or a qcow2 v2 image) it falls back to a
 * bitmap that lives as long as the QEMU process, and says which in
 * *persistent_out (may be NULL).  Any other failure (name taken, no such
 * node) is not retried.  granularity is bytes per bit, a power of two
 * (0: VMS_BITMAP_DEFAULT_GRANULARITY); finer bits send less again after
 * small random writes, and cost QEMU more memory. */
gboolean vms_bitmap_add (VmsQmp *qmp, const char *node, const char *name,
                         guint32 granularity, gboolean *persistent_out,
                         GError **error);

/* Add an enabled bitmap that lives only in QEMU's memory, whatever the
 * format: for observations that must leave nothing in the image even if
 * QEMU or vmshift dies. */
gboolean vms_bitmap_add_temporary (VmsQmp *qmp, const char *node,
                                   const char *name, guint32 granularity,
                                   GError **error);

/* One dirty round switch, atomically (one QMP transaction): stop
 * recording in old_name and start a new enabled bitmap new_name, with the
 * given persistence (pass what vms_bitmap_add reported for old_name) and
 * old_name's granularity.  No guest write falls between the two; if the
 * transaction fails nothing changed.  When old_name is already disabled
 * and new_name already recording (a resumed job whose switch went
 * through), this is success without a command.  A missing old_name is a
 * G_IO_ERROR_NOT_FOUND error. */
gboolean vms_bitmap_switch (VmsQmp *qmp, const char *node, const char *old_name,
                            const char *new_name, gboolean persistent,
                            GError **error);

/* Remove the bitmap (a persistent one also from the image).  An absent
 * bitmap is an error ("Dirty bitmap 'B' not found"), and so is a busy one:
 * remove its export first (vms_export_remove). */
gboolean vms_bitmap_remove (VmsQmp *qmp, const char *node, const char *name,
                            GError **error);

/* State of one bitmap (caller frees), from query-named-block-nodes; NULL
 * with a G_IO_ERROR_NOT_FOUND error if the bitmap or the node is absent
 * (the message lists the bitmaps the node has). */
VmsBitmapInfo *vms_bitmap_query (VmsQmp *qmp, const char *node,
                                 const char *name, GError **error);

/* All bitmaps on node (VmsBitmapInfo*, caller unrefs; empty if none), in
 * QEMU's order, for cleanup and resume checks.  G_IO_ERROR_NOT_FOUND if
 * there is no such node. */
GPtrArray *vms_bitmap_list (VmsQmp *qmp, const char *node, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsBitmapInfo, vms_bitmap_info_free)

G_END_DECLS
