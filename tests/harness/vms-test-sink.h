/* vmshift test harness: a real nbdkit running the vmshift sink plugin.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include <libnbd.h>

typedef struct
{
  char *dir;          /* private directory holding everything below */
  char *replica_dir;  /* the plugin's dir= */
  char *socket_path;  /* nbdkit's unix socket */
  char *log_path;     /* nbdkit's stderr */
  GStrv plugin_args;  /* extra plugin parameters, e.g. "hash-chunk=64K" */
  GStrv filters;      /* nbdkit filters in front of the plugin, e.g. "delay"
                         (their parameters go in plugin_args); taken by
                         the next start */
  char *netns;        /* network namespace to run in, or NULL */
  char *tcp_address;  /* listen on this IPv4 address instead of a socket */
  char *psk_file;     /* TLS-PSK keys ("vmshift:HEX"), or NULL */
  char *certificates; /* or X.509: ca-cert.pem, server-cert.pem and
                         server-key.pem; neither: no TLS */
  char *pid_path;     /* nbdkit's pid file */
  GPid pid;           /* nbdkit, running in the foreground */
  gboolean running;   /* pid is alive and not reaped */
} VmsTestSink;

/* Start nbdkit with the plugin (VMS_SINK_PLUGIN) on a private socket.
 * replica_dir NULL makes one in the private directory.  nbdkit dies with
 * the test process. */
VmsTestSink *vms_test_sink_start (const char *replica_dir,
                                  const char *const *plugin_args,
                                  GError **error);

/* Port the TCP sink listens on (inside its namespace only). */
#define VMS_TEST_SINK_PORT 10809

/* The same, listening on address:VMS_TEST_SINK_PORT inside network
 * namespace netns with TLS-PSK required; clients use
 * vms_test_sink_tcp_uri().  Needs root. */
VmsTestSink *vms_test_sink_start_tcp (const char *netns, const char *address,
                                      GError **error);

/* The PSK identity of the sinks with TLS. */
#define VMS_TEST_SINK_PSK_USER "vmshift"

/* A sink on a private unix socket with TLS-PSK required (its keys in
 * psk_file, named keys.psk as QEMU wants): vms_test_sink_uri() gives
 * nbds+unix:// URIs and vms_test_sink_connect() uses TLS. */
VmsTestSink *vms_test_sink_start_tls (GError **error);

/* The same with X.509 certificates from directory certificates. */
VmsTestSink *vms_test_sink_start_x509 (const char *certificates,
                                       GError **error);

/* The same with X.509 certificates from directory certificates instead
 * of TLS-PSK. */
VmsTestSink *vms_test_sink_start_tcp_x509 (const char *netns,
                                           const char *address,
                                           const char *certificates,
                                           GError **error);

/* "nbds://vmshift@ADDRESS:PORT/EXPORT?tls-psk-file=..." (with X.509
 * "nbds://ADDRESS:PORT/EXPORT?tls-certificates=...") (caller frees). */
char *vms_test_sink_tcp_uri (VmsTestSink *sink, const char *export_name);

/* SIGKILL nbdkit and reap it: the harshest crash a process can have. */
void vms_test_sink_kill (VmsTestSink *sink);

/* Stop nbdkit cleanly (SIGTERM) and check how it exited: FALSE if it
 * hung, or if valgrind (VMS_SINK_VALGRIND set) found errors in it. */
gboolean vms_test_sink_stop (VmsTestSink *sink, GError **error);

/* Start nbdkit again on the same directory and socket. */
gboolean vms_test_sink_restart (VmsTestSink *sink, GError **error);

/* "nbd+unix:///EXPORT?socket=..." (with TLS "nbds+unix://vmshift@/...
 * &tls-psk-file=...") (caller frees). */
char *vms_test_sink_uri (VmsTestSink *sink, const char *export_name);

/* A libnbd handle connected to export_name; NULL with the server's
 * refusal in error. */
struct nbd_handle *vms_test_sink_connect (VmsTestSink *sink,
                                          const char *export_name,
                                          GError **error);

/* Path of a replica's data file. */
char *vms_test_sink_replica_path (VmsTestSink *sink, const char *name);

/* The tail of nbdkit's log, for failure messages (caller frees). */
char *vms_test_sink_log (VmsTestSink *sink);

/* Create replica name of size bytes through the sink's @create= export;
 * fails the test if the sink refuses or the replica has another size. */
void vms_test_sink_create_replica (VmsTestSink *sink, const char *name,
                                   guint64 size);

/* The object for replica name in output, what vmshift-sink list --json
 * printed (parsed into parser, borrowed from it), or NULL; fails the
 * test if output is not a JSON array. */
JsonObject *vms_test_sink_listed (const char *output, const char *name,
                                  JsonParser *parser);

/* For a cmocka setup: nbdkit with the plugin (plugin_args as for
 * vms_test_sink_start) on a private socket and replica directory, or
 * NULL with the reason printed. */
VmsTestSink *vms_test_sink_setup (const char *const *plugin_args);

/* For the matching teardown: stop the sink (vms_test_sink_stop) and free
 * it; 0, or -1 with the reason printed when it did not stop cleanly. */
int vms_test_sink_teardown (VmsTestSink *sink);

void vms_test_sink_free (VmsTestSink *sink);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmsTestSink, vms_test_sink_free)
/* libnbd names its handle only as a struct. */
typedef struct nbd_handle nbd_handle;
G_DEFINE_AUTOPTR_CLEANUP_FUNC (nbd_handle, nbd_close)
