/* SPDX-License-Identifier: MIT */
/* remote.c -- the remote backend: one per ppserver node.  The mutual
 * handshake (pp_handshake.h: the client proves first and believes the node
 * only after the node's proof), modules shipped on demand, many jobs in
 * flight (the node's CPUs times a depth that grows as jobs get shorter and
 * the round trip longer), heartbeats, and failover: a node that dies,
 * freezes or says BYE has its jobs queued again (a failure counts against
 * the job's attempts) and is retried with backoff.  Reaching the node
 * (lookup, addresses, connect) is connect.c's.
 *
 * The idle pool: with more than max_idle_nodes nodes holding none of our
 * jobs, the longest idle lose their connection (each one's TLS state is
 * most of what a node costs here) and go dormant; they count as capacity
 * and are reconnected as soon as the queued jobs exceed what the open
 * nodes took (pool_hook).
 *
 * Every dispatch has its own id (slot | sequence << SLOT_BITS): a result is
 * taken only from the connection and slot it was sent to, so a late
 * duplicate from a connection already given up never reaches the caller.
 *
 * Errors: a frame handler returns 0 to go on, or -1 with a `failure` filled
 * in; r_frame() alone then ends the connection (r_lost). */
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "connect.h"
#include "pp_conn.h"
#include "pp_handshake.h"
#include "pp_net.h"
#include "pp_proto.h"
#include "pp_tls.h"
#include "pp_zip.h"
#include "pp_zpolicy.h"
#include "tags.h"

#define SLOT_BITS 12
#define MAX_SLOTS (1u << SLOT_BITS)
#define HANDSHAKE_TIMEOUT 10.0
#define BACKOFF_MIN 0.1
#define BACKOFF_MAX 2.0
#define AUTH_RETRY 30.0           /* a refused secret is not retried in a storm */
/* Results of this size and up are received into shared buffers (reused
 * pages) and read in place; smaller ones are received on the heap (fresh
 * pages cost little next to their round trip), so that a program holding
 * many results does not hold a buffer and its descriptor for each. */
#define RESULT_SHM_MIN (1u << 20)
#define PREFETCH 2                /* jobs in flight beyond the CPUs' depth */
#define IDLE_HB 5                 /* heartbeats between PINGs to a node holding
                                     none of our jobs */
#define IDLE_CLOSE_HB 10          /* heartbeats a node holds none of our jobs
                                     before its connection may be closed */

/* A node's connection, one state at a time. */
typedef enum node_state {
    N_DOWN,       /* not connected; the next attempt when `timer` fires (backoff) */
    N_REFUSED,    /* it refused our secret, could not prove its own, or speaks no
                     version of ours: the next attempt after AUTH_RETRY */
    N_CONNECTING, /* the connector looks the name up and connects */
    N_HELLO,      /* HELLO sent; waiting for CHALLENGE (HANDSHAKE_TIMEOUT) */
    N_PROOF,      /* PROOF sent; waiting for ACCEPT */
    N_UP,         /* authenticated: jobs flow */
    N_REMOVED,    /* drained and disconnected (pp_remove_node): until wanted again */
    N_DORMANT,    /* idle, closed by us (the idle pool): reconnected when jobs wait */
} node_state;

static const char *const state_names[] = {"down", "refused", "connecting", "hello",
                                          "proof", "up", "removed", "dormant"};

typedef struct slot {
    pp_job *job;
    uint64_t id;
    int cancel_sent;              /* CANCEL sent for it */
} slot;

typedef struct remote {
    pp_backend b;                 /* the scheduler's handle (first) */
    node_state state;
    pp_connector cx;
    pp_conn *conn;
    void *tls;                    /* the conn's TLS transport, or NULL (plaintext) */
    uint8_t binding[PP_HS_BINDING_LEN]; /* the TLS session's, for the inner proof */
    pp_hs hs;
    pp_timer timer;               /* handshake deadline, or the next attempt */
    pp_timer hb;                  /* heartbeat */
    uint32_t hb_rand;             /* xorshift state: this node's heartbeat jitter */
    double busy_since;            /* when it last got a job while holding none */
    double backoff;
    double last_rx;
    int ncpus;
    uint32_t max_frame;
    double avg_ns;                /* moving average of job run time there */
    double rtt;                   /* moving average of the round trip, seconds */
    double hello_sent;            /* when HELLO went out (first RTT sample) */
    slot *slots;                  /* MAX_SLOTS, allocated on first use */
    uint32_t *freelist;
    uint32_t nfree;
    int inflight;
    uint64_t seq;
    int quiet;                    /* "cannot reach" was logged for this streak */
    int refused_before;           /* the refusal was logged for this streak */
    int draining;                 /* no new jobs; disconnect once none is left */
    pp_addrs_fn seen;             /* told what lookups of the name found */
    char why[PP_ERR_LEN];         /* why the last connection ended */
    uint64_t seen_in, seen_out;   /* conn's byte counts already in the node's */
    pp_zpolicy zp;                /* this link's compression estimates */
    struct remote *iprev, *inext; /* in the pool's idle list */
    int in_idle;
    double idle_since;            /* when it last held none of our jobs */
    long waking;                  /* room counted on while it reconnects from
                                     dormant (in the pool's `waking`) */
    double wake_by;               /* reconnecting from dormant: up by then or
                                     failed (node_timeout), else 0 */
} remote;

/* The server's open nodes holding none of our jobs, and its dormant ones. */
typedef struct remote_pool {
    remote *head, *tail;          /* idle and open, longest idle first */
    int nidle;
    int ndormant;
    long waking;                  /* room of dormant nodes reconnecting for jobs */
    int nremotes;                 /* backends using it: the last one frees it */
    pp_timer timer;               /* the longest idle's period ends */
} remote_pool;

/* How a frame handler failed. */
typedef struct failure {
    char why[PP_ERR_LEN + 64];
    int node_failed;              /* counts against the jobs' attempts */
    int refused;                  /* N_REFUSED: retry only after AUTH_RETRY */
    int no_version;               /* no common version: retry after AUTH_RETRY too */
} failure;

static int fail(failure *f, int node_failed, int refused, const char *fmt, ...) PP_PRINTF(4, 5);
static int fail(failure *f, int node_failed, int refused, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->why, sizeof f->why, fmt, ap);
    va_end(ap);
    f->node_failed = node_failed;
    f->refused = refused;
    return -1;
}

static remote *of(pp_backend *b)
{
    return (remote *)b;
}

static void r_connect(remote *r);
static void idle_update(remote *r);

/* The conn's bytes since the last look, into the node's counters (atomic:
 * pp_get_stats() reads them without the scheduler).  Called as frames
 * come and go and before the conn is freed, so none is missed. */
static void r_count(remote *r)
{
    if (!r->conn)
        return;
    uint64_t in, out;
    pp_conn_counts(r->conn, &in, &out);
    atomic_fetch_add_explicit(&r->b.node->bytes_in, in - r->seen_in, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->b.node->bytes_out, out - r->seen_out, memory_order_relaxed);
    r->seen_in = in;
    r->seen_out = out;
}

/* The one place the state changes; the node's public state follows it. */
static void set_state(remote *r, node_state st)
{
    static const int public_state[] = {
        [N_DOWN] = PP_NODE_DOWN,          [N_REFUSED] = PP_NODE_AUTH_FAILED,
        [N_CONNECTING] = PP_NODE_CONNECTING, [N_HELLO] = PP_NODE_CONNECTING,
        [N_PROOF] = PP_NODE_CONNECTING,   [N_UP] = PP_NODE_UP,
        [N_REMOVED] = PP_NODE_REMOVED,    [N_DORMANT] = PP_NODE_DORMANT,
    };
    pp_server *s = r->b.s;
    remote_pool *p = s->rpool;
    p->ndormant += (st == N_DORMANT) - (r->state == N_DORMANT);
    if (r->waking && st != N_CONNECTING && st != N_HELLO && st != N_PROOF) {
        p->waking -= r->waking; /* it came up, or failed as any node does */
        r->waking = 0;
    }
    if (st != N_CONNECTING && st != N_HELLO && st != N_PROOF)
        r->wake_by = 0;
    r->state = st;
    idle_update(r);
    pthread_mutex_lock(&s->mu);
    r->b.node->state = r->draining && st != N_REMOVED ? PP_NODE_DRAINING : public_state[st];
    if (st == N_UP)
        r->b.node->ncpus = r->ncpus;
    else if (st == N_REMOVED)
        r->b.node->ncpus = 0;
    snprintf(r->b.node->why, sizeof r->b.node->why, "%s", r->why);
    pthread_mutex_unlock(&s->mu);
}

/* ---- losing the connection ---- */

/* A drained node goes: connection, timers and attempts stopped. */
static void r_retire(remote *r)
{
    pp_server *s = r->b.s;
    pp_timer_stop(s->loop, &r->timer);
    pp_timer_stop(s->loop, &r->hb);
    pp_connector_stop(&r->cx);
    if (r->conn) {
        r_count(r);
        pp_conn_free(r->conn);
        r->conn = NULL;
    }
    r->tls = NULL;
    pp_hs_wipe(&r->hs);
    snprintf(r->why, sizeof r->why, "removed");
    set_state(r, N_REMOVED);
    pp_log(&s->log, PP_LOG_INFO, "%s: node removed", r->b.node->name);
}

/* Ends the connection.  Jobs in flight go back to the queue; when the node
 * failed (not a BYE) that counts as an attempt, and a job out of attempts
 * ends PP_LOST.  A refusal (or, `slow`, another version) waits AUTH_RETRY
 * before the next attempt. */
static void r_lost(remote *r, const char *why, int node_failed, int refused, int slow)
{
    pp_server *s = r->b.s;
    int was_up = r->state == N_UP;
    /* A handshake began (TLS's, or ours) and failed, other than by a refusal. */
    int hs_failed = !was_up && !refused && (r->state == N_HELLO || r->state == N_PROOF ||
                                            (r->state == N_CONNECTING && (r->conn || r->tls)));
    snprintf(r->why, sizeof r->why, "%s", why);
    pp_timer_stop(s->loop, &r->hb);
    pp_connector_stop(&r->cx);
    if (r->conn) {
        r_count(r);
        pp_conn_free(r->conn); /* also drops queued bytes pointing into jobs */
        r->conn = NULL;
    }
    r->tls = NULL;
    pp_hs_wipe(&r->hs);
    int requeued = 0, lost = 0;
    for (uint32_t i = 0; r->slots && i < MAX_SLOTS; i++) {
        pp_job *j = r->slots[i].job;
        if (!j)
            continue;
        r->slots[i].job = NULL;
        r->freelist[r->nfree++] = i;
        if (node_failed && ++j->attempts >= s->max_attempts) {
            pp_sched_fail(s, j, PP_LOST, "lost: the nodes running it failed %d times "
                                         "(last %s: %s)", j->attempts, r->b.node->name, why);
            lost++;
        } else {
            pp_sched_requeue(s, j);
            requeued++;
        }
    }
    r->inflight = 0;
    pthread_mutex_lock(&s->mu);
    r->b.node->refusals += refused != 0;
    r->b.node->handshake_errors += hs_failed;
    r->b.node->drops += was_up;
    r->b.node->requeued += (uint64_t)requeued;
    pthread_mutex_unlock(&s->mu);
    if (was_up) {
        pp_log(&s->log, PP_LOG_WARN, "%s: node down: %s (%d job(s) re-queued, %d lost)",
               r->b.node->name, why, requeued, lost);
    } else if (!refused && !r->quiet) {
        pp_log(&s->log, PP_LOG_WARN, "%s: cannot reach the node: %s; retrying",
               r->b.node->name, why);
        r->quiet = 1;
    }
    r->refused_before |= refused;
    if (r->draining) {
        r_retire(r);
        if (requeued)
            pp_sched_poke(s);
        return;
    }
    set_state(r, refused ? N_REFUSED : N_DOWN);
    double delay = refused || slow ? AUTH_RETRY : r->backoff;
    r->backoff = r->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : r->backoff * 2;
    pp_timer_start(s->loop, &r->timer, pp_now() + delay);
    if (requeued)
        pp_sched_poke(s); /* other backends may take them now */
}

/* ---- timers ---- */

static void r_timer(pp_loop *loop, pp_timer *t)
{
    (void)loop;
    remote *r = t->data;
    if (r->state == N_DOWN || r->state == N_REFUSED)
        r_connect(r);
    else
        r_lost(r, r->conn ? "no handshake from the node in time"
                          : "no connection to the node in time", 0, 0, 0);
}

/* When the heartbeat timer of a node should fire, at the earliest `at`.
 * Plus up to a quarter of a heartbeat, different for each node and each
 * time, so that nodes that came up (or last spoke) together do not all
 * fire in one turn; then rounded up to an eighth of a heartbeat, so that
 * 1,000 nodes wake the loop 8 times a heartbeat, not 1,000 times. */
static double hb_when(remote *r, double at)
{
    uint32_t x = r->hb_rand;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    r->hb_rand = x;
    double hb = r->b.s->heartbeat, step = hb / 8;
    at += hb * 0.25 * (double)(x >> 8) / (double)(1u << 24);
    return ceil(at / step) * step;
}

/* A PING goes only to a node silent for a heartbeat: one sending results,
 * or its own PINGs, is alive, and with many idle nodes the PINGs were most
 * of the client's work.  The timer waits for a heartbeat of silence; while
 * the node stays silent it PINGs every heartbeat, and past node_timeout the
 * node is dead. */
static void r_heartbeat(pp_loop *loop, pp_timer *t)
{
    remote *r = t->data;
    pp_server *s = r->b.s;
    if (r->state != N_UP)
        return;
    /* A node holding none of our jobs is asked every IDLE_HB heartbeats:
     * its death costs no job, only a later notice.  A busy one is judged
     * from when it got work, not by an idle silence before. */
    double every = r->inflight ? s->heartbeat : IDLE_HB * s->heartbeat;
    double limit = r->inflight ? s->node_timeout : s->node_timeout + every;
    double now = pp_now(), silent = now - r->last_rx;
    double judged = r->inflight && r->busy_since > r->last_rx ? now - r->busy_since : silent;
    if (judged > limit) {
        char why[96];
        snprintf(why, sizeof why, "no frame from the node for %.1f s", silent);
        r_lost(r, why, 1, 0, 0);
        return;
    }
    if (silent < every) { /* it spoke since: wait for its silence */
        pp_timer_start(loop, t, hb_when(r, r->last_rx + every));
        return;
    }
    pp_conn_send(r->conn, PP_T_PING, 0, pp_proto_ping_token(now), NULL, 0);
    pp_conn_flush(r->conn);
    pp_timer_start(loop, t, hb_when(r, now + every));
}

/* ---- the handshake ---- */

static int on_challenge(remote *r, const pp_frame *f, failure *fl)
{
    r->rtt = pp_now() - r->hello_sent; /* the first sample: the handshake's */
    uint8_t mac[PP_MAC_LEN];
    if (pp_hs_client_challenge(&r->hs, f, mac) != PP_HS_OK)
        return fail(fl, 0, 0, "%s", r->hs.err);
    r->max_frame = r->hs.chal.max_frame;
    r->ncpus = (int)r->hs.chal.ncpus;
    if (pp_conn_send(r->conn, PP_T_PROOF, 0, 0, mac, sizeof mac) != 0)
        return fail(fl, 0, 0, "cannot send the proof");
    pp_conn_flush(r->conn);
    r->state = N_PROOF;
    return 0;
}

/* Handshakes leave holes in the heap: each one's temporary buffers
 * (OpenSSL's handshake buffer and key schedule) are freed once its
 * connection is up, between the long-lived objects of the connections
 * made meanwhile, and a heap keeps what it held (13 KB a node after a
 * thousand nodes came up at once).  After a burst of handshakes, the free
 * pages go back to the system half a second after its last one. */
enum { TRIM_AFTER_HANDSHAKES = 32 };

static void trim_fired(pp_loop *loop, pp_timer *t)
{
    (void)loop;
    pp_server *s = t->data;
    s->hs_since_trim = 0;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

static void handshake_done(pp_server *s)
{
    if (++s->hs_since_trim < TRIM_AFTER_HANDSHAKES)
        return;
    s->trim_timer.fn = trim_fired;
    s->trim_timer.data = s;
    pp_timer_start(s->loop, &s->trim_timer, pp_now() + 0.5); /* re-armed until the burst ends */
}

static int on_accept(remote *r, const pp_frame *f, failure *fl)
{
    pp_server *s = r->b.s;
    if (pp_hs_client_accept(&r->hs, f) != PP_HS_OK) {
        /* A node that cannot prove the secret gets no job. */
        pp_log(&s->log, PP_LOG_WARN, "%s: the node failed to prove the shared secret; no job "
                                     "is sent to it", r->b.node->name);
        return fail(fl, 0, 1, "the node failed to prove the secret");
    }
    pp_hs_wipe(&r->hs);
    pp_timer_stop(s->loop, &r->timer);
    /* The node's limit, checked: what it announces cannot make us accept
     * more than our own, nor wrap around. */
    uint32_t limit = r->max_frame && r->max_frame <= PP_MAX_FRAME ? r->max_frame : PP_MAX_FRAME;
    r->max_frame = limit; /* also what a compressed result may inflate to */
    pp_conn_set_limit(r->conn, limit + 1024);
    /* Large results land in reused pages; smaller ones on the heap. */
    pp_conn_use_shm(r->conn, s->shm, RESULT_SHM_MIN);
    r->backoff = BACKOFF_MIN;
    r->last_rx = pp_now();
    r->quiet = 0;
    r->refused_before = 0;
    pp_tags_set_backend(&r->b, NULL); /* none until a TAGS frame says */
    set_state(r, N_UP);
    handshake_done(s);
    pp_timer_start(s->loop, &r->hb, hb_when(r, r->last_rx + s->heartbeat));
    pp_log(&s->log, PP_LOG_INFO, "%s: node up with %d CPUs", r->b.node->name, r->ncpus);
    return 0;
}

static int on_error_frame(remote *r, const pp_frame *f, failure *fl)
{
    pp_server *s = r->b.s;
    pp_msg_error e;
    if (pp_proto_error_decode(f, &e) != 0)
        return fail(fl, r->state == N_UP, 0, "the node sent a malformed error frame");
    if (e.code == PP_E_AUTH) {
        if (!r->refused_before)
            pp_log(&s->log, PP_LOG_WARN, "%s: authentication failed: the node refused our "
                                         "secret (is it the same on both sides?)",
                   r->b.node->name);
        return fail(fl, 0, 1, "authentication failed");
    }
    if (e.code == PP_E_VERSION || e.code == PP_E_TLS) {
        /* Not retried in a storm: it lasts until one side is set up again. */
        pp_log(&s->log, PP_LOG_ERROR, "%s: the node said: %s", r->b.node->name, e.msg);
        fl->no_version = 1;
        return fail(fl, 0, 0, "the node said: %s", e.msg);
    }
    return fail(fl, r->state == N_UP, 0, "the node said: %s", e.msg);
}

/* ---- jobs ---- */

/* A result that came in a shared buffer moves to the heap when it is an
 * error text (a failed job may run again, locally too, where the pool
 * gives it a buffer of its own).  0, or -1 out of memory (the buffer
 * is dropped either way). */
static int result_to_heap(pp_shm **shm, uint8_t **block, pp_msg_result *m, size_t blen)
{
    const uint8_t *base = (*shm)->base;
    *block = malloc(blen + 1);
    if (*block) {
        memcpy(*block, base, blen);
        (*block)[blen] = 0;
        m->data = *block + (m->data - base);
    }
    pp_shm_unref(*shm);
    *shm = NULL;
    return *block ? 0 : -1;
}

static int on_result(remote *r, const pp_frame *f, failure *fl)
{
    pp_server *s = r->b.s;
    uint32_t i = (uint32_t)(f->hdr.id & (MAX_SLOTS - 1));
    if (!r->slots || !r->slots[i].job || r->slots[i].id != f->hdr.id)
        return fail(fl, 1, 0, "the node sent a result for no job it held");
    uint8_t *block = NULL;
    pp_shm *shm = NULL; /* a large plain result: received into a shared buffer */
    size_t blen = f->hdr.len;
    if (f->hdr.flags & PP_WIRE_F_ZLIB) {
        char err[PP_ERR_LEN];
        void *out = NULL;
        if (pp_zpolicy_inflate(&r->zp, f->payload, f->hdr.len, (size_t)r->max_frame + 1024u,
                               &out, &blen, err))
            return fail(fl, 1, 0, "bad compressed result: %s", err);
        block = out;
    } else if (!(shm = pp_conn_take_shm(r->conn, f))) {
        block = pp_conn_take(r->conn, f);
    }
    uint8_t *base = shm ? shm->base : block;
    if (!base)
        return fail(fl, 0, 0, "out of memory for a result");
    pp_msg_result m;
    if (pp_proto_result_decode(base, blen,
                               1u << PP_DONE | 1u << PP_FAILED | 1u << PP_ELOAD |
                                   1u << PP_CRASHED | 1u << PP_TIMEOUT | 1u << PP_CANCELLED,
                               &m) != 0) {
        free(block);
        pp_shm_unref(shm);
        return fail(fl, 1, 0, "the node sent a malformed result");
    }
    if (shm && m.status != PP_DONE && result_to_heap(&shm, &block, &m, blen) != 0)
        return fail(fl, 0, 0, "out of memory for a result");
    pp_job *j = r->slots[i].job;
    /* A batch result answers a batch job that ran, nothing else. */
    int batch = (f->hdr.flags & PP_WIRE_F_BATCH) != 0;
    if (batch != (m.status == PP_DONE && (j->pj.flags & PP_WIRE_F_BATCH))) {
        free(block);
        pp_shm_unref(shm);
        return fail(fl, 1, 0, "the node sent %s", batch ? "a batch result for a job that is "
                                                          "not a batch" : "a batch's result "
                                                          "without the batch flag");
    }
    r->slots[i].job = NULL;
    r->freelist[r->nfree++] = i;
    if (--r->inflight == 0 && r->draining)
        pp_sched_flush_due(s, &r->b); /* r_flush retires it */
    else if (!r->inflight)
        idle_update(r);
    r->avg_ns = r->avg_ns > 0 ? 0.8 * r->avg_ns + 0.2 * (double)m.run_ns : (double)m.run_ns;
    /* The data stays where it came, aligned: PP_RESULT_HDR bytes in; in
     * a shared buffer, the job holds it until pp_job_free(). */
    if (shm) {
        pp_shm_unref(j->pj.rshm);
        j->pj.rshm = shm;
    }
    pp_sched_finish(s, j, m.status, block, (const char *)m.data, m.len, r->b.node, m.run_ns);
    return 0;
}

/* Reads a whole module file (bounded). */
static void *read_module(const char *path, size_t *len, char *err)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        pp_seterr(err, "cannot open task module %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    void *buf = NULL;
    if (fstat(fileno(fp), &st) != 0 || st.st_size < 0 || (uint64_t)st.st_size > PP_MODULE_MAX) {
        pp_seterr(err, "task module %s is not a file of at most %u bytes", path, PP_MODULE_MAX);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf || fread(buf, 1, (size_t)st.st_size, fp) != (size_t)st.st_size) {
        pp_seterr(err, "cannot read task module %s", path);
        free(buf);
        buf = NULL;
        goto out;
    }
    *len = (size_t)st.st_size;
out:
    fclose(fp);
    return buf;
}

/* The node asks for a module it has not got: ours, if the hash is one of
 * our tasks' (else its jobs for that hash fail there). */
static int on_need(remote *r, const pp_frame *f, failure *fl)
{
    pp_server *s = r->b.s;
    const uint8_t *hash;
    if (pp_proto_need_decode(f, &hash) != 0)
        return fail(fl, 1, 0, "the node sent a malformed NEED");
    const char *path = NULL;
    pthread_mutex_lock(&s->mu);
    for (uint32_t t = 0; t < s->ntasks && !path; t++)
        if (!s->tasks[t]->hash_err && !memcmp(s->tasks[t]->hash, hash, PP_SHA256_LEN))
            path = s->tasks[t]->module; /* entries never change */
    pthread_mutex_unlock(&s->mu);
    if (!path)
        return 0;
    char err[PP_ERR_LEN];
    size_t len = 0, ziplen = 0;
    void *zip = NULL, *data = read_module(path, &len, err);
    if (data && pp_zip_deflate(data, len, 6, &zip, &ziplen) == 0 &&
        pp_conn_send_ref(r->conn, PP_T_MODULE, 0, 0, hash, PP_SHA256_LEN, zip, ziplen, free,
                         zip) == 0) {
        pp_sched_flush_due(s, &r->b);
        pp_log(&s->log, PP_LOG_INFO, "%s: sent module %s (%zu bytes, %zu compressed)",
               r->b.node->name, path, len, ziplen);
    } else {
        pp_log(&s->log, PP_LOG_ERROR, "%s: cannot send module %s: %s", r->b.node->name, path,
               data ? "compression failed" : err);
        free(zip);
    }
    free(data);
    return 0;
}

/* The node's tags (after ACCEPT): checked as anything from the network,
 * the node dropped when they are not tags.  A node that sends bad tags
 * will again, so it is retried only after AUTH_RETRY. */
static int on_tags(remote *r, const pp_frame *f, failure *fl)
{
    pp_server *s = r->b.s;
    pp_tags t;
    char why[PP_ERR_LEN];
    if (pp_proto_tags_decode(f, &t, why) != 0) { /* r_lost() logs it */
        fl->no_version = 1;
        return fail(fl, 1, 0, "the node sent bad tags: %s", why);
    }
    if (pp_tags_set_backend(&r->b, &t) != 0) {
        fl->no_version = 1;
        return fail(fl, 1, 0, "cannot keep the node's tags (too many distinct sets, or out "
                              "of memory)");
    }
    pp_log(&s->log, PP_LOG_INFO, "%s: node tags %s", r->b.node->name, r->b.node->tags);
    return 0;
}

/* A frame in state N_UP. */
static int on_up_frame(remote *r, const pp_frame *f, failure *fl)
{
    switch (f->hdr.type) {
    case PP_T_RRESULT:
        return on_result(r, f, fl);
    case PP_T_NEED:
        return on_need(r, f, fl);
    case PP_T_PING:
        pp_conn_send(r->conn, PP_T_PONG, 0, f->hdr.id, NULL, 0);
        pp_sched_flush_due(r->b.s, &r->b);
        return 0;
    case PP_T_PONG: {
        double sample = r->last_rx - pp_proto_token_time(f->hdr.id);
        if (sample >= 0 && sample < 60)
            r->rtt = 0.7 * r->rtt + 0.3 * sample;
        return 0;
    }
    case PP_T_NCPUS: {
        uint32_t n;
        if (pp_proto_ncpus_decode(f, &n) != 0)
            return fail(fl, 1, 0, "the node sent a malformed NCPUS");
        r->ncpus = (int)n;
        set_state(r, N_UP);
        return 0;
    }
    case PP_T_BYE:
        return fail(fl, 0, 0, "the node is shutting down");
    case PP_T_TAGS:
        return on_tags(r, f, fl);
    }
    char name[16];
    return fail(fl, 1, 0, "unexpected frame %s from the node",
                pp_proto_type_name(f->hdr.type, name));
}

static int r_frame(pp_conn *c, const pp_frame *f, void *data)
{
    (void)c;
    remote *r = data;
    r->last_rx = pp_now();
    r_count(r);
    failure fl = {.why = ""};
    int rc;
    char name[16];
    if (f->hdr.type == PP_T_ERROR)
        rc = on_error_frame(r, f, &fl);
    else if ((f->hdr.flags & (PP_WIRE_F_ZLIB | PP_WIRE_F_BATCH)) &&
             (r->state != N_UP || f->hdr.type != PP_T_RRESULT))
        rc = fail(&fl, r->state == N_UP, 0, "a flag (compressed, batch) on a frame that "
                                            "cannot have it");
    else if (r->state == N_HELLO && f->hdr.type == PP_T_CHALLENGE)
        rc = on_challenge(r, f, &fl);
    else if (r->state == N_PROOF && f->hdr.type == PP_T_ACCEPT)
        rc = on_accept(r, f, &fl);
    else if (r->state == N_UP)
        rc = on_up_frame(r, f, &fl);
    else
        rc = fail(&fl, 0, 0, "unexpected frame %s from the node in state %s",
                  pp_proto_type_name(f->hdr.type, name), state_names[r->state]);
    if (rc != 0 && r->state == N_UP && !fl.refused && f->hdr.type != PP_T_ERROR) {
        pthread_mutex_lock(&r->b.s->mu);
        r->b.node->frame_errors++;
        pthread_mutex_unlock(&r->b.s->mu);
    }
    if (rc != 0)
        r_lost(r, fl.why, fl.node_failed, fl.refused, fl.no_version);
    return rc;
}

static void r_closed(pp_conn *c, const char *why, void *data)
{
    remote *r = data;
    pp_server *s = r->b.s;
    /* A TLS handshake that failed: the secrets differ (as a refused proof),
     * or the node speaks plaintext; neither is retried in a storm. */
    int refused = r->state < N_UP && r->tls && pp_tls_wrong_key(r->tls);
    int mismatch = r->state < N_UP && strstr(why, "speaks plaintext") != NULL;
    if (refused && !r->refused_before)
        pp_log(&s->log, PP_LOG_WARN, "%s: authentication failed: the node refused our key (is "
                                     "the secret the same on both sides?)", r->b.node->name);
    if (mismatch && !r->quiet)
        pp_log(&s->log, PP_LOG_ERROR, "%s: %s", r->b.node->name, why);
    r_count(r);
    if (r->state == N_UP && pp_conn_bad_frame(c)) { /* its bytes were no frame */
        pthread_mutex_lock(&s->mu);
        r->b.node->frame_errors++;
        pthread_mutex_unlock(&s->mu);
    }
    r->conn = NULL;
    pp_conn_free(c);
    r_lost(r, why, r->state == N_UP, refused, mismatch);
}

/* ---- connecting ---- */

/* The transport's handshake (TLS) is done: our own, bound to it. */
static void r_ready(pp_conn *c, void *data)
{
    (void)c;
    remote *r = data;
    pp_server *s = r->b.s;
    const uint8_t *binding = NULL;
    if (r->tls) {
        if (pp_tls_binding(r->tls, r->binding) != 0) {
            r_lost(r, "cannot bind the handshake to the TLS session", 0, 0, 0);
            return;
        }
        binding = r->binding;
    }
    uint8_t hello[PP_HELLO_LEN];
    if (pp_hs_client_hello(&r->hs, &s->key, binding, hello) != PP_HS_OK ||
        pp_conn_send(r->conn, PP_T_HELLO, 0, 0, hello, sizeof hello) != 0) {
        r_lost(r, r->hs.err[0] ? r->hs.err : "cannot send HELLO", 0, 0, 0);
        return;
    }
    pp_conn_flush(r->conn);
    r->hello_sent = pp_now();
    r->state = N_HELLO;
}

static void r_connected(pp_connector *cx, int fd, const char *why)
{
    remote *r = cx->data;
    pp_server *s = r->b.s;
    if (fd < 0) {
        r_lost(r, why, 0, 0, 0);
        return;
    }
    char err[PP_ERR_LEN];
    pp_transport tr;
    if (s->tls && pp_tls_transport(s->tls, &tr, err) != 0) {
        close(fd);
        r_lost(r, err, 0, 0, 0);
        return;
    }
    pp_conn_cbs cbs = {.on_frame = r_frame, .on_close = r_closed, .on_ready = r_ready};
    r->conn = pp_conn_new(s->loop, fd, fd, PP_PREAUTH_MAX, PP_T_NET_MAX, s->tls ? &tr : NULL,
                          &cbs, r);
    if (!r->conn) {
        if (s->tls)
            tr.ops->free(tr.ctx);
        close(fd);
        r_lost(r, "out of memory", 0, 0, 0);
        return;
    }
    r->tls = s->tls ? tr.ctx : NULL;
    r->seen_in = r->seen_out = 0;
    /* The deadline covers TLS and our handshake: trickling does not extend it.
     * A node woken for jobs waiting has node_timeout, as a busy one. */
    double by = pp_now() + HANDSHAKE_TIMEOUT;
    pp_timer_start(s->loop, &r->timer, r->wake_by && r->wake_by < by ? r->wake_by : by);
}

static void r_connect(remote *r)
{
    pp_server *s = r->b.s;
    pthread_mutex_lock(&s->mu);
    r->b.node->connects++;
    pthread_mutex_unlock(&s->mu);
    set_state(r, N_CONNECTING);
    pp_connector_start(&r->cx);
}

/* ---- the idle pool ---- */

/* Closes the longest idle connections while more than max_idle_nodes are
 * open, each once it held none of our jobs for IDLE_CLOSE_HB heartbeats;
 * not while jobs it could run are queued (they may be on their way to
 * it).  Re-arms itself for the next one due. */
static void pool_timer(pp_loop *loop, pp_timer *t);

static void pool_arm(pp_server *s)
{
    remote_pool *p = s->rpool;
    if (s->max_idle_nodes < 0 || p->nidle <= s->max_idle_nodes || pp_timer_armed(&p->timer))
        return;
    pp_timer_start(s->loop, &p->timer, p->head->idle_since + IDLE_CLOSE_HB * s->heartbeat);
}

/* The node joins or leaves the idle list as it holds jobs or not. */
static void idle_update(remote *r)
{
    remote_pool *p = r->b.s->rpool;
    int idle = r->state == N_UP && !r->inflight && !r->draining;
    if (idle == r->in_idle)
        return;
    r->in_idle = idle;
    if (idle) {
        r->idle_since = pp_now();
        r->iprev = p->tail;
        r->inext = NULL;
        if (p->tail)
            p->tail->inext = r;
        else
            p->head = r;
        p->tail = r;
        p->nidle++;
        pool_arm(r->b.s);
        return;
    }
    if (r->iprev)
        r->iprev->inext = r->inext;
    else
        p->head = r->inext;
    if (r->inext)
        r->inext->iprev = r->iprev;
    else
        p->tail = r->iprev;
    r->iprev = r->inext = NULL;
    p->nidle--;
}

static void handshake_done(pp_server *s);

/* Closes an idle node's connection as a client leaving does (TLS
 * close_notify, then FIN: the node frees the session and logs it at info
 * level), keeping its line, CPUs, tags and statistics.  Its job table goes
 * too: it holds no job. */
static void r_sleep(remote *r)
{
    pp_server *s = r->b.s;
    double idle = pp_now() - r->idle_since;
    pp_timer_stop(s->loop, &r->hb);
    pp_timer_stop(s->loop, &r->timer);
    r_count(r);
    pp_conn_free(r->conn);
    r->conn = NULL;
    r->tls = NULL;
    free(r->slots);
    free(r->freelist);
    r->slots = NULL;
    r->freelist = NULL;
    r->nfree = 0;
    r->why[0] = 0;
    set_state(r, N_DORMANT);
    pp_log(&s->log, PP_LOG_INFO, "%s: idle for %.1f s: connection closed until jobs need the "
                                 "node", r->b.node->name, idle);
    handshake_done(s); /* a burst of closes leaves the heap as a burst of handshakes */
}

/* The jobs queued now that could run on b: the untagged ones, and those
 * whose tags b has. */
static size_t jobs_for(pp_server *s, const pp_backend *b)
{
    size_t n = s->ready.n;
    for (pp_tagset *ts = s->tw ? s->tw->active : NULL; ts; ts = ts->anext)
        if (ts->q.n && b->tags && pp_tags_subset(&ts->tags, b->tags))
            n += ts->q.n;
    return n;
}

static void pool_timer(pp_loop *loop, pp_timer *t)
{
    pp_server *s = t->data;
    remote_pool *p = s->rpool;
    double now = pp_now(), period = IDLE_CLOSE_HB * s->heartbeat;
    while (p->nidle > s->max_idle_nodes && now - p->head->idle_since >= period) {
        /* Jobs it could run wait: look again later.  Jobs that need tags
         * it lacks keep it open no longer than any other. */
        if (jobs_for(s, &p->head->b)) {
            pp_timer_start(loop, t, now + s->heartbeat);
            return;
        }
        r_sleep(p->head);
    }
    pool_arm(s);
}

/* What the node took the last time it was up: the room r_room() gives an
 * idle node. */
static long r_cap(const remote *r)
{
    long cap = (long)r->ncpus * pp_pipeline_depth(PP_PIPELINE_NODE_S, r->avg_ns * 1e-9, r->rtt) +
               PREFETCH;
    return cap > (long)MAX_SLOTS ? (long)MAX_SLOTS : cap;
}

/* A dormant node reconnects (the usual handshake) for the jobs queued; if
 * that fails it is a node down like any other (backoff, retries). */
static void r_wake(remote *r)
{
    pp_server *s = r->b.s;
    remote_pool *p = s->rpool;
    r->waking = r->ncpus > 0 ? r_cap(r) : 0; /* one with no CPU may have some now */
    p->waking += r->waking;
    r->backoff = BACKOFF_MIN;
    /* Jobs wait for it, the other dormant nodes not woken for them: one
     * that stays silent (frozen, or a peer that accepts and says nothing)
     * fails after node_timeout, as a busy node does, not after the 10 s of
     * a handshake. */
    r->wake_by = pp_now() + s->node_timeout;
    r_connect(r); /* may end (a failure) before it returns: waking is set first */
    if (r->wake_by && (!pp_timer_armed(&r->timer) || r->timer.when > r->wake_by))
        pp_timer_start(s->loop, &r->timer, r->wake_by);
}

/* After each dispatch: jobs still queued exceed what the open nodes took,
 * so dormant nodes reconnect, as many as their room covers the jobs not
 * yet covered by those already reconnecting.  Costs nothing while no node
 * is dormant or nothing waits. */
static void pool_hook(pp_loop *loop, void *data)
{
    (void)loop;
    pp_server *s = data;
    remote_pool *p = s->rpool;
    if (!p || !p->ndormant)
        return;
    size_t queued = s->ready.n + (s->tw ? s->tw->n : 0);
    for (int i = 0; i < s->nbackends && p->ndormant && queued > (size_t)p->waking; i++) {
        pp_backend *b = s->backends[i];
        /* Counted per node: one untagged job wakes one node, not as many
         * as the jobs queued for tags those nodes lack.  The room waking
         * is not told apart by tags: at worst a job waits for one more
         * handshake (bounded by node_timeout) before another node wakes. */
        if (b->remote && of(b)->state == N_DORMANT && jobs_for(s, b) > (size_t)p->waking)
            r_wake(of(b));
    }
}

/* The pool, made with the first node (its hook after the scheduler's, so
 * that it sees what dispatch left).  0 or -1 (memory). */
static int pool_join(pp_server *s)
{
    if (!s->rpool) {
        remote_pool *p = calloc(1, sizeof *p);
        if (!p)
            return -1;
        p->timer = (pp_timer){.fn = pool_timer, .data = s};
        if (pp_loop_hook(s->loop, pool_hook, s) != 0) {
            free(p);
            return -1;
        }
        s->rpool = p;
    }
    s->rpool->nremotes++;
    return 0;
}

/* A node leaves for good (r_free): the last one frees the pool. */
static void pool_leave(remote *r)
{
    pp_server *s = r->b.s;
    remote_pool *p = s->rpool;
    r->draining = 1; /* out of the idle list */
    idle_update(r);
    p->ndormant -= r->state == N_DORMANT;
    p->waking -= r->waking;
    if (--p->nremotes == 0) {
        pp_timer_stop(s->loop, &p->timer);
        free(p);
        s->rpool = NULL;
    }
}

/* ---- the backend ---- */

static int r_room(pp_backend *b)
{
    remote *r = of(b);
    if (r->state != N_UP || r->ncpus <= 0 || r->draining)
        return 0;
    long cap = r_cap(r);
    return cap > r->inflight ? (int)(cap - r->inflight) : 0;
}

static int r_dispatch(pp_backend *b, pp_job *j)
{
    remote *r = of(b);
    pp_server *s = b->s;
    if (j->task->hash_err) {
        pp_sched_fail(s, j, PP_ELOAD, "cannot read the task module to send it to a node: %s",
                      j->task->hash_err);
        return 0;
    }
    if (!r->slots) {
        r->slots = calloc(MAX_SLOTS, sizeof *r->slots);
        r->freelist = malloc(MAX_SLOTS * sizeof *r->freelist);
        if (!r->slots || !r->freelist) {
            free(r->slots);
            free(r->freelist);
            r->slots = NULL;
            r->freelist = NULL;
            return -1;
        }
        for (uint32_t i = 0; i < MAX_SLOTS; i++)
            r->freelist[i] = MAX_SLOTS - 1 - i;
        r->nfree = MAX_SLOTS;
    }
    if (!r->nfree)
        return -1;
    uint8_t head[PP_RJOB_HEAD_MAX];
    size_t hlen = pp_proto_rjob_head(head, j->task->hash, j->task->symbol, j->pj.timeout,
                                     j->priority);
    uint32_t i = r->freelist[r->nfree - 1];
    uint64_t id = (++r->seq << SLOT_BITS) | i;
    void *zip;
    size_t ziplen;
    int zr = pp_zpolicy_maybe(&r->zp, s->compress, pp_conn_link_rate(r->conn), head, hlen,
                              j->pj.arg, j->pj.len, &zip, &ziplen);
    if (zr == 1) {
        if (pp_conn_send_ref(r->conn, PP_T_RJOB, PP_WIRE_F_ZLIB | j->pj.flags, id, NULL, 0, zip,
                             ziplen, free, zip) != 0) {
            free(zip);
            return -1;
        }
    } else if (pp_conn_send_ref(r->conn, PP_T_RJOB, j->pj.flags, id, head, hlen, j->pj.arg,
                                j->pj.len, NULL, NULL) != 0) {
        return -1;
    }
    r->nfree--;
    r->slots[i] = (slot){.job = j, .id = id};
    if (++r->inflight == 1) { /* from idle: back to the busy heartbeat */
        r->busy_since = pp_now();
        pp_timer_start(s->loop, &r->hb, hb_when(r, r->last_rx + s->heartbeat));
        idle_update(r);
    }
    pp_sched_flush_due(s, b);
    return 0;
}

static void r_flush(pp_backend *b)
{
    remote *r = of(b);
    if (r->draining && !r->inflight && r->state != N_REMOVED) {
        r_retire(r); /* here, not in a frame handler: the conn may go */
        return;
    }
    /* One write for everything this turn queued: jobs, modules, PONGs. */
    if (r->conn && pp_conn_outbytes(r->conn))
        pp_conn_flush(r->conn);
    r_count(r);
}

/* Each job here the caller cancelled gets a CANCEL, once: the node stops
 * it and answers its RJOB with PP_CANCELLED (or with the result, when it
 * had already run); the slot stays until then. */
static void r_cancel(pp_backend *b)
{
    remote *r = of(b);
    for (uint32_t i = 0; r->conn && r->slots && i < MAX_SLOTS; i++) {
        slot *sl = &r->slots[i];
        if (sl->job && !sl->cancel_sent && pp_job_cancelled(sl->job)) {
            pp_conn_send(r->conn, PP_T_CANCEL, 0, sl->id, NULL, 0);
            sl->cancel_sent = 1;
            pp_sched_flush_due(b->s, b);
        }
    }
}

/* Draining: held jobs finish, none more; then it goes (r_flush, r_lost).
 * Wanted again: back in service, reconnecting if it had gone. */
static void r_drain(pp_backend *b, int on)
{
    remote *r = of(b);
    if (on == r->draining)
        return;
    r->draining = on;
    if (on && (r->state != N_UP || !r->inflight)) {
        r_retire(r);
    } else if (on) {
        pp_log(&b->s->log, PP_LOG_INFO, "%s: draining (%d job(s) in flight)", b->node->name,
               r->inflight);
        set_state(r, r->state);
    } else if (r->state == N_REMOVED) {
        r->why[0] = 0;
        r->backoff = BACKOFF_MIN;
        r_connect(r);
    } else {
        set_state(r, r->state);
    }
}

static pp_backend_state r_state(pp_backend *b)
{
    remote *r = of(b);
    if (r->state == N_REMOVED)
        return PP_BACKEND_REMOVED;
    if (r->draining)
        return PP_BACKEND_WAITING;
    /* A dormant node is capacity: pool_hook reconnects it for jobs. */
    return r->state == N_UP || r->state == N_DORMANT ? PP_BACKEND_UP
           : r->state == N_REFUSED ? PP_BACKEND_REFUSED
                                   : PP_BACKEND_WAITING;
}

static void r_describe(pp_backend *b, char *buf, size_t len)
{
    remote *r = of(b);
    const char *st = r->state == N_REFUSED ? "authentication failed" : state_names[r->state];
    snprintf(buf, len, "%s %s%s%s%s", b->node->name, st, r->why[0] ? " (" : "", r->why,
             r->why[0] ? ")" : "");
}

static void r_free(pp_backend *b)
{
    remote *r = of(b);
    pp_server *s = b->s;
    /* Jobs in flight go back to the queue. */
    for (uint32_t i = 0; r->slots && i < MAX_SLOTS; i++)
        if (r->slots[i].job)
            pp_sched_requeue(s, r->slots[i].job);
    pp_timer_stop(s->loop, &r->timer);
    pp_timer_stop(s->loop, &r->hb);
    pp_connector_stop(&r->cx); /* a lookup still running frees itself when done */
    if (r->conn)
        pp_conn_free(r->conn);
    pool_leave(r);
    pp_hs_wipe(&r->hs);
    free(r->slots);
    free(r->freelist);
    free(r->b.tags);
    free(r);
}

static const pp_backend_ops remote_ops = {
    .free = r_free,
    .room = r_room,
    .dispatch = r_dispatch,
    .flush = r_flush,
    .cancel = r_cancel,
    .drain = r_drain,
    .state = r_state,
    .describe = r_describe,
};

static void r_seen(pp_connector *cx, const struct addrinfo *res)
{
    remote *r = cx->data;
    r->seen(r->b.s, r->b.node, res);
}

pp_backend *pp_remote_new(pp_server *s, pp_node *node, const char *host, int port,
                          pp_addrs_fn seen, char *err)
{
    remote *r = calloc(1, sizeof *r);
    if (!r) {
        pp_seterr(err, "out of memory");
        return NULL;
    }
    if (pool_join(s) != 0) {
        free(r);
        pp_seterr(err, "out of memory");
        return NULL;
    }
    r->b = (pp_backend){.ops = &remote_ops, .s = s, .node = node, .remote = 1};
    r->backoff = BACKOFF_MIN;
    r->timer = (pp_timer){.fn = r_timer, .data = r};
    r->hb = (pp_timer){.fn = r_heartbeat, .data = r};
    /* Any non-zero seed that differs between nodes: the address of r. */
    r->hb_rand = (uint32_t)(((uintptr_t)r >> 4) * 2654435761u) | 1u;
    pp_connector_init(&r->cx, s->loop, &s->log, node->name, host, port, r_connected, r);
    r->seen = seen;
    if (seen)
        r->cx.seen = r_seen;
    r_connect(r);
    return &r->b;
}
