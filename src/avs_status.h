/*
 * The status document answered by the avro_status location.
 */

#ifndef AVS_STATUS_H
#define AVS_STATUS_H

#include "avs_store.h"

/*
 * Reads the store's counters and writes them as JSON:
 * {"hot": {"rows", "bytes", "records", "datasets", "oldest_ms"},
 *  "store": {"path", "bytes", "max_size", "streams", "lock_recoveries",
 *            "writes_refused"},
 *  "archive": see avs_archive_status(), when archive is set}
 * On failure the answer is the error body and the result code says why.
 */
avs_rc_t avs_status_json(avs_store_t *st, const char *path, int archive,
    avs_buf_t *out, avs_err_t *err);

#endif /* AVS_STATUS_H */
