/* SPDX-License-Identifier: MIT */
/* node.h -- ppserver's private structures: settings, the server, client
 * sessions and the jobs they send (each file's functions are in its own
 * header).
 *
 * Where each concern lives:
 *   main.c     options and the configuration file, the secret, daemon mode,
 *              signals, exit codes
 *   server.c   the listener and its caps, the worker pool shared fairly by
 *              the clients, heartbeats, shutdown, exit when idle
 *   session.c  one client: the handshake (pp_handshake.h), its frames, its
 *              jobs, modules it sends
 *   modules.c  the module table: the modules stored or asked for, by hash
 *              (a hash table); a cached file verified before its first use
 *   lockout.c  wrong secrets counted per address
 *   announce.c --announce: discovery datagrams on the server's loop
 *   status.c   the node's status: the snapshot (STATUS reply, SIGUSR1 log)
 *   metrics.c  --metrics: Prometheus text on GET /metrics (libmicrohttpd on
 *              the server's loop), rendered from status.c's snapshot
 * server.c uses session.c; session.c uses modules.c, lockout.c and
 * status.c, never server.c.  Sessions and the server share these
 * structures. */
#ifndef PPSERVER_NODE_H
#define PPSERVER_NODE_H

#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "pp_auth.h"
#include "pp_conn.h"
#include "pp_handshake.h"
#include "pp_log.h"
#include "pp_loop.h"
#include "pp_pool.h"
#include "pp_tls.h"
#include "pp_zpolicy.h"

/* Settings: defaults < configuration file < environment < command line. */
typedef struct srv_cfg {
    int port;
    char *interface;
    char *secret;
    char *secret_file;
    int workers;              /* -1 = the CPUs available */
    double idle_timeout;      /* seconds without jobs before a client is closed */
    double idle_exit;         /* exit after this long with no client (0 = never) */
    char *config;
    char *pidfile;
    int daemonize;
    int debug;                /* -d: log level debug */
    char *cache_dir;
    char *port_file;
    char *log_file;
    char *log_level;
    char *log_format;         /* --log-format: "text" (NULL too) or "json" */
    double max_frame_mib;
    double handshake_timeout;
    double heartbeat;         /* seconds between PINGs */
    double dead_after;        /* no frame for this long: the peer is gone */
    int max_connections;
    int max_unauth;
    int max_per_address;
    double auth_delay;
    int max_queue;            /* jobs queued per client before reading pauses */
    double max_output_mib;    /* results waiting for a client before it is cut off */
    int job_memory_mib;       /* each worker's virtual memory; 0 = no limit */
    int max_jobs_per_worker;  /* jobs a worker runs before it is replaced; 0 = no limit */
    int max_auth_failures;    /* per address within auth_lockout; 0 = no lockout */
    double auth_lockout;      /* seconds */
    char *worker_env;         /* comma-separated variable names the workers get too */
    double session_budget_mib; /* job bytes (inflated) one client may hold here */
    double server_budget_mib;  /* the same, all clients together */
    double module_timeout;    /* seconds a job may wait for its module */
    int max_pending_modules;  /* modules asked of one client and not yet sent */
    int max_hs_per_address;   /* connections of one address in their handshake */
    double log_rate;          /* log lines a second per kind (0 = no limit) */
    char *worker_user;        /* run the workers as this user (ppserver as root) */
    int no_tls;               /* plaintext (trusted networks only) */
    char *tls_cert, *tls_key, *tls_ca; /* certificates instead of the secret's key */
    int no_secret;            /* with certificates: no shared secret */
    char *announce;           /* --announce: where to send discovery datagrams
                                 ("" = the default broadcast); NULL = off */
    double announce_interval; /* seconds between them */
    int worker_uid, worker_gid; /* worker_user's ids, or -1 */
    char *tags;               /* --tag: comma-separated tags told to clients */
    char *metrics;            /* --metrics ADDR:PORT (Prometheus); NULL = off */
    int cache_max_mib;        /* --cache-max-mib: module cache limit; 0 = no limit */
    char *compress;           /* --compress: auto (NULL too), always or never */
} srv_cfg;

/* Defaults of the settings above (also for a srv_cfg built by hand that
 * leaves them 0, as the fuzz targets do). */
#define SRV_SESSION_BUDGET_MIB 1024
#define SRV_SERVER_BUDGET_MIB 2048
#define SRV_MODULE_TIMEOUT 60
#define SRV_MAX_PENDING_MODULES 16
#define SRV_CACHE_MAX_MIB 1024
#define SRV_MAX_HS_PER_ADDRESS 8
#define SRV_LOG_RATE 10
#define SRV_LOG_BURST_PER_RATE 20 /* a kind may write 20 s worth of lines at once */

typedef struct session session;
typedef struct server server;

/* Upper bounds (seconds) of the job run-time histogram's buckets, fixed so
 * that nodes and dashboards agree; one more bucket holds the rest. */
#define SRV_RUN_LE(X) X(0.001) X(0.005) X(0.01) X(0.05) X(0.1) X(0.5) X(1) X(5) X(10) \
    X(60) X(300) X(1800)
#define SRV_RUN_COUNT_ONE(v) +1
enum { SRV_RUN_BUCKETS = 0 SRV_RUN_LE(SRV_RUN_COUNT_ONE) };
enum { SRV_STATUSES = 16 }; /* room for every pp_status */

/* Why a connection was refused before any handshake, or failed its
 * authentication. */
typedef enum srv_refusal {
    SRV_REF_WRONG_PROOF,      /* the inner proof was wrong (wrong secret) */
    SRV_REF_TLS_KEY,          /* the TLS handshake failed on the key (wrong secret) */
    SRV_REF_LOCKOUT,          /* its address sent too many wrong secrets */
    SRV_REF_CONNECTIONS,      /* --max-connections reached */
    SRV_REF_PER_ADDRESS,      /* --max-per-address reached */
    SRV_REF_HANDSHAKES,       /* its handshake closed to make room for others */
    SRV_REFUSALS
} srv_refusal;

/* The node's counters since it started, bumped where things happen
 * (server.c, session.c), read by status_collect() (ppstat, SIGUSR1,
 * --metrics).  Loop thread only. */
typedef struct srv_stats {
    double started;           /* pp_now() at server_init() */
    uint64_t jobs[SRV_STATUSES]; /* jobs ended, by pp_status: run on a worker,
                                    or failed before (PP_ELOAD) */
    uint64_t run[SRV_RUN_BUCKETS + 1]; /* run time on a worker, per bucket */
    double run_seconds;       /* summed */
    uint64_t refused[SRV_REFUSALS];
    uint64_t handshake_errors; /* handshakes that failed but not on the secret:
                                  a timeout, a TLS or version mismatch, garbage */
    uint64_t frame_errors;    /* authenticated clients cut off for a bad frame */
    uint64_t bytes_in, bytes_out; /* of connections gone (live ones: their conn) */
    uint64_t accepted;        /* connections taken into a session */
} srv_stats;

/* A task module known to this node: stored, or asked for. */
typedef struct module {
    uint8_t hash[PP_SHA256_LEN];
    char *path;               /* its file in the cache */
    int present;              /* in the cache, its bytes verified */
    int askers;               /* sessions that asked for it and wait */
    size_t jobs;              /* jobs here that name it (queued, parked, running,
                                 or running for a client gone): in use */
    int unverified;           /* a file of an earlier run, found at start and
                                 counted; verified when a job first names it */
    uint64_t size;            /* its file's bytes, counted in cache_bytes (present) */
    double used;              /* pp_now() when a job last named it (LRU eviction) */
    struct module *next;      /* in its hash bucket */
} module;

/* A job received from a client. */
typedef struct sjob {
    pp_pool_job pj;
    server *srv;
    session *sess;            /* NULL once the session is gone */
    uint64_t id;              /* the client's id for it */
    void *block;              /* the JOB payload; pj.arg points into it */
    size_t bytes;             /* its size, charged to the budgets until freed */
    module *mod;
    char symbol[256];
    int32_t prio;             /* higher runs first among its client's queued jobs */
    int cancelled;            /* the client sent CANCEL while it was on a worker */
    struct sjob *next;        /* in a session queue */
    struct sjob *rprev, *rnext; /* in the session's list of running jobs */
} sjob;

/* A session's queued jobs of one priority, in arrival order. */
typedef struct prio_fifo {
    int32_t prio;
    sjob *head, *tail;
} prio_fifo;

/* A module a session asked for (NEED), and since when. */
typedef struct ask {
    module *mod;
    double since;
} ask;

/* A JOB frame that did not fit the budgets: held as it came (compressed,
 * if it was) until it does. */
typedef struct backlogged {
    pp_frame_hdr hdr;
    void *payload;
    struct backlogged *next;
} backlogged;

/* A client connection, one state at a time. */
typedef enum session_state {
    S_HELLO,   /* connected; waiting for HELLO (handshake deadline running) */
    S_AUTH,    /* CHALLENGE sent; waiting for PROOF */
    S_READY,   /* authenticated: jobs in, results out */
    S_CLOSING, /* refused or ending: reading stopped, the last frame goes out */
} session_state;

/* Wrong secrets from one address: counted in a window, and an address with
 * too many is refused until `until`.  A bounded table (AUTH_FAIL_SLOTS): a
 * flood of addresses evicts the oldest entries, never grows memory. */
enum { AUTH_FAIL_SLOTS = 256 };
typedef struct auth_fail {
    char addr[64];            /* "" = free */
    int count;                /* failures since `since` */
    double since;             /* start of the counting window */
    double until;             /* refused until then (0 = not refused) */
} auth_fail;

struct session {
    server *srv;
    session *next, *prev;
    pp_conn *conn;
    int fd;                   /* its socket (the conn owns it) */
    char peer[64];            /* "ip:port" */
    char addr[64];            /* "ip" */
    session_state state;
    pp_hs hs;                 /* the handshake, until S_READY */
    pp_timer timer;           /* handshake deadline, refusal delay, closing */
    uint8_t binding[PP_TLS_BINDING_LEN]; /* the TLS session's, once its handshake is done */
    int bound;                /* binding is set (TLS) */
    double last_rx, last_job;
    /* Ready to run: a FIFO per distinct priority among them, highest
     * first (none empty).  With one priority (the usual case) that is one
     * FIFO, so priorities cost nothing until they are used. */
    prio_fifo *fifos;
    int nfifos, capfifos;
    sjob *parked;             /* waiting for their module */
    sjob *running;            /* on workers */
    size_t nqueued, nparked, nrunning;
    ask *asks;                /* modules asked for with NEED, not yet here */
    int nasks;
    size_t held;              /* bytes of its jobs here (queued, parked, running) */
    backlogged *backlog, *backlog_tail; /* JOB frames waiting for the budgets */
    size_t nbacklog, backlog_bytes; /* how many, their bytes as they came */
    int paused;
    size_t out_mark;          /* output bytes at the last heartbeat */
    uint64_t acked_mark;      /* bytes the client had acknowledged then */
    int stuck_ticks;          /* heartbeats with output not draining */
    int failed_auth;
    uint64_t jobs_ok, jobs_failed; /* its jobs ended here: PP_DONE, or any other outcome */
    double connected_at;      /* pp_now() at accept */
    pp_zpolicy zp;            /* this link's compression estimates */
};

struct server {
    srv_cfg *cfg;
    pp_loop *loop;
    pp_log log;
    pp_auth_key key;
    pp_tls *tls;              /* TLS for every session; NULL with --no-tls */
    uint8_t plain_reply[128]; /* with --no-tls: the ERROR frame a TLS client gets */
    size_t plain_reply_len;
    int lfd;
    pp_io lio;
    int port;
    pp_pool *pool;
    struct worker_output *output; /* what the workers print, into the log (output.h) */
    pp_shm_cache *shm;        /* large arguments and results, shared with the workers */
    session *sessions;
    session *rr;              /* where the next dispatch round starts */
    int nsessions, nunauth;
    module **mtab;            /* the module table: buckets of chained entries */
    size_t mbuckets, nmodules;
    uint64_t mkey[2];         /* its hash key: random, so no chosen collisions */
    int module_group;         /* gid the cache is shared with (--worker-user), or -1 */
    size_t session_budget, server_budget; /* bytes */
    size_t held;              /* bytes of every client's jobs here */
    size_t backlog_bytes;     /* of every client's backlog */
    size_t freed;             /* job bytes freed since the heap was last trimmed */
    double trimmed_at;
    pp_log_limit log_limit;
    uint32_t max_frame;
    pp_timer tick;
    volatile sig_atomic_t *stop;
    volatile sig_atomic_t *reload;  /* SIGHUP: re-read the worker count */
    volatile sig_atomic_t *dump;    /* SIGUSR1: log the status (status.c) */
    int (*reload_workers)(server *srv); /* the new count, or -1 */
    int stopping;
    pp_timer idle_timer;      /* --idle-exit's deadline */
    double client_seen;       /* when a client was last connected (or the start) */
    uint64_t jobs_done;
    auth_fail fails[AUTH_FAIL_SLOTS];
    uint8_t tags_msg[PP_TAGS_PAYLOAD_MAX]; /* TAGS' payload for each client */
    size_t tags_len;          /* 0: no tags, no TAGS frame */
    char tags_text[PP_TAGS_TEXT_MAX]; /* "gpu,avx512", for the log */
    srv_stats stats;          /* counters for --metrics (and the status) */
    uint64_t cache_bytes, cache_evictions; /* the module cache now, evicted since the start */
    uint64_t cache_max;       /* bytes the cache may hold (0 = no limit) */
    int cache_over_logged;    /* "over the limit, all in use" was logged */
};

#endif
