/* SPDX-License-Identifier: MIT */
/* pp-bench -- the pp side of the benchmark suite (B1..B9).  Each
 * subcommand runs one measurement through the public API and prints one
 * JSON object on one line; scripts/bench runs them and builds the table.
 *
 *   pp-bench tiny    [--jobs N] [--bytes B]   tiny echo jobs: jobs/s
 *   pp-bench map     [--n N] [--bytes B]      pp_map over N small items: items/s
 *   pp-bench latency [--n N]                  submit then wait, one at a time: µs
 *   pp-bench cpu     [--jobs N] [--ms MS]     CPU-bound jobs: wall seconds
 *   pp-bench payload [--bytes B] [--reps R]   echo of a large argument: MB/s
 *                    [--pattern random|compressible] [--zero-copy]
 *                    [--compress auto|always|never]
 *   pp-bench limits  [--bytes B]              what bounds B5 at B bytes: memcpy
 *                                             (warm, fresh buffer), loopback
 *                                             TCP echo: MB/s
 *   pp-bench queue   [--jobs N]               client RSS per queued job
 *   pp-bench hide    [--jobs N] [--ms MS]     throughput of short CPU jobs
 *   pp-bench rss     --pid PID                RSS of a process tree
 *   pp-bench connect [--n N]                  connection set-up (TCP, TLS,
 *                                             proof) after the key derivation: ms
 *   pp-bench cancel  [--jobs N]               pp_cancel_group of N jobs queued
 *                                             behind busy workers, until pp_wait
 *                                             returns: ms
 *   pp-bench pending-rss [--n N]              N tiny jobs (freed at once) with
 *                                             max_pending 10000: client RSS
 * Common: [--ncpus N] [--servers host:port,...] [--secret-file F]
 *         [--warmup N] [--no-tls] [--compress auto|always|never]
 * --ncpus defaults to 2 without --servers and to 0 with them.  Timings start
 * after the workers and nodes are up and warmed (module shipped and loaded),
 * at the first submit, and stop when the last result is in and checked. */
#include <getopt.h>
#include <pp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_limits.h"
#include "bench_tasks.h"
#include "bench_util.h"

typedef struct opts {
    const char *cmd;
    long jobs;          /* -1 = the subcommand's default */
    long n;
    long bytes;
    long reps;
    long warmup;
    long pid;
    int ncpus;          /* -2 = default */
    double ms;
    char **servers;
    int nservers;
    char *secret;
    int no_tls;
    int pattern;        /* payload: 0 random, 1 compressible */
    int zero_copy;      /* payload: the argument in pp_shm_alloc() memory */
    int compress;       /* 0 automatic, 1 always, -1 never */
} opts;

static const char *compress_name(int c)
{
    return c > 0 ? "always" : c < 0 ? "never" : "auto";
}

static void usage(FILE *fp)
{
    fputs("usage: pp-bench COMMAND [options]\n"
          "  tiny    [--jobs N=200000] [--bytes B=8]  tiny echo jobs, jobs/s\n"
          "  map     [--n N=1000000] [--bytes B=8]    pp_map over N echo items, items/s\n"
          "  latency [--n N=5000]                     submit+wait one at a time, us\n"
          "  cpu     [--jobs N=32] [--ms MS=50]       CPU-bound jobs, wall seconds\n"
          "  payload [--bytes B=1048576] [--reps R]   echo of one large argument, MB/s\n"
          "          [--pattern random|compressible]  its bytes (default random)\n"
          "          [--zero-copy]                    argument in pp_shm_alloc() memory,\n"
          "                                           pp_submit_shm(), result read in place\n"
          "  limits  [--bytes B=1048576]              memcpy (warm, into a fresh buffer)\n"
          "                                           and loopback TCP echo, MB/s\n"
          "  queue   [--jobs N=1000000]               client RSS per queued job (ncpus 0)\n"
          "  hide    [--jobs N=2000] [--ms MS=1]      throughput of short CPU jobs\n"
          "  rss     --pid PID                        RSS (and PSS) of a process tree, KiB\n"
          "  connect [--n N=30]                       connection set-up to one node, ms\n"
          "  cancel  [--jobs N=100000]                cancel N queued jobs until pp_wait, ms\n"
          "  pending-rss [--n N=10000000]             N tiny jobs with max_pending 10000:\n"
          "                                           client RSS at 1 M, at the end, peak\n"
          "common: [--ncpus N] [--servers host:port,...] [--secret-file F] [--warmup N]\n"
          "        [--no-tls] (plaintext to nodes that run --no-tls)\n"
          "        [--compress auto|always|never] (pp_config.compress: arguments to\n"
          "        the nodes; a node's results follow its own ppserver --compress)\n"
          "--ncpus defaults to 2 without --servers, 0 with them.  One JSON object per\n"
          "line on stdout; exit 1 if a job failed or a result was wrong.\n",
          fp);
}

/* ---- servers ---- */

static pp_server *make_server(const opts *o)
{
    pp_config cfg = {
        .ncpus = o->ncpus,
        .ppservers = (const char *const *)o->servers,
        .secret = o->secret,
        .log_level = getenv("PP_LOG") ? NULL : "error",
        .no_tls = o->no_tls,
        .compress = o->compress,
    };
    pp_server *s = pp_server_new(&cfg);
    if (!s) {
        fprintf(stderr, "pp-bench: %s\n", pp_last_error());
        return NULL;
    }
    if (o->nservers == 0)
        return s;
    /* Every node up, within 10 s ("local" first, then the nodes). */
    int max = o->nservers + 1;
    pp_node_info *nodes = malloc((size_t)max * sizeof *nodes);
    for (int tries = 0; nodes && tries < 1000; tries++) {
        int n = pp_get_active_nodes(s, nodes, max);
        int up = 0;
        for (int i = 1; i < n && i < max; i++) {
            if (nodes[i].state == PP_NODE_AUTH_FAILED) {
                fprintf(stderr, "pp-bench: %s: authentication failed\n", nodes[i].name);
                free(nodes);
                pp_server_free(s);
                return NULL;
            }
            up += nodes[i].state == PP_NODE_UP;
        }
        if (up == o->nservers) {
            free(nodes);
            return s;
        }
        struct timespec nap = {0, 10 * 1000000L};
        nanosleep(&nap, NULL);
    }
    fprintf(stderr, "pp-bench: not every node came up within 10 s\n");
    free(nodes);
    pp_server_free(s);
    return NULL;
}

/* Runs `count` jobs of `task` with `arg` and waits for them; returns the
 * number that did not end PP_DONE. */
static long run_batch(pp_server *s, pp_task task, const void *arg, size_t len, long count)
{
    long bad = 0;
    for (long i = 0; i < count; i++) {
        pp_job *j = pp_submit(s, task, arg, len, NULL);
        if (!j) {
            fprintf(stderr, "pp-bench: submit: %s\n", pp_last_error());
            return count - i + bad;
        }
        pp_job_free(j);
    }
    pp_wait(s, NULL);
    pp_stats st;
    if (pp_get_stats(s, &st) == 0)
        bad = (long)st.failed;
    return bad;
}

/* Waits until `ncpus` distinct local workers have run a job: pp_server_new()
 * returns while its workers are still starting, and jobs submitted before
 * the others are up all go to the first one.  At most 5 s. */
static int local_workers_up(pp_server *s, int ncpus)
{
    int64_t seen[64];
    int nseen = 0, want = ncpus < 64 ? ncpus : 64;
    for (int round = 0; round < 500 && nseen < want; round++) {
        pp_job *jobs[128];
        int n = 2 * want < 128 ? 2 * want : 128;
        for (int i = 0; i < n; i++)
            jobs[i] = pp_submit(s, ppbench_pid, NULL, 0, NULL);
        for (int i = 0; i < n; i++) {
            size_t len;
            const void *r = jobs[i] ? pp_job_result(jobs[i], &len) : NULL;
            if (r && len == sizeof(int64_t) && strcmp(pp_job_node(jobs[i]), "local") == 0) {
                int64_t pid;
                memcpy(&pid, r, sizeof pid);
                int k = 0;
                while (k < nseen && seen[k] != pid)
                    k++;
                if (k == nseen && nseen < 64)
                    seen[nseen++] = pid;
            }
            pp_job_free(jobs[i]);
        }
        if (nseen < want) {
            struct timespec nap = {0, 10 * 1000000L};
            nanosleep(&nap, NULL);
        }
    }
    if (nseen < want) {
        fprintf(stderr, "pp-bench: only %d of %d local workers ran a job within 5 s\n", nseen,
                want);
        return -1;
    }
    return 0;
}

/* Warms every node up: every local worker started, the task module shipped
 * and loaded everywhere, the pipelining depth adapted to the task.  At most
 * 50 rounds. */
static int warm_up(pp_server *s, const opts *o, pp_task task, const void *arg, size_t len,
                   long per_round)
{
    if (o->ncpus > 0 && local_workers_up(s, o->ncpus) != 0)
        return -1;
    if (per_round <= 0)
        return 0;
    int max = o->nservers + 1;
    pp_node_info *nodes = malloc((size_t)max * sizeof *nodes);
    for (int round = 0; nodes && round < 50; round++) {
        if (run_batch(s, task, arg, len, per_round) != 0) {
            fprintf(stderr, "pp-bench: warm-up jobs failed\n");
            free(nodes);
            return -1;
        }
        int n = pp_get_active_nodes(s, nodes, max);
        int cold = 0;
        for (int i = 0; i < n && i < max; i++) {
            if (i == 0 && o->ncpus == 0)
                continue;
            cold += nodes[i].jobs == 0;
        }
        if (!cold) {
            free(nodes);
            return 0;
        }
    }
    fprintf(stderr, "pp-bench: some node ran no warm-up job\n");
    free(nodes);
    return -1;
}

static void json_common(const opts *o, const char *bench)
{
    bu_json_begin();
    bu_json_str("bench", bench);
    bu_json_str("impl", "pp");
    bu_json_str("mode", o->nservers ? "remote" : "local");
    bu_json_long("ncpus", o->ncpus);
    bu_json_long("servers", o->nservers);
    bu_json_long("tls", o->nservers && !o->no_tls);
}

/* ---- B1, B2: tiny jobs ---- */

static int cmd_tiny(const opts *o)
{
    long n = o->jobs > 0 ? o->jobs : 200000;
    size_t bytes = o->bytes >= 0 ? (size_t)o->bytes : 8;
    if (bytes < 8 || bytes > 4096) {
        fprintf(stderr, "pp-bench tiny: --bytes must be 8..4096\n");
        return 2;
    }
    pp_server *s = make_server(o);
    if (!s)
        return 1;
    unsigned char arg[4096] = {0};
    long warm = o->warmup >= 0 ? o->warmup : 2000;
    if (warm_up(s, o, ppbench_echo, arg, bytes, warm) != 0) {
        pp_server_free(s);
        return 1;
    }
    pp_job **jobs = malloc((size_t)n * sizeof *jobs);
    if (!jobs) {
        pp_server_free(s);
        return 1;
    }
    long errors = 0, submitted = 0;
    double t0 = bu_now();
    for (long i = 0; i < n; i++) {
        uint64_t tag = (uint64_t)i;
        memcpy(arg, &tag, sizeof tag);
        jobs[i] = pp_submit(s, ppbench_echo, arg, bytes, NULL);
        if (!jobs[i]) {
            fprintf(stderr, "pp-bench: submit %ld: %s\n", i, pp_last_error());
            break;
        }
        submitted++;
    }
    double t_sub = bu_now();
    for (long i = 0; i < submitted; i++) {
        size_t len;
        const unsigned char *r = pp_job_result(jobs[i], &len);
        uint64_t tag;
        if (r && len == bytes)
            memcpy(&tag, r, sizeof tag);
        if (!r || len != bytes || tag != (uint64_t)i) {
            if (errors++ < 5)
                fprintf(stderr, "pp-bench: job %ld: %s %s\n", i,
                        pp_strerror(pp_job_status(jobs[i])), pp_job_error(jobs[i]));
        }
        pp_job_free(jobs[i]);
    }
    double t1 = bu_now();
    free(jobs);
    errors += n - submitted;
    pp_server_free(s);
    json_common(o, "tiny");
    bu_json_long("jobs", n);
    bu_json_long("bytes", (long long)bytes);
    bu_json_num("seconds", t1 - t0);
    bu_json_num("submit_seconds", t_sub - t0);
    bu_json_num("jobs_per_s", (double)n / (t1 - t0));
    bu_json_long("errors", errors);
    bu_json_end();
    return errors ? 1 : 0;
}

/* ---- B1 beside it: a map over many tiny items ---- */

/* pp_map_new() over n items of `bytes` each (the first 8 a tag), echoed:
 * the clock runs from pp_map_new() until every result is in and checked,
 * as B1's does from the first submit. */
static int cmd_map(const opts *o)
{
    long n = o->n > 0 ? o->n : 1000000;
    size_t bytes = o->bytes >= 0 ? (size_t)o->bytes : 8;
    if (bytes < 8 || bytes > 4096) {
        fprintf(stderr, "pp-bench map: --bytes must be 8..4096\n");
        return 2;
    }
    pp_server *s = make_server(o);
    if (!s)
        return 1;
    unsigned char arg[8] = {0};
    long warm = o->warmup >= 0 ? o->warmup : 2000;
    unsigned char *items = calloc((size_t)n, bytes);
    if (!items || warm_up(s, o, ppbench_echo, arg, sizeof arg, warm) != 0) {
        free(items);
        pp_server_free(s);
        return 1;
    }
    for (long i = 0; i < n; i++) {
        uint64_t tag = (uint64_t)i;
        memcpy(items + (size_t)i * bytes, &tag, sizeof tag);
    }
    pp_stats before, after;
    pp_get_stats(s, &before);
    long errors = 0;
    double t0 = bu_now();
    pp_map *m = pp_map_new(s, ppbench_echo, items, bytes, (size_t)n, NULL);
    if (!m) {
        fprintf(stderr, "pp-bench: pp_map_new: %s\n", pp_last_error());
        free(items);
        pp_server_free(s);
        return 1;
    }
    double t_new = bu_now();
    for (long i = 0; i < n; i++) {
        const void *r;
        size_t len;
        int st = pp_map_result(m, (size_t)i, &r, &len);
        uint64_t tag = 0;
        if (st == PP_DONE && len == bytes)
            memcpy(&tag, r, sizeof tag);
        if (st != PP_DONE || len != bytes || tag != (uint64_t)i) {
            if (errors++ < 5)
                fprintf(stderr, "pp-bench: item %ld: %s %s\n", i, pp_strerror(st),
                        st == PP_DONE || st < 0 ? "" : (const char *)r);
        }
    }
    double t1 = bu_now();
    pp_get_stats(s, &after);
    pp_map_free(m);
    free(items);
    pp_server_free(s);
    json_common(o, "map");
    bu_json_long("items", n);
    bu_json_long("bytes", (long long)bytes);
    bu_json_long("jobs", (long long)(after.submitted - before.submitted));
    bu_json_num("seconds", t1 - t0);
    bu_json_num("new_seconds", t_new - t0);
    bu_json_num("items_per_s", (double)n / (t1 - t0));
    bu_json_long("errors", errors);
    bu_json_end();
    return errors ? 1 : 0;
}

/* ---- B3: round trip ---- */

static int cmd_latency(const opts *o)
{
    long n = o->n > 0 ? o->n : 5000;
    pp_server *s = make_server(o);
    if (!s)
        return 1;
    unsigned char arg[8] = {0};
    long warm = o->warmup >= 0 ? o->warmup : 200;
    if (warm_up(s, o, ppbench_echo, arg, sizeof arg, warm) != 0) {
        pp_server_free(s);
        return 1;
    }
    double *lat = malloc((size_t)n * sizeof *lat);
    if (!lat) {
        pp_server_free(s);
        return 1;
    }
    /* A few one-at-a-time round trips first: the pipelining depth and the
     * caches settle on this pattern. */
    for (int i = 0; i < 50; i++) {
        pp_job *j = pp_submit(s, ppbench_echo, arg, sizeof arg, NULL);
        if (j)
            pp_job_wait(j);
        pp_job_free(j);
    }
    long errors = 0;
    double sum = 0;
    for (long i = 0; i < n; i++) {
        uint64_t tag = (uint64_t)i;
        memcpy(arg, &tag, sizeof tag);
        int64_t t0 = bu_now_ns();
        pp_job *j = pp_submit(s, ppbench_echo, arg, sizeof arg, NULL);
        size_t len = 0;
        const void *r = j ? pp_job_result(j, &len) : NULL;
        int64_t t1 = bu_now_ns();
        if (!r || len != sizeof arg || memcmp(r, arg, len) != 0)
            errors++;
        pp_job_free(j);
        lat[i] = (double)(t1 - t0) / 1000.0;
        sum += lat[i];
    }
    pp_server_free(s);
    json_common(o, "latency");
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

/* ---- B4: CPU-bound scaling; B7: latency hiding ---- */

static int run_spin_jobs(const opts *o, const char *bench, long n, long warm)
{
    double ms = o->ms > 0 ? o->ms : (strcmp(bench, "cpu") == 0 ? 50 : 1);
    int64_t us = (int64_t)(ms * 1000.0 + 0.5);
    pp_server *s = make_server(o);
    if (!s)
        return 1;
    unsigned char echo_arg[8] = {0};
    /* Workers and nodes up, the module loaded (tiny echo jobs)... */
    if (warm_up(s, o, ppbench_echo, echo_arg, sizeof echo_arg, 200) != 0 ||
        /* ...then the pipelining depth adapted to jobs of this length. */
        (warm > 0 && run_batch(s, ppbench_spin, &us, sizeof us, warm) != 0)) {
        pp_server_free(s);
        return 1;
    }
    pp_job **jobs = malloc((size_t)n * sizeof *jobs);
    if (!jobs) {
        pp_server_free(s);
        return 1;
    }
    long errors = 0, submitted = 0;
    double t0 = bu_now();
    for (long i = 0; i < n; i++) {
        jobs[i] = pp_submit(s, ppbench_spin, &us, sizeof us, NULL);
        if (!jobs[i]) {
            fprintf(stderr, "pp-bench: submit: %s\n", pp_last_error());
            break;
        }
        submitted++;
    }
    int64_t pids[64];
    long counts[64];
    int npids = 0;
    for (long i = 0; i < submitted; i++) {
        size_t len;
        const void *r = pp_job_result(jobs[i], &len);
        if (!r || len != sizeof(int64_t)) {
            if (errors++ < 5)
                fprintf(stderr, "pp-bench: job %ld: %s %s\n", i,
                        pp_strerror(pp_job_status(jobs[i])), pp_job_error(jobs[i]));
        } else {
            int64_t pid;
            memcpy(&pid, r, sizeof pid);
            int k = 0;
            while (k < npids && pids[k] != pid)
                k++;
            if (k == npids && npids < 64) {
                pids[npids] = pid;
                counts[npids++] = 0;
            }
            if (k < 64)
                counts[k]++;
        }
        pp_job_free(jobs[i]);
    }
    double t1 = bu_now();
    long most = 0, fewest = npids ? n : 0;
    for (int k = 0; k < npids; k++) {
        most = counts[k] > most ? counts[k] : most;
        fewest = counts[k] < fewest ? counts[k] : fewest;
    }
    free(jobs);
    errors += n - submitted;
    int workers = o->ncpus;
    pp_node_info nodes[64];
    int nn = pp_get_active_nodes(s, nodes, 64);
    for (int i = 1; i < nn && i < 64; i++)
        workers += nodes[i].ncpus;
    pp_server_free(s);
    json_common(o, bench);
    bu_json_long("jobs", n);
    bu_json_num("ms", ms);
    bu_json_long("workers", workers);
    bu_json_num("seconds", t1 - t0);
    bu_json_num("jobs_per_s", (double)n / (t1 - t0));
    /* The wall time if the workers did nothing but the jobs. */
    bu_json_num("ideal_seconds", workers > 0 ? (double)n * ms / 1000.0 / workers : 0);
    /* How the jobs were spread: worker processes seen, most and fewest jobs
     * on one of them. */
    bu_json_long("workers_seen", npids);
    bu_json_long("most_on_a_worker", most);
    bu_json_long("fewest_on_a_worker", npids < workers ? 0 : fewest);
    bu_json_long("errors", errors);
    bu_json_end();
    return errors ? 1 : 0;
}

static int cmd_cpu(const opts *o)
{
    return run_spin_jobs(o, "cpu", o->jobs > 0 ? o->jobs : 32, o->warmup >= 0 ? o->warmup : 0);
}

static int cmd_hide(const opts *o)
{
    return run_spin_jobs(o, "hide", o->jobs > 0 ? o->jobs : 2000,
                         o->warmup >= 0 ? o->warmup : 200);
}

/* ---- B5: payload ---- */

/* The argument of B5.  Random bytes do not compress; the compressible
 * pattern is regular as matrices and text are: 4-byte little-endian words
 * of small integers, (i ^ i >> 7) & 63, which zlib level 1 shrinks about
 * 11-fold. */
static void payload_fill(unsigned char *buf, size_t bytes, int compressible)
{
    if (!compressible) {
        bu_random_bytes(buf, bytes, 12345);
        return;
    }
    for (size_t i = 0; i < bytes; i++)
        buf[i] = i % 4 ? 0 : (unsigned char)(((i / 4) ^ (i / 4 >> 7)) & 63);
}

typedef struct payload_run {
    pp_server *s;
    unsigned char *buf; /* the argument: malloc'd, or pp_shm_alloc()'d */
    size_t bytes;
    int zero_copy;
    long reps;
    double *rate; /* reps MB/s, one per round trip */
    double total; /* seconds, all round trips */
} payload_run;

static pp_job *payload_submit(const payload_run *p)
{
    if (p->zero_copy)
        return pp_submit_shm(p->s, ppbench_echo, p->buf, p->bytes, NULL);
    return pp_submit(p->s, ppbench_echo, p->buf, p->bytes, NULL);
}

/* One untimed round trip (buffers grown, pages touched), then the timed
 * ones, one job at a time, each with byte 0 changed; the result is checked
 * where it lies, after the clock stops.  Returns the number that failed. */
static long payload_rounds(payload_run *p)
{
    pp_job *w = payload_submit(p);
    if (!w || pp_job_wait(w) != PP_DONE) {
        fprintf(stderr, "pp-bench: payload warm-up: %s\n", w ? pp_job_error(w) : pp_last_error());
        pp_job_free(w);
        return 1;
    }
    pp_job_free(w);
    for (long i = 0; i < p->reps; i++) {
        p->buf[0] = (unsigned char)i;
        double t0 = bu_now();
        pp_job *j = payload_submit(p);
        size_t len = 0;
        const void *r = j ? pp_job_result(j, &len) : NULL;
        double t1 = bu_now();
        if (!r || len != p->bytes || memcmp(r, p->buf, p->bytes) != 0) {
            fprintf(stderr, "pp-bench: payload round trip %ld: %s\n", i,
                    j ? pp_job_error(j) : pp_last_error());
            pp_job_free(j);
            return 1;
        }
        pp_job_free(j);
        p->total += t1 - t0;
        p->rate[i] = (double)p->bytes / (t1 - t0) / 1e6;
    }
    return 0;
}

/* With --zero-copy the argument lives in a pp_shm_alloc() buffer, filled
 * once before the clock (each round trip changes byte 0, as without). */
static int cmd_payload(const opts *o)
{
    payload_run p = {.bytes = o->bytes > 0 ? (size_t)o->bytes : 1048576, .reps = o->reps,
                     .zero_copy = o->zero_copy};
    if (p.reps <= 0) { /* about 256 MiB through, 12..2000 round trips: a
                         * small echo needs many, or one pause of the
                         * machine weighs on the whole figure; a large one
                         * enough for its median to mean something */
        p.reps = (long)((256u << 20) / p.bytes);
        p.reps = p.reps < 12 ? 12 : p.reps > 2000 ? 2000 : p.reps;
    }
    p.rate = malloc((size_t)p.reps * sizeof *p.rate);
    p.s = p.rate ? make_server(o) : NULL;
    if (p.s)
        p.buf = p.zero_copy ? pp_shm_alloc(p.s, p.bytes) : malloc(p.bytes);
    if (!p.buf) {
        if (p.s)
            fprintf(stderr, "pp-bench: %zu bytes for the argument: %s\n", p.bytes,
                    p.zero_copy ? pp_last_error() : "out of memory");
        pp_server_free(p.s);
        free(p.rate);
        return 1;
    }
    payload_fill(p.buf, p.bytes, o->pattern);
    unsigned char small[8] = {0};
    long errors = warm_up(p.s, o, ppbench_echo, small, sizeof small, 100) != 0;
    if (!errors)
        errors = payload_rounds(&p);
    if (p.zero_copy && pp_shm_free(p.s, p.buf) != 0) {
        fprintf(stderr, "pp-bench: pp_shm_free: %s\n", pp_last_error());
        errors++;
    } else if (!p.zero_copy) {
        free(p.buf);
    }
    pp_server_free(p.s);
    json_common(o, "payload");
    bu_json_str("pattern", o->pattern ? "compressible" : "random");
    bu_json_long("zero_copy", o->zero_copy);
    bu_json_str("compress", compress_name(o->compress));
    bu_json_long("bytes", (long long)p.bytes);
    bu_json_long("reps", p.reps);
    bu_json_num("seconds", p.total);
    bu_json_num("mb_per_s", errors ? 0 : (double)p.bytes * (double)p.reps / p.total / 1e6);
    bu_json_num("median_mb_per_s", errors ? 0 : bu_quantile(p.rate, (size_t)p.reps, 0.5));
    bu_json_long("errors", errors);
    bu_json_end();
    free(p.rate);
    return errors ? 1 : 0;
}

/* ---- the limits beside B5 ---- */

/* memcpy between warm buffers, memcpy into fresh ones, one loopback TCP
 * stream echoing (streamed, and store-and-forward): each for --bytes, one
 * JSON line (bench_limits.h). */
static int cmd_limits(const opts *o)
{
    size_t bytes = o->bytes > 0 ? (size_t)o->bytes : 1048576;
    bl_rate warm, tcp, saf, tls, fresh;
    if (bl_memcpy_warm(bytes, &warm) != 0 || bl_tcp_echo(bytes, 0, &tcp) != 0 ||
        bl_tcp_echo(bytes, 1, &saf) != 0 || bl_tls_echo(bytes, &tls) != 0 ||
        bl_memcpy_fresh(bytes, &fresh) != 0) {
        fprintf(stderr, "pp-bench limits: a measurement could not run\n");
        return 1;
    }
    bu_json_begin();
    bu_json_str("bench", "limits");
    bu_json_long("bytes", (long long)bytes);
    bu_json_num("warm_memcpy_mb_per_s", warm.median);
    bu_json_num("warm_memcpy_best_mb_per_s", warm.best);
    bu_json_long("warm_memcpy_samples", warm.samples);
    bu_json_num("fresh_memcpy_mb_per_s", fresh.median);
    bu_json_num("fresh_memcpy_best_mb_per_s", fresh.best);
    bu_json_long("fresh_memcpy_samples", fresh.samples);
    bu_json_num("tcp_echo_mb_per_s", tcp.median);
    bu_json_num("tcp_echo_best_mb_per_s", tcp.best);
    bu_json_long("tcp_echo_samples", tcp.samples);
    bu_json_num("tcp_saf_mb_per_s", saf.median);
    bu_json_num("tcp_saf_best_mb_per_s", saf.best);
    bu_json_long("tcp_saf_samples", saf.samples);
    bu_json_num("tls_saf_mb_per_s", tls.median);
    bu_json_num("tls_saf_best_mb_per_s", tls.best);
    bu_json_long("tls_saf_samples", tls.samples);
    bu_json_long("errors", 0);
    bu_json_end();
    return 0;
}

/* ---- B6: client memory per queued job ---- */

static int cmd_queue(const opts *o)
{
    long n = o->jobs > 0 ? o->jobs : 1000000;
    opts q = *o;
    q.ncpus = 0; /* nothing runs them: they stay queued */
    q.servers = NULL;
    q.nservers = 0;
    pp_server *s = make_server(&q);
    if (!s)
        return 1;
    /* Let the scheduler thread settle before the first reading. */
    struct timespec nap = {0, 50 * 1000000L};
    nanosleep(&nap, NULL);
    long before = bu_vmrss_kb("self");
    unsigned char arg[8] = {0};
    long errors = 0;
    double t0 = bu_now();
    for (long i = 0; i < n; i++) {
        uint64_t tag = (uint64_t)i;
        memcpy(arg, &tag, sizeof tag);
        /* The handle is released at once: the job stays queued in the
         * library, and only the library's memory is measured. */
        pp_job *j = pp_submit(s, ppbench_echo, arg, sizeof arg, NULL);
        if (!j) {
            fprintf(stderr, "pp-bench: submit %ld: %s\n", i, pp_last_error());
            errors++;
            break;
        }
        pp_job_free(j);
    }
    double t1 = bu_now();
    nanosleep(&nap, NULL); /* the scheduler moves them to its queue */
    long after = bu_vmrss_kb("self");
    pp_stats st = {0};
    pp_get_stats(s, &st);
    double tf0 = bu_now();
    pp_server_free(s);
    double tf1 = bu_now();
    json_common(&q, "queue");
    bu_json_long("jobs", n);
    bu_json_long("pending", (long long)st.pending);
    bu_json_long("rss_before_kb", before);
    bu_json_long("rss_after_kb", after);
    bu_json_num("bytes_per_job", (double)(after - before) * 1024.0 / (double)n);
    bu_json_num("submit_per_s", (double)n / (t1 - t0));
    bu_json_num("free_seconds", tf1 - tf0);
    bu_json_long("errors", errors);
    bu_json_end();
    return errors ? 1 : 0;
}

/* ---- B9: job control: cancelling a queue, memory under max_pending ---- */

/* A field of /proc/self/status ("VmRSS", "VmHWM") in KiB, or -1. */
static long self_status_kb(const char *field)
{
    FILE *fp = fopen("/proc/self/status", "r");
    if (!fp)
        return -1;
    char line[256];
    long kb = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, fp))
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            kb = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(fp);
    return kb;
}

/* N tiny jobs queued behind workers each busy with a long job (so none of
 * them is on a worker: the pool sends nothing behind a job past the long
 * mark), then timed: pp_cancel_group() of their group until pp_wait() on
 * it returns, every callback-free job final.  Local workers only. */
static int cmd_cancel(const opts *o)
{
    long n = o->jobs > 0 ? o->jobs : 100000;
    if (o->nservers || o->ncpus < 1) {
        fprintf(stderr, "pp-bench cancel: local workers only (--ncpus >= 1, no --servers)\n");
        return 2;
    }
    pp_server *s = make_server(o);
    if (!s)
        return 1;
    pp_job **jobs = malloc((size_t)n * sizeof *jobs), *block[64];
    int nblock = o->ncpus < 64 ? o->ncpus : 64;
    if (!jobs || warm_up(s, o, ppbench_echo, NULL, 0, 0) != 0) {
        free(jobs);
        pp_server_free(s);
        return 1;
    }
    /* One job of 60 s of CPU per worker, running before the others come. */
    int64_t us = 60 * 1000000LL;
    for (int i = 0; i < nblock; i++)
        block[i] = pp_submit(s, ppbench_spin, &us, sizeof us,
                             &(pp_submit_opts){.group = "block"});
    struct timespec nap = {0, 100 * 1000000L};
    nanosleep(&nap, NULL);
    long errors = 0, submitted = 0;
    unsigned char arg[8] = {0};
    double ts0 = bu_now();
    for (long i = 0; i < n; i++) {
        jobs[i] = pp_submit(s, ppbench_echo, arg, sizeof arg,
                            &(pp_submit_opts){.group = "queued"});
        if (!jobs[i]) {
            fprintf(stderr, "pp-bench: submit %ld: %s\n", i, pp_last_error());
            errors++;
            break;
        }
        submitted++;
    }
    double ts1 = bu_now();
    nap.tv_nsec = 50 * 1000000L;
    nanosleep(&nap, NULL); /* the scheduler has them in its queue */
    pp_stats before;
    pp_get_stats(s, &before);
    double t0 = bu_now();
    int cancelled = pp_cancel_group(s, "queued");
    double t_cancel = bu_now();
    pp_wait(s, "queued");
    double t1 = bu_now();
    long not_cancelled = 0;
    for (long i = 0; i < submitted; i++) {
        not_cancelled += pp_job_status(jobs[i]) != PP_CANCELLED;
        pp_job_free(jobs[i]);
    }
    if (cancelled != submitted || not_cancelled) {
        fprintf(stderr, "pp-bench cancel: %d of %ld cancelled, %ld not PP_CANCELLED\n",
                cancelled, submitted, not_cancelled);
        errors++;
    }
    long busy_before = (long)before.pending - submitted; /* the blockers: still running */
    pp_cancel_group(s, "block");
    for (int i = 0; i < nblock; i++)
        pp_job_free(block[i]);
    pp_server_free(s);
    free(jobs);
    json_common(o, "cancel");
    bu_json_long("jobs", n);
    bu_json_long("cancelled", cancelled);
    bu_json_long("blocked_workers", busy_before);
    bu_json_num("submit_seconds", ts1 - ts0);
    bu_json_num("cancel_ms", (t_cancel - t0) * 1000.0);
    bu_json_num("ms", (t1 - t0) * 1000.0);
    bu_json_num("us_per_job", (t1 - t0) * 1e6 / (double)(n > 0 ? n : 1));
    bu_json_long("errors", errors);
    bu_json_end();
    return errors ? 1 : 0;
}

/* N tiny echo jobs, each handle freed at once, through a server with
 * max_pending 10000: the submitting thread waits for room, so the client's
 * memory stays flat however many jobs go through.  RSS before, at 1 M jobs
 * submitted (N/2 when N < 2 M), at the end (all done), the peak (VmHWM)
 * and the largest RSS sampled every 65536 jobs. */
static int cmd_pending_rss(const opts *o)
{
    long n = o->n > 0 ? o->n : 10000000;
    const int max_pending = 10000;
    if (o->nservers || o->ncpus < 1) {
        fprintf(stderr, "pp-bench pending-rss: local workers only (--ncpus >= 1)\n");
        return 2;
    }
    pp_config cfg = {.ncpus = o->ncpus,
                     .log_level = getenv("PP_LOG") ? NULL : "error",
                     .max_pending = max_pending};
    pp_server *s = pp_server_new(&cfg);
    if (!s) {
        fprintf(stderr, "pp-bench: %s\n", pp_last_error());
        return 1;
    }
    unsigned char arg[8] = {0};
    if (warm_up(s, o, ppbench_echo, arg, sizeof arg, 2000) != 0) {
        pp_server_free(s);
        return 1;
    }
    long checkpoint = n >= 2000000 ? 1000000 : n / 2;
    long rss_start = self_status_kb("VmRSS"), rss_checkpoint = -1, rss_max = rss_start;
    long errors = 0;
    uint64_t max_seen = 0;
    double t0 = bu_now();
    for (long i = 0; i < n; i++) {
        uint64_t tag = (uint64_t)i;
        memcpy(arg, &tag, sizeof tag);
        pp_job *j = pp_submit(s, ppbench_echo, arg, sizeof arg, NULL);
        if (!j) {
            fprintf(stderr, "pp-bench: submit %ld: %s\n", i, pp_last_error());
            errors++;
            break;
        }
        pp_job_free(j);
        if (i + 1 == checkpoint)
            rss_checkpoint = self_status_kb("VmRSS");
        if ((i & 0xffff) == 0) { /* every 65536 jobs: the bound, and RSS */
            pp_stats st;
            if (pp_get_stats(s, &st) == 0 && st.pending > max_seen)
                max_seen = st.pending;
            long rss = self_status_kb("VmRSS");
            rss_max = rss > rss_max ? rss : rss_max;
        }
    }
    pp_wait(s, NULL);
    double t1 = bu_now();
    /* VmHWM is the kernel's high-water mark, updated at its own times (it
     * can miss a short peak); the sampled maximum is beside it. */
    long rss_end = self_status_kb("VmRSS"), peak = self_status_kb("VmHWM");
    pp_stats st = {0};
    pp_get_stats(s, &st);
    if (st.failed) {
        fprintf(stderr, "pp-bench pending-rss: %llu job(s) failed\n",
                (unsigned long long)st.failed);
        errors++;
    }
    if (max_seen > (uint64_t)max_pending) {
        fprintf(stderr, "pp-bench pending-rss: %llu pending seen, over the bound\n",
                (unsigned long long)max_seen);
        errors++;
    }
    pp_server_free(s);
    json_common(o, "pending-rss");
    bu_json_long("jobs", n);
    bu_json_long("max_pending", max_pending);
    bu_json_long("max_pending_seen", (long long)max_seen);
    bu_json_long("rss_start_kb", rss_start);
    bu_json_long("checkpoint_jobs", checkpoint);
    bu_json_long("rss_checkpoint_kb", rss_checkpoint);
    bu_json_long("rss_end_kb", rss_end);
    bu_json_long("peak_rss_kb", peak);
    bu_json_num("peak_rss_mb", (double)peak / 1024.0);
    bu_json_long("rss_max_sampled_kb", rss_max);
    bu_json_long("growth_after_checkpoint_kb", rss_end - rss_checkpoint);
    bu_json_num("seconds", t1 - t0);
    bu_json_num("jobs_per_s", (double)n / (t1 - t0));
    bu_json_long("errors", errors);
    bu_json_end();
    return errors ? 1 : 0;
}

/* ---- B6: RSS of a process tree ---- */

static int cmd_rss(const opts *o)
{
    if (o->pid <= 0) {
        fprintf(stderr, "pp-bench rss: --pid PID is required\n");
        return 2;
    }
    long rss, pss;
    int nproc;
    if (bu_tree_mem((pid_t)o->pid, &rss, &pss, &nproc) != 0) {
        fprintf(stderr, "pp-bench rss: no process %ld\n", o->pid);
        return 1;
    }
    bu_json_begin();
    bu_json_str("bench", "rss");
    bu_json_long("pid", o->pid);
    bu_json_long("processes", nproc);
    bu_json_long("rss_kb", rss);
    bu_json_long("pss_kb", pss);
    bu_json_num("rss_mb", (double)rss / 1024.0);
    bu_json_num("pss_mb", (double)pss / 1024.0);
    bu_json_end();
    return 0;
}

/* ---- B8: connection set-up ---- */

/* pp_server_new() derives the keys (scrypt) before it returns; the
 * connection to the node (TCP, TLS handshake, inner proof) starts after.
 * Each round times both: the derivation, and from pp_server_new()'s return
 * until the node is up (polled every 20 µs). */
static int cmd_connect(const opts *o)
{
    long n = o->n > 0 ? o->n : 30;
    if (o->nservers != 1) {
        fprintf(stderr, "pp-bench connect: give exactly one --servers node\n");
        return 2;
    }
    double *setup = malloc((size_t)n * sizeof *setup), *kdf = malloc((size_t)n * sizeof *kdf);
    if (!setup || !kdf) {
        free(setup);
        free(kdf);
        return 1;
    }
    pp_config cfg = {.ncpus = 0,
                     .ppservers = (const char *const *)o->servers,
                     .secret = o->secret,
                     .log_level = getenv("PP_LOG") ? NULL : "error",
                     .no_tls = o->no_tls};
    long errors = 0;
    for (long i = 0; i < n && !errors; i++) {
        int64_t t0 = bu_now_ns();
        pp_server *s = pp_server_new(&cfg);
        int64_t t1 = bu_now_ns(), t2 = t1;
        if (!s) {
            fprintf(stderr, "pp-bench: %s\n", pp_last_error());
            errors++;
            break;
        }
        pp_node_info nodes[2];
        int up = 0;
        while (!up && t2 - t1 < 10 * 1000000000LL) {
            up = pp_get_active_nodes(s, nodes, 2) == 2 && nodes[1].state == PP_NODE_UP;
            t2 = bu_now_ns();
            if (!up) {
                struct timespec nap = {0, 20 * 1000L};
                nanosleep(&nap, NULL);
            }
        }
        if (!up) {
            fprintf(stderr, "pp-bench: the node did not come up within 10 s: %s\n",
                    nodes[1].why);
            errors++;
        }
        pp_server_free(s);
        kdf[i] = (double)(t1 - t0) / 1e6;
        setup[i] = (double)(t2 - t1) / 1e6;
    }
    json_common(o, "connect");
    bu_json_long("n", n);
    bu_json_num("median_ms", errors ? 0 : bu_quantile(setup, (size_t)n, 0.5));
    bu_json_num("p99_ms", errors ? 0 : bu_quantile(setup, (size_t)n, 0.99));
    bu_json_num("new_median_ms", errors ? 0 : bu_quantile(kdf, (size_t)n, 0.5));
    bu_json_long("errors", errors);
    bu_json_end();
    free(setup);
    free(kdf);
    return errors ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    opts o = {.cmd = argv[1], .jobs = -1, .n = -1, .bytes = -1, .reps = -1, .warmup = -1,
              .ncpus = -2};
    static const struct option longopts[] = {
        {"jobs", required_argument, NULL, 'j'},    {"n", required_argument, NULL, 'n'},
        {"bytes", required_argument, NULL, 'b'},   {"reps", required_argument, NULL, 'r'},
        {"warmup", required_argument, NULL, 'W'},  {"pid", required_argument, NULL, 'p'},
        {"ncpus", required_argument, NULL, 'c'},   {"ms", required_argument, NULL, 'm'},
        {"servers", required_argument, NULL, 'S'}, {"secret-file", required_argument, NULL, 'F'},
        {"no-tls", no_argument, NULL, 'T'},        {"help", no_argument, NULL, 'h'},
        {"pattern", required_argument, NULL, 'P'}, {"zero-copy", no_argument, NULL, 'Z'},
        {"compress", required_argument, NULL, 'C'}, {NULL, 0, NULL, 0}};
    int c, rc = 2;
    long v;
    optind = 2;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'j':
            if (bu_parse_long(optarg, 1, 100000000, "--jobs", &o.jobs))
                goto out;
            break;
        case 'n':
            if (bu_parse_long(optarg, 1, 100000000, "--n", &o.n))
                goto out;
            break;
        case 'b':
            if (bu_parse_long(optarg, 1, 1L << 30, "--bytes", &o.bytes))
                goto out;
            break;
        case 'r':
            if (bu_parse_long(optarg, 1, 100000, "--reps", &o.reps))
                goto out;
            break;
        case 'W':
            if (bu_parse_long(optarg, 0, 10000000, "--warmup", &o.warmup))
                goto out;
            break;
        case 'p':
            if (bu_parse_long(optarg, 1, 1L << 30, "--pid", &o.pid))
                goto out;
            break;
        case 'c':
            if (bu_parse_long(optarg, 0, 4096, "--ncpus", &v))
                goto out;
            o.ncpus = (int)v;
            break;
        case 'm':
            if (bu_parse_double(optarg, 0.001, 60000, "--ms", &o.ms))
                goto out;
            break;
        case 'S':
            bu_free_list(o.servers);
            o.servers = bu_split_list(optarg, &o.nservers);
            if (!o.servers) {
                fprintf(stderr, "--servers: empty list\n");
                goto out;
            }
            break;
        case 'F':
            free(o.secret);
            if (!(o.secret = bu_read_secret(optarg)))
                goto out;
            break;
        case 'T':
            o.no_tls = 1;
            break;
        case 'P':
            if (strcmp(optarg, "random") != 0 && strcmp(optarg, "compressible") != 0) {
                fprintf(stderr, "--pattern: random or compressible, not \"%s\"\n", optarg);
                goto out;
            }
            o.pattern = strcmp(optarg, "compressible") == 0;
            break;
        case 'Z':
            o.zero_copy = 1;
            break;
        case 'C':
            if (strcmp(optarg, "auto") != 0 && strcmp(optarg, "always") != 0 &&
                strcmp(optarg, "never") != 0) {
                fprintf(stderr, "--compress: auto, always or never, not \"%s\"\n", optarg);
                goto out;
            }
            o.compress = strcmp(optarg, "always") == 0 ? 1 : strcmp(optarg, "never") == 0 ? -1 : 0;
            break;
        case 'h':
            usage(stdout);
            rc = 0;
            goto out;
        default:
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "pp-bench: unexpected argument \"%s\"\n", argv[optind]);
        goto out;
    }
    if (o.ncpus == -2)
        o.ncpus = o.nservers ? 0 : 2;
    if (o.nservers && !o.secret && !getenv("PP_SECRET")) {
        fprintf(stderr, "pp-bench: --servers needs --secret-file (or PP_SECRET)\n");
        goto out;
    }
    if (strcmp(o.cmd, "tiny") == 0)
        rc = cmd_tiny(&o);
    else if (strcmp(o.cmd, "map") == 0)
        rc = cmd_map(&o);
    else if (strcmp(o.cmd, "latency") == 0)
        rc = cmd_latency(&o);
    else if (strcmp(o.cmd, "cpu") == 0)
        rc = cmd_cpu(&o);
    else if (strcmp(o.cmd, "payload") == 0)
        rc = cmd_payload(&o);
    else if (strcmp(o.cmd, "limits") == 0)
        rc = cmd_limits(&o);
    else if (strcmp(o.cmd, "queue") == 0)
        rc = cmd_queue(&o);
    else if (strcmp(o.cmd, "hide") == 0)
        rc = cmd_hide(&o);
    else if (strcmp(o.cmd, "rss") == 0)
        rc = cmd_rss(&o);
    else if (strcmp(o.cmd, "connect") == 0)
        rc = cmd_connect(&o);
    else if (strcmp(o.cmd, "cancel") == 0)
        rc = cmd_cancel(&o);
    else if (strcmp(o.cmd, "pending-rss") == 0)
        rc = cmd_pending_rss(&o);
    else {
        fprintf(stderr, "pp-bench: unknown command \"%s\"\n", o.cmd);
        usage(stderr);
    }
out:
    bu_free_list(o.servers);
    if (o.secret) {
        memset(o.secret, 0, strlen(o.secret));
        free(o.secret);
    }
    return rc;
}
