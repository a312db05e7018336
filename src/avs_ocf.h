/*
 * Bounded reader and writer of Avro Object Container Files.  The reader
 * never trusts a length: every count and size is checked against what is
 * left of the input before it is used.
 */

#ifndef AVS_OCF_H
#define AVS_OCF_H

#include "avs_base.h"
#include "avs_codec.h"

#define AVS_SYNC_SIZE  16

typedef struct {
    const uint8_t  *p;
    size_t          n;
} avs_slice_t;

typedef struct {
    avs_slice_t   schema;               /* value of "avro.schema" */
    avs_codec_t   codec;                /* from "avro.codec", default null */
    uint8_t       sync[AVS_SYNC_SIZE];
    size_t        header_len;           /* bytes up to and including sync */
} avs_ocf_header_t;

typedef struct {
    size_t        index;                /* 1-based block number */
    size_t        offset;               /* of the block in the file */
    int64_t       count;                /* records, > 0 */
    avs_slice_t   data;                 /* compressed block data */
} avs_ocf_block_t;

/*
 * Parses magic, metadata map and sync marker.  The metadata map may have at
 * most 64 entries; the schema must be present and at most lim->max_schema
 * bytes.  Errors say where ("header: ...").
 */
avs_rc_t avs_ocf_parse_header(const uint8_t *p, size_t n,
    const avs_limits_t *lim, avs_ocf_header_t *h, avs_err_t *err);

/*
 * Reads the block at *pos (start with h->header_len) and advances *pos past
 * its sync marker.  Returns AVS_DONE when *pos == n.  Refuses zero or
 * negative counts, sizes past the end and sync mismatches, with messages
 * like "block 3: sync marker mismatch".  index is set by the caller's
 * running count: pass the number of blocks read so far in *index.
 */
avs_rc_t avs_ocf_next_block(const uint8_t *p, size_t n,
    const avs_ocf_header_t *h, size_t *pos, size_t *index,
    avs_ocf_block_t *b, avs_err_t *err);

/* Appends a header with the given schema text, codec and sync marker. */
avs_rc_t avs_ocf_write_header(avs_buf_t *out, const char *schema, size_t len,
    avs_codec_t codec, const uint8_t sync[AVS_SYNC_SIZE]);

/* Appends one block: count, size, data, sync.  count must be > 0. */
avs_rc_t avs_ocf_write_block(avs_buf_t *out, int64_t count,
    const uint8_t *data, size_t n, const uint8_t sync[AVS_SYNC_SIZE]);

#endif /* AVS_OCF_H */
