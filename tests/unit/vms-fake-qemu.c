/* Unit test helper: a scripted QEMU monitor on a socketpair.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-fake-qemu.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define GREETING                                                               \
  "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, "           \
  "\"major\": 7}, \"package\": \"fake\"}, \"capabilities\": []}}\r\n"

/* Long enough for a loaded machine, short enough to notice a hang. */
#define FAKE_IO_TIMEOUT_S 10

struct _VmsFakeQemu
{
  int fd;                          /* the fake's end of the socketpair */
  const VmsFakeStep *steps;        /* the script */
  GMutex lock;                     /* guards sending and waiting_step */
  const VmsFakeStep *waiting_step; /* step whose delayed events are due */
  GString *report;                 /* what went against the script */
  GThread *thread;                 /* runs the script */
  GThread *delayed;                /* sends a step's delayed events, or NULL */
};

static void
send_locked (VmsFakeQemu *fake, const char *lines)
{
  gsize length = strlen (lines);

  while (length > 0)
    {
      ssize_t n = send (fake->fd, lines, length, MSG_NOSIGNAL);

      if (n <= 0)
        return; /* the client hung up; the test checks the client side */
      lines += n;
      length -= n;
    }
}

void
vms_fake_qemu_send (VmsFakeQemu *fake, const char *lines)
{
  g_autoptr (GMutexLocker) locker = g_mutex_locker_new (&fake->lock);

  send_locked (fake, lines);
}

static gpointer
send_delayed (gpointer data)
{
  VmsFakeQemu *fake = data;
  const VmsFakeStep *step = fake->waiting_step;
  g_autoptr (GMutexLocker) locker = NULL;

  g_usleep (step->delay_ms * 1000);
  /* Under the lock: a command the client sends on these events is checked
   * only once waiting_step is cleared. */
  locker = g_mutex_locker_new (&fake->lock);
  fake->waiting_step = NULL;
  send_locked (fake, step->after ? step->after : "");
  return NULL;
}

static void
join_delayed (VmsFakeQemu *fake)
{
  if (fake->delayed)
    g_thread_join (g_steal_pointer (&fake->delayed));
}

/* A command that came while the client should have been waiting for
 * delayed events: report it.  TRUE if so. */
static gboolean
came_too_early (VmsFakeQemu *fake, const char *command)
{
  g_autoptr (GMutexLocker) locker = g_mutex_locker_new (&fake->lock);

  if (!fake->waiting_step)
    return FALSE;
  g_string_append_printf (fake->report,
                          "got %s %u ms after %s, before the events "
                          "(polling?); ",
                          command, fake->waiting_step->delay_ms,
                          fake->waiting_step->command);
  return TRUE;
}

/* The next command's name and id (caller frees both), or FALSE on EOF. */
static gboolean
read_command (int fd, char **command, char **id)
{
  g_autoptr (GString) line = g_string_new (NULL);
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonObject *object;
  char c;

  while (recv (fd, &c, 1, 0) == 1 && c != '\n')
    g_string_append_c (line, c);
  if (line->len == 0
      || !json_parser_load_from_data (parser, line->str, line->len, NULL))
    return FALSE;
  object = json_node_get_object (json_parser_get_root (parser));
  *command = g_strdup (
      json_object_get_string_member_with_default (object, "execute", ""));
  *id = g_strdup (
      json_object_get_string_member_with_default (object, "id", ""));
  return TRUE;
}

static void
reply (VmsFakeQemu *fake, const char *id, const char *value, const char *error)
{
  g_autofree char *text
      = value ? g_strdup_printf ("{\"return\": %s, \"id\": \"%s\"}\r\n", value,
                                 id)
              : g_strdup_printf ("{\"error\": {\"class\": \"GenericError\", "
                                 "\"desc\": \"%s\"}, \"id\": \"%s\"}\r\n",
                                 error, id);

  vms_fake_qemu_send (fake, text);
}

/* Play one step; FALSE when the script ends with a hang-up. */
static gboolean
play_step (VmsFakeQemu *fake, const VmsFakeStep *step, const char *id)
{
  if (step->before)
    vms_fake_qemu_send (fake, step->before);
  reply (fake, id, step->reply, step->error ? step->error : "refused");
  join_delayed (fake);
  if (step->delay_ms)
    {
      fake->waiting_step = step;
      fake->delayed = g_thread_new ("fake-qemu-delay", send_delayed, fake);
    }
  else if (step->after)
    vms_fake_qemu_send (fake, step->after);
  if (!step->hang_up)
    return TRUE;
  join_delayed (fake);
  shutdown (fake->fd, SHUT_RDWR);
  return FALSE;
}

static gpointer
run_script (gpointer data)
{
  VmsFakeQemu *fake = data;
  const VmsFakeStep *step = fake->steps;
  g_autofree char *command = NULL, *id = NULL;

  vms_fake_qemu_send (fake, GREETING);
  if (read_command (fake->fd, &command, &id))
    reply (fake, id, "{}", NULL);
  for (;;)
    {
      g_clear_pointer (&command, g_free);
      g_clear_pointer (&id, g_free);
      if (!read_command (fake->fd, &command, &id))
        break;
      if (came_too_early (fake, command))
        {
          reply (fake, id, NULL, "too early");
          continue;
        }
      if (step->command && g_str_equal (command, step->command))
        {
          if (!play_step (fake, step++, id))
            break;
          continue;
        }
      g_string_append_printf (fake->report, "got %s, expected %s; ", command,
                              step->command ? step->command : "nothing");
      reply (fake, id, NULL, "not in the script");
    }
  if (step->command)
    g_string_append_printf (fake->report, "%s never came; ", step->command);
  return NULL;
}

VmsFakeQemu *
vms_fake_qemu_start (const VmsFakeStep *steps, VmsQmp **qmp_out)
{
  VmsFakeQemu *fake = g_new0 (VmsFakeQemu, 1);
  struct timeval timeout = { .tv_sec = FAKE_IO_TIMEOUT_S };
  g_autoptr (GError) error = NULL;
  int fds[2];

  g_assert (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
  setsockopt (fds[1], SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  fake->fd = fds[1];
  fake->steps = steps;
  fake->report = g_string_new (NULL);
  g_mutex_init (&fake->lock);
  fake->thread = g_thread_new ("fake-qemu", run_script, fake);
  *qmp_out = vms_qmp_new_for_fd_named (fds[0], "fake QEMU", 5000, &error);
  g_assert_no_error (error);
  return fake;
}

char *
vms_fake_qemu_finish (VmsFakeQemu *fake)
{
  char *report;

  g_thread_join (fake->thread);
  join_delayed (fake);
  close (fake->fd);
  g_mutex_clear (&fake->lock);
  report = fake->report->len ? g_string_free (fake->report, FALSE)
                             : (g_string_free (fake->report, TRUE), NULL);
  g_free (fake);
  return report;
}
