/* nbdkit-vmshift-plugin: the destination sink of vmshift.
 *
 * Serves a directory of replicas, one NBD export per replica, plus the
 * special exports described in vmshift-sink(8): NAME@create=SIZE,
 * NAME@live, NAME@live-reset, NAME@handover, NAME@hashes, NAME@commit and
 * @probe.  This
 * file is only the nbdkit glue; replicas, export names and hashes live in
 * their modules.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-config.h"
#include "vms-sink-name.h"
#include "vms-sink-hash.h"
#include "vms-sink-replica.h"

#include <errno.h>
#include <stdio.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

/* Plugin configuration, set by config and config_complete, read-only
 * afterwards (nbdkit calls those before any connection). */
static char *config_dir;          /* dir=: the replica directory */
static GPtrArray *config_devices; /* device=NAME:PATH, as given */
static guint64 hash_chunk = VMS_SINK_HASH_CHUNK_DEFAULT; /* hash-chunk= */
static VmsSinkStore *store;                              /* the replicas */
static char *description; /* the host's boot, in every replica's export
                             description */

typedef struct
{
  VmsSinkNameKind kind;    /* which export this connection opened */
  VmsSinkReplica *replica; /* NULL for the probe */
  gboolean readonly;       /* nbdkit -r, or a read-only export */
  guint64 hash_chunk;      /* @hashes: bytes per hash */
  char *description;       /* the export's description, or NULL */
} Handle;

/* Report err (an errno value) and the error's message to nbdkit. */
static int
fail (int err, GError *error)
{
  nbdkit_error ("%s", error ? error->message : g_strerror (err));
  g_clear_error (&error);
  nbdkit_set_error (err);
  return -1;
}

/* What the store did on its own, in nbdkit's log like the commits. */
static void
notice (const char *message)
{
  nbdkit_debug ("%s", message);
}

static void
vmshift_unload (void)
{
  g_free (description);
  vms_sink_store_free (store);
  g_free (config_dir);
  if (config_devices)
    g_ptr_array_unref (config_devices);
}

static int
vmshift_config (const char *key, const char *value)
{
  if (g_str_equal (key, "dir"))
    {
      g_free (config_dir);
      config_dir = nbdkit_realpath (value);
      return config_dir ? 0 : -1;
    }
  if (g_str_equal (key, "device"))
    {
      if (!strchr (value, ':'))
        {
          nbdkit_error ("device=%s: expected device=NAME:PATH", value);
          return -1;
        }
      if (!config_devices)
        config_devices = g_ptr_array_new_with_free_func (g_free);
      g_ptr_array_add (config_devices, g_strdup (value));
      return 0;
    }
  if (g_str_equal (key, "hash-chunk"))
    {
      int64_t size = nbdkit_parse_size (value);

      if (size < VMS_SINK_HASH_CHUNK_MIN || size > VMS_SINK_HASH_CHUNK_MAX
          || (size & (size - 1)) != 0)
        {
          nbdkit_error ("hash-chunk=%s: want a power of two from %d to %d",
                        value, VMS_SINK_HASH_CHUNK_MIN,
                        VMS_SINK_HASH_CHUNK_MAX);
          return -1;
        }
      hash_chunk = size;
      return 0;
    }
  nbdkit_error ("unknown parameter '%s' (see vmshift-sink(8))", key);
  return -1;
}

/* Writes the sink acknowledged sit in this host's page cache until a
 * FLUSH: they outlive nbdkit, not the host's boot.  The description says
 * which boot, so that a client connecting again after a lost connection
 * knows whether they are still here (lib/vms-copy.c). */
static char *
export_description (void)
{
  g_autofree char *boot_id = NULL;

  if (!g_file_get_contents ("/proc/sys/kernel/random/boot_id", &boot_id, NULL,
                            NULL))
    return NULL;
  return g_strdup_printf ("writes kept while boot %s lasts",
                          g_strstrip (boot_id));
}

static int
vmshift_config_complete (void)
{
  g_autoptr (GError) error = NULL;

  if (!config_dir)
    {
      nbdkit_error ("you must supply the dir=<DIRECTORY> parameter");
      return -1;
    }
  store = vms_sink_store_new (config_dir, &error);
  if (!store)
    {
      nbdkit_error ("%s", error->message);
      return -1;
    }
  vms_sink_store_set_notice (store, notice);
  description = export_description ();
  for (guint i = 0; config_devices && i < config_devices->len; i++)
    {
      const char *spec = config_devices->pdata[i];
      const char *colon = strchr (spec, ':');
      g_autofree char *name = g_strndup (spec, colon - spec);

      if (!vms_sink_store_add_device (store, name, colon + 1, &error))
        {
          nbdkit_error ("device=%s: %s", spec, error->message);
          return -1;
        }
    }
  return 0;
}

#define vmshift_config_help                                                    \
  "dir=<DIRECTORY>     (required) Directory of replicas.\n"                    \
  "device=NAME:PATH    Serve replica NAME from block device PATH.\n"           \
  "hash-chunk=SIZE     Chunk size of NAME@hashes (default 1M)."

static void
vmshift_dump_plugin (void)
{
  printf ("vmshift_version=%s\n", VMS_VERSION);
  printf ("vmshift_exports=NAME,NAME@create=SIZE,NAME@live,"
          "NAME@live-noflush,NAME@live-reset,NAME@handover,"
          "NAME@hashes,NAME@commit,@probe\n");
  printf ("vmshift_hash=xxh3-128\n");
}

static int
vmshift_list_exports (int readonly, int is_tls, struct nbdkit_exports *exports)
{
  g_autoptr (GError) error = NULL;
  g_auto (GStrv) names
      = vms_sink_meta_list (vms_sink_store_get_dir (store), &error);

  if (!names)
    return fail (EIO, g_steal_pointer (&error));
  for (guint i = 0; names[i]; i++)
    if (nbdkit_add_export (exports, names[i], "vmshift replica") < 0)
      return -1;
  return 0;
}

static void *
vmshift_open (int readonly)
{
  g_auto (VmsSinkName) export_ = { 0 };
  g_autoptr (GError) error = NULL;
  Handle *handle;
  int err = 0;

  if (!vms_sink_name_parse (nbdkit_export_name (), &export_, &error))
    {
      fail (EINVAL, g_steal_pointer (&error));
      return NULL;
    }
  handle = g_new0 (Handle, 1);
  handle->kind = export_.kind;
  handle->readonly = readonly || export_.kind == VMS_SINK_NAME_KIND_HASHES
                     || export_.kind == VMS_SINK_NAME_KIND_COMMIT
                     || export_.kind == VMS_SINK_NAME_KIND_LIVE_RESET
                     || export_.kind == VMS_SINK_NAME_KIND_HANDOVER;
  /* A client comparing sub-blocks names its own chunk. */
  handle->hash_chunk = export_.kind == VMS_SINK_NAME_KIND_HASHES && export_.size
                           ? export_.size
                           : hash_chunk;
  if (export_.kind == VMS_SINK_NAME_KIND_PROBE)
    return handle;

  handle->replica = vms_sink_store_open (
      store, export_.replica, export_.kind == VMS_SINK_NAME_KIND_CREATE,
      export_.size, &err, &error);
  if (!handle->replica)
    goto failed;
  if (description)
    {
      g_autofree char *path = vms_sink_replica_dup_data_path (handle->replica);

      handle->description = vms_sink_name_describe (path, description);
    }
  if (export_.kind == VMS_SINK_NAME_KIND_COMMIT)
    {
      err = vms_sink_replica_commit (handle->replica, &error);
      if (err)
        goto failed;
      nbdkit_debug ("replica '%s' committed", export_.replica);
    }
  else if (export_.kind == VMS_SINK_NAME_KIND_LIVE_RESET)
    {
      err = vms_sink_replica_forget_live (handle->replica, &error);
      if (err)
        goto failed;
      nbdkit_debug ("replica '%s': live ranges forgotten", export_.replica);
    }
  return handle;

failed:
  fail (err, g_steal_pointer (&error));
  vms_sink_replica_unref (handle->replica);
  g_free (handle->description);
  g_free (handle);
  return NULL;
}

static void
vmshift_close (void *opaque)
{
  Handle *handle = opaque;

  vms_sink_replica_unref (handle->replica);
  g_free (handle->description);
  g_free (handle);
}

static int64_t
vmshift_get_size (void *opaque)
{
  Handle *handle = opaque;

  switch (handle->kind)
    {
    case VMS_SINK_NAME_KIND_PROBE:
      return VMS_SINK_NAME_PROBE_SIZE;
    case VMS_SINK_NAME_KIND_COMMIT:
    case VMS_SINK_NAME_KIND_LIVE_RESET:
    case VMS_SINK_NAME_KIND_HANDOVER:
      return 0;
    case VMS_SINK_NAME_KIND_HASHES:
      return vms_sink_hash_export_size (
          vms_sink_replica_get_size (handle->replica), handle->hash_chunk);
    default:
      return vms_sink_replica_get_size (handle->replica);
    }
}

static gboolean
is_live (Handle *handle)
{
  return handle->kind == VMS_SINK_NAME_KIND_LIVE
         || handle->kind == VMS_SINK_NAME_KIND_LIVE_NOFLUSH;
}

static gboolean
is_data (Handle *handle)
{
  return handle->kind == VMS_SINK_NAME_KIND_DATA
         || handle->kind == VMS_SINK_NAME_KIND_CREATE || is_live (handle);
}

static int
vmshift_can_write (void *opaque)
{
  Handle *handle = opaque;

  return !handle->readonly
         && (is_data (handle) || handle->kind == VMS_SINK_NAME_KIND_PROBE);
}

static int
vmshift_can_extents (void *opaque)
{
  Handle *handle = opaque;

  return is_data (handle) || handle->kind == VMS_SINK_NAME_KIND_PROBE;
}

/* A mirror on @live-noflush is made durable by @handover's FLUSH, on a
 * connection with nothing queued before it; offering QEMU no FLUSH keeps
 * its stop from sending one behind the RAM queued on the link. */
static int
vmshift_can_flush (void *opaque)
{
  Handle *handle = opaque;

  return handle->kind != VMS_SINK_NAME_KIND_LIVE_NOFLUSH;
}

static int
vmshift_can_fua (void *opaque)
{
  Handle *handle = opaque;

  return vmshift_can_flush (handle) ? NBDKIT_FUA_NATIVE : NBDKIT_FUA_NONE;
}

static int
vmshift_yes (void *opaque)
{
  return 1;
}

static int
vmshift_no (void *opaque)
{
  return 0;
}

static int
vmshift_pread (void *opaque, void *buffer, uint32_t count, uint64_t offset,
               uint32_t flags)
{
  Handle *handle = opaque;
  GError *error = NULL;
  int err;

  switch (handle->kind)
    {
    case VMS_SINK_NAME_KIND_PROBE:
      memset (buffer, 0, count);
      return 0;
    case VMS_SINK_NAME_KIND_HASHES:
      err = vms_sink_hash_read (handle->replica, handle->hash_chunk, buffer,
                                count, offset, &error);
      break;
    case VMS_SINK_NAME_KIND_COMMIT:
    case VMS_SINK_NAME_KIND_LIVE_RESET:
    case VMS_SINK_NAME_KIND_HANDOVER:
      return fail (EINVAL, NULL);
    default:
      err = vms_sink_replica_read (handle->replica, buffer, count, offset,
                                   &error);
      break;
    }
  return err ? fail (err, error) : 0;
}

static int
vmshift_pwrite (void *opaque, const void *buffer, uint32_t count,
                uint64_t offset, uint32_t flags)
{
  Handle *handle = opaque;
  GError *error = NULL;
  int err;

  if (handle->kind == VMS_SINK_NAME_KIND_PROBE)
    return 0;
  err = vms_sink_replica_write (handle->replica, buffer, count, offset,
                                is_live (handle), flags & NBDKIT_FLAG_FUA,
                                &error);
  return err ? fail (err, error) : 0;
}

static int
vmshift_zero (void *opaque, uint32_t count, uint64_t offset, uint32_t flags)
{
  Handle *handle = opaque;
  GError *error = NULL;
  int err;

  if (handle->kind == VMS_SINK_NAME_KIND_PROBE)
    return 0;
  err = vms_sink_replica_zero (handle->replica, count, offset,
                               flags & NBDKIT_FLAG_MAY_TRIM,
                               flags & NBDKIT_FLAG_FAST_ZERO, is_live (handle),
                               flags & NBDKIT_FLAG_FUA, &error);
  if (err == ENOTSUP)
    {
      /* Expected for a fast-zero request: the client falls back. */
      g_clear_error (&error);
      nbdkit_set_error (ENOTSUP);
      return -1;
    }
  return err ? fail (err, error) : 0;
}

static int
vmshift_trim (void *opaque, uint32_t count, uint64_t offset, uint32_t flags)
{
  Handle *handle = opaque;
  GError *error = NULL;
  int err;

  if (handle->kind == VMS_SINK_NAME_KIND_PROBE)
    return 0;
  err = vms_sink_replica_trim (handle->replica, count, offset, is_live (handle),
                               flags & NBDKIT_FLAG_FUA, &error);
  return err ? fail (err, error) : 0;
}

static int
vmshift_flush (void *opaque, uint32_t flags)
{
  Handle *handle = opaque;
  GError *error = NULL;
  int err;

  if (!handle->replica)
    return 0;
  err = vms_sink_replica_flush (handle->replica, &error);
  if (err)
    return fail (err, error);
  /* The source is stopped and its mirror drained: from now on the
   * destination's writes, through NAME, are the newest. */
  if (handle->kind == VMS_SINK_NAME_KIND_HANDOVER)
    {
      err = vms_sink_replica_forget_live (handle->replica, &error);
      if (err)
        return fail (err, error);
      nbdkit_debug ("handover: replica flushed, live ranges forgotten");
    }
  return 0;
}

static gboolean
add_extent (guint64 offset, guint64 length, gboolean hole, gpointer user_data)
{
  return nbdkit_add_extent (user_data, offset, length,
                            hole ? NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO : 0)
         == 0;
}

static int
vmshift_extents (void *opaque, uint32_t count, uint64_t offset, uint32_t flags,
                 struct nbdkit_extents *extents)
{
  Handle *handle = opaque;
  GError *error = NULL;
  int err;

  if (handle->kind == VMS_SINK_NAME_KIND_PROBE)
    return add_extent (offset, count, TRUE, extents) ? 0 : -1;
  err = vms_sink_replica_extents (handle->replica, count, offset,
                                  flags & NBDKIT_FLAG_REQ_ONE, add_extent,
                                  extents, &error);
  return err ? fail (err, error) : 0;
}

static const char *
vmshift_export_description (void *opaque)
{
  Handle *handle = opaque;

  return handle->description;
}

static struct nbdkit_plugin plugin = {
  .name = "vmshift",
  .longname = "vmshift destination sink",
  .version = VMS_VERSION,
  .description = "Replicas of migrating VM disks, with live-write ordering "
                 "and chunk hashes",
  .unload = vmshift_unload,
  .config = vmshift_config,
  .config_complete = vmshift_config_complete,
  .config_help = vmshift_config_help,
  .magic_config_key = "dir",
  .dump_plugin = vmshift_dump_plugin,
  .list_exports = vmshift_list_exports,
  .open = vmshift_open,
  .export_description = vmshift_export_description,
  .close = vmshift_close,
  .get_size = vmshift_get_size,
  .can_write = vmshift_can_write,
  .can_flush = vmshift_can_flush,
  .is_rotational = vmshift_no,
  .can_trim = vmshift_can_write,
  .can_zero = vmshift_can_write,
  .can_fast_zero = vmshift_can_write,
  .can_fua = vmshift_can_fua,
  .can_multi_conn = vmshift_yes,
  .can_extents = vmshift_can_extents,
  .pread = vmshift_pread,
  .pwrite = vmshift_pwrite,
  .zero = vmshift_zero,
  .trim = vmshift_trim,
  .flush = vmshift_flush,
  .extents = vmshift_extents,
  .errno_is_preserved = 0,
};

NBDKIT_REGISTER_PLUGIN (plugin)
