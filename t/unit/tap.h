/*
 * Minimal TAP producer for the C unit tests run by prove.
 */

#ifndef AVS_TAP_H
#define AVS_TAP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_failed;

#define ok(cond, ...)  tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

#define is_int(got, want, ...)                                              \
    do {                                                                    \
        long long g_ = (long long) (got), w_ = (long long) (want);          \
        if (!tap_ok(g_ == w_, __FILE__, __LINE__, __VA_ARGS__)) {           \
            printf("#   got: %lld\n#   expected: %lld\n", g_, w_);          \
        }                                                                   \
    } while (0)

#define is_str(got, want, ...)                                              \
    do {                                                                    \
        const char *g_ = (got), *w_ = (want);                               \
        if (!tap_ok(g_ && w_ && strcmp(g_, w_) == 0, __FILE__, __LINE__,    \
                    __VA_ARGS__))                                           \
        {                                                                   \
            printf("#   got: '%s'\n#   expected: '%s'\n",                   \
                   g_ ? g_ : "(null)", w_ ? w_ : "(null)");                 \
        }                                                                   \
    } while (0)

static int
tap_ok(int pass, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#include <stdarg.h>

static int
tap_ok(int pass, const char *file, int line, const char *fmt, ...)
{
    va_list  ap;

    tap_n++;
    printf("%s %d - ", pass ? "ok" : "not ok", tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");

    if (!pass) {
        tap_failed++;
        printf("#   Failed test at %s line %d.\n", file, line);
    }

    fflush(stdout);
    return pass;
}

static int
done_testing(void)
{
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}

#endif /* AVS_TAP_H */
