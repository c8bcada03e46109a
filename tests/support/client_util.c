/* SPDX-License-Identifier: MIT */
/* client_util.c -- libpp clients of real ppservers for the integration
 * suites (see client_util.h). */
#include "client_util.h"

#include <CUnit/CUnit.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "test_util.h"

#define MAX_CLIENTS 64
#define MAX_SERVERS 16
#define MAX_NODES 16
#define MAX_LIST 8

static pp_server *clients[MAX_CLIENTS];
static srv_harness *servers[MAX_SERVERS];
static pthread_mutex_t clients_mu = PTHREAD_MUTEX_INITIALIZER;

int cl_suite_env(void)
{
    if (!srv_exe() || !getenv("PP_WORKER") || !getenv("PP_TEST_TASKS")) {
        fprintf(stderr, "PP_SERVER, PP_WORKER and PP_TEST_TASKS must be set\n");
        return -1;
    }
    unsetenv("PP_SECRET");
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

pp_server *cl_new(const pp_config *cfg)
{
    pp_server *s = pp_server_new(cfg);
    if (!s)
        fprintf(stderr, "\n    pp_server_new: %s\n", pp_last_error());
    return s;
}

pp_server *cl_track(pp_server *s)
{
    if (!s) {
        fprintf(stderr, "\n    pp_server_new: %s\n", pp_last_error());
        return NULL;
    }
    pthread_mutex_lock(&clients_mu);
    int kept = 0;
    for (int i = 0; i < MAX_CLIENTS && !kept; i++)
        if (!clients[i]) {
            clients[i] = s;
            kept = 1;
        }
    pthread_mutex_unlock(&clients_mu);
    if (!kept) /* the test frees it itself, or it leaks */
        fprintf(stderr, "\n    more than %d clients at once: one not kept\n", MAX_CLIENTS);
    return s;
}

void cl_client_forget(pp_server *s)
{
    pthread_mutex_lock(&clients_mu);
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (clients[i] == s)
            clients[i] = NULL;
    pthread_mutex_unlock(&clients_mu);
}

void cl_client_free(pp_server *s)
{
    if (!s)
        return;
    cl_client_forget(s);
    pp_server_free(s);
}

void cl_clients_free(void)
{
    for (int i = 0; i < MAX_CLIENTS; i++) {
        pthread_mutex_lock(&clients_mu);
        pp_server *s = clients[i];
        clients[i] = NULL;
        pthread_mutex_unlock(&clients_mu);
        pp_server_free(s);
    }
}

srv_harness *cl_server_start(const srv_opts *o)
{
    srv_harness *h = calloc(1, sizeof *h);
    return h ? cl_server_start_on(h, o) : NULL;
}

srv_harness *cl_server_start_on(srv_harness *h, const srv_opts *o)
{
    int slot = -1;
    for (int i = 0; i < MAX_SERVERS && slot < 0; i++)
        if (!servers[i])
            slot = i;
    if (slot < 0 || srv_start(h, o) != 0) {
        srv_cleanup(h);
        free(h);
        return NULL;
    }
    servers[slot] = h;
    return h;
}

void cl_server_end(srv_harness *h)
{
    if (h->pid > 0)
        srv_stop(h, 10); /* first: its workers write to its log */
    if (srv_sanitizer_report(h))
        CU_FAIL("sanitizer report from ppserver or its workers");
}

void cl_server_end_exit0(srv_harness *h)
{
    if (h->pid > 0) {
        int st = srv_stop(h, 10);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            char *err = srv_read_stderr(h);
            fprintf(stderr, "\n    ppserver did not exit 0 on SIGTERM (status 0x%x): %s\n", st,
                    err);
            free(err);
            CU_FAIL("ppserver did not exit 0 on SIGTERM");
        }
    }
    if (srv_sanitizer_report(h))
        CU_FAIL("sanitizer report from ppserver or its workers");
}

void cl_servers_end(void (*end)(srv_harness *h))
{
    for (int i = 0; i < MAX_SERVERS; i++)
        if (servers[i]) {
            end(servers[i]);
            srv_cleanup(servers[i]);
            free(servers[i]);
            servers[i] = NULL;
        }
}

void cl_node_name(const srv_harness *h, char *out, size_t n)
{
    snprintf(out, n, "%.40s:%d", h->host[0] ? h->host : "127.0.0.1", h->port);
}

pp_server *cl_nodes_client(pp_config cfg, srv_harness *const *hs, int n)
{
    char names[MAX_LIST][64];
    const char *list[MAX_LIST + 1];
    if (n > MAX_LIST)
        n = MAX_LIST;
    for (int i = 0; i < n; i++) {
        cl_node_name(hs[i], names[i], sizeof names[i]);
        list[i] = names[i];
    }
    list[n] = NULL;
    cfg.ppservers = list;
    if (!cfg.secret && n > 0)
        cfg.secret = hs[0]->secret;
    return cl_track(pp_server_new(&cfg));
}

pp_server *cl_client_of(int port, const char *secret)
{
    char name[64];
    snprintf(name, sizeof name, "127.0.0.1:%d", port);
    const char *list[] = {name, NULL};
    return cl_new(&(pp_config){.ncpus = 0, .ppservers = list, .secret = secret,
                               .log_level = "error"});
}

int cl_node_info(pp_server *s, const char *name, pp_node_info *out)
{
    pp_node_info nodes[MAX_NODES];
    int n = pp_get_active_nodes(s, nodes, MAX_NODES);
    for (int i = 0; i < n && i < MAX_NODES; i++)
        if (strcmp(nodes[i].name, name) == 0) {
            *out = nodes[i];
            return 0;
        }
    return -1;
}

int cl_node_state(pp_server *s, const char *name)
{
    pp_node_info ni;
    return cl_node_info(s, name, &ni) == 0 ? ni.state : -1;
}

int cl_node1(pp_server *s, pp_node_info *out)
{
    pp_node_info ni[2];
    if (pp_get_active_nodes(s, ni, 2) < 2)
        return -1;
    *out = ni[1];
    return 0;
}

int cl_node1_state(pp_server *s)
{
    pp_node_info ni;
    return cl_node1(s, &ni) == 0 ? ni.state : -1;
}

int cl_wait_node1_state(pp_server *s, int state, double limit)
{
    double end = now_s() + limit;
    while (cl_node1_state(s) != state && now_s() < end)
        sleep_s(0.02);
    return cl_node1_state(s) == state;
}

int cl_wait_state(pp_server *s, const char *name, int state, double limit)
{
    double end = now_s() + limit;
    do {
        if (cl_node_state(s, name) == state)
            return 1;
        sleep_s(0.01);
    } while (now_s() < end);
    int st = cl_node_state(s, name);
    if (st != state)
        fprintf(stderr, "\n    node %s: state %d, not %d\n", name, st, state);
    return st == state;
}

int cl_wait_up(pp_server *s, const srv_harness *h, double limit)
{
    char name[64];
    cl_node_name(h, name, sizeof name);
    return cl_wait_state(s, name, PP_NODE_UP, limit);
}

int cl_wait_jobs(pp_job *const *jobs, int n, double limit)
{
    double end = now_s() + limit;
    int ended = 0;
    for (int i = 0; i < n; i++) {
        double left = end - now_s();
        if (jobs[i] && pp_job_wait_for(jobs[i], left > 0 ? left : 0.001) != PP_PENDING)
            ended++;
    }
    return ended;
}

int cl_workload(pp_server *s, pp_task ok, pp_task fail, int done, int failed)
{
    pp_job *jobs[64];
    int n = 0, good = 1;
    for (int i = 0; i < done + failed && n < 64; i++)
        jobs[n++] = i < done ? pp_submitf(s, ok, NULL, "l", (long)i)
                             : pp_submit(s, fail, "no", 2, NULL);
    double end = now_s() + 60;
    for (int i = 0; i < n; i++) {
        double left = end - now_s();
        int st = jobs[i] ? pp_job_wait_for(jobs[i], left > 0 ? left : 0.01) : -1;
        good &= st == (i < done ? PP_DONE : PP_FAILED);
        pp_job_free(jobs[i]);
    }
    return good && n == done + failed;
}
