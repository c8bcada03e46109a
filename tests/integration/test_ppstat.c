/* SPDX-License-Identifier: MIT */
/* test_ppstat.c -- node status (issue 14): ppstat ($PP_STAT) and the STATUS
 * frame against real ppservers on 127.0.0.1, and SIGUSR1.
 *
 *   - two live nodes while a libpp client's jobs run: the busy workers name
 *     the client and their jobs; afterwards each node's counts agree with
 *     the client's own (pp_get_active_nodes, pp_get_stats); the --json
 *     output is read with python3's json module;
 *   - a wrong secret, a dead port, a node that never answers and a name
 *     that does not resolve: a message naming each node, exit status 1,
 *     the good node still printed;
 *   - STATUS before the handshake (plaintext before HELLO and after it,
 *     over TLS before HELLO): the connection is closed and no byte of a
 *     status comes back;
 *   - a hostile node (TLS and handshake right, then a malformed or an
 *     oversized reply): ppstat says so and exits 1;
 *   - --watch refreshes until interrupted; SIGUSR1 writes the summary to
 *     the log.
 * Skipped (77, reason printed) without python3.  Every wait is bounded;
 * every process started is reaped, also after a failed assertion. */
#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client_util.h"
#include "cunit_main.h"
#include "pp_auth.h"
#include "pp_buf.h"
#include "pp_common.h"
#include "pp_handshake.h"
#include "pp_proto.h"
#include "pp_wire.h"
#include "raw_tls.h"
#include "server_harness.h"
#include "test_tasks.h"
#include "test_util.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static srv_harness na, nb;
static pp_server *client;
static pid_t child = -1;       /* a ppstat running in the background */
static int lfd = -1, cfd = -1; /* the fake node's sockets */
static char python[64];

static void teardown(void)
{
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
    child = -1;
    if (cfd >= 0) {
        rt_forget(cfd);
        close(cfd);
    }
    if (lfd >= 0)
        close(lfd);
    cfd = lfd = -1;
    rt_reset();
    pp_server_free(client);
    client = NULL;
    srv_cleanup(&na);
    srv_cleanup(&nb);
    memset(&na, 0, sizeof na);
    memset(&nb, 0, sizeof nb);
}

/* ---- running ppstat ---- */

/* Starts argv (argv[0] ignored: $PP_STAT) with stdout and stderr into files
 * of dir; the pid, or -1. */
static pid_t start_ppstat(const char *dir, const char *const *argv)
{
    const char *exe = getenv("PP_STAT");
    char out[512], err[512];
    snprintf(out, sizeof out, "%s/ppstat.out", dir);
    snprintf(err, sizeof err, "%s/ppstat.err", dir);
    pid_t pid = fork();
    if (pid == 0) {
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (!exe || o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(126);
        unsetenv("PP_SECRET");
        unsetenv("PP_SECRET_FILE");
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* Waits at most `limit` seconds for pid (then SIGKILL); its exit status,
 * or -1 when it did not exit by itself. */
static int wait_exit(pid_t pid, double limit)
{
    int status = 0;
    double end = now_s() + limit;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (now_s() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fprintf(stderr, "\n    ppstat still ran after %g s: killed", limit);
            return -1;
        }
        sleep_s(0.01);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Runs ppstat to its end (at most 20 s); its exit status, its stdout and
 * stderr (malloc'd) in *out and *err. */
static int run_ppstat(const char *dir, const char *const *argv, char **out, char **err)
{
    char path[512];
    pid_t pid = start_ppstat(dir, argv);
    child = pid;
    int rc = pid > 0 ? wait_exit(pid, 20) : -1;
    child = -1;
    snprintf(path, sizeof path, "%s/ppstat.out", dir);
    *out = srv_slurp(path, NULL);
    snprintf(path, sizeof path, "%s/ppstat.err", dir);
    *err = srv_slurp(path, NULL);
    if (!*out)
        *out = strdup("");
    if (!*err)
        *err = strdup("");
    CU_ASSERT(*err && !strstr(*err, "Sanitizer") && !strstr(*err, "runtime error"));
    return rc;
}

/* Stops the nodes that run: 1 when each exited 0 with no sanitizer report
 * in its stderr or log (the status code ran inside them). */
static int nodes_stop_clean(void)
{
    pp_server_free(client);
    client = NULL;
    int clean = 1;
    srv_harness *hs[] = {&na, &nb};
    for (int i = 0; i < 2; i++) {
        if (!hs[i]->pid)
            continue;
        int st = srv_stop(hs[i], 10);
        char *err = srv_read_stderr(hs[i]), *log = srv_read_log(hs[i]);
        int ok = st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 && err && log &&
                 !strstr(err, "Sanitizer") && !strstr(err, "runtime error") &&
                 !strstr(log, "Sanitizer") && !strstr(log, "runtime error");
        if (!ok)
            fprintf(stderr, "\n    ppserver: status %d\n%s\n%s\n", st, err ? err : "",
                    log ? log : "");
        clean &= ok;
        free(err);
        free(log);
    }
    return clean;
}

/* python3 reading ppstat's JSON (the file `json`): per node a line
 * "NAME OK DONE FAILED CLIENTS_DONE CLIENTS_FAILED BUSY BUSY_NAMED", or
 * "NAME 0 ERROR..." for a node that failed.  Malloc'd, or NULL when the
 * file is no valid JSON. */
static char *digest_json(const char *dir)
{
    static const char script[] =
        "import json,sys\n"
        "d=json.load(open(sys.argv[1]))\n"
        "for n in d['nodes']:\n"
        "  if not n['ok']:\n"
        "    print(n['node'],0,n['error']); continue\n"
        "  w=[x for x in n['workers'] if x['busy']]\n"
        "  print(n['node'],1,n['jobs']['done'],n['jobs']['failed'],\n"
        "        sum(c['done'] for c in n['clients']),sum(c['failed'] for c in n['clients']),\n"
        "        len(w),len([x for x in w if x['client'].startswith('127.0.0.1:') and\n"
        "                    x['run_seconds']>=0]))\n";
    char json[512], out[512], cmd[2200];
    snprintf(json, sizeof json, "%s/ppstat.out", dir);
    snprintf(out, sizeof out, "%s/digest.txt", dir);
    /* the script through a file: no shell quoting of its text */
    char spath[512];
    snprintf(spath, sizeof spath, "%s/digest.py", dir);
    FILE *fp = fopen(spath, "w");
    if (!fp)
        return NULL;
    fputs(script, fp);
    fclose(fp);
    snprintf(cmd, sizeof cmd, "timeout 20 %s %s %s > %s 2>&1", python, spath, json, out);
    int st = system(cmd);
    char *text = srv_slurp(out, NULL);
    if (st != 0) {
        fprintf(stderr, "\n    python3 could not read ppstat's JSON: %s", text ? text : "");
        free(text);
        return NULL;
    }
    return text;
}

static void find_python(void)
{
    const char *cands[] = {"/usr/bin/python3", "/usr/local/bin/python3"};
    for (size_t i = 0; i < PP_ARRAY_LEN(cands) && !python[0]; i++)
        if (access(cands[i], X_OK) == 0)
            snprintf(python, sizeof python, "%s", cands[i]);
    if (!python[0] || !getenv("PP_STAT")) {
        printf("test_ppstat: skipped: needs python3 (%s) and $PP_STAT\n",
               python[0] ? "found" : "not found");
        exit(77);
    }
}

static pp_server *client_of(const srv_harness *a, const srv_harness *b, int no_tls)
{
    static char n1[64], n2[64];
    snprintf(n1, sizeof n1, "127.0.0.1:%d", a->port);
    snprintf(n2, sizeof n2, "127.0.0.1:%d", b ? b->port : 0);
    const char *list[] = {n1, b ? n2 : NULL, NULL};
    return pp_server_new(&(pp_config){.ncpus = 0, .ppservers = list, .secret = a->secret,
                                      .no_tls = no_tls, .log_level = "error"});
}

/* Waits (at most 10 s) until the client has `want` remote nodes up. */
static int nodes_up(pp_server *s, int want)
{
    for (int i = 0; i < 500; i++) {
        pp_node_info ni[4];
        int n = pp_get_active_nodes(s, ni, 4), up = 0;
        for (int k = 0; k < n; k++)
            up += ni[k].state == PP_NODE_UP && strcmp(ni[k].name, "local") != 0;
        if (up >= want)
            return 1;
        sleep_s(0.02);
    }
    return 0;
}

/* Sums column `col` (1-based, after the name) of the digest's lines. */
static long long column_sum(const char *digest, int col)
{
    long long sum = 0;
    for (const char *l = digest; l && *l;) {
        const char *nl = strchr(l, '\n');
        const char *p = strchr(l, ' ');
        for (int c = 1; p && (!nl || p < nl) && c < col; c++)
            p = strchr(p + 1, ' ');
        if (p && (!nl || p < nl))
            sum += atoll(p + 1);
        l = nl ? nl + 1 : NULL;
    }
    return sum;
}

/* The digest line of node `name`: its columns after the name, or NULL. */
static int node_line(const char *digest, const char *name, long long v[7])
{
    char key[80];
    snprintf(key, sizeof key, "%s 1 ", name);
    const char *l = digest ? strstr(digest, key) : NULL;
    return l && sscanf(l + strlen(key), "%lld %lld %lld %lld %lld %lld", &v[0], &v[1], &v[2],
                       &v[3], &v[4], &v[5]) == 6
               ? 0
               : -1;
}

/* Jobs finished on node `name` as the client counts them, or -1. */
static long long client_jobs_on(pp_server *s, const char *name)
{
    pp_node_info ni[4];
    int n = pp_get_active_nodes(s, ni, 4);
    for (int i = 0; i < n && i < 4; i++)
        if (strcmp(ni[i].name, name) == 0)
            return (long long)ni[i].jobs;
    return -1;
}

/* ppstat --json on both nodes until it shows `want` busy workers naming a
 * client (at most 5 s); the number last seen. */
static long long busy_named(const char *a, const char *b, long long want)
{
    long long named = -1;
    double end = now_s() + 5;
    while (named < want && now_s() < end) {
        char *out, *err;
        int rc = run_ppstat(na.dir, ARGS("ppstat", "--json", "--secret-file", na.secret_file, a,
                                         b),
                            &out, &err);
        CU_ASSERT_EQUAL(rc, 0);
        char *d = rc == 0 ? digest_json(na.dir) : NULL;
        named = d ? column_sum(d, 7) : -1;
        free(d);
        free(out);
        free(err);
        if (rc != 0)
            break;
    }
    return named;
}

/* Two nodes, jobs running then done: what ppstat shows agrees with the
 * client. */
static void test_two_nodes(void)
{
    CU_ASSERT_FATAL(srv_start(&na, &(srv_opts){.args = ARGS("-w", "2")}) == 0);
    CU_ASSERT_FATAL(srv_start(&nb, &(srv_opts){.args = ARGS("-w", "2"), .share_secret = &na}) ==
                    0);
    client = client_of(&na, &nb, 0);
    CU_ASSERT_FATAL(client != NULL);
    CU_ASSERT_FATAL(nodes_up(client, 2));
    char a[64], b[64];
    snprintf(a, sizeof a, "127.0.0.1:%d", na.port);
    snprintf(b, sizeof b, "127.0.0.1:%d", nb.port);
    pp_job *slow[4];
    for (int i = 0; i < 4; i++)
        slow[i] = pp_submitf(client, t_sleep, NULL, "l", 2500L);
    /* 4 jobs on 4 workers: at least 2 run on one node at once. */
    CU_ASSERT(busy_named(a, b, 2) >= 2);
    char *out, *err;
    CU_ASSERT_EQUAL(run_ppstat(na.dir, ARGS("ppstat", "--secret-file", na.secret_file, a, b),
                               &out, &err),
                    0);
    char head[96];
    snprintf(head, sizeof head, "== %s ==", b);
    CU_ASSERT(strstr(out, head) != NULL);
    CU_ASSERT(strstr(out, "workers    2 (") != NULL);
    CU_ASSERT(strstr(out, "ready") != NULL);
    free(out);
    free(err);
    for (int i = 0; i < 4; i++) {
        CU_ASSERT(slow[i] && pp_job_wait_for(slow[i], 30) == PP_DONE);
        pp_job_free(slow[i]);
    }
    CU_ASSERT_FATAL(cl_workload(client, t_square, t_fail, 20, 3));
    CU_ASSERT_EQUAL(busy_named(a, b, 0), 0); /* idle now */
    char *d = digest_json(na.dir);
    CU_ASSERT_FATAL(d != NULL);
    pp_stats st;
    CU_ASSERT_FATAL(pp_get_stats(client, &st) == 0);
    CU_ASSERT_EQUAL(column_sum(d, 2), (long long)st.by_status[PP_DONE]);
    CU_ASSERT_EQUAL(column_sum(d, 3), (long long)st.by_status[PP_FAILED]);
    CU_ASSERT_EQUAL(column_sum(d, 2), 24);
    const char *names[] = {a, b};
    for (int i = 0; i < 2; i++) {
        long long v[7];
        CU_ASSERT_FATAL(node_line(d, names[i], v) == 0);
        CU_ASSERT_EQUAL(v[0] + v[1], client_jobs_on(client, names[i])); /* done + failed */
        CU_ASSERT_EQUAL(v[2], v[0]); /* this client's done: all of the node's */
        CU_ASSERT_EQUAL(v[3], v[1]);
    }
    free(d);
    CU_ASSERT(nodes_stop_clean());
}

/* A wrong secret, a dead port, a node that never answers: each named with
 * its reason, exit 1; the good node is still printed. */
static void test_failures(void)
{
    CU_ASSERT_FATAL(srv_start(&na, &(srv_opts){.args = ARGS("-w", "1")}) == 0);
    char wrong[512], a[64], dead[64], mute[64];
    snprintf(wrong, sizeof wrong, "%s/wrong.secret", na.dir);
    FILE *fp = fopen(wrong, "w");
    CU_ASSERT_FATAL(fp != NULL);
    fputs("this-is-not-the-secret-of-that-node\n", fp);
    fclose(fp);
    chmod(wrong, 0600);
    snprintf(a, sizeof a, "127.0.0.1:%d", na.port);
    /* A port nobody listens on, and one that never accepts. */
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof sa;
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int d = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CU_ASSERT_FATAL(d >= 0 && bind(d, (struct sockaddr *)&sa, sizeof sa) == 0 &&
                    getsockname(d, (struct sockaddr *)&sa, &sl) == 0);
    snprintf(dead, sizeof dead, "127.0.0.1:%d", ntohs(sa.sin_port));
    close(d);
    sa.sin_port = 0;
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CU_ASSERT_FATAL(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
                    listen(lfd, 4) == 0 && getsockname(lfd, (struct sockaddr *)&sa, &sl) == 0);
    snprintf(mute, sizeof mute, "127.0.0.1:%d", ntohs(sa.sin_port));

    char *out, *err, want[200];
    CU_ASSERT_EQUAL(run_ppstat(na.dir, ARGS("ppstat", "--timeout", "1", "--secret-file", wrong,
                                            a),
                               &out, &err),
                    1);
    snprintf(want, sizeof want, "ppstat: %s: authentication failed", a);
    CU_ASSERT(strstr(err, want) != NULL);
    free(out);
    free(err);
    CU_ASSERT_EQUAL(run_ppstat(na.dir, ARGS("ppstat", "--json", "--timeout", "1",
                                            "--secret-file", na.secret_file, dead, a, mute,
                                            "no-such-host.invalid:1"),
                               &out, &err),
                    1);
    snprintf(want, sizeof want, "ppstat: %s: cannot connect", dead);
    CU_ASSERT(strstr(err, want) != NULL);
    snprintf(want, sizeof want, "ppstat: %s: no answer within the timeout", mute);
    CU_ASSERT(strstr(err, want) != NULL);
    /* A name that does not resolve (or a resolver that does not answer in
     * time): named too. */
    CU_ASSERT(strstr(err, "ppstat: no-such-host.invalid:1: ") != NULL);
    free(out);
    free(err);
    char *dg = digest_json(na.dir); /* valid JSON, the good node in it */
    CU_ASSERT_FATAL(dg != NULL);
    long long v[7];
    CU_ASSERT(node_line(dg, a, v) == 0);
    snprintf(want, sizeof want, "%s 0 cannot connect", dead);
    CU_ASSERT(strstr(dg, want) != NULL);
    free(dg);
    /* Usage errors: exit 2. */
    CU_ASSERT_EQUAL(run_ppstat(na.dir, ARGS("ppstat", "--secret-file", na.secret_file), &out,
                               &err),
                    2);
    free(out);
    free(err);
    CU_ASSERT_EQUAL(run_ppstat(na.dir, ARGS("ppstat", "--watch", "-1", a), &out, &err), 2);
    free(out);
    free(err);
}

/* ---- peers by hand ---- */

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
        return fd;
    if (fd >= 0)
        close(fd);
    return -1;
}

static int send_frame(int fd, uint8_t type, uint64_t id, const void *p, uint32_t len)
{
    uint8_t hdr[PP_WIRE_HDR];
    pp_wire_encode_hdr(hdr, type, 0, id, len);
    return rt_send_all(fd, hdr, sizeof hdr, 5) == 0 && (len == 0 || rt_send_all(fd, p, len, 5) == 0)
               ? 0
               : -1;
}

/* Exactly n bytes within `limit` seconds: 0 or -1. */
static int recv_exact(int fd, void *buf, size_t n, double limit)
{
    double end = now_s() + limit;
    for (size_t got = 0; got < n;) {
        ssize_t r = rt_recv(fd, (char *)buf + got, n - got, end);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

/* One frame of type `want` (payload into buf, cap bytes).  0 or -1. */
static int recv_frame(int fd, uint8_t want, uint8_t *buf, size_t cap, pp_frame *f)
{
    uint8_t hdr[PP_WIRE_HDR];
    char err[PP_ERR_LEN];
    if (recv_exact(fd, hdr, sizeof hdr, 5) != 0 ||
        pp_wire_decode_hdr(hdr, (uint32_t)cap, 255, &f->hdr, err) != 0 || f->hdr.type != want ||
        (f->hdr.len && recv_exact(fd, buf, f->hdr.len, 5) != 0))
        return -1;
    f->payload = buf;
    return 0;
}

/* Reads what comes until the peer closes (at most 5 s): the bytes (up to
 * cap) into buf; -1 when it did not close. */
static ssize_t drain(int fd, uint8_t *buf, size_t cap)
{
    size_t got = 0;
    double end = now_s() + 5;
    for (;;) {
        uint8_t sink[4096];
        ssize_t r = rt_recv(fd, sink, sizeof sink, end);
        if (r == 0 || r == -2)
            return (ssize_t)got;
        if (r < 0)
            return -1;
        size_t k = PP_MIN((size_t)r, cap - got);
        memcpy(buf + got, sink, k);
        got += k;
    }
}

/* No STATREPLY among the frames of buf, and no status text anywhere. */
static int no_status_in(const uint8_t *buf, size_t n)
{
    for (size_t i = 0; i + 9 <= n; i++)
        if (memcmp(buf + i, "pp-status", 9) == 0)
            return 0;
    for (size_t off = 0; off + PP_WIRE_HDR <= n;) {
        pp_frame_hdr h;
        char err[PP_ERR_LEN];
        if (pp_wire_decode_hdr(buf + off, 1u << 20, 255, &h, err) != 0)
            break; /* not frames (TLS records): the text check above holds */
        if (h.type == PP_T_STATREPLY)
            return 0;
        off += PP_WIRE_HDR + h.len;
    }
    return 1;
}

/* STATUS sent to nb (plaintext node) or na (TLS node) at each step before
 * authentication: closed, no status. */
static void test_status_unauthenticated(void)
{
    CU_ASSERT_FATAL(srv_start(&na, &(srv_opts){.args = ARGS("-w", "1")}) == 0);
    CU_ASSERT_FATAL(srv_start(&nb, &(srv_opts){.args = ARGS("-w", "1", "--no-tls"),
                                                .share_secret = &na}) == 0);
    static uint8_t buf[65536];
    pp_auth_key key;
    CU_ASSERT_FATAL(rt_key(na.secret, &key) == 0);
    for (int step = 0; step < 4; step++) {
        /* 0: plaintext, first frame; 1: plaintext, after HELLO; 2: TLS
         * done, before HELLO; 3: plaintext bytes to the TLS node. */
        int fd = raw_connect(step == 0 || step == 1 ? nb.port : na.port);
        CU_ASSERT_FATAL(fd >= 0);
        char why[PP_ERR_LEN];
        if (step == 2)
            CU_ASSERT_FATAL(rt_client(fd, na.secret, 5, why) == 0);
        if (step == 1) {
            pp_hs hs;
            uint8_t hello[PP_HELLO_LEN];
            CU_ASSERT_FATAL(pp_hs_client_hello(&hs, &key, NULL, hello) == PP_HS_OK);
            CU_ASSERT(send_frame(fd, PP_T_HELLO, 0, hello, sizeof hello) == 0);
            pp_hs_wipe(&hs);
        }
        CU_ASSERT(send_frame(fd, PP_T_STATUS, 1, NULL, 0) == 0);
        ssize_t n = drain(fd, buf, sizeof buf);
        CU_ASSERT(n >= 0); /* closed by the node */
        CU_ASSERT(n < 0 || no_status_in(buf, (size_t)n));
        if (step == 0 || step == 3) { /* the refusal is an ERROR frame, nothing else */
            pp_frame_hdr h;
            char err[PP_ERR_LEN];
            CU_ASSERT(n >= PP_WIRE_HDR &&
                      pp_wire_decode_hdr(buf, 1u << 20, 255, &h, err) == 0 &&
                      h.type == PP_T_ERROR && (size_t)n == PP_WIRE_HDR + h.len);
        }
        rt_forget(fd);
        close(fd);
    }
    pp_auth_wipe(&key, sizeof key);
    /* ppstat itself against the plaintext node: with --no-tls, and without. */
    char b[64], *out, *err;
    snprintf(b, sizeof b, "127.0.0.1:%d", nb.port);
    CU_ASSERT_EQUAL(run_ppstat(nb.dir, ARGS("ppstat", "--no-tls", "--secret-file",
                                            nb.secret_file, b),
                               &out, &err),
                    0);
    CU_ASSERT(strstr(out, "version    ") != NULL);
    free(out);
    free(err);
    CU_ASSERT_EQUAL(run_ppstat(nb.dir, ARGS("ppstat", "--secret-file", nb.secret_file, b), &out,
                               &err),
                    1);
    CU_ASSERT(strstr(err, "try --no-tls") != NULL);
    free(out);
    free(err);
    const char *const needles[] = {"unexpected frame STATUS", NULL};
    CU_ASSERT_EQUAL(srv_log_count(&nb, needles), 2);
    CU_ASSERT_EQUAL(srv_log_count(&na, needles), 1);
    CU_ASSERT(nodes_stop_clean());
}

/* ---- a hostile node: TLS and the handshake right, then a bad reply ---- */

/* Accepts ppstat's connection on lfd (at most 10 s) and runs the node's
 * side of TLS and the handshake, up to ppstat's STATUS.  0 or -1. */
static int fake_node_handshake(const char *secret)
{
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    if (poll(&p, 1, 10000) != 1 || (cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
        return -1;
    char why[PP_ERR_LEN];
    pp_auth_key key;
    uint8_t binding[PP_TLS_BINDING_LEN], buf[256], chal[PP_CHALLENGE_LEN], acc[PP_MAC_LEN];
    pp_frame f;
    pp_hs hs;
    int ok = rt_server(cfd, secret, 5, why) == 0 && rt_key(secret, &key) == 0 &&
             rt_binding(cfd, binding) == 0 &&
             recv_frame(cfd, PP_T_HELLO, buf, sizeof buf, &f) == 0 &&
             pp_hs_server_hello(&hs, &key, binding, &f, 1u << 20, 2, chal) == PP_HS_OK &&
             send_frame(cfd, PP_T_CHALLENGE, 0, chal, sizeof chal) == 0 &&
             recv_frame(cfd, PP_T_PROOF, buf, sizeof buf, &f) == 0 &&
             pp_hs_server_proof(&hs, &f, acc) == PP_HS_OK &&
             send_frame(cfd, PP_T_ACCEPT, 0, acc, sizeof acc) == 0 &&
             recv_frame(cfd, PP_T_STATUS, buf, sizeof buf, &f) == 0;
    pp_hs_wipe(&hs);
    pp_auth_wipe(&key, sizeof key);
    return ok ? 0 : -1;
}

/* Replies that ppstat must refuse: its message for each, exit status 1. */
static void test_hostile_node(void)
{
    CU_ASSERT_FATAL(srv_prepare(&na) == 0); /* a directory and a secret; no server */
    static const struct {
        const char *reply;
        uint32_t claimed;      /* the length the header says (0: the reply's) */
        const char *want;
    } cases[] = {
        {"pp-status 1\nnode version=$(reboot) uptime=1\n", 0, "malformed status reply"},
        {"pp-status 1\nnode version=1 uptime=1 port=1 accepted=1 bytes_in=1 bytes_out=1\n"
         "workers target=1 busy=0 idle=1 listed=4000000000\n", 0, "malformed status reply"},
        {"\xff\xfe garbage \x01\x02", 0, "malformed status reply"},
        {"pp-status 1\n", 64u << 20, "frame"}, /* a header claiming 64 MiB */
    };
    for (size_t i = 0; i < PP_ARRAY_LEN(cases); i++) {
        struct sockaddr_in sa = {.sin_family = AF_INET};
        socklen_t sl = sizeof sa;
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CU_ASSERT_FATAL(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
                        listen(lfd, 4) == 0 &&
                        getsockname(lfd, (struct sockaddr *)&sa, &sl) == 0);
        char addr[64];
        snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(sa.sin_port));
        child = start_ppstat(na.dir, ARGS("ppstat", "--timeout", "10", "--secret-file",
                                          na.secret_file, addr));
        CU_ASSERT_FATAL(child > 0);
        CU_ASSERT_FATAL(fake_node_handshake(na.secret) == 0);
        size_t len = strlen(cases[i].reply);
        uint8_t hdr[PP_WIRE_HDR];
        pp_wire_encode_hdr(hdr, PP_T_STATREPLY, 0, 1, cases[i].claimed ? cases[i].claimed
                                                                         : (uint32_t)len);
        CU_ASSERT(rt_send_all(cfd, hdr, sizeof hdr, 5) == 0);
        (void)rt_send_all(cfd, cases[i].reply, len, 5); /* ppstat may have closed already */
        int rc = wait_exit(child, 15);
        child = -1;
        char path[512];
        snprintf(path, sizeof path, "%s/ppstat.err", na.dir);
        char *err = srv_slurp(path, NULL);
        CU_ASSERT_EQUAL(rc, 1);
        CU_ASSERT(err && strstr(err, addr) && strstr(err, cases[i].want));
        CU_ASSERT(err && !strstr(err, "Sanitizer") && !strstr(err, "runtime error"));
        if (!err || !strstr(err, cases[i].want))
            fprintf(stderr, "\n    case %zu: %s", i, err ? err : "(no stderr)");
        free(err);
        rt_forget(cfd);
        close(cfd);
        close(lfd);
        cfd = lfd = -1;
    }
}

/* A node's ERROR text with terminal escapes and bytes that are no text:
 * ppstat shows it with those bytes replaced. */
static void test_hostile_error(void)
{
    CU_ASSERT_FATAL(srv_prepare(&na) == 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof sa;
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CU_ASSERT_FATAL(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
                    listen(lfd, 4) == 0 && getsockname(lfd, (struct sockaddr *)&sa, &sl) == 0);
    char addr[64], why[PP_ERR_LEN], path[512];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(sa.sin_port));
    child = start_ppstat(na.dir, ARGS("ppstat", "--json", "--timeout", "10", "--secret-file",
                                      na.secret_file, addr));
    CU_ASSERT_FATAL(child > 0);
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    CU_ASSERT_FATAL(poll(&p, 1, 10000) == 1 && (cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0);
    uint8_t buf[256];
    pp_frame f;
    CU_ASSERT_FATAL(rt_server(cfd, na.secret, 5, why) == 0);
    CU_ASSERT_FATAL(recv_frame(cfd, PP_T_HELLO, buf, sizeof buf, &f) == 0);
    pp_buf e;
    pp_buf_init(&e, 4096);
    CU_ASSERT_FATAL(pp_proto_error(&e, PP_E_AUTH, "go away \x1b[2J\x1b]0;owned\x07 \xff\n") == 0);
    CU_ASSERT(send_frame(cfd, PP_T_ERROR, 0, e.data, (uint32_t)e.len) == 0);
    pp_buf_reset(&e);
    CU_ASSERT_EQUAL(wait_exit(child, 15), 1);
    child = -1;
    snprintf(path, sizeof path, "%s/ppstat.err", na.dir);
    char *err = srv_slurp(path, NULL);
    CU_ASSERT(err && strstr(err, "authentication failed: go away ?[2J?]0;owned? ?"));
    CU_ASSERT(err && !strchr(err, 0x1b) && !strchr(err, 0x07));
    free(err);
    char *dg = digest_json(na.dir); /* the JSON still parses */
    CU_ASSERT(dg && strstr(dg, " 0 authentication failed"));
    free(dg);
}

/* --watch: a report per interval until SIGINT, then exit 0. */
static void test_watch(void)
{
    CU_ASSERT_FATAL(srv_start(&na, &(srv_opts){.args = ARGS("-w", "1")}) == 0);
    char a[64], path[512];
    snprintf(a, sizeof a, "127.0.0.1:%d", na.port);
    child = start_ppstat(na.dir, ARGS("ppstat", "--watch", "0.2", "--secret-file",
                                      na.secret_file, a));
    CU_ASSERT_FATAL(child > 0);
    char head[96];
    snprintf(head, sizeof head, "== %s ==", a);
    snprintf(path, sizeof path, "%s/ppstat.out", na.dir);
    int reports = 0;
    for (int i = 0; i < 250 && reports < 3; i++) { /* 5 s at most */
        sleep_s(0.02);
        char *out = srv_slurp(path, NULL);
        reports = 0;
        for (const char *p = out; p && (p = strstr(p, head)); p++)
            reports++;
        free(out);
    }
    CU_ASSERT(reports >= 3);
    kill(child, SIGINT);
    CU_ASSERT_EQUAL(wait_exit(child, 5), 0);
    child = -1;
}

/* SIGUSR1: the summary in the log, the client's counts in it. */
static void test_sigusr1(void)
{
    CU_ASSERT_FATAL(srv_start(&na, &(srv_opts){.args = ARGS("-w", "1")}) == 0);
    client = client_of(&na, NULL, 0);
    CU_ASSERT_FATAL(client != NULL);
    CU_ASSERT_FATAL(cl_workload(client, t_square, t_fail, 3, 1));
    CU_ASSERT_FATAL(kill(na.pid, SIGUSR1) == 0);
    const char *const totals[] = {"status: jobs done 3, failed 1", NULL};
    const char *const head[] = {"status: ppserver ", "workers 1 (0 busy, 1 idle)", NULL};
    const char *const cl[] = {"status: client 127.0.0.1:", "(ready", "done 3, failed 1", NULL};
    const char *const mods[] = {"status: modules cached 1", "auth failures 0", NULL};
    for (int i = 0; i < 250 && srv_log_count(&na, mods) < 1; i++) /* 5 s at most */
        sleep_s(0.02);
    CU_ASSERT_EQUAL(srv_log_count(&na, head), 1);
    CU_ASSERT_EQUAL(srv_log_count(&na, totals), 1);
    CU_ASSERT_EQUAL(srv_log_count(&na, mods), 1);
    CU_ASSERT_EQUAL(srv_log_count(&na, cl), 1);
    CU_ASSERT(srv_alive(&na)); /* the signal does not stop it */
    CU_ASSERT(nodes_stop_clean());
}

int pp_register_suites(void)
{
    static const pp_test tests[] = {
        {"two nodes while jobs run: the counts agree", test_two_nodes},
        {"wrong secret, dead and mute nodes", test_failures},
        {"STATUS before authentication gets nothing", test_status_unauthenticated},
        {"a hostile node's replies refused", test_hostile_node},
        {"a hostile node's ERROR text made harmless", test_hostile_error},
        {"--watch until interrupted", test_watch},
        {"SIGUSR1 logs the summary", test_sigusr1},
        {NULL, NULL},
    };
    find_python(); /* exits 77 without it */
    return pp_add_suite_with("ppstat", NULL, NULL, NULL, teardown, tests);
}
