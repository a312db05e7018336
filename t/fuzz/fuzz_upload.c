/*
 * libFuzzer target over the untrusted-input path of an upload: the JSON
 * envelope, the container parser, the codecs, schema parsing and the record
 * walker, and the re-framing.  The first input byte picks the mode:
 *
 *   0     the rest is a whole Avro file, uploaded as-is;
 *   1     the rest is a JSON envelope;
 *   2..   the rest is record data walked against a real table schema
 *         (the byte picks the table), framed into a one-block file.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avs_envelope.h"
#include "avs_upload.h"

#define FUZZ_SCHEMAS  4

static const char  *fuzz_schemas[FUZZ_SCHEMAS] = {
    "{\"type\":\"record\",\"name\":\"OwnShip\",\"fields\":["
    "{\"name\":\"env_uuid\",\"type\":{\"type\":\"string\","
    "\"logicalType\":\"uuid\"}},{\"name\":\"index\",\"type\":\"int\"},"
    "{\"name\":\"slot\",\"type\":{\"type\":\"array\",\"items\":"
    "[\"null\",\"long\"]}},{\"name\":\"nowhp\",\"type\":[\"null\",\"int\"]},"
    "{\"name\":\"f\",\"type\":\"float\"},{\"name\":\"d\",\"type\":\"double\"},"
    "{\"name\":\"b\",\"type\":\"boolean\"}]}",

    "{\"type\":\"record\",\"name\":\"N\",\"fields\":[{\"name\":\"next\","
    "\"type\":[\"null\",\"N\"]},{\"name\":\"v\",\"type\":\"bytes\"}]}",

    "{\"type\":\"record\",\"name\":\"M\",\"fields\":[{\"name\":\"m\","
    "\"type\":{\"type\":\"map\",\"values\":{\"type\":\"array\","
    "\"items\":\"null\"}}},{\"name\":\"e\",\"type\":{\"type\":\"enum\","
    "\"name\":\"E\",\"symbols\":[\"A\",\"B\",\"C\"]}},{\"name\":\"x\","
    "\"type\":{\"type\":\"fixed\",\"name\":\"F\",\"size\":3}}]}",

    "{\"type\":\"array\",\"items\":\"string\"}"
};

static avs_schema_cache_t  *fuzz_cache;
static avs_limits_t         fuzz_limits;


static void
fuzz_upload(const uint8_t *file, size_t n)
{
    static const uint8_t  sync[AVS_SYNC_SIZE] = "fuzzfuzzfuzzfuzz";
    avs_upload_t          u;
    avs_err_t             err;

    if (avs_upload_open(&u, file, n, fuzz_cache, &fuzz_limits, 1, &err)
        == AVS_OK)
    {
        (void) avs_upload_reframe(&u, AVS_CODEC_DEFLATE, 1, sync,
                                  &fuzz_limits, NULL, &err);
    }

    avs_upload_free(&u, fuzz_cache);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t  sync[AVS_SYNC_SIZE] = "0123456789abcdef";
    avs_envelope_t        env;
    avs_err_t             err;
    avs_buf_t             file;
    const char           *schema;
    size_t                i;

    if (fuzz_cache == NULL) {
        fuzz_cache = avs_schema_cache_create(64);
        avs_limits_default(&fuzz_limits);
        fuzz_limits.max_upload = 1024 * 1024;
        fuzz_limits.max_records = 10000;
    }

    if (size < 1) {
        return 0;
    }

    if (data[0] == 0) {
        fuzz_upload(data + 1, size - 1);
        return 0;
    }

    if (data[0] == 1) {
        if (avs_envelope_parse(data + 1, size - 1, size, &env, &err)
            == AVS_OK)
        {
            for (i = 0; i < env.nfiles; i++) {
                fuzz_upload(env.files[i].data, env.files[i].len);
            }

            avs_envelope_free(&env);
        }

        return 0;
    }

    schema = fuzz_schemas[data[0] % FUZZ_SCHEMAS];
    memset(&file, 0, sizeof(file));

    if (avs_ocf_write_header(&file, schema, strlen(schema), AVS_CODEC_NULL,
                             sync) == AVS_OK
        && avs_ocf_write_block(&file, 1 + (data[0] >> 4), data + 1, size - 1,
                               sync) == AVS_OK)
    {
        fuzz_upload(file.data, file.len);
    }

    avs_buf_free(&file);

    return 0;
}
