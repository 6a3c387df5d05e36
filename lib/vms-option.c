/* vmshift: the numbers people type on a command line, checked.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-option.h"

#include <string.h>

/* Leading digits of *text as a number, *text moved past them; FALSE
 * when there is no digit or the number does not fit.  Written out
 * because g_ascii_strtoull takes a sign (and "-1" becomes 2^64 - 1). */
static gboolean
take_digits (const char **text, guint64 *value)
{
  const char *p = *text;
  guint64 v = 0;

  if (!g_ascii_isdigit (*p))
    return FALSE;
  for (; g_ascii_isdigit (*p); p++)
    {
      guint digit = *p - '0';

      if (v > (G_MAXUINT64 - digit) / 10)
        return FALSE;
      v = v * 10 + digit;
    }
  *text = p;
  *value = v;
  return TRUE;
}

/* The scale of a size's suffix ("", "K", "MiB", "gb"), 0 if it is none. */
static guint64
suffix_scale (const char *suffix)
{
  static const char units[] = "KMGT";
  const char *unit;

  if (!*suffix)
    return 1;
  unit = strchr (units, g_ascii_toupper (*suffix));
  if (!unit
      || (suffix[1] && g_ascii_strcasecmp (suffix + 1, "B") != 0
          && g_ascii_strcasecmp (suffix + 1, "iB") != 0))
    return 0;
  return G_GUINT64_CONSTANT (1) << (10 * (unit - units + 1));
}

/* bytes the way people write them back: "64M" when exact, else digits. */
static char *
format_bytes (guint64 bytes)
{
  static const char units[] = "TGMK";

  for (guint i = 0; bytes && i < 4; i++)
    {
      guint shift = 10 * (4 - i);

      if (bytes % (G_GUINT64_CONSTANT (1) << shift) == 0)
        return g_strdup_printf ("%" G_GUINT64_FORMAT "%c", bytes >> shift,
                                units[i]);
    }
  return g_strdup_printf ("%" G_GUINT64_FORMAT, bytes);
}

static gboolean
refuse (GError **error, const char *option, const char *what,
        const char *minimum, const char *maximum, const char *text)
{
  g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
               "%s wants %s from %s to %s, not '%s'", option, what, minimum,
               maximum, text);
  return FALSE;
}

gboolean
vms_option_integer (const char *option, const char *text, const char *what,
                    guint64 minimum, guint64 maximum, guint64 *out,
                    GError **error)
{
  const char *end = text;
  guint64 value;

  if (!text)
    return TRUE;
  if (!take_digits (&end, &value) || *end || value < minimum || value > maximum)
    {
      g_autofree char *low = g_strdup_printf ("%" G_GUINT64_FORMAT, minimum);
      g_autofree char *high = g_strdup_printf ("%" G_GUINT64_FORMAT, maximum);

      return refuse (error, option, what, low, high, text);
    }
  *out = value;
  return TRUE;
}

gboolean
vms_option_count (const char *option, const char *text, guint64 minimum,
                  guint64 maximum, guint64 *out, GError **error)
{
  return vms_option_integer (option, text, "a count", minimum, maximum, out,
                             error);
}

gboolean
vms_option_seconds (const char *option, const char *text, guint64 minimum,
                    guint64 maximum, guint64 *out, GError **error)
{
  return vms_option_integer (option, text, "a number of seconds", minimum,
                             maximum, out, error);
}

gboolean
vms_option_decimal (const char *option, const char *text, const char *what,
                    double minimum, double maximum, double *out, GError **error)
{
  const char *end = text;
  guint64 whole;
  double value = 0;

  if (!text)
    return TRUE;
  /* Digits, then at most one point and digits: no sign, exponent, "inf"
   * or "nan", which strtod would all take. */
  if (take_digits (&end, &whole) && *end == '.')
    {
      end++;
      if (!take_digits (&end, &whole))
        end = text;
    }
  if (end != text && !*end)
    value = g_ascii_strtod (text, NULL);
  if (end == text || *end || !(value >= minimum && value <= maximum))
    {
      g_autofree char *low = g_strdup_printf ("%g", minimum);
      g_autofree char *high = g_strdup_printf ("%g", maximum);

      return refuse (error, option, what, low, high, text);
    }
  *out = value;
  return TRUE;
}

static gboolean
parse_bytes (const char *option, const char *text, const char *what,
             guint64 minimum, guint64 maximum, guint64 *out, GError **error)
{
  const char *end = text;
  guint64 value, scale = 0;

  if (!text)
    return TRUE;
  if (take_digits (&end, &value))
    scale = suffix_scale (end);
  if (scale == 0 || value > G_MAXUINT64 / scale || value * scale < minimum
      || value * scale > maximum)
    {
      g_autofree char *low = format_bytes (minimum);
      g_autofree char *high = format_bytes (maximum);

      return refuse (error, option, what, low, high, text);
    }
  *out = value * scale;
  return TRUE;
}

gboolean
vms_option_size (const char *option, const char *text, guint64 minimum,
                 guint64 maximum, guint64 *out, GError **error)
{
  return parse_bytes (option, text, "a size in bytes like 64M or 1G", minimum,
                      maximum, out, error);
}

gboolean
vms_option_rate (const char *option, const char *text, guint64 minimum,
                 guint64 maximum, guint64 *out, GError **error)
{
  return parse_bytes (option, text, "a rate in bytes per second like 50M",
                      minimum, maximum, out, error);
}
