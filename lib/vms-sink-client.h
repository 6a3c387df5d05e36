/* vmshift: what every client of the sink needs: the URI of an export, and
 * the one-shot opens whose opening is the action (create, commit,
 * live-reset) or that only FLUSH.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>

#include "vms-sink-name.h"

G_BEGIN_DECLS

/* Whether sink_uri can name a sink: an nbd://, nbds:// URI with a host,
 * or an nbd+unix://, nbds+unix:// one with ?socket=PATH.  Checked before
 * anything is done, so that a typo is a usage error; a refusal is
 * G_OPTION_ERROR_BAD_VALUE naming --sink. */
gboolean vms_sink_client_check_uri (const char *sink_uri, GError **error);

/* sink_uri (nbd://, nbds://, nbd+unix:// or nbds+unix://, whose query,
 * e.g. ?socket=...&tls-psk-file=..., is kept) with its path replaced by
 * export_name, escaped where a URI path needs it.  Errors are
 * G_URI_ERROR's.  Caller frees. */
char *vms_sink_client_uri (const char *sink_uri, const char *export_name,
                           GError **error);

/* The URI of kind's export of replica (see vms_sink_name_build for
 * replica and create_size).  Caller frees. */
char *vms_sink_client_export_uri (const char *sink_uri, VmsSinkNameKind kind,
                                  const char *replica, guint64 create_size,
                                  GError **error);

/* The URI of the sink's probe export, which discards writes.  Caller
 * frees. */
char *vms_sink_client_probe_uri (const char *sink_uri, GError **error);

/* How long the one-shot opens below wait for the sink's connection and
 * handshake unless told (a silent peer is not waited for forever). */
#define VMS_SINK_CLIENT_TIMEOUT_MS 60000

/* Connect to kind's export of replica, FLUSH it if flush, and disconnect.
 * A sink that cannot be reached or refuses gives VMS_COPY_ERROR_CONNECT
 * (lib/vms-copy.h), so that vmshift exits as for any unreachable
 * endpoint. */
gboolean vms_sink_client_open (const char *sink_uri, VmsSinkNameKind kind,
                               const char *replica, guint64 create_size,
                               gboolean flush, GError **error);

/* The same, the connection and handshake within timeout_ms
 * (VMS_COPY_ERROR_TIMEOUT after that) and stopped by cancellable
 * (VMS_COPY_ERROR_STOPPED; NULL: never). */
gboolean vms_sink_client_open_full (const char *sink_uri, VmsSinkNameKind kind,
                                    const char *replica, guint64 create_size,
                                    gboolean flush, guint timeout_ms,
                                    GCancellable *cancellable, GError **error);

/* Where replica's data is on the sink's host (a file or a device),
 * from its export's description; NULL without an error for a sink that
 * does not say (an older one).  Caller frees. */
char *vms_sink_client_where (const char *sink_uri, const char *replica,
                             GError **error);

/* Make sure replica exists with size bytes: the sink creates it if
 * missing and refuses it if it exists with another size.  timeout_ms and
 * cancellable as for vms_sink_client_open_full. */
gboolean vms_sink_client_create (const char *sink_uri, const char *replica,
                                 guint64 size, guint timeout_ms,
                                 GCancellable *cancellable, GError **error);

/* Make what was written to replica durable. */
gboolean vms_sink_client_flush (const char *sink_uri, const char *replica,
                                GError **error);

/* Make replica durable and mark it complete, which only this does (see
 * vmshift-sink list). */
gboolean vms_sink_client_commit (const char *sink_uri, const char *replica,
                                 GError **error);

/* Forget the ranges replica@live wrote: from now on plain writes to
 * replica land everywhere (a mirror was stopped, or its destination took
 * over). */
gboolean vms_sink_client_live_reset (const char *sink_uri, const char *replica,
                                     GError **error);

/* The switchover of a mirror, prepared: one connection per replica to
 * its @handover export, opened while the VM runs, so that the pause holds
 * one round trip, for all replicas at once. */
typedef struct _VmsSinkHandover VmsSinkHandover;

/* Connect to NAME@handover for every replica in replicas (NULL-ended).
 * A sink without @handover (an older vmshift-sink) refuses the name:
 * VMS_COPY_ERROR_CONNECT, and the caller goes the long way. */
VmsSinkHandover *vms_sink_handover_open (const char *sink_uri,
                                         const char *const *replicas,
                                         GError **error);
/* FLUSH on every connection at once, and wait up to timeout_ms for all:
 * every replica is durable and forgets what @live wrote. */
gboolean vms_sink_handover_run (VmsSinkHandover *handover, guint timeout_ms,
                                GError **error);
void vms_sink_handover_free (VmsSinkHandover *handover);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsSinkHandover, vms_sink_handover_free)

G_END_DECLS
