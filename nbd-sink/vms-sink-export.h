/* vmshift sink: what an NBD export name asks for.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define VMS_SINK_ERROR (vms_sink_error_quark ())
GQuark vms_sink_error_quark (void);

typedef enum
{
  VMS_SINK_ERROR_BAD_NAME,      /* export or replica name not acceptable */
  VMS_SINK_ERROR_NOT_FOUND,     /* no such replica */
  VMS_SINK_ERROR_SIZE_MISMATCH, /* replica exists with another size */
  VMS_SINK_ERROR_IO,            /* a system call failed */
  VMS_SINK_ERROR_METADATA,      /* replica metadata unreadable or invalid */
} VmsSinkError;

/* Longest replica name; leaves room for suffixes within a file name. */
#define VMS_SINK_MAX_NAME 200

/* The probe export is this big so that a link test of any length fits. */
#define VMS_SINK_PROBE_SIZE (G_GUINT64_CONSTANT (1) << 40)

/* Bytes of one chunk hash in the @hashes export (XXH3-128). */
#define VMS_SINK_HASH_SIZE 16

/* The export names the sink serves (documented in vmshift-sink(8)). */
typedef enum
{
  VMS_SINK_EXPORT_DATA,   /* NAME: the replica's bytes, read and write */
  VMS_SINK_EXPORT_CREATE, /* NAME@create=SIZE: create if missing, then DATA */
  VMS_SINK_EXPORT_LIVE,   /* NAME@live: DATA whose writes win over DATA's */
  VMS_SINK_EXPORT_HASHES, /* NAME@hashes: read-only chunk hashes */
  VMS_SINK_EXPORT_COMMIT, /* NAME@commit: opening it marks NAME complete */
  VMS_SINK_EXPORT_PROBE,  /* @probe: discards writes, reads zeros */
  VMS_SINK_EXPORT_LIVE_RESET, /* NAME@live-reset: opening it forgets the
                                 ranges @live wrote (a new mirror starts) */
} VmsSinkExportKind;

typedef struct
{
  VmsSinkExportKind kind; /* which export */
  char *replica;          /* replica name; NULL for the probe */
  guint64 create_size;    /* size asked by @create=SIZE */
} VmsSinkExport;

/* Parse an export name.  Every refusal says what is wrong with it. */
gboolean vms_sink_export_parse (const char *export_name, VmsSinkExport *out,
                                GError **error);
void vms_sink_export_clear (VmsSinkExport *export_);

/* A replica name is 1 to VMS_SINK_MAX_NAME characters of [A-Za-z0-9._+-],
 * not starting with '.' or '-': no '/', no "..", no control characters,
 * nothing a shell or a path could misread. */
gboolean vms_sink_name_is_valid (const char *name, GError **error);

const char *vms_sink_export_kind_name (VmsSinkExportKind kind);

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (VmsSinkExport, vms_sink_export_clear)

G_END_DECLS
