/* SPDX-License-Identifier: MIT */
/* shm.c -- pp_shm_alloc(), pp_submit_shm(), pp_shm_free(): shared buffers
 * a program fills itself and hands to jobs without a copy.  The server
 * keeps the buffers it gave out sorted by address, so that a job's argument
 * is found in its buffer by a binary search. */
#include <string.h>

#include "internal.h"

/* The index of the first buffer whose base is above p (mu held). */
static size_t upper_locked(const pp_server *s, uintptr_t p)
{
    size_t lo = 0, hi = s->nushm;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((uintptr_t)s->ushm[mid]->base <= p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

PP_API void *pp_shm_alloc(pp_server *s, size_t len)
{
    if (!s) {
        pp_set_error("pp_shm_alloc: the server is NULL");
        return NULL;
    }
    if (pp_forked(s, "pp_shm_alloc"))
        return NULL;
    if (len == 0 || len > PP_MAX_FRAME - 4) {
        pp_set_error("pp_shm_alloc: a buffer must hold 1 to %u bytes, not %zu",
                     PP_MAX_FRAME - 4, len);
        return NULL;
    }
    char err[PP_ERR_LEN];
    pp_shm *b = pp_shm_get(s->shm, len, 0, err);
    if (!b) {
        pp_set_error("pp_shm_alloc: %s", err);
        return NULL;
    }
    pthread_mutex_lock(&s->mu);
    if (s->nushm == s->capushm) {
        size_t cap = s->capushm ? 2 * s->capushm : 16;
        pp_shm **n = realloc(s->ushm, cap * sizeof *n);
        if (!n) {
            pthread_mutex_unlock(&s->mu);
            pp_shm_unref(b);
            pp_set_error("pp_shm_alloc: out of memory");
            return NULL;
        }
        s->ushm = n;
        s->capushm = cap;
    }
    size_t i = upper_locked(s, (uintptr_t)b->base);
    memmove(s->ushm + i + 1, s->ushm + i, (s->nushm - i) * sizeof *s->ushm);
    s->ushm[i] = b;
    s->nushm++;
    pthread_mutex_unlock(&s->mu);
    return b->base;
}

PP_API int pp_shm_free(pp_server *s, void *buf)
{
    if (!buf)
        return 0;
    if (!s) {
        pp_set_error("pp_shm_free: the server is NULL");
        return -1;
    }
    if (pp_forked(s, "pp_shm_free"))
        return -1;
    pthread_mutex_lock(&s->mu);
    size_t i = upper_locked(s, (uintptr_t)buf);
    pp_shm *b = i > 0 && s->ushm[i - 1]->base == buf ? s->ushm[i - 1] : NULL;
    if (b) {
        memmove(s->ushm + i - 1, s->ushm + i, (s->nushm - i) * sizeof *s->ushm);
        s->nushm--;
    }
    pthread_mutex_unlock(&s->mu);
    if (!b) {
        pp_set_error("pp_shm_free: %p is not a buffer of pp_shm_alloc() (or was freed)", buf);
        return -1;
    }
    pp_shm_unref(b); /* jobs using it hold their own references */
    return 0;
}

PP_API pp_job *pp_submit_shm(pp_server *s, pp_task task, const void *arg, size_t len,
                             const pp_submit_opts *opts)
{
    if (!s || !task || !arg) {
        pp_set_error("pp_submit_shm: %s is NULL",
                     !s ? "the server" : !task ? "the task" : "the argument");
        return NULL;
    }
    if (pp_forked(s, "pp_submit_shm"))
        return NULL;
    pthread_mutex_lock(&s->mu);
    size_t i = upper_locked(s, (uintptr_t)arg);
    pp_shm *b = i > 0 ? s->ushm[i - 1] : NULL;
    /* Inside the len bytes it was allocated with. */
    uintptr_t a = (uintptr_t)arg, lo = b ? (uintptr_t)b->base : 0;
    if (b && (len > b->len || a - lo > b->len - len))
        b = NULL;
    if (b)
        pp_shm_ref(b);
    pthread_mutex_unlock(&s->mu);
    if (!b) {
        pp_set_error("pp_submit_shm: the argument (%zu bytes at %p) does not lie inside one "
                     "buffer of pp_shm_alloc()", len, arg);
        return NULL;
    }
    pp_task_entry *t = pp_tasks_get(s, task, "pp_submit_shm");
    pp_job *j = t ? pp_submit_job(s, t, arg, len, b, opts, 0, "pp_submit_shm") : NULL;
    if (!j)
        pp_shm_unref(b);
    return j;
}

void pp_shm_forget_all(pp_server *s)
{
    for (size_t i = 0; i < s->nushm; i++)
        pp_shm_unref(s->ushm[i]);
    free(s->ushm);
    s->ushm = NULL;
    s->nushm = s->capushm = 0;
    pp_shm_cache_free(s->shm);
    s->shm = NULL;
}
