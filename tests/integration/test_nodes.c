/* SPDX-License-Identifier: MIT */
/* test_nodes.c -- nodes at run time with real ppserver processes on
 * 127.0.0.0/8: pp_add_node() and pp_remove_node() (a removed node drains:
 * its jobs in flight finish there and are delivered, new jobs go
 * elsewhere, then it disconnects), $PP_SERVERS, nodes files ("@FILE")
 * edited, replaced and attacked while a program runs, add/remove racing
 * with submissions and a node's failure, and the states the statistics
 * show.  The attacks on each input come first in each suite.
 *
 * A name with several addresses needs a hosts file of its own: that suite
 * runs only under tests/integration/hosts_run.sh (CTest test_nodes_hosts),
 * which gives this program a private mount namespace with a scratch file
 * bind-mounted over /etc/hosts and names it in $PP_TEST_HOSTS.
 *
 * Every wait is bounded; a per-test teardown frees the clients and stops
 * every server the test left, even after a fatal assertion. */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <fcntl.h>
#include <pp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client_util.h"
#include "cunit_main.h"
#include "server_harness.h"
#include "test_tasks.h"
#include "test_util.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define SECRET "0123456789abcdef0123456789abcdef" /* for clients no node checks */

static char tmpdir[256];

/* ---- what a test leaves behind: cleaned by the per-test teardown ---- */

/* Starts a server for this test (on opts->addr, 127.0.0.1 by default);
 * NULL on failure. */
static srv_harness *start_server(const srv_opts *o)
{
    srv_harness *h = cl_server_start(o);
    if (h)
        snprintf(h->host, sizeof h->host, "%s", o && o->addr ? o->addr : "127.0.0.1");
    return h;
}

/* A client of `list` (NULL: none) with ncpus local workers; registered for
 * the teardown.  NULL (message printed) on failure. */
static pp_server *client_list(int ncpus, const char *secret, const char *const *list,
                              double resolve_interval)
{
    pp_config cfg = {.ncpus = ncpus, .ppservers = list, .secret = secret,
                     .resolve_interval = resolve_interval};
    return cl_track(pp_server_new(&cfg));
}

static void test_teardown(void)
{
    free(capture_end()); /* still shown, for a failing test's reader */
    cl_clients_free();
    cl_servers_end(cl_server_end);
}

/* ---- nodes and their states ---- */

/* A node with `workers` workers, its name in name (64 bytes), and a client
 * of it alone, the node up; or a fatal failure. */
static pp_server *one_node(const char *workers, srv_harness **a, char *name)
{
    *a = start_server(&(srv_opts){.args = ARGS("-w", workers)});
    CU_ASSERT_PTR_NOT_NULL_FATAL(*a);
    cl_node_name(*a, name, 64);
    pp_server *s = client_list(0, (*a)->secret, ARGS(name), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_FATAL(cl_wait_up(s, *a, 10));
    return s;
}

/* Nodes a and b of one secret with wa and wb workers, their names in na
 * and nb (64 bytes each), and a client of a alone, a up; or a fatal
 * failure. */
static pp_server *a_and_b(const char *wa, const char *wb, srv_harness **a, srv_harness **b,
                          char *na, char *nb)
{
    *a = start_server(&(srv_opts){.args = ARGS("-w", wa)});
    CU_ASSERT_PTR_NOT_NULL_FATAL(*a);
    *b = start_server(&(srv_opts){.args = ARGS("-w", wb), .share_secret = *a});
    CU_ASSERT_PTR_NOT_NULL_FATAL(*b);
    cl_node_name(*a, na, 64);
    cl_node_name(*b, nb, 64);
    pp_server *s = client_list(0, (*a)->secret, ARGS(na), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_FATAL(cl_wait_up(s, *a, 10));
    return s;
}

/* The statistics table's line for `name` contains `word`. */
static int stats_line_has(pp_server *s, const char *name, const char *word)
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (!mem)
        return 0;
    pp_print_stats(s, mem);
    fclose(mem);
    int found = 0;
    for (char *line = strtok(text, "\n"); line && !found; line = strtok(NULL, "\n")) {
        while (*line == ' ')
            line++;
        size_t n = strlen(name);
        found = strncmp(line, name, n) == 0 && line[n] == ' ' && strstr(line + n, word);
    }
    if (!found)
        fprintf(stderr, "\n    no \"%s\" on %s's line of the statistics\n", word, name);
    free(text);
    return found;
}

/* pp_last_error() contains `want` (else printed). */
static int error_has(const char *want)
{
    const char *e = pp_last_error();
    int ok = e && strstr(e, want) != NULL;
    if (!ok)
        fprintf(stderr, "\n    error \"%s\" lacks \"%s\"\n", e ? e : "(null)", want);
    return ok;
}

/* t_square(v) ran on `node` (NULL: anywhere) with the right result. */
static int square_on(pp_server *s, long v, const char *node, double limit)
{
    pp_job *j = pp_submitf(s, t_square, NULL, "l", v);
    int st = j ? pp_job_wait_for(j, limit) : -1;
    long r = 0;
    int ok = st == PP_DONE && pp_job_unpack(j, "l", &r) == 0 && r == v * v &&
             (!node || strcmp(pp_job_node(j), node) == 0);
    if (!ok)
        fprintf(stderr, "\n    t_square(%ld): status %d (%s) on \"%s\", wanted %s\n", v, st,
                j ? pp_job_error(j) : pp_last_error(), j ? pp_job_node(j) : "",
                node ? node : "any node");
    pp_job_free(j);
    return ok;
}

/* n t_square jobs, all done right on `node`. */
static int squares_on(pp_server *s, int n, const char *node)
{
    int ok = 1;
    for (int i = 0; i < n && ok; i++)
        ok = square_on(s, 3 + i, node, 20);
    return ok;
}

/* A callback counting its calls in the atomic_int it is given. */
static void count_cb(pp_job *j, void *arg)
{
    (void)j;
    atomic_fetch_add((atomic_int *)arg, 1);
}

/* ---- long jobs whose start the test can see ---- */

#define LONG_MAX_JOBS 8

typedef struct long_jobs {
    pp_job *j[LONG_MAX_JOBS];
    char marker[LONG_MAX_JOBS][300];
    int n;
} long_jobs;

/* n jobs of ms milliseconds; 1 once every one runs on a worker (its marker
 * file exists), 0 if not within 20 s. */
static int long_start(pp_server *s, long_jobs *lj, int n, long ms, const char *tag)
{
    lj->n = n;
    for (int i = 0; i < n; i++) {
        snprintf(lj->marker[i], sizeof lj->marker[i], "%s/%s-%d", tmpdir, tag, i);
        unlink(lj->marker[i]);
        lj->j[i] = pp_submitf(s, t_touch_sleep, NULL, "sll", lj->marker[i], ms, (long)(i + 5));
        if (!lj->j[i])
            return 0;
    }
    double end = now_s() + 20;
    for (int i = 0; i < n; i++)
        while (access(lj->marker[i], F_OK) != 0)
            if (now_s() > end)
                return 0;
            else
                sleep_s(0.01);
    return 1;
}

/* Every long job ended PP_DONE with its right result, on `node`.  Frees them. */
static int long_finish(long_jobs *lj, const char *node)
{
    int ok = 1;
    for (int i = 0; i < lj->n; i++) {
        int st = lj->j[i] ? pp_job_wait_for(lj->j[i], 30) : -1;
        long r = 0;
        int good = st == PP_DONE && pp_job_unpack(lj->j[i], "l", &r) == 0 &&
                   r == (long)(i + 5) * (i + 5) && strcmp(pp_job_node(lj->j[i]), node) == 0;
        if (!good)
            fprintf(stderr, "\n    long job %d: status %d (%s) on \"%s\", wanted %s\n", i, st,
                    lj->j[i] ? pp_job_error(lj->j[i]) : "", lj->j[i] ? pp_job_node(lj->j[i]) : "",
                    node);
        ok &= good;
        pp_job_free(lj->j[i]);
        lj->j[i] = NULL;
    }
    return ok;
}

/* ---- files ---- */

/* Writes `text` into path in place (same inode when it exists). */
static int write_in_place(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    size_t n = strlen(text);
    int ok = write(fd, text, n) == (ssize_t)n;
    return close(fd) == 0 && ok ? 0 : -1;
}

/* Replaces path atomically: a new file (mode 0644) renamed over it. */
static int write_renamed(const char *path, const char *text)
{
    char tmp[400];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    unlink(tmp);
    if (write_in_place(tmp, text) != 0 || chmod(tmp, 0644) != 0)
        return -1;
    return rename(tmp, path);
}

static void in_tmp(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", tmpdir, name);
}

/* ---- pp_add_node() ---- */

static void test_add_bad_names(void)
{
    pp_server *s = client_list(0, SECRET, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    char longhost[400];
    memset(longhost, 'h', 300);
    snprintf(longhost + 300, sizeof longhost - 300, ":60000");
    static const struct {
        const char *name, *why;
    } bad[] = {
        {"", "empty node address"},
        {"127.0.0.1:99999", "bad port"},
        {"127.0.0.1:0", "bad port"},
        {"127.0.0.1:-1", "bad port"},
        {"127.0.0.1:12ab", "bad port"},
        {"[::1", "bad node address"},
        {"::1:60000", "bad node address"},
        {"@", "names no nodes file"},
        {"a b:1", "a host name has only letters"},
        {"host\n:1", "a host name has only letters"},
        {NULL, "longer than 263 bytes"}, /* longhost */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *name = bad[i].name ? bad[i].name : longhost;
        CU_ASSERT_EQUAL(pp_add_node(s, name), -1);
        CU_ASSERT(error_has("pp_add_node: "));
        CU_ASSERT(error_has(bad[i].why));
    }
    CU_ASSERT_EQUAL(pp_add_node(s, NULL), -1);
    CU_ASSERT(error_has("pp_add_node: NULL node"));
    CU_ASSERT_EQUAL(pp_add_node(NULL, "127.0.0.1:1"), -1);
    CU_ASSERT(error_has("pp_add_node: NULL server"));
    pp_node_info ni[4];
    CU_ASSERT_EQUAL(pp_get_active_nodes(s, ni, 4), 1); /* "local" only */
}

/* A server made without any secret cannot take nodes later. */
static void test_add_no_secret(void)
{
    CU_ASSERT_FATAL(!getenv("PP_SECRET") && !getenv("PP_SECRET_FILE"));
    pp_server *s = client_list(1, NULL, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(pp_add_node(s, "127.0.0.1:60000"), -1);
    CU_ASSERT(error_has("pp_add_node: remote nodes need the shared secret"));
    pp_node_info ni[4];
    CU_ASSERT_EQUAL(pp_get_active_nodes(s, ni, 4), 1);
    CU_ASSERT(squares_on(s, 2, "local"));
}

static void test_add_duplicate(void)
{
    srv_harness *a = start_server(&(srv_opts){.args = ARGS("-w", "1")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    char name[64], spelled[80];
    cl_node_name(a, name, sizeof name);
    pp_server *s = client_list(0, a->secret, ARGS(name), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(pp_add_node(s, name), -1); /* queued, not yet applied */
    CU_ASSERT(error_has("is already a node"));
    CU_ASSERT_FATAL(cl_wait_up(s, a, 10));
    CU_ASSERT_EQUAL(pp_add_node(s, name), -1); /* up */
    CU_ASSERT(error_has(name));
    CU_ASSERT(error_has("is already a node"));
    snprintf(spelled, sizeof spelled, "127.0.0.1:00%d", a->port); /* spelled otherwise */
    CU_ASSERT_EQUAL(pp_add_node(s, spelled), -1);
    CU_ASSERT(error_has("is already a node"));
    pp_node_info ni[4];
    CU_ASSERT_EQUAL(pp_get_active_nodes(s, ni, 4), 2);
    CU_ASSERT(squares_on(s, 3, name));
}

/* Added at run time: up, runs jobs; removed and added again: back up. */
static void test_add_runs_jobs(void)
{
    srv_harness *a = start_server(&(srv_opts){.args = ARGS("-w", "2")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    char name[64];
    cl_node_name(a, name, sizeof name);
    pp_server *s = client_list(0, a->secret, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(pp_add_node(s, name), 0);
    int st = cl_node_state(s, name); /* listed at once */
    CU_ASSERT(st == PP_NODE_CONNECTING || st == PP_NODE_UP);
    CU_ASSERT_FATAL(cl_wait_up(s, a, 10));
    CU_ASSERT(squares_on(s, 8, name));
    pp_node_info ni;
    CU_ASSERT(cl_node_info(s, name, &ni) == 0 && ni.jobs == 8 && ni.ncpus == 2);
    CU_ASSERT_EQUAL(pp_remove_node(s, name), 0);
    CU_ASSERT(cl_wait_state(s, name, PP_NODE_REMOVED, 10));
    CU_ASSERT_EQUAL(pp_add_node(s, name), 0);
    CU_ASSERT(cl_wait_up(s, a, 10));
    CU_ASSERT(squares_on(s, 4, name));
    CU_ASSERT(cl_node_info(s, name, &ni) == 0 && ni.jobs == 12);
    pp_node_info all[4];
    CU_ASSERT_EQUAL(pp_get_active_nodes(s, all, 4), 2); /* one line per node, kept */
}

/* ---- pp_remove_node() ---- */

static void test_remove_unknown(void)
{
    pp_server *s = client_list(0, SECRET, ARGS("127.0.0.1:1"), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(pp_remove_node(s, "127.0.0.1:2"), -1);
    CU_ASSERT(error_has("pp_remove_node: 127.0.0.1:2 is not a node of this server"));
    CU_ASSERT_EQUAL(pp_remove_node(s, "127.0.0.1:99999"), -1);
    CU_ASSERT(error_has("bad port"));
    CU_ASSERT_EQUAL(pp_remove_node(s, "@"), -1);
    CU_ASSERT(error_has("names no nodes file"));
    CU_ASSERT_EQUAL(pp_remove_node(s, "@/nonexistent/nodes"), -1);
    CU_ASSERT(error_has("is not in use"));
    CU_ASSERT_EQUAL(pp_remove_node(s, "local"), -1);
    CU_ASSERT_EQUAL(pp_remove_node(s, NULL), -1);
    CU_ASSERT(error_has("pp_remove_node: NULL node"));
    CU_ASSERT_EQUAL(pp_remove_node(s, "127.0.0.1:1"), 0);
    CU_ASSERT_EQUAL(pp_remove_node(s, "127.0.0.1:1"), -1); /* queued already */
    CU_ASSERT(error_has("already removed"));
}

/* A node whose ppserver is down has nothing to drain: removed at once,
 * not after its next connection attempt. */
static void test_remove_down_node(void)
{
    srv_harness *a;
    char name[64];
    pp_server *s = one_node("1", &a, name);
    srv_kill9(a);
    double end = now_s() + 10;
    while (cl_node_state(s, name) == PP_NODE_UP && now_s() < end)
        sleep_s(0.01);
    CU_ASSERT_NOT_EQUAL(cl_node_state(s, name), PP_NODE_UP);
    CU_ASSERT_EQUAL(pp_remove_node(s, name), 0);
    CU_ASSERT(cl_wait_state(s, name, PP_NODE_REMOVED, 5));
    CU_ASSERT(stats_line_has(s, name, "removed"));
    /* It stays removed: no connection attempt after that. */
    pp_node_info ni = {0};
    CU_ASSERT_FATAL(cl_node_info(s, name, &ni) == 0);
    uint64_t connects = ni.connects;
    sleep_s(1.0);
    CU_ASSERT(cl_node_info(s, name, &ni) == 0 && ni.connects == connects &&
              ni.state == PP_NODE_REMOVED);
}

/* Long jobs on a; a removed: it drains (they finish there and are
 * delivered), new jobs go to b only, then a disconnects. */
static void test_remove_drains(void)
{
    srv_harness *a, *b;
    char na[64], nb[64];
    pp_server *s = a_and_b("3", "2", &a, &b, na, nb);
    long_jobs lj = {0};
    CU_ASSERT_FATAL(long_start(s, &lj, 3, 4000, "drain")); /* all three on a's workers */
    CU_ASSERT_EQUAL(pp_add_node(s, nb), 0);
    CU_ASSERT_FATAL(cl_wait_up(s, b, 10));
    int closed0 = srv_log_count(a, ARGS("connection closed"));
    CU_ASSERT_EQUAL(pp_remove_node(s, na), 0);
    CU_ASSERT(cl_wait_state(s, na, PP_NODE_DRAINING, 5));
    CU_ASSERT(stats_line_has(s, na, "draining"));
    CU_ASSERT_EQUAL(pp_remove_node(s, na), -1); /* draining already */
    CU_ASSERT(squares_on(s, 6, nb));           /* new jobs: b only */
    CU_ASSERT(long_finish(&lj, na));
    CU_ASSERT(cl_wait_state(s, na, PP_NODE_REMOVED, 10));
    CU_ASSERT(stats_line_has(s, na, "removed"));
    CU_ASSERT(stats_line_has(s, nb, "up"));
    pp_node_info ni;
    CU_ASSERT(cl_node_info(s, na, &ni) == 0 && ni.jobs == 3 && ni.ncpus == 0);
    CU_ASSERT(cl_node_info(s, nb, &ni) == 0 && ni.jobs == 6 && ni.state == PP_NODE_UP);
    /* a saw the client go, with none of its jobs left to stop. */
    double end = now_s() + 5;
    while (srv_log_count(a, ARGS("connection closed")) <= closed0 && now_s() < end)
        sleep_s(0.02);
    CU_ASSERT(srv_log_count(a, ARGS("connection closed")) > closed0);
    CU_ASSERT_EQUAL(srv_log_count(a, ARGS("client gone: stopping")), 0);
    pp_stats st;
    CU_ASSERT(pp_get_stats(s, &st) == 0 && st.done == 9 && st.failed == 0 && st.nodes == 3);
    CU_ASSERT(squares_on(s, 2, nb));
}

/* A draining node dies: its jobs in flight run again elsewhere, each
 * ending once with its right result; the node is removed, not retried. */
static void test_remove_dies_draining(void)
{
    srv_harness *a, *b;
    char na[64], nb[64];
    pp_server *s = a_and_b("2", "2", &a, &b, na, nb);
    long_jobs lj = {0};
    CU_ASSERT_FATAL(long_start(s, &lj, 2, 3000, "dies"));
    CU_ASSERT_EQUAL(pp_add_node(s, nb), 0);
    CU_ASSERT_FATAL(cl_wait_up(s, b, 10));
    CU_ASSERT_EQUAL(pp_remove_node(s, na), 0);
    CU_ASSERT_FATAL(cl_wait_state(s, na, PP_NODE_DRAINING, 5));
    srv_kill9(a);
    CU_ASSERT(cl_wait_state(s, na, PP_NODE_REMOVED, 10));
    CU_ASSERT(long_finish(&lj, nb)); /* run again on b */
    pp_node_info ni = {0};
    CU_ASSERT(cl_node_info(s, na, &ni) == 0 && ni.state == PP_NODE_REMOVED && ni.jobs == 0);
    uint64_t connects = ni.connects;
    sleep_s(1.0);
    CU_ASSERT(cl_node_info(s, na, &ni) == 0 && ni.connects == connects);
    pp_stats st;
    CU_ASSERT(pp_get_stats(s, &st) == 0 && st.done == 2 && st.failed == 0);
}

/* Added back while draining: in service again at once (no reconnection),
 * its jobs in flight delivered, new jobs taken. */
static void test_remove_readd_draining(void)
{
    srv_harness *a;
    char na[64];
    pp_server *s = one_node("2", &a, na);
    long_jobs lj = {0};
    CU_ASSERT_FATAL(long_start(s, &lj, 2, 2500, "readd"));
    pp_node_info ni = {0};
    CU_ASSERT_FATAL(cl_node_info(s, na, &ni) == 0);
    uint64_t connects = ni.connects;
    CU_ASSERT_EQUAL(pp_remove_node(s, na), 0);
    CU_ASSERT_FATAL(cl_wait_state(s, na, PP_NODE_DRAINING, 5));
    CU_ASSERT_EQUAL(pp_add_node(s, na), 0);
    CU_ASSERT(cl_wait_state(s, na, PP_NODE_UP, 5));
    CU_ASSERT(squares_on(s, 3, na));
    CU_ASSERT(long_finish(&lj, na));
    sleep_s(0.3);
    CU_ASSERT(cl_node_info(s, na, &ni) == 0 && ni.state == PP_NODE_UP && ni.connects == connects &&
              ni.jobs == 5);
}

/* The program ends while a node drains: its jobs end PP_CANCELLED (each
 * callback once), the node stops them, nothing leaks. */
static void test_remove_free_draining(void)
{
    srv_harness *a;
    char na[64];
    pp_server *s = one_node("2", &a, na);
    atomic_int calls[2] = {0};
    pp_job *j[2];
    char marker[2][300];
    for (int i = 0; i < 2; i++) {
        snprintf(marker[i], sizeof marker[i], "%s/free-%d", tmpdir, i);
        pp_submit_opts o = {.callback = count_cb, .callback_arg = &calls[i]};
        j[i] = pp_submitf(s, t_touch_sleep, &o, "sll", marker[i], 20000L, 2L);
        CU_ASSERT_PTR_NOT_NULL_FATAL(j[i]);
    }
    double end = now_s() + 20;
    while ((access(marker[0], F_OK) != 0 || access(marker[1], F_OK) != 0) && now_s() < end)
        sleep_s(0.01);
    CU_ASSERT_EQUAL(pp_remove_node(s, na), 0);
    CU_ASSERT(cl_wait_state(s, na, PP_NODE_DRAINING, 5));
    cl_client_free(s);
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL(pp_job_status(j[i]), PP_CANCELLED);
        CU_ASSERT_EQUAL(atomic_load(&calls[i]), 1);
        pp_job_free(j[i]);
    }
    const char *const gone[] = {"client gone: stopping its 2 job(s)", NULL};
    end = now_s() + 5;
    while (srv_log_count(a, gone) < 1 && now_s() < end)
        sleep_s(0.02);
    CU_ASSERT_EQUAL(srv_log_count(a, gone), 1);
}

/* ---- $PP_SERVERS ---- */

static void test_env_bad_entry(void)
{
    static const struct {
        const char *list, *why;
    } bad[] = {
        {"127.0.0.1:1, host:99999", "PP_SERVERS: bad port in node address \"host:99999\""},
        {"[::1", "PP_SERVERS: bad node address"},
        {"127.0.0.1:1,127.0.0.1:1", "PP_SERVERS: 127.0.0.1:1 is already a node"},
        {"@/nonexistent/nodes", "PP_SERVERS: nodes file /nonexistent/nodes"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CU_ASSERT_FATAL(setenv("PP_SERVERS", bad[i].list, 1) == 0);
        pp_server *s = pp_server_new(&(pp_config){.ncpus = 0, .secret = SECRET});
        CU_ASSERT_PTR_NULL(s);
        if (s)
            pp_server_free(s);
        CU_ASSERT(error_has("pp_server_new: "));
        CU_ASSERT(error_has(bad[i].why));
    }
    /* With pp_config.ppservers, PP_SERVERS is not looked at. */
    pp_server *s = client_list(0, SECRET, ARGS("127.0.0.1:1"), 0);
    unsetenv("PP_SERVERS");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_node_info ni[4]; /* the configured nodes are listed when pp_server_new() returns */
    CU_ASSERT_EQUAL(pp_get_active_nodes(s, ni, 4), 2);
}

static void test_env_servers(void)
{
    srv_harness *a = start_server(&(srv_opts){.args = ARGS("-w", "1")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    srv_harness *b = start_server(&(srv_opts){.args = ARGS("-w", "1"), .share_secret = a});
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    char list[200], na[64], nb[64];
    cl_node_name(a, na, sizeof na);
    cl_node_name(b, nb, sizeof nb);
    snprintf(list, sizeof list, " %s ,\t%s , ,", na, nb); /* blanks, empty entries */
    CU_ASSERT_FATAL(setenv("PP_SERVERS", list, 1) == 0);
    pp_server *s = client_list(0, a->secret, NULL, 0);
    unsetenv("PP_SERVERS");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT(cl_wait_up(s, a, 10));
    CU_ASSERT(cl_wait_up(s, b, 10));
    pp_node_info ni[4];
    CU_ASSERT_EQUAL(pp_get_active_nodes(s, ni, 4), 3);
    CU_ASSERT(squares_on(s, 4, NULL));
    /* Listed with the others: removable like them. */
    CU_ASSERT_EQUAL(pp_remove_node(s, na), 0);
    CU_ASSERT(cl_wait_state(s, na, PP_NODE_REMOVED, 10));
    CU_ASSERT(squares_on(s, 3, nb));
}

/* ---- nodes files ---- */

/* pp_server_new() with "@path" fails, saying `why`. */
static void refused_at_start(const char *path, const char *why)
{
    char entry[400];
    snprintf(entry, sizeof entry, "@%s", path);
    alarm(60); /* a hang (a FIFO opened for reading) ends the run */
    pp_server *s = pp_server_new(&(pp_config){.ncpus = 0, .ppservers = ARGS(entry),
                                              .secret = SECRET});
    alarm(0);
    CU_ASSERT_PTR_NULL(s);
    if (s)
        pp_server_free(s);
    CU_ASSERT(error_has(why));
}

/* A nodes file of `bytes` (len) with `mode`, made at path (replacing it). */
static int make_file(const char *path, const void *bytes, size_t len, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    int ok = write(fd, bytes, len) == (ssize_t)len && fchmod(fd, mode) == 0;
    return close(fd) == 0 && ok ? 0 : -1;
}

static void test_file_refused_at_start(void)
{
    char path[300], msg[400];
    in_tmp(path, sizeof path, "bad-nodes");
    CU_ASSERT_FATAL(make_file(path, "127.0.0.1:1\n", 12, 0666) == 0);
    refused_at_start(path, "others may write it");
    CU_ASSERT_FATAL(make_file(path, "127.0.0.1:1\n", 12, 0602) == 0);
    refused_at_start(path, "others may write it");
    unlink(path);
    CU_ASSERT_FATAL(mkfifo(path, 0600) == 0);
    refused_at_start(path, "not a regular file");
    unlink(path);
    CU_ASSERT_FATAL(symlink("/dev/zero", path) == 0);
    refused_at_start(path, "not a regular file");
    unlink(path);
    refused_at_start(path, "No such file or directory");
    refused_at_start(tmpdir, "not a regular file");
    size_t big = (1u << 20) + 1;
    char *buf = malloc(big);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    for (size_t i = 0; i < big; i++) /* "# xxxx...\n" lines: harmless, only too many */
        buf[i] = i % 64 == 0 ? '#' : i % 64 == 63 ? '\n' : 'x';
    CU_ASSERT_FATAL(make_file(path, buf, big, 0644) == 0);
    refused_at_start(path, "larger than 1048576 bytes");
    memset(buf, 'h', 2000); /* line 2: a 2000-byte name */
    memcpy(buf, "127.0.0.1:1\n", 12);
    CU_ASSERT_FATAL(make_file(path, buf, 2000, 0644) == 0);
    snprintf(msg, sizeof msg, "nodes file %s line 2: longer than 1024 bytes", path);
    refused_at_start(path, msg);
    size_t used = 0; /* 4097 distinct names: one more than a file may hold */
    for (int i = 0; i < 4097; i++)
        used += (size_t)snprintf(buf + used, big - used, "n%d.invalid:%d\n", i, 1 + i % 9);
    CU_ASSERT_FATAL(make_file(path, buf, used, 0644) == 0);
    snprintf(msg, sizeof msg, "nodes file %s line 4097: more than 4096 nodes", path);
    refused_at_start(path, msg);
    CU_ASSERT_FATAL(make_file(path, "127.0.0.1:1\n127.0\0.0.1:2\n", 24, 0644) == 0);
    refused_at_start(path, "binary data (a NUL byte)");
    static const char *const garbage[][2] = {
        {"# nodes\n127.0.0.1:1\nnot a node at all\n", "line 3: bad node address"},
        {"\n\n\n\n127.0.0.1:65536\n", "line 5: bad port"},
        {"127.0.0.1:1\n[::1\n", "line 2: bad node address"},
        {"\xff\xfe\x01\x02:12\n", "line 1: bad node address"},
        {"127.0.0.1:1\nnode-a 60000\n", "line 2: bad node address"},
        {"@/etc/hosts\n", "line 1: bad node address"}, /* files do not nest */
        {":60000\n", "line 1:"},
    };
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        CU_ASSERT_FATAL(make_file(path, garbage[i][0], strlen(garbage[i][0]), 0644) == 0);
        snprintf(msg, sizeof msg, "nodes file %s %s", path, garbage[i][1]);
        refused_at_start(path, msg);
    }
    free(buf);
    unlink(path);
}

/* Comments, blank lines, blanks and CRs are accepted; an empty file is no
 * node; the same file twice in the list is refused. */
static void test_file_comments(void)
{
    srv_harness *a = start_server(&(srv_opts){.args = ARGS("-w", "1")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    char na[64], path[300], text[400], entry[320];
    cl_node_name(a, na, sizeof na);
    in_tmp(path, sizeof path, "nodes-comments");
    snprintf(text, sizeof text,
             "# the cluster\n\n   \t\n  %s  # node a\r\n#127.0.0.1:1\n%s\n", na, na);
    CU_ASSERT_FATAL(make_file(path, text, strlen(text), 0644) == 0);
    snprintf(entry, sizeof entry, "@%s", path);
    pp_server *bad = pp_server_new(&(pp_config){.ncpus = 0, .ppservers = ARGS(entry, entry),
                                                .secret = a->secret});
    CU_ASSERT_PTR_NULL(bad);
    if (bad)
        pp_server_free(bad);
    CU_ASSERT(error_has("already in use"));
    pp_server *s = client_list(0, a->secret, ARGS(entry), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT(cl_wait_up(s, a, 10));
    pp_node_info ni[4];
    CU_ASSERT_EQUAL(pp_get_active_nodes(s, ni, 4), 2); /* listed twice: one node */
    CU_ASSERT(squares_on(s, 3, na));
    char empty[300];
    in_tmp(empty, sizeof empty, "nodes-empty");
    CU_ASSERT_FATAL(make_file(empty, "# none yet\n", 11, 0644) == 0);
    snprintf(entry, sizeof entry, "@%s", empty);
    CU_ASSERT_EQUAL(pp_add_node(s, entry), 0);
    sleep_s(0.2);
    CU_ASSERT_EQUAL(pp_get_active_nodes(s, ni, 4), 2);
}

/* One poll of the nodes files and the one after it (a change is applied
 * once it held still for a poll): long enough for any change to be seen. */
#define FILE_SETTLE 6.0

/* Two nodes a and b sharing a secret, and a client whose nodes file
 * `path` lists a only, a up.  0, or -1 (the test stops). */
typedef struct file_pair {
    srv_harness *a, *b;
    char na[64], nb[64], path[300];
    pp_server *s;
} file_pair;

static int file_pair_start(file_pair *f, const char *workers, const char *file)
{
    *f = (file_pair){0};
    f->a = start_server(&(srv_opts){.args = ARGS("-w", workers)});
    f->b = f->a ? start_server(&(srv_opts){.args = ARGS("-w", workers), .share_secret = f->a})
                : NULL;
    if (!f->b)
        return -1;
    char entry[320], text[80];
    cl_node_name(f->a, f->na, sizeof f->na);
    cl_node_name(f->b, f->nb, sizeof f->nb);
    in_tmp(f->path, sizeof f->path, file);
    snprintf(text, sizeof text, "%s\n", f->na);
    if (write_renamed(f->path, text) != 0)
        return -1;
    snprintf(entry, sizeof entry, "@%s", f->path);
    f->s = client_list(0, f->a->secret, ARGS(entry), 0);
    return f->s && cl_wait_up(f->s, f->a, 10) ? 0 : -1;
}

/* The nodes file turns bad while the program runs: each time the nodes stay
 * as they were (a warning, no hang), until it is good again. */
static void test_file_bad_change(void)
{
    CU_ASSERT_FATAL(capture_start(tmpdir) == 0);
    file_pair f;
    CU_ASSERT_FATAL(file_pair_start(&f, "1", "nodes-bad-change") == 0);
    const char *na = f.na, *nb = f.nb, *path = f.path;
    pp_server *s = f.s;
    char text[200];
    /* Others may write it: refused, even though it lists good nodes. */
    snprintf(text, sizeof text, "%s\n%s\n", na, nb);
    CU_ASSERT_FATAL(write_in_place(path, text) == 0 && chmod(path, 0666) == 0);
    CU_ASSERT_EQUAL(wait_captured("others may write it", 1, FILE_SETTLE), 1);
    CU_ASSERT(wait_captured("the nodes stay as they were", 1, 1) >= 1);
    sleep_s(2.2); /* two more polls: still refused, logged once */
    CU_ASSERT_EQUAL(captured_count("others may write it"), 1);
    CU_ASSERT_EQUAL(cl_node_state(s, nb), -1);
    CU_ASSERT(squares_on(s, 2, na));
    /* Mended with chmod alone: now read, b joins. */
    CU_ASSERT_FATAL(chmod(path, 0644) == 0);
    CU_ASSERT(cl_wait_state(s, nb, PP_NODE_UP, FILE_SETTLE + 10));
    /* A FIFO renamed over it: no hang, the nodes stay. */
    char tmp[320];
    snprintf(tmp, sizeof tmp, "%s.fifo", path);
    CU_ASSERT_FATAL(mkfifo(tmp, 0644) == 0 && rename(tmp, path) == 0);
    CU_ASSERT_EQUAL(wait_captured("not a regular file", 1, FILE_SETTLE), 1);
    CU_ASSERT(squares_on(s, 2, NULL));
    CU_ASSERT(cl_node_state(s, na) == PP_NODE_UP && cl_node_state(s, nb) == PP_NODE_UP);
    /* Good again (a only): b drains. */
    snprintf(text, sizeof text, "%s\n", na);
    CU_ASSERT_FATAL(write_renamed(path, text) == 0);
    CU_ASSERT(cl_wait_state(s, nb, PP_NODE_REMOVED, FILE_SETTLE + 10));
    /* Then a garbage line: the nodes as they were. */
    CU_ASSERT_FATAL(write_in_place(path, "# only one\n127.0.0.1:1\nno such:port\n") == 0);
    CU_ASSERT_EQUAL(wait_captured("line 3: bad port", 1, FILE_SETTLE), 1);
    CU_ASSERT(cl_node_state(s, na) == PP_NODE_UP && cl_node_state(s, nb) == PP_NODE_REMOVED);
    CU_ASSERT_EQUAL(cl_node_state(s, "127.0.0.1:1"), -1);
    CU_ASSERT(squares_on(s, 2, NULL));
}

/* The nodes file edited mid-run, with long jobs in flight each time: by
 * rename (a's line replaced by b's: a drains, its jobs delivered, b joins),
 * then in place (back to a: b drains the same way, a comes back). */
static void test_file_edited(void)
{
    file_pair f;
    CU_ASSERT_FATAL(file_pair_start(&f, "2", "nodes-edited") == 0);
    srv_harness *a = f.a, *b = f.b;
    const char *na = f.na, *nb = f.nb, *path = f.path;
    pp_server *s = f.s;
    char text[200];
    long_jobs lj = {0};
    CU_ASSERT_FATAL(long_start(s, &lj, 2, 5000, "edit-a")); /* on a: the only node */
    snprintf(text, sizeof text, "# a went\n%s\n", nb);
    CU_ASSERT_FATAL(write_renamed(path, text) == 0);
    CU_ASSERT(cl_wait_state(s, na, PP_NODE_DRAINING, FILE_SETTLE));
    CU_ASSERT(cl_wait_up(s, b, 10));
    CU_ASSERT(squares_on(s, 4, nb));
    CU_ASSERT(long_finish(&lj, na));
    CU_ASSERT(cl_wait_state(s, na, PP_NODE_REMOVED, 10));
    CU_ASSERT_FATAL(long_start(s, &lj, 2, 5000, "edit-b")); /* on b: the only node */
    snprintf(text, sizeof text, "%s\n", na);
    CU_ASSERT_FATAL(write_in_place(path, text) == 0);
    CU_ASSERT(cl_wait_state(s, nb, PP_NODE_DRAINING, FILE_SETTLE));
    CU_ASSERT(cl_wait_up(s, a, 10));
    CU_ASSERT(squares_on(s, 4, na));
    CU_ASSERT(long_finish(&lj, nb));
    CU_ASSERT(cl_wait_state(s, nb, PP_NODE_REMOVED, 10));
    pp_node_info ni;
    CU_ASSERT(cl_node_info(s, na, &ni) == 0 && ni.jobs == 6);
    CU_ASSERT(cl_node_info(s, nb, &ni) == 0 && ni.jobs == 6);
}

/* The nodes file deleted mid-run: the nodes stay, one warning; put back,
 * it is followed again. */
static void test_file_deleted(void)
{
    CU_ASSERT_FATAL(capture_start(tmpdir) == 0);
    file_pair f;
    CU_ASSERT_FATAL(file_pair_start(&f, "1", "nodes-deleted") == 0);
    srv_harness *b = f.b;
    const char *na = f.na, *nb = f.nb, *path = f.path;
    pp_server *s = f.s;
    char text[200];
    CU_ASSERT_FATAL(unlink(path) == 0);
    CU_ASSERT_EQUAL(wait_captured("No such file or directory", 1, FILE_SETTLE), 1);
    sleep_s(2.5); /* more polls */
    CU_ASSERT_EQUAL(captured_count("No such file or directory"), 1);
    CU_ASSERT_EQUAL(captured_count("the nodes stay as they were"), 1);
    CU_ASSERT(cl_node_state(s, na) == PP_NODE_UP);
    CU_ASSERT(squares_on(s, 2, na));
    snprintf(text, sizeof text, "%s\n%s\n", na, nb);
    CU_ASSERT_FATAL(write_renamed(path, text) == 0);
    CU_ASSERT(cl_wait_up(s, b, FILE_SETTLE + 10));
    CU_ASSERT(cl_node_state(s, na) == PP_NODE_UP);
}

/* pp_add_node("@FILE2") and pp_remove_node("@FILE2"). */
static void test_file_api(void)
{
    srv_harness *a, *b;
    char na[64], nb[64], path[300], entry[320], text[200], bad[300], badentry[320];
    pp_server *s = a_and_b("1", "1", &a, &b, na, nb);
    in_tmp(bad, sizeof bad, "nodes-api-bad");
    CU_ASSERT_FATAL(make_file(bad, "127.0.0.1:1\n", 12, 0646) == 0);
    snprintf(badentry, sizeof badentry, "@%s", bad);
    CU_ASSERT_EQUAL(pp_add_node(s, badentry), -1);
    CU_ASSERT(error_has("pp_add_node: nodes file"));
    CU_ASSERT(error_has("others may write it"));
    CU_ASSERT_EQUAL(pp_remove_node(s, badentry), -1);
    CU_ASSERT(error_has("is not in use"));
    in_tmp(path, sizeof path, "nodes-api");
    snprintf(text, sizeof text, "%s\n%s\n", na, nb); /* a in the list and the file */
    CU_ASSERT_FATAL(write_renamed(path, text) == 0);
    snprintf(entry, sizeof entry, "@%s", path);
    CU_ASSERT_EQUAL(pp_add_node(s, entry), 0);
    CU_ASSERT(cl_wait_up(s, b, 10));
    CU_ASSERT_EQUAL(pp_add_node(s, entry), -1);
    CU_ASSERT(error_has("already in use"));
    CU_ASSERT(squares_on(s, 4, NULL));
    CU_ASSERT_EQUAL(pp_remove_node(s, entry), 0);
    CU_ASSERT(cl_wait_state(s, nb, PP_NODE_REMOVED, 10));
    sleep_s(0.3);
    CU_ASSERT_EQUAL(cl_node_state(s, na), PP_NODE_UP); /* still wanted by the list */
    CU_ASSERT_EQUAL(pp_remove_node(s, entry), -1);
    CU_ASSERT(error_has("is not in use"));
    CU_ASSERT(squares_on(s, 2, na));
    CU_ASSERT_EQUAL(pp_add_node(s, entry), 0); /* again: b back */
    CU_ASSERT(cl_wait_up(s, b, 10));
    /* At most 24 nodes files at once (a source bit each). */
    int added = 1;
    char many[300], manyentry[320];
    for (int i = 0; i < 24; i++) {
        snprintf(many, sizeof many, "%s/nodes-many-%d", tmpdir, i);
        snprintf(manyentry, sizeof manyentry, "@%s", many);
        CU_ASSERT_FATAL(make_file(many, "# none\n", 7, 0644) == 0);
        if (pp_add_node(s, manyentry) == 0)
            added++;
    }
    CU_ASSERT_EQUAL(added, 24);
    CU_ASSERT(error_has("at most 24 nodes files"));
    CU_ASSERT_EQUAL(pp_remove_node(s, entry), 0); /* one freed: the last one fits */
    CU_ASSERT_EQUAL(pp_add_node(s, manyentry), 0);
    CU_ASSERT(cl_wait_state(s, nb, PP_NODE_REMOVED, 10));
    CU_ASSERT(squares_on(s, 2, na));
}

/* ---- add/remove racing with submissions and a node's failure ---- */

#define RACE_THREADS 3
#define RACE_JOBS 150 /* per thread */
#define RACE_ROUNDS 15

typedef struct race {
    pp_server *s;
    const char *churn;                 /* the node added and removed */
    pp_job *jobs[RACE_THREADS * RACE_JOBS];
    atomic_int calls[RACE_THREADS * RACE_JOBS];
    atomic_int submit_failed, change_failed;
} race;

typedef struct race_arg {
    race *r;
    int t;
} race_arg;

static int64_t race_ms(int k)
{
    return 5 + k % 20;
}

static void *race_submit(void *arg)
{
    race_arg *ra = arg;
    race *r = ra->r;
    for (int i = 0; i < RACE_JOBS; i++) {
        int k = ra->t * RACE_JOBS + i;
        int64_t ms = race_ms(k);
        pp_submit_opts o = {.callback = count_cb, .callback_arg = &r->calls[k]};
        r->jobs[k] = pp_submit(r->s, t_sleep8, &ms, sizeof ms, &o);
        if (!r->jobs[k])
            atomic_fetch_add(&r->submit_failed, 1);
        if (i % 10 == 0)
            sleep_s(0.01); /* spread over the changes */
    }
    return NULL;
}

static void *race_change(void *arg)
{
    race *r = arg;
    for (int i = 0; i < RACE_ROUNDS; i++) {
        if (pp_add_node(r->s, r->churn) != 0) {
            fprintf(stderr, "\n    %s\n", pp_last_error());
            atomic_fetch_add(&r->change_failed, 1);
        }
        sleep_s(0.02 * (i % 5));
        if (pp_remove_node(r->s, r->churn) != 0) {
            fprintf(stderr, "\n    %s\n", pp_last_error());
            atomic_fetch_add(&r->change_failed, 1);
        }
        sleep_s(0.1);
    }
    return NULL;
}

/* Every job ended once (one callback), PP_DONE, its right result. */
static void race_check(race *r)
{
    int bad = 0;
    for (int k = 0; k < RACE_THREADS * RACE_JOBS; k++) {
        pp_job *j = r->jobs[k];
        int st = j ? pp_job_wait_for(j, 30) : -1;
        size_t len = 0;
        const int64_t *v = st == PP_DONE ? pp_job_result(j, &len) : NULL;
        int calls = atomic_load(&r->calls[k]);
        if (st != PP_DONE || !v || len != sizeof *v || *v != race_ms(k) || calls != 1) {
            if (bad++ < 5)
                fprintf(stderr, "\n    job %d: status %d (%s), %d callback(s)\n", k, st,
                        j ? pp_job_error(j) : "", calls);
        }
        pp_job_free(j);
    }
    CU_ASSERT_EQUAL(bad, 0);
}

static void test_race_add_remove_failover(void)
{
    srv_harness *hs[3];
    for (int i = 0; i < 3; i++) {
        hs[i] = start_server(&(srv_opts){.args = ARGS("-w", "2"), .share_secret = i ? hs[0] : NULL});
        CU_ASSERT_PTR_NOT_NULL_FATAL(hs[i]);
    }
    char na[64], nb[64], nc[64];
    cl_node_name(hs[0], na, sizeof na);
    cl_node_name(hs[1], nb, sizeof nb);
    cl_node_name(hs[2], nc, sizeof nc);
    race *r = calloc(1, sizeof *r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    r->s = client_list(1, hs[0]->secret, ARGS(na, nb), 0);
    r->churn = nc;
    if (!r->s || !cl_wait_up(r->s, hs[0], 10) || !cl_wait_up(r->s, hs[1], 10)) {
        free(r);
        CU_FAIL_FATAL("nodes not up");
    }
    pthread_t th[RACE_THREADS + 1];
    race_arg ra[RACE_THREADS];
    int started = 0;
    for (int t = 0; t < RACE_THREADS; t++) {
        ra[t] = (race_arg){r, t};
        started += pthread_create(&th[t], NULL, race_submit, &ra[t]) == 0;
    }
    started += pthread_create(&th[RACE_THREADS], NULL, race_change, r) == 0;
    sleep_s(0.4);
    srv_kill9(hs[1]); /* b fails mid-run, then comes back on its port */
    sleep_s(0.4);
    int restarted = srv_start(hs[1], &(srv_opts){.args = ARGS("-w", "2"), .port = hs[1]->port});
    for (int t = 0; t < started; t++)
        pthread_join(th[t], NULL);
    CU_ASSERT_EQUAL(started, RACE_THREADS + 1);
    CU_ASSERT_EQUAL(restarted, 0);
    CU_ASSERT_EQUAL(atomic_load(&r->submit_failed), 0);
    CU_ASSERT_EQUAL(atomic_load(&r->change_failed), 0);
    CU_ASSERT_EQUAL(pp_wait_for(r->s, NULL, 60), 0);
    race_check(r);
    CU_ASSERT(cl_wait_state(r->s, nc, PP_NODE_REMOVED, 10));
    CU_ASSERT(cl_wait_up(r->s, hs[1], 10));
    pp_stats st;
    CU_ASSERT(pp_get_stats(r->s, &st) == 0 && st.done == RACE_THREADS * RACE_JOBS &&
              st.failed == 0);
    CU_ASSERT(squares_on(r->s, 2, NULL));
    free(r);
}

/* pp_add_node() and pp_remove_node() of one name in a tight loop, while
 * the scheduler applies them: each call sees the one before it (a request
 * being applied still counts), so none fails. */
static void test_race_tight_loop(void)
{
    srv_harness *a = start_server(&(srv_opts){.args = ARGS("-w", "1")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    char na[64];
    cl_node_name(a, na, sizeof na);
    pp_server *s = client_list(0, a->secret, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    int failed = 0;
    for (int i = 0; i < 3000 && failed < 3; i++) {
        int rc = i % 2 ? pp_remove_node(s, na) : pp_add_node(s, na);
        if (rc != 0) {
            fprintf(stderr, "\n    round %d: %s\n", i, pp_last_error());
            failed++;
        }
        if (i % 100 == 99)
            sleep_s(0.002); /* let the scheduler catch up now and then */
    }
    CU_ASSERT_EQUAL(failed, 0);
    CU_ASSERT(cl_wait_state(s, na, PP_NODE_REMOVED, 10));
    CU_ASSERT_EQUAL(pp_add_node(s, na), 0);
    CU_ASSERT(cl_wait_up(s, a, 10));
    CU_ASSERT(squares_on(s, 2, na));
}

/* ---- a name with several addresses (under hosts_run.sh only) ---- */

#define MULTI "pptest-multi"

/* Writes /etc/hosts in place, after checking that it is the scratch file
 * bind-mounted there (never the machine's own). */
static int hosts_write(const char *text)
{
    const char *scratch = getenv("PP_TEST_HOSTS");
    struct stat a, b;
    if (!scratch || stat(scratch, &a) != 0 || stat("/etc/hosts", &b) != 0 ||
        a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
        fprintf(stderr, "\n    /etc/hosts is not the scratch file $PP_TEST_HOSTS\n");
        return -1;
    }
    return write_in_place("/etc/hosts", text);
}

/* Jobs until each named node ran one (bounded); 1 when they all did, every
 * result right. */
static int jobs_reach(pp_server *s, const char *const *nodes, int n)
{
    int ran[8] = {0}, all = 0, ok = 1;
    for (int round = 0; round < 20 && !all && ok; round++) {
        pp_job *j[8];
        for (int i = 0; i < 8; i++) {
            int64_t ms = 30 + i;
            j[i] = pp_submit(s, t_sleep8, &ms, sizeof ms, NULL);
        }
        for (int i = 0; i < 8; i++) {
            size_t len = 0;
            const int64_t *v = j[i] && pp_job_wait_for(j[i], 20) == PP_DONE
                                   ? pp_job_result(j[i], &len)
                                   : NULL;
            ok &= v && len == sizeof *v && *v == 30 + i;
            for (int k = 0; k < n && v; k++)
                ran[k] |= strcmp(pp_job_node(j[i]), nodes[k]) == 0;
            pp_job_free(j[i]);
        }
        all = 1;
        for (int k = 0; k < n; k++)
            all &= ran[k];
    }
    return ok && all;
}

static void test_hosts_several_addresses(void)
{
    srv_harness *a = start_server(&(srv_opts){.args = ARGS("-w", "1"), .addr = "127.0.0.2"});
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    srv_harness *b = start_server(&(srv_opts){.args = ARGS("-w", "1"), .addr = "127.0.0.3",
                                              .port = a->port, .share_secret = a});
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_FATAL(hosts_write("127.0.0.1 localhost\n127.0.0.2 " MULTI "\n"
                                "127.0.0.3 " MULTI "\n") == 0);
    char name[64], n2[96], n3[96];
    snprintf(name, sizeof name, MULTI ":%d", a->port);
    snprintf(n2, sizeof n2, "%s (127.0.0.2)", name);
    snprintf(n3, sizeof n3, "%s (127.0.0.3)", name);
    pp_server *s = client_list(0, a->secret, ARGS(name), 0.5);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT(cl_wait_state(s, n2, PP_NODE_UP, 10));
    CU_ASSERT(cl_wait_state(s, n3, PP_NODE_UP, 10));
    CU_ASSERT(cl_wait_state(s, name, PP_NODE_REMOVED, 10)); /* the name: its addresses now */
    CU_ASSERT(jobs_reach(s, ARGS(n2, n3), 2));
    CU_ASSERT_EQUAL(pp_add_node(s, name), -1);
    CU_ASSERT(error_has("is already a node"));
    /* One address left: the other drains and goes; this one stays up,
     * on the connection it had. */
    pp_node_info before = {0}, after = {0};
    CU_ASSERT(cl_node_info(s, n2, &before) == 0);
    CU_ASSERT_FATAL(hosts_write("127.0.0.1 localhost\n127.0.0.2 " MULTI "\n") == 0);
    CU_ASSERT(cl_wait_state(s, n3, PP_NODE_REMOVED, 10));
    CU_ASSERT(stats_line_has(s, n3, "removed"));
    sleep_s(1.2); /* two more lookups */
    CU_ASSERT(cl_node_info(s, n2, &after) == 0 && after.state == PP_NODE_UP &&
              after.connects == before.connects);
    CU_ASSERT_EQUAL(cl_node_state(s, name), PP_NODE_REMOVED);
    CU_ASSERT(squares_on(s, 3, n2));
    /* Both again: the removed one comes back. */
    CU_ASSERT_FATAL(hosts_write("127.0.0.1 localhost\n127.0.0.2 " MULTI "\n"
                                "127.0.0.3 " MULTI "\n") == 0);
    CU_ASSERT(cl_wait_state(s, n3, PP_NODE_UP, 10));
    CU_ASSERT_EQUAL(cl_node_state(s, n2), PP_NODE_UP);
    /* The name no longer resolves: a failing lookup is not a node gone. */
    CU_ASSERT_FATAL(hosts_write("127.0.0.1 localhost\n") == 0);
    sleep_s(1.2); /* two lookups */
    CU_ASSERT(cl_node_state(s, n2) == PP_NODE_UP && cl_node_state(s, n3) == PP_NODE_UP);
    CU_ASSERT(squares_on(s, 2, NULL));
    /* Removed by its name: every address goes. */
    CU_ASSERT_EQUAL(pp_remove_node(s, name), 0);
    CU_ASSERT(cl_wait_state(s, n2, PP_NODE_REMOVED, 10));
    CU_ASSERT(cl_wait_state(s, n3, PP_NODE_REMOVED, 10));
}

/* ---- suites ---- */

static int suite_init(void)
{
    snprintf(tmpdir, sizeof tmpdir, "%s/pp-nodes-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int suite_clean(void)
{
    if (tmpdir[0])
        rm_tree(tmpdir);
    tmpdir[0] = 0;
    return 0;
}

static const pp_test add_tests[] = {
    {"add: bad names", test_add_bad_names},
    {"add: no secret", test_add_no_secret},
    {"add: already a node", test_add_duplicate},
    {"add: at run time, removed and added again", test_add_runs_jobs},
    {NULL, NULL},
};
static const pp_test remove_tests[] = {
    {"remove: unknown and bad names", test_remove_unknown},
    {"remove: node down, removed at once", test_remove_down_node},
    {"remove: drains, jobs in flight delivered", test_remove_drains},
    {"remove: node dies while draining", test_remove_dies_draining},
    {"remove: added back while draining", test_remove_readd_draining},
    {"remove: program ends while a node drains", test_remove_free_draining},
    {NULL, NULL},
};
static const pp_test env_tests[] = {
    {"PP_SERVERS: bad entries", test_env_bad_entry},
    {"PP_SERVERS: the list", test_env_servers},
    {NULL, NULL},
};
static const pp_test file_tests[] = {
    {"file: refused at start", test_file_refused_at_start},
    {"file: turns bad mid-run", test_file_bad_change},
    {"file: comments and blank lines", test_file_comments},
    {"file: edited mid-run", test_file_edited},
    {"file: deleted mid-run", test_file_deleted},
    {"file: pp_add_node and pp_remove_node of @FILE", test_file_api},
    {NULL, NULL},
};
static const pp_test race_tests[] = {
    {"race: add/remove in a tight loop", test_race_tight_loop},
    {"race: add/remove, submitters, a node killed", test_race_add_remove_failover},
    {NULL, NULL},
};
static const pp_test hosts_tests[] = {
    {"hosts: a name with several addresses", test_hosts_several_addresses},
    {NULL, NULL},
};

static int add(const char *name, const pp_test *tests)
{
    return pp_add_suite_with(name, suite_init, suite_clean, NULL, test_teardown, tests);
}

int pp_register_suites(void)
{
    if (!srv_exe()) {
        printf("skipped: $PP_SERVER (the ppserver to test against) is not set\n");
        exit(77);
    }
    if (getenv("PP_TEST_HOSTS"))
        return add("hosts", hosts_tests);
    return add("add", add_tests) || add("remove", remove_tests) || add("env", env_tests) ||
                   add("files", file_tests) || add("race", race_tests)
               ? -1
               : 0;
}
