/* Unit tests: a migration group's meeting points (vms-group.c), with a
 * thread per member as the plan runner has them.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "vms-group.h"

static const char *const trio[] = { "a", "b", "c", NULL };

/* A member that becomes ready and waits for the release, like a held
 * QEMU's poll loop. */
typedef struct
{
  VmsGroup *group;
  const char *name;
  gboolean released;
  GError *error;
} Member;

static gpointer
ready_until_released (gpointer data)
{
  Member *member = data;

  while (!member->released && !member->error)
    vms_group_ready (member->group, member->name, 50, &member->released,
                     &member->error);
  return NULL;
}

static gpointer
pause_and_wait (gpointer data)
{
  Member *member = data;

  member->released
      = vms_group_paused (member->group, member->name, &member->error);
  return NULL;
}

/* Nobody is released while one member is not ready; the last one's
 * arrival releases all. */
static void
test_released_when_all_ready (void **state)
{
  g_autoptr (VmsGroup) group = vms_group_new ("g", trio, 60, 60);
  Member a = { group, "a" }, b = { group, "b" };
  GThread *ta = g_thread_new ("a", ready_until_released, &a);
  GThread *tb = g_thread_new ("b", ready_until_released, &b);
  gboolean released = FALSE;
  GError *error = NULL;

  assert_false (vms_group_failed (group, NULL));
  g_usleep (200 * 1000);
  assert_false (a.released);
  assert_false (b.released);
  assert_true (vms_group_ready (group, "c", 0, &released, &error));
  assert_true (released);
  g_thread_join (ta);
  g_thread_join (tb);
  assert_true (a.released);
  assert_true (b.released);
  assert_null (a.error);
  assert_false (g_cancellable_is_cancelled (vms_group_get_cancellable (group)));
}

/* A member's failure wakes those paused, with its name and cause, and
 * cancels the group. */
static void
test_failure_stops_the_others (void **state)
{
  g_autoptr (VmsGroup) group = vms_group_new ("g", trio, 60, 60);
  Member a = { group, "a" }, b = { group, "b" };
  GThread *ta = g_thread_new ("a", pause_and_wait, &a);
  GThread *tb = g_thread_new ("b", pause_and_wait, &b);
  g_autofree char *failure = NULL;

  g_usleep (100 * 1000);
  vms_group_fail (group, "c", "destination QEMU: gone");
  vms_group_fail (group, "a", "a later failure is not the cause");
  g_thread_join (ta);
  g_thread_join (tb);
  assert_false (a.released);
  assert_non_null (a.error);
  assert_string_equal (a.error->message,
                       "group g rolls back: c: destination QEMU: gone");
  assert_true (
      g_error_matches (b.error, VMS_GROUP_ERROR, VMS_GROUP_ERROR_FAILED));
  assert_true (g_cancellable_is_cancelled (vms_group_get_cancellable (group)));
  failure = vms_group_dup_failure (group);
  assert_string_equal (failure, "c: destination QEMU: gone");
  {
    g_autoptr (GError) said = NULL;

    assert_true (vms_group_failed (group, &said));
    assert_string_equal (said->message,
                         "group g rolls back: c: destination QEMU: gone");
  }
  g_clear_error (&a.error);
  g_clear_error (&b.error);
}

/* The hold runs from the first ready member: then the group fails,
 * naming the members that were not ready. */
static void
test_hold_names_who_was_late (void **state)
{
  g_autoptr (VmsGroup) group = vms_group_new ("g", trio, 1, 60);
  Member a = { group, "a" };
  GThread *ta = g_thread_new ("a", ready_until_released, &a);
  g_autofree char *failure = NULL;

  g_thread_join (ta);
  assert_false (a.released);
  assert_non_null (a.error);
  failure = vms_group_dup_failure (group);
  assert_true (
      g_str_equal (failure, "b, c: not ready to switch over within 1 s")
      || g_str_equal (failure, "c, b: not ready to switch over within 1 s"));
  g_clear_error (&a.error);
}

/* Paused members go on only once all are; one that converged while
 * held counts as ready. */
static void
test_paused_together (void **state)
{
  g_autoptr (VmsGroup) group = vms_group_new ("g", trio, 60, 60);
  Member a = { group, "a" }, b = { group, "b" }, c = { group, "c" };
  GThread *ta = g_thread_new ("a", pause_and_wait, &a);
  GThread *tb = NULL, *tc = NULL;

  g_usleep (100 * 1000);
  assert_false (a.released);
  tb = g_thread_new ("b", ready_until_released, &b);
  tc = g_thread_new ("c", ready_until_released, &c);
  g_thread_join (tb);
  g_thread_join (tc);
  assert_true (b.released && c.released);
  assert_false (a.released);
  b.released = c.released = FALSE;
  tb = g_thread_new ("b", pause_and_wait, &b);
  g_usleep (100 * 1000);
  assert_false (a.released || b.released);
  tc = g_thread_new ("c", pause_and_wait, &c);
  g_thread_join (tb);
  g_thread_join (tc);
  g_thread_join (ta);
  assert_true (a.released && b.released && c.released);
  assert_null (a.error);
}

/* A member that paused (its QEMU converged while held) releases the
 * others at once, ready or not: its guest waits for them. */
static void
test_pause_releases (void **state)
{
  g_autoptr (VmsGroup) group = vms_group_new ("g", trio, 60, 60);
  Member a = { group, "a" };
  GThread *ta = g_thread_new ("a", pause_and_wait, &a);
  gboolean released = FALSE;
  GError *error = NULL;

  while (!vms_group_released (group))
    g_usleep (10 * 1000);
  assert_true (vms_group_ready (group, "b", 0, &released, &error));
  assert_true (released);
  assert_false (a.released);
  {
    Member b = { group, "b" }, c = { group, "c" };
    GThread *tb = g_thread_new ("b", pause_and_wait, &b);
    GThread *tc = g_thread_new ("c", pause_and_wait, &c);

    g_thread_join (tb);
    g_thread_join (tc);
    g_thread_join (ta);
    assert_true (a.released && b.released && c.released);
  }
}

/* A member that switches over by itself (libvirt) passes the paused
 * meeting point without waiting; the others go on once they are paused. */
static void
test_pass_counts_as_paused (void **state)
{
  g_autoptr (VmsGroup) group = vms_group_new ("g", trio, 60, 60);
  Member a = { group, "a" }, b = { group, "b" };
  GThread *ta = g_thread_new ("a", pause_and_wait, &a);
  GThread *tb = g_thread_new ("b", pause_and_wait, &b);

  g_usleep (200 * 1000);
  assert_false (a.released);
  vms_group_pass (group, "c");
  g_thread_join (ta);
  g_thread_join (tb);
  assert_true (a.released);
  assert_true (b.released);
  assert_null (a.error);
  assert_true (vms_group_released (group));
  assert_false (vms_group_failed (group, NULL));
}

static gpointer
start_memory_together (gpointer data)
{
  Member *member = data;

  member->released = vms_group_memory_starts (member->group, member->name, TRUE,
                                              &member->error);
  return NULL;
}

/* Members that cannot be held at their switchover start their memory
 * migrations together: each waits until every member has reached the
 * start, whether it waits there or not. */
static void
test_memory_starts_together (void **state)
{
  g_autoptr (VmsGroup) group = vms_group_new ("g", trio, 60, 60);
  Member a = { group, "a" }, b = { group, "b" };
  GThread *ta = g_thread_new ("a", start_memory_together, &a);
  GThread *tb = g_thread_new ("b", start_memory_together, &b);
  GError *error = NULL;

  g_usleep (200 * 1000);
  assert_false (a.released);
  assert_false (b.released);
  assert_true (vms_group_memory_starts (group, "c", FALSE, &error));
  g_thread_join (ta);
  g_thread_join (tb);
  assert_true (a.released && b.released);
  assert_null (a.error);
  assert_null (b.error);
}

/* One that never gets there fails the group after the hold, named. */
static void
test_memory_start_late_member_named (void **state)
{
  g_autoptr (VmsGroup) group = vms_group_new ("g", trio, 1, 60);
  g_autofree char *failure = NULL;
  GError *error = NULL;

  assert_true (vms_group_memory_starts (group, "a", FALSE, &error));
  assert_false (vms_group_memory_starts (group, "b", TRUE, &error));
  assert_non_null (error);
  failure = vms_group_dup_failure (group);
  assert_non_null (strstr (failure, "c: not at its memory migration's start"));
  g_error_free (error);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_released_when_all_ready),
    cmocka_unit_test (test_failure_stops_the_others),
    cmocka_unit_test (test_hold_names_who_was_late),
    cmocka_unit_test (test_paused_together),
    cmocka_unit_test (test_pause_releases),
    cmocka_unit_test (test_pass_counts_as_paused),
    cmocka_unit_test (test_memory_starts_together),
    cmocka_unit_test (test_memory_start_late_member_named),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
