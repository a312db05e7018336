/*
 * Avro block codecs: null, deflate (raw RFC 1951), snappy (with the
 * trailing big-endian CRC-32 of the uncompressed data, as the Avro
 * specification requires) and zstandard.  Decompression always has an
 * output cap, because a small hostile block can claim gigabytes.
 */

#ifndef AVS_CODEC_H
#define AVS_CODEC_H

#include "avs_base.h"

typedef enum {
    AVS_CODEC_NULL = 0,
    AVS_CODEC_DEFLATE,
    AVS_CODEC_SNAPPY,
    AVS_CODEC_ZSTD
} avs_codec_t;

/* Name as written in "avro.codec" ("null", "deflate", "snappy",
 * "zstandard"); AVS_EUNSUPPORTED for anything else. */
avs_rc_t avs_codec_from_name(const char *name, size_t len, avs_codec_t *out);
const char *avs_codec_name(avs_codec_t codec);

/* Default compression level of a codec (deflate 6, zstd 3, others 0). */
int avs_codec_default_level(avs_codec_t codec);

/*
 * Decompresses in[0..n) and appends the result to out.  Fails with
 * AVS_ETOOLARGE as soon as more than cap bytes would be produced, and with
 * AVS_EMALFORMED on corrupt input (bad stream, CRC mismatch, trailing
 * garbage).  On failure out->len is restored.
 */
avs_rc_t avs_codec_decompress(avs_codec_t codec, const uint8_t *in, size_t n,
    size_t cap, avs_buf_t *out, avs_err_t *err);

/* Compresses in[0..n) at level (<= 0: the default) and appends to out. */
avs_rc_t avs_codec_compress(avs_codec_t codec, int level, const uint8_t *in,
    size_t n, avs_buf_t *out, avs_err_t *err);

#endif /* AVS_CODEC_H */
