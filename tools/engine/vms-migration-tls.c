/* vmshift engine: TLS credentials in QEMU, from the sink URI's keys.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-migration-tls.h"
#include "vms-qemu-migration.h"

/* QEMU reads a PSK from DIR/keys.psk, nothing else. */
#define QEMU_PSK_FILE "keys.psk"

/* The sink URI and its query (NULL when it has none). */
static gboolean
sink_uri (VmsMigration *migration, GUri **uri, GHashTable **query,
          GError **error)
{
  *query = NULL;
  *uri = g_uri_parse (migration->rep.job->sink, G_URI_FLAGS_ENCODED_QUERY,
                      error);
  if (!*uri)
    return FALSE;
  if (g_uri_get_query (*uri)
      && !(*query = g_uri_parse_params (g_uri_get_query (*uri), -1, "&",
                                        G_URI_PARAMS_NONE, error)))
    return FALSE;
  return TRUE;
}

gboolean
vms_migration_sink_tls_creds (VmsMigration *migration, const char *purpose,
                              VmsTlsCreds *creds, char **dir, char **user,
                              GError **error)
{
  g_autoptr (GUri) uri = NULL;
  g_autoptr (GHashTable) query = NULL;
  const char *psk = NULL, *certificates = NULL;
  g_autofree char *base = NULL;

  memset (creds, 0, sizeof *creds);
  *dir = *user = NULL;
  if (!sink_uri (migration, &uri, &query, error))
    return FALSE;
  psk = query ? g_hash_table_lookup (query, "tls-psk-file") : NULL;
  certificates = query ? g_hash_table_lookup (query, "tls-certificates") : NULL;
  if (!psk && !certificates)
    {
      g_set_error (error, G_URI_ERROR, G_URI_ERROR_BAD_QUERY,
                   "%s needs tls-psk-file= or tls-certificates= in the sink "
                   "URI: QEMU uses the sink's keys",
                   purpose);
      return FALSE;
    }
  base = psk ? g_path_get_basename (psk) : NULL;
  if (psk && !g_str_equal (base, QEMU_PSK_FILE))
    {
      g_set_error (error, G_URI_ERROR, G_URI_ERROR_BAD_QUERY,
                   "%s: QEMU reads a PSK from DIR/" QEMU_PSK_FILE
                   ", so name the tls-psk-file " QEMU_PSK_FILE " (it is %s)",
                   purpose, psk);
      return FALSE;
    }
  *dir = psk ? g_path_get_dirname (psk) : g_strdup (certificates);
  *user = psk ? g_strdup (g_uri_get_user (uri)) : NULL;
  creds->kind = psk ? VMS_TLS_PSK : VMS_TLS_X509;
  creds->dir = *dir;
  creds->username = *user;
  return TRUE;
}

gboolean
vms_migration_sink_tls_hostname (VmsMigration *migration, gboolean unix_socket,
                                 char **hostname, GError **error)
{
  g_autoptr (GUri) uri = NULL;
  g_autoptr (GHashTable) query = NULL;
  const char *name;

  *hostname = NULL;
  if (!sink_uri (migration, &uri, &query, error))
    return FALSE;
  if (!query || !g_hash_table_lookup (query, "tls-certificates"))
    return TRUE;
  name = g_hash_table_lookup (query, "tls-hostname");
  if (name && !*name)
    {
      g_set_error (error, G_URI_ERROR, G_URI_ERROR_BAD_QUERY,
                   "sink %s: tls-hostname= is empty: give the name the "
                   "sink's certificate holds",
                   migration->rep.job->sink);
      return FALSE;
    }
  /* A unix socket is on this host: the name a certificate for a server
   * here is most likely to hold. */
  *hostname = g_strdup (name ? name : unix_socket ? "localhost" : NULL);
  return TRUE;
}

/* The memory credentials' object id in both QEMUs; caller frees.  Not
 * the mirror's: that one goes with the mirror's nodes. */
static char *
memory_tls_id (VmsMigration *migration)
{
  return g_strdup_printf ("vmshift-%s-mtls", migration->rep.job->id);
}

gboolean
vms_migration_memory_tls (VmsMigration *migration, VmsQmp *dest, char **id,
                          GError **error)
{
  g_autofree char *dir = NULL, *user = NULL;
  g_autofree char *name = memory_tls_id (migration);
  VmsTlsCreds creds;

  *id = NULL;
  if (!migration->config.tls)
    return TRUE;
  if (!vms_migration_sink_tls_creds (migration, "--tls", &creds, &dir, &user,
                                     error))
    return FALSE;
  /* The destination reads the same path on its host, as the sink does. */
  creds.endpoint = VMS_TLS_SERVER;
  if (!vms_tls_add (dest, name, &creds, error))
    {
      g_prefix_error (error, "the destination QEMU: ");
      return FALSE;
    }
  creds.endpoint = VMS_TLS_CLIENT;
  if (!vms_tls_add (migration->rep.qmp, name, &creds, error))
    {
      g_prefix_error (error, "the source QEMU: ");
      return FALSE;
    }
  *id = g_steal_pointer (&name);
  return TRUE;
}

void
vms_migration_memory_tls_forget (VmsMigration *migration, VmsQmp *qmp,
                                 const char *who)
{
  g_autoptr (JsonObject) parameters = json_object_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *id = memory_tls_id (migration);

  /* Unconditionally: a killed attempt with --tls may have left them. */
  json_object_set_string_member (parameters, "tls-creds", "");
  json_object_set_string_member (parameters, "tls-hostname", "");
  if (!vms_qemu_migration_set_parameters (qmp, parameters, &error)
      || !vms_tls_remove (qmp, id, &error))
    vms_progress_event (migration->progress, "warning", NULL,
                        "the %s QEMU keeps the memory's TLS credentials "
                        "%s: %s",
                        who, id, error->message);
}
