/* SPDX-License-Identifier: MIT */
/* pp_pool.h -- the named-pipe worker pool: `ppworker` processes, each with a
 * request and a response FIFO (made in a private 0700 directory whose names
 * are removed before the worker starts), fed jobs by the owner's loop.  libpp (local jobs) and ppserver (remote jobs) use it.
 *
 * Each worker runs in its own process group with a scrubbed environment.
 * Several jobs may be in flight on a worker (pipelining; the depth adapts to
 * the measured run time) and it runs them in order.  A worker that dies ends
 * only the job it was running (PP_CRASHED naming the signal or exit code);
 * the jobs queued behind it go back to the owner.  A job over its timeout
 * gets its worker's whole process group killed (PP_TIMEOUT).  Dead workers
 * are replaced, and so are workers that were sent max_jobs_per_worker jobs
 * once they have answered them.  A batch job (PP_WIRE_F_BATCH) is one job
 * here, answered by one RESULT.  Arguments and results of PP_SHM_MIN bytes
 * or more go through shared memory when the owner gives a buffer cache
 * (pp_pool_opts.shm; pp_proto.h's WSHM, SJOB, SRESULT).  Every call is from
 * the loop's thread. */
#ifndef PP_POOL_H
#define PP_POOL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pp_log.h"
#include "pp_loop.h"
#include "pp_shm.h"
#include "pp_worker.h"

typedef struct pp_pool pp_pool;

/* A job as the pool sees it, embedded in the owner's job.  The owner sets
 * arg, len, task, timeout and flags; arg must stay valid until the pool
 * hands the job back through on_done or on_requeue. */
typedef struct pp_pool_job {
    const void *arg;
    size_t len;
    double timeout;               /* seconds of run time; 0 = none (a batch's: all its items) */
    uint32_t task;                /* from pp_pool_task() */
    uint16_t flags;               /* of the JOB frame: PP_WIRE_F_BATCH (arg is a batch
                                     argument, pp_proto.h) or 0 */
    /* set by the pool before on_done */
    uint16_t rflags;              /* of the RESULT: PP_WIRE_F_BATCH when the data is a
                                     batch result (checked: one item per argument item),
                                     else 0 (a batch's own failure, or not a batch) */
    /* The shared-memory buffer (pp_shm.h) the argument lies in, or NULL:
     * the owner's reference, kept until the job is handed back.  A large
     * argument not in one goes through the pipe. */
    struct pp_shm *ashm;
    /* Set by the pool before on_done: the buffer whose start holds the
     * result (then `block` is NULL), the reference now the owner's; else
     * NULL. */
    struct pp_shm *rshm;
    /* pool-private (fields ordered to leave no padding: one per job) */
    struct pp_pool_job *next;
    uint64_t seq;
    unsigned requeues;            /* times its worker died under it */
} pp_pool_job;

typedef struct pp_pool_cbs {
    /* The job ended: status is PP_DONE, PP_FAILED, PP_ELOAD, PP_CRASHED or
     * PP_TIMEOUT; `data` (len bytes, NUL-terminated) is the result or the
     * error text and points into `block`, which the callee owns (free()):
     * results are not moved out of the frame they came in; or, when
     * j->rshm is set, into that shared buffer (block NULL), where the
     * worker wrote it; run_ns is the task's run time. */
    void (*on_done)(pp_pool *p, pp_pool_job *j, int status, void *block, const char *data,
                    size_t len, uint64_t run_ns, void *ud);
    /* The job was sent to a worker that did not finish it, through no fault
     * of its own (another job crashed that worker, or the pool is being
     * freed): it is the owner's again.  Jobs come back last-to-first, so
     * that pushing each to the front of a queue keeps their order. */
    void (*on_requeue)(pp_pool *p, pp_pool_job *j, void *ud);
} pp_pool_cbs;

typedef struct pp_pool_opts {
    const char *worker_path;      /* the ppworker executable */
    int workers;                  /* initial size, >= 0 */
    uint32_t max_frame;           /* largest argument or result */
    const pp_log *log;            /* may be NULL */
    const char *tmpdir;           /* where the FIFO directories go; NULL = $TMPDIR or /tmp */
    unsigned job_memory_mib;      /* each worker's virtual memory (RLIMIT_AS); 0 = no limit */
    const char *const *env;       /* NULL-terminated names of variables the workers get
                                     besides PATH, LD_LIBRARY_PATH, HOME, TMPDIR, TZ,
                                     LANG, LC_ALL and the sanitizers' options; or NULL */
    int worker_user_set;          /* run the workers as worker_uid:worker_gid (the owner
                                     runs as root): each drops its privileges itself
                                     (setgroups, setgid, setuid) before it loads any
                                     task module; 0 = as the owner */
    uid_t worker_uid;
    gid_t worker_gid;
    struct pp_shm_cache *shm;     /* where large arguments and results go (pp_shm.h),
                                     shared with the owner; NULL = only the pipes */
    unsigned max_jobs_per_worker; /* a worker sent this many jobs is sent no more and,
                                     once it has answered them, is replaced (as by a
                                     resize: no job lost or run twice); 0 = no limit */
    int output_fd;                /* > 2: the workers' stdout and stderr (ppserver's pipe
                                     into its log); else they write where the owner does */
} pp_pool_opts;

/* Starts the pool and its workers.  NULL on failure, with the reason in err
 * (PP_ERR_LEN bytes): the worker cannot be started, no memory, ... */
pp_pool *pp_pool_new(pp_loop *loop, const pp_pool_opts *opts, const pp_pool_cbs *cbs,
                     void *ud, char *err);

/* Kills every worker and waits for it; in-flight jobs go to on_requeue; no
 * process, FIFO or directory is left.  NULL is a no-op. */
void pp_pool_free(pp_pool *p);

/* Sets the number of workers wanted: new ones start now, removed ones finish
 * the jobs they hold first.  0 or -1 (n < 0). */
int pp_pool_resize(pp_pool *p, int n);

/* Workers that failed to start in a row (0 once one starts), and the last
 * such failure ("" if none). */
int pp_pool_failures(const pp_pool *p);
const char *pp_pool_last_failure(const pp_pool *p);

/* Workers wanted, and workers up now. */
int pp_pool_target(const pp_pool *p);
int pp_pool_ready(const pp_pool *p);

/* The id of the task (module file, symbol), registering it on first use.
 * 0 or -1 (too long, no memory); the id goes to *id. */
int pp_pool_task(pp_pool *p, const char *module, const char *symbol, uint32_t *id);

/* Whether some worker can take one more job now. */
int pp_pool_has_room(const pp_pool *p);

/* Sends the job to the worker with the most room.  0, or -1 when none has
 * room (the job is still the owner's). */
int pp_pool_submit(pp_pool *p, pp_pool_job *j);

/* Writes the batched frames: call once per loop turn (before-sleep hook).
 * Also takes back the jobs queued behind a long-running job while another
 * worker is idle (they come back through on_requeue, and the loop is told
 * not to sleep so that the owner sends them again at once). */
void pp_pool_flush(pp_pool *p);

/* Cancels the jobs for which match() says 1: those not started yet come
 * back through on_requeue (with every other job queued on the same worker,
 * which the owner sends again), a running one ends PP_CANCELLED through
 * on_done with its worker killed (process group and all) and replaced, and
 * one that has already run ends as it ended when its result arrives.  So a
 * cancelled job reaches the owner once, now or later, as usual. */
void pp_pool_cancel_if(pp_pool *p, int (*match)(pp_pool_job *j, void *arg), void *arg);

/* Jobs in flight on workers now. */
size_t pp_pool_inflight(const pp_pool *p);

/* Workers with a job in flight now (statistics; walks the workers). */
int pp_pool_busy(const pp_pool *p);

/* A worker as a status report sees it. */
typedef struct pp_pool_worker_info {
    pid_t pid;
    int inflight;                 /* jobs sent to it and not answered */
    const pp_pool_job *running;   /* the one it runs now, or NULL */
    double started;               /* when that one started (pp_now() seconds) */
} pp_pool_worker_info;

/* Describes up to max workers into out; returns how many there are (more
 * than max when out was too small). */
size_t pp_pool_workers(const pp_pool *p, pp_pool_worker_info *out, size_t max);

#endif
