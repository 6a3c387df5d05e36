/* vmshift lib: where a QEMU migration URI (--dest-uri) sends memory, and
 * whether that stays on this host.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* TRUE when memory sent to uri cannot leave this host: unix:PATH, or
 * tcp: to localhost or a loopback address.  Anything else (another host,
 * a host name, exec:, fd:, rdma:) may cross a network, where a guest's
 * RAM in clear text can be read by anyone on the path. */
gboolean vms_memory_uri_is_loopback (const char *uri);

/* The host of a tcp: URI ("tcp:HOST:PORT", "tcp:[V6]:PORT"), or NULL for
 * other schemes or a malformed one; caller frees. */
char *vms_memory_uri_tcp_host (const char *uri);

G_END_DECLS
