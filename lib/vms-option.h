/* vmshift: the numbers people type on a command line (counts, times,
 * sizes like "64M", rates like "50M"), parsed one checked way for every
 * option of every program.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Every function here parses text into *out when it is a number from
 * minimum to maximum (both included); NULL text (option not given)
 * leaves *out as it is.  Signs, spaces, garbage after the number and
 * values that overflow are refused, as G_OPTION_ERROR_BAD_VALUE whose
 * message names option and the range: "--rounds wants a count from 0 to
 * 1000, not '-1'". */

/* A whole number; what says what it counts ("a count", "a number of
 * seconds", "a number of milliseconds"). */
gboolean vms_option_integer (const char *option, const char *text,
                             const char *what, guint64 minimum, guint64 maximum,
                             guint64 *out, GError **error);

/* vms_option_integer of "a count". */
gboolean vms_option_count (const char *option, const char *text,
                           guint64 minimum, guint64 maximum, guint64 *out,
                           GError **error);

/* vms_option_integer of "a number of seconds". */
gboolean vms_option_seconds (const char *option, const char *text,
                             guint64 minimum, guint64 maximum, guint64 *out,
                             GError **error);

/* A decimal number without exponent ("2", "0.5"); what as above ("a
 * number of hours"). */
gboolean vms_option_decimal (const char *option, const char *text,
                             const char *what, double minimum, double maximum,
                             double *out, GError **error);

/* Bytes: digits with an optional K, M, G or T (powers of 1024, any case,
 * optionally followed by "B" or "iB"). */
gboolean vms_option_size (const char *option, const char *text, guint64 minimum,
                          guint64 maximum, guint64 *out, GError **error);

/* Bytes per second, written as a size. */
gboolean vms_option_rate (const char *option, const char *text, guint64 minimum,
                          guint64 maximum, guint64 *out, GError **error);

G_END_DECLS
