/* vmshift sink: what the sink knows about a replica besides its bytes.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Metadata lives in DIR/.vmshift/NAME.json.  Replica names never start
 * with '.', so the directory cannot clash with a replica. */
#define VMS_SINK_META_DIR ".vmshift"

typedef struct
{
  char *name;          /* replica name */
  guint64 size;        /* bytes the replica exports */
  gboolean complete;   /* committed by the source and not written since */
  gint64 created;      /* creation time, seconds since the epoch */
  gint64 committed;    /* last commit, seconds since the epoch; 0 if never */
  char *device;        /* block device holding the data, or NULL for DIR/NAME */
  char *seed;          /* the job whose seed the data was imported from
                          (vmshift-sink seed import), or NULL */
} VmsSinkMeta;

VmsSinkMeta *vms_sink_meta_new (const char *name, guint64 size,
                                const char *device);
void vms_sink_meta_free (VmsSinkMeta *meta);

/* Path of the replica's data: the device, or DIR/NAME.  Caller frees. */
char *vms_sink_meta_data_path (const char *dir, const VmsSinkMeta *meta);

/* Load NAME's metadata; NULL with VMS_SINK_ERROR_NOT_FOUND if none. */
VmsSinkMeta *vms_sink_meta_load (const char *dir, const char *name,
                                 GError **error);

/* Write durably and atomically: a crash leaves the old or the new file,
 * never a torn one, and a returned TRUE survives power loss. */
gboolean vms_sink_meta_save (const char *dir, const VmsSinkMeta *meta,
                             GError **error);

/* Delete NAME's metadata durably.  *existed says whether there was any;
 * none is not an error. */
gboolean vms_sink_meta_remove (const char *dir, const char *name,
                               gboolean *existed, GError **error);

/* Names of all replicas with metadata in dir, sorted.  Caller frees. */
GStrv vms_sink_meta_list (const char *dir, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsSinkMeta, vms_sink_meta_free)

G_END_DECLS
