/* SPDX-License-Identifier: MIT */
/* sched.c -- the scheduler thread: one queue of ready jobs feeding every
 * worker and node with free capacity; publishing finished jobs to waiting
 * threads and to the callback thread. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

void pp_sched_wake_locked(pp_server *s)
{
    if (s->wake_pending)
        return;
    s->wake_pending = 1;
    uint64_t one = 1;
    /* A full counter (impossible in practice) still wakes the loop. */
    while (write(s->efd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

static void efd_ready(pp_loop *loop, pp_io *io, unsigned ev)
{
    (void)loop;
    (void)ev;
    pp_server *s = io->data;
    uint64_t v;
    while (read(s->efd, &v, sizeof v) < 0 && errno == EINTR) {
    }
}

void pp_sched_finish(pp_server *s, pp_job *j, int status, void *mem, const char *data,
                     size_t len, pp_node *node, uint64_t run_ns)
{
    free(j->result_mem);
    j->result_mem = mem;
    j->result = data;
    j->result_len = len;
    j->node = node;
    j->run_ns = run_ns;
    j->end_status = status;
    job_list_push(&s->done, j);
}

void pp_sched_fail(pp_server *s, pp_job *j, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : PP_MIN((size_t)n, sizeof msg - 1);
    char *text = malloc(len + 1);
    if (text) {
        memcpy(text, msg, len);
        text[len] = 0;
    }
    pp_sched_finish(s, j, status, text, text, text ? len : 0, NULL, 0);
}

/* Makes finished jobs visible: statuses, counters, node statistics, group
 * counts; queues callbacks.  One lock round per loop turn, not per job. */
static void publish(pp_server *s)
{
    if (!s->done.head)
        return;
    job_list done = s->done;
    s->done = (job_list){0};
    int queued_cb = 0;
    pthread_mutex_lock(&s->mu);
    pp_job *j;
    while ((j = job_list_pop(&done))) {
        int st = j->end_status;
        atomic_store_explicit(&j->status, st, memory_order_release);
        if (st == PP_DONE)
            s->ndone++;
        else
            s->nfailed++;
        if (j->node && st != PP_CANCELLED) {
            j->node->jobs++;
            j->node->busy_ns += j->run_ns;
        }
        if (j->cb) {
            if (!s->cb_started && !s->cb_stop) {
                if (pthread_create(&s->cb_thread, NULL, pp_callback_main, s) == 0) {
                    s->cb_started = 1;
                } else {
                    pp_log(&s->log, PP_LOG_ERROR, "cannot start the callback thread; "
                                                  "callbacks run on the scheduler thread");
                }
            }
            job_list_push(&s->callbacks, j);
            queued_cb = 1;
            if (!s->cb_started) /* no thread: run it here (still exactly once) */
                pp_run_callbacks_locked(s);
            continue;
        }
        if (j->group)
            j->group->outstanding--;
        s->outstanding--;
        pp_job_unref(j);
    }
    if (queued_cb)
        pthread_cond_signal(&s->cb_cv);
    if (s->waiters)
        pthread_cond_broadcast(&s->done_cv);
    pthread_mutex_unlock(&s->mu);
}

/* Takes what API threads handed over: new jobs, a new pool size, stop. */
static void take_incoming(pp_server *s)
{
    pthread_mutex_lock(&s->mu);
    s->wake_pending = 0;
    job_list_splice(&s->ready, &s->incoming);
    int resize = s->ncpus_dirty ? s->ncpus_want : -1;
    s->ncpus_dirty = 0;
    if (s->stopping) {
        s->quit = 1;
        pp_loop_break(s->loop);
    }
    pthread_mutex_unlock(&s->mu);
    if (resize >= 0)
        pp_local_resize(s, resize);
}

/* Ends every queued job PP_LOST: nothing can run them (no_node_timeout). */
static void lose_waiting(pp_server *s, const char *why)
{
    char nodes[768];
    pp_remote_describe(s, nodes, sizeof nodes);
    pp_log(&s->log, PP_LOG_ERROR, "%zu job(s) lost: %s%s%s", s->ready.n, why,
           nodes[0] ? ": " : "", nodes);
    pp_job *j;
    while ((j = job_list_pop(&s->ready)))
        pp_sched_fail(s, j, PP_LOST, "lost: %s%s%s", why, nodes[0] ? ": " : "", nodes);
}

/* Jobs with nowhere to run: logged once (nodes get a few seconds to come
 * up first); with no_node_timeout, they end PP_LOST after that long, or at
 * once when every node refused our secret (that lasts until it changes). */
static void check_idle(pp_server *s)
{
    int local = s->pool && pp_pool_target(s->pool) > 0;
    if (local || pp_remote_any_up(s) || !s->ready.n) {
        s->idle_warned = 0;
        s->idle_since = 0;
        pp_timer_stop(s->loop, &s->idle_timer);
        return;
    }
    double now = pp_now();
    if (!s->idle_since)
        s->idle_since = now;
    if (!s->idle_warned && (s->nremotes == 0 || now - s->idle_since > 3.0)) {
        s->idle_warned = 1;
        pp_log(&s->log, PP_LOG_WARN, "%zu job(s) wait: no local worker and no remote "
                                     "node is available to run them", s->ready.n);
    }
    if (s->no_node_timeout <= 0)
        return;
    if (pp_remote_all_auth_failed(s)) {
        lose_waiting(s, "no local worker, and every node refused our secret (is it the "
                        "same on both sides?)");
    } else if (now - s->idle_since >= s->no_node_timeout) {
        char why[128];
        snprintf(why, sizeof why, "no local worker and no node was up to run it for %g s",
                 s->no_node_timeout);
        lose_waiting(s, why);
    } else if (!pp_timer_armed(&s->idle_timer)) {
        pp_timer_start(s->loop, &s->idle_timer, s->idle_since + s->no_node_timeout);
    }
}

static void before_sleep(pp_loop *loop, void *data)
{
    (void)loop;
    pp_server *s = data;
    take_incoming(s);
    pp_local_dispatch(s);
    pp_remote_dispatch(s);
    check_idle(s);
    publish(s);
}

/* Only wakes the loop: before_sleep() then looks at the waiting jobs. */
static void idle_timer_fired(pp_loop *loop, pp_timer *t)
{
    (void)loop;
    (void)t;
}

/* Ends every job the scheduler still holds with PP_CANCELLED. */
static void cancel_all(pp_server *s)
{
    pthread_mutex_lock(&s->mu);
    job_list_splice(&s->ready, &s->incoming);
    pthread_mutex_unlock(&s->mu);
    pp_job *j;
    while ((j = job_list_pop(&s->ready)))
        pp_sched_fail(s, j, PP_CANCELLED, "cancelled: the server was freed before the job ran");
    publish(s);
}

void *pp_sched_main(void *arg)
{
    pp_server *s = arg;
    char err[PP_ERR_LEN] = "";
    int ok = 1;
    s->efd_io = (pp_io){.fd = s->efd, .fn = efd_ready, .data = s};
    s->idle_timer = (pp_timer){.fn = idle_timer_fired, .data = s};
    if (pp_loop_add(s->loop, &s->efd_io, PP_EV_READ) != 0 ||
        pp_loop_hook(s->loop, before_sleep, s) != 0) {
        snprintf(err, sizeof err, "cannot set up the event loop: %s", strerror(errno));
        ok = 0;
    }
    if (ok && s->worker_path && pp_local_start(s, err) != 0)
        ok = 0;
    if (ok && pp_remote_start(s, err) != 0)
        ok = 0;
    /* A ppworker that cannot run (missing libraries, wrong architecture)
     * fails pp_server_new() rather than leaving jobs waiting; and the first
     * jobs find every worker up: wait (bounded) for their hellos. */
    double give_up = pp_now() + 10.0;
    while (ok && s->pool && pp_pool_ready(s->pool) < pp_pool_target(s->pool) &&
           pp_now() < give_up) {
        if (pp_pool_failures(s->pool) > 0) {
            snprintf(err, sizeof err, "%s", pp_pool_last_failure(s->pool));
            ok = 0;
            break;
        }
        pp_loop_run_once(s->loop, 0.1);
    }
    if (!ok) {
        pp_remote_stop(s);
        pp_local_stop(s);
    }
    pthread_mutex_lock(&s->mu);
    s->start_state = ok ? 1 : -1;
    snprintf(s->start_err, sizeof s->start_err, "%s", err);
    pthread_cond_broadcast(&s->done_cv);
    pthread_mutex_unlock(&s->mu);
    if (!ok)
        return NULL;

    while (!s->quit) {
        if (pp_loop_run_once(s->loop, -1) < 0) {
            pp_log(&s->log, PP_LOG_ERROR, "event loop failed: %s", strerror(errno));
            break;
        }
    }
    /* Jobs on workers and nodes come back to the queue, then all is
     * cancelled. */
    pp_timer_stop(s->loop, &s->idle_timer);
    pp_remote_stop(s);
    pp_local_stop(s);
    publish(s); /* results that arrived in the last turn still count */
    cancel_all(s);
    return NULL; /* deferred frees run in pp_loop_free() */
}

/* ---- callbacks ---- */

static void run_one_callback(pp_server *s, pp_job *j)
{
    pthread_mutex_unlock(&s->mu);
    j->cb(j, j->cb_arg);
    pthread_mutex_lock(&s->mu);
    if (j->group)
        j->group->outstanding--;
    s->outstanding--;
    pp_job_unref(j);
    if (s->waiters)
        pthread_cond_broadcast(&s->done_cv);
}

void pp_run_callbacks_locked(pp_server *s)
{
    pp_job *j;
    while ((j = job_list_pop(&s->callbacks)))
        run_one_callback(s, j);
}

void *pp_callback_main(void *arg)
{
    pp_server *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->callbacks.head && !s->cb_stop && !s->free_requested)
            pthread_cond_wait(&s->cb_cv, &s->mu);
        if (s->free_requested) {
            s->free_requested = 0;
            pthread_mutex_unlock(&s->mu);
            pp_server_teardown_from_callback(s);
            return NULL;
        }
        pp_job *j = job_list_pop(&s->callbacks);
        if (!j)
            break; /* stopped and drained */
        run_one_callback(s, j);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}
