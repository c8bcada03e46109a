/* SPDX-License-Identifier: MIT */
/* pp_loop.c -- epoll event loop with a pairing heap of timers. */
#include "pp_loop.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "pp_common.h"

#define MAX_EVENTS 64
#define MAX_HOOKS 8

struct pp_loop {
    int epfd;
    pp_timer *timers;        /* the earliest, root of the pairing heap */
    size_t ntimers;
    struct { pp_hook_fn fn; void *data; } hooks[MAX_HOOKS];
    int nhooks;
    struct deferred { pp_hook_fn fn; void *data; } *defer;
    size_t ndefer, capdefer;
    int no_sleep;
    double now;              /* pp_now() when this turn's wait ended */
};

pp_loop *pp_loop_new(void)
{
    pp_loop *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        free(l);
        return NULL;
    }
    l->now = pp_now();
    return l;
}

void pp_loop_free(pp_loop *l)
{
    if (!l)
        return;
    close(l->epfd);
    for (size_t i = 0; i < l->ndefer; i++)
        l->defer[i].fn(l, l->defer[i].data);
    free(l->defer);
    free(l);
}

static uint32_t to_epoll(unsigned ev)
{
    return ((ev & PP_EV_READ) ? EPOLLIN : 0u) | ((ev & PP_EV_WRITE) ? EPOLLOUT : 0u);
}

int pp_loop_add(pp_loop *l, pp_io *io, unsigned events)
{
    io->added = 0;
    io->events = ~events; /* force the change */
    return pp_loop_mod(l, io, events);
}

int pp_loop_mod(pp_loop *l, pp_io *io, unsigned events)
{
    if (io->events == events && (io->added || events == 0))
        return 0;
    if (events == 0) {
        if (io->added && epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL) != 0)
            return -1;
        io->added = 0;
        io->events = 0;
        return 0;
    }
    struct epoll_event e = {.events = to_epoll(events), .data.ptr = io};
    if (epoll_ctl(l->epfd, io->added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, io->fd, &e) != 0)
        return -1;
    io->added = 1;
    io->events = events;
    return 0;
}

void pp_loop_del(pp_loop *l, pp_io *io)
{
    if (io->added && io->fd >= 0)
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    io->added = 0;
    io->events = 0;
}

/* ---- timers: an intrusive pairing heap ----
 * Each timer links itself (child, next sibling, prev = previous sibling or,
 * for a first child, the parent), so arming one never allocates and cannot
 * fail; insert is O(1), removing the earliest O(log n) amortised. */

/* a and b are roots (no siblings); the later becomes the earlier's child. */
static pp_timer *meld(pp_timer *a, pp_timer *b)
{
    if (!a)
        return b;
    if (!b)
        return a;
    if (b->when < a->when) {
        pp_timer *t = a;
        a = b;
        b = t;
    }
    b->prev = a;
    b->next = a->child;
    if (a->child)
        a->child->prev = b;
    a->child = b;
    return a;
}

/* Melds a list of siblings into one heap: pairs left to right, then the
 * pairs right to left (the classic two passes). */
static pp_timer *merge_pairs(pp_timer *first)
{
    pp_timer *pairs = NULL;
    while (first) {
        pp_timer *a = first, *b = a->next;
        first = b ? b->next : NULL;
        a->next = a->prev = NULL;
        if (b)
            b->next = b->prev = NULL;
        pp_timer *m = meld(a, b);
        m->next = pairs; /* a stack: the last pair comes out first */
        pairs = m;
    }
    pp_timer *root = NULL;
    while (pairs) {
        pp_timer *n = pairs->next;
        pairs->next = NULL;
        root = meld(root, pairs);
        pairs = n;
    }
    if (root)
        root->prev = NULL;
    return root;
}

void pp_timer_stop(pp_loop *l, pp_timer *t)
{
    if (!t->armed)
        return;
    t->armed = 0;
    l->ntimers--;
    pp_timer *sub = merge_pairs(t->child);
    t->child = NULL;
    if (t == l->timers) {
        l->timers = sub;
        return;
    }
    /* Unlink t from its parent's list of children. */
    if (t->prev->child == t)
        t->prev->child = t->next;
    else
        t->prev->next = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->next = t->prev = NULL;
    l->timers = meld(l->timers, sub);
}

void pp_timer_start(pp_loop *l, pp_timer *t, double when)
{
    pp_timer_stop(l, t);
    t->when = when;
    t->child = t->next = t->prev = NULL;
    t->armed = 1;
    l->ntimers++;
    l->timers = meld(l->timers, t);
}

size_t pp_loop_timers(const pp_loop *l)
{
    return l->ntimers;
}

int pp_loop_hook(pp_loop *l, pp_hook_fn fn, void *data)
{
    if (l->nhooks == MAX_HOOKS)
        return -1;
    l->hooks[l->nhooks].fn = fn;
    l->hooks[l->nhooks].data = data;
    l->nhooks++;
    return 0;
}

void pp_loop_break(pp_loop *l)
{
    l->no_sleep = 1;
}

int pp_loop_defer(pp_loop *l, pp_hook_fn fn, void *data)
{
    if (l->ndefer == l->capdefer) {
        size_t cap = l->capdefer ? l->capdefer * 2 : 8;
        struct deferred *d = realloc(l->defer, cap * sizeof *d);
        if (!d)
            return -1;
        l->defer = d;
        l->capdefer = cap;
    }
    l->defer[l->ndefer].fn = fn;
    l->defer[l->ndefer].data = data;
    l->ndefer++;
    return 0;
}

static void run_deferred(pp_loop *l)
{
    /* A deferred function may defer more; those run in this pass too. */
    for (size_t i = 0; i < l->ndefer; i++)
        l->defer[i].fn(l, l->defer[i].data);
    l->ndefer = 0;
}

double pp_loop_now(const pp_loop *l)
{
    return l->now;
}

int pp_loop_run_once(pp_loop *l, double max_wait)
{
    run_deferred(l);
    for (int i = 0; i < l->nhooks; i++)
        l->hooks[i].fn(l, l->hooks[i].data);

    double now = pp_now();
    double wait = l->no_sleep ? 0 : max_wait;
    l->no_sleep = 0;
    if (l->timers) {
        double d = l->timers->when - now;
        if (d < 0)
            d = 0;
        if (wait < 0 || d < wait)
            wait = d;
    }
    /* A timer weeks away (a job's timeout of INFINITY) waits INT_MAX ms
     * and looks again, rather than overflowing the conversion. */
    int ms = wait < 0 ? -1 : wait >= INT_MAX / 1000.0 ? INT_MAX : (int)ceil(wait * 1000.0);
    struct epoll_event ev[MAX_EVENTS];
    int n = epoll_wait(l->epfd, ev, MAX_EVENTS, ms);
    l->now = pp_now();
    if (n < 0) {
        if (errno != EINTR)
            return -1;
        n = 0;
    }
    for (int i = 0; i < n; i++) {
        pp_io *io = ev[i].data.ptr;
        unsigned e = 0;
        if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
            e |= PP_EV_READ;
        if (ev[i].events & EPOLLOUT)
            e |= PP_EV_WRITE;
        if (ev[i].events & (EPOLLHUP | EPOLLERR))
            e |= PP_EV_ERROR;
        io->fn(l, io, e);
    }
    now = pp_now();
    l->now = now;
    while (l->timers && l->timers->when <= now) {
        pp_timer *t = l->timers;
        pp_timer_stop(l, t);
        t->fn(l, t);
    }
    run_deferred(l);
    return n;
}
