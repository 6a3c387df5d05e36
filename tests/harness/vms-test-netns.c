/* vmshift test harness: two "hosts" as network namespaces joined by veth.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-test-netns.h"
#include "vms-test.h"

#include <signal.h>
#include <unistd.h>

static gboolean
run_in (VmsTestHosts *hosts, int host, GError **error, const char *first,
        ...) G_GNUC_NULL_TERMINATED;

/* Run a command, inside host's namespace when host >= 0.  nsenter is used
 * rather than "ip -n" or "ip netns exec", which remount /sys and fail in
 * a chroot or a container. */
static gboolean
run_in (VmsTestHosts *hosts, int host, GError **error, const char *first, ...)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  va_list args;

  if (host >= 0)
    {
      g_ptr_array_add (argv, g_strdup ("nsenter"));
      g_ptr_array_add (argv, g_strdup_printf ("--net=/run/netns/%s",
                                              hosts->namespace[host]));
      g_ptr_array_add (argv, g_strdup ("--"));
    }
  va_start (args, first);
  for (const char *arg = first; arg; arg = va_arg (args, const char *))
    g_ptr_array_add (argv, g_strdup (arg));
  va_end (args);
  g_ptr_array_add (argv, NULL);
  return vms_test_run ((const char *const *) argv->pdata, NULL, error);
}

static gboolean
setup_host (VmsTestHosts *hosts, guint host, GError **error)
{
  g_autofree char *cidr = g_strdup_printf ("%s/30", hosts->address[host]);

  return run_in (hosts, host, error, "ip", "link", "set", "lo", "up", NULL)
         && run_in (hosts, host, error, "ip", "addr", "add", cidr, "dev",
                    hosts->device[host], NULL)
         && run_in (hosts, host, error, "ip", "link", "set",
                    hosts->device[host], "up", NULL);
}

VmsTestHosts *
vms_test_hosts_new (GError **error)
{
  g_autoptr (VmsTestHosts) hosts = g_new0 (VmsTestHosts, 1);
  static guint counter;
  guint id = ++counter;

  /* Names unique per process and call, so parallel tests do not collide;
   * veth names must stay within 15 characters. */
  for (guint host = 0; host < 2; host++)
    {
      hosts->namespace[host] = g_strdup_printf ("vms-%d-%u-%c", (int) getpid (),
                                                id, 'a' + host);
      hosts->device[host] = g_strdup_printf ("vms%x%u%c",
                                             (unsigned) getpid () & 0xfffff,
                                             id % 10, 'a' + host);
    }
  hosts->address[0] = g_strdup (VMS_TEST_HOST_A_ADDRESS);
  hosts->address[1] = g_strdup (VMS_TEST_HOST_B_ADDRESS);

  for (guint host = 0; host < 2; host++)
    if (!run_in (hosts, -1, error, "ip", "netns", "add",
                 hosts->namespace[host], NULL))
      return NULL;
  if (!run_in (hosts, -1, error, "ip", "link", "add", hosts->device[0],
               "netns", hosts->namespace[0], "type", "veth", "peer", "name",
               hosts->device[1], "netns", hosts->namespace[1], NULL))
    return NULL;
  for (guint host = 0; host < 2; host++)
    if (!setup_host (hosts, host, error))
      return NULL;
  return g_steal_pointer (&hosts);
}

gboolean
vms_test_hosts_set_link (VmsTestHosts *hosts, guint host, gboolean up,
                         GError **error)
{
  g_return_val_if_fail (host < 2, FALSE);
  return run_in (hosts, host, error, "ip", "link", "set",
                 hosts->device[host], up ? "up" : "down", NULL);
}

gboolean
vms_test_hosts_limit_rate (VmsTestHosts *hosts, guint host, guint rate_kbit,
                           GError **error)
{
  g_autofree char *rate = g_strdup_printf ("%ukbit", rate_kbit);

  g_return_val_if_fail (host < 2, FALSE);
  return run_in (hosts, host, error, "tc", "qdisc", "replace", "dev",
                 hosts->device[host], "root", "tbf", "rate", rate, "burst",
                 "32kbit", "latency", "400ms", NULL);
}

#define FAULT_TABLE "vmsfault"

/* Only inbound: the resets the host sends back (nft's, and those of ss -K)
 * go out with the port as source, and must not be caught themselves. */
static gboolean
add_reset_rules (VmsTestHosts *hosts, guint host, const char *port,
                 GError **error)
{
  return run_in (hosts, host, error, "nft", "add", "table", "inet", FAULT_TABLE,
                 NULL)
         && run_in (hosts, host, error, "nft", "add", "chain", "inet",
                    FAULT_TABLE, "in", "{", "type", "filter", "hook", "input",
                    "priority", "0", ";", "}", NULL)
         && run_in (hosts, host, error, "nft", "add", "rule", "inet",
                    FAULT_TABLE, "in", "tcp", "dport", port, "reject", "with",
                    "tcp", "reset", NULL);
}

gboolean
vms_test_hosts_reset_tcp (VmsTestHosts *hosts, guint host, guint port,
                          gboolean on, GError **error)
{
  g_autofree char *port_text = g_strdup_printf ("%u", port);
  g_autofree char *filter_port = g_strdup_printf (":%u", port);

  g_return_val_if_fail (host < 2, FALSE);
  if (!on)
    return run_in (hosts, host, error, "nft", "delete", "table", "inet",
                   FAULT_TABLE, NULL);
  /* The rules first, so that nothing reconnects in between. */
  return add_reset_rules (hosts, host, port_text, error)
         && run_in (hosts, host, error, "ss", "-K", "-t", "state",
                    "established", "(", "sport", "=", filter_port, ")", NULL);
}

char **
vms_test_hosts_wrap_argv (VmsTestHosts *hosts, guint host,
                          const char *const *program_argv)
{
  GPtrArray *argv = g_ptr_array_new ();

  g_ptr_array_add (argv, g_strdup ("nsenter"));
  g_ptr_array_add (argv, g_strdup_printf ("--net=/run/netns/%s",
                                          hosts->namespace[host]));
  g_ptr_array_add (argv, g_strdup ("--"));
  for (const char *const *arg = program_argv; *arg; arg++)
    g_ptr_array_add (argv, g_strdup (*arg));
  g_ptr_array_add (argv, NULL);
  return (char **) g_ptr_array_free (argv, FALSE);
}

/* Processes still inside a namespace would keep it alive after deletion. */
static void
kill_namespace_processes (const char *ns)
{
  g_autofree char *pids = NULL;
  g_auto (GStrv) lines = NULL;
  const char *argv[] = { "ip", "netns", "pids", ns, NULL };

  if (!vms_test_run (argv, &pids, NULL))
    return;
  lines = g_strsplit (pids, "\n", -1);
  for (guint i = 0; lines[i]; i++)
    {
      gint64 pid = g_ascii_strtoll (lines[i], NULL, 10);

      if (pid > 1 && pid != getpid ())
        kill ((pid_t) pid, SIGKILL);
    }
}

void
vms_test_hosts_free (VmsTestHosts *hosts)
{
  if (!hosts)
    return;
  for (guint host = 0; host < 2; host++)
    {
      if (!hosts->namespace[host])
        continue;
      kill_namespace_processes (hosts->namespace[host]);
      /* Deleting a namespace also deletes the veth end inside it. */
      run_in (hosts, -1, NULL, "ip", "netns", "delete",
              hosts->namespace[host], NULL);
      g_free (hosts->namespace[host]);
      g_free (hosts->device[host]);
      g_free (hosts->address[host]);
    }
  g_free (hosts);
}
