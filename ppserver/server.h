/* SPDX-License-Identifier: MIT */
/* server.h -- the node's listener and life (server.c). */
#ifndef PPSERVER_SERVER_H
#define PPSERVER_SERVER_H

#include <signal.h>

#include "node.h"

int server_init(server *srv, srv_cfg *cfg, const char *secret, volatile sig_atomic_t *stop,
                char *err);
int server_run(server *srv);
/* Resizes the pool and announces the new CPU count to every client. */
void server_set_workers(server *srv, int n);
void server_destroy(server *srv);

#endif
