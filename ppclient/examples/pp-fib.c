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
            "usage: pp-fib [--servers host:port,...] [--secret-file FILE] [--ncpus N] N...\n"
            "\n"
            "Computes the Fibonacci term fib(N) for every N (0..%d), one pp job each, on\n"
            "the local cores and on the given ppservers, then prints pp's statistics.\n"
            "\n"
            "  --servers LIST      ppserver nodes, comma-separated host[:port] (default port %d)\n"
            "  --secret-file FILE  the cluster's shared secret (else $PP_SECRET)\n"
            "  --ncpus N           local workers (default: the CPUs available; 0 = remote only)\n"
            "  -h, --help          this text\n",
            PP_FIB_MAX, PP_DEFAULT_PORT);
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
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        if (demo_opt(&d, c, optarg) != 0) {
            if (c == '?' || c == ':')
                fprintf(stderr, "pp-fib: try --help\n");
            return 2;
        }
    }
    int count = argc - optind;
    if (count <= 0) {
        fprintf(stderr, "pp-fib: give at least one N (try --help)\n");
        return 2;
    }
    long *ns = calloc((size_t)count, sizeof *ns);
    pp_job **jobs = calloc((size_t)count, sizeof *jobs);
    if (!ns || !jobs) {
        fprintf(stderr, "pp-fib: out of memory\n");
        return 1;
    }
    for (int i = 0; i < count; i++) {
        const char *s = argv[optind + i];
        char *end;
        errno = 0;
        long n = strtol(s, &end, 10);
        if (errno || end == s || *end) {
            fprintf(stderr, "pp-fib: \"%s\" is not a number\n", s);
            return 2;
        }
        if (n < 0 || n > PP_FIB_MAX) {
            fprintf(stderr, "pp-fib: %ld is out of range: fib(N) fits in 64 bits for "
                            "0 <= N <= %d\n", n, PP_FIB_MAX);
            return 2;
        }
        ns[i] = n;
    }

    pp_server *s = demo_server_new(&d, "pp-fib");
    if (!s)
        return 1;
    if (demo_check_nodes(s, "pp-fib") != 0) {
        pp_server_free(s);
        return 1;
    }
    for (int i = 0; i < count; i++) {
        jobs[i] = pp_submitf(s, pp_fib, NULL, "l", ns[i]);
        if (!jobs[i]) {
            fprintf(stderr, "pp-fib: %s\n", pp_last_error());
            pp_server_free(s);
            return 1;
        }
    }
    int rc = 0;
    for (int i = 0; i < count; i++) {
        long v;
        if (pp_job_unpack(jobs[i], "l", &v) == 0) {
            printf("fib(%ld) = %ld  [%s]\n", ns[i], v, pp_job_node(jobs[i]));
        } else {
            printf("fib(%ld) failed: %s\n", ns[i], pp_last_error());
            rc = 1;
        }
        pp_job_free(jobs[i]);
    }
    fflush(stdout);
    pp_print_stats(s, stdout);
    pp_server_free(s);
    free(jobs);
    free(ns);
    demo_opts_free(&d);
    return rc;
}
