/* SPDX-License-Identifier: MIT */
/* ex_util.h -- small helpers the Parallel Python ports share beyond
 * demo_common.h: their first line, a range of numbers cut into parts
 * (--end, --parts), and printing a double as Python's repr() does. */
#ifndef PP_EX_UTIL_H
#define PP_EX_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo_common.h"

/* As demo_server_ready(): 0 when s, what pp_server_new() returned, can run
 * the jobs, else -1 after printing why.  When it can, prints the line the
 * originals begin with, "Starting pp with N workers". */
static inline int ex_server_ready(const demo_opts *d, pp_server *s)
{
    if (demo_server_ready(d, s) != 0)
        return -1;
    printf("Starting pp with %d workers\n", pp_get_ncpus(s));
    return 0;
}

/* The numbers start..end-1, cut into `parts` jobs as the originals cut them:
 * (end - start) / parts + 1 numbers each, the last ones cut short at end. */
typedef struct ex_range {
    long start, end, parts;
} ex_range;

#define EX_END_MAX (1L << 40)
#define EX_PARTS_MAX 100000L

/* The getopt_long() entries of --end and --parts, for ex_range_option(). */
#define EX_RANGE_OPTIONS                                                                    \
    {"end", required_argument, NULL, 'E'}, {"parts", required_argument, NULL, 'P'}

/* A demo_option_fn: --end N (2..EX_END_MAX) and --parts P (1..EX_PARTS_MAX)
 * into the ex_range `range`. */
static inline int ex_range_option(const char *prog, int letter, const char *arg, void *range)
{
    ex_range *r = range;
    if (letter == 'E')
        return demo_parse_long(prog, "--end", arg, 2, EX_END_MAX, &r->end);
    return demo_parse_long(prog, "--parts", arg, 1, EX_PARTS_MAX, &r->parts);
}

/* Part i of the range: the numbers *lo..*hi-1. */
static inline void ex_range_part(const ex_range *r, long i, long *lo, long *hi)
{
    long step = (r->end - r->start) / r->parts + 1;
    *lo = r->start + i * step;
    *hi = r->start + (i + 1) * step < r->end ? r->start + (i + 1) * step : r->end;
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
