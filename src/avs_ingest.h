/*
 * One upload request from body to answer, with no nginx in sight: the
 * envelope, the names, every file validated and re-framed, the group
 * commit, and the JSON answer.  The nginx glue runs it in a pool thread.
 */

#ifndef AVS_INGEST_H
#define AVS_INGEST_H

#include "avs_allow.h"
#include "avs_commit.h"
#include "avs_schema.h"
#include "avs_store.h"

typedef struct {
    avs_store_t         *store;
    avs_committer_t     *committer;
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

    int             status;             /* out: HTTP status */
    avs_buf_t       response;           /* out: JSON body */
    avs_err_t       err;                /* out: why, when status >= 400 */
} avs_ingest_t;

void avs_ingest_run(const avs_ingest_env_t *env, avs_ingest_t *req);

#endif /* AVS_INGEST_H */
