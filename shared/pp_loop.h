/* SPDX-License-Identifier: MIT */
/* pp_loop.h -- a small epoll event loop: fd watchers, one-shot timers and
 * before-sleep hooks.  Single-threaded: every call from the loop's thread. */
#ifndef PP_LOOP_H
#define PP_LOOP_H

#include <stddef.h>

typedef struct pp_loop pp_loop;

#define PP_EV_READ 1u
#define PP_EV_WRITE 2u
#define PP_EV_ERROR 4u /* hang-up or error; reported with READ.  Watching only
                          PP_EV_ERROR keeps an fd registered for those alone. */

typedef struct pp_io pp_io;
typedef void (*pp_io_fn)(pp_loop *loop, pp_io *io, unsigned events);

/* A watched fd; embed it in the owner and set fd, fn and data first. */
struct pp_io {
    int fd;
    pp_io_fn fn;
    void *data;
    unsigned events; /* currently watched, set by the loop */
    int added;       /* registered with epoll (not while watching nothing) */
};

typedef struct pp_timer pp_timer;
typedef void (*pp_timer_fn)(pp_loop *loop, pp_timer *t);

/* A one-shot timer; embed it, set fn and data (the rest zero), then start
 * it.  Timers link themselves into the loop: arming one never fails. */
struct pp_timer {
    double when;     /* pp_now() time of expiry */
    pp_timer_fn fn;
    void *data;
    pp_timer *child, *next, *prev; /* the loop's heap links */
    int armed;
};

typedef void (*pp_hook_fn)(pp_loop *loop, void *data);

/* Returns NULL on failure (epoll_create1). */
pp_loop *pp_loop_new(void);
/* Frees the loop (not the watched fds).  NULL is a no-op. */
void pp_loop_free(pp_loop *loop);

/* Starts watching io->fd for `events`.  0 or -1 (errno set). */
int pp_loop_add(pp_loop *loop, pp_io *io, unsigned events);
/* Changes the watched events.  0 or -1.  Watching nothing takes the fd out
 * of epoll, which would otherwise still report hang-ups (and spin). */
int pp_loop_mod(pp_loop *loop, pp_io *io, unsigned events);
/* Stops watching (before the fd is closed). */
void pp_loop_del(pp_loop *loop, pp_io *io);

/* Arms (or re-arms) t to fire at pp_now() time `when`; cannot fail. */
void pp_timer_start(pp_loop *loop, pp_timer *t, double when);
void pp_timer_stop(pp_loop *loop, pp_timer *t);
static inline int pp_timer_armed(const pp_timer *t) { return t->armed; }
/* Timers armed now (tests, diagnostics). */
size_t pp_loop_timers(const pp_loop *loop);

/* Registers a hook run before each sleep (after the events of a turn):
 * where batched writes are flushed.  0 or -1. */
int pp_loop_hook(pp_loop *loop, pp_hook_fn fn, void *data);

/* Runs fn(data) at the start of the next turn, before any event: how an
 * object is freed from inside one of its own handlers, while other events
 * of the same turn may still point at it.  0 or -1. */
int pp_loop_defer(pp_loop *loop, pp_hook_fn fn, void *data);

/* Makes the current (or next) pp_loop_run_once() return without sleeping:
 * for a hook that decides the loop must end. */
void pp_loop_break(pp_loop *loop);

/* pp_now() as of this turn (after its wait, and again after its events):
 * for the many looks of a turn that tolerate that staleness, without a
 * clock read each. */
double pp_loop_now(const pp_loop *loop);

/* Waits up to max_wait seconds (< 0: until an event or timer) and runs what
 * is ready.  Returns the number of fd events handled, or -1 on error. */
int pp_loop_run_once(pp_loop *loop, double max_wait);

#endif
