/* SPDX-License-Identifier: MIT */
/* pp-scale -- the scale rows of the benchmark suite (S1..S4).  Each
 * subcommand prints one JSON object on one line; scripts/bench.d/scale.sh
 * starts the nodes and runs them.
 *
 *   pp-scale nodes   --port-base P --count N [--idle S]
 *       one client, N nodes on 127.0.0.1:P..P+N-1 added with pp_add_node():
 *       seconds until all are up, its RSS growth per node with all open,
 *       then once all but 64 went dormant (the idle pool), the client's
 *       CPU while idle for S seconds (getrusage, every thread), and a
 *       burst of 4 jobs a node from dormant: until all are up again, done
 *   pp-scale clients --servers H:P --pid PID [--counts A,B] [--idle S]
 *       A, then B idle clients of the node H:P (process PID): its RSS and CPU
 *   pp-scale share   --servers H:P [--clients C] [--jobs J] [--ms MS]
 *       C clients each run J jobs of MS ms CPU on the node at once: the
 *       slowest and the fastest client's completion time
 * Common: --secret-file F (or PP_SECRET), --heartbeat S, --no-tls. */
#include <dirent.h>
#include <getopt.h>
#include <malloc.h>
#include <pp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench_tasks.h"
#include "bench_util.h"

typedef struct opts {
    const char *cmd;
    long port_base, count, pid, clients, jobs;
    long counts[2];
    double idle, ms;
    double heartbeat;   /* pp_config.heartbeat (0 = its default) */
    int no_tls;
    char *server;
    char *secret;
} opts;

static void usage(FILE *fp)
{
    fputs("usage: pp-scale COMMAND [options]\n"
          "  nodes   --port-base P --count N [--idle S=10]  one client, N nodes:\n"
          "          connect time, RSS per node (open, dormant), idle CPU, a burst\n"
          "  clients --servers H:P --pid PID [--counts A,B=1,64] [--idle S=5]\n"
          "          a node's RSS and idle CPU with A, then B idle clients\n"
          "  share   --servers H:P [--clients C=64] [--jobs J=16] [--ms MS=5]\n"
          "          C clients' J CPU jobs at once on one node: slowest / fastest\n"
          "common: --secret-file F (or PP_SECRET), --heartbeat S (pp_config.heartbeat),\n"
          "        --no-tls (plaintext, to nodes that run --no-tls)\n",
          fp);
}

static void nap(double seconds)
{
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* A client with no local worker and no node (PP_SERVERS ignored), or NULL. */
static pp_server *new_client(const opts *o, const char *node)
{
    const char *list[2] = {node, NULL};
    pp_config cfg = {
        .ncpus = 0,
        .ppservers = list,
        .secret = o->secret,
        .log_level = getenv("PP_LOG") ? NULL : "error",
        .heartbeat = o->heartbeat,
        .no_tls = o->no_tls,
    };
    pp_server *s = pp_server_new(&cfg);
    if (!s)
        fprintf(stderr, "pp-scale: %s\n", pp_last_error());
    return s;
}

/* Nodes of s that are up, -1 when one refused our secret. */
static int nodes_up(pp_server *s, pp_node_info *v, int max)
{
    int n = pp_get_active_nodes(s, v, max), up = 0;
    for (int i = 0; i < n && i < max; i++) {
        if (v[i].state == PP_NODE_AUTH_FAILED)
            return -1;
        up += v[i].state == PP_NODE_UP;
    }
    return up;
}

/* Waits until `want` nodes of s are up, up to `limit` seconds: 0 or -1. */
static int wait_up(pp_server *s, int want, double limit)
{
    pp_node_info *v = malloc(((size_t)want + 1) * sizeof *v);
    if (!v)
        return -1;
    double end = bu_now() + limit;
    int up = 0;
    while ((up = nodes_up(s, v, want + 1)) >= 0 && up < want && bu_now() < end)
        nap(0.002);
    free(v);
    if (up != want)
        fprintf(stderr, "pp-scale: %d of %d node(s) up%s\n", up < 0 ? 0 : up, want,
                up < 0 ? " (a node refused our secret)" : " in time");
    return up == want ? 0 : -1;
}

/* CPU seconds of this process (every thread). */
static double self_cpu(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* CPU seconds of process `pid`, summed over its threads' schedstat (in
 * nanoseconds: /proc/PID/stat counts clock ticks, too coarse for an idle
 * node), or -1. */
static double proc_cpu(long pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/task", pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    double sum = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char file[512];
        snprintf(file, sizeof file, "%s/%s/schedstat", path, e->d_name);
        FILE *fp = fopen(file, "r");
        unsigned long long ns;
        if (fp && fscanf(fp, "%llu", &ns) == 1)
            sum += (double)ns / 1e9;
        if (fp)
            fclose(fp);
    }
    closedir(d);
    return sum;
}

/* ---- S1: one client, many nodes ---- */

/* Nodes of s in `state` (v: room for max). */
static int nodes_in(pp_server *s, pp_node_info *v, int max, int state)
{
    int n = pp_get_active_nodes(s, v, max), k = 0;
    for (int i = 0; i < n && i < max; i++)
        k += v[i].state == state;
    return k;
}

/* Waits until all but `open` of the n nodes are dormant (the idle pool
 * closed them), up to `limit` seconds: the dormant count. */
static int wait_dormant(pp_server *s, pp_node_info *v, int n, int open, double limit)
{
    double end = bu_now() + limit;
    int k;
    while ((k = nodes_in(s, v, n + 1, PP_NODE_DORMANT)) < n - open && bu_now() < end)
        nap(0.05);
    return k;
}

/* From dormant: 4 jobs a node, each 1 ms of CPU, at once.  The seconds
 * until every node is up again (*up_s; -1: not all within the limit),
 * until every job is done (*done_s), and the nodes that ran one (*took).
 * 0, or -1 (a job failed). */
static int burst(pp_server *s, pp_node_info *v, int n, double *up_s, double *done_s, int *took)
{
    int njobs = 4 * n;
    pp_job **jobs = calloc((size_t)njobs, sizeof *jobs);
    if (!jobs)
        return -1;
    int64_t us = 1000;
    double t0 = bu_now();
    *up_s = -1;
    for (int i = 0; i < njobs; i++)
        jobs[i] = pp_submit(s, ppbench_spin, &us, sizeof us, NULL);
    while (*up_s < 0 && bu_now() < t0 + 60) {
        if (nodes_in(s, v, n + 1, PP_NODE_UP) == n)
            *up_s = bu_now() - t0;
        else
            nap(0.002);
    }
    int bad = 0;
    for (int i = 0; i < njobs; i++) {
        bad += !jobs[i] || pp_job_wait_for(jobs[i], 120) != PP_DONE;
        pp_job_free(jobs[i]);
    }
    *done_s = bu_now() - t0;
    free(jobs);
    int m = pp_get_active_nodes(s, v, n + 1);
    *took = 0;
    for (int i = 0; i < m && i < n + 1; i++)
        *took += v[i].jobs > 0;
    if (bad)
        fprintf(stderr, "pp-scale: %d of %d burst job(s) failed\n", bad, njobs);
    return bad ? -1 : 0;
}

/* Adds the n nodes and waits for them all; the seconds it took, or -1. */
static double connect_all(pp_server *s, const opts *o, int n)
{
    double t0 = bu_now();
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "127.0.0.1:%ld", o->port_base + i);
        if (pp_add_node(s, name) != 0) {
            fprintf(stderr, "pp-scale: pp_add_node %s: %s\n", name, pp_last_error());
            return -1;
        }
    }
    return wait_up(s, n, 120) == 0 ? bu_now() - t0 : -1;
}

static int cmd_nodes(const opts *o)
{
    if (o->port_base < 1 || o->count < 1 || o->port_base + o->count > 65536) {
        fprintf(stderr, "pp-scale nodes: needs --port-base and --count\n");
        return 2;
    }
    int n = (int)o->count, open = n < 64 ? n : 64; /* max_idle_nodes' default */
    pp_node_info *v = malloc(((size_t)n + 1) * sizeof *v);
    pp_server *s = v ? new_client(o, NULL) : NULL;
    if (!s) {
        free(v);
        return 1;
    }
    nap(0.2);
    long rss0 = bu_vmrss_kb("self");
    size_t heap0 = mallinfo2().uordblks; /* bytes in use, every arena */
    double connect_s = connect_all(s, o, n), tc = bu_now();
    if (connect_s < 0) {
        pp_server_free(s);
        free(v);
        return 1;
    }
    nap(1.5); /* the first heartbeats go by */
    long rss_open = bu_vmrss_kb("self");
    size_t heap_open = mallinfo2().uordblks;
    /* Idle: beyond the idle pool's limit the connections close. */
    int dormant = wait_dormant(s, v, n, open, 60);
    double dormant_s = bu_now() - tc;
    nap(1.0); /* the heap trimmed after the burst of closes */
    long rss1 = bu_vmrss_kb("self");
    size_t heap1 = mallinfo2().uordblks;
    double c0 = self_cpu(), w0 = bu_now();
    nap(o->idle);
    double cpu = self_cpu() - c0, wall = bu_now() - w0;
    double up_s = -1, done_s = -1;
    int took = 0, rc = burst(s, v, n, &up_s, &done_s, &took);
    pp_server_free(s);
    free(v);
    bu_json_begin();
    bu_json_str("bench", "nodes");
    bu_json_long("nodes", n);
    bu_json_num("connect_s", connect_s);
    bu_json_num("idle_s", wall);
    bu_json_num("idle_cpu_percent", 100 * cpu / wall);
    bu_json_long("rss_base_kb", rss0);
    /* Every node connected, then (the row) after the idle period. */
    bu_json_num("rss_open_per_node_kb", (double)(rss_open - rss0) / n);
    bu_json_num("heap_open_per_node_kb", ((double)heap_open - (double)heap0) / 1024 / n);
    bu_json_long("dormant", dormant);
    bu_json_num("dormant_after_s", dormant_s);
    bu_json_long("rss_kb", rss1);
    bu_json_num("rss_per_node_kb", (double)(rss1 - rss0) / n);
    /* What is live, beside what the heap grew to: RSS also keeps the pages
     * the connections' handshakes used at once and gave back. */
    bu_json_num("heap_per_node_kb", ((double)heap1 - (double)heap0) / 1024 / n);
    bu_json_num("burst_all_up_s", up_s);
    bu_json_num("burst_done_s", done_s);
    bu_json_long("burst_nodes_ran", took);
    bu_json_long("up_at_end", dormant == n - open ? n : -1);
    bu_json_end();
    return dormant == n - open && up_s >= 0 && rc == 0 ? 0 : 1;
}

/* ---- S2: a node's cost per client ---- */

/* Adds clients of the node until there are `want`; 0 or -1. */
static int grow_clients(const opts *o, pp_server **v, int *have, int want)
{
    for (; *have < want; (*have)++) {
        if (!(v[*have] = new_client(o, o->server)) || wait_up(v[*have], 1, 30) != 0) {
            if (v[*have])
                pp_server_free(v[*have]);
            return -1;
        }
    }
    return 0;
}

static int cmd_clients(const opts *o)
{
    if (!o->server || o->pid < 1) {
        fprintf(stderr, "pp-scale clients: needs --servers H:P and --pid\n");
        return 2;
    }
    char pid[32];
    snprintf(pid, sizeof pid, "%ld", o->pid);
    int max = (int)(o->counts[1] > o->counts[0] ? o->counts[1] : o->counts[0]), have = 0;
    pp_server **v = calloc((size_t)max, sizeof *v);
    long rss[2] = {0, 0};
    double cpu[2] = {0, 0};
    int rc = v ? 0 : 1;
    for (int k = 0; k < 2 && rc == 0; k++) {
        if (grow_clients(o, v, &have, (int)o->counts[k]) != 0) {
            rc = 1;
            break;
        }
        nap(1.5);
        rss[k] = bu_vmrss_kb(pid);
        double c0 = proc_cpu(o->pid), w0 = bu_now();
        nap(o->idle);
        cpu[k] = 100 * (proc_cpu(o->pid) - c0) / (bu_now() - w0);
        if (rss[k] < 0 || c0 < 0)
            rc = 1;
    }
    for (int i = 0; i < have; i++)
        pp_server_free(v[i]);
    free(v);
    if (rc)
        return rc;
    double extra = (double)(o->counts[1] - o->counts[0]);
    bu_json_begin();
    bu_json_str("bench", "clients");
    bu_json_long("low", o->counts[0]);
    bu_json_long("high", o->counts[1]);
    bu_json_long("rss_low_kb", rss[0]);
    bu_json_long("rss_high_kb", rss[1]);
    bu_json_num("cpu_low_percent", cpu[0]);
    bu_json_num("cpu_high_percent", cpu[1]);
    bu_json_num("rss_per_client_kb", extra > 0 ? (double)(rss[1] - rss[0]) / extra : 0);
    bu_json_num("cpu_per_client_percent", extra > 0 ? (cpu[1] - cpu[0]) / extra : 0);
    bu_json_end();
    return 0;
}

/* ---- S4: clients sharing one node ---- */

typedef struct sharer {
    pp_server *s;
    const opts *o;
    pthread_barrier_t *go;
    double t0, seconds;
    long bad;
} sharer;

static void *share_run(void *arg)
{
    sharer *c = arg;
    int64_t us = (int64_t)(c->o->ms * 1000);
    pthread_barrier_wait(c->go);
    double t0 = bu_now();
    for (long i = 0; i < c->o->jobs; i++) {
        pp_job *j = pp_submit(c->s, ppbench_spin, &us, sizeof us, NULL);
        if (!j) {
            c->bad++;
            continue;
        }
        pp_job_free(j);
    }
    pp_wait(c->s, NULL);
    c->seconds = bu_now() - t0;
    c->t0 = t0;
    pp_stats st;
    if (pp_get_stats(c->s, &st) == 0)
        c->bad += (long)st.failed;
    return NULL;
}

/* Starts the clients' threads at once and joins them; 0 or -1. */
static int share_race(sharer *c, int n)
{
    pthread_barrier_t go;
    if (pthread_barrier_init(&go, NULL, (unsigned)n) != 0)
        return -1;
    pthread_t *t = calloc((size_t)n, sizeof *t);
    int started = 0;
    for (; t && started < n; started++) {
        c[started].go = &go;
        if (pthread_create(&t[started], NULL, share_run, &c[started]) != 0)
            break;
    }
    if (started < n) { /* the barrier would never open: nothing to measure */
        fprintf(stderr, "pp-scale: cannot start %d threads\n", n);
        exit(1);
    }
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    free(t);
    pthread_barrier_destroy(&go);
    return 0;
}

static int cmd_share(const opts *o)
{
    if (!o->server) {
        fprintf(stderr, "pp-scale share: needs --servers H:P\n");
        return 2;
    }
    int n = (int)o->clients;
    sharer *c = calloc((size_t)n, sizeof *c);
    if (!c)
        return 1;
    int rc = 0, made = 0;
    int64_t us = (int64_t)(o->ms * 1000);
    for (; made < n && rc == 0; made++) {
        c[made] = (sharer){.o = o, .s = new_client(o, o->server)};
        /* Connected, the module on the node, the job's length known to
         * both ends (it sets how many go to a worker at once): not timed. */
        pp_job *j = c[made].s && wait_up(c[made].s, 1, 30) == 0
                        ? pp_submit(c[made].s, ppbench_spin, &us, sizeof us, NULL)
                        : NULL;
        if (!j || pp_job_wait(j) != PP_DONE)
            rc = 1;
        pp_job_free(j);
    }
    if (rc == 0)
        rc = share_race(c, n);
    double lo = 1e30, hi = 0, sum = 0;
    long bad = 0;
    for (int i = 0; i < made; i++) {
        if (rc == 0) {
            lo = c[i].seconds < lo ? c[i].seconds : lo;
            hi = c[i].seconds > hi ? c[i].seconds : hi;
            sum += c[i].seconds;
            bad += c[i].bad;
        }
        if (c[i].s)
            pp_server_free(c[i].s);
    }
    free(c);
    if (rc)
        return 1;
    bu_json_begin();
    bu_json_str("bench", "share");
    bu_json_long("clients", n);
    bu_json_long("jobs", o->jobs);
    bu_json_num("ms", o->ms);
    bu_json_num("fastest_s", lo);
    bu_json_num("slowest_s", hi);
    bu_json_num("mean_s", sum / n);
    bu_json_num("ratio", hi / lo);
    bu_json_long("errors", bad);
    bu_json_end();
    return bad ? 1 : 0;
}

static int parse_counts(const char *s, long out[2])
{
    char *end;
    out[0] = strtol(s, &end, 10);
    if (*end != ',' || out[0] < 1)
        return -1;
    out[1] = strtol(end + 1, &end, 10);
    return *end || out[1] < out[0] || out[1] > 10000 ? -1 : 0;
}

/* Fills o from the options; 0, or 2 (usage error), or -1 (--help). */
static int parse(int argc, char **argv, opts *o)
{
    static const struct option longopts[] = {
        {"port-base", required_argument, NULL, 'P'}, {"count", required_argument, NULL, 'N'},
        {"idle", required_argument, NULL, 'I'},      {"servers", required_argument, NULL, 'S'},
        {"pid", required_argument, NULL, 'p'},       {"counts", required_argument, NULL, 'C'},
        {"clients", required_argument, NULL, 'c'},   {"jobs", required_argument, NULL, 'j'},
        {"ms", required_argument, NULL, 'm'},        {"secret-file", required_argument, NULL, 'F'},
        {"heartbeat", required_argument, NULL, 'H'}, {"no-tls", no_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c, bad = 0;
    optind = 2;
    while (!bad && (c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'P': bad = bu_parse_long(optarg, 1, 65535, "--port-base", &o->port_base); break;
        case 'N': bad = bu_parse_long(optarg, 1, 60000, "--count", &o->count); break;
        case 'I': bad = bu_parse_double(optarg, 0.1, 3600, "--idle", &o->idle); break;
        case 'S': free(o->server); o->server = strdup(optarg); break;
        case 'p': bad = bu_parse_long(optarg, 1, 1L << 30, "--pid", &o->pid); break;
        case 'C':
            if ((bad = parse_counts(optarg, o->counts)))
                fprintf(stderr, "--counts: A,B with 1 <= A <= B\n");
            break;
        case 'c': bad = bu_parse_long(optarg, 1, 4096, "--clients", &o->clients); break;
        case 'j': bad = bu_parse_long(optarg, 1, 1000000, "--jobs", &o->jobs); break;
        case 'm': bad = bu_parse_double(optarg, 0, 60000, "--ms", &o->ms); break;
        case 'F':
            free(o->secret);
            bad = !(o->secret = bu_read_secret(optarg));
            break;
        case 'H': bad = bu_parse_double(optarg, 0.01, 3600, "--heartbeat", &o->heartbeat); break;
        case 'T': o->no_tls = 1; break;
        case 'h': usage(stdout); return -1;
        default: bad = 1;
        }
    }
    if (!bad && optind < argc) {
        fprintf(stderr, "pp-scale: unexpected argument \"%s\"\n", argv[optind]);
        bad = 1;
    }
    if (!bad && !o->secret && !getenv("PP_SECRET")) {
        fprintf(stderr, "pp-scale: needs --secret-file (or PP_SECRET)\n");
        bad = 1;
    }
    return bad ? 2 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    opts o = {.cmd = argv[1], .idle = -1, .counts = {1, 64}, .clients = 64, .jobs = 16,
              .ms = 5};
    int rc = parse(argc, argv, &o);
    if (rc == 0) {
        if (strcmp(o.cmd, "nodes") == 0) {
            o.idle = o.idle > 0 ? o.idle : 10;
            rc = cmd_nodes(&o);
        } else if (strcmp(o.cmd, "clients") == 0) {
            o.idle = o.idle > 0 ? o.idle : 5;
            rc = cmd_clients(&o);
        } else if (strcmp(o.cmd, "share") == 0) {
            rc = cmd_share(&o);
        } else {
            fprintf(stderr, "pp-scale: unknown command \"%s\"\n", o.cmd);
            usage(stderr);
            rc = 2;
        }
    }
    free(o.server);
    if (o.secret) {
        memset(o.secret, 0, strlen(o.secret));
        free(o.secret);
    }
    return rc < 0 ? 0 : rc;
}
