/* vmshift: how well and how fast zstd compresses a sample of data, as
 * QEMU's multifd zstd compression would compress it.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* QEMU's multifd-zstd-level default, and its packet: 128 pages. */
#define VMS_ZSTD_PROBE_LEVEL 1
#define VMS_ZSTD_PROBE_PACKET (128 * 4096)

typedef struct
{
  guint64 input;  /* bytes compressed */
  guint64 output; /* bytes they became */
  double seconds; /* CPU time it took, on one thread */
} VmsZstdProbe;

/* Compress data (length bytes) packet by packet, as QEMU's multifd
 * threads do, adding to probe; FALSE with error when zstd fails. */
gboolean vms_zstd_probe_add (VmsZstdProbe *probe, const guint8 *data,
                             gsize length, GError **error);

/* output / input, 0 when nothing was compressed. */
double vms_zstd_probe_ratio (const VmsZstdProbe *probe);

/* Input bytes per second on one CPU, 0 when not measured. */
double vms_zstd_probe_rate (const VmsZstdProbe *probe);

G_END_DECLS
