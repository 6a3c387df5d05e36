/* vmshift engine: starting the destination QEMU again (--dest-restart).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-dest-restart.h"

#include <unistd.h>

#define POLL_MS 100

static GSubprocess *
spawn (char *const *argv, GError **error)
{
  g_autoptr (GSubprocessLauncher) launcher
      = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_INHERIT);
  int err_fd = dup (STDERR_FILENO);

  if (err_fd >= 0)
    g_subprocess_launcher_take_stdout_fd (launcher, err_fd);
  return g_subprocess_launcher_spawnv (launcher, (const char *const *)argv,
                                       error);
}

gboolean
vms_dest_restart_run (char *const *argv, VmsDestRestartGoOn go_on,
                      gpointer user_data, GError **error)
{
  g_autoptr (GSubprocess) command = spawn (argv, error);
  gint64 deadline
      = g_get_monotonic_time () + VMS_DEST_RESTART_TIMEOUT_MS * (gint64)1000;

  if (!command)
    {
      g_prefix_error (error, "--dest-restart: ");
      return FALSE;
    }
  /* GLib's worker thread reaps it: the identifier goes once it exited. */
  while (g_subprocess_get_identifier (command))
    {
      if (!go_on (user_data, error))
        {
          g_subprocess_force_exit (command);
          return FALSE;
        }
      if (g_get_monotonic_time () >= deadline)
        {
          g_subprocess_force_exit (command);
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                       "--dest-restart: %s did not return within %d s", argv[0],
                       VMS_DEST_RESTART_TIMEOUT_MS / 1000);
          return FALSE;
        }
      g_usleep (POLL_MS * 1000);
    }
  if (!g_subprocess_wait_check (command, NULL, error))
    {
      g_prefix_error (error, "--dest-restart: %s: ", argv[0]);
      return FALSE;
    }
  return TRUE;
}
