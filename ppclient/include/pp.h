/* SPDX-License-Identifier: MIT */
/* pp.h -- libpp, a cluster job server for C in the style of Parallel Python.
 *
 * A program creates a pp_server, submits jobs (a task function from a shared
 * library plus argument bytes) and collects results.  Jobs run in worker
 * processes on the local cores and on remote `ppserver` nodes.
 *
 * Threads: every function here may be called from any thread unless its
 * comment says otherwise.  Callbacks run on a library thread.
 * fork(): a server belongs to the process that made it.  In a child forked
 * after pp_server_new() (which has none of the server's threads), every
 * call on that server, its jobs' waits and cancels and its maps' waits
 * fails at once (pp_last_error(): "... forked from ...") instead of
 * waiting for ever, and pp_server_free() does nothing (the child's copy
 * goes with the child; the parent's jobs and workers are untouched).
 * Jobs already ended stay readable there.  A child that wants jobs makes a
 * server of its own.
 * Errors: functions returning a pointer return NULL on failure, functions
 * returning int return -1; pp_last_error() then gives the calling thread's
 * message, which begins with the failing function's name ("pp_submit: ..."):
 * print it as it is.  Job outcomes are pp_status values, never -1.
 */
#ifndef PP_H
#define PP_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define PP_API __attribute__((visibility("default")))
#define PP_API_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define PP_API
#define PP_API_PRINTF(f, a)
#endif

#define PP_VERSION_MAJOR 0
#define PP_VERSION_MINOR 1
#define PP_VERSION_PATCH 0

/* Number of local workers = the CPUs this process may run on. */
#define PP_AUTODETECT (-1)
/* Most local workers (pp_config.ncpus, pp_set_ncpus()), as ppserver -w. */
#define PP_WORKERS_MAX 4096
/* Default TCP port of ppserver. */
#define PP_DEFAULT_PORT 60000
/* Slots of pp_stats.by_status: room for every pp_status, present and to
 * come. */
#define PP_STATS_STATUSES 16
/* Upper bounds (seconds) of pp_stats.run_hist's buckets, as those of
 * ppserver's ppserver_job_run_seconds histogram (an array initializer:
 * `static const double le[] = {PP_STATS_RUN_LE};`); one bucket more holds
 * the longer runs. */
#define PP_STATS_RUN_LE 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 1800
#define PP_STATS_RUN_BUCKETS 13

/* Job outcomes.  The numbers are pinned: they travel on the wire. */
#define PP_STATUS_LIST(X)                                                    \
    X(PP_PENDING, 0, "pending")                                              \
    X(PP_DONE, 1, "done")                                                    \
    X(PP_FAILED, 2, "failed (the task returned non-zero)")                   \
    X(PP_CRASHED, 3, "crashed (the worker died)")                            \
    X(PP_TIMEOUT, 4, "timed out")                                            \
    X(PP_LOST, 5, "lost (its nodes failed more often than the attempt cap)") \
    X(PP_CANCELLED, 6, "cancelled")                                          \
    X(PP_ELOAD, 7, "the task module could not be loaded")

typedef enum pp_status {
#define PP_STATUS_ENUM(name, num, text) name = num,
    PP_STATUS_LIST(PP_STATUS_ENUM)
#undef PP_STATUS_ENUM
} pp_status;

/* Node states, as reported by pp_get_active_nodes(). */
typedef enum pp_node_state {
    PP_NODE_UP = 0,
    PP_NODE_CONNECTING = 1,
    PP_NODE_DOWN = 2,
    PP_NODE_AUTH_FAILED = 3,
    PP_NODE_DRAINING = 4,           /* removed: no new jobs, its jobs in flight
                                       finish, then it disconnects */
    PP_NODE_REMOVED = 5,            /* removed and disconnected (its line stays
                                       for the statistics) */
    PP_NODE_DORMANT = 6             /* idle, its connection closed to save
                                       memory (pp_config.max_idle_nodes); it
                                       still counts as capacity and reconnects
                                       as soon as jobs could go to it */
} pp_node_state;

typedef struct pp_server pp_server;
typedef struct pp_job pp_job;
typedef struct pp_buf pp_buf;

/* A task runs in a worker process.  It reads `len` argument bytes at `arg`,
 * appends its result to `out` and returns 0; on failure it returns non-zero
 * and `out` carries the error text.  It must be an exported function of a
 * shared library (a "task module"), never of the program itself. */
typedef int (*pp_task)(const void *arg, size_t len, pp_buf *out);

/* Called exactly once per job when it finishes, whatever its status, on a
 * library thread (with the signal mask of the thread that called
 * pp_server_new(), which the processes it starts inherit).  `j` stays
 * valid during the call even if the caller already freed it.  The
 * callback may call any function of this header: submit
 * (never held by max_pending), cancel, free any handle (its own included),
 * maps, templates, statistics, nodes, pp_server_free() of its server (run
 * when it returns) or of another (at once: it waits for that server's
 * callbacks, so two servers whose callbacks free each other deadlock).
 * What would wait for itself is refused with -1 or NULL and a message:
 * pp_wait(), pp_wait_for(), pp_next_done() with a timeout, a map's waits
 * for pending items; pp_job_wait() on a job of the server waits for that
 * job only (a status is final before its callback runs).  It should not
 * block long: the callbacks of one server run one at a time, and
 * pp_server_free() waits for the one running (the jobs go on meanwhile). */
typedef void (*pp_callback)(pp_job *j, void *arg);

typedef struct pp_config {
    int ncpus;                      /* local workers; PP_AUTODETECT; 0 = remote only;
                                       at most PP_WORKERS_MAX */
    const char *const *ppservers;   /* NULL-terminated list of nodes, or NULL:
                                       $PP_SERVERS (comma-separated), then none.
                                       An entry is "host[:port]" (a name that
                                       resolves to several addresses is one node
                                       per address, looked up again every
                                       resolve_interval) or "@FILE": a nodes file,
                                       one host[:port] a line, '#' comments,
                                       re-read when it changes (nodes added join,
                                       nodes gone drain), or "*" / "*:PORT"
                                       / "*GROUP[:PORT]": the nodes that
                                       announce themselves with our secret
                                       (ppserver --announce; UDP port 60001) */
    const char *secret;             /* NULL: $PP_SECRET, then none */
    const char *worker_path;        /* NULL: $PP_WORKER, then found beside libpp */
    const char *log_level;          /* "error", "warn" (default), "info", "debug";
                                       NULL: $PP_LOG, then "warn" */
    double heartbeat;               /* a node running jobs gets a PING after this
                                       many seconds of silence (no frame), one
                                       holding none after 5 times that; 0 = 1 */
    double node_timeout;            /* a node running jobs and silent this long is
                                       dead (one holding none: this plus 5
                                       heartbeats); 0 = 5 */
    int max_attempts;               /* node failures a job survives; 0 = 3 */
    int job_memory_mib;             /* virtual memory of each local worker, its
                                       task included (RLIMIT_AS): a task that
                                       allocates more sees malloc() fail;
                                       0 = no limit, else at least 64 */
    const char *secret_file;        /* read the secret from this file, checked as
                                       ppserver --secret-file checks it (a regular
                                       file neither group nor others may read, at
                                       most 4 KiB, trailing newlines dropped);
                                       used when `secret` is NULL; NULL:
                                       $PP_SECRET, then $PP_SECRET_FILE */
    double no_node_timeout;         /* seconds a job may wait while no local worker
                                       and no node is up to run it; then it ends
                                       PP_LOST saying why.  0 = wait for ever.
                                       Jobs waiting only for nodes that refused
                                       our secret end PP_LOST at once, whatever
                                       this says: that lasts until the secret
                                       changes. */
    const char *const *worker_env;  /* NULL-terminated names of environment
                                       variables local workers also get (they
                                       see only PATH, HOME, TMPDIR, ... else),
                                       e.g. {"LD_PRELOAD", NULL} for a task
                                       module built with -fsanitize=address */
    int no_tls;                     /* 1: plaintext to the nodes, for a trusted
                                       network where the CPU matters (the nodes
                                       run with --no-tls too; a mismatch is
                                       refused, never a silent downgrade).
                                       0 (default): TLS 1.3 keyed by the secret */
    const char *tls_cert;           /* PEM files: certificates (mutual) instead of
                                       the secret's key for TLS, for sites with a
                                       PKI; the secret is still required and */
    const char *tls_key;            /*   proven inside, unless no_secret */
    const char *tls_ca;
    int no_secret;                  /* with certificates only: no shared secret
                                       (the nodes run with --no-secret) */
    int max_pending;                /* at most this many jobs pending (submitted,
                                       not yet finished and called back): beyond
                                       it pp_submit() waits, or fails at once with
                                       pp_submit_opts.nowait.  Keeps a program
                                       that submits millions of jobs within
                                       bounded memory.  A submit from a callback
                                       never waits (it may go over the bound:
                                       waiting there could wait for itself).
                                       0 = unlimited */
    int worker_max_jobs;            /* a local worker is replaced after this many
                                       jobs, between jobs (for tasks that leak);
                                       0 = never */
    double resolve_interval;        /* seconds between lookups of the nodes' names
                                       (addresses that appear join, those gone
                                       drain); 0 = 30 */
    double discover_timeout;        /* with "*" in the list (discovery): a found
                                       node that has not announced itself this
                                       long drains; 0 = 3 of its intervals */
    const char *local_tags;         /* the local workers' tags, comma-separated
                                       ("gpu,avx512"), as ppserver --tag gives a
                                       node's: jobs that need tags run locally
                                       only when these hold them all.  A tag is
                                       1 to 32 of A-Z a-z 0-9 _ . - , at most 32
                                       tags.  NULL or "" = none */
    int compress;                   /* large job payloads to the nodes: 0
                                       (default) = compressed only when the
                                       measured link is slower than the
                                       compressor on this data; 1 = always when
                                       a sample shrinks; -1 = never.  Modules
                                       are always compressed */
    int max_idle_nodes;             /* open connections kept to nodes holding
                                       none of our jobs: beyond it, a node idle
                                       for 10 heartbeats has its connection
                                       closed (longest idle first) and shows
                                       PP_NODE_DORMANT until jobs could go to
                                       it; 0 = 64, -1 = never close */
} pp_config;

typedef struct pp_submit_opts {
    const char *group;              /* NULL: the default group; copied */
    pp_callback callback;           /* NULL: none */
    void *callback_arg;
    double timeout;                 /* seconds of run time; 0 = none */
    int priority;                   /* higher runs first; equal priorities run in
                                       submission order.  Default 0; negative
                                       values run after the default */
    int retries;                    /* times a job that ended PP_FAILED,
                                       PP_CRASHED or PP_TIMEOUT runs again
                                       (elsewhere when another node or the local
                                       pool is up) before that status is final;
                                       0 = none.  Node failures have their own
                                       cap (pp_config.max_attempts) */
    int nowait;                     /* with pp_config.max_pending: return NULL
                                       ("... jobs pending") instead of waiting */
    const char *tags;               /* comma-separated tags ("gpu,avx512") a
                                       backend must all have to run the job: a
                                       node started with ppserver --tag, or the
                                       local workers with pp_config.local_tags.
                                       The job waits while none that is up has
                                       them (logged once; with no_node_timeout
                                       it then ends PP_LOST).  NULL or "" = runs
                                       anywhere; copied */
} pp_submit_opts;

typedef struct pp_node_info {
    const char *name;               /* "local" or "host:port"; valid until
                                       pp_server_free() */
    int ncpus;                      /* workers (CPUs) the node offers */
    int state;                      /* pp_node_state; "local" is PP_NODE_DOWN
                                       while it has no worker */
    uint64_t jobs;                  /* jobs finished there */
    double busy_seconds;            /* task run time summed over those jobs */
    uint64_t connects;              /* connection attempts to it so far (0 for
                                       "local"): steady growth means it keeps
                                       failing; retries back off to every 2 s */
    char why[256];                  /* why it is not up (or went down last), e.g.
                                       "the node speaks plaintext ..."; "" if
                                       nothing went wrong */
    const char *tags;               /* its tags, "gpu,avx512" (sorted); "" when
                                       none or not known yet (a node that was
                                       never up); valid until pp_server_free() */
    /* Connection counters (0 for "local"), as ppserver's metrics count
     * them from its side. */
    uint64_t bytes_in, bytes_out;   /* bytes received from it and sent to it
                                       (frames as they cross TCP: compressed
                                       payloads as sent, TLS overhead not
                                       counted), over all its connections */
    uint64_t auth_failures;         /* handshakes it refused (secrets differ) */
    uint64_t handshake_errors;      /* other handshakes that failed (timeout,
                                       no common version, plaintext/TLS) */
    uint64_t drops;                 /* connections lost while it was up */
    uint64_t frame_errors;          /* frames it sent that broke the protocol
                                       (the connection was then dropped) */
    uint64_t requeued;              /* jobs queued again when it was lost */
} pp_node_info;

typedef struct pp_stats {
    uint64_t submitted;             /* jobs accepted by pp_submit() */
    uint64_t pending;               /* queued or running now */
    uint64_t done;                  /* ended PP_DONE */
    uint64_t failed;                /* ended in any other status */
    double busy_seconds;            /* task run time summed over all nodes */
    double wall_seconds;            /* time since pp_server_new() */
    int nodes;                      /* nodes, "local" included */
    uint64_t cancelled;             /* of `failed`: ended PP_CANCELLED */
    uint64_t retried;               /* runs retried (pp_submit_opts.retries) */
    /* Discovery ("*"): announcements taken, and those ignored by why. */
    uint64_t announce_taken;        /* verified, fresh, new */
    uint64_t announce_bad;          /* not an announcement (length, a field) */
    uint64_t announce_wrong_key;    /* MAC wrong: another secret, or forged */
    uint64_t announce_stale;        /* timestamp over 5 s from our clock */
    uint64_t announce_replayed;     /* nonce seen before */
    /* Added with the metrics: the same counters as ppserver's /metrics,
     * from the client's side. */
    uint64_t by_status[PP_STATS_STATUSES]; /* jobs ended, by pp_status: e.g.
                                       by_status[PP_CRASHED]; [PP_PENDING] = 0 */
    uint64_t bytes_in, bytes_out;   /* all nodes' pp_node_info counters, summed */
    uint64_t auth_failures;
    uint64_t handshake_errors;
    uint64_t drops;
    uint64_t frame_errors;
    uint64_t requeued;
    uint64_t run_hist[PP_STATS_RUN_BUCKETS]; /* jobs that ran (not cancelled),
                                       by task run time: run_hist[i] those
                                       up to PP_STATS_RUN_LE's i-th bound and
                                       above the one before (not cumulative);
                                       the last, those above 1800 s */
} pp_stats;

/* ---- servers ---------------------------------------------------------- */

/* Creates a job server and starts its local workers.  `cfg` NULL = defaults
 * (autodetected local workers, no remote nodes).  Returns NULL on failure
 * (no ppworker found, bad ncpus, ...).  Free with pp_server_free(). */
PP_API pp_server *pp_server_new(const pp_config *cfg);

/* Ends workers and connections.  Jobs not finished end PP_CANCELLED (their
 * callbacks run), no worker process or FIFO is left behind.  Jobs the caller
 * still holds stay readable until pp_job_free().  NULL is a no-op.  Called
 * from a callback, the teardown runs when that callback returns; called
 * from a callback that the teardown itself runs (a job it cancelled), it
 * does nothing; the program's own call while the callback that asked still
 * runs takes that request up (one teardown).  Once such a callback has
 * returned, the server may be gone: where callbacks free the server, the
 * program does not.  It waits for a callback running meanwhile to return.
 * Threads blocked in pp_wait(), pp_wait_for(), pp_job_wait(),
 * pp_next_done() or in a pp_submit() held by max_pending return (0, the
 * job's PP_CANCELLED, a job or NULL, NULL saying the server shuts down)
 * before it frees anything.  Any other call on the server that overlaps
 * it or comes after it is a use after free that nothing can catch: stop
 * (or join) the threads that use the server first.  Call it once. */
PP_API void pp_server_free(pp_server *s);

/* Local workers wanted (the pool converges to it), or -1 if s is NULL. */
PP_API int pp_get_ncpus(pp_server *s);

/* Grows or shrinks the local pool at run time; PP_AUTODETECT = the CPUs this
 * process may run on.  Workers being removed finish the jobs they hold.
 * Returns 0, or -1 on a bad argument (below PP_AUTODETECT, above
 * PP_WORKERS_MAX). */
PP_API int pp_set_ncpus(pp_server *s, int ncpus);

/* Adds a node at run time: "host[:port]" (default port 60000), as in
 * pp_config.ppservers ("@FILE" adds a nodes file, "*" turns discovery
 * on).  It joins within the scheduler's next turn and connects like the
 * others; the server needs the shared secret (pp_config or the
 * environment) from its start.  A removed or draining node is taken back
 * into service.  Returns 0, or -1 with pp_last_error() (a bad name,
 * already a node, no secret).  Any thread. */
PP_API int pp_add_node(pp_server *s, const char *node);

/* Removes a node as named when added ("host[:port]", "@FILE" for every node
 * of that file): it drains (no new jobs; its jobs in flight finish and are
 * delivered), then disconnects and shows PP_NODE_REMOVED.  Returns 0, or
 * -1 with pp_last_error() (no such node).  Any thread. */
PP_API int pp_remove_node(pp_server *s, const char *node);

/* ---- jobs --------------------------------------------------------------- */

/* Submits `task(arg, len)`.  The argument bytes are copied; the caller may
 * reuse its buffer at once.  `opts` NULL = defaults.  Returns a job the
 * caller owns (pp_job_free()), or NULL if the job cannot be submitted: the
 * task is not in a shared library, the server is shutting down, or an
 * argument is invalid. */
PP_API pp_job *pp_submit(pp_server *s, pp_task task, const void *arg, size_t len,
                         const pp_submit_opts *opts);

/* Waits for the job; returns its result bytes (valid until pp_job_free();
 * aligned for any type, as malloc's; the library keeps a NUL byte after them,
 * so text results are C strings) and
 * stores their length in *len (if len is not NULL).  NULL when the job did
 * not end PP_DONE: see pp_job_wait() and pp_job_error(). */
PP_API const void *pp_job_result(pp_job *j, size_t *len);

/* Waits for the job and returns its pp_status (-1 if j is NULL, or in a
 * forked child while it is pending). */
PP_API int pp_job_wait(pp_job *j);

/* Like pp_job_wait() but gives up after `seconds`; returns PP_PENDING then.
 * More seconds than any clock holds (INFINITY, 1e300) wait without limit;
 * so do pp_wait_for(), pp_next_done() and pp_map_next(). */
PP_API int pp_job_wait_for(pp_job *j, double seconds);

/* The job's status now, without waiting (-1 if j is NULL). */
PP_API int pp_job_status(const pp_job *j);

/* Why the job did not succeed ("worker killed by signal 11 (SIGSEGV)", the
 * task's error text, ...); "" while pending or after success.  Valid until
 * pp_job_free().  Does not wait. */
PP_API const char *pp_job_error(const pp_job *j);

/* The node that ran the job ("local", "host:port"), or "" if none did yet.
 * Valid until pp_job_free(), even after pp_server_free(). */
PP_API const char *pp_job_node(const pp_job *j);

/* Releases the caller's handle: call it once per job returned by a submit
 * function, from any thread, callbacks included (the job stays valid until
 * the callback returns).  A pending job still runs (and its callback still
 * fires); its result is then discarded.  Freeing a handle twice is a bug:
 * while the library still holds the job (it is pending, or its callback
 * has not returned) the second call is refused with a message on stderr
 * and changes nothing; later it is a use after free.  So is any other use
 * of a freed handle (pp_job_wait(), pp_job_cancel() ...), which no library
 * can tell from a live one: a thread must not free a handle another
 * thread may still use.  NULL is a no-op. */
PP_API void pp_job_free(pp_job *j);

/* Waits until every job of `group` (NULL = every job) has finished and its
 * callback returned.  Returns 0, or -1 if s is NULL or it is called from a
 * callback. */
PP_API int pp_wait(pp_server *s, const char *group);

/* pp_wait() for at most `seconds` (>= 0).  Returns 0 when every job of the
 * group has finished, 1 when time ran out first (pp_last_error() says how
 * many are left), -1 on a bad argument or from a callback. */
PP_API int pp_wait_for(pp_server *s, const char *group, double seconds);

/* ---- large data without copies ------------------------------------------
 *
 * Arguments and results of at least PP_SHM_MIN bytes travel between the
 * program and its local workers (and between a node and its workers) in
 * shared memory: the worker's task reads the argument where it lies and
 * appends its result into memory the program then reads in place, through
 * pp_job_result(), until pp_job_free().  Smaller ones go through the
 * workers' pipes.  pp_submit() copies its argument once, into shared
 * memory; the calls below avoid even that copy, and let many jobs share
 * one argument (model weights, a matrix, an image). */
#define PP_SHM_MIN (64 * 1024)

/* A buffer of len bytes (1 .. 1 GiB - 4) in shared memory, page-aligned,
 * its contents undefined: fill it and give it (or any part of it) to
 * pp_submit_shm() as often as needed.  Buffers freed earlier are reused,
 * their pages already in memory.  Free with pp_shm_free(); those left
 * are unmapped by pp_server_free() (the pointer is then invalid).  NULL
 * on failure (pp_last_error()). */
PP_API void *pp_shm_alloc(pp_server *s, size_t len);

/* pp_submit() without the copy: arg .. arg + len must lie inside one buffer
 * of pp_shm_alloc() of this server.  The job reads those bytes where they
 * are, locally and when it is sent to a node: do not change them until the
 * job has ended (pp_job_wait() returned or its callback ran).  The buffer
 * may be freed at once: the job keeps it until it ends. */
PP_API pp_job *pp_submit_shm(pp_server *s, pp_task task, const void *arg, size_t len,
                             const pp_submit_opts *opts);

/* Releases a buffer of pp_shm_alloc() (its start, as returned).  Jobs still
 * using it keep it until they end.  NULL is a no-op; -1 with
 * pp_last_error() when buf is not such a buffer, else 0. */
PP_API int pp_shm_free(pp_server *s, void *buf);

/* ---- control -------------------------------------------------------------- */

/* Cancels the job: returns 0 when it had not ended and now ends
 * PP_CANCELLED (at once: its status changes before this returns, its
 * callback runs exactly once), 1 when it had already ended (nothing
 * changes; also after pp_server_free()), -1 if j is NULL (or in a forked
 * child while it is pending).  A queued job is dropped; one running on a
 * local worker has the worker's process group killed and the worker
 * replaced; one running on a node is cancelled there (the node replaces
 * that worker; other clients' jobs are untouched) and a result arriving
 * later is dropped.  A cancelled job is never retried or sent again. */
PP_API int pp_job_cancel(pp_job *j);

/* pp_job_cancel() on every pending job of `group` (NULL = every job);
 * returns how many it cancelled, or -1 if s is NULL. */
PP_API int pp_cancel_group(pp_server *s, const char *group);

/* The next job of `group` (NULL = any group) to finish, in the order they
 * finish (a job with a callback once the callback returned), each returned
 * once, to one caller.  Waits up to `timeout` seconds (< 0 = no limit, 0 =
 * do not wait).  Jobs whose handle was already freed are never returned;
 * the job returned is still the caller's to free.  NULL when every job of
 * the group has been returned ("pp_next_done: no job left"), when the
 * time ran out ("pp_next_done: none finished within ..."), or from a
 * callback with timeout != 0: see pp_last_error(). */
PP_API pp_job *pp_next_done(pp_server *s, const char *group, double timeout);

/* ---- map ------------------------------------------------------------------
 * One task over an array of arguments.  Items are packed into batch jobs
 * (many items per job; the worker runs the task once per item, exactly as
 * pp_submit() would run it on that argument), so that a map over a million
 * 8-byte items runs at the rate of tiny jobs or better.  Each item has its
 * own outcome: PP_DONE with its result, PP_FAILED with the task's error
 * text.  A batch whose worker crashed or timed out, or that failed as a
 * whole (its results together over the frame limit), is run again item by
 * item, so that only the item at fault fails (PP_CRASHED, PP_TIMEOUT,
 * PP_FAILED); a batch lost, cancelled or whose module cannot load gives
 * every item its status and text ("cancelled" for a cancelled one).
 *
 * Batching (pp_map_opts.batch 0): about 8 jobs per CPU (local workers and
 * the nodes' CPUs when the map is made, so that every CPU gets several),
 * each of at most 1024 items and 1 MiB of arguments; an item of 64 KiB or
 * more is a job of its own.  With pp_map_opts.batch = k, k items a job
 * (at most 65536, and 256 MiB of arguments); 1 = one job per item.
 * The jobs count in pp_get_stats() and pp_wait() as jobs (not items), in
 * the map's group.  With pp_config.max_pending, pp_map_new() waits for
 * room as pp_submit() does.
 *
 * Memory: the items are copied into the jobs (the map keeps no other
 * copy); per item the map keeps about 13 bytes, plus its result, copied
 * out of its batch's into one block per batch, 16-byte aligned.
 *
 * Threads: any thread may call any function on a map, pp_map_free() once.
 * On the callback thread (where the map's own jobs are called back) a
 * call that would wait for an item refuses instead (-1, "it would wait
 * for itself"). */

typedef struct pp_map pp_map;

typedef struct pp_map_opts {
    const char *group;              /* the batch jobs' group (pp_wait,
                                       pp_cancel_group); NULL: the default */
    int priority;                   /* as pp_submit_opts */
    int retries;                    /* per item: times an item that ended
                                       PP_FAILED, PP_CRASHED or PP_TIMEOUT runs
                                       again, in a job of its own, before that
                                       is final (its text then says how many
                                       of those runs failed).  A batch is never
                                       retried whole; running a failed batch's
                                       items again alone is not a retry */
    double timeout;                 /* seconds of run time per item; 0 = none.
                                       A batch of k items has k times as
                                       long; the item that overran then
                                       ends PP_TIMEOUT alone */
    size_t batch;                   /* items per job; 0 = chosen from the item
                                       count, the CPUs and the item sizes */
    const char *tags;               /* as pp_submit_opts.tags, for every job of
                                       the map (batch size 0 then counts only
                                       the CPUs having them); NULL or "" = runs
                                       anywhere; copied */
} pp_map_opts;

/* Maps `task` over `n` items of `item_size` bytes each, at `items`
 * (contiguous, e.g. an array of structs), copied: the caller may reuse the
 * array at once.  n may be 0 (a map with nothing to do).  Returns once
 * every job is submitted; the items run meanwhile.  NULL on failure
 * (pp_last_error(); nothing is left running).  Free with pp_map_free(). */
PP_API pp_map *pp_map_new(pp_server *s, pp_task task, const void *items, size_t item_size,
                          size_t n, const pp_map_opts *opts);

/* The same over `n` arguments of different lengths: args[i], lens[i]
 * (args[i] may be NULL when lens[i] is 0). */
PP_API pp_map *pp_map_newv(pp_server *s, pp_task task, const void *const *args,
                           const size_t *lens, size_t n, const pp_map_opts *opts);

/* Waits for item i and returns its pp_status; *data and *len (either may
 * be NULL) get its result (PP_DONE) or its error text, valid until
 * pp_map_free(), aligned as pp_job_result()'s and NUL-terminated.  -1 on a
 * bad argument, or on the callback thread while item i is pending (*data
 * NULL, *len 0 then). */
PP_API int pp_map_result(pp_map *m, size_t i, const void **data, size_t *len);

/* The next item to finish, in completion order, each once (to one caller,
 * whichever thread asks): 1 and its index in *i (its result is then there:
 * pp_map_result() does not wait); 0 when every item has been returned;
 * -1 when `timeout` seconds passed first (0 = do not wait, < 0 = no limit),
 * on a bad argument, or on the callback thread with timeout != 0
 * (pp_last_error() says which). */
PP_API int pp_map_next(pp_map *m, double timeout, size_t *i);

/* Waits for every item; returns how many did not end PP_DONE, or -1 (NULL,
 * or called from a callback while items are pending). */
PP_API long pp_map_wait(pp_map *m);

/* Cancels the items not finished yet (they end PP_CANCELLED; their jobs
 * are dropped, or stopped where they run: a batch's results come back
 * whole, so all the items of a batch still running are cancelled); items
 * finished keep their results.  Returns how many items it cancelled (0
 * once nothing is left), or -1 if m is NULL. */
PP_API long pp_map_cancel(pp_map *m);

/* Items finished so far, and in all.  Do not wait; 0 if m is NULL. */
PP_API size_t pp_map_done(const pp_map *m);
PP_API size_t pp_map_size(const pp_map *m);

/* Cancels what is left, waits for its jobs' callbacks (promptly: cancelled
 * jobs are called back at once), and frees the map and its results.  From
 * a callback it returns at once, and the map is freed after the callback
 * of its last job.  A map may outlive its server: pp_server_free() ends
 * its items PP_CANCELLED, and the map stays readable until pp_map_free().
 * NULL is a no-op. */
PP_API void pp_map_free(pp_map *m);

/* ---- templates (Parallel Python's pp.Template) -------------------------- */

typedef struct pp_template pp_template;

/* A task with its submit options, to submit many times: the task is
 * resolved once, and `opts` (NULL = defaults; the group name is copied) is
 * used for every job.  NULL on failure (pp_last_error()).  Free it with
 * pp_template_free() before the server. */
PP_API pp_template *pp_template_new(pp_server *s, pp_task task, const pp_submit_opts *opts);

/* pp_submit() and pp_submitf() through the template. */
PP_API pp_job *pp_template_submit(pp_template *t, const void *arg, size_t len);
PP_API pp_job *pp_template_submitf(pp_template *t, const char *fmt, ...);

/* NULL is a no-op.  Jobs submitted through it are not affected. */
PP_API void pp_template_free(pp_template *t);

/* ---- nodes and statistics ---------------------------------------------- */

/* Fills up to `max` entries of `out` (may be NULL when max is 0) and returns
 * how many nodes there are ("local" first), or -1 if s is NULL. */
PP_API int pp_get_active_nodes(pp_server *s, pp_node_info *out, int max);

/* Fills *out with totals; returns 0, or -1 on a NULL argument. */
PP_API int pp_get_stats(pp_server *s, pp_stats *out);

/* Prints pp's statistics table: per node its CPUs, jobs, share of all jobs,
 * busy time and time per job, then the wall time since pp_server_new(). */
PP_API void pp_print_stats(pp_server *s, FILE *fp);

/* Writes the statistics as one JSON object (UTF-8, then a newline), for
 * scripts and dashboards: {"version", "wall_seconds", "busy_seconds",
 * "jobs": {"submitted", "pending", "done", "failed", "cancelled",
 * "retried", "requeued", "by_status": {"done": N, "failed": N, "crashed":
 * N, "timeout": N, "lost": N, "cancelled": N, "eload": N}},
 * "run_seconds_histogram": {"le": [PP_STATS_RUN_LE], "counts": [run_hist]},
 * "bytes_in", "bytes_out", "auth_failures", "handshake_errors", "drops",
 * "frame_errors", "announcements": {...}, "nodes": [{"name", "state",
 * "ncpus", "jobs", "busy_seconds", "connects", "bytes_in", "bytes_out",
 * "auth_failures", "handshake_errors", "drops", "frame_errors",
 * "requeued", "tags", "why"}, ...]}.  Strings are escaped as JSON
 * requires.  Any thread.  Returns 0, or -1 (NULL argument, or the write
 * failed: pp_last_error() says which). */
PP_API int pp_write_stats_json(pp_server *s, FILE *fp);

/* ---- errors -------------------------------------------------------------- */

/* The name of a pp_status ("done", "crashed (the worker died)", ...). */
PP_API const char *pp_strerror(int status);

/* The calling thread's message for its last failed call (thread-local;
 * valid until that thread's next failing call).  It begins with the name of
 * the function that failed, e.g. "pp_server_new: no secret ...". */
PP_API const char *pp_last_error(void);

/* The library's version, "MAJOR.MINOR.PATCH". */
PP_API const char *pp_version(void);

/* ---- result buffers (used by tasks) ----------------------------------- */

/* Appends n bytes to a task's output.  Returns 0, or -1 when the result
 * would exceed the frame limit (the task should then fail).  8 MiB or more
 * are copied on up to 4 of the process's CPUs, by threads that block every
 * signal and are joined before it returns. */
PP_API int pp_buf_append(pp_buf *b, const void *data, size_t n);

/* Appends formatted text (without its NUL).  Returns 0 or -1, as above. */
PP_API int pp_buf_printf(pp_buf *b, const char *fmt, ...) PP_API_PRINTF(2, 3);

/* ---- typed values -------------------------------------------------------
 * A tuple of typed values, encoded with their type tags, as a task's
 * argument or result.  Two ways to give the values:
 *
 *  - The v-forms, pp_packv(), pp_submitv(), pp_unpackv(), pp_job_unpackv()
 *    (C11, C only; below): the C type of each argument picks its letter at
 *    compile time, so there is no format string to get wrong, and a type
 *    they cannot take (int *, float *, ...) does not compile.  Prefer them.
 *  - The format functions, pp_pack(), pp_unpack(), pp_submitf(),
 *    pp_job_unpack() (C and C++): a string of letters says what the
 *    arguments passed through `...` are.
 *
 * Letters:
 *   'l'  long     (pack: long;          unpack: long *)
 *   'd'  double   (pack: double;        unpack: double *)
 *   's'  string   (pack: const char *;  unpack: const char ** pointing into
 *                  the encoded bytes, NUL-terminated)
 *   'b'  bytes    (pack: const void *, size_t; unpack: const void **,
 *                  size_t *, pointing into the encoded bytes)
 *   'n'  nil      (no argument, either side)
 *   'L'  array of long    (pack: const long *, size_t count;
 *                  unpack: long **, size_t *: a copy malloc'd for the
 *                  caller, who free()s it; NULL when the count is 0)
 *   'D'  array of double  (pack: const double *, size_t count;
 *                  unpack: double **, size_t *, the same way)
 * Any unpack pointer may be NULL: that value is checked but not stored.
 *
 * What is checked: unpacking checks every tag, count, length and
 * terminator against the data before it stores anything; bytes that do
 * not hold the values asked for are an error with a message.  On failure
 * nothing is stored, except that the array outputs are set to NULL and 0:
 * everything allocated is freed, nothing is left to free.  Data that
 * changes while it is read (a result in shared memory that a thread of its
 * task still writes) never makes it read or write out of bounds: it is
 * an error then, and other outputs may have been stored.
 *
 * What the format functions cannot check: the C types of the arguments
 * passed through `...`.  Nothing (not -Wall -Wextra) warns when they do not
 * match the letters, and the result is garbage or memory overwritten: an
 * int where 'l' wants a long (-1 arrives as 4294967295: write -1L), an int
 * where 'd' wants a double (2 arrives as 0.0: write 2.0), a size_t for 'l',
 * an int * where 'l' wants a long * (8 bytes written into 4).  The v-forms
 * convert or refuse each of these at compile time. */

/* Appends the values to b.  Returns 0, or -1 on a bad format, a NULL
 * string or array, or when the buffer's limit is reached (pp_last_error()
 * says which); b is then left as it was. */
PP_API int pp_pack(pp_buf *b, const char *fmt, ...);
PP_API int pp_vpack(pp_buf *b, const char *fmt, va_list ap);

/* Decodes `len` bytes at `data` into the pointers.  Returns 0, or -1 when
 * the bytes do not hold exactly `fmt` (pp_last_error() says where; see
 * above for what is stored then). */
PP_API int pp_unpack(const void *data, size_t len, const char *fmt, ...);
PP_API int pp_vunpack(const void *data, size_t len, const char *fmt, va_list ap);

/* pp_submit() with the argument given as packed values.  NULL when the
 * values cannot be packed (pp_pack()'s message) or the job cannot be
 * submitted. */
PP_API pp_job *pp_submitf(pp_server *s, pp_task task, const pp_submit_opts *opts,
                          const char *fmt, ...);

/* Waits for the job and unpacks its result.  Returns 0, or -1 when the job
 * did not end PP_DONE or its result does not match `fmt` (pp_last_error()
 * says which; the array outputs are then NULL and 0 either way).  Strings
 * and bytes point into the job's result (valid until pp_job_free()). */
PP_API int pp_job_unpack(pp_job *j, const char *fmt, ...);

/* What `len` bytes at `data` hold: writes the letter of each value, in
 * order, and a NUL into out (outlen bytes), e.g. "lns", so that a task can
 * branch on what it got.  Returns the number of values, or -1 when the
 * data is malformed or out is too small for the letters and the NUL
 * (pp_last_error() says which; out is then "" if outlen > 0). */
PP_API int pp_unpack_format(const void *data, size_t len, char *out, size_t outlen);

/* A value to pack.  In C, the v-macros, PP_VALUE() and the helpers below
 * build them; C++ fills them by hand.  Pointers are read during the call
 * only. */
typedef struct pp_value {
    char type;                  /* a letter above, or 'u': an unsigned
                                   integer, packed as 'l' if it is at most
                                   LONG_MAX, else the pack fails saying so */
    size_t n;                   /* 'b': bytes; 'L', 'D': elements */
    union {
        long l;                 /* 'l' */
        unsigned long long u;   /* 'u' */
        double d;               /* 'd' */
        const char *s;          /* 's': NUL-terminated, not NULL */
        const void *b;          /* 'b': n bytes (NULL if n is 0) */
        const long *L;          /* 'L': n elements */
        const double *D;        /* 'D': n elements */
    } as;
} pp_value;

/* Where an unpacked value goes: the letter expected and typed pointers, as
 * the format functions take them (NULL: checked, not stored). */
typedef struct pp_out {
    char type;                  /* a letter above */
    size_t *n;                  /* 'b': length; 'L', 'D': count; or NULL */
    union {
        long *l;                /* 'l' */
        double *d;              /* 'd' */
        const char **s;         /* 's': points into the data */
        const void **b;         /* 'b': points into the data */
        long **L;               /* 'L': malloc'd, the caller free()s it */
        double **D;             /* 'D': malloc'd, the caller free()s it */
    } to;                       /* unused for 'n' */
} pp_out;

/* The most values one v-macro call takes; more is a compile error (pass an
 * array to the *_values functions instead). */
#define PP_VALUES_MAX 16

/* pp_pack() of the n values at v (v may be NULL when n is 0).  Every value
 * is checked before anything is appended.  Returns 0, or -1 on a NULL
 * string or array, an unsigned value above LONG_MAX, an unknown type or the
 * buffer's limit (pp_last_error() says which value); b is then left as it
 * was. */
PP_API int pp_pack_values(pp_buf *b, const pp_value *v, size_t n);

/* pp_submit() with the n values at v packed as its argument.  Returns the
 * job (pp_job_free()), or NULL with pp_last_error(), as pp_submitf(). */
PP_API pp_job *pp_submit_values(pp_server *s, pp_task task, const pp_submit_opts *opts,
                                const pp_value *v, size_t n);

/* pp_unpack() into the n outputs at o.  Returns 0, or -1 when the data do
 * not hold exactly those values (pp_last_error() says where; nothing is
 * stored then but NULL and 0 into the array outputs). */
PP_API int pp_unpack_values(const void *data, size_t len, const pp_out *o, size_t n);

/* Waits for the job and unpacks its result into the n outputs at o.
 * Returns 0, or -1 when the job did not end PP_DONE or its result does not
 * hold those values (the array outputs are then NULL and 0 either way).
 * Strings and bytes point into the job's result. */
PP_API int pp_job_unpack_values(pp_job *j, const pp_out *o, size_t n);

#ifndef __cplusplus
/* ---- the type-checked v-forms (C11 _Generic; C++ uses the format functions)
 *
 *   pp_packv(b, ...)                 pp_pack_values() of the arguments
 *   pp_submitv(s, task, opts, ...)   pp_submit_values() of the arguments
 *   pp_unpackv(data, len, ...)       pp_unpack_values() into the arguments
 *   pp_job_unpackv(j, ...)           pp_job_unpack_values() into them
 *
 * Each takes 1 to PP_VALUES_MAX values (more does not compile) and returns
 * what its function returns; each argument is evaluated once.  They are
 * macros: an argument with a comma outside parentheses (a compound literal
 * with two fields) needs parentheses of its own.
 *
 *   pp_job *j = pp_submitv(s, sum_task, NULL, -1, 2, pp_longs(xs, n), "x");
 *   long sum; double *avg; size_t navg;
 *   if (pp_job_unpackv(j, &sum, pp_out_doubles(&avg, &navg)) == 0) ... free(avg);
 *
 * Values (PP_VALUE):
 *   _Bool, char, signed/unsigned char, short, unsigned short, int, long,
 *   unsigned int where it fits in long (LP64), long long where it is as
 *   wide as long (LP64), enums                                 -> 'l'
 *   unsigned long, unsigned long long (size_t)                 -> 'l', checked
 *       when packed: above LONG_MAX the pack or submit fails with a message
 *   float, double                                              -> 'd'
 *   char *, const char * (string literals, char arrays)        -> 's'
 *   pp_double(x) -> 'd' (x any number), pp_bytes(p, n) -> 'b',
 *   pp_longs(p, n) -> 'L', pp_doubles(p, n) -> 'D', PP_NIL -> 'n', or any
 *   pp_value.
 * Anything else (long double, a NULL constant, a pointer that is not a
 * string) does not compile.
 *
 * Outputs (PP_OUT):
 *   long * -> 'l', double * -> 'd', const char ** -> 's',
 *   pp_out_bytes(&p, &n) -> 'b', pp_out_longs(&p, &n) -> 'L',
 *   pp_out_doubles(&p, &n) -> 'D', PP_OUT_NIL -> 'n', or any pp_out.
 * Any other pointer (int *, float *, unsigned long *, char **) does not
 * compile: "'_Generic' selector of type 'int *' is not compatible with any
 * association".
 *
 * The helpers are static inline functions of this header (no symbol), the
 * macros PP_V_* are their plumbing, not API. */
#include <limits.h>

/* Value constructors, as _Generic picks them. */
static inline pp_value pp_value_of_long(long pp_x)
{
    pp_value pp_v = {.type = 'l', .n = 0, .as.l = pp_x};
    return pp_v;
}
static inline pp_value pp_value_of_unsigned(unsigned long long pp_x)
{
    pp_value pp_v = {.type = 'u', .n = 0, .as.u = pp_x};
    return pp_v;
}
/* 'd': any number sent as a double (pp_double(2) is 2.0; a plain 2 is a
 * long, which a task unpacking a double refuses). */
static inline pp_value pp_double(double pp_x)
{
    pp_value pp_v = {.type = 'd', .n = 0, .as.d = pp_x};
    return pp_v;
}
static inline pp_value pp_value_of_string(const char *pp_x)
{
    pp_value pp_v = {.type = 's', .n = 0, .as.s = pp_x};
    return pp_v;
}
static inline pp_value pp_value_of_value(pp_value pp_x)
{
    return pp_x;
}

/* 'b': n bytes at p (p may be NULL when n is 0). */
static inline pp_value pp_bytes(const void *pp_p, size_t pp_n)
{
    pp_value pp_v = {.type = 'b', .n = pp_n, .as.b = pp_p};
    return pp_v;
}
/* 'L': the n longs at p (p may be NULL when n is 0). */
static inline pp_value pp_longs(const long *pp_p, size_t pp_n)
{
    pp_value pp_v = {.type = 'L', .n = pp_n, .as.L = pp_p};
    return pp_v;
}
/* 'D': the n doubles at p (p may be NULL when n is 0). */
static inline pp_value pp_doubles(const double *pp_p, size_t pp_n)
{
    pp_value pp_v = {.type = 'D', .n = pp_n, .as.D = pp_p};
    return pp_v;
}
/* 'n': nil. */
#define PP_NIL ((pp_value){.type = 'n', .n = 0, .as.l = 0})

/* Output constructors, as _Generic picks them. */
static inline pp_out pp_out_of_long(long *pp_p)
{
    pp_out pp_o = {.type = 'l', .n = NULL, .to.l = pp_p};
    return pp_o;
}
static inline pp_out pp_out_of_double(double *pp_p)
{
    pp_out pp_o = {.type = 'd', .n = NULL, .to.d = pp_p};
    return pp_o;
}
static inline pp_out pp_out_of_string(const char **pp_p)
{
    pp_out pp_o = {.type = 's', .n = NULL, .to.s = pp_p};
    return pp_o;
}
static inline pp_out pp_out_of_out(pp_out pp_x)
{
    return pp_x;
}

/* 'b': *p points into the data, *n is the length (either may be NULL). */
static inline pp_out pp_out_bytes(const void **pp_p, size_t *pp_n)
{
    pp_out pp_o = {.type = 'b', .n = pp_n, .to.b = pp_p};
    return pp_o;
}
/* 'L': *p a malloc'd copy (free() it; NULL when *n is 0), *n the count. */
static inline pp_out pp_out_longs(long **pp_p, size_t *pp_n)
{
    pp_out pp_o = {.type = 'L', .n = pp_n, .to.L = pp_p};
    return pp_o;
}
/* 'D': *p a malloc'd copy (free() it; NULL when *n is 0), *n the count. */
static inline pp_out pp_out_doubles(double **pp_p, size_t *pp_n)
{
    pp_out pp_o = {.type = 'D', .n = pp_n, .to.D = pp_p};
    return pp_o;
}
/* 'n': nil expected here. */
#define PP_OUT_NIL ((pp_out){.type = 'n', .n = NULL, .to.l = NULL})

#if UINT_MAX <= LONG_MAX
#define PP_V_UINT pp_value_of_long
#else
#define PP_V_UINT pp_value_of_unsigned
#endif
#if LLONG_MAX == LONG_MAX && LLONG_MIN == LONG_MIN
#define PP_V_LLONG long long : pp_value_of_long,
#else
#define PP_V_LLONG
#endif

/* The pp_value of x, its letter chosen by its type (the table above). */
#define PP_VALUE(x)                                                          \
    _Generic((x),                                                            \
        _Bool: pp_value_of_long,                                             \
        char: pp_value_of_long,                                              \
        signed char: pp_value_of_long,                                       \
        unsigned char: pp_value_of_long,                                     \
        short: pp_value_of_long,                                             \
        unsigned short: pp_value_of_long,                                    \
        int: pp_value_of_long,                                               \
        unsigned int: PP_V_UINT,                                             \
        long: pp_value_of_long,                                              \
        unsigned long: pp_value_of_unsigned,                                 \
        PP_V_LLONG                                                           \
        unsigned long long: pp_value_of_unsigned,                            \
        float: pp_double,                                                    \
        double: pp_double,                                                   \
        char *: pp_value_of_string,                                          \
        const char *: pp_value_of_string,                                    \
        pp_value: pp_value_of_value)(x)

/* The pp_out of the pointer p, its letter chosen by its type. */
#define PP_OUT(p)                                                            \
    _Generic((p),                                                            \
        long *: pp_out_of_long,                                              \
        double *: pp_out_of_double,                                          \
        const char **: pp_out_of_string,                                     \
        pp_out: pp_out_of_out)(p)

#define pp_packv(b, ...)                                                      \
    pp_pack_values((b), (const pp_value[]){PP_V_LIST(PP_VALUE, __VA_ARGS__)}, \
                   (size_t)PP_V_COUNT(__VA_ARGS__))
#define pp_submitv(s, task, opts, ...)                                       \
    pp_submit_values((s), (task), (opts),                                    \
                     (const pp_value[]){PP_V_LIST(PP_VALUE, __VA_ARGS__)},   \
                     (size_t)PP_V_COUNT(__VA_ARGS__))
#define pp_unpackv(data, len, ...)                                                    \
    pp_unpack_values((data), (len), (const pp_out[]){PP_V_LIST(PP_OUT, __VA_ARGS__)}, \
                     (size_t)PP_V_COUNT(__VA_ARGS__))
#define pp_job_unpackv(j, ...)                                                  \
    pp_job_unpack_values((j), (const pp_out[]){PP_V_LIST(PP_OUT, __VA_ARGS__)}, \
                         (size_t)PP_V_COUNT(__VA_ARGS__))

/* Plumbing: f(a) for each argument, and their count.  PP_V_PICK takes the
 * 65th of its arguments: after 1..16 arguments a number, after 17..64
 * PP_V_X, which selects PP_V_MAP_PP_V_X and its static assertion (65 or
 * more make PP_V_MAP_<n> see the wrong number of arguments: an error too). */
#define PP_V_CAT(a, b) PP_V_CAT2(a, b)
#define PP_V_CAT2(a, b) a##b
#define PP_V_APPLY(m, args) m args
#define PP_V_PICK(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, a16, \
                  a17, a18, a19, a20, a21, a22, a23, a24, a25, a26, a27, a28, a29, a30,  \
                  a31, a32, a33, a34, a35, a36, a37, a38, a39, a40, a41, a42, a43, a44,  \
                  a45, a46, a47, a48, a49, a50, a51, a52, a53, a54, a55, a56, a57, a58,  \
                  a59, a60, a61, a62, a63, a64, n, ...)                                  \
    n
#define PP_V_X8 PP_V_X, PP_V_X, PP_V_X, PP_V_X, PP_V_X, PP_V_X, PP_V_X, PP_V_X
#define PP_V_Z8 0, 0, 0, 0, 0, 0, 0, 0
#define PP_V_SEL(...)                                                                      \
    PP_V_APPLY(PP_V_PICK, (__VA_ARGS__, PP_V_X8, PP_V_X8, PP_V_X8, PP_V_X8, PP_V_X8,       \
                           PP_V_X8, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, \
                           PP_V_X))
#define PP_V_COUNT(...)                                                              \
    PP_V_APPLY(PP_V_PICK, (__VA_ARGS__, PP_V_Z8, PP_V_Z8, PP_V_Z8, PP_V_Z8, PP_V_Z8, \
                           PP_V_Z8, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0))
#define PP_V_LIST(f, ...) PP_V_CAT(PP_V_MAP_, PP_V_SEL(__VA_ARGS__))(f, __VA_ARGS__)
#define PP_V_TOO_MANY                                                                 \
    (void)sizeof(struct {                                                             \
        _Static_assert(0, "pp_packv/pp_submitv/pp_unpackv/pp_job_unpackv: more than " \
                          "PP_VALUES_MAX (16) values; pass an array to the *_values " \
                          "function instead");                                        \
        int pp_unused;                                                                \
    })
#define PP_V_MAP_PP_V_X(f, a, ...) (PP_V_TOO_MANY, f(a))
#define PP_V_MAP_1(f, a) f(a)
#define PP_V_MAP_2(f, a, ...) f(a), PP_V_MAP_1(f, __VA_ARGS__)
#define PP_V_MAP_3(f, a, ...) f(a), PP_V_MAP_2(f, __VA_ARGS__)
#define PP_V_MAP_4(f, a, ...) f(a), PP_V_MAP_3(f, __VA_ARGS__)
#define PP_V_MAP_5(f, a, ...) f(a), PP_V_MAP_4(f, __VA_ARGS__)
#define PP_V_MAP_6(f, a, ...) f(a), PP_V_MAP_5(f, __VA_ARGS__)
#define PP_V_MAP_7(f, a, ...) f(a), PP_V_MAP_6(f, __VA_ARGS__)
#define PP_V_MAP_8(f, a, ...) f(a), PP_V_MAP_7(f, __VA_ARGS__)
#define PP_V_MAP_9(f, a, ...) f(a), PP_V_MAP_8(f, __VA_ARGS__)
#define PP_V_MAP_10(f, a, ...) f(a), PP_V_MAP_9(f, __VA_ARGS__)
#define PP_V_MAP_11(f, a, ...) f(a), PP_V_MAP_10(f, __VA_ARGS__)
#define PP_V_MAP_12(f, a, ...) f(a), PP_V_MAP_11(f, __VA_ARGS__)
#define PP_V_MAP_13(f, a, ...) f(a), PP_V_MAP_12(f, __VA_ARGS__)
#define PP_V_MAP_14(f, a, ...) f(a), PP_V_MAP_13(f, __VA_ARGS__)
#define PP_V_MAP_15(f, a, ...) f(a), PP_V_MAP_14(f, __VA_ARGS__)
#define PP_V_MAP_16(f, a, ...) f(a), PP_V_MAP_15(f, __VA_ARGS__)
#endif /* !__cplusplus */

#ifdef __cplusplus
}
#endif
#endif /* PP_H */
