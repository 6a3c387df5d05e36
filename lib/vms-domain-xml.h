/* vmshift: read and rewrite libvirt domain XML for a migration to replicas.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Pure functions on XML text: no libvirt connection.  The source side
 * builds the destination XML with them and the destination's libvirt hook
 * reads the request back and checks it against the replicas on disk.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define VMS_DOMAIN_XML_ERROR (vms_domain_xml_error_quark ())
GQuark vms_domain_xml_error_quark (void);

typedef enum
{
  VMS_DOMAIN_XML_ERROR_PARSE,      /* not well-formed XML, or has a DOCTYPE */
  VMS_DOMAIN_XML_ERROR_NOT_DOMAIN, /* the root element is not <domain> */
  VMS_DOMAIN_XML_ERROR_INVALID,    /* a domain element we need is missing or
                                      wrong, e.g. a disk without target */
  VMS_DOMAIN_XML_ERROR_REQUEST,    /* the replicas asked for do not fit the
                                      domain: unknown or duplicate target, bad
                                      replica name, relative path */
  VMS_DOMAIN_XML_ERROR_METADATA,   /* our <metadata> element is malformed */
} VmsDomainXmlError;

/* XML namespace of vmshift's element in the domain's <metadata>. */
#define VMS_DOMAIN_XML_NS "https://vmshift.org/xmlns/libvirt/1"
/* Prefix written with it; readers match the namespace, not the prefix. */
#define VMS_DOMAIN_XML_NS_PREFIX "vmshift"

typedef enum
{
  VMS_DOMAIN_DISK_FILE,  /* <disk type='file'> */
  VMS_DOMAIN_DISK_BLOCK, /* <disk type='block'> */
  VMS_DOMAIN_DISK_OTHER, /* network, volume, nvme, vhostuser, dir... */
} VmsDomainDiskType;

typedef struct
{
  char *target;           /* <target dev='vda'> */
  char *bus;              /* <target bus=...> or NULL */
  char *device;           /* 'disk', 'cdrom', 'floppy', 'lun' */
  char *type;             /* the <disk type=...> text */
  VmsDomainDiskType kind; /* type as an enum */
  char *source;           /* <source file=> or <source dev=>; NULL when empty
                             (cdrom without media) or not a file/block disk */
  char *format;         /* <driver type=...> e.g. qcow2, raw; NULL if absent */
  char *alias;          /* <alias name=...> (live XML only) or NULL */
  gboolean readonly;    /* <readonly/> */
  gboolean shareable;   /* <shareable/> */
  gboolean has_backing; /* a non-empty <backingStore> (qcow2 overlay) */
} VmsDomainDisk;

void vms_domain_disk_free (VmsDomainDisk *disk);

/* All <devices><disk> elements in document order, as a GPtrArray of
 * VmsDomainDisk* that frees them.  Caller unrefs. */
GPtrArray *vms_domain_xml_disks (const char *xml, GError **error);

/* The domain's <name> and <uuid>; *uuid is NULL when the XML has none.
 * Caller frees both. */
gboolean vms_domain_xml_identity (const char *xml, char **name, char **uuid,
                                  GError **error);

typedef struct
{
  const char *target;  /* disk target, e.g. "vda" */
  const char *replica; /* replica name at the sink */
  const char *path;    /* absolute path of the replica on the destination;
                          NULL when unknown (read back only) */
  guint64 size;        /* replica size in bytes */
} VmsDomainReplica;

/* Frees the strings of a replica that vms_domain_xml_read_request filled;
 * the GArray it returns calls this itself. */
void vms_domain_replica_clear (VmsDomainReplica *replica);

/* The destination XML: each replica's disk becomes a raw file disk at
 * replica->path (type='file', <source file=PATH/> and nothing else in
 * <source>, <driver type='raw'> keeping its other attributes, no
 * <backingStore>), and <metadata> gets
 *   <vmshift:migration xmlns:vmshift=VMS_DOMAIN_XML_NS job="JOB">
 *     <vmshift:disk target="vda" replica="NAME" size="BYTES"/>...
 * replacing an earlier one.  Every path must be absolute.  dname, if not
 * NULL, renames the domain.  Caller frees. */
char *vms_domain_xml_for_replicas (const char *xml, const char *job_id,
                                   const VmsDomainReplica *replicas,
                                   guint n_replicas, const char *dname,
                                   GError **error);

/* Read back what vms_domain_xml_for_replicas recorded: the job id and a
 * GArray of VmsDomainReplica (owned strings; path is the disk's current
 * <source file=> or <source dev=>, or NULL).  Without vmshift metadata,
 * returns FALSE with *found = FALSE and no error.  Caller frees *job_id
 * and unrefs *replicas. */
gboolean vms_domain_xml_read_request (const char *xml, gboolean *found,
                                      char **job_id, GArray **replicas,
                                      GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsDomainDisk, vms_domain_disk_free)

G_END_DECLS
