/* SPDX-License-Identifier: MIT */
/* connect.h -- reaching a node: its name looked up (on a thread of its own,
 * pp_resolve.h: a slow DNS server delays only this node), then each of its
 * addresses tried in turn with a non-blocking connect and a deadline.  The
 * remote backend (remote.c) owns one per node and decides when to try. */
#ifndef PP_CONNECT_H
#define PP_CONNECT_H

#include <netdb.h>

#include "pp_log.h"
#include "pp_loop.h"
#include "pp_resolve.h"

typedef struct pp_connector pp_connector;

/* The attempt ended: fd >= 0 is a connected, non-blocking socket (the
 * callee's now), else `why` says what failed. */
typedef void (*pp_connect_fn)(pp_connector *c, int fd, const char *why);

struct pp_connector {
    pp_loop *loop;
    const pp_log *log;
    const char *name;             /* "host:port", for messages */
    char host[256];
    int port;
    pp_connect_fn done;
    void *data;                   /* the owner's */
    /* Optional: told the addresses each lookup of the name found, before
     * they are tried (it must not stop the connector). */
    void (*seen)(pp_connector *c, const struct addrinfo *res);
    /* while an attempt runs */
    pp_resolve *lookup;
    pp_io lio;                    /* watches the lookup's fd */
    struct addrinfo *addrs;       /* the host's addresses (owned) */
    const struct addrinfo *untried;
    int fd;
    pp_io cio;
    pp_timer timer;               /* this address's deadline */
};

/* Sets c up for host:port; `name` must outlive it. */
void pp_connector_init(pp_connector *c, pp_loop *loop, const pp_log *log, const char *name,
                       const char *host, int port, pp_connect_fn done, void *data);

/* Starts an attempt (stopping one under way).  Its end comes through
 * `done`, maybe before this returns (a bad numeric address). */
void pp_connector_start(pp_connector *c);

/* Stops an attempt under way, if any: closes its socket, lets go of its
 * lookup; `done` is not called. */
void pp_connector_stop(pp_connector *c);

#endif
