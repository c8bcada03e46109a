/* SPDX-License-Identifier: MIT */
/* test_dormant.c -- dormant nodes (pp_config.max_idle_nodes) under
 * faults, with real ppserver processes on 127.0.0.1: a node that accepts
 * TCP and then says nothing when it is woken (the job goes to the other
 * dormant node after node_timeout; pp_server_free() with that handshake
 * held); a job without tags queued behind jobs for a tag the dormant nodes
 * lack (one node woken, not all); a job no node can run (idle nodes go
 * dormant all the same).
 *
 * Each test starts three nodes, the first behind a gate (a TCP relay of
 * the test's own that passes bytes, or holds the connections it accepts
 * without a word), and makes the first two dormant: a client of nodes 0
 * and 1, node 2 added once they are up, max_idle_nodes 1.  Every wait is
 * bounded; a per-test teardown frees the client, the gate and the
 * servers, even after a fatal assertion. */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client_util.h"
#include "cunit_main.h"
#include "server_harness.h"
#include "test_tasks.h"
#include "test_util.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define HEARTBEAT 0.1 /* the idle period is 10 heartbeats: 1 s */
#define NODE_TIMEOUT 2.0

/* ---- the gate: a relay that can hold what it accepts without a word ---- */

enum { GATE_PASS, GATE_HOLD };
#define GATE_MAX 32

typedef struct gate {
    int lfd, port, target;
    int stop[2];                  /* a pipe: the thread ends */
    _Atomic int mode;             /* GATE_*, for connections accepted from now */
    _Atomic int accepted;
    int fds[GATE_MAX][2];         /* client side, node side (-1: held, no node) */
    int n;
    pthread_t th;
} gate;

static gate *the_gate;

static void gate_close_pair(gate *g, int i)
{
    close(g->fds[i][0]);
    if (g->fds[i][1] >= 0)
        close(g->fds[i][1]);
    g->fds[i][0] = g->fds[g->n - 1][0];
    g->fds[i][1] = g->fds[g->n - 1][1];
    g->n--;
}

static int connect_local(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static void gate_accept(gate *g)
{
    int c = accept4(g->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0)
        return;
    atomic_fetch_add(&g->accepted, 1);
    int mode = atomic_load(&g->mode);
    int up = mode == GATE_PASS ? connect_local(g->target) : -1;
    if ((mode == GATE_PASS && up < 0) || g->n == GATE_MAX) {
        close(c);
        if (up >= 0)
            close(up);
        return;
    }
    g->fds[g->n][0] = c;
    g->fds[g->n][1] = up;
    g->n++;
}

/* Bytes from one side to the other: 0, or -1 when that pair ends. */
static int gate_pump(int from, int to)
{
    char buf[65536];
    ssize_t n = read(from, buf, sizeof buf);
    if (n <= 0 || to < 0)
        return n <= 0 ? -1 : 0; /* a held connection's bytes are left unread */
    for (ssize_t off = 0; off < n;) {
        ssize_t w = write(to, buf + off, (size_t)(n - off));
        if (w <= 0)
            return -1;
        off += w;
    }
    return 0;
}

static void *gate_run(void *arg)
{
    gate *g = arg;
    for (;;) {
        struct pollfd p[2 + 2 * GATE_MAX];
        int np = 0;
        p[np++] = (struct pollfd){.fd = g->stop[0], .events = POLLIN};
        p[np++] = (struct pollfd){.fd = g->lfd, .events = POLLIN};
        for (int i = 0; i < g->n; i++) {
            /* A held connection is watched for its end only: never read. */
            p[np++] = (struct pollfd){.fd = g->fds[i][0], .events = g->fds[i][1] >= 0 ? POLLIN : 0};
            p[np++] = (struct pollfd){.fd = g->fds[i][1], .events = POLLIN};
        }
        if (poll(p, (nfds_t)np, 1000) < 0 && errno != EINTR)
            return NULL;
        if (p[0].revents)
            return NULL;
        if (p[1].revents & POLLIN)
            gate_accept(g);
        for (int i = (np - 2) / 2 - 1; i >= 0; i--) {
            struct pollfd *c = &p[2 + 2 * i], *u = &p[3 + 2 * i];
            int end = (c->revents & (POLLERR | POLLHUP)) || (u->revents & (POLLERR | POLLHUP));
            if (!end && (c->revents & POLLIN))
                end = gate_pump(g->fds[i][0], g->fds[i][1]) != 0;
            if (!end && (u->revents & POLLIN))
                end = gate_pump(g->fds[i][1], g->fds[i][0]) != 0;
            if (end && i < g->n)
                gate_close_pair(g, i);
        }
    }
}

/* A gate on a free port of 127.0.0.1 to the node on `target`; NULL (said)
 * on failure. */
static gate *gate_start(int target)
{
    gate *g = calloc(1, sizeof *g);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (!g || pipe(g->stop) != 0) {
        free(g);
        return NULL;
    }
    g->target = target;
    g->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (g->lfd < 0 || bind(g->lfd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(g->lfd, 64) != 0 || getsockname(g->lfd, (struct sockaddr *)&a, &alen) != 0 ||
        pthread_create(&g->th, NULL, gate_run, g) != 0) {
        fprintf(stderr, "\n    cannot start the gate: %s\n", strerror(errno));
        if (g->lfd >= 0)
            close(g->lfd);
        close(g->stop[0]);
        close(g->stop[1]);
        free(g);
        return NULL;
    }
    g->port = ntohs(a.sin_port);
    return g;
}

static void gate_stop(gate *g)
{
    if (!g)
        return;
    if (write(g->stop[1], "x", 1) != 1)
        fprintf(stderr, "\n    cannot stop the gate\n");
    pthread_join(g->th, NULL);
    while (g->n)
        gate_close_pair(g, 0);
    close(g->lfd);
    close(g->stop[0]);
    close(g->stop[1]);
    free(g);
}

/* ---- three nodes, two of them dormant ---- */

static srv_harness *srv[3];
static char names[3][64];
static pp_server *client;

static void test_teardown(void)
{
    cl_clients_free();
    client = NULL;
    gate_stop(the_gate);
    the_gate = NULL;
    cl_servers_end(cl_server_end);
    memset(srv, 0, sizeof srv);
}

/* Node i's state; its entry in *out when out is not NULL. */
static int state_of(int i, pp_node_info *out)
{
    pp_node_info ni;
    int st = cl_node_info(client, names[i], &ni) == 0 ? ni.state : -1;
    if (out)
        *out = ni;
    return st;
}

/* Starts the nodes (node i with args[i], ppserver arguments, or "-w 1"
 * when NULL) and the client (cfg, its node list and secret filled in) of
 * nodes 0 and 1, both up.  A fatal failure otherwise. */
static void start3(pp_config cfg, const char *const *const args[3])
{
    for (int i = 0; i < 3; i++) {
        const char *const *a = args && args[i] ? args[i] : ARGS("-w", "1");
        srv[i] = cl_server_start(&(srv_opts){.args = a, .share_secret = i ? srv[0] : NULL});
        CU_ASSERT_PTR_NOT_NULL_FATAL(srv[i]);
    }
    the_gate = gate_start(srv[0]->port);
    CU_ASSERT_PTR_NOT_NULL_FATAL(the_gate);
    snprintf(names[0], sizeof names[0], "127.0.0.1:%d", the_gate->port);
    cl_node_name(srv[1], names[1], sizeof names[1]);
    cl_node_name(srv[2], names[2], sizeof names[2]);
    cfg.ppservers = ARGS(names[0], names[1]);
    cfg.secret = srv[0]->secret;
    cfg.heartbeat = HEARTBEAT;
    cfg.node_timeout = NODE_TIMEOUT;
    cfg.max_idle_nodes = 1;
    client = cl_track(pp_server_new(&cfg));
    CU_ASSERT_PTR_NOT_NULL_FATAL(client);
    CU_ASSERT_FATAL(cl_wait_state(client, names[0], PP_NODE_UP, 10));
    CU_ASSERT_FATAL(cl_wait_state(client, names[1], PP_NODE_UP, 10));
}

/* Node 2 added: idle after the first two, it is the one kept open, and
 * nodes 0 and 1 go dormant.  A fatal failure otherwise. */
static void add2_two_dormant(void)
{
    CU_ASSERT_EQUAL_FATAL(pp_add_node(client, names[2]), 0);
    CU_ASSERT_FATAL(cl_wait_state(client, names[2], PP_NODE_UP, 10));
    CU_ASSERT_FATAL(cl_wait_state(client, names[0], PP_NODE_DORMANT, 10));
    CU_ASSERT_FATAL(cl_wait_state(client, names[1], PP_NODE_DORMANT, 10));
}

static void three_two_dormant(pp_config cfg, const char *const *const args[3])
{
    start3(cfg, args);
    add2_two_dormant();
}

/* The job's node is names[want]; said when not. */
static int ran_on(pp_job *j, int want)
{
    const char *node = pp_job_node(j);
    if (node && strcmp(node, names[want]) == 0)
        return 1;
    fprintf(stderr, "\n    job ran on %s, not %s (status %d: %s)\n", node ? node : "(none)",
            names[want], pp_job_status(j), pp_job_error(j));
    return 0;
}

/* The client's statistics add up: every node once, the jobs ended there
 * summing to those done (none failed here). */
static void stats_add_up(uint64_t want_done)
{
    pp_stats st;
    pp_node_info v[8];
    CU_ASSERT_EQUAL_FATAL(pp_get_stats(client, &st), 0);
    int n = pp_get_active_nodes(client, v, 8);
    CU_ASSERT_EQUAL(n, 4); /* "local" and three nodes, each once */
    CU_ASSERT_EQUAL(st.nodes, 4);
    uint64_t sum = 0;
    for (int i = 0; i < n && i < 8; i++) {
        sum += v[i].jobs;
        for (int k = 0; k < i; k++)
            CU_ASSERT(strcmp(v[i].name, v[k].name) != 0);
    }
    CU_ASSERT_EQUAL(st.done, want_done);
    CU_ASSERT_EQUAL(sum, want_done);
    CU_ASSERT_EQUAL(st.pending, 0);
}

/* ---- the attacks ---- */

/* A woken node accepts TCP and then says nothing: after node_timeout it
 * is a node that failed (the error says so) and the job runs on the other
 * dormant node, woken then, not after the 10 s handshake deadline. */
static void test_wake_stalls(void)
{
    int fd0 = dir_entries("/proc/self/fd");
    three_two_dormant((pp_config){.ncpus = 0}, NULL);
    atomic_store(&the_gate->mode, GATE_HOLD);
    srv_kill9(srv[2]); /* the open node gone: only the dormant ones are left */
    CU_ASSERT_FATAL(cl_wait_state(client, names[2], PP_NODE_DOWN, 10));
    int acc = atomic_load(&the_gate->accepted);
    double t0 = now_s();
    pp_job *j = pp_submitf(client, t_square, NULL, "l", 7L);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    int st = pp_job_wait_for(j, 3 * NODE_TIMEOUT + 1);
    long sq = 0;
    CU_ASSERT_EQUAL(st, PP_DONE);
    CU_ASSERT(st == PP_DONE && pp_job_unpack(j, "l", &sq) == 0 && sq == 49);
    CU_ASSERT(ran_on(j, 1));
    if (st != PP_DONE)
        fprintf(stderr, "\n    job still %d after %.1f s\n", st, now_s() - t0);
    CU_ASSERT(atomic_load(&the_gate->accepted) > acc); /* node 0 was woken first */
    pp_node_info ni;
    state_of(0, &ni);
    CU_ASSERT(strstr(ni.why, "handshake") != NULL);
    CU_ASSERT(ni.handshake_errors >= 1);
    pp_job_free(j);
    stats_add_up(1);
    /* Node 0 retried, its handshake held again: pp_server_free() returns
     * soon all the same, and every descriptor comes back. */
    CU_ASSERT(cl_wait_state(client, names[0], PP_NODE_CONNECTING, 5));
    t0 = now_s();
    cl_client_free(client);
    client = NULL;
    double took = now_s() - t0;
    if (took > 5)
        fprintf(stderr, "\n    pp_server_free took %.1f s\n", took);
    CU_ASSERT(took < 5);
    gate_stop(the_gate);
    the_gate = NULL;
    CU_ASSERT_EQUAL(dir_entries("/proc/self/fd"), fd0);
}

/* The open node (node 2, tag gpu) is busy with a queue of gpu jobs; one
 * job without tags waits too: it wakes one dormant node (its room covers
 * that job), not every dormant node, for jobs they cannot run. */
static void test_wake_counts_runnable_jobs(void)
{
    three_two_dormant((pp_config){.ncpus = 0},
                      (const char *const *const[3]){NULL, NULL, ARGS("-w", "1", "--tag", "gpu")});
    CU_ASSERT_FATAL(cl_wait_state(client, names[0], PP_NODE_DORMANT, 1)); /* still */
    enum { N = 8 };
    pp_job *jobs[N + 1];
    for (long i = 0; i < N; i++) {
        jobs[i] = pp_submitf(client, t_touch_sleep, &(pp_submit_opts){.tags = "gpu"}, "sll",
                             "/dev/null", 200L, i);
        CU_ASSERT_PTR_NOT_NULL_FATAL(jobs[i]);
    }
    sleep_s(0.1); /* node 2 took what it could; the rest wait for it */
    jobs[N] = pp_submitf(client, t_square, NULL, "l", 5L);
    CU_ASSERT_PTR_NOT_NULL_FATAL(jobs[N]);
    CU_ASSERT_EQUAL(pp_job_wait_for(jobs[N], 10), PP_DONE);
    pp_node_info n0, n1;
    state_of(0, &n0);
    state_of(1, &n1);
    if (n0.connects + n1.connects != 3)
        fprintf(stderr, "\n    connects to the dormant nodes: %llu and %llu\n",
                (unsigned long long)n0.connects, (unsigned long long)n1.connects);
    CU_ASSERT_EQUAL(n0.connects + n1.connects, 3); /* one each at start, one wake */
    CU_ASSERT_EQUAL(cl_wait_jobs(jobs, N + 1, 30), N + 1);
    for (int i = 0; i <= N; i++) {
        CU_ASSERT_EQUAL(pp_job_status(jobs[i]), PP_DONE);
        if (i < N)
            CU_ASSERT(ran_on(jobs[i], 2));
        pp_job_free(jobs[i]);
    }
    stats_add_up(N + 1);
}

/* A job waits for a tag no node has: idle nodes that could not run it
 * still go dormant beyond max_idle_nodes.  When no_node_timeout gives it
 * up, its error lists the dormant nodes as dormant, not as up. */
static void test_dormant_despite_unrunnable_job(void)
{
    start3((pp_config){.ncpus = 0, .no_node_timeout = 8}, NULL);
    pp_job *j = pp_submitf(client, t_square, &(pp_submit_opts){.tags = "nowhere"}, "l", 2L);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    add2_two_dormant();
    CU_ASSERT_EQUAL(pp_job_status(j), PP_PENDING);
    CU_ASSERT_EQUAL(pp_job_wait_for(j, 15), PP_LOST);
    char want[160];
    snprintf(want, sizeof want, "%s [no tags] dormant", names[0]);
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_job_error(j), want));
    snprintf(want, sizeof want, "%s [no tags] up", names[2]);
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_job_error(j), want));
    if (!strstr(pp_job_error(j), "dormant"))
        fprintf(stderr, "\n    the job's error: %s\n", pp_job_error(j));
    pp_job_free(j);
}

static const pp_test tests[] = {
    {"dormant: a wake that stalls in the handshake", test_wake_stalls},
    {"dormant: a wake counts only the jobs the node can run", test_wake_counts_runnable_jobs},
    {"dormant: a job no node can run keeps no node open", test_dormant_despite_unrunnable_job},
    {NULL, NULL},
};

int pp_register_suites(void)
{
    if (cl_suite_env() != 0) {
        printf("skipped: the suite's environment is not set (see above)\n");
        exit(77);
    }
    return pp_add_suite_with("dormant", NULL, NULL, NULL, test_teardown, tests);
}
