/* vmshift: the sink's export names (NAME, NAME@live, @probe, ...), read by
 * the sink and written by its clients, so both sides share one grammar.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-sink-name.h"

#include <string.h>

G_DEFINE_QUARK (vms - sink - name - error - quark, vms_sink_name_error)

/* The only export without a replica. */
#define PROBE_NAME "@probe"
/* NAME@create=SIZE and NAME@hashes=CHUNK: the suffixes with an
 * argument. */
#define CREATE_PREFIX "create="
#define HASHES_PREFIX "hashes="
/* What @create accepts: an NBD size is a signed 64-bit number. */
#define CREATE_SIZE_RANGE "@create wants a size in bytes between 1 and 2^63-1"
#define HASH_CHUNK_RANGE                                                       \
  "@hashes wants a chunk in bytes, a power of two from 4096 to 67108864"

/* Suffixes that name an export by themselves, for the parser and the
 * builder alike so that they cannot disagree. */
static const struct
{
  VmsSinkNameKind kind; /* export named */
  const char *suffix;   /* what follows NAME@ */
} fixed_suffixes[] = {
  { VMS_SINK_NAME_KIND_LIVE, "live" },
  { VMS_SINK_NAME_KIND_LIVE_NOFLUSH, "live-noflush" },
  { VMS_SINK_NAME_KIND_LIVE_RESET, "live-reset" },
  { VMS_SINK_NAME_KIND_HANDOVER, "handover" },
  { VMS_SINK_NAME_KIND_HASHES, "hashes" },
  { VMS_SINK_NAME_KIND_COMMIT, "commit" },
};

static gboolean bad_name (GError **error, const char *format, ...)
    G_GNUC_PRINTF (2, 3);

static gboolean
bad_name (GError **error, const char *format, ...)
{
  va_list args;
  g_autofree char *message = NULL;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error_literal (error, VMS_SINK_NAME_ERROR, VMS_SINK_NAME_ERROR_INVALID,
                       message);
  return FALSE;
}

gboolean
vms_sink_name_is_valid (const char *name, GError **error)
{
  gsize length = strlen (name);

  if (length == 0)
    return bad_name (error, "replica name is empty");
  if (length > VMS_SINK_NAME_MAX_LENGTH)
    return bad_name (error, "replica name is longer than %d characters",
                     VMS_SINK_NAME_MAX_LENGTH);
  /* Control characters first, so no later message echoes one. */
  for (gsize i = 0; i < length; i++)
    if ((guchar)name[i] < 0x20 || (guchar)name[i] >= 0x7f)
      return bad_name (error,
                       "replica name contains byte 0x%02x; use "
                       "letters, digits and . _ + -",
                       (guchar)name[i]);
  for (gsize i = 0; i < length; i++)
    {
      guchar c = name[i];

      if (c == '/')
        return bad_name (error, "replica name '%s' contains '/'", name);
      if (!g_ascii_isalnum (c) && c != '.' && c != '_' && c != '+' && c != '-')
        return bad_name (error,
                         "replica name '%s' contains '%c'; use "
                         "letters, digits and . _ + -",
                         name, c);
    }
  if (name[0] == '.' || name[0] == '-')
    return bad_name (error, "replica name '%s' must not start with '%c'", name,
                     name[0]);
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
  if (!*text
      || !g_ascii_string_to_unsigned (text, 10, 1, G_MAXINT64, &value, NULL))
    return bad_name (error, CREATE_SIZE_RANGE ", not '%s'", text);
  *size = value;
  return TRUE;
}

static gboolean
is_hash_chunk (guint64 chunk)
{
  return chunk >= VMS_SINK_NAME_HASH_CHUNK_MIN
         && chunk <= VMS_SINK_NAME_HASH_CHUNK_MAX && (chunk & (chunk - 1)) == 0;
}

static gboolean
parse_hash_chunk (const char *text, guint64 *chunk, GError **error)
{
  guint64 value = 0;

  if (!*text
      || !g_ascii_string_to_unsigned (text, 10, 1, G_MAXINT64, &value, NULL)
      || !is_hash_chunk (value))
    return bad_name (error, HASH_CHUNK_RANGE ", not '%.40s'", text);
  *chunk = value;
  return TRUE;
}

gboolean
vms_sink_name_parse_suffix (const char *suffix, VmsSinkNameKind *kind,
                            guint64 *size, GError **error)
{
  *size = 0;
  for (gsize i = 0; i < G_N_ELEMENTS (fixed_suffixes); i++)
    if (g_str_equal (suffix, fixed_suffixes[i].suffix))
      {
        *kind = fixed_suffixes[i].kind;
        return TRUE;
      }
  if (g_str_has_prefix (suffix, CREATE_PREFIX))
    {
      if (!parse_size (suffix + strlen (CREATE_PREFIX), size, error))
        return FALSE;
      *kind = VMS_SINK_NAME_KIND_CREATE;
      return TRUE;
    }
  if (g_str_has_prefix (suffix, HASHES_PREFIX))
    {
      if (!parse_hash_chunk (suffix + strlen (HASHES_PREFIX), size, error))
        return FALSE;
      *kind = VMS_SINK_NAME_KIND_HASHES;
      return TRUE;
    }
  return bad_name (error,
                   "unknown export suffix '@%.40s'; the sink "
                   "serves NAME, NAME@create=SIZE, NAME@live, "
                   "NAME@live-noflush, NAME@live-reset, NAME@handover, "
                   "NAME@hashes, NAME@hashes=CHUNK, NAME@commit "
                   "and @probe",
                   suffix);
}

gboolean
vms_sink_name_parse (const char *export_name, VmsSinkName *out, GError **error)
{
  const char *at = strchr (export_name, '@');
  g_autofree char *name = NULL;

  memset (out, 0, sizeof *out);
  if (g_str_equal (export_name, PROBE_NAME))
    {
      out->kind = VMS_SINK_NAME_KIND_PROBE;
      return TRUE;
    }
  if (!*export_name)
    return bad_name (error, "no export name given: the sink serves one "
                            "export per replica (NAME, NAME@live, ...)");

  name
      = at ? g_strndup (export_name, at - export_name) : g_strdup (export_name);
  if (!vms_sink_name_is_valid (name, error))
    return FALSE;
  if (!at)
    out->kind = VMS_SINK_NAME_KIND_DATA;
  else if (!vms_sink_name_parse_suffix (at + 1, &out->kind, &out->size, error))
    return FALSE;
  out->replica = g_steal_pointer (&name);
  return TRUE;
}

char *
vms_sink_name_build (VmsSinkNameKind kind, const char *replica, guint64 size,
                     GError **error)
{
  if (kind == VMS_SINK_NAME_KIND_PROBE)
    {
      if (replica)
        {
          bad_name (error, "the probe export has no replica");
          return NULL;
        }
      return g_strdup (PROBE_NAME);
    }
  if (!replica)
    {
      bad_name (error, "no replica name given for the %s export",
                vms_sink_name_kind_name (kind));
      return NULL;
    }
  if (!vms_sink_name_is_valid (replica, error))
    return NULL;
  if (kind == VMS_SINK_NAME_KIND_DATA)
    return g_strdup (replica);
  if (kind == VMS_SINK_NAME_KIND_CREATE)
    {
      if (size < 1 || size > G_MAXINT64)
        {
          bad_name (error, CREATE_SIZE_RANGE ", not %" G_GUINT64_FORMAT, size);
          return NULL;
        }
      return g_strdup_printf ("%s@" CREATE_PREFIX "%" G_GUINT64_FORMAT, replica,
                              size);
    }
  if (kind == VMS_SINK_NAME_KIND_HASHES && size != 0)
    {
      if (!is_hash_chunk (size))
        {
          bad_name (error, HASH_CHUNK_RANGE ", not %" G_GUINT64_FORMAT, size);
          return NULL;
        }
      return g_strdup_printf ("%s@" HASHES_PREFIX "%" G_GUINT64_FORMAT, replica,
                              size);
    }
  for (gsize i = 0; i < G_N_ELEMENTS (fixed_suffixes); i++)
    if (fixed_suffixes[i].kind == kind)
      return g_strconcat (replica, "@", fixed_suffixes[i].suffix, NULL);
  bad_name (error, "no export of kind %d", (int)kind);
  return NULL;
}

void
vms_sink_name_clear (VmsSinkName *name)
{
  g_clear_pointer (&name->replica, g_free);
}

const char *
vms_sink_name_kind_name (VmsSinkNameKind kind)
{
  static const char *const names[]
      = { "data",  "create",     "live",     "hashes",      "commit",
          "probe", "live-reset", "handover", "live-noflush" };

  return kind < G_N_ELEMENTS (names) ? names[kind] : "unknown";
}

#define DESCRIPTION_PREFIX "vmshift replica at "
#define DESCRIPTION_SEPARATOR "; writes kept"

char *
vms_sink_name_describe (const char *path, const char *boot)
{
  return g_strdup_printf (DESCRIPTION_PREFIX "%s; %s", path, boot);
}

char *
vms_sink_name_description_path (const char *description)
{
  const char *path, *end;

  if (!description || !g_str_has_prefix (description, DESCRIPTION_PREFIX))
    return NULL;
  path = description + strlen (DESCRIPTION_PREFIX);
  /* The last separator: a path may hold "; " itself. */
  end = g_strrstr (path, DESCRIPTION_SEPARATOR);
  return end && end > path ? g_strndup (path, end - path) : NULL;
}
