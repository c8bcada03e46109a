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
            "\n");
    demo_usage_options(fp);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {DEMO_OPTIONS, DEMO_OPTIONS_END};
    demo_opts d = DEMO_OPTS_INIT(PROG, usage);
    pp_server *s = NULL;
    pp_template *tpl = NULL;
    pp_job *job1 = NULL, **jobs = NULL;
    long *inputs = NULL;
    int count = 0, failed = 0;
    int rc = 1; /* the exit status: 1 until the end */
    if (demo_getopt(&d, argc, argv, opts, NULL, NULL, &rc) != 0)
        goto done;
    count = optind < argc ? argc - optind : 8;
    inputs = demo_calloc(&d, (size_t)count, sizeof *inputs);
    jobs = demo_calloc(&d, (size_t)count, sizeof *jobs);
    for (int i = 0; i < count; i++) {
        if (optind >= argc)
            inputs[i] = 100000 + 100L * i;
        else if (demo_parse_long(PROG, "N", argv[optind + i], 0, PPEX_PRIMES_MAX,
                                 &inputs[i]) != 0) {
            rc = 2;
            goto done;
        }
    }

    s = pp_server_new(demo_config(&d));
    if (ex_server_ready(&d, s) != 0)
        goto done;
    double t0 = demo_now();

    /* One job: sum_primes(100); its result waits for it. */
    job1 = pp_submitf(s, ppex_sum_primes, NULL, "l", 100L);
    if (!job1) {
        fprintf(stderr, "%s\n", pp_last_error());
        goto done;
    }
    long sum;
    if (pp_job_unpack(job1, "l", &sum) != 0) {
        fprintf(stderr, "%s\n", pp_last_error());
        goto done;
    }
    printf("Sum of primes below 100 is %ld\n", sum);

    /* The batch: the task and its options once, then one job per input. */
    tpl = pp_template_new(s, ppex_sum_primes, NULL);
    if (!tpl) {
        fprintf(stderr, "%s\n", pp_last_error());
        goto done;
    }
    for (int i = 0; i < count; i++) {
        jobs[i] = pp_template_submitf(tpl, "l", inputs[i]);
        if (!jobs[i]) {
            fprintf(stderr, "%s\n", pp_last_error());
            goto done;
        }
    }
    for (int i = 0; i < count; i++) {
        if (pp_job_unpack(jobs[i], "l", &sum) == 0) {
            printf("Sum of primes below %ld is %ld\n", inputs[i], sum);
        } else {
            fprintf(stderr, "%s\n", pp_last_error());
            failed = 1;
        }
    }
    printf("Time elapsed: %.3f s\n", demo_now() - t0);
    fflush(stdout);
    pp_print_stats(s, stdout);
    rc = failed;
done:
    demo_jobs_free(jobs, count);
    pp_job_free(job1);
    pp_template_free(tpl);
    pp_server_free(s);
    free(inputs);
    demo_opts_free(&d);
    return rc;
}
