/* SPDX-License-Identifier: MIT */
/* ex_util.h -- small helpers the Parallel Python ports share: a clock,
 * number arguments, and printing a double as Python's repr() does. */
#ifndef PP_EX_UTIL_H
#define PP_EX_UTIL_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Monotonic seconds, for the "Time elapsed" lines. */
static inline double ex_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Parses a whole decimal number in [min, max] into *out.  Prints
 * "PROG: WHAT: ..." and returns -1 when it is not one. */
static inline int ex_parse_long(const char *prog, const char *what, const char *arg, long min,
                                long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (errno || end == arg || *end) {
        fprintf(stderr, "%s: %s: \"%s\" is not a number\n", prog, what, arg);
        return -1;
    }
    if (v < min || v > max) {
        fprintf(stderr, "%s: %s: %ld is out of range %ld..%ld\n", prog, what, v, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

/* The shortest text that reads back as x, as Python's repr(float) prints
 * it (0.1, 0.6931471805599453, -2.5e-08). */
static inline const char *ex_repr(double x, char buf[32])
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, 32, "%.*g", prec, x);
        if (strtod(buf, NULL) == x)
            break;
    }
    if (!strpbrk(buf, ".eni")) /* 1 -> 1.0, but not inf or nan */
        strcat(buf, ".0");
    return buf;
}

#endif
