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
            "  --parts P           jobs (1..%ld)\n",
            DEFAULT_NUMBER, EX_END_MAX, EX_PARTS_MAX);
    demo_usage_options(fp);
}

static int is_md5_hex(const char *s)
{
    return strlen(s) == 32 && strspn(s, "0123456789abcdefABCDEF") == 32;
}

int main(int argc, char **argv)
{
    ex_range r = {.start = 1, .end = 2000000, .parts = 128}; /* --end and --parts */
    char hash[33]; /* the digest looked for */
    static const struct option opts[] = {DEMO_OPTIONS, EX_RANGE_OPTIONS, DEMO_OPTIONS_END};
    demo_opts d = DEMO_OPTS_INIT(PROG, usage);
    pp_server *s = NULL;
    pp_job **jobs = NULL;
    int rc = 1; /* the exit status: 1 until the end */
    if (demo_getopt(&d, argc, argv, opts, ex_range_option, &r, &rc) != 0)
        goto done;
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
        goto done;
    }
    jobs = demo_calloc(&d, (size_t)r.parts, sizeof *jobs);

    s = pp_server_new(demo_config(&d));
    if (ex_server_ready(&d, s) != 0)
        goto done;
    printf("hash = %s\n", hash);
    double t0 = demo_now();
    for (long i = 0; i < r.parts; i++) {
        long starti, endi;
        ex_range_part(&r, i, &starti, &endi);
        jobs[i] = pp_submitf(s, ppex_md5test, NULL, "sll", hash, starti, endi);
        if (!jobs[i]) {
            fprintf(stderr, "%s\n", pp_last_error());
            goto done;
        }
    }
    /* The results in order, up to the first part that has the number. */
    long found = -1;
    for (long i = 0; i < r.parts && found < 0; i++) {
        size_t len;
        const void *result = pp_job_result(jobs[i], &len);
        char what[4];
        /* "l": the number; "n": nil, the original's None */
        if (!result || pp_unpack_format(result, len, what, sizeof what) < 0 ||
            (strcmp(what, "n") != 0 && pp_unpack(result, len, "l", &found) != 0)) {
            fprintf(stderr, "%s\n", pp_last_error());
            goto done;
        }
    }
    if (found >= 0)
        printf("Reverse md5 for %s is %ld\n", hash, found);
    else
        printf("Reverse md5 for %s has not been found\n", hash);
    printf("Time elapsed: %.3f s\n", demo_now() - t0);
    fflush(stdout);
    pp_print_stats(s, stdout);
    pp_wait(s, NULL); /* the parts after the one that had it (not necessary) */
    rc = found >= 0 ? 0 : 1;
done:
    demo_jobs_free(jobs, r.parts);
    pp_server_free(s);
    demo_opts_free(&d);
    return rc;
}
