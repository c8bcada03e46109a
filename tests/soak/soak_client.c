/* SPDX-License-Identifier: MIT */
/* soak_client.c -- the client of the fault soak (scripts/soak).
 *
 * Keeps submitting a seeded mix of jobs to the local pool and to the nodes it
 * is given (a nodes file and nodes added on the command line), and checks
 * every outcome in the job's callback: the right value for each job that
 * must succeed, the documented status and text for those that fail, crash,
 * time out or are cancelled.  Every callback is matched to its job (a slot
 * and generation travel as the callback argument), so a job called back
 * twice, or never, is caught; the bookkeeping is a fixed ring of slots, so
 * the client's own memory does not grow with the number of jobs.
 *
 * Commands on standard input, one a line (the driver's):
 *   add HOST:PORT       pp_add_node()
 *   remove HOST:PORT    pp_remove_node()
 *   quiesce N           stop submitting, wait for every job, then for N
 *                       nodes up; count descriptors; free the server; report
 * End of input is "quiesce" without waiting for nodes.
 *
 * Standard output, one line each: "ready fds=N", "cmd ...", "progress ...",
 * "BAD ..." (a wrong outcome; the first 100 are printed), and at the end
 * "kind ...", "fds ...", "summary ...".  Exit status 0 when every job ended
 * once with its expected outcome and no descriptor was left over; 1
 * otherwise; 2 on a setup failure. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "soak_tasks.h"
#include "test_tasks.h"

enum kind {
    K_TINY,       /* t_square: n -> n*n */
    K_CPU,        /* soak_cpu: a few ms of CPU, value checked */
    K_SLEEP,      /* t_sleep: 20..200 ms, then a pid */
    K_LARGE,      /* t_echo of 1..4 MiB of seeded bytes */
    K_FAIL,       /* t_fail: PP_FAILED with its text */
    K_FAIL_RETRY, /* t_fail with retries = 1: PP_FAILED, "2 runs failed; ..." */
    K_CRASH,      /* t_segv / t_abort / t_exit3: PP_CRASHED naming the cause */
    K_TIMEOUT,    /* t_spin with a 0.3 s timeout: PP_TIMEOUT */
    K_RETRY_OK,   /* t_first_run fails or crashes once, retries = 2: PP_DONE */
    K_CANCEL,     /* t_sleep 100..800 ms, cancelled 0..600 ms after submission */
    K_N
};
static const char *const kind_name[K_N] = {"tiny", "cpu", "sleep", "large", "fail",
                                           "fail_retry", "crash", "timeout", "retry_ok",
                                           "cancel"};
/* Weights of the mix (out of their sum). */
static const int kind_weight[K_N] = {34, 10, 14, 4, 6, 3, 6, 3, 6, 8};
/* At most this many of a kind in flight (0 = only the overall cap). */
static const int kind_cap[K_N] = {0, 6, 0, 2, 0, 0, 0, 1, 0, 12};

#define NSLOT 1024
#define MAX_NODES 16
#define NCPU_TABLE 16
#define BAD_PRINT_MAX 100

typedef struct slot {
    int busy;
    unsigned gen;
    int kind;
    int sub;          /* the crash flavour; the cpu table entry */
    uint64_t seq;
    uint64_t a, b;    /* the job's parameters */
    pp_job *job;      /* K_CANCEL only: kept until cancelled and called back */
    int cb_seen;
    double cancel_at; /* K_CANCEL: when to cancel */
    int cancel_rc;    /* K_CANCEL: -2 not yet, -3 in progress, else pp_job_cancel's */
} slot;

static struct {
    pthread_mutex_t mu;
    slot slots[NSLOT];
    int free_list[NSLOT];
    int nfree;
    int inflight, kind_inflight[K_N];
    uint64_t submitted, ended, submit_failed, bad, dup, lost;
    uint64_t by_kind[K_N];
    uint64_t by_status[K_N][8];
    uint64_t cancel_rc0, cancel_rc1;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER};

static struct {
    uint64_t seed;
    long iters;
    uint64_t want;
} cpu_table[NCPU_TABLE];

static pp_server *srv;
static const char *markers = "/tmp";
static int warming; /* the warm-up: large payloads of the largest size */
static atomic_int quiesce_requested;
static atomic_int quiesce_up = -1;
static uint64_t rng_state;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static uint64_t xs64(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static uint64_t rnd(void) { return xs64(&rng_state); }
static double rnd01(void) { return (double)(rnd() >> 11) / 9007199254740992.0; }
static uint64_t rnd_range(uint64_t lo, uint64_t hi) { return lo + rnd() % (hi - lo + 1); }

/* Open descriptors but libpp's shared buffers ("/memfd:pp-shm"): those
 * are kept for reuse while large jobs come and go 2 s after (bounded, and
 * tested by test_payload); a leak is anything else that stays. */
static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], link[64];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t k = readlink(path, link, sizeof link - 1);
        link[k > 0 ? k : 0] = 0;
        n += strncmp(link, "/memfd:pp-shm", 13) != 0;
    }
    closedir(d);
    return n - 1; /* the directory's own */
}

/* Bytes the heap holds in use and free (every arena), to tell a leak (in
 * use grows) from memory the allocator keeps (free grows); -1 when unknown. */
static void heap_use(long long *in_use, long long *kept)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 mi = mallinfo2();
    *in_use = (long long)(mi.uordblks + mi.hblkhd);
    *kept = (long long)mi.fordblks;
#else
    *in_use = *kept = -1;
#endif
}

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    flockfile(stdout);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    funlockfile(stdout);
    va_end(ap);
}

/* The large payloads: bytes of an xorshift stream from a seed. */
static void fill_bytes(unsigned char *p, size_t n, uint64_t seed)
{
    uint64_t x = seed | 1;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v = xs64(&x);
        memcpy(p + i, &v, 8);
    }
    uint64_t v = xs64(&x);
    memcpy(p + i, &v, n - i);
}

static int same_bytes(const unsigned char *p, size_t n, uint64_t seed)
{
    uint64_t x = seed | 1;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v = xs64(&x);
        if (memcmp(p + i, &v, 8) != 0)
            return 0;
    }
    uint64_t v = xs64(&x);
    return memcmp(p + i, &v, n - i) == 0;
}

/* Called with g.mu held. */
static void bad(const slot *sl, pp_job *j, const char *why)
{
    g.bad++;
    if (g.bad <= BAD_PRINT_MAX)
        out("BAD seq=%" PRIu64 " kind=%s status=%s node=%s error=\"%s\": %s", sl->seq,
            kind_name[sl->kind], pp_strerror(pp_job_status(j)), pp_job_node(j),
            pp_job_error(j), why);
}

static int result_long(pp_job *j, long *v)
{
    size_t len = 0;
    const void *r = pp_job_result(j, &len);
    return r && pp_unpack(r, len, "l", v) == 0 ? 0 : -1;
}

/* Checks a finished job against what its kind must give.  g.mu held. */
static void verify(slot *sl, pp_job *j)
{
    int st = pp_job_status(j);
    const char *err = pp_job_error(j);
    char want[160];
    long v = 0;
    g.by_status[sl->kind][st >= 0 && st < 8 ? st : 0]++;
    if (st == PP_LOST)
        g.lost++;
    switch (sl->kind) {
    case K_TINY:
        if (st != PP_DONE || result_long(j, &v) || v != (long)(sl->a * sl->a))
            bad(sl, j, "want PP_DONE with n*n");
        break;
    case K_CPU:
        if (st != PP_DONE || result_long(j, &v) || (uint64_t)v != cpu_table[sl->sub].want)
            bad(sl, j, "want PP_DONE with the mixed value");
        break;
    case K_SLEEP:
    case K_RETRY_OK:
        if (st != PP_DONE || result_long(j, &v) || v <= 0)
            bad(sl, j, "want PP_DONE with a pid");
        if (sl->kind == K_RETRY_OK) {
            char path[512];
            snprintf(path, sizeof path, "%s/m-%" PRIu64, markers, sl->seq);
            unlink(path);
        }
        break;
    case K_LARGE: {
        size_t len = 0;
        const unsigned char *r = st == PP_DONE ? pp_job_result(j, &len) : NULL;
        if (!r || len != sl->a || !same_bytes(r, len, sl->b))
            bad(sl, j, "want PP_DONE with the same bytes back");
        break;
    }
    case K_FAIL:
        snprintf(want, sizeof want, "task failed on purpose: soak-%" PRIu64, sl->seq);
        if (st != PP_FAILED || strcmp(err, want) != 0)
            bad(sl, j, "want PP_FAILED with the task's text");
        break;
    case K_FAIL_RETRY:
        snprintf(want, sizeof want, "2 runs failed; the last: task failed on purpose: soak-%" PRIu64,
                 sl->seq);
        if (st != PP_FAILED || strcmp(err, want) != 0)
            bad(sl, j, "want PP_FAILED, \"2 runs failed; the last: ...\"");
        break;
    case K_CRASH: {
        static const char *const cause[] = {"SIGSEGV", "SIGABRT", "exited with status 3"};
        if (st != PP_CRASHED || !strstr(err, cause[sl->sub]))
            bad(sl, j, sl->sub == 0   ? "want PP_CRASHED naming SIGSEGV"
                       : sl->sub == 1 ? "want PP_CRASHED naming SIGABRT"
                                      : "want PP_CRASHED, exit status 3");
        break;
    }
    case K_TIMEOUT:
        if (st != PP_TIMEOUT)
            bad(sl, j, "want PP_TIMEOUT");
        break;
    case K_CANCEL:
        if (sl->cancel_rc == 0) {
            g.cancel_rc0++;
            if (st != PP_CANCELLED)
                bad(sl, j, "pp_job_cancel returned 0: want PP_CANCELLED");
        } else {
            g.cancel_rc1++;
            if (sl->cancel_rc != 1 || st != PP_DONE || result_long(j, &v) || v <= 0)
                bad(sl, j, "pp_job_cancel returned 1 (ended first): want PP_DONE with a pid");
        }
        break;
    default:
        bad(sl, j, "unknown kind");
    }
}

/* Ends a slot's job: counted, freed, the slot back in the ring.  g.mu held. */
static void finish(int idx, pp_job *j)
{
    slot *sl = &g.slots[idx];
    verify(sl, j);
    pp_job_free(j);
    sl->busy = 0;
    sl->job = NULL;
    g.ended++;
    g.inflight--;
    g.kind_inflight[sl->kind]--;
    g.free_list[g.nfree++] = idx;
}

static void on_done(pp_job *j, void *arg)
{
    uintptr_t tag = (uintptr_t)arg;
    int idx = (int)(tag & 0xffff);
    unsigned gen = (unsigned)(tag >> 16);
    pthread_mutex_lock(&g.mu);
    slot *sl = idx < NSLOT ? &g.slots[idx] : NULL;
    if (!sl || !sl->busy || sl->gen != gen || sl->cb_seen) {
        g.dup++;
        if (g.dup <= BAD_PRINT_MAX)
            out("BAD callback for slot %d generation %u that is not waiting for one "
                "(a second callback?) status=%s",
                idx, gen, pp_strerror(pp_job_status(j)));
        pthread_mutex_unlock(&g.mu);
        return;
    }
    sl->cb_seen = 1;
    if (sl->kind != K_CANCEL || sl->cancel_rc >= 0)
        finish(idx, j);
    pthread_mutex_unlock(&g.mu);
}

static int pick_kind(void)
{
    int total = 0;
    for (int k = 0; k < K_N; k++)
        total += kind_weight[k];
    int r = (int)(rnd() % (uint64_t)total);
    int k = 0;
    while (r >= kind_weight[k])
        r -= kind_weight[k++];
    return k;
}

/* Submits one job of a random kind; 0, or -1 when no room. */
static int submit_one(int cap, int kind)
{
    int k = kind >= 0 ? kind : pick_kind();
    pthread_mutex_lock(&g.mu);
    if (g.inflight >= cap || g.nfree == 0) {
        pthread_mutex_unlock(&g.mu);
        return -1;
    }
    if (kind_cap[k] && g.kind_inflight[k] >= kind_cap[k])
        k = K_TINY;
    int idx = g.free_list[--g.nfree];
    slot *sl = &g.slots[idx];
    unsigned gen = (sl->gen + 1) & 0xffff;
    *sl = (slot){.busy = 1, .gen = gen, .kind = k, .seq = g.submitted, .cancel_rc = -2};
    switch (k) { /* the parameters, set before any callback can read them */
    case K_TINY:
        sl->a = rnd_range(0, 3000000);
        break;
    case K_CPU:
        sl->sub = (int)(rnd() % NCPU_TABLE);
        break;
    case K_SLEEP:
        sl->a = rnd_range(20, 200);
        break;
    case K_LARGE:
        sl->a = warming ? 4u << 20 : rnd_range(1u << 20, 4u << 20);
        sl->b = rnd();
        break;
    case K_CRASH:
        sl->sub = (int)(rnd() % 3);
        break;
    case K_RETRY_OK:
        sl->sub = (int)(rnd() % 2);
        break;
    case K_CANCEL:
        sl->a = rnd_range(100, 800);
        sl->cancel_at = now_s() + rnd01() * 0.6;
        break;
    }
    slot job = *sl;
    g.inflight++;
    g.kind_inflight[k]++;
    g.submitted++;
    g.by_kind[k]++;
    pthread_mutex_unlock(&g.mu);

    static const int prio[] = {-1, 0, 0, 0, 1};
    pp_submit_opts o = {.callback = on_done,
                        .callback_arg = (void *)(((uintptr_t)gen << 16) | (uintptr_t)idx),
                        .priority = prio[rnd() % 5]};
    pp_job *j = NULL;
    char text[64], path[512];
    switch (k) {
    case K_TINY:
        j = pp_submitf(srv, t_square, &o, "l", (long)job.a);
        break;
    case K_CPU:
        j = pp_submitf(srv, soak_cpu, &o, "ll", (long)cpu_table[job.sub].seed,
                       cpu_table[job.sub].iters);
        break;
    case K_SLEEP:
    case K_CANCEL:
        j = pp_submitf(srv, t_sleep, &o, "l", (long)job.a);
        break;
    case K_LARGE: {
        unsigned char *buf = malloc(job.a);
        if (buf) {
            fill_bytes(buf, job.a, job.b);
            j = pp_submit(srv, t_echo, buf, job.a, &o);
            free(buf);
        }
        break;
    }
    case K_FAIL:
    case K_FAIL_RETRY:
        snprintf(text, sizeof text, "soak-%" PRIu64, job.seq);
        o.retries = k == K_FAIL_RETRY;
        j = pp_submit(srv, t_fail, text, strlen(text), &o);
        break;
    case K_CRASH: {
        static const pp_task crash[] = {t_segv, t_abort, t_exit3};
        j = pp_submit(srv, crash[job.sub], "", 0, &o);
        break;
    }
    case K_TIMEOUT:
        o.timeout = 0.3;
        j = pp_submit(srv, t_spin, "", 0, &o);
        break;
    case K_RETRY_OK:
        snprintf(path, sizeof path, "%s/m-%" PRIu64, markers, job.seq);
        o.retries = 2;
        j = pp_submitf(srv, t_first_run, &o, "ss", path, job.sub ? "fail" : "segv");
        break;
    }
    pthread_mutex_lock(&g.mu);
    if (!j) {
        out("BAD submit of a %s job failed: %s", kind_name[k], pp_last_error());
        g.submit_failed++;
        g.bad++;
        g.submitted--;
        g.by_kind[k]--;
        sl->busy = 0;
        g.inflight--;
        g.kind_inflight[k]--;
        g.free_list[g.nfree++] = idx;
    } else if (k == K_CANCEL) {
        sl->job = j; /* not freed by the callback: the cancel needs it */
    }
    pthread_mutex_unlock(&g.mu);
    return j ? 0 : -1;
}

/* Cancels the K_CANCEL jobs whose time has come (all of them with force). */
static void run_cancels(int force)
{
    double t = now_s();
    for (int i = 0; i < NSLOT; i++) {
        pthread_mutex_lock(&g.mu);
        slot *sl = &g.slots[i];
        if (!sl->busy || sl->kind != K_CANCEL || !sl->job || sl->cancel_rc != -2 ||
            (!force && sl->cancel_at > t)) {
            pthread_mutex_unlock(&g.mu);
            continue;
        }
        sl->cancel_rc = -3;
        pp_job *j = sl->job;
        pthread_mutex_unlock(&g.mu);
        int rc = pp_job_cancel(j); /* not under g.mu: the callback takes it */
        pthread_mutex_lock(&g.mu);
        sl->cancel_rc = rc;
        if (sl->cb_seen)
            finish(i, j);
        pthread_mutex_unlock(&g.mu);
    }
}

static void *read_commands(void *arg)
{
    (void)arg;
    char line[512];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = 0;
        char *sp = strchr(line, ' ');
        const char *what = sp ? sp + 1 : "";
        if (sp)
            *sp = 0;
        if (strcmp(line, "add") == 0 || strcmp(line, "remove") == 0) {
            int rc = line[0] == 'a' ? pp_add_node(srv, what) : pp_remove_node(srv, what);
            if (rc == 0)
                out("cmd %s %s ok", line, what);
            else
                out("cmd %s %s failed: %s", line, what, pp_last_error());
        } else if (strcmp(line, "quiesce") == 0) {
            atomic_store(&quiesce_up, atoi(what));
            atomic_store(&quiesce_requested, 1);
            return NULL;
        } else if (line[0]) {
            out("cmd %s: unknown command", line);
        }
    }
    atomic_store(&quiesce_requested, 1);
    return NULL;
}

/* Nodes (not "local") up now, or -1. */
static int nodes_up(void)
{
    pp_node_info info[MAX_NODES + 1];
    int n = pp_get_active_nodes(srv, info, MAX_NODES + 1);
    int up = 0;
    for (int i = 0; i < n && i < MAX_NODES + 1; i++)
        up += strcmp(info[i].name, "local") != 0 && info[i].state == PP_NODE_UP;
    return n < 0 ? -1 : up;
}

static int wait_nodes_up(int want, double seconds)
{
    double end = now_s() + seconds;
    int up;
    while ((up = nodes_up()) != want && now_s() < end)
        sleep_s(0.1);
    return up;
}

/* The descriptor count once it holds still (two equal counts 0.3 s apart,
 * at most 20 tries): a worker being replaced holds a few for a moment. */
static int settled_fds(void)
{
    int last = count_fds();
    for (int i = 0; i < 20; i++) {
        sleep_s(0.3);
        int n = count_fds();
        if (n == last)
            return n;
        last = n;
    }
    return last;
}

static void usage(void)
{
    fprintf(stderr, "usage: pp-soak-client --secret-file F [--node HOST:PORT]... [--seed S]\n"
                    "       [--rate JOBS_PER_S] [--inflight N] [--ncpus N] [--markers DIR]\n"
                    "       [--expect-up N] [--max-seconds S] [--heartbeat S] [--node-timeout S]\n"
                    "  --node @FILE names a nodes file\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *nodes[MAX_NODES + 1] = {0};
    int nnodes = 0, ncpus = 1, inflight_cap = 48, expect_up = 0;
    double rate = 100, max_seconds = 3600, heartbeat = 0.5, node_timeout = 2.5;
    const char *secret_file = NULL;
    uint64_t seed = 1;
    for (int i = 1; i < argc; i += 2) { /* options come as name and value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        if (strcmp(a, "--secret-file") == 0)
            secret_file = v;
        else if (strcmp(a, "--node") == 0 && nnodes < MAX_NODES)
            nodes[nnodes++] = v;
        else if (strcmp(a, "--seed") == 0)
            seed = strtoull(v, NULL, 10);
        else if (strcmp(a, "--rate") == 0)
            rate = atof(v);
        else if (strcmp(a, "--inflight") == 0)
            inflight_cap = atoi(v);
        else if (strcmp(a, "--ncpus") == 0)
            ncpus = atoi(v);
        else if (strcmp(a, "--markers") == 0)
            markers = v;
        else if (strcmp(a, "--expect-up") == 0)
            expect_up = atoi(v);
        else if (strcmp(a, "--max-seconds") == 0)
            max_seconds = atof(v);
        else if (strcmp(a, "--heartbeat") == 0)
            heartbeat = atof(v);
        else if (strcmp(a, "--node-timeout") == 0)
            node_timeout = atof(v);
        else
            usage();
    }
    if (!secret_file || rate <= 0 || inflight_cap < 1 || inflight_cap > NSLOT || ncpus < 1)
        usage();
    setvbuf(stdout, NULL, _IOLBF, 0);
    rng_state = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    if (!rng_state)
        rng_state = 1;
    for (int i = 0; i < NSLOT; i++)
        g.free_list[g.nfree++] = NSLOT - 1 - i;
    for (int i = 0; i < NCPU_TABLE; i++) {
        cpu_table[i].seed = rnd() >> 1;
        cpu_table[i].iters = (long)rnd_range(500000, 4000000);
        cpu_table[i].want = soak_mix(cpu_table[i].seed, cpu_table[i].iters);
    }

    int fds_before = count_fds();
    srv = pp_server_new(&(pp_config){.ncpus = ncpus,
                                     .ppservers = nnodes ? nodes : NULL,
                                     .secret_file = secret_file,
                                     .heartbeat = heartbeat,
                                     .node_timeout = node_timeout,
                                     .max_attempts = 10000, /* the most pp_config allows */
                                     .no_node_timeout = 0});
    if (!srv) {
        fprintf(stderr, "pp-soak-client: %s\n", pp_last_error());
        return 2;
    }
    if (wait_nodes_up(expect_up, 60) != expect_up) {
        out("FATAL only %d of %d nodes up after 60 s", nodes_up(), expect_up);
        pp_print_stats(srv, stdout);
        pp_server_free(srv);
        return 2;
    }
    /* Warm-up: every kind three times (large payloads of the largest size),
     * so that the modules are on the nodes and the heaps have seen large
     * payloads before the first count. */
    warming = 1;
    for (int i = 0; i < 3 * K_N; i++) {
        double end = now_s() + 60;
        while (submit_one(inflight_cap, i % K_N) != 0 && now_s() < end)
            sleep_s(0.01);
    }
    warming = 0;
    if (pp_wait_for(srv, NULL, 120) != 0) {
        out("FATAL the warm-up jobs did not finish within 120 s: %s", pp_last_error());
        return 2;
    }
    run_cancels(1);
    int fds_ready = settled_fds();
    pthread_t reader;
    if (pthread_create(&reader, NULL, read_commands, NULL) != 0) {
        out("FATAL cannot start the command reader");
        return 2;
    }
    pthread_detach(reader);
    out("ready fds=%d fds_before_server=%d", fds_ready, fds_before);

    double t0 = now_s(), last_progress = t0, tokens = 0, last = t0;
    while (!atomic_load(&quiesce_requested) && now_s() - t0 < max_seconds) {
        double t = now_s();
        tokens += (t - last) * rate;
        last = t;
        if (tokens > rate * 0.2 + 1)
            tokens = rate * 0.2 + 1;
        while (tokens >= 1 && submit_one(inflight_cap, -1) == 0)
            tokens -= 1;
        run_cancels(0);
        if (t - last_progress >= 10) {
            last_progress = t;
            long long in_use, kept;
            heap_use(&in_use, &kept);
            int up = nodes_up();
            pthread_mutex_lock(&g.mu);
            out("progress t=%.0f submitted=%" PRIu64 " ended=%" PRIu64 " inflight=%d "
                "bad=%" PRIu64 " up=%d heap_in_use_kib=%lld heap_free_kib=%lld",
                t - t0, g.submitted, g.ended, g.inflight, g.bad + g.dup, up, in_use / 1024,
                kept / 1024);
            pthread_mutex_unlock(&g.mu);
        }
        sleep_s(0.005);
    }
    double run_seconds = now_s() - t0;

    /* Quiesce: the cancels still due, then every job. */
    double end = now_s() + 1;
    while (now_s() < end)
        run_cancels(0), sleep_s(0.01);
    run_cancels(1);
    int hang = pp_wait_for(srv, NULL, 180) != 0;
    if (hang) {
        out("BAD jobs still pending 180 s after the last submission: %s", pp_last_error());
        pthread_mutex_lock(&g.mu);
        g.bad++;
        pthread_mutex_unlock(&g.mu);
    }
    int want_up = atomic_load(&quiesce_up);
    int up = want_up >= 0 ? wait_nodes_up(want_up, 90) : -1;
    int fds_end = settled_fds();
    pp_stats st = {0};
    pp_get_stats(srv, &st);
    pp_print_stats(srv, stdout);
    pp_server_free(srv);
    int fds_after = count_fds();

    pthread_mutex_lock(&g.mu);
    for (int k = 0; k < K_N; k++) {
        char line[512];
        int n = snprintf(line, sizeof line, "kind %s submitted=%" PRIu64, kind_name[k],
                         g.by_kind[k]);
        for (int s = 1; s < 8 && n > 0 && (size_t)n < sizeof line; s++)
            if (g.by_status[k][s])
                n += snprintf(line + n, sizeof line - (size_t)n, " %s=%" PRIu64,
                              s == PP_DONE      ? "done"
                              : s == PP_FAILED  ? "failed"
                              : s == PP_CRASHED ? "crashed"
                              : s == PP_TIMEOUT ? "timeout"
                              : s == PP_LOST    ? "LOST"
                              : s == PP_CANCELLED ? "cancelled"
                                                  : "eload",
                              g.by_status[k][s]);
        out("%s", line);
    }
    int unfinished = 0;
    for (int i = 0; i < NSLOT; i++)
        unfinished += g.slots[i].busy;
    out("cancel returned0=%" PRIu64 " returned1=%" PRIu64, g.cancel_rc0, g.cancel_rc1);
    out("fds before_server=%d ready=%d end=%d after_free=%d", fds_before, fds_ready, fds_end,
        fds_after);
    out("nodes up_at_end=%d wanted=%d", up, want_up);
    int ok = g.bad == 0 && g.dup == 0 && g.lost == 0 && g.ended == g.submitted &&
             unfinished == 0 && fds_end == fds_ready && fds_after == fds_before &&
             (want_up < 0 || up == want_up);
    out("summary seconds=%.0f submitted=%" PRIu64 " callbacks=%" PRIu64 " bad=%" PRIu64
        " duplicate_callbacks=%" PRIu64 " lost=%" PRIu64 " unfinished=%d retried=%" PRIu64
        " verdict=%s",
        run_seconds, g.submitted, g.ended, g.bad, g.dup, g.lost, unfinished, st.retried,
        ok ? "PASS" : "FAIL");
    pthread_mutex_unlock(&g.mu);
    return ok ? 0 : 1;
}
