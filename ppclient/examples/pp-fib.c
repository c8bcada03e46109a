/* SPDX-License-Identifier: MIT */
/* pp-fib -- the Fibonacci term for many inputs, one job each, on the local
 * cores and any ppservers: the first demo of "Parallel Programming with
 * Python", chapter 6, with pp. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
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
            "  --big               any precision (N up to %d): every digit of fib(N)\n"
            "  --servers LIST      ppserver nodes, comma-separated host[:port] (default port %d)\n"
            "  --secret-file FILE  the cluster's shared secret (else $PP_SECRET)\n"
            "  --ncpus N           local workers (default: the CPUs available; 0 = remote only)\n"
            "  -h, --help          this text\n",
            PP_FIB_MAX, PP_FIB_BIG_MAX, PP_DEFAULT_PORT);
}

int main(int argc, char **argv)
{
    demo_opts d;
    demo_opts_init(&d);
    static const struct option opts[] = {
        {"servers", required_argument, NULL, 'S'},
        {"secret-file", required_argument, NULL, 'F'},
        {"ncpus", required_argument, NULL, 'n'},
        {"big", no_argument, NULL, 'B'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    pp_server *s = NULL;
    long *ns = NULL;
    pp_job **jobs = NULL;
    int count = 0, rc = 0, c, big = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            goto done;
        }
        if (c == 'B') {
            big = 1;
            continue;
        }
        if (demo_opt(&d, c, optarg) != 0) {
            if (c == '?' || c == ':')
                fprintf(stderr, "pp-fib: try --help\n");
            rc = 2;
            goto done;
        }
    }
    count = argc - optind;
    if (count <= 0) {
        fprintf(stderr, "pp-fib: give at least one N (try --help)\n");
        rc = 2;
        goto done;
    }
    ns = calloc((size_t)count, sizeof *ns);
    jobs = calloc((size_t)count, sizeof *jobs);
    if (!ns || !jobs) {
        fprintf(stderr, "pp-fib: out of memory\n");
        rc = 1;
        goto done;
    }
    for (int i = 0; i < count; i++) {
        const char *arg = argv[optind + i];
        char *end;
        errno = 0;
        long n = strtol(arg, &end, 10);
        if (errno || end == arg || *end) {
            fprintf(stderr, "pp-fib: \"%s\" is not a number\n", arg);
            rc = 2;
            goto done;
        }
        if (big && (n < 0 || n > PP_FIB_BIG_MAX)) {
            fprintf(stderr, "pp-fib: %ld is out of range: --big takes 0 <= N <= %d\n", n,
                    PP_FIB_BIG_MAX);
            rc = 2;
            goto done;
        }
        if (!big && (n < 0 || n > PP_FIB_MAX)) {
            fprintf(stderr, "pp-fib: %ld is out of range: fib(N) fits in 64 bits for "
                            "0 <= N <= %d (--big for any precision)\n", n, PP_FIB_MAX);
            rc = 2;
            goto done;
        }
        ns[i] = n;
    }

    s = demo_server_new(&d, "pp-fib");
    if (!s || demo_check_nodes(s, "pp-fib") != 0) {
        rc = 1;
        goto done;
    }
    for (int i = 0; i < count; i++) {
        jobs[i] = pp_submitf(s, big ? pp_fib_big : pp_fib, NULL, "l", ns[i]);
        if (!jobs[i]) {
            fprintf(stderr, "pp-fib: %s\n", pp_last_error());
            rc = 1;
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
            rc = 1;
        }
    }
    fflush(stdout);
    pp_print_stats(s, stdout);
done:
    for (int i = 0; jobs && i < count; i++)
        pp_job_free(jobs[i]);
    pp_server_free(s);
    free(jobs);
    free(ns);
    demo_opts_free(&d);
    return rc;
}
