/* SPDX-License-Identifier: MIT */
/* pp_net.h -- TCP helpers: listen (port 0 = a free one), accept, non-blocking
 * connect, host:port parsing, socket options.  Errors go into a caller
 * buffer of PP_ERR_LEN bytes. */
#ifndef PP_NET_H
#define PP_NET_H

#include <stddef.h>
#include <stdint.h>

/* Listens on addr ("0.0.0.0", "::", "127.0.0.1", a host name; NULL = all
 * interfaces) and port (0 = any free port).  Returns the non-blocking,
 * close-on-exec fd and stores the bound port in *bound, or -1. */
int pp_net_listen(const char *addr, int port, int backlog, int *bound, char *err);

/* Accepts one connection: non-blocking, close-on-exec, TCP_NODELAY, keepalive.
 * The peer's "ip:port" goes to peer (peerlen bytes).  Returns the fd, or -1
 * with errno set (EAGAIN when none is waiting). */
int pp_net_accept(int lfd, char *peer, size_t peerlen);

/* Starts a non-blocking connect to host:port (the first address that takes
 * it).  Returns the fd (connected or in progress: wait for writability and
 * call pp_net_connect_result()), or -1.  Resolves host first, which for a
 * name may wait on DNS for seconds: an event loop uses the two calls below. */
int pp_net_connect(const char *host, int port, char *err);

struct addrinfo;

/* Resolves host:port into the addresses to connect to.  A name may wait on
 * DNS for seconds; with `numeric_only`, nothing is looked up and a name fails
 * with EAI_NONAME.  Returns 0 with the list in *res (the caller frees it with
 * freeaddrinfo()), or the getaddrinfo() error with "cannot resolve HOST:
 * reason" in err and *res NULL. */
int pp_net_resolve(const char *host, int port, int numeric_only, struct addrinfo **res,
                   char *err);

/* Starts a non-blocking connect, as pp_net_connect() does, to the first
 * address of the list `ai` that takes it (host and port only name it in
 * errors).  *rest (when rest is not NULL) gets the addresses after that one,
 * to try if it fails later; NULL when none is left.  Returns the fd, or -1. */
int pp_net_connect_ai(const struct addrinfo *ai, const struct addrinfo **rest, const char *host,
                      int port, char *err);

/* After writability: 0 when connected, else the errno of the failure. */
int pp_net_connect_result(int fd);

/* How far a TCP peer takes our bytes: those it has acknowledged so far
 * (TCP_INFO), and those still in our kernel's send queue, unacknowledged
 * (SIOCOUTQ): what a client that stops reading stops taking, and what
 * piles up for it beyond our own queue.  0, or -1 (not TCP). */
int pp_net_tcp_progress(int fd, uint64_t *acked, size_t *unacked);

/* Parses "host", "host:port", "[v6]:port" or "[v6]".  Returns 0 or -1. */
int pp_net_parse_hostport(const char *s, int defport, char *host, size_t hostlen, int *port,
                          char *err);

#endif
