/* vmshift engine: a VM's RAM as QEMU would send it, from a sample.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-ram-sample.h"
#include "vms-copy.h"
#include "vms-guest.h"
#include "vms-zstd-probe.h"

/* RAM is sampled in this many chunks.  A guest's RAM mixes pages that
 * compress to nothing with pages that do not compress: over 40 samples of
 * a 256 MiB bench guest (estimate-accuracy's write30 workload, whose
 * RAM compressed whole to 31 %), 64 chunks of 64 KiB read 18-48 %
 * (standard deviation 7 points), enough to halve or double migrate's
 * cap of compressed RAM; 256 chunks read 23-39 % (3.5 points) in 0.55 s
 * of QMP under TCG, and 512 did not do much better. */
#define RAM_SAMPLES 256
#define RAM_SAMPLE_SIZE (64 * 1024)
#define PAGE_SIZE 4096
/* Below 1 MiB lie ROMs and device memory: not sampled. */
#define RAM_SAMPLE_START (1024 * 1024)
/* q35 and pc keep at least this much RAM below the 4 GiB hole. */
#define RAM_SAMPLE_LOW_LIMIT (G_GUINT64_CONSTANT (2) << 30)

/* How zstd compresses the pages that are not zero, the ones QEMU sends
 * whole.  Best effort, like the sample. */
static void
probe_compression (GByteArray *nonzero, VmsRamSample *out)
{
  VmsZstdProbe probe = { 0 };
  g_autoptr (GError) error = NULL;

  if (!nonzero->len)
    return;
  if (!vms_zstd_probe_add (&probe, nonzero->data, nonzero->len, &error))
    {
      g_warning ("sampling RAM: %s", error->message);
      return;
    }
  out->zstd_ratio = vms_zstd_probe_ratio (&probe);
  out->zstd_rate = vms_zstd_probe_rate (&probe);
}

gboolean
vms_ram_sample (VmsQmp *qmp, const char *scratch_path, VmsRamSample *out,
                GError **error)
{
  VmsGuestMemorySize memory;
  g_autoptr (GByteArray) nonzero = g_byte_array_new ();
  guint64 low, pages = 0, zero_pages = 0;

  *out = (VmsRamSample){ .nonzero = 1.0 };
  if (!vms_guest_query_memory_size (qmp, &memory, error))
    return FALSE;
  out->ram_size = memory.base_memory;
  low = MIN (out->ram_size, RAM_SAMPLE_LOW_LIMIT);
  if (low <= RAM_SAMPLE_START + RAM_SAMPLE_SIZE)
    return TRUE;
  for (guint i = 0; i < RAM_SAMPLES; i++)
    {
      g_autoptr (GBytes) sample = NULL;
      const guint8 *bytes;
      gsize length = 0;
      guint64 address
          = RAM_SAMPLE_START
            + (g_random_double () * (low - RAM_SAMPLE_START - RAM_SAMPLE_SIZE));

      address &= ~(guint64)(PAGE_SIZE - 1);
      sample = vms_guest_read_memory (qmp, address, RAM_SAMPLE_SIZE,
                                      scratch_path, error);
      if (!sample)
        {
          g_prefix_error (error, "sampling RAM: ");
          return FALSE;
        }
      bytes = g_bytes_get_data (sample, &length);
      for (gsize at = 0; at + PAGE_SIZE <= length; at += PAGE_SIZE)
        {
          gboolean zero = vms_copy_is_zero (bytes + at, PAGE_SIZE);

          pages++;
          zero_pages += zero;
          if (!zero)
            g_byte_array_append (nonzero, bytes + at, PAGE_SIZE);
        }
    }
  if (pages)
    out->nonzero = 1.0 - (double)zero_pages / pages;
  probe_compression (nonzero, out);
  return TRUE;
}
