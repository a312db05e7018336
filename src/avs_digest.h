/*
 * The SHA-256 of a stream of bytes and, when asked, its MD5 as well,
 * computed together.
 *
 * An S3 PUT over plain HTTP needs both of the bytes it sends: the SHA-256
 * for the catalog, the MD5 to check the store's ETag.  MD5 is one long
 * chain of dependent steps that leaves most of the CPU's units idle; on a
 * CPU with the SHA extensions the SHA-256 rounds are interleaved with the
 * MD5 steps and run in those gaps, so that both cost about what OpenSSL's
 * MD5 alone costs.  Elsewhere, and for the SHA-256 alone, both are
 * OpenSSL's.
 *
 * A digest is used by one thread at a time.
 */

#ifndef AVS_DIGEST_H
#define AVS_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include "avs_base.h"
#include "avs_sigv4.h"


#define AVS_MD5_HEX_SIZE     33         /* 32 hex digits and a NUL */

#define AVS_DIGEST_MD5       0x01       /* the MD5 as well */
#define AVS_DIGEST_OPENSSL   0x02       /* OpenSSL's code even where the
                                           one-pass code could run */

typedef struct avs_digest_s  avs_digest_t;


/* A digest of no bytes yet, NULL when out of memory. */
avs_digest_t *avs_digest_new(unsigned flags);

/* Adds n bytes; 1 on success. */
int avs_digest_update(avs_digest_t *d, const void *p, size_t n);

/*
 * Ends the digest: the lower-case hex SHA-256, and the MD5 into md5 when
 * the digest has one and md5 is not NULL; 1 on success.  The digest takes
 * no more bytes after it.
 */
int avs_digest_final(avs_digest_t *d, char sha256[AVS_SHA256_HEX_SIZE],
    char md5[AVS_MD5_HEX_SIZE]);

/* Whether the digest runs the one-pass code (for the tests). */
int avs_digest_one_pass(const avs_digest_t *d);

void avs_digest_free(avs_digest_t *d);

#endif /* AVS_DIGEST_H */
