/* vmshift: a set of byte ranges.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-range-set.h"

typedef struct
{
  guint64 start; /* first byte; also the tree key */
  guint64 end;   /* one past the last byte */
} Range;

struct _VmsRangeSet
{
  GTree *ranges;  /* &Range.start -> Range*, disjoint and not touching */
  guint64 total;  /* bytes covered */
};

static int
compare_offsets (gconstpointer a, gconstpointer b, gpointer user_data)
{
  guint64 x = *(const guint64 *) a, y = *(const guint64 *) b;

  return x < y ? -1 : x > y;
}

VmsRangeSet *
vms_range_set_new (void)
{
  VmsRangeSet *set = g_new0 (VmsRangeSet, 1);

  set->ranges = g_tree_new_full (compare_offsets, NULL, NULL, g_free);
  return set;
}

void
vms_range_set_free (VmsRangeSet *set)
{
  if (!set)
    return;
  g_tree_destroy (set->ranges);
  g_free (set);
}

/* The range with the greatest start <= offset, or NULL. */
static GTreeNode *
node_at_or_before (VmsRangeSet *set, guint64 offset)
{
  GTreeNode *after = g_tree_upper_bound (set->ranges, &offset);

  return after ? g_tree_node_previous (after) : g_tree_node_last (set->ranges);
}

static void
remove_node (VmsRangeSet *set, GTreeNode *node)
{
  Range *range = g_tree_node_value (node);

  set->total -= range->end - range->start;
  g_tree_remove (set->ranges, &range->start);
}

void
vms_range_set_add (VmsRangeSet *set, guint64 offset, guint64 length)
{
  guint64 start = offset;
  guint64 end = length > G_MAXUINT64 - offset ? G_MAXUINT64 : offset + length;
  GTreeNode *node;
  Range *range;

  if (start >= end)
    return;

  /* Absorb a range that starts before us and reaches (or touches) us. */
  node = node_at_or_before (set, start);
  if (node)
    {
      range = g_tree_node_value (node);
      if (range->end >= start)
        {
          start = range->start;
          end = MAX (end, range->end);
          remove_node (set, node);
        }
    }
  /* Absorb every range that starts inside us or right at our end. */
  while ((node = g_tree_lower_bound (set->ranges, &start)))
    {
      range = g_tree_node_value (node);
      if (range->start > end)
        break;
      end = MAX (end, range->end);
      remove_node (set, node);
    }

  range = g_new (Range, 1);
  range->start = start;
  range->end = end;
  g_tree_insert (set->ranges, &range->start, range);
  set->total += end - start;
}

gboolean
vms_range_set_foreach_gap (VmsRangeSet *set, guint64 offset, guint64 length,
                           VmsRangeFunc func, gpointer user_data)
{
  guint64 end = length > G_MAXUINT64 - offset ? G_MAXUINT64 : offset + length;
  guint64 cursor = offset;
  GTreeNode *node = node_at_or_before (set, offset);

  if (node)
    {
      Range *range = g_tree_node_value (node);

      if (range->end > cursor)
        cursor = MIN (range->end, end);
      node = g_tree_node_next (node);
    }
  else
    node = g_tree_node_first (set->ranges);

  for (; node && cursor < end; node = g_tree_node_next (node))
    {
      Range *range = g_tree_node_value (node);

      if (range->start >= end)
        break;
      if (range->start > cursor
          && !func (cursor, range->start - cursor, user_data))
        return FALSE;
      cursor = MAX (cursor, MIN (range->end, end));
    }
  if (cursor < end)
    return func (cursor, end - cursor, user_data);
  return TRUE;
}

gboolean
vms_range_set_overlaps (VmsRangeSet *set, guint64 offset, guint64 length)
{
  GTreeNode *node;
  Range *range;

  if (length == 0)
    return FALSE;
  node = node_at_or_before (set, offset);
  if (node && ((Range *) g_tree_node_value (node))->end > offset)
    return TRUE;
  node = node ? g_tree_node_next (node) : g_tree_node_first (set->ranges);
  if (!node)
    return FALSE;
  range = g_tree_node_value (node);
  return range->start - offset < length;
}

gboolean
vms_range_set_foreach (VmsRangeSet *set, VmsRangeFunc func, gpointer user_data)
{
  for (GTreeNode *node = g_tree_node_first (set->ranges); node;
       node = g_tree_node_next (node))
    {
      Range *range = g_tree_node_value (node);

      if (!func (range->start, range->end - range->start, user_data))
        return FALSE;
    }
  return TRUE;
}

guint
vms_range_set_count (VmsRangeSet *set)
{
  return g_tree_nnodes (set->ranges);
}

guint64
vms_range_set_total (VmsRangeSet *set)
{
  return set->total;
}
