/* SPDX-License-Identifier: MIT */
/* connect.c -- reaching a node: lookup, addresses, connect (see connect.h).
 * Numeric addresses connect at once; a name is looked up on a thread, with
 * no deadline of ours (the resolver bounds its own time). */
#include "connect.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pp_common.h"
#include "pp_net.h"

#define CONNECT_TIMEOUT 5.0 /* seconds per address */

static void try_next(pp_connector *c);

/* Ends the attempt (the fd, if any, is handed over first by the caller). */
static void finish(pp_connector *c, int fd, const char *why)
{
    pp_connector_stop(c);
    c->done(c, fd, why);
}

static void connect_timer(pp_loop *loop, pp_timer *t)
{
    (void)loop;
    pp_connector *c = t->data;
    if (c->untried) { /* a host with several addresses: try the next one */
        pp_log(c->log, PP_LOG_DEBUG, "%s: connection timed out; trying the next address",
               c->name);
        try_next(c);
    } else {
        finish(c, -1, "connection timed out");
    }
}

static void connected(pp_loop *loop, pp_io *io, unsigned ev)
{
    (void)loop;
    (void)ev;
    pp_connector *c = io->data;
    int e = pp_net_connect_result(c->fd);
    if (e != 0 && c->untried) {
        pp_log(c->log, PP_LOG_DEBUG, "%s: %s; trying the next address", c->name, strerror(e));
        try_next(c);
        return;
    }
    if (e != 0) {
        finish(c, -1, strerror(e));
        return;
    }
    int fd = c->fd;
    pp_loop_del(c->loop, &c->cio);
    c->fd = -1; /* handed over */
    finish(c, fd, NULL);
}

/* A non-blocking connect to the next untried address, closing the attempt
 * before it. */
static void try_next(pp_connector *c)
{
    if (c->fd >= 0) {
        pp_loop_del(c->loop, &c->cio);
        close(c->fd);
        c->fd = -1;
    }
    char err[PP_ERR_LEN];
    int fd = pp_net_connect_ai(c->untried, &c->untried, c->host, c->port, err);
    if (fd < 0) {
        finish(c, -1, err);
        return;
    }
    c->fd = fd;
    c->cio = (pp_io){.fd = fd, .fn = connected, .data = c};
    if (pp_loop_add(c->loop, &c->cio, PP_EV_WRITE) != 0) {
        finish(c, -1, "cannot watch the socket");
        return;
    }
    pp_timer_start(c->loop, &c->timer, pp_now() + CONNECT_TIMEOUT);
}

static void lookup_ready(pp_loop *loop, pp_io *io, unsigned ev)
{
    (void)loop;
    (void)ev;
    pp_connector *c = io->data;
    char err[PP_ERR_LEN];
    struct addrinfo *res;
    if (!c->lookup || !pp_resolve_take(c->lookup, &res, err))
        return; /* an event from a lookup dropped earlier in this turn */
    pp_loop_del(c->loop, &c->lio);
    pp_resolve_drop(c->lookup);
    c->lookup = NULL;
    if (!res) {
        finish(c, -1, err);
        return;
    }
    if (c->seen)
        c->seen(c, res);
    c->addrs = res;
    c->untried = res;
    try_next(c);
}

void pp_connector_init(pp_connector *c, pp_loop *loop, const pp_log *log, const char *name,
                       const char *host, int port, pp_connect_fn done, void *data)
{
    memset(c, 0, sizeof *c);
    c->loop = loop;
    c->log = log;
    c->name = name;
    snprintf(c->host, sizeof c->host, "%s", host);
    c->port = port;
    c->done = done;
    c->data = data;
    c->fd = -1;
    c->timer = (pp_timer){.fn = connect_timer, .data = c};
}

void pp_connector_start(pp_connector *c)
{
    pp_connector_stop(c);
    char err[PP_ERR_LEN];
    struct addrinfo *res;
    int rc = pp_net_resolve(c->host, c->port, 1, &res, err);
    if (rc == EAI_NONAME) { /* a name: one lookup at a time, on its thread */
        c->lookup = pp_resolve_start(c->host, c->port, err);
        if (!c->lookup) {
            finish(c, -1, err);
            return;
        }
        c->lio = (pp_io){.fd = pp_resolve_fd(c->lookup), .fn = lookup_ready, .data = c};
        if (pp_loop_add(c->loop, &c->lio, PP_EV_READ) != 0)
            finish(c, -1, "cannot watch the name lookup");
        return;
    }
    if (rc != 0) {
        finish(c, -1, err);
        return;
    }
    c->addrs = res;
    c->untried = res;
    try_next(c);
}

void pp_connector_stop(pp_connector *c)
{
    pp_timer_stop(c->loop, &c->timer);
    if (c->fd >= 0) {
        pp_loop_del(c->loop, &c->cio);
        close(c->fd);
        c->fd = -1;
    }
    if (c->lookup) {
        pp_loop_del(c->loop, &c->lio); /* before the thread can close the fd */
        pp_resolve_drop(c->lookup);
        c->lookup = NULL;
    }
    if (c->addrs) {
        freeaddrinfo(c->addrs);
        c->addrs = NULL;
        c->untried = NULL;
    }
}
