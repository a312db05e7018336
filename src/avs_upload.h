/*
 * One uploaded Avro file on its way into the hot store: header parsed, the
 * writer schema resolved, then every block decompressed (with a cap),
 * every record walked, and the blocks written again in the stream's codec
 * and sync marker so that the archiver can later concatenate them.
 */

#ifndef AVS_UPLOAD_H
#define AVS_UPLOAD_H

#include "avs_base.h"
#include "avs_ocf.h"
#include "avs_schema.h"

typedef struct {
    const uint8_t     *file;
    size_t             file_len;
    avs_ocf_header_t   header;
    avs_schema_t      *schema;          /* retained from the cache */
    char               content_hash[65];

    avs_buf_t          blocks;          /* count, size, data, sync ... */
    uint64_t           records;
    uint64_t           nblocks;
    uint64_t           decompressed;    /* bytes of record data */
} avs_upload_t;

/*
 * Parses the header and gets the schema; the file must outlive u.  With
 * may_wait 0, a schema not yet in the cache is AVS_DONE (see
 * avs_schema_cache_get).
 */
avs_rc_t avs_upload_open(avs_upload_t *u, const uint8_t *file, size_t n,
    avs_schema_cache_t *cache, const avs_limits_t *lim, int may_wait,
    avs_err_t *err);

/*
 * Validates every block and appends it to u->blocks framed with the given
 * codec and sync marker.  A block already in that codec is copied as it
 * came, after its content was checked.  With budget set, the blocks may
 * decompress to at most *budget bytes, which they use up; past it the
 * result is AVS_DONE, the work being too much for where it runs.
 */
avs_rc_t avs_upload_reframe(avs_upload_t *u, avs_codec_t codec, int level,
    const uint8_t sync[AVS_SYNC_SIZE], const avs_limits_t *lim,
    size_t *budget, avs_err_t *err);

void avs_upload_free(avs_upload_t *u, avs_schema_cache_t *cache);

#endif /* AVS_UPLOAD_H */
