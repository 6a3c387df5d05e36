/* vmshift qmp: run one QMP command and print the reply.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-cli.h"
#include "vms-option.h"
#include "vms-qmp.h"

#include <stdio.h>

static const char *const description
    = "SOCKET is qmp:PATH, unix:PATH, tcp:HOST:PORT or a socket path.\n"
      "JSON-ARGS is the command's \"arguments\" object, e.g.\n"
      "  vmshift qmp /run/vm.qmp query-block\n"
      "  vmshift qmp /run/vm.qmp block-dirty-bitmap-add "
      "'{\"node\":\"d0\",\"name\":\"b0\"}'\n"
      "  vmshift qmp --hmp /run/vm.qmp 'info block'\n"
      "\n"
      "The reply's \"return\" value is printed as JSON on stdout.  A QMP error "
      "is\nprinted as CLASS: DESCRIPTION on stderr and exits 1; connection "
      "failures\nand timeouts exit 3; usage errors exit 2.\n";

typedef struct
{
  char *timeout;    /* --timeout as typed */
  gboolean pretty;  /* indent the printed JSON */
  gboolean raw;     /* print a string result without JSON quoting */
  gboolean hmp;     /* COMMAND is an HMP command line */
  char *wait_event; /* event to wait for after the command, or NULL */
} QmpOptions;

static void
print_node (JsonNode *node, const QmpOptions *options)
{
  g_autoptr (JsonGenerator) generator = NULL;
  g_autofree char *text = NULL;

  if ((options->raw || options->hmp) && JSON_NODE_HOLDS_VALUE (node)
      && json_node_get_value_type (node) == G_TYPE_STRING)
    {
      fputs (json_node_get_string (node), stdout);
      return;
    }
  generator = json_generator_new ();
  json_generator_set_pretty (generator, options->pretty);
  json_generator_set_root (generator, node);
  text = json_generator_to_data (generator, NULL);
  printf ("%s\n", text);
}

static void
print_event (const char *name, JsonObject *data, gint64 timestamp_us,
             const QmpOptions *options)
{
  g_autoptr (JsonObject) event = json_object_new ();
  g_autoptr (JsonNode) node = json_node_new (JSON_NODE_OBJECT);

  json_object_set_string_member (event, "event", name);
  if (data)
    json_object_set_object_member (event, "data", json_object_ref (data));
  if (timestamp_us >= 0)
    json_object_set_int_member (event, "timestamp-us", timestamp_us);
  json_node_set_object (node, event);
  print_node (node, options);
}

static int
report (const GError *error)
{
  const char *class_name = vms_qmp_error_class_name (error->code);

  if (error->domain == VMS_QMP_ERROR && class_name)
    vms_cli_error ("qmp", "%s: %s", class_name, error->message);
  else
    vms_cli_error ("qmp", "%s", error->message);
  return vms_cli_exit_code (error);
}

int
vms_cmd_qmp (int argc, char **argv)
{
  QmpOptions options = { 0 };
  const GOptionEntry entries[]
      = { { "timeout", 't', 0, G_OPTION_ARG_STRING, &options.timeout,
            "Seconds to wait for QEMU, 0.001..86400 (default 30)", "SECONDS" },
          { "pretty", 'p', 0, G_OPTION_ARG_NONE, &options.pretty,
            "Indent the JSON output", NULL },
          { "raw", 'r', 0, G_OPTION_ARG_NONE, &options.raw,
            "Print a string result as plain text", NULL },
          { "hmp", 0, 0, G_OPTION_ARG_NONE, &options.hmp,
            "COMMAND is a human monitor command line; print its output", NULL },
          { "wait-event", 'w', 0, G_OPTION_ARG_STRING, &options.wait_event,
            "After the command, wait for EVENT and print it as JSON", "EVENT" },
          G_OPTION_ENTRY_NULL };
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsQmp) qmp = NULL;
  g_autoptr (JsonNode) result = NULL;
  g_autoptr (JsonObject) event_data = NULL;
  g_autoptr (JsonObject) arguments = NULL;
  g_autofree char *event_name = NULL;
  g_autofree char *wait_event = NULL;
  g_autofree char *timeout = NULL;
  double timeout_seconds = VMS_QMP_DEFAULT_TIMEOUT_MS / 1000.0;
  gint64 timestamp_us;
  guint timeout_ms;

  context = g_option_context_new ("SOCKET COMMAND [JSON-ARGS]");
  g_option_context_set_summary (context,
                                "Run one QMP command on a QEMU monitor and "
                                "print the reply.");
  g_option_context_set_description (context, description);
  g_option_context_add_main_entries (context, entries, NULL);
  g_set_prgname ("vmshift qmp");
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      vms_cli_error ("qmp", "%s", error->message);
      return VMS_EXIT_USAGE;
    }
  wait_event = options.wait_event;
  timeout = options.timeout;
  if (argc < 3 || argc > 4 || (options.hmp && argc != 3))
    {
      vms_cli_error ("qmp",
                     "expected SOCKET COMMAND [JSON-ARGS]%s (see "
                     "'vmshift qmp --help')",
                     options.hmp ? " and no JSON-ARGS with --hmp" : "");
      return VMS_EXIT_USAGE;
    }
  /* QMP waits are in whole milliseconds. */
  if (!vms_option_decimal ("--timeout", timeout, "a number of seconds", 0.001,
                           86400, &timeout_seconds, &error))
    {
      vms_cli_error ("qmp", "%s", error->message);
      return VMS_EXIT_USAGE;
    }
  timeout_ms = (guint)(timeout_seconds * 1000 + 0.5);

  /* A typo in the arguments is reported before QEMU is touched. */
  if (argc == 4 && *argv[3])
    {
      arguments = vms_qmp_parse_arguments (argv[2], argv[3], &error);
      if (!arguments)
        return report (error);
    }

  qmp = vms_qmp_connect (argv[1], timeout_ms, &error);
  if (!qmp)
    return report (error);

  if (options.hmp)
    {
      arguments = json_object_new ();
      json_object_set_string_member (arguments, "command-line", argv[2]);
      result
          = vms_qmp_execute (qmp, "human-monitor-command", arguments, &error);
    }
  else
    result = vms_qmp_execute (qmp, argv[2], arguments, &error);
  if (!result)
    return report (error);
  print_node (result, &options);

  if (wait_event)
    {
      if (!vms_qmp_wait_event (qmp, wait_event, timeout_ms, &event_data,
                               &event_name, &timestamp_us, &error))
        return report (error);
      print_event (event_name, event_data, timestamp_us, &options);
    }
  fflush (stdout);
  return ferror (stdout) ? VMS_EXIT_FAILED : VMS_EXIT_OK;
}
