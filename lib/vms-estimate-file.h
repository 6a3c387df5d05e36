/* vmshift: the estimate file: what vmshift estimate predicted, read by a
 * migration that reports predicted against actual.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* What vmshift estimate predicted for one VM. */
typedef struct
{
  double total_pause_s, total_mirror_s;
  double downtime_pause_s, downtime_mirror_s;
  guint connections; /* best link configuration */
  guint32 request_size;
} VmsPrediction;

/* Read STATE_DIR/estimate-ID.json and find the VM with this UUID (or,
 * when it has none, this name; unnamed, this QMP address). */
gboolean vms_estimate_load_prediction (const char *state_dir, const char *id,
                                       const char *vm_uuid, const char *vm_name,
                                       const char *source, VmsPrediction *out,
                                       GError **error);

G_END_DECLS
