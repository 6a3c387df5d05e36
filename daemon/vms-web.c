/* vmshiftd: the web dashboard.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-web.h"

#include <string.h>

/* Where web/vmshiftd.gresource.xml puts the files. */
#define RESOURCE_PREFIX "/org/vmshift/vmshiftd/web/"
#define STATIC_PREFIX "/static/"
/* The page loads only what vmshiftd serves: no inline script or style,
 * nothing from elsewhere, not framed by another site. */
#define CONTENT_SECURITY_POLICY                                                \
  "default-src 'self'; img-src 'self' data:; base-uri 'none'; "                \
  "form-action 'self'; frame-ancestors 'none'"

struct _VmsWeb
{
  SoupServer *server; /* the server the handler is on (a reference) */
};

static const struct
{
  const char *suffix;
  const char *type;
} content_types[] = {
  { ".html", "text/html; charset=utf-8" },
  { ".js", "text/javascript; charset=utf-8" },
  { ".css", "text/css; charset=utf-8" },
  { ".svg", "image/svg+xml" },
};

/* The Content-Type of a file named name, NULL for a kind not served. */
static const char *
content_type (const char *name)
{
  for (guint i = 0; i < G_N_ELEMENTS (content_types); i++)
    if (g_str_has_suffix (name, content_types[i].suffix))
      return content_types[i].type;
  return NULL;
}

/* A file's name from a request: letters, digits, '-', '_' and one '.'
 * not first, so that it never names a path outside the resource. */
static gboolean
name_is_valid (const char *name)
{
  guint dots = 0;

  if (!*name || *name == '.' || strlen (name) > 64)
    return FALSE;
  for (const char *c = name; *c; c++)
    {
      if (*c == '.')
        dots++;
      else if (!g_ascii_isalnum (*c) && *c != '-' && *c != '_')
        return FALSE;
    }
  return dots == 1;
}

static void
reply_text (SoupServerMessage *msg, guint status, const char *text)
{
  soup_server_message_set_status (msg, status, NULL);
  soup_server_message_set_response (msg, "text/plain; charset=utf-8",
                                    SOUP_MEMORY_COPY, text, strlen (text));
}

/* The resource file name, with its headers. */
static void
serve_file (SoupServerMessage *msg, const char *name)
{
  g_autofree char *path = g_strconcat (RESOURCE_PREFIX, name, NULL);
  const char *type = name_is_valid (name) ? content_type (name) : NULL;
  g_autoptr (GBytes) bytes
      = type
            ? g_resources_lookup_data (path, G_RESOURCE_LOOKUP_FLAGS_NONE, NULL)
            : NULL;
  SoupMessageHeaders *headers = soup_server_message_get_response_headers (msg);

  if (!bytes)
    {
      reply_text (msg, SOUP_STATUS_NOT_FOUND, "no such file\n");
      return;
    }
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_message_headers_set_content_type (headers, type, NULL);
  soup_message_headers_replace (headers, "Content-Security-Policy",
                                CONTENT_SECURITY_POLICY);
  soup_message_headers_replace (headers, "X-Content-Type-Options", "nosniff");
  soup_message_headers_replace (headers, "Referrer-Policy", "no-referrer");
  /* A new vmshiftd may serve other files under the same names. */
  soup_message_headers_replace (headers, "Cache-Control", "no-cache");
  soup_message_body_append_bytes (soup_server_message_get_response_body (msg),
                                  bytes);
}

static void
handle (SoupServer *server, SoupServerMessage *msg, const char *path,
        GHashTable *query, gpointer data)
{
  const char *method = soup_server_message_get_method (msg);

  if (!g_str_equal (method, SOUP_METHOD_GET)
      && !g_str_equal (method, SOUP_METHOD_HEAD))
    {
      soup_message_headers_replace (
          soup_server_message_get_response_headers (msg), "Allow", "GET, HEAD");
      reply_text (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "only GET\n");
    }
  else if (g_str_equal (path, "/"))
    serve_file (msg, "index.html");
  else if (g_str_has_prefix (path, STATIC_PREFIX))
    serve_file (msg, path + strlen (STATIC_PREFIX));
  else
    reply_text (msg, SOUP_STATUS_NOT_FOUND, "no such page\n");
}

VmsWeb *
vms_web_new (SoupServer *server)
{
  VmsWeb *web = g_new0 (VmsWeb, 1);

  web->server = g_object_ref (server);
  /* "/" takes what no longer path (the API's "/api/v1") takes. */
  soup_server_add_handler (server, "/", handle, web, NULL);
  return web;
}

void
vms_web_free (VmsWeb *web)
{
  if (!web)
    return;
  soup_server_remove_handler (web->server, "/");
  g_object_unref (web->server);
  g_free (web);
}
