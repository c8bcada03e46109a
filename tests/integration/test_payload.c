/* SPDX-License-Identifier: MIT */
/* test_payload.c -- large arguments and results (issue 15) through the
 * public API, with real ppworker processes and real ppserver nodes on
 * 127.0.0.1 (TLS and --no-tls):
 *  - sizes 0, 1, PP_SHM_MIN - 1, PP_SHM_MIN, PP_SHM_MIN + 1 and 256 MiB, in
 *    both directions, every byte checked against a pattern of size, seed
 *    and position that the task transforms (so that a buffer left from an
 *    earlier job never passes), and small/big mixed in one job;
 *  - a task dying while it writes a big result (SIGSEGV, abort, a timeout,
 *    pp_job_cancel): no half result, the next big job right, retries;
 *    nothing left behind (descriptors, mappings) after each;
 *  - 1,000 big jobs in a row: the client's RSS, descriptors and mappings,
 *    and ppserver's and the workers' descriptors stay flat;
 *  - a hostile task that attacks its worker's shared memory from a thread
 *    that outlives it (writes into every memfd mapping, shrinks or grows
 *    every memfd): the client and the node never crash, results are right
 *    or clearly failed, jobs on other workers unaffected; a thread that
 *    changes a typed result while the program unpacks it, or overwrites
 *    the NUL after a text result: no read or write out of bounds.
 * The zero-copy API (pp_shm_alloc & co.) has its suite in test_shm_api.c.
 *
 * Every wait is bounded.  A per-test teardown frees the clients and stops
 * the servers a test left, even after a fatal assertion, and fails the
 * test if a ppserver or its workers reported a sanitizer error. */
#include <CUnit/CUnit.h>
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <pp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client_util.h"
#include "payload_tasks.h"
#include "test_payload.h"
#include "test_util.h"

#define MIB (1024u * 1024u)

#if defined(__SANITIZE_ADDRESS__)
#define PL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PL_ASAN 1
#endif
#endif
#ifndef PL_ASAN
#define PL_ASAN 0
#endif

char pl_tmpdir[256];

/* ---- what a test leaves behind: freed by the per-test teardown ---- */

pp_server *pl_local(int ncpus)
{
    return cl_track(pp_server_new(&(pp_config){.ncpus = ncpus}));
}

srv_harness *pl_node(int no_tls, int workers)
{
    char w[16];
    snprintf(w, sizeof w, "%d", workers);
    const char *tls[] = {"-w", w, NULL}, *plain[] = {"-w", w, "--no-tls", NULL};
    return cl_server_start(&(srv_opts){.args = no_tls ? plain : tls});
}

pp_server *pl_node_client(srv_harness *h, int no_tls, int ncpus)
{
    pp_server *s = cl_nodes_client((pp_config){.ncpus = ncpus, .no_tls = no_tls}, &h, 1);
    if (!s)
        return NULL;
    pl_gen_arg g = {1, 1};
    pp_job *j = pp_submit(s, pl_gen, &g, sizeof g, NULL);
    int ok = j && pp_job_wait_for(j, 30) == PP_DONE;
    if (!ok)
        fprintf(stderr, "\n    the node ran no job: %s\n", j ? pp_job_error(j) : pp_last_error());
    pp_job_free(j);
    return ok ? s : NULL;
}

pp_server *pl_client(int where, int workers)
{
    if (where == PL_LOCAL) {
        pp_server *s = pl_local(workers);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        return s;
    }
    int no_tls = where == PL_NODE_PLAIN;
    srv_harness *h = pl_node(no_tls, workers);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    pp_server *s = pl_node_client(h, no_tls, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    return s;
}

static void test_teardown(void)
{
    cl_clients_free();
    cl_servers_end(cl_server_end);
}

static int suite_init(void)
{
    if (!pl_tmpdir[0] && tmpdir_make(pl_tmpdir, sizeof pl_tmpdir, "payload") != 0)
        return -1;
    setenv("TMPDIR", pl_tmpdir, 1); /* the workers' FIFO directories */
    signal(SIGPIPE, SIG_IGN);
    return getenv("PP_WORKER") && getenv("PP_SERVER") ? 0 : -1;
}

int pl_add_suite(const char *name, const pp_test *tests)
{
    return pp_add_suite_with(name, suite_init, NULL, NULL, test_teardown, tests);
}

/* ---- payloads ---- */

uint8_t *pl_payload(size_t size, uint64_t seed)
{
    uint8_t *p = malloc(size ? size : 1);
    if (p)
        pl_pattern(p, 0, size, size, seed);
    return p;
}

int pl_check(const void *p, size_t len, uint64_t off, uint64_t size, uint64_t seed,
             uint8_t key, const char *what)
{
    static uint8_t want[64 * 1024];
    const uint8_t *got = p;
    for (size_t at = 0; at < len; at += sizeof want) {
        size_t n = len - at < sizeof want ? len - at : sizeof want;
        pl_pattern(want, off + at, n, size, seed);
        for (size_t i = 0; i < n; i++)
            want[i] ^= key;
        if (memcmp(want, got + at, n) == 0)
            continue;
        size_t i = 0;
        while (want[i] == got[at + i])
            i++;
        if (what)
                fprintf(stderr, "\n    %s: byte %zu of %zu is 0x%02x, not 0x%02x\n", what, at + i,
                    len, got[at + i], want[i]);
        return 0;
    }
    return 1;
}

int pl_job_is(pp_job *j, double limit, size_t len, uint64_t off, uint64_t size, uint64_t seed,
              uint8_t key, const char *what)
{
    if (!j) {
        fprintf(stderr, "\n    %s: not submitted: %s\n", what, pp_last_error());
        return 0;
    }
    int st = pp_job_wait_for(j, limit);
    if (st != PP_DONE) {
        fprintf(stderr, "\n    %s: %s: %s\n", what, pp_strerror(st), pp_job_error(j));
        return 0;
    }
    size_t got = 0;
    const void *r = pp_job_result(j, &got);
    if (!r || got != len) {
        fprintf(stderr, "\n    %s: %zu bytes, not %zu\n", what, got, len);
        return 0;
    }
    return pl_check(r, len, off, size, seed, key, what);
}

/* ---- what a process holds ---- */

long pl_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    return dir_entries(path);
}

/* Under the sanitizers anonymous mappings come and go with the
 * allocator's quarantine (each large block is a mapping of its own): only
 * the mappings of files and memfds are counted there. */
long pl_maps(pid_t pid)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return -1;
    long n = 0;
    while (fgets(line, sizeof line, fp)) {
        int named = strchr(line, '/') != NULL;
        n += !PL_ASAN || named;
        while (!strchr(line, '\n') && fgets(line, sizeof line, fp)) {
        }
    }
    fclose(fp);
    return n;
}

/* The ppid of process `id` when its name is "ppworker", else -1. */
static int worker_parent(const char *id)
{
    char name[64];
    int ppid;
    if (proc_stat(id, name, sizeof name, &ppid) != 0 || strcmp(name, "ppworker") != 0)
        return -1;
    return ppid;
}

long pl_worker_fds(pid_t parent)
{
    DIR *d = opendir("/proc");
    if (!d)
        return -1;
    long sum = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9' || worker_parent(e->d_name) != parent)
            continue;
        long n = pl_fds((pid_t)atoi(e->d_name));
        sum += n > 0 ? n : 0;
    }
    closedir(d);
    return sum;
}

/* ---- 1. sizes ---- */

static const size_t edge_sizes[] = {0,          1, PP_SHM_MIN - 1, PP_SHM_MIN, PP_SHM_MIN + 1,
                                    PP_SHM_MIN, 1, 0,              PP_SHM_MIN - 1, PP_SHM_MIN + 1};
#define NEDGE (sizeof edge_sizes / sizeof edge_sizes[0])

/* The argument (size, seed) through pl_xor: 1 when the result is right. */
static int xor_trip(pp_server *s, size_t size, uint64_t seed, double limit, const char *what)
{
    uint8_t *arg = pl_payload(size, seed);
    if (!arg)
        return 0;
    pp_job *j = pp_submit(s, pl_xor, arg, size, NULL);
    free(arg); /* pp_submit copied it */
    int ok = pl_job_is(j, limit, size, 0, size, seed, PL_XOR_KEY, what);
    pp_job_free(j);
    return ok;
}

/* A 16-byte argument, a result of n bytes. */
static int gen_trip(pp_server *s, size_t n, uint64_t seed, double limit, const char *what)
{
    pl_gen_arg g = {n, seed};
    pp_job *j = pp_submit(s, pl_gen, &g, sizeof g, NULL);
    int ok = pl_job_is(j, limit, n, 0, n, seed, 0, what);
    pp_job_free(j);
    return ok;
}

/* An argument of n bytes, a 16-byte result. */
static int sum_trip(pp_server *s, size_t n, uint64_t seed, double limit, const char *what)
{
    uint8_t *arg = pl_payload(n, seed);
    if (!arg)
        return 0;
    pl_sum_res want = {n, pl_hash(arg, n)};
    pp_job *j = pp_submit(s, pl_sum, arg, n, NULL);
    free(arg);
    size_t len = 0;
    const pl_sum_res *r = j && pp_job_wait_for(j, limit) == PP_DONE ? pp_job_result(j, &len) : NULL;
    int ok = r && len == sizeof want && r->len == want.len && r->hash == want.hash;
    if (!ok)
        fprintf(stderr, "\n    %s: %s\n", what, j ? pp_job_error(j) : pp_last_error());
    pp_job_free(j);
    return ok;
}

/* Every edge size each way, in an order that puts each size after a
 * larger and a smaller one; then a small argument with an 8 MiB result and
 * an 8 MiB argument with a small result. */
static void sizes_through(pp_server *s)
{
    for (size_t i = 0; i < NEDGE; i++) {
        char what[96];
        size_t n = edge_sizes[i];
        snprintf(what, sizeof what, "argument and result of %zu bytes", n);
        CU_ASSERT(xor_trip(s, n, 100 + i, 60, what));
        snprintf(what, sizeof what, "small argument, result of %zu bytes", n);
        CU_ASSERT(gen_trip(s, n, 200 + i, 60, what));
        snprintf(what, sizeof what, "argument of %zu bytes, small result", n);
        CU_ASSERT(sum_trip(s, n, 300 + i, 60, what));
    }
    CU_ASSERT(gen_trip(s, 8 * MIB, 400, 60, "16-byte argument, 8 MiB result"));
    CU_ASSERT(sum_trip(s, 8 * MIB, 401, 60, "8 MiB argument, 16-byte result"));
    CU_ASSERT(xor_trip(s, 8 * MIB + 1, 402, 60, "8 MiB + 1 each way"));
    CU_ASSERT(xor_trip(s, 3, 403, 60, "3 bytes after 8 MiB"));
}

static void test_sizes_local(void)
{
    sizes_through(pl_client(PL_LOCAL, 2));
}

static void test_sizes_node_tls(void)
{
    sizes_through(pl_client(PL_NODE_TLS, 2));
}

static void test_sizes_node_plain(void)
{
    sizes_through(pl_client(PL_NODE_PLAIN, 2));
}

/* Big jobs queued behind a long one on a pool of two: the pool pipelines
 * some behind it and takes them back when the other worker is free; every
 * result right, whichever worker ran it. */
static void test_taken_back(void)
{
    pp_server *s = pl_local(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    uint64_t ms = 1500;
    pp_job *slow = pp_submit(s, pl_sleep, &ms, sizeof ms, NULL);
    enum { N = 24 };
    pp_job *jobs[N];
    for (int k = 0; k < N; k++) {
        size_t n = PP_SHM_MIN + (size_t)k * 40000;
        uint8_t *arg = pl_payload(n, 700 + (uint64_t)k);
        jobs[k] = arg ? pp_submit(s, pl_xor, arg, n, NULL) : NULL;
        free(arg);
    }
    for (int k = 0; k < N; k++) {
        size_t n = PP_SHM_MIN + (size_t)k * 40000;
        CU_ASSERT(pl_job_is(jobs[k], 60, n, 0, n, 700 + (uint64_t)k, PL_XOR_KEY,
                            "a big job queued behind a long one"));
        pp_job_free(jobs[k]);
    }
    CU_ASSERT_EQUAL(pp_job_wait_for(slow, 60), PP_DONE);
    pp_job_free(slow);
}

/* One 256 MiB round trip (256 MiB each way), timed for the output. */
static void big_trip(pp_server *s, const char *path)
{
    double t0 = now_s();
    char what[96];
    snprintf(what, sizeof what, "256 MiB each way, %s", path);
    CU_ASSERT(xor_trip(s, 256 * MIB, 500, 240, what));
    fprintf(stderr, "[256 MiB each way %s: %.1f s] ", path, now_s() - t0);
}

static void test_256_local(void)
{
    big_trip(pl_client(PL_LOCAL, 1), "locally");
}

static void test_256_node_tls(void)
{
    big_trip(pl_client(PL_NODE_TLS, 1), "through a node (TLS)");
}

static void test_256_node_plain(void)
{
    big_trip(pl_client(PL_NODE_PLAIN, 1), "through a node (--no-tls)");
}

/* ---- 2. dying while writing a big result ---- */

#define DIE_BYTES (32 * MIB)
enum { DIE_SEGV, DIE_ABORT, DIE_TIMEOUT, DIE_CANCEL, DIE_KILL };

/* A fresh path in the private directory (nothing there yet). */
static const char *tpath(char *buf, size_t n, const char *name)
{
    static atomic_int seq;
    snprintf(buf, n, "%s/%s-%d", pl_tmpdir, name, atomic_fetch_add(&seq, 1));
    unlink(buf);
    return buf;
}

/* Waits at most `limit` seconds for a file to exist; 1 when it does. */
static int file_wait(const char *path, double limit)
{
    double end = now_s() + limit;
    while (access(path, F_OK) != 0) {
        if (now_s() > end)
            return 0;
        sleep_s(0.01);
    }
    return 1;
}

/* The pid a task wrote into a file, waiting for it at most `limit` s. */
static long read_pid(const char *path, double limit)
{
    if (!file_wait(path, limit))
        return -1;
    char *t = srv_slurp(path, NULL);
    long pid = t ? strtol(t, NULL, 10) : -1;
    free(t);
    return pid;
}

/* The job ended `want`, shows no result at all (pp_job_result NULL and
 * length 0) and an error text that is not the half-written bytes. */
static void no_half_result(pp_job *j, int want, const char *sig)
{
    int st = pp_job_wait_for(j, 60);
    CU_ASSERT_EQUAL(st, want);
    if (st != want)
        fprintf(stderr, "\n    ended %s, not %s: %s\n", pp_strerror(st), pp_strerror(want),
                pp_job_error(j));
    if (st == PP_PENDING)
        return; /* pp_job_result() would wait on */
    size_t len = 99;
    CU_ASSERT_PTR_NULL(pp_job_result(j, &len));
    CU_ASSERT_EQUAL(len, 0);
    const char *e = pp_job_error(j);
    CU_ASSERT(strlen(e) < 1024);
    if (sig)
        CU_ASSERT_PTR_NOT_NULL(strstr(e, sig));
}

/* One job that dies as `how` says after appending DIE_BYTES. */
static void die_once(pp_server *s, int how)
{
    static const char *sigs[] = {"SIGSEGV", "SIGABRT", NULL, NULL, "SIGKILL"};
    static const int want[] = {PP_CRASHED, PP_CRASHED, PP_TIMEOUT, PP_CANCELLED, PP_CRASHED};
    char marker[320] = "";
    if (how == DIE_CANCEL || how == DIE_KILL)
        tpath(marker, sizeof marker, "mid-write");
    pp_submit_opts o = {.timeout = how == DIE_TIMEOUT ? 2.0 : 0};
    pp_job *j = pp_submitf(s, pl_die, &o, "lls", (long)DIE_BYTES,
                           (long)(how == DIE_ABORT ? 1 : how == DIE_SEGV ? 0 : 2), marker);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    if (how == DIE_CANCEL) {
        CU_ASSERT(file_wait(marker, 60));
        CU_ASSERT_EQUAL(pp_job_cancel(j), 0);
    } else if (how == DIE_KILL) {
        long pid = read_pid(marker, 60);
        CU_ASSERT(pid > 0 && kill((pid_t)pid, SIGKILL) == 0);
    }
    no_half_result(j, want[how], sigs[how]);
    pp_job_free(j);
}

/* The jobs after a death: big results right, from a replaced worker. */
static void after_death(pp_server *s, uint64_t seed)
{
    CU_ASSERT(gen_trip(s, DIE_BYTES, seed, 60, "32 MiB result after a death"));
    CU_ASSERT(xor_trip(s, 2 * MIB, seed + 1, 60, "2 MiB each way after a death"));
    CU_ASSERT(gen_trip(s, PP_SHM_MIN + 1, seed + 2, 60, "PP_SHM_MIN + 1 after a death"));
}

/* Rounds of each death, measured after DEATH_WARM rounds (the buffer
 * caches then hold what this workload leaves them, dead workers' buffers
 * included: they fill up to their bound over the first few deaths);
 * leaking one descriptor or mapping per death shows above the slack (a
 * few for descriptors the library opens lazily). */
#define DEATH_WARM 6
#define DEATH_ROUNDS 4
#define DEATH_SLACK 3

static void death_rounds(pp_server *s, int rounds, const int *hows, int nhows, uint64_t seed)
{
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < nhows; k++) {
            die_once(s, hows[k]);
            after_death(s, seed + (uint64_t)(r * 10 + k) * 3);
        }
}

static void deaths(pp_server *s, pid_t server_pid, const int *hows, int nhows)
{
    death_rounds(s, DEATH_WARM, hows, nhows, 1000);
    long fds0 = pl_fds(getpid()), maps0 = pl_maps(getpid());
    long sfds0 = server_pid > 0 ? pl_fds(server_pid) : 0;
    death_rounds(s, DEATH_ROUNDS, hows, nhows, 2000);
    long fds1 = pl_fds(getpid()), maps1 = pl_maps(getpid());
    long sfds1 = server_pid > 0 ? pl_fds(server_pid) : 0;
    fprintf(stderr, "[client fds %ld -> %ld, maps %ld -> %ld; node fds %ld -> %ld] ", fds0, fds1,
            maps0, maps1, sfds0, sfds1);
    CU_ASSERT(fds1 <= fds0 + DEATH_SLACK);
    /* A buffer is two mappings: its memfd, and the page of zeros after it. */
    CU_ASSERT(maps1 <= maps0 + 2 * DEATH_SLACK);
    CU_ASSERT(sfds1 <= sfds0 + DEATH_SLACK);
}

static void test_crash_mid_write(void)
{
    deaths(pl_client(PL_LOCAL, 1), 0, (const int[]){DIE_SEGV, DIE_ABORT, DIE_KILL}, 3);
}

static void test_timeout_mid_write(void)
{
    deaths(pl_client(PL_LOCAL, 1), 0, (const int[]){DIE_TIMEOUT}, 1);
}

static void test_cancel_mid_write(void)
{
    deaths(pl_client(PL_LOCAL, 1), 0, (const int[]){DIE_CANCEL}, 1);
}

static void test_deaths_node(void)
{
    srv_harness *h = pl_node(0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    pp_server *s = pl_node_client(h, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    deaths(s, h->pid, (const int[]){DIE_SEGV, DIE_TIMEOUT, DIE_CANCEL}, 3);
}

/* A big job that crashes on its first run (after writing half its result)
 * and succeeds on its retry: the result is the second run's, whole. */
static void retried(pp_server *s)
{
    for (int k = 0; k < 3; k++) {
        char marker[320];
        tpath(marker, sizeof marker, "once");
        size_t n = (size_t)(16 * MIB) + (size_t)k;
        pp_job *j = pp_submitf(s, pl_once, &(pp_submit_opts){.retries = 1}, "lls", (long)n,
                               (long)(600 + k), marker);
        CU_ASSERT(pl_job_is(j, 60, n, 0, n, 600 + (uint64_t)k, 0, "16 MiB retried after a crash"));
        pp_job_free(j);
    }
}

static void test_retry_mid_write(void)
{
    retried(pl_client(PL_LOCAL, 1));
}

static void test_retry_mid_write_node(void)
{
    retried(pl_client(PL_NODE_TLS, 1));
}

/* ---- 3. many big jobs in a row ---- */

/* 1 MiB each way per job, 4 in flight. */
#define STEADY_BYTES MIB
#define STEADY_WARM 100
#define STEADY_JOBS 1000
#define STEADY_WINDOW 4

typedef struct usage {
    long rss_kb, fds, maps, wfds;       /* the client; its local workers */
    long srv_rss_kb, srv_fds, srv_wfds; /* the node and its workers */
} usage;

/* The workers hold a bounded set of shared buffers while jobs come, and
 * let them go after 2 s without a large job: their descriptors are
 * compared once idle, the rest at once. */
#define IDLE_SECONDS 3.0

static usage measure(pid_t server_pid)
{
    usage u = {srv_status_kb(getpid(), "VmRSS"), pl_fds(getpid()), pl_maps(getpid()), 0,
               0, 0, 0};
    if (server_pid > 0) {
        u.srv_rss_kb = srv_status_kb(server_pid, "VmRSS");
        u.srv_fds = pl_fds(server_pid);
    }
    sleep_s(IDLE_SECONDS);
    u.wfds = pl_worker_fds(getpid());
    if (server_pid > 0)
        u.srv_wfds = pl_worker_fds(server_pid);
    return u;
}

/* Waits for the oldest job of the window and checks it; 1 when right. */
static int steady_reap(pp_job **win, uint64_t *seeds, int *n)
{
    char what[64];
    snprintf(what, sizeof what, "job %llu of the row", (unsigned long long)seeds[0]);
    int ok = pl_job_is(win[0], 60, STEADY_BYTES, 0, STEADY_BYTES, seeds[0], PL_XOR_KEY, what);
    pp_job_free(win[0]);
    memmove(win, win + 1, (size_t)(*n - 1) * sizeof *win);
    memmove(seeds, seeds + 1, (size_t)(*n - 1) * sizeof *seeds);
    (*n)--;
    return ok;
}

/* Runs `jobs` 1 MiB jobs through s; the usage after STEADY_WARM of them
 * (the window drained) in *warm and at the end in *end.  Returns the jobs
 * that were not right. */
static int steady_run(pp_server *s, pid_t server_pid, int jobs, usage *warm, usage *end)
{
    uint8_t *arg = malloc(STEADY_BYTES);
    if (!arg)
        return jobs;
    pp_job *win[STEADY_WINDOW];
    uint64_t seeds[STEADY_WINDOW];
    int n = 0, bad = 0;
    for (int k = 0; k < jobs; k++) {
        if (k == STEADY_WARM) {
            while (n > 0)
                bad += !steady_reap(win, seeds, &n);
            *warm = measure(server_pid);
        }
        pl_pattern(arg, 0, STEADY_BYTES, STEADY_BYTES, (uint64_t)k);
        win[n] = pp_submit(s, pl_xor, arg, STEADY_BYTES, NULL);
        seeds[n++] = (uint64_t)k;
        if (n == STEADY_WINDOW)
            bad += !steady_reap(win, seeds, &n);
    }
    while (n > 0)
        bad += !steady_reap(win, seeds, &n);
    *end = measure(server_pid);
    free(arg);
    return bad;
}

/* The bounds: a few descriptors the library or node may open lazily (a log
 * reopened, a name lookup); 16 mappings and 16 MiB for the allocator's
 * arenas settling (glibc keeps freed blocks up to its trim threshold per
 * arena, one arena per thread that allocated) and the buffer caches
 * holding the sizes of this workload once more.  A leak of one descriptor,
 * mapping or 1 MiB buffer per job is hundreds above these.  Under the
 * sanitizers freed memory sits in a quarantine of up to 256 MiB that fills
 * as it likes: RSS is not compared there. */
#define SLACK_FDS 8
#define SLACK_MAPS 16
#define SLACK_RSS_KB (16 * 1024)

static void steady_check(const usage *a, const usage *b, int node)
{
    fprintf(stderr,
            "\n    after %d jobs -> at the end: client RSS %ld -> %ld kB, fds %ld -> %ld, "
            "maps %ld -> %ld, workers' fds (idle) %ld -> %ld",
            STEADY_WARM, a->rss_kb, b->rss_kb, a->fds, b->fds, a->maps, b->maps, a->wfds, b->wfds);
    if (node)
        fprintf(stderr, "; ppserver RSS %ld -> %ld kB, fds %ld -> %ld, its workers' fds (idle) "
                        "%ld -> %ld",
                a->srv_rss_kb, b->srv_rss_kb, a->srv_fds, b->srv_fds, a->srv_wfds, b->srv_wfds);
    fprintf(stderr, "\n");
    CU_ASSERT(b->fds <= a->fds + SLACK_FDS);
    CU_ASSERT(b->maps <= a->maps + SLACK_MAPS);
    CU_ASSERT(b->wfds <= a->wfds + SLACK_FDS);
    CU_ASSERT(PL_ASAN || b->rss_kb <= a->rss_kb + SLACK_RSS_KB);
    if (node) {
        CU_ASSERT(b->srv_fds <= a->srv_fds + SLACK_FDS);
        CU_ASSERT(b->srv_wfds <= a->srv_wfds + SLACK_FDS);
        CU_ASSERT(PL_ASAN || b->srv_rss_kb <= a->srv_rss_kb + SLACK_RSS_KB);
    }
}

static void test_steady_local(void)
{
    pp_server *s = pl_local(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    usage a, b;
    double t0 = now_s();
    CU_ASSERT_EQUAL(steady_run(s, 0, STEADY_JOBS, &a, &b), 0);
    fprintf(stderr, "    %d jobs of 1 MiB each way locally in %.1f s%s", STEADY_JOBS,
            now_s() - t0, PL_ASAN ? " (RSS not compared under the sanitizers)" : "");
    steady_check(&a, &b, 0);
}

static void test_steady_node(void)
{
    srv_harness *h = pl_node(0, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    pp_server *s = pl_node_client(h, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    usage a, b;
    double t0 = now_s();
    CU_ASSERT_EQUAL(steady_run(s, h->pid, STEADY_JOBS, &a, &b), 0);
    fprintf(stderr, "    %d jobs of 1 MiB each way through a node in %.1f s%s", STEADY_JOBS,
            now_s() - t0, PL_ASAN ? " (RSS not compared under the sanitizers)" : "");
    steady_check(&a, &b, 1);
    CU_ASSERT(srv_alive(h));
}

/* ---- 5. a hostile task ---- */

#define HOSTILE_BYTES (4 * MIB)


/* 1 while the hostile thread may run: its end file is not there and its
 * worker is alive. */
static int hostile_on(const char *end, long pid)
{
    return access(end, F_OK) != 0 && pid > 0 && kill((pid_t)pid, 0) == 0;
}

/* Jobs beside the hostile one while its thread runs: a job that sleeps
 * takes one worker (and says which), 1 MiB jobs of client `by` one at a
 * time take the other.  Jobs the hostile worker ran may be anything but a
 * crash of the client (it can write into its own jobs); those of the other
 * worker must be right.  Returns how many of those were not; *on_hostile
 * counts the jobs the hostile worker ran. */
static int bystanders(pp_server *s, pp_server *by, long hostile_pid, const char *end,
                      int *on_hostile)
{
    uint64_t ms = (uint64_t)(PL_HOSTILE_SECONDS * 1000) + 1000;
    pp_job *sleeper = pp_submit(s, pl_sleep, &ms, sizeof ms, NULL);
    uint8_t *arg = pl_payload(MIB, 77);
    int wrong = 0, ran = 0;
    char first[160] = "";
    double stop = now_s() + PL_HOSTILE_SECONDS + 30;
    for (int k = 0; arg && sleeper && pp_job_status(sleeper) == PP_PENDING &&
                    hostile_on(end, hostile_pid) && now_s() < stop && k < 2000;
         k++) {
        pp_job *j = pp_submit(by, pl_xor, arg, MIB, NULL);
        int st = j ? pp_job_wait_for(j, 60) : -1;
        size_t len = 0;
        const uint8_t *r = st == PP_DONE ? pp_job_result(j, &len) : NULL;
        if (!r || len != MIB || !pl_check(r, MIB, 0, MIB, 77, PL_XOR_KEY, NULL)) {
            if (!wrong && r)
                snprintf(first, sizeof first, "job %d: done, %zu bytes, the first 0x%02x", k,
                         len, len ? r[0] : 0);
            else if (!wrong)
                snprintf(first, sizeof first, "job %d: %s: %.80s", k,
                         st < 0 ? "not submitted" : pp_strerror(st), j ? pp_job_error(j) : "");
            wrong++;
        }
        ran++;
        pp_job_free(j);
    }
    free(arg);
    /* Where the sleeper ran: done elsewhere, the other jobs ran on the
     * hostile worker; else (on it, or killed with it) they did not. */
    size_t len = 0;
    const uint64_t *pid = sleeper && pp_job_wait_for(sleeper, 60) == PP_DONE
                              ? pp_job_result(sleeper, &len) : NULL;
    int elsewhere = pid && len == 8 && (long)*pid != hostile_pid;
    pp_job_free(sleeper);
    if (elsewhere) {
        *on_hostile += ran;
        return 0;
    }
    if (wrong)
        fprintf(stderr, "\n    %d of %d jobs on another worker than the hostile one were not "
                "right; the first, %s\n", wrong, ran, first);
    return wrong;
}

/* Waits (bounded) until the hostile thread is done or its worker gone. */
static int hostile_wait(const char *end, long pid, double limit)
{
    double stop = now_s() + limit;
    while (hostile_on(end, pid)) {
        if (now_s() > stop)
            return 0;
        sleep_s(0.01);
    }
    return 1;
}

/* One hostile job (mode), its result read at once and again after its
 * thread ended; jobs beside it; then jobs that must all be right. */
static void hostile_round(pp_server *s, pp_server *by, int mode, uint64_t seed)
{
    char pidfile[320], end[340];
    tpath(pidfile, sizeof pidfile, "hostile");
    snprintf(end, sizeof end, "%s.end", pidfile);
    pp_job *j = pp_submitf(s, pl_hostile, NULL, "llls", (long)HOSTILE_BYTES, (long)seed,
                           (long)mode, pidfile);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    int st = pp_job_wait_for(j, 60);
    size_t len = 0;
    const uint8_t *r = st == PP_DONE ? pp_job_result(j, &len) : NULL;
    int first = r && len == HOSTILE_BYTES &&
                pl_check(r, len, 0, HOSTILE_BYTES, seed, 0, "the hostile job's result");
    /* Right, or a clear failure: never PP_DONE with wrong bytes. */
    CU_ASSERT(st != PP_DONE || first);
    long pid = read_pid(pidfile, 30);
    int on_hostile = 0;
    CU_ASSERT_EQUAL(bystanders(s, by, pid, end, &on_hostile), 0);
    CU_ASSERT(hostile_wait(end, pid, 30));
    /* Its own result is not re-checked: the program reads it where its
     * worker wrote it, and a task that leaves a thread behind can change
     * its own output (README, "Large data"); only what other jobs see is
     * guarded.  Reading it must not crash the program, whatever it holds. */
    if (r) {
        volatile uint8_t sum = 0;
        for (size_t k = 0; k < len; k += 4096)
            sum ^= r[k];
        (void)sum;
    }
    fprintf(stderr, "[mode %d: %s; the jobs beside it ran on %s worker%s] ", mode,
            pp_strerror(st), on_hostile ? "its" : "another",
            access(end, F_OK) == 0 ? "" : "; it died");
    pp_job_free(j);
    /* The thread is gone: every buffer it touched must be right again, or
     * never handed out again. */
    for (int k = 0; k < 8; k++) {
        uint64_t sd = seed + 10 + (uint64_t)k * 2;
        CU_ASSERT(xor_trip(s, MIB + (size_t)k, sd, 60, "a job after the attack"));
        CU_ASSERT(gen_trip(s, HOSTILE_BYTES, sd + 1, 60, "a job after the attack"));
    }
}

static void hostile_all(pp_server *s, pp_server *by)
{
    static const int modes[] = {PL_SCRIBBLE, PL_SHRINK, PL_GROW, PL_SCRIBBLE | PL_GROW};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        hostile_round(s, by, modes[i], 900 + i * 100);
}

static void test_hostile_local(void)
{
    pp_server *s = pl_client(PL_LOCAL, 2);
    hostile_all(s, s);
}

/* On a node the jobs beside the hostile one are another client's: its
 * connection must never drop (the node blaming it for bytes a task
 * changed) nor see a frame error. */
static void test_hostile_node(void)
{
    srv_harness *h = pl_node(0, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    pp_server *s = pl_node_client(h, 0, 0), *by = pl_node_client(h, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(by);
    hostile_all(s, by);
    CU_ASSERT(srv_alive(h));
    pp_node_info ni[2];
    CU_ASSERT_EQUAL_FATAL(pp_get_active_nodes(by, ni, 2), 2);
    fprintf(stderr, "[the other client: drops %llu, frame errors %llu, re-queued %llu] ",
            (unsigned long long)ni[1].drops, (unsigned long long)ni[1].frame_errors,
            (unsigned long long)ni[1].requeued);
    CU_ASSERT_EQUAL(ni[1].drops, 0);
    CU_ASSERT_EQUAL(ni[1].frame_errors, 0);
}

/* A typed result read where its worker wrote it, while a thread the task
 * left flips an array's count there: pp_job_unpack() may fail (the data
 * changed) or give the values, but never an array shorter than the count
 * it gives.  It used to allocate by the count read once and fill by the
 * count read again: a heap overflow in the program, of the task's bytes. */
static void test_typed_flip(void)
{
    pp_server *s = pl_client(PL_LOCAL, 1);
    long ms = 1500;
    pp_job *first = pp_submitf(s, pl_flip, NULL, "l", 0L); /* its results are large */
    CU_ASSERT_FATAL(first && pp_job_wait_for(first, 60) == PP_DONE);
    pp_job_free(first);
    pp_job *j = pp_submitf(s, pl_flip, NULL, "l", ms);
    CU_ASSERT_FATAL(j && pp_job_wait_for(j, 60) == PP_DONE);
    size_t rlen = 0;
    const uint8_t *r = pp_job_result(j, &rlen);
    int right = 0, refused = 0, short_array = 0, other = 0;
    double stop = now_s() + (double)ms / 1000 - 0.2;
    for (int k = 0; k < 1000000 && now_s() < stop; k++) {
        long *longs = NULL;
        size_t n = 0, bn = 0;
        const uint8_t *b = NULL;
        if (pp_job_unpack(j, "Lb", &longs, &n, &b, &bn) != 0) {
            refused++;
            continue;
        }
        if (!longs || malloc_usable_size(longs) < n * sizeof *longs)
            short_array++;
        else if (n == PL_FLIP_COUNT && longs[0] == 1 && bn == PL_FLIP_BLOB && b > r &&
                 b + bn <= r + rlen)
            right++;
        else
            other++; /* the task's bytes as they were then: its own result */
        free(longs);
    }
    fprintf(stderr, "[%d unpacked right, %d refused, %d read as changed, %d too short] ",
            right, refused, other, short_array);
    CU_ASSERT_EQUAL(short_array, 0);
    CU_ASSERT(right > 0);
    pp_job_free(j);
}

/* The end of the mapping of this process that p lies in, or 0. */
static uintptr_t mapping_end(const void *p)
{
    FILE *fp = fopen("/proc/self/maps", "r");
    char line[512];
    uintptr_t end = 0;
    while (fp && !end && fgets(line, sizeof line, fp)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && (uintptr_t)p >= lo && (uintptr_t)p < hi)
            end = hi;
    }
    if (fp)
        fclose(fp);
    return end;
}

/* Whether a read-only page of anonymous memory (zeros) begins at addr. */
static int zeros_at(uintptr_t addr)
{
    FILE *fp = fopen("/proc/self/maps", "r");
    char line[512];
    int found = 0;
    while (fp && !found && fgets(line, sizeof line, fp)) {
        unsigned long lo, hi, inode;
        char perms[8];
        int at = 0;
        found = sscanf(line, "%lx-%lx %7s %*s %*s %lu%n", &lo, &hi, perms, &inode, &at) == 4 &&
                lo == addr && strcmp(perms, "r--p") == 0 && inode == 0 &&
                strspn(line + at, " \n") == strlen(line + at);
    }
    if (fp)
        fclose(fp);
    return found && *(const volatile char *)addr == 0;
}

/* A text result whose task left a thread writing over the NUL the library
 * keeps after it, and over the rest of its buffer: strlen() on it, as
 * pp_job_result() allows, must end within the program's mapping of the
 * buffer or on the page of zeros after it.  It used to read on past the
 * mapping, into whatever lay beyond, or fault. */
static void test_unterminated(void)
{
    pp_server *s = pl_client(PL_LOCAL, 1);
    pp_job *first = pp_submitf(s, pl_unterminated, NULL, "l", 0L); /* its results are large */
    CU_ASSERT_FATAL(first && pp_job_wait_for(first, 60) == PP_DONE);
    pp_job_free(first);
    pp_job *j = pp_submitf(s, pl_unterminated, NULL, "l", 1000L);
    CU_ASSERT_FATAL(j && pp_job_wait_for(j, 60) == PP_DONE);
    size_t len = 0;
    const char *r = pp_job_result(j, &len);
    CU_ASSERT_FATAL(r && len == PL_UNTERMINATED_LEN);
    uintptr_t end = mapping_end(r);
    CU_ASSERT_FATAL(end > (uintptr_t)r);
    CU_ASSERT_FATAL(zeros_at(end)); /* else strlen() below may read on, or fault */
    sleep_s(0.3); /* the thread has written over the NUL by now */
    size_t n = strlen(r);
    fprintf(stderr, "[strlen %zu; the result %zu bytes, its mapping %zu] ", n, len,
            (size_t)(end - (uintptr_t)r));
    CU_ASSERT(n >= len);
    CU_ASSERT(n <= (size_t)(end - (uintptr_t)r));
    pp_job_free(j);
}

static void remove_tmpdir(void)
{
    if (pl_tmpdir[0] && rm_tree(pl_tmpdir) != 0)
        fprintf(stderr, "could not remove %s\n", pl_tmpdir);
}

int pp_register_suites(void)
{
    atexit(remove_tmpdir);
    static const pp_test sizes[] = {
        {"edge sizes each way, locally", test_sizes_local},
        {"edge sizes each way, through a node (TLS)", test_sizes_node_tls},
        {"edge sizes each way, through a node (--no-tls)", test_sizes_node_plain},
        {"big jobs pipelined behind a long one, taken back", test_taken_back},
        {"256 MiB each way, locally", test_256_local},
        {"256 MiB each way, through a node (TLS)", test_256_node_tls},
        {"256 MiB each way, through a node (--no-tls)", test_256_node_plain},
        {NULL, NULL}};
    static const pp_test deaths_t[] = {
        {"SIGSEGV, abort, kill -9 while writing 32 MiB", test_crash_mid_write},
        {"a timeout while writing 32 MiB", test_timeout_mid_write},
        {"pp_job_cancel while writing 32 MiB", test_cancel_mid_write},
        {"crash, timeout, cancel mid-write on a node", test_deaths_node},
        {"a big job retried after a crash mid-write", test_retry_mid_write},
        {"the same through a node", test_retry_mid_write_node},
        {NULL, NULL}};
    static const pp_test steady[] = {
        {"1,000 jobs of 1 MiB, locally", test_steady_local},
        {"1,000 jobs of 1 MiB, through a node", test_steady_node},
        {NULL, NULL}};
    static const pp_test hostile[] = {
        {"a task attacking its shared memory, locally", test_hostile_local},
        {"the same on a node", test_hostile_node},
        {"a task changing its typed result while it is unpacked", test_typed_flip},
        {"a task overwriting the NUL after its text result", test_unterminated},
        {NULL, NULL}};
    if (pl_add_suite("sizes", sizes) || pl_add_suite("deaths mid-write", deaths_t) ||
        pl_add_suite("many big jobs", steady) || pl_add_suite("hostile task", hostile))
        return -1;
#ifdef PP_TEST_SHM_API
    if (pl_register_shm_api())
        return -1;
#endif
    return 0;
}
