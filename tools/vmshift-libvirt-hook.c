/* vmshift-libvirt-hook: point an incoming libvirt migration at replicas.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * libvirt runs qemu hooks as HOOK DOMAIN OPERATION SUB-OPERATION EXTRA
 * with the domain XML on stdin.  For "migrate", run on the destination
 * when an incoming migration begins, the hook may print a replacement XML;
 * printing nothing keeps the XML, and a non-zero exit refuses the
 * migration with our stderr in libvirt's error message.  In qemu.d/ each
 * script's output is the next one's input (libvirt's docs/hooks.rst,
 * src/util/virhook.c).
 *
 * We act only on a migration whose XML carries vmshift's metadata: check
 * that every replica it names is here, whole-sized, and a regular file,
 * then print the XML with each disk pointing at its replica.  Everything
 * else passes untouched, so a broken vmshift setup never breaks a libvirt
 * operation that is not a vmshift migration.
 */
#include "vms-config.h"
#include "vms-domain-xml.h"

#include <errno.h>
#include <gio/gio.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROGRAM "vmshift-libvirt-hook"

/* How messages start: libvirt shows them after its own text. */
#define HOOK_PREFIX "vmshift hook: "

/* Exit codes, documented in vmshift-libvirt-hook(8). */
enum
{
  HOOK_EXIT_OK = 0,     /* done, or nothing for us to do */
  HOOK_EXIT_REFUSE = 1, /* the migration must not go on */
};

/* libvirt's argv: HOOK DOMAIN OPERATION SUB-OPERATION EXTRA. */
#define HOOK_ARGC 5

#define HOOK_CONFIG_FILE "/etc/libvirt/hooks/vmshift.conf"
/* Names another configuration file, for tests. */
#define HOOK_CONFIG_ENV "VMSHIFT_HOOK_CONFIG"
#define HOOK_CONFIG_GROUP "replicas"
#define HOOK_CONFIG_DIR_KEY "dir"
#define HOOK_DEFAULT_DIR "/var/lib/vmshift/replicas"

/* Domain XML is kilobytes; this only stops a runaway writer. */
#define HOOK_MAX_INPUT (64 * 1024 * 1024)

/* Bytes read from stdin at a time. */
#define HOOK_READ_CHUNK 65536

static int refuse (const char *format, ...) G_GNUC_PRINTF (1, 2);

/* One line on stderr, which libvirt puts into the error its user sees. */
static int
refuse (const char *format, ...)
{
  va_list args;
  g_autofree char *message = NULL;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_strdelimit (message, "\n", ' ');
  g_printerr ("%s%s\n", HOOK_PREFIX, message);
  return HOOK_EXIT_REFUSE;
}

/* libvirt writes the XML into a pipe; reading it all spares it a broken
 * pipe even when we have nothing to say. */
static void
drain_stdin (void)
{
  char buffer[HOOK_READ_CHUNK];

  if (isatty (STDIN_FILENO))
    return;
  for (;;)
    {
      ssize_t got = read (STDIN_FILENO, buffer, sizeof buffer);

      if (got == 0 || (got < 0 && errno != EINTR))
        return;
    }
}

static char *
read_stdin (GError **error)
{
  g_autoptr (GByteArray) input = g_byte_array_new ();
  guint8 buffer[HOOK_READ_CHUNK];

  for (;;)
    {
      ssize_t got = read (STDIN_FILENO, buffer, sizeof buffer);

      if (got < 0 && errno == EINTR)
        continue;
      if (got < 0)
        {
          g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno),
                       "cannot read the domain XML on stdin: %s",
                       g_strerror (errno));
          return NULL;
        }
      if (got == 0)
        break;
      if (input->len + got > HOOK_MAX_INPUT)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE,
                       "domain XML on stdin is larger than %d bytes",
                       HOOK_MAX_INPUT);
          return NULL;
        }
      g_byte_array_append (input, buffer, got);
    }
  g_byte_array_append (input, (const guint8 *)"", 1);
  return (char *)g_byte_array_free (g_steal_pointer (&input), FALSE);
}

/* The replica directory: from the configuration file, or the default when
 * there is no file.  Caller frees. */
static char *
config_replica_dir (GError **error)
{
  const char *path = g_getenv (HOOK_CONFIG_ENV);
  g_autoptr (GKeyFile) config = g_key_file_new ();
  g_autoptr (GError) local = NULL;
  g_autofree char *dir = NULL;

  if (!path || !*path)
    path = HOOK_CONFIG_FILE;
  if (!g_key_file_load_from_file (config, path, G_KEY_FILE_NONE, &local))
    {
      if (g_error_matches (local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        return g_strdup (HOOK_DEFAULT_DIR);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "cannot read %s: %s", path, local->message);
      return NULL;
    }
  dir = g_key_file_get_string (config, HOOK_CONFIG_GROUP, HOOK_CONFIG_DIR_KEY,
                               NULL);
  if (!dir)
    return g_strdup (HOOK_DEFAULT_DIR);
  g_strstrip (dir);
  if (!g_path_is_absolute (dir))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s: [%s] %s=%s is not an absolute path", path,
                   HOOK_CONFIG_GROUP, HOOK_CONFIG_DIR_KEY, dir);
      return NULL;
    }
  return g_steal_pointer (&dir);
}

/* DIR/REPLICA must be the regular file the sink filled, of the size the
 * source recorded.  O_NOFOLLOW: a symbolic link planted in DIR must not
 * hand the guest another file; O_NONBLOCK: a FIFO must not hang libvirt. */
static gboolean
check_replica_file (const char *dir, const VmsDomainReplica *replica,
                    const char *path, GError **error)
{
  struct stat st;
  int fd = open (path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  int saved_errno = errno;

  if (fd < 0 && saved_errno == ENOENT)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                 "replica %s for disk %s not found in %s (is this the host "
                 "vmshift copied to?)",
                 replica->replica, replica->target, dir);
  else if (fd < 0 && saved_errno == ELOOP)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_REGULAR_FILE,
                 "replica %s for disk %s: %s is a symbolic link; replicas "
                 "must be regular files in %s",
                 replica->replica, replica->target, path, dir);
  else if (fd < 0)
    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                 "replica %s for disk %s: cannot open %s: %s", replica->replica,
                 replica->target, path, g_strerror (saved_errno));
  if (fd < 0)
    return FALSE;
  if (fstat (fd, &st) < 0)
    {
      saved_errno = errno;
      close (fd);
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   "replica %s for disk %s: cannot stat %s: %s",
                   replica->replica, replica->target, path,
                   g_strerror (saved_errno));
      return FALSE;
    }
  close (fd);
  if (!S_ISREG (st.st_mode))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_REGULAR_FILE,
                   "replica %s for disk %s: %s is not a regular file",
                   replica->replica, replica->target, path);
      return FALSE;
    }
  if ((guint64)st.st_size != replica->size)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "replica %s for disk %s in %s has %" G_GUINT64_FORMAT
                   " bytes, but the migration expects %" G_GUINT64_FORMAT
                   " (is it the copy this migration made?)",
                   replica->replica, replica->target, dir, (guint64)st.st_size,
                   replica->size);
      return FALSE;
    }
  return TRUE;
}

/* The XML with every requested disk on its replica.  Caller frees. */
static char *
rewrite_for_replicas (const char *xml, const char *job_id, GArray *requested,
                      const char *dir, GError **error)
{
  g_autoptr (GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);
  g_autofree VmsDomainReplica *replicas
      = g_new0 (VmsDomainReplica, requested->len + 1);

  for (guint i = 0; i < requested->len; i++)
    {
      const VmsDomainReplica *asked
          = &g_array_index (requested, VmsDomainReplica, i);
      char *path = g_build_filename (dir, asked->replica, NULL);

      g_ptr_array_add (paths, path);
      if (!check_replica_file (dir, asked, path, error))
        return NULL;
      replicas[i] = *asked;
      replicas[i].path = path;
    }
  return vms_domain_xml_for_replicas (xml, job_id, replicas, requested->len,
                                      NULL, error);
}

static int
hook_migrate (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *xml = read_stdin (&error);
  g_autofree char *job_id = NULL;
  g_autoptr (GArray) requested = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *output = NULL;
  gboolean found;

  if (!xml)
    return refuse ("%s", error->message);
  if (!vms_domain_xml_read_request (xml, &found, &job_id, &requested, &error))
    {
      if (!error)
        return HOOK_EXIT_OK; /* not a vmshift migration */
      /* XML we cannot read is libvirt's to judge, unless it is ours. */
      if (!found && !strstr (xml, VMS_DOMAIN_XML_NS))
        return HOOK_EXIT_OK;
      return refuse ("%s", error->message);
    }
  if (!(dir = config_replica_dir (&error))
      || !(output = rewrite_for_replicas (xml, job_id, requested, dir, &error)))
    return refuse ("%s", error->message);
  if (fputs (output, stdout) == EOF || fflush (stdout) == EOF)
    return refuse ("cannot write the domain XML to libvirt: %s",
                   g_strerror (errno));
  return HOOK_EXIT_OK;
}

/* --help and --version, for people; libvirt never passes options. */
static int
hook_options (int argc, char **argv)
{
  gboolean version = FALSE;
  const GOptionEntry entries[] = {
    { "version", 'V', 0, G_OPTION_ARG_NONE, &version,
      "Print the version and exit", NULL },
    { NULL },
  };
  g_autoptr (GOptionContext) context
      = g_option_context_new ("DOMAIN OPERATION SUB-OPERATION EXTRA");
  g_autoptr (GError) error = NULL;

  g_option_context_set_summary (
      context,
      "libvirt qemu hook for vmshift: on the destination of a vmshift\n"
      "migration, point the domain's disks at the replicas vmshift copied.\n"
      "Install it as /etc/libvirt/hooks/qemu.d/vmshift and restart libvirt.");
  g_option_context_set_description (context, "See vmshift-libvirt-hook(8).");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("%s: %s\n", PROGRAM, error->message);
      return HOOK_EXIT_OK;
    }
  if (version)
    g_print ("%s %s\n", PROGRAM, VMS_VERSION);
  return HOOK_EXIT_OK;
}

static gboolean
is_option_for_people (const char *arg)
{
  static const char *const options[]
      = { "--help", "-h", "-?", "--help-all", "--version", "-V" };

  for (guint i = 0; i < G_N_ELEMENTS (options); i++)
    if (g_str_equal (arg, options[i]))
      return TRUE;
  return FALSE;
}

int
main (int argc, char **argv)
{
  if (argc == 2 && is_option_for_people (argv[1]))
    return hook_options (argc, argv);
  if (argc == HOOK_ARGC && g_str_equal (argv[2], "migrate"))
    return hook_migrate ();
  drain_stdin ();
  return HOOK_EXIT_OK;
}
