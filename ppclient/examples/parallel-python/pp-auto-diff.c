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
            "  --points P          points, and jobs (1..100000)\n"
            "  --servers LIST      ppserver nodes, comma-separated host[:port] (default port %d)\n"
            "  --secret-file FILE  the cluster's shared secret (else $PP_SECRET)\n"
            "  --ncpus N           local workers (default: the CPUs available; 0 = remote only)\n"
            "  -h, --help          this text\n",
            PPEX_TERMS_MAX, PP_DEFAULT_PORT);
}

int main(int argc, char **argv)
{
    demo_opts d;
    demo_opts_init(&d);
    static const struct option opts[] = {
        {"servers", required_argument, NULL, 'S'},
        {"secret-file", required_argument, NULL, 'F'},
        {"ncpus", required_argument, NULL, 'n'},
        {"terms", required_argument, NULL, 'T'},
        {"points", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    pp_server *s = NULL;
    pp_job **jobs = NULL;
    double *xs = NULL;
    long terms = 20000, points = 32;
    int rc = 0, c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            goto done;
        }
        if (c == 'T' || c == 'P') {
            if (c == 'T' ? ex_parse_long(PROG, "--terms", optarg, 1, PPEX_TERMS_MAX, &terms)
                         : ex_parse_long(PROG, "--points", optarg, 1, 100000, &points)) {
                rc = 2;
                goto done;
            }
            continue;
        }
        if (demo_opt(&d, c, optarg) != 0) {
            if (c == '?' || c == ':')
                fprintf(stderr, PROG ": try --help\n");
            rc = 2;
            goto done;
        }
    }
    if (optind < argc) {
        fprintf(stderr, PROG ": unexpected argument \"%s\" (try --help)\n", argv[optind]);
        rc = 2;
        goto done;
    }
    jobs = calloc((size_t)points, sizeof *jobs);
    xs = calloc((size_t)points, sizeof *xs);
    if (!jobs || !xs) {
        fprintf(stderr, PROG ": out of memory\n");
        rc = 1;
        goto done;
    }

    s = demo_server_new(&d, PROG);
    if (!s || demo_check_nodes(s, PROG) != 0) {
        rc = 1;
        goto done;
    }
    printf("Starting pp with %d workers\n", pp_get_ncpus(s));
    double t0 = ex_now();
    for (long i = 0; i < points; i++) {
        /* The dual number x + 1 dx: its derivative with respect to x is 1. */
        xs[i] = (double)i / (double)points + 1;
        jobs[i] = pp_submitf(s, ppex_t_log, NULL, "ddl", xs[i], 1.0, terms);
        if (!jobs[i]) {
            fprintf(stderr, "%s\n", pp_last_error());
            rc = 1;
            goto done;
        }
    }
    for (long i = 0; i < points; i++) {
        double val, dval;
        if (pp_job_unpack(jobs[i], "dd", &val, &dval) != 0) {
            fprintf(stderr, "%s\n", pp_last_error());
            rc = 1;
            goto done;
        }
        printf("t_log(%f) = %f, t_log'(%f) = %f\n", xs[i], val, xs[i], dval);
    }
    printf("Time elapsed: %.3f s\n", ex_now() - t0);
    fflush(stdout);
    pp_print_stats(s, stdout);
done:
    for (long i = 0; jobs && i < points; i++)
        pp_job_free(jobs[i]);
    pp_server_free(s);
    free(jobs);
    free(xs);
    demo_opts_free(&d);
    return rc;
}
