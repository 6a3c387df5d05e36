/* vmshift lib: where a QEMU migration URI sends memory.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-memory-uri.h"

#include <gio/gio.h>

char *
vms_memory_uri_tcp_host (const char *uri)
{
  const char *rest, *end;

  if (!uri || !g_str_has_prefix (uri, "tcp:"))
    return NULL;
  rest = uri + strlen ("tcp:");
  /* QEMU writes an IPv6 address in brackets, as in a URL. */
  if (rest[0] == '[')
    {
      end = strchr (rest, ']');
      return end && end[1] == ':' ? g_strndup (rest + 1, end - rest - 1) : NULL;
    }
  end = strrchr (rest, ':');
  if (!end || end == rest || memchr (rest, ':', end - rest))
    return NULL;
  return g_strndup (rest, end - rest);
}

gboolean
vms_memory_uri_is_loopback (const char *uri)
{
  g_autofree char *host = NULL;
  g_autoptr (GInetAddress) address = NULL;

  if (uri && g_str_has_prefix (uri, "unix:"))
    return TRUE;
  host = vms_memory_uri_tcp_host (uri);
  if (!host)
    return FALSE;
  /* Other names are not looked up: what they resolve to can change
   * between this check and QEMU's connect. */
  if (g_ascii_strcasecmp (host, "localhost") == 0)
    return TRUE;
  address = g_inet_address_new_from_string (host);
  return address && g_inet_address_get_is_loopback (address);
}
