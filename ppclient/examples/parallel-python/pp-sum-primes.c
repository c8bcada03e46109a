/* SPDX-License-Identifier: MIT */
/* pp-sum-primes -- Parallel Python's sum_primes example with pp: the sum of
 * the primes below each input, one job each.  The first job goes through
 * pp_submitf() (job_server.submit in the original), the batch through a
 * template (pp_template_new / pp_template_submitf: pp.Template, as in
 * Parallel Python's sum_primes_template variant). */
#include <getopt.h>
#include <pp.h>
#include <stdio.h>
#include <stdlib.h>

#include "demo_common.h"
#include "ex_util.h"
#include "primes_tasks.h"

#define PROG "pp-sum-primes"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: " PROG " [--servers host:port,...] [--secret-file FILE] [--ncpus N]\n"
            "                     [N...]\n"
            "\n"
            "Parallel Python's sum_primes example: the sum of the primes below 100, then\n"
            "below every N (default 100000 100100 ... 100700), one pp job each, on the\n"
            "local cores and on the given ppservers; then pp's statistics.\n"
            "\n"
            "  --servers LIST      ppserver nodes, comma-separated host[:port] (default port %d)\n"
            "  --secret-file FILE  the cluster's shared secret (else $PP_SECRET)\n"
            "  --ncpus N           local workers (default: the CPUs available; 0 = remote only)\n"
            "  -h, --help          this text\n",
            PP_DEFAULT_PORT);
}

int main(int argc, char **argv)
{
    demo_opts d;
    demo_opts_init(&d);
    static const struct option opts[] = {
        {"servers", required_argument, NULL, 'S'},
        {"secret-file", required_argument, NULL, 'F'},
        {"ncpus", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    pp_server *s = NULL;
    pp_template *tpl = NULL;
    pp_job *job1 = NULL, **jobs = NULL;
    long *inputs = NULL;
    int count = 0, rc = 0, c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            goto done;
        }
        if (demo_opt(&d, c, optarg) != 0) {
            if (c == '?' || c == ':')
                fprintf(stderr, PROG ": try --help\n");
            rc = 2;
            goto done;
        }
    }
    count = optind < argc ? argc - optind : 8;
    inputs = calloc((size_t)count, sizeof *inputs);
    jobs = calloc((size_t)count, sizeof *jobs);
    if (!inputs || !jobs) {
        fprintf(stderr, PROG ": out of memory\n");
        rc = 1;
        goto done;
    }
    for (int i = 0; i < count; i++) {
        if (optind >= argc)
            inputs[i] = 100000 + 100L * i;
        else if (ex_parse_long(PROG, "N", argv[optind + i], 0, PPEX_PRIMES_MAX, &inputs[i]) != 0) {
            rc = 2;
            goto done;
        }
    }

    s = demo_server_new(&d, PROG);
    if (!s || demo_check_nodes(s, PROG) != 0) {
        rc = 1;
        goto done;
    }
    printf("Starting pp with %d workers\n", pp_get_ncpus(s));
    double t0 = ex_now();

    /* One job: sum_primes(100); its result waits for it. */
    job1 = pp_submitf(s, ppex_sum_primes, NULL, "l", 100L);
    if (!job1) {
        fprintf(stderr, "%s\n", pp_last_error());
        rc = 1;
        goto done;
    }
    long sum;
    if (pp_job_unpack(job1, "l", &sum) != 0) {
        fprintf(stderr, "%s\n", pp_last_error());
        rc = 1;
        goto done;
    }
    printf("Sum of primes below 100 is %ld\n", sum);

    /* The batch: the task and its options once, then one job per input. */
    tpl = pp_template_new(s, ppex_sum_primes, NULL);
    if (!tpl) {
        fprintf(stderr, "%s\n", pp_last_error());
        rc = 1;
        goto done;
    }
    for (int i = 0; i < count; i++) {
        jobs[i] = pp_template_submitf(tpl, "l", inputs[i]);
        if (!jobs[i]) {
            fprintf(stderr, "%s\n", pp_last_error());
            rc = 1;
            goto done;
        }
    }
    for (int i = 0; i < count; i++) {
        if (pp_job_unpack(jobs[i], "l", &sum) == 0) {
            printf("Sum of primes below %ld is %ld\n", inputs[i], sum);
        } else {
            fprintf(stderr, "%s\n", pp_last_error());
            rc = 1;
        }
    }
    printf("Time elapsed: %.3f s\n", ex_now() - t0);
    fflush(stdout);
    pp_print_stats(s, stdout);
done:
    for (int i = 0; jobs && i < count; i++)
        pp_job_free(jobs[i]);
    pp_job_free(job1);
    pp_template_free(tpl);
    pp_server_free(s);
    free(jobs);
    free(inputs);
    demo_opts_free(&d);
    return rc;
}
