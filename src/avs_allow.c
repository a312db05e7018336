/*
 * Accepted schemas per table, loaded from schema bundle files.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "avs_allow.h"
#include "avs_fingerprint.h"
#include "avs_names.h"


static avs_rc_t
avs_allow_add(avs_allow_t *allow, const char *table, const char *schema,
    size_t len, const char *version, avs_err_t *err)
{
    avs_allow_entry_t  *e;
    avs_buf_t           canon;
    avs_rc_t            rc;

    memset(&canon, 0, sizeof(canon));

    rc = avs_schema_canonical_form(schema, len, &canon, err);
    if (rc != AVS_OK) {
        avs_buf_free(&canon);
        return rc;
    }

    e = realloc(allow->entries, (allow->n + 1) * sizeof(*e));
    if (e == NULL) {
        avs_buf_free(&canon);
        return avs_err_set(err, AVS_ENOMEM, "out of memory");
    }

    allow->entries = e;
    e = &allow->entries[allow->n++];
    snprintf(e->table, sizeof(e->table), "%s", table);
    snprintf(e->version, sizeof(e->version), "%s", version);
    e->fingerprint = avs_crc64_avro(canon.data, canon.len);

    avs_buf_free(&canon);

    return AVS_OK;
}


avs_rc_t
avs_allow_load(avs_allow_t *allow, const char *path, avs_err_t *err)
{
    json_error_t  jerr;
    json_t       *root, *list, *item, *name, *schema, *ver;
    const char   *text, *version;
    avs_rc_t      rc;
    size_t        i;
    char         *dumped, vbuf[32];

    root = json_load_file(path, 0, &jerr);
    if (root == NULL) {
        return avs_err_set(err, AVS_EMALFORMED, "%s: line %d: %s", path,
                           jerr.line, jerr.text);
    }

    list = json_object_get(root, "schemas");
    if (!json_is_array(list)) {
        json_decref(root);
        return avs_err_set(err, AVS_EMALFORMED,
                           "%s: no \"schemas\" array", path);
    }

    ver = json_object_get(root, "table_version");
    version = "";

    if (json_is_string(ver)) {
        version = json_string_value(ver);

    } else if (json_is_number(ver)) {
        snprintf(vbuf, sizeof(vbuf), "%g", json_number_value(ver));
        version = vbuf;
    }

    rc = AVS_OK;

    json_array_foreach(list, i, item) {
        name = json_object_get(item, "table_name");
        schema = json_object_get(item, "schema");

        if (!json_is_string(name)
            || avs_name_check("table_name", json_string_value(name),
                              json_string_length(name), err) != AVS_OK)
        {
            rc = avs_err_set(err, AVS_EMALFORMED,
                             "%s: schema %zu: bad or missing \"table_name\"",
                             path, i + 1);
            break;
        }

        if (json_is_string(schema)) {
            text = json_string_value(schema);
            rc = avs_allow_add(allow, json_string_value(name), text,
                               json_string_length(schema), version, err);

        } else if (json_is_object(schema)) {
            dumped = json_dumps(schema, JSON_COMPACT);
            if (dumped == NULL) {
                rc = avs_err_set(err, AVS_ENOMEM, "out of memory");
                break;
            }

            rc = avs_allow_add(allow, json_string_value(name), dumped,
                               strlen(dumped), version, err);
            free(dumped);

        } else {
            rc = avs_err_set(err, AVS_EMALFORMED,
                             "%s: schema %zu: no \"schema\"", path, i + 1);
        }

        if (rc != AVS_OK) {
            break;
        }
    }

    json_decref(root);

    return rc;
}


avs_rc_t
avs_allow_check(const avs_allow_t *allow, const char *table,
    uint64_t fingerprint, avs_err_t *err)
{
    size_t  i;
    int     known;

    known = 0;

    for (i = 0; i < allow->n; i++) {
        if (strcmp(allow->entries[i].table, table) != 0) {
            continue;
        }

        if (allow->entries[i].fingerprint == fingerprint) {
            return AVS_OK;
        }

        known = 1;
    }

    if (!known) {
        return avs_err_set(err, AVS_EREJECTED,
                           "table '%s' is not accepted here", table);
    }

    return avs_err_set(err, AVS_EREJECTED,
                       "schema %016llx is not accepted for table '%s'",
                       (unsigned long long) fingerprint, table);
}


void
avs_allow_free(avs_allow_t *allow)
{
    free(allow->entries);
    allow->entries = NULL;
    allow->n = 0;
}
