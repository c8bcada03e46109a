/* SPDX-License-Identifier: MIT */
/* discover.h -- "*" in the node list: libpp listens for ppserver
 * --announce datagrams (pp_announce.h) and makes each node that announces
 * itself with our secret's key a node (nodes.h, PP_SRC_FOUND); one silent
 * for 3 of its intervals (or pp_config.discover_timeout) drains.  Datagrams
 * that do not verify, are stale or replayed are counted and logged once per
 * reason.  Everything on the scheduler thread's loop. */
#ifndef PP_DISCOVER_H
#define PP_DISCOVER_H

#include "internal.h"

/* On the scheduler thread, after pp_nodes_init(): listens at once when "*"
 * was configured, and from then on whenever pp_add_node("*") asks.  0, or
 * -1 with the reason in err (the port cannot be bound). */
PP_HIDDEN int pp_discover_init(pp_server *s, char *err);

/* On the scheduler thread, before pp_nodes_shutdown(): stops listening and
 * frees what discovery holds. */
PP_HIDDEN void pp_discover_shutdown(pp_server *s);

#endif
