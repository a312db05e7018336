/*
 * The read path's plan; see avs_read.h.
 *
 * Which schema: every archived range and hot row carries the fingerprint
 * of its stream.  A query without one is answered when the selected data
 * has exactly one; with several, the client must choose, so the plan
 * lists each fingerprint with its periods.  The time window selects hot
 * uploads by their receipt time and archived ranges by the span of the
 * uploads they hold: a range that overlaps the window is sent whole, since
 * the block index does not say where each upload starts.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* O_TMPFILE, mkostemp */
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "avs_json.h"
#include "avs_ocf.h"
#include "avs_read.h"
#include "avs_sql.h"

#define AVS_READ_NAME_MAX  129

/* One (schema, period) pair found, for the choice a conflict offers. */
typedef struct {
    char  fingerprint[17];
    char  period[AVS_READ_NAME_MAX];
} avs_read_seen_t;

typedef struct {
    const avs_read_query_t  *q;
    avs_read_plan_t         *plan;
    avs_read_seen_t         *seen;
    size_t                   nseen;
    size_t                   cap;
} avs_read_ctx_t;


static avs_rc_t avs_read_snapshot(sqlite3 *db, void *arg, avs_err_t *err);
static avs_rc_t avs_read_cold(avs_read_ctx_t *c, sqlite3 *db,
    avs_err_t *err);
static avs_rc_t avs_read_add_range(avs_read_plan_t *plan,
    const unsigned char *key, uint64_t offset, uint64_t length,
    avs_err_t *err);
static avs_rc_t avs_read_hot(avs_read_ctx_t *c, sqlite3 *db,
    avs_err_t *err);
static avs_rc_t avs_read_hot_block(avs_read_ctx_t *c, const void *data,
    size_t len, avs_err_t *err);
static avs_rc_t avs_read_spill(avs_read_ctx_t *c, avs_err_t *err);
static avs_rc_t avs_read_write(int fd, const void *data, size_t len,
    avs_err_t *err);
static avs_rc_t avs_read_seen(avs_read_ctx_t *c, sqlite3_stmt *stmt,
    int fp_col, int period_col, avs_err_t *err);
static avs_rc_t avs_read_conflict(avs_read_ctx_t *c, avs_err_t *err);
static int avs_read_seen_cmp(const void *a, const void *b);
static avs_rc_t avs_read_header(avs_read_ctx_t *c, sqlite3 *db,
    avs_err_t *err);


avs_rc_t
avs_read_plan(avs_store_t *st, const avs_read_query_t *q,
    avs_read_plan_t *plan, avs_err_t *err)
{
    avs_rc_t        rc;
    avs_read_ctx_t  c;

    memset(&c, 0, sizeof(c));
    c.q = q;
    c.plan = plan;

    rc = avs_store_read(st, avs_read_snapshot, &c, err);

    free(c.seen);

    if (rc != AVS_OK && rc != AVS_ECONFLICT) {
        avs_read_plan_free(plan);
    }

    return rc;
}


void
avs_read_plan_free(avs_read_plan_t *plan)
{
    size_t  i;

    for (i = 0; i < plan->nranges; i++) {
        free(plan->ranges[i].key);
    }

    if (plan->hot_in_file) {
        close(plan->hot_fd);
        plan->hot_in_file = 0;
    }

    free(plan->ranges);
    plan->ranges = NULL;
    plan->nranges = 0;

    avs_buf_free(&plan->header);
    avs_buf_free(&plan->hot);
    avs_buf_free(&plan->schemas);
}


uint64_t
avs_read_plan_size(const avs_read_plan_t *plan)
{
    return plan->header.len + plan->cold_bytes + plan->hot.len
           + plan->hot_file_bytes;
}


/* Everything the plan needs, in the one read transaction. */
static avs_rc_t
avs_read_snapshot(sqlite3 *db, void *arg, avs_err_t *err)
{
    avs_read_ctx_t *c = arg;

    avs_rc_t  rc;

    rc = avs_read_cold(c, db, err);

    if (rc == AVS_OK) {
        rc = avs_read_hot(c, db, err);
    }

    if (rc != AVS_OK) {
        return rc;
    }

    if (c->nseen > 0) {
        if (c->q->fingerprint == NULL
            && avs_read_conflict(c, err) != AVS_OK)
        {
            return err->rc;
        }

        memcpy(c->plan->fingerprint, c->seen[0].fingerprint, 17);
    }

    return avs_read_header(c, db, err);
}


/*
 * The dataset's archived ranges, oldest file first, merged when one ends
 * where the next begins in the same object.
 */
static avs_rc_t
avs_read_cold(avs_read_ctx_t *c, sqlite3 *db, avs_err_t *err)
{
    sqlite3_stmt            *stmt;
    avs_rc_t                 rc;
    int64_t                  start, length;
    const unsigned char     *key;
    const avs_read_query_t  *q;

    q = c->q;

    rc = avs_sql_cached(db, &stmt, "read: archived ranges", err,
                         "SELECT f.file_path, b.start_byte, b.length,"
                         " b.record_count, b.schema_fingerprint,"
                         " b.period_tag"
                         " FROM block_indexes b"
                         " JOIN archived_files f ON f.id = b.file_id"
                         " WHERE b.dataset_id = ?1 AND b.table_name = ?2"
                         " AND (?3 IS NULL OR b.period_tag = ?3)"
                         " AND b.end_timestamp >= ?4"
                         " AND b.start_timestamp <= ?5"
                         " AND (?6 IS NULL OR b.schema_fingerprint = ?6)"
                         " ORDER BY f.id, b.start_byte",
                         "tttiit", q->dataset, q->table, q->period,
                         q->from_ms, q->to_ms, q->fingerprint);
    if (rc != AVS_OK) {
        return rc;
    }

    while ((rc = avs_sql_step(db, stmt, "read: archived ranges", err))
           == AVS_OK)
    {
        key = sqlite3_column_text(stmt, 0);
        start = sqlite3_column_int64(stmt, 1);
        length = sqlite3_column_int64(stmt, 2);

        if (key == NULL || start < 0 || length <= 0) {
            rc = avs_err_set(err, AVS_ESTORE,
                             "read: a block index row is damaged");
            break;
        }

        rc = avs_read_add_range(c->plan, key, (uint64_t) start,
                                (uint64_t) length, err);
        if (rc != AVS_OK) {
            break;
        }

        c->plan->cold_bytes += (uint64_t) length;
        c->plan->cold_records += (uint64_t) sqlite3_column_int64(stmt, 3);

        rc = avs_read_seen(c, stmt, 4, 5, err);
        if (rc != AVS_OK) {
            break;
        }
    }

    sqlite3_reset(stmt);

    return (rc == AVS_DONE) ? AVS_OK : rc;
}


static avs_rc_t
avs_read_add_range(avs_read_plan_t *plan, const unsigned char *key,
    uint64_t offset, uint64_t length, avs_err_t *err)
{
    size_t             cap;
    avs_read_range_t  *r;

    if (plan->nranges > 0) {
        r = &plan->ranges[plan->nranges - 1];

        if (r->offset + r->length == offset
            && strcmp(r->key, (const char *) key) == 0)
        {
            r->length += length;
            return AVS_OK;
        }
    }

    /* a power of two: grow when full */
    if ((plan->nranges & (plan->nranges - 1)) == 0) {
        cap = plan->nranges ? plan->nranges * 2 : 8;

        if (cap > plan->nranges) {
            r = realloc(plan->ranges, cap * sizeof(avs_read_range_t));
            if (r == NULL) {
                return avs_err_set(err, AVS_ENOMEM, "read: out of memory");
            }

            plan->ranges = r;
        }
    }

    r = &plan->ranges[plan->nranges];
    r->key = strdup((const char *) key);
    if (r->key == NULL) {
        return avs_err_set(err, AVS_ENOMEM, "read: out of memory");
    }

    r->offset = offset;
    r->length = length;
    plan->nranges++;

    return AVS_OK;
}


/* The dataset's hot blocks, in upload order. */
static avs_rc_t
avs_read_hot(avs_read_ctx_t *c, sqlite3 *db, avs_err_t *err)
{
    sqlite3_stmt            *stmt;
    avs_rc_t                 rc;
    const void              *data;
    int                      len;
    const avs_read_query_t  *q;

    q = c->q;

    rc = avs_sql_cached(db, &stmt, "read: hot rows", err,
                         "SELECT data, record_count, schema_fingerprint,"
                         " period_tag"
                         " FROM buffer_logs"
                         " WHERE dataset_id = ?1 AND table_name = ?2"
                         " AND (?3 IS NULL OR period_tag = ?3)"
                         " AND timestamp >= ?4 AND timestamp <= ?5"
                         " AND (?6 IS NULL OR schema_fingerprint = ?6)"
                         " ORDER BY id",
                         "tttiit", q->dataset, q->table, q->period,
                         q->from_ms, q->to_ms, q->fingerprint);
    if (rc != AVS_OK) {
        return rc;
    }

    while ((rc = avs_sql_step(db, stmt, "read: hot rows", err)) == AVS_OK) {
        data = sqlite3_column_blob(stmt, 0);
        len = sqlite3_column_bytes(stmt, 0);

        if (len > 0) {
            if (data == NULL) {
                rc = avs_err_set(err, AVS_ENOMEM, "read: out of memory");
                break;
            }

            rc = avs_read_hot_block(c, data, (size_t) len, err);
            if (rc != AVS_OK) {
                break;
            }
        }

        c->plan->hot_rows++;
        c->plan->hot_records += (uint64_t) sqlite3_column_int64(stmt, 1);

        rc = avs_read_seen(c, stmt, 2, 3, err);
        if (rc != AVS_OK) {
            break;
        }
    }

    sqlite3_reset(stmt);

    return (rc == AVS_DONE) ? AVS_OK : rc;
}


/*
 * Keeps a hot row's blocks: in memory up to the query's hot_memory, then
 * in a temporary file, so that a dataset with much hot data costs a read
 * disk space, not memory.
 */
static avs_rc_t
avs_read_hot_block(avs_read_ctx_t *c, const void *data, size_t len,
    avs_err_t *err)
{
    avs_rc_t          rc;
    avs_read_plan_t  *plan;

    plan = c->plan;

    if (!plan->hot_in_file && c->q->hot_memory > 0 && c->q->spill_dir != NULL
        && plan->hot.len + len > c->q->hot_memory)
    {
        rc = avs_read_spill(c, err);
        if (rc != AVS_OK) {
            return rc;
        }
    }

    if (plan->hot_in_file) {
        rc = avs_read_write(plan->hot_fd, data, len, err);
        if (rc == AVS_OK) {
            plan->hot_file_bytes += len;
        }

        return rc;
    }

    rc = avs_buf_append(&plan->hot, data, len);
    if (rc != AVS_OK) {
        return avs_err_set(err, rc, "read: the hot rows do not fit in "
                           "memory");
    }

    return AVS_OK;
}


/* Moves the hot blocks kept so far into a new unlinked temporary file. */
static avs_rc_t
avs_read_spill(avs_read_ctx_t *c, avs_err_t *err)
{
    int               fd;
    char              path[4096];
    avs_rc_t          rc;
    avs_read_plan_t  *plan;

    plan = c->plan;

    fd = open(c->q->spill_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

    if (fd == -1 && (errno == EOPNOTSUPP || errno == EISDIR
                     || errno == EINVAL))
    {
        /* a file system without O_TMPFILE: a named file, unlinked */
        if ((size_t) snprintf(path, sizeof(path), "%s/avro-read-XXXXXX",
                              c->q->spill_dir) < sizeof(path))
        {
            fd = mkostemp(path, O_CLOEXEC);
            if (fd != -1) {
                (void) unlink(path);
            }
        }
    }

    if (fd == -1) {
        return avs_err_set(err, AVS_ESTORE, "read: no temporary file in "
                           "\"%s\": %s", c->q->spill_dir, strerror(errno));
    }

    rc = avs_read_write(fd, plan->hot.data, plan->hot.len, err);
    if (rc != AVS_OK) {
        close(fd);
        return rc;
    }

    plan->hot_in_file = 1;
    plan->hot_fd = fd;
    plan->hot_file_bytes = plan->hot.len;
    avs_buf_free(&plan->hot);

    return AVS_OK;
}


static avs_rc_t
avs_read_write(int fd, const void *data, size_t len, avs_err_t *err)
{
    ssize_t       n;
    const char   *p;

    for (p = data; len > 0; p += n, len -= (size_t) n) {
        n = write(fd, p, len);

        if (n == -1 && errno == EINTR) {
            n = 0;
            continue;
        }

        if (n <= 0) {
            return avs_err_set(err, AVS_ESTORE, "read: temporary file: %s",
                               n == 0 ? "no space" : strerror(errno));
        }
    }

    return AVS_OK;
}


/* Notes the (schema, period) of a range or row, once each. */
static avs_rc_t
avs_read_seen(avs_read_ctx_t *c, sqlite3_stmt *stmt, int fp_col,
    int period_col, avs_err_t *err)
{
    size_t            i;
    avs_read_seen_t   s, *p;

    memset(&s, 0, sizeof(s));

    if (avs_sql_text(stmt, fp_col, s.fingerprint, sizeof(s.fingerprint),
                     "read: fingerprint", err) != AVS_OK
        || avs_sql_text(stmt, period_col, s.period, sizeof(s.period),
                        "read: period", err) != AVS_OK)
    {
        return err->rc;
    }

    for (i = 0; i < c->nseen; i++) {
        if (strcmp(c->seen[i].fingerprint, s.fingerprint) == 0
            && strcmp(c->seen[i].period, s.period) == 0)
        {
            return AVS_OK;
        }
    }

    if (c->nseen == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 8;

        p = realloc(c->seen, c->cap * sizeof(avs_read_seen_t));
        if (p == NULL) {
            return avs_err_set(err, AVS_ENOMEM, "read: out of memory");
        }

        c->seen = p;
    }

    c->seen[c->nseen++] = s;

    return AVS_OK;
}


/*
 * AVS_OK when every (schema, period) seen has one schema; else lists them
 * in plan->schemas, sorted, and returns AVS_ECONFLICT.
 */
static avs_rc_t
avs_read_conflict(avs_read_ctx_t *c, avs_err_t *err)
{
    size_t      i;
    avs_rc_t    rc;
    avs_buf_t  *b;

    for (i = 1; i < c->nseen; i++) {
        if (strcmp(c->seen[i].fingerprint, c->seen[0].fingerprint) != 0) {
            break;
        }
    }

    if (i == c->nseen) {
        return AVS_OK;
    }

    qsort(c->seen, c->nseen, sizeof(avs_read_seen_t), avs_read_seen_cmp);

    b = &c->plan->schemas;
    rc = avs_buf_append(b, "[", 1);

    for (i = 0; rc == AVS_OK && i < c->nseen; i++) {

        if (i == 0 || strcmp(c->seen[i].fingerprint,
                             c->seen[i - 1].fingerprint) != 0)
        {
            rc = avs_json_raw(b, "%s{\"fingerprint\":", i ? "]}," : "");
            if (rc == AVS_OK) {
                rc = avs_json_string(b, c->seen[i].fingerprint, 16);
            }
            if (rc == AVS_OK) {
                rc = avs_buf_append(b, ",\"periods\":[", 12);
            }

        } else {
            rc = avs_buf_append(b, ",", 1);
        }

        if (rc == AVS_OK) {
            rc = avs_json_string(b, c->seen[i].period,
                                 strlen(c->seen[i].period));
        }
    }

    if (rc == AVS_OK) {
        rc = avs_buf_append(b, "]}]", 3);
    }

    if (rc != AVS_OK) {
        return avs_err_set(err, rc, "read: out of memory");
    }

    return avs_err_set(err, AVS_ECONFLICT,
                       "the data of this table has several schemas: "
                       "choose one with schema=<fingerprint>");
}


static int
avs_read_seen_cmp(const void *a, const void *b)
{
    const avs_read_seen_t  *x = a, *y = b;
    int                     d;

    d = strcmp(x->fingerprint, y->fingerprint);

    return d ? d : strcmp(x->period, y->period);
}


/*
 * The header of the answer's stream.  With no data and no schema asked
 * for, the table's only stream if it has one, else a file of the schema
 * "null": either way a valid container of zero blocks.
 */
static avs_rc_t
avs_read_header(avs_read_ctx_t *c, sqlite3 *db, avs_err_t *err)
{
    sqlite3_stmt     *stmt;
    const char       *fp;
    avs_rc_t          rc;
    avs_read_plan_t  *plan;
    static const uint8_t  zero_sync[AVS_SYNC_SIZE];

    plan = c->plan;

    if (plan->fingerprint[0] == '\0' && c->q->fingerprint != NULL) {
        memcpy(plan->fingerprint, c->q->fingerprint, 16);
        plan->fingerprint[16] = '\0';
    }

    fp = plan->fingerprint[0] ? plan->fingerprint : NULL;

    if (fp == NULL) {
        rc = avs_sql_cached(db, &stmt, "read: streams", err,
                             "SELECT schema_fingerprint FROM streams"
                             " WHERE table_name = ?1 LIMIT 2",
                             "t", c->q->table);
        if (rc != AVS_OK) {
            return rc;
        }

        rc = avs_sql_step(db, stmt, "read: streams", err);

        if (rc == AVS_OK) {
            rc = avs_sql_text(stmt, 0, plan->fingerprint, 17,
                              "read: streams", err);
        }

        if (rc == AVS_OK
            && avs_sql_step(db, stmt, "read: streams", err) == AVS_OK)
        {
            /* several schemas and no data: nothing says which one */
            plan->fingerprint[0] = '\0';
            rc = AVS_DONE;
        }

        sqlite3_reset(stmt);

        if (rc == AVS_DONE) {
            rc = avs_ocf_write_header(&plan->header, "\"null\"", 6,
                                      AVS_CODEC_NULL, zero_sync);
            goto done;
        }

        if (rc != AVS_OK) {
            return rc;
        }

        fp = plan->fingerprint;
    }

    rc = avs_store_stream_header(db, c->q->table, fp, 0, &plan->header,
                                 NULL, NULL, err);

    if (rc == AVS_DONE) {
        avs_err_set(err, AVS_ENOTFOUND, "table \"%s\" has no schema %s",
                    c->q->table, fp);
        plan->fingerprint[0] = '\0';
        return AVS_ENOTFOUND;
    }

    return rc;

done:

    if (rc != AVS_OK) {
        return avs_err_set(err, rc, "read: cannot build the header");
    }

    return AVS_OK;
}
