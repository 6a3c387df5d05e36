/* vmshift engine: the write-blocking mirror of every disk to the sink's
 * live export, for the mirror switchover: from its start on, every guest
 * write reaches the sink before the guest sees it complete.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-migration-mirror.h"
#include "vms-mirror.h"

/* The mirror's NBD connection may break this long before guest writes
 * fail the mirror (and with it the migration). */
#define MIRROR_RECONNECT_DELAY_S 10
#define MIRROR_READY_TIMEOUT_MS 60000

/* QEMU allows node names of 31 characters: a job id (up to 64) and a
 * disk name do not fit, so the mirror's names carry a digest of them;
 * the same job and disk always give the same names, which lets a later
 * attempt find what a killed one left. */
static char *
mirror_name (const char *kind, VmsJob *job, VmsJobDisk *disk)
{
  g_autofree char *key = g_strdup_printf ("%s/%s", job->id, disk->name);
  g_autofree char *digest
      = g_compute_checksum_for_string (G_CHECKSUM_SHA256, key, -1);

  return g_strdup_printf ("vms%s-%.16s", kind, digest);
}

static char *
mirror_job_id (VmsJob *job, VmsJobDisk *disk)
{
  return mirror_name ("mirror", job, disk);
}

static char *
mirror_node (VmsJob *job, VmsJobDisk *disk)
{
  return mirror_name ("live", job, disk);
}

/* The sink URI as QEMU's NBD client wants it; a TLS object is created
 * when the sink needs TLS. */
static gboolean
mirror_target (VmsMigration *migrate, VmsJobDisk *disk, VmsMirrorTarget *target,
               char **socket_out, char **host_out, char **port_out,
               char **export_out, GError **error)
{
  g_autoptr (GUri) uri
      = g_uri_parse (migrate->rep.job->sink, G_URI_FLAGS_ENCODED_QUERY, error);
  g_autoptr (GHashTable) query = NULL;
  const char *scheme;

  if (!uri)
    return FALSE;
  scheme = g_uri_get_scheme (uri);
  if (g_uri_get_query (uri))
    {
      query = g_uri_parse_params (g_uri_get_query (uri), -1, "&",
                                  G_URI_PARAMS_NONE, error);
      if (!query)
        return FALSE;
    }
  memset (target, 0, sizeof *target);
  *export_out = g_strdup_printf ("%s@live", disk->replica);
  target->export_name = *export_out;
  if (g_str_has_suffix (scheme, "+unix"))
    {
      const char *socket = query ? g_hash_table_lookup (query, "socket") : NULL;

      if (!socket)
        {
          g_set_error (error, G_URI_ERROR, G_URI_ERROR_BAD_QUERY,
                       "sink %s: no socket= in the URI",
                       migrate->rep.job->sink);
          return FALSE;
        }
      *socket_out = g_strdup (socket);
      target->socket_path = *socket_out;
    }
  else
    {
      *host_out = g_strdup (g_uri_get_host (uri));
      *port_out = g_strdup_printf (
          "%d", g_uri_get_port (uri) > 0 ? g_uri_get_port (uri) : 10809);
      target->host = *host_out;
      target->port = *port_out;
    }
  if (g_str_has_prefix (scheme, "nbds"))
    {
      const char *psk
          = query ? g_hash_table_lookup (query, "tls-psk-file") : NULL;
      const char *certificates
          = query ? g_hash_table_lookup (query, "tls-certificates") : NULL;

      if (!migrate->tls_object)
        {
          g_autoptr (JsonObject) arguments = json_object_new ();
          g_autoptr (JsonNode) reply = NULL;
          g_autofree char *id
              = g_strdup_printf ("vmshift-%s-tls", migrate->rep.job->id);
          g_autofree char *base = psk ? g_path_get_basename (psk) : NULL;
          g_autofree char *dir = psk ? g_path_get_dirname (psk) : NULL;

          if (psk && !g_str_equal (base, "keys.psk"))
            {
              g_set_error (error, G_URI_ERROR, G_URI_ERROR_BAD_QUERY,
                           "--final-sync mirror over TLS-PSK: QEMU reads "
                           "its keys from DIR/keys.psk, so name the "
                           "tls-psk-file keys.psk (it is %s)",
                           psk);
              return FALSE;
            }
          if (!psk && !certificates)
            {
              g_set_error (error, G_URI_ERROR, G_URI_ERROR_BAD_QUERY,
                           "--final-sync mirror over TLS needs "
                           "tls-psk-file= or tls-certificates= in the sink "
                           "URI");
              return FALSE;
            }
          json_object_set_string_member (
              arguments, "qom-type", psk ? "tls-creds-psk" : "tls-creds-x509");
          json_object_set_string_member (arguments, "id", id);
          json_object_set_string_member (arguments, "endpoint", "client");
          json_object_set_string_member (arguments, "dir",
                                         psk ? dir : certificates);
          if (psk && g_uri_get_user (uri))
            json_object_set_string_member (arguments, "username",
                                           g_uri_get_user (uri));
          reply = vms_qmp_execute (migrate->rep.qmp, "object-add", arguments,
                                   NULL);
          /* An object left by an earlier attempt is as good. */
          migrate->tls_object = g_steal_pointer (&id);
        }
      target->tls_creds = migrate->tls_object;
    }
  return TRUE;
}

gboolean
vms_migration_mirror_start (VmsMigration *migrate, GError **error)
{
  VmsJob *job = migrate->rep.job;

  for (guint i = 0; i < job->disks->len; i++)
    {
      VmsJobDisk *disk = job->disks->pdata[i];
      g_autofree char *id = mirror_job_id (job, disk);
      g_autofree char *node = mirror_node (job, disk);
      g_autofree char *socket = NULL, *host = NULL, *port = NULL;
      g_autofree char *export_name = NULL;
      VmsMirrorTarget target;

      if (!mirror_target (migrate, disk, &target, &socket, &host, &port,
                          &export_name, error)
          || !vms_mirror_start (migrate->rep.qmp, disk->node, &target, id, node,
                                MIRROR_RECONNECT_DELAY_S,
                                MIRROR_READY_TIMEOUT_MS, error))
        {
          g_prefix_error (error, "disk %s: ", disk->name);
          return FALSE;
        }
      vms_progress_event (migrate->progress, "mirror", NULL,
                          "%s: every guest write now reaches %s", disk->name,
                          export_name);
    }
  return TRUE;
}

gboolean
vms_migration_mirror_check (VmsMigration *migrate, GError **error)
{
  VmsJob *job = migrate->rep.job;

  if (migrate->mode != VMS_MIGRATE_FINAL_MIRROR)
    return TRUE;
  for (guint i = 0; i < job->disks->len; i++)
    {
      g_autofree char *id = mirror_job_id (job, job->disks->pdata[i]);

      if (!vms_mirror_check (migrate->rep.qmp, id, error))
        return FALSE;
    }
  return TRUE;
}

gboolean
vms_migration_mirror_stop (VmsMigration *migrate, GError **error)
{
  VmsJob *job = migrate->rep.job;
  gboolean ok = TRUE;

  for (guint i = 0; i < job->disks->len; i++)
    {
      VmsJobDisk *disk = job->disks->pdata[i];
      g_autofree char *id = mirror_job_id (job, disk);
      g_autofree char *node = mirror_node (job, disk);
      g_autoptr (GError) stop_error = NULL;

      if (!vms_mirror_stop (migrate->rep.qmp, id, node, &stop_error))
        {
          ok = FALSE;
          if (error && !*error)
            g_propagate_error (error, g_steal_pointer (&stop_error));
        }
    }
  if (migrate->tls_object)
    {
      g_autoptr (JsonObject) arguments = json_object_new ();
      g_autoptr (JsonNode) reply = NULL;

      json_object_set_string_member (arguments, "id", migrate->tls_object);
      reply = vms_qmp_execute (migrate->rep.qmp, "object-del", arguments, NULL);
      g_clear_pointer (&migrate->tls_object, g_free);
    }
  return ok;
}

