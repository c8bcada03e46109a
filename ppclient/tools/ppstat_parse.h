/* SPDX-License-Identifier: MIT */
/* ppstat_parse.h -- ppstat's reader of a node's STATUS reply (the format is
 * described in ppserver/status.c).  The reply is untrusted input: sizes,
 * line lengths and counts are bounded, every line, key and value checked,
 * and anything else is an error naming the line, never a guess. */
#ifndef PPSTAT_PARSE_H
#define PPSTAT_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define PPSTAT_REPLY_MAX (1u << 20) /* = PP_STATUS_REPLY_MAX */
#define PPSTAT_LINE_MAX 1024        /* bytes of one line, "\n" included */
#define PPSTAT_LIST_MAX 4096        /* workers or clients listed */
#define PPSTAT_TOKEN_MAX 64         /* a text value's bytes, NUL included */
#define PPSTAT_RUN_BUCKETS 13       /* the run-time histogram: 12 bounds, then the rest */

typedef struct ppstat_worker {
    uint64_t pid, inflight, busy, job;
    char client[PPSTAT_TOKEN_MAX]; /* "" = none */
    double run;                    /* seconds */
} ppstat_worker;

typedef struct ppstat_client {
    char addr[PPSTAT_TOKEN_MAX];
    char state[PPSTAT_TOKEN_MAX];  /* hello, auth, ready, closing */
    double connected;              /* seconds */
    uint64_t queued, running, done, failed, bytes_in, bytes_out;
} ppstat_client;

typedef struct ppstat_node {
    char version[PPSTAT_TOKEN_MAX];
    double uptime;
    uint64_t port, accepted, bytes_in, bytes_out;
    uint64_t workers_target, workers_busy, workers_idle;
    ppstat_worker *workers;        /* owned */
    size_t nworkers;
    uint64_t conns_hello, conns_auth, conns_ready, conns_closing;
    ppstat_client *clients;        /* owned */
    size_t nclients;
    uint64_t queue_depth, running;
    uint64_t done, failed, crashed, timeout, lost, cancelled, eload;
    uint64_t run[PPSTAT_RUN_BUCKETS];
    double run_sum;
    uint64_t modules, modules_wanted, cache_bytes, cache_max, cache_evictions;
    uint64_t auth_failures, wrong_proof, tls_key, lockout, ref_connections, ref_per_address,
        ref_handshakes;
    uint64_t handshake_errors, frame_errors;
} ppstat_node;

/* The run-time histogram's upper bounds (seconds), as the node's keys
 * "le0.001" ... name them; the last bucket has none. */
extern const char *const ppstat_run_le[PPSTAT_RUN_BUCKETS - 1];

/* Parses len bytes of text into *out (freed with ppstat_node_free()).
 * 0, or -1 with the reason in err (errlen bytes) and *out empty. */
int ppstat_parse(const char *text, size_t len, ppstat_node *out, char *err, size_t errlen);

/* Frees the lists; *n is then empty.  NULL is a no-op. */
void ppstat_node_free(ppstat_node *n);

#endif
