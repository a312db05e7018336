/*
 * Shared basics of the core library: result codes, error messages and a
 * bounded growable byte buffer.  Every fallible core function reports its
 * failure through an avs_err_t so that callers can turn it into an HTTP
 * status and a JSON message without knowing where it came from.
 */

#ifndef AVS_BASE_H
#define AVS_BASE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef enum {
    AVS_OK = 0,
    AVS_DONE,           /* iteration finished, not an error */
    AVS_EMALFORMED,     /* client sent broken input: 400 */
    AVS_ETOOLARGE,      /* a configured limit was passed: 413 */
    AVS_EUNSUPPORTED,   /* unknown codec or content type: 415 */
    AVS_EREJECTED,      /* schema not accepted for the table: 422 */
    AVS_EBUSY,          /* store lock not had within the timeout: 503 */
    AVS_EFULL,          /* store reached max_size: 503 */
    AVS_ESTORE,         /* store failed (I/O, corrupt, ...): 503 */
    AVS_ENOMEM,         /* allocation failed: 500 */
    AVS_EINTERNAL,      /* a bug or an impossible state: 500 */
    AVS_ENOTFOUND,      /* nothing by that name: 404 */
    AVS_ECONFLICT       /* the request must choose (a schema): 409 */
} avs_rc_t;

typedef struct {
    avs_rc_t  rc;
    char      msg[256];
} avs_err_t;

/* Records rc and a printf-style message in err (if not NULL); returns rc. */
avs_rc_t avs_err_set(avs_err_t *err, avs_rc_t rc, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* The HTTP status that matches a result code (200 for AVS_OK). */
int avs_rc_http_status(avs_rc_t rc);

/* Short stable name of a result code, used as "error" in JSON bodies. */
const char *avs_rc_name(avs_rc_t rc);


/*
 * A byte buffer that never grows past limit (0 means SIZE_MAX).  Appends
 * that would pass the limit fail with AVS_ETOOLARGE and leave the buffer
 * unchanged.
 */
typedef struct {
    uint8_t  *data;
    size_t    len;
    size_t    cap;
    size_t    limit;
} avs_buf_t;

avs_rc_t avs_buf_reserve(avs_buf_t *b, size_t extra);
avs_rc_t avs_buf_append(avs_buf_t *b, const void *p, size_t n);
avs_rc_t avs_buf_append_long(avs_buf_t *b, int64_t v);   /* zigzag varint */
void avs_buf_free(avs_buf_t *b);


/* Limits applied to every untrusted upload. */
typedef struct {
    size_t    max_upload;    /* decompressed bytes of one uploaded file */
    size_t    max_schema;    /* bytes of the schema JSON */
    uint64_t  max_records;   /* records in one uploaded file */
    unsigned  max_depth;     /* nesting of records, arrays, maps, unions */
} avs_limits_t;

#define AVS_DEFAULT_MAX_UPLOAD   (64 * 1024 * 1024)
#define AVS_DEFAULT_MAX_SCHEMA   (256 * 1024)
#define AVS_DEFAULT_MAX_RECORDS  1000000
#define AVS_DEFAULT_MAX_DEPTH    32

void avs_limits_default(avs_limits_t *lim);

/*
 * The time ms milliseconds from now on CLOCK_MONOTONIC, for the timed
 * waits (pthread_*_clock*): a wall clock set back while a thread waits
 * (NTP, an operator) would stretch its wait, one set forward cut it.
 */
void avs_deadline(struct timespec *ts, uint64_t ms);


/*
 * Has fn(arg) called when the calling thread ends, so that what a thread
 * keeps for its own reuse (a decompressor, a scratch buffer) goes with it.
 * At most AVS_THREAD_EXIT_MAX per thread; AVS_ENOMEM when it cannot be had.
 */
#define AVS_THREAD_EXIT_MAX  4

avs_rc_t avs_at_thread_exit(void (*fn)(void *arg), void *arg);


/*
 * Reads an Avro long (zigzag varint) from p[*pos..n).  At most 10 bytes;
 * fails with AVS_EMALFORMED on truncation or overlong encoding.
 */
avs_rc_t avs_read_long(const uint8_t *p, size_t n, size_t *pos, int64_t *out);

#endif /* AVS_BASE_H */
