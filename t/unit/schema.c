/*
 * Unit tests of schema parsing and the schema cache (src/avs_schema.c):
 * every real table schema parses, with the canonical form and fingerprint
 * that an independent implementation (python3-avro) computes; oversized
 * and deeply nested texts are refused before any parser runs; the cache
 * shares, counts, evicts and survives threads.
 */

#define _GNU_SOURCE             /* strcasestr */

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "avs_fingerprint.h"
#include "avs_schema.h"
#include "tap.h"


#define TS_TESTDATA  "../shared/testdata/fusou/"
#define TS_PYTHON    "/usr/bin/python3"
#define TS_THREADS   4
#define TS_TEXTS     8


/*
 * Prints "table TAB canonical form TAB CRC-64-AVRO" for each table; the
 * fingerprint is computed here from the specification's description.
 * python3-avro 1.11.1 leaves a primitive with attributes (a logicalType)
 * as {"type":"string"}, against the specification's [PRIMITIVES] rule, so
 * its output is normalized here first.
 */
static const char  ts_canon_py[] =
    "import sys, json\n"
    "import avro.schema\n"
    "PRIM = ('null', 'boolean', 'int', 'long', 'float', 'double', 'bytes',\n"
    "        'string')\n"
    "def prim(x):\n"
    "    if isinstance(x, dict):\n"
    "        if list(x) == ['type'] and x['type'] in PRIM: return x['type']\n"
    "        return {k: prim(v) for k, v in x.items()}\n"
    "    if isinstance(x, list): return [prim(v) for v in x]\n"
    "    return x\n"
    "EMPTY = 0xc15d213aa4d7a795\n"
    "table = []\n"
    "for i in range(256):\n"
    "    fp = i\n"
    "    for j in range(8):\n"
    "        fp = (fp >> 1) ^ (EMPTY & -(fp & 1))\n"
    "    table.append(fp)\n"
    "def fingerprint(b):\n"
    "    fp = EMPTY\n"
    "    for x in b:\n"
    "        fp = (fp >> 8) ^ table[(fp ^ x) & 0xff]\n"
    "    return fp\n"
    "doc = json.load(open(sys.argv[1]))\n"
    "for t in doc['schemas']:\n"
    "    c = avro.schema.parse(t['schema']).canonical_form\n"
    "    c = json.dumps(prim(json.loads(c)), separators=(',', ':'))\n"
    "    print('%s\\t%s\\t%016x' % (t['table_name'], c,\n"
    "                              fingerprint(c.encode())))\n";


/* Writes count mutations of the table schemas, NUL-separated. */
static const char  ts_mutate_py[] =
    "import json, random, sys\n"
    "rnd = random.Random(5)\n"
    "doc = json.load(open('" TS_TESTDATA "schema_v0_5_1.json'))\n"
    "base = [json.loads(t['schema']) for t in doc['schemas']]\n"
    "base.append({'type': 'record', 'name': 'N', 'namespace': 'a.b',\n"
    "    'fields': [{'name': 'next', 'type': ['null', 'N']},\n"
    "    {'name': 'e', 'type': {'type': 'enum', 'name': 'E',\n"
    "                           'symbols': ['X', 'Y']}},\n"
    "    {'name': 'f', 'type': {'type': 'fixed', 'name': 'F', 'size': 4}},\n"
    "    {'name': 'm', 'type': {'type': 'map', 'values': 'E'}}]})\n"
    "NAMES = ['N', 'E', 'F', 'a.b.N', 'R', 'x.R', 'int', 'string', 'null',\n"
    "         '.R', 'a.b.E', '', 'record', 'Hougeki']\n"
    "def mutate(x):\n"
    "    if isinstance(x, dict):\n"
    "        x = dict(x)\n"
    "        r = rnd.random()\n"
    "        if r < 0.05 and 'name' in x: x['name'] = rnd.choice(NAMES)\n"
    "        elif r < 0.08:\n"
    "            x['namespace'] = rnd.choice(['', 'a', 'a.b', 'x.', None])\n"
    "        elif r < 0.10 and x: del x[rnd.choice(list(x))]\n"
    "        elif r < 0.12:\n"
    "            x['type'] = rnd.choice(NAMES + ['array', 'map', 'fixed'])\n"
    "        elif r < 0.13: x['size'] = rnd.choice([-1, 0, 2**40, 'x'])\n"
    "        elif r < 0.14: x['symbols'] = rnd.choice([[], ['A', 'A'], [1]])\n"
    "        elif r < 0.15:\n"
    "            x['fields'] = rnd.choice([[], {}, [1], [{'name': 'a'}]])\n"
    "        return {k: mutate(v) for k, v in x.items()}\n"
    "    if isinstance(x, list):\n"
    "        x = [mutate(v) for v in x]\n"
    "        r = rnd.random()\n"
    "        if r < 0.05 and x: x.append(rnd.choice(x))\n"
    "        elif r < 0.08: x.append(rnd.choice(NAMES))\n"
    "        elif r < 0.10 and x: x.pop(rnd.randrange(len(x)))\n"
    "        return x\n"
    "    if isinstance(x, str) and rnd.random() < 0.05:\n"
    "        return rnd.choice(NAMES)\n"
    "    return x\n"
    "for i in range(int(sys.argv[1])):\n"
    "    s = json.dumps(mutate(rnd.choice(base))).encode() + b'\\0'\n"
    "    sys.stdout.buffer.write(s)\n";


static const char  ts_recursive[] =
    "{\"type\":\"record\",\"name\":\"N\",\"fields\":"
    "[{\"name\":\"next\",\"type\":[\"null\",\"N\"]}]}";


typedef struct {
    avs_schema_cache_t  *cache;
    const char         **texts;
    uint64_t            *fps;
    int                  rounds;
    int                  seed;
    int                  bad;
} ts_thread_t;


static double
ts_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static avs_rc_t
ts_parse(const char *json, avs_schema_t **s, avs_err_t *err)
{
    err->msg[0] = '\0';

    return avs_schema_parse((const uint8_t *) json, strlen(json), NULL, s,
                            err);
}


static avs_rc_t
ts_get(avs_schema_cache_t *c, const char *json, const avs_limits_t *lim,
    avs_schema_t **s, avs_err_t *err)
{
    err->msg[0] = '\0';

    return avs_schema_cache_get(c, (const uint8_t *) json, strlen(json), lim,
                                1, s, err);
}


/*
 * Every schema of a version parses, compiles, and has python3-avro's
 * canonical form and the fingerprint of that form.
 */
static void
test_tables(const char *file)
{
    int            found;
    char           path[256], cmd[512], *line, *tab1, *tab2;
    FILE          *f;
    size_t         cap;
    ssize_t        len;
    json_t        *doc, *item;
    size_t         i;
    avs_rc_t       rc;
    avs_err_t      err;
    const char    *name, *text;
    avs_schema_t  *s;
    json_error_t   jerr;

    snprintf(path, sizeof(path), TS_TESTDATA "%s", file);

    doc = json_load_file(path, 0, &jerr);
    if (doc == NULL) {
        ok(0, "%s loads", file);
        return;
    }

    snprintf(cmd, sizeof(cmd), "%s -c \"$AVS_CANON_PY\" %s", TS_PYTHON,
             path);
    setenv("AVS_CANON_PY", ts_canon_py, 1);

    f = popen(cmd, "r");
    line = NULL;
    cap = 0;

    json_array_foreach(json_object_get(doc, "schemas"), i, item) {
        name = json_string_value(json_object_get(item, "table_name"));
        text = json_string_value(json_object_get(item, "schema"));

        rc = ts_parse(text, &s, &err);

        if (rc != AVS_OK) {
            ok(0, "%s %s parses: %s", file, name, err.msg);
            continue;
        }

        found = 0;

        if (f != NULL && (len = getline(&line, &cap, f)) > 0) {
            line[len - 1] = '\0';
            tab1 = strchr(line, '\t');
            tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;

            if (tab2 != NULL) {
                *tab1++ = '\0';
                *tab2++ = '\0';

                found = strcmp(line, name) == 0
                        && strcmp(tab1, s->canonical) == 0
                        && strcmp(tab2, s->fp_hex) == 0;

                if (!found) {
                    printf("# python: %s %s\n# here:   %s %s\n", tab2, tab1,
                           s->fp_hex, s->canonical);
                }
            }
        }

        ok(found && s->walker != NULL && s->avro != NULL
           && strlen(s->fp_hex) == 16
           && s->fingerprint == avs_crc64_avro(s->canonical,
                                               s->canonical_len)
           && s->json_len == strlen(text)
           && strcmp(s->json, text) == 0,
           "%s %s: parsed, fingerprint %s as python3-avro's", file, name,
           s->fp_hex);

        avs_schema_free(s);
    }

    free(line);

    if (f != NULL) {
        pclose(f);
    }

    json_decref(doc);
}


/* Texts that differ only in what does not matter share a fingerprint. */
static void
test_equivalent(void)
{
    avs_err_t      err;
    avs_schema_t  *a, *b;

    static const char  a_text[] =
        "{\"type\":\"record\",\"name\":\"R\",\"namespace\":\"x\","
        "\"fields\":[{\"name\":\"a\",\"type\":\"int\"}]}";
    static const char  b_text[] =
        "{ \"fields\" : [ { \"type\" : {\"type\": \"int\"}, \"name\" : \"a\","
        " \"doc\": \"an int\" } ],\n \"name\" : \"x.R\", \"type\" : "
        "\"record\" }";

    if (ts_parse(a_text, &a, &err) != AVS_OK) {
        ok(0, "a parses: %s", err.msg);
        return;
    }

    if (ts_parse(b_text, &b, &err) != AVS_OK) {
        ok(0, "b parses: %s", err.msg);
        avs_schema_free(a);
        return;
    }

    is_str(a->canonical,
           "{\"name\":\"x.R\",\"type\":\"record\",\"fields\":"
           "[{\"name\":\"a\",\"type\":\"int\"}]}", "canonical form");
    is_str(a->fp_hex, b->fp_hex, "equivalent texts, same fingerprint");

    avs_schema_free(a);
    avs_schema_free(b);
}


/* Refused before any parser: too large, too deep. */
static void
test_limits(void)
{
    char          *p;
    size_t         n, i;
    double         t0;
    avs_rc_t       rc;
    avs_err_t      err;
    avs_limits_t   lim;
    avs_schema_t  *s;

    avs_limits_default(&lim);
    n = 10000;

    p = malloc(2 * n + 64);
    if (p == NULL) {
        ok(0, "memory");
        return;
    }

    memset(p, '[', n);
    memset(p + n, ']', n);

    t0 = ts_now();
    rc = avs_schema_parse((uint8_t *) p, 2 * n, &lim, &s, &err);
    ok(rc == AVS_ETOOLARGE && s == NULL
       && strcmp(err.msg, "schema: nesting deeper than 136") == 0,
       "JSON 10,000 deep: %s", err.msg);
    ok(ts_now() - t0 < 0.05, "refused at once");

    for (i = 0; i < 2000; i++) {
        memcpy(p + 5 * i, "{\"a\":", 5);
    }

    rc = avs_schema_parse((uint8_t *) p, 5 * 2000, &lim, &s, &err);
    ok(rc == AVS_ETOOLARGE && strstr(err.msg, "nesting deeper") != NULL,
       "objects nested 2,000 deep: %s", err.msg);

    /* 136 levels pass the scan (and fail later); 137 do not */

    memset(p, '[', 136);
    memset(p + 136, ']', 136);
    rc = avs_schema_parse((uint8_t *) p, 272, &lim, &s, &err);
    ok(rc == AVS_EMALFORMED, "136 levels pass the scan: %s", err.msg);

    memset(p, '[', 137);
    memset(p + 137, ']', 137);
    rc = avs_schema_parse((uint8_t *) p, 274, &lim, &s, &err);
    is_int(rc, AVS_ETOOLARGE, "137 levels: %s", err.msg);

    lim.max_depth = 2;
    memset(p, '[', 17);
    memset(p + 17, ']', 17);
    rc = avs_schema_parse((uint8_t *) p, 34, &lim, &s, &err);
    ok(rc == AVS_ETOOLARGE
       && strcmp(err.msg, "schema: nesting deeper than 16") == 0,
       "bound follows max_depth: %s", err.msg);

    free(p);

    avs_limits_default(&lim);
    lim.max_schema = 20;
    rc = avs_schema_parse((uint8_t *) "{\"type\":\"string\"}   ", 21, &lim,
                          &s, &err);
    ok(rc == AVS_ETOOLARGE
       && strcmp(err.msg, "schema: 21 bytes, more than the limit of 20") == 0,
       "21 bytes of 20: %s", err.msg);

    rc = avs_schema_parse((uint8_t *) "{\"type\":\"string\"}   ", 20, &lim,
                          &s, &err);
    is_int(rc, AVS_OK, "20 bytes of 20");
    avs_schema_free(s);
}


/* Brackets and quotes inside strings do not count as nesting. */
static void
test_brackets_in_strings(void)
{
    char          *p;
    size_t         len;
    avs_rc_t       rc;
    avs_err_t      err;
    avs_schema_t  *s;

    p = malloc(20100);
    if (p == NULL) {
        ok(0, "memory");
        return;
    }

    strcpy(p, "{\"type\":\"record\",\"name\":\"R\",\"doc\":\"\\\"\\\\");
    len = strlen(p);
    memset(p + len, '[', 10000);
    memset(p + len + 10000, '{', 10000);
    strcpy(p + len + 20000, "\\\"\",\"fields\":[]}");

    rc = ts_parse(p, &s, &err);
    is_int(rc, AVS_OK, "20,000 brackets inside a string%s%s",
           err.msg[0] ? ": " : "", err.msg);

    if (rc == AVS_OK) {
        avs_schema_free(s);
    }

    free(p);
}


/* What avro-c refuses comes back as a client error with its reason. */
static void
test_invalid(void)
{
    size_t         i;
    avs_rc_t       rc;
    avs_err_t      err;
    avs_schema_t  *s;

    static const struct {
        const char  *json;
        const char  *msg;
    } cases[] = {
        { "", "JSON" },
        { "not json", "JSON" },
        { "{\"type\":\"record\"", "JSON" },
        { "{\"type\":\"nope\"}", "nope" },
        { "{\"type\":\"record\",\"name\":\"R\",\"fields\":"
          "[{\"name\":\"a\",\"type\":\"int\"},{\"name\":\"b\",\"type\":"
          "\"nope\"}]}", "nope" },
        { "{\"type\":\"record\",\"name\":\"R\",\"fields\":"
          "[{\"name\":\"a\",\"type\":[\"int\",{\"type\":\"array\"}]}]}",
          "items" },
        { "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[]}", "symbol" },
        { "{\"type\":\"record\",\"name\":\"9R\",\"fields\":[]}", "9R" },
        { "{\"type\":\"fixed\",\"name\":\"F\",\"size\":-1}", "size" },
        { "[]", "branch" },

        /* avro-c leaks the second definition of a name */

        { "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":"
          "\"a\",\"type\":{\"type\":\"record\",\"name\":\"R\","
          "\"fields\":[]}}]}", "R" },
        { "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":"
          "\"a\",\"type\":{\"type\":\"fixed\",\"name\":\"F\",\"size\":2}},"
          "{\"name\":\"b\",\"type\":{\"type\":\"fixed\",\"name\":\"F\","
          "\"size\":3}}]}", "F" },
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rc = ts_parse(cases[i].json, &s, &err);

        ok(rc == AVS_EMALFORMED && s == NULL
           && strncmp(err.msg, "schema: ", 8) == 0
           && strcasestr(err.msg, cases[i].msg) != NULL,
           "refused: %s: %s", cases[i].json, err.msg);
    }
}


/*
 * Mutated table schemas (names redefined, types swapped, keys dropped):
 * each parses or is refused with a message; valgrind checks for leaks.
 */
static void
test_mutations(int count)
{
    int            parsed, refused, bad;
    char           cmd[256];
    FILE          *f;
    char          *text;
    size_t         cap;
    ssize_t        len;
    avs_rc_t       rc;
    avs_err_t      err;
    avs_schema_t  *s;

    snprintf(cmd, sizeof(cmd), "%s -c \"$AVS_MUTATE_PY\" %d",
             TS_PYTHON, count);
    setenv("AVS_MUTATE_PY", ts_mutate_py, 1);

    f = popen(cmd, "r");
    if (f == NULL) {
        ok(0, "mutation generator runs");
        return;
    }

    text = NULL;
    cap = 0;
    parsed = 0;
    refused = 0;
    bad = 0;

    while ((len = getdelim(&text, &cap, '\0', f)) > 0) {
        rc = avs_schema_parse((uint8_t *) text, strlen(text), NULL, &s,
                              &err);

        if (rc == AVS_OK) {
            parsed++;
            avs_schema_free(s);

        } else if ((rc == AVS_EMALFORMED || rc == AVS_ETOOLARGE)
                   && strncmp(err.msg, "schema: ", 8) == 0)
        {
            refused++;

        } else {
            printf("# rc %d %s: %s\n", (int) rc, err.msg, text);
            bad++;
        }
    }

    free(text);
    pclose(f);

    ok(bad == 0 && parsed + refused == count && parsed > 0 && refused > 0,
       "%d mutated schemas: %d parse, %d refused", count, parsed, refused);
}


/* A recursive schema parses and its records walk. */
static void
test_recursive(void)
{
    uint64_t       items;
    avs_rc_t       rc;
    avs_err_t      err;
    avs_schema_t  *s;

    rc = ts_parse(ts_recursive, &s, &err);
    is_int(rc, AVS_OK, "recursive schema parses");

    if (rc != AVS_OK) {
        return;
    }

    is_str(s->canonical, "{\"name\":\"N\",\"type\":\"record\",\"fields\":"
           "[{\"name\":\"next\",\"type\":[\"null\",\"N\"]}]}",
           "recursive canonical form");

    items = 100;
    rc = avs_walker_check(s->walker, (const uint8_t *) "\x02\x02\x00", 3, 1,
                          NULL, &items, &err);
    is_int(rc, AVS_OK, "three deep walks");

    avs_schema_free(s);
}


/* A record type nested four deep: twelve levels of JSON. */
static void
ts_deep_text(char *buf, size_t size, const char *name)
{
    snprintf(buf, size,
             "{\"type\":\"record\",\"name\":\"%s\",\"fields\":[{\"name\":\"a\","
             "\"type\":{\"type\":\"record\",\"name\":\"B\",\"fields\":[{"
             "\"name\":\"b\",\"type\":{\"type\":\"record\",\"name\":\"C\","
             "\"fields\":[{\"name\":\"c\",\"type\":{\"type\":\"record\","
             "\"name\":\"D\",\"fields\":[{\"name\":\"d\",\"type\":\"int\"}]"
             "}}]}}]}}]}", name);
}


/*
 * Sharing, reference counts and eviction.  A cache hit does not parse, so
 * limits strict enough to refuse a text tell a hit (accepted) from a
 * parse (refused).
 */
static void
test_cache(void)
{
    char                 t[4][512];
    avs_rc_t             rc;
    avs_err_t            err;
    avs_limits_t         lax, strict;
    avs_schema_t        *s1, *s2, *s3, *s4;
    avs_schema_cache_t  *c;

    avs_limits_default(&lax);
    avs_limits_default(&strict);
    strict.max_depth = 0;

    ts_deep_text(t[0], sizeof(t[0]), "A");
    ts_deep_text(t[1], sizeof(t[1]), "E");
    ts_deep_text(t[2], sizeof(t[2]), "F");
    ts_deep_text(t[3], sizeof(t[3]), "G");

    c = avs_schema_cache_create(2);
    ok(c != NULL, "cache of 2 created");

    if (c == NULL) {
        return;
    }

    rc = ts_get(c, t[0], &strict, &s1, &err);
    ok(rc == AVS_ETOOLARGE && s1 == NULL, "strict limits refuse a parse: %s",
       err.msg);

    rc = avs_schema_cache_get(c, (const uint8_t *) t[0], strlen(t[0]), &lax,
                              0, &s1, &err);
    ok(rc == AVS_DONE && s1 == NULL, "a miss without parsing: AVS_DONE");

    rc = ts_get(c, t[0], &lax, &s1, &err);
    rc |= ts_get(c, t[0], &lax, &s2, &err);
    ok(rc == AVS_OK && s1 == s2 && s1->refs == 2,
       "same text twice: same schema, 2 references");

    avs_schema_release(c, s2);
    is_int(s1->refs, 1, "released once: 1 reference");
    avs_schema_release(c, s1);

    rc = ts_get(c, t[0], &strict, &s1, &err);
    ok(rc == AVS_OK && s1->refs == 1, "released: still cached (a hit)");
    avs_schema_release(c, s1);

    rc = avs_schema_cache_get(c, (const uint8_t *) t[0], strlen(t[0]), &lax,
                              0, &s1, &err);
    ok(rc == AVS_OK && s1 != NULL, "a hit without parsing");
    avs_schema_release(c, s1);

    /* cache: A; then E and F: A is the least recent, evicted */

    rc = ts_get(c, t[1], &lax, &s1, &err);
    avs_schema_release(c, s1);
    rc |= ts_get(c, t[2], &lax, &s1, &err);
    avs_schema_release(c, s1);
    is_int(rc, AVS_OK, "two more texts");

    rc = ts_get(c, t[0], &strict, &s1, &err);
    is_int(rc, AVS_ETOOLARGE, "least recently used evicted");
    rc = ts_get(c, t[1], &strict, &s1, &err);
    is_int(rc, AVS_OK, "the others kept");
    avs_schema_release(c, s1);
    rc = ts_get(c, t[2], &strict, &s1, &err);
    is_int(rc, AVS_OK, "the others kept");
    avs_schema_release(c, s1);

    /* E used again, so G evicts F */

    rc = ts_get(c, t[1], &lax, &s1, &err);
    avs_schema_release(c, s1);
    rc |= ts_get(c, t[3], &lax, &s1, &err);
    avs_schema_release(c, s1);
    rc |= ts_get(c, t[1], &strict, &s1, &err);
    avs_schema_release(c, s1);
    ok(rc == AVS_OK, "a hit refreshes an entry");
    rc = ts_get(c, t[2], &strict, &s1, &err);
    is_int(rc, AVS_ETOOLARGE, "so the other one goes");

    /* both entries held: a third text is served but not kept */

    rc = ts_get(c, t[1], &lax, &s1, &err);
    rc |= ts_get(c, t[3], &lax, &s2, &err);
    rc |= ts_get(c, t[0], &lax, &s3, &err);
    ok(rc == AVS_OK && s3 != s1 && s3 != s2, "held entries are not evicted");

    rc = ts_get(c, t[0], &strict, &s4, &err);
    is_int(rc, AVS_ETOOLARGE, "the third was not cached");

    rc = ts_get(c, t[1], &strict, &s4, &err);
    ok(rc == AVS_OK && s4 == s1 && s1->refs == 2, "held entry still there");
    avs_schema_release(c, s4);

    avs_schema_release(c, s3);      /* freed here, valgrind checks */
    avs_schema_release(c, s2);
    avs_schema_release(c, s1);
    is_int(s1->refs, 0, "all released");

    avs_schema_release(c, NULL);
    avs_schema_cache_destroy(c);

    c = avs_schema_cache_create(0);
    rc = ts_get(c, t[1], &lax, &s1, &err);
    rc |= ts_get(c, t[1], &lax, &s2, &err);
    ok(rc == AVS_OK && s1 != s2, "a cache of 0 keeps nothing");
    avs_schema_release(c, s1);
    avs_schema_release(c, s2);
    avs_schema_cache_destroy(c);

    rc = ts_parse(ts_recursive, &s1, &err);
    is_int(rc, AVS_OK, "parse outside a cache");
    avs_schema_release(NULL, s1);
}


static void *
ts_hammer(void *arg)
{
    int            i, k;
    unsigned       seed;
    uint64_t       items;
    avs_rc_t       rc;
    avs_err_t      err;
    ts_thread_t   *t;
    avs_schema_t  *s, *held;

    t = arg;
    seed = (unsigned) t->seed;
    held = NULL;

    for (i = 0; i < t->rounds; i++) {
        k = rand_r(&seed) % TS_TEXTS;

        rc = ts_get(t->cache, t->texts[k], NULL, &s, &err);

        if (rc != AVS_OK || s->fingerprint != t->fps[k]
            || strcmp(s->json, t->texts[k]) != 0)
        {
            t->bad++;
            continue;
        }

        items = 1000;
        rc = avs_walker_check(s->walker, (const uint8_t *) "", 0, 0, NULL,
                              &items, &err);
        if (rc != AVS_OK) {
            t->bad++;
        }

        /* sometimes keep one across rounds, as a slow request would */

        if (held == NULL && rand_r(&seed) % 8 == 0) {
            held = s;
            continue;
        }

        avs_schema_release(t->cache, s);

        if (held != NULL && rand_r(&seed) % 4 == 0) {
            avs_schema_release(t->cache, held);
            held = NULL;
        }
    }

    avs_schema_release(t->cache, held);

    return NULL;
}


/* Threads getting and releasing a few texts through a small cache. */
static void
test_threads(void)
{
    int                  i, bad, rounds;
    size_t               k;
    json_t              *doc, *item;
    pthread_t            tid[TS_THREADS];
    avs_err_t            err;
    ts_thread_t          args[TS_THREADS];
    json_error_t         jerr;
    avs_schema_t        *s;
    const char          *texts[TS_TEXTS];
    uint64_t             fps[TS_TEXTS];
    avs_schema_cache_t  *c;

    doc = json_load_file(TS_TESTDATA "schema_v0_5_1.json", 0, &jerr);
    if (doc == NULL) {
        ok(0, "testdata loads");
        return;
    }

    json_array_foreach(json_object_get(doc, "schemas"), k, item) {
        if (k == TS_TEXTS) {
            break;
        }

        texts[k] = json_string_value(json_object_get(item, "schema"));

        if (ts_parse(texts[k], &s, &err) != AVS_OK) {
            ok(0, "text %zu parses", k);
            json_decref(doc);
            return;
        }

        fps[k] = s->fingerprint;
        avs_schema_free(s);
    }

    rounds = getenv("AVS_THREAD_ROUNDS") ? atoi(getenv("AVS_THREAD_ROUNDS"))
                                         : 3000;

    c = avs_schema_cache_create(4);

    for (i = 0; i < TS_THREADS; i++) {
        args[i].cache = c;
        args[i].texts = texts;
        args[i].fps = fps;
        args[i].rounds = rounds;
        args[i].seed = i + 1;
        args[i].bad = 0;

        if (pthread_create(&tid[i], NULL, ts_hammer, &args[i]) != 0) {
            ok(0, "thread starts");
            args[i].rounds = -1;
        }
    }

    bad = 0;

    for (i = 0; i < TS_THREADS; i++) {
        if (args[i].rounds >= 0) {
            pthread_join(tid[i], NULL);
        }

        bad += args[i].bad;
    }

    is_int(bad, 0, "%d threads, %d gets each over %d texts, cache of 4",
           TS_THREADS, rounds, TS_TEXTS);

    avs_schema_cache_destroy(c);
    json_decref(doc);
}


/* Cost of a hit and of a parse, printed as a TAP comment, not a test. */
static void
test_speed(void)
{
    int                  i, n;
    double               t0, hit, parse;
    json_t              *doc, *item;
    size_t               k;
    avs_err_t            err;
    const char          *text;
    json_error_t         jerr;
    avs_schema_t        *s;
    avs_schema_cache_t  *c;

    doc = json_load_file(TS_TESTDATA "schema_v0_5_1.json", 0, &jerr);
    if (doc == NULL) {
        ok(0, "testdata loads");
        return;
    }

    text = NULL;

    json_array_foreach(json_object_get(doc, "schemas"), k, item) {
        if (strcmp(json_string_value(json_object_get(item, "table_name")),
                   "battle") == 0)
        {
            text = json_string_value(json_object_get(item, "schema"));
        }
    }

    c = avs_schema_cache_create(16);
    n = 20000;

    t0 = ts_now();

    for (i = 0; i < n; i++) {
        ts_get(c, text, NULL, &s, &err);
        avs_schema_release(c, s);
    }

    hit = (ts_now() - t0) / n;

    t0 = ts_now();

    for (i = 0; i < 200; i++) {
        ts_parse(text, &s, &err);
        avs_schema_free(s);
    }

    parse = (ts_now() - t0) / 200;

    printf("# battle schema (%zu bytes): hit %.2f us, parse %.0f us\n",
           strlen(text), hit * 1e6, parse * 1e6);

    avs_schema_cache_destroy(c);
    json_decref(doc);
}


int
main(void)
{
    test_tables("schema_v0_4.json");
    test_tables("schema_v0_5.json");
    test_tables("schema_v0_5_1.json");

    test_equivalent();
    test_limits();
    test_brackets_in_strings();
    test_invalid();
    test_mutations(getenv("AVS_MUTATIONS") ? atoi(getenv("AVS_MUTATIONS"))
                                           : 3000);
    test_recursive();
    test_cache();
    test_threads();

    if (getenv("AVS_NO_SPEED") == NULL) {
        test_speed();
    }

    return done_testing();
}
