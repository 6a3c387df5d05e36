/* vmshift: the sink's export names (NAME, NAME@live, @probe, ...), read by
 * the sink and written by its clients, so both sides share one grammar.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define VMS_SINK_NAME_ERROR (vms_sink_name_error_quark ())
GQuark vms_sink_name_error_quark (void);

typedef enum
{
  VMS_SINK_NAME_ERROR_INVALID, /* export or replica name not acceptable */
} VmsSinkNameError;

/* Longest replica name; leaves room for suffixes within a file name. */
#define VMS_SINK_NAME_MAX_LENGTH 200

/* The probe export is this big so that a link test of any length fits. */
#define VMS_SINK_NAME_PROBE_SIZE (G_GUINT64_CONSTANT (1) << 40)

/* Bytes of one chunk hash in the @hashes export (XXH3-128). */
#define VMS_SINK_NAME_HASH_SIZE 16
/* Chunk sizes NAME@hashes=CHUNK accepts (powers of two): from the
 * smallest write a guest makes to what one hash may make the sink read. */
#define VMS_SINK_NAME_HASH_CHUNK_MIN 4096
#define VMS_SINK_NAME_HASH_CHUNK_MAX (64 * 1024 * 1024)

/* The export names the sink serves (documented in vmshift-sink(8)). */
typedef enum
{
  VMS_SINK_NAME_KIND_DATA,   /* NAME: the replica's bytes, read and write */
  VMS_SINK_NAME_KIND_CREATE, /* NAME@create=SIZE: create if missing, then
                                DATA */
  VMS_SINK_NAME_KIND_LIVE,   /* NAME@live: DATA whose writes win over DATA's */
  VMS_SINK_NAME_KIND_HASHES, /* NAME@hashes, NAME@hashes=CHUNK: read-only
                                chunk hashes, of the sink's chunk size or
                                of CHUNK bytes */
  VMS_SINK_NAME_KIND_COMMIT, /* NAME@commit: opening it marks NAME complete */
  VMS_SINK_NAME_KIND_PROBE,  /* @probe: discards writes, reads zeros */
  VMS_SINK_NAME_KIND_LIVE_RESET,   /* NAME@live-reset: opening it forgets the
                                      ranges @live wrote (a new mirror
                                      starts) */
  VMS_SINK_NAME_KIND_HANDOVER,     /* NAME@handover: a FLUSH on it makes NAME
                                      durable, then forgets the ranges @live
                                      wrote (the switchover, in one round
                                      trip on a connection opened before) */
  VMS_SINK_NAME_KIND_LIVE_NOFLUSH, /* NAME@live-noflush: @live without
                                      FLUSH, for a mirror made durable by
                                      @handover: QEMU's stop then does not
                                      wait on the network for it */
} VmsSinkNameKind;

/* An export name taken apart. */
typedef struct
{
  VmsSinkNameKind kind; /* which export */
  char *replica;        /* replica name; NULL for the probe */
  guint64 size;         /* @create=SIZE's size, @hashes=CHUNK's chunk; 0
                           when not given */
} VmsSinkName;

/* Parse an export name.  Every refusal says what is wrong with it. */
gboolean vms_sink_name_parse (const char *export_name, VmsSinkName *out,
                              GError **error);
void vms_sink_name_clear (VmsSinkName *name);

/* The kind (and the size of @create=SIZE or @hashes=CHUNK) that suffix,
 * what follows NAME@, asks for; for callers that still carry suffixes. */
gboolean vms_sink_name_parse_suffix (const char *suffix, VmsSinkNameKind *kind,
                                     guint64 *size, GError **error);

/* The export name of kind for replica (NULL for the probe) and size: for
 * VMS_SINK_NAME_KIND_CREATE the replica's size, for
 * VMS_SINK_NAME_KIND_HASHES the chunk (0: the sink's), ignored otherwise.
 * Parsing it gives them back.  Refuses what the sink would refuse.  Caller
 * frees. */
char *vms_sink_name_build (VmsSinkNameKind kind, const char *replica,
                           guint64 size, GError **error);

/* A replica name is 1 to VMS_SINK_NAME_MAX_LENGTH characters of
 * [A-Za-z0-9._+-], not starting with '.' or '-': no '/', no "..", no
 * control characters, nothing a shell or a path could misread. */
gboolean vms_sink_name_is_valid (const char *name, GError **error);

const char *vms_sink_name_kind_name (VmsSinkNameKind kind);

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (VmsSinkName, vms_sink_name_clear)

/* A replica export's description: "vmshift replica at PATH; BOOT" (BOOT
 * says which boot of the sink's host its unflushed writes live in).
 * PATH lets a client check that a QEMU on that host opens this very
 * replica.  Caller frees. */
char *vms_sink_name_describe (const char *path, const char *boot);

/* The PATH of such a description, or NULL (a sink from before PATH was
 * described, or another server).  Caller frees. */
char *vms_sink_name_description_path (const char *description);

G_END_DECLS
