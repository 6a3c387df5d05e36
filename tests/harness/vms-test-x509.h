/* vmshift test harness: X.509 certificates made for a test with openssl.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

/* A new directory (caller frees the name and removes it with
 * vms_test_rmtree) laid out as nbdkit, QEMU and libvirt read it:
 * ca-cert.pem (a CA made for it), server-cert.pem and server-key.pem for
 * the subjectAltName entries names (e.g. "IP:127.0.0.1", "DNS:localhost"),
 * and client-cert.pem and client-key.pem for a client.  Each holds what
 * QEMU's sanity checks of X.509 credentials want (key usage, extended key
 * usage, a CA that is one).  Needs openssl: callers check
 * g_find_program_in_path ("openssl") first. */
char *vms_test_x509_make (const char *const *names, GError **error);
