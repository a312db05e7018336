/*
 * Just enough JSON writing for the module's answers: escaped strings and
 * numbers appended to a buffer.
 */

#ifndef AVS_JSON_H
#define AVS_JSON_H

#include "avs_base.h"

/* Appends s[0..n) as a quoted JSON string; bytes that are not printable
 * ASCII are written as \u00XX so the output is always valid JSON. */
avs_rc_t avs_json_string(avs_buf_t *b, const char *s, size_t n);

/* Appends printf-formatted raw text (no escaping). */
avs_rc_t avs_json_raw(avs_buf_t *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Appends "key": "value" (value escaped), preceded by a comma unless the
 * buffer ends with '{' or '['. */
avs_rc_t avs_json_field_str(avs_buf_t *b, const char *key, const char *v);
avs_rc_t avs_json_field_u64(avs_buf_t *b, const char *key, uint64_t v);
avs_rc_t avs_json_field_i64(avs_buf_t *b, const char *key, int64_t v);
avs_rc_t avs_json_field_bool(avs_buf_t *b, const char *key, int v);

/* Appends "key": and v[0..n), JSON text already (not escaped). */
avs_rc_t avs_json_field_raw(avs_buf_t *b, const char *key, const void *v,
    size_t n);

/* The error body every 4xx and 5xx answer carries:
 * {"status": 400, "error": "malformed", "message": "..."} */
avs_rc_t avs_json_error(avs_buf_t *b, const avs_err_t *err);

#endif /* AVS_JSON_H */
