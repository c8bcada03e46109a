/* SPDX-License-Identifier: MIT */
/* gearman-bench-worker -- the Gearman peer's worker for the benchmarks: it
 * registers "echo" (the result is the workload) and "spin" (the workload is
 * a decimal count of microseconds of CPU time to burn, with the same
 * compiled code as pp's spin task) with a gearmand on 127.0.0.1.
 *
 *   gearman-bench-worker --port PORT [--max-seconds S]
 *
 * Runs until SIGTERM/SIGINT, until gearmand has been unreachable for 10 s,
 * or after --max-seconds (default 3600). */
#include <libgearman-1.0/gearman.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_spin.h"
#include "bench_util.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void *echo_fn(gearman_job_st *job, void *context, size_t *result_size,
                     gearman_return_t *ret_ptr)
{
    (void)context;
    size_t n = gearman_job_workload_size(job);
    void *r = malloc(n ? n : 1);
    if (!r) {
        *ret_ptr = GEARMAN_WORK_FAIL;
        return NULL;
    }
    if (n)
        memcpy(r, gearman_job_workload(job), n);
    *result_size = n;
    *ret_ptr = GEARMAN_SUCCESS;
    return r; /* libgearman frees it */
}

static void *spin_fn(gearman_job_st *job, void *context, size_t *result_size,
                     gearman_return_t *ret_ptr)
{
    (void)context;
    char num[32];
    size_t n = gearman_job_workload_size(job);
    if (n == 0 || n >= sizeof num) {
        *ret_ptr = GEARMAN_WORK_FAIL;
        return NULL;
    }
    memcpy(num, gearman_job_workload(job), n);
    num[n] = 0;
    unsigned long x = ppbench_spin_us(strtol(num, NULL, 10));
    char *r = malloc(32);
    if (!r) {
        *ret_ptr = GEARMAN_WORK_FAIL;
        return NULL;
    }
    *result_size = (size_t)snprintf(r, 32, "%lu", x % 1000);
    *ret_ptr = GEARMAN_SUCCESS;
    return r;
}

int main(int argc, char **argv)
{
    long port = -1, max_s = 3600;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0) {
            if (bu_parse_long(argv[i + 1], 1, 65535, "--port", &port))
                return 2;
        } else if (strcmp(argv[i], "--max-seconds") == 0) {
            if (bu_parse_long(argv[i + 1], 1, 86400, "--max-seconds", &max_s))
                return 2;
        } else {
            break;
        }
    }
    if (port < 0) {
        fprintf(stderr, "usage: gearman-bench-worker --port PORT [--max-seconds S]\n");
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    gearman_worker_st *w = gearman_worker_create(NULL);
    if (!w) {
        fprintf(stderr, "gearman-bench-worker: gearman_worker_create failed\n");
        return 1;
    }
    if (gearman_worker_add_server(w, "127.0.0.1", (in_port_t)port) != GEARMAN_SUCCESS ||
        gearman_worker_add_function(w, "echo", 0, echo_fn, NULL) != GEARMAN_SUCCESS ||
        gearman_worker_add_function(w, "spin", 0, spin_fn, NULL) != GEARMAN_SUCCESS) {
        fprintf(stderr, "gearman-bench-worker: %s\n", gearman_worker_error(w));
        gearman_worker_free(w);
        return 1;
    }
    /* work() returns now and then, so that the signal flag is seen. */
    gearman_worker_set_timeout(w, 500);
    double end = bu_now() + (double)max_s, down_since = 0;
    while (!g_stop && bu_now() < end) {
        gearman_return_t ret = gearman_worker_work(w);
        if (ret == GEARMAN_SUCCESS || ret == GEARMAN_TIMEOUT || ret == GEARMAN_NO_JOBS ||
            ret == GEARMAN_IO_WAIT || ret == GEARMAN_NO_ACTIVE_FDS) {
            down_since = 0;
            continue;
        }
        if (g_stop)
            break;
        if (down_since == 0)
            down_since = bu_now();
        else if (bu_now() - down_since > 10) {
            fprintf(stderr, "gearman-bench-worker: %s\n", gearman_worker_error(w));
            break;
        }
        struct timespec nap = {0, 50 * 1000000L};
        nanosleep(&nap, NULL);
    }
    gearman_worker_free(w);
    return 0;
}
