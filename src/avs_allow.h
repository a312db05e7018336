/*
 * The schemas a location accepts (avro_schemas): read from the client's own
 * schema bundles, {"table_version": ..., "schemas": [{"table_name",
 * "schema"}]}, and matched by table name and schema fingerprint, so that a
 * writer schema that differs only in formatting or documentation is still
 * the same schema.
 */

#ifndef AVS_ALLOW_H
#define AVS_ALLOW_H

#include "avs_base.h"

typedef struct {
    char      table[129];
    uint64_t  fingerprint;
    char      version[32];      /* table_version of the bundle */
} avs_allow_entry_t;

typedef struct {
    avs_allow_entry_t  *entries;
    size_t              n;
} avs_allow_t;

/* Adds every schema of the bundle file at path. */
avs_rc_t avs_allow_load(avs_allow_t *allow, const char *path, avs_err_t *err);

/* AVS_OK if (table, fingerprint) is listed, else AVS_EREJECTED. */
avs_rc_t avs_allow_check(const avs_allow_t *allow, const char *table,
    uint64_t fingerprint, avs_err_t *err);

void avs_allow_free(avs_allow_t *allow);

#endif /* AVS_ALLOW_H */
