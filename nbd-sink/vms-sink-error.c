/* vmshift sink: the error domain of the replica store.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-sink-error.h"

G_DEFINE_QUARK (vms-sink-error-quark, vms_sink_error)
