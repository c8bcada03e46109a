/* SPDX-License-Identifier: MIT */
/* gearman-bench-client -- the Gearman peer's client for the benchmarks, the
 * same work as pp-bench's subcommands through a gearmand on 127.0.0.1 and
 * gearman-bench-worker processes.  One JSON object per line.
 *
 *   gearman-bench-client tiny    --port P [--jobs N] [--bytes B] [--batch K]
 *   gearman-bench-client latency --port P [--n N]
 *   gearman-bench-client payload --port P [--bytes B] [--reps R] [--warmup N]
 *   gearman-bench-client cpu     --port P [--jobs N] [--ms MS]
 *
 * tiny: foreground tasks (results come back) added with
 * gearman_client_add_task() and run with gearman_client_run_tasks() in
 * batches of K (default 1000); every result is checked.  latency, payload:
 * gearman_client_do(), one job at a time.  Each job has its own short unique
 * id (no UUID generated, no coalescing). */
#include <libgearman-1.0/gearman.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

typedef struct counters {
    long done, errors;
    size_t bytes;
} counters;

static gearman_return_t on_complete(gearman_task_st *task)
{
    counters *c = gearman_task_context(task);
    /* The workload's first 8 bytes are the job's tag: the unique id. */
    const char *uniq = gearman_task_unique(task);
    size_t len = gearman_task_data_size(task);
    const unsigned char *data = gearman_task_data(task);
    uint64_t tag = 0;
    if (len == c->bytes && data)
        memcpy(&tag, data, sizeof tag);
    if (len != c->bytes || !uniq || strtoull(uniq, NULL, 10) != tag)
        c->errors++;
    c->done++;
    return GEARMAN_SUCCESS;
}

static gearman_return_t on_fail(gearman_task_st *task)
{
    counters *c = gearman_task_context(task);
    c->errors++;
    c->done++;
    return GEARMAN_SUCCESS;
}

static gearman_client_st *make_client(long port)
{
    gearman_client_st *g = gearman_client_create(NULL);
    if (!g)
        return NULL;
    if (gearman_client_add_server(g, "127.0.0.1", (in_port_t)port) != GEARMAN_SUCCESS) {
        fprintf(stderr, "gearman-bench-client: %s\n", gearman_client_error(g));
        gearman_client_free(g);
        return NULL;
    }
    gearman_client_set_timeout(g, 60000); /* no wait longer than a minute */
    return g;
}

static void json_common(const char *bench)
{
    bu_json_begin();
    bu_json_str("bench", bench);
    bu_json_str("impl", "gearman");
    bu_json_str("mode", "loopback");
}

/* One gearman_client_do() round trip; 0 when the echo came back intact. */
static int do_echo(gearman_client_st *g, const void *buf, size_t len, long id)
{
    char uniq[32];
    snprintf(uniq, sizeof uniq, "%ld", id);
    size_t rlen = 0;
    gearman_return_t ret;
    void *r = gearman_client_do(g, "echo", uniq, buf, len, &rlen, &ret);
    int ok = ret == GEARMAN_SUCCESS && r && rlen == len && memcmp(r, buf, len) == 0;
    if (!ok && ret != GEARMAN_SUCCESS)
        fprintf(stderr, "gearman-bench-client: %s\n", gearman_client_error(g));
    free(r);
    return ok ? 0 : -1;
}

static int cmd_tiny(gearman_client_st *g, long n, size_t bytes, long batch)
{
    counters c = {.bytes = bytes};
    gearman_client_set_complete_fn(g, on_complete);
    gearman_client_set_fail_fn(g, on_fail);
    gearman_client_set_exception_fn(g, on_fail);
    gearman_client_add_options(g, GEARMAN_CLIENT_FREE_TASKS);
    unsigned char arg[4096] = {0};
    char uniq[32];
    /* Warm-up: connections made, workers awake. */
    for (long i = 0; i < 100; i++)
        if (do_echo(g, arg, bytes, -1 - i) != 0)
            return 1;
    long submitted = 0;
    double t0 = bu_now();
    while (submitted < n) {
        long k = n - submitted < batch ? n - submitted : batch;
        for (long i = 0; i < k; i++) {
            uint64_t tag = (uint64_t)(submitted + i);
            memcpy(arg, &tag, sizeof tag);
            snprintf(uniq, sizeof uniq, "%llu", (unsigned long long)tag);
            gearman_return_t ret;
            if (!gearman_client_add_task(g, NULL, &c, "echo", uniq, arg, bytes, &ret) ||
                ret != GEARMAN_SUCCESS) {
                fprintf(stderr, "gearman-bench-client: add_task: %s\n", gearman_client_error(g));
                return 1;
            }
        }
        gearman_return_t ret = gearman_client_run_tasks(g);
        if (ret != GEARMAN_SUCCESS) {
            fprintf(stderr, "gearman-bench-client: run_tasks: %s\n", gearman_client_error(g));
            return 1;
        }
        submitted += k;
    }
    double t1 = bu_now();
    long errors = c.errors + (n - c.done);
    json_common("tiny");
    bu_json_long("jobs", n);
    bu_json_long("bytes", (long long)bytes);
    bu_json_long("batch", batch);
    bu_json_num("seconds", t1 - t0);
    bu_json_num("jobs_per_s", (double)n / (t1 - t0));
    bu_json_long("errors", errors);
    bu_json_end();
    return errors ? 1 : 0;
}

static int cmd_latency(gearman_client_st *g, long n)
{
    unsigned char arg[8] = {0};
    for (long i = 0; i < 100; i++)
        if (do_echo(g, arg, sizeof arg, -1 - i) != 0)
            return 1;
    double *lat = malloc((size_t)n * sizeof *lat);
    if (!lat)
        return 1;
    long errors = 0;
    double sum = 0;
    for (long i = 0; i < n; i++) {
        uint64_t tag = (uint64_t)i;
        memcpy(arg, &tag, sizeof tag);
        int64_t t0 = bu_now_ns();
        errors += do_echo(g, arg, sizeof arg, i) != 0;
        int64_t t1 = bu_now_ns();
        lat[i] = (double)(t1 - t0) / 1000.0;
        sum += lat[i];
    }
    json_common("latency");
    bu_json_long("n", n);
    bu_json_num("mean_us", sum / (double)n);
    bu_json_num("median_us", bu_quantile(lat, (size_t)n, 0.5));
    bu_json_num("p99_us", bu_quantile(lat, (size_t)n, 0.99));
    bu_json_num("min_us", lat[0]);
    bu_json_num("max_us", lat[n - 1]);
    bu_json_long("errors", errors);
    bu_json_end();
    free(lat);
    return errors ? 1 : 0;
}

static int cmd_payload(gearman_client_st *g, size_t bytes, long reps, long warmup)
{
    if (reps <= 0) {
        reps = (long)((256u << 20) / bytes);
        reps = reps < 3 ? 3 : reps > 50 ? 50 : reps;
    }
    unsigned char *buf = malloc(bytes);
    double *rate = malloc((size_t)reps * sizeof *rate);
    if (!buf || !rate) {
        free(buf);
        free(rate);
        return 1;
    }
    bu_random_bytes(buf, bytes, 12345);
    long errors = 0;
    for (long i = 0; i < warmup && !errors; i++) /* untimed */
        errors += do_echo(g, buf, bytes, -1 - i) != 0;
    double total = 0;
    for (long i = 0; i < reps && !errors; i++) {
        buf[0] = (unsigned char)i;
        double t0 = bu_now();
        errors += do_echo(g, buf, bytes, i) != 0;
        double t1 = bu_now();
        total += t1 - t0;
        rate[i] = (double)bytes / (t1 - t0) / 1e6;
    }
    json_common("payload");
    bu_json_long("bytes", (long long)bytes);
    bu_json_long("reps", reps);
    bu_json_num("seconds", total);
    bu_json_num("mb_per_s", errors ? 0 : (double)bytes * (double)reps / total / 1e6);
    bu_json_num("median_mb_per_s", errors ? 0 : bu_quantile(rate, (size_t)reps, 0.5));
    bu_json_long("errors", errors);
    bu_json_end();
    free(buf);
    free(rate);
    return errors ? 1 : 0;
}

static int cmd_cpu(gearman_client_st *g, long n, double ms)
{
    counters c = {.bytes = 0};
    gearman_client_set_fail_fn(g, on_fail);
    gearman_client_set_exception_fn(g, on_fail);
    gearman_client_add_options(g, GEARMAN_CLIENT_FREE_TASKS);
    char arg[32], uniq[32];
    int alen = snprintf(arg, sizeof arg, "%ld", (long)(ms * 1000.0 + 0.5));
    double t0 = bu_now();
    for (long i = 0; i < n; i++) {
        snprintf(uniq, sizeof uniq, "spin%ld", i);
        gearman_return_t ret;
        if (!gearman_client_add_task(g, NULL, &c, "spin", uniq, arg, (size_t)alen, &ret) ||
            ret != GEARMAN_SUCCESS)
            return 1;
    }
    gearman_return_t ret = gearman_client_run_tasks(g);
    double t1 = bu_now();
    long errors = c.errors + (ret != GEARMAN_SUCCESS);
    json_common("cpu");
    bu_json_long("jobs", n);
    bu_json_num("ms", ms);
    bu_json_num("seconds", t1 - t0);
    bu_json_long("errors", errors);
    bu_json_end();
    return errors ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        fputs("usage: gearman-bench-client tiny|latency|payload|cpu --port P [--jobs N] "
              "[--n N] [--bytes B] [--batch K] [--reps R] [--warmup N] [--ms MS]\n",
              argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    long port = -1, jobs = -1, n = 5000, bytes = -1, batch = 1000, reps = -1, warmup = 1;
    double ms = 50;
    for (int i = 2; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = !v;
        if (bad)
            ;
        else if (strcmp(a, "--port") == 0)
            bad = bu_parse_long(v, 1, 65535, a, &port);
        else if (strcmp(a, "--jobs") == 0)
            bad = bu_parse_long(v, 1, 100000000, a, &jobs);
        else if (strcmp(a, "--n") == 0)
            bad = bu_parse_long(v, 1, 100000000, a, &n);
        else if (strcmp(a, "--bytes") == 0)
            bad = bu_parse_long(v, 1, 1L << 30, a, &bytes);
        else if (strcmp(a, "--batch") == 0)
            bad = bu_parse_long(v, 1, 1000000, a, &batch);
        else if (strcmp(a, "--reps") == 0)
            bad = bu_parse_long(v, 1, 100000, a, &reps);
        else if (strcmp(a, "--warmup") == 0)
            bad = bu_parse_long(v, 0, 1000, a, &warmup);
        else if (strcmp(a, "--ms") == 0)
            bad = bu_parse_double(v, 0.001, 60000, a, &ms);
        else
            bad = 1;
        if (bad) {
            fprintf(stderr, "gearman-bench-client: bad option %s\n", a);
            return 2;
        }
    }
    if (port < 0) {
        fprintf(stderr, "gearman-bench-client: --port is required\n");
        return 2;
    }
    gearman_client_st *g = make_client(port);
    if (!g)
        return 1;
    int rc;
    if (strcmp(cmd, "tiny") == 0) {
        size_t b = bytes > 0 ? (size_t)bytes : 8;
        if (b < 8 || b > 4096) {
            fprintf(stderr, "gearman-bench-client tiny: --bytes must be 8..4096\n");
            rc = 2;
        } else {
            rc = cmd_tiny(g, jobs > 0 ? jobs : 200000, b, batch);
        }
    } else if (strcmp(cmd, "latency") == 0) {
        rc = cmd_latency(g, n);
    } else if (strcmp(cmd, "payload") == 0) {
        rc = cmd_payload(g, bytes > 0 ? (size_t)bytes : 1048576, reps, warmup);
    } else if (strcmp(cmd, "cpu") == 0) {
        rc = cmd_cpu(g, jobs > 0 ? jobs : 32, ms);
    } else {
        fprintf(stderr, "gearman-bench-client: unknown command \"%s\"\n", cmd);
        rc = 2;
    }
    gearman_client_free(g);
    return rc;
}
