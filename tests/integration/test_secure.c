/* SPDX-License-Identifier: MIT */
/* test_secure.c -- the wire between libpp and real ppserver nodes under
 * attack (issue: "the wire is not trusted"):
 *  - a relay on the path records every byte: a marked argument and its
 *    result never appear in them over TLS (and do in plaintext: the relay
 *    sees what an eavesdropper would);
 *  - the relay flips one bit after the handshake, either way: that
 *    connection ends, the jobs go again, every result is right;
 *  - the relay injects a job frame after the handshake: over TLS it never
 *    reaches a worker (the task would create a file); in plaintext it does;
 *  - openssl s_client, a foreign TLS 1.3 implementation, completes the
 *    handshake with the derived key and fails with another one, with a
 *    suite list without SHA-256 (trap 1) and with a certificate instead of
 *    the key (trap 3); libpp refuses openssl s_server's certificate when it
 *    expects the key (trap 2);
 *  - plaintext against TLS, both ways: one clear message on each side;
 *  - certificates: a good pair, a wrong CA, an expired one, no secret;
 *  - a program with SIGPIPE's default action survives its node vanishing
 *    under TLS writes.
 * Loopback only; every wait is bounded. */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <fcntl.h>
#include <pp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "certs.h"
#include "cunit_main.h"
#include "pp_auth.h"
#include "pp_buf.h"
#include "pp_common.h"
#include "pp_proto.h"
#include "pp_tls.h"
#include "pp_wire.h"
#include "relay.h"
#include "server_harness.h"
#include "test_tasks.h"
#include "test_util.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static char tmpdir[256];
static char certdir[300];
static int have_certs;
static int have_openssl;

/* What a test leaves behind, cleaned by the teardown even after a fatal
 * assertion. */
static srv_harness *the_srv;
static relay *the_relay;
static pp_server *the_client;

static void test_setup(void)
{
    the_srv = NULL;
    the_relay = NULL;
    the_client = NULL;
}

static void test_teardown(void)
{
    if (the_client)
        pp_server_free(the_client);
    relay_stop(the_relay);
    if (the_srv) {
        srv_cleanup(the_srv);
        free(the_srv);
    }
    the_client = NULL;
    the_relay = NULL;
    the_srv = NULL;
}

static srv_harness *start_server(const srv_opts *o)
{
    srv_harness *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    if (srv_start(h, o) != 0) {
        srv_cleanup(h);
        free(h);
        return NULL;
    }
    the_srv = h;
    return h;
}

typedef struct client_cfg {
    int port;                 /* the node's (or the relay's) port */
    int ncpus;
    const char *secret;       /* NULL: the server's */
    int no_tls, no_secret;
    const char *cert, *key, *ca;
} client_cfg;

static pp_server *client_new(const client_cfg *c)
{
    char name[64];
    snprintf(name, sizeof name, "127.0.0.1:%d", c->port);
    const char *list[] = {name, NULL};
    pp_config cfg = {.ncpus = c->ncpus,
                     .ppservers = list,
                     .secret = c->no_secret ? NULL : c->secret ? c->secret : the_srv->secret,
                     .no_tls = c->no_tls,
                     .no_secret = c->no_secret,
                     .tls_cert = c->cert,
                     .tls_key = c->key,
                     .tls_ca = c->ca};
    pp_server *s = pp_server_new(&cfg);
    if (!s)
        fprintf(stderr, "%s\n", pp_last_error());
    the_client = s;
    return s;
}

static void client_free(void)
{
    pp_server_free(the_client);
    the_client = NULL;
}

/* The remote node's entry. */
static int node_info(pp_server *s, pp_node_info *out)
{
    pp_node_info nodes[4];
    int n = pp_get_active_nodes(s, nodes, 4);
    for (int i = 0; i < n; i++)
        if (strcmp(nodes[i].name, "local") != 0) {
            *out = nodes[i];
            return 0;
        }
    return -1;
}

static int wait_up(pp_server *s, double limit)
{
    double end = now_s() + limit;
    pp_node_info n;
    while (now_s() < end) {
        if (node_info(s, &n) == 0 && n.state == PP_NODE_UP)
            return 1;
        sleep_s(0.02);
    }
    return 0;
}

/* Waits until the node is up (1) or says why not (0). */
static int wait_up_or_why(pp_server *s, double limit)
{
    double end = now_s() + limit;
    pp_node_info n;
    while (now_s() < end) {
        if (node_info(s, &n) == 0 && (n.state == PP_NODE_UP || n.why[0]))
            return n.state == PP_NODE_UP;
        sleep_s(0.02);
    }
    return 0;
}

/* Waits until the node's `why` says something; returns it (static). */
static const char *wait_why(pp_server *s, double limit)
{
    static pp_node_info n;
    double end = now_s() + limit;
    while (now_s() < end) {
        if (node_info(s, &n) == 0 && n.why[0])
            return n.why;
        sleep_s(0.02);
    }
    return "";
}

static int wait_jobs(pp_job *const *jobs, int n, double limit)
{
    double end = now_s() + limit;
    int done = 0;
    for (int i = 0; i < n; i++) {
        double left = end - now_s();
        if (!jobs[i] || left <= 0 || pp_job_wait_for(jobs[i], left) == PP_PENDING)
            break;
        done++;
    }
    return done;
}

/* n t_square jobs from base; waits; frees them; how many were right. */
static int squares(pp_server *s, int n, long base, double limit)
{
    pp_job **jobs = calloc((size_t)n, sizeof *jobs);
    if (!jobs)
        return -1;
    for (int i = 0; i < n; i++)
        jobs[i] = pp_submitf(s, t_square, NULL, "l", base + i);
    wait_jobs(jobs, n, limit);
    int right = 0;
    for (int i = 0; i < n; i++) {
        long v = -1, x = base + i;
        if (jobs[i] && pp_job_status(jobs[i]) == PP_DONE &&
            pp_job_unpack(jobs[i], "l", &v) == 0 && v == x * x)
            right++;
        pp_job_free(jobs[i]);
    }
    free(jobs);
    return right;
}

static int contains(const uint8_t *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; m && i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return 1;
    return 0;
}

static int log_has(const srv_harness *h, const char *a, const char *b)
{
    return srv_log_count(h, b ? (const char *const[]){a, b, NULL}
                              : (const char *const[]){a, NULL}) > 0;
}

/* ==== an eavesdropper ================================================== */

/* One echo job through the relay; 1 when its marker shows in the bytes the
 * relay saw both ways, 0 when in neither, -1 when the job failed. */
static int marker_seen(int no_tls)
{
    const char *args[] = {"-w", "1", no_tls ? "--no-tls" : NULL, NULL};
    srv_harness *h = start_server(&(srv_opts){.args = args});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    the_relay = relay_start(h->port);
    CU_ASSERT_PTR_NOT_NULL_FATAL(the_relay);
    pp_server *s = client_new(&(client_cfg){.port = relay_port(the_relay), .no_tls = no_tls});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    static const char mark[] = "MARKED-ARGUMENT-7f3c9a51d2e84b06";
    pp_job *j = pp_submit(s, t_echo, mark, sizeof mark - 1, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    int ok = pp_job_wait_for(j, 30) == PP_DONE;
    size_t rlen = 0;
    const void *r = ok ? pp_job_result(j, &rlen) : NULL;
    ok = ok && r && rlen == sizeof mark - 1 && memcmp(r, mark, rlen) == 0;
    pp_job_free(j);
    client_free();
    size_t up = 0, down = 0;
    uint8_t *to_server = relay_recorded(the_relay, RELAY_TO_SERVER, &up);
    uint8_t *to_client = relay_recorded(the_relay, RELAY_TO_CLIENT, &down);
    int in_up = contains(to_server, up, mark), in_down = contains(to_client, down, mark);
    free(to_server);
    free(to_client);
    CU_ASSERT(up > 100 && down > 100); /* the relay did carry the session */
    if (!ok)
        return -1;
    if (in_up != in_down)
        return 2; /* one way only: neither answer is right */
    return in_up;
}

static void test_eavesdropper_sees_nothing(void)
{
    CU_ASSERT_EQUAL(marker_seen(0), 0);
}

static void test_eavesdropper_reads_plaintext(void)
{
    /* The control: without TLS the same relay reads both. */
    CU_ASSERT_EQUAL(marker_seen(1), 1);
}

/* ==== a tamperer ======================================================= */

/* One bit flipped in the next chunk `dir` once the node is up and has run
 * a first batch: the connection ends, libpp connects again, every job of
 * the second batch (running while the bit flips) comes back right. */
static void flip_one_bit(int dir)
{
    srv_harness *h = start_server(&(srv_opts){.args = ARGS("-w", "2")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    the_relay = relay_start(h->port);
    CU_ASSERT_PTR_NOT_NULL_FATAL(the_relay);
    pp_server *s = client_new(&(client_cfg){.port = relay_port(the_relay)});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL_FATAL(squares(s, 20, 0, 30), 20);
    CU_ASSERT_EQUAL(relay_connections(the_relay), 1);
    /* Byte 40 of a chunk is past a record's 5-byte header: ciphertext. */
    relay_arm_flip(the_relay, dir, 40);
    enum { N = 400 };
    CU_ASSERT_EQUAL(squares(s, N, 1000, 60), N);
    CU_ASSERT(relay_tampered(the_relay));
    CU_ASSERT(relay_connections(the_relay) >= 2);
    pp_node_info n;
    CU_ASSERT_EQUAL(node_info(s, &n), 0);
    CU_ASSERT(n.connects >= 2);
    /* The side that received the flipped record says so.  (The other side
     * may see only the end of the connection: the alert can be lost to
     * the reset of a socket closed with bytes unread.) */
    if (dir == RELAY_TO_CLIENT) {
        CU_ASSERT_PTR_NOT_NULL(strstr(n.why, "bad record mac"));
        if (!strstr(n.why, "bad record mac"))
            fprintf(stderr, "why: %s\n", n.why);
    }
    /* The reconnected session works. */
    CU_ASSERT_EQUAL(squares(s, 20, 5000, 30), 20);
    client_free();
    if (dir == RELAY_TO_SERVER) {
        double end = now_s() + 5;
        while (!log_has(h, "bad record mac", NULL) && now_s() < end)
            sleep_s(0.05);
        CU_ASSERT(log_has(h, "bad record mac", NULL));
    }
}

static void test_flipped_bit_to_node(void)
{
    flip_one_bit(RELAY_TO_SERVER);
}

static void test_flipped_bit_to_client(void)
{
    flip_one_bit(RELAY_TO_CLIENT);
}

/* An RJOB frame for t_pid_file_sleep(path), as a client would send it
 * after the handshake, with an id no client of this test uses. */
static int forged_job(pp_buf *b, const char *path)
{
    uint8_t hash[PP_SHA256_LEN];
    char err[PP_ERR_LEN];
    const char *module = getenv("PP_TEST_TASKS");
    if (!module || pp_sha256_file(module, hash, err) != 0)
        return -1;
    pp_buf payload;
    pp_buf_init(&payload, 1u << 16);
    uint8_t head[PP_RJOB_HEAD_MAX];
    size_t hl = pp_proto_rjob_head(head, hash, "t_pid_file_sleep", 0, 0);
    int rc = pp_buf_append(&payload, head, hl) | pp_buf_append(&payload, path, strlen(path));
    uint8_t hdr[PP_WIRE_HDR];
    pp_wire_encode_hdr(hdr, PP_T_RJOB, 0, 0x7ffffff1u, (uint32_t)payload.len);
    pp_buf_init(b, 1u << 16);
    rc |= pp_buf_append(b, hdr, sizeof hdr) | pp_buf_append(b, payload.data, payload.len);
    pp_buf_reset(&payload);
    return rc ? -1 : 0;
}

/* Injects `bytes` towards the node after a first batch; 1 when the forged
 * job's file appeared (it ran), 0 when it did not within the wait. */
static int injected_job_ran(int no_tls, int as_record)
{
    const char *args[] = {"-w", "2", no_tls ? "--no-tls" : NULL, NULL};
    srv_harness *h = start_server(&(srv_opts){.args = args});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    the_relay = relay_start(h->port);
    CU_ASSERT_PTR_NOT_NULL_FATAL(the_relay);
    pp_server *s = client_new(&(client_cfg){.port = relay_port(the_relay), .no_tls = no_tls});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL_FATAL(squares(s, 10, 0, 30), 10); /* up, module stored */

    char path[600];
    snprintf(path, sizeof path, "%s/injected-%d-%d", tmpdir, no_tls, as_record);
    unlink(path);
    pp_buf frame;
    CU_ASSERT_EQUAL_FATAL(forged_job(&frame, path), 0);
    pp_buf out;
    pp_buf_init(&out, 1u << 16);
    if (as_record) {
        /* A well-formed TLS 1.3 application-data record around it: header,
         * the frame as "ciphertext", a 16-byte tag that cannot verify. */
        uint8_t rec[5] = {23, 3, 3, (uint8_t)((frame.len + 16) >> 8),
                          (uint8_t)(frame.len + 16)};
        uint8_t tag[16] = {0};
        pp_buf_append(&out, rec, sizeof rec);
        pp_buf_append(&out, frame.data, frame.len);
        pp_buf_append(&out, tag, sizeof tag);
    } else {
        pp_buf_append(&out, frame.data, frame.len);
    }
    relay_arm_inject(the_relay, out.data, out.len);
    pp_buf_reset(&out);
    pp_buf_reset(&frame);
    enum { N = 200 };
    CU_ASSERT_EQUAL(squares(s, N, 100, 60), N);
    CU_ASSERT(relay_tampered(the_relay));
    /* The forged job would write its file at once; give it a while. */
    struct stat st;
    int ran = 0;
    for (double end = now_s() + 3; !ran && now_s() < end; sleep_s(0.05))
        ran = stat(path, &st) == 0;
    client_free();
    unlink(path);
    return ran;
}

static void test_injected_frame_never_runs(void)
{
    CU_ASSERT_EQUAL(injected_job_ran(0, 0), 0);
    test_teardown();
    CU_ASSERT_EQUAL(injected_job_ran(0, 1), 0);
}

static void test_injected_frame_runs_in_plaintext(void)
{
    /* The control: the same bytes in a plaintext session do run. */
    CU_ASSERT_EQUAL(injected_job_ran(1, 0), 1);
}

/* ==== foreign TLS peers ================================================ */

/* Runs a shell command, its output (stdout and stderr) into *out
 * (malloc'd).  The exit status, or -1. */
static int run_capture(const char *cmd, char **out)
{
    char file[600], full[4096];
    snprintf(file, sizeof file, "%s/capture.txt", tmpdir);
    snprintf(full, sizeof full, "(%s) >'%s' 2>&1 </dev/null", cmd, file);
    int st = system(full);
    *out = srv_slurp(file, NULL);
    if (!*out)
        *out = strdup("");
    return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* openssl s_client against the node; 1 when its TLS handshake completed. */
static int s_client(int port, const char *secret, const char *suites, const char *extra,
                    char **out)
{
    char psk[2 * 32 + 1] = "";
    if (secret) {
        pp_auth_key k;
        if (pp_auth_derive(secret, strlen(secret), &k) != 0)
            return -1;
        pp_hex(k.psk, sizeof k.psk, psk);
        pp_auth_wipe(&k, sizeof k);
    }
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "timeout 20 openssl s_client -connect 127.0.0.1:%d -tls1_3 -ciphersuites %s "
             "%s%s%s%s %s",
             port, suites, secret ? "-psk " : "", psk,
             secret ? " -psk_identity '" PP_TLS_IDENTITY "'" : "", "", extra ? extra : "");
    run_capture(cmd, out);
    /* s_client prints the negotiated suite once the handshake is done. */
    return strstr(*out, "Cipher is TLS_") && !strstr(*out, "Cipher is (NONE)");
}

static void test_openssl_s_client(void)
{
    if (!have_openssl) {
        fprintf(stderr, "skipped: no openssl command\n");
        return;
    }
    srv_harness *h = start_server(&(srv_opts){.args = ARGS("-w", "1")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    char *out = NULL;

    /* The derived key: a standard TLS 1.3 PSK handshake. */
    CU_ASSERT_EQUAL(s_client(h->port, h->secret, "TLS_AES_128_GCM_SHA256", NULL, &out), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "TLSv1.3"));
    if (!strstr(out, "TLSv1.3"))
        fprintf(stderr, "%s\n", out);
    free(out);
    CU_ASSERT_EQUAL(s_client(h->port, h->secret, "TLS_CHACHA20_POLY1305_SHA256", NULL, &out), 1);
    free(out);

    /* Another key: no handshake; the node says why. */
    CU_ASSERT_EQUAL(s_client(h->port, "not-the-secret-of-this-node-0123", "TLS_AES_128_GCM_SHA256",
                             NULL, &out),
                    0);
    free(out);
    CU_ASSERT(log_has(h, "authentication failed", NULL));

    /* Trap 1: suites without SHA-256 cannot carry the SHA-256 PSK: refused,
     * never a handshake without it. */
    CU_ASSERT_EQUAL(s_client(h->port, h->secret, "TLS_AES_256_GCM_SHA384", NULL, &out), 0);
    free(out);
    CU_ASSERT(log_has(h, "TLS handshake", "cipher"));

    /* Trap 3: a client with a certificate and no key is refused. */
    if (have_certs) {
        char extra[1024];
        snprintf(extra, sizeof extra, "-cert %s/client.crt -key %s/client.key", certdir, certdir);
        CU_ASSERT_EQUAL(s_client(h->port, NULL, "TLS_AES_128_GCM_SHA256", extra, &out), 0);
        free(out);
    }

    /* The node still serves a real client. */
    pp_server *s = client_new(&(client_cfg){.port = h->port});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(squares(s, 10, 7, 30), 10);
}

/* Trap 2: a node that shows a certificate (openssl s_server) instead of
 * using the key is never taken for a node. */
static void test_openssl_s_server(void)
{
    if (!have_openssl || !have_certs) {
        fprintf(stderr, "skipped: no openssl command or certificates\n");
        return;
    }
    /* A port: let the harness find a free one with a throwaway server. */
    srv_harness *h = start_server(&(srv_opts){.args = ARGS("-w", "1")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    int port = h->port;
    srv_stop(h, 10);
    char log[600], cmd[2048];
    snprintf(log, sizeof log, "%s/s_server.txt", tmpdir);
    snprintf(cmd, sizeof cmd,
             "exec timeout 30 openssl s_server -accept 127.0.0.1:%d -tls1_3 -cert %s/server.crt "
             "-key %s/server.key -naccept 4 -www >'%s' 2>&1 </dev/null",
             port, certdir, certdir, log);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    sleep_s(0.5); /* s_server's listen */
    pp_server *s = client_new(&(client_cfg){.port = port, .ncpus = 1});
    CU_ASSERT_PTR_NOT_NULL(s);
    if (s) {
        const char *why = wait_why(s, 10);
        CU_ASSERT_PTR_NOT_NULL(strstr(why, "certificate verify failed"));
        if (!strstr(why, "certificate verify failed"))
            fprintf(stderr, "why: %s\n", why);
        pp_node_info n;
        CU_ASSERT(node_info(s, &n) == 0 && n.state != PP_NODE_UP);
        /* Jobs run locally meanwhile; none went to that "node". */
        CU_ASSERT_EQUAL(squares(s, 5, 3, 30), 5);
        CU_ASSERT(node_info(s, &n) == 0 && n.jobs == 0);
        client_free();
    }
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

/* ==== plaintext against TLS ============================================ */

static void test_plaintext_node_tls_client(void)
{
    srv_harness *h = start_server(&(srv_opts){.args = ARGS("-w", "1", "--no-tls")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    pp_server *s = client_new(&(client_cfg){.port = h->port, .ncpus = 1});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    const char *why = wait_why(s, 10);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "the node speaks plaintext"));
    pp_node_info n;
    CU_ASSERT(node_info(s, &n) == 0 && n.state != PP_NODE_UP);
    CU_ASSERT_EQUAL(squares(s, 5, 1, 30), 5); /* local jobs go on */
    client_free();
    CU_ASSERT(log_has(h, "this node speaks plaintext", NULL));
}

static void test_tls_node_plaintext_client(void)
{
    srv_harness *h = start_server(&(srv_opts){.args = ARGS("-w", "1")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    pp_server *s = client_new(&(client_cfg){.port = h->port, .ncpus = 1, .no_tls = 1});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    const char *why = wait_why(s, 10);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "this node requires TLS"));
    pp_node_info n;
    CU_ASSERT(node_info(s, &n) == 0 && n.state != PP_NODE_UP);
    CU_ASSERT_EQUAL(squares(s, 5, 1, 30), 5);
    client_free();
    CU_ASSERT(log_has(h, "the client speaks plaintext", NULL));
}

/* ==== certificates ===================================================== */

static void cert_paths(const char *name, char *crt, char *key, size_t n)
{
    snprintf(crt, n, "%s/%s.crt", certdir, name);
    snprintf(key, n, "%s/%s.key", certdir, name);
}

/* A node with server.crt; a client with `client_name`.crt; 1 when the
 * client's jobs ran on the node. */
static int cert_session(const char *server_name, const char *client_name, int no_secret,
                        const char **why_out)
{
    char scrt[400], skey[400], ccrt[400], ckey[400], ca[400];
    cert_paths(server_name, scrt, skey, sizeof scrt);
    cert_paths(client_name, ccrt, ckey, sizeof ccrt);
    snprintf(ca, sizeof ca, "%s/ca.crt", certdir);
    const char *args[] = {"-w", "1", "--tls-cert", scrt, "--tls-key", skey, "--tls-ca", ca,
                          no_secret ? "--no-secret" : NULL, NULL};
    srv_harness *h = start_server(&(srv_opts){.args = args, .no_secret_file = no_secret});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    pp_server *s = client_new(&(client_cfg){.port = h->port, .ncpus = 0, .no_secret = no_secret,
                                            .cert = ccrt, .key = ckey, .ca = ca});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    int up = wait_up_or_why(s, 10);
    *why_out = up ? "" : wait_why(s, 5);
    int ok = up && squares(s, 10, 2, 30) == 10;
    client_free();
    return ok;
}

static void test_certificates(void)
{
    if (!have_certs) {
        fprintf(stderr, "skipped: no openssl command to make certificates\n");
        return;
    }
    const char *why = NULL;
    CU_ASSERT_EQUAL(cert_session("server", "client", 0, &why), 1);
    test_teardown();
    /* --no-secret: the certificates alone. */
    CU_ASSERT_EQUAL(cert_session("server", "client", 1, &why), 1);
    test_teardown();
    /* A client certificate from another CA: refused by the node. */
    CU_ASSERT_EQUAL(cert_session("server", "stranger", 0, &why), 0);
    CU_ASSERT(log_has(the_srv, "TLS handshake", "certificate"));
    test_teardown();
    /* The node's certificate expired: the client says so. */
    CU_ASSERT_EQUAL(cert_session("expired", "client", 0, &why), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "expired"));
    if (!strstr(why, "expired"))
        fprintf(stderr, "why: %s\n", why);
}

static void test_no_secret_needs_certificates(void)
{
    char *err = NULL;
    int st = srv_run_once(ARGS("ppserver", "-p", "0", "--no-secret"), NULL, 10, &err);
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) != 0);
    CU_ASSERT(err && strstr(err, "--no-secret"));
    free(err);
    /* libpp alike. */
    const char *list[] = {"127.0.0.1:1", NULL};
    pp_config cfg = {.ncpus = 1, .ppservers = list, .no_secret = 1};
    pp_server *s = pp_server_new(&cfg);
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "no_secret"));
    pp_server_free(s);
}

/* ==== SIGPIPE ========================================================== */

/* A program that keeps SIGPIPE's default action, sending jobs to a node
 * that is killed: the writes that hit the dead socket must not kill it. */
static void test_vanishing_node_no_sigpipe(void)
{
    srv_harness *h = start_server(&(srv_opts){.args = ARGS("-w", "2")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    pid_t node = h->pid;
    fflush(NULL);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        char name[64];
        snprintf(name, sizeof name, "127.0.0.1:%d", h->port);
        const char *list[] = {name, NULL};
        pp_config cfg = {.ncpus = 1, .ppservers = list, .secret = h->secret};
        pp_server *s = pp_server_new(&cfg);
        if (!s || !wait_up(s, 20))
            _exit(2);
        int right = squares(s, 50, 0, 30);
        /* Batches keep going out while the node dies under them. */
        kill(node, SIGKILL);
        for (int b = 0; b < 20; b++)
            right += squares(s, 50, 100 * b, 60);
        pp_server_free(s);
        _exit(right == 21 * 50 ? 0 : 3);
    }
    int st = 0;
    double end = now_s() + 120;
    while (waitpid(pid, &st, WNOHANG) == 0 && now_s() < end)
        sleep_s(0.05);
    if (now_s() >= end) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    CU_ASSERT(!WIFSIGNALED(st));
    if (WIFSIGNALED(st))
        fprintf(stderr, "the client died of signal %d\n", WTERMSIG(st));
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    srv_alive(h); /* reaps the killed node */
}

/* ==== long-lived keys ================================================== */

#define FAKETIME_LIB "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"

/* The seconds between the first and the last timestamp of the log. */
static double log_span(const srv_harness *h)
{
    FILE *fp = fopen(h->log_file, "r");
    if (!fp)
        return -1;
    char line[1024];
    double first = -1, last = -1;
    while (fgets(line, sizeof line, fp)) {
        struct tm tm = {0};
        double frac = 0;
        char *rest = strptime(line, "%Y-%m-%d %H:%M:%S", &tm);
        if (!rest || sscanf(rest, "%lf", &frac) != 1)
            continue;
        double t = (double)timegm(&tm) + frac;
        if (first < 0)
            first = t;
        last = t;
    }
    fclose(fp);
    return first < 0 ? -1 : last - first;
}

/* A node up for longer than OpenSSL gives a TLS session (300 s by default)
 * still takes new clients: the key is not a session made once that expires.
 * The node runs on a clock 100 times fast (libfaketime), so 4 s are 400. */
static void test_key_outlives_session_lifetime(void)
{
#if defined(__SANITIZE_ADDRESS__)
    /* The ASan runtime must be loaded first, and LD_PRELOAD would put
     * libfaketime before it: that ppserver would not start. */
    fprintf(stderr, "skipped under AddressSanitizer: libfaketime cannot be preloaded\n");
    return;
#endif
    if (access(FAKETIME_LIB, R_OK) != 0) {
        fprintf(stderr, "skipped: no %s (Debian package faketime)\n", FAKETIME_LIB);
        return;
    }
    const char *env[] = {"LD_PRELOAD=" FAKETIME_LIB, "FAKETIME=+0 x100", NULL};
    srv_harness *h = start_server(&(srv_opts){.args = ARGS("-w", "1"), .env = env});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    pp_server *s = client_new(&(client_cfg){.port = h->port});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(squares(s, 10, 0, 30), 10);
    client_free();
    sleep_s(4.0);
    s = client_new(&(client_cfg){.port = h->port});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(squares(s, 10, 0, 30), 10);
    client_free();
    /* The premise: the node's clock did run past the lifetime. */
    double span = log_span(h);
    CU_ASSERT(span > 330);
    if (span <= 330)
        fprintf(stderr, "the node's log spans %.1f s, not the 400 s expected\n", span);
}

/* ==== registration ===================================================== */

static int suite_init(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (!srv_exe() || !getenv("PP_TEST_TASKS")) {
        fprintf(stderr, "test_secure: PP_SERVER and PP_TEST_TASKS must be set\n");
        return -1;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pptest-secure-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(certdir, sizeof certdir, "%s/certs", tmpdir);
    if (mkdir(certdir, 0700) != 0)
        return -1;
    have_openssl = system("command -v openssl >/dev/null 2>&1") == 0;
    have_certs = have_openssl && certs_make(certdir) == 0;
    return 0;
}

static int suite_clean(void)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int pp_register_suites(void)
{
    static const pp_test wire[] = {
        {"eavesdropper_sees_nothing", test_eavesdropper_sees_nothing},
        {"eavesdropper_reads_plaintext", test_eavesdropper_reads_plaintext},
        {"flipped_bit_to_node", test_flipped_bit_to_node},
        {"flipped_bit_to_client", test_flipped_bit_to_client},
        {"injected_frame_never_runs", test_injected_frame_never_runs},
        {"injected_frame_runs_in_plaintext", test_injected_frame_runs_in_plaintext},
        {"vanishing_node_no_sigpipe", test_vanishing_node_no_sigpipe},
        {"key_outlives_session_lifetime", test_key_outlives_session_lifetime},
        {NULL, NULL}};
    static const pp_test peers[] = {
        {"openssl_s_client", test_openssl_s_client},
        {"openssl_s_server", test_openssl_s_server},
        {"plaintext_node_tls_client", test_plaintext_node_tls_client},
        {"tls_node_plaintext_client", test_tls_node_plaintext_client},
        {"certificates", test_certificates},
        {"no_secret_needs_certificates", test_no_secret_needs_certificates},
        {NULL, NULL}};
    const struct {
        const char *name;
        const pp_test *tests;
    } suites[] = {{"wire", wire}, {"peers", peers}};
    for (size_t i = 0; i < PP_ARRAY_LEN(suites); i++) {
        CU_pSuite s = CU_add_suite_with_setup_and_teardown(suites[i].name, suite_init,
                                                           suite_clean, test_setup, test_teardown);
        if (!s)
            return -1;
        for (const pp_test *t = suites[i].tests; t->name; t++)
            if (!CU_add_test(s, t->name, t->fn))
                return -1;
    }
    return 0;
}
