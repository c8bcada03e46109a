/* SPDX-License-Identifier: MIT */
/* internal.h -- libpp's private structures: the server, jobs, groups, nodes.
 *
 * Threads: API calls run on the caller's threads; one scheduler thread owns
 * the event loop, the worker pool and every fd; one callback thread (started
 * on the first job that has a callback) runs callbacks.  `mu` guards what
 * the three share, marked (mu) below; fields marked (sched) belong to the
 * scheduler thread alone.  Short-lived detached threads look up node host
 * names (remote.c); they touch only their own request, never the server. */
#ifndef PP_INTERNAL_H
#define PP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "pp.h"
#include "pp_auth.h"
#include "pp_lasterr.h"
#include "pp_log.h"
#include "pp_loop.h"
#include "pp_pool.h"

#define PP_HIDDEN __attribute__((visibility("hidden")))

/* Largest argument or result, in bytes. */
#define PP_MAX_FRAME (1u << 30)

typedef struct pp_group {
    struct pp_group *next;
    size_t outstanding;          /* (mu) jobs not yet finished + called back */
    char name[];
} pp_group;

typedef struct pp_node {
    char *name;                  /* "local" or "host:port" */
    int ncpus;                   /* (mu) */
    int state;                   /* (mu) pp_node_state */
    uint64_t jobs;               /* (mu) */
    uint64_t busy_ns;            /* (mu) */
    uint64_t connects;           /* (mu) connection attempts */
} pp_node;

typedef struct pp_task_ref {
    pp_task fn;
    char *module;                /* absolute path of the task module */
    char *symbol;
} pp_task_ref;

struct pp_job {
    pp_pool_job pj;              /* (sched) what the worker pool sees */
    pp_server *s;
    _Atomic int status;          /* published with release under mu */
    _Atomic int refs;            /* the caller's handle + the library's */
    _Atomic int handle_freed;    /* pp_job_free() was called (a second call is refused) */
    uint32_t task;               /* index in s->tasks */
    pp_group *group;             /* NULL = no named group */
    pp_callback cb;
    void *cb_arg;
    const char *result;          /* result or error text, NUL-terminated, in result_mem */
    void *result_mem;            /* owned */
    size_t result_len;
    pp_node *node;               /* where it ran */
    uint64_t run_ns;             /* task run time, for the node's statistics */
    int attempts;                /* (sched) node failures while it ran there */
    int end_status;              /* (sched) how it ended, until publish() makes it
                                    the status: readers of a final status may
                                    then read the result */
    struct pp_job *next;         /* in the incoming, ready, done or callback list */
    size_t len;
    unsigned char arg[];         /* the argument bytes, copied at submit */
};

typedef struct job_list {
    pp_job *head, *tail;
    size_t n;
} job_list;

struct pp_server {
    pthread_mutex_t mu;
    pthread_cond_t done_cv;      /* a job finished or a group drained */
    pthread_cond_t cb_cv;        /* callbacks queued, or stop */
    int waiters;                 /* (mu) threads in done_cv waits */
    int stopping;                /* (mu) pp_server_free() began */
    int free_requested;          /* (mu) pp_server_free() from a callback */

    job_list incoming;           /* (mu) submitted, not yet seen by the scheduler */
    int wake_pending;            /* (mu) the eventfd was written since the last drain */
    int efd;                     /* eventfd that wakes the scheduler */
    int ncpus_want;              /* (mu) local workers wanted */
    int ncpus_dirty;             /* (mu) ncpus_want changed */

    pp_task_ref *tasks;          /* (mu) tasks seen by pp_submit(), by index */
    uint32_t ntasks, captasks;
    pp_group *groups;            /* (mu) named groups */
    size_t outstanding;          /* (mu) every job not yet finished + called back */

    pp_node **nodes;             /* node 0 is "local"; the array is fixed after new() */
    int nnodes;

    uint64_t submitted, ndone, nfailed; /* (mu) */
    double t0;

    /* scheduler thread */
    pthread_t thread;
    int start_state;             /* (mu) 0 starting, 1 running, -1 failed */
    char start_err[PP_ERR_LEN];  /* why it failed */
    pp_loop *loop;               /* (sched) */
    pp_io efd_io;                /* (sched) */
    pp_pool *pool;               /* (sched) NULL when no worker could be found */
    int64_t *pool_ids;           /* (sched) task index -> pool task id, -1 unknown */
    uint32_t npool_ids;          /* (sched) */
    job_list ready;              /* (sched) queued, waiting for a worker or node */
    job_list done;               /* (sched) finished, to publish in the next hook */
    int idle_warned;             /* (sched) "no worker, no node" logged once */
    double idle_since;           /* (sched) since when that holds, 0 = not */
    int quit;                    /* (sched) leave the loop */

    /* callback thread */
    pthread_t cb_thread;
    int cb_started;              /* (mu) */
    int cb_stop;                 /* (mu) */
    job_list callbacks;          /* (mu) finished jobs whose callbacks are due */

    char *worker_path;
    pp_log log;

    /* remote nodes (nodes[1..nremotes]) */
    struct remote **remotes;     /* (sched) */
    int nremotes;
    pp_auth_key key;             /* from the secret */
    double heartbeat, node_timeout;
    int max_attempts;
    int job_memory_mib;          /* local workers' RLIMIT_AS; 0 = none */
    char **worker_env;           /* more variables local workers get, or NULL */
    double no_node_timeout;      /* 0 = jobs wait for ever for a worker or node */
    pp_timer idle_timer;         /* (sched) wakes the loop when that time is up */
    uint8_t (*task_hash)[PP_SHA256_LEN]; /* (sched) SHA-256 of each task's module */
    uint8_t *task_hash_state;    /* (sched) 0 unknown, 1 known, 2 unreadable */
    uint32_t ntask_hash;         /* (sched) */
};

/* pp_set_error() comes from shared/pp_lasterr.h. */

/* job lists */
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

/* server.c: teardown requested from a callback, run by the callback thread. */
PP_HIDDEN void pp_server_teardown_from_callback(pp_server *s);

/* submit.c */
PP_HIDDEN void pp_job_unref(pp_job *j);

/* sched.c: the scheduler thread's side */
PP_HIDDEN void *pp_sched_main(void *arg);
/* Records a finished job (scheduler thread); published in the next turn.
 * `mem` (malloc'd, now the job's) holds `data`, len bytes + NUL. */
PP_HIDDEN void pp_sched_finish(pp_server *s, pp_job *j, int status, void *mem,
                               const char *data, size_t len, pp_node *node, uint64_t run_ns);
/* pp_sched_finish() with an error text formatted here (no result). */
PP_HIDDEN void pp_sched_fail(pp_server *s, pp_job *j, int status, const char *fmt, ...)
    PP_PRINTF(4, 5);
/* Wakes the scheduler; call with mu held. */
PP_HIDDEN void pp_sched_wake_locked(pp_server *s);
/* The callback thread. */
PP_HIDDEN void *pp_callback_main(void *arg);
/* Drains the callback queue on the calling thread (teardown); mu held. */
PP_HIDDEN void pp_run_callbacks_locked(pp_server *s);

/* remote.c: ppserver nodes */
PP_HIDDEN int pp_remote_start(pp_server *s, char *err);
PP_HIDDEN void pp_remote_stop(pp_server *s);
/* Sends queued jobs to nodes with free capacity. */
PP_HIDDEN void pp_remote_dispatch(pp_server *s);
/* Whether some node is up. */
PP_HIDDEN int pp_remote_any_up(const pp_server *s);
/* Whether there are nodes and every one refused our secret. */
PP_HIDDEN int pp_remote_all_auth_failed(const pp_server *s);
/* "host:port: state (why); ..." for every node not up, into buf. */
PP_HIDDEN void pp_remote_describe(const pp_server *s, char *buf, size_t len);

/* local.c: the local worker pool */
PP_HIDDEN int pp_local_start(pp_server *s, char *err);
PP_HIDDEN void pp_local_stop(pp_server *s);
PP_HIDDEN void pp_local_resize(pp_server *s, int n);
/* Sends queued jobs to free local workers. */
PP_HIDDEN void pp_local_dispatch(pp_server *s);
/* Finds ppworker: cfg, $PP_WORKER, then beside libpp.  Malloc'd or NULL. */
PP_HIDDEN char *pp_local_find_worker(const char *configured, char *err);

#endif
