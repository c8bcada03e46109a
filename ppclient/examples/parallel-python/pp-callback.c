/* SPDX-License-Identifier: MIT */
/* pp-callback -- Parallel Python's callback example with pp: the partial sum
 * 1 - 1/2 + 1/3 - 1/4 + ... (in the limit ln 2), cut into parts, one job
 * each; a callback adds each part's result to a total under a lock, and
 * pp_wait() waits for every job and callback. */
#include <getopt.h>
#include <math.h>
#include <pp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "demo_common.h"
#include "ex_util.h"
#include "series_tasks.h"

#define PROG "pp-callback"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: " PROG " [--servers host:port,...] [--secret-file FILE] [--ncpus N]\n"
            "                   [--end N] [--parts P]\n"
            "\n"
            "Parallel Python's callback example: the partial sum 1 - 1/2 + 1/3 - ... of the\n"
            "terms below N (default 20000000), in P jobs (default 128) on the local cores\n"
            "and the given ppservers.  A callback adds up the parts as they finish; then\n"
            "the sum, how far it is from ln(2), ln(2) itself and pp's statistics.\n"
            "\n"
            "  --end N             the first term not summed (2..%ld)\n"
            "  --parts P           jobs (1..%ld)\n",
            EX_END_MAX, EX_PARTS_MAX);
    demo_usage_options(fp);
}

/* The callbacks' total (the original's Sum class). */
typedef struct series_sum {
    pthread_mutex_t lock;
    double value;
    int failed;          /* jobs that did not succeed */
    char error[512];     /* the first one's message */
} series_sum;

/* The callback: runs once per job, on libpp's callback thread. */
static void add(pp_job *j, void *arg)
{
    series_sum *sum = arg;
    double v;
    int ok = pp_job_unpack(j, "d", &v) == 0;
    /* Callbacks of one server run one at a time; the lock is for the main
     * thread, which reads the total (+= is not atomic). */
    pthread_mutex_lock(&sum->lock);
    if (ok)
        sum->value += v;
    else if (sum->failed++ == 0)
        snprintf(sum->error, sizeof sum->error, "%s", pp_last_error());
    pthread_mutex_unlock(&sum->lock);
    pp_job_free(j); /* fire and forget: the submitter kept no handle */
}

int main(int argc, char **argv)
{
    ex_range r = {.start = 1, .end = 20000000, .parts = 128}; /* --end and --parts */
    static const struct option opts[] = {DEMO_OPTIONS, EX_RANGE_OPTIONS, DEMO_OPTIONS_END};
    demo_opts d = DEMO_OPTS_INIT(PROG, usage);
    series_sum sum = {.lock = PTHREAD_MUTEX_INITIALIZER};
    pp_server *s = NULL;
    int rc = 1; /* the exit status: 1 until the end */
    if (demo_getopt(&d, argc, argv, opts, ex_range_option, &r, &rc) != 0 ||
        demo_no_operands(&d, argc, argv, &rc) != 0)
        goto done;

    s = pp_server_new(demo_config(&d));
    if (ex_server_ready(&d, s) != 0)
        goto done;
    double t0 = demo_now();
    pp_submit_opts o = {.callback = add, .callback_arg = &sum};
    for (long i = 0; i < r.parts; i++) {
        long starti, endi;
        ex_range_part(&r, i, &starti, &endi);
        if (!pp_submitf(s, ppex_part_sum, &o, "ll", starti, endi)) {
            fprintf(stderr, "%s\n", pp_last_error());
            goto done;
        }
    }
    pp_wait(s, NULL); /* every job done, every callback returned */

    pthread_mutex_lock(&sum.lock);
    double value = sum.value;
    int failed = sum.failed;
    pthread_mutex_unlock(&sum.lock);
    if (failed) {
        fprintf(stderr, "%s\n", sum.error);
        fprintf(stderr, PROG ": %d of %ld jobs failed\n", failed, r.parts);
        goto done;
    }
    char a[32], b[32];
    printf("Partial sum is %s | diff = %s\n", ex_repr(value, a), ex_repr(log(2) - value, b));
    printf("Exact value: ln(2) = %s\n", ex_repr(log(2), a));
    printf("Time elapsed: %.3f s\n", demo_now() - t0);
    fflush(stdout);
    pp_print_stats(s, stdout);
    rc = 0;
done:
    pp_server_free(s); /* jobs still pending (after an error) are cancelled */
    pthread_mutex_destroy(&sum.lock);
    demo_opts_free(&d);
    return rc;
}
