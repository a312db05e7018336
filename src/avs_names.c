/*
 * Validation of dataset, table and period names.
 */

#include <string.h>

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


/*
 * Civil date from days since 1970-01-01 (the proleptic Gregorian
 * calendar), computed rather than asked of gmtime_r(), which takes the
 * time zone lock on every upload.
 */
void
avs_utc_date(int64_t ms, char out[11])
{
    int64_t  days, era, doe, yoe, doy, mp, y, m, d;

    days = ms / 86400000;

    if (ms < 0 && ms % 86400000 != 0) {
        days--;
    }

    days += 719468;
    era = (days >= 0 ? days : days - 146096) / 146097;
    doe = days - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y += (m <= 2);

    y %= 10000;
    out[0] = (char) ('0' + y / 1000);
    out[1] = (char) ('0' + y / 100 % 10);
    out[2] = (char) ('0' + y / 10 % 10);
    out[3] = (char) ('0' + y % 10);
    out[4] = '-';
    out[5] = (char) ('0' + m / 10);
    out[6] = (char) ('0' + m % 10);
    out[7] = '-';
    out[8] = (char) ('0' + d / 10);
    out[9] = (char) ('0' + d % 10);
    out[10] = '\0';
}
