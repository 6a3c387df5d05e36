/* vmshift qemu-filter: TLS credentials in QEMU: for its NBD client, so
 * that the live mirror can reach a sink over nbds://, and for both ends of
 * its memory migration.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

#include "vms-qmp.h"

G_BEGIN_DECLS

typedef enum
{
  VMS_TLS_PSK,  /* tls-creds-psk: a pre-shared key */
  VMS_TLS_X509, /* tls-creds-x509: certificates */
} VmsTlsKind;

typedef enum
{
  VMS_TLS_CLIENT, /* connects: the mirror's NBD client, a migration source */
  VMS_TLS_SERVER, /* accepts: a migration destination */
} VmsTlsEndpoint;

typedef struct
{
  VmsTlsKind kind;         /* which kind of credentials */
  const char *dir;         /* PSK: the directory holding keys.psk; X.509: the
                              one holding ca-cert.pem (and client-cert.pem,
                              client-key.pem when the server checks clients) */
  const char *username;    /* PSK identity in keys.psk; NULL: QEMU's "qemu".
                              Unused for X.509 and by a server */
  VmsTlsEndpoint endpoint; /* which end of the connection QEMU is */
} VmsTlsCreds;

/* object-add credentials named id, which blockdev-add's or the migration
 * parameters' tls-creds then names.  An X.509 server does not ask for
 * client certificates: as the sink, it leaves checking to the client.  QEMU
 * reads the files at once, so a wrong dir fails here with QEMU's message.  An
 * object id that QEMU already has with the same settings (left by an earlier
 * attempt) is success; one with other settings is replaced unless something
 * still uses it. */
gboolean vms_tls_add (VmsQmp *qmp, const char *id, const VmsTlsCreds *creds,
                      GError **error);

/* object-del id; an id QEMU does not have is success. */
gboolean vms_tls_remove (VmsQmp *qmp, const char *id, GError **error);

G_END_DECLS
