/* SPDX-License-Identifier: MIT */
/* demo_common.h -- options the demos share: --servers, --secret-file,
 * --ncpus, and building a pp_server from them. */
#ifndef DEMO_COMMON_H
#define DEMO_COMMON_H

#include <pp.h>

typedef struct demo_opts {
    int ncpus;
    char **servers;        /* NULL-terminated, or NULL */
    char *secret;          /* read from --secret-file */
} demo_opts;

void demo_opts_init(demo_opts *d);
void demo_opts_free(demo_opts *d);

/* Handles getopt letters 'S' (--servers), 'F' (--secret-file), 'n' (--ncpus).
 * Returns 0; or -1 after printing a one-line message (unknown letter too). */
int demo_opt(demo_opts *d, int letter, const char *arg);

/* The server for the options, or NULL after printing why.  libpp logs only
 * errors unless PP_LOG says otherwise. */
pp_server *demo_server_new(const demo_opts *d, const char *prog);

/* Waits (at most 10 s) until every remote node is up or has failed; prints a
 * one-line message and returns -1 if one cannot be used (unreachable, wrong
 * secret), else 0.  Never hangs. */
int demo_check_nodes(pp_server *s, const char *prog);

#endif
