/* vmshift: paths the user types, made absolute once, at option parsing.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * vmshift hands paths to other processes (QEMU, nbdkit, libvirtd) whose
 * working directory is not vmshift's, and keeps them in job files that a
 * later run in another directory reads.  So every path is resolved
 * against vmshift's working directory once, before it is stored or
 * passed on, and only absolute paths travel.  None of these functions
 * needs the file to exist; "." and ".." are removed, symlinks are kept.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* path made absolute against the current directory, or NULL for NULL
 * (caller frees). */
char *vms_path_absolute (const char *path);

/* A QMP address as vms_qmp_connect() takes it: qmp:PATH, unix:PATH and a
 * bare path get an absolute PATH; tcp:HOST:PORT and anything unparsable
 * are returned as they are.  NULL for NULL (caller frees). */
char *vms_path_absolute_qmp_address (const char *address);

/* A QEMU migration URI: unix:PATH gets an absolute PATH, other kinds
 * (tcp:, exec:, fd:) are returned as they are.  NULL for NULL (caller
 * frees). */
char *vms_path_absolute_migration_uri (const char *uri);

/* A sink URI (NBD): the values of socket=, tls-psk-file= and
 * tls-certificates= made absolute; the rest of the URI, escapes and all,
 * stays as typed.  NULL for NULL (caller frees). */
char *vms_path_absolute_sink_uri (const char *uri);

/* A libvirt connection URI: the values of socket=, pkipath=, keyfile=
 * and known_hosts= made absolute.  NULL for NULL (caller frees). */
char *vms_path_absolute_libvirt_uri (const char *uri);

/* Replace *path by vms_path_absolute_*(*path) (freeing the old string):
 * the shape option parsers use. */
void vms_path_make_absolute (char **path, char *(*absolute) (const char *));

G_END_DECLS
