/*
 * Unit tests of the object stores without a network: the file: backend
 * (put atomic and hashed, no temporary file left, head with the same tag,
 * ranges, delete, keys that could leave the directory, several threads at
 * once, signed GETs for alias locations); then the configuration of both
 * backends (URLs, endpoints, regions, the credentials file in both forms,
 * no secret in any message) and the S3 read path's signed GET, checked
 * against the signer.  The S3 requests themselves: objstore_s3.c.
 */

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "avs_objstore.h"
#include "avs_sigv4.h"
#include "tap.h"


#define SECRET    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define NTHREADS  4
#define NPUTS     8


static char  dir[] = "/tmp/avs-objstore-XXXXXX";


/* Entries of a directory, hidden ones included ("." and ".." not). */
static int
count_entries(const char *path)
{
    int             n;
    DIR            *d;
    struct dirent  *e;

    n = 0;
    d = opendir(path);

    while (d != NULL && (e = readdir(d)) != NULL) {
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    }

    if (d != NULL) {
        closedir(d);
    }

    return n;
}


static void
write_file(const char *path, const char *text)
{
    FILE  *f;

    f = fopen(path, "w");
    if (f != NULL) {
        fputs(text, f);
        fclose(f);
    }
}


static void
test_file_store(void)
{
    char                  url[300], src[300], sub[300], path[400];
    char                  etag[AVS_ETAG_SIZE], etag2[AVS_ETAG_SIZE];
    char                  sha[65];
    uint64_t              size;
    avs_buf_t             b;
    avs_err_t             err;
    struct stat           st;
    avs_objstore_t       *os;
    avs_objstore_conf_t   oc;

    memset(&err, 0, sizeof(avs_err_t));

    snprintf(url, sizeof(url), "file:%s/cold/", dir);
    snprintf(src, sizeof(src), "%s/src", dir);
    write_file(src, "abc");

    memset(&oc, 0, sizeof(oc));
    oc.url = url;
    ok(avs_objstore_open(&oc, &os, &err) == AVS_OK, "file: store opens");
    is_int(avs_objstore_is_s3(os), 0, "it is not s3");

    ok(avs_objstore_put_file(os, "t/p/fp/n-1.avro", src, etag, sha, &err)
       == AVS_OK, "put, creating the directories: %s", err.msg);
    is_str(sha,
           "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
           "SHA-256 of the object");
    is_str(etag, sha, "file: ETag is the SHA-256");
    snprintf(sub, sizeof(sub), "%s/cold/t/p/fp", dir);
    is_int(count_entries(sub), 1, "one object, no temporary file left");

    snprintf(path, sizeof(path), "%s/n-1.avro", sub);
    ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0644,
       "the object is readable by nginx's alias (0644)");

    ok(avs_objstore_put_file(os, "t/p/fp/n-1.avro", src, etag, sha, &err)
       == AVS_OK, "put again (a retried job): replaced");
    is_int(count_entries(sub), 1, "still one entry");

    ok(avs_objstore_head(os, "t/p/fp/n-1.avro", &size, etag2, &err)
       == AVS_OK && size == 3, "head: size 3");
    is_str(etag2, etag, "head gives the tag put gave");
    is_int(avs_objstore_head(os, "t/p/fp/none.avro", &size, etag, &err),
           AVS_DONE, "head of a missing object: AVS_DONE");
    is_int(avs_objstore_head(os, "t/p/fp/n-1.avro/x", &size, etag, &err),
           AVS_DONE, "head below a file: AVS_DONE");

    memset(&b, 0, sizeof(b));
    ok(avs_objstore_get_range(os, "t/p/fp/n-1.avro", 1, 2, &b, &err)
       == AVS_OK && b.len == 2 && memcmp(b.data, "bc", 2) == 0,
       "range 1+2: bc");
    ok(avs_objstore_get_range(os, "t/p/fp/n-1.avro", 0, 3, &b, &err)
       == AVS_OK && b.len == 5 && memcmp(b.data, "bcabc", 5) == 0,
       "range 0+3 is appended");
    is_int(avs_objstore_get_range(os, "t/p/fp/n-1.avro", 2, 5, &b, &err),
           AVS_ESTORE, "range past the end: AVS_ESTORE (%s)", err.msg);
    is_int(avs_objstore_get_range(os, "t/p/fp/n-1.avro", 4, 1, &b, &err),
           AVS_ESTORE, "range starting past the end: AVS_ESTORE");
    is_int(b.len, 5, "failed ranges leave the buffer as it was");
    is_int(avs_objstore_get_range(os, "t/p/fp/none.avro", 0, 1, &b, &err),
           AVS_ESTORE, "range of a missing object: AVS_ESTORE (%s)",
           err.msg);
    ok(avs_objstore_get_range(os, "t/p/fp/n-1.avro", 3, 0, &b, &err)
       == AVS_OK && b.len == 5, "an empty range at the end: nothing");
    avs_buf_free(&b);

    snprintf(path, sizeof(path), "%s/missing", dir);
    is_int(avs_objstore_put_file(os, "t/p/fp/n-2.avro", path, etag, sha,
                                 &err),
           AVS_ESTORE, "put of a missing local file: AVS_ESTORE");
    ok(strstr(err.msg, "t/p/fp/n-2.avro") != NULL,
       "names the key: %s", err.msg);
    is_int(count_entries(sub), 1, "and leaves no temporary file");

    ok(avs_objstore_delete(os, "t/p/fp/n-1.avro", &err) == AVS_OK, "delete");
    is_int(avs_objstore_head(os, "t/p/fp/n-1.avro", &size, etag, &err),
           AVS_DONE, "gone");
    ok(avs_objstore_delete(os, "t/p/fp/n-1.avro", &err) == AVS_OK,
       "delete again: fine");
    ok(avs_objstore_delete(os, "t/none/x.avro", &err) == AVS_OK,
       "delete in a missing directory: fine");

    /* put_temp: a file built in the object's directory is renamed into
     * place, with the hash its builder computed */

    ok(avs_objstore_temp_dir(os, "t/r/fp/n-3.avro", sub, sizeof(sub), &err)
       == AVS_OK, "temp dir of a key");
    snprintf(path, sizeof(path), "%s/cold/t/r/fp", dir);
    is_str(sub, path, "is the object's directory, made");
    snprintf(path, sizeof(path), "%s/.n-3.tmp", sub);
    write_file(path, "abc");
    ok(avs_objstore_put_temp(os, "t/r/fp/n-3.avro", path,
                             "ba7816bf8f01cfea414140de5dae2223b00361a396177a"
                             "9cb410ff61f20015ad", 1, NULL, etag, &err)
       == AVS_OK,
       "put_temp, create only, of a free key: %s", err.msg);
    ok(access(path, F_OK) != 0, "the temporary file was renamed");
    is_int(count_entries(sub), 1, "one entry: the object");
    snprintf(path, sizeof(path), "%s/n-3.avro", sub);
    ok(stat(path, &st) == 0 && st.st_size == 3
       && (st.st_mode & 0777) == 0644, "the object, mode 0644");
    ok(avs_objstore_head(os, "t/r/fp/n-3.avro", &size, etag2, &err)
       == AVS_OK, "head");
    is_str(etag2, etag, "its tag is the hash given to put_temp");
    is_int(avs_objstore_put_temp(os, "t/r/fp/n-4.avro", path, "x", 0, NULL,
                                 etag, &err),
           AVS_EINTERNAL, "put_temp without a SHA-256: refused");

    /* create only: an object already under the key stays as it is */
    snprintf(path, sizeof(path), "%s/.n-3b.tmp", sub);
    write_file(path, "xyz");
    is_int(avs_objstore_put_temp(os, "t/r/fp/n-3.avro", path,
                                 "3608bca1e44ea6c4d268eb6db02260269892c0b42b86"
                                 "bbf1e77a6fa16c3c9282", 1, NULL, etag, &err),
           AVS_ECONFLICT, "put_temp, create only, of a taken key: "
           "AVS_ECONFLICT");
    ok(strstr(err.msg, "t/r/fp/n-3.avro") != NULL
       && strstr(err.msg, "taken") != NULL, "says so: %s", err.msg);
    ok(access(path, F_OK) == 0, "the file built stays where it was");
    ok(avs_objstore_head(os, "t/r/fp/n-3.avro", &size, etag2, &err)
       == AVS_OK && size == 3 && strcmp(etag2, etag) != 0
       && strncmp(etag2, "ba7816bf", 8) == 0, "the object is the first one");
    snprintf(path, sizeof(path), "%s/.n-3b.tmp", sub);
    ok(avs_objstore_put_temp(os, "t/r/fp/n-3.avro", path,
                             "3608bca1e44ea6c4d268eb6db02260269892c0b42b86"
                             "bbf1e77a6fa16c3c9282", 0, NULL, etag, &err)
       == AVS_OK,
       "without create only it replaces the object: %s", err.msg);
    ok(avs_objstore_head(os, "t/r/fp/n-3.avro", &size, etag2, &err)
       == AVS_OK && strncmp(etag2, "3608bca1", 8) == 0, "the second one now");
    is_int(count_entries(sub), 1, "one entry: the object");

    snprintf(path, sizeof(path), "%s/none", sub);
    is_int(avs_objstore_put_temp(os, "t/r/fp/n-4.avro", path, etag2, 0,
                                 NULL, etag, &err),
           AVS_ESTORE, "put_temp of a missing file: AVS_ESTORE");

    avs_objstore_close(os);

    /* "file:///abs" is the same store */
    snprintf(url, sizeof(url), "file://%s/cold", dir);
    ok(avs_objstore_open(&oc, &os, &err) == AVS_OK, "file:/// opens");
    ok(avs_objstore_put_file(os, "t/q.avro", src, etag, sha, &err)
       == AVS_OK, "and stores");
    snprintf(path, sizeof(path), "%s/cold/t/q.avro", dir);
    ok(stat(path, &st) == 0 && st.st_size == 3, "in the same directory");
    avs_objstore_close(os);
}


static void
test_bad_keys(void)
{
    char                    url[300], src[300], etag[AVS_ETAG_SIZE], sha[65];
    char                    longkey[AVS_OBJSTORE_KEY_MAX + 2];
    size_t                  i;
    uint64_t                size;
    avs_buf_t               b;
    avs_err_t               err;
    avs_objstore_t         *os;
    avs_objstore_conf_t     oc;
    avs_objstore_signed_t   sg;

    static const char  *bad[] = {
        "", "../x", "a/../b", "a/..", "..", "/x", "a//b", "a/", "a\\b",
        "a\nb", "a\x7f", "a\tb", ".", "./a", "a/./b", "a/."
    };

    memset(&err, 0, sizeof(avs_err_t));

    snprintf(url, sizeof(url), "file:%s/keys", dir);
    snprintf(src, sizeof(src), "%s/src", dir);

    memset(&oc, 0, sizeof(oc));
    oc.url = url;
    if (avs_objstore_open(&oc, &os, &err) != AVS_OK) {
        ok(0, "file: store opens");
        return;
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        is_int(avs_objstore_put_file(os, bad[i], src, etag, sha, &err),
               AVS_EINTERNAL, "put refuses key %zu: %s", i, err.msg);
        ok(strpbrk(err.msg, "\n\t\x7f") == NULL,
           "and does not quote control bytes");
    }

    memset(longkey, 'k', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = '\0';
    is_int(avs_objstore_put_file(os, longkey, src, etag, sha, &err),
           AVS_EINTERNAL, "key longer than %d bytes refused",
           AVS_OBJSTORE_KEY_MAX);

    memset(&b, 0, sizeof(b));
    is_int(avs_objstore_head(os, "../x", &size, etag, &err), AVS_EINTERNAL,
           "head refuses a bad key");
    is_int(avs_objstore_get_range(os, "../x", 0, 1, &b, &err),
           AVS_EINTERNAL, "get_range refuses a bad key");
    is_int(avs_objstore_delete(os, "../x", &err), AVS_EINTERNAL,
           "delete refuses a bad key");
    is_int(avs_objstore_sign_get(os, "../x", NULL, &sg, &err),
           AVS_EINTERNAL, "sign_get refuses a bad key");
    is_int(count_entries(dir), 2, "nothing was written outside the store");

    ok(avs_objstore_sign_get(os, "own_ship/2026-11-20/0a1b/n-1.avro",
                             "bytes=0-9", &sg, &err) == AVS_OK,
       "file: sign_get");
    is_str(sg.path, "own_ship/2026-11-20/0a1b/n-1.avro",
           "file: sign_get gives the path relative to the directory");
    ok(sg.authorization[0] == '\0' && sg.host[0] == '\0'
       && sg.security_token == NULL, "and nothing to sign");

    avs_objstore_close(os);
    avs_buf_free(&b);
}


/* One thread's share of the concurrent puts. */
typedef struct {
    avs_objstore_t  *os;
    const char      *src;
    int              id;
    int              failures;
} worker_t;


static void *
worker(void *arg)
{
    int        i;
    char       key[64], etag[AVS_ETAG_SIZE], sha[65];
    uint64_t   size;
    avs_err_t  err;
    worker_t  *w = arg;

    for (i = 0; i < NPUTS; i++) {
        /* every thread also writes the shared key: same bytes, any order */
        snprintf(key, sizeof(key), "c/%s/n-%d.avro",
                 (i % 2) ? "shared" : "own", (i % 2) ? 0 : w->id * 100 + i);

        if (avs_objstore_put_file(w->os, key, w->src, etag, sha, &err)
            != AVS_OK
            || avs_objstore_head(w->os, key, &size, etag, &err) != AVS_OK
            || size != 4096)
        {
            w->failures++;
        }
    }

    return NULL;
}


static void
test_threads(void)
{
    int                   i, failures;
    char                  url[300], src[300], sub[400];
    FILE                 *f;
    avs_err_t             err;
    pthread_t             tid[NTHREADS];
    worker_t              w[NTHREADS];
    avs_objstore_t       *os;
    avs_objstore_conf_t   oc;

    memset(&err, 0, sizeof(avs_err_t));

    snprintf(url, sizeof(url), "file:%s/threads", dir);
    snprintf(src, sizeof(src), "%s/src4k", dir);

    f = fopen(src, "w");
    for (i = 0; f != NULL && i < 4096; i++) {
        fputc('a' + i % 26, f);
    }
    if (f != NULL) {
        fclose(f);
    }

    memset(&oc, 0, sizeof(oc));
    oc.url = url;
    if (avs_objstore_open(&oc, &os, &err) != AVS_OK) {
        ok(0, "file: store opens");
        return;
    }

    for (i = 0; i < NTHREADS; i++) {
        w[i].os = os;
        w[i].src = src;
        w[i].id = i;
        w[i].failures = 0;
        pthread_create(&tid[i], NULL, worker, &w[i]);
    }

    failures = 0;
    for (i = 0; i < NTHREADS; i++) {
        pthread_join(tid[i], NULL);
        failures += w[i].failures;
    }

    is_int(failures, 0, "%d threads putting at once, a key shared: all fine",
           NTHREADS);

    snprintf(sub, sizeof(sub), "%s/threads/c/shared", dir);
    is_int(count_entries(sub), 1, "the shared key: one object, no temporary");
    snprintf(sub, sizeof(sub), "%s/threads/c/own", dir);
    is_int(count_entries(sub), NTHREADS * NPUTS / 2, "each thread's own ones");

    avs_objstore_close(os);
}


/* An s3 store that must not open; the message never holds the secret. */
static void
refused(avs_objstore_conf_t *oc, const char *why, const char *needle)
{
    avs_err_t        err;
    avs_objstore_t  *os;

    is_int(avs_objstore_open(oc, &os, &err), AVS_EMALFORMED, "%s: refused",
           why);
    ok(os == NULL, "%s: no store", why);
    ok(needle == NULL || strstr(err.msg, needle) != NULL,
       "%s: says so (%s)", why, err.msg);
    ok(strstr(err.msg, SECRET) == NULL && strstr(err.msg, "AKIDEXAMPLE")
       == NULL && strstr(err.msg, "TOKEN") == NULL,
       "%s: no credential in the message", why);
}


static void
test_configuration(void)
{
    char                  cred[300], bad[300], ini[300];
    avs_rc_t              rc;
    avs_err_t             err;
    avs_objstore_t       *os;
    avs_objstore_conf_t   oc;

    memset(&err, 0, sizeof(avs_err_t));

    snprintf(cred, sizeof(cred), "%s/cred", dir);
    write_file(cred, "# the test's keys\naccess_key_id=AKIDEXAMPLE\n"
                     "secret_access_key=" SECRET "\n");

    memset(&oc, 0, sizeof(oc));
    oc.url = "s3://bucket/prefix";
    oc.credentials = cred;
    refused(&oc, "s3:// without an endpoint", "endpoint=");

    oc.url = "relative/dir";
    refused(&oc, "a relative URL", "file:/");
    oc.url = "file:relative/dir";
    refused(&oc, "file: with a relative directory", "absolute");
    oc.url = "ftp://bucket";
    refused(&oc, "ftp://", NULL);

    oc.endpoint = "http://127.0.0.1:9000";
    oc.url = "s3://";
    refused(&oc, "s3:// without a bucket", "bucket");
    oc.url = "s3://bu cket/p";
    refused(&oc, "bucket with a space", "bucket");
    oc.url = "s3://bucket/a/../b";
    refused(&oc, "prefix with ..", "prefix");
    oc.url = "s3://bucket/a/./b";
    refused(&oc, "prefix with a . segment", "prefix");

    oc.url = "s3://bucket/prefix";
    oc.endpoint = "ftp://127.0.0.1";
    refused(&oc, "ftp endpoint", "http");
    oc.endpoint = "http://user:pass@127.0.0.1:9000";
    refused(&oc, "endpoint with user information", "without user");
    oc.endpoint = "http://127.0.0.1:9000/bucket";
    refused(&oc, "endpoint with a path", "without user, path");
    oc.endpoint = "http://";
    refused(&oc, "endpoint without a host", NULL);

    oc.endpoint = "http://127.0.0.1:9000";
    oc.region = "us east";
    refused(&oc, "region with a space", "region");
    oc.region = NULL;

    oc.credentials = NULL;
    refused(&oc, "no credentials file", "credentials=");

    snprintf(bad, sizeof(bad), "%s/none", dir);
    oc.credentials = bad;
    refused(&oc, "missing credentials file", "none");

    snprintf(bad, sizeof(bad), "%s/bad1", dir);
    write_file(bad, "access_key_id=AKIDEXAMPLE\n");
    oc.credentials = bad;
    refused(&oc, "no secret", "secret_access_key");

    write_file(bad, "access_key_id=AKIDEXAMPLE\n" SECRET "\n");
    refused(&oc, "a line without '='", "line 2");

    write_file(bad, "secret_access_key=" SECRET "\naccess_key_id=AKIDEXAMPLE"
                    "\nsecret_access_key=" SECRET "\n");
    refused(&oc, "a secret given twice", "twice");

    write_file(bad, "access_key_id =\nsecret_access_key=" SECRET "\n");
    refused(&oc, "an empty access key", "access_key_id is empty");

    /* ca=: read whole at open, so it must be a small regular file */
    snprintf(bad, sizeof(bad), "%s/empty.pem", dir);
    write_file(bad, "");
    snprintf(ini, sizeof(ini), "%s/none.pem", dir);
    oc.credentials = cred;
    oc.endpoint = "https://127.0.0.1:9000";

    {
        size_t  i;
        struct { const char *file, *why, *needle; }  cases[] = {
            { dir, "ca= names a directory", "PEM certificates" },
            { bad, "ca= names an empty file", "PEM certificates" },
            { ini, "ca= names no file", "none.pem" }
        };

        for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            oc.ca_file = cases[i].file;
            refused(&oc, cases[i].why, cases[i].needle);
        }
    }

    oc.endpoint = "http://127.0.0.1:9000";
    oc.ca_file = NULL;

    /* AWS shared credentials form: [default] only, spaces, comments */
    snprintf(ini, sizeof(ini), "%s/ini", dir);
    write_file(ini, "; AWS form\n[other]\naws_access_key_id = OTHER\n"
                    "aws_secret_access_key = OTHERSECRET\n\n[default]\r\n"
                    "aws_access_key_id = AKIDEXAMPLE\r\n"
                    "aws_secret_access_key = " SECRET "  \r\n"
                    "aws_session_token = TOKEN\r\nregion = us-east-1\r\n"
                    "[later]\naws_access_key_id = LATER\n");
    oc.credentials = ini;
    oc.url = "s3://bucket/pre/fix/";
    oc.endpoint = "http://127.0.0.1:9000/";
    oc.region = "auto";
    rc = avs_objstore_open(&oc, &os, &err);
    ok(rc == AVS_OK, "AWS credentials file, [default] profile: opens (%s)",
       rc == AVS_OK ? "" : err.msg);

    if (os != NULL) {
        avs_objstore_signed_t  sg;
        avs_sigv4_req_t        req;
        avs_sigv4_header_t     hdr[5];
        char                   auth[AVS_SIGV4_AUTH_SIZE];

        is_int(avs_objstore_is_s3(os), 1, "it is s3");

        ok(avs_objstore_sign_get(os, "own_ship/d/0a1b/user@x~1.avro",
                                 "bytes=5-9", &sg, &err) == AVS_OK,
           "sign_get: %s", err.msg);
        is_str(sg.path, "/bucket/pre/fix/own_ship/d/0a1b/user%40x~1.avro",
               "sign_get: the request URI, path-style, encoded");
        is_str(sg.host, "127.0.0.1:9000", "sign_get: Host");
        is_str(sg.content_sha256, AVS_SIGV4_EMPTY_SHA256,
               "sign_get: the empty payload's hash");
        ok(sg.security_token != NULL
           && strcmp(sg.security_token, "TOKEN") == 0,
           "sign_get: the session token of [default], to send");
        ok(strncmp(sg.authorization, "AWS4-HMAC-SHA256 Credential="
                   "AKIDEXAMPLE/", 40) == 0
           && strstr(sg.authorization, "/auto/s3/aws4_request, "
                     "SignedHeaders=host;range;x-amz-content-sha256;"
                     "x-amz-date;x-amz-security-token, Signature=") != NULL,
           "sign_get: %s", sg.authorization);

        /* the same request signed by hand must give the same value */
        hdr[0].name = "Host";
        hdr[0].value = "127.0.0.1:9000";
        hdr[1].name = "Range";
        hdr[1].value = "bytes=5-9";
        hdr[2].name = "X-Amz-Content-SHA256";
        hdr[2].value = AVS_SIGV4_EMPTY_SHA256;
        hdr[3].name = "X-Amz-Date";
        hdr[3].value = sg.amz_date;
        hdr[4].name = "X-Amz-Security-Token";
        hdr[4].value = "TOKEN";

        memset(&req, 0, sizeof(req));
        req.method = "GET";
        req.path = "/bucket/pre/fix/own_ship/d/0a1b/user@x~1.avro";
        req.headers = hdr;
        req.nheaders = 5;
        req.payload_sha256 = AVS_SIGV4_EMPTY_SHA256;
        req.access_key = "AKIDEXAMPLE";
        req.secret_key = SECRET;
        req.region = "auto";
        req.service = "s3";
        req.amz_date = sg.amz_date;

        ok(avs_sigv4_sign(&req, auth, sizeof(auth), &err) == AVS_OK
           && strcmp(auth, sg.authorization) == 0,
           "sign_get signs what the signer signs for that request");

        ok(avs_objstore_sign_get(os, "k.avro", NULL, &sg, &err) == AVS_OK
           && strstr(sg.authorization, "SignedHeaders=host;"
                     "x-amz-content-sha256;x-amz-date;") != NULL,
           "sign_get without a range signs no range");

        is_int(avs_objstore_sign_get(os, "k.avro", "bytes=0-1\r\nX: y", &sg,
                                     &err),
               AVS_EINTERNAL, "a range with CR LF is refused");

        avs_objstore_close(os);
    }

    /* "aws_session_token =", as tools write it: no token, none signed */
    write_file(ini, "[default]\naws_access_key_id = AKIDEXAMPLE\n"
                    "aws_secret_access_key = " SECRET "\n"
                    "aws_session_token =\n");
    oc.url = "s3://bucket";
    oc.credentials = ini;
    oc.region = NULL;
    ok(avs_objstore_open(&oc, &os, &err) == AVS_OK,
       "s3://bucket without a prefix opens");

    if (os != NULL) {
        avs_objstore_signed_t  sg;
        char                   key[300];

        ok(avs_objstore_sign_get(os, "a/b.avro", NULL, &sg, &err) == AVS_OK
           && strcmp(sg.path, "/bucket/a/b.avro") == 0
           && strstr(sg.authorization, "/us-east-1/s3/") != NULL,
           "its path has no prefix, region us-east-1: %s", sg.path);
        ok(sg.security_token == NULL
           && strstr(sg.authorization, "security-token") == NULL,
           "an empty session token is no token");

        /* "/bucket/" and the key fill the encoded path's first buffer
         * (256 bytes with its NUL) exactly */
        memset(key, 'k', 247);
        key[247] = '\0';
        ok(avs_objstore_sign_get(os, key, NULL, &sg, &err) == AVS_OK
           && strlen(sg.path) == 255 && strncmp(sg.path, "/bucket/kkk", 11)
              == 0, "a path of 255 bytes, whole");
        avs_objstore_close(os);
    }
}


int
main(void)
{
    char  cmd[400];

    if (mkdtemp(dir) == NULL) {
        printf("1..0 # SKIP no temporary directory\n");
        return 0;
    }

    test_file_store();
    test_bad_keys();
    test_threads();
    test_configuration();

    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) {
        printf("# could not remove %s\n", dir);
    }

    return done_testing();
}
