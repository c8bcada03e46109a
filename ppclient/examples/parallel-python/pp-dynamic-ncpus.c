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
            "  --parts P           jobs per setting (1..100000)\n"
            "  --servers LIST      ppserver nodes, comma-separated host[:port] (default port %d);\n"
            "                      they take part in every setting\n"
            "  --secret-file FILE  the cluster's shared secret (else $PP_SECRET)\n"
            "  -h, --help          this text\n",
            1L << 40, PP_DEFAULT_PORT);
}

int main(int argc, char **argv)
{
    demo_opts d;
    demo_opts_init(&d);
    static const struct option opts[] = {
        {"servers", required_argument, NULL, 'S'},
        {"secret-file", required_argument, NULL, 'F'},
        {"ncpus", required_argument, NULL, 'n'},
        {"end", required_argument, NULL, 'E'},
        {"parts", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    pp_server *s = NULL;
    pp_job **jobs = NULL;
    long start = 1, end = 20000000, parts = 64;
    int rc = 0, c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            goto done;
        }
        if (c == 'E' || c == 'P') {
            if (c == 'E' ? ex_parse_long(PROG, "--end", optarg, 2, 1L << 40, &end)
                         : ex_parse_long(PROG, "--parts", optarg, 1, 100000, &parts)) {
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
    if (d.ncpus == 0) {
        fprintf(stderr, PROG ": --ncpus must be at least 1: it is the largest local pool\n");
        rc = 2;
        goto done;
    }
    jobs = calloc((size_t)parts, sizeof *jobs);
    if (!jobs) {
        fprintf(stderr, PROG ": out of memory\n");
        rc = 1;
        goto done;
    }

    s = demo_server_new(&d, PROG); /* the pool starts at its largest */
    if (!s || demo_check_nodes(s, PROG) != 0) {
        rc = 1;
        goto done;
    }
    int max = pp_get_ncpus(s); /* --ncpus, or the CPUs available */
    int settings[40], nsettings = 0;
    for (int n = 1; n < max && nsettings < 30; n *= 2)
        settings[nsettings++] = n;
    settings[nsettings++] = max;
    settings[nsettings++] = 1; /* and back, as the original does */

    long step = (end - start) / parts + 1;
    double first = 0;
    int identical = 1;
    for (int k = 0; k < nsettings; k++) {
        if (pp_set_ncpus(s, settings[k]) != 0) {
            fprintf(stderr, "%s\n", pp_last_error());
            rc = 1;
            goto done;
        }
        double t0 = ex_now();
        printf("Starting pp with %d workers\n", pp_get_ncpus(s));
        for (long i = 0; i < parts; i++) {
            long starti = start + i * step;
            long endi = start + (i + 1) * step < end ? start + (i + 1) * step : end;
            jobs[i] = pp_submitf(s, ppex_part_sum, NULL, "ll", starti, endi);
            if (!jobs[i]) {
                fprintf(stderr, "%s\n", pp_last_error());
                rc = 1;
                goto done;
            }
        }
        /* The results, in submission order, added up. */
        double sum = 0;
        for (long i = 0; i < parts; i++) {
            double v;
            if (pp_job_unpack(jobs[i], "d", &v) != 0) {
                fprintf(stderr, "%s\n", pp_last_error());
                rc = 1;
                goto done;
            }
            sum += v;
            pp_job_free(jobs[i]);
            jobs[i] = NULL;
        }
        char a[32], b[32];
        printf("Partial sum is %s | diff = %s\n", ex_repr(sum, a), ex_repr(log(2) - sum, b));
        printf("Time elapsed: %.3f s\n\n", ex_now() - t0);
        fflush(stdout);
        if (k == 0)
            first = sum;
        else if (memcmp(&sum, &first, sizeof sum) != 0)
            identical = 0;
    }
    printf("Results identical with every number of workers: %s\n", identical ? "yes" : "NO");
    fflush(stdout);
    pp_print_stats(s, stdout);
    if (!identical)
        rc = 1;
done:
    for (long i = 0; jobs && i < parts; i++)
        pp_job_free(jobs[i]);
    pp_server_free(s);
    free(jobs);
    demo_opts_free(&d);
    return rc;
}
