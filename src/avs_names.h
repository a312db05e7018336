/*
 * Names that end up in object keys (dataset, table, period) are checked
 * here, so that none can escape its key prefix or smuggle control bytes.
 */

#ifndef AVS_NAMES_H
#define AVS_NAMES_H

#include "avs_base.h"

#define AVS_NAME_MAX  128

/*
 * A name is 1..AVS_NAME_MAX bytes of [A-Za-z0-9._@~-], does not start with
 * a dot (no "." or ".." and no hidden files) and holds no "..".  what names
 * the field in the message ("dataset_id: ...").
 */
avs_rc_t avs_name_check(const char *what, const char *s, size_t n,
    avs_err_t *err);

/* Writes the UTC date of ms as YYYY-MM-DD into out (11 bytes with NUL). */
void avs_utc_date(int64_t ms, char out[11]);

#endif /* AVS_NAMES_H */
