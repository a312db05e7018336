/*
 * Group commit.  Validated uploads wait in the pending queue; a commit
 * running in a pool thread takes all of them once it holds the store's
 * write lock (avs_store_commit_take), so that under load many uploads share
 * one transaction and one fsync, and no thread ever sleeps waiting for
 * another.
 *
 * Up to NGX_HTTP_AVRO_COMMITS commits of a worker may be in flight, so that
 * while one waits for its fsync after letting the lock go, the next one
 * writes.  Measured with 256 connections on 2 cores, 2 did no better than 1
 * (the other worker's commit already fills that gap), so it is 1.  At most
 * one of them is posted and has not taken its group yet, since a second
 * one would only find the queue empty.  The queue is shared with the pool
 * threads, under the committer's mutex.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_avro_module.h"


#define NGX_HTTP_AVRO_COMMITS      1
#define NGX_HTTP_AVRO_GROUP_MAX    256
#define NGX_HTTP_AVRO_GROUP_BYTES  (64 * 1024 * 1024)


/* One commit in flight: the ctx of its thread task. */
typedef struct {
    ngx_http_avro_committer_t   *cm;
    ngx_http_avro_upload_ctx_t  *group[NGX_HTTP_AVRO_GROUP_MAX];
    avs_batch_t                 *batches[NGX_HTTP_AVRO_GROUP_MAX];
    ngx_uint_t                   ngroup;
    avs_err_t                    err;
    avs_rc_t                     rc;
} ngx_http_avro_commit_run_t;


struct ngx_http_avro_committer_s {
    avs_store_t                 *store;
    ngx_thread_pool_t           *thread_pool;
    ngx_thread_task_t           *idle[NGX_HTTP_AVRO_COMMITS];
    ngx_uint_t                   nidle;

    /* shared with the pool threads, under mutex */
    ngx_thread_mutex_t           mutex;
    ngx_queue_t                  pending;
    ngx_uint_t                   untaken;   /* posted, group not taken */
};


static void ngx_http_avro_committer_cleanup(void *data);
static void ngx_http_avro_commit_next(ngx_http_avro_committer_t *cm);
static void ngx_http_avro_commit_refuse(ngx_http_avro_committer_t *cm);
static void ngx_http_avro_commit_thread(void *data, ngx_log_t *log);
static size_t ngx_http_avro_commit_take(void *arg, avs_batch_t ***batches);
static void ngx_http_avro_commit_done(ngx_event_t *ev);
static void ngx_http_avro_commit_answer(ngx_http_avro_upload_ctx_t *ctx);


ngx_http_avro_committer_t *
ngx_http_avro_committer_create(ngx_cycle_t *cycle,
    ngx_http_avro_main_conf_t *amcf)
{
    ngx_uint_t                   i;
    ngx_thread_task_t           *task;
    ngx_pool_cleanup_t          *cln;
    ngx_http_avro_committer_t   *cm;
    ngx_http_avro_commit_run_t  *run;

    cm = ngx_pcalloc(cycle->pool, sizeof(ngx_http_avro_committer_t));
    if (cm == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(cycle->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    if (ngx_thread_mutex_create(&cm->mutex, cycle->log) != NGX_OK) {
        return NULL;
    }

    cln->handler = ngx_http_avro_committer_cleanup;
    cln->data = cm;

    cm->store = amcf->store;
    cm->thread_pool = amcf->thread_pool;
    ngx_queue_init(&cm->pending);

    for (i = 0; i < NGX_HTTP_AVRO_COMMITS; i++) {
        task = ngx_thread_task_alloc(cycle->pool,
                                     sizeof(ngx_http_avro_commit_run_t));
        if (task == NULL) {
            return NULL;
        }

        run = task->ctx;
        run->cm = cm;

        task->handler = ngx_http_avro_commit_thread;
        task->event.data = task;
        task->event.handler = ngx_http_avro_commit_done;

        cm->idle[cm->nidle++] = task;
    }

    return cm;
}


static void
ngx_http_avro_committer_cleanup(void *data)
{
    ngx_http_avro_committer_t *cm = data;

    (void) ngx_thread_mutex_destroy(&cm->mutex, ngx_cycle->log);
}


/*
 * Queues a validated upload; the request stays blocked until its batch is
 * committed or refused, then ngx_http_avro_upload_answer() runs.
 */
ngx_int_t
ngx_http_avro_commit(ngx_http_avro_committer_t *cm,
    ngx_http_avro_upload_ctx_t *ctx)
{
    ctx->request->main->blocked++;
    ctx->request->write_event_handler = ngx_http_avro_upload_answer;
    ctx->waiting = 1;
    ngx_http_avro_busy(1);

    (void) ngx_thread_mutex_lock(&cm->mutex, ngx_cycle->log);
    ngx_queue_insert_tail(&cm->pending, &ctx->queue);
    (void) ngx_thread_mutex_unlock(&cm->mutex, ngx_cycle->log);

    ngx_http_avro_commit_next(cm);

    return NGX_OK;
}


/*
 * Posts a commit when uploads are pending, none of the commits in flight
 * will take them, and one is idle.
 */
static void
ngx_http_avro_commit_next(ngx_http_avro_committer_t *cm)
{
    ngx_uint_t          post;
    ngx_thread_task_t  *task;

    if (cm->nidle == 0) {
        return;
    }

    (void) ngx_thread_mutex_lock(&cm->mutex, ngx_cycle->log);

    post = (cm->untaken == 0 && !ngx_queue_empty(&cm->pending));

    if (post) {
        cm->untaken++;
    }

    (void) ngx_thread_mutex_unlock(&cm->mutex, ngx_cycle->log);

    if (!post) {
        return;
    }

    task = cm->idle[--cm->nidle];

    if (ngx_thread_task_post(cm->thread_pool, task) == NGX_OK) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "avro: cannot post a commit: the thread pool's queue is "
                  "full");

    cm->idle[cm->nidle++] = task;

    (void) ngx_thread_mutex_lock(&cm->mutex, ngx_cycle->log);
    cm->untaken--;
    (void) ngx_thread_mutex_unlock(&cm->mutex, ngx_cycle->log);

    /* with a commit in flight, its end posts again */

    if (cm->nidle == NGX_HTTP_AVRO_COMMITS) {
        ngx_http_avro_commit_refuse(cm);
    }
}


/* Answers every pending upload with an error: no commit can be run. */
static void
ngx_http_avro_commit_refuse(ngx_http_avro_committer_t *cm)
{
    ngx_queue_t                  refused, *q;
    ngx_http_avro_upload_ctx_t  *ctx;

    ngx_queue_init(&refused);

    (void) ngx_thread_mutex_lock(&cm->mutex, ngx_cycle->log);
    ngx_queue_add(&refused, &cm->pending);
    ngx_queue_init(&cm->pending);
    (void) ngx_thread_mutex_unlock(&cm->mutex, ngx_cycle->log);

    while (!ngx_queue_empty(&refused)) {
        q = ngx_queue_head(&refused);
        ngx_queue_remove(q);
        ctx = ngx_queue_data(q, ngx_http_avro_upload_ctx_t, queue);

        avs_err_set(&ctx->ingest.batch.err, AVS_EBUSY,
                    "the thread pool's queue is full: the commit could not "
                    "be posted");
        ngx_http_avro_commit_answer(ctx);
    }
}


/* Runs in a pool thread. */
static void
ngx_http_avro_commit_thread(void *data, ngx_log_t *log)
{
    ngx_http_avro_commit_run_t *run = data;

    run->ngroup = 0;
    ngx_memzero(&run->err, sizeof(avs_err_t));
    run->rc = avs_store_commit_take(run->cm->store,
                                    ngx_http_avro_commit_take, run,
                                    &run->err);
}


/*
 * Runs in the pool thread once the write lock was waited for: the group is
 * what is pending now, up to the group limits.
 */
static size_t
ngx_http_avro_commit_take(void *arg, avs_batch_t ***batches)
{
    ngx_http_avro_commit_run_t *run = arg;

    size_t                       bytes;
    ngx_uint_t                   i;
    ngx_queue_t                 *q;
    ngx_http_avro_committer_t   *cm;
    ngx_http_avro_upload_ctx_t  *ctx;

    cm = run->cm;
    bytes = 0;

    (void) ngx_thread_mutex_lock(&cm->mutex, ngx_cycle->log);

    cm->untaken--;

    while (!ngx_queue_empty(&cm->pending)
           && run->ngroup < NGX_HTTP_AVRO_GROUP_MAX)
    {
        q = ngx_queue_head(&cm->pending);
        ctx = ngx_queue_data(q, ngx_http_avro_upload_ctx_t, queue);

        for (i = 0; i < ctx->ingest.batch.nrows; i++) {
            bytes += ctx->ingest.batch.rows[i].len;
        }

        if (run->ngroup > 0 && bytes > NGX_HTTP_AVRO_GROUP_BYTES) {
            break;
        }

        ngx_queue_remove(q);
        run->group[run->ngroup] = ctx;
        run->batches[run->ngroup] = &ctx->ingest.batch;
        run->ngroup++;
    }

    (void) ngx_thread_mutex_unlock(&cm->mutex, ngx_cycle->log);

    *batches = run->batches;

    return run->ngroup;
}


/*
 * Answers every upload of the group.  The task goes back to idle and
 * another commit is posted first, if uploads are pending, so that it runs
 * while these answers are sent; the group is copied out of the task for
 * that.
 */
static void
ngx_http_avro_commit_done(ngx_event_t *ev)
{
    ngx_thread_task_t *task = ev->data;

    avs_rc_t                     rc;
    avs_err_t                    err;
    ngx_uint_t                   i, n;
    ngx_http_avro_committer_t   *cm;
    ngx_http_avro_commit_run_t  *run;
    ngx_http_avro_upload_ctx_t  *ctx, *group[NGX_HTTP_AVRO_GROUP_MAX];

    run = task->ctx;
    cm = run->cm;

    rc = run->rc;
    err = run->err;
    n = run->ngroup;
    ngx_memcpy(group, run->group, n * sizeof(ngx_http_avro_upload_ctx_t *));

    run->ngroup = 0;
    cm->idle[cm->nidle++] = task;

    ngx_http_avro_commit_next(cm);

    if (rc != AVS_OK && rc != AVS_DONE) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "avro: commit of %ui uploads failed: %s", n, err.msg);
    }

    for (i = 0; i < n; i++) {
        ctx = group[i];

        if (rc != AVS_OK && ctx->ingest.batch.err.rc == AVS_OK) {
            ctx->ingest.batch.err = err;
        }

        ngx_http_avro_commit_answer(ctx);
    }
}


static void
ngx_http_avro_commit_answer(ngx_http_avro_upload_ctx_t *ctx)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    ctx->waiting = 0;
    r->main->blocked--;
    ngx_http_avro_busy(-1);
    r->write_event_handler(r);
    ngx_http_run_posted_requests(c);
}
