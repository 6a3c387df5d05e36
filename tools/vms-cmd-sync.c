/* vmshift sync: copy a running VM's disks to the sink, then dirty rounds,
 * resumable at any point.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-cli.h"
#include "vms-bitmap.h"
#include "vms-copy.h"
#include "vms-disk.h"
#include "vms-export.h"
#include "vms-job.h"
#include "vms-progress.h"
#include "vms-qmp.h"

#include <errno.h>
#include <libnbd.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

/* Rounds stop when one dirties no more than this (bytes), unless told. */
#define DEFAULT_CONVERGE_BYTES (16 * 1024 * 1024)
/* A round that is at least this fraction of the previous one is not
 * shrinking: more rounds would not converge. */
#define NOT_SHRINKING_RATIO 0.9
/* Hard stop for --until-converged, whatever the figures say. */
#define MAX_ROUNDS 50

static const char *const description =
    "SOURCE is the QEMU to copy from: qmp:PATH (a QMP monitor socket that\n"
    "vmshift may use alone while it runs).  URI names the sink server, e.g.\n"
    "  nbd+unix:///?socket=/run/vmshift-sink.sock\n"
    "  nbds://dest.example:10809/?tls-psk-file=/etc/vmshift/psk\n"
    "Each disk becomes the replica PREFIX-DISK on that server.\n"
    "\n"
    "sync adds a dirty bitmap to every disk, copies each disk while the VM\n"
    "runs, then copies what the guest wrote meanwhile, round after round,\n"
    "until a round is small or stops shrinking.  It leaves the last bitmap\n"
    "recording, so 'vmshift sync --resume JOB' (or a migration) goes on from\n"
    "there.  Progress is checkpointed after each FLUSH at the sink; after a\n"
    "crash, Ctrl-C, a killed sink or a cut link, --resume sends again only\n"
    "what was not checkpointed.\n";

/* Set from the signal handler; the copy engine polls it. */
static volatile gint stop_requested;

typedef struct
{
  char *sink;               /* --sink */
  char *job_id;             /* --job */
  char *resume;             /* --resume JOB */
  char *state_dir;          /* --state-dir */
  char **disks;             /* --disk, repeatable */
  char *replica_prefix;     /* --replica-prefix */
  char *max_bandwidth;      /* --max-bandwidth */
  int rounds;               /* --rounds; -1: until converged */
  gboolean until_converged; /* --until-converged */
  char *converge;           /* --converge-bytes */
  int connections;          /* --connections */
  int queue_depth;          /* --queue-depth */
  char *request_size;       /* --request-size */
  char *checkpoint_bytes;   /* --checkpoint-bytes */
  char *granularity;        /* --granularity */
  int checkpoint_seconds;   /* --checkpoint-seconds */
  int io_timeout;           /* --io-timeout */
  gboolean json;            /* --json */
} SyncOptions;

typedef struct
{
  SyncOptions *options;       /* what the user asked */
  VmsJob *job;                /* state, saved at every checkpoint */
  VmsQmp *qmp;                /* the source QEMU */
  char *nbd_socket;           /* QEMU's NBD server socket */
  VmsProgress *progress;      /* output */
  VmsRate *rate;              /* --max-bandwidth, or NULL */
  guint64 converge_bytes;     /* round size that counts as converged */
  guint32 request_size;       /* bytes per request */
  guint64 checkpoint_bytes;   /* bytes between checkpoints */
  guint32 granularity;        /* bytes per bitmap bit, 0: QEMU's default */
  VmsJobDisk *disk;           /* disk being copied */
  const char *phase;          /* "background" or "round N" */
  VmsCopyStats last;          /* figures at the last checkpoint */
} Sync;

static void
handle_stop_signal (int signal_number)
{
  g_atomic_int_set (&stop_requested, 1);
}

static gboolean
parse_size (const char *option, const char *text, guint64 minimum,
            guint64 *out, GError **error)
{
  char *end = NULL;
  guint64 value, scale = 1;

  if (!text)
    return TRUE;
  value = g_ascii_strtoull (text, &end, 10);
  switch (end && *end ? g_ascii_toupper (*end) : 0)
    {
    case 0:
      break;
    case 'K':
      scale = 1024;
      break;
    case 'M':
      scale = 1024 * 1024;
      break;
    case 'G':
      scale = 1024 * 1024 * 1024;
      break;
    default:
      scale = 0;
    }
  if (end == text || scale == 0 || (*end && end[1] && !g_str_equal (end + 1, "iB")
                                    && !g_str_equal (end + 1, "B"))
      || value > G_MAXUINT64 / scale || value * scale < minimum)
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                   "%s wants a size like 64M or 1G (at least %" G_GUINT64_FORMAT
                   " bytes), not '%s'", option, minimum, text);
      return FALSE;
    }
  *out = value * scale;
  return TRUE;
}

static char *
default_state_dir (void)
{
  if (geteuid () == 0)
    return g_strdup ("/var/lib/vmshift");
  return g_build_filename (g_get_user_state_dir (), "vmshift", NULL);
}

/* The sink URI with the export path set to export_name (caller frees). */
static char *
sink_uri_for (const char *sink, const char *export_name, GError **error)
{
  g_autoptr (GUri) base = g_uri_parse (sink, G_URI_FLAGS_ENCODED_QUERY,
                                       error);
  g_autofree char *path = NULL;
  g_autoptr (GUri) uri = NULL;

  if (!base)
    {
      g_prefix_error (error, "--sink %s: ", sink);
      return NULL;
    }
  if (!g_str_has_prefix (g_uri_get_scheme (base), "nbd"))
    {
      g_set_error (error, G_URI_ERROR, G_URI_ERROR_BAD_SCHEME,
                   "--sink %s: expected an NBD URI (nbd://, nbds://, "
                   "nbd+unix://, nbds+unix://)", sink);
      return NULL;
    }
  path = g_strconcat ("/", export_name, NULL);
  uri = g_uri_build (G_URI_FLAGS_ENCODED_QUERY, g_uri_get_scheme (base),
                     g_uri_get_userinfo (base), g_uri_get_host (base),
                     g_uri_get_port (base), path, g_uri_get_query (base),
                     NULL);
  return g_uri_to_string (uri);
}

/* Replica and bitmap names are built from these, so keep only the
 * characters the sink accepts. */
static char *
sanitise_name (const char *text)
{
  GString *out = g_string_new (NULL);

  for (const char *p = text; *p; p++)
    g_string_append_c (out, g_ascii_isalnum (*p) || *p == '-' || *p == '_'
                                ? *p : '_');
  if (out->len == 0)
    g_string_append (out, "vm");
  return g_string_free (out, FALSE);
}

static char *
bitmap_name (VmsJob *job, guint round)
{
  return g_strdup_printf ("vmshift-%s-%u", job->id, round);
}

static char *
export_name (VmsJob *job, VmsJobDisk *disk)
{
  return g_strdup_printf ("vmshift-%s-%s-r%u", job->id, disk->name,
                          disk->round);
}

/* ---- the sink ---- */

/* Make sure the replica exists with the disk's size (creates it over NBD:
 * the sink needs no shell). */
static gboolean
ensure_replica (Sync *sync, VmsJobDisk *disk, GError **error)
{
  g_autofree char *create = g_strdup_printf ("%s@create=%" G_GUINT64_FORMAT,
                                             disk->replica, disk->size);
  g_autofree char *uri = sink_uri_for (sync->job->sink, create, error);
  struct nbd_handle *nbd;

  if (!uri)
    return FALSE;
  nbd = nbd_create ();
  nbd_set_uri_allow_local_file (nbd, true);
  if (nbd_connect_uri (nbd, uri) < 0)
    {
      g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_CONNECT,
                   "sink %s: cannot open replica '%s' of %" G_GUINT64_FORMAT
                   " bytes (unreachable, or the replica exists with another "
                   "size): %s", sync->job->sink, disk->replica, disk->size,
                   nbd_get_error ());
      nbd_close (nbd);
      return FALSE;
    }
  nbd_shutdown (nbd, 0);
  nbd_close (nbd);
  return TRUE;
}

/* ---- copying ---- */

static gboolean
on_checkpoint (const VmsCopyStats *stats, gpointer user_data, GError **error)
{
  Sync *sync = user_data;
  VmsJobDisk *disk = sync->disk;

  disk->watermark = stats->durable;
  disk->bytes_read += stats->bytes_read - sync->last.bytes_read;
  disk->bytes_written += stats->bytes_written - sync->last.bytes_written;
  disk->bytes_zeroed += stats->bytes_zeroed - sync->last.bytes_zeroed;
  sync->last = *stats;
  return vms_job_save (sync->job, error);
}

static void
on_progress (const VmsCopyStats *stats, gpointer user_data)
{
  Sync *sync = user_data;

  vms_progress_update (sync->progress, sync->disk->name, sync->phase,
                       stats->watermark, stats->end, stats->bytes_written);
}

/* One pass over a disk: all of it (bitmap NULL) or what bitmap marks,
 * from the disk's watermark on. */
static gboolean
copy_pass (Sync *sync, VmsJobDisk *disk, const char *bitmap, GError **error)
{
  SyncOptions *options = sync->options;
  g_autofree char *export = export_name (sync->job, disk);
  g_autofree char *source_uri = NULL;
  g_autofree char *dest_uri = sink_uri_for (sync->job->sink, disk->replica,
                                            error);
  g_autofree char *escaped_socket = NULL;
  VmsCopyStats stats = { 0 };
  VmsCopySpec spec = { 0 };
  gboolean ok;

  if (!dest_uri)
    return FALSE;
  if (!vms_export_add (sync->qmp, disk->node, export, bitmap, error))
    return FALSE;
  escaped_socket = g_uri_escape_string (sync->nbd_socket, "/", FALSE);
  source_uri = g_strdup_printf ("nbd+unix:///%s?socket=%s", export,
                                escaped_socket);

  spec.source_uri = source_uri;
  spec.dest_uri = dest_uri;
  spec.bitmap = bitmap;
  spec.start = disk->watermark;
  spec.end = disk->size;
  spec.connections = options->connections;
  spec.queue_depth = options->queue_depth;
  spec.request_size = sync->request_size;
  spec.checkpoint_bytes = sync->checkpoint_bytes;
  spec.checkpoint_ms = options->checkpoint_seconds * 1000;
  spec.io_timeout_ms = options->io_timeout * 1000;
  spec.rate = sync->rate;
  spec.stop = &stop_requested;
  spec.checkpoint = on_checkpoint;
  spec.progress = on_progress;
  spec.user_data = sync;
  sync->disk = disk;
  memset (&sync->last, 0, sizeof sync->last);

  ok = vms_copy_run (&spec, &stats, error);
  /* The export goes in every case: a resumed run makes a new one. */
  vms_export_remove (sync->qmp, export, NULL);
  if (!ok)
    g_prefix_error (error, "disk %s (%s): ", disk->name, sync->phase);
  return ok;
}

static gboolean
check_bitmap (Sync *sync, VmsJobDisk *disk, const char *name, GError **error)
{
  g_autoptr (VmsBitmapInfo) info = NULL;
  g_autoptr (GError) query_error = NULL;

  if (!name)
    return TRUE;
  info = vms_bitmap_query (sync->qmp, disk->node, name, &query_error);
  if (!info)
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                   "disk %s: dirty bitmap %s is gone from node %s (did QEMU "
                   "restart%s?); writes since the last round cannot be "
                   "found, so start a new job", disk->name, name, disk->node,
                   disk->persistent ? " uncleanly" : "; raw images keep "
                   "bitmaps only in memory");
      return FALSE;
    }
  return TRUE;
}

static gboolean
background_copy (Sync *sync, VmsJobDisk *disk, GError **error)
{
  if (disk->round > 0)
    return TRUE;
  if (!disk->recording_bitmap)
    {
      g_autofree char *name = bitmap_name (sync->job, 1);

      /* The bitmap comes first: every write from now on is recorded, so
       * whatever the copy reads too early is copied again in round 1. */
      if (!vms_bitmap_add (sync->qmp, disk->node, name, sync->granularity,
                           &disk->persistent,
                           error))
        return FALSE;
      disk->recording_bitmap = g_steal_pointer (&name);
      disk->watermark = 0;
      if (!vms_job_save (sync->job, error))
        return FALSE;
    }
  else if (!check_bitmap (sync, disk, disk->recording_bitmap, error))
    return FALSE;

  sync->phase = "background";
  disk->resumed_from = disk->watermark;
  if (disk->watermark > 0)
    vms_progress_event (sync->progress, "resume", NULL,
                        "%s: resuming the background copy at %"
                        G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " bytes",
                        disk->name, disk->watermark, disk->size);
  if (!copy_pass (sync, disk, NULL, error))
    return FALSE;
  disk->round = 1;
  disk->watermark = 0;
  return vms_job_save (sync->job, error);
}

/* One dirty round on one disk; *dirty gets the round's size. */
static gboolean
dirty_round (Sync *sync, VmsJobDisk *disk, guint64 *dirty, GError **error)
{
  g_autofree char *phase = NULL;

  if (!disk->copying_bitmap)
    {
      g_autofree char *next = bitmap_name (sync->job, disk->round + 1);
      g_autoptr (VmsBitmapInfo) info = NULL;

      if (!check_bitmap (sync, disk, disk->recording_bitmap, error)
          || !vms_bitmap_switch (sync->qmp, disk->node,
                                 disk->recording_bitmap, next,
                                 disk->persistent, error))
        return FALSE;
      disk->copying_bitmap = g_steal_pointer (&disk->recording_bitmap);
      disk->recording_bitmap = g_steal_pointer (&next);
      info = vms_bitmap_query (sync->qmp, disk->node, disk->copying_bitmap,
                               error);
      if (!info)
        return FALSE;
      disk->round_dirty = info->count;
      disk->watermark = 0;
      if (!vms_job_save (sync->job, error))
        return FALSE;
    }
  else if (!check_bitmap (sync, disk, disk->copying_bitmap, error)
           || !check_bitmap (sync, disk, disk->recording_bitmap, error))
    return FALSE;

  phase = g_strdup_printf ("round %u", disk->round);
  sync->phase = phase;
  disk->resumed_from = disk->watermark;
  if (!copy_pass (sync, disk, disk->copying_bitmap, error))
    return FALSE;

  /* Flushed at the sink: only now may the round's bitmap go. */
  if (!vms_bitmap_remove (sync->qmp, disk->node, disk->copying_bitmap, error))
    return FALSE;
  g_clear_pointer (&disk->copying_bitmap, g_free);
  *dirty = disk->last_round_dirty = disk->round_dirty;
  disk->round_dirty = 0;
  disk->round++;
  disk->watermark = 0;
  if (!vms_job_save (sync->job, error))
    return FALSE;
  {
    JsonObject *fields = json_object_new ();
    g_autofree char *size = vms_format_size (*dirty);

    json_object_set_string_member (fields, "disk", disk->name);
    json_object_set_int_member (fields, "round", disk->round - 1);
    json_object_set_int_member (fields, "dirty", *dirty);
    vms_progress_event (sync->progress, "round", fields,
                        "%s: round %u copied %s of writes", disk->name,
                        disk->round - 1, size);
  }
  return TRUE;
}

static gboolean
run_rounds (Sync *sync, GError **error)
{
  SyncOptions *options = sync->options;
  guint64 previous = G_MAXUINT64;
  int done = 0;

  if (options->rounds == 0)
    {
      /* No new round, but one a killed run left half done is finished:
       * its bitmap is already disabled and holds writes nobody else has. */
      for (guint i = 0; i < sync->job->disks->len; i++)
        {
          VmsJobDisk *disk = sync->job->disks->pdata[i];
          guint64 dirty;

          if (disk->copying_bitmap && !dirty_round (sync, disk, &dirty, error))
            return FALSE;
        }
      return TRUE;
    }
  for (;;)
    {
      guint64 total = 0;

      if (g_atomic_int_get (&stop_requested))
        break;
      for (guint i = 0; i < sync->job->disks->len; i++)
        {
          guint64 dirty = 0;

          if (!dirty_round (sync, sync->job->disks->pdata[i], &dirty, error))
            return FALSE;
          total += dirty;
        }
      done++;
      if (options->rounds >= 0 && done >= options->rounds)
        break;
      if (options->rounds < 0
          && (total <= sync->converge_bytes
              || (previous != G_MAXUINT64
                  && total >= NOT_SHRINKING_RATIO * previous)
              || done >= MAX_ROUNDS))
        {
          g_autofree char *size = vms_format_size (total);

          vms_progress_event (sync->progress, "converged", NULL,
                              "rounds end: the last round held %s%s", size,
                              total <= sync->converge_bytes
                                  ? "" : " and is not shrinking (the guest "
                                         "writes as fast as the link "
                                         "copies)");
          break;
        }
      previous = total;
    }
  return TRUE;
}

/* ---- the job ---- */

static char *
query_string (VmsQmp *qmp, const char *command, const char *member)
{
  g_autoptr (JsonNode) result = vms_qmp_execute (qmp, command, NULL, NULL);

  if (!result || !JSON_NODE_HOLDS_OBJECT (result))
    return g_strdup ("");
  return g_strdup (json_object_get_string_member_with_default (
      json_node_get_object (result), member, ""));
}

static gboolean
select_disks (Sync *sync, GPtrArray *found, GError **error)
{
  SyncOptions *options = sync->options;
  VmsJob *job = sync->job;
  g_autofree char *prefix = sanitise_name (
      options->replica_prefix ? options->replica_prefix
                              : (*job->vm_name ? job->vm_name : "vm"));

  for (guint i = 0; i < found->len; i++)
    {
      VmsDisk *disk = found->pdata[i];
      VmsJobDisk *job_disk;
      g_autofree char *disk_name = sanitise_name (disk->name);

      if (options->disks && !g_strv_contains ((const char *const *)
                                              options->disks, disk->name))
        continue;
      job_disk = vms_job_add_disk (job, disk->name);
      job_disk->node = g_strdup (disk->node_name);
      job_disk->format = g_strdup (disk->format);
      job_disk->size = disk->size;
      job_disk->replica = g_strdup_printf ("%s-%s", prefix, disk_name);
    }
  for (guint i = 0; options->disks && options->disks[i]; i++)
    if (!vms_job_find_disk (job, options->disks[i]))
      {
        /* vms_disk_find says which disks there are. */
        return vms_disk_find (found, options->disks[i], error) != NULL;
      }
  if (job->disks->len == 0)
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                   "the VM has no disk to copy");
      return FALSE;
    }
  return TRUE;
}

/* A resumed job must find its disks again, the same size. */
static gboolean
match_disks (Sync *sync, GPtrArray *found, GError **error)
{
  for (guint i = 0; i < sync->job->disks->len; i++)
    {
      VmsJobDisk *disk = sync->job->disks->pdata[i];
      VmsDisk *now = vms_disk_find (found, disk->name, error);

      if (!now)
        {
          g_prefix_error (error, "job %s: ", sync->job->id);
          return FALSE;
        }
      if (now->size != disk->size)
        {
          g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                       "job %s: disk %s is now %" G_GUINT64_FORMAT " bytes, "
                       "was %" G_GUINT64_FORMAT " (resized?)", sync->job->id,
                       disk->name, now->size, disk->size);
          return FALSE;
        }
      /* Auto-generated node names change when QEMU restarts. */
      g_free (disk->node);
      disk->node = g_strdup (now->node_name);
    }
  return TRUE;
}

static gboolean
open_job (Sync *sync, const char *source, GError **error)
{
  SyncOptions *options = sync->options;
  g_autofree char *vm_name = NULL;
  g_autofree char *vm_uuid = NULL;
  g_autoptr (GPtrArray) found = NULL;
  g_autoptr (VmsJob) job = NULL;

  vm_name = query_string (sync->qmp, "query-name", "name");
  vm_uuid = query_string (sync->qmp, "query-uuid", "UUID");
  found = vms_disk_discover (sync->qmp, error);
  if (!found)
    return FALSE;

  if (options->resume)
    {
      job = vms_job_load (options->state_dir, options->resume, error);
      if (!job)
        return FALSE;
      if (!g_str_equal (job->vm_name, vm_name)
          || !g_str_equal (job->vm_uuid, vm_uuid))
        {
          g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                       "job %s belongs to VM '%s' (uuid %s), but %s is VM "
                       "'%s' (uuid %s)", job->id, job->vm_name, job->vm_uuid,
                       source, vm_name, vm_uuid);
          return FALSE;
        }
      if (options->sink)
        {
          g_free (job->sink);
          job->sink = g_strdup (options->sink);
        }
      sync->job = g_steal_pointer (&job);
      if (!match_disks (sync, found, error))
        return FALSE;
    }
  else
    {
      g_autofree char *id = options->job_id
          ? g_strdup (options->job_id)
          : g_strdup_printf ("%s-%" G_GINT64_FORMAT,
                             *vm_name ? vm_name : "vm",
                             g_get_real_time () / G_USEC_PER_SEC);
      g_autofree char *safe_id = sanitise_name (id);

      if (!vms_job_id_is_valid (safe_id, error))
        return FALSE;
      job = vms_job_load (options->state_dir, safe_id, NULL);
      if (job)
        {
          g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                       "job %s exists; continue it with --resume %s",
                       safe_id, safe_id);
          return FALSE;
        }
      sync->job = vms_job_new (options->state_dir, safe_id);
      sync->job->source = g_strdup (source);
      sync->job->sink = g_strdup (options->sink);
      g_free (sync->job->vm_name);
      sync->job->vm_name = g_steal_pointer (&vm_name);
      g_free (sync->job->vm_uuid);
      sync->job->vm_uuid = g_steal_pointer (&vm_uuid);
      if (!select_disks (sync, found, error))
        return FALSE;
    }
  sync->job->runs++;
  sync->job->phase = VMS_JOB_PHASE_COPYING;
  return vms_job_save (sync->job, error);
}

static void
report (Sync *sync, gint64 started)
{
  double seconds = (g_get_monotonic_time () - started) / 1e6;

  for (guint i = 0; i < sync->job->disks->len; i++)
    {
      VmsJobDisk *disk = sync->job->disks->pdata[i];
      JsonObject *fields = json_object_new ();
      g_autofree char *written = vms_format_size (disk->bytes_written);
      g_autofree char *zeroed = vms_format_size (disk->bytes_zeroed);
      g_autofree char *last = vms_format_size (disk->last_round_dirty);

      json_object_set_string_member (fields, "disk", disk->name);
      json_object_set_string_member (fields, "replica", disk->replica);
      json_object_set_int_member (fields, "bytes-written",
                                  disk->bytes_written);
      json_object_set_int_member (fields, "bytes-zeroed", disk->bytes_zeroed);
      json_object_set_int_member (fields, "bytes-read", disk->bytes_read);
      json_object_set_int_member (fields, "rounds", disk->round - 1);
      json_object_set_int_member (fields, "last-round-dirty",
                                  disk->last_round_dirty);
      json_object_set_string_member (fields, "recording-bitmap",
                                     disk->recording_bitmap);
      vms_progress_event (sync->progress, "disk-synced", fields,
                          "%s -> %s: %s sent, %s zeroed, %u rounds, last "
                          "round %s; bitmap %s keeps recording",
                          disk->name, disk->replica, written, zeroed,
                          disk->round - 1, last, disk->recording_bitmap);
    }
  {
    JsonObject *fields = json_object_new ();

    json_object_set_string_member (fields, "job", sync->job->id);
    json_object_set_double_member (fields, "seconds", seconds);
    vms_progress_event (sync->progress, "synced", fields,
                        "job %s synced in %.1f s; continue with 'vmshift "
                        "sync --resume %s' or a migration", sync->job->id,
                        seconds, sync->job->id);
  }
}

static gboolean
run_sync (Sync *sync, const char *source, GError **error)
{
  g_autofree char *socket_name = NULL;

  sync->qmp = vms_qmp_connect (source, 0, error);
  if (!sync->qmp)
    return FALSE;
  if (!open_job (sync, source, error))
    return FALSE;
  socket_name = g_strconcat (sync->job->id, ".nbd", NULL);
  sync->nbd_socket = g_build_filename (sync->options->state_dir, socket_name,
                                       NULL);
  if (!vms_export_server_start (sync->qmp, sync->nbd_socket, error))
    return FALSE;

  for (guint i = 0; i < sync->job->disks->len; i++)
    if (!ensure_replica (sync, sync->job->disks->pdata[i], error))
      return FALSE;
  for (guint i = 0; i < sync->job->disks->len; i++)
    if (!background_copy (sync, sync->job->disks->pdata[i], error))
      return FALSE;
  if (!run_rounds (sync, error))
    return FALSE;
  if (g_atomic_int_get (&stop_requested))
    {
      g_set_error (error, VMS_COPY_ERROR, VMS_COPY_ERROR_STOPPED,
                   "stopped on request");
      return FALSE;
    }
  sync->job->phase = VMS_JOB_PHASE_SYNCED;
  return vms_job_save (sync->job, error);
}

static int
exit_code_for (const GError *error)
{
  if (error->domain == VMS_COPY_ERROR
      && error->code == VMS_COPY_ERROR_STOPPED)
    return VMS_EXIT_STOPPED;
  if (error->domain == VMS_COPY_ERROR
      && (error->code == VMS_COPY_ERROR_CONNECT
          || error->code == VMS_COPY_ERROR_TIMEOUT))
    return VMS_EXIT_CONNECT;
  if (error->domain == VMS_QMP_ERROR)
    return vms_cli_exit_code_for (error);
  return VMS_EXIT_FAILED;
}

static gboolean
check_options (Sync *sync, int argc, char **argv, GError **error)
{
  SyncOptions *options = sync->options;
  guint64 bandwidth = 0, request = VMS_COPY_DEFAULT_REQUEST_SIZE;

  if (options->resume ? argc > 2 : argc != 2)
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                   "expected SOURCE --sink URI, or --resume JOB (see "
                   "'vmshift sync --help')");
      return FALSE;
    }
  if (!options->resume && !options->sink)
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                   "--sink URI is required");
      return FALSE;
    }
  if (options->rounds < -1 || (options->rounds >= 0 && options->until_converged)
      || options->connections < 0
      || options->connections > VMS_COPY_MAX_CONNECTIONS
      || options->queue_depth < 0
      || options->queue_depth > VMS_COPY_MAX_QUEUE_DEPTH
      || options->checkpoint_seconds < 0 || options->io_timeout < 0)
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                   "--rounds N (0 or more) and --until-converged exclude "
                   "each other; "
                   "--connections is 1..%d, --queue-depth 1..%d, and counts "
                   "and times are not negative", VMS_COPY_MAX_CONNECTIONS,
                   VMS_COPY_MAX_QUEUE_DEPTH);
      return FALSE;
    }
  sync->converge_bytes = DEFAULT_CONVERGE_BYTES;
  sync->checkpoint_bytes = VMS_COPY_DEFAULT_CHECKPOINT_BYTES;
  if (!parse_size ("--max-bandwidth", options->max_bandwidth, 1024,
                   &bandwidth, error)
      || !parse_size ("--request-size", options->request_size, 4096, &request,
                      error)
      || !parse_size ("--converge-bytes", options->converge, 0,
                      &sync->converge_bytes, error)
      || !parse_size ("--checkpoint-bytes", options->checkpoint_bytes,
                      1024 * 1024, &sync->checkpoint_bytes, error))
    return FALSE;
  {
    guint64 granularity = 0;

    if (!parse_size ("--granularity", options->granularity, 512,
                     &granularity, error))
      return FALSE;
    /* QEMU wants a power of two from 512 bytes to 2 GiB. */
    if (granularity > (G_GUINT64_CONSTANT (1) << 31)
        || (granularity & (granularity - 1)) != 0)
      {
        g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                     "--granularity must be a power of two from 512 to 2G");
        return FALSE;
      }
    sync->granularity = granularity;
  }
  if (request > VMS_COPY_MAX_REQUEST_SIZE)
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_MISMATCH,
                   "--request-size is at most %d bytes",
                   VMS_COPY_MAX_REQUEST_SIZE);
      return FALSE;
    }
  sync->request_size = request;
  if (bandwidth)
    /* A bucket of a tenth of a second smooths without starving. */
    sync->rate = vms_rate_new (bandwidth, MAX (bandwidth / 10, request));
  if (!options->state_dir)
    options->state_dir = default_state_dir ();
  return TRUE;
}

int
vms_cmd_sync (int argc, char **argv)
{
  SyncOptions options = { .rounds = -1 };
  Sync sync = { .options = &options };
  const GOptionEntry entries[] = {
    { "sink", 's', 0, G_OPTION_ARG_STRING, &options.sink,
      "NBD URI of the vmshift sink", "URI" },
    { "job", 'j', 0, G_OPTION_ARG_STRING, &options.job_id,
      "Name the new job (default: VM name and time)", "ID" },
    { "resume", 'r', 0, G_OPTION_ARG_STRING, &options.resume,
      "Continue job JOB where it stopped", "JOB" },
    { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &options.state_dir,
      "Where job state lives (default /var/lib/vmshift as root)", "DIR" },
    { "disk", 'd', 0, G_OPTION_ARG_STRING_ARRAY, &options.disks,
      "Copy only this disk (repeatable; default: all)", "NAME" },
    { "replica-prefix", 0, 0, G_OPTION_ARG_STRING, &options.replica_prefix,
      "Replicas are PREFIX-DISK (default: the VM name)", "PREFIX" },
    { "max-bandwidth", 'b', 0, G_OPTION_ARG_STRING, &options.max_bandwidth,
      "Send at most RATE bytes per second (e.g. 50M)", "RATE" },
    { "rounds", 'n', 0, G_OPTION_ARG_INT, &options.rounds,
      "Run exactly N dirty rounds (0: the background copy only)", "N" },
    { "until-converged", 0, 0, G_OPTION_ARG_NONE, &options.until_converged,
      "Run rounds until small or no longer shrinking (default)", NULL },
    { "converge-bytes", 0, 0, G_OPTION_ARG_STRING, &options.converge,
      "A round this small ends the rounds (default 16M)", "SIZE" },
    { "connections", 'c', 0, G_OPTION_ARG_INT, &options.connections,
      "Connections per side (default: CPUs, at most 4)", "N" },
    { "queue-depth", 'q', 0, G_OPTION_ARG_INT, &options.queue_depth,
      "Requests in flight per connection (default 64)", "N" },
    { "request-size", 0, 0, G_OPTION_ARG_STRING, &options.request_size,
      "Bytes per request (default 256K)", "SIZE" },
    { "checkpoint-bytes", 0, 0, G_OPTION_ARG_STRING,
      &options.checkpoint_bytes,
      "FLUSH and checkpoint after this much data (default 64M)", "SIZE" },
    { "checkpoint-seconds", 0, 0, G_OPTION_ARG_INT,
      &options.checkpoint_seconds,
      "... or after this many seconds (default 10)", "S" },
    { "io-timeout", 0, 0, G_OPTION_ARG_INT, &options.io_timeout,
      "Give up on a silent peer after S seconds (default 60)", "S" },
    { "granularity", 'g', 0, G_OPTION_ARG_STRING, &options.granularity,
      "Bytes per dirty-bitmap bit for a new job (default 64K)", "SIZE" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &options.json,
      "Print one JSON event per line on stdout", NULL },
    G_OPTION_ENTRY_NULL
  };
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsProgress) progress = NULL;
  const char *source;
  gint64 started = g_get_monotonic_time ();
  struct sigaction action = { .sa_handler = handle_stop_signal };
  int status = VMS_EXIT_OK;

  context = g_option_context_new ("[SOURCE] --sink URI");
  g_option_context_set_summary (context,
                                "Copy a running VM's disks to the sink, then "
                                "dirty rounds; resumable.");
  g_option_context_set_description (context, description);
  g_option_context_add_main_entries (context, entries, NULL);
  g_set_prgname ("vmshift sync");
  if (!g_option_context_parse (context, &argc, &argv, &error)
      || !check_options (&sync, argc, argv, &error))
    {
      vms_cli_error ("sync", "%s", error->message);
      status = VMS_EXIT_USAGE;
      goto out;
    }
  progress = vms_progress_new (options.json ? VMS_PROGRESS_JSON
                                            : VMS_PROGRESS_TEXT);
  sync.progress = progress;
  sigaction (SIGINT, &action, NULL);
  sigaction (SIGTERM, &action, NULL);

  if (options.resume)
    {
      g_autoptr (VmsJob) saved = vms_job_load (
          options.state_dir, options.resume, &error);

      if (!saved)
        {
          vms_cli_error ("sync", "%s", error->message);
          status = VMS_EXIT_FAILED;
          goto out;
        }
      source = argc == 2 ? argv[1] : saved->source;
      source = g_intern_string (source);
    }
  else
    source = argv[1];

  if (!run_sync (&sync, source, &error))
    {
      g_autofree char *hint = sync.job
          ? g_strdup_printf ("state saved in %s/%s.json; continue with: "
                             "vmshift sync --resume %s", options.state_dir,
                             sync.job->id, sync.job->id)
          : g_strdup ("");

      status = exit_code_for (error);
      /* People read stderr even with --json; programs get the event. */
      vms_cli_error ("sync", "%s", error->message);
      if (*hint)
        g_printerr ("%s\n", hint);
      if (options.json)
        vms_progress_event (progress, "error", NULL, "%s%s%s",
                            error->message, *hint ? "; " : "", hint);
    }
  else
    report (&sync, started);
  if (sync.qmp && vms_qmp_is_connected (sync.qmp))
    vms_export_server_stop (sync.qmp, NULL);

out:
  vms_job_free (sync.job);
  vms_qmp_free (sync.qmp);
  vms_rate_free (sync.rate);
  g_free (sync.nbd_socket);
  g_free (options.sink);
  g_free (options.job_id);
  g_free (options.resume);
  g_free (options.state_dir);
  g_strfreev (options.disks);
  g_free (options.replica_prefix);
  g_free (options.max_bandwidth);
  g_free (options.converge);
  g_free (options.request_size);
  g_free (options.checkpoint_bytes);
  g_free (options.granularity);
  return status;
}
