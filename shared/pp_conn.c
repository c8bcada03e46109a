/* SPDX-License-Identifier: MIT */
/* pp_conn.c -- framed non-blocking endpoint with batched writes, over a
 * transport (pp_transport.h). */
#include "pp_conn.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Frames up to this size are copied into the shared tail buffer; larger
 * bodies are queued by reference when the caller allows it. */
#define SMALL_FRAME 4096
#define READ_BUDGET (4u << 20) /* bytes read per readiness event, for fairness */
#define IOV_BATCH 64
/* The link's rate is sampled over at least this many bytes and seconds. */
#define LINK_MIN_BYTES (256u << 10)
#define LINK_MIN_SECS 0.002
#define LINK_SPAN 0.25           /* a long drain is sampled this often */

typedef struct chunk {
    uint8_t *own;            /* owned bytes (malloc), or NULL */
    const uint8_t *p;        /* bytes to write */
    size_t len, off;
    size_t cap;              /* of own, for appending small frames */
    void (*release)(void *); /* for referenced bytes */
    void *rel_arg;
} chunk;

struct pp_conn {
    pp_loop *loop;
    pp_io rio, wio;          /* wio unused when both fds are the same */
    int same_fd;
    pp_transport tr;         /* tr.ops never NULL */
    pp_conn_cbs cbs;
    void *data;
    pp_wire_reader rd;
    chunk *q;                /* ring of output chunks */
    size_t qhead, qlen, qcap;
    size_t outbytes, outcap;
    int paused, closed, close_pending;
    int handshaking;         /* the transport's handshake is not done */
    pp_tr_status hs_want;    /* what its last step waits for */
    pp_tr_status rd_want;    /* what reading waits for: READ, or WRITE */
    pp_tr_status wr_want;    /* what writing waits for: WRITE, or READ */
    int ready_due;           /* on_ready still to be called */
    int drain_due;           /* read what the transport holds at the kick */
    /* Due at once when armed: fires after the turn's fd events, and keeps
     * the loop from sleeping until then.  Calls on_ready for a transport
     * without a handshake and reads the bytes the transport holds, which
     * no fd event would announce. */
    pp_timer kick;
    char why[PP_ERR_LEN];
    uint64_t nin, nout;      /* bytes the transport read and wrote (statistics) */
    /* The link's rate (pp_conn_link_rate): bytes written between two
     * refused writes, the fd full at both, drained that fast; and how
     * fast a large frame arrived from its first bytes to its last. */
    double tx_t0, tx_t1;     /* the first and the last refused write of a drain */
    uint64_t tx_b0, tx_b1;   /* nout then */
    double rx_t0;            /* when a partial frame's first bytes were read */
    double tx_bps, rx_bps;   /* moving estimates; 0 = none yet */
    int bad_frame;           /* closed because the peer's bytes were no frame */
};

static void conn_io(pp_loop *loop, pp_io *io, unsigned ev);
static void conn_kick(pp_loop *loop, pp_timer *t);
static void do_read(pp_conn *c);

/* ---- the transport ---- */

static size_t tr_pending(const pp_conn *c)
{
    return c->tr.ops->pending ? c->tr.ops->pending(c->tr.ctx) : 0;
}

/* Closes with "<what>: <the transport's text, or strerror(err)>". */
static void tr_fail(pp_conn *c, const char *what, int err)
{
    const char *text = c->tr.ops->error ? c->tr.ops->error(c->tr.ctx) : NULL;
    char why[PP_ERR_LEN];
    snprintf(why, sizeof why, "%s: %s", what, text && *text ? text : strerror(err));
    pp_conn_close(c, why);
}

/* Makes the kick timer due now (after this turn's fd events). */
static void kick_soon(pp_conn *c)
{
    if (!pp_timer_armed(&c->kick))
        pp_timer_start(c->loop, &c->kick, pp_now());
}

/* The transport holds bytes no fd event will announce: read them at the
 * kick, unless reading is off (resuming calls this again) or waits for the
 * write fd (its event retries the read: trying sooner would spin). */
static void drain_soon(pp_conn *c)
{
    if (c->closed || c->paused || c->handshaking || c->rd_want == PP_TR_WANT_WRITE ||
        tr_pending(c) == 0)
        return;
    c->drain_due = 1;
    kick_soon(c);
}

/* The fds' events for what each direction waits for. */
static void wanted(const pp_conn *c, unsigned *on_r, unsigned *on_w)
{
    int r = 0, w = 0;
    if (c->handshaking) {
        r = c->hs_want == PP_TR_WANT_READ;
        w = !r;
    } else {
        if (!c->paused) {
            if (c->rd_want == PP_TR_WANT_WRITE)
                w = 1;
            else
                r = 1;
        }
        if (c->outbytes) {
            if (c->wr_want == PP_TR_WANT_READ)
                r = 1;
            else
                w = 1;
        }
    }
    *on_r = r ? PP_EV_READ : 0;
    *on_w = w ? PP_EV_WRITE : 0;
}

static void update_watch(pp_conn *c)
{
    if (c->closed)
        return;
    unsigned want_r, want_w;
    wanted(c, &want_r, &want_w);
    if (c->same_fd) {
        pp_loop_mod(c->loop, &c->rio, want_r | want_w);
    } else {
        pp_loop_mod(c->loop, &c->rio, want_r);
        /* The write side stays registered for errors: a reader that went
         * away is noticed without writing. */
        pp_loop_mod(c->loop, &c->wio, want_w ? want_w : PP_EV_ERROR);
    }
}

static void notify_ready(pp_conn *c)
{
    if (!c->ready_due)
        return;
    c->ready_due = 0;
    if (c->cbs.on_ready)
        c->cbs.on_ready(c, c->data);
}

/* One handshake step; when it is done: on_ready, then what was queued
 * goes out and what came with the handshake's end is read. */
static void hs_step(pp_conn *c)
{
    pp_tr_status st = c->tr.ops->handshake(c->tr.ctx, c->rio.fd, c->wio.fd);
    if (st == PP_TR_WANT_READ || st == PP_TR_WANT_WRITE) {
        c->hs_want = st;
        update_watch(c);
        return;
    }
    if (st != PP_TR_DONE) {
        tr_fail(c, "handshake failed", errno);
        return;
    }
    c->handshaking = 0;
    c->ready_due = 1;
    notify_ready(c);
    if (!c->closed)
        pp_conn_flush(c); /* also sets the watch for reading */
    if (!c->closed)
        do_read(c);
}

pp_conn *pp_conn_new(pp_loop *loop, int rfd, int wfd, uint32_t max_len, uint8_t max_type,
                     const pp_transport *tr, const pp_conn_cbs *cbs, void *data)
{
    if (tr && (!tr->ops || !tr->ops->read || !tr->ops->writev)) {
        errno = EINVAL;
        return NULL;
    }
    pp_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->loop = loop;
    c->cbs = *cbs;
    c->data = data;
    c->outcap = SIZE_MAX;
    c->tr = tr ? *tr : (pp_transport){&pp_transport_plain_ops, NULL};
    c->handshaking = c->tr.ops->handshake != NULL;
    c->hs_want = PP_TR_WANT_WRITE; /* the first step once the fd is writable */
    c->rd_want = PP_TR_WANT_READ;
    c->wr_want = PP_TR_WANT_WRITE;
    c->kick = (pp_timer){.fn = conn_kick, .data = c};
    pp_wire_reader_init(&c->rd, max_len, max_type);
    c->same_fd = rfd == wfd;
    c->rio = (pp_io){.fd = rfd, .fn = conn_io, .data = c};
    c->wio = (pp_io){.fd = wfd, .fn = conn_io, .data = c};
    unsigned want_r, want_w;
    wanted(c, &want_r, &want_w);
    if (pp_loop_add(loop, &c->rio, want_r | (c->same_fd ? want_w : 0)) != 0)
        goto fail;
    if (!c->same_fd && pp_loop_add(loop, &c->wio, want_w ? want_w : PP_EV_ERROR) != 0) {
        pp_loop_del(loop, &c->rio);
        goto fail;
    }
    if (!c->handshaking && c->cbs.on_ready) {
        c->ready_due = 1; /* never from inside pp_conn_new() */
        kick_soon(c);
    }
    return c;
fail:
    pp_wire_reader_free(&c->rd);
    free(c);
    return NULL;
}

static void drop_chunk(chunk *k)
{
    free(k->own);
    if (k->release)
        k->release(k->rel_arg);
    memset(k, 0, sizeof *k);
}

static void shut(pp_conn *c)
{
    if (c->closed)
        return;
    c->closed = 1;
    pp_timer_stop(c->loop, &c->kick);
    if (!c->handshaking && c->tr.ops->shutdown)
        c->tr.ops->shutdown(c->tr.ctx, c->wio.fd);
    pp_loop_del(c->loop, &c->rio);
    if (!c->same_fd) {
        pp_loop_del(c->loop, &c->wio);
        close(c->wio.fd);
    }
    close(c->rio.fd);
    c->rio.fd = c->wio.fd = -1;
    while (c->qlen) {
        drop_chunk(&c->q[c->qhead]);
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qlen--;
    }
    c->outbytes = 0;
}

static void deferred_free(pp_loop *loop, void *p)
{
    (void)loop;
    pp_conn *c = p;
    pp_wire_reader_free(&c->rd);
    free(c->q);
    if (c->tr.ops->free)
        c->tr.ops->free(c->tr.ctx);
    free(c);
}

void pp_conn_free(pp_conn *c)
{
    if (!c)
        return;
    shut(c);
    c->cbs.on_close = NULL;
    c->cbs.on_frame = NULL;
    c->cbs.on_ready = NULL;
    if (pp_loop_defer(c->loop, deferred_free, c) != 0)
        deferred_free(c->loop, c); /* no memory to defer: free now, best effort */
}

static void deferred_close(pp_loop *loop, void *p)
{
    (void)loop;
    pp_conn *c = p;
    if (c->cbs.on_close) {
        void (*fn)(pp_conn *, const char *, void *) = c->cbs.on_close;
        c->cbs.on_close = NULL;
        fn(c, c->why, c->data);
    }
}

void pp_conn_close(pp_conn *c, const char *why)
{
    if (c->close_pending || !c->cbs.on_close) {
        shut(c);
        return;
    }
    c->close_pending = 1;
    snprintf(c->why, sizeof c->why, "%s", why);
    shut(c);
    if (pp_loop_defer(c->loop, deferred_close, c) != 0)
        deferred_close(c->loop, c);
}

void *pp_conn_data(const pp_conn *c)
{
    return c->data;
}

void pp_conn_set_limit(pp_conn *c, uint32_t max_len)
{
    c->rd.max_len = max_len;
}

void pp_conn_set_outcap(pp_conn *c, size_t cap)
{
    c->outcap = cap;
}

size_t pp_conn_outbytes(const pp_conn *c)
{
    return c->outbytes;
}

void pp_conn_counts(const pp_conn *c, uint64_t *in, uint64_t *out)
{
    *in = c ? c->nin : 0;
    *out = c ? c->nout : 0;
}

int pp_conn_bad_frame(const pp_conn *c)
{
    return c && c->bad_frame;
}

void pp_conn_pause(pp_conn *c, int paused)
{
    c->paused = paused;
    drain_soon(c); /* resumed: no fd event will announce what is held */
    update_watch(c);
}

int pp_conn_ready(const pp_conn *c)
{
    return !c->closed && !c->handshaking;
}

void *pp_conn_transport_ctx(const pp_conn *c)
{
    return c->tr.ctx;
}

void *pp_conn_take(pp_conn *c, const pp_frame *f)
{
    return pp_wire_reader_take(&c->rd, f);
}

void pp_conn_use_shm(pp_conn *c, struct pp_shm_cache *shm, uint32_t min)
{
    pp_wire_reader_use_shm(&c->rd, shm, min);
}

struct pp_shm *pp_conn_take_shm(pp_conn *c, const pp_frame *f)
{
    return pp_wire_reader_take_shm(&c->rd, f);
}

/* ---- the link's rate ---- */

static void link_fold(double *est, uint64_t bytes, double secs)
{
    if (bytes < LINK_MIN_BYTES || !(secs >= LINK_MIN_SECS))
        return;
    double rate = (double)bytes / secs;
    *est = *est > 0 ? (*est + rate) / 2 : rate;
}

/* A write was refused, the fd full: the bytes written since the previous
 * refusal of this drain left at the link's rate. */
static void tx_refused(pp_conn *c)
{
    double now = pp_now();
    if (c->tx_t0 == 0) {
        c->tx_t0 = c->tx_t1 = now;
        c->tx_b0 = c->tx_b1 = c->nout;
        return;
    }
    c->tx_t1 = now;
    c->tx_b1 = c->nout;
    if (now - c->tx_t0 >= LINK_SPAN) {
        link_fold(&c->tx_bps, c->tx_b1 - c->tx_b0, c->tx_t1 - c->tx_t0);
        c->tx_t0 = now;
        c->tx_b0 = c->nout;
    }
}

/* The queue is empty: the drain's sample (from its first refusal to its
 * last, when the fd was full both times). */
static void tx_drained(pp_conn *c)
{
    if (c->tx_t0 > 0)
        link_fold(&c->tx_bps, c->tx_b1 - c->tx_b0, c->tx_t1 - c->tx_t0);
    c->tx_t0 = 0;
}

/* Frame f is complete: a large one's arrival rate. */
static void rx_frame(pp_conn *c, const pp_frame *f)
{
    if (c->rx_t0 > 0 && f->hdr.len >= 4 * LINK_MIN_BYTES)
        link_fold(&c->rx_bps, PP_WIRE_HDR + (uint64_t)f->hdr.len, pp_now() - c->rx_t0);
    c->rx_t0 = 0;
}

double pp_conn_link_rate(const pp_conn *c)
{
    return c ? PP_MAX(c->tx_bps, c->rx_bps) : 0;
}

/* ---- output queue ---- */

static chunk *push_chunk(pp_conn *c)
{
    if (c->qlen == c->qcap) {
        size_t cap = c->qcap ? c->qcap * 2 : 8;
        chunk *q = malloc(cap * sizeof *q);
        if (!q)
            return NULL;
        for (size_t i = 0; i < c->qlen; i++)
            q[i] = c->q[(c->qhead + i) % c->qcap];
        free(c->q);
        c->q = q;
        c->qhead = 0;
        c->qcap = cap;
    }
    chunk *k = &c->q[(c->qhead + c->qlen) % c->qcap];
    memset(k, 0, sizeof *k);
    c->qlen++;
    return k;
}

/* Room for n more bytes at the end of the last owned chunk. */
static uint8_t *tail_space(pp_conn *c, size_t n)
{
    chunk *k = c->qlen ? &c->q[(c->qhead + c->qlen - 1) % c->qcap] : NULL;
    if (!k || !k->own || k->cap - k->len < n) {
        if (k && k->own && k->off == 0 && k->len + n <= 1u << 20) {
            size_t cap = PP_MAX(k->cap * 2, k->len + n);
            uint8_t *p = realloc(k->own, cap);
            if (!p)
                return NULL;
            k->own = p;
            k->p = p;
            k->cap = cap;
        } else {
            size_t cap = PP_MAX((size_t)16384, n);
            uint8_t *p = malloc(cap);
            if (!p)
                return NULL;
            k = push_chunk(c);
            if (!k) {
                free(p);
                return NULL;
            }
            k->own = p;
            k->p = p;
            k->cap = cap;
        }
    }
    uint8_t *dst = k->own + k->len;
    k->len += n;
    return dst;
}

int pp_conn_send(pp_conn *c, uint8_t type, uint16_t flags, uint64_t id, const void *payload,
                 size_t len)
{
    return pp_conn_send_ref(c, type, flags, id, payload, len, NULL, 0, NULL, NULL);
}

int pp_conn_send_ref(pp_conn *c, uint8_t type, uint16_t flags, uint64_t id, const void *head,
                     size_t hlen, const void *body, size_t blen, void (*release)(void *),
                     void *rel_arg)
{
    if (c->closed)
        return -1;
    size_t total = hlen + blen;
    if (total > UINT32_MAX ||
        PP_WIRE_HDR + total > c->outcap - PP_MIN(c->outcap, c->outbytes))
        return -1;
    int by_ref = body && blen > SMALL_FRAME;
    size_t copy = PP_WIRE_HDR + hlen + (by_ref ? 0 : blen);
    uint8_t *dst = tail_space(c, copy);
    if (!dst)
        return -1;
    pp_wire_encode_hdr(dst, type, flags, id, (uint32_t)total);
    if (hlen)
        memcpy(dst + PP_WIRE_HDR, head, hlen);
    if (by_ref) {
        chunk *k = push_chunk(c);
        if (!k) {
            /* Undo the header: it is the last thing in the tail chunk. */
            c->q[(c->qhead + c->qlen - 1) % c->qcap].len -= copy;
            return -1;
        }
        k->p = body;
        k->len = blen;
        k->release = release;
        k->rel_arg = rel_arg;
    } else {
        if (blen)
            memcpy(dst + PP_WIRE_HDR + hlen, body, blen);
        if (release)
            release(rel_arg);
    }
    c->outbytes += PP_WIRE_HDR + total;
    return 0;
}

/* Zero bytes: the stand-in for bodies pp_conn_zero_refs() let go of. */
static const uint8_t zeros[64 * 1024];

void pp_conn_zero_refs(pp_conn *c)
{
    for (size_t i = 0; i < c->qlen; i++) {
        chunk *k = &c->q[(c->qhead + i) % c->qcap];
        if (k->own || !k->p)
            continue;
        k->p = NULL; /* written as zeros from now on (pp_conn_flush) */
        if (k->release)
            k->release(k->rel_arg);
        k->release = NULL;
    }
}

/* Drops the first n written bytes from the queue. */
static void consume(pp_conn *c, size_t n)
{
    c->outbytes -= n;
    while (n && c->qlen) {
        chunk *k = &c->q[c->qhead];
        size_t rest = k->len - k->off;
        if (n < rest) {
            k->off += n;
            break;
        }
        n -= rest;
        drop_chunk(k);
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qlen--;
    }
}

int pp_conn_flush(pp_conn *c)
{
    if (c->closed)
        return -1;
    if (c->handshaking)
        return 0; /* queued frames wait for the handshake */
    while (c->qlen) {
        struct iovec iov[IOV_BATCH];
        int n = 0;
        size_t total = 0;
        for (size_t i = 0; i < c->qlen && n < IOV_BATCH; i++) {
            chunk *k = &c->q[(c->qhead + i) % c->qcap];
            size_t rest = k->len - k->off;
            iov[n].iov_base = k->p ? (void *)(k->p + k->off) : (void *)zeros;
            iov[n].iov_len = k->p ? rest : PP_MIN(rest, sizeof zeros);
            total += iov[n].iov_len;
            if (iov[n++].iov_len < rest)
                break; /* the rest of these zeros first, next round */
        }
        pp_tr_status want = PP_TR_WANT_WRITE;
        ssize_t w = c->tr.ops->writev(c->tr.ctx, c->wio.fd, iov, n, &want);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                c->wr_want = want == PP_TR_WANT_READ ? PP_TR_WANT_READ : PP_TR_WANT_WRITE;
                tx_refused(c);
                break;
            }
            tr_fail(c, "write failed", errno);
            return -1;
        }
        c->wr_want = PP_TR_WANT_WRITE;
        if ((size_t)w > total) {
            pp_conn_close(c, "write failed: the transport wrote more than it was given");
            return -1;
        }
        if (w == 0)
            break; /* no progress (a broken transport): wait for writability */
        c->nout += (uint64_t)w;
        consume(c, (size_t)w);
        /* Keep the last chunk for reuse when it is an owned tail now empty. */
    }
    if (!c->qlen)
        tx_drained(c);
    drain_soon(c); /* a write that had to read may hold the peer's bytes now */
    update_watch(c);
    return 0;
}

/* ---- input ---- */

/* Hands the bytes just read to the wire reader and its frames to on_frame.
 * 0 to read on, -1 when the conn closed or on_frame said stop. */
static int deliver(pp_conn *c, size_t n)
{
    pp_wire_reader_commit(&c->rd, n);
    pp_frame f;
    int rc = 0;
    while (!c->closed && (rc = pp_wire_reader_next(&c->rd, &f)) == 1) {
        rx_frame(c, &f);
        if (c->cbs.on_frame(c, &f, c->data) != 0)
            return -1;
    }
    if (!c->closed && rc == 0 && c->rx_t0 == 0 && pp_wire_reader_pending(&c->rd))
        c->rx_t0 = pp_now();
    if (!c->closed && rc < 0) {
        c->bad_frame = 1;
        pp_conn_close(c, c->rd.errstr);
    }
    return c->closed ? -1 : 0;
}

/* Reads until the transport waits for its fd, at most READ_BUDGET bytes
 * (the rest of what it holds at the kick, after the other fds' events). */
static void do_read(pp_conn *c)
{
    size_t budget = READ_BUDGET;
    pp_tr_status was = c->rd_want;
    while (!c->closed && !c->paused) {
        if (budget == 0) {
            drain_soon(c); /* the fd may be quiet: do not wait for it */
            break;
        }
        size_t room;
        void *dst = pp_wire_reader_space(&c->rd, &room);
        if (!dst) {
            pp_conn_close(c, "out of memory reading a frame");
            return;
        }
        if (room == 0) {
            pp_conn_close(c, "input buffer full");
            return;
        }
        pp_tr_status want = PP_TR_WANT_READ;
        ssize_t r = c->tr.ops->read(c->tr.ctx, c->rio.fd, dst, room, &want);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                c->rd_want = want == PP_TR_WANT_WRITE ? PP_TR_WANT_WRITE : PP_TR_WANT_READ;
                break;
            }
            tr_fail(c, "read failed", errno);
            return;
        }
        c->rd_want = PP_TR_WANT_READ;
        if (r == 0) {
            pp_conn_close(c, pp_wire_reader_pending(&c->rd) ? "end of file inside a frame"
                                                            : "end of file");
            return;
        }
        if ((size_t)r > room) {
            pp_conn_close(c, "read failed: the transport returned more than asked");
            return;
        }
        budget -= PP_MIN(budget, (size_t)r);
        c->nin += (uint64_t)r;
        if (deliver(c, (size_t)r) != 0)
            return;
        if ((size_t)r < room && tr_pending(c) == 0)
            break; /* drained: the fd's next event brings more */
    }
    if (c->rd_want != was)
        update_watch(c);
}

/* The kick timer: on_ready for a transport without a handshake, then the
 * bytes the transport holds. */
static void conn_kick(pp_loop *loop, pp_timer *t)
{
    (void)loop;
    pp_conn *c = t->data;
    if (c->closed)
        return;
    notify_ready(c);
    if (!c->closed && c->drain_due) {
        c->drain_due = 0;
        do_read(c);
    }
}

static void conn_io(pp_loop *loop, pp_io *io, unsigned ev)
{
    (void)loop;
    pp_conn *c = io->data;
    if (c->closed)
        return;
    if ((ev & PP_EV_ERROR) && io == &c->wio && !c->same_fd) {
        pp_conn_close(c, "the peer closed its reading end");
        return;
    }
    int readable = (ev & PP_EV_READ) && io == &c->rio;
    int writable = (ev & PP_EV_WRITE) && (io == &c->wio || c->same_fd);
    if (c->handshaking) {
        if (readable || writable)
            hs_step(c);
        return;
    }
    notify_ready(c); /* a transport without a handshake: before any frame */
    if (c->closed)
        return;
    /* Each direction is retried on the event it waits for. */
    if (writable || (readable && c->wr_want == PP_TR_WANT_READ))
        pp_conn_flush(c);
    if (readable || (writable && c->rd_want == PP_TR_WANT_WRITE))
        do_read(c);
}
