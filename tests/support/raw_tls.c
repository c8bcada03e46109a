/* SPDX-License-Identifier: MIT */
/* raw_tls.c -- pp's TLS under a test's raw sockets (see raw_tls.h). */
#include "raw_tls.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pp_common.h"
#include "pp_transport.h"
#include "test_util.h"

#define RT_MAX_FD 4096           /* the table: one slot per descriptor number */
#define RT_CACHE 16              /* secrets whose keys are kept */

/* A secret's keys and TLS configurations. */
typedef struct rt_entry {
    char *secret;                /* NULL: a free slot */
    pp_auth_key key;
    pp_tls *tls[2];              /* [0] client, [1] server; made when first used */
    int users;                   /* live sessions using tls[] */
} rt_entry;

/* One socket's TLS session. */
typedef struct rt_sess {
    pp_transport tr;
    rt_entry *e;
    pp_tr_status want;           /* what the last write that could not go on waits for */
    int stalled;                 /* a bounded write gave up halfway through a record */
    char err[PP_ERR_LEN];
} rt_sess;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static rt_entry cache[RT_CACHE];
static rt_sess *table[RT_MAX_FD];

/* ---- keys ---- */

static void entry_clear(rt_entry *e)
{
    for (int i = 0; i < 2; i++)
        pp_tls_free(e->tls[i]);
    free(e->secret);
    pp_auth_wipe(e, sizeof *e);
}

/* The cache entry of secret, derived if new.  Called with mu held (a new
 * secret's ~60 ms then hold up the other threads' look-ups: rare).  NULL
 * with the reason in why (PP_ERR_LEN bytes). */
static rt_entry *entry_of(const char *secret, char *why)
{
    size_t len = 0;
    if (pp_auth_secret(secret, &len, why) != 0)
        return NULL;
    for (int i = 0; i < RT_CACHE; i++) {
        rt_entry *e = &cache[i];
        if (e->secret && strlen(e->secret) == len && memcmp(e->secret, secret, len) == 0)
            return e;
    }
    /* A free slot, else one no session uses. */
    rt_entry *slot = NULL;
    for (int i = 0; i < RT_CACHE && !slot; i++)
        if (!cache[i].secret)
            slot = &cache[i];
    for (int i = 0; i < RT_CACHE && !slot; i++)
        if (!cache[i].users)
            slot = &cache[i];
    if (!slot) {
        pp_seterr(why, "raw_tls: more than %d secrets in use at once", RT_CACHE);
        return NULL;
    }
    entry_clear(slot);
    if (pp_auth_derive(secret, len, &slot->key) != 0 || !(slot->secret = strndup(secret, len))) {
        entry_clear(slot);
        pp_seterr(why, "raw_tls: cannot derive the keys");
        return NULL;
    }
    return slot;
}

int rt_key(const char *secret, pp_auth_key *out)
{
    char why[PP_ERR_LEN];
    pthread_mutex_lock(&mu);
    rt_entry *e = entry_of(secret, why);
    if (e)
        *out = e->key;
    pthread_mutex_unlock(&mu);
    if (!e)
        fprintf(stderr, "%s\n", why);
    return e ? 0 : -1;
}

/* ---- sessions ---- */

static rt_sess *sess_of(int fd)
{
    if (fd < 0 || fd >= RT_MAX_FD)
        return NULL;
    pthread_mutex_lock(&mu);
    rt_sess *s = table[fd];
    pthread_mutex_unlock(&mu);
    return s;
}

static void sess_free(rt_sess *s)
{
    if (!s)
        return;
    s->tr.ops->free(s->tr.ctx);
    pthread_mutex_lock(&mu);
    s->e->users--;
    pthread_mutex_unlock(&mu);
    free(s);
}

/* A new session of `secret`'s key in the role given, not yet registered:
 * NULL with the reason in why. */
static rt_sess *sess_new(const char *secret, int server, char *why)
{
    rt_sess *s = calloc(1, sizeof *s);
    if (!s) {
        pp_seterr(why, "out of memory");
        return NULL;
    }
    pthread_mutex_lock(&mu);
    rt_entry *e = entry_of(secret, why);
    if (e && !e->tls[server]) {
        pp_tls_opts o = {.server = server, .psk = e->key.psk};
        e->tls[server] = pp_tls_new(&o, why);
    }
    int ok = e && e->tls[server] && pp_tls_transport(e->tls[server], &s->tr, why) == 0;
    if (ok)
        e->users++;
    pthread_mutex_unlock(&mu);
    if (!ok) {
        free(s);
        return NULL;
    }
    s->e = e;
    s->want = PP_TR_WANT_WRITE;
    return s;
}

/* Waits until fd is ready for `events` or `deadline` passes: 1 ready (or
 * in error: the next call says which), 0 timeout. */
static int wait_fd(int fd, short events, double deadline)
{
    for (;;) {
        double left = deadline - now_s();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, (int)(left * 1000) + 1);
        if (r > 0)
            return 1;
        if (r < 0 && errno != EINTR)
            return 1; /* let the I/O call report it */
    }
}

static short events_for(pp_tr_status want)
{
    return want == PP_TR_WANT_READ ? POLLIN : POLLOUT;
}

static int start(int fd, const char *secret, int server, double limit, char *why)
{
    if (fd < 0 || fd >= RT_MAX_FD) {
        pp_seterr(why, "raw_tls: descriptor %d out of the table", fd);
        return -1;
    }
    rt_sess *s = sess_new(secret, server, why);
    if (!s)
        return -1;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
        pp_seterr(why, "fcntl: %s", strerror(errno));
        sess_free(s);
        return -1;
    }
    double deadline = now_s() + limit;
    pp_tr_status st;
    while ((st = s->tr.ops->handshake(s->tr.ctx, fd, fd)) == PP_TR_WANT_READ ||
           st == PP_TR_WANT_WRITE) {
        if (!wait_fd(fd, events_for(st), deadline)) {
            pp_seterr(why, "TLS handshake: no answer within %g s", limit);
            sess_free(s);
            return -1;
        }
    }
    if (st != PP_TR_DONE) {
        const char *e = s->tr.ops->error(s->tr.ctx);
        pp_seterr(why, "%s", e && *e ? e : "TLS handshake failed");
        int wrong = pp_tls_wrong_key(s->tr.ctx);
        sess_free(s);
        return wrong ? RT_WRONG_KEY : -1;
    }
    pthread_mutex_lock(&mu);
    rt_sess *old = table[fd];
    table[fd] = s;
    pthread_mutex_unlock(&mu);
    sess_free(old); /* never: a closed fd's session is forgotten first */
    return 0;
}

int rt_client(int fd, const char *secret, double limit, char *why)
{
    return start(fd, secret, 0, limit, why);
}

int rt_server(int fd, const char *secret, double limit, char *why)
{
    return start(fd, secret, 1, limit, why);
}

int rt_has(int fd)
{
    return sess_of(fd) != NULL;
}

int rt_binding(int fd, uint8_t out[PP_TLS_BINDING_LEN])
{
    rt_sess *s = sess_of(fd);
    return s ? pp_tls_binding(s->tr.ctx, out) : -1;
}

void rt_forget(int fd)
{
    if (fd < 0 || fd >= RT_MAX_FD)
        return;
    pthread_mutex_lock(&mu);
    rt_sess *s = table[fd];
    table[fd] = NULL;
    pthread_mutex_unlock(&mu);
    sess_free(s);
}

void rt_reset(void)
{
    for (int fd = 0; fd < RT_MAX_FD; fd++)
        rt_forget(fd);
    pthread_mutex_lock(&mu);
    for (int i = 0; i < RT_CACHE; i++)
        if (cache[i].secret)
            entry_clear(&cache[i]);
    pthread_mutex_unlock(&mu);
}

int rt_client_hello(const char *secret, uint8_t *buf, size_t cap, size_t *len)
{
    char why[PP_ERR_LEN];
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp) != 0)
        return -1;
    rt_sess *s = sess_new(secret, 0, why);
    /* One step: the ClientHello goes out, then it waits for the answer. */
    int ok = s && s->tr.ops->handshake(s->tr.ctx, sp[0], sp[0]) == PP_TR_WANT_READ;
    size_t n = 0;
    ssize_t k;
    while (ok && n < cap && (k = recv(sp[1], buf + n, cap - n, 0)) > 0)
        n += (size_t)k;
    if (s && (!ok || n < 5 || n == cap))
        pp_seterr(why, "the first handshake step made no ClientHello of at most %zu bytes", cap);
    sess_free(s);
    close(sp[0]);
    close(sp[1]);
    if (!ok || n < 5 || n == cap) {
        fprintf(stderr, "raw_tls: %s\n", why);
        return -1;
    }
    *len = n;
    return 0;
}

/* ---- I/O ---- */

ssize_t rt_send_nb(int fd, const void *p, size_t n)
{
    rt_sess *s = sess_of(fd);
    if (!s)
        return send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (s->stalled) {
        pp_seterr(s->err, "a write given up halfway through a TLS record");
        errno = EPIPE;
        return -1;
    }
    struct iovec iov = {.iov_base = (void *)p, .iov_len = n};
    pp_tr_status want = PP_TR_WANT_WRITE;
    ssize_t k = s->tr.ops->writev(s->tr.ctx, fd, &iov, 1, &want);
    if (k < 0 && errno == EAGAIN)
        s->want = want;
    else if (k < 0 && errno != EINTR)
        pp_seterr(s->err, "%s", s->tr.ops->error(s->tr.ctx));
    return k;
}


/* Waits until a write on fd may go on, or `deadline`: 1 or 0. */
static int writable_by(int fd, double deadline)
{
    rt_sess *s = sess_of(fd);
    return wait_fd(fd, s ? events_for(s->want) : POLLOUT, deadline);
}

int rt_wait_writable(int fd, double limit)
{
    return writable_by(fd, now_s() + limit);
}

/* Writes from p until n bytes went, or no byte went for `stall` seconds,
 * or `deadline` passed: the bytes taken. */
static size_t send_until(int fd, const uint8_t *p, size_t n, double stall, double deadline)
{
    size_t done = 0;
    double moved = now_s();
    while (done < n) {
        ssize_t k = rt_send_nb(fd, p + done, n - done);
        if (k > 0) {
            done += (size_t)k;
            moved = now_s();
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            break;
        if (!writable_by(fd, PP_MIN(moved + stall, deadline))) {
            /* TLS: SSL_write must be called again with these bytes, and
             * will not be: nothing more may go on this stream. */
            rt_sess *s = sess_of(fd);
            if (s)
                s->stalled = 1;
            break;
        }
    }
    return done;
}

int rt_send_all(int fd, const void *p, size_t n, double stall)
{
    return send_until(fd, p, n, stall, now_s() + 1e9) == n ? 0 : -1;
}

size_t rt_send_bounded(int fd, const void *p, size_t n, double limit)
{
    return send_until(fd, p, n, limit, now_s() + limit);
}

ssize_t rt_recv(int fd, void *buf, size_t n, double deadline)
{
    for (;;) {
        rt_sess *s = sess_of(fd);
        short events = POLLIN;
        if (s) {
            pp_tr_status want = PP_TR_WANT_READ;
            /* Decrypted bytes the session holds come first: poll() cannot
             * see them. */
            ssize_t k = s->tr.ops->read(s->tr.ctx, fd, buf, n, &want);
            if (k >= 0)
                return k;
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN) {
                /* An alert or a reset: the peer ended the connection. */
                pp_seterr(s->err, "%s", s->tr.ops->error(s->tr.ctx));
                return 0;
            }
            events = events_for(want);
        } else {
            ssize_t k = recv(fd, buf, n, MSG_DONTWAIT);
            if (k >= 0)
                return k;
            if (errno == EINTR)
                continue;
            if (errno == ECONNRESET || errno == EPIPE)
                return 0;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -2;
        }
        if (!wait_fd(fd, events, deadline))
            return -1;
    }
}

int rt_closed_now(int fd)
{
    char c;
    ssize_t k = rt_recv(fd, &c, 1, 0);
    return k == 0 || k == -2;
}

int rt_shutdown_wr(int fd)
{
    rt_sess *s = sess_of(fd);
    if (s)
        s->tr.ops->shutdown(s->tr.ctx, fd);
    return shutdown(fd, SHUT_WR);
}

const char *rt_error(int fd)
{
    rt_sess *s = sess_of(fd);
    return s ? s->err : "";
}
