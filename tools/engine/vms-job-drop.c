/* vmshift: removing what a job left in its VM (vmshift job drop).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-job-drop.h"
#include "vms-bitmap.h"
#include "vms-disk.h"
#include "vms-export.h"
#include "vms-qmp.h"

#include <string.h>

gboolean
vms_job_drop_is_job_bitmap (const char *id, const char *bitmap)
{
  g_autofree char *prefix = g_strdup_printf ("vmshift-%s-", id);
  const char *round;

  /* Job "web" must not take "vmshift-web-2-1", job web-2's. */
  if (!g_str_has_prefix (bitmap, prefix))
    return FALSE;
  round = bitmap + strlen (prefix);
  if (!*round)
    return FALSE;
  for (const char *p = round; *p; p++)
    if (!g_ascii_isdigit (*p))
      return FALSE;
  return TRUE;
}

static gboolean
drop_disk_bitmaps (VmsQmp *qmp, const char *id, const char *node,
                   guint *removed, GError **error)
{
  g_autoptr (GPtrArray) bitmaps = vms_bitmap_list (qmp, node, error);

  if (!bitmaps)
    return FALSE;
  for (guint i = 0; i < bitmaps->len; i++)
    {
      const VmsBitmapInfo *info = bitmaps->pdata[i];

      if (!vms_job_drop_is_job_bitmap (id, info->name))
        continue;
      if (!vms_bitmap_remove (qmp, node, info->name, error))
        return FALSE;
      (*removed)++;
    }
  return TRUE;
}

gboolean
vms_job_drop_from_vm (const VmsJob *job, guint *removed, GError **error)
{
  g_autofree char *socket_name = g_strconcat (job->id, ".nbd", NULL);
  g_autofree char *socket_path
      = g_build_filename (job->state_dir, socket_name, NULL);
  g_autoptr (VmsQmp) qmp = NULL;
  g_autoptr (GPtrArray) disks = NULL;

  *removed = 0;
  qmp = vms_qmp_connect (job->source, 0, error);
  if (!qmp)
    return FALSE;
  /* Exported bitmaps are busy: the job's server goes first. */
  if (vms_export_server_serves (qmp, socket_path, NULL)
      && !vms_export_server_stop (qmp, error))
    return FALSE;
  disks = vms_disk_discover (qmp, error);
  if (!disks)
    return FALSE;
  for (guint i = 0; i < job->disks->len; i++)
    {
      const VmsJobDisk *disk = job->disks->pdata[i];
      VmsDisk *now = vms_disk_find (disks, disk->name, NULL);

      /* A disk unplugged since has no bitmaps left to remove. */
      if (now
          && !drop_disk_bitmaps (qmp, job->id, now->node_name, removed, error))
        {
          g_prefix_error (error, "disk %s: ", disk->name);
          return FALSE;
        }
    }
  return TRUE;
}
