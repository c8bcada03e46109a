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
#include "pp_zpolicy.h"
#include "lockout.h"
#include "modules.h"
#include "session.h"
#include "status.h"

#define CLOSE_GRACE 1.0           /* seconds to let an error frame reach the peer */
#define CANCEL_TEXT "cancelled by the client" /* a cancelled job's RRESULT */

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
    s->srv->stats.handshake_errors++;
    sess_close_now(s, NULL);
}

/* ---- handshake ---- */

static int on_hello(session *s, const pp_frame *f, refusal *r)
{
    server *srv = s->srv;
    uint8_t chal[PP_CHALLENGE_LEN];
    if (pp_hs_server_hello(&s->hs, &srv->key, s->bound ? s->binding : NULL, f, srv->max_frame,
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
        srv->stats.refused[SRV_REF_WRONG_PROOF]++;
        return refuse(r, PP_E_AUTH, PP_LOG_WARN, "authentication failed (wrong secret?); %d "
                                                 "from this address within %.0f s",
                      n, srv->cfg->auth_lockout);
    }
    pp_conn_send(s->conn, PP_T_ACCEPT, 0, 0, mac, sizeof mac);
    if (srv->tags_len) /* only now: only authenticated clients learn them */
        pp_conn_send(s->conn, PP_T_TAGS, 0, 0, srv->tags_msg, srv->tags_len);
    pp_timer_stop(srv->loop, &s->timer);
    leave_handshake(s);
    s->timer.fn = closing_timer;
    s->state = S_READY;
    s->last_job = pp_now();
    /* Authenticated: full frames from now on. */
    pp_conn_set_limit(s->conn, srv->max_frame + 1024);
    pp_conn_use_shm(s->conn, srv->shm, 0); /* large jobs land where the workers read them */
    pp_log(&srv->log, PP_LOG_INFO, "%s: client authenticated", s->peer);
    return 0;
}

/* ---- jobs and modules ---- */

/* What a JOB frame in the backlog costs besides its bytes (its record, the
 * allocator's overhead): a flood of tiny frames is counted too. */
#define BACKLOG_OVERHEAD 128

/* Budgets.  Every job here is charged its size as inflated -- queued,
 * parked for its module, or running -- to its client's budget
 * (--session-budget-mib) and to the node's (--server-budget-mib), and a
 * compressed job is checked against them by its declared size before
 * anything is inflated.  A job that does not fit waits in the client's
 * backlog as it came (compressed: a few bytes for a zlib bomb), and the
 * node goes on reading that client -- its MODULE frames must get through,
 * or jobs parked for a module would hold the budget for ever -- until the
 * backlog is full (a session budget of frames, or all backlogs the server
 * budget, or --max-queue of them): then reading stops (backpressure).
 * Backpressure rather than refusal: a client over budget is an honest one
 * whose window is larger than our budget as often as an attacker, and it
 * loses nothing by waiting; the attacker gains nothing by it. */
static int fits(const session *s, size_t bytes)
{
    const server *srv = s->srv;
    return s->held + bytes <= srv->session_budget && srv->held + bytes <= srv->server_budget;
}

/* A JOB frame's size once inflated: its declared size when compressed. */
static size_t job_size(const pp_frame_hdr *h, const uint8_t *payload)
{
    return (h->flags & PP_WIRE_F_ZLIB) && h->len >= 4 ? pp_load32(payload) : h->len;
}

static void free_job(sjob *j)
{
    if (j->mod && --j->mod->jobs == 0)
        modules_release(j->srv, j->mod); /* an entry nobody needs any more goes */
    if (j->sess)
        j->sess->held -= j->bytes;
    j->srv->held -= j->bytes;
    j->srv->freed += j->bytes;
    free(j->block);
    pp_shm_unref(j->pj.ashm);
    free(j);
}

static int backlog_full(const session *s)
{
    const server *srv = s->srv;
    return s->backlog && (s->backlog_bytes >= srv->session_budget ||
                          srv->backlog_bytes >= srv->server_budget ||
                          s->nbacklog >= (size_t)srv->cfg->max_queue);
}

static void update_pause(session *s)
{
    size_t held = s->nqueued + s->nparked;
    size_t out = pp_conn_outbytes(s->conn);
    size_t outcap = (size_t)(s->srv->cfg->max_output_mib * 1048576.0);
    int full = backlog_full(s);
    int over = held >= (size_t)s->srv->cfg->max_queue || out > outcap / 2 || full;
    int under = held < (size_t)s->srv->cfg->max_queue / 2 && out < outcap / 4 && !full;
    if (!s->paused && over) {
        s->paused = 1;
        pp_conn_pause(s->conn, 1);
    } else if (s->paused && under) {
        s->paused = 0;
        pp_conn_pause(s->conn, 0);
    }
}

/* ---- the queue: a FIFO per distinct priority, highest first ---- */

/* Where the FIFO of priority prio is in s->fifos (a binary search), or
 * where it would go; *found says which. */
static int fifo_find(const session *s, int32_t prio, int *found)
{
    int lo = 0, hi = s->nfifos;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (s->fifos[mid].prio > prio)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < s->nfifos && s->fifos[lo].prio == prio;
    return lo;
}

/* The FIFO of priority prio, made (empty) if there is none; NULL when out
 * of memory.  The array only grows: a client switching priorities does not
 * reallocate it every time. */
static prio_fifo *fifo_for(session *s, int32_t prio)
{
    int found, i = fifo_find(s, prio, &found);
    if (found)
        return &s->fifos[i];
    if (s->nfifos == s->capfifos) {
        int cap = s->capfifos ? 2 * s->capfifos : 4;
        prio_fifo *f = realloc(s->fifos, (size_t)cap * sizeof *f);
        if (!f)
            return NULL;
        s->fifos = f;
        s->capfifos = cap;
    }
    memmove(&s->fifos[i + 1], &s->fifos[i], (size_t)(s->nfifos - i) * sizeof *s->fifos);
    s->fifos[i] = (prio_fifo){.prio = prio};
    s->nfifos++;
    return &s->fifos[i];
}

/* FIFO i lost its last job: it goes, so that fifos[0] always holds the
 * next job to run. */
static void fifo_drop_if_empty(session *s, int i)
{
    if (s->fifos[i].head)
        return;
    memmove(&s->fifos[i], &s->fifos[i + 1], (size_t)(s->nfifos - i - 1) * sizeof *s->fifos);
    s->nfifos--;
}

/* Ends a job the node will not run: a RESULT with `status` and why. */
static void send_failure(session *s, uint64_t id, int status, const char *why)
{
    uint8_t p[PP_RESULT_HDR + PP_ERR_LEN];
    size_t n = PP_MIN(strlen(why), (size_t)PP_ERR_LEN);
    if (status >= 0 && status < SRV_STATUSES)
        s->srv->stats.jobs[status]++;
    s->jobs_failed++;
    pp_proto_result_head(p, status, 0);
    memcpy(p + PP_RESULT_HDR, why, n);
    pp_conn_send(s->conn, PP_T_RRESULT, 0, id, p, PP_RESULT_HDR + n);
}

/* Queues j behind the jobs of its priority (at their front with `front`:
 * a job handed back by the pool keeps its place).  Out of memory for a new
 * priority's FIFO, j ends PP_FAILED saying so and is freed: every job
 * still gets its one result. */
static void queue_job_at(session *s, sjob *j, int front)
{
    prio_fifo *q = fifo_for(s, j->prio);
    if (!q) {
        send_failure(s, j->id, PP_FAILED, "the node is out of memory");
        free_job(j);
        return;
    }
    j->next = NULL;
    if (front) {
        j->next = q->head;
        q->head = j;
        if (!q->tail)
            q->tail = j;
    } else {
        if (q->tail)
            q->tail->next = j;
        else
            q->head = j;
        q->tail = j;
    }
    s->nqueued++;
}

static void queue_job(session *s, sjob *j)
{
    queue_job_at(s, j, 0);
}

/* The ask of s for module m, or -1. */
static int ask_index(const session *s, const module *m)
{
    for (int i = 0; i < s->nasks; i++)
        if (s->asks[i].mod == m)
            return i;
    return -1;
}

/* Forgets ask i (the module came, expired, or the session ends). */
static void drop_ask(session *s, int i)
{
    module *m = s->asks[i].mod;
    s->asks[i] = s->asks[--s->nasks];
    m->askers--;
    modules_release(s->srv, m);
}

/* The module a job of s names, found or added and asked for (NEED) if it
 * is not here; NULL with the reason in why (PP_ERR_LEN bytes) when the node
 * will not wait for it (the client has --max-pending-modules asks open) or
 * is out of memory. */
static module *module_for_job(session *s, const uint8_t hash[PP_SHA256_LEN], char *why)
{
    server *srv = s->srv;
    module *m = modules_find(srv, hash);
    if (m && (m->present || ask_index(s, m) >= 0))
        return m;
    if (s->nasks >= srv->cfg->max_pending_modules) {
        pp_seterr(why, "too many modules asked of this client and not sent (%d)", s->nasks);
        return NULL;
    }
    ask *a = realloc(s->asks, (size_t)(s->nasks + 1) * sizeof *a);
    if (a)
        s->asks = a;
    if (!m && a)
        m = modules_add(srv, hash);
    if (!m || !a) {
        pp_seterr(why, "the node is out of memory");
        return NULL;
    }
    if (m->present)
        return m; /* verified in the cache */
    s->asks[s->nasks++] = (ask){.mod = m, .since = pp_now()};
    m->askers++;
    pp_conn_send(s->conn, PP_T_NEED, 0, 0, hash, PP_SHA256_LEN);
    return m;
}

/* Job `id` ends PP_ELOAD: its module (hash) cannot be had, for `why`. */
static void fail_unloaded(session *s, uint64_t id, const uint8_t *hash, const char *why)
{
    char text[PP_ERR_LEN + 64];
    char hex[2 * PP_SHA256_LEN + 1];
    pp_hex(hash, PP_SHA256_LEN, hex);
    snprintf(text, sizeof text, "module %.16s... not loaded: %s", hex, why);
    pp_log(&s->srv->log, PP_LOG_WARN, "%s: job %llu: %s", s->peer, (unsigned long long)id, text);
    send_failure(s, id, PP_ELOAD, text);
}

/* A compressed JOB's payload inflated: into a shared buffer when large
 * (its worker then reads the argument in place, as an uncompressed one's),
 * else onto the heap.  0 with *heap or *shm set and *len, or -1 with err. */
static int inflate_job(session *s, const uint8_t *in, size_t n, void **heap, pp_shm **shm,
                       size_t *len, char *err)
{
    server *srv = s->srv;
    size_t declared;
    if (pp_zip_declared(in, n, srv->max_frame + 1024u, &declared, err) != 0)
        return -1;
    if (declared < PP_SHM_MIN || !(*shm = pp_shm_get(srv->shm, declared, 0, NULL)))
        return pp_zpolicy_inflate(&s->zp, in, n, srv->max_frame + 1024u, heap, len, err);
    if (pp_zpolicy_inflate_into(&s->zp, in, n, (*shm)->base, declared, err) != 0) {
        pp_shm_unref(*shm);
        *shm = NULL;
        return -1;
    }
    (*shm)->base[declared] = 0; /* as the heap's: NUL-terminated */
    *len = declared;
    return 0;
}

static void drop_payload(void *owned, pp_shm *shm)
{
    free(owned);
    pp_shm_unref(shm);
}

/* Takes in a JOB that fits the budgets.  payload: the frame's (in the
 * conn: f is the frame, owned NULL) or a backlogged one (f NULL, owned =
 * payload, freed here whatever happens). */
static int admit_job(session *s, const pp_frame_hdr *h, const uint8_t *payload,
                     const pp_frame *f, void *owned, refusal *r)
{
    server *srv = s->srv;
    size_t plen = h->len;
    pp_shm *shm = NULL; /* the payload's shared buffer, if it has one */
    if (h->flags & PP_WIRE_F_ZLIB) {
        char err[PP_ERR_LEN];
        void *unzipped = NULL;
        int bad = inflate_job(s, payload, plen, &unzipped, &shm, &plen, err);
        free(owned); /* the compressed form is done with */
        owned = unzipped;
        if (bad)
            return refuse(r, PP_E_LIMIT, PP_LOG_WARN, "job %llu: %s", (unsigned long long)h->id,
                          err);
        payload = shm ? shm->base : unzipped;
    }
    pp_msg_rjob m;
    if (pp_proto_rjob_decode(payload, plen, &m) != 0) {
        drop_payload(owned, shm);
        return refuse(r, PP_E_PROTOCOL, PP_LOG_WARN, "malformed JOB frame %llu",
                      (unsigned long long)h->id);
    }
    /* A batch's items are checked here, where the client can be told: the
     * worker and the pool then read a well-formed batch. */
    if ((h->flags & PP_WIRE_F_BATCH) &&
        pp_proto_batch_check(m.arg, m.len, PP_BATCH_ARGS, NULL) != 0) {
        drop_payload(owned, shm);
        return refuse(r, PP_E_PROTOCOL, PP_LOG_WARN, "malformed batch in job %llu (a count "
                                                     "or length that does not fit its %zu "
                                                     "bytes)", (unsigned long long)h->id, m.len);
    }
    char why[PP_ERR_LEN];
    module *mod = module_for_job(s, m.hash, why);
    if (!mod) {
        fail_unloaded(s, h->id, m.hash, why);
        drop_payload(owned, shm);
        return 0;
    }
    sjob *j = calloc(1, sizeof *j);
    /* The payload: inflated (on the heap or into a shared buffer),
     * backlogged, or the frame's own (a large one received into a shared
     * buffer, which the workers then read). */
    void *block = owned;
    if (!block && !shm && j && !(shm = pp_conn_take_shm(s->conn, f)))
        block = pp_conn_take(s->conn, f);
    uint8_t *base = shm ? shm->base : block;
    if (!j || !base) {
        free(j);
        free(block);
        pp_shm_unref(shm);
        return refuse(r, PP_E_LIMIT, PP_LOG_ERROR, "the node is out of memory (job %llu)",
                      (unsigned long long)h->id);
    }
    j->srv = srv;
    j->sess = s;
    j->id = h->id;
    j->block = block;
    j->pj.ashm = shm;
    j->bytes = plen;
    s->held += plen;
    srv->held += plen;
    j->mod = mod;
    mod->jobs++;
    snprintf(j->symbol, sizeof j->symbol, "%s", m.symbol);
    j->pj.arg = base + m.arg_off;
    j->pj.len = m.len;
    j->pj.timeout = m.timeout_ms / 1000.0;
    j->pj.flags = h->flags & PP_WIRE_F_BATCH;
    j->prio = m.priority;
    s->last_job = pp_now();
    if (mod->present) {
        queue_job(s, j);
    } else {
        j->next = s->parked; /* until its module is here */
        s->parked = j;
        s->nparked++;
    }
    return 0;
}

static int on_job(session *s, const pp_frame *f, refusal *r)
{
    server *srv = s->srv;
    size_t need = job_size(&f->hdr, f->payload);
    if (need > srv->max_frame + 1024u) /* could never fit: refused before inflating */
        return refuse(r, PP_E_LIMIT, PP_LOG_WARN, "job %llu: declared size %zu exceeds the "
                                                  "limit %u", (unsigned long long)f->hdr.id,
                      need, srv->max_frame + 1024u);
    if (s->backlog || !fits(s, need)) {
        if (!s->backlog)
            pp_log(&srv->log, PP_LOG_INFO, "%s: job %llu (%zu bytes) waits for memory: this "
                                           "client has %zu bytes here, all %zu (budgets %zu "
                                           "and %zu)", s->peer, (unsigned long long)f->hdr.id,
                   need, s->held, srv->held, srv->session_budget, srv->server_budget);
        backlogged *b = malloc(sizeof *b);
        void *payload = b ? pp_conn_take(s->conn, f) : NULL;
        if (!payload) {
            free(b);
            return refuse(r, PP_E_LIMIT, PP_LOG_ERROR, "the node is out of memory (job %llu)",
                          (unsigned long long)f->hdr.id);
        }
        *b = (backlogged){.hdr = f->hdr, .payload = payload};
        if (s->backlog_tail)
            s->backlog_tail->next = b;
        else
            s->backlog = b;
        s->backlog_tail = b;
        s->nbacklog++;
        s->backlog_bytes += f->hdr.len + BACKLOG_OVERHEAD;
        srv->backlog_bytes += f->hdr.len + BACKLOG_OVERHEAD;
        update_pause(s);
        return 0;
    }
    int rc = admit_job(s, &f->hdr, f->payload, f, NULL, r);
    update_pause(s);
    return rc;
}

/* Takes in what the backlog holds while it fits, oldest first. */
void session_admit(session *s)
{
    server *srv = s->srv;
    if (s->state != S_READY)
        return;
    while (s->backlog && fits(s, job_size(&s->backlog->hdr, s->backlog->payload))) {
        backlogged *b = s->backlog;
        s->backlog = b->next;
        if (!s->backlog)
            s->backlog_tail = NULL;
        s->nbacklog--;
        s->backlog_bytes -= b->hdr.len + BACKLOG_OVERHEAD;
        srv->backlog_bytes -= b->hdr.len + BACKLOG_OVERHEAD;
        refusal r = {.code = 0};
        int rc = admit_job(s, &b->hdr, b->payload, NULL, b->payload, &r);
        free(b);
        if (rc != 0) {
            pp_log(&srv->log, r.level, "%s: %s; closing", s->peer, r.msg);
            sess_refuse(s, &r);
            return;
        }
    }
    update_pause(s);
}

static void free_backlog(session *s)
{
    for (backlogged *b = s->backlog, *n; b; b = n) {
        n = b->next;
        s->srv->backlog_bytes -= b->hdr.len + BACKLOG_OVERHEAD;
        free(b->payload);
        free(b);
    }
    s->backlog = s->backlog_tail = NULL;
    s->nbacklog = 0;
    s->backlog_bytes = 0;
}

/* Takes the parked jobs of session s for module m out of the parked list:
 * oldest first. */
static sjob *take_parked(session *s, const module *m)
{
    sjob **pp = &s->parked;
    sjob *keep = NULL, *run = NULL;
    while (*pp) {
        sjob *j = *pp;
        *pp = j->next;
        if (j->mod == m) {
            j->next = run;
            run = j;
            s->nparked--;
        } else {
            j->next = keep;
            keep = j;
        }
    }
    /* Both lists are reversed now: put the kept ones back as they were. */
    while (keep) {
        sjob *n = keep->next;
        keep->next = s->parked;
        s->parked = keep;
        keep = n;
    }
    return run; /* oldest first: the parked list is newest first */
}

/* Module m is here: the parked jobs of s for it become runnable. */
static void unpark(session *s, const module *m)
{
    for (sjob *j = take_parked(s, m), *n; j; j = n) {
        n = j->next;
        queue_job(s, j);
    }
    int i = ask_index(s, m);
    if (i >= 0)
        drop_ask(s, i);
}

/* Parked jobs whose module was asked for more than --module-timeout ago end
 * PP_ELOAD: a client that never sends it does not hold them for ever. */
static void expire_asks(session *s, double now)
{
    server *srv = s->srv;
    for (int i = 0; i < s->nasks;) {
        module *m = s->asks[i].mod;
        if (now - s->asks[i].since <= srv->cfg->module_timeout) {
            i++;
            continue;
        }
        char hex[2 * PP_SHA256_LEN + 1], text[PP_ERR_LEN];
        pp_hex(m->hash, PP_SHA256_LEN, hex);
        snprintf(text, sizeof text, "module %.16s... did not come within %g s of being "
                                    "asked for", hex, srv->cfg->module_timeout);
        size_t n = 0;
        for (sjob *j = take_parked(s, m), *next; j; j = next, n++) {
            next = j->next;
            send_failure(s, j->id, PP_ELOAD, text);
            free_job(j);
        }
        pp_log(&srv->log, PP_LOG_WARN, "%s: %s: %zu job(s) ended %s", s->peer, text, n,
               pp_strerror(PP_ELOAD));
        drop_ask(s, i); /* the last one moved to i */
    }
    update_pause(s);
}

static int on_module(session *s, const pp_frame *f, refusal *r)
{
    server *srv = s->srv;
    pp_msg_module m;
    if (pp_proto_module_decode(f, &m) != 0)
        return refuse(r, PP_E_PROTOCOL, PP_LOG_WARN, "malformed MODULE frame");
    char hex[2 * PP_SHA256_LEN + 1];
    pp_hex(m.hash, PP_SHA256_LEN, hex);
    /* Only a module this client was asked for: nobody fills the cache (or
     * the table) with modules no job needs. */
    module *mod = modules_find(srv, m.hash);
    int ai = mod ? ask_index(s, mod) : -1;
    if (!mod || (ai < 0 && !mod->present))
        return refuse(r, PP_E_PROTOCOL, PP_LOG_WARN, "module %.16s... refused: not asked for",
                      hex);
    if (mod->present) { /* another client sent it first */
        if (ai >= 0)
            drop_ask(s, ai);
        return 0;
    }
    void *data = NULL;
    size_t len = 0;
    char err[PP_ERR_LEN];
    if (pp_zip_inflate(m.zip, m.ziplen, PP_MODULE_MAX, &data, &len, err) != 0)
        return refuse(r, PP_E_LIMIT, PP_LOG_WARN, "module refused: %s", err);
    if (pp_module_store_as(srv->cfg->cache_dir, m.hash, data, len, (gid_t)srv->module_group,
                           err) != 0) {
        free(data);
        return refuse(r, PP_E_PROTOCOL, PP_LOG_WARN, "module refused: %s", err);
    }
    free(data);
    pp_log(&srv->log, PP_LOG_INFO, "%s: module %.16s... stored (%zu bytes)", s->peer, hex, len);
    mod->present = 1;
    modules_stored(srv, mod, len);
    for (session *o = srv->sessions; o; o = o->next) /* every client that waits for it */
        unpark(o, mod);
    return 0;
}

/* ---- CANCEL ---- */

/* Takes the queued jobs of s with this id out of its queue: a list. */
static sjob *take_queued(session *s, uint64_t id)
{
    sjob *out = NULL;
    for (int i = 0; i < s->nfifos; i++) {
        prio_fifo *q = &s->fifos[i];
        sjob *prev = NULL;
        for (sjob *j = q->head, *n; j; j = n) {
            n = j->next;
            if (j->id != id) {
                prev = j;
                continue;
            }
            if (prev)
                prev->next = n;
            else
                q->head = n;
            if (q->tail == j)
                q->tail = prev;
            s->nqueued--;
            j->next = out;
            out = j;
        }
        if (!q->head) {
            fifo_drop_if_empty(s, i);
            i--;
        }
    }
    return out;
}

/* The same for jobs parked for their module. */
static sjob *take_parked_id(session *s, uint64_t id)
{
    sjob *out = NULL;
    for (sjob **pp = &s->parked; *pp;) {
        sjob *j = *pp;
        if (j->id != id) {
            pp = &j->next;
            continue;
        }
        *pp = j->next;
        s->nparked--;
        j->next = out;
        out = j;
    }
    return out;
}

/* Drops the JOB frames with this id still waiting for the budgets;
 * returns how many. */
static int drop_backlogged(session *s, uint64_t id)
{
    int n = 0;
    backlogged *prev = NULL;
    for (backlogged *b = s->backlog, *next; b; b = next) {
        next = b->next;
        if (b->hdr.id != id) {
            prev = b;
            continue;
        }
        if (prev)
            prev->next = next;
        else
            s->backlog = next;
        if (s->backlog_tail == b)
            s->backlog_tail = prev;
        s->nbacklog--;
        s->backlog_bytes -= b->hdr.len + BACKLOG_OVERHEAD;
        s->srv->backlog_bytes -= b->hdr.len + BACKLOG_OVERHEAD;
        free(b->payload);
        free(b);
        n++;
    }
    return n;
}

static int cancel_match(pp_pool_job *pj, void *arg)
{
    return PP_CONTAINER_OF(pj, sjob, pj) == arg;
}

/* CANCEL: the client's job with this id ends PP_CANCELLED, once.  Not run
 * yet (waiting for the budgets, for its module, or queued): dropped and
 * answered now.  On a worker: the pool kills that worker (its process
 * group too) and starts another, and the job comes back through
 * session_job_done (it ran) or session_job_requeue (it was waiting behind
 * another job there), both of which answer it.  Answered already or never
 * sent: nothing to do -- the client has, or will get, its one result.
 * Only this session's jobs are looked at. */
static int on_cancel(session *s, const pp_frame *f, refusal *r)
{
    server *srv = s->srv;
    if (pp_proto_cancel_decode(f) != 0)
        return refuse(r, PP_E_PROTOCOL, PP_LOG_WARN, "malformed CANCEL frame (%u payload "
                                                     "bytes)", f->hdr.len);
    uint64_t id = f->hdr.id;
    int n = drop_backlogged(s, id);
    for (int k = 0; k < n; k++)
        send_failure(s, id, PP_CANCELLED, CANCEL_TEXT);
    sjob *list = take_queued(s, id), *parked = take_parked_id(s, id);
    for (int pass = 0; pass < 2; pass++) {
        for (sjob *j = pass ? parked : list, *next; j; j = next, n++) {
            next = j->next;
            send_failure(s, id, PP_CANCELLED, CANCEL_TEXT);
            free_job(j);
        }
    }
    for (sjob *j = s->running; j; j = j->rnext) {
        if (j->id != id || j->cancelled)
            continue;
        j->cancelled = 1;
        n++;
        if (srv->pool)
            pp_pool_cancel_if(srv->pool, cancel_match, j);
        break; /* the running list may have changed: one per CANCEL */
    }
    if (n)
        pp_log(&srv->log, PP_LOG_DEBUG, "%s: job %llu cancelled by the client", s->peer,
               (unsigned long long)id);
    update_pause(s);
    return 0;
}

/* STATUS: the node's status as text (status.c), to this authenticated
 * client only. */
static int on_status(session *s, const pp_frame *f, refusal *r)
{
    if (f->hdr.len != 0)
        return refuse(r, PP_E_PROTOCOL, PP_LOG_WARN, "malformed STATUS (a payload)");
    node_status st;
    pp_buf b;
    pp_buf_init(&b, PP_STATUS_REPLY_MAX);
    int rc = status_collect(s->srv, &st);
    if (rc == 0)
        rc = status_render(&st, &b);
    status_free(&st);
    if (rc == 0 && pp_conn_send(s->conn, PP_T_STATREPLY, 0, f->hdr.id, b.data, b.len) != 0)
        rc = -1;
    pp_buf_reset(&b);
    if (rc != 0) /* no memory, or an output queue full: the client may ask again */
        pp_log(&s->srv->log, PP_LOG_WARN, "%s: STATUS not answered (out of memory or the "
                                          "client's output is full)", s->peer);
    return 0;
}

static int on_ready_frame(session *s, const pp_frame *f, refusal *r)
{
    switch (f->hdr.type) {
    case PP_T_STATUS:
        return on_status(s, f, r);
    case PP_T_RJOB:
        return on_job(s, f, r);
    case PP_T_CANCEL:
        return on_cancel(s, f, r);
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

/* A refused frame in the statistics: in the handshake (a wrong secret is
 * counted where it is found), or from an authenticated client. */
static void count_refusal(session *s, const refusal *r)
{
    if (s->state != S_READY && r->code != PP_E_AUTH)
        s->srv->stats.handshake_errors++;
    else if (s->state == S_READY && r->code == PP_E_PROTOCOL)
        s->srv->stats.frame_errors++;
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
    else if ((f->hdr.flags & ~PP_WIRE_F_ZLIB) && t != PP_T_RJOB)
        /* A batch is a job's; no other frame a client sends carries flags. */
        rc = refuse(&r, PP_E_PROTOCOL, PP_LOG_WARN, "frame %s with flags 0x%04x refused",
                    pp_proto_type_name(t, name), f->hdr.flags);
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
        count_refusal(s, &r);
        sess_refuse(s, &r);
    }
    return rc;
}

/* The TLS handshake is done: the inner proof will be bound to it. */
static void sess_ready(pp_conn *c, void *data)
{
    session *s = data;
    if (!s->srv->tls)
        return;
    if (pp_tls_binding(pp_conn_transport_ctx(c), s->binding) != 0) {
        sess_close_now(s, "cannot bind the handshake to the TLS session");
        return;
    }
    s->bound = 1;
}

/* A TLS handshake that failed because the client's key is not ours: a
 * wrong secret, counted and logged as one. */
static int tls_wrong_key(session *s)
{
    server *srv = s->srv;
    if (!srv->tls || s->state != S_HELLO || s->bound ||
        !pp_tls_wrong_key(pp_conn_transport_ctx(s->conn)))
        return 0;
    int n = lockout_count(srv, s->addr, pp_now());
    srv->stats.refused[SRV_REF_TLS_KEY]++;
    pp_log(&srv->log, PP_LOG_WARN, "%s: authentication failed (the client's TLS key is not "
                                   "ours: wrong secret?); %d from this address within %.0f s",
           s->peer, n, srv->cfg->auth_lockout);
    return 1;
}

static void sess_closed(pp_conn *c, const char *why, void *data)
{
    session *s = data;
    if (tls_wrong_key(s)) {
        session_free(s);
        return;
    }
    if (s->state == S_HELLO || s->state == S_AUTH)
        s->srv->stats.handshake_errors++;
    else if (s->state == S_READY && pp_conn_bad_frame(c))
        s->srv->stats.frame_errors++;
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
    /* TLS; or plaintext that tells a TLS client so (--no-tls). */
    pp_transport tr;
    char err[PP_ERR_LEN];
    if (srv->tls ? pp_tls_transport(srv->tls, &tr, err) != 0
                 : pp_tls_sniff_transport(srv->plain_reply, srv->plain_reply_len, &tr) != 0) {
        free(s);
        return NULL;
    }
    pp_conn_cbs cbs = {.on_frame = sess_frame, .on_close = sess_closed, .on_ready = sess_ready};
    s->conn = pp_conn_new(srv->loop, fd, fd, PP_PREAUTH_MAX, PP_T_NET_MAX, &tr, &cbs, s);
    if (!s->conn) {
        if (tr.ops->free)
            tr.ops->free(tr.ctx);
        free(s);
        return NULL;
    }
    s->state = S_HELLO;
    s->last_rx = pp_now();
    s->connected_at = s->last_rx;
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

void session_free(session *s)
{
    server *srv = s->srv;
    leave_handshake(s);
    pp_timer_stop(srv->loop, &s->timer);
    uint64_t in, out;
    pp_conn_counts(s->conn, &in, &out); /* live connections are counted by metrics.c */
    srv->stats.bytes_in += in;
    srv->stats.bytes_out += out;
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
    for (int i = 0; i < s->nfifos; i++) {
        for (sjob *j = s->fifos[i].head, *n; j; j = n) {
            n = j->next;
            free_job(j);
        }
    }
    free(s->fifos);
    for (sjob *j = s->parked, *n; j; j = n) {
        n = j->next;
        free_job(j);
    }
    free_backlog(s);
    while (s->nasks)
        drop_ask(s, s->nasks - 1);
    /* Its jobs on workers are stopped: nobody waits for them any more, and
     * another client's jobs must not wait behind them. */
    size_t running = s->nrunning;
    for (sjob *j = s->running; j; j = j->rnext)
        j->sess = NULL; /* the node's budget keeps their bytes until they end */
    if (running && srv->pool && !srv->stopping) { /* at shutdown the pool goes anyway */
        pp_log(&srv->log, PP_LOG_INFO, "%s: client gone: stopping its %zu job(s) on workers",
               s->peer, running);
        pp_pool_cancel_if(srv->pool, orphaned, NULL);
    }
    free(s->asks);
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

/* pp_conn's release of a result written from its shared buffer. */
static void release_shm(void *b)
{
    pp_shm_unref(b);
}

void session_job_done(sjob *j, int status, void *block, const char *data, size_t len,
                      uint64_t run_ns)
{
    session *s = j->sess;
    pp_shm *rshm = j->pj.rshm; /* a large result, where the worker wrote it */
    j->pj.rshm = NULL;
    j->srv->freed += len; /* the result's block goes once written */
    if (s && j->cancelled && status == PP_CANCELLED) {
        /* Killed on its worker at the client's request: the client hears
         * why in its own words, not the pool's. */
        running_remove(s, j);
        send_failure(s, j->id, PP_CANCELLED, CANCEL_TEXT);
        update_pause(s);
    } else if (s) {
        running_remove(s, j);
        /* A batch result goes as the worker made it, flagged as one. */
        uint16_t batch = j->pj.rflags & PP_WIRE_F_BATCH;
        uint8_t head[PP_RESULT_HDR];
        pp_proto_result_head(head, status, run_ns);
        void *zip;
        size_t ziplen;
        if (pp_zpolicy_maybe(&s->zp, pp_zpolicy_parse(s->srv->cfg->compress),
                             pp_conn_link_rate(s->conn), head, sizeof head, data, len, &zip,
                             &ziplen) == 1) {
            free(block);
            pp_shm_unref(rshm);
            rshm = NULL;
            block = zip;
            if (pp_conn_send_ref(s->conn, PP_T_RRESULT, PP_WIRE_F_ZLIB | batch, j->id, NULL, 0,
                                 zip, ziplen, free, zip) == 0)
                block = NULL;
        } else if (pp_conn_send_ref(s->conn, PP_T_RRESULT, batch, j->id, head, sizeof head,
                                    data, len, rshm ? release_shm : free,
                                    rshm ? (void *)rshm : block) == 0) {
            block = NULL; /* the conn frees it once written */
            rshm = NULL;
        }
        update_pause(s);
    }
    free(block);
    pp_shm_unref(rshm);
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
    if (j->cancelled) {
        /* Cancelled while it waited on a worker: taken back unrun, so it
         * ends here instead of running later. */
        send_failure(s, j->id, PP_CANCELLED, CANCEL_TEXT);
        free_job(j);
        update_pause(s);
        return;
    }
    queue_job_at(s, j, 1);
}

sjob *session_peek_job(const session *s)
{
    return s->nfifos ? s->fifos[0].head : NULL;
}

sjob *session_next_job(session *s)
{
    if (!s->nfifos)
        return NULL;
    prio_fifo *q = &s->fifos[0];
    sjob *j = q->head;
    q->head = j->next;
    if (!q->head) {
        q->tail = NULL;
        fifo_drop_if_empty(s, 0);
    }
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
    expire_asks(s, now);
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
    if (output_bound || s->backlog) /* or we stopped reading it for our budgets */
        s->last_rx = now;
    if (now - s->last_rx > srv->cfg->dead_after) {
        pp_log(&srv->log, PP_LOG_WARN, "%s: no frame for %.1f s; closing", s->peer,
               now - s->last_rx);
        session_free(s);
        return;
    }
    if (srv->cfg->idle_timeout > 0 && !s->nqueued && !s->nparked && !s->nrunning &&
        !s->backlog && now - s->last_job > srv->cfg->idle_timeout) {
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
    /* Only a client silent for a heartbeat is asked: one that sends jobs
     * or PINGs of its own is alive, and an answer costs it a write.  A
     * client with no job here PINGs every 5 heartbeats itself (libpp): it
     * is asked only when that is late, well before dead_after. */
    int idle = !s->nqueued && !s->nparked && !s->nrunning && !s->backlog;
    double quiet = idle ? 0.6 * srv->cfg->dead_after : srv->cfg->heartbeat;
    if (now - s->last_rx >= PP_MAX(quiet, srv->cfg->heartbeat))
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
