/* vmshift engine: a migration group, VMs that switch over together.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Two meeting points.  "Ready": the member's RAM would cross within its
 * objective, but QEMU is held from switching over (its source runs on).
 * When every member is ready the group is released, and each QEMU
 * converges within a few rounds.  A held QEMU may converge all the same
 * (the hold is a downtime limit, not a stop); its member then arrives
 * paused, and releases the group at once.  "Paused": the member's source is
 * stopped before its switchover, its disks' last writes crossed; only
 * when every member is there does any go on, so that a member which
 * fails up to that point leaves every source to be rolled back.
 */
#include "vms-group.h"

G_DEFINE_QUARK (vms - group - error - quark, vms_group_error)

typedef enum
{
  MEMBER_READY = 1 << 0,
  MEMBER_PAUSED = 1 << 1,
  MEMBER_AT_MEMORY = 1 << 2,
} MemberFlags;

struct _VmsGroup
{
  gint refs;
  char *name;
  GMutex lock;
  GCond changed;             /* a member arrived, or the group failed */
  GHashTable *members;       /* name → MemberFlags */
  gint64 hold_us;            /* ready members wait this long for the rest */
  gint64 window_us;          /* released to all paused */
  gint64 first_ready_us;     /* monotonic, -1: none yet */
  gint64 first_at_memory_us; /* likewise */
  gint64 released_us;        /* monotonic, -1: not yet */
  char *failure;             /* "member: cause", NULL */
  GCancellable *cancellable; /* cancelled on failure */
};

VmsGroup *
vms_group_new (const char *name, const char *const *members, guint hold_s,
               guint window_s)
{
  VmsGroup *group = g_new0 (VmsGroup, 1);

  group->refs = 1;
  group->name = g_strdup (name);
  g_mutex_init (&group->lock);
  g_cond_init (&group->changed);
  group->members
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (guint i = 0; members[i]; i++)
    g_hash_table_insert (group->members, g_strdup (members[i]),
                         GUINT_TO_POINTER (0));
  group->hold_us = (gint64)hold_s * G_USEC_PER_SEC;
  group->window_us = (gint64)window_s * G_USEC_PER_SEC;
  group->first_ready_us = -1;
  group->first_at_memory_us = -1;
  group->released_us = -1;
  group->cancellable = g_cancellable_new ();
  return group;
}

VmsGroup *
vms_group_ref (VmsGroup *group)
{
  g_atomic_int_inc (&group->refs);
  return group;
}

void
vms_group_unref (VmsGroup *group)
{
  if (!group || !g_atomic_int_dec_and_test (&group->refs))
    return;
  g_free (group->name);
  g_mutex_clear (&group->lock);
  g_cond_clear (&group->changed);
  g_hash_table_unref (group->members);
  g_free (group->failure);
  g_object_unref (group->cancellable);
  g_free (group);
}

const char *
vms_group_get_name (VmsGroup *group)
{
  return group->name;
}

GCancellable *
vms_group_get_cancellable (VmsGroup *group)
{
  return group->cancellable;
}

/* Called locked. */
static void
fail_locked (VmsGroup *group, const char *member, const char *cause)
{
  if (group->failure)
    return;
  group->failure = g_strdup_printf ("%s: %s", member, cause);
  g_cond_broadcast (&group->changed);
  /* Members react to it in their own threads; none holds this lock. */
  g_cancellable_cancel (group->cancellable);
}

void
vms_group_fail (VmsGroup *group, const char *member, const char *cause)
{
  g_mutex_lock (&group->lock);
  fail_locked (group, member, cause);
  g_mutex_unlock (&group->lock);
}

char *
vms_group_dup_failure (VmsGroup *group)
{
  char *failure;

  g_mutex_lock (&group->lock);
  failure = g_strdup (group->failure);
  g_mutex_unlock (&group->lock);
  return failure;
}

/* Called locked: the members without flag, comma-separated, or NULL
 * when every member has it. */
static char *
missing_locked (VmsGroup *group, MemberFlags flag)
{
  g_autoptr (GString) missing = g_string_new (NULL);
  GHashTableIter iter;
  gpointer name, flags;

  g_hash_table_iter_init (&iter, group->members);
  while (g_hash_table_iter_next (&iter, &name, &flags))
    if (!(GPOINTER_TO_UINT (flags) & flag))
      g_string_append_printf (missing, "%s%s", missing->len ? ", " : "",
                              (const char *)name);
  return missing->len ? g_string_free (g_steal_pointer (&missing), FALSE)
                      : NULL;
}

/* Called locked. */
static void
mark_locked (VmsGroup *group, const char *member, MemberFlags flag)
{
  guint flags = GPOINTER_TO_UINT (g_hash_table_lookup (group->members, member));

  g_return_if_fail (g_hash_table_contains (group->members, member));
  g_hash_table_insert (group->members, g_strdup (member),
                       GUINT_TO_POINTER (flags | flag));
  g_cond_broadcast (&group->changed);
}

/* Called locked: FALSE with error when the group has failed. */
static gboolean
check_locked (VmsGroup *group, GError **error)
{
  if (!group->failure)
    return TRUE;
  g_set_error (error, VMS_GROUP_ERROR, VMS_GROUP_ERROR_FAILED,
               "group %s rolls back: %s", group->name, group->failure);
  return FALSE;
}

/* Called locked: every member has flag (TRUE), or the group failed or
 * its time since since_us ran out (FALSE, error set), or the wait until
 * wait_until_us is over (FALSE, no error). */
static gboolean
wait_locked (VmsGroup *group, MemberFlags flag, gint64 since_us,
             gint64 limit_us, const char *what, gint64 wait_until_us,
             GError **error)
{
  for (;;)
    {
      g_autofree char *missing = NULL;
      gint64 now = g_get_monotonic_time ();

      if (!check_locked (group, error))
        return FALSE;
      missing = missing_locked (group, flag);
      if (!missing)
        return TRUE;
      if (now >= since_us + limit_us)
        {
          g_autofree char *cause
              = g_strdup_printf ("not %s within %" G_GINT64_FORMAT " s", what,
                                 limit_us / G_USEC_PER_SEC);

          fail_locked (group, missing, cause);
          return check_locked (group, error);
        }
      if (now >= wait_until_us)
        return FALSE;
      g_cond_wait_until (&group->changed, &group->lock,
                         MIN (wait_until_us, since_us + limit_us));
    }
}

gboolean
vms_group_ready (VmsGroup *group, const char *member, gint64 wait_ms,
                 gboolean *released, GError **error)
{
  gboolean all = TRUE;

  g_mutex_lock (&group->lock);
  if (group->first_ready_us < 0)
    group->first_ready_us = g_get_monotonic_time ();
  mark_locked (group, member, MEMBER_READY);
  if (group->released_us < 0)
    all = wait_locked (group, MEMBER_READY, group->first_ready_us,
                       group->hold_us, "ready to switch over",
                       g_get_monotonic_time () + wait_ms * 1000, error);
  else
    all = check_locked (group, error);
  if (all && group->released_us < 0)
    group->released_us = g_get_monotonic_time ();
  /* Released early by a member that paused (see vms_group_paused). */
  *released = all || (group->released_us >= 0 && !group->failure);
  g_mutex_unlock (&group->lock);
  return *released || !(error && *error);
}

gboolean
vms_group_failed (VmsGroup *group, GError **error)
{
  gboolean failed;

  g_mutex_lock (&group->lock);
  failed = !check_locked (group, error);
  g_mutex_unlock (&group->lock);
  return failed;
}

gboolean
vms_group_released (VmsGroup *group)
{
  gboolean released;

  g_mutex_lock (&group->lock);
  released = group->released_us >= 0;
  g_mutex_unlock (&group->lock);
  return released;
}

gboolean
vms_group_paused (VmsGroup *group, const char *member, GError **error)
{
  gboolean all;

  g_mutex_lock (&group->lock);
  if (group->first_ready_us < 0)
    group->first_ready_us = g_get_monotonic_time ();
  mark_locked (group, member, MEMBER_READY | MEMBER_PAUSED);
  /* A QEMU that converged while held pauses its guest until the others
   * are paused too: every member is released now, to converge as soon as
   * each can, rather than held until all could. */
  if (group->released_us < 0)
    group->released_us = g_get_monotonic_time ();
  all = wait_locked (group, MEMBER_PAUSED, group->released_us, group->window_us,
                     "paused at its switchover", G_MAXINT64, error);
  g_mutex_unlock (&group->lock);
  return all;
}

void
vms_group_pass (VmsGroup *group, const char *member)
{
  g_mutex_lock (&group->lock);
  if (group->first_ready_us < 0)
    group->first_ready_us = g_get_monotonic_time ();
  if (group->released_us < 0)
    group->released_us = g_get_monotonic_time ();
  mark_locked (group, member, MEMBER_READY | MEMBER_PAUSED);
  g_mutex_unlock (&group->lock);
}

gboolean
vms_group_memory_starts (VmsGroup *group, const char *member, gboolean wait,
                         GError **error)
{
  gboolean ok;

  g_mutex_lock (&group->lock);
  if (group->first_at_memory_us < 0)
    group->first_at_memory_us = g_get_monotonic_time ();
  mark_locked (group, member, MEMBER_AT_MEMORY);
  ok = wait ? wait_locked (group, MEMBER_AT_MEMORY, group->first_at_memory_us,
                           group->hold_us, "at its memory migration's start",
                           G_MAXINT64, error)
            : check_locked (group, error);
  g_mutex_unlock (&group->lock);
  return ok;
}
