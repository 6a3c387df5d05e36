/* vmshift test guest workload.
 *
 * Runs inside the minimal test guest as its only real process (started by
 * tests/guest/init) and produces the guest-side activity that live
 * migration and storage tests need: disk writes that can be verified
 * afterwards on the host, and dirty memory.  It reports on the serial
 * console (/dev/console, i.e. ttyS0) only, one self-contained line at a
 * time, because that is all the harness can see of the guest.
 *
 * Parameters, read from /proc/cmdline (the kernel leaves "x.y=z" words
 * there and does not hand them to init); all optional:
 *
 *   vms.workload=idle|writer|dirtier|writer+dirtier     default idle
 *       Any '+'-separated combination of writer and dirtier is accepted.
 *   vms.write_rate_kib=N    writer rate in KiB/s; 0 = as fast as possible
 *                           (default 256)
 *   vms.write_offset_mib=N  start of the written area on /dev/vda in MiB
 *                           (default 0)
 *   vms.write_span_mib=N    size of the written area in MiB, clamped to
 *                           the end of the disk; 0 = up to the end of the
 *                           disk (default 16)
 *   vms.write_seed=N        seed of the block-choice PRNG (default 1)
 *   vms.write_sync=N        1: open the disk O_DSYNC too, so that every
 *                           write is followed by a flush the guest waits
 *                           for (a database's commits); 0: not (default)
 *   vms.mem_mib=N           size of the dirtied memory area in MiB; 0
 *                           disables the dirtier (default 32)
 *   vms.mem_rate_mib=N      MiB/s of pages rewritten; 0 = as fast as
 *                           possible (default 8)
 *
 * Numbers are decimal, or hex with a 0x prefix.  A malformed value is
 * reported and the default kept.
 *
 * Serial output (each a complete line, written with one write(2)):
 *
 *   vms-guest: config workload=W write_rate_kib=N ...   once, at start
 *   vms-guest: unknown workload X                       then only heartbeats
 *   vms-guest: bad value for vms.KEY=VALUE              default kept
 *   vms-guest: ready workload=W                         exactly once
 *   vms-heartbeat N                 N = 1, 2, 3, ... one line per second
 *   vms-writer: writes W bytes B gen G                  after each heartbeat
 *   vms-writer: error MESSAGE                           on any disk problem
 *   vms-dirtier: pages P                                after each heartbeat
 *   vms-dirtier: error MESSAGE
 *
 * Writer: picks 4 KiB blocks pseudo-randomly in [offset, offset + span) so
 * that blocks get rewritten with increasing generations, fills each with
 * the pattern from pattern.h and writes it with O_DIRECT so that every
 * write really reaches the virtual disk (no guest page cache between the
 * workload and the migration code under test).  W and B count successful
 * writes, G is the generation of the last successful write; a failed
 * write still consumes its generation, so the host may find blocks with a
 * generation above G only if a write failed.
 *
 * Dirtier: rewrites pages of an anonymous area with non-zero data so that
 * RAM migration always has something to resend and cannot rely on zero
 * page detection.  P counts page rewrites after the initial touch.
 *
 * Never exits: the guest has nothing else to run and PID 1 dying would
 * panic the kernel.
 */

#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "pattern.h"

#define VMS_DISK_PATH "/dev/vda"
#define VMS_CMDLINE_MAX 4096
#define VMS_NSEC_PER_SEC INT64_C (1000000000)
#define VMS_MIB (UINT64_C (1024) * 1024)

/* If a pacer falls further behind than this (the VM was paused or the
 * host starved it) it restarts its schedule instead of bursting to catch
 * up, so a migration downtime never turns into a write storm. */
#define VMS_PACE_MAX_LAG_NS VMS_NSEC_PER_SEC

typedef struct
{
  char workload[64];         /* vms.workload as given, for messages */
  bool writer;               /* run the disk writer thread */
  bool dirtier;              /* run the memory dirtier thread */
  bool known;                /* every '+' component of workload was valid */
  uint64_t write_rate_kib;   /* writer KiB/s, 0 = unthrottled */
  uint64_t write_offset_mib; /* first MiB of the written area */
  uint64_t write_span_mib;   /* MiB in the written area, 0 = to disk end */
  uint64_t write_seed;       /* seed of the block-choice PRNG */
  uint64_t write_sync;       /* 1: O_DSYNC, a flush after every write */
  uint64_t mem_mib;          /* size of the dirtied area */
  uint64_t mem_rate_mib;     /* dirtier MiB/s, 0 = unthrottled */
} VmsConfig;

typedef struct
{
  int fd;               /* /dev/vda opened O_RDWR | O_DIRECT */
  uint64_t first_block; /* first block index of the written area */
  uint64_t span_blocks; /* number of blocks in the written area */
  uint64_t rate_kib;    /* copy of the configured rate */
  uint64_t seed;        /* copy of the configured seed */
} VmsWriter;

typedef struct
{
  uint8_t *area;     /* the dirtied memory, touched once before ready */
  size_t size;       /* bytes in area, a whole number of pages */
  size_t page_size;  /* sysconf (_SC_PAGESIZE) */
  uint64_t rate_mib; /* copy of the configured rate */
} VmsDirtier;

/* Counters written by the worker threads and printed by the heartbeat
 * thread, so progress lines keep coming even while a write is stuck. */
static atomic_bool writer_running;
static atomic_bool dirtier_running;
static atomic_uint_fast64_t writer_writes;
static atomic_uint_fast64_t writer_bytes;
static atomic_uint_fast64_t writer_gen;
static atomic_uint_fast64_t dirtier_pages;

static int console_fd = STDOUT_FILENO;

static void say (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/* One write(2) per line: lines from different threads never interleave,
 * and there is no stdio buffer to flush or lose. */
static void
say (const char *fmt, ...)
{
  char line[512];
  va_list ap;
  size_t len;
  size_t done = 0;
  int n;

  va_start (ap, fmt);
  n = vsnprintf (line, sizeof line - 1, fmt, ap);
  va_end (ap);
  if (n < 0)
    return;
  len = (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 2;
  line[len++] = '\n';

  while (done < len)
    {
      ssize_t w = write (console_fd, line + done, len - done);

      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0)
        return;
      done += (size_t)w;
    }
}

static int64_t
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * VMS_NSEC_PER_SEC + ts.tv_nsec;
}

static void
sleep_until_ns (int64_t deadline)
{
  struct timespec ts;

  ts.tv_sec = deadline / VMS_NSEC_PER_SEC;
  ts.tv_nsec = deadline % VMS_NSEC_PER_SEC;
  while (clock_nanosleep (CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
    ;
}

/* Keep the compiler from treating stores into the dirtied area as dead:
 * nothing ever reads it back, which is the point. */
static inline void
clobber (void *p)
{
  __asm__ __volatile__("" : : "r"(p) : "memory");
}

/* ---- configuration ---------------------------------------------------- */

static void
config_init (VmsConfig *config)
{
  memset (config, 0, sizeof *config);
  snprintf (config->workload, sizeof config->workload, "idle");
  config->known = true;
  config->write_rate_kib = 256;
  config->write_offset_mib = 0;
  config->write_span_mib = 16;
  config->write_seed = 1;
  config->mem_mib = 32;
  config->mem_rate_mib = 8;
}

static bool
parse_u64 (const char *s, uint64_t *out)
{
  char *end;
  unsigned long long v;

  if (*s == '\0' || *s == '-')
    return false;
  errno = 0;
  v = strtoull (s, &end, 0);
  if (errno != 0 || *end != '\0')
    return false;
  *out = v;
  return true;
}

static void
config_set_workload (VmsConfig *config, const char *value)
{
  char copy[sizeof config->workload];
  char *save = NULL;
  char *tok;

  snprintf (config->workload, sizeof config->workload, "%s", value);
  snprintf (copy, sizeof copy, "%s", value);
  config->writer = false;
  config->dirtier = false;
  config->known = copy[0] != '\0';

  for (tok = strtok_r (copy, "+", &save); tok != NULL;
       tok = strtok_r (NULL, "+", &save))
    {
      if (strcmp (tok, "writer") == 0)
        config->writer = true;
      else if (strcmp (tok, "dirtier") == 0)
        config->dirtier = true;
      else if (strcmp (tok, "idle") != 0)
        config->known = false;
    }

  /* An unknown workload must not half-run: the harness would otherwise
   * see activity it did not ask for and might not notice the typo. */
  if (!config->known)
    config->writer = config->dirtier = false;
}

static void
config_apply (VmsConfig *config, const char *key, const char *value)
{
  static const struct
  {
    const char *key; /* parameter name without the "vms." prefix */
    size_t offset;   /* where the value lives in VmsConfig */
  } numbers[] = {
    { "write_rate_kib", offsetof (VmsConfig, write_rate_kib) },
    { "write_offset_mib", offsetof (VmsConfig, write_offset_mib) },
    { "write_span_mib", offsetof (VmsConfig, write_span_mib) },
    { "write_seed", offsetof (VmsConfig, write_seed) },
    { "write_sync", offsetof (VmsConfig, write_sync) },
    { "mem_mib", offsetof (VmsConfig, mem_mib) },
    { "mem_rate_mib", offsetof (VmsConfig, mem_rate_mib) },
  };
  size_t i;

  if (strcmp (key, "workload") == 0)
    {
      config_set_workload (config, value);
      return;
    }

  for (i = 0; i < sizeof numbers / sizeof numbers[0]; i++)
    {
      uint64_t v;

      if (strcmp (key, numbers[i].key) != 0)
        continue;
      if (parse_u64 (value, &v))
        *(uint64_t *)((char *)config + numbers[i].offset) = v;
      else
        say ("vms-guest: bad value for vms.%s=%s", key, value);
      return;
    }
  /* Unknown vms.* keys are ignored so that newer harnesses can pass
   * parameters to older guests. */
}

static void
config_load (VmsConfig *config)
{
  char buf[VMS_CMDLINE_MAX];
  ssize_t n;
  char *save = NULL;
  char *word;
  int fd;

  fd = open ("/proc/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    {
      say ("vms-guest: cannot read /proc/cmdline: %s; using defaults",
           strerror (errno));
      return;
    }
  n = read (fd, buf, sizeof buf - 1);
  close (fd);
  if (n < 0)
    {
      say ("vms-guest: cannot read /proc/cmdline: %s; using defaults",
           strerror (errno));
      return;
    }
  buf[n] = '\0';

  for (word = strtok_r (buf, " \t\n", &save); word != NULL;
       word = strtok_r (NULL, " \t\n", &save))
    {
      char *eq;
      size_t vlen;

      if (strncmp (word, "vms.", 4) != 0)
        continue;
      eq = strchr (word, '=');
      if (eq == NULL)
        continue;
      *eq = '\0';
      /* The kernel accepts param="value"; strip the quotes it leaves. */
      vlen = strlen (eq + 1);
      if (vlen >= 2 && eq[1] == '"' && eq[vlen] == '"')
        {
          eq[vlen] = '\0';
          eq++;
        }
      config_apply (config, word + 4, eq + 1);
    }
}

/* ---- writer ----------------------------------------------------------- */

static bool
writer_setup (const VmsConfig *config, VmsWriter *writer)
{
  uint64_t disk_bytes = 0;
  uint64_t disk_blocks;
  uint64_t want_blocks;

  writer->fd = open (VMS_DISK_PATH, O_RDWR | O_DIRECT | O_CLOEXEC
                                        | (config->write_sync ? O_DSYNC : 0));
  if (writer->fd < 0)
    {
      say ("vms-writer: error open %s: %s", VMS_DISK_PATH, strerror (errno));
      return false;
    }
  if (ioctl (writer->fd, BLKGETSIZE64, &disk_bytes) < 0)
    {
      say ("vms-writer: error BLKGETSIZE64 %s: %s", VMS_DISK_PATH,
           strerror (errno));
      goto fail;
    }

  disk_blocks = disk_bytes / VMS_PATTERN_BLOCK_SIZE;
  writer->first_block
      = config->write_offset_mib * (VMS_MIB / VMS_PATTERN_BLOCK_SIZE);
  if (config->write_offset_mib > disk_bytes / VMS_MIB
      || writer->first_block >= disk_blocks)
    {
      say ("vms-writer: error write_offset_mib=%" PRIu64
           " beyond disk size %" PRIu64 " bytes",
           config->write_offset_mib, disk_bytes);
      goto fail;
    }

  want_blocks = config->write_span_mib * (VMS_MIB / VMS_PATTERN_BLOCK_SIZE);
  writer->span_blocks = disk_blocks - writer->first_block;
  if (config->write_span_mib != 0
      && config->write_span_mib <= UINT64_MAX / VMS_MIB
      && want_blocks < writer->span_blocks)
    writer->span_blocks = want_blocks;

  writer->rate_kib = config->write_rate_kib;
  writer->seed = config->write_seed;
  return true;

fail:
  close (writer->fd);
  writer->fd = -1;
  return false;
}

static void *
writer_thread (void *data)
{
  VmsWriter *writer = data;
  void *mem = NULL;
  uint8_t *buf;
  uint64_t rng;
  uint64_t generation = 0;
  uint64_t paced = 0;
  int64_t t0;
  int err;

  /* O_DIRECT needs a buffer aligned to the logical block size; a page
   * covers every virtio-blk configuration. */
  err = posix_memalign (&mem, VMS_PATTERN_BLOCK_SIZE, VMS_PATTERN_BLOCK_SIZE);
  if (err != 0)
    {
      say ("vms-writer: error posix_memalign: %s", strerror (err));
      return NULL;
    }
  buf = mem;
  rng = writer->seed;
  t0 = now_ns ();

  for (;;)
    {
      uint64_t block;
      ssize_t w;

      /* Deadline pacing from a fixed origin: the n-th write is due at
       * t0 + n * 4 KiB / rate, so time spent inside pwrite is absorbed
       * instead of being added to every interval. */
      if (writer->rate_kib != 0)
        {
          int64_t due = t0
                        + (int64_t)(paced * (uint64_t)VMS_NSEC_PER_SEC
                                    * (VMS_PATTERN_BLOCK_SIZE / 1024)
                                    / writer->rate_kib);
          int64_t now = now_ns ();

          if (now < due)
            sleep_until_ns (due);
          else if (now - due > VMS_PACE_MAX_LAG_NS)
            {
              t0 = now;
              paced = 0;
            }
        }
      paced++;

      block = writer->first_block
              + vms_pattern_splitmix64_next (&rng) % writer->span_blocks;
      generation++;
      vms_pattern_fill (buf, block, generation);

      do
        w = pwrite (writer->fd, buf, VMS_PATTERN_BLOCK_SIZE,
                    (off_t)(block * VMS_PATTERN_BLOCK_SIZE));
      while (w < 0 && errno == EINTR);

      if (w == VMS_PATTERN_BLOCK_SIZE)
        {
          atomic_fetch_add (&writer_writes, 1);
          atomic_fetch_add (&writer_bytes, VMS_PATTERN_BLOCK_SIZE);
          atomic_store (&writer_gen, generation);
          continue;
        }

      if (w < 0)
        say ("vms-writer: error %s", strerror (errno));
      else
        say ("vms-writer: error short write %zd of %d bytes at block %" PRIu64,
             w, VMS_PATTERN_BLOCK_SIZE, block);
      /* Back off so a dead disk yields one error line per second rather
       * than a flood that drowns the heartbeats; then restart pacing. */
      sleep_until_ns (now_ns () + VMS_NSEC_PER_SEC);
      t0 = now_ns ();
      paced = 0;
    }

  return NULL;
}

/* ---- dirtier ---------------------------------------------------------- */

static bool
dirtier_setup (const VmsConfig *config, VmsDirtier *dirtier)
{
  long page_size = sysconf (_SC_PAGESIZE);
  size_t off;

  if (config->mem_mib == 0)
    {
      say ("vms-dirtier: error mem_mib=0, nothing to dirty");
      return false;
    }
  if (config->mem_mib > SIZE_MAX / VMS_MIB)
    {
      say ("vms-dirtier: error mem_mib=%" PRIu64 " too large", config->mem_mib);
      return false;
    }

  dirtier->page_size = page_size > 0 ? (size_t)page_size : 4096;
  dirtier->size = (size_t)config->mem_mib * VMS_MIB;
  dirtier->rate_mib = config->mem_rate_mib;
  dirtier->area = malloc (dirtier->size);
  if (dirtier->area == NULL)
    {
      say ("vms-dirtier: error cannot allocate %" PRIu64 " MiB",
           config->mem_mib);
      return false;
    }

  /* Fault in the whole area up front so that "ready" means the guest's
   * memory footprint is final and the rate below is pure rewriting. */
  for (off = 0; off < dirtier->size; off += dirtier->page_size)
    memset (dirtier->area + off, 0xa5, dirtier->page_size);
  clobber (dirtier->area);
  return true;
}

static void *
dirtier_thread (void *data)
{
  VmsDirtier *dirtier = data;
  size_t npages = dirtier->size / dirtier->page_size;
  uint64_t pages_per_sec;
  uint64_t batch;
  uint64_t paced = 0;
  size_t page = 0;
  unsigned pass = 0;
  int64_t t0 = now_ns ();

  pages_per_sec = dirtier->rate_mib * (VMS_MIB / dirtier->page_size);
  /* Sleep every ~10 ms worth of pages rather than per page: at 8 MiB/s a
   * per-page sleep would be a 0.5 ms timer, mostly overhead under TCG. */
  batch = pages_per_sec / 100;
  if (batch == 0)
    batch = 1;

  for (;;)
    {
      uint64_t i;

      for (i = 0; i < batch; i++)
        {
          /* The byte changes every pass and is never 0, so each rewrite
           * really changes the page and never looks like a zero page. */
          memset (dirtier->area + page * dirtier->page_size,
                  1 + (int)(pass % 255), dirtier->page_size);
          if (++page == npages)
            {
              page = 0;
              pass++;
            }
        }
      clobber (dirtier->area);
      atomic_fetch_add (&dirtier_pages, batch);
      paced += batch;

      if (pages_per_sec != 0)
        {
          int64_t due
              = t0
                + (int64_t)(paced * (uint64_t)VMS_NSEC_PER_SEC / pages_per_sec);
          int64_t now = now_ns ();

          if (now < due)
            sleep_until_ns (due);
          else if (now - due > VMS_PACE_MAX_LAG_NS)
            {
              t0 = now;
              paced = 0;
            }
        }
    }

  return NULL;
}

/* ---- heartbeat -------------------------------------------------------- */

static void *
heartbeat_thread (void *data)
{
  uint64_t n = 0;
  int64_t next = now_ns () + VMS_NSEC_PER_SEC;

  (void)data;
  for (;;)
    {
      int64_t now;

      sleep_until_ns (next);
      n++;
      say ("vms-heartbeat %" PRIu64, n);
      if (atomic_load (&writer_running))
        say ("vms-writer: writes %" PRIu64 " bytes %" PRIu64 " gen %" PRIu64,
             (uint64_t)atomic_load (&writer_writes),
             (uint64_t)atomic_load (&writer_bytes),
             (uint64_t)atomic_load (&writer_gen));
      if (atomic_load (&dirtier_running))
        say ("vms-dirtier: pages %" PRIu64,
             (uint64_t)atomic_load (&dirtier_pages));

      /* N counts lines, not seconds: after a pause (migration downtime,
       * stopped VM) emit one line and resynchronise instead of a burst,
       * so gaps stay visible in the host-side timestamps. */
      next += VMS_NSEC_PER_SEC;
      now = now_ns ();
      if (now - next > VMS_PACE_MAX_LAG_NS)
        next = now + VMS_NSEC_PER_SEC;
    }

  return NULL;
}

static bool
start_thread (pthread_t *thread, void *(*fn) (void *), void *data,
              const char *what)
{
  int err = pthread_create (thread, NULL, fn, data);

  if (err != 0)
    {
      say ("vms-guest: error cannot start %s thread: %s", what, strerror (err));
      return false;
    }
  return true;
}

int
main (void)
{
  static VmsConfig config;
  static VmsWriter writer = { .fd = -1 };
  static VmsDirtier dirtier;
  pthread_t heartbeat_tid;
  pthread_t writer_tid;
  pthread_t dirtier_tid;
  int fd;

  /* init already points stdout at the console, but open it ourselves too
   * so the workload also reports when started some other way. */
  fd = open ("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
  if (fd >= 0)
    console_fd = fd;

  /* As PID 1 (or its only child) a stray signal from the console must
   * not take the workload down. */
  signal (SIGHUP, SIG_IGN);
  signal (SIGINT, SIG_IGN);
  signal (SIGTERM, SIG_IGN);
  signal (SIGPIPE, SIG_IGN);

  config_init (&config);
  config_load (&config);
  say ("vms-guest: config workload=%s write_rate_kib=%" PRIu64
       " write_offset_mib=%" PRIu64 " write_span_mib=%" PRIu64
       " write_seed=%" PRIu64 " mem_mib=%" PRIu64 " mem_rate_mib=%" PRIu64
       " write_sync=%" PRIu64,
       config.workload, config.write_rate_kib, config.write_offset_mib,
       config.write_span_mib, config.write_seed, config.mem_mib,
       config.mem_rate_mib, config.write_sync);

  /* Heartbeat first: whatever goes wrong below, the harness must still
   * see that the guest is alive. */
  if (!start_thread (&heartbeat_tid, heartbeat_thread, NULL, "heartbeat"))
    {
      heartbeat_thread (NULL);
      for (;;)
        pause ();
    }

  if (!config.known)
    {
      say ("vms-guest: unknown workload %s", config.workload);
      goto forever;
    }

  if (config.writer && writer_setup (&config, &writer))
    {
      atomic_store (&writer_running, true);
      if (!start_thread (&writer_tid, writer_thread, &writer, "writer"))
        atomic_store (&writer_running, false);
    }

  if (config.dirtier && dirtier_setup (&config, &dirtier))
    {
      atomic_store (&dirtier_running, true);
      if (!start_thread (&dirtier_tid, dirtier_thread, &dirtier, "dirtier"))
        atomic_store (&dirtier_running, false);
    }

  /* Printed even if a part failed to start: its error line is already
   * out, and the harness gets a prompt, explainable failure instead of a
   * timeout waiting for "ready". */
  say ("vms-guest: ready workload=%s", config.workload);

forever:
  /* The threads do the work; never return, whatever happens to them. */
  for (;;)
    pause ();
  return 0;
}
