/* vmshift: what every client of the sink needs: the URI of an export, and
 * the one-shot opens whose opening is the action.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-sink-client.h"
#include "vms-copy.h"
#include "vms-nbd-poll.h"

#include <errno.h>
#include <libnbd.h>
#include <string.h>

gboolean
vms_sink_client_check_uri (const char *sink_uri, GError **error)
{
  static const char *const schemes[]
      = { "nbd", "nbds", "nbd+unix", "nbds+unix", NULL };
  g_autoptr (GUri) uri
      = g_uri_parse (sink_uri, G_URI_FLAGS_ENCODED_QUERY, NULL);
  const char *scheme = uri ? g_uri_get_scheme (uri) : NULL;
  const char *query = uri ? g_uri_get_query (uri) : NULL;
  g_autoptr (GHashTable) params = NULL;

  if (!scheme || !g_strv_contains (schemes, scheme))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--sink wants an NBD URI (nbd://HOST[:PORT], nbds://..., "
                   "nbd+unix:///?socket=PATH, nbds+unix://...), not '%s'",
                   sink_uri);
      return FALSE;
    }
  if (!g_str_has_suffix (scheme, "+unix"))
    {
      if (!g_uri_get_host (uri) || !*g_uri_get_host (uri))
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       "--sink %s names no host", sink_uri);
          return FALSE;
        }
      return TRUE;
    }
  params = query ? g_uri_parse_params (query, -1, "&", G_URI_PARAMS_NONE, NULL)
                 : NULL;
  if (!params || !g_hash_table_contains (params, "socket"))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--sink %s names no socket: add ?socket=PATH", sink_uri);
      return FALSE;
    }
  return TRUE;
}

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

/* What to add to libnbd's error: where the sink's reason is when it
 * refused the export.  nbdkit (1.32, Debian 12's) answers every refused
 * open with NBD_REP_ERR_UNKNOWN and no text, whatever the reason (a
 * missing or orphaned replica, a data file that is a link or a FIFO, a
 * create the file system refused), which libnbd reports as "server has no
 * export named"; the plugin logs the reason. */
static const char *
refusal_hint (void)
{
  const char *message = nbd_get_error ();

  if (nbd_get_errno () == ENOENT && message
      && strstr (message, "has no export"))
    return " (the sink refused it and logged why: on nbdkit's standard error "
           "with 'vmshift-sink serve --foreground', in syslog otherwise)";
  return "";
}

/* Named as the sink's log names the export: "replica 'x' @commit". */
static void
set_connect_error (GError **error, const char *sink_uri, const char *replica,
                   const char *export_name)
{
  const char *suffix = strchr (export_name, '@');

  if (!replica)
    g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_CONNECT,
                 "sink %s: export '%s': %s%s", sink_uri, export_name,
                 nbd_get_error (), refusal_hint ());
  else
    g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_CONNECT,
                 "sink %s: replica '%s'%s%s: %s%s", sink_uri, replica,
                 suffix ? " " : "", suffix ? suffix : "", nbd_get_error (),
                 refusal_hint ());
}

/* A connection to kind's export of replica within timeout_ms (stopped
 * by cancellable), or NULL with the error. */
static struct nbd_handle *
connect_export (const char *sink_uri, VmsSinkNameKind kind, const char *replica,
                guint64 create_size, guint timeout_ms,
                GCancellable *cancellable, GError **error)
{
  g_autofree char *export_name
      = vms_sink_name_build (kind, replica, create_size, error);
  g_autofree char *uri = NULL;
  struct nbd_handle *nbd;

  if (!export_name)
    return NULL;
  uri = vms_sink_client_uri (sink_uri, export_name, error);
  if (!uri)
    return NULL;
  nbd = nbd_create ();
  if (!nbd)
    {
      g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_CONNECT, "%s",
                   nbd_get_error ());
      return NULL;
    }
  nbd_set_uri_allow_local_file (nbd, true);
  /* The description says where the replica is (vms_sink_client_where). */
  nbd_set_full_info (nbd, true);
  if (nbd_aio_connect_uri (nbd, uri) < 0)
    {
      set_connect_error (error, sink_uri, replica, export_name);
      nbd_close (nbd);
      return NULL;
    }
  if (!vms_nbd_wait_connected (nbd, "sink", timeout_ms, cancellable, error))
    {
      /* A refusal is the sink's answer, with its hint; silence and a
       * stop are said as they are. */
      if (g_error_matches (*error, VMS_COPY_ERROR, VMS_COPY_ERROR_CONNECT))
        {
          g_clear_error (error);
          set_connect_error (error, sink_uri, replica, export_name);
        }
      else
        g_prefix_error (error, "sink %s: export '%s': ", sink_uri, export_name);
      nbd_close (nbd);
      return NULL;
    }
  return nbd;
}

gboolean
vms_sink_client_open (const char *sink_uri, VmsSinkNameKind kind,
                      const char *replica, guint64 create_size, gboolean flush,
                      GError **error)
{
  return vms_sink_client_open_full (sink_uri, kind, replica, create_size, flush,
                                    VMS_SINK_CLIENT_TIMEOUT_MS, NULL, error);
}

gboolean
vms_sink_client_open_full (const char *sink_uri, VmsSinkNameKind kind,
                           const char *replica, guint64 create_size,
                           gboolean flush, guint timeout_ms,
                           GCancellable *cancellable, GError **error)
{
  struct nbd_handle *nbd = connect_export (sink_uri, kind, replica, create_size,
                                           timeout_ms, cancellable, error);

  if (!nbd)
    return FALSE;
  if (flush && nbd_flush (nbd, 0) < 0)
    {
      g_autofree char *export_name
          = vms_sink_name_build (kind, replica, create_size, NULL);

      set_connect_error (error, sink_uri, replica, export_name);
      nbd_close (nbd);
      return FALSE;
    }
  nbd_shutdown (nbd, 0);
  nbd_close (nbd);
  return TRUE;
}

char *
vms_sink_client_where (const char *sink_uri, const char *replica,
                       GError **error)
{
  struct nbd_handle *nbd
      = connect_export (sink_uri, VMS_SINK_NAME_KIND_DATA, replica, 0,
                        VMS_SINK_CLIENT_TIMEOUT_MS, NULL, error);
  g_autofree char *description = NULL;

  if (!nbd)
    return NULL;
  description = nbd_get_export_description (nbd);
  nbd_shutdown (nbd, 0);
  nbd_close (nbd);
  return vms_sink_name_description_path (description);
}

gboolean
vms_sink_client_create (const char *sink_uri, const char *replica, guint64 size,
                        guint timeout_ms, GCancellable *cancellable,
                        GError **error)
{
  if (!vms_sink_client_open_full (sink_uri, VMS_SINK_NAME_KIND_CREATE, replica,
                                  size, FALSE, timeout_ms, cancellable, error))
    {
      /* Silence and a stop are neither a refusal nor a bad size. */
      if (g_error_matches (*error, VMS_COPY_ERROR, VMS_COPY_ERROR_TIMEOUT)
          || g_error_matches (*error, VMS_COPY_ERROR, VMS_COPY_ERROR_STOPPED))
        return FALSE;
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

/* ---- the mirror's switchover ---- */

struct _VmsSinkHandover
{
  char *sink_uri;
  GPtrArray *replicas; /* char *, for messages */
  GPtrArray *handles;  /* struct nbd_handle * */
};

void
vms_sink_handover_free (VmsSinkHandover *handover)
{
  if (!handover)
    return;
  for (guint i = 0; i < handover->handles->len; i++)
    {
      struct nbd_handle *nbd = handover->handles->pdata[i];

      nbd_shutdown (nbd, 0);
      nbd_close (nbd);
    }
  g_ptr_array_free (handover->handles, TRUE);
  g_ptr_array_free (handover->replicas, TRUE);
  g_free (handover->sink_uri);
  g_free (handover);
}

VmsSinkHandover *
vms_sink_handover_open (const char *sink_uri, const char *const *replicas,
                        GError **error)
{
  g_autoptr (VmsSinkHandover) handover = g_new0 (VmsSinkHandover, 1);

  handover->sink_uri = g_strdup (sink_uri);
  handover->replicas = g_ptr_array_new_with_free_func (g_free);
  handover->handles = g_ptr_array_new ();
  for (guint i = 0; replicas[i]; i++)
    {
      struct nbd_handle *nbd
          = connect_export (sink_uri, VMS_SINK_NAME_KIND_HANDOVER, replicas[i],
                            0, VMS_SINK_CLIENT_TIMEOUT_MS, NULL, error);

      if (!nbd)
        return NULL;
      g_ptr_array_add (handover->handles, nbd);
      g_ptr_array_add (handover->replicas, g_strdup (replicas[i]));
    }
  return g_steal_pointer (&handover);
}

/* The first failed FLUSH, or one still running at the deadline.  A
 * completed command is retired: libnbd answers 0 for its cookie after,
 * so each is asked until it completes, then marked 0. */
static gboolean
handover_check (VmsSinkHandover *handover, gint64 *cookies, gboolean *all_done,
                gint64 deadline_us, GError **error)
{
  *all_done = TRUE;
  for (guint i = 0; i < handover->handles->len; i++)
    {
      struct nbd_handle *nbd = handover->handles->pdata[i];
      int done = cookies[i] ? nbd_aio_command_completed (nbd, cookies[i]) : 1;

      if (done > 0)
        cookies[i] = 0;

      if (done < 0)
        {
          g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_DEST,
                       "sink %s: replica '%s' @handover: FLUSH failed: %s",
                       handover->sink_uri, (char *)handover->replicas->pdata[i],
                       nbd_get_error ());
          return FALSE;
        }
      if (done == 0)
        *all_done = FALSE;
    }
  if (!*all_done && g_get_monotonic_time () > deadline_us)
    {
      g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_TIMEOUT,
                   "sink %s: the switchover's FLUSH did not complete in time",
                   handover->sink_uri);
      return FALSE;
    }
  return TRUE;
}

gboolean
vms_sink_handover_run (VmsSinkHandover *handover, guint timeout_ms,
                       GError **error)
{
  guint n = handover->handles->len;
  g_autofree gint64 *cookies = g_new0 (gint64, n);
  gint64 deadline_us = g_get_monotonic_time () + timeout_ms * 1000LL;
  gboolean all_done = FALSE;

  for (guint i = 0; i < n; i++)
    {
      cookies[i]
          = nbd_aio_flush (handover->handles->pdata[i], NBD_NULL_COMPLETION, 0);
      if (cookies[i] < 0)
        {
          g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_DEST,
                       "sink %s: replica '%s' @handover: %s",
                       handover->sink_uri, (char *)handover->replicas->pdata[i],
                       nbd_get_error ());
          return FALSE;
        }
    }
  while (handover_check (handover, cookies, &all_done, deadline_us, error))
    {
      if (all_done)
        return TRUE;
      if (vms_nbd_poll ((struct nbd_handle *const *)handover->handles->pdata, n,
                        100)
          < 0)
        {
          g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_DEST,
                       "sink %s: the switchover's FLUSH: %s",
                       handover->sink_uri, g_strerror (errno));
          return FALSE;
        }
    }
  return FALSE;
}
