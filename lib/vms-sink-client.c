/* vmshift: what every client of the sink needs: the URI of an export, and
 * the one-shot opens whose opening is the action.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-sink-client.h"
#include "vms-copy.h"

#include <libnbd.h>
#include <string.h>

char *
vms_sink_client_uri (const char *sink_uri, const char *export_name,
                     GError **error)
{
  /* The query stays as the user wrote it: socket= and tls-* are libnbd's
   * business, escapes and all. */
  g_autoptr (GUri) base
      = g_uri_parse (sink_uri, G_URI_FLAGS_ENCODED_QUERY, error);
  g_autofree char *escaped = NULL;
  g_autofree char *path = NULL;
  g_autoptr (GUri) uri = NULL;

  if (!base)
    {
      g_prefix_error (error, "--sink %s: ", sink_uri);
      return NULL;
    }
  if (!g_str_has_prefix (g_uri_get_scheme (base), "nbd"))
    {
      g_set_error (error, G_URI_ERROR, G_URI_ERROR_BAD_SCHEME,
                   "--sink %s: expected an NBD URI (nbd://, nbds://, "
                   "nbd+unix://, nbds+unix://)",
                   sink_uri);
      return NULL;
    }
  /* libnbd unescapes the path back into the export name.  Escaped here
   * rather than by g_uri_to_string, which leaves UTF-8 as it is and so
   * makes URIs that libnbd cannot parse. */
  escaped = g_uri_escape_string (export_name,
                                 G_URI_RESERVED_CHARS_ALLOWED_IN_PATH, FALSE);
  path = g_strconcat ("/", escaped, NULL);
  uri = g_uri_build (G_URI_FLAGS_ENCODED_QUERY | G_URI_FLAGS_ENCODED_PATH,
                     g_uri_get_scheme (base), g_uri_get_userinfo (base),
                     g_uri_get_host (base), g_uri_get_port (base), path,
                     g_uri_get_query (base), NULL);
  return g_uri_to_string (uri);
}

char *
vms_sink_client_export_uri (const char *sink_uri, VmsSinkNameKind kind,
                            const char *replica, guint64 create_size,
                            GError **error)
{
  g_autofree char *export_name
      = vms_sink_name_build (kind, replica, create_size, error);

  return export_name ? vms_sink_client_uri (sink_uri, export_name, error)
                     : NULL;
}

char *
vms_sink_client_probe_uri (const char *sink_uri, GError **error)
{
  return vms_sink_client_export_uri (sink_uri, VMS_SINK_NAME_KIND_PROBE, NULL,
                                     0, error);
}

/* Named as the sink's log names the export: "replica 'x' @commit". */
static void
set_connect_error (GError **error, const char *sink_uri, const char *replica,
                   const char *export_name)
{
  const char *suffix = strchr (export_name, '@');

  if (!replica)
    g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_CONNECT,
                 "sink %s: export '%s': %s", sink_uri, export_name,
                 nbd_get_error ());
  else
    g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_CONNECT,
                 "sink %s: replica '%s'%s%s: %s", sink_uri, replica,
                 suffix ? " " : "", suffix ? suffix : "", nbd_get_error ());
}

gboolean
vms_sink_client_open (const char *sink_uri, VmsSinkNameKind kind,
                      const char *replica, guint64 create_size, gboolean flush,
                      GError **error)
{
  g_autofree char *export_name
      = vms_sink_name_build (kind, replica, create_size, error);
  g_autofree char *uri = NULL;
  struct nbd_handle *nbd;

  if (!export_name)
    return FALSE;
  uri = vms_sink_client_uri (sink_uri, export_name, error);
  if (!uri)
    return FALSE;
  nbd = nbd_create ();
  if (!nbd)
    {
      g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_CONNECT, "%s",
                   nbd_get_error ());
      return FALSE;
    }
  nbd_set_uri_allow_local_file (nbd, true);
  if (nbd_connect_uri (nbd, uri) < 0 || (flush && nbd_flush (nbd, 0) < 0))
    {
      set_connect_error (error, sink_uri, replica, export_name);
      nbd_close (nbd);
      return FALSE;
    }
  nbd_shutdown (nbd, 0);
  nbd_close (nbd);
  return TRUE;
}

gboolean
vms_sink_client_create (const char *sink_uri, const char *replica, guint64 size,
                        GError **error)
{
  if (!vms_sink_client_open (sink_uri, VMS_SINK_NAME_KIND_CREATE, replica, size,
                             FALSE, error))
    {
      g_prefix_error (error,
                      "cannot open the replica with %" G_GUINT64_FORMAT
                      " bytes (sink unreachable, or the replica exists with "
                      "another size): ",
                      size);
      return FALSE;
    }
  return TRUE;
}

gboolean
vms_sink_client_flush (const char *sink_uri, const char *replica,
                       GError **error)
{
  return vms_sink_client_open (sink_uri, VMS_SINK_NAME_KIND_DATA, replica, 0,
                               TRUE, error);
}

gboolean
vms_sink_client_commit (const char *sink_uri, const char *replica,
                        GError **error)
{
  return vms_sink_client_open (sink_uri, VMS_SINK_NAME_KIND_COMMIT, replica, 0,
                               FALSE, error);
}

gboolean
vms_sink_client_live_reset (const char *sink_uri, const char *replica,
                            GError **error)
{
  return vms_sink_client_open (sink_uri, VMS_SINK_NAME_KIND_LIVE_RESET, replica,
                               0, FALSE, error);
}
