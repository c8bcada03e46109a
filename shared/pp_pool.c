/* SPDX-License-Identifier: MIT */
/* pp_pool.c -- named-pipe worker pool. */
#include "pp_pool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pp.h"
#include "pp_conn.h"
#include "pp_proto.h"
#include "pp_spawn.h"

#define START_DEADLINE 10.0   /* seconds for a new worker to say hello */
#define MAX_BACKOFF 5.0
#define MAX_REQUEUES 3        /* deaths of a job's workers before it is failed */
#define LONG_JOB 0.002        /* a job running this long (or 20x the average) is long */
#define SHM_IDLE 2.0          /* seconds without large jobs: shared buffers are released */
#define SHM_SLACK (4u << 20)  /* a result buffer may exceed the largest result by this */

/* A worker's life. */
typedef enum worker_state {
    W_STARTING, /* spawned; its WHELLO has not come yet (START_DEADLINE) */
    W_READY,    /* takes jobs */
    W_RETIRING, /* the pool shrank, or it was sent max_jobs_per_worker jobs: it
                   finishes the jobs it holds, then goes */
    W_DEAD,     /* killed and reaped; freed at the next loop turn */
} worker_state;

/* Why a worker is ended, which decides whom that is charged to. */
typedef enum kill_reason {
    KILL_NONE,     /* it died by itself: its running job crashed */
    KILL_TIMEOUT,  /* its running job ran out of time */
    KILL_PROTOCOL, /* it sent something that is not the protocol */
    KILL_START,    /* it did not say hello in time */
    KILL_RETIRE,   /* the pool shrank (blameless) */
    KILL_FREE,     /* the pool is freed (blameless) */
    KILL_CANCEL,   /* its running job was cancelled (blameless for the others) */
} kill_reason;

typedef struct worker {
    pp_pool *pool;
    struct worker *next;
    pp_worker_proc proc;      /* the process, its FIFO ends and its state page */
    pp_io pidio;
    pp_conn *conn;
    worker_state state;
    pp_pool_job *head, *tail; /* in flight, in the order the worker runs them */
    int inflight;
    unsigned sent;            /* jobs sent to it (taken back or not) */
    pp_pool_job *timed_out;   /* the job a timeout kill is for */
    uint64_t revoked_hi;      /* highest job id taken back from this worker */
    uint64_t flush_asked;     /* running job for which a flush was requested */
    uint8_t *defined;         /* task ids already sent to this worker */
    uint32_t ndefined;
    /* The shared buffers it has mapped (by id; 0 = empty slot), the size
     * it mapped each at, and when each was last used (a clock). */
    struct {
        uint64_t id;
        size_t size;
        unsigned used;
    } slot[PP_SHM_SLOTS];
    unsigned slot_clock;
    int broken;               /* an fd went to it without its WSHM frame */
    uint64_t owner;           /* the result buffers only it writes (pp_shm.h) */
    pp_timer timer;           /* start deadline, then job timeouts */
    char note[PP_ERR_LEN];
} worker;

typedef struct task {
    char *module, *symbol;
    size_t big_result;        /* its last result of PP_SHM_MIN bytes or more (0:
                                 none yet): its jobs are offered a buffer that size */
} task;

struct pp_pool {
    pp_loop *loop;
    pp_pool_cbs cbs;
    void *ud;
    char *worker_path;
    char *tmpdir;
    uint32_t max_frame;
    unsigned job_memory_mib;      /* 0 = no limit */
    unsigned max_jobs;            /* per worker; 0 = no limit */
    int user_set;                 /* workers run as uid:gid */
    int output_fd;                /* pp_pool_opts.output_fd */
    uid_t uid;
    gid_t gid;
    const pp_log *log;
    char **envp;
    worker *workers;
    int target;
    int nready;               /* READY workers */
    int nalive;               /* STARTING + READY workers */
    task *tasks;
    uint32_t ntasks, captasks;
    uint64_t seq;
    double avg_ns;            /* moving average of task run time */
    int depth;                /* jobs in flight allowed per worker */
    size_t inflight;
    int fails;                /* workers in a row that failed to start */
    int backoff_over;         /* the wait after the last failure has passed */
    char lastfail[2 * PP_ERR_LEN + PATH_MAX];
    pp_timer respawn;
    pp_timer rebalance;       /* when a running job will count as long */
    pp_shm_cache *shm;        /* NULL: only the pipes */
    pp_timer shm_trim;        /* releases shared buffers after SHM_IDLE */
    double shm_last;          /* pp_now() of the last job through shared memory */
    int freeing;
};

static void worker_lost(worker *w, kill_reason why);
static void hand_back(pp_pool *p, pp_pool_job *list, pp_pool_job *culprit, kill_reason why,
                      const char *reason);
static int maintain(pp_pool *p);
static void retire(worker *w);
static void rebalance_timer(pp_loop *loop, pp_timer *t);
static void shm_trim_timer(pp_loop *loop, pp_timer *t);

static void pop_job(worker *w, pp_pool_job *j, uint64_t run_ns);

/* The pool's reference of a job leaving it: the buffer offered for its
 * result. */
static void shm_release(pp_pool_job *j)
{
    pp_shm_unref(j->rshm);
    j->rshm = NULL;
}

/* The job the worker is running now and its start (pp_now() seconds), or
 * NULL when it runs none we hold. */
static pp_pool_job *running_job(const worker *w, double *start)
{
    if (!w->proc.st)
        return NULL;
    uint64_t seq, again, ns;
    do { /* a consistent pair: the job may change between the loads */
        seq = atomic_load_explicit(&w->proc.st->seq, memory_order_acquire);
        ns = atomic_load_explicit(&w->proc.st->start_ns, memory_order_acquire);
        again = atomic_load_explicit(&w->proc.st->seq, memory_order_acquire);
    } while (seq != again);
    if (!seq)
        return NULL;
    for (pp_pool_job *j = w->head; j; j = j->next) {
        if (j->seq == seq) {
            if (start)
                *start = (double)ns * 1e-9;
            return j;
        }
    }
    return NULL;
}

/* Arms the timer for the earliest moment a job the worker holds may run out
 * of time: the running job's exact deadline, else the shortest timeout
 * counted from now (no job that starts later can expire sooner). */
static void arm_timeout(worker *w)
{
    pp_pool *p = w->pool;
    double start, shortest = -1;
    pp_pool_job *run = running_job(w, &start);
    if (run && run->timeout > 0) {
        pp_timer_start(p->loop, &w->timer, start + run->timeout);
        return;
    }
    for (pp_pool_job *j = w->head; j; j = j->next)
        if (j->timeout > 0 && (shortest < 0 || j->timeout < shortest))
            shortest = j->timeout;
    if (shortest > 0)
        pp_timer_start(p->loop, &w->timer, pp_now() + shortest);
    else
        pp_timer_stop(p->loop, &w->timer);
}

static void update_depth(pp_pool *p, uint64_t run_ns)
{
    p->avg_ns = p->avg_ns > 0 ? 0.8 * p->avg_ns + 0.2 * (double)run_ns : (double)run_ns;
    /* Long jobs: one at a time per worker, so that no job waits behind
     * another while a worker elsewhere is idle (load balance). */
    p->depth = pp_pipeline_depth(PP_PIPELINE_LOCAL_S, p->avg_ns * 1e-9, 0);
}

/* Whether a RESULT's flags and data do not answer job j: PP_WIRE_F_BATCH
 * on exactly the PP_DONE of a batch, its data a well-formed batch result
 * with as many items as the argument had (which the owner and libpp then
 * read without checking against the job). */
static int batch_result_bad(const pp_pool_job *j, uint16_t flags, const pp_msg_result *r)
{
    int is_batch = (j->flags & PP_WIRE_F_BATCH) != 0;
    if (flags & ~PP_WIRE_F_BATCH)
        return 1;
    if (!(flags & PP_WIRE_F_BATCH))
        return is_batch && r->status == PP_DONE;
    uint32_t n;
    return !is_batch || r->status != PP_DONE || j->len < 4 ||
           pp_proto_batch_check(r->data, r->len, PP_BATCH_RESULTS, &n) != 0 ||
           n != pp_load32(j->arg);
}

/* A RESULT.  0, or -1 with the reason in w->note. */
static int on_result(worker *w, const pp_frame *f)
{
    pp_pool *p = w->pool;
    pp_pool_job *j = w->head;
    pp_msg_result r;
    if (pp_proto_result_decode(f->payload, f->hdr.len,
                               1u << PP_DONE | 1u << PP_FAILED | 1u << PP_ELOAD |
                                   1u << PP_WORKER_REVOKED,
                               &r) != 0) {
        snprintf(w->note, sizeof w->note, "worker %d sent a malformed result", (int)w->proc.pid);
        return -1;
    }
    if (r.status == PP_WORKER_REVOKED && f->hdr.id <= w->revoked_hi)
        return 0; /* a job we took back: it did not run */
    if (!j || f->hdr.id != j->seq || r.status == PP_WORKER_REVOKED) {
        snprintf(w->note, sizeof w->note, "worker %d sent a result for no job it held",
                 (int)w->proc.pid);
        return -1;
    }
    if (batch_result_bad(j, f->hdr.flags, &r)) {
        snprintf(w->note, sizeof w->note, "worker %d sent a malformed batch result",
                 (int)w->proc.pid);
        return -1;
    }
    j->rflags = f->hdr.flags & PP_WIRE_F_BATCH;
    uint8_t *block = pp_conn_take(w->conn, f);
    if (!block) {
        snprintf(w->note, sizeof w->note, "out of memory for a result");
        return -1;
    }
    /* A large result came through the pipe: the task's next jobs are
     * offered a buffer; one offered and not used: no longer. */
    if (!j->rflags && r.status == PP_DONE && (r.len >= PP_SHM_MIN || j->rshm))
        p->tasks[j->task].big_result = r.len >= PP_SHM_MIN ? r.len : 0;
    shm_release(j);
    pop_job(w, j, r.run_ns);
    /* The data stays where it came: PP_RESULT_HDR bytes into the block. */
    p->cbs.on_done(p, j, r.status, block, (const char *)block + PP_RESULT_HDR, r.len, r.run_ns,
                   p->ud);
    return 0;
}

/* An SRESULT: the result is in the buffer offered to job j.  0, or -1 with
 * the reason in w->note. */
static int on_sresult(worker *w, const pp_frame *f)
{
    pp_pool *p = w->pool;
    pp_pool_job *j = w->head;
    pp_msg_sresult m;
    pp_shm *b = j ? j->rshm : NULL;
    if (pp_proto_sresult_decode(f, &m) != 0 || !b || f->hdr.id != j->seq ||
        m.rslot >= PP_SHM_SLOTS || w->slot[m.rslot].id != b->id || m.len > p->max_frame ||
        m.size < b->cap || m.size > (uint64_t)p->max_frame + SHM_SLACK ||
        pp_shm_remap(b, (size_t)m.size) != 0) {
        snprintf(w->note, sizeof w->note, "worker %d sent a malformed shared-memory result",
                 (int)w->proc.pid);
        return -1;
    }
    w->slot[m.rslot].size = b->cap;
    p->tasks[j->task].big_result = (size_t)m.len;
    b->base[m.len] = 0; /* ours to guarantee, whatever the worker wrote */
    j->rflags = 0;
    pop_job(w, j, m.run_ns);
    p->cbs.on_done(p, j, PP_DONE, NULL, (const char *)b->base, (size_t)m.len, m.run_ns, p->ud);
    return 0;
}

/* Job j, the worker's first, answered: it leaves the worker. */
static void pop_job(worker *w, pp_pool_job *j, uint64_t run_ns)
{
    pp_pool *p = w->pool;
    w->head = j->next;
    if (!w->head)
        w->tail = NULL;
    w->inflight--;
    p->inflight--;
    update_depth(p, run_ns);
    if (!w->head)
        pp_timer_stop(p->loop, &w->timer);
    if (w->state == W_RETIRING && w->inflight == 0)
        worker_lost(w, KILL_RETIRE);
}

static int on_hello(worker *w, const pp_frame *f)
{
    pp_pool *p = w->pool;
    pp_msg_whello m;
    if (pp_proto_whello_decode(f, &m) != 0 || m.pid != (uint32_t)w->proc.pid ||
        w->state != W_STARTING) {
        snprintf(w->note, sizeof w->note, "worker %d sent a bad hello", (int)w->proc.pid);
        return -1;
    }
    pp_timer_stop(p->loop, &w->timer);
    w->state = W_READY;
    p->nready++;
    p->fails = 0;
    pp_log(p->log, PP_LOG_DEBUG, "worker %d ready", (int)w->proc.pid);
    if (p->nalive < p->target)
        maintain(p);
    return 0;
}

static int worker_frame(pp_conn *c, const pp_frame *f, void *data)
{
    (void)c;
    worker *w = data;
    int rc;
    if (f->hdr.type == PP_T_RESULT)
        rc = on_result(w, f);
    else if (f->hdr.type == PP_T_SRESULT)
        rc = on_sresult(w, f);
    else if (f->hdr.type == PP_T_WHELLO)
        rc = on_hello(w, f);
    else {
        snprintf(w->note, sizeof w->note, "worker %d sent an unexpected frame of type %u",
                 (int)w->proc.pid, f->hdr.type);
        rc = -1;
    }
    if (rc != 0) {
        if (w->state != W_DEAD)
            worker_lost(w, KILL_PROTOCOL);
        return -1;
    }
    return w->state == W_DEAD ? -1 : 0;
}

static void worker_close(pp_conn *c, const char *why, void *data)
{
    (void)c;
    worker *w = data;
    if (w->state == W_DEAD)
        return;
    if (strncmp(why, "end of file", 11) == 0) {
        worker_lost(w, KILL_NONE);
    } else {
        snprintf(w->note, sizeof w->note, "worker %d: %s", (int)w->proc.pid, why);
        worker_lost(w, KILL_PROTOCOL);
    }
}

static void worker_pidfd(pp_loop *loop, pp_io *io, unsigned ev)
{
    (void)loop;
    (void)ev;
    worker *w = io->data;
    if (w->state != W_DEAD)
        worker_lost(w, KILL_NONE);
}

static void worker_timer(pp_loop *loop, pp_timer *t)
{
    (void)loop;
    worker *w = t->data;
    if (w->state == W_STARTING) {
        snprintf(w->note, sizeof w->note, "worker %d did not start within %.0f s",
                 (int)w->proc.pid, START_DEADLINE);
        worker_lost(w, KILL_START);
        return;
    }
    double start;
    pp_pool_job *run = running_job(w, &start);
    if (run && run->timeout > 0 && pp_now() >= start + run->timeout) {
        snprintf(w->note, sizeof w->note, "timed out after %g s; worker %d killed",
                 run->timeout, (int)w->proc.pid);
        w->timed_out = run;
        worker_lost(w, KILL_TIMEOUT);
        return;
    }
    arm_timeout(w);
}

static void free_worker(pp_loop *loop, void *data)
{
    (void)loop;
    worker *w = data;
    free(w->defined);
    free(w);
}

static int spawn_worker(pp_pool *p, char *err)
{
    worker *w = calloc(1, sizeof *w);
    if (!w) {
        pp_seterr(err, "out of memory");
        return -1;
    }
    w->pool = p;
    w->timer = (pp_timer){.fn = worker_timer, .data = w};
    w->owner = p->shm ? pp_shm_owner_new(p->shm) : 0;
    pp_spawn_opts so = {.worker_path = p->worker_path, .tmpdir = p->tmpdir, .envp = p->envp,
                        .max_frame = p->max_frame, .job_memory_mib = p->job_memory_mib,
                        .user_set = p->user_set, .uid = p->uid, .gid = p->gid,
                        .output_fd = p->output_fd};
    if (pp_spawn_worker(&so, &w->proc, err) != 0) {
        free(w);
        return -1;
    }
    if (w->proc.pidfd >= 0) {
        w->pidio = (pp_io){.fd = w->proc.pidfd, .fn = worker_pidfd, .data = w};
        if (pp_loop_add(p->loop, &w->pidio, PP_EV_READ) != 0) {
            close(w->proc.pidfd);
            w->proc.pidfd = -1;
        }
    }
    pp_conn_cbs cbs = {.on_frame = worker_frame, .on_close = worker_close};
    w->conn = pp_conn_new(p->loop, w->proc.rfd, w->proc.wfd, p->max_frame + 64, PP_T_MAX, NULL,
                          &cbs, w);
    if (!w->conn) {
        pp_seterr(err, "out of memory");
        char desc[PP_ERR_LEN];
        if (w->proc.pidfd >= 0)
            pp_loop_del(p->loop, &w->pidio);
        pp_spawn_end(&w->proc, desc, sizeof desc);
        pp_spawn_unmap(&w->proc);
        close(w->proc.rfd);
        close(w->proc.wfd);
        close(w->proc.sfd);
        free(w);
        return -1;
    }
    w->state = W_STARTING;
    pp_timer_start(p->loop, &w->timer, pp_now() + START_DEADLINE);
    w->next = p->workers;
    p->workers = w;
    p->nalive++;
    return 0;
}

/* Ends a job with an error text (copied). */
static void end_job(pp_pool *p, pp_pool_job *j, int status, const char *msg,
                    const char *suffix)
{
    shm_release(j);
    size_t a = strlen(msg), b = strlen(suffix);
    char *text = malloc(a + b + 1);
    if (text) {
        memcpy(text, msg, a);
        memcpy(text + a, suffix, b + 1);
    }
    p->cbs.on_done(p, j, status, text, text, text ? a + b : 0, 0, p->ud);
}

/* The worker is gone or must go: kill its process group, reap it, end the
 * job it was running with the reason and hand the others back. */
static void worker_lost(worker *w, kill_reason why)
{
    pp_pool *p = w->pool;
    worker_state prev = w->state;
    w->state = W_DEAD;
    if (w->proc.pidfd >= 0)
        pp_loop_del(p->loop, &w->pidio);
    char desc[PP_ERR_LEN];
    pid_t pid = w->proc.pid;
    pp_spawn_end(&w->proc, desc, sizeof desc); /* killed and reaped: its page is final */
    close(w->proc.sfd);
    w->proc.sfd = -1;
    pp_timer_stop(p->loop, &w->timer);
    pp_conn_free(w->conn); /* drops queued bytes that point into job arguments */
    w->conn = NULL;
    if (prev == W_READY)
        p->nready--;
    if (prev == W_READY || prev == W_STARTING)
        p->nalive--;
    for (worker **pw = &p->workers; *pw; pw = &(*pw)->next) {
        if (*pw == w) {
            *pw = w->next;
            break;
        }
    }
    /* Which job is to blame: the one that timed out, else the one running
     * (the shared page says which).  Retiring or freeing blames nobody. */
    pp_pool_job *culprit = NULL;
    if (why == KILL_TIMEOUT || why == KILL_CANCEL)
        culprit = w->timed_out;
    else if (why != KILL_FREE && why != KILL_RETIRE)
        culprit = running_job(w, NULL);
    pp_spawn_unmap(&w->proc);
    pp_pool_job *list = w->head;
    w->head = w->tail = NULL;
    p->inflight -= (size_t)w->inflight;
    w->inflight = 0;

    if (prev == W_STARTING && why != KILL_FREE && why != KILL_RETIRE) {
        p->fails++;
        snprintf(p->lastfail, sizeof p->lastfail, "worker %s failed to start: %s",
                 p->worker_path, why == KILL_START ? w->note : desc);
        pp_log(p->log, PP_LOG_ERROR, "%s", p->lastfail);
    }
    const char *reason = (why == KILL_TIMEOUT || why == KILL_PROTOCOL) ? w->note : desc;
    if (why == KILL_PROTOCOL)
        pp_log(p->log, PP_LOG_WARN, "%s; worker replaced", w->note);
    else if (why == KILL_CANCEL)
        pp_log(p->log, PP_LOG_INFO, "worker %d killed: its job was cancelled; worker replaced",
               (int)pid);
    else if (culprit && why != KILL_TIMEOUT)
        pp_log(p->log, PP_LOG_INFO, "%s while running a job; worker replaced", desc);
    hand_back(p, list, culprit, why, reason);
    if (pp_loop_defer(p->loop, free_worker, w) != 0)
        free_worker(p->loop, w); /* nothing else points at it any more */
    if (!p->freeing)
        maintain(p);
}

/* The jobs a lost worker held: the culprit (if any) ends as `why` says,
 * the others go back to the owner, last-to-first; a job whose workers keep
 * dying under it (the machine, not the job, is the likely cause) is failed
 * after MAX_REQUEUES so that nothing loops forever. */
static void hand_back(pp_pool *p, pp_pool_job *list, pp_pool_job *culprit, kill_reason why,
                      const char *reason)
{
    pp_pool_job *rev = NULL;
    while (list) {
        pp_pool_job *n = list->next;
        if (list != culprit) {
            list->next = rev;
            rev = list;
        }
        list = n;
    }
    int blameless = why == KILL_FREE || why == KILL_RETIRE || why == KILL_CANCEL;
    while (rev) {
        pp_pool_job *n = rev->next;
        rev->next = NULL;
        shm_release(rev);
        if (!blameless && !culprit && ++rev->requeues > MAX_REQUEUES)
            end_job(p, rev, PP_CRASHED, reason, " (its workers died repeatedly)");
        else
            p->cbs.on_requeue(p, rev, p->ud);
        rev = n;
    }
    if (culprit) {
        culprit->next = NULL;
        if (why == KILL_CANCEL)
            end_job(p, culprit, PP_CANCELLED, "cancelled while it ran; its worker was killed", "");
        else
            end_job(p, culprit, why == KILL_TIMEOUT ? PP_TIMEOUT : PP_CRASHED, reason, "");
    }
}

static void respawn_timer(pp_loop *loop, pp_timer *t)
{
    (void)loop;
    pp_pool *p = t->data;
    p->backoff_over = 1;
    maintain(p);
}

/* Starts workers until the target is met.  After start failures it probes
 * with one worker at a time, with exponential backoff, so that a broken
 * worker binary does not make us spin. */
static int maintain(pp_pool *p)
{
    if (pp_timer_armed(&p->respawn))
        return 0;
    while (p->nalive < p->target) {
        if (p->fails > 0 && !p->backoff_over) {
            double delay = 0.1;
            for (int i = 1; i < p->fails && delay < MAX_BACKOFF; i++)
                delay *= 2;
            pp_timer_start(p->loop, &p->respawn, pp_now() + PP_MIN(delay, MAX_BACKOFF));
            return 0;
        }
        p->backoff_over = 0;
        char err[PP_ERR_LEN];
        if (spawn_worker(p, err) != 0) {
            p->fails++;
            snprintf(p->lastfail, sizeof p->lastfail, "%s", err);
            pp_log(p->log, PP_LOG_ERROR, "%s", err);
            continue;
        }
        if (p->fails > 0)
            return 0; /* the probe's hello resumes the rest */
    }
    return 0;
}

/* ---- public ---- */

pp_pool *pp_pool_new(pp_loop *loop, const pp_pool_opts *opts, const pp_pool_cbs *cbs,
                     void *ud, char *err)
{
    pp_pool *p = calloc(1, sizeof *p);
    if (!p) {
        pp_seterr(err, "out of memory");
        return NULL;
    }
    p->loop = loop;
    p->cbs = *cbs;
    p->ud = ud;
    p->max_frame = opts->max_frame;
    p->job_memory_mib = opts->job_memory_mib;
    p->max_jobs = opts->max_jobs_per_worker;
    p->user_set = opts->worker_user_set;
    p->output_fd = opts->output_fd;
    p->uid = opts->worker_uid;
    p->gid = opts->worker_gid;
    p->log = opts->log;
    p->depth = 1;
    p->respawn.fn = respawn_timer;
    p->respawn.data = p;
    p->rebalance.fn = rebalance_timer;
    p->rebalance.data = p;
    p->shm = opts->shm;
    p->shm_trim.fn = shm_trim_timer;
    p->shm_trim.data = p;
    const char *tmp = opts->tmpdir ? opts->tmpdir : getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    p->tmpdir = strdup(tmp);
    p->worker_path = strdup(opts->worker_path);
    p->envp = pp_spawn_env(opts->env);
    if (!p->tmpdir || !p->worker_path || !p->envp) {
        pp_seterr(err, "out of memory");
        goto fail;
    }
    if (access(p->worker_path, X_OK) != 0) {
        pp_seterr(err, "cannot run worker %s: %s", p->worker_path, strerror(errno));
        goto fail;
    }
    pp_spawn_sweep(p->tmpdir, p->log);
    p->target = opts->workers;
    /* The first worker starts synchronously enough to report a bad binary. */
    for (int i = 0; i < p->target; i++) {
        if (spawn_worker(p, err) != 0)
            goto fail;
    }
    return p;
fail:
    pp_pool_free(p);
    return NULL;
}

void pp_pool_free(pp_pool *p)
{
    if (!p)
        return;
    p->freeing = 1;
    p->target = 0;
    while (p->workers)
        worker_lost(p->workers, KILL_FREE);
    pp_timer_stop(p->loop, &p->respawn);
    pp_timer_stop(p->loop, &p->rebalance);
    pp_timer_stop(p->loop, &p->shm_trim);
    for (uint32_t i = 0; i < p->ntasks; i++) {
        free(p->tasks[i].module);
        free(p->tasks[i].symbol);
    }
    free(p->tasks);
    pp_spawn_env_free(p->envp);
    free(p->tmpdir);
    free(p->worker_path);
    free(p);
}

int pp_pool_resize(pp_pool *p, int n)
{
    if (n < 0)
        return -1;
    p->target = n;
    /* Remove surplus: starting workers first, then the least busy. */
    while (p->nalive > p->target) {
        worker *pick = NULL;
        for (worker *w = p->workers; w; w = w->next) {
            if (w->state == W_STARTING) {
                pick = w;
                break;
            }
            if (w->state == W_READY && (!pick || w->inflight < pick->inflight))
                pick = w;
        }
        if (!pick)
            break;
        if (pick->state == W_STARTING)
            worker_lost(pick, KILL_RETIRE);
        else
            retire(pick);
    }
    return maintain(p);
}

int pp_pool_failures(const pp_pool *p)
{
    return p->fails;
}

const char *pp_pool_last_failure(const pp_pool *p)
{
    return p->lastfail;
}

int pp_pool_target(const pp_pool *p)
{
    return p->target;
}

int pp_pool_ready(const pp_pool *p)
{
    return p->nready;
}

size_t pp_pool_inflight(const pp_pool *p)
{
    return p->inflight;
}

int pp_pool_busy(const pp_pool *p)
{
    int n = 0;
    for (const worker *w = p->workers; w; w = w->next)
        n += w->inflight > 0;
    return n;
}

size_t pp_pool_workers(const pp_pool *p, pp_pool_worker_info *out, size_t max)
{
    size_t n = 0;
    for (const worker *w = p->workers; w; w = w->next, n++) {
        if (n >= max)
            continue;
        out[n] = (pp_pool_worker_info){.pid = w->proc.pid, .inflight = w->inflight};
        out[n].running = running_job(w, &out[n].started);
    }
    return n;
}

int pp_pool_task(pp_pool *p, const char *module, const char *symbol, uint32_t *id)
{
    if (strlen(module) >= PATH_MAX || strlen(symbol) > 1024)
        return -1;
    for (uint32_t i = 0; i < p->ntasks; i++) {
        if (strcmp(p->tasks[i].module, module) == 0 && strcmp(p->tasks[i].symbol, symbol) == 0) {
            *id = i;
            return 0;
        }
    }
    if (p->ntasks == p->captasks) {
        uint32_t cap = p->captasks ? p->captasks * 2 : 8;
        task *t = realloc(p->tasks, cap * sizeof *t);
        if (!t)
            return -1;
        p->tasks = t;
        p->captasks = cap;
    }
    char *m = strdup(module), *s = strdup(symbol);
    if (!m || !s) {
        free(m);
        free(s);
        return -1;
    }
    p->tasks[p->ntasks] = (task){.module = m, .symbol = s};
    *id = p->ntasks++;
    return 0;
}

/* The threshold past which a running job counts as long. */
static double long_job(const pp_pool *p)
{
    return PP_MAX(LONG_JOB, 20e-9 * p->avg_ns);
}

/* How long the worker's current job has run (0 when none). */
static double running_for(const worker *w, double now)
{
    if (!w->proc.st || !atomic_load_explicit(&w->proc.st->seq, memory_order_acquire))
        return 0;
    return now - (double)atomic_load_explicit(&w->proc.st->start_ns, memory_order_relaxed) * 1e-9;
}

/* A READY worker takes no more jobs: it finishes those it holds, then goes
 * (at once if it holds none), and a new one starts in its place. */
static void retire(worker *w)
{
    pp_pool *p = w->pool;
    if (w->state != W_READY)
        return;
    w->state = W_RETIRING;
    p->nready--;
    p->nalive--;
    if (w->inflight == 0)
        worker_lost(w, KILL_RETIRE);
    else
        maintain(p);
}

/* A retiring worker whose jobs were all taken back has nothing left to
 * answer: it goes now. */
static void retire_if_done(worker *w)
{
    if (w->state == W_RETIRING && w->inflight == 0)
        worker_lost(w, KILL_RETIRE);
}

static worker *pick_worker(const pp_pool *p)
{
    worker *best = NULL;
    double now = -1;
    for (worker *w = p->workers; w; w = w->next) {
        if (w->state != W_READY || w->inflight >= p->depth)
            continue;
        if (w->inflight > 0) {
            /* Nothing more behind a job that turned out long (as of this
             * turn: a job a turn older than the threshold waits a turn). */
            if (now < 0)
                now = pp_loop_now(p->loop);
            if (running_for(w, now) > long_job(p))
                continue;
        }
        if (!best || w->inflight < best->inflight)
            best = w;
        if (w->inflight == 0)
            break;
    }
    return best;
}

int pp_pool_has_room(const pp_pool *p)
{
    return pick_worker(p) != NULL;
}

static int send_taskdef(worker *w, uint32_t id)
{
    pp_pool *p = w->pool;
    if (id >= w->ndefined) {
        uint32_t n = PP_MAX(p->ntasks, id + 1);
        uint8_t *d = realloc(w->defined, n);
        if (!d)
            return -1;
        memset(d + w->ndefined, 0, n - w->ndefined);
        w->defined = d;
        w->ndefined = n;
    }
    if (w->defined[id])
        return 0;
    pp_buf b;
    pp_buf_init(&b, 2 * PATH_MAX);
    int rc = -1;
    if (pp_proto_taskdef(&b, id, p->tasks[id].module, p->tasks[id].symbol) != 0)
        goto out;
    if (pp_conn_send(w->conn, PP_T_TASKDEF, 0, id, b.data, b.len) != 0)
        goto out;
    w->defined[id] = 1;
    rc = 0;
out:
    pp_buf_reset(&b);
    return rc;
}

/* ---- shared memory ---- */

/* Whether a job the worker holds uses the buffer of this id. */
static int slot_busy(const worker *w, uint64_t id)
{
    for (const pp_pool_job *j = w->head; j; j = j->next)
        if ((j->ashm && j->ashm->id == id) || (j->rshm && j->rshm->id == id))
            return 1;
    return 0;
}

/* The worker's slot for buffer b: where it has b mapped at its size, else
 * the least recently used slot that no job it holds needs (nor the buffer
 * `keep`), which b is then mapped into (its fd through the socket first,
 * then the WSHM frame that the worker answers by taking it).  -1 when no
 * slot is free or the fd cannot go (the pipes then carry the job). */
static int slot_for(worker *w, pp_shm *b, uint64_t keep)
{
    int pick = -1, lru = -1;
    for (int i = 0; i < PP_SHM_SLOTS && pick < 0; i++) {
        if (w->slot[i].id != b->id)
            continue;
        if (w->slot[i].size == b->cap) {
            w->slot[i].used = ++w->slot_clock;
            return i;
        }
        if (slot_busy(w, b->id))
            return -1; /* a job still reads it at the old size */
        pick = i; /* mapped at another size: again */
    }
    for (int i = 0; i < PP_SHM_SLOTS && pick < 0; i++) {
        uint64_t id = w->slot[i].id;
        if (!id)
            pick = i;
        else if (id != keep && !slot_busy(w, id) &&
                 (lru < 0 || w->slot[i].used < w->slot[lru].used))
            lru = i;
    }
    if (pick < 0)
        pick = lru;
    if (pick < 0 || b->fd < 0 || pp_shm_send_fd(w->proc.sfd, (uint32_t)pick, b->fd) != 0)
        return -1;
    uint8_t size[8];
    pp_store64(size, b->cap);
    w->slot[pick].id = 0;
    if (pp_conn_send(w->conn, PP_T_WSHM, 0, (uint64_t)pick, size, sizeof size) != 0) {
        /* The fd went without its frame: the worker would pair it with the
         * next one.  Out of memory, so rare: this worker goes. */
        snprintf(w->note, sizeof w->note, "out of memory passing a buffer to worker %d",
                 (int)w->proc.pid);
        w->broken = 1;
        return -1;
    }
    w->slot[pick].id = b->id;
    w->slot[pick].size = b->cap;
    w->slot[pick].used = ++w->slot_clock;
    return pick;
}

/* Whether arg .. arg + len lies inside buffer b. */
static int inside(const pp_shm *b, const void *arg, size_t len)
{
    uintptr_t a = (uintptr_t)arg, lo = (uintptr_t)b->base;
    return a >= lo && len <= b->cap && a - lo <= b->cap - len;
}

/* Sends job j as an SJOB when its argument or its result goes through
 * shared memory: a large argument in the owner's buffer (one elsewhere
 * goes inline), and a buffer offered for the result of a large argument
 * or of a task whose results were large.  1 sent, 0 not (the caller sends
 * a JOB), -1 failed. */
static int send_sjob(pp_pool *p, worker *w, pp_pool_job *j)
{
    int big_arg = j->len >= PP_SHM_MIN;
    size_t hint = p->shm ? p->tasks[j->task].big_result : 0;
    if (!p->shm || (j->flags & PP_WIRE_F_BATCH) || (!big_arg && !hint))
        return 0;
    pp_msg_sjob m = {.task = j->task, .aslot = PP_SHM_NONE, .rslot = PP_SHM_NONE,
                     .alen = j->len};
    uint64_t keep = 0;
    pp_shm *b = j->ashm;
    if (big_arg && b && inside(b, j->arg, j->len)) {
        int slot = slot_for(w, b, 0);
        if (slot >= 0) {
            m.aslot = (uint32_t)slot;
            m.aoff = (uint64_t)((const uint8_t *)j->arg - b->base);
            keep = b->id;
        }
    }
    /* The worker's own buffers only: it writes them (pp_shm.h). */
    j->rshm = pp_shm_get(p->shm, PP_MAX(hint, big_arg ? j->len : 0), w->owner, NULL);
    int rslot = j->rshm ? slot_for(w, j->rshm, keep) : -1;
    if (rslot >= 0) {
        m.rslot = (uint32_t)rslot;
    } else {
        pp_shm_unref(j->rshm);
        j->rshm = NULL;
    }
    if (w->broken)
        return -1;
    if (m.aslot == PP_SHM_NONE && m.rslot == PP_SHM_NONE)
        return 0;
    uint8_t head[PP_SJOB_HEAD];
    pp_proto_sjob(head, &m);
    int inl = m.aslot == PP_SHM_NONE;
    if (pp_conn_send_ref(w->conn, PP_T_SJOB, 0, j->seq, head, sizeof head, inl ? j->arg : NULL,
                         inl ? j->len : 0, NULL, NULL) != 0)
        return -1;
    p->shm_last = pp_now();
    if (!pp_timer_armed(&p->shm_trim))
        pp_timer_start(p->loop, &p->shm_trim, p->shm_last + SHM_IDLE);
    return 1;
}

/* No large job for SHM_IDLE seconds: the workers unmap the buffers no job
 * of theirs needs, and the cache lets go of those idle that long, so that
 * an idle program or node holds no shared memory. */
static void shm_trim_timer(pp_loop *loop, pp_timer *t)
{
    pp_pool *p = t->data;
    if (pp_now() - p->shm_last < SHM_IDLE) {
        pp_timer_start(loop, t, p->shm_last + SHM_IDLE);
        return;
    }
    static const uint8_t none[8];
    for (worker *w = p->workers; w; w = w->next) {
        if (w->state != W_READY && w->state != W_RETIRING)
            continue;
        for (int i = 0; i < PP_SHM_SLOTS; i++)
            if (w->slot[i].id && !slot_busy(w, w->slot[i].id) &&
                pp_conn_send(w->conn, PP_T_WSHM, 0, (uint64_t)i, none, sizeof none) == 0)
                w->slot[i].id = 0;
    }
    pp_shm_cache_trim(p->shm, 0); /* all idle: one freed just now too */
}

int pp_pool_submit(pp_pool *p, pp_pool_job *j)
{
    if (j->task >= p->ntasks || j->len > p->max_frame || (j->flags & ~PP_WIRE_F_BATCH))
        return -1;
    worker *w = pick_worker(p);
    if (!w)
        return -1;
    if (send_taskdef(w, j->task) != 0)
        return -1;
    uint8_t head[PP_JOB_HEAD];
    pp_proto_job_head(head, j->task);
    j->seq = ++p->seq;
    j->rflags = 0;
    int rc = send_sjob(p, w, j);
    if (rc == 0)
        rc = pp_conn_send_ref(w->conn, PP_T_JOB, j->flags, j->seq, head, sizeof head, j->arg,
                              j->len, NULL, NULL);
    if (rc < 0) {
        shm_release(j);
        if (w->broken)
            worker_lost(w, KILL_PROTOCOL);
        return -1;
    }
    j->next = NULL;
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    w->inflight++;
    p->inflight++;
    if (j->timeout > 0 && !pp_timer_armed(&w->timer))
        arm_timeout(w);
    if (p->max_jobs && ++w->sent >= p->max_jobs)
        retire(w);
    return 0;
}

/* Takes back the jobs queued behind the one the worker is running. */
static void take_back(worker *w)
{
    pp_pool *p = w->pool;
    uint64_t last = w->tail->seq;
    uint64_t g = atomic_load_explicit(&w->proc.st->gate, memory_order_acquire), bound;
    /* The bound never goes down: taken back again before the worker
     * claimed anything, the list's tail may be below the jobs revoked the
     * first time, which the worker would then run after all. */
    do
        bound = (g & PP_WORKER_REVOKE) && (g & ~PP_WORKER_REVOKE) > last
                    ? g & ~PP_WORKER_REVOKE
                    : last;
    while (!atomic_compare_exchange_weak_explicit(&w->proc.st->gate, &g, PP_WORKER_REVOKE | bound,
                                                  memory_order_acq_rel, memory_order_acquire));
    /* Started so far: ids up to the worker's last claim (or, if it has
     * claimed nothing since the previous revocation, that bound). */
    uint64_t started = g & ~PP_WORKER_REVOKE;
    pp_pool_job *keep = NULL, *keep_tail = NULL, *back = NULL;
    int nback = 0;
    for (pp_pool_job *j = w->head, *n; j; j = n) {
        n = j->next;
        j->next = NULL;
        if (j->seq > started) {
            j->next = back; /* newest first, for on_requeue's order */
            back = j;
            nback++;
        } else {
            if (keep_tail)
                keep_tail->next = j;
            else
                keep = j;
            keep_tail = j;
        }
    }
    w->head = keep;
    w->tail = keep_tail;
    w->inflight -= nback;
    p->inflight -= (size_t)nback;
    w->revoked_hi = bound;
    /* Their owners may free the jobs now, while the frames of some may not
     * all be written yet (the worker reads none while it runs the long
     * one); it will answer them revoked unread, so zeros do as well. */
    if (nback && w->conn)
        pp_conn_zero_refs(w->conn);
    if (nback)
        pp_log(p->log, PP_LOG_DEBUG, "took %d job(s) back from worker %d (its job runs long)",
               nback, (int)w->proc.pid);
    while (back) {
        pp_pool_job *n = back->next;
        back->next = NULL;
        shm_release(back);
        p->cbs.on_requeue(p, back, p->ud);
        back = n;
    }
    if (!w->head)
        pp_timer_stop(p->loop, &w->timer);
}

void pp_pool_cancel_if(pp_pool *p, int (*match)(pp_pool_job *j, void *arg), void *arg)
{
    for (worker *w = p->workers, *next; w; w = next) {
        next = w->next; /* w may be replaced below; new workers join at the head */
        int any = 0;
        for (pp_pool_job *j = w->head; j && !any; j = j->next)
            any = match(j, arg);
        if (!any || (w->state != W_READY && w->state != W_RETIRING) || !w->proc.st)
            continue;
        /* Jobs not started yet come back to their owners; then the running
         * one, if it is to go, takes its worker with it. */
        take_back(w);
        pp_loop_break(p->loop); /* the owner re-sends the others this turn */
        pp_pool_job *run = running_job(w, NULL);
        if (run && match(run, arg)) {
            w->timed_out = run;
            worker_lost(w, KILL_CANCEL);
        } else {
            retire_if_done(w);
        }
    }
}

/* A job turned out long (it ran past long_job()): the results the worker
 * still batches from the jobs before it are asked for at once, and while
 * another worker is idle, the jobs queued behind it are taken back.
 * Otherwise look again when a running job may turn long. */
static void rebalance(pp_pool *p)
{
    int idle = 0;
    for (worker *w = p->workers; w && !idle; w = w->next)
        idle = w->state == W_READY && w->inflight == 0;
    pp_timer_stop(p->loop, &p->rebalance);
    double now = pp_now(), next = -1, limit = long_job(p);
    int took = 0;
    for (worker *w = p->workers; w; w = w->next) {
        if ((w->state != W_READY && w->state != W_RETIRING) || !w->proc.st || !w->head)
            continue;
        double start;
        pp_pool_job *run = running_job(w, &start);
        if (!run) {
            /* Jobs wait but none has started yet (a busy machine may keep
             * the worker off the CPU): look again, or a long first job
             * would go unnoticed with nothing else to wake the loop. */
            if (w->head->next && (next < 0 || now + limit < next))
                next = now + limit;
            continue;
        }
        if (run == w->head && !run->next)
            continue; /* nothing waits on this worker */
        if (now - start <= limit) {
            if (next < 0 || start + limit < next)
                next = start + limit;
            continue;
        }
        if (run != w->head && w->flush_asked != run->seq) {
            w->flush_asked = run->seq;
            atomic_store_explicit(&w->proc.st->flush_req, 1, memory_order_release);
            syscall(SYS_futex, &w->proc.st->flush_req, FUTEX_WAKE, 1, NULL, NULL, 0);
        }
        if (idle && run->next) {
            take_back(w);
            took = 1;
        }
    }
    if (took)
        pp_loop_break(p->loop); /* the owner sends them again this turn */
    if (next > 0)
        pp_timer_start(p->loop, &p->rebalance, next + 1e-4);
}

static void rebalance_timer(pp_loop *loop, pp_timer *t)
{
    (void)loop;
    rebalance(t->data);
}

void pp_pool_flush(pp_pool *p)
{
    rebalance(p);
    for (worker *w = p->workers; w; w = w->next)
        if (w->conn && pp_conn_outbytes(w->conn))
            pp_conn_flush(w->conn);
}
