/* Unit tests: progress of several disks copied at once (JSON lines).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <unistd.h>

#include "vms-progress.h"

#define MiB (1024 * 1024)
/* Updates every this long, as the engine gives them. */
#define TICK_US (100 * 1000)
/* Long enough for a rate to rest on a second of history. */
#define TICKS 15

/* stdout into a temporary file while a test writes JSON lines. */
typedef struct
{
  int saved; /* the real stdout */
  int fd;    /* the file */
  char *path;
} Capture;

static void
capture_start (Capture *capture)
{
  g_autoptr (GError) error = NULL;

  fflush (stdout);
  capture->fd = g_file_open_tmp ("vms-progress-XXXXXX", &capture->path, &error);
  assert_true (capture->fd >= 0);
  capture->saved = dup (STDOUT_FILENO);
  assert_true (dup2 (capture->fd, STDOUT_FILENO) >= 0);
}

/* The lines written, caller frees. */
static char **
capture_end (Capture *capture)
{
  g_autofree char *text = NULL;

  fflush (stdout);
  dup2 (capture->saved, STDOUT_FILENO);
  close (capture->saved);
  close (capture->fd);
  assert_true (g_file_get_contents (capture->path, &text, NULL, NULL));
  g_unlink (capture->path);
  g_free (capture->path);
  return g_strsplit (text, "\n", -1);
}

/* The last progress object of disk among lines (in parser). */
static JsonObject *
last_of (char **lines, const char *disk, JsonParser *parser)
{
  JsonObject *found = NULL;

  for (guint i = 0; lines[i]; i++)
    {
      g_autofree char *needle = g_strdup_printf ("\"disk\":\"%s\"", disk);

      if (*lines[i] && strstr (lines[i], needle))
        {
          assert_true (json_parser_load_from_data (parser, lines[i], -1, NULL));
          found = json_node_get_object (json_parser_get_root (parser));
        }
    }
  assert_non_null (found);
  return found;
}

/* Two disks' passes updated in turns, one twice as fast as the other:
 * each keeps its own rate and ETA (a pass that restarted at every turn
 * would never know its rate), and the overall ETA is what both and the
 * passes after them have left at their rate together. */
static void
test_passes_at_once_keep_their_rates (void **state)
{
  g_autoptr (VmsProgress) progress = vms_progress_new (VMS_PROGRESS_JSON);
  g_autoptr (JsonParser) parser0 = json_parser_new ();
  g_autoptr (JsonParser) parser1 = json_parser_new ();
  g_auto (GStrv) lines = NULL;
  const guint64 total = 100 * MiB;
  guint64 done0 = 0, done1 = 0;
  JsonObject *vd0, *vd1;
  gint64 rate0, rate1, eta0, eta1, overall;
  Capture capture;

  vms_progress_set_after_pass (progress, 10 * MiB);
  capture_start (&capture);
  for (int i = 0; i <= TICKS; i++)
    {
      vms_progress_update (progress, "vd0", "background", done0, total, done0);
      vms_progress_update (progress, "vd1", "background", done1, total, done1);
      g_usleep (TICK_US);
      /* 20 and 10 MiB/s. */
      done0 += 2 * MiB;
      done1 += MiB;
    }
  lines = capture_end (&capture);

  vd0 = last_of (lines, "vd0", parser0);
  vd1 = last_of (lines, "vd1", parser1);
  rate0 = json_object_get_int_member (vd0, "rate");
  rate1 = json_object_get_int_member (vd1, "rate");
  eta0 = json_object_get_int_member (vd0, "eta");
  eta1 = json_object_get_int_member (vd1, "eta");
  overall = json_object_get_int_member (vd1, "overall-eta");
  /* Each rate is its own disk's (sleeping makes the clock run longer,
   * never shorter, than the ticks). */
  assert_in_range (rate0, 12 * MiB, 21 * MiB);
  assert_in_range (rate1, 6 * MiB, 11 * MiB);
  assert_true (rate0 > rate1 * 3 / 2);
  /* vd0 has 70 MiB left, vd1 85 MiB: vd1's ETA is the longer. */
  assert_true (eta0 > 0 && eta1 > eta0);
  /* 70 + 85 + 10 MiB at the two rates together. */
  assert_in_range (overall, (165 * MiB) / (rate0 + rate1) - 1,
                   (165 * MiB) / (rate0 + rate1) + 1);
}

/* A pass that ends before the others leaves the set shown; the next
 * pass of a disk begins a new set, with the rate of its last pass as a
 * first guess. */
static void
test_next_pass_begins_a_new_set (void **state)
{
  g_autoptr (VmsProgress) progress = vms_progress_new (VMS_PROGRESS_JSON);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_auto (GStrv) lines = NULL;
  Capture capture;
  JsonObject *round;

  capture_start (&capture);
  for (int i = 0; i <= TICKS; i++)
    {
      vms_progress_update (progress, "vd0", "background", i * MiB, TICKS * MiB,
                           i * MiB);
      g_usleep (TICK_US);
    }
  vms_progress_update (progress, "vd1", "background", 0, 0, 0);
  vms_progress_update (progress, "vd0", "round 1", 0, 8 * MiB, 0);
  lines = capture_end (&capture);
  round = last_of (lines, "vd0", parser);
  assert_string_equal (json_object_get_string_member (round, "phase"),
                       "round 1");
  /* The background's rate, about 10 MiB/s, stands for the round's. */
  assert_in_range (json_object_get_int_member (round, "rate"), 5 * MiB,
                   11 * MiB);
  assert_in_range (vms_progress_rate (progress), 5 * MiB, 11 * MiB);
}

/* A plan's VMs have disks of the same names: forwarded with their VM's
 * name, each VM's pass is its own, and says whose it is. */
static void
test_vms_with_the_same_disk_names (void **state)
{
  g_autoptr (VmsProgress) progress = vms_progress_new (VMS_PROGRESS_JSON);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_auto (GStrv) lines = NULL;
  Capture capture;
  const char *vms[] = { "web", "db" };
  guint seen[2] = { 0, 0 };

  capture_start (&capture);
  for (int i = 0; i <= 4; i++)
    for (guint v = 0; v < G_N_ELEMENTS (vms); v++)
      {
        JsonObject *fields = json_object_new ();

        json_object_set_string_member (fields, "vm", vms[v]);
        json_object_set_string_member (fields, "disk", "vd0");
        json_object_set_string_member (fields, "phase", "background");
        /* db twice as far along as web. */
        json_object_set_int_member (fields, "done", (v + 1) * i * MiB);
        json_object_set_int_member (fields, "total", 8 * MiB);
        json_object_set_int_member (fields, "sent", 0);
        vms_progress_forward (progress, "progress", fields, NULL);
        json_object_unref (fields);
      }
  lines = capture_end (&capture);
  for (guint i = 0; lines[i]; i++)
    {
      JsonObject *object;
      const char *vm;
      guint v;

      if (!*lines[i])
        continue;
      assert_true (json_parser_load_from_data (parser, lines[i], -1, NULL));
      object = json_node_get_object (json_parser_get_root (parser));
      assert_string_equal (json_object_get_string_member (object, "disk"),
                           "vd0");
      vm = json_object_get_string_member (object, "vm");
      v = g_str_equal (vm, "web") ? 0 : 1;
      assert_string_equal (vm, vms[v]);
      /* Each line is its own VM's figure, never the other's. */
      assert_int_equal (json_object_get_int_member (object, "done") % (v + 1),
                        0);
      assert_true (json_object_get_int_member (object, "done")
                   <= (gint64)(v + 1) * 4 * MiB);
      seen[v]++;
    }
  assert_int_equal (seen[0], 5);
  assert_int_equal (seen[1], 5);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_passes_at_once_keep_their_rates),
    cmocka_unit_test (test_next_pass_begins_a_new_set),
    cmocka_unit_test (test_vms_with_the_same_disk_names),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
