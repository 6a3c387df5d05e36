/* vmshift sink: the replicas a sink serves, and I/O on them.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#define _GNU_SOURCE
#include "vms-sink-replica.h"
#include "vms-sink-error.h"
#include "vms-sink-name.h"
#include "vms-sink-file.h"
#include "vms-sink-live-log.h"
#include "vms-range-set.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* Zeroes written by hand (when the file system cannot punch or zero a
 * range) go out in pieces of this size from one shared zero buffer. */
#define ZERO_BUFFER_SIZE (1024 * 1024)

/* How often, at most, a write looks whether the replica's data file was
 * deleted (FLUSH always looks): an fstat per write would cost the fast
 * path for nothing, and a tenth of a second of writes into a deleted file
 * is all a client can lose before it is told. */
#define LINK_CHECK_INTERVAL_US (100 * 1000)

struct _VmsSinkStore
{
  char *dir;                 /* replica directory, absolute */
  int dir_fd;                /* dir, opened once: names open relative to it */
  GHashTable *devices;       /* replica name -> block device path */
  GMutex lock;               /* guards open_replicas */
  GHashTable *open_replicas; /* name -> VmsSinkReplica*, opened once */
  VmsSinkNoticeFunc notice;  /* where notices go, or NULL */
};

struct _VmsSinkReplica
{
  gint refcount;         /* connections using it; atomic, informative */
  VmsSinkStore *store;   /* owner, outlives every replica */
  char *name;            /* replica name */
  int fd;                /* the data, opened read-write */
  guint64 size;          /* bytes exported */
  gboolean is_device;    /* data is a block device */
  GMutex meta_lock;      /* guards meta and its file */
  VmsSinkMeta *meta;     /* metadata as last saved */
  gint known_incomplete; /* atomic: meta says incomplete, no check needed */
  /* Plain writes take order_lock shared, so they run in parallel; live
   * writes take it exclusively, so a plain write can never check the live
   * ranges, then land after a live write to the same bytes. */
  pthread_rwlock_t order_lock;
  VmsRangeSet *live;        /* ranges written via @live; under order_lock */
  VmsSinkLiveLog *live_log; /* live, on disk for a restarted sink; under
                               order_lock */
  gint can_punch_hole;      /* atomic: FALLOC_FL_PUNCH_HOLE not refused yet */
  gint can_zero_range;      /* atomic: FALLOC_FL_ZERO_RANGE not refused yet */
  gint64 link_checked;      /* atomic: monotonic time (us) of the last look at
                               st_nlink by a write */
  gint deleted;             /* atomic: the data file was found deleted; for
                               good, as nothing can link the inode again */
};

static const guint8 zero_buffer[ZERO_BUFFER_SIZE];

static void replica_free (VmsSinkReplica *replica);

static int fail_errno (GError **error, int err, const char *format, ...)
    G_GNUC_PRINTF (3, 4);

/* Set error to "format: strerror(err)" and return err. */
static int
fail_errno (GError **error, int err, const char *format, ...)
{
  va_list args;
  g_autofree char *what = NULL;

  va_start (args, format);
  what = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_IO, "%s: %s", what,
               g_strerror (err));
  return err;
}

VmsSinkStore *
vms_sink_store_new (const char *dir, GError **error)
{
  g_autoptr (VmsSinkStore) store = g_new0 (VmsSinkStore, 1);
  int meta_fd;

  store->dir = g_canonicalize_filename (dir, NULL);
  store->dir_fd = -1;
  store->devices
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  store->open_replicas = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                                (GDestroyNotify)replica_free);
  g_mutex_init (&store->lock);

  if (!g_file_test (store->dir, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_IO,
                   "replica directory %s does not exist or is not a "
                   "directory",
                   store->dir);
      return NULL;
    }
  if (access (store->dir, W_OK) < 0)
    {
      fail_errno (error, errno, "replica directory %s", store->dir);
      return NULL;
    }
  store->dir_fd = vms_sink_file_open_dir (store->dir, error);
  if (store->dir_fd < 0)
    return NULL;
  /* A .vmshift that is a link would take the metadata out of DIR. */
  meta_fd = vms_sink_file_open_subdir (store->dir_fd, store->dir,
                                       VMS_SINK_META_DIR, TRUE, error);
  if (meta_fd < 0)
    return NULL;
  close (meta_fd);
  return g_steal_pointer (&store);
}

void
vms_sink_store_free (VmsSinkStore *store)
{
  if (!store)
    return;
  g_hash_table_unref (store->open_replicas);
  g_hash_table_unref (store->devices);
  g_mutex_clear (&store->lock);
  if (store->dir_fd >= 0)
    close (store->dir_fd);
  g_free (store->dir);
  g_free (store);
}

void
vms_sink_store_set_notice (VmsSinkStore *store, VmsSinkNoticeFunc notice)
{
  store->notice = notice;
}

static void notice (VmsSinkStore *store, const char *format, ...)
    G_GNUC_PRINTF (2, 3);

static void
notice (VmsSinkStore *store, const char *format, ...)
{
  va_list args;
  g_autofree char *message = NULL;

  if (!store->notice)
    return;
  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  store->notice (message);
}

const char *
vms_sink_store_get_dir (VmsSinkStore *store)
{
  return store->dir;
}

gboolean
vms_sink_store_add_device (VmsSinkStore *store, const char *name,
                           const char *path, GError **error)
{
  struct stat st;

  if (!vms_sink_name_is_valid (name, error))
    return FALSE;
  if (stat (path, &st) < 0)
    {
      fail_errno (error, errno, "device %s", path);
      return FALSE;
    }
  if (!S_ISBLK (st.st_mode))
    {
      g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_BAD_NAME,
                   "device %s for replica '%s' is not a block device", path,
                   name);
      return FALSE;
    }
  if (g_hash_table_contains (store->devices, name))
    {
      g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_BAD_NAME,
                   "replica '%s' is given two devices", name);
      return FALSE;
    }
  g_hash_table_insert (store->devices, g_strdup (name), g_strdup (path));
  return TRUE;
}

/* Size of an open file or block device. */
static int
data_size (int fd, gboolean is_device, guint64 *size, GError **error,
           const char *path)
{
  struct stat st;

  if (is_device)
    {
      if (ioctl (fd, BLKGETSIZE64, size) < 0)
        return fail_errno (error, errno, "BLKGETSIZE64 %s", path);
      return 0;
    }
  if (fstat (fd, &st) < 0)
    return fail_errno (error, errno, "fstat %s", path);
  *size = st.st_size;
  return 0;
}

/* The errno for a failure to open a replica's data (cause), whose message
 * goes to error naming the replica. */
static int
open_refused (GError **error, GError *cause, const char *name)
{
  int err = g_error_matches (cause, G_FILE_ERROR, G_FILE_ERROR_NOENT) ? ENOENT
            : cause->domain == VMS_SINK_ERROR                         ? EPERM
                                                                      : EIO;

  g_propagate_prefixed_error (error, cause, "replica '%s': ", name);
  return err;
}

/* The block device of replica name, which its metadata records as
 * recorded: only the device the sink was given for name (device=), so
 * that metadata written by someone else cannot make the sink open any
 * other file. */
static int
open_device (VmsSinkStore *store, const char *name, const char *recorded,
             GError **error)
{
  const char *given = g_hash_table_lookup (store->devices, name);
  struct stat st, recorded_st;
  int fd;

  if (!given)
    {
      g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_NOT_REGULAR,
                   "its metadata puts it on block device %s, but the sink "
                   "was not given device=%s:%s: refused",
                   recorded, name, recorded);
      return -1;
    }
  /* The operator named it: links such as /dev/mapper/NAME are followed. */
  fd = open (given, O_RDWR | O_CLOEXEC);
  if (fd < 0)
    {
      fail_errno (error, errno, "open %s", given);
      return -1;
    }
  if (fstat (fd, &st) < 0 || !S_ISBLK (st.st_mode)
      || (!g_str_equal (given, recorded)
          && (stat (recorded, &recorded_st) < 0
              || recorded_st.st_rdev != st.st_rdev)))
    {
      close (fd);
      g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_NOT_REGULAR,
                   "device=%s:%s is not the block device %s its metadata "
                   "records: refused",
                   name, given, recorded);
      return -1;
    }
  return fd;
}

/* The data of name, to be created: a new file (*made), one that a crash
 * left without metadata, or its block device. */
static int
open_new_data (VmsSinkStore *store, const char *name, const char *device,
               gboolean *made, GError **error)
{
  g_autoptr (GError) exclusive_error = NULL;
  int fd;

  *made = FALSE;
  if (device)
    return open_device (store, name, device, error);
  fd = vms_sink_file_open (store->dir_fd, store->dir, name,
                           O_RDWR | O_CREAT | O_EXCL, &exclusive_error);
  *made = fd >= 0;
  if (fd >= 0)
    return fd;
  if (!g_error_matches (exclusive_error, G_FILE_ERROR, G_FILE_ERROR_EXIST))
    {
      g_propagate_error (error, g_steal_pointer (&exclusive_error));
      return -1;
    }
  return vms_sink_file_open (store->dir_fd, store->dir, name, O_RDWR, error);
}

/* Give a data file of the right size, as create_replica wants it. */
static int
size_new_data (int fd, const char *name, const char *path, gboolean is_device,
               guint64 size, GError **error)
{
  guint64 existing = 0;
  int err = data_size (fd, is_device, &existing, error, path);

  if (!err && is_device && existing < size)
    {
      g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_SIZE_MISMATCH,
                   "replica '%s' needs %" G_GUINT64_FORMAT " bytes but "
                   "device %s holds %" G_GUINT64_FORMAT,
                   name, size, path, existing);
      err = ENOSPC;
    }
  else if (!err && !is_device && existing != 0 && existing != size)
    {
      g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_SIZE_MISMATCH,
                   "cannot create replica '%s' of %" G_GUINT64_FORMAT
                   " bytes: %s exists with %" G_GUINT64_FORMAT " bytes and "
                   "no metadata",
                   name, size, path, existing);
      err = EEXIST;
    }
  else if (!err && !is_device && existing == 0 && ftruncate (fd, size) < 0)
    err = fail_errno (error, errno,
                      "create replica '%s': ftruncate %s to %" G_GUINT64_FORMAT,
                      name, path, size);
  if (!err && fsync (fd) < 0)
    err = fail_errno (error, errno, "fsync %s", path);
  return err;
}

/* Create the data and the metadata of a new replica, data first: a crash
 * in between leaves a data file of the right size and no metadata, which
 * the next create adopts.  A create that fails removes the data file it
 * made, so that no half-made replica is left. */
static int
create_replica (VmsSinkStore *store, const char *name, guint64 size,
                GError **error)
{
  const char *device = g_hash_table_lookup (store->devices, name);
  g_autoptr (VmsSinkMeta) meta = vms_sink_meta_new (name, size, device);
  g_autofree char *path = vms_sink_meta_data_path (store->dir, meta);
  g_autoptr (GError) open_error = NULL;
  gboolean made;
  int fd, err;

  fd = open_new_data (store, name, device, &made, &open_error);
  if (fd < 0)
    return open_refused (error, g_steal_pointer (&open_error), name);
  err = size_new_data (fd, name, path, device != NULL, size, error);
  close (fd);
  if (!err && !device && fsync (store->dir_fd) < 0)
    err = fail_errno (error, errno, "fsync %s", store->dir);
  if (!err && !vms_sink_meta_save (store->dir, meta, error))
    err = EIO;
  if (err && made && unlinkat (store->dir_fd, name, 0) < 0)
    notice (store,
            "replica '%s': could not remove %s after the failed "
            "create: %s",
            name, path, g_strerror (errno));
  return err;
}

/* The data of an existing replica: its regular file in the directory, or
 * its block device. */
static int
open_data (VmsSinkStore *store, const VmsSinkMeta *meta, int *errno_out,
           GError **error)
{
  g_autoptr (GError) open_error = NULL;
  int fd = meta->device
               ? open_device (store, meta->name, meta->device, &open_error)
               : vms_sink_file_open (store->dir_fd, store->dir, meta->name,
                                     O_RDWR, &open_error);

  if (fd < 0)
    *errno_out
        = open_refused (error, g_steal_pointer (&open_error), meta->name);
  return fd;
}

/* The live ranges an earlier sink process left for replica name: the
 * ordering rule holds across a restart of the sink. */
static VmsSinkLiveLog *
open_live_log (VmsSinkStore *store, const char *name, VmsRangeSet **ranges,
               GError **error)
{
  g_autofree char *dir = g_build_filename (store->dir, VMS_SINK_META_DIR, NULL);
  int dir_fd = vms_sink_file_open_subdir (store->dir_fd, store->dir,
                                          VMS_SINK_META_DIR, TRUE, error);
  VmsSinkLiveLog *log;

  if (dir_fd < 0)
    return NULL;
  log = vms_sink_live_log_open (dir_fd, dir, name, ranges, error);
  close (dir_fd);
  if (log && *ranges)
    notice (store,
            "replica '%s': %" G_GUINT64_FORMAT " bytes written through "
            "@live before the sink restarted stay protected from plain writes",
            name, vms_range_set_total (*ranges));
  return log;
}

static VmsSinkReplica *
replica_new (VmsSinkStore *store, VmsSinkMeta *meta, int *errno_out,
             GError **error)
{
  g_autofree char *path = vms_sink_meta_data_path (store->dir, meta);
  VmsSinkReplica *replica;
  guint64 actual = 0;
  int fd, err;

  fd = open_data (store, meta, errno_out, error);
  if (fd < 0)
    return NULL;
  err = data_size (fd, meta->device != NULL, &actual, error, path);
  if (!err && (meta->device ? actual < meta->size : actual != meta->size))
    {
      g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_SIZE_MISMATCH,
                   "replica '%s': %s holds %" G_GUINT64_FORMAT " bytes but "
                   "the replica has %" G_GUINT64_FORMAT,
                   meta->name, path, actual, meta->size);
      err = EIO;
    }
  if (err)
    {
      close (fd);
      *errno_out = err;
      return NULL;
    }

  replica = g_new0 (VmsSinkReplica, 1);
  replica->live_log = open_live_log (store, meta->name, &replica->live, error);
  if (!replica->live_log)
    {
      close (fd);
      g_free (replica);
      *errno_out = EIO;
      return NULL;
    }
  replica->refcount = 1;
  replica->store = store;
  replica->name = g_strdup (meta->name);
  replica->fd = fd;
  replica->size = meta->size;
  replica->is_device = meta->device != NULL;
  replica->meta = meta;
  replica->known_incomplete = !meta->complete;
  replica->can_punch_hole = TRUE;
  replica->can_zero_range = TRUE;
  g_mutex_init (&replica->meta_lock);
  {
    pthread_rwlockattr_t attr;

    /* Writer preference: a guest write through @live must not wait
     * behind an endless stream of replicator writes. */
    pthread_rwlockattr_init (&attr);
    pthread_rwlockattr_setkind_np (
        &attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init (&replica->order_lock, &attr);
    pthread_rwlockattr_destroy (&attr);
  }
  return replica;
}

/* Metadata whose data file was deleted by hand (rm -rf DIR/x leaves
 * DIR/.vmshift).  A block device that vanished is not orphaned: making
 * it afresh could not bring it back. */
static gboolean
data_file_gone (VmsSinkStore *store, const VmsSinkMeta *meta)
{
  struct stat st;

  return !meta->device
         && fstatat (store->dir_fd, meta->name, &st, AT_SYMLINK_NOFOLLOW) < 0
         && errno == ENOENT;
}

/* An open replica whose data file was deleted since: its writes go to a
 * file nobody can reach any more. */
static gboolean
replica_unlinked (VmsSinkReplica *replica)
{
  struct stat st;

  return !replica->is_device && fstat (replica->fd, &st) == 0
         && st.st_nlink == 0;
}

/* Writes into a data file that was deleted (or replaced under its name)
 * land where nobody will read them: they fail with EIO, so that the client
 * stops instead of copying into a ghost.  FLUSH always looks (always), a
 * write at most every LINK_CHECK_INTERVAL_US. */
static int
check_linked (VmsSinkReplica *replica, gboolean always, GError **error)
{
  gint64 now;

  if (replica->is_device)
    return 0;
  if (!g_atomic_int_get (&replica->deleted))
    {
      now = g_get_monotonic_time ();
      if (!always
          && now - __atomic_load_n (&replica->link_checked, __ATOMIC_RELAXED)
                 < LINK_CHECK_INTERVAL_US)
        return 0;
      __atomic_store_n (&replica->link_checked, now, __ATOMIC_RELAXED);
      if (!replica_unlinked (replica))
        return 0;
      g_atomic_int_set (&replica->deleted, TRUE);
    }
  g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_DELETED,
               "replica '%s': its data file %s/%s was deleted while the sink "
               "served it: writes and flushes fail until every connection to "
               "it is closed",
               replica->name, replica->store->dir, replica->name);
  return EIO;
}

static int
orphaned (VmsSinkStore *store, const char *name, const char *why,
          GError **error)
{
  g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_ORPHANED,
               "replica '%s' is orphaned: its metadata %s/%s/%s.json "
               "remains but its data file %s/%s was deleted%s; open the "
               "export %s@create=SIZE to make it afresh, or remove it with "
               "'vmshift-sink remove --dir %s %s'",
               name, store->dir, VMS_SINK_META_DIR, name, store->dir, name, why,
               name, store->dir, name);
  return ENOENT;
}

/* If what now sits at name is not a regular file (a link, a FIFO), the
 * refusal says that rather than that the old one was deleted: it is the
 * more useful reason, and the same whether or not a connection to the old
 * one is still being closed.  Returns an errno value, 0 otherwise. */
static int
replaced_by_other_kind (VmsSinkStore *store, const char *name, GError **error)
{
  g_autoptr (GError) open_error = NULL;
  int fd = vms_sink_file_open (store->dir_fd, store->dir, name, O_RDONLY,
                               &open_error);

  if (fd >= 0)
    {
      close (fd);
      return 0;
    }
  if (!g_error_matches (open_error, VMS_SINK_ERROR,
                        VMS_SINK_ERROR_NOT_REGULAR))
    return 0;
  g_propagate_error (error, g_steal_pointer (&open_error));
  return EACCES;
}

/* A new replica's name may be an orphan's: its live ranges described
 * data that no longer exists. */
static gboolean
forget_old_live_log (VmsSinkStore *store, const char *name, GError **error)
{
  g_autofree char *dir = g_build_filename (store->dir, VMS_SINK_META_DIR, NULL);
  int dir_fd = vms_sink_file_open_subdir (store->dir_fd, store->dir,
                                          VMS_SINK_META_DIR, TRUE, error);
  gboolean removed;

  if (dir_fd < 0)
    return FALSE;
  removed = vms_sink_live_log_remove (dir_fd, dir, name, error);
  close (dir_fd);
  return removed;
}

/* name's metadata; with create, a replica that is missing or orphaned
 * is made afresh first.  Sets *errno_out on failure. */
static VmsSinkMeta *
load_or_create (VmsSinkStore *store, const char *name, gboolean create,
                guint64 create_size, int *errno_out, GError **error)
{
  g_autoptr (GError) load_error = NULL;
  g_autoptr (VmsSinkMeta) meta
      = vms_sink_meta_load (store->dir, name, &load_error);
  gboolean orphan = meta && data_file_gone (store, meta);

  if (meta && !orphan)
    return g_steal_pointer (&meta);
  if (!meta
      && !g_error_matches (load_error, VMS_SINK_ERROR,
                           VMS_SINK_ERROR_NOT_FOUND))
    {
      *errno_out = EIO;
      g_propagate_error (error, g_steal_pointer (&load_error));
      return NULL;
    }
  if (!create)
    {
      *errno_out = orphan ? orphaned (store, name, "", error) : ENOENT;
      if (!orphan)
        g_propagate_error (error, g_steal_pointer (&load_error));
      return NULL;
    }
  *errno_out = create_replica (store, name, create_size, error);
  if (*errno_out)
    return NULL;
  if (!forget_old_live_log (store, name, error))
    {
      *errno_out = EIO;
      return NULL;
    }
  if (orphan)
    notice (store,
            "replica '%s' was orphaned (its data file was deleted): made "
            "afresh with %" G_GUINT64_FORMAT " bytes",
            name, create_size);
  g_clear_error (&load_error);
  /* The orphan's metadata was replaced on disk by create_replica. */
  g_clear_pointer (&meta, vms_sink_meta_free);
  meta = vms_sink_meta_load (store->dir, name, error);
  if (!meta)
    *errno_out = EIO;
  return g_steal_pointer (&meta);
}

VmsSinkReplica *
vms_sink_store_open (VmsSinkStore *store, const char *name, gboolean create,
                     guint64 create_size, int *errno_out, GError **error)
{
  g_autoptr (GMutexLocker) locker = g_mutex_locker_new (&store->lock);
  VmsSinkReplica *replica;
  VmsSinkMeta *meta;

  *errno_out = 0;
  replica = g_hash_table_lookup (store->open_replicas, name);
  /* Opens count up under the lock, so none can start meanwhile: with no
   * connection left the stale replica is forgotten and opened anew. */
  if (replica && replica_unlinked (replica))
    {
      if (g_atomic_int_get (&replica->refcount) > 0)
        {
          *errno_out = replaced_by_other_kind (store, name, error);
          if (*errno_out)
            return NULL;
          *errno_out = orphaned (store, name,
                                 " while connections still use it (close "
                                 "them first)",
                                 error);
          return NULL;
        }
      g_hash_table_remove (store->open_replicas, name);
      replica = NULL;
    }
  if (!replica)
    {
      meta
          = load_or_create (store, name, create, create_size, errno_out, error);
      if (!meta)
        return NULL;
      replica = replica_new (store, meta, errno_out, error);
      if (!replica)
        {
          vms_sink_meta_free (meta);
          return NULL;
        }
      g_hash_table_insert (store->open_replicas, replica->name, replica);
    }
  else
    g_atomic_int_inc (&replica->refcount);

  if (create && replica->size != create_size)
    {
      g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_SIZE_MISMATCH,
                   "replica '%s' exists with %" G_GUINT64_FORMAT " bytes, "
                   "not %" G_GUINT64_FORMAT " as asked",
                   name, replica->size, create_size);
      *errno_out = EINVAL;
      g_clear_pointer (&locker, g_mutex_locker_free);
      vms_sink_replica_unref (replica);
      return NULL;
    }
  return replica;
}

static void
replica_free (VmsSinkReplica *replica)
{
  close (replica->fd);
  vms_range_set_free (replica->live);
  vms_sink_live_log_free (replica->live_log);
  pthread_rwlock_destroy (&replica->order_lock);
  g_mutex_clear (&replica->meta_lock);
  vms_sink_meta_free (replica->meta);
  g_free (replica->name);
  g_free (replica);
}

/* A replica stays open after its last connection closes: the ranges QEMU's
 * mirror wrote must outlive a reconnect of the mirror while no replicator
 * connection happens to be open.  A sink serves a handful of disks, so
 * keeping them costs one descriptor each. */
void
vms_sink_replica_unref (VmsSinkReplica *replica)
{
  if (replica)
    g_atomic_int_dec_and_test (&replica->refcount);
}

guint64
vms_sink_replica_get_size (VmsSinkReplica *replica)
{
  return replica->size;
}

char *
vms_sink_replica_dup_data_path (VmsSinkReplica *replica)
{
  g_autoptr (GMutexLocker) locker = g_mutex_locker_new (&replica->meta_lock);

  return vms_sink_meta_data_path (replica->store->dir, replica->meta);
}

gboolean
vms_sink_replica_is_device (VmsSinkReplica *replica)
{
  return replica->is_device;
}

int
vms_sink_replica_get_fd (VmsSinkReplica *replica)
{
  return replica->fd;
}

static int
check_range (VmsSinkReplica *replica, guint64 count, guint64 offset,
             GError **error)
{
  /* nbdkit checks this too; the sink does not rely on it. */
  if (offset > replica->size || count > replica->size - offset)
    {
      g_set_error (error, VMS_SINK_ERROR, VMS_SINK_ERROR_IO,
                   "replica '%s': request at %" G_GUINT64_FORMAT
                   " for %" G_GUINT64_FORMAT
                   " bytes is beyond its %" G_GUINT64_FORMAT " bytes",
                   replica->name, offset, count, replica->size);
      return EINVAL;
    }
  return 0;
}

int
vms_sink_replica_read (VmsSinkReplica *replica, void *buffer, guint32 count,
                       guint64 offset, GError **error)
{
  char *out = buffer;
  int err = check_range (replica, count, offset, error);

  if (err)
    return err;
  while (count > 0)
    {
      ssize_t n = pread (replica->fd, out, count, offset);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return fail_errno (error, errno, "replica '%s': pread", replica->name);
      if (n == 0)
        {
          /* Shortened behind our back: what is not there reads as zero. */
          memset (out, 0, count);
          break;
        }
      out += n;
      offset += n;
      count -= n;
    }
  return 0;
}

/* The first change to a complete replica makes it incomplete, on disk,
 * before the change is acknowledged: a crash must not leave a replica that
 * claims to be complete and is not. */
static int
mark_incomplete (VmsSinkReplica *replica, GError **error)
{
  g_autoptr (GMutexLocker) locker = NULL;

  if (g_atomic_int_get (&replica->known_incomplete))
    return 0;
  locker = g_mutex_locker_new (&replica->meta_lock);
  if (replica->meta->complete)
    {
      replica->meta->complete = FALSE;
      if (!vms_sink_meta_save (replica->store->dir, replica->meta, error))
        {
          replica->meta->complete = TRUE;
          return EIO;
        }
    }
  g_atomic_int_set (&replica->known_incomplete, TRUE);
  return 0;
}

static int
write_all (VmsSinkReplica *replica, const guint8 *data, guint64 count,
           guint64 offset, GError **error)
{
  while (count > 0)
    {
      ssize_t n = pwrite (replica->fd, data, count, offset);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return fail_errno (error, errno,
                           "replica '%s': pwrite %" G_GUINT64_FORMAT
                           " bytes at %" G_GUINT64_FORMAT,
                           replica->name, count, offset);
      data += n;
      offset += n;
      count -= n;
    }
  return 0;
}

static int
zero_by_writing (VmsSinkReplica *replica, guint64 count, guint64 offset,
                 GError **error)
{
  while (count > 0)
    {
      guint64 piece = MIN (count, ZERO_BUFFER_SIZE);
      int err = write_all (replica, zero_buffer, piece, offset, error);

      if (err)
        return err;
      offset += piece;
      count -= piece;
    }
  return 0;
}

/* Try one fallocate mode, remembering a refusal so that it is asked once
 * per replica.  Returns 0 when done, ENOTSUP when the mode is not
 * available, another errno on failure. */
static int
try_fallocate (VmsSinkReplica *replica, gint *capability, int mode,
               guint64 count, guint64 offset, GError **error)
{
  if (!g_atomic_int_get (capability))
    return ENOTSUP;
  for (;;)
    {
      if (fallocate (replica->fd, mode, offset, count) == 0)
        return 0;
      if (errno == EINTR)
        continue;
      if (errno == EOPNOTSUPP || errno == ENOSYS || errno == EINVAL)
        {
          g_atomic_int_set (capability, FALSE);
          return ENOTSUP;
        }
      return fail_errno (error, errno, "replica '%s': fallocate",
                         replica->name);
    }
}

typedef enum
{
  CHANGE_WRITE, /* data from the client */
  CHANGE_ZERO,  /* read back as zeroes */
  CHANGE_TRIM,  /* content no longer needed */
} ChangeKind;

typedef struct
{
  VmsSinkReplica *replica; /* where */
  ChangeKind kind;         /* what */
  const guint8 *data;      /* CHANGE_WRITE: bytes of the whole request */
  guint64 request_offset;  /* offset of data[0] */
  gboolean may_trim;       /* CHANGE_ZERO: a hole is fine */
  gboolean fast;           /* CHANGE_ZERO: fail rather than write zeroes */
  int err;                 /* first failure */
  GError **error;          /* where to say why */
} Change;

static int
apply_zero (Change *change, guint64 offset, guint64 length)
{
  VmsSinkReplica *replica = change->replica;
  int err = ENOTSUP;

  if (change->may_trim)
    err = try_fallocate (replica, &replica->can_punch_hole,
                         FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, length,
                         offset, change->error);
  if (err == ENOTSUP)
    err = try_fallocate (replica, &replica->can_zero_range,
                         FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, length,
                         offset, change->error);
  if (err == ENOTSUP && !change->fast)
    err = zero_by_writing (replica, length, offset, change->error);
  else if (err == ENOTSUP)
    g_set_error (change->error, VMS_SINK_ERROR, VMS_SINK_ERROR_IO,
                 "replica '%s': no fast way to zero", replica->name);
  return err;
}

/* Apply the part [offset, offset + length) of a change. */
static gboolean
apply_piece (guint64 offset, guint64 length, gpointer user_data)
{
  Change *change = user_data;
  VmsSinkReplica *replica = change->replica;

  switch (change->kind)
    {
    case CHANGE_WRITE:
      change->err = write_all (replica,
                               change->data + (offset - change->request_offset),
                               length, offset, change->error);
      break;
    case CHANGE_ZERO:
      change->err = apply_zero (change, offset, length);
      break;
    case CHANGE_TRIM:
      /* Trim is advisory: where holes cannot be punched, keep the data. */
      change->err = try_fallocate (replica, &replica->can_punch_hole,
                                   FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                   length, offset, change->error);
      if (change->err == ENOTSUP)
        change->err = 0;
      break;
    }
  return change->err == 0;
}

/* Stops vms_range_set_foreach_gap at the first gap: FALSE means there
 * is one. */
static gboolean
is_gap (guint64 offset, guint64 length, gpointer user_data)
{
  return FALSE;
}

/* A new record may bring the live log to its compaction.  A failed one
 * does not fail the live write: the log keeps every record and takes
 * the next (vms_sink_live_log_maybe_compact says when it cannot). */
static void
compact_live_log (VmsSinkReplica *replica)
{
  g_autoptr (GError) error = NULL;

  if (!vms_sink_live_log_maybe_compact (replica->live_log, replica->live,
                                        &error))
    notice (replica->store,
            "replica '%s': compacting the live log failed (tried again "
            "when it has doubled): %s",
            replica->name, error->message);
}

/* Remember a live write's range, on disk first when it is new, before the
 * write lands.  Remembered in memory even if the disk refused it: QEMU
 * retries a failed live write, and a replicator write must not slip in
 * between.  Called with order_lock held exclusively. */
static gboolean
remember_live (VmsSinkReplica *replica, guint64 offset, guint64 count,
               GError **error)
{
  gboolean known = replica->live
                   && vms_range_set_foreach_gap (replica->live, offset, count,
                                                 is_gap, NULL);
  gboolean logged
      = known
        || vms_sink_live_log_append (replica->live_log, offset, count, error);

  if (!replica->live)
    replica->live = vms_range_set_new ();
  vms_range_set_add (replica->live, offset, count);
  if (!known && logged)
    compact_live_log (replica);
  return logged;
}

static int
apply_change (Change *change, guint64 count, guint64 offset, gboolean live,
              gboolean fua)
{
  VmsSinkReplica *replica = change->replica;
  int err = check_range (replica, count, offset, change->error);

  if (!err)
    err = check_linked (replica, FALSE, change->error);
  if (!err)
    err = mark_incomplete (replica, change->error);
  if (err)
    return err;

  if (live)
    {
      pthread_rwlock_wrlock (&replica->order_lock);
      if (remember_live (replica, offset, count, change->error))
        apply_piece (offset, count, change);
      else
        change->err = EIO;
    }
  else
    {
      pthread_rwlock_rdlock (&replica->order_lock);
      if (replica->live)
        vms_range_set_foreach_gap (replica->live, offset, count, apply_piece,
                                   change);
      else
        apply_piece (offset, count, change);
    }
  pthread_rwlock_unlock (&replica->order_lock);

  if (!change->err && fua)
    return vms_sink_replica_flush (replica, change->error);
  /* A mirror's writes keep coming until the source stops, and the stop
   * flushes them (QEMU flushes the mirror's target): start their
   * writeback now, so that FLUSH, inside the downtime, finds little
   * dirty.  Only a hint: an error here is the next FLUSH's to report. */
  if (!change->err && live && change->kind == CHANGE_WRITE)
    sync_file_range (replica->fd, offset, count, SYNC_FILE_RANGE_WRITE);
  return change->err;
}

int
vms_sink_replica_write (VmsSinkReplica *replica, const void *buffer,
                        guint32 count, guint64 offset, gboolean live,
                        gboolean fua, GError **error)
{
  Change change = { .replica = replica,
                    .kind = CHANGE_WRITE,
                    .data = buffer,
                    .request_offset = offset,
                    .error = error };

  return apply_change (&change, count, offset, live, fua);
}

int
vms_sink_replica_zero (VmsSinkReplica *replica, guint32 count, guint64 offset,
                       gboolean may_trim, gboolean fast, gboolean live,
                       gboolean fua, GError **error)
{
  Change change = { .replica = replica,
                    .kind = CHANGE_ZERO,
                    .may_trim = may_trim,
                    .fast = fast,
                    .error = error };

  return apply_change (&change, count, offset, live, fua);
}

int
vms_sink_replica_trim (VmsSinkReplica *replica, guint32 count, guint64 offset,
                       gboolean live, gboolean fua, GError **error)
{
  Change change = { .replica = replica, .kind = CHANGE_TRIM, .error = error };

  return apply_change (&change, count, offset, live, fua);
}

int
vms_sink_replica_flush (VmsSinkReplica *replica, GError **error)
{
  int err = check_linked (replica, TRUE, error);

  if (err)
    return err;
  /* One descriptor per replica, shared by all connections: this covers
   * every write acknowledged on any of them. */
  if (fdatasync (replica->fd) < 0)
    return fail_errno (error, errno, "replica '%s': fdatasync", replica->name);
  /* The live ranges as durable as the data they protect.  Appends happen
   * under order_lock; fdatasync of another writer's append is safe. */
  if (!vms_sink_live_log_sync (replica->live_log, error))
    return EIO;
  return 0;
}

int
vms_sink_replica_extents (VmsSinkReplica *replica, guint32 count,
                          guint64 offset, gboolean req_one,
                          VmsSinkExtentFunc func, gpointer user_data,
                          GError **error)
{
  guint64 end;
  int err = check_range (replica, count, offset, error);

  if (err)
    return err;
  end = offset + count;
  if (replica->is_device)
    {
      func (offset, count, FALSE, user_data);
      return 0;
    }
  while (offset < end)
    {
      off_t data = lseek (replica->fd, offset, SEEK_DATA);
      off_t hole;

      if (data < 0 && errno == ENXIO)
        data = end; /* nothing but hole up to the end of the file */
      else if (data < 0)
        {
          /* No SEEK_DATA on this file system: all data. */
          func (offset, end - offset, FALSE, user_data);
          return 0;
        }
      if ((guint64)data > offset)
        {
          guint64 hole_end = MIN ((guint64)data, end);

          if (!func (offset, hole_end - offset, TRUE, user_data) || req_one)
            return 0;
          offset = hole_end;
          continue;
        }
      hole = lseek (replica->fd, offset, SEEK_HOLE);
      if (hole < 0)
        return fail_errno (error, errno, "replica '%s': lseek SEEK_HOLE",
                           replica->name);
      hole = MIN ((guint64)hole, end);
      if (!func (offset, hole - offset, FALSE, user_data) || req_one)
        return 0;
      offset = hole;
    }
  return 0;
}

int
vms_sink_replica_commit (VmsSinkReplica *replica, GError **error)
{
  g_autoptr (GMutexLocker) locker = NULL;
  int err = vms_sink_replica_flush (replica, error);

  if (err)
    return err;
  locker = g_mutex_locker_new (&replica->meta_lock);
  replica->meta->complete = TRUE;
  replica->meta->committed = g_get_real_time () / G_USEC_PER_SEC;
  if (!vms_sink_meta_save (replica->store->dir, replica->meta, error))
    {
      replica->meta->complete = FALSE;
      return EIO;
    }
  g_atomic_int_set (&replica->known_incomplete, FALSE);

  /* The migration is over: later plain writes start a new one. */
  return vms_sink_replica_forget_live (replica, error);
}

int
vms_sink_replica_forget_live (VmsSinkReplica *replica, GError **error)
{
  gboolean reset;

  pthread_rwlock_wrlock (&replica->order_lock);
  g_clear_pointer (&replica->live, vms_range_set_free);
  reset = vms_sink_live_log_reset (replica->live_log, error);
  pthread_rwlock_unlock (&replica->order_lock);
  return reset ? 0 : EIO;
}

guint64
vms_sink_replica_live_bytes (VmsSinkReplica *replica)
{
  guint64 total;

  pthread_rwlock_rdlock (&replica->order_lock);
  total = replica->live ? vms_range_set_total (replica->live) : 0;
  pthread_rwlock_unlock (&replica->order_lock);
  return total;
}
