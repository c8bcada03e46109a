/* SPDX-License-Identifier: MIT */
/* pp-quicksort -- Parallel Python's quicksort example with pp: a large array
 * of random numbers is split here as quicksort splits it (the first element
 * the pivot; the elements below it, the pivot, the others) down to a depth
 * of 5, and each of the up to 2^5 = 32 parts becomes a job that sorts it.
 * The sorted parts and the pivots, in order, are the sorted array; it is
 * checked to be in order and a permutation of the input. */
#include <getopt.h>
#include <pp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "demo_common.h"
#include "ex_util.h"
#include "sort_tasks.h"

#define PROG "pp-quicksort"
#define SIZE_MAX_ARG 20000000L
#define VALUE_MAX_ARG 10000000L

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: " PROG " [--servers host:port,...] [--secret-file FILE] [--ncpus N]\n"
            "                    [--size N] [--max V] [--depth D] [--seed S]\n"
            "\n"
            "Parallel Python's quicksort example: sorts N random numbers in 0..V (default\n"
            "1000000 numbers in 0..100000), split by quicksort D levels deep (default 5)\n"
            "here and the up to 2^D parts sorted by pp jobs on the local cores and the\n"
            "given ppservers.  Prints the first 30 numbers, whether the result is sorted\n"
            "and a permutation of the input, a checksum of it, pp's statistics.\n"
            "\n"
            "  --size N            numbers to sort (1..%ld)\n"
            "  --max V             the largest value (0..%ld)\n"
            "  --depth D           levels of splitting (0..16; 0 = one job)\n"
            "  --seed S            seed of the generator (splitmix64; value = next %% (V+1));\n"
            "                      default from the clock, printed\n",
            SIZE_MAX_ARG, VALUE_MAX_ARG);
    demo_usage_options(fp);
}

/* --size, --max, --depth and --seed. */
typedef struct settings {
    long size, max, depth, seed;
} settings;

static int settings_option(const char *prog, int letter, const char *arg, void *ctx)
{
    settings *set = ctx;
    switch (letter) {
    case 'N':
        return demo_parse_long(prog, "--size", arg, 1, SIZE_MAX_ARG, &set->size);
    case 'V':
        return demo_parse_long(prog, "--max", arg, 0, VALUE_MAX_ARG, &set->max);
    case 'D':
        return demo_parse_long(prog, "--depth", arg, 0, 16, &set->depth);
    default: /* 'R' */
        return demo_parse_long(prog, "--seed", arg, 0, INT64_MAX, &set->seed);
    }
}

/* splitmix64: small, good, and easy to redo in any language. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The sorted array, in order: single elements kept here, and jobs whose
 * results are sorted runs (the original's mix of numbers and job handles). */
typedef struct piece {
    pp_job *job;         /* NULL: `value` itself */
    long value;
} piece;

typedef struct plan {
    piece *p;
    size_t n, cap;
} plan;

static int plan_push(plan *pl, pp_job *job, long value)
{
    if (pl->n == pl->cap) {
        size_t cap = pl->cap ? pl->cap * 2 : 64;
        piece *p = realloc(pl->p, cap * sizeof *p);
        if (!p) {
            fprintf(stderr, PROG ": out of memory\n");
            return -1;
        }
        pl->p = p;
        pl->cap = cap;
    }
    pl->p[pl->n++] = (piece){job, value};
    return 0;
}

/* quicksort(a, depth) of the original, on the client: a part of at most
 * one element is its own result, at depth 0 a part becomes a job, else it is
 * split around its first element.  Returns 0, or -1 after printing why. */
static int split(pp_server *s, const long *a, size_t n, int depth, plan *pl)
{
    if (n == 0)
        return 0;
    if (n == 1)
        return plan_push(pl, NULL, a[0]);
    if (depth == 0) {
        pp_job *j = pp_submitf(s, ppex_quicksort, NULL, "L", a, n);
        if (!j) {
            fprintf(stderr, "%s\n", pp_last_error());
            return -1;
        }
        if (plan_push(pl, j, 0) != 0) {
            pp_job_free(j);
            return -1;
        }
        return 0;
    }
    long pivot = a[0];
    size_t nlo = 0;
    for (size_t i = 1; i < n; i++)
        nlo += a[i] < pivot;
    size_t nhi = n - 1 - nlo;
    long *lo = malloc((nlo ? nlo : 1) * sizeof *lo), *hi = malloc((nhi ? nhi : 1) * sizeof *hi);
    if (!lo || !hi) {
        free(lo);
        free(hi);
        fprintf(stderr, PROG ": out of memory\n");
        return -1;
    }
    for (size_t i = 1, l = 0, h = 0; i < n; i++) {
        if (a[i] < pivot)
            lo[l++] = a[i];
        else
            hi[h++] = a[i];
    }
    int rc = split(s, lo, nlo, depth - 1, pl);
    free(lo); /* pp_submit() copied what it needs */
    if (rc == 0)
        rc = plan_push(pl, NULL, pivot);
    if (rc == 0)
        rc = split(s, hi, nhi, depth - 1, pl);
    free(hi);
    return rc;
}

int main(int argc, char **argv)
{
    settings set = {.size = 1000000, .max = 100000, .depth = 5, .seed = -1}; /* the defaults */
    static const struct option opts[] = {
        DEMO_OPTIONS,
        {"size", required_argument, NULL, 'N'},
        {"max", required_argument, NULL, 'V'},
        {"depth", required_argument, NULL, 'D'},
        {"seed", required_argument, NULL, 'R'},
        DEMO_OPTIONS_END,
    };
    demo_opts d = DEMO_OPTS_INIT(PROG, usage);
    pp_server *s = NULL;
    plan pl = {0};
    long *input = NULL, *output = NULL, *part = NULL;
    size_t *counts = NULL;
    int rc = 1; /* the exit status: 1 until the end */
    if (demo_getopt(&d, argc, argv, opts, settings_option, &set, &rc) != 0 ||
        demo_no_operands(&d, argc, argv, &rc) != 0)
        goto done;
    if (set.seed < 0)
        set.seed = (long)(time(NULL) ^ ((long)getpid() << 16)) & INT32_MAX;

    size_t n = (size_t)set.size;
    input = demo_calloc(&d, n, sizeof *input);
    output = demo_calloc(&d, n, sizeof *output);
    counts = demo_calloc(&d, (size_t)set.max + 1, sizeof *counts);
    uint64_t state = (uint64_t)set.seed;
    for (size_t i = 0; i < n; i++)
        input[i] = (long)(next_random(&state) % ((uint64_t)set.max + 1));

    s = pp_server_new(demo_config(&d));
    if (ex_server_ready(&d, s) != 0)
        goto done;
    printf("Sorting %zu random numbers in 0..%ld (seed %ld), split %ld levels deep\n", n,
           set.max, set.seed, set.depth);
    double t0 = demo_now();
    if (split(s, input, n, (int)set.depth, &pl) != 0)
        goto done;
    /* The pieces in order: pivots as they are, the jobs' sorted runs. */
    size_t at = 0;
    for (size_t k = 0; k < pl.n; k++) {
        if (!pl.p[k].job) {
            output[at++] = pl.p[k].value;
            continue;
        }
        size_t m;
        if (pp_job_unpack(pl.p[k].job, "L", &part, &m) != 0) {
            fprintf(stderr, "%s\n", pp_last_error());
            goto done;
        }
        if (m > n - at) {
            fprintf(stderr, PROG ": a job returned more numbers than it was given\n");
            goto done;
        }
        if (m)
            memcpy(output + at, part, m * sizeof *part);
        at += m;
        free(part);
        part = NULL;
    }
    double took = demo_now() - t0;

    printf("first 30 numbers in increasing order: [");
    for (size_t i = 0; i < at && i < 30; i++)
        printf("%s%ld", i ? ", " : "", output[i]);
    printf("]\n");
    /* In order, and the same numbers as many times each as in the input. */
    int sorted = 1, permutation = at == n;
    for (size_t i = 1; i < at; i++)
        sorted &= output[i - 1] <= output[i];
    for (size_t i = 0; i < n; i++)
        counts[input[i]]++;
    for (size_t i = 0; i < at && permutation; i++) {
        if (output[i] < 0 || output[i] > set.max || counts[output[i]] == 0)
            permutation = 0;
        else
            counts[output[i]]--;
    }
    unsigned long long checksum = 0;
    for (size_t i = 0; i < at; i++)
        checksum += (unsigned long long)(i + 1) * (unsigned long long)output[i];
    printf("Sorted: %s; a permutation of the input: %s\n", sorted ? "yes" : "NO",
           permutation ? "yes" : "NO");
    printf("Checksum, the sum of (i + 1) * a[i] modulo 2^64: %llu\n", checksum);
    printf("Time elapsed: %.3f s\n", took);
    fflush(stdout);
    pp_print_stats(s, stdout);
    rc = sorted && permutation ? 0 : 1;
done:
    for (size_t k = 0; k < pl.n; k++)
        pp_job_free(pl.p[k].job);
    free(pl.p);
    pp_server_free(s);
    free(part);
    free(counts);
    free(output);
    free(input);
    demo_opts_free(&d);
    return rc;
}
