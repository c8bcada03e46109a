/* SPDX-License-Identifier: MIT */
/* bench_limits.c -- see bench_limits.h. */
#include "bench_limits.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "bench_util.h"

#define MAX_SAMPLES 200

/* Through a volatile pointer, so that the compiler can neither drop a copy
 * whose destination is not read again nor inline it into something else
 * than libc's memcpy (the one pp runs). */
typedef void *(*copy_fn)(void *, const void *, size_t);

/* How many samples for `bytes`: about 256 MiB in all, 10 .. MAX_SAMPLES. */
static long samples_for(size_t bytes, size_t per_sample)
{
    size_t total = (size_t)256 << 20, one = bytes * per_sample;
    long n = (long)(total / (one ? one : 1));
    return n < 10 ? 10 : n > MAX_SAMPLES ? MAX_SAMPLES : n;
}

static void summarise(double *rate, long n, bl_rate *out)
{
    double best = 0;
    for (long i = 0; i < n; i++)
        best = rate[i] > best ? rate[i] : best;
    out->best = best;
    out->median = bu_quantile(rate, (size_t)n, 0.5);
    out->samples = n;
}

int bl_memcpy_warm(size_t bytes, bl_rate *out)
{
    copy_fn volatile copy = memcpy;
    /* Small sizes: several copies per sample, so each sample is timed
     * over about 4 MiB. */
    size_t inner = bytes < ((size_t)4 << 20) ? ((size_t)4 << 20) / bytes : 1;
    long n = samples_for(bytes, inner);
    unsigned char *a = malloc(bytes), *b = malloc(bytes);
    double rate[MAX_SAMPLES];
    if (!a || !b || bytes == 0) {
        free(a);
        free(b);
        return -1;
    }
    bu_random_bytes(a, bytes, 7);
    memset(b, 1, bytes);
    copy(b, a, bytes); /* both in memory and in the TLB before the clock */
    for (long i = 0; i < n; i++) {
        a[0] = (unsigned char)i;
        int64_t t0 = bu_now_ns();
        for (size_t k = 0; k < inner; k++)
            copy(b, a, bytes);
        int64_t t1 = bu_now_ns();
        rate[i] = (double)bytes * (double)inner / ((double)(t1 - t0 > 0 ? t1 - t0 : 1) / 1e9) / 1e6;
    }
    volatile unsigned char sink = b[0];
    (void)sink;
    free(a);
    free(b);
    summarise(rate, n, out);
    return 0;
}

int bl_memcpy_fresh(size_t bytes, bl_rate *out)
{
    copy_fn volatile copy = memcpy;
    long n = samples_for(bytes, 1);
    unsigned char *src = malloc(bytes);
    double rate[MAX_SAMPLES];
    if (!src || bytes == 0) {
        free(src);
        return -1;
    }
    bu_random_bytes(src, bytes, 11);
    unsigned sum = 0;
    for (long i = 0; i < n; i++) {
        int64_t t0 = bu_now_ns();
        unsigned char *dst = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                                  -1, 0);
        if (dst == MAP_FAILED) {
            free(src);
            return -1;
        }
        copy(dst, src, bytes);
        int64_t t1 = bu_now_ns();
        sum += dst[(size_t)i % bytes]; /* the copy is read: it must happen */
        munmap(dst, bytes);
        rate[i] = (double)bytes / ((double)(t1 - t0 > 0 ? t1 - t0 : 1) / 1e9) / 1e6;
    }
    volatile unsigned sink = sum;
    (void)sink;
    free(src);
    summarise(rate, n, out);
    return 0;
}

/* ---- one loopback TCP stream, echoed by a thread ---- */

typedef struct echo_peer {
    int lfd;
    int fd;       /* the accepted connection, -1 until then */
    size_t whole; /* 0: echo what arrives at once; else store this many
                   * bytes, then send them back */
} echo_peer;

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Echoes until the end of the stream or an error: each read at once, or
 * (e->whole) each message of that size once it is all in. */
static void *echo_main(void *arg)
{
    echo_peer *e = arg;
    size_t cap = e->whole ? e->whole : 256 * 1024, have = 0;
    unsigned char *buf = malloc(cap);
    if (buf && e->fd >= 0) {
        for (;;) {
            ssize_t n = read(e->fd, buf + have, cap - have);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            have += (size_t)n;
            if (e->whole && have < cap)
                continue;
            if (write_all(e->fd, buf, have) != 0)
                break;
            have = 0;
        }
    }
    free(buf);
    return NULL;
}

/* A listening socket on 127.0.0.1, the client connected to it and the
 * server side accepted (the backlog holds the connection until then). */
static int echo_connect(echo_peer *e, int *client)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    int one = 1;
    e->fd = -1;
    *client = -1;
    e->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (e->lfd < 0 || bind(e->lfd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(e->lfd, 1) != 0 || getsockname(e->lfd, (struct sockaddr *)&a, &alen) != 0)
        return -1;
    *client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*client < 0 || connect(*client, (struct sockaddr *)&a, sizeof a) != 0)
        return -1;
    e->fd = accept4(e->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (e->fd < 0)
        return -1;
    setsockopt(*client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(e->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fcntl(*client, F_SETFL, O_NONBLOCK) == 0 ? 0 : -1;
}

/* Closes what echo_connect() opened (any of it may be -1). */
static void echo_close(echo_peer *e, int client)
{
    if (client >= 0)
        close(client);
    if (e->fd >= 0)
        close(e->fd);
    if (e->lfd >= 0)
        close(e->lfd);
}

/* Sends out[0..n) and reads n bytes back into in, at once; 0, or -1 when
 * the stream fails or stalls for 30 s. */
static int echo_round(int fd, const unsigned char *out, unsigned char *in, size_t n)
{
    size_t sent = 0, got = 0;
    while (got < n) {
        struct pollfd p = {.fd = fd, .events = POLLIN | (sent < n ? POLLOUT : 0)};
        int r = poll(&p, 1, 30000);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || (p.revents & (POLLERR | POLLHUP | POLLNVAL)))
            return -1;
        if ((p.revents & POLLOUT) && sent < n) {
            size_t k = n - sent < ((size_t)1 << 20) ? n - sent : (size_t)1 << 20;
            ssize_t w = send(fd, out + sent, k, MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN && errno != EINTR)
                return -1;
            sent += w > 0 ? (size_t)w : 0;
        }
        if (p.revents & POLLIN) {
            ssize_t g = recv(fd, in + got, n - got, 0);
            if (g == 0 || (g < 0 && errno != EAGAIN && errno != EINTR))
                return -1;
            got += g > 0 ? (size_t)g : 0;
        }
    }
    return 0;
}

int bl_tcp_echo(size_t bytes, int whole, bl_rate *out)
{
    echo_peer e = {.lfd = -1, .fd = -1, .whole = whole ? bytes : 0};
    int client = -1, rc = -1, started = 0;
    long n = samples_for(bytes, 1);
    double rate[MAX_SAMPLES];
    unsigned char *src = malloc(bytes), *dst = malloc(bytes);
    pthread_t t;
    if (!src || !dst || bytes == 0 || echo_connect(&e, &client) != 0) {
        fprintf(stderr, "pp-bench limits: loopback TCP set-up: %s\n", strerror(errno));
        goto out;
    }
    started = pthread_create(&t, NULL, echo_main, &e) == 0;
    if (!started)
        goto out;
    bu_random_bytes(src, bytes, 13);
    memset(dst, 0, bytes);
    rc = echo_round(client, src, dst, bytes); /* untimed: buffers and window grown */
    for (long i = 0; i < n && rc == 0; i++) {
        src[0] = (unsigned char)i;
        int64_t t0 = bu_now_ns();
        rc = echo_round(client, src, dst, bytes);
        int64_t t1 = bu_now_ns();
        if (rc == 0 && memcmp(src, dst, bytes) != 0)
            rc = -1;
        rate[i] = (double)bytes / ((double)(t1 - t0 > 0 ? t1 - t0 : 1) / 1e9) / 1e6;
    }
    if (rc != 0)
        fprintf(stderr, "pp-bench limits: the loopback echo failed or stalled\n");
    else
        summarise(rate, n, out);
out:
    /* The echo thread sees the end, or its blocked write fails. */
    if (e.fd >= 0)
        shutdown(e.fd, SHUT_RDWR);
    if (started)
        pthread_join(t, NULL);
    echo_close(&e, client);
    free(src);
    free(dst);
    return rc;
}

/* ---- the same, store-and-forward, inside TLS 1.3 ---- */

/* A fixed key: the peers are two threads of this process on loopback,
 * and only the cost of the record layer is measured. */
static const unsigned char bench_psk[32] = "pp-bench limits: loopback only.";
static const char bench_identity[] = "pp-bench";

static SSL_SESSION *psk_session(SSL *ssl)
{
    static const unsigned char aes128gcmsha256[] = {0x13, 0x01};
    const SSL_CIPHER *c = SSL_CIPHER_find(ssl, aes128gcmsha256);
    SSL_SESSION *s = c ? SSL_SESSION_new() : NULL;
    if (s && (!SSL_SESSION_set1_master_key(s, bench_psk, sizeof bench_psk) ||
              !SSL_SESSION_set_cipher(s, c) ||
              !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION))) {
        SSL_SESSION_free(s);
        s = NULL;
    }
    return s;
}

static int use_psk(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
                   SSL_SESSION **sess)
{
    (void)md;
    *sess = psk_session(ssl);
    *id = (const unsigned char *)bench_identity;
    *idlen = sizeof bench_identity - 1;
    return *sess != NULL;
}

static int find_psk(SSL *ssl, const unsigned char *id, size_t idlen, SSL_SESSION **sess)
{
    (void)id;
    (void)idlen;
    *sess = psk_session(ssl);
    return *sess != NULL;
}

/* pp's own record-layer settings (shared/pp_tls.c): TLS 1.3, AES-128-GCM,
 * reading ahead into a 256 KiB buffer, kernel TLS where offered. */
static SSL_CTX *tls_ctx(int server)
{
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_ENABLE_KTLS);
    SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ctx, 256 * 1024);
    if (SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256") != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (server)
        SSL_CTX_set_psk_find_session_callback(ctx, find_psk);
    else
        SSL_CTX_set_psk_use_session_callback(ctx, use_psk);
    return ctx;
}

/* n bytes through a blocking TLS connection: 0 or -1. */
static int tls_io(SSL *ssl, unsigned char *p, size_t n, int writing)
{
    while (n > 0) {
        size_t k = 0;
        int ok = writing ? SSL_write_ex(ssl, p, n, &k) : SSL_read_ex(ssl, p, n, &k);
        if (!ok || k == 0)
            return -1;
        p += k;
        n -= k;
    }
    return 0;
}

typedef struct tls_peer {
    SSL *ssl;
    size_t whole;
} tls_peer;

/* Each message read whole, then sent back, until the end or an error. */
static void *tls_echo_main(void *arg)
{
    tls_peer *e = arg;
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE); /* its alert after the client left: EPIPE */
    pthread_sigmask(SIG_BLOCK, &pipe, NULL);
    unsigned char *buf = malloc(e->whole);
    if (buf && SSL_accept(e->ssl) == 1)
        while (tls_io(e->ssl, buf, e->whole, 0) == 0 && tls_io(e->ssl, buf, e->whole, 1) == 0)
            ;
    free(buf);
    return NULL;
}

/* The client's side: n bytes out, then n back; 0 or -1. */
static int tls_round(SSL *ssl, unsigned char *out, unsigned char *in, size_t n)
{
    return tls_io(ssl, out, n, 1) == 0 && tls_io(ssl, in, n, 0) == 0 ? 0 : -1;
}

/* The timed rounds over an established connection; 0 or -1. */
static int tls_rounds(SSL *ssl, unsigned char *src, unsigned char *dst, size_t bytes,
                      double *rate, long n)
{
    bu_random_bytes(src, bytes, 13);
    if (tls_round(ssl, src, dst, bytes) != 0) /* untimed: buffers and window grown */
        return -1;
    for (long i = 0; i < n; i++) {
        src[0] = (unsigned char)i;
        int64_t t0 = bu_now_ns();
        int rc = tls_round(ssl, src, dst, bytes);
        int64_t t1 = bu_now_ns();
        if (rc != 0 || memcmp(src, dst, bytes) != 0)
            return -1;
        rate[i] = (double)bytes / ((double)(t1 - t0 > 0 ? t1 - t0 : 1) / 1e9) / 1e6;
    }
    return 0;
}

int bl_tls_echo(size_t bytes, bl_rate *out)
{
    echo_peer e = {.lfd = -1, .fd = -1};
    tls_peer p = {.whole = bytes};
    int client = -1, rc = -1, started = 0;
    long n = samples_for(bytes, 1);
    double rate[MAX_SAMPLES];
    unsigned char *src = malloc(bytes), *dst = malloc(bytes);
    SSL_CTX *sc = tls_ctx(1), *cc = tls_ctx(0);
    SSL *cs = NULL;
    pthread_t t;
    if (!src || !dst || !sc || !cc || bytes == 0 || echo_connect(&e, &client) != 0 ||
        fcntl(client, F_SETFL, 0) != 0 || !(p.ssl = SSL_new(sc)) || !(cs = SSL_new(cc)) ||
        !SSL_set_fd(p.ssl, e.fd) || !SSL_set_fd(cs, client)) {
        fprintf(stderr, "pp-bench limits: loopback TLS set-up failed\n");
        goto out;
    }
    started = pthread_create(&t, NULL, tls_echo_main, &p) == 0;
    if (started && SSL_connect(cs) == 1) {
        rc = tls_rounds(cs, src, dst, bytes, rate, n);
        SSL_shutdown(cs);
    }
    if (rc != 0) {
        fprintf(stderr, "pp-bench limits: the loopback TLS echo failed\n");
        ERR_print_errors_fp(stderr);
    }
    else
        summarise(rate, n, out);
out:
    if (e.fd >= 0)
        shutdown(e.fd, SHUT_RDWR); /* the echo thread sees the end */
    if (started)
        pthread_join(t, NULL);
    SSL_free(cs);
    SSL_free(p.ssl);
    SSL_CTX_free(cc);
    SSL_CTX_free(sc);
    echo_close(&e, client);
    free(src);
    free(dst);
    return rc;
}
