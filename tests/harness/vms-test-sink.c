/* vmshift test harness: a real nbdkit running the vmshift sink plugin.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-test-sink.h"
#include "vms-test.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* nbdkit loads the plugin and listens within milliseconds (seconds under
 * valgrind); this bounds a start that went wrong. */
#define START_TIMEOUT_MS 30000

/* How long nbdkit gets to exit cleanly on SIGTERM before SIGKILL. */
#define STOP_TIMEOUT_MS 30000

/* Exit status valgrind uses when it found errors in nbdkit. */
#define VALGRIND_ERROR_EXIT 99

static void
child_setup (gpointer data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

char *
vms_test_sink_log (VmsTestSink *sink)
{
  g_autofree char *contents = NULL;
  gsize length = 0;

  if (!g_file_get_contents (sink->log_path, &contents, &length, NULL))
    return g_strdup ("(no nbdkit log)");
  return g_strdup (length > 3000 ? contents + length - 3000 : contents);
}

/* A sink with keys wants TLS from every client. */
static gboolean
set_tls (VmsTestSink *sink, struct nbd_handle *nbd)
{
  if (sink->certificates)
    return nbd_set_tls (nbd, LIBNBD_TLS_REQUIRE) == 0
           && nbd_set_tls_certificates (nbd, sink->certificates) == 0;
  return !sink->psk_file
         || (nbd_set_tls (nbd, LIBNBD_TLS_REQUIRE) == 0
             && nbd_set_tls_psk_file (nbd, sink->psk_file) == 0
             && nbd_set_tls_username (nbd, VMS_TEST_SINK_PSK_USER) == 0);
}

/* A fixed test key: the sink is reachable only by this test, on a private
 * socket or inside its namespaces. */
static gboolean
write_psk (VmsTestSink *sink, GError **error)
{
  const char *keys = VMS_TEST_SINK_PSK_USER
      ":c0ffee00112233445566778899aabbccddeeff00112233445566778899aabbcc\n";

  sink->psk_file = g_build_filename (sink->dir, "keys.psk", NULL);
  return g_file_set_contents_full (sink->psk_file, keys, -1,
                                   G_FILE_SET_CONTENTS_NONE, 0600, error);
}

static gboolean
spawn_nbdkit (VmsTestSink *sink, GError **error)
{
  const char *plugin = g_getenv ("VMS_SINK_PLUGIN");
  g_autoptr (GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  gint64 deadline = g_get_monotonic_time () + START_TIMEOUT_MS * 1000;
  int log_fd;
  gboolean ok;

  if (!plugin)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   "VMS_SINK_PLUGIN is not set; run with meson test");
      return FALSE;
    }
  g_unlink (sink->socket_path);
  g_unlink (sink->pid_path);
  /* The plugin runs inside nbdkit, out of reach of the sanitizer build;
   * scripts/test runs the sink tests once more with nbdkit under
   * memcheck. */
  if (g_getenv ("VMS_SINK_VALGRIND"))
    {
      g_ptr_array_add (argv, g_strdup ("valgrind"));
      g_ptr_array_add (argv, g_strdup ("--quiet"));
      g_ptr_array_add (
          argv, g_strdup_printf ("--error-exitcode=%d", VALGRIND_ERROR_EXIT));
      g_ptr_array_add (argv, g_strdup ("--leak-check=full"));
      g_ptr_array_add (argv, g_strdup ("--errors-for-leak-kinds=definite"));
      g_ptr_array_add (argv, g_strdup ("--show-leak-kinds=definite"));
      if (g_getenv ("VMS_NBDKIT_SUPPRESSIONS"))
        g_ptr_array_add (
            argv, g_strdup_printf ("--suppressions=%s",
                                   g_getenv ("VMS_NBDKIT_SUPPRESSIONS")));
    }
  if (sink->netns)
    {
      /* nsenter, unlike "ip netns exec", works in a chroot too. */
      g_ptr_array_add (argv, g_strdup ("nsenter"));
      g_ptr_array_add (argv,
                       g_strdup_printf ("--net=/run/netns/%s", sink->netns));
      g_ptr_array_add (argv, g_strdup ("--"));
    }
  g_ptr_array_add (argv, g_strdup ("nbdkit"));
  g_ptr_array_add (argv, g_strdup ("-f"));
  g_ptr_array_add (argv, g_strdup ("-P"));
  g_ptr_array_add (argv, g_strdup (sink->pid_path));
  if (sink->tcp_address)
    {
      g_ptr_array_add (argv, g_strdup ("-i"));
      g_ptr_array_add (argv, g_strdup (sink->tcp_address));
      g_ptr_array_add (argv, g_strdup ("-p"));
      g_ptr_array_add (argv, g_strdup_printf ("%d", VMS_TEST_SINK_PORT));
    }
  else
    {
      g_ptr_array_add (argv, g_strdup ("-U"));
      g_ptr_array_add (argv, g_strdup (sink->socket_path));
    }
  if (sink->psk_file)
    {
      g_ptr_array_add (argv, g_strdup ("--tls=require"));
      g_ptr_array_add (argv, g_strdup_printf ("--tls-psk=%s", sink->psk_file));
    }
  else if (sink->certificates)
    {
      g_ptr_array_add (argv, g_strdup ("--tls=require"));
      g_ptr_array_add (
          argv, g_strdup_printf ("--tls-certificates=%s", sink->certificates));
    }
  for (guint i = 0; sink->filters && sink->filters[i]; i++)
    g_ptr_array_add (argv, g_strdup_printf ("--filter=%s", sink->filters[i]));
  g_ptr_array_add (argv, g_strdup (plugin));
  g_ptr_array_add (argv, g_strdup_printf ("dir=%s", sink->replica_dir));
  for (guint i = 0; sink->plugin_args && sink->plugin_args[i]; i++)
    g_ptr_array_add (argv, g_strdup (sink->plugin_args[i]));
  g_ptr_array_add (argv, NULL);

  log_fd
      = open (sink->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno),
                   "open %s: %s", sink->log_path, g_strerror (errno));
      return FALSE;
    }
  ok = g_spawn_async_with_fds (NULL, (char **)argv->pdata, NULL,
                               G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD,
                               child_setup, NULL, &sink->pid, -1, log_fd,
                               log_fd, error);
  close (log_fd);
  if (!ok)
    return FALSE;
  sink->running = TRUE;

  /* Ready once it accepts a connection to the probe export. */
  while (g_get_monotonic_time () < deadline)
    {
      int status;
      g_autoptr (nbd_handle) nbd = NULL;

      if (waitpid (sink->pid, &status, WNOHANG) == sink->pid)
        {
          g_autofree char *log = vms_test_sink_log (sink);

          sink->running = FALSE;
          g_set_error (error, G_SPAWN_ERROR, G_SPAWN_ERROR_FAILED,
                       "nbdkit exited at start: %s", log);
          return FALSE;
        }
      /* A sink in another namespace cannot be probed from here; nbdkit
       * writes its pid file once it listens. */
      if (sink->tcp_address)
        {
          if (g_file_test (sink->pid_path, G_FILE_TEST_EXISTS))
            return TRUE;
          g_usleep (20 * 1000);
          continue;
        }
      nbd = nbd_create ();
      if (nbd && set_tls (sink, nbd)
          && g_file_test (sink->socket_path, G_FILE_TEST_EXISTS)
          && nbd_set_export_name (nbd, "@probe") == 0
          && nbd_connect_unix (nbd, sink->socket_path) == 0)
        return TRUE;
      g_usleep (20 * 1000);
    }
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
               "nbdkit did not accept connections within %d ms",
               START_TIMEOUT_MS);
  return FALSE;
}

static VmsTestSink *
sink_new (const char *replica_dir, const char *const *plugin_args)
{
  VmsTestSink *sink = g_new0 (VmsTestSink, 1);

  sink->dir = vms_test_make_tmpdir ("vms-sink");
  if (replica_dir)
    sink->replica_dir = g_strdup (replica_dir);
  else
    {
      sink->replica_dir = g_build_filename (sink->dir, "replicas", NULL);
      g_mkdir (sink->replica_dir, 0700);
    }
  sink->socket_path = g_build_filename (sink->dir, "sink.sock", NULL);
  sink->log_path = g_build_filename (sink->dir, "nbdkit.log", NULL);
  sink->pid_path = g_build_filename (sink->dir, "nbdkit.pid", NULL);
  sink->plugin_args = g_strdupv ((char **)plugin_args);
  return sink;
}

VmsTestSink *
vms_test_sink_start (const char *replica_dir, const char *const *plugin_args,
                     GError **error)
{
  g_autoptr (VmsTestSink) sink = sink_new (replica_dir, plugin_args);

  if (!spawn_nbdkit (sink, error))
    return NULL;
  return g_steal_pointer (&sink);
}

VmsTestSink *
vms_test_sink_start_tcp (const char *netns, const char *address, GError **error)
{
  g_autoptr (VmsTestSink) sink = sink_new (NULL, NULL);

  sink->netns = g_strdup (netns);
  sink->tcp_address = g_strdup (address);
  if (!write_psk (sink, error) || !spawn_nbdkit (sink, error))
    return NULL;
  return g_steal_pointer (&sink);
}

VmsTestSink *
vms_test_sink_start_tcp_x509 (const char *netns, const char *address,
                              const char *certificates, GError **error)
{
  g_autoptr (VmsTestSink) sink = sink_new (NULL, NULL);

  sink->netns = g_strdup (netns);
  sink->tcp_address = g_strdup (address);
  sink->certificates = g_strdup (certificates);
  if (!spawn_nbdkit (sink, error))
    return NULL;
  return g_steal_pointer (&sink);
}

VmsTestSink *
vms_test_sink_start_x509 (const char *certificates, GError **error)
{
  g_autoptr (VmsTestSink) sink = sink_new (NULL, NULL);

  sink->certificates = g_strdup (certificates);
  if (!spawn_nbdkit (sink, error))
    return NULL;
  return g_steal_pointer (&sink);
}

VmsTestSink *
vms_test_sink_start_tls (GError **error)
{
  g_autoptr (VmsTestSink) sink = sink_new (NULL, NULL);

  if (!write_psk (sink, error) || !spawn_nbdkit (sink, error))
    return NULL;
  return g_steal_pointer (&sink);
}

char *
vms_test_sink_tcp_uri (VmsTestSink *sink, const char *export_name)
{
  if (sink->certificates)
    return g_strdup_printf ("nbds://%s:%d/%s?tls-certificates=%s",
                            sink->tcp_address, VMS_TEST_SINK_PORT, export_name,
                            sink->certificates);
  return g_strdup_printf ("nbds://vmshift@%s:%d/%s?tls-psk-file=%s",
                          sink->tcp_address, VMS_TEST_SINK_PORT, export_name,
                          sink->psk_file);
}

void
vms_test_sink_kill (VmsTestSink *sink)
{
  int status;

  if (!sink->running)
    return;
  kill (sink->pid, SIGKILL);
  waitpid (sink->pid, &status, 0);
  sink->running = FALSE;
}

gboolean
vms_test_sink_stop (VmsTestSink *sink, GError **error)
{
  gint64 deadline = g_get_monotonic_time () + STOP_TIMEOUT_MS * 1000;
  int status = 0;

  if (!sink->running)
    return TRUE;
  kill (sink->pid, SIGTERM);
  while (waitpid (sink->pid, &status, WNOHANG) != sink->pid)
    {
      if (g_get_monotonic_time () > deadline)
        {
          vms_test_sink_kill (sink);
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                       "nbdkit did not exit within %d ms of SIGTERM",
                       STOP_TIMEOUT_MS);
          return FALSE;
        }
      g_usleep (20 * 1000);
    }
  sink->running = FALSE;
  if (WIFEXITED (status) && WEXITSTATUS (status) == VALGRIND_ERROR_EXIT)
    {
      g_autofree char *log = vms_test_sink_log (sink);

      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   "valgrind found errors in nbdkit: %s", log);
      return FALSE;
    }
  return TRUE;
}

gboolean
vms_test_sink_restart (VmsTestSink *sink, GError **error)
{
  vms_test_sink_kill (sink);
  return spawn_nbdkit (sink, error);
}

char *
vms_test_sink_uri (VmsTestSink *sink, const char *export_name)
{
  g_autofree char *escaped = g_uri_escape_string (export_name, "@=", FALSE);

  if (sink->certificates)
    return g_strdup_printf ("nbds+unix:///%s?socket=%s&tls-certificates=%s",
                            escaped, sink->socket_path, sink->certificates);
  if (sink->psk_file)
    return g_strdup_printf ("nbds+unix://" VMS_TEST_SINK_PSK_USER
                            "@/%s?socket=%s&tls-psk-file=%s",
                            escaped, sink->socket_path, sink->psk_file);
  return g_strdup_printf ("nbd+unix:///%s?socket=%s", escaped,
                          sink->socket_path);
}

struct nbd_handle *
vms_test_sink_connect (VmsTestSink *sink, const char *export_name,
                       GError **error)
{
  g_autoptr (nbd_handle) nbd = nbd_create ();

  if (!nbd || !set_tls (sink, nbd) || nbd_set_export_name (nbd, export_name) < 0
      || nbd_connect_unix (nbd, sink->socket_path) < 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   "connect to export '%s': %s", export_name, nbd_get_error ());
      return NULL;
    }
  return g_steal_pointer (&nbd);
}

char *
vms_test_sink_replica_path (VmsTestSink *sink, const char *name)
{
  return g_build_filename (sink->replica_dir, name, NULL);
}

void
vms_test_sink_free (VmsTestSink *sink)
{
  if (!sink)
    return;
  vms_test_sink_kill (sink);
  if (g_getenv ("VMS_TEST_KEEP"))
    g_printerr ("# kept %s\n", sink->dir);
  else
    vms_test_rmtree (sink->dir);
  g_free (sink->dir);
  g_free (sink->replica_dir);
  g_free (sink->socket_path);
  g_free (sink->log_path);
  g_strfreev (sink->plugin_args);
  g_strfreev (sink->filters);
  g_free (sink->netns);
  g_free (sink->tcp_address);
  g_free (sink->psk_file);
  g_free (sink->certificates);
  g_free (sink->pid_path);
  g_free (sink);
}

void
vms_test_sink_create_replica (VmsTestSink *sink, const char *name, guint64 size)
{
  g_autofree char *export_name
      = g_strdup_printf ("%s@create=%" G_GUINT64_FORMAT, name, size);
  g_autoptr (GError) error = NULL;
  g_autoptr (nbd_handle) nbd
      = vms_test_sink_connect (sink, export_name, &error);

  vms_assert_ok (nbd, error);
  assert_int_equal (nbd_get_size (nbd), (int64_t)size);
  nbd_shutdown (nbd, 0);
}

JsonObject *
vms_test_sink_listed (const char *output, const char *name, JsonParser *parser)
{
  JsonArray *replicas;

  assert_true (json_parser_load_from_data (parser, output, -1, NULL));
  assert_true (JSON_NODE_HOLDS_ARRAY (json_parser_get_root (parser)));
  replicas = json_node_get_array (json_parser_get_root (parser));
  for (guint i = 0; i < json_array_get_length (replicas); i++)
    {
      JsonObject *object = json_array_get_object_element (replicas, i);

      if (g_str_equal (json_object_get_string_member (object, "name"), name))
        return object;
    }
  return NULL;
}

VmsTestSink *
vms_test_sink_setup (const char *const *plugin_args)
{
  g_autoptr (GError) error = NULL;
  VmsTestSink *sink = vms_test_sink_start (NULL, plugin_args, &error);

  if (!sink)
    print_error ("cannot start the sink: %s\n", error->message);
  return sink;
}

int
vms_test_sink_teardown (VmsTestSink *sink)
{
  g_autoptr (GError) error = NULL;
  int result = 0;

  if (!vms_test_sink_stop (sink, &error))
    {
      print_error ("%s\n", error->message);
      result = -1;
    }
  vms_test_sink_free (sink);
  return result;
}
