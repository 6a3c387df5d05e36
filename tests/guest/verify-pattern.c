/* vms-verify-pattern: check a raw disk image written by the test guest's
 * writer workload (see pattern.h and workload.c).
 *
 *   vms-verify-pattern IMAGE [--offset-mib N] [--span-mib N] [--json]
 *
 * Every 4 KiB block in [offset, offset + span) is classified as valid
 * (a complete pattern block for exactly that block number), zero (never
 * written) or invalid (anything else), and the counts are printed:
 *
 *   valid=N zero=N invalid=N max_gen=G
 *
 * or, with --json, one JSON object on one line.  The first few invalid
 * blocks are described on stderr to help debugging.  The span defaults
 * to the rest of the image and, like in the guest, is clamped to the end
 * of the image; a trailing partial block is ignored.
 *
 * Exit status: 0 no invalid block, 1 at least one invalid block,
 * 2 usage or I/O error.
 *
 * Plain C without glib on purpose: it only needs pattern.h, and keeping
 * it dependency-free lets it be used on any box holding an image.
 */

#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pattern.h"

#define VMS_MIB (UINT64_C (1024) * 1024)
#define VMS_BLOCKS_PER_MIB (VMS_MIB / VMS_PATTERN_BLOCK_SIZE)
/* Read many blocks per syscall: a per-block pread makes scanning a
 * multi-GiB image needlessly slow. */
#define VMS_READ_BLOCKS 256
/* Enough detail to see the kind of damage without flooding a test log. */
#define VMS_MAX_REPORTED 10

#define EXIT_INVALID 1
#define EXIT_USAGE 2

typedef struct
{
  const char *image;   /* path given on the command line */
  uint64_t offset_mib; /* --offset-mib, default 0 */
  uint64_t span_mib;   /* --span-mib, 0 = to the end of the image */
  bool json;           /* --json */
} VmsOptions;

typedef struct
{
  uint64_t first_block; /* first block index scanned */
  uint64_t blocks;      /* number of blocks scanned after clamping */
  uint64_t valid;       /* VMS_PATTERN_VALID blocks */
  uint64_t zero;        /* VMS_PATTERN_ZERO blocks */
  uint64_t invalid;     /* VMS_PATTERN_INVALID blocks */
  uint64_t max_gen;     /* highest generation among valid blocks */
} VmsCounts;

static void
usage (FILE *out)
{
  fprintf (out,
           "Usage: vms-verify-pattern IMAGE [--offset-mib N] [--span-mib N]"
           " [--json]\n"
           "\n"
           "Check the 4 KiB pattern blocks written by the vmshift test guest"
           " into a raw\n"
           "disk image and print: valid=N zero=N invalid=N max_gen=G\n"
           "\n"
           "  --offset-mib N  start of the checked area in MiB (default 0)\n"
           "  --span-mib N    size of the checked area in MiB, clamped to"
           " the image;\n"
           "                  0 or omitted = to the end of the image\n"
           "  --json          print one JSON object instead\n"
           "  --help          show this help\n"
           "\n"
           "Exit status: 0 no invalid block, 1 invalid blocks found,"
           " 2 usage or I/O error.\n");
}

static bool
parse_u64 (const char *s, uint64_t *out)
{
  char *end;
  unsigned long long v;

  if (s == NULL || *s == '\0' || *s == '-')
    return false;
  errno = 0;
  v = strtoull (s, &end, 0);
  if (errno != 0 || *end != '\0')
    return false;
  *out = v;
  return true;
}

static int
parse_args (int argc, char **argv, VmsOptions *opts)
{
  int i;

  memset (opts, 0, sizeof *opts);
  for (i = 1; i < argc; i++)
    {
      const char *arg = argv[i];
      uint64_t *target = NULL;
      const char *value = NULL;
      const char *name = arg;

      if (strcmp (arg, "--help") == 0 || strcmp (arg, "-h") == 0)
        {
          usage (stdout);
          exit (0);
        }
      else if (strcmp (arg, "--json") == 0)
        opts->json = true;
      else if (strncmp (arg, "--offset-mib", 12) == 0
               && (arg[12] == '\0' || arg[12] == '='))
        {
          target = &opts->offset_mib;
          name = "--offset-mib";
          value = arg[12] == '=' ? arg + 13 : (i + 1 < argc ? argv[++i] : NULL);
        }
      else if (strncmp (arg, "--span-mib", 10) == 0
               && (arg[10] == '\0' || arg[10] == '='))
        {
          target = &opts->span_mib;
          name = "--span-mib";
          value = arg[10] == '=' ? arg + 11 : (i + 1 < argc ? argv[++i] : NULL);
        }
      else if (strcmp (arg, "--") == 0 && i + 1 < argc && opts->image == NULL)
        opts->image = argv[++i];
      else if (arg[0] == '-' && arg[1] != '\0')
        {
          fprintf (stderr, "vms-verify-pattern: unknown option '%s'\n", arg);
          return -1;
        }
      else if (opts->image == NULL)
        opts->image = arg;
      else
        {
          fprintf (stderr, "vms-verify-pattern: unexpected argument '%s'\n",
                   arg);
          return -1;
        }

      if (target != NULL && !parse_u64 (value, target))
        {
          fprintf (stderr,
                   "vms-verify-pattern: %s needs a non-negative number,"
                   " got '%s'\n",
                   name, value != NULL ? value : "(nothing)");
          return -1;
        }
    }

  if (opts->image == NULL)
    {
      fprintf (stderr, "vms-verify-pattern: no IMAGE given\n");
      return -1;
    }
  return 0;
}

/* Say why a block is invalid; the counts alone cannot tell a torn write
 * from a misplaced block from foreign data. */
static void
describe_invalid (const uint8_t *block, uint64_t index)
{
  uint64_t offset = index * VMS_PATTERN_BLOCK_SIZE;

  if (memcmp (block, VMS_PATTERN_MAGIC, VMS_PATTERN_MAGIC_LEN) != 0)
    fprintf (stderr,
             "vms-verify-pattern: block %" PRIu64 " (offset %" PRIu64
             "): no magic, first bytes %02x %02x %02x %02x\n",
             index, offset, block[0], block[1], block[2], block[3]);
  else if (vms_pattern_load_le64 (block + VMS_PATTERN_OFFSET_INDEX) != index)
    fprintf (stderr,
             "vms-verify-pattern: block %" PRIu64 " (offset %" PRIu64
             "): holds block %" PRIu64 " gen %" PRIu64 "\n",
             index, offset,
             vms_pattern_load_le64 (block + VMS_PATTERN_OFFSET_INDEX),
             vms_pattern_load_le64 (block + VMS_PATTERN_OFFSET_GENERATION));
  else if (vms_pattern_load_le64 (block + VMS_PATTERN_OFFSET_CHECKSUM)
           != vms_pattern_checksum (block))
    fprintf (stderr,
             "vms-verify-pattern: block %" PRIu64 " (offset %" PRIu64
             "): checksum mismatch (gen %" PRIu64 ")\n",
             index, offset,
             vms_pattern_load_le64 (block + VMS_PATTERN_OFFSET_GENERATION));
  else
    fprintf (stderr,
             "vms-verify-pattern: block %" PRIu64 " (offset %" PRIu64
             "): payload does not match gen %" PRIu64 "\n",
             index, offset,
             vms_pattern_load_le64 (block + VMS_PATTERN_OFFSET_GENERATION));
}

static int
scan (int fd, VmsCounts *counts)
{
  static uint8_t buf[VMS_READ_BLOCKS * VMS_PATTERN_BLOCK_SIZE];
  uint64_t done = 0;

  while (done < counts->blocks)
    {
      uint64_t want = counts->blocks - done;
      uint64_t first = counts->first_block + done;
      size_t len;
      size_t got = 0;
      uint64_t i;

      if (want > VMS_READ_BLOCKS)
        want = VMS_READ_BLOCKS;
      len = (size_t)want * VMS_PATTERN_BLOCK_SIZE;

      while (got < len)
        {
          ssize_t n = pread (fd, buf + got, len - got,
                             (off_t)(first * VMS_PATTERN_BLOCK_SIZE + got));

          if (n < 0 && errno == EINTR)
            continue;
          if (n < 0)
            {
              fprintf (stderr,
                       "vms-verify-pattern: read error at offset %" PRIu64
                       ": %s\n",
                       first * VMS_PATTERN_BLOCK_SIZE + got, strerror (errno));
              return -1;
            }
          if (n == 0)
            {
              /* The size was checked up front; the image shrank under
               * us, which no result could be trusted after. */
              fprintf (stderr,
                       "vms-verify-pattern: unexpected end of image at"
                       " offset %" PRIu64 "\n",
                       first * VMS_PATTERN_BLOCK_SIZE + got);
              return -1;
            }
          got += (size_t)n;
        }

      for (i = 0; i < want; i++)
        {
          const uint8_t *block = buf + i * VMS_PATTERN_BLOCK_SIZE;
          uint64_t gen;

          switch (vms_pattern_check (block, first + i, &gen))
            {
            case VMS_PATTERN_VALID:
              counts->valid++;
              if (gen > counts->max_gen)
                counts->max_gen = gen;
              break;
            case VMS_PATTERN_ZERO:
              counts->zero++;
              break;
            case VMS_PATTERN_INVALID:
              if (counts->invalid < VMS_MAX_REPORTED)
                describe_invalid (block, first + i);
              counts->invalid++;
              break;
            }
        }
      done += want;
    }
  return 0;
}

static void
print_json_string (const char *s)
{
  putchar ('"');
  for (; *s != '\0'; s++)
    {
      unsigned char c = (unsigned char)*s;

      if (c == '"' || c == '\\')
        printf ("\\%c", c);
      else if (c < 0x20)
        printf ("\\u%04x", c);
      else
        putchar (c);
    }
  putchar ('"');
}

int
main (int argc, char **argv)
{
  VmsOptions opts;
  VmsCounts counts;
  struct stat st;
  uint64_t image_blocks;
  int fd;

  if (parse_args (argc, argv, &opts) < 0)
    {
      fprintf (stderr, "Try 'vms-verify-pattern --help'.\n");
      return EXIT_USAGE;
    }

  fd = open (opts.image, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    {
      fprintf (stderr, "vms-verify-pattern: cannot open '%s': %s\n", opts.image,
               strerror (errno));
      return EXIT_USAGE;
    }
  if (fstat (fd, &st) < 0)
    {
      fprintf (stderr, "vms-verify-pattern: cannot stat '%s': %s\n", opts.image,
               strerror (errno));
      close (fd);
      return EXIT_USAGE;
    }
  if (!S_ISREG (st.st_mode))
    {
      /* Block devices would need BLKGETSIZE64; raw image files are all
       * the tests produce, so refuse rather than guess the size. */
      fprintf (stderr, "vms-verify-pattern: '%s' is not a regular file\n",
               opts.image);
      close (fd);
      return EXIT_USAGE;
    }

  memset (&counts, 0, sizeof counts);
  image_blocks = (uint64_t)st.st_size / VMS_PATTERN_BLOCK_SIZE;
  if (opts.offset_mib > UINT64_MAX / VMS_MIB
      || opts.offset_mib * VMS_BLOCKS_PER_MIB >= image_blocks)
    {
      fprintf (stderr,
               "vms-verify-pattern: --offset-mib %" PRIu64
               " is beyond the end of '%s' (%" PRIu64 " bytes)\n",
               opts.offset_mib, opts.image, (uint64_t)st.st_size);
      close (fd);
      return EXIT_USAGE;
    }
  counts.first_block = opts.offset_mib * VMS_BLOCKS_PER_MIB;
  counts.blocks = image_blocks - counts.first_block;
  if (opts.span_mib != 0 && opts.span_mib <= UINT64_MAX / VMS_MIB
      && opts.span_mib * VMS_BLOCKS_PER_MIB < counts.blocks)
    counts.blocks = opts.span_mib * VMS_BLOCKS_PER_MIB;

  if (scan (fd, &counts) < 0)
    {
      close (fd);
      return EXIT_USAGE;
    }
  close (fd);

  if (opts.json)
    {
      printf ("{\"image\":");
      print_json_string (opts.image);
      printf (",\"offset_mib\":%" PRIu64 ",\"first_block\":%" PRIu64
              ",\"blocks\":%" PRIu64 ",\"valid\":%" PRIu64 ",\"zero\":%" PRIu64
              ",\"invalid\":%" PRIu64 ",\"max_gen\":%" PRIu64 "}\n",
              opts.offset_mib, counts.first_block, counts.blocks, counts.valid,
              counts.zero, counts.invalid, counts.max_gen);
    }
  else
    printf ("valid=%" PRIu64 " zero=%" PRIu64 " invalid=%" PRIu64
            " max_gen=%" PRIu64 "\n",
            counts.valid, counts.zero, counts.invalid, counts.max_gen);

  if (fflush (stdout) != 0 || ferror (stdout))
    {
      fprintf (stderr, "vms-verify-pattern: cannot write output: %s\n",
               strerror (errno));
      return EXIT_USAGE;
    }
  return counts.invalid > 0 ? EXIT_INVALID : EXIT_SUCCESS;
}
