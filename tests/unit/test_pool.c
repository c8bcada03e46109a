/* SPDX-License-Identifier: MIT */
/* test_pool.c -- pp_pool driven through a pp_loop of its own, with real
 * ppworker processes ($PP_WORKER) running the test task module
 * ($PP_TEST_TASKS): start-up, task ids, echo jobs, the pipeline depth,
 * crashes with requeued jobs, timeouts, resizing, load errors, freeing
 * with jobs in flight (no process, no FIFO directory left), batches (items,
 * failures, crashes, their cost per item) and workers replaced after
 * max_jobs_per_worker jobs.  Every wait is
 * bounded in turns and in time. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cunit_main.h"
#include "test_util.h"
#include "pp.h"
#include "pp_buf.h"
#include "pp_common.h"
#include "pp_loop.h"
#include "pp_pool.h"
#include "pp_proto.h"
#include "pp_shm.h"

#define MAX_FRAME (1u << 20)
#define WAIT 30.0 /* seconds for anything to happen (sanitizer builds are slow) */

/* ---- the owner's jobs ---- */

typedef struct tjob {
    pp_pool_job pj;     /* first: the callbacks get &pj */
    int idx;
    char *arg;          /* malloc'd, owned by the test */
    size_t len;
    int done;           /* on_done calls */
    int requeued;       /* on_requeue calls */
    int status;
    char *data;         /* the result, inside block */
    void *block;        /* malloc'd by the pool, ours */
    size_t dlen;
    int nul_ok;         /* data[dlen] == 0 */
    uint16_t rflags;    /* the RESULT's flags, as the pool saw them */
    uint64_t run_ns;
    double t_done;
    pp_shm *rshm;       /* the shared buffer holding the result, ours */
} tjob;

typedef struct ctx {
    pp_loop *loop;
    pp_pool *pool;
    char tmpdir[64];
    int ndone, nrequeue;
    int order_bad;      /* a callback for a job the test does not know */
    tjob *rq[256];      /* requeued jobs, in the order handed back */
    int nrq;
    int flushes;
    pp_shm_cache *shm;  /* given to the pool, or NULL */
} ctx;

static void on_done(pp_pool *p, pp_pool_job *j, int status, void *block, const char *data,
                    size_t len, uint64_t run_ns, void *ud)
{
    ctx *c = ud;
    tjob *t = (tjob *)j;
    if (p != c->pool && c->pool)
        c->order_bad++;
    if (t->block) /* done twice: keep the last, count it */
        free(t->block);
    t->done++;
    t->status = status;
    t->block = block;
    t->data = (char *)data;
    t->dlen = len;
    t->nul_ok = data && ((char *)data)[len] == 0;
    t->rflags = j->rflags;
    pp_shm_unref(t->rshm);
    t->rshm = j->rshm; /* taken: the pool passed its reference */
    j->rshm = NULL;
    t->run_ns = run_ns;
    t->t_done = pp_now();
    c->ndone++;
}

static void on_requeue(pp_pool *p, pp_pool_job *j, void *ud)
{
    ctx *c = ud;
    (void)p;
    tjob *t = (tjob *)j;
    t->requeued++;
    if (c->nrq < (int)PP_ARRAY_LEN(c->rq))
        c->rq[c->nrq++] = t;
    c->nrequeue++;
}

/* The owner's duty: flush the batched frames once per turn. */
static void flush_hook(pp_loop *loop, void *data)
{
    (void)loop;
    ctx *c = data;
    if (c->pool) {
        pp_pool_flush(c->pool);
        c->flushes++;
    }
}

static void job_init(tjob *t, int idx, uint32_t task, const void *arg, size_t len,
                     double timeout)
{
    memset(t, 0, sizeof *t);
    t->idx = idx;
    t->arg = malloc(len + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t->arg);
    if (len)
        memcpy(t->arg, arg, len);
    t->len = len;
    t->pj.arg = t->arg;
    t->pj.len = len;
    t->pj.task = task;
    t->pj.timeout = timeout;
}

static void job_text(tjob *t, int idx, uint32_t task, double timeout)
{
    char buf[64];
    int n = snprintf(buf, sizeof buf, "job %d: the quick brown fox", idx);
    job_init(t, idx, task, buf, (size_t)n, timeout);
}

static void job_free(tjob *t)
{
    free(t->arg);
    free(t->block);
    pp_shm_unref(t->rshm);
    pp_shm_unref(t->pj.ashm);
    t->rshm = t->pj.ashm = NULL;
    t->block = NULL;
    t->arg = NULL;
    t->data = NULL;
}

static int result_is_arg(const tjob *t)
{
    return t->done == 1 && t->status == PP_DONE && t->dlen == t->len && t->nul_ok &&
           (t->len == 0 || memcmp(t->data, t->arg, t->len) == 0);
}

/* ---- environment, processes, directories ---- */

static const char *env_path(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "\n  %s is not set (run through ctest)\n", name);
        return NULL;
    }
    return v;
}

/* ---- set-up and waits ---- */

static void teardown(struct ctx *c);

/* A failed precondition ends the test, still killing the workers so that
 * the next tests start clean. */
#define REQUIRE(c, cond)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            CU_FAIL(#cond);                                                  \
            teardown(c);                                                     \
            return;                                                          \
        }                                                                    \
    } while (0)

/* A loop with the flush hook and a pool of n workers in a private tmpdir,
 * each replaced after max_jobs jobs (0 = never), given the buffer cache
 * shm (NULL: none). */
static int setup_shm_opts(ctx *c, int n, unsigned max_jobs, pp_shm_cache *shm)
{
    memset(c, 0, sizeof *c);
    c->shm = shm; /* the pool's buffers: ours to free (teardown) */
    const char *worker = env_path("PP_WORKER");
    if (!worker || !env_path("PP_TEST_TASKS"))
        return -1;
    snprintf(c->tmpdir, sizeof c->tmpdir, "/tmp/pptest-pool-XXXXXX");
    if (!mkdtemp(c->tmpdir))
        return -1;
    c->loop = pp_loop_new();
    if (!c->loop || pp_loop_hook(c->loop, flush_hook, c) != 0)
        return -1;
    pp_pool_opts o = {.worker_path = worker, .workers = n, .max_frame = MAX_FRAME,
                      .tmpdir = c->tmpdir, .max_jobs_per_worker = max_jobs,
                      .shm = c->shm};
    pp_pool_cbs cbs = {.on_done = on_done, .on_requeue = on_requeue};
    char err[PP_ERR_LEN] = "";
    c->pool = pp_pool_new(c->loop, &o, &cbs, c, err);
    if (!c->pool) {
        fprintf(stderr, "\n  pp_pool_new: %s\n", err);
        return -1;
    }
    return 0;
}

static int setup_opts(ctx *c, int n, unsigned max_jobs)
{
    return setup_shm_opts(c, n, max_jobs, NULL);
}

static int setup(ctx *c, int n)
{
    return setup_opts(c, n, 0);
}

/* Frees the pool (if still there) and the loop; checks that nothing is
 * left: no child process, no FIFO directory. */
static void teardown(ctx *c)
{
    pp_pool_free(c->pool);
    c->pool = NULL;
    pp_loop_free(c->loop);
    c->loop = NULL;
    if (c->shm) {
        size_t idle = 0, total = 1;
        pp_shm_cache_bytes(c->shm, &idle, &total);
        CU_ASSERT_EQUAL(idle, total); /* every buffer went back: none leaked */
        pp_shm_cache_free(c->shm);
        c->shm = NULL;
    }
    CU_ASSERT_EQUAL(count_children(NULL), 0);
    if (c->tmpdir[0]) {
        CU_ASSERT_EQUAL(dir_entries(c->tmpdir), 0);
        rm_tree(c->tmpdir);
    }
}

static int wait_ready(ctx *c, int n, double secs)
{
    double end = pp_now() + secs;
    for (int i = 0; i < 100000 && pp_pool_ready(c->pool) != n && pp_now() < end; i++)
        pp_loop_run_once(c->loop, 0.02);
    return pp_pool_ready(c->pool) == n;
}

/* Runs until ndone + nrequeue reaches n. */
static int wait_ended(ctx *c, int n, double secs)
{
    double end = pp_now() + secs;
    for (int i = 0; i < 100000 && c->ndone + c->nrequeue < n && pp_now() < end; i++)
        pp_loop_run_once(c->loop, 0.02);
    return c->ndone + c->nrequeue >= n;
}

/* Runs the loop for about secs seconds. */
static void run_for(ctx *c, double secs)
{
    double end = pp_now() + secs;
    for (int i = 0; i < 100000 && pp_now() < end; i++)
        pp_loop_run_once(c->loop, 0.01);
}

/* Submits jobs[0..n) as room allows and waits for all of them to end. */
static int run_jobs(ctx *c, tjob *jobs, int n, double secs)
{
    int next = 0, base = c->ndone + c->nrequeue;
    double end = pp_now() + secs;
    for (int i = 0; i < 100000 && c->ndone + c->nrequeue - base < n && pp_now() < end; i++) {
        while (next < n && pp_pool_has_room(c->pool)) {
            if (pp_pool_submit(c->pool, &jobs[next].pj) != 0)
                break;
            next++;
        }
        pp_loop_run_once(c->loop, 0.02);
    }
    return c->ndone + c->nrequeue - base >= n ? 0 : -1;
}

static uint32_t task_id(ctx *c, const char *symbol)
{
    uint32_t id = 0xffffffffu;
    CU_ASSERT_EQUAL(pp_pool_task(c->pool, getenv("PP_TEST_TASKS"), symbol, &id), 0);
    return id;
}

/* A sleep argument for t_sleep ("l" milliseconds). */
static void job_sleep(tjob *t, int idx, uint32_t task, long ms, double timeout)
{
    pp_buf b;
    pp_buf_init(&b, 64);
    CU_ASSERT_EQUAL(pp_pack(&b, "l", ms), 0);
    job_init(t, idx, task, b.data, b.len, timeout);
    pp_buf_reset(&b);
}

/* ---- tests ---- */

static void test_bad_worker_path(void)
{
    pp_loop *loop = pp_loop_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(loop);
    static const char path[] = "/nonexistent/dir/ppworker-missing";
    pp_pool_opts o = {.worker_path = path, .workers = 2, .max_frame = MAX_FRAME};
    pp_pool_cbs cbs = {.on_done = on_done, .on_requeue = on_requeue};
    ctx c = {0};
    char err[PP_ERR_LEN] = "";
    pp_pool *p = pp_pool_new(loop, &o, &cbs, &c, err);
    CU_ASSERT_PTR_NULL(p);
    pp_pool_free(p);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, path));
    CU_ASSERT_EQUAL(count_children(NULL), 0);
    pp_loop_free(loop);
    pp_pool_free(NULL); /* a no-op */
}

static void test_start_and_echo(void)
{
    ctx c;
    REQUIRE(&c, setup(&c, 2) == 0);
    CU_ASSERT_EQUAL(pp_pool_target(c.pool), 2);
    CU_ASSERT(wait_ready(&c, 2, WAIT));
    CU_ASSERT_EQUAL(pp_pool_ready(c.pool), 2);
    CU_ASSERT_EQUAL(pp_pool_failures(c.pool), 0);
    CU_ASSERT_STRING_EQUAL(pp_pool_last_failure(c.pool), "");
    CU_ASSERT_EQUAL(count_children(NULL), 2);
    /* Both workers said hello: their FIFO names are gone already. */
    CU_ASSERT_EQUAL(dir_entries(c.tmpdir), 0);

    /* Task ids: the same pair twice is the same id; another pair differs. */
    uint32_t echo = task_id(&c, "t_echo");
    uint32_t echo2 = task_id(&c, "t_echo");
    uint32_t fail = task_id(&c, "t_fail");
    CU_ASSERT_EQUAL(echo, echo2);
    CU_ASSERT_NOT_EQUAL(echo, fail);
    char longsym[1100];
    memset(longsym, 's', sizeof longsym - 1);
    longsym[sizeof longsym - 1] = 0;
    uint32_t bad = 77;
    CU_ASSERT_EQUAL(pp_pool_task(c.pool, getenv("PP_TEST_TASKS"), longsym, &bad), -1);

    enum { N = 40 };
    tjob jobs[N + 3];
    for (int i = 0; i < N; i++)
        job_text(&jobs[i], i, echo, 0);
    job_init(&jobs[N], N, echo, "", 0, 0); /* an empty argument */
    /* A large argument: many pipe buffers' worth, written over many turns. */
    size_t big = 300000;
    char *bigarg = malloc(big);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bigarg);
    for (size_t i = 0; i < big; i++)
        bigarg[i] = (char)('A' + i % 23);
    job_init(&jobs[N + 1], N + 1, echo, bigarg, big, 0);
    free(bigarg);
    job_text(&jobs[N + 2], N + 2, fail, 0);

    CU_ASSERT_EQUAL(run_jobs(&c, jobs, N + 3, WAIT), 0);
    CU_ASSERT_EQUAL(c.ndone, N + 3);
    CU_ASSERT_EQUAL(c.nrequeue, 0);
    CU_ASSERT(c.flushes > 0);
    int all = 1;
    for (int i = 0; i < N + 2; i++)
        all = all && result_is_arg(&jobs[i]);
    CU_ASSERT(all);
    CU_ASSERT_EQUAL(jobs[N + 2].status, PP_FAILED);
    CU_ASSERT(jobs[N + 2].data && strstr(jobs[N + 2].data, "task failed on purpose"));
    CU_ASSERT_EQUAL(pp_pool_inflight(c.pool), 0);
    CU_ASSERT_EQUAL(c.order_bad, 0);
    for (int i = 0; i < N + 3; i++)
        job_free(&jobs[i]);
    teardown(&c);
}

/* Runs tiny jobs so that the pipeline depth grows past 1 (the first job
 * of each worker includes loading the module: the average needs a few
 * dozen samples to forget it). */
static void warm_up(ctx *c, uint32_t echo)
{
    enum { W = 60 };
    tjob jobs[W];
    for (int i = 0; i < W; i++)
        job_text(&jobs[i], i, echo, 0);
    int base = c->ndone;
    CU_ASSERT_EQUAL(run_jobs(c, jobs, W, WAIT), 0);
    CU_ASSERT_EQUAL(c->ndone - base, W);
    for (int i = 0; i < W; i++)
        job_free(&jobs[i]);
    c->ndone = c->nrequeue = c->nrq = 0;
}

static void test_room_and_depth(void)
{
    ctx c;
    REQUIRE(&c, setup(&c, 2) == 0);
    REQUIRE(&c, wait_ready(&c, 2, WAIT));
    uint32_t echo = task_id(&c, "t_echo");
    CU_ASSERT(pp_pool_has_room(c.pool));

    /* Jobs the pool refuses outright: unknown task, argument too large. */
    tjob x;
    job_text(&x, 0, echo + 100, 0);
    CU_ASSERT_EQUAL(pp_pool_submit(c.pool, &x.pj), -1);
    job_free(&x);
    char *huge = calloc(1, MAX_FRAME + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(huge);
    job_init(&x, 0, echo, huge, MAX_FRAME + 1, 0);
    free(huge);
    CU_ASSERT_EQUAL(pp_pool_submit(c.pool, &x.pj), -1);
    job_free(&x);
    CU_ASSERT_EQUAL(pp_pool_inflight(c.pool), 0);

    /* Fill every worker: submit until refused, without running the loop. */
    enum { MAX = 400 };
    static tjob jobs[MAX];
    int accepted = 0;
    for (int i = 0; i < MAX; i++) {
        job_text(&jobs[i], i, echo, 0);
        if (pp_pool_submit(c.pool, &jobs[i].pj) != 0) {
            job_free(&jobs[i]);
            break;
        }
        accepted++;
    }
    CU_ASSERT(accepted >= 2);
    CU_ASSERT(accepted < MAX);
    CU_ASSERT_FALSE(pp_pool_has_room(c.pool));
    CU_ASSERT_EQUAL(pp_pool_inflight(c.pool), (size_t)accepted);
    /* All of them finish, and there is room again. */
    CU_ASSERT(wait_ended(&c, accepted, WAIT));
    CU_ASSERT_EQUAL(c.ndone, accepted);
    int all = 1;
    for (int i = 0; i < accepted; i++)
        all = all && result_is_arg(&jobs[i]);
    CU_ASSERT(all);
    CU_ASSERT(pp_pool_has_room(c.pool));
    CU_ASSERT_EQUAL(pp_pool_inflight(c.pool), 0);

    /* Tiny jobs raise the pipeline depth: now more than one per worker. */
    for (int i = 0; i < accepted; i++)
        job_free(&jobs[i]);
    warm_up(&c, echo);
    int base = c.ndone, again = 0;
    for (int i = 0; i < MAX; i++) {
        job_text(&jobs[i], i, echo, 0);
        if (pp_pool_submit(c.pool, &jobs[i].pj) != 0) {
            job_free(&jobs[i]);
            break;
        }
        again++;
    }
    CU_ASSERT(again > 2);
    CU_ASSERT_FALSE(pp_pool_has_room(c.pool));
    CU_ASSERT(wait_ended(&c, base + again, WAIT));
    all = 1;
    for (int i = 0; i < again; i++)
        all = all && result_is_arg(&jobs[i]);
    CU_ASSERT(all);
    for (int i = 0; i < again; i++)
        job_free(&jobs[i]);
    teardown(&c);
}

static void test_crash_requeues(void)
{
    ctx c;
    REQUIRE(&c, setup(&c, 2) == 0);
    REQUIRE(&c, wait_ready(&c, 2, WAIT));
    uint32_t echo = task_id(&c, "t_echo"), segv = task_id(&c, "t_segv");
    warm_up(&c, echo);

    /* The crashing job first (both workers idle: it lands on one of them),
     * then echo jobs spread over both: some queue behind the crash. */
    enum { N = 7 };
    tjob jobs[N];
    job_text(&jobs[0], 0, segv, 0);
    for (int i = 1; i < N; i++)
        job_text(&jobs[i], i, echo, 0);
    int submitted = 0;
    for (int i = 0; i < N; i++)
        if (pp_pool_submit(c.pool, &jobs[i].pj) == 0)
            submitted++;
    REQUIRE(&c, submitted == N);
    CU_ASSERT(wait_ended(&c, N, WAIT));

    CU_ASSERT_EQUAL(jobs[0].done, 1);
    CU_ASSERT_EQUAL(jobs[0].requeued, 0);
    CU_ASSERT_EQUAL(jobs[0].status, PP_CRASHED);
    CU_ASSERT(jobs[0].data && strstr(jobs[0].data, "SIGSEGV"));
    if (jobs[0].data && !strstr(jobs[0].data, "SIGSEGV"))
        fprintf(stderr, "\n  crash text: %s\n", jobs[0].data);
    /* Every other job either ran or came back to us; none failed. */
    int ok = 1;
    for (int i = 1; i < N; i++) {
        if (jobs[i].done)
            ok = ok && jobs[i].requeued == 0 && result_is_arg(&jobs[i]);
        else
            ok = ok && jobs[i].requeued == 1;
    }
    CU_ASSERT(ok);
    CU_ASSERT(c.nrequeue >= 1);
    CU_ASSERT_EQUAL(c.ndone + c.nrequeue, N);

    /* The pool replaces the worker. */
    CU_ASSERT(wait_ready(&c, 2, WAIT));
    CU_ASSERT_EQUAL(count_children(NULL), 2);

    /* The owner resubmits what came back: it runs fine now. */
    int nrq = c.nrq, base = c.ndone;
    tjob *back[PP_ARRAY_LEN(c.rq)];
    memcpy(back, c.rq, sizeof(tjob *) * (size_t)nrq);
    int resent = 0;
    for (int k = 0; k < nrq; k++) {
        for (int i = 0; i < 100 && !pp_pool_has_room(c.pool); i++)
            pp_loop_run_once(c.loop, 0.02);
        if (pp_pool_submit(c.pool, &back[k]->pj) == 0)
            resent++;
    }
    CU_ASSERT_EQUAL(resent, nrq);
    double end = pp_now() + WAIT;
    for (int i = 0; i < 100000 && c.ndone - base < nrq && pp_now() < end; i++)
        pp_loop_run_once(c.loop, 0.02);
    ok = 1;
    for (int k = 0; k < nrq; k++)
        ok = ok && result_is_arg(back[k]);
    CU_ASSERT(ok);
    for (int i = 0; i < N; i++)
        job_free(&jobs[i]);
    teardown(&c);
}

static void test_timeout(void)
{
    ctx c;
    REQUIRE(&c, setup(&c, 2) == 0);
    REQUIRE(&c, wait_ready(&c, 2, WAIT));
    uint32_t spin = task_id(&c, "t_spin"), echo = task_id(&c, "t_echo");
    tjob j, e;
    job_text(&j, 0, spin, 0.3);
    job_text(&e, 1, echo, 0);
    double t0 = pp_now();
    CU_ASSERT_EQUAL(pp_pool_submit(c.pool, &j.pj), 0);
    CU_ASSERT_EQUAL(pp_pool_submit(c.pool, &e.pj), 0); /* on the other worker */
    CU_ASSERT(wait_ended(&c, 2, WAIT));
    CU_ASSERT_EQUAL(j.done, 1);
    CU_ASSERT_EQUAL(j.status, PP_TIMEOUT);
    CU_ASSERT(j.data && strstr(j.data, "timed out"));
    double took = j.t_done - t0;
    CU_ASSERT(took >= 0.3);
    CU_ASSERT(took < 10.0);
    CU_ASSERT(result_is_arg(&e));
    /* The killed worker is replaced. */
    CU_ASSERT(wait_ready(&c, 2, WAIT));
    CU_ASSERT_EQUAL(count_children(NULL), 2);
    job_free(&j);
    job_free(&e);
    teardown(&c);
}

/* One worker, pipelined: a job's timeout counts its run time, not its wait
 * behind a slower job; a job that times out sends the jobs queued behind it
 * back to the owner. */
static void test_timeout_pipelined(void)
{
    ctx c;
    REQUIRE(&c, setup(&c, 1) == 0);
    REQUIRE(&c, wait_ready(&c, 1, WAIT));
    uint32_t echo = task_id(&c, "t_echo"), sleep = task_id(&c, "t_sleep");
    uint32_t spin = task_id(&c, "t_spin");
    warm_up(&c, echo);

    tjob slow, quick;
    job_sleep(&slow, 0, sleep, 800, 0);
    job_text(&quick, 1, echo, 0.3); /* waits ~0.8 s, runs in microseconds */
    CU_ASSERT_EQUAL(pp_pool_submit(c.pool, &slow.pj), 0);
    REQUIRE(&c, pp_pool_submit(c.pool, &quick.pj) == 0);
    CU_ASSERT(wait_ended(&c, 2, WAIT));
    CU_ASSERT_EQUAL(slow.status, PP_DONE);
    CU_ASSERT_EQUAL(quick.status, PP_DONE);
    CU_ASSERT(result_is_arg(&quick));
    CU_ASSERT_EQUAL(c.nrequeue, 0);
    job_free(&slow);
    job_free(&quick);

    warm_up(&c, echo); /* the slow job lowered the depth to 1 */
    tjob spinner, behind[3];
    job_text(&spinner, 0, spin, 0.3);
    CU_ASSERT_EQUAL(pp_pool_submit(c.pool, &spinner.pj), 0);
    for (int i = 0; i < 3; i++)
        job_text(&behind[i], 1 + i, echo, 0);
    for (int i = 0; i < 3; i++)
        REQUIRE(&c, pp_pool_submit(c.pool, &behind[i].pj) == 0);
    CU_ASSERT(wait_ended(&c, 4, WAIT));
    CU_ASSERT_EQUAL(spinner.status, PP_TIMEOUT);
    CU_ASSERT_EQUAL(c.ndone, 1);
    CU_ASSERT_EQUAL(c.nrequeue, 3);
    /* Handed back last-to-first. */
    CU_ASSERT(c.nrq == 3 && c.rq[0] == &behind[2] && c.rq[1] == &behind[1] &&
              c.rq[2] == &behind[0]);
    CU_ASSERT(wait_ready(&c, 1, WAIT));
    job_free(&spinner);
    for (int i = 0; i < 3; i++)
        job_free(&behind[i]);
    teardown(&c);
}

/* One worker, pipelined: a crash and a free hand the queued jobs back
 * last-to-first (pushing each to the front of a queue keeps the order). */
static void test_requeue_order(void)
{
    ctx c;
    REQUIRE(&c, setup(&c, 1) == 0);
    REQUIRE(&c, wait_ready(&c, 1, WAIT));
    uint32_t echo = task_id(&c, "t_echo"), segv = task_id(&c, "t_segv");
    uint32_t sleep = task_id(&c, "t_sleep");
    warm_up(&c, echo);

    enum { N = 5 };
    tjob jobs[N];
    job_text(&jobs[0], 0, segv, 0);
    for (int i = 1; i < N; i++)
        job_text(&jobs[i], i, echo, 0);
    for (int i = 0; i < N; i++)
        CU_ASSERT_EQUAL(pp_pool_submit(c.pool, &jobs[i].pj), 0);
    CU_ASSERT(wait_ended(&c, N, WAIT));
    CU_ASSERT_EQUAL(jobs[0].status, PP_CRASHED);
    CU_ASSERT_EQUAL(c.nrequeue, N - 1);
    int ordered = c.nrq == N - 1;
    for (int k = 0; ordered && k < N - 1; k++)
        ordered = c.rq[k] == &jobs[N - 1 - k];
    CU_ASSERT(ordered);
    for (int i = 0; i < N; i++)
        job_free(&jobs[i]);

    REQUIRE(&c, wait_ready(&c, 1, WAIT));
    warm_up(&c, echo);
    job_sleep(&jobs[0], 0, sleep, 20000, 0);
    for (int i = 1; i < N; i++)
        job_text(&jobs[i], i, echo, 0);
    for (int i = 0; i < N; i++)
        CU_ASSERT_EQUAL(pp_pool_submit(c.pool, &jobs[i].pj), 0);
    run_for(&c, 0.2);
    CU_ASSERT_EQUAL(c.ndone, 0);
    pp_pool_free(c.pool);
    c.pool = NULL;
    CU_ASSERT_EQUAL(c.ndone, 0);
    CU_ASSERT_EQUAL(c.nrq, N);
    ordered = c.nrq == N;
    for (int k = 0; ordered && k < N; k++)
        ordered = c.rq[k] == &jobs[N - 1 - k];
    CU_ASSERT(ordered);
    for (int i = 0; i < N; i++)
        job_free(&jobs[i]);
    teardown(&c);
}

static void test_resize(void)
{
    ctx c;
    REQUIRE(&c, setup(&c, 2) == 0);
    REQUIRE(&c, wait_ready(&c, 2, WAIT));
    CU_ASSERT_EQUAL(pp_pool_resize(c.pool, -1), -1);
    CU_ASSERT_EQUAL(pp_pool_target(c.pool), 2);

    CU_ASSERT_EQUAL(pp_pool_resize(c.pool, 3), 0);
    CU_ASSERT_EQUAL(pp_pool_target(c.pool), 3);
    CU_ASSERT(wait_ready(&c, 3, WAIT));
    CU_ASSERT_EQUAL(count_children(NULL), 3);

    CU_ASSERT_EQUAL(pp_pool_resize(c.pool, 1), 0);
    CU_ASSERT_EQUAL(pp_pool_target(c.pool), 1);
    CU_ASSERT(wait_ready(&c, 1, WAIT));
    run_for(&c, 0.1);
    CU_ASSERT_EQUAL(pp_pool_ready(c.pool), 1);
    CU_ASSERT_EQUAL(count_children(NULL), 1);

    /* Shrinking busy workers: they finish their jobs first (done, not
     * requeued), then go. */
    CU_ASSERT_EQUAL(pp_pool_resize(c.pool, 3), 0);
    REQUIRE(&c, wait_ready(&c, 3, WAIT));
    uint32_t sleep = task_id(&c, "t_sleep");
    tjob jobs[3];
    for (int i = 0; i < 3; i++)
        job_sleep(&jobs[i], i, sleep, 300, 0);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(pp_pool_submit(c.pool, &jobs[i].pj), 0);
    pp_loop_run_once(c.loop, 0); /* flushed: all three run */
    CU_ASSERT_EQUAL(pp_pool_resize(c.pool, 1), 0);
    CU_ASSERT_EQUAL(pp_pool_ready(c.pool), 1);
    CU_ASSERT(wait_ended(&c, 3, WAIT));
    CU_ASSERT_EQUAL(c.nrequeue, 0);
    int ok = 1;
    for (int i = 0; i < 3; i++)
        ok = ok && jobs[i].done == 1 && jobs[i].status == PP_DONE;
    CU_ASSERT(ok);
    /* The retired workers are gone once their jobs are done. */
    double end = pp_now() + WAIT;
    for (int i = 0; i < 10000 && count_children(NULL) != 1 && pp_now() < end; i++)
        pp_loop_run_once(c.loop, 0.02);
    CU_ASSERT_EQUAL(count_children(NULL), 1);
    CU_ASSERT_EQUAL(pp_pool_ready(c.pool), 1);

    /* Down to zero and back. */
    CU_ASSERT_EQUAL(pp_pool_resize(c.pool, 0), 0);
    CU_ASSERT_EQUAL(pp_pool_ready(c.pool), 0);
    CU_ASSERT_FALSE(pp_pool_has_room(c.pool));
    CU_ASSERT_EQUAL(count_children(NULL), 0);
    CU_ASSERT_EQUAL(pp_pool_resize(c.pool, 2), 0);
    CU_ASSERT(wait_ready(&c, 2, WAIT));
    for (int i = 0; i < 3; i++)
        job_free(&jobs[i]);
    teardown(&c);
}

static void test_eload(void)
{
    ctx c;
    REQUIRE(&c, setup(&c, 2) == 0);
    REQUIRE(&c, wait_ready(&c, 2, WAIT));
    uint32_t nosym = task_id(&c, "no_such_task");
    uint32_t nomod = 0;
    CU_ASSERT_EQUAL(pp_pool_task(c.pool, "/nonexistent/module.so", "t_echo", &nomod), 0);
    uint32_t echo = task_id(&c, "t_echo");
    tjob a, b, e;
    job_text(&a, 0, nosym, 0);
    job_text(&b, 1, nomod, 0);
    job_text(&e, 2, echo, 0);
    tjob *list[] = {&a, &b, &e};
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < 500 && !pp_pool_has_room(c.pool); i++)
            pp_loop_run_once(c.loop, 0.02);
        CU_ASSERT_EQUAL(pp_pool_submit(c.pool, &list[k]->pj), 0);
    }
    CU_ASSERT(wait_ended(&c, 3, WAIT));
    CU_ASSERT_EQUAL(a.status, PP_ELOAD);
    CU_ASSERT(a.data && strstr(a.data, "not found"));
    CU_ASSERT(a.data && strstr(a.data, "no_such_task"));
    CU_ASSERT_EQUAL(b.status, PP_ELOAD);
    CU_ASSERT(b.data && strstr(b.data, "/nonexistent/module.so"));
    CU_ASSERT(result_is_arg(&e));
    /* A load error does not cost a worker. */
    CU_ASSERT_EQUAL(pp_pool_ready(c.pool), 2);
    CU_ASSERT_EQUAL(count_children(NULL), 2);
    CU_ASSERT_EQUAL(c.nrequeue, 0);
    job_free(&a);
    job_free(&b);
    job_free(&e);
    teardown(&c);
}

static void test_free_in_flight(void)
{
    ctx c;
    REQUIRE(&c, setup(&c, 2) == 0);
    REQUIRE(&c, wait_ready(&c, 2, WAIT));
    uint32_t sleep = task_id(&c, "t_sleep");
    enum { N = 8 };
    tjob jobs[N];
    int accepted = 0;
    for (int i = 0; i < N; i++) {
        job_sleep(&jobs[i], i, sleep, 20000, 0);
        if (pp_pool_submit(c.pool, &jobs[i].pj) == 0)
            accepted++;
        else
            break;
    }
    CU_ASSERT(accepted >= 2);
    run_for(&c, 0.2); /* sent; the workers are sleeping in them */
    CU_ASSERT_EQUAL(c.ndone, 0);
    CU_ASSERT_EQUAL(pp_pool_inflight(c.pool), (size_t)accepted);
    /* One busy worker retiring (it keeps its job), and three more workers,
     * still starting: their FIFOs have no names any more, even now. */
    CU_ASSERT_EQUAL(pp_pool_resize(c.pool, 1), 0);
    CU_ASSERT_EQUAL(pp_pool_ready(c.pool), 1);
    CU_ASSERT_EQUAL(pp_pool_resize(c.pool, 4), 0);
    CU_ASSERT_EQUAL(dir_entries(c.tmpdir), 0);
    CU_ASSERT_EQUAL(count_children(NULL), 5);

    double t0 = pp_now();
    pp_pool_free(c.pool);
    c.pool = NULL;
    CU_ASSERT(pp_now() - t0 < 5.0); /* killed, not waited out */
    CU_ASSERT_EQUAL(c.ndone, 0);
    CU_ASSERT_EQUAL(c.nrequeue, accepted);
    int ok = 1;
    for (int i = 0; i < accepted; i++)
        ok = ok && jobs[i].requeued == 1 && jobs[i].done == 0;
    CU_ASSERT(ok);
    CU_ASSERT_EQUAL(count_children(NULL), 0);
    CU_ASSERT_EQUAL(dir_entries(c.tmpdir), 0);
    for (int i = 0; i < N && i <= accepted; i++)
        job_free(&jobs[i]);
    teardown(&c);
}

/* A pid no process has now: a child that has exited and been reaped. */
static int dead_pid(void)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    if (pid < 0 || waitpid(pid, NULL, 0) != pid)
        return -1;
    return (int)pid;
}

/* Plants what a killed program could leave, and what must never be touched:
 * a directory like a pool's with its FIFOs and state file. */
static int plant(const char *tmp, const char *name, mode_t mode, int extra)
{
    char path[512], f[600];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    if (mkdir(path, 0700) != 0 || chmod(path, mode) != 0)
        return -1;
    snprintf(f, sizeof f, "%s/req", path);
    int rc = mkfifo(f, 0600);
    snprintf(f, sizeof f, "%s/resp", path);
    rc |= mkfifo(f, 0600);
    snprintf(f, sizeof f, "%s/state", path);
    int fd = open(f, O_CREAT | O_WRONLY, 0600);
    rc |= fd < 0;
    if (fd >= 0)
        close(fd);
    if (extra) { /* something a pool never makes */
        snprintf(f, sizeof f, "%s/keep.txt", path);
        fd = open(f, O_CREAT | O_WRONLY, 0600);
        rc |= fd < 0;
        if (fd >= 0)
            close(fd);
    }
    return rc;
}

static int exists(const char *tmp, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    struct stat st;
    return lstat(path, &st) == 0;
}

/* A program killed while starting a worker may leave its FIFO directory;
 * the next pool sweeps it -- only directories of this user, of mode 0700,
 * named like a pool's, whose process is gone, holding only what a pool
 * makes -- and follows no symbolic link. */
static void test_sweep_stale(void)
{
    const char *worker = env_path("PP_WORKER");
    CU_ASSERT_PTR_NOT_NULL_FATAL(worker);
    char tmp[] = "/tmp/pptest-sweep-XXXXXX", other[] = "/tmp/pptest-victim-XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(tmp));
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(other));
    int dead = dead_pid(), live = (int)getppid();
    CU_ASSERT_FATAL(dead > 0);
    char stale[64], stale2[64], alive[64], wide[64], extra[64], link[64], file[64], odd[64];
    snprintf(stale, sizeof stale, "pp-%d-aB3xYz", dead);
    snprintf(stale2, sizeof stale2, "pp-%d-Qw9eRt", dead);
    snprintf(alive, sizeof alive, "pp-%d-aB3xYz", live);
    snprintf(wide, sizeof wide, "pp-%d-wide00", dead);
    snprintf(extra, sizeof extra, "pp-%d-extra0", dead);
    snprintf(link, sizeof link, "pp-%d-link00", dead);
    snprintf(file, sizeof file, "pp-%d-file00", dead);
    snprintf(odd, sizeof odd, "pp-%d-toolong7", dead);
    CU_ASSERT_EQUAL(plant(tmp, stale, 0700, 0), 0);
    CU_ASSERT_EQUAL(plant(tmp, stale2, 0700, 0), 0);
    CU_ASSERT_EQUAL(plant(tmp, alive, 0700, 0), 0);
    CU_ASSERT_EQUAL(plant(tmp, wide, 0755, 0), 0);
    CU_ASSERT_EQUAL(plant(tmp, extra, 0700, 1), 0);
    CU_ASSERT_EQUAL(plant(tmp, odd, 0700, 0), 0);
    /* A link to another directory whose contents look like a pool's. */
    CU_ASSERT_EQUAL(plant(other, "target", 0700, 0), 0);
    char target[512], lpath[512], fpath[512];
    snprintf(target, sizeof target, "%s/target", other);
    snprintf(lpath, sizeof lpath, "%s/%s", tmp, link);
    CU_ASSERT_EQUAL(symlink(target, lpath), 0);
    snprintf(fpath, sizeof fpath, "%s/%s", tmp, file);
    int fd = open(fpath, O_CREAT | O_WRONLY, 0600);
    CU_ASSERT(fd >= 0);
    close(fd);

    pp_loop *loop = pp_loop_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(loop);
    pp_pool_opts o = {.worker_path = worker, .workers = 0, .max_frame = MAX_FRAME,
                      .tmpdir = tmp};
    pp_pool_cbs cbs = {.on_done = on_done, .on_requeue = on_requeue};
    char err[PP_ERR_LEN] = "";
    pp_pool *p = pp_pool_new(loop, &o, &cbs, NULL, err);
    CU_ASSERT_PTR_NOT_NULL(p);
    pp_pool_free(p);
    pp_loop_free(loop);

    CU_ASSERT(!exists(tmp, stale));
    CU_ASSERT(!exists(tmp, stale2));
    CU_ASSERT(exists(tmp, alive));  /* its process lives */
    CU_ASSERT(exists(tmp, wide));   /* not a pool's mode */
    CU_ASSERT(exists(tmp, extra));  /* holds something a pool never makes */
    CU_ASSERT(exists(tmp, odd));    /* not a pool's name */
    CU_ASSERT(exists(tmp, link));   /* a link is never followed... */
    CU_ASSERT(exists(other, "target/req") && exists(other, "target/resp") &&
              exists(other, "target/state")); /* ...nor what it points to emptied */
    CU_ASSERT(exists(tmp, file));
    rm_tree(tmp);
    rm_tree(other);
}

/* A FIFO directory that cannot be made: pp_pool_new says where. */
static void test_bad_tmpdir(void)
{
    const char *worker = env_path("PP_WORKER");
    CU_ASSERT_PTR_NOT_NULL_FATAL(worker);
    pp_loop *loop = pp_loop_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(loop);
    static const char dir[] = "/nonexistent/pptest-tmp";
    pp_pool_opts o = {.worker_path = worker, .workers = 1, .max_frame = MAX_FRAME,
                      .tmpdir = dir};
    pp_pool_cbs cbs = {.on_done = on_done, .on_requeue = on_requeue};
    ctx c = {0};
    char err[PP_ERR_LEN] = "";
    pp_pool *p = pp_pool_new(loop, &o, &cbs, &c, err);
    CU_ASSERT_PTR_NULL(p);
    pp_pool_free(p);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, dir));
    CU_ASSERT_EQUAL(count_children(NULL), 0);
    pp_loop_free(loop);
}

/* An executable that is no ppworker (it exits at once): pp_pool_new
 * succeeds, but no worker comes up; the failures are counted and told,
 * with a back-off instead of a spin. */
static void test_worker_exits(void)
{
    static const char *const candidates[] = {"/bin/false", "/usr/bin/false"};
    const char *bin = NULL;
    for (size_t i = 0; i < PP_ARRAY_LEN(candidates) && !bin; i++)
        if (access(candidates[i], X_OK) == 0)
            bin = candidates[i];
    CU_ASSERT_PTR_NOT_NULL_FATAL(bin);
    ctx c;
    memset(&c, 0, sizeof c);
    snprintf(c.tmpdir, sizeof c.tmpdir, "/tmp/pptest-pool-XXXXXX");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(c.tmpdir));
    c.loop = pp_loop_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.loop);
    CU_ASSERT_EQUAL(pp_loop_hook(c.loop, flush_hook, &c), 0);
    pp_pool_opts o = {.worker_path = bin, .workers = 2, .max_frame = MAX_FRAME,
                      .tmpdir = c.tmpdir};
    pp_pool_cbs cbs = {.on_done = on_done, .on_requeue = on_requeue};
    char err[PP_ERR_LEN] = "";
    c.pool = pp_pool_new(c.loop, &o, &cbs, &c, err);
    CU_ASSERT_PTR_NOT_NULL(c.pool);
    if (c.pool) {
        double end = pp_now() + WAIT;
        for (int i = 0; i < 100000 && pp_pool_failures(c.pool) < 3 && pp_now() < end; i++)
            pp_loop_run_once(c.loop, 0.02);
        CU_ASSERT(pp_pool_failures(c.pool) >= 3);
        CU_ASSERT_EQUAL(pp_pool_ready(c.pool), 0);
        CU_ASSERT_FALSE(pp_pool_has_room(c.pool));
        const char *why = pp_pool_last_failure(c.pool);
        CU_ASSERT(strstr(why, "failed to start") != NULL && strstr(why, bin) != NULL);
        /* Backing off: a probe at a time, not a storm. */
        int before = pp_pool_failures(c.pool);
        run_for(&c, 0.3);
        CU_ASSERT(pp_pool_failures(c.pool) - before <= 3);
        CU_ASSERT(count_children(NULL) <= 1);
    }
    teardown(&c);
}

/* Frame limits: an argument of max_frame bytes is accepted (its echo is
 * too large to return: PP_FAILED); a result of max_frame - PP_RESULT_HDR
 * bytes fits exactly, one byte more does not. */
static void test_frame_limits(void)
{
    ctx c;
    REQUIRE(&c, setup(&c, 1) == 0);
    REQUIRE(&c, wait_ready(&c, 1, WAIT));
    uint32_t echo = task_id(&c, "t_echo"), pattern = task_id(&c, "t_pattern");
    tjob jobs[3];
    char *big = malloc(MAX_FRAME);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    memset(big, 'q', MAX_FRAME);
    job_init(&jobs[0], 0, echo, big, MAX_FRAME, 0);
    free(big);
    long sizes[2] = {(long)MAX_FRAME - PP_RESULT_HDR, (long)MAX_FRAME - PP_RESULT_HDR + 1};
    for (int i = 0; i < 2; i++) {
        pp_buf b;
        pp_buf_init(&b, 64);
        CU_ASSERT_EQUAL(pp_pack(&b, "l", sizes[i]), 0);
        job_init(&jobs[1 + i], 1 + i, pattern, b.data, b.len, 0);
        pp_buf_reset(&b);
    }
    CU_ASSERT_EQUAL(run_jobs(&c, jobs, 3, WAIT), 0);
    CU_ASSERT_EQUAL(jobs[0].status, PP_FAILED);
    CU_ASSERT(jobs[0].data && strstr(jobs[0].data, "exceeds"));
    CU_ASSERT_EQUAL(jobs[1].status, PP_DONE);
    CU_ASSERT_EQUAL(jobs[1].dlen, (size_t)sizes[0]);
    int same = jobs[1].data != NULL && jobs[1].nul_ok;
    for (long i = 0; same && i < sizes[0]; i++)
        same = (unsigned char)jobs[1].data[i] == (unsigned char)(i * 7 + 3);
    CU_ASSERT(same);
    CU_ASSERT_EQUAL((uintptr_t)jobs[1].data % 16, 0); /* results stay aligned */
    CU_ASSERT_EQUAL(jobs[2].status, PP_FAILED);
    CU_ASSERT(jobs[2].data && strstr(jobs[2].data, "exceeds"));
    CU_ASSERT_EQUAL(pp_pool_ready(c.pool), 1);
    CU_ASSERT_EQUAL(c.nrequeue, 0);
    for (int i = 0; i < 3; i++)
        job_free(&jobs[i]);
    teardown(&c);
}

/* ---- batches ---- */

/* A batch argument of the given items (NULL-terminated) for task. */
static void job_batch(tjob *t, int idx, uint32_t task, const char *const *items, double timeout)
{
    pp_buf b;
    pp_buf_init(&b, MAX_FRAME);
    CU_ASSERT_EQUAL(pp_proto_batch_begin(&b), 0);
    for (int i = 0; items[i]; i++)
        CU_ASSERT_EQUAL(pp_proto_batch_add(&b, items[i], strlen(items[i])), 0);
    job_init(t, idx, task, b.data, b.len, timeout);
    t->pj.flags = PP_WIRE_F_BATCH;
    pp_buf_reset(&b);
}

/* Whether t's result is a batch result whose items are, in order, the
 * given statuses and texts. */
static int batch_is(const tjob *t, int n, const int *status, const char *const *text)
{
    if (t->done != 1 || t->status != PP_DONE || t->rflags != PP_WIRE_F_BATCH)
        return 0;
    pp_batch_iter it;
    pp_batch_item item;
    if (pp_proto_batch_open(&it, t->data, t->dlen, PP_BATCH_RESULTS) != 0 || it.count != (uint32_t)n)
        return 0;
    for (int i = 0; i < n; i++) {
        if (pp_proto_batch_next(&it, &item) != 1 || item.status != status[i] ||
            item.len != strlen(text[i]) || memcmp(item.data, text[i], item.len) != 0) {
            fprintf(stderr, "\n  batch item %d: status %d, %.*s\n", i, item.status,
                    (int)item.len, (const char *)item.data);
            return 0;
        }
    }
    return pp_proto_batch_next(&it, &item) == 0;
}

/* A batch runs its items in order, each with its own output; a failing
 * item fails alone; a malformed batch fails as a whole with a message; a
 * crash in an item ends the batch PP_CRASHED and the worker is replaced;
 * plain jobs around batches on the same worker are untouched. */
static void test_batch(void)
{
    ctx c;
    REQUIRE(&c, setup(&c, 1) == 0);
    REQUIRE(&c, wait_ready(&c, 1, WAIT));
    uint32_t item = task_id(&c, "t_item"), echo = task_id(&c, "t_echo");
    enum { N = 6 };
    tjob jobs[N];
    job_batch(&jobs[0], 0, item, (const char *const[]){"one", "fail", "", "three", NULL}, 0);
    job_text(&jobs[1], 1, echo, 0); /* a plain job between two batches */
    job_batch(&jobs[2], 2, item, (const char *const[]){NULL}, 0); /* no item at all */
    /* Malformed: a count of 2 with one item; an item's length past the end. */
    job_init(&jobs[3], 3, item, "\0\0\0\2\0\0\0\1x", 9, 0);
    jobs[3].pj.flags = PP_WIRE_F_BATCH;
    job_init(&jobs[4], 4, item, "\0\0\0\1\0\0\0\7abc", 11, 0);
    jobs[4].pj.flags = PP_WIRE_F_BATCH;
    job_batch(&jobs[5], 5, item, (const char *const[]){"a", "sleep", "b", NULL}, 0);
    REQUIRE(&c, run_jobs(&c, jobs, N, WAIT) == 0);
    CU_ASSERT(batch_is(&jobs[0], 4, (const int[]){PP_DONE, PP_FAILED, PP_DONE, PP_DONE},
                       (const char *const[]){"one", "item failed", "", "three"}));
    CU_ASSERT(result_is_arg(&jobs[1]) && jobs[1].rflags == 0);
    CU_ASSERT(batch_is(&jobs[2], 0, NULL, NULL));
    for (int i = 3; i <= 4; i++) {
        CU_ASSERT(jobs[i].done == 1 && jobs[i].status == PP_FAILED && jobs[i].rflags == 0);
        CU_ASSERT(jobs[i].data && strstr(jobs[i].data, "malformed batch"));
    }
    CU_ASSERT(batch_is(&jobs[5], 3, (const int[]){PP_DONE, PP_DONE, PP_DONE},
                       (const char *const[]){"a", "sleep", "b"}));
    /* The run time is the batch's: the sleeping item's 50 ms are in it. */
    CU_ASSERT(jobs[5].run_ns >= 50000000u);
    CU_ASSERT_EQUAL(c.nrequeue, 0);
    for (int i = 0; i < N; i++)
        job_free(&jobs[i]);

    /* A crash in the second item: the whole batch ends PP_CRASHED (no item
     * result is known), the worker is replaced, and the next job runs. */
    pid_t before = -1;
    {
        tjob p;
        job_init(&p, 0, task_id(&c, "t_pid"), "", 0, 0);
        REQUIRE(&c, run_jobs(&c, &p, 1, WAIT) == 0);
        long pid = 0;
        CU_ASSERT_EQUAL(pp_unpack(p.data, p.dlen, "l", &pid), 0);
        before = (pid_t)pid;
        job_free(&p);
    }
    tjob crash[2];
    job_batch(&crash[0], 0, item, (const char *const[]){"ok", "segv", "never", NULL}, 0);
    job_init(&crash[1], 1, task_id(&c, "t_pid"), "", 0, 0);
    REQUIRE(&c, run_jobs(&c, crash, 1, WAIT) == 0);
    CU_ASSERT(crash[0].done == 1 && crash[0].status == PP_CRASHED && crash[0].rflags == 0);
    CU_ASSERT(crash[0].data && strstr(crash[0].data, "SIGSEGV"));
    CU_ASSERT(wait_ready(&c, 1, WAIT));
    REQUIRE(&c, run_jobs(&c, &crash[1], 1, WAIT) == 0);
    long after = 0;
    CU_ASSERT(crash[1].status == PP_DONE && pp_unpack(crash[1].data, crash[1].dlen, "l", &after) == 0);
    CU_ASSERT(after > 0 && (pid_t)after != before);
    /* A batch over its timeout: PP_TIMEOUT for the whole of it. */
    tjob slow;
    job_batch(&slow, 0, item, (const char *const[]){"sleep", "sleep", "sleep", "sleep", NULL}, 0.08);
    REQUIRE(&c, run_jobs(&c, &slow, 1, WAIT) == 0);
    CU_ASSERT(slow.done == 1 && slow.status == PP_TIMEOUT && slow.rflags == 0);
    for (int i = 0; i < 2; i++)
        job_free(&crash[i]);
    job_free(&slow);
    teardown(&c);
}

/* The read and write system calls a process has made so far
 * (/proc/PID/io: syscr + syscw), or -1 where that cannot be read. */
static long long io_calls(pid_t pid)
{
    char path[64], line[128];
    snprintf(path, sizeof path, "/proc/%d/io", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long long v, sum = 0;
    int seen = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "syscr: %lld", &v) == 1 || sscanf(line, "syscw: %lld", &v) == 1) {
            sum += v;
            seen++;
        }
    fclose(f);
    return seen == 2 ? sum : -1;
}

/* The worker's pid (t_pid), or -1. */
static pid_t worker_pid(ctx *c)
{
    tjob p;
    job_init(&p, 0, task_id(c, "t_pid"), "", 0, 0);
    long pid = -1;
    if (run_jobs(c, &p, 1, WAIT) != 0 || p.status != PP_DONE ||
        pp_unpack(p.data, p.dlen, "l", &pid) != 0)
        pid = -1;
    job_free(&p);
    return (pid_t)pid;
}

/* A batch runs its items without a read or write each: a batch of 10,000
 * 8-byte echoes makes far fewer than it has items (counted, not timed).  For scale, it prints the time per item
 * against 10,000 calls of t_echo in this process (the same function, the
 * same pp_buf reused) and against 10,000 separate jobs through the pool. */
static void test_batch_cost(void)
{
    enum { ITEMS = 10000 };
    void *mod = dlopen(getenv("PP_TEST_TASKS"), RTLD_NOW | RTLD_LOCAL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(mod);
    pp_task fn;
    void *sym = dlsym(mod, "t_echo");
    CU_ASSERT_PTR_NOT_NULL_FATAL(sym);
    memcpy(&fn, &sym, sizeof fn);
    pp_buf out;
    pp_buf_init(&out, 1 << 20);
    double best_direct = 1e9;
    for (int round = 0; round < 3; round++) {
        double t0 = pp_now();
        for (int i = 0; i < ITEMS; i++) {
            out.len = 0;
            fn("12345678", 8, &out);
        }
        double t = pp_now() - t0;
        best_direct = t < best_direct ? t : best_direct;
    }
    pp_buf_reset(&out);
    dlclose(mod);

    ctx c;
    REQUIRE(&c, setup(&c, 1) == 0);
    REQUIRE(&c, wait_ready(&c, 1, WAIT));
    uint32_t echo = task_id(&c, "t_echo");
    pp_buf b;
    pp_buf_init(&b, MAX_FRAME);
    CU_ASSERT_EQUAL(pp_proto_batch_begin(&b), 0);
    for (int i = 0; i < ITEMS; i++)
        CU_ASSERT_EQUAL(pp_proto_batch_add(&b, "12345678", 8), 0);
    double best_batch = 1e9;
    int right = 1;
    pid_t wpid = worker_pid(&c);
    long long calls = -1;
    for (int round = 0; round < 3; round++) { /* the first loads the module */
        long long before = round == 2 ? io_calls(wpid) : -1;
        tjob t;
        job_init(&t, 0, echo, b.data, b.len, 0);
        t.pj.flags = PP_WIRE_F_BATCH;
        REQUIRE(&c, run_jobs(&c, &t, 1, WAIT) == 0);
        uint32_t n = 0;
        right = right && t.status == PP_DONE && t.rflags == PP_WIRE_F_BATCH &&
                pp_proto_batch_check(t.data, t.dlen, PP_BATCH_RESULTS, &n) == 0 && n == ITEMS;
        long long after = before >= 0 ? io_calls(wpid) : -1;
        if (after >= 0)
            calls = after - before;
        double run = (double)t.run_ns * 1e-9;
        best_batch = round && run < best_batch ? run : best_batch;
        job_free(&t);
    }
    pp_buf_reset(&b);
    CU_ASSERT(right);
    /* The same items as separate jobs, for scale. */
    static tjob jobs[ITEMS];
    for (int i = 0; i < ITEMS; i++)
        job_init(&jobs[i], i, echo, "12345678", 8, 0);
    double t0 = pp_now();
    CU_ASSERT_EQUAL(run_jobs(&c, jobs, ITEMS, WAIT), 0);
    double separate = pp_now() - t0;
    for (int i = 0; i < ITEMS; i++)
        job_free(&jobs[i]);
    printf("\n    %d items of 8 bytes: %.0f ns per direct call, %.0f ns per batch item (run "
           "time), %.0f ns per separate job (wall) ", ITEMS, best_direct * 1e9 / ITEMS,
           best_batch * 1e9 / ITEMS, separate * 1e9 / ITEMS);
    /* The job's frames take a few reads and writes; one per item would
     * be 10,000. */
    CU_ASSERT(wpid > 0);
    if (calls >= 0) {
        printf("%lld reads and writes by the worker for the batch ", calls);
        CU_ASSERT(calls < ITEMS / 20);
    } else {
        printf("(/proc/%d/io unreadable: system calls not counted) ", (int)wpid);
    }
    teardown(&c);
}

/* ---- recycling workers ---- */

/* max_jobs_per_worker 3 on one worker: 10 jobs run on 4 processes (3, 3,
 * 3, 1), every job once, none lost, though jobs are pipelined (the count
 * is of jobs sent). */
static void test_max_jobs_per_worker(void)
{
    ctx c;
    REQUIRE(&c, setup_opts(&c, 1, 3) == 0);
    REQUIRE(&c, wait_ready(&c, 1, WAIT));
    uint32_t pid = task_id(&c, "t_pid");
    enum { N = 10 };
    tjob jobs[N];
    for (int i = 0; i < N; i++)
        job_init(&jobs[i], i, pid, "", 0, 0);
    REQUIRE(&c, run_jobs(&c, jobs, N, WAIT) == 0);
    long pids[N];
    int distinct = 0, once = 1;
    for (int i = 0; i < N; i++) {
        pids[i] = 0;
        once = once && jobs[i].done == 1 && jobs[i].requeued == 0 &&
               jobs[i].status == PP_DONE &&
               pp_unpack(jobs[i].data, jobs[i].dlen, "l", &pids[i]) == 0;
        int seen = 0;
        for (int k = 0; k < i; k++)
            seen = seen || pids[k] == pids[i];
        distinct += !seen;
    }
    CU_ASSERT(once);
    CU_ASSERT_EQUAL(c.ndone, N);
    CU_ASSERT_EQUAL(c.nrequeue, 0);
    CU_ASSERT_EQUAL(distinct, 4);
    /* No worker ran more than 3. */
    int most = 0;
    for (int i = 0; i < N; i++) {
        int n = 0;
        for (int k = 0; k < N; k++)
            n += pids[k] == pids[i];
        most = n > most ? n : most;
    }
    CU_ASSERT_EQUAL(most, 3);
    /* The last worker took one job and stays; the retired ones are gone. */
    CU_ASSERT(wait_ready(&c, 1, WAIT));
    CU_ASSERT(wait_children(NULL, 1, WAIT));
    for (int i = 0; i < N; i++)
        job_free(&jobs[i]);
    teardown(&c);
}

/* The same with two workers and many tiny jobs in flight at once: every
 * job still runs exactly once. */
static void test_max_jobs_pipelined(void)
{
    ctx c;
    REQUIRE(&c, setup_opts(&c, 2, 5) == 0);
    REQUIRE(&c, wait_ready(&c, 2, WAIT));
    uint32_t echo = task_id(&c, "t_echo");
    enum { N = 200 };
    static tjob jobs[N];
    for (int i = 0; i < N; i++)
        job_text(&jobs[i], i, echo, 0);
    CU_ASSERT_EQUAL(run_jobs(&c, jobs, N, WAIT), 0);
    int ok = 1;
    for (int i = 0; i < N; i++)
        ok = ok && result_is_arg(&jobs[i]) && jobs[i].requeued == 0;
    CU_ASSERT(ok);
    CU_ASSERT_EQUAL(c.ndone, N);
    CU_ASSERT(wait_ready(&c, 2, WAIT));
    CU_ASSERT(wait_children(NULL, 2, WAIT));
    for (int i = 0; i < N; i++)
        job_free(&jobs[i]);
    teardown(&c);
}

/* ---- shared memory ---- */

/* A pool with a buffer cache and n workers. */
static int setup_shm(ctx *c, int n)
{
    pp_shm_cache *shm = pp_shm_cache_new(64u << 20);
    if (!shm) {
        memset(c, 0, sizeof *c);
        return -1;
    }
    return setup_shm_opts(c, n, 0, shm);
}

/* A job whose argument lies in buffer b (its reference the job's). */
static void job_in(tjob *t, int idx, uint32_t task, pp_shm *b, size_t off, size_t len)
{
    memset(t, 0, sizeof *t);
    t->idx = idx;
    t->len = len;
    t->pj.arg = b->base + off;
    t->pj.len = len;
    t->pj.task = task;
    t->pj.ashm = b;
}

/* Large arguments in the owner's buffers (more of them than a worker has
 * slots, round robin, so slots are taken back and given again), and
 * results written in place. */
static void test_shm_args(void)
{
    ctx c;
    REQUIRE(&c, setup_shm(&c, 1) == 0);
    REQUIRE(&c, wait_ready(&c, 1, WAIT));
    uint32_t echo = task_id(&c, "t_echo");
    enum { B = PP_SHM_SLOTS + 4, N = 3 * B, LEN = 70000 };
    char err[PP_ERR_LEN];
    pp_shm *bufs[B];
    for (int i = 0; i < B; i++) {
        bufs[i] = pp_shm_get(c.shm, LEN + 100, 0, err);
        REQUIRE(&c, bufs[i] != NULL);
        for (size_t k = 0; k < LEN + 100; k++)
            bufs[i]->base[k] = (uint8_t)(i * 31 + k);
    }
    static tjob jobs[N + 1];
    for (int i = 0; i < N; i++) {
        pp_shm *b = bufs[i % B];
        pp_shm_ref(b);
        job_in(&jobs[i], i, echo, b, (size_t)(i % 7), LEN);
    }
    /* And one not in a buffer: it goes through the pipe, its result into
     * a buffer offered. */
    char *plain = malloc(LEN);
    REQUIRE(&c, plain != NULL);
    memset(plain, 'p', LEN);
    job_init(&jobs[N], N, echo, plain, LEN, 0);
    free(plain);
    /* One at a time, so that a slot is always free for each (many in
     * flight at once would take the pipes when the slots run out). */
    for (int i = 0; i <= N; i++)
        REQUIRE(&c, run_jobs(&c, &jobs[i], 1, WAIT) == 0);
    int right = 0, in_place = 0;
    for (int i = 0; i <= N; i++) {
        const uint8_t *want = i < N ? jobs[i].pj.arg : (const uint8_t *)jobs[i].arg;
        right += jobs[i].done == 1 && jobs[i].status == PP_DONE && jobs[i].dlen == LEN &&
                 jobs[i].nul_ok && memcmp(jobs[i].data, want, LEN) == 0;
        in_place += jobs[i].rshm && !jobs[i].block &&
                    (const uint8_t *)jobs[i].data == jobs[i].rshm->base;
    }
    CU_ASSERT_EQUAL(right, N + 1);
    CU_ASSERT_EQUAL(in_place, N + 1);
    for (int i = 0; i <= N; i++)
        job_free(&jobs[i]);
    /* All at once: those that find no free slot take the pipes; every
     * result is still right. */
    for (int i = 0; i < N; i++) {
        pp_shm_ref(bufs[i % B]);
        job_in(&jobs[i], i, echo, bufs[i % B], (size_t)(i % 5), LEN);
    }
    REQUIRE(&c, run_jobs(&c, jobs, N, WAIT) == 0);
    right = 0;
    for (int i = 0; i < N; i++)
        right += jobs[i].done == 1 && jobs[i].status == PP_DONE && jobs[i].dlen == LEN &&
                 jobs[i].nul_ok && memcmp(jobs[i].data, jobs[i].pj.arg, LEN) == 0;
    CU_ASSERT_EQUAL(right, N);
    for (int i = 0; i < N; i++)
        job_free(&jobs[i]);
    for (int i = 0; i < B; i++)
        pp_shm_unref(bufs[i]);
    teardown(&c);
}

/* Small arguments, large results: the first comes through the pipe, the
 * task's next are offered a buffer, and a result larger than the buffer
 * offered grows it (the pool maps it again at its new size). */
static void test_shm_results(void)
{
    ctx c;
    REQUIRE(&c, setup_shm(&c, 1) == 0);
    REQUIRE(&c, wait_ready(&c, 1, WAIT));
    uint32_t pat = task_id(&c, "t_pattern");
    static const long sizes[] = {100000, 100000, 300000, 900000, 10, 200000};
    enum { N = PP_ARRAY_LEN(sizes) };
    tjob jobs[N];
    int right = 0;
    for (int i = 0; i < N; i++) {
        pp_buf b;
        pp_buf_init(&b, 64);
        CU_ASSERT_EQUAL(pp_pack(&b, "l", sizes[i]), 0);
        job_init(&jobs[i], i, pat, b.data, b.len, 0);
        pp_buf_reset(&b);
        REQUIRE(&c, run_jobs(&c, &jobs[i], 1, WAIT) == 0); /* one at a time: the hint */
        int ok = jobs[i].done == 1 && jobs[i].status == PP_DONE &&
                 jobs[i].dlen == (size_t)sizes[i] && jobs[i].nul_ok;
        for (long k = 0; ok && k < sizes[i]; k++)
            ok = (unsigned char)jobs[i].data[k] == (unsigned char)(k * 7 + 3);
        right += ok;
    }
    CU_ASSERT_EQUAL(right, N);
    CU_ASSERT(jobs[0].block && !jobs[0].rshm); /* no hint yet: the pipe */
    CU_ASSERT(jobs[1].rshm && !jobs[1].block);  /* offered, used */
    CU_ASSERT(jobs[3].rshm && jobs[3].rshm->cap > 900000); /* grown past the offer */
    CU_ASSERT(jobs[4].block && !jobs[4].rshm);  /* too small for it: the pipe */
    CU_ASSERT(jobs[5].block && !jobs[5].rshm);  /* the hint was dropped */
    for (int i = 0; i < N; i++)
        job_free(&jobs[i]);
    teardown(&c);
}

/* A worker killed in the middle of a large job (its timeout) leaves no
 * result and no buffer behind; the next large job runs on its
 * replacement. */
static void test_shm_timeout(void)
{
    ctx c;
    REQUIRE(&c, setup_shm(&c, 1) == 0);
    REQUIRE(&c, wait_ready(&c, 1, WAIT));
    uint32_t spin = task_id(&c, "t_echo_sleep"), echo = task_id(&c, "t_echo");
    char err[PP_ERR_LEN];
    pp_shm *b = pp_shm_get(c.shm, 100000, 0, err);
    REQUIRE(&c, b != NULL);
    int64_t ms = 5000; /* echoes it all, then sleeps past its timeout */
    memset(b->base, 'x', 100000);
    memcpy(b->base, &ms, sizeof ms);
    tjob jobs[2];
    job_in(&jobs[0], 0, spin, b, 0, 100000);
    jobs[0].pj.timeout = 0.3;
    pp_shm_ref(b);
    job_in(&jobs[1], 1, echo, b, 0, 100000);
    REQUIRE(&c, run_jobs(&c, jobs, 1, WAIT) == 0);
    CU_ASSERT_EQUAL(jobs[0].status, PP_TIMEOUT);
    CU_ASSERT_PTR_NULL(jobs[0].rshm);
    REQUIRE(&c, wait_ready(&c, 1, WAIT));
    REQUIRE(&c, run_jobs(&c, &jobs[1], 1, WAIT) == 0);
    CU_ASSERT_EQUAL(jobs[1].status, PP_DONE);
    CU_ASSERT(jobs[1].rshm && jobs[1].dlen == 100000 &&
              memcmp(jobs[1].data, b->base, 100000) == 0);
    job_free(&jobs[0]);
    job_free(&jobs[1]);
    teardown(&c);
}

static int not_first(pp_pool_job *j, void *arg)
{
    (void)arg;
    return ((tjob *)j)->idx != 0;
}

/* Jobs handed back are the owner's again, at once: it may free their
 * arguments (a cancelled job is freed by its program, one taken back runs
 * elsewhere and is freed when done).  Here the frames of the jobs queued
 * behind a long one have not all reached the worker's pipe (more than it
 * holds) when they are cancelled, and their arguments are unmapped right
 * after: the pool must not read them any more.  It used to write the rest
 * of those frames from the unmapped pages once the long job let the
 * worker read on ("write failed: Bad address"): the worker was killed
 * (had the argument been freed instead, the pool read freed memory and
 * passed it to the worker). */
static void test_handed_back_not_read(void)
{
    ctx c;
    REQUIRE(&c, setup(&c, 1) == 0);
    REQUIRE(&c, wait_ready(&c, 1, WAIT));
    uint32_t echo = task_id(&c, "t_echo"), sleep = task_id(&c, "t_sleep");
    warm_up(&c, echo); /* tiny jobs: several in flight per worker from now on */
    pp_pool_worker_info before, now;
    REQUIRE(&c, pp_pool_workers(c.pool, &before, 1) == 1);
    enum { N = 6, LEN = 900 * 1024 }; /* two of them are more than a pipe holds (1 MiB) */
    tjob jobs[N + 1];
    job_sleep(&jobs[0], 0, sleep, 400, 0);
    REQUIRE(&c, pp_pool_submit(c.pool, &jobs[0].pj) == 0);
    int sent = 0;
    for (int i = 1; i <= N; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        jobs[i].idx = i;
        void *m = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        REQUIRE(&c, m != MAP_FAILED);
        memset(m, 'a' + i, LEN);
        jobs[i].pj = (pp_pool_job){.arg = m, .len = LEN, .task = echo};
        sent += pp_pool_submit(c.pool, &jobs[i].pj) == 0;
    }
    REQUIRE(&c, sent >= 2); /* the depth the tiny jobs gave */
    run_for(&c, 0.1); /* the long job runs; the pipe fills behind it */
    pp_pool_cancel_if(c.pool, not_first, NULL);
    CU_ASSERT_EQUAL(c.nrequeue, sent);
    for (int i = 1; i <= N; i++)
        munmap((void *)jobs[i].pj.arg, LEN); /* the owner's again: gone */
    CU_ASSERT(wait_ended(&c, sent + 1, WAIT));
    CU_ASSERT_EQUAL(jobs[0].status, PP_DONE);
    if (jobs[0].status != PP_DONE)
        fprintf(stderr, "\n    the long job: %s: %.*s\n", pp_strerror(jobs[0].status),
                (int)jobs[0].dlen, jobs[0].data ? jobs[0].data : "");
    /* The worker lives on and runs the next job. */
    tjob after;
    job_text(&after, 0, echo, 0);
    CU_ASSERT_EQUAL(run_jobs(&c, &after, 1, WAIT), 0);
    CU_ASSERT(result_is_arg(&after));
    CU_ASSERT(pp_pool_workers(c.pool, &now, 1) == 1 && now.pid == before.pid);
    job_free(&after);
    job_free(&jobs[0]);
    teardown(&c);
}

int pp_register_suites(void)
{
    static const pp_test tests[] = {
        {"a missing worker binary fails pp_pool_new", test_bad_worker_path},
        {"an unusable tmpdir fails pp_pool_new", test_bad_tmpdir},
        {"a worker that exits at once: failures, back-off", test_worker_exits},
        {"start, task ids, echo jobs, a failing task", test_start_and_echo},
        {"has_room, the pipeline depth, refused jobs", test_room_and_depth},
        {"a crash ends its job; the jobs behind it come back", test_crash_requeues},
        {"a job over its timeout", test_timeout},
        {"timeouts count run time; jobs behind a timeout come back", test_timeout_pipelined},
        {"jobs come back last-to-first", test_requeue_order},
        {"resize up, down, with busy workers, to zero", test_resize},
        {"a missing task symbol or module is PP_ELOAD", test_eload},
        {"argument and result size limits", test_frame_limits},
        {"pp_pool_free with jobs in flight", test_free_in_flight},
        {"FIFO directories of killed programs are swept, safely", test_sweep_stale},
        {"batches: items in order, a failing item, malformed, a crash, a timeout", test_batch},
        {"a batch makes no read or write per item", test_batch_cost},
        {"max_jobs_per_worker 3: 10 jobs on 4 workers, each once", test_max_jobs_per_worker},
        {"max_jobs_per_worker with pipelined tiny jobs", test_max_jobs_pipelined},
        {"large arguments in shared buffers, more than a worker has slots", test_shm_args},
        {"large results: offered buffers, grown past the offer, the pipe again", test_shm_results},
        {"a timeout after a large result was written leaves nothing behind", test_shm_timeout},
        {"jobs handed back are not read any more (their frames cut short)",
         test_handed_back_not_read},
        {NULL, NULL},
    };
    return pp_add_suite("pp_pool", NULL, NULL, tests);
}
