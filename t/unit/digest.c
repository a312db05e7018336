/*
 * Unit tests of avs_digest, the SHA-256 and MD5 of one stream: the
 * vectors of RFC 1321 (MD5) and FIPS 180-2's examples (SHA-256, the
 * million "a" included), then random data fed in pieces of every size,
 * held against OpenSSL's one-shot digests, for the one-pass code and for
 * the OpenSSL code behind the same interface.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "avs_digest.h"
#include "tap.h"


typedef struct {
    const char  *text;
    size_t       repeat;
    const char  *md5;
    const char  *sha256;
} vector_t;


static const vector_t  vectors[] = {
    { "", 1, "d41d8cd98f00b204e9800998ecf8427e",
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
    { "a", 1, "0cc175b9c0f1b6a831c399e269772661",
      "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb" },
    { "abc", 1, "900150983cd24fb0d6963f7d28e17f72",
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
    { "message digest", 1, "f96b697d7cb7938d525a2f31aaf161d0",
      "f7846f55cf23e14eebeab5b4e1550cad5b509e3348fbc4efa3a1413d393cb650" },
    { "abcdefghijklmnopqrstuvwxyz", 1, "c3fcd3d76192e4007dfb496cca67e13b",
      "71c480df93d6ae2f1efad1447c66c9525e316218cf51fc8d9ed832f2daf18b73" },
    { "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 1,
      "d174ab98d277d9f5a5611c2c9f419d9f",
      "db4bfcbd4da0cd85a60c3c37d3fbd8805c77f15fc6b1fdfe614ee0a7c8fdb4c0" },
    { "1234567890", 8, "57edf4a22be3c955ac49da2e2107b67a",
      "f371bc4a311f2b009eef952dd83ca80e2b60026c8e935592d0f9c308453c813e" },
    { "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
      "8215ef0796a20bcaaae116d3876c664a",
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
    { "a", 1000000, "7707d6ae4e027c70eea2a935c2296f21",
      "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0" },
};


static void
hex(const unsigned char *p, size_t n, char *out)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        sprintf(out + 2 * i, "%02x", p[i]);
    }

    out[2 * n] = '\0';
}


/* OpenSSL's one-shot digests of p[0..n), as hex. */
static void
reference(const uint8_t *p, size_t n, char md5[AVS_MD5_HEX_SIZE],
    char sha256[AVS_SHA256_HEX_SIZE])
{
    unsigned int   len;
    unsigned char  md[EVP_MAX_MD_SIZE];

    EVP_Digest(p, n, md, &len, EVP_md5(), NULL);
    hex(md, len, md5);
    EVP_Digest(p, n, md, &len, EVP_sha256(), NULL);
    hex(md, len, sha256);
}


/*
 * Digests p[0..n) fed in pieces: of size step, or of pseudo-random sizes
 * up to 300 bytes when step is 0.
 */
static int
digest(unsigned flags, const uint8_t *p, size_t n, size_t step,
    char md5[AVS_MD5_HEX_SIZE], char sha256[AVS_SHA256_HEX_SIZE])
{
    size_t         off, k;
    unsigned       seed;
    avs_digest_t  *d;

    d = avs_digest_new(flags);
    if (d == NULL) {
        return 0;
    }

    seed = (unsigned) n;

    for (off = 0; off < n; off += k) {
        seed = seed * 1103515245 + 12345;
        k = step ? step : (seed >> 8) % 301;
        k = (k < n - off) ? k : n - off;

        if (!avs_digest_update(d, p + off, k)) {
            avs_digest_free(d);
            return 0;
        }
    }

    k = avs_digest_final(d, sha256, md5);
    avs_digest_free(d);

    return (int) k;
}


static void
test_vectors(unsigned flags, const char *mode)
{
    size_t           i, j, len;
    uint8_t         *buf;
    char             md5[AVS_MD5_HEX_SIZE], sha[AVS_SHA256_HEX_SIZE];
    const vector_t  *v;

    for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        v = &vectors[i];
        len = strlen(v->text);
        buf = malloc(len * v->repeat + 1);

        for (j = 0; j < v->repeat; j++) {
            memcpy(buf + j * len, v->text, len);
        }

        ok(digest(flags | AVS_DIGEST_MD5, buf, len * v->repeat, 0, md5, sha),
           "%s: \"%.20s\" x %zu digested", mode, v->text, v->repeat);
        is_str(md5, v->md5, "%s: MD5 of \"%.20s\" x %zu", mode, v->text,
               v->repeat);
        is_str(sha, v->sha256, "%s: SHA-256 of \"%.20s\" x %zu", mode,
               v->text, v->repeat);

        free(buf);
    }
}


/*
 * Every length from 0 to 1 100 (all the paddings: the last block with
 * room for the length or not, and the boundaries of 64), fed whole, a
 * byte at a time and in random pieces; then 1 MiB in random pieces.
 */
static void
test_against_openssl(unsigned flags, const char *mode)
{
    int       bad_md5, bad_sha, failed;
    size_t    n, s;
    uint8_t  *buf;
    char      md5[AVS_MD5_HEX_SIZE], sha[AVS_SHA256_HEX_SIZE];
    char      want_md5[AVS_MD5_HEX_SIZE], want_sha[AVS_SHA256_HEX_SIZE];

    static const size_t  steps[] = { (size_t) -1, 1, 0, 64, 63, 65 };

    buf = malloc(1 << 20);
    for (n = 0; n < 1 << 20; n++) {
        buf[n] = (uint8_t) (rand() >> 7);
    }

    for (s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
        bad_md5 = bad_sha = failed = 0;

        for (n = 0; n <= 1100; n++) {
            reference(buf + 1, n, want_md5, want_sha);

            if (!digest(flags | AVS_DIGEST_MD5, buf + 1, n,
                        steps[s] == (size_t) -1 ? n + 1 : steps[s], md5,
                        sha))
            {
                failed++;
                continue;
            }

            bad_md5 += strcmp(md5, want_md5) != 0;
            bad_sha += strcmp(sha, want_sha) != 0;
        }

        is_int(failed + bad_md5 + bad_sha, 0,
               "%s: lengths 0-1100 in pieces of %zd: as OpenSSL "
               "(failed %d, MD5 %d, SHA-256 %d differ)", mode,
               (ssize_t) steps[s], failed, bad_md5, bad_sha);
    }

    reference(buf, 1 << 20, want_md5, want_sha);
    ok(digest(flags | AVS_DIGEST_MD5, buf, 1 << 20, 0, md5, sha)
       && strcmp(md5, want_md5) == 0 && strcmp(sha, want_sha) == 0,
       "%s: 1 MiB in random pieces: as OpenSSL", mode);

    /* the SHA-256 alone: no MD5 is given */
    md5[0] = 'x';
    ok(digest(flags, buf, 4099, 0, md5, sha) && md5[0] == '\0'
       && strcmp(sha, (reference(buf, 4099, want_md5, want_sha), want_sha))
          == 0,
       "%s: without AVS_DIGEST_MD5, the SHA-256 and an empty MD5", mode);

    free(buf);
}


int
main(void)
{
    int            one_pass;
    avs_digest_t  *d;

    srand(20261121);

    d = avs_digest_new(AVS_DIGEST_MD5);
    one_pass = avs_digest_one_pass(d);
    avs_digest_free(d);

#if defined(__x86_64__)
    {
        unsigned  a, b, c, d;

        is_int(one_pass, __get_cpuid_count(7, 0, &a, &b, &c, &d)
                         && (b & (1u << 29)),
               "the one-pass code runs where the CPU has the SHA "
               "extensions");
    }
#endif

    d = avs_digest_new(AVS_DIGEST_MD5 | AVS_DIGEST_OPENSSL);
    ok(!avs_digest_one_pass(d), "AVS_DIGEST_OPENSSL: OpenSSL's code");
    avs_digest_free(d);

    d = avs_digest_new(0);
    ok(!avs_digest_one_pass(d), "the SHA-256 alone: OpenSSL's code");
    avs_digest_free(d);

    if (!one_pass) {
        printf("# this CPU has no SHA extensions: one pass not tested\n");
    }

    test_vectors(0, one_pass ? "one pass" : "default");
    test_vectors(AVS_DIGEST_OPENSSL, "OpenSSL");
    test_against_openssl(0, one_pass ? "one pass" : "default");
    test_against_openssl(AVS_DIGEST_OPENSSL, "OpenSSL");

    return done_testing();
}
