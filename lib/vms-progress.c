/* vmshift: progress for people and for programs.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-progress.h"
#include "vms-eta.h"

#include <unistd.h>

/* Text mode prints a line this often at most. */
#define TEXT_INTERVAL_US (5 * G_USEC_PER_SEC)
/* Width of the bar in characters. */
#define BAR_WIDTH 30

struct _VmsProgress
{
  VmsProgressMode mode;   /* how to show it */
  gboolean bar_drawn;     /* a bar line is on screen, unterminated */
  char *key;              /* disk/phase of the last update */
  gboolean finished;      /* the pass of key was shown complete */
  VmsEta eta;             /* rate and ETA of the pass of key */
  gint64 last_text_us;    /* time of the last text line */
  gboolean has_after;     /* after_pass holds an estimate */
  guint64 after_pass;     /* bytes the job sends after this pass */
  VmsProgressFunc func;   /* callback mode: where everything goes */
  gpointer user_data;     /* for func */
};

VmsProgress *
vms_progress_new (VmsProgressMode mode)
{
  VmsProgress *progress = g_new0 (VmsProgress, 1);

  if (mode == VMS_PROGRESS_TEXT && isatty (STDERR_FILENO))
    mode = VMS_PROGRESS_BAR;
  progress->mode = mode;
  return progress;
}

VmsProgress *
vms_progress_new_callback (VmsProgressFunc func, gpointer user_data)
{
  VmsProgress *progress = g_new0 (VmsProgress, 1);

  progress->mode = VMS_PROGRESS_CALLBACK;
  progress->func = func;
  progress->user_data = user_data;
  return progress;
}

void
vms_progress_forward (VmsProgress *progress, const char *event,
                      JsonObject *fields, const char *text)
{
  if (g_str_equal (event, "progress") && !text && fields)
    {
      if (json_object_has_member (fields, "after"))
        vms_progress_set_after_pass (
            progress, json_object_get_int_member (fields, "after"));
      vms_progress_update (
          progress, json_object_get_string_member_with_default (fields, "disk", ""),
          json_object_get_string_member_with_default (fields, "phase", ""),
          json_object_get_int_member_with_default (fields, "done", 0),
          json_object_get_int_member_with_default (fields, "total", 0),
          json_object_get_int_member_with_default (fields, "sent", 0));
      return;
    }
  vms_progress_event (progress, event, fields ? json_object_ref (fields) : NULL,
                      "%s", text ? text : "");
}

void
vms_progress_set_after_pass (VmsProgress *progress, gint64 bytes)
{
  progress->has_after = bytes >= 0;
  progress->after_pass = MAX (bytes, 0);
}

static void
update_callback (VmsProgress *progress, const char *disk, const char *phase,
                 guint64 done, guint64 total, guint64 sent)
{
  g_autoptr (JsonObject) fields = json_object_new ();

  json_object_set_string_member (fields, "disk", disk);
  json_object_set_string_member (fields, "phase", phase);
  json_object_set_int_member (fields, "done", done);
  json_object_set_int_member (fields, "total", total);
  json_object_set_int_member (fields, "sent", sent);
  if (progress->has_after)
    json_object_set_int_member (fields, "after", progress->after_pass);
  progress->func ("progress", fields, NULL, progress->user_data);
}

static void
end_bar (VmsProgress *progress)
{
  if (progress->bar_drawn)
    {
      fputc ('\n', stderr);
      progress->bar_drawn = FALSE;
    }
}

void
vms_progress_free (VmsProgress *progress)
{
  if (!progress)
    return;
  end_bar (progress);
  g_free (progress->key);
  g_free (progress);
}

char *
vms_format_size_full (guint64 bytes, GFormatSizeFlags flags)
{
  g_autofree char *formatted = g_format_size_full (bytes, flags);
  GString *text = g_string_new (formatted);

  /* GLib puts a no-break space before the unit, which a C-locale terminal
   * shows as '?' and which throws table columns out. */
  g_string_replace (text, "\u00a0", " ", 0);
  return g_string_free (text, FALSE);
}

char *
vms_format_size (guint64 bytes)
{
  /* Binary units, as the options take them: "--max-bandwidth 4M" is
   * shown back as 4.0 MiB/s, not 4.2 MB/s. */
  return vms_format_size_full (bytes, G_FORMAT_SIZE_IEC_UNITS);
}

double
vms_progress_rate (VmsProgress *progress)
{
  return vms_eta_rate (&progress->eta);
}

static void
print_json (JsonObject *object)
{
  g_autoptr (JsonNode) node = json_node_new (JSON_NODE_OBJECT);
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autofree char *text = NULL;

  json_node_set_object (node, object);
  json_generator_set_root (generator, node);
  text = json_generator_to_data (generator, NULL);
  printf ("%s\n", text);
  fflush (stdout);
}

static char *
format_eta (double seconds)
{
  guint64 s = seconds;

  if (seconds < 0 || seconds > 100 * 3600)
    return g_strdup ("--:--");
  if (s >= 3600)
    return g_strdup_printf ("%" G_GUINT64_FORMAT ":%02u:%02u", s / 3600,
                            (guint) (s / 60 % 60), (guint) (s % 60));
  return g_strdup_printf ("%u:%02u", (guint) (s / 60), (guint) (s % 60));
}

/* The line people read about a pass; NULL when there is nothing new to
 * say. */
static char *
describe_pass (VmsProgress *progress, const char *disk, const char *phase,
               guint64 done, guint64 total, double eta, double overall)
{
  g_autofree char *done_text = vms_format_size (done);
  g_autofree char *total_text = vms_format_size (total);
  g_autofree char *rate_text
      = vms_format_size ((guint64)vms_eta_rate (&progress->eta));
  g_autofree char *eta_text = format_eta (eta);
  g_autofree char *overall_text = overall >= 0 ? format_eta (overall) : NULL;

  if (total == 0)
    return g_strdup_printf ("%s %s: nothing to copy", disk, phase);
  return g_strdup_printf ("%s %s: %3.0f%% %s of %s, %s/s, ETA %s%s%s", disk,
                          phase, 100.0 * done / total, done_text, total_text,
                          rate_text, eta_text, overall_text ? ", all " : "",
                          overall_text ? overall_text : "");
}

static void
print_progress_json (VmsProgress *progress, const char *disk, const char *phase,
                     guint64 done, guint64 total, guint64 sent, double eta,
                     double overall, const char *text)
{
  g_autoptr (JsonObject) object = json_object_new ();

  json_object_set_string_member (object, "event", "progress");
  json_object_set_string_member (object, "disk", disk);
  json_object_set_string_member (object, "phase", phase);
  json_object_set_int_member (object, "done", done);
  json_object_set_int_member (object, "total", total);
  json_object_set_int_member (object, "sent", sent);
  json_object_set_int_member (object, "rate",
                              (gint64)vms_eta_rate (&progress->eta));
  json_object_set_int_member (object, "eta", eta < 0 ? -1 : (gint64)eta);
  if (progress->has_after)
    json_object_set_int_member (object, "overall-eta",
                                overall < 0 ? -1 : (gint64)overall);
  json_object_set_string_member (object, "message", text);
  print_json (object);
}

static void
draw_bar (VmsProgress *progress, const char *disk, const char *phase,
          guint64 done, guint64 total, const char *text)
{
  double fraction = total ? (double)done / total : 1;
  guint filled = CLAMP (fraction * BAR_WIDTH, 0, BAR_WIDTH);
  const char *figures = strchr (text, ':');
  char bar[BAR_WIDTH + 1];

  memset (bar, '#', filled);
  memset (bar + filled, '.', BAR_WIDTH - filled);
  bar[BAR_WIDTH] = 0;
  g_printerr ("\r%s %-10s [%s]%s\033[K", disk, phase, bar,
              figures ? figures + 1 : "");
  progress->bar_drawn = TRUE;
}

/* A new pass: its rate starts from the last pass's (same link, same
 * disks), which is a better first guess than nothing. */
static void
start_pass (VmsProgress *progress, char *key, guint64 done, gint64 now)
{
  end_bar (progress);
  g_free (progress->key);
  progress->key = key;
  progress->finished = FALSE;
  vms_eta_start (&progress->eta, done, now, vms_eta_rate (&progress->eta));
}

void
vms_progress_update (VmsProgress *progress, const char *disk,
                     const char *phase, guint64 done, guint64 total,
                     guint64 sent)
{
  g_autofree char *key = NULL;
  g_autofree char *text = NULL;
  gint64 now = g_get_monotonic_time ();
  gboolean finished;
  double eta, overall;

  if (progress->mode == VMS_PROGRESS_CALLBACK)
    {
      update_callback (progress, disk, phase, done, total, sent);
      return;
    }
  /* Data the guest wrote into holes ahead of the copy adds to the work. */
  total = MAX (total, done);
  finished = done == total;
  key = g_strconcat (disk, "/", phase, NULL);
  if (g_strcmp0 (key, progress->key) != 0)
    start_pass (progress, g_steal_pointer (&key), done, now);
  else if (finished && progress->finished
           && progress->mode != VMS_PROGRESS_JSON)
    return; /* said already (JSON still gives sent) */
  else
    vms_eta_sample (&progress->eta, done, now);
  eta = vms_eta_seconds (&progress->eta, total - done);
  overall = progress->has_after ? vms_eta_seconds (
                &progress->eta, total - done + progress->after_pass)
                                : -1;
  if (progress->mode == VMS_PROGRESS_TEXT && !finished
      && now - progress->last_text_us < TEXT_INTERVAL_US)
    return;
  progress->finished = finished;
  text = describe_pass (progress, disk, phase, done, total, eta, overall);
  switch (progress->mode)
    {
    case VMS_PROGRESS_JSON:
      print_progress_json (progress, disk, phase, done, total, sent, eta,
                           overall, text);
      break;
    case VMS_PROGRESS_TEXT:
      progress->last_text_us = now;
      g_printerr ("%s\n", text);
      break;
    case VMS_PROGRESS_BAR:
      draw_bar (progress, disk, phase, done, total, text);
      break;
    case VMS_PROGRESS_CALLBACK:
      break;
    }
}

void
vms_progress_event (VmsProgress *progress, const char *event,
                    JsonObject *fields, const char *format, ...)
{
  g_autofree char *text = NULL;
  va_list args;

  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);
  if (progress->mode == VMS_PROGRESS_CALLBACK)
    {
      g_autoptr (JsonObject) object = fields ? fields : json_object_new ();

      progress->func (event, object, text, progress->user_data);
      return;
    }
  if (progress->mode == VMS_PROGRESS_JSON)
    {
      JsonObject *object = fields ? fields : json_object_new ();

      json_object_set_string_member (object, "event", event);
      json_object_set_string_member (object, "message", text);
      print_json (object);
      json_object_unref (object);
      return;
    }
  if (fields)
    json_object_unref (fields);
  end_bar (progress);
  g_printerr ("%s\n", text);
}
