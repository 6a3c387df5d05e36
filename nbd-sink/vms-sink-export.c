/* vmshift sink: what an NBD export name asks for.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-sink-export.h"

#include <stdlib.h>

G_DEFINE_QUARK (vms-sink-error-quark, vms_sink_error)

static gboolean
bad_name (GError **error, const char *format, ...) G_GNUC_PRINTF (2, 3);

static gboolean
bad_name (GError **error, const char *format, ...)
{
  va_list args;
  g_autofree char *message = NULL;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error_literal (error, VMS_SINK_ERROR, VMS_SINK_ERROR_BAD_NAME,
                       message);
  return FALSE;
}

gboolean
vms_sink_name_is_valid (const char *name, GError **error)
{
  gsize length = strlen (name);

  if (length == 0)
    return bad_name (error, "replica name is empty");
  if (length > VMS_SINK_MAX_NAME)
    return bad_name (error, "replica name is longer than %d characters",
                     VMS_SINK_MAX_NAME);
  /* Control characters first, so no later message echoes one. */
  for (gsize i = 0; i < length; i++)
    if ((guchar) name[i] < 0x20 || (guchar) name[i] >= 0x7f)
      return bad_name (error, "replica name contains byte 0x%02x; use "
                       "letters, digits and . _ + -", (guchar) name[i]);
  for (gsize i = 0; i < length; i++)
    {
      guchar c = name[i];

      if (c == '/')
        return bad_name (error, "replica name '%s' contains '/'", name);
      if (!g_ascii_isalnum (c) && c != '.' && c != '_' && c != '+'
          && c != '-')
        return bad_name (error, "replica name '%s' contains '%c'; use "
                         "letters, digits and . _ + -", name, c);
    }
  if (name[0] == '.' || name[0] == '-')
    return bad_name (error, "replica name '%s' must not start with '%c'",
                     name, name[0]);
  if (strstr (name, ".."))
    return bad_name (error, "replica name '%s' contains '..'", name);
  return TRUE;
}

static gboolean
parse_size (const char *text, guint64 *size, GError **error)
{
  guint64 value;

  /* Digits only: no sign, no suffix, no spaces, so one size has one
   * spelling. */
  if (!*text || !g_ascii_string_to_unsigned (text, 10, 1, G_MAXINT64, &value,
                                             NULL))
    return bad_name (error, "@create wants a size in bytes between 1 and "
                     "2^63-1, not '%s'", text);
  *size = value;
  return TRUE;
}

gboolean
vms_sink_export_parse (const char *export_name, VmsSinkExport *out,
                       GError **error)
{
  const char *at = strchr (export_name, '@');
  g_autofree char *name = NULL;
  const char *suffix;

  memset (out, 0, sizeof *out);
  if (g_str_equal (export_name, "@probe"))
    {
      out->kind = VMS_SINK_EXPORT_PROBE;
      return TRUE;
    }
  if (!*export_name)
    return bad_name (error, "no export name given: the sink serves one "
                     "export per replica (NAME, NAME@live, ...)");

  name = at ? g_strndup (export_name, at - export_name)
            : g_strdup (export_name);
  if (!vms_sink_name_is_valid (name, error))
    return FALSE;
  suffix = at ? at + 1 : NULL;

  if (!suffix)
    out->kind = VMS_SINK_EXPORT_DATA;
  else if (g_str_equal (suffix, "live"))
    out->kind = VMS_SINK_EXPORT_LIVE;
  else if (g_str_equal (suffix, "live-reset"))
    out->kind = VMS_SINK_EXPORT_LIVE_RESET;
  else if (g_str_equal (suffix, "hashes"))
    out->kind = VMS_SINK_EXPORT_HASHES;
  else if (g_str_equal (suffix, "commit"))
    out->kind = VMS_SINK_EXPORT_COMMIT;
  else if (g_str_has_prefix (suffix, "create="))
    {
      if (!parse_size (suffix + strlen ("create="), &out->create_size, error))
        return FALSE;
      out->kind = VMS_SINK_EXPORT_CREATE;
    }
  else
    return bad_name (error, "unknown export suffix '@%.40s'; the sink "
                     "serves NAME, NAME@create=SIZE, NAME@live, "
                     "NAME@live-reset, NAME@hashes, NAME@commit and @probe",
                     suffix);
  out->replica = g_steal_pointer (&name);
  return TRUE;
}

void
vms_sink_export_clear (VmsSinkExport *export_)
{
  g_clear_pointer (&export_->replica, g_free);
}

const char *
vms_sink_export_kind_name (VmsSinkExportKind kind)
{
  static const char *const names[] = { "data", "create", "live",
                                       "hashes", "commit", "probe",
                                       "live-reset" };

  return kind < G_N_ELEMENTS (names) ? names[kind] : "unknown";
}
