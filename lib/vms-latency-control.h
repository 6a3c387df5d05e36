/* vmshift: the rate controller of replication backpressure.  From the
 * guest's disk latency (measured before the copy and now) it chooses the
 * background copy's bandwidth: lower while the guest's writes take longer
 * than their allowance, higher again once they are back near their level.
 * Pure: no clock, no I/O; the engine feeds it one sample a second
 * (tools/engine/vms-replication-backpressure.c).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* No cut goes below this (bytes/s): a copy held lower never ends. */
#define VMS_LATENCY_CONTROL_FLOOR (1024 * 1024)
/* A cut keeps this much of the copy's rate, a raise multiplies it by
 * VMS_LATENCY_CONTROL_RAISE_FACTOR: down fast, up carefully. */
#define VMS_LATENCY_CONTROL_CUT_FACTOR 0.6
#define VMS_LATENCY_CONTROL_RAISE_FACTOR 1.5
/* Samples in a row below baseline + allowance / 2 before a raise. */
#define VMS_LATENCY_CONTROL_CALM_SAMPLES 3

typedef enum
{
  VMS_LATENCY_CONTROL_HOLD,  /* the rate stays */
  VMS_LATENCY_CONTROL_CUT,   /* latency above the allowance: slower */
  VMS_LATENCY_CONTROL_RAISE, /* latency back near its level: faster */
} VmsLatencyControlStep;

typedef struct
{
  double baseline_us;  /* the guest's latency before the copy */
  double allowance_us; /* how much more it may take (--max-guest-latency) */
  guint64 ceiling;     /* the user's --max-bandwidth, 0: none */
  /* State: */
  guint64 rate;       /* the copy's limit now (bytes/s), 0: unlimited */
  guint64 uncut_rate; /* what the copy ran at before the first cut: a
                         raise beyond it lifts the limit (to ceiling) */
  guint calm;         /* calm samples in a row */
} VmsLatencyControl;

/* baseline_us and allowance_us as measured and asked; ceiling bytes/s or
 * 0.  The copy starts at ceiling (unlimited if 0). */
void vms_latency_control_init (VmsLatencyControl *control, double baseline_us,
                               double allowance_us, guint64 ceiling);

/* One sample: latency_us the guest's latency over the last interval (< 0:
 * too few writes to tell, which counts as calm: nothing to protect), and
 * copy_rate the bytes/s the copy reached over it (<= 0: unknown).  The
 * step taken; control->rate is the new limit (0: unlimited). */
VmsLatencyControlStep vms_latency_control_sample (VmsLatencyControl *control,
                                                  double latency_us,
                                                  double copy_rate);

G_END_DECLS
