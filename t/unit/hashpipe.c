/*
 * Unit tests of the hash pipe: whatever the sizes of the pieces fed (none,
 * one byte, a slot's worth and one more, many slots at once), the digest
 * is OpenSSL's digest of all the bytes in one call; a pipe finishes once;
 * a pipe freed before it finished stops its helper.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "avs_hashpipe.h"

#define SLOT   (256 * 1024)
#define TOTAL  (5 * 1024 * 1024 + 12345)


static uint8_t  data[TOTAL];


/* The digest of data[0..n) in one call, as hex. */
static void
digest_once(const EVP_MD *md, size_t n, char *hex)
{
    unsigned char  d[EVP_MAX_MD_SIZE];
    unsigned int   len, i;

    EVP_Digest(data, n, d, &len, md, NULL);

    for (i = 0; i < len; i++) {
        sprintf(hex + 2 * i, "%02x", d[i]);
    }
}


/* The digest of data[0..n) fed through a pipe in pieces of sizes[], as hex. */
static int
digest_piped(const EVP_MD *md, size_t n, const size_t *sizes,
    size_t nsizes, char *hex)
{
    avs_hashpipe_t  *hp;
    unsigned char    d[EVP_MAX_MD_SIZE];
    unsigned int     len, i;
    size_t           off, k, j;
    int              rc;

    hp = avs_hashpipe_start(md);
    if (hp == NULL) {
        return -1;
    }

    rc = 0;

    for (off = 0, j = 0; off < n && rc == 0; off += k, j++) {
        k = sizes[j % nsizes];
        k = (k < n - off) ? k : n - off;
        rc = avs_hashpipe_feed(hp, data + off, k);
    }

    if (rc == 0) {
        rc = avs_hashpipe_finish(hp, d, &len);
    }

    if (rc == 0) {
        for (i = 0; i < len; i++) {
            sprintf(hex + 2 * i, "%02x", d[i]);
        }

        ok(avs_hashpipe_finish(hp, d, &len) == -1, "finishes once only");
    }

    avs_hashpipe_free(hp);

    return rc;
}


int
main(void)
{
    static const size_t  odd[] = { 0, 1, 1000, SLOT - 1, SLOT, SLOT + 1,
                                   3 * SLOT + 7, 16384 };
    static const size_t  whole[] = { TOTAL };
    static const size_t  tiny[] = { 7 };
    avs_hashpipe_t      *hp;
    uint32_t             x;
    size_t               i;
    char                 want[2 * EVP_MAX_MD_SIZE + 1];
    char                 got[2 * EVP_MAX_MD_SIZE + 1];

    for (x = 2463534242u, i = 0; i < TOTAL; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data[i] = (uint8_t) x;
    }

    digest_once(EVP_md5(), TOTAL, want);
    ok(digest_piped(EVP_md5(), TOTAL, odd, 8, got) == 0, "md5: fed");
    is_str(got, want, "md5 of pieces of every size is md5 of the whole");

    ok(digest_piped(EVP_md5(), TOTAL, whole, 1, got) == 0, "md5: fed whole");
    is_str(got, want, "md5 of one piece of many slots");

    digest_once(EVP_sha256(), TOTAL, want);
    ok(digest_piped(EVP_sha256(), TOTAL, odd, 8, got) == 0, "sha256: fed");
    is_str(got, want, "sha256 of pieces of every size");

    digest_once(EVP_md5(), 100000, want);
    ok(digest_piped(EVP_md5(), 100000, tiny, 1, got) == 0, "md5: tiny");
    is_str(got, want, "md5 of 7-byte pieces, less than a slot");

    digest_once(EVP_md5(), SLOT, want);
    ok(digest_piped(EVP_md5(), SLOT, odd + 4, 1, got) == 0, "md5: a slot");
    is_str(got, want, "md5 of exactly one slot");

    digest_once(EVP_md5(), 0, want);
    ok(digest_piped(EVP_md5(), 0, odd, 8, got) == 0, "md5: nothing fed");
    is_str(got, want, "md5 of nothing");

    /* freed before finishing: the helper stops, nothing hangs */

    hp = avs_hashpipe_start(EVP_md5());
    ok(hp != NULL, "a pipe starts");
    ok(avs_hashpipe_feed(hp, data, TOTAL) == 0, "fed without finishing");
    avs_hashpipe_free(hp);
    ok(1, "freed before finishing");
    avs_hashpipe_free(NULL);

    return done_testing();
}
