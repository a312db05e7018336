/*
 * Small helpers over the SQLite API for the core's queries: prepare and
 * bind in one call, run for the first row or for its effect, and turn a
 * SQLite failure into a result code the caller can act on (busy and full
 * mean "later", anything else means the store failed).
 *
 * Argument lists are described by a string, one letter per '?': 't' a C
 * string (NULL binds NULL), 'i' an int64_t.  Strings are bound without a
 * copy: they must outlive the statement's use.  Every message starts with
 * the caller's what ("read: cold ranges: database is locked").
 */

#ifndef AVS_SQL_H
#define AVS_SQL_H

#include <stdarg.h>
#include <sqlite3.h>

#include "avs_base.h"

/* Records a SQLite failure in err and returns its result code. */
avs_rc_t avs_sql_fail(sqlite3 *db, int src, const char *what,
    avs_err_t *err);

/* Prepares sql and binds its arguments; the caller finalizes *stmt. */
avs_rc_t avs_sql_prepare(sqlite3 *db, sqlite3_stmt **stmt, const char *what,
    avs_err_t *err, const char *sql, const char *types, ...);
avs_rc_t avs_sql_preparev(sqlite3 *db, sqlite3_stmt **stmt,
    const char *what, avs_err_t *err, const char *sql, const char *types,
    va_list ap);

/*
 * Like avs_sql_prepare, but the statement is kept on db: a later call with
 * the same text takes it again instead of parsing the text anew (a read
 * path query costs more to prepare than to run).  The caller ends with
 * sqlite3_reset, never sqlite3_finalize; avs_sql_finalize_all does that
 * before db is closed.
 */
avs_rc_t avs_sql_cached(sqlite3 *db, sqlite3_stmt **stmt, const char *what,
    avs_err_t *err, const char *sql, const char *types, ...);

/* Finalizes every statement of db, so that it can be closed. */
void avs_sql_finalize_all(sqlite3 *db);

/*
 * Steps a prepared statement: AVS_OK on a row, AVS_DONE at the end, else
 * the failure.
 */
avs_rc_t avs_sql_step(sqlite3 *db, sqlite3_stmt *stmt, const char *what,
    avs_err_t *err);

/*
 * Runs a query for its first row: AVS_OK with *stmt on that row (the
 * caller reads it and finalizes), AVS_DONE when there is none (*stmt is
 * then NULL).
 */
avs_rc_t avs_sql_query(sqlite3 *db, sqlite3_stmt **stmt, const char *what,
    avs_err_t *err, const char *sql, const char *types, ...);

/* Runs a statement that returns no rows; *changes (if not NULL) gets the
 * number of rows it changed. */
avs_rc_t avs_sql_exec(sqlite3 *db, int64_t *changes, const char *what,
    avs_err_t *err, const char *sql, const char *types, ...);

/* Copies a text column that must be there and fit in size bytes. */
avs_rc_t avs_sql_text(sqlite3_stmt *stmt, int col, char *out, size_t size,
    const char *what, avs_err_t *err);

#endif /* AVS_SQL_H */
