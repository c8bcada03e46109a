/* SPDX-License-Identifier: MIT */
/* pp-crawl -- the distributed web crawler of "Parallel Programming with
 * Python", chapter 6, with pp: each job fetches one page (libcurl in the
 * task module) and returns its status and links; this program crawls
 * breadth-first to a depth, never fetches a URL twice, stays on the seeds'
 * hosts unless told otherwise, honours robots.txt, and keeps at most a few
 * fetches per host in flight. */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <pp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "crawl_tasks.h"
#include "demo_common.h"

#define PER_HOST 4            /* fetches in flight per host */
#define MAX_REDIRECTS 10

typedef struct options {
    int depth;
    long max_pages;
    int all_hosts;
    double timeout;
    long max_size;
    const char *ua;
    const char *cacert;  /* "" = the system's certificate authorities */
    char *cacert_abs;    /* owned: --cacert made absolute */
    int json;
} options;

/* ---- a set of strings ---- */

typedef struct strset {
    char **slot;
    size_t cap, n;
} strset;

static size_t hash_str(const char *s)
{
    size_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Adds s (copied); returns 1 if added, 0 if present, -1 out of memory. */
static int strset_add(strset *set, const char *s)
{
    if (set->n * 2 >= set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 256;
        char **slot = calloc(cap, sizeof *slot);
        if (!slot)
            return -1;
        for (size_t i = 0; i < set->cap; i++) {
            if (!set->slot[i])
                continue;
            size_t k = hash_str(set->slot[i]) & (cap - 1);
            while (slot[k])
                k = (k + 1) & (cap - 1);
            slot[k] = set->slot[i];
        }
        free(set->slot);
        set->slot = slot;
        set->cap = cap;
    }
    size_t k = hash_str(s) & (set->cap - 1);
    while (set->slot[k]) {
        if (strcmp(set->slot[k], s) == 0)
            return 0;
        k = (k + 1) & (set->cap - 1);
    }
    set->slot[k] = strdup(s);
    if (!set->slot[k])
        return -1;
    set->n++;
    return 1;
}

static int strset_has(const strset *set, const char *s)
{
    if (!set->cap)
        return 0;
    for (size_t k = hash_str(s) & (set->cap - 1); set->slot[k]; k = (k + 1) & (set->cap - 1))
        if (strcmp(set->slot[k], s) == 0)
            return 1;
    return 0;
}

static void strset_free(strset *set)
{
    for (size_t i = 0; i < set->cap; i++)
        free(set->slot[i]);
    free(set->slot);
}

/* ---- hosts and robots.txt ---- */

typedef struct rule {
    int allow;
    char *path;
} rule;

typedef struct host {
    char *origin;              /* scheme://host[:port] */
    int inflight;
    int robots;                /* 0 not asked, 1 asked, 2 known */
    rule *rules;
    int nrules;
    struct host *next;
} host;

/* robots.txt: the longest matching rule wins; Allow wins ties (RFC 9309).
 * `*` and `$` in rules are honoured. */
static int rule_match(const char *pat, const char *path)
{
    for (; *pat; pat++) {
        if (*pat == '*') {
            for (const char *p = path;; p++) {
                if (rule_match(pat + 1, p))
                    return 1;
                if (!*p)
                    return 0;
            }
        }
        if (*pat == '$' && pat[1] == 0)
            return *path == 0;
        if (*pat != *path)
            return 0;
        path++;
    }
    return 1;
}

static int robots_allows(const host *h, const char *path)
{
    size_t best = 0;
    int allow = 1;
    for (int i = 0; i < h->nrules; i++) {
        size_t n = strlen(h->rules[i].path);
        if (rule_match(h->rules[i].path, path) && (n > best || (n == best && h->rules[i].allow))) {
            best = n;
            allow = h->rules[i].allow;
        }
    }
    return allow;
}

/* ---- URLs ---- */

typedef struct url_parts {
    char *norm;                /* normalized URL without fragment */
    char *origin;
    char *host;                /* lower-case host name */
    char *path;                /* path + query, for robots.txt */
} url_parts;

static void url_parts_free(url_parts *u)
{
    free(u->norm);
    free(u->origin);
    free(u->host);
    free(u->path);
    memset(u, 0, sizeof *u);
}

/* Parses an absolute http(s) URL.  0, or -1 with a reason in why. */
static int url_parse(const char *s, url_parts *out, const char **why)
{
    memset(out, 0, sizeof *out);
    CURLU *u = curl_url();
    char *scheme = NULL, *hostname = NULL, *port = NULL, *path = NULL, *query = NULL,
         *full = NULL;
    int rc = -1;
    *why = "not a valid URL";
    if (!u)
        goto out;
    CURLUcode e = curl_url_set(u, CURLUPART_URL, s, CURLU_NON_SUPPORT_SCHEME);
    if (e != CURLUE_OK) {
        *why = curl_url_strerror(e);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcasecmp(scheme, "http") && strcasecmp(scheme, "https"))) {
        *why = "only http and https URLs are crawled";
        goto out;
    }
    curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0);
    if (curl_url_get(u, CURLUPART_HOST, &hostname, 0) != CURLUE_OK || !hostname[0]) {
        *why = "the URL has no host";
        goto out;
    }
    curl_url_get(u, CURLUPART_PORT, &port, 0);
    curl_url_get(u, CURLUPART_PATH, &path, 0);
    curl_url_get(u, CURLUPART_QUERY, &query, 0);
    if (curl_url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK)
        goto out;
    for (char *p = hostname; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    size_t n = strlen(scheme) + strlen(hostname) + 16;
    out->origin = malloc(n);
    if (out->origin)
        snprintf(out->origin, n, "%s://%s%s%s", scheme, hostname, port ? ":" : "",
                 port ? port : "");
    size_t pn = strlen(path ? path : "/") + (query ? strlen(query) + 2 : 1);
    out->path = malloc(pn);
    if (out->path)
        snprintf(out->path, pn, "%s%s%s", path ? path : "/", query ? "?" : "", query ? query : "");
    out->norm = strdup(full);
    out->host = strdup(hostname);
    if (out->origin && out->path && out->norm && out->host)
        rc = 0;
    else
        *why = "out of memory";
out:
    if (rc)
        url_parts_free(out);
    curl_free(scheme);
    curl_free(hostname);
    curl_free(port);
    curl_free(path);
    curl_free(query);
    curl_free(full);
    curl_url_cleanup(u);
    return rc;
}

/* ---- the crawl ---- */

typedef struct item {
    char *url;
    int depth;
    struct item *next;
} item;

enum { K_FETCH, K_ROBOTS };

typedef struct pending {
    int kind;
    char *url;
    int depth;
    host *h;
    pp_job *job;
    struct pending *next;      /* in the done list */
} pending;

typedef struct crawl {
    options opt;
    pp_server *s;
    strset seen;
    strset seed_hosts;
    host *hosts;
    item *qhead, *qtail;
    size_t queued;
    long submitted, fetched, links, errors, bytes, skipped_robots;
    int inflight;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pending *done;             /* finished jobs, from callbacks */
    int progress;              /* a terminal: show a progress line */
    FILE *json;
    int json_first;
} crawl;

/* Callback argument: the pending record and its crawl. */
typedef struct cbarg {
    crawl *c;
    pending *p;
} cbarg;

static void job_finished(pp_job *j, void *arg)
{
    (void)j;
    cbarg *a = arg;
    pthread_mutex_lock(&a->c->mu);
    a->p->next = a->c->done;
    a->c->done = a->p;
    pthread_cond_signal(&a->c->cv);
    pthread_mutex_unlock(&a->c->mu);
    free(a);
}

static host *host_get(crawl *c, const char *origin)
{
    for (host *h = c->hosts; h; h = h->next)
        if (strcmp(h->origin, origin) == 0)
            return h;
    host *h = calloc(1, sizeof *h);
    if (!h || !(h->origin = strdup(origin))) {
        free(h);
        return NULL;
    }
    h->next = c->hosts;
    c->hosts = h;
    return h;
}

static int submit(crawl *c, int kind, const char *url, int depth, host *h)
{
    pending *p = calloc(1, sizeof *p);
    cbarg *a = malloc(sizeof *a);
    if (!p || !a || !(p->url = strdup(url))) {
        free(p);
        free(a);
        return -1;
    }
    p->kind = kind;
    p->depth = depth;
    p->h = h;
    a->c = c;
    a->p = p;
    pp_submit_opts o = {.callback = job_finished, .callback_arg = a};
    p->job = pp_submitf(c->s, kind == K_FETCH ? pp_crawl_fetch : pp_crawl_robots, &o, "sdlsls",
                        url, c->opt.timeout, c->opt.max_size, c->opt.ua, (long)MAX_REDIRECTS,
                        c->opt.cacert);
    if (!p->job) {
        fprintf(stderr, "pp-crawl: %s\n", pp_last_error());
        free(p->url);
        free(p);
        free(a);
        return -1;
    }
    c->inflight++;
    h->inflight += kind == K_FETCH;
    return 0;
}

static void enqueue(crawl *c, const char *url, int depth)
{
    item *it = malloc(sizeof *it);
    if (!it || !(it->url = strdup(url))) {
        free(it);
        return;
    }
    it->depth = depth;
    it->next = NULL;
    if (c->qtail)
        c->qtail->next = it;
    else
        c->qhead = it;
    c->qtail = it;
    c->queued++;
}

/* Submits what may go now: robots.txt first for each host, at most
 * PER_HOST fetches per host, at most max_pages fetches in all. */
static int dispatch(crawl *c)
{
    item **pp = &c->qhead, *prev = NULL;
    while (*pp) {
        item *it = *pp;
        url_parts u;
        const char *why;
        int drop = 0;
        if (c->submitted >= c->opt.max_pages) {
            drop = 1;
        } else if (url_parse(it->url, &u, &why) != 0) {
            drop = 1;
        } else {
            host *h = host_get(c, u.origin);
            if (!h) {
                url_parts_free(&u);
                return -1;
            }
            if (h->robots == 0) {
                char robots[4200];
                snprintf(robots, sizeof robots, "%s/robots.txt", u.origin);
                if (submit(c, K_ROBOTS, robots, 0, h) != 0) {
                    url_parts_free(&u);
                    return -1;
                }
                h->robots = 1;
            }
            if (h->robots == 2 && !robots_allows(h, u.path)) {
                c->skipped_robots++;
                drop = 1;
            } else if (h->robots == 2 && h->inflight < PER_HOST) {
                if (submit(c, K_FETCH, it->url, it->depth, h) != 0) {
                    url_parts_free(&u);
                    return -1;
                }
                c->submitted++;
                drop = 1;
            }
            url_parts_free(&u);
        }
        if (drop) {
            *pp = it->next;
            if (c->qtail == it)
                c->qtail = prev;
            c->queued--;
            free(it->url);
            free(it);
        } else {
            prev = it;
            pp = &it->next;
        }
    }
    return 0;
}

static void json_string(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(fp, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(fp, "\\u%04x", ch);
        else
            fputc(ch, fp);
    }
    fputc('"', fp);
}

static void on_robots(pending *p)
{
    long status;
    const char *rules;
    host *h = p->h;
    h->robots = 2;
    if (pp_job_unpack(p->job, "ls", &status, &rules) != 0)
        return; /* unreachable robots.txt: everything allowed */
    for (const char *line = rules; *line;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        if (n > 2) {
            rule *r = realloc(h->rules, (size_t)(h->nrules + 1) * sizeof *r);
            if (r) {
                h->rules = r;
                r[h->nrules].allow = line[0] == 'A';
                r[h->nrules].path = strndup(line + 2, n - 2);
                if (r[h->nrules].path)
                    h->nrules++;
            }
        }
        line += n + (nl ? 1 : 0);
    }
}

static void on_page(crawl *c, pending *p)
{
    long status = 0, size = 0;
    const char *final = "", *ctype = "", *err = "", *links = "";
    double secs = 0;
    p->h->inflight--;
    c->fetched++;
    if (pp_job_unpack(p->job, "lssldss", &status, &final, &ctype, &size, &secs, &err, &links)) {
        status = 0;
        err = pp_job_error(p->job)[0] ? pp_job_error(p->job) : pp_last_error();
    }
    c->bytes += size;
    if (status == 0 || status >= 400 || err[0])
        c->errors++;
    long nlinks = 0;
    for (const char *l = links; *l;) {
        const char *nl = strchr(l, '\n');
        size_t n = nl ? (size_t)(nl - l) : strlen(l);
        char *u = strndup(l, n);
        l += n + (nl ? 1 : 0);
        if (!u)
            continue;
        nlinks++;
        url_parts up;
        const char *why;
        if (p->depth < c->opt.depth && url_parse(u, &up, &why) == 0) {
            int on_site = c->opt.all_hosts || strset_has(&c->seed_hosts, up.host);
            if (on_site && strset_add(&c->seen, up.norm) == 1)
                enqueue(c, up.norm, p->depth + 1);
            url_parts_free(&up);
        }
        free(u);
    }
    c->links += nlinks;
    if (c->progress)
        fprintf(stderr, "\r\033[K");
    if (c->json) {
        fprintf(c->json, "%s\n    {\"url\": ", c->json_first ? "" : ",");
        c->json_first = 0;
        json_string(c->json, p->url);
        fprintf(c->json, ", \"status\": %ld, \"final_url\": ", status);
        json_string(c->json, final);
        fprintf(c->json, ", \"depth\": %d, \"content_type\": ", p->depth);
        json_string(c->json, ctype);
        fprintf(c->json, ", \"bytes\": %ld, \"seconds\": %.6f, \"links\": %ld, \"node\": ", size,
                secs, nlinks);
        json_string(c->json, pp_job_node(p->job));
        fprintf(c->json, ", \"error\": ");
        json_string(c->json, err);
        fputc('}', c->json);
    } else {
        printf("%03ld %s", status, p->url);
        if (strcmp(final, p->url) && final[0] && status)
            printf(" -> %s", final);
        if (err[0])
            printf(" %s", err);
        putchar('\n');
        fflush(stdout);
    }
}

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: pp-crawl [--servers host:port,...] [--secret-file F] [--ncpus N]\n"
            "                [--depth D] [--max-pages N] [--all-hosts] [--timeout S]\n"
            "                [--max-size BYTES] [--user-agent UA] [--cacert FILE] [--json]\n"
            "                URL...\n"
            "\n"
            "Crawls the web from the given URLs, breadth-first, one pp job per page, on\n"
            "the local cores and on the given ppservers.  Prints one line per fetched\n"
            "URL, \"STATUS URL\" (000 and a reason when no response came), then a summary\n"
            "and pp's statistics on standard error.\n"
            "\n"
            "  --servers LIST      ppserver nodes, comma-separated host[:port]\n"
            "  --secret-file FILE  the cluster's shared secret (else $PP_SECRET)\n"
            "  --ncpus N           local workers (default: the CPUs available)\n"
            "  --depth D           follow links this many levels from the seeds (default 2)\n"
            "  --max-pages N       fetch at most N pages (default 100)\n"
            "  --all-hosts         follow links to other hosts too (default: the seeds' hosts)\n"
            "  --timeout S         per-fetch timeout in seconds (default 10)\n"
            "  --max-size BYTES    pages larger than this are not read (default 5242880)\n"
            "  --user-agent UA     User-Agent header and robots.txt name (default pp-crawl/%s)\n"
            "  --cacert FILE       trust the certificate authorities in FILE (PEM) for HTTPS\n"
            "                      instead of the system's; the path must exist on every node\n"
            "  --json              write a JSON report to standard output instead of lines\n"
            "  -h, --help          this text\n",
            pp_version());
}

/* A whole number in [min, max] into *out: 0, or -1 after a message. */
static int parse_long(const char *opt, const char *s, long min, long max, long *out)
{
    long v;
    if (demo_strtol(s, &v) != 0 || v < min || v > max) {
        fprintf(stderr, "pp-crawl: %s: \"%s\" is not a number in %ld..%ld\n", opt, s, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

/* pp-crawl's own options (a demo_option_fn), into the options `o`. */
static int crawl_option(const char *prog, int letter, const char *arg, void *o)
{
    options *opt = o;
    long depth;
    (void)prog;
    switch (letter) {
    case 'D':
        if (parse_long("--depth", arg, 0, 100, &depth) != 0)
            return -1;
        opt->depth = (int)depth;
        return 0;
    case 'M':
        return parse_long("--max-pages", arg, 1, 10000000, &opt->max_pages);
    case 'A':
        opt->all_hosts = 1;
        return 0;
    case 'T': {
        char *end;
        opt->timeout = strtod(arg, &end);
        if (end == arg || *end || !(opt->timeout > 0 && opt->timeout <= 3600)) {
            fprintf(stderr, "pp-crawl: --timeout: \"%s\" is not in (0, 3600] seconds\n", arg);
            return -1;
        }
        return 0;
    }
    case 'Z':
        return parse_long("--max-size", arg, 1, 1L << 30, &opt->max_size);
    case 'U':
        opt->ua = arg;
        return 0;
    case 'C': {
        /* Absolute, as the fetches may run in another directory. */
        char *abs = realpath(arg, NULL);
        if (!abs) {
            fprintf(stderr, "pp-crawl: --cacert %s: %s\n", arg, strerror(errno));
            return -1;
        }
        free(opt->cacert_abs);
        opt->cacert_abs = abs;
        opt->cacert = abs;
        return 0;
    }
    default: /* 'J' */
        opt->json = 1;
        return 0;
    }
}

/* Crawls from the seeds with the options: the exit status. */
static int run(demo_opts *d, const options *opt, char **seeds, int nseeds)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    crawl c;
    memset(&c, 0, sizeof c);
    c.opt = *opt;
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    int rc = 0;
    for (int i = 0; i < nseeds; i++) {
        url_parts u;
        const char *why;
        if (url_parse(seeds[i], &u, &why) != 0) {
            fprintf(stderr, "pp-crawl: \"%s\": %s\n", seeds[i], why);
            rc = 2;
            goto done;
        }
        strset_add(&c.seed_hosts, u.host);
        if (strset_add(&c.seen, u.norm) == 1)
            enqueue(&c, u.norm, 0);
        url_parts_free(&u);
    }
    c.s = pp_server_new(demo_config(d));
    if (demo_server_ready(d, c.s) != 0) {
        rc = 1;
        goto done;
    }
    c.progress = isatty(STDERR_FILENO) && !opt->json;
    if (opt->json) {
        c.json = stdout;
        c.json_first = 1;
        fprintf(c.json, "{\n  \"pages\": [");
    }
    double t0 = demo_now();
    pthread_mutex_lock(&c.mu);
    for (;;) {
        pthread_mutex_unlock(&c.mu);
        if (dispatch(&c) != 0) {
            rc = 1;
            pthread_mutex_lock(&c.mu);
            break;
        }
        pthread_mutex_lock(&c.mu);
        if (!c.inflight && !c.done)
            break; /* nothing running, nothing could be submitted */
        while (!c.done)
            pthread_cond_wait(&c.cv, &c.mu);
        pending *list = c.done;
        c.done = NULL;
        pthread_mutex_unlock(&c.mu);
        while (list) {
            pending *p = list;
            list = p->next;
            c.inflight--;
            if (p->kind == K_ROBOTS)
                on_robots(p);
            else
                on_page(&c, p);
            pp_job_free(p->job);
            free(p->url);
            free(p);
        }
        if (c.progress)
            fprintf(stderr, "\r\033[Kfetched %ld, queued %zu, in flight %d", c.fetched,
                    c.queued, c.inflight);
        pthread_mutex_lock(&c.mu);
    }
    pthread_mutex_unlock(&c.mu);
    double secs = demo_now() - t0;
    if (c.progress)
        fprintf(stderr, "\r\033[K");
    double rate = secs > 0 ? (double)c.fetched / secs : 0;
    if (opt->json) {
        fprintf(c.json, "\n  ],\n  \"summary\": {\"pages\": %ld, \"links\": %ld, \"errors\": %ld, "
                        "\"bytes\": %ld, \"skipped_by_robots\": %ld, \"seconds\": %.3f, "
                        "\"pages_per_second\": %.1f}\n}\n",
                c.fetched, c.links, c.errors, c.bytes, c.skipped_robots, secs, rate);
    }
    fprintf(stderr, "pages %ld, links %ld, errors %ld, bytes %ld, skipped by robots.txt %ld, "
                    "%.1f pages/s\n",
            c.fetched, c.links, c.errors, c.bytes, c.skipped_robots, rate);
    pp_print_stats(c.s, stderr);
done:
    pp_server_free(c.s);
    strset_free(&c.seen);
    strset_free(&c.seed_hosts);
    while (c.hosts) {
        host *h = c.hosts;
        c.hosts = h->next;
        for (int i = 0; i < h->nrules; i++)
            free(h->rules[i].path);
        free(h->rules);
        free(h->origin);
        free(h);
    }
    while (c.qhead) {
        item *it = c.qhead;
        c.qhead = it->next;
        free(it->url);
        free(it);
    }
    curl_global_cleanup();
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        DEMO_OPTIONS,
        {"depth", required_argument, NULL, 'D'},
        {"max-pages", required_argument, NULL, 'M'},
        {"all-hosts", no_argument, NULL, 'A'},
        {"timeout", required_argument, NULL, 'T'},
        {"max-size", required_argument, NULL, 'Z'},
        {"user-agent", required_argument, NULL, 'U'},
        {"cacert", required_argument, NULL, 'C'},
        {"json", no_argument, NULL, 'J'},
        DEMO_OPTIONS_END,
    };
    demo_opts d = DEMO_OPTS_INIT("pp-crawl", usage);
    char ua_default[64];
    snprintf(ua_default, sizeof ua_default, "pp-crawl/%s", pp_version());
    options opt = {.depth = 2, .max_pages = 100, .timeout = 10, .max_size = 5 << 20,
                   .ua = ua_default, .cacert = ""};
    int rc = 0;
    if (demo_getopt(&d, argc, argv, opts, crawl_option, &opt, &rc) == 0) {
        if (optind < argc) {
            rc = run(&d, &opt, argv + optind, argc - optind);
        } else {
            fprintf(stderr, "pp-crawl: give at least one URL (try --help)\n");
            rc = 2;
        }
    }
    demo_opts_free(&d);
    free(opt.cacert_abs);
    return rc;
}
