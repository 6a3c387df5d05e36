/* vmshift: each disk's dirty-bitmap granularity, settled when a job
 * opens: chosen for a new disk, kept from the bitmaps for a resumed one.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-replicate.h"
#include "vms-bitmap.h"
#include "vms-granularity.h"
#include "vms-guest.h"

/* One "granularity" event per disk, as the job now records it. */
static void
announce (VmsReplicate *rep, VmsJobDisk *disk, const char *why,
          const VmsGranularityChoice *choice)
{
  JsonObject *fields = json_object_new ();
  g_autofree char *size = vms_granularity_format (disk->granularity);
  const char *verb = "kept";

  if (choice)
    verb = choice->why == VMS_GRANULARITY_WHY_OPTION ? "set" : "chosen";

  json_object_set_string_member (fields, "disk", disk->name);
  json_object_set_int_member (fields, "granularity", disk->granularity);
  json_object_set_string_member (fields, "why", why);
  json_object_set_string_member (fields, "reason", disk->granularity_reason);
  if (choice)
    {
      json_object_set_int_member (fields, "bitmap-bytes", choice->memory);
      json_object_set_int_member (fields, "write-average",
                                  choice->write_average);
      json_object_set_int_member (fields, "bitmap-memory",
                                  rep->config->bitmap_memory);
    }
  vms_progress_event (rep->progress, "granularity", fields,
                      "%s: bitmap granularity %s (%s: %s)", disk->name, size,
                      verb, disk->granularity_reason);
}

/* A disk that has bitmaps keeps their granularity: every round of a job
 * must count the same bits.  FALSE with *error only when QEMU cannot be
 * asked; a missing bitmap is left to the round, which says what to do. */
static gboolean
keep_bitmaps (VmsReplicate *rep, VmsJobDisk *disk, const char *bitmap,
              GError **error)
{
  g_autoptr (GError) query_error = NULL;
  g_autoptr (VmsBitmapInfo) info
      = vms_bitmap_query (rep->qmp, disk->node, bitmap, &query_error);
  guint32 asked = rep->config->granularity;

  if (!info)
    {
      if (g_error_matches (query_error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
        return TRUE;
      g_propagate_error (error, g_steal_pointer (&query_error));
      return FALSE;
    }
  if (disk->granularity && disk->granularity != info->granularity)
    vms_progress_event (rep->progress, "warning", NULL,
                        "%s: the job recorded granularity %u but bitmap %s "
                        "has %u; going by the bitmap",
                        disk->name, disk->granularity, bitmap,
                        info->granularity);
  if (!disk->granularity || disk->granularity != info->granularity)
    {
      g_free (disk->granularity_reason);
      disk->granularity_reason = g_strdup_printf (
          "bitmap %s has it%s", bitmap,
          disk->granularity ? "" : " (the job file predates the record)");
      disk->granularity = info->granularity;
    }
  if (asked && asked != disk->granularity)
    vms_progress_event (rep->progress, "warning", NULL,
                        "%s: --granularity %u ignored: the job's bitmaps have "
                        "%u (a new job takes it)",
                        disk->name, asked, disk->granularity);
  announce (rep, disk, "bitmaps", NULL);
  return TRUE;
}

/* Writes the guest made through each disk since QEMU started, or NULL
 * (said in a warning: the choice then goes without them). */
static GPtrArray *
query_writes (VmsReplicate *rep)
{
  g_autoptr (GError) error = NULL;
  GPtrArray *stats = vms_guest_query_blockstats (rep->qmp, &error);

  if (!stats)
    vms_progress_event (rep->progress, "warning", NULL,
                        "guest write sizes unknown (%s): granularity "
                        "chosen without them",
                        error->message);
  return stats;
}

static void
choose (VmsReplicate *rep, VmsJobDisk *disk, guint32 memory_floor,
        GPtrArray *stats, VmsGranularityChoice *choice)
{
  VmsGuestBlockStats *writes
      = stats ? vms_guest_block_stats_find (stats, disk->node, disk->name)
              : NULL;

  vms_granularity_choose_asked (
      disk->size, memory_floor, writes ? writes->wr_bytes : 0,
      writes ? writes->wr_operations : 0, rep->config->granularity, choice);
  disk->granularity = choice->granularity;
  g_free (disk->granularity_reason);
  disk->granularity_reason = vms_granularity_describe (choice);
}

gboolean
vms_replicate_settle_granularity (VmsReplicate *rep, GError **error)
{
  VmsJob *job = rep->job;
  g_autoptr (GPtrArray) stats = NULL;
  guint64 total_size = 0, memory = 0;
  guint32 memory_floor;

  for (guint i = 0; i < job->disks->len; i++)
    total_size += ((VmsJobDisk *)job->disks->pdata[i])->size;
  memory_floor
      = vms_granularity_memory_floor (total_size, rep->config->bitmap_memory);
  for (guint i = 0; i < job->disks->len; i++)
    {
      VmsJobDisk *disk = job->disks->pdata[i];
      const char *bitmap = disk->copying_bitmap ? disk->copying_bitmap
                                                : disk->recording_bitmap;
      VmsGranularityChoice choice;

      if (bitmap)
        {
          if (!keep_bitmaps (rep, disk, bitmap, error))
            return FALSE;
          continue;
        }
      /* Chosen by a run killed before its first bitmap: that run's
       * choice stands, as it would have had it lived. */
      if (disk->granularity)
        {
          announce (rep, disk, "job", NULL);
          continue;
        }
      if (!stats)
        stats = query_writes (rep);
      choose (rep, disk, memory_floor, stats, &choice);
      memory += choice.memory;
      announce (rep, disk, vms_granularity_why_name (choice.why), &choice);
    }
  if (rep->config->granularity && memory > rep->config->bitmap_memory)
    {
      g_autofree char *need = vms_format_size (memory);
      g_autofree char *budget = vms_format_size (rep->config->bitmap_memory);

      vms_progress_event (rep->progress, "warning", NULL,
                          "--granularity makes QEMU hold %s of bitmaps, over "
                          "the %s of --bitmap-memory",
                          need, budget);
    }
  return vms_job_save (job, error);
}
