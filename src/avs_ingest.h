/*
 * One upload request from body to answer, with no nginx in sight: the
 * envelope, the names, every file validated and re-framed into rows, and
 * the JSON answer once the rows are committed.  Validation is CPU work that
 * never waits, except when a stream must be created in the store; the
 * caller runs that case, and large bodies, off its event loop.
 */

#ifndef AVS_INGEST_H
#define AVS_INGEST_H

#include "avs_allow.h"
#include "avs_schema.h"
#include "avs_store.h"

/* Decompressed bytes a validation that may not wait takes on (~1 ms). */
#define AVS_INGEST_INLINE_BYTES  (256 * 1024)

typedef struct {
    avs_store_t         *store;
    avs_schema_cache_t  *schemas;
    const avs_allow_t   *allow;         /* NULL: every schema is accepted */
    avs_limits_t         limits;
    avs_codec_t          codec;         /* of streams created from now on */
    int                  level;
} avs_ingest_env_t;

typedef struct {
    const uint8_t  *body;
    size_t          body_len;
    int             json;               /* envelope, else a raw OCF */

    /* Names set by the location win over the envelope's, which win over
     * the query arguments'; NULL when not given. */
    const char     *dataset;
    const char     *table;
    const char     *period;
    const char     *arg_dataset;
    const char     *arg_table;
    const char     *arg_period;
    const char     *uploaded_by;
    int64_t         now_ms;

    avs_batch_t     batch;              /* out: the rows to commit */
    int             status;             /* out: HTTP status */
    avs_buf_t       response;           /* out: JSON body */
    avs_err_t       err;                /* out: why, when status >= 400 */

    struct avs_ingest_work_s  *work;    /* state between the steps */
} avs_ingest_t;

/*
 * Validates every file and prepares req->batch.  AVS_OK: the batch is
 * ready to commit.  AVS_DONE (only when may_wait is 0): a schema has to be
 * parsed or a stream created first, which can wait, or the files
 * decompress to more than AVS_INGEST_INLINE_BYTES, more work than an event
 * loop should do between two events; call again with may_wait set.  Any
 * other result: the request is refused, status and response are set.
 */
avs_rc_t avs_ingest_validate(const avs_ingest_env_t *env, avs_ingest_t *req,
    int may_wait);

/* Sets status and response from the committed (or refused) batch. */
void avs_ingest_answer(avs_ingest_t *req);

/* Sets status and response for a refusal in err. */
void avs_ingest_refuse(avs_ingest_t *req);

/* Frees what validation kept (not the response). */
void avs_ingest_free(const avs_ingest_env_t *env, avs_ingest_t *req);

/* The whole request at once, waiting where needed: validate, commit alone
 * (no group), answer, free.  For tools and tests. */
void avs_ingest_run(const avs_ingest_env_t *env, avs_ingest_t *req);

#endif /* AVS_INGEST_H */
