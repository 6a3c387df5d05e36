/* vmshift sink: the error domain of the replica store (metadata, data,
 * hashes).  Export and replica names have theirs in lib/vms-sink-name.h.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define VMS_SINK_ERROR (vms_sink_error_quark ())
GQuark vms_sink_error_quark (void);

typedef enum
{
  VMS_SINK_ERROR_BAD_NAME,      /* a replica's configuration not acceptable
                                   (e.g. its --device) */
  VMS_SINK_ERROR_NOT_FOUND,     /* no such replica */
  VMS_SINK_ERROR_SIZE_MISMATCH, /* replica exists with another size */
  VMS_SINK_ERROR_IO,            /* a system call failed */
  VMS_SINK_ERROR_METADATA,      /* replica metadata unreadable or invalid */
  VMS_SINK_ERROR_ORPHANED,      /* metadata left without its data file */
  VMS_SINK_ERROR_NOT_REGULAR,   /* a link, FIFO, device... where a regular
                                   file (or directory) belongs: refused */
  VMS_SINK_ERROR_DELETED,       /* data file deleted while served */
} VmsSinkError;

G_END_DECLS
