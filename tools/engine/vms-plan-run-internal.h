/* vmshift engine: what the parts of a plan's run share (vms-plan-run.c
 * schedules, vms-plan-vm.c runs one VM, vms-plan-group-run.c a group,
 * vms-plan-events.c says what happens and runs the alert command).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "vms-group.h"
#include "vms-plan-ledger.h"
#include "vms-plan-run.h"

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef struct Runner Runner;
typedef struct GroupRun GroupRun;

/* What the scheduler starts and joins: a VM on its own, or a group. */
typedef struct
{
  GThread *thread;
  guint weight; /* VMs it copies at once */
} Unit;

/* One VM's thread and what became of it. */
typedef struct
{
  Unit unit; /* on its own; a member's thread is its group's */
  Runner *runner;
  const VmsPlanVm *vm;
  GroupRun *group;      /* its group's run, or NULL */
  GThread *thread;      /* a member's attempt */
  gboolean migrated;    /* the destination runs it */
  gboolean earlier;     /* ... since an earlier run of the plan */
  guint attempts;       /* made by this run */
  char *error_message;  /* the last attempt's failure, or NULL */
  gint64 stopped_at_us; /* its switchover, from "migrated": the source's */
  gint64 running_at_us; /* STOP and the destination running, -1 */
  gint64 downtime_ms;   /* that pause, -1: not known */
  double seconds;       /* its migration took, in this run; 0: none */
} Worker;

/* A group's thread: its members' attempts, together. */
struct GroupRun
{
  Unit unit;
  Runner *runner;
  const VmsPlanGroup *group;
  GPtrArray *members;  /* Worker* (the runner's) */
  VmsGroup *current;   /* the attempt's, while it runs */
  guint attempts;      /* made by this run */
  char *error_message; /* why the last attempt rolled back, or NULL */
};

struct Runner
{
  const VmsPlan *plan;
  const char *state_dir;
  VmsProgress *progress;
  GCancellable *cancellable;
  GMutex lock;            /* the progress output, and finished */
  GCond cond;             /* signalled when a unit is finished */
  GQueue finished;        /* Unit*: ended, not yet joined */
  gboolean deadline_told; /* a miss of the deadline was said */
  GAsyncQueue *alerts;    /* lines for the alert command, or NULL */
  VmsPlanLedger *ledger;  /* what plan status reads, or NULL */
  GThread *alerter;       /* runs them, or NULL */
  const char *const *estimate_order; /* the plan's estimate's, or NULL */
};

/* ---- vms-plan-events.c ---- */

/* Threads take turns on the output; each event says whose it is (vm, or
 * NULL for the plan's own), and the ledger notes it.  fields are not
 * taken. */
void vms_plan_emit (Runner *runner, const char *vm, const char *event,
                    JsonObject *fields, const char *text);

/* Said as vms_plan_emit says it, and given to the alert command, with the
 * VM's name, its group when group is not NULL, and the text as
 * "message". */
void vms_plan_tell (Runner *runner, const char *vm, const char *group,
                    const char *event, JsonObject *fields, const char *text);

/* How many of workers (Worker*) migrated. */
guint vms_plan_count_migrated (GPtrArray *workers);

/* The alert command's thread, when the plan has one; finish waits for
 * the alerts told so far. */
void vms_plan_alerts_start (Runner *runner);
void vms_plan_alerts_finish (Runner *runner);

/* ---- vms-plan-vm.c ---- */

void vms_plan_worker_free (Worker *worker);

/* What an earlier run left of the VM's job: whether there is one, and
 * whether it committed.  FALSE when it cannot be read. */
gboolean vms_plan_vm_look_at_job (Worker *worker, gboolean *exists,
                                  gboolean *migrated, GError **error);

/* One migration of the VM (its job resumed when resume), in group when
 * not NULL. */
gboolean vms_plan_vm_attempt (Worker *worker, gboolean resume, VmsGroup *group,
                              GError **error);

/* The VM's end, said and alerted. */
void vms_plan_vm_report_end (Worker *worker);

/* unit ended: the scheduler joins it. */
void vms_plan_unit_finished (Runner *runner, Unit *unit);

/* A VM on its own: its attempts, in its thread. */
gpointer vms_plan_vm_main (gpointer data);

/* ---- vms-plan-group-run.c ---- */

void vms_plan_group_run_free (GroupRun *run);

/* A group: its members' attempts together, in its thread. */
gpointer vms_plan_group_main (gpointer data);

G_END_DECLS
