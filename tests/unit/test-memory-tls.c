/* Unit tests: memory in clear text is refused off loopback unless asked
 * for (--insecure), the name QEMU checks an X.509 sink's certificate
 * against, and --tls reaches libvirt as VIR_MIGRATE_TLS.  The
 * QMP backend's TLS is tested against real QEMUs in test-migrate.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vms-config.h"
#include "vms-migration.h"
#include "vms-migration-backend.h"
#include "vms-migration-tls.h"
#if VMS_HAVE_LIBVIRT
#include "vms-libvirt-migrate.h"
#endif

static void
test_clear_text_refused_off_loopback (void **state)
{
  g_autoptr (GError) error = NULL;

  assert_false (vms_migration_check_clear_text ("tcp:10.231.0.2:4444", FALSE,
                                                FALSE, &error));
  assert_true (g_error_matches (error, VMS_MIGRATION_ERROR,
                                VMS_MIGRATION_ERROR_INVALID));
  assert_non_null (strstr (error->message, "--dest-uri tcp:10.231.0.2:4444"));
  assert_non_null (strstr (error->message, "--tls"));
  assert_non_null (strstr (error->message, "--insecure"));
}

static void
test_clear_text_allowed (void **state)
{
  assert_true (vms_migration_check_clear_text ("tcp:10.231.0.2:4444", TRUE,
                                               FALSE, NULL));
  assert_true (vms_migration_check_clear_text ("tcp:10.231.0.2:4444", FALSE,
                                               TRUE, NULL));
  assert_true (vms_migration_check_clear_text ("tcp:127.0.0.1:4444", FALSE,
                                               FALSE, NULL));
  assert_true (
      vms_migration_check_clear_text ("unix:/run/m.sock", FALSE, FALSE, NULL));
  /* A resumed job without a --dest-uri yet: the preflight says so. */
  assert_true (vms_migration_check_clear_text (NULL, FALSE, FALSE, NULL));
}

/* The name QEMU checks the sink's certificate against, for a sink URI
 * (unix_socket as the mirror or --dest-uri says); NULL: none given. */
static char *
tls_hostname (const char *sink, gboolean unix_socket, GError **error)
{
  VmsMigrationConfig config;
  g_autoptr (VmsMigration) migration = NULL;
  char *hostname = NULL;

  vms_migration_config_init (&config);
  migration = vms_migration_new (&config, NULL, NULL);
  vms_migration_config_clear (&config);
  migration->rep.job = vms_job_new ("/nonexistent", "j");
  migration->rep.job->sink = g_strdup (sink);
  if (!vms_migration_sink_tls_hostname (migration, unix_socket, &hostname,
                                        error))
    return NULL;
  return hostname;
}

/* X.509 on a unix socket: tls-hostname=, else localhost; over TCP only
 * tls-hostname= (QEMU checks the address's host); PSK: no name. */
static void
test_tls_hostname (void **state)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *unix_default = tls_hostname (
      "nbds+unix:///?socket=/s&tls-certificates=/x", TRUE, &error);
  g_autofree char *unix_named
      = tls_hostname ("nbds+unix:///?socket=/s&tls-certificates=/x&"
                      "tls-hostname=dest.example",
                      TRUE, &error);
  g_autofree char *tcp_default
      = tls_hostname ("nbds://h:10809/?tls-certificates=/x", FALSE, &error);
  g_autofree char *tcp_named = tls_hostname (
      "nbds://h/?tls-certificates=/x&tls-hostname=dest.example", FALSE, &error);
  g_autofree char *psk = tls_hostname (
      "nbds+unix://u@/?socket=/s&tls-psk-file=/k/keys.psk", TRUE, &error);
  g_autofree char *empty = NULL;

  assert_null (error);
  assert_string_equal (unix_default, "localhost");
  assert_string_equal (unix_named, "dest.example");
  assert_null (tcp_default);
  assert_string_equal (tcp_named, "dest.example");
  assert_null (psk);
  empty = tls_hostname ("nbds+unix:///?socket=/s&tls-certificates=/x&"
                        "tls-hostname=",
                        TRUE, &error);
  assert_null (empty);
  assert_non_null (error);
  assert_non_null (strstr (error->message, "tls-hostname= is empty"));
}

#if VMS_HAVE_LIBVIRT
static void
test_libvirt_tls_flag (void **state)
{
  VmsLibvirtMigration *migration = vms_libvirt_migration_new ();

  assert_false (vms_libvirt_migration_flags (migration) & VIR_MIGRATE_TLS);
  migration->tls = TRUE;
  assert_true (vms_libvirt_migration_flags (migration) & VIR_MIGRATE_TLS);
  /* The rest is as before. */
  assert_true (vms_libvirt_migration_flags (migration) & VIR_MIGRATE_LIVE);
  vms_libvirt_migration_free (migration);
}

/* --resume with nothing but the job keeps --tls. */
static void
test_libvirt_tls_saved (void **state)
{
  g_autoptr (VmsJob) job = vms_job_new ("/nonexistent", "lv");
  VmsLibvirtMigration *migration = vms_libvirt_migration_new ();
  VmsLibvirtMigration *resumed = vms_libvirt_migration_new ();

  migration->tls = TRUE;
  vms_libvirt_migration_save (migration, job);
  vms_libvirt_migration_load (resumed, job);
  assert_true (resumed->tls);
  vms_libvirt_migration_free (migration);
  vms_libvirt_migration_free (resumed);
}
#endif

int
main (void)
{
  const struct CMUnitTest tests[]
      = { cmocka_unit_test (test_clear_text_refused_off_loopback),
          cmocka_unit_test (test_clear_text_allowed),
          cmocka_unit_test (test_tls_hostname),
#if VMS_HAVE_LIBVIRT
          cmocka_unit_test (test_libvirt_tls_flag),
          cmocka_unit_test (test_libvirt_tls_saved),
#endif
        };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
