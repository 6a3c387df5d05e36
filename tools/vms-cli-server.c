/* vmshift --server: commands sent to vmshiftd.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-cli-server.h"
#include "vms-cli.h"
#include "vms-progress.h"
#include "vms-server.h"

GOptionEntry *
vms_cli_server_option_entries (VmsCliServerOptions *options)
{
  const GOptionEntry entries[]
      = { { "server", 0, 0, G_OPTION_ARG_STRING, &options->url,
            "Send the command to the vmshiftd at URL instead of running it "
            "here",
            "URL" },
          { "token-file", 0, 0, G_OPTION_ARG_FILENAME, &options->token_file,
            "With --server: vmshiftd's bearer token (default $VMSHIFT_TOKEN, "
            "else the local vmshiftd's STATE-DIR/vmshiftd.token)",
            "FILE" },
          { "server-ca", 0, 0, G_OPTION_ARG_FILENAME, &options->ca_file,
            "With --server https://...: the CA its certificate is checked "
            "against (default: the system's)",
            "FILE" },
          G_OPTION_ENTRY_NULL };

  return g_memdup2 (entries, sizeof entries);
}

void
vms_cli_server_options_clear (VmsCliServerOptions *options)
{
  g_clear_pointer (&options->url, g_free);
  g_clear_pointer (&options->token_file, g_free);
  g_clear_pointer (&options->ca_file, g_free);
}

static int
exit_code (const GError *error)
{
  if (g_error_matches (error, VMS_SERVER_ERROR, VMS_SERVER_ERROR_INVALID))
    return VMS_EXIT_USAGE;
  if (g_error_matches (error, VMS_SERVER_ERROR, VMS_SERVER_ERROR_REFUSED))
    return VMS_EXIT_FAILED;
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return VMS_EXIT_STOPPED;
  return VMS_EXIT_CONNECT;
}

static VmsServer *
connect_to (const VmsCliServerOptions *options, const char *command,
            int *status)
{
  g_autoptr (GError) error = NULL;
  VmsServer *server = vms_server_new (options->url, options->token_file,
                                      options->ca_file, &error);

  if (!server)
    {
      vms_cli_error (command, "%s", error->message);
      *status = VMS_EXIT_USAGE;
    }
  return server;
}

/* The run started by a request, to its end. */
static int
follow (GInputStream *events, JsonObject *started, const char *command,
        const char *what, gboolean json)
{
  g_autoptr (VmsProgress) progress
      = vms_progress_new (json ? VMS_PROGRESS_JSON : VMS_PROGRESS_TEXT);
  g_autoptr (GError) error = NULL;
  /* A plan's run, or an estimate's. */
  gboolean estimate = json_object_has_member (started, "estimate");
  const char *tag = estimate ? "estimate-id" : "plan";
  const char *name = json_object_get_string_member_with_default (
      started, estimate ? "estimate" : "plan", NULL);
  gint64 event_id
      = json_object_get_int_member_with_default (started, "event-id", -1);
  gboolean ok;

  if (!name || event_id < 0)
    {
      vms_cli_error (command, "vmshiftd's answer has no %s and event-id", tag);
      return VMS_EXIT_CONNECT;
    }
  if (!vms_server_follow (
          events, tag, name, estimate ? "estimate-run-ended" : "plan-run-ended",
          event_id, progress, &ok, vms_cli_cancel_on_signals (), &error))
    {
      vms_cli_error (command, "%s; %s goes on in vmshiftd", error->message,
                     what);
      return exit_code (error);
    }
  /* An abort's run ends with its migrations stopped: that is its
   * success, which the caller checks in the state it left. */
  if (json_object_has_member (started, "aborting"))
    return VMS_EXIT_OK;
  if (!ok)
    vms_cli_error (command, "%s did not end well in vmshiftd (see above)",
                   what);
  return ok ? VMS_EXIT_OK : VMS_EXIT_FAILED;
}

int
vms_cli_server_start (const VmsCliServerOptions *options, const char *command,
                      const char *what, const char *method, const char *path,
                      const char *content_type, const char *body, gboolean json)
{
  int status = VMS_EXIT_OK;
  g_autoptr (VmsServer) server = connect_to (options, command, &status);
  g_autoptr (GError) error = NULL;
  g_autoptr (GInputStream) events = NULL;
  g_autoptr (JsonObject) started = NULL;

  if (!server)
    return status;
  /* Opened first: the run's first events come before the answer. */
  events = vms_server_open_events (server, NULL, &error);
  if (events)
    started
        = vms_server_request (server, method, path, content_type, body, &error);
  if (!started)
    {
      vms_cli_error (command, "%s", error->message);
      return exit_code (error);
    }
  return follow (events, started, command, what, json);
}

JsonObject *
vms_cli_server_call (const VmsCliServerOptions *options, const char *command,
                     const char *method, const char *path,
                     const char *content_type, const char *body, int *status)
{
  g_autoptr (VmsServer) server = connect_to (options, command, status);
  g_autoptr (GError) error = NULL;
  JsonObject *object;

  if (!server)
    return NULL;
  object
      = vms_server_request (server, method, path, content_type, body, &error);
  if (!object)
    {
      vms_cli_error (command, "%s", error->message);
      *status = exit_code (error);
    }
  return object;
}
