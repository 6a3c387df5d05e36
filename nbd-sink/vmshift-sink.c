/* vmshift-sink: start nbdkit with the vmshift plugin; list and remove
 * replicas.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The sink is an nbdkit plugin; this program only checks a command line
 * that people can get right, turns it into nbdkit's and execs nbdkit, so
 * that sockets, TLS, threads and daemonizing stay nbdkit's business.
 */
#include "vms-config.h"
#include "vms-sink-name.h"
#include "vms-sink-hash.h"
#include "vms-sink-meta.h"
#include "vms-sink-file.h"
#include "vms-sink-seed.h"
#include "vms-cli-main.h"
#include "vms-progress.h"
#include "vms-path.h"
#include "vms-file.h"
#include "vms-option.h"

#include <errno.h>
#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define PROGRAM "vmshift-sink"

/* Exit codes, documented in vmshift-sink(8), the same as vmshift(1)'s. */
enum
{
  SINK_EXIT_OK = 0,     /* success */
  SINK_EXIT_FAILED = 1, /* the operation ran and failed */
  SINK_EXIT_USAGE = 2,  /* bad command line */
};

/* File name of the plugin; nbdkit loads plugins as nbdkit-NAME-plugin.so. */
#define SINK_PLUGIN_FILE "nbdkit-vmshift-plugin.so"

/* Environment variable naming the plugin, for tests and odd installs. */
#define SINK_PLUGIN_ENV "VMS_SINK_PLUGIN"

/* nbdkit's threads per connection; beyond this no disk gets faster. */
#define SINK_MAX_THREADS 1024

/* Highest TCP port. */
#define SINK_MAX_PORT 65535

/* Linux counts st_blocks in 512-byte units whatever the file system. */
#define SINK_STAT_BLOCK_SIZE 512

/* Print "vmshift-sink: SUBCOMMAND: message" on stderr. */
static void sink_error (const char *subcommand, const char *format, ...)
    G_GNUC_PRINTF (2, 3);

static void
sink_error (const char *subcommand, const char *format, ...)
{
  va_list args;
  g_autofree char *message = NULL;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  if (subcommand)
    g_printerr ("%s: %s: %s\n", PROGRAM, subcommand, message);
  else
    g_printerr ("%s: %s\n", PROGRAM, message);
}

/* A subcommand's options parsed into entries' variables, under the
 * program name "vmshift-sink SUBCOMMAND"; FALSE (said on stderr) for
 * options --help does not describe. */
static gboolean
parse_subcommand (const char *subcommand, const char *parameters,
                  const char *summary, const char *description,
                  const GOptionEntry *entries, int *argc, char ***argv)
{
  g_autoptr (GOptionContext) context = g_option_context_new (parameters);
  g_autoptr (GError) error = NULL;
  g_autofree char *prgname = g_strdup_printf ("%s %s", PROGRAM, subcommand);

  g_option_context_set_summary (context, summary);
  g_option_context_set_description (context, description);
  g_option_context_add_main_entries (context, entries, NULL);
  g_set_prgname (prgname);
  if (!g_option_context_parse (context, argc, argv, &error))
    {
      sink_error (subcommand, "%s", error->message);
      return FALSE;
    }
  return TRUE;
}

/* ---------------------------------------------------------------- serve */

static const char *const serve_description
    = "Serve the replicas in DIR over NBD, one export per replica: NAME,\n"
      "NAME@create=SIZE, NAME@live, NAME@live-noflush, NAME@live-reset,\n"
      "NAME@handover, NAME@hashes, NAME@commit and @probe (see\n"
      "vmshift-sink(8)).\n"
      "Exactly one of --listen and --unix is needed.\n"
      "Off loopback, --listen requires --tls-psk or --tls-certificates, or\n"
      "--insecure to serve in clear text anyway.\n"
      "\n"
      "Examples:\n"
      "  vmshift-sink serve --dir /var/lib/vms --unix /run/vms-sink.sock\n"
      "  vmshift-sink serve --dir /var/lib/vms --listen 192.0.2.10:10809 \\\n"
      "      --tls-psk /etc/vmshift/sink.psk\n"
      "\n"
      "Without --foreground nbdkit puts itself in the background once it\n"
      "listens.  Usage errors exit 2; a failure to start nbdkit exits 1.\n";

typedef struct
{
  char *dir;              /* --dir: directory of replicas */
  char *listen;           /* --listen ADDR:PORT, or NULL */
  char *unix_path;        /* --unix PATH, or NULL */
  char **devices;         /* --device NAME=PATH, repeatable; may be NULL */
  char *tls_psk;          /* --tls-psk FILE, or NULL */
  char *tls_certificates; /* --tls-certificates DIR, or NULL */
  gboolean tls_verify;    /* --tls-verify-peer */
  gboolean insecure;      /* --insecure: clear text off loopback allowed */
  gboolean foreground;    /* --foreground: nbdkit does not daemonize */
  char *pid_file;         /* --pid-file FILE, or NULL */
  char *threads;          /* --threads N as typed, or NULL */
  gboolean verbose;       /* --verbose: nbdkit -v */
  char *hash_chunk;       /* --hash-chunk SIZE as typed, or NULL */
  char *nbdkit;           /* --nbdkit PATH, or NULL for nbdkit on PATH */
  char *plugin;           /* --plugin PATH, or NULL to search for it */
  gboolean print_command; /* print nbdkit's command line, do not run it */
} ServeOptions;

static void
serve_options_clear (ServeOptions *options)
{
  g_free (options->dir);
  g_free (options->listen);
  g_free (options->unix_path);
  g_strfreev (options->devices);
  g_free (options->tls_psk);
  g_free (options->tls_certificates);
  g_free (options->pid_file);
  g_free (options->threads);
  g_free (options->hash_chunk);
  g_free (options->nbdkit);
  g_free (options->plugin);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (ServeOptions, serve_options_clear)

/* Where nbdkit listens, once checked. */
typedef struct
{
  char *address;     /* -i ADDR: address without brackets, or "localhost" */
  guint port;        /* -p PORT */
  gboolean loopback; /* only this host can connect */
} ListenAddress;

static void
listen_address_clear (ListenAddress *listen_address)
{
  g_free (listen_address->address);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (ListenAddress, listen_address_clear)

/* Split ADDR:PORT, [IPV6]:PORT or localhost:PORT.  Host names other than
 * localhost are refused: nbdkit would listen on whatever they resolve to,
 * and whether that is loopback could change under our feet. */
static gboolean
parse_listen (const char *text, ListenAddress *out, GError **error)
{
  g_autoptr (GInetAddress) inet = NULL;
  g_autofree char *host = NULL;
  const char *port_text;
  const char *colon;
  guint64 port;

  if (text[0] == '[')
    {
      const char *close = strchr (text, ']');

      if (!close || close[1] != ':')
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       "--listen '%s': write an IPv6 address as "
                       "[ADDR]:PORT, e.g. [::1]:10809",
                       text);
          return FALSE;
        }
      host = g_strndup (text + 1, close - text - 1);
      port_text = close + 2;
    }
  else
    {
      colon = strrchr (text, ':');
      if (!colon)
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       "--listen '%s' has no port; write ADDR:PORT, e.g. "
                       "127.0.0.1:10809",
                       text);
          return FALSE;
        }
      host = g_strndup (text, colon - text);
      if (strchr (host, ':'))
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       "--listen '%s': write an IPv6 address in brackets, "
                       "as [ADDR]:PORT",
                       text);
          return FALSE;
        }
      port_text = colon + 1;
    }
  if (!g_ascii_string_to_unsigned (port_text, 10, 1, SINK_MAX_PORT, &port,
                                   NULL))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--listen '%s': the port must be a number between 1 and "
                   "%d, not '%s'",
                   text, SINK_MAX_PORT, port_text);
      return FALSE;
    }

  if (g_ascii_strcasecmp (host, "localhost") == 0)
    out->loopback = TRUE;
  else
    {
      inet = g_inet_address_new_from_string (host);
      if (!inet)
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       "--listen '%s': '%s' is not an IP address (host "
                       "names other than localhost are not accepted)",
                       text, host);
          return FALSE;
        }
      out->loopback = g_inet_address_get_is_loopback (inet);
    }
  out->address = g_steal_pointer (&host);
  out->port = port;
  return TRUE;
}

/* Turn --device NAME=PATH into the plugin's device=NAME:PATH.  The path is
 * made absolute because nbdkit changes to / when it daemonizes. */
static char *
device_parameter (const char *text, GHashTable *seen, GError **error)
{
  const char *equals = strchr (text, '=');
  g_autofree char *name = NULL;
  g_autofree char *path = NULL;
  g_autoptr (GError) name_error = NULL;
  struct stat st;

  if (!equals || equals[1] == '\0')
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--device '%s': write NAME=PATH, e.g. "
                   "vm1-disk0=/dev/vg0/vm1-disk0",
                   text);
      return NULL;
    }
  name = g_strndup (text, equals - text);
  if (!vms_sink_name_is_valid (name, &name_error))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--device '%s': %s", text, name_error->message);
      return NULL;
    }
  if (g_hash_table_contains (seen, name))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--device: replica '%s' is given twice", name);
      return NULL;
    }
  path = g_canonicalize_filename (equals + 1, NULL);
  if (stat (path, &st) < 0)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--device '%s': %s: %s", text, path, g_strerror (errno));
      return NULL;
    }
  if (!S_ISBLK (st.st_mode))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--device '%s': %s is not a block device (replicas in "
                   "files need no --device: they live in --dir)",
                   text, path);
      return NULL;
    }
  g_hash_table_add (seen, g_strdup (name));
  return g_strdup_printf ("device=%s:%s", name, path);
}

/* Directory of the running program, from /proc/self/exe (argv[0] may be a
 * bare name found on PATH).  Caller frees; NULL if unknown. */
static char *
program_directory (void)
{
  g_autofree char *exe = g_file_read_link ("/proc/self/exe", NULL);

  return exe ? g_path_get_dirname (exe) : NULL;
}

/* Find the plugin: --plugin, then $VMS_SINK_PLUGIN, then next to this
 * program (the build tree), then nbdkit's plugin directory.  A path the
 * user named explicitly must exist: silently loading another plugin than
 * the one asked for would hide a mistake.  Caller frees. */
static char *
find_plugin (const char *option, int *exit_code, GError **error)
{
  const char *from_env = g_getenv (SINK_PLUGIN_ENV);
  g_autofree char *exe_dir = program_directory ();
  g_autofree char *beside = NULL;
  const char *installed = VMS_NBDKIT_PLUGINDIR "/" SINK_PLUGIN_FILE;

  if (option)
    {
      if (!g_file_test (option, G_FILE_TEST_IS_REGULAR))
        {
          *exit_code = SINK_EXIT_USAGE;
          g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT,
                       "--plugin %s: no such file", option);
          return NULL;
        }
      return g_canonicalize_filename (option, NULL);
    }
  if (from_env && *from_env)
    {
      if (!g_file_test (from_env, G_FILE_TEST_IS_REGULAR))
        {
          *exit_code = SINK_EXIT_FAILED;
          g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT,
                       "%s=%s: no such file", SINK_PLUGIN_ENV, from_env);
          return NULL;
        }
      return g_canonicalize_filename (from_env, NULL);
    }
  if (exe_dir)
    {
      beside = g_build_filename (exe_dir, SINK_PLUGIN_FILE, NULL);
      if (g_file_test (beside, G_FILE_TEST_IS_REGULAR))
        return g_steal_pointer (&beside);
    }
  if (g_file_test (installed, G_FILE_TEST_IS_REGULAR))
    return g_strdup (installed);
  *exit_code = SINK_EXIT_FAILED;
  g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT,
               "cannot find %s in %s or %s; install vmshift's nbdkit plugin "
               "or name it with --plugin",
               SINK_PLUGIN_FILE, exe_dir ? exe_dir : "the program's directory",
               VMS_NBDKIT_PLUGINDIR);
  return NULL;
}

/* Check the TLS options; certificate and key files are nbdkit's to read. */
static gboolean
check_tls (const ServeOptions *options, GError **error)
{
  if (options->tls_psk && options->tls_certificates)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--tls-psk and --tls-certificates exclude each other; "
                   "choose one");
      return FALSE;
    }
  if (options->tls_verify && !options->tls_certificates)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--tls-verify-peer needs --tls-certificates (a PSK "
                   "already authenticates the client)");
      return FALSE;
    }
  if (options->tls_psk
      && !g_file_test (options->tls_psk, G_FILE_TEST_IS_REGULAR))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--tls-psk %s: no such file", options->tls_psk);
      return FALSE;
    }
  if (options->tls_certificates
      && !g_file_test (options->tls_certificates, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--tls-certificates %s: no such directory",
                   options->tls_certificates);
      return FALSE;
    }
  return TRUE;
}

/* Check where to listen; fills listen_address for --listen. */
static gboolean
check_endpoint (const ServeOptions *options, ListenAddress *listen_address,
                GError **error)
{
  gboolean tls = options->tls_psk || options->tls_certificates;

  if (!!options->listen == !!options->unix_path)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "give exactly one of --listen ADDR:PORT and --unix PATH");
      return FALSE;
    }
  if (options->unix_path && !*options->unix_path)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--unix wants the path of a socket");
      return FALSE;
    }
  if (!options->listen)
    return TRUE;
  if (!parse_listen (options->listen, listen_address, error))
    return FALSE;
  /* Replicas are whole disks: whoever reaches the port can read and
   * overwrite them, so clear text is only the default where nobody else
   * can listen in. */
  if (!listen_address->loopback && !tls && !options->insecure)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--listen %s is not a loopback address: anyone on the "
                   "network could read and write the replicas; use "
                   "--tls-psk FILE or --tls-certificates DIR, or --insecure "
                   "to serve in clear text anyway",
                   options->listen);
      return FALSE;
    }
  return TRUE;
}

/* Check DIR, which nbdkit gets as an absolute path because it changes to /
 * when it daemonizes.  Caller frees. */
static char *
check_dir (const char *dir, GError **error)
{
  if (!dir)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--dir DIR is required: the directory of the replicas");
      return NULL;
    }
  if (!g_file_test (dir, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--dir %s: no such directory (create it first)", dir);
      return NULL;
    }
  if (!g_file_test (dir, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--dir %s is not a directory", dir);
      return NULL;
    }
  return g_canonicalize_filename (dir, NULL);
}

/* Check the numeric options; 0 in *threads and *hash_chunk means "not
 * given, let nbdkit and the plugin choose". */
static gboolean
check_numbers (const ServeOptions *options, guint64 *threads,
               guint64 *hash_chunk, GError **error)
{
  *threads = 0;
  *hash_chunk = 0;
  /* The plugin checks --hash-chunk too, but its message names
   * hash-chunk=, which the user never typed, and --print-command should
   * print only what runs. */
  if (!vms_option_count ("--threads", options->threads, 1, SINK_MAX_THREADS,
                         threads, error)
      || !vms_option_size ("--hash-chunk", options->hash_chunk,
                           VMS_SINK_HASH_CHUNK_MIN, VMS_SINK_HASH_CHUNK_MAX,
                           hash_chunk, error))
    return FALSE;
  if ((*hash_chunk & (*hash_chunk - 1)) != 0)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--hash-chunk wants a power of two between %d and %d "
                   "bytes, not '%s'",
                   VMS_SINK_HASH_CHUNK_MIN, VMS_SINK_HASH_CHUNK_MAX,
                   options->hash_chunk);
      return FALSE;
    }
  return TRUE;
}

/* Everything serve hands to nbdkit, checked. */
typedef struct
{
  char *dir;                    /* absolute --dir */
  GPtrArray *device_parameters; /* "device=NAME:PATH" strings */
  ListenAddress listen;         /* --listen, if given */
  guint64 threads;              /* --threads, 0 if not given */
  guint64 hash_chunk;           /* --hash-chunk, 0 if not given */
  char *plugin;                 /* absolute path of the plugin */
  char *unix_path;              /* absolute --unix, or NULL */
  char *pid_file;               /* absolute --pid-file, or NULL */
} ServePlan;

static void
serve_plan_clear (ServePlan *plan)
{
  g_free (plan->dir);
  g_clear_pointer (&plan->device_parameters, g_ptr_array_unref);
  listen_address_clear (&plan->listen);
  g_free (plan->plugin);
  g_free (plan->unix_path);
  g_free (plan->pid_file);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (ServePlan, serve_plan_clear)

/* Check the options of serve and fill plan.  *exit_code says what a
 * failure means. */
static gboolean
plan_serve (const ServeOptions *options, ServePlan *plan, int *exit_code,
            GError **error)
{
  g_autoptr (GHashTable) seen
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  *exit_code = SINK_EXIT_USAGE;
  plan->dir = check_dir (options->dir, error);
  if (!plan->dir || !check_endpoint (options, &plan->listen, error)
      || !check_tls (options, error)
      || !check_numbers (options, &plan->threads, &plan->hash_chunk, error))
    return FALSE;
  plan->device_parameters = g_ptr_array_new_with_free_func (g_free);
  for (char **device = options->devices; device && *device; device++)
    {
      char *parameter = device_parameter (*device, seen, error);

      if (!parameter)
        return FALSE;
      g_ptr_array_add (plan->device_parameters, parameter);
    }
  /* nbdkit changes to / when it daemonizes: every path it gets is
   * absolute. */
  plan->unix_path = vms_path_absolute (options->unix_path);
  plan->pid_file = vms_path_absolute (options->pid_file);
  plan->plugin = find_plugin (options->plugin, exit_code, error);
  return plan->plugin != NULL;
}

/* nbdkit's argv, NULL-terminated; the strings are owned by the array. */
static GPtrArray *
nbdkit_argv (const ServeOptions *options, const ServePlan *plan)
{
  GPtrArray *argv = g_ptr_array_new_with_free_func (g_free);

#define ADD(value) g_ptr_array_add (argv, g_strdup (value))
#define ADD_PRINTF(...) g_ptr_array_add (argv, g_strdup_printf (__VA_ARGS__))
  ADD (options->nbdkit ? options->nbdkit : "nbdkit");
  if (options->foreground)
    ADD ("-f");
  if (options->verbose)
    ADD ("-v");
  if (options->pid_file)
    {
      ADD ("-P");
      ADD (plan->pid_file);
    }
  if (plan->threads)
    {
      ADD ("-t");
      ADD_PRINTF ("%" G_GUINT64_FORMAT, plan->threads);
    }
  if (options->tls_psk || options->tls_certificates)
    ADD ("--tls=require");
  if (options->tls_psk)
    {
      g_autofree char *path = g_canonicalize_filename (options->tls_psk, NULL);

      ADD_PRINTF ("--tls-psk=%s", path);
    }
  if (options->tls_certificates)
    {
      g_autofree char *path
          = g_canonicalize_filename (options->tls_certificates, NULL);

      ADD_PRINTF ("--tls-certificates=%s", path);
      if (options->tls_verify)
        ADD ("--tls-verify-peer");
    }
  if (options->unix_path)
    {
      ADD ("-U");
      ADD (plan->unix_path);
    }
  else
    {
      ADD ("-i");
      ADD (plan->listen.address);
      ADD ("-p");
      ADD_PRINTF ("%u", plan->listen.port);
    }
  ADD (plan->plugin);
  ADD_PRINTF ("dir=%s", plan->dir);
  for (guint i = 0; i < plan->device_parameters->len; i++)
    ADD (g_ptr_array_index (plan->device_parameters, i));
  if (plan->hash_chunk)
    ADD_PRINTF ("hash-chunk=%" G_GUINT64_FORMAT, plan->hash_chunk);
#undef ADD
#undef ADD_PRINTF
  g_ptr_array_add (argv, NULL);
  return argv;
}

/* Characters that mean nothing to a shell, so words made only of them are
 * printed unquoted and the command stays readable. */
#define SHELL_SAFE_CHARS                                                       \
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"             \
  "_-./=:@%+,"

static int
print_command (GPtrArray *argv)
{
  for (guint i = 0; g_ptr_array_index (argv, i); i++)
    {
      const char *word = g_ptr_array_index (argv, i);
      g_autofree char *quoted = NULL;

      if (!*word || word[strspn (word, SHELL_SAFE_CHARS)] != '\0')
        word = quoted = g_shell_quote (word);
      printf ("%s%s", i ? " " : "", word);
    }
  printf ("\n");
  fflush (stdout);
  return ferror (stdout) ? SINK_EXIT_FAILED : SINK_EXIT_OK;
}

/* nbdkit leaves its socket behind when it dies, and then a restart on the
 * same path fails with "Address already in use".  A socket nobody listens
 * on is removed; a live one, or anything that is not a socket, is left
 * alone and refused. */
static gboolean
clear_stale_socket (const char *path, GError **error)
{
  struct sockaddr_un address = { .sun_family = AF_UNIX };
  struct stat st;
  int fd, connected, saved;

  if (lstat (path, &st) < 0)
    return TRUE;
  if (!S_ISSOCK (st.st_mode))
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_EXIST,
                   "%s exists and is not a socket", path);
      return FALSE;
    }
  if (strlen (path) >= sizeof address.sun_path)
    return TRUE; /* nbdkit will say why it cannot use it */
  strcpy (address.sun_path, path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return TRUE;
  connected = connect (fd, (struct sockaddr *)&address, sizeof address);
  saved = errno;
  close (fd);
  if (connected == 0)
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_EXIST,
                   "a server is already listening on %s", path);
      return FALSE;
    }
  if (saved == ECONNREFUSED && unlink (path) == 0)
    g_printerr ("%s: serve: removed stale socket %s\n", PROGRAM, path);
  return TRUE;
}

static int
cmd_serve (int argc, char **argv)
{
  g_auto (ServeOptions) options = { 0 };
  g_auto (ServePlan) plan = { 0 };
  /* The plugin's limits, so that help and checks cannot drift from it. */
  g_autofree char *hash_chunk_help = g_strdup_printf (
      "Bytes per hash in NAME@hashes: a power of two from %d to %d "
      "(default %d)",
      VMS_SINK_HASH_CHUNK_MIN, VMS_SINK_HASH_CHUNK_MAX,
      VMS_SINK_HASH_CHUNK_DEFAULT);
  const GOptionEntry entries[]
      = { { "dir", 'd', 0, G_OPTION_ARG_FILENAME, &options.dir,
            "Directory of the replicas (required)", "DIR" },
          { "listen", 'l', 0, G_OPTION_ARG_STRING, &options.listen,
            "Listen on TCP: 127.0.0.1:10809, [::1]:10809", "ADDR:PORT" },
          { "unix", 'U', 0, G_OPTION_ARG_FILENAME, &options.unix_path,
            "Listen on a Unix domain socket", "PATH" },
          { "device", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &options.devices,
            "Serve replica NAME from block device PATH (repeatable)",
            "NAME=PATH" },
          { "tls-psk", 0, 0, G_OPTION_ARG_FILENAME, &options.tls_psk,
            "Require TLS with the pre-shared keys in FILE (username:hexkey)",
            "FILE" },
          { "tls-certificates", 0, 0, G_OPTION_ARG_FILENAME,
            &options.tls_certificates,
            "Require TLS with the X.509 certificates in DIR", "DIR" },
          { "tls-verify-peer", 0, 0, G_OPTION_ARG_NONE, &options.tls_verify,
            "Require clients to present a certificate", NULL },
          { "insecure", 0, 0, G_OPTION_ARG_NONE, &options.insecure,
            "Allow clear text on a non-loopback --listen address", NULL },
          { "foreground", 'f', 0, G_OPTION_ARG_NONE, &options.foreground,
            "Stay in the foreground (default: nbdkit daemonizes)", NULL },
          { "pid-file", 'P', 0, G_OPTION_ARG_FILENAME, &options.pid_file,
            "nbdkit writes its process id to FILE once it listens", "FILE" },
          { "threads", 't', 0, G_OPTION_ARG_STRING, &options.threads,
            "Threads per connection (nbdkit's default if not given)", "N" },
          { "verbose", 'v', 0, G_OPTION_ARG_NONE, &options.verbose,
            "Make nbdkit log verbosely", NULL },
          { "hash-chunk", 0, 0, G_OPTION_ARG_STRING, &options.hash_chunk,
            hash_chunk_help, "SIZE" },
          { "nbdkit", 0, 0, G_OPTION_ARG_FILENAME, &options.nbdkit,
            "Run this nbdkit (default: nbdkit on PATH)", "PATH" },
          { "plugin", 0, 0, G_OPTION_ARG_FILENAME, &options.plugin,
            "Use this " SINK_PLUGIN_FILE, "PATH" },
          { "print-command", 0, 0, G_OPTION_ARG_NONE, &options.print_command,
            "Print the nbdkit command line instead of running it", NULL },
          G_OPTION_ENTRY_NULL };
  g_autoptr (GPtrArray) command = NULL;
  g_autoptr (GError) error = NULL;
  int exit_code;

  if (!parse_subcommand ("serve", NULL,
                         "Serve a directory of replicas over NBD with "
                         "nbdkit.",
                         serve_description, entries, &argc, &argv))
    return SINK_EXIT_USAGE;
  if (argc > 1)
    {
      sink_error ("serve",
                  "unexpected argument '%s' (see '%s serve "
                  "--help')",
                  argv[1], PROGRAM);
      return SINK_EXIT_USAGE;
    }
  if (!plan_serve (&options, &plan, &exit_code, &error))
    {
      sink_error ("serve", "%s", error->message);
      return exit_code;
    }

  command = nbdkit_argv (&options, &plan);
  if (options.print_command)
    return print_command (command);

  if (options.unix_path && !clear_stale_socket (options.unix_path, &error))
    {
      sink_error ("serve", "%s", error->message);
      return SINK_EXIT_FAILED;
    }
  fflush (stdout);
  execvp (g_ptr_array_index (command, 0), (char **)command->pdata);
  sink_error ("serve",
              "cannot run %s: %s (install the Debian package "
              "nbdkit)",
              (char *)g_ptr_array_index (command, 0), g_strerror (errno));
  return SINK_EXIT_FAILED;
}

/* ----------------------------------------------------------------- list */

/* One replica as list shows it. */
typedef struct
{
  char *name;         /* replica name */
  guint64 size;       /* bytes the replica exports */
  gboolean has_alloc; /* allocated is known (a file that exists) */
  guint64 allocated;  /* bytes the data file occupies on disk */
  gboolean complete;  /* committed and not written since */
  char *committed;    /* last commit in ISO 8601 UTC, or NULL if never */
  char *device;       /* block device, or NULL for a file in DIR */
  char *problem;      /* what is wrong with the data, or NULL */
  gboolean orphaned;  /* metadata left without its data file */
  const char *shown;  /* table text when allocated is unknown */
} ListRow;

static void
list_row_free (ListRow *row)
{
  g_free (row->name);
  g_free (row->committed);
  g_free (row->device);
  g_free (row->problem);
  g_free (row);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ListRow, list_row_free)

/* Make the row of meta; a problem with its data file is noted in it. */
static ListRow *
list_row_new (const char *dir, const VmsSinkMeta *meta)
{
  g_autoptr (ListRow) row = g_new0 (ListRow, 1);
  g_autofree char *path = vms_sink_meta_data_path (dir, meta);
  struct stat st;

  row->name = g_strdup (meta->name);
  row->size = meta->size;
  row->complete = meta->complete;
  row->device = g_strdup (meta->device);
  if (meta->committed > 0)
    {
      g_autoptr (GDateTime) time
          = g_date_time_new_from_unix_utc (meta->committed);

      row->committed = time ? g_date_time_format_iso8601 (time) : NULL;
    }
  row->shown = "-";
  /* A device may be reached through a link (/dev/mapper/NAME); a data
   * file in DIR may not, and the sink refuses one that is a link. */
  if ((meta->device ? stat (path, &st) : lstat (path, &st)) < 0)
    {
      if (errno == ENOENT && meta->device)
        {
          row->problem = g_strdup ("device missing");
          row->shown = "missing";
        }
      else if (errno == ENOENT)
        {
          row->orphaned = TRUE;
          row->problem = g_strdup_printf (
              "orphaned: its data file %s was deleted; '%s remove --dir %s "
              "%s' deletes the metadata, opening the export %s@create=SIZE "
              "makes the replica afresh",
              path, PROGRAM, dir, meta->name, meta->name);
          row->shown = "orphaned";
        }
      else
        {
          row->problem = g_strdup_printf ("%s: %s", path, g_strerror (errno));
          row->shown = "error";
        }
    }
  else if (!meta->device && !S_ISREG (st.st_mode))
    {
      row->problem = g_strdup_printf (
          "its data file %s is %s, not a regular file: the sink refuses it",
          path, vms_sink_file_kind (st.st_mode));
      row->shown = "refused";
    }
  else if (!meta->device)
    {
      /* A device has no holes to count; its size is its allocation. */
      row->has_alloc = TRUE;
      row->allocated = (guint64)st.st_blocks * SINK_STAT_BLOCK_SIZE;
    }
  return g_steal_pointer (&row);
}

/* Bytes, and in IEC units (disks come in powers of two) when that says
 * something the number does not. */
static char *
format_bytes (guint64 bytes)
{
  g_autofree char *human = NULL;

  if (bytes < 1024)
    return g_strdup_printf ("%" G_GUINT64_FORMAT, bytes);
  /* A plain space before the unit keeps the columns aligned. */
  human = vms_format_size_full (bytes, G_FORMAT_SIZE_IEC_UNITS);
  return g_strdup_printf ("%" G_GUINT64_FORMAT " (%s)", bytes, human);
}

/* Columns of the table for people. */
enum
{
  COLUMN_NAME,
  COLUMN_SIZE,
  COLUMN_ALLOCATED,
  COLUMN_COMPLETE,
  COLUMN_COMMITTED,
  COLUMN_DEVICE,
  N_COLUMNS
};

static void
print_table (GPtrArray *rows)
{
  static const char *const headers[N_COLUMNS]
      = { "NAME", "SIZE", "ALLOCATED", "COMPLETE", "COMMITTED", "DEVICE" };
  g_autoptr (GPtrArray) cells = g_ptr_array_new_with_free_func (g_free);
  int widths[N_COLUMNS];

  for (int c = 0; c < N_COLUMNS; c++)
    {
      g_ptr_array_add (cells, g_strdup (headers[c]));
      widths[c] = strlen (headers[c]);
    }
  for (guint r = 0; r < rows->len; r++)
    {
      const ListRow *row = g_ptr_array_index (rows, r);

      g_ptr_array_add (cells, g_strdup (row->name));
      g_ptr_array_add (cells, format_bytes (row->size));
      g_ptr_array_add (cells, row->has_alloc ? format_bytes (row->allocated)
                                             : g_strdup (row->shown));
      g_ptr_array_add (cells, g_strdup (row->complete ? "yes" : "no"));
      g_ptr_array_add (cells, g_strdup (row->committed ? row->committed : "-"));
      g_ptr_array_add (cells, g_strdup (row->device ? row->device : "-"));
    }
  for (guint i = 0; i < cells->len; i++)
    widths[i % N_COLUMNS] = MAX (widths[i % N_COLUMNS],
                                 (int)strlen (g_ptr_array_index (cells, i)));
  for (guint i = 0; i < cells->len; i++)
    {
      int column = i % N_COLUMNS;

      if (column == N_COLUMNS - 1)
        printf ("%s\n", (char *)g_ptr_array_index (cells, i));
      else
        printf ("%-*s  ", widths[column], (char *)g_ptr_array_index (cells, i));
    }
}

static void
print_json (GPtrArray *rows)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree char *text = NULL;

  json_builder_begin_array (builder);
  for (guint r = 0; r < rows->len; r++)
    {
      const ListRow *row = g_ptr_array_index (rows, r);

      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "name");
      json_builder_add_string_value (builder, row->name);
      json_builder_set_member_name (builder, "size");
      json_builder_add_int_value (builder, row->size);
      json_builder_set_member_name (builder, "allocated");
      if (row->has_alloc)
        json_builder_add_int_value (builder, row->allocated);
      else
        json_builder_add_null_value (builder);
      json_builder_set_member_name (builder, "complete");
      json_builder_add_boolean_value (builder, row->complete);
      json_builder_set_member_name (builder, "committed");
      if (row->committed)
        json_builder_add_string_value (builder, row->committed);
      else
        json_builder_add_null_value (builder);
      json_builder_set_member_name (builder, "device");
      if (row->device)
        json_builder_add_string_value (builder, row->device);
      else
        json_builder_add_null_value (builder);
      json_builder_set_member_name (builder, "orphaned");
      json_builder_add_boolean_value (builder, row->orphaned);
      if (row->problem)
        {
          json_builder_set_member_name (builder, "error");
          json_builder_add_string_value (builder, row->problem);
        }
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  text = json_generator_to_data (generator, NULL);
  printf ("%s\n", text);
}

/* --dir of list and remove: given, and a directory; says why not. */
static gboolean
check_replica_dir (const char *subcommand, const char *dir)
{
  if (dir && g_file_test (dir, G_FILE_TEST_IS_DIR))
    return TRUE;
  if (dir)
    sink_error (subcommand, "--dir %s: no such directory", dir);
  else
    sink_error (subcommand, "--dir DIR is required: the directory of the "
                            "replicas");
  return FALSE;
}

static const char *const list_description
    = "For each replica in DIR: its name, size, bytes allocated on disk\n"
      "(\"-\" for a block device), whether it is complete (committed by the\n"
      "source and not written since), when it was last committed, and its\n"
      "block device if any.  A replica whose data file was deleted while its\n"
      "metadata remains is shown as orphaned: 'remove' deletes what is left\n"
      "of it, and opening NAME@create=SIZE makes it afresh.  Exits 1 if a\n"
      "replica's metadata cannot be read or is not a regular file, its data\n"
      "is missing or is not a regular file (a symbolic link, a FIFO...), or\n"
      "it is orphaned; the other replicas are still listed.  Links are\n"
      "reported, never followed.\n";

static int
cmd_list (int argc, char **argv)
{
  g_autofree char *dir = NULL;
  gboolean json = FALSE;
  const GOptionEntry entries[]
      = { { "dir", 'd', 0, G_OPTION_ARG_FILENAME, &dir,
            "Directory of the replicas (required)", "DIR" },
          { "json", 'j', 0, G_OPTION_ARG_NONE, &json,
            "Print a JSON array of objects instead of a table", NULL },
          G_OPTION_ENTRY_NULL };
  g_autoptr (GPtrArray) rows
      = g_ptr_array_new_with_free_func ((GDestroyNotify)list_row_free);
  g_autoptr (GError) error = NULL;
  g_auto (GStrv) names = NULL;
  int status = SINK_EXIT_OK;

  if (!parse_subcommand ("list", NULL, "List the replicas in a directory.",
                         list_description, entries, &argc, &argv))
    return SINK_EXIT_USAGE;
  if (argc > 1)
    {
      sink_error ("list", "unexpected argument '%s' (see '%s list --help')",
                  argv[1], PROGRAM);
      return SINK_EXIT_USAGE;
    }
  if (!check_replica_dir ("list", dir))
    return SINK_EXIT_USAGE;

  names = vms_sink_meta_list (dir, &error);
  if (!names)
    {
      sink_error ("list", "%s: %s", dir, error->message);
      return SINK_EXIT_FAILED;
    }
  for (char **name = names; *name; name++)
    {
      g_autoptr (GError) load_error = NULL;
      g_autoptr (VmsSinkMeta) meta
          = vms_sink_meta_load (dir, *name, &load_error);
      ListRow *row;

      if (!meta)
        {
          sink_error ("list", "%s", load_error->message);
          status = SINK_EXIT_FAILED;
          continue;
        }
      row = list_row_new (dir, meta);
      if (row->problem)
        {
          /* In JSON the problem is in the object; people reading the
           * table need the reason, not just "missing". */
          if (!json)
            sink_error ("list", "replica '%s': %s", row->name, row->problem);
          status = SINK_EXIT_FAILED;
        }
      g_ptr_array_add (rows, row);
    }

  if (json)
    print_json (rows);
  else
    print_table (rows);
  fflush (stdout);
  return ferror (stdout) ? SINK_EXIT_FAILED : status;
}

/* --------------------------------------------------------------- remove */

static const char *const remove_description
    = "Delete each replica NAME in DIR: its data file DIR/NAME and its\n"
      "metadata DIR/.vmshift/NAME.json together, so that nothing of it is\n"
      "left; an orphaned replica (its data file deleted by hand) too.  A\n"
      "replica on a block device (--device) loses only its metadata: the\n"
      "device is left as it is.  Stop the sink first, or make sure no client\n"
      "uses the replica: a sink that has it open refuses it until those\n"
      "connections close.  Exits 1 if a NAME has neither data nor metadata\n"
      "in DIR or cannot be removed; the other NAMEs are still removed.\n";

/* Delete the data file (never a device), then the metadata: a crash in
 * between leaves an orphan, which list shows and remove or @create
 * clear. */
static gboolean
remove_replica (const char *dir, const char *name, GError **error)
{
  g_autofree char *data = g_build_filename (dir, name, NULL);
  g_autoptr (VmsSinkMeta) meta = NULL;
  gboolean had_data = FALSE, had_meta = FALSE;

  if (!vms_sink_name_is_valid (name, error))
    return FALSE;
  /* Unreadable metadata is removed all the same. */
  meta = vms_sink_meta_load (dir, name, NULL);
  if (!meta || !meta->device)
    {
      int code = unlink (data) == 0 ? 0 : errno;

      had_data = code == 0;
      if (code && code != ENOENT)
        {
          g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (code),
                       "unlink %s: %s", data, g_strerror (code));
          return FALSE;
        }
      if (had_data && !vms_file_sync_directory (dir, error))
        return FALSE;
    }
  if (!vms_sink_meta_remove (dir, name, &had_meta, error))
    return FALSE;
  if (!had_data && !had_meta)
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT,
                   "no replica named '%s' in %s", name, dir);
      return FALSE;
    }
  return TRUE;
}

static int
cmd_remove (int argc, char **argv)
{
  g_autofree char *dir = NULL;
  const GOptionEntry entries[]
      = { { "dir", 'd', 0, G_OPTION_ARG_FILENAME, &dir,
            "Directory of the replicas (required)", "DIR" },
          G_OPTION_ENTRY_NULL };
  int status = SINK_EXIT_OK;

  if (!parse_subcommand ("remove", "NAME...",
                         "Delete replicas and their metadata.",
                         remove_description, entries, &argc, &argv))
    return SINK_EXIT_USAGE;
  if (argc < 2)
    {
      sink_error ("remove",
                  "expected the NAME of a replica (see '%s remove "
                  "--help')",
                  PROGRAM);
      return SINK_EXIT_USAGE;
    }
  if (!check_replica_dir ("remove", dir))
    return SINK_EXIT_USAGE;
  for (int i = 1; i < argc; i++)
    {
      g_autoptr (GError) remove_error = NULL;

      if (!remove_replica (dir, argv[i], &remove_error))
        {
          sink_error ("remove", "%s", remove_error->message);
          status = SINK_EXIT_FAILED;
        }
    }
  return status;
}

/* ----------------------------------------------------------------- seed */

static const char *const seed_description
    = "import: make the replicas of the seed at PATH (written by 'vmshift\n"
      "seed export' and shipped) in DIR.  Every chunk's hash is checked and\n"
      "holes stay sparse; each replica is made durable, then gets its\n"
      "metadata (not complete, seeded from the job) and its name.  A\n"
      "replica of the seed that exists in DIR is refused.  A seed that is\n"
      "damaged (the chunk is named), cut short or was never finished leaves\n"
      "no replica behind.  Exits 1 then.  Afterwards 'vmshift sync --resume\n"
      "JOB --sink URI' (or a migration) sends only what changed since the\n"
      "seed.\n";

static void
show_import (guint64 done, guint64 total, gpointer user_data)
{
  guint *shown = user_data;
  guint tenth = total ? done * 10 / total : 10;

  if (tenth > *shown)
    {
      *shown = tenth;
      g_printerr ("%s: seed import: %u%% (%" G_GUINT64_FORMAT
                  " of %" G_GUINT64_FORMAT " chunks)\n",
                  PROGRAM, tenth * 10, done, total);
    }
}

static int
cmd_seed (int argc, char **argv)
{
  g_autofree char *dir = NULL;
  const GOptionEntry entries[]
      = { { "dir", 'd', 0, G_OPTION_ARG_FILENAME, &dir,
            "Directory of the replicas (required)", "DIR" },
          G_OPTION_ENTRY_NULL };
  g_autoptr (GError) error = NULL;
  g_auto (GStrv) names = NULL;
  g_autofree char *list = NULL;
  guint shown = 0;

  if (!parse_subcommand ("seed", "import PATH",
                         "Make replicas from a shipped seed.", seed_description,
                         entries, &argc, &argv))
    return SINK_EXIT_USAGE;
  if (argc != 3 || !g_str_equal (argv[1], "import"))
    {
      sink_error ("seed", "expected: import PATH (see '%s seed --help')",
                  PROGRAM);
      return SINK_EXIT_USAGE;
    }
  if (!check_replica_dir ("seed", dir))
    return SINK_EXIT_USAGE;
  if (!vms_sink_seed_import (dir, argv[2], show_import, &shown, &names, &error))
    {
      sink_error ("seed", "import of %s: %s", argv[2], error->message);
      return SINK_EXIT_FAILED;
    }
  list = g_strjoinv (", ", names);
  g_print ("imported %s from %s into %s\n", list, argv[2], dir);
  return SINK_EXIT_OK;
}

/* ----------------------------------------------------------------- main */

static const VmsCliCommand commands[] = {
  { "serve", "Serve a directory of replicas over NBD (runs nbdkit)",
    cmd_serve },
  { "list", "List the replicas in a directory", cmd_list },
  { "remove", "Delete replicas and their metadata", cmd_remove },
  { "seed", "Make replicas from a shipped seed (import PATH)", cmd_seed },
};

int
main (int argc, char **argv)
{
  const VmsCliProgram program = {
    .name = PROGRAM,
    .version = VMS_VERSION,
    .description = "The destination side of vmshift: serve replicas of "
                   "disks over NBD.",
    .see_also = "vmshift-sink(8) for export names and exit codes",
    .commands = commands,
    .n_commands = G_N_ELEMENTS (commands),
  };

  return vms_cli_main (&program, argc, argv);
}
