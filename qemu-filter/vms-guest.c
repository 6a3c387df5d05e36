/* vmshift qemu-filter: the guest as its QEMU reports it.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-guest.h"
#include "vms-qemu-reply.h"

#include <glib/gstdio.h>

/* QEMU's words for a dirty rate measurement's status. */
static const char *const dirty_rate_statuses[] = {
  [VMS_GUEST_DIRTY_RATE_UNSTARTED] = "unstarted",
  [VMS_GUEST_DIRTY_RATE_MEASURING] = "measuring",
  [VMS_GUEST_DIRTY_RATE_MEASURED] = "measured",
};

gboolean
vms_guest_query_memory_size (VmsQmp *qmp, VmsGuestMemorySize *out,
                             GError **error)
{
  static const char command[] = "query-memory-size-summary";
  g_autoptr (JsonNode) reply = vms_qmp_execute (qmp, command, NULL, error);
  JsonObject *object;

  memset (out, 0, sizeof *out);
  if (!reply || !(object = vms_reply_object (reply, command, error))
      || !vms_reply_uint (object, "base-memory", command, &out->base_memory,
                          error))
    return FALSE;
  /* Only machines that can plug memory report it. */
  return !json_object_has_member (object, "plugged-memory")
         || vms_reply_uint (object, "plugged-memory", command,
                            &out->plugged_memory, error);
}

GBytes *
vms_guest_read_memory (VmsQmp *qmp, guint64 address, guint64 size,
                       const char *path, GError **error)
{
  g_autoptr (JsonObject) arguments = json_object_new ();
  g_autoptr (JsonNode) reply = NULL;
  char *contents = NULL;
  gsize length = 0;
  gboolean ok;

  json_object_set_int_member (arguments, "val", address);
  json_object_set_int_member (arguments, "size", size);
  json_object_set_string_member (arguments, "filename", path);
  reply = vms_qmp_execute (qmp, "pmemsave", arguments, error);
  ok = reply && g_file_get_contents (path, &contents, &length, error);
  /* Also after a failure: QEMU may have created it. */
  g_unlink (path);
  if (!ok)
    {
      g_prefix_error (error,
                      "reading %" G_GUINT64_FORMAT " bytes of guest memory "
                      "at 0x%" G_GINT64_MODIFIER "x: ",
                      size, address);
      return NULL;
    }
  return g_bytes_new_take (contents, length);
}

gboolean
vms_guest_calc_dirty_rate (VmsQmp *qmp, guint calc_time_s, guint sample_pages,
                           GError **error)
{
  g_autoptr (JsonObject) arguments = json_object_new ();
  g_autoptr (JsonNode) reply = NULL;

  json_object_set_int_member (arguments, "calc-time", calc_time_s);
  if (sample_pages)
    json_object_set_int_member (arguments, "sample-pages", sample_pages);
  /* Not dirty-bitmap: it kills QEMU 7.2 under TCG. */
  json_object_set_string_member (arguments, "mode", "page-sampling");
  reply = vms_qmp_execute (qmp, "calc-dirty-rate", arguments, error);
  if (!reply)
    {
      g_prefix_error (error, "starting a dirty rate measurement: ");
      return FALSE;
    }
  return TRUE;
}

static gboolean
parse_dirty_rate_status (const char *name, VmsGuestDirtyRateStatus *out,
                         GError **error)
{
  for (guint i = 0; i < G_N_ELEMENTS (dirty_rate_statuses); i++)
    if (g_str_equal (name, dirty_rate_statuses[i]))
      {
        *out = i;
        return TRUE;
      }
  g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_PROTOCOL,
               "reply to query-dirty-rate: unknown status '%s'", name);
  return FALSE;
}

gboolean
vms_guest_query_dirty_rate (VmsQmp *qmp, VmsGuestDirtyRate *out, GError **error)
{
  static const char command[] = "query-dirty-rate";
  g_autoptr (JsonNode) reply = vms_qmp_execute (qmp, command, NULL, error);
  JsonObject *object;
  const char *status;
  guint64 mib_per_second;

  memset (out, 0, sizeof *out);
  if (!reply || !(object = vms_reply_object (reply, command, error))
      || !vms_reply_string (object, "status", command, &status, error)
      || !parse_dirty_rate_status (status, &out->status, error))
    return FALSE;
  if (out->status != VMS_GUEST_DIRTY_RATE_MEASURED)
    return TRUE;
  /* Present once measured, in MiB/s. */
  if (!vms_reply_uint (object, "dirty-rate", command, &mib_per_second, error))
    return FALSE;
  out->bytes_per_second = mib_per_second * 1024.0 * 1024.0;
  return TRUE;
}

void
vms_guest_block_stats_free (VmsGuestBlockStats *stats)
{
  if (!stats)
    return;
  g_free (stats->device);
  g_free (stats->node_name);
  g_free (stats->qdev);
  g_free (stats);
}

VmsGuestWriteCounters
vms_guest_write_counters (const VmsGuestBlockStats *entry)
{
  if (!entry)
    return (VmsGuestWriteCounters){ 0 };
  return (VmsGuestWriteCounters){ entry->wr_operations,
                                  entry->wr_total_time_ns
                                      + entry->flush_total_time_ns,
                                  TRUE };
}

double
vms_guest_write_latency_us (const VmsGuestWriteCounters *before,
                            const VmsGuestWriteCounters *after)
{
  if (!before->known || !after->known || after->writes < before->writes
      || after->time_ns < before->time_ns
      || after->writes - before->writes < VMS_GUEST_LATENCY_MIN_WRITES)
    return -1;
  return (after->time_ns - before->time_ns) / 1000.0
         / (after->writes - before->writes);
}

/* A figure QEMU 7.2 always sends, but only replication backpressure
 * needs: left at 0 when missing rather than failing every caller. */
static gboolean
opt_uint (JsonObject *figures, const char *member, guint64 *out, GError **error)
{
  *out = 0;
  return !json_object_has_member (figures, member)
         || vms_reply_uint (figures, member, "query-blockstats", out, error);
}

static VmsGuestBlockStats *
parse_block_stats (JsonObject *entry, GError **error)
{
  static const char command[] = "query-blockstats";
  g_autoptr (VmsGuestBlockStats) stats = g_new0 (VmsGuestBlockStats, 1);
  const char *device, *node_name, *qdev;
  JsonObject *figures;

  /* QEMU leaves device out only for query-nodes, which is not asked. */
  if (!vms_reply_opt_string (entry, "device", command, "", &device, error)
      || !vms_reply_opt_string (entry, "node-name", command, NULL, &node_name,
                                error)
      || !vms_reply_opt_string (entry, "qdev", command, NULL, &qdev, error)
      || !vms_reply_opt_object (entry, "stats", command, &figures, error))
    return NULL;
  if (!figures)
    {
      g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_PROTOCOL,
                   "reply to %s: 'stats' is missing or not an object", command);
      return NULL;
    }
  if (!vms_reply_uint (figures, "wr_bytes", command, &stats->wr_bytes, error)
      || !vms_reply_uint (figures, "wr_operations", command,
                          &stats->wr_operations, error)
      || !opt_uint (figures, "wr_total_time_ns", &stats->wr_total_time_ns,
                    error)
      || !opt_uint (figures, "flush_operations", &stats->flush_operations,
                    error)
      || !opt_uint (figures, "flush_total_time_ns", &stats->flush_total_time_ns,
                    error))
    return NULL;
  stats->device = g_strdup (device);
  stats->node_name = g_strdup (node_name);
  stats->qdev = g_strdup (qdev);
  return g_steal_pointer (&stats);
}

GPtrArray *
vms_guest_query_blockstats (VmsQmp *qmp, GError **error)
{
  static const char command[] = "query-blockstats";
  g_autoptr (JsonNode) reply = vms_qmp_execute (qmp, command, NULL, error);
  g_autoptr (GPtrArray) entries = g_ptr_array_new_with_free_func (
      (GDestroyNotify)vms_guest_block_stats_free);
  JsonArray *array;

  if (!reply || !(array = vms_reply_array (reply, command, error)))
    return NULL;
  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      JsonObject *entry = vms_reply_array_object (array, i, command, error);
      VmsGuestBlockStats *stats
          = entry ? parse_block_stats (entry, error) : NULL;

      if (!stats)
        return NULL;
      g_ptr_array_add (entries, stats);
    }
  return g_steal_pointer (&entries);
}

VmsGuestBlockStats *
vms_guest_block_stats_find (GPtrArray *stats, const char *node_name,
                            const char *device_id)
{
  /* The device's backend is a child of it: /machine/peripheral/ID/... */
  g_autofree char *qdev = g_strdup_printf ("/peripheral/%s/", device_id);

  for (guint i = 0; i < stats->len; i++)
    {
      VmsGuestBlockStats *entry = stats->pdata[i];

      if (g_strcmp0 (entry->node_name, node_name) == 0
          || (entry->qdev && strstr (entry->qdev, qdev)))
        return entry;
    }
  return NULL;
}
