/*
 * Object stores: the file: backend, a local directory.  An object is
 * written under a temporary name in its final directory, flushed, renamed
 * into place and the directory flushed, so that after a crash an object is
 * either whole or absent.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "avs_objstore.h"


#define AVS_OBJSTORE_COPY  (256 * 1024)


struct avs_objstore_s {
    char    *root;          /* file: directory, no trailing slash */
};


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
        return avs_err_set(err, AVS_EUNSUPPORTED,
                           "s3:// cold stores are not available in this "
                           "build yet; use file:");
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
    if (os != NULL) {
        free(os->root);
        free(os);
    }
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
    struct stat  st;
    avs_rc_t     rc;
    char        *path;

    rc = avs_objstore_key(key, err);
    if (rc != AVS_OK) {
        return rc;
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
    avs_rc_t   rc;
    char      *path;

    rc = avs_objstore_key(key, err);
    if (rc != AVS_OK) {
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
