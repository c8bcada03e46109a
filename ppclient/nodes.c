/* SPDX-License-Identifier: MIT */
/* nodes.c -- the node list (see nodes.h): entries and who wants them, nodes
 * files watched, names looked up again, one remote backend per address,
 * and pp_add_node()/pp_remove_node().
 *
 * A nodes file is outside input: it must be a regular file, not writable
 * by others, at most NODES_FILE_MAX bytes with lines of at most
 * NODES_LINE_MAX bytes; a bad line fails pp_server_new()/pp_add_node() with
 * its number, and on a later re-read keeps the nodes as they were (logged).
 * A file that changed is applied once it has stayed the same for one poll,
 * so that a file half written is not taken for the whole list. */
#include "nodes.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "pp_announce.h"
#include "pp_net.h"
#include "pp_resolve.h"

#define NODES_FILE_MAX (1 << 20)  /* bytes */
#define NODES_LINE_MAX 1024
#define NODES_PER_FILE 4096     /* the list is searched linearly: n*n stays small */
#define LIST_MAX 4096             /* entries of pp_config.ppservers or $PP_SERVERS, likewise */
#define ADDRS_MAX 64              /* addresses of one name used, at most */
#define FILE_POLL 1.0             /* seconds between looks at the nodes files */
#define RESOLVE_DEFAULT 30.0
#define NAME_LEN 300              /* "host:port", "[v6]:port" */
#define NODE_LEN (NAME_LEN + 72)  /* "host:port (address)" */
#define FILES_MAX 24              /* nodes files at once: a source bit each */

/* ---- names ---- */

/* "host[:port]" as the list shows it: "host:port" or "[v6]:port".  0, or
 * -1 with the reason in err. */
static int normalize(const char *text, char name[NAME_LEN], char host[256], int *port,
                     char *err)
{
    char q[72]; /* the first 60-odd bytes are enough to tell which */
    pp_quote(text, strlen(text), q, sizeof q);
    /* Checked first: the parser's message quotes the text, and a long one
     * would push the reason out of err.  The longest is "[255 bytes]:65535". */
    if (strlen(text) > 255 + 8) {
        pp_seterr(err, "node address \"%s\" longer than %d bytes", q, 255 + 8);
        return -1;
    }
    const char *bracket = strchr(text, '[');
    if (bracket && bracket != text) {
        pp_seterr(err, "bad node address \"%s\" (host ranges such as node[01-64] are not "
                       "expanded: list each node, e.g. from scontrol show hostnames)", q);
        return -1;
    }
    /* The parser's message quotes the text: only once it is known to be
     * printable. */
    int bad = 0;
    for (const unsigned char *c = (const unsigned char *)text; *c && !bad; c++)
        bad = *c < 0x20 || *c >= 0x7f;
    if (bad || pp_net_parse_hostport(text, PP_DEFAULT_PORT, host, 256, port, err) != 0) {
        if (bad)
            pp_seterr(err, "bad node address \"%s\" (a host name has only letters, digits, "
                           "'-', '.' and '_')", q);
        return -1;
    }
    /* A line of a nodes file is outside input: blanks or bytes no host
     * name has would make a node that can never be reached.  ':' and '%'
     * (a zone) only in an IPv6 address. */
    int v6 = strchr(host, ':') != NULL;
    for (const unsigned char *c = (const unsigned char *)host; *c; c++)
        if (!(isalnum(*c) || strchr("-._", *c) || (v6 && strchr(":%", *c)))) {
            pp_seterr(err, "bad node address \"%s\" (a host name has only letters, digits, "
                           "'-', '.' and '_')", q);
            return -1;
        }
    snprintf(name, NAME_LEN, v6 ? "[%s]:%d" : "%s:%d", host, *port);
    return 0;
}

static int is_address(const char *host)
{
    unsigned char a[16];
    return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

/* ---- nodes files ---- */

typedef struct name_list {
    char **v;
    size_t n, cap;
} name_list;

static void names_free(name_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    *l = (name_list){0};
}

static int names_add(name_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++) /* a name listed twice is one node */
        if (strcmp(l->v[i], name) == 0)
            return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(name)))
        return -1;
    l->n++;
    return 0;
}

/* The file's bytes, checked (see the top).  malloc'd and NUL-terminated,
 * or NULL with the reason in err. */
static char *file_slurp(const char *path, struct stat *st, char *err)
{
    int fd = pp_open_regular(path, st);
    if (fd < 0) {
        if (errno)
            pp_seterr(err, "nodes file %s: %s", path, strerror(errno));
        else
            pp_seterr(err, "nodes file %s: not a regular file", path);
        return NULL;
    }
    char *buf = NULL;
    if (st->st_mode & S_IWOTH) {
        pp_seterr(err, "nodes file %s: others may write it (chmod o-w): anyone could "
                       "change the nodes", path);
    } else if (st->st_size > NODES_FILE_MAX) {
        pp_seterr(err, "nodes file %s: larger than %d bytes", path, NODES_FILE_MAX);
    } else if (!(buf = malloc((size_t)st->st_size + 1))) {
        pp_seterr(err, "nodes file %s: out of memory", path);
    } else {
        ssize_t got = pp_read_full(fd, buf, (size_t)st->st_size);
        if (got < 0) {
            pp_seterr(err, "nodes file %s: %s", path, strerror(errno));
            free(buf);
            buf = NULL;
        } else if (memchr(buf, 0, (size_t)got)) {
            pp_seterr(err, "nodes file %s: binary data (a NUL byte)", path);
            free(buf);
            buf = NULL;
        } else {
            buf[got] = 0;
        }
    }
    close(fd);
    return buf;
}

/* One line: "host[:port]", maybe "# comment" after it, blanks around. */
static int parse_line(char *line, name_list *out, char *err)
{
    char *hash = strchr(line, '#');
    if (hash)
        *hash = 0;
    while (*line == ' ' || *line == '\t' || *line == '\r')
        line++;
    size_t len = strlen(line);
    while (len && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r'))
        line[--len] = 0;
    if (!len)
        return 0;
    char name[NAME_LEN], host[256];
    int port;
    if (normalize(line, name, host, &port, err) != 0)
        return -1;
    if (out->n >= NODES_PER_FILE) {
        pp_seterr(err, "more than %d nodes", NODES_PER_FILE);
        return -1;
    }
    if (names_add(out, name) != 0) {
        pp_seterr(err, "out of memory");
        return -1;
    }
    return 0;
}

/* Reads a nodes file into *out (normalized names).  0, or -1 with the
 * reason (and the line) in err. */
static int read_nodes_file(const char *path, name_list *out, struct stat *st, char *err)
{
    *out = (name_list){0};
    char *buf = file_slurp(path, st, err);
    if (!buf)
        return -1;
    int lineno = 0, rc = 0;
    for (char *p = buf, *nl; p && *p && rc == 0; p = nl ? nl + 1 : NULL) {
        nl = strchr(p, '\n');
        if (nl)
            *nl = 0;
        lineno++;
        char why[PP_ERR_LEN];
        if (strlen(p) > NODES_LINE_MAX) {
            pp_seterr(err, "nodes file %s line %d: longer than %d bytes", path, lineno,
                      NODES_LINE_MAX);
            rc = -1;
        } else if (parse_line(p, out, why) != 0) {
            pp_seterr(err, "nodes file %s line %d: %s", path, lineno, why);
            rc = -1;
        }
    }
    free(buf);
    if (rc != 0)
        names_free(out);
    return rc;
}

/* "@path" with the path made absolute (a later chdir() must not move it).
 * malloc'd, or NULL with the reason in err. */
static char *file_key(const char *path, char *err)
{
    if (!*path) {
        pp_seterr(err, "\"@\" names no nodes file");
        return NULL;
    }
    char cwd[4096] = "";
    if (path[0] != '/' && !getcwd(cwd, sizeof cwd)) {
        pp_seterr(err, "nodes file %s: cannot tell the current directory: %s", path,
                  strerror(errno));
        return NULL;
    }
    size_t len = strlen(cwd) + strlen(path) + 3;
    char *key = malloc(len);
    if (!key) {
        pp_seterr(err, "out of memory");
        return NULL;
    }
    snprintf(key, len, "@%s%s%s", cwd, cwd[0] ? "/" : "", path);
    return key;
}

/* ---- the scheduler's side ---- */

typedef struct entry {
    struct entry *next;
    struct nodeset *ns;
    unsigned want;               /* PP_SRC_* bits */
    char name[NAME_LEN];         /* "host:port" */
    char host[256];
    int port;
    int is_name;                 /* a host name: looked up every resolve_interval */
    pp_resolve *lookup;
    pp_io lio;
    pp_timer relook;
} entry;

typedef struct watch {           /* a nodes file */
    struct watch *next;
    struct nodeset *ns;
    char *key;                   /* "@/abs/path" */
    unsigned bit;
    struct stat applied, pending; /* what was read; what changed since */
    int changing;                /* pending differs from applied */
    int failing;                 /* the last look failed (logged once) */
} watch;

typedef struct nodeset {
    pp_server *s;
    entry *entries;
    watch *watches;
    unsigned file_bits;          /* in use */
    pp_timer poll;               /* FILE_POLL, while there are watches */
    double resolve_interval;
} nodeset;

static pp_backend *backend_named(pp_server *s, const char *name)
{
    for (int i = 0; i < s->nbackends; i++)
        if (s->backends[i]->remote && strcmp(s->backends[i]->node->name, name) == 0)
            return s->backends[i];
    return NULL;
}

static void seen(pp_server *s, pp_node *node, const struct addrinfo *res);

/* The statistics line named `name` (mu held), or NULL. */
static pp_node *node_named_locked(pp_server *s, const char *name)
{
    for (int i = 1; i < s->nnodes; i++)
        if (strcmp(s->nodes[i]->name, name) == 0)
            return s->nodes[i];
    return NULL;
}

/* The backend for `name` (reaching host), made or taken back into service,
 * owned by e. */
static void want_backend(entry *e, const char *name, const char *host)
{
    pp_server *s = e->ns->s;
    pp_backend *b = backend_named(s, name);
    if (b) {
        b->node->owner = e;
        b->ops->drain(b, 0);
        return;
    }
    char err[PP_ERR_LEN] = "out of memory";
    pthread_mutex_lock(&s->mu);
    pp_node *node = node_named_locked(s, name); /* its line made by add_locked() */
    if (!node)
        node = pp_node_add_locked(s, name, 0, PP_NODE_CONNECTING);
    pthread_mutex_unlock(&s->mu);
    if (node && (b = pp_remote_new(s, node, host, e->port, e->is_name ? seen : NULL, err)) &&
        pp_sched_add(s, b) != 0) {
        b->ops->free(b);
        b = NULL;
    }
    if (!b) {
        pp_log(&s->log, PP_LOG_ERROR, "%s: cannot add the node: %s", name, err);
        return;
    }
    node->owner = e;
    pp_sched_poke(s);
}

/* e's backends become exactly those named in names[] (reaching hosts[]);
 * the others drain. */
static void reconcile(entry *e, char (*names)[NODE_LEN], char (*hosts)[256], int n)
{
    pp_server *s = e->ns->s;
    for (int i = 0; i < s->nbackends; i++) {
        pp_backend *b = s->backends[i];
        if (!b->remote || b->node->owner != e)
            continue;
        int keep = 0;
        for (int k = 0; k < n && !keep; k++)
            keep = strcmp(b->node->name, names[k]) == 0;
        if (!keep) {
            b->node->owner = NULL;
            b->ops->drain(b, 1);
        }
    }
    for (int k = 0; k < n; k++)
        want_backend(e, names[k], hosts[k]);
}

static void lookup_done(pp_loop *loop, pp_io *io, unsigned ev);

static void start_lookup(entry *e)
{
    pp_server *s = e->ns->s;
    char err[PP_ERR_LEN];
    e->lookup = pp_resolve_start(e->host, e->port, err);
    if (!e->lookup) {
        pp_log(&s->log, PP_LOG_WARN, "%s: %s", e->name, err);
        pp_timer_start(s->loop, &e->relook, pp_now() + e->ns->resolve_interval);
        return;
    }
    e->lio = (pp_io){.fd = pp_resolve_fd(e->lookup), .fn = lookup_done, .data = e};
    if (pp_loop_add(s->loop, &e->lio, PP_EV_READ) != 0) {
        pp_resolve_drop(e->lookup);
        e->lookup = NULL;
        pp_timer_start(s->loop, &e->relook, pp_now() + e->ns->resolve_interval);
    }
}

static void stop_lookup(entry *e)
{
    if (e->lookup) {
        pp_loop_del(e->ns->s->loop, &e->lio);
        pp_resolve_drop(e->lookup);
        e->lookup = NULL;
    }
    pp_timer_stop(e->ns->s->loop, &e->relook);
}

static int is_loopback(const struct addrinfo *a)
{
    if (a->ai_family == AF_INET)
        return ntohl(((const struct sockaddr_in *)a->ai_addr)->sin_addr.s_addr) >> 24 == 127;
    return a->ai_family == AF_INET6 &&
           IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)a->ai_addr)->sin6_addr);
}

/* The name's addresses, numeric, each once.  ::1 beside an IPv4 loopback
 * address is the same ppserver ("localhost"): dropped.  Distinct 127.x
 * addresses stay distinct: a ppserver each may listen there (-i). */
static int addresses(const struct addrinfo *res, char (*out)[256], int max)
{
    int n = 0, loopback4 = 0;
    for (const struct addrinfo *a = res; a; a = a->ai_next)
        loopback4 |= a->ai_family == AF_INET && is_loopback(a);
    for (const struct addrinfo *a = res; a && n < max; a = a->ai_next) {
        char h[256];
        if (getnameinfo(a->ai_addr, a->ai_addrlen, h, sizeof h, NULL, 0, NI_NUMERICHOST) != 0)
            continue;
        if (loopback4 && a->ai_family == AF_INET6 && is_loopback(a))
            continue;
        int seen = 0;
        for (int k = 0; k < n && !seen; k++)
            seen = strcmp(out[k], h) == 0;
        if (!seen)
            snprintf(out[n++], 256, "%s", h);
    }
    return n;
}

/* Whether e has a node in service for `addr` ("name (addr)", written into
 * name): a name down to one of its addresses keeps that node. */
static int split_kept(entry *e, const char *addr, char name[NODE_LEN])
{
    snprintf(name, NODE_LEN, "%s (%.64s)", e->name, addr);
    pp_backend *b = backend_named(e->ns->s, name);
    return b && b->node->owner == e;
}

/* A name with one address is one node reached by its name (as before any
 * lookup); with several, one node per address, "name (address)". */
static void lookup_done(pp_loop *loop, pp_io *io, unsigned ev)
{
    (void)ev;
    entry *e = io->data;
    struct addrinfo *res = NULL;
    char err[PP_ERR_LEN];
    if (pp_resolve_take(e->lookup, &res, err) == 0)
        return;
    pp_loop_del(loop, &e->lio);
    pp_resolve_drop(e->lookup);
    e->lookup = NULL;
    /* Lookups of many names spread out: +-10 %, from the entry's address. */
    double jitter = 0.9 + 0.2 * (double)(((uintptr_t)e >> 4) % 1000) / 1000.0;
    pp_timer_start(loop, &e->relook, pp_now() + e->ns->resolve_interval * jitter);
    if (!res) { /* keep what we have: a failing lookup is not a node gone */
        pp_log(&e->ns->s->log, PP_LOG_DEBUG, "%s: lookup failed: %s", e->name, err);
        return;
    }
    char (*addrs)[256] = malloc(ADDRS_MAX * sizeof *addrs);
    char (*names)[NODE_LEN] = malloc(ADDRS_MAX * sizeof *names);
    if (addrs && names) {
        int n = addresses(res, addrs, ADDRS_MAX);
        if (n == 1 && split_kept(e, addrs[0], names[0])) {
            /* down to one address: its node stays, no reconnection */
        } else if (n <= 1) {
            snprintf(names[0], NODE_LEN, "%s", e->name);
            snprintf(addrs[0], 256, "%s", e->host);
            n = 1;
        } else {
            for (int k = 0; k < n; k++)
                snprintf(names[k], NODE_LEN, "%s (%.64s)", e->name, addrs[k]);
        }
        reconcile(e, names, addrs, n);
    }
    freeaddrinfo(res);
    free(addrs);
    free(names);
}

/* A connection's own lookup of a name that found several addresses: the
 * entry looks again now and splits (not here: the connector is running). */
static void seen(pp_server *s, pp_node *node, const struct addrinfo *res)
{
    entry *e = node->owner;
    if (!e || e->lookup || strcmp(node->name, e->name) != 0)
        return;
    char (*addrs)[256] = malloc(2 * sizeof *addrs);
    if (addrs && addresses(res, addrs, 2) > 1)
        pp_timer_start(s->loop, &e->relook, pp_now());
    free(addrs);
}

static void relook(pp_loop *loop, pp_timer *t)
{
    (void)loop;
    entry *e = t->data;
    if (!e->lookup)
        start_lookup(e);
}

static entry *entry_find(nodeset *ns, const char *name)
{
    for (entry *e = ns->entries; e; e = e->next)
        if (strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

/* `src` wants `name`: its entry made (and its node) if new. */
static void entry_want(nodeset *ns, const char *name, unsigned src)
{
    entry *e = entry_find(ns, name);
    if (e) {
        e->want |= src;
        return;
    }
    char err[PP_ERR_LEN];
    if (!(e = calloc(1, sizeof *e)) || normalize(name, e->name, e->host, &e->port, err) != 0) {
        free(e);
        pp_log(&ns->s->log, PP_LOG_ERROR, "%s: cannot add the node", name);
        return;
    }
    e->ns = ns;
    e->want = src;
    e->is_name = !is_address(e->host);
    e->relook = (pp_timer){.fn = relook, .data = e};
    e->next = ns->entries;
    ns->entries = e;
    char names[1][NODE_LEN], hosts[1][256];
    snprintf(names[0], NODE_LEN, "%s", e->name);
    snprintf(hosts[0], 256, "%s", e->host);
    reconcile(e, names, hosts, 1);
    /* The first look at a name is its connection's (seen()); then ours. */
    if (e->is_name)
        pp_timer_start(ns->s->loop, &e->relook, pp_now() + ns->resolve_interval);
}

/* `src` no longer wants e: gone (its nodes drain) when nobody does. */
static void entry_unwant(nodeset *ns, entry *e, unsigned src)
{
    e->want &= ~src;
    if (e->want)
        return;
    stop_lookup(e);
    reconcile(e, NULL, NULL, 0);
    for (entry **p = &ns->entries; *p; p = &(*p)->next)
        if (*p == e) {
            *p = e->next;
            break;
        }
    free(e);
}

/* ---- watching nodes files ---- */

static int same_file(const struct stat *a, const struct stat *b)
{
    /* ctime too: chmod o-w mends a refused file without changing its bytes. */
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Reads w's file and makes its entries exactly those listed.  On a read
 * error the nodes stay as they are (logged once per streak). */
static void watch_apply(watch *w)
{
    nodeset *ns = w->ns;
    name_list l;
    struct stat st;
    char err[PP_ERR_LEN];
    if (read_nodes_file(w->key + 1, &l, &st, err) != 0) {
        if (!w->failing)
            pp_log(&ns->s->log, PP_LOG_WARN, "%s; the nodes stay as they were", err);
        w->failing = 1;
        w->applied = w->pending; /* looked at again when it changes */
        w->changing = 0;
        return;
    }
    w->failing = 0;
    w->applied = w->pending = st;
    w->changing = 0;
    for (entry *e = ns->entries, *next; e; e = next) {
        next = e->next;
        if (!(e->want & w->bit))
            continue;
        int listed = 0;
        for (size_t i = 0; i < l.n && !listed; i++)
            listed = strcmp(l.v[i], e->name) == 0;
        if (!listed)
            entry_unwant(ns, e, w->bit);
    }
    for (size_t i = 0; i < l.n; i++)
        entry_want(ns, l.v[i], w->bit);
    names_free(&l);
}

/* A file is applied when a change has held still for one poll. */
static void poll_files(pp_loop *loop, pp_timer *t)
{
    nodeset *ns = t->data;
    for (watch *w = ns->watches; w; w = w->next) {
        struct stat st;
        if (stat(w->key + 1, &st) != 0) {
            if (!w->failing)
                pp_log(&ns->s->log, PP_LOG_WARN, "nodes file %s: %s; the nodes stay as they "
                                                 "were", w->key + 1, strerror(errno));
            w->failing = 1;
            continue;
        }
        if (same_file(&st, &w->applied)) {
            w->changing = 0;
        } else if (w->changing && same_file(&st, &w->pending)) {
            watch_apply(w);
        } else {
            w->pending = st;
            w->changing = 1;
        }
    }
    if (ns->watches)
        pp_timer_start(loop, t, pp_now() + FILE_POLL);
}

static void watch_add(nodeset *ns, const char *key)
{
    for (watch *w = ns->watches; w; w = w->next)
        if (strcmp(w->key, key) == 0)
            return;
    unsigned bit = 0;
    for (int i = 0; i < FILES_MAX && !bit; i++)
        if (!(ns->file_bits & ((unsigned)PP_SRC_FILE0 << i))) /* an enum is an int */
            bit = (unsigned)PP_SRC_FILE0 << i;
    watch *w = bit ? calloc(1, sizeof *w) : NULL;
    if (!w || !(w->key = strdup(key))) {
        free(w);
        pp_log(&ns->s->log, PP_LOG_ERROR, "nodes file %s: cannot watch it (at most %d files)",
               key + 1, FILES_MAX);
        return;
    }
    w->ns = ns;
    w->bit = bit;
    ns->file_bits |= bit;
    w->next = ns->watches;
    ns->watches = w;
    watch_apply(w);
    if (!pp_timer_armed(&ns->poll))
        pp_timer_start(ns->s->loop, &ns->poll, pp_now() + FILE_POLL);
}

static void watch_remove(nodeset *ns, const char *key)
{
    for (watch **p = &ns->watches; *p; p = &(*p)->next) {
        watch *w = *p;
        if (strcmp(w->key, key) != 0)
            continue;
        *p = w->next;
        for (entry *e = ns->entries, *next; e; e = next) {
            next = e->next;
            if (e->want & w->bit)
                entry_unwant(ns, e, w->bit);
        }
        ns->file_bits &= ~w->bit;
        free(w->key);
        free(w);
        return;
    }
}

/* The loop's hook: the requests queued since the last turn. */
static void apply_requests(pp_loop *loop, void *data)
{
    (void)loop;
    nodeset *ns = data;
    pp_server *s = ns->s;
    /* Every turn of the loop comes here: the mutex only when needed. */
    if (!atomic_load_explicit(&s->node_reqs_set, memory_order_acquire))
        return;
    pthread_mutex_lock(&s->mu);
    pp_node_req *reqs = s->node_reqs;
    s->node_reqs = NULL;
    s->node_reqs_applying = reqs; /* until the nodes' states show them */
    atomic_store_explicit(&s->node_reqs_set, 0, memory_order_relaxed);
    pthread_mutex_unlock(&s->mu);
    for (pp_node_req *r = reqs; r; r = r->next) {
        int file = r->text[0] == '@';
        if (r->op == PP_NODES_ADD && file) {
            watch_add(ns, r->text);
        } else if (r->op == PP_NODES_ADD) {
            entry_want(ns, r->text, r->src);
        } else if (file) {
            watch_remove(ns, r->text);
        } else {
            entry *e = entry_find(ns, r->text);
            if (e)
                entry_unwant(ns, e, r->src ? r->src : ~0u); /* 0: every source */
        }
    }
    pthread_mutex_lock(&s->mu);
    s->node_reqs_applying = NULL;
    pthread_mutex_unlock(&s->mu);
    pp_nodes_free_reqs(reqs);
}

void pp_nodes_take(pp_server *s)
{
    apply_requests(s->loop, s->nodeset);
}

int pp_nodes_init(pp_server *s, char *err)
{
    nodeset *ns = calloc(1, sizeof *ns);
    if (!ns) {
        pp_seterr(err, "out of memory");
        return -1;
    }
    ns->s = s;
    ns->poll = (pp_timer){.fn = poll_files, .data = ns};
    ns->resolve_interval = s->resolve_interval;
    s->nodeset = ns;
    if (pp_loop_hook(s->loop, apply_requests, ns) != 0) {
        pp_seterr(err, "cannot set up the event loop");
        return -1;
    }
    return 0;
}

void pp_nodes_shutdown(pp_server *s)
{
    nodeset *ns = s->nodeset;
    if (!ns)
        return;
    pp_timer_stop(s->loop, &ns->poll);
    while (ns->entries) {
        entry *e = ns->entries;
        ns->entries = e->next;
        stop_lookup(e);
        free(e);
    }
    while (ns->watches) {
        watch *w = ns->watches;
        ns->watches = w->next;
        free(w->key);
        free(w);
    }
    for (int i = 0; i < s->nbackends; i++)
        s->backends[i]->node->owner = NULL;
    free(ns);
    s->nodeset = NULL;
}

void pp_nodes_free_reqs(pp_node_req *reqs)
{
    while (reqs) {
        pp_node_req *r = reqs;
        reqs = r->next;
        free(r);
    }
}

/* ---- any thread ---- */

pp_node *pp_node_add_locked(pp_server *s, const char *name, int ncpus, int state)
{
    if (s->nnodes == s->capnodes) {
        int cap = s->capnodes ? s->capnodes * 2 : 8;
        pp_node **v = realloc(s->nodes, (size_t)cap * sizeof *v);
        if (!v)
            return NULL;
        s->nodes = v;
        s->capnodes = cap;
    }
    pp_node *n = aligned_alloc(_Alignof(pp_node), sizeof *n); /* `gone` on a line of its own */
    if (n)
        memset(n, 0, sizeof *n);
    if (!n || !(n->name = strdup(name))) {
        free(n);
        return NULL;
    }
    n->ncpus = ncpus;
    n->state = state;
    s->nodes[s->nnodes++] = n;
    return n;
}

int pp_nodes_request(pp_server *s, pp_node_op op, unsigned src, const char *text)
{
    size_t len = strlen(text) + 1;
    pp_node_req *r = malloc(sizeof *r + len);
    if (!r)
        return -1;
    *r = (pp_node_req){.op = op, .src = src};
    memcpy(r->text, text, len);
    pp_node_req **p = &s->node_reqs;
    while (*p)
        p = &(*p)->next;
    *p = r;
    atomic_store_explicit(&s->node_reqs_set, 1, memory_order_release);
    pp_sched_wake_locked(s);
    return 0;
}

/* Whether `name` is a node now, or will be once the requests queued are
 * applied (mu held).  A name looked up to several addresses is listed as
 * "name (address)". */
static int listed_locked(pp_server *s, const char *name)
{
    int pending = -1; /* the last request about it decides */
    for (pp_node_req *r = s->node_reqs_applying; r; r = r->next)
        if (strcmp(r->text, name) == 0)
            pending = r->op == PP_NODES_ADD;
    for (pp_node_req *r = s->node_reqs; r; r = r->next)
        if (strcmp(r->text, name) == 0)
            pending = r->op == PP_NODES_ADD;
    if (pending >= 0)
        return pending;
    size_t len = strlen(name);
    for (int i = 1; i < s->nnodes; i++) {
        const pp_node *n = s->nodes[i];
        if (n->state != PP_NODE_DRAINING && n->state != PP_NODE_REMOVED &&
            strncmp(n->name, name, len) == 0 &&
            (n->name[len] == 0 || strncmp(n->name + len, " (", 2) == 0))
            return 1;
    }
    return 0;
}

static int files_index_locked(pp_server *s, const char *key)
{
    for (int i = 0; i < s->nfiles; i++)
        if (strcmp(s->files[i], key) == 0)
            return i;
    return -1;
}

/* "*": discovery (discover.c) listens on `port`, joining `group`; one
 * listener per server.  0, or -1 with the reason in err. */
static int discover_locked(pp_server *s, int port, uint32_t group, char *err)
{
    if (s->no_secret) {
        pp_seterr(err, "discovery (\"*\") needs the shared secret: without one nothing "
                       "could tell a node's announcement from anyone's");
        return -1;
    }
    if (s->discover_port) {
        pp_seterr(err, "discovery (\"*\") is already on (UDP port %d)", s->discover_port);
        return -1;
    }
    s->discover_group = group;
    __atomic_store_n(&s->discover_port, port, __ATOMIC_RELEASE); /* discover.c peeks */
    pp_sched_wake_locked(s);
    return 0;
}

/* An entry of the configured list or of pp_add_node(): queued (mu held).
 * 0, or -1 with the reason in err. */
static int add_locked(pp_server *s, const char *text, unsigned src, char *err)
{
    uint32_t group;
    int uport, star = pp_announce_parse_listen(text, &group, &uport, err);
    if (star)
        return star < 0 ? -1 : discover_locked(s, uport, group, err);
    if (text[0] == '@') {
        char *key = file_key(text + 1, err);
        name_list l;
        struct stat st;
        if (!key || read_nodes_file(key + 1, &l, &st, err) != 0) {
            free(key);
            return -1;
        }
        names_free(&l);
        char **v = NULL;
        if (files_index_locked(s, key) >= 0) {
            pp_seterr(err, "nodes file %s: already in use", key + 1);
        } else if (s->nfiles >= FILES_MAX) {
            pp_seterr(err, "nodes file %s: at most %d nodes files", key + 1, FILES_MAX);
        } else if (!(v = realloc(s->files, ((size_t)s->nfiles + 1) * sizeof *v)) ||
                   pp_nodes_request(s, PP_NODES_ADD, src, key) != 0) {
            if (v)
                s->files = v;
            pp_seterr(err, "out of memory");
            v = NULL;
        } else {
            s->files = v;
            s->files[s->nfiles++] = key;
            return 0;
        }
        free(key);
        return -1;
    }
    char name[NAME_LEN], host[256];
    int port;
    if (normalize(text, name, host, &port, err) != 0)
        return -1;
    if (listed_locked(s, name)) {
        pp_seterr(err, "%s is already a node", name);
        return -1;
    }
    /* Its line now (connecting), so that pp_get_active_nodes() lists the
     * nodes as soon as pp_server_new() or pp_add_node() returns. */
    if ((!node_named_locked(s, name) && !pp_node_add_locked(s, name, 0, PP_NODE_CONNECTING)) ||
        pp_nodes_request(s, PP_NODES_ADD, src, name) != 0) {
        pp_seterr(err, "out of memory");
        return -1;
    }
    return 0;
}

/* Whether the configured list has more than LIST_MAX entries: each is
 * checked against those before it, and a list that is outside input must
 * not take minutes (or all memory) to refuse.  0, or -1 with the reason. */
static int list_too_long(const pp_config *cfg, char *err)
{
    size_t n = 0;
    const char *env = cfg->ppservers ? NULL : getenv("PP_SERVERS");
    if (cfg->ppservers)
        while (cfg->ppservers[n] && n <= LIST_MAX)
            n++;
    for (const char *c = env ? strchr(env, ',') : NULL; c && n < LIST_MAX; c = strchr(c + 1, ','))
        n++; /* entries = commas + 1 */
    n += env != NULL;
    if (n <= LIST_MAX)
        return 0;
    pp_seterr(err, "%s: more than %d entries (a nodes file, \"@FILE\", holds up to %d "
                   "nodes; or add them with pp_add_node())",
              env ? "PP_SERVERS" : "pp_config.ppservers", LIST_MAX, NODES_PER_FILE);
    return -1;
}

/* The configured list: pp_config.ppservers, else $PP_SERVERS split at
 * commas.  0, or -1 with the reason in err. */
int pp_nodes_configure(pp_server *s, const pp_config *cfg, int *remote, char *err)
{
    s->resolve_interval = cfg->resolve_interval > 0 ? cfg->resolve_interval : RESOLVE_DEFAULT;
    s->discover_timeout = cfg->discover_timeout;
    s->no_secret = cfg->no_secret;
    if (cfg->max_idle_nodes < -1) {
        pp_seterr(err, "max_idle_nodes must be -1 (never close), 0 (the default, %d) or more, "
                       "not %d", PP_MAX_IDLE_DEFAULT, cfg->max_idle_nodes);
        return -1;
    }
    s->max_idle_nodes = cfg->max_idle_nodes ? cfg->max_idle_nodes : PP_MAX_IDLE_DEFAULT;
    int n = 0, rc = 0;
    if (list_too_long(cfg, err) != 0)
        return -1;
    pthread_mutex_lock(&s->mu);
    if (cfg->ppservers) {
        for (; rc == 0 && cfg->ppservers[n]; n++)
            rc = add_locked(s, cfg->ppservers[n], PP_SRC_LIST, err);
    } else if (getenv("PP_SERVERS")) {
        char *list = strdup(getenv("PP_SERVERS")), *save = NULL;
        if (!list) {
            pp_seterr(err, "out of memory");
            rc = -1;
        }
        for (char *t = list ? strtok_r(list, ",", &save) : NULL; t && rc == 0;
             t = strtok_r(NULL, ",", &save)) {
            while (*t == ' ' || *t == '\t')
                t++;
            size_t len = strlen(t);
            while (len && (t[len - 1] == ' ' || t[len - 1] == '\t'))
                t[--len] = 0;
            if (len && (rc = add_locked(s, t, PP_SRC_LIST, err)) == 0)
                n++;
        }
        if (rc != 0) {
            char why[PP_ERR_LEN];
            snprintf(why, sizeof why, "%s", err);
            pp_seterr(err, "PP_SERVERS: %s", why);
        }
        free(list);
    }
    pthread_mutex_unlock(&s->mu);
    *remote = n > 0;
    return rc;
}

PP_API int pp_add_node(pp_server *s, const char *node)
{
    if (!s || !node) {
        pp_set_error("pp_add_node: NULL %s", !s ? "server" : "node");
        return -1;
    }
    if (pp_forked(s, "pp_add_node"))
        return -1;
    char err[PP_ERR_LEN] = "";
    int rc = -1;
    pthread_mutex_lock(&s->mu);
    if (s->stopping)
        pp_seterr(err, "the server is shutting down");
    else if (!s->have_key)
        pp_seterr(err, "remote nodes need the shared secret, given to pp_server_new() "
                       "(pp_config.secret or secret_file, or PP_SECRET or PP_SECRET_FILE)");
    else
        rc = add_locked(s, node, PP_SRC_API, err);
    pthread_mutex_unlock(&s->mu);
    if (rc != 0)
        pp_set_error("pp_add_node: %s", err);
    return rc;
}

PP_API int pp_remove_node(pp_server *s, const char *node)
{
    if (!s || !node) {
        pp_set_error("pp_remove_node: NULL %s", !s ? "server" : "node");
        return -1;
    }
    if (pp_forked(s, "pp_remove_node"))
        return -1;
    char err[PP_ERR_LEN] = "", name[NAME_LEN], host[256];
    int port, rc = -1;
    char *key = node[0] == '@' ? file_key(node + 1, err) : NULL;
    if (node[0] != '@' && normalize(node, name, host, &port, err) != 0) {
        pp_set_error("pp_remove_node: %s", err);
        return -1;
    }
    pthread_mutex_lock(&s->mu);
    int fi = key ? files_index_locked(s, key) : -1;
    if (node[0] == '@' && !key) {
        /* err says why */
    } else if (key && fi < 0) {
        pp_seterr(err, "nodes file %s is not in use", key + 1);
    } else if (!key && !listed_locked(s, name)) {
        pp_seterr(err, "%s is not a node of this server (or is already removed)", name);
    } else if (pp_nodes_request(s, PP_NODES_REMOVE, 0, key ? key : name) != 0) {
        pp_seterr(err, "out of memory");
    } else {
        if (key) {
            free(s->files[fi]);
            s->files[fi] = s->files[--s->nfiles];
        }
        rc = 0;
    }
    pthread_mutex_unlock(&s->mu);
    free(key);
    if (rc != 0)
        pp_set_error("pp_remove_node: %s", err);
    return rc;
}
