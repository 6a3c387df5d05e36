/* vmshift: progress for people (a bar on a terminal) and for programs
 * (one JSON object per line).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <stdio.h>

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef enum
{
  VMS_PROGRESS_TEXT,  /* plain lines on stderr (not a terminal) */
  VMS_PROGRESS_BAR,   /* a redrawn bar on stderr (a terminal) */
  VMS_PROGRESS_JSON,  /* JSON lines on stdout */
  VMS_PROGRESS_CALLBACK, /* handed to a function (vms_progress_new_callback) */
} VmsProgressMode;

typedef struct _VmsProgress VmsProgress;

/* Receives what a callback-mode VmsProgress is told: an event with its
 * fields and text, or event "progress" with fields disk, phase, done,
 * total, sent (and after, see vms_progress_set_after_pass) and text NULL.
 * fields is borrowed. */
typedef void (*VmsProgressFunc) (const char *event, JsonObject *fields,
                                 const char *text, gpointer user_data);

/* mode TEXT is promoted to BAR when stderr is a terminal. */
VmsProgress *vms_progress_new (VmsProgressMode mode);
void vms_progress_free (VmsProgress *progress);

/* Events and updates go to func instead of a terminal: an engine's
 * caller decides where they are shown (and may tag them). */
VmsProgress *vms_progress_new_callback (VmsProgressFunc func,
                                        gpointer user_data);

/* Show on progress what a VmsProgressFunc received (fields borrowed). */
void vms_progress_forward (VmsProgress *progress, const char *event,
                           JsonObject *fields, const char *text);

/* The work of one pass: total is what the pass has to copy (data, or
 * dirty bytes; holes are no work), done how much of it is handled, sent
 * the bytes on the wire.  % and ETA are of total - done, at a rate
 * smoothed over the last seconds; a pass with total 0 is shown as having
 * nothing to copy. */
void vms_progress_update (VmsProgress *progress, const char *disk,
                          const char *phase, guint64 done, guint64 total,
                          guint64 sent);

/* What the whole job still has to copy after the pass being shown (an
 * estimate, bytes), or -1 for no estimate: with one, progress also gives
 * the time the whole job has left at the current rate (JSON member
 * overall-eta).  Kept for later passes until changed. */
void vms_progress_set_after_pass (VmsProgress *progress, gint64 bytes);

/* A notable moment, e.g. "round" with fields; text is what people read
 * (printf format).  fields may be NULL; it is taken. */
void vms_progress_event (VmsProgress *progress, const char *event,
                         JsonObject *fields, const char *format, ...)
    G_GNUC_PRINTF (4, 5);

/* Rate of work done in bytes per second, smoothed over the last few
 * seconds of updates (0 while unknown). */
double vms_progress_rate (VmsProgress *progress);

/* bytes in binary units ("1.5 MiB"), as the size options take them,
 * with a plain space before the unit: GLib puts a non-breaking one there,
 * which a C-locale terminal shows as '?'.  Caller frees. */
char *vms_format_size (guint64 bytes);
char *vms_format_size_full (guint64 bytes, GFormatSizeFlags flags);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsProgress, vms_progress_free)

G_END_DECLS
