/* Unit tests: the seed format written and read back, and the seeds a
 * reader refuses (damaged chunk, cut short, never finished, not a seed).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <glib/gstdio.h>
#include <unistd.h>

#include "vms-seed.h"

#define CHUNK (64 * 1024)
/* Disk 0: random, compressible, zero, random chunks; disk 1: a short
 * one. */
#define DISK0 (4 * CHUNK)
#define DISK1 (CHUNK / 2 + 100)

typedef struct
{
  char *dir;
  char *path;
  guint8 *disk0;
  guint8 *disk1;
} Fixture;

static int
setup (void **state)
{
  Fixture *fixture = g_new0 (Fixture, 1);
  g_autoptr (GRand) rand = g_rand_new_with_seed (3);

  fixture->dir = g_dir_make_tmp ("vms-seed-XXXXXX", NULL);
  fixture->path = g_build_filename (fixture->dir, "seed", NULL);
  fixture->disk0 = g_malloc0 (DISK0);
  fixture->disk1 = g_malloc0 (DISK1);
  for (gsize i = 0; i < DISK0; i++)
    fixture->disk0[i] = g_rand_int (rand);
  for (gsize i = CHUNK; i < 2 * CHUNK; i++)
    fixture->disk0[i] = i % 7 == 0 ? 'x' : 'y';
  memset (fixture->disk0 + 2 * CHUNK, 0, CHUNK);
  for (gsize i = 0; i < DISK1; i++)
    fixture->disk1[i] = g_rand_int (rand);
  *state = fixture;
  return 0;
}

static int
teardown (void **state)
{
  Fixture *fixture = *state;

  g_unlink (fixture->path);
  g_rmdir (fixture->dir);
  g_free (fixture->dir);
  g_free (fixture->path);
  g_free (fixture->disk0);
  g_free (fixture->disk1);
  g_free (fixture);
  return 0;
}

static JsonObject *
manifest (void)
{
  JsonObject *object = json_object_new ();
  JsonArray *disks = json_array_new ();
  const char *names[] = { "vd0", "vd1" };
  const guint64 sizes[] = { DISK0, DISK1 };

  for (guint i = 0; i < 2; i++)
    {
      JsonObject *disk = json_object_new ();
      g_autofree char *replica = g_strdup_printf ("vm-%s", names[i]);

      json_object_set_string_member (disk, "name", names[i]);
      json_object_set_string_member (disk, "replica", replica);
      json_object_set_int_member (disk, "size", sizes[i]);
      json_array_add_object_element (disks, disk);
    }
  json_object_set_array_member (object, "disks", disks);
  json_object_set_string_member (object, "job", "j1");
  return object;
}

/* Write the fixture's disks; finish unless told not to.  Returns the
 * seed's size. */
static guint64
write_seed (Fixture *fixture, gboolean finish)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsSeedWriter) writer
      = vms_seed_writer_create (fixture->path, CHUNK, &error);
  guint64 stored, total = 0;

  assert_non_null (writer);
  for (guint64 at = 0; at < DISK0; at += CHUNK)
    {
      assert_true (vms_seed_writer_add (writer, 0, at, fixture->disk0 + at,
                                        CHUNK, &stored, &error));
      /* Zeroes take no room, compressible data little, random all. */
      if (at == 2 * CHUNK)
        assert_int_equal (stored, 0);
      else if (at == CHUNK)
        assert_true (stored < CHUNK / 8);
      else
        assert_true (stored > CHUNK);
      total += stored;
    }
  assert_true (vms_seed_writer_add (writer, 1, 0, fixture->disk1, DISK1,
                                    &stored, &error));
  if (finish)
    {
      g_autoptr (JsonObject) object = manifest ();

      assert_true (vms_seed_writer_finish (writer, object, &error));
    }
  return vms_seed_writer_get_size (writer);
}

static void
test_round_trip (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsSeedReader) reader = NULL;
  VmsSeedChunk chunk;
  guint seen[2] = { 0, 0 };
  JsonArray *disks;

  write_seed (fixture, TRUE);
  reader = vms_seed_reader_open (fixture->path, &error);
  if (!reader)
    fail_msg ("%s", error->message);
  assert_int_equal (vms_seed_reader_get_chunk_size (reader), CHUNK);
  disks = json_object_get_array_member (vms_seed_reader_get_manifest (reader),
                                        "disks");
  assert_int_equal (
      json_object_get_int_member (json_array_get_object_element (disks, 0),
                                  "data-chunks"),
      3);
  while (vms_seed_reader_next (reader, &chunk, &error))
    {
      const guint8 *disk = chunk.disk == 0 ? fixture->disk0 : fixture->disk1;

      assert_memory_equal (chunk.data, disk + chunk.offset, chunk.length);
      seen[chunk.disk]++;
    }
  assert_null (error);
  assert_int_equal (seen[0], 3);
  assert_int_equal (seen[1], 1);
}

static void
assert_refused (Fixture *fixture, const char *needle)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsSeedReader) reader
      = vms_seed_reader_open (fixture->path, &error);
  VmsSeedChunk chunk;

  if (reader)
    while (vms_seed_reader_next (reader, &chunk, &error))
      ;
  assert_non_null (error);
  assert_true (g_error_matches (error, VMS_SEED_ERROR, VMS_SEED_ERROR_CORRUPT));
  if (!strstr (error->message, needle))
    fail_msg ("'%s' does not say '%s'", error->message, needle);
}

static void
poke (Fixture *fixture, guint64 offset)
{
  int fd = open (fixture->path, O_RDWR);
  guint8 byte;

  assert_true (fd >= 0);
  assert_int_equal (pread (fd, &byte, 1, offset), 1);
  byte ^= 0x40;
  assert_int_equal (pwrite (fd, &byte, 1, offset), 1);
  close (fd);
}

static void
test_damaged_chunk_named (void **state)
{
  Fixture *fixture = *state;

  write_seed (fixture, TRUE);
  /* Inside disk 0's first chunk, stored raw after the 64-byte header and
   * its 48-byte record header. */
  poke (fixture, 64 + 48 + 1000);
  assert_refused (fixture, "disk 'vd0' chunk at offset 0 (record at byte 64) "
                           "does not match its hash");
}

static void
test_damaged_record_header (void **state)
{
  Fixture *fixture = *state;

  write_seed (fixture, TRUE);
  /* The length of disk 0's first record. */
  poke (fixture, 64 + 18);
  assert_refused (fixture, "is damaged");
}

static void
test_cut_short (void **state)
{
  Fixture *fixture = *state;
  guint64 size = write_seed (fixture, TRUE);

  assert_int_equal (truncate (fixture->path, size - 10), 0);
  assert_refused (fixture, "cut short");
  assert_int_equal (truncate (fixture->path, size / 2), 0);
  assert_refused (fixture, "cut short");
}

static void
test_never_finished (void **state)
{
  Fixture *fixture = *state;

  write_seed (fixture, FALSE);
  assert_refused (fixture, "never finished");
}

static void
test_not_a_seed (void **state)
{
  Fixture *fixture = *state;

  assert_true (g_file_set_contents (fixture->path, "hello", -1, NULL));
  assert_refused (fixture, "is not a vmshift seed");
}

static void
test_existing_file_kept (void **state)
{
  Fixture *fixture = *state;
  g_autoptr (GError) error = NULL;
  g_autoptr (VmsSeedWriter) writer = NULL;
  g_autofree char *contents = NULL;

  assert_true (g_file_set_contents (fixture->path, "precious", -1, NULL));
  writer = vms_seed_writer_create (fixture->path, CHUNK, &error);
  assert_null (writer);
  assert_true (g_error_matches (error, VMS_SEED_ERROR, VMS_SEED_ERROR_EXISTS));
  assert_true (g_file_get_contents (fixture->path, &contents, NULL, NULL));
  assert_string_equal (contents, "precious");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_round_trip, setup, teardown),
    cmocka_unit_test_setup_teardown (test_damaged_chunk_named, setup, teardown),
    cmocka_unit_test_setup_teardown (test_damaged_record_header, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_cut_short, setup, teardown),
    cmocka_unit_test_setup_teardown (test_never_finished, setup, teardown),
    cmocka_unit_test_setup_teardown (test_not_a_seed, setup, teardown),
    cmocka_unit_test_setup_teardown (test_existing_file_kept, setup, teardown),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
