/* vmshift: a resumed job whose disks lost their dirty bitmaps.
 *
 * A QEMU that restarted (raw images keep bitmaps only in its memory) or
 * crashed (qcow2 then marks them inconsistent) leaves no record of what
 * the guest wrote meanwhile.  The replica may differ anywhere, but mostly
 * it does not: the disk starts over from a fresh bitmap, and its
 * background copy sends only the chunks whose hash differs from the
 * replica's (the sink's NAME@hashes), instead of the whole disk again.
 * A fresh bitmap added before the copy reads anything keeps the usual
 * rule: whatever the guest writes after a chunk was read goes in a round.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-replicate.h"
#include "vms-bitmap.h"

#include <string.h>

/* A bitmap of the disk's that is gone or cannot be trusted; its name, or
 * NULL when both are fine.  FALSE with *error when QEMU cannot be asked. */
static gboolean
find_lost (VmsReplicate *rep, VmsJobDisk *disk, const char **lost,
           GError **error)
{
  const char *const names[] = { disk->recording_bitmap, disk->copying_bitmap };

  *lost = NULL;
  for (guint i = 0; i < G_N_ELEMENTS (names) && !*lost; i++)
    {
      g_autoptr (GError) query_error = NULL;
      g_autoptr (VmsBitmapInfo) info = NULL;

      if (!names[i])
        continue;
      info = vms_bitmap_query (rep->qmp, disk->node, names[i], &query_error);
      if (!info
          && !g_error_matches (query_error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
        {
          g_propagate_error (error, g_steal_pointer (&query_error));
          return FALSE;
        }
      if (!info || info->inconsistent)
        *lost = names[i];
    }
  return TRUE;
}

/* Remove what is left of the disk's bitmaps: a survivor would record
 * twice, and a new one may take its name. */
static gboolean
drop_survivors (VmsReplicate *rep, VmsJobDisk *disk, GError **error)
{
  char **const names[] = { &disk->recording_bitmap, &disk->copying_bitmap };

  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autoptr (GError) remove_error = NULL;

      if (*names[i]
          && !vms_bitmap_remove (rep->qmp, disk->node, *names[i], &remove_error)
          && !g_error_matches (remove_error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND)
          && !strstr (remove_error->message, "not found"))
        {
          g_propagate_error (error, g_steal_pointer (&remove_error));
          return FALSE;
        }
      g_clear_pointer (names[i], g_free);
    }
  return TRUE;
}

static void
announce (VmsReplicate *rep, VmsJobDisk *disk, const char *lost)
{
  JsonObject *fields = json_object_new ();
  gboolean compare = rep->config->compare != VMS_REPLICATE_COMPARE_NEVER;

  json_object_set_string_member (fields, "disk", disk->name);
  json_object_set_string_member (fields, "bitmap", lost);
  json_object_set_boolean_member (fields, "compare", compare);
  vms_progress_event (
      rep->progress, "bitmaps-lost", fields,
      "%s: dirty bitmap %s is gone or inconsistent (QEMU restarted?): the "
      "disk is copied again from a new bitmap, %s",
      disk->name, lost,
      compare ? "sending only the chunks whose hash differs from the replica's"
              : "all of it (--compare never)");
}

gboolean
vms_replicate_recover_bitmaps (VmsReplicate *rep, GError **error)
{
  for (guint i = 0; i < rep->job->disks->len; i++)
    {
      VmsJobDisk *disk = rep->job->disks->pdata[i];
      const char *lost;
      g_autofree char *lost_name = NULL;

      if (!find_lost (rep, disk, &lost, error))
        return FALSE;
      if (!lost)
        continue;
      lost_name = g_strdup (lost);
      if (!drop_survivors (rep, disk, error))
        return FALSE;
      announce (rep, disk, lost_name);
      disk->round = 0;
      disk->watermark = 0;
      disk->round_dirty = 0;
      disk->compare_all = TRUE;
      if (!vms_job_save (rep->job, error))
        return FALSE;
    }
  return TRUE;
}
