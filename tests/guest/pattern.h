/* vmshift test guest: self-verifying 4 KiB disk block format.
 *
 * Shared, header-only, by the in-guest writer (workload.c) and the
 * host-side verifier (verify-pattern.c).  It is deliberately plain C99
 * with no glib so that the guest binary can be linked statically without
 * dragging a GLib into the initramfs.
 *
 * On-disk layout of one block (all integers little endian, whatever the
 * host byte order, so an image written by the guest can be checked on
 * any machine):
 *
 *   offset  size  field
 *        0     8  magic "VMSBLK01" (no NUL)
 *        8     8  block index: absolute block number on the disk, i.e.
 *                 byte offset / 4096.  Storing it catches misdirected
 *                 writes and blocks copied to the wrong place during a
 *                 migration, which a checksum alone would not.
 *       16     8  generation: value of the writer's global write counter
 *                 when this block was written (starts at 1).  Lets a test
 *                 say "the destination has at least everything up to
 *                 generation G".
 *       24     8  checksum: FNV-1a 64 over bytes [0, 24) followed by bytes
 *                 [32, 4096), i.e. every byte of the block except the
 *                 checksum field itself.
 *       32  4064  payload: 508 little-endian 64-bit words produced by
 *                 splitmix64 seeded from (index, generation).
 *
 * The payload is pseudo-random rather than a repeated byte so that it is
 * non-zero and incompressible: QEMU's zero-block detection, sparse image
 * handling and any compression on the migration path must not be able to
 * make a broken copy look good.  The payload is also fully reproducible
 * from the header, so vms_pattern_check() regenerates and compares it in
 * addition to the checksum; a torn or stale block therefore cannot pass
 * even by a checksum collision.
 */

#ifndef VMS_GUEST_PATTERN_H
#define VMS_GUEST_PATTERN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define VMS_PATTERN_BLOCK_SIZE 4096

#define VMS_PATTERN_MAGIC "VMSBLK01"
#define VMS_PATTERN_MAGIC_LEN 8

#define VMS_PATTERN_OFFSET_MAGIC 0
#define VMS_PATTERN_OFFSET_INDEX 8
#define VMS_PATTERN_OFFSET_GENERATION 16
#define VMS_PATTERN_OFFSET_CHECKSUM 24
#define VMS_PATTERN_HEADER_SIZE 32

#define VMS_PATTERN_FNV_OFFSET_BASIS UINT64_C (0xcbf29ce484222325)
#define VMS_PATTERN_FNV_PRIME UINT64_C (0x100000001b3)

typedef enum
{
  VMS_PATTERN_VALID,   /* header, checksum and payload all match */
  VMS_PATTERN_ZERO,    /* every byte is zero: never written (or discarded) */
  VMS_PATTERN_INVALID, /* anything else: corruption, wrong index, torn */
} VmsPatternResult;

/* Byte-wise accessors: the block buffer has no alignment guarantee on the
 * host side, and this keeps the format little endian on any host.  GCC
 * folds these into a single load/store on x86. */
static inline uint64_t
vms_pattern_load_le64 (const uint8_t *p)
{
  return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16
         | (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40
         | (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

static inline void
vms_pattern_store_le64 (uint8_t *p, uint64_t v)
{
  int i;

  for (i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

/* The splitmix64 finaliser; also used on its own to decorrelate the
 * (index, generation) pair so neighbouring blocks or consecutive
 * generations do not start from neighbouring PRNG states. */
static inline uint64_t
vms_pattern_mix64 (uint64_t z)
{
  z = (z ^ (z >> 30)) * UINT64_C (0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C (0x94d049bb133111eb);
  return z ^ (z >> 31);
}

/* splitmix64: one add and a mix per word, fast enough for the guest
 * under TCG, and the output passes as incompressible. */
static inline uint64_t
vms_pattern_splitmix64_next (uint64_t *state)
{
  *state += UINT64_C (0x9e3779b97f4a7c15);
  return vms_pattern_mix64 (*state);
}

static inline uint64_t
vms_pattern_seed (uint64_t index, uint64_t generation)
{
  return vms_pattern_mix64 (index ^ UINT64_C (0x564d53424c4b3031))
         ^ vms_pattern_mix64 (generation + UINT64_C (0xd1b54a32d192ed03));
}

static inline uint64_t
vms_pattern_fnv1a64_update (uint64_t hash, const uint8_t *p, size_t len)
{
  size_t i;

  for (i = 0; i < len; i++)
    {
      hash ^= p[i];
      hash *= VMS_PATTERN_FNV_PRIME;
    }
  return hash;
}

/* Checksum of everything except the checksum field, so that it can be
 * computed in place on a filled block. */
static inline uint64_t
vms_pattern_checksum (const uint8_t *block)
{
  uint64_t hash = VMS_PATTERN_FNV_OFFSET_BASIS;

  hash = vms_pattern_fnv1a64_update (hash, block, VMS_PATTERN_OFFSET_CHECKSUM);
  hash = vms_pattern_fnv1a64_update (hash, block + VMS_PATTERN_HEADER_SIZE,
                                     VMS_PATTERN_BLOCK_SIZE
                                         - VMS_PATTERN_HEADER_SIZE);
  return hash;
}

/* Fill @block (VMS_PATTERN_BLOCK_SIZE bytes, any alignment) with the
 * block for disk block number @index written at @generation. */
static inline void
vms_pattern_fill (uint8_t *block, uint64_t index, uint64_t generation)
{
  uint64_t state = vms_pattern_seed (index, generation);
  size_t off;

  memcpy (block + VMS_PATTERN_OFFSET_MAGIC, VMS_PATTERN_MAGIC,
          VMS_PATTERN_MAGIC_LEN);
  vms_pattern_store_le64 (block + VMS_PATTERN_OFFSET_INDEX, index);
  vms_pattern_store_le64 (block + VMS_PATTERN_OFFSET_GENERATION, generation);
  for (off = VMS_PATTERN_HEADER_SIZE; off < VMS_PATTERN_BLOCK_SIZE; off += 8)
    vms_pattern_store_le64 (block + off, vms_pattern_splitmix64_next (&state));
  vms_pattern_store_le64 (block + VMS_PATTERN_OFFSET_CHECKSUM,
                          vms_pattern_checksum (block));
}

static inline int
vms_pattern_is_zero (const uint8_t *block)
{
  size_t i;

  for (i = 0; i < VMS_PATTERN_BLOCK_SIZE; i++)
    if (block[i] != 0)
      return 0;
  return 1;
}

/* Classify @block, expected to live at disk block number
 * @expected_index.  On VMS_PATTERN_VALID the stored generation goes to
 * @generation_out (may be NULL); otherwise 0 is stored there so callers
 * folding a maximum need no special case. */
static inline VmsPatternResult
vms_pattern_check (const uint8_t *block, uint64_t expected_index,
                   uint64_t *generation_out)
{
  uint64_t generation;
  uint64_t state;
  size_t off;

  if (generation_out != NULL)
    *generation_out = 0;

  if (memcmp (block + VMS_PATTERN_OFFSET_MAGIC, VMS_PATTERN_MAGIC,
              VMS_PATTERN_MAGIC_LEN)
      != 0)
    return vms_pattern_is_zero (block) ? VMS_PATTERN_ZERO : VMS_PATTERN_INVALID;

  if (vms_pattern_load_le64 (block + VMS_PATTERN_OFFSET_INDEX)
      != expected_index)
    return VMS_PATTERN_INVALID;

  if (vms_pattern_load_le64 (block + VMS_PATTERN_OFFSET_CHECKSUM)
      != vms_pattern_checksum (block))
    return VMS_PATTERN_INVALID;

  generation = vms_pattern_load_le64 (block + VMS_PATTERN_OFFSET_GENERATION);
  state = vms_pattern_seed (expected_index, generation);
  for (off = VMS_PATTERN_HEADER_SIZE; off < VMS_PATTERN_BLOCK_SIZE; off += 8)
    if (vms_pattern_load_le64 (block + off)
        != vms_pattern_splitmix64_next (&state))
      return VMS_PATTERN_INVALID;

  if (generation_out != NULL)
    *generation_out = generation;
  return VMS_PATTERN_VALID;
}

static inline const char *
vms_pattern_result_to_string (VmsPatternResult result)
{
  switch (result)
    {
    case VMS_PATTERN_VALID:
      return "valid";
    case VMS_PATTERN_ZERO:
      return "zero";
    case VMS_PATTERN_INVALID:
      return "invalid";
    }
  return "unknown";
}

#endif /* VMS_GUEST_PATTERN_H */
