/* vmshiftd: what the database's parts share (vms-db.c: the file, its
 * schema, jobs, events, migrations; vms-db-estimate.c: estimates):
 * statements prepared, bound and stepped one way, failures said with
 * the file's name and SQLite's message.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "vms-db.h"

#include <sqlite3.h>

G_BEGIN_DECLS

struct _VmsDb
{
  sqlite3 *handle;  /* the open file */
  char *path;       /* its name, for messages */
  guint max_events; /* events kept at most */
  /* Each event is a row: its two statements are prepared once. */
  sqlite3_stmt *insert_event;
  sqlite3_stmt *prune_events;
};

G_DEFINE_AUTOPTR_CLEANUP_FUNC (sqlite3_stmt, sqlite3_finalize)

/* FALSE, with error saying what failed and SQLite's message. */
gboolean vms_db_fail (VmsDb *db, GError **error, const char *what);

/* sql (constant text, no parameters) run whole. */
gboolean vms_db_exec (VmsDb *db, const char *sql, GError **error);

/* sql prepared (caller finalizes), or NULL with error. */
sqlite3_stmt *vms_db_prepare (VmsDb *db, const char *sql, GError **error);

/* A statement that returns no row, stepped to its end. */
gboolean vms_db_run (VmsDb *db, sqlite3_stmt *stmt, GError **error);

/* Parameter index bound to text, or NULL when text is NULL. */
void vms_db_bind_text (sqlite3_stmt *stmt, int index, const char *text);
/* ... to value, or NULL when it is below 0 (unknown). */
void vms_db_bind_count (sqlite3_stmt *stmt, int index, gint64 value);
/* ... to value, or NULL when it is not finite (unknown). */
void vms_db_bind_real (sqlite3_stmt *stmt, int index, double value);

/* Every row stmt gives, as objects whose members are its columns named
 * names (NULL columns left out); NULL with error (caller unrefs). */
JsonArray *vms_db_rows_array (VmsDb *db, sqlite3_stmt *stmt,
                              const char *const *names, GError **error);

G_END_DECLS
