/*
 * Avro block codecs.  Blocks come from clients, so every decompressor here
 * produces its output into a bounded buffer and stops as soon as the output
 * would pass the caller's cap: a block of a few kilobytes that claims to
 * expand to gigabytes costs at most the cap in memory and the time it takes
 * to produce the cap, never more.
 */

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <libdeflate.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "avs_codec.h"


/* Output produced per decompression step before the cap is checked again. */
#define AVS_CODEC_CHUNK         (64 * 1024)

/*
 * Bytes tolerated after the end of a deflate stream.  Some writers make raw
 * deflate data by cutting the two-byte header and only the last byte of the
 * four-byte Adler-32 trailer off zlib output, which leaves three bytes of the
 * checksum behind; other readers ignore them, so we do too, but no more.
 */
#define AVS_DEFLATE_MAX_TAIL    4


static const char *avs_codec_names[] = {
    "null", "deflate", "snappy", "zstandard"
};


avs_rc_t
avs_codec_from_name(const char *name, size_t len, avs_codec_t *out)
{
    size_t  i;

    for (i = 0; i < sizeof(avs_codec_names) / sizeof(avs_codec_names[0]);
         i++)
    {
        if (strlen(avs_codec_names[i]) == len
            && memcmp(avs_codec_names[i], name, len) == 0)
        {
            *out = (avs_codec_t) i;
            return AVS_OK;
        }
    }

    return AVS_EUNSUPPORTED;
}


const char *
avs_codec_name(avs_codec_t codec)
{
    if ((unsigned) codec
        < sizeof(avs_codec_names) / sizeof(avs_codec_names[0]))
    {
        return avs_codec_names[codec];
    }

    return "unknown";
}


int
avs_codec_default_level(avs_codec_t codec)
{
    switch (codec) {
    case AVS_CODEC_DEFLATE:
        return 6;
    case AVS_CODEC_ZSTD:
        return 3;
    default:
        return 0;
    }
}


static avs_rc_t
avs_codec_too_large(const char *codec, size_t cap, avs_err_t *err)
{
    return avs_err_set(err, AVS_ETOOLARGE, "%s: output exceeds %zu bytes",
                       codec, cap);
}


/*
 * Makes room for the next piece of decompressed output: at most one chunk,
 * and never more than what is left under the cap.  Returns the room made in
 * *room; 0 means the cap is reached.
 */
static avs_rc_t
avs_codec_room(avs_buf_t *out, size_t start, size_t cap, size_t *room,
    const char *codec, avs_err_t *err)
{
    size_t    left;
    avs_rc_t  rc;

    left = cap - (out->len - start);

    if (left == 0) {
        *room = 0;
        return AVS_OK;
    }

    *room = left < AVS_CODEC_CHUNK ? left : AVS_CODEC_CHUNK;

    rc = avs_buf_reserve(out, *room);

    if (rc == AVS_ETOOLARGE) {
        return avs_codec_too_large(codec, cap, err);
    }

    if (rc != AVS_OK) {
        return avs_err_set(err, rc, "%s: out of memory", codec);
    }

    return AVS_OK;
}


/* Each thread's decompressor, kept from one block to the next. */
static __thread struct libdeflate_decompressor  *avs_inflater;


static void
avs_inflater_free(void *unused)
{
    libdeflate_free_decompressor(avs_inflater);
    avs_inflater = NULL;
}


/*
 * Inflates a whole block at once with libdeflate, which is much faster than
 * zlib's streaming inflate.  The output buffer starts at a guess and grows
 * fourfold up to the cap, so a bomb costs at most about the cap in memory
 * and a little more than the cap in work before it is refused.
 */
static avs_rc_t
avs_deflate_decompress(const uint8_t *in, size_t n, size_t cap,
    avs_buf_t *out, avs_err_t *err)
{
    size_t                 start, want, used, got;
    avs_rc_t               rc;
    enum libdeflate_result  r;

    if (avs_inflater == NULL) {
        avs_inflater = libdeflate_alloc_decompressor();
        if (avs_inflater == NULL) {
            return avs_err_set(err, AVS_ENOMEM, "deflate: out of memory");
        }

        if (avs_at_thread_exit(avs_inflater_free, NULL) != AVS_OK) {
            avs_inflater_free(NULL);
            return avs_err_set(err, AVS_ENOMEM, "deflate: out of memory");
        }
    }

    start = out->len;
    /* Avro records compress well: guess high so that one pass is enough */
    want = n < AVS_CODEC_CHUNK / 16 ? AVS_CODEC_CHUNK : n * 16;

    for ( ;; ) {
        if (want > cap) {
            want = cap;
        }

        rc = avs_buf_reserve(out, want);

        if (rc == AVS_ETOOLARGE) {
            return avs_codec_too_large("deflate", cap, err);
        }

        if (rc != AVS_OK) {
            return avs_err_set(err, rc, "deflate: out of memory");
        }

        r = libdeflate_deflate_decompress_ex(avs_inflater, in, n,
                                             out->data + start, want,
                                             &used, &got);

        if (r == LIBDEFLATE_SUCCESS) {
            if (n - used > AVS_DEFLATE_MAX_TAIL) {
                return avs_err_set(err, AVS_EMALFORMED,
                                   "deflate: %zu bytes of trailing data",
                                   n - used);
            }

            out->len = start + got;
            return AVS_OK;
        }

        if (r != LIBDEFLATE_INSUFFICIENT_SPACE) {
            return avs_err_set(err, AVS_EMALFORMED,
                               "deflate: corrupt or truncated data");
        }

        if (want == cap) {
            return avs_codec_too_large("deflate", cap, err);
        }

        want = (want > cap / 4) ? cap : want * 4;
    }
}


/*
 * Snappy as Avro frames it: the compressed data and then the big-endian
 * CRC-32 of the uncompressed data.  Snappy states the uncompressed length
 * up front, so the cap is checked before anything is allocated.
 */
static avs_rc_t
avs_snappy_decompress(const uint8_t *in, size_t n, size_t cap,
    avs_buf_t *out, avs_err_t *err)
{
    size_t           len, got;
    uint32_t         want, crc;
    const uint8_t   *c;
    char             dummy;
    char            *dst;
    avs_rc_t         rc;
    snappy_status    st;

    if (n < 4) {
        return avs_err_set(err, AVS_EMALFORMED, "snappy: truncated data");
    }

    n -= 4;
    c = in + n;
    want = ((uint32_t) c[0] << 24) | ((uint32_t) c[1] << 16)
           | ((uint32_t) c[2] << 8) | (uint32_t) c[3];

    if (snappy_uncompressed_length((const char *) in, n, &len) != SNAPPY_OK) {
        return avs_err_set(err, AVS_EMALFORMED, "snappy: corrupt data");
    }

    if (len > cap) {
        return avs_codec_too_large("snappy", cap, err);
    }

    rc = avs_buf_reserve(out, len);

    if (rc == AVS_ETOOLARGE) {
        return avs_codec_too_large("snappy", cap, err);
    }

    if (rc != AVS_OK) {
        return avs_err_set(err, rc, "snappy: out of memory");
    }

    dst = len ? (char *) out->data + out->len : &dummy;
    got = len;

    st = snappy_uncompress((const char *) in, n, dst, &got);

    if (st != SNAPPY_OK || got != len) {
        return avs_err_set(err, AVS_EMALFORMED, "snappy: corrupt data");
    }

    crc = (uint32_t) crc32_z(0L, (const Bytef *) dst, len);

    if (crc != want) {
        return avs_err_set(err, AVS_EMALFORMED, "snappy: crc mismatch");
    }

    out->len += len;

    return AVS_OK;
}


/* True if p[0..n) starts a zstd frame or a skippable frame. */
static int
avs_zstd_frame_start(const uint8_t *p, size_t n)
{
    uint32_t  magic;

    if (n < 4) {
        return 0;
    }

    magic = (uint32_t) p[0] | ((uint32_t) p[1] << 8)
            | ((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);

    return magic == ZSTD_MAGICNUMBER
           || (magic & ZSTD_MAGIC_SKIPPABLE_MASK)
              == ZSTD_MAGIC_SKIPPABLE_START;
}


/*
 * Zstandard, decoded as a stream so that the cap holds whether or not the
 * frame header states the content size.  Several frames in a row are one
 * valid block; anything after a frame that does not start another one is
 * trailing garbage.
 */
static avs_rc_t
avs_zstd_decompress(const uint8_t *in, size_t n, size_t cap,
    avs_buf_t *out, avs_err_t *err)
{
    ZSTD_DCtx       *dctx;
    ZSTD_inBuffer    ib;
    ZSTD_outBuffer   ob;
    size_t           start, room, zr;
    uint8_t          spill;
    unsigned         wlog;
    avs_rc_t         rc;
    ZSTD_ErrorCode   code;

    if (n == 0) {
        return avs_err_set(err, AVS_EMALFORMED, "zstd: truncated data");
    }

    dctx = ZSTD_createDCtx();
    if (dctx == NULL) {
        return avs_err_set(err, AVS_ENOMEM, "zstd: out of memory");
    }

    /*
     * A frame header can demand a window of up to 128 MiB whatever the
     * frame holds; a window larger than both the cap and what common
     * compression levels use is refused instead of allocated.
     */
    for (wlog = 23; wlog < 27 && ((size_t) 1 << wlog) < cap; wlog++) {
        /* void */
    }

    if (ZSTD_isError(ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax,
                                            (int) wlog)))
    {
        ZSTD_freeDCtx(dctx);
        return avs_err_set(err, AVS_EINTERNAL, "zstd: cannot set window");
    }

    ib.src = in;
    ib.size = n;
    ib.pos = 0;
    start = out->len;
    rc = AVS_OK;

    for ( ;; ) {
        rc = avs_codec_room(out, start, cap, &room, "zstd", err);
        if (rc != AVS_OK) {
            break;
        }

        if (room > 0) {
            ob.dst = out->data + out->len;
            ob.size = room;

        } else {
            ob.dst = &spill;
            ob.size = 1;
        }

        ob.pos = 0;

        zr = ZSTD_decompressStream(dctx, &ob, &ib);

        if (ZSTD_isError(zr)) {
            code = ZSTD_getErrorCode(zr);

            if (code == ZSTD_error_memory_allocation) {
                rc = avs_err_set(err, AVS_ENOMEM, "zstd: out of memory");

            } else if (code == ZSTD_error_frameParameter_windowTooLarge) {
                rc = avs_err_set(err, AVS_ETOOLARGE,
                                 "zstd: window larger than %zu bytes",
                                 (size_t) 1 << wlog);

            } else {
                rc = avs_err_set(err, AVS_EMALFORMED, "zstd: corrupt data");
            }

            break;
        }

        if (room > 0) {
            out->len += ob.pos;

        } else if (ob.pos > 0) {
            rc = avs_codec_too_large("zstd", cap, err);
            break;
        }

        if (zr == 0) {
            /* a frame is complete and fully flushed */

            if (ib.pos == ib.size) {
                break;
            }

            if (!avs_zstd_frame_start(in + ib.pos, n - ib.pos)) {
                rc = avs_err_set(err, AVS_EMALFORMED,
                                 "zstd: %zu bytes of trailing data",
                                 n - ib.pos);
                break;
            }

            continue;
        }

        if (ib.pos == ib.size && ob.pos < ob.size) {
            /* the decoder wants more input and there is none */
            rc = avs_err_set(err, AVS_EMALFORMED, "zstd: truncated data");
            break;
        }
    }

    ZSTD_freeDCtx(dctx);

    return rc;
}


/*
 * The one entry point for untrusted blocks: whatever the codec, the output
 * stays under the cap and a failure leaves the buffer as it was, so that
 * the caller can report the error and carry on.
 */
avs_rc_t
avs_codec_decompress(avs_codec_t codec, const uint8_t *in, size_t n,
    size_t cap, avs_buf_t *out, avs_err_t *err)
{
    size_t    start, limit, room;
    avs_rc_t  rc;

    start = out->len;
    limit = out->limit;

    /* the buffer's own limit is a cap too */

    if (limit != 0) {
        room = limit > start ? limit - start : 0;

        if (cap > room) {
            cap = room;
        }
    }

    /*
     * Lower the buffer's limit to the cap for the duration of the call, so
     * that the buffer's geometric growth cannot allocate past it either.
     * (A limit of 0 would mean none, but with a cap of 0 nothing is ever
     * reserved.)
     */
    out->limit = start + (cap < SIZE_MAX - start ? cap : SIZE_MAX - start);

    switch (codec) {

    case AVS_CODEC_NULL:
        if (n > cap) {
            rc = avs_codec_too_large("null", cap, err);
            break;
        }

        rc = avs_buf_append(out, in, n);
        if (rc != AVS_OK) {
            avs_err_set(err, rc, "null: out of memory");
        }

        break;

    case AVS_CODEC_DEFLATE:
        rc = avs_deflate_decompress(in, n, cap, out, err);
        break;

    case AVS_CODEC_SNAPPY:
        rc = avs_snappy_decompress(in, n, cap, out, err);
        break;

    case AVS_CODEC_ZSTD:
        rc = avs_zstd_decompress(in, n, cap, out, err);
        break;

    default:
        rc = avs_err_set(err, AVS_EUNSUPPORTED, "unsupported codec %d",
                         (int) codec);
    }

    out->limit = limit;

    if (rc != AVS_OK) {
        out->len = start;
    }

    return rc;
}


/*
 * Raw deflate at the given level, fed and drained in pieces so that inputs
 * larger than zlib's 32-bit counters work too.
 */
static avs_rc_t
avs_deflate_compress(int level, const uint8_t *in, size_t n, avs_buf_t *out,
    avs_err_t *err)
{
    z_stream  zs;
    size_t    left, room;
    avs_rc_t  rc;
    int       zrc, flush;

    if (level > 9) {
        level = 9;
    }

    memset(&zs, 0, sizeof(zs));

    if (deflateInit2(&zs, level, Z_DEFLATED, -MAX_WBITS, 8,
                     Z_DEFAULT_STRATEGY)
        != Z_OK)
    {
        return avs_err_set(err, AVS_ENOMEM, "deflate: out of memory");
    }

    left = n;
    rc = AVS_OK;

    for ( ;; ) {
        if (zs.avail_in == 0 && left > 0) {
            zs.next_in = (Bytef *) (in + (n - left));
            zs.avail_in = left > UINT_MAX ? UINT_MAX : (uInt) left;
            left -= zs.avail_in;
        }

        flush = (left == 0) ? Z_FINISH : Z_NO_FLUSH;

        rc = avs_buf_reserve(out, AVS_CODEC_CHUNK);
        if (rc != AVS_OK) {
            avs_err_set(err, rc, "deflate: cannot grow output");
            break;
        }

        room = out->cap - out->len;
        if (room > UINT_MAX) {
            room = UINT_MAX;
        }

        zs.next_out = out->data + out->len;
        zs.avail_out = (uInt) room;

        zrc = deflate(&zs, flush);

        out->len += room - zs.avail_out;

        if (zrc == Z_STREAM_END) {
            break;
        }

        if (zrc != Z_OK && zrc != Z_BUF_ERROR) {
            rc = avs_err_set(err, AVS_EINTERNAL, "deflate: error %d", zrc);
            break;
        }
    }

    deflateEnd(&zs);

    return rc;
}


/* Snappy data followed by the big-endian CRC-32 the Avro framing wants. */
static avs_rc_t
avs_snappy_compress(const uint8_t *in, size_t n, avs_buf_t *out,
    avs_err_t *err)
{
    size_t    max, len;
    uint32_t  crc;
    uint8_t  *dst;
    avs_rc_t  rc;

    max = snappy_max_compressed_length(n);

    rc = avs_buf_reserve(out, max + 4);
    if (rc != AVS_OK) {
        return avs_err_set(err, rc, "snappy: cannot grow output");
    }

    dst = out->data + out->len;
    len = max;

    if (snappy_compress((const char *) in, n, (char *) dst, &len)
        != SNAPPY_OK)
    {
        return avs_err_set(err, AVS_EINTERNAL, "snappy: compression failed");
    }

    crc = (uint32_t) crc32_z(0L, (const Bytef *) in, n);

    dst[len] = (uint8_t) (crc >> 24);
    dst[len + 1] = (uint8_t) (crc >> 16);
    dst[len + 2] = (uint8_t) (crc >> 8);
    dst[len + 3] = (uint8_t) crc;

    out->len += len + 4;

    return AVS_OK;
}


/* One zstd frame that states its content size, in a single call. */
static avs_rc_t
avs_zstd_compress(int level, const uint8_t *in, size_t n, avs_buf_t *out,
    avs_err_t *err)
{
    size_t    max, len;
    avs_rc_t  rc;

    if (level > ZSTD_maxCLevel()) {
        level = ZSTD_maxCLevel();
    }

    max = ZSTD_compressBound(n);
    if (ZSTD_isError(max)) {
        return avs_err_set(err, AVS_ETOOLARGE, "zstd: input too large");
    }

    rc = avs_buf_reserve(out, max);
    if (rc != AVS_OK) {
        return avs_err_set(err, rc, "zstd: cannot grow output");
    }

    len = ZSTD_compress(out->data + out->len, max, in, n, level);

    if (ZSTD_isError(len)) {
        return avs_err_set(err, AVS_EINTERNAL, "zstd: %s",
                           ZSTD_getErrorName(len));
    }

    out->len += len;

    return AVS_OK;
}


/*
 * Compresses our own data (archived blocks, re-framed uploads); there is
 * no cap beyond the buffer's limit.  A failure leaves the buffer as it was.
 */
avs_rc_t
avs_codec_compress(avs_codec_t codec, int level, const uint8_t *in,
    size_t n, avs_buf_t *out, avs_err_t *err)
{
    size_t    start;
    avs_rc_t  rc;

    start = out->len;

    if (level <= 0) {
        level = avs_codec_default_level(codec);
    }

    switch (codec) {

    case AVS_CODEC_NULL:
        rc = avs_buf_append(out, in, n);
        if (rc != AVS_OK) {
            avs_err_set(err, rc, "null: cannot grow output");
        }

        break;

    case AVS_CODEC_DEFLATE:
        rc = avs_deflate_compress(level, in, n, out, err);
        break;

    case AVS_CODEC_SNAPPY:
        rc = avs_snappy_compress(in, n, out, err);
        break;

    case AVS_CODEC_ZSTD:
        rc = avs_zstd_compress(level, in, n, out, err);
        break;

    default:
        rc = avs_err_set(err, AVS_EUNSUPPORTED, "unsupported codec %d",
                         (int) codec);
    }

    if (rc != AVS_OK) {
        out->len = start;
    }

    return rc;
}
