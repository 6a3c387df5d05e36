/* vmshift qemu-filter: TLS credentials in QEMU.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-tls.h"
#include "vms-qemu-reply.h"

#define PSK_TYPE "tls-creds-psk"
#define X509_TYPE "tls-creds-x509"

/* The identity QEMU uses when tls-creds-psk has no username
 * (crypto/tlscredspsk.c); qom-get then answers "". */
#define DEFAULT_PSK_USERNAME "qemu"

static const char *
qom_type (VmsTlsKind kind)
{
  return kind == VMS_TLS_PSK ? PSK_TYPE : X509_TYPE;
}

static const char *
endpoint_name (VmsTlsEndpoint endpoint)
{
  return endpoint == VMS_TLS_SERVER ? "server" : "client";
}

static gboolean
object_add (VmsQmp *qmp, const char *id, const VmsTlsCreds *creds,
            GError **error)
{
  g_autoptr (JsonObject) arguments = json_object_new ();
  g_autoptr (JsonNode) reply = NULL;

  json_object_set_string_member (arguments, "qom-type", qom_type (creds->kind));
  json_object_set_string_member (arguments, "id", id);
  json_object_set_string_member (arguments, "endpoint",
                                 endpoint_name (creds->endpoint));
  json_object_set_string_member (arguments, "dir", creds->dir);
  /* QEMU's X.509 server wants client certificates by default; the sink's
   * keys have none. */
  if (creds->kind == VMS_TLS_X509 && creds->endpoint == VMS_TLS_SERVER)
    json_object_set_boolean_member (arguments, "verify-peer", FALSE);
  if (creds->kind == VMS_TLS_PSK && creds->username
      && creds->endpoint == VMS_TLS_CLIENT)
    json_object_set_string_member (arguments, "username", creds->username);
  reply = vms_qmp_execute (qmp, "object-add", arguments, error);
  return reply != NULL;
}

/* Look object id up: *type receives its QOM type (caller frees), or NULL
 * when QEMU has no such object. */
static gboolean
find_object (VmsQmp *qmp, const char *id, char **type, GError **error)
{
  static const char command[] = "qom-list";
  g_autoptr (JsonObject) arguments = json_object_new ();
  g_autoptr (JsonNode) reply = NULL;
  JsonArray *children;

  *type = NULL;
  json_object_set_string_member (arguments, "path", "/objects");
  reply = vms_qmp_execute (qmp, command, arguments, error);
  if (!reply || !(children = vms_reply_array (reply, command, error)))
    return FALSE;
  for (guint i = 0; i < json_array_get_length (children); i++)
    {
      JsonObject *child = vms_reply_array_object (children, i, command, error);
      const char *name, *child_type;

      if (!child || !vms_reply_string (child, "name", command, &name, error)
          || !vms_reply_string (child, "type", command, &child_type, error))
        return FALSE;
      /* Objects are listed as child<TYPE> properties of /objects. */
      if (g_str_equal (name, id) && g_str_has_prefix (child_type, "child<")
          && g_str_has_suffix (child_type, ">"))
        {
          *type = g_strndup (child_type + 6, strlen (child_type) - 7);
          return TRUE;
        }
    }
  return TRUE;
}

/* qom-get of a string property of object id; caller frees. */
static char *
property (VmsQmp *qmp, const char *id, const char *name, GError **error)
{
  g_autoptr (JsonObject) arguments = json_object_new ();
  g_autofree char *path = g_strdup_printf ("/objects/%s", id);
  g_autoptr (JsonNode) reply = NULL;

  json_object_set_string_member (arguments, "path", path);
  json_object_set_string_member (arguments, "property", name);
  reply = vms_qmp_execute (qmp, "qom-get", arguments, error);
  if (!reply)
    return NULL;
  if (!JSON_NODE_HOLDS_VALUE (reply)
      || json_node_get_value_type (reply) != G_TYPE_STRING)
    {
      g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_PROTOCOL,
                   "qom-get %s %s: not a string", path, name);
      return NULL;
    }
  return json_node_dup_string (reply);
}

static const char *
psk_username (const char *username)
{
  return username && *username ? username : DEFAULT_PSK_USERNAME;
}

/* Whether object id, of creds' type, holds creds' settings. */
static gboolean
same_settings (VmsQmp *qmp, const char *id, const VmsTlsCreds *creds,
               gboolean *same, GError **error)
{
  g_autofree char *dir = property (qmp, id, "dir", error);
  g_autofree char *endpoint
      = dir ? property (qmp, id, "endpoint", error) : NULL;
  g_autofree char *username = NULL;

  *same = FALSE;
  if (!endpoint)
    return FALSE;
  if (creds->kind == VMS_TLS_PSK
      && !(username = property (qmp, id, "username", error)))
    return FALSE;
  *same = g_str_equal (dir, creds->dir)
          && g_str_equal (endpoint, endpoint_name (creds->endpoint))
          && (creds->kind != VMS_TLS_PSK || creds->endpoint == VMS_TLS_SERVER
              || g_str_equal (psk_username (username),
                              psk_username (creds->username)));
  return TRUE;
}

static gboolean
object_del (VmsQmp *qmp, const char *id, GError **error)
{
  g_autoptr (JsonObject) arguments = json_object_new ();
  g_autoptr (JsonNode) reply = NULL;

  json_object_set_string_member (arguments, "id", id);
  reply = vms_qmp_execute (qmp, "object-del", arguments, error);
  return reply != NULL;
}

/* object-add of id failed with add_error (taken): an object of that id
 * from an earlier attempt is as good, or is replaced; anything else is
 * QEMU's error. */
static gboolean
add_over_existing (VmsQmp *qmp, const char *id, const VmsTlsCreds *creds,
                   GError *add_error, GError **error)
{
  g_autoptr (GError) failure = add_error;
  g_autofree char *type = NULL;
  gboolean same = FALSE;

  /* QEMU's refusal of a taken id is a GenericError ("attempt to add
   * duplicate property"), like a bad dir: ask whether the id is taken. */
  if (!find_object (qmp, id, &type, error))
    return FALSE;
  if (!type)
    {
      g_propagate_error (error, g_steal_pointer (&failure));
      return FALSE;
    }
  if (!g_str_equal (type, PSK_TYPE) && !g_str_equal (type, X509_TYPE))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                   "QEMU already has an object %s of type %s; it is not "
                   "TLS credentials",
                   id, type);
      return FALSE;
    }
  if (g_str_equal (type, qom_type (creds->kind))
      && !same_settings (qmp, id, creds, &same, error))
    return FALSE;
  if (same)
    return TRUE;
  /* Other settings than this attempt's: replace them, which QEMU refuses
   * while an NBD node still uses them. */
  if (!object_del (qmp, id, error))
    {
      g_prefix_error (error,
                      "replacing the %s object of an earlier attempt: ", type);
      return FALSE;
    }
  return object_add (qmp, id, creds, error);
}

gboolean
vms_tls_add (VmsQmp *qmp, const char *id, const VmsTlsCreds *creds,
             GError **error)
{
  GError *add_error = NULL;

  if (object_add (qmp, id, creds, &add_error))
    return TRUE;
  if (!add_over_existing (qmp, id, creds, add_error, error))
    {
      g_prefix_error (error, "adding TLS credentials %s (%s): ", id,
                      creds->dir);
      return FALSE;
    }
  return TRUE;
}

gboolean
vms_tls_remove (VmsQmp *qmp, const char *id, GError **error)
{
  g_autoptr (GError) del_error = NULL;
  g_autofree char *type = NULL;

  if (object_del (qmp, id, &del_error))
    return TRUE;
  /* "object 'ID' not found" is a GenericError too: look rather than read. */
  if (find_object (qmp, id, &type, error) && !type)
    return TRUE;
  if (type)
    g_propagate_error (error, g_steal_pointer (&del_error));
  g_prefix_error (error, "removing TLS credentials %s: ", id);
  return FALSE;
}
