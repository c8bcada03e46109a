/* SPDX-License-Identifier: MIT */
/* announce.c -- ppserver --announce: a UDP datagram every interval (a
 * little jitter, so that nodes started together do not send in step) that
 * tells libpp's discovery this node's port and worker count, MAC'd with
 * K_announce.  It only says where to connect: clients still run the mutual
 * handshake. */
#include "announce.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pp_announce.h"
#include "pp_common.h"
#include "pp_net.h"

struct announcer {
    server *srv;
    int fd;
    struct sockaddr_in to;
    char dest[80];              /* "addr:port", for the log */
    double interval;
    pp_timer timer;
    int failing;                /* the last send failed (logged once a streak) */
};

static void send_one(pp_loop *loop, pp_timer *t)
{
    announcer *an = t->data;
    server *srv = an->srv;
    int n = pp_pool_target(srv->pool);
    pp_announce a = {.port = (uint16_t)srv->port,
                     .ncpus = n < 0 ? 0u : (uint32_t)n,
                     .interval_ms = (uint32_t)(an->interval * 1000.0 + 0.5),
                     .time_ms = pp_announce_now_ms()};
    uint8_t dgram[PP_ANNOUNCE_LEN];
    errno = 0;
    int rc = pp_announce_encode(srv->key.announce, &a, 1, dgram);
    if (rc == 0 && sendto(an->fd, dgram, sizeof dgram, 0, (const struct sockaddr *)&an->to,
                          sizeof an->to) != (ssize_t)sizeof dgram)
        rc = -1;
    if (rc != 0 && !an->failing)
        pp_log(&srv->log, PP_LOG_WARN, "announce to %s: %s (logged once until it works)",
               an->dest, errno ? strerror(errno) : "cannot build the datagram");
    else if (rc == 0 && an->failing)
        pp_log(&srv->log, PP_LOG_INFO, "announce to %s: sending again", an->dest);
    an->failing = rc != 0;
    /* +-10 % from the nonce's random bytes. */
    double jitter = 0.9 + 0.2 * (double)(a.nonce[0]) / 255.0;
    pp_timer_start(loop, t, pp_now() + an->interval * jitter);
}

/* dest into an->to.  0, or -1 with err. */
static int parse_dest(announcer *an, const char *dest, char *err)
{
    char host[64];
    int port;
    if (!dest || !*dest || strcmp(dest, "yes") == 0)
        dest = "255.255.255.255";
    char why[PP_ERR_LEN];
    if (pp_net_parse_hostport(dest, PP_ANNOUNCE_PORT, host, sizeof host, &port, why) != 0) {
        pp_seterr(err, "--announce: %s", why);
        return -1;
    }
    an->to = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (port < 1 || inet_pton(AF_INET, host, &an->to.sin_addr) != 1) {
        pp_seterr(err, "--announce %s: an IPv4 address and a port 1..65535 (broadcast, "
                       "a multicast group or one address)", dest);
        return -1;
    }
    snprintf(an->dest, sizeof an->dest, "%.63s:%d", host, port);
    return 0;
}

/* The socket: broadcast allowed; multicast kept to the segment (TTL 1) and
 * looped back to listeners on this host. */
static int open_socket(announcer *an, char *err)
{
    int one = 1;
    unsigned char ttl = 1, loop = 1;
    an->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (an->fd < 0 || setsockopt(an->fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) != 0 ||
        setsockopt(an->fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl) != 0 ||
        setsockopt(an->fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof loop) != 0) {
        pp_seterr(err, "--announce: cannot make the UDP socket: %s", strerror(errno));
        return -1;
    }
    /* With -i ADDR the datagrams leave from ADDR, the address clients then
     * connect to (their source is what clients take), by its interface. */
    struct sockaddr_in from = {.sin_family = AF_INET};
    const char *ifaddr = an->srv->cfg->interface;
    if (ifaddr && inet_pton(AF_INET, ifaddr, &from.sin_addr) == 1 &&
        from.sin_addr.s_addr != htonl(INADDR_ANY) &&
        (bind(an->fd, (struct sockaddr *)&from, sizeof from) != 0 ||
         setsockopt(an->fd, IPPROTO_IP, IP_MULTICAST_IF, &from.sin_addr,
                    sizeof from.sin_addr) != 0)) {
        pp_seterr(err, "--announce: cannot send from %s: %s", ifaddr, strerror(errno));
        return -1;
    }
    return 0;
}

announcer *announce_start(server *srv, const char *dest, double interval, char *err)
{
    announcer *an = calloc(1, sizeof *an);
    if (!an) {
        pp_seterr(err, "out of memory");
        return NULL;
    }
    an->fd = -1;
    an->srv = srv;
    an->interval = interval;
    if (srv->cfg->no_secret) {
        /* The key would come from a public string: anyone could announce. */
        pp_seterr(err, "--announce needs the shared secret (not with --no-secret): "
                       "announcements are authenticated with a key derived from it");
    } else if (interval * 1000.0 < PP_ANNOUNCE_IVL_MIN ||
               interval * 1000.0 > PP_ANNOUNCE_IVL_MAX) {
        pp_seterr(err, "--announce-interval %g: 0.1 to 3600 seconds", interval);
    } else if (parse_dest(an, dest, err) == 0 && open_socket(an, err) == 0) {
        an->timer = (pp_timer){.fn = send_one, .data = an};
        pp_timer_start(srv->loop, &an->timer, pp_now());
        pp_log(&srv->log, PP_LOG_INFO, "announcing port %d to %s every %g s", srv->port,
               an->dest, interval);
        return an;
    }
    announce_stop(an);
    return NULL;
}

void announce_stop(announcer *an)
{
    if (!an)
        return;
    if (pp_timer_armed(&an->timer))
        pp_timer_stop(an->srv->loop, &an->timer);
    if (an->fd >= 0)
        close(an->fd);
    free(an);
}
