/* vmshift test harness: two "hosts" as network namespaces joined by veth.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

/* Test hosts live only inside namespaces this process made, so their
 * addresses reach nothing else. */
#define VMS_TEST_HOST_A_ADDRESS "10.231.0.1"
#define VMS_TEST_HOST_B_ADDRESS "10.231.0.2"

typedef struct
{
  char *namespace[2]; /* network namespace names, host A and host B */
  char *device[2];    /* the veth end inside each namespace */
  char *address[2];   /* IPv4 address of each host */
} VmsTestHosts;

/* Make both namespaces, a veth pair between them, addresses and loopback.
 * Needs root and iproute2: callers check vms_test_is_root() first. */
VmsTestHosts *vms_test_hosts_new (GError **error);

/* Bring host's end of the link down or up (host is 0 or 1). */
gboolean vms_test_hosts_set_link (VmsTestHosts *hosts, guint host,
                                  gboolean up, GError **error);

/* Shape the link from host with a token bucket (tbf), in kbit/s. */
gboolean vms_test_hosts_limit_rate (VmsTestHosts *hosts, guint host,
                                    guint rate_kbit, GError **error);

/* Break TCP on port at host for real: from now on host answers every
 * segment to or from port with a reset (nft "reject with tcp reset"), and
 * its established connections on port are killed (ss -K), which resets
 * the peer's end too.  A link taken down is survived by TCP; this is not.
 * on FALSE lets connections through again.  Needs nftables and ss. */
gboolean vms_test_hosts_reset_tcp (VmsTestHosts *hosts, guint host, guint port,
                                   gboolean on, GError **error);

/* argv that runs program_argv inside host's namespace (caller frees). */
char **vms_test_hosts_wrap_argv (VmsTestHosts *hosts, guint host,
                                 const char *const *program_argv);

/* Kill every process left in the namespaces and delete them. */
void vms_test_hosts_free (VmsTestHosts *hosts);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsTestHosts, vms_test_hosts_free)
