/* SPDX-License-Identifier: MIT */
/* client_util.h -- libpp clients of real ppservers for the integration
 * suites: the clients and servers a test made, kept so that its teardown
 * frees and stops them even after a fatal assertion; nodes by name, their
 * entries and states; bounded waits for a state and for jobs.
 *
 * The tables are the process's (one test runs at a time); tracking and
 * freeing clients is safe from several threads. */
#ifndef PP_CLIENT_UTIL_H
#define PP_CLIENT_UTIL_H

#include <pp.h>
#include <stddef.h>

#include "server_harness.h"

/* For a suite of clients and nodes: $PP_SERVER, $PP_WORKER and
 * $PP_TEST_TASKS set (else -1, said on stderr); PP_SECRET unset (each
 * client is given its secret); SIGPIPE ignored.  0 or -1. */
int cl_suite_env(void);

/* ---- what a test leaves behind ---- */

/* pp_server_new(cfg), saying why on stderr when it fails; not kept. */
pp_server *cl_new(const pp_config *cfg);

/* Keeps s for cl_clients_free() (said on stderr when the table is full).
 * NULL s: says pp_last_error() on stderr.  Returns s. */
pp_server *cl_track(pp_server *s);

/* Frees a kept client (or any, NULL included) before the teardown would. */
void cl_client_free(pp_server *s);

/* Forgets a client without freeing it: for a server found deadlocked,
 * whose pp_server_free() would wait for the stuck callback thread.  It
 * leaks; the test has failed already. */
void cl_client_forget(pp_server *s);

/* Frees every kept client. */
void cl_clients_free(void);

/* Starts ppserver on a fresh harness (srv_start) and keeps it for
 * cl_servers_end(); NULL on failure. */
srv_harness *cl_server_start(const srv_opts *o);

/* The same on h, a harness the test prepared (srv_prepare), malloc'd: kept
 * from here on, or cleaned up and freed on failure. */
srv_harness *cl_server_start_on(srv_harness *h, const srv_opts *o);

/* How cl_servers_end() ends a server: SIGTERM if it runs, and the test
 * fails on a sanitizer report from it or its workers; _exit0 also fails
 * it unless ppserver exits 0 (its stderr then shown). */
void cl_server_end(srv_harness *h);
void cl_server_end_exit0(srv_harness *h);

/* Ends every kept server with `end`, then removes and frees it. */
void cl_servers_end(void (*end)(srv_harness *h));

/* ---- nodes ---- */

/* "HOST:PORT", the host 127.0.0.1 unless h->host says otherwise. */
void cl_node_name(const srv_harness *h, char *out, size_t n);

/* A client of hs[0..n-1] (at most 8), the rest of cfg as given (its
 * secret, when NULL, the first server's); kept.  NULL on failure. */
pp_server *cl_nodes_client(pp_config cfg, srv_harness *const *hs, int n);

/* A client of the node on 127.0.0.1:port, no local worker, logging
 * errors only; not kept.  NULL (said) on failure. */
pp_server *cl_client_of(int port, const char *secret);

/* The entry of node `name`: 0, or -1 when s has no such node. */
int cl_node_info(pp_server *s, const char *name, pp_node_info *out);

/* The node's state, or -1 when there is no such node. */
int cl_node_state(pp_server *s, const char *name);

/* The entry of s's one remote node ("local" comes first): 0 or -1. */
int cl_node1(pp_server *s, pp_node_info *out);

/* Its state, or -1 when there is none. */
int cl_node1_state(pp_server *s);

/* Waits (at most `limit` seconds) until its state is `state`: 1, or 0. */
int cl_wait_node1_state(pp_server *s, int state, double limit);

/* Waits (at most `limit` seconds) for a node's state; 1 when reached,
 * else 0, saying what it was. */
int cl_wait_state(pp_server *s, const char *name, int state, double limit);

/* cl_wait_state() for h's node and PP_NODE_UP. */
int cl_wait_up(pp_server *s, const srv_harness *h, double limit);

/* ---- jobs ---- */

/* Waits for every job (NULL ones skipped), sharing one deadline; returns
 * how many ended. */
int cl_wait_jobs(pp_job *const *jobs, int n, double limit);

/* `done` jobs of `ok` ("l" i) that must end PP_DONE, then `failed` of
 * `fail` (the 2 bytes "no") that must end PP_FAILED, at most 64 in all,
 * waited for (60 s in all) and freed.  1 when every one ended so. */
int cl_workload(pp_server *s, pp_task ok, pp_task fail, int done, int failed);

#endif
