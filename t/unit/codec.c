/*
 * Unit tests of the block codecs: round trips, exact caps, decompression
 * bombs, truncated and corrupt input, checksums and trailing data.
 */

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zlib.h>
#include <zstd.h>

#include "avs_codec.h"
#include "tap.h"


#define MIB  (1024 * 1024)

static const avs_codec_t  codecs[] = {
    AVS_CODEC_NULL, AVS_CODEC_DEFLATE, AVS_CODEC_SNAPPY, AVS_CODEC_ZSTD
};

#define NCODECS  (sizeof(codecs) / sizeof(codecs[0]))


static uint8_t *
xmalloc(size_t n)
{
    uint8_t  *p;

    p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }

    return p;
}


/* Deterministic pseudo-random bytes that no codec can shrink. */
static void
fill_random(uint8_t *p, size_t n, uint32_t seed)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t) (seed >> 16);
    }
}


/* Record-like text that compresses well. */
static void
fill_text(uint8_t *p, size_t n)
{
    size_t  i, k;
    char    line[64];
    int     len;

    i = 0;
    k = 0;

    while (i < n) {
        len = snprintf(line, sizeof(line), "player-%zu,score=%zu;",
                       k % 97, (k * 7919) % 1000);
        k++;

        if ((size_t) len > n - i) {
            len = (int) (n - i);
        }

        memcpy(p + i, line, len);
        i += len;
    }
}


static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static void
test_names(void)
{
    avs_codec_t  c;
    size_t       i;

    for (i = 0; i < NCODECS; i++) {
        const char  *name = avs_codec_name(codecs[i]);

        c = (avs_codec_t) -1;
        is_int(avs_codec_from_name(name, strlen(name), &c), AVS_OK,
               "codec name '%s' is known", name);
        is_int(c, codecs[i], "codec name '%s' maps back", name);
    }

    is_int(avs_codec_from_name("lzma", 4, &c), AVS_EUNSUPPORTED,
           "unknown codec name refused");
    is_int(avs_codec_from_name("nul", 3, &c), AVS_EUNSUPPORTED,
           "prefix of a codec name refused");
    is_int(avs_codec_from_name("deflate2", 8, &c), AVS_EUNSUPPORTED,
           "longer codec name refused");
    is_int(avs_codec_from_name("zstd", 4, &c), AVS_EUNSUPPORTED,
           "'zstd' is not the specification's name");
    is_int(avs_codec_from_name("snappyX", 6, &c), AVS_OK,
           "length is honoured");
    is_int(avs_codec_default_level(AVS_CODEC_DEFLATE), 6, "deflate level");
    is_int(avs_codec_default_level(AVS_CODEC_ZSTD), 3, "zstd level");
    is_int(avs_codec_default_level(AVS_CODEC_SNAPPY), 0, "snappy level");
}


/*
 * Compresses, then decompresses with a cap of exactly the size and with one
 * byte less, after a prefix already in the output buffer.
 */
static void
round_trip(avs_codec_t codec, const uint8_t *data, size_t n,
    const char *what)
{
    avs_buf_t    z, out;
    avs_err_t    err;
    avs_rc_t     rc;
    const char  *name;

    name = avs_codec_name(codec);
    memset(&z, 0, sizeof(z));
    memset(&out, 0, sizeof(out));

    rc = avs_codec_compress(codec, 0, data, n, &z, &err);
    is_int(rc, AVS_OK, "%s %s: compress", name, what);

    avs_buf_append(&out, "xyz", 3);

    rc = avs_codec_decompress(codec, z.data, z.len, n, &out, &err);
    is_int(rc, AVS_OK, "%s %s: decompress with cap = size", name, what);
    ok(out.len == n + 3 && memcmp(out.data, "xyz", 3) == 0
       && (n == 0 || memcmp(out.data + 3, data, n) == 0),
       "%s %s: same bytes back after the prefix", name, what);

    if (n > 0) {
        out.len = 3;
        rc = avs_codec_decompress(codec, z.data, z.len, n - 1, &out, &err);
        is_int(rc, AVS_ETOOLARGE, "%s %s: cap one byte under refused",
               name, what);
        is_int(out.len, 3, "%s %s: output length restored", name, what);
        ok(strstr(err.msg, "output exceeds") != NULL,
           "%s %s: message '%s'", name, what, err.msg);
    }

    avs_buf_free(&z);
    avs_buf_free(&out);
}


static void
test_round_trips(void)
{
    uint8_t  *rnd, *txt;
    size_t    i;

    rnd = xmalloc(MIB);
    txt = xmalloc(MIB);
    fill_random(rnd, MIB, 42);
    fill_text(txt, MIB);

    for (i = 0; i < NCODECS; i++) {
        round_trip(codecs[i], rnd, 0, "0 bytes");
        round_trip(codecs[i], rnd, 1, "1 byte");
        round_trip(codecs[i], txt, 1000, "1000 text bytes");
        round_trip(codecs[i], rnd, MIB, "1 MiB random");
        round_trip(codecs[i], txt, MIB, "1 MiB text");
    }

    free(rnd);
    free(txt);
}


static void
test_levels(void)
{
    uint8_t    *txt;
    avs_buf_t   z1, z9, out;
    avs_err_t   err;

    txt = xmalloc(MIB);
    fill_text(txt, MIB);
    memset(&z1, 0, sizeof(z1));
    memset(&z9, 0, sizeof(z9));
    memset(&out, 0, sizeof(out));

    is_int(avs_codec_compress(AVS_CODEC_DEFLATE, 1, txt, MIB, &z1, &err),
           AVS_OK, "deflate level 1");
    is_int(avs_codec_compress(AVS_CODEC_DEFLATE, 99, txt, MIB, &z9, &err),
           AVS_OK, "deflate level 99 clamps to 9");
    ok(z9.len <= z1.len, "level 9 (%zu) no larger than level 1 (%zu)",
       z9.len, z1.len);
    is_int(avs_codec_decompress(AVS_CODEC_DEFLATE, z9.data, z9.len, MIB,
                                &out, &err),
           AVS_OK, "level 9 output decompresses");

    z1.len = 0;
    out.len = 0;
    is_int(avs_codec_compress(AVS_CODEC_ZSTD, 1000, txt, MIB, &z1, &err),
           AVS_OK, "zstd level 1000 clamps to the maximum");
    is_int(avs_codec_decompress(AVS_CODEC_ZSTD, z1.data, z1.len, MIB,
                                &out, &err),
           AVS_OK, "its output decompresses");
    ok(out.len == MIB && memcmp(out.data, txt, MIB) == 0, "same bytes");

    avs_buf_free(&z1);
    avs_buf_free(&z9);
    avs_buf_free(&out);
    free(txt);
}


/* The buffer's own limit caps decompression as well. */
static void
test_buffer_limit(void)
{
    uint8_t    *txt;
    avs_buf_t   z, out;
    avs_err_t   err;
    size_t      i;

    txt = xmalloc(10000);
    fill_text(txt, 10000);

    for (i = 0; i < NCODECS; i++) {
        memset(&z, 0, sizeof(z));
        memset(&out, 0, sizeof(out));
        out.limit = 5000;

        avs_buf_append(&out, "ab", 2);
        avs_codec_compress(codecs[i], 0, txt, 10000, &z, &err);

        is_int(avs_codec_decompress(codecs[i], z.data, z.len, MIB, &out,
                                    &err),
               AVS_ETOOLARGE, "%s: buffer limit 5000 holds",
               avs_codec_name(codecs[i]));
        is_int(out.len, 2, "%s: prefix kept", avs_codec_name(codecs[i]));
        ok(out.cap <= 5000, "%s: never allocated past the limit (%zu)",
           avs_codec_name(codecs[i]), out.cap);
        is_int(out.limit, 5000, "%s: limit restored",
               avs_codec_name(codecs[i]));

        out.limit = 10002;
        is_int(avs_codec_decompress(codecs[i], z.data, z.len, MIB, &out,
                                    &err),
               AVS_OK, "%s: limit exactly enough",
               avs_codec_name(codecs[i]));

        avs_buf_free(&z);
        avs_buf_free(&out);
    }

    free(txt);
}


/*
 * Appends to z the raw deflate encoding of 1 MiB of zeros, ended by a sync
 * flush so that the piece is byte aligned.
 */
static void
deflate_zeros(z_stream *zs, const uint8_t *zeros, avs_buf_t *z)
{
    uint8_t  tmp[64 * 1024];
    int      flush;
    size_t   left;

    left = MIB;

    do {
        zs->next_in = (Bytef *) zeros;
        zs->avail_in = left > 65536 ? 65536 : (uInt) left;
        left -= zs->avail_in;
        flush = left ? Z_NO_FLUSH : Z_SYNC_FLUSH;

        do {
            zs->next_out = tmp;
            zs->avail_out = sizeof(tmp);
            deflate(zs, flush);
            avs_buf_append(z, tmp, sizeof(tmp) - zs->avail_out);
        } while (zs->avail_out == 0);

    } while (left > 0);
}


/*
 * Builds a raw deflate stream of mib MiB of zeros.  Compressing a gigabyte
 * would take seconds (minutes under valgrind), so the stream is assembled:
 * the first MiB, then the second MiB's byte-aligned encoding repeated (its
 * back references reach only zeros, so it decodes to zeros wherever it is
 * placed), then an empty final block.
 */
static void
make_zero_bomb(size_t mib, avs_buf_t *bomb)
{
    z_stream   zs;
    avs_buf_t  second;
    uint8_t   *zeros, tmp[64];
    size_t     i;

    zeros = xmalloc(65536);
    memset(zeros, 0, 65536);
    memset(&zs, 0, sizeof(zs));
    memset(&second, 0, sizeof(second));

    deflateInit2(&zs, 9, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);

    deflate_zeros(&zs, zeros, bomb);
    deflate_zeros(&zs, zeros, &second);

    for (i = 1; i < mib; i++) {
        avs_buf_append(bomb, second.data, second.len);
    }

    zs.next_in = zeros;
    zs.avail_in = 0;
    zs.next_out = tmp;
    zs.avail_out = sizeof(tmp);
    deflate(&zs, Z_FINISH);
    avs_buf_append(bomb, tmp, sizeof(tmp) - zs.avail_out);

    deflateEnd(&zs);
    avs_buf_free(&second);
    free(zeros);
}


static void
test_deflate_bomb(void)
{
    avs_buf_t   bomb, out;
    avs_err_t   err;
    avs_rc_t    rc;
    size_t      i;
    int         zeros;
    double      t;

    memset(&bomb, 0, sizeof(bomb));
    memset(&out, 0, sizeof(out));

    /* the construction is a valid stream: check it at 4 MiB */
    make_zero_bomb(4, &bomb);
    rc = avs_codec_decompress(AVS_CODEC_DEFLATE, bomb.data, bomb.len,
                              8 * MIB, &out, &err);
    is_int(rc, AVS_OK, "assembled 4 MiB zero stream decompresses");

    zeros = (out.len == 4 * MIB);
    for (i = 0; zeros && i < out.len; i++) {
        zeros = (out.data[i] == 0);
    }

    ok(zeros, "to exactly 4 MiB of zeros (%zu)", out.len);
    avs_buf_free(&out);
    bomb.len = 0;

    make_zero_bomb(1024, &bomb);
    printf("# deflate bomb: %zu bytes expanding to 1 GiB\n", bomb.len);

    t = now();
    rc = avs_codec_decompress(AVS_CODEC_DEFLATE, bomb.data, bomb.len, MIB,
                              &out, &err);
    t = now() - t;

    is_int(rc, AVS_ETOOLARGE, "1 GiB deflate bomb refused with cap 1 MiB");
    is_str(err.msg, "deflate: output exceeds 1048576 bytes",
           "bomb message");
    is_int(out.len, 0, "nothing left in the output");
    ok(out.cap <= MIB, "at most the cap allocated (%zu)", out.cap);
    ok(t < 5.0, "refused quickly (%.3f s)", t);

    out.len = 0;
    rc = avs_codec_decompress(AVS_CODEC_DEFLATE, bomb.data, bomb.len, 0,
                              &out, &err);
    is_int(rc, AVS_ETOOLARGE, "bomb with cap 0 refused");

    avs_buf_free(&bomb);
    avs_buf_free(&out);
}


static void
test_deflate_corrupt(void)
{
    uint8_t    *txt, *zl;
    uLongf      zlen;
    avs_buf_t   z, out;
    avs_err_t   err;
    avs_rc_t    rc;
    size_t      i;
    int         all;

    txt = xmalloc(100000);
    fill_text(txt, 100000);
    memset(&z, 0, sizeof(z));
    memset(&out, 0, sizeof(out));

    avs_codec_compress(AVS_CODEC_DEFLATE, 0, txt, 100000, &z, &err);

    /* every proper prefix is truncated */
    all = 1;
    for (i = 0; i < z.len; i += (i < 64 ? 1 : 97)) {
        out.len = 0;
        rc = avs_codec_decompress(AVS_CODEC_DEFLATE, z.data, i, MIB, &out,
                                  &err);
        if (rc != AVS_EMALFORMED || out.len != 0) {
            all = 0;
            printf("# prefix %zu: rc %d\n", i, rc);
        }
    }

    ok(all, "deflate: every truncation refused as malformed");

    out.len = 0;
    rc = avs_codec_decompress(AVS_CODEC_DEFLATE, z.data, z.len - 1, MIB,
                              &out, &err);
    is_int(rc, AVS_EMALFORMED, "deflate: last byte cut");
    is_str(err.msg, "deflate: corrupt or truncated data",
           "truncated message");

    out.len = 0;
    rc = avs_codec_decompress(AVS_CODEC_DEFLATE, (const uint8_t *) "\xff\xff",
                              2, MIB, &out, &err);
    is_int(rc, AVS_EMALFORMED, "deflate: invalid block type");
    is_str(err.msg, "deflate: corrupt or truncated data",
           "corrupt message");

    /* up to 4 bytes after the stream are tolerated, 5 are not */
    avs_buf_append(&z, "\1\2\3\4", 4);
    out.len = 0;
    rc = avs_codec_decompress(AVS_CODEC_DEFLATE, z.data, z.len, MIB, &out,
                              &err);
    is_int(rc, AVS_OK, "deflate: 4 trailing bytes tolerated");
    is_int(out.len, 100000, "and the data is whole");

    avs_buf_append(&z, "\5", 1);
    out.len = 0;
    rc = avs_codec_decompress(AVS_CODEC_DEFLATE, z.data, z.len, MIB, &out,
                              &err);
    is_int(rc, AVS_EMALFORMED, "deflate: 5 trailing bytes refused");
    is_str(err.msg, "deflate: 5 bytes of trailing data", "trailing message");

    /* zlib output with the header and the last checksum byte cut off */
    zlen = compressBound(100000);
    zl = xmalloc(zlen);
    compress2(zl, &zlen, txt, 100000, 6);
    out.len = 0;
    rc = avs_codec_decompress(AVS_CODEC_DEFLATE, zl + 2, zlen - 3, MIB, &out,
                              &err);
    is_int(rc, AVS_OK, "deflate: zlib data minus header and one byte");
    ok(out.len == 100000 && memcmp(out.data, txt, 100000) == 0,
       "decodes to the original");

    out.len = 0;
    rc = avs_codec_decompress(AVS_CODEC_DEFLATE, zl, zlen, MIB, &out, &err);
    is_int(rc, AVS_EMALFORMED, "deflate: zlib-wrapped data refused");

    free(zl);
    free(txt);
    avs_buf_free(&z);
    avs_buf_free(&out);
}


static void
test_snappy_corrupt(void)
{
    uint8_t    *txt;
    avs_buf_t   z, out;
    avs_err_t   err;
    avs_rc_t    rc;
    size_t      i;
    int         all;

    txt = xmalloc(100000);
    fill_text(txt, 100000);
    memset(&z, 0, sizeof(z));
    memset(&out, 0, sizeof(out));

    avs_codec_compress(AVS_CODEC_SNAPPY, 0, txt, 100000, &z, &err);

    all = 1;
    for (i = 0; i < z.len; i += (i < 64 ? 1 : 97)) {
        out.len = 0;
        rc = avs_codec_decompress(AVS_CODEC_SNAPPY, z.data, i, MIB, &out,
                                  &err);
        if (rc != AVS_EMALFORMED || out.len != 0) {
            all = 0;
            printf("# prefix %zu: rc %d\n", i, rc);
        }
    }

    ok(all, "snappy: every truncation refused as malformed");

    rc = avs_codec_decompress(AVS_CODEC_SNAPPY, z.data, 3, MIB, &out, &err);
    is_str(err.msg, "snappy: truncated data", "3 bytes: truncated");

    z.data[z.len - 1] ^= 1;
    out.len = 0;
    rc = avs_codec_decompress(AVS_CODEC_SNAPPY, z.data, z.len, MIB, &out,
                              &err);
    is_int(rc, AVS_EMALFORMED, "snappy: flipped crc bit refused");
    is_str(err.msg, "snappy: crc mismatch", "crc message");
    is_int(out.len, 0, "output restored");
    z.data[z.len - 1] ^= 1;

    z.data[z.len / 2] ^= 0x10;
    out.len = 0;
    rc = avs_codec_decompress(AVS_CODEC_SNAPPY, z.data, z.len, MIB, &out,
                              &err);
    is_int(rc, AVS_EMALFORMED, "snappy: flipped data bit refused");
    z.data[z.len / 2] ^= 0x10;

    /* a preamble claiming 2 GiB: refused before allocating */
    avs_buf_free(&out);
    rc = avs_codec_decompress(AVS_CODEC_SNAPPY,
                              (const uint8_t *) "\x80\x80\x80\x80\x08\0\0\0\0",
                              9, MIB, &out, &err);
    is_int(rc, AVS_ETOOLARGE, "snappy: claimed length over the cap");
    is_str(err.msg, "snappy: output exceeds 1048576 bytes", "message");
    ok(out.cap == 0, "nothing allocated");

    out.len = 0;
    rc = avs_codec_decompress(AVS_CODEC_SNAPPY,
                              (const uint8_t *) "\xff\xff\xff\xff\xff\xff\0\0\0"
                              "\0", 10, MIB, &out, &err);
    is_int(rc, AVS_EMALFORMED, "snappy: overlong length varint");

    avs_buf_append(&z, "junk", 4);
    out.len = 0;
    rc = avs_codec_decompress(AVS_CODEC_SNAPPY, z.data, z.len, MIB, &out,
                              &err);
    is_int(rc, AVS_EMALFORMED, "snappy: trailing data refused");

    free(txt);
    avs_buf_free(&z);
    avs_buf_free(&out);
}


/* Compresses as a stream so that the frame header has no content size. */
static void
zstd_stream(const uint8_t *in, size_t n, int wlog, avs_buf_t *z)
{
    ZSTD_CCtx       *cctx;
    ZSTD_inBuffer    ib;
    ZSTD_outBuffer   ob;
    uint8_t          tmp[64 * 1024];
    size_t           r;

    cctx = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 1);

    if (wlog) {
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog, wlog);
    }

    ib.src = in;
    ib.size = n;
    ib.pos = 0;

    /* input first, the end later: the size is never known in advance */
    while (ib.pos < ib.size) {
        ob.dst = tmp;
        ob.size = sizeof(tmp);
        ob.pos = 0;
        r = ZSTD_compressStream2(cctx, &ob, &ib, ZSTD_e_continue);
        avs_buf_append(z, tmp, ob.pos);

        if (ZSTD_isError(r)) {
            break;
        }
    }

    do {
        ob.dst = tmp;
        ob.size = sizeof(tmp);
        ob.pos = 0;
        r = ZSTD_compressStream2(cctx, &ob, &ib, ZSTD_e_end);
        avs_buf_append(z, tmp, ob.pos);
    } while (r != 0 && !ZSTD_isError(r));

    ZSTD_freeCCtx(cctx);
}


static void
test_zstd(void)
{
    uint8_t    *txt, *zeros;
    avs_buf_t   z, z2, out;
    avs_err_t   err;
    avs_rc_t    rc;
    size_t      i, len;
    int         all;
    double      t;

    txt = xmalloc(100000);
    fill_text(txt, 100000);
    memset(&z, 0, sizeof(z));
    memset(&z2, 0, sizeof(z2));
    memset(&out, 0, sizeof(out));

    avs_codec_compress(AVS_CODEC_ZSTD, 0, txt, 100000, &z, &err);

    all = 1;
    for (i = 0; i < z.len; i += (i < 64 ? 1 : 97)) {
        out.len = 0;
        rc = avs_codec_decompress(AVS_CODEC_ZSTD, z.data, i, MIB, &out,
                                  &err);
        if (rc != AVS_EMALFORMED || out.len != 0) {
            all = 0;
            printf("# prefix %zu: rc %d\n", i, rc);
        }
    }

    ok(all, "zstd: every truncation refused as malformed");

    out.len = 0;
    rc = avs_codec_decompress(AVS_CODEC_ZSTD, z.data, z.len - 1, MIB, &out,
                              &err);
    is_str(err.msg, "zstd: truncated data", "truncated message");

    rc = avs_codec_decompress(AVS_CODEC_ZSTD, (const uint8_t *) "hello!", 6,
                              MIB, &out, &err);
    is_int(rc, AVS_EMALFORMED, "zstd: not a frame");
    is_str(err.msg, "zstd: corrupt data", "corrupt message");

    z.data[z.len / 2] ^= 0x55;
    out.len = 0;
    rc = avs_codec_decompress(AVS_CODEC_ZSTD, z.data, z.len, MIB, &out,
                              &err);
    is_int(rc, AVS_EMALFORMED, "zstd: flipped bits refused");
    z.data[z.len / 2] ^= 0x55;

    /* two frames are one valid block, garbage after a frame is not */
    len = z.len;
    avs_buf_append(&z, z.data, len);
    out.len = 0;
    rc = avs_codec_decompress(AVS_CODEC_ZSTD, z.data, z.len, MIB, &out,
                              &err);
    is_int(rc, AVS_OK, "zstd: two concatenated frames");
    ok(out.len == 200000 && memcmp(out.data + 100000, txt, 100000) == 0,
       "decode to both contents");

    z.len = len;
    avs_buf_append(&z, "garbage", 7);
    out.len = 0;
    rc = avs_codec_decompress(AVS_CODEC_ZSTD, z.data, z.len, MIB, &out,
                              &err);
    is_int(rc, AVS_EMALFORMED, "zstd: trailing garbage refused");
    is_str(err.msg, "zstd: 7 bytes of trailing data", "trailing message");
    is_int(out.len, 0, "output restored");

    z.len = len;
    avs_buf_append(&z, "\x28\xb5", 2);
    out.len = 0;
    rc = avs_codec_decompress(AVS_CODEC_ZSTD, z.data, z.len, MIB, &out,
                              &err);
    is_int(rc, AVS_EMALFORMED, "zstd: 2 trailing bytes refused");

    /* a frame without content size, far above the cap */
    zeros = xmalloc(64 * MIB);
    memset(zeros, 0, 64 * MIB);
    zstd_stream(zeros, 64 * MIB, 0, &z2);

    ok(ZSTD_getFrameContentSize(z2.data, z2.len) == ZSTD_CONTENTSIZE_UNKNOWN,
       "streamed frame has no content size (%zu bytes)", z2.len);

    out.len = 0;
    t = now();
    rc = avs_codec_decompress(AVS_CODEC_ZSTD, z2.data, z2.len, MIB, &out,
                              &err);
    t = now() - t;
    is_int(rc, AVS_ETOOLARGE, "zstd: 64 MiB without content size, cap 1 MiB");
    is_str(err.msg, "zstd: output exceeds 1048576 bytes", "message");
    ok(out.cap <= MIB, "at most the cap allocated (%zu)", out.cap);
    ok(t < 5.0, "refused quickly (%.3f s)", t);

    out.len = 0;
    rc = avs_codec_decompress(AVS_CODEC_ZSTD, z2.data, z2.len, 64 * MIB,
                              &out, &err);
    is_int(rc, AVS_OK, "same frame with cap = size");
    is_int(out.len, 64 * MIB, "whole");

    out.len = 0;
    rc = avs_codec_decompress(AVS_CODEC_ZSTD, z2.data, z2.len, 64 * MIB - 1,
                              &out, &err);
    is_int(rc, AVS_ETOOLARGE, "same frame with cap one under");

    /* a frame that demands a 128 MiB window for 100 kB */
    z2.len = 0;
    zstd_stream(txt, 100000, 27, &z2);
    out.len = 0;
    avs_buf_free(&out);
    rc = avs_codec_decompress(AVS_CODEC_ZSTD, z2.data, z2.len, MIB, &out,
                              &err);
    is_int(rc, AVS_ETOOLARGE, "zstd: 128 MiB window refused with cap 1 MiB");
    is_str(err.msg, "zstd: window larger than 8388608 bytes", "message");

    out.len = 0;
    rc = avs_codec_decompress(AVS_CODEC_ZSTD, z2.data, z2.len, 128 * MIB,
                              &out, &err);
    is_int(rc, AVS_OK, "but accepted with cap 128 MiB");

    free(zeros);
    free(txt);
    avs_buf_free(&z);
    avs_buf_free(&z2);
    avs_buf_free(&out);
}


static void
test_null(void)
{
    avs_buf_t   out;
    avs_err_t   err;

    memset(&out, 0, sizeof(out));

    is_int(avs_codec_decompress(AVS_CODEC_NULL, (const uint8_t *) "abc", 3,
                                2, &out, &err),
           AVS_ETOOLARGE, "null: over the cap");
    is_str(err.msg, "null: output exceeds 2 bytes", "message");
    is_int(avs_codec_decompress(AVS_CODEC_NULL, (const uint8_t *) "abc", 3,
                                0, &out, &err),
           AVS_ETOOLARGE, "null: cap 0 on an empty buffer");
    is_int(avs_codec_decompress(AVS_CODEC_NULL, (const uint8_t *) "", 0,
                                0, &out, &err),
           AVS_OK, "null: nothing with cap 0");
    is_int(avs_codec_decompress((avs_codec_t) 9, (const uint8_t *) "", 0,
                                0, &out, &err),
           AVS_EUNSUPPORTED, "unknown codec value");

    avs_buf_free(&out);
}


/* What the thread below saw, and in which order its exit functions ran. */
static char  exit_order[AVS_THREAD_EXIT_MAX + 1];
static int   exit_refused, exit_inflated;


static void
exit_mark(void *arg)
{
    size_t  n;

    n = strlen(exit_order);
    exit_order[n] = *(const char *) arg;
}


static void *
exit_thread(void *unused)
{
    static const char  names[] = "abcd";
    avs_buf_t          plain, packed;
    avs_err_t          err;
    int                i;

    memset(&plain, 0, sizeof(plain));
    memset(&packed, 0, sizeof(packed));

    /* the thread's decompressor takes one of the slots */
    avs_codec_compress(AVS_CODEC_DEFLATE, 1, (const uint8_t *) "abc", 3,
                       &packed, &err);
    exit_inflated = avs_codec_decompress(AVS_CODEC_DEFLATE, packed.data,
                                         packed.len, 100, &plain, &err)
                    == AVS_OK;

    for (i = 0; i < AVS_THREAD_EXIT_MAX - 1; i++) {
        avs_at_thread_exit(exit_mark, (void *) &names[i]);
    }

    exit_refused = avs_at_thread_exit(exit_mark, (void *) &names[3])
                   == AVS_ENOMEM;

    avs_buf_free(&plain);
    avs_buf_free(&packed);

    return NULL;
}


/* A thread's exit functions run when it ends, the last registered first,
 * and no more than AVS_THREAD_EXIT_MAX are taken. */
static void
test_thread_exit(void)
{
    pthread_t  th;

    ok(pthread_create(&th, NULL, exit_thread, NULL) == 0
       && pthread_join(th, NULL) == 0, "a thread ran");
    ok(exit_inflated, "it inflated a block");
    is_str(exit_order, "cba", "its exit functions ran, last first");
    ok(exit_refused, "one past the limit: AVS_ENOMEM");
}


int
main(void)
{
    test_names();
    test_null();
    test_round_trips();
    test_levels();
    test_buffer_limit();
    test_deflate_bomb();
    test_deflate_corrupt();
    test_snappy_corrupt();
    test_zstd();
    test_thread_exit();

    return done_testing();
}
