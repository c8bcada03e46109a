/* SPDX-License-Identifier: MIT */
/* internal.h -- libpp's private structures: the server, jobs, groups, nodes,
 * and who owns what.
 *
 * Where each concern lives:
 *   server.c    pp_server_new/free, the local pool's size
 *   submit.c    pp_submit, jobs, waits, groups, cancels, pp_next_done
 *   joblists.c  a group's finished jobs, pp_job_free (its pending jobs:
 *               inline below)
 *   map.c       pp_map: items in batch jobs, per-item outcomes
 *   tasks.c     the task registry: task -> module file, symbol, SHA-256
 *   sched.c     the scheduler thread and its policy: which job runs next
 *               and where, re-queueing, publishing finished jobs
 *   backend.h   what a backend is: the interface sched.c drives
 *   local.c     the local backend (the worker pool)
 *   remote.c    the remote backend: one per ppserver node (handshake,
 *               jobs in flight, failover)
 *   connect.c   reaching a node: name lookup, addresses, connect, backoff
 *   nodes.c     the node list: entries, nodes files, pp_add/remove_node
 *   discover.c  "*": nodes found by their authenticated announcements
 *   callback.c  the callback thread
 *   stats.c, typed.c, template.c: statistics, typed values, templates.
 *
 * Threads: API calls run on the caller's threads; one scheduler thread owns
 * the event loop, the backends and every fd; one callback thread (started on
 * the first job that has a callback) runs callbacks.  `mu` guards what the
 * three share, marked (mu) below; fields marked (sched) belong to the
 * scheduler thread alone. */
#ifndef PP_INTERNAL_H
#define PP_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "pp.h"
#include "pp_announce.h"
#include "pp_auth.h"
#include "pp_common.h"
#include "pp_lasterr.h"
#include "pp_log.h"
#include "pp_loop.h"
#include "pp_pool.h"

#define PP_HIDDEN __attribute__((visibility("hidden")))

/* Most retries and node failures a job may be given (kept in 16 bits). */
#define PP_RETRIES_MAX 10000

/* Largest argument or result, in bytes. */
#define PP_MAX_FRAME (1u << 30)

typedef struct pp_backend pp_backend;

/* A list of jobs linked through `next` (the scheduler's lists) or `gnext`
 * (the callbacks due). */
typedef struct job_list {
    pp_job *head, *tail;
    size_t n;
} job_list;

/* Jobs finished (and called back), in that order, for pp_next_done():
 * entries in chunks, each pointing to its job until pp_next_done() takes
 * it or pp_job_free() clears it (joblists.c). */
#define PP_DONE_CHUNK 1024

typedef struct done_entry {
    _Atomic(pp_job *) job;       /* NULL once taken or freed */
    uint32_t seq;                /* its place in the order jobs finished */
} done_entry;

typedef struct done_chunk {
    struct done_chunk *next;
    uint32_t used;               /* (mu) entries written */
    uint32_t rd;                 /* (mu) entries before it are taken or cleared */
    uint32_t taken;              /* (mu) entries pp_next_done() took */
    /* Entries pp_job_free() cleared: on a line of its own, away from what
     * the scheduler writes as it appends. */
    _Alignas(64) _Atomic uint32_t cleared;
    _Alignas(64) done_entry e[PP_DONE_CHUNK];
} done_chunk;

typedef struct done_list {
    done_chunk *head, *tail;
    uint32_t chunks;             /* in the chain */
    uint32_t sweep_at;           /* chunks at which spent ones are looked for */
} done_list;

typedef struct pp_group {
    struct pp_group *next;
    size_t outstanding;          /* (mu) jobs not yet finished + called back */
    pp_job *live;                /* (mu) its pending jobs (gnext), for cancels */
    done_list finished;          /* (mu) */
    char name[];
} pp_group;

/* A node as the statistics see it ("local" or a ppserver). */
typedef struct pp_node {
    char *name;                  /* "local" or "host:port" */
    int ncpus;                   /* (mu) */
    int state;                   /* (mu) pp_node_state, set by its backend */
    uint64_t jobs;               /* (mu) */
    uint64_t busy_ns;            /* (mu) */
    uint64_t connects;           /* (mu) connection attempts */
    uint64_t refusals;           /* (mu) handshakes refused: the secrets differ */
    uint64_t handshake_errors;   /* (mu) other handshakes that failed */
    uint64_t drops;              /* (mu) connections lost while up */
    uint64_t frame_errors;       /* (mu) frames of the node that broke the protocol */
    uint64_t requeued;           /* (mu) jobs queued again when it was lost */
    /* Bytes over its connections, both ways: bumped by the scheduler
     * thread without mu, read by pp_get_stats() without the scheduler. */
    _Atomic uint64_t bytes_in, bytes_out;
    char why[PP_ERR_LEN];        /* (mu) why it is not up, or went down last */
    const char *tags;            /* (mu) its tags ("gpu,avx512"), NULL: none (yet);
                                    interned (tags.c): valid until the server goes */
    void *owner;                 /* (sched) the node list's entry that wants it
                                    (nodes.c), NULL: none (draining) */
    /* Jobs name it (pp_job_node()) and may outlive the server: it goes
     * with the last of the server and those jobs (pp_node_let_go()). */
    int64_t named;               /* (sched) jobs that ended here so far */
    _Alignas(64) _Atomic int64_t gone; /* of those, destroyed; less `named`
                                    once the server went (on a line of its
                                    own: bumped by the threads freeing jobs) */
} pp_node;

/* A task as the registry knows it (tasks.c).  Immutable once registered,
 * except pool_id, which only the scheduler thread touches. */
typedef struct pp_task_entry {
    pp_task fn;
    char *module;                /* absolute path of the task module */
    char *symbol;
    uint8_t hash[PP_SHA256_LEN]; /* of the module file, for nodes */
    char *hash_err;              /* why it could not be hashed, or NULL */
    int64_t pool_id;             /* (sched) the local pool's id; -1 unknown */
} pp_task_entry;

struct pp_job {
    pp_pool_job pj;              /* (sched) what the worker pool sees; pj.len is
                                    the argument's length */
    pp_server *s;
    _Atomic int status;          /* published with release under mu */
    _Atomic int refs;            /* the caller's handle + the library's, and
                                    PP_JOB_FREED once pp_job_free() was called
                                    (a second call is refused) */
    pp_task_entry *task;
    pp_group *group;             /* NULL = no named group */
    pp_callback cb;
    void *cb_arg;
    const char *result;          /* result or error text, NUL-terminated, in result_mem */
    void *result_mem;            /* owned */
    size_t result_len;
    pp_node *node;               /* where it ran */
    uint64_t run_ns;             /* task run time, for the node's statistics */
    struct pp_job *next;         /* (sched) in the incoming, ready or done list */
    /* (mu) Its group's pending jobs while pending (for cancels); the
     * callbacks due once final (gnext only). */
    struct pp_job *gprev, *gnext;
    _Atomic(done_chunk *) dc;    /* its finished-list entry: dc->e[di], or NULL */
    int32_t priority;            /* higher runs first */
    int16_t attempts;            /* (sched) node failures while it ran there */
    int16_t retries;             /* (sched) runs left after a failure */
    int16_t runs_failed;         /* (sched) runs that failed and were retried */
    uint16_t where;              /* (sched) 1 + the index of the backend holding
                                    it in s->backends; 0 = none */
    uint16_t avoid;              /* (sched) the same for where its last run failed */
    uint16_t di;                 /* (mu) with dc */
    uint16_t tagset;             /* the tags a backend must have to run it:
                                    s->tagset_tab[tagset - 1] (tags.h); 0: any
                                    backend (most jobs).  16 bits, in what was
                                    padding: untagged jobs cost nothing more */
    int8_t end_status;           /* (sched) how it ended, until publish() makes it
                                    the status: readers of a final status may
                                    then read the result */
    _Atomic unsigned char cancelled; /* set once, under mu, by pp_job_cancel() */
    unsigned char arg[];         /* the argument bytes, copied at submit */
};

/* The ready queue: a FIFO per priority, highest first.  Almost always one
 * level, so a push is one comparison. */
typedef struct ready_level {
    int priority;
    job_list q;
} ready_level;

typedef struct ready_queue {
    ready_level *lv;             /* nlv levels in use, highest priority first */
    int nlv, cap;
    size_t n;                    /* jobs in all levels */
} ready_queue;

struct pp_server {
    pthread_mutex_t mu;
    pthread_cond_t done_cv;      /* a job finished or a group drained */
    pthread_cond_t cb_cv;        /* callbacks queued, or stop */
    int waiters;                 /* (mu) threads in done_cv waits */
    int stopping;                /* (mu) pp_server_free() began */
    int free_requested;          /* (mu) pp_server_free() from a callback */
    _Atomic unsigned char *mine; /* a page the kernel zeroes in a forked child
                                    (MADV_WIPEONFORK): 1 in the process that
                                    made the server, 0 in its children */

    job_list incoming;           /* (mu) submitted, not yet seen by the scheduler */
    job_list incoming_tagged;    /* (mu) the same, of jobs that need tags: kept
                                    out of the ready queue (tags.c) */
    int incoming_prio;           /* (mu) the priority of every incoming job... */
    int incoming_mixed;          /* (mu) ...unless they differ */
    unsigned cancel_gen;         /* (mu) jobs cancelled so far: the scheduler
                                    stops them when it changes */
    unsigned cancel_seen;        /* (sched) cancel_gen it last acted on */
    int wake_pending;            /* (mu) the eventfd was written since the last drain */
    int efd;                     /* eventfd that wakes the scheduler */
    int ncpus_want;              /* (mu) local workers wanted */
    int ncpus_dirty;             /* (mu) ncpus_want changed */

    pp_task_entry **tasks;       /* (mu) the registry; entries never move */
    uint32_t ntasks, captasks;
    pp_group *groups;            /* (mu) named groups */
    size_t outstanding;          /* (mu) every job not yet finished + called back */
    pp_job *live;                /* (mu) pending jobs of no named group */
    done_list finished;          /* (mu) jobs of no named group, as pp_group's */
    done_chunk *spare_chunk;     /* (mu) one chunk kept for reuse */
    _Atomic size_t refs_dead;    /* of those, cleared (joblists.c) */
    uint64_t done_seq;           /* (mu) finished jobs so far, for their order */
    int max_pending;             /* bound on `outstanding` for pp_submit() */

    pp_node **nodes;             /* (mu) node 0 is "local"; nodes are added, never
                                    freed before the server (names stay valid) */
    int nnodes, capnodes;
    struct pp_node_req *node_reqs; /* (mu) node list changes for the scheduler */
    _Atomic int node_reqs_set;   /* node_reqs is not empty: a look without mu */
    struct pp_node_req *node_reqs_applying; /* (mu) taken, being applied: still
                                    pending for pp_add_node/pp_remove_node */
    char **files;                /* (mu) nodes files in use ("@/abs/path") */
    int nfiles;
    struct nodeset *nodeset;     /* (sched) the node list (nodes.c) */
    int discover_port;           /* (mu, stored atomically: discover.c peeks)
                                    "*" listed: the UDP port discovery listens
                                    on (discover.c); 0 = none */
    uint32_t discover_group;     /* (mu) the multicast group it joins (network
                                    order); 0 = none */
    uint64_t announces[PP_ANN_REASONS]; /* (mu) announcements taken, then
                                    ignored, by pp_ann_result */
    double discover_timeout;     /* a discovered node silent this long drains;
                                    0 = 3 of its announce intervals */
    int no_secret;               /* pp_config.no_secret: nothing to discover by */
    struct discoverer *discoverer; /* (sched) discovery (discover.c), or NULL */
    double resolve_interval;     /* seconds between lookups of nodes' names */

    uint64_t submitted, ndone, nfailed, ncancelled, nretried; /* (mu) */
    uint64_t nstatus[PP_STATS_STATUSES]; /* (mu) jobs ended, by pp_status */
    uint64_t run_hist[PP_STATS_RUN_BUCKETS]; /* (mu) jobs that ran, by run time */
    double t0;

    /* scheduler thread */
    pthread_t thread;
    int start_state;             /* (mu) 0 starting, 1 running, -1 failed */
    char start_err[PP_ERR_LEN];  /* why it failed */
    pp_loop *loop;               /* (sched) */
    pp_io efd_io;                /* (sched) */
    pp_backend **backends;       /* (sched) in dispatch order: local first */
    int nbackends;
    pp_backend **due;            /* (sched) to flush this turn (room for all) */
    int ndue;
    ready_queue ready;           /* (sched) queued, waiting for a backend */
    struct tag_waits *tw;        /* (sched) jobs that need tags, queued by tag set
                                    (tags.c) */
    struct pp_tagset **tagset_tab; /* (mu) the tag sets jobs need, interned:
                                    PP_TAGSETS_MAX slots, made on first use; a
                                    slot once set never changes */
    int ntagsets;
    struct tag_text *tag_texts;  /* (mu) nodes' tags as text, interned */
    int ntag_texts;
    struct pp_tags *local_tags;  /* pp_config.local_tags, or NULL: none */
    job_list done;               /* (sched) finished, to publish in the next hook */
    int idle_warned;             /* (sched) "no worker, no node" logged once */
    double idle_since;           /* (sched) since when that holds, 0 = not */
    pp_timer idle_timer;         /* (sched) wakes the loop when no_node_timeout is up */
    pp_timer trim_timer;         /* (sched) gives the heap back after handshakes (remote.c) */
    unsigned hs_since_trim;      /* (sched) handshakes done since that last ran */
    int quit;                    /* (sched) leave the loop */

    /* callback thread */
    pthread_t cb_thread;
    sigset_t app_sigmask;        /* its signal mask: that of the thread that
                                    called pp_server_new() (the scheduler's
                                    blocks all, which the processes a
                                    callback starts would inherit) */
    int cb_started;              /* (mu) */
    int cb_stop;                 /* (mu) */
    job_list callbacks;          /* (mu) finished jobs whose callbacks are due
                                    (through gnext: a cancelled job may still
                                    be in a scheduler list) */
    /* pp_server_free() asked for from a callback: run by the callback
     * thread once that callback returned (server.c sets it). */
    void (*teardown)(pp_server *s);

    char *worker_path;           /* NULL when none was found (ncpus 0) */
    pp_log log;

    /* configuration */
    char **worker_env;           /* more variables local workers get, or NULL */
    pp_auth_key key;             /* from the secret */
    int have_key;
    struct pp_tls *tls;          /* TLS to the nodes; NULL: plaintext (no_tls) */
    pp_shm_cache *shm;           /* shared buffers: large arguments and results */
    int copy_threads;            /* CPUs this process may use: pp_copy() of a
                                    large argument (immutable) */
    pp_timer shm_timer;          /* (sched) releases idle buffers after PP_SHM_IDLE */
    double shm_last;             /* (sched) when the last large job ended */
    pp_shm **ushm;               /* (mu) the buffers of pp_shm_alloc(), by address */
    size_t nushm, capushm;
    double heartbeat, node_timeout;
    int max_attempts;
    int job_memory_mib;          /* local workers' RLIMIT_AS; 0 = none */
    int worker_max_jobs;         /* local workers replaced after so many; 0 = never */
    double no_node_timeout;      /* 0 = jobs wait for ever for a worker or node */
    int compress;                /* pp_config.compress as a PP_ZP_* mode */
    int max_idle_nodes;          /* open idle connections kept; -1 = no limit */
    struct remote_pool *rpool;   /* (sched) remote.c's idle and dormant nodes */
    /* The entry pp_tasks_get() found last, read without mu (entries never
     * change or move): a submit of the same task takes no lock for it. */
    _Atomic(pp_task_entry *) last_task;
};

/* ---- job lists ---- */

static inline void job_list_push(job_list *l, pp_job *j)
{
    j->next = NULL;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
    l->n++;
}

static inline void job_list_push_front(job_list *l, pp_job *j)
{
    j->next = l->head;
    l->head = j;
    if (!l->tail)
        l->tail = j;
    l->n++;
}

static inline pp_job *job_list_pop(job_list *l)
{
    pp_job *j = l->head;
    if (j) {
        l->head = j->next;
        if (!l->head)
            l->tail = NULL;
        l->n--;
        j->next = NULL;
    }
    return j;
}

/* Appends all of src to dst; src becomes empty. */
static inline void job_list_splice(job_list *dst, job_list *src)
{
    if (!src->head)
        return;
    if (dst->tail)
        dst->tail->next = src->head;
    else
        dst->head = src->head;
    dst->tail = src->tail;
    dst->n += src->n;
    src->head = src->tail = NULL;
    src->n = 0;
}

#define PP_JOB_FREED (1 << 30)   /* pp_job_free() was called */
#define PP_JOB_INDEXED (1 << 29) /* it has a finished-list entry (joblists.c) */
#define PP_JOB_COUNT(refs) ((refs) & ~(PP_JOB_FREED | PP_JOB_INDEXED))

/* Waits on cv (mu held) until woken or `deadline` (pp_now() time; < 0 =
 * none), on a condition variable that uses `clock`.  1 when the deadline
 * has passed (then without waiting), else 0: the caller looks again. */
static inline int pp_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, double deadline,
                                     clockid_t clock)
{
    if (deadline < 0)
        return pthread_cond_wait(cv, mu), 0;
    double left = deadline - pp_now();
    if (left <= 0)
        return 1;
    /* Beyond any timespec (INFINITY, 1e300 s): no deadline, rather than a
     * conversion that overflows into one already past (a spinning wait). */
    if (left > 1e9)
        return pthread_cond_wait(cv, mu), 0;
    struct timespec ts;
    clock_gettime(clock, &ts);
    double t = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 + left;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(cv, mu, &ts);
    return 0;
}

/* Whether pp_job_cancel() ended it (any thread). */
/* The pp_stats.run_hist bucket of a run time. */
static inline int pp_run_bucket(uint64_t run_ns)
{
    static const double le[] = {PP_STATS_RUN_LE};
    if (run_ns <= (uint64_t)(le[0] * 1e9)) /* most jobs: no double */
        return 0;
    double sec = (double)run_ns * 1e-9;
    int b = 0;
    while (b < PP_STATS_RUN_BUCKETS - 1 && sec > le[b])
        b++;
    return b;
}

static inline int pp_job_cancelled(const pp_job *j)
{
    return atomic_load_explicit(&((pp_job *)j)->cancelled, memory_order_acquire);
}

/* Frees a node once the server and every job naming it are gone. */
PP_HIDDEN void pp_node_free(pp_node *n);

/* A job that named the node goes. */
static inline void pp_node_let_go(pp_node *n)
{
    if (atomic_fetch_add_explicit(&n->gone, 1, memory_order_acq_rel) == -1)
        pp_node_free(n);
}

/* Frees a job, its result and its shared buffers. */
static inline void pp_job_destroy(pp_job *j)
{
    if (j->node)
        pp_node_let_go(j->node);
    free(j->result_mem);
    if (j->pj.ashm) /* rare: no call for every tiny job */
        pp_shm_unref(j->pj.ashm);
    if (j->pj.rshm)
        pp_shm_unref(j->pj.rshm);
    free(j);
}

/* Drops a reference; the last one frees the job and its result. */
static inline void pp_job_unref(pp_job *j)
{
    if (PP_JOB_COUNT(atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel)) == 1)
        pp_job_destroy(j);
}

/* ---- server.c: the process a server belongs to ---- */

/* Whether s was made by a parent of this process (a forked child has none
 * of its threads): then pp_last_error() says so, beginning with `who`.
 * One relaxed load: submits call it. */
PP_HIDDEN int pp_forked_error(const pp_server *s, const char *who);
static inline int pp_forked(const pp_server *s, const char *who)
{
    return !atomic_load_explicit(s->mine, memory_order_relaxed) && pp_forked_error(s, who);
}

/* ---- tasks.c: the task registry ---- */

/* The registry's entry for `task`, registering it on first use (resolved
 * with dladdr: it must be an exported function of a shared library; hashed
 * when the server has nodes).  Any thread; takes mu.  NULL with
 * pp_last_error() set, the message beginning with `who`. */
PP_HIDDEN pp_task_entry *pp_tasks_get(pp_server *s, pp_task task, const char *who);
/* Frees the registry (teardown). */
PP_HIDDEN void pp_tasks_free(pp_server *s);

/* ---- submit.c ---- */

/* pp_submit() of a task already registered. */
/* pp_submit() of a task already registered; `flags` go on the job's frames
 * (PP_WIRE_F_BATCH for a batch argument, pp_proto.h). */
PP_HIDDEN pp_job *pp_submit_entry(pp_server *s, pp_task_entry *task, const void *arg,
                                  size_t len, const pp_submit_opts *opts, uint16_t flags,
                                  const char *who);
/* The same with the argument in a shared buffer of pp_shm_alloc() (shm,
 * whose reference the job takes on success), or copied (shm NULL). */
PP_HIDDEN pp_job *pp_submit_job(pp_server *s, pp_task_entry *task, const void *arg, size_t len,
                                pp_shm *shm, const pp_submit_opts *opts, uint16_t flags,
                                const char *who);


/* ---- shm.c: the buffers of pp_shm_alloc() ---- */

/* Idle shared buffers a server keeps for reuse, at most (bytes), and for
 * how long without a large job (seconds). */
#define PP_SHM_KEEP (256u << 20)
#define PP_SHM_IDLE 2.0

/* Releases the buffers the program did not free, and the cache (teardown;
 * jobs still holding buffers keep them). */
PP_HIDDEN void pp_shm_forget_all(pp_server *s);

/* ---- joblists.c: pending, cancelled and finished jobs (mu held) ---- */

/* A new job joins its group's pending jobs (inline: once per job). */
static inline void pp_job_link_live_locked(pp_server *s, pp_job *j)
{
    pp_job **h = j->group ? &j->group->live : &s->live;
    pp_job *n = *h;
    j->gprev = NULL;
    j->gnext = n;
    if (n)
        n->gprev = j;
    *h = j;
}

/* The job is final: it leaves them. */
static inline void pp_job_unlink_live_locked(pp_server *s, pp_job *j)
{
    pp_job *p = j->gprev, *n = j->gnext;
    if (p)
        p->gnext = n;
    else
        *(j->group ? &j->group->live : &s->live) = n;
    if (n)
        n->gprev = p;
    j->gprev = j->gnext = NULL;
}
/* The job is final and called back: its group's pp_next_done() may return
 * it (unless the caller freed it); drops the library's reference. */
PP_HIDDEN void pp_job_retire_locked(pp_server *s, pp_job *j);
/* The oldest finished job of `g` (of any group when `all`), taken off its
 * list, or NULL. */
PP_HIDDEN pp_job *pp_finished_take_locked(pp_server *s, pp_group *g, int all);
/* Frees the chunk kept for reuse (teardown). */
PP_HIDDEN void pp_spare_chunk_free(pp_server *s);
/* Empties the list (teardown: the handles may outlive the server). */
PP_HIDDEN void pp_finished_free(pp_server *s, done_list *l);

/* ---- sched.c: the scheduler thread ---- */

/* Wakes the scheduler; call with mu held. */
PP_HIDDEN void pp_sched_wake_locked(pp_server *s);

/* ---- callback.c: the callback thread ---- */

/* Hands a finished job with a callback to the callback thread (started on
 * first use); mu held. */
PP_HIDDEN void pp_callback_queue_locked(pp_server *s, pp_job *j);
/* Stops the callback thread after the callbacks queued have run; from the
 * callback thread itself, runs them here.  mu not held. */
PP_HIDDEN void pp_callback_stop(pp_server *s, int on_cb_thread);
/* Whether the calling thread is the callback thread; mu held. */
PP_HIDDEN int pp_callback_thread_locked(const pp_server *s);

/* ---- typed.c ---- */

/* Packs `fmt` and submits through `task`; messages begin with `who`. */
PP_HIDDEN pp_job *pp_vsubmitf_entry(pp_server *s, pp_task_entry *task,
                                    const pp_submit_opts *opts, const char *who,
                                    const char *fmt, va_list ap);

#endif
