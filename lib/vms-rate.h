/* vmshift: a token bucket that holds a copy to a bandwidth limit.  Copies
 * running in several threads may share one.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _VmsRate VmsRate;

/* bytes_per_second 0 means no limit.  The bucket holds burst bytes: a
 * request larger than that still goes through once the bucket is full. */
VmsRate *vms_rate_new (guint64 bytes_per_second, guint64 burst);
void vms_rate_free (VmsRate *rate);

/* Take bytes now if the bucket has them (returns 0), else take nothing
 * and return how many microseconds to wait before asking again. */
gint64 vms_rate_try_take (VmsRate *rate, guint64 bytes, gint64 now_us);

/* Give back bytes taken for a request that turned out to cost less
 * (zeroes found where data was expected). */
void vms_rate_refund (VmsRate *rate, guint64 bytes);

guint64 vms_rate_get_limit (VmsRate *rate);

/* Change the limit (0: none) and the bucket's size while copies take
 * from it (replication backpressure).  What the bucket holds is kept, up
 * to the new size; a copy waiting on the old limit asks again when its
 * wait is over. */
void vms_rate_set_limit (VmsRate *rate, guint64 bytes_per_second,
                         guint64 burst);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsRate, vms_rate_free)

G_END_DECLS
