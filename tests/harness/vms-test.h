/* vmshift test harness: common helpers for integration tests.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

/* setjmp.h etc. must precede cmocka.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* meson's "skipped" exit status for a test binary that cannot run here. */
#define VMS_TEST_EXIT_SKIP 77

/* Fail the current cmocka test with a GError's message. */
#define vms_assert_no_error(error)                                             \
  do                                                                           \
    {                                                                          \
      if ((error) != NULL)                                                     \
        fail_msg ("unexpected error: %s", (error)->message);                   \
    }                                                                          \
  while (0)

/* Assert that expr (which sets error on failure) succeeded, and show the
 * error's message when it did not. */
#define vms_assert_ok(expr, error)                                             \
  do                                                                           \
    {                                                                          \
      if (!(expr))                                                             \
        fail_msg ("%s failed: %s", #expr,                                      \
                  (error) ? (error)->message : "(no error set)");              \
    }                                                                          \
  while (0)

/* Skip the current cmocka test, saying why (printf-style).  cmocka's own skip()
 * makes its program exit 0, so meson counts the test as passed; this one is
 * counted, and vms_test_run_group exits 77 when every test skipped.
 * (scripts/test counts each skipped test from cmocka's summary.) */
#define vms_test_skip(...)                                                     \
  do                                                                           \
    {                                                                          \
      vms_test_note_skip (__VA_ARGS__);                                        \
      skip ();                                                                 \
    }                                                                          \
  while (0)

void vms_test_note_skip (const char *format, ...) G_GNUC_PRINTF (1, 2);

/* Run a group of n tests as cmocka_run_group_tests_name does, only those
 * matching VMS_TEST_FILTER (a glob, e.g. test_abort*) when it is set.
 * Returns what main returns: the failures; else VMS_TEST_EXIT_SKIP when
 * every test that ran skipped (vms_test_skip); else 0. */
int vms_test_run_group (const char *name, const struct CMUnitTest *tests,
                        gsize n, CMFixtureFunction group_setup,
                        CMFixtureFunction group_teardown);

/* When a program the tests need is missing, say so and exit 77 so meson
 * counts the binary as skipped instead of failed. */
void vms_test_require_program (const char *program, const char *package);

/* Exit 77 unless running as root (network namespaces, nft, libvirtd). */
void vms_test_require_root (const char *why);

/* TRUE when running as root. */
gboolean vms_test_is_root (void);

/* Make a private temporary directory; caller removes it with
 * vms_test_rmtree() and frees the path. */
char *vms_test_make_tmpdir (const char *prefix);

/* Remove a directory tree (no symlinks are followed). */
void vms_test_rmtree (const char *path);

/* Run argv, wait, and fail with its stderr unless it exits 0.  stdout_out
 * (may be NULL) receives its standard output. */
gboolean vms_test_run (const char *const *argv, char **stdout_out,
                       GError **error);

/* A finished program, as a test inspects it. */
typedef struct
{
  int status; /* exit status */
  char *out;  /* standard output */
  char *err;  /* standard error */
} VmsTestRun;

void vms_test_run_clear (VmsTestRun *run);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (VmsTestRun, vms_test_run_clear)

/* Run argv in cwd (NULL: ours) with envp (NULL: ours) and capture its
 * output; fails the test if it cannot start or is killed by a signal. */
void vms_test_run_capturev (VmsTestRun *run, const char *cwd, char **envp,
                            const char *const *argv);

/* The same for program followed by a NULL-terminated list of arguments. */
void vms_test_run_capture (VmsTestRun *run, const char *cwd, char **envp,
                           const char *program, ...) G_GNUC_NULL_TERMINATED;

/* The absolute path as a relative one seen from directory from (both
 * absolute, without symlinks): "../" up to / and down again (caller
 * frees).  Tests of relative paths use it. */
char *vms_test_relative_path (const char *from, const char *path);

/* Path of a built program from the environment variable that meson sets
 * (e.g. VMS_VMSHIFT for tools/vmshift). */
const char *vms_test_built_program (const char *variable);
