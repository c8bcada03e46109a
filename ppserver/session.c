/* SPDX-License-Identifier: MIT */
/* session.c -- one client connection (states in server.h): the handshake of
 * pp_handshake.h, then jobs in, results out, modules on demand, heartbeats.
 * Bytes that are not our protocol close the connection with a logged
 * reason; nothing a socket sends can affect another session.
 *
 * Errors: a frame handler returns 0 to go on, or -1 with a `refusal` filled
 * in; sess_frame() alone then logs it and refuses the client. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "pp.h"
#include "pp_module.h"
#include "pp_net.h"
#include "pp_proto.h"
#include "pp_zip.h"
#include "lockout.h"
#include "modules.h"
#include "session.h"

#define CLOSE_GRACE 1.0           /* seconds to let an error frame reach the peer */

static const char *const state_names[] = {"hello", "auth", "ready", "closing"};

/* How a frame handler failed. */
typedef struct refusal {
    uint16_t code;                /* the ERROR sent; PP_E_AUTH: after the auth delay */
    int level;                    /* of the log line */
    char msg[PP_ERR_LEN + 64];    /* the log line and the ERROR's text */
} refusal;

static int refuse(refusal *r, uint16_t code, int level, const char *fmt, ...) PP_PRINTF(4, 5);
static int refuse(refusal *r, uint16_t code, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
    r->code = code;
    r->level = level;
    return -1;
}

static void sess_close_now(session *s, const char *why);

static void send_error(session *s, uint16_t code, const char *msg)
{
    pp_buf b;
    pp_buf_init(&b, 1024);
    if (pp_proto_error(&b, code, msg) == 0)
        pp_conn_send(s->conn, PP_T_ERROR, 0, 0, b.data, b.len);
    pp_buf_reset(&b);
    pp_conn_flush(s->conn);
}

static void closing_timer(pp_loop *loop, pp_timer *t)
{
    (void)loop;
    session *s = t->data;
    if (s->failed_auth == 1) {
        /* The refusal, after the fixed delay. */
        s->failed_auth = 2;
        send_error(s, PP_E_AUTH, "authentication failed");
        pp_timer_start(s->srv->loop, &s->timer, pp_now() + CLOSE_GRACE);
        return;
    }
    sess_close_now(s, NULL);
}

static void leave_handshake(session *s)
{
    if (s->state == S_HELLO || s->state == S_AUTH)
        s->srv->nunauth--;
    pp_hs_wipe(&s->hs);
}

/* Refuses the client as r says: ERROR (at once, or after the auth delay
 * for a wrong secret), stop reading, close after a grace period (so that
 * the frame is not lost to a reset). */
static void sess_refuse(session *s, const refusal *r)
{
    if (s->state == S_CLOSING)
        return;
    server *srv = s->srv;
    leave_handshake(s);
    s->state = S_CLOSING;
    s->timer.fn = closing_timer;
    pp_conn_pause(s->conn, 1);
    if (r->code == PP_E_AUTH) {
        /* A fixed delay, then one generic refusal: no oracle, no storm. */
        s->failed_auth = 1;
        pp_timer_start(srv->loop, &s->timer, pp_now() + srv->cfg->auth_delay);
        return;
    }
    send_error(s, r->code, r->msg);
    pp_timer_start(srv->loop, &s->timer, pp_now() + CLOSE_GRACE);
}

static void sess_close_now(session *s, const char *why)
{
    if (why)
        pp_log(&s->srv->log, PP_LOG_INFO, "%s: closed: %s", s->peer, why);
    session_free(s);
}

static void handshake_timeout(pp_loop *loop, pp_timer *t)
{
    (void)loop;
    session *s = t->data;
    pp_log(&s->srv->log, PP_LOG_WARN, "%s: no handshake within %g s; closing", s->peer,
           s->srv->cfg->handshake_timeout);
    sess_close_now(s, NULL);
}

/* ---- handshake ---- */

static int on_hello(session *s, const pp_frame *f, refusal *r)
{
    server *srv = s->srv;
    uint8_t chal[PP_CHALLENGE_LEN];
    if (pp_hs_server_hello(&s->hs, &srv->key, NULL, f, srv->max_frame,
                           (uint32_t)pp_pool_target(srv->pool), chal) != PP_HS_OK)
        return refuse(r, s->hs.err_code ? s->hs.err_code : PP_E_PROTOCOL, PP_LOG_WARN, "%s",
                      s->hs.err);
    pp_conn_send(s->conn, PP_T_CHALLENGE, 0, 0, chal, sizeof chal);
    s->state = S_AUTH;
    return 0;
}

static int on_proof(session *s, const pp_frame *f, refusal *r)
{
    server *srv = s->srv;
    uint8_t mac[PP_MAC_LEN];
    if (pp_hs_server_proof(&s->hs, f, mac) != PP_HS_OK) {
        if (s->hs.err_code != PP_E_AUTH)
            return refuse(r, PP_E_PROTOCOL, PP_LOG_ERROR, "%s", s->hs.err);
        int n = lockout_count(srv, s->addr, pp_now());
        return refuse(r, PP_E_AUTH, PP_LOG_WARN, "authentication failed (wrong secret?); %d "
                                                 "from this address within %.0f s",
                      n, srv->cfg->auth_lockout);
    }
    pp_conn_send(s->conn, PP_T_ACCEPT, 0, 0, mac, sizeof mac);
    pp_timer_stop(srv->loop, &s->timer);
    leave_handshake(s);
    s->timer.fn = closing_timer;
    s->state = S_READY;
    s->last_job = pp_now();
    /* Authenticated: full frames from now on. */
    pp_conn_set_limit(s->conn, srv->max_frame + 1024);
    pp_log(&srv->log, PP_LOG_INFO, "%s: client authenticated", s->peer);
    return 0;
}

/* ---- jobs and modules ---- */

static int asked_for(session *s, int idx)
{
    for (int i = 0; i < s->nneeded; i++)
        if (s->needed[i] == idx)
            return 1;
    return 0;
}

static void update_pause(session *s)
{
    size_t held = s->nqueued + s->nparked;
    size_t out = pp_conn_outbytes(s->conn);
    size_t outcap = (size_t)(s->srv->cfg->max_output_mib * 1048576.0);
    int over = held >= (size_t)s->srv->cfg->max_queue || out > outcap / 2;
    int under = held < (size_t)s->srv->cfg->max_queue / 2 && out < outcap / 4;
    if (!s->paused && over) {
        s->paused = 1;
        pp_conn_pause(s->conn, 1);
    } else if (s->paused && under) {
        s->paused = 0;
        pp_conn_pause(s->conn, 0);
    }
}

static void queue_job(session *s, sjob *j)
{
    j->next = NULL;
    if (s->qtail)
        s->qtail->next = j;
    else
        s->qhead = j;
    s->qtail = j;
    s->nqueued++;
}

/* Parks j until its module is here, asking the client for it once. */
static void park_job(session *s, sjob *j, const uint8_t *hash)
{
    j->next = s->parked;
    s->parked = j;
    s->nparked++;
    if (asked_for(s, j->module))
        return;
    int *n = realloc(s->needed, (size_t)(s->nneeded + 1) * sizeof *n);
    if (n) {
        s->needed = n;
        s->needed[s->nneeded++] = j->module;
    }
    pp_conn_send(s->conn, PP_T_NEED, 0, 0, hash, PP_SHA256_LEN);
}

static int on_job(session *s, const pp_frame *f, refusal *r)
{
    server *srv = s->srv;
    const uint8_t *payload = f->payload;
    size_t plen = f->hdr.len;
    void *unzipped = NULL;
    if (f->hdr.flags & PP_WIRE_F_ZLIB) {
        char err[PP_ERR_LEN];
        if (pp_zip_inflate(payload, plen, srv->max_frame + 1024u, &unzipped, &plen, err))
            return refuse(r, PP_E_LIMIT, PP_LOG_WARN, "job %llu: %s",
                          (unsigned long long)f->hdr.id, err);
        payload = unzipped;
    }
    pp_msg_rjob m;
    if (pp_proto_rjob_decode(payload, plen, &m) != 0) {
        free(unzipped);
        return refuse(r, PP_E_PROTOCOL, PP_LOG_WARN, "malformed JOB frame %llu",
                      (unsigned long long)f->hdr.id);
    }
    int idx = modules_get(srv, m.hash);
    sjob *j = calloc(1, sizeof *j);
    void *block = unzipped ? unzipped : j ? pp_conn_take(s->conn, f) : NULL;
    if (idx < 0 || !j || !block) {
        free(j);
        free(block);
        return refuse(r, PP_E_LIMIT, PP_LOG_ERROR, "the node is out of memory (job %llu)",
                      (unsigned long long)f->hdr.id);
    }
    j->sess = s;
    j->id = f->hdr.id;
    j->block = block;
    j->module = idx;
    snprintf(j->symbol, sizeof j->symbol, "%s", m.symbol);
    j->pj.arg = (uint8_t *)block + m.arg_off;
    j->pj.len = m.len;
    j->pj.timeout = m.timeout_ms / 1000.0;
    s->last_job = pp_now();
    if (srv->modules[idx].present)
        queue_job(s, j);
    else
        park_job(s, j, srv->modules[idx].hash);
    update_pause(s);
    return 0;
}

/* Parked jobs of session s for module idx become runnable. */
static void unpark(session *s, int idx)
{
    sjob **pp = &s->parked;
    sjob *keep = NULL, *run = NULL;
    while (*pp) {
        sjob *j = *pp;
        *pp = j->next;
        if (j->module == idx) {
            j->next = run;
            run = j;
        } else {
            j->next = keep;
            keep = j;
        }
    }
    s->parked = keep;
    /* `run` is newest first: queue it oldest first. */
    sjob *rev = NULL;
    while (run) {
        sjob *n = run->next;
        run->next = rev;
        rev = run;
        run = n;
    }
    while (rev) {
        sjob *n = rev->next;
        s->nparked--;
        queue_job(s, rev);
        rev = n;
    }
}

static int on_module(session *s, const pp_frame *f, refusal *r)
{
    server *srv = s->srv;
    pp_msg_module m;
    if (pp_proto_module_decode(f, &m) != 0)
        return refuse(r, PP_E_PROTOCOL, PP_LOG_WARN, "malformed MODULE frame");
    int idx = modules_get(srv, m.hash);
    if (idx < 0 || srv->modules[idx].present)
        return 0; /* no memory for the table, or another client sent it first */
    void *data = NULL;
    size_t len = 0;
    char err[PP_ERR_LEN];
    if (pp_zip_inflate(m.zip, m.ziplen, PP_MODULE_MAX, &data, &len, err) != 0)
        return refuse(r, PP_E_LIMIT, PP_LOG_WARN, "module refused: %s", err);
    if (pp_module_store(srv->cfg->cache_dir, m.hash, data, len, err) != 0) {
        free(data);
        return refuse(r, PP_E_PROTOCOL, PP_LOG_WARN, "module refused: %s", err);
    }
    free(data);
    char hex[2 * PP_SHA256_LEN + 1];
    pp_hex(m.hash, PP_SHA256_LEN, hex);
    pp_log(&srv->log, PP_LOG_INFO, "%s: module %.16s... stored (%zu bytes)", s->peer, hex, len);
    srv->modules[idx].present = 1;
    for (session *o = srv->sessions; o; o = o->next) /* every client that waits for it */
        unpark(o, idx);
    return 0;
}

static int on_ready_frame(session *s, const pp_frame *f, refusal *r)
{
    switch (f->hdr.type) {
    case PP_T_RJOB:
        return on_job(s, f, r);
    case PP_T_MODULE:
        return on_module(s, f, r);
    case PP_T_PING:
        pp_conn_send(s->conn, PP_T_PONG, 0, f->hdr.id, NULL, 0);
        return 0;
    case PP_T_PONG:
        return 0;
    }
    char name[16];
    return refuse(r, PP_E_PROTOCOL, PP_LOG_WARN, "unexpected frame %s in state ready",
                  pp_proto_type_name(f->hdr.type, name));
}

static int sess_frame(pp_conn *c, const pp_frame *f, void *data)
{
    (void)c;
    session *s = data;
    s->last_rx = pp_now();
    uint8_t t = f->hdr.type;
    refusal r = {.code = 0};
    char name[16];
    int rc;
    if (s->state == S_CLOSING)
        return 0; /* closing: ignore */
    if ((f->hdr.flags & PP_WIRE_F_ZLIB) && (s->state != S_READY || t != PP_T_RJOB))
        /* zlib only after authentication, and only where it is expected. */
        rc = refuse(&r, PP_E_PROTOCOL, PP_LOG_WARN, "compressed frame of type %u refused", t);
    else if (s->state == S_HELLO && t == PP_T_HELLO)
        rc = on_hello(s, f, &r);
    else if (s->state == S_AUTH && t == PP_T_PROOF)
        rc = on_proof(s, f, &r);
    else if (s->state == S_READY)
        rc = on_ready_frame(s, f, &r);
    else
        rc = refuse(&r, PP_E_PROTOCOL, PP_LOG_WARN, "unexpected frame %s in state %s",
                    pp_proto_type_name(t, name), state_names[s->state]);
    if (rc != 0) {
        pp_log(&s->srv->log, r.level, "%s: %s; closing", s->peer, r.msg);
        sess_refuse(s, &r);
    }
    return rc;
}

static void sess_closed(pp_conn *c, const char *why, void *data)
{
    (void)c;
    session *s = data;
    int level = s->state == S_READY || s->state == S_CLOSING ? PP_LOG_INFO : PP_LOG_WARN;
    if (strncmp(why, "end of file", 11) != 0 || s->state == S_HELLO)
        level = s->state == S_CLOSING ? PP_LOG_INFO : PP_LOG_WARN;
    pp_log(&s->srv->log, level, "%s: connection closed: %s", s->peer, why);
    session_free(s);
}

session *session_new(server *srv, int fd, const char *peer)
{
    session *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->srv = srv;
    s->fd = fd;
    snprintf(s->peer, sizeof s->peer, "%s", peer);
    snprintf(s->addr, sizeof s->addr, "%s", peer);
    char *colon = strrchr(s->addr, ':');
    if (colon)
        *colon = 0;
    pp_conn_cbs cbs = {.on_frame = sess_frame, .on_close = sess_closed};
    s->conn = pp_conn_new(srv->loop, fd, fd, PP_PREAUTH_MAX, PP_T_NET_MAX, NULL, &cbs, s);
    if (!s->conn) {
        free(s);
        return NULL;
    }
    s->state = S_HELLO;
    s->last_rx = pp_now();
    s->timer.fn = handshake_timeout;
    s->timer.data = s;
    /* Total deadline: trickling bytes does not extend it. */
    pp_timer_start(srv->loop, &s->timer, pp_now() + srv->cfg->handshake_timeout);
    s->next = srv->sessions;
    if (srv->sessions)
        srv->sessions->prev = s;
    srv->sessions = s;
    srv->nsessions++;
    srv->nunauth++;
    return s;
}

static int orphaned(pp_pool_job *pj, void *arg)
{
    (void)arg;
    return PP_CONTAINER_OF(pj, sjob, pj)->sess == NULL;
}

static void free_job(sjob *j)
{
    free(j->block);
    free(j);
}

void session_free(session *s)
{
    server *srv = s->srv;
    leave_handshake(s);
    pp_timer_stop(srv->loop, &s->timer);
    pp_conn_free(s->conn);
    s->conn = NULL;
    if (srv->rr == s)
        srv->rr = s->next;
    if (s->prev)
        s->prev->next = s->next;
    else
        srv->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    srv->nsessions--;
    for (sjob *j = s->qhead, *n; j; j = n) {
        n = j->next;
        free_job(j);
    }
    for (sjob *j = s->parked, *n; j; j = n) {
        n = j->next;
        free_job(j);
    }
    /* Its jobs on workers are stopped: nobody waits for them any more, and
     * another client's jobs must not wait behind them. */
    size_t running = s->nrunning;
    for (sjob *j = s->running; j; j = j->rnext)
        j->sess = NULL;
    if (running && srv->pool && !srv->stopping) { /* at shutdown the pool goes anyway */
        pp_log(&srv->log, PP_LOG_INFO, "%s: client gone: stopping its %zu job(s) on workers",
               s->peer, running);
        pp_pool_cancel_if(srv->pool, orphaned, NULL);
    }
    free(s->needed);
    free(s);
}

static void running_remove(session *s, sjob *j)
{
    if (j->rprev)
        j->rprev->rnext = j->rnext;
    else
        s->running = j->rnext;
    if (j->rnext)
        j->rnext->rprev = j->rprev;
    j->rprev = j->rnext = NULL;
    s->nrunning--;
}

void session_job_done(sjob *j, int status, void *block, const char *data, size_t len,
                      uint64_t run_ns)
{
    session *s = j->sess;
    if (s) {
        running_remove(s, j);
        uint8_t head[PP_RESULT_HDR];
        pp_proto_result_head(head, status, run_ns);
        void *zip;
        size_t ziplen;
        if (pp_zip_maybe(head, sizeof head, data, len, &zip, &ziplen) == 1) {
            free(block);
            block = zip;
            if (pp_conn_send_ref(s->conn, PP_T_RRESULT, PP_WIRE_F_ZLIB, j->id, NULL, 0, zip,
                                 ziplen, free, zip) == 0)
                block = NULL;
        } else if (pp_conn_send_ref(s->conn, PP_T_RRESULT, 0, j->id, head, sizeof head, data,
                                    len, free, block) == 0) {
            block = NULL; /* the conn frees it once written */
        }
        update_pause(s);
    }
    free(block);
    free_job(j);
}

void session_job_requeue(sjob *j)
{
    session *s = j->sess;
    if (!s) {
        free_job(j);
        return;
    }
    running_remove(s, j);
    j->next = s->qhead;
    s->qhead = j;
    if (!s->qtail)
        s->qtail = j;
    s->nqueued++;
}

sjob *session_next_job(session *s)
{
    sjob *j = s->qhead;
    if (!j)
        return NULL;
    s->qhead = j->next;
    if (!s->qhead)
        s->qtail = NULL;
    s->nqueued--;
    j->next = NULL;
    j->rprev = NULL;
    j->rnext = s->running;
    if (s->running)
        s->running->rprev = j;
    s->running = j;
    s->nrunning++;
    update_pause(s);
    return j;
}

void session_tick(session *s, double now)
{
    server *srv = s->srv;
    if (s->state != S_READY)
        return;
    /* What waits for the client: our queue and our kernel's send queue
     * (which can grow to megabytes and take all of ours while the client
     * reads nothing); and whether it took bytes since the last tick (TCP's
     * count of what it acknowledged). */
    uint64_t acked = 0;
    size_t kernel = 0, out = pp_conn_outbytes(s->conn);
    int tcp = pp_net_tcp_progress(s->fd, &acked, &kernel) == 0;
    size_t waiting = out + kernel;
    int drained = tcp ? acked > s->acked_mark : out < s->out_mark;
    s->acked_mark = acked;
    s->out_mark = out;
    size_t outcap = (size_t)(srv->cfg->max_output_mib * 1048576.0);
    size_t held = s->nqueued + s->nparked;
    /* Its results pile up (we may have stopped reading it for that): it is
     * judged by them below, and its silence then says nothing. */
    int output_bound = waiting > outcap / 2 ||
                       (s->paused && held < (size_t)srv->cfg->max_queue / 2 && waiting > 0);
    if (output_bound)
        s->last_rx = now;
    if (now - s->last_rx > srv->cfg->dead_after) {
        pp_log(&srv->log, PP_LOG_WARN, "%s: no frame for %.1f s; closing", s->peer,
               now - s->last_rx);
        session_free(s);
        return;
    }
    if (srv->cfg->idle_timeout > 0 && !s->nqueued && !s->nparked && !s->nrunning &&
        now - s->last_job > srv->cfg->idle_timeout) {
        pp_log(&srv->log, PP_LOG_INFO, "%s: idle for %.0f s; closing", s->peer,
               now - s->last_job);
        session_free(s);
        return;
    }
    if (output_bound && !drained) {
        if (++s->stuck_ticks * srv->cfg->heartbeat > srv->cfg->dead_after || waiting > outcap) {
            pp_log(&srv->log, PP_LOG_WARN, "%s: the client does not read its results "
                                           "(%zu bytes waiting); closing", s->peer, waiting);
            /* Abortive close: the results already in the kernel for it are
             * dropped now instead of held while it (maybe never) reads. */
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            (void)setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            session_free(s);
            return;
        }
    } else {
        s->stuck_ticks = 0;
    }
    pp_conn_send(s->conn, PP_T_PING, 0, pp_proto_ping_token(now), NULL, 0);
}

void session_bye(session *s, const char *why)
{
    if (s->state != S_READY) {
        session_free(s);
        return;
    }
    pp_buf b;
    pp_buf_init(&b, 1024);
    pp_proto_bye(&b, why);
    pp_conn_send(s->conn, PP_T_BYE, 0, 0, b.data, b.len);
    pp_buf_reset(&b);
    pp_conn_flush(s->conn);
}

void session_announce_ncpus(session *s, int n)
{
    if (s->state != S_READY)
        return;
    uint8_t p[4];
    pp_proto_ncpus(p, (uint32_t)n);
    pp_conn_send(s->conn, PP_T_NCPUS, 0, 0, p, sizeof p);
}
