/* vmshift qemu-filter: the active mirror that writes every guest write to
 * the sink's live export before the guest sees it complete.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

#include "vms-qmp.h"

G_BEGIN_DECLS

/* Where the mirror writes: an NBD export on a unix socket or TCP. */
typedef struct
{
  const char *socket_path;  /* unix socket, or NULL for TCP */
  const char *host;         /* TCP host */
  const char *port;         /* TCP port, e.g. "10809" */
  const char *tls_creds;    /* id of a tls-creds object, or NULL */
  const char *tls_hostname; /* the name the server's X.509 certificate
                               must hold, or NULL: the host (QEMU has
                               none for a unix socket) */
  const char *export_name;  /* e.g. "web1-vd0@live" */
} VmsMirrorTarget;

/* blockdev-add an NBD node named target_node (reconnect-delay seconds of
 * patience for a broken connection), then blockdev-mirror node to it with
 * sync=none copy-mode=write-blocking as block job job_id, and wait up to
 * timeout_ms for the job to be ready.  On failure nothing is left behind. */
gboolean vms_mirror_start (VmsQmp *qmp, const char *node,
                           const VmsMirrorTarget *target, const char *job_id,
                           const char *target_node, guint reconnect_delay_s,
                           guint timeout_ms, GError **error);

/* The mirror job job_id still runs and is ready: FALSE with a message
 * saying what became of it otherwise (a failed NBD target ends it). */
gboolean vms_mirror_check (VmsQmp *qmp, const char *job_id, GError **error);

/* Cancel job job_id if it exists, wait until it is gone, and delete
 * target_node if it exists.  Nothing to stop is success. */
gboolean vms_mirror_stop (VmsQmp *qmp, const char *job_id,
                          const char *target_node, GError **error);

G_END_DECLS
