/* SPDX-License-Identifier: MIT */
/* pp-reverse-md5 -- Parallel Python's reverse_md5 example with pp: finds the
 * integer whose decimal text has a given MD5 digest by trying every number
 * of a range, cut into many parts (jobs differ in length: small parts
 * balance the load). */
#include <getopt.h>
#include <pp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo_common.h"
#include "ex_util.h"
#include "md5_tasks.h"

#define PROG "pp-reverse-md5"

/* The number whose digest is looked for by default, as in the original. */
#define DEFAULT_NUMBER "1829182"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: " PROG " [--servers host:port,...] [--secret-file FILE] [--ncpus N]\n"
            "                      [--end N] [--parts P] [HASH]\n"
            "\n"
            "Parallel Python's reverse_md5 example: finds the integer in 1..N-1 (default\n"
            "N 2000000) whose decimal text has the MD5 digest HASH (32 hex digits; default\n"
            "the digest of %s), in P jobs (default 128) on the local cores and the\n"
            "given ppservers; then pp's statistics.  Exit status 1 if none has it.\n"
            "\n"
            "  --end N             the first number not tried (2..%ld)\n"
            "  --parts P           jobs (1..100000)\n"
            "  --servers LIST      ppserver nodes, comma-separated host[:port] (default port %d)\n"
            "  --secret-file FILE  the cluster's shared secret (else $PP_SECRET)\n"
            "  --ncpus N           local workers (default: the CPUs available; 0 = remote only)\n"
            "  -h, --help          this text\n",
            DEFAULT_NUMBER, 1L << 40, PP_DEFAULT_PORT);
}

static int is_md5_hex(const char *s)
{
    return strlen(s) == 32 && strspn(s, "0123456789abcdefABCDEF") == 32;
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
    long start = 1, end = 2000000, parts = 128;
    char hash[33];
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
    if (argc - optind > 1) {
        fprintf(stderr, PROG ": give one HASH at most (try --help)\n");
        rc = 2;
        goto done;
    }
    if (optind < argc) {
        if (!is_md5_hex(argv[optind])) {
            fprintf(stderr, PROG ": \"%s\" is not an MD5 digest (32 hex digits)\n",
                    argv[optind]);
            rc = 2;
            goto done;
        }
        snprintf(hash, sizeof hash, "%s", argv[optind]);
    } else if (ppex_md5_hex(DEFAULT_NUMBER, strlen(DEFAULT_NUMBER), hash) != 0) {
        fprintf(stderr, PROG ": libcrypto cannot compute MD5\n");
        rc = 1;
        goto done;
    }
    jobs = calloc((size_t)parts, sizeof *jobs);
    if (!jobs) {
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
    printf("hash = %s\n", hash);
    double t0 = ex_now();
    long step = (end - start) / parts + 1;
    for (long i = 0; i < parts; i++) {
        long starti = start + i * step;
        long endi = start + (i + 1) * step < end ? start + (i + 1) * step : end;
        jobs[i] = pp_submitf(s, ppex_md5test, NULL, "sll", hash, starti, endi);
        if (!jobs[i]) {
            fprintf(stderr, "%s\n", pp_last_error());
            rc = 1;
            goto done;
        }
    }
    /* The results in order, up to the first part that has the number. */
    long found = -1;
    for (long i = 0; i < parts && found < 0; i++) {
        size_t len;
        const void *r = pp_job_result(jobs[i], &len);
        char what[4];
        /* "l": the number; "n": nil, the original's None */
        if (!r || pp_unpack_format(r, len, what, sizeof what) < 0 ||
            (strcmp(what, "n") != 0 && pp_unpack(r, len, "l", &found) != 0)) {
            fprintf(stderr, "%s\n", pp_last_error());
            rc = 1;
            goto done;
        }
    }
    if (found >= 0) {
        printf("Reverse md5 for %s is %ld\n", hash, found);
    } else {
        printf("Reverse md5 for %s has not been found\n", hash);
        rc = 1;
    }
    printf("Time elapsed: %.3f s\n", ex_now() - t0);
    fflush(stdout);
    pp_print_stats(s, stdout);
    pp_wait(s, NULL); /* the parts after the one that had it (not necessary) */
done:
    for (long i = 0; jobs && i < parts; i++)
        pp_job_free(jobs[i]);
    pp_server_free(s);
    free(jobs);
    demo_opts_free(&d);
    return rc;
}
