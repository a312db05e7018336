/*
 * Small helpers over the SQLite API; see avs_sql.h.
 */

#include <string.h>

#include "avs_sql.h"


avs_rc_t
avs_sql_fail(sqlite3 *db, int src, const char *what, avs_err_t *err)
{
    avs_rc_t  rc;

    switch (src & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        rc = AVS_EBUSY;
        break;
    case SQLITE_FULL:
        rc = AVS_EFULL;
        break;
    case SQLITE_NOMEM:
        rc = AVS_ENOMEM;
        break;
    default:
        rc = AVS_ESTORE;
    }

    return avs_err_set(err, rc, "%s: %s", what,
                       db ? sqlite3_errmsg(db) : sqlite3_errstr(src));
}


/* Binds the arguments that types describes (see avs_sql.h). */
static avs_rc_t
avs_sql_bindv(sqlite3 *db, sqlite3_stmt *stmt, const char *what,
    avs_err_t *err, const char *types, va_list ap)
{
    const char  *s;
    int          i, src;

    for (i = 1; *types; types++, i++) {

        if (*types == 't') {
            s = va_arg(ap, const char *);
            src = (s != NULL) ? sqlite3_bind_text(stmt, i, s, -1,
                                                  SQLITE_STATIC)
                              : sqlite3_bind_null(stmt, i);

        } else {
            src = sqlite3_bind_int64(stmt, i, va_arg(ap, int64_t));
        }

        if (src != SQLITE_OK) {
            return avs_sql_fail(db, src, what, err);
        }
    }

    return AVS_OK;
}


avs_rc_t
avs_sql_preparev(sqlite3 *db, sqlite3_stmt **stmt, const char *what,
    avs_err_t *err, const char *sql, const char *types, va_list ap)
{
    avs_rc_t  rc;
    int       src;

    *stmt = NULL;

    src = sqlite3_prepare_v2(db, sql, -1, stmt, NULL);
    if (src != SQLITE_OK) {
        return avs_sql_fail(db, src, what, err);
    }

    rc = avs_sql_bindv(db, *stmt, what, err, types, ap);

    if (rc != AVS_OK) {
        sqlite3_finalize(*stmt);
        *stmt = NULL;
    }

    return rc;
}


avs_rc_t
avs_sql_prepare(sqlite3 *db, sqlite3_stmt **stmt, const char *what,
    avs_err_t *err, const char *sql, const char *types, ...)
{
    va_list   ap;
    avs_rc_t  rc;

    va_start(ap, types);
    rc = avs_sql_preparev(db, stmt, what, err, sql, types, ap);
    va_end(ap);

    return rc;
}


avs_rc_t
avs_sql_cached(sqlite3 *db, sqlite3_stmt **stmt, const char *what,
    avs_err_t *err, const char *sql, const char *types, ...)
{
    va_list        ap;
    avs_rc_t       rc;
    sqlite3_stmt  *s;
    const char    *text;
    int            src;

    for (s = sqlite3_next_stmt(db, NULL); s; s = sqlite3_next_stmt(db, s)) {
        text = sqlite3_sql(s);

        if (!sqlite3_stmt_busy(s) && text != NULL && strcmp(text, sql) == 0)
        {
            break;
        }
    }

    if (s == NULL) {
        src = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s,
                                 NULL);
        if (src != SQLITE_OK) {
            *stmt = NULL;
            return avs_sql_fail(db, src, what, err);
        }

    } else {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
    }

    va_start(ap, types);
    rc = avs_sql_bindv(db, s, what, err, types, ap);
    va_end(ap);

    *stmt = (rc == AVS_OK) ? s : NULL;

    return rc;
}


void
avs_sql_finalize_all(sqlite3 *db)
{
    sqlite3_stmt  *s;

    if (db == NULL) {
        return;
    }

    while ((s = sqlite3_next_stmt(db, NULL)) != NULL) {
        sqlite3_finalize(s);
    }
}


avs_rc_t
avs_sql_step(sqlite3 *db, sqlite3_stmt *stmt, const char *what,
    avs_err_t *err)
{
    int  src;

    src = sqlite3_step(stmt);

    if (src == SQLITE_ROW) {
        return AVS_OK;
    }

    if (src == SQLITE_DONE) {
        return AVS_DONE;
    }

    return avs_sql_fail(db, src, what, err);
}


avs_rc_t
avs_sql_query(sqlite3 *db, sqlite3_stmt **stmt, const char *what,
    avs_err_t *err, const char *sql, const char *types, ...)
{
    va_list   ap;
    avs_rc_t  rc;

    va_start(ap, types);
    rc = avs_sql_preparev(db, stmt, what, err, sql, types, ap);
    va_end(ap);

    if (rc != AVS_OK) {
        return rc;
    }

    rc = avs_sql_step(db, *stmt, what, err);

    if (rc != AVS_OK) {
        sqlite3_finalize(*stmt);
        *stmt = NULL;
    }

    return rc;
}


avs_rc_t
avs_sql_exec(sqlite3 *db, int64_t *changes, const char *what,
    avs_err_t *err, const char *sql, const char *types, ...)
{
    sqlite3_stmt  *stmt;
    va_list        ap;
    avs_rc_t       rc;

    va_start(ap, types);
    rc = avs_sql_preparev(db, &stmt, what, err, sql, types, ap);
    va_end(ap);

    if (rc != AVS_OK) {
        return rc;
    }

    rc = avs_sql_step(db, stmt, what, err);

    if (rc == AVS_DONE) {
        rc = AVS_OK;

        if (changes != NULL) {
            *changes = sqlite3_changes64(db);
        }

    } else if (rc == AVS_OK) {
        rc = avs_err_set(err, AVS_EINTERNAL, "%s: returned a row", what);
    }

    sqlite3_finalize(stmt);

    return rc;
}


avs_rc_t
avs_sql_text(sqlite3_stmt *stmt, int col, char *out, size_t size,
    const char *what, avs_err_t *err)
{
    const unsigned char  *s;
    int                   n;

    s = sqlite3_column_text(stmt, col);
    n = sqlite3_column_bytes(stmt, col);

    if (s == NULL || n < 0 || (size_t) n >= size) {
        return avs_err_set(err, AVS_ESTORE,
                           "%s: column %d is missing or too long",
                           what, col + 1);
    }

    memcpy(out, s, (size_t) n + 1);

    return AVS_OK;
}
