/*
 * The s3:// store against a real S3-compatible server, whose endpoint the
 * .t file that runs this passes in the environment; skipped when run
 * alone.
 *
 *   AVS_S3_ENDPOINT         http://host:port of the server (bucket "bucket")
 *   AVS_S3_CREDENTIALS      a credentials file it accepts
 *   AVS_S3_BAD_CREDENTIALS  (optional) one with an unknown access key
 *   AVS_S3_PROXY            (optional) http://host:port of t/lib/
 *                           faultproxy.pl in front of the same server: the
 *                           requests then go through it, and its faults
 *                           (503, drop, drop_after_put, delay) are tested
 *   AVS_S3_PROXY_SIGV4      (optional) set when that proxy checks SigV4
 *                           signatures with the credentials' keys
 *
 * The server (s3rver) checks the access key of every request but not V4
 * signatures; the proxy does when asked, with its own implementation, on
 * the bytes that go over the wire: that checks the signer in use, the
 * vectors of t/unit/sigv4.c check it against AWS's published suite.
 */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "avs_objstore.h"
#include "avs_sigv4.h"
#include "tap.h"


#define SRC_SIZE  (300 * 1000 + 17)
#define NTHREADS  4


static const char  *base;       /* where the store's requests go */
static const char  *proxy;
static const char  *cred;
static char         dir[] = "/tmp/avs-s3-XXXXXX";
static char         src[300];
static uint8_t     *data;


static avs_objstore_t *
store(const char *endpoint, const char *credentials, unsigned timeout_ms)
{
    avs_err_t             err;
    avs_objstore_t       *os;
    avs_objstore_conf_t   oc;

    memset(&oc, 0, sizeof(oc));
    oc.url = "s3://bucket/pre/fix/";
    oc.endpoint = endpoint;
    oc.credentials = credentials;
    oc.timeout_ms = timeout_ms;

    if (avs_objstore_open(&oc, &os, &err) != AVS_OK) {
        printf("# open: %s\n", err.msg);
        return NULL;
    }

    return os;
}


static size_t
on_body(char *p, size_t size, size_t n, void *b)
{
    return avs_buf_append(b, p, size * n) == AVS_OK ? size * n : 0;
}


/* Sets the proxy's fault mode through its control endpoint. */
static int
fault(const char *mode)
{
    CURL       *c;
    long        status;
    char        url[300];
    avs_buf_t   b;
    CURLcode    cc;

    memset(&b, 0, sizeof(b));
    snprintf(url, sizeof(url), "%s/__fault/%s", proxy, mode);

    c = curl_easy_init();
    if (c == NULL) {
        return 0;
    }

    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    cc = curl_easy_perform(c);
    status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    avs_buf_free(&b);

    return cc == CURLE_OK && status == 200;
}


/* Adds "name: value" to a header list. */
static struct curl_slist *
header(struct curl_slist *list, const char *name, const char *value)
{
    char                line[AVS_SIGV4_AUTH_SIZE + 64];
    struct curl_slist  *l;

    snprintf(line, sizeof(line), "%s: %s", name, value);
    l = curl_slist_append(list, line);

    return l ? l : list;
}


/*
 * Sends a GET with the values sign_get gave, as nginx's subrequest will
 * (range: the Range header sent, which may differ from the one signed).
 */
static long
signed_get(const avs_objstore_signed_t *sg, const char *range,
    avs_buf_t *body)
{
    CURL               *c;
    long                status;
    char                url[AVS_OBJSTORE_URI_MAX + 300];
    struct curl_slist  *list;

    snprintf(url, sizeof(url), "%s%s", base, sg->path);

    list = header(NULL, "Host", sg->host);
    list = header(list, "x-amz-date", sg->amz_date);
    list = header(list, "x-amz-content-sha256", sg->content_sha256);
    list = header(list, "Authorization", sg->authorization);

    if (range != NULL) {
        list = header(list, "Range", range);
    }

    if (sg->security_token != NULL) {
        list = header(list, "x-amz-security-token", sg->security_token);
    }

    status = 0;
    c = curl_easy_init();

    if (c != NULL) {
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, body);

        if (curl_easy_perform(c) == CURLE_OK) {
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        }

        curl_easy_cleanup(c);
    }

    curl_slist_free_all(list);

    return status;
}


static long
ms_since(const struct timespec *t0)
{
    struct timespec  t1;

    clock_gettime(CLOCK_MONOTONIC, &t1);

    return (t1.tv_sec - t0->tv_sec) * 1000
           + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}


/* No message may hold a secret or an access key. */
static int
clean(const char *msg)
{
    return strstr(msg, "S3RVER") == NULL && strstr(msg, "NOPE") == NULL
           && strstr(msg, "WRONGSECRET") == NULL
           && strstr(msg, "SESSIONTOKEN") == NULL;
}


static void
test_roundtrip(void)
{
    char                   etag[AVS_ETAG_SIZE], etag2[AVS_ETAG_SIZE];
    char                   writer[AVS_WRITER_SIZE];
    char                   sha[65], want[65];
    uint64_t               size;
    avs_buf_t              b;
    avs_err_t              err;
    avs_objstore_t        *os;
    avs_objstore_signed_t  sg;

    memset(&err, 0, sizeof(err));
    memset(&b, 0, sizeof(b));

    os = store(base, cred, 5000);
    ok(os != NULL, "s3 store opens (%s)", base);
    if (os == NULL) {
        return;
    }

    ok(avs_objstore_put_file(os, "t/p/f/n-1.avro", src, etag, sha, &err)
       == AVS_OK, "signed PUT accepted: %s", err.msg);
    ok(etag[0] != '\0' && strchr(etag, '"') == NULL,
       "ETag without quotes: %s", etag);
    avs_sha256_file_hex(src, want, NULL, &err);
    is_str(sha, want, "PUT gives the file's SHA-256");

    ok(avs_objstore_head(os, "t/p/f/n-1.avro", &size, etag2, &err) == AVS_OK
       && size == SRC_SIZE, "HEAD: %d bytes", SRC_SIZE);
    is_str(etag2, etag, "HEAD: the ETag of the PUT");

    /* a file whose hash the caller knows: one read, the same object,
     * which names its writer (signed: the server checks every header) */
    ok(avs_objstore_put_temp(os, "t/p/f/n-0.avro", src, want, 1, "job-7-99",
                             etag2, &err)
       == AVS_OK, "put_temp, signed with the hash given: %s", err.msg);
    is_str(etag2, etag, "the same ETag");
    ok(access(src, F_OK) == 0, "the file is left to its owner");
    ok(avs_objstore_head_writer(os, "t/p/f/n-0.avro", &size, etag2, writer,
                                &err) == AVS_OK,
       "HEAD with the writer: %s", err.msg);
    is_str(writer, "job-7-99", "HEAD gives the writer the put named");
    ok(avs_objstore_head_writer(os, "t/p/f/n-1.avro", &size, etag2, writer,
                                &err) == AVS_OK && writer[0] == '\0',
       "an object whose put named none: no writer");
    is_int(avs_objstore_head(os, "t/p/f/none.avro", &size, etag2, &err),
           AVS_DONE, "HEAD of a missing object: AVS_DONE");

    ok(avs_objstore_get_range(os, "t/p/f/n-1.avro", 10, 6, &b, &err)
       == AVS_OK && b.len == 6 && memcmp(b.data, data + 10, 6) == 0,
       "ranged GET: 206 with the right bytes");
    ok(avs_objstore_get_range(os, "t/p/f/n-1.avro", SRC_SIZE - 100, 100, &b,
                              &err) == AVS_OK
       && b.len == 106 && memcmp(b.data + 6, data + SRC_SIZE - 100, 100) == 0,
       "the last 100 bytes, appended");
    b.len = 0;
    ok(avs_objstore_get_range(os, "t/p/f/n-1.avro", 0, SRC_SIZE, &b, &err)
       == AVS_OK && b.len == SRC_SIZE && memcmp(b.data, data, SRC_SIZE) == 0,
       "the whole object as one range");
    b.len = 0;
    is_int(avs_objstore_get_range(os, "t/p/f/n-1.avro", SRC_SIZE, 10, &b,
                                  &err),
           AVS_ESTORE, "a range past the end: AVS_ESTORE");
    ok(strstr(err.msg, "t/p/f/n-1.avro") != NULL
       && strstr(err.msg, "416") != NULL, "names key and status: %s",
       err.msg);
    is_int(b.len, 0, "and gives no bytes");
    is_int(avs_objstore_get_range(os, "t/p/f/none.avro", 0, 10, &b, &err),
           AVS_ESTORE, "a range of a missing object: AVS_ESTORE");
    ok(strstr(err.msg, "404") != NULL && strstr(err.msg, "NoSuchKey"),
       "with the store's answer: %s", err.msg);

    /* bytes that the path encoding changes, signed and sent alike */
    ok(avs_objstore_put_file(os, "t/p/f/user@example.com~1.avro", src, etag,
                             sha, &err) == AVS_OK,
       "PUT of a key with '@' and '~': %s", err.msg);
    b.len = 0;
    ok(avs_objstore_get_range(os, "t/p/f/user@example.com~1.avro", 7, 3, &b,
                              &err) == AVS_OK
       && b.len == 3 && memcmp(b.data, data + 7, 3) == 0,
       "and its ranged GET: %s", err.msg);

    /* the read path: a GET that someone else sends with our signature */
    ok(avs_objstore_sign_get(os, "t/p/f/n-1.avro", "bytes=5-14", &sg, &err)
       == AVS_OK, "sign_get with a range");
    b.len = 0;
    is_int(signed_get(&sg, "bytes=5-14", &b), 206,
           "the signed GET is answered 206");
    ok(b.len == 10 && memcmp(b.data, data + 5, 10) == 0,
       "with the 10 bytes asked for");

    ok(avs_objstore_sign_get(os, "t/p/f/user@example.com~1.avro", NULL, &sg,
                             &err) == AVS_OK, "sign_get without a range");
    b.len = 0;
    is_int(signed_get(&sg, NULL, &b), 200, "the signed GET is answered 200");
    ok(b.len == SRC_SIZE && memcmp(b.data, data, SRC_SIZE) == 0,
       "with the whole object");

    if (getenv("AVS_S3_PROXY_SIGV4") != NULL) {
        ok(avs_objstore_sign_get(os, "t/p/f/n-1.avro", "bytes=5-14", &sg,
                                 &err) == AVS_OK, "sign_get again");
        b.len = 0;
        is_int(signed_get(&sg, "bytes=0-99", &b), 403,
               "another Range than the one signed: 403");
    }

    ok(avs_objstore_delete(os, "t/p/f/n-1.avro", &err) == AVS_OK, "DELETE");
    is_int(avs_objstore_head(os, "t/p/f/n-1.avro", &size, etag, &err),
           AVS_DONE, "gone");
    ok(avs_objstore_delete(os, "t/p/f/n-1.avro", &err) == AVS_OK,
       "DELETE of a missing object: fine");
    ok(avs_objstore_delete(os, "t/p/f/user@example.com~1.avro", &err)
       == AVS_OK, "DELETE of the other one");

    avs_objstore_close(os);
    avs_buf_free(&b);
}


/* Write a credentials file under the test's directory. */
static const char *
cred_file(const char *name, const char *text)
{
    FILE        *f;
    static char  path[4][300];
    static int   n;

    n = (n + 1) % 4;
    snprintf(path[n], sizeof(path[n]), "%s/%s", dir, name);

    f = fopen(path[n], "w");
    if (f != NULL) {
        fputs(text, f);
        fclose(f);
    }

    return path[n];
}


static void
test_refusals(void)
{
    char             etag[AVS_ETAG_SIZE], sha[65];
    const char      *bad;
    avs_err_t        err;
    avs_objstore_t  *os;

    memset(&err, 0, sizeof(err));

    bad = getenv("AVS_S3_BAD_CREDENTIALS");
    if (bad == NULL) {
        bad = cred_file("bad.cred", "[default]\naws_access_key_id = NOPE\n"
                                    "aws_secret_access_key = S3RVER\n");
    }

    os = store(base, bad, 5000);
    ok(os != NULL, "opens with an unknown access key");
    if (os != NULL) {
        is_int(avs_objstore_put_file(os, "t/x.avro", src, etag, sha, &err),
               AVS_ESTORE, "PUT refused");
        ok(strstr(err.msg, "t/x.avro") != NULL
           && strstr(err.msg, "403") != NULL, "names key and status: %s",
           err.msg);
        ok(clean(err.msg), "no credentials in the message");
        avs_objstore_close(os);
    }

    if (getenv("AVS_S3_PROXY_SIGV4") != NULL) {
        os = store(base, cred_file("wrong.cred", "access_key_id=S3RVER\n"
                                   "secret_access_key=WRONGSECRET\n"), 5000);
        ok(os != NULL, "opens with a wrong secret");
        if (os != NULL) {
            is_int(avs_objstore_put_file(os, "t/w.avro", src, etag, sha,
                                         &err),
                   AVS_ESTORE, "PUT signed with the wrong secret: refused");
            ok(strstr(err.msg, "403 SignatureDoesNotMatch") != NULL,
               "as a wrong signature: %s", err.msg);
            ok(clean(err.msg), "no credentials in the message");
            avs_objstore_close(os);
        }

        os = store(base, cred_file("token.cred",
                                   "access_key_id=S3RVER\n"
                                   "secret_access_key=S3RVER\n"
                                   "session_token=SESSIONTOKEN\n"), 5000);
        ok(os != NULL
           && avs_objstore_put_file(os, "t/t.avro", src, etag, sha, &err)
              == AVS_OK
           && avs_objstore_delete(os, "t/t.avro", &err) == AVS_OK,
           "temporary credentials: the session token is signed and sent");
        avs_objstore_close(os);
    }

    /* nobody listening */
    os = store("http://127.0.0.1:1", cred, 2000);
    ok(os != NULL, "opens: no connection yet");
    if (os != NULL) {
        is_int(avs_objstore_put_file(os, "t/y.avro", src, etag, sha, &err),
               AVS_ESTORE, "refused connection: AVS_ESTORE");
        ok(strstr(err.msg, "t/y.avro") != NULL, "names the key: %s",
           err.msg);
        ok(clean(err.msg), "no credentials in the message");
        avs_objstore_close(os);
    }
}


static void
test_faults(void)
{
    char              etag[AVS_ETAG_SIZE], sha[65];
    long              ms;
    uint64_t          size;
    avs_buf_t         b;
    avs_err_t         err;
    avs_objstore_t   *os, *slow;
    struct timespec   t0;

    memset(&err, 0, sizeof(err));
    memset(&b, 0, sizeof(b));

    os = store(proxy, cred, 5000);
    slow = store(proxy, cred, 1000);
    if (os == NULL || slow == NULL) {
        ok(0, "stores open through the proxy");
        return;
    }

    ok(fault("503"), "proxy: 503");
    is_int(avs_objstore_put_file(os, "t/f/a.avro", src, etag, sha, &err),
           AVS_ESTORE, "PUT answered 503: AVS_ESTORE");
    ok(strstr(err.msg, "t/f/a.avro") != NULL
       && strstr(err.msg, "the store answered 503 SlowDown") != NULL,
       "names key, status and code: %s", err.msg);
    ok(clean(err.msg), "no credentials in the message");
    is_int(avs_objstore_head(os, "t/f/a.avro", &size, etag, &err),
           AVS_ESTORE, "HEAD answered 503: AVS_ESTORE, not absent (%s)",
           err.msg);
    is_int(avs_objstore_get_range(os, "t/f/a.avro", 0, 1, &b, &err),
           AVS_ESTORE, "GET answered 503: AVS_ESTORE");
    is_int(b.len, 0, "and no bytes");

    ok(fault("drop"), "proxy: drop");
    is_int(avs_objstore_put_file(os, "t/f/a.avro", src, etag, sha, &err),
           AVS_ESTORE, "PUT, connection closed: AVS_ESTORE");
    ok(strstr(err.msg, "t/f/a.avro") != NULL, "names the key: %s", err.msg);
    is_int(avs_objstore_head(os, "t/f/a.avro", &size, etag, &err),
           AVS_ESTORE, "HEAD, connection closed: AVS_ESTORE");

    ok(fault("drop_after_put"), "proxy: drop_after_put");
    is_int(avs_objstore_put_file(os, "t/f/b.avro", src, etag, sha, &err),
           AVS_ESTORE, "PUT stored, answer lost: AVS_ESTORE (%s)", err.msg);
    ok(fault("pass"), "proxy: pass");
    ok(avs_objstore_head(os, "t/f/b.avro", &size, etag, &err) == AVS_OK
       && size == SRC_SIZE,
       "HEAD shows the object is there, whole: the archiver's way to know");

    ok(fault("put_no_etag"), "proxy: put_no_etag");
    is_int(avs_objstore_put_file(os, "t/f/c.avro", src, etag, sha, &err),
           AVS_ESTORE, "PUT answered 200 without an ETag: AVS_ESTORE");
    ok(strstr(err.msg, "t/f/c.avro") != NULL
       && strstr(err.msg, "without an ETag") != NULL, "says so: %s",
       err.msg);
    ok(fault("pass"), "proxy: pass");
    ok(avs_objstore_delete(os, "t/f/c.avro", &err) == AVS_OK, "clean up");

    ok(fault("delay/3000"), "proxy: delay 3 s");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    is_int(avs_objstore_head(slow, "t/f/b.avro", &size, etag, &err),
           AVS_ESTORE, "HEAD with a 1 s timeout: AVS_ESTORE");
    ms = ms_since(&t0);
    ok(ms < 2900, "given up after %ld ms, before the answer", ms);
    ok(strstr(err.msg, "t/f/b.avro") != NULL
       && strstr(err.msg, "1000 ms") != NULL, "says so: %s", err.msg);

    ok(fault("pass"), "proxy: pass");
    ok(avs_objstore_delete(os, "t/f/b.avro", &err) == AVS_OK, "clean up");

    avs_objstore_close(os);
    avs_objstore_close(slow);
    avs_buf_free(&b);
}


/* One thread's share of the concurrent requests. */
typedef struct {
    avs_objstore_t  *os;
    int              id;
    int              failures;
} worker_t;


static void *
worker(void *arg)
{
    int         i;
    char        key[64], etag[AVS_ETAG_SIZE], sha[65];
    uint64_t    size;
    avs_buf_t   b;
    avs_err_t   err;
    worker_t   *w = arg;

    memset(&b, 0, sizeof(b));

    for (i = 0; i < 3; i++) {
        snprintf(key, sizeof(key), "t/threads/%d-%d.avro", w->id, i);
        b.len = 0;

        if (avs_objstore_put_file(w->os, key, src, etag, sha, &err) != AVS_OK
            || avs_objstore_head(w->os, key, &size, etag, &err) != AVS_OK
            || size != SRC_SIZE
            || avs_objstore_get_range(w->os, key, 1000, 5000, &b, &err)
               != AVS_OK
            || memcmp(b.data, data + 1000, 5000) != 0)
        {
            printf("# thread %d: %s\n", w->id, err.msg);
            w->failures++;
        }
    }

    avs_buf_free(&b);

    return NULL;
}


static void
test_threads(void)
{
    int              i, failures;
    char             key[64];
    avs_err_t        err;
    worker_t         w[NTHREADS];
    pthread_t        tid[NTHREADS];
    avs_objstore_t  *os;

    os = store(base, cred, 5000);
    if (os == NULL) {
        ok(0, "store opens");
        return;
    }

    for (i = 0; i < NTHREADS; i++) {
        w[i].os = os;
        w[i].id = i;
        w[i].failures = 0;
        pthread_create(&tid[i], NULL, worker, &w[i]);
    }

    failures = 0;
    for (i = 0; i < NTHREADS; i++) {
        pthread_join(tid[i], NULL);
        failures += w[i].failures;
    }

    is_int(failures, 0, "%d threads sharing one store: PUT, HEAD and GET "
           "all fine", NTHREADS);

    /*
     * Deleted afterwards, one by one: s3rver 3.7.1 removes a directory
     * left empty by a DELETE, and a PUT into it at that moment fails
     * there with 500 (EEXIST from its mkdir); S3 has no such race.
     */
    failures = 0;
    for (i = 0; i < NTHREADS * 3; i++) {
        snprintf(key, sizeof(key), "t/threads/%d-%d.avro", i / 3, i % 3);
        failures += avs_objstore_delete(os, key, &err) != AVS_OK;
    }

    is_int(failures, 0, "and their objects deleted");

    avs_objstore_close(os);
}


int
main(void)
{
    int    fd;
    char   cmd[400];
    size_t i;

    base = getenv("AVS_S3_ENDPOINT");
    cred = getenv("AVS_S3_CREDENTIALS");
    proxy = getenv("AVS_S3_PROXY");

    if (base == NULL || cred == NULL) {
        printf("1..0 # SKIP AVS_S3_ENDPOINT and AVS_S3_CREDENTIALS are not "
               "set (see t/30-objstore-s3.t)\n");
        return 0;
    }

    if (proxy != NULL) {
        base = proxy;
    }

    data = malloc(SRC_SIZE);
    if (mkdtemp(dir) == NULL || data == NULL) {
        printf("1..0 # SKIP no temporary directory or memory\n");
        free(data);
        return 0;
    }

    for (i = 0; i < SRC_SIZE; i++) {
        data[i] = (uint8_t) (i * 7 + (i >> 11));
    }

    snprintf(src, sizeof(src), "%s/src", dir);
    fd = mkstemp(strcat(strcpy(cmd, dir), "/srcXXXXXX"));
    ok(fd != -1 && write(fd, data, SRC_SIZE) == SRC_SIZE
       && rename(cmd, src) == 0, "wrote a %d-byte object", SRC_SIZE);
    if (fd != -1) {
        close(fd);
    }

    curl_global_init(CURL_GLOBAL_DEFAULT);

    test_roundtrip();
    test_refusals();

    if (proxy != NULL) {
        test_faults();
        fault("pass");
    }

    test_threads();

    curl_global_cleanup();
    free(data);

    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) {
        printf("# could not remove %s\n", dir);
    }

    return done_testing();
}
