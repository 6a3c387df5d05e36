/* vmshift: how well and how fast zstd compresses a sample of data.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-zstd-probe.h"

#include <time.h>
#include <zstd.h>

/* The thread's CPU time: the probe runs beside the guest and vmshift's
 * other work, and a compression thread of QEMU would have its own CPU. */
static double
thread_seconds (void)
{
  struct timespec now;

  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &now);
  return now.tv_sec + now.tv_nsec / 1e9;
}

gboolean
vms_zstd_probe_add (VmsZstdProbe *probe, const guint8 *data, gsize length,
                    GError **error)
{
  gsize bound = ZSTD_compressBound (VMS_ZSTD_PROBE_PACKET);
  g_autofree guint8 *out = g_malloc (bound);
  ZSTD_CCtx *cctx = ZSTD_createCCtx ();
  double start;

  if (!cctx)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                           "zstd: cannot create a compression context");
      return FALSE;
    }
  start = thread_seconds ();
  for (gsize at = 0; at < length; at += VMS_ZSTD_PROBE_PACKET)
    {
      gsize n = MIN (VMS_ZSTD_PROBE_PACKET, length - at);
      size_t size = ZSTD_compressCCtx (cctx, out, bound, data + at, n,
                                       VMS_ZSTD_PROBE_LEVEL);

      if (ZSTD_isError (size))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "zstd: %s",
                       ZSTD_getErrorName (size));
          ZSTD_freeCCtx (cctx);
          return FALSE;
        }
      probe->input += n;
      probe->output += size;
    }
  probe->seconds += thread_seconds () - start;
  ZSTD_freeCCtx (cctx);
  return TRUE;
}

double
vms_zstd_probe_ratio (const VmsZstdProbe *probe)
{
  return probe->input ? (double)probe->output / probe->input : 0;
}

double
vms_zstd_probe_rate (const VmsZstdProbe *probe)
{
  return probe->seconds > 0 ? probe->input / probe->seconds : 0;
}
