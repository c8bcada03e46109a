/* SPDX-License-Identifier: MIT */
/* pp_conn.c -- framed non-blocking endpoint with batched writes. */
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
    pp_transport tr;
    pp_conn_cbs cbs;
    void *data;
    pp_wire_reader rd;
    chunk *q;                /* ring of output chunks */
    size_t qhead, qlen, qcap;
    size_t outbytes, outcap;
    int paused, closed, close_pending;
    char why[PP_ERR_LEN];
};

static ssize_t plain_read(void *ctx, int fd, void *buf, size_t n)
{
    (void)ctx;
    return read(fd, buf, n);
}

static ssize_t plain_writev(void *ctx, int fd, const struct iovec *iov, int iovcnt)
{
    (void)ctx;
    return writev(fd, iov, iovcnt);
}

static void conn_io(pp_loop *loop, pp_io *io, unsigned ev);

static void update_watch(pp_conn *c)
{
    if (c->closed)
        return;
    unsigned want_r = c->paused ? 0 : PP_EV_READ;
    unsigned want_w = c->outbytes ? PP_EV_WRITE : 0;
    if (c->same_fd) {
        pp_loop_mod(c->loop, &c->rio, want_r | want_w);
    } else {
        pp_loop_mod(c->loop, &c->rio, want_r);
        /* The write side stays registered for errors: a reader that went
         * away is noticed without writing. */
        pp_loop_mod(c->loop, &c->wio, want_w ? want_w : PP_EV_ERROR);
    }
}

pp_conn *pp_conn_new(pp_loop *loop, int rfd, int wfd, uint32_t max_len, uint8_t max_type,
                     const pp_transport *tr, const pp_conn_cbs *cbs, void *data)
{
    pp_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->loop = loop;
    c->cbs = *cbs;
    c->data = data;
    c->outcap = SIZE_MAX;
    if (tr) {
        c->tr = *tr;
    } else {
        c->tr.read = plain_read;
        c->tr.writev = plain_writev;
    }
    pp_wire_reader_init(&c->rd, max_len, max_type);
    c->same_fd = rfd == wfd;
    c->rio = (pp_io){.fd = rfd, .fn = conn_io, .data = c};
    c->wio = (pp_io){.fd = wfd, .fn = conn_io, .data = c};
    if (pp_loop_add(loop, &c->rio, PP_EV_READ) != 0)
        goto fail;
    if (!c->same_fd && pp_loop_add(loop, &c->wio, PP_EV_ERROR) != 0) {
        pp_loop_del(loop, &c->rio);
        goto fail;
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
    if (c->tr.free)
        c->tr.free(c->tr.ctx);
    free(c);
}

void pp_conn_free(pp_conn *c)
{
    if (!c)
        return;
    shut(c);
    c->cbs.on_close = NULL;
    c->cbs.on_frame = NULL;
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

void pp_conn_pause(pp_conn *c, int paused)
{
    c->paused = paused;
    update_watch(c);
}

void *pp_conn_take(pp_conn *c, const pp_frame *f)
{
    return pp_wire_reader_take(&c->rd, f);
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

int pp_conn_flush(pp_conn *c)
{
    if (c->closed)
        return -1;
    while (c->qlen) {
        struct iovec iov[IOV_BATCH];
        int n = 0;
        for (size_t i = 0; i < c->qlen && n < IOV_BATCH; i++) {
            chunk *k = &c->q[(c->qhead + i) % c->qcap];
            iov[n].iov_base = (void *)(k->p + k->off);
            iov[n].iov_len = k->len - k->off;
            n++;
        }
        ssize_t w = c->tr.writev(c->tr.ctx, c->wio.fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            char why[PP_ERR_LEN];
            snprintf(why, sizeof why, "write failed: %s", strerror(errno));
            pp_conn_close(c, why);
            return -1;
        }
        size_t left = (size_t)w;
        c->outbytes -= left;
        while (left && c->qlen) {
            chunk *k = &c->q[c->qhead];
            size_t rest = k->len - k->off;
            if (left < rest) {
                k->off += left;
                break;
            }
            left -= rest;
            drop_chunk(k);
            c->qhead = (c->qhead + 1) % c->qcap;
            c->qlen--;
        }
        /* Keep the last chunk for reuse when it is an owned tail now empty. */
    }
    update_watch(c);
    return 0;
}

/* ---- input ---- */

static void do_read(pp_conn *c)
{
    size_t budget = READ_BUDGET;
    while (!c->closed && !c->paused && budget) {
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
        ssize_t r = c->tr.read(c->tr.ctx, c->rio.fd, dst, room);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            char why[PP_ERR_LEN];
            snprintf(why, sizeof why, "read failed: %s", strerror(errno));
            pp_conn_close(c, why);
            return;
        }
        if (r == 0) {
            pp_conn_close(c, pp_wire_reader_pending(&c->rd) ? "end of file inside a frame"
                                                            : "end of file");
            return;
        }
        pp_wire_reader_commit(&c->rd, (size_t)r);
        budget -= PP_MIN(budget, (size_t)r);
        pp_frame f;
        int rc = 0;
        while (!c->closed && (rc = pp_wire_reader_next(&c->rd, &f)) == 1) {
            if (c->cbs.on_frame(c, &f, c->data) != 0)
                return;
        }
        if (!c->closed && rc < 0) {
            pp_conn_close(c, c->rd.errstr);
            return;
        }
        if ((size_t)r < room)
            return; /* drained the fd */
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
    if ((ev & PP_EV_WRITE) && (io == &c->wio || c->same_fd))
        pp_conn_flush(c);
    if ((ev & PP_EV_READ) && io == &c->rio)
        do_read(c);
}
