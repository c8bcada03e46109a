/* SPDX-License-Identifier: MIT */
/* test_control.c -- job control in libpp (issue 12) through the public API,
 * with real ppworker processes and real ppserver nodes on 127.0.0.1:
 * pp_job_cancel and pp_cancel_group (queued, pipelined, running locally
 * and on a node, after a node loss, racing with completion), priorities
 * (locally, through a node, no starvation between two clients), retries
 * (failure, crash, timeout; the error text, the statistics, never after a
 * cancel), pp_next_done (completion order, timeouts, the end, freed handles,
 * groups, two threads), max_pending (the bound, blocking, nowait, callbacks
 * that submit), worker recycling (pp_config.worker_max_jobs, ppserver
 * --max-jobs-per-worker) and the statistics' cancelled and retried.
 *
 * Every wait is bounded.  Side effects that prove a job ran, or did not, are
 * files in a private directory (the tasks run on this machine, locally or
 * under a ppserver started here).  A per-test teardown frees the clients
 * and stops the servers a test left behind, even after a fatal assertion,
 * and fails the test if a ppserver or its workers reported a sanitizer
 * error. */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <pp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client_util.h"
#include "cunit_main.h"
#include "server_harness.h"
#include "test_tasks.h"
#include "test_util.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static char tmpdir[256];

/* A client with local workers only; kept for the teardown. */
static pp_server *local_client(pp_config cfg)
{
    return cl_track(pp_server_new(&cfg));
}

/* A ppserver on 127.0.0.1 with these arguments; NULL on failure. */
static srv_harness *node_start(const char *const *args)
{
    return cl_server_start(&(srv_opts){.args = args});
}

/* A ppserver with these arguments and a client of it with no local
 * worker, or a fatal failure; *hp gets the server. */
static pp_server *node_client(const char *const *args, srv_harness **hp)
{
    srv_harness *h = node_start(args);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    pp_server *s = cl_nodes_client((pp_config){.ncpus = 0}, &h, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    *hp = h;
    return s;
}

/* Waits, at most `limit` seconds, until node 1 of s is up (want 1) or not
 * up (want 0).  1 when it got there. */
static int node_up_wait(pp_server *s, int want, double limit)
{
    double end = now_s() + limit;
    for (;;) {
        pp_node_info ni;
        int up = cl_node1(s, &ni) == 0 && ni.state == PP_NODE_UP;
        if (up == want)
            return 1;
        if (now_s() > end)
            return 0;
        sleep_s(0.01);
    }
}

/* One job through s, to have the node up and the task module shipped and
 * loaded there before anything is timed.  1 when it ran. */
static int warm(pp_server *s)
{
    pp_job *j = pp_submit(s, t_pid, NULL, 0, NULL);
    int ok = j && pp_job_wait_for(j, 20) == PP_DONE;
    pp_job_free(j);
    return ok;
}

/* Two clients of a one-worker node, each with a job run there, or a fatal
 * failure. */
static void node_two_clients(pp_server **a, pp_server **b)
{
    srv_harness *h = node_start(ARGS("-w", "1"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    *a = cl_nodes_client((pp_config){.ncpus = 0}, &h, 1);
    *b = cl_nodes_client((pp_config){.ncpus = 0}, &h, 1);
    CU_ASSERT_FATAL(*a && *b);
    CU_ASSERT_FATAL(warm(*a) && warm(*b));
}

static void test_setup(void)
{
}

static void test_teardown(void)
{
    cl_clients_free();
    cl_servers_end(cl_server_end);
}

static int suite_init(void)
{
    if (tmpdir_make(tmpdir, sizeof tmpdir, "control") != 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return getenv("PP_WORKER") && getenv("PP_SERVER") ? 0 : -1;
}

static int suite_clean(void)
{
    return rm_tree(tmpdir);
}

/* ---- small helpers ---- */

/* A fresh path in the private directory (nothing there yet). */
static const char *tpath(char *buf, size_t n, const char *name)
{
    static atomic_int seq;
    snprintf(buf, n, "%s/%s-%d", tmpdir, name, atomic_fetch_add(&seq, 1));
    unlink(buf);
    return buf;
}

static int exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* Reads up to `max` pids from a file a task writes, waiting (at most
 * `limit` seconds) until it holds `max` of them.  Returns how many. */
static int read_pids(const char *path, int *pids, int max, double limit)
{
    double end = now_s() + limit;
    int n = 0;
    do {
        FILE *fp = fopen(path, "r");
        n = 0;
        if (fp) {
            while (n < max && fscanf(fp, "%d", &pids[n]) == 1 && pids[n] > 0)
                n++;
            fclose(fp);
        }
        if (n == max)
            break;
        sleep_s(0.01);
    } while (now_s() < end);
    return n;
}

/* Whether process `pid` is gone (no such process, or a zombie: it is dead,
 * only not yet reaped by whoever inherited it), waiting at most `limit`
 * seconds for that. */
static int gone(int pid, double limit)
{
    double end = now_s() + limit;
    for (;;) {
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        FILE *fp = fopen(path, "r");
        char st = 0;
        if (fp) {
            size_t k = fread(buf, 1, sizeof buf - 1, fp);
            fclose(fp);
            buf[k] = 0;
            char *c = strrchr(buf, ')');
            if (!c || sscanf(c + 1, " %c", &st) != 1)
                st = 0;
        }
        if (!st || st == 'Z' || st == 'X')
            return 1;
        if (now_s() > end)
            return 0;
        sleep_s(0.01);
    }
}

static pp_stats stats(pp_server *s)
{
    pp_stats st = {0};
    CU_ASSERT_EQUAL(pp_get_stats(s, &st), 0);
    return st;
}

/* pp_next_done() and pp_wait() are bounded in every test: a hang is a
 * failure, not a stuck suite. */
#define WAIT_ALL(s) CU_ASSERT_EQUAL(pp_wait_for((s), NULL, 30), 0)

/* Callbacks: how often each job's ran, and the status it saw. */
typedef struct cb_slot {
    atomic_int calls;
    atomic_int status;
} cb_slot;

static void slot_cb(pp_job *j, void *arg)
{
    cb_slot *c = arg;
    atomic_store(&c->status, pp_job_status(j));
    atomic_fetch_add(&c->calls, 1);
}

/* ==== cancel ============================================================ */

/* A job queued behind the only worker is cancelled: it ends PP_CANCELLED at
 * once (before pp_job_cancel returns), its callback runs once, and it never
 * runs: the file it would create is never made, even after the worker is
 * free again and has run the job queued behind it. */
static void test_cancel_queued(void)
{
    pp_server *s = local_client((pp_config){.ncpus = 1});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_job *busy = pp_submitf(s, t_sleep, NULL, "l", 400L);
    sleep_s(0.1); /* running: the jobs below queue in libpp */
    char mark[300];
    tpath(mark, sizeof mark, "queued-ran");
    cb_slot cb = {0};
    pp_job *j = pp_submitf(s, t_touch, &(pp_submit_opts){.callback = slot_cb, .callback_arg = &cb},
                           "s", mark);
    pp_job *after = pp_submitf(s, t_square, NULL, "l", 5L);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_EQUAL(pp_job_cancel(j), 0);
    /* Final at once, without waiting. */
    CU_ASSERT_EQUAL(pp_job_status(j), PP_CANCELLED);
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_job_error(j), "cancelled"));
    CU_ASSERT_STRING_EQUAL(pp_job_node(j), "");
    size_t len = 7;
    CU_ASSERT_PTR_NULL(pp_job_result(j, &len));
    CU_ASSERT_EQUAL(len, 0);
    CU_ASSERT_EQUAL(pp_job_cancel(j), 1); /* a second cancel: it had ended */
    CU_ASSERT_EQUAL(pp_job_wait_for(busy, 10), PP_DONE);
    long v = 0;
    CU_ASSERT_EQUAL(pp_job_wait_for(after, 10), PP_DONE);
    CU_ASSERT_EQUAL(pp_job_unpack(after, "l", &v), 0);
    CU_ASSERT_EQUAL(v, 25);
    WAIT_ALL(s);
    CU_ASSERT_EQUAL(atomic_load(&cb.calls), 1);
    CU_ASSERT_EQUAL(atomic_load(&cb.status), PP_CANCELLED);
    CU_ASSERT_EQUAL(pp_job_status(j), PP_CANCELLED);
    CU_ASSERT(!exists(mark)); /* it never ran */
    pp_stats st = stats(s);
    CU_ASSERT_EQUAL(st.cancelled, 1);
    CU_ASSERT_EQUAL(st.failed, 1);
    CU_ASSERT_EQUAL(st.done, 2);
    CU_ASSERT_EQUAL(st.pending, 0);
    pp_job_free(busy);
    pp_job_free(j);
    pp_job_free(after);
    cl_client_free(s);
}

/* The same for jobs already sent to the worker behind a long one: after
 * tiny jobs the pool pipelines deeply, so the jobs submitted with the long
 * one go into the worker's pipe behind it.  Cancelled, they are taken back
 * from the worker and never run; the long one and those not cancelled still
 * do. */
static void test_cancel_pipelined(void)
{
    pp_server *s = local_client((pp_config){.ncpus = 1});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    for (long i = 0; i < 500; i++) /* tiny jobs: deep pipelining after them */
        pp_job_free(pp_submitf(s, t_square, NULL, "l", i));
    WAIT_ALL(s);
    enum { N = 6 };
    char marks[N][300];
    pp_job *busy = pp_submitf(s, t_sleep, NULL, "l", 300L), *jobs[N];
    for (int i = 0; i < N; i++)
        jobs[i] = pp_submitf(s, t_touch, NULL, "s", tpath(marks[i], sizeof marks[i], "piped"));
    sleep_s(0.05); /* sent behind the long job, which runs now */
    for (int i = 0; i < N; i += 2) /* every other one: the rest must still run */
        CU_ASSERT_EQUAL(pp_job_cancel(jobs[i]), 0);
    CU_ASSERT_EQUAL(pp_job_wait_for(busy, 10), PP_DONE);
    for (int i = 0; i < N; i++) {
        CU_ASSERT_EQUAL(pp_job_wait_for(jobs[i], 10), i % 2 ? PP_DONE : PP_CANCELLED);
        CU_ASSERT_EQUAL(exists(marks[i]), i % 2);
        pp_job_free(jobs[i]);
    }
    pp_job_free(busy);
    cl_client_free(s);
}

/* A job running on a local worker, which forked two children: the worker's
 * whole process group goes (the worker and both children), a fresh worker
 * takes its place and the job queued behind starts within a second. */
static void test_cancel_running_local(void)
{
    pp_server *s = local_client((pp_config){.ncpus = 1});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    char kidsfile[300];
    tpath(kidsfile, sizeof kidsfile, "fork-kids");
    pp_job *j = pp_submit(s, t_fork_spin, kidsfile, strlen(kidsfile), NULL);
    pp_job *next = pp_submit(s, t_pid, NULL, 0, NULL);
    int kids[2] = {0, 0};
    CU_ASSERT_EQUAL_FATAL(read_pids(kidsfile, kids, 2, 10), 2);
    int worker = parent_of(kids[0]);
    CU_ASSERT_FATAL(worker > 0 && worker != (int)getpid());
    CU_ASSERT_EQUAL(pp_job_status(next), PP_PENDING); /* waits behind the spinning job */
    double t0 = now_s();
    CU_ASSERT_EQUAL(pp_job_cancel(j), 0);
    CU_ASSERT_EQUAL(pp_job_status(j), PP_CANCELLED);
    CU_ASSERT_EQUAL(pp_job_wait_for(next, 10), PP_DONE);
    double took = now_s() - t0;
    CU_ASSERT(took < 1.0);
    if (took >= 1.0)
        fprintf(stderr, "\n    the next job took %.3f s after the cancel\n", took);
    long pid = 0;
    CU_ASSERT_EQUAL(pp_job_unpack(next, "l", &pid), 0);
    CU_ASSERT(pid > 0 && pid != worker); /* a fresh worker */
    CU_ASSERT(gone(worker, 5));
    CU_ASSERT(gone(kids[0], 5));
    CU_ASSERT(gone(kids[1], 5));
    CU_ASSERT_EQUAL(wait_children("ppworker", 1, 5), 1);
    CU_ASSERT_EQUAL(pp_job_status(j), PP_CANCELLED); /* the worker's death changed nothing */
    CU_ASSERT_EQUAL(stats(s).cancelled, 1);
    CU_ASSERT_EQUAL(stats(s).failed, 1);
    pp_job_free(j);
    pp_job_free(next);
    cl_client_free(s);
}

/* pp_cancel_group on 10,000 queued jobs: returns 10000, every callback runs
 * exactly once with PP_CANCELLED, pp_wait on the group returns promptly
 * (not after the long job ahead of them), and the other groups' jobs are
 * untouched: they still run. */
static void test_cancel_group_10k(void)
{
    enum { N = 10000, OTHER = 10 };
    pp_server *s = local_client((pp_config){.ncpus = 1});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    cb_slot *cb = calloc(N, sizeof *cb);
    pp_job **jobs = calloc(N, sizeof *jobs), *other[OTHER];
    CU_ASSERT_FATAL(cb && jobs);
    pp_job *busy = pp_submitf(s, t_sleep, &(pp_submit_opts){.group = "busy"}, "l", 1500L);
    sleep_s(0.1); /* running: everything below queues */
    for (long i = 0; i < N; i++) {
        jobs[i] = pp_submitf(s, t_square,
                             &(pp_submit_opts){.group = "big", .callback = slot_cb,
                                               .callback_arg = &cb[i]},
                             "l", i);
        CU_ASSERT_PTR_NOT_NULL_FATAL(jobs[i]);
    }
    for (long i = 0; i < OTHER; i++)
        other[i] = pp_submitf(s, t_square, &(pp_submit_opts){.group = "other"}, "l", i);
    double t0 = now_s();
    CU_ASSERT_EQUAL(pp_cancel_group(s, "big"), N);
    CU_ASSERT_EQUAL(pp_wait_for(s, "big", 10), 0);
    double took = now_s() - t0;
    CU_ASSERT(took < 1.0); /* the long job still runs for more than a second */
    if (took >= 1.0)
        fprintf(stderr, "\n    cancel + wait of %d jobs took %.3f s\n", N, took);
    int once = 0, cancelled = 0;
    for (int i = 0; i < N; i++) {
        once += atomic_load(&cb[i].calls) == 1;
        cancelled += atomic_load(&cb[i].status) == PP_CANCELLED &&
                     pp_job_status(jobs[i]) == PP_CANCELLED;
    }
    CU_ASSERT_EQUAL(once, N);
    CU_ASSERT_EQUAL(cancelled, N);
    /* Untouched: still pending behind the long job, then done. */
    CU_ASSERT_EQUAL(pp_job_status(busy), PP_PENDING);
    CU_ASSERT_EQUAL(pp_job_status(other[0]), PP_PENDING);
    CU_ASSERT_EQUAL(pp_cancel_group(s, "big"), 0); /* nothing left to cancel */
    CU_ASSERT_EQUAL(pp_job_wait_for(busy, 10), PP_DONE);
    for (long i = 0; i < OTHER; i++) {
        long v = -1;
        CU_ASSERT_EQUAL(pp_job_unpack(other[i], "l", &v), 0);
        CU_ASSERT_EQUAL(v, i * i);
        pp_job_free(other[i]);
    }
    WAIT_ALL(s);
    pp_stats st = stats(s);
    CU_ASSERT_EQUAL(st.cancelled, N);
    CU_ASSERT_EQUAL(st.done, OTHER + 1);
    CU_ASSERT_EQUAL(st.pending, 0);
    for (int i = 0; i < N; i++)
        CU_ASSERT_EQUAL(atomic_load(&cb[i].calls), 1); /* still once */
    for (int i = 0; i < N; i++)
        pp_job_free(jobs[i]);
    pp_job_free(busy);
    free(jobs);
    free(cb);
    cl_client_free(s);
}

/* ---- cancel racing with completion ---- */

enum { RACE_N = 5000, RACE_THREADS = 4, RACE_CANCELS = 1500 };

typedef struct race {
    pp_job *jobs[RACE_N];
    cb_slot cb[RACE_N];
    atomic_int zero[RACE_N];     /* pp_job_cancel() returned 0 */
    atomic_int one[RACE_N];      /* ... returned 1 */
    atomic_int bad;              /* ... returned anything else */
    atomic_int published;        /* jobs[0..published) are submitted */
} race;

typedef struct race_arg {
    race *r;
    unsigned seed;
} race_arg;

static void *race_thread(void *arg)
{
    race_arg *a = arg;
    race *r = a->r;
    for (int k = 0; k < RACE_CANCELS; k++) {
        int n;
        while ((n = atomic_load(&r->published)) == 0)
            sched_yield();
        int i = (int)(rand_r(&a->seed) % (unsigned)n);
        int rc = pp_job_cancel(r->jobs[i]);
        if (rc == 0)
            atomic_fetch_add(&r->zero[i], 1);
        else if (rc == 1)
            atomic_fetch_add(&r->one[i], 1);
        else
            atomic_fetch_add(&r->bad, 1);
    }
    return NULL;
}

/* 4 threads cancel random jobs among 5,000 tiny jobs with callbacks while
 * they are submitted and run: every callback runs exactly once; each job
 * ends in one status (the callback saw the one it ends with); a cancel
 * returned 0 at most once per job, and exactly for the jobs that end
 * PP_CANCELLED; the others ended PP_DONE with their right result; the
 * statistics agree. */
static void test_cancel_race(void)
{
    pp_server *s = local_client((pp_config){.ncpus = 2});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    race *r = calloc(1, sizeof *r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    pthread_t th[RACE_THREADS];
    race_arg args[RACE_THREADS];
    for (int t = 0; t < RACE_THREADS; t++) {
        args[t] = (race_arg){.r = r, .seed = 1234u + (unsigned)t};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[t], NULL, race_thread, &args[t]), 0);
    }
    for (long i = 0; i < RACE_N; i++) {
        r->jobs[i] = pp_submitf(s, t_square,
                                &(pp_submit_opts){.callback = slot_cb, .callback_arg = &r->cb[i]},
                                "l", i);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r->jobs[i]);
        atomic_store(&r->published, (int)i + 1);
    }
    for (int t = 0; t < RACE_THREADS; t++)
        pthread_join(th[t], NULL);
    WAIT_ALL(s);
    int once = 0, consistent = 0, results = 0, ncancel = 0, ndone = 0, zeros = 0, ones = 0;
    for (long i = 0; i < RACE_N; i++) {
        int st = pp_job_status(r->jobs[i]);
        int z = atomic_load(&r->zero[i]);
        once += atomic_load(&r->cb[i].calls) == 1;
        consistent += atomic_load(&r->cb[i].status) == st && z <= 1 &&
                      (st == PP_CANCELLED) == (z == 1) && (st == PP_CANCELLED || st == PP_DONE);
        if (st == PP_DONE) {
            long v = -1;
            results += pp_job_unpack(r->jobs[i], "l", &v) == 0 && v == i * i;
            ndone++;
        }
        ncancel += st == PP_CANCELLED;
        zeros += z;
        ones += atomic_load(&r->one[i]);
    }
    CU_ASSERT_EQUAL(atomic_load(&r->bad), 0);
    CU_ASSERT_EQUAL(once, RACE_N);
    CU_ASSERT_EQUAL(consistent, RACE_N);
    CU_ASSERT_EQUAL(results, ndone);
    CU_ASSERT_EQUAL(zeros + ones, RACE_THREADS * RACE_CANCELS);
    CU_ASSERT_EQUAL(ncancel, zeros);
    pp_stats st = stats(s);
    CU_ASSERT_EQUAL(st.cancelled, (uint64_t)ncancel);
    CU_ASSERT_EQUAL(st.done, (uint64_t)ndone);
    CU_ASSERT_EQUAL(st.done + st.failed, RACE_N);
    CU_ASSERT_EQUAL(st.pending, 0);
    if (ncancel == 0 || ndone == 0)
        fprintf(stderr, "\n    (no race this time: %d cancelled, %d done)\n", ncancel, ndone);
    for (long i = 0; i < RACE_N; i++)
        pp_job_free(r->jobs[i]);
    free(r);
    cl_client_free(s);
}

/* A job that has ended: pp_job_cancel returns 1 and changes nothing (its
 * status, result, error, the statistics).  NULL: -1 with a message. */
static void test_cancel_ended_and_null(void)
{
    pp_server *s = local_client((pp_config){.ncpus = 1});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_job *ok = pp_submitf(s, t_square, NULL, "l", 7L);
    pp_job *bad = pp_submit(s, t_fail, "x", 1, NULL);
    CU_ASSERT_EQUAL(pp_job_wait_for(ok, 10), PP_DONE);
    CU_ASSERT_EQUAL(pp_job_wait_for(bad, 10), PP_FAILED);
    WAIT_ALL(s);
    pp_stats before = stats(s);
    CU_ASSERT_EQUAL(pp_job_cancel(ok), 1);
    CU_ASSERT_EQUAL(pp_job_cancel(bad), 1);
    CU_ASSERT_EQUAL(pp_job_status(ok), PP_DONE);
    CU_ASSERT_EQUAL(pp_job_status(bad), PP_FAILED);
    long v = 0;
    CU_ASSERT_EQUAL(pp_job_unpack(ok, "l", &v), 0);
    CU_ASSERT_EQUAL(v, 49);
    CU_ASSERT_STRING_EQUAL(pp_job_error(ok), "");
    CU_ASSERT_STRING_EQUAL(pp_job_error(bad), "task failed on purpose: x");
    CU_ASSERT_STRING_EQUAL(pp_job_node(ok), "local");
    pp_stats after = stats(s);
    CU_ASSERT_EQUAL(after.cancelled, 0);
    CU_ASSERT_EQUAL(after.done, before.done);
    CU_ASSERT_EQUAL(after.failed, before.failed);
    /* Nothing pending: a group cancel finds nothing. */
    CU_ASSERT_EQUAL(pp_cancel_group(s, NULL), 0);
    CU_ASSERT_EQUAL(pp_cancel_group(s, "no such group"), 0);
    CU_ASSERT_EQUAL(pp_job_cancel(NULL), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "pp_job_cancel"));
    CU_ASSERT_EQUAL(pp_cancel_group(NULL, "g"), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "pp_cancel_group"));
    pp_job_free(ok);
    pp_job_free(bad);
    cl_client_free(s);
}

/* ==== cancel on nodes ===================================================== */

/* A job running on a node (client ncpus 0, ppserver -w 1): cancelled there,
 * the node's worker running it is killed and replaced, and another client's
 * job, queued on that node behind it, completes (without the cancel it
 * would wait the 30 s the cancelled job sleeps). */
static void test_cancel_running_on_node(void)
{
    pp_server *a, *b;
    node_two_clients(&a, &b);
    char pidfile[300];
    tpath(pidfile, sizeof pidfile, "node-running");
    pp_job *j = pp_submit(a, t_pid_file_sleep, pidfile, strlen(pidfile), NULL);
    int w = 0;
    CU_ASSERT_EQUAL_FATAL(read_pids(pidfile, &w, 1, 10), 1);
    pp_job *other = pp_submit(b, t_pid, NULL, 0, NULL);
    CU_ASSERT_EQUAL(pp_job_wait_for(other, 0.3), PP_PENDING); /* the only worker is busy */
    double t0 = now_s();
    CU_ASSERT_EQUAL(pp_job_cancel(j), 0);
    CU_ASSERT_EQUAL(pp_job_status(j), PP_CANCELLED);
    CU_ASSERT_EQUAL(pp_job_wait_for(other, 10), PP_DONE);
    double took = now_s() - t0;
    CU_ASSERT(took < 5.0);
    long pid = 0;
    CU_ASSERT_EQUAL(pp_job_unpack(other, "l", &pid), 0);
    CU_ASSERT(pid > 0 && pid != w); /* the worker was replaced */
    CU_ASSERT(gone(w, 5));
    /* a goes on using the node. */
    pp_job *again = pp_submitf(a, t_square, NULL, "l", 9L);
    long v = 0;
    CU_ASSERT_EQUAL(pp_job_wait_for(again, 10), PP_DONE);
    CU_ASSERT_EQUAL(pp_job_unpack(again, "l", &v), 0);
    CU_ASSERT_EQUAL(v, 81);
    CU_ASSERT_EQUAL(pp_job_status(j), PP_CANCELLED);
    CU_ASSERT_EQUAL(stats(a).cancelled, 1);
    CU_ASSERT_EQUAL(stats(b).cancelled, 0);
    pp_job_free(j);
    pp_job_free(other);
    pp_job_free(again);
    cl_client_free(a);
    cl_client_free(b);
}

/* The node running a job is killed (SIGKILL): libpp queues the job again;
 * with no local worker and no other node it waits.  Cancelled then, it ends
 * PP_CANCELLED and never runs: not when the node comes back on the same
 * port (the file the job writes when it starts is never made again). */
static void test_cancel_after_node_loss(void)
{
    srv_harness *h;
    pp_server *s = node_client(ARGS("-w", "1"), &h);
    CU_ASSERT_FATAL(warm(s));
    char pidfile[300];
    tpath(pidfile, sizeof pidfile, "lost-node");
    pp_job *j = pp_submit(s, t_pid_file_sleep, pidfile, strlen(pidfile), NULL);
    int w = 0;
    CU_ASSERT_EQUAL_FATAL(read_pids(pidfile, &w, 1, 10), 1);
    unlink(pidfile);
    srv_kill9(h);
    CU_ASSERT(gone(w, 5)); /* the worker died with its ppserver */
    CU_ASSERT(node_up_wait(s, 0, 5)); /* libpp saw the node go */
    sleep_s(0.2);
    CU_ASSERT_EQUAL(pp_job_status(j), PP_PENDING); /* queued again, waiting */
    CU_ASSERT_EQUAL(pp_job_cancel(j), 0);
    CU_ASSERT_EQUAL(pp_job_status(j), PP_CANCELLED);
    /* The node comes back: the job must not be sent to it. */
    CU_ASSERT_EQUAL_FATAL(srv_start(h, &(srv_opts){.args = ARGS("-w", "1"), .port = h->port}), 0);
    CU_ASSERT(node_up_wait(s, 1, 15));
    CU_ASSERT(warm(s));
    sleep_s(0.3);
    CU_ASSERT(!exists(pidfile));
    CU_ASSERT_EQUAL(pp_job_status(j), PP_CANCELLED);
    pp_stats st = stats(s);
    CU_ASSERT_EQUAL(st.cancelled, 1);
    CU_ASSERT_EQUAL(st.pending, 0);
    pp_job_free(j);
    cl_client_free(s);
}

/* ==== priority ========================================================== */

/* With the only worker (local, or the one of a ppserver -w 1) busy, 20
 * jobs of priority 0 and 20 of priority 10 are submitted interleaved.  Each
 * returns when it started (CLOCK_MONOTONIC): every priority-10 job starts
 * before every priority-0 one, and within a priority they start in
 * submission order.  Nothing is allowed out of order, because the pipeline
 * windows hold none of the 40 when they are ordered:
 *   - locally, the worker runs one long job, past the "long job" mark
 *     (2 ms): the pool sends nothing behind it;
 *   - through a node, libpp sends a node jobs as they come while it has
 *     room (CPUs x depth + 2 in flight), so a priority-0 job submitted
 *     first would be on the node before the priority-10 ones exist.  `nbusy`
 *     busy jobs (priority 20, more than that window after the 100 ms
 *     warm-up jobs) fill the window first: the 40 stay in libpp's queue and
 *     go out one by one as the busy jobs finish, highest first; the node's
 *     pool, too, sends nothing behind a running job past the mark. */
static void check_priority_order(pp_server *s, const char *where, int nbusy, long busy_ms)
{
    enum { N = 40, MAXBUSY = 8 };
    pp_job *busy[MAXBUSY], *jobs[N];
    CU_ASSERT_FATAL(nbusy >= 1 && nbusy <= MAXBUSY);
    for (int i = 0; i < nbusy; i++)
        busy[i] = pp_submitf(s, t_stamp, &(pp_submit_opts){.priority = 20}, "l", busy_ms);
    sleep_s(0.15); /* the first one runs, long past the mark */
    for (int i = 0; i < N; i++)
        jobs[i] = pp_submitf(s, t_stamp, &(pp_submit_opts){.priority = i % 2 ? 10 : 0}, "l", 0L);
    long busy_end = 0, start[N];
    for (int i = 0; i < nbusy; i++) {
        long st = 0, en = 0;
        CU_ASSERT_EQUAL(pp_job_wait_for(busy[i], 20), PP_DONE);
        CU_ASSERT_EQUAL(pp_job_unpack(busy[i], "ll", &st, &en), 0);
        busy_end = en > busy_end ? en : busy_end;
        pp_job_free(busy[i]);
    }
    int ran = 0;
    for (int i = 0; i < N; i++) {
        long end;
        start[i] = 0;
        ran += pp_job_wait_for(jobs[i], 10) == PP_DONE &&
               pp_job_unpack(jobs[i], "ll", &start[i], &end) == 0;
        CU_ASSERT_STRING_EQUAL(pp_job_node(jobs[i]), where);
        pp_job_free(jobs[i]);
    }
    CU_ASSERT_EQUAL_FATAL(ran, N);
    long last_high = 0;
    for (int i = 1; i < N; i += 2)
        last_high = start[i] > last_high ? start[i] : last_high;
    int early = 0, fifo = 1;
    for (int i = 0; i < N; i += 2)
        early += start[i] < last_high; /* a priority-0 job that went first */
    for (int i = 2; i < N; i++)
        fifo &= start[i] > start[i - 2];
    int after_busy = 1;
    for (int i = 0; i < N; i++)
        after_busy &= start[i] >= busy_end;
    CU_ASSERT_EQUAL(early, 0);
    CU_ASSERT(fifo);
    CU_ASSERT(after_busy); /* none ran beside or before the busy jobs */
    if (early || !fifo) {
        fprintf(stderr, "\n    %s: %d priority-0 job(s) started before the last priority-10 "
                        "one; submission order kept within a priority: %s\n    order:",
                where, early, fifo ? "yes" : "no");
        for (int k = 0; k < N; k++) { /* the run order, by submission index */
            int first = -1;
            for (int i = 0; i < N; i++)
                if (start[i] > 0 && (first < 0 || start[i] < start[first]))
                    first = i;
            fprintf(stderr, " %d%s", first, first % 2 ? "h" : "");
            start[first] = 0;
        }
        fprintf(stderr, "\n");
    }
}

static void test_priority_local(void)
{
    pp_server *s = local_client((pp_config){.ncpus = 1});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_FATAL(warm(s));
    check_priority_order(s, "local", 1, 400);
    cl_client_free(s);
}

static void test_priority_node(void)
{
    srv_harness *h;
    pp_server *s = node_client(ARGS("-w", "1"), &h);
    CU_ASSERT_FATAL(warm(s));
    /* Jobs of 100 ms: libpp's window to the node becomes 1 x 2 + 2. */
    for (int i = 0; i < 3; i++) {
        pp_job *w = pp_submitf(s, t_stamp, NULL, "l", 100L);
        CU_ASSERT_EQUAL(pp_job_wait_for(w, 10), PP_DONE);
        pp_job_free(w);
    }
    char where[80];
    snprintf(where, sizeof where, "127.0.0.1:%d", h->port);
    check_priority_order(s, where, 8, 60);
    cl_client_free(s);
}

/* Two clients share a one-worker node; one floods it with 300 jobs of 10 ms
 * at priority 100, the other then submits 5 jobs at priority -5: they
 * complete within 2 s (the node takes one job per client in turn), while
 * the flood still has jobs pending -- they did not just wait for its end. */
static void test_priority_no_starvation(void)
{
    pp_server *a, *b;
    node_two_clients(&a, &b);
    for (int i = 0; i < 300; i++)
        pp_job_free(pp_submitf(a, t_sleep, &(pp_submit_opts){.priority = 100, .group = "flood"},
                               "l", 10L));
    sleep_s(0.1); /* the flood is running */
    double t0 = now_s();
    pp_job *jobs[5];
    for (int i = 0; i < 5; i++)
        jobs[i] = pp_submitf(b, t_sleep, &(pp_submit_opts){.priority = -5}, "l", 10L);
    int done = 0;
    for (int i = 0; i < 5; i++)
        done += pp_job_wait_for(jobs[i], 10) == PP_DONE;
    double took = now_s() - t0;
    pp_stats sa = stats(a);
    CU_ASSERT_EQUAL(done, 5);
    CU_ASSERT(took < 2.0);
    CU_ASSERT(sa.pending > 0);
    if (took >= 2.0 || sa.pending == 0)
        fprintf(stderr, "\n    b's jobs took %.3f s; a still had %llu pending\n", took,
                (unsigned long long)sa.pending);
    for (int i = 0; i < 5; i++)
        pp_job_free(jobs[i]);
    CU_ASSERT(pp_cancel_group(a, "flood") > 0);
    CU_ASSERT_EQUAL(pp_wait_for(a, NULL, 10), 0);
    cl_client_free(a);
    cl_client_free(b);
}

/* ==== retries =========================================================== */

/* A task that fails on its first run only: with retries = 1 it ends
 * PP_DONE (the second run found the marker the first made); with retries
 * = 0 it ends PP_FAILED with the task's text alone. */
static void test_retry_fail_once(void)
{
    pp_server *s = local_client((pp_config){.ncpus = 1});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    char m1[300], m2[300];
    pp_job *j = pp_submitf(s, t_first_run, &(pp_submit_opts){.retries = 1}, "ss",
                           tpath(m1, sizeof m1, "fail-once"), "fail");
    pp_job *k = pp_submitf(s, t_first_run, &(pp_submit_opts){.retries = 0}, "ss",
                           tpath(m2, sizeof m2, "fail-once"), "fail");
    CU_ASSERT_EQUAL(pp_job_wait_for(j, 10), PP_DONE);
    CU_ASSERT_STRING_EQUAL(pp_job_error(j), "");
    CU_ASSERT_EQUAL(pp_job_wait_for(k, 10), PP_FAILED);
    CU_ASSERT_STRING_EQUAL(pp_job_error(k), "first run fails on purpose");
    CU_ASSERT(exists(m1) && exists(m2)); /* both ran at least once */
    WAIT_ALL(s);
    pp_stats st = stats(s);
    CU_ASSERT_EQUAL(st.retried, 1);
    CU_ASSERT_EQUAL(st.done, 1);
    CU_ASSERT_EQUAL(st.failed, 1);
    pp_job_free(j);
    pp_job_free(k);
    cl_client_free(s);
}

/* A crash (SIGSEGV) and a timeout on the first run are retried too; without
 * retries they stay PP_CRASHED and PP_TIMEOUT. */
static void test_retry_crash_and_timeout(void)
{
    pp_server *s = local_client((pp_config){.ncpus = 1});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    char m[4][300];
    pp_job *segv1 = pp_submitf(s, t_first_run, &(pp_submit_opts){.retries = 1}, "ss",
                               tpath(m[0], sizeof m[0], "segv"), "segv");
    pp_job *segv0 = pp_submitf(s, t_first_run, NULL, "ss", tpath(m[1], sizeof m[1], "segv"),
                               "segv");
    double t0 = now_s();
    pp_job *hang1 = pp_submitf(s, t_first_run, &(pp_submit_opts){.retries = 1, .timeout = 0.3},
                               "ss", tpath(m[2], sizeof m[2], "hang"), "hang");
    pp_job *hang0 = pp_submitf(s, t_first_run, &(pp_submit_opts){.timeout = 0.3}, "ss",
                               tpath(m[3], sizeof m[3], "hang"), "hang");
    CU_ASSERT_EQUAL(pp_job_wait_for(segv1, 10), PP_DONE);
    CU_ASSERT_EQUAL(pp_job_wait_for(segv0, 10), PP_CRASHED);
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_job_error(segv0), "SIGSEGV"));
    CU_ASSERT_EQUAL(pp_job_wait_for(hang1, 10), PP_DONE);
    CU_ASSERT(now_s() - t0 >= 0.3); /* it did time out first */
    CU_ASSERT_EQUAL(pp_job_wait_for(hang0, 10), PP_TIMEOUT);
    WAIT_ALL(s);
    CU_ASSERT_EQUAL(stats(s).retried, 2);
    pp_job_free(segv1);
    pp_job_free(segv0);
    pp_job_free(hang1);
    pp_job_free(hang0);
    cl_client_free(s);
}

/* A job failing every time with retries = 2 runs three times: PP_FAILED,
 * and pp_job_error says how many runs failed, then the last one's text;
 * pp_get_stats().retried counts the two retries. */
static void test_retry_error_counts(void)
{
    pp_server *s = local_client((pp_config){.ncpus = 1});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_job *j = pp_submit(s, t_fail, "x", 1, &(pp_submit_opts){.retries = 2});
    CU_ASSERT_EQUAL(pp_job_wait_for(j, 10), PP_FAILED);
    const char *e = pp_job_error(j);
    CU_ASSERT_PTR_NOT_NULL(strstr(e, "3 runs failed"));
    CU_ASSERT_PTR_NOT_NULL(strstr(e, "task failed on purpose: x"));
    WAIT_ALL(s);
    pp_stats st = stats(s);
    CU_ASSERT_EQUAL(st.retried, 2);
    CU_ASSERT_EQUAL(st.failed, 1);
    CU_ASSERT_EQUAL(st.submitted, 1); /* a retry is not a new job */
    pp_job_free(j);
    CU_ASSERT_PTR_NULL(pp_submit(s, t_echo, "x", 1, &(pp_submit_opts){.retries = -1}));
    cl_client_free(s);
}

/* A running job with retries left, cancelled: its worker is killed, and
 * that death is not retried -- the job never starts again (the file it
 * writes on start is not made again) and nothing counts as retried. */
static void test_retry_not_after_cancel(void)
{
    pp_server *s = local_client((pp_config){.ncpus = 1});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    char pidfile[300];
    tpath(pidfile, sizeof pidfile, "cancel-retry");
    pp_job *j = pp_submit(s, t_pid_file_sleep, pidfile, strlen(pidfile),
                          &(pp_submit_opts){.retries = 3});
    int w = 0;
    CU_ASSERT_EQUAL_FATAL(read_pids(pidfile, &w, 1, 10), 1);
    unlink(pidfile);
    CU_ASSERT_EQUAL(pp_job_cancel(j), 0);
    pp_job *probe = pp_submit(s, t_pid, NULL, 0, NULL);
    CU_ASSERT_EQUAL(pp_job_wait_for(probe, 10), PP_DONE); /* the fresh worker runs jobs */
    sleep_s(0.3);
    CU_ASSERT(!exists(pidfile));
    CU_ASSERT(gone(w, 5));
    CU_ASSERT_EQUAL(pp_job_status(j), PP_CANCELLED);
    pp_stats st = stats(s);
    CU_ASSERT_EQUAL(st.retried, 0);
    CU_ASSERT_EQUAL(st.cancelled, 1);
    pp_job_free(j);
    pp_job_free(probe);
    cl_client_free(s);
}

/* Through a node: a worker crash there is retried too. */
static void test_retry_on_node(void)
{
    srv_harness *h;
    pp_server *s = node_client(ARGS("-w", "1"), &h);
    char m[2][300];
    pp_job *j = pp_submitf(s, t_first_run, &(pp_submit_opts){.retries = 1}, "ss",
                           tpath(m[0], sizeof m[0], "node-segv"), "segv");
    pp_job *k = pp_submitf(s, t_first_run, &(pp_submit_opts){.retries = 1}, "ss",
                           tpath(m[1], sizeof m[1], "node-fail"), "fail");
    CU_ASSERT_EQUAL(pp_job_wait_for(j, 20), PP_DONE);
    CU_ASSERT_EQUAL(pp_job_wait_for(k, 20), PP_DONE);
    CU_ASSERT_STRING_NOT_EQUAL(pp_job_node(j), "local");
    WAIT_ALL(s);
    CU_ASSERT_EQUAL(stats(s).retried, 2);
    pp_job_free(j);
    pp_job_free(k);
    cl_client_free(s);
}

/* ==== pp_next_done ====================================================== */

/* Jobs of 700, 100 and 400 ms, the first on the local worker, the others
 * on a ppserver -w 2: pp_next_done returns them in the order they finished
 * (shortest first), across local and remote. */
static void test_next_done_order(void)
{
    srv_harness *h;
    pp_server *s = node_client(ARGS("-w", "2"), &h);
    /* The node warmed with 30 ms jobs, then one local worker, up and
     * warmed the same way: both pipeline one 30 ms job per worker, so the
     * long job below goes to the local worker alone. */
    for (int i = 0; i < 4; i++)
        pp_job_free(pp_submitf(s, t_stamp, &(pp_submit_opts){.group = "warm"}, "l", 30L));
    CU_ASSERT_EQUAL(pp_wait_for(s, "warm", 20), 0);
    CU_ASSERT_EQUAL(pp_set_ncpus(s, 1), 0);
    int local_up = 0;
    for (double end = now_s() + 10; !local_up && now_s() < end;) {
        pp_job *p = pp_submitf(s, t_stamp, &(pp_submit_opts){.group = "warm"}, "l", 30L);
        local_up = pp_job_wait_for(p, 10) == PP_DONE && strcmp(pp_job_node(p), "local") == 0;
        pp_job_free(p);
    }
    CU_ASSERT_FATAL(local_up);
    /* The warm-up jobs were freed: pp_next_done never returns them. */
    long ms[3] = {700, 100, 400};
    pp_job *jobs[3];
    for (int i = 0; i < 3; i++)
        jobs[i] = pp_submitf(s, t_stamp, NULL, "l", ms[i]);
    pp_job *got[3] = {NULL, NULL, NULL};
    long prev_end = 0;
    int in_order = 1, nlocal = 0, nremote = 0;
    for (int k = 0; k < 3; k++) {
        got[k] = pp_next_done(s, NULL, 10);
        CU_ASSERT_PTR_NOT_NULL_FATAL(got[k]);
        long st = 0, en = 0;
        CU_ASSERT_EQUAL(pp_job_unpack(got[k], "ll", &st, &en), 0);
        in_order &= en >= prev_end;
        prev_end = en;
        if (strcmp(pp_job_node(got[k]), "local") == 0)
            nlocal++;
        else
            nremote++;
    }
    CU_ASSERT(in_order);
    CU_ASSERT_PTR_EQUAL(got[0], jobs[1]); /* 100 ms */
    CU_ASSERT_PTR_EQUAL(got[1], jobs[2]); /* 400 ms */
    CU_ASSERT_PTR_EQUAL(got[2], jobs[0]); /* 700 ms */
    CU_ASSERT_STRING_EQUAL(pp_job_node(jobs[0]), "local");
    CU_ASSERT_EQUAL(nlocal, 1);
    CU_ASSERT_EQUAL(nremote, 2);
    CU_ASSERT_PTR_NULL(pp_next_done(s, NULL, 1));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "no job left"));
    for (int i = 0; i < 3; i++)
        pp_job_free(jobs[i]);
    cl_client_free(s);
}

/* With a job still running: pp_next_done with a timeout returns NULL after
 * about that long ("none finished"), with 0 at once; the job, cancelled, is
 * returned (a cancelled job has finished); then NULL at once, even with no
 * time limit: "no job left". */
static void test_next_done_timeout_and_end(void)
{
    pp_server *s = local_client((pp_config){.ncpus = 1});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_job *j = pp_submitf(s, t_sleep, NULL, "l", 3000L);
    double t0 = now_s();
    CU_ASSERT_PTR_NULL(pp_next_done(s, NULL, 0.3));
    double took = now_s() - t0;
    CU_ASSERT(took >= 0.28 && took < 2.0);
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "none finished"));
    t0 = now_s();
    CU_ASSERT_PTR_NULL(pp_next_done(s, NULL, 0));
    CU_ASSERT(now_s() - t0 < 0.1);
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "none finished"));
    CU_ASSERT_EQUAL(pp_job_cancel(j), 0);
    CU_ASSERT_PTR_EQUAL(pp_next_done(s, NULL, 5), j);
    t0 = now_s();
    CU_ASSERT_PTR_NULL(pp_next_done(s, NULL, -1));
    CU_ASSERT(now_s() - t0 < 1.0);
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "no job left"));
    CU_ASSERT_PTR_NULL(pp_next_done(NULL, NULL, 0));
    pp_job_free(j);
    cl_client_free(s);
}

/* Handles freed (before or after their job finished) are never returned:
 * of 10 jobs, the 5 kept come back, each once, then "no job left". */
static void test_next_done_freed_skipped(void)
{
    pp_server *s = local_client((pp_config){.ncpus = 2});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_job *jobs[10];
    for (long i = 0; i < 10; i++)
        jobs[i] = pp_submitf(s, t_square, NULL, "l", i);
    for (int i = 0; i < 10; i += 4) /* 0, 4, 8: freed while maybe pending */
        pp_job_free(jobs[i]);
    WAIT_ALL(s);
    for (int i = 2; i < 10; i += 4) /* 2, 6: freed after they finished */
        pp_job_free(jobs[i]);
    int seen[10] = {0}, n = 0;
    pp_job *j;
    while ((j = pp_next_done(s, NULL, 1))) {
        long v = -1;
        CU_ASSERT_EQUAL(pp_job_unpack(j, "l", &v), 0);
        int i = 0;
        while (i < 10 && i * i != v)
            i++;
        CU_ASSERT_FATAL(i < 10 && i % 2 == 1 && jobs[i] == j);
        seen[i]++;
        n++;
    }
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "no job left"));
    CU_ASSERT_EQUAL(n, 5);
    for (int i = 1; i < 10; i += 2) {
        CU_ASSERT_EQUAL(seen[i], 1);
        pp_job_free(jobs[i]);
    }
    cl_client_free(s);
}

/* The group filter: pp_next_done(s, "a") returns a's jobs alone, each
 * once, then "no job left" for a; the rest (group b and no group) come from
 * pp_next_done(s, NULL). */
static void test_next_done_group(void)
{
    pp_server *s = local_client((pp_config){.ncpus = 2});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    enum { NA = 5, NB = 5, ND = 3, ALL = NA + NB + ND };
    pp_job *jobs[ALL];
    for (int i = 0; i < ALL; i++) {
        const char *g = i < NA ? "a" : i < NA + NB ? "b" : NULL;
        jobs[i] = pp_submitf(s, t_square, &(pp_submit_opts){.group = g}, "l", (long)i);
    }
    WAIT_ALL(s);
    int seen[ALL] = {0};
    pp_job *j;
    int na = 0;
    while ((j = pp_next_done(s, "a", 1))) {
        int i = 0;
        while (i < ALL && jobs[i] != j)
            i++;
        CU_ASSERT_FATAL(i < NA);
        seen[i]++;
        na++;
    }
    CU_ASSERT_EQUAL(na, NA);
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "no job left"));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "\"a\""));
    CU_ASSERT_PTR_NULL(pp_next_done(s, "no such group", 0));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "no job left"));
    int rest = 0;
    while ((j = pp_next_done(s, NULL, 1))) {
        int i = 0;
        while (i < ALL && jobs[i] != j)
            i++;
        CU_ASSERT_FATAL(i >= NA && i < ALL);
        seen[i]++;
        rest++;
    }
    CU_ASSERT_EQUAL(rest, NB + ND);
    for (int i = 0; i < ALL; i++) {
        CU_ASSERT_EQUAL(seen[i], 1);
        pp_job_free(jobs[i]);
    }
    cl_client_free(s);
}

/* ---- two threads calling pp_next_done ---- */

enum { ND_JOBS = 2000 };

typedef struct nd_arg {
    pp_server *s;
    pp_job **got;
    int n;
    char err[256];
} nd_arg;

static void *nd_thread(void *arg)
{
    nd_arg *a = arg;
    pp_job *j;
    while ((j = pp_next_done(a->s, NULL, 10)))
        a->got[a->n++] = j;
    snprintf(a->err, sizeof a->err, "%s", pp_last_error());
    return NULL;
}

/* Two threads take finished jobs as they come: each job goes to exactly
 * one of them; both end on "no job left". */
static void test_next_done_two_threads(void)
{
    pp_server *s = local_client((pp_config){.ncpus = 2});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_job **jobs = calloc(ND_JOBS, sizeof *jobs);
    nd_arg a[2] = {{.s = s, .got = calloc(ND_JOBS, sizeof(pp_job *))},
                   {.s = s, .got = calloc(ND_JOBS, sizeof(pp_job *))}};
    CU_ASSERT_FATAL(jobs && a[0].got && a[1].got);
    for (uint64_t i = 0; i < ND_JOBS; i++)
        jobs[i] = pp_submit(s, t_echo, &i, sizeof i, NULL);
    pthread_t th[2];
    for (int t = 0; t < 2; t++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[t], NULL, nd_thread, &a[t]), 0);
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    int *seen = calloc(ND_JOBS, sizeof *seen), bad = 0;
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < a[t].n; k++) {
            size_t len = 0;
            const uint64_t *r = pp_job_result(a[t].got[k], &len);
            if (r && len == sizeof *r && *r < ND_JOBS && jobs[*r] == a[t].got[k])
                seen[*r]++;
            else
                bad++;
        }
    int once = 0;
    for (int i = 0; i < ND_JOBS; i++)
        once += seen[i] == 1;
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(once, ND_JOBS);
    CU_ASSERT_EQUAL(a[0].n + a[1].n, ND_JOBS);
    CU_ASSERT_PTR_NOT_NULL(strstr(a[0].err, "no job left"));
    CU_ASSERT_PTR_NOT_NULL(strstr(a[1].err, "no job left"));
    for (int i = 0; i < ND_JOBS; i++)
        pp_job_free(jobs[i]);
    free(seen);
    free(a[0].got);
    free(a[1].got);
    free(jobs);
    cl_client_free(s);
}

/* Frees racing with jobs finishing, over many chunks of the finished list:
 * 30,000 tiny jobs, every odd one freed right after its submit (so often
 * while the scheduler retires it), the even ones kept.  pp_next_done()
 * returns exactly the even ones, each once (AddressSanitizer watches the
 * entries and chunks freed on either side). */
enum { RACE_JOBS = 30000 };

static void test_next_done_free_race(void)
{
    pp_server *s = local_client((pp_config){.ncpus = 2});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_job **kept = calloc(RACE_JOBS, sizeof *kept);
    int *seen = calloc(RACE_JOBS, sizeof *seen);
    CU_ASSERT_FATAL(kept && seen);
    for (uint64_t i = 0; i < RACE_JOBS; i++) {
        pp_job *j = pp_submit(s, t_echo, &i, sizeof i, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(j);
        if (i % 2)
            pp_job_free(j);
        else
            kept[i] = j;
    }
    int n = 0, bad = 0;
    pp_job *j;
    while (n <= RACE_JOBS && (j = pp_next_done(s, NULL, 20))) {
        size_t len = 0;
        const uint64_t *r = pp_job_result(j, &len);
        if (r && len == sizeof *r && *r < RACE_JOBS && kept[*r] == j)
            seen[*r]++;
        else
            bad++;
        n++;
    }
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "no job left"));
    int once = 0;
    for (int i = 0; i < RACE_JOBS; i += 2)
        once += seen[i] == 1;
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(n, RACE_JOBS / 2);
    CU_ASSERT_EQUAL(once, RACE_JOBS / 2);
    for (int i = 0; i < RACE_JOBS; i += 2)
        pp_job_free(kept[i]);
    free(seen);
    free(kept);
    cl_client_free(s);
}

/* ==== max_pending ======================================================= */

typedef struct sampler {
    pp_server *s;
    atomic_int stop;
    uint64_t max, samples;
} sampler;

static void *sample_thread(void *arg)
{
    sampler *sm = arg;
    while (!atomic_load(&sm->stop)) {
        pp_stats st;
        if (pp_get_stats(sm->s, &st) == 0) {
            sm->max = st.pending > sm->max ? st.pending : sm->max;
            sm->samples++;
        }
        sched_yield();
    }
    return NULL;
}

/* max_pending = 100: a thread submitting 20,000 tiny jobs (faster than two
 * workers run them) never has more than 100 pending: sampled by the
 * submitting thread after every submit (when it is highest), and all along
 * by another thread.  The bound is reached (the submitter outruns the
 * workers), and every job still runs. */
static void test_max_pending_bound(void)
{
    pp_server *s = local_client((pp_config){.ncpus = 2, .max_pending = 100});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    sampler sm = {.s = s};
    pthread_t th;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, sample_thread, &sm), 0);
    int refused = 0;
    uint64_t sub_max = 0;
    for (uint64_t i = 0; i < 20000; i++) {
        pp_job *j = pp_submit(s, t_echo, &i, sizeof i, NULL);
        refused += !j;
        pp_job_free(j);
        pp_stats st;
        if (pp_get_stats(s, &st) == 0 && st.pending > sub_max)
            sub_max = st.pending;
    }
    WAIT_ALL(s);
    atomic_store(&sm.stop, 1);
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(refused, 0);
    CU_ASSERT(sub_max <= 100);
    CU_ASSERT(sub_max >= 90);
    CU_ASSERT(sm.max <= 100);
    if (sub_max > 100 || sub_max < 90 || sm.max > 100)
        fprintf(stderr, "\n    %llu jobs pending at most after a submit, %llu sampled (%llu "
                        "samples)\n", (unsigned long long)sub_max, (unsigned long long)sm.max,
                (unsigned long long)sm.samples);
    pp_stats st = stats(s);
    CU_ASSERT_EQUAL(st.done, 20000);
    CU_ASSERT_EQUAL(st.pending, 0);
    cl_client_free(s);
}

typedef struct blocked_submit {
    pp_server *s;
    pp_job *j;
    atomic_int returned;
} blocked_submit;

static void *submit_one(void *arg)
{
    blocked_submit *b = arg;
    b->j = pp_submit(b->s, t_echo, "late", 4, NULL);
    atomic_store(&b->returned, 1);
    return NULL;
}

/* With 100 jobs pending (one running 700 ms, 99 queued behind it), the
 * 101st pp_submit waits until one finishes; with nowait it fails at once
 * saying why. */
static void test_max_pending_blocks(void)
{
    pp_server *s = local_client((pp_config){.ncpus = 1, .max_pending = 100});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_job *busy = pp_submitf(s, t_sleep, NULL, "l", 700L);
    for (int i = 0; i < 99; i++) {
        pp_job *j = pp_submit(s, t_echo, "q", 1, &(pp_submit_opts){.nowait = 1});
        CU_ASSERT_PTR_NOT_NULL(j);
        pp_job_free(j);
    }
    CU_ASSERT_EQUAL(stats(s).pending, 100);
    blocked_submit b = {.s = s};
    pthread_t th;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, submit_one, &b), 0);
    sleep_s(0.3);
    CU_ASSERT_EQUAL(atomic_load(&b.returned), 0); /* it waits for room */
    double t0 = now_s();
    CU_ASSERT_PTR_NULL(pp_submit(s, t_echo, "x", 1, &(pp_submit_opts){.nowait = 1}));
    CU_ASSERT(now_s() - t0 < 0.1);
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "pp_submit"));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "max_pending"));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "100"));
    CU_ASSERT_EQUAL(pp_job_wait_for(busy, 10), PP_DONE);
    double end = now_s() + 10;
    while (!atomic_load(&b.returned) && now_s() < end)
        sleep_s(0.01);
    CU_ASSERT_FATAL(atomic_load(&b.returned)); /* room came: it returned */
    pthread_join(th, NULL);
    CU_ASSERT_PTR_NOT_NULL(b.j);
    CU_ASSERT_EQUAL(pp_job_wait_for(b.j, 10), PP_DONE);
    pp_job_free(b.j);
    pp_job_free(busy);
    WAIT_ALL(s);
    CU_ASSERT_EQUAL(stats(s).done, 101);
    cl_client_free(s);
}

/* ---- callbacks that submit ---- */

static pp_server *chain_server;
static atomic_int chain_calls, chain_submitted, chain_refused;
enum { CHAIN_MAX = 400 };

static void chain_cb(pp_job *j, void *arg)
{
    (void)arg;
    atomic_fetch_add(&chain_calls, 1);
    /* Two more each time, up to CHAIN_MAX: the callback thread goes over
     * the bound, where waiting for room would wait for itself. */
    for (int k = 0; k < 2; k++) {
        if (atomic_fetch_add(&chain_submitted, 1) >= CHAIN_MAX)
            break;
        pp_job *n = pp_submit(chain_server, t_echo, "c", 1,
                              &(pp_submit_opts){.callback = chain_cb});
        if (n)
            pp_job_free(n); /* the job stays, its callback still runs */
        else
            atomic_fetch_add(&chain_refused, 1);
    }
    (void)j;
}

/* max_pending = 10, and callbacks that submit: no deadlock (the callback
 * thread never waits for room), every job runs and is called back. */
static void test_max_pending_callback_submits(void)
{
    pp_server *s = local_client((pp_config){.ncpus = 2, .max_pending = 10});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    chain_server = s;
    atomic_store(&chain_calls, 0);
    atomic_store(&chain_submitted, 0);
    atomic_store(&chain_refused, 0);
    for (int i = 0; i < 10; i++)
        pp_job_free(pp_submit(s, t_echo, "c", 1, &(pp_submit_opts){.callback = chain_cb}));
    if (pp_wait_for(s, NULL, 20) != 0) {
        CU_FAIL("deadlock: the jobs of callbacks that submit did not finish within 20 s");
        cl_client_forget(s); /* its callback thread is stuck: freeing it would hang */
        return;
    }
    CU_ASSERT_EQUAL(atomic_load(&chain_refused), 0);
    CU_ASSERT_EQUAL(atomic_load(&chain_calls), 10 + CHAIN_MAX);
    CU_ASSERT_EQUAL(stats(s).done, 10 + CHAIN_MAX);
    cl_client_free(s);
    chain_server = NULL;
}

/* ==== worker recycling ================================================== */

/* 10 jobs reporting their worker's pid: with workers replaced after 3 jobs
 * (one worker at a time), 4 distinct pids, none with more than 3 jobs, and
 * every job done. */
static void check_recycled(pp_server *s)
{
    enum { N = 10 };
    pp_job *jobs[N];
    long pids[N];
    int done = 0;
    for (int i = 0; i < N; i++)
        jobs[i] = pp_submit(s, t_pid, NULL, 0, NULL);
    for (int i = 0; i < N; i++) {
        pids[i] = 0;
        done += pp_job_wait_for(jobs[i], 20) == PP_DONE &&
                pp_job_unpack(jobs[i], "l", &pids[i]) == 0;
        pp_job_free(jobs[i]);
    }
    CU_ASSERT_EQUAL(done, N);
    int distinct = 0, most = 0;
    for (int i = 0; i < N; i++) {
        int first = 1, count = 0;
        for (int k = 0; k < N; k++) {
            first &= !(k < i && pids[k] == pids[i]);
            count += pids[k] == pids[i];
        }
        distinct += first;
        most = count > most ? count : most;
    }
    CU_ASSERT_EQUAL(distinct, 4);
    CU_ASSERT(most <= 3);
    if (distinct != 4 || most > 3)
        fprintf(stderr, "\n    %d distinct worker pids, at most %d jobs on one\n", distinct,
                most);
}

static void test_recycle_local(void)
{
    pp_server *s = local_client((pp_config){.ncpus = 1, .worker_max_jobs = 3});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    check_recycled(s);
    CU_ASSERT_EQUAL(wait_children("ppworker", 1, 5), 1); /* the old ones are gone */
    cl_client_free(s);
}

static void test_recycle_node(void)
{
    srv_harness *h;
    pp_server *s = node_client(ARGS("-w", "1", "--max-jobs-per-worker", "3"), &h);
    CU_ASSERT(node_up_wait(s, 1, 10));
    check_recycled(s); /* the first jobs of this node: no warm-up before */
    cl_client_free(s);
}

/* ==== statistics ======================================================== */

/* pp_get_stats().cancelled counts the cancels (and they count in
 * `failed`), .retried the retries; pp_print_stats prints both. */
static void test_stats_cancelled_retried(void)
{
    pp_server *s = local_client((pp_config){.ncpus = 1});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_job *busy = pp_submitf(s, t_sleep, NULL, "l", 300L), *q[3];
    sleep_s(0.05);
    for (int i = 0; i < 3; i++)
        q[i] = pp_submit(s, t_echo, "q", 1, NULL);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(pp_job_cancel(q[i]), 0);
    pp_stats st = stats(s);
    CU_ASSERT_EQUAL(st.cancelled, 3);
    CU_ASSERT_EQUAL(st.failed, 3);
    CU_ASSERT_EQUAL(st.pending, 1);
    char m[300];
    pp_job *r = pp_submitf(s, t_first_run, &(pp_submit_opts){.retries = 1}, "ss",
                           tpath(m, sizeof m, "stats"), "fail");
    CU_ASSERT_EQUAL(pp_job_wait_for(r, 10), PP_DONE);
    WAIT_ALL(s);
    st = stats(s);
    CU_ASSERT_EQUAL(st.cancelled, 3);
    CU_ASSERT_EQUAL(st.retried, 1);
    CU_ASSERT_EQUAL(st.done, 2);
    CU_ASSERT_EQUAL(st.submitted, 5);
    char *text = NULL;
    size_t tlen = 0;
    FILE *mem = open_memstream(&text, &tlen);
    CU_ASSERT_PTR_NOT_NULL_FATAL(mem);
    pp_print_stats(s, mem);
    fclose(mem);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "3 cancelled"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "1 retried"));
    free(text);
    for (int i = 0; i < 3; i++)
        pp_job_free(q[i]);
    pp_job_free(busy);
    pp_job_free(r);
    cl_client_free(s);
}

/* ==== registration ====================================================== */

static int add_suite(const char *name, const pp_test *tests)
{
    return pp_add_suite_with(name, suite_init, suite_clean, test_setup, test_teardown, tests);
}

int pp_register_suites(void)
{
    static const pp_test cancel[] = {
        {"a queued job never runs", test_cancel_queued},
        {"jobs pipelined behind a long one are taken back", test_cancel_pipelined},
        {"a running local job: its process group goes", test_cancel_running_local},
        {"pp_cancel_group of 10,000 queued jobs", test_cancel_group_10k},
        {"4 threads cancelling while 5,000 jobs complete", test_cancel_race},
        {"an ended job, NULL", test_cancel_ended_and_null},
        {NULL, NULL}};
    static const pp_test cancel_node[] = {
        {"a job running on a node", test_cancel_running_on_node},
        {"a job re-queued after its node was killed", test_cancel_after_node_loss},
        {NULL, NULL}};
    static const pp_test priority[] = {
        {"higher first, locally", test_priority_local},
        {"higher first, through a node", test_priority_node},
        {"no starvation between two clients of a node", test_priority_no_starvation},
        {NULL, NULL}};
    static const pp_test retries[] = {
        {"a failure retried, and not", test_retry_fail_once},
        {"a crash and a timeout retried", test_retry_crash_and_timeout},
        {"the error says how many runs failed", test_retry_error_counts},
        {"a cancelled job is never retried", test_retry_not_after_cancel},
        {"retried through a node", test_retry_on_node},
        {NULL, NULL}};
    static const pp_test next_done[] = {
        {"completion order across local and remote", test_next_done_order},
        {"timeout, and no job left", test_next_done_timeout_and_end},
        {"freed handles skipped", test_next_done_freed_skipped},
        {"group filter", test_next_done_group},
        {"two threads, each job once", test_next_done_two_threads},
        {"frees racing with finishing, many chunks", test_next_done_free_race},
        {NULL, NULL}};
    static const pp_test pending[] = {
        {"never more than max_pending pending", test_max_pending_bound},
        {"submit waits; nowait fails at once", test_max_pending_blocks},
        {"callbacks that submit do not deadlock", test_max_pending_callback_submits},
        {NULL, NULL}};
    static const pp_test recycle[] = {
        {"worker_max_jobs = 3, local", test_recycle_local},
        {"ppserver --max-jobs-per-worker 3", test_recycle_node},
        {NULL, NULL}};
    static const pp_test st[] = {
        {"cancelled and retried counted and printed", test_stats_cancelled_retried},
        {NULL, NULL}};
    if (add_suite("cancel", cancel) || add_suite("cancel on nodes", cancel_node) ||
        add_suite("priority", priority) || add_suite("retries", retries) ||
        add_suite("pp_next_done", next_done) || add_suite("max_pending", pending) ||
        add_suite("worker recycling", recycle) || add_suite("statistics", st))
        return -1;
    return 0;
}
