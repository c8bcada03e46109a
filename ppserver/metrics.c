/* SPDX-License-Identifier: MIT */
/* metrics.c -- ppserver --metrics: libmicrohttpd serving GET /metrics
 * (loaded only then: mhd.h).
 *
 * Why on the server's loop and not in a thread of its own: every counter
 * and list the snapshot reads (status_collect(): srv->stats, the sessions,
 * the pool, the module table) belongs to the loop's thread, which takes no
 * lock.  So libmicrohttpd runs in "external epoll" mode: its epoll fd is
 * one more watcher of pp_loop, and MHD_run() is called from that watcher
 * and from a timer set to MHD_get_timeout(); the snapshot is taken right
 * there, between two events of the loop, with no mutex and nothing to
 * publish.  What a scraper may cost the node is
 * bounded instead: few connections (all and per address), a small memory
 * limit per connection (a huge header gets 431 and a close), an idle
 * timeout, and a rendered page reused for SCRAPE_REUSE seconds, so that a
 * flood of requests costs one snapshot per interval, not one each. */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mhd.h"
#include "pp_common.h"
#include "pp_net.h"

/* Bounds on what scrapers may hold (a Prometheus server needs one
 * connection). */
#define SCRAPE_CONNECTIONS 16u    /* connections at once */
#define SCRAPE_PER_ADDRESS 8u     /* from one address */
#define SCRAPE_IDLE_TIMEOUT 10u   /* seconds a connection may be idle */
#define SCRAPE_CONN_MEMORY 16384u /* bytes per connection: request line + headers */
#define SCRAPE_REUSE 0.1          /* seconds a rendered page is served again */
#define SCRAPE_PAGE_MAX (4u << 20) /* a page never grows beyond this */

#define METRICS_CTYPE "text/plain; version=0.0.4; charset=utf-8"

struct metrics {
    server *srv;
    mhd_api mhd;              /* libmicrohttpd, loaded at start (mhd.h) */
    struct MHD_Daemon *d;
    pp_io io;                 /* MHD's epoll fd, watched by the loop */
    pp_timer timer;           /* MHD_get_timeout()'s deadline */
    int port;
    char where[80];           /* "addr:port", for the log */
    struct MHD_Response *page; /* the last page rendered, or NULL */
    double page_at;           /* when (pp_now()) */
};

int metrics_parse_addr(const char *s, char *host, size_t hostlen, int *port, char *err)
{
    const char *colon = s ? strrchr(s, ':') : NULL, *h = s;
    size_t hl = colon ? (size_t)(colon - s) : 0;
    if (colon && s[0] == '[') {
        if (hl < 2 || s[hl - 1] != ']') {
            pp_seterr(err, "--metrics %s: write an IPv6 address as [ADDR]:PORT", s);
            return -1;
        }
        h = s + 1;
        hl -= 2;
    }
    unsigned char bin[16];
    char *end = NULL;
    long p = -1;
    if (colon && colon[1] >= '0' && colon[1] <= '9') {
        errno = 0;
        p = strtol(colon + 1, &end, 10);
        if (errno || *end)
            p = -1;
    }
    if (!colon || hl == 0 || hl >= hostlen || p < 0 || p > 65535) {
        pp_seterr(err, "--metrics %s: expected ADDR:PORT, e.g. 127.0.0.1:9464 (a numeric "
                       "address, [ADDR] for IPv6; PORT 0 to 65535)", s ? s : "(none)");
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = 0;
    if (inet_pton(h == s ? AF_INET : AF_INET6, host, bin) != 1) {
        pp_seterr(err, "--metrics %s: \"%s\" is not a numeric %s address", s, host,
                  h == s ? "IPv4" : "IPv6");
        return -1;
    }
    *port = (int)p;
    return 0;
}

/* A fixed short answer (404, 405). */
static enum MHD_Result answer_text(const mhd_api *mhd, struct MHD_Connection *conn,
                                   unsigned code, const char *text, const char *allow)
{
    struct MHD_Response *r =
        mhd->create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    mhd->add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    if (allow)
        mhd->add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result rc = mhd->queue_response(conn, code, r);
    mhd->destroy_response(r);
    return rc;
}

/* The page for now: the one rendered less than SCRAPE_REUSE ago, or a new
 * one from a fresh snapshot.  NULL when it cannot be made. */
static struct MHD_Response *current_page(metrics *m)
{
    double now = pp_now();
    if (m->page && now - m->page_at < SCRAPE_REUSE)
        return m->page;
    node_status st;
    pp_buf out;
    pp_buf_init(&out, SCRAPE_PAGE_MAX);
    int rc = status_collect(m->srv, &st);
    if (rc == 0) {
        rc = metrics_render(&st, &out);
        status_free(&st);
    }
    size_t len = 0;
    void *text = pp_buf_take(&out, &len);
    struct MHD_Response *r = NULL;
    if (rc == 0 && text)
        r = m->mhd.create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        pp_log(&m->srv->log, PP_LOG_WARN, "metrics: cannot make the page (out of memory "
                                          "or over %u bytes)", SCRAPE_PAGE_MAX);
        return NULL;
    }
    m->mhd.add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, METRICS_CTYPE);
    if (m->page)
        m->mhd.destroy_response(m->page);
    m->page = r;
    m->page_at = now;
    return r;
}

/* Every request, at its first call (no request here has a body worth
 * reading: anything but GET/HEAD is refused before it is read). */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    metrics *m = cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return answer_text(&m->mhd, conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: GET "
                           "/metrics\n", "GET, HEAD");
    if (strcmp(url, "/metrics") != 0)
        return answer_text(&m->mhd, conn, MHD_HTTP_NOT_FOUND, "not found: the metrics are on "
                           "/metrics\n", NULL);
    struct MHD_Response *r = current_page(m);
    if (!r)
        return answer_text(&m->mhd, conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "no metrics\n", NULL);
    return m->mhd.queue_response(conn, MHD_HTTP_OK, r);
}

/* After each MHD_run(): the loop must call it again by MHD's deadline
 * (idle connections to close, data it already holds). */
static void rearm(metrics *m)
{
    MHD_UNSIGNED_LONG_LONG ms = 0;
    if (m->mhd.get_timeout(m->d, &ms) == MHD_YES)
        pp_timer_start(m->srv->loop, &m->timer, pp_now() + (double)ms / 1000.0);
    else if (pp_timer_armed(&m->timer))
        pp_timer_stop(m->srv->loop, &m->timer);
}

static void on_io(pp_loop *loop, pp_io *io, unsigned events)
{
    (void)loop;
    (void)events;
    metrics *m = io->data;
    m->mhd.run(m->d);
    rearm(m);
}

static void on_timer(pp_loop *loop, pp_timer *t)
{
    (void)loop;
    metrics *m = t->data;
    m->mhd.run(m->d);
    rearm(m);
}

/* Binds host:port (numeric); the fd, or -1 with err. */
static int open_listener(metrics *m, const char *host, int port, char *err)
{
    char why[PP_ERR_LEN];
    int fd = pp_net_listen(host, port, 16, &m->port, why);
    if (fd < 0) {
        pp_seterr(err, "--metrics: %s", why);
        return -1;
    }
    snprintf(m->where, sizeof m->where, strchr(host, ':') ? "[%.50s]:%d" : "%.50s:%d", host,
             m->port);
    return fd;
}

/* The daemon on fd, in external epoll mode.  0, or -1 with err (fd then
 * closed either way: MHD owns it once started). */
static int start_daemon(metrics *m, int fd, char *err)
{
    m->d = m->mhd.start_daemon(MHD_USE_EPOLL, 0, NULL, NULL, on_request, m,
                            MHD_OPTION_LISTEN_SOCKET, fd,
                            MHD_OPTION_CONNECTION_LIMIT, SCRAPE_CONNECTIONS,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, SCRAPE_PER_ADDRESS,
                            MHD_OPTION_CONNECTION_TIMEOUT, SCRAPE_IDLE_TIMEOUT,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)SCRAPE_CONN_MEMORY,
                            MHD_OPTION_END);
    if (!m->d) {
        /* Whether a daemon that failed to start closed it varies. */
        if (fcntl(fd, F_GETFD) != -1)
            close(fd);
        pp_seterr(err, "--metrics %s: cannot start the HTTP server (libmicrohttpd)", m->where);
        return -1;
    }
    const union MHD_DaemonInfo *info = m->mhd.get_daemon_info(m->d, MHD_DAEMON_INFO_EPOLL_FD);
    m->io = (pp_io){.fd = info ? info->epoll_fd : -1, .fn = on_io, .data = m};
    if (m->io.fd < 0 || pp_loop_add(m->srv->loop, &m->io, PP_EV_READ) != 0) {
        pp_seterr(err, "--metrics %s: cannot watch the HTTP server", m->where);
        return -1;
    }
    return 0;
}

metrics *metrics_start(server *srv, const char *addr, char *err)
{
    char host[64];
    int port;
    if (metrics_parse_addr(addr, host, sizeof host, &port, err) != 0)
        return NULL;
    metrics *m = calloc(1, sizeof *m);
    if (!m) {
        pp_seterr(err, "out of memory");
        return NULL;
    }
    m->srv = srv;
    m->io.fd = -1;
    m->timer = (pp_timer){.fn = on_timer, .data = m};
    if (mhd_load(&m->mhd, err) != 0) {
        free(m);
        return NULL;
    }
    int fd = open_listener(m, host, port, err);
    if (fd < 0 || start_daemon(m, fd, err) != 0) {
        metrics_stop(m);
        return NULL;
    }
    rearm(m);
    pp_log(&srv->log, PP_LOG_INFO, "metrics on http://%s/metrics", m->where);
    return m;
}

int metrics_port(const metrics *m)
{
    return m ? m->port : -1;
}

void metrics_stop(metrics *m)
{
    if (!m)
        return;
    if (pp_timer_armed(&m->timer))
        pp_timer_stop(m->srv->loop, &m->timer);
    if (m->io.added || m->io.events)
        pp_loop_del(m->srv->loop, &m->io);
    if (m->d)
        m->mhd.stop_daemon(m->d);
    if (m->page)
        m->mhd.destroy_response(m->page);
    mhd_unload(&m->mhd);
    free(m);
}

/* ---- the exposition (text format 0.0.4) ---- */

/* Appends to a page, remembering the first failure, so that the series
 * below read as a list. */
typedef struct page {
    pp_buf *b;
    int bad;
} page;

static void put(page *p, const char *fmt, ...) PP_PRINTF(2, 3);
static void put(page *p, const char *fmt, ...)
{
    if (p->bad)
        return;
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof small || pp_buf_append(p->b, small, (size_t)n) != 0)
        p->bad = 1; /* our lines are short: a longer one is a bug, not data */
}

/* A label value as the format wants it: backslash, double quote and line
 * feed escaped (a client address or reason may hold anything). */
static void put_label(page *p, const char *v)
{
    for (; *v && !p->bad; v++) {
        const char *esc = *v == '\\' ? "\\\\" : *v == '"' ? "\\\"" : NULL;
        if (*v == '\n')
            esc = "\\n";
        if (esc)
            put(p, "%s", esc);
        else if (pp_buf_append(p->b, v, 1) != 0)
            p->bad = 1;
    }
}

/* "# HELP" (its text may not hold a backslash or line feed: ours do not)
 * and "# TYPE" of a family. */
static void family(page *p, const char *name, const char *type, const char *help)
{
    put(p, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{label="value"} v, or name v when label is NULL. */
static void sample(page *p, const char *name, const char *label, const char *value,
                   unsigned long long v)
{
    if (!label) {
        put(p, "%s %llu\n", name, v);
        return;
    }
    put(p, "%s{%s=\"", name, label);
    put_label(p, value);
    put(p, "\"} %llu\n", v);
}

/* A family of one unlabelled sample. */
static void single(page *p, const char *name, const char *type, const char *help,
                   unsigned long long v)
{
    family(p, name, type, help);
    sample(p, name, NULL, NULL, v);
}

/* A histogram: `counts` per bucket (not cumulative; n bounds `le`, the
 * last bucket's count in counts[n] is above them all), their sum. */
static void histogram(page *p, const char *name, const char *help, const double *le,
                      const uint64_t *counts, size_t n, double sum)
{
    family(p, name, "histogram", help);
    unsigned long long cum = 0;
    for (size_t i = 0; i <= n; i++) {
        cum += counts[i];
        if (i < n)
            put(p, "%s_bucket{le=\"%.9g\"} %llu\n", name, le[i], cum);
        else
            put(p, "%s_bucket{le=\"+Inf\"} %llu\n", name, cum);
    }
    put(p, "%s_sum %.9g\n%s_count %llu\n", name, sum, name, cum);
}

/* Jobs: by outcome, run time, where they wait. */
static void render_jobs(page *p, const node_status *st)
{
    family(p, "ppserver_jobs_total", "counter",
           "Jobs ended on this node, by outcome (eload: its module could not be had).");
    for (int i = PP_DONE; i < SRV_STATUSES; i++)
        if (status_outcome_name(i))
            sample(p, "ppserver_jobs_total", "outcome", status_outcome_name(i), st->jobs[i]);
#define SRV_RUN_ITEM(v) v,
    static const double le[] = {SRV_RUN_LE(SRV_RUN_ITEM)};
#undef SRV_RUN_ITEM
    histogram(p, "ppserver_job_run_seconds", "Run time of the jobs on the workers.", le,
              st->run, SRV_RUN_BUCKETS, st->run_seconds);
    single(p, "ppserver_jobs_queued", "gauge", "Jobs received and not on a worker yet "
           "(queued, waiting for their module or for the byte budgets).", st->queue_depth);
    single(p, "ppserver_jobs_running", "gauge", "Jobs on the workers now.", st->running);
}

/* Workers, and the module cache. */
static void render_workers(page *p, const node_status *st)
{
    family(p, "ppserver_workers", "gauge", "Worker processes up, by state.");
    sample(p, "ppserver_workers", "state", "busy", (unsigned long long)st->workers_busy);
    sample(p, "ppserver_workers", "state", "idle", (unsigned long long)st->workers_idle);
    single(p, "ppserver_module_cache_modules", "gauge", "Task modules in the cache.",
           st->modules);
    single(p, "ppserver_module_cache_bytes", "gauge", "Bytes of the task modules in the cache.",
           st->cache_bytes);
    single(p, "ppserver_module_cache_limit_bytes", "gauge",
           "Bytes the module cache may hold (0: no limit).", st->cache_max);
    single(p, "ppserver_module_cache_evictions_total", "counter",
           "Task modules evicted from the cache.", st->cache_evictions);
}

/* Connections: by state, refused, failed; bytes over them. */
static void render_conns(page *p, const node_status *st)
{
    family(p, "ppserver_connections", "gauge", "Client connections now, by state.");
    sample(p, "ppserver_connections", "state", "handshake",
           st->conns[S_HELLO] + st->conns[S_AUTH]);
    sample(p, "ppserver_connections", "state", "ready", st->conns[S_READY]);
    sample(p, "ppserver_connections", "state", "closing", st->conns[S_CLOSING]);
    single(p, "ppserver_connections_accepted_total", "counter",
           "Connections taken (not refused at once).", st->accepted);
    family(p, "ppserver_auth_failures_total", "counter",
           "Wrong secrets: a wrong inner proof, or a TLS handshake that failed on the key.");
    for (int r = SRV_REF_WRONG_PROOF; r <= SRV_REF_TLS_KEY; r++)
        sample(p, "ppserver_auth_failures_total", "reason", status_refusal_name(r),
               st->refused[r]);
    family(p, "ppserver_connections_refused_total", "counter",
           "Connections refused or closed by a limit, by reason.");
    for (int r = SRV_REF_LOCKOUT; r < SRV_REFUSALS; r++)
        sample(p, "ppserver_connections_refused_total", "reason", status_refusal_name(r),
               st->refused[r]);
    single(p, "ppserver_handshake_errors_total", "counter", "Handshakes that failed other than "
           "on the secret (timeout, version or TLS mismatch, garbage, hang-up).",
           st->handshake_errors);
    single(p, "ppserver_frame_errors_total", "counter",
           "Authenticated clients cut off for a malformed or unexpected frame.", st->frame_errors);
    single(p, "ppserver_received_bytes_total", "counter",
           "Bytes received from clients (frames; TLS overhead not counted).", st->bytes_in);
    single(p, "ppserver_sent_bytes_total", "counter",
           "Bytes sent to clients (frames; TLS overhead not counted).", st->bytes_out);
}

int metrics_render(const node_status *st, pp_buf *out)
{
    page p = {.b = out};
    family(&p, "ppserver_build_info", "gauge", "The ppserver version, as a label (always 1).");
    sample(&p, "ppserver_build_info", "version", st->version, 1);
    family(&p, "ppserver_uptime_seconds", "gauge", "Seconds since ppserver started.");
    put(&p, "ppserver_uptime_seconds %.3f\n", st->uptime);
    render_jobs(&p, st);
    render_workers(&p, st);
    render_conns(&p, st);
    return p.bad ? -1 : 0;
}
