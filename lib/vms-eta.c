/* vmshift: the rate of a copy smoothed over its last seconds.
 *
 * An exponentially weighted average over time rather than over samples:
 * updates come at uneven intervals (a progress tick, a forwarded event),
 * and a sample's weight grows with the time it covers.  The average starts
 * at zero weight and is divided by the weight it has, so that in the first
 * seconds it is the plain average since the start instead of a value
 * pulled towards zero (or towards the first, noisy, sample).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-eta.h"

#include <math.h>

/* Seconds of history a prior rate stands for. */
#define PRIOR_SECONDS 2.0
/* No rate (so no ETA) before it rests on this much history, in seconds:
 * the first tenths of a second of a pass are connecting and mapping. */
#define MIN_HISTORY_SECONDS 1.0

static double
weight_of (double seconds)
{
  return 1 - exp (-seconds / VMS_ETA_TIME_CONSTANT_S);
}

void
vms_eta_start (VmsEta *eta, guint64 done, gint64 now_us, double prior_rate)
{
  eta->weight = prior_rate > 0 ? weight_of (PRIOR_SECONDS) : 0;
  eta->average = prior_rate > 0 ? prior_rate * eta->weight : 0;
  eta->last_done = done;
  eta->last_us = now_us;
}

void
vms_eta_sample (VmsEta *eta, guint64 done, gint64 now_us)
{
  gint64 elapsed_us = now_us - eta->last_us;
  double seconds, alpha, sample;

  if (done < eta->last_done)
    {
      /* Counted from a new origin: keep the rate, restart the count. */
      eta->last_done = done;
      eta->last_us = now_us;
      return;
    }
  if (elapsed_us < VMS_ETA_MIN_SAMPLE_US)
    return;
  seconds = (double)elapsed_us / G_USEC_PER_SEC;
  sample = (done - eta->last_done) / seconds;
  alpha = weight_of (seconds);
  eta->average += alpha * (sample - eta->average);
  eta->weight += alpha * (1 - eta->weight);
  eta->last_done = done;
  eta->last_us = now_us;
}

double
vms_eta_rate (const VmsEta *eta)
{
  if (eta->weight < weight_of (MIN_HISTORY_SECONDS))
    return 0;
  return eta->average / eta->weight;
}

double
vms_eta_seconds (const VmsEta *eta, guint64 left)
{
  double rate = vms_eta_rate (eta);

  if (left == 0)
    return 0;
  return rate > 0 ? left / rate : -1;
}
