/* vmshift: a migration plan, read from its file (vmshift-plan(5)): the
 * VMs to migrate, their groups, and how the plan runs them.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>

#include "vms-backpressure-option.h"

G_BEGIN_DECLS

#define VMS_PLAN_ERROR (vms_plan_error_quark ())
GQuark vms_plan_error_quark (void);

typedef enum
{
  VMS_PLAN_ERROR_INVALID, /* the file says something wrong; the message
                             names the section and the key */
} VmsPlanError;

/* One VM: its job is named after it.  Either driven over QMP (source,
 * dest_qmp, dest_uri) or through libvirt (connect, domain, dest). */
typedef struct
{
  char *name;              /* [vm NAME], also the job's id */
  char *group;             /* its group, or NULL: migrates on its own */
  char *link;              /* the link whose budget it shares, or NULL:
                              the plan's */
  char *source;            /* QMP: the source QEMU's monitor */
  char *dest_qmp;          /* QMP: the destination QEMU's monitor */
  char *dest_uri;          /* QMP: where memory goes */
  char *connect;           /* libvirt: the source host's URI */
  char *domain;            /* libvirt: the domain there */
  char *dest;              /* libvirt: the destination host's URI */
  char *migrate_uri;       /* libvirt: where memory goes (--migrateuri),
                              or NULL: libvirt's choice */
  gboolean persistent;     /* libvirt: defined at the destination
                              (--persistent) */
  gboolean undefine_source; /* libvirt: undefined at the source
                               (--undefinesource) */
  char *sink;              /* the sink's URI (the plan's when not given) */
  guint64 max_downtime_ms; /* objective (the plan's when not given) */
  char *final_sync;        /* auto, pause or mirror (the plan's) */
  gboolean tls;            /* memory over TLS, as migrate --tls (the
                              plan's) */
  gboolean insecure;       /* clear-text memory off loopback allowed, as
                              migrate --insecure (the plan's) */
  gboolean suspend;        /* left paused at the destination, as migrate
                              --suspend (the plan's) */
  gboolean hold_on_miss;   /* on-downtime-miss = hold, as migrate
                              --on-downtime-miss (the plan's) */
  VmsBackpressureOptions backpressure; /* write-backpressure,
                              max-guest-latency and
                              replication-backpressure, as migrate's
                              options of those names (each key the
                              plan's when not given) */
} VmsPlanVm;

/* A link between hosts with its own bandwidth budget, shared by the VMs
 * that cross it. */
typedef struct
{
  char *name;         /* [link NAME] */
  guint64 bandwidth;  /* bytes/s */
  GPtrArray *members; /* VmsPlanVm* (borrowed), in file order */
} VmsPlanLink;

/* VMs that switch over together: all or none. */
typedef struct
{
  char *name;              /* [group NAME] */
  GPtrArray *members;      /* VmsPlanVm* (borrowed), in file order */
  guint64 max_downtime_ms; /* the group's: first STOP to last RESUME,
                              0: none */
  guint64 hold_s;          /* how long members ready to switch over wait
                              for the last one before the group rolls
                              back */
} VmsPlanGroup;

typedef struct
{
  char *path;              /* the file it was read from */
  guint64 concurrency;     /* VMs (a group counts its members) copying at
                              once */
  guint64 bandwidth;       /* bytes/s shared by all, 0: unlimited */
  GDateTime *deadline;     /* the whole plan done by then, or NULL */
  guint64 max_downtime_ms; /* each VM's objective unless it says */
  char *final_sync;        /* each VM's unless it says */
  gboolean tls;            /* ... and likewise */
  gboolean insecure;
  gboolean suspend;
  gboolean hold_on_miss;
  char *state_dir;         /* the jobs' state, NULL: the default */
  char *estimate;          /* the estimate (its id) whose order the VMs
                              run in and whose prediction each is
                              reported against, or NULL: file order */
  char **alert;            /* argv run with each alert's JSON on stdin,
                              or NULL */
  guint64 retries;         /* attempts after a VM's first fails */
  guint64 alert_timeout_s; /* an alert command running longer is killed */
  GPtrArray *vms;          /* VmsPlanVm*, in file order */
  GPtrArray *groups;       /* VmsPlanGroup*, in file order */
  GPtrArray *links;        /* VmsPlanLink*, in file order */
} VmsPlan;

#define VMS_PLAN_DEFAULT_CONCURRENCY 1
#define VMS_PLAN_DEFAULT_MAX_DOWNTIME_MS 100
#define VMS_PLAN_DEFAULT_HOLD_S 300
#define VMS_PLAN_DEFAULT_ALERT_TIMEOUT_S 60

/* Read and check path: unknown sections and keys are refused (a typo
 * would otherwise drop a setting), as are VMs without a complete source
 * and destination, groups nobody is in, names that cannot be job ids
 * and a VM listed twice. */
VmsPlan *vms_plan_load (const char *path, GError **error);
void vms_plan_free (VmsPlan *plan);

/* The group named name, or NULL. */
VmsPlanGroup *vms_plan_find_group (const VmsPlan *plan, const char *name);

/* The link named name, or NULL. */
VmsPlanLink *vms_plan_find_link (const VmsPlan *plan, const char *name);

/* The position of vm in an estimate's order (its SOURCEs as given to
 * vmshift estimate: QMP addresses, or domain names), -1: not in it. */
int vms_plan_vm_in_order (const VmsPlanVm *vm, const char *const *order);

/* The plan's VMs in the order a run starts them (borrowed; free the
 * array): order's (an estimate's, shortest first) for the VMs it holds,
 * then the others in file order; NULL order: file order.  A group starts
 * where its first member stands. */
GPtrArray *vms_plan_run_order (const VmsPlan *plan, const char *const *order);

/* Bytes/s vm may use: its link's budget (or else the plan's) shared by
 * as many of the VMs on it as may copy at once; 0: unlimited. */
guint64 vms_plan_vm_bandwidth (const VmsPlan *plan, const VmsPlanVm *vm);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsPlan, vms_plan_free)

G_END_DECLS
