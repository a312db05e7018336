/*
 * Object stores the archiver writes to and the read path reads from.  One
 * interface, two backends: file: (a local directory) and s3:// (S3, R2,
 * MinIO, Ceph: path-style addressing, every request signed with AWS
 * Signature Version 4).  docs/object-stores.md describes the URL forms,
 * the credentials file and what an ETag means for each backend.
 *
 * Keys are relative to the store's prefix ("own_ship/2026-11-20/<fp>/
 * node-1-7.avro") and are built by the caller from validated names; they
 * are checked once more here, and a bad one is AVS_EINTERNAL.
 *
 * Every function but open, close and sign_get can wait on disk or network:
 * call them from a thread of nginx's thread pool, never from the event
 * loop.  A store is read-only once opened: several threads may use it at
 * once (each S3 request has its own libcurl handle).  No error message
 * ever holds a secret.
 */

#ifndef AVS_OBJSTORE_H
#define AVS_OBJSTORE_H

#include <sys/types.h>

#include "avs_base.h"
#include "avs_sigv4.h"

#define AVS_ETAG_SIZE          128
#define AVS_OBJSTORE_KEY_MAX   1024

/*
 * s3:// objects carry who wrote them in this metadata header, so that a
 * later put of the same job can tell its own object from another
 * writer's under the same key (file: keeps no writer).
 */
#define AVS_WRITER_HEADER      "x-amz-meta-avro-writer"
#define AVS_WRITER_SIZE        64
#define AVS_OBJSTORE_URI_MAX   4096

typedef struct avs_objstore_s  avs_objstore_t;

typedef struct {
    const char  *url;           /* "file:/abs/dir" or "s3://bucket/prefix" */
    const char  *endpoint;      /* s3: http(s)://host[:port] */
    const char  *region;        /* s3: default us-east-1 (R2: auto) */
    const char  *credentials;   /* s3: path of the credentials file */
    const char  *ca_file;       /* s3: CA certificates (PEM) to trust for
                                   https, NULL: the system's */
    unsigned     timeout_ms;    /* s3: connect, and longest stall */
    int          signed_payload; /* s3: PUT only hashed, signed files */
} avs_objstore_conf_t;


/*
 * A signed GET for the read path, where nginx sends the request itself (a
 * subrequest through proxy_pass): it must carry exactly these values.
 *
 * s3://   path            the request URI, encoded: "/bucket/prefix/key"
 *         host            the Host header
 *         amz_date        the x-amz-date header
 *         content_sha256  the x-amz-content-sha256 header (empty payload)
 *         authorization   the Authorization header
 *         security_token  x-amz-security-token, when the credentials have
 *                         a session token (else NULL)
 *         and the Range header, unchanged, when one was signed.
 * file:   path            the object's path relative to the directory
 *                         ("own_ship/.../node-1-7.avro", not encoded), for
 *                         an alias location; the other fields are empty.
 *
 * A signature is valid for 15 minutes.
 */
typedef struct {
    char         path[AVS_OBJSTORE_URI_MAX];
    char         host[256];
    char         amz_date[AVS_SIGV4_DATE_SIZE];
    char         content_sha256[AVS_SHA256_HEX_SIZE];
    char         authorization[AVS_SIGV4_AUTH_SIZE];
    const char  *security_token;
} avs_objstore_signed_t;


/*
 * Parses and checks the configuration and, for s3://, reads the
 * credentials file and the ca= file.  A bad configuration is
 * AVS_EMALFORMED.  Touches neither the directory nor the network, nor
 * libcurl (set up by the first request, in the process that makes it):
 * nginx's master opens the store at configuration, as the user that may
 * read those files, and its workers inherit it.
 */
avs_rc_t avs_objstore_open(const avs_objstore_conf_t *conf,
    avs_objstore_t **out, avs_err_t *err);
void avs_objstore_close(avs_objstore_t *os);

/* 1 for an s3:// store, 0 for file:. */
int avs_objstore_is_s3(const avs_objstore_t *os);
int avs_objstore_streams(const avs_objstore_t *os);

/* Whether the store keeps the writer a put names (s3://, not file:). */
int avs_objstore_keeps_writer(const avs_objstore_t *os);

/*
 * Stores the local file at path under key, atomically: readers see the
 * whole object or none.  Storing the same key again replaces it (the
 * archiver only ever does so with the same bytes).  etag gets the store's
 * tag of the object (file: its SHA-256; S3: the ETag header without its
 * quotes), sha256 the hex SHA-256 of its bytes.  Any failure, including an
 * answer lost after the store kept the object, is AVS_ESTORE: HEAD tells
 * whether the object is there.
 */
avs_rc_t avs_objstore_put_file(avs_objstore_t *os, const char *key,
    const char *path, char etag[AVS_ETAG_SIZE], char sha256[65],
    avs_err_t *err);

/*
 * Where to build a file that put_temp is to store under key: for file:,
 * the object's own directory (made if missing), so that the put is a
 * rename on the same filesystem and the bytes are written once; for
 * s3://, dir is set to "" and the caller builds where it likes.
 */
avs_rc_t avs_objstore_temp_dir(avs_objstore_t *os, const char *key,
    char *dir, size_t size, avs_err_t *err);

/*
 * Stores a file the caller built and flushed (fsync) and whose hex SHA-256
 * it computed while writing it, as put_file does, without reading it
 * again to hash it.  file: renames it into place (with mode 0644) and
 * flushes the directory: the file is gone from path afterwards; one on
 * another filesystem is copied instead, and stays.  s3:// PUTs it signed
 * with sha256, and leaves it.
 *
 * create_only: an object already under key is left as it is, and the put
 * fails with AVS_ECONFLICT having stored nothing (file: a rename that
 * does not replace; s3://: "If-None-Match: *", which S3, R2 and MinIO
 * answer 412, or 409 to a conditional PUT racing another; a store that
 * ignores the header replaces the object).  writer (or NULL): s3:// sends
 * it as AVS_WRITER_HEADER, which head_writer gives back; file: ignores it.
 */
avs_rc_t avs_objstore_put_temp(avs_objstore_t *os, const char *key,
    const char *path, const char *sha256, int create_only,
    const char *writer, char etag[AVS_ETAG_SIZE], avs_err_t *err);

/*
 * Produces the next bytes of a streamed object into buf (at most len):
 * the number written, 0 only once all were given, -1 to abort the PUT.
 */
typedef ssize_t (*avs_objstore_read_pt)(void *data, uint8_t *buf,
    size_t len);

/*
 * s3:// only: PUTs exactly size bytes that read produces while the request
 * goes, with no file in between, and gives their SHA-256 (lower-case
 * hex).  The payload is signed UNSIGNED-PAYLOAD (its hash is known only
 * at the end).  Over plain HTTP it is checked instead by the answer: the
 * ETag of a single-part PUT must be the MD5 of the bytes sent, or the PUT
 * fails (AVS_ESTORE) as a corrupted transfer.  A read that fails or ends
 * early aborts the request before its body is whole (a store keeps no
 * object of a PUT shorter than its Content-Length).  create_only and
 * writer as for put_temp.
 */
avs_rc_t avs_objstore_put_stream(avs_objstore_t *os, const char *key,
    uint64_t size, int create_only, const char *writer,
    avs_objstore_read_pt read, void *data,
    char etag[AVS_ETAG_SIZE], char sha256[AVS_SHA256_HEX_SIZE],
    avs_err_t *err);

/*
 * AVS_OK with the size and the tag put_file gave, AVS_DONE when there is
 * no such object.  (file: hashes the object to give its tag.)
 */
avs_rc_t avs_objstore_head(avs_objstore_t *os, const char *key,
    uint64_t *size, char etag[AVS_ETAG_SIZE], avs_err_t *err);

/*
 * head, and the writer the object's put named (AVS_WRITER_SIZE bytes,
 * "" when it named none, as every file: object).
 */
avs_rc_t avs_objstore_head_writer(avs_objstore_t *os, const char *key,
    uint64_t *size, char etag[AVS_ETAG_SIZE], char *writer, avs_err_t *err);

/*
 * Appends exactly length bytes of the object from offset to out, or fails
 * (AVS_ESTORE) leaving out as it was: a missing object, a range past its
 * end, an S3 answer other than 206 with exactly length bytes.
 */
avs_rc_t avs_objstore_get_range(avs_objstore_t *os, const char *key,
    uint64_t offset, uint64_t length, avs_buf_t *out, avs_err_t *err);

/* Removes the object; an object already gone is not an error. */
avs_rc_t avs_objstore_delete(avs_objstore_t *os, const char *key,
    avs_err_t *err);

/*
 * Signs a GET of key now, with the Range header value range ("bytes=0-9")
 * or without (NULL).  Never blocks.
 */
avs_rc_t avs_objstore_sign_get(avs_objstore_t *os, const char *key,
    const char *range, avs_objstore_signed_t *out, avs_err_t *err);

#endif /* AVS_OBJSTORE_H */
