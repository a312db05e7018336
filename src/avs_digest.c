/*
 * SHA-256 and MD5 of one stream in one pass (see avs_digest.h).
 *
 * The one-pass code follows the definitions: MD5 as RFC 1321 gives it,
 * SHA-256 as FIPS 180-4 does, its rounds and message schedule done by the
 * x86 SHA extensions (SHA256RNDS2 does two rounds, SHA256MSG1 and
 * SHA256MSG2 the two halves of the schedule of four words).  Each 64-byte
 * block goes through both: four MD5 steps, then four SHA-256 rounds,
 * sixteen times.  The unit tests hold both against OpenSSL and against
 * the published vectors.
 */

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "avs_digest.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define AVS_DIGEST_X86  1
#include <cpuid.h>
#include <immintrin.h>
#else
#define AVS_DIGEST_X86  0
#endif


struct avs_digest_s {
    int          md5_on;
    int          one_pass;
    avs_sha256_t  *sha_ctx;         /* OpenSSL's, unless one_pass */
    EVP_MD_CTX    *md5_ctx;
    uint32_t     md5[4];            /* the one-pass states */
    uint32_t     sha[8];
    uint64_t     len;               /* bytes taken */
    size_t       held;              /* bytes of a partial block in buf */
    uint8_t      buf[64];
};


#if AVS_DIGEST_X86

static int avs_digest_cpu_ok(void);
static void avs_digest_take(avs_digest_t *d, const uint8_t *in, size_t n);
static void avs_digest_blocks(uint32_t md5[4], uint32_t sha[8],
    const uint8_t *p, size_t n);
static void avs_digest_pad(avs_digest_t *d, uint8_t md5[16],
    uint8_t sha[32]);

#endif


avs_digest_t *
avs_digest_new(unsigned flags)
{
    avs_digest_t  *d;

    static const uint32_t  md5_iv[4] = {
        0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476
    };
    static const uint32_t  sha_iv[8] = {
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
    };

    d = calloc(1, sizeof(avs_digest_t));
    if (d == NULL) {
        return NULL;
    }

    d->md5_on = (flags & AVS_DIGEST_MD5) != 0;

#if AVS_DIGEST_X86
    /* SHA-256 alone is as fast in OpenSSL, which has the same extensions */
    d->one_pass = d->md5_on && !(flags & AVS_DIGEST_OPENSSL)
                  && avs_digest_cpu_ok();
#endif

    if (d->one_pass) {
        memcpy(d->md5, md5_iv, sizeof(md5_iv));
        memcpy(d->sha, sha_iv, sizeof(sha_iv));
        return d;
    }

    d->sha_ctx = avs_sha256_new();
    if (d->sha_ctx == NULL) {
        avs_digest_free(d);
        return NULL;
    }

    if (d->md5_on) {
        d->md5_ctx = EVP_MD_CTX_new();
        if (d->md5_ctx == NULL
            || EVP_DigestInit_ex(d->md5_ctx, EVP_md5(), NULL) != 1)
        {
            avs_digest_free(d);
            return NULL;
        }
    }

    return d;
}


int
avs_digest_update(avs_digest_t *d, const void *p, size_t n)
{
    if (!d->one_pass) {
        return avs_sha256_update(d->sha_ctx, p, n)
               && (d->md5_ctx == NULL
                   || EVP_DigestUpdate(d->md5_ctx, p, n) == 1);
    }

#if AVS_DIGEST_X86
    avs_digest_take(d, p, n);
#endif

    return 1;
}


int
avs_digest_final(avs_digest_t *d, char sha256[AVS_SHA256_HEX_SIZE],
    char md5[AVS_MD5_HEX_SIZE])
{
    unsigned int   len;
    unsigned char  m[EVP_MAX_MD_SIZE], s[EVP_MAX_MD_SIZE];

    sha256[0] = '\0';
    if (md5 != NULL) {
        md5[0] = '\0';
    }

    if (d->one_pass) {
#if AVS_DIGEST_X86
        avs_digest_pad(d, m, s);
        avs_sigv4_hex(s, 32, sha256);
#endif

    } else if (!avs_sha256_final_hex(d->sha_ctx, sha256)
               || (d->md5_ctx != NULL
                   && (EVP_DigestFinal_ex(d->md5_ctx, m, &len) != 1
                       || len != 16)))
    {
        return 0;
    }

    if (md5 != NULL && d->md5_on) {
        avs_sigv4_hex(m, 16, md5);
    }

    return 1;
}


int
avs_digest_one_pass(const avs_digest_t *d)
{
    return d->one_pass;
}


void
avs_digest_free(avs_digest_t *d)
{
    if (d != NULL) {
        avs_sha256_free(d->sha_ctx);
        EVP_MD_CTX_free(d->md5_ctx);
        free(d);
    }
}


#if AVS_DIGEST_X86

/*
 * The one-pass code needs SHA256RNDS2 and friends (CPUID leaf 7, EBX bit
 * 29), PSHUFB (SSSE3, leaf 1, ECX bit 9) and PBLENDW (SSE4.1, bit 19).
 */
static int
avs_digest_cpu_ok(void)
{
    unsigned  a, b, c, d;

    if (!__get_cpuid(1, &a, &b, &c, &d)
        || !(c & (1u << 9)) || !(c & (1u << 19)))
    {
        return 0;
    }

    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 29));
}


/* The one-pass update: whole blocks now, the rest held for the next. */
static void
avs_digest_take(avs_digest_t *d, const uint8_t *in, size_t n)
{
    size_t  k;

    d->len += n;

    if (d->held > 0) {
        k = 64 - d->held;
        k = (n < k) ? n : k;
        memcpy(d->buf + d->held, in, k);
        d->held += k;
        in += k;
        n -= k;

        if (d->held < 64) {
            return;
        }

        avs_digest_blocks(d->md5, d->sha, d->buf, 1);
        d->held = 0;
    }

    avs_digest_blocks(d->md5, d->sha, in, n / 64);

    k = n % 64;
    memcpy(d->buf, in + n - k, k);
    d->held = k;
}


/*
 * The padding of the last block(s): the same bytes for both, but MD5
 * counts the bits little-endian and SHA-256 big-endian, so each runs on
 * its own copy while the other's state is thrown away.
 */
static void
avs_digest_pad(avs_digest_t *d, uint8_t md5[16], uint8_t sha[32])
{
    int       i;
    size_t    n;
    uint8_t   for_md5[128], for_sha[128];
    uint32_t  md5_junk[4], sha_junk[8];
    uint64_t  bits;

    bits = d->len * 8;
    n = (d->held < 56) ? 64 : 128;

    memset(for_md5, 0, sizeof(for_md5));
    memcpy(for_md5, d->buf, d->held);
    for_md5[d->held] = 0x80;
    memcpy(for_sha, for_md5, sizeof(for_sha));

    for (i = 0; i < 8; i++) {
        for_md5[n - 8 + i] = (uint8_t) (bits >> (8 * i));
        for_sha[n - 1 - i] = (uint8_t) (bits >> (8 * i));
    }

    memcpy(sha_junk, d->sha, sizeof(sha_junk));
    avs_digest_blocks(d->md5, sha_junk, for_md5, n / 64);

    memcpy(md5_junk, d->md5, sizeof(md5_junk));
    avs_digest_blocks(md5_junk, d->sha, for_sha, n / 64);

    memcpy(md5, d->md5, 16);        /* MD5 words are little-endian */

    for (i = 0; i < 8; i++) {
        sha[4 * i] = (uint8_t) (d->sha[i] >> 24);
        sha[4 * i + 1] = (uint8_t) (d->sha[i] >> 16);
        sha[4 * i + 2] = (uint8_t) (d->sha[i] >> 8);
        sha[4 * i + 3] = (uint8_t) d->sha[i];
    }
}


/* MD5's sines: T[i] = floor(2^32 * |sin(i + 1)|) (RFC 1321). */
static const uint32_t  avs_md5_t[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a,
    0xa8304613, 0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be,
    0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340,
    0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8,
    0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
    0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
    0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92,
    0xffeff47d, 0x85845dd1, 0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1,
    0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391
};

static const unsigned char  avs_md5_shift[4][4] = {
    { 7, 12, 17, 22 }, { 5, 9, 14, 20 }, { 4, 11, 16, 23 }, { 6, 10, 15, 21 }
};

/*
 * SHA-256's cube roots of the first 64 primes (FIPS 180-4), aligned for
 * loads of four.
 */
static const uint32_t  avs_sha_k[64] __attribute__((aligned(16))) = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
};


#define AVS_ROTL(x, c)  (((x) << (c)) | ((x) >> (32 - (c))))

/*
 * MD5 step i of 64 on the state v, whose words rotate one place a step.
 * Inlined into a loop the compiler unrolls, i is a constant, and so are
 * the round, the word, the shift and the sine.  The round 2 function is
 * written with an addition (its two terms share no bit), which leaves
 * the processor more of it to do in parallel.
 */
static inline __attribute__((always_inline)) void
avs_md5_step(uint32_t *v, int i, const uint32_t *x)
{
    int       r, k;
    uint32_t  a, b, c, d, f;

    a = v[(64 - i) & 3];
    b = v[(65 - i) & 3];
    c = v[(66 - i) & 3];
    d = v[(67 - i) & 3];
    r = i >> 4;

    switch (r) {
    case 0:
        f = d ^ (b & (c ^ d));
        k = i;
        break;
    case 1:
        f = (b & d) + (c & ~d);
        k = (5 * i + 1) & 15;
        break;
    case 2:
        f = b ^ c ^ d;
        k = (3 * i + 5) & 15;
        break;
    default:
        f = c ^ (b | ~d);
        k = (7 * i) & 15;
        break;
    }

    a += x[k] + avs_md5_t[i];
    a += f;
    v[(64 - i) & 3] = b + AVS_ROTL(a, avs_md5_shift[r][i & 3]);
}


/*
 * Runs n 64-byte blocks through both.  SHA-256's state lives in the two
 * registers SHA256RNDS2 wants, (A, B, E, F) and (C, D, G, H); its message
 * words in a ring of four registers of four words, each next one made
 * from the four before it by the schedule instructions.
 */
__attribute__((target("sha,ssse3,sse4.1")))
static void
avs_digest_blocks(uint32_t md5[4], uint32_t sha[8], const uint8_t *p,
    size_t n)
{
    int       g;
    uint32_t  v[4], x[16];
    __m128i   abef, cdgh, t, abef0, cdgh0, k, w[4];

    const __m128i  bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL,
                                          0x0405060700010203ULL);

    t = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *) &sha[0]), 0xb1);
    cdgh = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *) &sha[4]),
                             0x1b);
    abef = _mm_alignr_epi8(t, cdgh, 8);
    cdgh = _mm_blend_epi16(cdgh, t, 0xf0);

    while (n--) {
        abef0 = abef;
        cdgh0 = cdgh;
        memcpy(x, p, 64);               /* MD5 reads little-endian words */
        memcpy(v, md5, sizeof(v));

        for (g = 0; g < 4; g++) {
            w[g] = _mm_shuffle_epi8(
                       _mm_loadu_si128((const __m128i *) (p + 16 * g)),
                       bswap);
        }

#pragma GCC unroll 16
        for (g = 0; g < 16; g++) {
            avs_md5_step(v, 4 * g, x);
            avs_md5_step(v, 4 * g + 1, x);
            avs_md5_step(v, 4 * g + 2, x);
            avs_md5_step(v, 4 * g + 3, x);

            k = _mm_add_epi32(w[g & 3],
                              _mm_load_si128((const __m128i *)
                                             &avs_sha_k[4 * g]));
            cdgh = _mm_sha256rnds2_epu32(cdgh, abef, k);
            abef = _mm_sha256rnds2_epu32(abef, cdgh,
                                         _mm_shuffle_epi32(k, 0x0e));

            if (g < 12) {
                w[g & 3] = _mm_sha256msg2_epu32(
                    _mm_add_epi32(
                        _mm_sha256msg1_epu32(w[g & 3], w[(g + 1) & 3]),
                        _mm_alignr_epi8(w[(g + 3) & 3], w[(g + 2) & 3], 4)),
                    w[(g + 3) & 3]);
            }
        }

        md5[0] += v[0];
        md5[1] += v[1];
        md5[2] += v[2];
        md5[3] += v[3];
        abef = _mm_add_epi32(abef, abef0);
        cdgh = _mm_add_epi32(cdgh, cdgh0);
        p += 64;
    }

    t = _mm_shuffle_epi32(abef, 0x1b);
    cdgh = _mm_shuffle_epi32(cdgh, 0xb1);
    _mm_storeu_si128((__m128i *) &sha[0], _mm_blend_epi16(t, cdgh, 0xf0));
    _mm_storeu_si128((__m128i *) &sha[4], _mm_alignr_epi8(cdgh, t, 8));
}

#endif /* AVS_DIGEST_X86 */
