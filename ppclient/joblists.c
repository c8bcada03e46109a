/* SPDX-License-Identifier: MIT */
/* joblists.c -- the lists a job joins besides the scheduler's: its group's
 * pending jobs (for cancels, through gprev/gnext) and its group's finished
 * jobs (for pp_next_done(), an entry in a chunk).
 * Every function here but pp_job_free() runs with mu held and calls
 * nothing else of libpp, so that submit.c, sched.c and callback.c can all
 * use it. */
#include "internal.h"

/* The pending jobs, for cancels: internal.h (inline: a link per submit,
 * an unlink per finish). */

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

/* Added to a chunk's `cleared` by pp_finished_free() (teardown), less the
 * entries still to clear: the count reaches it exactly when the last one
 * is cleared, and whoever brings it there frees the chunk. */
#define CHUNK_ORPHAN (1u << 30)

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

/* A new chunk at the tail of a list whose tail is full (or that has
 * none), or NULL without memory. */
static done_chunk *grow(pp_server *s, done_list *l)
{
    done_chunk *c = l->tail;
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
    l->tail = n;
    l->chunks++;
    return n;
}

static void clear(done_chunk *c, done_entry *e)
{
    atomic_store_explicit(&e->job, NULL, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->cleared, 1, memory_order_release);
}

/* A free that came first left the entry to us (retire, below): cleared,
 * and the job goes if that was the last reference.  Apart, so that the
 * usual retire saves fewer registers. */
__attribute__((noinline)) static void clear_late(pp_job *j, done_chunk *c, done_entry *e,
                                                 int old)
{
    clear(c, e);
    if (PP_JOB_COUNT(old) == 1)
        pp_job_destroy(j);
}

/* Retiring, the rare cases: the tail chunk is full (or there is none),
 * or the job was freed already, which gets no entry (a free racing with
 * this look is settled in retire).  The chunk with room, or NULL when the
 * job got no entry (without memory, it is only not returned by
 * pp_next_done()): its library reference is dropped then. */
__attribute__((noinline)) static done_chunk *retire_slow(pp_server *s, done_list *l, pp_job *j)
{
    done_chunk *c = NULL;
    if (!(atomic_load_explicit(&j->refs, memory_order_relaxed) & PP_JOB_FREED)) {
        c = l->tail;
        if (!c || c->used == PP_DONE_CHUNK)
            c = grow(s, l);
    }
    if (!c)
        pp_job_unref(j); /* the library's reference */
    return c;
}

void pp_job_retire_locked(pp_server *s, pp_job *j)
{
    pp_group *g = j->group;
    done_list *l = &s->finished;
    if (g) {
        g->outstanding--;
        l = &g->finished;
    }
    s->outstanding--;
    done_chunk *c = l->tail;
    if ((!c || c->used == PP_DONE_CHUNK ||
         (atomic_load_explicit(&j->refs, memory_order_relaxed) & PP_JOB_FREED)) &&
        !(c = retire_slow(s, l, j)))
        return;
    uint32_t i = c->used++;
    done_entry *e = &c->e[i];
    e->seq = ++s->done_seq;
    atomic_store_explicit(&e->job, j, memory_order_relaxed);
    j->di = (uint16_t)i;
    atomic_store_explicit(&j->dc, c, memory_order_relaxed);
    /* Publishes the entry and drops the library's reference in one step. */
    int old = atomic_fetch_add_explicit(&j->refs, PP_JOB_INDEXED - 1, memory_order_acq_rel);
    if (old & PP_JOB_FREED)
        clear_late(j, c, e, old);
}

/* pp_job_free(), after it set PP_JOB_FREED (`refs`: the value before):
 * clears the job's finished-list entry if that is its part (mu not
 * needed). */
static void unlist(pp_job *j, int refs)
{
    if (!(refs & PP_JOB_INDEXED))
        return; /* no entry yet: retiring sees PP_JOB_FREED and clears it */
    done_chunk *c = atomic_load_explicit(&j->dc, memory_order_relaxed);
    /* NULL once taken by pp_next_done() or the server freed; the exchange
     * settles a race with those, which only a caller freeing a handle
     * pp_next_done() is returning in another thread can start. */
    done_entry *e = c ? &c->e[j->di] : NULL;
    if (e && atomic_exchange_explicit(&e->job, NULL, memory_order_relaxed) == j &&
        atomic_fetch_add_explicit(&c->cleared, 1, memory_order_acq_rel) + 1 == CHUNK_ORPHAN)
        free(c); /* the server is gone and this was the chunk's last entry */
}

/* A second pp_job_free() of a handle: the library still holds the job
 * (else this is a use after free nothing can catch), so it is refused,
 * loudly, instead of freed under the library's feet. */
__attribute__((noinline, cold)) static void free_twice(pp_job *j)
{
    pp_set_error("pp_job_free: the job was already freed (free each handle once)");
    pp_log(&j->s->log, PP_LOG_ERROR, "pp_job_free: the job was already freed; the "
                                     "second call is ignored (free each handle once)");
}

/* Here, beside the entry it clears: the clearing is inlined into it. */
PP_API void pp_job_free(pp_job *j)
{
    if (!j)
        return;
    int refs = atomic_fetch_or_explicit(&j->refs, PP_JOB_FREED, memory_order_acq_rel);
    if (refs & PP_JOB_FREED) {
        free_twice(j);
        return;
    }
    unlist(j, refs);
    pp_job_unref(j);
}

/* The jobs still listed keep their entries: their handles outlive the
 * server, and pp_job_free() may be clearing one on another thread right
 * now (after pp_server_free() from a callback, the caller cannot know when
 * this runs), so neither the job nor its chunk may be touched here once
 * the entry might be cleared.  A chunk goes with its last entry: here when
 * none is left, else in the pp_job_free() that clears that one. */
void pp_finished_free(pp_server *s, done_list *l)
{
    (void)s;
    for (done_chunk *c = l->head, *next; c; c = next) {
        next = c->next;
        uint32_t left = c->used - c->taken; /* cleared ones included */
        if (atomic_fetch_add_explicit(&c->cleared, CHUNK_ORPHAN - left, memory_order_acq_rel) ==
            left)
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
