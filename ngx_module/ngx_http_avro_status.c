/*
 * The status location (avro_status): the hot store's counters as JSON,
 * read in a pool thread because a SQLite read can wait.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_avro_module.h"
#include "avs_status.h"


typedef struct {
    avs_store_t  *store;
    const char   *path;
    int           archive;
    avs_buf_t     body;
    avs_err_t     err;
    avs_rc_t      rc;
} ngx_http_avro_status_ctx_t;


static void ngx_http_avro_status_thread(void *data, ngx_log_t *log);
static void ngx_http_avro_status_done(ngx_http_request_t *r);
static void ngx_http_avro_status_cleanup(void *data);


ngx_int_t
ngx_http_avro_status_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_thread_task_t           *task;
    ngx_http_avro_main_conf_t   *amcf;
    ngx_http_avro_status_ctx_t  *ctx;

    rc = ngx_http_avro_get_checks(r, "the status answers GET and HEAD");
    if (rc != NGX_DECLINED) {
        return rc;
    }

    amcf = ngx_http_get_module_main_conf(r, ngx_http_avro_module);

    task = ngx_http_avro_task_alloc(r, sizeof(ngx_http_avro_status_ctx_t),
                                    ngx_http_avro_status_cleanup);
    if (task == NULL) {
        return ngx_http_avro_send_no_memory(r);
    }

    ctx = task->ctx;
    ctx->store = amcf->store;
    ctx->path = (const char *) amcf->hot_store.data;
    ctx->archive = amcf->archive ? 1 : 0;

    task->handler = ngx_http_avro_status_thread;

    if (ngx_http_avro_post_task(r, task, ngx_http_avro_status_done)
        != NGX_OK)
    {
        return ngx_http_avro_send_pool_full(r);
    }

    r->main->count++;

    return NGX_DONE;
}


static void
ngx_http_avro_status_thread(void *data, ngx_log_t *log)
{
    ngx_http_avro_status_ctx_t *ctx = data;

    ctx->rc = avs_status_json(ctx->store, ctx->path, ctx->archive,
                              &ctx->body, &ctx->err);
}


static void
ngx_http_avro_status_done(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_http_avro_status_ctx_t  *ctx;

    if (r->aio) {
        return;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_avro_module);

    r->write_event_handler = ngx_http_request_empty_handler;

    if (ctx->rc != AVS_OK) {
        rc = ngx_http_avro_send_avs_error(r, ctx->rc, ctx->err.msg);

    } else {
        rc = ngx_http_avro_send_json(r, NGX_HTTP_OK, ctx->body.data,
                                     ctx->body.len);
    }

    ngx_http_finalize_request(r, rc);
}


static void
ngx_http_avro_status_cleanup(void *data)
{
    ngx_http_avro_status_ctx_t *ctx = data;

    avs_buf_free(&ctx->body);
}
