/* SPDX-License-Identifier: MIT */
/* backend.h -- what a backend is: somewhere jobs run (the local worker pool,
 * one ppserver node), driven by the scheduler through a small table of
 * operations.  The scheduler alone decides which job runs next and where:
 * it asks each backend, in the order they were added, how many more jobs it
 * takes, and hands it jobs; a backend never takes jobs itself.  It gives
 * them back through the scheduler: finished (pp_sched_finish) or to run
 * again (pp_sched_requeue).  Every call is on the scheduler thread.
 *
 * Errors: operations that can fail return 0 or -1 (with the reason in the
 * caller's err buffer where there is one); a backend that loses its
 * connection or worker handles that itself and hands the jobs back. */
#ifndef PP_BACKEND_H
#define PP_BACKEND_H

#include "internal.h"
#include "pp_tags.h"

struct addrinfo;

/* What a backend can do now, for the scheduler's decisions about jobs
 * nothing can run. */
typedef enum pp_backend_state {
    PP_BACKEND_UP,       /* it runs jobs (maybe none more right now) */
    PP_BACKEND_WAITING,  /* not now; it may come up (connecting, down) */
    PP_BACKEND_REFUSED,  /* not until the secret changes: the node refused ours */
    PP_BACKEND_REMOVED,  /* drained and disconnected: out of the count */
} pp_backend_state;

typedef struct pp_backend_ops {
    /* Ends it: every job it still holds goes back through
     * pp_sched_requeue(); then frees it. */
    void (*free)(pp_backend *b);
    /* How many more jobs it takes now (0 = none). */
    int (*room)(pp_backend *b);
    /* Takes a job: 0, or -1 (not now: the job stays the scheduler's). */
    int (*dispatch)(pp_backend *b, pp_job *j);
    /* The end of a dispatch round: writes what the round queued.  A node
     * is flushed only in the turns it asked to be (pp_sched_flush_due);
     * the local pool in every turn. */
    void (*flush)(pp_backend *b);
    /* Stops the jobs it holds that pp_job_cancel() ended (NULL: it
     * cannot); each comes back through pp_sched_finish() or
     * pp_sched_requeue(), now or later, as usual.  Called after cancels,
     * so it may see a job it already stops: once is enough. */
    void (*cancel)(pp_backend *b);
    /* on: no new job (room 0); once the jobs it holds are back, it
     * disconnects and says PP_BACKEND_REMOVED.  off: back in service
     * (reconnecting if it had gone).  NULL: not a node. */
    void (*drain)(pp_backend *b, int on);
    /* Sets its number of workers (NULL: not its to set). */
    void (*resize)(pp_backend *b, int n);
    pp_backend_state (*state)(pp_backend *b);
    /* "host:port down (connection refused)" into buf. */
    void (*describe)(pp_backend *b, char *buf, size_t len);
} pp_backend_ops;

struct pp_backend {
    const pp_backend_ops *ops;
    pp_server *s;
    pp_node *node;               /* its line in the statistics */
    int remote;                  /* a ppserver node, not this machine's workers */
    int flush_due;               /* (sched) on the list of backends to flush */
    pp_tags *tags;               /* its tags (owned; tags.c), NULL: none */
    int tags_known;              /* they are known: a node has been up */
};

/* The backends (server.c adds them when the scheduler starts): each makes
 * itself, starts, and returns NULL with the reason in err on failure. */
PP_HIDDEN pp_backend *pp_local_new(pp_server *s, pp_node *node, char *err);
/* Open connections kept to nodes holding none of our jobs when
 * pp_config.max_idle_nodes is 0; beyond them the longest idle are closed
 * (remote.c) and reopened when jobs could go to them. */
#define PP_MAX_IDLE_DEFAULT 64
/* Told the addresses a lookup of a remote node's name found. */
typedef void (*pp_addrs_fn)(pp_server *s, pp_node *node, const struct addrinfo *res);
PP_HIDDEN pp_backend *pp_remote_new(pp_server *s, pp_node *node, const char *host, int port,
                                    pp_addrs_fn seen, char *err);

/* Whether the local pool has all its workers up, and why it has not (for
 * pp_server_new(), which waits for them): 1 ready, 0 not yet, -1 failed. */
PP_HIDDEN int pp_local_started(pp_backend *b, char *err);

/* ---- the scheduler's side, for backends ---- */

/* The job ended (status: a pp_status); `mem` (malloc'd, now the job's)
 * holds `data`, len bytes + NUL: the result or the error text.  Published
 * to the caller in the next loop turn. */
PP_HIDDEN void pp_sched_finish(pp_server *s, pp_job *j, int status, void *mem,
                               const char *data, size_t len, pp_node *node, uint64_t run_ns);
/* pp_sched_finish() with an error text formatted here (no result). */
PP_HIDDEN void pp_sched_fail(pp_server *s, pp_job *j, int status, const char *fmt, ...)
    PP_PRINTF(4, 5);
/* The job goes back to the queue, before those queued after it first: the
 * backend could not run it (a node lost, a worker gone, taken back). */
PP_HIDDEN void pp_sched_requeue(pp_server *s, pp_job *j);
/* Something changed that may let jobs go (a node came up, a worker is
 * ready): the scheduler looks again before it sleeps. */
PP_HIDDEN void pp_sched_poke(pp_server *s);
/* The node queued output (or has work for its flush op): its flush op runs
 * at the end of this turn's dispatch.  Nodes not asking are not visited,
 * so an idle turn costs the same with 1,000 nodes as with 2. */
PP_HIDDEN void pp_sched_flush_due(pp_server *s, pp_backend *b);

/* ---- the scheduler thread's life, for server.c ---- */

/* Sets the scheduler up on its loop.  0, or -1 with the reason in err. */
PP_HIDDEN int pp_sched_init(pp_server *s, char *err);
/* Adds a backend, after those added before (dispatch order).  0 or -1. */
PP_HIDDEN int pp_sched_add(pp_server *s, pp_backend *b);
/* Runs the loop until pp_server_free() asks it to stop. */
PP_HIDDEN void pp_sched_run(pp_server *s);
/* Frees the backends (their jobs come back) and cancels what is left. */
PP_HIDDEN void pp_sched_shutdown(pp_server *s);

#endif
