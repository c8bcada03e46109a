/* SPDX-License-Identifier: MIT */
/* pp-auto-diff -- Parallel Python's auto_diff example with pp: the partial
 * sums of f(x) = x - x^2/2 + x^3/3 - ... (the series of ln(1 + x)) and their
 * first derivatives by automatic differentiation, at 32 points, one job
 * each.  In the limit t_log(x) = ln(x) and t_log'(x) = 1/x.  The original
 * submits a method of a class and differentiates with an operator-overloading
 * class; in C the job takes a dual number (x, dx = 1) and the number of
 * terms, and applies the dual-number operations of the task module. */
#include <getopt.h>
#include <pp.h>
#include <stdio.h>
#include <stdlib.h>

#include "autodiff_tasks.h"
#include "demo_common.h"
#include "ex_util.h"

#define PROG "pp-auto-diff"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: " PROG " [--servers host:port,...] [--secret-file FILE] [--ncpus N]\n"
            "                    [--terms N] [--points P]\n"
            "\n"
            "Parallel Python's auto_diff example: t_log(x), the series of ln(x) cut after\n"
            "N-1 terms (default N 20000), and its derivative t_log'(x) by automatic\n"
            "differentiation, at x = 1 + i/P for i = 0..P-1 (default P 32), one pp job\n"
            "each, on the local cores and the given ppservers; then pp's statistics.\n"
            "\n"
            "  --terms N           terms of the series, plus one (1..%ld)\n"
            "  --points P          points, and jobs (1..100000)\n",
            PPEX_TERMS_MAX);
    demo_usage_options(fp);
}

/* --terms N and --points P. */
typedef struct settings {
    long terms, points;
} settings;

static int settings_option(const char *prog, int letter, const char *arg, void *ctx)
{
    settings *set = ctx;
    if (letter == 'T')
        return demo_parse_long(prog, "--terms", arg, 1, PPEX_TERMS_MAX, &set->terms);
    return demo_parse_long(prog, "--points", arg, 1, 100000, &set->points);
}

int main(int argc, char **argv)
{
    settings set = {.terms = 20000, .points = 32}; /* the defaults */
    static const struct option opts[] = {
        DEMO_OPTIONS,
        {"terms", required_argument, NULL, 'T'},
        {"points", required_argument, NULL, 'P'},
        DEMO_OPTIONS_END,
    };
    demo_opts d = DEMO_OPTS_INIT(PROG, usage);
    pp_server *s = NULL;
    pp_job **jobs = NULL;
    double *xs = NULL;
    int rc = 1; /* the exit status: 1 until the end */
    if (demo_getopt(&d, argc, argv, opts, settings_option, &set, &rc) != 0 ||
        demo_no_operands(&d, argc, argv, &rc) != 0)
        goto done;
    jobs = demo_calloc(&d, (size_t)set.points, sizeof *jobs);
    xs = demo_calloc(&d, (size_t)set.points, sizeof *xs);

    s = pp_server_new(demo_config(&d));
    if (ex_server_ready(&d, s) != 0)
        goto done;
    double t0 = demo_now();
    for (long i = 0; i < set.points; i++) {
        /* The dual number x + 1 dx: its derivative with respect to x is 1. */
        xs[i] = (double)i / (double)set.points + 1;
        jobs[i] = pp_submitf(s, ppex_t_log, NULL, "ddl", xs[i], 1.0, set.terms);
        if (!jobs[i]) {
            fprintf(stderr, "%s\n", pp_last_error());
            goto done;
        }
    }
    for (long i = 0; i < set.points; i++) {
        double val, dval;
        if (pp_job_unpack(jobs[i], "dd", &val, &dval) != 0) {
            fprintf(stderr, "%s\n", pp_last_error());
            goto done;
        }
        printf("t_log(%f) = %f, t_log'(%f) = %f\n", xs[i], val, xs[i], dval);
    }
    printf("Time elapsed: %.3f s\n", demo_now() - t0);
    fflush(stdout);
    pp_print_stats(s, stdout);
    rc = 0;
done:
    demo_jobs_free(jobs, set.points);
    pp_server_free(s);
    free(xs);
    demo_opts_free(&d);
    return rc;
}
