/* SPDX-License-Identifier: MIT */
/* submit.c -- pp_submit, jobs, groups, waits. */
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "pp_copy.h"
#include "pp_wire.h"
#include "tags.h"

#define SPIN_SECONDS 0.0002

/* ---- groups ---- */

static pp_group *group_get_locked(pp_server *s, const char *name, int create)
{
    for (pp_group *g = s->groups; g; g = g->next)
        if (strcmp(g->name, name) == 0)
            return g;
    if (!create)
        return NULL;
    size_t n = strlen(name);
    pp_group *g = calloc(1, sizeof *g + n + 1);
    if (!g)
        return NULL;
    memcpy(g->name, name, n + 1);
    g->next = s->groups;
    s->groups = g;
    return g;
}

/* ---- jobs ---- */

/* With max_pending: waits until a job may be added (mu held).  Never on
 * the callback thread, which the jobs waited for may need: it may go over
 * the bound.  0, or -1 when it would wait and `nowait` says not to. */
static int wait_for_room_locked(pp_server *s, int nowait)
{
    if (s->max_pending <= 0 || s->outstanding < (size_t)s->max_pending || s->stopping ||
        pp_callback_thread_locked(s))
        return 0;
    if (nowait)
        return -1;
    s->waiters++;
    while (s->outstanding >= (size_t)s->max_pending && !s->stopping)
        pthread_cond_wait(&s->done_cv, &s->mu);
    s->waiters--;
    return 0;
}

/* The submit arguments, checked.  0, or -1 with pp_last_error() set. */
static int check_submit(const void *arg, size_t len, const pp_submit_opts *opts, const char *who)
{
    if (!arg && len) {
        pp_set_error("%s: arg is NULL but len is %zu", who, len);
        return -1;
    }
    if (len > PP_MAX_FRAME - 4) {
        pp_set_error("%s: an argument of %zu bytes exceeds the limit of %u", who, len,
                     PP_MAX_FRAME - 4);
        return -1;
    }
    if (opts && (opts->timeout < 0 || isnan(opts->timeout))) {
        pp_set_error("%s: the timeout must be >= 0 seconds", who);
        return -1;
    }
    if (opts && opts->group && strlen(opts->group) > 1024) {
        pp_set_error("%s: group names are limited to 1024 bytes", who);
        return -1;
    }
    if (opts && (opts->retries < 0 || opts->retries > PP_RETRIES_MAX)) {
        pp_set_error("%s: retries must be 0..%d", who, PP_RETRIES_MAX);
        return -1;
    }
    return 0;
}

/* opts->tags, checked, into *t (emptied).  0, or -1 with pp_last_error(). */
static int take_tags(const pp_submit_opts *opts, pp_tags *t, const char *who)
{
    char why[PP_ERR_LEN];
    t->n = 0;
    if (pp_tags_parse(t, opts->tags, why) != 0) {
        pp_set_error("%s: tags \"%.100s\": %s", who, opts->tags, why);
        return -1;
    }
    return 0;
}

/* The job joins what the scheduler takes next; mu held. */
static void hand_over_locked(pp_server *s, pp_job *j)
{
    if (j->tagset) { /* kept out of the ready queue (sched.c) */
        job_list_push(&s->incoming_tagged, j);
    } else {
        if (!s->incoming.head)
            s->incoming_prio = j->priority;
        else if (j->priority != s->incoming_prio)
            s->incoming_mixed = 1;
        job_list_push(&s->incoming, j);
    }
    pp_sched_wake_locked(s);
}

/* The tag set of opts->tags, checked and found or made (mu held), into
 * *id.  0, or -1 with pp_last_error() set.  Apart from pp_submit_entry(),
 * whose every call would otherwise carry its buffers. */
__attribute__((noinline)) static int tagset_locked(pp_server *s, const pp_submit_opts *opts,
                                                   uint16_t *id, const char *who)
{
    pp_tags tags;
    char err[PP_ERR_LEN];
    if (take_tags(opts, &tags, who) != 0)
        return -1;
    pp_tagset *ts = pp_tagset_get_locked(s, &tags, err);
    if (!ts) {
        pp_set_error("%s: %s", who, err);
        return -1;
    }
    *id = ts->id;
    return 0;
}

/* A job holding its argument: copied after the job (small ones), copied
 * into a shared buffer (large ones: the local workers read it there), or
 * where it is, in the caller's shared buffer `shm` (its reference then the
 * job's).  NULL with pp_last_error() set. */
static pp_job *job_new(pp_server *s, const void *arg, size_t len, pp_shm *shm, uint16_t flags,
                       const char *who)
{
    pp_shm *own = NULL; /* a large argument's copy (if memfds fail: after the job) */
    if (!shm && len >= PP_SHM_MIN && !(flags & PP_WIRE_F_BATCH) &&
        (own = pp_shm_get(s->shm, len, 0, NULL))) {
        pp_copy(own->base, arg, len, s->copy_threads);
        arg = own->base;
        shm = own;
    }
    size_t inl = shm ? 0 : len;
    /* Huge pages only pay for large arguments (memfds failed): a tiny job
     * saves the call. */
    size_t n = sizeof(pp_job) + inl + 1;
    pp_job *j = inl >= PP_SHM_MIN ? pp_malloc_big(n) : malloc(n);
    if (!j) {
        pp_shm_unref(own);
        pp_set_error("%s: out of memory for an argument of %zu bytes", who, len);
        return NULL;
    }
    memset(j, 0, sizeof *j);
    if (inl)
        memcpy(j->arg, arg, len);
    j->arg[inl] = 0;
    j->pj.arg = shm ? arg : j->arg;
    j->pj.ashm = shm;
    return j;
}

pp_job *pp_submit_entry(pp_server *s, pp_task_entry *task, const void *arg, size_t len,
                        const pp_submit_opts *opts, uint16_t flags, const char *who)
{
    return pp_submit_job(s, task, arg, len, NULL, opts, flags, who);
}

/* What may keep a job out (mu held): the max_pending bound, shutdown, its
 * tags, its group.  0, or -1 with mu released, pp_last_error() set and
 * the job freed.  Apart from pp_submit_job(): most jobs have none of
 * these, and its every call would otherwise carry this code's registers. */
__attribute__((noinline)) static int admit_locked(pp_server *s, pp_job *j, pp_shm *shm,
                                                  const pp_submit_opts *opts, const char *who)
{
    const char *why = NULL;
    int full = 0;
    if (wait_for_room_locked(s, opts && opts->nowait) != 0)
        why = "", full = s->max_pending;
    else if (s->stopping)
        why = "the server is shutting down";
    else if (opts && opts->tags && opts->tags[0] && tagset_locked(s, opts, &j->tagset, who) != 0)
        why = ""; /* pp_last_error() is set */
    else if (opts && opts->group && !(j->group = group_get_locked(s, opts->group, 1)))
        why = "out of memory";
    if (!why)
        return 0;
    pthread_mutex_unlock(&s->mu);
    if (full)
        pp_set_error("%s: %d jobs are pending, the max_pending bound", who, full);
    else if (why[0])
        pp_set_error("%s: %s", who, why);
    if (j->pj.ashm != shm) /* our copy; the caller's stays the caller's */
        pp_shm_unref(j->pj.ashm);
    free(j);
    return -1;
}

pp_job *pp_submit_job(pp_server *s, pp_task_entry *task, const void *arg, size_t len,
                      pp_shm *shm, const pp_submit_opts *opts, uint16_t flags, const char *who)
{
    if (pp_forked(s, who) || check_submit(arg, len, opts, who) != 0)
        return NULL;
    pp_job *j = job_new(s, arg, len, shm, flags, who);
    if (!j)
        return NULL;
    j->s = s;
    j->task = task;
    atomic_init(&j->status, PP_PENDING);
    atomic_init(&j->refs, 2);
    j->pj.len = len;
    j->pj.flags = flags;
    if (opts) {
        j->cb = opts->callback;
        j->cb_arg = opts->callback_arg;
        j->pj.timeout = opts->timeout;
        j->priority = opts->priority;
        j->retries = opts->retries;
    }
    pthread_mutex_lock(&s->mu);
    /* One test for what most jobs never meet (max_pending, shutdown, tags,
     * a group). */
    if ((opts || s->max_pending > 0 || s->stopping) && admit_locked(s, j, shm, opts, who) != 0)
        return NULL;
    if (j->group)
        j->group->outstanding++;
    s->outstanding++;
    s->submitted++;
    pp_job_link_live_locked(s, j);
    hand_over_locked(s, j);
    pthread_mutex_unlock(&s->mu);
    return j;
}

PP_API pp_job *pp_submit(pp_server *s, pp_task task, const void *arg, size_t len,
                         const pp_submit_opts *opts)
{
    if (!s || !task) {
        pp_set_error("pp_submit: %s is NULL", !s ? "the server" : "the task");
        return NULL;
    }
    pp_task_entry *t = pp_tasks_get(s, task, "pp_submit");
    return t ? pp_submit_job(s, t, arg, len, NULL, opts, 0, "pp_submit") : NULL;
}

PP_API int pp_job_status(const pp_job *j)
{
    if (!j) {
        pp_set_error("pp_job_status: NULL job");
        return -1;
    }
    return atomic_load_explicit(&((pp_job *)j)->status, memory_order_acquire);
}

/* Waits until the job is final or the deadline (pp_now() time; < 0 = none).
 * -1 in a forked child, where nothing would end it. */
static int job_wait_until(pp_job *j, double deadline, const char *who)
{
    int st = atomic_load_explicit(&j->status, memory_order_acquire);
    if (st != PP_PENDING)
        return st; /* final: the server may already be gone */
    if (pp_forked(j->s, who))
        return -1;
    /* Short jobs finish within a few tens of microseconds: look a little
     * before sleeping, which saves the wake-up (a futex round) then. */
    double spin_end = pp_now() + SPIN_SECONDS;
    if (deadline >= 0 && deadline < spin_end)
        spin_end = deadline;
    while ((st = atomic_load_explicit(&j->status, memory_order_acquire)) == PP_PENDING &&
           pp_now() < spin_end)
        sched_yield();
    if (st != PP_PENDING)
        return st;
    pp_server *s = j->s;
    pthread_mutex_lock(&s->mu);
    s->waiters++;
    while ((st = atomic_load_explicit(&j->status, memory_order_acquire)) == PP_PENDING &&
           !pp_cond_wait_until(&s->done_cv, &s->mu, deadline, CLOCK_REALTIME)) {
    }
    s->waiters--;
    pthread_mutex_unlock(&s->mu);
    return st;
}

PP_API int pp_job_wait(pp_job *j)
{
    if (!j) {
        pp_set_error("pp_job_wait: NULL job");
        return -1;
    }
    return job_wait_until(j, -1, "pp_job_wait");
}

PP_API int pp_job_wait_for(pp_job *j, double seconds)
{
    if (!j || seconds < 0 || isnan(seconds)) {
        pp_set_error("pp_job_wait_for: %s", !j ? "NULL job" : "seconds must be >= 0");
        return -1;
    }
    return job_wait_until(j, pp_now() + seconds, "pp_job_wait_for");
}

/* What a job cancelled by the caller says: the scheduler may still be
 * writing its result fields, which are then never read. */
static const char cancelled_text[] = "cancelled by the caller";

PP_API const void *pp_job_result(pp_job *j, size_t *len)
{
    if (len)
        *len = 0;
    if (!j) {
        pp_set_error("pp_job_result: NULL job");
        return NULL;
    }
    int st = job_wait_until(j, -1, "pp_job_result");
    if (st != PP_DONE) {
        if (st >= 0) {
            const char *e = pp_job_error(j);
            pp_set_error("pp_job_result: the job %s%s%s", pp_strerror(st), e[0] ? ": " : "", e);
        }
        return NULL;
    }
    if (len)
        *len = j->result_len;
    return j->result ? j->result : (const void *)"";
}

PP_API const char *pp_job_error(const pp_job *j)
{
    if (!j)
        return "";
    int st = atomic_load_explicit(&((pp_job *)j)->status, memory_order_acquire);
    if (st == PP_PENDING || st == PP_DONE)
        return "";
    if (atomic_load_explicit(&((pp_job *)j)->cancelled, memory_order_acquire))
        return cancelled_text;
    return j->result ? j->result : "";
}

PP_API const char *pp_job_node(const pp_job *j)
{
    if (!j)
        return "";
    int st = atomic_load_explicit(&((pp_job *)j)->status, memory_order_acquire);
    if (st == PP_PENDING || atomic_load_explicit(&((pp_job *)j)->cancelled, memory_order_acquire) ||
        !j->node)
        return "";
    return j->node->name;
}

/* pp_wait() and pp_wait_for(): until the group drained or the deadline
 * (pp_now() time; < 0 = none).  0, 1 (time ran out) or -1. */
static int wait_group(pp_server *s, const char *group, double deadline, const char *who)
{
    if (!s) {
        pp_set_error("%s: NULL server", who);
        return -1;
    }
    if (pp_forked(s, who))
        return -1;
    pthread_mutex_lock(&s->mu);
    if (pp_callback_thread_locked(s)) {
        pthread_mutex_unlock(&s->mu);
        pp_set_error("%s: called from a callback, it would wait for itself", who);
        return -1;
    }
    pp_group *g = group ? group_get_locked(s, group, 0) : NULL;
    int rc = 0;
    s->waiters++;
    size_t left;
    while ((left = group ? (g ? g->outstanding : 0) : s->outstanding) > 0) {
        if (pp_cond_wait_until(&s->done_cv, &s->mu, deadline, CLOCK_REALTIME)) {
            rc = 1;
            break;
        }
    }
    s->waiters--;
    pthread_mutex_unlock(&s->mu);
    if (rc == 1)
        pp_set_error("%s: %zu job(s)%s%s%s still pending", who, left, group ? " of group \"" : "",
                     group ? group : "", group ? "\"" : "");
    return rc;
}

PP_API int pp_wait(pp_server *s, const char *group)
{
    return wait_group(s, group, -1, "pp_wait");
}

PP_API int pp_wait_for(pp_server *s, const char *group, double seconds)
{
    if (seconds < 0 || isnan(seconds)) {
        pp_set_error("pp_wait_for: seconds must be >= 0");
        return -1;
    }
    return wait_group(s, group, pp_now() + seconds, "pp_wait_for");
}

/* ---- cancel ---- */

/* Ends a pending job PP_CANCELLED now (mu held): final for every reader at
 * once, its callback queued; the scheduler stops it wherever it is when it
 * sees cancel_gen change.  The reference taken here is the scheduler's
 * hold, dropped when the job leaves the scheduler (sched.c let_go()). */
static void cancel_locked(pp_server *s, pp_job *j)
{
    atomic_store_explicit(&j->cancelled, 1, memory_order_release);
    atomic_fetch_add_explicit(&j->refs, 1, memory_order_relaxed);
    atomic_store_explicit(&j->status, PP_CANCELLED, memory_order_release);
    pp_job_unlink_live_locked(s, j);
    s->nfailed++;
    s->ncancelled++;
    s->nstatus[PP_CANCELLED]++;
    s->cancel_gen++;
    if (j->cb)
        pp_callback_queue_locked(s, j);
    else
        pp_job_retire_locked(s, j);
}

PP_API int pp_job_cancel(pp_job *j)
{
    if (!j) {
        pp_set_error("pp_job_cancel: NULL job");
        return -1;
    }
    /* Ended: nothing to do, and its server may be gone (a handle outlives
     * it; every job is final once it went). */
    if (atomic_load_explicit(&j->status, memory_order_acquire) != PP_PENDING)
        return 1;
    pp_server *s = j->s;
    if (pp_forked(s, "pp_job_cancel"))
        return -1;
    pthread_mutex_lock(&s->mu);
    int ended = atomic_load_explicit(&j->status, memory_order_acquire) != PP_PENDING;
    if (!ended) {
        cancel_locked(s, j);
        pp_sched_wake_locked(s);
        if (s->waiters)
            pthread_cond_broadcast(&s->done_cv);
    }
    pthread_mutex_unlock(&s->mu);
    return ended;
}

/* Cancels every job on the list; returns how many. */
static int cancel_all_locked(pp_server *s, pp_job *j)
{
    int n = 0;
    while (j) {
        pp_job *next = j->gnext; /* cancel_locked() relinks j */
        cancel_locked(s, j);
        n++;
        j = next;
    }
    return n;
}

PP_API int pp_cancel_group(pp_server *s, const char *group)
{
    if (!s) {
        pp_set_error("pp_cancel_group: NULL server");
        return -1;
    }
    if (pp_forked(s, "pp_cancel_group"))
        return -1;
    pthread_mutex_lock(&s->mu);
    int n = 0;
    if (group) {
        pp_group *g = group_get_locked(s, group, 0);
        n = g ? cancel_all_locked(s, g->live) : 0;
    } else {
        n = cancel_all_locked(s, s->live);
        for (pp_group *g = s->groups; g; g = g->next)
            n += cancel_all_locked(s, g->live);
    }
    if (n) {
        pp_sched_wake_locked(s);
        if (s->waiters)
            pthread_cond_broadcast(&s->done_cv);
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* ---- results as they finish ---- */

PP_API pp_job *pp_next_done(pp_server *s, const char *group, double timeout)
{
    if (!s || isnan(timeout)) {
        pp_set_error("pp_next_done: %s", !s ? "NULL server" : "the timeout is NaN");
        return NULL;
    }
    if (pp_forked(s, "pp_next_done"))
        return NULL;
    double deadline = timeout < 0 ? -1 : pp_now() + timeout;
    pthread_mutex_lock(&s->mu);
    if (timeout != 0 && pp_callback_thread_locked(s)) {
        pthread_mutex_unlock(&s->mu);
        pp_set_error("pp_next_done: called from a callback with a timeout, it would wait "
                     "for itself (use 0)");
        return NULL;
    }
    pp_group *g = group ? group_get_locked(s, group, 0) : NULL;
    pp_job *j = NULL;
    size_t left = 0;
    s->waiters++;
    for (;;) {
        if ((j = pp_finished_take_locked(s, g, !group)))
            break;
        left = group ? (g ? g->outstanding : 0) : s->outstanding;
        if (!left || pp_cond_wait_until(&s->done_cv, &s->mu, deadline, CLOCK_REALTIME))
            break;
    }
    s->waiters--;
    pthread_mutex_unlock(&s->mu);
    if (!j) {
        const char *gq = group ? " of group \"" : "", *gn = group ? group : "",
                   *ge = group ? "\"" : "";
        if (!left)
            pp_set_error("pp_next_done: no job left%s%s%s: every one was returned", gq, gn, ge);
        else
            pp_set_error("pp_next_done: none finished within %g s (%zu job(s)%s%s%s pending)",
                         timeout, left, gq, gn, ge);
    }
    return j;
}
