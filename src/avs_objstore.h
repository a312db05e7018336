/*
 * Object stores the archiver writes to.  One interface, two backends: file:
 * (a local directory) and s3:// (S3, R2, MinIO, path-style, SigV4).
 * Keys are relative to the store's prefix and are built by the caller from
 * validated names; they are checked once more here.  Every function can
 * wait on disk or network: call them off the event loop.
 */

#ifndef AVS_OBJSTORE_H
#define AVS_OBJSTORE_H

#include "avs_base.h"

#define AVS_ETAG_SIZE  128

typedef struct avs_objstore_s  avs_objstore_t;

typedef struct {
    const char  *url;           /* "file:/abs/dir" or "s3://bucket/prefix" */
    const char  *endpoint;      /* s3 */
    const char  *region;        /* s3 */
    const char  *credentials;   /* s3: path of the credentials file */
    unsigned     timeout_ms;
} avs_objstore_conf_t;

avs_rc_t avs_objstore_open(const avs_objstore_conf_t *conf,
    avs_objstore_t **out, avs_err_t *err);
void avs_objstore_close(avs_objstore_t *os);

/*
 * Stores the local file at path under key, atomically: readers see the
 * whole object or none.  Storing the same key again replaces it (the
 * archiver only ever does so with the same bytes).  etag gets the store's
 * tag of the object, sha256 the hex SHA-256 of its bytes.
 */
avs_rc_t avs_objstore_put_file(avs_objstore_t *os, const char *key,
    const char *path, char etag[AVS_ETAG_SIZE], char sha256[65],
    avs_err_t *err);

/* AVS_OK with the size and tag, AVS_DONE when there is no such object. */
avs_rc_t avs_objstore_head(avs_objstore_t *os, const char *key,
    uint64_t *size, char etag[AVS_ETAG_SIZE], avs_err_t *err);

/* Appends exactly length bytes of the object from offset to out. */
avs_rc_t avs_objstore_get_range(avs_objstore_t *os, const char *key,
    uint64_t offset, uint64_t length, avs_buf_t *out, avs_err_t *err);

/* Removes the object; an object already gone is not an error. */
avs_rc_t avs_objstore_delete(avs_objstore_t *os, const char *key,
    avs_err_t *err);

#endif /* AVS_OBJSTORE_H */
