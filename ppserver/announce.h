/* SPDX-License-Identifier: MIT */
/* announce.h -- ppserver --announce: periodic discovery datagrams
 * (pp_announce.h) on the server's event loop (announce.c). */
#ifndef PPSERVER_ANNOUNCE_H
#define PPSERVER_ANNOUNCE_H

#include "node.h"

typedef struct announcer announcer;

/* Starts announcing srv's bound port and worker count to `dest`
 * ("ADDR[:PORT]", IPv4: broadcast, a multicast group or one address; NULL,
 * "" or "yes": 255.255.255.255:60001) every `interval` seconds, the first
 * at once.  NULL with the reason in err (PP_ERR_LEN bytes). */
announcer *announce_start(server *srv, const char *dest, double interval, char *err);

/* Stops and frees (before the loop goes).  NULL is a no-op. */
void announce_stop(announcer *an);

#endif
