/*
 * Unit tests of the file: cold store: put (atomic, hashed), head,
 * ranges, delete, keys that could leave the directory, and an s3:// store
 * without its endpoint refused (the S3 backend: objstore_s3.c).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>

#include "tap.h"
#include "avs_objstore.h"


static int
count_entries(const char *dir)
{
    DIR            *d;
    struct dirent  *e;
    int             n;

    n = 0;
    d = opendir(dir);

    while (d != NULL && (e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }

    if (d != NULL) {
        closedir(d);
    }

    return n;
}


int
main(void)
{
    avs_objstore_conf_t   oc;
    avs_objstore_t       *os;
    avs_err_t             err;
    avs_buf_t             b;
    uint64_t              size;
    FILE                 *f;
    char                  dir[] = "/tmp/avs-objstore-XXXXXX";
    char                  url[300], src[300], sub[300], cmd[400];
    char                  etag[AVS_ETAG_SIZE], sha[65];

    if (mkdtemp(dir) == NULL) {
        return 1;
    }

    snprintf(url, sizeof(url), "file:%s/cold/", dir);
    snprintf(src, sizeof(src), "%s/src", dir);

    f = fopen(src, "w");
    fputs("abc", f);
    fclose(f);

    memset(&oc, 0, sizeof(oc));
    oc.url = url;
    ok(avs_objstore_open(&oc, &os, &err) == AVS_OK, "file: store opens");

    ok(avs_objstore_put_file(os, "t/p/fp/n-1.avro", src, etag, sha, &err)
       == AVS_OK, "put");
    is_str(sha, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
           "SHA-256 of the object");
    snprintf(sub, sizeof(sub), "%s/cold/t/p/fp", dir);
    is_int(count_entries(sub), 1, "one object, no temporary file left");

    ok(avs_objstore_put_file(os, "t/p/fp/n-1.avro", src, etag, sha, &err)
       == AVS_OK, "put again (a retried job): replaced");

    ok(avs_objstore_head(os, "t/p/fp/n-1.avro", &size, etag, &err) == AVS_OK
       && size == 3, "head: size 3");
    is_int(avs_objstore_head(os, "t/p/fp/none.avro", &size, etag, &err),
           AVS_DONE, "head of a missing object: AVS_DONE");

    memset(&b, 0, sizeof(b));
    ok(avs_objstore_get_range(os, "t/p/fp/n-1.avro", 1, 2, &b, &err)
       == AVS_OK && b.len == 2 && memcmp(b.data, "bc", 2) == 0,
       "range 1+2: bc");
    is_int(avs_objstore_get_range(os, "t/p/fp/n-1.avro", 2, 5, &b, &err),
           AVS_ESTORE, "range past the end: error");
    avs_buf_free(&b);

    is_int(avs_objstore_put_file(os, "../x", src, etag, sha, &err),
           AVS_EINTERNAL, "key with ..");
    is_int(avs_objstore_put_file(os, "/x", src, etag, sha, &err),
           AVS_EINTERNAL, "absolute key");
    is_int(avs_objstore_put_file(os, "a//b", src, etag, sha, &err),
           AVS_EINTERNAL, "empty segment");
    is_int(avs_objstore_put_file(os, "a\nb", src, etag, sha, &err),
           AVS_EINTERNAL, "control byte");

    ok(avs_objstore_delete(os, "t/p/fp/n-1.avro", &err) == AVS_OK, "delete");
    is_int(avs_objstore_head(os, "t/p/fp/n-1.avro", &size, etag, &err),
           AVS_DONE, "gone");
    ok(avs_objstore_delete(os, "t/p/fp/n-1.avro", &err) == AVS_OK,
       "delete again: fine");
    avs_objstore_close(os);

    oc.url = "s3://bucket/prefix";
    is_int(avs_objstore_open(&oc, &os, &err), AVS_EMALFORMED,
           "s3:// without an endpoint refused");
    ok(strstr(err.msg, "endpoint=") != NULL, "says so: %s", err.msg);

    oc.url = "relative/dir";
    is_int(avs_objstore_open(&oc, &os, &err), AVS_EMALFORMED, "bad URL");

    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) {
        printf("# could not remove %s\n", dir);
    }

    return done_testing();
}
