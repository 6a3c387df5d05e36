/* vmshift: measure the link to a sink.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-probe.h"
#include "vms-copy.h"
#include "vms-nbd-poll.h"

#include <libnbd.h>

/* The probe export is 1 TiB; writes wrap around well inside it. */
#define PROBE_SPAN (G_GUINT64_CONSTANT (1) << 30)
/* In-flight requests get this long to finish after the measured time. */
#define DRAIN_TIMEOUT_US (30 * G_USEC_PER_SEC)

typedef struct
{
  guint64 acknowledged; /* bytes the sink acknowledged */
  gint64 last_ack;      /* monotonic time of the latest */
  gboolean failed;      /* a write failed */
  int error;            /* its errno */
} Tally;

typedef struct
{
  Tally *tally;
  guint32 size;
} Pending;

static int
on_done (void *user_data, int *error)
{
  Pending *pending = user_data;

  if (*error)
    {
      pending->tally->failed = TRUE;
      pending->tally->error = *error;
    }
  else
    {
      pending->tally->acknowledged += pending->size;
      pending->tally->last_ack = g_get_monotonic_time ();
    }
  return 1; /* retire the command */
}

static struct nbd_handle *
open_handle (const char *uri, GError **error)
{
  struct nbd_handle *nbd = nbd_create ();

  if (!nbd)
    {
      g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_CONNECT, "%s",
                   nbd_get_error ());
      return NULL;
    }
  nbd_set_uri_allow_local_file (nbd, true);
  if (nbd_connect_uri (nbd, uri) < 0)
    {
      g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_CONNECT,
                   "probe %s: %s", uri, nbd_get_error ());
      nbd_close (nbd);
      return NULL;
    }
  return nbd;
}

static void
close_handles (struct nbd_handle **handles, guint n)
{
  for (guint i = 0; i < n; i++)
    if (handles[i])
      {
        nbd_shutdown (handles[i], 0);
        nbd_close (handles[i]);
      }
}

gboolean
vms_probe_throughput (const char *uri, guint connections, guint32 request_size,
                      double seconds, VmsProbeResult *result, GError **error)
{
  g_autofree struct nbd_handle **handles = NULL;
  g_autofree guint8 *buffer = NULL;
  g_autofree Pending *pending = NULL;
  Tally tally = { 0 };
  guint64 offset = 0;
  gint64 start, stop_issuing, deadline;
  gboolean ok = FALSE;

  if (connections == 0 || request_size == 0 || seconds <= 0
      || request_size > PROBE_SPAN)
    {
      g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_INVALID,
                   "probe: connections, request size and time must be "
                   "positive");
      return FALSE;
    }
  handles = g_new0 (struct nbd_handle *, connections);
  for (guint i = 0; i < connections; i++)
    if (!(handles[i] = open_handle (uri, error)))
      goto out;
  /* Incompressible bytes, in case something on the path compresses. */
  buffer = g_malloc (request_size);
  for (guint32 i = 0; i < request_size; i++)
    buffer[i] = (guint8)g_random_int ();
  pending = g_new (Pending, 1);
  pending->tally = &tally;
  pending->size = request_size;

  start = g_get_monotonic_time ();
  tally.last_ack = start;
  stop_issuing = start + (gint64)(seconds * G_USEC_PER_SEC);
  deadline = stop_issuing + DRAIN_TIMEOUT_US;
  for (;;)
    {
      gint64 now = g_get_monotonic_time ();
      guint in_flight = 0;

      for (guint i = 0; i < connections; i++)
        {
          while (now < stop_issuing
                 && nbd_aio_in_flight (handles[i]) < VMS_PROBE_QUEUE_DEPTH)
            {
              nbd_completion_callback done
                  = { .callback = on_done, .user_data = pending };

              if (nbd_aio_pwrite (handles[i], buffer, request_size, offset,
                                  done, 0)
                  < 0)
                {
                  g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_DEST,
                               "probe %s: %s", uri, nbd_get_error ());
                  goto out;
                }
              offset += request_size;
              if (offset + request_size > PROBE_SPAN)
                offset = 0;
            }
          in_flight += nbd_aio_in_flight (handles[i]);
        }
      if (tally.failed)
        {
          g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_DEST,
                       "probe %s: write failed: %s", uri,
                       g_strerror (tally.error));
          goto out;
        }
      if (now >= stop_issuing && in_flight == 0)
        break;
      if (now > deadline)
        {
          g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_TIMEOUT,
                       "probe %s: writes unanswered for %d s", uri,
                       (int)(DRAIN_TIMEOUT_US / G_USEC_PER_SEC));
          goto out;
        }
      if (vms_nbd_poll (handles, connections, 100) < 0)
        {
          g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_DEST,
                       "probe %s: poll failed", uri);
          goto out;
        }
    }
  result->connections = connections;
  result->request_size = request_size;
  result->bytes = tally.acknowledged;
  result->seconds = (tally.last_ack - start) / 1e6;
  result->throughput
      = result->seconds > 0 ? tally.acknowledged / result->seconds : 0;
  ok = TRUE;

out:
  close_handles (handles, connections);
  return ok;
}

static int
compare_doubles (gconstpointer a, gconstpointer b, gpointer unused)
{
  double x = *(const double *)a, y = *(const double *)b;

  return x < y ? -1 : x > y ? 1 : 0;
}

gboolean
vms_probe_rtt (const char *uri, guint samples, double *rtt_s, GError **error)
{
  struct nbd_handle *nbd = open_handle (uri, error);
  g_autofree double *times = g_new (double, MAX (samples, 1));
  char block[512];

  if (!nbd)
    return FALSE;
  for (guint i = 0; i < samples; i++)
    {
      gint64 before = g_get_monotonic_time ();

      if (nbd_pread (nbd, block, sizeof block, 0, 0) < 0)
        {
          g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_SOURCE,
                       "probe %s: %s", uri, nbd_get_error ());
          close_handles (&nbd, 1);
          return FALSE;
        }
      times[i] = (g_get_monotonic_time () - before) / 1e6;
    }
  close_handles (&nbd, 1);
  g_qsort_with_data (times, samples, sizeof *times, compare_doubles, NULL);
  *rtt_s = samples ? times[samples / 2] : 0;
  return TRUE;
}
