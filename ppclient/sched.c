/* SPDX-License-Identifier: MIT */
/* sched.c -- the scheduler: one queue of ready jobs and the policy that
 * feeds them to the backends (local pool first, then the nodes, whichever
 * has room), jobs that need tags (a queue per tag set, only for backends
 * having them), jobs coming back from backends, jobs nothing can run, and
 * publishing finished jobs to waiting threads and to the callback thread.
 * Everything here runs on the scheduler thread except pp_sched_wake_locked.
 * Backends are driven through their ops only (backend.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "tags.h"

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

/* ---- the ready queue ---- */

/* The level for `prio`, made if new (levels stay sorted, highest first).
 * Never NULL once the queue has its first level: without memory for a new
 * level the job joins the nearest one (out of order, never lost). */
static job_list *rq_level(ready_queue *rq, int prio)
{
    if (rq->nlv == 1 && rq->lv[0].priority == prio)
        return &rq->lv[0].q; /* the usual case: one priority */
    int lo = 0, hi = rq->nlv;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (rq->lv[mid].priority > prio)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < rq->nlv && rq->lv[lo].priority == prio)
        return &rq->lv[lo].q;
    if (rq->nlv == rq->cap) {
        int cap = rq->cap ? rq->cap * 2 : 8;
        ready_level *v = realloc(rq->lv, (size_t)cap * sizeof *v);
        if (!v)
            return rq->nlv ? &rq->lv[lo < rq->nlv ? lo : rq->nlv - 1].q : NULL;
        rq->lv = v;
        rq->cap = cap;
    }
    memmove(&rq->lv[lo + 1], &rq->lv[lo], (size_t)(rq->nlv - lo) * sizeof *rq->lv);
    rq->lv[lo] = (ready_level){.priority = prio};
    rq->nlv++;
    return &rq->lv[lo].q;
}

/* Removes level i if it is empty. */
static void rq_trim(ready_queue *rq, int i)
{
    if (rq->lv[i].q.head)
        return;
    memmove(&rq->lv[i], &rq->lv[i + 1], (size_t)(rq->nlv - i - 1) * sizeof *rq->lv);
    rq->nlv--;
}

static void rq_push(ready_queue *rq, pp_job *j, int front)
{
    job_list *l = rq_level(rq, j->priority);
    if (front)
        job_list_push_front(l, j);
    else
        job_list_push(l, j);
    rq->n++;
}

static pp_job *rq_pop(ready_queue *rq)
{
    if (!rq->nlv)
        return NULL;
    pp_job *j = job_list_pop(&rq->lv[0].q);
    rq->n--;
    rq_trim(rq, 0);
    return j;
}

/* ---- cancelled jobs ---- */

/* A cancelled job leaves the scheduler: pp_job_cancel() already made it
 * final and called it back; this drops the hold it took for us. */
static void let_go(pp_job *j)
{
    j->where = 0;
    pp_job_unref(j);
}

/* ---- jobs that need tags: a queue per tag set (tags.h), out of the ready
 * queue, so that untagged jobs are dispatched as if tags did not exist ---- */

/* Only wakes the loop: the scheduler's hook then looks at the waits. */
static void tw_wake(pp_loop *loop, pp_timer *t)
{
    (void)loop;
    (void)t;
}

static int tw_init(pp_server *s, char *err)
{
    if (!(s->tw = calloc(1, sizeof *s->tw))) {
        pp_seterr(err, "out of memory");
        return -1;
    }
    s->tw->timer = (pp_timer){.fn = tw_wake, .data = s};
    return 0;
}

/* A job into its set's queue, which joins the active sets. */
static void tw_enqueue(pp_server *s, pp_job *j, int front)
{
    pp_tagset *ts = pp_tagset_of(s, j);
    rq_push(&ts->q, j, front);
    s->tw->n++;
    if (!ts->active) {
        ts->active = 1;
        ts->anext = s->tw->active;
        s->tw->active = ts;
    }
}

/* Sets left without jobs leave the active ones; their wait is over. */
static void tw_drop_empty(tag_waits *tw)
{
    for (pp_tagset **p = &tw->active; *p;) {
        pp_tagset *ts = *p;
        if (ts->q.n) {
            p = &ts->anext;
            continue;
        }
        *p = ts->anext;
        ts->anext = NULL;
        ts->active = 0;
        ts->since = 0;
        ts->warned = 0;
    }
}

static void tw_take_locked(pp_server *s)
{
    pp_job *j;
    while ((j = job_list_pop(&s->incoming_tagged)))
        tw_enqueue(s, j, 0);
}

static void tw_requeue(pp_server *s, pp_job *j)
{
    j->where = 0;
    tw_enqueue(s, j, 1);
}

static void tw_sweep(pp_server *s)
{
    if (!s->tw)
        return;
    for (pp_tagset *ts = s->tw->active; ts; ts = ts->anext) {
        job_list keep = {0};
        pp_job *j;
        while ((j = rq_pop(&ts->q))) {
            if (pp_job_cancelled(j)) {
                s->tw->n--;
                let_go(j);
            } else {
                job_list_push(&keep, j);
            }
        }
        while ((j = job_list_pop(&keep)))
            rq_push(&ts->q, j, 0);
    }
    tw_drop_empty(s->tw);
}

/* Drops the cancelled jobs from the ready queue: one pass after a round of
 * cancels, however many there were. */
static void rq_sweep(pp_server *s)
{
    ready_queue *rq = &s->ready;
    for (int i = rq->nlv - 1; i >= 0; i--) {
        job_list keep = {0};
        pp_job *j;
        while ((j = job_list_pop(&rq->lv[i].q))) {
            if (pp_job_cancelled(j)) {
                rq->n--;
                let_go(j);
            } else {
                job_list_push(&keep, j);
            }
        }
        rq->lv[i].q = keep;
        rq_trim(rq, i);
    }
}

/* Stops what pp_job_cancel() cancelled since the last look: swept out of
 * the queue; each backend stops those it holds (they come back through
 * finish or requeue and are let go then). */
static void stop_cancelled(pp_server *s)
{
    rq_sweep(s);
    tw_sweep(s);
    for (int i = 0; i < s->nbackends; i++)
        if (s->backends[i]->ops->cancel)
            s->backends[i]->ops->cancel(s->backends[i]);
}

/* ---- jobs coming back from backends ---- */

static int retryable(int status)
{
    return status == PP_FAILED || status == PP_CRASHED || status == PP_TIMEOUT;
}

/* No large job ended for PP_SHM_IDLE seconds: the buffers idle that long
 * go, so that an idle program holds no shared memory (the local pool
 * trims too, but a program may have none). */
static void shm_timer(pp_loop *loop, pp_timer *t)
{
    pp_server *s = t->data;
    if (pp_now() - s->shm_last < PP_SHM_IDLE)
        pp_timer_start(loop, t, s->shm_last + PP_SHM_IDLE);
    else
        pp_shm_cache_trim(s->shm, 0); /* all idle: one freed just now too */
}

/* A job that used shared buffers ended: the idle timer runs from now. */
__attribute__((noinline)) static void shm_job_ended(pp_server *s, pp_job *j)
{
    pp_shm_settle(j->pj.rshm); /* the program may keep it: no fd for ever */
    s->shm_last = pp_now();
    if (!pp_timer_armed(&s->shm_timer))
        pp_timer_start(s->loop, &s->shm_timer, s->shm_last + PP_SHM_IDLE);
}

/* Once more, before newer jobs of its priority, elsewhere if it can. */
__attribute__((noinline)) static void retry(pp_server *s, pp_job *j, void *mem)
{
    free(mem);
    j->retries--;
    j->runs_failed++;
    j->avoid = j->where;
    j->where = 0;
    pthread_mutex_lock(&s->mu);
    s->nretried++;
    pthread_mutex_unlock(&s->mu);
    if (j->tagset)
        tw_requeue(s, j);
    else
        rq_push(&s->ready, j, 1);
}

/* The result of a job retried that failed still: says how many runs
 * failed, then the last one's reason (unchanged without memory). */
__attribute__((noinline)) static void runs_failed_text(const pp_job *j, void **mem,
                                                       const char **data, size_t *len)
{
    char *text = NULL;
    int n = asprintf(&text, "%d runs failed; the last: %s", j->runs_failed + 1,
                     *data ? *data : "");
    if (n >= 0) {
        free(*mem);
        *mem = text;
        *data = text;
        *len = (size_t)n;
    }
}

/* The cold paths are apart, so that a tiny job's finish saves few
 * registers. */
void pp_sched_finish(pp_server *s, pp_job *j, int status, void *mem, const char *data,
                     size_t len, pp_node *node, uint64_t run_ns)
{
    if (j->pj.ashm || j->pj.rshm)
        shm_job_ended(s, j);
    if (pp_job_cancelled(j)) {
        free(mem); /* a result that arrived after all is dropped */
        let_go(j);
        return;
    }
    if (retryable(status) && j->retries > 0) {
        retry(s, j, mem);
        return;
    }
    if (j->runs_failed && status != PP_DONE)
        runs_failed_text(j, &mem, &data, &len);
    free(j->result_mem);
    j->result_mem = mem;
    j->result = data;
    j->result_len = len;
    j->node = node;
    if (node) /* the job may outlive the server: the node stays for it */
        node->named++;
    j->run_ns = run_ns;
    j->end_status = status;
    j->where = 0;
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

void pp_sched_requeue(pp_server *s, pp_job *j)
{
    if (pp_job_cancelled(j)) {
        let_go(j);
        return;
    }
    j->where = 0;
    if (j->tagset)
        tw_requeue(s, j);
    else
        rq_push(&s->ready, j, 1);
}

void pp_sched_poke(pp_server *s)
{
    pp_loop_break(s->loop);
}

/* Makes finished jobs visible: statuses, counters, node statistics, group
 * counts; queues callbacks.  One lock round per loop turn, not per job. */
static void publish(pp_server *s)
{
    if (!s->done.head)
        return;
    job_list done = s->done;
    s->done = (job_list){0};
    pthread_mutex_lock(&s->mu);
    pp_job *j;
    while ((j = job_list_pop(&done))) {
        if (pp_job_cancelled(j)) { /* cancelled after it ended here: cancel won */
            let_go(j);
            continue;
        }
        int st = j->end_status;
        atomic_store_explicit(&j->status, st, memory_order_release);
        pp_job_unlink_live_locked(s, j);
        if (st == PP_DONE)
            s->ndone++;
        else
            s->nfailed++;
        if (st == PP_CANCELLED)
            s->ncancelled++;
        if ((unsigned)st < PP_STATS_STATUSES)
            s->nstatus[st]++;
        if (j->node && st != PP_CANCELLED) {
            j->node->jobs++;
            j->node->busy_ns += j->run_ns;
            s->run_hist[pp_run_bucket(j->run_ns)]++;
        }
        if (j->cb)
            pp_callback_queue_locked(s, j);
        else
            pp_job_retire_locked(s, j);
    }
    if (s->waiters)
        pthread_cond_broadcast(&s->done_cv);
    pthread_mutex_unlock(&s->mu);
}

/* ---- the policy ---- */

/* Takes what API threads handed over: new jobs, a new pool size, stop. */
static void take_incoming(pp_server *s)
{
    pthread_mutex_lock(&s->mu);
    s->wake_pending = 0;
    if (!s->incoming_mixed) { /* one priority: the whole list at once */
        job_list *l = s->incoming.head ? rq_level(&s->ready, s->incoming_prio) : NULL;
        if (l) {
            s->ready.n += s->incoming.n;
            job_list_splice(l, &s->incoming);
        }
    }
    pp_job *j;
    while ((j = job_list_pop(&s->incoming)))
        rq_push(&s->ready, j, 0);
    s->incoming_mixed = 0;
    if (s->incoming_tagged.head)
        tw_take_locked(s);
    int cancels = s->cancel_gen != s->cancel_seen;
    s->cancel_seen = s->cancel_gen;
    int resize = s->ncpus_dirty ? s->ncpus_want : -1;
    s->ncpus_dirty = 0;
    if (s->stopping) {
        s->quit = 1;
        pp_loop_break(s->loop);
    }
    pthread_mutex_unlock(&s->mu);
    if (cancels)
        stop_cancelled(s);
    for (int i = 0; resize >= 0 && i < s->nbackends; i++)
        if (s->backends[i]->ops->resize)
            s->backends[i]->ops->resize(s->backends[i], resize);
}

/* Whether a backend other than `b` is up to run a job that failed on `b`. */
static int other_up(pp_server *s, const pp_backend *b)
{
    for (int i = 0; i < s->nbackends; i++)
        if (s->backends[i] != b && s->backends[i]->ops->state(s->backends[i]) == PP_BACKEND_UP)
            return 1;
    return 0;
}

#define AVOID_SCAN 64 /* jobs passed over per backend and round, at most */

/* ---- jobs that need tags: backends that have them take them ---- */

#define WARN_AFTER 3.0 /* seconds nodes get to come up before a wait is logged */

/* The set b may take whose first job comes first (highest priority), or
 * NULL. */
static pp_tagset *tw_best_set(pp_server *s, const pp_backend *b)
{
    pp_tagset *best = NULL;
    for (pp_tagset *ts = s->tw->active; ts; ts = ts->anext)
        if (ts->q.nlv && (!best || ts->q.lv[0].priority > best->q.lv[0].priority) &&
            pp_tags_subset(&ts->tags, b->tags))
            best = ts;
    return best;
}

/* Whether a backend other than b is up with every tag of ts. */
static int tw_other_has(pp_server *s, const pp_backend *b, const pp_tagset *ts)
{
    for (int i = 0; i < s->nbackends; i++) {
        pp_backend *o = s->backends[i];
        if (o != b && o->tags && o->ops->state(o) == PP_BACKEND_UP &&
            pp_tags_subset(&ts->tags, o->tags))
            return 1;
    }
    return 0;
}

/* Backend i takes what it has room for.  A job whose last run failed there
 * waits for another backend with its tags while one is up. */
static void tw_feed(pp_server *s, pp_backend *b, int i)
{
    job_list aside = {0};
    pp_tagset *ts;
    while (s->tw->n && b->ops->room(b) > 0 && (ts = tw_best_set(s, b))) {
        pp_job *j = rq_pop(&ts->q);
        s->tw->n--;
        if (pp_job_cancelled(j)) {
            let_go(j);
            continue;
        }
        if (j->avoid == i + 1 && aside.n < AVOID_SCAN && tw_other_has(s, b, ts)) {
            job_list_push(&aside, j);
            continue;
        }
        j->where = (uint16_t)(i + 1);
        if (b->ops->dispatch(b, j) != 0) {
            tw_requeue(s, j);
            break;
        }
    }
    /* Back in front of their sets, in their order. */
    pp_job *rev = NULL, *j;
    while ((j = job_list_pop(&aside))) {
        j->next = rev;
        rev = j;
    }
    while ((j = rev)) {
        rev = j->next;
        tw_enqueue(s, j, 1);
    }
}

static void tw_dispatch(pp_server *s)
{
    for (int i = 0; i < s->nbackends && s->tw->n; i++)
        if (s->backends[i]->tags)
            tw_feed(s, s->backends[i], i);
    tw_drop_empty(s->tw);
}

/* ---- jobs that need tags no backend up has ---- */

/* Every backend but those removed, "name [tags] state", into buf. */
static void tw_describe(pp_server *s, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < s->nbackends && used + 1 < len; i++) {
        pp_backend *b = s->backends[i];
        pp_backend_state st = b->ops->state(b);
        if (st == PP_BACKEND_REMOVED)
            continue;
        char tags[PP_TAGS_TEXT_MAX] = "no tags";
        if (!b->tags_known)
            snprintf(tags, sizeof tags, "tags not known yet");
        else if (b->tags)
            pp_tags_text(b->tags, tags, sizeof tags);
        int n = snprintf(buf + used, len - used, "%s%s [%s] %s", used ? "; " : "",
                         b->node->name, tags,
                         st == PP_BACKEND_UP && b->node->state == PP_NODE_DORMANT
                             ? "dormant" /* capacity, reconnected when jobs can go */
                         : st == PP_BACKEND_UP      ? "up"
                         : st == PP_BACKEND_REFUSED ? "refused our secret"
                                                    : "not up");
        used = n < 0 ? len : PP_MIN(used + (size_t)n, len - 1);
    }
    if (!buf[0])
        snprintf(buf, len, "none");
}

/* Whether a backend up has every tag of ts (1); else 0, with *down set
 * when one that is not up has them, and *unknown counting the backends
 * that may still come up whose tags are not known yet. */
static int tw_runnable(pp_server *s, const pp_tagset *ts, int *down, int *unknown)
{
    *down = *unknown = 0;
    for (int i = 0; i < s->nbackends; i++) {
        pp_backend *b = s->backends[i];
        pp_backend_state st = b->ops->state(b);
        if (st == PP_BACKEND_REMOVED)
            continue;
        if (!b->tags_known && st == PP_BACKEND_WAITING)
            (*unknown)++;
        if (b->tags && pp_tags_subset(&ts->tags, b->tags)) {
            if (st == PP_BACKEND_UP)
                return 1;
            *down = 1;
        }
    }
    return 0;
}

/* Ends every job of ts PP_LOST saying why. */
static void tw_lose(pp_server *s, pp_tagset *ts, const char *why)
{
    pp_log(&s->log, PP_LOG_ERROR, "%zu job(s) lost: %s, for %g s (no_node_timeout)", ts->q.n,
           why, s->no_node_timeout);
    pp_job *j;
    while ((j = rq_pop(&ts->q))) {
        s->tw->n--;
        pp_sched_fail(s, j, PP_LOST, "lost: %s, for %g s (no_node_timeout)", why,
                      s->no_node_timeout);
    }
}

/* One set that no backend up can take: logged once the nodes had their
 * chance to come up; lost after no_node_timeout.  When to look again. */
static double tw_check_set(pp_server *s, pp_tagset *ts, double now)
{
    int down, unknown;
    if (tw_runnable(s, ts, &down, &unknown)) {
        ts->since = 0;
        ts->warned = 0;
        return 0;
    }
    if (!ts->since)
        ts->since = now;
    double lose_at = s->no_node_timeout > 0 ? ts->since + s->no_node_timeout : 0;
    int warn = !ts->warned && (!unknown || now - ts->since >= WARN_AFTER);
    if (!warn && !(lose_at && now >= lose_at)) {
        double at = ts->warned ? lose_at : ts->since + WARN_AFTER;
        return lose_at && lose_at < at ? lose_at : at;
    }
    char nodes[768], why[PP_TAGS_TEXT_MAX + 900];
    tw_describe(s, nodes, sizeof nodes);
    snprintf(why, sizeof why, "%zu job(s) need tags %s: %s (nodes: %s)", ts->q.n, ts->text,
             down ? "no node that has them is up" : "no node has them", nodes);
    if (warn) {
        ts->warned = 1;
        pp_log(&s->log, PP_LOG_WARN, "%s; they wait for one", why);
    }
    if (lose_at && now >= lose_at) {
        snprintf(why, sizeof why, "it needs tags %s: %s (nodes: %s)", ts->text,
                 down ? "no node that has them is up" : "no node has them", nodes);
        tw_lose(s, ts, why);
        return 0;
    }
    return lose_at;
}

static void tw_check(pp_server *s)
{
    double now = pp_now(), next = 0;
    for (pp_tagset *ts = s->tw->active; ts; ts = ts->anext) {
        double at = tw_check_set(s, ts, now);
        if (at > 0 && (!next || at < next))
            next = at;
    }
    tw_drop_empty(s->tw);
    if (next > 0 && (!pp_timer_armed(&s->tw->timer) || s->tw->timer.when > next))
        pp_timer_start(s->loop, &s->tw->timer, next);
}

static void tw_shutdown(pp_server *s)
{
    if (!s->tw)
        return;
    pp_timer_stop(s->loop, &s->tw->timer);
    for (pp_tagset *ts = s->tw->active, *n; ts; ts = n) {
        n = ts->anext;
        pp_job *j;
        while ((j = rq_pop(&ts->q)))
            pp_sched_fail(s, j, PP_CANCELLED, "cancelled: the server was freed before the job ran");
        ts->anext = NULL;
        ts->active = 0;
    }
    free(s->tw);
    s->tw = NULL;
}

void pp_sched_flush_due(pp_server *s, pp_backend *b)
{
    if (b->flush_due)
        return;
    b->flush_due = 1;
    s->due[s->ndue++] = b; /* room for every backend (pp_sched_add) */
}

/* Flushes the backends that asked to be; those that are not nodes stay on
 * the list (flushed every turn). */
static void flush_due(pp_server *s)
{
    int keep = 0;
    for (int k = 0; k < s->ndue; k++) {
        pp_backend *b = s->due[k];
        b->ops->flush(b);
        if (b->remote)
            b->flush_due = 0;
        else
            s->due[keep++] = b;
    }
    s->ndue = keep;
}

/* Each backend in turn takes what it has room for, highest priority first
 * (jobs handed back go before newer ones of their priority).  A job whose
 * last run failed on a backend waits for another one while one is up.
 * Only while jobs wait: an idle turn visits no backend. */
static void dispatch(pp_server *s)
{
    if (s->tw->n) /* jobs that need tags: on backends that have them, first */
        tw_dispatch(s);
    for (int i = 0; i < s->nbackends && s->ready.n; i++) {
        pp_backend *b = s->backends[i];
        job_list aside = {0};
        while (s->ready.n && b->ops->room(b) > 0) {
            pp_job *j = rq_pop(&s->ready);
            if (pp_job_cancelled(j)) {
                let_go(j);
                continue;
            }
            if (j->avoid == i + 1 && aside.n < AVOID_SCAN && other_up(s, b)) {
                job_list_push(&aside, j);
                continue;
            }
            j->where = (uint16_t)(i + 1);
            if (b->ops->dispatch(b, j) != 0) {
                j->where = 0;
                rq_push(&s->ready, j, 1);
                break;
            }
        }
        /* Back in front, in their order. */
        pp_job *rev = NULL, *j;
        while ((j = job_list_pop(&aside))) {
            j->next = rev;
            rev = j;
        }
        while ((j = rev)) {
            rev = j->next;
            rq_push(&s->ready, j, 1);
        }
    }
    flush_due(s);
}

/* Ends every queued job PP_LOST: nothing can run them (no_node_timeout). */
static void lose_waiting(pp_server *s, const char *why)
{
    char nodes[768] = "";
    size_t used = 0;
    for (int i = 0; i < s->nbackends && used + 1 < sizeof nodes; i++) {
        pp_backend *b = s->backends[i];
        pp_backend_state st = b->ops->state(b);
        if (!b->remote || st == PP_BACKEND_UP || st == PP_BACKEND_REMOVED)
            continue;
        if (used)
            used += (size_t)snprintf(nodes + used, sizeof nodes - used, "; ");
        if (used + 1 < sizeof nodes)
            b->ops->describe(b, nodes + used, sizeof nodes - used);
        used = strlen(nodes);
    }
    pp_log(&s->log, PP_LOG_ERROR, "%zu job(s) lost: %s%s%s", s->ready.n, why,
           nodes[0] ? ": " : "", nodes);
    pp_job *j;
    while ((j = rq_pop(&s->ready)))
        pp_sched_fail(s, j, PP_LOST, "lost: %s%s%s", why, nodes[0] ? ": " : "", nodes);
}

/* Jobs with nowhere to run: logged once (nodes get a few seconds to come
 * up first); with no_node_timeout, they end PP_LOST after that long, or at
 * once when every node refused our secret (that lasts until it changes). */
static void check_idle(pp_server *s)
{
    int up = 0, nodes = 0, refused = 0;
    /* Nothing waiting (most turns): no backend is visited. */
    for (int i = 0; s->ready.n && i < s->nbackends && !up; i++) {
        pp_backend_state st = s->backends[i]->ops->state(s->backends[i]);
        up |= st == PP_BACKEND_UP;
        if (s->backends[i]->remote && st != PP_BACKEND_REMOVED) {
            nodes++;
            refused += st == PP_BACKEND_REFUSED;
        }
    }
    if (up || !s->ready.n) {
        s->idle_warned = 0;
        s->idle_since = 0;
        pp_timer_stop(s->loop, &s->idle_timer);
        return;
    }
    double now = pp_now();
    if (!s->idle_since)
        s->idle_since = now;
    if (!s->idle_warned && (nodes == 0 || now - s->idle_since > 3.0)) {
        s->idle_warned = 1;
        pp_log(&s->log, PP_LOG_WARN, "%zu job(s) wait: no local worker and no remote "
                                     "node is available to run them", s->ready.n);
    }
    if (s->no_node_timeout <= 0)
        return;
    if (nodes && refused == nodes) {
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
    dispatch(s);
    check_idle(s);
    if (s->tw->n)
        tw_check(s);
    publish(s);
}

/* Only wakes the loop: before_sleep() then looks at the waiting jobs. */
static void idle_timer_fired(pp_loop *loop, pp_timer *t)
{
    (void)loop;
    (void)t;
}

/* ---- the thread's life ---- */

int pp_sched_init(pp_server *s, char *err)
{
    s->shm_timer = (pp_timer){.fn = shm_timer, .data = s};
    /* The first levels now: a push never lacks one (rq_level()). */
    s->ready = (ready_queue){.lv = malloc(8 * sizeof(ready_level)), .cap = 8};
    if (!s->ready.lv) {
        pp_seterr(err, "out of memory");
        return -1;
    }
    if (tw_init(s, err) != 0)
        return -1;
    s->efd_io = (pp_io){.fd = s->efd, .fn = efd_ready, .data = s};
    s->idle_timer = (pp_timer){.fn = idle_timer_fired, .data = s};
    if (pp_loop_add(s->loop, &s->efd_io, PP_EV_READ) != 0 ||
        pp_loop_hook(s->loop, before_sleep, s) != 0) {
        pp_seterr(err, "cannot set up the event loop: %s", strerror(errno));
        return -1;
    }
    return 0;
}

int pp_sched_add(pp_server *s, pp_backend *b)
{
    if (s->nbackends >= UINT16_MAX) /* a job names its backend in 16 bits */
        return -1;
    pp_backend **v = realloc(s->backends, ((size_t)s->nbackends + 1) * sizeof *v);
    if (!v)
        return -1;
    s->backends = v;
    v = realloc(s->due, ((size_t)s->nbackends + 1) * sizeof *v);
    if (!v)
        return -1; /* the backend array only grew: harmless */
    s->due = v;
    s->backends[s->nbackends++] = b;
    if (!b->remote) /* the local pool: flushed every turn */
        pp_sched_flush_due(s, b);
    return 0;
}

void pp_sched_run(pp_server *s)
{
    while (!s->quit) {
        if (pp_loop_run_once(s->loop, -1) < 0) {
            pp_log(&s->log, PP_LOG_ERROR, "event loop failed: %s", strerror(errno));
            break;
        }
    }
}

void pp_sched_shutdown(pp_server *s)
{
    pp_timer_stop(s->loop, &s->idle_timer);
    /* Jobs on workers and nodes come back to the queue... */
    for (int i = s->nbackends - 1; i >= 0; i--)
        s->backends[i]->ops->free(s->backends[i]);
    free(s->backends);
    s->backends = NULL;
    s->nbackends = 0;
    free(s->due);
    s->due = NULL;
    s->ndue = 0;
    publish(s); /* results that arrived in the last turn still count */
    /* ...then everything not finished is cancelled. */
    take_incoming(s);
    pp_job *j;
    while ((j = rq_pop(&s->ready)))
        pp_sched_fail(s, j, PP_CANCELLED, "cancelled: the server was freed before the job ran");
    tw_shutdown(s);
    publish(s);
    free(s->ready.lv);
    s->ready = (ready_queue){0};
}
