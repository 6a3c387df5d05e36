/* vmshift test harness: a vmshift command running in the background, its
 * JSON events read as they come.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

/* Runs of vmshift in the tests take seconds; this bounds a hang. */
#define VMS_TEST_COMMAND_TIMEOUT_MS (180 * 1000)

typedef struct
{
  GPid pid;       /* the program */
  int out_fd;     /* its stdout (JSON events) */
  GString *out;   /* what it printed so far */
  char *err_path; /* its stderr, in a file */
  int status;     /* exit status once reaped, else -1 */
} VmsTestCommand;

/* Start argv (NULL-terminated) in network namespace netns (NULL: ours);
 * stderr goes to a file in err_dir.  Fails the test if it cannot start. */
VmsTestCommand *vms_test_command_start (const char *netns,
                                        const char *const *argv,
                                        const char *err_dir);

/* The same, run in working directory cwd (NULL: ours). */
VmsTestCommand *vms_test_command_start_in (const char *netns, const char *cwd,
                                           const char *const *argv,
                                           const char *err_dir);

/* Read what it printed, for up to timeout_ms; TRUE once it exited. */
gboolean vms_test_command_pump (VmsTestCommand *command, int timeout_ms);

/* Wait (bounded) until it exits; returns the exit status. */
int vms_test_command_wait (VmsTestCommand *command);

/* Wait until stdout holds needle; fails the test if the program exits or
 * timeout_ms pass first. */
void vms_test_command_wait_for (VmsTestCommand *command, const char *needle,
                                int timeout_ms);

/* Wait, and fail the test with its output unless it exited 0. */
void vms_test_command_expect_success (VmsTestCommand *command);

/* Its stderr so far (caller frees). */
char *vms_test_command_stderr (VmsTestCommand *command);

/* The highest "done" of progress events for disk in phase. */
guint64 vms_test_command_last_progress (VmsTestCommand *command,
                                        const char *disk, const char *phase);

/* The last JSON event named event (borrowed from parser), or NULL. */
JsonObject *vms_test_command_find_event (VmsTestCommand *command,
                                         const char *event, JsonParser *parser);

/* The last JSON event named event and, unless disk is NULL, about disk
 * (its member "disk"), or NULL; caller unrefs (g_autoptr (JsonObject)).
 * vmshift's reports (disk-synced, migrated, granularity, ...) are read
 * this one way. */
JsonObject *vms_test_command_last_event (VmsTestCommand *command,
                                         const char *event, const char *disk);

/* The integer member of that event; fails the test, showing the output,
 * when there is no such event or it lacks member. */
gint64 vms_test_command_event_int (VmsTestCommand *command, const char *event,
                                   const char *disk, const char *member);

/* SIGKILL it if still running, close and remove everything. */
void vms_test_command_free (VmsTestCommand *command);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsTestCommand, vms_test_command_free)

/* A source disk (any format, possibly held open by QEMU) and a raw
 * replica hold the same bytes (qemu-img compare); fails the test if not. */
void vms_test_assert_identical (const char *source, const char *format,
                                const char *replica);
