/* SPDX-License-Identifier: MIT */
/* joblists.c -- the lists a job joins besides the scheduler's: its group's
 * pending jobs (for cancels), the cancel requests, and its group's finished
 * jobs (for pp_next_done()).  Every function here runs with mu held and
 * calls nothing else of libpp, so that submit.c, sched.c and callback.c
 * can all use it. */
#include "internal.h"

/* ---- pending jobs, for cancels ---- */

static pp_job **live_head(pp_server *s, pp_job *j)
{
    return j->group ? &j->group->live : &s->live;
}

void pp_job_link_live_locked(pp_server *s, pp_job *j)
{
    pp_job **h = live_head(s, j);
    j->lprev = NULL;
    j->lnext = *h;
    if (*h)
        (*h)->lprev = j;
    *h = j;
}

void pp_job_unlink_live_locked(pp_server *s, pp_job *j)
{
    if (j->lprev)
        j->lprev->lnext = j->lnext;
    else
        *live_head(s, j) = j->lnext;
    if (j->lnext)
        j->lnext->lprev = j->lprev;
    j->lprev = j->lnext = NULL;
}

/* ---- finished jobs, for pp_next_done() ---- */

static int handle_freed(pp_job *j)
{
    return atomic_load_explicit(&j->refs, memory_order_acquire) & PP_JOB_FREED;
}

/* Drops the jobs the caller freed from the head of the list. */
static void done_prune_head(done_list *l)
{
    pp_job *j;
    while ((j = l->head) && handle_freed(j)) {
        l->head = j->fnext;
        if (!l->head)
            l->tail = NULL;
        l->n--;
        pp_job_unref(j);
    }
}

/* Drops every job the caller freed: when the list has doubled since the
 * last sweep, so that a program that never calls pp_next_done() keeps only
 * the handles it holds (amortised O(1) per job). */
static void done_compact(done_list *l)
{
    pp_job *keep = NULL, *tail = NULL, *j = l->head;
    size_t n = 0;
    while (j) {
        pp_job *next = j->fnext;
        if (handle_freed(j)) {
            pp_job_unref(j);
        } else {
            j->fnext = NULL;
            if (tail)
                tail->fnext = j;
            else
                keep = j;
            tail = j;
            n++;
        }
        j = next;
    }
    *l = (done_list){.head = keep, .tail = tail, .n = n, .compact_at = 2 * n + 1024};
}

void pp_job_retire_locked(pp_server *s, pp_job *j)
{
    if (j->group)
        j->group->outstanding--;
    s->outstanding--;
    done_list *l = j->group ? &j->group->finished : &s->finished;
    done_prune_head(l);
    if (handle_freed(j)) {
        pp_job_unref(j);
        return;
    }
    /* The library's reference is now the list's. */
    j->done_seq = ++s->done_seq;
    j->fnext = NULL;
    if (l->tail)
        l->tail->fnext = j;
    else
        l->head = j;
    l->tail = j;
    l->n++;
    if (l->n >= (l->compact_at ? l->compact_at : 1024))
        done_compact(l);
}

void pp_finished_free(done_list *l)
{
    pp_job *j;
    while ((j = l->head)) {
        l->head = j->fnext;
        pp_job_unref(j);
    }
    *l = (done_list){0};
}

/* Takes the oldest finished job from the list (NULL if none). */
static pp_job *done_take(done_list *l)
{
    done_prune_head(l);
    pp_job *j = l->head;
    if (j) {
        l->head = j->fnext;
        if (!l->head)
            l->tail = NULL;
        l->n--;
    }
    return j;
}

pp_job *pp_finished_take_locked(pp_server *s, pp_group *g, int all)
{
    if (!all)
        return g ? done_take(&g->finished) : NULL;
    done_list *best = NULL;
    done_prune_head(&s->finished);
    if (s->finished.head)
        best = &s->finished;
    for (pp_group *x = s->groups; x; x = x->next) {
        done_prune_head(&x->finished);
        if (x->finished.head && (!best || x->finished.head->done_seq < best->head->done_seq))
            best = &x->finished;
    }
    return best ? done_take(best) : NULL;
}

pp_job *pp_cancels_take_locked(pp_server *s)
{
    pp_job *c = s->cancels;
    s->cancels = NULL;
    return c;
}

