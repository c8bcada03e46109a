/* SPDX-License-Identifier: MIT */
/* delay-proxy -- a TCP proxy on 127.0.0.1 that delays every byte by D ms in
 * each direction, and optionally limits each direction's bandwidth
 * (benchmarks B5 and B7: this kernel has no netem).
 *
 *   delay-proxy --to PORT [--listen PORT] [--port-file F] [--delay-ms D]
 *               [--rate-mbit N] [--max-seconds S]
 *
 * Listens on 127.0.0.1:PORT (0 = a free port, written to --port-file) and
 * forwards each connection to 127.0.0.1:--to.  Bytes read at time t are
 * written at t + D: a delay line, so pipelined traffic keeps flowing.  With
 * --rate-mbit, each direction of each connection also passes at most N
 * Mbit/s (10^6 bits), paced by a token bucket of 16 KiB, as a slow link
 * would.  Each direction buffers at most 8 MiB, or with --rate-mbit what
 * the link carries in D + 10 ms (at least 64 KiB; a link's queue is short),
 * plus one read; the reader then waits (back-pressure).  At most 64
 * connections at once.  Exits on SIGTERM or SIGINT, or after --max-seconds
 * (default 3600). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#define MAX_BUFFERED (8u << 20)
#define BURST 16384 /* the token bucket's depth, bytes */
#define MAX_CONNS 64
#define CHUNK 65536

typedef struct chunk {
    struct chunk *next;
    int64_t due_ns;
    size_t len;
    unsigned char data[];
} chunk;

struct conn;

typedef struct direction {
    struct conn *c;
    int from, to;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    chunk *head, *tail;
    size_t buffered;
    int eof;                     /* the reader saw the end */
    double tokens;               /* bytes the rate allows now (writer only) */
    int64_t refilled_ns;         /* when tokens was last brought up to date */
} direction;

typedef struct conn {
    direction dir[2];
    _Atomic int dead;            /* a write failed: tear both directions down */
    _Atomic int threads;         /* threads still running */
    int fd[2];
} conn;

static int64_t g_delay_ns;
static double g_rate;            /* bytes per second, 0 = unlimited */
static size_t g_max_buffered = MAX_BUFFERED;
static _Atomic int g_conns;

static void conn_kill(conn *c)
{
    atomic_store(&c->dead, 1);
    shutdown(c->fd[0], SHUT_RDWR);
    shutdown(c->fd[1], SHUT_RDWR);
    for (int i = 0; i < 2; i++) {
        pthread_mutex_lock(&c->dir[i].mu);
        pthread_cond_broadcast(&c->dir[i].cv);
        pthread_mutex_unlock(&c->dir[i].mu);
    }
}

static void conn_release(conn *c)
{
    if (atomic_fetch_sub(&c->threads, 1) != 1)
        return;
    for (int i = 0; i < 2; i++) {
        direction *d = &c->dir[i];
        while (d->head) {
            chunk *k = d->head;
            d->head = k->next;
            free(k);
        }
        pthread_mutex_destroy(&d->mu);
        pthread_cond_destroy(&d->cv);
    }
    close(c->fd[0]);
    close(c->fd[1]);
    free(c);
    atomic_fetch_sub(&g_conns, 1);
}

static void *reader_main(void *arg)
{
    direction *d = arg;
    conn *c = d->c;
    unsigned char *buf = malloc(CHUNK);
    while (buf && !atomic_load(&c->dead)) {
        ssize_t n = read(d->from, buf, CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        chunk *k = malloc(sizeof *k + (size_t)n);
        if (!k)
            break;
        k->next = NULL;
        k->due_ns = bu_now_ns() + g_delay_ns;
        k->len = (size_t)n;
        memcpy(k->data, buf, (size_t)n);
        pthread_mutex_lock(&d->mu);
        while (d->buffered >= g_max_buffered && !atomic_load(&c->dead))
            pthread_cond_wait(&d->cv, &d->mu);
        if (d->tail)
            d->tail->next = k;
        else
            d->head = k;
        d->tail = k;
        d->buffered += k->len;
        pthread_cond_broadcast(&d->cv);
        pthread_mutex_unlock(&d->mu);
    }
    free(buf);
    pthread_mutex_lock(&d->mu);
    d->eof = 1;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    conn_release(c);
    return NULL;
}

/* Waits until the token bucket holds n bytes (n <= BURST), then takes
 * them. */
static void pace(direction *d, size_t n)
{
    for (;;) {
        int64_t now = bu_now_ns();
        d->tokens += (double)(now - d->refilled_ns) / 1e9 * g_rate;
        d->tokens = d->tokens > BURST ? BURST : d->tokens;
        d->refilled_ns = now;
        if (d->tokens >= (double)n)
            break;
        int64_t wait_ns = (int64_t)(((double)n - d->tokens) / g_rate * 1e9) + 1;
        struct timespec nap = {(time_t)(wait_ns / 1000000000LL), (long)(wait_ns % 1000000000LL)};
        nanosleep(&nap, NULL);
    }
    d->tokens -= (double)n;
}

/* Writes p[0..n) to the direction's target, paced when a rate is set;
 * returns the bytes written (n unless the write failed). */
static size_t write_paced(direction *d, const unsigned char *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        size_t piece = n - off;
        if (g_rate > 0) {
            piece = piece < BURST ? piece : BURST;
            pace(d, piece);
        }
        size_t done = 0;
        while (done < piece) {
            ssize_t w = write(d->to, p + off + done, piece - done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return off + done;
            done += (size_t)w;
        }
        off += piece;
    }
    return off;
}

static void *writer_main(void *arg)
{
    direction *d = arg;
    conn *c = d->c;
    int clean = 0;
    for (;;) {
        pthread_mutex_lock(&d->mu);
        while (!d->head && !d->eof && !atomic_load(&c->dead))
            pthread_cond_wait(&d->cv, &d->mu);
        chunk *k = d->head;
        pthread_mutex_unlock(&d->mu);
        if (atomic_load(&c->dead))
            break;
        if (!k) { /* the end, everything before it delivered */
            shutdown(d->to, SHUT_WR);
            clean = 1;
            break;
        }
        struct timespec due = {(time_t)(k->due_ns / 1000000000LL),
                               (long)(k->due_ns % 1000000000LL)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, NULL) == EINTR) {
        }
        if (write_paced(d, k->data, k->len) < k->len) {
            conn_kill(c);
            break;
        }
        pthread_mutex_lock(&d->mu);
        d->head = k->next;
        if (!d->head)
            d->tail = NULL;
        d->buffered -= k->len;
        pthread_cond_broadcast(&d->cv);
        pthread_mutex_unlock(&d->mu);
        free(k);
    }
    /* A reader blocked on a full buffer must not wait forever. */
    if (!clean)
        conn_kill(c);
    conn_release(c);
    return NULL;
}

static void nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int connect_target(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    nodelay(fd);
    return fd;
}

static int start_conn(int client, int port)
{
    int server = connect_target(port);
    if (server < 0)
        return -1;
    conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(server);
        return -1;
    }
    c->fd[0] = client;
    c->fd[1] = server;
    atomic_store(&c->threads, 4);
    atomic_fetch_add(&g_conns, 1);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (int i = 0; i < 2; i++) {
        direction *d = &c->dir[i];
        d->c = c;
        d->from = c->fd[i];
        d->to = c->fd[1 - i];
        d->tokens = BURST;
        d->refilled_ns = bu_now_ns();
        pthread_mutex_init(&d->mu, NULL);
        pthread_cond_init(&d->cv, NULL);
    }
    int started = 0;
    for (int i = 0; i < 2; i++) {
        pthread_t t;
        if (pthread_create(&t, &attr, reader_main, &c->dir[i]) == 0)
            started++;
        if (pthread_create(&t, &attr, writer_main, &c->dir[i]) == 0)
            started++;
    }
    pthread_attr_destroy(&attr);
    if (started < 4) { /* the ones that did start tear it down */
        conn_kill(c);
        for (int i = started; i < 4; i++)
            conn_release(c);
    }
    return 0;
}

typedef struct acceptor {
    int lfd;
    int to_port;
} acceptor;

static void *accept_main(void *arg)
{
    acceptor *a = arg;
    for (;;) {
        int fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE) {
                struct timespec nap = {0, 10 * 1000000L};
                nanosleep(&nap, NULL);
                continue;
            }
            break;
        }
        nodelay(fd);
        if (atomic_load(&g_conns) >= MAX_CONNS || start_conn(fd, a->to_port) != 0)
            close(fd);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    long listen_port = 0, to_port = -1, max_s = 3600;
    double delay_ms = 2, rate_mbit = 0;
    const char *port_file = NULL;
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            puts("usage: delay-proxy --to PORT [--listen PORT] [--port-file F] [--delay-ms D]\n"
                 "                   [--rate-mbit N] [--max-seconds S]\n"
                 "Delays each direction by D ms (default 2); with --rate-mbit, also passes\n"
                 "at most N Mbit/s each way (default: no limit).");
            return 0;
        } else if (!v) {
            bad = 1;
        } else if (strcmp(a, "--to") == 0) {
            bad = bu_parse_long(v, 1, 65535, "--to", &to_port);
        } else if (strcmp(a, "--listen") == 0) {
            bad = bu_parse_long(v, 0, 65535, "--listen", &listen_port);
        } else if (strcmp(a, "--port-file") == 0) {
            port_file = v;
        } else if (strcmp(a, "--delay-ms") == 0) {
            bad = bu_parse_double(v, 0, 10000, "--delay-ms", &delay_ms);
        } else if (strcmp(a, "--rate-mbit") == 0) {
            bad = bu_parse_double(v, 0.01, 100000, "--rate-mbit", &rate_mbit);
        } else if (strcmp(a, "--max-seconds") == 0) {
            bad = bu_parse_long(v, 1, 86400, "--max-seconds", &max_s);
        } else {
            bad = 1;
        }
        if (bad) {
            fprintf(stderr, "delay-proxy: bad option %s (try --help)\n", a);
            return 2;
        }
    }
    if (to_port < 0) {
        fprintf(stderr, "delay-proxy: --to PORT is required\n");
        return 2;
    }
    g_delay_ns = (int64_t)(delay_ms * 1e6);
    g_rate = rate_mbit * 1e6 / 8;
    if (g_rate > 0) { /* a link's queue: what it carries in D + 10 ms */
        double q = g_rate * (delay_ms + 10) / 1000;
        g_max_buffered = q < 65536 ? 65536 : q > MAX_BUFFERED ? MAX_BUFFERED : (size_t)q;
    }

    /* Signals are taken by sigtimedwait() below, on this thread only. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)listen_port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof addr;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(lfd, 128) != 0 || getsockname(lfd, (struct sockaddr *)&addr, &alen) != 0) {
        fprintf(stderr, "delay-proxy: cannot listen on 127.0.0.1:%ld: %s\n", listen_port,
                strerror(errno));
        return 69;
    }
    if (port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *fp = fopen(tmp, "w");
        if (!fp || fprintf(fp, "%d\n", ntohs(addr.sin_port)) < 0 || fclose(fp) != 0 ||
            rename(tmp, port_file) != 0) {
            fprintf(stderr, "delay-proxy: cannot write %s\n", port_file);
            return 73;
        }
    }
    acceptor acc = {.lfd = lfd, .to_port = (int)to_port};
    pthread_t t;
    if (pthread_create(&t, NULL, accept_main, &acc) != 0) {
        fprintf(stderr, "delay-proxy: cannot start a thread\n");
        return 71;
    }
    int64_t end_ns = bu_now_ns() + (int64_t)max_s * 1000000000LL;
    for (;;) {
        int64_t left = end_ns - bu_now_ns();
        if (left <= 0)
            break;
        struct timespec limit = {(time_t)(left / 1000000000LL), (long)(left % 1000000000LL)};
        if (sigtimedwait(&set, NULL, &limit) >= 0 || errno != EINTR)
            break; /* a signal, or the time is up */
    }
    /* Exiting ends every thread and closes every socket. */
    _exit(0);
}
