/* vmshift: the backpressure settings of a migration, checked.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-backpressure-option.h"
#include "vms-estimate-model.h"
#include "vms-option.h"

/* A typo guard: nobody means a faster throttle. */
#define MAX_RATE (G_GUINT64_CONSTANT (1) << 40)

static gboolean
parse_write (const char *prefix, const char *text, VmsBackpressureOptions *out,
             GError **error)
{
  g_autofree char *name = g_strconcat (prefix, "write-backpressure", NULL);

  if (!text || g_str_equal (text, "auto"))
    return TRUE;
  if (g_str_equal (text, "off"))
    {
      out->write_backpressure = VMS_BACKPRESSURE_OPTION_OFF;
      return TRUE;
    }
  /* The rate parser's message would say only "a rate": this one names
   * the words too. */
  if (!vms_option_rate (name, text, VMS_ESTIMATE_BACKPRESSURE_FLOOR, MAX_RATE,
                        &out->write_backpressure_rate, NULL))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "%s takes auto, off or a RATE of at least %dK (bytes/s), "
                   "not '%s'",
                   name, VMS_ESTIMATE_BACKPRESSURE_FLOOR / 1024, text);
      return FALSE;
    }
  out->write_backpressure = VMS_BACKPRESSURE_OPTION_RATE;
  return TRUE;
}

static gboolean
parse_replication (const char *prefix, const VmsBackpressureOptionText *text,
                   VmsBackpressureOptions *out, GError **error)
{
  const char *mode = text->replication_backpressure;
  g_autofree char *mode_name
      = g_strconcat (prefix, "replication-backpressure", NULL);
  g_autofree char *latency_name
      = g_strconcat (prefix, "max-guest-latency", NULL);
  guint64 latency_ms = 0;

  if (mode && !g_str_equal (mode, "auto") && !g_str_equal (mode, "off"))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "%s takes auto or off, not '%s'", mode_name, mode);
      return FALSE;
    }
  if (mode && g_str_equal (mode, "auto") && !text->max_guest_latency)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "%s auto needs %s MS: how much longer the guest's writes "
                   "may take",
                   mode_name, latency_name);
      return FALSE;
    }
  if (!vms_option_integer (
          latency_name, text->max_guest_latency, "a number of milliseconds", 1,
          VMS_BACKPRESSURE_OPTION_MAX_LATENCY_MS, &latency_ms, error))
    return FALSE;
  /* "off" keeps it off all the same: a script may keep the latency and
   * switch it off. */
  if (!mode || !g_str_equal (mode, "off"))
    out->max_guest_latency_ms = latency_ms;
  out->replication_asked = mode || text->max_guest_latency;
  return TRUE;
}

gboolean
vms_backpressure_options_parse (const char *prefix,
                                const VmsBackpressureOptionText *text,
                                VmsBackpressureOptions *out, GError **error)
{
  VmsBackpressureOptions parsed = { 0 };

  if (!parse_write (prefix, text->write_backpressure, &parsed, error)
      || !parse_replication (prefix, text, &parsed, error))
    return FALSE;
  *out = parsed;
  return TRUE;
}
