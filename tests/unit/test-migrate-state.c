/* Unit tests: the migration state machine and its rollback table.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vms-migrate-state.h"

static const VmsMigrateFinalSync modes[]
    = { VMS_MIGRATE_FINAL_PAUSE, VMS_MIGRATE_FINAL_MIRROR };

/* Walking "next" from PREFLIGHT visits the phases in order and ends. */
static void
test_happy_path (void **state)
{
  static const VmsMigrateState pause_path[] = {
    VMS_MIGRATE_PREFLIGHT, VMS_MIGRATE_BACKGROUND, VMS_MIGRATE_ROUNDS,
    VMS_MIGRATE_MEMORY,    VMS_MIGRATE_SWITCHOVER, VMS_MIGRATE_DESTINATION,
    VMS_MIGRATE_COMMIT,    VMS_MIGRATE_CLEANUP,    VMS_MIGRATE_DONE,
  };
  VmsMigrateState at = VMS_MIGRATE_PREFLIGHT;

  for (guint i = 1; i < G_N_ELEMENTS (pause_path); i++)
    {
      VmsMigrateState next
          = vms_migrate_state_next (at, VMS_MIGRATE_FINAL_PAUSE);

      assert_int_equal (next, pause_path[i]);
      assert_true (
          vms_migrate_state_can_move (at, next, VMS_MIGRATE_FINAL_PAUSE));
      at = next;
    }
  assert_int_equal (
      vms_migrate_state_next (VMS_MIGRATE_DONE, VMS_MIGRATE_FINAL_PAUSE),
      VMS_MIGRATE_DONE);
  /* Mirror mode goes through MIRROR between the rounds and memory. */
  assert_int_equal (
      vms_migrate_state_next (VMS_MIGRATE_ROUNDS, VMS_MIGRATE_FINAL_MIRROR),
      VMS_MIGRATE_MIRROR);
  assert_int_equal (
      vms_migrate_state_next (VMS_MIGRATE_MIRROR, VMS_MIGRATE_FINAL_MIRROR),
      VMS_MIGRATE_MEMORY);
  assert_false (vms_migrate_state_can_move (
      VMS_MIGRATE_ROUNDS, VMS_MIGRATE_MIRROR, VMS_MIGRATE_FINAL_PAUSE));
}

static void
test_no_skipping (void **state)
{
  for (guint m = 0; m < G_N_ELEMENTS (modes); m++)
    for (int from = 0; from < VMS_MIGRATE_N_STATES; from++)
      for (int to = 0; to < VMS_MIGRATE_N_STATES; to++)
        {
          gboolean allowed = vms_migrate_state_can_move (from, to, modes[m]);
          gboolean expected
              = (to == VMS_MIGRATE_ROLLBACK && from < VMS_MIGRATE_COMMIT)
                || (from == VMS_MIGRATE_ROLLBACK
                    && (to == VMS_MIGRATE_ROLLED_BACK
                        || to == VMS_MIGRATE_ROLLBACK))
                || (from != VMS_MIGRATE_ROLLBACK && from != VMS_MIGRATE_DONE
                    && from != VMS_MIGRATE_ROLLED_BACK
                    && to == (int)vms_migrate_state_next (from, modes[m]));

          if (allowed != expected)
            fail_msg ("%s -> %s in %s mode: %s, expected %s",
                      vms_migrate_state_name (from),
                      vms_migrate_state_name (to),
                      vms_migrate_final_sync_name (modes[m]),
                      allowed ? "allowed" : "refused",
                      expected ? "allowed" : "refused");
        }
  /* Nothing jumps straight to the switchover or past the commit. */
  assert_false (vms_migrate_state_can_move (
      VMS_MIGRATE_BACKGROUND, VMS_MIGRATE_SWITCHOVER, VMS_MIGRATE_FINAL_PAUSE));
  assert_false (vms_migrate_state_can_move (
      VMS_MIGRATE_COMMIT, VMS_MIGRATE_ROLLBACK, VMS_MIGRATE_FINAL_PAUSE));
  assert_false (vms_migrate_state_can_move (
      VMS_MIGRATE_N_STATES, VMS_MIGRATE_DONE, VMS_MIGRATE_FINAL_PAUSE));
}

/* Every state before COMMIT can roll back; what it undoes matches what
 * was started by then. */
static void
test_rollback_table (void **state)
{
  for (guint m = 0; m < G_N_ELEMENTS (modes); m++)
    for (int s = 0; s < VMS_MIGRATE_N_STATES; s++)
      {
        VmsMigrateUndo undo = vms_migrate_rollback_actions (s, modes[m]);
        gboolean before_commit = s < VMS_MIGRATE_COMMIT;

        if (s == VMS_MIGRATE_ROLLBACK)
          continue; /* test_interrupted_rollback */
        assert_int_equal (vms_migrate_state_can_roll_back (s), before_commit);
        if (!before_commit)
          {
            assert_int_equal (undo, 0);
            continue;
          }
        assert_true (undo & VMS_MIGRATE_UNDO_STOP_EXPORTS);
        assert_int_equal (!!(undo & VMS_MIGRATE_UNDO_CANCEL_MIGRATION),
                          s >= VMS_MIGRATE_MEMORY);
        assert_int_equal (!!(undo & VMS_MIGRATE_UNDO_STOP_MIRROR),
                          modes[m] == VMS_MIGRATE_FINAL_MIRROR
                              && s >= VMS_MIGRATE_MIRROR);
        assert_int_equal (!!(undo & VMS_MIGRATE_UNDO_FORGET_LIVE),
                          !!(undo & VMS_MIGRATE_UNDO_STOP_MIRROR));
        assert_int_equal (!!(undo & VMS_MIGRATE_UNDO_RESUME_SOURCE),
                          s >= VMS_MIGRATE_MEMORY);
        assert_int_equal (!!(undo & VMS_MIGRATE_UNDO_CHECK_DESTINATION),
                          s >= VMS_MIGRATE_DESTINATION);
      }
}

/* A rollback that was interrupted (its vmshift killed) is done again, in
 * full: it can have stopped after any of its actions. */
static void
test_interrupted_rollback (void **state)
{
  for (guint m = 0; m < G_N_ELEMENTS (modes); m++)
    {
      VmsMigrateUndo again
          = vms_migrate_rollback_actions (VMS_MIGRATE_ROLLBACK, modes[m]);

      assert_true (vms_migrate_state_can_roll_back (VMS_MIGRATE_ROLLBACK));
      assert_true (vms_migrate_state_can_move (VMS_MIGRATE_ROLLBACK,
                                               VMS_MIGRATE_ROLLBACK, modes[m]));
      for (int s = 0; s < VMS_MIGRATE_COMMIT; s++)
        {
          VmsMigrateUndo first = vms_migrate_rollback_actions (s, modes[m]);

          if ((first & again) != first)
            fail_msg ("a rollback from %s does %#x; done again it does only "
                      "%#x",
                      vms_migrate_state_name (s), first, again);
        }
    }
}

static void
test_names_and_resume (void **state)
{
  VmsMigrateFinalSync mode;

  for (int s = 0; s < VMS_MIGRATE_N_STATES; s++)
    assert_int_equal (vms_migrate_state_parse (vms_migrate_state_name (s)), s);
  assert_int_equal (vms_migrate_state_parse ("nonsense"), -1);
  assert_int_equal (vms_migrate_state_parse (NULL), -1);
  assert_string_equal (vms_migrate_state_name (VMS_MIGRATE_N_STATES),
                       "unknown");
  assert_true (vms_migrate_final_sync_parse ("mirror", &mode));
  assert_int_equal (mode, VMS_MIGRATE_FINAL_MIRROR);
  assert_true (vms_migrate_final_sync_parse ("pause", &mode));
  assert_int_equal (mode, VMS_MIGRATE_FINAL_PAUSE);
  assert_true (vms_migrate_final_sync_parse ("auto", &mode));
  assert_int_equal (mode, VMS_MIGRATE_FINAL_AUTO);
  for (int m = VMS_MIGRATE_FINAL_PAUSE; m <= VMS_MIGRATE_FINAL_AUTO; m++)
    {
      VmsMigrateFinalSync back;

      assert_true (vms_migrate_final_sync_parse (
          vms_migrate_final_sync_name (m), &back));
      assert_int_equal (back, m);
    }
  assert_false (vms_migrate_final_sync_parse ("Pause", &mode));
  assert_false (vms_migrate_final_sync_parse (NULL, &mode));

  /* Before the destination ran, a resumed migration starts over (the copy
   * itself resumes from checkpoints); after, only commit is left. */
  for (int s = 0; s < VMS_MIGRATE_COMMIT; s++)
    assert_int_equal (vms_migrate_resume_state (s), VMS_MIGRATE_PREFLIGHT);
  assert_int_equal (vms_migrate_resume_state (VMS_MIGRATE_ROLLED_BACK),
                    VMS_MIGRATE_PREFLIGHT);
  assert_int_equal (vms_migrate_resume_state (VMS_MIGRATE_COMMIT),
                    VMS_MIGRATE_COMMIT);
  assert_int_equal (vms_migrate_resume_state (VMS_MIGRATE_CLEANUP),
                    VMS_MIGRATE_CLEANUP);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_happy_path),
    cmocka_unit_test (test_no_skipping),
    cmocka_unit_test (test_rollback_table),
    cmocka_unit_test (test_interrupted_rollback),
    cmocka_unit_test (test_names_and_resume),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
