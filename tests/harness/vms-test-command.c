/* vmshift test harness: a vmshift command running in the background.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-test-command.h"
#include "vms-test.h"

#include <fcntl.h>
#include <glib/gstdio.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

void
vms_test_command_free (VmsTestCommand *command)
{
  if (command->status < 0 && command->pid > 0)
    {
      kill (command->pid, SIGKILL);
      waitpid (command->pid, NULL, 0);
    }
  if (command->out_fd >= 0)
    close (command->out_fd);
  g_string_free (command->out, TRUE);
  if (command->err_path)
    g_unlink (command->err_path);
  g_free (command->err_path);
  g_free (command);
}

VmsTestCommand *
vms_test_command_start (const char *netns, const char *const *argv,
                        const char *err_dir)
{
  return vms_test_command_start_in (netns, NULL, argv, err_dir);
}

VmsTestCommand *
vms_test_command_start_in (const char *netns, const char *cwd,
                           const char *const *argv, const char *err_dir)
{
  VmsTestCommand *command = g_new0 (VmsTestCommand, 1);
  g_autoptr (GPtrArray) full = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GError) error = NULL;
  g_autofree char *err_name = NULL;
  static gint counter;
  int err_fd;

  if (netns)
    {
      g_ptr_array_add (full, g_strdup ("nsenter"));
      g_ptr_array_add (full, g_strdup_printf ("--net=/run/netns/%s", netns));
      g_ptr_array_add (full, g_strdup ("--"));
    }
  for (guint i = 0; argv[i]; i++)
    g_ptr_array_add (full, g_strdup (argv[i]));
  g_ptr_array_add (full, NULL);

  command->out = g_string_new (NULL);
  command->status = -1;
  err_name = g_strdup_printf ("stderr-%d.txt", g_atomic_int_add (&counter, 1));
  command->err_path = g_build_filename (err_dir, err_name, NULL);
  err_fd = open (command->err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true (err_fd >= 0);
  if (!g_spawn_async_with_pipes_and_fds (
          cwd, (const char *const *)full->pdata, NULL,
          G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_SEARCH_PATH, NULL, NULL, -1, -1,
          err_fd, NULL, NULL, 0, &command->pid, NULL, &command->out_fd, NULL,
          &error))
    fail_msg ("cannot run %s: %s", argv[0], error->message);
  close (err_fd);
  return command;
}

static gboolean
read_some (VmsTestCommand *command, int timeout_ms)
{
  struct pollfd fd = { .fd = command->out_fd, .events = POLLIN };
  char buffer[4096];
  ssize_t n;

  if (poll (&fd, 1, timeout_ms) <= 0 || !(fd.revents & (POLLIN | POLLHUP)))
    return FALSE;
  n = read (command->out_fd, buffer, sizeof buffer);
  if (n <= 0)
    return FALSE;
  g_string_append_len (command->out, buffer, n);
  return TRUE;
}

gboolean
vms_test_command_pump (VmsTestCommand *command, int timeout_ms)
{
  int status;

  read_some (command, timeout_ms);
  if (command->status < 0
      && waitpid (command->pid, &status, WNOHANG) == command->pid)
    command->status = WIFEXITED (status) ? WEXITSTATUS (status) : 128;
  return command->status >= 0;
}

/* cmocka cuts long messages: the end of the output says most. */
static const char *
tail (const GString *text)
{
  return text->len > 1500 ? text->str + text->len - 1500 : text->str;
}

int
vms_test_command_wait (VmsTestCommand *command)
{
  gint64 deadline
      = g_get_monotonic_time () + VMS_TEST_COMMAND_TIMEOUT_MS * (gint64)1000;

  while (!vms_test_command_pump (command, 100))
    if (g_get_monotonic_time () > deadline)
      {
        g_autofree char *err = vms_test_command_stderr (command);

        fail_msg ("the command did not finish within %d ms: %s ... %s",
                  VMS_TEST_COMMAND_TIMEOUT_MS, err, tail (command->out));
      }
  /* What it wrote just before exiting. */
  while (read_some (command, 0))
    ;
  return command->status;
}

void
vms_test_command_wait_for (VmsTestCommand *command, const char *needle,
                           int timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + timeout_ms * (gint64)1000;

  while (!strstr (command->out->str, needle))
    {
      if (vms_test_command_pump (command, 50)
          && !strstr (command->out->str, needle))
        {
          vms_test_command_wait (command);
          if (strstr (command->out->str, needle))
            return;
          {
            g_autofree char *err = vms_test_command_stderr (command);

            fail_msg ("the command exited %d before printing %s: %s ... %s",
                      command->status, needle, err, tail (command->out));
          }
        }
      if (g_get_monotonic_time () > deadline)
        fail_msg ("no %s within %d ms: ... %s", needle, timeout_ms,
                  tail (command->out));
    }
}

char *
vms_test_command_stderr (VmsTestCommand *command)
{
  char *text = NULL;

  g_file_get_contents (command->err_path, &text, NULL, NULL);
  return text ? text : g_strdup ("");
}

void
vms_test_command_expect_success (VmsTestCommand *command)
{
  int status = vms_test_command_wait (command);

  if (status != 0)
    {
      g_autofree char *err = vms_test_command_stderr (command);

      fail_msg ("the command exited %d: %s%s", status, err, command->out->str);
    }
}

/* Call func for every JSON event line until it returns FALSE. */
static void
for_each_event (VmsTestCommand *command,
                gboolean (*func) (JsonObject *event, JsonParser *parser,
                                  gpointer data),
                gpointer data)
{
  g_auto (GStrv) lines = g_strsplit (command->out->str, "\n", -1);

  for (guint i = 0; lines[i]; i++)
    {
      g_autoptr (JsonParser) parser = json_parser_new ();
      JsonNode *root;

      if (!*lines[i]
          || !json_parser_load_from_data (parser, lines[i], -1, NULL))
        continue;
      root = json_parser_get_root (parser);
      if (root && JSON_NODE_HOLDS_OBJECT (root)
          && !func (json_node_get_object (root), parser, data))
        return;
    }
}

typedef struct
{
  const char *disk;
  const char *phase;
  guint64 best;
} ProgressQuery;

static gboolean
take_progress (JsonObject *event, JsonParser *parser, gpointer data)
{
  ProgressQuery *query = data;

  if (g_strcmp0 (
          json_object_get_string_member_with_default (event, "event", ""),
          "progress")
          == 0
      && g_strcmp0 (
             json_object_get_string_member_with_default (event, "disk", ""),
             query->disk)
             == 0
      && g_strcmp0 (
             json_object_get_string_member_with_default (event, "phase", ""),
             query->phase)
             == 0)
    query->best = MAX (query->best,
                       (guint64)json_object_get_int_member (event, "done"));
  return TRUE;
}

guint64
vms_test_command_last_progress (VmsTestCommand *command, const char *disk,
                                const char *phase)
{
  ProgressQuery query = { disk, phase, 0 };

  for_each_event (command, take_progress, &query);
  return query.best;
}

/* The last event in command's output named event and, unless disk is
 * NULL, about disk (its member "disk"), borrowed from parser; or NULL. */
static JsonObject *
scan_last (VmsTestCommand *command, const char *event, const char *disk,
           JsonParser *parser)
{
  g_auto (GStrv) lines = g_strsplit (command->out->str, "\n", -1);
  guint n = g_strv_length (lines);

  for (guint i = n; i-- > 0;)
    {
      JsonNode *root;
      JsonObject *object;

      if (!*lines[i]
          || !json_parser_load_from_data (parser, lines[i], -1, NULL))
        continue;
      root = json_parser_get_root (parser);
      if (!root || !JSON_NODE_HOLDS_OBJECT (root))
        continue;
      object = json_node_get_object (root);
      if (g_strcmp0 (
              json_object_get_string_member_with_default (object, "event", ""),
              event)
              == 0
          && (!disk
              || g_strcmp0 (json_object_get_string_member_with_default (
                                object, "disk", ""),
                            disk)
                     == 0))
        return object;
    }
  return NULL;
}

JsonObject *
vms_test_command_find_event (VmsTestCommand *command, const char *event,
                             JsonParser *parser)
{
  return scan_last (command, event, NULL, parser);
}

JsonObject *
vms_test_command_last_event (VmsTestCommand *command, const char *event,
                             const char *disk)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonObject *object = scan_last (command, event, disk, parser);

  /* The object outlives its parser by its own reference. */
  return object ? json_object_ref (object) : NULL;
}

gint64
vms_test_command_event_int (VmsTestCommand *command, const char *event,
                            const char *disk, const char *member)
{
  g_autoptr (JsonObject) object
      = vms_test_command_last_event (command, event, disk);

  if (!object || !json_object_has_member (object, member))
    fail_msg ("no %s in a '%s' event%s%s: %s", member, event,
              disk ? " about " : "", disk ? disk : "", command->out->str);
  return json_object_get_int_member (object, member);
}

void
vms_test_assert_identical (const char *source, const char *format,
                           const char *replica)
{
  const char *argv[] = { "qemu-img", "compare", "-U",   "-f",    format,
                         "-F",       "raw",     source, replica, NULL };
  g_autoptr (GError) error = NULL;
  g_autofree char *out = NULL;

  if (!vms_test_run (argv, &out, &error))
    fail_msg ("%s and %s differ: %s %s", source, replica, error->message,
              out ? out : "");
}
