/* Unit tests: the URIs of the sink's exports, and opens that fail before
 * any byte is sent.  Opens that reach a sink are in tests/integration.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <glib/gstdio.h>
#include <libnbd.h>
#include <stdlib.h>

#include "vms-copy.h"
#include "vms-sink-client.h"

/* Nothing listens there: libnbd reads the URI, then fails to connect. */
#define ABSENT_SINK "nbd+unix:///?socket=/nonexistent/vmshift-sink.sock"

static void
assert_uri (const char *sink, const char *export_name, const char *expected)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *uri = vms_sink_client_uri (sink, export_name, &error);

  if (!uri)
    fail_msg ("%s with '%s' refused: %s", sink, export_name, error->message);
  assert_string_equal (uri, expected);
}

static void
test_unix_socket (void **state)
{
  assert_uri ("nbd+unix:///?socket=/run/vmshift/sink.sock", "vm1-vda",
              "nbd+unix:///vm1-vda?socket=/run/vmshift/sink.sock");
  /* An escaped socket path reaches libnbd as the user wrote it. */
  assert_uri ("nbd+unix:///?socket=/tmp/my%20sink.sock", "vm1-vda@live",
              "nbd+unix:///vm1-vda@live?socket=/tmp/my%20sink.sock");
}

static void
test_tls_query (void **state)
{
  assert_uri ("nbds+unix://alice@/?socket=/run/s.sock&tls-psk-file=/etc/k.psk",
              "@probe",
              "nbds+unix://alice@/@probe?socket=/run/s.sock"
              "&tls-psk-file=/etc/k.psk");
  assert_uri ("nbds://sink.example:10810/?tls-certificates=/etc/pki/vmshift",
              "x@create=4096",
              "nbds://sink.example:10810/x@create=4096"
              "?tls-certificates=/etc/pki/vmshift");
}

static void
test_tcp (void **state)
{
  assert_uri ("nbd://192.0.2.10:10809", "x", "nbd://192.0.2.10:10809/x");
  assert_uri ("nbd://192.0.2.10", "x@commit", "nbd://192.0.2.10/x@commit");
  assert_uri ("nbd://[2001:db8::1]:10809/", "x", "nbd://[2001:db8::1]:10809/x");
}

/* Whatever export the sink URI named, the one asked for replaces it. */
static void
test_path_replaced (void **state)
{
  assert_uri ("nbd+unix:///old-export?socket=/s", "new",
              "nbd+unix:///new?socket=/s");
  assert_uri ("nbd://sink:10809/a/b/c", "new", "nbd://sink:10809/new");
}

/* The export name libnbd takes from uri, as it would send it. */
static char *
libnbd_export_name (const char *uri)
{
  struct nbd_handle *nbd = nbd_create ();
  char *name;

  assert_non_null (nbd);
  assert_int_equal (nbd_connect_uri (nbd, uri), -1);
  name = nbd_get_export_name (nbd);
  nbd_close (nbd);
  assert_non_null (name);
  return name;
}

/* Names the sink would refuse are still escaped, so the sink sees them
 * and says what is wrong rather than libnbd misreading the URI. */
static void
test_escaped (void **state)
{
  static const char *const names[]
      = { "a b", "what?", "hash#tag", "100%", "caf\xc3\xa9", "a/b", "x@live" };

  /* '@', '=', '+' are allowed in a path: export names keep them. */
  assert_uri ("nbd+unix:///?socket=/s", "a+b@create=5",
              "nbd+unix:///a+b@create=5?socket=/s");
  assert_uri ("nbd+unix:///?socket=/s", "a b?c#d%e",
              "nbd+unix:///a%20b%3Fc%23d%25e?socket=/s");
  assert_uri ("nbd+unix:///?socket=/s", "caf\xc3\xa9",
              "nbd+unix:///caf%C3%A9?socket=/s");
  for (gsize i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autofree char *uri = vms_sink_client_uri (ABSENT_SINK, names[i], NULL);
      g_autoptr (GUri) parsed = g_uri_parse (uri, G_URI_FLAGS_NONE, NULL);
      g_autofree char *expected = g_strconcat ("/", names[i], NULL);
      char *sent = libnbd_export_name (uri);

      assert_non_null (parsed);
      assert_string_equal (g_uri_get_path (parsed), expected);
      assert_string_equal (g_uri_get_query (parsed),
                           "socket=/nonexistent/vmshift-sink.sock");
      assert_string_equal (sent, names[i]);
      free (sent);
    }
}

static void
assert_uri_refused (const char *sink, int code, const char *needle)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *uri = vms_sink_client_uri (sink, "x", &error);

  if (uri)
    fail_msg ("%s accepted as %s", sink, uri);
  assert_true (g_error_matches (error, G_URI_ERROR, code));
  if (!strstr (error->message, needle))
    fail_msg ("error for %s is '%s', expected it to mention '%s'", sink,
              error->message, needle);
}

static void
test_bad_uri (void **state)
{
  assert_uri_refused ("http://sink.example/", G_URI_ERROR_BAD_SCHEME,
                      "--sink http://sink.example/: expected an NBD URI");
  assert_uri_refused ("unix:///run/s.sock", G_URI_ERROR_BAD_SCHEME,
                      "expected an NBD URI");
  assert_uri_refused ("/run/s.sock", G_URI_ERROR_FAILED,
                      "--sink /run/s.sock: ");
  assert_uri_refused ("nbd://sink:port/", G_URI_ERROR_BAD_PORT,
                      "--sink nbd://sink:port/: ");
}

static void
test_export_uri (void **state)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *live = vms_sink_client_export_uri (
      "nbd+unix:///?socket=/s", VMS_SINK_NAME_KIND_LIVE, "vm1-vda", 0, NULL);
  g_autofree char *create = vms_sink_client_export_uri (
      "nbd://sink/", VMS_SINK_NAME_KIND_CREATE, "vm1-vda", 1048576, NULL);
  g_autofree char *probe
      = vms_sink_client_probe_uri ("nbds+unix:///?socket=/s", NULL);
  g_autofree char *bad = vms_sink_client_export_uri (
      "nbd://sink/", VMS_SINK_NAME_KIND_COMMIT, "../etc", 0, &error);

  assert_string_equal (live, "nbd+unix:///vm1-vda@live?socket=/s");
  assert_string_equal (create, "nbd://sink/vm1-vda@create=1048576");
  assert_string_equal (probe, "nbds+unix:///@probe?socket=/s");
  assert_null (bad);
  assert_true (g_error_matches (error, VMS_SINK_NAME_ERROR,
                                VMS_SINK_NAME_ERROR_INVALID));
}

/* Refused before connecting: nothing is listening at these URIs. */
static void
test_open_refused (void **state)
{
  g_autoptr (GError) name_error = NULL;
  g_autoptr (GError) uri_error = NULL;

  assert_false (vms_sink_client_commit (ABSENT_SINK, "a/b", &name_error));
  assert_true (g_error_matches (name_error, VMS_SINK_NAME_ERROR,
                                VMS_SINK_NAME_ERROR_INVALID));
  assert_false (vms_sink_client_create (
      "http://sink/", "x", 4096, VMS_SINK_CLIENT_TIMEOUT_MS, NULL, &uri_error));
  assert_true (
      g_error_matches (uri_error, G_URI_ERROR, G_URI_ERROR_BAD_SCHEME));
  assert_non_null (
      strstr (uri_error->message, "cannot open the replica with 4096 bytes"));
}

/* A sink that is not there is a connect error, naming the export. */
static void
test_open_unreachable (void **state)
{
  g_autofree char *dir = g_dir_make_tmp ("test-sink-client-XXXXXX", NULL);
  g_autofree char *socket = g_build_filename (dir, "absent.sock", NULL);
  g_autofree char *sink = g_strconcat ("nbd+unix:///?socket=", socket, NULL);
  g_autoptr (GError) reset_error = NULL;
  g_autoptr (GError) flush_error = NULL;
  g_autoptr (GError) create_error = NULL;
  g_autofree char *reset_prefix
      = g_strdup_printf ("sink %s: replica 'vm1-vda' @live-reset: ", sink);
  g_autofree char *flush_prefix
      = g_strdup_printf ("sink %s: replica 'vm1-vda': ", sink);

  assert_non_null (dir);
  assert_false (vms_sink_client_live_reset (sink, "vm1-vda", &reset_error));
  assert_true (
      g_error_matches (reset_error, VMS_COPY_ERROR, VMS_COPY_ERROR_CONNECT));
  assert_true (g_str_has_prefix (reset_error->message, reset_prefix));

  assert_false (vms_sink_client_flush (sink, "vm1-vda", &flush_error));
  assert_true (
      g_error_matches (flush_error, VMS_COPY_ERROR, VMS_COPY_ERROR_CONNECT));
  assert_true (g_str_has_prefix (flush_error->message, flush_prefix));

  assert_false (vms_sink_client_create (
      sink, "vm1-vda", 1024, VMS_SINK_CLIENT_TIMEOUT_MS, NULL, &create_error));
  assert_true (
      g_error_matches (create_error, VMS_COPY_ERROR, VMS_COPY_ERROR_CONNECT));
  assert_non_null (strstr (create_error->message,
                           "cannot open the replica with 1024 bytes"));
  assert_non_null (strstr (create_error->message, "@create=1024"));
  g_rmdir (dir);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_unix_socket),
    cmocka_unit_test (test_tls_query),
    cmocka_unit_test (test_tcp),
    cmocka_unit_test (test_path_replaced),
    cmocka_unit_test (test_escaped),
    cmocka_unit_test (test_bad_uri),
    cmocka_unit_test (test_export_uri),
    cmocka_unit_test (test_open_refused),
    cmocka_unit_test (test_open_unreachable),
  };

  return cmocka_run_group_tests_name ("sink-client", tests, NULL, NULL);
}
