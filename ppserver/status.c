/* SPDX-License-Identifier: MIT */
/* status.c -- the node's status: the snapshot (status.h), its text for the
 * STATUS reply and its summary in the log (SIGUSR1).
 *
 * The reply's format, version 1: lines of ASCII ending in "\n", each
 * "kind key=value key=value ...", values made of [A-Za-z0-9._:[]-] only
 * (anything else is written as '_'), numbers in decimal.  In order:
 *   pp-status 1
 *   node version= uptime= port= accepted= bytes_in= bytes_out=
 *   workers target= busy= idle= listed=
 *   worker pid= inflight= busy= client= job= run=       (listed times;
 *                                                         client=- when idle)
 *   conns hello= auth= ready= closing= listed=
 *   client addr= state= connected= queued= running= done= failed= bytes_in= bytes_out=
 *   queue depth= running=
 *   jobs done= failed= crashed= timeout= lost= cancelled= eload=
 *   runtime le0.001= ... le1800= inf= sum=
 *   modules cached= wanted= bytes= max= evictions=
 *   auth failures= wrong_proof= tls_key= lockout= connections= per_address= handshakes=
 *   errors handshake= frame=
 *   end
 * At most STATUS_LIST_MAX workers and clients are listed ("listed=" says
 * how many follow; busy/idle and the conns counts are of all). */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp.h"
#include "pp_common.h"
#include "pp_pool.h"

/* Workers and clients listed in a reply at most: bounds the reply (lines
 * of at most ~330 bytes) well under PP_STATUS_REPLY_MAX. */
#define STATUS_LIST_MAX 1024
/* Clients and workers named one a line in the SIGUSR1 summary. */
#define STATUS_LOG_LINES 32

const char *status_state_name(session_state s)
{
    static const char *const names[] = {"hello", "auth", "ready", "closing"};
    return (unsigned)s < PP_ARRAY_LEN(names) ? names[s] : "unknown";
}

const char *status_refusal_name(srv_refusal r)
{
    static const char *const names[SRV_REFUSALS] = {
        [SRV_REF_WRONG_PROOF] = "wrong_proof", [SRV_REF_TLS_KEY] = "tls_key",
        [SRV_REF_LOCKOUT] = "lockout",         [SRV_REF_CONNECTIONS] = "connections",
        [SRV_REF_PER_ADDRESS] = "per_address", [SRV_REF_HANDSHAKES] = "handshakes",
    };
    return (unsigned)r < SRV_REFUSALS ? names[r] : "unknown";
}

const char *status_outcome_name(int status)
{
    static const char *const names[] = {
        [PP_DONE] = "done",       [PP_FAILED] = "failed", [PP_CRASHED] = "crashed",
        [PP_TIMEOUT] = "timeout", [PP_LOST] = "lost",     [PP_CANCELLED] = "cancelled",
        [PP_ELOAD] = "eload",
    };
    return status >= 0 && (size_t)status < PP_ARRAY_LEN(names) ? names[status] : NULL;
}

void status_free(node_status *st)
{
    if (!st)
        return;
    free(st->workers);
    free(st->clients);
    memset(st, 0, sizeof *st);
}

static void take_client(status_client *c, const session *s, double now)
{
    snprintf(c->addr, sizeof c->addr, "%s", s->peer);
    c->state = s->state;
    c->connected_seconds = PP_MAX(now - s->connected_at, 0.0);
    c->queued = s->nqueued + s->nparked + s->nbacklog;
    c->running = s->nrunning;
    c->done = s->jobs_ok;
    c->failed = s->jobs_failed;
    pp_conn_counts(s->conn, &c->bytes_in, &c->bytes_out);
}

/* The sessions: counts by state, bytes, the queue, and the first
 * STATUS_LIST_MAX of them listed.  0, or -1 out of memory. */
static int take_clients(server *srv, node_status *out, double now)
{
    size_t n = PP_MIN((size_t)srv->nsessions, (size_t)STATUS_LIST_MAX);
    if (n && !(out->clients = calloc(n, sizeof *out->clients)))
        return -1;
    for (const session *s = srv->sessions; s; s = s->next) {
        status_client c;
        take_client(&c, s, now);
        if ((unsigned)s->state <= S_CLOSING)
            out->conns[s->state]++;
        out->bytes_in += c.bytes_in;
        out->bytes_out += c.bytes_out;
        out->queue_depth += c.queued;
        out->running += c.running;
        if (out->nclients < n)
            out->clients[out->nclients++] = c;
    }
    return 0;
}

/* The workers, and what each runs now.  0, or -1 out of memory. */
static int take_workers(server *srv, node_status *out, double now)
{
    out->workers_target = srv->pool ? pp_pool_target(srv->pool) : 0;
    if (!srv->pool)
        return 0;
    size_t total = pp_pool_workers(srv->pool, NULL, 0), n = PP_MIN(total, STATUS_LIST_MAX);
    pp_pool_worker_info *wi = n ? calloc(n, sizeof *wi) : NULL;
    if (n && (!wi || !(out->workers = calloc(n, sizeof *out->workers)))) {
        free(wi);
        return -1;
    }
    n = PP_MIN(n, pp_pool_workers(srv->pool, wi, n));
    for (size_t i = 0; i < n; i++) {
        status_worker *w = &out->workers[i];
        w->pid = (int)wi[i].pid;
        w->inflight = wi[i].inflight;
        w->busy = wi[i].running != NULL;
        if (wi[i].running) {
            const sjob *j = PP_CONTAINER_OF(wi[i].running, const sjob, pj);
            w->job = j->id;
            w->run_seconds = PP_MAX(now - wi[i].started, 0.0); /* the format has no sign */
            if (j->sess)
                snprintf(w->client, sizeof w->client, "%s", j->sess->peer);
        }
    }
    out->nworkers = n;
    free(wi);
    out->workers_busy = pp_pool_busy(srv->pool);
    out->workers_idle = (int)total - out->workers_busy;
    return 0;
}

static void take_modules(const server *srv, node_status *out)
{
    for (size_t b = 0; b < srv->mbuckets; b++)
        for (const module *m = srv->mtab[b]; m; m = m->next) {
            if (m->present || m->unverified) /* in the cache */
                out->modules++;
            else
                out->modules_wanted++;
        }
    out->cache_bytes = srv->cache_bytes;
    out->cache_max = srv->cache_max;
    out->cache_evictions = srv->cache_evictions;
}

int status_collect(server *srv, node_status *out)
{
    memset(out, 0, sizeof *out);
    double now = pp_now();
    const srv_stats *ss = &srv->stats;
    snprintf(out->version, sizeof out->version, "%s", pp_version());
    out->uptime = PP_MAX(now - ss->started, 0.0);
    out->port = srv->port;
    out->accepted = ss->accepted;
    if (take_clients(srv, out, now) != 0 || take_workers(srv, out, now) != 0) {
        status_free(out);
        return -1;
    }
    out->bytes_in += ss->bytes_in; /* connections gone */
    out->bytes_out += ss->bytes_out;
    memcpy(out->jobs, ss->jobs, sizeof out->jobs);
    memcpy(out->run, ss->run, sizeof out->run);
    out->run_seconds = ss->run_seconds;
    take_modules(srv, out);
    memcpy(out->refused, ss->refused, sizeof out->refused);
    out->auth_failures = ss->refused[SRV_REF_WRONG_PROOF] + ss->refused[SRV_REF_TLS_KEY];
    out->handshake_errors = ss->handshake_errors;
    out->frame_errors = ss->frame_errors;
    return 0;
}

/* ---- the reply's text ---- */

static int put(pp_buf *b, const char *fmt, ...) PP_PRINTF(2, 3);

static int put(pp_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || pp_buf_reserve(b, (size_t)n + 1) != 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

/* A value as the format allows it: unsafe bytes become '_', "" becomes "-". */
static const char *token(const char *s, char *buf, size_t len)
{
    size_t i = 0;
    for (; s[i] && i + 1 < len; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 strchr("._:[]-", c) != NULL;
        buf[i] = ok ? c : '_';
    }
    buf[i] = 0;
    return i ? buf : "-";
}

static int render_lists(const node_status *st, pp_buf *b)
{
    char t[80];
    int rc = put(b, "workers target=%d busy=%d idle=%d listed=%zu\n", st->workers_target,
                 st->workers_busy, st->workers_idle, st->nworkers);
    for (size_t i = 0; rc == 0 && i < st->nworkers; i++) {
        const status_worker *w = &st->workers[i];
        rc = put(b, "worker pid=%d inflight=%d busy=%d client=%s job=%llu run=%.3f\n", w->pid,
                 w->inflight, w->busy, token(w->client, t, sizeof t),
                 (unsigned long long)w->job, w->run_seconds);
    }
    if (rc == 0)
        rc = put(b, "conns hello=%llu auth=%llu ready=%llu closing=%llu listed=%zu\n",
                 (unsigned long long)st->conns[S_HELLO], (unsigned long long)st->conns[S_AUTH],
                 (unsigned long long)st->conns[S_READY],
                 (unsigned long long)st->conns[S_CLOSING], st->nclients);
    for (size_t i = 0; rc == 0 && i < st->nclients; i++) {
        const status_client *c = &st->clients[i];
        rc = put(b, "client addr=%s state=%s connected=%.3f queued=%llu running=%llu done=%llu "
                    "failed=%llu bytes_in=%llu bytes_out=%llu\n",
                 token(c->addr, t, sizeof t), status_state_name(c->state), c->connected_seconds,
                 (unsigned long long)c->queued, (unsigned long long)c->running,
                 (unsigned long long)c->done, (unsigned long long)c->failed,
                 (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out);
    }
    return rc;
}

static int render_counters(const node_status *st, pp_buf *b)
{
#define STATUS_LE_ITEM(v) v,
    static const double le[] = {SRV_RUN_LE(STATUS_LE_ITEM)};
#undef STATUS_LE_ITEM
    int rc = put(b, "queue depth=%llu running=%llu\njobs", (unsigned long long)st->queue_depth,
                 (unsigned long long)st->running);
    for (int i = 0; i < SRV_STATUSES && rc == 0; i++)
        if (status_outcome_name(i))
            rc = put(b, " %s=%llu", status_outcome_name(i), (unsigned long long)st->jobs[i]);
    rc = rc ? rc : put(b, "\nruntime");
    for (size_t i = 0; i < SRV_RUN_BUCKETS && rc == 0; i++)
        rc = put(b, " le%g=%llu", le[i], (unsigned long long)st->run[i]);
    rc = rc ? rc : put(b, " inf=%llu sum=%.6f\n", (unsigned long long)st->run[SRV_RUN_BUCKETS],
                       st->run_seconds);
    rc = rc ? rc : put(b, "modules cached=%llu wanted=%llu bytes=%llu max=%llu evictions=%llu\n",
                       (unsigned long long)st->modules, (unsigned long long)st->modules_wanted,
                       (unsigned long long)st->cache_bytes, (unsigned long long)st->cache_max,
                       (unsigned long long)st->cache_evictions);
    rc = rc ? rc : put(b, "auth failures=%llu", (unsigned long long)st->auth_failures);
    for (int r = 0; r < SRV_REFUSALS && rc == 0; r++)
        rc = put(b, " %s=%llu", status_refusal_name((srv_refusal)r),
                 (unsigned long long)st->refused[r]);
    return rc ? rc : put(b, "\nerrors handshake=%llu frame=%llu\nend\n",
                         (unsigned long long)st->handshake_errors,
                         (unsigned long long)st->frame_errors);
}

int status_render(const node_status *st, pp_buf *b)
{
    char v[40];
    if (put(b, "pp-status %d\nnode version=%s uptime=%.3f port=%d accepted=%llu bytes_in=%llu "
               "bytes_out=%llu\n",
            STATUS_FORMAT, token(st->version, v, sizeof v), st->uptime, st->port,
            (unsigned long long)st->accepted, (unsigned long long)st->bytes_in,
            (unsigned long long)st->bytes_out) != 0)
        return -1;
    if (render_lists(st, b) != 0)
        return -1;
    return render_counters(st, b);
}

/* ---- SIGUSR1 ---- */

static void log_totals(server *srv, const node_status *st)
{
    pp_log(&srv->log, PP_LOG_INFO, "status: ppserver %s up %.0f s on port %d; workers %d "
                                   "(%d busy, %d idle); queue %llu, running %llu; "
                                   "connections %llu ready, %llu in handshake",
           st->version, st->uptime, st->port, st->workers_target, st->workers_busy,
           st->workers_idle, (unsigned long long)st->queue_depth, (unsigned long long)st->running,
           (unsigned long long)st->conns[S_READY],
           (unsigned long long)(st->conns[S_HELLO] + st->conns[S_AUTH]));
    pp_log(&srv->log, PP_LOG_INFO, "status: jobs done %llu, failed %llu, crashed %llu, timed "
                                   "out %llu, cancelled %llu, module not loaded %llu; bytes in "
                                   "%llu, out %llu",
           (unsigned long long)st->jobs[PP_DONE], (unsigned long long)st->jobs[PP_FAILED],
           (unsigned long long)st->jobs[PP_CRASHED], (unsigned long long)st->jobs[PP_TIMEOUT],
           (unsigned long long)st->jobs[PP_CANCELLED], (unsigned long long)st->jobs[PP_ELOAD],
           (unsigned long long)st->bytes_in, (unsigned long long)st->bytes_out);
    pp_log(&srv->log, PP_LOG_INFO, "status: modules cached %llu (%llu bytes, limit %llu, "
                                   "%llu evicted); auth failures %llu (wrong proof %llu, TLS "
                                   "key %llu); refused: lockout %llu, connections %llu, per "
                                   "address %llu, handshakes %llu; handshake errors %llu, "
                                   "frame errors %llu",
           (unsigned long long)st->modules, (unsigned long long)st->cache_bytes,
           (unsigned long long)st->cache_max, (unsigned long long)st->cache_evictions,
           (unsigned long long)st->auth_failures,
           (unsigned long long)st->refused[SRV_REF_WRONG_PROOF],
           (unsigned long long)st->refused[SRV_REF_TLS_KEY],
           (unsigned long long)st->refused[SRV_REF_LOCKOUT],
           (unsigned long long)st->refused[SRV_REF_CONNECTIONS],
           (unsigned long long)st->refused[SRV_REF_PER_ADDRESS],
           (unsigned long long)st->refused[SRV_REF_HANDSHAKES],
           (unsigned long long)st->handshake_errors, (unsigned long long)st->frame_errors);
}

void status_log(server *srv)
{
    node_status st;
    if (status_collect(srv, &st) != 0) {
        pp_log(&srv->log, PP_LOG_WARN, "status: out of memory");
        return;
    }
    log_totals(srv, &st);
    for (size_t i = 0, n = 0; i < st.nworkers && n < STATUS_LOG_LINES; i++) {
        const status_worker *w = &st.workers[i];
        if (!w->busy)
            continue;
        n++;
        pp_log(&srv->log, PP_LOG_INFO, "status: worker %d runs job %llu of %s for %.1f s",
               w->pid, (unsigned long long)w->job, w->client[0] ? w->client : "(gone)",
               w->run_seconds);
    }
    for (size_t i = 0; i < st.nclients && i < STATUS_LOG_LINES; i++) {
        const status_client *c = &st.clients[i];
        pp_log(&srv->log, PP_LOG_INFO, "status: client %s (%s, %.0f s): queued %llu, running "
                                       "%llu, done %llu, failed %llu; bytes in %llu, out %llu",
               c->addr, status_state_name(c->state), c->connected_seconds,
               (unsigned long long)c->queued, (unsigned long long)c->running,
               (unsigned long long)c->done, (unsigned long long)c->failed,
               (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out);
    }
    if (st.nclients > STATUS_LOG_LINES)
        pp_log(&srv->log, PP_LOG_INFO, "status: %zu more clients", st.nclients - STATUS_LOG_LINES);
    status_free(&st);
}
