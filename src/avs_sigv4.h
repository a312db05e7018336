/*
 * AWS Signature Version 4, the S3 flavour, for the requests the object
 * store sends: the canonical request, the string to sign, the signing key
 * and the value of the Authorization header; plus the SHA-256 helpers that
 * the signature needs (payload hashes of buffers and of files).
 *
 * S3 differs from the other AWS services in one point that matters here:
 * the path is URI-encoded once and never normalised ("//", "." and ".."
 * are kept as they are), because object keys may contain them.
 *
 * Nothing here keeps state: every function may run in any thread.
 */

#ifndef AVS_SIGV4_H
#define AVS_SIGV4_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "avs_base.h"


#define AVS_SHA256_HEX_SIZE     65      /* 64 hex digits and a NUL */
#define AVS_SIGV4_DATE_SIZE     17      /* "20150830T123600Z" and a NUL */
#define AVS_SIGV4_AUTH_SIZE     1024    /* room for any Authorization value */
#define AVS_SIGV4_MAX_HEADERS   32
#define AVS_SIGV4_MAX_PARAMS    64
#define AVS_SIGV4_SECRET_MAX    256

/* The payload hash of an empty body, and the one S3 accepts unhashed. */
#define AVS_SIGV4_EMPTY_SHA256                                              \
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define AVS_SIGV4_UNSIGNED_PAYLOAD  "UNSIGNED-PAYLOAD"


typedef struct {
    const char  *name;
    const char  *value;
} avs_sigv4_header_t;


/*
 * One request to sign.
 *
 * path     the absolute path as the object is named, NOT encoded: the
 *          signer encodes every byte but the unreserved ones (A-Z a-z 0-9
 *          - . _ ~) and '/', once, and normalises nothing.  The request
 *          line must carry the same encoding (avs_sigv4_uri_encode() with
 *          keep_slash set gives it).
 * query    the query string as sent, without '?', or NULL: every name and
 *          value is percent-decoded, then encoded again, then the pairs are
 *          sorted; '+' is a literal plus, not a space.
 * headers  every header to sign, host and x-amz-date included (x-amz-
 *          content-sha256 too for S3); names in any case; a name given
 *          several times is signed as the values joined by ',' in order.
 *          Values are trimmed and inner runs of white space become one
 *          space, as the algorithm wants.
 * payload_sha256  hex SHA-256 of the body, or AVS_SIGV4_UNSIGNED_PAYLOAD.
 * amz_date the request time, "YYYYMMDDTHHMMSSZ" (the x-amz-date value).
 */
typedef struct {
    const char                *method;
    const char                *path;
    const char                *query;
    const avs_sigv4_header_t  *headers;
    size_t                     nheaders;
    const char                *payload_sha256;
    const char                *access_key;
    const char                *secret_key;
    const char                *region;
    const char                *service;
    const char                *amz_date;
} avs_sigv4_req_t;


/*
 * Writes the Authorization header value ("AWS4-HMAC-SHA256 Credential=...,
 * SignedHeaders=..., Signature=...") into authorization[size].  A request
 * that cannot be signed (no host header, a malformed date, too many
 * headers, a value that does not fit) is AVS_EINTERNAL: requests are built
 * by the server, not by clients.  Messages never contain the secret.
 */
avs_rc_t avs_sigv4_sign(const avs_sigv4_req_t *req, char *authorization,
    size_t size, avs_err_t *err);

/*
 * The intermediate texts, for tests and for debugging a store that refuses
 * signatures.  out receives the text followed by a NUL that len does not
 * count.
 */
avs_rc_t avs_sigv4_canonical_request(const avs_sigv4_req_t *req,
    avs_buf_t *out, avs_err_t *err);
avs_rc_t avs_sigv4_string_to_sign(const avs_sigv4_req_t *req,
    avs_buf_t *out, avs_err_t *err);

/*
 * Appends s[0..n) to out URI-encoded the S3 way: unreserved bytes as they
 * are, '/' as it is when keep_slash is set, every other byte as %XX with
 * upper-case hex digits.
 */
avs_rc_t avs_sigv4_uri_encode(avs_buf_t *out, const char *s, size_t n,
    int keep_slash);

/* Formats t (UTC) as an x-amz-date value. */
void avs_sigv4_amz_date(time_t t, char out[AVS_SIGV4_DATE_SIZE]);

/* Writes n bytes as lower-case hex followed by a NUL (2n + 1 bytes). */
void avs_sigv4_hex(const unsigned char *p, size_t n, char *out);

/* Lower-case hex SHA-256 of a buffer. */
avs_rc_t avs_sha256_hex(const void *p, size_t n,
    char out[AVS_SHA256_HEX_SIZE]);

/*
 * An incremental SHA-256, for bytes hashed as they are written.  new gives
 * NULL when out of memory; update and final_hex give 1 on success; final
 * ends the hash (free it after).
 */
typedef struct avs_sha256_s  avs_sha256_t;

avs_sha256_t *avs_sha256_new(void);
int avs_sha256_update(avs_sha256_t *h, const void *p, size_t n);
int avs_sha256_final_hex(avs_sha256_t *h, char out[AVS_SHA256_HEX_SIZE]);
void avs_sha256_free(avs_sha256_t *h);

/*
 * Lower-case hex SHA-256 of what fd holds from its current offset to its
 * end, read in chunks (memory stays small whatever the size); *size (if
 * not NULL) receives the number of bytes hashed.
 */
avs_rc_t avs_sha256_fd_hex(int fd, char out[AVS_SHA256_HEX_SIZE],
    uint64_t *size, avs_err_t *err);

/* The same for a whole file named by path. */
avs_rc_t avs_sha256_file_hex(const char *path,
    char out[AVS_SHA256_HEX_SIZE], uint64_t *size, avs_err_t *err);

#endif /* AVS_SIGV4_H */
