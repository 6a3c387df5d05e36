/* vmshift: the rate of a copy smoothed over its last seconds, and the time
 * left at that rate.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Memory of the smoothed rate, in seconds: long enough that the bursts of
 * completions a queue of requests gives (and a checkpoint's FLUSH) do not
 * move the ETA, short enough to follow a link that slows down. */
#define VMS_ETA_TIME_CONSTANT_S 5.0
/* A sample covers at least this long: shorter ones are mostly noise. */
#define VMS_ETA_MIN_SAMPLE_US (100 * 1000)

typedef struct
{
  double average;    /* weighted sum of the rates seen (bytes/s) */
  double weight;     /* the sum of their weights, 0 to 1 */
  guint64 last_done; /* done at the end of the last sample */
  gint64 last_us;    /* when the last sample ended */
} VmsEta;

/* Start measuring at done bytes.  prior_rate (bytes/s, or 0 for none),
 * e.g. the previous pass's over the same link, stands for a couple of
 * seconds of history, so that a new pass has an ETA at once. */
void vms_eta_start (VmsEta *eta, guint64 done, gint64 now_us,
                    double prior_rate);

/* done bytes handled by now_us (monotonic time). */
void vms_eta_sample (VmsEta *eta, guint64 done, gint64 now_us);

/* The smoothed rate in bytes per second, 0 while too little is known. */
double vms_eta_rate (const VmsEta *eta);

/* Seconds to handle left bytes at the smoothed rate, -1 when unknown. */
double vms_eta_seconds (const VmsEta *eta, guint64 left);

G_END_DECLS
