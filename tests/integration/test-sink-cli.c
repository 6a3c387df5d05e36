/* Integration tests: the vmshift-sink program as an administrator runs it,
 * starting real nbdkit with the plugin and talking to it with nbdinfo.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-config.h"
#include "vms-test.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* nbdkit writes its pid file once it listens; on a loaded CI machine that
 * can take a while. */
#define SERVER_START_TIMEOUT_MS 10000
/* How long nbdkit may take to exit on SIGTERM before it gets SIGKILL. */
#define SERVER_STOP_TIMEOUT_MS 5000
/* Between two looks at a file or a process being waited for. */
#define POLL_INTERVAL_MS 20

/* The @probe export's size, 1 TiB (see vmshift-sink(8)). */
#define PROBE_SIZE G_GINT64_CONSTANT (1099511627776)
/* Size of the replica created over NBD. */
#define REPLICA_SIZE 1048576
/* A TLS-PSK key: 32 bytes, written as 64 hex digits. */
#define PSK_KEY_BYTES 32
/* A commit time for hand-written metadata: 2026-11-25 in seconds. */
#define SOME_COMMIT_TIME G_GINT64_CONSTANT (1795614840)

/* Absolute path of vmshift-sink: some tests run it in another directory. */
static char *sink;

/* Every test gets a private directory, and perhaps a server to stop. */
typedef struct
{
  char *tmp;      /* private directory, removed at teardown */
  char *dir;      /* replica directory, inside tmp */
  char *file;     /* a regular file, inside tmp */
  char *socket;   /* where a server listens, inside tmp */
  char *pid_file; /* the server's pid file, inside tmp */
  char *psk_file; /* TLS-PSK keys, inside tmp */
} Fixture;

#define run_argv vms_test_run_capturev
/* Run vmshift-sink with args (NULL-terminated), here or in cwd with envp. */
#define run_sink(run, ...)                                                     \
  vms_test_run_capture (run, NULL, NULL, sink, __VA_ARGS__)
#define run_sink_in(run, cwd, envp, ...)                                       \
  vms_test_run_capture (run, cwd, envp, sink, __VA_ARGS__)

/* Skip this test (not the others) when a program is missing. */
static void
require_program (const char *program, const char *package)
{
  g_autofree char *path = g_find_program_in_path (program);

  if (!path)
    {
      vms_test_skip ("%s not found (install the Debian package %s)", program,
                     package);
    }
}

static int
setup (void **state)
{
  Fixture *fixture = g_new0 (Fixture, 1);

  fixture->tmp = vms_test_make_tmpdir ("vms-sink-cli");
  fixture->dir = g_build_filename (fixture->tmp, "replicas", NULL);
  fixture->file = g_build_filename (fixture->tmp, "file", NULL);
  fixture->socket = g_build_filename (fixture->tmp, "sink.sock", NULL);
  fixture->pid_file = g_build_filename (fixture->tmp, "sink.pid", NULL);
  fixture->psk_file = g_build_filename (fixture->tmp, "keys.psk", NULL);
  if (g_mkdir (fixture->dir, 0700) < 0
      || !g_file_set_contents (fixture->file, "not a device\n", -1, NULL))
    return -1;
  *state = fixture;
  return 0;
}

/* TRUE while pid is a live process (a zombie counts as gone). */
static gboolean
process_alive (pid_t pid)
{
  g_autofree char *stat_path = g_strdup_printf ("/proc/%d/stat", (int)pid);
  g_autofree char *stat = NULL;
  const char *close_paren;

  if (!g_file_get_contents (stat_path, &stat, NULL, NULL))
    return FALSE;
  /* The state follows the command name, which may contain anything. */
  close_paren = strrchr (stat, ')');
  return close_paren && close_paren[1] == ' ' && close_paren[2] != 'Z';
}

/* Stop the server of fixture, if its pid file names a live nbdkit.  The
 * name is checked so that a stale pid file never kills a stranger. */
static void
stop_server (Fixture *fixture)
{
  g_autofree char *text = NULL;
  g_autofree char *comm_path = NULL;
  g_autofree char *comm = NULL;
  guint64 pid;

  if (!g_file_get_contents (fixture->pid_file, &text, NULL, NULL)
      || !g_ascii_string_to_unsigned (g_strstrip (text), 10, 2, G_MAXINT, &pid,
                                      NULL))
    return;
  comm_path = g_strdup_printf ("/proc/%d/comm", (int)pid);
  if (!g_file_get_contents (comm_path, &comm, NULL, NULL)
      || !g_str_equal (g_strstrip (comm), "nbdkit"))
    return;
  kill (pid, SIGTERM);
  for (int waited = 0; process_alive (pid); waited += POLL_INTERVAL_MS)
    {
      if (waited == SERVER_STOP_TIMEOUT_MS)
        kill (pid, SIGKILL);
      if (waited > 2 * SERVER_STOP_TIMEOUT_MS)
        break;
      g_usleep (POLL_INTERVAL_MS * 1000);
    }
  /* nbdkit leaves its socket behind. */
  g_unlink (fixture->socket);
  g_unlink (fixture->pid_file);
}

static int
teardown (void **state)
{
  Fixture *fixture = *state;

  stop_server (fixture);
  vms_test_rmtree (fixture->tmp);
  g_free (fixture->tmp);
  g_free (fixture->dir);
  g_free (fixture->file);
  g_free (fixture->socket);
  g_free (fixture->pid_file);
  g_free (fixture->psk_file);
  g_free (fixture);
  return 0;
}

/* A block device of this machine, for --device; NULL if there is none.
 * Only its type matters: --print-command never opens it. */
static const char *
find_block_device (void)
{
  static const char *const candidates[] = {
    "/dev/loop0", "/dev/sda", "/dev/vda", "/dev/nvme0n1", "/dev/ram0",
  };
  struct stat st;

  for (gsize i = 0; i < G_N_ELEMENTS (candidates); i++)
    if (stat (candidates[i], &st) == 0 && S_ISBLK (st.st_mode))
      return candidates[i];
  return NULL;
}

/* Parse the one line that --print-command prints back into an argv. */
static GStrv
parse_command (const char *out)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *line = g_strdup (out);
  char **argv = NULL;

  assert_non_null (strchr (out, '\n'));
  assert_true (strchr (out, '\n')[1] == '\0');
  if (!g_shell_parse_argv (g_strstrip (line), NULL, &argv, &error))
    fail_msg ("cannot parse '%s': %s", out, error->message);
  return argv;
}

static JsonNode *
parse_json (const char *text)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;

  if (!json_parser_load_from_data (parser, text, -1, &error))
    fail_msg ("not JSON: %s: %s", error->message, text);
  return json_node_ref (json_parser_get_root (parser));
}

/* The object for replica name in list --json output; fails if missing. */
static JsonObject *
find_replica (JsonArray *replicas, const char *name)
{
  for (guint i = 0; i < json_array_get_length (replicas); i++)
    {
      JsonObject *object = json_array_get_object_element (replicas, i);

      if (g_str_equal (json_object_get_string_member (object, "name"), name))
        return object;
    }
  fail_msg ("replica %s not listed", name);
  return NULL;
}

/* ------------------------------------------------------ program basics */

static void
test_help_and_version (void **state)
{
  g_autofree char *expected_version
      = g_strdup_printf ("vmshift-sink %s\n", VMS_VERSION);
  g_auto (VmsTestRun) version = { 0 };
  g_auto (VmsTestRun) help = { 0 };
  g_auto (VmsTestRun) serve_help = { 0 };
  g_auto (VmsTestRun) help_list = { 0 };
  g_auto (VmsTestRun) help_unknown = { 0 };
  g_auto (VmsTestRun) none = { 0 };
  g_auto (VmsTestRun) unknown = { 0 };

  run_sink (&version, "--version", NULL);
  assert_int_equal (version.status, 0);
  assert_string_equal (version.out, expected_version);

  run_sink (&help, "--help", NULL);
  assert_int_equal (help.status, 0);
  assert_non_null (strstr (help.out, "serve"));
  assert_non_null (strstr (help.out, "list"));

  run_sink (&serve_help, "serve", "--help", NULL);
  assert_int_equal (serve_help.status, 0);
  assert_non_null (strstr (serve_help.out, "--dir"));
  assert_non_null (strstr (serve_help.out, "--print-command"));

  run_sink (&help_list, "help", "list", NULL);
  assert_int_equal (help_list.status, 0);
  assert_non_null (strstr (help_list.out, "--json"));

  run_sink (&help_unknown, "help", "frobnicate", NULL);
  assert_int_equal (help_unknown.status, 2);

  run_sink (&none, NULL);
  assert_int_equal (none.status, 2);
  assert_non_null (strstr (none.err, "Usage:"));

  run_sink (&unknown, "frobnicate", NULL);
  assert_int_equal (unknown.status, 2);
  assert_non_null (
      strstr (unknown.err, "vmshift-sink: unknown command 'frobnicate'"));
}

/* ------------------------------------------------ serve's command line */

/* A command line serve must refuse with exit 2 and a message.  {dir} and
 * {file} stand for the fixture's directory and regular file. */
typedef struct
{
  const char *args[10]; /* arguments after "serve", NULL-terminated */
  const char *message;  /* part of the expected error message */
} UsageCase;

static const UsageCase usage_cases[] = {
  { { "--unix", "s.sock" }, "--dir DIR is required" },
  { { "--dir", "{dir}/nonexistent", "--unix", "s" }, "no such directory" },
  { { "--dir", "{file}", "--unix", "s" }, "is not a directory" },
  { { "--dir", "{dir}" }, "exactly one of --listen" },
  { { "--dir", "{dir}", "--unix", "s", "--listen", "127.0.0.1:10809" },
    "exactly one of --listen" },
  { { "--dir", "{dir}", "--listen", "127.0.0.1" }, "has no port" },
  { { "--dir", "{dir}", "--listen", "127.0.0.1:0" }, "between 1 and 65535" },
  { { "--dir", "{dir}", "--listen", "127.0.0.1:65536" },
    "between 1 and 65535" },
  { { "--dir", "{dir}", "--listen", "127.0.0.1:nbd" }, "between 1 and" },
  { { "--dir", "{dir}", "--listen", "::1:10809" }, "in brackets" },
  { { "--dir", "{dir}", "--listen", "[::1]" }, "[ADDR]:PORT" },
  { { "--dir", "{dir}", "--listen", "sink.example:10809" },
    "not an IP address" },
  { { "--dir", "{dir}", "--unix", "s", "--device", "a/b=/dev/null" },
    "contains '/'" },
  { { "--dir", "{dir}", "--unix", "s", "--device", ".a=/dev/null" },
    "must not start with '.'" },
  { { "--dir", "{dir}", "--unix", "s", "--device", "disk={file}" },
    "is not a block device" },
  { { "--dir", "{dir}", "--unix", "s", "--device", "disk=/dev/null" },
    "is not a block device" },
  { { "--dir", "{dir}", "--unix", "s", "--device", "disk" }, "NAME=PATH" },
  { { "--dir", "{dir}", "--unix", "s", "--tls-psk", "{file}",
      "--tls-certificates", "{dir}" },
    "exclude each other" },
  { { "--dir", "{dir}", "--unix", "s", "--tls-verify-peer" },
    "needs --tls-certificates" },
  { { "--dir", "{dir}", "--unix", "s", "--tls-psk", "{dir}/none.psk" },
    "no such file" },
  { { "--dir", "{dir}", "--unix", "s", "--hash-chunk", "1000" },
    "from 4K to 64M, not '1000'" },
  { { "--dir", "{dir}", "--unix", "s", "--hash-chunk", "12288" },
    "power of two" },
  { { "--dir", "{dir}", "--unix", "s", "--hash-chunk", "134217728" },
    "--hash-chunk wants a size in bytes like 64M or 1G from 4K to 64M" },
  { { "--dir", "{dir}", "--unix", "s", "--hash-chunk", "-65536" },
    "--hash-chunk wants a size" },
  { { "--dir", "{dir}", "--unix", "s", "--hash-chunk", "64Kx" },
    "--hash-chunk wants a size" },
  { { "--dir", "{dir}", "--unix", "s", "--threads", "0" },
    "--threads wants a count from 1 to 1024, not '0'" },
  { { "--dir", "{dir}", "--unix", "s", "--threads", "-1" },
    "--threads wants a count from 1 to 1024, not '-1'" },
  { { "--dir", "{dir}", "--unix", "s", "--threads", "18446744073709551617" },
    "--threads wants a count" },
  { { "--dir", "{dir}", "--unix", "s", "--plugin", "{dir}/none.so" },
    "no such file" },
  { { "--dir", "{dir}", "--unix", "s", "extra" }, "unexpected argument" },
  { { "--dir", "{dir}", "--unix", "s", "--no-such-option" }, "no-such-option" },
  { { "--dir", "{dir}", "--listen", "192.0.2.1:10809" }, "--insecure" },
  { { "--dir", "{dir}", "--listen", "[2001:db8::1]:10809" }, "--tls-psk" },
  { { "--dir", "{dir}", "--listen", "0.0.0.0:10809" }, "not a loopback" },
};

static char *
expand (const char *arg, const Fixture *fixture)
{
  GString *text = g_string_new (arg);

  g_string_replace (text, "{dir}", fixture->dir, 0);
  g_string_replace (text, "{file}", fixture->file, 0);
  return g_string_free (text, FALSE);
}

static void
test_serve_usage_errors (void **state)
{
  const Fixture *fixture = *state;

  for (gsize i = 0; i < G_N_ELEMENTS (usage_cases); i++)
    {
      const UsageCase *usage = &usage_cases[i];
      g_autoptr (GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
      g_autofree char *shown = NULL;
      g_auto (VmsTestRun) run = { 0 };

      g_ptr_array_add (argv, g_strdup (sink));
      g_ptr_array_add (argv, g_strdup ("serve"));
      for (const char *const *arg = usage->args; *arg; arg++)
        g_ptr_array_add (argv, expand (*arg, fixture));
      /* Even a command that would be accepted must only be printed. */
      g_ptr_array_add (argv, g_strdup ("--print-command"));
      g_ptr_array_add (argv, NULL);
      shown = g_strjoinv (" ", (char **)argv->pdata + 1);
      run_argv (&run, fixture->tmp, NULL, (const char *const *)argv->pdata);
      if (run.status != 2 || !strstr (run.err, usage->message)
          || !g_str_has_prefix (run.err, "vmshift-sink: serve: "))
        fail_msg ("'%s' exited %d with '%s'; expected 2 and '%s'", shown,
                  run.status, run.err, usage->message);
      assert_string_equal (run.out, "");
    }
}

static void
test_serve_clear_text_allowed_only_on_loopback (void **state)
{
  const Fixture *fixture = *state;
  static const char *const loopback[] = {
    "127.0.0.1:10809",
    "127.3.2.1:10809",
    "[::1]:10809",
    "localhost:10809",
  };
  g_auto (VmsTestRun) insecure = { 0 };
  g_auto (VmsTestRun) psk = { 0 };
  g_auto (GStrv) insecure_argv = NULL;

  for (gsize i = 0; i < G_N_ELEMENTS (loopback); i++)
    {
      g_auto (VmsTestRun) run = { 0 };

      run_sink (&run, "serve", "--dir", fixture->dir, "--listen", loopback[i],
                "--print-command", NULL);
      if (run.status != 0)
        fail_msg ("--listen %s refused: %s", loopback[i], run.err);
    }

  run_sink (&insecure, "serve", "--dir", fixture->dir, "--listen",
            "192.0.2.1:10809", "--insecure", "--print-command", NULL);
  assert_int_equal (insecure.status, 0);
  insecure_argv = parse_command (insecure.out);
  assert_non_null (strstr (insecure.out, " -i 192.0.2.1 -p 10809 "));
  assert_null (strstr (insecure.out, "--tls"));

  assert_true (g_file_set_contents (fixture->psk_file, "alice:00\n", -1, NULL));
  run_sink (&psk, "serve", "--dir", fixture->dir, "--listen",
            "[2001:db8::1]:10809", "--tls-psk", fixture->psk_file,
            "--print-command", NULL);
  assert_int_equal (psk.status, 0);
  assert_non_null (strstr (psk.out, " --tls=require --tls-psk="));
  assert_non_null (strstr (psk.out, " -i 2001:db8::1 -p 10809 "));
}

/* With every option, the nbdkit command has the documented shape. */
static void
test_print_command_shape (void **state)
{
  const Fixture *fixture = *state;
  const char *device = find_block_device ();
  g_autofree char *device_arg = NULL;
  g_autofree char *certificates = g_build_filename (fixture->tmp, "pki", NULL);
  g_autofree char *plugin = g_build_filename (fixture->tmp, "plugin.so", NULL);
  g_autofree char *dir_arg = g_strdup_printf ("dir=%s", fixture->dir);
  g_autofree char *pid_file = g_build_filename (fixture->tmp, "sink.pid", NULL);
  g_autofree char *socket = g_build_filename (fixture->tmp, "sink.sock", NULL);
  g_autofree char *certificates_arg = NULL;
  g_autoptr (GPtrArray) expected = g_ptr_array_new_with_free_func (g_free);
  g_auto (GStrv) argv = NULL;
  g_auto (VmsTestRun) run = { 0 };

  assert_int_equal (g_mkdir (certificates, 0700), 0);
  assert_true (g_file_set_contents (plugin, "", 0, NULL));
  certificates_arg = g_strdup_printf ("--tls-certificates=%s", certificates);
  /* Without a block device here, an empty name=path list is tested. */
  device_arg = device ? g_strdup_printf ("r2=%s", device) : NULL;

  /* Relative paths: nbdkit changes to / when it daemonizes, so the
   * directory, the plugin, the socket and the pid file must reach it as
   * absolute paths. */
  run_sink_in (&run, fixture->tmp, NULL, "serve", "--dir", "replicas", "--unix",
               "sink.sock", "--foreground", "--verbose", "--pid-file",
               "sink.pid", "--threads", "4", "--tls-certificates", "pki",
               "--tls-verify-peer", "--hash-chunk", "64K", "--nbdkit",
               "/opt/nbdkit/nbdkit", "--plugin", "plugin.so", "--print-command",
               device_arg ? "--device" : NULL, device_arg, NULL);
  assert_int_equal (run.status, 0);
  argv = parse_command (run.out);

  for (const char *const *word
       = (const char *const[]){ "/opt/nbdkit/nbdkit", "-f", "-v", "-P",
                                pid_file, "-t", "4", "--tls=require", NULL };
       *word; word++)
    g_ptr_array_add (expected, g_strdup (*word));
  g_ptr_array_add (expected, g_strdup (certificates_arg));
  g_ptr_array_add (expected, g_strdup ("--tls-verify-peer"));
  g_ptr_array_add (expected, g_strdup ("-U"));
  g_ptr_array_add (expected, g_strdup (socket));
  g_ptr_array_add (expected, g_strdup (plugin));
  g_ptr_array_add (expected, g_strdup (dir_arg));
  if (device)
    g_ptr_array_add (expected, g_strdup_printf ("device=r2:%s", device));
  g_ptr_array_add (expected, g_strdup ("hash-chunk=65536"));
  g_ptr_array_add (expected, NULL);

  assert_int_equal (g_strv_length (argv), expected->len - 1);
  for (guint i = 0; i + 1 < expected->len; i++)
    assert_string_equal (argv[i], g_ptr_array_index (expected, i));
}

/* The minimal command, and where the plugin is looked for. */
static void
test_print_command_plugin_search (void **state)
{
  const Fixture *fixture = *state;
  g_autofree char *plugin = g_build_filename (fixture->tmp, "env.so", NULL);
  g_autofree char *missing = g_build_filename (fixture->tmp, "gone.so", NULL);
  g_auto (GStrv) env_found
      = g_environ_setenv (g_get_environ (), "VMS_SINK_PLUGIN", plugin, TRUE);
  g_auto (GStrv) env_missing
      = g_environ_setenv (g_get_environ (), "VMS_SINK_PLUGIN", missing, TRUE);
  g_auto (GStrv) env_unset
      = g_environ_unsetenv (g_get_environ (), "VMS_SINK_PLUGIN");
  g_autofree char *sink_dir = g_path_get_dirname (sink);
  g_autofree char *beside
      = g_build_filename (sink_dir, "nbdkit-vmshift-plugin.so", NULL);
  g_autofree char *unix_arg = NULL;
  g_auto (GStrv) found_argv = NULL;
  g_auto (GStrv) beside_argv = NULL;
  g_auto (VmsTestRun) found = { 0 };
  g_auto (VmsTestRun) gone = { 0 };
  g_auto (VmsTestRun) unset = { 0 };

  assert_true (g_file_set_contents (plugin, "", 0, NULL));
  run_sink_in (&found, NULL, env_found, "serve", "--dir", fixture->dir,
               "--unix", fixture->socket, "--print-command", NULL);
  assert_int_equal (found.status, 0);
  found_argv = parse_command (found.out);
  assert_int_equal (g_strv_length (found_argv), 5);
  assert_string_equal (found_argv[0], "nbdkit");
  assert_string_equal (found_argv[1], "-U");
  assert_string_equal (found_argv[2], fixture->socket);
  assert_string_equal (found_argv[3], plugin);
  unix_arg = g_strdup_printf ("dir=%s", fixture->dir);
  assert_string_equal (found_argv[4], unix_arg);

  /* A plugin the user named must be there; no silent fallback. */
  run_sink_in (&gone, NULL, env_missing, "serve", "--dir", fixture->dir,
               "--unix", fixture->socket, "--print-command", NULL);
  assert_int_equal (gone.status, 1);
  assert_non_null (strstr (gone.err, "VMS_SINK_PLUGIN"));

  /* In the build tree the plugin sits next to the program. */
  if (!g_file_test (beside, G_FILE_TEST_IS_REGULAR))
    return;
  run_sink_in (&unset, NULL, env_unset, "serve", "--dir", fixture->dir,
               "--unix", fixture->socket, "--print-command", NULL);
  assert_int_equal (unset.status, 0);
  beside_argv = parse_command (unset.out);
  assert_string_equal (beside_argv[3], beside);
}

static void
test_serve_reports_missing_nbdkit (void **state)
{
  const Fixture *fixture = *state;
  g_autofree char *nbdkit = g_build_filename (fixture->tmp, "no-nbdkit", NULL);
  g_auto (VmsTestRun) run = { 0 };

  run_sink (&run, "serve", "--dir", fixture->dir, "--unix", fixture->socket,
            "--nbdkit", nbdkit, NULL);
  assert_int_equal (run.status, 1);
  assert_non_null (strstr (run.err, "cannot run"));
  assert_non_null (strstr (run.err, "install the Debian package nbdkit"));
}

/* ---------------------------------------------------------------- list */

static void
test_list_empty_dir (void **state)
{
  const Fixture *fixture = *state;
  g_auto (VmsTestRun) table = { 0 };
  g_auto (VmsTestRun) json = { 0 };
  g_auto (VmsTestRun) no_dir = { 0 };

  run_sink (&table, "list", "--dir", fixture->dir, NULL);
  assert_int_equal (table.status, 0);
  assert_true (g_str_has_prefix (table.out, "NAME "));
  assert_non_null (strstr (table.out, "COMPLETE"));
  assert_int_equal (strchr (table.out, '\n') - table.out + 1,
                    strlen (table.out));

  run_sink (&json, "list", "--dir", fixture->dir, "--json", NULL);
  assert_int_equal (json.status, 0);
  assert_string_equal (json.out, "[]\n");

  run_sink (&no_dir, "list", NULL);
  assert_int_equal (no_dir.status, 2);
  assert_non_null (strstr (no_dir.err, "vmshift-sink: list: "));
}

/* Write metadata the way the plugin does (documented in FILES). */
static void
write_metadata (const Fixture *fixture, const char *name, const char *json)
{
  g_autofree char *meta_dir = g_build_filename (fixture->dir, ".vmshift", NULL);
  g_autofree char *file = g_strconcat (name, ".json", NULL);
  g_autofree char *path = g_build_filename (meta_dir, file, NULL);

  assert_int_equal (g_mkdir_with_parents (meta_dir, 0700), 0);
  assert_true (g_file_set_contents (path, json, -1, NULL));
}

/* A good replica, one without data, one with broken metadata. */
static void
test_list_reports_broken_replicas (void **state)
{
  const Fixture *fixture = *state;
  g_autofree char *data_path = g_build_filename (fixture->dir, "good", NULL);
  g_autofree char *good_json
      = g_strdup_printf ("{\"name\":\"good\",\"size\":65536,\"complete\":true,"
                         "\"created\":1,\"committed\":%" G_GINT64_FORMAT "}",
                         SOME_COMMIT_TIME);
  g_autoptr (GDateTime) commit_time
      = g_date_time_new_from_unix_utc (SOME_COMMIT_TIME);
  g_autofree char *commit_iso = g_date_time_format_iso8601 (commit_time);
  g_autofree char *data = g_malloc0 (8192);
  g_autoptr (JsonNode) root = NULL;
  JsonObject *good, *lost;
  g_auto (VmsTestRun) json = { 0 };
  g_auto (VmsTestRun) table = { 0 };
  struct stat st;

  memset (data, 0x5a, 8192);
  assert_true (g_file_set_contents (data_path, data, 8192, NULL));
  assert_int_equal (stat (data_path, &st), 0);
  write_metadata (fixture, "good", good_json);
  write_metadata (fixture, "lost",
                  "{\"name\":\"lost\",\"size\":4096,\"complete\":false,"
                  "\"created\":1,\"committed\":0}");
  write_metadata (fixture, "broken", "{not json");

  run_sink (&json, "list", "--dir", fixture->dir, "--json", NULL);
  assert_int_equal (json.status, 1);
  assert_non_null (strstr (json.err, "broken.json"));
  root = parse_json (json.out);
  assert_true (JSON_NODE_HOLDS_ARRAY (root));
  assert_int_equal (json_array_get_length (json_node_get_array (root)), 2);

  good = find_replica (json_node_get_array (root), "good");
  assert_int_equal (json_object_get_int_member (good, "size"), 65536);
  assert_int_equal (json_object_get_int_member (good, "allocated"),
                    (gint64)st.st_blocks * 512);
  assert_true (json_object_get_boolean_member (good, "complete"));
  assert_string_equal (json_object_get_string_member (good, "committed"),
                       commit_iso);
  assert_true (json_object_get_null_member (good, "device"));
  assert_false (json_object_has_member (good, "error"));

  lost = find_replica (json_node_get_array (root), "lost");
  assert_true (json_object_get_null_member (lost, "allocated"));
  assert_true (json_object_get_null_member (lost, "committed"));
  assert_false (json_object_get_boolean_member (lost, "complete"));
  assert_true (json_object_get_boolean_member (lost, "orphaned"));
  assert_false (json_object_get_boolean_member (good, "orphaned"));
  assert_true (g_str_has_prefix (json_object_get_string_member (lost, "error"),
                                 "orphaned: "));
  assert_non_null (
      strstr (json_object_get_string_member (lost, "error"), "remove --dir"));

  run_sink (&table, "list", "--dir", fixture->dir, NULL);
  assert_int_equal (table.status, 1);
  assert_non_null (strstr (table.out, "orphaned"));
  assert_non_null (strstr (table.out, "65536 (64.0 KiB)"));
  assert_non_null (strstr (table.out, commit_iso));
  assert_non_null (strstr (table.err, "broken.json"));
  assert_non_null (strstr (table.err, "'lost': orphaned"));
}

/* --------------------------------------------------- a running server */

/* Wait for nbdkit's pid file, which it writes once it listens. */
static void
wait_for_server (const Fixture *fixture)
{
  for (int waited = 0; waited < SERVER_START_TIMEOUT_MS;
       waited += POLL_INTERVAL_MS)
    {
      g_autofree char *text = NULL;

      if (g_file_get_contents (fixture->pid_file, &text, NULL, NULL)
          && g_str_has_suffix (text, "\n")
          && g_file_test (fixture->socket, G_FILE_TEST_EXISTS))
        return;
      g_usleep (POLL_INTERVAL_MS * 1000);
    }
  fail_msg ("nbdkit did not write %s within %d ms", fixture->pid_file,
            SERVER_START_TIMEOUT_MS);
}

/* Start a daemonized sink with extra serve options (NULL-terminated). */
static void
start_server (const Fixture *fixture, ...)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_auto (VmsTestRun) run = { 0 };
  va_list args;

  g_ptr_array_add (argv, (gpointer)sink);
  g_ptr_array_add (argv, (gpointer) "serve");
  g_ptr_array_add (argv, (gpointer) "--dir");
  g_ptr_array_add (argv, fixture->dir);
  g_ptr_array_add (argv, (gpointer) "--unix");
  g_ptr_array_add (argv, fixture->socket);
  g_ptr_array_add (argv, (gpointer) "--pid-file");
  g_ptr_array_add (argv, fixture->pid_file);
  va_start (args, fixture);
  for (const char *arg; (arg = va_arg (args, const char *));)
    g_ptr_array_add (argv, (gpointer)arg);
  va_end (args);
  g_ptr_array_add (argv, NULL);
  /* nbdkit detaches from our pipes when it daemonizes, so this returns
   * once it listens. */
  run_argv (&run, NULL, NULL, (const char *const *)argv->pdata);
  if (run.status != 0)
    fail_msg ("vmshift-sink serve exited %d: %s", run.status, run.err);
  wait_for_server (fixture);
}

/* Run nbdinfo on uri; returns its exit status, output in run. */
static int
nbdinfo (VmsTestRun *run, const char *option, const char *uri)
{
  /* No content probe: it runs file(1), which a minimal system lacks, and
   * nbdinfo 1.14 then prints bytes that are not UTF-8 into its JSON. */
  const char *const argv[] = { "nbdinfo", "--no-content", option ? option : uri,
                               option ? uri : NULL, NULL };

  run_argv (run, NULL, NULL, argv);
  return run->status;
}

static char *
uri_for (const Fixture *fixture, const char *export_name)
{
  return g_strdup_printf ("nbd+unix:///%s?socket=%s", export_name,
                          fixture->socket);
}

/* list --json, parsed; fails unless list exits 0. */
static JsonNode *
list_json (const Fixture *fixture)
{
  g_auto (VmsTestRun) run = { 0 };

  run_sink (&run, "list", "--dir", fixture->dir, "--json", NULL);
  if (run.status != 0)
    fail_msg ("list exited %d: %s", run.status, run.err);
  return parse_json (run.out);
}

/* serve as a daemon; create, list and commit a replica over NBD alone. */
static void
test_serve_create_and_commit (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *probe_uri = uri_for (fixture, "@probe");
  g_autofree char *create_uri = NULL;
  g_autofree char *commit_uri = uri_for (fixture, "r1@commit");
  g_autofree char *bad_uri = uri_for (fixture, "r1..x");
  g_autofree char *create_export
      = g_strdup_printf ("r1@create=%d", REPLICA_SIZE);
  g_autoptr (JsonNode) probe_root = NULL;
  g_autoptr (JsonNode) before = NULL;
  g_autoptr (JsonNode) after = NULL;
  JsonObject *probe_export;
  JsonObject *replica;
  g_auto (VmsTestRun) probe = { 0 };
  g_auto (VmsTestRun) create = { 0 };
  g_auto (VmsTestRun) commit = { 0 };
  g_auto (VmsTestRun) bad = { 0 };

  require_program ("nbdkit", "nbdkit");
  require_program ("nbdinfo", "libnbd-bin");
  create_uri = uri_for (fixture, create_export);
  start_server (fixture, NULL);

  if (nbdinfo (&probe, "--json", probe_uri) != 0)
    fail_msg ("nbdinfo %s: %s", probe_uri, probe.err);
  probe_root = parse_json (probe.out);
  probe_export = json_array_get_object_element (
      json_object_get_array_member (json_node_get_object (probe_root),
                                    "exports"),
      0);
  assert_int_equal (json_object_get_int_member (probe_export, "export-size"),
                    PROBE_SIZE);

  if (nbdinfo (&create, NULL, create_uri) != 0)
    fail_msg ("nbdinfo %s: %s", create_uri, create.err);
  before = list_json (fixture);
  assert_int_equal (json_array_get_length (json_node_get_array (before)), 1);
  replica = find_replica (json_node_get_array (before), "r1");
  assert_int_equal (json_object_get_int_member (replica, "size"), REPLICA_SIZE);
  assert_false (json_object_get_boolean_member (replica, "complete"));
  assert_true (json_object_get_null_member (replica, "committed"));
  assert_false (json_object_get_null_member (replica, "allocated"));

  if (nbdinfo (&commit, NULL, commit_uri) != 0)
    fail_msg ("nbdinfo %s: %s", commit_uri, commit.err);
  after = list_json (fixture);
  replica = find_replica (json_node_get_array (after), "r1");
  assert_true (json_object_get_boolean_member (replica, "complete"));
  assert_false (json_object_get_null_member (replica, "committed"));

  /* A name that could escape the directory is refused by the server. */
  assert_int_not_equal (nbdinfo (&bad, NULL, bad_uri), 0);
}

/* After nbdkit is killed, serve on the same socket works again (the stale
 * socket is removed), while a live server's socket is never taken over. */
static void
test_serve_restarts_after_crash (void **state)
{
  Fixture *fixture = *state;
  g_autofree char *probe_uri = uri_for (fixture, "@probe");
  g_autofree char *text = NULL;
  g_auto (VmsTestRun) second = { 0 };
  g_auto (VmsTestRun) probe = { 0 };
  guint64 pid;

  require_program ("nbdkit", "nbdkit");
  require_program ("nbdinfo", "libnbd-bin");
  start_server (fixture, NULL);

  run_sink (&second, "serve", "--dir", fixture->dir, "--unix", fixture->socket,
            NULL);
  assert_int_equal (second.status, 1);
  assert_non_null (strstr (second.err, "already listening"));

  assert_true (g_file_get_contents (fixture->pid_file, &text, NULL, NULL));
  assert_true (g_ascii_string_to_unsigned (g_strstrip (text), 10, 2, G_MAXINT,
                                           &pid, NULL));
  kill (pid, SIGKILL);
  for (int waited = 0; process_alive (pid); waited += POLL_INTERVAL_MS)
    {
      assert_true (waited < SERVER_STOP_TIMEOUT_MS);
      g_usleep (POLL_INTERVAL_MS * 1000);
    }
  assert_true (g_file_test (fixture->socket, G_FILE_TEST_EXISTS));
  g_unlink (fixture->pid_file);

  start_server (fixture, NULL);
  if (nbdinfo (&probe, NULL, probe_uri) != 0)
    fail_msg ("nbdinfo after restart: %s", probe.err);
}

/* With --tls-psk only a client holding the key gets in. */
static void
test_serve_tls_psk (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (GString) psk = g_string_new ("alice:");
  g_autofree char *tls_uri = NULL;
  g_autofree char *plain_uri = uri_for (fixture, "@probe");
  g_autoptr (JsonNode) root = NULL;
  g_auto (VmsTestRun) tls = { 0 };
  g_auto (VmsTestRun) plain = { 0 };

  require_program ("nbdkit", "nbdkit");
  require_program ("nbdinfo", "libnbd-bin");
  for (int i = 0; i < PSK_KEY_BYTES; i++)
    g_string_append_printf (psk, "%02x", g_random_int_range (0, 256));
  g_string_append_c (psk, '\n');
  assert_true (g_file_set_contents_full (fixture->psk_file, psk->str, -1,
                                         G_FILE_SET_CONTENTS_NONE, 0600, NULL));
  start_server (fixture, "--tls-psk", fixture->psk_file, NULL);

  tls_uri = g_strdup_printf ("nbds+unix://alice@/@probe?socket=%s"
                             "&tls-psk-file=%s",
                             fixture->socket, fixture->psk_file);
  if (nbdinfo (&tls, "--json", tls_uri) != 0)
    fail_msg ("nbdinfo %s: %s", tls_uri, tls.err);
  root = parse_json (tls.out);
  assert_true (
      json_object_get_boolean_member (json_node_get_object (root), "TLS"));

  assert_int_not_equal (nbdinfo (&plain, NULL, plain_uri), 0);
}

int
main (void)
{
#define FIXTURE_TEST(test)                                                     \
  cmocka_unit_test_setup_teardown (test, setup, teardown)
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_help_and_version),
    FIXTURE_TEST (test_serve_usage_errors),
    FIXTURE_TEST (test_serve_clear_text_allowed_only_on_loopback),
    FIXTURE_TEST (test_print_command_shape),
    FIXTURE_TEST (test_print_command_plugin_search),
    FIXTURE_TEST (test_serve_reports_missing_nbdkit),
    FIXTURE_TEST (test_list_empty_dir),
    FIXTURE_TEST (test_list_reports_broken_replicas),
    FIXTURE_TEST (test_serve_create_and_commit),
    FIXTURE_TEST (test_serve_restarts_after_crash),
    FIXTURE_TEST (test_serve_tls_psk),
  };
#undef FIXTURE_TEST

  sink = g_canonicalize_filename (vms_test_built_program ("VMS_SINK"), NULL);
  return vms_test_run_group ("sink-cli", tests, G_N_ELEMENTS (tests), NULL,
                             NULL);
}
