/* vmshift: choosing the dirty-bitmap granularity of each disk.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-granularity.h"
#include "vms-option.h"
#include "vms-progress.h"

/* QEMU wants a bitmap granularity that is a power of two from 512 bytes
 * to 2 GiB. */
#define OPTION_GRANULARITY_MIN 512
#define OPTION_GRANULARITY_MAX (G_GUINT64_CONSTANT (1) << 31)
/* The smallest --bitmap-memory: about what the two 4 KiB-grained bitmaps
 * of a 1 GiB disk take (65 KiB); less would make any real disk coarse. */
#define OPTION_BITMAP_MEMORY_MIN (64 * 1024)
/* Typo guard: nobody means more. */
#define OPTION_BITMAP_MEMORY_MAX (G_GUINT64_CONSTANT (1) << 40)

static const char *const why_names[]
    = { "floor", "writes", "memory", "option" };

const char *
vms_granularity_why_name (VmsGranularityWhy why)
{
  return why < G_N_ELEMENTS (why_names) ? why_names[why] : "unknown";
}

guint64
vms_granularity_bitmap_bytes (guint64 disk_size, guint32 granularity)
{
  guint64 bits = (disk_size + granularity - 1) / granularity;
  guint64 bytes = 0;

  /* HBitmap keeps levels up to a single word, each a 64th of the one
   * below (QEMU's util/hbitmap.c). */
  do
    {
      guint64 words = (bits + 63) / 64;

      bytes += words * 8;
      bits = words;
    }
  while (bits > 1);
  return bytes;
}

guint32
vms_granularity_memory_floor (guint64 total_size, guint64 budget)
{
  guint64 granularity = VMS_GRANULARITY_MIN;

  while (granularity < VMS_GRANULARITY_MAX
         && VMS_GRANULARITY_BITMAPS_PER_DISK
                    * vms_granularity_bitmap_bytes (total_size,
                                                    (guint32)granularity)
                > budget)
    granularity <<= 1;
  return (guint32)granularity;
}

static guint32
power_of_two_below (guint64 value)
{
  guint32 power = 1;

  while ((guint64)power * 2 <= value && power < (1u << 31))
    power <<= 1;
  return power;
}

void
vms_granularity_choose (guint64 disk_size, guint32 memory_floor,
                        guint64 write_bytes, guint64 write_operations,
                        VmsGranularityChoice *out)
{
  guint32 for_writes = VMS_GRANULARITY_MIN;

  out->write_average = write_operations ? write_bytes / write_operations : 0;
  /* A bit no larger than the usual write sends each write once; a finer
   * one would only split the same bytes into more extents. */
  if (out->write_average > 0)
    for_writes = CLAMP (power_of_two_below (out->write_average),
                        VMS_GRANULARITY_MIN, VMS_GRANULARITY_MAX_FOR_WRITES);
  out->granularity = MAX (memory_floor, for_writes);
  if (memory_floor > VMS_GRANULARITY_MIN && memory_floor >= for_writes)
    out->why = VMS_GRANULARITY_WHY_MEMORY;
  else if (for_writes > VMS_GRANULARITY_MIN)
    out->why = VMS_GRANULARITY_WHY_WRITES;
  else
    out->why = VMS_GRANULARITY_WHY_FLOOR;
  out->memory = VMS_GRANULARITY_BITMAPS_PER_DISK
                * vms_granularity_bitmap_bytes (disk_size, out->granularity);
}

void
vms_granularity_choose_asked (guint64 disk_size, guint32 memory_floor,
                              guint64 write_bytes, guint64 write_operations,
                              guint32 asked, VmsGranularityChoice *out)
{
  vms_granularity_choose (disk_size, memory_floor, write_bytes,
                          write_operations, out);
  if (!asked)
    return;
  out->granularity = asked;
  out->why = VMS_GRANULARITY_WHY_OPTION;
  out->memory = VMS_GRANULARITY_BITMAPS_PER_DISK
                * vms_granularity_bitmap_bytes (disk_size, asked);
}

gboolean
vms_granularity_parse_options (const char *granularity_text,
                               const char *memory_text, guint32 *granularity,
                               guint64 *bitmap_memory, GError **error)
{
  guint64 asked = 0;

  if (!vms_option_size ("--granularity", granularity_text,
                        OPTION_GRANULARITY_MIN, OPTION_GRANULARITY_MAX, &asked,
                        error)
      || !vms_option_size ("--bitmap-memory", memory_text,
                           OPTION_BITMAP_MEMORY_MIN, OPTION_BITMAP_MEMORY_MAX,
                           bitmap_memory, error))
    return FALSE;
  if ((asked & (asked - 1)) != 0)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--granularity must be a power of two from 512 to 2G, "
                   "not '%s'",
                   granularity_text);
      return FALSE;
    }
  *granularity = (guint32)asked;
  return TRUE;
}

char *
vms_granularity_format (guint64 granularity)
{
  static const char *const units[] = { "B", "KiB", "MiB", "GiB" };
  guint unit = 0;

  /* Powers of two read exactly ("4 KiB", not "4.0 KiB"). */
  while (unit + 1 < G_N_ELEMENTS (units) && granularity >= 1024
         && granularity % 1024 == 0)
    {
      granularity /= 1024;
      unit++;
    }
  return g_strdup_printf ("%" G_GUINT64_FORMAT " %s", granularity, units[unit]);
}

static char *
describe_why (const VmsGranularityChoice *choice)
{
  g_autofree char *floor = vms_granularity_format (VMS_GRANULARITY_MIN);

  switch (choice->why)
    {
    case VMS_GRANULARITY_WHY_OPTION:
      return g_strdup ("--granularity");
    case VMS_GRANULARITY_WHY_MEMORY:
      return g_strdup ("the --bitmap-memory budget over all disks");
    case VMS_GRANULARITY_WHY_WRITES:
      return g_strdup ("the guest's average write");
    default:
      return g_strdup_printf ("the %s floor", floor);
    }
}

char *
vms_granularity_describe (const VmsGranularityChoice *choice)
{
  g_autofree char *why = describe_why (choice);
  g_autofree char *average = vms_format_size (choice->write_average);
  g_autofree char *memory = vms_format_size (choice->memory);

  return g_strdup_printf ("%s; average guest write %s; %d bitmaps of %s "
                          "in QEMU",
                          why, choice->write_average ? average : "not seen",
                          VMS_GRANULARITY_BITMAPS_PER_DISK, memory);
}
