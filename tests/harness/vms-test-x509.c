/* vmshift test harness: X.509 certificates made for a test.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-test-x509.h"
#include "vms-test.h"

/* Certificates for a test's run only. */
#define DAYS "2"

/* openssl ARGS, where @NAME stands for the file NAME in dir. */
static gboolean
openssl (const char *dir, const char *const *args, GError **error)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);

  g_ptr_array_add (argv, g_strdup ("openssl"));
  for (guint i = 0; args[i]; i++)
    g_ptr_array_add (argv, args[i][0] == '@'
                               ? g_build_filename (dir, args[i] + 1, NULL)
                               : g_strdup (args[i]));
  g_ptr_array_add (argv, NULL);
  return vms_test_run ((const char *const *)argv->pdata, NULL, error);
}

static gboolean
make_ca (const char *dir, GError **error)
{
  const char *const ca[] = { "req",
                             "-x509",
                             "-newkey",
                             "rsa:2048",
                             "-nodes",
                             "-keyout",
                             "@ca-key.pem",
                             "-out",
                             "@ca-cert.pem",
                             "-days",
                             DAYS,
                             "-subj",
                             "/CN=vmshift test CA",
                             "-addext",
                             "basicConstraints=critical,CA:TRUE",
                             "-addext",
                             "keyUsage=critical,keyCertSign,cRLSign",
                             NULL };

  return openssl (dir, ca, error);
}

/* ROLE-cert.pem and ROLE-key.pem, signed by the CA, with the extensions
 * of extensions (a file's text). */
static gboolean
make_signed (const char *dir, const char *role, const char *subject,
             const char *extensions, GError **error)
{
  g_autofree char *key = g_strdup_printf ("@%s-key.pem", role);
  g_autofree char *csr = g_strdup_printf ("@%s.csr", role);
  g_autofree char *cert = g_strdup_printf ("@%s-cert.pem", role);
  g_autofree char *ext = g_strdup_printf ("@%s.ext", role);
  g_autofree char *ext_path = g_build_filename (dir, ext + 1, NULL);
  const char *const request[]
      = { "req",  "-newkey", "rsa:2048", "-nodes", "-keyout", key,
          "-out", csr,       "-subj",    subject,  NULL };
  const char *const sign[] = { "x509",
                               "-req",
                               "-in",
                               csr,
                               "-CA",
                               "@ca-cert.pem",
                               "-CAkey",
                               "@ca-key.pem",
                               "-CAcreateserial",
                               "-CAserial",
                               "@ca-cert.srl",
                               "-out",
                               cert,
                               "-days",
                               DAYS,
                               "-extfile",
                               ext,
                               NULL };

  return g_file_set_contents (ext_path, extensions, -1, error)
         && openssl (dir, request, error) && openssl (dir, sign, error);
}

char *
vms_test_x509_make (const char *const *names, GError **error)
{
  g_autofree char *dir = vms_test_make_tmpdir ("vms-x509");
  g_autofree char *alt = g_strjoinv (",", (char **)names);
  g_autofree char *server_ext
      = g_strdup_printf ("basicConstraints=critical,CA:FALSE\n"
                         "keyUsage=critical,digitalSignature,keyEncipherment\n"
                         "extendedKeyUsage=serverAuth\n"
                         "subjectAltName=%s\n",
                         alt);
  const char *client_ext
      = "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=clientAuth\n";

  if (!make_ca (dir, error)
      || !make_signed (dir, "server", "/CN=localhost", server_ext, error)
      || !make_signed (dir, "client", "/CN=vmshift test client", client_ext,
                       error))
    return NULL;
  return g_steal_pointer (&dir);
}
