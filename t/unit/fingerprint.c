/*
 * Unit tests of the Parsing Canonical Form and the CRC-64-AVRO fingerprint:
 * every vector of the Avro project's shared schema test data (canonical
 * form and, where given, fingerprint), then namespaces, stripped
 * attributes, escapes, errors and the hex form.
 */

#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avs_fingerprint.h"
#include "tap.h"


typedef struct {
    const char  *input;
    const char  *canonical;
    int64_t      fingerprint;       /* as a signed decimal in the data */
    int          has_fingerprint;
} vector_t;


/* share/test/data/schema-tests.txt of the Avro project */
static const vector_t  vectors[] = {

    /* 000 */
    { "\"null\"",
      "\"null\"",
      INT64_C(7195948357588979594), 1 },

    /* 001 */
    { "{\"type\":\"null\"}",
      "\"null\"",
      0, 0 },

    /* 002 */
    { "\"boolean\"",
      "\"boolean\"",
      INT64_C(-6970731678124411036), 1 },

    /* 003 */
    { "{\"type\":\"boolean\"}",
      "\"boolean\"",
      0, 0 },

    /* 004 */
    { "\"int\"",
      "\"int\"",
      INT64_C(8247732601305521295), 1 },

    /* 005 */
    { "{\"type\":\"int\"}",
      "\"int\"",
      0, 0 },

    /* 006 */
    { "\"long\"",
      "\"long\"",
      INT64_C(-3434872931120570953), 1 },

    /* 007 */
    { "{\"type\":\"long\"}",
      "\"long\"",
      0, 0 },

    /* 008 */
    { "\"float\"",
      "\"float\"",
      INT64_C(5583340709985441680), 1 },

    /* 009 */
    { "{\"type\":\"float\"}",
      "\"float\"",
      0, 0 },

    /* 010 */
    { "\"double\"",
      "\"double\"",
      INT64_C(-8181574048448539266), 1 },

    /* 011 */
    { "{\"type\":\"double\"}",
      "\"double\"",
      0, 0 },

    /* 012 */
    { "\"bytes\"",
      "\"bytes\"",
      INT64_C(5746618253357095269), 1 },

    /* 013 */
    { "{\"type\":\"bytes\"}",
      "\"bytes\"",
      0, 0 },

    /* 014 */
    { "\"string\"",
      "\"string\"",
      INT64_C(-8142146995180207161), 1 },

    /* 015 */
    { "{\"type\":\"string\"}",
      "\"string\"",
      0, 0 },

    /* 016 */
    { "[  ]",
      "[]",
      INT64_C(-1241056759729112623), 1 },

    /* 017 */
    { "[ \"int\"  ]",
      "[\"int\"]",
      INT64_C(-5232228896498058493), 1 },

    /* 018 */
    { "[ \"int\" , {\"type\":\"boolean\"} ]",
      "[\"int\",\"boolean\"]",
      INT64_C(5392556393470105090), 1 },

    /* 019 */
    { "{\"fields\":[], \"type\":\"record\", \"name\":\"foo\"}",
      "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}",
      INT64_C(-4824392279771201922), 1 },

    /* 020 */
    { "{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"namespace\":"
      "\"x.y\"}",
      "{\"name\":\"x.y.foo\",\"type\":\"record\",\"fields\":[]}",
      INT64_C(5916914534497305771), 1 },

    /* 021 */
    { "{\"fields\":[], \"type\":\"record\", \"name\":\"a.b.foo\", \"namespace"
      "\":\"x.y\"}",
      "{\"name\":\"a.b.foo\",\"type\":\"record\",\"fields\":[]}",
      INT64_C(-4616218487480524110), 1 },

    /* 022 */
    { "{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"doc\":\"Usefu"
      "l info\"}",
      "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}",
      INT64_C(-4824392279771201922), 1 },

    /* 023 */
    { "{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"aliases\":[\""
      "foo\",\"bar\"]}",
      "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}",
      INT64_C(-4824392279771201922), 1 },

    /* 024 */
    { "{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"doc\":\"foo\""
      ", \"aliases\":[\"foo\",\"bar\"]}",
      "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}",
      INT64_C(-4824392279771201922), 1 },

    /* 025 */
    { "{\"fields\":[{\"type\":{\"type\":\"boolean\"}, \"name\":\"f1\"}], \"ty"
      "pe\":\"record\", \"name\":\"foo\"}",
      "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[{\"name\":\"f1\",\"t"
      "ype\":\"boolean\"}]}",
      INT64_C(7843277075252814651), 1 },

    /* 026 */
    { "{ \"fields\":[{\"type\":\"boolean\", \"aliases\":[], \"name\":\"f1\", "
      "\"default\":true},\n"
      "            {\"order\":\"descending\",\"name\":\"f2\",\"doc\":\"Hello"
      "\",\"type\":\"int\"}],\n"
      "  \"type\":\"record\", \"name\":\"foo\"\n"
      "}",
      "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[{\"name\":\"f1\",\"t"
      "ype\":\"boolean\"},{\"name\":\"f2\",\"type\":\"int\"}]}",
      INT64_C(-4860222112080293046), 1 },

    /* 027 */
    { "{\"type\":\"enum\", \"name\":\"foo\", \"symbols\":[\"A1\"]}",
      "{\"name\":\"foo\",\"type\":\"enum\",\"symbols\":[\"A1\"]}",
      INT64_C(-6342190197741309591), 1 },

    /* 028 */
    { "{\"namespace\":\"x.y.z\", \"type\":\"enum\", \"name\":\"foo\", \"doc\""
      ":\"foo bar\", \"symbols\":[\"A1\", \"A2\"]}",
      "{\"name\":\"x.y.z.foo\",\"type\":\"enum\",\"symbols\":[\"A1\",\"A2\"]}",
      INT64_C(-4448647247586288245), 1 },

    /* 029 */
    { "{\"name\":\"foo\",\"type\":\"fixed\",\"size\":15}",
      "{\"name\":\"foo\",\"type\":\"fixed\",\"size\":15}",
      INT64_C(1756455273707447556), 1 },

    /* 030 */
    { "{\"namespace\":\"x.y.z\", \"type\":\"fixed\", \"name\":\"foo\", \"doc"
      "\":\"foo bar\", \"size\":32}",
      "{\"name\":\"x.y.z.foo\",\"type\":\"fixed\",\"size\":32}",
      INT64_C(-3064184465700546786), 1 },

    /* 031 */
    { "{ \"items\":{\"type\":\"null\"}, \"type\":\"array\"}",
      "{\"type\":\"array\",\"items\":\"null\"}",
      INT64_C(-589620603366471059), 1 },

    /* 032 */
    { "{ \"values\":\"string\", \"type\":\"map\"}",
      "{\"type\":\"map\",\"values\":\"string\"}",
      INT64_C(-8732877298790414990), 1 },

    /* 033 */
    { "  {\"name\":\"PigValue\",\"type\":\"record\",\n"
      "   \"fields\":[{\"name\":\"value\", \"type\":[\"null\", \"int\", \"lon"
      "g\", \"PigValue\"]}]}",
      "{\"name\":\"PigValue\",\"type\":\"record\",\"fields\":[{\"name\":\"val"
      "ue\",\"type\":[\"null\",\"int\",\"long\",\"PigValue\"]}]}",
      INT64_C(-1759257747318642341), 1 },
};


typedef struct {
    const char  *input;
    const char  *canonical;
} extra_t;


/* Further cases, checked against an independent implementation. */
static const extra_t  extras[] = {

    /* nested namespaces: inherited, overridden, emptied, dotted names */
    { "{\"type\":\"record\",\"name\":\"a\",\"namespace\":\"n1\",\"fields\":["
      "{\"name\":\"f\",\"type\":{\"type\":\"record\",\"name\":\"b\","
      "\"fields\":[{\"name\":\"g\",\"type\":{\"type\":\"enum\",\"name\":\"c\","
      "\"namespace\":\"\",\"symbols\":[\"X\",\"Y\"]}},{\"name\":\"h\","
      "\"type\":{\"type\":\"array\",\"items\":\"b\"}}]}},{\"name\":\"i\","
      "\"type\":\"b\"},{\"name\":\"j\",\"type\":{\"type\":\"fixed\","
      "\"name\":\"d.e\",\"size\":16}},{\"name\":\"k\",\"type\":\"n1.b\"},"
      "{\"name\":\"l\",\"type\":{\"type\":\"record\",\"name\":\"m\","
      "\"fields\":[{\"name\":\"x\",\"type\":\"d.e\"},{\"name\":\"y\","
      "\"type\":{\"type\":\"record\",\"name\":\"q\",\"fields\":[{\"name\":"
      "\"z\",\"type\":\"d.e\"}]}}]}}]}",
      "{\"name\":\"n1.a\",\"type\":\"record\",\"fields\":[{\"name\":\"f\","
      "\"type\":{\"name\":\"n1.b\",\"type\":\"record\",\"fields\":[{\"name\":"
      "\"g\",\"type\":{\"name\":\"c\",\"type\":\"enum\",\"symbols\":[\"X\","
      "\"Y\"]}},{\"name\":\"h\",\"type\":{\"type\":\"array\",\"items\":"
      "\"n1.b\"}}]}},{\"name\":\"i\",\"type\":\"n1.b\"},{\"name\":\"j\","
      "\"type\":{\"name\":\"d.e\",\"type\":\"fixed\",\"size\":16}},{\"name\":"
      "\"k\",\"type\":\"n1.b\"},{\"name\":\"l\",\"type\":{\"name\":\"n1.m\","
      "\"type\":\"record\",\"fields\":[{\"name\":\"x\",\"type\":\"d.e\"},"
      "{\"name\":\"y\",\"type\":{\"name\":\"n1.q\",\"type\":\"record\","
      "\"fields\":[{\"name\":\"z\",\"type\":\"d.e\"}]}}]}}]}" },

    /* a nested namespace is what nested types inherit */
    { "{\"type\":\"record\",\"name\":\"a\",\"namespace\":\"n1\",\"fields\":["
      "{\"name\":\"f\",\"type\":{\"type\":\"record\",\"name\":\"b\","
      "\"namespace\":\"n2\",\"fields\":[{\"name\":\"g\",\"type\":{\"type\":"
      "\"record\",\"name\":\"c\",\"fields\":[]}}]}},{\"name\":\"h\","
      "\"type\":\"n2.c\"}]}",
      "{\"name\":\"n1.a\",\"type\":\"record\",\"fields\":[{\"name\":\"f\","
      "\"type\":{\"name\":\"n2.b\",\"type\":\"record\",\"fields\":[{\"name\":"
      "\"g\",\"type\":{\"name\":\"n2.c\",\"type\":\"record\",\"fields\":[]}}"
      "]}},{\"name\":\"h\",\"type\":\"n2.c\"}]}" },

    /* logical types and other attributes are stripped */
    { "{\"type\":\"record\",\"name\":\"R\",\"namespace\":\"o.p\",\"fields\":["
      "{\"name\":\"ts\",\"type\":{\"type\":\"long\",\"logicalType\":"
      "\"timestamp-millis\"}},{\"name\":\"d\",\"type\":{\"type\":\"bytes\","
      "\"logicalType\":\"decimal\",\"precision\":4,\"scale\":2}},{\"name\":"
      "\"u\",\"type\":[\"null\",{\"type\":\"string\",\"avro.java.string\":"
      "\"String\"}],\"default\":null},{\"name\":\"arr\",\"type\":{\"type\":"
      "\"array\",\"items\":{\"type\":\"map\",\"values\":\"R\"}}}]}",
      "{\"name\":\"o.p.R\",\"type\":\"record\",\"fields\":[{\"name\":\"ts\","
      "\"type\":\"long\"},{\"name\":\"d\",\"type\":\"bytes\"},{\"name\":\"u\","
      "\"type\":[\"null\",\"string\"]},{\"name\":\"arr\",\"type\":{\"type\":"
      "\"array\",\"items\":{\"type\":\"map\",\"values\":\"o.p.R\"}}}]}" },

    /* whitespace everywhere, attributes in any order */
    { "  [ \"null\" ,\n\t{ \"type\" : \"enum\" , \"symbols\" : [ \"A\" ] , "
      "\"name\" : \"E\" , \"namespace\" : \"x\" } , {\"type\":\"array\", "
      "\"items\":\"x.E\"} ]\r\n",
      "[\"null\",{\"name\":\"x.E\",\"type\":\"enum\",\"symbols\":[\"A\"]},"
      "{\"type\":\"array\",\"items\":\"x.E\"}]" },

    /* escapes in strings become the characters themselves */
    { "{\"type\":\"record\",\"name\":\"\\u0041b\",\"fields\":[{\"name\":"
      "\"c\\u0044\",\"type\":\"\\u0069nt\"}]}",
      "{\"name\":\"Ab\",\"type\":\"record\",\"fields\":[{\"name\":\"cD\","
      "\"type\":\"int\"}]}" },

    /* a size in quotes with leading zeros, an error type, a wrapped type */
    { "{\"type\":\"fixed\",\"name\":\"F\",\"size\":\"0015\"}",
      "{\"name\":\"F\",\"type\":\"fixed\",\"size\":15}" },
    { "{\"type\":\"error\",\"name\":\"Oops\",\"fields\":[]}",
      "{\"name\":\"Oops\",\"type\":\"record\",\"fields\":[]}" },
    { "{\"type\":{\"type\":\"map\",\"values\":{\"type\":\"int\"}}}",
      "{\"type\":\"map\",\"values\":\"int\"}" },
    { "{\"type\":\"fixed\",\"name\":\"Z\",\"size\":0,\"doc\":\"x\"}",
      "{\"name\":\"Z\",\"type\":\"fixed\",\"size\":0}" },

    /* a reference as {"type": name}, and a union of references */
    { "{\"type\":\"record\",\"name\":\"L\",\"namespace\":\"q\",\"fields\":["
      "{\"name\":\"next\",\"type\":[\"null\",{\"type\":\"L\"}]}]}",
      "{\"name\":\"q.L\",\"type\":\"record\",\"fields\":[{\"name\":\"next\","
      "\"type\":[\"null\",\"q.L\"]}]}" },
};


typedef struct {
    const char  *input;
    const char  *message;
} bad_t;


static const bad_t  bads[] = {
    { "", NULL },
    { "{\"type\":\"record\"", NULL },
    { "\"null\" x", NULL },
    { "42", "schema: a type must be a string, object or array" },
    { "null", "schema: a type must be a string, object or array" },
    { "\"Foo\"", "schema: unknown type 'Foo'" },
    { "{\"name\":\"x\"}", "schema: object without a type" },
    { "{\"type\":\"record\",\"name\":\"r\"}",
      "schema: record without a fields array" },
    { "{\"type\":\"record\",\"fields\":[]}",
      "schema: record with an invalid name ''" },
    { "{\"type\":\"record\",\"name\":\"1r\",\"fields\":[]}",
      "schema: record with an invalid name '1r'" },
    { "{\"type\":\"record\",\"name\":\"a..b\",\"fields\":[]}",
      "schema: record with an invalid name 'a..b'" },
    { "{\"type\":\"record\",\"name\":\"r\",\"namespace\":\"x-y\","
      "\"fields\":[]}", "schema: invalid namespace 'x-y'" },
    { "{\"type\":\"record\",\"name\":\"r\",\"namespace\":5,\"fields\":[]}",
      "schema: \"namespace\" is not a string" },
    { "{\"type\":\"record\",\"name\":\"r\",\"fields\":[{\"name\":\"a b\","
      "\"type\":\"int\"}]}", "schema: invalid field name 'a b'" },
    { "{\"type\":\"record\",\"name\":\"r\",\"fields\":[{\"name\":\"a\"}]}",
      "schema: field 'a' has no type" },
    { "{\"type\":\"record\",\"name\":\"r\",\"fields\":[7]}",
      "schema: field is not an object" },
    { "{\"type\":\"enum\",\"name\":\"e\",\"symbols\":[\"A\",\"B-\"]}",
      "schema: invalid enum symbol" },
    { "{\"type\":\"enum\",\"name\":\"e\"}",
      "schema: enum without a symbols array" },
    { "{\"type\":\"fixed\",\"name\":\"f\",\"size\":-1}",
      "schema: bad fixed size" },
    { "{\"type\":\"fixed\",\"name\":\"f\",\"size\":\"1x\"}",
      "schema: bad fixed size" },
    { "{\"type\":\"fixed\",\"name\":\"f\",\"size\":99999999999}",
      "schema: bad fixed size" },
    { "{\"type\":\"fixed\",\"name\":\"f\",\"size\":1.5}",
      "schema: fixed without an integer size" },
    { "{\"type\":\"fixed\",\"name\":\"f\"}",
      "schema: fixed without an integer size" },
    { "{\"type\":\"array\"}", "schema: array without items" },
    { "{\"type\":\"map\",\"items\":\"int\"}", "schema: map without values" },
    { "[\"int\",{\"type\":\"fixed\",\"name\":\"f\",\"size\":1},"
      "{\"type\":\"fixed\",\"name\":\"f\",\"size\":2}]",
      "schema: 'f' is defined twice" },
    { "{\"type\":\"record\",\"name\":\"long\",\"fields\":[]}",
      "schema: 'long' redefines a primitive type" },
    { "{\"type\":\"record\",\"name\":\"r\",\"fields\":[],\"name\":\"s\"}",
      NULL },

    /* a short name is looked up in the enclosing namespace only */
    { "{\"type\":\"record\",\"name\":\"a\",\"namespace\":\"n1\",\"fields\":["
      "{\"name\":\"f\",\"type\":{\"type\":\"fixed\",\"name\":\"d.e\","
      "\"size\":1}},{\"name\":\"g\",\"type\":\"e\"}]}",
      "schema: unknown type 'n1.e'" },
    { "{\"type\":\"record\",\"name\":\"a\",\"namespace\":\"n1\",\"fields\":["
      "{\"name\":\"f\",\"type\":{\"type\":\"enum\",\"name\":\"c\","
      "\"namespace\":\"\",\"symbols\":[\"A\"]}},{\"name\":\"g\","
      "\"type\":\"c\"}]}",
      "schema: unknown type 'n1.c'" },

    /* used before it is defined */
    { "[\"x.Y\",{\"type\":\"fixed\",\"name\":\"Y\",\"namespace\":\"x\","
      "\"size\":1}]", "schema: unknown type 'x.Y'" },
    { "{\"type\":\"record\",\"name\":\"r\",\"fields\":[{\"name\":\"a\","
      "\"type\":\"r \"}]}", "schema: invalid type name 'r '" },
};


/* Canonical form of a string, or NULL; the caller frees the result. */
static char *
canon(const char *json, avs_err_t *err)
{
    avs_buf_t  b;

    memset(&b, 0, sizeof(b));
    memset(err, 0, sizeof(*err));

    if (avs_schema_canonical_form(json, strlen(json), &b, err) != AVS_OK) {
        avs_buf_free(&b);
        return NULL;
    }

    if (strlen((char *) b.data) != b.len) {
        avs_buf_free(&b);
        return NULL;
    }

    return (char *) b.data;
}


static void
test_vectors(void)
{
    const vector_t  *v;
    avs_err_t        err;
    size_t           i;
    char            *c;
    uint64_t         fp;

    for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        v = &vectors[i];

        c = canon(v->input, &err);
        is_str(c, v->canonical, "vector %03zu: canonical form", i);

        if (c == NULL) {
            printf("#   error: %s\n", err.msg);
        }

        free(c);

        /* the canonical form is its own canonical form */
        c = canon(v->canonical, &err);
        is_str(c, v->canonical, "vector %03zu: canonical form is stable", i);
        free(c);

        if (v->has_fingerprint) {
            fp = avs_crc64_avro(v->canonical, strlen(v->canonical));
            is_int((int64_t) fp, v->fingerprint, "vector %03zu: fingerprint",
                   i);
        }
    }
}


static void
test_extras(void)
{
    avs_err_t  err;
    size_t     i;
    char      *c;

    for (i = 0; i < sizeof(extras) / sizeof(extras[0]); i++) {
        c = canon(extras[i].input, &err);
        is_str(c, extras[i].canonical, "extra %zu: canonical form", i);

        if (c == NULL) {
            printf("#   error: %s\n", err.msg);
        }

        free(c);
    }
}


static void
test_errors(void)
{
    avs_buf_t   b;
    avs_err_t   err;
    avs_rc_t    rc;
    size_t      i;

    memset(&b, 0, sizeof(b));
    avs_buf_append(&b, "keep", 4);

    for (i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        memset(&err, 0, sizeof(err));

        rc = avs_schema_canonical_form(bads[i].input, strlen(bads[i].input),
                                       &b, &err);
        is_int(rc, AVS_EMALFORMED, "bad %zu refused", i);
        is_int(b.len, 4, "bad %zu: output restored", i);

        if (bads[i].message) {
            is_str(err.msg, bads[i].message, "bad %zu: message", i);

        } else {
            ok(strncmp(err.msg, "schema: invalid JSON", 20) == 0,
               "bad %zu: '%s'", i, err.msg);
        }
    }

    avs_buf_free(&b);
}


/* Deep nesting fails cleanly instead of exhausting the stack. */
static void
test_depth(void)
{
    avs_buf_t   in, out;
    avs_err_t   err;
    avs_rc_t    rc;
    int         i, depth;

    for (depth = 100; depth <= 1000; depth += 900) {
        memset(&in, 0, sizeof(in));
        memset(&out, 0, sizeof(out));

        for (i = 0; i < depth; i++) {
            avs_buf_append(&in, "{\"type\":\"array\",\"items\":", 24);
        }

        avs_buf_append(&in, "\"int\"", 5);

        for (i = 0; i < depth; i++) {
            avs_buf_append(&in, "}", 1);
        }

        rc = avs_schema_canonical_form((char *) in.data, in.len, &out, &err);

        if (depth == 100) {
            is_int(rc, AVS_OK, "arrays nested 100 deep");

        } else {
            is_int(rc, AVS_EMALFORMED, "arrays nested 1000 deep refused");
            is_str(err.msg, "schema: nested deeper than 128", "message");
        }

        avs_buf_free(&in);
        avs_buf_free(&out);
    }
}


/* A buffer limit caps the canonical form too. */
static void
test_limit(void)
{
    avs_buf_t    out;
    avs_err_t    err;
    size_t       len;
    const char  *s = "{\"fields\":[],\"type\":\"record\",\"name\":\"r\"}";
    const char  *c = "{\"name\":\"r\",\"type\":\"record\",\"fields\":[]}";

    len = strlen(c);
    memset(&out, 0, sizeof(out));
    out.limit = 10;

    is_int(avs_schema_canonical_form(s, strlen(s), &out, &err),
           AVS_ETOOLARGE, "canonical form over the buffer limit");
    is_str(err.msg, "schema: canonical form too large", "message");
    is_int(out.len, 0, "output restored");

    out.limit = len;
    is_int(avs_schema_canonical_form(s, strlen(s), &out, &err),
           AVS_ETOOLARGE, "no room for the terminating NUL");
    is_int(out.len, 0, "output restored");

    out.limit = len + 1;
    is_int(avs_schema_canonical_form(s, strlen(s), &out, &err), AVS_OK,
           "exactly enough room");
    is_int(out.len, len, "length without the NUL");
    is_str((char *) out.data, c, "NUL-terminated");

    avs_buf_free(&out);
}


static void *
fingerprint_thread(void *arg)
{
    uint64_t  *fp = arg;

    *fp = avs_crc64_avro("\"int\"", 5);

    return NULL;
}


static void
test_crc(void)
{
    pthread_t  t[8];
    uint64_t   fp[8];
    char       hex[17];
    int        i, same;

    /* first use from several threads at once */
    for (i = 0; i < 8; i++) {
        pthread_create(&t[i], NULL, fingerprint_thread, &fp[i]);
    }

    same = 1;
    for (i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        same = same && fp[i] == (uint64_t) INT64_C(8247732601305521295);
    }

    ok(same, "eight threads agree on the first fingerprint");

    ok(avs_crc64_avro("", 0) == 0xc15d213aa4d7a795ULL,
       "the empty string fingerprints to the EMPTY constant");

    avs_fingerprint_hex(avs_crc64_avro("\"null\"", 6), hex);
    is_str(hex, "63dd24e7cc258f8a", "hex of \"null\"");

    avs_fingerprint_hex(0, hex);
    is_str(hex, "0000000000000000", "hex of 0 keeps leading zeros");

    avs_fingerprint_hex(UINT64_MAX, hex);
    is_str(hex, "ffffffffffffffff", "hex of all ones");

    avs_fingerprint_hex(0x0123456789abcdefULL, hex);
    is_str(hex, "0123456789abcdef", "hex digits in order");
}


int
main(void)
{
    test_crc();
    test_vectors();
    test_extras();
    test_errors();
    test_depth();
    test_limit();

    return done_testing();
}
