/*
 * The archiver: moves the hot rows of buffer_logs into Avro container files
 * in object storage, exactly once, and indexes where each dataset's bytes
 * are.  A cycle claims rows into jobs, then for each job builds the file
 * (file:, and s3:// with signed payloads, in a temporary file; s3://
 * otherwise straight into the PUT), puts it under the job's key and
 * commits the catalog rows together with the deletion of the hot rows; the
 * next job is built and put while one is committed.  A crash between any
 * two steps leaves a pending job that the next cycle runs again, with the
 * same key and the same bytes.
 *
 * Every function here waits (SQLite lock, disk, network): run them off the
 * event loop.  One archiver at a time: take the lease first.
 */

#ifndef AVS_ARCHIVE_H
#define AVS_ARCHIVE_H

#include "avs_base.h"
#include "avs_objstore.h"
#include "avs_store.h"

#define AVS_ARCHIVE_SEGMENT_SIZE   (512ULL * 1024 * 1024)
#define AVS_ARCHIVE_KEY_MAX        512

/* The points of a job where the test hook is called. */
typedef enum {
    AVS_ARCHIVE_CLAIMED = 1,    /* the claim committed (key: NULL) */
    AVS_ARCHIVE_BUILT,          /* file: the temporary file is written,
                                   synced (s3:// builds into the put) */
    AVS_ARCHIVE_PUT,            /* the object is stored, not yet indexed */
    AVS_ARCHIVE_COMMITTED       /* indexed and the hot rows deleted */
} avs_archive_step_t;

/* One file the cycle committed, as told to conf->on_file. */
typedef struct {
    const char  *key;
    uint64_t     size;
    uint64_t     datasets;
    uint64_t     uploads;
    uint64_t     records;
    const char  *etag;
    const char  *sha256;
    int          recovered;     /* claimed by an earlier cycle */
} avs_archive_file_t;

typedef struct {
    const char  *node;          /* in every key; a valid name, unique per
                                   node that shares the object store */
    const char  *tmp_dir;       /* where the side files of the block
                                   index go */
    uint64_t     segment_size;  /* largest file, 0: 512 MiB */
    uint64_t     max_rows;      /* uploads per file, 0: no limit */

    /* When owner is set, the cycle takes or renews the lease when it
     * starts and before each job, and stops with AVS_EBUSY if another
     * owner has it (a cycle refused at the start records nothing). */
    const char  *owner;
    uint64_t     lease_ttl_ms;  /* 0: 60 s */

    /* Called after each committed file (for the error log); may be NULL. */
    void       (*on_file)(void *data, const avs_archive_file_t *f);

    /* For tests: called after each step; a result other than AVS_OK ends
     * the cycle there at once, as if the process had died. */
    avs_rc_t   (*hook)(void *data, avs_archive_step_t step, const char *key);

    void        *data;
} avs_archive_conf_t;

typedef struct {
    int64_t      started_ms;    /* wall clock */
    uint64_t     duration_ms;
    uint64_t     files;
    uint64_t     datasets;      /* block index rows written */
    uint64_t     uploads;       /* hot rows archived */
    uint64_t     records;
    uint64_t     bytes;         /* of the objects written */
    uint64_t     claimed;       /* jobs claimed by this cycle */
    uint64_t     recovered;     /* pending jobs of earlier cycles done */
    uint64_t     pending;       /* jobs left pending at the end */
    uint64_t     skipped;       /* groups whose names cannot make a key */
    uint64_t     failed;        /* jobs whose build or put failed */

    /* where the time went, in ms: the claim, then summed over the jobs
     * the build (read rows, write, fsync), the put and the commit, and
     * the WAL checkpoint at the end */
    uint64_t     claim_ms;
    uint64_t     build_ms;
    uint64_t     put_ms;
    uint64_t     commit_ms;
    uint64_t     checkpoint_ms;

    avs_rc_t     rc;            /* how the cycle ended */
} avs_archive_summary_t;

/*
 * Takes or renews the archiver lease for owner (unique per process, e.g.
 * "host:pid:start-time") until now + ttl_ms.  AVS_OK: owner holds it.
 * AVS_EBUSY: another owner holds a lease that has not expired.
 */
avs_rc_t avs_archive_lease(avs_store_t *st, const char *owner,
    uint64_t ttl_ms, avs_err_t *err);

/* Gives the lease up if owner holds it (AVS_OK either way). */
avs_rc_t avs_archive_release(avs_store_t *st, const char *owner,
    avs_err_t *err);

/*
 * One archive cycle: runs the pending jobs left by earlier cycles, claims
 * the unclaimed hot rows into new jobs and runs them; records the outcome
 * in archive_state and checkpoints the WAL.  Stops at the first job that
 * fails (it stays pending: call again later, with a backoff).  out is
 * filled in whatever the result.
 */
avs_rc_t avs_archive_cycle(avs_store_t *st, avs_objstore_t *os,
    const avs_archive_conf_t *conf, avs_archive_summary_t *out,
    avs_err_t *err);

/*
 * Appends the summary as a JSON object: {"files", "datasets", "uploads",
 * "records", "bytes", "duration_ms", "started_at", "claimed_jobs",
 * "recovered_jobs", "pending_jobs", "skipped_groups", "steps_ms": {"claim",
 * "build", "put", "commit", "checkpoint"}, "result"}.
 */
avs_rc_t avs_archive_summary_json(const avs_archive_summary_t *s,
    avs_buf_t *out);

/*
 * Appends the archive state as one JSON object, from one snapshot, for
 * the status location: {"last_cycle_at", "last_cycle" (a summary, or
 * null), "last_error", "consecutive_failures", "cycles", "files",
 * "segments", "logical_files", "bytes", "records", "pending_jobs",
 * "pending_uploads", "lease": {"owner", "expires_at"}}.
 */
avs_rc_t avs_archive_status(avs_store_t *st, avs_buf_t *out,
    avs_err_t *err);

#endif /* AVS_ARCHIVE_H */
