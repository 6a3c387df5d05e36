/* vmshift: the estimate's result file.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-estimate-file.h"
#include "vms-backpressure-option.h"
#include "vms-json.h"
#include "vms-file.h"
#include "vms-job.h"

/* The UUID QEMU reports for a VM started without -uuid: it tells no VM
 * apart. */
#define NO_UUID "00000000-0000-0000-0000-000000000000"

/* The macro makes a string of the quark name: keep it whole. */
/* clang-format off */
G_DEFINE_QUARK (vms-estimate-file-error-quark, vms_estimate_file_error)
/* clang-format on */

static void
disk_free (VmsEstimateFileDisk *disk)
{
  g_free (disk->name);
  g_free (disk->granularity_reason);
  g_array_unref (disk->seconds);
  g_array_unref (disk->dirty);
  g_array_unref (disk->written);
  g_free (disk);
}

static void
vm_free (VmsEstimateFileVm *vm)
{
  g_free (vm->source);
  g_free (vm->vm_name);
  g_free (vm->vm_uuid);
  g_ptr_array_unref (vm->disks);
  g_free (vm);
}

VmsEstimateFile *
vms_estimate_file_new (const char *id)
{
  VmsEstimateFile *estimate = g_new0 (VmsEstimateFile, 1);

  estimate->id = g_strdup (id);
  estimate->probes = g_array_new (FALSE, FALSE, sizeof (VmsProbeResult));
  estimate->vms = g_ptr_array_new_with_free_func ((GDestroyNotify)vm_free);
  return estimate;
}

void
vms_estimate_file_free (VmsEstimateFile *estimate)
{
  if (!estimate)
    return;
  g_free (estimate->id);
  g_array_unref (estimate->probes);
  g_ptr_array_unref (estimate->vms);
  g_free (estimate->order);
  g_free (estimate);
}

VmsEstimateFileVm *
vms_estimate_file_add_vm (VmsEstimateFile *estimate, const char *source)
{
  VmsEstimateFileVm *vm = g_new0 (VmsEstimateFileVm, 1);

  vm->source = g_strdup (source);
  vm->vm_name = g_strdup ("");
  vm->vm_uuid = g_strdup ("");
  vm->disks = g_ptr_array_new_with_free_func ((GDestroyNotify)disk_free);
  g_ptr_array_add (estimate->vms, vm);
  return vm;
}

VmsEstimateFileDisk *
vms_estimate_file_add_disk (VmsEstimateFileVm *vm, const char *name,
                            guint64 size)
{
  VmsEstimateFileDisk *disk = g_new0 (VmsEstimateFileDisk, 1);

  disk->name = g_strdup (name);
  disk->size = size;
  disk->seconds = g_array_new (FALSE, FALSE, sizeof (double));
  disk->dirty = g_array_new (FALSE, FALSE, sizeof (guint64));
  disk->written = g_array_new (FALSE, FALSE, sizeof (guint64));
  g_ptr_array_add (vm->disks, disk);
  return disk;
}

char *
vms_estimate_file_path (const char *state_dir, const char *id)
{
  g_autofree char *file = g_strdup_printf ("estimate-%s.json", id);

  return g_build_filename (state_dir, file, NULL);
}

/* ---- writing ---- */

/* Members in the order the file has always had them: people and
 * bench/estimate-accuracy read it. */
#define MEMBER(name) json_builder_set_member_name (b, name)
#define INT(name, value) (MEMBER (name), json_builder_add_int_value (b, value))
#define DOUBLE(name, value)                                                    \
  (MEMBER (name), json_builder_add_double_value (b, value))
#define STRING(name, value)                                                    \
  (MEMBER (name), json_builder_add_string_value (b, value))
#define BOOLEAN(name, value)                                                   \
  (MEMBER (name), json_builder_add_boolean_value (b, value))

static void
build_link (JsonBuilder *b, const VmsEstimateFile *estimate)
{
  MEMBER ("link");
  json_builder_begin_object (b);
  DOUBLE ("rtt-seconds", estimate->rtt_s);
  DOUBLE ("throughput", estimate->best.throughput);
  INT ("connections", estimate->best.connections);
  INT ("request-size", estimate->best.request_size);
  MEMBER ("probes");
  json_builder_begin_array (b);
  for (guint i = 0; i < estimate->probes->len; i++)
    {
      const VmsProbeResult *probe
          = &g_array_index (estimate->probes, VmsProbeResult, i);

      json_builder_begin_object (b);
      INT ("connections", probe->connections);
      INT ("request-size", probe->request_size);
      DOUBLE ("throughput", probe->throughput);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  json_builder_end_object (b);
}

static void
build_steps (JsonBuilder *b, const VmsEstimateFileSteps *steps)
{
  MEMBER ("steps");
  json_builder_begin_object (b);
  DOUBLE ("qmp-seconds", steps->qmp_s);
  DOUBLE ("save-seconds", steps->save_s);
  DOUBLE ("server-seconds", steps->server_s);
  DOUBLE ("empty-copy-seconds", steps->empty_copy_s);
  DOUBLE ("empty-round-seconds", steps->empty_round_s);
  DOUBLE ("round-overhead-seconds", steps->round_overhead_s);
  DOUBLE ("sink-connect-seconds", steps->sink_connect_s);
  json_builder_end_object (b);
}

static void
build_disk (JsonBuilder *b, const VmsEstimateFileDisk *disk)
{
  json_builder_begin_object (b);
  STRING ("name", disk->name);
  INT ("size", disk->size);
  INT ("allocated", disk->allocated);
  INT ("data", disk->data);
  INT ("data-at-start", disk->data_start);
  DOUBLE ("growth-rate", disk->growth_rate);
  DOUBLE ("growth-position", disk->growth_position);
  DOUBLE ("copy-rate", disk->copy_rate);
  DOUBLE ("round-rate", disk->round_rate);
  DOUBLE ("pace", disk->pace);
  DOUBLE ("round-noise", disk->round_noise);
  DOUBLE ("write-rate", disk->write_rate);
  DOUBLE ("latency-before-us", disk->latency_before_us);
  DOUBLE ("latency-copying-us", disk->latency_copying_us);
  INT ("granularity", disk->granularity);
  if (disk->granularity_reason)
    STRING ("granularity-reason", disk->granularity_reason);
  MEMBER ("dirty-samples");
  json_builder_begin_array (b);
  for (guint k = 0; k < disk->seconds->len; k++)
    {
      json_builder_begin_array (b);
      json_builder_add_double_value (b,
                                     g_array_index (disk->seconds, double, k));
      json_builder_add_int_value (b, g_array_index (disk->dirty, guint64, k));
      /* Beside the bitmap, what the guest wrote: their ratio is what the
       * bits' coarseness and the guest's rewrites make of its writes. */
      if (k < disk->written->len)
        json_builder_add_int_value (b,
                                    g_array_index (disk->written, guint64, k));
      json_builder_end_array (b);
    }
  json_builder_end_array (b);
  json_builder_end_object (b);
}

static void
build_prediction (JsonBuilder *b, const VmsEstimate *e)
{
  MEMBER ("prediction");
  json_builder_begin_object (b);
  DOUBLE ("background-seconds", e->background_s);
  INT ("background-bytes", e->background_bytes);
  MEMBER ("rounds-durations");
  json_builder_begin_array (b);
  for (guint k = 0; k < e->n_rounds; k++)
    json_builder_add_double_value (b, e->round_s[k]);
  json_builder_end_array (b);
  INT ("final-bytes-pause", e->final_bytes_pause);
  MEMBER ("rounds");
  json_builder_begin_array (b);
  for (guint k = 0; k < e->n_rounds; k++)
    json_builder_add_int_value (b, e->round_bytes[k]);
  json_builder_end_array (b);
  DOUBLE ("rounds-seconds", e->rounds_s);
  DOUBLE ("rounds-expected", e->rounds_expected);
  BOOLEAN ("disks-converge", e->disks_converge);
  DOUBLE ("disk-write-rate", e->disk_write_rate);
  DOUBLE ("backpressure-rate", e->backpressure_rate);
  BOOLEAN ("disks-converge-with-backpressure",
           e->disks_converge_with_backpressure);
  DOUBLE ("write-share", e->write_share);
  DOUBLE ("ram-throttle-percent", e->ram_throttle_percent);
  INT ("guest-latency-ms", e->guest_latency_ms);
  DOUBLE ("latency-before-us", e->latency_before_us);
  DOUBLE ("latency-copying-us", e->latency_copying_us);
  DOUBLE ("replication-rate", e->replication_rate);
  BOOLEAN ("compress-zstd", e->compress);
  DOUBLE ("compress-memory-seconds", e->compress_memory_s);
  if (e->compress_reason)
    STRING ("compress-reason", e->compress_reason);
  DOUBLE ("memory-seconds", e->memory_s);
  BOOLEAN ("memory-converges", e->memory_converges);
  DOUBLE ("stop-flush-seconds", e->stop_flush_s);
  DOUBLE ("downtime-pause-seconds", e->downtime_pause_s);
  DOUBLE ("downtime-mirror-seconds", e->downtime_mirror_s);
  DOUBLE ("total-pause-seconds", e->total_pause_s);
  DOUBLE ("total-mirror-seconds", e->total_mirror_s);
  DOUBLE ("mirror-memory-seconds", e->mirror_memory_s);
  DOUBLE ("downtime-auto-seconds", e->downtime_auto_s);
  DOUBLE ("total-auto-seconds", e->total_auto_s);
  STRING ("auto-final-sync", e->auto_mirror ? "mirror" : "pause");
  INT ("auto-rounds", e->auto_rounds);
  DOUBLE ("catchup-mirror-seconds", e->catchup_s_mirror);
  DOUBLE ("auto-catchup-seconds", e->auto_catchup_s);
  DOUBLE ("auto-memory-seconds", e->auto_memory_s);
  DOUBLE ("offline-seconds", e->offline_s);
  DOUBLE ("seed-seconds", e->seed_s);
  INT ("seed-device-bytes", e->seed_device_bytes);
  DOUBLE ("seed-period-seconds", e->seed_period_s);
  INT ("seed-link-bytes", e->seed_link_bytes);
  STRING ("method", vms_estimate_method_name (e->method));
  STRING ("final-sync",
          e->downtime_mirror_s < e->downtime_pause_s ? "mirror" : "pause");
  STRING ("reason", e->reason);
  json_builder_end_object (b);
}

static void
build_vm (JsonBuilder *b, const VmsEstimateFileVm *vm)
{
  json_builder_begin_object (b);
  STRING ("source", vm->source);
  STRING ("vm-name", vm->vm_name);
  STRING ("vm-uuid", vm->vm_uuid);
  INT ("ram-size", vm->ram_size);
  DOUBLE ("ram-nonzero-share", vm->ram_nonzero);
  DOUBLE ("ram-zstd-ratio", vm->ram_zstd_ratio);
  DOUBLE ("ram-zstd-rate", vm->ram_zstd_rate);
  DOUBLE ("ram-dirty-rate", vm->ram_dirty_rate);
  DOUBLE ("ram-dirty-long-rate", vm->ram_dirty_long_rate);
  DOUBLE ("ram-dirty-long-seconds", vm->ram_dirty_long_s);
  DOUBLE ("throughput", vm->throughput);
  DOUBLE ("setup-seconds", vm->setup_s);
  MEMBER ("disks");
  json_builder_begin_array (b);
  for (guint i = 0; i < vm->disks->len; i++)
    build_disk (b, vm->disks->pdata[i]);
  json_builder_end_array (b);
  build_prediction (b, &vm->prediction);
  json_builder_end_object (b);
}

static void
build_group (JsonBuilder *b, const VmsEstimateFile *estimate)
{
  MEMBER ("group");
  json_builder_begin_object (b);
  MEMBER ("order");
  json_builder_begin_array (b);
  for (guint v = 0; estimate->order && v < estimate->vms->len; v++)
    {
      const VmsEstimateFileVm *vm = estimate->vms->pdata[estimate->order[v]];

      json_builder_add_string_value (b, vm->source);
    }
  json_builder_end_array (b);
  DOUBLE ("total-seconds", estimate->group_s);
  json_builder_end_object (b);
}

JsonNode *
vms_estimate_file_to_json (const VmsEstimateFile *estimate)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();

  json_builder_begin_object (b);
  STRING ("id", estimate->id);
  INT ("created", estimate->created);
  INT ("window-seconds", estimate->window_s);
  INT ("interval-seconds", estimate->interval_s);
  build_link (b, estimate);
  build_steps (b, &estimate->steps);
  MEMBER ("vms");
  json_builder_begin_array (b);
  for (guint v = 0; v < estimate->vms->len; v++)
    build_vm (b, estimate->vms->pdata[v]);
  json_builder_end_array (b);
  build_group (b, estimate);
  json_builder_end_object (b);
  return json_builder_get_root (b);
}

#undef MEMBER
#undef INT
#undef DOUBLE
#undef STRING
#undef BOOLEAN

gboolean
vms_estimate_file_save (const VmsEstimateFile *estimate, const char *state_dir,
                        GError **error)
{
  g_autofree char *path = vms_estimate_file_path (state_dir, estimate->id);
  g_autoptr (JsonNode) root = vms_estimate_file_to_json (estimate);
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (GError) write_error = NULL;
  g_autofree char *text = NULL;

  json_generator_set_root (generator, root);
  json_generator_set_pretty (generator, TRUE);
  text = json_generator_to_data (generator, NULL);
  if (!vms_file_replace_durably (path, text, 0600, &write_error))
    {
      g_set_error (error, VMS_ESTIMATE_FILE_ERROR, VMS_ESTIMATE_FILE_ERROR_IO,
                   "cannot save %s: %s", path, write_error->message);
      return FALSE;
    }
  return TRUE;
}

/* ---- reading ---- */

/* Parse the estimate id into parser, with the error saying which
 * estimate. */
static gboolean
load_file (JsonParser *parser, const char *state_dir, const char *id,
           GError **error)
{
  g_autofree char *path = vms_estimate_file_path (state_dir, id);
  g_autoptr (GError) load_error = NULL;
  VmsEstimateFileError code;

  if (json_parser_load_from_file (parser, path, &load_error))
    return TRUE;
  if (g_error_matches (load_error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
    code = VMS_ESTIMATE_FILE_ERROR_NOT_FOUND;
  else if (load_error->domain == G_FILE_ERROR)
    code = VMS_ESTIMATE_FILE_ERROR_IO;
  else
    code = VMS_ESTIMATE_FILE_ERROR_CORRUPT;
  g_set_error (error, VMS_ESTIMATE_FILE_ERROR, code, "estimate %s: %s", id,
               load_error->message);
  return FALSE;
}

/* Members of the file as read, whatever their type: a file of another
 * shape gives NULL, "" or 0 (json-glib's getters would complain). */
static JsonNode *
member_of_type (JsonObject *object, const char *member, JsonNodeType type)
{
  JsonNode *node = object ? json_object_get_member (object, member) : NULL;

  return node && JSON_NODE_TYPE (node) == type ? node : NULL;
}

static JsonObject *
object_member (JsonObject *object, const char *member)
{
  JsonNode *node = member_of_type (object, member, JSON_NODE_OBJECT);

  return node ? json_node_get_object (node) : NULL;
}

/* A missing text reads as empty: an estimate from an older vmshift. */
static const char *
text_member (JsonObject *object, const char *member)
{
  const char *text = vms_json_string_member (object, member);

  return text ? text : "";
}

static double
number_member (JsonObject *object, const char *member)
{
  JsonNode *node = member_of_type (object, member, JSON_NODE_VALUE);
  GType type = node ? json_node_get_value_type (node) : G_TYPE_INVALID;

  /* json-glib reads an integer as a double too. */
  return type == G_TYPE_DOUBLE || type == G_TYPE_INT64
             ? json_node_get_double (node)
             : 0;
}

/* Whether the estimate's entry vm is the VM asked for.  QEMU reports an
 * all-zero UUID for a VM started without -uuid: such VMs are told apart by
 * name, and unnamed ones by the QMP address they were estimated at. */
static gboolean
vm_matches (JsonObject *vm, const char *vm_uuid, const char *vm_name,
            const char *source)
{
  const char *uuid = text_member (vm, "vm-uuid");
  const char *name = text_member (vm, "vm-name");

  if (*uuid && !g_str_equal (uuid, NO_UUID))
    return g_str_equal (uuid, vm_uuid);
  if (*name)
    return g_str_equal (name, vm_name);
  return g_str_equal (text_member (vm, "source"), source);
}

/* Each disk's granularity: a migration that reports against the
 * prediction says whether it copies the same bits. */
static void
read_granularities (JsonObject *vm, VmsPrediction *out)
{
  JsonNode *disks = member_of_type (vm, "disks", JSON_NODE_ARRAY);
  JsonArray *array = disks ? json_node_get_array (disks) : NULL;

  out->granularities
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (guint i = 0; array && i < json_array_get_length (array); i++)
    {
      JsonNode *node = json_array_get_element (array, i);
      JsonObject *disk
          = JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
      double granularity = number_member (disk, "granularity");

      /* Files written before the granularity was recorded observed with
       * QEMU's default, but say nothing: no claim is made for them. */
      if (granularity >= 1 && granularity <= G_MAXUINT32
          && *text_member (disk, "name"))
        g_hash_table_insert (out->granularities,
                             g_strdup (text_member (disk, "name")),
                             GUINT_TO_POINTER ((guint)granularity));
    }
}

void
vms_prediction_clear (VmsPrediction *prediction)
{
  g_clear_pointer (&prediction->granularities, g_hash_table_unref);
  memset (prediction, 0, sizeof *prediction);
}

static void
read_prediction (JsonObject *prediction, JsonObject *link, VmsPrediction *out)
{
  out->total_pause_s = number_member (prediction, "total-pause-seconds");
  out->total_mirror_s = number_member (prediction, "total-mirror-seconds");
  out->downtime_pause_s = number_member (prediction, "downtime-pause-seconds");
  out->downtime_mirror_s
      = number_member (prediction, "downtime-mirror-seconds");
  /* Estimates from before auto was predicted have pause's figures. */
  out->total_auto_s = number_member (prediction, "total-auto-seconds");
  out->downtime_auto_s = number_member (prediction, "downtime-auto-seconds");
  if (out->total_auto_s <= 0)
    {
      out->total_auto_s = out->total_pause_s;
      out->downtime_auto_s = out->downtime_pause_s;
    }
  out->connections = number_member (link, "connections");
  out->request_size = number_member (link, "request-size");
  out->compress_zstd = prediction
                       && json_object_get_boolean_member_with_default (
                           prediction, "compress-zstd", FALSE);
  out->backpressure_rate
      = MAX (number_member (prediction, "backpressure-rate"), 0);
  out->guest_latency_ms = CLAMP (number_member (prediction, "guest-latency-ms"),
                                 0, VMS_BACKPRESSURE_OPTION_MAX_LATENCY_MS);
  out->replication_rate
      = MAX (number_member (prediction, "replication-rate"), 0);
}

/* The first VM of vms that is the one asked for and has a prediction
 * into *found, or NULL; FALSE if an entry is not a VM at all. */
static gboolean
find_vm (JsonArray *vms, const char *vm_uuid, const char *vm_name,
         const char *source, JsonObject **found)
{
  *found = NULL;
  for (guint i = 0; i < json_array_get_length (vms); i++)
    {
      JsonNode *node = json_array_get_element (vms, i);
      JsonObject *vm;

      if (!JSON_NODE_HOLDS_OBJECT (node))
        return FALSE;
      vm = json_node_get_object (node);
      if (object_member (vm, "prediction")
          && vm_matches (vm, vm_uuid, vm_name, source))
        {
          *found = vm;
          return TRUE;
        }
    }
  return TRUE;
}

gboolean
vms_estimate_file_load_prediction (const char *state_dir, const char *id,
                                   const char *vm_uuid, const char *vm_name,
                                   const char *source, VmsPrediction *out,
                                   GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) id_error = NULL;
  JsonNode *root, *vms;
  JsonObject *top, *link, *vm = NULL;

  if (!vms_job_id_is_valid (id, &id_error))
    {
      g_set_error_literal (error, VMS_ESTIMATE_FILE_ERROR,
                           VMS_ESTIMATE_FILE_ERROR_INVALID_ID,
                           id_error->message);
      return FALSE;
    }
  if (!load_file (parser, state_dir, id, error))
    return FALSE;
  root = json_parser_get_root (parser);
  top = root && JSON_NODE_HOLDS_OBJECT (root) ? json_node_get_object (root)
                                              : NULL;
  link = object_member (top, "link");
  vms = member_of_type (top, "vms", JSON_NODE_ARRAY);
  if (!link || !vms
      || !find_vm (json_node_get_array (vms), vm_uuid, vm_name, source, &vm))
    {
      g_autofree char *path = vms_estimate_file_path (state_dir, id);

      g_set_error (error, VMS_ESTIMATE_FILE_ERROR,
                   VMS_ESTIMATE_FILE_ERROR_CORRUPT,
                   "estimate %s: %s is not an estimate", id, path);
      return FALSE;
    }
  if (!vm)
    {
      g_set_error (error, VMS_ESTIMATE_FILE_ERROR,
                   VMS_ESTIMATE_FILE_ERROR_NO_VM,
                   "estimate %s has no prediction for VM '%s' (uuid %s)", id,
                   vm_name, vm_uuid);
      return FALSE;
    }
  vms_prediction_clear (out);
  read_prediction (object_member (vm, "prediction"), link, out);
  read_granularities (vm, out);
  return TRUE;
}

char **
vms_estimate_file_load_order (const char *state_dir, const char *id,
                              GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) id_error = NULL;
  g_autoptr (GStrvBuilder) order = g_strv_builder_new ();
  JsonNode *root, *sources;
  JsonArray *array;

  if (!vms_job_id_is_valid (id, &id_error))
    {
      g_set_error_literal (error, VMS_ESTIMATE_FILE_ERROR,
                           VMS_ESTIMATE_FILE_ERROR_INVALID_ID,
                           id_error->message);
      return NULL;
    }
  if (!load_file (parser, state_dir, id, error))
    return NULL;
  root = json_parser_get_root (parser);
  sources = member_of_type (object_member (root && JSON_NODE_HOLDS_OBJECT (root)
                                               ? json_node_get_object (root)
                                               : NULL,
                                           "group"),
                            "order", JSON_NODE_ARRAY);
  if (!sources)
    {
      g_autofree char *path = vms_estimate_file_path (state_dir, id);

      g_set_error (error, VMS_ESTIMATE_FILE_ERROR,
                   VMS_ESTIMATE_FILE_ERROR_CORRUPT,
                   "estimate %s: %s holds no order of its VMs", id, path);
      return NULL;
    }
  array = json_node_get_array (sources);
  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      JsonNode *node = json_array_get_element (array, i);

      if (JSON_NODE_HOLDS_VALUE (node)
          && json_node_get_value_type (node) == G_TYPE_STRING)
        g_strv_builder_add (order, json_node_get_string (node));
    }
  return g_strv_builder_end (order);
}
