/* vmshift: the rate controller of replication backpressure.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-latency-control.h"

void
vms_latency_control_init (VmsLatencyControl *control, double baseline_us,
                          double allowance_us, guint64 ceiling)
{
  *control = (VmsLatencyControl){
    .baseline_us = baseline_us,
    .allowance_us = allowance_us,
    .ceiling = ceiling,
    .rate = ceiling,
  };
}

/* The copy is as fast as it may be: no limit of ours on it. */
static gboolean
at_full_speed (const VmsLatencyControl *control)
{
  return control->rate == control->ceiling;
}

static VmsLatencyControlStep
cut_rate (VmsLatencyControl *control, double copy_rate)
{
  /* From what the copy reached when that is below its limit: a cut of a
   * limit it does not reach would not slow it. */
  double base = control->rate ? (double)control->rate : copy_rate;
  guint64 next;

  if (copy_rate > 0 && copy_rate < base)
    base = copy_rate;
  if (base <= 0 || control->rate == VMS_LATENCY_CONTROL_FLOOR)
    return VMS_LATENCY_CONTROL_HOLD;
  next = MAX ((guint64)(base * VMS_LATENCY_CONTROL_CUT_FACTOR),
              VMS_LATENCY_CONTROL_FLOOR);
  if (next >= base)
    return VMS_LATENCY_CONTROL_HOLD;
  if (at_full_speed (control))
    control->uncut_rate = (guint64)base;
  control->rate = next;
  return VMS_LATENCY_CONTROL_CUT;
}

static VmsLatencyControlStep
raise_rate (VmsLatencyControl *control)
{
  guint64 next = (guint64)(control->rate * VMS_LATENCY_CONTROL_RAISE_FACTOR);

  if (at_full_speed (control)
      || ++control->calm < VMS_LATENCY_CONTROL_CALM_SAMPLES)
    return VMS_LATENCY_CONTROL_HOLD;
  control->calm = 0;
  /* Back where it ran before the first cut: the limit goes, the user's
   * own (if any) stays. */
  if ((control->ceiling && next >= control->ceiling)
      || (control->uncut_rate && next >= control->uncut_rate))
    next = control->ceiling;
  control->rate = next;
  return VMS_LATENCY_CONTROL_RAISE;
}

VmsLatencyControlStep
vms_latency_control_sample (VmsLatencyControl *control, double latency_us,
                            double copy_rate)
{
  if (latency_us > control->baseline_us + control->allowance_us)
    {
      control->calm = 0;
      return cut_rate (control, copy_rate);
    }
  if (latency_us < control->baseline_us + control->allowance_us / 2)
    return raise_rate (control);
  control->calm = 0;
  return VMS_LATENCY_CONTROL_HOLD;
}
