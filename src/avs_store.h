/*
 * The hot store: one SQLite file in WAL mode shared by every nginx worker.
 * It holds the schemas, the streams (one codec and sync marker per table
 * and schema) and the buffered uploads in buffer_logs.  Writes happen in
 * BEGIN IMMEDIATE transactions under the shared avs_lock_t; the caller runs
 * every function here off the event loop (they can wait).
 */

#ifndef AVS_STORE_H
#define AVS_STORE_H

#include <sqlite3.h>

#include "avs_base.h"
#include "avs_codec.h"
#include "avs_lock.h"
#include "avs_ocf.h"
#include "avs_schema.h"

typedef struct avs_store_s  avs_store_t;

typedef enum {
    AVS_SYNC_NORMAL = 1,
    AVS_SYNC_FULL = 2
} avs_sync_mode_t;

typedef struct {
    const char       *path;
    avs_sync_mode_t   synchronous;      /* default AVS_SYNC_FULL */
    unsigned          busy_timeout_ms;  /* lock and SQLite busy wait */
    uint64_t          max_size;         /* bytes in use, 0: unlimited */
    avs_lock_t       *lock;             /* NULL: a private lock */
    unsigned          open_wait_ms;     /* for the lock at open; 0: 10 s */
} avs_store_conf_t;

/*
 * Whether the file at path is a database to which every migration has
 * been applied, as its header on disk says, read without the lock (a
 * migration not yet checkpointed into the file reads as not applied).
 */
int avs_store_is_current(const char *path);

/*
 * Opens the database (creating it), sets WAL and the pragmas, and applies
 * the pending migrations in order under the lock.
 */
avs_rc_t avs_store_open(const avs_store_conf_t *conf, avs_store_t **out,
    avs_err_t *err);

/* Closes the connections; the last close checkpoints, so under the lock. */
void avs_store_close(avs_store_t *st);

typedef struct {
    int64_t       id;
    avs_codec_t   codec;
    uint8_t       sync[AVS_SYNC_SIZE];
} avs_stream_t;

/*
 * The stream of (table, schema): found in the process cache, else in the
 * database, else created with codec and a random sync marker (and the schema
 * row stored).  Concurrent creators agree: the first committed wins.
 */
avs_rc_t avs_store_stream(avs_store_t *st, const char *table,
    const avs_schema_t *schema, avs_codec_t codec, avs_stream_t *out,
    avs_err_t *err);

/*
 * The stream if this process already knows it (AVS_OK), else AVS_DONE:
 * never waits, so it may run on an event loop.
 */
avs_rc_t avs_store_stream_cached(avs_store_t *st, const char *table,
    const avs_schema_t *schema, avs_stream_t *out, avs_err_t *err);

/* One uploaded file, re-framed in its stream's codec and sync marker. */
typedef struct {
    const char      *dataset;
    const char      *table;
    const char      *period;
    const char      *uploaded_by;       /* may be NULL */
    int64_t          timestamp_ms;
    int64_t          stream_id;
    char             fingerprint[17];
    char             content_hash[65];  /* SHA-256 hex of the upload */
    const uint8_t   *data;              /* blocks: count, size, data, sync */
    size_t           len;
    uint64_t         records;
    uint64_t         blocks;

    int64_t          id;                /* out: buffer_logs.id */
    int              duplicate;         /* out: was already hot */
} avs_row_t;

/* The rows of one request: stored all or none. */
typedef struct {
    avs_row_t   *rows;
    size_t       nrows;
    avs_err_t    err;                   /* out: this batch's result */
} avs_batch_t;

/*
 * Group commit: stores every batch in one transaction, each batch in its
 * own savepoint.  A row whose (dataset, table, content_hash) is already hot
 * is not stored again; it gets the existing id and duplicate = 1.  Returns
 * AVS_OK when the transaction committed (each batch's err tells its own
 * fate), else the error that failed them all: AVS_EBUSY, AVS_EFULL (the
 * store would pass max_size), AVS_ESTORE.
 */
avs_rc_t avs_store_commit(avs_store_t *st, avs_batch_t **batches, size_t n,
    avs_err_t *err);

/*
 * Gives the group to store: sets *batches and returns their number.  Runs
 * in the committing thread once the lock was waited for (also when the
 * wait failed, so that the group is answered), and only once.
 */
typedef size_t (*avs_store_take_pt)(void *arg, avs_batch_t ***batches);

/*
 * avs_store_commit with the group chosen by take() once the lock is held,
 * so that the uploads that came while the lock was awaited join it instead
 * of waiting for the next group.  AVS_DONE when take() gave nothing.
 */
avs_rc_t avs_store_commit_take(avs_store_t *st, avs_store_take_pt take,
    void *arg, avs_err_t *err);

typedef struct {
    uint64_t  hot_rows;
    uint64_t  hot_bytes;
    uint64_t  hot_records;
    uint64_t  datasets;
    uint64_t  streams;
    uint64_t  db_bytes;                 /* pages in use * page size */
    uint64_t  max_size;
    int64_t   oldest_ms;                /* oldest hot row, 0 if none */
    uint32_t  lock_recoveries;
    int       writes_refused;           /* an fsync of the WAL failed */
} avs_store_status_t;

/* Reads the status counters from a read connection (no write lock). */
avs_rc_t avs_store_status(avs_store_t *st, avs_store_status_t *out,
    avs_err_t *err);


/*
 * Work done inside one transaction of avs_store_write or avs_store_read, on
 * the connection it is given.  It must leave no statement of its own
 * active (reset or finalize them) and must not end the transaction.
 */
typedef avs_rc_t (*avs_store_fn_t)(sqlite3 *db, void *arg, avs_err_t *err);

/*
 * Runs fn in one write transaction: takes the shared lock (waiting at most
 * the busy timeout), BEGIN IMMEDIATE, fn, COMMIT, releases the lock.  When
 * fn returns AVS_OK or AVS_DONE the transaction commits and that is the
 * result; on any other result, or a failed COMMIT, it is rolled back.
 */
avs_rc_t avs_store_write(avs_store_t *st, avs_store_fn_t fn, void *arg,
    avs_err_t *err);

/*
 * Runs fn in one read transaction (BEGIN; ...; COMMIT) on a read connection
 * of this process, so that everything fn reads is one snapshot.  It takes
 * no write lock and never checkpoints.  A few read connections are opened
 * as needed; when all are in use the call waits for one, at most the busy
 * timeout (then AVS_EBUSY).  fn's result is the result.
 */
avs_rc_t avs_store_read(avs_store_t *st, avs_store_fn_t fn, void *arg,
    avs_err_t *err);

/*
 * Builds the OCF header of a stream into out (replacing what it held): the
 * schema text as first uploaded, the stream's codec and sync marker, so
 * that the same stream always gives the same bytes.  The stream is found
 * by (table, fingerprint), or by id when table is NULL; AVS_DONE when
 * there is none.  stream_id and codec (may be NULL) get the stream's.
 * Runs inside avs_store_read or avs_store_write, on the db it is given.
 */
avs_rc_t avs_store_stream_header(sqlite3 *db, const char *table,
    const char *fingerprint, int64_t id, avs_buf_t *out, int64_t *stream_id,
    avs_codec_t *codec, avs_err_t *err);

/*
 * Copies the WAL into the database file and truncates it, under the lock.
 * AVS_EBUSY when a reader's snapshot kept part of the WAL (or the lock
 * could not be had): nothing is wrong, the next checkpoint goes further.
 */
avs_rc_t avs_store_checkpoint(avs_store_t *st, avs_err_t *err);

#endif /* AVS_STORE_H */
