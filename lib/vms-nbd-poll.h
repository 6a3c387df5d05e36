/* vmshift: one poll(2) over several libnbd handles driven with the aio
 * API, shared by the copy engine and the link probe.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>
#include <libnbd.h>

G_BEGIN_DECLS

/* Wait up to timeout_ms until one of the n handles can make progress and
 * let libnbd make it.  Handles without a socket are skipped.  Returns the
 * number of ready handles, 0 on timeout or EINTR, -1 on a poll error. */
int vms_nbd_poll (struct nbd_handle *const *handles, guint n, int timeout_ms);

G_END_DECLS
