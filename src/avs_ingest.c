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

typedef struct {
    const char      *dataset;
    const char      *table;
    const char      *period;
    char             date[11];
    size_t           nfiles;
    avs_upload_t    *uploads;
    avs_row_t       *rows;
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
    avs_err_t *err)
{
    avs_upload_t  *u;
    avs_stream_t   stream;
    avs_row_t     *row;
    avs_rc_t       rc;

    u = &w->uploads[i];

    rc = avs_upload_open(u, file, len, env->schemas, &env->limits, err);
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

    rc = avs_store_stream(env->store, w->table, u->schema, env->codec,
                          &stream, err);
    if (rc != AVS_OK) {
        return rc;
    }

    rc = avs_upload_reframe(u, stream.codec,
                            stream.codec == env->codec ? env->level : 0,
                            stream.sync, &env->limits, err);
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
avs_ingest_answer(avs_ingest_work_t *w, avs_ingest_t *req)
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


void
avs_ingest_run(const avs_ingest_env_t *env, avs_ingest_t *req)
{
    avs_ingest_work_t   w;
    avs_envelope_t      envl;
    avs_batch_t         batch;
    avs_err_t          *err;
    avs_rc_t            rc;
    const uint8_t      *file;
    size_t              i, len;

    memset(&w, 0, sizeof(w));
    memset(&envl, 0, sizeof(envl));
    err = &req->err;
    memset(err, 0, sizeof(*err));

    if (req->json) {
        rc = avs_envelope_parse(req->body, req->body_len, req->body_len,
                                &envl, err);
        if (rc != AVS_OK) {
            goto done;
        }

        w.nfiles = envl.nfiles;

    } else {
        w.nfiles = 1;
    }

    rc = avs_ingest_names(&w, req, &envl, err);
    if (rc != AVS_OK) {
        goto done;
    }

    w.uploads = calloc(w.nfiles, sizeof(avs_upload_t));
    w.rows = calloc(w.nfiles, sizeof(avs_row_t));

    if (w.uploads == NULL || w.rows == NULL) {
        rc = avs_err_set(err, AVS_ENOMEM, "out of memory");
        goto done;
    }

    for (i = 0; i < w.nfiles; i++) {
        file = req->json ? envl.files[i].data : req->body;
        len = req->json ? envl.files[i].len : req->body_len;

        rc = avs_ingest_file(env, req, &w, i, file, len, err);
        if (rc != AVS_OK) {
            avs_ingest_slice_error(err, i, w.nfiles);
            goto done;
        }
    }

    batch.rows = w.rows;
    batch.nrows = w.nfiles;
    memset(&batch.err, 0, sizeof(batch.err));

    rc = avs_committer_submit(env->committer, &batch);
    if (rc != AVS_OK) {
        *err = batch.err;
        goto done;
    }

    rc = avs_ingest_answer(&w, req);
    if (rc != AVS_OK) {
        avs_err_set(err, rc, "cannot build the answer");
    }

done:

    if (rc != AVS_OK) {
        if (err->rc == AVS_OK) {
            avs_err_set(err, rc, "%s", avs_rc_name(rc));
        }

        req->status = avs_rc_http_status(err->rc);
        req->response.len = 0;
        avs_json_error(&req->response, err);
    }

    for (i = 0; w.uploads != NULL && i < w.nfiles; i++) {
        avs_upload_free(&w.uploads[i], env->schemas);
    }

    free(w.uploads);
    free(w.rows);
    avs_envelope_free(&envl);
}
