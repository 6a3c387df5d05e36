/* Unit tests: libvirt domain XML, listed, rewritten for replicas, read back.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "vms-domain-xml.h"

/* What libvirt 9 shows for a running domain (virsh dumpxml): a qcow2
 * overlay on a base image, a raw LV, an empty cdrom and an NBD disk. */
static const char live_xml[]
    = "<domain type='kvm' id='3' "
      "xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n"
      "  <name>web1</name>\n"
      "  <uuid>6f2b9a54-2c1e-4d3a-9d8e-1b2c3d4e5f60</uuid>\n"
      "  <title>Web server \xc3\xa9\xc3\xa9n</title>\n"
      "  <memory unit='KiB'>2097152</memory>\n"
      "  <currentMemory unit='KiB'>2097152</currentMemory>\n"
      "  <vcpu placement='static'>2</vcpu>\n"
      "  <resource>\n"
      "    <partition>/machine</partition>\n"
      "  </resource>\n"
      "  <os>\n"
      "    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>\n"
      "    <boot dev='hd'/>\n"
      "  </os>\n"
      "  <devices>\n"
      "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
      "    <disk type='file' device='disk'>\n"
      "      <driver name='qemu' type='qcow2' cache='none' io='native' "
      "discard='unmap'>\n"
      "        <metadata_cache>\n"
      "          <max_size unit='bytes'>1234</max_size>\n"
      "        </metadata_cache>\n"
      "      </driver>\n"
      "      <source file='/var/lib/libvirt/images/web1-overlay.qcow2' "
      "index='2'>\n"
      "        <seclabel model='dac' relabel='no'/>\n"
      "      </source>\n"
      "      <backingStore type='file' index='3'>\n"
      "        <format type='qcow2'/>\n"
      "        <source file='/var/lib/libvirt/images/debian12-base.qcow2'/>\n"
      "        <backingStore/>\n"
      "      </backingStore>\n"
      "      <target dev='vda' bus='virtio'/>\n"
      "      <alias name='virtio-disk0'/>\n"
      "      <address type='pci' domain='0x0000' bus='0x04' slot='0x00' "
      "function='0x0'/>\n"
      "    </disk>\n"
      "    <disk type='block' device='disk'>\n"
      "      <driver name='qemu' type='raw' cache='none' io='native'/>\n"
      "      <source dev='/dev/vg0/web1-data' index='1'/>\n"
      "      <backingStore/>\n"
      "      <target dev='vdb' bus='virtio'/>\n"
      "      <serial>data-01</serial>\n"
      "      <alias name='virtio-disk1'/>\n"
      "      <address type='pci' domain='0x0000' bus='0x05' slot='0x00' "
      "function='0x0'/>\n"
      "    </disk>\n"
      "    <disk type='file' device='cdrom'>\n"
      "      <driver name='qemu'/>\n"
      "      <target dev='sda' bus='sata'/>\n"
      "      <readonly/>\n"
      "      <alias name='sata0-0-0'/>\n"
      "      <address type='drive' controller='0' bus='0' target='0' "
      "unit='0'/>\n"
      "    </disk>\n"
      "    <disk type='network' device='disk'>\n"
      "      <driver name='qemu' type='raw'/>\n"
      "      <source protocol='nbd' name='export1' index='4'>\n"
      "        <host name='storage.example.org' port='10809'/>\n"
      "      </source>\n"
      "      <target dev='vdc' bus='virtio'/>\n"
      "      <shareable/>\n"
      "      <alias name='virtio-disk2'/>\n"
      "    </disk>\n"
      "    <interface type='network'>\n"
      "      <source network='default'/>\n"
      "      <model type='virtio'/>\n"
      "    </interface>\n"
      "  </devices>\n"
      "  <seclabel type='dynamic' model='dac' relabel='yes'/>\n"
      "  <qemu:commandline>\n"
      "    <qemu:arg value='-no-user-config'/>\n"
      "  </qemu:commandline>\n"
      "</domain>\n";

/* An inactive definition with a volume disk, a disk without <driver>, a
 * LUN, and metadata of another application plus an old vmshift request. */
static const char inactive_xml[]
    = "<domain type='kvm'>\n"
      "  <name>db2</name>\n"
      "  <uuid>0a6c1d2e-3f40-4152-8364-75869708a9b0</uuid>\n"
      "  <metadata>\n"
      "    <app:owner xmlns:app='https://example.org/app'>ops</app:owner>\n"
      "    <vmshift:migration xmlns:vmshift='https://vmshift.org/xmlns/"
      "libvirt/1' job='old-job'>\n"
      "      <vmshift:disk target='vdz' replica='stale' size='1'/>\n"
      "    </vmshift:migration>\n"
      "  </metadata>\n"
      "  <memory unit='KiB'>1048576</memory>\n"
      "  <devices>\n"
      "    <disk type='volume' device='disk'>\n"
      "      <driver name='qemu' type='qcow2' cache='writeback'/>\n"
      "      <source pool='default' volume='db2.qcow2'/>\n"
      "      <target dev='vda' bus='virtio'/>\n"
      "    </disk>\n"
      "    <disk device='disk'>\n"
      "      <source file='/srv/db2-extra.img'/>\n"
      "      <target dev='vdb'/>\n"
      "    </disk>\n"
      "    <disk type='block' device='lun'>\n"
      "      <driver name='qemu' type='raw'/>\n"
      "      <source dev='/dev/sdx'/>\n"
      "      <target dev='sdb' bus='scsi'/>\n"
      "    </disk>\n"
      "  </devices>\n"
      "</domain>\n";

/* A minimal one: no <metadata>, nothing before <name> but <name>. */
static const char bare_xml[] = "<domain type='kvm'><name>bare</name>"
                               "<memory>1024</memory><devices>"
                               "<disk type='file'><source file='/a.img'/>"
                               "<target dev='hda'/></disk>"
                               "</devices></domain>";

static const VmsDomainReplica live_replicas[] = {
  { "vda", "web1-vda", "/var/lib/vmshift/replicas/web1-vda",
    G_GUINT64_CONSTANT (21474836480) },
  { "vdb", "web1-vdb", "/var/lib/vmshift/replicas/web1-vdb",
    G_GUINT64_CONSTANT (107374182400) },
  { "vdc", "web1-vdc", "/var/lib/vmshift/replicas/web1-vdc", 1048576 },
};

static VmsDomainDisk *
find_disk (GPtrArray *disks, const char *target)
{
  for (guint i = 0; i < disks->len; i++)
    {
      VmsDomainDisk *disk = disks->pdata[i];

      if (g_str_equal (disk->target, target))
        return disk;
    }
  fail_msg ("no disk %s", target);
  return NULL;
}

static void
test_disks_of_live_domain (void **state)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) disks = vms_domain_xml_disks (live_xml, &error);
  VmsDomainDisk *disk;

  assert_non_null (disks);
  assert_int_equal (disks->len, 4);

  disk = disks->pdata[0];
  assert_string_equal (disk->target, "vda");
  assert_string_equal (disk->bus, "virtio");
  assert_string_equal (disk->device, "disk");
  assert_string_equal (disk->type, "file");
  assert_int_equal (disk->kind, VMS_DOMAIN_DISK_FILE);
  assert_string_equal (disk->source,
                       "/var/lib/libvirt/images/web1-overlay.qcow2");
  assert_string_equal (disk->format, "qcow2");
  assert_string_equal (disk->alias, "virtio-disk0");
  assert_true (disk->has_backing);
  assert_false (disk->readonly);

  disk = disks->pdata[1];
  assert_string_equal (disk->target, "vdb");
  assert_int_equal (disk->kind, VMS_DOMAIN_DISK_BLOCK);
  assert_string_equal (disk->source, "/dev/vg0/web1-data");
  assert_string_equal (disk->format, "raw");
  /* The empty <backingStore/> closing a live chain is no backing. */
  assert_false (disk->has_backing);

  disk = disks->pdata[2];
  assert_string_equal (disk->target, "sda");
  assert_string_equal (disk->device, "cdrom");
  assert_string_equal (disk->bus, "sata");
  assert_null (disk->source);
  assert_null (disk->format);
  assert_true (disk->readonly);

  disk = disks->pdata[3];
  assert_string_equal (disk->target, "vdc");
  assert_string_equal (disk->type, "network");
  assert_int_equal (disk->kind, VMS_DOMAIN_DISK_OTHER);
  assert_null (disk->source);
  assert_true (disk->shareable);
}

static void
test_disks_of_inactive_domain (void **state)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) disks = vms_domain_xml_disks (inactive_xml, &error);
  VmsDomainDisk *disk;

  assert_non_null (disks);
  assert_int_equal (disks->len, 3);
  disk = disks->pdata[0];
  assert_string_equal (disk->type, "volume");
  assert_null (disk->source);
  assert_null (disk->alias);
  /* libvirt's defaults for a missing type= and device=. */
  disk = disks->pdata[1];
  assert_string_equal (disk->type, "file");
  assert_string_equal (disk->device, "disk");
  assert_string_equal (disk->source, "/srv/db2-extra.img");
  assert_null (disk->bus);
  assert_null (disk->format);
  disk = disks->pdata[2];
  assert_string_equal (disk->device, "lun");
}

static void
test_identity (void **state)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *name = NULL;
  g_autofree char *uuid = NULL;

  assert_true (vms_domain_xml_identity (live_xml, &name, &uuid, &error));
  assert_string_equal (name, "web1");
  assert_string_equal (uuid, "6f2b9a54-2c1e-4d3a-9d8e-1b2c3d4e5f60");
  g_clear_pointer (&name, g_free);
  g_clear_pointer (&uuid, g_free);
  assert_true (vms_domain_xml_identity (bare_xml, &name, &uuid, &error));
  assert_string_equal (name, "bare");
  assert_null (uuid);
}

static guint
count (const char *haystack, const char *needle)
{
  guint n = 0;

  for (const char *at = haystack; (at = strstr (at, needle)); at++)
    n++;
  return n;
}

static const char *
after (const char *haystack, const char *first, const char *second)
{
  const char *a = strstr (haystack, first);
  const char *b = strstr (haystack, second);

  assert_non_null (a);
  assert_non_null (b);
  assert_true (a < b);
  return a;
}

static void
test_rewrite_and_read_back (void **state)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *out = NULL;
  g_autoptr (GPtrArray) disks = NULL;
  g_autoptr (GArray) request = NULL;
  g_autofree char *job_id = NULL;
  gboolean found = FALSE;
  VmsDomainDisk *disk;

  out = vms_domain_xml_for_replicas (live_xml, "job-7", live_replicas,
                                     G_N_ELEMENTS (live_replicas), NULL,
                                     &error);
  assert_null (error);
  assert_non_null (out);

  disks = vms_domain_xml_disks (out, &error);
  assert_non_null (disks);
  assert_int_equal (disks->len, 4);
  for (guint i = 0; i < G_N_ELEMENTS (live_replicas); i++)
    {
      disk = find_disk (disks, live_replicas[i].target);
      assert_string_equal (disk->type, "file");
      assert_int_equal (disk->kind, VMS_DOMAIN_DISK_FILE);
      assert_string_equal (disk->source, live_replicas[i].path);
      assert_string_equal (disk->format, "raw");
      assert_false (disk->has_backing);
    }
  /* What the guest sees stays: bus, alias, serial, address, flags. */
  disk = find_disk (disks, "vdc");
  assert_true (disk->shareable);
  assert_string_equal (disk->bus, "virtio");
  assert_non_null (strstr (out, "<serial>data-01</serial>"));
  /* The disk not asked for is untouched. */
  disk = find_disk (disks, "sda");
  assert_null (disk->source);
  assert_true (disk->readonly);

  /* The old source's details are gone, the driver's tuning is kept. */
  assert_null (strstr (out, "backingStore"));
  assert_null (strstr (out, "debian12-base"));
  assert_null (strstr (out, "index="));
  assert_null (strstr (out, "relabel=\"no\""));
  assert_null (strstr (out, "metadata_cache"));
  assert_null (strstr (out, "protocol="));
  assert_null (strstr (out, "storage.example.org"));
  assert_non_null (strstr (out, "cache=\"none\" io=\"native\" "
                                "discard=\"unmap\""));
  /* The rest of the domain survives, in UTF-8 and with its namespaces. */
  assert_non_null (strstr (out, "<title>Web server \xc3\xa9\xc3\xa9n</title>"));
  assert_non_null (strstr (out, "<qemu:arg value=\"-no-user-config\"/>"));
  assert_non_null (strstr (out, "<seclabel type=\"dynamic\""));
  assert_non_null (strstr (out, "<name>web1</name>"));
  /* <metadata> goes where libvirt puts it: after <title>. */
  after (out, "<title>", "<metadata>");
  after (out, "<metadata>", "<memory");
  assert_non_null (
      strstr (out, "<vmshift:migration xmlns:vmshift=\"" VMS_DOMAIN_XML_NS
                   "\" job=\"job-7\">"));
  assert_non_null (strstr (out, "<vmshift:disk target=\"vdb\" "
                                "replica=\"web1-vdb\" "
                                "size=\"107374182400\"/>"));

  assert_true (
      vms_domain_xml_read_request (out, &found, &job_id, &request, &error));
  assert_true (found);
  assert_string_equal (job_id, "job-7");
  assert_int_equal (request->len, G_N_ELEMENTS (live_replicas));
  for (guint i = 0; i < request->len; i++)
    {
      VmsDomainReplica *replica = &g_array_index (request, VmsDomainReplica, i);

      assert_string_equal (replica->target, live_replicas[i].target);
      assert_string_equal (replica->replica, live_replicas[i].replica);
      assert_string_equal (replica->path, live_replicas[i].path);
      assert_int_equal (replica->size, live_replicas[i].size);
    }
}

/* Rewriting twice (the hook after the source) leaves one request, the
 * last, and keeps other applications' metadata. */
static void
test_rewrite_replaces_request (void **state)
{
  const VmsDomainReplica first[] = {
    { "vda", "db2-vda", "/srv/guess/db2-vda", 4096 },
  };
  const VmsDomainReplica second[] = {
    { "vda", "db2-vda", "/var/lib/vmshift/replicas/db2-vda", 4096 },
    { "vdb", "db2-vdb", "/var/lib/vmshift/replicas/db2-vdb", 8192 },
  };
  g_autoptr (GError) error = NULL;
  g_autofree char *once = NULL;
  g_autofree char *twice = NULL;
  g_autoptr (GArray) request = NULL;
  g_autofree char *job_id = NULL;
  g_autoptr (GPtrArray) disks = NULL;
  gboolean found;

  once = vms_domain_xml_for_replicas (inactive_xml, "job-8", first, 1, NULL,
                                      &error);
  assert_non_null (once);
  assert_null (strstr (once, "old-job"));
  assert_null (strstr (once, "pool="));
  /* A disk without <driver> gets one. */
  twice = vms_domain_xml_for_replicas (once, "job-8", second, 2, "db2-new",
                                       &error);
  assert_non_null (twice);
  assert_non_null (strstr (twice, "<driver name=\"qemu\" type=\"raw\"/>"));
  assert_non_null (strstr (twice, "cache=\"writeback\""));
  assert_non_null (strstr (twice, "<app:owner xmlns:app=\"https://"
                                  "example.org/app\">ops</app:owner>"));
  assert_non_null (strstr (twice, "<name>db2-new</name>"));
  assert_null (strstr (twice, "/srv/guess"));
  assert_int_equal (count (twice, "<vmshift:migration"), 1);

  assert_true (
      vms_domain_xml_read_request (twice, &found, &job_id, &request, &error));
  assert_int_equal (request->len, 2);
  assert_string_equal (g_array_index (request, VmsDomainReplica, 1).path,
                       "/var/lib/vmshift/replicas/db2-vdb");
  disks = vms_domain_xml_disks (twice, &error);
  assert_string_equal (find_disk (disks, "vda")->type, "file");
}

static void
test_metadata_created_after_name (void **state)
{
  const VmsDomainReplica replica[]
      = { { "hda", "bare-hda", "/r/bare-hda", 512 } };
  g_autoptr (GError) error = NULL;
  g_autofree char *out
      = vms_domain_xml_for_replicas (bare_xml, "j", replica, 1, NULL, &error);

  assert_non_null (out);
  after (out, "<name>bare</name>", "<metadata>");
  after (out, "</metadata>", "<memory>");
  /* The output is indented, like libvirt's own. */
  assert_non_null (strstr (out, "\n  <name>bare</name>\n"));
}

static void
test_no_request (void **state)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *job_id = NULL;
  g_autoptr (GArray) request = NULL;
  gboolean found = TRUE;

  assert_false (vms_domain_xml_read_request (live_xml, &found, &job_id,
                                             &request, &error));
  assert_false (found);
  assert_null (error);
  assert_null (job_id);
  assert_null (request);
}

static void
expect_request_error (const char *xml, const VmsDomainReplica *replicas,
                      guint n, const char *job, const char *message)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *out
      = vms_domain_xml_for_replicas (xml, job, replicas, n, NULL, &error);

  assert_null (out);
  assert_non_null (error);
  if (!strstr (error->message, message))
    fail_msg ("'%s' does not say '%s'", error->message, message);
}

static void
test_request_errors (void **state)
{
  const VmsDomainReplica unknown[] = { { "vdz", "web1-vdz", "/r/x", 1 } };
  const VmsDomainReplica twice[]
      = { { "vda", "a", "/r/a", 1 }, { "vda", "b", "/r/b", 1 } };
  const VmsDomainReplica relative[] = { { "vda", "a", "r/a", 1 } };
  const VmsDomainReplica no_path[] = { { "vda", "a", NULL, 1 } };
  const VmsDomainReplica lun[] = { { "sdb", "db2-sdb", "/r/db2-sdb", 1 } };
  const char *const bad_names[] = { "",   "../etc", "a/b",       ".hidden",
                                    "-x", "a..b",   "tab\there", "semi;colon" };

  expect_request_error (live_xml, unknown, 1, "j",
                        "no disk with target "
                        "'vdz'");
  expect_request_error (live_xml, twice, 2, "j", "disk 'vda' is given two");
  expect_request_error (live_xml, relative, 1, "j",
                        "'r/a' is not an "
                        "absolute path");
  expect_request_error (live_xml, no_path, 1, "j", "not an absolute path");
  expect_request_error (inactive_xml, lun, 1, "j", "device='lun'");
  expect_request_error (live_xml, live_replicas, 1, "../job", "job id");
  for (guint i = 0; i < G_N_ELEMENTS (bad_names); i++)
    {
      const VmsDomainReplica bad[] = { { "vda", bad_names[i], "/r/x", 1 } };

      expect_request_error (live_xml, bad, 1, "j", "replica name");
    }
}

static void
test_duplicate_target_in_domain (void **state)
{
  static const char xml[]
      = "<domain><name>d</name><devices>"
        "<disk type='file'><source file='/a'/><target dev='vda'/></disk>"
        "<disk type='file'><source file='/b'/><target dev='vda'/></disk>"
        "</devices></domain>";
  const VmsDomainReplica replica[] = { { "vda", "d-vda", "/r/d-vda", 1 } };

  expect_request_error (xml, replica, 1, "j", "two disks with target 'vda'");
}

static void
expect_parse_error (const char *xml, gint code, const char *message)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) disks = vms_domain_xml_disks (xml, &error);
  g_autofree char *job_id = NULL;
  g_autoptr (GArray) request = NULL;
  gboolean found = TRUE;

  assert_null (disks);
  assert_true (g_error_matches (error, VMS_DOMAIN_XML_ERROR, code));
  if (!strstr (error->message, message))
    fail_msg ("'%s' does not say '%s'", error->message, message);
  g_clear_error (&error);
  assert_false (
      vms_domain_xml_read_request (xml, &found, &job_id, &request, &error));
  assert_false (found);
  assert_true (g_error_matches (error, VMS_DOMAIN_XML_ERROR, code));
}

static void
test_not_a_domain (void **state)
{
  expect_parse_error ("<network><name>default</name></network>",
                      VMS_DOMAIN_XML_ERROR_NOT_DOMAIN, "<network>");
  expect_parse_error ("<x:domain xmlns:x='urn:other'/>",
                      VMS_DOMAIN_XML_ERROR_NOT_DOMAIN, "not a libvirt");
}

static void
test_malformed (void **state)
{
  expect_parse_error ("<domain><name>x</domain>", VMS_DOMAIN_XML_ERROR_PARSE,
                      "not well-formed");
  expect_parse_error ("", VMS_DOMAIN_XML_ERROR_PARSE, "not well-formed");
  expect_parse_error ("<domain><name>&undefined;</name></domain>",
                      VMS_DOMAIN_XML_ERROR_PARSE, "not well-formed");
}

/* An external entity must never be read: the file's text must not reach
 * the output or the message. */
static void
test_external_entity_refused (void **state)
{
  g_autofree char *dir = g_dir_make_tmp ("vms-xxe-XXXXXX", NULL);
  g_autofree char *secret = g_build_filename (dir, "secret", NULL);
  g_autofree char *xml = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *name = NULL;
  g_autofree char *uuid = NULL;

  assert_true (g_file_set_contents (secret, "TOPSECRET", -1, NULL));
  xml = g_strdup_printf ("<?xml version='1.0'?>\n"
                         "<!DOCTYPE domain [\n"
                         "  <!ENTITY xxe SYSTEM 'file://%s'>\n"
                         "]>\n"
                         "<domain><name>&xxe;</name></domain>",
                         secret);
  assert_false (vms_domain_xml_identity (xml, &name, &uuid, &error));
  assert_true (g_error_matches (error, VMS_DOMAIN_XML_ERROR,
                                VMS_DOMAIN_XML_ERROR_PARSE));
  assert_non_null (strstr (error->message, "DOCTYPE"));
  assert_null (strstr (error->message, "TOPSECRET"));
  assert_null (name);
  g_unlink (secret);
  g_rmdir (dir);

  /* Nor an expansion bomb, nor an external DTD. */
  expect_parse_error ("<!DOCTYPE domain [<!ENTITY a 'aaaaaaaaaa'>"
                      "<!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'>]>"
                      "<domain><name>&b;</name></domain>",
                      VMS_DOMAIN_XML_ERROR_PARSE, "DOCTYPE");
  expect_parse_error ("<!DOCTYPE domain SYSTEM 'http://127.0.0.1:9/d.dtd'>"
                      "<domain><name>x</name></domain>",
                      VMS_DOMAIN_XML_ERROR_PARSE, "DOCTYPE");
}

/* libxml2 reports into the GError, never onto stderr (which is what
 * libvirt shows from the hook). */
static void
test_errors_not_printed (void **state)
{
  g_autofree char *path = NULL;
  int fd = g_file_open_tmp ("vms-stderr-XXXXXX", &path, NULL);
  int saved = dup (STDERR_FILENO);
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) disks = NULL;
  g_autofree char *captured = NULL;

  assert_true (fd >= 0 && saved >= 0);
  fflush (stderr);
  dup2 (fd, STDERR_FILENO);
  disks = vms_domain_xml_disks ("<domain><devices></domain>", &error);
  fflush (stderr);
  dup2 (saved, STDERR_FILENO);
  close (saved);
  close (fd);
  assert_null (disks);
  assert_non_null (strstr (error->message, "line 1"));
  assert_true (g_file_get_contents (path, &captured, NULL, NULL));
  assert_string_equal (captured, "");
  g_unlink (path);
}

static void
expect_metadata_error (const char *disk_attributes, const char *message)
{
  g_autofree char *xml = g_strdup_printf (
      "<domain><name>d</name><metadata>"
      "<v:migration xmlns:v='" VMS_DOMAIN_XML_NS "' job='j'>"
      "<v:disk %s/></v:migration></metadata><devices/></domain>",
      disk_attributes);
  g_autoptr (GError) error = NULL;
  g_autofree char *job_id = NULL;
  g_autoptr (GArray) request = NULL;
  gboolean found = FALSE;

  assert_false (
      vms_domain_xml_read_request (xml, &found, &job_id, &request, &error));
  assert_true (found);
  assert_true (g_error_matches (error, VMS_DOMAIN_XML_ERROR,
                                VMS_DOMAIN_XML_ERROR_METADATA));
  if (!strstr (error->message, message))
    fail_msg ("'%s' does not say '%s'", error->message, message);
}

static void
test_bad_metadata (void **state)
{
  expect_metadata_error ("target='vda' replica='ok' size='12x'",
                         "not a number");
  expect_metadata_error ("target='vda' replica='ok' size='-1'", "not a number");
  expect_metadata_error ("target='vda' replica='ok'", "not a number");
  expect_metadata_error ("target='vda' replica='../../etc/shadow' size='1'",
                         "replica name");
  expect_metadata_error ("replica='ok' size='1'", "no target");
}

/* Read back with any prefix: libvirt may not keep ours. */
static void
test_request_other_prefix (void **state)
{
  static const char xml[]
      = "<domain><name>d</name><metadata>"
        "<m:migration xmlns:m='" VMS_DOMAIN_XML_NS "' job='job-1'>"
        "<m:disk target='vda' replica='d-vda' size='4096'/>"
        "<m:future-element/>"
        "</m:migration></metadata><devices>"
        "<disk type='block'><source dev='/dev/x'/><target dev='vda'/></disk>"
        "</devices></domain>";
  g_autoptr (GError) error = NULL;
  g_autofree char *job_id = NULL;
  g_autoptr (GArray) request = NULL;
  gboolean found;

  assert_true (
      vms_domain_xml_read_request (xml, &found, &job_id, &request, &error));
  assert_int_equal (request->len, 1);
  assert_string_equal (g_array_index (request, VmsDomainReplica, 0).path,
                       "/dev/x");
  assert_int_equal (g_array_index (request, VmsDomainReplica, 0).size, 4096);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_disks_of_live_domain),
    cmocka_unit_test (test_disks_of_inactive_domain),
    cmocka_unit_test (test_identity),
    cmocka_unit_test (test_rewrite_and_read_back),
    cmocka_unit_test (test_rewrite_replaces_request),
    cmocka_unit_test (test_metadata_created_after_name),
    cmocka_unit_test (test_no_request),
    cmocka_unit_test (test_request_errors),
    cmocka_unit_test (test_duplicate_target_in_domain),
    cmocka_unit_test (test_not_a_domain),
    cmocka_unit_test (test_malformed),
    cmocka_unit_test (test_external_entity_refused),
    cmocka_unit_test (test_errors_not_printed),
    cmocka_unit_test (test_bad_metadata),
    cmocka_unit_test (test_request_other_prefix),
  };

  return cmocka_run_group_tests_name ("domain-xml", tests, NULL, NULL);
}
