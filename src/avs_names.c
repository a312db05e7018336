/*
 * Validation of dataset, table and period names.
 */

#include <string.h>
#include <time.h>

#include "avs_names.h"


static int
avs_name_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9')
           || c == '.' || c == '_' || c == '-' || c == '@' || c == '~';
}


avs_rc_t
avs_name_check(const char *what, const char *s, size_t n, avs_err_t *err)
{
    size_t  i;

    if (n == 0) {
        return avs_err_set(err, AVS_EMALFORMED, "%s: empty", what);
    }

    if (n > AVS_NAME_MAX) {
        return avs_err_set(err, AVS_EMALFORMED,
                           "%s: longer than %d bytes", what, AVS_NAME_MAX);
    }

    if (s[0] == '.') {
        return avs_err_set(err, AVS_EMALFORMED,
                           "%s: must not start with '.'", what);
    }

    for (i = 0; i < n; i++) {
        if (!avs_name_char_ok((unsigned char) s[i])) {
            return avs_err_set(err, AVS_EMALFORMED,
                               "%s: byte %zu is not one of "
                               "A-Z a-z 0-9 . _ - @ ~", what, i + 1);
        }

        if (s[i] == '.' && i + 1 < n && s[i + 1] == '.') {
            return avs_err_set(err, AVS_EMALFORMED,
                               "%s: must not contain '..'", what);
        }
    }

    return AVS_OK;
}


void
avs_utc_date(int64_t ms, char out[11])
{
    struct tm  tm;
    time_t     t;

    t = (time_t) (ms / 1000);
    gmtime_r(&t, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
}
