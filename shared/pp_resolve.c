/* SPDX-License-Identifier: MIT */
/* pp_resolve.c -- name lookups on a detached thread (see the header). */
#include "pp_resolve.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "pp_common.h"
#include "pp_net.h"

struct pp_resolve {
    atomic_int refs;
    atomic_int done;              /* res and err are final (release) */
    int efd;                      /* written once by the thread when done */
    int port;
    struct addrinfo *res;         /* the addresses, or NULL with err; owned until taken */
    char err[PP_ERR_LEN];
    char host[256];
};

static void unref(pp_resolve *r)
{
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (r->res)
        freeaddrinfo(r->res);
    close(r->efd);
    free(r);
}

static void *lookup_main(void *arg)
{
    pp_resolve *r = arg;
    pp_net_resolve(r->host, r->port, 0, &r->res, r->err);
    atomic_store_explicit(&r->done, 1, memory_order_release);
    uint64_t one = 1;
    while (write(r->efd, &one, sizeof one) < 0 && errno == EINTR) {
    }
    unref(r);
    return NULL;
}

pp_resolve *pp_resolve_start(const char *host, int port, char *err)
{
    pp_resolve *r = calloc(1, sizeof *r);
    if (!r) {
        pp_seterr(err, "cannot resolve %s: out of memory", host);
        return NULL;
    }
    if (snprintf(r->host, sizeof r->host, "%s", host) >= (int)sizeof r->host) {
        pp_seterr(err, "cannot resolve %.64s...: the name is too long", host);
        free(r);
        return NULL;
    }
    r->port = port;
    atomic_init(&r->refs, 2);
    atomic_init(&r->done, 0);
    r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->efd < 0) {
        pp_seterr(err, "cannot resolve %s: %s", host, strerror(errno));
        free(r);
        return NULL;
    }
    /* Detached: nobody waits for a lookup.  All signals blocked: they stay
     * with the application's threads. */
    pthread_attr_t attr;
    pthread_t th;
    sigset_t all, old;
    sigfillset(&all);
    int e = pthread_attr_init(&attr);
    if (e == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        e = pthread_create(&th, &attr, lookup_main, r);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&attr);
    }
    if (e != 0) {
        pp_seterr(err, "cannot resolve %s: cannot start a thread: %s", host, strerror(e));
        close(r->efd);
        free(r);
        return NULL;
    }
    return r;
}

int pp_resolve_fd(const pp_resolve *r)
{
    return r->efd;
}

int pp_resolve_take(pp_resolve *r, struct addrinfo **res, char *err)
{
    /* done is set before the eventfd is written: an event may come first
     * for a lookup dropped earlier in the same turn, never the reverse. */
    if (!atomic_load_explicit(&r->done, memory_order_acquire))
        return 0;
    *res = r->res;
    r->res = NULL; /* the caller's now: the thread is past touching it */
    if (!*res)
        pp_seterr(err, "%s", r->err);
    return 1;
}

void pp_resolve_drop(pp_resolve *r)
{
    if (r)
        unref(r);
}
