/* vmshift: one poll(2) over several libnbd handles driven with the aio
 * API, shared by the copy engine and the link probe.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>
#include <libnbd.h>

G_BEGIN_DECLS

/* Wait up to timeout_ms until one of the n handles can make progress and
 * let libnbd make it.  Handles without a socket are skipped.  Returns the
 * number of ready handles, 0 on timeout or EINTR, -1 on a poll error. */
int vms_nbd_poll (struct nbd_handle *const *handles, guint n, int timeout_ms);

/* Drive nbd's connection and handshake (after nbd_aio_connect*) until it
 * is ready, for at most timeout_ms, and stop when cancellable is
 * cancelled: a peer that accepts the connection and never speaks NBD
 * would otherwise hold the caller for good.  Errors are VMS_COPY_ERROR's
 * (TIMEOUT, STOPPED, or CONNECT with libnbd's reason), named by what. */
gboolean vms_nbd_wait_connected (struct nbd_handle *nbd, const char *what,
                                 guint timeout_ms, GCancellable *cancellable,
                                 GError **error);

G_END_DECLS
