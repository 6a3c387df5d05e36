/* vmshift: one poll(2) over several libnbd handles.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-nbd-poll.h"
#include "vms-copy.h"

#include <errno.h>
#include <poll.h>

int
vms_nbd_poll (struct nbd_handle *const *handles, guint n, int timeout_ms)
{
  g_autofree struct pollfd *fds = g_new0 (struct pollfd, MAX (n, 1));
  g_autofree struct nbd_handle **polled
      = g_new0 (struct nbd_handle *, MAX (n, 1));
  guint count = 0;
  int ready;

  for (guint i = 0; i < n; i++)
    {
      unsigned direction = nbd_aio_get_direction (handles[i]);
      int fd = nbd_aio_get_fd (handles[i]);

      if (fd < 0)
        continue;
      polled[count] = handles[i];
      fds[count].fd = fd;
      fds[count].events
          = ((direction & LIBNBD_AIO_DIRECTION_READ) ? POLLIN : 0)
            | ((direction & LIBNBD_AIO_DIRECTION_WRITE) ? POLLOUT : 0);
      count++;
    }
  ready = poll (fds, count, timeout_ms);
  if (ready < 0)
    return errno == EINTR ? 0 : -1;
  for (guint i = 0; i < count; i++)
    {
      if (fds[i].revents & (POLLIN | POLLHUP | POLLERR))
        nbd_aio_notify_read (polled[i]);
      else if (fds[i].revents & POLLOUT)
        nbd_aio_notify_write (polled[i]);
    }
  return ready;
}

/* Longest wait in poll(2), so that a cancel is seen this soon. */
#define CONNECT_POLL_MS 100

gboolean
vms_nbd_wait_connected (struct nbd_handle *nbd, const char *what,
                        guint timeout_ms, GCancellable *cancellable,
                        GError **error)
{
  gint64 deadline = g_get_monotonic_time () + timeout_ms * (gint64)1000;

  while (nbd_aio_is_connecting (nbd))
    {
      gint64 left = deadline - g_get_monotonic_time ();

      if (g_cancellable_is_cancelled (cancellable))
        {
          g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_STOPPED,
                       "%s: stopped on request while connecting", what);
          return FALSE;
        }
      if (left <= 0)
        {
          g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_TIMEOUT,
                       "%s: no NBD answer within %u ms (is it an NBD "
                       "server?)",
                       what, timeout_ms);
          return FALSE;
        }
      if (nbd_aio_get_fd (nbd) < 0
          || vms_nbd_poll (&nbd, 1, MIN (left / 1000 + 1, CONNECT_POLL_MS)) < 0)
        break;
    }
  if (!nbd_aio_is_ready (nbd))
    {
      g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_CONNECT, "%s: %s",
                   what,
                   nbd_get_error () ? nbd_get_error () : "connection failed");
      return FALSE;
    }
  return TRUE;
}
