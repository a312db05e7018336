/*
 * The hot store on SQLite: opening and migrating the shared file, the
 * streams of (table, schema) with their process cache, the group commit of
 * uploads into buffer_logs, and the status counters.
 *
 * Every write and every checkpoint happens under the shared avs_lock_t and
 * inside BEGIN IMMEDIATE, so that no two connections of any process write or
 * checkpoint at the same moment (SQLite before 3.51.3 can corrupt a WAL file
 * when they do).  Checkpoints are SQLite's automatic ones, which run inside
 * a commit and so under the lock too, and avs_store_checkpoint's, which
 * takes the lock itself.
 *
 * With synchronous=full, SQLite itself runs with synchronous=NORMAL, which
 * writes a commit's WAL frames without waiting for the disk, and the WAL is
 * fsync'd by avs_store_sync after the lock is released, before the caller
 * hears that its commit returned: the next writer does its SQLite work
 * while this one waits for the disk, instead of waiting for the lock.
 *
 * The write connection is opened in SQLite's serialized mode (FULLMUTEX).
 * Pool threads take turns on it under the lock, so SQLite's own mutex is
 * never contended and costs next to nothing beside an fsync; it keeps the
 * connection safe on the one path that uses it without the lock (closing
 * when the lock cannot be had) and against any later caller that forgets
 * the lock.  The read connection serves the status only; it is guarded by a
 * mutex of the process and never checkpoints.  avs_store_read lends out the
 * connections of a small pool, opened when first needed, that never
 * checkpoint either; a long read (the archiver's) then holds one of them
 * and not the status.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* pthread_cond_clockwait */
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "avs_migrations.h"
#include "avs_sql.h"
#include "avs_store.h"


#define AVS_STORE_OPEN_TIMEOUT_MS   10000
#define AVS_STREAM_BUCKETS          1024
#define AVS_STREAM_MAX_ENTRIES      4096
#define AVS_STREAM_MAX_BYTES        (16 * 1024 * 1024)
#define AVS_STORE_READERS           4
#define AVS_STORE_CHECKPOINT_WAIT   500
#define AVS_STORE_CACHE_BULK        64


/* The prepared statements of the write connection, reused for its life. */
typedef enum {
    AVS_ST_BEGIN = 0,
    AVS_ST_COMMIT,
    AVS_ST_ROLLBACK,
    AVS_ST_SAVEPOINT,
    AVS_ST_RELEASE,
    AVS_ST_ROLLBACK_TO,
    AVS_ST_USED,
    AVS_ST_FIND_ROW,
    AVS_ST_INSERT_ROW,
    AVS_ST_INSERT_SCHEMA,
    AVS_ST_FIND_SCHEMA,
    AVS_ST_FIND_STREAM,
    AVS_ST_INSERT_STREAM,
    AVS_ST_N
} avs_stmt_id_t;


static const char  *avs_store_sql[AVS_ST_N] = {
    "BEGIN IMMEDIATE",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT avs_batch",
    "RELEASE avs_batch",
    "ROLLBACK TO avs_batch",

    "SELECT (SELECT page_count FROM pragma_page_count())"
    " - (SELECT freelist_count FROM pragma_freelist_count()),"
    " (SELECT page_size FROM pragma_page_size())",

    "SELECT id FROM buffer_logs"
    " WHERE dataset_id = ?1 AND table_name = ?2 AND content_hash = ?3",

    "INSERT INTO buffer_logs (dataset_id, table_name, period_tag, timestamp,"
    " data, uploaded_by, created_at, record_count, block_count,"
    " schema_fingerprint, stream_id, content_hash, data_size)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,"
    " length(?5))",

    "INSERT OR IGNORE INTO schemas"
    " (fingerprint, canonical_form, schema_json, created_at)"
    " VALUES (?1, ?2, ?3, ?4)",

    "SELECT canonical_form FROM schemas WHERE fingerprint = ?1",

    "SELECT id, codec, sync FROM streams"
    " WHERE table_name = ?1 AND schema_fingerprint = ?2",

    "INSERT INTO streams (table_name, schema_fingerprint, codec, sync,"
    " created_at) VALUES (?1, ?2, ?3, ?4, ?5)"
};


/*
 * One snapshot of the status counters: each count in its cheapest way (the
 * distinct datasets from the covering search index), one statement so that
 * all of them describe the same committed state.
 */
static const char  avs_store_status_sql[] =
    "SELECT b.n, b.bytes, b.records, b.oldest,"
    " (SELECT count(*) FROM (SELECT DISTINCT dataset_id FROM buffer_logs)),"
    " (SELECT count(*) FROM streams),"
    " (SELECT page_count FROM pragma_page_count())"
    " - (SELECT freelist_count FROM pragma_freelist_count()),"
    " (SELECT page_size FROM pragma_page_size())"
    " FROM (SELECT count(*) AS n, coalesce(sum(length(data)), 0) AS bytes,"
    " coalesce(sum(record_count), 0) AS records,"
    " coalesce(min(created_at), 0) AS oldest FROM buffer_logs) AS b";


typedef struct avs_stream_entry_s  avs_stream_entry_t;

typedef struct {
    avs_batch_t  **batches;
    size_t         n;
} avs_store_given_t;

struct avs_stream_entry_s {
    avs_stream_entry_t  *next;
    uint32_t             hash;
    avs_stream_t         stream;
    char                 fp_hex[17];
    char                *table;
    char                *canonical;         /* compared on every hit */
    size_t               canonical_len;
};


struct avs_store_s {
    sqlite3             *db;                /* writes, under lock */
    sqlite3             *rdb;               /* status, under rmutex */
    sqlite3_stmt        *stmt[AVS_ST_N];
    sqlite3_stmt        *status_stmt;
    char                *path;
    int                  wal_fd;            /* synchronous=full, else -1 */
    int                  file_lock_fd;      /* <path>.lock, flock()ed */
    avs_lock_t          *lock;
    avs_lock_t          *own_lock;          /* when conf->lock was NULL */
    unsigned             busy_timeout_ms;
    unsigned             open_wait_ms;
    uint64_t             max_size;

    pthread_mutex_t      rmutex;
    pthread_mutex_t      cache_mutex;
    pthread_mutex_t      pool_mutex;
    pthread_cond_t       pool_cond;
    unsigned             mutexes;           /* how many are initialized */
    sqlite3             *readers[AVS_STORE_READERS];   /* avs_store_read */
    unsigned             readers_busy;      /* bit i: readers[i] lent */
    avs_stream_entry_t  *buckets[AVS_STREAM_BUCKETS];
    size_t               cache_entries;
    size_t               cache_bytes;
};


static int64_t avs_store_now_ms(void);
static int64_t avs_store_clock_ms(clockid_t clock);
static avs_rc_t avs_store_rc(int src);
static avs_rc_t avs_store_fail(avs_store_t *st, sqlite3 *db, int src,
    const char *what, avs_err_t *err);
static void avs_store_sqlite_config(void);
static avs_rc_t avs_store_open_db(avs_store_t *st, sqlite3 **db, int flags,
    avs_err_t *err);
static avs_rc_t avs_store_pragma(avs_store_t *st, const char *sql,
    const char *want, avs_err_t *err);
static avs_rc_t avs_store_setup(avs_store_t *st, avs_err_t *err);
static int avs_store_latest_version(void);
static avs_rc_t avs_store_migrate_locked(avs_store_t *st, avs_err_t *err);
static avs_rc_t avs_store_open_wal(avs_store_t *st, avs_err_t *err);
static avs_rc_t avs_store_sync(avs_store_t *st, avs_err_t *err);
static avs_rc_t avs_store_prepare(avs_store_t *st, avs_err_t *err);
static void avs_store_free(avs_store_t *st, int wait);
static avs_rc_t avs_store_lock(avs_store_t *st, unsigned timeout_ms,
    avs_err_t *err);
static void avs_store_unlock(avs_store_t *st);
static avs_rc_t avs_store_open_file_lock(avs_store_t *st, avs_err_t *err);
static avs_rc_t avs_store_file_lock(avs_store_t *st, unsigned timeout_ms,
    avs_err_t *err);
static int avs_store_step(avs_store_t *st, avs_stmt_id_t id);
static void avs_store_reset(sqlite3_stmt *stmt);
static avs_rc_t avs_store_begin(avs_store_t *st, avs_err_t *err);
static void avs_store_rollback(avs_store_t *st);
static avs_rc_t avs_store_used(avs_store_t *st, uint64_t *used,
    avs_err_t *err);
static avs_rc_t avs_store_random(uint8_t *p, size_t n, avs_err_t *err);
static uint32_t avs_stream_hash(const char *table, const char *fp_hex);
static avs_rc_t avs_stream_cached(avs_store_t *st, const char *table,
    const avs_schema_t *schema, uint32_t hash, avs_stream_t *out,
    avs_err_t *err);
static void avs_stream_remember(avs_store_t *st, const char *table,
    const avs_schema_t *schema, uint32_t hash, const avs_stream_t *stream);
static void avs_stream_forget_all(avs_store_t *st);
static avs_rc_t avs_stream_get_locked(avs_store_t *st, const char *table,
    const avs_schema_t *schema, avs_codec_t codec, avs_stream_t *out,
    avs_err_t *err);
static avs_rc_t avs_stream_find(avs_store_t *st, const char *table,
    const char *fp_hex, avs_stream_t *out, int *found, avs_err_t *err);
static avs_rc_t avs_row_check(const avs_row_t *row, size_t i,
    avs_err_t *err);
static int avs_row_find(avs_store_t *st, avs_row_t *row);
static int avs_row_insert(avs_store_t *st, const avs_row_t *row,
    int64_t now);
static avs_rc_t avs_row_store(avs_store_t *st, avs_row_t *row, size_t i,
    int64_t now, avs_err_t *err);
static size_t avs_store_give(void *arg, avs_batch_t ***batches);
static avs_rc_t avs_batch_store(avs_store_t *st, avs_batch_t *b,
    int64_t now, int *txn_lost);
static void avs_batches_fail(avs_batch_t **batches, size_t n,
    const avs_err_t *err);
static avs_rc_t avs_store_reader_get(avs_store_t *st, unsigned *slot,
    avs_err_t *err);
static void avs_store_reader_put(avs_store_t *st, unsigned slot);


/* Wall-clock milliseconds, the unit of every *_at column. */
static int64_t
avs_store_now_ms(void)
{
    return avs_store_clock_ms(CLOCK_REALTIME);
}


/* Milliseconds of a clock: the monotonic one measures waits. */
static int64_t
avs_store_clock_ms(clockid_t clock)
{
    struct timespec  ts;

    clock_gettime(clock, &ts);

    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


/*
 * The result code that tells the caller what to do about a SQLite failure:
 * wait and retry (busy), free space (full), or treat the store as down.
 */
static avs_rc_t
avs_store_rc(int src)
{
    switch (src & 0xff) {
    case SQLITE_OK:
        return AVS_OK;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return AVS_EBUSY;
    case SQLITE_FULL:
        return AVS_EFULL;
    case SQLITE_NOMEM:
        return AVS_ENOMEM;
    default:
        return AVS_ESTORE;
    }
}


/*
 * Records a SQLite failure with SQLite's own words.  The path is named only
 * when opening and closing: those messages go to the error log, while the
 * others can end up in a client's JSON body.
 */
static avs_rc_t
avs_store_fail(avs_store_t *st, sqlite3 *db, int src, const char *what,
    avs_err_t *err)
{
    const char  *msg;

    msg = (db != NULL) ? sqlite3_errmsg(db) : sqlite3_errstr(src);

    if (st != NULL) {
        return avs_err_set(err, avs_store_rc(src), "hot store %s: %s%s%s",
                           st->path, what, *what ? ": " : "", msg);
    }

    return avs_err_set(err, avs_store_rc(src), "hot store: %s%s%s",
                       what, *what ? ": " : "", msg);
}


/* The user_version every migration of this module leads to. */
static int
avs_store_latest_version(void)
{
    int                     latest;
    const avs_migration_t  *m;

    latest = 0;

    for (m = avs_migrations; m->name != NULL; m++) {
        latest = m->version;
    }

    return latest;
}


int
avs_store_is_current(const char *path)
{
    int             fd;
    ssize_t         n;
    uint32_t        version;
    unsigned char   hdr[100];

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        return 0;
    }

    n = pread(fd, hdr, sizeof(hdr), 0);
    (void) close(fd);

    if (n != (ssize_t) sizeof(hdr)
        || memcmp(hdr, "SQLite format 3", 16) != 0)
    {
        return 0;
    }

    /* user_version: 4 bytes, big-endian, at offset 60 of the header */
    version = ((uint32_t) hdr[60] << 24) | ((uint32_t) hdr[61] << 16)
              | ((uint32_t) hdr[62] << 8) | (uint32_t) hdr[63];

    return version != 0
           && version == (uint32_t) avs_store_latest_version();
}


avs_rc_t
avs_store_open(const avs_store_conf_t *conf, avs_store_t **out,
    avs_err_t *err)
{
    avs_store_t  *st;
    avs_rc_t      rc;

    *out = NULL;

    if (conf == NULL || conf->path == NULL || conf->path[0] == '\0') {
        return avs_err_set(err, AVS_EINTERNAL, "hot store: no path");
    }

    st = calloc(1, sizeof(avs_store_t));
    if (st == NULL) {
        return avs_err_set(err, AVS_ENOMEM, "hot store: out of memory");
    }

    st->busy_timeout_ms = conf->busy_timeout_ms;
    st->open_wait_ms = conf->open_wait_ms;
    st->max_size = conf->max_size;
    st->wal_fd = -1;
    st->file_lock_fd = -1;

    st->path = strdup(conf->path);
    if (st->path == NULL) {
        free(st);
        return avs_err_set(err, AVS_ENOMEM, "hot store: out of memory");
    }

    if (pthread_mutex_init(&st->rmutex, NULL) != 0) {
        rc = avs_err_set(err, AVS_EINTERNAL, "hot store: mutex init failed");
        goto failed;
    }

    st->mutexes++;

    if (pthread_mutex_init(&st->cache_mutex, NULL) != 0) {
        rc = avs_err_set(err, AVS_EINTERNAL, "hot store: mutex init failed");
        goto failed;
    }

    st->mutexes++;

    if (pthread_mutex_init(&st->pool_mutex, NULL) != 0) {
        rc = avs_err_set(err, AVS_EINTERNAL, "hot store: mutex init failed");
        goto failed;
    }

    st->mutexes++;

    if (pthread_cond_init(&st->pool_cond, NULL) != 0) {
        rc = avs_err_set(err, AVS_EINTERNAL, "hot store: cond init failed");
        goto failed;
    }

    st->mutexes++;

    if (conf->lock != NULL) {
        st->lock = conf->lock;

    } else {
        st->own_lock = calloc(1, sizeof(avs_lock_t));
        if (st->own_lock == NULL) {
            rc = avs_err_set(err, AVS_ENOMEM, "hot store: out of memory");
            goto failed;
        }

        st->lock = st->own_lock;
    }

    rc = avs_lock_init(st->lock);
    if (rc != AVS_OK) {
        avs_err_set(err, rc, "hot store %s: lock init failed", st->path);
        goto failed;
    }

    rc = avs_store_open_db(st, &st->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, err);
    if (rc != AVS_OK) {
        goto failed;
    }

    rc = avs_store_open_file_lock(st, err);
    if (rc != AVS_OK) {
        goto failed;
    }

    rc = avs_store_setup(st, err);
    if (rc != AVS_OK) {
        goto failed;
    }

    if (conf->synchronous != AVS_SYNC_NORMAL) {
        rc = avs_store_open_wal(st, err);
        if (rc != AVS_OK) {
            goto failed;
        }
    }

    rc = avs_store_prepare(st, err);
    if (rc != AVS_OK) {
        goto failed;
    }

    *out = st;

    return AVS_OK;

failed:

    avs_store_free(st, 0);

    return rc;
}


/*
 * SQLite's settings for the whole process, made before its first use
 * (later, sqlite3_config refuses and the defaults stay).  Each connection
 * gets its page cache in one piece of AVS_STORE_CACHE_BULK pages, which it
 * reuses: SQLite empties a connection's cache whenever another process
 * committed, and with pages allocated one by one, every commit of the
 * other worker made this one free its pages and fault fresh ones in
 * (glibc gives a pool thread's freed memory back to the kernel).
 */
static void
avs_store_sqlite_config(void)
{
    (void) sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0,
                          AVS_STORE_CACHE_BULK);
}


/*
 * Opens one connection with the settings both connections share.  A
 * connection that failed to open still has to be closed.
 */
static avs_rc_t
avs_store_open_db(avs_store_t *st, sqlite3 **db, int flags, avs_err_t *err)
{
    static pthread_once_t  once = PTHREAD_ONCE_INIT;

    avs_rc_t  rc;
    int       src;

    (void) pthread_once(&once, avs_store_sqlite_config);

    src = sqlite3_open_v2(st->path, db, flags | SQLITE_OPEN_FULLMUTEX, NULL);

    if (src != SQLITE_OK) {
        rc = avs_store_fail(st, *db, src, "", err);
        (void) sqlite3_close_v2(*db);
        *db = NULL;

        return rc;
    }

    src = sqlite3_extended_result_codes(*db, 1);
    if (src == SQLITE_OK) {
        src = sqlite3_busy_timeout(*db, (int) st->busy_timeout_ms);
    }

    if (src != SQLITE_OK) {
        return avs_store_fail(st, *db, src, "", err);
    }

    return AVS_OK;
}


/*
 * Runs a pragma on the write connection; when want is given, the pragma's
 * answer must be that (journal_mode answers with the mode it got, which is
 * not an error when WAL is refused).
 */
static avs_rc_t
avs_store_pragma(avs_store_t *st, const char *sql, const char *want,
    avs_err_t *err)
{
    sqlite3_stmt         *stmt;
    const unsigned char  *got;
    avs_rc_t              rc;
    int                   src;

    src = sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL);
    if (src != SQLITE_OK) {
        return avs_store_fail(st, st->db, src, sql, err);
    }

    rc = AVS_OK;

    while ((src = sqlite3_step(stmt)) == SQLITE_ROW) {

        if (want == NULL) {
            continue;
        }

        got = sqlite3_column_text(stmt, 0);

        if (got == NULL || sqlite3_stricmp((const char *) got, want) != 0) {
            rc = avs_err_set(err, AVS_ESTORE, "hot store %s: %s: got \"%s\"",
                             st->path, sql,
                             got ? (const char *) got : "nothing");
        }

        want = NULL;
    }

    if (src != SQLITE_DONE) {
        rc = avs_store_fail(st, st->db, src, sql, err);
    }

    sqlite3_finalize(stmt);

    return rc;
}


/*
 * Sets the pragmas, switches the file to WAL and applies the pending
 * migrations, all under the lock: the first statement that reads the file
 * creates it when it is new or recovers its WAL after a crash, and when
 * several workers start at once only one of them migrates.  Sibling workers
 * may be migrating the same file, so the wait is longer than a write's,
 * unless the caller chose its own.
 */
static avs_rc_t
avs_store_setup(avs_store_t *st, avs_err_t *err)
{
    unsigned  timeout;
    avs_rc_t  rc;

    timeout = st->busy_timeout_ms;

    if (timeout < AVS_STORE_OPEN_TIMEOUT_MS) {
        timeout = AVS_STORE_OPEN_TIMEOUT_MS;
    }

    if (st->open_wait_ms != 0) {
        timeout = st->open_wait_ms;
    }

    rc = avs_store_lock(st, timeout, err);
    if (rc != AVS_OK) {
        return rc;
    }

    /*
     * Uploads are blobs of a few kilobytes: large pages hold several of them
     * where 4 KiB pages would spill each into overflow pages, so every
     * commit writes fewer WAL frames.  Only a new, empty file takes it.
     */
    rc = avs_store_pragma(st, "PRAGMA page_size = 16384", NULL, err);

    if (rc == AVS_OK) {
        rc = avs_store_pragma(st, "PRAGMA journal_mode = WAL", "wal", err);
    }

    /* synchronous=full is avs_store_sync's fsync after the lock is let go */

    if (rc == AVS_OK) {
        rc = avs_store_pragma(st, "PRAGMA synchronous = NORMAL", NULL, err);
    }

    if (rc == AVS_OK) {
        rc = avs_store_pragma(st, "PRAGMA foreign_keys = ON", NULL, err);
    }

    /*
     * Debian builds SQLite to overwrite deleted content with zeros; the
     * archiver deletes every hot row it archived, and the rows it deletes
     * are kept in the cold store anyway, so that would only double the
     * writes of a cycle.
     */
    if (rc == AVS_OK) {
        rc = avs_store_pragma(st, "PRAGMA secure_delete = OFF", NULL, err);
    }

    if (rc == AVS_OK) {
        rc = avs_store_migrate_locked(st, err);
    }

    avs_store_unlock(st);

    return rc;
}


/*
 * Applies each migration newer than user_version in its own transaction
 * that also sets user_version, so a migration is applied whole or not at
 * all.  user_version is read inside the transaction: another process may
 * have migrated since this one looked.  A file newer than this module is
 * refused rather than written with assumptions that no longer hold.
 */
static avs_rc_t
avs_store_migrate_locked(avs_store_t *st, avs_err_t *err)
{
    const avs_migration_t  *m;
    sqlite3_stmt           *stmt;
    avs_rc_t                rc;
    char                   *errmsg;
    char                    sql[64];
    int                     src, version, latest, applied;

    latest = avs_store_latest_version();
    applied = 0;

    for (m = avs_migrations; m->name != NULL; m++) {

        src = sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (src != SQLITE_OK) {
            return avs_store_fail(st, st->db, src, "BEGIN IMMEDIATE", err);
        }

        src = sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &stmt,
                                 NULL);
        if (src != SQLITE_OK) {
            rc = avs_store_fail(st, st->db, src, "user_version", err);
            goto rollback;
        }

        src = sqlite3_step(stmt);
        version = (src == SQLITE_ROW) ? sqlite3_column_int(stmt, 0) : 0;

        if (src != SQLITE_ROW) {
            rc = avs_store_fail(st, st->db, src, "user_version", err);
            sqlite3_finalize(stmt);
            goto rollback;
        }

        sqlite3_finalize(stmt);

        if (version > latest) {
            rc = avs_err_set(err, AVS_ESTORE,
                             "hot store %s: schema version %d is newer than "
                             "this module's %d (roll the file back, see "
                             "sql/, or upgrade the module)",
                             st->path, version, latest);
            goto rollback;
        }

        if (m->version <= version) {
            src = sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
            if (src != SQLITE_OK) {
                return avs_store_fail(st, st->db, src, "ROLLBACK", err);
            }

            continue;
        }

        errmsg = NULL;
        src = sqlite3_exec(st->db, m->sql, NULL, NULL, &errmsg);

        if (src != SQLITE_OK) {
            rc = avs_err_set(err, avs_store_rc(src),
                             "hot store %s: migration %s: %s", st->path,
                             m->name, errmsg ? errmsg : sqlite3_errstr(src));
            sqlite3_free(errmsg);
            goto rollback;
        }

        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", m->version);

        src = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
        if (src == SQLITE_OK) {
            src = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
        }

        if (src != SQLITE_OK) {
            rc = avs_store_fail(st, st->db, src, m->name, err);
            goto rollback;
        }

        applied = 1;
    }

    /*
     * The file's own header then says the store is current, which lets
     * the workers of a reload wait only briefly for the lock
     * (avs_store_is_current); the next checkpoint would, much later.
     */
    if (applied) {
        (void) sqlite3_wal_checkpoint_v2(st->db, NULL,
                                         SQLITE_CHECKPOINT_PASSIVE, NULL,
                                         NULL);
    }

    return AVS_OK;

rollback:

    /* the error to report is the first one; a failed ROLLBACK leaves the
     * transaction to be rolled back when the connection closes */

    if (!sqlite3_get_autocommit(st->db)) {
        (void) sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    }

    return rc;
}


/*
 * Opens the WAL file for avs_store_sync, and makes its directory entry
 * durable, which SQLite leaves to its first fsync of the WAL (a checkpoint,
 * with synchronous=NORMAL).  The descriptor stays valid for the life of
 * the store: SQLite deletes the WAL only when the last connection to the
 * database closes, and the write connection is open until the store is
 * closed.
 */
static avs_rc_t
avs_store_open_wal(avs_store_t *st, avs_err_t *err)
{
    size_t       len;
    char        *dir_name, *slash;
    const char  *wal;
    int          dir, e;

    /* SQLite's own name: it follows symbolic links to the real file */
    wal = sqlite3_filename_wal(sqlite3_db_filename(st->db, "main"));

    st->wal_fd = open(wal, O_RDONLY | O_CLOEXEC);
    if (st->wal_fd == -1) {
        e = errno;
        goto failed;
    }

    len = strlen(wal);

    dir_name = malloc(len + 2);
    if (dir_name == NULL) {
        return avs_err_set(err, AVS_ENOMEM, "hot store: out of memory");
    }

    memcpy(dir_name, wal, len + 1);
    slash = strrchr(dir_name, '/');

    if (slash == NULL) {
        memcpy(dir_name, ".", 2);

    } else {
        slash[slash == dir_name] = '\0';
    }

    dir = open(dir_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    e = errno;

    if (dir != -1) {
        e = (fsync(dir) == 0) ? 0 : errno;
        close(dir);
    }

    free(dir_name);

    if (dir != -1 && e == 0) {
        return AVS_OK;
    }

failed:

    return avs_err_set(err, AVS_ESTORE, "hot store %s: WAL file: %s",
                       st->path, strerror(e));
}


/*
 * Makes every commit of this process so far durable, for synchronous=full:
 * fdatasync of the WAL flushes all the frames written before it, whichever
 * connection or process wrote them.  It runs after the write lock was
 * released, so the next writer goes on meanwhile; a checkpoint that moves
 * frames into the database file syncs the WAL before and the database file
 * after, as SQLite does with synchronous=NORMAL, so frames a checkpoint
 * recycles were durable already.
 *
 * A failure is final for every process that shares the lock: the kernel
 * reports a failed write-back once, so a later fsync succeeds although
 * the frames it lost are not on disk, and after a crash SQLite's recovery
 * of the WAL stops at the first of them, taking every later commit along.
 */
static avs_rc_t
avs_store_sync(avs_store_t *st, avs_err_t *err)
{
    if (st->wal_fd == -1 || fdatasync(st->wal_fd) == 0) {
        return AVS_OK;
    }

    __atomic_store_n(&st->lock->sync_failed, 1, __ATOMIC_RELAXED);

    return avs_err_set(err, AVS_ESTORE, "hot store: fsync of the WAL: %s; "
                       "writes are refused until nginx restarts",
                       strerror(errno));
}


/*
 * Prepares the write connection's statements once, and opens the read
 * connection (after the migrations, so that it finds the file in WAL mode
 * with its tables).
 */
static avs_rc_t
avs_store_prepare(avs_store_t *st, avs_err_t *err)
{
    avs_rc_t  rc;
    int       i, src;

    for (i = 0; i < AVS_ST_N; i++) {
        src = sqlite3_prepare_v3(st->db, avs_store_sql[i], -1,
                                 SQLITE_PREPARE_PERSISTENT, &st->stmt[i],
                                 NULL);
        if (src != SQLITE_OK) {
            return avs_store_fail(st, st->db, src, avs_store_sql[i], err);
        }
    }

    rc = avs_store_open_db(st, &st->rdb, SQLITE_OPEN_READONLY, err);
    if (rc != AVS_OK) {
        return rc;
    }

    /* only writers under the lock may checkpoint, and this one is not */

    src = sqlite3_db_config(st->rdb, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1,
                            NULL);
    if (src == SQLITE_OK) {
        src = sqlite3_prepare_v3(st->rdb, avs_store_status_sql, -1,
                                 SQLITE_PREPARE_PERSISTENT, &st->status_stmt,
                                 NULL);
    }

    if (src != SQLITE_OK) {
        return avs_store_fail(st, st->rdb, src, "status", err);
    }

    return AVS_OK;
}


void
avs_store_close(avs_store_t *st)
{
    if (st != NULL) {
        avs_store_free(st, 1);
    }
}


/*
 * Closing the write connection may checkpoint and delete the WAL, so it
 * happens under the lock.  Without the lock (a wedged sibling, or a failed
 * open that need not wait for it) the connection closes without
 * checkpointing: leaving the WAL to the next writer is safe, checkpointing
 * beside another writer is not.
 */
static void
avs_store_free(avs_store_t *st, int wait)
{
    avs_rc_t  rc;
    unsigned  r;
    int       i, locked;

    locked = 0;

    if (wait && st->lock != NULL && st->lock->ready == AVS_LOCK_READY
        && st->db != NULL)
    {
        rc = avs_store_lock(st,
                            st->busy_timeout_ms < AVS_STORE_OPEN_TIMEOUT_MS
                            ? AVS_STORE_OPEN_TIMEOUT_MS
                            : st->busy_timeout_ms, NULL);
        locked = (rc == AVS_OK);
    }

    if (st->rdb != NULL) {
        sqlite3_finalize(st->status_stmt);
        avs_sql_finalize_all(st->rdb);
        (void) sqlite3_close_v2(st->rdb);
    }

    for (r = 0; r < AVS_STORE_READERS; r++) {
        /* the read path keeps its prepared statements on its readers */
        avs_sql_finalize_all(st->readers[r]);
        (void) sqlite3_close_v2(st->readers[r]);
    }

    if (st->db != NULL) {
        for (i = 0; i < AVS_ST_N; i++) {
            sqlite3_finalize(st->stmt[i]);
        }

        /* and those of avs_sql_cached (stream headers) */
        avs_sql_finalize_all(st->db);

        if (!locked) {
            sqlite3_db_config(st->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1,
                              NULL);
        }

        (void) sqlite3_close_v2(st->db);
    }

    if (locked) {
        avs_store_unlock(st);
    }

    if (st->wal_fd != -1) {
        close(st->wal_fd);
    }

    if (st->file_lock_fd != -1) {
        close(st->file_lock_fd);
    }

    if (st->own_lock != NULL) {
        if (st->own_lock->ready == AVS_LOCK_READY) {
            pthread_mutex_destroy(&st->own_lock->mutex);
        }

        free(st->own_lock);
    }

    if (st->mutexes > 3) {
        pthread_cond_destroy(&st->pool_cond);
    }

    if (st->mutexes > 2) {
        pthread_mutex_destroy(&st->pool_mutex);
    }

    if (st->mutexes > 1) {
        avs_stream_forget_all(st);
        pthread_mutex_destroy(&st->cache_mutex);
    }

    if (st->mutexes > 0) {
        pthread_mutex_destroy(&st->rmutex);
    }

    free(st->path);
    free(st);
}


/*
 * Takes the write lock.  What is left of timeout_ms after the wait becomes
 * SQLite's busy timeout, so that a caller waits at most about timeout_ms in
 * all (SQLite is busy only when something outside this lock holds the file,
 * such as an operator's sqlite3 shell).
 */
static avs_rc_t
avs_store_lock(avs_store_t *st, unsigned timeout_ms, avs_err_t *err)
{
    unsigned  left;
    avs_rc_t  rc;
    int64_t   start, spent;

    start = avs_store_clock_ms(CLOCK_MONOTONIC);

    rc = avs_lock_acquire(st->lock, timeout_ms, err);
    if (rc != AVS_OK) {
        return rc;
    }

    if (__atomic_load_n(&st->lock->sync_failed, __ATOMIC_RELAXED)) {
        avs_lock_release(st->lock);
        return avs_err_set(err, AVS_ESTORE,
                           "hot store: writes refused since an fsync of the "
                           "WAL failed; check the disk, then restart nginx");
    }

    spent = avs_store_clock_ms(CLOCK_MONOTONIC) - start;
    left = (spent < (int64_t) timeout_ms) ? timeout_ms - (unsigned) spent : 0;

    rc = avs_store_file_lock(st, left, err);
    if (rc != AVS_OK) {
        avs_lock_release(st->lock);
        return rc;
    }

    spent = avs_store_clock_ms(CLOCK_MONOTONIC) - start;
    left = (spent < (int64_t) timeout_ms) ? timeout_ms - (unsigned) spent : 0;

    /* 0 would remove the handler: give SQLite at least one try and a wait */

    sqlite3_busy_timeout(st->db, left ? (int) left : 1);

    return AVS_OK;
}


/* Lets the next writer of any process in. */
static void
avs_store_unlock(avs_store_t *st)
{
    (void) flock(st->file_lock_fd, LOCK_UN);
    avs_lock_release(st->lock);
}


/*
 * The lock in shared memory is one nginx's: a new master started by a
 * binary upgrade makes a zone of its own, and its workers write beside
 * the old ones.  A lock on a file next to the store keeps the two apart.
 */
static avs_rc_t
avs_store_open_file_lock(avs_store_t *st, avs_err_t *err)
{
    size_t  len;
    char   *name;

    len = strlen(st->path);

    name = malloc(len + sizeof(".lock"));
    if (name == NULL) {
        return avs_err_set(err, AVS_ENOMEM, "hot store: out of memory");
    }

    memcpy(name, st->path, len);
    memcpy(name + len, ".lock", sizeof(".lock"));

    st->file_lock_fd = open(name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

    if (st->file_lock_fd == -1) {
        avs_err_set(err, AVS_ESTORE, "hot store %s: %s", name,
                    strerror(errno));
        free(name);
        return AVS_ESTORE;
    }

    free(name);

    return AVS_OK;
}


/*
 * Takes the file lock within timeout_ms.  Only another nginx can hold it,
 * for one of its writes; flock() cannot wait with a limit, so it is tried
 * every millisecond.
 */
static avs_rc_t
avs_store_file_lock(avs_store_t *st, unsigned timeout_ms, avs_err_t *err)
{
    unsigned         waited;
    struct timespec  ms = { 0, 1000000 };

    for (waited = 0; /* void */; waited++) {
        if (flock(st->file_lock_fd, LOCK_EX | LOCK_NB) == 0) {
            return AVS_OK;
        }

        if (errno != EWOULDBLOCK && errno != EINTR) {
            return avs_err_set(err, AVS_ESTORE, "hot store %s.lock: %s",
                               st->path, strerror(errno));
        }

        if (waited >= timeout_ms) {
            return avs_err_set(err, AVS_EBUSY,
                               "hot store busy: %s.lock held by another "
                               "nginx for %u ms", st->path, timeout_ms);
        }

        nanosleep(&ms, NULL);
    }
}


/*
 * Steps a statement that returns no rows, and leaves it reset for its next
 * use.  The message of a failure stays available from sqlite3_errmsg.
 */
static int
avs_store_step(avs_store_t *st, avs_stmt_id_t id)
{
    int  src;

    src = sqlite3_step(st->stmt[id]);
    sqlite3_reset(st->stmt[id]);

    return (src == SQLITE_DONE || src == SQLITE_ROW) ? SQLITE_OK : src;
}


/*
 * Resets a statement and drops its bindings, which may point into a
 * caller's memory that is about to go away.
 */
static void
avs_store_reset(sqlite3_stmt *stmt)
{
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
}


/*
 * Opens a write transaction.  IMMEDIATE takes SQLite's write lock at once,
 * so a file held by someone outside the lock fails here, with nothing done,
 * rather than halfway through a group.
 */
static avs_rc_t
avs_store_begin(avs_store_t *st, avs_err_t *err)
{
    int  src;

    /* a ROLLBACK that failed must not leave every later write refused */
    avs_store_rollback(st);

    src = avs_store_step(st, AVS_ST_BEGIN);
    if (src != SQLITE_OK) {
        return avs_store_fail(NULL, st->db, src, "begin", err);
    }

    return AVS_OK;
}


/*
 * Rolls back the open transaction, if SQLite has not already done so by
 * itself (it does after some I/O errors and SQLITE_FULL).
 */
static void
avs_store_rollback(avs_store_t *st)
{
    if (!sqlite3_get_autocommit(st->db)) {
        (void) avs_store_step(st, AVS_ST_ROLLBACK);
    }
}


/* Bytes of the file in use: the pages that are not on the free list. */
static avs_rc_t
avs_store_used(avs_store_t *st, uint64_t *used, avs_err_t *err)
{
    sqlite3_stmt  *stmt;
    sqlite3_int64  pages, size;
    avs_rc_t       rc;
    int            src;

    stmt = st->stmt[AVS_ST_USED];

    src = sqlite3_step(stmt);

    if (src != SQLITE_ROW) {
        rc = avs_store_fail(NULL, st->db, src, "page count", err);
        sqlite3_reset(stmt);
        return rc;
    }

    pages = sqlite3_column_int64(stmt, 0);
    size = sqlite3_column_int64(stmt, 1);
    sqlite3_reset(stmt);

    *used = (pages > 0 && size > 0) ? (uint64_t) pages * (uint64_t) size : 0;

    return AVS_OK;
}


/*
 * Fills p with bytes from the kernel's random generator: a sync marker
 * must not be guessable, or an upload could forge block boundaries.
 */
static avs_rc_t
avs_store_random(uint8_t *p, size_t n, avs_err_t *err)
{
    ssize_t  got;
    int      fd;

    while (n > 0) {
        got = getrandom(p, n, 0);

        if (got < 0 && errno == EINTR) {
            continue;
        }

        if (got <= 0) {
            break;
        }

        p += got;
        n -= (size_t) got;
    }

    if (n == 0) {
        return AVS_OK;
    }

    /* kernels before 3.17 have no getrandom() */

    fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        return avs_err_set(err, AVS_EINTERNAL,
                           "hot store: no random bytes: %s", strerror(errno));
    }

    while (n > 0) {
        got = read(fd, p, n);

        if (got < 0 && errno == EINTR) {
            continue;
        }

        if (got <= 0) {
            close(fd);
            return avs_err_set(err, AVS_EINTERNAL,
                               "hot store: no random bytes: %s",
                               got ? strerror(errno) : "end of file");
        }

        p += got;
        n -= (size_t) got;
    }

    close(fd);

    return AVS_OK;
}


/* FNV-1a over the table and the fingerprint, for the stream cache. */
static uint32_t
avs_stream_hash(const char *table, const char *fp_hex)
{
    uint32_t  h;

    h = 2166136261u;

    while (*table) {
        h = (h ^ (unsigned char) *table++) * 16777619u;
    }

    h = (h ^ 0xff) * 16777619u;

    while (*fp_hex) {
        h = (h ^ (unsigned char) *fp_hex++) * 16777619u;
    }

    return h;
}


avs_rc_t
avs_store_stream(avs_store_t *st, const char *table,
    const avs_schema_t *schema, avs_codec_t codec, avs_stream_t *out,
    avs_err_t *err)
{
    uint32_t  hash;
    avs_rc_t  rc;

    if (table == NULL || schema == NULL || schema->canonical == NULL
        || schema->json == NULL
        || strnlen(schema->fp_hex, sizeof(schema->fp_hex)) != 16)
    {
        return avs_err_set(err, AVS_EINTERNAL,
                           "hot store: stream of an incomplete schema");
    }

    if ((unsigned) codec > AVS_CODEC_ZSTD) {
        return avs_err_set(err, AVS_EINTERNAL,
                           "hot store: stream with codec %d", (int) codec);
    }

    hash = avs_stream_hash(table, schema->fp_hex);

    rc = avs_stream_cached(st, table, schema, hash, out, err);
    if (rc != AVS_DONE) {
        return rc;
    }

    rc = avs_store_lock(st, st->busy_timeout_ms, err);
    if (rc != AVS_OK) {
        return rc;
    }

    rc = avs_stream_get_locked(st, table, schema, codec, out, err);

    avs_store_unlock(st);

    if (rc == AVS_OK) {
        rc = avs_store_sync(st, err);
    }

    if (rc == AVS_OK) {
        avs_stream_remember(st, table, schema, hash, out);
    }

    return rc;
}


avs_rc_t
avs_store_stream_cached(avs_store_t *st, const char *table,
    const avs_schema_t *schema, avs_stream_t *out, avs_err_t *err)
{
    return avs_stream_cached(st, table, schema,
                             avs_stream_hash(table, schema->fp_hex), out,
                             err);
}


/*
 * Looks the stream up in the process cache: AVS_OK when found, AVS_DONE on
 * a miss.  An entry with the same fingerprint but another canonical form is
 * a fingerprint collision, refused at once.
 */
static avs_rc_t
avs_stream_cached(avs_store_t *st, const char *table,
    const avs_schema_t *schema, uint32_t hash, avs_stream_t *out,
    avs_err_t *err)
{
    avs_stream_entry_t  *e;
    avs_rc_t             rc;
    size_t               len;

    len = schema->canonical_len;
    rc = AVS_DONE;

    pthread_mutex_lock(&st->cache_mutex);

    for (e = st->buckets[hash % AVS_STREAM_BUCKETS]; e; e = e->next) {

        if (e->hash != hash || strcmp(e->fp_hex, schema->fp_hex) != 0
            || strcmp(e->table, table) != 0)
        {
            continue;
        }

        if (e->canonical_len != len
            || memcmp(e->canonical, schema->canonical, len) != 0)
        {
            rc = avs_err_set(err, AVS_EREJECTED,
                             "schema fingerprint %s collides with another "
                             "stored schema", schema->fp_hex);
            break;
        }

        *out = e->stream;
        rc = AVS_OK;
        break;
    }

    pthread_mutex_unlock(&st->cache_mutex);

    return rc;
}


/*
 * Caches a stream for the life of the process: streams never change once
 * created.  The cache is bounded in entries and bytes; when full it is
 * emptied and refills with the streams in use, which only costs a few
 * lookups.  Failing to cache is not an error.
 */
static void
avs_stream_remember(avs_store_t *st, const char *table,
    const avs_schema_t *schema, uint32_t hash, const avs_stream_t *stream)
{
    avs_stream_entry_t  *e, *old, **bucket;
    size_t               tlen, clen, size;

    tlen = strlen(table);
    clen = schema->canonical_len;
    size = sizeof(avs_stream_entry_t) + tlen + 1 + clen + 1;

    e = malloc(size);
    if (e == NULL) {
        return;
    }

    e->hash = hash;
    e->stream = *stream;
    memcpy(e->fp_hex, schema->fp_hex, sizeof(e->fp_hex));
    e->table = (char *) (e + 1);
    memcpy(e->table, table, tlen + 1);
    e->canonical = e->table + tlen + 1;
    memcpy(e->canonical, schema->canonical, clen + 1);
    e->canonical_len = clen;

    pthread_mutex_lock(&st->cache_mutex);

    /* another thread may have cached it meanwhile */

    for (old = st->buckets[hash % AVS_STREAM_BUCKETS]; old; old = old->next) {
        if (old->hash == hash && strcmp(old->fp_hex, e->fp_hex) == 0
            && strcmp(old->table, e->table) == 0)
        {
            pthread_mutex_unlock(&st->cache_mutex);
            free(e);
            return;
        }
    }

    if (st->cache_entries >= AVS_STREAM_MAX_ENTRIES
        || st->cache_bytes + size > AVS_STREAM_MAX_BYTES)
    {
        avs_stream_forget_all(st);
    }

    bucket = &st->buckets[hash % AVS_STREAM_BUCKETS];
    e->next = *bucket;
    *bucket = e;
    st->cache_entries++;
    st->cache_bytes += size;

    pthread_mutex_unlock(&st->cache_mutex);
}


/* Empties the stream cache; the caller holds cache_mutex (or is closing). */
static void
avs_stream_forget_all(avs_store_t *st)
{
    avs_stream_entry_t  *e, *next;
    size_t               i;

    for (i = 0; i < AVS_STREAM_BUCKETS; i++) {
        for (e = st->buckets[i]; e; e = next) {
            next = e->next;
            free(e);
        }

        st->buckets[i] = NULL;
    }

    st->cache_entries = 0;
    st->cache_bytes = 0;
}


/*
 * Finds or creates the stream in one transaction, under the lock, so that
 * concurrent creators in other processes see the first one's stream.  The
 * schema row is stored first (the stream refers to it) and its canonical
 * form compared with ours: a different one with the same fingerprint is a
 * collision, and such a schema must not write into the other's stream.
 */
static avs_rc_t
avs_stream_get_locked(avs_store_t *st, const char *table,
    const avs_schema_t *schema, avs_codec_t codec, avs_stream_t *out,
    avs_err_t *err)
{
    sqlite3_stmt  *stmt;
    avs_rc_t       rc;
    uint8_t        sync[AVS_SYNC_SIZE];
    int64_t        now;
    const char    *stored, *name;
    int            src, found;

    rc = avs_store_begin(st, err);
    if (rc != AVS_OK) {
        return rc;
    }

    now = avs_store_now_ms();

    stmt = st->stmt[AVS_ST_INSERT_SCHEMA];

    src = sqlite3_bind_text(stmt, 1, schema->fp_hex, -1, SQLITE_STATIC);
    if (src == SQLITE_OK) {
        src = sqlite3_bind_text(stmt, 2, schema->canonical, -1,
                                SQLITE_STATIC);
    }
    if (src == SQLITE_OK) {
        src = sqlite3_bind_text(stmt, 3, schema->json, -1, SQLITE_STATIC);
    }
    if (src == SQLITE_OK) {
        src = sqlite3_bind_int64(stmt, 4, now);
    }
    if (src == SQLITE_OK) {
        src = sqlite3_step(stmt);
        src = (src == SQLITE_DONE) ? SQLITE_OK : src;
    }

    if (src != SQLITE_OK) {
        rc = avs_store_fail(NULL, st->db, src, "schema insert", err);
        avs_store_reset(stmt);
        goto failed;
    }

    avs_store_reset(stmt);

    stmt = st->stmt[AVS_ST_FIND_SCHEMA];

    src = sqlite3_bind_text(stmt, 1, schema->fp_hex, -1, SQLITE_STATIC);
    if (src == SQLITE_OK) {
        src = sqlite3_step(stmt);
    }

    if (src != SQLITE_ROW) {
        rc = avs_store_fail(NULL, st->db,
                            src == SQLITE_DONE ? SQLITE_CORRUPT : src,
                            "schema lookup", err);
        avs_store_reset(stmt);
        goto failed;
    }

    stored = (const char *) sqlite3_column_text(stmt, 0);

    if (stored == NULL || strcmp(stored, schema->canonical) != 0) {
        rc = avs_err_set(err, AVS_EREJECTED,
                         "schema fingerprint %s collides with another "
                         "stored schema", schema->fp_hex);
        avs_store_reset(stmt);
        goto failed;
    }

    avs_store_reset(stmt);

    rc = avs_stream_find(st, table, schema->fp_hex, out, &found, err);
    if (rc != AVS_OK) {
        goto failed;
    }

    if (!found) {
        rc = avs_store_random(sync, sizeof(sync), err);
        if (rc != AVS_OK) {
            goto failed;
        }

        name = avs_codec_name(codec);
        stmt = st->stmt[AVS_ST_INSERT_STREAM];

        src = sqlite3_bind_text(stmt, 1, table, -1, SQLITE_STATIC);
        if (src == SQLITE_OK) {
            src = sqlite3_bind_text(stmt, 2, schema->fp_hex, -1,
                                    SQLITE_STATIC);
        }
        if (src == SQLITE_OK) {
            src = sqlite3_bind_text(stmt, 3, name, -1, SQLITE_STATIC);
        }
        if (src == SQLITE_OK) {
            src = sqlite3_bind_blob(stmt, 4, sync, sizeof(sync),
                                    SQLITE_STATIC);
        }
        if (src == SQLITE_OK) {
            src = sqlite3_bind_int64(stmt, 5, now);
        }
        if (src == SQLITE_OK) {
            src = sqlite3_step(stmt);
            src = (src == SQLITE_DONE) ? SQLITE_OK : src;
        }

        if (src != SQLITE_OK) {
            rc = avs_store_fail(NULL, st->db, src, "stream insert", err);
            avs_store_reset(stmt);
            goto failed;
        }

        avs_store_reset(stmt);

        out->id = sqlite3_last_insert_rowid(st->db);
        out->codec = codec;
        memcpy(out->sync, sync, sizeof(sync));
    }

    src = avs_store_step(st, AVS_ST_COMMIT);
    if (src != SQLITE_OK) {
        rc = avs_store_fail(NULL, st->db, src, "commit", err);
        goto failed;
    }

    return AVS_OK;

failed:

    avs_store_rollback(st);

    return rc;
}


/* Reads the stream of (table, fingerprint), if there is one. */
static avs_rc_t
avs_stream_find(avs_store_t *st, const char *table, const char *fp_hex,
    avs_stream_t *out, int *found, avs_err_t *err)
{
    sqlite3_stmt  *stmt;
    avs_rc_t       rc;
    const void    *sync;
    const char    *name;
    int            src;

    *found = 0;
    stmt = st->stmt[AVS_ST_FIND_STREAM];

    src = sqlite3_bind_text(stmt, 1, table, -1, SQLITE_STATIC);
    if (src == SQLITE_OK) {
        src = sqlite3_bind_text(stmt, 2, fp_hex, -1, SQLITE_STATIC);
    }
    if (src == SQLITE_OK) {
        src = sqlite3_step(stmt);
    }

    if (src == SQLITE_DONE) {
        avs_store_reset(stmt);
        return AVS_OK;
    }

    if (src != SQLITE_ROW) {
        rc = avs_store_fail(NULL, st->db, src, "stream lookup", err);
        avs_store_reset(stmt);
        return rc;
    }

    out->id = sqlite3_column_int64(stmt, 0);
    name = (const char *) sqlite3_column_text(stmt, 1);
    sync = sqlite3_column_blob(stmt, 2);

    if (name == NULL
        || avs_codec_from_name(name, strlen(name), &out->codec) != AVS_OK
        || sync == NULL || sqlite3_column_bytes(stmt, 2) != AVS_SYNC_SIZE)
    {
        rc = avs_err_set(err, AVS_ESTORE,
                         "hot store: stream %" PRId64 " is damaged "
                         "(codec or sync marker)", out->id);
        avs_store_reset(stmt);
        return rc;
    }

    memcpy(out->sync, sync, AVS_SYNC_SIZE);
    avs_store_reset(stmt);

    *found = 1;

    return AVS_OK;
}


avs_rc_t
avs_store_commit(avs_store_t *st, avs_batch_t **batches, size_t n,
    avs_err_t *err)
{
    avs_store_given_t  given;

    if (n == 0) {
        return avs_err_set(err, AVS_OK, "nothing to commit");
    }

    given.batches = batches;
    given.n = n;

    return avs_store_commit_take(st, avs_store_give, &given, err);
}


/* The take() of avs_store_commit: the group its caller gave. */
static size_t
avs_store_give(void *arg, avs_batch_t ***batches)
{
    avs_store_given_t *given = arg;

    *batches = given->batches;

    return given->n;
}


avs_rc_t
avs_store_commit_take(avs_store_t *st, avs_store_take_pt take, void *arg,
    avs_err_t *err)
{
    avs_batch_t  **batches;
    avs_err_t      e;
    avs_rc_t       rc;
    uint64_t       used, room, size;
    int64_t        now;
    size_t         i, j, n, stored;
    int            src, lost;

    memset(&e, 0, sizeof(e));

    rc = avs_store_lock(st, st->busy_timeout_ms, &e);

    batches = NULL;
    n = take(arg, &batches);

    if (rc != AVS_OK) {
        goto done;
    }

    if (n == 0) {
        avs_store_unlock(st);
        return avs_err_set(err, AVS_DONE, "nothing to commit");
    }

    rc = avs_store_begin(st, &e);
    if (rc != AVS_OK) {
        goto unlock;
    }

    used = 0;
    room = UINT64_MAX;

    if (st->max_size != 0) {
        rc = avs_store_used(st, &used, &e);
        if (rc != AVS_OK) {
            goto rollback;
        }

        room = (used < st->max_size) ? st->max_size - used : 0;
    }

    now = avs_store_now_ms();
    lost = 0;
    stored = 0;

    /* near max_size, the batches that fit are stored, the others refused */

    for (i = 0; i < n && !lost; i++) {
        size = 0;

        for (j = 0; j < batches[i]->nrows; j++) {
            size += batches[i]->rows[j].len;
        }

        if (size > room) {
            avs_err_set(&batches[i]->err, AVS_EFULL,
                        "hot store full: %" PRIu64 " of %" PRIu64
                        " bytes in use, %" PRIu64 " more requested",
                        used, st->max_size, size);
            continue;
        }

        room -= size;
        stored++;
        (void) avs_batch_store(st, batches[i], now, &lost);
    }

    if (stored == 0) {
        e = batches[n - 1]->err;
        rc = e.rc;
        goto rollback;
    }

    if (lost) {

        /* SQLite rolled the whole transaction back after a row's failure */

        e = batches[i - 1]->err;
        rc = e.rc;
        goto rollback;
    }

    src = avs_store_step(st, AVS_ST_COMMIT);
    if (src != SQLITE_OK) {
        rc = avs_store_fail(NULL, st->db, src, "commit", &e);
        goto rollback;
    }

    avs_store_unlock(st);

    /*
     * Committed but not known to be on disk: no upload of the group may
     * be acknowledged (a retry finds its row and is answered 200).
     */

    rc = avs_store_sync(st, &e);
    if (rc != AVS_OK) {
        goto done;
    }

    return avs_err_set(err, AVS_OK, "committed");

rollback:

    avs_store_rollback(st);

unlock:

    avs_store_unlock(st);

done:

    avs_batches_fail(batches, n, &e);

    if (err != NULL) {
        *err = e;
    }

    return rc;
}


/*
 * Stores one batch inside a savepoint, so that a failing row undoes the
 * batch's other rows but not the other batches.  The batch's err says how
 * it went.  *txn_lost is set when the failure took the whole transaction
 * with it.
 *
 * A batch of one row needs no savepoint: its one INSERT is a statement,
 * which SQLite undoes by itself when it fails (or it rolls the whole
 * transaction back, which *txn_lost reports).  The savepoint is not free:
 * every page a savepoint changes is first copied to the statement journal,
 * a temporary file, which cost 16 KiB of writes per upload.
 */
static avs_rc_t
avs_batch_store(avs_store_t *st, avs_batch_t *b, int64_t now, int *txn_lost)
{
    size_t  i;
    int     src;

    for (i = 0; i < b->nrows; i++) {
        if (avs_row_check(&b->rows[i], i, &b->err) != AVS_OK) {
            goto reset;
        }
    }

    if (b->nrows == 1) {
        if (avs_row_store(st, &b->rows[0], 0, now, &b->err) == AVS_OK) {
            return avs_err_set(&b->err, AVS_OK, "stored");
        }

        *txn_lost = sqlite3_get_autocommit(st->db);
        goto reset;
    }

    src = avs_store_step(st, AVS_ST_SAVEPOINT);
    if (src != SQLITE_OK) {
        avs_store_fail(NULL, st->db, src, "savepoint", &b->err);
        *txn_lost = sqlite3_get_autocommit(st->db);
        goto reset;
    }

    for (i = 0; i < b->nrows; i++) {
        if (avs_row_store(st, &b->rows[i], i, now, &b->err) != AVS_OK) {
            break;
        }
    }

    if (i == b->nrows) {
        src = avs_store_step(st, AVS_ST_RELEASE);
        if (src == SQLITE_OK) {
            return avs_err_set(&b->err, AVS_OK, "stored");
        }

        avs_store_fail(NULL, st->db, src, "release", &b->err);
    }

    if (sqlite3_get_autocommit(st->db)) {
        *txn_lost = 1;
        goto reset;
    }

    /* ROLLBACK TO keeps the savepoint open, RELEASE then ends it */

    src = avs_store_step(st, AVS_ST_ROLLBACK_TO);
    if (src == SQLITE_OK) {
        src = avs_store_step(st, AVS_ST_RELEASE);
    }

    if (src != SQLITE_OK) {
        *txn_lost = 1;
        avs_store_fail(NULL, st->db, src, "rollback to savepoint", &b->err);
    }

reset:

    for (i = 0; i < b->nrows; i++) {
        b->rows[i].id = 0;
        b->rows[i].duplicate = 0;
    }

    return b->err.rc;
}


/*
 * Refuses a row the caller did not fill in: such a row is a bug upstream,
 * and a missing hash would make every such upload a duplicate.
 */
static avs_rc_t
avs_row_check(const avs_row_t *row, size_t i, avs_err_t *err)
{
    if (row->dataset == NULL || row->table == NULL || row->period == NULL
        || (row->data == NULL && row->len != 0)
        || memchr(row->fingerprint, '\0', sizeof(row->fingerprint)) == NULL
        || strlen(row->fingerprint) != 16
        || memchr(row->content_hash, '\0', sizeof(row->content_hash)) == NULL
        || strlen(row->content_hash) != 64
        || row->records > INT64_MAX || row->blocks > INT64_MAX)
    {
        return avs_err_set(err, AVS_EINTERNAL,
                           "hot store: row %zu is incomplete", i + 1);
    }

    return AVS_OK;
}


/*
 * Stores one row, unless the same upload of the same dataset and table is
 * already hot (possibly from earlier in this transaction): then the row
 * gets that id and is marked duplicate.  The INSERT comes first and the
 * unique index idx_buffer_dedup refuses a duplicate before anything is
 * written, so a fresh upload (the common case) costs one search of that
 * index instead of two.
 */
static avs_rc_t
avs_row_store(avs_store_t *st, avs_row_t *row, size_t i, int64_t now,
    avs_err_t *err)
{
    char  what[64];
    int   src;

    src = avs_row_insert(st, row, now);

    if (src == SQLITE_DONE) {
        row->id = sqlite3_last_insert_rowid(st->db);
        row->duplicate = 0;
        return AVS_OK;
    }

    if (src == SQLITE_CONSTRAINT_UNIQUE) {
        src = avs_row_find(st, row);

        if (src == SQLITE_ROW) {
            row->duplicate = 1;
            return AVS_OK;
        }

        snprintf(what, sizeof(what), "row %zu: lookup", i + 1);

        if (src == SQLITE_DONE) {
            return avs_err_set(err, AVS_EINTERNAL, "hot store: %s: the "
                               "duplicate is not there", what);
        }

    } else {
        snprintf(what, sizeof(what), "row %zu: insert", i + 1);
    }

    return avs_store_fail(NULL, st->db, src, what, err);
}


/*
 * The id of the hot row of the same upload, dataset and table into
 * row->id: SQLITE_ROW when there is one.  The statement is reset after,
 * its error message left in the connection.
 */
static int
avs_row_find(avs_store_t *st, avs_row_t *row)
{
    sqlite3_stmt  *stmt;
    int            src;

    stmt = st->stmt[AVS_ST_FIND_ROW];

    src = sqlite3_bind_text(stmt, 1, row->dataset, -1, SQLITE_STATIC);
    if (src == SQLITE_OK) {
        src = sqlite3_bind_text(stmt, 2, row->table, -1, SQLITE_STATIC);
    }
    if (src == SQLITE_OK) {
        src = sqlite3_bind_text(stmt, 3, row->content_hash, -1,
                                SQLITE_STATIC);
    }
    if (src == SQLITE_OK) {
        src = sqlite3_step(stmt);
    }

    if (src == SQLITE_ROW) {
        row->id = sqlite3_column_int64(stmt, 0);
    }

    avs_store_reset(stmt);

    return src;
}


/*
 * Runs the INSERT of one row: SQLITE_DONE when stored, else SQLite's
 * (extended) code, SQLITE_CONSTRAINT_UNIQUE for a duplicate.
 */
static int
avs_row_insert(avs_store_t *st, const avs_row_t *row, int64_t now)
{
    sqlite3_stmt  *stmt;
    int            src;

    stmt = st->stmt[AVS_ST_INSERT_ROW];

    src = sqlite3_bind_text(stmt, 1, row->dataset, -1, SQLITE_STATIC);
    if (src == SQLITE_OK) {
        src = sqlite3_bind_text(stmt, 2, row->table, -1, SQLITE_STATIC);
    }
    if (src == SQLITE_OK) {
        src = sqlite3_bind_text(stmt, 3, row->period, -1, SQLITE_STATIC);
    }
    if (src == SQLITE_OK) {
        src = sqlite3_bind_int64(stmt, 4, row->timestamp_ms);
    }
    if (src == SQLITE_OK) {

        /* an empty upload is an empty blob, not NULL */

        src = sqlite3_bind_blob64(stmt, 5, row->data ? row->data
                                  : (const uint8_t *) "",
                                  row->len, SQLITE_STATIC);
    }
    if (src == SQLITE_OK) {
        src = (row->uploaded_by != NULL)
              ? sqlite3_bind_text(stmt, 6, row->uploaded_by, -1,
                                  SQLITE_STATIC)
              : sqlite3_bind_null(stmt, 6);
    }
    if (src == SQLITE_OK) {
        src = sqlite3_bind_int64(stmt, 7, now);
    }
    if (src == SQLITE_OK) {
        src = sqlite3_bind_int64(stmt, 8, (sqlite3_int64) row->records);
    }
    if (src == SQLITE_OK) {
        src = sqlite3_bind_int64(stmt, 9, (sqlite3_int64) row->blocks);
    }
    if (src == SQLITE_OK) {
        src = sqlite3_bind_text(stmt, 10, row->fingerprint, -1,
                                SQLITE_STATIC);
    }
    if (src == SQLITE_OK) {
        src = sqlite3_bind_int64(stmt, 11, row->stream_id);
    }
    if (src == SQLITE_OK) {
        src = sqlite3_bind_text(stmt, 12, row->content_hash, -1,
                                SQLITE_STATIC);
    }
    if (src == SQLITE_OK) {
        src = sqlite3_step(stmt);
    }

    avs_store_reset(stmt);

    return src;
}


/*
 * Gives every batch the error that failed the whole group, and forgets the
 * ids handed out inside the transaction that did not commit.
 */
static void
avs_batches_fail(avs_batch_t **batches, size_t n, const avs_err_t *err)
{
    size_t  i, j;

    for (i = 0; i < n; i++) {
        batches[i]->err = *err;

        for (j = 0; j < batches[i]->nrows; j++) {
            batches[i]->rows[j].id = 0;
            batches[i]->rows[j].duplicate = 0;
        }
    }
}


avs_rc_t
avs_store_status(avs_store_t *st, avs_store_status_t *out, avs_err_t *err)
{
    sqlite3_stmt  *stmt;
    sqlite3_int64  pages, size;
    avs_rc_t       rc;
    int            src;

    memset(out, 0, sizeof(avs_store_status_t));

    pthread_mutex_lock(&st->rmutex);

    stmt = st->status_stmt;
    src = sqlite3_step(stmt);

    if (src != SQLITE_ROW) {
        rc = avs_store_fail(NULL, st->rdb, src, "status", err);
        sqlite3_reset(stmt);
        pthread_mutex_unlock(&st->rmutex);
        return rc;
    }

    out->hot_rows = (uint64_t) sqlite3_column_int64(stmt, 0);
    out->hot_bytes = (uint64_t) sqlite3_column_int64(stmt, 1);
    out->hot_records = (uint64_t) sqlite3_column_int64(stmt, 2);
    out->oldest_ms = sqlite3_column_int64(stmt, 3);
    out->datasets = (uint64_t) sqlite3_column_int64(stmt, 4);
    out->streams = (uint64_t) sqlite3_column_int64(stmt, 5);
    pages = sqlite3_column_int64(stmt, 6);
    size = sqlite3_column_int64(stmt, 7);

    sqlite3_reset(stmt);

    pthread_mutex_unlock(&st->rmutex);

    out->db_bytes = (pages > 0 && size > 0)
                    ? (uint64_t) pages * (uint64_t) size : 0;
    out->max_size = st->max_size;
    out->lock_recoveries = st->lock->recoveries;
    out->writes_refused = (int) __atomic_load_n(&st->lock->sync_failed,
                                                __ATOMIC_RELAXED);

    return AVS_OK;
}


avs_rc_t
avs_store_write(avs_store_t *st, avs_store_fn_t fn, void *arg,
    avs_err_t *err)
{
    avs_rc_t  rc, frc;
    int       src;

    rc = avs_store_lock(st, st->busy_timeout_ms, err);
    if (rc != AVS_OK) {
        return rc;
    }

    rc = avs_store_begin(st, err);
    if (rc != AVS_OK) {
        avs_store_unlock(st);
        return rc;
    }

    frc = fn(st->db, arg, err);

    if (frc != AVS_OK && frc != AVS_DONE) {
        avs_store_rollback(st);
        avs_store_unlock(st);
        return frc;
    }

    src = avs_store_step(st, AVS_ST_COMMIT);
    if (src != SQLITE_OK) {
        rc = avs_store_fail(NULL, st->db, src, "commit", err);
        avs_store_rollback(st);
        avs_store_unlock(st);
        return rc;
    }

    avs_store_unlock(st);

    rc = avs_store_sync(st, err);

    return (rc == AVS_OK) ? frc : rc;
}


avs_rc_t
avs_store_read(avs_store_t *st, avs_store_fn_t fn, void *arg,
    avs_err_t *err)
{
    sqlite3   *db;
    unsigned   slot;
    avs_rc_t   rc;
    int        src;

    slot = 0;

    rc = avs_store_reader_get(st, &slot, err);
    if (rc != AVS_OK) {
        return rc;
    }

    db = st->readers[slot];

    src = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    if (src != SQLITE_OK) {
        rc = avs_store_fail(NULL, db, src, "begin", err);
        avs_store_reader_put(st, slot);
        return rc;
    }

    rc = fn(db, arg, err);

    /* a read transaction has nothing to undo: COMMIT only ends it */

    src = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (src != SQLITE_OK) {
        if (rc == AVS_OK || rc == AVS_DONE) {
            rc = avs_store_fail(NULL, db, src, "end of read", err);
        }

        if (!sqlite3_get_autocommit(db)) {
            (void) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        }
    }

    avs_store_reader_put(st, slot);

    return rc;
}


/*
 * Lends a read connection of the pool to the caller, opening it when the
 * slot is still empty.  When every slot is lent, waits for one to come back,
 * at most the busy timeout.
 */
static avs_rc_t
avs_store_reader_get(avs_store_t *st, unsigned *slot, avs_err_t *err)
{
    struct timespec  deadline;
    avs_rc_t         rc;
    unsigned         i;
    int              e;

    avs_deadline(&deadline, st->busy_timeout_ms);

    pthread_mutex_lock(&st->pool_mutex);

    for ( ;; ) {
        for (i = 0; i < AVS_STORE_READERS; i++) {
            if (!(st->readers_busy & (1u << i))) {
                break;
            }
        }

        if (i < AVS_STORE_READERS) {
            break;
        }

        e = pthread_cond_clockwait(&st->pool_cond, &st->pool_mutex,
                                   CLOCK_MONOTONIC, &deadline);
        if (e == ETIMEDOUT) {
            pthread_mutex_unlock(&st->pool_mutex);
            return avs_err_set(err, AVS_EBUSY,
                               "hot store: every read connection is busy");
        }
    }

    st->readers_busy |= 1u << i;

    pthread_mutex_unlock(&st->pool_mutex);

    if (st->readers[i] == NULL) {
        rc = avs_store_open_db(st, &st->readers[i], SQLITE_OPEN_READONLY,
                               err);

        if (rc == AVS_OK
            && sqlite3_db_config(st->readers[i],
                                 SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL)
               != SQLITE_OK)
        {
            rc = avs_store_fail(st, st->readers[i], SQLITE_ERROR,
                                "read connection", err);
        }

        if (rc != AVS_OK) {
            (void) sqlite3_close_v2(st->readers[i]);
            st->readers[i] = NULL;
            avs_store_reader_put(st, i);
            return rc;
        }
    }

    *slot = i;

    return AVS_OK;
}


/* Gives a read connection back to the pool and wakes one waiter. */
static void
avs_store_reader_put(avs_store_t *st, unsigned slot)
{
    pthread_mutex_lock(&st->pool_mutex);
    st->readers_busy &= ~(1u << slot);
    pthread_cond_signal(&st->pool_cond);
    pthread_mutex_unlock(&st->pool_mutex);
}


avs_rc_t
avs_store_checkpoint(avs_store_t *st, avs_err_t *err)
{
    avs_rc_t  rc;
    int       src, log, done;

    rc = avs_store_lock(st, st->busy_timeout_ms, err);
    if (rc != AVS_OK) {
        return rc;
    }

    /*
     * TRUNCATE waits for the readers of old snapshots to move on, and the
     * uploads wait for the lock meanwhile: wait briefly, and leave what is
     * left to the next checkpoint.
     */

    sqlite3_busy_timeout(st->db, AVS_STORE_CHECKPOINT_WAIT);

    log = -1;
    done = -1;

    src = sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_TRUNCATE,
                                    &log, &done);

    /* the message before the lock goes: the next writer may change it */

    if ((src & 0xff) == SQLITE_BUSY) {
        rc = avs_err_set(err, AVS_EBUSY,
                         "hot store: checkpoint: readers kept %d of %d "
                         "WAL frames", log - done, log);

    } else if (src != SQLITE_OK) {
        rc = avs_store_fail(NULL, st->db, src, "checkpoint", err);

    } else {
        rc = avs_err_set(err, AVS_OK, "checkpointed %d WAL frames", done);
    }

    avs_store_unlock(st);

    return rc;
}


avs_rc_t
avs_store_stream_header(sqlite3 *db, const char *table,
    const char *fingerprint, int64_t id, avs_buf_t *out, int64_t *stream_id,
    avs_codec_t *codec, avs_err_t *err)
{
    sqlite3_stmt  *stmt;
    const char    *name, *json;
    const void    *sync;
    avs_codec_t    c;
    avs_rc_t       rc;

    if (table != NULL) {
        rc = avs_sql_cached(db, &stmt, "stream", err,
                            "SELECT s.id, s.codec, s.sync, h.schema_json"
                            " FROM streams s JOIN schemas h"
                            " ON h.fingerprint = s.schema_fingerprint"
                            " WHERE s.table_name = ?1"
                            " AND s.schema_fingerprint = ?2",
                            "tt", table, fingerprint);
    } else {
        rc = avs_sql_cached(db, &stmt, "stream", err,
                            "SELECT s.id, s.codec, s.sync, h.schema_json"
                            " FROM streams s JOIN schemas h"
                            " ON h.fingerprint = s.schema_fingerprint"
                            " WHERE s.id = ?1",
                            "i", id);
    }

    if (rc != AVS_OK) {
        return rc;
    }

    rc = avs_sql_step(db, stmt, "stream", err);

    if (rc != AVS_OK) {
        sqlite3_reset(stmt);
        return rc;
    }

    id = sqlite3_column_int64(stmt, 0);
    name = (const char *) sqlite3_column_text(stmt, 1);
    sync = sqlite3_column_blob(stmt, 2);
    json = (const char *) sqlite3_column_text(stmt, 3);

    if (name == NULL || json == NULL || sync == NULL
        || sqlite3_column_bytes(stmt, 2) != AVS_SYNC_SIZE
        || avs_codec_from_name(name, strlen(name), &c) != AVS_OK)
    {
        sqlite3_reset(stmt);
        return avs_err_set(err, AVS_ESTORE, "stream %" PRId64 " is damaged",
                           id);
    }

    out->len = 0;

    rc = avs_ocf_write_header(out, json,
                              (size_t) sqlite3_column_bytes(stmt, 3), c,
                              sync);
    sqlite3_reset(stmt);

    if (rc != AVS_OK) {
        return avs_err_set(err, rc, "stream %" PRId64 ": cannot build a "
                           "header", id);
    }

    if (stream_id != NULL) {
        *stream_id = id;
    }

    if (codec != NULL) {
        *codec = c;
    }

    return AVS_OK;
}
