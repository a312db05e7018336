/*
 * A writer schema as the store knows it: the original text, its Parsing
 * Canonical Form and fingerprint, the avro-c schema and the compiled walker.
 * Parsing is costly, so schemas are kept in a cache keyed by their exact
 * text; entries are reference counted and shared between threads.
 */

#ifndef AVS_SCHEMA_H
#define AVS_SCHEMA_H

#include <avro.h>
#include "avs_base.h"
#include "avs_walk.h"

typedef struct {
    char            *json;          /* as uploaded, NUL-terminated */
    size_t           json_len;
    char            *canonical;     /* Parsing Canonical Form, NUL-terminated */
    size_t           canonical_len;
    uint64_t         fingerprint;   /* CRC-64-AVRO of canonical */
    char             fp_hex[17];
    avro_schema_t    avro;
    avs_walker_t    *walker;
    unsigned         refs;          /* guarded by the cache's mutex */
} avs_schema_t;

/*
 * Parses a schema text: checks its size and JSON nesting against lim before
 * any parser sees it, then avro-c, the canonical form and the walker.
 */
avs_rc_t avs_schema_parse(const uint8_t *json, size_t n,
    const avs_limits_t *lim, avs_schema_t **out, avs_err_t *err);

void avs_schema_free(avs_schema_t *s);

typedef struct avs_schema_cache_s  avs_schema_cache_t;

avs_schema_cache_t *avs_schema_cache_create(size_t max_entries);
void avs_schema_cache_destroy(avs_schema_cache_t *c);

/*
 * Returns a retained schema for the text.  On a miss the text is parsed,
 * unless parse is 0: then AVS_DONE, because parsing can take long and waits
 * for avro-c's global lock.
 */
avs_rc_t avs_schema_cache_get(avs_schema_cache_t *c, const uint8_t *json,
    size_t n, const avs_limits_t *lim, int parse, avs_schema_t **out,
    avs_err_t *err);

void avs_schema_release(avs_schema_cache_t *c, avs_schema_t *s);

#endif /* AVS_SCHEMA_H */
