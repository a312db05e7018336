/*
 * A test's look into a store file with a connection of its own, as an
 * operator's sqlite3 would: the first column of the first row of sql as an
 * integer, -1 when there is none or the query fails.
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
    sqlite3_open(path, &db);

    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            n = sqlite3_column_int64(st, 0);
        }
        sqlite3_finalize(st);
    }

    sqlite3_close(db);
    return n;
}

#endif /* AVS_TEST_SQL_COUNT_H */
