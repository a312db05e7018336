/*
 * The archive cycle: claim, build, put, commit, with the lease that keeps
 * it to one archiver and the status that shows how it went.
 *
 * Exactly once rests on three facts.  A job's rows are fixed when it is
 * claimed: the rows of one group (table, period, schema) with ids in
 * [first_id, last_id], which only the job's own commit deletes, and which
 * no later upload can join since ids only grow.  The file of a job is a
 * function of its rows: the stream's header, then the rows ordered by
 * dataset and id, so every run of the job writes the same bytes under the
 * same key, and putting them twice is harmless.  The commit inserts the
 * catalog rows, deletes the hot rows and closes the job in one
 * transaction, and does nothing for a job that is already done.
 *
 * Memory does not depend on the batch: rows are read one at a time, in
 * an order sorted from an index alone, straight into a write buffer
 * (file:) or libcurl's upload buffer (s3://, no temporary file), the
 * per-dataset ranges of the block index go to a side file, and at most
 * two jobs are in flight: one built and put by a producer thread while
 * the one before it is committed.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* sync_file_range, pthread_clockjoin_np */
#endif

#include <aio.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "avs_archive.h"
#include "avs_json.h"
#include "avs_names.h"
#include "avs_ocf.h"
#include "avs_sql.h"


#define AVS_ARCHIVE_IO_SIZE     (1024 * 1024)

/* Alignment of direct writes: the largest logical block size in use. */
#define AVS_ARCHIVE_IO_ALIGN    4096
#define AVS_ARCHIVE_WRITEBACK   (8 * 1024 * 1024)
#define AVS_ARCHIVE_REKEYS      64
#define AVS_ARCHIVE_LEASE_TTL   60000

/*
 * Failed jobs in a row that end a cycle.  One failed job may be that
 * job's alone (a key the store refuses, rows it cannot build), so the
 * cycle goes on with the other groups; a second in a row says the store
 * is failing, and trying every group against it would only wait longer.
 */
#define AVS_ARCHIVE_FAIL_STREAK 2

/* Failing jobs the status lists. */
#define AVS_ARCHIVE_STATUS_FAILING  10
#define AVS_ARCHIVE_COMMIT_CACHE_KIB  16384

/* A job's hot rows, bound as (table, period, fingerprint, first, last):
 * what its file is built from and what its commit deletes */
#define AVS_ARCHIVE_JOB_ROWS                                                 \
    " FROM buffer_logs WHERE table_name = ?1 AND period_tag = ?2"            \
    " AND schema_fingerprint = ?3 AND id BETWEEN ?4 AND ?5"


/* A job as read from archive_jobs. */
typedef struct {
    int64_t      id;
    char         key[AVS_ARCHIVE_KEY_MAX];
    char         table[AVS_NAME_MAX + 1];
    char         period[AVS_NAME_MAX + 1];
    char         fp[17];
    int64_t      stream_id;
    int64_t      first_id;
    int64_t      last_id;
    int64_t      rows;
    int64_t      header_bytes;
    int64_t      data_bytes;
    int64_t      put_attempts;
    char         writer[AVS_WRITER_SIZE];   /* what its puts name */
} avs_job_t;


/*
 * One dataset's run of rows in the file being built: its range of the
 * block index.
 */
typedef struct {
    int64_t      start;
    int64_t      length;
    int64_t      records;
    int64_t      t0;
    int64_t      t1;
    size_t       name_len;
    char         name[AVS_NAME_MAX + 1];
} avs_range_t;


/*
 * The temporary file of a job while it is built and put, with its SHA-256
 * computed as it is written, and the block index ranges written to a side
 * file as they are found (the commit reads them back: their number grows
 * with the datasets, memory does not).
 */
typedef struct {
    avs_job_t    *job;
    char          path[PATH_MAX];
    int           fd;
    int           in_store;         /* built where the store renames it */
    int           moved;            /* the store took it */
    int           create_only;      /* the job's first put: no replacing */
    int           key_taken;        /* so it stored nothing */
    int           owned;            /* its lock held: ours to remove */
    int           direct;           /* written past the page cache */
    uint8_t      *io_mem;           /* both buffers */
    uint8_t      *io;               /* being filled */
    size_t        io_len;
    uint8_t      *io_spare;         /* being written, or free */
    struct aiocb  aio;              /* the write of io_spare */
    int           aio_busy;
    int64_t       size;             /* bytes produced */
    int64_t       flushed;          /* bytes handed to the kernel */
    int64_t       written_back;     /* bytes whose writeback was started */
    int64_t       rows;
    int64_t       records;
    avs_codec_t   codec;
    avs_sha256_t *md;
    char          sha256[AVS_SHA256_HEX_SIZE];
    FILE         *ranges;
    int64_t       nranges;
    avs_range_t   run;              /* the dataset being written */

    /* where the bytes come from, in one read snapshot: the header, then
     * the rows by dataset and id (an order sorted from the index alone),
     * each row looked up by its id */
    sqlite3       *db;
    sqlite3_stmt  *stmt;            /* the ids, by dataset */
    sqlite3_stmt  *row;             /* one row, by id */
    avs_buf_t      header;
    size_t         header_off;
    const uint8_t *blob;            /* the row's data, while row is on it */
    int            blob_len;
    int            blob_off;
    int64_t        data;            /* row bytes produced */
    int            ended;
    avs_err_t      serr;            /* why a stream stopped */
    avs_objstore_t *os;
    char           etag[AVS_ETAG_SIZE];
} avs_build_t;


/* A group of hot rows: what a file holds. */
typedef struct {
    char         table[AVS_NAME_MAX + 1];
    char         period[AVS_NAME_MAX + 1];
    char         fp[17];
} avs_group_t;


/* One cycle's context. */
typedef struct {
    avs_store_t               *st;
    avs_objstore_t            *os;
    const avs_archive_conf_t  *conf;
    avs_archive_summary_t     *out;
    uint64_t                   segment_size;
    int64_t                    cursor;      /* last job id looked at */
    int                        crashed;     /* the hook ended the cycle */

    /* the groups whose job failed in this cycle: their later jobs wait
     * for the next one, the other groups go on */
    avs_group_t               *failed;
    size_t                     nfailed;
    size_t                     failed_cap;
    unsigned                   fail_streak; /* failed jobs in a row */
    avs_err_t                  first_fail;
} avs_cycle_t;


/*
 * A job on its way through the cycle: built and put by a producer thread
 * while the job before it is committed.
 */
typedef struct {
    avs_cycle_t  *cy;
    avs_job_t     job;
    avs_build_t   b;
    char          etag[AVS_ETAG_SIZE];
    char          sha256[AVS_SHA256_HEX_SIZE];
    int           recovered;
    avs_rc_t      rc;
    avs_err_t     err;
    uint64_t      build_ms;
    uint64_t      put_ms;
    pthread_t     thread;
    int           threaded;
} avs_flight_t;


/* The claim transaction's state. */
typedef struct {
    avs_cycle_t  *cy;
    int64_t       seq;
    int64_t       now;
    avs_buf_t     header;
} avs_claim_t;


/* What the commit transaction needs beside the job. */
typedef struct {
    avs_job_t    *job;
    avs_build_t  *b;
    const char   *node;
    const char   *etag;
    const char   *sha256;
    int64_t       datasets;         /* out */
} avs_commit_t;


/* Arguments of the small write transactions on one job. */
typedef struct {
    avs_job_t    *job;
    const char   *node;
    const char   *error;
    int           key_taken;        /* its first put stored nothing */
} avs_job_arg_t;


typedef struct {
    const char   *owner;
    uint64_t      ttl_ms;
    int           release;
} avs_lease_arg_t;


typedef struct {
    avs_cycle_t  *cy;
    avs_job_t    *job;
} avs_next_arg_t;


typedef struct {
    avs_archive_summary_t  *s;
    const char             *node;
    const char             *error;
} avs_record_arg_t;


static int64_t avs_archive_now_ms(void);
static uint64_t avs_archive_ttl(const avs_archive_conf_t *conf);
static int64_t avs_archive_mono_ms(void);
static avs_rc_t avs_archive_lease_locked(sqlite3 *db, void *arg,
    avs_err_t *err);
static int avs_archive_group_failed(avs_cycle_t *cy, const avs_job_t *job);
static avs_rc_t avs_archive_status_failing(sqlite3 *db, avs_buf_t *out,
    avs_rc_t *wrc, avs_err_t *err);
static int avs_archive_step_over(avs_cycle_t *cy, avs_flight_t *f,
    avs_rc_t rc);
static avs_rc_t avs_archive_run_pending(avs_cycle_t *cy, int recovered,
    avs_err_t *err);
static avs_rc_t avs_archive_next_job(sqlite3 *db, void *arg,
    avs_err_t *err);
static avs_rc_t avs_archive_claim(sqlite3 *db, void *arg, avs_err_t *err);
static avs_rc_t avs_archive_claim_group(avs_claim_t *c, sqlite3 *db,
    const char *table, const char *period, const char *fp, avs_err_t *err);
static avs_rc_t avs_archive_row_size(sqlite3 *db, int64_t id,
    int64_t *len, avs_err_t *err);
static avs_rc_t avs_archive_make_key(char *key, const char *table,
    const char *period, const char *fp, const char *node, int64_t seq,
    avs_err_t *err);
static avs_rc_t avs_archive_start(avs_cycle_t *cy, avs_flight_t *f,
    avs_err_t *err);
static void *avs_archive_produce(void *data);
static void avs_archive_wait(avs_cycle_t *cy, avs_flight_t *f);
static avs_rc_t avs_archive_landed(avs_cycle_t *cy, avs_flight_t *f,
    avs_err_t *err);
static avs_rc_t avs_archive_commit_job(avs_cycle_t *cy, avs_flight_t *f,
    avs_err_t *err);
static void avs_archive_failed(avs_cycle_t *cy, avs_flight_t *f,
    avs_err_t *err);
static avs_rc_t avs_archive_build_put(avs_cycle_t *cy, avs_flight_t *f,
    avs_err_t *err);
static avs_rc_t avs_archive_build(avs_cycle_t *cy, avs_build_t *b,
    avs_err_t *err);
static avs_rc_t avs_archive_begin(avs_cycle_t *cy, avs_build_t *b, int hash,
    avs_err_t *err);
static avs_rc_t avs_archive_finish(avs_build_t *b, avs_err_t *err);
static avs_rc_t avs_archive_build_read(sqlite3 *db, void *arg,
    avs_err_t *err);
static avs_rc_t avs_archive_source_open(sqlite3 *db, avs_build_t *b,
    avs_err_t *err);
static avs_rc_t avs_archive_source_read(avs_build_t *b, uint8_t *buf,
    size_t len, size_t *got, avs_err_t *err);
static avs_rc_t avs_archive_source_row(avs_build_t *b, avs_err_t *err);
static avs_rc_t avs_archive_source_end(avs_build_t *b, avs_err_t *err);
static void avs_archive_source_close(avs_build_t *b);
static avs_rc_t avs_archive_stream(avs_cycle_t *cy, avs_build_t *b,
    char *etag, char *sha256, avs_err_t *err);
static avs_rc_t avs_archive_stream_read(sqlite3 *db, void *arg,
    avs_err_t *err);
static ssize_t avs_archive_stream_cb(void *data, uint8_t *buf, size_t len);
static avs_rc_t avs_archive_put_error(avs_build_t *b, avs_rc_t rc,
    const avs_err_t *e, avs_err_t *err);
static avs_rc_t avs_archive_own_key(avs_cycle_t *cy, avs_build_t *b,
    avs_err_t *err);
static avs_rc_t avs_archive_range(avs_build_t *b, const char *name,
    size_t name_len, int64_t len, int64_t records, int64_t ts,
    avs_err_t *err);
static avs_rc_t avs_archive_index(sqlite3 *db, avs_commit_t *c,
    int64_t file_id, int64_t now, avs_err_t *err);
static void avs_archive_direct(avs_build_t *b, int on);
static avs_rc_t avs_archive_flush(avs_build_t *b, avs_err_t *err);
static avs_rc_t avs_archive_io_wait(avs_build_t *b, avs_err_t *err);
static ssize_t avs_archive_io_settle(avs_build_t *b, int *e);
static avs_rc_t avs_archive_pwrite(avs_build_t *b, const uint8_t *buf,
    size_t len, int64_t offset, avs_err_t *err);
static void avs_archive_discard(avs_build_t *b, int unlink_file);
static avs_rc_t avs_archive_put(avs_cycle_t *cy, avs_build_t *b,
    char *etag, char *sha256, avs_err_t *err);
static avs_rc_t avs_archive_rekey(sqlite3 *db, void *arg, avs_err_t *err);
static avs_rc_t avs_archive_mark_put(sqlite3 *db, void *arg,
    avs_err_t *err);
static avs_rc_t avs_archive_commit(sqlite3 *db, void *arg, avs_err_t *err);
static avs_rc_t avs_archive_commit_rows(sqlite3 *db, void *arg,
    avs_err_t *err);
static avs_rc_t avs_archive_commit_segment(sqlite3 *db, avs_commit_t *c,
    int64_t file_id, int64_t records, int64_t now, avs_err_t *err);
static avs_rc_t avs_archive_fail_job(sqlite3 *db, void *arg,
    avs_err_t *err);
static avs_rc_t avs_archive_record(sqlite3 *db, void *arg, avs_err_t *err);
static int avs_archive_stop(avs_cycle_t *cy, avs_archive_step_t step,
    const char *key, avs_err_t *err);
static avs_rc_t avs_archive_status_read(sqlite3 *db, void *arg,
    avs_err_t *err);


/* Wall-clock milliseconds, the unit of every *_at column. */
static int64_t
avs_archive_now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);

    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


/* The lease time of a cycle with an owner. */
static uint64_t
avs_archive_ttl(const avs_archive_conf_t *conf)
{
    return conf->lease_ttl_ms ? conf->lease_ttl_ms : AVS_ARCHIVE_LEASE_TTL;
}


/* Monotonic milliseconds, for durations. */
static int64_t
avs_archive_mono_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


avs_rc_t
avs_archive_lease(avs_store_t *st, const char *owner, uint64_t ttl_ms,
    avs_err_t *err)
{
    avs_lease_arg_t  a;

    if (owner == NULL || owner[0] == '\0' || ttl_ms == 0
        || ttl_ms > INT64_MAX / 2)
    {
        return avs_err_set(err, AVS_EINTERNAL,
                           "archive lease: no owner or no time");
    }

    a.owner = owner;
    a.ttl_ms = ttl_ms;
    a.release = 0;

    return avs_store_write(st, avs_archive_lease_locked, &a, err);
}


avs_rc_t
avs_archive_release(avs_store_t *st, const char *owner, avs_err_t *err)
{
    avs_lease_arg_t  a;

    if (owner == NULL) {
        return AVS_OK;
    }

    a.owner = owner;
    a.ttl_ms = 0;
    a.release = 1;

    return avs_store_write(st, avs_archive_lease_locked, &a, err);
}


/*
 * Takes, renews or gives up the lease in the write transaction.  The lease
 * is another owner's only while it has not expired: an archiver that died
 * holding it delays the next one by at most its ttl.
 */
static avs_rc_t
avs_archive_lease_locked(sqlite3 *db, void *arg, avs_err_t *err)
{
    avs_lease_arg_t  *a = arg;
    sqlite3_stmt     *stmt;
    const char       *holder;
    avs_rc_t          rc;
    int64_t           now, expires;
    int               ours;

    rc = avs_sql_query(db, &stmt, "lease", err,
                       "SELECT owner, expires_at FROM archive_lease"
                       " WHERE id = 1", "");
    if (rc != AVS_OK) {
        return (rc == AVS_DONE)
               ? avs_err_set(err, AVS_ESTORE, "archive lease: no row")
               : rc;
    }

    now = avs_archive_now_ms();
    holder = (const char *) sqlite3_column_text(stmt, 0);
    expires = sqlite3_column_int64(stmt, 1);
    ours = (holder != NULL && strcmp(holder, a->owner) == 0);

    if (!ours && holder != NULL && expires > now && !a->release) {
        rc = avs_err_set(err, AVS_EBUSY,
                         "archive lease held by \"%.64s\" for %" PRId64
                         " ms more", holder, expires - now);
        sqlite3_finalize(stmt);
        return rc;
    }

    sqlite3_finalize(stmt);

    if (a->release) {
        if (!ours) {
            return AVS_OK;
        }

        return avs_sql_exec(db, NULL, "lease release", err,
                            "UPDATE archive_lease SET owner = NULL,"
                            " expires_at = 0 WHERE id = 1", "");
    }

    return avs_sql_exec(db, NULL, "lease", err,
                        "UPDATE archive_lease SET owner = ?1,"
                        " acquired_at = CASE WHEN owner IS ?1"
                        " THEN acquired_at ELSE ?2 END,"
                        " expires_at = ?3 WHERE id = 1",
                        "tii", a->owner, now,
                        now + (int64_t) a->ttl_ms);
}


avs_rc_t
avs_archive_cycle(avs_store_t *st, avs_objstore_t *os,
    const avs_archive_conf_t *conf, avs_archive_summary_t *out,
    avs_err_t *err)
{
    avs_record_arg_t  rec;
    avs_cycle_t       cy;
    avs_claim_t       claim;
    avs_err_t         e, local;
    avs_rc_t          rc;
    int64_t           start, t;

    /* the steps below read the message back: keep one even if not asked */

    if (err == NULL) {
        err = &local;
    }

    memset(out, 0, sizeof(avs_archive_summary_t));
    out->started_ms = avs_archive_now_ms();
    start = avs_archive_mono_ms();

    if (conf == NULL || conf->node == NULL || conf->tmp_dir == NULL
        || conf->tmp_dir[0] == '\0')
    {
        out->rc = avs_err_set(err, AVS_EINTERNAL,
                              "archive: no node name or no temp directory");
        return out->rc;
    }

    rc = avs_name_check("archive node name", conf->node, strlen(conf->node),
                        err);
    if (rc != AVS_OK) {
        out->rc = rc;
        return rc;
    }

    /* not the lease holder: not a failure, and nothing to record */

    if (conf->owner != NULL) {
        rc = avs_archive_lease(st, conf->owner, avs_archive_ttl(conf), err);
        if (rc != AVS_OK) {
            out->rc = rc;
            return rc;
        }
    }

    memset(&cy, 0, sizeof(avs_cycle_t));
    cy.st = st;
    cy.os = os;
    cy.conf = conf;
    cy.out = out;
    cy.segment_size = conf->segment_size ? conf->segment_size
                                         : AVS_ARCHIVE_SEGMENT_SIZE;

    /* a) the jobs a crash or a failure left pending go first */

    rc = avs_archive_run_pending(&cy, 1, err);

    /* b) then the rows nobody has claimed yet */

    if (rc == AVS_OK) {
        memset(&claim, 0, sizeof(avs_claim_t));
        claim.cy = &cy;
        claim.now = avs_archive_now_ms();
        t = avs_archive_mono_ms();

        rc = avs_store_write(st, avs_archive_claim, &claim, err);
        avs_buf_free(&claim.header);
        out->claim_ms += (uint64_t) (avs_archive_mono_ms() - t);

        if (rc == AVS_OK && avs_archive_stop(&cy, AVS_ARCHIVE_CLAIMED, NULL,
                                             err))
        {
            rc = err->rc;
        }
    }

    /* c) to f) for each of them */

    if (rc == AVS_OK) {
        rc = avs_archive_run_pending(&cy, 0, err);
    }

    /* the other groups went on: the cycle still failed, with the first
     * job that did */

    if (rc == AVS_OK && cy.nfailed > 0) {
        *err = cy.first_fail;
        rc = err->rc;
    }

    free(cy.failed);

    out->rc = rc;

    if (cy.crashed) {
        return rc;
    }

    out->duration_ms = (uint64_t) (avs_archive_mono_ms() - start);

    rec.s = out;
    rec.node = conf->node;
    rec.error = (rc == AVS_OK) ? NULL : err->msg;

    if (avs_store_write(st, avs_archive_record, &rec, &e) != AVS_OK
        && rc == AVS_OK)
    {
        rc = e.rc;
        out->rc = rc;
        *err = e;
    }

    /* the cycle deleted many rows: give the WAL back (busy is not an
     * error, the next checkpoint goes further); after the record, so that
     * the WAL is empty when the cycle ends, and counted in the summary
     * returned (the recorded one has 0) */

    t = avs_archive_mono_ms();
    (void) avs_store_checkpoint(st, &e);
    out->checkpoint_ms = (uint64_t) (avs_archive_mono_ms() - t);
    out->duration_ms = (uint64_t) (avs_archive_mono_ms() - start);

    if (rc == AVS_OK) {
        avs_err_set(err, AVS_OK, "archived %" PRIu64 " files",
                    out->files);
    }

    return rc;
}


/*
 * Runs the pending jobs after the cursor, oldest first, one at a time
 * (the next one is looked up when the last one is put, so nothing grows
 * with their number).  Two jobs overlap: while a producer thread builds
 * and puts one, this thread commits the one before it; commits stay one
 * at a time and in order.  A job whose build or put fails leaves its
 * group for the next cycle and the others go on (avs_archive_step_over);
 * any other failure stops the cycle, once the producer has ended.
 */
static avs_rc_t
avs_archive_run_pending(avs_cycle_t *cy, int recovered, avs_err_t *err)
{
    avs_next_arg_t   a;
    avs_flight_t    *cur, *prev;
    avs_rc_t         rc, crc;

    prev = NULL;
    rc = AVS_OK;

    for ( ;; ) {
        cur = calloc(1, sizeof(avs_flight_t));
        if (cur == NULL) {
            rc = avs_err_set(err, AVS_ENOMEM, "archive: out of memory");
            break;
        }

        a.cy = cy;
        a.job = &cur->job;

        rc = avs_store_read(cy->st, avs_archive_next_job, &a, err);
        if (rc != AVS_OK) {
            free(cur);
            rc = (rc == AVS_DONE) ? AVS_OK : rc;
            break;
        }

        cy->cursor = cur->job.id;
        cur->recovered = recovered;

        /* a group's files follow its rows in order: after a failed job,
         * its later ones wait too */

        if (avs_archive_group_failed(cy, &cur->job)) {
            free(cur);
            continue;
        }

        rc = avs_archive_start(cy, cur, err);

        crc = AVS_OK;

        if (prev != NULL) {
            crc = avs_archive_commit_job(cy, prev, err);
            avs_archive_discard(&prev->b, 0);
            free(prev);
            prev = NULL;
        }

        if (rc == AVS_OK) {
            rc = avs_archive_landed(cy, cur, (crc == AVS_OK) ? err : NULL);
        }

        if (crc == AVS_OK && avs_archive_step_over(cy, cur, rc)) {
            avs_archive_discard(&cur->b, 0);
            free(cur);
            rc = AVS_OK;
            continue;
        }

        if (crc != AVS_OK || (rc != AVS_OK && rc != AVS_DONE)) {
            avs_archive_discard(&cur->b, 0);
            free(cur);
            rc = (crc != AVS_OK) ? crc : rc;
            break;
        }

        if (rc == AVS_DONE) {
            free(cur);
            continue;
        }

        cy->fail_streak = 0;
        prev = cur;
    }

    if (prev != NULL) {
        crc = (rc == AVS_OK) ? avs_archive_commit_job(cy, prev, err)
                             : AVS_OK;
        rc = (rc == AVS_OK) ? crc : rc;
        avs_archive_discard(&prev->b, 0);
        free(prev);
    }

    return rc;
}


/* Whether a job of the job's group failed earlier in this cycle. */
static int
avs_archive_group_failed(avs_cycle_t *cy, const avs_job_t *job)
{
    size_t              i;
    const avs_group_t  *g;

    for (i = 0; i < cy->nfailed; i++) {
        g = &cy->failed[i];

        if (strcmp(g->table, job->table) == 0
            && strcmp(g->period, job->period) == 0
            && strcmp(g->fp, job->fp) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/*
 * Whether the cycle steps over a job that ended with rc: yes when its
 * producer failed (the failure is recorded on the job, which stays
 * pending) and not AVS_ARCHIVE_FAIL_STREAK jobs in a row did.  The job's
 * group is then left to the next cycle.  The lease, a stop by the test
 * hook, memory and failures of the commit end the cycle.
 */
static int
avs_archive_step_over(avs_cycle_t *cy, avs_flight_t *f, avs_rc_t rc)
{
    size_t        cap;
    avs_group_t  *g;

    if (rc == AVS_OK || rc == AVS_DONE || rc == AVS_EBUSY
        || rc == AVS_ENOMEM || f->rc != rc || cy->crashed)
    {
        return 0;
    }

    cy->out->failed++;

    if (++cy->fail_streak >= AVS_ARCHIVE_FAIL_STREAK) {
        return 0;
    }

    if (cy->nfailed == cy->failed_cap) {
        cap = cy->failed_cap ? cy->failed_cap * 2 : 4;
        g = realloc(cy->failed, cap * sizeof(avs_group_t));
        if (g == NULL) {
            return 0;
        }

        cy->failed = g;
        cy->failed_cap = cap;
    }

    if (cy->nfailed == 0) {
        cy->first_fail = f->err;
    }

    g = &cy->failed[cy->nfailed++];
    memcpy(g->table, f->job.table, sizeof(g->table));
    memcpy(g->period, f->job.period, sizeof(g->period));
    memcpy(g->fp, f->job.fp, sizeof(g->fp));

    return 1;
}


/* Reads the first pending job after the cursor: AVS_DONE when none. */
static avs_rc_t
avs_archive_next_job(sqlite3 *db, void *arg, avs_err_t *err)
{
    avs_next_arg_t  *a = arg;
    sqlite3_stmt    *stmt;
    avs_job_t       *job;
    avs_rc_t         rc;

    job = a->job;

    rc = avs_sql_query(db, &stmt, "next job", err,
                       "SELECT id, key, table_name, period_tag,"
                       " schema_fingerprint, stream_id, first_id, last_id,"
                       " row_count, header_bytes, data_bytes, put_attempts,"
                       " created_at"
                       " FROM archive_jobs WHERE state = 'pending'"
                       " AND id > ?1 ORDER BY id LIMIT 1",
                       "i", a->cy->cursor);
    if (rc != AVS_OK) {
        return rc;
    }

    memset(job, 0, sizeof(avs_job_t));
    job->id = sqlite3_column_int64(stmt, 0);

    rc = avs_sql_text(stmt, 1, job->key, sizeof(job->key), "job", err);
    if (rc == AVS_OK) {
        rc = avs_sql_text(stmt, 2, job->table, sizeof(job->table), "job",
                          err);
    }
    if (rc == AVS_OK) {
        rc = avs_sql_text(stmt, 3, job->period, sizeof(job->period), "job",
                          err);
    }
    if (rc == AVS_OK) {
        rc = avs_sql_text(stmt, 4, job->fp, sizeof(job->fp), "job", err);
    }

    job->stream_id = sqlite3_column_int64(stmt, 5);
    job->first_id = sqlite3_column_int64(stmt, 6);
    job->last_id = sqlite3_column_int64(stmt, 7);
    job->rows = sqlite3_column_int64(stmt, 8);
    job->header_bytes = sqlite3_column_int64(stmt, 9);
    job->data_bytes = sqlite3_column_int64(stmt, 10);
    job->put_attempts = sqlite3_column_int64(stmt, 11);

    /* the job's id alone would repeat in a store started anew */
    (void) snprintf(job->writer, sizeof(job->writer),
                    "job-%" PRId64 "-%" PRId64, job->id,
                    (int64_t) sqlite3_column_int64(stmt, 12));

    sqlite3_finalize(stmt);

    return rc;
}


/*
 * The claim, one write transaction: every group of unclaimed hot rows
 * becomes one or more pending jobs, each with the next key of the node's
 * sequence.  The groups come from the archive index of buffer_logs, which
 * holds their columns, so listing them reads no row.  Groups with the most
 * rows are claimed, hence run, first: a job's commit costs about its row
 * count and overlaps the build of the job after it, but the last commit
 * overlaps nothing, so the cycle ends with the smallest.
 */
static avs_rc_t
avs_archive_claim(sqlite3 *db, void *arg, avs_err_t *err)
{
    avs_claim_t   *c = arg;
    sqlite3_stmt  *groups;
    avs_rc_t       rc;
    char           table[AVS_NAME_MAX + 1], period[AVS_NAME_MAX + 1];
    char           fp[17];
    int            src;

    rc = avs_sql_query(db, &groups, "sequence", err,
                       "SELECT next_sequence FROM archive_state"
                       " WHERE id = 1", "");
    if (rc != AVS_OK) {
        return (rc == AVS_DONE)
               ? avs_err_set(err, AVS_ESTORE, "archive: no state row")
               : rc;
    }

    c->seq = sqlite3_column_int64(groups, 0);
    sqlite3_finalize(groups);

    rc = avs_sql_prepare(db, &groups, "groups", err,
                         "SELECT table_name, period_tag,"
                         " schema_fingerprint FROM buffer_logs"
                         " GROUP BY 1, 2, 3 ORDER BY count(*) DESC,"
                         " 1, 2, 3", "");
    if (rc != AVS_OK) {
        return rc;
    }

    while ((src = sqlite3_step(groups)) == SQLITE_ROW) {

        if (avs_sql_text(groups, 0, table, sizeof(table), "group", err)
            != AVS_OK
            || avs_sql_text(groups, 1, period, sizeof(period), "group", err)
               != AVS_OK
            || avs_sql_text(groups, 2, fp, sizeof(fp), "group", err)
               != AVS_OK)
        {
            /* such names cannot come from the upload path: leave them */
            c->cy->out->skipped++;
            continue;
        }

        rc = avs_archive_claim_group(c, db, table, period, fp, err);
        if (rc != AVS_OK) {
            sqlite3_finalize(groups);
            return rc;
        }
    }

    if (src != SQLITE_DONE) {
        rc = avs_sql_fail(db, src, "groups", err);
        sqlite3_finalize(groups);
        return rc;
    }

    sqlite3_finalize(groups);

    return avs_sql_exec(db, NULL, "sequence", err,
                        "UPDATE archive_state SET next_sequence = ?1,"
                        " node = ?2 WHERE id = 1",
                        "it", c->seq, c->cy->conf->node);
}


/*
 * Cuts the unclaimed rows of one group into jobs, in id order: a job takes
 * rows while the header and their data fit in segment_size (and max_rows
 * is not reached).  A job always takes at least one row, so a single upload
 * larger than segment_size gets a file of its own, the one file that may
 * pass the size.  The unclaimed rows are those above the newest pending
 * claim of the group: below it every row is pending already (ids grow,
 * claims take rows in order) or archived and gone.
 */
static avs_rc_t
avs_archive_claim_group(avs_claim_t *c, sqlite3 *db, const char *table,
    const char *period, const char *fp, avs_err_t *err)
{
    const avs_archive_conf_t  *conf;
    sqlite3_stmt              *stmt;
    avs_codec_t                codec;
    avs_rc_t                   rc;
    int64_t                    after, first, last, n, bytes, len, budget;
    int64_t                    stream_id;
    char                       key[AVS_ARCHIVE_KEY_MAX];
    int                        src;

    conf = c->cy->conf;

    if (avs_name_check("table", table, strlen(table), NULL) != AVS_OK
        || avs_name_check("period", period, strlen(period), NULL) != AVS_OK
        || strspn(fp, "0123456789abcdef") != 16)
    {
        c->cy->out->skipped++;
        return AVS_OK;
    }

    rc = avs_store_stream_header(db, table, fp, 0, &c->header, &stream_id,
                                 &codec, err);
    if (rc != AVS_OK) {
        return (rc == AVS_DONE)
               ? avs_err_set(err, AVS_ESTORE, "archive: a stream is missing")
               : rc;
    }

    budget = (c->header.len < c->cy->segment_size)
             ? (int64_t) (c->cy->segment_size - c->header.len) : 0;

    rc = avs_sql_query(db, &stmt, "claimed", err,
                       "SELECT coalesce(max(last_id), 0) FROM archive_jobs"
                       " WHERE state = 'pending' AND table_name = ?1"
                       " AND period_tag = ?2 AND schema_fingerprint = ?3",
                       "ttt", table, period, fp);
    if (rc != AVS_OK) {
        return (rc == AVS_DONE) ? AVS_OK : rc;
    }

    after = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);

    for ( ;; ) {
        rc = avs_sql_prepare(db, &stmt, "claim rows", err,
                             "SELECT id, data_size FROM buffer_logs"
                             " WHERE table_name = ?1 AND period_tag = ?2"
                             " AND schema_fingerprint = ?3 AND id > ?4"
                             " ORDER BY id",
                             "ttti", table, period, fp, after);
        if (rc != AVS_OK) {
            return rc;
        }

        n = 0;
        bytes = 0;
        first = 0;
        last = 0;

        while ((src = sqlite3_step(stmt)) == SQLITE_ROW) {
            len = sqlite3_column_int64(stmt, 1);

            if (sqlite3_column_type(stmt, 1) == SQLITE_NULL) {
                rc = avs_archive_row_size(db, sqlite3_column_int64(stmt, 0),
                                          &len, err);
                if (rc != AVS_OK) {
                    sqlite3_finalize(stmt);
                    return rc;
                }
            }

            if (n > 0
                && (bytes + len > budget
                    || (conf->max_rows != 0
                        && (uint64_t) n >= conf->max_rows)))
            {
                src = SQLITE_DONE;
                break;
            }

            if (n == 0) {
                first = sqlite3_column_int64(stmt, 0);
            }

            last = sqlite3_column_int64(stmt, 0);
            bytes += len;
            n++;
        }

        if (src != SQLITE_DONE) {
            rc = avs_sql_fail(db, src, "claim rows", err);
            sqlite3_finalize(stmt);
            return rc;
        }

        sqlite3_finalize(stmt);

        if (n == 0) {
            return AVS_OK;
        }

        rc = avs_archive_make_key(key, table, period, fp, conf->node, c->seq,
                                  err);
        if (rc != AVS_OK) {
            return rc;
        }

        rc = avs_sql_exec(db, NULL, "claim", err,
                          "INSERT INTO archive_jobs (key, table_name,"
                          " period_tag, schema_fingerprint, stream_id,"
                          " first_id, last_id, row_count, header_bytes,"
                          " data_bytes, created_at)"
                          " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
                          " ?10, ?11)",
                          "ttttiiiiiii", key, table, period, fp, stream_id,
                          first, last, n, (int64_t) c->header.len, bytes,
                          c->now);
        if (rc != AVS_OK) {
            return rc;
        }

        c->seq++;
        c->cy->out->claimed++;
        after = last;
    }
}


/*
 * The size of a row stored before migration 004 gave rows their size: its
 * data measured, as every row's was before.
 */
static avs_rc_t
avs_archive_row_size(sqlite3 *db, int64_t id, int64_t *len, avs_err_t *err)
{
    sqlite3_stmt  *stmt;
    avs_rc_t       rc;

    rc = avs_sql_cached(db, &stmt, "row size", err,
                        "SELECT length(data) FROM buffer_logs WHERE id = ?1",
                        "i", id);
    if (rc != AVS_OK) {
        return rc;
    }

    rc = avs_sql_step(db, stmt, "row size", err);

    if (rc == AVS_OK) {
        *len = sqlite3_column_int64(stmt, 0);

    } else if (rc == AVS_DONE) {
        rc = avs_err_set(err, AVS_EINTERNAL, "archive: hot row %" PRId64
                         " is gone within the claim", id);
    }

    sqlite3_reset(stmt);

    return rc;
}


/*
 * The object key of a job: {table}/{period}/{fp}/{node}-{seq}.avro, only
 * from checked names (the store adds its own prefix).  The sequence is
 * zero-padded so that a listing sorts in claim order.
 */
static avs_rc_t
avs_archive_make_key(char *key, const char *table, const char *period,
    const char *fp, const char *node, int64_t seq, avs_err_t *err)
{
    int  n;

    n = snprintf(key, AVS_ARCHIVE_KEY_MAX, "%s/%s/%s/%s-%08" PRId64 ".avro",
                 table, period, fp, node, seq);

    if (n < 0 || n >= AVS_ARCHIVE_KEY_MAX) {
        return avs_err_set(err, AVS_EINTERNAL, "archive: key too long");
    }

    return AVS_OK;
}


/*
 * Starts a job: renews the lease, makes an S3 job's key its own (these
 * writes are done here, not by the producer, which would wait for the
 * commit running meanwhile), then builds and puts it in a producer
 * thread, or here when no thread can be made.
 */
static avs_rc_t
avs_archive_start(avs_cycle_t *cy, avs_flight_t *f, avs_err_t *err)
{
    const avs_archive_conf_t  *conf;
    avs_rc_t                   rc;

    conf = cy->conf;

    f->cy = cy;
    f->b.job = &f->job;
    f->b.fd = -1;
    f->b.os = cy->os;

    if (conf->owner != NULL) {
        rc = avs_archive_lease(cy->st, conf->owner, avs_archive_ttl(conf),
                               &f->err);
        if (rc != AVS_OK) {
            *err = f->err;
            return rc;
        }
    }

    if (avs_objstore_streams(cy->os)) {
        f->rc = avs_archive_own_key(cy, &f->b, &f->err);

        if (f->rc != AVS_OK) {
            return AVS_OK;
        }

        f->job.put_attempts++;
    }

    if (pthread_create(&f->thread, NULL, avs_archive_produce, f) == 0) {
        f->threaded = 1;
        return AVS_OK;
    }

    (void) avs_archive_produce(f);

    return AVS_OK;
}


/* The producer: c) build and d) put, or both at once when it streams. */
static void *
avs_archive_produce(void *data)
{
    avs_flight_t  *f = data;
    avs_cycle_t   *cy;
    int64_t        t;

    cy = f->cy;

    if (f->rc != AVS_OK) {
        return NULL;
    }

    if (avs_objstore_streams(cy->os)) {
        t = avs_archive_mono_ms();
        f->rc = avs_archive_stream(cy, &f->b, f->etag, f->sha256, &f->err);
        f->put_ms = (uint64_t) (avs_archive_mono_ms() - t);

    } else {
        f->rc = avs_archive_build_put(cy, f, &f->err);
    }

    return NULL;
}


/*
 * Waits for a producer, renewing the lease now (the job's start may have
 * waited for the store) and a few times per lease time: a put can last
 * longer than the lease, and an archiver that took over an expired lease
 * would put the same key again while this one still sends it.
 */
static void
avs_archive_wait(avs_cycle_t *cy, avs_flight_t *f)
{
    struct timespec  deadline;
    uint64_t         step;
    avs_err_t        e;

    if (cy->conf->owner == NULL) {
        (void) pthread_join(f->thread, NULL);
        return;
    }

    step = avs_archive_ttl(cy->conf) / 3;

    for ( ;; ) {
        (void) avs_archive_lease(cy->st, cy->conf->owner,
                                 avs_archive_ttl(cy->conf), &e);

        avs_deadline(&deadline, step);

        if (pthread_clockjoin_np(f->thread, NULL, CLOCK_MONOTONIC, &deadline)
            != ETIMEDOUT)
        {
            return;
        }
    }
}


/*
 * Waits for the producer of a job and judges what it did: AVS_OK when the
 * job is put and is to be committed, AVS_DONE when there is nothing to
 * commit (another archiver did it), else the failure, recorded on the job
 * (it stays pending); AVS_EBUSY from the lease or from another archiver
 * building the same job is not a failure of the job.  With err NULL the
 * cycle already failed: the job is only waited for.
 */
static avs_rc_t
avs_archive_landed(avs_cycle_t *cy, avs_flight_t *f, avs_err_t *err)
{
    avs_rc_t  rc;

    if (f->threaded) {
        avs_archive_wait(cy, f);
        f->threaded = 0;
    }

    cy->out->build_ms += f->build_ms;
    cy->out->put_ms += f->put_ms;
    rc = f->rc;

    if (err == NULL) {

        /* the job is left to the next cycle or to another archiver: the
         * file made for it goes, unless a simulated crash leaves it */

        avs_archive_discard(&f->b, !cy->crashed);

        return AVS_EINTERNAL;
    }

    if (rc == AVS_DONE || rc == AVS_EBUSY) {

        /* done by another archiver meanwhile, or being built or changed
         * by one: a file made here goes (one it holds is not ours) */

        avs_archive_discard(&f->b, 1);

        if (rc == AVS_EBUSY) {
            *err = f->err;
        }

        return rc;
    }

    if (rc != AVS_OK) {
        *err = f->err;
        avs_archive_failed(cy, f, err);
        return rc;
    }

    if (cy->crashed) {
        *err = f->err;
        return err->rc;
    }

    if (avs_archive_stop(cy, AVS_ARCHIVE_PUT, f->job.key, err)) {
        return err->rc;
    }

    return AVS_OK;
}


/*
 * e) The commit of a job that is put, then f) its temporary file goes and
 * it is counted.  A failure is recorded on the job.
 */
static avs_rc_t
avs_archive_commit_job(avs_cycle_t *cy, avs_flight_t *f, avs_err_t *err)
{
    const avs_archive_conf_t  *conf;
    avs_archive_file_t         file;
    avs_commit_t               c;
    avs_build_t               *b;
    avs_rc_t                   rc;
    int64_t                    t;

    conf = cy->conf;
    b = &f->b;

    memset(&c, 0, sizeof(avs_commit_t));
    c.job = &f->job;
    c.b = b;
    c.node = conf->node;
    c.etag = f->etag;
    c.sha256 = f->sha256;

    t = avs_archive_mono_ms();
    rc = avs_store_write(cy->st, avs_archive_commit, &c, err);
    cy->out->commit_ms += (uint64_t) (avs_archive_mono_ms() - t);

    if (rc == AVS_DONE) {
        avs_archive_discard(b, 1);
        return AVS_OK;
    }

    if (rc != AVS_OK) {
        avs_archive_failed(cy, f, err);
        return rc;
    }

    if (avs_archive_stop(cy, AVS_ARCHIVE_COMMITTED, f->job.key, err)) {
        return err->rc;
    }

    avs_archive_discard(b, 1);

    cy->out->files++;
    cy->out->datasets += (uint64_t) c.datasets;
    cy->out->uploads += (uint64_t) b->rows;
    cy->out->records += (uint64_t) b->records;
    cy->out->bytes += (uint64_t) b->size;
    cy->out->recovered += (f->recovered != 0);

    if (conf->on_file != NULL) {
        file.key = f->job.key;
        file.size = (uint64_t) b->size;
        file.datasets = (uint64_t) c.datasets;
        file.uploads = (uint64_t) b->rows;
        file.records = (uint64_t) b->records;
        file.etag = f->etag;
        file.sha256 = f->sha256;
        file.recovered = f->recovered;

        conf->on_file(conf->data, &file);
    }

    return AVS_OK;
}


/* Records a failed run on the job, which stays pending. */
static void
avs_archive_failed(avs_cycle_t *cy, avs_flight_t *f, avs_err_t *err)
{
    avs_job_arg_t  fa;
    avs_err_t      e;

    avs_archive_discard(&f->b, 1);

    fa.job = &f->job;
    fa.node = cy->conf->node;
    fa.error = err->msg;
    fa.key_taken = f->b.key_taken;

    (void) avs_store_write(cy->st, avs_archive_fail_job, &fa, &e);
}


/*
 * Builds the job's file (file: where the store can rename it into place,
 * s3:// with signed payloads in the temp directory), then puts it.  The
 * file's name is the node's and the job's, not the key's: a job keeps its
 * file when it is given another key, and the same job always finds,
 * truncates and reuses the file a crash left.  A stop
 * after the build sets cy->crashed.
 */
static avs_rc_t
avs_archive_build_put(avs_cycle_t *cy, avs_flight_t *f, avs_err_t *err)
{
    avs_build_t  *b;
    avs_job_t    *job;
    avs_err_t     e;
    avs_rc_t      rc;
    int64_t       t;
    char          dir[PATH_MAX];
    int           n;

    b = &f->b;
    job = b->job;

    rc = avs_objstore_temp_dir(cy->os, job->key, dir, sizeof(dir), &e);
    if (rc != AVS_OK) {
        return avs_err_set(err, rc, "archive: %s: %s", job->key, e.msg);
    }

    /* s3:// with signed payloads: no directory of the store's own */

    b->in_store = (dir[0] != '\0');

    n = snprintf(b->path, sizeof(b->path), "%s/.avs-%s-%" PRId64 ".tmp",
                 b->in_store ? dir : cy->conf->tmp_dir, cy->conf->node,
                 job->id);

    if (n < 0 || (size_t) n >= sizeof(b->path)) {
        return avs_err_set(err, AVS_EINTERNAL,
                           "archive: temp path too long");
    }

    t = avs_archive_mono_ms();
    rc = avs_archive_build(cy, b, err);
    f->build_ms = (uint64_t) (avs_archive_mono_ms() - t);

    if (rc != AVS_OK) {
        return rc;
    }

    if (avs_archive_stop(cy, AVS_ARCHIVE_BUILT, job->key, err)) {
        return AVS_OK;
    }

    t = avs_archive_mono_ms();
    rc = avs_archive_put(cy, b, f->etag, f->sha256, err);
    f->put_ms = (uint64_t) (avs_archive_mono_ms() - t);

    return rc;
}


/*
 * Calls the test hook after a step; when it says stop, the cycle ends
 * there without another write, as a crash would end it.
 */
static int
avs_archive_stop(avs_cycle_t *cy, avs_archive_step_t step, const char *key,
    avs_err_t *err)
{
    avs_rc_t  rc;

    if (cy->conf->hook == NULL) {
        return 0;
    }

    rc = cy->conf->hook(cy->conf->data, step, key);
    if (rc == AVS_OK) {
        return 0;
    }

    avs_err_set(err, rc, "archive: stopped after step %d of %s", (int) step,
                key ? key : "the claim");
    cy->crashed = 1;

    return 1;
}


/*
 * What a build and a stream both need before the first byte: the side
 * file of the block index ranges (unnamed once open), and the SHA-256
 * when hash is set (a stream's PUT hashes what it sends itself).
 */
static avs_rc_t
avs_archive_begin(avs_cycle_t *cy, avs_build_t *b, int hash, avs_err_t *err)
{
    int   fd;
    char  ranges[PATH_MAX];

    if (hash) {
        b->md = avs_sha256_new();

        if (b->md == NULL) {
            return avs_err_set(err, AVS_ENOMEM, "archive: out of memory");
        }
    }

    if (snprintf(ranges, sizeof(ranges), "%s/avs-ranges-XXXXXX",
                 cy->conf->tmp_dir) >= (int) sizeof(ranges))
    {
        return avs_err_set(err, AVS_EINTERNAL, "archive: temp path too long");
    }

    fd = mkstemp(ranges);
    if (fd == -1) {
        return avs_err_set(err, AVS_ESTORE, "archive: create %s: %s",
                           ranges, strerror(errno));
    }

    (void) unlink(ranges);
    (void) fcntl(fd, F_SETFD, FD_CLOEXEC);

    b->ranges = fdopen(fd, "w+b");
    if (b->ranges == NULL) {
        close(fd);
        return avs_err_set(err, AVS_ENOMEM, "archive: out of memory");
    }

    return AVS_OK;
}


/*
 * Builds the job's file (file: stores): opened without truncation, then
 * locked, then checked to be still the file of that name, then truncated,
 * so that an archiver that lost its lease but still builds the same job is
 * never written over (the second one gets AVS_EBUSY), and a file the store
 * has renamed into place meanwhile is never truncated.  The lock is held
 * until the file is discarded.  The file is synced before it is put.
 */
static avs_rc_t
avs_archive_build(avs_cycle_t *cy, avs_build_t *b, avs_err_t *err)
{
    avs_rc_t     rc;
    struct stat  fst, pst;

    b->fd = open(b->path, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
    if (b->fd == -1) {
        return avs_err_set(err, AVS_ESTORE, "archive: open %s: %s", b->path,
                           strerror(errno));
    }

    if (flock(b->fd, LOCK_EX | LOCK_NB) == -1) {
        if (errno == EWOULDBLOCK) {
            return avs_err_set(err, AVS_EBUSY,
                               "archive: %s is being built by another "
                               "process", b->job->key);
        }

        return avs_err_set(err, AVS_ESTORE, "archive: flock %s: %s",
                           b->path, strerror(errno));
    }

    if (fstat(b->fd, &fst) == -1 || stat(b->path, &pst) == -1
        || fst.st_ino != pst.st_ino || fst.st_dev != pst.st_dev)
    {
        return avs_err_set(err, AVS_EBUSY,
                           "archive: %s was put by another process",
                           b->job->key);
    }

    b->owned = 1;

    if (ftruncate(b->fd, 0) == -1) {
        return avs_err_set(err, AVS_ESTORE, "archive: truncate %s: %s",
                           b->path, strerror(errno));
    }

    if (posix_memalign((void **) &b->io_mem, AVS_ARCHIVE_IO_ALIGN,
                       2 * AVS_ARCHIVE_IO_SIZE) != 0)
    {
        b->io_mem = NULL;
        return avs_err_set(err, AVS_ENOMEM, "archive: out of memory");
    }

    b->io = b->io_mem;
    b->io_spare = b->io_mem + AVS_ARCHIVE_IO_SIZE;

    if (b->in_store) {
        avs_archive_direct(b, 1);
    }

    rc = avs_archive_begin(cy, b, 1, err);
    if (rc != AVS_OK) {
        return rc;
    }

    rc = avs_store_read(cy->st, avs_archive_build_read, b, err);
    if (rc != AVS_OK) {
        return rc;
    }

    rc = avs_archive_io_wait(b, err);
    if (rc != AVS_OK) {
        return rc;
    }

    /* a file the store renames into place must be on disk first */

    if (fsync(b->fd) == -1) {
        return avs_err_set(err, AVS_ESTORE, "archive: fsync %s: %s",
                           b->path, strerror(errno));
    }

    return avs_archive_finish(b, err);
}


/*
 * After the last byte: the ranges written out, the SHA-256 final (unless
 * the PUT gave it).
 */
static avs_rc_t
avs_archive_finish(avs_build_t *b, avs_err_t *err)
{
    if (fflush(b->ranges) != 0) {
        return avs_err_set(err, errno == ENOSPC ? AVS_EFULL : AVS_ESTORE,
                           "archive: write the ranges of %s: %s",
                           b->job->key, strerror(errno));
    }

    return (b->md == NULL || avs_sha256_final_hex(b->md, b->sha256))
           ? AVS_OK
           : avs_err_set(err, AVS_EINTERNAL, "archive: sha256 failed");
}


/*
 * The read transaction of a build: the job's bytes, from one snapshot,
 * through the write buffer into the file.  A job found done was committed
 * by another archiver: AVS_DONE, nothing to build.
 */
static avs_rc_t
avs_archive_build_read(sqlite3 *db, void *arg, avs_err_t *err)
{
    avs_build_t  *b = arg;
    avs_rc_t      rc;

    rc = avs_archive_source_open(db, b, err);

    while (rc == AVS_OK && !b->ended) {
        rc = avs_archive_source_read(b, b->io, AVS_ARCHIVE_IO_SIZE,
                                     &b->io_len, err);
        if (rc == AVS_OK) {
            rc = avs_archive_flush(b, err);
        }
    }

    avs_archive_source_close(b);

    return rc;
}


/*
 * Opens the source of a job's bytes in the read transaction on db: checks
 * the job is still pending (AVS_DONE when another archiver finished it),
 * builds the stream's header, which must be the size the claim counted,
 * and starts the rows: each dataset's uploads together, in upload order.
 */
static avs_rc_t
avs_archive_source_open(sqlite3 *db, avs_build_t *b, avs_err_t *err)
{
    sqlite3_stmt  *stmt;
    avs_job_t     *job;
    avs_rc_t       rc;
    int64_t        stream_id;
    int            done;

    job = b->job;
    b->db = db;

    rc = avs_sql_query(db, &stmt, "job state", err,
                       "SELECT state = 'done' FROM archive_jobs"
                       " WHERE id = ?1", "i", job->id);
    if (rc != AVS_OK) {
        return (rc == AVS_DONE)
               ? avs_err_set(err, AVS_ESTORE, "archive: job %" PRId64
                             " vanished", job->id)
               : rc;
    }

    done = sqlite3_column_int(stmt, 0);
    sqlite3_finalize(stmt);

    if (done) {
        return AVS_DONE;
    }

    rc = avs_store_stream_header(db, NULL, NULL, job->stream_id, &b->header,
                                 &stream_id, &b->codec, err);
    if (rc == AVS_DONE) {
        return avs_err_set(err, AVS_ESTORE, "archive: a stream is missing");
    }

    if (rc != AVS_OK) {
        return rc;
    }

    if ((int64_t) b->header.len != job->header_bytes) {
        return avs_err_set(err, AVS_EINTERNAL,
                           "archive: %s: header is %zu bytes, the claim "
                           "counted %" PRId64, job->key, b->header.len,
                           job->header_bytes);
    }

    /* idx_buffer_archive covers it (migration 005): the sort reads the
     * index, not the rows' pages */

    rc = avs_sql_prepare(db, &b->stmt, "job rows", err,
                         "SELECT id, dataset_id" AVS_ARCHIVE_JOB_ROWS
                         " ORDER BY dataset_id, id",
                         "tttii", job->table, job->period, job->fp,
                         job->first_id, job->last_id);
    if (rc != AVS_OK) {
        return rc;
    }

    return avs_sql_prepare(db, &b->row, "job row", err,
                           "SELECT record_count, timestamp, data"
                           " FROM buffer_logs WHERE id = ?1", "i",
                           (int64_t) 0);
}


/*
 * Gives the next bytes of the job's file, at most len, into buf (*got
 * of them), hashed: the header, then each row's blob read straight into
 * buf; the block index ranges are noted as rows start.  After the last
 * byte, b->ended is set.  The rows must be exactly those the claim
 * counted, or the file would not be the job's.
 */
static avs_rc_t
avs_archive_source_read(avs_build_t *b, uint8_t *buf, size_t len,
    size_t *got, avs_err_t *err)
{
    size_t    n, k;
    avs_rc_t  rc;

    for (n = 0; n < len && !b->ended; n += k) {

        if (b->header_off < b->header.len) {
            k = b->header.len - b->header_off;
            k = (k < len - n) ? k : len - n;
            memcpy(buf + n, b->header.data + b->header_off, k);
            b->header_off += k;

        } else if (b->blob_off < b->blob_len) {
            k = (size_t) (b->blob_len - b->blob_off);
            k = (k < len - n) ? k : len - n;
            memcpy(buf + n, b->blob + b->blob_off, k);
            b->blob_off += (int) k;
            b->data += (int64_t) k;

        } else {
            rc = avs_archive_source_row(b, err);
            if (rc != AVS_OK) {
                return rc;
            }

            k = 0;
            continue;
        }

        b->size += (int64_t) k;
    }

    *got = n;

    if (n > 0 && b->md != NULL && !avs_sha256_update(b->md, buf, n)) {
        return avs_err_set(err, AVS_EINTERNAL, "archive: sha256 failed");
    }

    return AVS_OK;
}


/*
 * Moves the source to the next row: its data, its range; or, after the
 * last one, ends it.
 */
static avs_rc_t
avs_archive_source_row(avs_build_t *b, avs_err_t *err)
{
    avs_rc_t     rc;
    int64_t      id, records;
    int          src;
    const char  *name;

    b->blob = NULL;
    b->blob_len = 0;
    b->blob_off = 0;
    sqlite3_reset(b->row);

    src = sqlite3_step(b->stmt);

    if (src == SQLITE_DONE) {
        return avs_archive_source_end(b, err);
    }

    if (src != SQLITE_ROW) {
        return avs_sql_fail(b->db, src, "job rows", err);
    }

    id = sqlite3_column_int64(b->stmt, 0);

    src = sqlite3_bind_int64(b->row, 1, id);
    if (src == SQLITE_OK) {
        src = sqlite3_step(b->row);
    }

    if (src != SQLITE_ROW) {
        return (src == SQLITE_DONE)
               ? avs_err_set(err, AVS_EINTERNAL, "archive: %s: row %" PRId64
                             " vanished", b->job->key, id)
               : avs_sql_fail(b->db, src, "job row", err);
    }

    records = sqlite3_column_int64(b->row, 0);
    b->records += records;
    b->rows++;

    b->blob = sqlite3_column_blob(b->row, 2);
    b->blob_len = sqlite3_column_bytes(b->row, 2);

    if (b->blob == NULL && b->blob_len > 0) {
        return avs_sql_fail(b->db, sqlite3_errcode(b->db), "row data", err);
    }

    if (b->data + b->blob_len > b->job->data_bytes) {
        return avs_err_set(err, AVS_EINTERNAL,
                           "archive: %s: more than the %" PRId64 " bytes "
                           "of rows the claim took", b->job->key,
                           b->job->data_bytes);
    }

    name = (const char *) sqlite3_column_text(b->stmt, 1);

    rc = avs_archive_range(b, name ? name : "",
                           (size_t) sqlite3_column_bytes(b->stmt, 1),
                           b->blob_len, records,
                           sqlite3_column_int64(b->row, 1), err);

    return rc;
}


/* After the last row: the last dataset's range, and the claim's counts. */
static avs_rc_t
avs_archive_source_end(avs_build_t *b, avs_err_t *err)
{
    avs_job_t  *job;
    avs_rc_t    rc;

    job = b->job;

    rc = avs_archive_range(b, NULL, 0, 0, 0, 0, err);
    if (rc != AVS_OK) {
        return rc;
    }

    if (b->rows != job->rows || b->data != job->data_bytes) {
        return avs_err_set(err, AVS_EINTERNAL,
                           "archive: %s: found %" PRId64 " rows of %" PRId64
                           " bytes, the claim took %" PRId64 " of %" PRId64,
                           job->key, b->rows, b->data, job->rows,
                           job->data_bytes);
    }

    b->ended = 1;

    return AVS_OK;
}


/* Ends the source: its statements and header go. */
static void
avs_archive_source_close(avs_build_t *b)
{
    b->blob = NULL;
    b->blob_len = 0;
    b->blob_off = 0;

    sqlite3_finalize(b->row);
    b->row = NULL;
    sqlite3_finalize(b->stmt);
    b->stmt = NULL;
    avs_buf_free(&b->header);
    b->db = NULL;
}


/*
 * s3://: the job's bytes go straight from the read snapshot into the PUT,
 * with no temporary file, once the key is the job's own (made so by
 * avs_archive_start): they are read and sent as the store asks for them,
 * and the PUT hashes them as they go (SHA-256 for the catalog, and over
 * plain HTTP the MD5 its ETag is checked against).
 */
static avs_rc_t
avs_archive_stream(avs_cycle_t *cy, avs_build_t *b, char *etag,
    char *sha256, avs_err_t *err)
{
    avs_rc_t  rc;

    rc = avs_archive_begin(cy, b, 0, err);
    if (rc != AVS_OK) {
        return rc;
    }

    b->serr.rc = AVS_OK;
    b->serr.msg[0] = '\0';

    rc = avs_store_read(cy->st, avs_archive_stream_read, b, err);
    if (rc != AVS_OK) {
        return rc;
    }

    memcpy(etag, b->etag, AVS_ETAG_SIZE);

    rc = avs_archive_finish(b, err);
    if (rc == AVS_OK) {
        memcpy(sha256, b->sha256, AVS_SHA256_HEX_SIZE);
    }

    return rc;
}


/*
 * The read transaction of a stream: the PUT runs inside it, its body read
 * from this snapshot.  A failure of the source is told rather than the
 * store's account of the aborted request.
 */
static avs_rc_t
avs_archive_stream_read(sqlite3 *db, void *arg, avs_err_t *err)
{
    avs_build_t  *b = arg;
    avs_job_t    *job;
    avs_err_t     e;
    avs_rc_t      rc;

    job = b->job;

    rc = avs_archive_source_open(db, b, err);

    if (rc == AVS_OK) {
        rc = avs_objstore_put_stream(b->os, job->key,
                                     (uint64_t) (job->header_bytes
                                                 + job->data_bytes),
                                     b->create_only, job->writer,
                                     avs_archive_stream_cb, b, b->etag,
                                     b->sha256, &e);

        if (rc != AVS_OK && b->serr.rc != AVS_OK) {
            *err = b->serr;
            rc = b->serr.rc;

        } else if (rc != AVS_OK) {
            rc = avs_archive_put_error(b, rc, &e, err);
        }
    }

    /* the PUT took the bytes the claim counted: the rows must end there */

    if (rc == AVS_OK && !b->ended) {
        rc = avs_archive_source_row(b, err);

        if (rc == AVS_OK && !b->ended) {
            rc = avs_err_set(err, AVS_EINTERNAL, "archive: %s: more rows "
                             "than the claim took", job->key);
        }
    }

    avs_archive_source_close(b);

    return rc;
}


/* The PUT's body: the next bytes of the source, -1 when it fails. */
static ssize_t
avs_archive_stream_cb(void *data, uint8_t *buf, size_t len)
{
    avs_build_t  *b = data;
    size_t        got;

    if (avs_archive_source_read(b, buf, len, &got, &b->serr) != AVS_OK) {
        return -1;
    }

    return (ssize_t) got;
}


/*
 * Adds a row of len bytes, about to be written, to the range of its
 * dataset; a row of another dataset (or name NULL: the end) first writes
 * the range before it to the side file.  A dataset without bytes gets no
 * range: there is nothing to read.
 */
static avs_rc_t
avs_archive_range(avs_build_t *b, const char *name, size_t name_len,
    int64_t len, int64_t records, int64_t ts, avs_err_t *err)
{
    avs_range_t  *r;

    r = &b->run;

    if (name != NULL && name_len > 0 && r->name_len == name_len
        && memcmp(r->name, name, name_len) == 0)
    {
        r->length += len;
        r->records += records;
        r->t0 = (ts < r->t0) ? ts : r->t0;
        r->t1 = (ts > r->t1) ? ts : r->t1;
        return AVS_OK;
    }

    if (r->name_len > 0 && r->length > 0) {
        if (fwrite(r, offsetof(avs_range_t, name) + r->name_len, 1,
                   b->ranges) != 1)
        {
            return avs_err_set(err, errno == ENOSPC ? AVS_EFULL : AVS_ESTORE,
                               "archive: write the ranges of %s: %s",
                               b->job->key, strerror(errno));
        }

        b->nranges++;
    }

    if (name == NULL) {
        return AVS_OK;
    }

    if (name_len == 0 || name_len > AVS_NAME_MAX) {
        return avs_err_set(err, AVS_ESTORE, "archive: %s: a dataset name "
                           "of %zu bytes", b->job->key, name_len);
    }

    memcpy(r->name, name, name_len);
    r->name_len = name_len;
    r->start = b->size;
    r->length = len;
    r->records = records;
    r->t0 = ts;
    r->t1 = ts;

    return AVS_OK;
}


/*
 * Turns direct writes (O_DIRECT) on or off for the file being built into
 * the store.  An archive file is written once and then read rarely, in
 * ranges: past the page cache it does not evict the hot store's pages,
 * leaves no gigabyte of dirty pages for the fsync before the rename, and
 * costs the kernel a fraction of the CPU per byte.  Direct writes need
 * aligned offsets and lengths, so a file's unaligned tail goes through
 * the page cache, and a file system that refuses them gets buffered
 * writes throughout.
 */
static void
avs_archive_direct(avs_build_t *b, int on)
{
#if defined(O_DIRECT)
    int  flags;

    flags = fcntl(b->fd, F_GETFL);

    if (flags != -1) {
        flags = on ? (flags | O_DIRECT) : (flags & ~O_DIRECT);

        if (fcntl(b->fd, F_SETFL, flags) == 0) {
            b->direct = on;
            return;
        }
    }
#endif

    /* when turning them off fails, the next write's error is told */

    b->direct = 0;
}


/*
 * Hands the filled buffer to the kernel.  A direct write is queued
 * (POSIX AIO) and the other buffer is filled meanwhile, so that the disk
 * and the build work at once; only one write is in flight.  Buffered
 * writes are written back every few MiB at the kernel's request (Linux):
 * the disk then works while the rest is built, and the fsync at the end
 * waits for the last pieces only.
 */
static avs_rc_t
avs_archive_flush(avs_build_t *b, avs_err_t *err)
{
    uint8_t   *io;
    avs_rc_t   rc;

    if (b->io_len == 0) {
        return AVS_OK;
    }

    rc = avs_archive_io_wait(b, err);
    if (rc != AVS_OK) {
        return rc;
    }

    if (b->direct && b->io_len % AVS_ARCHIVE_IO_ALIGN != 0) {
        avs_archive_direct(b, 0);
    }

    if (b->direct) {
        memset(&b->aio, 0, sizeof(b->aio));
        b->aio.aio_fildes = b->fd;
        b->aio.aio_buf = b->io;
        b->aio.aio_nbytes = b->io_len;
        b->aio.aio_offset = (off_t) b->flushed;
        b->aio.aio_sigevent.sigev_notify = SIGEV_NONE;

        if (aio_write(&b->aio) == 0) {
            b->aio_busy = 1;
            io = b->io;
            b->io = b->io_spare;
            b->io_spare = io;
            b->flushed += (int64_t) b->io_len;
            b->io_len = 0;

            return AVS_OK;
        }

        /* not queued (EAGAIN: no resources): written here instead */
    }

    rc = avs_archive_pwrite(b, b->io, b->io_len, b->flushed, err);
    if (rc != AVS_OK) {
        return rc;
    }

    b->flushed += (int64_t) b->io_len;
    b->io_len = 0;

#if defined(__linux__)
    if (b->in_store && !b->direct
        && b->flushed - b->written_back >= AVS_ARCHIVE_WRITEBACK)
    {
        (void) sync_file_range(b->fd, b->written_back,
                               b->flushed - b->written_back,
                               SYNC_FILE_RANGE_WRITE);
        b->written_back = b->flushed;
    }
#endif

    return AVS_OK;
}


/*
 * Waits for the write in flight, if any.  One that failed as a direct
 * write (EINVAL: the file system wants another alignment) or stopped
 * short is finished here, buffered when it must be.
 */
static avs_rc_t
avs_archive_io_wait(avs_build_t *b, avs_err_t *err)
{
    ssize_t  w;
    size_t   done;
    int      e;

    if (!b->aio_busy) {
        return AVS_OK;
    }

    w = avs_archive_io_settle(b, &e);

    if (w == (ssize_t) b->aio.aio_nbytes) {
        return AVS_OK;
    }

    if (w < 0 && e != EINVAL) {
        return avs_err_set(err, e == ENOSPC ? AVS_EFULL : AVS_ESTORE,
                           "archive: write %s: %s", b->path, strerror(e));
    }

    done = (w > 0) ? (size_t) w : 0;

    if (e == EINVAL || done % AVS_ARCHIVE_IO_ALIGN != 0) {
        avs_archive_direct(b, 0);
    }

    return avs_archive_pwrite(b, b->io_spare + done,
                              b->aio.aio_nbytes - done,
                              (int64_t) b->aio.aio_offset + (int64_t) done,
                              err);
}


/* Waits for the write in flight to end: what it returned, errno in *e. */
static ssize_t
avs_archive_io_settle(avs_build_t *b, int *e)
{
    const struct aiocb  *list[1];

    list[0] = &b->aio;

    while ((*e = aio_error(&b->aio)) == EINPROGRESS) {
        (void) aio_suspend(list, 1, NULL);
    }

    b->aio_busy = 0;

    return aio_return(&b->aio);
}


/*
 * Writes len bytes at offset, whatever short writes and signals do; a
 * direct write the file system refuses is made buffered.
 */
static avs_rc_t
avs_archive_pwrite(avs_build_t *b, const uint8_t *buf, size_t len,
    int64_t offset, avs_err_t *err)
{
    ssize_t  w;
    size_t   off;

    for (off = 0; off < len; off += (size_t) w) {
        w = pwrite(b->fd, buf + off, len - off, (off_t) offset + off);

        if (w < 0 && errno == EINTR) {
            w = 0;
            continue;
        }

        if (w < 0 && errno == EINVAL && b->direct) {
            avs_archive_direct(b, 0);
            w = 0;
            continue;
        }

        if (w <= 0) {
            return avs_err_set(err, errno == ENOSPC ? AVS_EFULL : AVS_ESTORE,
                               "archive: write %s: %s", b->path,
                               w ? strerror(errno) : "nothing written");
        }

        if (b->direct && (size_t) w % AVS_ARCHIVE_IO_ALIGN != 0) {
            avs_archive_direct(b, 0);
        }
    }

    return AVS_OK;
}


/*
 * Ends the life of a temporary file: removed if this build holds its lock,
 * unless a simulated crash leaves it (the next run truncates it) or the
 * store took it, then closed, which drops the lock.
 */
static void
avs_archive_discard(avs_build_t *b, int unlink_file)
{
    int  e;

    if (b->aio_busy) {
        (void) avs_archive_io_settle(b, &e);
    }

    if (unlink_file && b->owned && b->fd != -1 && !b->moved) {
        (void) unlink(b->path);
    }

    if (b->fd != -1) {
        (void) close(b->fd);
        b->fd = -1;
    }

    if (b->ranges != NULL) {
        (void) fclose(b->ranges);
        b->ranges = NULL;
    }

    avs_sha256_free(b->md);
    b->md = NULL;
    free(b->io_mem);
    b->io_mem = NULL;
    b->io = NULL;
    b->io_spare = NULL;
}


/*
 * Makes the job's key its own before a PUT, and says whether the PUT may
 * replace what is there (b->create_only).  An object under the key that
 * the job did not write is another node's (same node name) or this node's
 * from a database started anew: it is never overwritten, and the job
 * takes the next key instead.  On s3:// that holds for every put, since
 * each object names its writer: a repeat finds its own object (a PUT whose
 * answer was lost) and replaces it with the same bytes, or finds another
 * writer's (a conditional PUT refused, its answer lost) and moves on.
 * file: keeps no writer; a repeat there replaces what its key holds.  The
 * PUT is counted before it starts.  AVS_DONE: another archiver finished
 * the job meanwhile.
 */
static avs_rc_t
avs_archive_own_key(avs_cycle_t *cy, avs_build_t *b, avs_err_t *err)
{
    avs_job_arg_t   a;
    avs_job_t      *job;
    avs_err_t       e;
    avs_rc_t        rc;
    uint64_t        size;
    int             rekeys;
    char            etag[AVS_ETAG_SIZE], writer[AVS_WRITER_SIZE];

    job = b->job;
    a.job = job;
    a.node = cy->conf->node;
    a.error = NULL;
    a.key_taken = 0;
    b->create_only = 1;

    for (rekeys = 0; /* void */; rekeys++) {

        if (job->put_attempts > 0 && !avs_objstore_keeps_writer(cy->os)) {
            b->create_only = 0;
            break;
        }

        rc = avs_objstore_head_writer(cy->os, job->key, &size, etag, writer,
                                      &e);

        if (rc == AVS_DONE) {
            break;
        }

        if (rc != AVS_OK) {
            return avs_err_set(err, rc, "archive: head %s: %s", job->key,
                               e.msg);
        }

        /* a job's own object is its own even after a refused put reset
         * the count: the refusal may have met it */
        if (strcmp(writer, job->writer) == 0) {
            b->create_only = 0;
            break;
        }

        if (rekeys == AVS_ARCHIVE_REKEYS) {
            return avs_err_set(err, AVS_ESTORE,
                               "archive: %s and %d keys after it exist "
                               "already: is another node named \"%s\"?",
                               job->key, AVS_ARCHIVE_REKEYS, a.node);
        }

        rc = avs_store_write(cy->st, avs_archive_rekey, &a, err);
        if (rc != AVS_OK) {
            return rc;
        }
    }

    return avs_store_write(cy->st, avs_archive_mark_put, &a, err);
}


/*
 * Puts the file built for the job under its key: file: renames it,
 * s3:// with signed payloads sends it with its hash.
 */
static avs_rc_t
avs_archive_put(avs_cycle_t *cy, avs_build_t *b, char *etag, char *sha256,
    avs_err_t *err)
{
    avs_job_t  *job;
    avs_err_t   e;
    avs_rc_t    rc;

    job = b->job;

    rc = avs_archive_own_key(cy, b, err);
    if (rc != AVS_OK) {
        return rc;
    }

    job->put_attempts++;
    etag[0] = '\0';

    rc = avs_objstore_put_temp(cy->os, job->key, b->path, b->sha256,
                               b->create_only, job->writer, etag, &e);
    if (rc != AVS_OK) {
        return avs_archive_put_error(b, rc, &e, err);
    }

    b->moved = b->in_store;
    memcpy(sha256, b->sha256, AVS_SHA256_HEX_SIZE);

    return AVS_OK;
}


/*
 * The error of a failed put.  A key found taken by the first put is the
 * store's failure for this run (AVS_ESTORE, not the 409 of a busy
 * archiver); the job is told to look at its key again.
 */
static avs_rc_t
avs_archive_put_error(avs_build_t *b, avs_rc_t rc, const avs_err_t *e,
    avs_err_t *err)
{
    if (rc == AVS_ECONFLICT) {
        b->key_taken = 1;
        rc = AVS_ESTORE;
    }

    return avs_err_set(err, rc, "archive: put %s: %s", b->job->key, e->msg);
}


/*
 * Gives a job the next key of the sequence, because its own key is
 * taken by an object it did not write; it has put nothing under the new
 * one yet.
 */
static avs_rc_t
avs_archive_rekey(sqlite3 *db, void *arg, avs_err_t *err)
{
    avs_job_arg_t  *a = arg;
    sqlite3_stmt   *stmt;
    avs_job_t      *job;
    avs_rc_t        rc;
    int64_t         seq, changes;
    char            key[AVS_ARCHIVE_KEY_MAX];

    job = a->job;

    rc = avs_sql_query(db, &stmt, "sequence", err,
                       "SELECT next_sequence FROM archive_state"
                       " WHERE id = 1", "");
    if (rc != AVS_OK) {
        return (rc == AVS_DONE)
               ? avs_err_set(err, AVS_ESTORE, "archive: no state row")
               : rc;
    }

    seq = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);

    rc = avs_archive_make_key(key, job->table, job->period, job->fp,
                              a->node, seq, err);
    if (rc != AVS_OK) {
        return rc;
    }

    rc = avs_sql_exec(db, &changes, "rekey", err,
                      "UPDATE archive_jobs SET key = ?1,"
                      " put_attempts = 0"
                      " WHERE id = ?2 AND state = 'pending'"
                      " AND put_attempts = ?3 AND key = ?4",
                      "tiit", key, job->id, job->put_attempts, job->key);
    if (rc != AVS_OK) {
        return rc;
    }

    if (changes != 1) {
        return avs_err_set(err, AVS_EBUSY,
                           "archive: job %" PRId64 " changed meanwhile",
                           job->id);
    }

    rc = avs_sql_exec(db, NULL, "sequence", err,
                      "UPDATE archive_state SET next_sequence = ?1"
                      " WHERE id = 1", "i", seq + 1);
    if (rc != AVS_OK) {
        return rc;
    }

    memcpy(job->key, key, sizeof(key));
    job->put_attempts = 0;

    return AVS_OK;
}


/* Counts the PUT about to start; AVS_DONE if the job is done already. */
static avs_rc_t
avs_archive_mark_put(sqlite3 *db, void *arg, avs_err_t *err)
{
    avs_job_arg_t  *a = arg;
    avs_rc_t        rc;
    int64_t         changes;

    rc = avs_sql_exec(db, &changes, "put count", err,
                      "UPDATE archive_jobs SET put_attempts ="
                      " put_attempts + 1"
                      " WHERE id = ?1 AND state = 'pending'",
                      "i", a->job->id);
    if (rc != AVS_OK) {
        return rc;
    }

    return (changes == 1) ? AVS_OK : AVS_DONE;
}


/*
 * Records a failed run on the job, which stays pending.  A first put that
 * found its key taken stored nothing: the job counts no put, so that the
 * next run looks at the key again and takes the next one, instead of
 * replacing the object as the repeat of a put whose answer was lost would.
 */
static avs_rc_t
avs_archive_fail_job(sqlite3 *db, void *arg, avs_err_t *err)
{
    avs_job_arg_t  *a = arg;

    return avs_sql_exec(db, NULL, "job failure", err,
                        "UPDATE archive_jobs SET attempts = attempts + 1,"
                        " last_error = ?1,"
                        " put_attempts = CASE WHEN ?3 THEN 0"
                        " ELSE put_attempts END"
                        " WHERE id = ?2 AND state = 'pending'",
                        "tii", a->error, a->job->id,
                        (int64_t) a->key_taken);
}


/*
 * The commit, one write transaction: the file, its block index, its
 * segment of the logical file, the history, the deletion of the hot rows
 * and the end of the job.  A reader's snapshot has either the hot rows or
 * their index, never both or neither.
 *
 * The block index is the ranges the build noted while it wrote the file
 * (per dataset, in the file's order, after the header); they must cover
 * exactly the bytes and records of the job's rows.
 */
static avs_rc_t
avs_archive_commit(sqlite3 *db, void *arg, avs_err_t *err)
{
    sqlite3_stmt  *stmt;
    avs_rc_t       rc;
    int64_t        pages;
    char           sql[48];

    /*
     * The rows deleted leave the indexes led by the dataset at places all
     * over them, as the block index rows enter theirs.  With SQLite's
     * default 2 MB a page leaves the cache before it is touched again
     * (with datasets in no order, a third of the commit's time).  The
     * larger cache is the commit's only, given back before COMMIT:
     * dirty pages stay until written, clean ones are freed.
     */

    pages = 0;

    if (sqlite3_prepare_v2(db, "PRAGMA cache_size", -1, &stmt, NULL)
        == SQLITE_OK)
    {
        if (sqlite3_step(stmt) == SQLITE_ROW) {
            pages = sqlite3_column_int64(stmt, 0);
        }

        sqlite3_finalize(stmt);
    }

    snprintf(sql, sizeof(sql), "PRAGMA cache_size = -%d",
             AVS_ARCHIVE_COMMIT_CACHE_KIB);
    (void) sqlite3_exec(db, sql, NULL, NULL, NULL);

    rc = avs_archive_commit_rows(db, arg, err);

    if (pages != 0) {
        snprintf(sql, sizeof(sql), "PRAGMA cache_size = %" PRId64, pages);
        (void) sqlite3_exec(db, sql, NULL, NULL, NULL);
    }

    return rc;
}


/* The commit's rows: see avs_archive_commit. */
static avs_rc_t
avs_archive_commit_rows(sqlite3 *db, void *arg, avs_err_t *err)
{
    avs_commit_t  *c = arg;
    sqlite3_stmt  *stmt;
    avs_build_t   *b;
    avs_job_t     *job;
    avs_rc_t       rc;
    int64_t        now, file_id, changes;
    int            done;

    b = c->b;
    job = c->job;
    now = avs_archive_now_ms();

    rc = avs_sql_query(db, &stmt, "job state", err,
                       "SELECT state = 'done' FROM archive_jobs"
                       " WHERE id = ?1", "i", job->id);
    if (rc != AVS_OK) {
        return (rc == AVS_DONE)
               ? avs_err_set(err, AVS_ESTORE, "archive: job %" PRId64
                             " vanished", job->id)
               : rc;
    }

    done = sqlite3_column_int(stmt, 0);
    sqlite3_finalize(stmt);

    if (done) {
        return AVS_DONE;
    }

    rc = avs_sql_exec(db, NULL, "file", err,
                      "INSERT INTO archived_files (file_path, file_size,"
                      " compression_codec, created_at, last_modified_at,"
                      " etag, sha256, table_name, period_tag,"
                      " schema_fingerprint, record_count)"
                      " VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7, ?8, ?9,"
                      " ?10)",
                      "titittttti", job->key, b->size,
                      avs_codec_name(b->codec), now,
                      c->etag[0] ? c->etag : NULL,
                      c->sha256[0] ? c->sha256 : NULL,
                      job->table, job->period, job->fp, b->records);
    if (rc != AVS_OK) {
        return rc;
    }

    file_id = sqlite3_last_insert_rowid(db);

    rc = avs_archive_index(db, c, file_id, now, err);
    if (rc != AVS_OK) {
        return rc;
    }

    rc = avs_archive_commit_segment(db, c, file_id, b->records, now, err);
    if (rc != AVS_OK) {
        return rc;
    }

    rc = avs_sql_exec(db, &changes, "delete hot rows", err,
                      "DELETE" AVS_ARCHIVE_JOB_ROWS,
                      "tttii", job->table, job->period, job->fp,
                      job->first_id, job->last_id);
    if (rc != AVS_OK) {
        return rc;
    }

    if (changes != job->rows) {
        return avs_err_set(err, AVS_EINTERNAL,
                           "archive: %s: %" PRId64 " hot rows to delete, "
                           "the claim took %" PRId64, job->key, changes,
                           job->rows);
    }

    return avs_sql_exec(db, NULL, "job done", err,
                        "UPDATE archive_jobs SET state = 'done',"
                        " finished_at = ?1, record_count = ?2,"
                        " file_id = ?3, last_error = NULL WHERE id = ?4",
                        "iiii", now, b->records, file_id, job->id);
}


/*
 * Inserts the ranges of the side file into block_indexes, and checks that
 * they cover the file: every byte after the header and every record, once.
 */
static avs_rc_t
avs_archive_index(sqlite3 *db, avs_commit_t *c, int64_t file_id,
    int64_t now, avs_err_t *err)
{
    sqlite3_stmt  *stmt;
    avs_build_t   *b;
    avs_job_t     *job;
    avs_range_t    r;
    avs_rc_t       rc;
    int64_t        bytes, records, n;
    int            src;

    b = c->b;
    job = c->job;
    bytes = 0;
    records = 0;

    if (fflush(b->ranges) != 0 || fseek(b->ranges, 0, SEEK_SET) != 0) {
        return avs_err_set(err, AVS_ESTORE, "archive: read the ranges of "
                           "%s: %s", job->key, strerror(errno));
    }

    rc = avs_sql_prepare(db, &stmt, "block index", err,
                         "INSERT INTO block_indexes (dataset_id, table_name,"
                         " file_id, start_byte, length, record_count,"
                         " start_timestamp, end_timestamp, period_tag,"
                         " schema_fingerprint, created_at)"
                         " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,"
                         " ?11)",
                         "ttiiiiiitti", NULL, job->table, file_id,
                         (int64_t) 0, (int64_t) 0, (int64_t) 0, (int64_t) 0,
                         (int64_t) 0, job->period, job->fp, now);
    if (rc != AVS_OK) {
        return rc;
    }

    for (n = 0; n < b->nranges; n++) {

        if (fread(&r, offsetof(avs_range_t, name), 1, b->ranges) != 1
            || r.name_len == 0 || r.name_len > AVS_NAME_MAX
            || fread(r.name, r.name_len, 1, b->ranges) != 1)
        {
            rc = avs_err_set(err, AVS_ESTORE, "archive: the ranges of %s "
                             "are cut short", job->key);
            break;
        }

        if (r.start != job->header_bytes + bytes) {
            rc = avs_err_set(err, AVS_EINTERNAL, "archive: %s: a range at "
                             "%" PRId64 " after %" PRId64 " bytes", job->key,
                             r.start, bytes);
            break;
        }

        bytes += r.length;
        records += r.records;

        src = sqlite3_bind_text(stmt, 1, r.name, (int) r.name_len,
                                SQLITE_STATIC);
        if (src == SQLITE_OK) {
            src = sqlite3_bind_int64(stmt, 4, r.start);
        }
        if (src == SQLITE_OK) {
            src = sqlite3_bind_int64(stmt, 5, r.length);
        }
        if (src == SQLITE_OK) {
            src = sqlite3_bind_int64(stmt, 6, r.records);
        }
        if (src == SQLITE_OK) {
            src = sqlite3_bind_int64(stmt, 7, r.t0);
        }
        if (src == SQLITE_OK) {
            src = sqlite3_bind_int64(stmt, 8, r.t1);
        }
        if (src == SQLITE_OK) {
            src = sqlite3_step(stmt);
            src = (src == SQLITE_DONE) ? sqlite3_reset(stmt) : src;
        }

        if (src != SQLITE_OK) {
            rc = avs_sql_fail(db, src, "block index", err);
            break;
        }
    }

    sqlite3_finalize(stmt);

    if (rc != AVS_OK) {
        return rc;
    }

    c->datasets = b->nranges;

    if (bytes != job->data_bytes || records != b->records
        || job->header_bytes + bytes != b->size)
    {
        return avs_err_set(err, AVS_EINTERNAL,
                           "archive: %s: the index covers %" PRId64
                           " bytes and %" PRId64 " records, the file has %"
                           PRId64 " and %" PRId64, job->key, bytes, records,
                           b->size - job->header_bytes, b->records);
    }

    return AVS_OK;
}


/*
 * Adds the file as the next segment of its logical file (created by the
 * first one) and writes what was appended into the history.
 */
static avs_rc_t
avs_archive_commit_segment(sqlite3 *db, avs_commit_t *c, int64_t file_id,
    int64_t records, int64_t now, avs_err_t *err)
{
    sqlite3_stmt  *stmt;
    avs_job_t     *job;
    const char    *action, *etag;
    avs_rc_t       rc;
    int64_t        parent, segment;
    char           file_key[AVS_ARCHIVE_KEY_MAX];
    int            n;

    job = c->job;
    etag = c->etag[0] ? c->etag : NULL;

    n = snprintf(file_key, sizeof(file_key), "%s/%s/%s", job->table,
                 job->period, job->fp);
    if (n < 0 || (size_t) n >= sizeof(file_key)) {
        return avs_err_set(err, AVS_EINTERNAL, "archive: key too long");
    }

    rc = avs_sql_query(db, &stmt, "logical file", err,
                       "SELECT id, segment_count FROM avro_files"
                       " WHERE file_key = ?1", "t", file_key);

    if (rc == AVS_OK) {
        parent = sqlite3_column_int64(stmt, 0);
        segment = sqlite3_column_int64(stmt, 1) + 1;
        sqlite3_finalize(stmt);
        action = "append";

        rc = avs_sql_exec(db, NULL, "logical file", err,
                          "UPDATE avro_files SET current_size ="
                          " current_size + ?1, segment_count = ?2,"
                          " is_segmented = (?2 > 1), last_appended_at = ?3,"
                          " last_etag = ?4, content_hash = ?5,"
                          " uploaded_by = ?6 WHERE id = ?7",
                          "iiittti",
                          c->b->size, segment, now, etag,
                          c->sha256[0] ? c->sha256 : NULL, c->node, parent);

    } else if (rc == AVS_DONE) {
        segment = 1;
        action = "create";

        rc = avs_sql_exec(db, NULL, "logical file", err,
                          "INSERT INTO avro_files (file_key, dataset_id,"
                          " table_name, period_tag, schema_fingerprint,"
                          " current_size, is_segmented, segment_count,"
                          " created_at, last_appended_at, last_etag,"
                          " content_hash, uploaded_by)"
                          " VALUES (?1, NULL, ?2, ?3, ?4, ?5, 0, 1, ?6, ?6,"
                          " ?7, ?8, ?9)",
                          "ttttiittt", file_key, job->table, job->period,
                          job->fp, c->b->size, now, etag,
                          c->sha256[0] ? c->sha256 : NULL, c->node);
        parent = sqlite3_last_insert_rowid(db);
    }

    if (rc != AVS_OK) {
        return rc;
    }

    rc = avs_sql_exec(db, NULL, "segment", err,
                      "INSERT INTO avro_segments (parent_file_key,"
                      " parent_file_id, segment_number, segment_key, file_id,"
                      " segment_size, record_count, etag, created_at)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                      "tiitiiiti", file_key, parent, segment, job->key,
                      file_id, c->b->size, records, etag, now);
    if (rc != AVS_OK) {
        return rc;
    }

    return avs_sql_exec(db, NULL, "history", err,
                        "INSERT INTO avro_append_history (file_key,"
                        " segment_number, segment_key, action,"
                        " appended_bytes, record_count, dataset_count,"
                        " upload_count, appended_at, job_id)"
                        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                        "tittiiiiii", file_key, segment, job->key, action,
                        c->b->size, records, c->datasets, job->rows, now,
                        job->id);
}


/*
 * Records how the cycle ended: the summary as JSON, the failure count
 * (back to 0 after a cycle that succeeded) and the error.
 */
static avs_rc_t
avs_archive_record(sqlite3 *db, void *arg, avs_err_t *err)
{
    avs_record_arg_t  *a = arg;
    sqlite3_stmt      *stmt;
    avs_buf_t          json;
    avs_rc_t           rc;

    rc = avs_sql_query(db, &stmt, "pending jobs", err,
                       "SELECT count(*) FROM archive_jobs"
                       " WHERE state = 'pending'", "");
    if (rc != AVS_OK) {
        return (rc == AVS_DONE) ? AVS_EINTERNAL : rc;
    }

    a->s->pending = (uint64_t) sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);

    memset(&json, 0, sizeof(avs_buf_t));

    rc = avs_archive_summary_json(a->s, &json);
    if (rc == AVS_OK) {
        rc = avs_buf_append(&json, "", 1);
    }

    if (rc != AVS_OK) {
        avs_buf_free(&json);
        return avs_err_set(err, rc, "archive: cannot write the summary");
    }

    rc = avs_sql_exec(db, NULL, "cycle record", err,
                      "UPDATE archive_state SET node = ?1,"
                      " last_cycle_at = ?2, last_cycle = ?3,"
                      " last_error = ?4,"
                      " failures = CASE WHEN ?4 IS NULL THEN 0"
                      " ELSE failures + 1 END,"
                      " cycles = cycles + 1 WHERE id = 1",
                      "titt", a->node, a->s->started_ms,
                      (const char *) json.data, a->error);

    avs_buf_free(&json);

    return rc;
}


avs_rc_t
avs_archive_summary_json(const avs_archive_summary_t *s, avs_buf_t *out)
{
    avs_rc_t  rc;

    rc = avs_json_raw(out, "{");
    if (rc == AVS_OK) {
        rc = avs_json_field_i64(out, "started_at", s->started_ms);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_u64(out, "duration_ms", s->duration_ms);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_u64(out, "files", s->files);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_u64(out, "datasets", s->datasets);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_u64(out, "uploads", s->uploads);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_u64(out, "records", s->records);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_u64(out, "bytes", s->bytes);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_u64(out, "claimed_jobs", s->claimed);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_u64(out, "recovered_jobs", s->recovered);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_u64(out, "pending_jobs", s->pending);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_u64(out, "skipped_groups", s->skipped);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_u64(out, "failed_jobs", s->failed);
    }
    if (rc == AVS_OK) {
        rc = avs_json_raw(out, ",\"steps_ms\":{");
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_u64(out, "claim", s->claim_ms);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_u64(out, "build", s->build_ms);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_u64(out, "put", s->put_ms);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_u64(out, "commit", s->commit_ms);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_u64(out, "checkpoint", s->checkpoint_ms);
    }
    if (rc == AVS_OK) {
        rc = avs_json_raw(out, "}");
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_str(out, "result", avs_rc_name(s->rc));
    }
    if (rc == AVS_OK) {
        rc = avs_json_raw(out, "}");
    }

    return rc;
}


avs_rc_t
avs_archive_status(avs_store_t *st, avs_buf_t *out, avs_err_t *err)
{
    return avs_store_read(st, avs_archive_status_read, out, err);
}


/*
 * The status in one read transaction, so that its numbers agree: the
 * counters of archive_state, then totals of the catalog and the jobs.
 * last_cycle is this module's own JSON and is copied as it is.
 */
static avs_rc_t
avs_archive_status_read(sqlite3 *db, void *arg, avs_err_t *err)
{
    avs_buf_t     *out = arg;
    sqlite3_stmt  *stmt;
    const char    *s;
    avs_rc_t       rc, wrc;
    size_t         i;
    static const char  *counters[] = {
        "consecutive_failures", "cycles", "files", "bytes", "records",
        "segments", "logical_files", "pending_jobs", "pending_uploads"
    };

    rc = avs_sql_query(db, &stmt, "status", err,
                       "SELECT a.last_cycle_at, a.last_cycle, a.last_error,"
                       " a.failures, a.cycles,"
                       " (SELECT count(*) FROM archived_files),"
                       " (SELECT coalesce(sum(file_size), 0)"
                       " FROM archived_files),"
                       " (SELECT coalesce(sum(record_count), 0)"
                       " FROM archived_files),"
                       " (SELECT count(*) FROM avro_segments),"
                       " (SELECT count(*) FROM avro_files),"
                       " (SELECT count(*) FROM archive_jobs"
                       " WHERE state = 'pending'),"
                       " (SELECT coalesce(sum(row_count), 0)"
                       " FROM archive_jobs WHERE state = 'pending'),"
                       " l.owner, l.expires_at"
                       " FROM archive_state a, archive_lease l"
                       " WHERE a.id = 1 AND l.id = 1", "");
    if (rc != AVS_OK) {
        return (rc == AVS_DONE)
               ? avs_err_set(err, AVS_ESTORE, "archive: no state row")
               : rc;
    }

    wrc = avs_json_raw(out, "{");
    if (wrc == AVS_OK) {
        wrc = avs_json_field_i64(out, "last_cycle_at",
                                 sqlite3_column_int64(stmt, 0));
    }
    if (wrc == AVS_OK) {
        wrc = avs_json_raw(out, ",\"last_cycle\":");
    }
    if (wrc == AVS_OK) {

        /* longer than avs_json_raw's format buffer */

        s = (const char *) sqlite3_column_text(stmt, 1);
        s = s ? s : "null";
        wrc = avs_buf_append(out, s, strlen(s));
    }
    if (wrc == AVS_OK) {
        wrc = avs_json_field_str(out, "last_error",
                                 (const char *) sqlite3_column_text(stmt, 2));
    }
    /* columns 3 to 11, in the order of the query */
    for (i = 0; wrc == AVS_OK && i < sizeof(counters) / sizeof(counters[0]);
         i++)
    {
        wrc = avs_json_field_i64(out, counters[i],
                                 sqlite3_column_int64(stmt, 3 + (int) i));
    }
    if (wrc == AVS_OK) {
        wrc = avs_json_raw(out, ",\"lease\":{");
    }
    if (wrc == AVS_OK) {
        wrc = avs_json_field_str(out, "owner",
                                 (const char *) sqlite3_column_text(stmt,
                                                                    12));
    }
    if (wrc == AVS_OK) {
        wrc = avs_json_field_i64(out, "expires_at",
                                 sqlite3_column_int64(stmt, 13));
    }
    if (wrc == AVS_OK) {
        wrc = avs_json_raw(out, "}");
    }

    sqlite3_finalize(stmt);

    if (wrc == AVS_OK) {
        rc = avs_archive_status_failing(db, out, &wrc, err);
        if (rc != AVS_OK) {
            return rc;
        }
    }

    if (wrc == AVS_OK) {
        wrc = avs_json_raw(out, "}");
    }

    if (wrc != AVS_OK) {
        return avs_err_set(err, wrc, "archive: cannot write the status");
    }

    return AVS_OK;
}


/*
 * "failing_jobs": the first AVS_ARCHIVE_STATUS_FAILING pending jobs that
 * failed at least once, oldest first, with their last error: which group
 * a store keeps refusing while the others are archived.  A failure to
 * write the JSON goes to *wrc, one of SQLite is returned.
 */
static avs_rc_t
avs_archive_status_failing(sqlite3 *db, avs_buf_t *out, avs_rc_t *wrc,
    avs_err_t *err)
{
    sqlite3_stmt  *stmt;
    avs_rc_t       rc, w;

    stmt = NULL;

    rc = avs_sql_query(db, &stmt, "failing jobs", err,
                       "SELECT key, table_name, period_tag, attempts,"
                       " last_error FROM archive_jobs"
                       " WHERE state = 'pending' AND attempts > 0"
                       " ORDER BY id LIMIT ?1", "i",
                       (int64_t) AVS_ARCHIVE_STATUS_FAILING);

    w = avs_json_raw(out, ",\"failing_jobs\":[");

    while (rc == AVS_OK && w == AVS_OK) {
        w = avs_json_raw(out, "{");
        if (w == AVS_OK) {
            w = avs_json_field_str(out, "key",
                                   (const char *) sqlite3_column_text(stmt,
                                                                      0));
        }
        if (w == AVS_OK) {
            w = avs_json_field_str(out, "table",
                                   (const char *) sqlite3_column_text(stmt,
                                                                      1));
        }
        if (w == AVS_OK) {
            w = avs_json_field_str(out, "period",
                                   (const char *) sqlite3_column_text(stmt,
                                                                      2));
        }
        if (w == AVS_OK) {
            w = avs_json_field_i64(out, "attempts",
                                   sqlite3_column_int64(stmt, 3));
        }
        if (w == AVS_OK) {
            w = avs_json_field_str(out, "last_error",
                                   (const char *) sqlite3_column_text(stmt,
                                                                      4));
        }
        if (w == AVS_OK) {
            w = avs_json_raw(out, "}");
        }

        rc = avs_sql_step(db, stmt, "failing jobs", err);
    }

    sqlite3_finalize(stmt);

    if (rc != AVS_OK && rc != AVS_DONE) {
        return rc;
    }

    if (w == AVS_OK) {
        w = avs_json_raw(out, "]");
    }

    *wrc = w;

    return AVS_OK;
}
