/* vmshift: sizes as people type them.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-size.h"

gboolean
vms_size_parse (const char *option, const char *text, guint64 minimum,
                guint64 *out, GError **error)
{
  char *end = NULL;
  guint64 value, scale = 1;

  if (!text)
    return TRUE;
  value = g_ascii_strtoull (text, &end, 10);
  switch (end && *end ? g_ascii_toupper (*end) : 0)
    {
    case 0:
      break;
    case 'K':
      scale = 1024;
      break;
    case 'M':
      scale = 1024 * 1024;
      break;
    case 'G':
      scale = 1024 * 1024 * 1024;
      break;
    default:
      scale = 0;
    }
  if (end == text || scale == 0
      || (*end && end[1] && !g_str_equal (end + 1, "iB")
          && !g_str_equal (end + 1, "B"))
      || value > G_MAXUINT64 / scale || value * scale < minimum)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "%s wants a size like 64M or 1G (at least %" G_GUINT64_FORMAT
                   " bytes), not '%s'",
                   option, minimum, text);
      return FALSE;
    }
  *out = value * scale;
  return TRUE;
}
