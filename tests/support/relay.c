/* SPDX-License-Identifier: MIT */
/* relay.c -- see relay.h.  One accept thread; one thread per connection
 * that polls both sockets and copies whatever arrives, recording it, and
 * applies what the test armed. */
#include "relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RELAY_MAX_CONNS 64

typedef struct rec {
    uint8_t *data;
    size_t len, cap;
} rec;

typedef struct hop {
    relay *r;
    int fd[2];           /* [RELAY_TO_SERVER] = client side, [RELAY_TO_CLIENT] = server side */
    pthread_t thread;
} hop;

struct relay {
    int target_port;
    int lfd;
    int stop_pipe[2];
    pthread_t accepter;
    pthread_mutex_t mu;
    rec recs[2];
    hop links[RELAY_MAX_CONNS];
    int nlinks;
    int flip_dir;              /* -1 = not armed */
    size_t flip_at;
    uint8_t *inject;           /* NULL = not armed */
    size_t inject_len;
    int tampered;
};

static void rec_add(relay *r, int dir, const uint8_t *p, size_t n)
{
    pthread_mutex_lock(&r->mu);
    rec *c = &r->recs[dir];
    if (c->len + n > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + n) cap *= 2;
        uint8_t *d = realloc(c->data, cap);
        if (d) { c->data = d; c->cap = cap; }
    }
    if (c->len + n <= c->cap) {
        memcpy(c->data + c->len, p, n);
        c->len += n;
    }
    pthread_mutex_unlock(&r->mu);
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Forwards one chunk read in direction dir, applying what is armed. */
static int forward(hop *l, int dir, uint8_t *buf, size_t n)
{
    relay *r = l->r;
    int out = dir == RELAY_TO_SERVER ? l->fd[RELAY_TO_CLIENT] : l->fd[RELAY_TO_SERVER];
    uint8_t *inject = NULL;
    size_t inject_len = 0;
    pthread_mutex_lock(&r->mu);
    if (r->flip_dir == dir) {
        buf[r->flip_at < n ? r->flip_at : n - 1] ^= 1;
        r->flip_dir = -1;
        r->tampered = 1;
    }
    if (dir == RELAY_TO_SERVER && r->inject) {
        inject = r->inject;
        inject_len = r->inject_len;
        r->inject = NULL;
        r->tampered = 1;
    }
    pthread_mutex_unlock(&r->mu);
    if (inject) {
        rec_add(r, dir, inject, inject_len);
        int rc = write_all(out, inject, inject_len);
        free(inject);
        if (rc < 0) return -1;
    }
    rec_add(r, dir, buf, n);
    return write_all(out, buf, n);
}

static void *link_main(void *arg)
{
    hop *l = arg;
    relay *r = l->r;
    int open_[2] = {1, 1};
    static const size_t bufsz = 65536;
    uint8_t *buf = malloc(bufsz);
    if (!buf) return NULL;
    while (open_[0] || open_[1]) {
        struct pollfd p[3];
        p[0].fd = open_[RELAY_TO_SERVER] ? l->fd[RELAY_TO_SERVER] : -1;
        p[0].events = POLLIN;
        p[1].fd = open_[RELAY_TO_CLIENT] ? l->fd[RELAY_TO_CLIENT] : -1;
        p[1].events = POLLIN;
        p[2].fd = r->stop_pipe[0];
        p[2].events = POLLIN;
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (p[2].revents) break;
        for (int dir = 0; dir < 2; dir++) {
            if (!open_[dir] || !(p[dir].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t n = recv(l->fd[dir], buf, bufsz, 0);
            if (n < 0 && errno == EINTR) continue;
            int out = dir == RELAY_TO_SERVER ? l->fd[RELAY_TO_CLIENT] : l->fd[RELAY_TO_SERVER];
            if (n <= 0) {
                /* One side ended: end the other one too, as a real path would. */
                open_[0] = open_[1] = 0;
                shutdown(out, SHUT_RDWR);
                break;
            }
            if (forward(l, dir, buf, (size_t)n) < 0) {
                open_[0] = open_[1] = 0;
                shutdown(l->fd[dir], SHUT_RDWR);
                break;
            }
        }
    }
    free(buf);
    return NULL;
}

static int connect_target(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void *accept_main(void *arg)
{
    relay *r = arg;
    for (;;) {
        struct pollfd p[2] = {{r->lfd, POLLIN, 0}, {r->stop_pipe[0], POLLIN, 0}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return NULL;
        }
        if (p[1].revents) return NULL;
        int c = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) continue;
        int one = 1;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        int s = connect_target(r->target_port);
        pthread_mutex_lock(&r->mu);
        int full = r->nlinks >= RELAY_MAX_CONNS;
        pthread_mutex_unlock(&r->mu);
        if (s < 0 || full) {
            close(c);
            if (s >= 0) close(s);
            continue;
        }
        pthread_mutex_lock(&r->mu);
        hop *l = &r->links[r->nlinks];
        l->r = r;
        l->fd[RELAY_TO_SERVER] = c;
        l->fd[RELAY_TO_CLIENT] = s;
        if (pthread_create(&l->thread, NULL, link_main, l) != 0) {
            close(c);
            close(s);
        } else {
            r->nlinks++;
        }
        pthread_mutex_unlock(&r->mu);
    }
}

relay *relay_start(int target_port)
{
    relay *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->target_port = target_port;
    r->flip_dir = -1;
    r->lfd = -1;
    r->stop_pipe[0] = r->stop_pipe[1] = -1;
    pthread_mutex_init(&r->mu, NULL);
    if (pipe2(r->stop_pipe, O_CLOEXEC) < 0) goto fail;
    r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (r->lfd < 0) goto fail;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(r->lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(r->lfd, 64) < 0)
        goto fail;
    if (pthread_create(&r->accepter, NULL, accept_main, r) != 0) goto fail;
    return r;
fail:
    if (r->lfd >= 0) close(r->lfd);
    if (r->stop_pipe[0] >= 0) { close(r->stop_pipe[0]); close(r->stop_pipe[1]); }
    pthread_mutex_destroy(&r->mu);
    free(r);
    return NULL;
}

int relay_port(const relay *r)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    if (getsockname(r->lfd, (struct sockaddr *)&a, &len) < 0) return -1;
    return ntohs(a.sin_port);
}

uint8_t *relay_recorded(relay *r, int dir, size_t *len)
{
    pthread_mutex_lock(&r->mu);
    rec *c = &r->recs[dir];
    uint8_t *copy = c->len ? malloc(c->len) : NULL;
    if (copy) memcpy(copy, c->data, c->len);
    *len = copy ? c->len : 0;
    pthread_mutex_unlock(&r->mu);
    return copy;
}

void relay_arm_flip(relay *r, int dir, size_t at)
{
    pthread_mutex_lock(&r->mu);
    r->flip_dir = dir;
    r->flip_at = at;
    pthread_mutex_unlock(&r->mu);
}

void relay_arm_inject(relay *r, const void *bytes, size_t len)
{
    if (len == 0 || len > 65536) return;
    uint8_t *copy = malloc(len);
    if (!copy) return;
    memcpy(copy, bytes, len);
    pthread_mutex_lock(&r->mu);
    free(r->inject);
    r->inject = copy;
    r->inject_len = len;
    pthread_mutex_unlock(&r->mu);
}

int relay_connections(relay *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->nlinks;
    pthread_mutex_unlock(&r->mu);
    return n;
}

int relay_tampered(relay *r)
{
    pthread_mutex_lock(&r->mu);
    int t = r->tampered;
    pthread_mutex_unlock(&r->mu);
    return t;
}

void relay_stop(relay *r)
{
    if (!r) return;
    ssize_t w = write(r->stop_pipe[1], "x", 1);
    (void)w;
    pthread_join(r->accepter, NULL);
    for (int i = 0; i < r->nlinks; i++) {
        pthread_join(r->links[i].thread, NULL);
        close(r->links[i].fd[0]);
        close(r->links[i].fd[1]);
    }
    close(r->lfd);
    close(r->stop_pipe[0]);
    close(r->stop_pipe[1]);
    free(r->inject);
    free(r->recs[0].data);
    free(r->recs[1].data);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
