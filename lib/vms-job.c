/* vmshift: the state of a job, kept so that no work is done twice.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-job.h"
#include "vms-file.h"
#include "vms-path.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <json-glib/json-glib.h>

G_DEFINE_QUARK (vms - job - error - quark, vms_job_error)

static const char *const phase_names[]
    = { "copying", "synced", "migrating", "rolled-back", "migrated" };

const char *
vms_job_phase_name (VmsJobPhase phase)
{
  return phase < G_N_ELEMENTS (phase_names) ? phase_names[phase] : "unknown";
}

char *
vms_job_default_state_dir (void)
{
  if (geteuid () == 0)
    return g_strdup ("/var/lib/vmshift");
  return g_build_filename (g_get_user_state_dir (), "vmshift", NULL);
}

gboolean
vms_job_id_is_valid (const char *id, GError **error)
{
  gsize length = strlen (id);

  for (gsize i = 0; i < length; i++)
    if (!g_ascii_isalnum (id[i]) && id[i] != '-' && id[i] != '_'
        && id[i] != '.')
      {
        g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_INVALID,
                     "job id may hold letters, digits, '-', '_' and '.' "
                     "only");
        return FALSE;
      }
  if (length == 0 || length > VMS_JOB_MAX_ID || id[0] == '.' || id[0] == '-')
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_INVALID,
                   "job id must have 1 to %d characters and not start with "
                   "'.' or '-'",
                   VMS_JOB_MAX_ID);
      return FALSE;
    }
  return TRUE;
}

char *
vms_job_default_id (const char *vm_name, gint64 seconds, guint attempt)
{
  /* Room for "-SECONDS-ATTEMPT" after the name. */
  const gsize max_name = VMS_JOB_MAX_ID - 2 * 21;
  g_autoptr (GString) name = g_string_new (NULL);

  for (const char *p = vm_name; *p && name->len < max_name; p++)
    g_string_append_c (
        name,
        g_ascii_isalnum (*p) || *p == '-' || *p == '_' || *p == '.' ? *p : '_');
  if (name->len == 0 || name->str[0] == '.' || name->str[0] == '-')
    g_string_prepend (name, "vm");
  g_string_append_printf (name, "-%" G_GINT64_FORMAT, seconds);
  if (attempt > 0)
    g_string_append_printf (name, "-%u", attempt);
  return g_string_free (g_steal_pointer (&name), FALSE);
}

gboolean
vms_job_check_state_dir (const char *state_dir, GError **error)
{
  g_autofree char *probe = g_build_filename (state_dir, ".probe-XXXXXX", NULL);
  int fd, saved;

  if (g_mkdir_with_parents (state_dir, 0700) < 0)
    {
      saved = errno;
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_IO,
                   "cannot create state directory %s: %s (give another "
                   "with --state-dir)",
                   state_dir, g_strerror (saved));
      return FALSE;
    }
  /* access(2) would say yes to root on a read-only file system. */
  fd = g_mkstemp_full (probe, O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0)
    {
      saved = errno;
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_IO,
                   "cannot write job state in %s: %s (give another "
                   "directory with --state-dir)",
                   state_dir, g_strerror (saved));
      return FALSE;
    }
  close (fd);
  unlink (probe);
  return TRUE;
}

static void
disk_free (gpointer data)
{
  VmsJobDisk *disk = data;

  g_free (disk->name);
  g_free (disk->node);
  g_free (disk->format);
  g_free (disk->replica);
  g_free (disk->recording_bitmap);
  g_free (disk->copying_bitmap);
  g_free (disk->granularity_reason);
  if (disk->throttle_original)
    json_object_unref (disk->throttle_original);
  g_free (disk);
}

VmsJob *
vms_job_new (const char *state_dir, const char *id)
{
  VmsJob *job = g_new0 (VmsJob, 1);

  job->id = g_strdup (id);
  job->state_dir = g_strdup (state_dir);
  job->disks = g_ptr_array_new_with_free_func (disk_free);
  job->created = g_get_real_time () / G_USEC_PER_SEC;
  job->vm_name = g_strdup ("");
  job->vm_uuid = g_strdup ("");
  return job;
}

static void
migration_free (VmsJobMigration *migration)
{
  if (!migration)
    return;
  g_free (migration->dest_qmp);
  g_free (migration->dest_uri);
  g_free (migration->final_sync);
  g_free (migration->state);
  g_free (migration->last_error);
  g_free (migration->estimate);
  if (migration->libvirt)
    json_object_unref (migration->libvirt);
  g_free (migration);
}

VmsJobMigration *
vms_job_get_migration (VmsJob *job)
{
  if (!job->migration)
    job->migration = g_new0 (VmsJobMigration, 1);
  return job->migration;
}

void
vms_job_free (VmsJob *job)
{
  if (!job)
    return;
  migration_free (job->migration);
  g_ptr_array_unref (job->disks);
  g_free (job->id);
  g_free (job->state_dir);
  g_free (job->source);
  g_free (job->sink);
  g_free (job->vm_name);
  g_free (job->vm_uuid);
  g_free (job);
}

VmsJobDisk *
vms_job_add_disk (VmsJob *job, const char *name)
{
  VmsJobDisk *disk = g_new0 (VmsJobDisk, 1);

  disk->name = g_strdup (name);
  g_ptr_array_add (job->disks, disk);
  return disk;
}

VmsJobDisk *
vms_job_find_disk (VmsJob *job, const char *name)
{
  for (guint i = 0; i < job->disks->len; i++)
    {
      VmsJobDisk *disk = job->disks->pdata[i];

      if (g_str_equal (disk->name, name))
        return disk;
    }
  return NULL;
}

static char *
job_path (const char *state_dir, const char *id)
{
  g_autofree char *file = g_strconcat (id, ".json", NULL);

  return g_build_filename (state_dir, file, NULL);
}

/* Serialisation: one helper per type keeps the field list readable. */
static void
put_string (JsonBuilder *builder, const char *name, const char *value)
{
  json_builder_set_member_name (builder, name);
  if (value)
    json_builder_add_string_value (builder, value);
  else
    json_builder_add_null_value (builder);
}

static void
put_int (JsonBuilder *builder, const char *name, gint64 value)
{
  json_builder_set_member_name (builder, name);
  json_builder_add_int_value (builder, value);
}

static void
put_bool (JsonBuilder *builder, const char *name, gboolean value)
{
  json_builder_set_member_name (builder, name);
  json_builder_add_boolean_value (builder, value);
}

static void
build_disk (JsonBuilder *builder, const VmsJobDisk *disk)
{
  json_builder_begin_object (builder);
  put_string (builder, "name", disk->name);
  put_string (builder, "node", disk->node);
  put_string (builder, "format", disk->format);
  put_int (builder, "size", disk->size);
  put_string (builder, "replica", disk->replica);
  put_bool (builder, "persistent", disk->persistent);
  put_int (builder, "round", disk->round);
  put_string (builder, "recording-bitmap", disk->recording_bitmap);
  put_string (builder, "copying-bitmap", disk->copying_bitmap);
  put_int (builder, "round-dirty", disk->round_dirty);
  put_int (builder, "watermark", disk->watermark);
  put_int (builder, "last-round-dirty", disk->last_round_dirty);
  put_int (builder, "bytes-read", disk->bytes_read);
  put_int (builder, "bytes-written", disk->bytes_written);
  put_int (builder, "bytes-zeroed", disk->bytes_zeroed);
  put_int (builder, "resumed-from", disk->resumed_from);
  put_int (builder, "bytes-background", disk->bytes_background);
  put_int (builder, "bytes-rounds", disk->bytes_rounds);
  put_int (builder, "bytes-final", disk->bytes_final);
  put_int (builder, "reconnects", disk->reconnects);
  put_int (builder, "bytes-resent", disk->bytes_resent);
  put_int (builder, "bytes-matched", disk->bytes_matched);
  put_bool (builder, "compare-all", disk->compare_all);
  put_int (builder, "granularity", disk->granularity);
  put_string (builder, "granularity-reason", disk->granularity_reason);
  put_int (builder, "throttle-bps-wr", disk->throttle_bps_wr);
  if (disk->throttle_original)
    {
      JsonNode *node = json_node_new (JSON_NODE_OBJECT);

      json_node_set_object (node, disk->throttle_original);
      json_builder_set_member_name (builder, "throttle-original");
      json_builder_add_value (builder, node);
    }
  json_builder_end_object (builder);
}

static char *
serialise (const VmsJob *job)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;

  json_builder_begin_object (builder);
  put_int (builder, "version", 1);
  put_string (builder, "id", job->id);
  put_string (builder, "source", job->source);
  put_string (builder, "sink", job->sink);
  put_string (builder, "vm-name", job->vm_name);
  put_string (builder, "vm-uuid", job->vm_uuid);
  put_string (builder, "phase", vms_job_phase_name (job->phase));
  put_int (builder, "runs", job->runs);
  put_int (builder, "created", job->created);
  put_int (builder, "updated", job->updated);
  json_builder_set_member_name (builder, "disks");
  json_builder_begin_array (builder);
  for (guint i = 0; i < job->disks->len; i++)
    build_disk (builder, job->disks->pdata[i]);
  json_builder_end_array (builder);
  if (job->migration)
    {
      const VmsJobMigration *migration = job->migration;

      json_builder_set_member_name (builder, "migration");
      json_builder_begin_object (builder);
      put_string (builder, "dest-qmp", migration->dest_qmp);
      put_string (builder, "dest-uri", migration->dest_uri);
      put_string (builder, "final-sync", migration->final_sync);
      put_string (builder, "state", migration->state);
      put_string (builder, "last-error", migration->last_error);
      put_int (builder, "pid", migration->pid);
      put_int (builder, "attempts", migration->attempts);
      put_string (builder, "estimate", migration->estimate);
      put_bool (builder, "tls", migration->tls);
      if (migration->libvirt)
        {
          JsonNode *node = json_node_new (JSON_NODE_OBJECT);

          json_node_set_object (node, migration->libvirt);
          json_builder_set_member_name (builder, "libvirt");
          json_builder_add_value (builder, node);
        }
      json_builder_end_object (builder);
    }
  json_builder_end_object (builder);

  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  json_generator_set_pretty (generator, TRUE);
  return json_generator_to_data (generator, NULL);
}

gboolean
vms_job_save (VmsJob *job, GError **error)
{
  g_autofree char *path = job_path (job->state_dir, job->id);
  g_autofree char *text = NULL;
  g_autoptr (GError) write_error = NULL;

  job->saved = FALSE;
  if (g_mkdir_with_parents (job->state_dir, 0700) < 0)
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_IO,
                   "cannot create state directory %s: %s", job->state_dir,
                   g_strerror (errno));
      return FALSE;
    }
  job->updated = g_get_real_time () / G_USEC_PER_SEC;
  text = serialise (job);
  job->saved = vms_file_replace_durably (path, text, 0600, &write_error);
  if (!job->saved)
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_IO,
                   "cannot save job state: %s", write_error->message);
      return FALSE;
    }
  return TRUE;
}

gboolean
vms_job_save_new (VmsJob *job, GError **error)
{
  g_autofree char *path = job_path (job->state_dir, job->id);
  g_autofree char *text = NULL;
  g_autoptr (GError) write_error = NULL;

  if (!vms_job_id_is_valid (job->id, error))
    return FALSE;
  if (g_mkdir_with_parents (job->state_dir, 0700) < 0)
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_IO,
                   "cannot create state directory %s: %s", job->state_dir,
                   g_strerror (errno));
      return FALSE;
    }
  job->updated = g_get_real_time () / G_USEC_PER_SEC;
  text = serialise (job);
  job->saved = vms_file_create_durably (path, text, 0600, &write_error);
  if (g_error_matches (write_error, G_FILE_ERROR, G_FILE_ERROR_EXIST))
    g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_EXISTS,
                 "job %s exists; continue it with --resume %s", job->id,
                 job->id);
  else if (!job->saved)
    g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_IO,
                 "cannot save job state: %s", write_error->message);
  return job->saved;
}

/* Loading: members are checked for type; a file that does not hold what
 * we wrote is refused rather than half-trusted.  Paths are saved absolute;
 * a file written before they were may hold relative ones, which meant the
 * directory vmshift ran in: they are resolved against the current one, as
 * they were then, and saved absolute by the next save. */
typedef struct
{
  JsonObject *object; /* what is being read */
  const char *path;   /* for messages */
  gboolean ok;        /* no member was missing or mistyped */
} Reader;

static const char *
get_string (Reader *reader, const char *name, gboolean nullable)
{
  JsonNode *node = json_object_get_member (reader->object, name);

  if (node && JSON_NODE_HOLDS_NULL (node) && nullable)
    return NULL;
  if (!node || !JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_STRING)
    {
      reader->ok = FALSE;
      return NULL;
    }
  return json_node_get_string (node);
}

static gint64
get_int (Reader *reader, const char *name)
{
  JsonNode *node = json_object_get_member (reader->object, name);

  if (!node || !JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_INT64
      || json_node_get_int (node) < 0)
    {
      reader->ok = FALSE;
      return 0;
    }
  return json_node_get_int (node);
}

/* Members added after version 1 was first written: absent means 0. */
static gint64
get_int_optional (Reader *reader, const char *name)
{
  return json_object_has_member (reader->object, name) ? get_int (reader, name)
                                                       : 0;
}

static const char *
get_string_optional (Reader *reader, const char *name)
{
  return json_object_has_member (reader->object, name)
             ? get_string (reader, name, TRUE)
             : NULL;
}

static gboolean
get_bool (Reader *reader, const char *name)
{
  JsonNode *node = json_object_get_member (reader->object, name);

  if (!node || !JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_BOOLEAN)
    {
      reader->ok = FALSE;
      return FALSE;
    }
  return json_node_get_boolean (node);
}

static gboolean
read_disk (VmsJob *job, JsonNode *node, const char *path)
{
  Reader reader = { NULL, path, TRUE };
  VmsJobDisk *disk;
  gint64 granularity;

  if (!JSON_NODE_HOLDS_OBJECT (node))
    return FALSE;
  reader.object = json_node_get_object (node);
  disk = vms_job_add_disk (job, "");
  g_free (disk->name);
  disk->name = g_strdup (get_string (&reader, "name", FALSE));
  disk->node = g_strdup (get_string (&reader, "node", FALSE));
  disk->format = g_strdup (get_string (&reader, "format", FALSE));
  disk->size = get_int (&reader, "size");
  disk->replica = g_strdup (get_string (&reader, "replica", FALSE));
  disk->persistent = get_bool (&reader, "persistent");
  disk->round = get_int (&reader, "round");
  disk->recording_bitmap
      = g_strdup (get_string (&reader, "recording-bitmap", TRUE));
  disk->copying_bitmap
      = g_strdup (get_string (&reader, "copying-bitmap", TRUE));
  disk->round_dirty = get_int (&reader, "round-dirty");
  disk->watermark = get_int (&reader, "watermark");
  disk->last_round_dirty = get_int (&reader, "last-round-dirty");
  disk->bytes_read = get_int (&reader, "bytes-read");
  disk->bytes_written = get_int (&reader, "bytes-written");
  disk->bytes_zeroed = get_int (&reader, "bytes-zeroed");
  disk->resumed_from = get_int (&reader, "resumed-from");
  disk->bytes_background = get_int_optional (&reader, "bytes-background");
  disk->bytes_rounds = get_int_optional (&reader, "bytes-rounds");
  disk->bytes_final = get_int_optional (&reader, "bytes-final");
  disk->reconnects = get_int_optional (&reader, "reconnects");
  disk->bytes_resent = get_int_optional (&reader, "bytes-resent");
  disk->bytes_matched = get_int_optional (&reader, "bytes-matched");
  disk->compare_all = json_object_has_member (reader.object, "compare-all")
                      && get_bool (&reader, "compare-all");
  granularity = get_int_optional (&reader, "granularity");
  disk->granularity = (guint32)granularity;
  disk->granularity_reason
      = g_strdup (get_string_optional (&reader, "granularity-reason"));
  disk->throttle_bps_wr = get_int_optional (&reader, "throttle-bps-wr");
  if (json_object_has_member (reader.object, "throttle-original"))
    {
      JsonNode *original
          = json_object_get_member (reader.object, "throttle-original");

      if (!JSON_NODE_HOLDS_OBJECT (original))
        return FALSE;
      disk->throttle_original
          = json_object_ref (json_node_get_object (original));
    }
  /* QEMU's limits: a power of two, at most 2 GiB. */
  return reader.ok && disk->watermark <= disk->size
         && granularity <= (G_GINT64_CONSTANT (1) << 31)
         && (granularity & (granularity - 1)) == 0;
}

VmsJob *
vms_job_load (const char *state_dir, const char *id, GError **error)
{
  g_autofree char *path = job_path (state_dir, id);
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  g_autoptr (GError) load_error = NULL;
  g_autoptr (VmsJob) job = NULL;
  Reader reader = { NULL, path, TRUE };
  const char *phase;
  JsonNode *root, *disks;

  if (!vms_job_id_is_valid (id, error))
    return NULL;
  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_NOT_FOUND,
                   "no job '%s' in %s", id, state_dir);
      return NULL;
    }
  if (!json_parser_load_from_mapped_file (parser, path, &load_error))
    {
      g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_CORRUPT,
                   "job state %s: %s", path, load_error->message);
      return NULL;
    }
  root = json_parser_get_root (parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root))
    goto corrupt;
  reader.object = json_node_get_object (root);
  job = vms_job_new (state_dir, id);
  if (get_int (&reader, "version") != 1
      || g_strcmp0 (get_string (&reader, "id", FALSE), id) != 0)
    goto corrupt;
  job->source
      = vms_path_absolute_qmp_address (get_string (&reader, "source", FALSE));
  /* None for a job seeded to a device until a resume names the sink. */
  job->sink = vms_path_absolute_sink_uri (get_string (&reader, "sink", TRUE));
  g_free (job->vm_name);
  job->vm_name = g_strdup (get_string (&reader, "vm-name", FALSE));
  g_free (job->vm_uuid);
  job->vm_uuid = g_strdup (get_string (&reader, "vm-uuid", FALSE));
  phase = get_string (&reader, "phase", FALSE);
  job->phase = VMS_JOB_PHASE_COPYING;
  for (guint i = 0; phase && i < G_N_ELEMENTS (phase_names); i++)
    if (g_str_equal (phase, phase_names[i]))
      job->phase = i;
  job->runs = get_int (&reader, "runs");
  job->created = get_int (&reader, "created");
  job->updated = get_int (&reader, "updated");
  if (json_object_has_member (reader.object, "migration"))
    {
      JsonNode *node = json_object_get_member (reader.object, "migration");
      Reader part = { NULL, path, TRUE };
      VmsJobMigration *migration = vms_job_get_migration (job);

      if (!JSON_NODE_HOLDS_OBJECT (node))
        goto corrupt;
      part.object = json_node_get_object (node);
      migration->dest_qmp = vms_path_absolute_qmp_address (
          get_string (&part, "dest-qmp", TRUE));
      migration->dest_uri = vms_path_absolute_migration_uri (
          get_string (&part, "dest-uri", TRUE));
      migration->final_sync = g_strdup (get_string (&part, "final-sync", TRUE));
      migration->state = g_strdup (get_string (&part, "state", TRUE));
      migration->last_error = g_strdup (get_string (&part, "last-error", TRUE));
      migration->pid = get_int (&part, "pid");
      migration->attempts = get_int (&part, "attempts");
      migration->estimate = g_strdup (get_string (&part, "estimate", TRUE));
      /* Absent in jobs of a vmshift before it was saved: clear text. */
      migration->tls = json_object_has_member (part.object, "tls")
                       && get_bool (&part, "tls");
      if (json_object_has_member (part.object, "libvirt"))
        {
          JsonNode *libvirt = json_object_get_member (part.object, "libvirt");

          if (!JSON_NODE_HOLDS_OBJECT (libvirt))
            goto corrupt;
          migration->libvirt = json_object_ref (json_node_get_object (libvirt));
        }
      if (!part.ok)
        goto corrupt;
    }
  disks = json_object_get_member (reader.object, "disks");
  if (!reader.ok || !disks || !JSON_NODE_HOLDS_ARRAY (disks))
    goto corrupt;
  for (guint i = 0; i < json_array_get_length (json_node_get_array (disks));
       i++)
    if (!read_disk (
            job, json_array_get_element (json_node_get_array (disks), i), path))
      goto corrupt;
  job->saved = TRUE;
  return g_steal_pointer (&job);

corrupt:
  g_set_error (error, VMS_JOB_ERROR, VMS_JOB_ERROR_CORRUPT,
               "job state %s is damaged or from another version", path);
  return NULL;
}
