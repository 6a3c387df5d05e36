/* vmshift engine: an estimate's run, from opening the VMs to the model.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-estimate-internal.h"
#include "vms-config.h"
#if VMS_HAVE_LIBVIRT
#include "vms-libvirt.h"
#endif

/* What vmshift migrate (QEMU driven directly, pause or mirror) does
 * outside its passes, counted in tools/vms-cmd-migrate.c and
 * tools/engine/vms-replicate.c: QMP commands to both QEMUs (run states,
 * versions, the VM's name, UUID and disks, the destination's disks, the
 * NBD server, mirrors, migration capabilities and parameters, incoming,
 * migrate, continue, the cleanup's bitmaps and server), durable job
 * saves (the state moves, preflight and cleanup), and sink connections
 * per disk (create the replica, live-reset, commit). */
#define SETUP_QMP_COMMANDS 25
#define SETUP_SAVES 10
#define SETUP_SINK_CONNECTIONS 3
/* How often a wait that cannot poll the cancellable looks at it. */
#define SLEEP_TICK_US (50 * 1000)

gboolean
vms_estimate_stopped (EstimateRun *run, GError **error)
{
  if (!g_cancellable_is_cancelled (run->cancellable))
    return FALSE;
  /* The words vmshift has always used: vms_cli_exit_code gives 4. */
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CANCELLED,
                       "stopped on request");
  return TRUE;
}

gboolean
vms_estimate_sleep_until (EstimateRun *run, gint64 until_us, GError **error)
{
  GPollFD cancel_fd;
  gboolean pollable = g_cancellable_make_pollfd (run->cancellable, &cancel_fd);
  gboolean stopped;
  gint64 now;

  /* The cancellable's fd turns readable when it is cancelled: the wait
   * ends at once.  Without one (no cancellable, or no fd left), in ticks. */
  while (!(stopped = vms_estimate_stopped (run, error))
         && (now = g_get_monotonic_time ()) < until_us)
    {
      gint64 wait_ms = (until_us - now + 999) / 1000;

      if (pollable)
        g_poll (&cancel_fd, 1, (int)MIN (wait_ms, G_MAXINT));
      else
        g_usleep (MIN (until_us - now, SLEEP_TICK_US));
    }
  if (pollable)
    g_cancellable_release_fd (run->cancellable);
  return !stopped;
}

static void
disk_free (EstimateDisk *disk)
{
  g_free (disk->bitmap);
  g_free (disk->buckets);
  g_free (disk);
}

static void
vm_free (EstimateVm *vm)
{
  vms_qmp_free (vm->qmp);
#if VMS_HAVE_LIBVIRT
  if (vm->domain)
    virDomainFree (vm->domain);
#endif
  g_array_unref (vm->ram_rates);
  g_array_unref (vm->ram_long_rates);
  if (vm->disks)
    g_ptr_array_unref (vm->disks);
  if (vm->found)
    g_ptr_array_unref (vm->found);
  g_free (vm);
}

/* The VMs, each opened; FALSE at the first that fails (those opened so far
 * stay in run->vms, for their bitmaps to be removed). */
static gboolean
open_vms (EstimateRun *run, gpointer libvirt, GError **error)
{
  const VmsEstimateConfig *config = run->config;

  for (guint i = 0; config->sources[i]; i++)
    {
      EstimateVm *vm = g_new0 (EstimateVm, 1);

      vm->index = i;
      vm->out = vms_estimate_file_add_vm (run->result, config->sources[i]);
      vm->ram_rates = g_array_new (FALSE, FALSE, sizeof (double));
      vm->ram_long_rates = g_array_new (FALSE, FALSE, sizeof (double));
      vm->disks = g_ptr_array_new_with_free_func ((GDestroyNotify)disk_free);
      g_ptr_array_add (run->vms, vm);
#if VMS_HAVE_LIBVIRT
      if (libvirt
          && !(vm->domain
               = vms_libvirt_lookup (libvirt, config->sources[i], error)))
        return FALSE;
#endif
      if (!vms_estimate_open_vm (run, vm, error))
        {
          g_prefix_error (error, "VM %s: ", config->sources[i]);
          return FALSE;
        }
    }
  return TRUE;
}

/* Watch, probe the link, probe each VM: the figures of run->result. */
static gboolean
run_steps (EstimateRun *run, gpointer libvirt, GError **error)
{
  const VmsEstimateConfig *config = run->config;

  if (!open_vms (run, libvirt, error))
    return FALSE;
  vms_progress_event (config->progress, "observing", NULL,
                      "observing %u VM(s) for %d s, a sample every %d s",
                      run->vms->len, config->window_s, config->interval_s);
  if (!vms_estimate_observe (run, error))
    return FALSE;
  vms_progress_event (config->progress, "probing", NULL,
                      "probing the link to %s", config->sink);
  if (!vms_estimate_probe_link (run, error))
    return FALSE;
  /* With the link's best configuration, as migrate will copy. */
  for (guint v = 0; v < run->vms->len; v++)
    {
      EstimateVm *vm = run->vms->pdata[v];

      if (!vms_estimate_probe_vm (run, vm, error))
        {
          g_prefix_error (error, "VM %s: ", vm->out->source);
          return FALSE;
        }
    }
  return TRUE;
}

/* libvirt's connection when the sources are its domains (caller closes),
 * NULL otherwise; FALSE on error. */
static gboolean
connect_libvirt (const VmsEstimateConfig *config, gpointer *libvirt,
                 GError **error)
{
  *libvirt = NULL;
  if (!config->connect)
    return TRUE;
#if VMS_HAVE_LIBVIRT
  *libvirt = vms_libvirt_connect (config->connect, error);
  return *libvirt != NULL;
#else
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
               "this vmshift was built without libvirt: --connect is not "
               "available");
  return FALSE;
#endif
}

VmsEstimateFile *
vms_estimate_measure (const VmsEstimateConfig *config,
                      GCancellable *cancellable, GError **error)
{
  g_autoptr (VmsEstimateFile) result = vms_estimate_file_new (config->id);
  EstimateRun run = { config, cancellable, result, NULL };
  gpointer libvirt = NULL;
  gboolean ok;

  result->created = g_get_real_time () / G_USEC_PER_SEC;
  result->window_s = config->window_s;
  result->interval_s = config->interval_s;
  if (!connect_libvirt (config, &libvirt, error))
    return NULL;
  run.vms = g_ptr_array_new_with_free_func ((GDestroyNotify)vm_free);
  ok = run_steps (&run, libvirt, error);
  /* Whatever happened, our bitmaps go. */
  for (guint v = 0; v < run.vms->len; v++)
    vms_estimate_remove_bitmaps (run.vms->pdata[v]);
  /* The domains before their connection. */
  g_ptr_array_unref (run.vms);
#if VMS_HAVE_LIBVIRT
  if (libvirt)
    virConnectClose (libvirt);
#endif
  return ok ? g_steal_pointer (&result) : NULL;
}

/* ---- the model ---- */

void
vms_estimate_model_disk (const VmsEstimateFileDisk *disk, VmsEstimateDisk *out)
{
  memset (out, 0, sizeof *out);
  out->name = disk->name;
  out->size = disk->size;
  out->data_bytes = disk->data;
  out->n_samples = disk->seconds->len;
  out->seconds = (const double *)disk->seconds->data;
  out->dirty = (const guint64 *)disk->dirty->data;
  out->write_rate = disk->write_rate;
  out->copy_rate = disk->copy_rate;
  out->round_rate = disk->round_rate;
  out->growth_rate = disk->growth_rate;
  out->growth_position = disk->growth_position;
  out->pace = disk->pace;
  out->latency_before_us = disk->latency_before_us;
  out->latency_copying_us = disk->latency_copying_us;
}

/* How the rounds' sizes vary: the mean over the disks whose rounds were
 * measured. */
static double
round_noise (const VmsEstimateFileVm *vm)
{
  double noise = 0;
  guint n = 0;

  for (guint i = 0; i < vm->disks->len; i++)
    {
      const VmsEstimateFileDisk *disk = vm->disks->pdata[i];

      if (disk->pace > 0)
        {
          noise += disk->round_noise;
          n++;
        }
    }
  return n ? noise / n : 0;
}

static void
predict_vm (VmsEstimateFileVm *vm, const VmsEstimateFileSteps *steps,
            const VmsEstimateLink *link, VmsEstimateParams *params)
{
  g_autofree VmsEstimateDisk *disks = g_new0 (VmsEstimateDisk, vm->disks->len);
  VmsEstimateMemory memory = { (guint64)(vm->ram_size * vm->ram_nonzero), 0 };

  memory.ram_size = vm->ram_size;
  memory.dirty_rate = vm->ram_dirty_rate;
  memory.dirty_long_rate = vm->ram_dirty_long_rate;
  memory.dirty_long_s = vm->ram_dirty_long_s;
  memory.compress_ratio = vm->ram_zstd_ratio;
  memory.compress_rate = vm->ram_zstd_rate;
  for (guint i = 0; i < vm->disks->len; i++)
    vms_estimate_model_disk (vm->disks->pdata[i], &disks[i]);
  vm->throughput = link->throughput;
  /* A migration's steps outside its passes, as counted in vmshift
   * migrate: its QMP commands and job saves, QEMU's NBD server, and per
   * disk the sink connections of the replica's creation, its live-reset
   * and its commit. */
  if (steps->n_empty_rounds)
    params->setup_s
        = SETUP_QMP_COMMANDS * steps->qmp_s + SETUP_SAVES * steps->save_s
          + steps->server_s
          + vm->disks->len * SETUP_SINK_CONNECTIONS * steps->sink_connect_s;
  params->round_noise = round_noise (vm);
  vms_estimate_run (disks, vm->disks->len, &memory, link, params,
                    &vm->prediction);
  vm->setup_s = params->setup_s;
}

void
vms_estimate_predict (VmsEstimateFile *estimate,
                      const VmsEstimateParams *params, double bandwidth)
{
  VmsEstimateLink link = { estimate->best.throughput, estimate->rtt_s };
  VmsEstimateParams vm_params = *params;
  VmsEstimateFileSteps *steps = &estimate->steps;
  g_autofree double *totals = g_new0 (double, estimate->vms->len);

  /* A pass over a disk as vmshift runs it (a dirty round, and the
   * background copy too): the empty round measured, and besides two QMP
   * queries of the bitmap and three saves of the job. */
  if (steps->n_empty_rounds)
    vm_params.round_overhead_s
        = steps->empty_round_s + 2 * steps->qmp_s + 3 * steps->save_s;
  steps->round_overhead_s = vm_params.round_overhead_s;
  if (bandwidth > 0)
    link.throughput = MIN (link.throughput, bandwidth);
  for (guint v = 0; v < estimate->vms->len; v++)
    {
      VmsEstimateFileVm *vm = estimate->vms->pdata[v];

      predict_vm (vm, steps, &link, &vm_params);
      /* What migrate runs by default. */
      totals[v] = vm->prediction.total_auto_s;
    }
  g_free (estimate->order);
  estimate->order = g_new0 (guint, estimate->vms->len);
  estimate->group_s
      = vms_estimate_group_order (totals, estimate->vms->len, estimate->order);
}
