/* vmshift qemu-filter (internal): waiting on QEMU's events.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-qemu-event.h"
#include "vms-json.h"

typedef struct
{
  char *name;       /* event name */
  JsonObject *data; /* event data or NULL */
} KeptEvent;

struct _VmsEventWatch
{
  VmsQmp *qmp;     /* the client watched (not owned) */
  GArray *ids;     /* guint subscription ids, one per event name */
  char *object_id; /* keep only events about this object, or NULL */
  GQueue kept;     /* KeptEvent*, oldest first */
};

static void
kept_event_free (gpointer data)
{
  KeptEvent *kept = data;

  g_free (kept->name);
  if (kept->data)
    json_object_unref (kept->data);
  g_free (kept);
}

const char *
vms_event_string (JsonObject *data, const char *member)
{
  return vms_json_string_member (data, member);
}

static gboolean
is_about (JsonObject *data, const char *object_id)
{
  return g_strcmp0 (vms_event_string (data, "device"), object_id) == 0
         || g_strcmp0 (vms_event_string (data, "id"), object_id) == 0;
}

static void
keep_event (VmsQmp *qmp, const char *event, JsonObject *data,
            gint64 timestamp_us, gpointer user_data)
{
  VmsEventWatch *watch = user_data;
  KeptEvent *kept;

  if (watch->object_id && !is_about (data, watch->object_id))
    return;
  kept = g_new0 (KeptEvent, 1);
  kept->name = g_strdup (event);
  kept->data = data ? json_object_ref (data) : NULL;
  g_queue_push_tail (&watch->kept, kept);
}

VmsEventWatch *
vms_event_watch_new (VmsQmp *qmp, const char *const *names,
                     const char *object_id)
{
  VmsEventWatch *watch = g_new0 (VmsEventWatch, 1);

  watch->qmp = qmp;
  watch->ids = g_array_new (FALSE, FALSE, sizeof (guint));
  watch->object_id = g_strdup (object_id);
  g_queue_init (&watch->kept);
  for (guint i = 0; names[i]; i++)
    {
      guint id = vms_qmp_subscribe (qmp, names[i], keep_event, watch, NULL);

      g_array_append_val (watch->ids, id);
    }
  return watch;
}

void
vms_event_watch_free (VmsEventWatch *watch)
{
  if (!watch)
    return;
  for (guint i = 0; i < watch->ids->len; i++)
    vms_qmp_unsubscribe (watch->qmp, g_array_index (watch->ids, guint, i));
  g_array_unref (watch->ids);
  g_queue_clear_full (&watch->kept, kept_event_free);
  g_free (watch->object_id);
  g_free (watch);
}

gint64
vms_event_deadline (guint timeout_ms)
{
  return g_get_monotonic_time () + (gint64)timeout_ms * 1000;
}

/* Sleep until QEMU sends something or the deadline passes.  The client's
 * own waits take one event name at a time and take it from the queue; this
 * one only watches the socket and leaves reading to vms_qmp_poll(). */
static void
wait_readable (VmsQmp *qmp, gint64 deadline_us)
{
  gint64 remaining_ms = (deadline_us - g_get_monotonic_time () + 999) / 1000;
  GPollFD fd
      = { .fd = vms_qmp_get_fd (qmp), .events = G_IO_IN | G_IO_HUP | G_IO_ERR };

  if (remaining_ms > 0)
    g_poll (&fd, 1, (int)MIN (remaining_ms, G_MAXINT));
}

gboolean
vms_event_watch_next (VmsEventWatch *watch, gint64 deadline_us, char **name_out,
                      JsonObject **data_out, GError **error)
{
  KeptEvent *kept;

  while (!(kept = g_queue_pop_head (&watch->kept)))
    {
      if (!vms_qmp_poll (watch->qmp, error))
        return FALSE;
      if (!g_queue_is_empty (&watch->kept))
        continue;
      if (g_get_monotonic_time () >= deadline_us)
        {
          g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_TIMEOUT,
                       "no awaited event from QEMU%s%s in time",
                       watch->object_id ? " about " : "",
                       watch->object_id ? watch->object_id : "");
          return FALSE;
        }
      wait_readable (watch->qmp, deadline_us);
    }
  if (name_out)
    *name_out = g_steal_pointer (&kept->name);
  if (data_out)
    *data_out = g_steal_pointer (&kept->data);
  kept_event_free (kept);
  return TRUE;
}

gboolean
vms_event_wait_disconnect (VmsQmp *qmp, gint64 deadline_us, GError **error)
{
  for (;;)
    {
      g_autoptr (GError) poll_error = NULL;

      if (!vms_qmp_poll (qmp, &poll_error))
        {
          if (g_error_matches (poll_error, VMS_QMP_ERROR,
                               VMS_QMP_ERROR_DISCONNECTED))
            return TRUE;
          g_propagate_error (error, g_steal_pointer (&poll_error));
          return FALSE;
        }
      if (g_get_monotonic_time () >= deadline_us)
        {
          g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_TIMEOUT,
                       "QEMU kept the connection open");
          return FALSE;
        }
      wait_readable (qmp, deadline_us);
    }
}
