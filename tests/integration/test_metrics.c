/* SPDX-License-Identifier: MIT */
/* test_metrics.c -- ppserver --metrics, scraped from outside: a real
 * ppserver on 127.0.0.1 with its metrics on a port of its choosing (read
 * back from its log), a libpp client running a known workload (20 jobs
 * done, 3 failed) and a client with a wrong secret; the page is fetched
 * and parsed by tests/integration/metrics_check.py with Debian's
 * prometheus_client parser, and its values checked against the workload
 * and the client's own statistics (pp_get_stats).  Also: 404 and 405,
 * HEAD, an oversized header; a flood of idle connections and scrapes
 * while jobs run (the jobs finish, the page comes back); malformed
 * --metrics addresses refused at start, and a port in use.
 *
 * Skipped (exit 77, reason printed) when /usr/bin/python3 cannot import
 * prometheus_client.parser.  Every wait is bounded; every process started
 * is reaped, also after a failed assertion (per-test teardown). */
#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client_util.h"
#include "cunit_main.h"
#include "pp_auth.h"
#include "pp_common.h"
#include "pp_handshake.h"
#include "pp_wire.h"
#include "server_harness.h"
#include "test_tasks.h"
#include "test_util.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define PYTHON "/usr/bin/python3"

static srv_harness node;
static pp_server *client, *intruder;
static pid_t helper = -1;   /* metrics_check.py running in the background */
static int held_fd = -1;    /* a port kept busy */

static void teardown(void)
{
    if (helper > 0) {
        kill(helper, SIGKILL);
        waitpid(helper, NULL, 0);
    }
    helper = -1;
    if (held_fd >= 0)
        close(held_fd);
    held_fd = -1;
    pp_server_free(intruder);
    intruder = NULL;
    pp_server_free(client);
    client = NULL;
    srv_cleanup(&node);
    memset(&node, 0, sizeof node);
}

/* tests/integration/metrics_check.py */
static const char *checker(void)
{
    static char path[512];
    const char *src = getenv("PP_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/tests/integration/metrics_check.py", src ? src : ".");
    return path;
}

/* Runs the checker with `args` (NULL-terminated, after the script), waits
 * at most `limit` seconds (then SIGKILL); its exit status, or -1. */
static int run_checker(const char *const *args, double limit)
{
    const char *argv[32] = {PYTHON, checker()};
    size_t n = 2;
    for (; args[n - 2] && n < PP_ARRAY_LEN(argv) - 1; n++)
        argv[n] = args[n - 2];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    if (pid < 0)
        return -1;
    helper = pid;
    int status = -1;
    double end = now_s() + limit;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (now_s() > end) {
            fprintf(stderr, "\n    metrics_check.py still runs after %g s: killed\n", limit);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            status = -1;
            break;
        }
        sleep_s(0.02);
    }
    helper = -1;
    return status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The metrics port from the node's log ("metrics on http://ADDR:PORT/metrics"),
 * waiting for the line at most 10 s; -1 when it never comes. */
static int metrics_port_of(const srv_harness *h)
{
    for (int i = 0; i < 500; i++) {
        char *log = srv_read_log(h);
        const char *at = log ? strstr(log, "metrics on http://127.0.0.1:") : NULL;
        int port = at ? atoi(at + strlen("metrics on http://127.0.0.1:")) : -1;
        free(log);
        if (port > 0)
            return port;
        sleep_s(0.02);
    }
    return -1;
}

/* A node with 2 workers and --metrics on 127.0.0.1, port chosen by it;
 * *url gets its /metrics URL.  0 or -1. */
static int start_node(char *url, size_t cap)
{
    if (srv_start(&node, &(srv_opts){.args = ARGS("-w", "2", "--metrics", "127.0.0.1:0")}) != 0)
        return -1;
    int port = metrics_port_of(&node);
    snprintf(url, cap, "http://127.0.0.1:%d/metrics", port);
    return port > 0 ? 0 : -1;
}

/* Stops the node: 1 when it exited 0 and its stderr and log hold no
 * sanitizer report (the metrics server ran inside it). */
static int node_stops_clean(void)
{
    pp_server_free(client);
    client = NULL;
    int st = srv_stop(&node, 10);
    char *err = srv_read_stderr(&node), *log = srv_read_log(&node);
    int clean = st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 && err && log &&
                !strstr(err, "Sanitizer") && !strstr(err, "runtime error") &&
                !strstr(log, "Sanitizer") && !strstr(log, "runtime error");
    if (!clean)
        fprintf(stderr, "\n    ppserver: status %d\n%s\n%s\n", st, err ? err : "", log ? log : "");
    free(err);
    free(log);
    return clean;
}

/* The known workload, then the page checked against it. */
static void test_scrape_workload(void)
{
    char url[128];
    CU_ASSERT_FATAL(start_node(url, sizeof url) == 0);
    client = cl_client_of(node.port, node.secret);
    CU_ASSERT_FATAL(client != NULL);
    CU_ASSERT_FATAL(cl_workload(client, t_square, t_fail, 20, 3));
    /* A client with another secret: refused, counted. */
    intruder = cl_client_of(node.port, "not-the-secret-of-this-node-0123456789");
    CU_ASSERT_FATAL(intruder != NULL);
    CU_ASSERT(cl_wait_node1_state(intruder, PP_NODE_AUTH_FAILED, 10));
    pp_server_free(intruder);
    intruder = NULL;
    /* Garbage where the TLS handshake should be: a handshake error. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)node.port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    CU_ASSERT_FATAL(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    CU_ASSERT(send(fd, "GET / HTTP/1.0\r\n\r\n", 18, MSG_NOSIGNAL) == 18);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char sink[64];
    (void)!recv(fd, sink, sizeof sink, 0); /* the node closes it (or 5 s pass) */
    close(fd);
    sleep_s(0.2);

    pp_stats st;
    CU_ASSERT_FATAL(pp_get_stats(client, &st) == 0);
    CU_ASSERT_EQUAL(st.by_status[PP_DONE], 20);
    CU_ASSERT_EQUAL(st.by_status[PP_FAILED], 3);
    CU_ASSERT(st.bytes_in > 0 && st.bytes_out > 0);
    CU_ASSERT_EQUAL(st.auth_failures, 0);
    char min_in[96];
    /* What the client wrote, the node read (a PING may still be on its way). */
    snprintf(min_in, sizeof min_in, "ppserver_received_bytes_total>=%llu",
             (unsigned long long)(st.bytes_out > 256 ? st.bytes_out - 256 : 0));
    char version[96];
    snprintf(version, sizeof version, "ppserver_build_info{version=\"%s\"}==1", pp_version());
    int rc = run_checker(
        ARGS("scrape", url, version, "ppserver_jobs_total{outcome=\"done\"}==20",
             "ppserver_jobs_total{outcome=\"failed\"}==3",
             "ppserver_jobs_total{outcome=\"crashed\"}==0",
             "ppserver_job_run_seconds_count==23", "ppserver_job_run_seconds_sum>=0",
             "ppserver_jobs_queued==0", "ppserver_workers{state=\"busy\"}==0",
             "ppserver_workers{state=\"idle\"}==2", "ppserver_connections{state=\"ready\"}==1",
             "ppserver_auth_failures_total{reason=\"tls_key\"}>=1", min_in, "ppserver_sent_bytes_total>=1000",
             "ppserver_module_cache_modules==1", "ppserver_module_cache_bytes>=0",
             "ppserver_module_cache_evictions_total==0", "ppserver_handshake_errors_total>=1",
             "ppserver_frame_errors_total==0", "ppserver_uptime_seconds>=0"),
        30);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT(node_stops_clean());
}

/* Only GET (and HEAD) of /metrics; an oversized header is refused and the
 * next scrape served. */
static void test_http_rules(void)
{
    char url[128];
    CU_ASSERT_FATAL(start_node(url, sizeof url) == 0);
    CU_ASSERT_EQUAL(run_checker(ARGS("http", url), 30), 0);
    CU_ASSERT(node_stops_clean());
}

/* 40 idle connections (more than the node keeps) and back-to-back
 * scrapes for 3 s while 30 jobs run: the jobs finish, and afterwards the
 * page is served again. */
static void test_flood(void)
{
    char url[128], port[16];
    CU_ASSERT_FATAL(start_node(url, sizeof url) == 0);
    snprintf(port, sizeof port, "%d", metrics_port_of(&node));
    client = cl_client_of(node.port, node.secret);
    CU_ASSERT_FATAL(client != NULL);
    const char *argv[] = {PYTHON, checker(), "flood", "127.0.0.1", port, "3", "40", "2000",
                          NULL};
    helper = fork();
    if (helper == 0) {
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    CU_ASSERT_FATAL(helper > 0);
    sleep_s(0.3); /* the idle connections are in */
    CU_ASSERT(cl_workload(client, t_square, t_fail, 27, 3));
    int status = -1;
    for (int i = 0; i < 1000 && waitpid(helper, &status, WNOHANG) == 0; i++)
        sleep_s(0.02);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (!WIFEXITED(status)) {
        kill(helper, SIGKILL);
        waitpid(helper, NULL, 0);
    }
    helper = -1;
    CU_ASSERT(srv_alive(&node));
    CU_ASSERT_EQUAL(run_checker(ARGS("scrape", url, "ppserver_jobs_total{outcome=\"done\"}==27"),
                                30), 0);
    CU_ASSERT(node_stops_clean());
}

/* ---- a client by hand (plaintext node), for the attacks counted ---- */

static int send_frame(int fd, uint8_t type, const void *payload, uint32_t len)
{
    uint8_t hdr[PP_WIRE_HDR];
    pp_wire_encode_hdr(hdr, type, 0, 0, len);
    return send(fd, hdr, sizeof hdr, MSG_NOSIGNAL) == (ssize_t)sizeof hdr &&
                   (len == 0 || send(fd, payload, len, MSG_NOSIGNAL) == (ssize_t)len)
               ? 0
               : -1;
}

/* Reads one frame of type `want` into buf (cap bytes); 0 or -1.  The
 * socket has a receive timeout: bounded. */
static int recv_frame(int fd, uint8_t want, uint8_t *buf, size_t cap, pp_frame *f)
{
    uint8_t hdr[PP_WIRE_HDR];
    char err[PP_ERR_LEN];
    if (recv(fd, hdr, sizeof hdr, MSG_WAITALL) != (ssize_t)sizeof hdr ||
        pp_wire_decode_hdr(hdr, (uint32_t)cap, 255, &f->hdr, err) != 0 || f->hdr.type != want ||
        (f->hdr.len && recv(fd, buf, f->hdr.len, MSG_WAITALL) != (ssize_t)f->hdr.len))
        return -1;
    f->payload = buf;
    return 0;
}

/* Connects to the node and runs the handshake with `proof_ok` 1 (a right
 * proof: authenticated) or 0 (a proof of zeros).  The socket, or -1. */
static int hand_client(int port, const char *secret, int proof_ok)
{
    pp_auth_key key;
    if (pp_auth_derive(secret, strlen(secret), &key) != 0)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    struct timeval tv = {.tv_sec = 5};
    pp_hs hs;
    uint8_t hello[PP_HELLO_LEN], proof[PP_MAC_LEN], buf[4096];
    pp_frame f;
    int ok = fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0 &&
             connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
             pp_hs_client_hello(&hs, &key, NULL, hello) == PP_HS_OK &&
             send_frame(fd, PP_T_HELLO, hello, sizeof hello) == 0 &&
             recv_frame(fd, PP_T_CHALLENGE, buf, sizeof buf, &f) == 0 &&
             pp_hs_client_challenge(&hs, &f, proof) == PP_HS_OK;
    if (ok && !proof_ok)
        memset(proof, 0, sizeof proof);
    ok = ok && send_frame(fd, PP_T_PROOF, proof, sizeof proof) == 0;
    if (ok && proof_ok)
        ok = recv_frame(fd, PP_T_ACCEPT, buf, sizeof buf, &f) == 0 &&
             pp_hs_client_accept(&hs, &f) == PP_HS_OK;
    pp_hs_wipe(&hs);
    pp_auth_wipe(&key, sizeof key);
    if (!ok && fd >= 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Attacks, each counted where it belongs: an authenticated client sending
 * a header that is no frame (a frame error) and one sending a frame type a
 * client never sends (a frame error), a wrong inner proof (an
 * authentication failure, wrong_proof), a HELLO of garbage (a handshake
 * error).  The node serves a real client all along. */
static void test_attacks_counted(void)
{
    CU_ASSERT_FATAL(srv_start(&node, &(srv_opts){.args = ARGS("-w", "1", "--no-tls",
                                                               "--auth-delay", "0.01",
                                                               "--metrics", "127.0.0.1:0")})
                    == 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", metrics_port_of(&node));
    char sink[256];
    int fd = hand_client(node.port, node.secret, 1);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT(send(fd, "NOT A FRAME HEADER!!", 20, MSG_NOSIGNAL) == 20);
    while (recv(fd, sink, sizeof sink, 0) > 0) /* until the node closes (5 s at most) */
        ;
    close(fd);
    fd = hand_client(node.port, node.secret, 1);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT(send_frame(fd, PP_T_CHALLENGE, NULL, 0) == 0); /* the node's frame, not ours */
    while (recv(fd, sink, sizeof sink, 0) > 0)
        ;
    close(fd);
    fd = hand_client(node.port, node.secret, 0);
    CU_ASSERT_FATAL(fd >= 0);
    while (recv(fd, sink, sizeof sink, 0) > 0) /* the refusal, then the close */
        ;
    close(fd);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)node.port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    CU_ASSERT_FATAL(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    CU_ASSERT(send_frame(fd, PP_T_HELLO, "garbage", 7) == 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (recv(fd, sink, sizeof sink, 0) > 0)
        ;
    close(fd);
    char name[64];
    snprintf(name, sizeof name, "127.0.0.1:%d", node.port);
    const char *list[] = {name, NULL};
    client = pp_server_new(&(pp_config){.ncpus = 0, .ppservers = list, .secret = node.secret,
                                        .no_tls = 1, .log_level = "error"});
    CU_ASSERT_FATAL(client != NULL);
    CU_ASSERT(cl_workload(client, t_square, t_fail, 2, 0));
    sleep_s(0.2);
    CU_ASSERT_EQUAL(run_checker(ARGS("scrape", url, "ppserver_frame_errors_total==2",
                                     "ppserver_auth_failures_total{reason=\"wrong_proof\"}==1",
                                     "ppserver_auth_failures_total{reason=\"tls_key\"}==0",
                                     "ppserver_handshake_errors_total==1",
                                     "ppserver_jobs_total{outcome=\"done\"}==2",
                                     "ppserver_connections{state=\"ready\"}==1"),
                                30), 0);
    CU_ASSERT(node_stops_clean());
}

/* Each malformed address: exit 64 before anything starts, naming --metrics. */
static void test_bad_address(void)
{
    CU_ASSERT_FATAL(srv_prepare(&node) == 0);
    const char *bad[] = {"127.0.0.1", "localhost:9464", "127.0.0.1:65536", "127.0.0.1:-1",
                         "127.0.0.1:", ":9464", "[::1:9464", "::1:9464", "127.0.0.1:94x",
                         "127.0.0.1:9464 ", "999.1.1.1:80", "[127.0.0.1]:80", ""};
    for (size_t i = 0; i < PP_ARRAY_LEN(bad); i++) {
        char *err = NULL;
        int st = srv_run_once(ARGS("ppserver", "-p", "0", "-i", "127.0.0.1", "--secret-file",
                                   node.secret_file, "--cache-dir", node.cache_dir,
                                   "--metrics", bad[i]),
                              NULL, 20, &err);
        int ok = st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 64 && err &&
                 strstr(err, "--metrics") != NULL;
        if (!ok)
            fprintf(stderr, "\n    --metrics \"%s\": status %d, %s\n", bad[i], st,
                    err ? err : "(no output)");
        CU_ASSERT(ok);
        free(err);
    }
}

/* A port already taken: exit 69 (cannot listen), saying so. */
static void test_port_in_use(void)
{
    CU_ASSERT_FATAL(srv_prepare(&node) == 0);
    held_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    socklen_t sl = sizeof sa;
    CU_ASSERT_FATAL(held_fd >= 0 && bind(held_fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
                    listen(held_fd, 1) == 0 &&
                    getsockname(held_fd, (struct sockaddr *)&sa, &sl) == 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(sa.sin_port));
    char *err = NULL;
    int st = srv_run_once(ARGS("ppserver", "-p", "0", "-i", "127.0.0.1", "-w", "1",
                               "--secret-file", node.secret_file, "--cache-dir",
                               node.cache_dir, "--metrics", addr),
                          NULL, 20, &err);
    CU_ASSERT(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 69);
    CU_ASSERT(err && strstr(err, "--metrics") && strstr(err, "in use"));
    if (!err || !strstr(err, "in use"))
        fprintf(stderr, "\n    status %d: %s\n", st, err ? err : "(none)");
    free(err);
}

static const pp_test tests[] = {
    {"scrape_workload", test_scrape_workload},
    {"http_rules", test_http_rules},
    {"flood", test_flood},
    {"attacks_counted", test_attacks_counted},
    {"bad_address", test_bad_address},
    {"port_in_use", test_port_in_use},
    {NULL, NULL},
};

int pp_register_suites(void)
{
    /* Without the parser nothing here can be checked: skipped, saying why. */
    const char *probe = PYTHON " -c 'import prometheus_client.parser' 2>/dev/null";
    if (system(probe) != 0) {
        printf("test_metrics: skipped: %s cannot import prometheus_client.parser "
               "(Debian: python3-prometheus-client)\n", PYTHON);
        exit(77);
    }
    return pp_add_suite_with("metrics", NULL, NULL, NULL, teardown, tests);
}
