/* vmshift: one pass of a replication over several disks at once.
 *
 * Each disk's copy runs the copy engine (vms_copy_run, an event loop of
 * its own over its own connections) in a worker thread; the calling
 * thread does everything else: QMP (exports), progress, the outcome.
 * Threads rather than one loop over every disk's connections: the engine
 * stays as it is, its synchronous steps (the map, a FLUSH at the end) hold
 * up only their own disk, and zero detection gets a CPU per disk.
 *
 * What the threads share is guarded by the batch's lock: the job (a
 * checkpoint updates its disk and saves the whole job under the lock, so
 * the file always holds every disk's last durable mark), rep->run_bytes,
 * and each task's figures for progress.  The bandwidth cap is one VmsRate
 * for the VM, which has a lock of its own.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-replicate-copy.h"
#include "vms-export.h"
#include "vms-replication-backpressure.h"
#include "vms-sink-client.h"

#include <string.h>

/* How often the calling thread shows progress, at most: the copy engine's
 * own interval. */
#define PROGRESS_INTERVAL_US (250 * 1000)

typedef struct _Batch Batch;

/* A worker's reconnect, for the calling thread to show. */
typedef struct
{
  guint attempt;   /* from 1; 0: connected again */
  char *cause;     /* how the connections were lost, or NULL */
  guint64 from;    /* connected again: where the pass goes on */
  guint64 resent;  /* bytes sent again so far in this pass */
} Reconnect;

static void
reconnect_free (Reconnect *note)
{
  g_free (note->cause);
  g_free (note);
}

/* A disk's copy inside a batch. */
typedef struct
{
  Batch *batch;           /* owner */
  VmsReplicateCopy *copy; /* the caller's description; done set here */
  char *export;           /* QEMU's export of the disk for this pass */
  char *source_uri;       /* NBD URI of that export */
  char *dest_uri;         /* NBD URI of the replica */
  char *compare_uri;      /* NBD URI of its hashes, or NULL */
  VmsCopySpec spec;       /* what the worker runs */
  VmsCopyStats stats;     /* the engine's figures; the worker's alone */
  /* Under batch->lock: */
  VmsCopyStats last;  /* figures at the last checkpoint */
  VmsCopyStats shown; /* latest progress figures */
  gboolean fresh;     /* shown has news the caller has not shown */
  GQueue reconnects;  /* Reconnect*, not shown yet */
  gboolean finished;  /* the worker is done with it */
  GError *error;      /* why it failed, or NULL */
} Task;

struct _Batch
{
  VmsReplicate *rep;         /* job, config, progress; borrowed */
  GMutex lock;               /* guards what the comments say */
  GCond changed;             /* a task finished or has fresh figures */
  GCancellable *cancellable; /* stops every task: the first failure, or
                                rep->cancellable, cancels it */
  GPtrArray *tasks;          /* Task*, in the job's disk order */
  guint next;                /* first task no worker took; under lock */
  guint finished;            /* tasks finished; under lock */
  Task *first_failure;       /* the failure that stopped the others, or
                                NULL; under lock */
};

VmsReplicateCopy *
vms_replicate_copy_new (VmsJobDisk *disk, const char *bitmap, char *phase)
{
  VmsReplicateCopy *copy = g_new0 (VmsReplicateCopy, 1);

  copy->disk = disk;
  copy->bitmap = bitmap;
  copy->phase = phase;
  return copy;
}

void
vms_replicate_copy_free (VmsReplicateCopy *copy)
{
  if (!copy)
    return;
  g_free (copy->phase);
  g_free (copy);
}

static void
task_free (Task *task)
{
  g_free (task->export);
  g_free (task->source_uri);
  g_free (task->dest_uri);
  g_free (task->compare_uri);
  g_queue_clear_full (&task->reconnects, (GDestroyNotify)reconnect_free);
  g_clear_error (&task->error);
  g_free (task);
}

/* ---- in the workers ---- */

static gboolean
on_checkpoint (const VmsCopyStats *stats, gpointer user_data, GError **error)
{
  Task *task = user_data;
  VmsReplicate *rep = task->batch->rep;
  VmsJobDisk *disk = task->copy->disk;
  g_autoptr (GMutexLocker) locker = g_mutex_locker_new (&task->batch->lock);
  guint64 sent = stats->bytes_written - task->last.bytes_written;

  disk->watermark = stats->durable;
  disk->bytes_read += stats->bytes_read - task->last.bytes_read;
  disk->bytes_written += sent;
  disk->bytes_zeroed += stats->bytes_zeroed - task->last.bytes_zeroed;
  disk->reconnects += stats->reconnects - task->last.reconnects;
  disk->bytes_resent += stats->bytes_resent - task->last.bytes_resent;
  disk->bytes_matched += stats->bytes_matched - task->last.bytes_matched;
  rep->run_bytes[rep->pass] += sent;
  switch (rep->pass)
    {
    case VMS_REPLICATE_PASS_BACKGROUND:
      disk->bytes_background += sent;
      break;
    case VMS_REPLICATE_PASS_ROUNDS:
      disk->bytes_rounds += sent;
      break;
    default:
      disk->bytes_final += sent;
      break;
    }
  task->last = *stats;
  return vms_job_save (rep->job, error);
}

static void
on_progress (const VmsCopyStats *stats, gpointer user_data)
{
  Task *task = user_data;
  g_autoptr (GMutexLocker) locker = g_mutex_locker_new (&task->batch->lock);

  task->shown = *stats;
  task->fresh = TRUE;
}

static void
on_reconnect (guint attempt, const GError *cause, const VmsCopyStats *stats,
              gpointer user_data)
{
  Task *task = user_data;
  Reconnect *note = g_new0 (Reconnect, 1);
  g_autoptr (GMutexLocker) locker = g_mutex_locker_new (&task->batch->lock);

  note->attempt = attempt;
  note->cause = cause ? g_strdup (cause->message) : NULL;
  note->from = stats->watermark;
  note->resent = stats->bytes_resent;
  g_queue_push_tail (&task->reconnects, note);
  task->fresh = TRUE;
  g_cond_signal (&task->batch->changed);
}

static gboolean
is_stop (const GError *error)
{
  return g_error_matches (error, VMS_COPY_ERROR, VMS_COPY_ERROR_STOPPED);
}

static void
finish_task (Batch *batch, Task *task, gboolean ok, GError *error)
{
  gboolean stop_others = FALSE;

  g_mutex_lock (&batch->lock);
  task->finished = TRUE;
  task->fresh = TRUE;
  task->copy->done = ok;
  task->error = error;
  if (!ok && !is_stop (error) && !batch->first_failure)
    {
      batch->first_failure = task;
      stop_others = TRUE;
    }
  batch->finished++;
  g_cond_signal (&batch->changed);
  g_mutex_unlock (&batch->lock);
  if (stop_others)
    g_cancellable_cancel (batch->cancellable);
}

/* Take tasks until none is left. */
static gpointer
worker (gpointer data)
{
  Batch *batch = data;

  for (;;)
    {
      Task *task = NULL;
      GError *error = NULL;
      gboolean ok;

      g_mutex_lock (&batch->lock);
      if (batch->next < batch->tasks->len)
        task = batch->tasks->pdata[batch->next++];
      g_mutex_unlock (&batch->lock);
      if (!task)
        return NULL;
      if (g_cancellable_is_cancelled (batch->cancellable))
        {
          /* Another disk failed (or a stop came) before this one began. */
          g_set_error (&error, VMS_COPY_ERROR, VMS_COPY_ERROR_STOPPED,
                       "stopped before it began");
          ok = FALSE;
        }
      else
        ok = vms_copy_run (&task->spec, &task->stats, &error);
      finish_task (batch, task, ok, error);
    }
}

/* ---- in the calling thread ---- */

/* Connections per side for each disk of a batch where running disks copy
 * at once: what one disk would get, as long as the VM's total stays
 * within VMS_COPY_MAX_CONNECTIONS (then an equal share, at least one). */
static guint
connections_per_disk (const VmsReplicateConfig *config, guint running)
{
  guint wanted = config->connections ? config->connections
                                     : vms_copy_default_connections ();

  return MAX (1, MIN (wanted, VMS_COPY_MAX_CONNECTIONS / MAX (running, 1)));
}

/* Export the disk from QEMU and fill the task's spec. */
static gboolean
prepare_task (Batch *batch, Task *task, guint connections, GError **error)
{
  VmsReplicate *rep = batch->rep;
  const VmsReplicateConfig *config = rep->config;
  VmsJobDisk *disk = task->copy->disk;
  VmsCopySpec *spec = &task->spec;
  g_autofree char *escaped_socket = NULL;

  task->dest_uri = vms_sink_client_export_uri (
      rep->job->sink, VMS_SINK_NAME_KIND_DATA, disk->replica, 0, error);
  if (!task->dest_uri)
    return FALSE;
  if (task->copy->compare_chunk)
    {
      task->compare_uri = vms_sink_client_export_uri (
          rep->job->sink, VMS_SINK_NAME_KIND_HASHES, disk->replica,
          task->copy->compare_chunk, error);
      if (!task->compare_uri)
        return FALSE;
      spec->compare_uri = task->compare_uri;
      spec->compare_chunk = task->copy->compare_chunk;
    }
  task->export = g_strdup_printf ("vmshift-%s-%s-r%u", rep->job->id, disk->name,
                                  disk->round);
  if (!vms_export_add (rep->qmp, disk->node, task->export, task->copy->bitmap,
                       error))
    {
      g_clear_pointer (&task->export, g_free);
      return FALSE;
    }
  escaped_socket = g_uri_escape_string (rep->nbd_socket, "/", FALSE);
  task->source_uri = g_strdup_printf ("nbd+unix:///%s?socket=%s", task->export,
                                      escaped_socket);

  spec->source_uri = task->source_uri;
  spec->dest_uri = task->dest_uri;
  spec->bitmap = task->copy->bitmap;
  /* The sink creates a replica sparse, so on a new one (or above a
   * resumed copy's watermark) zeroes are there already; on a replica
   * that held data, its map says so and zeroes are sent. */
  spec->skip_dest_zeroes = TRUE;
  spec->start = disk->watermark;
  spec->end = disk->size;
  spec->connections = connections;
  spec->queue_depth = config->queue_depth;
  spec->request_size = config->request_size;
  spec->checkpoint_bytes = config->checkpoint_bytes;
  spec->checkpoint_ms = config->checkpoint_seconds * 1000;
  spec->io_timeout_ms = config->io_timeout_s * 1000;
  /* The source is paused in the final round: a sink that stays away is
   * given up on soon, and the migration rolls back. */
  spec->retry_timeout_ms = (rep->pass == VMS_REPLICATE_PASS_FINAL
                                ? MIN (config->retry_timeout_s,
                                       VMS_REPLICATE_FINAL_RETRY_TIMEOUT_S)
                                : config->retry_timeout_s)
                           * 1000;
  spec->reconnect = on_reconnect;
  spec->rate = rep->rate;
  spec->cancellable = batch->cancellable;
  spec->checkpoint = on_checkpoint;
  spec->progress = on_progress;
  spec->user_data = task;
  disk->resumed_from = disk->watermark;
  return TRUE;
}

static void
show_reconnect (VmsReplicate *rep, const VmsReplicateCopy *copy,
                const Reconnect *note)
{
  JsonObject *fields = json_object_new ();

  json_object_set_string_member (fields, "disk", copy->disk->name);
  json_object_set_string_member (fields, "phase", copy->phase);
  if (note->attempt == 0)
    {
      g_autofree char *resent = vms_format_size (note->resent);

      json_object_set_int_member (fields, "from", note->from);
      json_object_set_int_member (fields, "bytes-resent", note->resent);
      vms_progress_event (
          rep->progress, "reconnected", fields,
          "%s: connected again; the %s goes on from byte %" G_GUINT64_FORMAT
          " (%s sent again so far)",
          copy->disk->name, copy->phase, note->from, resent);
      return;
    }
  json_object_set_int_member (fields, "attempt", note->attempt);
  json_object_set_string_member (fields, "cause", note->cause);
  vms_progress_event (rep->progress, "reconnecting", fields,
                      "%s: connection lost (%s); reconnecting (attempt %u)",
                      copy->disk->name, note->cause, note->attempt);
}

/* Show the figures the workers left since the last call.  They are
 * copied under the lock and shown outside it, so that a slow reader of
 * the output does not hold up a checkpoint. */
static void
show_progress (Batch *batch)
{
  guint n = batch->tasks->len;
  g_autofree VmsCopyStats *shown = g_new0 (VmsCopyStats, n);
  g_autofree gboolean *fresh = g_new0 (gboolean, n);
  g_autofree GQueue *reconnects = g_new0 (GQueue, n);

  g_mutex_lock (&batch->lock);
  for (guint i = 0; i < n; i++)
    {
      Task *task = batch->tasks->pdata[i];

      fresh[i] = task->fresh;
      shown[i] = task->shown;
      task->fresh = FALSE;
      reconnects[i] = task->reconnects;
      g_queue_init (&task->reconnects);
    }
  g_mutex_unlock (&batch->lock);
  for (guint i = 0; i < n; i++)
    {
      Task *task = batch->tasks->pdata[i];
      Reconnect *note;

      while ((note = g_queue_pop_head (&reconnects[i])))
        {
          show_reconnect (batch->rep, task->copy, note);
          reconnect_free (note);
        }

      if (fresh[i])
        vms_progress_update (batch->rep->progress, task->copy->disk->name,
                             task->copy->phase, shown[i].work_done,
                             shown[i].work_total, shown[i].bytes_written);
    }
}

/* Bytes the batch's disks sent so far, as their latest figures say. */
static guint64
bytes_sent (Batch *batch)
{
  g_autoptr (GMutexLocker) locker = g_mutex_locker_new (&batch->lock);
  guint64 sent = 0;

  for (guint i = 0; i < batch->tasks->len; i++)
    sent += ((Task *)batch->tasks->pdata[i])->shown.bytes_written;
  return sent;
}

/* Start the workers and show progress until every task is finished. */
static gboolean
run_tasks (Batch *batch, GError **error)
{
  guint n = MIN (batch->tasks->len, VMS_REPLICATE_MAX_PARALLEL_DISKS);
  g_autoptr (GPtrArray) threads = g_ptr_array_new ();
  GError *thread_error = NULL;

  for (guint i = 0; i < n; i++)
    {
      GThread *thread
          = g_thread_try_new ("vms-copy", worker, batch, &thread_error);

      if (!thread)
        break;
      g_ptr_array_add (threads, thread);
    }
  if (threads->len == 0)
    {
      /* Not one thread: nothing was copied. */
      g_propagate_prefixed_error (error, thread_error,
                                  "cannot start a copy thread: ");
      return FALSE;
    }
  /* Fewer threads than asked only copy fewer disks at once. */
  g_clear_error (&thread_error);

  g_mutex_lock (&batch->lock);
  while (batch->finished < batch->tasks->len)
    {
      g_cond_wait_until (&batch->changed, &batch->lock,
                         g_get_monotonic_time () + PROGRESS_INTERVAL_US);
      g_mutex_unlock (&batch->lock);
      show_progress (batch);
      vms_replication_backpressure_tick (batch->rep, bytes_sent (batch));
      g_mutex_lock (&batch->lock);
    }
  g_mutex_unlock (&batch->lock);
  for (guint i = 0; i < threads->len; i++)
    g_thread_join (threads->pdata[i]);
  show_progress (batch);
  return TRUE;
}

/* The batch's outcome: the failure that stopped the others, else the
 * first disk's stop (a stop asked by the caller stops every disk). */
static gboolean
outcome (Batch *batch, GError **error)
{
  Task *failed = batch->first_failure;

  for (guint i = 0; !failed && i < batch->tasks->len; i++)
    {
      Task *task = batch->tasks->pdata[i];

      if (task->error)
        failed = task;
    }
  if (!failed)
    return TRUE;
  g_propagate_prefixed_error (error, g_steal_pointer (&failed->error),
                              "disk %s (%s): ", failed->copy->disk->name,
                              failed->copy->phase);
  return FALSE;
}

/* The largest of a gint64 member of the batch's disks' copy stats (at
 * offset in VmsCopyStats): the disks copy at once. */
static gint64
batch_most (Batch *batch, gsize offset)
{
  gint64 most = 0;

  for (guint i = 0; i < batch->tasks->len; i++)
    {
      Task *task = batch->tasks->pdata[i];

      most = MAX (most, G_STRUCT_MEMBER (gint64, &task->stats, offset));
    }
  return most;
}

static void
forward_cancel (GCancellable *cancellable, gpointer batch_cancellable)
{
  g_cancellable_cancel (batch_cancellable);
}

static void
batch_clear (Batch *batch)
{
  VmsReplicate *rep = batch->rep;

  /* The exports go in every case: a resumed run makes new ones. */
  for (guint i = 0; i < batch->tasks->len; i++)
    {
      Task *task = batch->tasks->pdata[i];

      if (task->export)
        vms_export_remove (rep->qmp, task->export, NULL);
    }
  g_ptr_array_unref (batch->tasks);
  g_clear_object (&batch->cancellable);
  g_mutex_clear (&batch->lock);
  g_cond_clear (&batch->changed);
}

gboolean
vms_replicate_copy_disks (VmsReplicate *rep, GPtrArray *copies, GError **error)
{
  Batch batch = { .rep = rep };
  guint connections = connections_per_disk (
      rep->config, MIN (copies->len, VMS_REPLICATE_MAX_PARALLEL_DISKS));
  gulong handler = 0;
  gint64 started_us;
  gboolean ok = FALSE;

  /* The guest's latency before the copy is measured before it starts. */
  vms_replication_backpressure_begin_pass (rep);
  g_mutex_init (&batch.lock);
  g_cond_init (&batch.changed);
  batch.cancellable = g_cancellable_new ();
  batch.tasks = g_ptr_array_new_with_free_func ((GDestroyNotify)task_free);
  for (guint i = 0; i < copies->len; i++)
    {
      Task *task = g_new0 (Task, 1);

      task->batch = &batch;
      task->copy = copies->pdata[i];
      task->copy->done = FALSE;
      g_ptr_array_add (batch.tasks, task);
      if (!prepare_task (&batch, task, connections, error))
        {
          g_prefix_error (error, "disk %s (%s): ", task->copy->disk->name,
                          task->copy->phase);
          goto out;
        }
    }
  if (rep->cancellable)
    handler = g_cancellable_connect (
        rep->cancellable, G_CALLBACK (forward_cancel), batch.cancellable, NULL);

  started_us = g_get_monotonic_time ();
  ok = run_tasks (&batch, error) && outcome (&batch, error);
  /* The pass's time is the batch's: its disks were copied at once.  Time
   * without connections is left out: the rate measured here caps the
   * RAM's share of the link, which a reset did not make slower. */
  rep->run_us[rep->pass] += MAX (
      g_get_monotonic_time () - started_us
          - batch_most (&batch, G_STRUCT_OFFSET (VmsCopyStats, reconnect_us)),
      0);
  /* The slowest disk's FLUSH is the one a final round waits for. */
  if (ok && rep->pass == VMS_REPLICATE_PASS_ROUNDS)
    rep->round_flush_us
        = batch_most (&batch, G_STRUCT_OFFSET (VmsCopyStats, final_flush_us));
  g_cancellable_disconnect (rep->cancellable, handler);

out:
  batch_clear (&batch);
  return ok;
}
