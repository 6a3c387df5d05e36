/* Unit tests: which chunks of a request are compared with the sink's
 * hashes, and the hash itself against xxhsum's known value.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vms-chunk-hash.h"

#define KiB 1024

static void
assert_span (guint64 offset, guint64 length, guint64 size, guint64 chunk,
             guint64 start, guint64 end, guint count)
{
  VmsChunkSpan span = vms_chunk_hash_span (offset, length, size, chunk);

  assert_int_equal (span.count, count);
  if (count == 0)
    return;
  assert_int_equal (span.start, start);
  assert_int_equal (span.end, end);
}

static void
test_span (void **state)
{
  /* Aligned: every chunk. */
  assert_span (0, 256 * KiB, 1 << 30, 4 * KiB, 0, 256 * KiB, 64);
  assert_span (64 * KiB, 64 * KiB, 1 << 30, 4 * KiB, 64 * KiB, 128 * KiB, 16);
  /* Unaligned ends: only the whole chunks inside. */
  assert_span (1000, 9000, 1 << 30, 4 * KiB, 4 * KiB, 8 * KiB, 1);
  assert_span (1000, 3000, 1 << 30, 4 * KiB, 0, 0, 0);
  assert_span (4096, 4095, 1 << 30, 4 * KiB, 0, 0, 0);
  /* The disk's short last chunk counts when the request reaches it... */
  assert_span (8 * KiB, 5000, 8 * KiB + 5000, 4 * KiB, 8 * KiB, 8 * KiB + 5000,
               2);
  assert_span (0, 1000, 1000, 4 * KiB, 0, 1000, 1);
  /* ... and not when it stops short of it, or starts inside it. */
  assert_span (8 * KiB, 4 * KiB, 8 * KiB + 5000, 4 * KiB, 8 * KiB, 12 * KiB, 1);
  assert_span (8 * KiB, 4000, 8 * KiB + 5000, 4 * KiB, 0, 0, 0);
  assert_span (12 * KiB + 1, 903, 12 * KiB + 904, 4 * KiB, 0, 0, 0);
  /* A chunk larger than the request. */
  assert_span (0, 256 * KiB, 1 << 30, 1 << 20, 0, 0, 0);
}

static void
test_offset (void **state)
{
  assert_int_equal (vms_chunk_hash_offset (0, 4 * KiB), 0);
  assert_int_equal (vms_chunk_hash_offset (64 * KiB, 4 * KiB), 16 * 16);
  assert_int_equal (
      vms_chunk_hash_offset (G_GUINT64_CONSTANT (1) << 40, 1 << 20),
      (G_GUINT64_CONSTANT (1) << 20) * 16);
}

static void
test_matches (void **state)
{
  /* `head -c 4096 /dev/zero | xxhsum -H2` (xxhash 0.8). */
  static const guint8 zeroes_4k[VMS_SINK_NAME_HASH_SIZE]
      = { 0x3e, 0xe8, 0xdc, 0x4f, 0x9e, 0x7e, 0xe4, 0x95,
          0x93, 0xd7, 0x6f, 0xe1, 0x48, 0xc6, 0x89, 0xba };
  g_autofree guint8 *data = g_malloc0 (4 * KiB);
  guint8 other[VMS_SINK_NAME_HASH_SIZE];

  assert_true (vms_chunk_hash_matches (data, 4 * KiB, zeroes_4k));
  data[4095] = 1;
  assert_false (vms_chunk_hash_matches (data, 4 * KiB, zeroes_4k));
  memcpy (other, zeroes_4k, sizeof other);
  other[15] ^= 1;
  data[4095] = 0;
  assert_false (vms_chunk_hash_matches (data, 4 * KiB, other));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_span),
    cmocka_unit_test (test_offset),
    cmocka_unit_test (test_matches),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
