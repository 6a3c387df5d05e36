/* vmshift engine: the estimate's window.  Open each VM, then watch its
 * disks' dirty bitmaps, its RAM's dirty rate and what it writes.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-estimate-internal.h"
#include "vms-bitmap.h"
#include "vms-config.h"
#include "vms-copy.h"
#include "vms-guest.h"
#include "vms-vm.h"
#include "vms-ram-sample.h"
#if VMS_HAVE_LIBVIRT
#include "vms-libvirt.h"
#endif

/* calc-dirty-rate measures over 1 s and over this long in turn (a guest
 * rewriting the same pages dirties fewer distinct ones per second over
 * longer, and a RAM pass lasts seconds); the last measurement, started at
 * the window's end, is read this much after its time. */
#define RAM_RATE_SECONDS 1
#define RAM_RATE_LONG_SECONDS 4
#define RAM_RATE_LAST_WAIT_US (100 * 1000)
/* Pages QEMU samples in all (page sampling, 512 per GiB by default, 128 of
 * a 256 MiB guest: its rate then moves in steps of 2 MiB/s), within what
 * it takes per GiB. */
#define RAM_RATE_SAMPLED_PAGES 4096
#define RAM_RATE_MIN_PAGES_PER_GIB 512
#define RAM_RATE_MAX_PAGES_PER_GIB 16384

/* ---- RAM ---- */

/* The RAM's size, the share of its pages that are not zero and how those
 * compress. */
static gboolean
sample_ram (EstimateRun *run, EstimateVm *vm, GError **error)
{
  g_autofree char *file
      = g_strdup_printf ("estimate-%s-ram.bin", run->config->id);
  g_autofree char *path = g_build_filename (run->config->state_dir, file, NULL);
  VmsRamSample sample;

  if (!vms_ram_sample (vm->qmp, path, &sample, error))
    return FALSE;
  vm->out->ram_size = sample.ram_size;
  vm->out->ram_nonzero = sample.nonzero;
  vm->out->ram_zstd_ratio = sample.zstd_ratio;
  vm->out->ram_zstd_rate = sample.zstd_rate;
  return TRUE;
}

static guint
sample_pages_per_gib (const EstimateVm *vm)
{
  double gib = (double)vm->out->ram_size / (1024.0 * 1024 * 1024);

  if (gib <= 0)
    return 0;
  return (guint)CLAMP (RAM_RATE_SAMPLED_PAGES / gib, RAM_RATE_MIN_PAGES_PER_GIB,
                       RAM_RATE_MAX_PAGES_PER_GIB);
}

/* One calc-dirty-rate at a time: start one, read it the next time, over
 * 1 s and over RAM_RATE_LONG_SECONDS in turn.  The RAM's rate is best
 * effort (errors ignored): a measurement that failed or is still running
 * gives no sample, and with none the model takes 0. */
static void
sample_ram_rate (EstimateVm *vm, gboolean start)
{
  guint calc_s;

  if (vm->rate_pending_s)
    {
      VmsGuestDirtyRate rate;

      if (!vms_guest_query_dirty_rate (vm->qmp, &rate, NULL)
          || rate.status != VMS_GUEST_DIRTY_RATE_MEASURED)
        return;
      g_array_append_val (vm->rate_pending_s == RAM_RATE_SECONDS
                              ? vm->ram_rates
                              : vm->ram_long_rates,
                          rate.bytes_per_second);
      vm->rate_pending_s = 0;
    }
  if (!start)
    return;
  calc_s = vm->ram_measures++ % 2 ? RAM_RATE_LONG_SECONDS : RAM_RATE_SECONDS;
  if (vms_guest_calc_dirty_rate (vm->qmp, calc_s, sample_pages_per_gib (vm),
                                 NULL))
    vm->rate_pending_s = calc_s;
}

static double
mean (GArray *values)
{
  double sum = 0;

  for (guint i = 0; i < values->len; i++)
    sum += g_array_index (values, double, i);
  return values->len ? sum / values->len : 0;
}

/* A rate still being measured as the window closed is read once it is
 * done; then the mean of the rates of each length. */
static gboolean
finish_ram_rates (EstimateRun *run, GError **error)
{
  for (guint v = 0; v < run->vms->len; v++)
    {
      EstimateVm *vm = run->vms->pdata[v];

      if (vm->rate_pending_s)
        {
          if (!vms_estimate_sleep_until (
                  run,
                  g_get_monotonic_time () + vm->rate_pending_s * G_USEC_PER_SEC
                      + RAM_RATE_LAST_WAIT_US,
                  error))
            return FALSE;
          sample_ram_rate (vm, FALSE);
        }
      vm->out->ram_dirty_rate = mean (vm->ram_rates);
      vm->out->ram_dirty_long_rate = mean (vm->ram_long_rates);
      vm->out->ram_dirty_long_s
          = vm->ram_long_rates->len ? RAM_RATE_LONG_SECONDS : 0;
    }
  return TRUE;
}

/* ---- bitmaps ---- */

/* QMP to the VM: its monitor, or libvirt's passthrough. */
static VmsQmp *
connect_vm (EstimateVm *vm, GError **error)
{
#if VMS_HAVE_LIBVIRT
  if (vm->domain)
    return vms_libvirt_qmp_open (vm->domain, error);
#endif
  return vms_qmp_connect (vm->out->source, 0, error);
}

void
vms_estimate_remove_bitmaps (EstimateVm *vm)
{
  /* Disks not yet discovered hold no bitmap of this run. */
  if (!vm->found)
    return;
  if (!vm->qmp || !vms_qmp_is_connected (vm->qmp))
    {
      g_clear_pointer (&vm->qmp, vms_qmp_free);
      vm->qmp = connect_vm (vm, NULL);
    }
  if (!vm->qmp)
    return;
  for (guint i = 0; i < vm->found->len; i++)
    {
      VmsDisk *disk = vm->found->pdata[i];
      g_autoptr (GPtrArray) bitmaps
          = vms_bitmap_list (vm->qmp, disk->node_name, NULL);

      for (guint j = 0; bitmaps && j < bitmaps->len; j++)
        {
          VmsBitmapInfo *info = bitmaps->pdata[j];

          if (g_str_has_prefix (info->name, VMS_ESTIMATE_BITMAP_PREFIX))
            vms_bitmap_remove (vm->qmp, disk->node_name, info->name, NULL);
        }
    }
  for (guint i = 0; i < vm->disks->len; i++)
    g_clear_pointer (&((EstimateDisk *)vm->disks->pdata[i])->bitmap, g_free);
}

/* Who the VM is, and its disks. */
static gboolean
identify_vm (EstimateVm *vm, GError **error)
{
  g_autofree char *name = vms_vm_query_name (vm->qmp, error);
  g_autofree char *uuid = name ? vms_vm_query_uuid (vm->qmp, error) : NULL;

  if (!uuid || !(vm->found = vms_disk_discover (vm->qmp, error)))
    return FALSE;
  g_free (vm->out->vm_name);
  vm->out->vm_name = g_steal_pointer (&name);
  g_free (vm->out->vm_uuid);
  vm->out->vm_uuid = g_steal_pointer (&uuid);
  for (guint i = 0; i < vm->found->len; i++)
    {
      EstimateDisk *disk = g_new0 (EstimateDisk, 1);

      disk->disk = vm->found->pdata[i];
      disk->out = vms_estimate_file_add_disk (vm->out, disk->disk->name,
                                              disk->disk->size);
      g_ptr_array_add (vm->disks, disk);
    }
  return TRUE;
}

gboolean
vms_estimate_open_vm (EstimateRun *run, EstimateVm *vm, GError **error)
{
  vm->qmp = connect_vm (vm, error);
  if (!vm->qmp || !identify_vm (vm, error))
    return FALSE;
  vms_estimate_remove_bitmaps (vm);
  if (!vms_estimate_map_first (run, vm, error) || !sample_ram (run, vm, error))
    return FALSE;
  /* Chosen as the window opens, as a job chooses when it starts: from
   * the guest's writes so far. */
  vms_estimate_choose_granularity (run, vm);
  for (guint i = 0; i < vm->disks->len; i++)
    {
      EstimateDisk *disk = vm->disks->pdata[i];
      g_autofree char *name = g_strdup_printf (
          VMS_ESTIMATE_BITMAP_PREFIX "%s-%u", run->config->id, i);

      if (!vms_bitmap_add_temporary (vm->qmp, disk->disk->node_name, name,
                                     disk->out->granularity, error))
        return FALSE;
      disk->bitmap = g_steal_pointer (&name);
    }
  return TRUE;
}

/* ---- the window ---- */

static gboolean
sample_disks (EstimateVm *vm, double seconds, GError **error)
{
  for (guint i = 0; i < vm->disks->len; i++)
    {
      EstimateDisk *disk = vm->disks->pdata[i];
      g_autoptr (VmsBitmapInfo) info = vms_bitmap_query (
          vm->qmp, disk->disk->node_name, disk->bitmap, error);

      if (!info)
        return FALSE;
      g_array_append_val (disk->out->seconds, seconds);
      g_array_append_val (disk->out->dirty, info->count);
    }
  return TRUE;
}

/* QEMU's count of bytes each disk of a VM has written, sampled with its
 * bitmap: the guest's writes over the same window as the bits they
 * dirtied, rewrites included, and what they cost it (their latency).
 * Best effort: a disk QEMU gives no count for has none, and the model
 * goes by its bitmap alone. */
static void
sample_written (EstimateVm *vm, gboolean at_start, double elapsed)
{
  /* One query answers for all the VM's disks. */
  g_autoptr (GPtrArray) stats = vms_guest_query_blockstats (vm->qmp, NULL);

  for (guint i = 0; i < vm->disks->len; i++)
    {
      EstimateDisk *disk = vm->disks->pdata[i];
      VmsGuestBlockStats *entry
          = stats ? vms_guest_block_stats_find (stats, disk->disk->node_name,
                                                disk->disk->name)
                  : NULL;
      GArray *written = disk->out->written;
      guint64 since;

      if (at_start)
        {
          disk->written_start = entry ? entry->wr_bytes : 0;
          disk->written_lost = !entry;
          disk->window_writes = vms_guest_write_counters (entry);
          continue;
        }
      /* What its writes cost the guest with no copy running. */
      {
        VmsGuestWriteCounters now = vms_guest_write_counters (entry);

        disk->out->latency_before_us
            = MAX (vms_guest_write_latency_us (&disk->window_writes, &now), 0);
      }
      /* A count that went missing or back (a device reset) leaves no
       * series rather than one that would lie. */
      if (!entry || entry->wr_bytes < disk->written_start)
        disk->written_lost = TRUE;
      if (disk->written_lost)
        {
          g_array_set_size (written, 0);
          disk->out->write_rate = 0;
          continue;
        }
      since = entry->wr_bytes - disk->written_start;
      g_array_append_val (written, since);
      if (elapsed > 0)
        disk->out->write_rate = since / elapsed;
    }
}

VmsGuestWriteCounters
vms_estimate_write_counters (EstimateVm *vm, EstimateDisk *disk)
{
  g_autoptr (GPtrArray) stats = vms_guest_query_blockstats (vm->qmp, NULL);

  return vms_guest_write_counters (
      stats ? vms_guest_block_stats_find (stats, disk->disk->node_name,
                                          disk->disk->name)
            : NULL);
}

static void
report_sample (EstimateRun *run, double elapsed)
{
  g_autoptr (GString) text = g_string_new (NULL);
  JsonObject *fields = json_object_new ();

  json_object_set_double_member (fields, "seconds", elapsed);
  for (guint v = 0; v < run->vms->len; v++)
    {
      EstimateVm *vm = run->vms->pdata[v];

      for (guint i = 0; i < vm->disks->len; i++)
        {
          EstimateDisk *disk = vm->disks->pdata[i];
          GArray *dirty = disk->out->dirty;
          g_autofree char *size = vms_format_size (
              g_array_index (dirty, guint64, dirty->len - 1));

          g_string_append_printf (text, "%s%s %s dirty", text->len ? ", " : "",
                                  disk->disk->name, size);
        }
    }
  vms_progress_event (run->config->progress, "sample", fields,
                      "%.0f of %d s: %s", elapsed, run->config->window_s,
                      text->str);
}

/* Every VM's disks sampled at elapsed seconds into the window, and a new
 * RAM rate measurement started when asked. */
static gboolean
sample_vms (EstimateRun *run, double elapsed, gboolean ram, GError **error)
{
  for (guint v = 0; v < run->vms->len; v++)
    {
      EstimateVm *vm = run->vms->pdata[v];

      if (!sample_disks (vm, elapsed, error))
        {
          g_prefix_error (error, "VM %s: ", vm->out->source);
          return FALSE;
        }
      sample_written (vm, FALSE, elapsed);
      if (ram)
        sample_ram_rate (vm, TRUE);
    }
  return TRUE;
}

gboolean
vms_estimate_observe (EstimateRun *run, GError **error)
{
  /* The first seconds of the dirty curves are sampled more often than
   * --interval: a migration's rounds last seconds, and a guest that
   * rewrites a hot set has marked most of it after a second or two. */
  static const double early[] = { 0.25, 0.5, 1, 1.5, 2, 3, 4 };
  const VmsEstimateConfig *config = run->config;
  gint64 start = g_get_monotonic_time ();
  guint samples = 0, early_done = 0;
  double elapsed;

  for (guint v = 0; v < run->vms->len; v++)
    sample_ram_rate (run->vms->pdata[v], TRUE);
  for (guint v = 0; v < run->vms->len; v++)
    sample_written (run->vms->pdata[v], TRUE, 0);
  for (;;)
    {
      gboolean regular = early_done >= G_N_ELEMENTS (early)
                         || early[early_done] >= config->interval_s;
      double at
          = regular ? (samples + 1.0) * config->interval_s : early[early_done];

      if (!vms_estimate_sleep_until (run, start + (gint64)(at * G_USEC_PER_SEC),
                                     error))
        return FALSE;
      elapsed = (g_get_monotonic_time () - start) / 1e6;
      if (!sample_vms (run, elapsed, regular, error))
        return FALSE;
      if (!regular)
        {
          early_done++;
          continue;
        }
      samples++;
      report_sample (run, elapsed);
      if (elapsed >= config->window_s)
        break;
    }
  return finish_ram_rates (run, error);
}
