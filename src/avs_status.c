/*
 * Status document of the store.
 */

#include "avs_archive.h"
#include "avs_json.h"
#include "avs_status.h"


avs_rc_t
avs_status_json(avs_store_t *st, const char *path, int archive,
    avs_buf_t *out, avs_err_t *err)
{
    avs_store_status_t  s;
    avs_rc_t            rc;

    rc = avs_store_status(st, &s, err);
    if (rc != AVS_OK) {
        avs_json_error(out, err);
        return rc;
    }

    rc = avs_json_raw(out, "{\"hot\":{");
    if (rc == AVS_OK) {
        rc = avs_json_field_u64(out, "rows", s.hot_rows);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_u64(out, "bytes", s.hot_bytes);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_u64(out, "records", s.hot_records);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_u64(out, "datasets", s.datasets);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_i64(out, "oldest_ms", s.oldest_ms);
    }
    if (rc == AVS_OK) {
        rc = avs_json_raw(out, "},\"store\":{");
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_str(out, "path", path);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_u64(out, "bytes", s.db_bytes);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_u64(out, "max_size", s.max_size);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_u64(out, "streams", s.streams);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_u64(out, "lock_recoveries", s.lock_recoveries);
    }
    if (rc == AVS_OK) {
        rc = avs_json_field_bool(out, "writes_refused", s.writes_refused);
    }
    if (rc == AVS_OK) {
        rc = avs_json_raw(out, "}");
    }

    if (rc == AVS_OK && archive) {
        rc = avs_json_raw(out, ",\"archive\":");

        if (rc == AVS_OK) {
            rc = avs_archive_status(st, out, err);
            if (rc != AVS_OK) {
                out->len = 0;
                avs_json_error(out, err);
                return rc;
            }
        }
    }

    if (rc == AVS_OK) {
        rc = avs_json_raw(out, "}\n");
    }

    if (rc != AVS_OK) {
        return avs_err_set(err, rc, "cannot build the status");
    }

    return AVS_OK;
}
