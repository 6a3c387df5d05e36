/* vmshift: a set of byte ranges.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* A set of disjoint half-open byte ranges [start, end), merged as they are
 * added.  The sink records in one which bytes the live mirror has written;
 * guest writes land anywhere, so lookups and inserts are O(log n). */
typedef struct _VmsRangeSet VmsRangeSet;

/* Called for each piece of a range; return FALSE to stop with an error. */
typedef gboolean (*VmsRangeFunc) (guint64 offset, guint64 length,
                                  gpointer user_data);

VmsRangeSet *vms_range_set_new (void);
void vms_range_set_free (VmsRangeSet *set);

/* Add [offset, offset + length); length 0 adds nothing.  Ranges that
 * would pass 2^64 are clamped. */
void vms_range_set_add (VmsRangeSet *set, guint64 offset, guint64 length);

/* TRUE if any byte of [offset, offset + length) is in the set. */
gboolean vms_range_set_overlaps (VmsRangeSet *set, guint64 offset,
                                 guint64 length);

/* Call func, in order, for each part of [offset, offset + length) that is
 * NOT in the set.  Returns FALSE as soon as func does. */
gboolean vms_range_set_foreach_gap (VmsRangeSet *set, guint64 offset,
                                    guint64 length, VmsRangeFunc func,
                                    gpointer user_data);

/* Call func, in order, for each range of the set: disjoint and not
 * touching, so that what it is given is the smallest list of ranges
 * making up the set.  Returns FALSE as soon as func does. */
gboolean vms_range_set_foreach (VmsRangeSet *set, VmsRangeFunc func,
                                gpointer user_data);

/* Number of disjoint ranges, and bytes covered. */
guint vms_range_set_count (VmsRangeSet *set);
guint64 vms_range_set_total (VmsRangeSet *set);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsRangeSet, vms_range_set_free)

G_END_DECLS
