/* SPDX-License-Identifier: MIT */
/* demo_common.c -- the plumbing the example programs share (demo_common.h). */
#include "demo_common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* --servers, --secret-file or --ncpus: 0, or -1 after a one-line message. */
static int shared_option(demo_opts *d, int letter, const char *arg)
{
    long v;
    switch (letter) {
    case 'S':
        return parse_servers(d, arg);
    case 'F':
        return read_secret(d, arg);
    default: /* 'n' */
        if (demo_strtol(arg, &v) != 0 || v < 0 || v > 4096) {
            fprintf(stderr, "--ncpus: \"%s\" is not a number of workers (0..4096)\n", arg);
            return -1;
        }
        d->ncpus = (int)v;
        return 0;
    }
}

int demo_getopt(demo_opts *d, int argc, char **argv, const struct option *opts,
                demo_option_fn *own, void *ctx, int *status)
{
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int bad;
        if (c == 'h') {
            d->usage(stdout);
            *status = 0;
            return -1;
        }
        if (c == '?' || c == ':') {
            /* getopt_long() has said what is wrong */
            fprintf(stderr, "%s: try --help\n", d->prog);
            bad = 1;
        } else if (c == 'S' || c == 'F' || c == 'n') {
            bad = shared_option(d, c, optarg) != 0;
        } else {
            bad = !own || own(d->prog, c, optarg, ctx) != 0;
        }
        if (bad) {
            *status = 2;
            return -1;
        }
    }
    return 0;
}

int demo_no_operands(const demo_opts *d, int argc, char **argv, int *status)
{
    if (optind >= argc)
        return 0;
    fprintf(stderr, "%s: unexpected argument \"%s\" (try --help)\n", d->prog, argv[optind]);
    *status = 2;
    return -1;
}

void demo_usage_options(FILE *fp)
{
    fprintf(fp,
            "  --servers LIST      ppserver nodes, comma-separated host[:port] (default port %d)\n"
            "  --secret-file FILE  the cluster's shared secret (else $PP_SECRET)\n"
            "  --ncpus N           local workers (default: the CPUs available; 0 = remote only)\n"
            "  -h, --help          this text\n",
            PP_DEFAULT_PORT);
}

const pp_config *demo_config(demo_opts *d)
{
    d->cfg = (pp_config){
        .ncpus = d->ncpus,
        .ppservers = (const char *const *)d->servers,
        .secret = d->secret,
        .log_level = getenv("PP_LOG") ? NULL : "error",
    };
    return &d->cfg;
}

/* Up, or dormant: connected once and closed while idle (more idle nodes
 * than pp_config.max_idle_nodes), reopened when jobs come. */
static int usable(int state)
{
    return state == PP_NODE_UP || state == PP_NODE_DORMANT;
}

/* Waits (at most 10 s) until every remote node is up or has failed; prints a
 * one-line message and returns -1 if one cannot be used (unreachable, wrong
 * secret), else 0.  Never hangs. */
static int check_nodes(pp_server *s, const char *prog)
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
            waiting |= !usable(nodes[i].state);
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
        if (!usable(nodes[i].state)) {
            fprintf(stderr, "%s: %s: no answer from the node within 10 s\n", prog,
                    nodes[i].name);
            return -1;
        }
    return 0;
}

int demo_server_ready(const demo_opts *d, pp_server *s)
{
    if (!s) {
        fprintf(stderr, "%s: %s\n", d->prog, pp_last_error());
        return -1;
    }
    return check_nodes(s, d->prog);
}

double demo_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int demo_strtol(const char *arg, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (errno || end == arg || *end)
        return -1;
    *out = v;
    return 0;
}

int demo_parse_long(const char *prog, const char *what, const char *arg, long min, long max,
                    long *out)
{
    long v;
    if (demo_strtol(arg, &v) != 0) {
        fprintf(stderr, "%s: %s: \"%s\" is not a number\n", prog, what, arg);
        return -1;
    }
    if (v < min || v > max) {
        fprintf(stderr, "%s: %s: %ld is out of range %ld..%ld\n", prog, what, v, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

void *demo_calloc(const demo_opts *d, size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "%s: out of memory\n", d->prog);
        exit(1);
    }
    return p;
}

void demo_jobs_free(pp_job **jobs, long n)
{
    for (long i = 0; jobs && i < n; i++)
        pp_job_free(jobs[i]);
    free(jobs);
}
