/* vmshift: a token bucket that holds a copy to a bandwidth limit.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-rate.h"

struct _VmsRate
{
  guint64 limit;       /* bytes per second, 0 for none */
  double capacity;     /* bucket size in bytes */
  double tokens;       /* bytes that may be sent now */
  gint64 last_us;      /* when tokens were last refilled; 0 before first use */
  GMutex lock;         /* the disks of a VM copied at once share one bucket */
};

VmsRate *
vms_rate_new (guint64 bytes_per_second, guint64 burst)
{
  VmsRate *rate = g_new0 (VmsRate, 1);

  rate->limit = bytes_per_second;
  rate->capacity = MAX (burst, 1);
  rate->tokens = rate->capacity;
  g_mutex_init (&rate->lock);
  return rate;
}

void
vms_rate_free (VmsRate *rate)
{
  if (!rate)
    return;
  g_mutex_clear (&rate->lock);
  g_free (rate);
}

static void
refill (VmsRate *rate, gint64 now_us)
{
  if (rate->last_us && now_us > rate->last_us)
    rate->tokens = MIN (rate->capacity,
                        rate->tokens
                            + (double) (now_us - rate->last_us) * rate->limit
                                  / G_USEC_PER_SEC);
  rate->last_us = now_us;
}

gint64
vms_rate_try_take (VmsRate *rate, guint64 bytes, gint64 now_us)
{
  g_autoptr (GMutexLocker) locker = NULL;
  double needed;

  if (!rate)
    return 0;
  /* The limit may change while copies run (vms_rate_set_limit): read
   * under the lock. */
  locker = g_mutex_locker_new (&rate->lock);
  if (rate->limit == 0)
    return 0;
  refill (rate, now_us);
  /* A request bigger than the bucket waits for a full bucket, then goes,
   * leaving the bucket in debt: the average rate still holds. */
  needed = MIN ((double) bytes, rate->capacity);
  if (rate->tokens >= needed)
    {
      rate->tokens -= bytes;
      return 0;
    }
  return (gint64) ((needed - rate->tokens) * G_USEC_PER_SEC / rate->limit) + 1;
}

void
vms_rate_refund (VmsRate *rate, guint64 bytes)
{
  g_autoptr (GMutexLocker) locker = NULL;

  if (!rate)
    return;
  locker = g_mutex_locker_new (&rate->lock);
  if (!rate->limit)
    return;
  rate->tokens = MIN (rate->capacity, rate->tokens + bytes);
}

guint64
vms_rate_get_limit (VmsRate *rate)
{
  g_autoptr (GMutexLocker) locker = NULL;

  if (!rate)
    return 0;
  locker = g_mutex_locker_new (&rate->lock);
  return rate->limit;
}

void
vms_rate_set_limit (VmsRate *rate, guint64 bytes_per_second, guint64 burst)
{
  g_autoptr (GMutexLocker) locker = g_mutex_locker_new (&rate->lock);

  /* Unlimited until now: the bucket starts full from the next take. */
  if (rate->limit == 0)
    {
      rate->tokens = MAX (burst, 1);
      rate->last_us = 0;
    }
  rate->limit = bytes_per_second;
  rate->capacity = MAX (burst, 1);
  rate->tokens = MIN (rate->tokens, rate->capacity);
}
