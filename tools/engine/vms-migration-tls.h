/* vmshift engine: the TLS credentials QEMU uses for the sink (the live
 * mirror's NBD client) and for memory (--tls), all from the key file or
 * certificate directory the sink URI names.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "vms-migration-backend.h"
#include "vms-tls.h"

G_BEGIN_DECLS

/* The credentials the sink URI's tls-psk-file= or tls-certificates=
 * names, as QEMU reads them (a directory); purpose says what needs them,
 * for the messages.  creds->dir and creds->username point into *dir and
 * *user (caller frees both). */
gboolean vms_migration_sink_tls_creds (VmsMigration *migration,
                                       const char *purpose, VmsTlsCreds *creds,
                                       char **dir, char **user, GError **error);

/* The name QEMU checks the sink's X.509 certificate against (the same
 * certificate serves the destination QEMU's memory): the sink URI's
 * tls-hostname=, else "localhost" for a unix_socket, where QEMU has no
 * host name to take from the address, and NULL over TCP (QEMU checks
 * the address's host).  *hostname is NULL too with PSK or no TLS, where
 * no name is checked; caller frees. */
gboolean vms_migration_sink_tls_hostname (VmsMigration *migration,
                                          gboolean unix_socket, char **hostname,
                                          GError **error);

/* With --tls: server credentials in the destination QEMU and client ones
 * in the source, both named *id (caller frees), for the migration
 * parameter tls-creds; without it *id is NULL. */
gboolean vms_migration_memory_tls (VmsMigration *migration, VmsQmp *dest,
                                   char **id, GError **error);

/* After a cancelled migration the source QEMU, after a completed one the
 * destination, runs the VM on: qmp (who names it) is left without
 * vmshift's memory credentials or a tls-creds naming them (a later
 * migration by other hands would otherwise use TLS unasked).  Failures
 * are warnings: the rollback or the commit goes on. */
void vms_migration_memory_tls_forget (VmsMigration *migration, VmsQmp *qmp,
                                      const char *who);

G_END_DECLS
