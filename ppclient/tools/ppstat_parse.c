/* SPDX-License-Identifier: MIT */
/* ppstat_parse.c -- the STATUS reply, checked line by line against a table
 * of the kinds, their order and their keys (each exactly once). */
#include "ppstat_parse.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const ppstat_run_le[PPSTAT_RUN_BUCKETS - 1] = {
    "0.001", "0.005", "0.01", "0.05", "0.1", "0.5", "1", "5", "10", "60", "300", "1800"};

#define MINI(a, b) ((a) < (b) ? (a) : (b))

typedef enum { F_U64, F_SEC, F_TOKEN, F_STATE } ftype;

typedef struct field {
    const char *key;
    ftype type;
    size_t off;               /* in the struct the line fills */
} field;

#define N(k, t, m) {k, t, offsetof(ppstat_node, m)}
#define W(k, t, m) {k, t, offsetof(ppstat_worker, m)}
#define C(k, t, m) {k, t, offsetof(ppstat_client, m)}
#define RUN(i) {NULL, F_U64, offsetof(ppstat_node, run) + (i) * sizeof(uint64_t)}

static const field node_f[] = {N("version", F_TOKEN, version), N("uptime", F_SEC, uptime),
                               N("port", F_U64, port), N("accepted", F_U64, accepted),
                               N("bytes_in", F_U64, bytes_in), N("bytes_out", F_U64, bytes_out),
                               {0}};
static const field workers_f[] = {N("target", F_U64, workers_target),
                                  N("busy", F_U64, workers_busy),
                                  N("idle", F_U64, workers_idle), {"listed", F_U64, 0}, {0}};
static const field worker_f[] = {W("pid", F_U64, pid),       W("inflight", F_U64, inflight),
                                 W("busy", F_U64, busy),     W("client", F_TOKEN, client),
                                 W("job", F_U64, job),       W("run", F_SEC, run),
                                 {0}};
static const field conns_f[] = {N("hello", F_U64, conns_hello), N("auth", F_U64, conns_auth),
                                N("ready", F_U64, conns_ready),
                                N("closing", F_U64, conns_closing), {"listed", F_U64, 0}, {0}};
static const field client_f[] = {
    C("addr", F_TOKEN, addr),          C("state", F_STATE, state),
    C("connected", F_SEC, connected),  C("queued", F_U64, queued),
    C("running", F_U64, running),      C("done", F_U64, done),
    C("failed", F_U64, failed),        C("bytes_in", F_U64, bytes_in),
    C("bytes_out", F_U64, bytes_out),  {0}};
static const field queue_f[] = {N("depth", F_U64, queue_depth), N("running", F_U64, running),
                                {0}};
static const field jobs_f[] = {N("done", F_U64, done),       N("failed", F_U64, failed),
                               N("crashed", F_U64, crashed), N("timeout", F_U64, timeout),
                               N("lost", F_U64, lost),       N("cancelled", F_U64, cancelled),
                               N("eload", F_U64, eload),     {0}};
static const field runtime_f[] = {RUN(0), RUN(1), RUN(2),  RUN(3),  RUN(4),
                                  RUN(5), RUN(6), RUN(7),  RUN(8),  RUN(9),
                                  RUN(10), RUN(11), {"inf", F_U64, offsetof(ppstat_node, run) + 12 * sizeof(uint64_t)},
                                  N("sum", F_SEC, run_sum), {0}};
static const field modules_f[] = {N("cached", F_U64, modules), N("wanted", F_U64, modules_wanted),
                                  N("bytes", F_U64, cache_bytes), N("max", F_U64, cache_max),
                                  N("evictions", F_U64, cache_evictions), {0}};
static const field auth_f[] = {N("failures", F_U64, auth_failures),
                               N("wrong_proof", F_U64, wrong_proof),
                               N("tls_key", F_U64, tls_key),
                               N("lockout", F_U64, lockout),
                               N("connections", F_U64, ref_connections),
                               N("per_address", F_U64, ref_per_address),
                               N("handshakes", F_U64, ref_handshakes), {0}};
static const field errors_f[] = {N("handshake", F_U64, handshake_errors),
                                 N("frame", F_U64, frame_errors), {0}};

/* The lines in their order; worker and client lines repeat "listed" times. */
typedef enum { K_NODE, K_WORKERS, K_WORKER, K_CONNS, K_CLIENT, K_QUEUE, K_JOBS, K_RUNTIME,
               K_MODULES, K_AUTH, K_ERRORS, K_END, K_COUNT } kind;
static const struct {
    const char *name;
    const field *f;
} kinds[K_COUNT] = {
    {"node", node_f},       {"workers", workers_f}, {"worker", worker_f},
    {"conns", conns_f},     {"client", client_f},   {"queue", queue_f},
    {"jobs", jobs_f},       {"runtime", runtime_f}, {"modules", modules_f},
    {"auth", auth_f},       {"errors", errors_f},   {"end", NULL},
};

typedef struct parser {
    char *err;
    size_t errlen;
    int line;
} parser;

static int fail(parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(parser *p, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (p->line > 0)
        snprintf(p->err, p->errlen, "malformed status reply, line %d: %s", p->line, msg);
    else
        snprintf(p->err, p->errlen, "malformed status reply: %s", msg);
    return -1;
}

static int is_token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("._:[]-", c) != NULL);
}

/* A decimal integer of at most 20 digits that fits 64 bits. */
static int parse_u64(const char *v, size_t n, uint64_t *out)
{
    if (n == 0 || n > 20)
        return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        unsigned d = (unsigned)(v[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

/* Seconds: digits, an optional '.' and digits; at most 24 bytes. */
static int parse_sec(const char *v, size_t n, double *out)
{
    char buf[25];
    int dots = 0;
    if (n == 0 || n >= sizeof buf || v[0] == '.' || v[n - 1] == '.')
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (v[i] == '.')
            dots++;
        else if (v[i] < '0' || v[i] > '9')
            return -1;
    }
    if (dots > 1)
        return -1;
    memcpy(buf, v, n);
    buf[n] = 0;
    errno = 0;
    double d = strtod(buf, NULL);
    if (errno || !isfinite(d))
        return -1;
    *out = d;
    return 0;
}

static int parse_value(parser *p, const field *f, const char *key, const char *v, size_t n,
                       char *base)
{
    static const char *const states[] = {"hello", "auth", "ready", "closing"};
    if (f->type == F_U64 && parse_u64(v, n, (uint64_t *)(void *)(base + f->off)) == 0)
        return 0;
    if (f->type == F_SEC && parse_sec(v, n, (double *)(void *)(base + f->off)) == 0)
        return 0;
    if (f->type == F_TOKEN || f->type == F_STATE) {
        int ok = n > 0 && n < PPSTAT_TOKEN_MAX;
        for (size_t i = 0; ok && i < n; i++)
            ok = is_token_char(v[i]);
        for (size_t i = 0; ok && f->type == F_STATE && i <= sizeof states / sizeof *states; i++) {
            if (i == sizeof states / sizeof *states)
                ok = 0;
            else if (strlen(states[i]) == n && memcmp(states[i], v, n) == 0)
                break;
        }
        if (ok) {
            char *dst = base + f->off;
            int none = n == 1 && v[0] == '-';
            memcpy(dst, v, none ? 0 : n);
            dst[none ? 0 : n] = 0;
            return 0;
        }
    }
    return fail(p, "bad value for %s", key);
}

/* The field named key[0..klen) of table f, or NULL. */
static const field *find(const field *f, const char *key, size_t klen, size_t *idx)
{
    char name[16];
    for (size_t i = 0; f[i].key || f[i].off || f[i].type; i++) {
        const char *k = f[i].key;
        if (!k) { /* a run-time bucket: "le" + its bound */
            snprintf(name, sizeof name, "le%s", ppstat_run_le[i]);
            k = name;
        }
        if (strlen(k) == klen && memcmp(k, key, klen) == 0) {
            *idx = i;
            return &f[i];
        }
    }
    return NULL;
}

/* One line's "key=value" fields into base; each key exactly once.
 * *listed gets the "listed" value (0 when the kind has none). */
static int parse_fields(parser *p, const field *f, const char *s, const char *end, char *base,
                        uint64_t *listed)
{
    uint64_t seen = 0, want = 0;
    size_t nf = 0;
    while (f[nf].key || f[nf].off || f[nf].type)
        nf++;
    want = nf >= 64 ? UINT64_MAX : (1ull << nf) - 1;
    *listed = 0;
    while (s < end) {
        if (*s != ' ')
            return fail(p, "expected a space before a field");
        s++;
        const char *sp = memchr(s, ' ', (size_t)(end - s)), *fe = sp ? sp : end;
        const char *eq = memchr(s, '=', (size_t)(fe - s));
        if (!eq || eq == s)
            return fail(p, "expected key=value");
        size_t idx;
        const field *fd = find(f, s, (size_t)(eq - s), &idx);
        if (!fd)
            return fail(p, "unknown key \"%.*s\"", (int)MINI(eq - s, 32), s);
        if (seen & (1ull << idx))
            return fail(p, "key \"%.*s\" given twice", (int)MINI(eq - s, 32), s);
        seen |= 1ull << idx;
        char key[40];
        snprintf(key, sizeof key, "%.*s", (int)MINI(eq - s, 32), s);
        if (fd->key && strcmp(fd->key, "listed") == 0) {
            if (parse_u64(eq + 1, (size_t)(fe - eq - 1), listed) != 0 || *listed > PPSTAT_LIST_MAX)
                return fail(p, "bad value for listed (at most %d)", PPSTAT_LIST_MAX);
        } else if (parse_value(p, fd, key, eq + 1, (size_t)(fe - eq - 1), base) != 0) {
            return -1;
        }
        s = fe;
    }
    return seen == want ? 0 : fail(p, "a key is missing");
}

/* The next line: [*s, *eol) without its "\n"; printable ASCII only. */
static int next_line(parser *p, const char **s, const char *end, const char **eol)
{
    p->line++;
    if (*s >= end)
        return fail(p, "truncated (no \"end\" line)");
    size_t room = MINI((size_t)(end - *s), (size_t)PPSTAT_LINE_MAX);
    const char *nl = memchr(*s, '\n', room);
    if (!nl)
        return fail(p, room == PPSTAT_LINE_MAX ? "longer than %d bytes" : "truncated line",
                    PPSTAT_LINE_MAX);
    for (const char *c = *s; c < nl; c++)
        if (*c < 0x20 || *c > 0x7e)
            return fail(p, "a byte that is not printable ASCII (0x%02x)", (unsigned char)*c);
    *eol = nl;
    return 0;
}

/* A line of kind k: its name, then its fields into base. */
static int parse_line(parser *p, kind k, const char **s, const char *end, char *base,
                      uint64_t *listed)
{
    const char *eol = NULL;
    if (next_line(p, s, end, &eol) != 0)
        return -1;
    size_t kl = strlen(kinds[k].name);
    if ((size_t)(eol - *s) < kl || memcmp(*s, kinds[k].name, kl) != 0 ||
        (*s + kl < eol && (*s)[kl] != ' '))
        return fail(p, "expected a \"%s\" line", kinds[k].name);
    int rc = 0;
    *listed = 0;
    if (kinds[k].f)
        rc = parse_fields(p, kinds[k].f, *s + kl, eol, base, listed);
    else if (*s + kl != eol)
        rc = fail(p, "\"%s\" takes no fields", kinds[k].name);
    *s = eol + 1;
    return rc;
}

/* "listed" lines of a list kind into a new array of elements of size sz. */
static int parse_list(parser *p, kind k, const char **s, const char *end, uint64_t listed,
                      size_t sz, void **out, size_t *n)
{
    char *arr = listed ? calloc((size_t)listed, sz) : NULL;
    if (listed && !arr)
        return fail(p, "out of memory");
    *out = arr;
    for (uint64_t i = 0; i < listed; i++) {
        uint64_t none;
        if (parse_line(p, k, s, end, arr + i * sz, &none) != 0)
            return -1;
        *n = (size_t)i + 1;
    }
    return 0;
}

int ppstat_parse(const char *text, size_t len, ppstat_node *out, char *err, size_t errlen)
{
    parser p = {.err = err, .errlen = errlen};
    memset(out, 0, sizeof *out);
    const char *s = text, *end = text + len;
    static const char head[] = "pp-status 1\n";
    int rc = -1;
    if (len > PPSTAT_REPLY_MAX)
        fail(&p, "larger than %u bytes", PPSTAT_REPLY_MAX);
    else if (len < sizeof head - 1 || memcmp(text, head, sizeof head - 1) != 0)
        fail(&p, "not a version 1 status (first line \"pp-status 1\")");
    else
        rc = 0;
    p.line = 1;
    s += sizeof head - 1;
    for (kind k = K_NODE; rc == 0 && k < K_COUNT; k++) {
        uint64_t listed = 0;
        rc = parse_line(&p, k, &s, end, (char *)out, &listed);
        if (rc == 0 && k == K_WORKERS)
            rc = parse_list(&p, K_WORKER, &s, end, listed, sizeof(ppstat_worker),
                            (void **)&out->workers, &out->nworkers);
        else if (rc == 0 && k == K_CONNS)
            rc = parse_list(&p, K_CLIENT, &s, end, listed, sizeof(ppstat_client),
                            (void **)&out->clients, &out->nclients);
        if (k == K_WORKERS || k == K_CONNS)
            k++; /* the list kind was read just now */
    }
    if (rc == 0 && s != end)
        rc = fail(&p, "bytes after the \"end\" line");
    if (rc != 0)
        ppstat_node_free(out);
    return rc;
}

void ppstat_node_free(ppstat_node *n)
{
    if (!n)
        return;
    free(n->workers);
    free(n->clients);
    memset(n, 0, sizeof *n);
}
