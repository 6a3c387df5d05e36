/* vmshift: the --server options the subcommands share, and what a
 * command sent to vmshiftd does from the command line: it starts, is
 * followed on the event stream, shown as a local run is shown, and its
 * outcome is the exit code.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef struct
{
  char *url;        /* --server */
  char *token_file; /* --token-file */
  char *ca_file;    /* --server-ca */
} VmsCliServerOptions;

/* Their GOptionEntry list, ending with G_OPTION_ENTRY_NULL (g_free
 * it). */
GOptionEntry *vms_cli_server_option_entries (VmsCliServerOptions *options);
void vms_cli_server_options_clear (VmsCliServerOptions *options);

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (VmsCliServerOptions,
                                  vms_cli_server_options_clear)

/* method on path (body of content_type, or NULL) starts a run in
 * vmshiftd; it is followed to its end, shown as text or JSON events.
 * what: the job or plan, for messages.  An exit code: 0 when the run
 * ended well (an abort's: when it ended; the caller looks at what it
 * left), 1 when it did not, 2 when refused as wrong, 3 when
 * vmshiftd could not be reached or went, 4 on Ctrl-C (the run goes on
 * in vmshiftd). */
int vms_cli_server_start (const VmsCliServerOptions *options,
                          const char *command, const char *what,
                          const char *method, const char *path,
                          const char *content_type, const char *body,
                          gboolean json);

/* method on path (body of content_type, or NULL): the JSON object
 * answered, or NULL after saying why (*status: the exit code). */
JsonObject *vms_cli_server_call (const VmsCliServerOptions *options,
                                 const char *command, const char *method,
                                 const char *path, const char *content_type,
                                 const char *body, int *status);

G_END_DECLS
