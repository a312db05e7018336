/*
 * Validation and re-framing of one uploaded Avro file.
 */

#include <stdio.h>
#include <string.h>

#include "avs_codec.h"
#include "avs_sigv4.h"
#include "avs_upload.h"


/*
 * Decompressed blocks go to a buffer kept by each thread between uploads:
 * allocating and faulting in a fresh one per upload costs more than the
 * decompression of a small upload.  Buffers grown past this are let go.
 */
#define AVS_UPLOAD_SCRATCH_KEEP  (1024 * 1024)

static __thread avs_buf_t  avs_upload_scratch;
static __thread int        avs_upload_scratch_registered;


static void
avs_upload_scratch_free(void *unused)
{
    avs_buf_free(&avs_upload_scratch);
}


/* Keeps a thread's scratch buffer for its next upload, unless it grew
 * too large or would outlive the thread. */
static void
avs_upload_scratch_keep(avs_buf_t *plain)
{
    if (plain->cap > AVS_UPLOAD_SCRATCH_KEEP) {
        avs_buf_free(plain);
    }

    if (plain->data != NULL && !avs_upload_scratch_registered) {
        if (avs_at_thread_exit(avs_upload_scratch_free, NULL) == AVS_OK) {
            avs_upload_scratch_registered = 1;

        } else {
            avs_buf_free(plain);
        }
    }

    avs_upload_scratch = *plain;
}


avs_rc_t
avs_upload_open(avs_upload_t *u, const uint8_t *file, size_t n,
    avs_schema_cache_t *cache, const avs_limits_t *lim, int may_wait,
    avs_err_t *err)
{
    avs_rc_t  rc;

    memset(u, 0, sizeof(*u));
    u->file = file;
    u->file_len = n;

    rc = avs_ocf_parse_header(file, n, lim, &u->header, err);
    if (rc != AVS_OK) {
        return rc;
    }

    if (u->header.header_len == n) {
        return avs_err_set(err, AVS_EMALFORMED, "file holds no records");
    }

    rc = avs_schema_cache_get(cache, u->header.schema.p, u->header.schema.n,
                              lim, may_wait, &u->schema, err);
    if (rc != AVS_OK) {
        return rc;
    }

    if (avs_sha256_hex(file, n, u->content_hash) != AVS_OK) {
        return avs_err_set(err, AVS_ENOMEM, "cannot hash the upload");
    }

    return AVS_OK;
}


/* Prefixes the message already in err with the block number. */
static avs_rc_t
avs_upload_block_error(avs_err_t *err, size_t index)
{
    char  msg[sizeof(err->msg)];

    if (strncmp(err->msg, "block ", 6) != 0) {
        memcpy(msg, err->msg, sizeof(msg));
        snprintf(err->msg, sizeof(err->msg), "block %zu: %.200s", index,
                 msg);
    }

    return err->rc;
}


avs_rc_t
avs_upload_reframe(avs_upload_t *u, avs_codec_t codec, int level,
    const uint8_t sync[AVS_SYNC_SIZE], const avs_limits_t *lim,
    size_t *budget, avs_err_t *err)
{
    avs_ocf_block_t  b;
    avs_buf_t        plain, packed;
    avs_rc_t         rc;
    uint64_t         items, room;
    size_t           pos, index;

    plain = avs_upload_scratch;
    plain.len = 0;
    plain.limit = 0;
    memset(&packed, 0, sizeof(packed));

    pos = u->header.header_len;
    index = 0;
    items = lim->max_upload;

    /*
     * Blocks kept in their codec take as many bytes as in the upload: one
     * allocation instead of the buffer's doublings.  Only a hint for
     * blocks compressed again.
     */
    if (avs_buf_reserve(&u->blocks, u->file_len - pos) != AVS_OK) {
        return avs_err_set(err, AVS_ENOMEM, "out of memory");
    }

    for ( ;; ) {
        rc = avs_ocf_next_block(u->file, u->file_len, &u->header, &pos,
                                &index, &b, err);
        if (rc == AVS_DONE) {
            rc = AVS_OK;
            break;
        }

        if (rc != AVS_OK) {
            break;
        }

        if ((uint64_t) b.count > lim->max_records - u->records) {
            rc = avs_err_set(err, AVS_ETOOLARGE,
                             "block %zu: more than %llu records", b.index,
                             (unsigned long long) lim->max_records);
            break;
        }

        room = lim->max_upload - u->decompressed;
        plain.len = 0;

        rc = avs_codec_decompress(u->header.codec, b.data.p, b.data.n,
                                  (budget != NULL && *budget < room)
                                  ? *budget : room,
                                  &plain, err);
        if (rc == AVS_ETOOLARGE && budget != NULL && *budget < room) {
            rc = AVS_DONE;          /* past the budget, not the limit */
            break;
        }

        if (rc != AVS_OK) {
            if (rc == AVS_ETOOLARGE) {
                avs_err_set(err, rc, "block %zu: upload decompresses to "
                            "more than %zu bytes", b.index, lim->max_upload);
            } else {
                avs_upload_block_error(err, b.index);
            }
            break;
        }

        rc = avs_walker_check(u->schema->walker, plain.data, plain.len,
                              b.count, lim, &items, err);
        if (rc != AVS_OK) {
            avs_upload_block_error(err, b.index);
            break;
        }

        u->records += b.count;
        u->decompressed += plain.len;
        u->nblocks++;

        if (budget != NULL) {
            *budget -= plain.len;
        }

        if (codec == u->header.codec) {
            rc = avs_ocf_write_block(&u->blocks, b.count, b.data.p, b.data.n,
                                     sync);

        } else {
            packed.len = 0;
            rc = avs_codec_compress(codec, level, plain.data, plain.len,
                                    &packed, err);
            if (rc == AVS_OK) {
                rc = avs_ocf_write_block(&u->blocks, b.count, packed.data,
                                         packed.len, sync);
            }
        }

        if (rc != AVS_OK) {
            avs_err_set(err, rc, "block %zu: cannot re-frame: %s", b.index,
                        avs_rc_name(rc));
            break;
        }
    }

    avs_upload_scratch_keep(&plain);
    avs_buf_free(&packed);

    return rc;
}


void
avs_upload_free(avs_upload_t *u, avs_schema_cache_t *cache)
{
    if (u->schema != NULL) {
        avs_schema_release(cache, u->schema);
        u->schema = NULL;
    }

    avs_buf_free(&u->blocks);
}
