/* vmshift: how much a copy keeps in flight (see vms-pace.h).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-pace.h"

#include <string.h>

void
vms_pace_init (VmsPace *pace, guint64 floor, guint64 ceiling)
{
  memset (pace, 0, sizeof *pace);
  pace->ceiling = MAX (ceiling, 1);
  pace->floor = MIN (MAX (floor, 1), pace->ceiling);
  pace->cap = pace->floor;
}

static double
best_rate (const VmsPace *pace)
{
  double best = 0;

  for (guint i = 0; i < VMS_PACE_WINDOWS; i++)
    best = MAX (best, pace->rates[i]);
  return best;
}

void
vms_pace_delivered (VmsPace *pace, guint64 bytes, gint64 issued_us,
                    guint64 mark, gint64 now_us)
{
  gint64 rtt = MAX (now_us - issued_us, 1);
  double sample, product;

  pace->delivered += bytes;
  sample = (double)(pace->delivered - mark) / (double)rtt;
  if (pace->min_rtt_us == 0 || rtt < pace->min_rtt_us)
    pace->min_rtt_us = rtt;
  if (pace->window_start_us == 0)
    pace->window_start_us = now_us;
  else if (now_us - pace->window_start_us >= VMS_PACE_WINDOW_US)
    {
      pace->next = (pace->next + 1) % VMS_PACE_WINDOWS;
      pace->rates[pace->next] = 0;
      pace->window_start_us = now_us;
    }
  pace->rates[pace->next] = MAX (pace->rates[pace->next], sample);
  product = VMS_PACE_GAIN * best_rate (pace) * (double)pace->min_rtt_us;
  pace->cap = CLAMP ((guint64)product, pace->floor, pace->ceiling);
}
