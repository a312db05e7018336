/*
 * Unit tests of the upload pipeline without nginx: names, the JSON
 * envelope, base64, JSON answers and avs_ingest_run() from many threads on a
 * real SQLite file.
 */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sqlite3.h>

#include "tap.h"
#include "sql_count.h"
#include "avs_envelope.h"
#include "avs_ingest.h"
#include "avs_json.h"
#include "avs_names.h"
#include "avs_ocf.h"

#define SCHEMA  "{\"type\":\"record\",\"name\":\"R\",\"fields\":[" \
                "{\"name\":\"a\",\"type\":\"long\"}," \
                "{\"name\":\"s\",\"type\":\"string\"}]}"

static const uint8_t  sync_a[AVS_SYNC_SIZE] = "0123456789abcdef";


/* An OCF of n records (a = seed + i, s = "x..."), null codec. */
static void
make_file(avs_buf_t *out, int64_t seed, int n, avs_codec_t codec)
{
    avs_buf_t  recs, packed;
    int        i;

    memset(&recs, 0, sizeof(recs));
    memset(&packed, 0, sizeof(packed));

    for (i = 0; i < n; i++) {
        avs_buf_append_long(&recs, seed + i);
        avs_buf_append_long(&recs, 3);
        avs_buf_append(&recs, "xyz", 3);
    }

    avs_ocf_write_header(out, SCHEMA, strlen(SCHEMA), codec, sync_a);
    avs_codec_compress(codec, 0, recs.data, recs.len, &packed, NULL);
    avs_ocf_write_block(out, n, packed.data, packed.len, sync_a);

    avs_buf_free(&recs);
    avs_buf_free(&packed);
}


static char *
b64(const uint8_t *p, size_t n)
{
    static const char  a[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char              *s, *d;
    size_t             i;
    uint32_t           v;

    s = malloc(n / 3 * 4 + 8);
    d = s;

    for (i = 0; i + 2 < n; i += 3) {
        v = (uint32_t) p[i] << 16 | (uint32_t) p[i + 1] << 8 | p[i + 2];
        *d++ = a[v >> 18];
        *d++ = a[(v >> 12) & 63];
        *d++ = a[(v >> 6) & 63];
        *d++ = a[v & 63];
    }

    if (n - i == 1) {
        v = (uint32_t) p[i] << 16;
        *d++ = a[v >> 18];
        *d++ = a[(v >> 12) & 63];
        *d++ = '=';
        *d++ = '=';

    } else if (n - i == 2) {
        v = (uint32_t) p[i] << 16 | (uint32_t) p[i + 1] << 8;
        *d++ = a[v >> 18];
        *d++ = a[(v >> 12) & 63];
        *d++ = a[(v >> 6) & 63];
        *d++ = '=';
    }

    *d = '\0';
    return s;
}


static void
test_names(void)
{
    avs_err_t  err;
    char       date[11];

    ok(avs_name_check("t", "own_ship", 8, &err) == AVS_OK, "plain name");
    ok(avs_name_check("t", "2025-12-18", 10, &err) == AVS_OK, "date");
    ok(avs_name_check("t", "a.b@c~d", 7, &err) == AVS_OK, "punctuation");
    ok(avs_name_check("t", "", 0, &err) == AVS_EMALFORMED, "empty");
    ok(avs_name_check("t", "..", 2, &err) == AVS_EMALFORMED, "dot dot");
    ok(avs_name_check("t", "a..b", 4, &err) == AVS_EMALFORMED, "inner ..");
    ok(avs_name_check("t", ".hidden", 7, &err) == AVS_EMALFORMED,
       "leading dot");
    ok(avs_name_check("t", "a/b", 3, &err) == AVS_EMALFORMED, "slash");
    is_str(err.msg, "t: byte 2 is not one of A-Z a-z 0-9 . _ - @ ~",
           "slash message");
    ok(avs_name_check("t", "a\\b", 3, &err) == AVS_EMALFORMED, "backslash");
    ok(avs_name_check("t", "a\nb", 3, &err) == AVS_EMALFORMED, "newline");
    ok(avs_name_check("t", "a\0b", 3, &err) == AVS_EMALFORMED, "NUL");
    ok(avs_name_check("t", "a b", 3, &err) == AVS_EMALFORMED, "space");
    ok(avs_name_check("t", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 130, &err)
       == AVS_EMALFORMED, "too long");

    avs_utc_date(0, date);
    is_str(date, "1970-01-01", "epoch date");
    avs_utc_date(1763683199999LL, date);
    is_str(date, "2025-11-20", "date of a timestamp");

    {
        struct tm  tm;
        time_t     t;
        char       want[11];
        int64_t    ms;
        int        i, same;

        same = 1;

        for (i = -400000; i < 400000 && same; i += 7) {
            ms = (int64_t) i * 86400000LL / 3 + i % 1000;
            t = (time_t) (ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
            gmtime_r(&t, &tm);
            strftime(want, sizeof(want), "%Y-%m-%d", &tm);
            avs_utc_date(ms, date);
            same = strcmp(date, want) == 0;
        }

        ok(same, "dates agree with gmtime_r over 1000 years (%s)", date);
    }
}


static void
test_base64(void)
{
    static const struct { const char *in, *out; } v[] = {
        { "", "" }, { "Zg==", "f" }, { "Zm8=", "fo" }, { "Zm9v", "foo" },
        { "Zm9vYg==", "foob" }, { "Zm9vYmE=", "fooba" },
        { "Zm9vYmFy", "foobar" }, { "Zm9vYmE", "fooba" }
    };
    avs_buf_t  b;
    size_t     i;

    for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        memset(&b, 0, sizeof(b));
        ok(avs_base64_decode(v[i].in, strlen(v[i].in), &b) == AVS_OK
           && b.len == strlen(v[i].out)
           && memcmp(b.data ? (char *) b.data : "", v[i].out, b.len) == 0,
           "base64 '%s'", v[i].in);
        avs_buf_free(&b);
    }

    memset(&b, 0, sizeof(b));
    ok(avs_base64_decode("Zm9v!", 5, &b) == AVS_EMALFORMED, "bad char");
    ok(avs_base64_decode("Z", 1, &b) == AVS_EMALFORMED, "one char");
    ok(avs_base64_decode("Zm 9v", 5, &b) == AVS_EMALFORMED, "space");
    b.limit = 2;
    ok(avs_base64_decode("Zm9vYmFy", 8, &b) == AVS_ETOOLARGE, "limit");
    avs_buf_free(&b);
}


/* An envelope of n slices, each of them "foo" and one byte of its index. */
static void
test_envelope_slices(size_t n, avs_rc_t want)
{
    size_t          i, good;
    avs_buf_t       j;
    avs_err_t       err;
    avs_envelope_t  e;
    uint8_t         bin[4];
    static const char  b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    memset(&j, 0, sizeof(j));
    avs_buf_append(&j, "{\"slices\":[", 11);

    for (i = 0; i < n; i++) {
        /* "Zm9v" is "foo"; the second group holds the byte i % 256 */
        avs_buf_append(&j, i ? ",\"Zm9v" : "\"Zm9v", i ? 6 : 5);
        bin[0] = b64[(i & 0xff) >> 2];
        bin[1] = b64[(i & 3) << 4];
        avs_buf_append(&j, bin, 2);
        avs_buf_append(&j, "\"", 1);
    }

    avs_buf_append(&j, "]}", 2);

    ok(avs_envelope_parse(j.data, j.len, 100, &e, &err) == want,
       "%zu slices: %s", n, want == AVS_OK ? "parsed" : "too many");

    if (want != AVS_OK) {
        is_str(err.msg, "envelope: more than 256 slices", "message");
        avs_buf_free(&j);
        return;
    }

    is_int(e.nfiles, n, "every slice kept");

    for (i = 0, good = 0; i < e.nfiles; i++) {
        good += e.files[i].len == 4 && memcmp(e.files[i].data, "foo", 3) == 0
                && e.files[i].data[3] == (uint8_t) i;
    }

    is_int(good, n, "each slice decoded in its place");

    avs_envelope_free(&e);
    avs_buf_free(&j);
}


static void
test_envelope(void)
{
    avs_envelope_t  e;
    avs_err_t       err;
    const char     *j;

    j = "{\"dataset_id\":\"u1\",\"table_name\":\"t\",\"period_tag\":\"p\","
        "\"avro_base64\":\"Zm9v\"}";
    ok(avs_envelope_parse((const uint8_t *) j, strlen(j), 100, &e, &err)
       == AVS_OK, "envelope with one file");
    is_str(e.dataset, "u1", "dataset");
    is_str(e.table, "t", "table");
    is_str(e.period, "p", "period");
    is_int(e.nfiles, 1, "one file");
    ok(e.files[0].len == 3 && memcmp(e.files[0].data, "foo", 3) == 0,
       "decoded");
    avs_envelope_free(&e);

    j = "{\"table\":\"t\",\"slices\":[\"Zm9v\",\"YmFy\"]}";
    ok(avs_envelope_parse((const uint8_t *) j, strlen(j), 100, &e, &err)
       == AVS_OK, "slices");
    is_int(e.nfiles, 2, "two files");
    is_str(e.table, "t", "\"table\" is the table name too");
    ok(e.dataset == NULL, "no dataset");
    avs_envelope_free(&e);

    j = "{\"slices\":[\"Zm9v\",5]}";
    ok(avs_envelope_parse((const uint8_t *) j, strlen(j), 100, &e, &err)
       == AVS_EMALFORMED, "non-string slice");
    is_str(err.msg, "envelope: slice 2 must be a base64 string", "message");

    j = "{\"avro_base64\":\"Zm9v\",\"slices\":[\"Zm9v\"]}";
    ok(avs_envelope_parse((const uint8_t *) j, strlen(j), 100, &e, &err)
       == AVS_EMALFORMED, "both forms");

    j = "{\"dataset_id\":\"u\"}";
    ok(avs_envelope_parse((const uint8_t *) j, strlen(j), 100, &e, &err)
       == AVS_EMALFORMED, "no file");

    j = "{\"dataset_id\":7,\"avro_base64\":\"Zm9v\"}";
    ok(avs_envelope_parse((const uint8_t *) j, strlen(j), 100, &e, &err)
       == AVS_EMALFORMED, "number as dataset");

    j = "{\"avro_base64\":\"Zm9v\"";
    ok(avs_envelope_parse((const uint8_t *) j, strlen(j), 100, &e, &err)
       == AVS_EMALFORMED, "truncated JSON");
    ok(strncmp(err.msg, "envelope: invalid JSON at line 1", 32) == 0,
       "says where: %s", err.msg);

    j = "[1]";
    ok(avs_envelope_parse((const uint8_t *) j, strlen(j), 100, &e, &err)
       == AVS_EMALFORMED, "array body");

    j = "{\"avro_base64\":\"Zm9vYmFy\"}";
    ok(avs_envelope_parse((const uint8_t *) j, strlen(j), 4, &e, &err)
       == AVS_ETOOLARGE, "file over the limit");

    j = "{\"avro_base64\":\"\"}";
    ok(avs_envelope_parse((const uint8_t *) j, strlen(j), 4, &e, &err)
       == AVS_EMALFORMED, "empty file");

    j = "{\"avro_base64\":\"Zm9v\",\"avro_base64\":\"Zm9v\"}";
    ok(avs_envelope_parse((const uint8_t *) j, strlen(j), 100, &e, &err)
       == AVS_EMALFORMED, "duplicate keys");

    test_envelope_slices(AVS_MAX_SLICES, AVS_OK);
    test_envelope_slices(AVS_MAX_SLICES + 1, AVS_ETOOLARGE);
}




static void
test_json(void)
{
    avs_buf_t  b;
    avs_err_t  err;

    memset(&b, 0, sizeof(b));
    avs_json_string(&b, "a\"b\\c\n\x01\xff", 8);
    avs_buf_append(&b, "", 1);
    is_str((char *) b.data, "\"a\\\"b\\\\c\\u000a\\u0001\\u00ff\"",
           "escaping");
    avs_buf_free(&b);

    err.rc = AVS_EMALFORMED;
    snprintf(err.msg, sizeof(err.msg), "block 3: sync marker mismatch");
    avs_json_error(&b, &err);
    avs_buf_append(&b, "", 1);
    is_str((char *) b.data, "{\"status\":400,\"error\":\"malformed\","
           "\"message\":\"block 3: sync marker mismatch\"}\n", "error body");
    avs_buf_free(&b);

    avs_buf_append(&b, "{", 1);
    avs_json_field_i64(&b, "a", 0);
    avs_json_field_i64(&b, "b", -42);
    avs_json_field_i64(&b, "c", INT64_MIN);
    avs_json_field_u64(&b, "d", UINT64_MAX);
    avs_json_field_bool(&b, "e", 1);
    avs_json_field_bool(&b, "f", 0);
    avs_json_field_str(&b, "g", "plain run");
    avs_buf_append(&b, "}", 2);
    is_str((char *) b.data, "{\"a\":0,\"b\":-42,\"c\":-9223372036854775808,"
           "\"d\":18446744073709551615,\"e\":true,\"f\":false,"
           "\"g\":\"plain run\"}", "numbers, booleans, strings");
    avs_buf_free(&b);
}


typedef struct {
    avs_ingest_env_t  *env;
    int                id;
    int                ok;
} worker_t;


static void *
upload_worker(void *data)
{
    worker_t      *w = data;
    avs_ingest_t   req;
    avs_buf_t      file;
    int            i;

    for (i = 0; i < 25; i++) {
        memset(&file, 0, sizeof(file));
        make_file(&file, w->id * 1000 + i, 3, AVS_CODEC_DEFLATE);

        memset(&req, 0, sizeof(req));
        req.body = file.data;
        req.body_len = file.len;
        req.dataset = "d";
        req.table = "t";
        req.now_ms = 1763683200000LL;

        avs_ingest_run(w->env, &req);
        w->ok += req.status == 201;

        avs_buf_free(&req.response);
        avs_buf_free(&file);
    }

    return NULL;
}


static int
run(avs_ingest_env_t *env, avs_ingest_t *req, const void *body, size_t len,
    int json)
{
    memset(&req->response, 0, sizeof(req->response));
    req->body = body;
    req->body_len = len;
    req->json = json;
    req->now_ms = 1763683200000LL;
    avs_ingest_run(env, req);
    avs_buf_append(&req->response, "", 1);
    req->response.len--;
    return req->status;
}


/*
 * What an event loop takes on: a small file is validated where it came
 * in; files that decompress past the budget, alone or together, are
 * handed over (AVS_DONE) and pass where waiting is allowed.
 */
static void
test_inline_budget(avs_ingest_env_t *env, avs_buf_t *small)
{
    avs_ingest_t  req;
    avs_buf_t     big, half, json;
    char         *h;

    memset(&big, 0, sizeof(big));
    memset(&half, 0, sizeof(half));
    memset(&json, 0, sizeof(json));
    make_file(&big, 1000, 60000, AVS_CODEC_DEFLATE);
    make_file(&half, 2000, 25000, AVS_CODEC_DEFLATE);

    memset(&req, 0, sizeof(req));
    req.dataset = "inline";
    req.table = "own_ship";
    req.body = small->data;
    req.body_len = small->len;
    is_int(avs_ingest_validate(env, &req, 0), AVS_OK,
           "a small file is validated inline");

    req.body = big.data;
    req.body_len = big.len;
    is_int(avs_ingest_validate(env, &req, 0), AVS_DONE,
           "that decompresses past the budget is handed over");
    is_int(avs_ingest_validate(env, &req, 1), AVS_OK,
           "and passes where it may wait");
    is_int((int) req.batch.rows[0].records, 60000, "every record walked");

    h = b64(half.data, half.len);
    avs_json_raw(&json, "{\"dataset_id\":\"inline\",\"table\":\"t\",");
    avs_buf_append(&json, "\"slices\":[\"", 11);
    avs_buf_append(&json, h, strlen(h));
    avs_buf_append(&json, "\",\"", 3);
    avs_buf_append(&json, h, strlen(h));
    avs_buf_append(&json, "\"]}", 3);

    req.json = 1;
    req.body = json.data;
    req.body_len = json.len;
    is_int(avs_ingest_validate(env, &req, 0), AVS_DONE,
           "so do slices that pass it together: %s", req.err.msg);
    is_int(avs_ingest_validate(env, &req, 1), AVS_OK, "and pass too");

    avs_ingest_free(env, &req);
    avs_buf_free(&big);
    avs_buf_free(&half);
    avs_buf_free(&json);
    free(h);
}


static void
test_ingest(const char *dir)
{
    avs_ingest_env_t   env;
    avs_ingest_t       req;
    avs_store_conf_t   sc;
    avs_err_t          err;
    avs_buf_t          f1, f2, bad, json;
    avs_allow_t        allow;
    pthread_t          th[8];
    worker_t           w[8];
    char               path[512], *s1, *s2, *sb;
    int                i, total;
    FILE              *fp;

    snprintf(path, sizeof(path), "%s/hot.db", dir);

    memset(&sc, 0, sizeof(sc));
    sc.path = path;
    sc.synchronous = AVS_SYNC_NORMAL;
    sc.busy_timeout_ms = 2000;

    memset(&env, 0, sizeof(env));
    ok(avs_store_open(&sc, &env.store, &err) == AVS_OK, "store opens");
    env.schemas = avs_schema_cache_create(16);
    avs_limits_default(&env.limits);
    env.codec = AVS_CODEC_DEFLATE;

    memset(&f1, 0, sizeof(f1));
    memset(&f2, 0, sizeof(f2));
    memset(&bad, 0, sizeof(bad));
    make_file(&f1, 1, 5, AVS_CODEC_NULL);
    make_file(&f2, 100, 7, AVS_CODEC_DEFLATE);

    memset(&req, 0, sizeof(req));
    req.dataset = "alice";
    req.table = "own_ship";
    is_int(run(&env, &req, f1.data, f1.len, 0), 201, "raw upload: 201");
    ok(strstr((char *) req.response.data, "\"record_count\":5") != NULL,
       "answer has the record count: %s", req.response.data);
    ok(strstr((char *) req.response.data, "\"period_tag\":\"2025-11-21\"")
       != NULL, "period defaults to the UTC date");
    avs_buf_free(&req.response);

    is_int(run(&env, &req, f1.data, f1.len, 0), 200, "same file again: 200");
    ok(strstr((char *) req.response.data, "\"duplicate\":true") != NULL,
       "marked duplicate");
    ok(strstr((char *) req.response.data, "\"id\":1,") != NULL,
       "with the original id");
    avs_buf_free(&req.response);
    is_int(sql_count(path, "SELECT count(*) FROM buffer_logs"), 1,
           "stored once");

    req.dataset = "bob";
    is_int(run(&env, &req, f1.data, f1.len, 0), 201,
           "same file for another dataset: stored");
    avs_buf_free(&req.response);

    test_inline_budget(&env, &f1);

    /* envelope with slices: all or none */
    s1 = b64(f1.data, f1.len);
    s2 = b64(f2.data, f2.len);
    bad = f2;
    bad.data = malloc(f2.len);
    memcpy(bad.data, f2.data, f2.len);
    bad.data[bad.len - 3] ^= 0x55;      /* inside the block's sync marker */
    sb = b64(bad.data, bad.len);

    memset(&json, 0, sizeof(json));
    avs_json_raw(&json, "{\"dataset_id\":\"carol\",\"table_name\":\"t2\",");
    avs_buf_append(&json, "\"slices\":[\"", 11);
    avs_buf_append(&json, s1, strlen(s1));
    avs_buf_append(&json, "\",\"", 3);
    avs_buf_append(&json, sb, strlen(sb));
    avs_buf_append(&json, "\"]}", 3);

    memset(&req, 0, sizeof(req));
    is_int(run(&env, &req, json.data, json.len, 1), 400,
           "a bad slice refuses the request");
    is_str(req.err.msg, "slice 2: block 1: sync marker mismatch",
           "message names slice and block");
    avs_buf_free(&req.response);
    is_int(sql_count(path,
                      "SELECT count(*) FROM buffer_logs "
                      "WHERE dataset_id = 'carol'"), 0,
           "nothing of it stored");

    json.len = 0;
    avs_json_raw(&json, "{\"dataset_id\":\"carol\",\"table_name\":\"t2\",");
    avs_buf_append(&json, "\"slices\":[\"", 11);
    avs_buf_append(&json, s1, strlen(s1));
    avs_buf_append(&json, "\",\"", 3);
    avs_buf_append(&json, s2, strlen(s2));
    avs_buf_append(&json, "\"]}", 3);
    is_int(run(&env, &req, json.data, json.len, 1), 201, "two good slices");
    ok(strstr((char *) req.response.data, "\"record_count\":12") != NULL,
       "total records");
    avs_buf_free(&req.response);
    is_int(sql_count(path,
                      "SELECT count(*) FROM buffer_logs "
                      "WHERE dataset_id = 'carol' AND table_name = 't2'"), 2,
           "both stored");

    /* names */
    memset(&req, 0, sizeof(req));
    is_int(run(&env, &req, f1.data, f1.len, 0), 400, "no dataset: 400");
    ok(strncmp(req.err.msg, "dataset_id: missing", 19) == 0,
       "says what is missing");
    avs_buf_free(&req.response);

    req.arg_dataset = "../etc";
    req.arg_table = "t";
    is_int(run(&env, &req, f1.data, f1.len, 0), 400, "escaping name: 400");
    avs_buf_free(&req.response);

    req.dataset = "conf";
    req.arg_dataset = "arg";
    req.arg_period = "2020-01-01";
    is_int(run(&env, &req, f2.data, f2.len, 0), 201,
           "location value wins over the argument");
    avs_buf_free(&req.response);
    is_int(sql_count(path,
                      "SELECT count(*) FROM buffer_logs WHERE dataset_id = "
                      "'conf' AND period_tag = '2020-01-01'"), 1,
           "stored under the location's dataset and the argument's period");

    /* broken files */
    memset(&req, 0, sizeof(req));
    req.dataset = "d";
    req.table = "t";
    is_int(run(&env, &req, bad.data, bad.len, 0), 400, "bad sync: 400");
    avs_buf_free(&req.response);
    is_int(run(&env, &req, f1.data, 10, 0), 400, "truncated: 400");
    avs_buf_free(&req.response);
    is_int(run(&env, &req, "hello", 5, 0), 400, "not avro: 400");
    avs_buf_free(&req.response);

    memcpy(bad.data, f2.data, f2.len);
    memcpy(strstr((char *) bad.data, "deflate"), "inflat", 6);
    is_int(run(&env, &req, bad.data, bad.len, 0), 415, "unknown codec: 415");
    avs_buf_free(&req.response);

    env.limits.max_records = 4;
    is_int(run(&env, &req, f1.data, f1.len, 0), 413, "too many records");
    avs_buf_free(&req.response);
    avs_limits_default(&env.limits);

    /* allow list */
    snprintf(path, sizeof(path), "%s/bundle.json", dir);
    fp = fopen(path, "w");
    fprintf(fp, "{\"table_version\":\"9\",\"schemas\":[{\"table_name\":"
            "\"allowed\",\"schema\":\"{\\\"type\\\":\\\"record\\\","
            "\\\"name\\\":\\\"R\\\",\\\"fields\\\":[{\\\"name\\\":\\\"a\\\","
            "\\\"type\\\":\\\"long\\\"},{\\\"name\\\":\\\"s\\\","
            "\\\"type\\\":\\\"string\\\",\\\"doc\\\":\\\"x\\\"}]}\"},"
            "{\"table_name\":\"other\",\"schema\":\"\\\"int\\\"\"}]}");
    fclose(fp);

    memset(&allow, 0, sizeof(allow));
    ok(avs_allow_load(&allow, path, &err) == AVS_OK, "bundle loads");
    env.allow = &allow;

    req.table = "allowed";
    is_int(run(&env, &req, f2.data, f2.len, 0), 201,
           "listed schema accepted (doc ignored)");
    avs_buf_free(&req.response);
    req.table = "other";
    is_int(run(&env, &req, f2.data, f2.len, 0), 422,
           "other schema for a listed table: 422");
    avs_buf_free(&req.response);
    req.table = "unlisted";
    is_int(run(&env, &req, f2.data, f2.len, 0), 422, "unlisted table: 422");
    is_str(req.err.msg, "table 'unlisted' is not accepted here", "message");
    avs_buf_free(&req.response);
    env.allow = NULL;
    avs_allow_free(&allow);

    /* group commit from threads */
    for (i = 0; i < 8; i++) {
        w[i].env = &env;
        w[i].id = i;
        w[i].ok = 0;
        pthread_create(&th[i], NULL, upload_worker, &w[i]);
    }

    total = 0;

    for (i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        total += w[i].ok;
    }

    is_int(total, 200, "8 threads x 25 uploads, all 201");
    snprintf(path, sizeof(path), "%s/hot.db", dir);
    is_int(sql_count(path,
                      "SELECT count(*) FROM buffer_logs "
                      "WHERE dataset_id = 'd' AND table_name = 't'"),
           200, "all stored once");
    is_int(sql_count(path,
                      "SELECT sum(record_count) FROM buffer_logs "
                      "WHERE dataset_id = 'd' AND table_name = 't'"),
           600, "with their records");

    free(s1);
    free(s2);
    free(sb);
    avs_buf_free(&json);
    avs_buf_free(&bad);
    avs_buf_free(&f1);
    avs_buf_free(&f2);
    avs_store_close(env.store);
    avs_schema_cache_destroy(env.schemas);
}


int
main(void)
{
    char  dir[] = "/tmp/avs-ingest-XXXXXX";
    char  cmd[600];

    test_names();
    test_base64();
    test_envelope();
    test_json();

    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }

    test_ingest(dir);

    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) {
        printf("# could not remove %s\n", dir);
    }

    return done_testing();
}
