/* vmshift engine: the bitmap granularity of each disk an estimate
 * observes, chosen as the job that migrates the VM will choose it, so
 * that the window's bitmaps and the probe rounds count the bits the
 * migration's rounds will copy.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-estimate-internal.h"
#include "vms-granularity.h"
#include "vms-guest.h"

/* One "granularity" event per disk, with the fields a job's has. */
static void
announce (EstimateRun *run, EstimateDisk *disk,
          const VmsGranularityChoice *choice)
{
  JsonObject *fields = json_object_new ();
  g_autofree char *size = vms_granularity_format (choice->granularity);

  json_object_set_string_member (fields, "disk", disk->disk->name);
  json_object_set_int_member (fields, "granularity", choice->granularity);
  json_object_set_string_member (fields, "why",
                                 vms_granularity_why_name (choice->why));
  json_object_set_string_member (fields, "reason",
                                 disk->out->granularity_reason);
  json_object_set_int_member (fields, "bitmap-bytes", choice->memory);
  json_object_set_int_member (fields, "write-average", choice->write_average);
  json_object_set_int_member (fields, "bitmap-memory",
                              run->config->bitmap_memory);
  vms_progress_event (run->config->progress, "granularity", fields,
                      "%s: bitmap granularity %s, as a job would have it "
                      "(%s)",
                      disk->disk->name, size, disk->out->granularity_reason);
}

void
vms_estimate_choose_granularity (EstimateRun *run, EstimateVm *vm)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) stats = vms_guest_query_blockstats (vm->qmp, &error);
  guint64 total_size = 0;
  guint32 memory_floor;

  /* As a job: without the guest's writes the choice goes by the sizes. */
  if (!stats)
    vms_progress_event (run->config->progress, "warning", NULL,
                        "guest write sizes unknown (%s): granularity "
                        "chosen without them",
                        error->message);
  /* A job copies every disk of the VM unless told --disk: the budget is
   * shared by all of them. */
  for (guint i = 0; i < vm->disks->len; i++)
    total_size += ((EstimateDisk *)vm->disks->pdata[i])->disk->size;
  memory_floor
      = vms_granularity_memory_floor (total_size, run->config->bitmap_memory);
  for (guint i = 0; i < vm->disks->len; i++)
    {
      EstimateDisk *disk = vm->disks->pdata[i];
      VmsGuestBlockStats *writes
          = stats ? vms_guest_block_stats_find (stats, disk->disk->node_name,
                                                disk->disk->name)
                  : NULL;
      VmsGranularityChoice choice;

      vms_granularity_choose_asked (disk->disk->size, memory_floor,
                                    writes ? writes->wr_bytes : 0,
                                    writes ? writes->wr_operations : 0,
                                    run->config->granularity, &choice);
      disk->out->granularity = choice.granularity;
      g_free (disk->out->granularity_reason);
      disk->out->granularity_reason = vms_granularity_describe (&choice);
      announce (run, disk, &choice);
    }
}
