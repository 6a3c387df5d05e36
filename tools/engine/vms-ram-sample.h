/* vmshift engine: a VM's RAM as QEMU would send it, from a sample: the
 * share of pages that are not zero, and how those compress.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "vms-qmp.h"

G_BEGIN_DECLS

typedef struct
{
  guint64 ram_size;  /* base memory, bytes */
  double nonzero;    /* share of pages that are not zero (1: not sampled) */
  double zstd_ratio; /* those compressed with zstd as QEMU's multifd would:
                        bytes out per byte in, 0: not measured */
  double zstd_rate;  /* ... bytes in per second on one CPU here */
} VmsRamSample;

/* Sample the RAM of the VM behind qmp in chunks at random below the PCI
 * hole, each read through scratch_path (a file QEMU writes and this
 * process reads, on the same host; removed after).  A compression that
 * fails leaves zstd_ratio 0 and warns. */
gboolean vms_ram_sample (VmsQmp *qmp, const char *scratch_path,
                         VmsRamSample *out, GError **error);

G_END_DECLS
