/* SPDX-License-Identifier: MIT */
/* nodes.h -- the node list: which ppserver nodes the program wants and the
 * backends that reach them.  Entries come from pp_config.ppservers or
 * $PP_SERVERS, nodes files (@FILE, re-read when they change), pp_add_node()
 * and pp_remove_node(), and discovery; a name is looked up again every
 * resolve_interval, one backend per address.  A node no entry wants any
 * more drains, then disconnects; its backend stays (jobs name backends by
 * index) and comes back if the node is wanted again.
 *
 * Any thread asks through pp_nodes_request() (mu held); the scheduler
 * thread applies the requests before it next sleeps. */
#ifndef PP_NODES_H
#define PP_NODES_H

#include "internal.h"

/* Who wants an entry: a bit each (an entry goes when none is left). */
enum {
    PP_SRC_LIST = 1u << 0,       /* pp_config.ppservers or $PP_SERVERS */
    PP_SRC_API = 1u << 1,        /* pp_add_node() */
    PP_SRC_FOUND = 1u << 2,      /* discovery */
    PP_SRC_FILE0 = 1u << 8,      /* nodes files: a bit each from here up */
};

typedef enum pp_node_op { PP_NODES_ADD, PP_NODES_REMOVE } pp_node_op;

/* A request for the scheduler thread. */
typedef struct pp_node_req {
    struct pp_node_req *next;
    pp_node_op op;
    unsigned src;                /* ADD: who wants it; REMOVE: who no longer
                                    does (0: nobody, pp_remove_node()) */
    char text[];                 /* "host:port" as normalized, or "@/abs/path" */
} pp_node_req;

/* A new statistics line (mu held, or before the scheduler starts).  NULL
 * when out of memory. */
PP_HIDDEN pp_node *pp_node_add_locked(pp_server *s, const char *name, int ncpus, int state);

/* In pp_server_new(): the configured nodes (pp_config.ppservers, else
 * $PP_SERVERS) checked and queued; nodes files read once to check them.
 * *remote set when there is at least one entry.  0, or -1 with err. */
PP_HIDDEN int pp_nodes_configure(pp_server *s, const pp_config *cfg, int *remote, char *err);

/* Queues a request (mu held) and wakes the scheduler.  0 or -1 (memory). */
PP_HIDDEN int pp_nodes_request(pp_server *s, pp_node_op op, unsigned src, const char *text);

/* On the scheduler thread, before the scheduler's own hook: the list set
 * up; requests are applied before each sleep of the loop, the configured
 * nodes in the first turn.  0, or -1 with the reason in err. */
PP_HIDDEN int pp_nodes_init(pp_server *s, char *err);

/* On the scheduler thread: applies the requests queued now, as the hook
 * does each turn.  pp_server_new() calls it once its backends are up, so
 * that the configured nodes are listed when it returns. */
PP_HIDDEN void pp_nodes_take(pp_server *s);

/* On the scheduler thread, before the backends go: lookups and file
 * watches stopped, the list freed. */
PP_HIDDEN void pp_nodes_shutdown(pp_server *s);

/* Frees requests never applied (teardown). */
PP_HIDDEN void pp_nodes_free_reqs(pp_node_req *reqs);

#endif
