/*
 * The archiver's nginx side: a timer in every worker process that runs an
 * archive cycle in the thread pool, the avro_archive_now location, and the
 * backoff after failures.  Which worker archives is decided by a lease in
 * the store, not by the worker number: during a reload two generations of
 * workers overlap, and a restart must not let two archivers run.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_avro_module.h"
#include "avs_archive.h"
#include "avs_json.h"


#define NGX_HTTP_AVRO_BACKOFF_MIN  1000

/* a file's line: its key (at most 1024 bytes) and its figures */
#define NGX_HTTP_AVRO_STORED_LINE  1280

/* test only: how long an armed stop waits to be killed */
#define NGX_HTTP_AVRO_TEST_STOP    30000


struct ngx_http_avro_archiver_s {
    ngx_event_t                 timer;
    ngx_thread_task_t          *task;
    ngx_thread_pool_t          *thread_pool;
    ngx_log_t                  *log;

    avs_store_t                *store;
    avs_objstore_t             *objstore;
    avs_archive_conf_t          conf;
    ngx_msec_t                  interval;
    ngx_uint_t                  failures;
    ngx_uint_t                  running;
    ngx_http_request_t         *request;    /* avro_archive_now, or NULL */

    avs_archive_summary_t       summary;
    avs_buf_t                   stored;     /* a line per file stored */
    avs_err_t                   err;
    avs_rc_t                    rc;
    avs_rc_t                    lease_rc;
    char                        owner[128];

    char                       *test_stop;  /* AVRO_TEST_ARCHIVE_STOP */
};


static void ngx_http_avro_archive_timer(ngx_event_t *ev);
static ngx_int_t ngx_http_avro_archive_start(ngx_http_avro_archiver_t *ar);
static void ngx_http_avro_archive_thread(void *data, ngx_log_t *log);
static void ngx_http_avro_archive_done(ngx_event_t *ev);
static void ngx_http_avro_archive_schedule(ngx_http_avro_archiver_t *ar);
static void ngx_http_avro_archive_file(void *data,
    const avs_archive_file_t *f);
static void ngx_http_avro_archive_log_stored(ngx_http_avro_archiver_t *ar);
static void ngx_http_avro_archive_now_done(ngx_http_request_t *r);
static avs_rc_t ngx_http_avro_archive_test_stop(void *data,
    avs_archive_step_t step, const char *key);


/*
 * Called from init_process once the store is open.  The first cycle comes
 * one interval after start (jobs a crash left pending keep their uploads
 * hot and readable until then), with jitter so that workers do not race
 * for the lease in step.
 */
ngx_http_avro_archiver_t *
ngx_http_avro_archiver_create(ngx_cycle_t *cycle,
    ngx_http_avro_main_conf_t *amcf)
{
    ngx_http_avro_archiver_t  *ar;

    ar = ngx_pcalloc(cycle->pool, sizeof(ngx_http_avro_archiver_t));
    if (ar == NULL) {
        return NULL;
    }

    ar->task = ngx_thread_task_alloc(cycle->pool, 0);
    if (ar->task == NULL) {
        return NULL;
    }

    ar->task->ctx = ar;
    ar->task->handler = ngx_http_avro_archive_thread;
    ar->task->event.data = ar;
    ar->task->event.handler = ngx_http_avro_archive_done;

    ar->thread_pool = amcf->thread_pool;
    ar->log = cycle->log;
    ar->store = amcf->store;
    ar->objstore = amcf->objstore;
    ar->interval = amcf->archive_interval;

    ngx_snprintf((u_char *) ar->owner, sizeof(ar->owner) - 1, "%V:%P:%T%Z",
                 &cycle->hostname, ngx_pid, ngx_time());

    ar->conf.node = (const char *) amcf->archive_node.data;
    ar->conf.tmp_dir = (const char *) amcf->archive_tmp.data;
    ar->conf.segment_size = (uint64_t) amcf->segment_size;
    ar->conf.owner = ar->owner;
    ar->conf.lease_ttl_ms = amcf->lease_ttl;
    ar->conf.on_file = ngx_http_avro_archive_file;
    ar->conf.data = ar;

    /*
     * For the tests only: the stop points of a cycle, reachable from
     * outside (see ngx_http_avro_archive_test_stop).  Workers see the
     * variable only when nginx.conf passes it with the env directive.
     */

    ar->test_stop = getenv("AVRO_TEST_ARCHIVE_STOP");

    if (ar->test_stop != NULL && ar->test_stop[0] == '/') {
        ar->conf.hook = ngx_http_avro_archive_test_stop;
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "avro archive: test stop points armed from \"%s\": "
                      "never in production", ar->test_stop);
    }

    ar->timer.handler = ngx_http_avro_archive_timer;
    ar->timer.data = ar;
    ar->timer.log = cycle->log;
    ar->timer.cancelable = 1;

    ngx_add_timer(&ar->timer, ar->interval + ngx_random() % 1000);

    return ar;
}


static void
ngx_http_avro_archive_timer(ngx_event_t *ev)
{
    ngx_http_avro_archiver_t *ar = ev->data;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    if (ar->running) {
        ngx_add_timer(&ar->timer, ar->interval);
        return;
    }

    if (ngx_http_avro_archive_start(ar) != NGX_OK) {
        ngx_http_avro_archive_schedule(ar);
    }
}


static ngx_int_t
ngx_http_avro_archive_start(ngx_http_avro_archiver_t *ar)
{
    if (ngx_thread_task_post(ar->thread_pool, ar->task) != NGX_OK) {
        return NGX_ERROR;
    }

    ar->running = 1;

    /* a worker that exits waits for the cycle asleep, not spinning in
     * the thread pool's destruction */
    ngx_http_avro_busy(1);

    return NGX_OK;
}


/* Runs in a pool thread: the lease, then the cycle. */
static void
ngx_http_avro_archive_thread(void *data, ngx_log_t *log)
{
    ngx_http_avro_archiver_t *ar = data;

    ngx_memzero(&ar->summary, sizeof(avs_archive_summary_t));
    ngx_memzero(&ar->err, sizeof(avs_err_t));

    ar->lease_rc = avs_archive_lease(ar->store, ar->owner,
                                     ar->conf.lease_ttl_ms, &ar->err);
    if (ar->lease_rc != AVS_OK) {
        ar->rc = ar->lease_rc;
        return;
    }

    ar->rc = avs_archive_cycle(ar->store, ar->objstore, &ar->conf,
                               &ar->summary, &ar->err);

    (void) avs_archive_release(ar->store, ar->owner, NULL);
}


static void
ngx_http_avro_archive_done(ngx_event_t *ev)
{
    ngx_http_avro_archiver_t *ar = ev->data;

    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    ar->running = 0;
    ngx_http_avro_busy(-1);

    ngx_http_avro_archive_log_stored(ar);

    if (ar->lease_rc == AVS_EBUSY) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ar->log, 0,
                       "avro archive: another process holds the lease");

    } else if (ar->rc != AVS_OK) {
        ar->failures++;
        ngx_log_error(NGX_LOG_ERR, ar->log, 0,
                      "avro archive cycle failed (%ui in a row): %s",
                      ar->failures, ar->err.msg);

    } else {
        ar->failures = 0;

        if (ar->summary.files) {
            ngx_log_error(NGX_LOG_INFO, ar->log, 0,
                          "avro archive: %uL files, %uL uploads, "
                          "%uL records, %uL bytes in %uL ms",
                          ar->summary.files, ar->summary.uploads,
                          ar->summary.records, ar->summary.bytes,
                          ar->summary.duration_ms);
        }
    }

    r = ar->request;

    if (r != NULL) {
        ar->request = NULL;
        r->main->blocked--;
        c = r->connection;
        r->write_event_handler(r);
        ngx_http_run_posted_requests(c);
    }

    ngx_http_avro_archive_schedule(ar);
}


/*
 * The next cycle: one interval after a success, sooner after a failure,
 * with exponential backoff and jitter so that workers and nodes do not
 * retry in step.  Never re-armed while nginx exits.
 */
static void
ngx_http_avro_archive_schedule(ngx_http_avro_archiver_t *ar)
{
    ngx_msec_t  delay;
    ngx_uint_t  shift;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    if (ar->failures == 0) {
        delay = ar->interval;

    } else {
        shift = ngx_min(ar->failures - 1, 16);
        delay = ngx_min((ngx_msec_t) NGX_HTTP_AVRO_BACKOFF_MIN << shift,
                        ar->interval);
        delay = delay / 2 + ngx_random() % (delay / 2 + 1);
    }

    if (ar->timer.timer_set) {
        ngx_del_timer(&ar->timer);
    }

    ngx_add_timer(&ar->timer, delay);
}


/*
 * Every committed file goes to the error log at info level, once the
 * cycle is over: this runs in the pool thread, and nginx's log writers
 * (syslog, the memory buffer) are the event loop's alone.
 */
static void
ngx_http_avro_archive_file(void *data, const avs_archive_file_t *f)
{
    ngx_http_avro_archiver_t *ar = data;

    u_char  *p, line[NGX_HTTP_AVRO_STORED_LINE];

    p = ngx_snprintf(line, sizeof(line) - 1,
                     "stored \"%s\": %uL bytes, %uL datasets, %uL uploads, "
                     "%uL records%s", f->key, f->size, f->datasets,
                     f->uploads, f->records,
                     f->recovered ? " (recovered job)" : "");
    *p++ = '\n';

    /* without memory for it the line is lost, not the file */

    (void) avs_buf_append(&ar->stored, line, p - line);
}


/* On the event loop: the lines of the files the cycle stored. */
static void
ngx_http_avro_archive_log_stored(ngx_http_avro_archiver_t *ar)
{
    u_char  *p, *end, *nl;

    p = ar->stored.data;
    end = p + ar->stored.len;

    while (p < end) {
        nl = ngx_strlchr(p, end, '\n');
        if (nl == NULL) {
            break;
        }

        ngx_log_error(NGX_LOG_INFO, ar->log, 0, "avro archive: %*s",
                      (size_t) (nl - p), p);
        p = nl + 1;
    }

    avs_buf_free(&ar->stored);
}


/*
 * Test only.  AVRO_TEST_ARCHIVE_STOP=<directory> makes every step of a
 * cycle (claimed, built, put, committed) look for <directory>/<step>.arm.
 * The first thread of any worker to rename it to <step>.pid writes its
 * process id and the job's key there and sleeps in the pool thread, so
 * that a test can kill -9 the worker at exactly that point of the cycle
 * (no transaction is open there).  After 30 s unkilled it goes on.
 */
static avs_rc_t
ngx_http_avro_archive_test_stop(void *data, avs_archive_step_t step,
    const char *key)
{
    ngx_http_avro_archiver_t *ar = data;

    u_char      *p, arm[NGX_MAX_PATH], pid[NGX_MAX_PATH], line[700];
    ngx_fd_t     fd;
    ngx_uint_t   i;

    static const char  *names[] = { "", "claimed", "built", "put",
                                    "committed" };

    if ((size_t) step >= sizeof(names) / sizeof(names[0])) {
        return AVS_OK;
    }

    p = ngx_snprintf(arm, sizeof(arm) - 1, "%s/%s.arm%Z", ar->test_stop,
                     names[step]);
    if (p == arm + sizeof(arm) - 1) {
        return AVS_OK;
    }

    ngx_snprintf(pid, sizeof(pid) - 1, "%s/%s.pid%Z", ar->test_stop,
                 names[step]);

    if (ngx_rename_file(arm, pid) == NGX_FILE_ERROR) {
        return AVS_OK;
    }

    fd = ngx_open_file(pid, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE,
                       NGX_FILE_DEFAULT_ACCESS);

    if (fd != NGX_INVALID_FILE) {
        p = ngx_snprintf(line, sizeof(line), "%P %s\n", ngx_pid,
                         key ? key : "-");
        (void) ngx_write_fd(fd, line, p - line);
        (void) ngx_close_file(fd);
    }

    ngx_log_error(NGX_LOG_WARN, ar->log, 0,
                  "avro archive: test stop after \"%s\" of %s",
                  names[step], key ? key : "the claim");

    for (i = 0; i < NGX_HTTP_AVRO_TEST_STOP / 100; i++) {
        ngx_msleep(100);
    }

    return AVS_OK;
}


/* avro_archive_now: POST runs one cycle now and answers when it ends. */
ngx_int_t
ngx_http_avro_archive_now_handler(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    ngx_http_avro_archiver_t   *ar;
    ngx_http_avro_main_conf_t  *amcf;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (r->method != NGX_HTTP_POST) {
        return ngx_http_avro_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                        "method_not_allowed",
                                        "POST runs an archive cycle");
    }

    amcf = ngx_http_get_module_main_conf(r, ngx_http_avro_module);
    ar = amcf->archiver;

    if (ar == NULL) {
        return ngx_http_avro_send_avs_error(r, AVS_ESTORE,
                                            "the archiver is not running, "
                                            "see the error log");
    }

    if (ar->running) {
        return ngx_http_avro_send_error(r, NGX_HTTP_CONFLICT, "busy",
                                        "an archive cycle is already "
                                        "running in this worker");
    }

    if (ngx_http_avro_archive_start(ar) != NGX_OK) {
        return ngx_http_avro_send_pool_full(r);
    }

    ar->request = r;
    r->main->blocked++;
    r->main->count++;
    r->write_event_handler = ngx_http_avro_archive_now_done;

    return NGX_DONE;
}


static void
ngx_http_avro_archive_now_done(ngx_http_request_t *r)
{
    avs_buf_t                   body;
    ngx_int_t                   rc;
    ngx_http_avro_archiver_t   *ar;
    ngx_http_avro_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_avro_module);
    ar = amcf->archiver;

    if (ar->request == r) {
        return;
    }

    r->write_event_handler = ngx_http_request_empty_handler;

    if (ar->lease_rc == AVS_EBUSY) {
        rc = ngx_http_avro_send_error(r, NGX_HTTP_CONFLICT, "busy",
                                      "an archive cycle is already running "
                                      "in another process");
        ngx_http_finalize_request(r, rc);
        return;
    }

    ngx_memzero(&body, sizeof(body));

    if (avs_archive_summary_json(&ar->summary, &body) != AVS_OK
        || avs_buf_append(&body, "\n", 1) != AVS_OK)
    {
        avs_buf_free(&body);
        ngx_http_finalize_request(r, ngx_http_avro_send_no_memory(r));
        return;
    }

    /* a failed cycle may have archived other groups: say what it did */

    if (ar->rc != AVS_OK) {
        rc = ngx_http_avro_send_error_with(r, avs_rc_http_status(ar->rc),
                                           avs_rc_name(ar->rc), ar->err.msg,
                                           "cycle", body.data, body.len - 1);
    } else {
        rc = ngx_http_avro_send_json(r, NGX_HTTP_OK, body.data, body.len);
    }

    avs_buf_free(&body);

    ngx_http_finalize_request(r, rc);
}
