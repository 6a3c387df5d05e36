/* Unit tests: qemu-filter's waits on QEMU's events, against a scripted QEMU.
 *
 * Real QEMU decides when its events come; here the script does, so the
 * orders that are rare there (READY before blockdev-mirror's reply, a stale
 * READY from an earlier attempt, a job that fails instead) happen every
 * time.  The fake refuses any command sent while an event is due, so a
 * function that polls instead of waiting fails.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <gio/gio.h>

#include "vms-fake-qemu.h"
#include "vms-qemu-migration.h"
#include "vms-mirror.h"
#include "vms-vm.h"

/* Long enough that a waiting function is seen to wait, short enough for a
 * quick suite. */
#define EVENT_DELAY_MS 300

#define JOB(status, ready)                                                     \
  "[{\"device\": \"live0\", \"type\": \"mirror\", \"status\": \"" status       \
  "\", \"ready\": " ready ", \"len\": 0, \"offset\": 0, \"busy\": false, "     \
  "\"paused\": false, \"speed\": 0, \"io-status\": \"ok\", "                   \
  "\"auto-finalize\": true, \"auto-dismiss\": false}]"
#define FAILED_JOB                                                             \
  "[{\"device\": \"live0\", \"type\": \"mirror\", \"status\": "                \
  "\"concluded\", \"ready\": false, \"len\": 0, \"offset\": 0, "               \
  "\"busy\": false, \"paused\": false, \"speed\": 0, \"io-status\": "          \
  "\"ok\", \"error\": \"Input/output error\"}]"
#define JOB_STATUS(status)                                                     \
  VMS_FAKE_EVENT ("JOB_STATUS_CHANGE",                                         \
                  "{\"id\": \"live0\", \"status\": \"" status "\"}")
#define READY(job)                                                             \
  VMS_FAKE_EVENT ("BLOCK_JOB_READY",                                           \
                  "{\"type\": \"mirror\", \"device\": \"" job "\", "           \
                  "\"len\": 0, \"offset\": 0, \"speed\": 0}")
#define MIGRATION(status)                                                      \
  VMS_FAKE_EVENT ("MIGRATION", "{\"status\": \"" status "\"}")
#define RUN_STATE(status)                                                      \
  "{\"status\": \"" status "\", \"singlestep\": false, \"running\": false}"

/* The two commands every mirror start begins with. */
#define START_STEPS                                                            \
  { .command = "blockdev-add", .reply = "{}" },                                \
  {                                                                            \
    .command = "blockdev-mirror",                                              \
    .before = JOB_STATUS ("created") JOB_STATUS ("running"), .reply = "{}"     \
  }

/* Run the steps against a client, then check the fake saw them all and
 * nothing else. */
static void
assert_script_done (VmsFakeQemu *fake, VmsQmp *qmp)
{
  g_autofree char *report = NULL;

  vms_qmp_free (qmp);
  report = vms_fake_qemu_finish (fake);
  if (report)
    fail_msg ("against the script: %s", report);
}

static gboolean
start_mirror (VmsQmp *qmp, guint timeout_ms, GError **error)
{
  VmsMirrorTarget target = { .socket_path = "/nonexistent/sink.sock",
                             .export_name = "web1-vd0@live" };

  return vms_mirror_start (qmp, "d0", &target, "live0", "sink0", 10, timeout_ms,
                           error);
}

/* ---- mirror start ---- */

/* QEMU may send READY before the reply to blockdev-mirror; its query may
 * even lag behind the event.  The event alone makes the mirror ready, and
 * stays queued for anyone who waits for it with vms_qmp_wait_event. */
static void
test_mirror_ready_before_reply (void **state)
{
  static const VmsFakeStep steps[] = {
    { .command = "blockdev-add", .reply = "{}" },
    { .command = "blockdev-mirror",
      .before = JOB_STATUS ("created") JOB_STATUS ("running") READY ("live0"),
      .reply = "{}" },
    { .command = "query-block-jobs", .reply = JOB ("running", "false") },
    { 0 },
  };
  g_autoptr (GError) error = NULL;
  VmsQmp *qmp;
  VmsFakeQemu *fake = vms_fake_qemu_start (steps, &qmp);

  assert_true (start_mirror (qmp, 5000, &error));
  assert_true (
      vms_qmp_wait_event (qmp, "BLOCK_JOB_READY", 0, NULL, NULL, NULL, &error));
  assert_script_done (fake, qmp);
}

/* READY after the query, with another job's READY first: the wait sleeps
 * until QEMU speaks and takes only its own job's word. */
static void
test_mirror_ready_after_query (void **state)
{
  static const VmsFakeStep steps[] = {
    START_STEPS,
    { .command = "query-block-jobs",
      .reply = JOB ("running", "false"),
      .delay_ms = EVENT_DELAY_MS,
      .after = READY ("live9") READY ("live0") },
    { 0 },
  };
  g_autoptr (GError) error = NULL;
  VmsQmp *qmp;
  VmsFakeQemu *fake = vms_fake_qemu_start (steps, &qmp);
  gint64 start = g_get_monotonic_time ();

  assert_true (start_mirror (qmp, 5000, &error));
  assert_true (g_get_monotonic_time () - start >= EVENT_DELAY_MS * 1000);
  assert_script_done (fake, qmp);
}

/* JOB_STATUS_CHANGE to "ready" is QEMU's other way of saying it. */
static void
test_mirror_ready_by_job_status (void **state)
{
  static const VmsFakeStep steps[] = {
    START_STEPS,
    { .command = "query-block-jobs",
      .reply = JOB ("running", "false"),
      .delay_ms = EVENT_DELAY_MS,
      .after = JOB_STATUS ("ready") },
    { 0 },
  };
  g_autoptr (GError) error = NULL;
  VmsQmp *qmp;
  VmsFakeQemu *fake = vms_fake_qemu_start (steps, &qmp);

  assert_true (start_mirror (qmp, 5000, &error));
  assert_script_done (fake, qmp);
}

/* A READY of an earlier attempt with the same job id, still in the
 * client's queue, is not this job's: without a new one the start times
 * out with the old message and undoes itself. */
static void
test_mirror_stale_ready_is_not_taken (void **state)
{
  static const VmsFakeStep steps[] = {
    { .command = "query-status",
      .before = READY ("live0"),
      .reply = RUN_STATE ("running") },
    START_STEPS,
    { .command = "query-block-jobs", .reply = JOB ("running", "false") },
    /* After the timeout: did it fail meanwhile?  No. */
    { .command = "query-block-jobs", .reply = JOB ("running", "false") },
    /* vms_mirror_stop. */
    { .command = "query-block-jobs", .reply = JOB ("running", "false") },
    { .command = "block-job-cancel",
      .reply = "{}",
      .after = JOB_STATUS ("aborting") VMS_FAKE_EVENT (
          "BLOCK_JOB_CANCELLED",
          "{\"type\": \"mirror\", \"device\": \"live0\", \"len\": 0, "
          "\"offset\": 0, \"speed\": 0}") JOB_STATUS ("concluded") },
    { .command = "query-block-jobs", .reply = JOB ("concluded", "false") },
    { .command = "job-dismiss", .reply = "{}" },
    { .command = "query-block-jobs", .reply = "[]" },
    { .command = "query-named-block-nodes",
      .reply = "[{\"node-name\": \"sink0\"}]" },
    { .command = "blockdev-del", .reply = "{}" },
    { 0 },
  };
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) status = NULL;
  VmsQmp *qmp;
  VmsFakeQemu *fake = vms_fake_qemu_start (steps, &qmp);

  status = vms_qmp_execute (qmp, "query-status", NULL, &error);
  assert_non_null (status);
  assert_false (start_mirror (qmp, EVENT_DELAY_MS, &error));
  assert_true (g_error_matches (error, VMS_QMP_ERROR, VMS_QMP_ERROR_TIMEOUT));
  assert_string_equal (error->message, "the mirror of d0 is not ready after "
                                       "300 ms");
  assert_script_done (fake, qmp);
}

/* The target fails instead: the start says what QEMU said, at once. */
static void
test_mirror_failure_reported (void **state)
{
  static const VmsFakeStep steps[] = {
    START_STEPS,
    { .command = "query-block-jobs",
      .reply = JOB ("running", "false"),
      .delay_ms = EVENT_DELAY_MS,
      .after = VMS_FAKE_EVENT ("BLOCK_JOB_ERROR",
                               "{\"device\": \"live0\", \"operation\": "
                               "\"write\", \"action\": \"report\"}")
          JOB_STATUS ("aborting") JOB_STATUS ("concluded") },
    { .command = "query-block-jobs", .reply = FAILED_JOB },
    /* vms_mirror_stop: the job is over, only its remains go. */
    { .command = "query-block-jobs", .reply = FAILED_JOB },
    { .command = "job-dismiss", .reply = "{}" },
    { .command = "query-block-jobs", .reply = "[]" },
    { .command = "query-named-block-nodes", .reply = "[]" },
    { 0 },
  };
  g_autoptr (GError) error = NULL;
  VmsQmp *qmp;
  VmsFakeQemu *fake = vms_fake_qemu_start (steps, &qmp);

  assert_false (start_mirror (qmp, 5000, &error));
  assert_true (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_FAILED));
  assert_string_equal (error->message, "mirror job live0 stopped "
                                       "(concluded): Input/output error");
  assert_script_done (fake, qmp);
}

/* ---- mirror stop ---- */

/* A cancelled job takes its time to end: the stop waits for its events
 * and asks again only when one comes. */
static void
test_mirror_stop_waits_for_events (void **state)
{
  static const VmsFakeStep steps[] = {
    { .command = "query-block-jobs", .reply = JOB ("ready", "true") },
    { .command = "block-job-cancel",
      .reply = "{}",
      .delay_ms = EVENT_DELAY_MS,
      .after = JOB_STATUS ("aborting") },
    { .command = "query-block-jobs",
      .reply = JOB ("aborting", "false"),
      .delay_ms = EVENT_DELAY_MS,
      .after = JOB_STATUS ("concluded") },
    { .command = "query-block-jobs", .reply = JOB ("concluded", "false") },
    { .command = "job-dismiss", .reply = "{}" },
    { .command = "query-block-jobs", .reply = "[]" },
    { .command = "query-named-block-nodes",
      .reply = "[{\"node-name\": \"sink0\"}]" },
    { .command = "blockdev-del", .reply = "{}" },
    { 0 },
  };
  g_autoptr (GError) error = NULL;
  VmsQmp *qmp;
  VmsFakeQemu *fake = vms_fake_qemu_start (steps, &qmp);

  assert_true (vms_mirror_stop (qmp, "live0", "sink0", &error));
  assert_script_done (fake, qmp);
}

/* ---- migration cancel ---- */

static void
test_migration_cancel_waits_for_event (void **state)
{
  static const VmsFakeStep steps[] = {
    { .command = "query-migrate-capabilities",
      .reply = "[{\"capability\": \"xbzrle\", \"state\": false}, "
               "{\"capability\": \"events\", \"state\": true}]" },
    { .command = "migrate_cancel", .reply = "{}" },
    { .command = "query-migrate",
      .reply = "{\"status\": \"cancelling\"}",
      .delay_ms = EVENT_DELAY_MS,
      .after = MIGRATION ("cancelled") },
    { .command = "query-migrate", .reply = "{\"status\": \"cancelled\"}" },
    { 0 },
  };
  g_autoptr (GError) error = NULL;
  VmsQemuMigrationStatus final = VMS_QEMU_MIGRATION_NONE;
  VmsQmp *qmp;
  VmsFakeQemu *fake = vms_fake_qemu_start (steps, &qmp);

  assert_true (vms_qemu_migration_cancel (qmp, 5000, &final, &error));
  assert_int_equal (final, VMS_QEMU_MIGRATION_CANCELLED);
  assert_script_done (fake, qmp);
}

/* Without the "events" capability QEMU is silent: asking again is all
 * there is. */
static void
test_migration_cancel_without_events_asks_again (void **state)
{
  static const VmsFakeStep steps[] = {
    { .command = "query-migrate-capabilities",
      .reply = "[{\"capability\": \"events\", \"state\": false}]" },
    { .command = "migrate_cancel", .reply = "{}" },
    { .command = "query-migrate", .reply = "{\"status\": \"cancelling\"}" },
    { .command = "query-migrate", .reply = "{\"status\": \"cancelling\"}" },
    { .command = "query-migrate", .reply = "{\"status\": \"cancelled\"}" },
    { 0 },
  };
  g_autoptr (GError) error = NULL;
  VmsQemuMigrationStatus final = VMS_QEMU_MIGRATION_NONE;
  VmsQmp *qmp;
  VmsFakeQemu *fake = vms_fake_qemu_start (steps, &qmp);

  assert_true (vms_qemu_migration_cancel (qmp, 5000, &final, &error));
  assert_int_equal (final, VMS_QEMU_MIGRATION_CANCELLED);
  assert_script_done (fake, qmp);
}

/* ---- the VM ---- */

/* QEMU sends RESUME before cont's reply; the state confirms it. */
static void
test_resume (void **state)
{
  static const VmsFakeStep steps[] = {
    { .command = "cont",
      .before = VMS_FAKE_EVENT ("RESUME", "{}"),
      .reply = "{}" },
    { .command = "query-status", .reply = RUN_STATE ("running") },
    { 0 },
  };
  g_autoptr (GError) error = NULL;
  VmsQmp *qmp;
  VmsFakeQemu *fake = vms_fake_qemu_start (steps, &qmp);

  assert_true (vms_vm_resume (qmp, 5000, &error));
  assert_script_done (fake, qmp);
}

/* A destination that starts when its migration completes: the wait sleeps
 * until RESUME. */
static void
test_wait_run_state_wakes_on_resume (void **state)
{
  static const VmsFakeStep steps[] = {
    { .command = "query-status",
      .reply = RUN_STATE ("inmigrate"),
      .delay_ms = EVENT_DELAY_MS,
      .after = VMS_FAKE_EVENT ("RESUME", "{}") },
    { .command = "query-status", .reply = RUN_STATE ("running") },
    { 0 },
  };
  static const char *const states[] = { "running", "paused", NULL };
  g_autoptr (GError) error = NULL;
  g_autofree char *run_state = NULL;
  VmsQmp *qmp;
  VmsFakeQemu *fake = vms_fake_qemu_start (steps, &qmp);

  run_state = vms_vm_wait_run_state (qmp, states, 5000, &error);
  assert_non_null (run_state);
  assert_string_equal (run_state, "running");
  assert_script_done (fake, qmp);
}

static void
test_wait_run_state_times_out (void **state)
{
  static const VmsFakeStep steps[] = {
    { .command = "query-status", .reply = RUN_STATE ("paused") },
    { .command = "query-status", .reply = RUN_STATE ("paused") },
    { 0 },
  };
  static const char *const states[] = { "running", NULL };
  g_autoptr (GError) error = NULL;
  VmsQmp *qmp;
  VmsFakeQemu *fake = vms_fake_qemu_start (steps, &qmp);

  assert_null (vms_vm_wait_run_state (qmp, states, EVENT_DELAY_MS, &error));
  assert_true (g_error_matches (error, VMS_QMP_ERROR, VMS_QMP_ERROR_TIMEOUT));
  assert_string_equal (error->message, "the VM is still 'paused', not "
                                       "'running', after 300 ms");
  assert_script_done (fake, qmp);
}

/* quit returns once QEMU has closed the monitor, not at its reply. */
static void
test_quit_waits_for_hang_up (void **state)
{
  static const VmsFakeStep steps[] = {
    { .command = "quit",
      .reply = "{}",
      .delay_ms = EVENT_DELAY_MS,
      .after = VMS_FAKE_EVENT ("SHUTDOWN", "{\"guest\": false, \"reason\": "
                                           "\"host-qmp-quit\"}"),
      .hang_up = TRUE },
    { 0 },
  };
  g_autoptr (GError) error = NULL;
  VmsQmp *qmp;
  VmsFakeQemu *fake = vms_fake_qemu_start (steps, &qmp);
  gint64 start = g_get_monotonic_time ();

  assert_true (vms_vm_quit (qmp, 5000, &error));
  assert_true (g_get_monotonic_time () - start >= EVENT_DELAY_MS * 1000);
  assert_false (vms_qmp_is_connected (qmp));
  assert_script_done (fake, qmp);
}

static void
test_identity (void **state)
{
  static const VmsFakeStep steps[] = {
    { .command = "query-name", .reply = "{}" },
    { .command = "query-name", .reply = "{\"name\": \"web1\"}" },
    { .command = "query-name", .reply = "{\"name\": 7}" },
    { .command = "query-uuid",
      .reply = "{\"UUID\": \"11111111-2222-3333-4444-555555555555\"}" },
    { .command = "query-uuid", .reply = "[]" },
    { 0 },
  };
  g_autoptr (GError) error = NULL;
  g_autofree char *unnamed = NULL, *named = NULL, *uuid = NULL;
  VmsQmp *qmp;
  VmsFakeQemu *fake = vms_fake_qemu_start (steps, &qmp);

  unnamed = vms_vm_query_name (qmp, &error);
  assert_string_equal (unnamed, "");
  named = vms_vm_query_name (qmp, &error);
  assert_string_equal (named, "web1");
  assert_null (vms_vm_query_name (qmp, &error));
  assert_true (g_error_matches (error, VMS_QMP_ERROR, VMS_QMP_ERROR_PROTOCOL));
  assert_non_null (strstr (error->message, "query-name"));
  g_clear_error (&error);
  uuid = vms_vm_query_uuid (qmp, &error);
  assert_string_equal (uuid, "11111111-2222-3333-4444-555555555555");
  assert_null (vms_vm_query_uuid (qmp, &error));
  assert_true (g_error_matches (error, VMS_QMP_ERROR, VMS_QMP_ERROR_PROTOCOL));
  assert_script_done (fake, qmp);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_mirror_ready_before_reply),
    cmocka_unit_test (test_mirror_ready_after_query),
    cmocka_unit_test (test_mirror_ready_by_job_status),
    cmocka_unit_test (test_mirror_stale_ready_is_not_taken),
    cmocka_unit_test (test_mirror_failure_reported),
    cmocka_unit_test (test_mirror_stop_waits_for_events),
    cmocka_unit_test (test_migration_cancel_waits_for_event),
    cmocka_unit_test (test_migration_cancel_without_events_asks_again),
    cmocka_unit_test (test_resume),
    cmocka_unit_test (test_wait_run_state_wakes_on_resume),
    cmocka_unit_test (test_wait_run_state_times_out),
    cmocka_unit_test (test_quit_waits_for_hang_up),
    cmocka_unit_test (test_identity),
  };

  return cmocka_run_group_tests_name ("qemu-filter-events", tests, NULL, NULL);
}
