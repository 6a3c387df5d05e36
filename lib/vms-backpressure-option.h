/* vmshift: the backpressure settings of a migration as people write
 * them, parsed and checked one way for vmshift migrate and sync
 * (--write-backpressure, --max-guest-latency, --replication-backpressure)
 * and for a plan (the keys of the same names, vmshift-plan(5)).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Replication backpressure waits no longer than this for the guest: one
 * whose writes may take a minute more is not held back. */
#define VMS_BACKPRESSURE_OPTION_MAX_LATENCY_MS 60000

/* What write backpressure does when dirty rounds stop converging (the
 * engine's VmsReplicateBackpressure). */
typedef enum
{
  VMS_BACKPRESSURE_OPTION_AUTO, /* steps down from the guest's rate */
  VMS_BACKPRESSURE_OPTION_OFF,  /* never throttles the guest */
  VMS_BACKPRESSURE_OPTION_RATE, /* one step, to the rate given */
} VmsBackpressureOptionWrite;

/* The settings as written; NULL where not given. */
typedef struct
{
  const char *write_backpressure;       /* auto, off or RATE */
  const char *max_guest_latency;        /* MS */
  const char *replication_backpressure; /* auto or off */
} VmsBackpressureOptionText;

/* The settings parsed; all zero is the default (write backpressure auto,
 * replication backpressure off). */
typedef struct
{
  VmsBackpressureOptionWrite write_backpressure;
  guint64 write_backpressure_rate; /* RATE, bytes/s */
  guint max_guest_latency_ms;      /* 0: replication backpressure off */
  gboolean replication_asked;      /* max-guest-latency or
                                      replication-backpressure was given: no
                                      estimate's recommendation overrides it */
} VmsBackpressureOptions;

/* Parse text into *out (from zero, the defaults).  Replication
 * backpressure is off unless max-guest-latency is given; then it is on
 * unless replication-backpressure is off; auto without a latency is
 * refused.  A refusal is G_OPTION_ERROR_BAD_VALUE naming the setting as
 * prefix ("--" for options, "" for plan keys) and its name:
 * "--write-backpressure takes auto, off or a RATE of at least 256K
 * (bytes/s), not '1K'". */
gboolean vms_backpressure_options_parse (const char *prefix,
                                         const VmsBackpressureOptionText *text,
                                         VmsBackpressureOptions *out,
                                         GError **error);

G_END_DECLS
