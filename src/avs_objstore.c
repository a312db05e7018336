/*
 * Object stores (see avs_objstore.h).
 *
 * file: is a local directory: an object is written under a hidden
 * temporary name in its final directory, flushed, renamed into place and
 * the directory flushed, so that after a crash it is whole or absent.
 *
 * s3:// speaks the S3 REST API with libcurl, path-style (http://host:port/
 * bucket/prefix/key), every request signed with AWS Signature Version 4
 * (avs_sigv4.c).  One easy handle per request, so any thread may call;
 * curl_global_init runs once.  Secrets never reach an error message: the
 * messages name the method, the key, and what the store answered (status
 * and the <Code> of its error body, nothing else of it).
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* renameat2 */
#endif

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "avs_digest.h"
#include "avs_objstore.h"


#define AVS_OBJSTORE_COPY        (256 * 1024)
#define AVS_OBJSTORE_TIMEOUT_MS  60000
#define AVS_S3_BUCKET_MAX        63
#define AVS_S3_ERROR_BODY        1024
#define AVS_S3_MAX_HEADERS       6
#define AVS_S3_CRED_LINE         4096
#define AVS_S3_UPLOAD_BUFFER     (256 * 1024)
#define AVS_S3_CA_MAX            (4 * 1024 * 1024)


struct avs_objstore_s {
    int        s3;
    char      *root;          /* file: directory, no trailing slash */

    char      *endpoint;      /* s3: scheme://authority, no trailing '/' */
    char      *host;          /* s3: the authority, as sent in Host */
    char      *bucket;
    char      *prefix;        /* "" or "a/b/" */
    char      *region;
    char      *access_key;
    char      *secret_key;
    char      *session_token; /* or NULL */
    char      *ca_file;       /* or NULL: the system's CA certificates */
    char      *ca_pem;        /* the ca_file's certificates, read at open */
    size_t     ca_len;
    long       timeout_ms;
    int        signed_payload;
    int        tls;           /* https: the transfer is protected */
};


/* What one S3 request needs and what it brings back. */
typedef struct {
    const char  *method;
    const char  *key;
    const char  *range;            /* NULL or "bytes=a-b" */
    const char  *payload_sha256;
    FILE        *upload;
    uint64_t     upload_size;
    int          create_only;      /* If-None-Match: * */
    const char  *writer;           /* or NULL: AVS_WRITER_HEADER sent */
    avs_objstore_read_pt  read;    /* or the body comes from here */
    void        *read_data;
    avs_digest_t  *digest;         /* of the bytes read sent */
    uint64_t     sent;
    int          read_failed;
    avs_buf_t   *body;             /* where a 2xx body goes, or NULL */
    uint64_t     body_max;         /* most bytes of it accepted */
    uint64_t     body_got;
    int          overflow;
    CURL        *curl;
    long         status;
    uint64_t     length;           /* Content-Length of the answer */
    char         etag[AVS_ETAG_SIZE];
    char         writer_seen[AVS_WRITER_SIZE];
    size_t       error_len;
    char         error_body[AVS_S3_ERROR_BODY];
} avs_s3_call_t;


static pthread_once_t  avs_curl_once = PTHREAD_ONCE_INIT;


/* Frees a string that held a secret, wiping it first. */
static void
avs_objstore_free_secret(char *s)
{
    if (s != NULL) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}


/*
 * Keys come from validated names, but a key that could leave the store's
 * directory or prefix is refused here too: it would be a bug, not a
 * client's input.  A key with control bytes is not quoted in the message.
 */
static avs_rc_t
avs_objstore_key(const char *key, avs_err_t *err)
{
    size_t  i, len;

    len = strlen(key);

    for (i = 0; i < len; i++) {
        if ((unsigned char) key[i] < 0x20 || key[i] == 0x7f) {
            return avs_err_set(err, AVS_EINTERNAL,
                               "object key: control byte at offset %zu", i);
        }
    }

    /* a "." segment is dropped by libcurl from the path it sends, and
     * the path it signed would no longer be the one sent */

    if (len == 0 || len > AVS_OBJSTORE_KEY_MAX || key[0] == '/'
        || key[len - 1] == '/' || strstr(key, "//") != NULL
        || strstr(key, "..") != NULL || strchr(key, '\\') != NULL
        || strcmp(key, ".") == 0 || strncmp(key, "./", 2) == 0
        || strstr(key, "/./") != NULL
        || (len >= 2 && strcmp(key + len - 2, "/.") == 0))
    {
        return avs_err_set(err, AVS_EINTERNAL, "bad object key \"%.200s\"",
                           key);
    }

    return AVS_OK;
}


/* A run of bytes fit for a bucket name, region or URL authority. */
static int
avs_objstore_chars_ok(const char *s, size_t n, const char *extra)
{
    size_t  i;

    if (n == 0) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
              || (s[i] >= '0' && s[i] <= '9') || strchr(extra, s[i]) != NULL)
            || s[i] == '\0')
        {
            return 0;
        }
    }

    return 1;
}


/* ------------------------------------------------------------------ */
/* opening                                                              */


/* "file:/abs/dir" or "file:///abs/dir" */
static avs_rc_t
avs_file_open(avs_objstore_t *os, const char *url, avs_err_t *err)
{
    size_t       len;
    const char  *dir;

    dir = url + 5;

    if (strncmp(dir, "//", 2) == 0) {
        dir += 2;
    }

    if (dir[0] != '/') {
        return avs_err_set(err, AVS_EMALFORMED,
                           "cold store \"%.100s\": use file:/<absolute "
                           "directory>", url);
    }

    os->root = strdup(dir);
    if (os->root == NULL) {
        return avs_err_set(err, AVS_ENOMEM, "out of memory");
    }

    len = strlen(os->root);

    while (len > 1 && os->root[len - 1] == '/') {
        os->root[--len] = '\0';
    }

    return AVS_OK;
}


/*
 * endpoint=http(s)://host[:port][/]: no user information, no path (the
 * bucket goes into the path), nothing a Host header could not carry.
 */
static avs_rc_t
avs_s3_endpoint(avs_objstore_t *os, const char *endpoint, avs_err_t *err)
{
    size_t       n, scheme;
    const char  *auth, *rest;

    if (endpoint == NULL || endpoint[0] == '\0') {
        return avs_err_set(err, AVS_EMALFORMED,
                           "cold store: s3:// needs endpoint=http(s)://"
                           "host[:port]");
    }

    if (strncmp(endpoint, "http://", 7) == 0) {
        scheme = 7;

    } else if (strncmp(endpoint, "https://", 8) == 0) {
        scheme = 8;
        os->tls = 1;

    } else {
        return avs_err_set(err, AVS_EMALFORMED,
                           "cold store: endpoint must start with http:// "
                           "or https://");
    }

    auth = endpoint + scheme;
    n = strcspn(auth, "/");
    rest = auth + n;

    rest += strspn(rest, "/");

    if (!avs_objstore_chars_ok(auth, n, ".-_:[]") || *rest != '\0') {
        return avs_err_set(err, AVS_EMALFORMED,
                           "cold store: endpoint must be http(s)://host"
                           "[:port], without user, path or query");
    }

    os->endpoint = strndup(endpoint, scheme + n);
    os->host = strndup(auth, n);

    if (os->endpoint == NULL || os->host == NULL) {
        return avs_err_set(err, AVS_ENOMEM, "out of memory");
    }

    return AVS_OK;
}


/* Keeps a credential's value, refusing a second one for the same name. */
static avs_rc_t
avs_s3_credential(char **slot, const char *name, const char *v,
    const char *path, avs_err_t *err)
{
    if (*slot != NULL) {
        return avs_err_set(err, AVS_EMALFORMED,
                           "cold store: credentials %.200s: %s is given "
                           "twice", path, name);
    }

    if (*v == '\0') {
        return avs_err_set(err, AVS_EMALFORMED,
                           "cold store: credentials %.200s: %s is empty",
                           path, name);
    }

    *slot = strdup(v);
    if (*slot == NULL) {
        return avs_err_set(err, AVS_ENOMEM, "out of memory");
    }

    return AVS_OK;
}


/*
 * Parses one "name = value" line of the credentials file into the store;
 * names it does not know (region, output...) are ignored.
 */
static avs_rc_t
avs_s3_credentials_line(avs_objstore_t *os, char *line, unsigned lineno,
    const char *path, avs_err_t *err)
{
    char  *k, *v, *e;

    k = line + strspn(line, " \t");
    v = strchr(k, '=');

    if (v == NULL) {
        return avs_err_set(err, AVS_EMALFORMED,
                           "cold store: credentials %.200s: line %u is not "
                           "name=value", path, lineno);
    }

    for (e = v; e > k && (e[-1] == ' ' || e[-1] == '\t'); e--) {
        /* void */
    }

    *e = '\0';
    v++;
    v += strspn(v, " \t");

    for (e = v + strlen(v);
         e > v && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'
                   || e[-1] == '\n');
         e--)
    {
        /* void */
    }

    *e = '\0';

    if (strcmp(k, "access_key_id") == 0
        || strcmp(k, "aws_access_key_id") == 0)
    {
        return avs_s3_credential(&os->access_key, k, v, path, err);
    }

    if (strcmp(k, "secret_access_key") == 0
        || strcmp(k, "aws_secret_access_key") == 0)
    {
        return avs_s3_credential(&os->secret_key, k, v, path, err);
    }

    /* tools write "aws_session_token =" for credentials without one */

    if ((strcmp(k, "session_token") == 0
         || strcmp(k, "aws_session_token") == 0)
        && *v != '\0')
    {
        return avs_s3_credential(&os->session_token, k, v, path, err);
    }

    return AVS_OK;
}


/*
 * The credentials file: "access_key_id=..." and "secret_access_key=..."
 * lines (and "session_token=..." for temporary credentials); the AWS
 * shared credentials form is read too (aws_access_key_id, ..., spaces
 * around '=', '#' and ';' comments), in which only the [default] profile
 * (and lines before any [profile]) count.  Read once, at open; the line
 * buffer is wiped; no message quotes a line.
 */
static avs_rc_t
avs_s3_credentials(avs_objstore_t *os, const char *path, avs_err_t *err)
{
    int        use;
    FILE      *f;
    char      *p, line[AVS_S3_CRED_LINE];
    size_t     len;
    avs_rc_t   rc;
    unsigned   lineno;

    if (path == NULL || path[0] == '\0') {
        return avs_err_set(err, AVS_EMALFORMED,
                           "cold store: s3:// needs credentials=<file>");
    }

    f = fopen(path, "r");
    if (f == NULL) {
        return avs_err_set(err, AVS_EMALFORMED,
                           "cold store: credentials %.200s: %s", path,
                           strerror(errno));
    }

    rc = AVS_OK;
    use = 1;
    lineno = 0;

    while (rc == AVS_OK && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        len = strlen(line);

        if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
            rc = avs_err_set(err, AVS_EMALFORMED,
                             "cold store: credentials %.200s: line %u is "
                             "too long", path, lineno);
            break;
        }

        p = line + strspn(line, " \t\r\n");

        if (*p == '\0' || *p == '#' || *p == ';') {
            continue;
        }

        if (*p == '[') {
            use = (strncmp(p, "[default]", 9) == 0);
            continue;
        }

        if (use) {
            rc = avs_s3_credentials_line(os, p, lineno, path, err);
        }
    }

    OPENSSL_cleanse(line, sizeof(line));
    fclose(f);

    if (rc != AVS_OK) {
        return rc;
    }

    if (os->access_key == NULL || os->secret_key == NULL
        || os->access_key[0] == '\0' || os->secret_key[0] == '\0')
    {
        return avs_err_set(err, AVS_EMALFORMED,
                           "cold store: credentials %.200s: no "
                           "access_key_id or secret_access_key", path);
    }

    if (strlen(os->secret_key) > AVS_SIGV4_SECRET_MAX
        || strlen(os->access_key) > 128)
    {
        return avs_err_set(err, AVS_EMALFORMED,
                           "cold store: credentials %.200s: a key is too "
                           "long", path);
    }

    return AVS_OK;
}


/*
 * Reads the ca= file whole, at open, so that the process that opens the
 * store (nginx's master, as root) reads it and the workers use the copy:
 * the file may be one that only root can read, like a TLS key.
 */
static avs_rc_t
avs_s3_read_ca(avs_objstore_t *os, avs_err_t *err)
{
    int          fd;
    ssize_t      n;
    avs_rc_t     rc;
    struct stat  sb;

    fd = open(os->ca_file, O_RDONLY | O_CLOEXEC);
    if (fd == -1 || fstat(fd, &sb) == -1) {
        rc = avs_err_set(err, AVS_EMALFORMED, "cold store: ca=%.200s: %s",
                         os->ca_file, strerror(errno));
        goto done;
    }

    if (!S_ISREG(sb.st_mode) || sb.st_size == 0
        || sb.st_size > AVS_S3_CA_MAX)
    {
        rc = avs_err_set(err, AVS_EMALFORMED, "cold store: ca=%.200s: not "
                         "a file of PEM certificates of at most %d bytes",
                         os->ca_file, AVS_S3_CA_MAX);
        goto done;
    }

    os->ca_len = (size_t) sb.st_size;
    os->ca_pem = malloc(os->ca_len);
    if (os->ca_pem == NULL) {
        rc = avs_err_set(err, AVS_ENOMEM, "out of memory");
        goto done;
    }

    n = pread(fd, os->ca_pem, os->ca_len, 0);
    if (n != (ssize_t) os->ca_len) {
        rc = avs_err_set(err, AVS_EMALFORMED, "cold store: ca=%.200s: %s",
                         os->ca_file, n == -1 ? strerror(errno)
                                              : "short read");
        goto done;
    }

    rc = AVS_OK;

done:

    if (fd != -1) {
        close(fd);
    }

    return rc;
}


static void
avs_curl_init(void)
{
    (void) curl_global_init(CURL_GLOBAL_DEFAULT);
}


/* s3://bucket[/prefix] with the endpoint, region and credentials. */
static avs_rc_t
avs_s3_open(avs_objstore_t *os, const avs_objstore_conf_t *conf,
    avs_err_t *err)
{
    size_t       len;
    avs_rc_t     rc;
    const char  *b, *slash, *region;

    os->s3 = 1;
    b = conf->url + 5;
    slash = strchr(b, '/');
    len = slash ? (size_t) (slash - b) : strlen(b);

    if (len > AVS_S3_BUCKET_MAX || !avs_objstore_chars_ok(b, len, ".-_")) {
        return avs_err_set(err, AVS_EMALFORMED,
                           "cold store: use s3://<bucket>/<prefix> (bucket: "
                           "1 to 63 of a-z 0-9 . - _)");
    }

    os->bucket = strndup(b, len);
    if (os->bucket == NULL) {
        return avs_err_set(err, AVS_ENOMEM, "out of memory");
    }

    /* the prefix, without slashes around it, then one slash after it */
    b = slash ? slash : "";
    b += strspn(b, "/");
    len = strlen(b);

    while (len > 0 && b[len - 1] == '/') {
        len--;
    }

    os->prefix = malloc(len + 2);
    if (os->prefix == NULL) {
        return avs_err_set(err, AVS_ENOMEM, "out of memory");
    }

    memcpy(os->prefix, b, len);
    os->prefix[len] = '\0';

    if (len > 0) {
        if (avs_objstore_key(os->prefix, err) != AVS_OK) {
            return avs_err_set(err, AVS_EMALFORMED,
                               "cold store: bad prefix \"%.100s\"",
                               os->prefix);
        }

        os->prefix[len] = '/';
        os->prefix[len + 1] = '\0';
    }

    region = (conf->region && conf->region[0]) ? conf->region : "us-east-1";

    if (strlen(region) > 64
        || !avs_objstore_chars_ok(region, strlen(region), "-_"))
    {
        return avs_err_set(err, AVS_EMALFORMED,
                           "cold store: bad region \"%.64s\"", region);
    }

    os->region = strdup(region);
    if (os->region == NULL) {
        return avs_err_set(err, AVS_ENOMEM, "out of memory");
    }

    os->timeout_ms = conf->timeout_ms ? (long) conf->timeout_ms
                                      : AVS_OBJSTORE_TIMEOUT_MS;
    os->signed_payload = conf->signed_payload;

    rc = avs_s3_endpoint(os, conf->endpoint, err);
    if (rc != AVS_OK) {
        return rc;
    }

    if (conf->ca_file != NULL && conf->ca_file[0] != '\0') {
        if (!os->tls) {
            return avs_err_set(err, AVS_EMALFORMED,
                               "cold store: ca= needs an https:// "
                               "endpoint");
        }

        os->ca_file = strdup(conf->ca_file);
        if (os->ca_file == NULL) {
            return avs_err_set(err, AVS_ENOMEM, "out of memory");
        }

        rc = avs_s3_read_ca(os, err);
        if (rc != AVS_OK) {
            return rc;
        }
    }

    return avs_s3_credentials(os, conf->credentials, err);
}


avs_rc_t
avs_objstore_open(const avs_objstore_conf_t *conf, avs_objstore_t **out,
    avs_err_t *err)
{
    avs_rc_t         rc;
    avs_objstore_t  *os;

    *out = NULL;

    if (conf->url == NULL
        || (strncmp(conf->url, "s3://", 5) != 0
            && strncmp(conf->url, "file:", 5) != 0))
    {
        return avs_err_set(err, AVS_EMALFORMED,
                           "cold store \"%.100s\": use file:/<directory> "
                           "or s3://<bucket>/<prefix>",
                           conf->url ? conf->url : "");
    }

    os = calloc(1, sizeof(avs_objstore_t));
    if (os == NULL) {
        return avs_err_set(err, AVS_ENOMEM, "out of memory");
    }

    if (strncmp(conf->url, "s3://", 5) == 0) {
        rc = avs_s3_open(os, conf, err);

    } else {
        rc = avs_file_open(os, conf->url, err);
    }

    if (rc != AVS_OK) {
        avs_objstore_close(os);
        return rc;
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
    free(os->ca_file);
    free(os->ca_pem);
    avs_objstore_free_secret(os->access_key);
    avs_objstore_free_secret(os->secret_key);
    avs_objstore_free_secret(os->session_token);
    free(os);
}


int
avs_objstore_is_s3(const avs_objstore_t *os)
{
    return os->s3;
}


/*
 * Whether an object may be streamed into its PUT (avs_objstore_put_stream):
 * S3 unless the operator asked for signed payloads, which a bucket whose
 * ETags are not MD5s (SSE-KMS, SSE-C) needs to check what it kept.
 */
int
avs_objstore_streams(const avs_objstore_t *os)
{
    return os->s3 && !os->signed_payload;
}


/* Whether the store keeps the writer a put names (s3://, not file:). */
int
avs_objstore_keeps_writer(const avs_objstore_t *os)
{
    return os->s3;
}


/* ------------------------------------------------------------------ */
/* s3://                                                                */


/*
 * Builds the object's path, "/bucket/prefix/key", raw (what is signed)
 * and encoded (what the request line carries).  Both NUL-terminated,
 * the NUL counted in their len.
 */
static avs_rc_t
avs_s3_paths(avs_objstore_t *os, const char *key, avs_buf_t *raw,
    avs_buf_t *uri, avs_err_t *err)
{
    if (avs_buf_append(raw, "/", 1) != AVS_OK
        || avs_buf_append(raw, os->bucket, strlen(os->bucket)) != AVS_OK
        || avs_buf_append(raw, "/", 1) != AVS_OK
        || avs_buf_append(raw, os->prefix, strlen(os->prefix)) != AVS_OK
        || avs_buf_append(raw, key, strlen(key)) != AVS_OK
        || avs_sigv4_uri_encode(uri, (char *) raw->data, raw->len, 1)
           != AVS_OK
        || avs_buf_append(raw, "", 1) != AVS_OK
        || avs_buf_append(uri, "", 1) != AVS_OK)
    {
        return avs_err_set(err, AVS_ENOMEM, "out of memory");
    }

    return AVS_OK;
}


/*
 * Signs a request for the object at the raw path now: fills date and the
 * Authorization value.  The signed headers are host, x-amz-content-sha256,
 * x-amz-date, range, x-amz-security-token and the writer's metadata (each
 * if any): S3 refuses an x-amz- header that is not signed.
 */
static avs_rc_t
avs_s3_sign(avs_objstore_t *os, const char *method, const char *raw_path,
    const char *range, const char *payload_sha256, const char *writer,
    char date[AVS_SIGV4_DATE_SIZE], char *auth, size_t size, avs_err_t *err)
{
    size_t              nh;
    avs_sigv4_req_t     req;
    avs_sigv4_header_t  hdr[AVS_S3_MAX_HEADERS];

    avs_sigv4_amz_date(time(NULL), date);

    nh = 0;
    hdr[nh].name = "host";
    hdr[nh++].value = os->host;
    hdr[nh].name = "x-amz-content-sha256";
    hdr[nh++].value = payload_sha256;
    hdr[nh].name = "x-amz-date";
    hdr[nh++].value = date;

    if (range != NULL) {
        hdr[nh].name = "range";
        hdr[nh++].value = range;
    }

    if (os->session_token != NULL) {
        hdr[nh].name = "x-amz-security-token";
        hdr[nh++].value = os->session_token;
    }

    if (writer != NULL) {
        hdr[nh].name = AVS_WRITER_HEADER;
        hdr[nh++].value = writer;
    }

    memset(&req, 0, sizeof(avs_sigv4_req_t));
    req.method = method;
    req.path = raw_path;
    req.query = NULL;
    req.headers = hdr;
    req.nheaders = nh;
    req.payload_sha256 = payload_sha256;
    req.access_key = os->access_key;
    req.secret_key = os->secret_key;
    req.region = os->region;
    req.service = "s3";
    req.amz_date = date;

    return avs_sigv4_sign(&req, auth, size, err);
}


/* Appends "name: value" to a libcurl header list; 0 when out of memory. */
static int
avs_s3_header(struct curl_slist **list, const char *name, const char *value)
{
    int                 n;
    char               *line;
    size_t              size;
    struct curl_slist  *l;

    size = strlen(name) + strlen(value) + 3;

    line = malloc(size);
    if (line == NULL) {
        return 0;
    }

    n = snprintf(line, size, "%s:%s%s", name, value[0] ? " " : "", value);
    l = (n > 0) ? curl_slist_append(*list, line) : NULL;

    OPENSSL_cleanse(line, size);
    free(line);

    if (l == NULL) {
        return 0;
    }

    *list = l;

    return 1;
}


/*
 * Receives the answer's body: a 2xx body goes to call->body, never past
 * body_max (more aborts the transfer); the first bytes of an error body
 * are kept for its <Code>.
 */
static size_t
avs_s3_on_body(char *p, size_t size, size_t n, void *data)
{
    long            status;
    size_t          len, room;
    avs_s3_call_t  *call = data;

    len = size * n;
    status = 0;
    (void) curl_easy_getinfo(call->curl, CURLINFO_RESPONSE_CODE, &status);

    if (status >= 200 && status < 300) {
        if (call->body == NULL) {
            return len;
        }

        if (len > call->body_max - call->body_got
            || avs_buf_append(call->body, p, len) != AVS_OK)
        {
            call->overflow = 1;
            return 0;
        }

        call->body_got += len;
        return len;
    }

    room = sizeof(call->error_body) - 1 - call->error_len;
    room = (len < room) ? len : room;
    memcpy(call->error_body + call->error_len, p, room);
    call->error_len += room;
    call->error_body[call->error_len] = '\0';

    return len;
}


/*
 * Copies the value of the header line p (len bytes) into out if its name
 * is name, without the blanks, CR LF and (for an ETag) double quotes
 * around it; a longer value is cut.  1 if the name matched.
 */
static int
avs_s3_header_value(const char *p, size_t len, const char *name,
    const char *trim, char *out, size_t size)
{
    size_t       vlen, n;
    const char  *v;

    n = strlen(name);

    if (len <= n || strncasecmp(p, name, n) != 0 || p[n] != ':') {
        return 0;
    }

    v = p + n + 1;
    vlen = len - n - 1;

    while (vlen > 0 && *v != '\0' && strchr(trim, *v) != NULL) {
        v++;
        vlen--;
    }

    while (vlen > 0 && v[vlen - 1] != '\0'
           && strchr(trim, v[vlen - 1]) != NULL)
    {
        vlen--;
    }

    snprintf(out, size, "%.*s", (int) vlen, v);

    return 1;
}


/*
 * Notes the ETag (without quotes) and the writer's metadata of the final
 * answer.  A writer value cut to size is none of ours: it never matches.
 */
static size_t
avs_s3_on_header(char *p, size_t size, size_t n, void *data)
{
    size_t          len;
    avs_s3_call_t  *call = data;

    len = size * n;

    if (len > 5 && strncmp(p, "HTTP/", 5) == 0) {
        /* a new answer (after "100 Continue"): forget the last one's */
        call->etag[0] = '\0';
        call->writer_seen[0] = '\0';
        return len;
    }

    if (!avs_s3_header_value(p, len, AVS_WRITER_HEADER, " \t\r\n",
                             call->writer_seen, sizeof(call->writer_seen)))
    {
        (void) avs_s3_header_value(p, len, "etag", " \t\r\n\"",
                                   call->etag, sizeof(call->etag));
    }

    return len;
}


/*
 * Gives libcurl the next bytes of a streamed body, from the caller's read
 * function, and hashes them as they go.  Never more than the
 * Content-Length announced: a producer that has more is a bug, and the
 * request is aborted rather than cut.
 */
static size_t
avs_s3_on_read(char *p, size_t size, size_t n, void *data)
{
    ssize_t         got;
    size_t          len;
    avs_s3_call_t  *call = data;

    len = size * n;

    if (len > call->upload_size - call->sent) {
        len = (size_t) (call->upload_size - call->sent);
    }

    got = (len > 0) ? call->read(call->read_data, (uint8_t *) p, len) : 0;

    if (got < 0 || (size_t) got > len
        || (got == 0 && call->sent != call->upload_size)
        || (call->digest != NULL
            && !avs_digest_update(call->digest, p, (size_t) got)))
    {
        call->read_failed = 1;
        return CURL_READFUNC_ABORT;
    }

    call->sent += (uint64_t) got;

    return (size_t) got;
}


/* The ca= certificates read at open; the file itself with older libcurl. */
static int
avs_s3_setopt_ca(avs_objstore_t *os, CURL *c)
{
#if LIBCURL_VERSION_NUM >= 0x074d00
    struct curl_blob  blob;

    blob.data = os->ca_pem;
    blob.len = os->ca_len;
    blob.flags = CURL_BLOB_NOCOPY;

    return curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob) == CURLE_OK;
#else
    return curl_easy_setopt(c, CURLOPT_CAINFO, os->ca_file) == CURLE_OK;
#endif
}


/*
 * Sets the options of one request.  Timeouts: connecting may take
 * timeout_ms, and the transfer may stall (less than a byte a second) for
 * as long; there is no limit on the whole, so that a large object on a
 * slow link is not cut off while it moves.
 */
static int
avs_s3_setopt(avs_objstore_t *os, avs_s3_call_t *call, const char *url,
    struct curl_slist *list, char *errbuf)
{
    CURL  *c;
    long   stall;

    c = call->curl;
    stall = (os->timeout_ms + 999) / 1000;

    if (curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK
        || curl_easy_setopt(c, CURLOPT_HTTPHEADER, list) != CURLE_OK
        || curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK
        || curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK
#if LIBCURL_VERSION_NUM >= 0x075500
        || curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https")
           != CURLE_OK
#endif
        || curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK
        || curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, os->timeout_ms)
           != CURLE_OK
        || curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L) != CURLE_OK
        || curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, stall) != CURLE_OK
        || curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, avs_s3_on_body)
           != CURLE_OK
        || curl_easy_setopt(c, CURLOPT_WRITEDATA, call) != CURLE_OK
        || curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, avs_s3_on_header)
           != CURLE_OK
        || curl_easy_setopt(c, CURLOPT_HEADERDATA, call) != CURLE_OK
        || (os->ca_pem != NULL && !avs_s3_setopt_ca(os, c)))
    {
        return 0;
    }

    if (call->upload != NULL) {
        return curl_easy_setopt(c, CURLOPT_UPLOAD, 1L) == CURLE_OK
               && curl_easy_setopt(c, CURLOPT_READDATA, call->upload)
                  == CURLE_OK
               && curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE,
                                   (curl_off_t) call->upload_size)
                  == CURLE_OK;
    }

    if (call->read != NULL) {
        return curl_easy_setopt(c, CURLOPT_UPLOAD, 1L) == CURLE_OK
               && curl_easy_setopt(c, CURLOPT_READFUNCTION, avs_s3_on_read)
                  == CURLE_OK
               && curl_easy_setopt(c, CURLOPT_READDATA, call) == CURLE_OK
               && curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE,
                                   (long) AVS_S3_UPLOAD_BUFFER) == CURLE_OK
               && curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE,
                                   (curl_off_t) call->upload_size)
                  == CURLE_OK;
    }

    if (strcmp(call->method, "HEAD") == 0) {
        return curl_easy_setopt(c, CURLOPT_NOBODY, 1L) == CURLE_OK;
    }

    if (strcmp(call->method, "GET") != 0) {
        return curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, call->method)
               == CURLE_OK;
    }

    return 1;
}


/* A transfer that failed before an answer came: what libcurl saw. */
static avs_rc_t
avs_s3_transport(avs_objstore_t *os, avs_s3_call_t *call, CURLcode cc,
    const char *errbuf, avs_err_t *err)
{
    const char  *what;

    what = errbuf[0] ? errbuf : curl_easy_strerror(cc);

    if (cc == CURLE_OPERATION_TIMEDOUT) {
        return avs_err_set(err, AVS_ESTORE,
                           "%s %s: no progress within %ld ms: %s",
                           call->method, call->key, os->timeout_ms, what);
    }

    if (cc == CURLE_WRITE_ERROR && call->overflow) {
        return avs_err_set(err, AVS_ESTORE,
                           "%s %s: the store sent more than the %llu "
                           "bytes asked for", call->method, call->key,
                           (unsigned long long) call->body_max);
    }

    return avs_err_set(err, AVS_ESTORE, "%s %s: %s (%s)", call->method,
                       call->key, what, os->endpoint);
}


/* One signed request; the caller judges call->status. */
static avs_rc_t
avs_s3_request(avs_objstore_t *os, avs_s3_call_t *call, avs_err_t *err)
{
    CURLcode            cc;
    avs_rc_t            rc;
    avs_buf_t           raw, uri, url;
    curl_off_t          cl;
    struct curl_slist  *list;
    char                date[AVS_SIGV4_DATE_SIZE];
    char                auth[AVS_SIGV4_AUTH_SIZE];
    char                errbuf[CURL_ERROR_SIZE];

    memset(&raw, 0, sizeof(avs_buf_t));
    memset(&uri, 0, sizeof(avs_buf_t));
    memset(&url, 0, sizeof(avs_buf_t));
    list = NULL;
    call->curl = NULL;
    errbuf[0] = '\0';

    rc = avs_s3_paths(os, call->key, &raw, &uri, err);
    if (rc != AVS_OK) {
        goto done;
    }

    if (avs_buf_append(&url, os->endpoint, strlen(os->endpoint)) != AVS_OK
        || avs_buf_append(&url, uri.data, uri.len) != AVS_OK)
    {
        rc = avs_err_set(err, AVS_ENOMEM, "out of memory");
        goto done;
    }

    rc = avs_s3_sign(os, call->method, (char *) raw.data, call->range,
                     call->payload_sha256, call->writer, date, auth,
                     sizeof(auth), err);
    if (rc != AVS_OK) {
        goto done;
    }

    if (!avs_s3_header(&list, "Host", os->host)
        || !avs_s3_header(&list, "x-amz-date", date)
        || !avs_s3_header(&list, "x-amz-content-sha256",
                          call->payload_sha256)
        || !avs_s3_header(&list, "Authorization", auth)
        || (call->range != NULL
            && !avs_s3_header(&list, "Range", call->range))
        || (os->session_token != NULL
            && !avs_s3_header(&list, "x-amz-security-token",
                              os->session_token))
        || (call->create_only
            && !avs_s3_header(&list, "If-None-Match", "*"))
        || (call->writer != NULL
            && !avs_s3_header(&list, AVS_WRITER_HEADER, call->writer))
        || !avs_s3_header(&list, "Expect", ""))
    {
        rc = avs_err_set(err, AVS_ENOMEM, "out of memory");
        goto done;
    }

    if (pthread_once(&avs_curl_once, avs_curl_init) != 0) {
        rc = avs_err_set(err, AVS_EINTERNAL, "%s %s: libcurl init",
                         call->method, call->key);
        goto done;
    }

    call->curl = curl_easy_init();

    if (call->curl == NULL
        || !avs_s3_setopt(os, call, (char *) url.data, list, errbuf))
    {
        rc = avs_err_set(err, AVS_ENOMEM, "%s %s: cannot set up libcurl",
                         call->method, call->key);
        goto done;
    }

    cc = curl_easy_perform(call->curl);

    if (cc != CURLE_OK) {
        rc = avs_s3_transport(os, call, cc, errbuf, err);
        goto done;
    }

    (void) curl_easy_getinfo(call->curl, CURLINFO_RESPONSE_CODE,
                             &call->status);

    if (curl_easy_getinfo(call->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
                          &cl) == CURLE_OK
        && cl > 0)
    {
        call->length = (uint64_t) cl;
    }

    rc = AVS_OK;

done:

    if (call->curl != NULL) {
        curl_easy_cleanup(call->curl);
        call->curl = NULL;
    }

    OPENSSL_cleanse(auth, sizeof(auth));
    curl_slist_free_all(list);
    avs_buf_free(&raw);
    avs_buf_free(&uri);
    avs_buf_free(&url);

    return rc;
}


/*
 * An answer the caller did not expect: the status and the store's <Code>
 * (printable bytes only; the rest of an error body may echo the request).
 */
static avs_rc_t
avs_s3_failed(const avs_s3_call_t *call, avs_err_t *err)
{
    size_t       i;
    char         code[65];
    const char  *p, *end;

    code[0] = '\0';
    p = strstr(call->error_body, "<Code>");

    if (p != NULL) {
        p += 6;
        end = strstr(p, "</Code>");

        for (i = 0; end != NULL && p + i < end && i < sizeof(code) - 1; i++)
        {
            code[i] = (p[i] > ' ' && p[i] < 0x7f) ? p[i] : '?';
        }

        code[end != NULL ? i : 0] = '\0';
    }

    if (call->create_only && (call->status == 412 || call->status == 409)) {
        return avs_err_set(err, AVS_ECONFLICT, "%s %s: the key is taken, "
                           "nothing was stored: the store answered %ld%s%s",
                           call->method, call->key, call->status,
                           code[0] ? " " : "", code);
    }

    return avs_err_set(err, AVS_ESTORE, "%s %s: the store answered %ld%s%s",
                       call->method, call->key, call->status,
                       code[0] ? " " : "", code);
}


/*
 * The answer to a PUT: a 200 with the object's ETag.  Without an ETag the
 * answer is not one of an S3 store that kept the object (a proxy's or a
 * web server's page), and what it kept cannot be told.
 */
static avs_rc_t
avs_s3_put_answer(const avs_s3_call_t *call, avs_err_t *err)
{
    if (call->status != 200) {
        return avs_s3_failed(call, err);
    }

    if (call->etag[0] == '\0') {
        return avs_err_set(err, AVS_ESTORE, "PUT %s: the store answered 200 "
                           "without an ETag: not an S3 store's answer",
                           call->key);
    }

    return AVS_OK;
}


/*
 * PUT from a file, signed with the file's SHA-256: known, when the caller
 * computed it while writing the file, or computed here first.
 */
static avs_rc_t
avs_s3_put(avs_objstore_t *os, const char *key, const char *path,
    const char *known, int create_only, const char *writer,
    char etag[AVS_ETAG_SIZE], char sha256[65], avs_err_t *err)
{
    int            fd;
    FILE          *f;
    avs_rc_t       rc;
    uint64_t       size;
    struct stat    st;
    avs_s3_call_t  call;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        return avs_err_set(err, AVS_ESTORE, "PUT %s: cannot open %s: %s",
                           key, path, strerror(errno));
    }

    if (known != NULL) {
        rc = (fstat(fd, &st) == 0)
             ? AVS_OK
             : avs_err_set(err, AVS_ESTORE, "PUT %s: stat: %s", key,
                           strerror(errno));
        size = (uint64_t) st.st_size;
        memcpy(sha256, known, AVS_SHA256_HEX_SIZE);

    } else {
        rc = avs_sha256_fd_hex(fd, sha256, &size, err);

        if (rc == AVS_OK && lseek(fd, 0, SEEK_SET) != 0) {
            rc = avs_err_set(err, AVS_ESTORE, "PUT %s: seek: %s", key,
                             strerror(errno));
        }
    }

    f = (rc == AVS_OK) ? fdopen(fd, "rb") : NULL;

    if (f == NULL) {
        close(fd);
        return (rc != AVS_OK) ? rc
                              : avs_err_set(err, AVS_ENOMEM, "out of memory");
    }

    memset(&call, 0, sizeof(avs_s3_call_t));
    call.method = "PUT";
    call.key = key;
    call.payload_sha256 = sha256;
    call.upload = f;
    call.upload_size = size;
    call.create_only = create_only;
    call.writer = writer;

    rc = avs_s3_request(os, &call, err);
    fclose(f);

    if (rc == AVS_OK) {
        rc = avs_s3_put_answer(&call, err);
    }

    if (rc == AVS_OK) {
        snprintf(etag, AVS_ETAG_SIZE, "%s", call.etag);
    }

    return rc;
}


/*
 * Compares the ETag of a single-part PUT with the MD5 of the bytes sent
 * (hex): S3, R2 and MinIO give the MD5 there, so a difference means the
 * store kept other bytes than those sent (the payload is not signed).  An
 * ETag that is not 32 hex digits is not an MD5 and cannot be checked.
 */
static avs_rc_t
avs_s3_check_etag(avs_s3_call_t *call, const char *md5, avs_err_t *err)
{
    if (strlen(call->etag) != 32 || strspn(call->etag, "0123456789abcdef"
                                           "ABCDEF") != 32)
    {
        return avs_err_set(err, AVS_ESTORE,
                           "PUT %s: the ETag \"%.64s\" is not an MD5: "
                           "the %llu bytes sent cannot be checked (a store "
                           "whose ETags are not MD5s needs payload=signed)",
                           call->key, call->etag,
                           (unsigned long long) call->sent);
    }

    if (strcasecmp(call->etag, md5) != 0) {
        return avs_err_set(err, AVS_ESTORE,
                           "PUT %s: the store's ETag %s is not the MD5 %s "
                           "of the %llu bytes sent: the transfer was "
                           "corrupted, or the bucket's ETags are not MD5s "
                           "(SSE-KMS, SSE-C: use payload=signed)",
                           call->key, call->etag, md5,
                           (unsigned long long) call->sent);
    }

    return AVS_OK;
}


/*
 * PUT of size bytes produced while the request goes, signed
 * UNSIGNED-PAYLOAD (their hash is not known before they are sent), and
 * their SHA-256 computed as they go.  Over plain HTTP nothing else
 * protects the bytes on the way, so the store's ETag is checked against
 * their MD5 as well (computed in the same pass, avs_digest.h); over https
 * TLS does, and the MD5 is not computed.
 */
static avs_rc_t
avs_s3_put_stream(avs_objstore_t *os, const char *key, uint64_t size,
    int create_only, const char *writer, avs_objstore_read_pt read,
    void *data,
    char etag[AVS_ETAG_SIZE], char sha256[AVS_SHA256_HEX_SIZE],
    avs_err_t *err)
{
    avs_rc_t       rc;
    avs_s3_call_t  call;
    char           md5[AVS_MD5_HEX_SIZE];

    memset(&call, 0, sizeof(avs_s3_call_t));
    call.method = "PUT";
    call.key = key;
    call.payload_sha256 = AVS_SIGV4_UNSIGNED_PAYLOAD;
    call.read = read;
    call.read_data = data;
    call.upload_size = size;
    call.create_only = create_only;
    call.writer = writer;
    call.digest = avs_digest_new(os->tls ? 0 : AVS_DIGEST_MD5);

    if (call.digest == NULL) {
        return avs_err_set(err, AVS_ENOMEM, "PUT %s: out of memory", key);
    }

    rc = avs_s3_request(os, &call, err);

    if (rc != AVS_OK && call.read_failed) {
        rc = avs_err_set(err, AVS_ESTORE, "PUT %s: the body was cut short "
                         "after %llu of %llu bytes", key,
                         (unsigned long long) call.sent,
                         (unsigned long long) size);
    }

    if (rc == AVS_OK) {
        rc = avs_s3_put_answer(&call, err);
    }

    if (rc == AVS_OK && !avs_digest_final(call.digest, sha256, md5)) {
        rc = avs_err_set(err, AVS_EINTERNAL, "PUT %s: digest failed", key);
    }

    if (rc == AVS_OK && !os->tls) {
        rc = avs_s3_check_etag(&call, md5, err);
    }

    if (rc == AVS_OK) {
        snprintf(etag, AVS_ETAG_SIZE, "%s", call.etag);
    }

    avs_digest_free(call.digest);

    return rc;
}


static avs_rc_t
avs_s3_head(avs_objstore_t *os, const char *key, uint64_t *size,
    char etag[AVS_ETAG_SIZE], char *writer, avs_err_t *err)
{
    avs_rc_t       rc;
    avs_s3_call_t  call;

    memset(&call, 0, sizeof(avs_s3_call_t));
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

    if (writer != NULL) {
        memcpy(writer, call.writer_seen, AVS_WRITER_SIZE);
    }

    return AVS_OK;
}


/* GET with a Range: 206 and exactly length bytes, or nothing. */
static avs_rc_t
avs_s3_get_range(avs_objstore_t *os, const char *key, uint64_t offset,
    uint64_t length, avs_buf_t *out, avs_err_t *err)
{
    size_t         start;
    avs_rc_t       rc;
    avs_s3_call_t  call;
    char           range[64];

    snprintf(range, sizeof(range), "bytes=%llu-%llu",
             (unsigned long long) offset,
             (unsigned long long) (offset + length - 1));

    start = out->len;

    memset(&call, 0, sizeof(avs_s3_call_t));
    call.method = "GET";
    call.key = key;
    call.range = range;
    call.payload_sha256 = AVS_SIGV4_EMPTY_SHA256;
    call.body = out;
    call.body_max = length;

    rc = avs_s3_request(os, &call, err);

    if (rc == AVS_OK && call.status != 206) {
        rc = avs_s3_failed(&call, err);
    }

    if (rc == AVS_OK && call.body_got != length) {
        rc = avs_err_set(err, AVS_ESTORE,
                         "GET %s: %s: %llu bytes instead of %llu", key,
                         range, (unsigned long long) call.body_got,
                         (unsigned long long) length);
    }

    if (rc != AVS_OK) {
        out->len = start;
    }

    return rc;
}


static avs_rc_t
avs_s3_delete(avs_objstore_t *os, const char *key, avs_err_t *err)
{
    avs_rc_t       rc;
    avs_s3_call_t  call;

    memset(&call, 0, sizeof(avs_s3_call_t));
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


/* ------------------------------------------------------------------ */
/* file:                                                                */


/* root + "/" + key, or NULL. */
static char *
avs_file_path(avs_objstore_t *os, const char *key)
{
    char    *path;
    size_t   len;

    len = strlen(os->root) + strlen(key) + 2;

    path = malloc(len);
    if (path != NULL) {
        snprintf(path, len, "%s/%s", os->root, key);
    }

    return path;
}


/* Opens the object of key for reading: its descriptor, or -1 with errno. */
static int
avs_file_open_read(avs_objstore_t *os, const char *key)
{
    char  *path;
    int    fd;

    path = avs_file_path(os, key);
    if (path == NULL) {
        errno = ENOMEM;
        return -1;
    }

    fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);

    return fd;
}


/* Flushes a directory, so that the entries made in it survive a crash. */
static avs_rc_t
avs_file_sync_dir(const char *dir, avs_err_t *err)
{
    int  fd;

    fd = open(dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd == -1 || fsync(fd) == -1) {
        avs_err_set(err, AVS_ESTORE, "fsync %s: %s", dir, strerror(errno));

        if (fd != -1) {
            close(fd);
        }

        return AVS_ESTORE;
    }

    close(fd);

    return AVS_OK;
}


/*
 * Creates the directory dir and its missing parents, like mkdir -p, and
 * flushes the parent of each one it creates.
 */
static avs_rc_t
avs_file_mkdirs(char *dir, avs_err_t *err)
{
    char      *p, *parent, c;
    avs_rc_t   rc;

    parent = dir;

    for (p = dir + 1; /* void */ ; p++) {
        if (*p != '/' && *p != '\0') {
            continue;
        }

        c = *p;
        *p = '\0';

        if (mkdir(dir, 0755) == 0) {
            *parent = '\0';
            rc = avs_file_sync_dir(dir, err);
            *parent = '/';

            if (rc != AVS_OK) {
                *p = c;
                return rc;
            }

        } else if (errno != EEXIST) {
            avs_err_set(err, AVS_ESTORE, "mkdir %s: %s", dir,
                        strerror(errno));
            *p = c;
            return AVS_ESTORE;
        }

        *p = c;

        if (c == '\0') {
            return AVS_OK;
        }

        parent = p;
    }
}


/* Writes n bytes, whatever write() does in pieces. */
static int
avs_file_write_all(int fd, const uint8_t *p, size_t n)
{
    ssize_t  w;

    while (n > 0) {
        w = write(fd, p, n);

        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }

            return -1;
        }

        p += w;
        n -= (size_t) w;
    }

    return 0;
}


/* Copies in to out and hashes what it copies. */
static avs_rc_t
avs_file_copy(int in, int out, const char *key, char sha256[65],
    avs_err_t *err)
{
    ssize_t        n;
    uint8_t       *buf;
    avs_rc_t       rc;
    avs_sha256_t  *md;

    sha256[0] = '\0';

    buf = malloc(AVS_OBJSTORE_COPY);
    md = avs_sha256_new();

    if (buf == NULL || md == NULL) {
        free(buf);
        avs_sha256_free(md);
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

        if (!avs_sha256_update(md, buf, (size_t) n)) {
            rc = avs_err_set(err, AVS_EINTERNAL, "put %s: sha256", key);
            break;
        }

        if (avs_file_write_all(out, buf, (size_t) n) == -1) {
            rc = avs_err_set(err, AVS_ESTORE, "put %s: write: %s", key,
                             strerror(errno));
            break;
        }
    }

    if (rc == AVS_OK && !avs_sha256_final_hex(md, sha256)) {
        rc = avs_err_set(err, AVS_EINTERNAL, "put %s: sha256", key);
    }

    avs_sha256_free(md);
    free(buf);

    return rc;
}


/*
 * Gives a file its final name.  With create_only an object already under
 * that name stays and the call fails with EEXIST: renameat2's
 * RENAME_NOREPLACE, or where the filesystem lacks it, a hard link then the
 * unlink of the old name, both of which refuse to replace (a filesystem
 * with neither gets a plain rename).
 */
static int
avs_file_rename(const char *from, const char *to, int create_only)
{
    if (!create_only) {
        return rename(from, to);
    }

    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0) {
        return 0;
    }

    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) {
        return -1;
    }

    if (link(from, to) == 0) {
        (void) unlink(from);
        return 0;
    }

    if (errno == EEXIST) {
        return -1;
    }

    /* no way to refuse: the HEAD before a job's first put must do */

    return rename(from, to);
}


/* The error of a failed avs_file_rename: a name taken is AVS_ECONFLICT. */
static avs_rc_t
avs_file_rename_error(const char *key, avs_err_t *err)
{
    if (errno == EEXIST) {
        return avs_err_set(err, AVS_ECONFLICT, "put %s: the key is taken, "
                           "nothing was stored: an object is there already",
                           key);
    }

    return avs_err_set(err, AVS_ESTORE, "put %s: rename: %s", key,
                       strerror(errno));
}


/*
 * Copies the file into a hidden temporary file (".<name>.XXXXXX", unique
 * per call, so that threads and processes never share one) in the
 * object's directory, flushes it, renames it into place and flushes the
 * directory.  The ETag is the SHA-256: the same bytes, the same tag.
 */
static avs_rc_t
avs_file_put(avs_objstore_t *os, const char *key, const char *path,
    int create_only, char etag[AVS_ETAG_SIZE], char sha256[65],
    avs_err_t *err)
{
    int        in, out;
    char      *final, *tmp, *slash;
    size_t     len;
    avs_rc_t   rc;

    in = -1;
    out = -1;
    tmp = NULL;

    final = avs_file_path(os, key);
    len = final ? strlen(final) + 10 : 0;
    tmp = final ? malloc(len) : NULL;

    if (final == NULL || tmp == NULL) {
        rc = avs_err_set(err, AVS_ENOMEM, "out of memory");
        goto done;
    }

    slash = strrchr(final, '/');
    *slash = '\0';
    snprintf(tmp, len, "%s/.%s.XXXXXX", final, slash + 1);

    rc = avs_file_mkdirs(final, err);
    *slash = '/';

    if (rc != AVS_OK) {
        free(tmp);
        tmp = NULL;
        goto done;
    }

    out = mkstemp(tmp);
    if (out == -1) {
        rc = avs_err_set(err, AVS_ESTORE, "put %s: cannot create %s: %s",
                         key, tmp, strerror(errno));
        free(tmp);
        tmp = NULL;
        goto done;
    }

    (void) fcntl(out, F_SETFD, FD_CLOEXEC);

    in = open(path, O_RDONLY | O_CLOEXEC);
    if (in == -1) {
        rc = avs_err_set(err, AVS_ESTORE, "put %s: cannot open %s: %s",
                         key, path, strerror(errno));
        goto done;
    }

    rc = avs_file_copy(in, out, key, sha256, err);
    if (rc != AVS_OK) {
        goto done;
    }

    if (fchmod(out, 0644) == -1 || fsync(out) == -1) {
        rc = avs_err_set(err, AVS_ESTORE, "put %s: fsync: %s", key,
                         strerror(errno));
        goto done;
    }

    if (close(out) == -1) {
        out = -1;
        rc = avs_err_set(err, AVS_ESTORE, "put %s: close: %s", key,
                         strerror(errno));
        goto done;
    }

    out = -1;

    if (avs_file_rename(tmp, final, create_only) == -1) {
        rc = avs_file_rename_error(key, err);
        goto done;
    }

    free(tmp);
    tmp = NULL;

    *slash = '\0';
    rc = avs_file_sync_dir(final, err);
    *slash = '/';

    if (rc == AVS_OK) {
        snprintf(etag, AVS_ETAG_SIZE, "%s", sha256);
    }

done:

    if (in != -1) {
        close(in);
    }

    if (out != -1) {
        close(out);
    }

    if (tmp != NULL) {
        (void) unlink(tmp);
        free(tmp);
    }

    free(final);

    return rc;
}


/*
 * Renames a file built in the object's directory into place: the bytes
 * were written and flushed once, by the caller; flushing the directory
 * makes the new name last.  A file on another filesystem is copied.
 */
static avs_rc_t
avs_file_put_temp(avs_objstore_t *os, const char *key, const char *path,
    const char *sha256, int create_only, char etag[AVS_ETAG_SIZE],
    avs_err_t *err)
{
    char      *final, *slash, copied[AVS_SHA256_HEX_SIZE];
    avs_rc_t   rc;

    final = avs_file_path(os, key);
    if (final == NULL) {
        return avs_err_set(err, AVS_ENOMEM, "out of memory");
    }

    slash = strrchr(final, '/');
    *slash = '\0';
    rc = avs_file_mkdirs(final, err);
    *slash = '/';

    if (rc == AVS_OK && chmod(path, 0644) == -1) {
        rc = avs_err_set(err, AVS_ESTORE, "put %s: chmod %s: %s", key, path,
                         strerror(errno));
    }

    if (rc == AVS_OK && avs_file_rename(path, final, create_only) == -1) {
        if (errno == EXDEV) {
            free(final);
            return avs_file_put(os, key, path, create_only, etag, copied,
                                err);
        }

        rc = avs_file_rename_error(key, err);
    }

    if (rc == AVS_OK) {
        *slash = '\0';
        rc = avs_file_sync_dir(final, err);
    }

    if (rc == AVS_OK) {
        snprintf(etag, AVS_ETAG_SIZE, "%s", sha256);
    }

    free(final);

    return rc;
}


static avs_rc_t
avs_file_head(avs_objstore_t *os, const char *key, uint64_t *size,
    char etag[AVS_ETAG_SIZE], avs_err_t *err)
{
    int          fd;
    char         sha256[AVS_SHA256_HEX_SIZE];
    avs_rc_t     rc;
    struct stat  st;

    fd = avs_file_open_read(os, key);

    if (fd == -1) {
        if (errno == ENOENT || errno == ENOTDIR) {
            return AVS_DONE;
        }

        return avs_err_set(err, AVS_ESTORE, "head %s: %s", key,
                           strerror(errno));
    }

    if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
        close(fd);
        return avs_err_set(err, AVS_ESTORE, "head %s: not a file", key);
    }

    rc = avs_sha256_fd_hex(fd, sha256, size, err);
    close(fd);

    if (rc == AVS_OK) {
        snprintf(etag, AVS_ETAG_SIZE, "%s", sha256);
    }

    return rc;
}


static avs_rc_t
avs_file_get_range(avs_objstore_t *os, const char *key, uint64_t offset,
    uint64_t length, avs_buf_t *out, avs_err_t *err)
{
    int          fd;
    ssize_t      n;
    uint64_t     done;
    struct stat  st;

    fd = avs_file_open_read(os, key);

    if (fd == -1) {
        return avs_err_set(err, AVS_ESTORE, "get %s: %s", key,
                           strerror(errno));
    }

    if (fstat(fd, &st) == -1 || offset > (uint64_t) st.st_size
        || length > (uint64_t) st.st_size - offset)
    {
        close(fd);
        return avs_err_set(err, AVS_ESTORE,
                           "get %s: bytes %llu+%llu are past its end",
                           key, (unsigned long long) offset,
                           (unsigned long long) length);
    }

    for (done = 0; done < length; done += (uint64_t) n) {
        n = pread(fd, out->data + out->len + done, length - done,
                  (off_t) (offset + done));

        if (n < 0 && errno == EINTR) {
            n = 0;
            continue;
        }

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


static avs_rc_t
avs_file_delete(avs_objstore_t *os, const char *key, avs_err_t *err)
{
    char      *path, *slash;
    avs_rc_t   rc;

    path = avs_file_path(os, key);
    if (path == NULL) {
        return avs_err_set(err, AVS_ENOMEM, "out of memory");
    }

    if (unlink(path) == -1) {
        rc = (errno == ENOENT || errno == ENOTDIR)
             ? AVS_OK
             : avs_err_set(err, AVS_ESTORE, "delete %s: %s", key,
                           strerror(errno));
        free(path);
        return rc;
    }

    slash = strrchr(path, '/');
    *slash = '\0';
    rc = avs_file_sync_dir(path, err);
    free(path);

    return rc;
}


/* ------------------------------------------------------------------ */
/* the interface                                                        */


avs_rc_t
avs_objstore_put_file(avs_objstore_t *os, const char *key, const char *path,
    char etag[AVS_ETAG_SIZE], char sha256[65], avs_err_t *err)
{
    avs_rc_t  rc;

    etag[0] = '\0';
    sha256[0] = '\0';

    rc = avs_objstore_key(key, err);
    if (rc != AVS_OK) {
        return rc;
    }

    if (os->s3) {
        return avs_s3_put(os, key, path, NULL, 0, NULL, etag, sha256, err);
    }

    return avs_file_put(os, key, path, 0, etag, sha256, err);
}


avs_rc_t
avs_objstore_temp_dir(avs_objstore_t *os, const char *key, char *dir,
    size_t size, avs_err_t *err)
{
    char      *path;
    size_t     len;
    avs_rc_t   rc;

    dir[0] = '\0';

    rc = avs_objstore_key(key, err);
    if (rc != AVS_OK || os->s3) {
        return rc;
    }

    path = avs_file_path(os, key);
    if (path == NULL) {
        return avs_err_set(err, AVS_ENOMEM, "out of memory");
    }

    *strrchr(path, '/') = '\0';
    len = strlen(path);

    rc = (len < size) ? avs_file_mkdirs(path, err)
                      : avs_err_set(err, AVS_EINTERNAL,
                                    "temp dir of %s: path too long", key);
    if (rc == AVS_OK) {
        memcpy(dir, path, len + 1);
    }

    free(path);

    return rc;
}


avs_rc_t
avs_objstore_put_temp(avs_objstore_t *os, const char *key, const char *path,
    const char *sha256, int create_only, const char *writer,
    char etag[AVS_ETAG_SIZE], avs_err_t *err)
{
    avs_rc_t  rc;
    char      got[AVS_SHA256_HEX_SIZE];

    etag[0] = '\0';

    rc = avs_objstore_key(key, err);
    if (rc != AVS_OK) {
        return rc;
    }

    if (sha256 == NULL || strlen(sha256) != AVS_SHA256_HEX_SIZE - 1) {
        return avs_err_set(err, AVS_EINTERNAL, "put %s: no SHA-256", key);
    }

    if (os->s3) {
        return avs_s3_put(os, key, path, sha256, create_only, writer, etag,
                          got, err);
    }

    return avs_file_put_temp(os, key, path, sha256, create_only, etag, err);
}


avs_rc_t
avs_objstore_put_stream(avs_objstore_t *os, const char *key, uint64_t size,
    int create_only, const char *writer, avs_objstore_read_pt read,
    void *data,
    char etag[AVS_ETAG_SIZE], char sha256[AVS_SHA256_HEX_SIZE],
    avs_err_t *err)
{
    avs_rc_t  rc;

    etag[0] = '\0';
    sha256[0] = '\0';

    rc = avs_objstore_key(key, err);
    if (rc != AVS_OK) {
        return rc;
    }

    if (!os->s3) {
        return avs_err_set(err, AVS_EINTERNAL,
                           "put %s: a file: store takes no stream", key);
    }

    return avs_s3_put_stream(os, key, size, create_only, writer, read, data,
                             etag, sha256, err);
}


avs_rc_t
avs_objstore_head(avs_objstore_t *os, const char *key, uint64_t *size,
    char etag[AVS_ETAG_SIZE], avs_err_t *err)
{
    return avs_objstore_head_writer(os, key, size, etag, NULL, err);
}


avs_rc_t
avs_objstore_head_writer(avs_objstore_t *os, const char *key,
    uint64_t *size, char etag[AVS_ETAG_SIZE], char *writer, avs_err_t *err)
{
    avs_rc_t  rc;

    etag[0] = '\0';
    *size = 0;

    if (writer != NULL) {
        writer[0] = '\0';
    }

    rc = avs_objstore_key(key, err);
    if (rc != AVS_OK) {
        return rc;
    }

    if (os->s3) {
        return avs_s3_head(os, key, size, etag, writer, err);
    }

    return avs_file_head(os, key, size, etag, err);
}


avs_rc_t
avs_objstore_get_range(avs_objstore_t *os, const char *key, uint64_t offset,
    uint64_t length, avs_buf_t *out, avs_err_t *err)
{
    avs_rc_t  rc;

    rc = avs_objstore_key(key, err);
    if (rc != AVS_OK) {
        return rc;
    }

    if (length == 0) {
        return AVS_OK;
    }

    if (length > SIZE_MAX || offset > UINT64_MAX - length) {
        return avs_err_set(err, AVS_ETOOLARGE, "get %s: %llu bytes", key,
                           (unsigned long long) length);
    }

    rc = avs_buf_reserve(out, (size_t) length);
    if (rc != AVS_OK) {
        return avs_err_set(err, rc, "get %s: %llu bytes", key,
                           (unsigned long long) length);
    }

    if (os->s3) {
        return avs_s3_get_range(os, key, offset, length, out, err);
    }

    return avs_file_get_range(os, key, offset, length, out, err);
}


avs_rc_t
avs_objstore_delete(avs_objstore_t *os, const char *key, avs_err_t *err)
{
    avs_rc_t  rc;

    rc = avs_objstore_key(key, err);
    if (rc != AVS_OK) {
        return rc;
    }

    if (os->s3) {
        return avs_s3_delete(os, key, err);
    }

    return avs_file_delete(os, key, err);
}


avs_rc_t
avs_objstore_sign_get(avs_objstore_t *os, const char *key, const char *range,
    avs_objstore_signed_t *out, avs_err_t *err)
{
    avs_rc_t   rc;
    avs_buf_t  raw, uri;

    memset(out, 0, sizeof(avs_objstore_signed_t));

    rc = avs_objstore_key(key, err);
    if (rc != AVS_OK) {
        return rc;
    }

    if (!os->s3) {
        snprintf(out->path, sizeof(out->path), "%s", key);
        return AVS_OK;
    }

    if (range != NULL
        && (range[0] == '\0' || strpbrk(range, "\r\n") != NULL))
    {
        return avs_err_set(err, AVS_EINTERNAL, "sign %s: bad range", key);
    }

    memset(&raw, 0, sizeof(avs_buf_t));
    memset(&uri, 0, sizeof(avs_buf_t));

    rc = avs_s3_paths(os, key, &raw, &uri, err);

    if (rc == AVS_OK && uri.len > sizeof(out->path)) {
        rc = avs_err_set(err, AVS_EINTERNAL, "sign %s: path too long", key);
    }

    if (rc == AVS_OK) {
        memcpy(out->path, uri.data, uri.len);
        snprintf(out->host, sizeof(out->host), "%s", os->host);
        memcpy(out->content_sha256, AVS_SIGV4_EMPTY_SHA256,
               AVS_SHA256_HEX_SIZE);
        out->security_token = os->session_token;

        rc = avs_s3_sign(os, "GET", (char *) raw.data, range,
                         out->content_sha256, NULL, out->amz_date,
                         out->authorization, sizeof(out->authorization),
                         err);
    }

    avs_buf_free(&raw);
    avs_buf_free(&uri);

    return rc;
}
