/* vmshift: how much a copy keeps in flight.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Twice the bandwidth-delay product the copy measures (the best delivery
 * rate of the last windows times the shortest issue-to-acknowledgement
 * time), as BBR does for TCP: enough to keep the path busy, and no more,
 * because what is in flight when a connection is lost is sent again, and
 * what waits in socket buffers on a slow link only delays everything
 * behind it.  It starts at the floor and doubles each window while the
 * path keeps up.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* A delivery rate sample is what was acknowledged while a request was in
 * flight, over its round trip (as BBR's): it cannot exceed what the path
 * carried.  Each window keeps its best sample; the best of the last
 * VMS_PACE_WINDOWS counts, so a few slow round trips do not shrink the
 * cap. */
#define VMS_PACE_WINDOW_US (20 * 1000)
#define VMS_PACE_WINDOWS 10
/* Headroom over the measured product. */
#define VMS_PACE_GAIN 2.0

typedef struct
{
  guint64 floor;                  /* never less in flight than this */
  guint64 ceiling;                /* never more */
  guint64 cap;                    /* what may be in flight now */
  gint64 min_rtt_us;              /* shortest round trip seen, 0: none yet */
  gint64 window_start_us;         /* the current window, 0: none yet */
  guint64 delivered;              /* bytes acknowledged so far */
  double rates[VMS_PACE_WINDOWS]; /* best samples of the last windows,
                                     bytes per us */
  guint next;                     /* rates[next] is the oldest */
} VmsPace;

/* Start at floor (at most ceiling). */
void vms_pace_init (VmsPace *pace, guint64 floor, guint64 ceiling);

/* What a request issued now records: vms_pace_delivered needs it. */
static inline guint64
vms_pace_mark (const VmsPace *pace)
{
  return pace->delivered;
}

/* bytes issued at issued_us, when vms_pace_mark said mark, were
 * acknowledged at now_us. */
void vms_pace_delivered (VmsPace *pace, guint64 bytes, gint64 issued_us,
                         guint64 mark, gint64 now_us);

/* Bytes that may be in flight. */
static inline guint64
vms_pace_cap (const VmsPace *pace)
{
  return pace->cap;
}

G_END_DECLS
