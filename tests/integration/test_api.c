/* SPDX-License-Identifier: MIT */
/* test_api.c -- libpp through its public API, with real ppworker processes:
 * results, typed values, callbacks, groups, failures, crashes, timeouts,
 * large arguments, many tiny jobs, resizing, concurrent submitters, clean
 * shutdown, bad arguments and misbehaving workers. */
#include <CUnit/CUnit.h>
#include <dlfcn.h>
#include <errno.h>
#include <pp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client_util.h"
#include "cunit_main.h"
#include "test_tasks.h"
#include "test_util.h"

static char tmpdir[256];

static int suite_init(void)
{
    if (tmpdir_make(tmpdir, sizeof tmpdir, "api") != 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return getenv("PP_WORKER") ? 0 : -1;
}

static int suite_clean(void)
{
    rmdir(tmpdir);
    return 0;
}

static pp_server *server(int ncpus)
{
    return cl_new(&(pp_config){.ncpus = ncpus});
}

/* ---- results ---- */

static void test_many_inputs(void)
{
    pp_server *s = server(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    enum { N = 1000 };
    pp_job *jobs[N];
    for (long i = 0; i < N; i++) {
        jobs[i] = pp_submitf(s, t_square, NULL, "l", i - 500);
        CU_ASSERT_PTR_NOT_NULL_FATAL(jobs[i]);
    }
    int right = 0;
    for (long i = 0; i < N; i++) {
        long v = -1;
        if (pp_job_unpack(jobs[i], "l", &v) == 0 && v == (i - 500) * (i - 500))
            right++;
        CU_ASSERT_STRING_EQUAL(pp_job_node(jobs[i]), "local");
        pp_job_free(jobs[i]);
    }
    CU_ASSERT_EQUAL(right, N);
    pp_stats st;
    CU_ASSERT_EQUAL(pp_get_stats(s, &st), 0);
    CU_ASSERT_EQUAL(st.submitted, N);
    CU_ASSERT_EQUAL(st.done, N);
    CU_ASSERT_EQUAL(st.failed, 0);
    CU_ASSERT_EQUAL(st.pending, 0);
    pp_node_info nodes[4];
    CU_ASSERT_EQUAL(pp_get_active_nodes(s, nodes, 4), 1);
    CU_ASSERT_STRING_EQUAL(nodes[0].name, "local");
    CU_ASSERT_EQUAL(nodes[0].ncpus, 2);
    CU_ASSERT_EQUAL(nodes[0].state, PP_NODE_UP);
    CU_ASSERT_EQUAL(nodes[0].jobs, N);
    CU_ASSERT(nodes[0].busy_seconds >= 0.0);

    char *text = NULL;
    size_t tlen = 0;
    FILE *mem = open_memstream(&text, &tlen);
    pp_print_stats(s, mem);
    fclose(mem);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "local"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, " 1000 "));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "100.00"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "Time elapsed"));
    free(text);
    pp_server_free(s);
}

static void test_echo_sizes(void)
{
    pp_server *s = server(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    size_t sizes[] = {0, 1, 7, 4096, 4097, 65536, 65537, 300000, 3u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        unsigned char *buf = malloc(n + 1);
        for (size_t k = 0; k < n; k++)
            buf[k] = (unsigned char)(k * 31 + i);
        pp_job *j = pp_submit(s, t_echo, buf, n, NULL);
        memset(buf, 0xEE, n); /* the argument was copied */
        CU_ASSERT_PTR_NOT_NULL_FATAL(j);
        size_t len = 99;
        const unsigned char *r = pp_job_result(j, &len);
        CU_ASSERT_PTR_NOT_NULL(r);
        CU_ASSERT_EQUAL(len, n);
        int same = r != NULL && len == n;
        for (size_t k = 0; same && k < n; k++)
            same = r[k] == (unsigned char)(k * 31 + i);
        CU_ASSERT(same);
        if (r)
            CU_ASSERT_EQUAL(r[len], 0); /* NUL after the bytes */
        pp_job_free(j);
        free(buf);
    }
    pp_server_free(s);
}

static void test_large_64mib(void)
{
    pp_server *s = server(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    size_t n = 64u << 20;
    unsigned char *buf = malloc(n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    for (size_t k = 0; k < n; k++)
        buf[k] = (unsigned char)(k ^ (k >> 8));
    pp_job *j = pp_submit(s, t_echo, buf, n, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    size_t len = 0;
    const void *r = pp_job_result(j, &len);
    CU_ASSERT_EQUAL(len, n);
    CU_ASSERT(r && memcmp(r, buf, n) == 0);
    pp_job_free(j);
    /* And a 64 MiB result made by the task. */
    j = pp_submitf(s, t_pattern, NULL, "l", (long)n);
    r = pp_job_result(j, &len);
    CU_ASSERT_EQUAL(len, n);
    int same = r != NULL;
    for (size_t k = 0; same && k < n; k += 4099)
        same = ((const unsigned char *)r)[k] == (unsigned char)(k * 7 + 3);
    CU_ASSERT(same);
    pp_job_free(j);
    free(buf);
    pp_server_free(s);
}

static void test_100k_tiny(void)
{
    pp_server *s = server(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    enum { N = 100000 };
    pp_job **jobs = malloc(N * sizeof *jobs);
    for (uint64_t i = 0; i < N; i++) {
        jobs[i] = pp_submit(s, t_echo, &i, sizeof i, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(jobs[i]);
    }
    CU_ASSERT_EQUAL(pp_wait(s, NULL), 0);
    int right = 0;
    for (uint64_t i = 0; i < N; i++) {
        size_t len;
        const uint64_t *r = pp_job_result(jobs[i], &len);
        /* Results are aligned like malloc's: read in place as uint64_t. */
        if (r && len == sizeof i && (uintptr_t)r % 16 == 0 && *r == i)
            right++;
        pp_job_free(jobs[i]);
    }
    CU_ASSERT_EQUAL(right, N);
    free(jobs);
    pp_server_free(s);
}

/* Tiny jobs first (the pool then pipelines deeply), then a long job and
 * short ones behind it: the short ones must not wait for the long one
 * while the other worker is free. */
static void test_no_wait_behind_long_job(void)
{
    pp_server *s = server(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    for (long i = 0; i < 2000; i++)
        pp_job_free(pp_submitf(s, t_square, NULL, "l", i));
    CU_ASSERT_EQUAL(pp_wait(s, NULL), 0);
    pp_job *slow = pp_submitf(s, t_sleep, NULL, "l", 3000L);
    enum { N = 40 };
    pp_job *quick[N];
    for (long i = 0; i < N; i++)
        quick[i] = pp_submitf(s, t_square, NULL, "l", i);
    int done = 0;
    for (int i = 0; i < N; i++)
        done += pp_job_wait_for(quick[i], 1.5) == PP_DONE;
    CU_ASSERT_EQUAL(done, N);
    CU_ASSERT_EQUAL(pp_job_status(slow), PP_PENDING); /* still sleeping */
    CU_ASSERT_EQUAL(pp_job_wait(slow), PP_DONE);
    for (int i = 0; i < N; i++)
        pp_job_free(quick[i]);
    pp_job_free(slow);
    pp_server_free(s);
}

/* pp_config.job_memory_mib caps each worker's memory: a task allocating
 * past it sees malloc() fail (and says so); smaller ones run; the worker
 * stays.  Not under Address- or ThreadSanitizer, whose shadow memory alone
 * exceeds any such cap. */
static void test_job_memory_limit(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    printf("(skipped under a sanitizer) ");
#else
    pp_server *s = pp_server_new(&(pp_config){.ncpus = 1, .job_memory_mib = 256});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_job *big = pp_submitf(s, t_alloc, NULL, "l", 1024L);
    pp_job *small = pp_submitf(s, t_alloc, NULL, "l", 32L);
    CU_ASSERT_EQUAL(pp_job_wait(big), PP_FAILED);
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_job_error(big), "cannot allocate 1024 MiB"));
    CU_ASSERT_EQUAL(pp_job_wait(small), PP_DONE);
    long pages = 0;
    CU_ASSERT(pp_job_unpack(small, "l", &pages) == 0 && pages == 32 * 256);
    pp_job_free(big);
    pp_job_free(small);
    pp_server_free(s);
    /* Without the cap the same allocation succeeds: the cap made the
     * difference. */
    s = pp_server_new(&(pp_config){.ncpus = 1});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    big = pp_submitf(s, t_alloc, NULL, "l", 1024L);
    CU_ASSERT_EQUAL(pp_job_wait(big), PP_DONE);
    pp_job_free(big);
    pp_server_free(s);
#endif
    CU_ASSERT_PTR_NULL(pp_server_new(&(pp_config){.ncpus = 1, .job_memory_mib = 10}));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "job_memory_mib"));
}

/* ---- callbacks and groups ---- */

typedef struct cb_state {
    atomic_int calls[64];
    atomic_int on_main;
    pthread_t main;
    atomic_int status_seen[64];
} cb_state;

static cb_state cbs;

static void count_cb(pp_job *j, void *arg)
{
    int i = (int)(intptr_t)arg;
    atomic_fetch_add(&cbs.calls[i], 1);
    atomic_store(&cbs.status_seen[i], pp_job_status(j));
    if (pthread_equal(pthread_self(), cbs.main))
        atomic_fetch_add(&cbs.on_main, 1);
}

static void test_callbacks_once(void)
{
    memset(&cbs, 0, sizeof cbs);
    cbs.main = pthread_self();
    pp_server *s = server(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_task tasks[] = {t_echo, t_fail, t_segv, t_echo};
    pp_job *jobs[64];
    for (int i = 0; i < 64; i++) {
        pp_submit_opts o = {.callback = count_cb, .callback_arg = (void *)(intptr_t)i};
        jobs[i] = pp_submit(s, tasks[i % 4], "x", 1, &o);
        CU_ASSERT_PTR_NOT_NULL_FATAL(jobs[i]);
    }
    CU_ASSERT_EQUAL(pp_wait(s, NULL), 0);
    int once = 0, match = 0;
    for (int i = 0; i < 64; i++) {
        once += atomic_load(&cbs.calls[i]) == 1;
        match += atomic_load(&cbs.status_seen[i]) == pp_job_status(jobs[i]);
        int want = i % 4 == 1 ? PP_FAILED : i % 4 == 2 ? PP_CRASHED : PP_DONE;
        CU_ASSERT_EQUAL(pp_job_status(jobs[i]), want);
        pp_job_free(jobs[i]);
    }
    CU_ASSERT_EQUAL(once, 64);
    CU_ASSERT_EQUAL(match, 64);
    CU_ASSERT_EQUAL(atomic_load(&cbs.on_main), 0);
    pp_server_free(s);
    for (int i = 0; i < 64; i++)
        CU_ASSERT_EQUAL(atomic_load(&cbs.calls[i]), 1); /* not again at free */
}

static pp_server *nested_server;
static atomic_int nested_rc;

static void wait_in_cb(pp_job *j, void *arg)
{
    (void)j;
    (void)arg;
    atomic_store(&nested_rc, pp_wait(nested_server, NULL));
}

static void test_wait_from_callback_refused(void)
{
    nested_server = server(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(nested_server);
    atomic_store(&nested_rc, 42);
    pp_submit_opts o = {.callback = wait_in_cb};
    pp_job *j = pp_submit(nested_server, t_echo, "a", 1, &o);
    CU_ASSERT_EQUAL(pp_wait(nested_server, NULL), 0);
    CU_ASSERT_EQUAL(atomic_load(&nested_rc), -1);
    pp_job_free(j);
    pp_server_free(nested_server);
}

static atomic_int free_cb_calls, second_submitted;

static void free_in_cb(pp_job *j, void *arg)
{
    (void)j;
    atomic_fetch_add(&free_cb_calls, 1);
    if (arg) {
        /* The test submits its second job after the first: free the server
         * only once it has (bounded wait). */
        double end = now_s() + 10;
        while (!atomic_load(&second_submitted) && now_s() < end)
            sleep_s(0.001);
        pp_server_free(arg);
    }
}

static void test_free_from_callback(void)
{
    atomic_store(&free_cb_calls, 0);
    atomic_store(&second_submitted, 0);
    pp_server *s = server(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_submit_opts first = {.callback = free_in_cb, .callback_arg = s};
    pp_submit_opts later = {.callback = free_in_cb, .callback_arg = NULL};
    pp_job *a = pp_submit(s, t_echo, "a", 1, &first);
    pp_job *b = pp_submitf(s, t_sleep, &later, "l", 2000L);
    atomic_store(&second_submitted, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    /* The server is freed by the first callback; b ends cancelled, its
     * callback still runs once, and the job handles stay readable. */
    CU_ASSERT_EQUAL(pp_job_wait(a), PP_DONE);
    CU_ASSERT_EQUAL(pp_job_wait(b), PP_CANCELLED);
    double end = now_s() + 10;
    while (atomic_load(&free_cb_calls) < 2 && now_s() < end)
        sleep_s(0.01);
    CU_ASSERT_EQUAL(atomic_load(&free_cb_calls), 2);
    CU_ASSERT_EQUAL(wait_children("ppworker", 0, 5), 0);
    pp_job_free(a);
    pp_job_free(b);
}

/* pp_server_free() from a callback returns at once and the teardown runs
 * on the callback thread while the program goes on freeing its handles: a
 * free and the teardown's release of the finished lists must not meet on
 * a job or on the list's memory (they did: ThreadSanitizer saw the
 * teardown write into a job a free had released; AddressSanitizer sees
 * such a use after free when the timing falls right).  3 rounds of 2,000
 * finished jobs whose handles are freed across the teardown. */
static atomic_int teardown_asked;

static void free_server_in_cb(pp_job *j, void *arg)
{
    (void)j;
    pp_server_free(arg);
    atomic_store(&teardown_asked, 1);
}

static void test_free_handles_during_teardown(void)
{
    enum { ROUNDS = 3, N = 2000 };
    static pp_job *jobs[N];
    for (int r = 0; r < ROUNDS; r++) {
        pp_server *s = server(1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        int n = 0;
        while (n < N && (jobs[n] = pp_submit(s, t_echo, "x", 1, NULL)))
            n++;
        CU_ASSERT_EQUAL(n, N);
        CU_ASSERT_EQUAL(pp_wait(s, NULL), 0); /* every one finished and listed */
        atomic_store(&teardown_asked, 0);
        pp_submit_opts o = {.callback = free_server_in_cb, .callback_arg = s};
        pp_job *last = pp_submit(s, t_echo, "y", 1, &o);
        CU_ASSERT_PTR_NOT_NULL_FATAL(last);
        double end = now_s() + 30;
        while (!atomic_load(&teardown_asked) && now_s() < end)
            sleep_s(0.0001);
        CU_ASSERT(atomic_load(&teardown_asked));
        /* From the end (the teardown walks from the start), over ~100 ms:
         * some before the teardown reaches the list, some while, some after. */
        for (int i = n - 1; i >= 0; i--) {
            pp_job_free(jobs[i]);
            if (i % 20 == 0)
                sleep_s(0.001);
        }
        CU_ASSERT_EQUAL(pp_job_wait(last), PP_DONE);
        pp_job_free(last);
        CU_ASSERT_EQUAL(wait_children("ppworker", 0, 10), 0);
    }
}

static void test_groups(void)
{
    pp_server *s = server(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_job *a[10], *b[4];
    for (int i = 0; i < 10; i++)
        a[i] = pp_submitf(s, t_sleep, &(pp_submit_opts){.group = "fast"}, "l", 5L);
    for (int i = 0; i < 4; i++)
        b[i] = pp_submitf(s, t_sleep, &(pp_submit_opts){.group = "slow"}, "l", 300L);
    CU_ASSERT_EQUAL(pp_wait(s, "fast"), 0);
    for (int i = 0; i < 10; i++)
        CU_ASSERT_EQUAL(pp_job_status(a[i]), PP_DONE);
    CU_ASSERT_EQUAL(pp_wait(s, "no such group"), 0);
    CU_ASSERT_EQUAL(pp_wait(s, "slow"), 0);
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL(pp_job_status(b[i]), PP_DONE);
    for (int i = 0; i < 10; i++)
        pp_job_free(a[i]);
    for (int i = 0; i < 4; i++)
        pp_job_free(b[i]);
    pp_server_free(s);
}

/* ---- failure, crash, timeout ---- */

static void test_failure_text(void)
{
    pp_server *s = server(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_job *j = pp_submit(s, t_fail, "boom", 4, NULL);
    size_t len = 5;
    CU_ASSERT_PTR_NULL(pp_job_result(j, &len));
    CU_ASSERT_EQUAL(len, 0);
    CU_ASSERT_EQUAL(pp_job_wait(j), PP_FAILED);
    CU_ASSERT_STRING_EQUAL(pp_job_error(j), "task failed on purpose: boom");
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "boom"));
    long v;
    CU_ASSERT_EQUAL(pp_job_unpack(j, "l", &v), -1);
    pp_job_free(j);
    pp_server_free(s);
}

static void test_crashes_isolated(void)
{
    pp_server *s = server(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    enum { N = 60 };
    pp_job *jobs[N];
    for (long i = 0; i < N; i++) {
        pp_task t = i == 10 ? t_segv : i == 20 ? t_abort : i == 30 ? t_exit3 : t_square;
        jobs[i] = pp_submitf(s, t, NULL, "l", i);
    }
    int ok = 0;
    for (long i = 0; i < N; i++) {
        int st = pp_job_wait(jobs[i]);
        if (i == 10) {
            CU_ASSERT_EQUAL(st, PP_CRASHED);
            CU_ASSERT_PTR_NOT_NULL(strstr(pp_job_error(jobs[i]), "signal 11 (SIGSEGV)"));
        } else if (i == 20) {
            CU_ASSERT_EQUAL(st, PP_CRASHED);
            CU_ASSERT_PTR_NOT_NULL(strstr(pp_job_error(jobs[i]), "SIGABRT"));
        } else if (i == 30) {
            CU_ASSERT_EQUAL(st, PP_CRASHED);
            CU_ASSERT_PTR_NOT_NULL(strstr(pp_job_error(jobs[i]), "exited with status 3"));
        } else {
            long v;
            ok += pp_job_unpack(jobs[i], "l", &v) == 0 && v == i * i;
        }
        pp_job_free(jobs[i]);
    }
    CU_ASSERT_EQUAL(ok, N - 3);
    CU_ASSERT_EQUAL(wait_children("ppworker", 2, 5), 2); /* replaced */
    pp_server_free(s);
}

static void test_timeout_kills_group(void)
{
    pp_server *s = server(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    char pids[300];
    snprintf(pids, sizeof pids, "%s/children.txt", tmpdir);
    double t0 = now_s();
    pp_job *j = pp_submit(s, t_fork_spin, pids, strlen(pids), &(pp_submit_opts){.timeout = 0.5});
    pp_job *spin = pp_submit(s, t_spin, NULL, 0, &(pp_submit_opts){.timeout = 0.3});
    pp_job *after = pp_submitf(s, t_square, NULL, "l", 12L);
    CU_ASSERT_EQUAL(pp_job_wait(j), PP_TIMEOUT);
    double took = now_s() - t0;
    CU_ASSERT(took >= 0.45 && took < 10.0);
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_job_error(j), "timed out"));
    CU_ASSERT_EQUAL(pp_job_wait(spin), PP_TIMEOUT);
    long v = 0;
    CU_ASSERT_EQUAL(pp_job_unpack(after, "l", &v), 0);
    CU_ASSERT_EQUAL(v, 144);
    /* The task's children died with its process group. */
    FILE *fp = fopen(pids, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    int pid, alive = 0, seen = 0;
    while (fscanf(fp, "%d", &pid) == 1) {
        seen++;
        double end = now_s() + 5;
        while (kill(pid, 0) == 0 && now_s() < end)
            sleep_s(0.02); /* reaped by init soon after the kill */
        alive += kill(pid, 0) == 0;
    }
    fclose(fp);
    unlink(pids);
    CU_ASSERT_EQUAL(seen, 2);
    CU_ASSERT_EQUAL(alive, 0);
    pp_job_free(j);
    pp_job_free(spin);
    pp_job_free(after);
    pp_server_free(s);
}

static void test_worker_killed_from_outside(void)
{
    pp_server *s = server(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    char pidfile[300];
    snprintf(pidfile, sizeof pidfile, "%s/worker.pid", tmpdir);
    unlink(pidfile);
    pp_job *j = pp_submit(s, t_pid_file_sleep, pidfile, strlen(pidfile), NULL);
    pp_job *next = pp_submitf(s, t_square, NULL, "l", 3L);
    int pid = 0;
    double end = now_s() + 10;
    while (now_s() < end) {
        FILE *fp = fopen(pidfile, "r");
        if (fp) {
            int ok = fscanf(fp, "%d", &pid) == 1;
            fclose(fp);
            if (ok && pid > 0)
                break;
        }
        sleep_s(0.01);
    }
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT_EQUAL(kill(pid, SIGKILL), 0);
    CU_ASSERT_EQUAL(pp_job_wait(j), PP_CRASHED);
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_job_error(j), "SIGKILL"));
    long v = 0;
    CU_ASSERT_EQUAL(pp_job_unpack(next, "l", &v), 0);
    CU_ASSERT_EQUAL(v, 9);
    unlink(pidfile);
    pp_job_free(j);
    pp_job_free(next);
    pp_server_free(s);
}

/* ---- pool size ---- */

static int distinct_pids(pp_server *s, int njobs, long ms)
{
    pp_job *jobs[64];
    long pids[64];
    int n = 0;
    for (int i = 0; i < njobs; i++)
        jobs[i] = pp_submitf(s, t_sleep, NULL, "l", ms);
    for (int i = 0; i < njobs; i++) {
        long p = 0;
        if (pp_job_unpack(jobs[i], "l", &p) == 0) {
            int seen = 0;
            for (int k = 0; k < n; k++)
                seen |= pids[k] == p;
            if (!seen)
                pids[n++] = p;
        }
        pp_job_free(jobs[i]);
    }
    return n;
}

static void test_resize(void)
{
    pp_server *s = server(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(pp_get_ncpus(s), 1);
    CU_ASSERT_EQUAL(wait_children("ppworker", 1, 5), 1);
    CU_ASSERT_EQUAL(pp_set_ncpus(s, 4), 0);
    CU_ASSERT_EQUAL(pp_get_ncpus(s), 4);
    CU_ASSERT_EQUAL(wait_children("ppworker", 4, 5), 4);
    CU_ASSERT_EQUAL(distinct_pids(s, 8, 250), 4);
    pp_node_info ni;
    CU_ASSERT_EQUAL(pp_get_active_nodes(s, &ni, 1), 1);
    CU_ASSERT_EQUAL(ni.ncpus, 4);
    CU_ASSERT_EQUAL(pp_set_ncpus(s, 1), 0);
    CU_ASSERT_EQUAL(wait_children("ppworker", 1, 5), 1);
    CU_ASSERT_EQUAL(distinct_pids(s, 4, 20), 1);
    CU_ASSERT_EQUAL(pp_set_ncpus(s, PP_AUTODETECT), 0);
    CU_ASSERT(pp_get_ncpus(s) >= 1);
    CU_ASSERT_EQUAL(pp_set_ncpus(s, -5), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "ncpus"));
    pp_server_free(s);
}

static void test_zero_workers_wait_then_grow(void)
{
    pp_server *s = server(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_job *j = pp_submitf(s, t_square, NULL, "l", 7L);
    CU_ASSERT_EQUAL(pp_job_wait_for(j, 0.3), PP_PENDING);
    CU_ASSERT_EQUAL(pp_job_status(j), PP_PENDING);
    CU_ASSERT_EQUAL(pp_set_ncpus(s, 1), 0);
    long v = 0;
    CU_ASSERT_EQUAL(pp_job_unpack(j, "l", &v), 0);
    CU_ASSERT_EQUAL(v, 49);
    pp_job_free(j);
    pp_server_free(s);
}

/* ---- threads ---- */

typedef struct submitter {
    pp_server *s;
    int base, n, right;
} submitter;

static void *submit_thread(void *arg)
{
    submitter *t = arg;
    pp_job **jobs = malloc((size_t)t->n * sizeof *jobs);
    for (int i = 0; i < t->n; i++)
        jobs[i] = pp_submitf(t->s, t_square, NULL, "l", (long)(t->base + i));
    for (int i = 0; i < t->n; i++) {
        long v;
        long x = t->base + i;
        if (jobs[i] && pp_job_unpack(jobs[i], "l", &v) == 0 && v == x * x)
            t->right++;
        pp_job_free(jobs[i]);
    }
    free(jobs);
    return NULL;
}

static void test_concurrent_submitters(void)
{
    pp_server *s = server(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    enum { T = 4, N = 5000 };
    pthread_t th[T];
    submitter sub[T];
    for (int i = 0; i < T; i++) {
        sub[i] = (submitter){.s = s, .base = i * N, .n = N};
        pthread_create(&th[i], NULL, submit_thread, &sub[i]);
    }
    int right = 0;
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        right += sub[i].right;
    }
    CU_ASSERT_EQUAL(right, T * N);
    pp_stats st;
    pp_get_stats(s, &st);
    CU_ASSERT_EQUAL(st.done, T * N);
    pp_server_free(s);
}

/* Threads submitting two tasks in turn: each job runs the task it named
 * (pp_submit() remembers the task it found last, per server, without a
 * lock). */
typedef struct alternater {
    pp_server *s;
    int first, right;
} alternater;

static void *alternate_thread(void *arg)
{
    alternater *a = arg;
    enum { N = 1000 };
    pp_job *jobs[N];
    for (int i = 0; i < N; i++) {
        int fail = (i + a->first) & 1;
        jobs[i] = pp_submit(a->s, fail ? t_fail : t_echo, &i, sizeof i, NULL);
    }
    for (int i = 0; i < N; i++) {
        int want = (i + a->first) & 1 ? PP_FAILED : PP_DONE;
        a->right += jobs[i] && pp_job_wait(jobs[i]) == want;
        pp_job_free(jobs[i]);
    }
    return NULL;
}

static void test_alternating_tasks(void)
{
    pp_server *s = server(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    enum { T = 4 };
    pthread_t th[T];
    alternater a[T];
    for (int i = 0; i < T; i++) {
        a[i] = (alternater){.s = s, .first = i};
        pthread_create(&th[i], NULL, alternate_thread, &a[i]);
    }
    int right = 0;
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        right += a[i].right;
    }
    CU_ASSERT_EQUAL(right, T * 1000);
    pp_server_free(s);
}

/* ---- shutdown ---- */

static atomic_int shutdown_calls[20];

static void shutdown_cb(pp_job *j, void *arg)
{
    (void)j;
    atomic_fetch_add(&shutdown_calls[(intptr_t)arg], 1);
}

static void test_clean_shutdown(void)
{
    pp_server *s = server(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(wait_children("ppworker", 2, 5), 2);
    pp_job *jobs[20];
    for (int i = 0; i < 20; i++) {
        atomic_store(&shutdown_calls[i], 0);
        pp_submit_opts o = {.callback = shutdown_cb, .callback_arg = (void *)(intptr_t)i};
        jobs[i] = pp_submitf(s, t_sleep, &o, "l", 200L);
    }
    sleep_s(0.05);
    pp_server_free(s);
    int cancelled = 0, once = 0;
    for (int i = 0; i < 20; i++) {
        int st = pp_job_status(jobs[i]);
        CU_ASSERT(st == PP_CANCELLED || st == PP_DONE);
        cancelled += st == PP_CANCELLED;
        once += atomic_load(&shutdown_calls[i]) == 1;
        if (st == PP_CANCELLED)
            CU_ASSERT_PTR_NOT_NULL(strstr(pp_job_error(jobs[i]), "cancelled"));
        pp_job_free(jobs[i]);
    }
    CU_ASSERT(cancelled >= 16);
    CU_ASSERT_EQUAL(once, 20);
    CU_ASSERT_EQUAL(count_children("ppworker"), 0);
    CU_ASSERT_EQUAL(dir_entries(tmpdir), 0); /* FIFO directories left */
    /* A server used for nothing also leaves nothing. */
    s = server(3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_server_free(s);
    CU_ASSERT_EQUAL(count_children("ppworker"), 0);
    CU_ASSERT_EQUAL(dir_entries(tmpdir), 0);
}

static void test_free_pending_job_handle(void)
{
    pp_server *s = server(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    for (int i = 0; i < 50; i++)
        pp_job_free(pp_submitf(s, t_square, NULL, "l", (long)i)); /* detached */
    CU_ASSERT_EQUAL(pp_wait(s, NULL), 0);
    pp_stats st;
    pp_get_stats(s, &st);
    CU_ASSERT_EQUAL(st.done, 50);
    pp_server_free(s);
}

/* ---- bad input ---- */

static int program_task(const void *arg, size_t len, pp_buf *out)
{
    return pp_buf_append(out, arg, len);
}

static void test_bad_arguments(void)
{
    CU_ASSERT_PTR_NULL(pp_server_new(&(pp_config){.ncpus = -7}));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "ncpus"));
    CU_ASSERT_PTR_NULL(pp_server_new(&(pp_config){.ncpus = 1, .log_level = "loud"}));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "log level"));
    CU_ASSERT_PTR_NULL(pp_server_new(&(pp_config){.ncpus = 1, .worker_path = "/nonexistent/ppworker"}));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "/nonexistent/ppworker"));

    CU_ASSERT_PTR_NULL(pp_submit(NULL, t_echo, "a", 1, NULL));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "server"));
    pp_server *s = server(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_PTR_NULL(pp_submit(s, NULL, "a", 1, NULL));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "task"));
    CU_ASSERT_PTR_NULL(pp_submit(s, t_echo, NULL, 5, NULL));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "NULL"));
    CU_ASSERT_PTR_NULL(pp_submit(s, t_echo, "a", 1, &(pp_submit_opts){.timeout = -1}));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "timeout"));
    CU_ASSERT_PTR_NULL(pp_submit(s, program_task, "a", 1, NULL));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "shared library"));
    CU_ASSERT_PTR_NULL(pp_submit(s, t_hidden_task_pointer(), "a", 1, NULL));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "exported"));
    CU_ASSERT_PTR_NULL(pp_submitf(s, t_square, NULL, "q", 1L));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "format"));

    CU_ASSERT_EQUAL(pp_job_wait(NULL), -1);
    CU_ASSERT_EQUAL(pp_job_status(NULL), -1);
    CU_ASSERT_PTR_NULL(pp_job_result(NULL, NULL));
    CU_ASSERT_STRING_EQUAL(pp_job_error(NULL), "");
    CU_ASSERT_STRING_EQUAL(pp_job_node(NULL), "");
    CU_ASSERT_EQUAL(pp_job_wait_for(NULL, 1), -1);
    pp_job_free(NULL);
    CU_ASSERT_EQUAL(pp_wait(NULL, NULL), -1);
    CU_ASSERT_EQUAL(pp_get_ncpus(NULL), -1);
    CU_ASSERT_EQUAL(pp_set_ncpus(NULL, 2), -1);
    CU_ASSERT_EQUAL(pp_get_active_nodes(NULL, NULL, 0), -1);
    CU_ASSERT_EQUAL(pp_get_active_nodes(s, NULL, 3), -1);
    CU_ASSERT_EQUAL(pp_get_active_nodes(s, NULL, 0), 1);
    CU_ASSERT_EQUAL(pp_get_stats(NULL, NULL), -1);
    CU_ASSERT_EQUAL(pp_get_stats(s, NULL), -1);
    pp_print_stats(NULL, stdout);
    pp_print_stats(s, NULL);
    pp_server_free(NULL);
    CU_ASSERT_STRING_EQUAL(pp_strerror(PP_TIMEOUT), "timed out");
    CU_ASSERT_STRING_EQUAL(pp_strerror(12345), "unknown status");
    CU_ASSERT_EQUAL(pp_buf_append(NULL, "a", 1), -1);
    CU_ASSERT_EQUAL(pp_buf_printf(NULL, "x"), -1);
    CU_ASSERT_PTR_NOT_NULL(pp_version());
    pp_server_free(s);
}

static void test_secret_not_in_worker_env(void)
{
    setenv("PP_SECRET", "do-not-leak-this-secret", 1);
    setenv("PP_TEST_PRIVATE", "private", 1);
    pp_server *s = server(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_job *a = pp_submit(s, t_getenv, "PP_SECRET", 9, NULL);
    pp_job *b = pp_submit(s, t_getenv, "PP_TEST_PRIVATE", 15, NULL);
    pp_job *c = pp_submit(s, t_getenv, "PATH", 4, NULL);
    CU_ASSERT_STRING_EQUAL(pp_job_result(a, NULL), "(unset)");
    CU_ASSERT_STRING_EQUAL(pp_job_result(b, NULL), "(unset)");
    CU_ASSERT_STRING_NOT_EQUAL(pp_job_result(c, NULL), "(unset)");
    pp_job_free(a);
    pp_job_free(b);
    pp_job_free(c);
    pp_server_free(s);
    unsetenv("PP_SECRET");
    unsetenv("PP_TEST_PRIVATE");
}

/* pp_config.worker_env passes named variables to the workers (e.g.
 * LD_PRELOAD for a task module built with ASan); the secret never. */
static void test_worker_env(void)
{
    setenv("PP_TEST_PASSED", "passed-on", 1);
    setenv("PP_TEST_PRIVATE", "private", 1);
    setenv("PP_SECRET", "do-not-leak-this-secret", 1);
    pp_server *s = pp_server_new(&(pp_config){
        .ncpus = 1, .worker_env = (const char *[]){"PP_TEST_PASSED", "PATH", NULL}});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_job *a = pp_submit(s, t_getenv, "PP_TEST_PASSED", 14, NULL);
    pp_job *b = pp_submit(s, t_getenv, "PP_TEST_PRIVATE", 15, NULL);
    pp_job *c = pp_submit(s, t_getenv, "PP_SECRET", 9, NULL);
    CU_ASSERT_STRING_EQUAL(pp_job_result(a, NULL), "passed-on");
    CU_ASSERT_STRING_EQUAL(pp_job_result(b, NULL), "(unset)");
    CU_ASSERT_STRING_EQUAL(pp_job_result(c, NULL), "(unset)");
    pp_job_free(a);
    pp_job_free(b);
    pp_job_free(c);
    pp_server_free(s);
    /* The secret cannot be asked for; nor can a name that is no name. */
    CU_ASSERT_PTR_NULL(pp_server_new(&(pp_config){
        .ncpus = 1, .worker_env = (const char *[]){"PP_SECRET", NULL}}));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "never passed to workers"));
    CU_ASSERT_PTR_NULL(pp_server_new(&(pp_config){
        .ncpus = 1, .worker_env = (const char *[]){"A=B", NULL}}));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "not an environment variable name"));
    unsetenv("PP_TEST_PASSED");
    unsetenv("PP_TEST_PRIVATE");
    unsetenv("PP_SECRET");
}

typedef struct twice {
    pthread_mutex_t mu;
    int calls, status_seen;
} twice;

static void free_twice_cb(pp_job *j, void *arg)
{
    twice *t = arg;
    pp_job_free(j);
    pp_job_free(j); /* the bug: refused, the job still valid */
    pthread_mutex_lock(&t->mu);
    t->calls++;
    t->status_seen = pp_job_status(j);
    pthread_mutex_unlock(&t->mu);
}

/* A handle freed twice in its callback: the second call is refused (a
 * message, nothing freed), so the library's own reference stays good --
 * under ASan this was a use after free in the callback thread. */
static void test_free_twice_in_callback(void)
{
    pp_server *s = server(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    twice t = {.mu = PTHREAD_MUTEX_INITIALIZER};
    pp_submit_opts o = {.callback = free_twice_cb, .callback_arg = &t};
    for (long i = 0; i < 20; i++)
        CU_ASSERT_PTR_NOT_NULL(pp_submitf(s, t_square, &o, "l", i));
    CU_ASSERT_EQUAL(pp_wait(s, NULL), 0);
    CU_ASSERT_EQUAL(t.calls, 20);
    CU_ASSERT_EQUAL(t.status_seen, PP_DONE);
    /* Outside a callback too, while the job is pending. */
    pp_job *j = pp_submitf(s, t_sleep, NULL, "l", 200L);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    pp_job_free(j);
    pp_job_free(j);
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "pp_job_free: the job was already freed"));
    CU_ASSERT_EQUAL(pp_wait(s, NULL), 0);
    pp_server_free(s);
}

/* pp_wait_for: gives up after its time with a message, returns 0 once the
 * group is done; -1 from a callback and on bad arguments. */
static void test_wait_for(void)
{
    pp_server *s = server(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_job *j = pp_submitf(s, t_sleep, &(pp_submit_opts){.group = "slow"}, "l", 400L);
    double t0 = now_s();
    CU_ASSERT_EQUAL(pp_wait_for(s, "slow", 0.05), 1);
    CU_ASSERT(now_s() - t0 < 0.3);
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "1 job(s) of group \"slow\" still pending"));
    CU_ASSERT_EQUAL(pp_wait_for(s, "no such group", 0), 0);
    CU_ASSERT_EQUAL(pp_wait_for(s, "slow", 10), 0);
    CU_ASSERT_EQUAL(pp_job_status(j), PP_DONE);
    CU_ASSERT_EQUAL(pp_wait_for(s, NULL, -1), -1);
    CU_ASSERT_EQUAL(pp_wait_for(NULL, NULL, 1), -1);
    pp_job_free(j);
    pp_server_free(s);
}

static void test_module_load_failure(void)
{
    /* A copy of the task module, loaded here and then deleted: workers
     * cannot load it, and say so. */
    const char *src = getenv("PP_TEST_TASKS");
    CU_ASSERT_PTR_NOT_NULL_FATAL(src);
    char copy[300], cmd[700];
    snprintf(copy, sizeof copy, "%s/gone-tasks.so", tmpdir);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", src, copy);
    CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
    void *h = dlopen(copy, RTLD_NOW | RTLD_LOCAL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    pp_task echo;
    void *sym = dlsym(h, "t_echo");
    memcpy(&echo, &sym, sizeof echo);
    pp_server *s = server(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_job *j = pp_submit(s, echo, "a", 1, NULL); /* resolved now, loaded later */
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    unlink(copy);
    CU_ASSERT_EQUAL(pp_set_ncpus(s, 1), 0);
    CU_ASSERT_EQUAL(pp_job_wait(j), PP_ELOAD);
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_job_error(j), "gone-tasks.so"));
    pp_job *ok = pp_submit(s, t_echo, "b", 1, NULL);
    CU_ASSERT_EQUAL(pp_job_wait(ok), PP_DONE);
    pp_job_free(j);
    pp_job_free(ok);
    pp_server_free(s);
    dlclose(h);
}

static void test_misbehaving_worker(void)
{
    const char *bad = getenv("PP_TEST_BADWORKER");
    CU_ASSERT_PTR_NOT_NULL_FATAL(bad);
    pp_server *s = pp_server_new(&(pp_config){.ncpus = 1, .worker_path = bad});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    const char *args[] = {"hello", "garbage", "again", "exit", "wrongid", "last"};
    int want[] = {PP_DONE, PP_CRASHED, PP_DONE, PP_CRASHED, PP_CRASHED, PP_DONE};
    const char *why[] = {NULL, "bad magic", NULL, "exited with status 0", "no job", NULL};
    for (int i = 0; i < 6; i++) {
        pp_job *j = pp_submit(s, t_echo, args[i], strlen(args[i]), NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(j);
        int st = pp_job_wait_for(j, 20);
        CU_ASSERT_EQUAL(st, want[i]);
        if (why[i]) {
            if (!strstr(pp_job_error(j), why[i]))
                fprintf(stderr, "job %d: \"%s\" lacks \"%s\"\n", i, pp_job_error(j), why[i]);
            CU_ASSERT_PTR_NOT_NULL(strstr(pp_job_error(j), why[i]));
        } else {
            CU_ASSERT_STRING_EQUAL(pp_job_result(j, NULL), args[i]);
        }
        pp_job_free(j);
    }
    pp_server_free(s);
    CU_ASSERT_EQUAL(count_children("pptest_badwork"), 0);
}

/* ---- templates (pp.Template) ---- */

static void tpl_count_cb(pp_job *j, void *arg)
{
    (void)j;
    atomic_fetch_add((atomic_int *)arg, 1);
}

static void test_template_options(void)
{
    pp_server *s = server(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    static atomic_int calls;
    atomic_store(&calls, 0);
    char group[32] = "tpl-group";
    pp_submit_opts o = {.group = group, .callback = tpl_count_cb, .callback_arg = &calls,
                        .timeout = 0.5};
    pp_template *sleeper = pp_template_new(s, t_sleep, &o);
    pp_template *spinner = pp_template_new(s, t_spin, &o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sleeper);
    CU_ASSERT_PTR_NOT_NULL_FATAL(spinner);
    /* Both the options and the group name were copied. */
    memset(group, 'X', sizeof group - 1);
    o = (pp_submit_opts){0};
    enum { N = 6 };
    pp_job *jobs[N], *spin, *outsider;
    for (int i = 0; i < N; i++) {
        jobs[i] = pp_template_submitf(sleeper, "l", 20L);
        CU_ASSERT_PTR_NOT_NULL_FATAL(jobs[i]);
    }
    spin = pp_template_submit(spinner, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(spin);
    /* Not in the template's group: pp_wait(group) does not wait for it. */
    outsider = pp_submitf(s, t_sleep, NULL, "l", 4000L);
    CU_ASSERT_PTR_NOT_NULL_FATAL(outsider);
    /* Jobs already submitted outlive their templates. */
    pp_template_free(sleeper);
    pp_template_free(spinner);
    double t0 = now_s();
    CU_ASSERT_EQUAL(pp_wait(s, "tpl-group"), 0);
    CU_ASSERT(now_s() - t0 < 3.5);
    CU_ASSERT_EQUAL(atomic_load(&calls), N + 1); /* the callback, once per job */
    for (int i = 0; i < N; i++) {
        long pid = 0;
        CU_ASSERT_EQUAL(pp_job_unpack(jobs[i], "l", &pid), 0);
        CU_ASSERT(pid > 0);
        pp_job_free(jobs[i]);
    }
    CU_ASSERT_EQUAL(pp_job_status(spin), PP_TIMEOUT); /* the template's timeout */
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_job_error(spin), "timed out"));
    CU_ASSERT_EQUAL(pp_job_status(outsider), PP_PENDING);
    pp_job_free(spin);
    pp_job_free(outsider);
    pp_server_free(s);
    CU_ASSERT_EQUAL(atomic_load(&calls), N + 1); /* the outsider had none */
}

static void test_template_submitf(void)
{
    pp_server *s = server(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_template *sq = pp_template_new(s, t_square, NULL); /* NULL = default options */
    pp_template *echo = pp_template_new(s, t_echo, &(pp_submit_opts){0});
    CU_ASSERT_PTR_NOT_NULL_FATAL(sq);
    CU_ASSERT_PTR_NOT_NULL_FATAL(echo);
    enum { N = 200 };
    pp_job *jobs[N];
    for (long i = 0; i < N; i++) {
        jobs[i] = pp_template_submitf(sq, "l", i - 100);
        CU_ASSERT_PTR_NOT_NULL_FATAL(jobs[i]);
    }
    pp_job *e = pp_template_submit(echo, "hello", 5);
    pp_job *empty = pp_template_submit(echo, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(empty);
    int right = 0;
    for (long i = 0; i < N; i++) {
        long v = -1;
        if (pp_job_unpack(jobs[i], "l", &v) == 0 && v == (i - 100) * (i - 100))
            right++;
        pp_job_free(jobs[i]);
    }
    CU_ASSERT_EQUAL(right, N);
    size_t len = 99;
    CU_ASSERT_STRING_EQUAL(pp_job_result(e, &len), "hello");
    CU_ASSERT_EQUAL(len, 5);
    CU_ASSERT_PTR_NOT_NULL(pp_job_result(empty, &len));
    CU_ASSERT_EQUAL(len, 0);
    /* Packing errors are pp_pack's; argument errors are pp_submit's. */
    CU_ASSERT_PTR_NULL(pp_template_submitf(sq, "q", 1L));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "format"));
    CU_ASSERT_PTR_NULL(pp_template_submitf(sq, NULL));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "NULL"));
    CU_ASSERT_PTR_NULL(pp_template_submit(echo, NULL, 5));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "NULL"));
    pp_stats st;
    CU_ASSERT_EQUAL(pp_get_stats(s, &st), 0);
    CU_ASSERT_EQUAL(st.submitted, N + 2);
    pp_job_free(e);
    pp_job_free(empty);
    pp_template_free(sq);
    pp_template_free(echo);
    pp_server_free(s);
}

static void test_template_bad_arguments(void)
{
    pp_server *s = server(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_PTR_NULL(pp_template_new(NULL, t_echo, NULL));
    CU_ASSERT_EQUAL(strncmp(pp_last_error(), "pp_template_new: ", 17), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "server"));
    CU_ASSERT_PTR_NULL(pp_template_new(s, NULL, NULL));
    CU_ASSERT_EQUAL(strncmp(pp_last_error(), "pp_template_new: ", 17), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "task"));
    /* What pp_submit() would refuse is refused at creation. */
    CU_ASSERT_PTR_NULL(pp_template_new(s, program_task, NULL));
    CU_ASSERT_EQUAL(strncmp(pp_last_error(), "pp_template_new: ", 17), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "shared library"));
    CU_ASSERT_PTR_NULL(pp_template_new(s, t_hidden_task_pointer(), NULL));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "exported"));
    CU_ASSERT_PTR_NULL(pp_template_new(s, t_echo, &(pp_submit_opts){.timeout = -1}));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "timeout"));
    char longname[1100];
    memset(longname, 'g', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    CU_ASSERT_PTR_NULL(pp_template_new(s, t_echo, &(pp_submit_opts){.group = longname}));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "group"));
    CU_ASSERT_PTR_NULL(pp_template_submit(NULL, "a", 1));
    CU_ASSERT_EQUAL(strncmp(pp_last_error(), "pp_template_submit: ", 20), 0);
    CU_ASSERT_PTR_NULL(pp_template_submitf(NULL, "l", 1L));
    CU_ASSERT_EQUAL(strncmp(pp_last_error(), "pp_template_submitf: ", 21), 0);
    pp_template_free(NULL);
    pp_stats st;
    CU_ASSERT_EQUAL(pp_get_stats(s, &st), 0);
    CU_ASSERT_EQUAL(st.submitted, 0);
    pp_server_free(s);
}

int pp_register_suites(void)
{
    static const pp_test results[] = {
        {"many inputs, stats", test_many_inputs},
        {"echo sizes 0..3 MiB", test_echo_sizes},
        {"64 MiB argument and result", test_large_64mib},
        {"100,000 tiny jobs", test_100k_tiny},
        {"no job waits behind a long one", test_no_wait_behind_long_job},
        {"job_memory_mib caps a worker's memory", test_job_memory_limit},
        {NULL, NULL}};
    static const pp_test callbacks[] = {
        {"callbacks exactly once, any status", test_callbacks_once},
        {"pp_wait from a callback is refused", test_wait_from_callback_refused},
        {"pp_server_free from a callback", test_free_from_callback},
        {"handles freed while a teardown from a callback runs",
         test_free_handles_during_teardown},
        {"groups", test_groups},
        {NULL, NULL}};
    static const pp_test faults[] = {
        {"failure carries the task's text", test_failure_text},
        {"crashes are isolated (E1)", test_crashes_isolated},
        {"timeout kills the process group (E2)", test_timeout_kills_group},
        {"worker killed from outside (E3)", test_worker_killed_from_outside},
        {"module that cannot load", test_module_load_failure},
        {"misbehaving worker", test_misbehaving_worker},
        {NULL, NULL}};
    static const pp_test pool[] = {
        {"resize at run time", test_resize},
        {"no workers: jobs wait, then run", test_zero_workers_wait_then_grow},
        {"concurrent submitters", test_concurrent_submitters},
        {"two tasks in turn from several threads", test_alternating_tasks},
        {"clean shutdown", test_clean_shutdown},
        {"freeing pending job handles", test_free_pending_job_handle},
        {"secret not in the workers' environment", test_secret_not_in_worker_env},
        {"worker_env passes named variables", test_worker_env},
        {"a handle freed twice, in a callback and outside", test_free_twice_in_callback},
        {"pp_wait_for", test_wait_for},
        {NULL, NULL}};
    static const pp_test bad[] = {
        {"NULL and invalid arguments", test_bad_arguments},
        {NULL, NULL}};
    if (pp_add_suite("results", suite_init, suite_clean, results) ||
        pp_add_suite("callbacks and groups", suite_init, suite_clean, callbacks) ||
        pp_add_suite("faults", suite_init, suite_clean, faults) ||
        pp_add_suite("pool", suite_init, suite_clean, pool) ||
        pp_add_suite("bad input", suite_init, suite_clean, bad))
        return -1;
    static const pp_test templates[] = {
        {"jobs get the template's group, callback, timeout", test_template_options},
        {"pp_template_submit and pp_template_submitf", test_template_submitf},
        {"NULL and invalid arguments", test_template_bad_arguments},
        {NULL, NULL}};
    if (pp_add_suite("templates", suite_init, suite_clean, templates))
        return -1;
    return 0;
}
