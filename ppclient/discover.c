/* SPDX-License-Identifier: MIT */
/* discover.c -- discovery (see discover.h).  The network is hostile: a
 * datagram is taken only when it has the exact layout, a MAC under our
 * K_announce, a timestamp within PP_ANNOUNCE_WINDOW_MS of now and a nonce
 * not seen in that window.  What it gives is only an address to try: the
 * node is then reached through the usual mutual handshake.  A flood costs
 * CPU only: at most READ_MAX datagrams a turn (the loop serves everyone
 * else in between), one log line per reason, memory bounded (FOUND_MAX
 * nodes, SEEN_MAX nonces). */
#include "discover.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nodes.h"
#include "pp_announce.h"

#define READ_MAX 64      /* datagrams read a turn */
#define FOUND_MAX 4096   /* discovered nodes at once */
#define SEEN_MAX 16384   /* nonces of fresh announcements held */

typedef struct found {
    struct found *next;
    char name[64];       /* "a.b.c.d:port" */
    double heard;        /* pp_now() of its last announcement */
    double timeout;      /* silent this long: it drains */
} found;

typedef struct discoverer {
    pp_server *s;
    int fd;
    int port;
    uint32_t group;
    pp_io io;
    pp_timer sweep;
    pp_announce_seen *seen;
    found *found;
    int nfound;
    int failed;                      /* listening failed: not tried again */
    uint64_t counts[PP_ANN_REASONS]; /* this turn's, added to s->announces at its end */
    int logged[PP_ANN_REASONS];      /* the reason was logged once */
    int logged_full, logged_many;
} discoverer;

/* ---- listening ---- */

/* A UDP socket on d->port that several programs of this host may share;
 * the multicast group joined.  0, or -1 with the reason in err. */
static int open_socket(discoverer *d, char *err)
{
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d->port),
                            .sin_addr.s_addr = htonl(INADDR_ANY)};
    d->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (d->fd < 0 || setsockopt(d->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(d->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(d->fd, (struct sockaddr *)&a, sizeof a) != 0) {
        pp_seterr(err, "discovery: cannot listen on UDP port %d: %s", d->port, strerror(errno));
        return -1;
    }
    if (d->group) {
        struct ip_mreq m = {.imr_multiaddr.s_addr = d->group,
                            .imr_interface.s_addr = htonl(INADDR_ANY)};
        if (setsockopt(d->fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m) != 0) {
            char g[INET_ADDRSTRLEN] = "?";
            inet_ntop(AF_INET, &m.imr_multiaddr, g, sizeof g);
            pp_seterr(err, "discovery: cannot join the multicast group %s: %s", g,
                      strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* ---- what arrives ---- */

static const char *const why_ignored[PP_ANN_REASONS] = {
    [PP_ANN_BAD] = "that are no announcements (a wrong length or field)",
    [PP_ANN_WRONG_KEY] = "with a wrong key (a node with another secret, or forged)",
    [PP_ANN_STALE] = "stamped more than 5 s from our clock (replayed late, or the "
                     "clocks differ: keep them in step, e.g. with NTP)",
    [PP_ANN_REPLAYED] = "with a nonce seen before (replayed)",
};

/* Counted always; a reason to ignore it logged the first time only. */
static void tally(discoverer *d, pp_ann_result r, const char *from)
{
    pp_server *s = d->s;
    d->counts[r]++;
    if (r == PP_ANN_OK || d->logged[r])
        return;
    d->logged[r] = 1;
    pp_log(&s->log, PP_LOG_WARN, "discovery: ignoring datagrams %s, the first from %s; "
                                 "more are only counted (pp_get_stats)", why_ignored[r], from);
}

static found *found_find(discoverer *d, const char *name)
{
    for (found *f = d->found; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

/* A verified, fresh, new announcement of `name`. */
static void heard(discoverer *d, const char *name, const pp_announce *a)
{
    pp_server *s = d->s;
    found *f = found_find(d, name);
    if (!f && d->nfound >= FOUND_MAX) {
        if (!d->logged_many)
            pp_log(&s->log, PP_LOG_WARN, "discovery: more than %d nodes announce themselves; "
                                         "%s and later ones are not used", FOUND_MAX, name);
        d->logged_many = 1;
        return;
    }
    if (!f) {
        int rc = -1;
        if ((f = calloc(1, sizeof *f))) {
            pthread_mutex_lock(&s->mu);
            rc = pp_nodes_request(s, PP_NODES_ADD, PP_SRC_FOUND, name);
            pthread_mutex_unlock(&s->mu);
        }
        if (rc != 0) {
            free(f);
            pp_log(&s->log, PP_LOG_ERROR, "discovery: %s: out of memory", name);
            return;
        }
        snprintf(f->name, sizeof f->name, "%s", name);
        f->next = d->found;
        d->found = f;
        d->nfound++;
        pp_log(&s->log, PP_LOG_INFO, "discovery: found %s (%u CPUs, announcing every %g s)",
               name, (unsigned)a->ncpus, a->interval_ms / 1000.0);
    }
    f->heard = pp_now();
    f->timeout = s->discover_timeout > 0 ? s->discover_timeout : 3.0 * a->interval_ms / 1000.0;
    /* O(1) a datagram: the sweep finds the true next expiry when it runs. */
    double due = f->heard + f->timeout;
    if (!pp_timer_armed(&d->sweep) || d->sweep.when > due)
        pp_timer_start(s->loop, &d->sweep, due);
}

/* One datagram of len bytes (len may exceed what was read: MSG_TRUNC). */
static void take(discoverer *d, const uint8_t *buf, size_t len, const struct sockaddr_in *src)
{
    char ip[INET_ADDRSTRLEN] = "?";
    inet_ntop(AF_INET, &src->sin_addr, ip, sizeof ip);
    pp_announce a;
    uint64_t now = pp_announce_now_ms();
    pp_ann_result r = pp_announce_decode(d->s->key.announce, buf, len, &a);
    if (r == PP_ANN_OK)
        r = pp_announce_fresh(&a, now);
    if (r == PP_ANN_OK) {
        int seen = pp_announce_seen_add(d->seen, &a, now);
        if (seen < 0 && !d->logged_full) {
            /* Only holders of the key get here: fail closed, say so once. */
            pp_log(&d->s->log, PP_LOG_WARN, "discovery: more than %d announcements within "
                                            "10 s; the others are ignored", SEEN_MAX);
            d->logged_full = 1;
        }
        if (seen != 0)
            r = PP_ANN_REPLAYED;
    }
    tally(d, r, ip);
    if (r != PP_ANN_OK)
        return;
    char name[64];
    snprintf(name, sizeof name, "%s:%u", ip, (unsigned)a.port);
    heard(d, name, &a);
}

static void readable(pp_loop *loop, pp_io *io, unsigned ev)
{
    (void)loop;
    (void)ev;
    discoverer *d = io->data;
    for (int i = 0; i < READ_MAX; i++) {
        uint8_t buf[PP_ANNOUNCE_LEN];
        struct sockaddr_in src;
        socklen_t slen = sizeof src;
        ssize_t n = recvfrom(d->fd, buf, sizeof buf, MSG_TRUNC, (struct sockaddr *)&src, &slen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break; /* EAGAIN: all read; a socket error: tried again next time */
        if (slen != sizeof src || src.sin_family != AF_INET)
            continue;
        take(d, buf, (size_t)n, &src);
    }
    /* The counts once a turn, not once a datagram: a flood takes the lock
     * the program's threads need once per READ_MAX datagrams. */
    pthread_mutex_lock(&d->s->mu);
    for (int r = 0; r < PP_ANN_REASONS; r++)
        d->s->announces[r] += d->counts[r];
    pthread_mutex_unlock(&d->s->mu);
    memset(d->counts, 0, sizeof d->counts);
}

/* ---- nodes that fall silent ---- */

static void arm_sweep(discoverer *d)
{
    double next = -1;
    for (found *f = d->found; f; f = f->next)
        if (next < 0 || f->heard + f->timeout < next)
            next = f->heard + f->timeout;
    if (next < 0)
        pp_timer_stop(d->s->loop, &d->sweep);
    else if (!pp_timer_armed(&d->sweep) || d->sweep.when > next)
        pp_timer_start(d->s->loop, &d->sweep, next);
}

static void sweep(pp_loop *loop, pp_timer *t)
{
    (void)loop;
    discoverer *d = t->data;
    pp_server *s = d->s;
    double now = pp_now();
    for (found **p = &d->found; *p;) {
        found *f = *p;
        if (now < f->heard + f->timeout) {
            p = &f->next;
            continue;
        }
        pthread_mutex_lock(&s->mu);
        int rc = pp_nodes_request(s, PP_NODES_REMOVE, PP_SRC_FOUND, f->name);
        pthread_mutex_unlock(&s->mu);
        if (rc != 0) { /* out of memory: try again at the next sweep */
            p = &f->next;
            f->heard = now;
            continue;
        }
        pp_log(&s->log, PP_LOG_INFO, "discovery: %s has not announced itself for %g s: it "
                                     "drains", f->name, now - f->heard);
        *p = f->next;
        free(f);
        d->nfound--;
    }
    arm_sweep(d);
}

/* ---- life ---- */

/* Starts listening for what "*" asked (mu not held).  0, or -1 with err. */
static int start(discoverer *d, int port, uint32_t group, char *err)
{
    d->port = port;
    d->group = group;
    if (!(d->seen = pp_announce_seen_new(SEEN_MAX))) {
        pp_seterr(err, "discovery: out of memory");
        return -1;
    }
    if (open_socket(d, err) != 0)
        return -1;
    d->io = (pp_io){.fd = d->fd, .fn = readable, .data = d};
    if (pp_loop_add(d->s->loop, &d->io, PP_EV_READ) != 0) {
        pp_seterr(err, "discovery: cannot watch the socket: %s", strerror(errno));
        return -1;
    }
    pp_log(&d->s->log, PP_LOG_INFO, "discovery: listening on UDP port %d", port);
    return 0;
}

/* The loop's hook: pp_add_node("*") after the start. */
static void check_asked(pp_loop *loop, void *data)
{
    (void)loop;
    discoverer *d = data;
    /* A peek without the lock first: this runs every turn, and most servers
     * never ask. */
    if (d->fd >= 0 || d->failed || !__atomic_load_n(&d->s->discover_port, __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&d->s->mu);
    int port = d->s->discover_port;
    uint32_t group = d->s->discover_group;
    pthread_mutex_unlock(&d->s->mu);
    char err[PP_ERR_LEN];
    if (port && start(d, port, group, err) != 0) {
        d->failed = 1;
        pp_log(&d->s->log, PP_LOG_ERROR, "%s", err);
    }
}

int pp_discover_init(pp_server *s, char *err)
{
    discoverer *d = calloc(1, sizeof *d);
    if (!d) {
        pp_seterr(err, "out of memory");
        return -1;
    }
    d->s = s;
    d->fd = -1;
    d->sweep = (pp_timer){.fn = sweep, .data = d};
    s->discoverer = d;
    pthread_mutex_lock(&s->mu);
    int port = s->discover_port;
    uint32_t group = s->discover_group;
    pthread_mutex_unlock(&s->mu);
    if (port && start(d, port, group, err) != 0)
        return -1;
    if (pp_loop_hook(s->loop, check_asked, d) != 0) {
        pp_seterr(err, "cannot set up the event loop");
        return -1;
    }
    return 0;
}

void pp_discover_shutdown(pp_server *s)
{
    discoverer *d = s->discoverer;
    if (!d)
        return;
    pp_timer_stop(s->loop, &d->sweep);
    if (d->fd >= 0) {
        pp_loop_del(s->loop, &d->io);
        close(d->fd);
    }
    while (d->found) {
        found *f = d->found;
        d->found = f->next;
        free(f);
    }
    pp_announce_seen_free(d->seen);
    free(d);
    s->discoverer = NULL;
}
