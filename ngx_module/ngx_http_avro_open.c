/*
 * The hot store's opening in each worker process.  The first attempt is
 * made in init_process.  When it fails (a sibling worker migrating the file
 * for longer than the wait, a file that is not a database, a directory the
 * worker cannot write), the worker answers 503 and tries again in the
 * thread pool with a growing delay, so that removing the cause is enough:
 * no reload is needed, and the event loop never waits for the file's lock.
 * A store already migrated is waited for only briefly in init_process: a
 * new worker of a reload does not keep every location of nginx waiting
 * while a sibling's long commit (an archive cycle's) holds the lock; it
 * opens the store in the thread pool at once instead.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_avro_module.h"


#define NGX_HTTP_AVRO_OPEN_RETRY_MIN  1000
#define NGX_HTTP_AVRO_OPEN_RETRY_MAX  30000
#define NGX_HTTP_AVRO_OPEN_WAIT       200


typedef struct {
    ngx_event_t                 timer;
    ngx_thread_task_t          *task;
    ngx_http_avro_main_conf_t  *amcf;
    ngx_log_t                  *log;
    ngx_msec_t                  delay;
    ngx_uint_t                  attempts;

    avs_store_conf_t            conf;
    avs_store_t                *store;      /* set by the pool thread */
    avs_err_t                   err;
} ngx_http_avro_opener_t;


static void ngx_http_avro_open_conf(ngx_http_avro_main_conf_t *amcf,
    avs_store_conf_t *sc);
static ngx_int_t ngx_http_avro_open_later(ngx_cycle_t *cycle,
    ngx_http_avro_main_conf_t *amcf, avs_store_conf_t *sc, ngx_msec_t delay);
static void ngx_http_avro_open_timer(ngx_event_t *ev);
static void ngx_http_avro_open_thread(void *data, ngx_log_t *log);
static void ngx_http_avro_open_done(ngx_event_t *ev);
static void ngx_http_avro_open_retry(ngx_http_avro_opener_t *op);


/*
 * Opens the hot store of this worker, then sets up what needs it.  A store
 * that cannot be opened now is not an error of the worker: it is logged
 * and tried again later.
 */
ngx_int_t
ngx_http_avro_open_store(ngx_cycle_t *cycle, ngx_http_avro_main_conf_t *amcf)
{
    avs_err_t         err;
    avs_store_t      *st;
    avs_store_conf_t  sc;

    ngx_http_avro_open_conf(amcf, &sc);

    if (avs_store_is_current(sc.path)) {
        sc.open_wait_ms = NGX_HTTP_AVRO_OPEN_WAIT;
    }

    if (avs_store_open(&sc, &st, &err) == AVS_OK) {
        return ngx_http_avro_store_ready(cycle, amcf, st);
    }

    if (err.rc == AVS_EBUSY && sc.open_wait_ms != 0) {
        ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                      "%s; the worker opens it in its thread pool, and "
                      "answers uploads 503 until then", err.msg);

        sc.open_wait_ms = 0;

        return ngx_http_avro_open_later(cycle, amcf, &sc, 1);
    }

    ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                  "%s; uploads are answered 503, the worker tries again "
                  "in %M ms", err.msg,
                  (ngx_msec_t) NGX_HTTP_AVRO_OPEN_RETRY_MIN);

    return ngx_http_avro_open_later(cycle, amcf, &sc,
                                    NGX_HTTP_AVRO_OPEN_RETRY_MIN);
}


static void
ngx_http_avro_open_conf(ngx_http_avro_main_conf_t *amcf,
    avs_store_conf_t *sc)
{
    ngx_memzero(sc, sizeof(avs_store_conf_t));

    sc->path = (const char *) amcf->hot_store.data;
    sc->synchronous = amcf->synchronous;
    sc->busy_timeout_ms = amcf->busy_timeout;
    sc->max_size = (uint64_t) amcf->max_size;
    sc->lock = amcf->shm_zone->data;
}


static ngx_int_t
ngx_http_avro_open_later(ngx_cycle_t *cycle, ngx_http_avro_main_conf_t *amcf,
    avs_store_conf_t *sc, ngx_msec_t delay)
{
    ngx_http_avro_opener_t  *op;

    op = ngx_pcalloc(cycle->pool, sizeof(ngx_http_avro_opener_t));
    if (op == NULL) {
        return NGX_ERROR;
    }

    op->task = ngx_thread_task_alloc(cycle->pool, 0);
    if (op->task == NULL) {
        return NGX_ERROR;
    }

    op->task->ctx = op;
    op->task->handler = ngx_http_avro_open_thread;
    op->task->event.data = op;
    op->task->event.handler = ngx_http_avro_open_done;

    op->amcf = amcf;
    op->log = cycle->log;
    op->conf = *sc;
    op->attempts = 1;
    op->delay = NGX_HTTP_AVRO_OPEN_RETRY_MIN;

    op->timer.handler = ngx_http_avro_open_timer;
    op->timer.data = op;
    op->timer.log = cycle->log;
    op->timer.cancelable = 1;

    ngx_add_timer(&op->timer, delay);

    return NGX_OK;
}


static void
ngx_http_avro_open_timer(ngx_event_t *ev)
{
    ngx_http_avro_opener_t *op = ev->data;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    op->attempts++;

    if (ngx_thread_task_post(op->amcf->thread_pool, op->task) != NGX_OK) {
        ngx_http_avro_open_retry(op);
    }
}


/* Runs in a pool thread: the wait for the file's lock may be long. */
static void
ngx_http_avro_open_thread(void *data, ngx_log_t *log)
{
    ngx_http_avro_opener_t *op = data;

    op->store = NULL;
    ngx_memzero(&op->err, sizeof(avs_err_t));

    if (avs_store_open(&op->conf, &op->store, &op->err) != AVS_OK) {
        op->store = NULL;
    }
}


static void
ngx_http_avro_open_done(ngx_event_t *ev)
{
    ngx_http_avro_opener_t *op = ev->data;

    avs_store_t  *st;

    st = op->store;
    op->store = NULL;

    if (st == NULL) {
        if (ngx_exiting || ngx_quit || ngx_terminate) {
            return;
        }

        ngx_http_avro_open_retry(op);

        ngx_log_error(NGX_LOG_ERR, op->log, 0,
                      "%s; attempt %ui, the next in %M ms", op->err.msg,
                      op->attempts, op->delay);
        return;
    }

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        avs_store_close(st);
        return;
    }

    if (ngx_http_avro_store_ready((ngx_cycle_t *) ngx_cycle, op->amcf, st)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, op->log, 0,
                      "avro_hot_store \"%s\": opened, but the worker could "
                      "not set up what uses it", op->conf.path);
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, op->log, 0,
                  "avro_hot_store \"%s\": opened at attempt %ui",
                  op->conf.path, op->attempts);
}


static void
ngx_http_avro_open_retry(ngx_http_avro_opener_t *op)
{
    op->delay = ngx_min(op->delay * 2, NGX_HTTP_AVRO_OPEN_RETRY_MAX);

    ngx_add_timer(&op->timer, op->delay);
}
