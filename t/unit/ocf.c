/*
 * Unit tests of the object container file reader and writer: round trips,
 * every truncation of a valid file, hostile counts and lengths, sync
 * markers, codecs and limits, and files exchanged with the Python Avro
 * implementation.
 */

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "avs_codec.h"
#include "avs_ocf.h"
#include "tap.h"


#define PYTHON  "/usr/bin/python3"

static const char     *schema =
    "{\"type\":\"record\",\"name\":\"R\",\"fields\":["
    "{\"name\":\"a\",\"type\":\"long\"},{\"name\":\"s\",\"type\":\"string\"}]}";

static const uint8_t   sync_a[AVS_SYNC_SIZE] = {
    0x10, 0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87,
    0x98, 0xa9, 0xba, 0xcb, 0xdc, 0xed, 0xfe, 0x0f
};


/* Encodes records i in [from, to) of the test schema into b. */
static void
encode_records(avs_buf_t *b, int64_t from, int64_t to)
{
    int64_t  i;
    char     s[32];
    int      len;

    for (i = from; i < to; i++) {
        len = snprintf(s, sizeof(s), "rec-%" PRId64, i);
        avs_buf_append_long(b, i);
        avs_buf_append_long(b, len);
        avs_buf_append(b, s, len);
    }
}


/* Checks that raw holds records from, from + 1, ... and how many. */
static int64_t
decode_records(const uint8_t *p, size_t n, int64_t from)
{
    size_t   pos;
    int64_t  a, len, k;

    pos = 0;
    k = 0;

    while (pos < n) {
        if (avs_read_long(p, n, &pos, &a) != AVS_OK || a != from + k
            || avs_read_long(p, n, &pos, &len) != AVS_OK
            || len < 0 || (uint64_t) len > n - pos)
        {
            return -1;
        }

        pos += len;
        k++;
    }

    return k;
}


/*
 * Writes a file of three blocks (records 0-9, 10-29, 30-59) in the given
 * codec.
 */
static void
make_file(avs_buf_t *f, avs_codec_t codec)
{
    static const int64_t  cuts[] = { 0, 10, 30, 60 };
    avs_buf_t             raw, z;
    avs_err_t             err;
    int                   i;

    memset(&raw, 0, sizeof(raw));
    memset(&z, 0, sizeof(z));

    avs_ocf_write_header(f, schema, strlen(schema), codec, sync_a);

    for (i = 0; i < 3; i++) {
        raw.len = 0;
        z.len = 0;
        encode_records(&raw, cuts[i], cuts[i + 1]);
        avs_codec_compress(codec, 0, raw.data, raw.len, &z, &err);
        avs_ocf_write_block(f, cuts[i + 1] - cuts[i], z.data, z.len, sync_a);
    }

    avs_buf_free(&raw);
    avs_buf_free(&z);
}


/*
 * Parses a whole file: header and every block.  Returns AVS_DONE when the
 * file is valid, else the first error; *blocks gets the blocks read.
 */
static avs_rc_t
parse_all(const uint8_t *p, size_t n, const avs_limits_t *lim,
    size_t *blocks, avs_err_t *err)
{
    avs_ocf_header_t  h;
    avs_ocf_block_t   b;
    size_t            pos, index;
    avs_rc_t          rc;

    *blocks = 0;

    rc = avs_ocf_parse_header(p, n, lim, &h, err);
    if (rc != AVS_OK) {
        return rc;
    }

    pos = h.header_len;
    index = 0;

    while ((rc = avs_ocf_next_block(p, n, &h, &pos, &index, &b, err))
           == AVS_OK)
    {
        (*blocks)++;
    }

    return rc;
}


static void
test_round_trip(void)
{
    static const avs_codec_t  codecs[] = {
        AVS_CODEC_NULL, AVS_CODEC_DEFLATE, AVS_CODEC_SNAPPY, AVS_CODEC_ZSTD
    };

    avs_buf_t          f, raw;
    avs_ocf_header_t   h;
    avs_ocf_block_t    b;
    avs_limits_t       lim;
    avs_err_t          err;
    avs_rc_t           rc;
    size_t             i, pos, index, offset;
    int64_t            next, records;
    const char        *name;

    avs_limits_default(&lim);

    for (i = 0; i < sizeof(codecs) / sizeof(codecs[0]); i++) {
        memset(&f, 0, sizeof(f));
        memset(&raw, 0, sizeof(raw));
        name = avs_codec_name(codecs[i]);

        make_file(&f, codecs[i]);

        rc = avs_ocf_parse_header(f.data, f.len, &lim, &h, &err);
        is_int(rc, AVS_OK, "%s: header parses", name);
        ok(h.schema.n == strlen(schema)
           && memcmp(h.schema.p, schema, h.schema.n) == 0,
           "%s: schema back", name);
        is_int(h.codec, codecs[i], "%s: codec back", name);
        ok(memcmp(h.sync, sync_a, AVS_SYNC_SIZE) == 0, "%s: sync back", name);

        pos = h.header_len;
        index = 0;
        next = 0;
        records = 0;
        offset = pos;

        while ((rc = avs_ocf_next_block(f.data, f.len, &h, &pos, &index, &b,
                                        &err))
               == AVS_OK)
        {
            ok(b.index == index && b.offset == offset,
               "%s: block %zu at %zu", name, b.index, b.offset);
            offset = pos;

            raw.len = 0;
            rc = avs_codec_decompress(h.codec, b.data.p, b.data.n, 1 << 20,
                                      &raw, &err);
            is_int(rc, AVS_OK, "%s: block %zu decompresses", name, b.index);
            is_int(decode_records(raw.data, raw.len, next), b.count,
                   "%s: block %zu holds its %" PRId64 " records", name,
                   b.index, b.count);
            next += b.count;
            records += b.count;
        }

        is_int(rc, AVS_DONE, "%s: ends cleanly", name);
        is_int(index, 3, "%s: three blocks", name);
        is_int(records, 60, "%s: sixty records", name);
        is_int(pos, f.len, "%s: at the end", name);

        rc = avs_ocf_next_block(f.data, f.len, &h, &pos, &index, &b, &err);
        is_int(rc, AVS_DONE, "%s: done stays done", name);

        avs_buf_free(&f);
        avs_buf_free(&raw);
    }
}


/*
 * Every prefix of a valid file either ends at a block boundary, and is a
 * valid file with fewer blocks, or is refused as malformed.
 */
static void
test_truncations(void)
{
    avs_buf_t          f;
    avs_ocf_header_t   h;
    avs_ocf_block_t    b;
    avs_err_t          err;
    avs_rc_t           rc;
    size_t             i, pos, index, blocks, ends[4], nends, k;
    int                good, boundary;

    memset(&f, 0, sizeof(f));
    make_file(&f, AVS_CODEC_DEFLATE);

    /* where valid shorter files end */
    avs_ocf_parse_header(f.data, f.len, NULL, &h, &err);
    pos = h.header_len;
    index = 0;
    nends = 0;
    ends[nends++] = pos;

    while (avs_ocf_next_block(f.data, f.len, &h, &pos, &index, &b, &err)
           == AVS_OK)
    {
        ends[nends++] = pos;
    }

    is_int(nends, 4, "four boundaries");

    good = 1;

    for (i = 0; i < f.len; i++) {
        uint8_t  *copy;

        /* an exact-size copy, so that valgrind sees any overread */
        copy = malloc(i ? i : 1);
        if (copy == NULL) {
            return;
        }

        memcpy(copy, f.data, i);
        memset(&err, 0, sizeof(err));

        rc = parse_all(copy, i, NULL, &blocks, &err);

        boundary = -1;
        for (k = 0; k < nends; k++) {
            if (ends[k] == i) {
                boundary = (int) k;
            }
        }

        if (boundary >= 0) {
            if (rc != AVS_DONE || blocks != (size_t) boundary) {
                printf("# prefix %zu: rc %d, %zu blocks\n", i, rc, blocks);
                good = 0;
            }

        } else if (rc != AVS_EMALFORMED || err.rc != AVS_EMALFORMED
                   || strstr(err.msg, "truncated") == NULL)
        {
            printf("# prefix %zu: rc %d '%s'\n", i, rc, err.msg);
            good = 0;
        }

        free(copy);
    }

    ok(good, "all %zu prefixes refused as truncated or valid at a boundary",
       f.len);

    avs_buf_free(&f);
}


/* Builds a header from pieces; see the tests for the pieces. */
static void
put_str(avs_buf_t *b, const char *s)
{
    avs_buf_append_long(b, (int64_t) strlen(s));
    avs_buf_append(b, s, strlen(s));
}


static void
put_magic(avs_buf_t *b)
{
    avs_buf_append(b, "Obj\1", 4);
}


static avs_rc_t
parse(avs_buf_t *b, const avs_limits_t *lim, avs_ocf_header_t *h,
    avs_err_t *err)
{
    memset(err, 0, sizeof(*err));
    return avs_ocf_parse_header(b->data, b->len, lim, h, err);
}


static void
test_header_errors(void)
{
    avs_buf_t          b;
    avs_ocf_header_t   h;
    avs_limits_t       lim;
    avs_err_t          err;
    avs_rc_t           rc;
    int                i;
    char               key[16];

    avs_limits_default(&lim);
    memset(&b, 0, sizeof(b));

    /* magic */
    avs_buf_append(&b, "Obj\2", 4);
    avs_buf_append_long(&b, 0);
    avs_buf_append(&b, sync_a, AVS_SYNC_SIZE);
    is_int(parse(&b, &lim, &h, &err), AVS_EMALFORMED, "bad magic");
    is_str(err.msg, "header: not an Avro object container file (bad magic)",
           "bad magic message");

    b.len = 0;
    avs_buf_append(&b, "PAR1", 4);
    is_int(parse(&b, &lim, &h, &err), AVS_EMALFORMED, "other format");

    b.len = 0;
    avs_buf_append(&b, "Ob", 2);
    is_int(parse(&b, &lim, &h, &err), AVS_EMALFORMED, "2 bytes");
    is_str(err.msg, "header: truncated", "2 bytes: truncated");

    /* a minimal valid header with the codec left out */
    b.len = 0;
    put_magic(&b);
    avs_buf_append_long(&b, 1);
    put_str(&b, "avro.schema");
    put_str(&b, "\"long\"");
    avs_buf_append_long(&b, 0);
    avs_buf_append(&b, sync_a, AVS_SYNC_SIZE);
    rc = parse(&b, &lim, &h, &err);
    is_int(rc, AVS_OK, "no codec entry");
    is_int(h.codec, AVS_CODEC_NULL, "defaults to null");
    is_int(h.header_len, b.len, "header length");

    /* no schema */
    b.len = 0;
    put_magic(&b);
    avs_buf_append_long(&b, 1);
    put_str(&b, "avro.codec");
    put_str(&b, "null");
    avs_buf_append_long(&b, 0);
    avs_buf_append(&b, sync_a, AVS_SYNC_SIZE);
    is_int(parse(&b, &lim, &h, &err), AVS_EMALFORMED, "no schema");
    is_str(err.msg, "header: no avro.schema", "no schema message");

    /* unknown codec */
    b.len = 0;
    put_magic(&b);
    avs_buf_append_long(&b, 2);
    put_str(&b, "avro.schema");
    put_str(&b, "\"long\"");
    put_str(&b, "avro.codec");
    put_str(&b, "lzma");
    avs_buf_append_long(&b, 0);
    avs_buf_append(&b, sync_a, AVS_SYNC_SIZE);
    is_int(parse(&b, &lim, &h, &err), AVS_EUNSUPPORTED, "unknown codec");
    is_str(err.msg, "header: unsupported codec 'lzma'", "codec message");

    b.len = 0;
    put_magic(&b);
    avs_buf_append_long(&b, 2);
    put_str(&b, "avro.codec");
    put_str(&b, "bz\n'ip2-with-a-very-long-name-that-goes-on-and-on");
    put_str(&b, "avro.schema");
    put_str(&b, "\"long\"");
    avs_buf_append_long(&b, 0);
    avs_buf_append(&b, sync_a, AVS_SYNC_SIZE);
    is_int(parse(&b, &lim, &h, &err), AVS_EUNSUPPORTED, "odd codec name");
    is_str(err.msg, "header: unsupported codec "
           "'bz??ip2-with-a-very-long-name-th...'", "shown safely");

    /* duplicates */
    b.len = 0;
    put_magic(&b);
    avs_buf_append_long(&b, 2);
    put_str(&b, "avro.schema");
    put_str(&b, "\"long\"");
    put_str(&b, "avro.schema");
    put_str(&b, "\"int\"");
    avs_buf_append_long(&b, 0);
    avs_buf_append(&b, sync_a, AVS_SYNC_SIZE);
    is_int(parse(&b, &lim, &h, &err), AVS_EMALFORMED, "duplicate schema");
    is_str(err.msg, "header: duplicate avro.schema", "duplicate message");

    /* schema over the limit, and exactly at it */
    lim.max_schema = 5;
    b.len = 0;
    put_magic(&b);
    avs_buf_append_long(&b, 1);
    put_str(&b, "avro.schema");
    put_str(&b, "\"long\"");
    avs_buf_append_long(&b, 0);
    avs_buf_append(&b, sync_a, AVS_SYNC_SIZE);
    is_int(parse(&b, &lim, &h, &err), AVS_ETOOLARGE, "schema over the limit");
    is_str(err.msg, "header: schema of 6 bytes exceeds 5", "limit message");
    lim.max_schema = 6;
    is_int(parse(&b, &lim, &h, &err), AVS_OK, "schema at the limit");
    avs_limits_default(&lim);

    /* metadata blocks with a negative count and a byte size */
    b.len = 0;
    put_magic(&b);
    avs_buf_append_long(&b, -1);
    avs_buf_append_long(&b, 1 + 11 + 1 + 6);
    put_str(&b, "avro.schema");
    put_str(&b, "\"long\"");
    avs_buf_append_long(&b, -1);
    avs_buf_append_long(&b, 1 + 3 + 1 + 1);
    put_str(&b, "app");
    put_str(&b, "x");
    avs_buf_append_long(&b, 0);
    avs_buf_append(&b, sync_a, AVS_SYNC_SIZE);
    is_int(parse(&b, &lim, &h, &err), AVS_OK,
           "negative metadata counts with sizes");
    ok(h.schema.n == 6 && memcmp(h.schema.p, "\"long\"", 6) == 0,
       "schema found in a sized block");

    b.len = 0;
    put_magic(&b);
    avs_buf_append_long(&b, -1);
    avs_buf_append_long(&b, 3);
    put_str(&b, "avro.schema");
    put_str(&b, "\"long\"");
    avs_buf_append_long(&b, 0);
    avs_buf_append(&b, sync_a, AVS_SYNC_SIZE);
    is_int(parse(&b, &lim, &h, &err), AVS_EMALFORMED, "wrong block size");
    is_str(err.msg, "header: metadata block size mismatch", "its message");

    b.len = 0;
    put_magic(&b);
    avs_buf_append_long(&b, -1);
    avs_buf_append_long(&b, (int64_t) 1 << 40);
    is_int(parse(&b, &lim, &h, &err), AVS_EMALFORMED, "huge block size");

    b.len = 0;
    put_magic(&b);
    avs_buf_append_long(&b, -1);
    avs_buf_append_long(&b, -7);
    is_int(parse(&b, &lim, &h, &err), AVS_EMALFORMED,
           "negative block size");

    b.len = 0;
    put_magic(&b);
    avs_buf_append_long(&b, INT64_MIN);
    avs_buf_append_long(&b, 0);
    is_int(parse(&b, &lim, &h, &err), AVS_EMALFORMED, "count INT64_MIN");

    /* huge and negative counts and lengths */
    b.len = 0;
    put_magic(&b);
    avs_buf_append_long(&b, (int64_t) 1 << 62);
    put_str(&b, "avro.schema");
    put_str(&b, "\"long\"");
    is_int(parse(&b, &lim, &h, &err), AVS_EMALFORMED, "count 2^62");
    is_str(err.msg, "header: more than 64 metadata entries", "its message");

    b.len = 0;
    put_magic(&b);
    avs_buf_append_long(&b, -((int64_t) 1 << 62));
    avs_buf_append_long(&b, 10);
    is_int(parse(&b, &lim, &h, &err), AVS_EMALFORMED, "count -2^62");

    b.len = 0;
    put_magic(&b);
    avs_buf_append_long(&b, 1);
    avs_buf_append_long(&b, -5);
    avs_buf_append(&b, "avro.schema", 11);
    is_int(parse(&b, &lim, &h, &err), AVS_EMALFORMED, "key length -5");
    is_str(err.msg, "header: negative length -5", "its message");

    b.len = 0;
    put_magic(&b);
    avs_buf_append_long(&b, 1);
    put_str(&b, "avro.schema");
    avs_buf_append_long(&b, (int64_t) 1 << 60);
    avs_buf_append(&b, "\"long\"", 6);
    is_int(parse(&b, &lim, &h, &err), AVS_EMALFORMED, "value length 2^60");
    is_str(err.msg, "header: truncated", "its message");

    b.len = 0;
    put_magic(&b);
    avs_buf_append_long(&b, 1);
    put_str(&b, "avro.schema");
    avs_buf_append_long(&b, INT64_MAX);
    is_int(parse(&b, &lim, &h, &err), AVS_EMALFORMED, "value length 2^63-1");

    b.len = 0;
    put_magic(&b);
    avs_buf_append(&b, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11);
    is_int(parse(&b, &lim, &h, &err), AVS_EMALFORMED, "overlong varint");

    /* 64 entries are fine, 65 are not, however they are split */
    b.len = 0;
    put_magic(&b);
    avs_buf_append_long(&b, 1);
    put_str(&b, "avro.schema");
    put_str(&b, "\"long\"");
    avs_buf_append_long(&b, 63);
    for (i = 0; i < 63; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        put_str(&b, key);
        put_str(&b, "v");
    }
    avs_buf_append_long(&b, 0);
    avs_buf_append(&b, sync_a, AVS_SYNC_SIZE);
    is_int(parse(&b, &lim, &h, &err), AVS_OK, "64 metadata entries");

    b.len = 0;
    put_magic(&b);
    avs_buf_append_long(&b, 1);
    put_str(&b, "avro.schema");
    put_str(&b, "\"long\"");
    for (i = 0; i < 64; i++) {
        avs_buf_append_long(&b, 1);
        snprintf(key, sizeof(key), "k%d", i);
        put_str(&b, key);
        put_str(&b, "v");
    }
    avs_buf_append_long(&b, 0);
    avs_buf_append(&b, sync_a, AVS_SYNC_SIZE);
    is_int(parse(&b, &lim, &h, &err), AVS_EMALFORMED,
           "65 metadata entries in 65 blocks");

    /* sync marker cut short */
    b.len = 0;
    put_magic(&b);
    avs_buf_append_long(&b, 1);
    put_str(&b, "avro.schema");
    put_str(&b, "\"long\"");
    avs_buf_append_long(&b, 0);
    avs_buf_append(&b, sync_a, AVS_SYNC_SIZE - 1);
    is_int(parse(&b, &lim, &h, &err), AVS_EMALFORMED, "sync 15 bytes");

    avs_buf_free(&b);
}


/* Appends a block by hand, so that its fields can be anything. */
static void
put_block(avs_buf_t *b, int64_t count, int64_t size, const void *data,
    size_t n, const uint8_t *sync)
{
    avs_buf_append_long(b, count);
    avs_buf_append_long(b, size);
    avs_buf_append(b, data, n);
    avs_buf_append(b, sync, AVS_SYNC_SIZE);
}


static avs_rc_t
parse_blocks(avs_buf_t *f, size_t *blocks, avs_err_t *err)
{
    memset(err, 0, sizeof(*err));
    return parse_all(f->data, f->len, NULL, blocks, err);
}


static void
test_block_errors(void)
{
    avs_buf_t   f;
    avs_err_t   err;
    size_t      hlen, blocks;
    uint8_t     other[AVS_SYNC_SIZE];

    memset(&f, 0, sizeof(f));
    avs_ocf_write_header(&f, "\"int\"", 5, AVS_CODEC_NULL, sync_a);
    hlen = f.len;

    memcpy(other, sync_a, AVS_SYNC_SIZE);
    other[15] ^= 0x80;

    put_block(&f, 1, 1, "\2", 1, sync_a);
    put_block(&f, 2, 2, "\2\4", 2, sync_a);
    is_int(parse_blocks(&f, &blocks, &err), AVS_DONE, "two good blocks");
    is_int(blocks, 2, "two blocks read");

    put_block(&f, 1, 1, "\6", 1, other);
    is_int(parse_blocks(&f, &blocks, &err), AVS_EMALFORMED,
           "bad sync in block 3");
    is_str(err.msg, "block 3: sync marker mismatch", "its message");
    is_int(blocks, 2, "after two good blocks");

    f.len = hlen;
    put_block(&f, 1, 1, "\2", 1, sync_a);
    put_block(&f, 0, 0, "", 0, sync_a);
    is_int(parse_blocks(&f, &blocks, &err), AVS_EMALFORMED,
           "zero-count block");
    is_str(err.msg, "block 2: record count 0", "its message");

    f.len = hlen;
    put_block(&f, -3, 1, "\2", 1, sync_a);
    is_int(parse_blocks(&f, &blocks, &err), AVS_EMALFORMED,
           "negative count");
    is_str(err.msg, "block 1: record count -3", "its message");

    f.len = hlen;
    put_block(&f, INT64_MIN, 1, "\2", 1, sync_a);
    is_int(parse_blocks(&f, &blocks, &err), AVS_EMALFORMED, "count INT64_MIN");

    f.len = hlen;
    put_block(&f, 1, (int64_t) 1 << 60, "\2", 1, sync_a);
    is_int(parse_blocks(&f, &blocks, &err), AVS_EMALFORMED, "size 2^60");
    is_str(err.msg, "block 1: truncated", "its message");

    f.len = hlen;
    put_block(&f, 1, INT64_MAX, "\2", 1, sync_a);
    is_int(parse_blocks(&f, &blocks, &err), AVS_EMALFORMED, "size 2^63-1");

    f.len = hlen;
    put_block(&f, 1, -1, "\2", 1, sync_a);
    is_int(parse_blocks(&f, &blocks, &err), AVS_EMALFORMED, "size -1");
    is_str(err.msg, "block 1: negative size -1", "its message");

    f.len = hlen;
    put_block(&f, 1, 2, "\2", 1, sync_a);
    is_int(parse_blocks(&f, &blocks, &err), AVS_EMALFORMED,
           "size one byte too long");
    is_str(err.msg, "block 1: truncated", "its message");

    f.len = hlen;
    put_block(&f, (int64_t) 1 << 62, 1, "\2", 1, sync_a);
    is_int(parse_blocks(&f, &blocks, &err), AVS_DONE,
           "count 2^62 is the caller's to bound");

    f.len = hlen;
    put_block(&f, 1, 1, "\2", 1, sync_a);
    avs_buf_append(&f, "\2", 1);
    is_int(parse_blocks(&f, &blocks, &err), AVS_EMALFORMED,
           "one stray byte after a block");
    is_str(err.msg, "block 2: truncated", "its message");

    /* the writer refuses what the reader would */
    f.len = hlen;
    is_int(avs_ocf_write_block(&f, 0, (const uint8_t *) "", 0, sync_a),
           AVS_EINTERNAL, "writer refuses a zero count");
    is_int(f.len, hlen, "and writes nothing");

    f.limit = f.len + 10;
    is_int(avs_ocf_write_block(&f, 1, (const uint8_t *) "0123456789", 10,
                               sync_a),
           AVS_ETOOLARGE, "writer over the buffer limit");
    is_int(f.len, hlen, "and leaves the buffer as it was");

    avs_buf_free(&f);
}


/* Runs a Python script with arg; returns its exit status, -1 if none. */
static int
run_python(const char *script, const char *arg, char *out, size_t size)
{
    FILE    *fp;
    char     path[] = "/tmp/avs-ocf-py-XXXXXX";
    char     cmd[512];
    size_t   len;
    int      fd, rc;

    if (access(PYTHON, X_OK) != 0) {
        return -1;
    }

    fd = mkstemp(path);
    if (fd < 0) {
        return -1;
    }

    if (write(fd, script, strlen(script)) != (ssize_t) strlen(script)) {
        close(fd);
        unlink(path);
        return -1;
    }

    close(fd);

    snprintf(cmd, sizeof(cmd), PYTHON " %s %s 2>&1", path, arg);

    fp = popen(cmd, "r");
    if (fp == NULL) {
        unlink(path);
        return -1;
    }

    len = fread(out, 1, size - 1, fp);
    out[len] = '\0';
    rc = pclose(fp);
    unlink(path);

    return rc;
}


static int
read_file(const char *path, avs_buf_t *b)
{
    FILE    *fp;
    uint8_t  tmp[4096];
    size_t   n;

    fp = fopen(path, "rb");
    if (fp == NULL) {
        return -1;
    }

    while ((n = fread(tmp, 1, sizeof(tmp), fp)) > 0) {
        avs_buf_append(b, tmp, n);
    }

    fclose(fp);
    return 0;
}


static const char  *py_write =
    "import sys, avro.datafile, avro.io, avro.schema\n"
    "s = avro.schema.parse(open(sys.argv[1] + '.schema').read())\n"
    "w = avro.datafile.DataFileWriter(open(sys.argv[1], 'wb'),\n"
    "                                 avro.io.DatumWriter(), s,\n"
    "                                 codec='deflate')\n"
    "for i in range(1000):\n"
    "    w.append({'a': i, 's': 'rec-%d' % i})\n"
    "    if i % 300 == 299:\n"
    "        w.flush()\n"
    "w.close()\n";

static const char  *py_read =
    "import sys, avro.datafile, avro.io\n"
    "r = avro.datafile.DataFileReader(open(sys.argv[1], 'rb'),\n"
    "                                 avro.io.DatumReader())\n"
    "n = 0\n"
    "for rec in r:\n"
    "    assert rec == {'a': n, 's': 'rec-%d' % n}, rec\n"
    "    n += 1\n"
    "print(n, r.meta['avro.codec'].decode())\n";


/* Reads a deflate file written by Python, and has Python read ours. */
static void
test_python(void)
{
    avs_buf_t          f, raw;
    avs_ocf_header_t   h;
    avs_ocf_block_t    b;
    avs_err_t          err;
    avs_rc_t           rc;
    size_t             pos, index;
    int64_t            next;
    char               path[] = "/tmp/avs-ocf-XXXXXX";
    char               spath[64], out[256];
    FILE              *fp;
    int                fd, good;

    memset(&f, 0, sizeof(f));
    memset(&raw, 0, sizeof(raw));

    fd = mkstemp(path);
    if (fd < 0) {
        ok(0, "temporary file");
        return;
    }

    close(fd);
    snprintf(spath, sizeof(spath), "%s.schema", path);

    fp = fopen(spath, "w");
    if (fp == NULL) {
        ok(0, "schema file");
        unlink(path);
        return;
    }

    fputs(schema, fp);
    fclose(fp);

    if (run_python(py_write, path, out, sizeof(out)) != 0) {
        ok(1, "python file # SKIP python3-avro not usable: %s", out);
        unlink(path);
        unlink(spath);
        return;
    }

    read_file(path, &f);

    rc = avs_ocf_parse_header(f.data, f.len, NULL, &h, &err);
    is_int(rc, AVS_OK, "python deflate file: header");
    is_int(h.codec, AVS_CODEC_DEFLATE, "python deflate file: codec");

    pos = h.header_len;
    index = 0;
    next = 0;
    good = 1;

    while ((rc = avs_ocf_next_block(f.data, f.len, &h, &pos, &index, &b,
                                    &err))
           == AVS_OK)
    {
        raw.len = 0;

        if (avs_codec_decompress(h.codec, b.data.p, b.data.n, 1 << 20, &raw,
                                 &err)
            != AVS_OK
            || decode_records(raw.data, raw.len, next) != b.count)
        {
            printf("# block %zu: %s\n", b.index, err.msg);
            good = 0;
        }

        next += b.count;
    }

    is_int(rc, AVS_DONE, "python deflate file: all blocks");
    is_int(index, 4, "python deflate file: four blocks");
    ok(good, "python deflate file: every block decompresses and decodes");
    is_int(next, 1000, "python deflate file: 1000 records");

    /* our file, read by Python */
    f.len = 0;
    make_file(&f, AVS_CODEC_DEFLATE);

    fp = fopen(path, "wb");
    if (fp != NULL) {
        fwrite(f.data, 1, f.len, fp);
        fclose(fp);
    }

    rc = run_python(py_read, path, out, sizeof(out));
    is_int(rc, 0, "python reads our deflate file");
    is_str(out, "60 deflate\n", "python sees 60 records, deflate");

    unlink(path);
    unlink(spath);
    avs_buf_free(&f);
    avs_buf_free(&raw);
}


int
main(void)
{
    test_round_trip();
    test_truncations();
    test_header_errors();
    test_block_errors();
    test_python();

    return done_testing();
}
