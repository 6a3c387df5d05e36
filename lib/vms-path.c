/* vmshift: paths the user types, made absolute once, at option parsing.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-path.h"

#include <string.h>

/* The query keys whose values are local paths, per kind of URI: libnbd's
 * (the sink) and libvirt's remote driver's. */
static const char *const sink_path_keys[]
    = { "socket", "tls-psk-file", "tls-certificates", NULL };
static const char *const libvirt_path_keys[]
    = { "socket", "pkipath", "keyfile", "known_hosts", NULL };

/* Characters left unescaped in a rewritten query value besides the
 * unreserved ones: enough for a path to stay readable, none that splits
 * a query ('&', '=', '+', ';', '#'). */
#define QUERY_VALUE_ALLOWED "/:@,"

char *
vms_path_absolute (const char *path)
{
  return path ? g_canonicalize_filename (path, NULL) : NULL;
}

/* prefix followed by the absolute form of path. */
static char *
prefixed_absolute (const char *prefix, const char *path)
{
  g_autofree char *absolute = g_canonicalize_filename (path, NULL);

  return g_strconcat (prefix, absolute, NULL);
}

char *
vms_path_absolute_qmp_address (const char *address)
{
  /* The same cases, in the same order, as vms_qmp_connect's parser. */
  if (!address)
    return NULL;
  if (g_str_has_prefix (address, "unix:") && address[5])
    return prefixed_absolute ("unix:", address + 5);
  if (g_str_has_prefix (address, "qmp:") && address[4])
    return prefixed_absolute ("qmp:", address + 4);
  if (g_str_has_prefix (address, "tcp:") || !strchr (address, '/'))
    return g_strdup (address);
  return g_canonicalize_filename (address, NULL);
}

char *
vms_path_absolute_migration_uri (const char *uri)
{
  if (uri && g_str_has_prefix (uri, "unix:") && uri[5])
    return prefixed_absolute ("unix:", uri + 5);
  return g_strdup (uri);
}

/* One "key=value" of a query, rewritten if key names a path and value is
 * relative; NULL when it stays as it is. */
static char *
absolute_parameter (const char *parameter, const char *const *keys)
{
  const char *equals = strchr (parameter, '=');
  g_autofree char *key = NULL;
  g_autofree char *value = NULL;
  g_autofree char *absolute = NULL;
  g_autofree char *escaped = NULL;

  if (!equals || equals[1] == '\0')
    return NULL;
  key = g_uri_unescape_segment (parameter, equals, NULL);
  value = g_uri_unescape_string (equals + 1, NULL);
  /* A bad escape is left for the URI's parser to report. */
  if (!key || !value || !g_strv_contains (keys, key)
      || g_path_is_absolute (value))
    return NULL;
  absolute = g_canonicalize_filename (value, NULL);
  escaped = g_uri_escape_string (absolute, QUERY_VALUE_ALLOWED, FALSE);
  return g_strdup_printf ("%.*s=%s", (int)(equals - parameter), parameter,
                          escaped);
}

/* uri with the values of keys in its query made absolute. */
static char *
absolute_query_paths (const char *uri, const char *const *keys)
{
  const char *query, *fragment;
  g_autofree char *query_text = NULL;
  g_auto (GStrv) parameters = NULL;
  gboolean changed = FALSE;

  if (!uri)
    return NULL;
  query = strchr (uri, '?');
  if (!query)
    return g_strdup (uri);
  query++;
  fragment = strchr (query, '#');
  if (!fragment)
    fragment = query + strlen (query);
  query_text = g_strndup (query, fragment - query);
  parameters = g_strsplit (query_text, "&", -1);
  for (char **parameter = parameters; *parameter; parameter++)
    {
      char *absolute = absolute_parameter (*parameter, keys);

      if (absolute)
        {
          g_free (*parameter);
          *parameter = absolute;
          changed = TRUE;
        }
    }
  if (!changed)
    return g_strdup (uri);
  g_free (query_text);
  query_text = g_strjoinv ("&", parameters);
  return g_strdup_printf ("%.*s%s%s", (int)(query - uri), uri, query_text,
                          fragment);
}

char *
vms_path_absolute_sink_uri (const char *uri)
{
  return absolute_query_paths (uri, sink_path_keys);
}

char *
vms_path_absolute_libvirt_uri (const char *uri)
{
  return absolute_query_paths (uri, libvirt_path_keys);
}

void
vms_path_make_absolute (char **path, char *(*absolute) (const char *))
{
  char *old = *path;

  *path = absolute (old);
  g_free (old);
}
