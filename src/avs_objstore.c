/*
 * Object stores.  file: is a local directory: an object is written under a
 * temporary name in its final directory, flushed, renamed into place and
 * the directory flushed, so that after a crash it is whole or absent.
 * s3:// speaks the S3 API with libcurl, path-style, every request signed
 * with AWS Signature Version 4 (avs_sigv4.c).  Secrets never appear in an
 * error message.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <pthread.h>
#include <curl/curl.h>
#include <openssl/evp.h>

#include "avs_objstore.h"
#include "avs_sigv4.h"


#define AVS_OBJSTORE_COPY  (256 * 1024)


struct avs_objstore_s {
    char      *root;          /* file: directory, no trailing slash */

    int        s3;
    char      *endpoint;      /* scheme://host[:port], no trailing slash */
    char      *host;          /* host[:port], as sent in Host */
    char      *bucket;
    char      *prefix;        /* "" or "a/b/" */
    char      *region;
    char       access_key[AVS_SIGV4_SECRET_MAX];
    char       secret_key[AVS_SIGV4_SECRET_MAX];
    long       timeout_ms;
};


/* What one S3 request needs and what it brings back. */
typedef struct {
    const char  *method;
    const char  *key;
    const char  *range;           /* NULL or "bytes=a-b" */
    const char  *payload_sha256;
    FILE        *upload;
    uint64_t     upload_size;
    avs_buf_t   *body;            /* response body, bounded */
    long         status;
    char         etag[AVS_ETAG_SIZE];
    uint64_t     length;
} avs_s3_call_t;


static avs_rc_t avs_s3_open(avs_objstore_t *os,
    const avs_objstore_conf_t *conf, avs_err_t *err);
static avs_rc_t avs_s3_credentials(avs_objstore_t *os, const char *path,
    avs_err_t *err);
static avs_rc_t avs_s3_request(avs_objstore_t *os, avs_s3_call_t *call,
    avs_err_t *err);
static avs_rc_t avs_s3_failed(const avs_s3_call_t *call, avs_err_t *err);
static avs_rc_t avs_s3_put(avs_objstore_t *os, const char *key,
    const char *path, char etag[AVS_ETAG_SIZE], char sha256[65],
    avs_err_t *err);


static avs_rc_t avs_objstore_key(const char *key, avs_err_t *err);
static char *avs_objstore_path(avs_objstore_t *os, const char *key,
    const char *suffix);
static avs_rc_t avs_objstore_mkdirs(char *path, avs_err_t *err);
static avs_rc_t avs_objstore_copy(int in, int out, const char *key,
    char sha256[65], avs_err_t *err);
static avs_rc_t avs_objstore_sync_dir(const char *path, avs_err_t *err);


avs_rc_t
avs_objstore_open(const avs_objstore_conf_t *conf, avs_objstore_t **out,
    avs_err_t *err)
{
    avs_objstore_t  *os;
    size_t           len;

    *out = NULL;

    if (strncmp(conf->url, "s3://", 5) == 0) {
        os = calloc(1, sizeof(avs_objstore_t));
        if (os == NULL) {
            return avs_err_set(err, AVS_ENOMEM, "out of memory");
        }

        if (avs_s3_open(os, conf, err) != AVS_OK) {
            avs_objstore_close(os);
            return err->rc;
        }

        *out = os;
        return AVS_OK;
    }

    if (strncmp(conf->url, "file:/", 6) != 0) {
        return avs_err_set(err, AVS_EMALFORMED,
                           "cold store \"%.100s\": use file:/<directory>",
                           conf->url);
    }

    os = calloc(1, sizeof(avs_objstore_t));
    if (os == NULL) {
        return avs_err_set(err, AVS_ENOMEM, "out of memory");
    }

    os->root = strdup(conf->url + 5);
    if (os->root == NULL) {
        free(os);
        return avs_err_set(err, AVS_ENOMEM, "out of memory");
    }

    len = strlen(os->root);

    while (len > 1 && os->root[len - 1] == '/') {
        os->root[--len] = '\0';
    }

    *out = os;

    return AVS_OK;
}


void
avs_objstore_close(avs_objstore_t *os)
{
    if (os == NULL) {
        return;
    }

    free(os->root);
    free(os->endpoint);
    free(os->host);
    free(os->bucket);
    free(os->prefix);
    free(os->region);
    memset(os->secret_key, 0, sizeof(os->secret_key));
    free(os);
}


static pthread_once_t  avs_curl_once = PTHREAD_ONCE_INIT;

static void
avs_curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}


/* s3://bucket[/prefix] with endpoint=scheme://host[:port] */
static avs_rc_t
avs_s3_open(avs_objstore_t *os, const avs_objstore_conf_t *conf,
    avs_err_t *err)
{
    const char  *b, *slash, *h;
    size_t       len;

    os->s3 = 1;
    b = conf->url + 5;
    slash = strchr(b, '/');
    len = slash ? (size_t) (slash - b) : strlen(b);

    if (len == 0 || len > 63 || conf->endpoint == NULL
        || (strncmp(conf->endpoint, "http://", 7) != 0
            && strncmp(conf->endpoint, "https://", 8) != 0))
    {
        return avs_err_set(err, AVS_EMALFORMED,
                           "cold store: use s3://<bucket>/<prefix> with "
                           "endpoint=http(s)://host[:port]");
    }

    os->bucket = strndup(b, len);
    os->endpoint = strdup(conf->endpoint);
    os->region = strdup(conf->region ? conf->region : "us-east-1");

    if (os->bucket == NULL || os->endpoint == NULL || os->region == NULL) {
        return avs_err_set(err, AVS_ENOMEM, "out of memory");
    }

    len = strlen(os->endpoint);
    while (len > 0 && os->endpoint[len - 1] == '/') {
        os->endpoint[--len] = '\0';
    }

    h = strstr(os->endpoint, "://") + 3;
    os->host = strndup(h, strcspn(h, "/"));

    /* the prefix, without slashes around it, then one slash after it */
    b = slash ? slash : "";
    while (*b == '/') {
        b++;
    }

    len = strlen(b);
    while (len > 0 && b[len - 1] == '/') {
        len--;
    }

    os->prefix = malloc(len + 2);
    if (os->host == NULL || os->prefix == NULL) {
        return avs_err_set(err, AVS_ENOMEM, "out of memory");
    }

    memcpy(os->prefix, b, len);
    os->prefix[len] = len ? '/' : '\0';
    os->prefix[len + (len ? 1 : 0)] = '\0';

    os->timeout_ms = conf->timeout_ms ? (long) conf->timeout_ms : 60000;

    pthread_once(&avs_curl_once, avs_curl_init);

    if (conf->credentials == NULL) {
        return avs_err_set(err, AVS_EMALFORMED,
                           "cold store: s3:// needs credentials=<file>");
    }

    return avs_s3_credentials(os, conf->credentials, err);
}


/*
 * The credentials file: "access_key_id=..." and "secret_access_key=..."
 * lines; the AWS names (aws_access_key_id, aws_secret_access_key), spaces
 * around "=", comments (#, ;) and [sections] are accepted too.
 */
static avs_rc_t
avs_s3_credentials(avs_objstore_t *os, const char *path, avs_err_t *err)
{
    FILE   *f;
    char    line[600], *k, *v, *e;

    f = fopen(path, "r");
    if (f == NULL) {
        return avs_err_set(err, AVS_EMALFORMED,
                           "cold store: credentials %.200s: %s", path,
                           strerror(errno));
    }

    while (fgets(line, sizeof(line), f) != NULL) {
        k = line + strspn(line, " \t");
        v = strchr(k, '=');

        if (*k == '#' || *k == ';' || *k == '[' || v == NULL) {
            continue;
        }

        for (e = v; e > k && (e[-1] == ' ' || e[-1] == '\t'); e--) {
            /* void */
        }

        *e = '\0';
        v++;
        v += strspn(v, " \t");
        v[strcspn(v, " \t\r\n")] = '\0';

        if (strcmp(k, "access_key_id") == 0
            || strcmp(k, "aws_access_key_id") == 0)
        {
            snprintf(os->access_key, sizeof(os->access_key), "%s", v);

        } else if (strcmp(k, "secret_access_key") == 0
                   || strcmp(k, "aws_secret_access_key") == 0)
        {
            snprintf(os->secret_key, sizeof(os->secret_key), "%s", v);
        }
    }

    fclose(f);
    memset(line, 0, sizeof(line));

    if (os->access_key[0] == '\0' || os->secret_key[0] == '\0') {
        return avs_err_set(err, AVS_EMALFORMED,
                           "cold store: credentials %.200s: no "
                           "access_key_id or secret_access_key", path);
    }

    return AVS_OK;
}


static size_t
avs_s3_on_body(char *p, size_t size, size_t n, void *data)
{
    avs_s3_call_t *call = data;

    /* keep what fits: an error body is only read for its <Code> */
    (void) avs_buf_append(call->body, p, size * n);

    return size * n;
}


static size_t
avs_s3_on_header(char *p, size_t size, size_t n, void *data)
{
    avs_s3_call_t *call = data;
    size_t         len, vlen;
    char          *v;

    len = size * n;

    if (len > 5 && strncasecmp(p, "etag:", 5) == 0) {
        v = p + 5;
        vlen = len - 5;

        while (vlen > 0 && (*v == ' ' || *v == '"')) {
            v++;
            vlen--;
        }

        while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n'
                            || v[vlen - 1] == '"'))
        {
            vlen--;
        }

        snprintf(call->etag, sizeof(call->etag), "%.*s", (int) vlen, v);
    }

    return len;
}


/* One signed request; the caller judges call->status. */
static avs_rc_t
avs_s3_request(avs_objstore_t *os, avs_s3_call_t *call, avs_err_t *err)
{
    avs_sigv4_header_t   hdr[4];
    avs_sigv4_req_t      req;
    struct curl_slist   *list, *l;
    curl_off_t           cl;
    avs_buf_t            path, url;
    CURLcode             cc;
    CURL                *c;
    avs_rc_t             rc;
    size_t               nh;
    char                 date[AVS_SIGV4_DATE_SIZE], auth[AVS_SIGV4_AUTH_SIZE];
    char                 line[AVS_SIGV4_AUTH_SIZE + 64];

    memset(&path, 0, sizeof(path));
    memset(&url, 0, sizeof(url));
    list = NULL;
    c = NULL;

    if (avs_buf_append(&path, "/", 1) != AVS_OK
        || avs_buf_append(&path, os->bucket, strlen(os->bucket)) != AVS_OK
        || avs_buf_append(&path, "/", 1) != AVS_OK
        || avs_buf_append(&path, os->prefix, strlen(os->prefix)) != AVS_OK
        || avs_buf_append(&path, call->key, strlen(call->key)) != AVS_OK
        || avs_buf_append(&path, "", 1) != AVS_OK
        || avs_buf_append(&url, os->endpoint, strlen(os->endpoint)) != AVS_OK
        || avs_sigv4_uri_encode(&url, (char *) path.data, path.len - 1, 1)
           != AVS_OK
        || avs_buf_append(&url, "", 1) != AVS_OK)
    {
        rc = avs_err_set(err, AVS_ENOMEM, "out of memory");
        goto done;
    }

    avs_sigv4_amz_date(time(NULL), date);

    nh = 0;
    hdr[nh].name = "host";
    hdr[nh++].value = os->host;
    hdr[nh].name = "x-amz-content-sha256";
    hdr[nh++].value = call->payload_sha256;
    hdr[nh].name = "x-amz-date";
    hdr[nh++].value = date;

    if (call->range != NULL) {
        hdr[nh].name = "range";
        hdr[nh++].value = call->range;
    }

    memset(&req, 0, sizeof(req));
    req.method = call->method;
    req.path = (const char *) path.data;
    req.query = "";
    req.headers = hdr;
    req.nheaders = nh;
    req.payload_sha256 = call->payload_sha256;
    req.access_key = os->access_key;
    req.secret_key = os->secret_key;
    req.region = os->region;
    req.service = "s3";
    req.amz_date = date;

    rc = avs_sigv4_sign(&req, auth, sizeof(auth), err);
    if (rc != AVS_OK) {
        goto done;
    }

    snprintf(line, sizeof(line), "Authorization: %s", auth);
    l = curl_slist_append(list, line);
    list = l ? l : list;
    snprintf(line, sizeof(line), "x-amz-date: %s", date);
    l = l ? curl_slist_append(list, line) : NULL;
    snprintf(line, sizeof(line), "x-amz-content-sha256: %s",
             call->payload_sha256);
    l = l ? curl_slist_append(list, line) : NULL;
    l = l ? curl_slist_append(list, "Expect:") : NULL;

    if (l != NULL && call->range != NULL) {
        snprintf(line, sizeof(line), "Range: %s", call->range);
        l = curl_slist_append(list, line);
    }

    memset(line, 0, sizeof(line));
    memset(auth, 0, sizeof(auth));

    c = curl_easy_init();

    if (l == NULL || c == NULL) {
        rc = avs_err_set(err, AVS_ENOMEM, "out of memory");
        goto done;
    }

    curl_easy_setopt(c, CURLOPT_URL, (char *) url.data);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, os->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, avs_s3_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, call);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, avs_s3_on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, call);

    if (call->upload != NULL) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READDATA, call->upload);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE,
                         (curl_off_t) call->upload_size);

    } else if (strcmp(call->method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);

    } else if (strcmp(call->method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, call->method);
    }

    cc = curl_easy_perform(c);

    if (cc != CURLE_OK) {
        rc = avs_err_set(err, AVS_ESTORE, "%s %s: %s", call->method,
                         call->key, curl_easy_strerror(cc));
        goto done;
    }

    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &call->status);

    if (curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl)
        == CURLE_OK && cl > 0)
    {
        call->length = (uint64_t) cl;
    }

    rc = AVS_OK;

done:

    if (c != NULL) {
        curl_easy_cleanup(c);
    }

    curl_slist_free_all(list);
    avs_buf_free(&path);
    avs_buf_free(&url);

    return rc;
}


/* An answer the caller did not expect: the status and the store's <Code>. */
static avs_rc_t
avs_s3_failed(const avs_s3_call_t *call, avs_err_t *err)
{
    const char  *code, *end;
    int          n;

    code = NULL;
    n = 0;

    if (call->body != NULL && call->body->len > 0) {
        avs_buf_append(call->body, "", 1);
        code = strstr((const char *) call->body->data, "<Code>");

        if (code != NULL) {
            code += 6;
            end = strstr(code, "</Code>");
            n = end ? (int) (end - code) : 0;
            n = n > 64 ? 64 : n;
        }
    }

    return avs_err_set(err, AVS_ESTORE, "%s %s: the store answered %ld%s%.*s",
                       call->method, call->key, call->status,
                       n ? " " : "", n, n ? code : "");
}


/*
 * Keys come from validated names, but a key that could leave the store's
 * directory is refused here too: it would be a bug, not a client's input.
 */
static avs_rc_t
avs_objstore_key(const char *key, avs_err_t *err)
{
    const char  *p;

    if (key[0] == '\0' || key[0] == '/' || strstr(key, "//") != NULL
        || strstr(key, "..") != NULL || strlen(key) > 1024)
    {
        return avs_err_set(err, AVS_EINTERNAL, "bad object key \"%.200s\"",
                           key);
    }

    for (p = key; *p; p++) {
        if ((unsigned char) *p < 0x20 || *p == '\\' || *p == 0x7f) {
            return avs_err_set(err, AVS_EINTERNAL,
                               "bad byte in object key \"%.200s\"", key);
        }
    }

    return AVS_OK;
}


static char *
avs_objstore_path(avs_objstore_t *os, const char *key, const char *suffix)
{
    size_t   len;
    char    *path;

    len = strlen(os->root) + strlen(key) + strlen(suffix) + 2;
    path = malloc(len);

    if (path != NULL) {
        snprintf(path, len, "%s/%s%s", os->root, key, suffix);
    }

    return path;
}


/* Creates the directories of path (not its last part), like mkdir -p. */
static avs_rc_t
avs_objstore_mkdirs(char *path, avs_err_t *err)
{
    char  *p;

    for (p = path + 1; *p; p++) {
        if (*p != '/') {
            continue;
        }

        *p = '\0';

        if (mkdir(path, 0755) == -1 && errno != EEXIST) {
            avs_err_set(err, AVS_ESTORE, "mkdir %s: %s", path,
                        strerror(errno));
            *p = '/';
            return AVS_ESTORE;
        }

        *p = '/';
    }

    return AVS_OK;
}


/* Copies in to out and hashes what it copies. */
static avs_rc_t
avs_objstore_copy(int in, int out, const char *key, char sha256[65],
    avs_err_t *err)
{
    static const char   hex[] = "0123456789abcdef";
    EVP_MD_CTX         *md;
    unsigned char       digest[EVP_MAX_MD_SIZE];
    unsigned int        dlen, i;
    uint8_t            *buf;
    ssize_t             n, w, off;
    avs_rc_t            rc;

    buf = malloc(AVS_OBJSTORE_COPY);
    md = EVP_MD_CTX_new();

    if (buf == NULL || md == NULL
        || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
    {
        free(buf);
        EVP_MD_CTX_free(md);
        return avs_err_set(err, AVS_ENOMEM, "out of memory");
    }

    rc = AVS_OK;

    for ( ;; ) {
        n = read(in, buf, AVS_OBJSTORE_COPY);

        if (n == 0) {
            break;
        }

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }

            rc = avs_err_set(err, AVS_ESTORE, "put %s: read: %s", key,
                             strerror(errno));
            break;
        }

        EVP_DigestUpdate(md, buf, (size_t) n);

        for (off = 0; off < n; off += w) {
            w = write(out, buf + off, (size_t) (n - off));

            if (w < 0 && errno == EINTR) {
                w = 0;
                continue;
            }

            if (w < 0) {
                rc = avs_err_set(err, AVS_ESTORE, "put %s: write: %s", key,
                                 strerror(errno));
                break;
            }
        }

        if (rc != AVS_OK) {
            break;
        }
    }

    dlen = 0;

    if (rc == AVS_OK && EVP_DigestFinal_ex(md, digest, &dlen) == 1) {
        for (i = 0; i < dlen && i < 32; i++) {
            sha256[2 * i] = hex[digest[i] >> 4];
            sha256[2 * i + 1] = hex[digest[i] & 0x0f];
        }
    }

    sha256[2 * (dlen < 32 ? dlen : 32)] = '\0';

    EVP_MD_CTX_free(md);
    free(buf);

    return rc;
}


/* Makes a rename durable: flushes the directory that holds path. */
static avs_rc_t
avs_objstore_sync_dir(const char *path, avs_err_t *err)
{
    char  *dir, *slash;
    int    fd;

    dir = strdup(path);
    if (dir == NULL) {
        return avs_err_set(err, AVS_ENOMEM, "out of memory");
    }

    slash = strrchr(dir, '/');
    if (slash != NULL && slash != dir) {
        *slash = '\0';
    }

    fd = open(dir, O_RDONLY | O_DIRECTORY);

    if (fd == -1 || fsync(fd) == -1) {
        avs_err_set(err, AVS_ESTORE, "fsync %s: %s", dir, strerror(errno));
        if (fd != -1) {
            close(fd);
        }
        free(dir);
        return AVS_ESTORE;
    }

    close(fd);
    free(dir);

    return AVS_OK;
}


/* PUT from a file, signed with the file's SHA-256 (computed first). */
static avs_rc_t
avs_s3_put(avs_objstore_t *os, const char *key, const char *path,
    char etag[AVS_ETAG_SIZE], char sha256[65], avs_err_t *err)
{
    avs_s3_call_t  call;
    avs_buf_t      body;
    avs_rc_t       rc;
    uint64_t       size;

    rc = avs_sha256_file_hex(path, sha256, &size, err);
    if (rc != AVS_OK) {
        return rc;
    }

    memset(&call, 0, sizeof(call));
    memset(&body, 0, sizeof(body));
    body.limit = 4096;

    call.method = "PUT";
    call.key = key;
    call.payload_sha256 = sha256;
    call.upload_size = size;
    call.body = &body;
    call.upload = fopen(path, "rb");

    if (call.upload == NULL) {
        return avs_err_set(err, AVS_ESTORE, "put %s: %s", key,
                           strerror(errno));
    }

    rc = avs_s3_request(os, &call, err);
    fclose(call.upload);

    if (rc == AVS_OK && call.status != 200) {
        rc = avs_s3_failed(&call, err);
    }

    if (rc == AVS_OK) {
        snprintf(etag, AVS_ETAG_SIZE, "%s", call.etag);
    }

    avs_buf_free(&body);

    return rc;
}


avs_rc_t
avs_objstore_put_file(avs_objstore_t *os, const char *key, const char *path,
    char etag[AVS_ETAG_SIZE], char sha256[65], avs_err_t *err)
{
    struct stat  st;
    avs_rc_t     rc;
    char        *final, *tmp, suffix[48];
    int          in, out;

    rc = avs_objstore_key(key, err);
    if (rc != AVS_OK) {
        return rc;
    }

    if (os->s3) {
        return avs_s3_put(os, key, path, etag, sha256, err);
    }

    snprintf(suffix, sizeof(suffix), ".tmp-%ld", (long) getpid());

    final = avs_objstore_path(os, key, "");
    tmp = avs_objstore_path(os, key, suffix);
    in = -1;
    out = -1;

    if (final == NULL || tmp == NULL) {
        rc = avs_err_set(err, AVS_ENOMEM, "out of memory");
        goto done;
    }

    rc = avs_objstore_mkdirs(tmp, err);
    if (rc != AVS_OK) {
        goto done;
    }

    in = open(path, O_RDONLY);
    out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);

    if (in == -1 || out == -1) {
        rc = avs_err_set(err, AVS_ESTORE, "put %s: open: %s", key,
                         strerror(errno));
        goto done;
    }

    rc = avs_objstore_copy(in, out, key, sha256, err);
    if (rc != AVS_OK) {
        goto done;
    }

    if (fsync(out) == -1 || fstat(out, &st) == -1) {
        rc = avs_err_set(err, AVS_ESTORE, "put %s: fsync: %s", key,
                         strerror(errno));
        goto done;
    }

    close(out);
    out = -1;

    if (rename(tmp, final) == -1) {
        rc = avs_err_set(err, AVS_ESTORE, "put %s: rename: %s", key,
                         strerror(errno));
        goto done;
    }

    rc = avs_objstore_sync_dir(final, err);

    /* the tag of a local object: its SHA-256, like an S3 ETag of a PUT */
    snprintf(etag, AVS_ETAG_SIZE, "%s", sha256);

done:

    if (in != -1) {
        close(in);
    }

    if (out != -1) {
        close(out);
    }

    if (rc != AVS_OK && tmp != NULL) {
        (void) unlink(tmp);
    }

    free(final);
    free(tmp);

    return rc;
}


avs_rc_t
avs_objstore_head(avs_objstore_t *os, const char *key, uint64_t *size,
    char etag[AVS_ETAG_SIZE], avs_err_t *err)
{
    avs_s3_call_t  call;
    struct stat    st;
    avs_rc_t     rc;
    char        *path;

    rc = avs_objstore_key(key, err);
    if (rc != AVS_OK) {
        return rc;
    }

    if (os->s3) {
        memset(&call, 0, sizeof(call));
        call.method = "HEAD";
        call.key = key;
        call.payload_sha256 = AVS_SIGV4_EMPTY_SHA256;

        rc = avs_s3_request(os, &call, err);
        if (rc != AVS_OK) {
            return rc;
        }

        if (call.status == 404) {
            return AVS_DONE;
        }

        if (call.status != 200) {
            return avs_s3_failed(&call, err);
        }

        *size = call.length;
        snprintf(etag, AVS_ETAG_SIZE, "%s", call.etag);
        return AVS_OK;
    }

    path = avs_objstore_path(os, key, "");
    if (path == NULL) {
        return avs_err_set(err, AVS_ENOMEM, "out of memory");
    }

    if (stat(path, &st) == -1) {
        rc = (errno == ENOENT)
             ? AVS_DONE
             : avs_err_set(err, AVS_ESTORE, "head %s: %s", key,
                           strerror(errno));
        free(path);
        return rc;
    }

    free(path);

    *size = (uint64_t) st.st_size;
    snprintf(etag, AVS_ETAG_SIZE, "%llx-%llx",
             (unsigned long long) st.st_size,
             (unsigned long long) st.st_mtime);

    return AVS_OK;
}


avs_rc_t
avs_objstore_get_range(avs_objstore_t *os, const char *key, uint64_t offset,
    uint64_t length, avs_buf_t *out, avs_err_t *err)
{
    avs_s3_call_t  call;
    size_t         start;
    char           range[64];
    avs_rc_t   rc;
    ssize_t    n;
    uint64_t   done;
    char      *path;
    int        fd;

    rc = avs_objstore_key(key, err);
    if (rc != AVS_OK) {
        return rc;
    }

    rc = avs_buf_reserve(out, length);
    if (rc != AVS_OK) {
        return avs_err_set(err, rc, "get %s: %llu bytes", key,
                           (unsigned long long) length);
    }

    if (os->s3) {
        start = out->len;
        memset(&call, 0, sizeof(call));
        snprintf(range, sizeof(range), "bytes=%llu-%llu",
                 (unsigned long long) offset,
                 (unsigned long long) (offset + length - 1));
        call.method = "GET";
        call.key = key;
        call.range = range;
        call.payload_sha256 = AVS_SIGV4_EMPTY_SHA256;
        call.body = out;

        rc = avs_s3_request(os, &call, err);

        if (rc == AVS_OK
            && (call.status != 206 || out->len - start != length))
        {
            if (call.status == 206) {
                call.status = 0;
            }

            out->len = start;
            rc = (call.status != 0)
                 ? avs_s3_failed(&call, err)
                 : avs_err_set(err, AVS_ESTORE, "get %s: wrong length", key);
        }

        return rc;
    }

    path = avs_objstore_path(os, key, "");
    if (path == NULL) {
        return avs_err_set(err, AVS_ENOMEM, "out of memory");
    }

    fd = open(path, O_RDONLY);
    free(path);

    if (fd == -1) {
        return avs_err_set(err, AVS_ESTORE, "get %s: %s", key,
                           strerror(errno));
    }

    for (done = 0; done < length; done += (uint64_t) n) {
        n = pread(fd, out->data + out->len + done, length - done,
                  (off_t) (offset + done));

        if (n <= 0) {
            close(fd);
            return avs_err_set(err, AVS_ESTORE, "get %s: short read at %llu",
                               key, (unsigned long long) (offset + done));
        }
    }

    close(fd);
    out->len += length;

    return AVS_OK;
}


avs_rc_t
avs_objstore_delete(avs_objstore_t *os, const char *key, avs_err_t *err)
{
    avs_s3_call_t  call;
    avs_rc_t       rc;
    char      *path;

    rc = avs_objstore_key(key, err);
    if (rc != AVS_OK) {
        return rc;
    }

    if (os->s3) {
        memset(&call, 0, sizeof(call));
        call.method = "DELETE";
        call.key = key;
        call.payload_sha256 = AVS_SIGV4_EMPTY_SHA256;

        rc = avs_s3_request(os, &call, err);

        if (rc == AVS_OK && call.status != 204 && call.status != 200
            && call.status != 404)
        {
            rc = avs_s3_failed(&call, err);
        }

        return rc;
    }

    path = avs_objstore_path(os, key, "");
    if (path == NULL) {
        return avs_err_set(err, AVS_ENOMEM, "out of memory");
    }

    if (unlink(path) == -1 && errno != ENOENT) {
        rc = avs_err_set(err, AVS_ESTORE, "delete %s: %s", key,
                         strerror(errno));
    }

    free(path);

    return rc;
}
