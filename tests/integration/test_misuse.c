/* SPDX-License-Identifier: MIT */
/* test_misuse.c -- the public API used the way real programs misuse it,
 * with real ppworker processes: every public function called from inside a
 * callback (pp_wait and the other waits refused, pp_server_free of the same
 * server and of another), a callback chain 10,000 jobs long, a callback
 * that blocks; 8 threads submitting, waiting, cancelling and freeing the
 * same and different jobs, every job counted; threads blocked in waits
 * while pp_server_free() runs; NULL and out-of-range arguments to every
 * function, handles of another server, handles used after their server
 * was freed; and a child forked after pp_server_new() using the server.
 * Every loop and wait is bounded. */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client_util.h"
#include "cunit_main.h"
#include "test_tasks.h"
#include "test_util.h"

static char tmpdir[256];

static int suite_init(void)
{
    if (tmpdir_make(tmpdir, sizeof tmpdir, "misuse") != 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    if (!getenv("PP_WORKER")) {
        fprintf(stderr, "test_misuse: PP_WORKER is not set\n");
        return -1;
    }
    return 0;
}

static int suite_clean(void)
{
    rm_tree(tmpdir);
    return 0;
}

static pp_server *server(int ncpus)
{
    return cl_new(&(pp_config){.ncpus = ncpus});
}

/* Polls `flag` until it is at least `want`, at most `limit` seconds; the
 * last value. */
static int wait_flag(atomic_int *flag, int want, double limit)
{
    double end = now_s() + limit;
    int v;
    while ((v = atomic_load(flag)) < want && now_s() < end)
        sleep_s(0.002);
    return v;
}

/* ==== from inside a callback ============================================ */

typedef struct inside {
    pp_server *s, *other;        /* other: freed from the callback */
    pp_job *pending;             /* a long job, cancelled from the callback */
    pp_job *grouped;             /* a long job of group "g" */
    atomic_int calls, failures;  /* callbacks run; checks that failed */
    char why[256];               /* the first check that failed */
    pthread_mutex_t mu;
} inside;

static void fail_check(inside *c, const char *what)
{
    pthread_mutex_lock(&c->mu);
    if (!c->why[0])
        snprintf(c->why, sizeof c->why, "%s (pp_last_error: %.150s)", what, pp_last_error());
    pthread_mutex_unlock(&c->mu);
    atomic_fetch_add(&c->failures, 1);
}

#define CHECK(c, cond)                                                       \
    do {                                                                     \
        if (!(cond))                                                         \
            fail_check((c), #cond);                                          \
    } while (0)

/* The job's own status, result and node; waits that would wait for
 * themselves refused, with a message. */
static void cb_inspect(inside *c, pp_job *j)
{
    size_t len = 0;
    CHECK(c, pp_job_status(j) == PP_DONE);
    CHECK(c, pp_job_wait(j) == PP_DONE);
    CHECK(c, pp_job_wait_for(j, 0) == PP_DONE);
    const char *r = pp_job_result(j, &len);
    CHECK(c, r && len == 1 && r[0] == 'x');
    CHECK(c, strcmp(pp_job_error(j), "") == 0);
    CHECK(c, strcmp(pp_job_node(j), "local") == 0);
    CHECK(c, pp_job_wait_for(c->pending, 0) == PP_PENDING);
    CHECK(c, pp_wait(c->s, NULL) == -1 && strstr(pp_last_error(), "pp_wait: called from a callback"));
    CHECK(c, pp_wait(c->s, "g") == -1);
    CHECK(c, pp_wait_for(c->s, NULL, 1) == -1 && strstr(pp_last_error(), "pp_wait_for"));
    CHECK(c, pp_next_done(c->s, NULL, 1) == NULL && strstr(pp_last_error(), "callback"));
    CHECK(c, pp_next_done(c->s, NULL, -1) == NULL);
    pp_stats st;
    pp_node_info ni[2];
    CHECK(c, pp_get_stats(c->s, &st) == 0 && st.submitted >= 3);
    CHECK(c, pp_get_active_nodes(c->s, ni, 2) == 1 && strcmp(ni[0].name, "local") == 0);
    CHECK(c, pp_add_node(c->s, "127.0.0.1:9") == 0); /* nothing listens there */
    CHECK(c, pp_add_node(c->s, "127.0.0.1:9") == -1 && strstr(pp_last_error(), "pp_add_node"));
    CHECK(c, pp_remove_node(c->s, "127.0.0.1:9") == 0);
    FILE *devnull = fopen("/dev/null", "w");
    CHECK(c, devnull != NULL);
    if (devnull) {
        pp_print_stats(c->s, devnull);
        CHECK(c, pp_write_stats_json(c->s, devnull) == 0);
        fclose(devnull);
    }
    CHECK(c, pp_get_ncpus(c->s) == 4);
    CHECK(c, pp_set_ncpus(c->s, 4) == 0);
}

static void noop_cb(pp_job *j, void *arg)
{
    (void)j;
    (void)arg;
}

/* Submits of every kind, a map, a template, shared buffers, a job waited
 * for, a server of its own, cancels; the handles freed here. */
static void cb_control(inside *c)
{
    pp_job *a = pp_submit(c->s, t_echo, "y", 1, NULL);
    pp_job *b = pp_submitf(c->s, t_square, NULL, "l", 7L);
    pp_job *d = pp_submitv(c->s, t_square, NULL, 8);
    CHECK(c, a && b && d);
    pp_job_free(a); /* pending: still runs, its result dropped */
    pp_job_free(b);
    pp_job_free(d);
    pp_template *t = pp_template_new(c->s, t_echo, &(pp_submit_opts){.group = "tpl"});
    CHECK(c, t != NULL);
    pp_job *e = t ? pp_template_submit(t, "z", 1) : NULL;
    CHECK(c, e != NULL);
    pp_job_free(e);
    pp_template_free(t);
    void *buf = pp_shm_alloc(c->s, 4096);
    CHECK(c, buf != NULL);
    if (buf) {
        memset(buf, 'q', 4096);
        pp_job *f = pp_submit_shm(c->s, t_echo, buf, 4096, NULL);
        CHECK(c, f != NULL);
        CHECK(c, pp_shm_free(c->s, buf) == 0); /* the job keeps it */
        pp_job_free(f);
    }
    int64_t items[100];
    for (int i = 0; i < 100; i++)
        items[i] = i;
    pp_map *m = pp_map_new(c->s, t_sq8, items, 8, 100, NULL);
    CHECK(c, m != NULL);
    if (m) {
        CHECK(c, pp_map_wait(m) == -1);       /* would wait for itself */
        CHECK(c, pp_map_size(m) == 100);
        pp_map_free(m);                         /* returns at once */
    }
    /* A job of this server with a callback of its own, waited for here:
     * its status is final before its callback (queued behind this one). */
    pp_job *w = pp_submit(c->s, t_echo, "w", 1, &(pp_submit_opts){.callback = noop_cb});
    CHECK(c, w && pp_job_wait_for(w, 20) == PP_DONE);
    pp_job_free(w);
    /* A server made, used and freed inside the callback. */
    pp_server *in = pp_server_new(&(pp_config){.ncpus = 1});
    CHECK(c, in != NULL);
    pp_job *x = in ? pp_submit(in, t_echo, "i", 1, NULL) : NULL;
    CHECK(c, x && pp_job_wait_for(x, 20) == PP_DONE);
    pp_job_free(x);
    pp_server_free(in);
    CHECK(c, pp_job_cancel(c->pending) == 0);
    CHECK(c, pp_job_status(c->pending) == PP_CANCELLED);
    CHECK(c, pp_job_cancel(c->pending) == 1);
    CHECK(c, pp_cancel_group(c->s, "g") == 1);
    CHECK(c, pp_job_status(c->grouped) == PP_CANCELLED);
    CHECK(c, pp_cancel_group(c->s, "no such group") == 0);
    pp_job_free(c->pending); /* another job's handle, freed here */
    c->pending = NULL;
}

static void everything_cb(pp_job *j, void *arg)
{
    inside *c = arg;
    if (atomic_fetch_add(&c->calls, 1) != 0)
        return;
    cb_inspect(c, j);
    cb_control(c);
    pp_job_free(j); /* the job itself: valid until this returns */
    CHECK(c, pp_job_status(j) == PP_DONE);
    pp_server_free(c->other); /* another server, at once */
    c->other = NULL;
    pp_server_free(c->s);     /* this one: once this callback returns */
    CHECK(c, pp_get_ncpus(c->s) == 4);
}

/* Every public function from inside one callback: what may be called
 * works, the waits for itself are refused with a message, the other
 * server goes at once, this one after the callback, no worker left. */
static void test_everything_from_callback(void)
{
    inside c = {.mu = PTHREAD_MUTEX_INITIALIZER};
    /* Three long jobs and the one called back; a secret, for nodes. */
    c.s = cl_new(&(pp_config){.ncpus = 4, .secret = "misuse-test-secret-0123456789"});
    c.other = server(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.other);
    c.pending = pp_submitf(c.s, t_sleep, NULL, "l", 20000L);
    c.grouped = pp_submitf(c.s, t_sleep, &(pp_submit_opts){.group = "g"}, "l", 20000L);
    pp_job *late = pp_submitf(c.s, t_sleep, NULL, "l", 20000L);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.pending);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.grouped);
    CU_ASSERT_PTR_NOT_NULL_FATAL(late);
    CU_ASSERT_PTR_NOT_NULL_FATAL(
        pp_submit(c.s, t_echo, "x", 1, &(pp_submit_opts){.callback = everything_cb, .callback_arg = &c}));
    /* The teardown the callback asked for cancels `late`. */
    CU_ASSERT_EQUAL(pp_job_wait_for(late, 30), PP_CANCELLED);
    CU_ASSERT_EQUAL(wait_flag(&c.calls, 1, 10), 1);
    CU_ASSERT_EQUAL(wait_children("ppworker", 0, 20), 0);
    CU_ASSERT_EQUAL(atomic_load(&c.failures), 0);
    if (c.why[0])
        fprintf(stderr, "in the callback: %s\n", c.why);
    CU_ASSERT_EQUAL(pp_job_status(c.grouped), PP_CANCELLED);
    pp_job_free(c.grouped);
    pp_job_free(late);
}

/* ---- pp_server_free from callbacks while the server is being freed ---- */

static atomic_int teardown_cb_calls;

static void free_again_cb(pp_job *j, void *arg)
{
    (void)j;
    atomic_fetch_add(&teardown_cb_calls, 1);
    pp_server_free(arg); /* the program frees it too: at most once */
}

/* A program frees its server while jobs are pending whose callbacks free
 * the server too (on an error, say): the teardown runs once, every
 * callback once. */
static void test_free_during_free(void)
{
    atomic_store(&teardown_cb_calls, 0);
    pp_server *s = server(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_submit_opts o = {.callback = free_again_cb, .callback_arg = s};
    pp_job *j[4];
    for (int i = 0; i < 4; i++) {
        j[i] = pp_submitf(s, t_sleep, &o, "l", 20000L);
        CU_ASSERT_PTR_NOT_NULL_FATAL(j[i]);
    }
    pp_server_free(s);
    CU_ASSERT_EQUAL(atomic_load(&teardown_cb_calls), 4);
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_EQUAL(pp_job_status(j[i]), PP_CANCELLED);
        pp_job_free(j[i]);
    }
    CU_ASSERT_EQUAL(wait_children("ppworker", 0, 10), 0);
}

/* A callback asks to free the server (it runs when the callback returns),
 * and the program frees it too while that callback still runs: one
 * teardown, the program's (before, the callback thread started a second
 * one when its callback returned: a use after free). */
static atomic_int asked;

static void free_then_linger_cb(pp_job *j, void *arg)
{
    (void)j;
    pp_server_free(arg);
    atomic_store(&asked, 1);
    sleep_s(0.3); /* the program's pp_server_free() begins meanwhile */
}

static void test_free_asked_then_freed(void)
{
    atomic_store(&asked, 0);
    pp_server *s = server(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_job *j = pp_submit(s, t_echo, "x", 1,
                          &(pp_submit_opts){.callback = free_then_linger_cb, .callback_arg = s});
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    double end = now_s() + 20;
    while (!atomic_load(&asked) && now_s() < end)
        sleep_s(0.001);
    CU_ASSERT_FATAL(atomic_load(&asked));
    pp_server_free(s);
    CU_ASSERT_EQUAL(pp_job_status(j), PP_DONE);
    pp_job_free(j);
    CU_ASSERT_EQUAL(wait_children("ppworker", 0, 10), 0);
}

/* ---- a chain of callbacks ---- */

enum { CHAIN = 10000 };

typedef struct chain {
    pp_server *s;
    atomic_int links, failed;
} chain;

static void chain_cb(pp_job *j, void *arg)
{
    chain *c = arg;
    if (pp_job_status(j) != PP_DONE)
        atomic_fetch_add(&c->failed, 1);
    pp_job_free(j);
    int link = atomic_fetch_add(&c->links, 1) + 1;
    pp_stats st;
    if (link % 1000 == 0 && (pp_get_stats(c->s, &st) != 0 || st.pending > 1))
        atomic_fetch_add(&c->failed, 1); /* memory: one job pending at a time */
    if (link >= CHAIN)
        return;
    pp_job *n = pp_submit(c->s, t_echo, "c", 1,
                          &(pp_submit_opts){.callback = chain_cb, .callback_arg = c});
    if (!n)
        atomic_fetch_add(&c->failed, 1);
}

/* Each callback submits the next job, 10,000 in a row: pp_wait() waits
 * for the whole chain (each link is submitted before its parent
 * retires), the stack and the pending count stay flat. */
static void test_callback_chain(void)
{
    chain c = {.s = server(2)};
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(
        pp_submit(c.s, t_echo, "c", 1, &(pp_submit_opts){.callback = chain_cb, .callback_arg = &c}));
    /* pp_wait_for, bounded: a chain that broke would leave 0 pending early. */
    int rc = pp_wait_for(c.s, NULL, 300);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(atomic_load(&c.links), CHAIN);
    CU_ASSERT_EQUAL(atomic_load(&c.failed), 0);
    pp_stats st;
    CU_ASSERT_EQUAL(pp_get_stats(c.s, &st), 0);
    CU_ASSERT_EQUAL(st.submitted, CHAIN);
    CU_ASSERT_EQUAL(st.done, CHAIN);
    CU_ASSERT_EQUAL(st.pending, 0);
    if (rc == 0)
        pp_server_free(c.s);
    else
        cl_client_forget(c.s);
}

/* ---- a callback that blocks ---- */

typedef struct blocker {
    atomic_int entered, release, returned;
} blocker;

static void block_cb(pp_job *j, void *arg)
{
    (void)j;
    blocker *b = arg;
    atomic_store(&b->entered, 1);
    double end = now_s() + 60;
    while (!atomic_load(&b->release) && now_s() < end)
        sleep_s(0.005);
    atomic_store(&b->returned, 1);
}

typedef struct freer {
    pp_server *s;
    atomic_int done;
} freer;

static void *free_thread(void *arg)
{
    freer *f = arg;
    pp_server_free(f->s);
    atomic_store(&f->done, 1);
    return NULL;
}

/* While a callback blocks, jobs keep running on the workers and their
 * waits return; pp_server_free() waits for that callback to return (it
 * may use the server), then ends at once. */
static void test_blocking_callback(void)
{
    blocker b = {0};
    pp_server *s = server(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_job *first = pp_submit(s, t_echo, "b", 1, &(pp_submit_opts){.callback = block_cb, .callback_arg = &b});
    CU_ASSERT_PTR_NOT_NULL_FATAL(first);
    CU_ASSERT_EQUAL(wait_flag(&b.entered, 1, 20), 1);
    enum { N = 50 };
    int done = 0;
    for (long i = 0; i < N; i++) {
        pp_job *j = pp_submitf(s, t_square, NULL, "l", i);
        long v = -1;
        if (pp_job_wait_for(j, 20) == PP_DONE && pp_job_unpack(j, "l", &v) == 0 && v == i * i)
            done++;
        pp_job_free(j);
    }
    CU_ASSERT_EQUAL(done, N);
    CU_ASSERT_EQUAL(atomic_load(&b.returned), 0); /* all that while it blocked */
    pp_job *queued = pp_submitf(s, t_sleep, NULL, "l", 20000L);
    freer f = {.s = s};
    pthread_t t;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, free_thread, &f), 0);
    sleep_s(0.3);
    CU_ASSERT_EQUAL(atomic_load(&f.done), 0); /* it waits for the callback */
    atomic_store(&b.release, 1);
    CU_ASSERT_EQUAL(wait_flag(&f.done, 1, 30), 1);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(pp_job_status(queued), PP_CANCELLED);
    CU_ASSERT_EQUAL(wait_children("ppworker", 0, 10), 0);
    pp_job_free(queued);
    pp_job_free(first);
}

/* ---- what a callback's children inherit ---- */

typedef struct spawner {
    atomic_int blocked;          /* 1 + whether SIGTERM was blocked in the callback */
    atomic_int pid;              /* the child it started */
} spawner;

static void spawn_cb(pp_job *j, void *arg)
{
    (void)j;
    spawner *sp = arg;
    sigset_t m;
    pthread_sigmask(SIG_BLOCK, NULL, &m);
    atomic_store(&sp->blocked, 1 + sigismember(&m, SIGTERM));
    pid_t pid = fork();
    if (pid == 0) {
        execlp("sleep", "sleep", "30", (char *)NULL);
        _exit(127);
    }
    atomic_store(&sp->pid, (int)pid);
}

/* A callback runs with the signal mask of the program (of the thread that
 * made the server), not the scheduler's, which blocks every signal: a
 * process it starts (system(), fork and exec) inherits that mask, and
 * one started with SIGTERM blocked could not be stopped by it. */
static void test_callback_signal_mask(void)
{
    spawner sp = {0};
    pp_server *s = server(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_job *j = pp_submit(s, t_echo, "m", 1, &(pp_submit_opts){.callback = spawn_cb, .callback_arg = &sp});
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_EQUAL(pp_wait_for(s, NULL, 20), 0);
    CU_ASSERT_EQUAL(atomic_load(&sp.blocked), 1);
    int pid = atomic_load(&sp.pid), status = 0;
    CU_ASSERT_FATAL(pid > 0);
    kill(pid, SIGTERM);
    int reaped = wait_pid(pid, &status, 10);
    if (!reaped) {
        kill(pid, SIGKILL);
        wait_pid(pid, &status, 5);
    }
    CU_ASSERT_EQUAL(reaped, 1);
    CU_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
    pp_job_free(j);
    pp_server_free(s);
}

/* ==== many threads ====================================================== */

enum { THREADS = 8, PER_THREAD = 400, SLOTS = THREADS * PER_THREAD };

typedef struct crowd crowd;

typedef struct slot {
    crowd *c;
    pp_job *_Atomic shared;      /* a handle every thread may use: freed at the end */
    atomic_int cb_calls;         /* callbacks run */
    atomic_int cb_status;        /* the status its callback saw */
    atomic_int cancel0;          /* pp_job_cancel() returned 0 */
    atomic_int waited;           /* 1 + the status its owner's wait returned, or 0 */
} slot;

struct crowd {
    pp_server *s;
    slot slot[SLOTS];
    atomic_int bad;              /* impossible answers */
};

typedef struct worker_arg {
    crowd *c;
    int id;
    unsigned seed;
} worker_arg;

static void crowd_cb(pp_job *j, void *arg)
{
    slot *sl = arg;
    int st = pp_job_status(j);
    atomic_fetch_add(&sl->cb_calls, 1);
    atomic_store(&sl->cb_status, st);
    if (st == PP_DONE && !pp_job_result(j, NULL))
        atomic_fetch_add(&sl->c->bad, 1);
}

static void cancel_counted(slot *sl, pp_job *j)
{
    int rc = pp_job_cancel(j);
    if (rc == 0)
        atomic_fetch_add(&sl->cancel0, 1);
    else if (rc != 1)
        atomic_fetch_add(&sl->c->bad, 1);
}

/* Cancels or peeks at a random shared job of any thread (none yet: nothing). */
static void poke_other(crowd *c, unsigned r)
{
    slot *sl = &c->slot[r % SLOTS];
    pp_job *j = atomic_load(&sl->shared);
    if (!j)
        return;
    if (r & 0x100)
        cancel_counted(sl, j);
    else if (pp_job_status(j) < 0 || pp_job_wait_for(j, 0) < 0)
        atomic_fetch_add(&c->bad, 1);
}

/* The job of slot i: shared ones stay for every thread (freed at the
 * end); private ones are cancelled now, after a yield that races their
 * end, or not, then waited for, or freed while pending. */
static void crowd_one(crowd *c, int i, unsigned *seed)
{
    slot *sl = &c->slot[i];
    unsigned r = (unsigned)rand_r(seed);
    pp_submit_opts o = {.callback = crowd_cb, .callback_arg = sl};
    pp_job *j = (r & 7) == 0 ? pp_submitf(c->s, t_sleep, &o, "l", 2L)
                             : pp_submit(c->s, t_echo, "e", 1, &o);
    if (!j) {
        atomic_fetch_add(&c->bad, 1);
        return;
    }
    if ((r >> 3) & 1) {
        atomic_store(&sl->shared, j);
        if ((r >> 4) & 1)
            cancel_counted(sl, j);
        return;
    }
    switch ((r >> 5) % 4) {
    case 0:
        cancel_counted(sl, j);
        break;
    case 1:
        sched_yield();
        cancel_counted(sl, j);
        break;
    case 2:
        pp_job_free(j); /* pending, most likely: it still runs */
        return;
    default:
        break;
    }
    atomic_store(&sl->waited, 1 + pp_job_wait_for(j, 60));
    pp_job_free(j);
}

static void *crowd_thread(void *arg)
{
    worker_arg *a = arg;
    /* Each thread takes every THREADS-th slot. */
    for (int i = 0; i < PER_THREAD; i++) {
        crowd_one(a->c, i * THREADS + a->id, &a->seed);
        poke_other(a->c, (unsigned)rand_r(&a->seed));
    }
    return NULL;
}

/* Whether slot i's accounts agree: one callback, a final status of done
 * or cancelled, a cancel that returned 0 exactly when cancelled, the
 * owner's wait (if any) saying the same. */
static int slot_right(slot *sl)
{
    int st = atomic_load(&sl->cb_status), w = atomic_load(&sl->waited);
    return atomic_load(&sl->cb_calls) == 1 && (st == PP_DONE || st == PP_CANCELLED) &&
           atomic_load(&sl->cancel0) == (st == PP_CANCELLED) && (w == 0 || w == st + 1);
}

/* 8 threads submit tiny and short jobs with callbacks, cancel some of
 * their own (at once, or racing the job's end), free some while pending,
 * wait for others, and cancel or peek at the shared jobs of every thread:
 * every callback runs once and sees the final status; a job is PP_DONE or
 * PP_CANCELLED, never both, never lost; pp_job_cancel() returned 0
 * exactly once for each job cancelled; the statistics count every job.
 * The cancels take queued jobs back from the workers, often twice in a
 * row before a worker claims its next job: no worker may then run a job
 * taken back from it (it did, its result then matching no job it held:
 * "worker N sent a result for no job it held; worker replaced"). */
static void test_eight_threads(void)
{
    CU_ASSERT_EQUAL_FATAL(capture_start(tmpdir), 0);
    crowd *c = calloc(1, sizeof *c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    c->s = server(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c->s);
    for (int i = 0; i < SLOTS; i++)
        c->slot[i].c = c;
    pthread_t t[THREADS];
    worker_arg wa[THREADS];
    for (int i = 0; i < THREADS; i++) {
        wa[i] = (worker_arg){.c = c, .id = i, .seed = 1234u + (unsigned)i};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, crowd_thread, &wa[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    CU_ASSERT_EQUAL(pp_wait_for(c->s, NULL, 60), 0);
    int done = 0, cancelled = 0, wrong = 0;
    for (int i = 0; i < SLOTS; i++) {
        int st = atomic_load(&c->slot[i].cb_status);
        done += st == PP_DONE;
        cancelled += st == PP_CANCELLED;
        wrong += !slot_right(&c->slot[i]);
        pp_job_free(atomic_load(&c->slot[i].shared));
    }
    CU_ASSERT_EQUAL(done + cancelled, SLOTS);
    CU_ASSERT_EQUAL(wrong, 0);
    CU_ASSERT_EQUAL(atomic_load(&c->bad), 0);
    pp_stats st;
    CU_ASSERT_EQUAL(pp_get_stats(c->s, &st), 0);
    CU_ASSERT_EQUAL(st.submitted, SLOTS);
    CU_ASSERT_EQUAL(st.done, (uint64_t)done);
    CU_ASSERT_EQUAL(st.cancelled, (uint64_t)cancelled);
    CU_ASSERT_EQUAL(st.pending, 0);
    pp_server_free(c->s);
    free(c);
    char *log = capture_end();
    CU_ASSERT_PTR_NULL(log ? strstr(log, "no job it held") : NULL);
    free(log);
}

/* ---- handles freed by other threads while they end ---- */

typedef struct handoff {
    _Atomic(pp_job *) slot[256];
    atomic_int produced, consumed, cb_calls, cb_bad;
} handoff;

static void handoff_cb(pp_job *j, void *arg)
{
    handoff *h = arg;
    atomic_fetch_add(&h->cb_calls, 1);
    /* Valid during the callback even if its handle was freed meanwhile. */
    const char *r = pp_job_result(j, NULL);
    if (pp_job_status(j) == PP_DONE && (!r || r[0] != 'h'))
        atomic_fetch_add(&h->cb_bad, 1);
}

typedef struct handoff_arg {
    handoff *h;
    pp_server *s;
    int producer;
} handoff_arg;

enum { HANDOFF_JOBS = 4000 };

static void *handoff_thread(void *arg)
{
    handoff_arg *a = arg;
    handoff *h = a->h;
    unsigned k = 0;
    double end = now_s() + 120;
    if (a->producer) {
        for (int i = 0; i < HANDOFF_JOBS / 4 && now_s() < end; i++) {
            pp_job *j = pp_submit(a->s, t_echo, "h", 1,
                                  &(pp_submit_opts){.callback = handoff_cb, .callback_arg = h});
            if (!j)
                continue;
            atomic_fetch_add(&h->produced, 1);
            /* Another thread frees it, racing its end and its callback. */
            while (now_s() < end) {
                pp_job *expect = NULL;
                if (atomic_compare_exchange_strong(&h->slot[k++ % 256], &expect, j))
                    break;
            }
        }
        return NULL;
    }
    while (atomic_load(&h->consumed) < HANDOFF_JOBS && now_s() < end) {
        pp_job *j = atomic_exchange(&h->slot[k++ % 256], NULL);
        if (j) {
            if (k & 1)
                pp_job_cancel(j);
            pp_job_free(j);
            atomic_fetch_add(&h->consumed, 1);
        }
    }
    return NULL;
}

/* 4 threads submit, 4 others free each handle (some cancelled first) as
 * soon as they get it, while it runs, ends and is called back: no use
 * after free (ASan), every callback once. */
static void test_free_races_end(void)
{
    handoff *h = calloc(1, sizeof *h);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    pp_server *s = server(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pthread_t t[8];
    handoff_arg a[8];
    for (int i = 0; i < 8; i++) {
        a[i] = (handoff_arg){.h = h, .s = s, .producer = i < 4};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, handoff_thread, &a[i]), 0);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    CU_ASSERT_EQUAL(atomic_load(&h->produced), HANDOFF_JOBS);
    CU_ASSERT_EQUAL(atomic_load(&h->consumed), HANDOFF_JOBS);
    CU_ASSERT_EQUAL(pp_wait_for(s, NULL, 60), 0);
    CU_ASSERT_EQUAL(atomic_load(&h->cb_calls), HANDOFF_JOBS);
    CU_ASSERT_EQUAL(atomic_load(&h->cb_bad), 0);
    pp_server_free(s);
    free(h);
}

/* ---- pp_server_free while other threads wait in the server ---- */

typedef struct blocked {
    pp_server *s;
    pp_job *long_job, *second;
    atomic_int entered;
    int wait_rc, job_rc, next_ok, submit_null;
    char submit_err[256];
} blocked;

static void *blocked_wait(void *arg)
{
    blocked *b = arg;
    atomic_fetch_add(&b->entered, 1);
    b->wait_rc = pp_wait(b->s, NULL);
    return NULL;
}

static void *blocked_job_wait(void *arg)
{
    blocked *b = arg;
    atomic_fetch_add(&b->entered, 1);
    b->job_rc = pp_job_wait(b->long_job);
    return NULL;
}

static void *blocked_submit(void *arg)
{
    blocked *b = arg;
    atomic_fetch_add(&b->entered, 1);
    pp_job *j = pp_submit(b->s, t_echo, "s", 1, NULL); /* max_pending reached */
    b->submit_null = j == NULL;
    snprintf(b->submit_err, sizeof b->submit_err, "%s", pp_last_error());
    pp_job_free(j);
    return NULL;
}

static void *blocked_next(void *arg)
{
    blocked *b = arg;
    atomic_fetch_add(&b->entered, 1);
    /* One call: the server may be gone once it returns.  The job it may
     * return is `second`, freed by the test. */
    pp_job *j = pp_next_done(b->s, "none", -1);
    b->next_ok = !j || j == b->second;
    return NULL;
}

/* Threads blocked in pp_wait(), pp_job_wait(), pp_submit() (max_pending)
 * and pp_next_done() when pp_server_free() begins return: 0, the job
 * cancelled, NULL saying the server shuts down, NULL. */
static void test_free_releases_waiters(void)
{
    blocked b = {0};
    b.s = cl_new(&(pp_config){.ncpus = 1, .max_pending = 2});
    CU_ASSERT_PTR_NOT_NULL_FATAL(b.s);
    b.long_job = pp_submitf(b.s, t_sleep, NULL, "l", 30000L);
    b.second = pp_submitf(b.s, t_sleep, &(pp_submit_opts){.group = "none"}, "l", 30000L);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b.long_job);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b.second);
    void *(*fn[4])(void *) = {blocked_wait, blocked_job_wait, blocked_submit, blocked_next};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, fn[i], &b), 0);
    CU_ASSERT_EQUAL(wait_flag(&b.entered, 4, 10), 4);
    sleep_s(1.0); /* well inside their waits */
    pp_server_free(b.s);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CU_ASSERT_EQUAL(b.wait_rc, 0);
    CU_ASSERT_EQUAL(b.job_rc, PP_CANCELLED);
    CU_ASSERT_EQUAL(b.submit_null, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(b.submit_err, "shutting down"));
    CU_ASSERT_EQUAL(b.next_ok, 1);
    pp_job_free(b.long_job);
    pp_job_free(b.second);
}

/* ==== misuse ============================================================ */

static int err_starts(const char *fn)
{
    return strncmp(pp_last_error(), fn, strlen(fn)) == 0;
}

/* NULL where a server, job, map, template, buffer or output is expected:
 * an error with pp_last_error() naming the function, never a crash. */
static void test_null_everywhere(void)
{
    pp_server *s = server(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(pp_add_node(NULL, "h"), -1);
    CU_ASSERT(err_starts("pp_add_node"));
    CU_ASSERT_EQUAL(pp_add_node(s, NULL), -1);
    CU_ASSERT_EQUAL(pp_remove_node(NULL, "h"), -1);
    CU_ASSERT_EQUAL(pp_remove_node(s, NULL), -1);
    CU_ASSERT(err_starts("pp_remove_node"));
    CU_ASSERT_PTR_NULL(pp_shm_alloc(NULL, 10));
    CU_ASSERT(err_starts("pp_shm_alloc"));
    CU_ASSERT_PTR_NULL(pp_submit_shm(NULL, t_echo, "a", 1, NULL));
    CU_ASSERT_PTR_NULL(pp_submit_shm(s, NULL, "a", 1, NULL));
    CU_ASSERT_PTR_NULL(pp_submit_shm(s, t_echo, NULL, 1, NULL));
    CU_ASSERT(err_starts("pp_submit_shm"));
    CU_ASSERT_EQUAL(pp_shm_free(NULL, &s), -1);
    CU_ASSERT_EQUAL(pp_shm_free(s, NULL), 0);
    CU_ASSERT_EQUAL(pp_job_cancel(NULL), -1);
    CU_ASSERT(err_starts("pp_job_cancel"));
    CU_ASSERT_EQUAL(pp_cancel_group(NULL, NULL), -1);
    CU_ASSERT(err_starts("pp_cancel_group"));
    CU_ASSERT_PTR_NULL(pp_next_done(NULL, NULL, 0));
    CU_ASSERT(err_starts("pp_next_done"));
    CU_ASSERT_PTR_NULL(pp_template_new(NULL, t_echo, NULL));
    CU_ASSERT_PTR_NULL(pp_template_new(s, NULL, NULL));
    CU_ASSERT(err_starts("pp_template_new"));
    CU_ASSERT_PTR_NULL(pp_template_submit(NULL, "a", 1));
    CU_ASSERT_PTR_NULL(pp_template_submitf(NULL, "l", 1L));
    CU_ASSERT(err_starts("pp_template_submitf"));
    pp_template_free(NULL);
    CU_ASSERT_EQUAL(pp_write_stats_json(NULL, stdout), -1);
    CU_ASSERT_EQUAL(pp_write_stats_json(s, NULL), -1);
    CU_ASSERT(err_starts("pp_write_stats_json"));
    CU_ASSERT_PTR_NULL(pp_submitf(NULL, t_square, NULL, "l", 1L));
    CU_ASSERT(err_starts("pp_submit"));
    CU_ASSERT_PTR_NULL(pp_submitf(s, NULL, NULL, "l", 1L));
    CU_ASSERT_PTR_NULL(pp_submitf(s, t_square, NULL, NULL));
    CU_ASSERT(err_starts("pp_"));
    CU_ASSERT_PTR_NULL(pp_submit_values(NULL, t_square, NULL, NULL, 0));
    CU_ASSERT_PTR_NULL(pp_submit_values(s, t_square, NULL, NULL, 2));
    CU_ASSERT(err_starts("pp_"));
    long l;
    CU_ASSERT_EQUAL(pp_job_unpack(NULL, "l", &l), -1);
    CU_ASSERT(err_starts("pp_job_unpack"));
    CU_ASSERT_PTR_NULL(pp_job_result(NULL, NULL));
    CU_ASSERT(err_starts("pp_job_result"));
    pp_out o = PP_OUT(&l);
    CU_ASSERT_EQUAL(pp_job_unpack_values(NULL, &o, 1), -1);
    CU_ASSERT(err_starts("pp_job_unpack_values"));
    CU_ASSERT_EQUAL(pp_pack(NULL, "l", 1L), -1);
    CU_ASSERT(err_starts("pp_pack"));
    CU_ASSERT_EQUAL(pp_pack_values(NULL, NULL, 0), -1);
    CU_ASSERT_EQUAL(pp_unpack(NULL, 8, "l", &l), -1);
    CU_ASSERT(err_starts("pp_unpack"));
    CU_ASSERT_EQUAL(pp_unpack(NULL, 0, NULL), -1);
    CU_ASSERT_EQUAL(pp_unpack_values(NULL, 8, NULL, 1), -1);
    char fmt[8];
    CU_ASSERT_EQUAL(pp_unpack_format(NULL, 8, fmt, sizeof fmt), -1);
    CU_ASSERT_EQUAL(pp_unpack_format("x", 1, NULL, 8), -1);
    CU_ASSERT(err_starts("pp_unpack_format"));
    CU_ASSERT_EQUAL(pp_buf_append(NULL, NULL, 0), -1);
    CU_ASSERT_PTR_NOT_NULL(pp_strerror(-1));
    CU_ASSERT_PTR_NOT_NULL(pp_last_error());
    pp_server_free(s);
}

/* Lengths of 0 and SIZE_MAX, counts whose product overflows, a task that
 * is no task, handles and buffers of another server. */
static void test_sizes_and_strangers(void)
{
    pp_server *s = server(1), *s2 = server(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s2);
    pp_job *z = pp_submit(s, t_echo, NULL, 0, NULL);
    size_t len = 99;
    CU_ASSERT_PTR_NOT_NULL_FATAL(z);
    CU_ASSERT_PTR_NOT_NULL(pp_job_result(z, &len));
    CU_ASSERT_EQUAL(len, 0);
    pp_job_free(z);
    CU_ASSERT_PTR_NULL(pp_submit(s, t_echo, "a", SIZE_MAX, NULL));
    CU_ASSERT(err_starts("pp_submit") && strstr(pp_last_error(), "limit"));
    CU_ASSERT_PTR_NULL(pp_shm_alloc(s, SIZE_MAX));
    CU_ASSERT_PTR_NULL(pp_shm_alloc(s, 0));
    char *buf = pp_shm_alloc(s, 4096);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    CU_ASSERT_PTR_NULL(pp_submit_shm(s, t_echo, buf + 10, SIZE_MAX, NULL));
    CU_ASSERT_PTR_NULL(pp_submit_shm(s, t_echo, buf + 4000, 200, NULL));
    CU_ASSERT_PTR_NULL(pp_submit_shm(s2, t_echo, buf, 16, NULL)); /* another server's */
    CU_ASSERT(err_starts("pp_submit_shm"));
    CU_ASSERT_EQUAL(pp_shm_free(s2, buf), -1);
    CU_ASSERT_EQUAL(pp_shm_free(s, buf), 0);
    CU_ASSERT_EQUAL(pp_shm_free(s, buf), -1); /* twice */
    /* Not tasks: a data address, an address in no object, libc's. */
    static const int not_code = 1;
    pp_task t;
    const void *p = &not_code;
    memcpy(&t, &p, sizeof t);
    CU_ASSERT_PTR_NULL(pp_submit(s, t, "a", 1, NULL));
    CU_ASSERT(err_starts("pp_submit"));
    p = (const void *)(uintptr_t)0x10;
    memcpy(&t, &p, sizeof t);
    CU_ASSERT_PTR_NULL(pp_submit(s, t, "a", 1, NULL));
    CU_ASSERT(err_starts("pp_submit"));
    /* A map: no item at all; counts whose size overflows. */
    int64_t v[2] = {3, 4};
    pp_map *m = pp_map_new(s, t_sq8, v, 8, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(pp_map_wait(m), 0);
    size_t i;
    CU_ASSERT_EQUAL(pp_map_next(m, 1, &i), 0);
    pp_map_free(m);
    CU_ASSERT_PTR_NULL(pp_map_new(s, t_sq8, v, 8, SIZE_MAX / 4, NULL));
    CU_ASSERT(err_starts("pp_map_new") && strstr(pp_last_error(), "overflow"));
    CU_ASSERT_PTR_NULL(pp_map_new(s, t_sq8, v, (size_t)1 << 20, (size_t)1 << 45, NULL));
    CU_ASSERT(err_starts("pp_map_new") && strstr(pp_last_error(), "overflow"));
    /* A job of one server cancelled and waited for while the other runs. */
    pp_job *j = pp_submitf(s2, t_sleep, NULL, "l", 20000L);
    CU_ASSERT_EQUAL(pp_job_cancel(j), 0);
    CU_ASSERT_EQUAL(pp_wait_for(s, NULL, 5), 0);
    CU_ASSERT_EQUAL(pp_job_wait_for(j, 5), PP_CANCELLED);
    CU_ASSERT_PTR_NULL(pp_next_done(s, NULL, 0)); /* never the other's */
    pp_job_free(j);
    pp_server_free(s2);
    pp_server_free(s);
}

/* CPU seconds this thread used so far. */
static double thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Numbers at their extremes: a pool of INT_MAX workers (refused, not
 * forked), priorities INT_MIN and INT_MAX, run-time limits and waits of
 * INFINITY and 1e300 seconds (a wait that long sleeps: it does not spin
 * on a deadline it cannot express). */
static void test_extreme_numbers(void)
{
    CU_ASSERT_PTR_NULL(pp_server_new(&(pp_config){.ncpus = 1 << 20}));
    CU_ASSERT(err_starts("pp_server_new") && strstr(pp_last_error(), "ncpus"));
    pp_server *s = server(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(pp_set_ncpus(s, INT_MAX), -1);
    CU_ASSERT(err_starts("pp_set_ncpus") && strstr(pp_last_error(), "at most"));
    CU_ASSERT_EQUAL(pp_get_ncpus(s), 1);
    pp_job *lo = pp_submit(s, t_echo, "l", 1, &(pp_submit_opts){.priority = INT_MIN});
    pp_job *hi = pp_submit(s, t_echo, "h", 1, &(pp_submit_opts){.priority = INT_MAX});
    CU_ASSERT_EQUAL(pp_job_wait_for(lo, 20), PP_DONE);
    CU_ASSERT_EQUAL(pp_job_wait_for(hi, 20), PP_DONE);
    pp_job_free(lo);
    pp_job_free(hi);
    double limits[2] = {INFINITY, 1e300};
    for (int i = 0; i < 2; i++) {
        pp_job *j = pp_submitf(s, t_sleep, &(pp_submit_opts){.timeout = limits[i]}, "l", 400L);
        CU_ASSERT_PTR_NOT_NULL_FATAL(j);
        double cpu = thread_cpu(), t0 = now_s();
        CU_ASSERT_EQUAL(pp_job_wait_for(j, limits[i]), PP_DONE);
        double waited = now_s() - t0, used = thread_cpu() - cpu;
        /* A wait that sleeps uses next to no CPU; one that spins, all of it. */
        CU_ASSERT(used < 0.5 * waited);
        if (used >= 0.5 * waited)
            fprintf(stderr, "pp_job_wait_for(%g): %.3f s of CPU in %.3f s\n", limits[i], used,
                    waited);
        pp_job_free(j);
    }
    pp_job *g = pp_submitf(s, t_sleep, &(pp_submit_opts){.group = "inf"}, "l", 400L);
    double cpu = thread_cpu(), t0 = now_s();
    CU_ASSERT_EQUAL(pp_wait_for(s, "inf", INFINITY), 0);
    CU_ASSERT(thread_cpu() - cpu < 0.5 * (now_s() - t0));
    pp_job *n = pp_next_done(s, "inf", INFINITY);
    CU_ASSERT_PTR_EQUAL(n, g);
    pp_job_free(g);
    int64_t v = 300;
    pp_map *m = pp_map_new(s, t_sleep8, &v, 8, 1, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    size_t i;
    cpu = thread_cpu();
    t0 = now_s();
    CU_ASSERT_EQUAL(pp_map_next(m, INFINITY, &i), 1);
    CU_ASSERT(thread_cpu() - cpu < 0.5 * (now_s() - t0));
    pp_map_free(m);
    pp_server_free(s);
}

/* Job handles outlive their server (pp.h): after pp_server_free() every
 * reading call works, a cancel says the job had ended, and a second free
 * of a handle the library no longer holds is the caller's bug (not
 * tried). */
static void test_handles_outlive_server(void)
{
    pp_server *s = server(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_job *done = pp_submit(s, t_echo, "d", 1, NULL);
    pp_job *taken = pp_submit(s, t_echo, "t", 1, NULL);
    CU_ASSERT_EQUAL(pp_job_wait_for(done, 10), PP_DONE);
    CU_ASSERT_EQUAL(pp_job_wait_for(taken, 10), PP_DONE);
    /* One handle comes back through pp_next_done (off every list). */
    pp_job *n1 = pp_next_done(s, NULL, 5);
    CU_ASSERT_PTR_NOT_NULL_FATAL(n1);
    pp_job *running = pp_submitf(s, t_sleep, NULL, "l", 20000L);
    pp_server_free(s);
    pp_job *all[3] = {done, taken, running};
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(pp_job_cancel(all[i]), 1);
        CU_ASSERT_EQUAL(pp_job_wait(all[i]), i < 2 ? PP_DONE : PP_CANCELLED);
        CU_ASSERT_EQUAL(pp_job_wait_for(all[i], 0), i < 2 ? PP_DONE : PP_CANCELLED);
        CU_ASSERT_STRING_EQUAL(pp_job_node(all[i]), i < 2 ? "local" : "");
        CU_ASSERT_EQUAL(pp_job_error(all[i])[0] != 0, i == 2);
    }
    CU_ASSERT_PTR_NOT_NULL(pp_job_result(done, NULL));
    pp_job_free(done);
    pp_job_free(taken);
    pp_job_free(running);
}

/* ==== fork ============================================================== */

/* In the child: every call on the parent's server refuses, saying why;
 * pp_server_free() returns; a server of the child's own runs a job.  Exit
 * status: 0, or the number of the first check that failed. */
static int child_uses_server(pp_server *s, pp_job *pending, pp_job *done)
{
    if (pp_submit(s, t_echo, "c", 1, NULL) || !strstr(pp_last_error(), "fork"))
        return 1;
    if (pp_wait(s, NULL) != -1 || !strstr(pp_last_error(), "fork"))
        return 2;
    if (pp_job_wait(pending) != -1 || !strstr(pp_last_error(), "fork"))
        return 3;
    if (pp_job_cancel(pending) != -1)
        return 4;
    if (pp_job_wait(done) != PP_DONE) /* already final: readable */
        return 5;
    if (pp_map_new(s, t_sq8, NULL, 8, 0, NULL) || pp_next_done(s, NULL, 0))
        return 6;
    if (pp_set_ncpus(s, 3) != -1 || pp_cancel_group(s, NULL) != -1 || pp_shm_alloc(s, 10))
        return 7;
    pp_stats st;
    if (pp_get_stats(s, &st) != -1 || pp_add_node(s, "127.0.0.1:1") != -1)
        return 8;
    pp_server_free(s); /* releases nothing of the parent's */
#ifdef __SANITIZE_THREAD__
    return 0; /* its runtime cannot start threads after a threaded process forked */
#endif
    /* A server of its own works. */
    pp_server *own = pp_server_new(&(pp_config){.ncpus = 1});
    if (!own)
        return 9;
    pp_job *j = pp_submitf(own, t_square, NULL, "l", 9L);
    long v = 0;
    int ok = j && pp_job_wait_for(j, 20) == PP_DONE && pp_job_unpack(j, "l", &v) == 0 && v == 81;
    pp_job_free(j);
    pp_server_free(own);
    return ok ? 0 : 10;
}

/* A program forks after pp_server_new() and its child uses the server:
 * the child's calls fail at once saying the server belongs to the
 * parent (none hangs), and the parent's jobs and workers are untouched. */
static void test_fork_child(void)
{
    pp_server *s = server(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_job *pending = pp_submitf(s, t_sleep, NULL, "l", 1500L);
    pp_job *done = pp_submit(s, t_echo, "d", 1, NULL);
    CU_ASSERT_EQUAL_FATAL(pp_job_wait_for(done, 10), PP_DONE);
    fflush(NULL);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0)
        _exit(child_uses_server(s, pending, done)); /* _exit: no leak check of the copy */
    int status = -1;
    int reaped = wait_pid(pid, &status, 30);
    if (!reaped) {
        kill(pid, SIGKILL);
        wait_pid(pid, &status, 5);
    }
    CU_ASSERT_EQUAL(reaped, 1);
    CU_ASSERT(WIFEXITED(status));
    CU_ASSERT_EQUAL(WEXITSTATUS(status), 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "fork child: status 0x%x\n", status);
    /* The parent goes on as if nothing happened. */
    CU_ASSERT_EQUAL(pp_job_wait_for(pending, 20), PP_DONE);
    pp_job *after = pp_submitf(s, t_square, NULL, "l", 12L);
    long v = 0;
    CU_ASSERT_EQUAL(pp_job_unpack(after, "l", &v), 0);
    CU_ASSERT_EQUAL(v, 144);
    CU_ASSERT_EQUAL(count_children("ppworker"), 2);
    pp_job_free(after);
    pp_job_free(pending);
    pp_job_free(done);
    pp_server_free(s);
}

int pp_register_suites(void)
{
    static const pp_test callbacks[] = {
        {"every public function from a callback", test_everything_from_callback},
        {"callbacks freeing the server while it is freed", test_free_during_free},
        {"a callback's free taken up by the program's", test_free_asked_then_freed},
        {"a chain of 10,000 callbacks", test_callback_chain},
        {"a callback that blocks", test_blocking_callback},
        {"callbacks run with the program's signal mask", test_callback_signal_mask},
        {NULL, NULL}};
    static const pp_test threads[] = {
        {"8 threads submit, cancel, wait, free", test_eight_threads},
        {"handles freed while their jobs end", test_free_races_end},
        {"pp_server_free releases threads waiting in it", test_free_releases_waiters},
        {NULL, NULL}};
    static const pp_test misuse[] = {
        {"NULL everywhere", test_null_everywhere},
        {"sizes, non-tasks, another server's handles", test_sizes_and_strangers},
        {"numbers at their extremes", test_extreme_numbers},
        {"job handles after pp_server_free", test_handles_outlive_server},
        {"a forked child uses the server", test_fork_child},
        {NULL, NULL}};
    if (pp_add_suite("misuse: callbacks", suite_init, suite_clean, callbacks) ||
        pp_add_suite("misuse: threads", suite_init, suite_clean, threads) ||
        pp_add_suite("misuse: arguments and handles", suite_init, suite_clean, misuse))
        return -1;
    return 0;
}
