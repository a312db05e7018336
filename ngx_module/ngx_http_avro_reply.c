/*
 * What the avro handlers share: JSON answers, running a piece of work in
 * the module's thread pool while the request waits, and reading names
 * from the configuration or the query string.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_avro_module.h"
#include "avs_json.h"


static ngx_str_t  ngx_http_avro_json_type = ngx_string("application/json");

/*
 * A worker that exits gracefully leaves as soon as no timer is left, but a
 * request waiting for a pool thread (a commit, an archive cycle) has none:
 * while any such work is in flight, this timer keeps the worker alive.
 */
static ngx_event_t  ngx_http_avro_busy_ev;
static ngx_uint_t   ngx_http_avro_busy_n;


static void
ngx_http_avro_busy_handler(ngx_event_t *ev)
{
    ngx_add_timer(ev, 86400000);
}


void
ngx_http_avro_busy(ngx_int_t delta)
{
    ngx_http_avro_busy_n += delta;

    if (ngx_http_avro_busy_n > 0 && !ngx_http_avro_busy_ev.timer_set) {
        ngx_http_avro_busy_ev.handler = ngx_http_avro_busy_handler;
        ngx_http_avro_busy_ev.log = ngx_cycle->log;

        /* a timer's debug log reads its data as a connection: not NULL */
        ngx_http_avro_busy_ev.data = (void *) ngx_cycle;
        ngx_add_timer(&ngx_http_avro_busy_ev, 86400000);

    } else if (ngx_http_avro_busy_n == 0
               && ngx_http_avro_busy_ev.timer_set)
    {
        ngx_del_timer(&ngx_http_avro_busy_ev);
    }
}


ngx_int_t
ngx_http_avro_send_json(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len)
{
    ngx_int_t                  rc;
    ngx_buf_t                 *b;
    ngx_chain_t                out;
    ngx_table_elt_t           *h;
    ngx_http_avro_loc_conf_t  *alcf;

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
    r->headers_out.content_type = ngx_http_avro_json_type;
    r->headers_out.content_type_len = ngx_http_avro_json_type.len;
    r->headers_out.content_type_lowcase = NULL;

    if (status == NGX_HTTP_SERVICE_UNAVAILABLE) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Retry-After");
        ngx_str_set(&h->value, "1");
    }

    if (status == NGX_HTTP_NOT_ALLOWED) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Allow");

        alcf = ngx_http_get_module_loc_conf(r, ngx_http_avro_module);

        if (alcf->status == 1 || alcf->read_uri.data != NULL) {
            ngx_str_set(&h->value, "GET, HEAD");

        } else {
            ngx_str_set(&h->value, "POST");
        }
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_create_temp_buf(r->pool, len ? len : 1);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_cpymem(b->last, body, len);
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * Answers an error with the JSON body every client-visible failure has,
 * {"status", "error", "message"}; the request's log tells operators why,
 * at a level that matches who is to blame.
 */
ngx_int_t
ngx_http_avro_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *error, const char *message)
{
    return ngx_http_avro_send_error_with(r, status, error, message, NULL,
                                         NULL, 0);
}


/*
 * The same with one more member, name, whose value is the JSON text
 * json[0..len) (what a failure leaves done, say); none when name is NULL.
 */
ngx_int_t
ngx_http_avro_send_error_with(ngx_http_request_t *r, ngx_uint_t status,
    const char *error, const char *message, const char *name,
    const u_char *json, size_t len)
{
    avs_buf_t   body;
    avs_rc_t    rc;
    ngx_int_t   res;
    ngx_uint_t  level;

    level = (status >= 500) ? NGX_LOG_ERR : NGX_LOG_INFO;
    ngx_log_error(level, r->connection->log, 0, "avro: %ui %s", status,
                  message);

    ngx_memzero(&body, sizeof(body));

    rc = avs_buf_append(&body, "{", 1);
    if (rc == AVS_OK) {
        rc = avs_json_field_i64(&body, "status", (int64_t) status);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_str(&body, "error", error);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_str(&body, "message", message);
    }
    if (rc == AVS_OK && name != NULL) {
        rc = avs_json_field_raw(&body, name, json, len);
    }
    if (rc == AVS_OK) {
        rc = avs_buf_append(&body, "}\n", 2);
    }

    if (rc != AVS_OK) {
        avs_buf_free(&body);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    res = ngx_http_avro_send_json(r, status, body.data, body.len);
    avs_buf_free(&body);

    return res;
}


/*
 * The answer when the thread pool's queue is full (thread_pool max_queue,
 * nginx logs the overflow): the work is not done, the client may retry.
 */
ngx_int_t
ngx_http_avro_send_pool_full(ngx_http_request_t *r)
{
    return ngx_http_avro_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE, "busy",
                                    "the thread pool's queue is full");
}


/*
 * The answer to an allocation that failed: still JSON when the little
 * memory it needs is there, nginx's own 500 page when not.
 */
ngx_int_t
ngx_http_avro_send_no_memory(ngx_http_request_t *r)
{
    return ngx_http_avro_send_avs_error(r, AVS_ENOMEM, "out of memory");
}


ngx_int_t
ngx_http_avro_send_avs_error(ngx_http_request_t *r, avs_rc_t rc,
    const char *message)
{
    return ngx_http_avro_send_error(r, avs_rc_http_status(rc),
                                    avs_rc_name(rc), message);
}


/*
 * What a GET location (status, read) checks first: the method (405 with
 * what), no body, and a hot store to ask.  NGX_DECLINED to go on, else
 * the handler's result (the answer is sent).
 */
ngx_int_t
ngx_http_avro_get_checks(ngx_http_request_t *r, const char *what)
{
    ngx_int_t                   rc;
    ngx_http_avro_main_conf_t  *amcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_avro_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                        "method_not_allowed", what);
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    amcf = ngx_http_get_module_main_conf(r, ngx_http_avro_module);

    if (amcf->store == NULL) {
        return ngx_http_avro_send_avs_error(r, AVS_ESTORE,
                                            "hot store unavailable, "
                                            "see the error log");
    }

    return NGX_DECLINED;
}


/*
 * The task of a request that waits for a pool thread: its context (size
 * bytes, zeroed) becomes the request's module context, and cleanup (if not
 * NULL) runs on it when the request ends.
 */
ngx_thread_task_t *
ngx_http_avro_task_alloc(ngx_http_request_t *r, size_t size,
    ngx_pool_cleanup_pt cleanup)
{
    ngx_thread_task_t   *task;
    ngx_pool_cleanup_t  *cln;

    task = ngx_thread_task_alloc(r->pool, size);
    if (task == NULL) {
        return NULL;
    }

    if (cleanup != NULL) {
        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            return NULL;
        }

        cln->handler = cleanup;
        cln->data = task->ctx;
    }

    ngx_http_set_ctx(r, task->ctx, ngx_http_avro_module);

    return task;
}


/*
 * Posts task to the module's thread pool; done runs on the event loop
 * afterwards as the request's write handler (unless nginx has terminated
 * the request meanwhile, in which case nginx finalizes it).
 */
ngx_int_t
ngx_http_avro_post_task(ngx_http_request_t *r, ngx_thread_task_t *task,
    ngx_http_event_handler_pt done)
{
    ngx_http_avro_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_avro_module);

    task->event.data = r;
    task->event.handler = ngx_http_avro_task_done;

    if (ngx_thread_task_post(amcf->thread_pool, task) != NGX_OK) {
        return NGX_ERROR;
    }

    r->main->blocked++;
    r->aio = 1;
    r->write_event_handler = done;
    ngx_http_avro_busy(1);

    return NGX_OK;
}


void
ngx_http_avro_task_done(ngx_event_t *ev)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ev->data;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "avro task done: \"%V?%V\"", &r->uri, &r->args);

    r->main->blocked--;
    r->aio = 0;
    ngx_http_avro_busy(-1);

    r->write_event_handler(r);

    ngx_http_run_posted_requests(c);
}


/* A complex value as a C string; NULL when unset or empty. */
const char *
ngx_http_avro_cv(ngx_http_request_t *r, ngx_http_complex_value_t *cv,
    ngx_int_t *rc)
{
    u_char     *p;
    ngx_str_t   v;

    if (cv == NULL) {
        return NULL;
    }

    if (ngx_http_complex_value(r, cv, &v) != NGX_OK) {
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NULL;
    }

    if (v.len == 0) {
        return NULL;
    }

    p = ngx_pnalloc(r->pool, v.len + 1);
    if (p == NULL) {
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NULL;
    }

    ngx_cpystrn(p, v.data, v.len + 1);

    return (const char *) p;
}


/*
 * A query argument, percent-decoded, as a C string; NULL when absent.  A
 * decoded NUL would cut the name short, so then the raw text is kept, and
 * the name check refuses its '%'.
 */
const char *
ngx_http_avro_arg(ngx_http_request_t *r, char *name, size_t len,
    ngx_int_t *rc)
{
    u_char     *p, *dst, *src;
    ngx_str_t   v;

    if (ngx_http_arg(r, (u_char *) name, len, &v) != NGX_OK || v.len == 0) {
        return NULL;
    }

    p = ngx_pnalloc(r->pool, v.len + 1);
    if (p == NULL) {
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NULL;
    }

    dst = p;
    src = v.data;
    ngx_unescape_uri(&dst, &src, v.len, NGX_UNESCAPE_URI);
    *dst = '\0';

    if (ngx_strlen(p) != (size_t) (dst - p)) {
        ngx_memcpy(p, v.data, v.len);
        p[v.len] = '\0';
    }

    return (const char *) p;
}
