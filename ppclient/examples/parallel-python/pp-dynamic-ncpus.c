/* SPDX-License-Identifier: MIT */
/* pp-dynamic-ncpus -- Parallel Python's dynamic_ncpus example with pp: the
 * same workload (the partial sum 1 - 1/2 + 1/3 - ..., in parts) run again
 * and again while pp_set_ncpus() changes the local pool at run time: 1, 2,
 * 4, ... workers up to the CPU count, then 1 again.  Each setting prints its
 * sum and time; the sums must be identical (the parts are added in the same
 * order every time). */
#include <getopt.h>
#include <math.h>
#include <pp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo_common.h"
#include "ex_util.h"
#include "series_tasks.h"

#define PROG "pp-dynamic-ncpus"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: " PROG " [--servers host:port,...] [--secret-file FILE] [--ncpus N]\n"
            "                        [--end N] [--parts P]\n"
            "\n"
            "Parallel Python's dynamic_ncpus example: the partial sum 1 - 1/2 + 1/3 - ... of\n"
            "the terms below N (default 20000000), in P jobs (default 64), computed with 1,\n"
            "2, 4, ... local workers up to N (pp_set_ncpus() at run time), then with 1\n"
            "again; the time of each, whether all the sums agree, pp's statistics.\n"
            "\n"
            "  --ncpus N           the largest pool (default: the CPUs available; at least 1)\n"
            "  --end N             the first term not summed (2..%ld)\n"
            "  --parts P           jobs per setting (1..%ld)\n"
            "  --servers LIST      ppserver nodes, comma-separated host[:port] (default port %d);\n"
            "                      they take part in every setting\n"
            "  --secret-file FILE  the cluster's shared secret (else $PP_SECRET)\n"
            "  -h, --help          this text\n",
            EX_END_MAX, EX_PARTS_MAX, PP_DEFAULT_PORT);
}

int main(int argc, char **argv)
{
    ex_range r = {.start = 1, .end = 20000000, .parts = 64}; /* --end and --parts */
    static const struct option opts[] = {DEMO_OPTIONS, EX_RANGE_OPTIONS, DEMO_OPTIONS_END};
    demo_opts d = DEMO_OPTS_INIT(PROG, usage);
    pp_server *s = NULL;
    pp_job **jobs = NULL;
    int rc = 1; /* the exit status: 1 until the end */
    if (demo_getopt(&d, argc, argv, opts, ex_range_option, &r, &rc) != 0 ||
        demo_no_operands(&d, argc, argv, &rc) != 0)
        goto done;
    if (d.ncpus == 0) {
        fprintf(stderr, PROG ": --ncpus must be at least 1: it is the largest local pool\n");
        rc = 2;
        goto done;
    }
    jobs = demo_calloc(&d, (size_t)r.parts, sizeof *jobs);

    s = pp_server_new(demo_config(&d)); /* the pool starts at its largest */
    if (demo_server_ready(&d, s) != 0)
        goto done;
    int max = pp_get_ncpus(s); /* --ncpus, or the CPUs available */
    int settings[40], nsettings = 0;
    for (int n = 1; n < max && nsettings < 30; n *= 2)
        settings[nsettings++] = n;
    settings[nsettings++] = max;
    settings[nsettings++] = 1; /* and back, as the original does */

    double first = 0;
    int identical = 1;
    for (int k = 0; k < nsettings; k++) {
        if (pp_set_ncpus(s, settings[k]) != 0) {
            fprintf(stderr, "%s\n", pp_last_error());
            goto done;
        }
        double t0 = demo_now();
        printf("Starting pp with %d workers\n", pp_get_ncpus(s));
        for (long i = 0; i < r.parts; i++) {
            long starti, endi;
            ex_range_part(&r, i, &starti, &endi);
            jobs[i] = pp_submitf(s, ppex_part_sum, NULL, "ll", starti, endi);
            if (!jobs[i]) {
                fprintf(stderr, "%s\n", pp_last_error());
                goto done;
            }
        }
        /* The results, in submission order, added up. */
        double sum = 0;
        for (long i = 0; i < r.parts; i++) {
            double v;
            if (pp_job_unpack(jobs[i], "d", &v) != 0) {
                fprintf(stderr, "%s\n", pp_last_error());
                goto done;
            }
            sum += v;
            pp_job_free(jobs[i]);
            jobs[i] = NULL;
        }
        char a[32], b[32];
        printf("Partial sum is %s | diff = %s\n", ex_repr(sum, a), ex_repr(log(2) - sum, b));
        printf("Time elapsed: %.3f s\n\n", demo_now() - t0);
        fflush(stdout);
        if (k == 0)
            first = sum;
        else if (memcmp(&sum, &first, sizeof sum) != 0)
            identical = 0;
    }
    printf("Results identical with every number of workers: %s\n", identical ? "yes" : "NO");
    fflush(stdout);
    pp_print_stats(s, stdout);
    rc = identical ? 0 : 1;
done:
    demo_jobs_free(jobs, r.parts);
    pp_server_free(s);
    demo_opts_free(&d);
    return rc;
}
