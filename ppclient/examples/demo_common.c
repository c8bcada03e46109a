/* SPDX-License-Identifier: MIT */
/* demo_common.c -- option handling shared by pp-fib and pp-crawl. */
#include "demo_common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

void demo_opts_init(demo_opts *d)
{
    memset(d, 0, sizeof *d);
    d->ncpus = PP_AUTODETECT;
}

void demo_opts_free(demo_opts *d)
{
    if (d->servers) {
        for (char **p = d->servers; *p; p++)
            free(*p);
        free(d->servers);
    }
    if (d->secret) {
        memset(d->secret, 0, strlen(d->secret));
        free(d->secret);
    }
    d->servers = NULL;
    d->secret = NULL;
}

static int parse_servers(demo_opts *d, const char *arg)
{
    size_t n = 1;
    for (const char *p = arg; *p; p++)
        n += *p == ',';
    char **list = calloc(n + 1, sizeof *list);
    char *copy = strdup(arg);
    if (!list || !copy) {
        free(list);
        free(copy);
        fprintf(stderr, "out of memory\n");
        return -1;
    }
    size_t k = 0;
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (!*tok)
            continue;
        list[k] = strdup(tok);
        if (!list[k]) {
            fprintf(stderr, "out of memory\n");
            free(copy);
            return -1;
        }
        k++;
    }
    free(copy);
    if (k == 0) {
        free(list);
        fprintf(stderr, "--servers: empty list\n");
        return -1;
    }
    d->servers = list;
    return 0;
}

static int read_secret(demo_opts *d, const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        fprintf(stderr, "--secret-file %s: %s\n", path, strerror(errno));
        return -1;
    }
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    int err = ferror(fp) || !feof(fp);
    fclose(fp);
    if (err) {
        fprintf(stderr, "--secret-file %s: unreadable or larger than %zu bytes\n", path,
                sizeof buf - 1);
        return -1;
    }
    buf[n] = 0;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = 0;
    if (n == 0) {
        fprintf(stderr, "--secret-file %s: the file is empty\n", path);
        return -1;
    }
    d->secret = strdup(buf);
    memset(buf, 0, sizeof buf);
    return d->secret ? 0 : -1;
}

int demo_opt(demo_opts *d, int letter, const char *arg)
{
    switch (letter) {
    case 'S':
        return parse_servers(d, arg);
    case 'F':
        return read_secret(d, arg);
    case 'n': {
        char *end;
        errno = 0;
        long v = strtol(arg, &end, 10);
        if (errno || end == arg || *end || v < 0 || v > 4096) {
            fprintf(stderr, "--ncpus: \"%s\" is not a number of workers (0..4096)\n", arg);
            return -1;
        }
        d->ncpus = (int)v;
        return 0;
    }
    default:
        return -1; /* getopt already printed the unknown option */
    }
}

pp_server *demo_server_new(const demo_opts *d, const char *prog)
{
    pp_config cfg = {
        .ncpus = d->ncpus,
        .ppservers = (const char *const *)d->servers,
        .secret = d->secret,
        .log_level = getenv("PP_LOG") ? NULL : "error",
    };
    pp_server *s = pp_server_new(&cfg);
    if (!s)
        fprintf(stderr, "%s: %s\n", prog, pp_last_error());
    return s;
}

int demo_check_nodes(pp_server *s, const char *prog)
{
    pp_node_info nodes[64];
    struct timespec nap = {0, 20 * 1000000L};
    for (int tries = 0; tries < 500; tries++) { /* 500 x 20 ms = 10 s */
        int n = pp_get_active_nodes(s, nodes, 64);
        int waiting = 0;
        for (int i = 1; i < n && i < 64; i++) {
            if (nodes[i].state == PP_NODE_AUTH_FAILED) {
                fprintf(stderr, "%s: %s: authentication failed (is the secret the same as "
                                "the node's?)\n", prog, nodes[i].name);
                return -1;
            }
            waiting |= nodes[i].state != PP_NODE_UP;
        }
        if (!waiting)
            return 0;
        /* A node that went down after its first attempt is unreachable. */
        for (int i = 1; i < n && i < 64; i++) {
            if (nodes[i].state == PP_NODE_DOWN && tries >= 25) {
                fprintf(stderr, "%s: %s: cannot connect (is ppserver running there?)\n",
                        prog, nodes[i].name);
                return -1;
            }
        }
        nanosleep(&nap, NULL);
    }
    for (int i = 1; i < pp_get_active_nodes(s, nodes, 64) && i < 64; i++)
        if (nodes[i].state != PP_NODE_UP) {
            fprintf(stderr, "%s: %s: no answer from the node within 10 s\n", prog,
                    nodes[i].name);
            return -1;
        }
    return 0;
}
