/* vmshift: measure the link to a sink through its @probe export, which
 * discards what it is sent: throughput for a number of connections and a
 * request size, and the round-trip time.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Requests in flight per connection while probing. */
#define VMS_PROBE_QUEUE_DEPTH 16

typedef struct
{
  guint connections;    /* parallel NBD connections */
  guint32 request_size; /* bytes per write */
  double seconds;       /* how long it was measured */
  guint64 bytes;        /* acknowledged by the sink */
  double throughput;    /* bytes per second */
} VmsProbeResult;

/* Write to uri (an NBD URI of a discarding export) for seconds with
 * connections connections of VMS_PROBE_QUEUE_DEPTH requests each. */
gboolean vms_probe_throughput (const char *uri, guint connections,
                               guint32 request_size, double seconds,
                               VmsProbeResult *result, GError **error);

/* Median of samples one-block reads, each a round trip. */
gboolean vms_probe_rtt (const char *uri, guint samples, double *rtt_s,
                        GError **error);

G_END_DECLS
