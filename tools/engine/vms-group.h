/* vmshift engine: a migration group, VMs that switch over together: each
 * member replicates on its own, then holds before its switchover until
 * every member can switch over; all then go within one window.  A member
 * that fails before its switchover fails the group, and every member
 * rolls back.  Thread-safe: each member runs in a thread of its own.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define VMS_GROUP_ERROR (vms_group_error_quark ())
GQuark vms_group_error_quark (void);

typedef enum
{
  VMS_GROUP_ERROR_FAILED, /* another member failed, or one was not ready
                             in time; the message names it */
} VmsGroupError;

/* From the release to every member paused at its switchover: QEMU
 * converges within a few of its RAM rounds once the hold is lifted. */
#define VMS_GROUP_DEFAULT_WINDOW_S 60

/* QEMU's downtime-limit while a member waits for the others: QEMU goes on
 * sending what the guest dirties but switches over only if a round leaves
 * almost nothing (0 would switch over after the first pass, without
 * looking at what was dirtied meanwhile). */
#define VMS_GROUP_HOLD_LIMIT_MS 1

typedef struct _VmsGroup VmsGroup;

/* members: their names (the jobs' ids).  hold_s: how long members ready
 * to switch over wait for the last one, from the first that was. */
VmsGroup *vms_group_new (const char *name, const char *const *members,
                         guint hold_s, guint window_s);
VmsGroup *vms_group_ref (VmsGroup *group);
void vms_group_unref (VmsGroup *group);
const char *vms_group_get_name (VmsGroup *group);

/* Cancelled when the group fails: what each member runs under. */
GCancellable *vms_group_get_cancellable (VmsGroup *group);

/* member could switch over now (its RAM would cross within its
 * objective): it waits up to wait_ms for the others, TRUE with *released
 * once every member could, or a member paused.  FALSE with error when the
 * group failed, or when the hold ran out (then the group fails, naming
 * who was not ready). */
gboolean vms_group_ready (VmsGroup *group, const char *member, gint64 wait_ms,
                          gboolean *released, GError **error);

/* The group was released: a member not ready yet lets its QEMU
 * converge as soon as it can. */
gboolean vms_group_released (VmsGroup *group);

/* member's source is paused before its switchover (which releases the
 * group if it was not): wait until every member's is, TRUE then.  FALSE
 * with error when the group failed or the window since the release ran
 * out (the group fails). */
gboolean vms_group_paused (VmsGroup *group, const char *member, GError **error);

/* member's memory migration starts.  With wait (a member whose backend
 * switches over by itself, so that it cannot be held at the switchover),
 * it waits until every member's has reached its start: they start
 * together, and converge about together.  FALSE with error when the
 * group failed, or no other member arrived within hold seconds of the
 * first (then the group fails, naming who was late). */
gboolean vms_group_memory_starts (VmsGroup *group, const char *member,
                                  gboolean wait, GError **error);

/* member switches over by itself (libvirt does, without a pause vmshift
 * could hold): once released it cannot wait for the others, and is
 * counted as paused so that they do not wait for it either. */
void vms_group_pass (VmsGroup *group, const char *member);

/* member failed before its switchover: the group fails (the first cause
 * is kept) and its cancellable is cancelled. */
void vms_group_fail (VmsGroup *group, const char *member, const char *cause);

/* TRUE, with error saying which member failed and why ("group NAME rolls
 * back: MEMBER: CAUSE"), once the group has failed. */
gboolean vms_group_failed (VmsGroup *group, GError **error);

/* Why the group failed ("member: cause"), or NULL while it has not. */
char *vms_group_dup_failure (VmsGroup *group);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsGroup, vms_group_unref)

G_END_DECLS
