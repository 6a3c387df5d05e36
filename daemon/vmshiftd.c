/* vmshiftd: vmshift's management server: plans run over HTTP, their
 * events streamed, jobs shown (see vmshiftd(8)).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-config.h"
#include "vms-api.h"
#include "vms-db-rebuild.h"
#include "vms-job.h"
#include "vms-path.h"
#include "vms-web.h"

#include <glib-unix.h>
#include <libsoup/soup.h>
#include <stdio.h>
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#define DEFAULT_LISTEN "127.0.0.1:8086"
#define DEFAULT_PORT 8086
#define TOKEN_FILE "vmshiftd.token"
#define DATABASE_FILE "vmshiftd.db"

typedef struct
{
  char *listen;
  char *state_dir;
  char *token_file;
  char *database;
  char *tls_certificate;
  char *tls_key;
  gboolean insecure;
  gboolean version;
} Options;

static void
options_clear (Options *options)
{
  g_free (options->listen);
  g_free (options->state_dir);
  g_free (options->token_file);
  g_free (options->database);
  g_free (options->tls_certificate);
  g_free (options->tls_key);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Options, options_clear)

/* The token clients send: the file's first line, or, when the file is
 * not there, a new random one written to it (owner only) and said. */
static char *
read_token (const char *path, GError **error)
{
  g_autofree char *text = NULL;
  char *token;

  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    {
      guint8 bytes[32];
      g_autoptr (GString) hex = g_string_new (NULL);

      /* The kernel's random bytes: GLib's g_random is not for secrets. */
      if (getrandom (bytes, sizeof bytes, 0) != sizeof bytes)
        {
          g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno),
                       "no random bytes for a token: %s", g_strerror (errno));
          return NULL;
        }
      for (guint i = 0; i < sizeof bytes; i++)
        g_string_append_printf (hex, "%02x", bytes[i]);
      g_string_append_c (hex, '\n');
      if (!g_file_set_contents_full (path, hex->str, hex->len,
                                     G_FILE_SET_CONTENTS_CONSISTENT, 0600,
                                     error))
        return NULL;
      fprintf (stderr, "vmshiftd: a new bearer token is in %s\n", path);
    }
  if (!g_file_get_contents (path, &text, NULL, error))
    return NULL;
  token = g_strndup (text, strcspn (text, "\r\n"));
  if (strlen (token) < 16)
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                   "%s: the token is shorter than 16 characters", path);
      g_free (token);
      return NULL;
    }
  return token;
}

/* Connections waiting to be accepted: GLib's default of 10 drops
 * clients' SYNs when many connect at once (bench/vmshiftd-load with 20
 * senders saw 1 s connects). */
#define LISTEN_BACKLOG 256

static gboolean
listen_socket (SoupServer *server, GSocketAddress *address,
               SoupServerListenOptions flags, GError **error)
{
  g_autoptr (GSocket) socket
      = g_socket_new (g_socket_address_get_family (address),
                      G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, error);

  if (!socket)
    return FALSE;
  g_socket_set_listen_backlog (socket, LISTEN_BACKLOG);
  return g_socket_bind (socket, address, TRUE, error)
         && g_socket_listen (socket, error)
         && soup_server_listen_socket (server, socket, flags, error);
}

/* --listen HOST:PORT, plain or over TLS; off loopback only with TLS or
 * --insecure (plans name QMP sockets and hosts, and the token crosses). */
static gboolean
listen_on (SoupServer *server, const Options *options, GError **error)
{
  g_autoptr (GSocketConnectable) where
      = g_network_address_parse (options->listen, DEFAULT_PORT, error);
  g_autoptr (GInetAddress) address = NULL;
  g_autoptr (GSocketAddress) socket_address = NULL;
  SoupServerListenOptions flags = 0;

  if (!where)
    return FALSE;
  address = g_inet_address_new_from_string (
      g_network_address_get_hostname (G_NETWORK_ADDRESS (where)));
  if (!address)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "--listen %s: give an IP address and a port",
                   options->listen);
      return FALSE;
    }
  if (options->tls_certificate)
    {
      g_autoptr (GTlsCertificate) certificate
          = g_tls_certificate_new_from_files (options->tls_certificate,
                                              options->tls_key, error);

      if (!certificate)
        return FALSE;
      g_object_set (server, "tls-certificate", certificate, NULL);
      flags |= SOUP_SERVER_LISTEN_HTTPS;
    }
  else if (!g_inet_address_get_is_loopback (address) && !options->insecure)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "--listen %s is off loopback: give --tls-certificate and "
                   "--tls-key (or --insecure)",
                   options->listen);
      return FALSE;
    }
  socket_address = g_inet_socket_address_new (
      address, g_network_address_get_port (G_NETWORK_ADDRESS (where)));
  return listen_socket (server, socket_address, flags, error);
}

/* The database, made or upgraded, and filled from the state directory's
 * files: they are the truth, and a lost database comes back from them. */
static VmsDb *
open_database (const Options *options, const char *state_dir, GError **error)
{
  g_autofree char *path
      = options->database ? g_strdup (options->database)
                          : g_build_filename (state_dir, DATABASE_FILE, NULL);
  g_autoptr (VmsDb) db = vms_db_open (path, error);

  if (!db || !vms_db_rebuild (db, state_dir, error))
    return NULL;
  return g_steal_pointer (&db);
}

static gboolean
on_signal (gpointer data)
{
  g_main_loop_quit (data);
  return G_SOURCE_CONTINUE;
}

/* Where it listens, for people and for the tests (port 0 picks one). */
static void
say_listening (SoupServer *server)
{
  g_autoslist (GUri) uris = soup_server_get_uris (server);

  for (GSList *l = uris; l; l = l->next)
    {
      g_autofree char *text = g_uri_to_string (l->data);

      printf ("vmshiftd: listening on %s\n", text);
    }
  fflush (stdout);
}

static int
serve (const Options *options)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *state_dir = g_strdup (options->state_dir);
  g_autofree char *token_file = NULL;
  g_autofree char *token = NULL;
  g_autoptr (SoupServer) server = NULL;
  g_autoptr (VmsDb) db = NULL;
  g_autoptr (VmsApi) api = NULL;
  g_autoptr (VmsWeb) web = NULL;
  g_autoptr (GMainLoop) loop = g_main_loop_new (NULL, FALSE);

  if (!state_dir)
    state_dir = vms_job_default_state_dir ();
  vms_path_make_absolute (&state_dir, vms_path_absolute);
  if (!vms_job_check_state_dir (state_dir, &error))
    {
      fprintf (stderr, "vmshiftd: %s\n", error->message);
      return 1;
    }
  token_file = options->token_file
                   ? g_strdup (options->token_file)
                   : g_build_filename (state_dir, TOKEN_FILE, NULL);
  token = read_token (token_file, &error);
  if (!token)
    {
      fprintf (stderr, "vmshiftd: %s\n", error->message);
      return 1;
    }
  db = open_database (options, state_dir, &error);
  if (!db)
    {
      fprintf (stderr, "vmshiftd: %s\n", error->message);
      return 1;
    }
  server = soup_server_new ("server-header", "vmshiftd/" VMS_VERSION " ", NULL);
  if (!listen_on (server, options, &error))
    {
      fprintf (stderr, "vmshiftd: %s\n", error->message);
      return 2;
    }
  api = vms_api_new (server, state_dir, token, db);
  web = vms_web_new (server);
  g_unix_signal_add (SIGINT, on_signal, loop);
  g_unix_signal_add (SIGTERM, on_signal, loop);
  say_listening (server);
  g_main_loop_run (loop);
  /* Plans that run are stopped: their migrations roll back. */
  soup_server_disconnect (server);
  return 0;
}

int
main (int argc, char **argv)
{
  g_auto (Options) options = { 0 };
  const GOptionEntry entries[]
      = { { "listen", 'l', 0, G_OPTION_ARG_STRING, &options.listen,
            "Listen on ADDRESS:PORT (default " DEFAULT_LISTEN
            "; off loopback only with TLS or --insecure)",
            "ADDRESS:PORT" },
          { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &options.state_dir,
            "The jobs, estimates and plans (default: as vmshift's)", "DIR" },
          { "token-file", 0, 0, G_OPTION_ARG_FILENAME, &options.token_file,
            "The bearer token clients send (default STATE-DIR/" TOKEN_FILE
            ", made if missing)",
            "FILE" },
          { "database", 0, 0, G_OPTION_ARG_FILENAME, &options.database,
            "The state and statistics database, SQLite (default "
            "STATE-DIR/" DATABASE_FILE ", made if missing, rebuilt from the "
            "state directory's files)",
            "FILE" },
          { "tls-certificate", 0, 0, G_OPTION_ARG_FILENAME,
            &options.tls_certificate,
            "Serve HTTPS with this X.509 certificate (PEM)", "FILE" },
          { "tls-key", 0, 0, G_OPTION_ARG_FILENAME, &options.tls_key,
            "... and its private key (PEM)", "FILE" },
          { "insecure", 0, 0, G_OPTION_ARG_NONE, &options.insecure,
            "Serve plain HTTP off loopback", NULL },
          { "version", 'V', 0, G_OPTION_ARG_NONE, &options.version,
            "Print the version and exit", NULL },
          G_OPTION_ENTRY_NULL };
  g_autoptr (GOptionContext) context = g_option_context_new (NULL);
  g_autoptr (GError) error = NULL;

  g_option_context_set_summary (
      context, "vmshift's management server: plans submitted and run over "
               "HTTP (REST under /api/v1), their events streamed, jobs "
               "shown, estimates and migrations' statistics kept.  Every "
               "API request needs the bearer token; the web dashboard at / "
               "asks for it.  See vmshiftd(8).");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error) || argc > 1)
    {
      fprintf (stderr, "vmshiftd: %s (see 'vmshiftd --help')\n",
               error ? error->message : "unexpected arguments");
      return 2;
    }
  if (options.version)
    {
      printf ("vmshiftd %s\n", VMS_VERSION);
      return 0;
    }
  if (!!options.tls_certificate != !!options.tls_key)
    {
      fprintf (stderr, "vmshiftd: --tls-certificate and --tls-key go "
                       "together\n");
      return 2;
    }
  if (!options.listen)
    options.listen = g_strdup (DEFAULT_LISTEN);
  return serve (&options);
}
