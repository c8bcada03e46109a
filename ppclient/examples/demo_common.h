/* SPDX-License-Identifier: MIT */
/* demo_common.h -- the plumbing the example programs share (the ppdemo
 * library): the options every one takes (--servers, --secret-file, --ncpus,
 * --help) and reading them, the pp_config they make, waiting for the nodes,
 * a clock, number arguments, allocating, freeing an array of jobs.  The pp
 * calls themselves stay in the programs. */
#ifndef DEMO_COMMON_H
#define DEMO_COMMON_H

#include <getopt.h>
#include <pp.h>
#include <stdio.h>

typedef struct demo_opts {
    const char *prog;        /* the program's name, for messages */
    void (*usage)(FILE *fp); /* prints --help's text */
    int ncpus;               /* --ncpus, or PP_AUTODETECT */
    char **servers;          /* --servers: NULL-terminated, or NULL */
    char *secret;            /* read from --secret-file, or NULL */
    pp_config cfg;           /* what demo_config() returns */
} demo_opts;

/* demo_opts d = DEMO_OPTS_INIT(PROG, usage): no option read yet. */
#define DEMO_OPTS_INIT(prog_, usage_) {.prog = (prog_), .usage = (usage_), .ncpus = PP_AUTODETECT}

void demo_opts_free(demo_opts *d);

/* The getopt_long() entries of the shared options, first in a program's
 * table, and the table's end: --help and the terminator.  A program's own
 * options go between them, with letters other than 'S', 'F', 'n' and 'h'. */
#define DEMO_OPTIONS                               \
    {"servers", required_argument, NULL, 'S'},     \
    {"secret-file", required_argument, NULL, 'F'}, \
    {"ncpus", required_argument, NULL, 'n'}
#define DEMO_OPTIONS_END                 \
    {"help", no_argument, NULL, 'h'},    \
    {NULL, 0, NULL, 0}

/* Handles a program's own option `letter`, its value in arg (NULL for a
 * flag), ctx what the program passed demo_getopt(): returns 0, or -1 after
 * printing a one-line message that begins with prog. */
typedef int demo_option_fn(const char *prog, int letter, const char *arg, void *ctx);

/* Reads argv's options with getopt_long() and `opts` (DEMO_OPTIONS, the
 * program's own, DEMO_OPTIONS_END): the shared ones into d, the others
 * through own(d->prog, letter, optarg, ctx) (own may be NULL), --help prints
 * d->usage on standard output.  Returns 0 to go on, optind at the first
 * operand; else -1 with *status the exit status: 0 after --help, 2 after a
 * one-line message ("PROG: try --help" after an unknown option). */
int demo_getopt(demo_opts *d, int argc, char **argv, const struct option *opts,
                demo_option_fn *own, void *ctx, int *status);

/* For a program that takes no operand: 0 when there is none after the
 * options; else -1 with *status 2 after saying so. */
int demo_no_operands(const demo_opts *d, int argc, char **argv, int *status);

/* The help text of the shared options and --help, as most programs have it. */
void demo_usage_options(FILE *fp);

/* The pp_config for the options, for pp_server_new(); libpp logs only errors
 * unless PP_LOG says otherwise.  Valid as long as d is. */
const pp_config *demo_config(demo_opts *d);

/* s, what pp_server_new() returned: 0 when there is a server and every
 * remote node is up (waiting at most 10 s; never hangs); else -1 after
 * printing why on one line: "PROG: " and pp_last_error() when s is NULL, or
 * the node that cannot be used (unreachable, wrong secret). */
int demo_server_ready(const demo_opts *d, pp_server *s);

/* Monotonic seconds, for the elapsed times the programs print. */
double demo_now(void);

/* A whole decimal number (strtol, nothing left over) into *out: 0, or -1
 * without a message when arg is not one. */
int demo_strtol(const char *arg, long *out);

/* A whole decimal number in [min, max] into *out: 0, or -1 after printing
 * "PROG: WHAT: ..." when it is not one. */
int demo_parse_long(const char *prog, const char *what, const char *arg, long min, long max,
                    long *out);

/* calloc(n, size); on failure the program ends with exit status 1 after
 * "PROG: out of memory". */
void *demo_calloc(const demo_opts *d, size_t n, size_t size);

/* Frees the n jobs of the array (NULL ones too) and the array; jobs may be
 * NULL. */
void demo_jobs_free(pp_job **jobs, long n);

#endif
