/*
 * The upload location (avro_upload): reads the request body, hands it with
 * the request's names to the core in a pool thread, and answers with what
 * the core decided.  Nothing that can wait runs on the event loop.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_avro_module.h"


/* Bodies up to this size are validated on the event loop: that costs
 * less than handing them to a thread and back.  What they decompress to
 * is bounded by the core (AVS_INGEST_INLINE_BYTES). */
#define NGX_HTTP_AVRO_INLINE_MAX  (64 * 1024)


static void ngx_http_avro_upload_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_avro_upload_collect(ngx_http_request_t *r,
    ngx_http_avro_upload_ctx_t *ctx);
static const char *ngx_http_avro_upload_name(ngx_http_request_t *r,
    ngx_http_complex_value_t *cv, ngx_int_t *rc);
static ngx_int_t ngx_http_avro_upload_names(ngx_http_request_t *r,
    ngx_http_avro_upload_ctx_t *ctx);
static void ngx_http_avro_upload_validate(ngx_http_request_t *r,
    ngx_http_avro_upload_ctx_t *ctx);
static void ngx_http_avro_upload_thread(void *data, ngx_log_t *log);
static void ngx_http_avro_upload_validated(ngx_http_request_t *r);
static void ngx_http_avro_upload_cleanup(void *data);
static ngx_int_t ngx_http_avro_content_type(ngx_http_request_t *r,
    ngx_uint_t *json);


ngx_int_t
ngx_http_avro_upload_handler(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    ngx_uint_t                  json;
    ngx_http_avro_main_conf_t  *amcf;

    if (r->method != NGX_HTTP_POST) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_avro_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                        "method_not_allowed",
                                        "only POST uploads here");
    }

    if (ngx_http_avro_content_type(r, &json) != NGX_OK) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_avro_send_avs_error(r, AVS_EUNSUPPORTED,
                                        "Content-Type must be "
                                        "application/avro or "
                                        "application/json");
    }

    amcf = ngx_http_get_module_main_conf(r, ngx_http_avro_module);

    if (amcf->store == NULL) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_avro_send_avs_error(r, AVS_ESTORE,
                                        "hot store unavailable, "
                                        "see the error log");
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_avro_upload_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/* application/avro (a raw container file) or application/json (the
 * envelope), parameters such as charset ignored. */
static ngx_int_t
ngx_http_avro_content_type(ngx_http_request_t *r, ngx_uint_t *json)
{
    u_char     *p, *last;
    size_t      len;
    ngx_str_t  *type;

    if (r->headers_in.content_type == NULL) {
        return NGX_DECLINED;
    }

    type = &r->headers_in.content_type->value;
    last = type->data + type->len;

    for (p = type->data; p < last && *p != ';' && *p != ' '; p++) {
        /* void */
    }

    len = p - type->data;

    if (len == sizeof("application/avro") - 1
        && ngx_strncasecmp(type->data, (u_char *) "application/avro", len)
           == 0)
    {
        *json = 0;
        return NGX_OK;
    }

    if (len == sizeof("application/json") - 1
        && ngx_strncasecmp(type->data, (u_char *) "application/json", len)
           == 0)
    {
        *json = 1;
        return NGX_OK;
    }

    return NGX_DECLINED;
}


static void
ngx_http_avro_upload_body(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_time_t                  *tp;
    ngx_thread_task_t           *task;
    ngx_pool_cleanup_t          *cln;
    ngx_http_avro_loc_conf_t    *alcf;
    ngx_http_avro_main_conf_t   *amcf;
    ngx_http_avro_upload_ctx_t  *ctx;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_avro_module);
    alcf = ngx_http_get_module_loc_conf(r, ngx_http_avro_module);

    task = ngx_thread_task_alloc(r->pool, sizeof(ngx_http_avro_upload_ctx_t));
    if (task == NULL) {
        ngx_http_finalize_request(r, ngx_http_avro_send_no_memory(r));
        return;
    }

    ctx = task->ctx;
    ctx->request = r;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ngx_http_finalize_request(r, ngx_http_avro_send_no_memory(r));
        return;
    }

    cln->handler = ngx_http_avro_upload_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_avro_module);

    rc = ngx_http_avro_upload_collect(r, ctx);

    if (rc == NGX_DECLINED) {
        rc = ngx_http_avro_send_avs_error(r, AVS_EMALFORMED,
                                          "empty request body");
        ngx_http_finalize_request(r, rc);
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, ngx_http_avro_send_no_memory(r));
        return;
    }

    rc = ngx_http_avro_upload_names(r, ctx);
    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    ctx->env.store = amcf->store;
    ctx->env.schemas = amcf->schemas;
    ctx->env.allow = alcf->allow;
    ctx->env.limits.max_upload = alcf->max_upload;
    ctx->env.limits.max_schema = alcf->max_schema;
    ctx->env.limits.max_records = alcf->max_records;
    ctx->env.limits.max_depth = alcf->max_depth;
    ctx->env.codec = amcf->codec;
    ctx->env.level = amcf->level;
    tp = ngx_timeofday();
    ctx->ingest.now_ms = (int64_t) tp->sec * 1000 + (int64_t) tp->msec;

    task->handler = ngx_http_avro_upload_thread;

    if (ctx->nsegments == 0
        && ctx->ingest.body_len <= NGX_HTTP_AVRO_INLINE_MAX)
    {
        ctx->validated = avs_ingest_validate(&ctx->env, &ctx->ingest, 0);

        if (ctx->validated != AVS_DONE) {
            ngx_http_avro_upload_validate(r, ctx);
            return;
        }
    }

    ctx->waiting = 1;

    if (ngx_http_avro_post_task(r, task, ngx_http_avro_upload_validated)
        != NGX_OK)
    {
        ngx_http_finalize_request(r, ngx_http_avro_send_pool_full(r));
        return;
    }
}


/* Queues a validated upload for the group commit, or answers a refusal. */
static void
ngx_http_avro_upload_validate(ngx_http_request_t *r,
    ngx_http_avro_upload_ctx_t *ctx)
{
    ngx_http_avro_main_conf_t  *amcf;

    if (ctx->validated != AVS_OK) {
        ngx_http_avro_upload_answer(r);
        return;
    }

    amcf = ngx_http_get_module_main_conf(r, ngx_http_avro_module);

    if (ngx_http_avro_commit(amcf->committer, ctx) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "avro: cannot start a commit");
    }
}


/*
 * Lays the body out in one contiguous piece (NGX_DECLINED: no body,
 * NGX_ERROR: no memory).
 * Parts in memory are copied now; parts nginx buffered to a temporary
 * file are noted and read in the pool thread, since reading a file can
 * wait.
 */
static ngx_int_t
ngx_http_avro_upload_collect(ngx_http_request_t *r,
    ngx_http_avro_upload_ctx_t *ctx)
{
    u_char                   *p;
    off_t                     total;
    ngx_buf_t                *b;
    ngx_uint_t                n;
    ngx_chain_t              *cl;
    ngx_http_avro_segment_t  *seg;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_DECLINED;
    }

    total = 0;
    n = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;
        total += b->in_file ? b->file_last - b->file_pos : b->last - b->pos;
        n += b->in_file;
    }

    if (total == 0) {
        return NGX_DECLINED;
    }

    cl = r->request_body->bufs;

    if (cl->next == NULL && !cl->buf->in_file) {
        ctx->ingest.body = cl->buf->pos;
        ctx->ingest.body_len = cl->buf->last - cl->buf->pos;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, (size_t) total);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->ingest.body = p;
    ctx->ingest.body_len = (size_t) total;

    if (n) {
        ctx->segments = ngx_palloc(r->pool,
                                   n * sizeof(ngx_http_avro_segment_t));
        if (ctx->segments == NULL) {
            return NGX_ERROR;
        }
    }

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (!b->in_file) {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
            continue;
        }

        seg = &ctx->segments[ctx->nsegments++];
        seg->dst = p;
        seg->fd = b->file->fd;
        seg->offset = b->file_pos;
        seg->len = (size_t) (b->file_last - b->file_pos);
        p += seg->len;
    }

    return NGX_OK;
}


/*
 * A name the location sets.  When set, its value is the name even when
 * empty (a 400 then), never a fall back to what the client sends: an
 * authenticated variable that comes out empty must not let the client
 * pick the dataset.
 */
static const char *
ngx_http_avro_upload_name(ngx_http_request_t *r,
    ngx_http_complex_value_t *cv, ngx_int_t *rc)
{
    const char  *v;

    v = ngx_http_avro_cv(r, cv, rc);

    return (v == NULL && cv != NULL) ? "" : v;
}


static ngx_int_t
ngx_http_avro_upload_names(ngx_http_request_t *r,
    ngx_http_avro_upload_ctx_t *ctx)
{
    ngx_int_t                  rc;
    ngx_uint_t                 json;
    avs_ingest_t              *in;
    ngx_http_avro_loc_conf_t  *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_avro_module);
    in = &ctx->ingest;
    rc = NGX_OK;

    json = 0;
    (void) ngx_http_avro_content_type(r, &json);
    in->json = (int) json;

    in->dataset = ngx_http_avro_upload_name(r, alcf->dataset, &rc);
    in->table = ngx_http_avro_upload_name(r, alcf->table, &rc);
    in->period = ngx_http_avro_upload_name(r, alcf->period, &rc);
    in->uploaded_by = ngx_http_avro_cv(r, alcf->uploaded_by, &rc);
    in->arg_dataset = ngx_http_avro_arg(r, "dataset_id", 10, &rc);
    in->arg_table = ngx_http_avro_arg(r, "table", 5, &rc);
    in->arg_period = ngx_http_avro_arg(r, "period_tag", 10, &rc);

    if (in->arg_table == NULL) {
        in->arg_table = ngx_http_avro_arg(r, "table_name", 10, &rc);
    }

    return rc;
}


/* Runs in a pool thread. */
static void
ngx_http_avro_upload_thread(void *data, ngx_log_t *log)
{
    ngx_http_avro_upload_ctx_t *ctx = data;

    ssize_t                   n;
    size_t                    done;
    ngx_uint_t                i;
    ngx_http_avro_segment_t  *seg;

    for (i = 0; i < ctx->nsegments; i++) {
        seg = &ctx->segments[i];

        for (done = 0; done < seg->len; done += n) {
            n = pread(seg->fd, seg->dst + done, seg->len - done,
                      seg->offset + done);

            if (n <= 0) {
                ctx->read_errno = (n == 0) ? NGX_EINVAL : ngx_errno;
                return;
            }
        }
    }

    ctx->validated = avs_ingest_validate(&ctx->env, &ctx->ingest, 1);
}


static void
ngx_http_avro_upload_validated(ngx_http_request_t *r)
{
    ngx_http_avro_upload_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_avro_module);

    if (r->aio) {
        return;
    }

    ctx->waiting = 0;
    r->write_event_handler = ngx_http_request_empty_handler;

    if (ctx->read_errno) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, ctx->read_errno,
                      "avro: reading the buffered request body failed");
        ngx_http_finalize_request(r,
            ngx_http_avro_send_avs_error(r, AVS_EINTERNAL,
                                         "the request body nginx buffered "
                                         "to a file could not be read"));
        return;
    }

    ngx_http_avro_upload_validate(r, ctx);
}


/* Answers once the upload was refused, or its batch committed or not. */
void
ngx_http_avro_upload_answer(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_uint_t                   level;
    avs_ingest_t                *in;
    ngx_http_avro_upload_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_avro_module);

    if (ctx->waiting) {
        return;
    }

    in = &ctx->ingest;

    if (ctx->validated == AVS_OK) {
        avs_ingest_answer(in);
    }

    if (in->status >= 400) {
        level = in->status >= 500 ? NGX_LOG_ERR : NGX_LOG_INFO;
        ngx_log_error(level, r->connection->log, 0,
                      "avro: upload refused with %i: %s",
                      (ngx_int_t) in->status, in->err.msg);
    }

    r->write_event_handler = ngx_http_request_empty_handler;

    rc = ngx_http_avro_send_json(r, in->status, in->response.data,
                                 in->response.len);

    ngx_http_finalize_request(r, rc);
}


static void
ngx_http_avro_upload_cleanup(void *data)
{
    ngx_http_avro_upload_ctx_t *ctx = data;

    avs_ingest_free(&ctx->env, &ctx->ingest);
    avs_buf_free(&ctx->ingest.response);
}
