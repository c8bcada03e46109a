/* SPDX-License-Identifier: MIT */
/* status.h -- a snapshot of the node: what ppstat (the STATUS frame), the
 * SIGUSR1 log summary and --metrics show.  status_collect() copies the
 * counters of struct server (srv->stats, the cache fields) and walks the
 * sessions and the workers once, from the loop's thread; the snapshot then
 * owns its lists and is read without touching the server again. */
#ifndef PPSERVER_STATUS_H
#define PPSERVER_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "pp_buf.h"
#include "node.h"

/* The STATUS reply's format version (first line "pp-status 1"). */
#define STATUS_FORMAT 1

/* A worker process now. */
typedef struct status_worker {
    int pid;
    int busy;                 /* running a job of ours now */
    int inflight;             /* jobs sent to it, the running one included */
    char client[64];          /* the running job's client "ip:port" ("" = none, or gone) */
    uint64_t job;             /* its id at that client */
    double run_seconds;       /* how long it has been running */
} status_worker;

/* A connection now, authenticated or not. */
typedef struct status_client {
    char addr[64];            /* "ip:port" */
    session_state state;
    double connected_seconds;
    uint64_t queued;          /* waiting for a worker (with those waiting for
                                 their module and those held by the budgets) */
    uint64_t running;         /* on workers */
    uint64_t done, failed;    /* ended here: PP_DONE, or any other outcome */
    uint64_t bytes_in, bytes_out;
} status_client;

typedef struct node_status {
    char version[32];         /* "1.4.0" */
    double uptime;            /* seconds */
    int port;
    /* workers */
    int workers_target;       /* the size asked for */
    int workers_busy, workers_idle;
    status_worker *workers;
    size_t nworkers;
    /* connections */
    status_client *clients;
    size_t nclients;
    uint64_t conns[S_CLOSING + 1]; /* by session_state */
    uint64_t accepted;        /* connections taken into a session since the start */
    uint64_t bytes_in, bytes_out; /* all connections, gone and live */
    /* jobs */
    uint64_t queue_depth;     /* jobs here not yet on a worker, all clients */
    uint64_t running;         /* jobs on workers */
    uint64_t jobs[SRV_STATUSES]; /* ended, by pp_status */
    uint64_t run[SRV_RUN_BUCKETS + 1]; /* run-time histogram (SRV_RUN_LE bounds; last: more) */
    double run_seconds;       /* summed run time */
    /* modules */
    uint64_t modules;         /* in the cache and verified */
    uint64_t modules_wanted;  /* asked for, not here yet */
    uint64_t cache_bytes, cache_max, cache_evictions; /* cache_max 0 = no limit */
    /* security and errors */
    uint64_t auth_failures;   /* refused[SRV_REF_WRONG_PROOF] + refused[SRV_REF_TLS_KEY] */
    uint64_t refused[SRV_REFUSALS]; /* by srv_refusal */
    uint64_t handshake_errors, frame_errors;
} node_status;

/* Takes the snapshot into *out (which status_free() releases).  0, or -1
 * when memory ran out (*out is then empty and needs no free). */
int status_collect(server *srv, node_status *out);

/* Frees the snapshot's lists; *st is then empty.  NULL is a no-op. */
void status_free(node_status *st);

/* Names for the reply and the log: of a session state ("hello", "auth",
 * "ready", "closing"), of a refusal ("wrong_proof", ...), of a pp_status
 * index ("done", "failed", ...; NULL for an index no status has). */
const char *status_state_name(session_state s);
const char *status_refusal_name(srv_refusal r);
const char *status_outcome_name(int status);

/* Appends the STATUS reply's text (the format is in status.c) to out.
 * 0, or -1 when out's cap or memory ran out. */
int status_render(const node_status *st, pp_buf *out);

/* Logs the summary (a few lines at level info): SIGUSR1.  From the loop,
 * never from a signal handler. */
void status_log(server *srv);

#endif
