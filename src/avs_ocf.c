/*
 * Avro Object Container File framing: the header (magic, metadata map,
 * sync marker) and the data blocks that follow it.  The input is an upload,
 * so no count or length read from it is used before it has been checked
 * against the bytes that are actually left; the worst a hostile file can
 * do is make us read it once.
 */

#include <inttypes.h>
#include <string.h>

#include "avs_ocf.h"


#define AVS_OCF_MAX_META  64

static const uint8_t  avs_ocf_magic[4] = { 'O', 'b', 'j', 1 };


/*
 * Reads one metadata string (a length-prefixed byte run) and returns it as
 * a slice into the input.
 */
static avs_rc_t
avs_ocf_read_bytes(const uint8_t *p, size_t n, size_t *pos, avs_slice_t *s,
    avs_err_t *err)
{
    int64_t  len;

    if (avs_read_long(p, n, pos, &len) != AVS_OK) {
        return avs_err_set(err, AVS_EMALFORMED, "header: truncated");
    }

    if (len < 0) {
        return avs_err_set(err, AVS_EMALFORMED,
                           "header: negative length %" PRId64, len);
    }

    if ((uint64_t) len > n - *pos) {
        return avs_err_set(err, AVS_EMALFORMED, "header: truncated");
    }

    s->p = p + *pos;
    s->n = (size_t) len;
    *pos += (size_t) len;

    return AVS_OK;
}


static int
avs_ocf_key_is(const avs_slice_t *key, const char *name)
{
    size_t  len;

    len = strlen(name);

    return key->n == len && memcmp(key->p, name, len) == 0;
}


/*
 * Reports a codec name we do not know, printable and shortened, because
 * the message ends up in a response body.
 */
static avs_rc_t
avs_ocf_bad_codec(const avs_slice_t *v, avs_err_t *err)
{
    char    name[33];
    size_t  i, len;

    len = v->n < sizeof(name) - 1 ? v->n : sizeof(name) - 1;

    for (i = 0; i < len; i++) {
        name[i] = (v->p[i] >= 0x20 && v->p[i] < 0x7f && v->p[i] != '\'')
                  ? (char) v->p[i] : '?';
    }

    name[len] = '\0';

    return avs_err_set(err, AVS_EUNSUPPORTED,
                       "header: unsupported codec '%s%s'", name,
                       v->n > len ? "..." : "");
}


/*
 * Reads the header of an upload.  The metadata map is walked entry by
 * entry with every count and length checked first, the two entries we
 * use are taken as slices into the input (nothing is copied), and the
 * other entries are skipped.
 */
avs_rc_t
avs_ocf_parse_header(const uint8_t *p, size_t n, const avs_limits_t *lim,
    avs_ocf_header_t *h, avs_err_t *err)
{
    size_t        pos, total, max_schema, block_start;
    int64_t       count, size, i;
    int           have_schema, have_codec;
    avs_rc_t      rc;
    avs_slice_t   key, val;

    max_schema = lim ? lim->max_schema : AVS_DEFAULT_MAX_SCHEMA;

    memset(h, 0, sizeof(*h));
    h->codec = AVS_CODEC_NULL;

    if (n < sizeof(avs_ocf_magic)) {
        return avs_err_set(err, AVS_EMALFORMED, "header: truncated");
    }

    if (memcmp(p, avs_ocf_magic, sizeof(avs_ocf_magic)) != 0) {
        return avs_err_set(err, AVS_EMALFORMED,
                           "header: not an Avro object container file "
                           "(bad magic)");
    }

    pos = sizeof(avs_ocf_magic);
    total = 0;
    have_schema = 0;
    have_codec = 0;

    /* the metadata is a map: blocks of entries, ended by an empty block */

    for ( ;; ) {
        if (avs_read_long(p, n, &pos, &count) != AVS_OK) {
            return avs_err_set(err, AVS_EMALFORMED, "header: truncated");
        }

        if (count == 0) {
            break;
        }

        size = -1;

        if (count < 0) {
            if (count == INT64_MIN) {
                return avs_err_set(err, AVS_EMALFORMED,
                                   "header: bad metadata count");
            }

            count = -count;

            if (avs_read_long(p, n, &pos, &size) != AVS_OK) {
                return avs_err_set(err, AVS_EMALFORMED, "header: truncated");
            }

            if (size < 0 || (uint64_t) size > n - pos) {
                return avs_err_set(err, AVS_EMALFORMED,
                                   "header: bad metadata block size %"
                                   PRId64, size);
            }
        }

        if ((uint64_t) count > AVS_OCF_MAX_META - total) {
            return avs_err_set(err, AVS_EMALFORMED,
                               "header: more than %d metadata entries",
                               AVS_OCF_MAX_META);
        }

        total += (size_t) count;
        block_start = pos;

        for (i = 0; i < count; i++) {
            rc = avs_ocf_read_bytes(p, n, &pos, &key, err);
            if (rc != AVS_OK) {
                return rc;
            }

            rc = avs_ocf_read_bytes(p, n, &pos, &val, err);
            if (rc != AVS_OK) {
                return rc;
            }

            if (avs_ocf_key_is(&key, "avro.schema")) {
                if (have_schema++) {
                    return avs_err_set(err, AVS_EMALFORMED,
                                       "header: duplicate avro.schema");
                }

                if (val.n > max_schema) {
                    return avs_err_set(err, AVS_ETOOLARGE,
                                       "header: schema of %zu bytes exceeds "
                                       "%zu", val.n, max_schema);
                }

                h->schema = val;

            } else if (avs_ocf_key_is(&key, "avro.codec")) {
                if (have_codec++) {
                    return avs_err_set(err, AVS_EMALFORMED,
                                       "header: duplicate avro.codec");
                }

                if (avs_codec_from_name((const char *) val.p, val.n,
                                        &h->codec)
                    != AVS_OK)
                {
                    return avs_ocf_bad_codec(&val, err);
                }
            }
        }

        if (size >= 0 && pos - block_start != (size_t) size) {
            return avs_err_set(err, AVS_EMALFORMED,
                               "header: metadata block size mismatch");
        }
    }

    if (!have_schema) {
        return avs_err_set(err, AVS_EMALFORMED, "header: no avro.schema");
    }

    if (n - pos < AVS_SYNC_SIZE) {
        return avs_err_set(err, AVS_EMALFORMED, "header: truncated");
    }

    memcpy(h->sync, p + pos, AVS_SYNC_SIZE);
    h->header_len = pos + AVS_SYNC_SIZE;

    return AVS_OK;
}


/*
 * Frames one data block: count, size, data and sync marker.  The data is
 * neither decompressed nor decoded here; a block is only accepted whole,
 * with its sync marker, so that a truncated upload never yields a partial
 * block.
 */
avs_rc_t
avs_ocf_next_block(const uint8_t *p, size_t n, const avs_ocf_header_t *h,
    size_t *pos, size_t *index, avs_ocf_block_t *b, avs_err_t *err)
{
    size_t    at, idx;
    int64_t   count, size;

    at = *pos;
    idx = *index + 1;

    if (at == n) {
        return AVS_DONE;
    }

    if (at > n) {
        return avs_err_set(err, AVS_EINTERNAL, "block %zu: position past end",
                           idx);
    }

    if (avs_read_long(p, n, &at, &count) != AVS_OK
        || avs_read_long(p, n, &at, &size) != AVS_OK)
    {
        return avs_err_set(err, AVS_EMALFORMED, "block %zu: truncated", idx);
    }

    if (count <= 0) {
        return avs_err_set(err, AVS_EMALFORMED,
                           "block %zu: record count %" PRId64, idx, count);
    }

    if (size < 0) {
        return avs_err_set(err, AVS_EMALFORMED,
                           "block %zu: negative size %" PRId64, idx, size);
    }

    if ((uint64_t) size > n - at || n - at - (size_t) size < AVS_SYNC_SIZE) {
        return avs_err_set(err, AVS_EMALFORMED, "block %zu: truncated", idx);
    }

    if (memcmp(p + at + size, h->sync, AVS_SYNC_SIZE) != 0) {
        return avs_err_set(err, AVS_EMALFORMED,
                           "block %zu: sync marker mismatch", idx);
    }

    b->index = idx;
    b->offset = *pos;
    b->count = count;
    b->data.p = p + at;
    b->data.n = (size_t) size;

    *pos = at + (size_t) size + AVS_SYNC_SIZE;
    *index = idx;

    return AVS_OK;
}


/* Appends one metadata entry: key and value as Avro bytes. */
static avs_rc_t
avs_ocf_write_meta(avs_buf_t *out, const char *key, const void *val,
    size_t len)
{
    avs_rc_t  rc;

    rc = avs_buf_append_long(out, (int64_t) strlen(key));
    if (rc == AVS_OK) {
        rc = avs_buf_append(out, key, strlen(key));
    }

    if (rc == AVS_OK) {
        rc = avs_buf_append_long(out, (int64_t) len);
    }

    if (rc == AVS_OK) {
        rc = avs_buf_append(out, val, len);
    }

    return rc;
}


/*
 * Writes the header that every file and every read response of a stream
 * starts with; the codec is always stated, even "null", so that readers
 * need not know the default.
 */
avs_rc_t
avs_ocf_write_header(avs_buf_t *out, const char *schema, size_t len,
    avs_codec_t codec, const uint8_t sync[AVS_SYNC_SIZE])
{
    size_t       start;
    const char  *name;
    avs_rc_t     rc;

    start = out->len;
    name = avs_codec_name(codec);

    rc = avs_buf_append(out, avs_ocf_magic, sizeof(avs_ocf_magic));

    if (rc == AVS_OK) {
        rc = avs_buf_append_long(out, 2);
    }

    if (rc == AVS_OK) {
        rc = avs_ocf_write_meta(out, "avro.schema", schema, len);
    }

    if (rc == AVS_OK) {
        rc = avs_ocf_write_meta(out, "avro.codec", name, strlen(name));
    }

    if (rc == AVS_OK) {
        rc = avs_buf_append_long(out, 0);
    }

    if (rc == AVS_OK) {
        rc = avs_buf_append(out, sync, AVS_SYNC_SIZE);
    }

    if (rc != AVS_OK) {
        out->len = start;
    }

    return rc;
}


/*
 * Writes one block.  A zero count is refused: the reader refuses such
 * blocks, so the writer must never make one.
 */
avs_rc_t
avs_ocf_write_block(avs_buf_t *out, int64_t count, const uint8_t *data,
    size_t n, const uint8_t sync[AVS_SYNC_SIZE])
{
    size_t    start;
    avs_rc_t  rc;

    if (count <= 0) {
        return AVS_EINTERNAL;
    }

    start = out->len;

    rc = avs_buf_append_long(out, count);

    if (rc == AVS_OK) {
        rc = avs_buf_append_long(out, (int64_t) n);
    }

    if (rc == AVS_OK) {
        rc = avs_buf_append(out, data, n);
    }

    if (rc == AVS_OK) {
        rc = avs_buf_append(out, sync, AVS_SYNC_SIZE);
    }

    if (rc != AVS_OK) {
        out->len = start;
    }

    return rc;
}
