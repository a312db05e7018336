/*
 * Unit tests of the bounded record walk (src/avs_walk.c): every schema of
 * the real table definitions compiles, records written by an independent
 * implementation (python3-avro) pass, and hostile encodings fail with the
 * right code and a message that says where, quickly and without crashing.
 */

#include <avro.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "avs_walk.h"
#include "tap.h"


#define TW_TESTDATA  "../shared/testdata/fusou/"
#define TW_PYTHON    "/usr/bin/python3"
#define TW_ITEMS     1000000

#define TW_D(s)      (const uint8_t *) (s), (sizeof(s) - 1)


/* Writes n records (or about 4 KiB when n is 0) of one table to stdout,
 * preceded by a line with the record count. */
static const char  tw_gen_py[] =
    "import sys, json, random, uuid, io\n"
    "import avro.schema, avro.io\n"
    "# python3-avro 1.11.1 tries every union branch and its uuid check\n"
    "# raises on None instead of saying no\n"
    "uv = avro.schema.UUIDSchema.validate\n"
    "avro.schema.UUIDSchema.validate = \\\n"
    "    lambda self, d: uv(self, d) if isinstance(d, str) else None\n"
    "path, table = sys.argv[1], sys.argv[2]\n"
    "count, seed = int(sys.argv[3]), int(sys.argv[4])\n"
    "doc = json.load(open(path))\n"
    "text = [t['schema'] for t in doc['schemas']\n"
    "        if t['table_name'] == table][0]\n"
    "schema = avro.schema.parse(text)\n"
    "rnd = random.Random(seed)\n"
    "INTS = [0, 1, -1, 63, -64, 64, 300, -300, 2**31 - 1, -2**31]\n"
    "def gen(s):\n"
    "    t = s.type\n"
    "    if t == 'null': return None\n"
    "    if t == 'boolean': return rnd.random() < 0.5\n"
    "    if t == 'int': return rnd.choice(INTS + [rnd.randint(0, 200)] * 10)\n"
    "    if t == 'long':\n"
    "        return rnd.choice([0, -1, 2**63 - 1, -2**63,\n"
    "                           rnd.randint(0, 2**41)])\n"
    "    if t in ('float', 'double'): return rnd.random() * 1000\n"
    "    if t == 'string':\n"
    "        if s.get_prop('logicalType') == 'uuid':\n"
    "            return str(uuid.UUID(int=rnd.getrandbits(128)))\n"
    "        return rnd.choice(['', 'abc', 'caf\\u00e9 \\u65e5 \\U0001f680',\n"
    "                           'x' * rnd.randint(0, 100)])\n"
    "    if t == 'bytes':\n"
    "        return bytes(rnd.getrandbits(8) for _ in range(9))\n"
    "    if t == 'fixed':\n"
    "        return bytes(rnd.getrandbits(8) for _ in range(s.size))\n"
    "    if t == 'enum': return rnd.choice(s.symbols)\n"
    "    if t == 'array':\n"
    "        return [gen(s.items) for _ in range(rnd.randint(0, 7))]\n"
    "    if t == 'map':\n"
    "        n = rnd.randint(0, 4)\n"
    "        return {'k%d' % i: gen(s.values) for i in range(n)}\n"
    "    if t == 'union': return gen(rnd.choice(s.schemas))\n"
    "    if t == 'record': return {f.name: gen(f.type) for f in s.fields}\n"
    "    raise ValueError(t)\n"
    "buf = io.BytesIO()\n"
    "w = avro.io.DatumWriter(schema)\n"
    "enc = avro.io.BinaryEncoder(buf)\n"
    "n = 0\n"
    "while (count > 0 and n < count) or (count == 0 and buf.tell() < 4096):\n"
    "    w.write(gen(schema), enc)\n"
    "    n += 1\n"
    "sys.stdout.buffer.write(b'%d\\n' % n + buf.getvalue())\n";

static char  tw_script[64];


typedef struct {
    avro_schema_t   schema;
    avs_walker_t   *w;
} tw_schema_t;


typedef struct {
    const char     *name;
    const char     *schema;
    const uint8_t  *data;
    size_t          len;
    int64_t         count;
    avs_rc_t        rc;
    const char     *msg;
} tw_case_t;


static const char  tw_recursive[] =
    "{\"type\":\"record\",\"name\":\"N\",\"fields\":"
    "[{\"name\":\"next\",\"type\":[\"null\",\"N\"]}]}";


static double
tw_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


/* Parses a schema with avro-c and compiles it; 0 on failure. */
static int
tw_open(tw_schema_t *t, const char *json, avs_err_t *err)
{
    t->schema = NULL;
    t->w = NULL;

    if (avro_schema_from_json_length(json, strlen(json), &t->schema) != 0) {
        avs_err_set(err, AVS_EMALFORMED, "avro-c: %s", avro_strerror());
        return 0;
    }

    if (avs_walker_compile(t->schema, &t->w, err) != AVS_OK) {
        avro_schema_decref(t->schema);
        t->schema = NULL;
        return 0;
    }

    return 1;
}


static void
tw_close(tw_schema_t *t)
{
    avs_walker_free(t->w);

    if (t->schema != NULL) {
        avro_schema_decref(t->schema);
    }
}


static avs_rc_t
tw_check(tw_schema_t *t, const uint8_t *p, size_t n, int64_t count,
    unsigned max_depth, avs_err_t *err)
{
    uint64_t      items;
    avs_limits_t  lim;

    avs_limits_default(&lim);

    if (max_depth) {
        lim.max_depth = max_depth;
    }

    items = TW_ITEMS;
    err->rc = AVS_OK;
    err->msg[0] = '\0';

    return avs_walker_check(t->w, p, n, count, &lim, &items, err);
}


/*
 * Runs the python3-avro generator for a table; returns the encoded
 * records in out and their number, or -1.
 */
static int64_t
tw_generate(const char *file, const char *table, int count, int seed,
    avs_buf_t *out)
{
    int      n;
    char     cmd[512], line[32];
    FILE    *f;
    size_t   got;
    uint8_t  chunk[8192];

    snprintf(cmd, sizeof(cmd), "%s %s %s%s %s %d %d", TW_PYTHON, tw_script,
             TW_TESTDATA, file, table, count, seed);

    f = popen(cmd, "r");
    if (f == NULL) {
        return -1;
    }

    if (fgets(line, sizeof(line), f) == NULL) {
        pclose(f);
        return -1;
    }

    n = atoi(line);
    out->len = 0;

    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (avs_buf_append(out, chunk, got) != AVS_OK) {
            pclose(f);
            return -1;
        }
    }

    if (pclose(f) != 0) {
        return -1;
    }

    return n;
}


static int
tw_write_script(void)
{
    int   fd;
    FILE *f;

    strcpy(tw_script, "/tmp/avs-walk-gen-XXXXXX");

    fd = mkstemp(tw_script);
    if (fd == -1) {
        return 0;
    }

    f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        return 0;
    }

    fputs(tw_gen_py, f);

    return fclose(f) == 0;
}


/* Every schema of one version of the table definitions compiles. */
static void
test_compile_all(const char *file)
{
    char          path[256];
    size_t        i, bad;
    json_t       *doc, *list, *item;
    avs_err_t     err;
    tw_schema_t   t;
    json_error_t  jerr;

    snprintf(path, sizeof(path), TW_TESTDATA "%s", file);

    doc = json_load_file(path, 0, &jerr);
    ok(doc != NULL, "%s loads", file);

    if (doc == NULL) {
        return;
    }

    list = json_object_get(doc, "schemas");
    bad = 0;

    json_array_foreach(list, i, item) {
        if (!tw_open(&t, json_string_value(json_object_get(item, "schema")),
                     &err))
        {
            printf("# %s: %s\n",
                   json_string_value(json_object_get(item, "table_name")),
                   err.msg);
            bad++;
            continue;
        }

        tw_close(&t);
    }

    ok(json_array_size(list) > 30 && bad == 0,
       "%s: all %zu table schemas compile", file, json_array_size(list));

    json_decref(doc);
}


/*
 * Records of every table written by python3-avro pass; the same bytes
 * with one record too few or too many, or cut short anywhere, fail.
 */
static void
test_generated(const char *file)
{
    char          path[256];
    size_t        i, cut, bad;
    int64_t       n;
    json_t       *doc, *list, *item;
    avs_rc_t      rc;
    avs_buf_t     buf;
    avs_err_t     err;
    const char   *table, *text;
    tw_schema_t   t;
    json_error_t  jerr;

    snprintf(path, sizeof(path), TW_TESTDATA "%s", file);

    doc = json_load_file(path, 0, &jerr);
    if (doc == NULL) {
        ok(0, "%s loads", file);
        return;
    }

    memset(&buf, 0, sizeof(avs_buf_t));
    list = json_object_get(doc, "schemas");

    json_array_foreach(list, i, item) {
        table = json_string_value(json_object_get(item, "table_name"));
        text = json_string_value(json_object_get(item, "schema"));

        if (!tw_open(&t, text, &err)) {
            ok(0, "%s compiles: %s", table, err.msg);
            continue;
        }

        n = tw_generate(file, table, 25, (int) i + 1, &buf);

        if (n != 25) {
            ok(0, "%s: python3-avro wrote records", table);
            tw_close(&t);
            continue;
        }

        rc = tw_check(&t, buf.data, buf.len, n, 0, &err);
        is_int(rc, AVS_OK, "%s: %lld records of %zu bytes pass%s%s", table,
               (long long) n, buf.len, err.msg[0] ? ": " : "", err.msg);

        rc = tw_check(&t, buf.data, buf.len, n - 1, 0, &err);
        ok(rc == AVS_EMALFORMED && strstr(err.msg, "trailing bytes after 24"),
           "%s: one record too few: %s", table, err.msg);

        rc = tw_check(&t, buf.data, buf.len, n + 1, 0, &err);
        is_str(err.msg, "record 26: truncated", "%s: one record too many",
               table);

        bad = 0;

        for (cut = 0; cut < buf.len; cut++) {
            rc = tw_check(&t, buf.data, cut, n, 0, &err);

            if (rc != AVS_EMALFORMED || strncmp(err.msg, "record ", 7) != 0) {
                printf("# cut at %zu: rc %d %s\n", cut, (int) rc, err.msg);
                bad++;
            }
        }

        ok(bad == 0, "%s: all %zu truncations rejected", table, buf.len);

        tw_close(&t);
    }

    avs_buf_free(&buf);
    json_decref(doc);
}


static const tw_case_t  tw_cases[] = {

    { "null takes no bytes", "\"null\"", TW_D(""), 3, AVS_OK, NULL },
    { "nulls then a byte", "\"null\"", TW_D("\x00"), 3, AVS_EMALFORMED,
      "1 trailing bytes after 3 records" },
    { "no records, no bytes", "\"int\"", TW_D(""), 0, AVS_OK, NULL },
    { "negative record count", "\"int\"", TW_D(""), -1, AVS_EMALFORMED,
      "record count -1" },

    { "booleans", "\"boolean\"", TW_D("\x00\x01"), 2, AVS_OK, NULL },
    { "boolean 2", "\"boolean\"", TW_D("\x01\x02"), 2, AVS_EMALFORMED,
      "record 2: boolean byte 2" },
    { "boolean missing", "\"boolean\"", TW_D(""), 1, AVS_EMALFORMED,
      "record 1: truncated" },

    { "int max", "\"int\"", TW_D("\xfe\xff\xff\xff\x0f"), 1, AVS_OK, NULL },
    { "int min", "\"int\"", TW_D("\xff\xff\xff\xff\x0f"), 1, AVS_OK, NULL },
    { "int non-minimal zero", "\"int\"", TW_D("\x80\x00"), 1, AVS_OK, NULL },
    { "int 2^31", "\"int\"", TW_D("\x80\x80\x80\x80\x10"), 1,
      AVS_EMALFORMED, "record 1: int out of range" },
    { "int 6-byte varint", "\"int\"", TW_D("\x80\x80\x80\x80\x80\x01"), 1,
      AVS_EMALFORMED, "record 1: int out of range" },
    { "int cut in varint", "\"int\"", TW_D("\x02\x80\x80"), 2,
      AVS_EMALFORMED, "record 2: truncated" },

    { "long min", "\"long\"",
      TW_D("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"), 1, AVS_OK, NULL },
    { "long max", "\"long\"",
      TW_D("\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01"), 1, AVS_OK, NULL },
    { "long 65 bits", "\"long\"",
      TW_D("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02"), 1, AVS_EMALFORMED,
      "record 1: long out of range" },
    { "long 11-byte varint", "\"long\"",
      TW_D("\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01"), 1,
      AVS_EMALFORMED, "record 1: long out of range" },

    { "float", "\"float\"", TW_D("\x00\x00\x80\x3f"), 1, AVS_OK, NULL },
    { "float short", "\"float\"", TW_D("\x00\x00\x80"), 1, AVS_EMALFORMED,
      "record 1: truncated" },
    { "double", "\"double\"", TW_D("\0\0\0\0\0\0\xf0\x3f"), 1, AVS_OK,
      NULL },
    { "double short", "\"double\"", TW_D("\0\0\0\0\0\0\xf0"), 1,
      AVS_EMALFORMED, "record 1: truncated" },

    { "string", "\"string\"", TW_D("\x06" "abc\x00"), 2, AVS_OK, NULL },
    { "string length -3", "\"string\"", TW_D("\x02" "a\x05"), 2,
      AVS_EMALFORMED, "record 2: string length -3" },
    { "string length 2^62", "\"string\"",
      TW_D("\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01"), 1, AVS_EMALFORMED,
      "record 1: string length 4611686018427387904 exceeds the 0 bytes"
      " left" },
    { "string length past the end", "\"string\"", TW_D("\x08" "abc"), 1,
      AVS_EMALFORMED, "record 1: string length 4 exceeds the 3 bytes left" },
    { "bytes length -1", "\"bytes\"", TW_D("\x01"), 1, AVS_EMALFORMED,
      "record 1: bytes length -1" },
    { "bytes need not be UTF-8", "\"bytes\"", TW_D("\x04\xff\xc0"), 1,
      AVS_OK, NULL },

    { "UTF-8 2, 3, 4 bytes", "\"string\"",
      TW_D("\x04\xc2\x80\x06\xe0\xa0\x80\x08\xf0\x9f\x9a\x80"), 3, AVS_OK,
      NULL },
    { "UTF-8 edges", "\"string\"",
      TW_D("\x06\xed\x9f\xbf\x06\xee\x80\x80\x06\xef\xbf\xbf"
           "\x08\xf4\x8f\xbf\xbf\x02\x00"), 5, AVS_OK, NULL },
    { "UTF-8 overlong 2", "\"string\"", TW_D("\x04\xc0\x80"), 1,
      AVS_EMALFORMED, "record 1: string is not valid UTF-8" },
    { "UTF-8 overlong 2 (c1)", "\"string\"", TW_D("\x04\xc1\xbf"), 1,
      AVS_EMALFORMED, "record 1: string is not valid UTF-8" },
    { "UTF-8 overlong 3", "\"string\"", TW_D("\x06\xe0\x9f\xbf"), 1,
      AVS_EMALFORMED, "record 1: string is not valid UTF-8" },
    { "UTF-8 overlong 4", "\"string\"", TW_D("\x08\xf0\x8f\xbf\xbf"), 1,
      AVS_EMALFORMED, "record 1: string is not valid UTF-8" },
    { "UTF-8 surrogate", "\"string\"", TW_D("\x06\xed\xa0\x80"), 1,
      AVS_EMALFORMED, "record 1: string is not valid UTF-8" },
    { "UTF-8 above U+10FFFF", "\"string\"", TW_D("\x08\xf4\x90\x80\x80"), 1,
      AVS_EMALFORMED, "record 1: string is not valid UTF-8" },
    { "UTF-8 f5", "\"string\"", TW_D("\x08\xf5\x80\x80\x80"), 1,
      AVS_EMALFORMED, "record 1: string is not valid UTF-8" },
    { "UTF-8 stray continuation", "\"string\"", TW_D("\x02\x80"), 1,
      AVS_EMALFORMED, "record 1: string is not valid UTF-8" },
    { "UTF-8 cut sequence", "\"string\"", TW_D("\x04\x61\xe2\x02\x82"), 2,
      AVS_EMALFORMED, "record 1: string is not valid UTF-8" },
    { "UTF-8 bad continuation", "\"string\"", TW_D("\x04\xc2\x41"), 1,
      AVS_EMALFORMED, "record 1: string is not valid UTF-8" },
    { "UTF-8 bad after ASCII run", "\"string\"",
      TW_D("\x16" "abcdefghij\xff"), 1, AVS_EMALFORMED,
      "record 1: string is not valid UTF-8" },

    { "fixed", "{\"type\":\"fixed\",\"name\":\"F\",\"size\":4}",
      TW_D("abcdefgh"), 2, AVS_OK, NULL },
    { "fixed short", "{\"type\":\"fixed\",\"name\":\"F\",\"size\":4}",
      TW_D("abcdefg"), 2, AVS_EMALFORMED, "record 2: truncated" },
    { "fixed of 0", "{\"type\":\"fixed\",\"name\":\"F\",\"size\":0}",
      TW_D(""), 1000, AVS_OK, NULL },

    { "enum", "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\","
      "\"C\"]}", TW_D("\x00\x04"), 2, AVS_OK, NULL },
    { "enum index 3", "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":"
      "[\"A\",\"B\",\"C\"]}", TW_D("\x06"), 1, AVS_EMALFORMED,
      "record 1: enum index 3 out of range" },
    { "enum index -1", "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":"
      "[\"A\"]}", TW_D("\x01"), 1, AVS_EMALFORMED,
      "record 1: enum index -1 out of range" },

    { "union", "[\"null\",\"int\"]", TW_D("\x00\x02\x02"), 2, AVS_OK,
      NULL },
    { "union index 7", "[\"null\",\"int\"]", TW_D("\x00\x0e"), 2,
      AVS_EMALFORMED, "record 2: union index 7 out of range" },
    { "union index -1", "[\"null\",\"int\"]", TW_D("\x01"), 1,
      AVS_EMALFORMED, "record 1: union index -1 out of range" },

    { "record with null fields",
      "{\"type\":\"record\",\"name\":\"M\",\"fields\":["
      "{\"name\":\"a\",\"type\":\"null\"},{\"name\":\"i\",\"type\":\"int\"},"
      "{\"name\":\"b\",\"type\":\"null\"}]}", TW_D("\x02\x04"), 2, AVS_OK,
      NULL },
    { "named type used twice",
      "{\"type\":\"record\",\"name\":\"P\",\"fields\":["
      "{\"name\":\"a\",\"type\":{\"type\":\"record\",\"name\":\"Q\","
      "\"fields\":[{\"name\":\"x\",\"type\":\"int\"}]}},"
      "{\"name\":\"b\",\"type\":\"Q\"}]}", TW_D("\x02\x04\x06"), 1,
      AVS_EMALFORMED, "1 trailing bytes after 1 records" },

    { "array", "{\"type\":\"array\",\"items\":\"int\"}",
      TW_D("\x04\x02\x04\x00\x00"), 2, AVS_OK, NULL },
    { "array sized block", "{\"type\":\"array\",\"items\":\"int\"}",
      TW_D("\x03\x04\x02\x04\x02\x06\x00"), 1, AVS_OK, NULL },
    { "array block size -2", "{\"type\":\"array\",\"items\":\"int\"}",
      TW_D("\x03\x03\x02\x04\x00"), 1, AVS_EMALFORMED,
      "record 1: array block size -2" },
    { "array block size past the end",
      "{\"type\":\"array\",\"items\":\"int\"}",
      TW_D("\x03\x40\x02\x04\x00"), 1, AVS_EMALFORMED,
      "record 1: array block size 32 exceeds the 3 bytes left" },
    { "array block size wrong", "{\"type\":\"array\",\"items\":\"int\"}",
      TW_D("\x03\x06\x02\x04\x00\x00"), 1, AVS_EMALFORMED,
      "record 1: array block size 3 does not match its items" },
    { "array count past the bytes", "{\"type\":\"array\",\"items\":\"int\"}",
      TW_D("\x80\x80\x80\x80\x80\x40\x02"), 1, AVS_EMALFORMED,
      "record 1: array block of 1099511627776 items exceeds the 1 bytes"
      " left" },
    { "array of 2^40 nulls", "{\"type\":\"array\",\"items\":\"null\"}",
      TW_D("\x80\x80\x80\x80\x80\x40\x00"), 1, AVS_ETOOLARGE,
      "record 1: more array and map items than allowed" },
    { "array of 1000 nulls", "{\"type\":\"array\",\"items\":\"null\"}",
      TW_D("\xd0\x0f\x00"), 1, AVS_OK, NULL },
    { "array count -2^63", "{\"type\":\"array\",\"items\":\"null\"}",
      TW_D("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"), 1, AVS_EMALFORMED,
      "record 1: array block count out of range" },
    { "array never ends", "{\"type\":\"array\",\"items\":\"int\"}",
      TW_D("\x02\x02"), 1, AVS_EMALFORMED, "record 1: truncated" },

    { "map", "{\"type\":\"map\",\"values\":\"int\"}",
      TW_D("\x02\x02k\x02\x00"), 1, AVS_OK, NULL },
    { "map sized block", "{\"type\":\"map\",\"values\":\"int\"}",
      TW_D("\x01\x06\x02k\x02\x00"), 1, AVS_OK, NULL },
    { "map negative count, size -3", "{\"type\":\"map\",\"values\":\"int\"}",
      TW_D("\x01\x05\x02k\x02\x00"), 1, AVS_EMALFORMED,
      "record 1: map block size -3" },
    { "map negative count, size too big",
      "{\"type\":\"map\",\"values\":\"int\"}",
      TW_D("\x01\x0a\x02k\x02\x00"), 1, AVS_EMALFORMED,
      "record 1: map block size 5 exceeds the 4 bytes left" },
    { "map key not UTF-8", "{\"type\":\"map\",\"values\":\"int\"}",
      TW_D("\x02\x02\xff\x02\x00"), 1, AVS_EMALFORMED,
      "record 1: map key is not valid UTF-8" },
    { "map key length -1", "{\"type\":\"map\",\"values\":\"int\"}",
      TW_D("\x02\x01\x02\x00"), 1, AVS_EMALFORMED,
      "record 1: map key length -1" },
    { "map of nulls, huge count", "{\"type\":\"map\",\"values\":\"null\"}",
      TW_D("\x80\x80\x80\x80\x80\x40\x00"), 1, AVS_EMALFORMED,
      "record 1: map block of 1099511627776 items exceeds the 1 bytes"
      " left" },

    { "recursive, 5 deep", tw_recursive, TW_D("\x02\x02\x02\x02\x00"), 1,
      AVS_OK, NULL },
    { "recursive, 16 deep (32 levels)", tw_recursive,
      TW_D("\x02\x02\x02\x02\x02\x02\x02\x02\x02\x02\x02\x02\x02\x02\x02"
           "\x00"), 1, AVS_OK, NULL },
    { "recursive, 17 deep (34 levels)", tw_recursive,
      TW_D("\x02\x02\x02\x02\x02\x02\x02\x02\x02\x02\x02\x02\x02\x02\x02"
           "\x02\x00"), 1, AVS_ETOOLARGE, "record 1: nesting deeper than 32" },
    { "record that contains itself",
      "{\"type\":\"record\",\"name\":\"I\",\"fields\":"
      "[{\"name\":\"a\",\"type\":\"I\"}]}", TW_D(""), 1, AVS_ETOOLARGE,
      "record 1: nesting deeper than 32" },
    { "nested arrays",
      "{\"type\":\"array\",\"items\":{\"type\":\"array\",\"items\":"
      "{\"type\":\"array\",\"items\":\"int\"}}}", TW_D("\x02\x02\x00\x00\x00"),
      1, AVS_OK, NULL },
};


static void
test_cases(void)
{
    size_t            i;
    avs_rc_t          rc;
    avs_err_t         err;
    tw_schema_t       t;
    const tw_case_t  *tc;

    for (i = 0; i < sizeof(tw_cases) / sizeof(tw_cases[0]); i++) {
        tc = &tw_cases[i];

        if (!tw_open(&t, tc->schema, &err)) {
            ok(0, "%s: schema compiles: %s", tc->name, err.msg);
            continue;
        }

        rc = tw_check(&t, tc->data, tc->len, tc->count, 0, &err);

        if (tc->msg == NULL) {
            is_int(rc, tc->rc, "%s%s%s", tc->name, err.msg[0] ? ": " : "",
                   err.msg);

        } else {
            ok(rc == tc->rc && strcmp(err.msg, tc->msg) == 0,
               "%s: %s", tc->name, err.msg);

            if (strcmp(err.msg, tc->msg) != 0) {
                printf("#   expected: %s\n", tc->msg);
            }
        }

        tw_close(&t);
    }
}


/* Data nested 10,000 deep fails on depth, fast, whatever the limit. */
static void
test_deep_data(void)
{
    size_t       n;
    double       t0;
    uint8_t     *p;
    avs_rc_t     rc;
    avs_err_t    err;
    tw_schema_t  t;

    n = 10000;

    p = malloc(n);
    if (p == NULL || !tw_open(&t, tw_recursive, &err)) {
        ok(0, "recursive schema compiles");
        free(p);
        return;
    }

    memset(p, 0x02, n - 1);
    p[n - 1] = 0x00;

    t0 = tw_now();
    rc = tw_check(&t, p, n, 1, 0, &err);
    ok(rc == AVS_ETOOLARGE
       && strcmp(err.msg, "record 1: nesting deeper than 32") == 0,
       "10,000 deep: %s", err.msg);
    ok(tw_now() - t0 < 0.1, "10,000 deep fails fast");

    rc = tw_check(&t, p, n, 1, 1000000, &err);
    ok(rc == AVS_ETOOLARGE
       && strcmp(err.msg, "record 1: nesting deeper than 1000") == 0,
       "10,000 deep with a limit of 10^6: capped, %s", err.msg);

    rc = tw_check(&t, p + n - 10, 10, 1, 0, &err);
    is_int(rc, AVS_OK, "10 deep passes");

    tw_close(&t);
    free(p);
}


/*
 * Records nesting records of nulls two by two: 2^40 values of no bytes.
 * The walk must not visit them one by one.
 */
static void
test_zero_size_fanout(void)
{
    int          i;
    double       t0;
    avs_rc_t     rc;
    avs_buf_t    json;
    avs_err_t    err;
    tw_schema_t  t;
    char         part[160];

    memset(&json, 0, sizeof(avs_buf_t));

    for (i = 40; i > 0; i--) {
        snprintf(part, sizeof(part),
                 "{\"type\":\"record\",\"name\":\"T%d\",\"fields\":["
                 "{\"name\":\"a\",\"type\":", i);
        avs_buf_append(&json, part, strlen(part));
    }

    snprintf(part, sizeof(part),
             "{\"type\":\"record\",\"name\":\"T0\",\"fields\":"
             "[{\"name\":\"n\",\"type\":\"null\"}]}");
    avs_buf_append(&json, part, strlen(part));

    for (i = 1; i <= 40; i++) {
        snprintf(part, sizeof(part),
                 "},{\"name\":\"b\",\"type\":\"T%d\"}]}", i - 1);
        avs_buf_append(&json, part, strlen(part));
    }

    avs_buf_append(&json, "", 1);

    if (!tw_open(&t, (char *) json.data, &err)) {
        ok(0, "fan-out schema compiles: %s", err.msg);
        avs_buf_free(&json);
        return;
    }

    t0 = tw_now();
    rc = tw_check(&t, TW_D(""), 1000000, 64, &err);
    is_int(rc, AVS_OK, "10^6 records of 2^40 nulls each%s%s",
           err.msg[0] ? ": " : "", err.msg);
    rc = tw_check(&t, TW_D(""), 1000000, 0, &err);
    ok(rc == AVS_ETOOLARGE
       && strcmp(err.msg, "record 1: nesting deeper than 32") == 0,
       "the same, 41 levels: %s", err.msg);
    ok(tw_now() - t0 < 0.1, "in no time");

    tw_close(&t);
    avs_buf_free(&json);
}


/* The items budget is shared by the calls of one upload. */
static void
test_items_budget(void)
{
    uint64_t      items;
    avs_rc_t      rc;
    avs_err_t     err;
    tw_schema_t   t;
    avs_limits_t  lim;

    static const uint8_t  six[] = "\x0c\x02\x02\x02\x02\x02\x02\x00";

    if (!tw_open(&t, "{\"type\":\"array\",\"items\":\"int\"}", &err)) {
        ok(0, "array schema compiles");
        return;
    }

    avs_limits_default(&lim);
    items = 10;

    rc = avs_walker_check(t.w, six, sizeof(six) - 1, 1, &lim, &items, &err);
    ok(rc == AVS_OK && items == 4, "6 items of a budget of 10, 4 left");

    rc = avs_walker_check(t.w, six, sizeof(six) - 1, 1, &lim, &items, &err);
    ok(rc == AVS_ETOOLARGE
       && strcmp(err.msg, "record 1: more array and map items than allowed")
          == 0, "6 more: %s", err.msg);

    rc = avs_walker_check(t.w, six, sizeof(six) - 1, 1, &lim, NULL, &err);
    is_int(rc, AVS_OK, "no budget given: unlimited");

    tw_close(&t);
}


/* Schemas avro-c accepts but the walker must not. */
static void
test_bad_schemas(void)
{
    avs_rc_t       rc;
    avs_err_t      err;
    avro_schema_t  s, r, q;
    avs_walker_t  *w;

    s = avro_schema_fixed("F", -1);
    rc = avs_walker_compile(s, &w, &err);
    ok(rc == AVS_EMALFORMED && w == NULL
       && strcmp(err.msg, "schema: fixed size -1") == 0,
       "fixed of size -1: %s", err.msg);
    avro_schema_decref(s);

    s = avro_schema_union();
    rc = avs_walker_compile(s, &w, &err);
    ok(rc == AVS_EMALFORMED && w == NULL,
       "union without branches: %s", err.msg);
    avro_schema_decref(s);

    /* one record object used by two fields, without a link */

    q = avro_schema_record("Q", NULL);
    avro_schema_record_field_append(q, "x", avro_schema_int());
    r = avro_schema_record("R", NULL);
    avro_schema_record_field_append(r, "a", q);
    avro_schema_record_field_append(r, "b", q);

    rc = avs_walker_compile(r, &w, &err);
    is_int(rc, AVS_OK, "record object shared by two fields compiles");

    if (rc == AVS_OK) {
        rc = avs_walker_check(w, TW_D("\x02\x04"), 1, NULL, NULL, &err);
        is_int(rc, AVS_OK, "and walks");
        avs_walker_free(w);
    }

    avro_schema_decref(q);
    avro_schema_decref(r);
}


static uint64_t
tw_rand(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;

    return *state;
}


/*
 * Random corruption of real records: each result is a success or a
 * client error with a message naming the record; nothing else.
 */
static void
test_fuzz(const char *table, int rounds)
{
    int           i, j, k, bad;
    int64_t       n;
    uint8_t      *copy;
    uint64_t      rnd;
    avs_rc_t      rc;
    avs_buf_t     buf;
    avs_err_t     err;
    tw_schema_t   t;
    char          text[8192];
    size_t        idx;
    json_t       *doc, *item;
    json_error_t  jerr;

    doc = json_load_file(TW_TESTDATA "schema_v0_5_1.json", 0, &jerr);
    if (doc == NULL) {
        ok(0, "testdata loads");
        return;
    }

    text[0] = '\0';

    json_array_foreach(json_object_get(doc, "schemas"), idx, item) {
        if (strcmp(json_string_value(json_object_get(item, "table_name")),
                   table) == 0)
        {
            snprintf(text, sizeof(text), "%s",
                     json_string_value(json_object_get(item, "schema")));
        }
    }

    json_decref(doc);

    memset(&buf, 0, sizeof(avs_buf_t));

    if (!tw_open(&t, text, &err)) {
        ok(0, "%s compiles", table);
        return;
    }

    n = tw_generate("schema_v0_5_1.json", table, 40, 99, &buf);
    copy = malloc(buf.len ? buf.len : 1);

    if (n <= 0 || copy == NULL) {
        ok(0, "%s: records for fuzzing", table);
        free(copy);
        avs_buf_free(&buf);
        tw_close(&t);
        return;
    }

    rnd = 0x9e3779b97f4a7c15ULL;
    bad = 0;

    for (i = 0; i < rounds; i++) {
        memcpy(copy, buf.data, buf.len);

        k = 1 + (int) (tw_rand(&rnd) % 4);

        for (j = 0; j < k; j++) {
            copy[tw_rand(&rnd) % buf.len] = (uint8_t) tw_rand(&rnd);
        }

        rc = tw_check(&t, copy, buf.len, n, 0, &err);

        if (rc != AVS_OK
            && ((rc != AVS_EMALFORMED && rc != AVS_ETOOLARGE)
                || err.msg[0] == '\0'))
        {
            printf("# round %d: rc %d %s\n", i, (int) rc, err.msg);
            bad++;
        }
    }

    ok(bad == 0, "%s: %d corrupted copies give clean results", table,
       rounds);

    free(copy);
    avs_buf_free(&buf);
    tw_close(&t);
}


/* Walk speed on about 4 KiB of real-looking records (a diagnostic). */
static void
test_speed(const char *table, const char *text)
{
    long          rounds;
    double        t0, dt;
    int64_t       n;
    avs_rc_t      rc;
    avs_buf_t     buf;
    avs_err_t     err;
    tw_schema_t   t;

    memset(&buf, 0, sizeof(avs_buf_t));

    if (!tw_open(&t, text, &err)) {
        ok(0, "%s compiles", table);
        return;
    }

    n = tw_generate("schema_v0_5_1.json", table, 0, 7, &buf);

    if (n <= 0) {
        ok(0, "%s: records for timing", table);
        tw_close(&t);
        avs_buf_free(&buf);
        return;
    }

    rounds = 0;
    rc = AVS_OK;
    t0 = tw_now();

    do {
        rc |= tw_check(&t, buf.data, buf.len, n, 0, &err);
        rounds++;
        dt = tw_now() - t0;
    } while (dt < 0.3);

    ok(rc == AVS_OK, "%s: %lld records, %zu bytes: %.0f MB/s,"
       " %.0f blocks/s", table, (long long) n, buf.len,
       rounds * buf.len / dt / 1e6, rounds / dt);

    tw_close(&t);
    avs_buf_free(&buf);
}


static void
test_speed_tables(void)
{
    size_t        i;
    json_t       *doc, *item;
    const char   *name;
    json_error_t  jerr;

    doc = json_load_file(TW_TESTDATA "schema_v0_5_1.json", 0, &jerr);
    if (doc == NULL) {
        ok(0, "testdata loads");
        return;
    }

    json_array_foreach(json_object_get(doc, "schemas"), i, item) {
        name = json_string_value(json_object_get(item, "table_name"));

        if (strcmp(name, "own_ship") == 0 || strcmp(name, "battle") == 0
            || strcmp(name, "hougeki") == 0)
        {
            test_speed(name,
                       json_string_value(json_object_get(item, "schema")));
        }
    }

    json_decref(doc);
}


int
main(void)
{
    if (!tw_write_script()) {
        ok(0, "generator script written");
        return done_testing();
    }

    test_compile_all("schema_v0_4.json");
    test_compile_all("schema_v0_5.json");
    test_compile_all("schema_v0_5_1.json");

    test_cases();
    test_deep_data();
    test_zero_size_fanout();
    test_items_budget();
    test_bad_schemas();

    test_generated("schema_v0_5_1.json");
    test_fuzz("own_ship", getenv("AVS_FUZZ_ROUNDS")
                          ? atoi(getenv("AVS_FUZZ_ROUNDS")) : 20000);
    test_fuzz("battle", 5000);

    if (getenv("AVS_NO_SPEED") == NULL) {
        test_speed_tables();
    }

    unlink(tw_script);

    return done_testing();
}
