/* SPDX-License-Identifier: MIT */
/* test_idle.c -- the idle pool (pp_config.max_idle_nodes) with real
 * ppserver processes on 127.0.0.1: beyond the limit, nodes holding none of
 * the program's jobs have their connection closed once idle for 10
 * heartbeats (a heartbeat of 0.1 s here: 1 s) and show PP_NODE_DORMANT;
 * the client's sockets and the nodes' sessions follow; a burst of jobs
 * reconnects them and runs on every node; a dormant node killed meanwhile
 * fails its reconnect like any lost node, its jobs going elsewhere; a
 * dormant node removed goes at once; descriptors come back after
 * pp_server_free().
 *
 * Every wait is bounded; a per-test teardown frees the client and stops
 * every server the test left, even after a fatal assertion. */
#include <CUnit/CUnit.h>
#include <dirent.h>
#include <pp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cunit_main.h"
#include "server_harness.h"
#include "test_tasks.h"
#include "test_util.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NSRV 6
#define HEARTBEAT 0.1 /* the idle period is 10 heartbeats: 1 s */

static srv_harness *servers[NSRV];
static pp_server *client;

static void test_teardown(void)
{
    pp_server_free(client);
    client = NULL;
    for (int i = 0; i < NSRV; i++)
        if (servers[i]) {
            srv_stop(servers[i], 10);
            if (srv_sanitizer_report(servers[i])) /* its stderr and its log */
                CU_FAIL("sanitizer report from ppserver or its workers");
            srv_cleanup(servers[i]);
            free(servers[i]);
            servers[i] = NULL;
        }
}

/* Starts n servers (-w 1) and a client of them all with max_idle_nodes
 * `max_idle`; names[i] gets server i's "host:port".  0, or -1 (said). */
static int start_all(int n, int max_idle, char names[][64])
{
    const char *list[NSRV + 1] = {NULL};
    for (int i = 0; i < n; i++) {
        servers[i] = calloc(1, sizeof *servers[i]);
        srv_opts o = {.args = ARGS("-w", "1", "--log-level", "info")};
        if (i > 0)
            o.share_secret = servers[0];
        if (!servers[i] || srv_start(servers[i], &o) != 0) {
            fprintf(stderr, "\n    cannot start ppserver %d\n", i);
            return -1;
        }
        snprintf(names[i], 64, "127.0.0.1:%d", servers[i]->port);
        list[i] = names[i];
    }
    pp_config cfg = {.ncpus = 0, .ppservers = list, .secret = servers[0]->secret,
                     .heartbeat = HEARTBEAT, .max_idle_nodes = max_idle};
    client = pp_server_new(&cfg);
    if (!client)
        fprintf(stderr, "\n    pp_server_new: %s\n", pp_last_error());
    return client ? 0 : -1;
}

/* The state of node `name`, its info in *out (may be NULL); -1 if none. */
static int node_state(const char *name, pp_node_info *out)
{
    pp_node_info v[NSRV + 1];
    int n = pp_get_active_nodes(client, v, NSRV + 1);
    for (int i = 0; i < n && i < NSRV + 1; i++)
        if (strcmp(v[i].name, name) == 0) {
            if (out)
                *out = v[i];
            return v[i].state;
        }
    return -1;
}

/* Nodes (of n) in `state`. */
static int count_state(char names[][64], int n, int state)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += node_state(names[i], NULL) == state;
    return k;
}

/* Waits (bounded) until `want` of the n nodes are in `state`. */
static int wait_count(char names[][64], int n, int state, int want, double limit)
{
    double end = now_s() + limit;
    int k;
    while ((k = count_state(names, n, state)) != want && now_s() < end)
        sleep_s(0.02);
    if (k != want)
        fprintf(stderr, "\n    %d node(s) in state %d, not %d\n", k, state, want);
    return k == want;
}

static int wait_state(const char *name, int state, double limit)
{
    double end = now_s() + limit;
    while (node_state(name, NULL) != state && now_s() < end)
        sleep_s(0.02);
    return node_state(name, NULL) == state;
}

/* Descriptors this process has open. */
static int count_fds(void)
{
    int n = dir_entries("/proc/self/fd");
    return n < 0 ? -1 : n - 1; /* the directory's own */
}

/* This process's established TCP sockets to the first n servers. */
static int sockets_to_nodes(int n)
{
    FILE *fp = fopen("/proc/net/tcp", "r");
    if (!fp)
        return -1;
    unsigned long inodes[256];
    int ni = 0;
    char line[512];
    while (fgets(line, sizeof line, fp) && ni < 256) {
        unsigned rport, st;
        unsigned long inode;
        if (sscanf(line, " %*d: %*x:%*x %*x:%x %x %*s %*s %*s %*s %*s %lu", &rport, &st,
                   &inode) != 3 || st != 1)
            continue;
        for (int i = 0; i < n; i++)
            if (servers[i] && (int)rport == servers[i]->port)
                inodes[ni++] = inode;
    }
    fclose(fp);
    DIR *d = opendir("/proc/self/fd");
    int k = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char path[300], target[64];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t len = readlink(path, target, sizeof target - 1);
        unsigned long inode;
        if (len <= 0)
            continue;
        target[len] = 0;
        if (sscanf(target, "socket:[%lu]", &inode) != 1)
            continue;
        for (int i = 0; i < ni; i++)
            k += inodes[i] == inode;
    }
    if (d)
        closedir(d);
    return k;
}

/* The node's log has no warning or error about our connections. */
static int log_clean(const srv_harness *h)
{
    char *log = srv_read_log(h);
    int bad = 0;
    for (char *line = log ? strtok(log, "\n") : NULL; line; line = strtok(NULL, "\n"))
        if ((strstr(line, "WARN") || strstr(line, "ERROR") || strstr(line, "warn") ||
             strstr(line, "error")) &&
            !strstr(line, "worker output")) {
            fprintf(stderr, "\n    node log: %s\n", line);
            bad = 1;
        }
    free(log);
    return !bad;
}

/* n t_sleep jobs of `ms`, all right; *done counts them; nodes ran[i] set. */
static int burst(int njobs, long ms, char names[][64], int n, int *ran)
{
    pp_job *jobs[64];
    int ok = njobs <= 64;
    for (int i = 0; i < njobs && ok; i++)
        ok = (jobs[i] = pp_submitf(client, t_sleep, NULL, "l", ms)) != NULL;
    for (int i = 0; i < njobs && ok; i++) {
        long pid = 0;
        int st = pp_job_wait_for(jobs[i], 30);
        if (st != PP_DONE || pp_job_unpack(jobs[i], "l", &pid) != 0 || pid <= 0) {
            fprintf(stderr, "\n    job %d: status %d (%s)\n", i, st, pp_job_error(jobs[i]));
            ok = 0;
        }
        for (int k = 0; k < n; k++)
            if (strcmp(pp_job_node(jobs[i]), names[k]) == 0)
                ran[k]++;
    }
    for (int i = 0; i < njobs; i++)
        pp_job_free(jobs[i]);
    return ok;
}

static void test_dormant_and_back(void)
{
    int fd0 = count_fds();
    char names[NSRV][64];
    CU_ASSERT_FATAL(start_all(NSRV, 2, names) == 0);
    /* First all up; then, idle, all but 2 go dormant. */
    CU_ASSERT_FATAL(wait_count(names, NSRV, PP_NODE_UP, NSRV, 20));
    CU_ASSERT_FATAL(wait_count(names, NSRV, PP_NODE_DORMANT, NSRV - 2, 10));
    sleep_s(0.5); /* and it stays so */
    CU_ASSERT(count_state(names, NSRV, PP_NODE_UP) == 2);
    CU_ASSERT(count_state(names, NSRV, PP_NODE_DORMANT) == NSRV - 2);
    CU_ASSERT_EQUAL(sockets_to_nodes(NSRV), 2);
    for (int i = 0; i < NSRV; i++) {
        pp_node_info ni;
        if (node_state(names[i], &ni) != PP_NODE_DORMANT)
            continue;
        CU_ASSERT(ni.ncpus == 1 && ni.drops == 0 && ni.why[0] == 0);
        /* The node freed the session quietly, as for a client leaving. */
        CU_ASSERT(log_clean(servers[i]));
        CU_ASSERT(srv_log_count(servers[i], ARGS("connection closed: end of file")) == 1);
    }
    /* The statistics table names the state. */
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    CU_ASSERT_FATAL(mem != NULL);
    pp_print_stats(client, mem);
    fclose(mem);
    CU_ASSERT(text && strstr(text, "dormant"));
    free(text);
    /* A burst reconnects them: each node runs jobs, every result right. */
    int ran[NSRV] = {0};
    CU_ASSERT(burst(48, 150, names, NSRV, ran));
    for (int i = 0; i < NSRV; i++) {
        if (!ran[i])
            fprintf(stderr, "\n    node %s ran no job\n", names[i]);
        CU_ASSERT(ran[i] > 0);
    }
    /* Idle again: back to 2 open. */
    CU_ASSERT(wait_count(names, NSRV, PP_NODE_DORMANT, NSRV - 2, 10));
    CU_ASSERT(count_state(names, NSRV, PP_NODE_UP) == 2);
    for (int i = 0; i < NSRV; i++)
        CU_ASSERT(log_clean(servers[i]));
    pp_server_free(client);
    client = NULL;
    CU_ASSERT_EQUAL(count_fds(), fd0);
}

/* Three nodes with max_idle_nodes 1, all up once and then two of them
 * dormant: the index of a dormant one (names filled), or -1 (failed). */
static int three_one_dormant(char names[][64])
{
    if (start_all(3, 1, names) != 0 || !wait_count(names, 3, PP_NODE_UP, 3, 20) ||
        !wait_count(names, 3, PP_NODE_DORMANT, 2, 10))
        return -1;
    return node_state(names[0], NULL) == PP_NODE_DORMANT ? 0 : 1;
}

static void test_dormant_killed(void)
{
    char names[NSRV][64];
    int n = 3;
    int victim = three_one_dormant(names);
    CU_ASSERT_FATAL(victim >= 0);
    srv_kill9(servers[victim]);
    int ran[NSRV] = {0};
    CU_ASSERT(burst(24, 50, names, n, ran)); /* none lost */
    CU_ASSERT_EQUAL(ran[victim], 0);
    pp_node_info ni;
    int st = node_state(names[victim], &ni);
    CU_ASSERT(st == PP_NODE_DOWN || st == PP_NODE_CONNECTING);
    CU_ASSERT(ni.connects >= 2 && ni.why[0] != 0);
    int others = 0;
    for (int i = 0; i < n; i++)
        others += i != victim && ran[i] > 0;
    CU_ASSERT(others >= 1);
}

static void test_dormant_removed(void)
{
    char names[NSRV][64];
    int n = 3;
    int gone = three_one_dormant(names);
    CU_ASSERT_FATAL(gone >= 0);
    pp_node_info before;
    node_state(names[gone], &before);
    CU_ASSERT_EQUAL_FATAL(pp_remove_node(client, names[gone]), 0);
    CU_ASSERT(wait_state(names[gone], PP_NODE_REMOVED, 5));
    pp_node_info after;
    node_state(names[gone], &after);
    CU_ASSERT_EQUAL(after.connects, before.connects); /* not woken to be removed */
    int ran[NSRV] = {0};
    CU_ASSERT(burst(12, 20, names, n, ran));
    CU_ASSERT_EQUAL(ran[gone], 0);
    CU_ASSERT(log_clean(servers[gone]));
}

static void test_limits(void)
{
    char names[NSRV][64];
    /* -1: never closed. */
    CU_ASSERT_FATAL(start_all(3, -1, names) == 0);
    CU_ASSERT_FATAL(wait_count(names, 3, PP_NODE_UP, 3, 20));
    sleep_s(1.5); /* past the idle period */
    CU_ASSERT_EQUAL(count_state(names, 3, PP_NODE_UP), 3);
    CU_ASSERT_EQUAL(sockets_to_nodes(3), 3);
    /* Below -1: refused. */
    pp_config cfg = {.ncpus = 0, .max_idle_nodes = -2};
    pp_server *s = pp_server_new(&cfg);
    CU_ASSERT(s == NULL && strstr(pp_last_error(), "max_idle_nodes"));
    pp_server_free(s);
}

static const pp_test tests[] = {
    {"idle: beyond max_idle_nodes, dormant; a burst runs on all", test_dormant_and_back},
    {"idle: a dormant node killed fails its reconnect, nothing lost", test_dormant_killed},
    {"idle: a dormant node removed goes at once", test_dormant_removed},
    {"idle: -1 never closes; below -1 refused", test_limits},
    {NULL, NULL},
};

int pp_register_suites(void)
{
    if (!srv_exe()) {
        printf("skipped: $PP_SERVER (the ppserver to test against) is not set\n");
        exit(77);
    }
    return pp_add_suite_with("idle", NULL, NULL, NULL, test_teardown, tests);
}
