/* vmshift: split a QMP byte stream into JSON texts.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "vms-qmp-framer.h"
#include "vms-qmp-error.h"

struct _VmsQmpFramer
{
  GString *current;        /* bytes of the message being received */
  GQueue complete;         /* GString* of complete messages, oldest first */
  gsize max_message_size;  /* longest message accepted, in bytes */
  guint depth;             /* open '{' and '[' in the current message */
  gboolean in_string;      /* inside a JSON string literal */
  gboolean escaped;        /* previous byte was a backslash in a string */
  gboolean broken;         /* malformed input seen; no more input accepted */
};

VmsQmpFramer *
vms_qmp_framer_new (gsize max_message_size)
{
  VmsQmpFramer *framer = g_new0 (VmsQmpFramer, 1);

  framer->current = g_string_new (NULL);
  g_queue_init (&framer->complete);
  framer->max_message_size = max_message_size ? max_message_size
                                              : VMS_QMP_FRAMER_DEFAULT_MAX_MESSAGE;
  return framer;
}

static void
free_gstring (gpointer data)
{
  g_string_free (data, TRUE);
}

void
vms_qmp_framer_free (VmsQmpFramer *framer)
{
  if (!framer)
    return;
  g_string_free (framer->current, TRUE);
  g_queue_clear_full (&framer->complete, free_gstring);
  g_free (framer);
}

static gboolean
fail (VmsQmpFramer *framer, GError **error, const char *format, ...)
  G_GNUC_PRINTF (3, 4);

static gboolean
fail (VmsQmpFramer *framer, GError **error, const char *format, ...)
{
  va_list args;
  g_autofree char *message = NULL;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  framer->broken = TRUE;
  g_set_error (error, VMS_QMP_ERROR, VMS_QMP_ERROR_PROTOCOL,
               "malformed QMP stream: %s", message);
  return FALSE;
}

static gboolean
is_json_space (char c)
{
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Consume one byte that belongs to a message in progress. */
static gboolean
feed_inside (VmsQmpFramer *framer, char c, GError **error)
{
  if (framer->in_string)
    {
      if (framer->escaped)
        framer->escaped = FALSE;
      else if (c == '\\')
        framer->escaped = TRUE;
      else if (c == '"')
        framer->in_string = FALSE;
      else if ((guchar) c < 0x20)
        return fail (framer, error, "control byte 0x%02x inside a string",
                     (guchar) c);
      return TRUE;
    }

  switch (c)
    {
    case '"':
      framer->in_string = TRUE;
      break;
    case '{':
    case '[':
      if (++framer->depth > VMS_QMP_FRAMER_MAX_DEPTH)
        return fail (framer, error, "JSON nested deeper than %d levels",
                     VMS_QMP_FRAMER_MAX_DEPTH);
      break;
    case '}':
    case ']':
      framer->depth--;
      break;
    default:
      break;
    }
  return TRUE;
}

gboolean
vms_qmp_framer_feed (VmsQmpFramer *framer, const char *data, gsize length,
                     GError **error)
{
  if (framer->broken)
    return fail (framer, error, "input after an earlier error");

  for (gsize i = 0; i < length; i++)
    {
      char c = data[i];

      if (framer->current->len == 0)
        {
          /* Between messages only whitespace is allowed. */
          if (is_json_space (c))
            continue;
          if (c != '{')
            return fail (framer, error,
                         "expected '{' to start a message, got byte 0x%02x",
                         (guchar) c);
        }

      if (framer->current->len >= framer->max_message_size)
        return fail (framer, error, "message longer than %" G_GSIZE_FORMAT
                     " bytes", framer->max_message_size);

      g_string_append_c (framer->current, c);
      if (!feed_inside (framer, c, error))
        return FALSE;

      if (framer->depth == 0 && !framer->in_string)
        {
          g_queue_push_tail (&framer->complete, framer->current);
          framer->current = g_string_new (NULL);
        }
    }
  return TRUE;
}

char *
vms_qmp_framer_pop (VmsQmpFramer *framer, gsize *length_out)
{
  GString *message = g_queue_pop_head (&framer->complete);

  if (!message)
    return NULL;
  if (length_out)
    *length_out = message->len;
  return g_string_free (message, FALSE);
}

gboolean
vms_qmp_framer_has_partial (const VmsQmpFramer *framer)
{
  return framer->current->len > 0;
}
