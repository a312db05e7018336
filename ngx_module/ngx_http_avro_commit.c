/*
 * Group commit on the event loop.  Validated uploads queue up here; while
 * one transaction runs in a pool thread, the uploads that arrive meanwhile
 * wait in the queue and all go into the next transaction, so that under
 * load many uploads share one fsync and no thread ever sleeps waiting for
 * another.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_avro_module.h"


#define NGX_HTTP_AVRO_GROUP_MAX    256
#define NGX_HTTP_AVRO_GROUP_BYTES  (64 * 1024 * 1024)


struct ngx_http_avro_committer_s {
    avs_store_t                 *store;
    ngx_thread_pool_t           *thread_pool;
    ngx_thread_task_t           *task;
    ngx_queue_t                  waiting;
    ngx_http_avro_upload_ctx_t  *group[NGX_HTTP_AVRO_GROUP_MAX];
    avs_batch_t                 *batches[NGX_HTTP_AVRO_GROUP_MAX];
    ngx_uint_t                   ngroup;
    ngx_uint_t                   running;
    avs_err_t                    err;
    avs_rc_t                     rc;
};


static ngx_int_t ngx_http_avro_commit_start(ngx_http_avro_committer_t *cm);
static void ngx_http_avro_commit_thread(void *data, ngx_log_t *log);
static void ngx_http_avro_commit_done(ngx_event_t *ev);


ngx_http_avro_committer_t *
ngx_http_avro_committer_create(ngx_cycle_t *cycle,
    ngx_http_avro_main_conf_t *amcf)
{
    ngx_http_avro_committer_t  *cm;

    cm = ngx_pcalloc(cycle->pool, sizeof(ngx_http_avro_committer_t));
    if (cm == NULL) {
        return NULL;
    }

    cm->task = ngx_thread_task_alloc(cycle->pool, 0);
    if (cm->task == NULL) {
        return NULL;
    }

    cm->store = amcf->store;
    cm->thread_pool = amcf->thread_pool;
    ngx_queue_init(&cm->waiting);

    cm->task->ctx = cm;
    cm->task->handler = ngx_http_avro_commit_thread;
    cm->task->event.data = cm;
    cm->task->event.handler = ngx_http_avro_commit_done;

    return cm;
}


/*
 * Queues a validated upload; the request stays blocked until its batch is
 * committed or refused, then ngx_http_avro_upload_answer() runs.
 */
ngx_int_t
ngx_http_avro_commit(ngx_http_avro_committer_t *cm,
    ngx_http_avro_upload_ctx_t *ctx)
{
    ngx_queue_insert_tail(&cm->waiting, &ctx->queue);
    ctx->request->main->blocked++;
    ctx->request->write_event_handler = ngx_http_avro_upload_answer;
    ctx->waiting = 1;
    ngx_http_avro_busy(1);

    if (cm->running) {
        return NGX_OK;
    }

    return ngx_http_avro_commit_start(cm);
}


static ngx_int_t
ngx_http_avro_commit_start(ngx_http_avro_committer_t *cm)
{
    size_t                       bytes;
    ngx_uint_t                   i;
    ngx_queue_t                 *q;
    ngx_http_avro_upload_ctx_t  *ctx;

    cm->ngroup = 0;
    bytes = 0;

    while (!ngx_queue_empty(&cm->waiting)
           && cm->ngroup < NGX_HTTP_AVRO_GROUP_MAX)
    {
        q = ngx_queue_head(&cm->waiting);
        ctx = ngx_queue_data(q, ngx_http_avro_upload_ctx_t, queue);

        for (i = 0; i < ctx->ingest.batch.nrows; i++) {
            bytes += ctx->ingest.batch.rows[i].len;
        }

        if (cm->ngroup > 0 && bytes > NGX_HTTP_AVRO_GROUP_BYTES) {
            break;
        }

        ngx_queue_remove(q);
        cm->group[cm->ngroup] = ctx;
        cm->batches[cm->ngroup] = &ctx->ingest.batch;
        cm->ngroup++;
    }

    if (cm->ngroup == 0) {
        return NGX_OK;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "avro commit of %ui uploads", cm->ngroup);

    cm->running = 1;

    if (ngx_thread_task_post(cm->thread_pool, cm->task) != NGX_OK) {
        cm->running = 0;
        avs_err_set(&cm->err, AVS_EINTERNAL, "cannot post the commit");
        cm->rc = AVS_EINTERNAL;
        ngx_http_avro_commit_done(&cm->task->event);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* Runs in a pool thread. */
static void
ngx_http_avro_commit_thread(void *data, ngx_log_t *log)
{
    ngx_http_avro_committer_t *cm = data;

    ngx_memzero(&cm->err, sizeof(avs_err_t));
    cm->rc = avs_store_commit(cm->store, cm->batches, cm->ngroup, &cm->err);
}


/* Answers every upload of the group, then starts the next group. */
static void
ngx_http_avro_commit_done(ngx_event_t *ev)
{
    ngx_http_avro_committer_t *cm = ev->data;

    ngx_uint_t                   i, n;
    ngx_connection_t            *c;
    ngx_http_request_t          *r;
    ngx_http_avro_upload_ctx_t  *ctx;

    cm->running = 0;
    n = cm->ngroup;
    cm->ngroup = 0;

    if (cm->rc != AVS_OK) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "avro: commit of %ui uploads failed: %s", n,
                      cm->err.msg);
    }

    for (i = 0; i < n; i++) {
        ctx = cm->group[i];

        if (cm->rc != AVS_OK && ctx->ingest.batch.err.rc == AVS_OK) {
            ctx->ingest.batch.err = cm->err;
        }

        r = ctx->request;
        c = r->connection;

        ctx->waiting = 0;
        r->main->blocked--;
        ngx_http_avro_busy(-1);
        r->write_event_handler(r);
        ngx_http_run_posted_requests(c);
    }

    (void) ngx_http_avro_commit_start(cm);
}
