/* SPDX-License-Identifier: MIT */
/* remote.c -- remote nodes: one TCP connection per ppserver, the mutual
 * handshake (the client proves first and believes the node only after the
 * node's proof), modules shipped on demand, many jobs in flight (the node's
 * CPUs times a depth that grows as jobs get shorter), heartbeats, and
 * failover: a node that dies, freezes or says BYE has its jobs queued again
 * (a failure counts against the job's attempts) and is retried with backoff.
 *
 * Every dispatch has its own id (slot | sequence << SLOT_BITS): a result is
 * taken only from the connection and slot it was sent to, so a late
 * duplicate from a connection already given up never reaches the caller.
 *
 * A node named by a host name is looked up on a short-lived thread: a slow
 * DNS server must not stall the scheduler (local jobs, other nodes,
 * heartbeats).  Numeric addresses need no lookup and connect at once. */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "pp_conn.h"
#include "pp_net.h"
#include "pp_wire.h"
#include "pp_zip.h"

#define SLOT_BITS 12
#define MAX_SLOTS (1u << SLOT_BITS)
#define CONNECT_TIMEOUT 5.0
#define HANDSHAKE_TIMEOUT 10.0
#define BACKOFF_MIN 0.1
#define BACKOFF_MAX 2.0
#define AUTH_RETRY 30.0           /* a refused secret is not retried in a storm */
#define PIPELINE_NS 2000000.0     /* keep about this much work queued per node CPU */
#define MODULE_MAX (256u << 20)

enum { R_WAIT, R_CONNECTING, R_HELLO, R_PROOF, R_UP };

typedef struct slot {
    pp_job *job;
    uint64_t id;
} slot;

/* A name lookup on a detached thread of its own.  The thread and the remote
 * hold a reference each and the last one frees it: pp_server_free() never
 * waits for a slow lookup, it drops the remote's reference, and the thread,
 * when done, touches only this struct (never the server). */
typedef struct lookup {
    atomic_int refs;
    atomic_int done;              /* res and err are final (release) */
    int efd;                      /* written once by the thread when done */
    int port;
    struct addrinfo *res;         /* the addresses, or NULL with err; owned until taken */
    char err[PP_ERR_LEN];
    char host[256];
} lookup;

typedef struct remote {
    pp_server *s;
    pp_node *node;
    char host[256];
    int port;
    int state;
    int fd;                       /* while connecting */
    pp_io cio;
    lookup *lk;                   /* while looking the host up (state R_CONNECTING) */
    pp_io lio;                    /* watches lk->efd */
    struct addrinfo *addrs;       /* while connecting: the host's addresses (owned) */
    const struct addrinfo *untried; /* those of addrs not tried yet */
    pp_conn *conn;
    pp_timer timer;               /* connect or handshake deadline, reconnect */
    pp_timer hb;                  /* heartbeat */
    uint8_t nc[PP_NONCE_LEN], ns[PP_NONCE_LEN];
    uint8_t hello[2 + PP_NONCE_LEN];
    uint8_t ver;
    uint8_t transcript[PP_SHA256_LEN];
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
    int last_state_logged;
    char why[PP_ERR_LEN];         /* why the last connection ended */
} remote;

static void r_connect(remote *r);
static void r_lost(remote *r, const char *why, int count_attempt, double retry);
static void r_connect_next(remote *r);
static void lookup_drop(remote *r);

static void set_state(remote *r, int state, int node_state)
{
    r->state = state;
    pp_server *s = r->s;
    pthread_mutex_lock(&s->mu);
    r->node->state = node_state;
    if (node_state == PP_NODE_UP)
        r->node->ncpus = r->ncpus;
    pthread_mutex_unlock(&s->mu);
}

/* Jobs in flight at once: the node's CPUs times a depth that keeps each CPU
 * busy across a round trip (1 + RTT / run time) and, for tiny jobs, amortises
 * the per-job cost (as the local pool does); capped by the slot table. */
static int capacity(const remote *r)
{
    if (r->state != R_UP || r->ncpus <= 0)
        return 0;
    double run = r->avg_ns * 1e-9, d = 1.0;
    if (run > 0) {
        d = PIPELINE_NS * 1e-9 / run;
        if (1.0 + r->rtt / run > d)
            d = 1.0 + r->rtt / run;
    }
    int depth = d < 1 ? 1 : d > 64 ? 64 : (int)(d + 0.5);
    long cap = (long)r->ncpus * depth + 2; /* + a small prefetch */
    return cap > (long)MAX_SLOTS ? (int)MAX_SLOTS : (int)cap;
}

/* ---- timers ---- */

static void r_timer(pp_loop *loop, pp_timer *t)
{
    (void)loop;
    remote *r = t->data;
    switch (r->state) {
    case R_WAIT:
        r_connect(r);
        break;
    case R_CONNECTING:
        if (r->untried) { /* a host with several addresses: try the next one */
            pp_log(&r->s->log, PP_LOG_DEBUG, "%s: connection timed out; trying the next address",
                   r->node->name);
            r_connect_next(r);
        } else {
            r_lost(r, "connection timed out", 0, 0);
        }
        break;
    default:
        r_lost(r, "no handshake from the node in time", 0, 0);
        break;
    }
}

static void r_heartbeat(pp_loop *loop, pp_timer *t)
{
    remote *r = t->data;
    pp_server *s = r->s;
    if (r->state != R_UP)
        return;
    double now = pp_now();
    if (now - r->last_rx > s->node_timeout) {
        char why[96];
        snprintf(why, sizeof why, "no frame from the node for %.1f s", now - r->last_rx);
        r_lost(r, why, 1, 0);
        return;
    }
    pp_conn_send(r->conn, PP_T_PING, 0, (uint64_t)(now * 1e6), NULL, 0);
    pp_conn_flush(r->conn);
    pp_timer_start(loop, t, now + s->heartbeat);
}

/* ---- connection loss ---- */

/* Ends the connection.  Jobs in flight go back to the queue; when the node
 * failed (not a BYE) that counts as an attempt, and a job out of attempts
 * ends PP_LOST.  `retry` > 0 sets the reconnect delay. */
static void r_lost(remote *r, const char *why, int count_attempt, double retry)
{
    pp_server *s = r->s;
    int was_up = r->state == R_UP;
    snprintf(r->why, sizeof r->why, "%s", why);
    pp_timer_stop(s->loop, &r->hb);
    if (r->conn) {
        pp_conn_free(r->conn); /* also drops queued bytes pointing into jobs */
        r->conn = NULL;
    }
    if (r->fd >= 0) {
        pp_loop_del(s->loop, &r->cio);
        close(r->fd);
        r->fd = -1;
    }
    lookup_drop(r);
    if (r->addrs) {
        freeaddrinfo(r->addrs);
        r->addrs = NULL;
        r->untried = NULL;
    }
    int requeued = 0, lost = 0;
    for (uint32_t i = 0; r->slots && i < MAX_SLOTS; i++) {
        pp_job *j = r->slots[i].job;
        if (!j)
            continue;
        r->slots[i].job = NULL;
        r->freelist[r->nfree++] = i;
        if (count_attempt && ++j->attempts >= s->max_attempts) {
            pp_sched_fail(s, j, PP_LOST, "lost: the nodes running it failed %d times "
                                         "(last %s: %s)", j->attempts, r->node->name, why);
            lost++;
        } else {
            job_list_push_front(&s->ready, j);
            requeued++;
        }
    }
    r->inflight = 0;
    if (was_up)
        pp_log(&s->log, PP_LOG_WARN, "%s: node down: %s (%d job(s) re-queued, %d lost)",
               r->node->name, why, requeued, lost);
    else if (r->node->state != PP_NODE_AUTH_FAILED && r->last_state_logged != 1)
        pp_log(&s->log, PP_LOG_WARN, "%s: cannot reach the node: %s; retrying", r->node->name,
               why);
    if (!was_up && r->node->state != PP_NODE_AUTH_FAILED)
        r->last_state_logged = 1;
    if (r->node->state != PP_NODE_AUTH_FAILED)
        set_state(r, R_WAIT, PP_NODE_DOWN);
    else
        r->state = R_WAIT;
    double delay = retry > 0 ? retry : r->backoff;
    r->backoff = r->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : r->backoff * 2;
    pp_timer_start(s->loop, &r->timer, pp_now() + delay);
}

/* ---- frames ---- */

static int on_challenge(remote *r, const pp_frame *f)
{
    pp_server *s = r->s;
    pp_rd rd = pp_rd_make(f->payload, f->hdr.len);
    uint8_t ver = pp_rd_u8(&rd);
    const uint8_t *ns = pp_rd_bytes(&rd, PP_NONCE_LEN);
    uint32_t max_frame = pp_rd_u32(&rd);
    uint32_t ncpus = pp_rd_u32(&rd);
    r->rtt = pp_now() - r->hello_sent; /* the first sample: the handshake's */
    if (rd.bad || rd.left || ver < PP_PROTO_MIN || ver > PP_PROTO_MAX || ncpus > 65536) {
        r_lost(r, "malformed CHALLENGE from the node", 0, 0);
        return -1;
    }
    r->ver = ver;
    memcpy(r->ns, ns, PP_NONCE_LEN);
    r->max_frame = max_frame;
    r->ncpus = (int)ncpus;
    uint8_t mac[PP_MAC_LEN];
    if (pp_auth_transcript(r->hello, sizeof r->hello, f->payload, f->hdr.len, r->transcript) ||
        pp_auth_proof(&s->key, PP_ROLE_CLIENT, ver, r->nc, r->ns, r->transcript, mac)) {
        r_lost(r, "cannot compute the proof (OpenSSL)", 0, 0);
        return -1;
    }
    pp_conn_send(r->conn, PP_T_PROOF, 0, 0, mac, sizeof mac);
    pp_conn_flush(r->conn);
    r->state = R_PROOF;
    return 0;
}

static int on_accept_frame(remote *r, const pp_frame *f)
{
    pp_server *s = r->s;
    if (f->hdr.len != PP_MAC_LEN || pp_auth_verify(&s->key, PP_ROLE_SERVER, r->ver, r->nc,
                                                   r->ns, r->transcript, f->payload) != 0) {
        /* A node that cannot prove the secret gets no job. */
        pp_log(&s->log, PP_LOG_WARN, "%s: the node failed to prove the shared secret; "
                                      "no job is sent to it", r->node->name);
        set_state(r, R_WAIT, PP_NODE_AUTH_FAILED);
        r_lost(r, "the node failed to prove the secret", 0, AUTH_RETRY);
        return -1;
    }
    pp_timer_stop(s->loop, &r->timer);
    pp_conn_set_limit(r->conn, (r->max_frame ? r->max_frame : PP_MAX_FRAME) + 1024);
    r->backoff = BACKOFF_MIN;
    r->last_rx = pp_now();
    r->last_state_logged = 0;
    set_state(r, R_UP, PP_NODE_UP);
    pp_timer_start(s->loop, &r->hb, pp_now() + s->heartbeat);
    pp_log(&s->log, PP_LOG_INFO, "%s: node up with %d CPUs", r->node->name, r->ncpus);
    return 0;
}

static int on_error_frame(remote *r, const pp_frame *f)
{
    pp_server *s = r->s;
    pp_rd rd = pp_rd_make(f->payload, f->hdr.len);
    uint16_t code = pp_rd_u16(&rd);
    char msg[512];
    pp_rd_str16(&rd, msg, sizeof msg);
    if (rd.bad)
        snprintf(msg, sizeof msg, "(malformed error frame)");
    if (code == PP_E_AUTH) {
        if (r->node->state != PP_NODE_AUTH_FAILED)
            pp_log(&s->log, PP_LOG_WARN, "%s: authentication failed: the node refused our "
                                          "secret (is it the same on both sides?)",
                   r->node->name);
        set_state(r, R_WAIT, PP_NODE_AUTH_FAILED);
        r_lost(r, "authentication failed", 0, AUTH_RETRY);
        return -1;
    }
    char why[600];
    snprintf(why, sizeof why, "the node said: %s", msg);
    if (code == PP_E_VERSION)
        pp_log(&s->log, PP_LOG_ERROR, "%s: %s", r->node->name, why);
    r_lost(r, why, r->state == R_UP, code == PP_E_VERSION ? AUTH_RETRY : 0);
    return -1;
}

static int on_result(remote *r, const pp_frame *f)
{
    pp_server *s = r->s;
    uint32_t i = (uint32_t)(f->hdr.id & (MAX_SLOTS - 1));
    if (!r->slots || !r->slots[i].job || r->slots[i].id != f->hdr.id) {
        r_lost(r, "the node sent a result for no job it held", 1, 0);
        return -1;
    }
    uint8_t *block;
    size_t blen = f->hdr.len;
    if (f->hdr.flags & PP_WIRE_F_ZLIB) {
        char err[PP_ERR_LEN];
        void *out = NULL;
        if (pp_zip_inflate(f->payload, f->hdr.len, r->max_frame + 1024u, &out, &blen, err)) {
            char why[PP_ERR_LEN + 32];
            snprintf(why, sizeof why, "bad compressed result: %s", err);
            r_lost(r, why, 1, 0);
            return -1;
        }
        block = out;
    } else {
        block = pp_conn_take(r->conn, f);
    }
    if (!block) {
        r_lost(r, "out of memory for a result", 0, 0);
        return -1;
    }
    int status = blen >= PP_RESULT_HDR ? block[0] : -1;
    uint64_t run_ns = blen >= PP_RESULT_HDR ? pp_load64(block + 8) : 0;
    if (blen < PP_RESULT_HDR || (status != PP_DONE && status != PP_FAILED && status != PP_ELOAD &&
                   status != PP_CRASHED && status != PP_TIMEOUT)) {
        free(block);
        r_lost(r, "the node sent a malformed result", 1, 0);
        return -1;
    }
    size_t len = blen - PP_RESULT_HDR; /* it stays where it came, aligned */
    pp_job *j = r->slots[i].job;
    r->slots[i].job = NULL;
    r->freelist[r->nfree++] = i;
    r->inflight--;
    r->avg_ns = r->avg_ns > 0 ? 0.8 * r->avg_ns + 0.2 * (double)run_ns : (double)run_ns;
    pp_sched_finish(s, j, status, block, (const char *)block + PP_RESULT_HDR, len, r->node,
                    run_ns);
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
    if (fstat(fileno(fp), &st) != 0 || st.st_size < 0 || (uint64_t)st.st_size > MODULE_MAX) {
        pp_seterr(err, "task module %s is not a file of at most %u bytes", path, MODULE_MAX);
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

static int on_need(remote *r, const pp_frame *f)
{
    pp_server *s = r->s;
    if (f->hdr.len != PP_SHA256_LEN)
        return 0;
    for (uint32_t t = 0; t < s->ntask_hash; t++) {
        if (s->task_hash_state[t] != 1 || memcmp(s->task_hash[t], f->payload, PP_SHA256_LEN))
            continue;
        pthread_mutex_lock(&s->mu);
        char *path = strdup(s->tasks[t].module);
        pthread_mutex_unlock(&s->mu);
        char err[PP_ERR_LEN];
        size_t len = 0;
        void *data = path ? read_module(path, &len, err) : NULL;
        void *zip = NULL;
        size_t ziplen = 0;
        if (data && pp_zip_deflate(data, len, 6, &zip, &ziplen) == 0) {
            pp_conn_send_ref(r->conn, PP_T_MODULE, 0, 0, f->payload, PP_SHA256_LEN, zip,
                             ziplen, free, zip);
            pp_log(&s->log, PP_LOG_INFO, "%s: sent module %s (%zu bytes, %zu compressed)",
                   r->node->name, path, len, ziplen);
        } else {
            pp_log(&s->log, PP_LOG_ERROR, "%s: cannot send module %s: %s", r->node->name,
                   path ? path : "?", data ? "compression failed" : err);
            free(zip);
        }
        free(data);
        free(path);
        return 0;
    }
    return 0; /* not ours (any more): the node's jobs for it fail there */
}

static int r_frame(pp_conn *c, const pp_frame *f, void *data)
{
    (void)c;
    remote *r = data;
    r->last_rx = pp_now();
    uint8_t t = f->hdr.type;
    if (t == PP_T_ERROR)
        return on_error_frame(r, f);
    if ((f->hdr.flags & PP_WIRE_F_ZLIB) && (r->state != R_UP || t != PP_T_RRESULT)) {
        r_lost(r, "compressed frame where none is allowed", r->state == R_UP, 0);
        return -1;
    }
    switch (r->state) {
    case R_HELLO:
        if (t == PP_T_CHALLENGE)
            return on_challenge(r, f);
        break;
    case R_PROOF:
        if (t == PP_T_ACCEPT)
            return on_accept_frame(r, f);
        break;
    case R_UP:
        switch (t) {
        case PP_T_RRESULT:
            return on_result(r, f);
        case PP_T_NEED:
            return on_need(r, f);
        case PP_T_PING:
            pp_conn_send(r->conn, PP_T_PONG, 0, f->hdr.id, NULL, 0);
            return 0;
        case PP_T_PONG: {
            double sample = r->last_rx - (double)f->hdr.id * 1e-6;
            if (sample >= 0 && sample < 60)
                r->rtt = 0.7 * r->rtt + 0.3 * sample;
            return 0;
        }
        case PP_T_NCPUS:
            if (f->hdr.len == 4) {
                r->ncpus = (int)pp_load32(f->payload);
                set_state(r, R_UP, PP_NODE_UP);
            }
            return 0;
        case PP_T_BYE:
            r_lost(r, "the node is shutting down", 0, 0);
            return -1;
        }
        break;
    }
    char why[64];
    snprintf(why, sizeof why, "unexpected frame type %u from the node", t);
    r_lost(r, why, r->state == R_UP, 0);
    return -1;
}

static void r_closed(pp_conn *c, const char *why, void *data)
{
    (void)c;
    remote *r = data;
    r->conn = NULL;
    pp_conn_free(c);
    r_lost(r, why, 1, 0);
}

/* ---- connecting ---- */

static void r_connected(pp_loop *loop, pp_io *io, unsigned ev)
{
    (void)loop;
    (void)ev;
    remote *r = io->data;
    pp_server *s = r->s;
    int e = pp_net_connect_result(r->fd);
    if (e != 0 && r->untried) { /* a host with several addresses: try the next one */
        pp_log(&s->log, PP_LOG_DEBUG, "%s: %s; trying the next address", r->node->name,
               strerror(e));
        r_connect_next(r);
        return;
    }
    if (e != 0) {
        r_lost(r, strerror(e), 0, 0);
        return;
    }
    pp_loop_del(s->loop, &r->cio);
    if (r->addrs) {
        freeaddrinfo(r->addrs);
        r->addrs = NULL;
        r->untried = NULL;
    }
    pp_conn_cbs cbs = {.on_frame = r_frame, .on_close = r_closed};
    r->conn = pp_conn_new(s->loop, r->fd, r->fd, PP_WIRE_PREAUTH_MAX, PP_T_NET_MAX, NULL,
                          &cbs, r);
    if (!r->conn) {
        r_lost(r, "out of memory", 0, 0);
        return;
    }
    r->fd = -1; /* the conn owns it */
    r->hello[0] = PP_PROTO_MIN;
    r->hello[1] = PP_PROTO_MAX;
    if (pp_auth_nonce(r->nc) != 0) {
        r_lost(r, "cannot draw a nonce (OpenSSL)", 0, 0);
        return;
    }
    memcpy(r->hello + 2, r->nc, PP_NONCE_LEN);
    pp_conn_send(r->conn, PP_T_HELLO, 0, 0, r->hello, sizeof r->hello);
    pp_conn_flush(r->conn);
    r->hello_sent = pp_now();
    r->state = R_HELLO;
    pp_timer_start(s->loop, &r->timer, pp_now() + HANDSHAKE_TIMEOUT);
}

static void set_connecting(remote *r)
{
    if (r->node->state != PP_NODE_AUTH_FAILED)
        set_state(r, R_CONNECTING, PP_NODE_CONNECTING);
    else
        r->state = R_CONNECTING;
}

/* Starts a non-blocking connect to the next untried address of r->addrs,
 * closing the attempt before it, if any. */
static void r_connect_next(remote *r)
{
    pp_server *s = r->s;
    if (r->fd >= 0) {
        pp_loop_del(s->loop, &r->cio);
        close(r->fd);
        r->fd = -1;
    }
    char err[PP_ERR_LEN];
    int fd = pp_net_connect_ai(r->untried, &r->untried, r->host, r->port, err);
    if (fd < 0) {
        r_lost(r, err, 0, 0);
        return;
    }
    r->fd = fd;
    r->cio = (pp_io){.fd = fd, .fn = r_connected, .data = r};
    if (pp_loop_add(s->loop, &r->cio, PP_EV_WRITE) != 0) {
        r_lost(r, "cannot watch the socket", 0, 0);
        return;
    }
    set_connecting(r);
    pp_timer_start(s->loop, &r->timer, pp_now() + CONNECT_TIMEOUT);
}

/* ---- name lookup ---- */

static void lookup_unref(lookup *lk)
{
    if (atomic_fetch_sub_explicit(&lk->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (lk->res)
        freeaddrinfo(lk->res);
    close(lk->efd);
    free(lk);
}

/* Stops waiting for r's lookup: one still running finishes alone and frees
 * itself. */
static void lookup_drop(remote *r)
{
    if (!r->lk)
        return;
    pp_loop_del(r->s->loop, &r->lio); /* before the fd can be closed */
    lookup_unref(r->lk);
    r->lk = NULL;
}

static void *lookup_main(void *arg)
{
    lookup *lk = arg;
    pp_net_resolve(lk->host, lk->port, 0, &lk->res, lk->err);
    atomic_store_explicit(&lk->done, 1, memory_order_release);
    uint64_t one = 1;
    while (write(lk->efd, &one, sizeof one) < 0 && errno == EINTR) {
    }
    lookup_unref(lk);
    return NULL;
}

/* The lookup ended (scheduler thread): connect, or count a failed attempt. */
static void lookup_ready(pp_loop *loop, pp_io *io, unsigned ev)
{
    (void)loop;
    (void)ev;
    remote *r = io->data;
    lookup *lk = r->lk;
    /* Done is set before the eventfd is written; an event left from a lookup
     * dropped earlier in this turn finds none, or one not done. */
    if (!lk || !atomic_load_explicit(&lk->done, memory_order_acquire))
        return;
    char err[PP_ERR_LEN];
    memcpy(err, lk->err, sizeof err);
    struct addrinfo *res = lk->res;
    lk->res = NULL; /* ours now: the thread is past touching it */
    lookup_drop(r);
    if (!res) {
        r_lost(r, err, 0, 0);
        return;
    }
    r->addrs = res;
    r->untried = res;
    r_connect_next(r);
}

/* Starts looking r->host up on a detached thread; lookup_ready() follows.
 * Returns 0, or -1 with the reason in err. */
static int lookup_start(remote *r, char *err)
{
    pp_server *s = r->s;
    lookup *lk = calloc(1, sizeof *lk);
    if (!lk) {
        pp_seterr(err, "cannot resolve %s: out of memory", r->host);
        return -1;
    }
    snprintf(lk->host, sizeof lk->host, "%s", r->host);
    lk->port = r->port;
    atomic_init(&lk->refs, 2);
    atomic_init(&lk->done, 0);
    lk->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    r->lio = (pp_io){.fd = lk->efd, .fn = lookup_ready, .data = r};
    if (lk->efd < 0 || pp_loop_add(s->loop, &r->lio, PP_EV_READ) != 0) {
        pp_seterr(err, "cannot resolve %s: %s", r->host, strerror(errno));
        if (lk->efd >= 0)
            close(lk->efd);
        free(lk);
        return -1;
    }
    /* Detached: nobody waits for a lookup.  All signals blocked: they stay
     * with the application's threads. */
    pthread_attr_t attr;
    pthread_t th;
    sigset_t all, old;
    sigfillset(&all);
    int e = pthread_attr_init(&attr);
    if (e == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        e = pthread_create(&th, &attr, lookup_main, lk);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&attr);
    }
    if (e != 0) {
        pp_seterr(err, "cannot resolve %s: cannot start a thread: %s", r->host, strerror(e));
        pp_loop_del(s->loop, &r->lio);
        close(lk->efd);
        free(lk);
        return -1;
    }
    r->lk = lk;
    return 0;
}

static void r_connect(remote *r)
{
    pp_server *s = r->s;
    pthread_mutex_lock(&s->mu);
    r->node->connects++;
    pthread_mutex_unlock(&s->mu);
    char err[PP_ERR_LEN];
    struct addrinfo *res;
    int rc = pp_net_resolve(r->host, r->port, 1, &res, err);
    if (rc == EAI_NONAME) {
        /* A name: looked up on a thread, with no deadline of ours (the
         * resolver bounds its own time), and one lookup per node at most. */
        if (lookup_start(r, err) != 0) {
            r_lost(r, err, 0, 0);
            return;
        }
        set_connecting(r);
        return;
    }
    if (rc != 0) {
        r_lost(r, err, 0, 0);
        return;
    }
    r->addrs = res;
    r->untried = res;
    r_connect_next(r);
}

/* ---- dispatch ---- */

/* The SHA-256 of task t's module, computed once; NULL if unreadable. */
static const uint8_t *task_hash(pp_server *s, uint32_t t)
{
    if (t >= s->ntask_hash) {
        uint32_t n = PP_MAX(t + 1, s->ntask_hash * 2);
        uint8_t(*h)[PP_SHA256_LEN] = realloc(s->task_hash, n * sizeof *h);
        if (!h)
            return NULL;
        s->task_hash = h;
        uint8_t *st = realloc(s->task_hash_state, n);
        if (!st)
            return NULL;
        memset(st + s->ntask_hash, 0, n - s->ntask_hash);
        s->task_hash_state = st;
        s->ntask_hash = n;
    }
    if (s->task_hash_state[t] == 0) {
        pthread_mutex_lock(&s->mu);
        char *path = strdup(s->tasks[t].module);
        pthread_mutex_unlock(&s->mu);
        char err[PP_ERR_LEN];
        if (path && pp_sha256_file(path, s->task_hash[t], err) == 0) {
            s->task_hash_state[t] = 1;
        } else {
            s->task_hash_state[t] = 2;
            pp_log(&s->log, PP_LOG_ERROR, "cannot hash task module: %s", path ? err : "no memory");
        }
        free(path);
    }
    return s->task_hash_state[t] == 1 ? s->task_hash[t] : NULL;
}

static int r_send(remote *r, pp_job *j)
{
    pp_server *s = r->s;
    const uint8_t *hash = task_hash(s, j->task);
    if (!hash) {
        pp_sched_fail(s, j, PP_ELOAD, "cannot read the task module to send it to a node");
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
    uint8_t head[PP_SHA256_LEN + 2 + 256 + 4];
    pthread_mutex_lock(&s->mu);
    const char *sym = s->tasks[j->task].symbol;
    size_t slen = strlen(sym);
    if (slen > 255)
        slen = 255;
    memcpy(head + PP_SHA256_LEN + 2, sym, slen);
    pthread_mutex_unlock(&s->mu);
    memcpy(head, hash, PP_SHA256_LEN);
    pp_store16(head + PP_SHA256_LEN, (uint16_t)slen);
    double ms = j->pj.timeout * 1000.0;
    pp_store32(head + PP_SHA256_LEN + 2 + slen,
               ms <= 0 ? 0 : ms >= 4e9 ? 0xFFFFFFFFu : (uint32_t)(ms < 1 ? 1 : ms));
    uint32_t i = r->freelist[r->nfree - 1];
    uint64_t id = (++r->seq << SLOT_BITS) | i;
    size_t hlen = PP_SHA256_LEN + 2 + slen + 4;
    void *zip;
    size_t ziplen;
    int zr = pp_zip_maybe(head, hlen, j->arg, j->len, &zip, &ziplen);
    if (zr == 1) {
        if (pp_conn_send_ref(r->conn, PP_T_RJOB, PP_WIRE_F_ZLIB, id, NULL, 0, zip, ziplen, free,
                             zip) != 0) {
            free(zip);
            return -1;
        }
    } else if (pp_conn_send_ref(r->conn, PP_T_RJOB, 0, id, head, hlen, j->arg, j->len, NULL,
                                NULL) != 0) {
        return -1;
    }
    r->nfree--;
    r->slots[i] = (slot){.job = j, .id = id};
    r->inflight++;
    return 0;
}

void pp_remote_dispatch(pp_server *s)
{
    for (int k = 0; k < s->nremotes && s->remotes; k++) {
        remote *r = s->remotes[k];
        int cap = capacity(r);
        while (s->ready.head && r->inflight < cap) {
            pp_job *j = job_list_pop(&s->ready);
            if (r_send(r, j) != 0) {
                job_list_push_front(&s->ready, j);
                break;
            }
        }
        /* One write for everything this turn queued: jobs, modules, PONGs. */
        if (r->conn && pp_conn_outbytes(r->conn))
            pp_conn_flush(r->conn);
    }
}

int pp_remote_any_up(const pp_server *s)
{
    for (int k = 0; k < s->nremotes && s->remotes; k++)
        if (s->remotes[k]->state == R_UP)
            return 1;
    return 0;
}

int pp_remote_all_auth_failed(const pp_server *s)
{
    int n = 0;
    for (int k = 0; k < s->nremotes && s->remotes; k++, n++)
        if (s->remotes[k]->node->state != PP_NODE_AUTH_FAILED)
            return 0;
    return n > 0;
}

void pp_remote_describe(const pp_server *s, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = 0;
    for (int k = 0; k < s->nremotes && s->remotes && used + 1 < len; k++) {
        const remote *r = s->remotes[k];
        if (r->state == R_UP)
            continue;
        const char *st = r->node->state == PP_NODE_AUTH_FAILED ? "authentication failed"
                         : r->state == R_WAIT                   ? "down"
                                                                : "connecting";
        int n = snprintf(buf + used, len - used, "%s%s %s%s%s%s", used ? "; " : "",
                         r->node->name, st, r->why[0] ? " (" : "", r->why, r->why[0] ? ")" : "");
        if (n < 0)
            break;
        used += PP_MIN((size_t)n, len - used - 1);
    }
}

int pp_remote_start(pp_server *s, char *err)
{
    if (s->nremotes == 0)
        return 0;
    s->remotes = calloc((size_t)s->nremotes, sizeof *s->remotes);
    if (!s->remotes) {
        pp_seterr(err, "out of memory");
        return -1;
    }
    for (int k = 0; k < s->nremotes; k++) {
        remote *r = calloc(1, sizeof *r);
        if (!r) {
            pp_seterr(err, "out of memory");
            return -1;
        }
        s->remotes[k] = r;
        r->s = s;
        r->node = s->nodes[k + 1];
        r->fd = -1;
        r->backoff = BACKOFF_MIN;
        r->timer = (pp_timer){.fn = r_timer, .data = r};
        r->hb = (pp_timer){.fn = r_heartbeat, .data = r};
        if (pp_net_parse_hostport(r->node->name, PP_DEFAULT_PORT, r->host, sizeof r->host,
                                  &r->port, err) != 0)
            return -1;
        r->state = R_WAIT;
        r_connect(r);
    }
    return 0;
}

void pp_remote_stop(pp_server *s)
{
    for (int k = 0; k < s->nremotes && s->remotes; k++) {
        remote *r = s->remotes[k];
        if (!r)
            continue;
        /* Jobs in flight go back to the queue; the caller cancels them. */
        if (r->slots) {
            for (uint32_t i = 0; i < MAX_SLOTS; i++)
                if (r->slots[i].job)
                    job_list_push_front(&s->ready, r->slots[i].job);
        }
        pp_timer_stop(s->loop, &r->timer);
        pp_timer_stop(s->loop, &r->hb);
        if (r->conn)
            pp_conn_free(r->conn);
        if (r->fd >= 0) {
            pp_loop_del(s->loop, &r->cio);
            close(r->fd);
        }
        lookup_drop(r); /* a lookup still running frees itself when done */
        if (r->addrs)
            freeaddrinfo(r->addrs);
        free(r->slots);
        free(r->freelist);
        free(r);
    }
    free(s->remotes);
    s->remotes = NULL;
    free(s->task_hash);
    free(s->task_hash_state);
    s->task_hash = NULL;
    s->task_hash_state = NULL;
    s->ntask_hash = 0;
}
