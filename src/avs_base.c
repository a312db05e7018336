/*
 * Result codes, error messages, bounded buffers and Avro varints.
 */

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "avs_base.h"


typedef struct {
    unsigned    n;
    void      (*fn[AVS_THREAD_EXIT_MAX])(void *arg);
    void       *arg[AVS_THREAD_EXIT_MAX];
} avs_thread_exit_t;


static pthread_key_t   avs_thread_exit_key;
static pthread_once_t  avs_thread_exit_once = PTHREAD_ONCE_INIT;
static int             avs_thread_exit_ready;


avs_rc_t
avs_err_set(avs_err_t *err, avs_rc_t rc, const char *fmt, ...)
{
    va_list  ap;

    if (err != NULL) {
        err->rc = rc;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }

    return rc;
}


int
avs_rc_http_status(avs_rc_t rc)
{
    switch (rc) {
    case AVS_OK:
    case AVS_DONE:
        return 200;
    case AVS_EMALFORMED:
        return 400;
    case AVS_ETOOLARGE:
        return 413;
    case AVS_EUNSUPPORTED:
        return 415;
    case AVS_EREJECTED:
        return 422;
    case AVS_ENOTFOUND:
        return 404;
    case AVS_ECONFLICT:
        return 409;
    case AVS_EBUSY:
    case AVS_EFULL:
    case AVS_ESTORE:
        return 503;
    default:
        return 500;
    }
}


const char *
avs_rc_name(avs_rc_t rc)
{
    static const char *names[] = {
        "ok", "done", "malformed", "too_large", "unsupported", "rejected",
        "busy", "full", "store_failed", "no_memory", "internal",
        "not_found", "conflict"
    };

    if ((unsigned) rc < sizeof(names) / sizeof(names[0])) {
        return names[rc];
    }

    return "internal";
}


/*
 * Grows the buffer geometrically so that appending many small pieces stays
 * linear, but never past the limit.
 */
avs_rc_t
avs_buf_reserve(avs_buf_t *b, size_t extra)
{
    size_t    limit, want, cap;
    uint8_t  *p;

    limit = b->limit ? b->limit : SIZE_MAX;

    if (extra > limit || b->len > limit - extra) {
        return AVS_ETOOLARGE;
    }

    want = b->len + extra;

    if (want <= b->cap) {
        return AVS_OK;
    }

    cap = b->cap ? b->cap : 256;

    while (cap < want) {
        cap = (cap > SIZE_MAX / 2) ? want : cap * 2;
    }

    if (cap > limit) {
        cap = limit;
    }

    p = realloc(b->data, cap);
    if (p == NULL) {
        return AVS_ENOMEM;
    }

    b->data = p;
    b->cap = cap;

    return AVS_OK;
}


avs_rc_t
avs_buf_append(avs_buf_t *b, const void *p, size_t n)
{
    avs_rc_t  rc;

    if (n == 0) {
        return AVS_OK;
    }

    rc = avs_buf_reserve(b, n);
    if (rc != AVS_OK) {
        return rc;
    }

    memcpy(b->data + b->len, p, n);
    b->len += n;

    return AVS_OK;
}


avs_rc_t
avs_buf_append_long(avs_buf_t *b, int64_t v)
{
    uint8_t   tmp[10];
    uint64_t  z;
    size_t    n;

    z = ((uint64_t) v << 1) ^ (uint64_t) (v >> 63);
    n = 0;

    while (z > 0x7f) {
        tmp[n++] = (uint8_t) ((z & 0x7f) | 0x80);
        z >>= 7;
    }

    tmp[n++] = (uint8_t) z;

    return avs_buf_append(b, tmp, n);
}


void
avs_buf_free(avs_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}


void
avs_limits_default(avs_limits_t *lim)
{
    lim->max_upload = AVS_DEFAULT_MAX_UPLOAD;
    lim->max_schema = AVS_DEFAULT_MAX_SCHEMA;
    lim->max_records = AVS_DEFAULT_MAX_RECORDS;
    lim->max_depth = AVS_DEFAULT_MAX_DEPTH;
}


avs_rc_t
avs_read_long(const uint8_t *p, size_t n, size_t *pos, int64_t *out)
{
    uint64_t  z;
    size_t    i;
    unsigned  shift;
    uint8_t   c;

    z = 0;
    shift = 0;

    for (i = *pos; i < n; i++) {
        c = p[i];

        if (shift == 63 && (c & 0x7e)) {
            return AVS_EMALFORMED;
        }

        z |= (uint64_t) (c & 0x7f) << shift;

        if ((c & 0x80) == 0) {
            *pos = i + 1;
            *out = (int64_t) (z >> 1) ^ -(int64_t) (z & 1);
            return AVS_OK;
        }

        shift += 7;

        if (shift > 63) {
            return AVS_EMALFORMED;
        }
    }

    return AVS_EMALFORMED;
}


void
avs_deadline(struct timespec *ts, uint64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t) (ms / 1000);
    ts->tv_nsec += (long) (ms % 1000) * 1000000;

    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}


/* Runs a thread's exit functions, the last registered first. */
static void
avs_thread_exit_run(void *p)
{
    avs_thread_exit_t  *te;

    te = p;

    while (te->n > 0) {
        te->n--;
        te->fn[te->n](te->arg[te->n]);
    }

    free(te);
}


static void
avs_thread_exit_init(void)
{
    avs_thread_exit_ready =
        (pthread_key_create(&avs_thread_exit_key, avs_thread_exit_run) == 0);
}


avs_rc_t
avs_at_thread_exit(void (*fn)(void *arg), void *arg)
{
    avs_thread_exit_t  *te;

    if (pthread_once(&avs_thread_exit_once, avs_thread_exit_init) != 0
        || !avs_thread_exit_ready)
    {
        return AVS_ENOMEM;
    }

    te = pthread_getspecific(avs_thread_exit_key);

    if (te == NULL) {
        te = calloc(1, sizeof(avs_thread_exit_t));
        if (te == NULL) {
            return AVS_ENOMEM;
        }

        if (pthread_setspecific(avs_thread_exit_key, te) != 0) {
            free(te);
            return AVS_ENOMEM;
        }
    }

    if (te->n == AVS_THREAD_EXIT_MAX) {
        return AVS_ENOMEM;
    }

    te->fn[te->n] = fn;
    te->arg[te->n] = arg;
    te->n++;

    return AVS_OK;
}
