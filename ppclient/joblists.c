/* SPDX-License-Identifier: MIT */
/* joblists.c -- the lists a job joins besides the scheduler's: its group's
 * pending jobs (for cancels, through gprev/gnext) and its group's finished
 * jobs (for pp_next_done(), an entry in a chunk).
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
 * A finished list is a chain of chunks of entries, each pointing to its job
 * until pp_next_done() takes it or the job is freed, so that a job is freed
 * at once by the thread that frees it, and an entry costs 16 bytes in a
 * chunk, not an allocation.  A chunk goes once all its entries are taken or
 * cleared.  Which side clears the entry of a job freed is decided by the
 * order of two steps on j->refs: retiring sets PP_JOB_INDEXED as it drops
 * the library's reference, pp_job_free() sets PP_JOB_FREED.  Whichever
 * comes second sees the other's bit and clears the entry; the first never
 * touches it, so a chunk never goes while one thread still means to. */

static int chunk_spent(done_chunk *c)
{
    return c->used == PP_DONE_CHUNK &&
           c->taken + atomic_load_explicit(&c->cleared, memory_order_acquire) == PP_DONE_CHUNK;
}

static void chunk_release(pp_server *s, done_chunk *c)
{
    if (!s->spare_chunk) {
        s->spare_chunk = c;
        return;
    }
    free(c);
}

/* Frees the spent chunks of a list (the tail one is still filling). */
static void drop_spent(pp_server *s, done_list *l)
{
    done_chunk *prev = NULL;
    l->chunks = 0;
    for (done_chunk *c = l->head, *next; c; c = next) {
        next = c->next;
        if (c != l->tail && chunk_spent(c)) {
            if (prev)
                prev->next = next;
            else
                l->head = next;
            chunk_release(s, c);
        } else {
            prev = c;
            l->chunks++;
        }
    }
    /* The next look once the chain doubled: each chunk costs O(1) looks,
     * and a chain is at most twice its unspent chunks. */
    l->sweep_at = 2 * l->chunks + 2;
}

/* A new entry at the tail, or NULL without memory. */
static done_entry *append(pp_server *s, done_list *l, uint32_t *index, done_chunk **chunk)
{
    done_chunk *c = l->tail;
    if (!c || c->used == PP_DONE_CHUNK) {
        if (c && l->chunks >= l->sweep_at) /* those spent since go */
            drop_spent(s, l);
        done_chunk *n = s->spare_chunk ? s->spare_chunk : aligned_alloc(64, sizeof *n);
        if (!n)
            return NULL;
        s->spare_chunk = NULL;
        n->next = NULL;
        n->used = n->rd = n->taken = 0;
        atomic_init(&n->cleared, 0);
        if (l->tail)
            l->tail->next = n;
        else
            l->head = n;
        l->tail = c = n;
        l->chunks++;
    }
    *index = c->used++;
    *chunk = c;
    return &c->e[*index];
}

static void clear(done_chunk *c, done_entry *e)
{
    atomic_store_explicit(&e->job, NULL, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->cleared, 1, memory_order_release);
}

void pp_job_retire_locked(pp_server *s, pp_job *j)
{
    if (j->group)
        j->group->outstanding--;
    s->outstanding--;
    done_list *l = j->group ? &j->group->finished : &s->finished;
    uint32_t i;
    done_chunk *c;
    /* A job freed already gets no entry (a free racing with this look is
     * settled below); without memory, the job is only not returned by
     * pp_next_done(). */
    int freed = atomic_load_explicit(&j->refs, memory_order_relaxed) & PP_JOB_FREED;
    done_entry *e = freed ? NULL : append(s, l, &i, &c);
    if (!e) {
        pp_job_unref(j); /* the library's reference */
        return;
    }
    e->seq = ++s->done_seq;
    atomic_store_explicit(&e->job, j, memory_order_relaxed);
    j->di = (uint16_t)i;
    atomic_store_explicit(&j->dc, c, memory_order_relaxed);
    /* Publishes the entry and drops the library's reference in one step. */
    int old = atomic_fetch_add_explicit(&j->refs, PP_JOB_INDEXED - 1, memory_order_acq_rel);
    if (old & PP_JOB_FREED) { /* freed first: that free left the entry to us */
        clear(c, e);
        if (PP_JOB_COUNT(old) == 1)
            pp_job_destroy(j);
    }
}

void pp_job_unlist(pp_job *j, int refs)
{
    if (!(refs & PP_JOB_INDEXED))
        return; /* no entry yet: retiring sees PP_JOB_FREED and clears it */
    done_chunk *c = atomic_load_explicit(&j->dc, memory_order_relaxed);
    /* NULL once taken by pp_next_done() or the server freed; the exchange
     * settles a race with those, which only a caller freeing a handle
     * pp_next_done() is returning in another thread can start. */
    done_entry *e = c ? &c->e[j->di] : NULL;
    if (e && atomic_exchange_explicit(&e->job, NULL, memory_order_relaxed) == j)
        atomic_fetch_add_explicit(&c->cleared, 1, memory_order_release);
}

void pp_finished_free(pp_server *s, done_list *l)
{
    (void)s;
    for (done_chunk *c = l->head, *next; c; c = next) {
        next = c->next;
        for (uint32_t i = 0; i < c->used; i++) {
            pp_job *j = atomic_exchange(&c->e[i].job, NULL);
            if (j) /* its handle may outlive the server */
                atomic_store(&j->dc, NULL);
        }
        free(c);
    }
    l->head = l->tail = NULL;
    l->chunks = l->sweep_at = 0;
}

void pp_spare_chunk_free(pp_server *s)
{
    free(s->spare_chunk);
    s->spare_chunk = NULL;
}

/* The list's first entry not yet taken or cleared, or NULL. */
static done_entry *first(done_list *l)
{
    for (done_chunk *c = l->head; c; c = c->next)
        for (; c->rd < c->used; c->rd++)
            if (atomic_load_explicit(&c->e[c->rd].job, memory_order_relaxed))
                return &c->e[c->rd];
    return NULL;
}

/* The list whose first entry finished first (of g, or of any group). */
static done_list *oldest(pp_server *s, pp_group *g, int all, done_entry **out)
{
    if (!all) {
        *out = g ? first(&g->finished) : NULL;
        return *out ? &g->finished : NULL;
    }
    done_list *best = NULL;
    *out = NULL;
    done_entry *e = first(&s->finished);
    if (e) {
        best = &s->finished;
        *out = e;
    }
    for (pp_group *x = s->groups; x; x = x->next) {
        e = first(&x->finished);
        if (e && (!*out || (int32_t)(e->seq - (*out)->seq) < 0)) {
            best = &x->finished;
            *out = e;
        }
    }
    return best;
}

pp_job *pp_finished_take_locked(pp_server *s, pp_group *g, int all)
{
    done_entry *e;
    done_list *l;
    while ((l = oldest(s, g, all, &e))) {
        pp_job *j = atomic_exchange_explicit(&e->job, NULL, memory_order_acquire);
        if (!j)
            continue; /* cleared while we looked */
        done_chunk *c = atomic_load_explicit(&j->dc, memory_order_relaxed);
        atomic_store_explicit(&j->dc, NULL, memory_order_relaxed);
        c->taken++;
        /* Taken in order, the head is what empties: it goes at once, the
         * rest when the chain is swept. */
        while (l->head != l->tail && chunk_spent(l->head)) {
            done_chunk *h = l->head;
            l->head = h->next;
            l->chunks--;
            chunk_release(s, h);
        }
        return j;
    }
    return NULL;
}
