/*
 * The read location (avro_read): one dataset's data of one table as one
 * Avro container file.  The plan (header, archived ranges, hot blocks) is
 * read from one SQLite snapshot in a pool thread; then the header goes
 * out, each archived range is fetched by a subrequest to the operator's
 * internal location (alias for file:, proxy_pass for S3, with the $avro_*
 * variables below), one at a time, and the hot blocks end the answer.
 *
 * Every byte of a subrequest passes the filters here before it reaches
 * the client: a part whose status, Content-Range or length is not exactly
 * the range asked for aborts the answer (the client sees a transfer cut
 * short of its Content-Length) and the error log names the object and the
 * range.  The module sits before the copy filter, so its body filter sees
 * a part's bytes after nginx's range filter has cut them and before the
 * postpone filter merges them into the answer.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_avro_module.h"
#include "avs_names.h"
#include "avs_read.h"


typedef struct ngx_http_avro_read_ctx_s  ngx_http_avro_read_ctx_t;

/* The archived range being fetched: the context of its subrequest. */
typedef struct {
    void                      *tag;         /* &ngx_http_avro_part_tag */
    ngx_http_avro_read_ctx_t  *read;
    ngx_http_request_t        *request;
    avs_read_range_t          *range;
    ngx_str_t                  range_value; /* "bytes=first-last" */
    off_t                      received;
    ngx_uint_t                 header_ok;
    avs_objstore_signed_t      sig;         /* S3 stores only */
} ngx_http_avro_part_t;

struct ngx_http_avro_read_ctx_s {
    avs_store_t               *store;
    avs_read_query_t           query;
    avs_read_plan_t            plan;
    avs_rc_t                   rc;
    avs_err_t                  err;
    ngx_uint_t                 next;        /* ranges asked for so far */
    ngx_http_avro_part_t      *part;        /* in flight, else NULL */
    ngx_http_avro_part_t      *parts;       /* the one part, reused */
};


static ngx_int_t ngx_http_avro_read_query(ngx_http_request_t *r,
    avs_read_query_t *q, avs_err_t *err);
static ngx_int_t ngx_http_avro_read_time(ngx_http_request_t *r, char *name,
    size_t len, int64_t *ms, avs_err_t *err);
static void ngx_http_avro_read_thread(void *data, ngx_log_t *log);
static void ngx_http_avro_read_planned(ngx_http_request_t *r);
static ngx_int_t ngx_http_avro_read_send_conflict(ngx_http_request_t *r,
    ngx_http_avro_read_ctx_t *ctx);
static void ngx_http_avro_read_next(ngx_http_request_t *r);
static ngx_int_t ngx_http_avro_read_fetch(ngx_http_request_t *r,
    ngx_http_avro_read_ctx_t *ctx);
static ngx_int_t ngx_http_avro_read_part_done(ngx_http_request_t *sr,
    void *data, ngx_int_t rc);
static ngx_int_t ngx_http_avro_read_finish(ngx_http_request_t *r,
    ngx_http_avro_read_ctx_t *ctx);
static void ngx_http_avro_read_cleanup(void *data);
static ngx_http_avro_part_t *ngx_http_avro_part(ngx_http_request_t *r);
static ngx_int_t ngx_http_avro_part_header_ok(ngx_http_request_t *r,
    ngx_http_avro_part_t *part);
static ngx_int_t ngx_http_avro_read_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_avro_read_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_avro_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


/* The values of the $avro_* variables. */
enum {
    NGX_HTTP_AVRO_VAR_RANGE = 0,
    NGX_HTTP_AVRO_VAR_OBJECT,
    NGX_HTTP_AVRO_VAR_S3_AUTHORIZATION,
    NGX_HTTP_AVRO_VAR_S3_DATE,
    NGX_HTTP_AVRO_VAR_S3_CONTENT_SHA256,
    NGX_HTTP_AVRO_VAR_S3_HOST,
    NGX_HTTP_AVRO_VAR_S3_SECURITY_TOKEN
};


static ngx_http_variable_t  ngx_http_avro_vars[] = {

    { ngx_string("avro_range"), NULL, ngx_http_avro_variable,
      NGX_HTTP_AVRO_VAR_RANGE, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("avro_object"), NULL, ngx_http_avro_variable,
      NGX_HTTP_AVRO_VAR_OBJECT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("avro_s3_authorization"), NULL, ngx_http_avro_variable,
      NGX_HTTP_AVRO_VAR_S3_AUTHORIZATION, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("avro_s3_date"), NULL, ngx_http_avro_variable,
      NGX_HTTP_AVRO_VAR_S3_DATE, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("avro_s3_content_sha256"), NULL, ngx_http_avro_variable,
      NGX_HTTP_AVRO_VAR_S3_CONTENT_SHA256, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("avro_s3_host"), NULL, ngx_http_avro_variable,
      NGX_HTTP_AVRO_VAR_S3_HOST, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("avro_s3_security_token"), NULL, ngx_http_avro_variable,
      NGX_HTTP_AVRO_VAR_S3_SECURITY_TOKEN, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_str_t  ngx_http_avro_type = ngx_string("application/avro");

/* Marks a module context as a part: other contexts never point here. */
static u_char  ngx_http_avro_part_tag;

static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


ngx_int_t
ngx_http_avro_read_handler(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    avs_err_t                   err;
    ngx_thread_task_t          *task;
    ngx_http_avro_read_ctx_t   *ctx;
    ngx_http_avro_main_conf_t  *amcf;

    rc = ngx_http_avro_get_checks(r, "reads are GET or HEAD");
    if (rc != NGX_DECLINED) {
        return rc;
    }

    amcf = ngx_http_get_module_main_conf(r, ngx_http_avro_module);

    task = ngx_http_avro_task_alloc(r, sizeof(ngx_http_avro_read_ctx_t),
                                    ngx_http_avro_read_cleanup);
    if (task == NULL) {
        return ngx_http_avro_send_no_memory(r);
    }

    ctx = task->ctx;
    ctx->store = amcf->store;

    rc = ngx_http_avro_read_query(r, &ctx->query, &err);

    if (rc == NGX_DECLINED) {
        return ngx_http_avro_send_avs_error(r, err.rc, err.msg);
    }

    if (rc != NGX_OK) {
        return ngx_http_avro_send_no_memory(r);
    }

    task->handler = ngx_http_avro_read_thread;

    if (ngx_http_avro_post_task(r, task, ngx_http_avro_read_planned)
        != NGX_OK)
    {
        return ngx_http_avro_send_pool_full(r);
    }

    r->main->count++;

    return NGX_DONE;
}


/*
 * Who and what, from the location (avro_dataset, avro_table, avro_period)
 * or else the query string; NGX_DECLINED with err set on a bad request.
 */
static ngx_int_t
ngx_http_avro_read_query(ngx_http_request_t *r, avs_read_query_t *q,
    avs_err_t *err)
{
    size_t                     i;
    ngx_int_t                  rc;
    const char                *schema;
    ngx_http_avro_loc_conf_t  *alcf;
    ngx_http_core_loc_conf_t  *clcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_avro_module);
    rc = NGX_OK;

    q->dataset = ngx_http_avro_cv(r, alcf->dataset, &rc);
    if (q->dataset == NULL && alcf->dataset == NULL) {
        q->dataset = ngx_http_avro_arg(r, "dataset_id", 10, &rc);
    }

    q->table = ngx_http_avro_cv(r, alcf->table, &rc);
    if (q->table == NULL && alcf->table == NULL) {
        q->table = ngx_http_avro_arg(r, "table", 5, &rc);
        if (q->table == NULL) {
            q->table = ngx_http_avro_arg(r, "table_name", 10, &rc);
        }
    }

    q->period = ngx_http_avro_cv(r, alcf->period, &rc);
    if (q->period == NULL && alcf->period == NULL) {
        q->period = ngx_http_avro_arg(r, "period_tag", 10, &rc);
        if (q->period == NULL) {
            q->period = ngx_http_avro_arg(r, "period", 6, &rc);
        }
    }

    schema = ngx_http_avro_arg(r, "schema", 6, &rc);

    if (rc != NGX_OK) {
        return rc;
    }

    if (q->dataset == NULL) {
        avs_err_set(err, AVS_EMALFORMED, "dataset_id: missing");
        return NGX_DECLINED;
    }

    if (q->table == NULL) {
        avs_err_set(err, AVS_EMALFORMED, "table: missing");
        return NGX_DECLINED;
    }

    if (avs_name_check("dataset_id", q->dataset, ngx_strlen(q->dataset), err)
        != AVS_OK
        || avs_name_check("table", q->table, ngx_strlen(q->table), err)
           != AVS_OK
        || (q->period != NULL
            && avs_name_check("period_tag", q->period,
                              ngx_strlen(q->period), err)
               != AVS_OK))
    {
        return NGX_DECLINED;
    }

    if (schema != NULL) {
        for (i = 0; schema[i]; i++) {
            if (!((schema[i] >= '0' && schema[i] <= '9')
                  || (schema[i] >= 'a' && schema[i] <= 'f')))
            {
                break;
            }
        }

        if (i != 16 || schema[i] != '\0') {
            avs_err_set(err, AVS_EMALFORMED, "schema: a fingerprint is 16 "
                        "lower case hexadecimal digits");
            return NGX_DECLINED;
        }
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    /* hot blocks past avro_read_hot_memory wait in nginx's temp directory */
    q->hot_memory = alcf->read_hot_memory;
    q->spill_dir = (const char *) clcf->client_body_temp_path->name.data;

    q->fingerprint = schema;
    q->from_ms = INT64_MIN;
    q->to_ms = INT64_MAX;

    rc = ngx_http_avro_read_time(r, "from", 4, &q->from_ms, err);

    if (rc == NGX_OK) {
        rc = ngx_http_avro_read_time(r, "to", 2, &q->to_ms, err);
    }

    if (rc == NGX_OK && q->from_ms > q->to_ms) {
        avs_err_set(err, AVS_EMALFORMED, "from: after to");
        rc = NGX_DECLINED;
    }

    return rc;
}


/* A time argument: milliseconds since the epoch, digits only. */
static ngx_int_t
ngx_http_avro_read_time(ngx_http_request_t *r, char *name, size_t len,
    int64_t *ms, avs_err_t *err)
{
    off_t      n;
    ngx_str_t  v;

    if (ngx_http_arg(r, (u_char *) name, len, &v) != NGX_OK) {
        return NGX_OK;
    }

    n = (v.len > 0 && v.len <= 18) ? ngx_atoof(v.data, v.len) : NGX_ERROR;

    if (n == NGX_ERROR) {
        avs_err_set(err, AVS_EMALFORMED, "%s: milliseconds since the "
                    "epoch, digits only", name);
        return NGX_DECLINED;
    }

    *ms = (int64_t) n;

    return NGX_OK;
}


/* Runs in a pool thread. */
static void
ngx_http_avro_read_thread(void *data, ngx_log_t *log)
{
    ngx_http_avro_read_ctx_t *ctx = data;

    ctx->rc = avs_read_plan(ctx->store, &ctx->query, &ctx->plan, &ctx->err);
}


/* The plan is read: answer an error, or start the file. */
static void
ngx_http_avro_read_planned(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_buf_t                 *b;
    ngx_chain_t                out;
    ngx_table_elt_t           *h;
    ngx_http_avro_read_ctx_t  *ctx;
    ngx_http_avro_loc_conf_t  *alcf;

    if (r->aio) {
        return;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_avro_module);

    r->write_event_handler = ngx_http_request_empty_handler;

    if (ctx->rc == AVS_ECONFLICT) {
        ngx_http_finalize_request(r,
                                  ngx_http_avro_read_send_conflict(r, ctx));
        return;
    }

    if (ctx->rc != AVS_OK) {
        ngx_http_finalize_request(r,
                                  ngx_http_avro_send_avs_error(r, ctx->rc,
                                                              ctx->err.msg));
        return;
    }

    /* every range is a subrequest, and a subrequest's memory stays in the
     * request's pool until the answer ends */

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_avro_module);

    if (ctx->plan.nranges > alcf->read_max_ranges) {
        ngx_http_finalize_request(r,
            ngx_http_avro_send_avs_error(r, AVS_ETOOLARGE,
                                         "the data is in more archived "
                                         "ranges than avro_read_max_ranges: "
                                         "read fewer periods at a time "
                                         "(period_tag, from, to)"));
        return;
    }

    ngx_log_debug5(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "avro read: %uz ranges, %uL cold bytes, %uL hot rows, "
                   "%uL hot bytes, schema \"%s\"", ctx->plan.nranges,
                   ctx->plan.cold_bytes, ctx->plan.hot_rows,
                   ctx->plan.hot.len + ctx->plan.hot_file_bytes,
                   ctx->plan.fingerprint);

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = avs_read_plan_size(&ctx->plan);
    r->headers_out.content_type = ngx_http_avro_type;
    r->headers_out.content_type_len = ngx_http_avro_type.len;
    r->headers_out.content_type_lowcase = NULL;

    if (ctx->plan.fingerprint[0]) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            ngx_http_finalize_request(r, ngx_http_avro_send_no_memory(r));
            return;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "X-Avro-Schema");
        h->value.data = (u_char *) ctx->plan.fingerprint;
        h->value.len = ngx_strlen(ctx->plan.fingerprint);
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    b->pos = ctx->plan.header.data;
    b->last = b->pos + ctx->plan.header.len;
    b->memory = 1;

    out.buf = b;
    out.next = NULL;

    rc = ngx_http_output_filter(r, &out);

    if (rc == NGX_ERROR) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    r->write_event_handler = ngx_http_avro_read_next;

    ngx_http_avro_read_next(r);
}


/*
 * 409: {"status", "error", "message", "schemas": [{"fingerprint",
 * "periods"}]}, so that the client can ask again with schema=.
 */
static ngx_int_t
ngx_http_avro_read_send_conflict(ngx_http_request_t *r,
    ngx_http_avro_read_ctx_t *ctx)
{
    u_char     *p, *body;
    size_t      len;
    avs_buf_t  *s;

    s = &ctx->plan.schemas;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0, "avro: 409 %s",
                  ctx->err.msg);

    len = sizeof("{\"status\":409,\"error\":\"conflict\",\"message\":\"\","
                 "\"schemas\":}\n") - 1 + ngx_strlen(ctx->err.msg) + s->len;

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the message is the core's own text: no quote or backslash in it */
    p = ngx_sprintf(body, "{\"status\":409,\"error\":\"conflict\","
                    "\"message\":\"%s\",\"schemas\":", ctx->err.msg);
    p = ngx_cpymem(p, s->data, s->len);
    p = ngx_cpymem(p, "}\n", 2);

    return ngx_http_avro_send_json(r, NGX_HTTP_CONFLICT, body, p - body);
}


/*
 * The answer's write handler between parts: runs when a part's subrequest
 * has ended (nginx posts the parent then) and on write events while no
 * part is active.  Checks the part that ended, then fetches the next range
 * or ends the answer with the hot blocks.
 */
static void
ngx_http_avro_read_next(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_http_avro_part_t      *part;
    ngx_http_avro_read_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_avro_module);
    part = ctx->part;

    if (part != NULL) {
        if (!part->request->done) {
            return;
        }

        ctx->part = NULL;

        if (!part->header_ok || part->received != (off_t) part->range->length)
        {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "avro read: \"%s\" bytes %uL-%uL: the store sent "
                          "%O of %uL bytes, answer aborted",
                          part->range->key, part->range->offset,
                          part->range->offset + part->range->length - 1,
                          part->received, part->range->length);
            ngx_http_finalize_request(r, NGX_ERROR);
            return;
        }
    }

    if (ctx->next < ctx->plan.nranges) {
        if (ngx_http_avro_read_fetch(r, ctx) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_ERROR);
        }

        return;
    }

    rc = ngx_http_avro_read_finish(r, ctx);

    r->write_event_handler = ngx_http_request_empty_handler;

    ngx_http_finalize_request(r, rc);
}


/* Starts the subrequest of the next range, signed for S3 stores. */
static ngx_int_t
ngx_http_avro_read_fetch(ngx_http_request_t *r, ngx_http_avro_read_ctx_t *ctx)
{
    u_char                       *p;
    size_t                        len;
    avs_err_t                     err;
    ngx_str_t                     uri;
    avs_read_range_t             *range;
    ngx_table_elt_t              *h;
    ngx_http_request_t           *sr;
    ngx_http_avro_part_t         *part;
    ngx_http_avro_loc_conf_t     *alcf;
    ngx_http_avro_main_conf_t    *amcf;
    ngx_http_post_subrequest_t   *ps;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_avro_module);
    amcf = ngx_http_get_module_main_conf(r, ngx_http_avro_module);

    range = &ctx->plan.ranges[ctx->next++];

    if (ctx->parts == NULL) {
        ctx->parts = ngx_pcalloc(r->pool, sizeof(ngx_http_avro_part_t));
        if (ctx->parts == NULL) {
            return NGX_ERROR;
        }

        ctx->parts->range_value.data = ngx_pnalloc(r->pool,
                                                   sizeof("bytes=-") - 1
                                                   + 2 * NGX_OFF_T_LEN);
        if (ctx->parts->range_value.data == NULL) {
            return NGX_ERROR;
        }
    }

    part = ctx->parts;
    part->tag = &ngx_http_avro_part_tag;
    part->read = ctx;
    part->range = range;
    part->received = 0;
    part->header_ok = 0;

    p = ngx_sprintf(part->range_value.data, "bytes=%uL-%uL%Z", range->offset,
                    range->offset + range->length - 1);
    part->range_value.len = p - part->range_value.data - 1;

    if (amcf->objstore != NULL && avs_objstore_is_s3(amcf->objstore)) {
        if (avs_objstore_sign_get(amcf->objstore, range->key,
                                  (const char *) part->range_value.data,
                                  &part->sig, &err)
            != AVS_OK)
        {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "avro read: \"%s\": %s", range->key, err.msg);
            return NGX_ERROR;
        }
    }

    len = ngx_strlen(range->key);

    uri.len = alcf->read_uri.len + len;
    uri.data = ngx_pnalloc(r->pool, uri.len);
    if (uri.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(uri.data, alcf->read_uri.data, alcf->read_uri.len);
    ngx_memcpy(p, range->key, len);

    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    if (ps == NULL) {
        return NGX_ERROR;
    }

    ps->handler = ngx_http_avro_read_part_done;
    ps->data = part;

    if (ngx_http_subrequest(r, &uri, NULL, &sr, ps,
                            NGX_HTTP_SUBREQUEST_WAITED)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* the part's Range only: none of the client's conditions */

    h = ngx_pcalloc(r->pool, sizeof(ngx_table_elt_t));
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Range");
    h->value = part->range_value;

    sr->headers_in.range = h;
    sr->headers_in.if_range = NULL;
    sr->headers_in.if_match = NULL;
    sr->headers_in.if_none_match = NULL;
    sr->headers_in.if_modified_since = NULL;
    sr->headers_in.if_unmodified_since = NULL;
    sr->subrequest_ranges = 1;

    part->request = sr;
    ctx->part = part;

    ngx_http_set_ctx(sr, part, ngx_http_avro_module);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "avro read: fetch \"%V\" %V (%uL bytes)", &uri,
                   &part->range_value, range->length);

    return NGX_OK;
}


/*
 * A part's subrequest is finalized (perhaps more than once: while its
 * output waits, then for good).  An error ends the whole answer at once:
 * NGX_ERROR from here makes nginx terminate the main request.
 */
static ngx_int_t
ngx_http_avro_read_part_done(ngx_http_request_t *sr, void *data,
    ngx_int_t rc)
{
    ngx_http_avro_part_t *part = data;

    if (rc == NGX_OK || rc == NGX_AGAIN || rc == NGX_DONE) {
        return rc;
    }

    /* the client's doing: nginx has told it at the info level */

    if (sr->connection->error || rc == NGX_HTTP_CLIENT_CLOSED_REQUEST) {
        ngx_log_error(NGX_LOG_INFO, sr->connection->log, 0,
                      "avro read: the client went away during \"%s\"",
                      part->range->key);
        return NGX_ERROR;
    }

    if (sr->connection->timedout) {
        ngx_log_error(NGX_LOG_INFO, sr->connection->log, 0,
                      "avro read: the client timed out during \"%s\"",
                      part->range->key);
        return NGX_ERROR;
    }

    ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                  "avro read: \"%s\" bytes %uL-%uL: the fetch failed "
                  "(%i, status %ui), answer aborted", part->range->key,
                  part->range->offset,
                  part->range->offset + part->range->length - 1, rc,
                  sr->headers_out.status);

    return NGX_ERROR;
}


/* The hot blocks and the end of the answer. */
static ngx_int_t
ngx_http_avro_read_finish(ngx_http_request_t *r,
    ngx_http_avro_read_ctx_t *ctx)
{
    ngx_buf_t    *b;
    ngx_chain_t   out;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    if (ctx->plan.hot_in_file) {
        b->file = ngx_pcalloc(r->pool, sizeof(ngx_file_t));
        if (b->file == NULL) {
            return NGX_ERROR;
        }

        /* the plan closes the descriptor when the request ends */
        b->file->fd = ctx->plan.hot_fd;
        ngx_str_set(&b->file->name, "avro read hot rows");
        b->file->log = r->connection->log;
        b->file_pos = 0;
        b->file_last = ctx->plan.hot_file_bytes;
        b->in_file = 1;

    } else if (ctx->plan.hot.len > 0) {
        b->pos = ctx->plan.hot.data;
        b->last = b->pos + ctx->plan.hot.len;
        b->memory = 1;
    }

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static void
ngx_http_avro_read_cleanup(void *data)
{
    ngx_http_avro_read_ctx_t *ctx = data;

    avs_read_plan_free(&ctx->plan);
}


/* The part a subrequest fetches, or NULL for any other request. */
static ngx_http_avro_part_t *
ngx_http_avro_part(ngx_http_request_t *r)
{
    ngx_http_avro_part_t  *part;

    if (r == r->main) {
        return NULL;
    }

    part = ngx_http_get_module_ctx(r, ngx_http_avro_module);

    if (part == NULL || part->tag != &ngx_http_avro_part_tag) {
        return NULL;
    }

    return part;
}


/*
 * A part's answer must be exactly its range: 206 with that Content-Range
 * (a proxied store), or 200 from a location that nginx's range filter will
 * cut (the static module: allow_ranges and the whole object's length).
 */
static ngx_int_t
ngx_http_avro_part_header_ok(ngx_http_request_t *r,
    ngx_http_avro_part_t *part)
{
    off_t              first, last, len;
    u_char            *p, *end, *dash;
    avs_read_range_t  *range;

    range = part->range;
    len = r->headers_out.content_length_n;

    if (r->headers_out.status == NGX_HTTP_OK) {
        return (r->allow_ranges
                && len >= (off_t) (range->offset + range->length))
               ? NGX_OK : NGX_DECLINED;
    }

    if (r->headers_out.status != NGX_HTTP_PARTIAL_CONTENT
        || (len != -1 && len != (off_t) range->length)
        || r->headers_out.content_range == NULL)
    {
        return NGX_DECLINED;
    }

    /* "bytes first-last/total" */

    p = r->headers_out.content_range->value.data;
    end = p + r->headers_out.content_range->value.len;

    if (end - p < 6 || ngx_strncasecmp(p, (u_char *) "bytes ", 6) != 0) {
        return NGX_DECLINED;
    }

    p += 6;

    dash = ngx_strlchr(p, end, '-');
    if (dash == NULL) {
        return NGX_DECLINED;
    }

    first = ngx_atoof(p, dash - p);

    p = ngx_strlchr(dash, end, '/');
    if (p == NULL) {
        return NGX_DECLINED;
    }

    last = ngx_atoof(dash + 1, p - dash - 1);

    if (first != (off_t) range->offset
        || last != (off_t) (range->offset + range->length - 1))
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_avro_read_header_filter(ngx_http_request_t *r)
{
    ngx_table_elt_t       *cr;
    ngx_http_avro_part_t  *part;

    part = ngx_http_avro_part(r);

    if (part == NULL) {
        return ngx_http_next_header_filter(r);
    }

    if (ngx_http_avro_part_header_ok(r, part) != NGX_OK) {
        cr = r->headers_out.content_range;

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "avro read: \"%s\" bytes %uL-%uL: the store answered "
                      "%ui, Content-Length %O, Content-Range \"%V\"; "
                      "answer aborted", part->range->key,
                      part->range->offset,
                      part->range->offset + part->range->length - 1,
                      r->headers_out.status,
                      r->headers_out.content_length_n,
                      cr ? &cr->value : &part->range_value);
        return NGX_ERROR;
    }

    part->header_ok = 1;

    return ngx_http_next_header_filter(r);
}


/* Counts a part's bytes; one past its range ends the answer. */
static ngx_int_t
ngx_http_avro_read_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    off_t                  size;
    ngx_chain_t           *cl;
    ngx_http_avro_part_t  *part;

    part = ngx_http_avro_part(r);

    if (part == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    if (!part->header_ok) {
        return NGX_ERROR;
    }

    size = 0;

    for (cl = in; cl; cl = cl->next) {
        size += ngx_buf_size(cl->buf);
    }

    if (part->received + size > (off_t) part->range->length) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "avro read: \"%s\" bytes %uL-%uL: the store sent "
                      "more than %uL bytes; answer aborted",
                      part->range->key, part->range->offset,
                      part->range->offset + part->range->length - 1,
                      part->range->length);
        return NGX_ERROR;
    }

    part->received += size;

    return ngx_http_next_body_filter(r, in);
}


static ngx_int_t
ngx_http_avro_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    const char            *s;
    ngx_http_avro_part_t  *part;

    part = ngx_http_avro_part(r);

    if (part == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    switch (data) {

    case NGX_HTTP_AVRO_VAR_RANGE:
        s = (const char *) part->range_value.data;
        break;

    case NGX_HTTP_AVRO_VAR_OBJECT:
        s = part->sig.path[0] ? part->sig.path : part->range->key;
        break;

    case NGX_HTTP_AVRO_VAR_S3_AUTHORIZATION:
        s = part->sig.authorization;
        break;

    case NGX_HTTP_AVRO_VAR_S3_DATE:
        s = part->sig.amz_date;
        break;

    case NGX_HTTP_AVRO_VAR_S3_CONTENT_SHA256:
        s = part->sig.content_sha256;
        break;

    case NGX_HTTP_AVRO_VAR_S3_HOST:
        s = part->sig.host;
        break;

    default: /* NGX_HTTP_AVRO_VAR_S3_SECURITY_TOKEN */
        s = part->sig.security_token;
    }

    if (s == NULL || s[0] == '\0') {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = (u_char *) s;
    v->len = ngx_strlen(s);
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


ngx_int_t
ngx_http_avro_read_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_avro_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_avro_read_init_filters(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_avro_read_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_avro_read_body_filter;

    return NGX_OK;
}
