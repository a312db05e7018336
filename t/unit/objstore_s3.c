/*
 * The s3:// cold store against a real S3-compatible server whose endpoint
 * t/30-s3.t passes in AVS_S3_ENDPOINT (with AVS_S3_CREDENTIALS); skipped
 * when run alone.  The server checks the access key of every request but
 * not SigV4 signatures themselves: t/unit/sigv4.c checks the signer
 * against AWS's published vectors.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "avs_objstore.h"


int
main(void)
{
    avs_objstore_conf_t   oc;
    avs_objstore_t       *os;
    avs_err_t             err;
    avs_buf_t             b;
    uint64_t              size;
    FILE                 *f;
    char                  src[] = "/tmp/avs-s3-XXXXXX";
    char                  etag[AVS_ETAG_SIZE], sha[65];
    int                   fd;

    if (getenv("AVS_S3_ENDPOINT") == NULL) {
        printf("1..0 # SKIP AVS_S3_ENDPOINT is not set (see t/30-s3.t)\n");
        return 0;
    }

    fd = mkstemp(src);
    f = fdopen(fd, "w");
    fputs("0123456789abcdef", f);
    fclose(f);

    memset(&oc, 0, sizeof(oc));
    oc.url = "s3://bucket/pre/fix/";
    oc.endpoint = getenv("AVS_S3_ENDPOINT");
    oc.credentials = getenv("AVS_S3_CREDENTIALS");
    oc.timeout_ms = 5000;

    ok(avs_objstore_open(&oc, &os, &err) == AVS_OK, "s3 store opens: %s",
       err.msg);

    ok(avs_objstore_put_file(os, "t/p/f/n-1.avro", src, etag, sha, &err)
       == AVS_OK, "signed PUT accepted: %s", err.msg);
    ok(etag[0] != '\0', "ETag %s", etag);

    ok(avs_objstore_head(os, "t/p/f/n-1.avro", &size, etag, &err) == AVS_OK
       && size == 16, "HEAD: 16 bytes");
    is_int(avs_objstore_head(os, "t/p/f/none.avro", &size, etag, &err),
           AVS_DONE, "HEAD of a missing object: AVS_DONE");

    memset(&b, 0, sizeof(b));
    ok(avs_objstore_get_range(os, "t/p/f/n-1.avro", 10, 6, &b, &err)
       == AVS_OK && b.len == 6 && memcmp(b.data, "abcdef", 6) == 0,
       "ranged GET: 206 with the right bytes");
    avs_buf_free(&b);

    ok(avs_objstore_delete(os, "t/p/f/n-1.avro", &err) == AVS_OK, "DELETE");
    is_int(avs_objstore_head(os, "t/p/f/n-1.avro", &size, etag, &err),
           AVS_DONE, "gone");
    avs_objstore_close(os);

    /* an unknown access key: refused */
    oc.credentials = getenv("AVS_S3_BAD_CREDENTIALS");
    ok(avs_objstore_open(&oc, &os, &err) == AVS_OK, "opens with a bad key");
    is_int(avs_objstore_put_file(os, "t/x.avro", src, etag, sha, &err),
           AVS_ESTORE, "PUT refused");
    ok(strstr(err.msg, "t/x.avro") != NULL
       && strstr(err.msg, "403") != NULL, "names key and status: %s",
       err.msg);
    ok(strstr(err.msg, "S3RVER") == NULL && strstr(err.msg, "NOPE") == NULL,
       "no credentials in the message");
    avs_objstore_close(os);

    /* nobody listening */
    oc.endpoint = "http://127.0.0.1:1";
    oc.credentials = getenv("AVS_S3_CREDENTIALS");
    ok(avs_objstore_open(&oc, &os, &err) == AVS_OK, "opens: no connection yet");
    is_int(avs_objstore_put_file(os, "t/y.avro", src, etag, sha, &err),
           AVS_ESTORE, "refused connection: AVS_ESTORE");
    ok(strstr(err.msg, "t/y.avro") != NULL, "names the key: %s", err.msg);
    avs_objstore_close(os);

    remove(src);

    return done_testing();
}
