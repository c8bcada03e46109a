/* SPDX-License-Identifier: MIT */
/* joblists.c -- the lists a job joins besides the scheduler's: its group's
 * pending jobs (for cancels, through gprev/gnext) and its group's finished
 * jobs (for pp_next_done(), through a small entry of its own).
 * Every function here runs with mu held and calls nothing else of libpp,
 * so that submit.c, sched.c and callback.c can all use it. */
#include "internal.h"

/* ---- pending jobs, for cancels ---- */

static pp_job **live_head(pp_server *s, pp_job *j)
{
    return j->group ? &j->group->live : &s->live;
}

void pp_job_link_live_locked(pp_server *s, pp_job *j)
{
    pp_job **h = live_head(s, j);
    j->gprev = NULL;
    j->gnext = *h;
    if (*h)
        (*h)->gprev = j;
    *h = j;
}

void pp_job_unlink_live_locked(pp_server *s, pp_job *j)
{
    if (j->gprev)
        j->gprev->gnext = j->gnext;
    else
        *live_head(s, j) = j->gnext;
    if (j->gnext)
        j->gnext->gprev = j->gprev;
    j->gprev = j->gnext = NULL;
}

/* ---- finished jobs, for pp_next_done() ----
 * A finished list holds small entries (done_ref), not the jobs: each
 * points to its job until pp_next_done() takes it or pp_job_free() clears
 * it, so a job is freed by the thread that frees its handle, at once,
 * without mu (the scheduler holds mu while it publishes).  Cleared entries
 * are dropped in a sweep of every list once they are many (amortised: each
 * sweep drops at least as many as it keeps; not at every retire, which
 * would read, per job, a line another thread just wrote), and at a list's
 * head by pp_next_done().  j->dref and the FREED bit are each written before the other is
 * read (sequentially consistent): retiring sees FREED and clears the entry
 * itself, or pp_job_free() sees the entry and clears it. */

#define SPARE_MAX 4096 /* entries kept for reuse: a malloc per job saved */

static void spare(pp_server *s, done_ref *r)
{
    if (s->nspare >= SPARE_MAX) {
        free(r);
        return;
    }
    r->next = s->spare_refs;
    s->spare_refs = r;
    s->nspare++;
}

void pp_spare_refs_free(pp_server *s)
{
    done_ref *r;
    while ((r = s->spare_refs)) {
        s->spare_refs = r->next;
        free(r);
    }
    s->nspare = 0;
}

/* Drops the cleared entries at the head of the list. */
static void prune_head(pp_server *s, done_list *l)
{
    done_ref *r;
    while ((r = l->head) && !atomic_load(&r->job)) {
        l->head = r->next;
        if (!l->head)
            l->tail = NULL;
        s->refs_n--;
        atomic_fetch_sub(&s->refs_dead, 1);
        spare(s, r);
    }
}

static void sweep_list(pp_server *s, done_list *l)
{
    done_ref *keep = NULL, *tail = NULL;
    for (done_ref *r = l->head, *next; r; r = next) {
        next = r->next;
        if (!atomic_load(&r->job)) {
            s->refs_n--;
            atomic_fetch_sub(&s->refs_dead, 1);
            spare(s, r);
            continue;
        }
        r->next = NULL;
        if (tail)
            tail->next = r;
        else
            keep = r;
        tail = r;
    }
    l->head = keep;
    l->tail = tail;
}

/* Every list, when cleared entries are many. */
static void sweep_all(pp_server *s)
{
    size_t dead = atomic_load(&s->refs_dead);
    if (dead < 1024 || dead < s->refs_n / 2)
        return;
    sweep_list(s, &s->finished);
    for (pp_group *g = s->groups; g; g = g->next)
        sweep_list(s, &g->finished);
}

static int freed(pp_job *j)
{
    return atomic_load(&j->refs) & PP_JOB_FREED;
}

void pp_job_retire_locked(pp_server *s, pp_job *j)
{
    if (j->group)
        j->group->outstanding--;
    s->outstanding--;
    done_list *l = j->group ? &j->group->finished : &s->finished;
    done_ref *r = NULL;
    if (!freed(j)) {
        if ((r = s->spare_refs)) {
            s->spare_refs = r->next;
            s->nspare--;
        } else {
            r = malloc(sizeof *r);
        }
    }
    if (r) { /* without memory the job is only not returned by pp_next_done() */
        *r = (done_ref){.next = NULL, .done_seq = ++s->done_seq};
        atomic_init(&r->job, j);
        atomic_store(&j->dref, r);
        if (l->tail)
            l->tail->next = r;
        else
            l->head = r;
        l->tail = r;
        s->refs_n++;
        if (freed(j) && atomic_exchange(&r->job, NULL) == j) /* freed meanwhile */
            atomic_fetch_add(&s->refs_dead, 1);
        sweep_all(s);
    }
    pp_job_unref(j); /* the library's reference */
}

void pp_job_unlist(pp_job *j)
{
    done_ref *r = atomic_load(&j->dref);
    if (r && atomic_exchange(&r->job, NULL) == j)
        atomic_fetch_add(&j->s->refs_dead, 1);
}

void pp_finished_free(pp_server *s, done_list *l)
{
    done_ref *r;
    while ((r = l->head)) {
        l->head = r->next;
        pp_job *j = atomic_exchange(&r->job, NULL);
        if (j) /* its handle may outlive the server */
            atomic_store(&j->dref, NULL);
        free(r);
    }
    l->tail = NULL;
    (void)s;
}

/* The list whose head finished first (of g, or of any group), or NULL. */
static done_list *oldest(pp_server *s, pp_group *g, int all)
{
    if (!all) {
        if (g)
            prune_head(s, &g->finished);
        return g && g->finished.head ? &g->finished : NULL;
    }
    prune_head(s, &s->finished);
    done_list *best = s->finished.head ? &s->finished : NULL;
    for (pp_group *x = s->groups; x; x = x->next) {
        prune_head(s, &x->finished);
        if (x->finished.head &&
            (!best || (int32_t)(x->finished.head->done_seq - best->head->done_seq) < 0))
            best = &x->finished;
    }
    return best;
}

pp_job *pp_finished_take_locked(pp_server *s, pp_group *g, int all)
{
    done_list *l;
    while ((l = oldest(s, g, all))) {
        done_ref *r = l->head;
        l->head = r->next;
        if (!l->head)
            l->tail = NULL;
        s->refs_n--;
        pp_job *j = atomic_exchange(&r->job, NULL);
        spare(s, r);
        if (j) {
            atomic_store(&j->dref, NULL);
            return j;
        }
        atomic_fetch_sub(&s->refs_dead, 1); /* cleared while we looked */
    }
    return NULL;
}
