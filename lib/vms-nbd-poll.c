/* vmshift: one poll(2) over several libnbd handles.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-nbd-poll.h"

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
