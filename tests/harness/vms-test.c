/* vmshift test harness: common helpers for integration tests.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-test.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

void
vms_test_require_program (const char *program, const char *package)
{
  g_autofree char *path = g_find_program_in_path (program);

  if (!path)
    {
      printf ("SKIP: %s not found (install the Debian package %s, or run "
              "scripts/setup)\n",
              program, package);
      exit (VMS_TEST_EXIT_SKIP);
    }
}

gboolean
vms_test_is_root (void)
{
  return geteuid () == 0;
}

void
vms_test_require_root (const char *why)
{
  if (!vms_test_is_root ())
    {
      printf ("SKIP: needs root for %s\n", why);
      exit (VMS_TEST_EXIT_SKIP);
    }
}

/* Tests skipped by vms_test_skip in this program: the harness's only
 * state, as cmocka keeps no count it would tell. */
static guint skipped_tests;

void
vms_test_note_skip (const char *format, ...)
{
  g_autofree char *why = NULL;
  va_list args;

  va_start (args, format);
  why = g_strdup_vprintf (format, args);
  va_end (args);
  print_message ("SKIP: %s\n", why);
  skipped_tests++;
}

int
vms_test_run_group (const char *name, const struct CMUnitTest *tests, gsize n,
                    CMFixtureFunction group_setup,
                    CMFixtureFunction group_teardown)
{
  const char *filter = g_getenv ("VMS_TEST_FILTER");
  guint selected = 0;
  int failures;

  /* cmocka writes why a test failed to stderr, and its name to stdout:
   * one stream keeps them together, in order, in logs that keep only
   * one of the two (a CI summary shows a failed test's stdout). */
  setvbuf (stdout, NULL, _IOLBF, 0);
  if (dup2 (STDOUT_FILENO, STDERR_FILENO) < 0)
    g_warning ("cannot send stderr to stdout: %s", g_strerror (errno));
  if (filter)
    cmocka_set_test_filter (filter);
  /* cmocka's filter is a glob with * and ?, as GPatternSpec's. */
  for (gsize i = 0; i < n; i++)
    if (!filter || g_pattern_match_simple (filter, tests[i].name))
      selected++;
  failures
      = _cmocka_run_group_tests (name, tests, n, group_setup, group_teardown);
  if (failures != 0)
    return failures;
  return selected > 0 && skipped_tests == selected ? VMS_TEST_EXIT_SKIP : 0;
}

char *
vms_test_make_tmpdir (const char *prefix)
{
  g_autofree char *template = g_strdup_printf ("%s-XXXXXX", prefix);
  g_autoptr (GError) error = NULL;
  char *path = g_dir_make_tmp (template, &error);

  if (!path)
    g_error ("cannot make a temporary directory: %s", error->message);
  return path;
}

void
vms_test_rmtree (const char *path)
{
  g_autoptr (GDir) dir = NULL;
  const char *name;
  GStatBuf st;

  if (!path || g_lstat (path, &st) != 0)
    return;
  if (!S_ISDIR (st.st_mode))
    {
      g_unlink (path);
      return;
    }
  dir = g_dir_open (path, 0, NULL);
  while (dir && (name = g_dir_read_name (dir)))
    {
      g_autofree char *child = g_build_filename (path, name, NULL);

      vms_test_rmtree (child);
    }
  g_rmdir (path);
}

gboolean
vms_test_run (const char *const *argv, char **stdout_out, GError **error)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *command = g_strjoinv (" ", (char **)argv);
  int status;

  if (!g_spawn_sync (NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                     &out, &err, &status, error))
    return FALSE;
  if (!g_spawn_check_wait_status (status, error))
    {
      g_prefix_error (error, "%s: %s: ", command, g_strstrip (err));
      return FALSE;
    }
  if (stdout_out)
    *stdout_out = g_steal_pointer (&out);
  return TRUE;
}

void
vms_test_run_clear (VmsTestRun *run)
{
  g_clear_pointer (&run->out, g_free);
  g_clear_pointer (&run->err, g_free);
}

void
vms_test_run_capturev (VmsTestRun *run, const char *cwd, char **envp,
                       const char *const *argv)
{
  g_autoptr (GError) error = NULL;
  int wait_status;

  if (!g_spawn_sync (cwd, (char **)argv, envp, G_SPAWN_SEARCH_PATH, NULL, NULL,
                     &run->out, &run->err, &wait_status, &error))
    fail_msg ("cannot run %s: %s", argv[0], error->message);
  if (!WIFEXITED (wait_status))
    fail_msg ("%s was killed by signal %d: %s", argv[0], WTERMSIG (wait_status),
              run->err);
  run->status = WEXITSTATUS (wait_status);
}

void
vms_test_run_capture (VmsTestRun *run, const char *cwd, char **envp,
                      const char *program, ...)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  va_list args;

  g_ptr_array_add (argv, (gpointer)program);
  va_start (args, program);
  for (const char *arg; (arg = va_arg (args, const char *));)
    g_ptr_array_add (argv, (gpointer)arg);
  va_end (args);
  g_ptr_array_add (argv, NULL);
  vms_test_run_capturev (run, cwd, envp, (const char *const *)argv->pdata);
}

const char *
vms_test_built_program (const char *variable)
{
  const char *path = g_getenv (variable);

  if (!path || !g_file_test (path, G_FILE_TEST_IS_EXECUTABLE))
    {
      printf ("SKIP: %s is not set to a built program; run the tests with "
              "'meson test'\n",
              variable);
      exit (VMS_TEST_EXIT_SKIP);
    }
  return path;
}

char *
vms_test_relative_path (const char *from, const char *path)
{
  g_auto (GStrv) parts = g_strsplit (from, "/", -1);
  GString *relative = g_string_new (NULL);

  g_assert (g_path_is_absolute (from) && g_path_is_absolute (path));
  for (char **part = parts; *part; part++)
    if (**part)
      g_string_append (relative, "../");
  g_string_append (relative, path + 1);
  return g_string_free (relative, FALSE);
}
