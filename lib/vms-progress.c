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

/* A pass being shown: one disk's background copy or dirty round. */
typedef struct
{
  char *disk;          /* disk name, "VM/disk" when a VM is named */
  char *vm;            /* the VM's name (a plan's), or NULL */
  char *phase;         /* "background", "round 3", ... */
  VmsEta eta;          /* its rate and ETA */
  guint64 done;        /* work done at its last update */
  guint64 total;       /* its work at its last update */
  double eta_s;        /* its ETA at the last update, -1: unknown */
  gboolean finished;   /* it was shown complete */
  gint64 last_text_us; /* time of its last text line */
} Pass;

struct _VmsProgress
{
  VmsProgressMode mode;   /* how to show it */
  gboolean bar_drawn;     /* a bar line is on screen, unterminated */
  GPtrArray *passes;      /* Pass*: those running together (the disks of a
                             VM copied at once); a pass that begins when
                             they are all complete begins a new set */
  GHashTable *disk_rates; /* disk name -> double*: the rate of its last
                             pass, a first guess for its next one */
  double last_rate;       /* the rate of the last pass, for a disk that
                             had none */
  gboolean has_after;     /* after_pass holds an estimate */
  guint64 after_pass;     /* bytes the job sends after these passes */
  VmsProgressFunc func;   /* callback mode: where everything goes */
  gpointer user_data;     /* for func */
};

static void
pass_free (Pass *pass)
{
  g_free (pass->disk);
  g_free (pass->vm);
  g_free (pass->phase);
  g_free (pass);
}

static VmsProgress *
progress_new (VmsProgressMode mode)
{
  VmsProgress *progress = g_new0 (VmsProgress, 1);

  progress->mode = mode;
  progress->passes = g_ptr_array_new_with_free_func ((GDestroyNotify)pass_free);
  progress->disk_rates
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  return progress;
}

VmsProgress *
vms_progress_new (VmsProgressMode mode)
{
  if (mode == VMS_PROGRESS_TEXT && isatty (STDERR_FILENO))
    mode = VMS_PROGRESS_BAR;
  return progress_new (mode);
}

VmsProgress *
vms_progress_new_callback (VmsProgressFunc func, gpointer user_data)
{
  VmsProgress *progress = progress_new (VMS_PROGRESS_CALLBACK);

  progress->func = func;
  progress->user_data = user_data;
  return progress;
}

static void update_pass (VmsProgress *progress, const char *vm,
                         const char *disk, const char *phase, guint64 done,
                         guint64 total, guint64 sent);

void
vms_progress_forward (VmsProgress *progress, const char *event,
                      JsonObject *fields, const char *text)
{
  /* Passed on whole, with what the forwarder added (a plan's VM name). */
  if (progress->mode == VMS_PROGRESS_CALLBACK)
    {
      progress->func (event, fields, text, progress->user_data);
      return;
    }
  if (g_str_equal (event, "progress") && !text && fields)
    {
      if (json_object_has_member (fields, "after"))
        vms_progress_set_after_pass (
            progress, json_object_get_int_member (fields, "after"));
      update_pass (
          progress,
          json_object_get_string_member_with_default (fields, "vm", NULL),
          json_object_get_string_member_with_default (fields, "disk", ""),
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
  g_ptr_array_unref (progress->passes);
  g_hash_table_unref (progress->disk_rates);
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
  double rate = 0;

  for (guint i = 0; i < progress->passes->len; i++)
    {
      Pass *pass = progress->passes->pdata[i];

      if (!pass->finished)
        rate += vms_eta_rate (&pass->eta);
    }
  return rate;
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
                            (guint)(s / 60 % 60), (guint)(s % 60));
  return g_strdup_printf ("%u:%02u", (guint)(s / 60), (guint)(s % 60));
}

/* The line people read about a pass; NULL when there is nothing new to
 * say. */
static char *
describe_pass (Pass *pass, double overall)
{
  g_autofree char *done_text = vms_format_size (pass->done);
  g_autofree char *total_text = vms_format_size (pass->total);
  g_autofree char *rate_text
      = vms_format_size ((guint64)vms_eta_rate (&pass->eta));
  g_autofree char *eta_text = format_eta (pass->eta_s);
  g_autofree char *overall_text = overall >= 0 ? format_eta (overall) : NULL;

  if (pass->total == 0)
    return g_strdup_printf ("%s %s: nothing to copy", pass->disk, pass->phase);
  return g_strdup_printf (
      "%s %s: %3.0f%% %s of %s, %s/s, ETA %s%s%s", pass->disk, pass->phase,
      100.0 * pass->done / pass->total, done_text, total_text, rate_text,
      eta_text, overall_text ? ", all " : "", overall_text ? overall_text : "");
}

static void
print_progress_json (Pass *pass, guint64 sent, gboolean has_after,
                     double overall, const char *text)
{
  g_autoptr (JsonObject) object = json_object_new ();

  json_object_set_string_member (object, "event", "progress");
  if (pass->vm)
    json_object_set_string_member (object, "vm", pass->vm);
  json_object_set_string_member (object, "disk",
                                 pass->vm ? pass->disk + strlen (pass->vm) + 1
                                          : pass->disk);
  json_object_set_string_member (object, "phase", pass->phase);
  json_object_set_int_member (object, "done", pass->done);
  json_object_set_int_member (object, "total", pass->total);
  json_object_set_int_member (object, "sent", sent);
  json_object_set_int_member (object, "rate",
                              (gint64)vms_eta_rate (&pass->eta));
  json_object_set_int_member (object, "eta",
                              pass->eta_s < 0 ? -1 : (gint64)pass->eta_s);
  if (has_after)
    json_object_set_int_member (object, "overall-eta",
                                overall < 0 ? -1 : (gint64)overall);
  json_object_set_string_member (object, "message", text);
  print_json (object);
}

static double
percent (Pass *pass)
{
  return pass->total ? 100.0 * pass->done / pass->total : 100;
}

/* One pass: its bar and figures.  Several at once: each disk's share
 * done, then their rate together and the time the slowest has left. */
static void
draw_bar (VmsProgress *progress, Pass *updated, const char *text,
          double overall)
{
  g_autoptr (GString) line = g_string_new ("\r");
  double eta = 0;

  if (progress->passes->len == 1)
    {
      double fraction = percent (updated) / 100;
      guint filled = CLAMP (fraction * BAR_WIDTH, 0, BAR_WIDTH);
      const char *figures = strchr (text, ':');
      char bar[BAR_WIDTH + 1];

      memset (bar, '#', filled);
      memset (bar + filled, '.', BAR_WIDTH - filled);
      bar[BAR_WIDTH] = 0;
      g_string_append_printf (line, "%s %-10s [%s]%s", updated->disk,
                              updated->phase, bar, figures ? figures + 1 : "");
    }
  else
    {
      g_autofree char *rate = NULL;
      g_autofree char *eta_text = NULL;

      for (guint i = 0; i < progress->passes->len; i++)
        {
          Pass *pass = progress->passes->pdata[i];

          g_string_append_printf (line, "%s%s %s %3.0f%%", i ? ", " : "",
                                  pass->disk, pass->phase, percent (pass));
          if (eta >= 0 && !pass->finished)
            eta = pass->eta_s < 0 ? -1 : MAX (eta, pass->eta_s);
        }
      rate = vms_format_size ((guint64)vms_progress_rate (progress));
      eta_text = format_eta (eta);
      g_string_append_printf (line, "; %s/s, ETA %s", rate, eta_text);
      if (overall >= 0)
        {
          g_autofree char *overall_text = format_eta (overall);

          g_string_append_printf (line, ", all %s", overall_text);
        }
    }
  g_printerr ("%s\033[K", line->str);
  progress->bar_drawn = TRUE;
}

/* Disks in name order, so that the bar's line keeps its order. */
static gint
compare_passes (gconstpointer a, gconstpointer b)
{
  const Pass *first = *(Pass *const *)a;
  const Pass *second = *(Pass *const *)b;

  return g_strcmp0 (first->disk, second->disk);
}

/* The pass of disk and phase, begun now if it is new (*is_new).  It joins
 * the set being shown unless the set is complete and already had a pass
 * of this disk: then this is the next pass, which begins a new set.  (A
 * disk that is quick to finish does not split the set of passes running
 * at once.)  Its rate starts from the disk's last pass's (same link, same
 * disk), a better first guess than nothing. */
static Pass *
find_pass (VmsProgress *progress, const char *disk, const char *phase,
           guint64 done, gint64 now, gboolean *is_new)
{
  gboolean set_running = FALSE, disk_seen = FALSE;
  double *disk_rate;
  Pass *pass;

  *is_new = FALSE;
  for (guint i = 0; i < progress->passes->len; i++)
    {
      pass = progress->passes->pdata[i];
      if (g_str_equal (pass->disk, disk) && g_str_equal (pass->phase, phase))
        return pass;
    }
  for (guint i = progress->passes->len; i-- > 0;)
    {
      pass = progress->passes->pdata[i];
      if (vms_eta_rate (&pass->eta) > 0)
        {
          progress->last_rate = vms_eta_rate (&pass->eta);
          g_hash_table_insert (
              progress->disk_rates, g_strdup (pass->disk),
              g_memdup2 (&progress->last_rate, sizeof (double)));
        }
      if (g_str_equal (pass->disk, disk))
        {
          /* A disk's earlier pass is over when its next one begins. */
          disk_seen = TRUE;
          g_ptr_array_remove_index (progress->passes, i);
          continue;
        }
      set_running = set_running || !pass->finished;
    }
  if (disk_seen && !set_running)
    {
      end_bar (progress);
      g_ptr_array_set_size (progress->passes, 0);
    }
  pass = g_new0 (Pass, 1);
  pass->disk = g_strdup (disk);
  pass->phase = g_strdup (phase);
  disk_rate = g_hash_table_lookup (progress->disk_rates, disk);
  vms_eta_start (&pass->eta, done, now,
                 disk_rate ? *disk_rate : progress->last_rate);
  g_ptr_array_add (progress->passes, pass);
  g_ptr_array_sort (progress->passes, compare_passes);
  *is_new = TRUE;
  return pass;
}

/* Seconds the set of passes and what comes after them have left at their
 * rate together, -1 when unknown. */
static double
overall_seconds (VmsProgress *progress)
{
  guint64 left = progress->after_pass;
  double rate = 0;

  for (guint i = 0; i < progress->passes->len; i++)
    {
      Pass *pass = progress->passes->pdata[i];

      left += pass->total - pass->done;
      if (!pass->finished)
        rate += vms_eta_rate (&pass->eta);
    }
  if (left == 0)
    return 0;
  return rate > 0 ? left / rate : -1;
}

/* A pass of vm's disk (vm NULL: the only VM): the disks of a plan's VMs
 * have the same names. */
static void
update_pass (VmsProgress *progress, const char *vm, const char *disk,
             const char *phase, guint64 done, guint64 total, guint64 sent)
{
  g_autofree char *label = vm ? g_strdup_printf ("%s/%s", vm, disk) : NULL;
  g_autofree char *text = NULL;
  gint64 now = g_get_monotonic_time ();
  gboolean finished, is_new;
  double overall;
  Pass *pass;

  if (progress->mode == VMS_PROGRESS_CALLBACK)
    {
      update_callback (progress, disk, phase, done, total, sent);
      return;
    }
  /* Data the guest wrote into holes ahead of the copy adds to the work. */
  total = MAX (total, done);
  finished = done == total;
  pass = find_pass (progress, label ? label : disk, phase, done, now, &is_new);
  if (is_new && vm)
    pass->vm = g_strdup (vm);
  if (!is_new && finished && pass->finished
      && progress->mode != VMS_PROGRESS_JSON)
    return; /* said already (JSON still gives sent) */
  if (!is_new)
    vms_eta_sample (&pass->eta, done, now);
  pass->done = done;
  pass->total = total;
  pass->eta_s = vms_eta_seconds (&pass->eta, total - done);
  overall = progress->has_after ? overall_seconds (progress) : -1;
  if (progress->mode == VMS_PROGRESS_TEXT && !finished
      && now - pass->last_text_us < TEXT_INTERVAL_US)
    return;
  pass->finished = finished;
  text = describe_pass (pass, overall);
  switch (progress->mode)
    {
    case VMS_PROGRESS_JSON:
      print_progress_json (pass, sent, progress->has_after, overall, text);
      break;
    case VMS_PROGRESS_TEXT:
      pass->last_text_us = now;
      g_printerr ("%s\n", text);
      break;
    case VMS_PROGRESS_BAR:
      draw_bar (progress, pass, text, overall);
      break;
    case VMS_PROGRESS_CALLBACK:
      break;
    }
}

void
vms_progress_update (VmsProgress *progress, const char *disk, const char *phase,
                     guint64 done, guint64 total, guint64 sent)
{
  update_pass (progress, NULL, disk, phase, done, total, sent);
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
