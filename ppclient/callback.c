/* SPDX-License-Identifier: MIT */
/* callback.c -- the callback thread: runs each finished job's callback,
 * exactly once, one at a time, off the scheduler thread (a slow callback
 * must not stall jobs).  Started on the first job that has a callback;
 * pp_server_free() from a callback is run here once that callback
 * returned (s->teardown). */
#include "internal.h"

/* The callbacks list links through gnext: a job cancelled while the
 * scheduler still holds it is in one of its lists through `next`, and it
 * has left its group's pending jobs. */
static void cb_push(job_list *l, pp_job *j)
{
    j->gnext = NULL;
    if (l->tail)
        l->tail->gnext = j;
    else
        l->head = j;
    l->tail = j;
    l->n++;
}

static pp_job *cb_pop(job_list *l)
{
    pp_job *j = l->head;
    if (j) {
        l->head = j->gnext;
        if (!l->head)
            l->tail = NULL;
        l->n--;
    }
    return j;
}

/* Runs j's callback (mu held on entry and exit, released meanwhile) and
 * retires the job. */
static void run_one(pp_server *s, pp_job *j)
{
    pthread_mutex_unlock(&s->mu);
    j->cb(j, j->cb_arg);
    pthread_mutex_lock(&s->mu);
    pp_job_retire_locked(s, j);
    if (s->waiters)
        pthread_cond_broadcast(&s->done_cv);
}

static void run_all_locked(pp_server *s)
{
    pp_job *j;
    while ((j = cb_pop(&s->callbacks)))
        run_one(s, j);
}

static void *callback_main(void *arg)
{
    pp_server *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->callbacks.head && !s->cb_stop && !s->free_requested)
            pthread_cond_wait(&s->cb_cv, &s->mu);
        if (s->free_requested) {
            s->free_requested = 0;
            pthread_mutex_unlock(&s->mu);
            s->teardown(s);
            return NULL;
        }
        pp_job *j = cb_pop(&s->callbacks);
        if (!j)
            break; /* stopped and drained */
        run_one(s, j);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* The callback thread, with the program's signal mask (whichever thread
 * starts it: the scheduler blocks every signal).  0 or an errno. */
static int start_thread(pp_server *s)
{
    pthread_attr_t a;
    int e = pthread_attr_init(&a);
    if (e != 0)
        return e;
    e = pthread_attr_setsigmask_np(&a, &s->app_sigmask);
    if (e == 0)
        e = pthread_create(&s->cb_thread, &a, callback_main, s);
    pthread_attr_destroy(&a);
    return e;
}

void pp_callback_queue_locked(pp_server *s, pp_job *j)
{
    if (!s->cb_started && !s->cb_stop) {
        if (start_thread(s) == 0)
            s->cb_started = 1;
        else
            pp_log(&s->log, PP_LOG_ERROR, "cannot start the callback thread; callbacks run "
                                          "on the scheduler thread");
    }
    cb_push(&s->callbacks, j);
    if (s->cb_started)
        pthread_cond_signal(&s->cb_cv);
    else
        run_all_locked(s); /* no thread: run it here (still exactly once) */
}

void pp_callback_stop(pp_server *s, int on_cb_thread)
{
    pthread_mutex_lock(&s->mu);
    s->cb_stop = 1;
    pthread_cond_broadcast(&s->cb_cv);
    int started = s->cb_started;
    if (on_cb_thread)
        run_all_locked(s);
    pthread_mutex_unlock(&s->mu);
    if (started && !on_cb_thread)
        pthread_join(s->cb_thread, NULL); /* after it ran what was queued */
    else if (on_cb_thread)
        pthread_detach(pthread_self()); /* it cannot join itself */
}

int pp_callback_thread_locked(const pp_server *s)
{
    return s->cb_started && pthread_equal(pthread_self(), s->cb_thread);
}
