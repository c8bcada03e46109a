/* SPDX-License-Identifier: MIT */
/* pp-fib -- the Fibonacci term for many inputs, one job each, on the local
 * cores and any ppservers: the first demo of "Parallel Programming with
 * Python", chapter 6, with pp. */
#include <getopt.h>
#include <pp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo_common.h"
#include "fib_tasks.h"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: pp-fib [--servers host:port,...] [--secret-file FILE] [--ncpus N]\n"
            "              [--big] N...\n"
            "\n"
            "Computes the Fibonacci term fib(N) for every N (0..%d), one pp job each, on\n"
            "the local cores and on the given ppservers, then prints pp's statistics.\n"
            "\n"
            "  --big               any precision (N up to %d): every digit of fib(N)\n",
            PP_FIB_MAX, PP_FIB_BIG_MAX);
    demo_usage_options(fp);
}

/* --big: *big = 1. */
static int big_option(const char *prog, int letter, const char *arg, void *big)
{
    (void)prog, (void)letter, (void)arg;
    *(int *)big = 1;
    return 0;
}

/* N, in 0..PP_FIB_MAX, or 0..PP_FIB_BIG_MAX with --big: 0, or -1 after a
 * message. */
static int parse_n(const char *arg, int big, long *n)
{
    if (demo_strtol(arg, n) != 0) {
        fprintf(stderr, "pp-fib: \"%s\" is not a number\n", arg);
        return -1;
    }
    if (big && (*n < 0 || *n > PP_FIB_BIG_MAX)) {
        fprintf(stderr, "pp-fib: %ld is out of range: --big takes 0 <= N <= %d\n", *n,
                PP_FIB_BIG_MAX);
        return -1;
    }
    if (!big && (*n < 0 || *n > PP_FIB_MAX)) {
        fprintf(stderr, "pp-fib: %ld is out of range: fib(N) fits in 64 bits for "
                        "0 <= N <= %d (--big for any precision)\n", *n, PP_FIB_MAX);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        DEMO_OPTIONS,
        {"big", no_argument, NULL, 'B'},
        DEMO_OPTIONS_END,
    };
    demo_opts d = DEMO_OPTS_INIT("pp-fib", usage);
    pp_server *s = NULL;
    long *ns = NULL;
    pp_job **jobs = NULL;
    int count = 0, big = 0, failed = 0;
    int rc = 1; /* the exit status: 1 until the end */
    if (demo_getopt(&d, argc, argv, opts, big_option, &big, &rc) != 0)
        goto done;
    count = argc - optind;
    if (count <= 0) {
        fprintf(stderr, "pp-fib: give at least one N (try --help)\n");
        rc = 2;
        goto done;
    }
    ns = demo_calloc(&d, (size_t)count, sizeof *ns);
    jobs = demo_calloc(&d, (size_t)count, sizeof *jobs);
    for (int i = 0; i < count; i++) {
        if (parse_n(argv[optind + i], big, &ns[i]) != 0) {
            rc = 2;
            goto done;
        }
    }

    s = pp_server_new(demo_config(&d));
    if (demo_server_ready(&d, s) != 0)
        goto done;
    for (int i = 0; i < count; i++) {
        jobs[i] = pp_submitf(s, big ? pp_fib_big : pp_fib, NULL, "l", ns[i]);
        if (!jobs[i]) {
            fprintf(stderr, "pp-fib: %s\n", pp_last_error());
            goto done;
        }
    }
    for (int i = 0; i < count; i++) {
        long v;
        size_t len;
        const char *digits = big ? pp_job_result(jobs[i], &len) : NULL;
        if (big && digits) {
            printf("fib(%ld) = %s  [%s]\n", ns[i], digits, pp_job_node(jobs[i]));
        } else if (!big && pp_job_unpack(jobs[i], "l", &v) == 0) {
            printf("fib(%ld) = %ld  [%s]\n", ns[i], v, pp_job_node(jobs[i]));
        } else {
            printf("fib(%ld) failed: %s\n", ns[i], big ? pp_job_error(jobs[i]) : pp_last_error());
            failed = 1;
        }
    }
    fflush(stdout);
    pp_print_stats(s, stdout);
    rc = failed;
done:
    demo_jobs_free(jobs, count);
    pp_server_free(s);
    free(ns);
    demo_opts_free(&d);
    return rc;
}
