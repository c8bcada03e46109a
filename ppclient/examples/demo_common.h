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

/* The server for the options, or NULL after printing why. */
pp_server *demo_server_new(const demo_opts *d, const char *prog);

#endif
