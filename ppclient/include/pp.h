/* SPDX-License-Identifier: MIT */
/* pp.h -- libpp, a cluster job server for C in the style of Parallel Python.
 *
 * A program creates a pp_server, submits jobs (a task function from a shared
 * library plus argument bytes) and collects results.  Jobs run in worker
 * processes on the local cores and on remote `ppserver` nodes.
 *
 * Threads: every function here may be called from any thread unless its
 * comment says otherwise.  Callbacks run on a library thread.
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
/* Default TCP port of ppserver. */
#define PP_DEFAULT_PORT 60000

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
    PP_NODE_AUTH_FAILED = 3
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
 * library thread.  `j` stays valid during the call even if the caller already
 * freed it.  The callback may submit jobs and inspect any job; it must not
 * call pp_wait() (that would wait for itself) and should not block long: the
 * callbacks of one server run one at a time. */
typedef void (*pp_callback)(pp_job *j, void *arg);

typedef struct pp_config {
    int ncpus;                      /* local workers; PP_AUTODETECT; 0 = remote only */
    const char *const *ppservers;   /* NULL-terminated "host[:port]" list, or NULL */
    const char *secret;             /* NULL: $PP_SECRET, then none */
    const char *worker_path;        /* NULL: $PP_WORKER, then found beside libpp */
    const char *log_level;          /* "error", "warn" (default), "info", "debug";
                                       NULL: $PP_LOG, then "warn" */
    double heartbeat;               /* seconds between PINGs to nodes; 0 = 1 */
    double node_timeout;            /* a node silent this long is dead; 0 = 5 */
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
} pp_config;

typedef struct pp_submit_opts {
    const char *group;              /* NULL: the default group; copied */
    pp_callback callback;           /* NULL: none */
    void *callback_arg;
    double timeout;                 /* seconds of run time; 0 = none */
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
} pp_node_info;

typedef struct pp_stats {
    uint64_t submitted;             /* jobs accepted by pp_submit() */
    uint64_t pending;               /* queued or running now */
    uint64_t done;                  /* ended PP_DONE */
    uint64_t failed;                /* ended in any other status */
    double busy_seconds;            /* task run time summed over all nodes */
    double wall_seconds;            /* time since pp_server_new() */
    int nodes;                      /* nodes, "local" included */
} pp_stats;

/* ---- servers ---------------------------------------------------------- */

/* Creates a job server and starts its local workers.  `cfg` NULL = defaults
 * (autodetected local workers, no remote nodes).  Returns NULL on failure
 * (no ppworker found, bad ncpus, ...).  Free with pp_server_free(). */
PP_API pp_server *pp_server_new(const pp_config *cfg);

/* Ends workers and connections.  Jobs not finished end PP_CANCELLED (their
 * callbacks run), no worker process or FIFO is left behind.  Jobs the caller
 * still holds stay readable until pp_job_free().  NULL is a no-op.  Called
 * from a callback, the teardown runs when that callback returns. */
PP_API void pp_server_free(pp_server *s);

/* Local workers wanted (the pool converges to it), or -1 if s is NULL. */
PP_API int pp_get_ncpus(pp_server *s);

/* Grows or shrinks the local pool at run time; PP_AUTODETECT = the CPUs this
 * process may run on.  Workers being removed finish the jobs they hold.
 * Returns 0, or -1 on a bad argument. */
PP_API int pp_set_ncpus(pp_server *s, int ncpus);

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

/* Waits for the job and returns its pp_status (-1 if j is NULL). */
PP_API int pp_job_wait(pp_job *j);

/* Like pp_job_wait() but gives up after `seconds`; returns PP_PENDING then. */
PP_API int pp_job_wait_for(pp_job *j, double seconds);

/* The job's status now, without waiting (-1 if j is NULL). */
PP_API int pp_job_status(const pp_job *j);

/* Why the job did not succeed ("worker killed by signal 11 (SIGSEGV)", the
 * task's error text, ...); "" while pending or after success.  Valid until
 * pp_job_free().  Does not wait. */
PP_API const char *pp_job_error(const pp_job *j);

/* The node that ran the job ("local", "host:port"), or "" if none did yet. */
PP_API const char *pp_job_node(const pp_job *j);

/* Releases the caller's handle: call it once per job returned by a submit
 * function, from any thread, callbacks included (the job stays valid until
 * the callback returns).  A pending job still runs (and its callback still
 * fires); its result is then discarded.  Freeing a handle twice is a bug:
 * while the library still holds the job (it is pending, or its callback
 * has not returned) the second call is refused with a message on stderr
 * and changes nothing; later it is a use after free.  NULL is a no-op. */
PP_API void pp_job_free(pp_job *j);

/* Waits until every job of `group` (NULL = every job) has finished and its
 * callback returned.  Returns 0, or -1 if s is NULL or it is called from a
 * callback. */
PP_API int pp_wait(pp_server *s, const char *group);

/* pp_wait() for at most `seconds` (>= 0).  Returns 0 when every job of the
 * group has finished, 1 when time ran out first (pp_last_error() says how
 * many are left), -1 on a bad argument or from a callback. */
PP_API int pp_wait_for(pp_server *s, const char *group, double seconds);

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
 * would exceed the frame limit (the task should then fail). */
PP_API int pp_buf_append(pp_buf *b, const void *data, size_t n);

/* Appends formatted text (without its NUL).  Returns 0 or -1, as above. */
PP_API int pp_buf_printf(pp_buf *b, const char *fmt, ...) PP_API_PRINTF(2, 3);

/* ---- typed values -------------------------------------------------------
 * A tuple of typed values encoded with its type tags, described by a format
 * string of letters:
 *   'l'  long     (pack: long;          unpack: long *)
 *   'd'  double   (pack: double;        unpack: double *)
 *   's'  string   (pack: const char *;  unpack: const char ** pointing into
 *                  the encoded bytes, NUL-terminated)
 *   'b'  bytes    (pack: const void *, size_t; unpack: const void **, size_t *)
 * Unpacking checks every tag and length: a mismatch is an error, never a
 * misread.  Pass longs as `long` (write 40L, not 40) through the `...`. */

/* Appends the values to b.  Returns 0, or -1 on a bad format or limit. */
PP_API int pp_pack(pp_buf *b, const char *fmt, ...);
PP_API int pp_vpack(pp_buf *b, const char *fmt, va_list ap);

/* Decodes `len` bytes at `data` into the pointers.  Returns 0, or -1 when
 * the bytes do not hold exactly `fmt` (pp_last_error() says where). */
PP_API int pp_unpack(const void *data, size_t len, const char *fmt, ...);
PP_API int pp_vunpack(const void *data, size_t len, const char *fmt, va_list ap);

/* pp_submit() with the argument given as packed values. */
PP_API pp_job *pp_submitf(pp_server *s, pp_task task, const pp_submit_opts *opts,
                          const char *fmt, ...);

/* Waits for the job and unpacks its result.  Returns 0, or -1 when the job
 * did not end PP_DONE or its result does not match `fmt` (pp_last_error()
 * says which).  Strings and bytes point into the job's result. */
PP_API int pp_job_unpack(pp_job *j, const char *fmt, ...);

#ifdef __cplusplus
}
#endif
#endif /* PP_H */
