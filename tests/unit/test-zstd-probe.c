/* vms-zstd-probe: how zstd compresses a sample, packet by packet.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vms-zstd-probe.h"

#define SAMPLE (4 * VMS_ZSTD_PROBE_PACKET + 4096)

/* Text-like pages shrink to a fraction, random ones not at all, and the
 * probe adds up packets and samples. */
static void
test_ratio_and_rate (void **state)
{
  g_autofree guint8 *text = g_malloc (SAMPLE);
  g_autofree guint8 *noise = g_malloc (SAMPLE);
  g_autoptr (GError) error = NULL;
  VmsZstdProbe probe = { 0 };
  g_autoptr (GRand) rand = g_rand_new_with_seed (7);

  for (gsize i = 0; i < SAMPLE; i++)
    {
      text[i] = "vmshift moves running VMs "[i % 26];
      noise[i] = g_rand_int (rand);
    }
  assert_true (vms_zstd_probe_add (&probe, text, SAMPLE, &error));
  assert_int_equal (probe.input, SAMPLE);
  assert_true (vms_zstd_probe_ratio (&probe) < 0.05);
  assert_true (vms_zstd_probe_rate (&probe) > 0);

  probe = (VmsZstdProbe){ 0 };
  assert_true (vms_zstd_probe_add (&probe, noise, SAMPLE, &error));
  assert_true (vms_zstd_probe_ratio (&probe) > 0.99);
  assert_true (vms_zstd_probe_add (&probe, text, SAMPLE, &error));
  assert_int_equal (probe.input, 2 * SAMPLE);
  assert_true (vms_zstd_probe_ratio (&probe) > 0.5);
  assert_true (vms_zstd_probe_ratio (&probe) < 0.55);

  /* Nothing measured: no figures rather than a division by zero. */
  probe = (VmsZstdProbe){ 0 };
  assert_true (vms_zstd_probe_ratio (&probe) == 0);
  assert_true (vms_zstd_probe_rate (&probe) == 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_ratio_and_rate),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
