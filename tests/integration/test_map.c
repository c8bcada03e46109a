/* SPDX-License-Identifier: MIT */
/* test_map.c -- pp_map with real ppworker processes (and a real ppserver):
 * results in input order, per-item failures, a crashing or hanging item
 * isolated in its batch, completion order, variable-length items, cancel
 * and free midway, callbacks, bad arguments, tags, and a million small
 * items.
 * Every wait is bounded: a map is first awaited with pp_map_next() or
 * pp_map_done() against a deadline, so pp_map_result() never blocks. */
#include <CUnit/CUnit.h>
#include <pp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cunit_main.h"
#include "server_harness.h"
#include "test_tasks.h"
#include "test_util.h"

static char tmpdir[256];

static int suite_init(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pp-test-map-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    setenv("TMPDIR", tmpdir, 1);
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
    pp_server *s = pp_server_new(&(pp_config){.ncpus = ncpus});
    if (!s)
        fprintf(stderr, "pp_server_new: %s\n", pp_last_error());
    return s;
}

/* Waits up to `limit` seconds for every item; 0 when all are done. */
static int wait_all(pp_map *m, double limit)
{
    double end = now_s() + limit;
    while (pp_map_done(m) < pp_map_size(m)) {
        if (now_s() > end) {
            fprintf(stderr, "map: %zu of %zu done after %.0f s\n", pp_map_done(m),
                    pp_map_size(m), limit);
            return -1;
        }
        sleep_s(0.001);
    }
    return 0;
}

static int64_t *sq_items(size_t n)
{
    int64_t *v = malloc(n * sizeof *v);
    for (size_t i = 0; v && i < n; i++)
        v[i] = (int64_t)i - 1000;
    return v;
}

/* Items of sq_items() mapped through t_sq8: how many results are right
 * (PP_DONE, 8 bytes, the square, 16-byte aligned, a NUL after). */
static size_t count_squares(pp_map *m, const int64_t *v)
{
    size_t right = 0, n = pp_map_size(m);
    for (size_t i = 0; i < n; i++) {
        const void *d;
        size_t len;
        int st = pp_map_result(m, i, &d, &len);
        int64_t r = 0;
        if (st == PP_DONE && len == 8)
            memcpy(&r, d, 8);
        if (st == PP_DONE && len == 8 && r == v[i] * v[i] && ((uintptr_t)d & 15) == 0 &&
            ((const char *)d)[8] == 0)
            right++;
        else if (i - right < 5) /* the first few wrong ones */
            fprintf(stderr, "item %zu: status %d, %zu bytes: %s\n", i, st, len,
                    st == PP_DONE || st < 0 ? "" : (const char *)d);
    }
    return right;
}

/* Takes every index from pp_map_next() (the map is done): how many came,
 * each distinct and in range; -1 on a duplicate or a bad index. */
static long next_all_once(pp_map *m)
{
    size_t n = pp_map_size(m), i;
    unsigned char *seen = calloc(n ? n : 1, 1);
    long got = 0;
    int r;
    while ((r = pp_map_next(m, 0, &i)) == 1) {
        if (i >= n || seen[i]) {
            got = -1;
            break;
        }
        seen[i] = 1;
        got++;
    }
    if (r == -1)
        got = -1; /* the map was done: nothing may be missing */
    free(seen);
    return got;
}

/* ---- results in input order ---- */

static void test_input_order_local(void)
{
    pp_server *s = server(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    enum { N = 10000 };
    int64_t *v = sq_items(N);
    pp_map *m = pp_map_new(s, t_sq8, v, 8, N, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    memset(v, 0xEE, 8); /* the items were copied */
    v[0] = -1000;
    CU_ASSERT_EQUAL(pp_map_size(m), N);
    CU_ASSERT_EQUAL_FATAL(wait_all(m, 60), 0);
    CU_ASSERT_EQUAL(count_squares(m, v), N);
    CU_ASSERT_EQUAL(pp_map_wait(m), 0);
    CU_ASSERT_EQUAL(pp_map_done(m), N);
    pp_stats st;
    CU_ASSERT_EQUAL(pp_get_stats(s, &st), 0);
    /* Batched: far fewer jobs than items, but more than one per CPU. */
    CU_ASSERT(st.submitted >= 4 && st.submitted <= N / 8);
    CU_ASSERT_EQUAL(st.failed, 0);
    pp_map_free(m);
    free(v);
    pp_server_free(s);
}

static void test_input_order_remote(void)
{
    srv_harness h = {0};
    const char *const args[] = {"-w", "2", NULL};
    CU_ASSERT_EQUAL_FATAL(srv_start(&h, &(srv_opts){.args = args}), 0);
    char name[64];
    snprintf(name, sizeof name, "127.0.0.1:%d", h.port);
    const char *list[] = {name, NULL};
    pp_server *s = pp_server_new(&(pp_config){.ncpus = 0, .ppservers = list, .secret = h.secret});
    CU_ASSERT_PTR_NOT_NULL(s);
    if (s) {
        pp_node_info nodes[2];
        double end = now_s() + 10;
        while (now_s() < end && !(pp_get_active_nodes(s, nodes, 2) == 2 &&
                                  nodes[1].state == PP_NODE_UP && nodes[1].ncpus == 2))
            sleep_s(0.01);
        CU_ASSERT_EQUAL(nodes[1].state, PP_NODE_UP);
        enum { N = 10000 };
        int64_t *v = sq_items(N);
        pp_map *m = pp_map_new(s, t_sq8, v, 8, N, NULL);
        CU_ASSERT_PTR_NOT_NULL(m);
        if (m && wait_all(m, 60) == 0) {
            CU_ASSERT_EQUAL(count_squares(m, v), N);
            CU_ASSERT_EQUAL(pp_map_wait(m), 0);
        } else {
            CU_FAIL("the map did not finish through the ppserver");
        }
        pp_map_free(m);
        /* Per-item failures come back through the node as well. */
        m = pp_map_new(s, t_sq8_fail7, v, 8, 700, NULL);
        CU_ASSERT_PTR_NOT_NULL(m);
        if (m && wait_all(m, 60) == 0) {
            CU_ASSERT_EQUAL(pp_map_wait(m), 100); /* -1000..-301: 100 multiples of 7 */
            const void *d;
            CU_ASSERT_EQUAL(pp_map_result(m, 0, &d, NULL), PP_DONE);
            CU_ASSERT_EQUAL(pp_map_result(m, 6, &d, NULL), PP_FAILED); /* -994 */
            CU_ASSERT_STRING_EQUAL(d, "multiple of 7: -994");
        }
        pp_map_free(m);
        free(v);
        pp_server_free(s);
    }
    srv_cleanup(&h);
}

/* ---- failures per item ---- */

static void test_failures_per_item(void)
{
    pp_server *s = server(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    enum { N = 5000 };
    int64_t *v = malloc(N * sizeof *v);
    for (size_t i = 0; i < N; i++)
        v[i] = (int64_t)i;
    pp_map *m = pp_map_new(s, t_sq8_fail7, v, 8, N, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL_FATAL(wait_all(m, 60), 0);
    size_t failed_right = 0, done_right = 0;
    for (size_t i = 0; i < N; i++) {
        const void *d = NULL;
        size_t len = 0;
        int st = pp_map_result(m, i, &d, &len);
        if (i % 7 == 0) {
            char want[64];
            snprintf(want, sizeof want, "multiple of 7: %zu", i);
            failed_right += st == PP_FAILED && len == strlen(want) && strcmp(d, want) == 0;
        } else {
            int64_t r = 0;
            if (len == 8)
                memcpy(&r, d, 8);
            done_right += st == PP_DONE && r == (int64_t)(i * i);
        }
    }
    CU_ASSERT_EQUAL(failed_right, (N + 6) / 7);
    CU_ASSERT_EQUAL(done_right, N - (N + 6) / 7);
    CU_ASSERT_EQUAL(pp_map_wait(m), (N + 6) / 7);
    pp_map_free(m);
    free(v);
    pp_server_free(s);
}

/* One crashing item in a batch: only it ends PP_CRASHED. */
static void test_crash_isolated(void)
{
    pp_server *s = server(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    enum { N = 10000 };
    int64_t *v = malloc(N * sizeof *v);
    for (size_t i = 0; i < N; i++)
        v[i] = (int64_t)i;
    pp_map *m = pp_map_new(s, t_sq8_crash, v, 8, N, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL_FATAL(wait_all(m, 60), 0);
    size_t done_right = 0;
    for (size_t i = 0; i < N; i++) {
        const void *d = NULL;
        size_t len = 0;
        int st = pp_map_result(m, i, &d, &len);
        if (i == T_SQ8_CRASH_AT) {
            CU_ASSERT_EQUAL(st, PP_CRASHED);
            CU_ASSERT_PTR_NOT_NULL(strstr(d, "SIGSEGV"));
            continue;
        }
        int64_t r = 0;
        if (st == PP_DONE && len == 8)
            memcpy(&r, d, 8);
        done_right += st == PP_DONE && r == (int64_t)(i * i);
    }
    CU_ASSERT_EQUAL(done_right, N - 1);
    CU_ASSERT_EQUAL(pp_map_wait(m), 1);
    /* The items run again alone come once each, not with their batch. */
    CU_ASSERT_EQUAL(next_all_once(m), N);
    pp_stats st;
    CU_ASSERT_EQUAL(pp_get_stats(s, &st), 0);
    CU_ASSERT(st.submitted > 2); /* the batch, then its items alone */
    pp_map_free(m);
    free(v);
    pp_server_free(s);
}

/* retries are per item: an item that failed in its batch runs again
 * alone; pp_map_next() still gives each index once. */
static void test_retries_per_item(void)
{
    pp_server *s = server(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    enum { N = 300 };
    int64_t v[N];
    for (int i = 0; i < N; i++)
        v[i] = 1000000 + i;
    pp_map *m = pp_map_new(s, t_sq8_fail_once, v, 8, N, &(pp_map_opts){.retries = 1});
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL_FATAL(wait_all(m, 60), 0);
    CU_ASSERT_EQUAL(count_squares(m, v), N);
    CU_ASSERT_EQUAL(pp_map_wait(m), 0);
    CU_ASSERT_EQUAL(next_all_once(m), N);
    pp_stats st;
    CU_ASSERT_EQUAL(pp_get_stats(s, &st), 0);
    CU_ASSERT(st.submitted >= N); /* the batches, then each item alone */
    pp_map_free(m);
    /* Without retries the first run's failure is final. */
    for (int i = 0; i < N; i++)
        v[i] = 2000000 + i;
    m = pp_map_new(s, t_sq8_fail_once, v, 8, N, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL_FATAL(wait_all(m, 60), 0);
    CU_ASSERT_EQUAL(pp_map_wait(m), N);
    const void *d;
    CU_ASSERT_EQUAL(pp_map_result(m, 7, &d, NULL), PP_FAILED);
    CU_ASSERT_STRING_EQUAL(d, "first run of 2000007 fails");
    pp_map_free(m);
    /* Retries that keep failing: the text says so. */
    for (int i = 0; i < 20; i++)
        v[i] = i;
    m = pp_map_new(s, t_sq8_fail7, v, 8, 20, &(pp_map_opts){.retries = 2, .batch = 5});
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL_FATAL(wait_all(m, 60), 0);
    CU_ASSERT_EQUAL(pp_map_wait(m), 3); /* 0, 7, 14 */
    CU_ASSERT_EQUAL(pp_map_result(m, 14, &d, NULL), PP_FAILED);
    CU_ASSERT_PTR_NOT_NULL(strstr(d, "runs failed; the last: multiple of 7: 14"));
    CU_ASSERT_EQUAL(next_all_once(m), 20);
    pp_map_free(m);
    for (int i = 0; i < N; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/pp-map-once-%d", tmpdir, 1000000 + i);
        unlink(path);
        snprintf(path, sizeof path, "%s/pp-map-once-%d", tmpdir, 2000000 + i);
        unlink(path);
    }
    pp_server_free(s);
}

/* One hanging item in a batch: only it ends PP_TIMEOUT (the timeout is per
 * item; a batch of 4 has 4 times as long). */
static void test_timeout_isolated(void)
{
    pp_server *s = server(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    int64_t ms[12];
    for (int i = 0; i < 12; i++)
        ms[i] = i == 5 ? 20000 : 20;
    double t0 = now_s();
    pp_map *m = pp_map_new(s, t_sleep8, ms, 8, 12, &(pp_map_opts){.timeout = 0.4, .batch = 4});
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL_FATAL(wait_all(m, 30), 0);
    CU_ASSERT(now_s() - t0 < 10);
    for (size_t i = 0; i < 12; i++) {
        const void *d;
        size_t len;
        int st = pp_map_result(m, i, &d, &len);
        CU_ASSERT_EQUAL(st, i == 5 ? PP_TIMEOUT : PP_DONE);
        if (i != 5)
            CU_ASSERT(len == 8 && memcmp(d, &ms[i], 8) == 0);
    }
    CU_ASSERT_EQUAL(pp_map_wait(m), 1);
    pp_map_free(m);
    pp_server_free(s);
}

/* ---- completion order ---- */

static void test_next_each_once(void)
{
    pp_server *s = server(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    /* Nothing done yet: a timeout of 0 returns -1 at once, a short one
     * after about that long. */
    int64_t slow[2] = {400, 400};
    pp_map *m = pp_map_new(s, t_sleep8, slow, 8, 2, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    size_t i = 99;
    CU_ASSERT_EQUAL(pp_map_next(m, 0, &i), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "pp_map_next: no item finished"));
    double t0 = now_s();
    CU_ASSERT_EQUAL(pp_map_next(m, 0.05, &i), -1);
    double took = now_s() - t0;
    CU_ASSERT(took >= 0.04 && took < 0.3);
    CU_ASSERT_EQUAL(pp_map_next(m, 10, &i), 1);
    CU_ASSERT(i < 2);
    size_t first = i;
    CU_ASSERT_EQUAL(pp_map_next(m, 10, &i), 1);
    CU_ASSERT(i < 2 && i != first);
    CU_ASSERT_EQUAL(pp_map_next(m, 10, &i), 0);
    CU_ASSERT_EQUAL(pp_map_next(m, 0, &i), 0);
    pp_map_free(m);

    enum { N = 20000 };
    int64_t *v = sq_items(N);
    m = pp_map_new(s, t_sq8, v, 8, N, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    unsigned char *seen = calloc(N, 1);
    size_t got = 0, twice = 0, bad = 0;
    int r;
    double end = now_s() + 60;
    while ((r = pp_map_next(m, 1, &i)) != 0 && now_s() < end) {
        if (r < 0)
            continue;
        if (i >= N) {
            bad++;
            continue;
        }
        twice += seen[i];
        seen[i] = 1;
        got++;
        /* Returned means finished: its result is there without waiting. */
        const void *d;
        size_t len;
        int64_t sq = 0;
        if (pp_map_result(m, i, &d, &len) == PP_DONE && len == 8)
            memcpy(&sq, d, 8);
        bad += sq != v[i] * v[i];
    }
    CU_ASSERT_EQUAL(r, 0);
    CU_ASSERT_EQUAL(got, N);
    CU_ASSERT_EQUAL(twice, 0);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(pp_map_next(m, -1, &i), 0); /* no limit, nothing left: at once */
    free(seen);
    pp_map_free(m);
    free(v);
    pp_server_free(s);
}

/* Two threads taking from one map: each item goes to one of them. */
typedef struct taker {
    pp_map *m;
    unsigned char *seen;
    atomic_size_t *twice;
    size_t got;
} taker;

static void *take_all(void *arg)
{
    taker *t = arg;
    size_t i;
    int r;
    double end = now_s() + 60;
    while ((r = pp_map_next(t->m, 0.5, &i)) != 0 && now_s() < end) {
        if (r == 1) {
            if (atomic_exchange((_Atomic unsigned char *)&t->seen[i], 1))
                atomic_fetch_add(t->twice, 1);
            t->got++;
        }
    }
    return NULL;
}

static void test_next_two_threads(void)
{
    pp_server *s = server(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    enum { N = 50000 };
    int64_t *v = sq_items(N);
    pp_map *m = pp_map_new(s, t_sq8, v, 8, N, &(pp_map_opts){.batch = 100});
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    unsigned char *seen = calloc(N, 1);
    atomic_size_t twice = 0;
    taker a = {m, seen, &twice, 0}, b = {m, seen, &twice, 0};
    pthread_t ta, tb;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&ta, NULL, take_all, &a), 0);
    CU_ASSERT_EQUAL_FATAL(pthread_create(&tb, NULL, take_all, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CU_ASSERT_EQUAL(a.got + b.got, N);
    CU_ASSERT_EQUAL(atomic_load(&twice), 0);
    pp_map_free(m);
    free(seen);
    free(v);
    pp_server_free(s);
}

/* ---- variable-length items ---- */

static void test_newv(void)
{
    pp_server *s = server(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    enum { N = 3000 };
    unsigned char **args = calloc(N, sizeof *args);
    size_t *lens = calloc(N, sizeof *lens);
    for (size_t i = 0; i < N; i++) {
        /* Zero-length items, small ones, and now and then one of 100 KiB
         * (a job of its own) or 1 MiB. */
        lens[i] = i % 5 == 0 ? 0 : i % 997 == 1 ? 100000 : i == 1500 ? (1u << 20) : i % 300;
        args[i] = lens[i] ? malloc(lens[i]) : NULL;
        for (size_t k = 0; k < lens[i]; k++)
            args[i][k] = (unsigned char)(i * 7 + k);
    }
    pp_map *m = pp_map_newv(s, t_echo, (const void *const *)args, lens, N, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    for (size_t i = 0; i < N; i++)
        if (args[i])
            memset(args[i], 0, lens[i]); /* copied */
    CU_ASSERT_EQUAL_FATAL(wait_all(m, 60), 0);
    size_t right = 0;
    for (size_t i = 0; i < N; i++) {
        const unsigned char *d;
        size_t len = 99;
        int st = pp_map_result(m, i, (const void **)&d, &len);
        int ok = st == PP_DONE && len == lens[i] && d && d[len] == 0 && ((uintptr_t)d & 15) == 0;
        for (size_t k = 0; ok && k < len; k++)
            ok = d[k] == (unsigned char)(i * 7 + k);
        right += ok;
    }
    CU_ASSERT_EQUAL(right, N);
    CU_ASSERT_EQUAL(pp_map_wait(m), 0);
    pp_map_free(m);
    /* One job per item when asked (batch 1), and an empty map. */
    m = pp_map_newv(s, t_echo, (const void *const *)args, lens, 50, &(pp_map_opts){.batch = 1});
    CU_ASSERT_PTR_NOT_NULL(m);
    CU_ASSERT(m && wait_all(m, 30) == 0);
    pp_map_free(m);
    m = pp_map_newv(s, t_echo, NULL, NULL, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    size_t i;
    CU_ASSERT_EQUAL(pp_map_size(m), 0);
    CU_ASSERT_EQUAL(pp_map_next(m, -1, &i), 0);
    CU_ASSERT_EQUAL(pp_map_wait(m), 0);
    pp_map_free(m);
    for (size_t k = 0; k < N; k++)
        free(args[k]);
    free(args);
    free(lens);
    pp_server_free(s);
}

/* ---- cancel and free ---- */

static void test_cancel_midway(void)
{
    pp_server *s = server(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    enum { N = 60 };
    int64_t ms[N];
    for (int i = 0; i < N; i++)
        ms[i] = 50;
    pp_map *m = pp_map_new(s, t_sleep8, ms, 8, N, &(pp_map_opts){.batch = 2});
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    size_t i;
    CU_ASSERT_EQUAL(pp_map_next(m, 10, &i), 1); /* some finished */
    sleep_s(0.2);
    long cancelled = pp_map_cancel(m);
    CU_ASSERT(cancelled > 0 && cancelled < N);
    double t0 = now_s();
    CU_ASSERT_EQUAL_FATAL(wait_all(m, 5), 0); /* callbacks run at once */
    CU_ASSERT(now_s() - t0 < 2);
    long ncancel = 0, ndone = 0;
    for (size_t k = 0; k < N; k++) {
        const void *d;
        size_t len;
        int st = pp_map_result(m, k, &d, &len);
        if (st == PP_DONE) {
            ndone++;
            CU_ASSERT(len == 8 && memcmp(d, &ms[k], 8) == 0);
        } else {
            CU_ASSERT_EQUAL(st, PP_CANCELLED);
            ncancel++;
        }
    }
    CU_ASSERT_EQUAL(ncancel, cancelled);
    CU_ASSERT(ndone >= 1);
    CU_ASSERT_EQUAL(pp_map_wait(m), ncancel);
    CU_ASSERT_EQUAL(pp_map_cancel(m), 0); /* nothing left */
    t0 = now_s();
    pp_map_free(m);
    CU_ASSERT(now_s() - t0 < 1);

    /* Freed while its items run: returns promptly, no worker left busy. */
    for (int k = 0; k < N; k++)
        ms[k] = 2000;
    m = pp_map_new(s, t_sleep8, ms, 8, N, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    sleep_s(0.2);
    t0 = now_s();
    pp_map_free(m);
    CU_ASSERT(now_s() - t0 < 2);
    int64_t one = 1;
    pp_job *j = pp_submit(s, t_sleep8, &one, 8, NULL);
    CU_ASSERT_EQUAL(pp_job_wait_for(j, 5), PP_DONE);
    pp_job_free(j);
    pp_server_free(s);
}

/* The map's jobs are in its group: pp_wait and pp_cancel_group see them. */
static void test_group(void)
{
    pp_server *s = server(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    int64_t ms[8] = {10, 10, 10, 10, 10, 10, 10, 10};
    pp_map *m = pp_map_new(s, t_sleep8, ms, 8, 8, &(pp_map_opts){.group = "g", .batch = 2});
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(pp_wait_for(s, "g", 10), 0);
    CU_ASSERT_EQUAL(pp_map_done(m), 8); /* callbacks returned: items recorded */
    pp_map_free(m);
    for (int i = 0; i < 8; i++)
        ms[i] = 5000;
    m = pp_map_new(s, t_sleep8, ms, 8, 8, &(pp_map_opts){.group = "g", .batch = 2});
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(pp_cancel_group(s, "g"), 4);
    CU_ASSERT_EQUAL_FATAL(wait_all(m, 5), 0);
    CU_ASSERT_EQUAL(pp_map_wait(m), 8);
    CU_ASSERT_EQUAL(pp_map_result(m, 3, NULL, NULL), PP_CANCELLED);
    pp_map_free(m);
    pp_server_free(s);
}

/* ---- from callbacks ---- */

typedef struct cb_ctx {
    _Atomic(pp_map *) m;
    atomic_int wait_rc, result_rc, next_rc, calls;
} cb_ctx;

/* The map, once the test has made it (at most 5 s). */
static pp_map *ctx_map(cb_ctx *c)
{
    double end = now_s() + 5;
    while (!atomic_load(&c->m) && now_s() < end)
        sleep_s(0.001);
    return atomic_load(&c->m);
}

static void probe_cb(pp_job *j, void *arg)
{
    (void)j;
    cb_ctx *c = arg;
    pp_map *m = ctx_map(c);
    size_t i;
    atomic_store(&c->wait_rc, (int)pp_map_wait(m));
    atomic_store(&c->result_rc, pp_map_result(m, 0, NULL, NULL));
    atomic_store(&c->next_rc, pp_map_next(m, 1, &i));
    atomic_fetch_add(&c->calls, 1);
}

static void free_cb(pp_job *j, void *arg)
{
    (void)j;
    cb_ctx *c = arg;
    pp_map_free(ctx_map(c)); /* its callbacks come later on this thread: deferred */
    atomic_fetch_add(&c->calls, 1);
}

static void test_from_callback(void)
{
    pp_server *s = server(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    cb_ctx c = {.m = NULL};
    /* The probe runs beside item 0 and is called back while it runs. */
    int64_t probe_ms = 200;
    pp_job *j = pp_submit(s, t_sleep8, &probe_ms, 8,
                          &(pp_submit_opts){.callback = probe_cb, .callback_arg = &c});
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    int64_t ms[4] = {1000, 1000, 1000, 1000};
    pp_map *m = pp_map_new(s, t_sleep8, ms, 8, 4, &(pp_map_opts){.batch = 1});
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    atomic_store(&c.m, m);
    CU_ASSERT_EQUAL(pp_job_wait_for(j, 10), PP_DONE);
    double end = now_s() + 10;
    while (atomic_load(&c.calls) < 1 && now_s() < end)
        sleep_s(0.01);
    CU_ASSERT_EQUAL(atomic_load(&c.wait_rc), -1);   /* would wait for itself */
    CU_ASSERT_EQUAL(atomic_load(&c.result_rc), -1); /* item 0 still runs */
    CU_ASSERT_EQUAL(atomic_load(&c.next_rc), -1);
    pp_job_free(j);
    /* pp_map_free from a callback: the map goes once its jobs let go. */
    int64_t zero = 0;
    j = pp_submit(s, t_sleep8, &zero, 8,
                  &(pp_submit_opts){.callback = free_cb, .callback_arg = &c, .priority = 1});
    CU_ASSERT_EQUAL(pp_job_wait_for(j, 10), PP_DONE);
    pp_job_free(j);
    CU_ASSERT_EQUAL(pp_wait_for(s, NULL, 10), 0); /* the map's jobs, cancelled */
    CU_ASSERT_EQUAL(atomic_load(&c.calls), 2);
    pp_server_free(s);
}

/* A map outlives its server: pp_server_free cancels what is left. */
static void test_server_freed_first(void)
{
    pp_server *s = server(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    int64_t ms[6] = {1, 1, 5000, 5000, 5000, 5000};
    pp_map *m = pp_map_new(s, t_sleep8, ms, 8, 6, &(pp_map_opts){.batch = 1});
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    size_t i;
    CU_ASSERT_EQUAL(pp_map_next(m, 5, &i), 1);
    pp_server_free(s);
    CU_ASSERT_EQUAL(pp_map_done(m), 6);
    CU_ASSERT_EQUAL(pp_map_result(m, 5, NULL, NULL), PP_CANCELLED);
    CU_ASSERT(pp_map_wait(m) >= 4);
    pp_map_free(m);
}

/* With max_pending, pp_map_new() waits for room as pp_submit() does: its
 * own batches' callbacks make it. */
static void test_max_pending(void)
{
    pp_server *s = pp_server_new(&(pp_config){.ncpus = 2, .max_pending = 3});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    enum { N = 20000 };
    int64_t *v = sq_items(N);
    pp_map *m = pp_map_new(s, t_sq8, v, 8, N, &(pp_map_opts){.batch = 100});
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT(pp_map_done(m) >= N - 300); /* it returned with at most 3 jobs left */
    CU_ASSERT_EQUAL_FATAL(wait_all(m, 60), 0);
    CU_ASSERT_EQUAL(count_squares(m, v), N);
    pp_map_free(m);
    free(v);
    pp_server_free(s);
}

/* ---- bad arguments ---- */

static void test_bad_arguments(void)
{
    pp_server *s = server(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    int64_t v[4] = {1, 2, 3, 4};
    CU_ASSERT_PTR_NULL(pp_map_new(NULL, t_sq8, v, 8, 4, NULL));
    CU_ASSERT_EQUAL(strncmp(pp_last_error(), "pp_map_new: ", 12), 0);
    CU_ASSERT_PTR_NULL(pp_map_new(s, NULL, v, 8, 4, NULL));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "task"));
    CU_ASSERT_PTR_NULL(pp_map_new(s, t_sq8, NULL, 8, 4, NULL));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "items is NULL"));
    CU_ASSERT_PTR_NULL(pp_map_new(s, t_sq8, v, 8, 4, &(pp_map_opts){.timeout = -1}));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "timeout"));
    CU_ASSERT_PTR_NULL(pp_map_new(s, t_sq8, v, 8, 4, &(pp_map_opts){.retries = -1}));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "retries"));
    CU_ASSERT_PTR_NULL(pp_map_new(s, t_hidden_task_pointer(), v, 8, 4, NULL));
    CU_ASSERT_EQUAL(strncmp(pp_last_error(), "pp_map_new: ", 12), 0);
    const void *args[2] = {v, NULL};
    size_t lens[2] = {8, 8};
    CU_ASSERT_PTR_NULL(pp_map_newv(s, t_sq8, args, lens, 2, NULL));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "pp_map_newv: args[1] is NULL"));
    CU_ASSERT_PTR_NULL(pp_map_newv(s, t_sq8, args, NULL, 2, NULL));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "lens"));
    size_t i;
    const void *d = &i;
    size_t len = 7;
    CU_ASSERT_EQUAL(pp_map_result(NULL, 0, &d, &len), -1);
    CU_ASSERT_PTR_NULL(d);
    CU_ASSERT_EQUAL(len, 0);
    CU_ASSERT_EQUAL(pp_map_next(NULL, 0, &i), -1);
    CU_ASSERT_EQUAL(pp_map_wait(NULL), -1);
    CU_ASSERT_EQUAL(pp_map_cancel(NULL), -1);
    CU_ASSERT_EQUAL(pp_map_done(NULL), 0);
    CU_ASSERT_EQUAL(pp_map_size(NULL), 0);
    pp_map_free(NULL);
    pp_map *m = pp_map_new(s, t_sq8, v, 8, 4, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(pp_map_result(m, 4, NULL, NULL), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "pp_map_result: item 4"));
    CU_ASSERT_EQUAL(pp_map_next(m, 0, NULL), -1);
    CU_ASSERT_EQUAL(wait_all(m, 10), 0);
    /* Items of the wrong size fail one by one with the task's text. */
    pp_map_free(m);
    m = pp_map_new(s, t_sq8, v, 4, 3, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(wait_all(m, 10), 0);
    CU_ASSERT_EQUAL(pp_map_result(m, 2, &d, NULL), PP_FAILED);
    CU_ASSERT_STRING_EQUAL(d, "want 8 bytes, got 4");
    pp_map_free(m);
    pp_server_free(s);
}

/* ---- tags ---- */

/* Waits up to 10 s until the client shows n entries, all up.  0 or -1. */
static int all_up(pp_server *s, pp_node_info *nodes, int n)
{
    double end = now_s() + 10;
    for (;;) {
        int k = pp_get_active_nodes(s, nodes, n), up = 0;
        for (int i = 0; i < k && i < n; i++)
            up += i == 0 || nodes[i].state == PP_NODE_UP;
        if (k == n && up == n)
            return 0;
        if (now_s() > end)
            return -1;
        sleep_s(0.01);
    }
}

/* pp_map_opts.tags: every job of the map runs on a backend with those
 * tags (a node started with --tag gpu), none on the untagged node or the
 * local workers; with batch 0 the batches are cut for the CPUs that have
 * the tags (2 here: 16 jobs of 20 items), not for all 6. */
static void test_tags(void)
{
    srv_harness a = {0}, b = {0};
    const char *const aargs[] = {"-w", "2", "--tag", "gpu", NULL};
    CU_ASSERT_EQUAL_FATAL(srv_start(&a, &(srv_opts){.args = aargs}), 0);
    const char *const bargs[] = {"-w", "2", NULL};
    int started = srv_start(&b, &(srv_opts){.args = bargs, .share_secret = &a});
    CU_ASSERT_EQUAL(started, 0);
    char na[64], nb[64];
    snprintf(na, sizeof na, "127.0.0.1:%d", a.port);
    snprintf(nb, sizeof nb, "127.0.0.1:%d", b.port);
    const char *list[] = {na, nb, NULL};
    pp_server *s = started ? NULL
                           : pp_server_new(&(pp_config){.ncpus = 2, .ppservers = list,
                                                         .secret = a.secret});
    pp_node_info nodes[3];
    if (s && all_up(s, nodes, 3) == 0) {
        enum { N = 320 };
        int64_t v[N] = {0};
        pp_map *m = pp_map_new(s, t_pid, v, 8, N, &(pp_map_opts){.tags = "gpu"});
        CU_ASSERT_PTR_NOT_NULL(m);
        int on_a = 0;
        if (m && wait_all(m, 60) == 0) {
            for (size_t i = 0; i < N; i++) {
                const void *d = NULL;
                size_t len = 0;
                long pid = 0;
                if (pp_map_result(m, i, &d, &len) == PP_DONE &&
                    pp_unpack(d, len, "l", &pid) == 0)
                    on_a += parent_of((int)pid) == (int)a.pid;
            }
        }
        CU_ASSERT_EQUAL(on_a, N);
        pp_map_free(m);
        CU_ASSERT_EQUAL(pp_get_active_nodes(s, nodes, 3), 3);
        const char *where[3] = {"local", "the gpu node", "the untagged node"};
        uint64_t want[3] = {0, N / 20, 0};
        for (int i = 0; i < 3; i++) {
            CU_ASSERT_EQUAL(nodes[i].jobs, want[i]);
            if (nodes[i].jobs != want[i])
                fprintf(stderr, "\n    %s ran %llu jobs, not %llu", where[i],
                        (unsigned long long)nodes[i].jobs, (unsigned long long)want[i]);
        }
        /* Tags that are not tags are refused before anything runs. */
        CU_ASSERT_PTR_NULL(pp_map_new(s, t_pid, v, 8, N, &(pp_map_opts){.tags = "a b"}));
        CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "pp_map_new: tags \"a b\""));
    } else {
        CU_FAIL("the client, or its nodes up within 10 s");
    }
    pp_server_free(s);
    srv_cleanup(&a);
    srv_cleanup(&b);
}

/* ---- a million ---- */

static void test_million(void)
{
    pp_server *s = server(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    enum { N = 1000000 };
    int64_t *v = sq_items(N);
    double t0 = now_s();
    pp_map *m = pp_map_new(s, t_sq8, v, 8, N, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL_FATAL(wait_all(m, 120), 0);
    double t1 = now_s();
    CU_ASSERT_EQUAL(count_squares(m, v), N);
    CU_ASSERT_EQUAL(pp_map_wait(m), 0);
    printf("\n    1,000,000 items in %.2f s ", t1 - t0);
    pp_map_free(m);
    free(v);
    pp_server_free(s);
}

int pp_register_suites(void)
{
    static const pp_test results[] = {
        {"input order, 10,000 items, local", test_input_order_local},
        {"input order, 10,000 items, through a ppserver", test_input_order_remote},
        {"tags: every batch on a node having them, batches cut for its CPUs", test_tags},
        {"variable-length items (pp_map_newv), zero-length included", test_newv},
        {"1,000,000 items of 8 bytes", test_million},
        {NULL, NULL}};
    static const pp_test faults[] = {
        {"failures per item", test_failures_per_item},
        {"a crashing item fails alone", test_crash_isolated},
        {"a hanging item times out alone", test_timeout_isolated},
        {"retries per item", test_retries_per_item},
        {NULL, NULL}};
    static const pp_test order[] = {
        {"pp_map_next: each index once, then 0; timeouts", test_next_each_once},
        {"pp_map_next from two threads", test_next_two_threads},
        {NULL, NULL}};
    static const pp_test control[] = {
        {"cancel midway, free midway", test_cancel_midway},
        {"the map's group", test_group},
        {"waits refused in callbacks, free from a callback", test_from_callback},
        {"the server freed first", test_server_freed_first},
        {"max_pending bounds the map's jobs", test_max_pending},
        {"NULL and invalid arguments", test_bad_arguments},
        {NULL, NULL}};
    if (pp_add_suite("map results", suite_init, suite_clean, results) ||
        pp_add_suite("map faults", suite_init, suite_clean, faults) ||
        pp_add_suite("map completion order", suite_init, suite_clean, order) ||
        pp_add_suite("map control", suite_init, suite_clean, control))
        return -1;
    return 0;
}
