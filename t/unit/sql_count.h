/*
 * A test's look into a store file with a connection of its own, as an
 * operator's sqlite3 would, never creating it: sql_count gives the first
 * column of the first row of sql as an integer, -1 when there is none or
 * the query fails; sql_exec runs sql and gives SQLite's result, -1 when
 * the file cannot be opened.
 */

#ifndef AVS_TEST_SQL_COUNT_H
#define AVS_TEST_SQL_COUNT_H

#include <sqlite3.h>

static long long
sql_count(const char *path, const char *sql)
{
    sqlite3       *db;
    sqlite3_stmt  *st;
    long long      n;

    n = -1;

    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
    {
        sqlite3_close(db);
        return -1;
    }

    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            n = sqlite3_column_int64(st, 0);
        }
        sqlite3_finalize(st);
    }

    sqlite3_close(db);
    return n;
}


static inline int
sql_exec(const char *path, const char *sql)
{
    sqlite3  *db;
    int       rc;

    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
    {
        sqlite3_close(db);
        return -1;
    }

    sqlite3_busy_timeout(db, 5000);
    rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);

    return rc;
}

#endif /* AVS_TEST_SQL_COUNT_H */
