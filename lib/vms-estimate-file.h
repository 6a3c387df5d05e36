/* vmshift: the estimate's result file, STATE_DIR/estimate-ID.json: what
 * vmshift estimate observed of each VM and of the link, what it
 * predicted, and the reading of one VM's prediction back for vmshift
 * migrate --estimate ID.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#include "vms-estimate-model.h"
#include "vms-probe.h"

G_BEGIN_DECLS

#define VMS_ESTIMATE_FILE_ERROR (vms_estimate_file_error_quark ())
GQuark vms_estimate_file_error_quark (void);

typedef enum
{
  VMS_ESTIMATE_FILE_ERROR_INVALID_ID, /* the id cannot name a file */
  VMS_ESTIMATE_FILE_ERROR_NOT_FOUND,  /* no such estimate in the directory */
  VMS_ESTIMATE_FILE_ERROR_IO,         /* the file cannot be read or written */
  VMS_ESTIMATE_FILE_ERROR_CORRUPT,    /* the file is not an estimate */
  VMS_ESTIMATE_FILE_ERROR_NO_VM,      /* the estimate has no such VM */
} VmsEstimateFileError;

/* One disk as the estimate observed it. */
typedef struct
{
  char *name;               /* disk name (guest device id) */
  guint64 size;             /* virtual size, bytes */
  guint64 allocated;        /* bytes that are not a hole, at the last map */
  guint64 data;             /* bytes neither a hole nor known zero, likewise */
  guint64 data_start;       /* data at the first map, as the window opened */
  double growth_rate;       /* bytes/s its data grew by between the maps */
  double growth_position;   /* where: share of its data before, weighted */
  double copy_rate;         /* bytes/s of data its background copy moves */
  double round_rate;        /* bytes/s a dirty round of it moves, 0: unknown */
  double pace;              /* the guest's pace while a copy runs, 0: unknown */
  double round_noise;       /* the probe rounds' relative deviation from the
                               dirty curve */
  double write_rate;        /* bytes/s the guest wrote over the window */
  double latency_before_us; /* what its writes cost the guest over the
                               window (µs per write, flushes included),
                               0: unknown (too few writes) */
  double latency_copying_us; /* ... while the background copy's probe
                                ran (its worst slice's), 0: unknown */
  guint32 granularity;      /* bytes per bit of its bitmaps: what a job
                               would choose (vms_granularity_choose_asked),
                               0: not recorded (an older file) */
  char *granularity_reason; /* why, for people, or NULL */
  GArray *seconds;          /* double: when each dirty sample was taken, from
                               the window's start */
  GArray *dirty;            /* guint64: bytes the window's bitmap held then */
  GArray *written;          /* guint64: bytes QEMU counted written since the
                               window opened, at each sample; empty when
                               QEMU did not say */
} VmsEstimateFileDisk;

/* One VM: what was observed and what the model made of it. */
typedef struct
{
  char *source;           /* the SOURCE as given: QMP address or domain */
  char *vm_name;          /* QEMU's -name, "" when unnamed */
  char *vm_uuid;          /* QEMU's UUID, all zeroes without -uuid */
  guint64 ram_size;       /* base memory, bytes */
  double ram_nonzero;     /* share of RAM pages that are not zero */
  double ram_zstd_ratio;  /* those pages compressed with zstd as QEMU's
                             multifd would: bytes out per byte in, 0:
                             not measured */
  double ram_zstd_rate;   /* ... bytes in per second on one CPU here */
  double ram_dirty_rate;  /* mean of the RAM dirty rate samples over 1 s,
                             bytes/s ... */
  double ram_dirty_long_rate; /* ... and over ram_dirty_long_s (the
                                 distinct pages over that time, per
                                 second), 0: not measured */
  double ram_dirty_long_s;
  double throughput;      /* the link's bytes/s the model used */
  double setup_s;         /* a migration's fixed setup the model used */
  GPtrArray *disks;       /* VmsEstimateFileDisk*, in QEMU's order */
  VmsEstimate prediction; /* the model's output */
} VmsEstimateFileVm;

/* What vmshift's own steps cost, measured, in seconds. */
typedef struct
{
  double qmp_s;            /* a QMP round trip */
  double save_s;           /* a durable save of a small file */
  double server_s;         /* QEMU's NBD server started and stopped */
  double empty_copy_s;     /* a copy pass that finds nothing to copy */
  double empty_round_s;    /* a whole dirty round that holds nothing */
  double round_overhead_s; /* a pass's fixed cost the model used */
  double sink_connect_s;   /* a connection to the sink */
  guint n_empty_rounds;    /* empty rounds timed (not saved); 0: the costs
                              above are unknown */
} VmsEstimateFileSteps;

/* The whole estimate. */
typedef struct
{
  char *id;                   /* the estimate's name, in its file name */
  gint64 created;             /* when it started, seconds since the epoch */
  int window_s;               /* how long the VMs were observed */
  int interval_s;             /* a sample this often */
  double rtt_s;               /* the link's round-trip time */
  VmsProbeResult best;        /* the link's best configuration */
  GArray *probes;             /* VmsProbeResult: every configuration tried */
  VmsEstimateFileSteps steps; /* vmshift's own costs */
  GPtrArray *vms;             /* VmsEstimateFileVm*, as the SOURCEs came */
  guint *order;               /* indexes into vms: the group's order, or
                                 NULL before the prediction */
  double group_s;             /* the group, one VM after another */
} VmsEstimateFile;

VmsEstimateFile *vms_estimate_file_new (const char *id);
void vms_estimate_file_free (VmsEstimateFile *estimate);

/* A new VM at the end of estimate->vms (borrowed from it). */
VmsEstimateFileVm *vms_estimate_file_add_vm (VmsEstimateFile *estimate,
                                             const char *source);

/* A new disk at the end of vm->disks (borrowed from it). */
VmsEstimateFileDisk *vms_estimate_file_add_disk (VmsEstimateFileVm *vm,
                                                 const char *name,
                                                 guint64 size);

/* Where the estimate id is kept in state_dir (caller frees). */
char *vms_estimate_file_path (const char *state_dir, const char *id);

/* The file's contents as a JSON tree (caller unrefs), also what vmshift
 * estimate --json prints. */
JsonNode *vms_estimate_file_to_json (const VmsEstimateFile *estimate);

/* Write vms_estimate_file_path (state_dir, estimate->id) atomically and
 * durably (vms_file_replace_durably), readable by the owner only.  An
 * existing estimate of the same id is replaced. */
gboolean vms_estimate_file_save (const VmsEstimateFile *estimate,
                                 const char *state_dir, GError **error);

/* What vmshift estimate predicted for one VM. */
typedef struct
{
  double total_pause_s;      /* whole migration, --final-sync pause */
  double total_mirror_s;     /* whole migration, --final-sync mirror */
  double downtime_pause_s;   /* downtime, --final-sync pause */
  double downtime_mirror_s;  /* downtime, --final-sync mirror */
  double total_auto_s;       /* whole migration, --final-sync auto */
  double downtime_auto_s;    /* downtime, --final-sync auto */
  guint connections;         /* the link's best number of connections */
  guint32 request_size;      /* and request size, bytes */
  gboolean compress_zstd;    /* --compress zstd recommended */
  double backpressure_rate;  /* the guest's disk writes, all disks, held
                                to this for the rounds to converge
                                (bytes/s); 0: not needed */
  guint guest_latency_ms;    /* --max-guest-latency recommended, 0: none */
  double replication_rate;   /* ... the slowest copy expected under it,
                                bytes/s */
  GHashTable *granularities; /* disk name -> bytes per bit the estimate
                                observed it with (GUINT_TO_POINTER); a
                                disk recorded without one is absent */
} VmsPrediction;

/* Free what out holds (vms_estimate_file_load_prediction filled it). */
void vms_prediction_clear (VmsPrediction *prediction);

/* Read the estimate id in state_dir and find the VM with this UUID (or,
 * when it was estimated without one, this name; unnamed, this QMP
 * address).  What out held before is cleared (vms_prediction_clear). */
gboolean vms_estimate_file_load_prediction (const char *state_dir,
                                            const char *id, const char *vm_uuid,
                                            const char *vm_name,
                                            const char *source,
                                            VmsPrediction *out, GError **error);

/* The order the estimate id in state_dir gives its VMs (shortest
 * predicted first): their SOURCEs as they were given to it (caller
 * frees). */
char **vms_estimate_file_load_order (const char *state_dir, const char *id,
                                     GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsEstimateFile, vms_estimate_file_free)

G_END_DECLS
