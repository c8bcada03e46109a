/* SPDX-License-Identifier: MIT */
/* test_loop.c -- pp_loop: fd watchers on pipes, the timer heap, hooks,
 * deferred functions and pp_loop_break.  Every loop here is bounded. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cunit_main.h"
#include "pp_common.h"
#include "pp_loop.h"

/* ---- fd watchers ---- */

typedef struct rec {
    int calls;
    unsigned events;       /* of the last call */
    unsigned all_events;   /* or of all calls */
    char got[64];
    size_t ngot;
    int drain;             /* read the fd in the handler */
    int *order;            /* shared counter for ordering, or NULL */
    int seq;               /* its value at the last call */
} rec;

static void io_rec(pp_loop *loop, pp_io *io, unsigned ev)
{
    (void)loop;
    rec *r = io->data;
    r->calls++;
    r->events = ev;
    r->all_events |= ev;
    if (r->order)
        r->seq = ++*r->order;
    if (r->drain && (ev & PP_EV_READ)) {
        for (int i = 0; i < 10; i++) {
            ssize_t n = read(io->fd, r->got + r->ngot, sizeof r->got - 1 - r->ngot);
            if (n <= 0)
                break;
            r->ngot += (size_t)n;
        }
        r->got[r->ngot] = 0;
    }
}

static void make_pipe(int p[2])
{
    CU_ASSERT_FATAL(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0);
}

static void test_new_free(void)
{
    pp_loop *l = pp_loop_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    /* Nothing to do: returns at once with no events. */
    double t0 = pp_now();
    CU_ASSERT_EQUAL(pp_loop_run_once(l, 0), 0);
    CU_ASSERT(pp_now() - t0 < 2.0);
    pp_loop_free(l);
    pp_loop_free(NULL);
}

static void test_read_readiness(void)
{
    pp_loop *l = pp_loop_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    int p[2];
    make_pipe(p);
    rec r = {.drain = 1};
    pp_io io = {.fd = p[0], .fn = io_rec, .data = &r};
    CU_ASSERT_EQUAL(pp_loop_add(l, &io, PP_EV_READ), 0);
    CU_ASSERT_EQUAL(io.events, PP_EV_READ);

    CU_ASSERT_EQUAL(pp_loop_run_once(l, 0), 0);
    CU_ASSERT_EQUAL(r.calls, 0);

    CU_ASSERT_EQUAL(write(p[1], "hello", 5), 5);
    double t0 = pp_now();
    CU_ASSERT_EQUAL(pp_loop_run_once(l, 5.0), 1);
    CU_ASSERT(pp_now() - t0 < 2.0);
    CU_ASSERT_EQUAL(r.calls, 1);
    CU_ASSERT(r.events & PP_EV_READ);
    CU_ASSERT_FALSE(r.events & PP_EV_WRITE);
    CU_ASSERT_FALSE(r.events & PP_EV_ERROR);
    CU_ASSERT_STRING_EQUAL(r.got, "hello");

    /* Drained: no more events. */
    CU_ASSERT_EQUAL(pp_loop_run_once(l, 0), 0);
    CU_ASSERT_EQUAL(r.calls, 1);

    /* The writer closes: READ with ERROR (hang-up). */
    close(p[1]);
    CU_ASSERT_EQUAL(pp_loop_run_once(l, 1.0), 1);
    CU_ASSERT_EQUAL(r.calls, 2);
    CU_ASSERT(r.events & PP_EV_READ);
    CU_ASSERT(r.events & PP_EV_ERROR);

    pp_loop_del(l, &io);
    CU_ASSERT_EQUAL(io.events, 0);
    close(p[0]);
    pp_loop_free(l);
}

static void test_write_mod_del(void)
{
    pp_loop *l = pp_loop_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    int p[2];
    make_pipe(p);
    rec rr = {0}, wr = {0};
    pp_io rio = {.fd = p[0], .fn = io_rec, .data = &rr};
    pp_io wio = {.fd = p[1], .fn = io_rec, .data = &wr};
    CU_ASSERT_EQUAL(pp_loop_add(l, &rio, PP_EV_READ), 0);
    CU_ASSERT_EQUAL(pp_loop_add(l, &wio, 0), 0);

    /* Watching nothing: an empty pipe's write end stays quiet. */
    CU_ASSERT_EQUAL(pp_loop_run_once(l, 0), 0);
    CU_ASSERT_EQUAL(wr.calls, 0);

    /* Watching WRITE: it fires. */
    CU_ASSERT_EQUAL(pp_loop_mod(l, &wio, PP_EV_WRITE), 0);
    CU_ASSERT_EQUAL(wio.events, PP_EV_WRITE);
    CU_ASSERT_EQUAL(pp_loop_run_once(l, 1.0), 1);
    CU_ASSERT_EQUAL(wr.calls, 1);
    CU_ASSERT(wr.events & PP_EV_WRITE);
    CU_ASSERT_FALSE(wr.events & PP_EV_READ);
    /* Level-triggered: again next turn. */
    CU_ASSERT_EQUAL(pp_loop_run_once(l, 1.0), 1);
    CU_ASSERT_EQUAL(wr.calls, 2);
    /* Same events again is a no-op that succeeds. */
    CU_ASSERT_EQUAL(pp_loop_mod(l, &wio, PP_EV_WRITE), 0);
    CU_ASSERT_EQUAL(pp_loop_mod(l, &wio, 0), 0);
    CU_ASSERT_EQUAL(pp_loop_run_once(l, 0), 0);
    CU_ASSERT_EQUAL(wr.calls, 2);

    /* Data pending, read watch off: no event (the handler does not drain). */
    CU_ASSERT_EQUAL(write(p[1], "x", 1), 1);
    CU_ASSERT_EQUAL(pp_loop_mod(l, &rio, 0), 0);
    CU_ASSERT_EQUAL(pp_loop_run_once(l, 0.05), 0);
    CU_ASSERT_EQUAL(rr.calls, 0);
    /* Back on: it fires. */
    CU_ASSERT_EQUAL(pp_loop_mod(l, &rio, PP_EV_READ), 0);
    CU_ASSERT_EQUAL(pp_loop_run_once(l, 1.0), 1);
    CU_ASSERT_EQUAL(rr.calls, 1);
    /* Deleted: no more, though the data is still there. */
    pp_loop_del(l, &rio);
    CU_ASSERT_EQUAL(rio.events, 0);
    CU_ASSERT_EQUAL(pp_loop_run_once(l, 0.05), 0);
    CU_ASSERT_EQUAL(rr.calls, 1);
    /* ... and it can be added again. */
    CU_ASSERT_EQUAL(pp_loop_add(l, &rio, PP_EV_READ), 0);
    CU_ASSERT_EQUAL(pp_loop_run_once(l, 1.0), 1);
    CU_ASSERT_EQUAL(rr.calls, 2);

    pp_loop_del(l, &rio);
    pp_loop_del(l, &wio);
    close(p[0]);
    close(p[1]);
    pp_loop_free(l);
}

static void test_add_errors(void)
{
    pp_loop *l = pp_loop_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    rec r = {0};
    pp_io bad = {.fd = -1, .fn = io_rec, .data = &r};
    CU_ASSERT_EQUAL(pp_loop_add(l, &bad, PP_EV_READ), -1);
    int p[2];
    make_pipe(p);
    pp_io io = {.fd = p[0], .fn = io_rec, .data = &r};
    CU_ASSERT_EQUAL(pp_loop_add(l, &io, PP_EV_READ), 0);
    pp_io dup = {.fd = p[0], .fn = io_rec, .data = &r};
    CU_ASSERT_EQUAL(pp_loop_add(l, &dup, PP_EV_READ), -1); /* already watched */
    /* Modifying an io never added adds it; with a bad fd that fails. */
    pp_io notadded = {.fd = p[1], .fn = io_rec, .data = &r};
    CU_ASSERT_EQUAL(pp_loop_mod(l, &notadded, PP_EV_WRITE), 0);
    CU_ASSERT_EQUAL(notadded.added, 1);
    CU_ASSERT_EQUAL(pp_loop_mod(l, &notadded, 0), 0); /* watching nothing: out of epoll */
    CU_ASSERT_EQUAL(notadded.added, 0);
    pp_io badmod = {.fd = -1, .fn = io_rec, .data = &r};
    CU_ASSERT_EQUAL(pp_loop_mod(l, &badmod, PP_EV_WRITE), -1);
    pp_loop_del(l, &io);
    close(p[0]);
    close(p[1]);
    pp_loop_free(l);
}

/* Two fds ready in the same turn: both handled, the count returned. */
static void test_two_events(void)
{
    pp_loop *l = pp_loop_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    int a[2], b[2];
    make_pipe(a);
    make_pipe(b);
    rec ra = {.drain = 1}, rb = {.drain = 1};
    pp_io ia = {.fd = a[0], .fn = io_rec, .data = &ra};
    pp_io ib = {.fd = b[0], .fn = io_rec, .data = &rb};
    CU_ASSERT_EQUAL(pp_loop_add(l, &ia, PP_EV_READ), 0);
    CU_ASSERT_EQUAL(pp_loop_add(l, &ib, PP_EV_READ), 0);
    CU_ASSERT_EQUAL(write(a[1], "A", 1), 1);
    CU_ASSERT_EQUAL(write(b[1], "B", 1), 1);
    CU_ASSERT_EQUAL(pp_loop_run_once(l, 1.0), 2);
    CU_ASSERT_STRING_EQUAL(ra.got, "A");
    CU_ASSERT_STRING_EQUAL(rb.got, "B");
    pp_loop_del(l, &ia);
    pp_loop_del(l, &ib);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    pp_loop_free(l);
}

/* ---- timers ---- */

typedef struct tlog {
    int order[512];
    int n;
    int armed_in_cb; /* pp_timer_armed() seen inside a callback */
} tlog;

typedef struct ttimer {
    pp_timer t;
    int id;
    tlog *log;
    int rearm;       /* re-arm itself this many more times */
    double period;
} ttimer;

static void timer_cb(pp_loop *loop, pp_timer *t)
{
    ttimer *tt = t->data;
    if (pp_timer_armed(t))
        tt->log->armed_in_cb++;
    if (tt->log->n < (int)PP_ARRAY_LEN(tt->log->order))
        tt->log->order[tt->log->n++] = tt->id;
    if (tt->rearm > 0) {
        tt->rearm--;
        pp_timer_start(loop, t, pp_now() + tt->period);
    }
}

static void init_timer(ttimer *tt, int id, tlog *log)
{
    memset(tt, 0, sizeof *tt);
    tt->t.fn = timer_cb;
    tt->t.data = tt;
    tt->id = id;
    tt->log = log;
}

/* Runs the loop until `want` callbacks ran or the turns run out. */
static void run_until(pp_loop *l, const int *count, int want, double max_seconds)
{
    double end = pp_now() + max_seconds;
    for (int i = 0; i < 10000 && *count < want && pp_now() < end; i++)
        pp_loop_run_once(l, 0.05);
}

static void test_timers_order(void)
{
    pp_loop *l = pp_loop_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    tlog log = {0};
    ttimer t[5];
    for (int i = 0; i < 5; i++)
        init_timer(&t[i], i, &log);
    double now = pp_now();
    CU_ASSERT_EQUAL(pp_timer_armed(&t[0].t), 0);
    pp_timer_start(l, &t[0].t, now + 0.25);
    pp_timer_start(l, &t[1].t, now + 0.05);
    pp_timer_start(l, &t[2].t, now + 0.15);
    pp_timer_start(l, &t[3].t, now + 0.10);
    pp_timer_start(l, &t[4].t, now + 0.20);
    for (int i = 0; i < 5; i++)
        CU_ASSERT(pp_timer_armed(&t[i].t));
    /* Re-arm 1 to fire last; stop 2. */
    pp_timer_start(l, &t[1].t, now + 0.30);
    CU_ASSERT(pp_timer_armed(&t[1].t));
    pp_timer_stop(l, &t[2].t);
    CU_ASSERT_EQUAL(pp_timer_armed(&t[2].t), 0);
    pp_timer_stop(l, &t[2].t); /* stopping twice is fine */

    run_until(l, &log.n, 4, 5.0);
    CU_ASSERT_EQUAL_FATAL(log.n, 4);
    CU_ASSERT_EQUAL(log.order[0], 3);
    CU_ASSERT_EQUAL(log.order[1], 4);
    CU_ASSERT_EQUAL(log.order[2], 0);
    CU_ASSERT_EQUAL(log.order[3], 1);
    CU_ASSERT_EQUAL(log.armed_in_cb, 0); /* disarmed before its callback */
    for (int i = 0; i < 5; i++)
        CU_ASSERT_EQUAL(pp_timer_armed(&t[i].t), 0);
    /* The re-armed one did not fire early. */
    CU_ASSERT(pp_now() >= now + 0.30);

    /* The stopped timer never fires. */
    for (int i = 0; i < 3; i++)
        pp_loop_run_once(l, 0.02);
    CU_ASSERT_EQUAL(log.n, 4);
    pp_loop_free(l);
}

/* A timer does not fire before its time; run_once sleeps only until the
 * first timer, however long max_wait is. */
static void test_timer_bounds_wait(void)
{
    pp_loop *l = pp_loop_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    tlog log = {0};
    ttimer t;
    init_timer(&t, 7, &log);
    double t0 = pp_now();
    pp_timer_start(l, &t.t, t0 + 0.1);
    /* Not yet due. */
    CU_ASSERT_EQUAL(pp_loop_run_once(l, 0), 0);
    CU_ASSERT_EQUAL(log.n, 0);
    /* max_wait 5 s, but the timer ends the sleep. */
    for (int i = 0; i < 10 && log.n == 0; i++)
        pp_loop_run_once(l, 5.0);
    double dt = pp_now() - t0;
    CU_ASSERT_EQUAL(log.n, 1);
    CU_ASSERT(dt >= 0.1);
    CU_ASSERT(dt < 2.0);

    /* A timer already due fires in the next turn, without sleeping. */
    t0 = pp_now();
    pp_timer_start(l, &t.t, t0 - 1.0);
    pp_loop_run_once(l, 5.0);
    CU_ASSERT_EQUAL(log.n, 2);
    CU_ASSERT(pp_now() - t0 < 2.0);
    pp_loop_free(l);
}

/* Many due timers, some stopped and some re-armed, fire in order of
 * expiry (the heap). */
/* The heap against a plain list: 2,000 random starts, re-arms and stops
 * over 300 timers, checking after each that the loop counts the armed ones
 * right; then every armed timer fires, in order of expiry. */
static void test_timers_random(void)
{
    enum { N = 300, OPS = 2000 };
    pp_loop *l = pp_loop_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    tlog log = {0};
    static ttimer t[N];
    for (int i = 0; i < N; i++)
        init_timer(&t[i], i, &log);
    double base = pp_now() - 10000.0; /* all due */
    uint32_t x = 777;
    int ok = 1;
    for (int k = 0; k < OPS; k++) {
        x = x * 1103515245u + 12345u;
        int i = (int)((x >> 8) % N);
        if ((x >> 20) % 4 == 0)
            pp_timer_stop(l, &t[i].t);
        else
            pp_timer_start(l, &t[i].t, base + (double)((x >> 4) % 5000));
        size_t armed = 0;
        for (int j = 0; j < N; j++)
            armed += pp_timer_armed(&t[j].t) ? 1 : 0;
        ok = ok && armed == pp_loop_timers(l);
    }
    CU_ASSERT(ok);
    int expect = (int)pp_loop_timers(l);
    pp_loop_run_once(l, 0);
    CU_ASSERT_EQUAL(log.n, expect);
    int sorted = 1;
    for (int k = 1; k < log.n; k++)
        sorted = sorted && t[log.order[k - 1]].t.when <= t[log.order[k]].t.when;
    CU_ASSERT(sorted);
    CU_ASSERT_EQUAL(pp_loop_timers(l), 0);
    pp_loop_free(l);
}

static void test_timers_heap(void)
{
    enum { N = 40 };
    pp_loop *l = pp_loop_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    tlog log = {0};
    ttimer t[N];
    double base = pp_now() - 5000.0; /* all due */
    uint32_t x = 12345;
    for (int i = 0; i < N; i++) {
        init_timer(&t[i], i, &log);
        x = x * 1103515245u + 12345u;
        pp_timer_start(l, &t[i].t, base + (double)(x % 1000) + i * 1e-3);
    }
    for (int i = 0; i < N; i += 3)
        pp_timer_stop(l, &t[i].t);
    for (int i = 1; i < N; i += 5)
        if (i % 3 != 0)
            pp_timer_start(l, &t[i].t, base + 500.5 + i);
    int expect = 0;
    for (int i = 0; i < N; i++)
        expect += pp_timer_armed(&t[i].t) ? 1 : 0;
    CU_ASSERT_EQUAL(expect, N - (N + 2) / 3);

    pp_loop_run_once(l, 0);
    CU_ASSERT_EQUAL_FATAL(log.n, expect);
    int sorted = 1;
    for (int k = 1; k < log.n; k++)
        sorted = sorted && t[log.order[k - 1]].t.when <= t[log.order[k]].t.when;
    CU_ASSERT(sorted);
    for (int k = 0; k < log.n; k++)
        CU_ASSERT(log.order[k] % 3 != 0); /* no stopped timer fired */
    pp_loop_free(l);
}

/* A timer re-arming itself from its callback fires again. */
static void test_timer_rearm_in_callback(void)
{
    pp_loop *l = pp_loop_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    tlog log = {0};
    ttimer t;
    init_timer(&t, 1, &log);
    t.rearm = 3;
    t.period = 0.01;
    pp_timer_start(l, &t.t, pp_now());
    run_until(l, &log.n, 4, 5.0);
    CU_ASSERT_EQUAL(log.n, 4);
    CU_ASSERT_EQUAL(pp_timer_armed(&t.t), 0);
    for (int i = 0; i < 3; i++)
        pp_loop_run_once(l, 0.02);
    CU_ASSERT_EQUAL(log.n, 4);
    pp_loop_free(l);
}

/* ---- hooks, defer, break ---- */

typedef struct hookrec {
    int calls;
    int fd;          /* write a byte here on the first call, if >= 0 */
    int *order;
    int seq;
    int do_break;
} hookrec;

static void hook_fn(pp_loop *loop, void *data)
{
    hookrec *h = data;
    h->calls++;
    if (h->order)
        h->seq = ++*h->order;
    if (h->fd >= 0 && h->calls == 1)
        (void)!write(h->fd, "h", 1);
    if (h->do_break)
        pp_loop_break(loop);
}

static void test_hooks(void)
{
    pp_loop *l = pp_loop_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    int p[2];
    make_pipe(p);
    int order = 0;
    hookrec h1 = {.fd = p[1], .order = &order}, h2 = {.fd = -1};
    rec r = {.drain = 1, .order = &order};
    pp_io io = {.fd = p[0], .fn = io_rec, .data = &r};
    CU_ASSERT_EQUAL(pp_loop_add(l, &io, PP_EV_READ), 0);
    CU_ASSERT_EQUAL(pp_loop_hook(l, hook_fn, &h1), 0);
    CU_ASSERT_EQUAL(pp_loop_hook(l, hook_fn, &h2), 0);

    /* The hook runs before the sleep: its write wakes this very turn. */
    double t0 = pp_now();
    CU_ASSERT_EQUAL(pp_loop_run_once(l, 5.0), 1);
    CU_ASSERT(pp_now() - t0 < 2.0);
    CU_ASSERT_EQUAL(h1.calls, 1);
    CU_ASSERT_EQUAL(h2.calls, 1);
    CU_ASSERT_STRING_EQUAL(r.got, "h");
    CU_ASSERT(h1.seq < r.seq);

    /* Once per turn, events or not. */
    for (int i = 0; i < 5; i++)
        pp_loop_run_once(l, 0);
    CU_ASSERT_EQUAL(h1.calls, 6);
    CU_ASSERT_EQUAL(h2.calls, 6);
    CU_ASSERT_EQUAL(r.calls, 1);
    /* The hook of a turn comes after the events of the turn before. */
    CU_ASSERT(h1.seq > r.seq);

    pp_loop_del(l, &io);
    close(p[0]);
    close(p[1]);
    pp_loop_free(l);
}

typedef struct deferrec {
    int calls;
    int *order;
    int seq;
    pp_loop *loop;
    struct deferrec *chain; /* defer this one from inside */
} deferrec;

static void defer_fn(pp_loop *loop, void *data)
{
    deferrec *d = data;
    d->calls++;
    d->loop = loop;
    if (d->order)
        d->seq = ++*d->order;
    if (d->chain) {
        pp_loop_defer(loop, defer_fn, d->chain);
        d->chain = NULL;
    }
}

/* A watched fd whose handler defers `d` on its first call. */
typedef struct deferring_io {
    pp_io io;
    deferrec *d;
    int calls;
    int d_calls_seen; /* d->calls when this handler ran */
    int *order;
    int seq;
} deferring_io;

static void io_defer(pp_loop *loop, pp_io *io, unsigned ev)
{
    deferring_io *x = io->data;
    (void)ev;
    char buf[16];
    (void)!read(io->fd, buf, sizeof buf);
    x->calls++;
    x->d_calls_seen = x->d->calls;
    if (x->order)
        x->seq = ++*x->order;
    if (x->calls == 1)
        pp_loop_defer(loop, defer_fn, x->d);
}

static void test_defer(void)
{
    pp_loop *l = pp_loop_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    int order = 0;

    /* Deferred from outside: runs in the next turn, before its events. */
    int p[2];
    make_pipe(p);
    deferrec d0 = {.order = &order};
    rec r = {.drain = 1, .order = &order};
    pp_io io = {.fd = p[0], .fn = io_rec, .data = &r};
    CU_ASSERT_EQUAL(pp_loop_add(l, &io, PP_EV_READ), 0);
    CU_ASSERT_EQUAL(pp_loop_defer(l, defer_fn, &d0), 0);
    CU_ASSERT_EQUAL(d0.calls, 0); /* not at once */
    CU_ASSERT_EQUAL(write(p[1], "z", 1), 1);
    CU_ASSERT_EQUAL(pp_loop_run_once(l, 1.0), 1);
    CU_ASSERT_EQUAL(d0.calls, 1);
    CU_ASSERT_PTR_EQUAL(d0.loop, l);
    CU_ASSERT(d0.seq < r.seq);
    pp_loop_run_once(l, 0);
    CU_ASSERT_EQUAL(d0.calls, 1); /* once */

    /* Deferred from a handler: the other handlers of that turn still run
     * first; it has run before the events of the next turn. */
    int a[2], b[2];
    make_pipe(a);
    make_pipe(b);
    deferrec d1 = {.order = &order};
    deferring_io xa = {.d = &d1, .order = &order}, xb = {.d = &d1, .order = &order};
    xa.io = (pp_io){.fd = a[0], .fn = io_defer, .data = &xa};
    xb.io = (pp_io){.fd = b[0], .fn = io_defer, .data = &xb};
    CU_ASSERT_EQUAL(pp_loop_add(l, &xa.io, PP_EV_READ), 0);
    CU_ASSERT_EQUAL(pp_loop_add(l, &xb.io, PP_EV_READ), 0);
    CU_ASSERT_EQUAL(write(a[1], "1", 1), 1);
    CU_ASSERT_EQUAL(write(b[1], "1", 1), 1);
    CU_ASSERT_EQUAL(pp_loop_run_once(l, 1.0), 2);
    CU_ASSERT_EQUAL(xa.calls, 1);
    CU_ASSERT_EQUAL(xb.calls, 1);
    /* Whichever handler ran second had not yet seen the deferred call. */
    CU_ASSERT_EQUAL(xa.d_calls_seen, 0);
    CU_ASSERT_EQUAL(xb.d_calls_seen, 0);
    CU_ASSERT_EQUAL(write(a[1], "2", 1), 1);
    CU_ASSERT_EQUAL(pp_loop_run_once(l, 1.0), 1);
    CU_ASSERT_EQUAL(xa.calls, 2);
    /* Both handlers deferred d1 once each in the first turn. */
    CU_ASSERT_EQUAL(xa.d_calls_seen, 2);
    CU_ASSERT_EQUAL(d1.calls, 2);
    CU_ASSERT(d1.seq < xa.seq);

    pp_loop_del(l, &io);
    pp_loop_del(l, &xa.io);
    pp_loop_del(l, &xb.io);
    close(p[0]);
    close(p[1]);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    pp_loop_free(l);
}

/* A deferred function that defers another: both run, each once. */
static void test_defer_chain(void)
{
    pp_loop *l = pp_loop_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    deferrec second = {0}, first = {.chain = &second};
    CU_ASSERT_EQUAL(pp_loop_defer(l, defer_fn, &first), 0);
    for (int i = 0; i < 3; i++)
        pp_loop_run_once(l, 0);
    CU_ASSERT_EQUAL(first.calls, 1);
    CU_ASSERT_EQUAL(second.calls, 1);
    pp_loop_free(l);
}

/* Many deferred functions (the queue grows) all run once. */
static void test_defer_many(void)
{
    pp_loop *l = pp_loop_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    enum { N = 100 };
    int order = 0;
    deferrec d[N];
    memset(d, 0, sizeof d);
    for (int i = 0; i < N; i++) {
        d[i].order = &order;
        CU_ASSERT_EQUAL(pp_loop_defer(l, defer_fn, &d[i]), 0);
    }
    pp_loop_run_once(l, 0);
    int ok = 1;
    for (int i = 0; i < N; i++)
        ok = ok && d[i].calls == 1 && d[i].seq == i + 1; /* in the order deferred */
    CU_ASSERT(ok);
    pp_loop_free(l);
}

/* pp_loop_free() runs what is still deferred (how a conn freed at shutdown
 * is released). */
static void free_block(pp_loop *loop, void *p)
{
    (void)loop;
    int **pp = p;
    **pp = 1;
    free(*pp);
    *pp = NULL;
}

static void test_defer_run_by_free(void)
{
    pp_loop *l = pp_loop_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    int *block = malloc(sizeof *block);
    CU_ASSERT_PTR_NOT_NULL_FATAL(block);
    *block = 0;
    CU_ASSERT_EQUAL(pp_loop_defer(l, free_block, &block), 0);
    pp_loop_free(l);
    CU_ASSERT_PTR_NULL(block);
}

static void test_break(void)
{
    pp_loop *l = pp_loop_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    /* Before run_once: that run does not sleep. */
    pp_loop_break(l);
    double t0 = pp_now();
    CU_ASSERT_EQUAL(pp_loop_run_once(l, 5.0), 0);
    CU_ASSERT(pp_now() - t0 < 2.0);
    /* It is used up: the next run does sleep for max_wait. */
    t0 = pp_now();
    CU_ASSERT_EQUAL(pp_loop_run_once(l, 0.2), 0);
    CU_ASSERT(pp_now() - t0 >= 0.15);

    /* From a hook: the current run_once does not sleep. */
    hookrec h = {.fd = -1, .do_break = 1};
    CU_ASSERT_EQUAL(pp_loop_hook(l, hook_fn, &h), 0);
    t0 = pp_now();
    CU_ASSERT_EQUAL(pp_loop_run_once(l, 5.0), 0);
    CU_ASSERT(pp_now() - t0 < 2.0);
    CU_ASSERT_EQUAL(h.calls, 1);
    pp_loop_free(l);
}

int pp_register_suites(void)
{
    static const pp_test io[] = {
        {"new, empty run, free", test_new_free},
        {"read readiness and hang-up on a pipe", test_read_readiness},
        {"write readiness, mod and del", test_write_mod_del},
        {"add/mod errors", test_add_errors},
        {"two fds in one turn", test_two_events},
        {NULL, NULL},
    };
    static const pp_test timers[] = {
        {"fire in order of expiry, re-arm, stop", test_timers_order},
        {"a timer bounds the sleep", test_timer_bounds_wait},
        {"heap order with stops and re-arms", test_timers_heap},
        {"heap against random starts, re-arms, stops", test_timers_random},
        {"re-arm from the callback", test_timer_rearm_in_callback},
        {NULL, NULL},
    };
    static const pp_test turns[] = {
        {"hooks run before each sleep", test_hooks},
        {"defer runs at the start of the next turn", test_defer},
        {"defer from a deferred function", test_defer_chain},
        {"many deferred functions, in order", test_defer_many},
        {"pp_loop_free runs deferred functions", test_defer_run_by_free},
        {"break makes run_once not sleep", test_break},
        {NULL, NULL},
    };
    if (pp_add_suite("pp_loop fds", NULL, NULL, io) != 0 ||
        pp_add_suite("pp_loop timers", NULL, NULL, timers) != 0 ||
        pp_add_suite("pp_loop turns", NULL, NULL, turns) != 0)
        return -1;
    return 0;
}
