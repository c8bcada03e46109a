/* SPDX-License-Identifier: MIT */
/* discovery_peer.c -- the programs tests/integration/test_discovery.sh
 * runs inside its network namespaces:
 *
 *   discovery_peer client           a libpp program whose nodes come from
 *                                   PP_SERVERS ("*..."), then pp_add_node() of
 *                                   $PP_TEST_ADD if set, driven by commands on
 *                                   stdin, one answer line each on stdout
 *   discovery_peer capture PORT FILE SECS FROM   the first 72-byte datagram
 *                                   from address FROM on UDP PORT, saved to FILE
 *   discovery_peer send ADDR PORT FILE      FILE's bytes as one datagram
 *   discovery_peer flood ADDR PORT N        N datagrams of garbage: random
 *                                   sizes, and 72-byte ones that look right
 *                                   up to the MAC
 *
 * Client commands (every wait bounded by its SECS):
 *   up N SECS        wait until exactly N nodes are up; "ok ..." or "fail ..."
 *   state NAME STATE SECS   wait until node NAME is in STATE (a number)
 *   submit N MS      N jobs sleeping MS ms each (t_sleep8), not waited for
 *   collect SECS     wait for them; every result checked; jobs per node
 *   stats            the announcement counters
 *   nodes            the node table */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "pp.h"
#include "test_tasks.h"

#define JOBS_MAX 1000
#define NODES_MAX 64

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void nap(void) { nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL); }

static void print_nodes(pp_server *s, const char *prefix)
{
    pp_node_info n[NODES_MAX];
    int k = pp_get_active_nodes(s, n, NODES_MAX);
    printf("%s", prefix);
    for (int i = 0; i < k && i < NODES_MAX; i++)
        printf(" %s=%d", n[i].name, n[i].state);
    printf("\n");
}

static int count_up(pp_server *s)
{
    pp_node_info n[NODES_MAX];
    int k = pp_get_active_nodes(s, n, NODES_MAX), up = 0;
    for (int i = 1; i < k && i < NODES_MAX; i++)
        up += n[i].state == PP_NODE_UP;
    return up;
}

static int node_state(pp_server *s, const char *name)
{
    pp_node_info n[NODES_MAX];
    int k = pp_get_active_nodes(s, n, NODES_MAX);
    for (int i = 1; i < k && i < NODES_MAX; i++)
        if (strcmp(n[i].name, name) == 0)
            return n[i].state;
    return -1;
}

static pp_job *jobs[JOBS_MAX];
static int64_t want[JOBS_MAX];
static int njobs;

static void submit(pp_server *s, int n, long ms)
{
    int ok = 1;
    for (int i = 0; i < n && njobs < JOBS_MAX; i++) {
        want[njobs] = ms + i % 7; /* distinct-ish results, all checked */
        jobs[njobs] = pp_submit(s, t_sleep8, &want[njobs], sizeof want[njobs], NULL);
        ok &= jobs[njobs] != NULL;
        njobs++;
    }
    if (ok)
        printf("ok submitted %d\n", njobs);
    else
        printf("fail submit: %s\n", pp_last_error());
}

static void collect(double secs)
{
    char names[NODES_MAX][80];
    int counts[NODES_MAX] = {0}, nn = 0, bad = 0;
    double end = now_s() + secs;
    for (int i = 0; i < njobs; i++) {
        double left = end - now_s();
        if (left <= 0 || pp_job_wait_for(jobs[i], left) != PP_DONE) {
            printf("fail job %d: %s (%s)\n", i, pp_strerror(pp_job_status(jobs[i])),
                   pp_job_error(jobs[i]) ? pp_job_error(jobs[i]) : "");
            bad = 1;
            break;
        }
        size_t len = 0;
        const int64_t *r = pp_job_result(jobs[i], &len);
        if (!r || len != sizeof *r || *r != want[i]) {
            printf("fail job %d: a wrong result\n", i);
            bad = 1;
            break;
        }
        const char *node = pp_job_node(jobs[i]);
        int k = 0;
        while (k < nn && strcmp(names[k], node) != 0)
            k++;
        if (k == nn && nn < NODES_MAX)
            snprintf(names[nn++], sizeof names[0], "%s", node);
        if (k < NODES_MAX)
            counts[k]++;
    }
    if (!bad) {
        printf("ok collected %d", njobs);
        for (int k = 0; k < nn; k++)
            printf(" %s=%d", names[k], counts[k]);
        printf("\n");
    }
    for (int i = 0; i < njobs; i++)
        pp_job_free(jobs[i]);
    njobs = 0;
}

static void command(pp_server *s, char *line)
{
    char name[128];
    int n, st;
    double secs;
    long ms;
    if (sscanf(line, "up %d %lf", &n, &secs) == 2) {
        double end = now_s() + secs;
        while (count_up(s) != n && now_s() < end)
            nap();
        print_nodes(s, count_up(s) == n ? "ok up" : "fail up");
    } else if (sscanf(line, "state %127s %d %lf", name, &st, &secs) == 3) {
        double end = now_s() + secs;
        while (node_state(s, name) != st && now_s() < end)
            nap();
        print_nodes(s, node_state(s, name) == st ? "ok state" : "fail state");
    } else if (sscanf(line, "submit %d %ld", &n, &ms) == 2) {
        submit(s, n, ms);
    } else if (sscanf(line, "collect %lf", &secs) == 1) {
        collect(secs);
    } else if (strncmp(line, "stats", 5) == 0) {
        pp_stats t;
        pp_get_stats(s, &t);
        printf("ok stats taken=%llu bad=%llu wrong_key=%llu stale=%llu replayed=%llu\n",
               (unsigned long long)t.announce_taken, (unsigned long long)t.announce_bad,
               (unsigned long long)t.announce_wrong_key, (unsigned long long)t.announce_stale,
               (unsigned long long)t.announce_replayed);
    } else if (strncmp(line, "nodes", 5) == 0) {
        print_nodes(s, "ok nodes");
    } else {
        printf("fail unknown command: %s", line);
    }
    fflush(stdout);
}

static int client(void)
{
    pp_server *s = pp_server_new(&(pp_config){.ncpus = 0, .heartbeat = 0.5, .node_timeout = 2});
    if (!s) {
        printf("fail pp_server_new: %s\n", pp_last_error());
        return 1;
    }
    const char *add = getenv("PP_TEST_ADD");
    if (add && pp_add_node(s, add) != 0) {
        printf("fail pp_add_node(\"%s\"): %s\n", add, pp_last_error());
        pp_server_free(s);
        return 1;
    }
    printf("ok started\n");
    fflush(stdout);
    char line[512];
    while (fgets(line, sizeof line, stdin))
        command(s, line);
    collect(30);
    pp_print_stats(s, stderr);
    pp_server_free(s);
    return 0;
}

static int udp_to(const char *addr, const char *port, struct sockaddr_in *to)
{
    int one = 1, fd = socket(AF_INET, SOCK_DGRAM, 0);
    *to = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    if (fd < 0 || inet_pton(AF_INET, addr, &to->sin_addr) != 1 ||
        setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) != 0) {
        fprintf(stderr, "discovery_peer: bad address %s or no socket\n", addr);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int capture(const char *port, const char *file, double secs, const char *from)
{
    struct in_addr sender;
    if (inet_pton(AF_INET, from, &sender) != 1)
        return 2;
    int one = 1, fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("discovery_peer capture");
        return 1;
    }
    unsigned char buf[512];
    for (double end = now_s() + secs; now_s() < end;) {
        struct sockaddr_in src;
        socklen_t slen = sizeof src;
        ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&src, &slen);
        if (n < 0)
            nap();
        if (n != 72 || src.sin_addr.s_addr != sender.s_addr)
            continue;
        FILE *fp = fopen(file, "wb");
        int ok = fp && fwrite(buf, 1, (size_t)n, fp) == (size_t)n;
        ok &= fp && fclose(fp) == 0;
        close(fd);
        return ok ? 0 : 1;
    }
    fprintf(stderr, "discovery_peer capture: nothing within %g s\n", secs);
    close(fd);
    return 1;
}

static int send_file(const char *addr, const char *port, const char *file)
{
    struct sockaddr_in to;
    unsigned char buf[512];
    FILE *fp = fopen(file, "rb");
    size_t n = fp ? fread(buf, 1, sizeof buf, fp) : 0;
    if (fp)
        fclose(fp);
    int fd = udp_to(addr, port, &to);
    if (fd < 0 || n == 0)
        return 1;
    int ok = sendto(fd, buf, n, 0, (struct sockaddr *)&to, sizeof to) == (ssize_t)n;
    close(fd);
    return ok ? 0 : 1;
}

static int flood(const char *addr, const char *port, long count)
{
    struct sockaddr_in to;
    int fd = udp_to(addr, port, &to);
    if (fd < 0)
        return 1;
    unsigned seed = 12345;
    unsigned char buf[300];
    for (long i = 0; i < count; i++) {
        size_t n = i % 3 == 0 ? 72 : (size_t)(rand_r(&seed) % sizeof buf);
        for (size_t k = 0; k < n; k++)
            buf[k] = (unsigned char)rand_r(&seed);
        if (n == 72) { /* right up to the MAC: magic, version, sane fields */
            memcpy(buf, "PPAN\1\0\xea\x60\0\0\0\4\0\0\7\xd0", 16);
        }
        if (sendto(fd, buf, n, 0, (struct sockaddr *)&to, sizeof to) < 0 && errno != ENOBUFS &&
            errno != EAGAIN)
            break;
    }
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "client") == 0)
        return client();
    if (argc == 6 && strcmp(argv[1], "capture") == 0)
        return capture(argv[2], argv[3], atof(argv[4]), argv[5]);
    if (argc == 5 && strcmp(argv[1], "send") == 0)
        return send_file(argv[2], argv[3], argv[4]);
    if (argc == 5 && strcmp(argv[1], "flood") == 0)
        return flood(argv[2], argv[3], atol(argv[4]));
    fprintf(stderr, "usage: discovery_peer client | capture PORT FILE SECS FROM | "
                    "send ADDR PORT FILE | flood ADDR PORT N\n");
    return 2;
}
