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
            "  --parts P           jobs (1..100000)\n"
            "  --servers LIST      ppserver nodes, comma-separated host[:port] (default port %d)\n"
            "  --secret-file FILE  the cluster's shared secret (else $PP_SECRET)\n"
            "  --ncpus N           local workers (default: the CPUs available; 0 = remote only)\n"
            "  -h, --help          this text\n",
            1L << 40, PP_DEFAULT_PORT);
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
    series_sum sum = {.lock = PTHREAD_MUTEX_INITIALIZER};
    pp_server *s = NULL;
    long start = 1, end = 20000000, parts = 128;
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

    s = demo_server_new(&d, PROG);
    if (!s || demo_check_nodes(s, PROG) != 0) {
        rc = 1;
        goto done;
    }
    printf("Starting pp with %d workers\n", pp_get_ncpus(s));
    double t0 = ex_now();
    long step = (end - start) / parts + 1;
    pp_submit_opts o = {.callback = add, .callback_arg = &sum};
    for (long i = 0; i < parts; i++) {
        long starti = start + i * step;
        long endi = start + (i + 1) * step < end ? start + (i + 1) * step : end;
        if (!pp_submitf(s, ppex_part_sum, &o, "ll", starti, endi)) {
            fprintf(stderr, "%s\n", pp_last_error());
            rc = 1;
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
        fprintf(stderr, PROG ": %d of %ld jobs failed\n", failed, parts);
        rc = 1;
        goto done;
    }
    char a[32], b[32];
    printf("Partial sum is %s | diff = %s\n", ex_repr(value, a), ex_repr(log(2) - value, b));
    printf("Exact value: ln(2) = %s\n", ex_repr(log(2), a));
    printf("Time elapsed: %.3f s\n", ex_now() - t0);
    fflush(stdout);
    pp_print_stats(s, stdout);
done:
    pp_server_free(s); /* jobs still pending (after an error) are cancelled */
    pthread_mutex_destroy(&sum.lock);
    demo_opts_free(&d);
    return rc;
}
