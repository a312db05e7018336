/*
 * Parsing of the JSON upload envelope and base64 decoding.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "avs_envelope.h"


static int8_t  avs_b64_value[256];
static int     avs_b64_ready;


/* Builds the decode table on first use; races only write equal values. */
static void
avs_b64_init(void)
{
    static const char  alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int                i;

    if (avs_b64_ready) {
        return;
    }

    memset(avs_b64_value, -1, sizeof(avs_b64_value));

    for (i = 0; i < 64; i++) {
        avs_b64_value[(unsigned char) alphabet[i]] = (int8_t) i;
    }

    avs_b64_ready = 1;
}


avs_rc_t
avs_base64_decode(const char *s, size_t n, avs_buf_t *out)
{
    uint8_t   *d;
    uint32_t   acc;
    size_t     i, bits, start;
    avs_rc_t   rc;
    int8_t     v;

    avs_b64_init();

    while (n > 0 && s[n - 1] == '=') {
        n--;
    }

    if (n % 4 == 1) {
        return AVS_EMALFORMED;
    }

    rc = avs_buf_reserve(out, n / 4 * 3 + 2);
    if (rc != AVS_OK) {
        return rc;
    }

    start = out->len;
    d = out->data + out->len;
    acc = 0;
    bits = 0;

    for (i = 0; i < n; i++) {
        v = avs_b64_value[(unsigned char) s[i]];

        if (v < 0) {
            out->len = start;
            return AVS_EMALFORMED;
        }

        acc = (acc << 6) | (uint32_t) v;
        bits += 6;

        if (bits >= 8) {
            bits -= 8;
            *d++ = (uint8_t) (acc >> bits);
        }
    }

    out->len = (size_t) (d - out->data);

    return AVS_OK;
}


/* Copies an optional string member; a non-string value is an error. */
static avs_rc_t
avs_envelope_string(json_t *root, const char *key, char **out,
    avs_err_t *err)
{
    json_t  *v;

    v = json_object_get(root, key);

    if (v == NULL || json_is_null(v)) {
        return AVS_OK;
    }

    if (!json_is_string(v)) {
        return avs_err_set(err, AVS_EMALFORMED,
                           "envelope: \"%s\" must be a string", key);
    }

    if (*out != NULL) {
        return AVS_OK;
    }

    *out = strndup(json_string_value(v), json_string_length(v));
    if (*out == NULL) {
        return avs_err_set(err, AVS_ENOMEM, "out of memory");
    }

    return AVS_OK;
}


static avs_rc_t
avs_envelope_file(avs_envelope_t *env, json_t *v, size_t max_file,
    const char *what, avs_err_t *err)
{
    size_t      cap;
    avs_buf_t  *b;
    avs_rc_t    rc;

    if (!json_is_string(v)) {
        return avs_err_set(err, AVS_EMALFORMED,
                           "envelope: %s must be a base64 string", what);
    }

    if (env->nfiles == AVS_MAX_SLICES) {
        return avs_err_set(err, AVS_ETOOLARGE,
                           "envelope: more than %d slices", AVS_MAX_SLICES);
    }

    if (env->nfiles == env->cap) {
        cap = env->cap ? env->cap * 2 : 4;

        b = realloc(env->files, cap * sizeof(avs_buf_t));
        if (b == NULL) {
            return avs_err_set(err, AVS_ENOMEM, "out of memory");
        }

        env->files = b;
        env->cap = cap;
    }

    b = &env->files[env->nfiles++];
    memset(b, 0, sizeof(*b));
    b->limit = max_file;

    rc = avs_base64_decode(json_string_value(v), json_string_length(v), b);

    if (rc == AVS_ETOOLARGE) {
        return avs_err_set(err, rc, "envelope: %s larger than %zu bytes",
                           what, max_file);
    }

    if (rc != AVS_OK) {
        return avs_err_set(err, rc, "envelope: %s is not valid base64",
                           what);
    }

    if (b->len == 0) {
        return avs_err_set(err, AVS_EMALFORMED, "envelope: %s is empty",
                           what);
    }

    return AVS_OK;
}


avs_rc_t
avs_envelope_parse(const uint8_t *json, size_t n, size_t max_file,
    avs_envelope_t *env, avs_err_t *err)
{
    json_error_t  jerr;
    json_t       *root, *one, *slices;
    avs_rc_t      rc;
    size_t        i;
    char          what[32];

    memset(env, 0, sizeof(*env));

    root = json_loadb((const char *) json, n, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        return avs_err_set(err, AVS_EMALFORMED,
                           "envelope: invalid JSON at line %d column %d: %s",
                           jerr.line, jerr.column, jerr.text);
    }

    if (!json_is_object(root)) {
        rc = avs_err_set(err, AVS_EMALFORMED,
                         "envelope: must be a JSON object");
        goto done;
    }

    rc = avs_envelope_string(root, "dataset_id", &env->dataset, err);
    if (rc == AVS_OK) {
        rc = avs_envelope_string(root, "table_name", &env->table, err);
    }
    if (rc == AVS_OK) {
        rc = avs_envelope_string(root, "table", &env->table, err);
    }
    if (rc == AVS_OK) {
        rc = avs_envelope_string(root, "period_tag", &env->period, err);
    }
    if (rc != AVS_OK) {
        goto done;
    }

    one = json_object_get(root, "avro_base64");
    slices = json_object_get(root, "slices");

    if ((one == NULL) == (slices == NULL)) {
        rc = avs_err_set(err, AVS_EMALFORMED,
                         "envelope: exactly one of \"avro_base64\" and "
                         "\"slices\" is required");
        goto done;
    }

    if (one != NULL) {
        rc = avs_envelope_file(env, one, max_file, "avro_base64", err);
        goto done;
    }

    if (!json_is_array(slices) || json_array_size(slices) == 0) {
        rc = avs_err_set(err, AVS_EMALFORMED,
                         "envelope: \"slices\" must be a non-empty array");
        goto done;
    }

    for (i = 0; i < json_array_size(slices); i++) {
        snprintf(what, sizeof(what), "slice %zu", i + 1);
        rc = avs_envelope_file(env, json_array_get(slices, i), max_file,
                               what, err);
        if (rc != AVS_OK) {
            break;
        }
    }

done:

    json_decref(root);

    if (rc != AVS_OK) {
        avs_envelope_free(env);
    }

    return rc;
}


void
avs_envelope_free(avs_envelope_t *env)
{
    size_t  i;

    for (i = 0; i < env->nfiles; i++) {
        avs_buf_free(&env->files[i]);
    }

    free(env->files);
    free(env->dataset);
    free(env->table);
    free(env->period);
    memset(env, 0, sizeof(*env));
}
