/* SPDX-License-Identifier: MIT */
/* pp_copy.c -- copies of large buffers, split across threads (pp_copy.h). */
#include "pp_copy.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>

typedef struct copy_part {
    unsigned char *dst;
    const unsigned char *src;
    size_t n;
    pthread_t thread;
    int started;
} copy_part;

static void *copy_main(void *arg)
{
    copy_part *p = arg;
    memcpy(p->dst, p->src, p->n);
    return NULL;
}

void pp_copy(void *dst, const void *src, size_t n, int threads)
{
    size_t k = threads < 1 ? 1 : (size_t)threads;
    k = k > PP_COPY_THREADS_MAX ? PP_COPY_THREADS_MAX : k;
    k = k > n / PP_COPY_PART_MIN ? n / PP_COPY_PART_MIN : k;
    if (k <= 1) {
        memcpy(dst, src, n);
        return;
    }
    /* Parts of whole pages: into a page-aligned destination (a shared
     * buffer's is) no two threads write one page. */
    size_t each = ((n + k - 1) / k + 4095) & ~(size_t)4095;
    copy_part part[PP_COPY_THREADS_MAX] = {{0}};
    pthread_attr_t attr;
    int attr_ok = pthread_attr_init(&attr) == 0;
    if (attr_ok)
        pthread_attr_setstacksize(&attr, 256u << 10); /* a memcpy needs little */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the program's signals stay its own */
    for (size_t i = 0, off = 0; i < k && off < n; i++, off += each) {
        copy_part *p = &part[i];
        p->dst = (unsigned char *)dst + off;
        p->src = (const unsigned char *)src + off;
        p->n = n - off < each ? n - off : each;
        if (i > 0)
            p->started = pthread_create(&p->thread, attr_ok ? &attr : NULL, copy_main, p) == 0;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (attr_ok)
        pthread_attr_destroy(&attr);
    memcpy(part[0].dst, part[0].src, part[0].n);
    for (size_t i = 1; i < k; i++) {
        if (part[i].started)
            pthread_join(part[i].thread, NULL);
        else if (part[i].n)
            memcpy(part[i].dst, part[i].src, part[i].n);
    }
}
