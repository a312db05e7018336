/*
 * Minimal JSON writer.
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "avs_json.h"


avs_rc_t
avs_json_string(avs_buf_t *b, const char *s, size_t n)
{
    static const char  hex[] = "0123456789abcdef";
    unsigned char      c;
    avs_rc_t           rc;
    size_t             i, run;
    char               esc[6];

    rc = avs_buf_append(b, "\"", 1);

    /* runs of characters that need no escape are copied whole */

    for (i = 0; rc == AVS_OK && i < n; i += run) {
        for (run = 0; i + run < n; run++) {
            c = (unsigned char) s[i + run];

            if (c == '"' || c == '\\' || c < 0x20 || c >= 0x7f) {
                break;
            }
        }

        if (run > 0) {
            rc = avs_buf_append(b, &s[i], run);
            continue;
        }

        c = (unsigned char) s[i];
        run = 1;

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char) c;
            rc = avs_buf_append(b, esc, 2);

        } else {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0x0f];
            rc = avs_buf_append(b, esc, 6);
        }
    }

    if (rc == AVS_OK) {
        rc = avs_buf_append(b, "\"", 1);
    }

    return rc;
}


avs_rc_t
avs_json_raw(avs_buf_t *b, const char *fmt, ...)
{
    va_list   ap;
    avs_rc_t  rc;
    int       n;
    char      tmp[256];

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);

    if (n < 0 || (size_t) n >= sizeof(tmp)) {
        return AVS_EINTERNAL;
    }

    rc = avs_buf_append(b, tmp, (size_t) n);

    return rc;
}


static avs_rc_t
avs_json_key(avs_buf_t *b, const char *key)
{
    avs_rc_t  rc;
    char      last;

    last = b->len ? (char) b->data[b->len - 1] : '{';

    if (last != '{' && last != '[') {
        rc = avs_buf_append(b, ",", 1);
        if (rc != AVS_OK) {
            return rc;
        }
    }

    rc = avs_json_string(b, key, strlen(key));
    if (rc == AVS_OK) {
        rc = avs_buf_append(b, ":", 1);
    }

    return rc;
}


avs_rc_t
avs_json_field_str(avs_buf_t *b, const char *key, const char *v)
{
    avs_rc_t  rc;

    rc = avs_json_key(b, key);
    if (rc != AVS_OK) {
        return rc;
    }

    if (v == NULL) {
        return avs_buf_append(b, "null", 4);
    }

    return avs_json_string(b, v, strlen(v));
}


/* Appends "key": and the JSON text v[0..n) as it is. */
avs_rc_t
avs_json_field_raw(avs_buf_t *b, const char *key, const void *v, size_t n)
{
    avs_rc_t  rc;

    rc = avs_json_key(b, key);
    if (rc != AVS_OK) {
        return rc;
    }

    return avs_buf_append(b, v, n);
}


/*
 * Appends the decimal digits of v, with a minus sign when neg: the answer
 * of every upload has several numbers, which vsnprintf made costly.
 */
static avs_rc_t
avs_json_number(avs_buf_t *b, uint64_t v, int neg)
{
    char   tmp[24];
    char  *p;

    p = tmp + sizeof(tmp);

    do {
        *--p = (char) ('0' + v % 10);
        v /= 10;
    } while (v != 0);

    if (neg) {
        *--p = '-';
    }

    return avs_buf_append(b, p, (size_t) (tmp + sizeof(tmp) - p));
}


avs_rc_t
avs_json_field_u64(avs_buf_t *b, const char *key, uint64_t v)
{
    avs_rc_t  rc;

    rc = avs_json_key(b, key);
    if (rc == AVS_OK) {
        rc = avs_json_number(b, v, 0);
    }

    return rc;
}


avs_rc_t
avs_json_field_i64(avs_buf_t *b, const char *key, int64_t v)
{
    avs_rc_t  rc;

    rc = avs_json_key(b, key);
    if (rc == AVS_OK) {
        rc = avs_json_number(b, v < 0 ? 0 - (uint64_t) v : (uint64_t) v,
                             v < 0);
    }

    return rc;
}


avs_rc_t
avs_json_field_bool(avs_buf_t *b, const char *key, int v)
{
    avs_rc_t  rc;

    rc = avs_json_key(b, key);
    if (rc == AVS_OK) {
        rc = v ? avs_buf_append(b, "true", 4)
               : avs_buf_append(b, "false", 5);
    }

    return rc;
}


avs_rc_t
avs_json_error(avs_buf_t *b, const avs_err_t *err)
{
    avs_rc_t  rc;

    rc = avs_buf_append(b, "{", 1);
    if (rc == AVS_OK) {
        rc = avs_json_field_i64(b, "status", avs_rc_http_status(err->rc));
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_str(b, "error", avs_rc_name(err->rc));
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_str(b, "message", err->msg);
    }
    if (rc == AVS_OK) {
        rc = avs_buf_append(b, "}\n", 2);
    }

    return rc;
}
