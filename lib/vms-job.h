/* vmshift: the state of a job, kept so that no work is done twice.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define VMS_JOB_ERROR (vms_job_error_quark ())
GQuark vms_job_error_quark (void);

typedef enum
{
  VMS_JOB_ERROR_NOT_FOUND, /* no such job in the state directory */
  VMS_JOB_ERROR_CORRUPT,   /* the state file cannot be read */
  VMS_JOB_ERROR_IO,        /* the state file cannot be written */
  VMS_JOB_ERROR_MISMATCH,  /* the job no longer matches its VM (another
                              VM, a resized disk, a lost bitmap) */
  VMS_JOB_ERROR_INVALID,   /* a job id that cannot be one, or a VM
                              without a disk to copy */
  VMS_JOB_ERROR_EXISTS,    /* a new job's id is taken */
  VMS_JOB_ERROR_LOCKED,    /* another process works on the job */
  VMS_JOB_ERROR_PHASE,     /* the job's phase does not allow this */
} VmsJobError;

/* Longest job id; ids become file and bitmap names. */
#define VMS_JOB_MAX_ID 64

typedef struct
{
  char *name;               /* disk name (guest device id) */
  char *node;               /* QEMU format node the bitmaps live on */
  char *format;             /* image format, e.g. "qcow2" */
  guint64 size;             /* virtual size in bytes */
  char *replica;            /* replica name at the sink */
  gboolean persistent;      /* bitmaps are stored in the image */
  guint round;              /* 0: background copy; k >= 1: dirty round k */
  char *recording_bitmap;   /* enabled bitmap collecting new writes */
  char *copying_bitmap;     /* disabled bitmap of the round being copied */
  guint64 round_dirty;      /* dirty bytes of the round being copied */
  guint64 watermark;        /* durable position of the current pass */
  guint64 last_round_dirty; /* dirty bytes of the last finished round */
  guint64 bytes_read;    /* from the source, all runs, to the last checkpoint */
  guint64 bytes_written; /* data sent to the sink, likewise */
  guint64 bytes_zeroed;  /* zeroed at the sink, likewise */
  guint64 resumed_from;  /* watermark the latest run started from */
  /* Data sent per kind of pass, all runs (a migration reports them). */
  guint64 bytes_background; /* background copy */
  guint64 bytes_rounds;     /* dirty rounds while the VM ran */
  guint64 bytes_final;      /* the last round (pause) or catch-up (mirror) */
  guint64 reconnects;       /* lost connections made again, all runs */
  guint64 bytes_resent;     /* of bytes_written, sent again after them */
  guint64 bytes_matched;    /* read but not sent, all runs: the replica's
                               hash of the chunk was the same */
  gboolean compare_all;     /* the background copy sends only the chunks
                               whose hash differs from the replica's: the
                               disk's bitmaps were lost (QEMU restarted) */
  guint32 granularity;      /* bytes per bit of the job's bitmaps; 0: not
                               chosen yet, or a job file from before it was
                               recorded (its bitmaps tell) */
  char *granularity_reason; /* why that granularity, for people, or NULL */
  guint64 throttle_bps_wr;  /* write backpressure applied to the guest's
                               device (bytes/s), 0: none */
  JsonObject *throttle_original; /* the device's own I/O limits before the
                                    first step (query-block's members that
                                    block_set_io_throttle takes), restored
                                    when the backpressure ends; NULL: none
                                    recorded */
} VmsJobDisk;

typedef enum
{
  VMS_JOB_PHASE_COPYING,     /* background copy or dirty rounds in progress */
  VMS_JOB_PHASE_SYNCED,      /* rounds ended; bitmaps left recording */
  VMS_JOB_PHASE_MIGRATING,   /* vmshift migrate is (or was) running */
  VMS_JOB_PHASE_ROLLED_BACK, /* a migration failed or was aborted before
                                commit: the source runs, --resume goes on */
  VMS_JOB_PHASE_MIGRATED,    /* committed: the destination runs */
} VmsJobPhase;

/* What a migration adds to a job (absent for a plain sync). */
typedef struct
{
  char *dest_qmp;      /* QMP address of the destination QEMU */
  char *dest_uri;      /* where QEMU sends memory, e.g. tcp:HOST:PORT */
  char *final_sync;    /* "pause" or "mirror" */
  char *state;         /* the orchestration state reached */
  char *last_error;    /* why the last attempt rolled back, or NULL */
  gint64 pid;          /* vmshift process running it, 0 when none */
  guint attempts;      /* migrate runs on this job */
  JsonObject *libvirt; /* the libvirt backend's settings, or NULL (QMP) */
  char *estimate;      /* the estimate whose prediction is reported, or NULL */
  gboolean tls;        /* memory over TLS (--tls): a resume keeps it */
} VmsJobMigration;

typedef struct
{
  char *id;                   /* job id, also the file name */
  char *state_dir;            /* where the file lives */
  char *source;               /* QMP address of the source */
  char *sink;                 /* sink URI, without export name; NULL for a
                                 job seeded to a device, until a resume
                                 names its sink */
  char *vm_name;              /* from query-name, "" if unnamed */
  char *vm_uuid;              /* from query-uuid */
  VmsJobPhase phase;          /* where the job stands */
  guint runs;                 /* times a sync ran on this job */
  gint64 created;             /* seconds since the epoch */
  gint64 updated;             /* last save */
  GPtrArray *disks;           /* VmsJobDisk* */
  VmsJobMigration *migration; /* NULL unless vmshift migrate ran */
  gboolean saved;             /* the file holds this state as of the last save:
                                 FALSE for a new job and after a failed save */
} VmsJob;

/* An id is 1 to VMS_JOB_MAX_ID of [A-Za-z0-9._-], not starting with '.'
 * or '-' (it becomes a file name and part of QEMU's bitmap names). */
gboolean vms_job_id_is_valid (const char *id, GError **error);

/* The id of a job the user did not name: VM-SECONDS, or VM-SECONDS-N
 * for attempt N > 0, VM being vm_name shortened and with what an id
 * cannot hold replaced by '_' ("vm" when that leaves nothing usable).
 * Always valid.  Caller frees. */
char *vms_job_default_id (const char *vm_name, gint64 seconds, guint attempt);

/* Make state_dir (and its parents) if missing and check that a job file
 * can be created in it, before anything is done that would need one to
 * resume.  VMS_JOB_ERROR_IO says why not. */
gboolean vms_job_check_state_dir (const char *state_dir, GError **error);

/* Where jobs live unless told: /var/lib/vmshift for root, else
 * $XDG_STATE_HOME/vmshift (caller frees). */
char *vms_job_default_state_dir (void);

VmsJob *vms_job_new (const char *state_dir, const char *id);
VmsJobDisk *vms_job_add_disk (VmsJob *job, const char *name);
/* The job's migration part, made empty when missing. */
VmsJobMigration *vms_job_get_migration (VmsJob *job);
VmsJobDisk *vms_job_find_disk (VmsJob *job, const char *name);
void vms_job_free (VmsJob *job);

/* Read STATE_DIR/ID.json. */
VmsJob *vms_job_load (const char *state_dir, const char *id, GError **error);

/* Write the file atomically and durably (temp file, fsync, rename, fsync
 * of the directory): a crash leaves the old state or the new one. */
gboolean vms_job_save (VmsJob *job, GError **error);

/* The first save of a new job: its file is created only if no job has
 * the id (VMS_JOB_ERROR_EXISTS otherwise), atomically, so that two runs
 * can never both take one id. */
gboolean vms_job_save_new (VmsJob *job, GError **error);

const char *vms_job_phase_name (VmsJobPhase phase);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsJob, vms_job_free)

G_END_DECLS
