/*
 * The upload request, start to end.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avs_envelope.h"
#include "avs_ingest.h"
#include "avs_json.h"
#include "avs_names.h"
#include "avs_upload.h"


/* Bytes reserved for an answer: one file's takes about 450. */
#define AVS_INGEST_ANSWER_SIZE  1024

typedef struct avs_ingest_work_s {
    avs_envelope_t   envl;
    const char      *dataset;
    const char      *table;
    const char      *period;
    char             date[11];
    size_t           nfiles;
    avs_upload_t    *uploads;
    avs_row_t       *rows;
    avs_upload_t     upload;        /* uploads of a one-file request */
    avs_row_t        row;           /* rows of a one-file request */
} avs_ingest_work_t;


/* The first of the candidates that is set. */
static const char *
avs_ingest_pick(const char *a, const char *b, const char *c)
{
    return a ? a : (b ? b : c);
}


static avs_rc_t
avs_ingest_names(avs_ingest_work_t *w, const avs_ingest_t *req,
    const avs_envelope_t *envl, avs_err_t *err)
{
    avs_rc_t  rc;

    w->dataset = avs_ingest_pick(req->dataset, envl->dataset,
                                 req->arg_dataset);
    w->table = avs_ingest_pick(req->table, envl->table, req->arg_table);
    w->period = avs_ingest_pick(req->period, envl->period, req->arg_period);

    if (w->dataset == NULL) {
        return avs_err_set(err, AVS_EMALFORMED,
                           "dataset_id: missing (the envelope's "
                           "\"dataset_id\" or the dataset_id argument)");
    }

    if (w->table == NULL) {
        return avs_err_set(err, AVS_EMALFORMED,
                           "table_name: missing (the envelope's "
                           "\"table_name\" or the table argument)");
    }

    if (w->period == NULL) {
        avs_utc_date(req->now_ms, w->date);
        w->period = w->date;
    }

    rc = avs_name_check("dataset_id", w->dataset, strlen(w->dataset), err);
    if (rc == AVS_OK) {
        rc = avs_name_check("table_name", w->table, strlen(w->table), err);
    }
    if (rc == AVS_OK) {
        rc = avs_name_check("period_tag", w->period, strlen(w->period), err);
    }

    return rc;
}


/* Prefixes err's message with the slice number when there are several. */
static avs_rc_t
avs_ingest_slice_error(avs_err_t *err, size_t i, size_t n)
{
    char  msg[sizeof(err->msg)];

    if (n > 1) {
        memcpy(msg, err->msg, sizeof(msg));
        snprintf(err->msg, sizeof(err->msg), "slice %zu: %.200s", i + 1, msg);
    }

    return err->rc;
}


/* Validates and re-frames one file and fills its row. */
static avs_rc_t
avs_ingest_file(const avs_ingest_env_t *env, const avs_ingest_t *req,
    avs_ingest_work_t *w, size_t i, const uint8_t *file, size_t len,
    int may_wait, size_t *budget, avs_err_t *err)
{
    avs_upload_t  *u;
    avs_stream_t   stream;
    avs_row_t     *row;
    avs_rc_t       rc;

    u = &w->uploads[i];

    rc = avs_upload_open(u, file, len, env->schemas, &env->limits, may_wait,
                         err);
    if (rc != AVS_OK) {
        return rc;
    }

    if (env->allow != NULL) {
        rc = avs_allow_check(env->allow, w->table, u->schema->fingerprint,
                             err);
        if (rc != AVS_OK) {
            return rc;
        }
    }

    rc = avs_store_stream_cached(env->store, w->table, u->schema, &stream,
                                 err);

    if (rc == AVS_DONE && may_wait) {
        rc = avs_store_stream(env->store, w->table, u->schema, env->codec,
                              &stream, err);
    }

    if (rc != AVS_OK) {
        return rc;
    }

    rc = avs_upload_reframe(u, stream.codec,
                            stream.codec == env->codec ? env->level : 0,
                            stream.sync, &env->limits, budget, err);
    if (rc != AVS_OK) {
        return rc;
    }

    row = &w->rows[i];
    row->dataset = w->dataset;
    row->table = w->table;
    row->period = w->period;
    row->uploaded_by = req->uploaded_by;
    row->timestamp_ms = req->now_ms;
    row->stream_id = stream.id;
    memcpy(row->fingerprint, u->schema->fp_hex, sizeof(row->fingerprint));
    memcpy(row->content_hash, u->content_hash, sizeof(row->content_hash));
    row->data = u->blocks.data;
    row->len = u->blocks.len;
    row->records = u->records;
    row->blocks = u->nblocks;

    return AVS_OK;
}


static avs_rc_t
avs_ingest_answer_json(avs_ingest_work_t *w, avs_ingest_t *req)
{
    avs_buf_t  *b;
    avs_rc_t    rc;
    uint64_t    records, bytes;
    size_t      i;
    int         fresh;

    b = &req->response;
    records = 0;
    bytes = 0;
    fresh = 0;

    for (i = 0; i < w->nfiles; i++) {
        records += w->rows[i].records;
        bytes += w->rows[i].len;
        fresh |= !w->rows[i].duplicate;
    }

    req->status = fresh ? 201 : 200;

    rc = avs_buf_append(b, "{", 1);
    if (rc == AVS_OK) {
        rc = avs_json_field_i64(b, "id", w->rows[0].id);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_str(b, "dataset_id", w->dataset);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_str(b, "table_name", w->table);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_str(b, "period_tag", w->period);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_str(b, "schema_fingerprint",
                                w->rows[0].fingerprint);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_u64(b, "record_count", records);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_u64(b, "bytes", bytes);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_bool(b, "duplicate", !fresh);
    }
    if (rc == AVS_OK) {
        rc = avs_json_raw(b, ",\"uploads\":[");
    }

    for (i = 0; rc == AVS_OK && i < w->nfiles; i++) {
        rc = avs_json_raw(b, "%s{", i ? "," : "");
        if (rc == AVS_OK) {
            rc = avs_json_field_i64(b, "id", w->rows[i].id);
        }
        if (rc == AVS_OK) {
            rc = avs_json_field_str(b, "schema_fingerprint",
                                    w->rows[i].fingerprint);
        }
        if (rc == AVS_OK) {
            rc = avs_json_field_u64(b, "record_count", w->rows[i].records);
        }
        if (rc == AVS_OK) {
            rc = avs_json_field_u64(b, "block_count", w->rows[i].blocks);
        }
        if (rc == AVS_OK) {
            rc = avs_json_field_str(b, "content_hash",
                                    w->rows[i].content_hash);
        }
        if (rc == AVS_OK) {
            rc = avs_json_field_bool(b, "duplicate", w->rows[i].duplicate);
        }
        if (rc == AVS_OK) {
            rc = avs_buf_append(b, "}", 1);
        }
    }

    if (rc == AVS_OK) {
        rc = avs_buf_append(b, "]}\n", 3);
    }

    return rc;
}


avs_rc_t
avs_ingest_validate(const avs_ingest_env_t *env, avs_ingest_t *req,
    int may_wait)
{
    avs_ingest_work_t  *w;
    avs_err_t          *err;
    avs_rc_t            rc;
    const uint8_t      *file;
    size_t              i, len, budget;

    avs_ingest_free(env, req);

    budget = AVS_INGEST_INLINE_BYTES;

    err = &req->err;
    memset(err, 0, sizeof(*err));

    w = calloc(1, sizeof(avs_ingest_work_t));
    if (w == NULL) {
        rc = avs_err_set(err, AVS_ENOMEM, "out of memory");
        goto refused;
    }

    req->work = w;

    if (req->json) {
        rc = avs_envelope_parse(req->body, req->body_len, req->body_len,
                                &w->envl, err);
        if (rc != AVS_OK) {
            goto refused;
        }

        w->nfiles = w->envl.nfiles;

    } else {
        w->nfiles = 1;
    }

    rc = avs_ingest_names(w, req, &w->envl, err);
    if (rc != AVS_OK) {
        goto refused;
    }

    if (w->nfiles == 1) {
        w->uploads = &w->upload;
        w->rows = &w->row;

    } else {
        w->uploads = calloc(w->nfiles, sizeof(avs_upload_t));
        w->rows = calloc(w->nfiles, sizeof(avs_row_t));
    }

    if (w->uploads == NULL || w->rows == NULL) {
        rc = avs_err_set(err, AVS_ENOMEM, "out of memory");
        goto refused;
    }

    for (i = 0; i < w->nfiles; i++) {
        file = req->json ? w->envl.files[i].data : req->body;
        len = req->json ? w->envl.files[i].len : req->body_len;

        rc = avs_ingest_file(env, req, w, i, file, len, may_wait,
                             may_wait ? NULL : &budget, err);

        if (rc == AVS_DONE) {
            return rc;
        }

        if (rc != AVS_OK) {
            avs_ingest_slice_error(err, i, w->nfiles);
            goto refused;
        }
    }

    req->batch.rows = w->rows;
    req->batch.nrows = w->nfiles;
    memset(&req->batch.err, 0, sizeof(req->batch.err));

    return AVS_OK;

refused:

    if (err->rc == AVS_OK) {
        avs_err_set(err, rc, "%s", avs_rc_name(rc));
    }

    avs_ingest_refuse(req);

    return err->rc;
}


void
avs_ingest_refuse(avs_ingest_t *req)
{
    req->status = avs_rc_http_status(req->err.rc);
    req->response.len = 0;

    if (avs_json_error(&req->response, &req->err) != AVS_OK) {
        req->status = 500;
    }
}


void
avs_ingest_answer(avs_ingest_t *req)
{
    if (req->batch.err.rc != AVS_OK) {
        req->err = req->batch.err;
        avs_ingest_refuse(req);
        return;
    }

    req->response.len = 0;

    /* room for a one-file answer, so that it is built without growing */

    if (avs_buf_reserve(&req->response, AVS_INGEST_ANSWER_SIZE) != AVS_OK
        || avs_ingest_answer_json(req->work, req) != AVS_OK)
    {
        avs_err_set(&req->err, AVS_ENOMEM, "cannot build the answer");
        avs_ingest_refuse(req);
    }
}


void
avs_ingest_free(const avs_ingest_env_t *env, avs_ingest_t *req)
{
    avs_ingest_work_t  *w;
    size_t              i;

    w = req->work;

    if (w == NULL) {
        return;
    }

    for (i = 0; w->uploads != NULL && i < w->nfiles; i++) {
        avs_upload_free(&w->uploads[i], env->schemas);
    }

    if (w->uploads != &w->upload) {
        free(w->uploads);
        free(w->rows);
    }

    avs_envelope_free(&w->envl);
    free(w);

    req->work = NULL;
    req->batch.rows = NULL;
    req->batch.nrows = 0;
}


void
avs_ingest_run(const avs_ingest_env_t *env, avs_ingest_t *req)
{
    avs_batch_t  *one;

    if (avs_ingest_validate(env, req, 1) == AVS_OK) {
        one = &req->batch;

        if (avs_store_commit(env->store, &one, 1, &req->batch.err)
            != AVS_OK && req->batch.err.rc == AVS_OK)
        {
            avs_err_set(&req->batch.err, AVS_ESTORE, "commit failed");
        }

        avs_ingest_answer(req);
    }

    avs_ingest_free(env, req);
}
