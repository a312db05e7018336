/*
 * AWS Signature Version 4 for S3 requests (see avs_sigv4.h): the canonical
 * request, the string to sign, the signing key derived by a chain of
 * HMAC-SHA256, and the Authorization header value.  Hashes and HMACs come
 * from OpenSSL's libcrypto, whose one-shot functions are thread-safe.
 */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "avs_sigv4.h"


static void avs_sha256_fetch(void);

static EVP_MD  *avs_sha256_fetched;


#define AVS_SHA256_LEN          32
#define AVS_SIGV4_FIELD_MAX     64      /* region, service, method */
#define AVS_SIGV4_KEY_ID_MAX    128
#define AVS_SIGV4_READ_CHUNK    (256 * 1024)


/* One name=value pair of the query, encoded, as offsets into a buffer. */
typedef struct {
    size_t  name;
    size_t  name_len;
    size_t  value;
    size_t  value_len;
} avs_sigv4_param_t;


static const char  avs_hex_lower[] = "0123456789abcdef";
static const char  avs_hex_upper[] = "0123456789ABCDEF";


void
avs_sigv4_hex(const unsigned char *p, size_t n, char *out)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        out[2 * i] = avs_hex_lower[p[i] >> 4];
        out[2 * i + 1] = avs_hex_lower[p[i] & 0x0f];
    }

    out[2 * n] = '\0';
}


/* The value of a hex digit, or -1. */
static int
avs_sigv4_hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }

    return -1;
}


/* The bytes that URI encoding leaves as they are (RFC 3986 unreserved). */
static int
avs_sigv4_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9')
           || c == '-' || c == '.' || c == '_' || c == '~';
}


/* White space that header values are trimmed of and collapse. */
static int
avs_sigv4_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}


static unsigned char
avs_sigv4_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char) (c + 32) : c;
}


/* Appends a C string. */
static avs_rc_t
avs_sigv4_cat(avs_buf_t *b, const char *s)
{
    return avs_buf_append(b, s, strlen(s));
}


/*
 * Appends a NUL that len does not count, so that the text can be used as a
 * C string while the buffer stays appendable.
 */
static avs_rc_t
avs_sigv4_terminate(avs_buf_t *b)
{
    if (avs_buf_append(b, "", 1) != AVS_OK) {
        return AVS_ENOMEM;
    }

    b->len--;

    return AVS_OK;
}


/* Compares two byte strings the way the algorithm sorts: bytewise. */
static int
avs_sigv4_bytes_cmp(const uint8_t *a, size_t na, const uint8_t *b, size_t nb)
{
    size_t  n;
    int     c;

    n = (na < nb) ? na : nb;
    c = (n > 0) ? memcmp(a, b, n) : 0;

    if (c != 0) {
        return c;
    }

    return (na > nb) - (na < nb);
}


/* Compares two header names as their lower-case forms compare. */
static int
avs_sigv4_name_cmp(const char *a, const char *b)
{
    unsigned char  ca, cb;

    for ( ;; ) {
        ca = avs_sigv4_lower((unsigned char) *a++);
        cb = avs_sigv4_lower((unsigned char) *b++);

        if (ca != cb || ca == '\0') {
            return (int) ca - (int) cb;
        }
    }
}


/* Appends one byte, as it is if unreserved (or a kept '/'), else %XX. */
static avs_rc_t
avs_sigv4_encode_byte(avs_buf_t *out, unsigned char c, int keep_slash)
{
    char  esc[3];

    if (avs_sigv4_unreserved(c) || (keep_slash && c == '/')) {
        return avs_buf_append(out, &c, 1);
    }

    esc[0] = '%';
    esc[1] = avs_hex_upper[c >> 4];
    esc[2] = avs_hex_upper[c & 0x0f];

    return avs_buf_append(out, esc, 3);
}


avs_rc_t
avs_sigv4_uri_encode(avs_buf_t *out, const char *s, size_t n, int keep_slash)
{
    size_t    i;
    avs_rc_t  rc;

    for (i = 0; i < n; i++) {
        rc = avs_sigv4_encode_byte(out, (unsigned char) s[i], keep_slash);
        if (rc != AVS_OK) {
            return rc;
        }
    }

    return AVS_OK;
}


/*
 * Appends a query name or value decoded from its form on the wire and
 * encoded again, so that "%E1%88%B4" and the raw UTF-8 bytes sign alike.
 * A '%' that two hex digits do not follow stands for itself.
 */
static avs_rc_t
avs_sigv4_reencode(avs_buf_t *out, const char *s, size_t n)
{
    size_t         i;
    int            hi, lo;
    unsigned char  c;
    avs_rc_t       rc;

    i = 0;

    while (i < n) {
        c = (unsigned char) s[i++];

        if (c == '%' && n - i >= 2) {
            hi = avs_sigv4_hexval((unsigned char) s[i]);
            lo = avs_sigv4_hexval((unsigned char) s[i + 1]);

            if (hi >= 0 && lo >= 0) {
                c = (unsigned char) (hi << 4 | lo);
                i += 2;
            }
        }

        rc = avs_sigv4_encode_byte(out, c, 0);
        if (rc != AVS_OK) {
            return rc;
        }
    }

    return AVS_OK;
}


/* Orders two encoded query pairs: by name, then by value. */
static int
avs_sigv4_param_cmp(const avs_buf_t *enc, const avs_sigv4_param_t *a,
    const avs_sigv4_param_t *b)
{
    int  c;

    c = avs_sigv4_bytes_cmp(enc->data + a->name, a->name_len,
                            enc->data + b->name, b->name_len);
    if (c != 0) {
        return c;
    }

    return avs_sigv4_bytes_cmp(enc->data + a->value, a->value_len,
                               enc->data + b->value, b->value_len);
}


/*
 * Appends the canonical query string: the pairs re-encoded and sorted,
 * "name=value" joined by '&' (a name without '=' gets an empty value).
 */
static avs_rc_t
avs_sigv4_query(const char *query, avs_buf_t *out, avs_err_t *err)
{
    size_t              n, i, j;
    avs_rc_t            rc;
    avs_buf_t           enc;
    const char         *p, *end, *amp, *eq;
    avs_sigv4_param_t   params[AVS_SIGV4_MAX_PARAMS], tmp;

    if (query == NULL || query[0] == '\0') {
        return AVS_OK;
    }

    memset(&enc, 0, sizeof(avs_buf_t));
    n = 0;
    p = query;
    end = query + strlen(query);
    rc = AVS_OK;

    for ( ;; ) {
        amp = memchr(p, '&', (size_t) (end - p));
        if (amp == NULL) {
            amp = end;
        }

        if (amp > p) {
            if (n == AVS_SIGV4_MAX_PARAMS) {
                rc = avs_err_set(err, AVS_EINTERNAL,
                                 "sigv4: more than %d query parameters",
                                 AVS_SIGV4_MAX_PARAMS);
                goto done;
            }

            eq = memchr(p, '=', (size_t) (amp - p));
            if (eq == NULL) {
                eq = amp;
            }

            params[n].name = enc.len;
            if (avs_sigv4_reencode(&enc, p, (size_t) (eq - p)) != AVS_OK) {
                goto nomem;
            }
            params[n].name_len = enc.len - params[n].name;

            params[n].value = enc.len;
            if (eq < amp
                && avs_sigv4_reencode(&enc, eq + 1, (size_t) (amp - eq - 1))
                   != AVS_OK)
            {
                goto nomem;
            }
            params[n].value_len = enc.len - params[n].value;

            /* insertion sort: the lists are short */
            tmp = params[n];
            for (j = n; j > 0; j--) {
                if (avs_sigv4_param_cmp(&enc, &params[j - 1], &tmp) <= 0) {
                    break;
                }
                params[j] = params[j - 1];
            }
            params[j] = tmp;
            n++;
        }

        if (amp == end) {
            break;
        }

        p = amp + 1;
    }

    for (i = 0; i < n; i++) {
        if ((i > 0 && avs_buf_append(out, "&", 1) != AVS_OK)
            || avs_buf_append(out, enc.data + params[i].name,
                              params[i].name_len) != AVS_OK
            || avs_buf_append(out, "=", 1) != AVS_OK
            || avs_buf_append(out, enc.data + params[i].value,
                              params[i].value_len) != AVS_OK)
        {
            goto nomem;
        }
    }

    goto done;

nomem:

    rc = avs_err_set(err, AVS_ENOMEM, "sigv4: out of memory");

done:

    avs_buf_free(&enc);

    return rc;
}


/* Appends a header name in lower case. */
static avs_rc_t
avs_sigv4_lower_name(avs_buf_t *out, const char *name)
{
    unsigned char  c;

    for ( /* void */ ; *name != '\0'; name++) {
        c = avs_sigv4_lower((unsigned char) *name);
        if (avs_buf_append(out, &c, 1) != AVS_OK) {
            return AVS_ENOMEM;
        }
    }

    return AVS_OK;
}


/* Appends a header value trimmed, inner runs of white space as one space. */
static avs_rc_t
avs_sigv4_trimmed(avs_buf_t *out, const char *v)
{
    int  gap, any;

    gap = 0;
    any = 0;

    for ( /* void */ ; *v != '\0'; v++) {
        if (avs_sigv4_space((unsigned char) *v)) {
            gap = 1;
            continue;
        }

        if ((gap && any && avs_buf_append(out, " ", 1) != AVS_OK)
            || avs_buf_append(out, v, 1) != AVS_OK)
        {
            return AVS_ENOMEM;
        }

        gap = 0;
        any = 1;
    }

    return AVS_OK;
}


/* A header name must be a non-empty run of visible bytes without ':'. */
static int
avs_sigv4_name_ok(const char *name)
{
    const unsigned char  *p;

    if (name == NULL || name[0] == '\0') {
        return 0;
    }

    for (p = (const unsigned char *) name; *p != '\0'; p++) {
        if (*p <= ' ' || *p >= 0x7f || *p == ':') {
            return 0;
        }
    }

    return 1;
}


/*
 * Appends the canonical headers ("name:value\n" per distinct name, names
 * lower-cased and in byte order, the values of a repeated name joined by
 * ',' in the order given) to out, and the signed header list
 * ("host;x-amz-date") to names.
 */
static avs_rc_t
avs_sigv4_headers(const avs_sigv4_req_t *req, avs_buf_t *out,
    avs_buf_t *names, avs_err_t *err)
{
    int                        host;
    size_t                     order[AVS_SIGV4_MAX_HEADERS], i, j, k;
    const avs_sigv4_header_t  *h;

    if (req->nheaders > AVS_SIGV4_MAX_HEADERS) {
        return avs_err_set(err, AVS_EINTERNAL,
                           "sigv4: more than %d headers to sign",
                           AVS_SIGV4_MAX_HEADERS);
    }

    host = 0;

    for (i = 0; i < req->nheaders; i++) {
        h = &req->headers[i];

        if (!avs_sigv4_name_ok(h->name) || h->value == NULL) {
            return avs_err_set(err, AVS_EINTERNAL,
                               "sigv4: header %zu has no valid name or "
                               "no value", i + 1);
        }

        if (avs_sigv4_name_cmp(h->name, "host") == 0) {
            host = 1;
        }

        /* a stable insertion sort keeps repeated names in their order */
        for (j = i; j > 0; j--) {
            if (avs_sigv4_name_cmp(req->headers[order[j - 1]].name, h->name)
                <= 0)
            {
                break;
            }
            order[j] = order[j - 1];
        }
        order[j] = i;
    }

    if (!host) {
        return avs_err_set(err, AVS_EINTERNAL,
                           "sigv4: the host header must be signed");
    }

    for (i = 0; i < req->nheaders; i = j) {
        h = &req->headers[order[i]];

        if ((i > 0 && avs_buf_append(names, ";", 1) != AVS_OK)
            || avs_sigv4_lower_name(names, h->name) != AVS_OK
            || avs_sigv4_lower_name(out, h->name) != AVS_OK
            || avs_buf_append(out, ":", 1) != AVS_OK)
        {
            goto nomem;
        }

        for (j = i; j < req->nheaders; j++) {
            k = order[j];

            if (avs_sigv4_name_cmp(req->headers[k].name, h->name) != 0) {
                break;
            }

            if ((j > i && avs_buf_append(out, ",", 1) != AVS_OK)
                || avs_sigv4_trimmed(out, req->headers[k].value) != AVS_OK)
            {
                goto nomem;
            }
        }

        if (avs_buf_append(out, "\n", 1) != AVS_OK) {
            goto nomem;
        }
    }

    return AVS_OK;

nomem:

    return avs_err_set(err, AVS_ENOMEM, "sigv4: out of memory");
}


/* A scope field (region, service) or method: short, visible, no '/'. */
static int
avs_sigv4_field_ok(const char *s, size_t max)
{
    size_t  i;

    if (s == NULL || s[0] == '\0') {
        return 0;
    }

    for (i = 0; s[i] != '\0'; i++) {
        if (i == max || (unsigned char) s[i] <= ' '
            || (unsigned char) s[i] >= 0x7f || s[i] == '/' || s[i] == ',')
        {
            return 0;
        }
    }

    return 1;
}


/* "YYYYMMDDTHHMMSSZ" */
static int
avs_sigv4_date_ok(const char *d)
{
    size_t  i;

    if (d == NULL || strlen(d) != AVS_SIGV4_DATE_SIZE - 1
        || d[8] != 'T' || d[15] != 'Z')
    {
        return 0;
    }

    for (i = 0; i < 15; i++) {
        if (i != 8 && (d[i] < '0' || d[i] > '9')) {
            return 0;
        }
    }

    return 1;
}


/*
 * Checks the fields that the texts are made of, so that a bad request is
 * told apart from a wrong signature.  Never names the secret's value.
 */
static avs_rc_t
avs_sigv4_check(const avs_sigv4_req_t *req, avs_err_t *err)
{
    if (!avs_sigv4_field_ok(req->method, AVS_SIGV4_FIELD_MAX)) {
        return avs_err_set(err, AVS_EINTERNAL, "sigv4: bad method");
    }

    if (req->path == NULL || req->path[0] != '/') {
        return avs_err_set(err, AVS_EINTERNAL,
                           "sigv4: the path must start with '/'");
    }

    if (req->payload_sha256 == NULL || req->payload_sha256[0] == '\0') {
        return avs_err_set(err, AVS_EINTERNAL, "sigv4: no payload hash");
    }

    if (!avs_sigv4_date_ok(req->amz_date)) {
        return avs_err_set(err, AVS_EINTERNAL,
                           "sigv4: the date is not YYYYMMDDTHHMMSSZ");
    }

    if (!avs_sigv4_field_ok(req->region, AVS_SIGV4_FIELD_MAX)
        || !avs_sigv4_field_ok(req->service, AVS_SIGV4_FIELD_MAX))
    {
        return avs_err_set(err, AVS_EINTERNAL,
                           "sigv4: bad region or service");
    }

    if (!avs_sigv4_field_ok(req->access_key, AVS_SIGV4_KEY_ID_MAX)) {
        return avs_err_set(err, AVS_EINTERNAL,
                           "sigv4: the access key id is empty, too long "
                           "or holds a byte it must not");
    }

    if (req->secret_key == NULL || req->secret_key[0] == '\0'
        || strlen(req->secret_key) > AVS_SIGV4_SECRET_MAX)
    {
        return avs_err_set(err, AVS_EINTERNAL,
                           "sigv4: the secret key is empty or longer than "
                           "%d bytes", AVS_SIGV4_SECRET_MAX);
    }

    return AVS_OK;
}


/*
 * Builds the canonical request into creq and the signed header list into
 * names, both NUL-terminated.
 */
static avs_rc_t
avs_sigv4_build(const avs_sigv4_req_t *req, avs_buf_t *creq,
    avs_buf_t *names, avs_err_t *err)
{
    avs_rc_t  rc;

    rc = avs_sigv4_check(req, err);
    if (rc != AVS_OK) {
        return rc;
    }

    if (avs_sigv4_cat(creq, req->method) != AVS_OK
        || avs_buf_append(creq, "\n", 1) != AVS_OK
        || avs_sigv4_uri_encode(creq, req->path, strlen(req->path), 1)
           != AVS_OK
        || avs_buf_append(creq, "\n", 1) != AVS_OK)
    {
        goto nomem;
    }

    rc = avs_sigv4_query(req->query, creq, err);
    if (rc != AVS_OK) {
        return rc;
    }

    if (avs_buf_append(creq, "\n", 1) != AVS_OK) {
        goto nomem;
    }

    rc = avs_sigv4_headers(req, creq, names, err);
    if (rc != AVS_OK) {
        return rc;
    }

    if (avs_buf_append(creq, "\n", 1) != AVS_OK
        || avs_buf_append(creq, names->data, names->len) != AVS_OK
        || avs_buf_append(creq, "\n", 1) != AVS_OK
        || avs_sigv4_cat(creq, req->payload_sha256) != AVS_OK
        || avs_sigv4_terminate(creq) != AVS_OK
        || avs_sigv4_terminate(names) != AVS_OK)
    {
        goto nomem;
    }

    return AVS_OK;

nomem:

    return avs_err_set(err, AVS_ENOMEM, "sigv4: out of memory");
}


/* Builds the string to sign from a canonical request. */
static avs_rc_t
avs_sigv4_sts(const avs_sigv4_req_t *req, const avs_buf_t *creq,
    avs_buf_t *sts, avs_err_t *err)
{
    int       n;
    char      hash[AVS_SHA256_HEX_SIZE], text[512];
    avs_rc_t  rc;

    rc = avs_sha256_hex(creq->data, creq->len, hash);
    if (rc != AVS_OK) {
        return avs_err_set(err, rc, "sigv4: SHA-256 failed");
    }

    n = snprintf(text, sizeof(text),
                 "AWS4-HMAC-SHA256\n%s\n%.8s/%s/%s/aws4_request\n%s",
                 req->amz_date, req->amz_date, req->region, req->service,
                 hash);

    if (n < 0 || (size_t) n >= sizeof(text)) {
        return avs_err_set(err, AVS_EINTERNAL,
                           "sigv4: the string to sign does not fit");
    }

    if (avs_buf_append(sts, text, (size_t) n) != AVS_OK
        || avs_sigv4_terminate(sts) != AVS_OK)
    {
        return avs_err_set(err, AVS_ENOMEM, "sigv4: out of memory");
    }

    return AVS_OK;
}


/* One HMAC-SHA256 step of the key derivation. */
static int
avs_sigv4_hmac(const void *key, size_t key_len, const void *p, size_t n,
    unsigned char out[AVS_SHA256_LEN])
{
    unsigned int  len;

    len = AVS_SHA256_LEN;

    return HMAC(EVP_sha256(), key, (int) key_len, p, n, out, &len) != NULL
           && len == AVS_SHA256_LEN;
}


/*
 * Derives the signing key (HMAC chain over date, region, service and
 * "aws4_request", keyed first by "AWS4" + secret) and signs the string to
 * sign with it.  Every intermediate key is wiped before returning.
 */
static avs_rc_t
avs_sigv4_signature(const avs_sigv4_req_t *req, const avs_buf_t *sts,
    char out[AVS_SHA256_HEX_SIZE], avs_err_t *err)
{
    int            ok;
    size_t         n;
    unsigned char  secret[4 + AVS_SIGV4_SECRET_MAX];
    unsigned char  k1[AVS_SHA256_LEN], k2[AVS_SHA256_LEN];

    n = strlen(req->secret_key);
    memcpy(secret, "AWS4", 4);
    memcpy(secret + 4, req->secret_key, n);

    ok = avs_sigv4_hmac(secret, 4 + n, req->amz_date, 8, k1)
         && avs_sigv4_hmac(k1, sizeof(k1), req->region,
                           strlen(req->region), k2)
         && avs_sigv4_hmac(k2, sizeof(k2), req->service,
                           strlen(req->service), k1)
         && avs_sigv4_hmac(k1, sizeof(k1), "aws4_request", 12, k2)
         && avs_sigv4_hmac(k2, sizeof(k2), sts->data, sts->len, k1);

    if (ok) {
        avs_sigv4_hex(k1, sizeof(k1), out);
    }

    OPENSSL_cleanse(secret, sizeof(secret));
    OPENSSL_cleanse(k1, sizeof(k1));
    OPENSSL_cleanse(k2, sizeof(k2));

    if (!ok) {
        return avs_err_set(err, AVS_EINTERNAL, "sigv4: HMAC-SHA256 failed");
    }

    return AVS_OK;
}


avs_rc_t
avs_sigv4_canonical_request(const avs_sigv4_req_t *req, avs_buf_t *out,
    avs_err_t *err)
{
    avs_rc_t   rc;
    avs_buf_t  names;

    memset(&names, 0, sizeof(avs_buf_t));

    rc = avs_sigv4_build(req, out, &names, err);

    avs_buf_free(&names);

    return rc;
}


avs_rc_t
avs_sigv4_string_to_sign(const avs_sigv4_req_t *req, avs_buf_t *out,
    avs_err_t *err)
{
    avs_rc_t   rc;
    avs_buf_t  creq, names;

    memset(&creq, 0, sizeof(avs_buf_t));
    memset(&names, 0, sizeof(avs_buf_t));

    rc = avs_sigv4_build(req, &creq, &names, err);
    if (rc == AVS_OK) {
        rc = avs_sigv4_sts(req, &creq, out, err);
    }

    avs_buf_free(&creq);
    avs_buf_free(&names);

    return rc;
}


avs_rc_t
avs_sigv4_sign(const avs_sigv4_req_t *req, char *authorization, size_t size,
    avs_err_t *err)
{
    int        n;
    char       signature[AVS_SHA256_HEX_SIZE];
    avs_rc_t   rc;
    avs_buf_t  creq, names, sts;

    memset(&creq, 0, sizeof(avs_buf_t));
    memset(&names, 0, sizeof(avs_buf_t));
    memset(&sts, 0, sizeof(avs_buf_t));

    if (size > 0) {
        authorization[0] = '\0';
    }

    rc = avs_sigv4_build(req, &creq, &names, err);
    if (rc != AVS_OK) {
        goto done;
    }

    rc = avs_sigv4_sts(req, &creq, &sts, err);
    if (rc != AVS_OK) {
        goto done;
    }

    rc = avs_sigv4_signature(req, &sts, signature, err);
    if (rc != AVS_OK) {
        goto done;
    }

    n = snprintf(authorization, size,
                 "AWS4-HMAC-SHA256 Credential=%s/%.8s/%s/%s/aws4_request, "
                 "SignedHeaders=%s, Signature=%s",
                 req->access_key, req->amz_date, req->region, req->service,
                 (char *) names.data, signature);

    if (n < 0 || (size_t) n >= size) {
        if (size > 0) {
            authorization[0] = '\0';
        }

        rc = avs_err_set(err, AVS_EINTERNAL,
                         "sigv4: the Authorization value does not fit in "
                         "%zu bytes", size);
    }

done:

    avs_buf_free(&creq);
    avs_buf_free(&names);
    avs_buf_free(&sts);

    return rc;
}


void
avs_sigv4_amz_date(time_t t, char out[AVS_SIGV4_DATE_SIZE])
{
    struct tm  tm;

    if (gmtime_r(&t, &tm) == NULL
        || strftime(out, AVS_SIGV4_DATE_SIZE, "%Y%m%dT%H%M%SZ", &tm)
           != AVS_SIGV4_DATE_SIZE - 1)
    {
        /* only for years past 9999: a date any store will refuse */
        memcpy(out, "00000000T000000Z", AVS_SIGV4_DATE_SIZE);
    }
}


/*
 * SHA-256 as fetched once from OpenSSL's provider: EVP_sha256() makes
 * every digest look its implementation up again, which costs a fifth of
 * hashing a 4 KiB upload.  Kept for the life of the process.
 */
static const EVP_MD *
avs_sha256_md(void)
{
    static pthread_once_t   once = PTHREAD_ONCE_INIT;

    (void) pthread_once(&once, avs_sha256_fetch);

    return avs_sha256_fetched != NULL ? avs_sha256_fetched : EVP_sha256();
}


static void
avs_sha256_fetch(void)
{
    avs_sha256_fetched = EVP_MD_fetch(NULL, "SHA256", NULL);
}


avs_rc_t
avs_sha256_hex(const void *p, size_t n, char out[AVS_SHA256_HEX_SIZE])
{
    unsigned int   len;
    unsigned char  md[EVP_MAX_MD_SIZE];

    if (EVP_Digest(p, n, md, &len, avs_sha256_md(), NULL) != 1
        || len != AVS_SHA256_LEN)
    {
        out[0] = '\0';
        return AVS_EINTERNAL;
    }

    avs_sigv4_hex(md, AVS_SHA256_LEN, out);

    return AVS_OK;
}


/* The context is OpenSSL's, behind a type of our own. */
avs_sha256_t *
avs_sha256_new(void)
{
    EVP_MD_CTX  *ctx;

    ctx = EVP_MD_CTX_new();

    if (ctx != NULL && EVP_DigestInit_ex(ctx, avs_sha256_md(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        ctx = NULL;
    }

    return (avs_sha256_t *) ctx;
}


int
avs_sha256_update(avs_sha256_t *h, const void *p, size_t n)
{
    return EVP_DigestUpdate((EVP_MD_CTX *) h, p, n) == 1;
}


int
avs_sha256_final_hex(avs_sha256_t *h, char out[AVS_SHA256_HEX_SIZE])
{
    unsigned int   len;
    unsigned char  md[EVP_MAX_MD_SIZE];

    out[0] = '\0';

    if (EVP_DigestFinal_ex((EVP_MD_CTX *) h, md, &len) != 1
        || len != AVS_SHA256_LEN)
    {
        return 0;
    }

    avs_sigv4_hex(md, AVS_SHA256_LEN, out);

    return 1;
}


void
avs_sha256_free(avs_sha256_t *h)
{
    EVP_MD_CTX_free((EVP_MD_CTX *) h);
}


avs_rc_t
avs_sha256_fd_hex(int fd, char out[AVS_SHA256_HEX_SIZE], uint64_t *size,
    avs_err_t *err)
{
    ssize_t         n;
    uint64_t        total;
    avs_rc_t        rc;
    avs_sha256_t   *ctx;
    unsigned char  *chunk;

    out[0] = '\0';

    chunk = malloc(AVS_SIGV4_READ_CHUNK);
    ctx = avs_sha256_new();

    if (chunk == NULL || ctx == NULL) {
        free(chunk);
        avs_sha256_free(ctx);
        return avs_err_set(err, AVS_ENOMEM, "sha256: out of memory");
    }

    rc = AVS_OK;
    total = 0;

    for ( ;; ) {
        n = read(fd, chunk, AVS_SIGV4_READ_CHUNK);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }

            rc = avs_err_set(err, AVS_ESTORE, "sha256: read: %s",
                             strerror(errno));
            goto done;
        }

        if (n == 0) {
            break;
        }

        if (!avs_sha256_update(ctx, chunk, (size_t) n)) {
            rc = avs_err_set(err, AVS_EINTERNAL, "sha256: update failed");
            goto done;
        }

        total += (uint64_t) n;
    }

    if (!avs_sha256_final_hex(ctx, out)) {
        rc = avs_err_set(err, AVS_EINTERNAL, "sha256: final failed");
        goto done;
    }

    if (size != NULL) {
        *size = total;
    }

done:

    avs_sha256_free(ctx);
    free(chunk);

    return rc;
}


avs_rc_t
avs_sha256_file_hex(const char *path, char out[AVS_SHA256_HEX_SIZE],
    uint64_t *size, avs_err_t *err)
{
    int       fd;
    avs_rc_t  rc;

    out[0] = '\0';

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        return avs_err_set(err, AVS_ESTORE, "sha256: cannot open %s: %s",
                           path, strerror(errno));
    }

    rc = avs_sha256_fd_hex(fd, out, size, err);

    close(fd);

    return rc;
}
