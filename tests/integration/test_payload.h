/* SPDX-License-Identifier: MIT */
/* test_payload.h -- what test_payload.c lends the suites of the zero-copy
 * API (test_shm_api.c): clients and nodes a per-test teardown frees and
 * stops (client_util.h keeps them), payload checks, and the process
 * counters. */
#ifndef PP_TEST_PAYLOAD_H
#define PP_TEST_PAYLOAD_H

#include <CUnit/CUnit.h>
#include <pp.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "client_util.h"
#include "cunit_main.h"
#include "server_harness.h"

/* The private directory of the run (the workers' TMPDIR too). */
extern char pl_tmpdir[256];

/* A client with `ncpus` local workers and no node; NULL (said on stderr)
 * on failure.  The teardown frees it. */
pp_server *pl_local(int ncpus);

/* A ppserver on 127.0.0.1 with `workers` workers, plaintext when no_tls;
 * NULL on failure.  The teardown stops it and fails the test on a
 * sanitizer report from it or its workers. */
srv_harness *pl_node(int no_tls, int workers);

/* A client of node h only (ncpus local workers besides), up and with the
 * task module shipped (one job run); NULL on failure. */
pp_server *pl_node_client(srv_harness *h, int no_tls, int ncpus);

/* Where a test's jobs run: local workers, or a node over TLS or plaintext. */
enum { PL_LOCAL, PL_NODE_TLS, PL_NODE_PLAIN };

/* A client for `where` with `workers` workers (local ones, or the node's
 * with none local), the node up; a fatal assertion when there is none. */
pp_server *pl_client(int where, int workers);

/* The payload (size, seed), malloc'd (at least 1 byte); NULL out of
 * memory. */
uint8_t *pl_payload(size_t size, uint64_t seed);

/* 1 when the len bytes at p are the payload (size, seed) from offset
 * `off` on, each byte xor `key`; else 0 with the first wrong position on
 * stderr, prefixed by `what` (NULL: nothing said). */
int pl_check(const void *p, size_t len, uint64_t off, uint64_t size, uint64_t seed,
             uint8_t key, const char *what);

/* Waits (at most `limit` seconds) for the job; 1 when it ended PP_DONE
 * with exactly `len` bytes of the payload (size, seed) xor key from
 * offset off, else 0, saying why on stderr. */
int pl_job_is(pp_job *j, double limit, size_t len, uint64_t off, uint64_t size, uint64_t seed,
              uint8_t key, const char *what);

/* What a process holds: open descriptors, lines of /proc/PID/maps (under
 * the sanitizers those of files and memfds only), and the descriptors of
 * its ppworker children together; -1 when unreadable. */
long pl_fds(pid_t pid);
long pl_maps(pid_t pid);
long pl_worker_fds(pid_t parent);

/* Adds a suite whose tests get the per-test teardown. */
int pl_add_suite(const char *name, const pp_test *tests);

/* Registers the suite of test_shm_api.c. */
int pl_register_shm_api(void);

#endif
