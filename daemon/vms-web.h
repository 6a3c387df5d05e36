/* vmshiftd: the web dashboard.  Its page, script and style sheet are
 * compiled into vmshiftd (a GResource), so the binary needs no install
 * path, and served without the token: they hold nothing secret, and the
 * page asks for the token, which the API under /api/v1 still requires.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <libsoup/soup.h>

G_BEGIN_DECLS

typedef struct _VmsWeb VmsWeb;

/* GET / (the page) and GET /static/NAME (its files) on server; every
 * other path outside /api/v1 is 404. */
VmsWeb *vms_web_new (SoupServer *server);
void vms_web_free (VmsWeb *web);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsWeb, vms_web_free)

G_END_DECLS
