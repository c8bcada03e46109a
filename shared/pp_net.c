/* SPDX-License-Identifier: MIT */
/* pp_net.c -- TCP helpers. */
#include "pp_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <linux/sockios.h> /* SIOCOUTQ */
#include <linux/tcp.h>     /* struct tcp_info with tcpi_bytes_acked */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pp_common.h"

static void tune(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
}

int pp_net_listen(const char *addr, int port, int backlog, int *bound, char *err)
{
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(addr, portstr, &hints, &res);
    if (rc != 0) {
        pp_seterr(err, "cannot resolve %s: %s", addr ? addr : "*", gai_strerror(rc));
        return -1;
    }
    int fd = -1, last = 0;
    /* Prefer IPv4 for the wildcard: dual-stack setups vary. */
    for (int pass = 0; pass < 2 && fd < 0; pass++) {
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            if ((pass == 0) != (ai->ai_family == AF_INET))
                continue;
            fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        ai->ai_protocol);
            if (fd < 0) {
                last = errno;
                continue;
            }
            int one = 1;
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0)
                break;
            last = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        pp_seterr(err, "cannot listen on %s:%d: %s", addr ? addr : "*", port, strerror(last));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *bound = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                      : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

int pp_net_accept(int lfd, char *peer, size_t peerlen)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return -1;
    tune(fd);
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        port = ntohs(a->sin_port);
        snprintf(peer, peerlen, "%s:%d", ip, port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        port = ntohs(a->sin6_port);
        snprintf(peer, peerlen, "[%s]:%d", ip, port);
    } else {
        snprintf(peer, peerlen, "unknown");
    }
    return fd;
}

int pp_net_resolve(const char *host, int port, int numeric_only, struct addrinfo **res,
                   char *err)
{
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = numeric_only ? AI_NUMERICHOST : 0};
    *res = NULL;
    int rc = getaddrinfo(host, portstr, &hints, res);
    if (rc != 0) {
        *res = NULL;
        pp_seterr(err, "cannot resolve %s: %s", host, gai_strerror(rc));
        return rc;
    }
    return 0;
}

int pp_net_connect_ai(const struct addrinfo *ai, const struct addrinfo **rest, const char *host,
                      int port, char *err)
{
    int fd = -1, last = 0;
    for (; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS)
            break;
        last = errno;
        close(fd);
        fd = -1;
    }
    if (rest)
        *rest = ai ? ai->ai_next : NULL;
    if (fd < 0) {
        pp_seterr(err, "cannot connect to %s:%d: %s", host, port,
                  strerror(last ? last : EADDRNOTAVAIL));
        return -1;
    }
    tune(fd);
    return fd;
}

int pp_net_connect(const char *host, int port, char *err)
{
    struct addrinfo *res;
    if (pp_net_resolve(host, port, 0, &res, err) != 0)
        return -1;
    int fd = pp_net_connect_ai(res, NULL, host, port, err);
    freeaddrinfo(res);
    return fd;
}

int pp_net_connect_result(int fd)
{
    int e = 0;
    socklen_t l = sizeof e;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) != 0)
        return errno;
    return e;
}

int pp_net_parse_hostport(const char *s, int defport, char *host, size_t hostlen, int *port,
                          char *err)
{
    const char *h = s, *colon = NULL;
    size_t hl;
    if (!s || !*s) {
        pp_seterr(err, "empty node address");
        return -1;
    }
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || (end[1] && end[1] != ':')) {
            pp_seterr(err, "bad node address \"%s\" (expected [v6addr]:port)", s);
            return -1;
        }
        h = s + 1;
        hl = (size_t)(end - h);
        colon = end[1] == ':' ? end + 1 : NULL;
    } else {
        colon = strrchr(s, ':');
        if (colon && strchr(s, ':') != colon) {
            pp_seterr(err, "bad node address \"%s\" (write IPv6 as [addr]:port)", s);
            return -1;
        }
        hl = colon ? (size_t)(colon - s) : strlen(s);
    }
    if (hl == 0 || hl >= hostlen) {
        pp_seterr(err, "bad node address \"%s\" (host name empty or too long)", s);
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = 0;
    *port = defport;
    if (colon) {
        char *end;
        errno = 0;
        long p = strtol(colon + 1, &end, 10);
        if (errno || end == colon + 1 || *end || p < 1 || p > 65535 ||
            colon[1] < '0' || colon[1] > '9') { /* digits only: no sign, no blank */
            pp_seterr(err, "bad port in node address \"%s\" (1..65535)", s);
            return -1;
        }
        *port = (int)p;
    }
    return 0;
}

int pp_net_tcp_progress(int fd, uint64_t *acked, size_t *unacked)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    int queued = 0;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof ti.tcpi_bytes_acked ||
        ioctl(fd, SIOCOUTQ, &queued) != 0 || queued < 0)
        return -1;
    *acked = ti.tcpi_bytes_acked;
    *unacked = (size_t)queued;
    return 0;
}
