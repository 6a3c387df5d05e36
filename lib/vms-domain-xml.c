/* vmshift: read and rewrite libvirt domain XML for a migration to replicas.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-domain-xml.h"
#include "vms-job.h"
#include "vms-sink-name.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlsave.h>
#include <string.h>

/* The macro makes a string of the quark name: keep it whole. */
/* clang-format off */
G_DEFINE_QUARK (vms-domain-xml-error-quark, vms_domain_xml_error)
/* clang-format on */

/* libxml2 takes the length as an int. */
#define DOMAIN_XML_MAX_LENGTH G_MAXINT

/* Children of <domain> that libvirt writes before <metadata>; we put a new
 * <metadata> after the last of them, where libvirt itself would. */
static const char *const metadata_predecessors[]
    = { "name", "uuid", "genid", "title", "description" };

#define XC(s) ((const xmlChar *)(s))

/* libxml2 2.12 made the structured handler take a const error. */
#if LIBXML_VERSION >= 21200
typedef const xmlError ScopeXmlError;
#else
typedef xmlError ScopeXmlError;
#endif

/* While one of our functions runs, libxml2's messages go into a string
 * instead of the process's stderr: the hook's stderr is what libvirt shows
 * its user, and a library has no business printing.  The handlers are
 * thread-local in libxml2, so the scope is the calling thread. */
typedef struct
{
  xmlStructuredErrorFunc old_structured; /* handler to restore */
  void *old_structured_context;          /* its context */
  xmlGenericErrorFunc old_generic;       /* handler to restore */
  void *old_generic_context;             /* its context */
  GString *message;                      /* first message libxml2 reported */
} ErrorScope;

static void
scope_structured (void *data, ScopeXmlError *xml_error)
{
  ErrorScope *scope = data;

  /* The first error is the cause; the rest follow from it. */
  if (scope->message->len > 0 || !xml_error->message)
    return;
  g_string_append (scope->message, xml_error->message);
  g_strchomp (scope->message->str);
  g_string_set_size (scope->message, strlen (scope->message->str));
  if (xml_error->line > 0)
    g_string_append_printf (scope->message, " (line %d)", xml_error->line);
}

static void G_GNUC_PRINTF (2, 3)
    scope_generic (void *data, const char *format, ...)
{
  ErrorScope *scope = data;
  va_list args;

  if (scope->message->len > 0)
    return;
  va_start (args, format);
  g_string_append_vprintf (scope->message, format, args);
  va_end (args);
  g_strchomp (scope->message->str);
  g_string_set_size (scope->message, strlen (scope->message->str));
}

static void
scope_enter (ErrorScope *scope)
{
  static gsize initialised = 0;

  /* libxml2 2.9 wants one first xmlInitParser before threads use it. */
  if (g_once_init_enter (&initialised))
    {
      xmlInitParser ();
      g_once_init_leave (&initialised, 1);
    }
  scope->old_structured = xmlStructuredError;
  scope->old_structured_context = xmlStructuredErrorContext;
  scope->old_generic = xmlGenericError;
  scope->old_generic_context = xmlGenericErrorContext;
  scope->message = g_string_new (NULL);
  xmlSetStructuredErrorFunc (scope, scope_structured);
  xmlSetGenericErrorFunc (scope, scope_generic);
}

static void
scope_leave (ErrorScope *scope)
{
  if (!scope->message)
    return;
  xmlSetStructuredErrorFunc (scope->old_structured_context,
                             scope->old_structured);
  xmlSetGenericErrorFunc (scope->old_generic_context, scope->old_generic);
  g_string_free (g_steal_pointer (&scope->message), TRUE);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (ErrorScope, scope_leave)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlDoc, xmlFreeDoc)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlParserCtxt, xmlFreeParserCtxt)

/* A string from libxml2, copied into GLib's allocator. */
static char *
xml_dup (xmlChar *value)
{
  char *copy = g_strdup ((const char *)value);

  xmlFree (value);
  return copy;
}

static char *
prop_dup (xmlNode *node, const char *name)
{
  return xml_dup (xmlGetNoNsProp (node, XC (name)));
}

static gboolean
is_element (xmlNode *node, const char *name)
{
  return node->type == XML_ELEMENT_NODE && !node->ns
         && xmlStrEqual (node->name, XC (name));
}

static gboolean
is_our_element (xmlNode *node, const char *name)
{
  return node->type == XML_ELEMENT_NODE && node->ns
         && xmlStrEqual (node->ns->href, XC (VMS_DOMAIN_XML_NS))
         && xmlStrEqual (node->name, XC (name));
}

static xmlNode *
child_element (xmlNode *parent, const char *name)
{
  for (xmlNode *node = parent->children; node; node = node->next)
    if (is_element (node, name))
      return node;
  return NULL;
}

static void
remove_children (xmlNode *parent, const char *name)
{
  xmlNode *next;

  for (xmlNode *node = parent->children; node; node = next)
    {
      next = node->next;
      if (is_element (node, name))
        {
          xmlUnlinkNode (node);
          xmlFreeNode (node);
        }
    }
}

/* libvirt never writes a DOCTYPE, and refusing it as soon as the parser
 * meets one means no entity declaration is ever read: no external entity
 * is fetched and no entity expansion can blow up. */
static void
refuse_doctype (void *data, const xmlChar *name, const xmlChar *external_id,
                const xmlChar *system_id)
{
  xmlParserCtxt *context = data;

  context->_private = GINT_TO_POINTER (TRUE);
  xmlStopParser (context);
}

static xmlDoc *
parse_domain (const char *xml, xmlNode **root, GError **error)
{
  g_auto (ErrorScope) scope = { 0 };
  g_autoptr (xmlParserCtxt) context = NULL;
  g_autoptr (xmlDoc) doc = NULL;
  gsize length = strlen (xml);

  if (length > DOMAIN_XML_MAX_LENGTH)
    {
      g_set_error (error, VMS_DOMAIN_XML_ERROR, VMS_DOMAIN_XML_ERROR_PARSE,
                   "domain XML of %" G_GSIZE_FORMAT " bytes is too long",
                   length);
      return NULL;
    }
  scope_enter (&scope);
  context = xmlNewParserCtxt ();
  if (!context)
    g_error ("xmlNewParserCtxt: out of memory");
  context->sax->internalSubset = refuse_doctype;
  /* NONET: nothing is fetched.  No NOENT, DTDLOAD or DTDVALID: no entity
   * is substituted and no DTD read.  NOBLANKS lets the output be
   * re-indented with the nodes we add. */
  doc = xmlCtxtReadMemory (context, xml, (int)length, "domain.xml", NULL,
                           XML_PARSE_NONET | XML_PARSE_NOBLANKS);
  if (context->_private)
    {
      g_set_error (error, VMS_DOMAIN_XML_ERROR, VMS_DOMAIN_XML_ERROR_PARSE,
                   "domain XML has a DOCTYPE declaration; libvirt never "
                   "writes one, so it is refused");
      return NULL;
    }
  if (!doc)
    {
      g_set_error (error, VMS_DOMAIN_XML_ERROR, VMS_DOMAIN_XML_ERROR_PARSE,
                   "domain XML is not well-formed: %s",
                   scope.message->len ? scope.message->str : "unknown error");
      return NULL;
    }
  *root = xmlDocGetRootElement (doc);
  if (!*root || !is_element (*root, "domain"))
    {
      g_set_error (error, VMS_DOMAIN_XML_ERROR, VMS_DOMAIN_XML_ERROR_NOT_DOMAIN,
                   "XML root element is <%s>, not a libvirt <domain>",
                   *root ? (const char *)(*root)->name : "");
      return NULL;
    }
  return g_steal_pointer (&doc);
}

/* The <disk> elements under <devices>, in order.  Not owned. */
static GPtrArray *
disk_nodes (xmlNode *root)
{
  GPtrArray *disks = g_ptr_array_new ();

  for (xmlNode *devices = root->children; devices; devices = devices->next)
    if (is_element (devices, "devices"))
      for (xmlNode *node = devices->children; node; node = node->next)
        if (is_element (node, "disk"))
          g_ptr_array_add (disks, node);
  return disks;
}

static char *
disk_target (xmlNode *disk)
{
  xmlNode *target = child_element (disk, "target");

  return target ? prop_dup (target, "dev") : NULL;
}

/* libvirt's default when <disk> has no type or device attribute. */
static char *
disk_type (xmlNode *disk)
{
  char *type = prop_dup (disk, "type");

  return type ? type : g_strdup ("file");
}

static char *
disk_device (xmlNode *disk)
{
  char *device = prop_dup (disk, "device");

  return device ? device : g_strdup ("disk");
}

/* <source file=> or <source dev=>, whichever the disk has, else NULL. */
static char *
disk_source (xmlNode *disk)
{
  xmlNode *source = child_element (disk, "source");
  char *path;

  if (!source)
    return NULL;
  path = prop_dup (source, "file");
  if (!path)
    path = prop_dup (source, "dev");
  if (path && !*path)
    g_clear_pointer (&path, g_free);
  return path;
}

/* libvirt closes every live chain with an empty <backingStore/>; only one
 * with content means an image below this one. */
static gboolean
disk_has_backing (xmlNode *disk)
{
  for (xmlNode *node = disk->children; node; node = node->next)
    if (is_element (node, "backingStore")
        && (node->children || xmlHasProp (node, XC ("type"))))
      return TRUE;
  return FALSE;
}

void
vms_domain_disk_free (VmsDomainDisk *disk)
{
  if (!disk)
    return;
  g_free (disk->target);
  g_free (disk->bus);
  g_free (disk->device);
  g_free (disk->type);
  g_free (disk->source);
  g_free (disk->format);
  g_free (disk->alias);
  g_free (disk);
}

static VmsDomainDisk *
disk_describe (xmlNode *node, guint index, GError **error)
{
  g_autoptr (VmsDomainDisk) disk = g_new0 (VmsDomainDisk, 1);
  xmlNode *child;

  disk->target = disk_target (node);
  if (!disk->target || !*disk->target)
    {
      g_set_error (error, VMS_DOMAIN_XML_ERROR, VMS_DOMAIN_XML_ERROR_INVALID,
                   "disk #%u of the domain has no <target dev=...>", index + 1);
      return NULL;
    }
  if ((child = child_element (node, "target")))
    disk->bus = prop_dup (child, "bus");
  disk->device = disk_device (node);
  disk->type = disk_type (node);
  if (g_str_equal (disk->type, "file"))
    disk->kind = VMS_DOMAIN_DISK_FILE;
  else if (g_str_equal (disk->type, "block"))
    disk->kind = VMS_DOMAIN_DISK_BLOCK;
  else
    disk->kind = VMS_DOMAIN_DISK_OTHER;
  if (disk->kind != VMS_DOMAIN_DISK_OTHER)
    disk->source = disk_source (node);
  if ((child = child_element (node, "driver")))
    disk->format = prop_dup (child, "type");
  if ((child = child_element (node, "alias")))
    disk->alias = prop_dup (child, "name");
  disk->readonly = child_element (node, "readonly") != NULL;
  disk->shareable = child_element (node, "shareable") != NULL;
  disk->has_backing = disk_has_backing (node);
  return g_steal_pointer (&disk);
}

GPtrArray *
vms_domain_xml_disks (const char *xml, GError **error)
{
  g_autoptr (xmlDoc) doc = NULL;
  g_autoptr (GPtrArray) nodes = NULL;
  g_autoptr (GPtrArray) disks = NULL;
  xmlNode *root;

  if (!(doc = parse_domain (xml, &root, error)))
    return NULL;
  nodes = disk_nodes (root);
  disks = g_ptr_array_new_with_free_func ((GDestroyNotify)vms_domain_disk_free);
  for (guint i = 0; i < nodes->len; i++)
    {
      VmsDomainDisk *disk = disk_describe (nodes->pdata[i], i, error);

      if (!disk)
        return NULL;
      g_ptr_array_add (disks, disk);
    }
  return g_steal_pointer (&disks);
}

static char *
element_text (xmlNode *parent, const char *name)
{
  xmlNode *node = child_element (parent, name);
  char *text;

  if (!node)
    return NULL;
  text = g_strstrip (xml_dup (xmlNodeGetContent (node)));
  if (!*text)
    g_clear_pointer (&text, g_free);
  return text;
}

gboolean
vms_domain_xml_identity (const char *xml, char **name, char **uuid,
                         GError **error)
{
  g_autoptr (xmlDoc) doc = NULL;
  g_autofree char *found_name = NULL;
  xmlNode *root;

  if (!(doc = parse_domain (xml, &root, error)))
    return FALSE;
  if (!(found_name = element_text (root, "name")))
    {
      g_set_error (error, VMS_DOMAIN_XML_ERROR, VMS_DOMAIN_XML_ERROR_INVALID,
                   "domain XML has no <name>");
      return FALSE;
    }
  *name = g_steal_pointer (&found_name);
  *uuid = element_text (root, "uuid");
  return TRUE;
}

/* The one <disk> with this target.  A domain XML with two is broken, and
 * rewriting either would be a guess. */
static xmlNode *
find_disk (GPtrArray *nodes, const char *target, GError **error)
{
  xmlNode *found = NULL;

  for (guint i = 0; i < nodes->len; i++)
    {
      g_autofree char *dev = disk_target (nodes->pdata[i]);

      if (!dev || !g_str_equal (dev, target))
        continue;
      if (found)
        {
          g_set_error (error, VMS_DOMAIN_XML_ERROR,
                       VMS_DOMAIN_XML_ERROR_INVALID,
                       "domain XML has two disks with target '%s'", target);
          return NULL;
        }
      found = nodes->pdata[i];
    }
  if (!found)
    g_set_error (error, VMS_DOMAIN_XML_ERROR, VMS_DOMAIN_XML_ERROR_REQUEST,
                 "the domain has no disk with target '%s'", target);
  return found;
}

static gboolean
has_control_bytes (const char *text)
{
  for (const char *p = text; *p; p++)
    if ((guchar)*p < 0x20 || *p == 0x7f)
      return TRUE;
  return FALSE;
}

/* Everything about one replica that can be checked without the XML. */
static gboolean
check_replica (const VmsDomainReplica *replica, GHashTable *seen,
               GError **error)
{
  g_autoptr (GError) local = NULL;

  if (!replica->target || !*replica->target)
    {
      g_set_error (error, VMS_DOMAIN_XML_ERROR, VMS_DOMAIN_XML_ERROR_REQUEST,
                   "replica '%s' names no disk target",
                   replica->replica ? replica->replica : "");
      return FALSE;
    }
  if (!g_hash_table_add (seen, (gpointer)replica->target))
    {
      g_set_error (error, VMS_DOMAIN_XML_ERROR, VMS_DOMAIN_XML_ERROR_REQUEST,
                   "disk '%s' is given two replicas", replica->target);
      return FALSE;
    }
  if (!replica->replica || !vms_sink_name_is_valid (replica->replica, &local))
    {
      g_set_error (error, VMS_DOMAIN_XML_ERROR, VMS_DOMAIN_XML_ERROR_REQUEST,
                   "disk '%s': %s", replica->target,
                   local ? local->message : "no replica name");
      return FALSE;
    }
  if (!replica->path || !g_path_is_absolute (replica->path)
      || has_control_bytes (replica->path))
    {
      g_set_error (error, VMS_DOMAIN_XML_ERROR, VMS_DOMAIN_XML_ERROR_REQUEST,
                   "disk '%s': replica path '%s' is not an absolute path",
                   replica->target, replica->path ? replica->path : "");
      return FALSE;
    }
  return TRUE;
}

/* <driver> says raw; the other attributes (cache, io, discard...) still
 * apply to the replica.  <metadata_cache> tunes qcow2 only. */
static void
disk_set_raw_driver (xmlNode *disk)
{
  xmlNode *driver = child_element (disk, "driver");

  if (!driver)
    {
      driver = xmlNewNode (NULL, XC ("driver"));
      xmlSetProp (driver, XC ("name"), XC ("qemu"));
      if (disk->children)
        xmlAddPrevSibling (disk->children, driver);
      else
        xmlAddChild (disk, driver);
    }
  xmlSetProp (driver, XC ("type"), XC ("raw"));
  remove_children (driver, "metadata_cache");
}

/* A fresh <source file=PATH/>: what described the old source (dev=,
 * pool=, protocol=, <host>, <seclabel>, <reservations>, <slices>, the live
 * index=) does not describe the replica. */
static void
disk_set_file_source (xmlNode *disk, const char *path)
{
  xmlNode *old = child_element (disk, "source");
  xmlNode *source = xmlNewNode (NULL, XC ("source"));

  xmlSetProp (source, XC ("file"), XC (path));
  if (old)
    {
      xmlReplaceNode (old, source);
      xmlFreeNode (old);
    }
  else
    xmlAddNextSibling (child_element (disk, "driver"), source);
}

static void
disk_point_at_replica (xmlNode *disk, const char *path)
{
  xmlSetProp (disk, XC ("type"), XC ("file"));
  disk_set_raw_driver (disk);
  disk_set_file_source (disk, path);
  /* A raw file has no backing chain; a block job's <mirror> and a network
   * source's <auth> belong to the old source.  <encryption> describes the
   * old image format: the replica holds what the guest sees. */
  remove_children (disk, "backingStore");
  remove_children (disk, "mirror");
  remove_children (disk, "auth");
  remove_children (disk, "encryption");
}

static xmlNode *
domain_metadata (xmlNode *root)
{
  xmlNode *metadata = child_element (root, "metadata");
  xmlNode *after = NULL;

  if (metadata)
    return metadata;
  metadata = xmlNewNode (NULL, XC ("metadata"));
  for (xmlNode *node = root->children; node; node = node->next)
    for (guint i = 0; i < G_N_ELEMENTS (metadata_predecessors); i++)
      if (is_element (node, metadata_predecessors[i]))
        after = node;
  if (after)
    xmlAddNextSibling (after, metadata);
  else if (root->children)
    xmlAddPrevSibling (root->children, metadata);
  else
    xmlAddChild (root, metadata);
  return metadata;
}

static void
set_request (xmlNode *root, const char *job_id,
             const VmsDomainReplica *replicas, guint n_replicas)
{
  xmlNode *metadata = domain_metadata (root);
  xmlNode *migration, *next;
  xmlNs *ns;

  for (xmlNode *node = metadata->children; node; node = next)
    {
      next = node->next;
      if (is_our_element (node, "migration"))
        {
          xmlUnlinkNode (node);
          xmlFreeNode (node);
        }
    }
  migration = xmlNewChild (metadata, NULL, XC ("migration"), NULL);
  ns = xmlNewNs (migration, XC (VMS_DOMAIN_XML_NS),
                 XC (VMS_DOMAIN_XML_NS_PREFIX));
  xmlSetNs (migration, ns);
  xmlSetProp (migration, XC ("job"), XC (job_id));
  for (guint i = 0; i < n_replicas; i++)
    {
      xmlNode *disk = xmlNewChild (migration, ns, XC ("disk"), NULL);
      char size[G_ASCII_DTOSTR_BUF_SIZE];

      g_snprintf (size, sizeof size, "%" G_GUINT64_FORMAT, replicas[i].size);
      xmlSetProp (disk, XC ("target"), XC (replicas[i].target));
      xmlSetProp (disk, XC ("replica"), XC (replicas[i].replica));
      xmlSetProp (disk, XC ("size"), XC (size));
    }
}

static gboolean
rename_domain (xmlNode *root, const char *dname, GError **error)
{
  xmlNode *name = child_element (root, "name");

  if (!*dname || strchr (dname, '/') || has_control_bytes (dname))
    {
      g_set_error (error, VMS_DOMAIN_XML_ERROR, VMS_DOMAIN_XML_ERROR_REQUEST,
                   "'%s' is not a usable domain name", dname);
      return FALSE;
    }
  if (!name)
    {
      g_set_error (error, VMS_DOMAIN_XML_ERROR, VMS_DOMAIN_XML_ERROR_INVALID,
                   "domain XML has no <name>");
      return FALSE;
    }
  while (name->children)
    {
      xmlNode *child = name->children;

      xmlUnlinkNode (child);
      xmlFreeNode (child);
    }
  /* AddContent, unlike SetContent, takes the text as is: no entities. */
  xmlNodeAddContent (name, XC (dname));
  return TRUE;
}

/* The root element in UTF-8, indented, without an XML declaration: the
 * form libvirt itself hands to hooks. */
static char *
format_domain (xmlNode *root, GError **error)
{
  g_auto (ErrorScope) scope = { 0 };
  xmlBuffer *buffer;
  xmlSaveCtxt *save;
  g_autofree char *text = NULL;

  scope_enter (&scope);
  buffer = xmlBufferCreate ();
  save = xmlSaveToBuffer (buffer, "UTF-8", XML_SAVE_FORMAT | XML_SAVE_NO_DECL);
  if (!buffer || !save || xmlSaveTree (save, root) < 0
      || xmlSaveClose (save) < 0)
    {
      g_set_error (error, VMS_DOMAIN_XML_ERROR, VMS_DOMAIN_XML_ERROR_PARSE,
                   "cannot format the domain XML: %s",
                   scope.message->len ? scope.message->str : "unknown error");
      if (buffer)
        xmlBufferFree (buffer);
      return NULL;
    }
  text = g_strconcat ((const char *)xmlBufferContent (buffer), "\n", NULL);
  xmlBufferFree (buffer);
  return g_steal_pointer (&text);
}

char *
vms_domain_xml_for_replicas (const char *xml, const char *job_id,
                             const VmsDomainReplica *replicas, guint n_replicas,
                             const char *dname, GError **error)
{
  g_autoptr (xmlDoc) doc = NULL;
  g_autoptr (GPtrArray) nodes = NULL;
  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GPtrArray) targets = g_ptr_array_new ();
  g_autoptr (GError) local = NULL;
  xmlNode *root;

  if (!vms_job_id_is_valid (job_id, &local))
    {
      g_set_error (error, VMS_DOMAIN_XML_ERROR, VMS_DOMAIN_XML_ERROR_REQUEST,
                   "job id '%s': %s", job_id, local->message);
      return NULL;
    }
  if (!(doc = parse_domain (xml, &root, error)))
    return NULL;
  nodes = disk_nodes (root);
  /* Check every replica before changing anything. */
  for (guint i = 0; i < n_replicas; i++)
    {
      xmlNode *disk;
      g_autofree char *device = NULL;

      if (!check_replica (&replicas[i], seen, error)
          || !(disk = find_disk (nodes, replicas[i].target, error)))
        return NULL;
      device = disk_device (disk);
      if (g_str_equal (device, "lun"))
        {
          g_set_error (error, VMS_DOMAIN_XML_ERROR,
                       VMS_DOMAIN_XML_ERROR_REQUEST,
                       "disk '%s' is a SCSI LUN passthrough (device='lun'), "
                       "which libvirt allows only on block devices; a "
                       "replica file cannot stand in for it",
                       replicas[i].target);
          return NULL;
        }
      g_ptr_array_add (targets, disk);
    }
  for (guint i = 0; i < n_replicas; i++)
    disk_point_at_replica (targets->pdata[i], replicas[i].path);
  set_request (root, job_id, replicas, n_replicas);
  if (dname && !rename_domain (root, dname, error))
    return NULL;
  return format_domain (root, error);
}

void
vms_domain_replica_clear (VmsDomainReplica *replica)
{
  g_free ((char *)replica->target);
  g_free ((char *)replica->replica);
  g_free ((char *)replica->path);
  memset (replica, 0, sizeof *replica);
}

static xmlNode *
find_request (xmlNode *root, GError **error)
{
  xmlNode *found = NULL;

  for (xmlNode *metadata = root->children; metadata; metadata = metadata->next)
    {
      if (!is_element (metadata, "metadata"))
        continue;
      for (xmlNode *node = metadata->children; node; node = node->next)
        {
          if (!is_our_element (node, "migration"))
            continue;
          if (found)
            {
              g_set_error (error, VMS_DOMAIN_XML_ERROR,
                           VMS_DOMAIN_XML_ERROR_METADATA,
                           "domain metadata has two vmshift migration "
                           "elements");
              return NULL;
            }
          found = node;
        }
    }
  return found;
}

static gboolean metadata_error (GError **error, const char *format, ...)
    G_GNUC_PRINTF (2, 3);

static gboolean
metadata_error (GError **error, const char *format, ...)
{
  va_list args;
  g_autofree char *message = NULL;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, VMS_DOMAIN_XML_ERROR, VMS_DOMAIN_XML_ERROR_METADATA,
               "vmshift metadata in the domain XML: %s", message);
  return FALSE;
}

static gboolean
read_disk (xmlNode *node, GPtrArray *nodes, GHashTable *seen,
           VmsDomainReplica *replica, GError **error)
{
  g_autofree char *size = prop_dup (node, "size");
  g_autoptr (GError) local = NULL;

  replica->target = prop_dup (node, "target");
  replica->replica = prop_dup (node, "replica");
  if (!replica->target || !*replica->target)
    return metadata_error (error, "a disk has no target");
  if (!g_hash_table_add (seen, g_strdup (replica->target)))
    return metadata_error (error, "disk '%s' is listed twice", replica->target);
  if (!replica->replica || !vms_sink_name_is_valid (replica->replica, &local))
    return metadata_error (error, "disk '%s': %s", replica->target,
                           local ? local->message : "no replica name");
  /* Digits only, as we write it. */
  if (!size || !*size || !g_ascii_isdigit (*size)
      || !g_ascii_string_to_unsigned (size, 10, 0, G_MAXUINT64, &replica->size,
                                      NULL))
    return metadata_error (error, "disk '%s': size '%s' is not a number",
                           replica->target, size ? size : "");
  for (guint i = 0; i < nodes->len; i++)
    {
      g_autofree char *dev = disk_target (nodes->pdata[i]);

      if (dev && g_str_equal (dev, replica->target))
        {
          replica->path = disk_source (nodes->pdata[i]);
          break;
        }
    }
  return TRUE;
}

gboolean
vms_domain_xml_read_request (const char *xml, gboolean *found, char **job_id,
                             GArray **replicas, GError **error)
{
  g_autoptr (xmlDoc) doc = NULL;
  g_autoptr (GPtrArray) nodes = NULL;
  g_autoptr (GHashTable) seen
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr (GArray) list = NULL;
  g_autoptr (GError) local = NULL;
  g_autofree char *job = NULL;
  xmlNode *root, *request;

  *found = FALSE;
  if (!(doc = parse_domain (xml, &root, error)))
    return FALSE;
  if (!(request = find_request (root, &local)))
    {
      if (!local)
        return FALSE;
      *found = TRUE;
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  *found = TRUE;
  job = prop_dup (request, "job");
  if (!job || !vms_job_id_is_valid (job, &local))
    return metadata_error (error, "job id: %s",
                           local ? local->message : "missing");
  nodes = disk_nodes (root);
  list = g_array_new (FALSE, TRUE, sizeof (VmsDomainReplica));
  g_array_set_clear_func (list, (GDestroyNotify)vms_domain_replica_clear);
  for (xmlNode *node = request->children; node; node = node->next)
    {
      /* Elements a later version adds are not ours to refuse. */
      if (!is_our_element (node, "disk"))
        continue;
      g_array_set_size (list, list->len + 1);
      if (!read_disk (node, nodes, seen,
                      &g_array_index (list, VmsDomainReplica, list->len - 1),
                      error))
        return FALSE;
    }
  *job_id = g_steal_pointer (&job);
  *replicas = g_steal_pointer (&list);
  return TRUE;
}
