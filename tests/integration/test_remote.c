/* SPDX-License-Identifier: MIT */
/* test_remote.c -- libpp with real ppserver nodes on 127.0.0.1, and ppserver
 * against raw clients: remote results and statistics, spreading, module
 * shipping, the handshake and its attacks (reliability.md rows A1..A7),
 * slow and hostile connections (B), bad frames (C), bad compressed input
 * (D), node failures (F), load (G) and SIGTERM; nodes given by name, whose
 * lookup never stalls the scheduler.
 *
 * Every connection is TLS 1.3 (pp_tls.h), as libpp's and ppserver's are:
 * raw clients and fake nodes speak their frames through pp's own TLS
 * transport (tests/support/raw_tls.c), so that crafted bytes reach the
 * peer's frame parser; plain TCP only where TCP itself is tested (silent
 * connections, bytes instead of a ClientHello).
 *
 * Every test starts its own servers (tests/support/server_harness.c), waits
 * only with deadlines, and ends by checking that the server still runs a
 * normal client's job.  A per-test teardown stops every server, fake server
 * and raw socket (and its TLS session) the test left behind, even after a
 * fatal assertion. */
#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <grp.h>
#include <poll.h>
#include <pp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "client_util.h"
#include "cunit_main.h"
#include "pp_auth.h"
#include "pp_buf.h"
#include "pp_common.h"
#include "pp_handshake.h"
#include "pp_net.h"
#include "pp_proto.h"
#include "pp_tls.h"
#include "pp_zip.h"
#include "raw_tls.h"
#include "server_harness.h"
#include "test_tasks.h"
#include "test_util.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static char tmpdir[256];

/* ---- what a test leaves behind: cleaned by the per-test teardown ---- */

#define MAX_FDS 512

static int raw_fds[MAX_FDS];

static void track_fd(int fd)
{
    for (int i = 0; i < MAX_FDS; i++)
        if (raw_fds[i] < 0) {
            raw_fds[i] = fd;
            return;
        }
}

/* Closes a raw socket and frees its TLS session, if any (first: the fd's
 * number may come back at once). */
static void raw_close(int fd)
{
    if (fd < 0)
        return;
    for (int i = 0; i < MAX_FDS; i++)
        if (raw_fds[i] == fd)
            raw_fds[i] = -1;
    rt_forget(fd);
    close(fd);
}

typedef struct client_cfg {
    int ncpus;
    const char *secret;      /* NULL: the first server's */
    double heartbeat, node_timeout;
    int max_attempts;
} client_cfg;

/* A pp_server using the given ppservers. */
static pp_server *client_new(const client_cfg *c, srv_harness *const *hs, int n)
{
    pp_config cfg = {.ncpus = c->ncpus,
                     .secret = c->secret,
                     .heartbeat = c->heartbeat,
                     .node_timeout = c->node_timeout,
                     .max_attempts = c->max_attempts};
    return cl_nodes_client(cfg, hs, n);
}

/* ---- the fake server of A2 ---- */

typedef struct fake_srv {
    int lfd, port;
    char secret[80];         /* its TLS key is this secret's */
    atomic_int stop;
    atomic_int seen[256];    /* frames received, by type */
    atomic_int conns;        /* TCP connections */
    atomic_int tls_up;       /* TLS sessions that came up */
    atomic_int tls_refused;  /* TLS handshakes failed: the client's key is not ours */
    pthread_t th;
    int running;
} fake_srv;

static fake_srv *the_fake;

static void test_setup(void)
{
    for (int i = 0; i < MAX_FDS; i++)
        raw_fds[i] = -1;
}

static void fake_stop(fake_srv *f);

static void slow_hold(int on);
static void fake_nodes_stop(void);

static void test_teardown(void)
{
    slow_hold(0);
    free(capture_end());
    cl_clients_free();
    if (the_fake) {
        fake_stop(the_fake);
        free(the_fake);
        the_fake = NULL;
    }
    fake_nodes_stop();
    for (int i = 0; i < MAX_FDS; i++)
        if (raw_fds[i] >= 0) {
            rt_forget(raw_fds[i]);
            close(raw_fds[i]);
            raw_fds[i] = -1;
        }
    rt_reset(); /* TLS sessions left (none: the fake nodes' threads are joined), keys */
    cl_servers_end(cl_server_end_exit0); /* each must exit 0 on SIGTERM */
}

/* ---- nodes ---- */

/* A normal client (ncpus=0, this one node, the right secret) runs t_square
 * there within `limit` seconds.  Returns 1 when the result is right. */
static int served_within(srv_harness *h, double limit)
{
    char name[64];
    cl_node_name(h, name, sizeof name);
    pp_server *s = client_new(&(client_cfg){.ncpus = 0}, &h, 1);
    if (!s)
        return 0;
    pp_job *j = pp_submitf(s, t_square, NULL, "l", 12L);
    int st = j ? pp_job_wait_for(j, limit) : -1;
    long v = 0;
    int ok = st == PP_DONE && pp_job_unpack(j, "l", &v) == 0 && v == 144 &&
             strcmp(pp_job_node(j), name) == 0;
    if (!ok)
        fprintf(stderr, "server %s did not serve a normal client: status %d (%s) node \"%s\"\n",
                name, st, j ? pp_job_error(j) : "no job", j ? pp_job_node(j) : "");
    pp_job_free(j);
    cl_client_free(s);
    return ok;
}

static int served(srv_harness *h)
{
    return srv_alive(h) && served_within(h, 20);
}

/* Lines of h's log with every needle, once there are `want` of them or 2 s
 * passed: the node logs a connection's end just after it closed the
 * socket (pp_conn's close callback is deferred), so a client that saw the
 * close may look before the line is there. */
static int log_lines(const srv_harness *h, const char *const *needles, int want)
{
    double end = now_s() + 2;
    int n;
    while ((n = srv_log_count(h, needles)) < want && now_s() < end)
        sleep_s(0.01);
    return n;
}

/* Open descriptors of a process, or -1. */
static int fd_count(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    return dir_entries(path);
}

/* The descriptors of a warmed-up server: after a normal client came and
 * went (its module cached, its workers up). */
static int warm_fds(srv_harness *h)
{
    served_within(h, 20);
    sleep_s(0.2);
    return fd_count(h->pid);
}

/* Waits (bounded) for the server's descriptors to come back to `base`;
 * returns the count then. */
static int settle_fds(srv_harness *h, int base)
{
    double end = now_s() + 5;
    int n;
    while ((n = fd_count(h->pid)) != base && now_s() < end)
        sleep_s(0.02);
    if (n != base)
        fprintf(stderr, "\n    ppserver %d holds %d descriptors, %d before the test\n",
                (int)h->pid, n, base);
    return n;
}

/* ---- raw clients: TCP, and pp's TLS over it ---- */

/* A TCP connection to 127.0.0.1:port from `src` (an address of
 * 127.0.0.0/8; NULL = the kernel's choice, 127.0.0.1): no TLS, for the
 * tests about TCP itself -- silent connections holding handshake slots,
 * bytes that are not a ClientHello. */
static int tcp_connect_from(const char *src, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (src) {
        struct sockaddr_in me = {.sin_family = AF_INET};
        if (inet_pton(AF_INET, src, &me.sin_addr) != 1 ||
            bind(fd, (struct sockaddr *)&me, sizeof me) != 0) {
            close(fd);
            return -1;
        }
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    track_fd(fd);
    return fd;
}

static int tcp_connect(int port)
{
    return tcp_connect_from(NULL, port);
}

/* TCP, then a TLS client handshake with the key of `secret` (5 s at
 * most): every byte the test then sends or reads on the fd goes through
 * that session (tests/support/raw_tls.h), as libpp's would.  The fd, or -1
 * (why on stderr). */
static int tls_connect_from(const char *src, int port, const char *secret)
{
    int fd = tcp_connect_from(src, port);
    if (fd < 0)
        return -1;
    char why[PP_ERR_LEN];
    if (rt_client(fd, secret, 5, why) != 0) {
        fprintf(stderr, "TLS with port %d from %s failed: %s\n", port, src ? src : "127.0.0.1",
                why);
        raw_close(fd);
        return -1;
    }
    return fd;
}

/* A raw client of h: TLS with h's secret, from 127.0.0.1. */
static int raw_connect(const srv_harness *h)
{
    return tls_connect_from(NULL, h->port, h->secret);
}

/* Every byte, within TLS when the fd has a session; gives up after 3 s
 * without progress (what SO_SNDTIMEO did on the blocking socket). */
static int send_all(int fd, const void *p, size_t n)
{
    return rt_send_all(fd, p, n, 3);
}

static int send_frame(int fd, uint8_t type, uint16_t flags, uint64_t id, const void *p,
                      size_t n)
{
    uint8_t hdr[PP_WIRE_HDR];
    pp_wire_encode_hdr(hdr, type, flags, id, (uint32_t)n);
    if (send_all(fd, hdr, sizeof hdr) != 0)
        return -1;
    return n ? send_all(fd, p, n) : 0;
}

/* Reads exactly n bytes before `deadline`: 1, 0 on EOF, reset or a TLS
 * alert, -1 on timeout or another error. */
static int recv_exact(int fd, void *buf, size_t n, double deadline)
{
    uint8_t *p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t k = rt_recv(fd, p + got, n - got, deadline);
        if (k <= 0)
            return k == 0 ? 0 : -1;
        got += (size_t)k;
    }
    return 1;
}

/* One frame from the server: 1 (payload malloc'd, NUL-terminated), 0 when
 * the connection ended, -1 on timeout, -2 on a malformed header. */
static int read_frame(int fd, double limit, pp_frame_hdr *h, uint8_t **payload)
{
    double deadline = now_s() + limit;
    uint8_t hdr[PP_WIRE_HDR];
    int r = recv_exact(fd, hdr, sizeof hdr, deadline);
    if (r <= 0)
        return r;
    char err[PP_ERR_LEN];
    if (pp_wire_decode_hdr(hdr, 64u << 20, PP_T_NET_MAX, h, err) != 0) {
        fprintf(stderr, "malformed frame from the server: %s\n", err);
        return -2;
    }
    uint8_t *p = malloc((size_t)h->len + 1);
    if (!p)
        return -1;
    r = recv_exact(fd, p, h->len, deadline);
    if (r <= 0) {
        free(p);
        return r;
    }
    p[h->len] = 0;
    if (payload)
        *payload = p;
    else
        free(p);
    return 1;
}

/* Seconds until the server ends the connection (EOF, reset or a TLS
 * alert; bytes are discarded), or -1 if it is still open after `limit`. */
static double wait_closed(int fd, double limit)
{
    double t0 = now_s(), end = t0 + limit;
    char buf[4096];
    for (;;) {
        ssize_t k = rt_recv(fd, buf, sizeof buf, end);
        if (k == -1)
            return -1;
        if (k == 0 || k == -2)
            return now_s() - t0; /* ECONNRESET and friends */
    }
}

/* Our end of the stream (close_notify first within TLS); we may still
 * read. */
static void raw_shutdown_wr(int fd)
{
    rt_shutdown_wr(fd);
}

/* What the server did with a connection we expect it to refuse. */
typedef struct refusal {
    int closed;              /* the connection ended within the limit */
    int got_error;           /* an ERROR frame came first */
    uint16_t code;
    char msg[512];
    int other;               /* other frames (type of the last one in other_type) */
    int other_type;
    double secs;             /* until closed */
} refusal;

static refusal expect_close(int fd, double limit)
{
    refusal rf;
    memset(&rf, 0, sizeof rf);
    double t0 = now_s(), end = t0 + limit;
    for (;;) {
        double left = end - now_s();
        if (left <= 0)
            break;
        pp_frame_hdr h;
        uint8_t *p = NULL;
        int r = read_frame(fd, left, &h, &p);
        if (r == 1) {
            if (h.type == PP_T_ERROR && !rf.got_error) {
                pp_rd rd = pp_rd_make(p, h.len);
                rf.code = pp_rd_u16(&rd);
                pp_rd_str16(&rd, rf.msg, sizeof rf.msg);
                rf.got_error = 1;
            } else {
                rf.other++;
                rf.other_type = h.type;
            }
            free(p);
            continue;
        }
        if (r == 0) {
            rf.closed = 1;
            rf.secs = now_s() - t0;
        } else if (r == -2) {
            rf.other++;
            double left2 = end - now_s();
            rf.closed = left2 > 0 && wait_closed(fd, left2) >= 0;
            rf.secs = now_s() - t0;
        }
        break;
    }
    return rf;
}

/* ---- the handshake, by hand ---- */

typedef struct hs_state {
    uint8_t hello[2 + PP_NONCE_LEN];
    uint8_t chal[1 + PP_NONCE_LEN + 8];
    uint8_t ver;
    uint8_t nc[PP_NONCE_LEN], ns[PP_NONCE_LEN];
    uint8_t binding[PP_TLS_BINDING_LEN]; /* the TLS session's (raw_hello) */
    int bound;               /* binding is set: the connection is TLS */
    uint8_t transcript[PP_SHA256_LEN];
    uint8_t proof[PP_MAC_LEN];
    uint8_t accept[PP_MAC_LEN];
    uint32_t max_frame, ncpus;
} hs_state;

/* The transcript as pp_handshake.c makes it: SHA-256 over HELLO and
 * CHALLENGE, then, over TLS, SHA-256 of that and the session's binding
 * (NULL: unbound, as on plaintext).  0 or -1. */
static int hs_transcript(const hs_state *x, const uint8_t *binding, uint8_t out[PP_SHA256_LEN])
{
    if (pp_auth_transcript(x->hello, sizeof x->hello, x->chal, sizeof x->chal, out) != 0)
        return -1;
    if (!binding)
        return 0;
    uint8_t both[PP_SHA256_LEN + PP_TLS_BINDING_LEN];
    memcpy(both, out, PP_SHA256_LEN);
    memcpy(both + PP_SHA256_LEN, binding, PP_TLS_BINDING_LEN);
    return pp_sha256(both, sizeof both, out);
}

/* Sends HELLO {vmin, vmax, nc (NULL: fresh)}, and takes the binding of
 * fd's TLS session for the transcript. */
static int raw_hello(int fd, hs_state *x, uint8_t vmin, uint8_t vmax, const uint8_t *nc)
{
    x->bound = rt_binding(fd, x->binding) == 0;
    x->hello[0] = vmin;
    x->hello[1] = vmax;
    if (nc)
        memcpy(x->nc, nc, PP_NONCE_LEN);
    else if (pp_auth_nonce(x->nc) != 0)
        return -1;
    memcpy(x->hello + 2, x->nc, PP_NONCE_LEN);
    return send_frame(fd, PP_T_HELLO, 0, 0, x->hello, sizeof x->hello);
}

/* Reads the CHALLENGE and computes the transcript (bound to the TLS
 * session, as the node's is).  0 or -1. */
static int raw_challenge(int fd, hs_state *x)
{
    pp_frame_hdr h;
    uint8_t *p = NULL;
    if (read_frame(fd, 5, &h, &p) != 1)
        return -1;
    int ok = h.type == PP_T_CHALLENGE && h.len == sizeof x->chal;
    if (ok) {
        memcpy(x->chal, p, sizeof x->chal);
        x->ver = p[0];
        memcpy(x->ns, p + 1, PP_NONCE_LEN);
        x->max_frame = pp_load32(p + 1 + PP_NONCE_LEN);
        x->ncpus = pp_load32(p + 5 + PP_NONCE_LEN);
        ok = hs_transcript(x, x->bound ? x->binding : NULL, x->transcript) == 0;
    } else {
        fprintf(stderr, "expected CHALLENGE, got type %u (%u bytes)\n", h.type, h.len);
    }
    free(p);
    return ok ? 0 : -1;
}

/* A full client handshake with `secret` from `src` (NULL: 127.0.0.1), TLS
 * then the inner proof: returns the authenticated socket (the server's
 * ACCEPT checked), or -1. */
static int raw_auth_from(const char *src, int port, const char *secret, hs_state *x)
{
    memset(x, 0, sizeof *x);
    pp_auth_key k;
    if (rt_key(secret, &k) != 0)
        return -1;
    int fd = tls_connect_from(src, port, secret);
    if (fd < 0)
        return -1;
    if (raw_hello(fd, x, PP_PROTO_MIN, PP_PROTO_MAX, NULL) != 0 || raw_challenge(fd, x) != 0)
        goto fail;
    pp_auth_proof(&k, PP_ROLE_CLIENT, x->ver, x->nc, x->ns, x->transcript, x->proof);
    if (send_frame(fd, PP_T_PROOF, 0, 0, x->proof, PP_MAC_LEN) != 0)
        goto fail;
    pp_frame_hdr h;
    uint8_t *p = NULL;
    if (read_frame(fd, 5, &h, &p) != 1)
        goto fail;
    int ok = h.type == PP_T_ACCEPT && h.len == PP_MAC_LEN &&
             pp_auth_verify(&k, PP_ROLE_SERVER, x->ver, x->nc, x->ns, x->transcript, p) == 0;
    if (ok)
        memcpy(x->accept, p, PP_MAC_LEN);
    free(p);
    if (!ok)
        goto fail;
    pp_auth_wipe(&k, sizeof k);
    return fd;
fail:
    fprintf(stderr, "raw handshake with port %d failed\n", port);
    pp_auth_wipe(&k, sizeof k);
    raw_close(fd);
    return -1;
}

static int raw_auth(int port, const char *secret, hs_state *x)
{
    return raw_auth_from(NULL, port, secret, x);
}

/* A JOB payload: module hash, symbol, timeout (none), priority (0),
 * argument. */
static void job_payload(pp_buf *b, const uint8_t hash[PP_SHA256_LEN], const char *symbol,
                        const void *arg, size_t len)
{
    pp_buf_init(b, 1u << 20);
    pp_buf_append(b, hash, PP_SHA256_LEN);
    pp_wr_str16(b, symbol);
    pp_wr_u32(b, 0);
    pp_wr_u32(b, 0);
    if (len)
        pp_buf_append(b, arg, len);
}

static int count_files(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    size_t sl = strlen(suffix);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l >= sl && strcmp(e->d_name + l - sl, suffix) == 0)
            n++;
    }
    closedir(d);
    return n;
}

/* ---- callbacks: each job's result exactly once ---- */

#define MAXJ 64

static struct {
    atomic_int calls[MAXJ];
    double when[MAXJ];
    atomic_int total;
} trk;

static void track_reset(void)
{
    for (int i = 0; i < MAXJ; i++) {
        atomic_store(&trk.calls[i], 0);
        trk.when[i] = 0;
    }
    atomic_store(&trk.total, 0);
}

static void track_cb(pp_job *j, void *arg)
{
    (void)j;
    int i = (int)(intptr_t)arg;
    trk.when[i] = now_s();
    atomic_fetch_add(&trk.calls[i], 1);
    atomic_fetch_add(&trk.total, 1);
}

static int wait_total(int n, double limit)
{
    double end = now_s() + limit;
    while (atomic_load(&trk.total) < n && now_s() < end)
        sleep_s(0.005);
    return atomic_load(&trk.total);
}

static pp_submit_opts track_opts(int i)
{
    return (pp_submit_opts){.callback = track_cb, .callback_arg = (void *)(intptr_t)i};
}

/* Submits n t_square jobs into jobs[]. */
/* n jobs sleeping `ms` each, their callbacks tracked (track_reset() first). */
static void submit_tracked_sleeps(pp_server *s, pp_job **jobs, int n, long ms)
{
    for (int i = 0; i < n; i++) {
        pp_submit_opts o = track_opts(i);
        jobs[i] = pp_submitf(s, t_sleep, &o, "l", ms);
        CU_ASSERT_PTR_NOT_NULL_FATAL(jobs[i]);
    }
}

static void submit_squares(pp_server *s, pp_job **jobs, int n, long base)
{
    for (int i = 0; i < n; i++)
        jobs[i] = pp_submitf(s, t_square, NULL, "l", base + i);
}

static int squares_right(pp_job **jobs, int n, long base, const char *node)
{
    int right = 0;
    for (int i = 0; i < n; i++) {
        long v = -1, x = base + i;
        if (jobs[i] && pp_job_status(jobs[i]) == PP_DONE &&
            pp_job_unpack(jobs[i], "l", &v) == 0 && v == x * x &&
            (!node || strcmp(pp_job_node(jobs[i]), node) == 0))
            right++;
    }
    return right;
}

/* ==== results ========================================================= */

static void test_remote_results(void)
{
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-w", "2")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    char name[64];
    cl_node_name(h, name, sizeof name);
    pp_server *s = client_new(&(client_cfg){.ncpus = 0}, &h, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    enum { N = 1000 };
    pp_job **jobs = calloc(N, sizeof *jobs);
    CU_ASSERT_PTR_NOT_NULL_FATAL(jobs);
    for (long i = 0; i < N; i++) {
        jobs[i] = pp_submitf(s, t_square, NULL, "l", i - 500);
        CU_ASSERT_PTR_NOT_NULL_FATAL(jobs[i]);
    }
    CU_ASSERT_EQUAL(cl_wait_jobs(jobs, N, 60), N);
    int right = 0, named = 0;
    for (long i = 0; i < N; i++) {
        long v = -1;
        if (pp_job_status(jobs[i]) == PP_DONE && pp_job_unpack(jobs[i], "l", &v) == 0 &&
            v == (i - 500) * (i - 500))
            right++;
        named += strcmp(pp_job_node(jobs[i]), name) == 0;
        pp_job_free(jobs[i]);
    }
    free(jobs);
    CU_ASSERT_EQUAL(right, N);
    CU_ASSERT_EQUAL(named, N);
    pp_node_info nodes[4];
    CU_ASSERT_EQUAL(pp_get_active_nodes(s, nodes, 4), 2);
    CU_ASSERT_STRING_EQUAL(nodes[0].name, "local");
    CU_ASSERT_EQUAL(nodes[0].jobs, 0);
    CU_ASSERT_STRING_EQUAL(nodes[1].name, name);
    CU_ASSERT_EQUAL(nodes[1].state, PP_NODE_UP);
    CU_ASSERT_EQUAL(nodes[1].ncpus, 2);
    CU_ASSERT_EQUAL(nodes[1].jobs, N);
    pp_stats st;
    CU_ASSERT_EQUAL(pp_get_stats(s, &st), 0);
    CU_ASSERT_EQUAL(st.done, N);
    CU_ASSERT_EQUAL(st.failed, 0);
    CU_ASSERT_EQUAL(st.nodes, 2);
    char *text = NULL;
    size_t tlen = 0;
    FILE *mem = open_memstream(&text, &tlen);
    pp_print_stats(s, mem);
    fclose(mem);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, name));
    free(text);
    cl_client_free(s);
    CU_ASSERT(served(h));
}

static void test_spread_over_nodes(void)
{
    srv_harness *a = cl_server_start(&(srv_opts){.args = ARGS("-w", "1")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    srv_harness *b = cl_server_start(&(srv_opts){.args = ARGS("-w", "1"), .share_secret = a});
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    srv_harness *hs[] = {a, b};
    pp_server *s = client_new(&(client_cfg){.ncpus = 1}, hs, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_FATAL(cl_wait_up(s, a, 10) && cl_wait_up(s, b, 10));
    enum { N = 200 };
    pp_job *jobs[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = pp_submitf(s, t_sleep, NULL, "l", 5L);
        CU_ASSERT_PTR_NOT_NULL_FATAL(jobs[i]);
    }
    CU_ASSERT_EQUAL(cl_wait_jobs(jobs, N, 60), N);
    char na[64], nb[64];
    cl_node_name(a, na, sizeof na);
    cl_node_name(b, nb, sizeof nb);
    int on[3] = {0, 0, 0}, done = 0;
    for (int i = 0; i < N; i++) {
        done += pp_job_status(jobs[i]) == PP_DONE;
        const char *n = pp_job_node(jobs[i]);
        on[strcmp(n, "local") == 0 ? 0 : strcmp(n, na) == 0 ? 1 : 2]++;
        pp_job_free(jobs[i]);
    }
    CU_ASSERT_EQUAL(done, N);
    printf("\n    spread: local %d, %s %d, %s %d ", on[0], na, on[1], nb, on[2]);
    CU_ASSERT(on[0] > 0);
    CU_ASSERT(on[1] > 0);
    CU_ASSERT(on[2] > 0);
    pp_node_info ni;
    CU_ASSERT(cl_node_info(s, na, &ni) == 0 && ni.jobs == (uint64_t)on[1] && ni.ncpus == 1);
    CU_ASSERT(cl_node_info(s, nb, &ni) == 0 && ni.jobs == (uint64_t)on[2] && ni.ncpus == 1);
    CU_ASSERT(cl_node_info(s, "local", &ni) == 0 && ni.jobs == (uint64_t)on[0]);
    cl_client_free(s);
    CU_ASSERT(served(a));
    CU_ASSERT(served(b));
}

/* ppserver --job-memory-mib caps each worker's memory: a job allocating
 * past it fails with the task's own message, smaller ones run; a cap below
 * 64 MiB is refused at start.  The cap itself is not tried under Address- or
 * ThreadSanitizer, whose shadow memory alone exceeds it. */
static void test_job_memory_limit(void)
{
    char *err = NULL;
    int st = srv_run_once(ARGS("ppserver", "-p", "0", "-s", "0123456789abcdef0123456789",
                               "--job-memory-mib", "10"),
                          NULL, 10, &err);
    CU_ASSERT(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 64);
    CU_ASSERT(err && strstr(err, "--job-memory-mib 10 is too small"));
    free(err);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    printf("(the cap: skipped under a sanitizer) ");
#else
    srv_harness *h =
        cl_server_start(&(srv_opts){.args = ARGS("-w", "1", "--job-memory-mib", "256")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    pp_server *s = client_new(&(client_cfg){.ncpus = 0}, &h, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_job *big = pp_submitf(s, t_alloc, NULL, "l", 1024L);
    pp_job *small = pp_submitf(s, t_alloc, NULL, "l", 32L);
    CU_ASSERT_EQUAL(pp_job_wait_for(big, 30), PP_FAILED);
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_job_error(big), "cannot allocate 1024 MiB"));
    CU_ASSERT_EQUAL(pp_job_wait_for(small, 30), PP_DONE);
    pp_job_free(big);
    pp_job_free(small);
    cl_client_free(s);
    CU_ASSERT(served(h));
#endif
}

/* The shipped conf/ppserver.conf loads as it is (every key known, every
 * value in range) and the node it configures serves a client. */
static void test_shipped_config(void)
{
    const char *src = getenv("PP_SOURCE_DIR");
    if (!src) {
        printf("(PP_SOURCE_DIR not set: skipped) ");
        return;
    }
    char conf[1024];
    snprintf(conf, sizeof conf, "%s/conf/ppserver.conf", src);
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-c", conf, "-w", "1")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT(served(h));
}

static void test_module_shipped_once(void)
{
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-w", "1", "--log-level", "info")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    for (int round = 0; round < 2; round++) {
        pp_server *s = client_new(&(client_cfg){.ncpus = 0}, &h, 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        pp_job *jobs[5];
        for (long i = 0; i < 5; i++)
            jobs[i] = pp_submitf(s, t_square, NULL, "l", i);
        CU_ASSERT_EQUAL(cl_wait_jobs(jobs, 5, 30), 5);
        for (long i = 0; i < 5; i++) {
            long v = -1;
            CU_ASSERT(pp_job_unpack(jobs[i], "l", &v) == 0 && v == i * i);
            pp_job_free(jobs[i]);
        }
        cl_client_free(s);
    }
    CU_ASSERT_EQUAL(srv_log_count(h, ARGS("module ", " stored")), 1);
    CU_ASSERT_EQUAL(count_files(h->cache_dir, ".so"), 1);
    CU_ASSERT_EQUAL(count_files(h->cache_dir, ".tmp"), 0);
    CU_ASSERT(served(h));
    CU_ASSERT_EQUAL(srv_log_count(h, ARGS("module ", " stored")), 1);
}

static void test_no_wait_behind_long_job(void)
{
    /* A node with two workers: short jobs sent beside a long one must not
     * queue behind it while the other worker is idle. */
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-w", "2")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    pp_server *s = client_new(&(client_cfg){.ncpus = 0}, &h, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    enum { WARM = 200, N = 20 };
    pp_job *warm[WARM];
    submit_squares(s, warm, WARM, 0); /* short jobs: the node pipelines deeply */
    CU_ASSERT_EQUAL(cl_wait_jobs(warm, WARM, 30), WARM);
    for (int i = 0; i < WARM; i++)
        pp_job_free(warm[i]);
    pp_job *slow = pp_submitf(s, t_sleep, NULL, "l", 3000L);
    pp_job *jobs[N];
    submit_squares(s, jobs, N, 100);
    double t0 = now_s();
    int ended = cl_wait_jobs(jobs, N, 2.0);
    if (ended != N)
        fprintf(stderr, "\n    %d of %d short jobs still pending after %.2f s beside a 3 s job "
                        "on a node with 2 workers\n", N - ended, N, now_s() - t0);
    CU_ASSERT_EQUAL(ended, N);
    CU_ASSERT_EQUAL(cl_wait_jobs(jobs, N, 10), N);
    CU_ASSERT_EQUAL(squares_right(jobs, N, 100, NULL), N);
    CU_ASSERT_EQUAL(cl_wait_jobs(&slow, 1, 10), 1);
    CU_ASSERT_EQUAL(pp_job_status(slow), PP_DONE);
    for (int i = 0; i < N; i++)
        pp_job_free(jobs[i]);
    pp_job_free(slow);
    cl_client_free(s);
    CU_ASSERT(served(h));
}

/* ==== nodes given by name ============================================== */

/* getaddrinfo() as libpp sees it.  This executable's definition comes
 * first (libpp calls it through the PLT), which makes a slow lookup without
 * any network: a lookup of SLOW_NAME waits while the test holds it (10 s at
 * most), then resolves as 127.0.0.1.  Everything else, and every numeric
 * lookup, goes straight to the C library. */
#define SLOW_NAME "slow-lookup.pp-test"

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int hold;                /* lookups of SLOW_NAME wait while set */
    int waiting;             /* lookups waiting now */
    int running;             /* lookups of SLOW_NAME not yet returned */
    int calls;               /* lookups of SLOW_NAME so far */
} slow = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

__attribute__((visibility("default"))) int getaddrinfo(const char *restrict node,
                                                       const char *restrict service,
                                                       const struct addrinfo *restrict hints,
                                                       struct addrinfo **restrict res)
{
    gai_fn real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
    if (!real)
        return EAI_SYSTEM;
    if (!node || strcmp(node, SLOW_NAME) != 0 || (hints && (hints->ai_flags & AI_NUMERICHOST)))
        return real(node, service, hints, res);
    pthread_mutex_lock(&slow.mu);
    slow.calls++;
    slow.running++;
    slow.waiting++;
    struct timespec end;
    clock_gettime(CLOCK_REALTIME, &end);
    end.tv_sec += 10;
    while (slow.hold && pthread_cond_timedwait(&slow.cv, &slow.mu, &end) != ETIMEDOUT) {
    }
    slow.waiting--;
    pthread_mutex_unlock(&slow.mu);
    int rc = real("127.0.0.1", service, hints, res);
    pthread_mutex_lock(&slow.mu);
    slow.running--;
    pthread_mutex_unlock(&slow.mu);
    return rc;
}

static void slow_hold(int on)
{
    pthread_mutex_lock(&slow.mu);
    slow.hold = on;
    pthread_cond_broadcast(&slow.cv);
    pthread_mutex_unlock(&slow.mu);
}

/* Reads one of slow's counters. */
static int slow_get(const int *field)
{
    pthread_mutex_lock(&slow.mu);
    int v = *field;
    pthread_mutex_unlock(&slow.mu);
    return v;
}

/* Waits (bounded) until *field == want; 1 when it is. */
static int slow_wait(const int *field, int want, double limit)
{
    double end = now_s() + limit;
    while (slow_get(field) != want && now_s() < end)
        sleep_s(0.005);
    return slow_get(field) == want;
}


/* A client of the named nodes with a secret of its own (no server checks
 * it: these nodes never get that far). */
static pp_server *client_of_names(int ncpus, const char *const *names, const char *secret)
{
    pp_config cfg = {.ncpus = ncpus,
                     .ppservers = names,
                     .secret = secret ? secret : "not-a-real-secret-0123456789abcdef",
                     .log_level = "warn",
                     .heartbeat = 0.2,
                     .node_timeout = 1.0};
    pp_server *s = pp_server_new(&cfg);
    if (!s)
        fprintf(stderr, "%s\n", pp_last_error());
    else
        cl_track(s);
    return s;
}

static void test_node_by_name(void)
{
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-w", "2")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    char name[64];
    snprintf(name, sizeof name, "localhost:%d", h->port);
    pp_server *s = client_of_names(0, ARGS(name), h->secret);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_FATAL(cl_wait_state(s, name, PP_NODE_UP, 10));
    enum { N = 50 };
    pp_job *jobs[N];
    submit_squares(s, jobs, N, -20);
    CU_ASSERT_EQUAL(cl_wait_jobs(jobs, N, 30), N);
    CU_ASSERT_EQUAL(squares_right(jobs, N, -20, name), N);
    for (int i = 0; i < N; i++)
        pp_job_free(jobs[i]);
    pp_node_info ni;
    CU_ASSERT(cl_node_info(s, name, &ni) == 0 && ni.state == PP_NODE_UP && ni.ncpus == 2);
    cl_client_free(s);
    CU_ASSERT(served(h));
}

static void test_slow_lookup(void)
{
    /* Node a by address (heartbeats every 0.2 s, dead after 1 s silent),
     * node h by a name whose lookup is held. */
    srv_harness *a = cl_server_start(&(srv_opts){.args = ARGS("-w", "2")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-w", "2"), .share_secret = a});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    char byaddr[64], byname[64];
    cl_node_name(a, byaddr, sizeof byaddr);
    snprintf(byname, sizeof byname, SLOW_NAME ":%d", h->port);
    slow_hold(1);
    int calls = slow_get(&slow.calls);
    double t0 = now_s();
    pp_server *s = client_of_names(1, ARGS(byaddr, byname), h->secret);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    double took = now_s() - t0;
    printf("\n    pp_server_new took %.3f s with the lookup held ", took);
    CU_ASSERT_FATAL(took < 5.0); /* a blocking lookup holds it 10 s */
    CU_ASSERT_FATAL(slow_wait(&slow.waiting, 1, 5));
    CU_ASSERT_FATAL(cl_wait_state(s, byaddr, PP_NODE_UP, 10));
    CU_ASSERT_EQUAL(cl_node_state(s, byname), PP_NODE_CONNECTING);

    /* The lookup stays held for 1.5 s: jobs finish locally and on the other
     * node meanwhile, and that node's heartbeats keep it up. */
    double held_since = now_s();
    enum { N = 40 };
    pp_job *jobs[N];
    int rounds = 0, slowest_ms = 0;
    while (now_s() - held_since < 1.5 && rounds < 100) {
        double r0 = now_s();
        submit_squares(s, jobs, N, rounds);
        CU_ASSERT_EQUAL(cl_wait_jobs(jobs, N, 5), N);
        CU_ASSERT_EQUAL(squares_right(jobs, N, rounds, NULL), N);
        for (int i = 0; i < N; i++)
            pp_job_free(jobs[i]);
        int ms = (int)((now_s() - r0) * 1000);
        slowest_ms = ms > slowest_ms ? ms : slowest_ms;
        rounds++;
        sleep_s(0.05);
    }
    printf("\n    %d rounds of %d jobs while the lookup was held, slowest %d ms ", rounds, N,
           slowest_ms);
    CU_ASSERT(slowest_ms < 1000);
    CU_ASSERT_EQUAL(slow_get(&slow.waiting), 1);
    CU_ASSERT_EQUAL(slow_get(&slow.calls), calls + 1); /* one lookup per node at a time */
    pp_node_info ni;
    CU_ASSERT(cl_node_info(s, byaddr, &ni) == 0 && ni.state == PP_NODE_UP && ni.connects == 1);
    CU_ASSERT(cl_node_info(s, byname, &ni) == 0 && ni.state == PP_NODE_CONNECTING &&
              ni.connects == 1);

    /* Released: the name resolves and that node comes up and runs the jobs
     * once the others are gone. */
    slow_hold(0);
    CU_ASSERT_FATAL(cl_wait_state(s, byname, PP_NODE_UP, 10));
    CU_ASSERT(cl_node_info(s, byname, &ni) == 0 && ni.connects == 1 && ni.ncpus == 2);
    CU_ASSERT_EQUAL(pp_set_ncpus(s, 0), 0);
    int st = srv_stop(a, 10);
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CU_ASSERT(cl_wait_state(s, byaddr, PP_NODE_DOWN, 10));
    pp_job *more[N];
    submit_squares(s, more, N, 1000);
    CU_ASSERT_EQUAL(cl_wait_jobs(more, N, 30), N);
    CU_ASSERT_EQUAL(squares_right(more, N, 1000, byname), N);
    for (int i = 0; i < N; i++)
        pp_job_free(more[i]);
    cl_client_free(s);
    CU_ASSERT(served(h));
}

static void test_unresolvable_name(void)
{
    const char *bad = "no-such-host.invalid:1";
    CU_ASSERT_EQUAL_FATAL(capture_start(tmpdir), 0);
    pp_server *s = client_of_names(1, ARGS(bad), NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    /* The resolver bounds its own time: 30 s covers its defaults. */
    CU_ASSERT(cl_wait_state(s, bad, PP_NODE_DOWN, 30));
    enum { N = 40 };
    pp_job *jobs[N];
    double t0 = now_s();
    for (int round = 0; round < 5; round++) {
        double r0 = now_s();
        submit_squares(s, jobs, N, round);
        CU_ASSERT_EQUAL(cl_wait_jobs(jobs, N, 5), N);
        CU_ASSERT_EQUAL(squares_right(jobs, N, round, "local"), N);
        CU_ASSERT(now_s() - r0 < 1.0);
        for (int i = 0; i < N; i++)
            pp_job_free(jobs[i]);
        sleep_s(0.1);
    }
    printf("\n    5 rounds of %d local jobs in %.2f s beside the unresolvable node ", N,
           now_s() - t0);
    int st = cl_node_state(s, bad);
    CU_ASSERT(st == PP_NODE_DOWN || st == PP_NODE_CONNECTING); /* retried with backoff */
    pp_node_info ni;
    CU_ASSERT(cl_node_info(s, bad, &ni) == 0 && ni.connects >= 1 && ni.connects < 20);
    cl_client_free(s);
    char *log = capture_end();
    CU_ASSERT_PTR_NOT_NULL_FATAL(log);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "no-such-host.invalid:1: cannot reach the node: "
                                      "cannot resolve no-such-host.invalid: "));
    free(log);
}

/* Open descriptors of this process. */
static int own_fds(void)
{
    return fd_count(getpid());
}

static void test_free_during_lookup(void)
{
    /* pp_server_free() does not wait for a lookup; the lookup, released
     * after the server is gone, finishes alone: it touches no freed memory
     * (ASan) and leaves no descriptor and no allocation behind
     * (LeakSanitizer at exit). */
    const char *name = SLOW_NAME ":1";
    int base = own_fds();
    double slowest = 0;
    for (int round = 0; round < 10; round++) {
        slow_hold(1);
        pp_server *s = client_of_names(0, ARGS(name), NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        CU_ASSERT_FATAL(slow_wait(&slow.waiting, 1, 5));
        double t0 = now_s();
        cl_client_free(s);
        double took = now_s() - t0;
        slowest = took > slowest ? took : slowest;
        CU_ASSERT_FATAL(took < 2.0); /* a blocked scheduler: stop here, not 10 times */
        if (round == 0)
            sleep_s(0.2); /* the server stays gone a while before the lookup ends */
        slow_hold(0);
        CU_ASSERT(slow_wait(&slow.running, 0, 5));
    }
    printf("\n    pp_server_free() took at most %.3f s with a lookup held ", slowest);
    /* The lookup thread closes its eventfd just after getaddrinfo() returns. */
    double end = now_s() + 5;
    while (own_fds() != base && now_s() < end)
        sleep_s(0.01);
    CU_ASSERT_EQUAL(own_fds(), base);
}

/* ==== a newcomer's way in: secrets, jobs nothing can run, orphans ==== */

/* The secret as a program reads it from a --gen-secret file (with its
 * newline), from pp_config.secret_file and from PP_SECRET_FILE: all are
 * the secret ppserver uses, so the node comes up and runs jobs. */
static void test_secret_sources(void)
{
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-w", "1")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    char name[64], with_nl[160];
    cl_node_name(h, name, sizeof name);
    const char *list[] = {name, NULL};
    size_t flen = 0;
    char *file_text = srv_slurp(h->secret_file, &flen);
    CU_ASSERT_PTR_NOT_NULL_FATAL(file_text);
    CU_ASSERT(flen > 0 && file_text[flen - 1] == '\n'); /* as --gen-secret writes it */
    snprintf(with_nl, sizeof with_nl, "%s", file_text);
    free(file_text);
    const pp_config cfgs[] = {
        {.ncpus = 0, .ppservers = list, .secret = with_nl},
        {.ncpus = 0, .ppservers = list, .secret_file = h->secret_file},
        {.ncpus = 0, .ppservers = list}, /* PP_SECRET_FILE */
    };
    for (size_t i = 0; i < PP_ARRAY_LEN(cfgs); i++) {
        if (i == 2)
            setenv("PP_SECRET_FILE", h->secret_file, 1);
        pp_server *s = pp_server_new(&cfgs[i]);
        unsetenv("PP_SECRET_FILE");
        CU_ASSERT_PTR_NOT_NULL(s);
        if (!s) {
            fprintf(stderr, "%s\n", pp_last_error());
            continue;
        }
        cl_track(s);
        pp_job *j = pp_submitf(s, t_square, NULL, "l", 7L);
        long v = 0;
        CU_ASSERT(pp_job_wait_for(j, 20) == PP_DONE && pp_job_unpack(j, "l", &v) == 0 &&
                  v == 49);
        CU_ASSERT_STRING_EQUAL(pp_job_node(j), name);
        pp_job_free(j);
        cl_client_free(s);
    }
    /* A secret file others may read is refused, as ppserver refuses it. */
    char loose[400];
    snprintf(loose, sizeof loose, "%s/loose-secret", h->dir);
    FILE *fp = fopen(loose, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fprintf(fp, "%s\n", h->secret);
    fclose(fp);
    chmod(loose, 0644);
    CU_ASSERT_PTR_NULL(pp_server_new(&(pp_config){.ncpus = 0, .ppservers = list,
                                                  .secret_file = loose}));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "readable by others"));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "pp_server_new: "));
    CU_ASSERT_PTR_NULL(pp_server_new(&(pp_config){.ncpus = 0, .ppservers = list,
                                                  .secret = "short\n"}));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "too short"));
    CU_ASSERT_PTR_NULL(pp_server_new(&(pp_config){.ncpus = 0, .ppservers = list,
                                                  .secret = h->secret,
                                                  .secret_file = h->secret_file}));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "not both"));
    CU_ASSERT(served(h));
}

/* Jobs only nodes with another secret could run: with no_node_timeout they
 * end PP_LOST as soon as the node refused the secret (that lasts until the
 * secret changes), saying so; pp_wait_for() returns then. */
static void test_lost_on_auth_failure(void)
{
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-w", "1", "--auth-delay", "0.05")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    char name[64];
    cl_node_name(h, name, sizeof name);
    const char *list[] = {name, NULL};
    pp_server *s = pp_server_new(&(pp_config){
        .ncpus = 0, .ppservers = list, .secret = "not-the-right-secret-0123456789abcdef",
        .no_node_timeout = 60});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    cl_track(s);
    pp_job *jobs[5];
    for (long i = 0; i < 5; i++)
        jobs[i] = pp_submitf(s, t_square, NULL, "l", i);
    double t0 = now_s();
    CU_ASSERT_EQUAL(pp_wait_for(s, NULL, 20), 0);
    double took = now_s() - t0;
    printf("\n    all lost after %.2f s: %s ", took, pp_job_error(jobs[0]));
    CU_ASSERT(took < 5);
    for (int i = 0; i < 5; i++) {
        CU_ASSERT_EQUAL(pp_job_status(jobs[i]), PP_LOST);
        CU_ASSERT_PTR_NOT_NULL(strstr(pp_job_error(jobs[i]), "refused our secret"));
        CU_ASSERT_PTR_NOT_NULL(strstr(pp_job_error(jobs[i]), "authentication failed"));
        pp_job_free(jobs[i]);
    }
    CU_ASSERT_EQUAL(cl_node_state(s, name), PP_NODE_AUTH_FAILED);
    cl_client_free(s);
    CU_ASSERT_EQUAL(srv_log_count(h, ARGS("client authenticated")), 0);
    CU_ASSERT(served(h));
}

/* A node that never comes up: jobs wait (pp_wait_for times out, saying how
 * many are left) and, after no_node_timeout, end PP_LOST naming the node
 * and why; without the setting they keep waiting. */
static void test_lost_when_nothing_is_up(void)
{
    /* A port nobody listens on: bound, then closed. */
    int port = 0;
    int lfd = pp_net_listen("127.0.0.1", 0, 1, &port, NULL);
    CU_ASSERT_FATAL(lfd >= 0);
    close(lfd);
    char name[64];
    snprintf(name, sizeof name, "127.0.0.1:%d", port);
    const char *list[] = {name, NULL};
    const char *secret = "a-secret-nobody-checks-0123456789";
    pp_server *s = pp_server_new(&(pp_config){.ncpus = 0, .ppservers = list,
                                              .secret = secret, .no_node_timeout = 1.5});
    pp_server *patient = pp_server_new(&(pp_config){.ncpus = 0, .ppservers = list,
                                                    .secret = secret});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(patient);
    cl_track(s);
    cl_track(patient);
    pp_job *j = pp_submitf(s, t_square, &(pp_submit_opts){.group = "g"}, "l", 3L);
    pp_job *k = pp_submitf(patient, t_square, NULL, "l", 3L);
    double t0 = now_s();
    CU_ASSERT_EQUAL(pp_wait_for(s, "g", 0.3), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "1 job(s) of group \"g\" still pending"));
    CU_ASSERT_EQUAL(pp_job_status(j), PP_PENDING);
    CU_ASSERT_EQUAL(pp_wait_for(s, "g", 10), 0);
    double took = now_s() - t0;
    printf("\n    lost after %.2f s: %s ", took, pp_job_error(j));
    CU_ASSERT(took >= 1.4 && took < 5);
    CU_ASSERT_EQUAL(pp_job_status(j), PP_LOST);
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_job_error(j), "no node was up"));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_job_error(j), name));
    /* Without the setting, the other client's job still waits. */
    CU_ASSERT_EQUAL(pp_job_status(k), PP_PENDING);
    CU_ASSERT_EQUAL(pp_wait_for(patient, NULL, 0.2), 1);
    CU_ASSERT_EQUAL(pp_wait_for(s, NULL, -1), -1);
    pp_job_free(j);
    pp_job_free(k);
    cl_client_free(s);
    cl_client_free(patient);
}

/* Starts pptest_churn's remote sleeper against h: it submits a long job
 * there and waits.  Its pid, or -1. */
static pid_t start_sleeper(srv_harness *h, const char *ms)
{
    char name[64];
    cl_node_name(h, name, sizeof name);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("PP_SECRET", h->secret, 1);
        execl(getenv("PP_TEST_CHURN"), "pptest_churn", "sleep", name, ms, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* A client that leaves (pp_server_free) or dies (SIGKILL) while its long
 * job runs on a node: the node stops that job at once (its worker replaced)
 * and drops its queued ones, so another client's job does not wait behind
 * them. */
static void test_orphans_stopped(void)
{
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-w", "1", "--log-level", "info")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    for (int round = 0; round < 2; round++) {
        pid_t child = -1;
        if (round == 0) {
            /* Leaves: pp_server_free() with its jobs running and queued. */
            pp_server *a = client_new(&(client_cfg){.ncpus = 0}, &h, 1);
            CU_ASSERT_PTR_NOT_NULL_FATAL(a);
            CU_ASSERT(cl_wait_up(a, h, 20));
            pp_job *long_jobs[3];
            for (int i = 0; i < 3; i++) {
                long_jobs[i] = pp_submitf(a, t_sleep, NULL, "l", 5000L);
                pp_job_free(long_jobs[i]);
            }
            sleep_s(0.5); /* the first one runs on the node's only worker */
            cl_client_free(a);
        } else {
            /* Dies: killed while its job runs there. */
            child = start_sleeper(h, "5000");
            CU_ASSERT_FATAL(child > 0);
            double end = now_s() + 20;
            while (srv_log_count(h, ARGS("client authenticated")) < 2 && now_s() < end)
                sleep_s(0.05);
            sleep_s(0.5);
            kill(child, SIGKILL);
            waitpid(child, NULL, 0);
        }
        double t0 = now_s();
        CU_ASSERT(served_within(h, 10));
        double took = now_s() - t0;
        printf("\n    after the client %s, another client's job took %.2f s ",
               round ? "died" : "left", took);
        CU_ASSERT(took < 2.0); /* not the 4.5 s left of the orphan */
    }
    CU_ASSERT(srv_log_count(h, ARGS("client gone: stopping its")) >= 2);
    CU_ASSERT(srv_log_count(h, ARGS("its job was cancelled; worker replaced")) >= 2);
    CU_ASSERT(served(h));
}

/* ==== authentication (A) ============================================ */

static void test_a1_wrong_secret(void)
{
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-w", "1", "--auth-delay", "0.05")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    char name[64];
    cl_node_name(h, name, sizeof name);
    pp_server *s = client_new(&(client_cfg){.ncpus = 0,
                                            .secret = "not-the-right-secret-0123456789abcdef"},
                              &h, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    /* Jobs are waiting before the handshake ends: none may go there. */
    pp_job *jobs[10];
    for (long i = 0; i < 10; i++)
        jobs[i] = pp_submitf(s, t_square, NULL, "l", i);
    double t0 = now_s();
    CU_ASSERT(cl_wait_state(s, name, PP_NODE_AUTH_FAILED, 5));
    CU_ASSERT(now_s() - t0 < 5);
    CU_ASSERT_EQUAL(pp_set_ncpus(s, 1), 0);
    CU_ASSERT_EQUAL(cl_wait_jobs(jobs, 10, 30), 10);
    for (long i = 0; i < 10; i++) {
        long v = -1;
        CU_ASSERT(pp_job_unpack(jobs[i], "l", &v) == 0 && v == i * i);
        CU_ASSERT_STRING_EQUAL(pp_job_node(jobs[i]), "local");
        pp_job_free(jobs[i]);
    }
    pp_node_info ni;
    CU_ASSERT(cl_node_info(s, name, &ni) == 0 && ni.jobs == 0 && ni.state == PP_NODE_AUTH_FAILED);
    cl_client_free(s);
    /* The server names the peer and the failure -- already in the TLS
     * handshake, whose PSK binder our key does not make -- and ran no job. */
    CU_ASSERT(srv_log_count(h, ARGS("127.0.0.1:", "authentication failed")) >= 1);
    CU_ASSERT(log_lines(h, ARGS("127.0.0.1:", "the client's TLS key is not ours"), 1) >= 1);
    CU_ASSERT_EQUAL(srv_log_count(h, ARGS("client authenticated")), 0);
    CU_ASSERT(served(h));
}

/* One connection with a wrong secret from 127.0.0.1: 1 when the node
 * refused it already in the TLS handshake -- its alert says our key is not
 * its own, so that not one frame of ours reached it -- and closed.  (A
 * wrong secret makes a wrong K_psk: no TLS session, no pp ERROR frame.) */
static int wrong_secret_once(int port)
{
    int fd = tcp_connect(port);
    if (fd < 0)
        return 0;
    char why[PP_ERR_LEN];
    int rc = rt_client(fd, "not-the-secret-0123456789", 5, why);
    double closed = wait_closed(fd, 5); /* the node counts it as it closes */
    raw_close(fd);
    if (rc != RT_WRONG_KEY || closed < 0)
        fprintf(stderr, "\n    a wrong secret: TLS %d (%s), %s\n", rc, rc ? why : "up",
                closed < 0 ? "still open" : "closed");
    return rc == RT_WRONG_KEY && closed >= 0;
}

/* One handshake from `src` whose TLS key is right but whose inner PROOF is
 * made with another secret's K_auth: the other way to a wrong secret, which
 * the node must refuse as well -- with the pp ERROR "authentication failed",
 * inside the TLS session -- and count the same.  1 when it did and closed. */
static int wrong_proof_once(const char *src, int port, const char *secret)
{
    hs_state x;
    memset(&x, 0, sizeof x);
    pp_auth_key k;
    int fd = tls_connect_from(src, port, secret);
    if (fd < 0 || raw_hello(fd, &x, PP_PROTO_MIN, PP_PROTO_MAX, NULL) != 0 ||
        raw_challenge(fd, &x) != 0 || rt_key("not-the-secret-0123456789", &k) != 0) {
        raw_close(fd);
        return 0;
    }
    pp_auth_proof(&k, PP_ROLE_CLIENT, x.ver, x.nc, x.ns, x.transcript, x.proof);
    pp_auth_wipe(&k, sizeof k);
    int ok = send_frame(fd, PP_T_PROOF, 0, 0, x.proof, PP_MAC_LEN) == 0;
    refusal rf = expect_close(fd, 5);
    raw_close(fd);
    return ok && rf.closed && rf.got_error && rf.code == PP_E_AUTH && rf.other == 0 &&
           strstr(rf.msg, "authentication failed");
}

/* Whether the node closes a connection from `src` at once without a byte:
 * plain TCP sees EOF (or a reset) before any byte, and a TLS client with
 * the right secret gets no ServerHello.  1 when both held within 1 s. */
static int refused_at_once(const char *src, int port, const char *secret)
{
    int fd = tcp_connect_from(src, port);
    if (fd < 0)
        return 0;
    refusal rf = expect_close(fd, 2); /* plain: no frame, no TLS record */
    raw_close(fd);
    fd = tcp_connect_from(src, port);
    if (fd < 0)
        return 0;
    char why[PP_ERR_LEN];
    double t0 = now_s();
    int rc = rt_client(fd, secret, 2, why);
    double took = now_s() - t0;
    raw_close(fd);
    int ok = rf.closed && rf.other == 0 && !rf.got_error && rf.secs < 1.0 && rc != 0 &&
             took < 1.0;
    if (!ok)
        fprintf(stderr, "\n    %s: TCP closed %d after %.2f s (%d frames); TLS with the right "
                        "secret: %s after %.2f s\n", src ? src : "127.0.0.1", rf.closed,
                rf.secs, rf.other, rc ? why : "up", took);
    return ok;
}

/* Repeated wrong secrets from one address: counted, and past
 * --max-auth-failures within --auth-lockout that address is refused at
 * once for --auth-lockout seconds; other addresses are served meanwhile,
 * and the address is served again afterwards.  Wrong secrets fail in the
 * TLS handshake; wrong inner proofs (the right TLS key) count the same. */
static void test_a1_lockout(void)
{
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS(
        "-w", "1", "--max-auth-failures", "3", "--auth-lockout", "3", "--auth-delay", "0")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    int fds0 = warm_fds(h);
    for (int i = 0; i < 3; i++)
        CU_ASSERT(wrong_secret_once(h->port));
    double locked_at = now_s();
    CU_ASSERT_EQUAL(log_lines(h, ARGS("127.0.0.1:", "the client's TLS key is not ours"), 3), 3);
    CU_ASSERT_EQUAL(srv_log_count(h, ARGS("the client's TLS key is not ours",
                                          "3 from this address within 3 s")),
                    1);
    CU_ASSERT_EQUAL(srv_log_count(h, ARGS("127.0.0.1: 3 wrong secrets within 3 s; refusing")),
                    1);
    /* 127.0.0.1 now: closed at once, before a byte, even with the right
     * secret. */
    CU_ASSERT(refused_at_once(NULL, h->port, h->secret));
    /* Another address is served meanwhile. */
    hs_state x;
    int fd = raw_auth_from("127.0.0.2", h->port, h->secret, &x);
    CU_ASSERT(fd >= 0);
    raw_close(fd);
    CU_ASSERT(now_s() - locked_at < 3);
    /* Wrong inner proofs inside good TLS sessions: refused with the pp
     * ERROR, counted the same way, and their address locked out too. */
    for (int i = 0; i < 3; i++)
        CU_ASSERT(wrong_proof_once("127.0.0.3", h->port, h->secret));
    CU_ASSERT_EQUAL(srv_log_count(h, ARGS("127.0.0.3:", "authentication failed (wrong secret?); "
                                                        "3 from this address within 3 s")),
                    1);
    CU_ASSERT_EQUAL(srv_log_count(h, ARGS("127.0.0.3: 3 wrong secrets within 3 s; refusing")),
                    1);
    CU_ASSERT(refused_at_once("127.0.0.3", h->port, h->secret));
    /* After the lockout 127.0.0.1 is served again (libpp's client). */
    while (now_s() < locked_at + 3.2)
        sleep_s(0.05);
    CU_ASSERT(served(h));
    CU_ASSERT_EQUAL(settle_fds(h, fds0), fds0);
}

/* ---- fake nodes: a thread playing a node, over TLS as ppserver does ---- */

/* A listening socket on 127.0.0.1, any port (in *port).  -1 on failure. */
static int fake_listen(int *port)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 16) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl) != 0) {
        if (lfd >= 0)
            close(lfd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return lfd;
}

/* The next client of a fake node, with its TLS handshake (as a server,
 * with `secret`'s key) done within 3 s: its fd, or -1 when none came
 * within 0.1 s or its TLS failed.  Counts connections, sessions up, and
 * handshakes refused for the client's key. */
static int fake_accept(int lfd, const char *secret, atomic_int *conns, atomic_int *up,
                       atomic_int *refused)
{
    struct pollfd lp = {.fd = lfd, .events = POLLIN};
    if (poll(&lp, 1, 100) <= 0)
        return -1;
    int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (cfd < 0)
        return -1;
    atomic_fetch_add(conns, 1);
    char why[PP_ERR_LEN];
    int rc = rt_server(cfd, secret, 3, why);
    if (rc != 0) {
        if (rc == RT_WRONG_KEY)
            atomic_fetch_add(refused, 1);
        close(cfd);
        return -1;
    }
    atomic_fetch_add(up, 1);
    return cfd;
}

/* Hands each frame of a fake node's client to on_frame, until the client
 * goes, the frame reader refuses a frame (limit max_len), or *stop; then
 * closes cfd (its TLS session first). */
static void fake_serve(int cfd, uint32_t max_len, atomic_int *stop,
                       void (*on_frame)(int cfd, const pp_frame *fr, void *arg), void *arg)
{
    pp_wire_reader rd;
    pp_wire_reader_init(&rd, max_len, 255);
    while (!atomic_load(stop)) {
        size_t room;
        void *dst = pp_wire_reader_space(&rd, &room);
        if (!dst || !room)
            break;
        ssize_t k = rt_recv(cfd, dst, room, now_s() + 0.1);
        if (k == -1)
            continue; /* nothing yet: look at *stop again */
        if (k <= 0)
            break;
        pp_wire_reader_commit(&rd, (size_t)k);
        pp_frame fr;
        int r;
        while ((r = pp_wire_reader_next(&rd, &fr)) == 1)
            on_frame(cfd, &fr, arg);
        if (r < 0)
            break;
    }
    pp_wire_reader_free(&rd);
    rt_forget(cfd);
    close(cfd);
}

/* The fake server of A2: it answers HELLO with a well-formed CHALLENGE and
 * PROOF with an ACCEPT it cannot make right. */
static void fake_frame(int cfd, const pp_frame *fr, void *arg)
{
    fake_srv *f = arg;
    atomic_fetch_add(&f->seen[fr->hdr.type], 1);
    if (fr->hdr.type == PP_T_HELLO) {
        /* A well-formed CHALLENGE: the version we speak, a nonce, limits. */
        uint8_t chal[1 + PP_NONCE_LEN + 8];
        chal[0] = PP_PROTO_MAX;
        pp_auth_nonce(chal + 1);
        pp_store32(chal + 1 + PP_NONCE_LEN, 1u << 20);
        pp_store32(chal + 5 + PP_NONCE_LEN, 2);
        send_frame(cfd, PP_T_CHALLENGE, 0, 0, chal, sizeof chal);
    } else if (fr->hdr.type == PP_T_PROOF) {
        /* It cannot prove the secret: a MAC of zeros. */
        uint8_t mac[PP_MAC_LEN] = {0};
        send_frame(cfd, PP_T_ACCEPT, 0, 0, mac, sizeof mac);
    }
}

static void *fake_main(void *arg)
{
    fake_srv *f = arg;
    while (!atomic_load(&f->stop)) {
        int cfd = fake_accept(f->lfd, f->secret, &f->conns, &f->tls_up, &f->tls_refused);
        if (cfd >= 0)
            fake_serve(cfd, 64u << 20, &f->stop, fake_frame, f);
    }
    return NULL;
}

/* A fake server whose TLS key is `secret`'s. */
static fake_srv *fake_start(const char *secret)
{
    fake_srv *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    snprintf(f->secret, sizeof f->secret, "%s", secret);
    pp_auth_key k;
    if (rt_key(secret, &k) != 0 || (f->lfd = fake_listen(&f->port)) < 0) {
        free(f);
        return NULL;
    }
    pp_auth_wipe(&k, sizeof k); /* derived now, not in the thread */
    if (pthread_create(&f->th, NULL, fake_main, f) != 0) {
        close(f->lfd);
        free(f);
        return NULL;
    }
    f->running = 1;
    return f;
}

static void fake_stop(fake_srv *f)
{
    if (!f->running)
        return;
    atomic_store(&f->stop, 1);
    pthread_join(f->th, NULL);
    close(f->lfd);
    f->running = 0;
}

/* A fake server gets no job.  Round 0: it holds the TLS key of the
 * client's secret (K_psk alone -- as a node authenticated by certificates
 * would, or one that learned K_psk) but not K_auth: the TLS session comes
 * up, HELLO and PROOF reach it, and its ACCEPT proves nothing.  Round 1:
 * it does not know the secret at all: its TLS handshake refuses our key,
 * and not one frame reaches it.  Either way: AUTH_FAILED, the jobs run
 * locally, nothing but HELLO and PROOF ever went there. */
static void test_a2_fake_server(void)
{
    static const char secret[] = "a-good-long-secret-0123456789abcdef";
    for (int round = 0; round < 2; round++) {
        the_fake = fake_start(round == 0 ? secret : "the-fake-knows-another-secret-0123456789");
        CU_ASSERT_PTR_NOT_NULL_FATAL(the_fake);
        fake_srv *f = the_fake;
        char name[64];
        snprintf(name, sizeof name, "127.0.0.1:%d", f->port);
        const char *list[] = {name, NULL};
        pp_server *s = pp_server_new(&(pp_config){.ncpus = 0, .ppservers = list, .secret = secret});
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        cl_track(s);
        /* Jobs wait for a node: the fake one is the only one. */
        pp_job *jobs[10];
        for (long i = 0; i < 10; i++)
            jobs[i] = pp_submitf(s, t_square, NULL, "l", i);
        CU_ASSERT(cl_wait_state(s, name, PP_NODE_AUTH_FAILED, 5));
        sleep_s(0.3); /* a client that sent jobs anyway would have done so by now */
        CU_ASSERT_EQUAL(pp_set_ncpus(s, 1), 0);
        CU_ASSERT_EQUAL(cl_wait_jobs(jobs, 10, 30), 10);
        for (long i = 0; i < 10; i++) {
            long v = -1;
            CU_ASSERT(pp_job_unpack(jobs[i], "l", &v) == 0 && v == i * i);
            CU_ASSERT_STRING_EQUAL(pp_job_node(jobs[i]), "local");
            pp_job_free(jobs[i]);
        }
        CU_ASSERT_EQUAL(cl_node_state(s, name), PP_NODE_AUTH_FAILED);
        cl_client_free(s);
        fake_stop(f);
        printf("\n    round %d: %d connections, %d TLS sessions, %d refused for the key ", round,
               atomic_load(&f->conns), atomic_load(&f->tls_up), atomic_load(&f->tls_refused));
        CU_ASSERT(atomic_load(&f->conns) >= 1);
        if (round == 0) {
            CU_ASSERT(atomic_load(&f->tls_up) >= 1);
            CU_ASSERT(atomic_load(&f->seen[PP_T_HELLO]) >= 1);
            CU_ASSERT(atomic_load(&f->seen[PP_T_PROOF]) >= 1);
        } else {
            CU_ASSERT_EQUAL(atomic_load(&f->tls_up), 0);
            CU_ASSERT(atomic_load(&f->tls_refused) >= 1);
            CU_ASSERT_EQUAL(atomic_load(&f->seen[PP_T_HELLO]), 0);
        }
        int other = 0;
        for (int t = 0; t < 256; t++)
            if (t != PP_T_HELLO && t != PP_T_PROOF && atomic_load(&f->seen[t]))
                other++, fprintf(stderr, "the client sent the fake server frame type %d\n", t);
        CU_ASSERT_EQUAL(atomic_load(&f->seen[PP_T_RJOB]), 0);
        CU_ASSERT_EQUAL(atomic_load(&f->seen[PP_T_MODULE]), 0);
        CU_ASSERT_EQUAL(other, 0);
        free(the_fake);
        the_fake = NULL;
    }
}

static void test_a3_replay_reflection(void)
{
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-w", "1", "--auth-delay", "0.05")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    int fds0 = warm_fds(h);
    hs_state first;
    int fd1 = raw_auth(h->port, h->secret, &first);
    CU_ASSERT_FATAL(fd1 >= 0);
    CU_ASSERT_EQUAL(first.ver, PP_PROTO_MAX);
    CU_ASSERT_EQUAL(first.ncpus, 1);
    CU_ASSERT(first.bound); /* a TLS session, whose binding the proofs cover */
    pp_auth_key k;
    CU_ASSERT_EQUAL_FATAL(rt_key(h->secret, &k), 0);

    /* Replay: the same HELLO (same client nonce), the recorded PROOF. */
    int fd = raw_connect(h);
    CU_ASSERT_FATAL(fd >= 0);
    hs_state x;
    memset(&x, 0, sizeof x);
    CU_ASSERT_EQUAL(raw_hello(fd, &x, PP_PROTO_MAX, PP_PROTO_MAX, first.nc), 0);
    CU_ASSERT_EQUAL_FATAL(raw_challenge(fd, &x), 0);
    CU_ASSERT(memcmp(x.ns, first.ns, PP_NONCE_LEN) != 0); /* a fresh server nonce */
    CU_ASSERT_EQUAL(send_frame(fd, PP_T_PROOF, 0, 0, first.proof, PP_MAC_LEN), 0);
    refusal rf = expect_close(fd, 5);
    CU_ASSERT(rf.got_error && rf.code == PP_E_AUTH && rf.closed && rf.other == 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(rf.msg, "authentication failed"));
    raw_close(fd);

    /* Reflection: the server's own ACCEPT MAC sent back as a PROOF... */
    fd = raw_connect(h);
    CU_ASSERT_FATAL(fd >= 0);
    memset(&x, 0, sizeof x);
    CU_ASSERT_EQUAL(raw_hello(fd, &x, PP_PROTO_MAX, PP_PROTO_MAX, first.nc), 0);
    CU_ASSERT_EQUAL_FATAL(raw_challenge(fd, &x), 0);
    CU_ASSERT_EQUAL(send_frame(fd, PP_T_PROOF, 0, 0, first.accept, PP_MAC_LEN), 0);
    rf = expect_close(fd, 5);
    CU_ASSERT(rf.got_error && rf.code == PP_E_AUTH && rf.closed && rf.other == 0);
    raw_close(fd);

    /* ...and the server-role MAC over this very session (what reflecting
     * the server's proof would give): the role label refuses it. */
    fd = raw_connect(h);
    CU_ASSERT_FATAL(fd >= 0);
    memset(&x, 0, sizeof x);
    CU_ASSERT_EQUAL(raw_hello(fd, &x, PP_PROTO_MAX, PP_PROTO_MAX, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(raw_challenge(fd, &x), 0);
    uint8_t mac[PP_MAC_LEN];
    pp_auth_proof(&k, PP_ROLE_SERVER, x.ver, x.nc, x.ns, x.transcript, mac);
    CU_ASSERT_EQUAL(send_frame(fd, PP_T_PROOF, 0, 0, mac, PP_MAC_LEN), 0);
    rf = expect_close(fd, 5);
    CU_ASSERT(rf.got_error && rf.code == PP_E_AUTH && rf.closed && rf.other == 0);
    raw_close(fd);

    /* A relay holding the TLS key (a man in the middle with K_psk): it
     * runs a TLS session with the client and one with the node, and
     * passes HELLO, CHALLENGE and PROOF along.  The client's proof is the
     * right one -- K_auth, this very HELLO and CHALLENGE -- but made over
     * the binding of the client's session, not of the relay's: refused.
     * So is the same proof over the unbound transcript (as on plaintext). */
    const uint8_t *bindings[] = {first.binding, NULL};
    for (size_t i = 0; i < PP_ARRAY_LEN(bindings); i++) {
        fd = raw_connect(h);
        CU_ASSERT_FATAL(fd >= 0);
        memset(&x, 0, sizeof x);
        CU_ASSERT_EQUAL(raw_hello(fd, &x, PP_PROTO_MIN, PP_PROTO_MAX, NULL), 0);
        CU_ASSERT_EQUAL_FATAL(raw_challenge(fd, &x), 0);
        CU_ASSERT(memcmp(x.binding, first.binding, sizeof x.binding) != 0);
        uint8_t t_other[PP_SHA256_LEN];
        CU_ASSERT_EQUAL_FATAL(hs_transcript(&x, bindings[i], t_other), 0);
        pp_auth_proof(&k, PP_ROLE_CLIENT, x.ver, x.nc, x.ns, t_other, mac);
        CU_ASSERT_EQUAL(send_frame(fd, PP_T_PROOF, 0, 0, mac, PP_MAC_LEN), 0);
        rf = expect_close(fd, 5);
        if (!(rf.got_error && rf.code == PP_E_AUTH && rf.closed && rf.other == 0))
            fprintf(stderr, "\n    A3 a proof over %s: error %d (%s), closed %d, other %d\n",
                    bindings[i] ? "another session's binding" : "the unbound transcript",
                    rf.code, rf.msg, rf.closed, rf.other);
        CU_ASSERT(rf.got_error && rf.code == PP_E_AUTH && rf.closed && rf.other == 0);
        raw_close(fd);
    }

    /* The first, honest session still works: a ping is answered. */
    CU_ASSERT_EQUAL(send_frame(fd1, PP_T_PING, 0, 77, NULL, 0), 0);
    pp_frame_hdr fh;
    int got_pong = 0;
    double end = now_s() + 5;
    while (!got_pong && now_s() < end) {
        if (read_frame(fd1, end - now_s(), &fh, NULL) != 1)
            break;
        got_pong = fh.type == PP_T_PONG && fh.id == 77;
    }
    CU_ASSERT(got_pong);
    raw_close(fd1);
    pp_auth_wipe(&k, sizeof k);
    CU_ASSERT(srv_log_count(h, ARGS("127.0.0.1:", "authentication failed")) >= 5);
    CU_ASSERT_EQUAL(settle_fds(h, fds0), fds0);
    CU_ASSERT(served(h));
}

static void test_a4_version_mismatch(void)
{
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-w", "1")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    int fds0 = warm_fds(h);
    int fd = raw_connect(h);
    CU_ASSERT_FATAL(fd >= 0);
    hs_state x;
    CU_ASSERT_EQUAL(raw_hello(fd, &x, 9, 9, NULL), 0);
    refusal rf = expect_close(fd, 5);
    CU_ASSERT(rf.got_error);
    CU_ASSERT_EQUAL(rf.code, PP_E_VERSION);
    CU_ASSERT_PTR_NOT_NULL(strstr(rf.msg, "9..9"));
    CU_ASSERT_PTR_NOT_NULL(strstr(rf.msg, "2..2"));
    CU_ASSERT(rf.closed);
    CU_ASSERT_EQUAL(rf.other, 0);
    raw_close(fd);
    /* A version 1 client (before priorities, CANCEL and batches): the same
     * refusal, naming both ranges, so that its user knows to upgrade. */
    fd = raw_connect(h);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(raw_hello(fd, &x, 1, 1, NULL), 0);
    rf = expect_close(fd, 5);
    CU_ASSERT(rf.got_error && rf.closed && rf.other == 0);
    CU_ASSERT_EQUAL(rf.code, PP_E_VERSION);
    CU_ASSERT_PTR_NOT_NULL(strstr(rf.msg, "client speaks 1..1, server speaks 2..2"));
    raw_close(fd);
    CU_ASSERT_EQUAL(settle_fds(h, fds0), fds0);
    CU_ASSERT(served(h));
}

static void test_a5_not_our_protocol(void)
{
    /* The handshake deadline stays long (10 s): closing within 1 s must come
     * from recognising foreign bytes, not from the deadline. */
    srv_harness *h =
        cl_server_start(&(srv_opts){.args = ARGS("-w", "1", "--handshake-timeout", "10")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    int fds0 = warm_fds(h);
    uint8_t rnd[64], zeros[64], tls[64];
    pp_auth_nonce(rnd);
    pp_auth_nonce(rnd + 32);
    rnd[0] = 'X'; /* never the magic by chance */
    memset(zeros, 0, sizeof zeros);
    /* TLS record: handshake, TLS 1.0 record version, length; ClientHello,
     * its length, client version 3.3, then random bytes. */
    static const uint8_t tls_head[] = {0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00,
                                       0xc4, 0x03, 0x03};
    memcpy(tls, tls_head, sizeof tls_head);
    pp_auth_nonce(tls + sizeof tls_head);
    memset(tls + sizeof tls_head + 32, 0, sizeof tls - sizeof tls_head - 32);
    static const char get[] = "GET / HTTP/1.0\r\n\r\n";
    struct {
        const char *what;
        const void *p;
        size_t n;
    } cases[] = {{"GET /", get, sizeof get - 1},
                 {"64 random bytes", rnd, sizeof rnd},
                 {"64 zero bytes", zeros, sizeof zeros},
                 {"TLS ClientHello", tls, sizeof tls}};
    /* Inside a TLS session: ppserver's frame parser recognises them. */
    for (size_t i = 0; i < PP_ARRAY_LEN(cases); i++) {
        int fd = raw_connect(h);
        CU_ASSERT_FATAL(fd >= 0);
        CU_ASSERT_EQUAL(send_all(fd, cases[i].p, cases[i].n), 0);
        double t = wait_closed(fd, 3);
        if (t < 0 || t >= 1.0)
            fprintf(stderr, "\n    A5 %s (%zu bytes) in TLS: %s after %.2f s\n",
                    cases[i].what, cases[i].n, t < 0 ? "still open" : "closed",
                    t < 0 ? 3.0 : t);
        CU_ASSERT(t >= 0 && t < 1.0);
        raw_close(fd);
        CU_ASSERT(srv_alive(h));
    }
    /* ... as frames: TLS carried them to the parser, which refused them. */
    CU_ASSERT_EQUAL(log_lines(h, ARGS("127.0.0.1:", "connection closed: not a pp frame"),
                              (int)PP_ARRAY_LEN(cases)),
                    (int)PP_ARRAY_LEN(cases));
    /* The same bytes on TCP, where a ClientHello belongs: the node's TLS
     * handshake fails on them at once, and it says so in its log.  (The
     * ClientHello above declares 200 bytes and brings 64, which a TLS
     * stack rightly waits for: here a complete record holding a
     * malformed one.)  And a plaintext pp client's HELLO, which the node
     * answers with PP_E_TLS: it requires TLS. */
    static const uint8_t bad_head[] = {0x16, 0x03, 0x01, 0x00, 64 - 5, 0x01, 0x00, 0x00,
                                       64 - 9, 0x03, 0x03};
    memcpy(tls, bad_head, sizeof bad_head);
    uint8_t hello[PP_WIRE_HDR + PP_HELLO_LEN];
    pp_wire_encode_hdr(hello, PP_T_HELLO, 0, 0, PP_HELLO_LEN);
    hello[PP_WIRE_HDR] = PP_PROTO_MIN;
    hello[PP_WIRE_HDR + 1] = PP_PROTO_MAX;
    pp_auth_nonce(hello + PP_WIRE_HDR + 2);
    int failed0 = srv_log_count(h, ARGS("127.0.0.1:", "connection closed: handshake failed"));
    for (size_t i = 0; i <= PP_ARRAY_LEN(cases); i++) {
        int plain = i == PP_ARRAY_LEN(cases);
        const char *what = plain ? "a plaintext HELLO" : cases[i].what;
        int fd = tcp_connect(h->port);
        CU_ASSERT_FATAL(fd >= 0);
        CU_ASSERT_EQUAL(plain ? send_all(fd, hello, sizeof hello)
                              : send_all(fd, cases[i].p, cases[i].n),
                        0);
        refusal rf = expect_close(fd, 3);
        int ok = rf.closed && rf.secs < 1.0 &&
                 (plain ? rf.other == 0 && (!rf.got_error || rf.code == PP_E_TLS)
                        : rf.other <= 1 && !rf.got_error); /* an alert: no frame */
        if (!ok)
            fprintf(stderr, "\n    A5 %s on TCP: closed %d after %.2f s, error %d (%s), "
                            "other %d\n", what, rf.closed, rf.secs, rf.code, rf.msg, rf.other);
        CU_ASSERT(ok);
        raw_close(fd);
        CU_ASSERT(srv_alive(h));
    }
    int want = failed0 + (int)PP_ARRAY_LEN(cases) + 1;
    CU_ASSERT_EQUAL(log_lines(h, ARGS("127.0.0.1:", "connection closed: handshake failed"), want),
                    want);
    CU_ASSERT_EQUAL(log_lines(h, ARGS("the client speaks plaintext"), 1), 1);
    CU_ASSERT_EQUAL(settle_fds(h, fds0), fds0);
    CU_ASSERT(served(h));
}

static void test_a6_refuses_to_start(void)
{
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-w", "1")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    char shortf[400], openf[400], cache[400];
    snprintf(shortf, sizeof shortf, "%s/short-secret", h->dir);
    snprintf(openf, sizeof openf, "%s/open-secret", h->dir);
    snprintf(cache, sizeof cache, "%s/cache2", h->dir);
    FILE *fp = fopen(shortf, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fputs("0123456789\n", fp); /* 10 bytes */
    fclose(fp);
    chmod(shortf, 0600);
    fp = fopen(openf, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fprintf(fp, "%s\n", h->secret); /* a good secret, in a file others may read */
    fclose(fp);
    CU_ASSERT_EQUAL(chmod(openf, 0644), 0);
    /* A configuration file with a secret line that others may read. */
    char openconf[400];
    snprintf(openconf, sizeof openconf, "%s/open.conf", h->dir);
    fp = fopen(openconf, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fprintf(fp, "secret %s\n", h->secret);
    fclose(fp);
    CU_ASSERT_EQUAL(chmod(openconf, 0644), 0);
    struct {
        const char *what;
        const char *const *argv;
        const char *env_secret;
        const char *needle;
    } cases[] = {
        {"no secret", ARGS("ppserver", "-i", "127.0.0.1", "-p", "0", "--cache-dir", cache),
         NULL, "no secret"},
        {"10-byte secret file",
         ARGS("ppserver", "-i", "127.0.0.1", "-p", "0", "--cache-dir", cache, "--secret-file",
              shortf),
         NULL, "too short"},
        {"10-byte PP_SECRET", ARGS("ppserver", "-i", "127.0.0.1", "-p", "0", "--cache-dir", cache),
         "0123456789", "too short"},
        {"10-byte -s", ARGS("ppserver", "-i", "127.0.0.1", "-p", "0", "--cache-dir", cache, "-s",
                            "0123456789"),
         NULL, "too short"},
        {"secret file mode 0644",
         ARGS("ppserver", "-i", "127.0.0.1", "-p", "0", "--cache-dir", cache, "--secret-file",
              openf),
         NULL, "readable by others"},
        {"the shipped configuration's example secret",
         ARGS("ppserver", "-i", "127.0.0.1", "-p", "0", "--cache-dir", cache, "-s",
              "use-a-generated-secret-instead"),
         NULL, "example of the shipped configuration"},
        {"a secret line in a configuration file of mode 0644",
         ARGS("ppserver", "-i", "127.0.0.1", "-p", "0", "--cache-dir", cache, "-c", openconf),
         NULL, "readable by others"},
    };
    for (size_t i = 0; i < PP_ARRAY_LEN(cases); i++) {
        char *err = NULL;
        int st = srv_run_once(cases[i].argv, cases[i].env_secret, 10, &err);
        int refused = st != -1 && WIFEXITED(st) && WEXITSTATUS(st) != 0;
        int says = err && strstr(err, cases[i].needle) != NULL;
        if (!refused || !says)
            fprintf(stderr, "\n    A6 %s: status 0x%x, stderr: %s\n", cases[i].what, st,
                    err ? err : "(none)");
        CU_ASSERT(refused);
        CU_ASSERT(says);
        free(err);
    }
    CU_ASSERT(served(h));
}

static void test_a7_secret_on_command_line(void)
{
    /* -s SECRET, and PP_SECRET in its environment as well: neither may reach
     * a worker. */
    char secret[65];
    CU_ASSERT_EQUAL_FATAL(pp_auth_gen_secret(secret), 0);
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-w", "1", "-s", secret),
                                 .no_secret_file = 1,
                                 .env_secret = secret});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    snprintf(h->secret, sizeof h->secret, "%s", secret);
    char *err = srv_read_stderr(h);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "warning"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "process list"));
    free(err);
    pp_server *s = client_new(&(client_cfg){.ncpus = 0}, &h, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_job *a = pp_submit(s, t_getenv, "PP_SECRET", 9, NULL);
    pp_job *b = pp_submit(s, t_getenv, "PATH", 4, NULL);
    pp_job *both[] = {a, b};
    CU_ASSERT_EQUAL(cl_wait_jobs(both, 2, 30), 2);
    CU_ASSERT_EQUAL(pp_job_status(a), PP_DONE);
    const char *va = pp_job_result(a, NULL);
    CU_ASSERT(va && strcmp(va, "(unset)") == 0);
    const char *vb = pp_job_result(b, NULL);
    CU_ASSERT(vb && strcmp(vb, "(unset)") != 0); /* the task does see its environment */
    char name[64];
    cl_node_name(h, name, sizeof name);
    CU_ASSERT_STRING_EQUAL(pp_job_node(a), name);
    pp_job_free(a);
    pp_job_free(b);
    cl_client_free(s);
    CU_ASSERT(served(h));
}

/* ==== slow and many connections (B) ================================= */

/* A connection that stays silent until the node's handshake deadline, of
 * one of the two kinds a TLS node must bound: plain TCP that never even
 * starts TLS, and TLS that comes up but never sends HELLO. */
enum { SILENT_TCP, SILENT_TLS };
static const char *const silent_kinds[] = {"plain TCP, no ClientHello", "TLS up, no HELLO"};

static int silent_connect_from(const char *src, const srv_harness *h, int kind)
{
    return kind == SILENT_TLS ? tls_connect_from(src, h->port, h->secret)
                              : tcp_connect_from(src, h->port);
}

static int silent_connect(const srv_harness *h, int kind)
{
    return silent_connect_from(NULL, h, kind);
}

/* Sends one byte of p every `gap` seconds until the node closes the
 * connection or `limit` seconds passed: seconds from t0 until it closed,
 * or -1.  Within TLS each byte is a record of its own. */
static double trickle(int fd, const uint8_t *p, size_t n, double gap, double t0, double limit)
{
    for (size_t i = 0; i < n && now_s() - t0 < limit; i++) {
        if (send_all(fd, p + i, 1) != 0)
            return now_s() - t0; /* refused: closed */
        if (wait_closed(fd, gap) >= 0)
            return now_s() - t0;
    }
    return -1;
}

static void test_b1_handshake_deadline(void)
{
    srv_harness *h =
        cl_server_start(&(srv_opts){.args = ARGS("-w", "1", "--handshake-timeout", "1")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    int fds0 = warm_fds(h);
    /* Silent: on TCP, and within TLS.  The deadline counts from the
     * connection, TLS included. */
    for (int kind = 0; kind < 2; kind++) {
        double t0 = now_s();
        int fd = silent_connect(h, kind);
        CU_ASSERT_FATAL(fd >= 0);
        double t = wait_closed(fd, 4);
        t = t >= 0 ? now_s() - t0 : -1;
        printf("\n    silent connection (%s) closed after %.2f s ", silent_kinds[kind], t);
        CU_ASSERT(t >= 0.9 && t <= 1.6);
        raw_close(fd);
    }
    /* Trickle a valid HELLO within TLS, one byte (one record) per 0.3 s:
     * the deadline is total. */
    uint8_t hello[PP_WIRE_HDR + 2 + PP_NONCE_LEN];
    pp_wire_encode_hdr(hello, PP_T_HELLO, 0, 0, 2 + PP_NONCE_LEN);
    hello[PP_WIRE_HDR] = 1;
    hello[PP_WIRE_HDR + 1] = 1;
    pp_auth_nonce(hello + PP_WIRE_HDR + 2);
    double t0 = now_s();
    int fd = raw_connect(h);
    CU_ASSERT_FATAL(fd >= 0);
    double closed_at = trickle(fd, hello, sizeof hello, 0.3, t0, 4);
    printf("\n    trickling connection (HELLO within TLS) closed after %.2f s ", closed_at);
    CU_ASSERT(closed_at >= 0.9 && closed_at <= 1.6);
    raw_close(fd);
    /* Trickle the ClientHello itself on TCP: the TLS handshake is within
     * the deadline too. */
    uint8_t ch[4096];
    size_t chlen = 0;
    CU_ASSERT_EQUAL_FATAL(rt_client_hello(h->secret, ch, sizeof ch, &chlen), 0);
    t0 = now_s();
    fd = tcp_connect(h->port);
    CU_ASSERT_FATAL(fd >= 0);
    closed_at = trickle(fd, ch, chlen, 0.3, t0, 4);
    printf("\n    trickling connection (a %zu-byte ClientHello on TCP) closed after %.2f s ",
           chlen, closed_at);
    CU_ASSERT(closed_at >= 0.9 && closed_at <= 1.6);
    raw_close(fd);
    CU_ASSERT(srv_log_count(h, ARGS("no handshake within")) >= 4);
    CU_ASSERT_EQUAL(settle_fds(h, fds0), fds0);
    CU_ASSERT(served(h));
}

static void test_b2_many_unauthenticated(void)
{
    /* 50 handshakes at most: each connection beyond them closes the oldest
     * one still in its handshake, so idle connections cannot lock a real
     * client out (the default 10 s handshake deadline stays).  All come
     * from one address here: its own cap (8 by default, H3) is raised
     * above the global one, which is what this test is about.  Twice, on
     * a fresh node each (its log lines are rate-limited): connections
     * that never start TLS, then connections whose TLS is up but that
     * never send HELLO. */
    for (int kind = 0; kind < 2; kind++) {
        srv_harness *h = cl_server_start(&(srv_opts){
            .args = ARGS("-w", "1", "--max-unauthenticated", "50",
                         "--max-handshakes-per-address", "64")});
        CU_ASSERT_PTR_NOT_NULL_FATAL(h);
        int fds0 = warm_fds(h);
        enum { N = 200 };
        int fds[N];
        int opened = 0;
        for (int i = 0; i < N; i++) {
            fds[i] = silent_connect(h, kind);
            opened += fds[i] >= 0;
        }
        CU_ASSERT_EQUAL(opened, N);
        /* 150 are closed at once, the 50 newest held. */
        double end = now_s() + 1.5;
        int closed = 0;
        int is_closed[N];
        memset(is_closed, 0, sizeof is_closed);
        do {
            for (int i = 0; i < N; i++) {
                if (fds[i] < 0 || is_closed[i])
                    continue;
                if (rt_closed_now(fds[i])) {
                    is_closed[i] = 1;
                    closed++;
                }
            }
            if (closed >= N - 50)
                break;
            sleep_s(0.02);
        } while (now_s() < end);
        printf("\n    %d of %d unauthenticated connections (%s) closed at once ", closed, N,
               silent_kinds[kind]);
        CU_ASSERT_EQUAL(closed, N - 50);
        int newest_open = 1;
        for (int i = N - 50; i < N; i++)
            newest_open &= !is_closed[i];
        CU_ASSERT(newest_open); /* the oldest went, not the newest */
        double t0 = now_s();
        CU_ASSERT(served_within(h, 10));
        printf("; a real client served after %.2f s ", now_s() - t0);
        CU_ASSERT(now_s() - t0 < 3); /* well before the 10 s handshake deadline */
        for (int i = 0; i < N; i++)
            raw_close(fds[i]);
        CU_ASSERT(srv_log_count(h, ARGS("too many unauthenticated connections")) >= N - 50);
        CU_ASSERT_EQUAL(settle_fds(h, fds0), fds0);
        CU_ASSERT(served(h));
    }
}

/* ==== frames (C) ===================================================== */

static void test_c1_frame_lengths(void)
{
    srv_harness *h = cl_server_start(
        &(srv_opts){.args = ARGS("-w", "1", "--max-frame-mib", "1", "--handshake-timeout", "5")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    int fds0 = warm_fds(h);
    /* Before authentication, within TLS: the frame reader's pre-auth
     * limit.  Then the same bytes as a plaintext client's first ones on
     * TCP: whatever length the header declares, the node tells it at once
     * that it requires TLS (PP_E_TLS) and closes. */
    uint32_t lens[] = {0, PP_PREAUTH_MAX, PP_PREAUTH_MAX + 1, 0xFFFFFFFFu};
    uint8_t *body = calloc(1, PP_PREAUTH_MAX);
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    for (int tcp = 0; tcp < 2; tcp++)
        for (size_t i = 0; i < PP_ARRAY_LEN(lens); i++) {
            int fd = tcp ? tcp_connect(h->port) : raw_connect(h);
            CU_ASSERT_FATAL(fd >= 0);
            uint8_t hdr[PP_WIRE_HDR];
            pp_wire_encode_hdr(hdr, PP_T_HELLO, 0, 0, lens[i]);
            CU_ASSERT_EQUAL(send_all(fd, hdr, sizeof hdr), 0);
            if (lens[i] <= PP_PREAUTH_MAX && lens[i] > 0)
                send_all(fd, body, lens[i]); /* within the limit: the whole frame */
            refusal rf = expect_close(fd, 3);
            int over = tcp || lens[i] > PP_PREAUTH_MAX;
            if (!rf.closed || rf.other || (over && rf.secs > 1.0))
                fprintf(stderr, "\n    C1 HELLO of %u bytes %s: closed %d after %.2f s, error "
                                "%d (%s), other frames %d\n",
                        lens[i], tcp ? "on TCP" : "in TLS", rf.closed, rf.secs, rf.code, rf.msg,
                        rf.other);
            CU_ASSERT(rf.closed);
            CU_ASSERT_EQUAL(rf.other, 0);
            if (rf.got_error)
                CU_ASSERT_EQUAL(rf.code, tcp ? PP_E_TLS : PP_E_PROTOCOL);
            if (over)
                CU_ASSERT(rf.secs < 1.0); /* refused on the header, no body awaited */
            raw_close(fd);
            CU_ASSERT(srv_alive(h));
        }
    CU_ASSERT_EQUAL(log_lines(h, ARGS("the client speaks plaintext"), (int)PP_ARRAY_LEN(lens)),
                    (int)PP_ARRAY_LEN(lens));
    free(body);
    /* After authentication: more than --max-frame-mib 1. */
    hs_state x;
    int fd = raw_auth(h->port, h->secret, &x);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(x.max_frame, 1u << 20);
    uint8_t hdr[PP_WIRE_HDR];
    pp_wire_encode_hdr(hdr, PP_T_RJOB, 0, 1, 2u << 20);
    CU_ASSERT_EQUAL(send_all(fd, hdr, sizeof hdr), 0);
    refusal rf = expect_close(fd, 3);
    CU_ASSERT(rf.closed && rf.secs < 1.0);
    raw_close(fd);
    fd = raw_auth(h->port, h->secret, &x);
    CU_ASSERT_FATAL(fd >= 0);
    pp_wire_encode_hdr(hdr, PP_T_MODULE, 0, 0, 0xFFFFFFFFu);
    CU_ASSERT_EQUAL(send_all(fd, hdr, sizeof hdr), 0);
    rf = expect_close(fd, 3);
    CU_ASSERT(rf.closed && rf.secs < 1.0);
    raw_close(fd);
    CU_ASSERT(srv_status_kb(h->pid, "VmHWM") < 200 * 1024);
    CU_ASSERT_EQUAL(settle_fds(h, fds0), fds0);
    CU_ASSERT(served(h));
}

static void test_c2_truncated_frames(void)
{
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-w", "1")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    int fds0 = warm_fds(h);
    uint8_t hdr[PP_WIRE_HDR], ten[10] = {1, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    /* Within TLS (the end: close_notify, then FIN).  Half a header, then
     * EOF. */
    int fd = raw_connect(h);
    CU_ASSERT_FATAL(fd >= 0);
    pp_wire_encode_hdr(hdr, PP_T_HELLO, 0, 0, 2 + PP_NONCE_LEN);
    CU_ASSERT_EQUAL(send_all(fd, hdr, PP_WIRE_HDR / 2), 0);
    raw_shutdown_wr(fd);
    double t = wait_closed(fd, 3);
    CU_ASSERT(t >= 0 && t < 1.0);
    raw_close(fd);
    /* A header declaring 1000 bytes, 10 of them, EOF. */
    fd = raw_connect(h);
    CU_ASSERT_FATAL(fd >= 0);
    pp_wire_encode_hdr(hdr, PP_T_HELLO, 0, 0, 1000);
    CU_ASSERT_EQUAL(send_all(fd, hdr, sizeof hdr), 0);
    CU_ASSERT_EQUAL(send_all(fd, ten, sizeof ten), 0);
    raw_shutdown_wr(fd);
    t = wait_closed(fd, 3);
    CU_ASSERT(t >= 0 && t < 1.0);
    raw_close(fd);
    /* On TCP: half a ClientHello, then EOF: the TLS handshake fails at
     * once, and the node says so. */
    uint8_t ch[4096];
    size_t chlen = 0;
    CU_ASSERT_EQUAL_FATAL(rt_client_hello(h->secret, ch, sizeof ch, &chlen), 0);
    fd = tcp_connect(h->port);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(send_all(fd, ch, chlen / 2), 0);
    raw_shutdown_wr(fd);
    t = wait_closed(fd, 3);
    CU_ASSERT(t >= 0 && t < 1.0);
    raw_close(fd);
    CU_ASSERT_EQUAL(log_lines(h, ARGS("connection closed: handshake failed: TLS handshake"), 1), 1);
    /* The same after authentication, small and large (own allocation)
     * bodies. */
    uint32_t lens[] = {1000, 200000};
    for (size_t i = 0; i < PP_ARRAY_LEN(lens); i++) {
        hs_state x;
        fd = raw_auth(h->port, h->secret, &x);
        CU_ASSERT_FATAL(fd >= 0);
        pp_wire_encode_hdr(hdr, PP_T_RJOB, 0, 5, lens[i]);
        CU_ASSERT_EQUAL(send_all(fd, hdr, sizeof hdr), 0);
        CU_ASSERT_EQUAL(send_all(fd, ten, sizeof ten), 0);
        raw_shutdown_wr(fd);
        refusal rf = expect_close(fd, 3);
        CU_ASSERT(rf.closed && rf.secs < 1.0);
        CU_ASSERT_EQUAL(rf.other, 0); /* no result: no job was queued */
        raw_close(fd);
    }
    CU_ASSERT(srv_alive(h));
    CU_ASSERT(srv_log_count(h, ARGS("end of file inside a frame")) >= 3);
    CU_ASSERT_EQUAL(settle_fds(h, fds0), fds0);
    CU_ASSERT(served(h));
}

static void test_c3_protocol_errors(void)
{
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-w", "1")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    int fds0 = warm_fds(h);
    hs_state x;
    /* A worker-pipe type on TCP after authentication: unexpected. */
    int fd = raw_auth(h->port, h->secret, &x);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(send_frame(fd, 3, 0, 1, "abcd", 4), 0);
    refusal rf = expect_close(fd, 4);
    CU_ASSERT(rf.closed && rf.got_error && rf.code == PP_E_PROTOCOL);
    raw_close(fd);
    /* A type beyond every known one: refused by the frame reader. */
    fd = raw_auth(h->port, h->secret, &x);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(send_frame(fd, PP_T_NET_MAX + 1, 0, 1, NULL, 0), 0);
    rf = expect_close(fd, 4);
    CU_ASSERT(rf.closed && rf.other == 0);
    raw_close(fd);
    /* A JOB whose payload stops inside the module hash. */
    fd = raw_auth(h->port, h->secret, &x);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(send_frame(fd, PP_T_RJOB, 0, 9, "0123456789", 10), 0);
    rf = expect_close(fd, 4);
    CU_ASSERT(rf.closed && rf.got_error && rf.code == PP_E_PROTOCOL);
    raw_close(fd);
    /* A JOB whose symbol length runs past the payload. */
    fd = raw_auth(h->port, h->secret, &x);
    CU_ASSERT_FATAL(fd >= 0);
    uint8_t bad[PP_SHA256_LEN + 2 + 3];
    memset(bad, 0xAB, sizeof bad);
    pp_store16(bad + PP_SHA256_LEN, 200);
    CU_ASSERT_EQUAL(send_frame(fd, PP_T_RJOB, 0, 9, bad, sizeof bad), 0);
    rf = expect_close(fd, 4);
    CU_ASSERT(rf.closed && rf.got_error && rf.code == PP_E_PROTOCOL);
    raw_close(fd);
    /* A JOB (or a PROOF) before the handshake. */
    fd = raw_connect(h);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(send_frame(fd, PP_T_RJOB, 0, 1, "abcd", 4), 0);
    rf = expect_close(fd, 4);
    CU_ASSERT(rf.closed && rf.other == 0);
    if (rf.got_error)
        CU_ASSERT_EQUAL(rf.code, PP_E_PROTOCOL);
    raw_close(fd);
    /* A JOB naming a module the node does not have: it asks for it. */
    fd = raw_auth(h->port, h->secret, &x);
    CU_ASSERT_FATAL(fd >= 0);
    uint8_t hash[PP_SHA256_LEN];
    pp_auth_nonce(hash);
    pp_buf b;
    job_payload(&b, hash, "t_echo", "x", 1);
    CU_ASSERT_EQUAL(send_frame(fd, PP_T_RJOB, 0, 42, b.data, b.len), 0);
    pp_buf_reset(&b);
    pp_frame_hdr fh;
    uint8_t *p = NULL;
    int got = 0;
    double end = now_s() + 5;
    while (!got && now_s() < end) {
        int r = read_frame(fd, end - now_s(), &fh, &p);
        if (r != 1)
            break;
        if (fh.type == PP_T_NEED)
            got = fh.len == PP_SHA256_LEN && memcmp(p, hash, PP_SHA256_LEN) == 0 ? 1 : -1;
        free(p);
        p = NULL;
    }
    CU_ASSERT_EQUAL(got, 1);
    raw_close(fd);
    CU_ASSERT(srv_alive(h));
    CU_ASSERT_EQUAL(settle_fds(h, fds0), fds0);
    CU_ASSERT(served(h));
}

/* ==== compressed input (D) =========================================== */

/* A MODULE payload: hash, then `zip` (a pp_zip payload). */
static int send_module(int fd, const uint8_t hash[PP_SHA256_LEN], const void *zip, size_t n)
{
    uint8_t *p = malloc(PP_SHA256_LEN + n);
    if (!p)
        return -1;
    memcpy(p, hash, PP_SHA256_LEN);
    memcpy(p + PP_SHA256_LEN, zip, n);
    int rc = send_frame(fd, PP_T_MODULE, 0, 0, p, PP_SHA256_LEN + n);
    free(p);
    return rc;
}

/* Makes the node ask this connection for module `hash` -- a JOB naming it,
 * then the node's NEED -- since it takes a MODULE frame only when asked
 * for.  1 when the NEED came. */
static int make_node_ask(int fd, const uint8_t hash[PP_SHA256_LEN])
{
    pp_buf b;
    job_payload(&b, hash, "t_echo", "x", 1);
    int ok = send_frame(fd, PP_T_RJOB, 0, 4242, b.data, b.len) == 0;
    pp_buf_reset(&b);
    double end = now_s() + 5;
    while (ok && now_s() < end) {
        pp_frame_hdr fh;
        uint8_t *p = NULL;
        if (read_frame(fd, end - now_s(), &fh, &p) != 1)
            break;
        int need = fh.type == PP_T_NEED && fh.len == PP_SHA256_LEN &&
                   memcmp(p, hash, PP_SHA256_LEN) == 0;
        free(p);
        if (need)
            return 1;
    }
    return 0;
}

static void test_d1_zlib_bomb(void)
{
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-w", "1", "--max-frame-mib", "1")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    int fds0 = warm_fds(h);
    long rss0 = srv_status_kb(h->pid, "VmRSS");
    /* A valid deflate stream of 8 MiB of zeros (about 8 KiB), with the
     * declared size then raised: the receiver must refuse before inflating. */
    size_t zn = 8u << 20;
    uint8_t *zeros = calloc(1, zn);
    CU_ASSERT_PTR_NOT_NULL_FATAL(zeros);
    void *zip = NULL;
    size_t ziplen = 0;
    CU_ASSERT_EQUAL_FATAL(pp_zip_deflate(zeros, zn, 9, &zip, &ziplen), 0);
    free(zeros);
    CU_ASSERT(ziplen < 64 * 1024);
    uint32_t declared[] = {0xFFFFFFF0u, 1u << 30, 200u << 20};
    for (size_t i = 0; i < PP_ARRAY_LEN(declared); i++) {
        hs_state x;
        int fd = raw_auth(h->port, h->secret, &x);
        CU_ASSERT_FATAL(fd >= 0);
        pp_store32(zip, declared[i]);
        uint8_t hash[PP_SHA256_LEN];
        pp_auth_nonce(hash);
        CU_ASSERT(make_node_ask(fd, hash));
        CU_ASSERT_EQUAL(send_module(fd, hash, zip, ziplen), 0);
        refusal rf = expect_close(fd, 5);
        if (!rf.got_error || !rf.closed)
            fprintf(stderr, "\n    D1 module declaring %u bytes: error %d (%s), closed %d\n",
                    declared[i], rf.got_error, rf.msg, rf.closed);
        CU_ASSERT(rf.got_error && rf.closed);
        CU_ASSERT(rf.code == PP_E_LIMIT || rf.code == PP_E_PROTOCOL);
        raw_close(fd);
        CU_ASSERT(srv_alive(h));
    }
    /* The same bomb in a compressed JOB frame. */
    hs_state x;
    int fd = raw_auth(h->port, h->secret, &x);
    CU_ASSERT_FATAL(fd >= 0);
    pp_store32(zip, 0xFFFFFFF0u);
    CU_ASSERT_EQUAL(send_frame(fd, PP_T_RJOB, PP_WIRE_F_ZLIB, 3, zip, ziplen), 0);
    refusal rf = expect_close(fd, 5);
    CU_ASSERT(rf.got_error && rf.closed && rf.code == PP_E_LIMIT);
    raw_close(fd);
    free(zip);
    long rss = srv_status_kb(h->pid, "VmRSS"), hwm = srv_status_kb(h->pid, "VmHWM");
    printf("\n    ppserver VmRSS %ld kB -> %ld kB, peak %ld kB ", rss0, rss, hwm);
    CU_ASSERT(rss > 0 && rss < 200 * 1024);
    CU_ASSERT(hwm > 0 && hwm < 200 * 1024);
    CU_ASSERT_EQUAL(settle_fds(h, fds0), fds0);
    CU_ASSERT(served(h));
}

static void test_d2_bad_streams(void)
{
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-w", "1", "--log-level", "info")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    int fds0 = warm_fds(h);
    int stored0 = srv_log_count(h, ARGS("module ", " stored"));
    CU_ASSERT_EQUAL(stored0, 1); /* the normal client's */
    size_t n = 200000;
    uint8_t *data = malloc(n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    for (size_t i = 0; i < n; i++)
        data[i] = (uint8_t)((i * 7) ^ (i >> 9));
    uint8_t hash[PP_SHA256_LEN];
    pp_sha256(data, n, hash);
    void *good = NULL;
    size_t glen = 0;
    CU_ASSERT_EQUAL_FATAL(pp_zip_deflate(data, n, 6, &good, &glen), 0);
    uint8_t *bad = malloc(glen + 16);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bad);
    enum { CORRUPT, TRUNCATED, TRAILING, TOO_SHORT, DECLARED_LESS, DECLARED_MORE, WRONG_HASH,
           NCASES };
    static const char *names[] = {"corrupt", "truncated", "trailing garbage", "no length",
                                  "declared too small", "declared too large", "wrong hash"};
    for (int c = 0; c < NCASES; c++) {
        memcpy(bad, good, glen);
        size_t blen = glen;
        uint8_t hsh[PP_SHA256_LEN];
        memcpy(hsh, hash, sizeof hsh);
        switch (c) {
        case CORRUPT:
            for (size_t k = 4 + glen / 3; k < 4 + glen / 3 + 16; k++)
                bad[k] ^= 0x5A;
            break;
        case TRUNCATED:
            blen = glen - 20;
            break;
        case TRAILING:
            memcpy(bad + glen, "GARBAGE!", 8);
            blen = glen + 8;
            break;
        case TOO_SHORT:
            blen = 2;
            break;
        case DECLARED_LESS:
            pp_store32(bad, (uint32_t)n - 1);
            break;
        case DECLARED_MORE:
            pp_store32(bad, (uint32_t)n + 1);
            break;
        case WRONG_HASH:
            hsh[0] ^= 1;
            break;
        }
        hs_state x;
        int fd = raw_auth(h->port, h->secret, &x);
        CU_ASSERT_FATAL(fd >= 0);
        CU_ASSERT(make_node_ask(fd, hsh));
        CU_ASSERT_EQUAL(send_module(fd, hsh, bad, blen), 0);
        refusal rf = expect_close(fd, 5);
        if (!rf.got_error || !rf.closed)
            fprintf(stderr, "\n    D2 %s: error %d, closed %d\n", names[c], rf.got_error,
                    rf.closed);
        CU_ASSERT(rf.got_error && rf.closed);
        raw_close(fd);
        CU_ASSERT(srv_alive(h));
    }
    CU_ASSERT_EQUAL(srv_log_count(h, ARGS("module ", " stored")), stored0);
    /* The intact payload is taken. */
    hs_state x;
    int fd = raw_auth(h->port, h->secret, &x);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT(make_node_ask(fd, hash));
    CU_ASSERT_EQUAL(send_module(fd, hash, good, glen), 0);
    CU_ASSERT_EQUAL(send_frame(fd, PP_T_PING, 0, 5, NULL, 0), 0);
    pp_frame_hdr fh;
    int pong = 0, err = 0;
    double end = now_s() + 5;
    while (!pong && !err && now_s() < end) {
        if (read_frame(fd, end - now_s(), &fh, NULL) != 1)
            break;
        pong = fh.type == PP_T_PONG;
        err = fh.type == PP_T_ERROR;
    }
    CU_ASSERT(pong && !err);
    raw_close(fd);
    CU_ASSERT_EQUAL(srv_log_count(h, ARGS("module ", " stored")), stored0 + 1);
    free(bad);
    free(good);
    free(data);
    CU_ASSERT_EQUAL(settle_fds(h, fds0), fds0);
    CU_ASSERT(served(h));
}

/* ==== node failures (F) ============================================== */

/* Two `-w 2` nodes sharing a secret, and a client of both with the nodes
 * up (fatal otherwise). */
static pp_server *two_nodes(const client_cfg *cfg, srv_harness **a, srv_harness **b)
{
    *a = cl_server_start(&(srv_opts){.args = ARGS("-w", "2")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(*a);
    *b = cl_server_start(&(srv_opts){.args = ARGS("-w", "2"), .share_secret = *a});
    CU_ASSERT_PTR_NOT_NULL_FATAL(*b);
    srv_harness *hs[] = {*a, *b};
    pp_server *s = client_new(cfg, hs, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_FATAL(cl_wait_up(s, *a, 10) && cl_wait_up(s, *b, 10));
    return s;
}

static void test_f1_kill9_mid_batch(void)
{
    srv_harness *a, *b;
    pp_server *s = two_nodes(&(client_cfg){.ncpus = 0}, &a, &b);
    char na[64], nb[64];
    cl_node_name(a, na, sizeof na);
    cl_node_name(b, nb, sizeof nb);
    track_reset();
    enum { N = 40 };
    pp_job *jobs[N];
    submit_tracked_sleeps(s, jobs, N, 100);
    CU_ASSERT(wait_total(4, 20) >= 4);
    double killed_at = now_s();
    srv_kill9(a);
    CU_ASSERT(wait_total(N, 30) == N);
    sleep_s(0.3); /* a duplicate would show up now */
    int done = 0, once = 0, placed = 0, on_a = 0;
    for (int i = 0; i < N; i++) {
        done += pp_job_status(jobs[i]) == PP_DONE;
        once += atomic_load(&trk.calls[i]) == 1;
        const char *n = pp_job_node(jobs[i]);
        /* On the survivor, or on the killed node before the kill (a result
         * already in the socket may be read just after it). */
        if (strcmp(n, nb) == 0)
            placed++;
        else if (strcmp(n, na) == 0 && trk.when[i] <= killed_at + 0.5)
            placed++, on_a++;
        else
            fprintf(stderr, "job %d ran on \"%s\" at %+.3f s from the kill\n", i, n,
                    trk.when[i] - killed_at);
        pp_job_free(jobs[i]);
    }
    CU_ASSERT_EQUAL(done, N);
    CU_ASSERT_EQUAL(once, N);
    CU_ASSERT_EQUAL(placed, N);
    CU_ASSERT(on_a < N);
    int st = cl_node_state(s, na);
    CU_ASSERT(st == PP_NODE_DOWN || st == PP_NODE_CONNECTING);
    cl_client_free(s);
    CU_ASSERT(served(b));
}

static void test_f2_frozen_node(void)
{
    srv_harness *a, *b;
    pp_server *s = two_nodes(&(client_cfg){.ncpus = 0, .node_timeout = 1, .heartbeat = 0.2}, &a, &b);
    char na[64], nb[64];
    cl_node_name(a, na, sizeof na);
    cl_node_name(b, nb, sizeof nb);
    track_reset();
    enum { N = 40 };
    pp_job *jobs[N];
    submit_tracked_sleeps(s, jobs, N, 100);
    CU_ASSERT(wait_total(4, 20) >= 4);
    double frozen_at = now_s();
    CU_ASSERT_EQUAL(srv_freeze(a), 0);
    CU_ASSERT(wait_total(N, 10) == N);
    double took = now_s() - frozen_at;
    printf("\n    all jobs done %.2f s after the freeze ", took);
    CU_ASSERT(took < 10);
    /* The heartbeat gave up on the frozen node. */
    double end = now_s() + 3;
    int st;
    while ((st = cl_node_state(s, na)) == PP_NODE_UP && now_s() < end)
        sleep_s(0.02);
    CU_ASSERT(st == PP_NODE_DOWN || st == PP_NODE_CONNECTING);
    int late_on_a = 0;
    for (int i = 0; i < N; i++)
        if (strcmp(pp_job_node(jobs[i]), na) == 0 && trk.when[i] > frozen_at + 0.5)
            late_on_a++;
    CU_ASSERT_EQUAL(late_on_a, 0);
    /* Thawed, it comes back (reconnect with backoff); its late results for
     * the jobs it held are dropped. */
    double thawed_at = now_s();
    CU_ASSERT_EQUAL(srv_thaw(a), 0);
    CU_ASSERT(cl_wait_up(s, a, 10));
    printf("back up %.2f s after the thaw ", now_s() - thawed_at);
    sleep_s(0.5);
    int done = 0, once = 0;
    for (int i = 0; i < N; i++) {
        done += pp_job_status(jobs[i]) == PP_DONE;
        once += atomic_load(&trk.calls[i]) == 1;
        pp_job_free(jobs[i]);
    }
    CU_ASSERT_EQUAL(done, N);
    CU_ASSERT_EQUAL(once, N);
    CU_ASSERT_EQUAL(atomic_load(&trk.total), N);
    /* The same client uses it again. */
    pp_job *j = pp_submitf(s, t_square, NULL, "l", 5L);
    pp_job *k = pp_submitf(s, t_square, NULL, "l", 6L);
    pp_job *two[] = {j, k};
    CU_ASSERT_EQUAL(cl_wait_jobs(two, 2, 20), 2);
    CU_ASSERT_EQUAL(pp_job_status(j), PP_DONE);
    CU_ASSERT_EQUAL(pp_job_status(k), PP_DONE);
    pp_job_free(j);
    pp_job_free(k);
    cl_client_free(s);
    CU_ASSERT(served(a));
    CU_ASSERT(served(b));
}

/* Runs a shell command line; its exit status (a message when not 0). */
static int shell(const char *fmt, ...) PP_PRINTF(1, 2);
static int shell(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    int rc = st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    if (rc != 0)
        fprintf(stderr, "\n    `%s` failed (%d)\n", cmd, rc);
    return rc;
}

/* F3 (runs only inside a private network namespace: PP_TEST_NETNS=1, as
 * tests/integration/netns_run.sh arranges).  Node A lives in a namespace of
 * its own, reached over a veth pair; its link is cut mid-batch and later
 * restored.  As F2: the heartbeat gives up on A, its jobs run on B, nothing
 * runs twice; meanwhile the client retries with backoff (no storm), and
 * once the link is back A rejoins and runs jobs again. */
static void test_f3_partition(void)
{
    srv_harness *a = cl_server_start(&(srv_opts){
        .own_netns = 1, .addr = "0.0.0.0",
        .args = ARGS("-w", "2", "--heartbeat", "0.2", "--dead-after", "2")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    srv_harness *b = cl_server_start(&(srv_opts){.share_secret = a, .args = ARGS("-w", "2")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL_FATAL(shell("ip link add ppf3c type veth peer name ppf3s && "
                                "ip link set ppf3s netns %d && "
                                "ip addr add 10.199.0.1/24 dev ppf3c && ip link set ppf3c up && "
                                "nsenter -t %d -n sh -c 'ip addr add 10.199.0.2/24 dev ppf3s && "
                                "ip link set ppf3s up && ip link set lo up'",
                                (int)a->pid, (int)a->pid),
                          0);
    snprintf(a->host, sizeof a->host, "10.199.0.2");
    int fds0 = warm_fds(a);
    srv_harness *both[] = {a, b};
    pp_server *s = client_new(&(client_cfg){.ncpus = 0, .node_timeout = 1, .heartbeat = 0.2},
                              both, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_FATAL(cl_wait_up(s, a, 10) && cl_wait_up(s, b, 10));
    char na[64];
    cl_node_name(a, na, sizeof na);
    track_reset();
    enum { N = 40 };
    pp_job *jobs[N];
    submit_tracked_sleeps(s, jobs, N, 100);
    CU_ASSERT(wait_total(4, 20) >= 4);
    pp_node_info before = {0};
    CU_ASSERT_EQUAL_FATAL(cl_node_info(s, na, &before), 0);
    double cut_at = now_s();
    CU_ASSERT_EQUAL_FATAL(shell("ip link set ppf3c down"), 0);
    CU_ASSERT(wait_total(N, 15) == N);
    printf("\n    all jobs done %.2f s after the cut ", now_s() - cut_at);
    double end = now_s() + 3;
    int st;
    while ((st = cl_node_state(s, na)) == PP_NODE_UP && now_s() < end)
        sleep_s(0.02);
    CU_ASSERT(st == PP_NODE_DOWN || st == PP_NODE_CONNECTING);
    int late_on_a = 0;
    for (int i = 0; i < N; i++)
        if (strcmp(pp_job_node(jobs[i]), na) == 0 && trk.when[i] > cut_at + 0.5)
            late_on_a++;
    CU_ASSERT_EQUAL(late_on_a, 0);
    /* Keep it cut for 4 s in all: the client keeps trying, with backoff. */
    while (now_s() < cut_at + 4)
        sleep_s(0.05);
    pp_node_info during = {0};
    CU_ASSERT_EQUAL(cl_node_info(s, na, &during), 0);
    uint64_t tries = during.connects - before.connects;
    printf("%llu connection attempts in 4 s ", (unsigned long long)tries);
    CU_ASSERT(tries >= 1 && tries <= 12);
    /* Healed: it rejoins and runs jobs again. */
    double healed_at = now_s();
    CU_ASSERT_EQUAL_FATAL(shell("ip link set ppf3c up"), 0);
    CU_ASSERT(cl_wait_up(s, a, 10));
    printf("back up %.2f s after the heal ", now_s() - healed_at);
    int done = 0, once = 0;
    for (int i = 0; i < N; i++) {
        done += pp_job_status(jobs[i]) == PP_DONE;
        once += atomic_load(&trk.calls[i]) == 1;
        pp_job_free(jobs[i]);
    }
    CU_ASSERT_EQUAL(done, N);
    CU_ASSERT_EQUAL(once, N);
    CU_ASSERT_EQUAL(atomic_load(&trk.total), N);
    pp_job *more[8];
    int on_a = 0;
    for (int i = 0; i < 8; i++)
        more[i] = pp_submitf(s, t_sleep, NULL, "l", 50L);
    CU_ASSERT_EQUAL(cl_wait_jobs(more, 8, 20), 8);
    for (int i = 0; i < 8; i++) {
        on_a += pp_job_status(more[i]) == PP_DONE && strcmp(pp_job_node(more[i]), na) == 0;
        pp_job_free(more[i]);
    }
    CU_ASSERT(on_a > 0);
    cl_client_free(s);
    CU_ASSERT_EQUAL(settle_fds(a, fds0), fds0);
    CU_ASSERT(served(a));
    CU_ASSERT(served(b));
    shell("ip link del ppf3c");
}

static int read_pid_file(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return 0;
    int pid = 0;
    if (fscanf(fp, "%d", &pid) != 1)
        pid = 0;
    fclose(fp);
    return pid;
}

static void test_f4_poison_job(void)
{
    srv_harness *hs[3];
    hs[0] = cl_server_start(&(srv_opts){.args = ARGS("-w", "2")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(hs[0]);
    for (int i = 1; i < 3; i++) {
        hs[i] = cl_server_start(&(srv_opts){.args = ARGS("-w", "2"), .share_secret = hs[0]});
        CU_ASSERT_PTR_NOT_NULL_FATAL(hs[i]);
    }
    /* No local worker while the poison job lives: re-dispatched to a local
     * worker it would merely run (its node would be this process). */
    pp_server *s = client_new(&(client_cfg){.ncpus = 0, .max_attempts = 3}, hs, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_FATAL(cl_wait_up(s, hs[i], 10));
    char pidfile[400];
    snprintf(pidfile, sizeof pidfile, "%s/poison.pid", tmpdir);
    unlink(pidfile);
    pp_job *poison = pp_submit(s, t_pid_file_sleep, pidfile, strlen(pidfile), NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(poison);
    enum { B = 20 };
    pp_job *batch[4][B];
    memset(batch, 0, sizeof batch);
    submit_squares(s, batch[0], B, 0);
    int kills = 0, last_pid = 0;
    double end = now_s() + 60;
    while (kills < 3 && now_s() < end && pp_job_status(poison) == PP_PENDING) {
        int pid = read_pid_file(pidfile);
        if (pid <= 0 || pid == last_pid) {
            sleep_s(0.01);
            continue;
        }
        last_pid = pid;
        unlink(pidfile);
        int ppid = parent_of(pid);
        srv_harness *victim = NULL;
        for (int i = 0; i < 3; i++)
            if (hs[i]->pid > 0 && hs[i]->pid == ppid)
                victim = hs[i];
        if (!victim)
            fprintf(stderr, "poison worker %d has parent %d: no ppserver of ours\n", pid, ppid);
        CU_ASSERT_PTR_NOT_NULL_FATAL(victim);
        /* The normal jobs of this round finish first (they are short, and
         * each node has a second worker): they are not the ones being
         * poisoned.  One still pending here waits behind the poison job. */
        int ended = cl_wait_jobs(batch[kills], B, 3);
        if (ended != B)
            fprintf(stderr, "\n    F4 round %d: %d of %d short jobs still pending 3 s after "
                            "submission, beside the poison job on %d\n",
                    kills, B - ended, B, ppid);
        CU_ASSERT_EQUAL(ended, B);
        srv_kill9(victim);
        kills++;
        submit_squares(s, batch[kills], B, 1000L * kills);
    }
    CU_ASSERT_EQUAL(kills, 3);
    double lost_end = now_s() + 10;
    int st;
    while ((st = pp_job_status(poison)) == PP_PENDING && now_s() < lost_end)
        sleep_s(0.01);
    CU_ASSERT_EQUAL(st, PP_LOST);
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_job_error(poison), "lost"));
    printf("\n    poison job: %s ", pp_job_error(poison));
    /* Every node is gone now; the last batch runs on a local worker. */
    CU_ASSERT_EQUAL(pp_set_ncpus(s, 1), 0);
    CU_ASSERT_EQUAL(cl_wait_jobs(batch[3], B, 30), B);
    for (int r = 0; r < 3; r++)
        CU_ASSERT_EQUAL(squares_right(batch[r], B, 1000L * r, NULL), B);
    CU_ASSERT_EQUAL(squares_right(batch[3], B, 3000L, "local"), B);
    for (int r = 0; r < 4; r++)
        for (int i = 0; i < B; i++)
            pp_job_free(batch[r][i]);
    pp_job_free(poison);
    cl_client_free(s);
    unlink(pidfile);
    /* A restarted node serves again. */
    CU_ASSERT_EQUAL_FATAL(srv_start(hs[0], &(srv_opts){.args = ARGS("-w", "1")}), 0);
    CU_ASSERT(served(hs[0]));
}

static void test_f5_all_down_then_back(void)
{
    srv_harness *a, *b;
    pp_server *s = two_nodes(&(client_cfg){.ncpus = 0}, &a, &b);
    char na[64];
    cl_node_name(a, na, sizeof na);
    int port = a->port;
    srv_kill9(a);
    srv_kill9(b);
    enum { N = 10 };
    pp_job *jobs[N];
    submit_squares(s, jobs, N, 7);
    double t0 = now_s();
    CU_ASSERT_EQUAL(pp_job_wait_for(jobs[0], 1.0), PP_PENDING);
    CU_ASSERT(now_s() - t0 < 2.0);
    sleep_s(1.0);
    for (int i = 0; i < N; i++)
        CU_ASSERT_EQUAL(pp_job_status(jobs[i]), PP_PENDING);
    /* One comes back on the same port with the same secret. */
    CU_ASSERT_EQUAL_FATAL(srv_start(a, &(srv_opts){.args = ARGS("-w", "2"), .port = port}), 0);
    CU_ASSERT_EQUAL(a->port, port);
    t0 = now_s();
    CU_ASSERT_EQUAL(cl_wait_jobs(jobs, N, 15), N);
    printf("\n    queue drained %.2f s after the restart ", now_s() - t0);
    CU_ASSERT_EQUAL(squares_right(jobs, N, 7, na), N);
    for (int i = 0; i < N; i++)
        pp_job_free(jobs[i]);
    cl_client_free(s);
    CU_ASSERT(served(a));
}

/* ==== load (G) ======================================================== */

static void test_g1_flood(void)
{
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-w", "2")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    pp_server *s = client_new(&(client_cfg){.ncpus = 0}, &h, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    enum { N = 20000 };
    pp_job **jobs = calloc(N, sizeof *jobs);
    CU_ASSERT_PTR_NOT_NULL_FATAL(jobs);
    double t0 = now_s();
    for (uint64_t i = 0; i < N; i++) {
        jobs[i] = pp_submit(s, t_echo, &i, sizeof i, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(jobs[i]);
    }
    long max_rss = 0;
    double end = now_s() + 150;
    pp_stats st;
    do {
        long r = srv_status_kb(h->pid, "VmRSS");
        if (r > max_rss)
            max_rss = r;
        pp_get_stats(s, &st);
        if (st.done + st.failed >= N)
            break;
        sleep_s(0.05);
    } while (now_s() < end);
    long hwm = srv_status_kb(h->pid, "VmHWM");
    printf("\n    %d jobs in %.2f s; ppserver VmRSS max %ld kB, peak %ld kB ", N, now_s() - t0,
           max_rss, hwm);
    CU_ASSERT_EQUAL(st.done, N);
    char name[64];
    cl_node_name(h, name, sizeof name);
    int right = 0, named = 0;
    for (uint64_t i = 0; i < N; i++) {
        named += strcmp(pp_job_node(jobs[i]), name) == 0;
        size_t len = 0;
        const uint64_t *r = pp_job_status(jobs[i]) == PP_DONE ? pp_job_result(jobs[i], &len)
                                                               : NULL;
        right += r && len == sizeof i && *r == i;
        pp_job_free(jobs[i]);
    }
    free(jobs);
    CU_ASSERT_EQUAL(right, N);
    CU_ASSERT_EQUAL(named, N);
    CU_ASSERT(max_rss > 0 && max_rss < 300 * 1024);
    CU_ASSERT(hwm > 0 && hwm < 300 * 1024);
    cl_client_free(s);
    CU_ASSERT(served(h));
}

static void test_g1_raw_flood(void)
{
    /* A client that ignores the protocol's pacing: 20,000 JOB frames of
     * 4 KiB for a module it never sends.  The node holds --max-queue of them,
     * then stops reading that socket (TCP pushes back); its memory stays
     * bounded and other clients are served meanwhile. */
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-w", "2", "--max-queue", "1000")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    int fds0 = warm_fds(h);
    hs_state x;
    int fd = raw_auth(h->port, h->secret, &x);
    CU_ASSERT_FATAL(fd >= 0);
    uint8_t hash[PP_SHA256_LEN];
    pp_auth_nonce(hash);
    uint8_t arg[4096];
    memset(arg, 0x61, sizeof arg);
    pp_buf b;
    job_payload(&b, hash, "t_echo", arg, sizeof arg);
    size_t flen = PP_WIRE_HDR + b.len;
    uint8_t *frame = malloc(flen);
    CU_ASSERT_PTR_NOT_NULL_FATAL(frame);
    memcpy(frame + PP_WIRE_HDR, b.data, b.len);
    pp_buf_reset(&b);
    enum { N = 20000 };
    int sent = 0, blocked = 0;
    size_t off = 0;
    long max_rss = 0;
    double end = now_s() + 60;
    while (sent < N && !blocked && now_s() < end) {
        if (off == 0)
            pp_wire_encode_hdr(frame, PP_T_RJOB, 0, (uint64_t)sent + 1,
                               (uint32_t)(flen - PP_WIRE_HDR));
        ssize_t k = rt_send_nb(fd, frame + off, flen - off); /* within TLS */
        if (k > 0) {
            off += (size_t)k;
            if (off == flen) {
                off = 0;
                sent++;
            }
            continue;
        }
        if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            break;
        long r = srv_status_kb(h->pid, "VmRSS");
        max_rss = r > max_rss ? r : max_rss;
        blocked = !rt_wait_writable(fd, 2); /* no room for 2 s: it stopped reading */
    }
    free(frame);
    long r = srv_status_kb(h->pid, "VmRSS");
    max_rss = r > max_rss ? r : max_rss;
    printf("\n    the node stopped reading after %d frames (%.1f MiB); VmRSS max %ld kB ", sent,
           (double)sent * (double)flen / 1048576.0, max_rss);
    CU_ASSERT(blocked);
    CU_ASSERT(sent < N);
    CU_ASSERT(max_rss > 0 && max_rss < 300 * 1024);
    /* Another client is served while the flooder sits paused. */
    double t0 = now_s();
    CU_ASSERT(served_within(h, 10));
    CU_ASSERT(now_s() - t0 < 10);
    raw_close(fd);
    CU_ASSERT_EQUAL(settle_fds(h, fds0), fds0);
    long hwm = srv_status_kb(h->pid, "VmHWM");
    CU_ASSERT(hwm > 0 && hwm < 300 * 1024);
    CU_ASSERT(served(h));
}

/* F6: a client that sends jobs and then reads none of their results.  The
 * node cuts it off once more than --max-output-mib of results wait for it,
 * or when half of that has waited --dead-after seconds (the node has then
 * stopped reading it, so its silence alone is no reason); another client is
 * served meanwhile, and the node's descriptors and memory come back. */
static void test_f6_client_not_reading(void)
{
    srv_harness *h = cl_server_start(&(srv_opts){
        .args = ARGS("-w", "2", "--max-output-mib", "1", "--heartbeat", "0.2", "--dead-after",
                     "3", "--log-level", "info")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    int fds0 = warm_fds(h);
    /* The task module, shipped by hand. */
    size_t mlen = 0;
    char *mod = srv_slurp(getenv("PP_TEST_TASKS"), &mlen);
    CU_ASSERT_PTR_NOT_NULL_FATAL(mod);
    uint8_t hash[PP_SHA256_LEN];
    pp_sha256(mod, mlen, hash);
    void *zip = NULL;
    size_t zlen = 0;
    CU_ASSERT_EQUAL_FATAL(pp_zip_deflate(mod, mlen, 6, &zip, &zlen), 0);
    free(mod);
    hs_state x;
    int fd = raw_auth(h->port, h->secret, &x);
    CU_ASSERT_FATAL(fd >= 0);
    int small = 4096; /* a slow reader's window */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    CU_ASSERT_EQUAL(send_module(fd, hash, zip, zlen), 0);
    free(zip);
    /* 40 echoes of 256 KiB of random bytes (zlib cannot shrink them): 10 MiB
     * of results against a 1 MiB cap plus the sockets' buffers. */
    enum { N = 40, ARG = 256 * 1024 };
    uint8_t *arg = malloc(ARG);
    CU_ASSERT_PTR_NOT_NULL_FATAL(arg);
    for (size_t i = 0; i < ARG; i += PP_NONCE_LEN)
        pp_auth_nonce(arg + i);
    pp_buf b;
    job_payload(&b, hash, "t_echo", arg, ARG);
    free(arg);
    /* The node stops reading this socket once results pile up; a send
     * that cannot finish gives up after SO_SNDTIMEO (3 s). */
    int sent = 0;
    for (int i = 0; i < N; i++) {
        if (send_frame(fd, PP_T_RJOB, 0, (uint64_t)i + 1, b.data, b.len) != 0)
            break;
        sent++;
    }
    pp_buf_reset(&b);
    printf("\n    %d jobs of 256 KiB sent ", sent);
    CU_ASSERT(sent >= 8);
    const char *const cut[] = {"does not read its results", NULL};
    double t0 = now_s(), end = t0 + 15, cut_at = -1;
    int others_ok = 0;
    while (now_s() < end && cut_at < 0) {
        if (!others_ok)
            others_ok = served_within(h, 10); /* another client, meanwhile */
        if (srv_log_count(h, cut) > 0)
            cut_at = now_s() - t0;
        else
            sleep_s(0.1);
    }
    printf("cut off after %.1f s ", cut_at);
    CU_ASSERT(others_ok);
    CU_ASSERT(cut_at >= 0);
    /* The cut-off is abortive: what the node had handed to its kernel for
     * this client is dropped, not trickled out through the small window
     * (that would take minutes). */
    CU_ASSERT(wait_closed(fd, 5) >= 0);
    raw_close(fd);
    CU_ASSERT_EQUAL(settle_fds(h, fds0), fds0);
    long hwm = srv_status_kb(h->pid, "VmHWM");
    CU_ASSERT(hwm > 0 && hwm < 200 * 1024);
    CU_ASSERT(served(h));
}

enum { G2_THREADS = 32, G2_JOBS = 100 };

typedef struct g2_client {
    srv_harness *h;
    pthread_barrier_t *start;
    int up, done;
    double t_start, t_end;   /* after the barrier; when its last job ended */
} g2_client;

static void *g2_thread(void *arg)
{
    g2_client *c = arg;
    pp_server *s = client_new(&(client_cfg){.ncpus = 0}, &c->h, 1);
    c->up = s && cl_wait_up(s, c->h, 30);
    pthread_barrier_wait(c->start); /* everyone reaches it, connected or not */
    c->t_start = now_s();
    if (!c->up) {
        cl_client_free(s);
        return NULL;
    }
    pp_job *jobs[G2_JOBS];
    for (int i = 0; i < G2_JOBS; i++)
        jobs[i] = pp_submitf(s, t_sleep, NULL, "l", 1L);
    cl_wait_jobs(jobs, G2_JOBS, 60);
    c->t_end = now_s();
    for (int i = 0; i < G2_JOBS; i++) {
        c->done += jobs[i] && pp_job_status(jobs[i]) == PP_DONE;
        pp_job_free(jobs[i]);
    }
    cl_client_free(s);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void test_g2_many_clients(void)
{
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-w", "2")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, G2_THREADS);
    g2_client cs[G2_THREADS];
    pthread_t th[G2_THREADS];
    for (int i = 0; i < G2_THREADS; i++) {
        cs[i] = (g2_client){.h = h, .start = &start};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, g2_thread, &cs[i]), 0);
    }
    int up = 0, done = 0;
    for (int i = 0; i < G2_THREADS; i++) {
        pthread_join(th[i], NULL);
        up += cs[i].up;
        done += cs[i].done;
    }
    pthread_barrier_destroy(&start);
    /* Completion time of each client: from the common start (the barrier's
     * release, i.e. the earliest thread past it) to its last result.  A
     * thread the OS runs late starts late but is not served unfairly, so
     * its own start is not the reference. */
    double t0 = 1e18, late_start = 0;
    for (int i = 0; i < G2_THREADS; i++)
        if (cs[i].t_start < t0)
            t0 = cs[i].t_start;
    double fastest = 1e9, slowest = 0;
    for (int i = 0; i < G2_THREADS; i++) {
        if (!cs[i].up)
            continue;
        double c = cs[i].t_end - t0;
        fastest = c < fastest ? c : fastest;
        slowest = c > slowest ? c : slowest;
        late_start = cs[i].t_start - t0 > late_start ? cs[i].t_start - t0 : late_start;
    }
    double sorted[G2_THREADS];
    int ns = 0;
    for (int i = 0; i < G2_THREADS; i++)
        if (cs[i].up)
            sorted[ns++] = cs[i].t_end - t0;
    qsort(sorted, (size_t)ns, sizeof sorted[0], cmp_double);
    printf("\n    %d clients: fastest done at %.2f s, median %.2f s, slowest %.2f s "
           "(latest start %.2f s) ",
           up, fastest, ns ? sorted[ns / 2] : 0.0, slowest, late_start);
    if (slowest >= 3 * fastest + 0.5) {
        printf("\n    completion times:");
        for (int i = 0; i < ns; i++)
            printf(" %.2f", sorted[i]);
        printf("\n");
    }
    CU_ASSERT_EQUAL(up, G2_THREADS);
    CU_ASSERT_EQUAL(done, G2_THREADS * G2_JOBS);
    /* Fair shares: slowest < 3 x fastest.  The 0.5 s slack absorbs start-up
     * jitter of 32 clients (and their scheduler threads) on a loaded 2-core
     * machine and under ASan, where the whole run takes only a few seconds. */
    CU_ASSERT(slowest < 3 * fastest + 0.5);
    CU_ASSERT(served(h));
}

/* ==== SIGTERM ========================================================= */

static void test_sigterm_redispatch(void)
{
    srv_harness *a, *b;
    pp_server *s = two_nodes(&(client_cfg){.ncpus = 0}, &a, &b);
    char na[64], nb[64];
    cl_node_name(a, na, sizeof na);
    cl_node_name(b, nb, sizeof nb);
    track_reset();
    enum { N = 24 };
    pp_job *jobs[N];
    submit_tracked_sleeps(s, jobs, N, 200);
    CU_ASSERT(wait_total(2, 20) >= 2);
    double term_at = now_s();
    CU_ASSERT_EQUAL(kill(a->pid, SIGTERM), 0);
    int exited = srv_wait_exit(a, 5);
    double took = now_s() - term_at;
    CU_ASSERT(exited);
    if (exited) {
        if (!WIFEXITED(a->status) || WEXITSTATUS(a->status) != 0) {
            char *err = srv_read_stderr(a);
            fprintf(stderr, "\n    ppserver after SIGTERM: status 0x%x: %s\n", a->status, err);
            free(err);
        }
        CU_ASSERT(WIFEXITED(a->status) && WEXITSTATUS(a->status) == 0);
    }
    printf("\n    exited %.2f s after SIGTERM ", took);
    CU_ASSERT(took < 5);
    CU_ASSERT(wait_total(N, 30) == N);
    sleep_s(0.3);
    int done = 0, once = 0, placed = 0;
    for (int i = 0; i < N; i++) {
        done += pp_job_status(jobs[i]) == PP_DONE;
        once += atomic_load(&trk.calls[i]) == 1;
        const char *n = pp_job_node(jobs[i]);
        placed += strcmp(n, nb) == 0 || (strcmp(n, na) == 0 && trk.when[i] <= term_at + 0.5);
        pp_job_free(jobs[i]);
    }
    CU_ASSERT_EQUAL(done, N);
    CU_ASSERT_EQUAL(once, N);
    CU_ASSERT_EQUAL(placed, N);
    CU_ASSERT(srv_log_count(a, ARGS("shutting down")) >= 1);
    cl_client_free(s);
    CU_ASSERT(served(b));
}

/* ==== the holes around the wire (H) =================================== */

/* Each test below reproduces an attack that worked against an earlier node
 * (its comment says what it did and what it cost then), and stays as the
 * proof that it no longer does. */

/* Sends n bytes (within TLS when the fd has a session) without blocking
 * for more than `limit` seconds in all: the bytes taken (the node may have
 * stopped reading us). */
static size_t send_bounded(int fd, const void *p, size_t n, double limit)
{
    return rt_send_bounded(fd, p, n, limit);
}

/* A JOB frame (header included) whose payload is compressed the way pp_zip
 * sends it (u32 declared length, then a zlib stream) and inflates to
 * exactly `total` bytes: the module hash, the symbol, no timeout, then
 * zeros -- a real job, about total / 1000 bytes on the wire.  malloc'd, or
 * NULL. */
static uint8_t *zero_job_frame(const uint8_t hash[PP_SHA256_LEN], const char *symbol,
                               uint64_t id, uint32_t total, size_t *framelen)
{
    static const uint8_t zeros[64 * 1024];
    pp_buf head;
    job_payload(&head, hash, symbol, NULL, 0);
    size_t cap = total / 256 + 65536;
    uint8_t *frame = malloc(PP_WIRE_HDR + 4 + cap);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (!frame || total < head.len || deflateInit(&zs, 9) != Z_OK) {
        free(frame);
        pp_buf_reset(&head);
        return NULL;
    }
    zs.next_out = frame + PP_WIRE_HDR + 4;
    zs.avail_out = (uInt)cap;
    zs.next_in = (Bytef *)head.data;
    zs.avail_in = (uInt)head.len;
    int rc = deflate(&zs, Z_NO_FLUSH);
    size_t left = total - head.len;
    while (rc == Z_OK && left) {
        size_t k = left < sizeof zeros ? left : sizeof zeros;
        zs.next_in = (Bytef *)zeros;
        zs.avail_in = (uInt)k;
        rc = deflate(&zs, Z_NO_FLUSH);
        left -= k - zs.avail_in;
    }
    if (rc == Z_OK)
        rc = deflate(&zs, Z_FINISH);
    size_t zlen = zs.total_out;
    deflateEnd(&zs);
    pp_buf_reset(&head);
    if (rc != Z_STREAM_END) {
        free(frame);
        return NULL;
    }
    pp_store32(frame + PP_WIRE_HDR, total);
    pp_wire_encode_hdr(frame, PP_T_RJOB, PP_WIRE_F_ZLIB, id, (uint32_t)(4 + zlen));
    *framelen = PP_WIRE_HDR + 4 + zlen;
    return frame;
}

/* The largest VmRSS of pid (kB) sampled every 20 ms for `secs`. */
static long max_rss_for(pid_t pid, double secs)
{
    long max = 0;
    double end = now_s() + secs;
    do {
        long r = srv_status_kb(pid, "VmRSS");
        max = r > max ? r : max;
        sleep_s(0.02);
    } while (now_s() < end);
    return max;
}

/* Waits (bounded) for VmRSS of pid to fall to `kb` or below; the last. */
static long rss_falls_to(pid_t pid, long kb, double limit)
{
    double end = now_s() + limit;
    long r;
    while ((r = srv_status_kb(pid, "VmRSS")) > kb && now_s() < end)
        sleep_s(0.05);
    return r;
}

/* H1.  Attack: a cache directory others may write (or another user's)
 * lets a local user plant or swap the modules the node's workers load.
 * ppserver must refuse to start on one, saying why, with the exit code for
 * a configuration error (78). */
static void test_h1_cache_dir_refused(void)
{
    srv_harness h0;
    CU_ASSERT_EQUAL_FATAL(srv_prepare(&h0), 0);
    struct {
        const char *name;
        mode_t mode;
        int other_owner;
        const char *says;
    } cases[] = {
        {"open", 0777, 0, "writable by group or others"},
        {"group", 0770, 0, "writable by group or others"},
        {"sticky", 01733, 0, "writable by group or others"},
        {"nobody", 0700, 1, "not owned by"},
    };
    for (size_t i = 0; i < PP_ARRAY_LEN(cases); i++) {
        char dir[400];
        snprintf(dir, sizeof dir, "%s/%s", h0.dir, cases[i].name);
        CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0700), 0);
        CU_ASSERT_EQUAL(chmod(dir, cases[i].mode), 0);
        if (cases[i].other_owner) {
            if (geteuid() != 0) {
                printf("\n    (skipped: a directory of another user needs root to make) ");
                continue;
            }
            CU_ASSERT_EQUAL(chown(dir, 65534, 65534), 0);
        }
        char *err = NULL;
        int st = srv_run_once(ARGS("ppserver", "-p", "0", "-i", "127.0.0.1", "-w", "0",
                                   "--secret-file", h0.secret_file, "--cache-dir", dir),
                              NULL, 3, &err);
        int says = err && strstr(err, "cache directory") && strstr(err, cases[i].says);
        if (!(WIFEXITED(st) && WEXITSTATUS(st) == 78) || !says)
            fprintf(stderr, "\n    H1 cache directory %s (mode %o): status 0x%x, said: %s\n",
                    cases[i].name, (unsigned)cases[i].mode, st, err ? err : "");
        CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 78);
        CU_ASSERT(says);
        free(err);
    }
    srv_cleanup(&h0);
}

/* H1.  Attack: a local user plants <hash>.so in the cache before the node
 * ever received that module -- bytes of their choosing, or a symlink to a
 * file of theirs -- and the node believed the name: its workers dlopen()ed
 * the plant (here garbage, so the jobs ended PP_ELOAD; a real plant runs
 * its code).  Now a cached module is hashed before its first use in a
 * server's life: the plant counts as absent, the client is asked for the
 * module, and the file is replaced atomically (a symlink itself, never its
 * target). */
static void test_h1_planted_module(void)
{
    const char *mod = getenv("PP_TEST_TASKS");
    uint8_t hash[PP_SHA256_LEN];
    char err[PP_ERR_LEN];
    CU_ASSERT_EQUAL_FATAL(pp_sha256_file(mod, hash, err), 0);
    srv_harness *h = calloc(1, sizeof *h);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_EQUAL_FATAL(srv_prepare(h), 0);
    char path[512], decoy[400];
    snprintf(decoy, sizeof decoy, "%s/decoy.so", h->dir);
    static const char garbage[] = "not the module the client sent\n";
    int started = 0;
    for (int round = 0; round < 2; round++) {
        if (round == 0) {
            CU_ASSERT_EQUAL_FATAL(mkdir(h->cache_dir, 0700), 0);
        }
        char hex[2 * PP_SHA256_LEN + 1];
        pp_hex(hash, PP_SHA256_LEN, hex);
        snprintf(path, sizeof path, "%s/%s.so", h->cache_dir, hex);
        unlink(path);
        int fd = open(round == 0 ? path : decoy, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        CU_ASSERT_FATAL(fd >= 0);
        CU_ASSERT_EQUAL(write(fd, garbage, sizeof garbage - 1), (ssize_t)sizeof garbage - 1);
        close(fd);
        if (round == 1)
            CU_ASSERT_EQUAL_FATAL(symlink(decoy, path), 0);
        if (!started) {
            h = cl_server_start_on(h, &(srv_opts){.args = ARGS("-w", "1")});
            CU_ASSERT_PTR_NOT_NULL_FATAL(h);
            started = 1;
        } else {
            CU_ASSERT_EQUAL_FATAL(srv_start(h, &(srv_opts){.args = ARGS("-w", "1")}), 0);
        }
        pp_server *s = client_new(&(client_cfg){.ncpus = 0}, &h, 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        pp_job *j = pp_submitf(s, t_square, NULL, "l", 12L);
        int stj = j ? pp_job_wait_for(j, 20) : -1;
        long v = 0;
        if (stj != PP_DONE)
            fprintf(stderr, "\n    H1 planted %s: the job ended %s: %s\n",
                    round ? "symlink" : "file", pp_strerror(stj), j ? pp_job_error(j) : "");
        CU_ASSERT(stj == PP_DONE && pp_job_unpack(j, "l", &v) == 0 && v == 144);
        pp_job_free(j);
        cl_client_free(s);
        /* The plant is gone: the cache holds the module, a regular file. */
        struct stat st;
        uint8_t got[PP_SHA256_LEN] = {0};
        CU_ASSERT(lstat(path, &st) == 0 && S_ISREG(st.st_mode));
        CU_ASSERT(pp_sha256_file(path, got, err) == 0 && memcmp(got, hash, sizeof got) == 0);
        if (round == 1) {
            char *d = srv_slurp(decoy, NULL);
            CU_ASSERT(d && strcmp(d, garbage) == 0); /* the symlink's target untouched */
            free(d);
        }
        CU_ASSERT(srv_log_count(h, ARGS("does not match its name")) >= 1);
        srv_stop(h, 10);
    }
}

/* H2.  Attack: three JOB frames of about 1 MiB whose zlib payloads each
 * declare -- and really inflate to -- nearly 1 GiB, for a module the node
 * does not have.  The node inflated all three at once and parked them
 * (VmRSS 3 GB), and kept the memory after the client left.  Now each job's
 * inflated size counts against the session's and the node's byte budgets
 * before anything is inflated; past them the node stops reading that
 * client; and what the client held is given back when it leaves. */
static void test_h2_inflated_jobs(void)
{
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-w", "1")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    int fds0 = warm_fds(h);
    long rss0 = srv_status_kb(h->pid, "VmRSS");
    uint8_t hash[PP_SHA256_LEN];
    pp_auth_nonce(hash);
    uint32_t total = (1u << 30) - (1u << 20);
    size_t flen = 0;
    double t0 = now_s();
    uint8_t *frame = zero_job_frame(hash, "t_echo", 1, total, &flen);
    CU_ASSERT_PTR_NOT_NULL_FATAL(frame);
    printf("\n    3 JOB frames of %zu bytes, each inflating to %u (built in %.1f s); ", flen,
           total, now_s() - t0);
    hs_state x;
    int fd = raw_auth(h->port, h->secret, &x);
    CU_ASSERT_FATAL(fd >= 0);
    size_t sent = 0;
    for (uint64_t id = 1; id <= 3; id++) {
        pp_wire_encode_hdr(frame, PP_T_RJOB, PP_WIRE_F_ZLIB, id, (uint32_t)(flen - PP_WIRE_HDR));
        sent += send_bounded(fd, frame, flen, 3);
    }
    free(frame);
    long peak = max_rss_for(h->pid, 6), hwm = srv_status_kb(h->pid, "VmHWM");
    peak = hwm > peak ? hwm : peak;
    raw_close(fd);
    long after = rss_falls_to(h->pid, rss0 + 64 * 1024, 5);
    printf("%zu bytes sent; ppserver VmRSS %ld kB before, %ld kB at most, %ld kB after the "
           "client left ", sent, rss0, peak, after);
    CU_ASSERT(peak > 0 && peak < 1400 * 1024);       /* one of them at most */
    CU_ASSERT(after > 0 && after <= rss0 + 64 * 1024); /* given back */
    CU_ASSERT_EQUAL(settle_fds(h, fds0), fds0);
    CU_ASSERT(served(h));
}


/* A RESULT the node sent, decoded. */
typedef struct got_result {
    uint64_t id;
    int status;
    char text[256];
    double at;
} got_result;

/* The next RESULT within `limit` seconds: 1; 0 when the connection ended
 * or an ERROR came (its text in g->text); -1 on timeout.  NEED frames on
 * the way are counted in *needs. */
static int next_result(int fd, double limit, got_result *g, int *needs)
{
    double end = now_s() + limit;
    memset(g, 0, sizeof *g);
    for (int guard = 0; guard < 1000000; guard++) {
        double left = end - now_s();
        if (left <= 0)
            return -1;
        pp_frame_hdr fh;
        uint8_t *p = NULL;
        int r = read_frame(fd, left, &fh, &p);
        if (r != 1)
            return r == 0 ? 0 : -1;
        int done = 0;
        if (fh.type == PP_T_NEED && needs) {
            ++*needs;
        } else if (fh.type == PP_T_ERROR) {
            pp_rd rd = pp_rd_make(p, fh.len);
            (void)pp_rd_u16(&rd);
            pp_rd_str16(&rd, g->text, sizeof g->text);
            done = -1;
        } else if (fh.type == PP_T_RRESULT && !(fh.flags & PP_WIRE_F_ZLIB)) {
            pp_msg_result m;
            if (pp_proto_result_decode(p, fh.len, 0xFFFFu, &m) == 0) {
                g->id = fh.id;
                g->status = m.status;
                g->at = now_s();
                snprintf(g->text, sizeof g->text, "%.*s", (int)m.len, (const char *)m.data);
                done = 1;
            }
        }
        free(p);
        if (done)
            return done > 0 ? 1 : 0;
    }
    return -1;
}

/* H2.  Attack: JOB frames for a module the client never sends were parked
 * for ever, holding their memory, and the client never heard of them
 * again.  Now they end PP_ELOAD after --module-timeout.  The same test
 * shows the session budget: the node announces it as its largest frame (a
 * job declaring more is refused before inflating), and a job that does not
 * fit beside the ones held waits, unread, until the parked one is gone. */
static void test_h2_parked_deadline(void)
{
    srv_harness *h = cl_server_start(&(srv_opts){
        .args = ARGS("-w", "1", "--module-timeout", "1", "--session-budget-mib", "64")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    int fds0 = warm_fds(h);
    hs_state x;
    int fd = raw_auth(h->port, h->secret, &x);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(x.max_frame, 64u << 20);
    uint8_t hash[PP_SHA256_LEN];
    pp_auth_nonce(hash);
    size_t flen = 0;
    uint8_t *frame = zero_job_frame(hash, "t_echo", 1, 40u << 20, &flen);
    CU_ASSERT_PTR_NOT_NULL_FATAL(frame);
    double t0 = now_s();
    CU_ASSERT_EQUAL(send_all(fd, frame, flen), 0);
    pp_wire_encode_hdr(frame, PP_T_RJOB, PP_WIRE_F_ZLIB, 2, (uint32_t)(flen - PP_WIRE_HDR));
    CU_ASSERT_EQUAL(send_all(fd, frame, flen), 0);
    free(frame);
    got_result a, b;
    int needs = 0;
    int ra = next_result(fd, 6, &a, &needs);
    int rb = ra == 1 ? next_result(fd, 6, &b, &needs) : -1;
    printf("\n    job 1 ended %s after %.2f s (\"%s\"); job 2 %s %.2f s later; %d NEED ", 
           ra == 1 ? pp_strerror(a.status) : "-", ra == 1 ? a.at - t0 : -1.0, a.text,
           rb == 1 ? pp_strerror(b.status) : "-", rb == 1 ? b.at - a.at : -1.0, needs);
    CU_ASSERT(ra == 1 && a.id == 1 && a.status == PP_ELOAD && strstr(a.text, "module"));
    CU_ASSERT(ra == 1 && a.at - t0 >= 0.9 && a.at - t0 < 3.5);
    /* The second waited (unread) while the first held the budget, then was
     * parked in its turn, its module asked for again. */
    CU_ASSERT(rb == 1 && b.id == 2 && b.status == PP_ELOAD && b.at - a.at >= 0.8);
    CU_ASSERT(needs >= 2);
    raw_close(fd);
    /* More than the session budget in one job: refused before inflating. */
    fd = raw_auth(h->port, h->secret, &x);
    CU_ASSERT_FATAL(fd >= 0);
    frame = zero_job_frame(hash, "t_echo", 3, 100u << 20, &flen);
    CU_ASSERT_PTR_NOT_NULL_FATAL(frame);
    CU_ASSERT_EQUAL(send_all(fd, frame, flen), 0);
    free(frame);
    refusal rf = expect_close(fd, 5);
    CU_ASSERT(rf.got_error && rf.closed && rf.code == PP_E_LIMIT);
    raw_close(fd);
    CU_ASSERT(srv_log_count(h, ARGS("did not come within")) >= 2);
    CU_ASSERT_EQUAL(settle_fds(h, fds0), fds0);
    CU_ASSERT(served(h));
}

static int holds(const char *p, size_t len, const char *s);

/* Seconds a client of h takes for n tiny t_echo jobs (after a warm-up
 * job), or -1. */
static double batch_secs(srv_harness *h, int n)
{
    pp_server *s = client_new(&(client_cfg){.ncpus = 0}, &h, 1);
    if (!s)
        return -1;
    pp_job *w = pp_submitf(s, t_square, NULL, "l", 3L);
    int ok = w && pp_job_wait_for(w, 20) == PP_DONE;
    pp_job_free(w);
    pp_job **jobs = calloc((size_t)n, sizeof *jobs);
    ok = ok && jobs;
    double t0 = now_s();
    for (int i = 0; ok && i < n; i++) {
        uint64_t v = (uint64_t)i;
        jobs[i] = pp_submit(s, t_echo, &v, sizeof v, NULL);
        ok = jobs[i] != NULL;
    }
    ok = ok && cl_wait_jobs(jobs, n, 60) == n;
    double t = now_s() - t0;
    for (int i = 0; jobs && i < n; i++)
        if (jobs[i])
            pp_job_free(jobs[i]);
    free(jobs);
    cl_client_free(s);
    return ok ? t : -1;
}

/* Sends PING and reads what the node sends until its PONG: then every
 * frame sent before has been handled.  1 when it came.  NEED frames are
 * counted in *needs, RESULTs ending PP_ELOAD with `eload_says` in their
 * text in *eloads. */
static int ping_through(int fd, double limit, int *needs, int *eloads, const char *eload_says)
{
    if (send_frame(fd, PP_T_PING, 0, 77, NULL, 0) != 0)
        return 0;
    double end = now_s() + limit;
    for (int guard = 0; guard < 1000000 && now_s() < end; guard++) {
        pp_frame_hdr fh;
        uint8_t *p = NULL;
        if (read_frame(fd, end - now_s(), &fh, &p) != 1)
            return 0;
        pp_msg_result m;
        *needs += fh.type == PP_T_NEED;
        if (fh.type == PP_T_RRESULT && !(fh.flags & PP_WIRE_F_ZLIB) &&
            pp_proto_result_decode(p, fh.len, 0xFFFFu, &m) == 0 && m.status == PP_ELOAD &&
            holds((const char *)m.data, m.len, eload_says))
            ++*eloads;
        free(p);
        if (fh.type == PP_T_PONG && fh.id == 77)
            return 1;
    }
    return 0;
}

/* H2.  Attack: 48,000 JOB frames naming modules nobody has (8,000 on each
 * of 6 connections, each closed afterwards) left 48,000 entries of 4 KiB
 * in the node's module table for ever (VmRSS +160 MB), and every later JOB
 * searched them one by one (a batch of tiny jobs 10 times slower).  Now the
 * table holds only modules stored or asked for; an ask nobody waits for
 * any more goes; a client may have --max-pending-modules asks open (its
 * further jobs end PP_ELOAD at once); lookups go through a hash table. */
static void test_h2_unknown_hashes(void)
{
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-w", "2")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    int fds0 = warm_fds(h);
    enum { CONNS = 6, PER = 8000, BATCH = 5000 };
    double t_before = batch_secs(h, BATCH);
    long rss0 = srv_status_kb(h->pid, "VmRSS");
    static const uint8_t zero_hash[PP_SHA256_LEN];
    pp_buf b;
    job_payload(&b, zero_hash, "t_echo", "12345678", 8);
    size_t plen = b.len, flen = PP_WIRE_HDR + plen;
    uint8_t *frames = malloc(flen * PER);
    CU_ASSERT_PTR_NOT_NULL_FATAL(frames);
    int handled = 0, needs = 0, eloads = 0;
    double t0 = now_s(), took[CONNS];
    for (int c = 0; c < CONNS; c++) {
        double tc = now_s();
        for (int i = 0; i < PER; i++) {
            uint8_t *f = frames + (size_t)i * flen;
            memcpy(f + PP_WIRE_HDR, b.data, plen);
            pp_auth_nonce(f + PP_WIRE_HDR); /* a module nobody has */
            pp_wire_encode_hdr(f, PP_T_RJOB, 0, (uint64_t)i + 1, (uint32_t)plen);
        }
        hs_state x;
        int fd = raw_auth(h->port, h->secret, &x);
        CU_ASSERT_FATAL(fd >= 0);
        CU_ASSERT_EQUAL(send_bounded(fd, frames, flen * PER, 20), flen * PER);
        handled += ping_through(fd, 20, &needs, &eloads, "too many modules asked");
        raw_close(fd);
        took[c] = now_s() - tc;
    }
    double flood = now_s() - t0;
    pp_buf_reset(&b);
    free(frames);
    sleep_s(0.3);
    long rss1 = srv_status_kb(h->pid, "VmRSS");
    double t_after = batch_secs(h, BATCH);
    printf("\n    %d x %d unknown modules in %.1f s (the first %d in %.2f s, the last in "
           "%.2f s); ppserver VmRSS %ld kB -> %ld kB; %d tiny jobs %.3f s before, %.3f s after ",
           CONNS, PER, flood, PER, took[0], took[CONNS - 1], rss0, rss1, BATCH, t_before,
           t_after);
    printf("%d NEED, %d PP_ELOAD at once ", needs, eloads);
    CU_ASSERT_EQUAL(handled, CONNS);
    CU_ASSERT_EQUAL(needs, CONNS * 16);             /* --max-pending-modules */
    CU_ASSERT_EQUAL(eloads, CONNS * (PER - 16));    /* the others: at once */
    CU_ASSERT(took[CONNS - 1] < 3 * took[0] + 0.5); /* no slower with every batch */
    CU_ASSERT(rss1 > 0 && rss1 - rss0 < 64 * 1024); /* ASan keeps freed memory a while */
    CU_ASSERT(t_before > 0 && t_after > 0 && t_after < 3 * t_before + 0.5);
    CU_ASSERT_EQUAL(settle_fds(h, fds0), fds0);
    CU_ASSERT(served(h));
}

/* H2.  A MODULE frame nobody asked for was stored: any client could fill
 * the cache (and the table) with modules no job needs.  Now it is refused. */
static void test_h2_module_not_asked(void)
{
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-w", "1")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    int fds0 = warm_fds(h);
    int files0 = count_files(h->cache_dir, ".so");
    static const char data[] = "a module nobody asked for";
    uint8_t hash[PP_SHA256_LEN];
    pp_sha256(data, sizeof data, hash);
    void *zip = NULL;
    size_t zlen = 0;
    CU_ASSERT_EQUAL_FATAL(pp_zip_deflate(data, sizeof data, 6, &zip, &zlen), 0);
    hs_state x;
    int fd = raw_auth(h->port, h->secret, &x);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(send_module(fd, hash, zip, zlen), 0);
    free(zip);
    refusal rf = expect_close(fd, 5);
    CU_ASSERT(rf.got_error && rf.closed && rf.code == PP_E_PROTOCOL &&
              strstr(rf.msg, "not asked for"));
    raw_close(fd);
    CU_ASSERT_EQUAL(count_files(h->cache_dir, ".so"), files0);
    CU_ASSERT_EQUAL(settle_fds(h, fds0), fds0);
    CU_ASSERT(served(h));
}

/* A flood of silent connections from one address, `rate` a second, each
 * kept until 256 newer ones exist (the node closes most long before). */
typedef struct flooder {
    int port;
    const char *src;
    double rate;
    atomic_int stop;
    atomic_int made;
    pthread_t th;
} flooder;

static void *flood_main(void *arg)
{
    flooder *f = arg;
    enum { RING = 256 };
    int ring[RING];
    for (int i = 0; i < RING; i++)
        ring[i] = -1;
    struct sockaddr_in me = {.sin_family = AF_INET};
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    inet_pton(AF_INET, f->src, &me.sin_addr);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    double t0 = now_s();
    int n = 0;
    while (!atomic_load(&f->stop) && now_s() - t0 < 30) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        int one = 1;
        if (fd >= 0) {
            (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
            if (bind(fd, (struct sockaddr *)&me, sizeof me) != 0 ||
                (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS)) {
                close(fd);
                fd = -1;
            }
        }
        if (ring[n % RING] >= 0)
            close(ring[n % RING]);
        ring[n % RING] = fd;
        n++;
        atomic_fetch_add(&f->made, 1);
        double due = t0 + n / f->rate;
        if (due > now_s())
            sleep_s(due - now_s());
    }
    for (int i = 0; i < RING; i++)
        if (ring[i] >= 0)
            close(ring[i]);
    return NULL;
}

/* A client `delay` seconds away, from `src`, as its messages reach the
 * node: its ClientHello `delay` after the connection, its HELLO (with its
 * TLS Finished) 2 x `delay` after the ServerHello left, its PROOF 2 x
 * `delay` after the CHALLENGE left.  1 when the handshake completes (the
 * node's proof checked). */
static int far_handshake(const char *src, int port, const char *secret, double delay)
{
    hs_state x;
    memset(&x, 0, sizeof x);
    pp_auth_key k;
    if (rt_key(secret, &k) != 0)
        return 0;
    int fd = tcp_connect_from(src, port);
    if (fd < 0)
        return 0;
    char why[PP_ERR_LEN];
    sleep_s(delay);
    int ok = rt_client(fd, secret, 5, why) == 0;
    if (!ok)
        fprintf(stderr, "\n    far client: TLS failed: %s\n", why);
    if (ok) {
        sleep_s(2 * delay);
        ok = raw_hello(fd, &x, PP_PROTO_MIN, PP_PROTO_MAX, NULL) == 0 &&
             raw_challenge(fd, &x) == 0;
    }
    if (ok) {
        sleep_s(2 * delay);
        pp_auth_proof(&k, PP_ROLE_CLIENT, x.ver, x.nc, x.ns, x.transcript, x.proof);
        ok = send_frame(fd, PP_T_PROOF, 0, 0, x.proof, PP_MAC_LEN) == 0;
    }
    pp_frame_hdr fh;
    uint8_t *p = NULL;
    ok = ok && read_frame(fd, 5, &fh, &p) == 1 && fh.type == PP_T_ACCEPT &&
         fh.len == PP_MAC_LEN &&
         pp_auth_verify(&k, PP_ROLE_SERVER, x.ver, x.nc, x.ns, x.transcript, p) == 0;
    free(p);
    pp_auth_wipe(&k, sizeof k);
    raw_close(fd);
    return ok;
}

static long count_lines(const char *text)
{
    long n = 0;
    for (const char *c = text; c && *c; c++)
        n += *c == '\n';
    return n;
}

/* H3 and H4.  Attack: one address (127.0.0.2) opened ~1,300 silent
 * connections a second.  Every handshake slot was its; each new connection
 * evicted the oldest handshake, so a real client 20 ms away (127.0.0.3)
 * was evicted before its PROOF arrived: never served.  And every refusal
 * was logged: 21,296 lines in 3 s.  Now an address holds at most
 * --max-handshakes-per-address handshakes (its own oldest goes), at the
 * global cap the oldest handshake of the address holding the most goes,
 * and repeated log lines are limited per kind (--log-rate), with a count
 * of those suppressed. */
static void test_h3_handshake_flood(void)
{
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-w", "1")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    int fds0 = warm_fds(h);
    char *log0 = srv_read_log(h);
    long lines0 = count_lines(log0);
    free(log0);
    flooder *f = calloc(1, sizeof *f);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    f->port = h->port;
    f->src = "127.0.0.2";
    f->rate = 1300;
    double t0 = now_s();
    CU_ASSERT_EQUAL_FATAL(pthread_create(&f->th, NULL, flood_main, f), 0);
    sleep_s(0.5);
    enum { TRIES = 5 };
    int ok = 0;
    double slowest = 0;
    for (int i = 0; i < TRIES; i++) {
        double t = now_s();
        int r = far_handshake("127.0.0.3", h->port, h->secret, 0.02);
        ok += r;
        if (r && now_s() - t > slowest)
            slowest = now_s() - t;
    }
    while (now_s() - t0 < 3)
        sleep_s(0.05);
    atomic_store(&f->stop, 1);
    pthread_join(f->th, NULL);
    double secs = now_s() - t0;
    int made = atomic_load(&f->made);
    free(f);
    sleep_s(0.5);
    char *log1 = srv_read_log(h);
    long lines = count_lines(log1) - lines0;
    free(log1);
    printf("\n    %d connections from 127.0.0.2 in %.1f s; %d of %d handshakes from 127.0.0.3 "
           "(20 ms away) completed (slowest %.2f s); %ld log lines ", made, secs, ok, TRIES,
           slowest, lines);
    CU_ASSERT(made > 2000);
    CU_ASSERT_EQUAL(ok, TRIES);
    CU_ASSERT(lines < 1500);
    CU_ASSERT(srv_log_count(h, ARGS("suppressed")) >= 1);
    CU_ASSERT_EQUAL(settle_fds(h, fds0), fds0);
    CU_ASSERT(served(h));
}

/* 1 when the server closed fd (EOF or reset) within `limit` seconds. */
static int closed_within(int fd, double limit)
{
    return wait_closed(fd, limit) >= 0;
}

/* H3.  At the global handshake cap the oldest handshake of all went, even
 * when it belonged to a quiet address and the cap was filled by another:
 * the flooding address evicted everyone else's.  Now the address holding
 * the most handshakes loses its own oldest. */
static void test_h3_global_cap(void)
{
    /* Silent connections of both kinds (B2): on a fresh node each. */
    for (int kind = 0; kind < 2; kind++) {
        srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS(
            "-w", "1", "--max-unauthenticated", "16", "--max-handshakes-per-address", "12")});
        CU_ASSERT_PTR_NOT_NULL_FATAL(h);
        int fds0 = warm_fds(h);
        int quiet[4], loud[12];
        for (int i = 0; i < 4; i++) /* the oldest of all: a quiet address's */
            quiet[i] = silent_connect_from("127.0.0.4", h, kind);
        sleep_s(0.1);
        for (int i = 0; i < 12; i++)
            loud[i] = silent_connect_from("127.0.0.2", h, kind);
        sleep_s(0.1);
        /* The cap is full: one more, from a third address. */
        int extra = silent_connect_from("127.0.0.5", h, kind);
        CU_ASSERT_FATAL(extra >= 0);
        int loud_oldest = closed_within(loud[0], 1.0);
        int quiet_closed = 0;
        for (int i = 0; i < 4; i++)
            quiet_closed += closed_within(quiet[i], 0.05);
        int loud_others = 0;
        for (int i = 1; i < 12; i++)
            loud_others += closed_within(loud[i], 0.05);
        printf("\n    at the cap (%s): the loud address's oldest %s, %d of the quiet one's "
               "closed ", silent_kinds[kind], loud_oldest ? "closed" : "open", quiet_closed);
        CU_ASSERT(loud_oldest);
        CU_ASSERT_EQUAL(quiet_closed, 0);
        CU_ASSERT_EQUAL(loud_others, 0);
        CU_ASSERT_FALSE(closed_within(extra, 0.05));
        CU_ASSERT(srv_log_count(h, ARGS("127.0.0.2:", "too many unauthenticated connections")) ==
                  1);
        for (int i = 0; i < 4; i++)
            raw_close(quiet[i]);
        for (int i = 0; i < 12; i++)
            raw_close(loud[i]);
        raw_close(extra);
        CU_ASSERT_EQUAL(settle_fds(h, fds0), fds0);
        CU_ASSERT(served(h));
    }
}

/* Runs task("s" arg) on h's node: its result text (malloc'd), or NULL. */
static char *run_on(srv_harness *h, pp_task task, const char *arg, int *status)
{
    pp_server *s = client_new(&(client_cfg){.ncpus = 0}, &h, 1);
    if (!s)
        return NULL;
    pp_job *j = pp_submitf(s, task, NULL, "s", arg);
    int st = j ? pp_job_wait_for(j, 20) : -1;
    if (status)
        *status = st;
    size_t len = 0;
    const char *r = st == PP_DONE ? pp_job_result(j, &len) : j ? pp_job_error(j) : NULL;
    char *out = NULL;
    if (r && (out = malloc(len + 1 > 1 ? len + 1 : strlen(r) + 1))) {
        if (st == PP_DONE) {
            memcpy(out, r, len);
            out[len] = 0;
        } else {
            strcpy(out, r);
        }
    }
    pp_job_free(j);
    cl_client_free(s);
    return out;
}

/* Whether `len` bytes at p contain the string s. */
static int holds(const char *p, size_t len, const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; p && n && i + n <= len; i++)
        if (memcmp(p + i, s, n) == 0)
            return 1;
    return 0;
}

/* H5.  Attack: job code on the node read what the ppserver running it
 * shows: /proc/<parent>/cmdline held `-s SECRET`, /proc/<parent>/environ
 * the PP_SECRET it started with (unsetenv() leaves the original block as
 * it was), and a job of the node's own user could open /proc/<parent>/mem
 * and ptrace it.  Now ppserver wipes both in place and is not dumpable. */
static void test_h5_secret_out_of_reach(void)
{
    char secret[65];
    CU_ASSERT_EQUAL_FATAL(pp_auth_gen_secret(secret), 0);
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-w", "1", "-s", secret),
                                             .no_secret_file = 1, .env_secret = secret});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    snprintf(h->secret, sizeof h->secret, "%s", secret);
    static const char *const names[] = {"cmdline", "environ"};
    for (size_t i = 0; i < PP_ARRAY_LEN(names); i++) {
        /* What job code reads... */
        int st = -1;
        char *got = run_on(h, t_parent_file, names[i], &st);
        CU_ASSERT(st == PP_DONE && got);
        CU_ASSERT_FALSE(got && strstr(got, secret));
        free(got);
        /* ... and every byte of it, as this process reads it. */
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/%s", (int)h->pid, names[i]);
        size_t len = 0;
        char *text = srv_slurp(path, &len);
        if (text) {
            int found = holds(text, len, secret);
            if (found)
                fprintf(stderr, "\n    H5 the secret is in %s\n", path);
            CU_ASSERT_FALSE(found);
        }
        free(text);
    }
    if (geteuid() != 0) {
        /* Job code of the node's own user: not dumpable, so neither. */
        char *env = run_on(h, t_parent_file, "environ", NULL);
        char *mem = run_on(h, t_parent_file, "mem", NULL);
        CU_ASSERT(env && strncmp(env, "(cannot open", 12) == 0);
        CU_ASSERT(mem && strncmp(mem, "(cannot open", 12) == 0);
        free(env);
        free(mem);
    } else {
        printf("\n    (as root, job code is root too and may open /proc/<parent>/environ "
               "and mem: see --worker-user) ");
    }
    CU_ASSERT(served(h));
}

/* Runs ppserver with argv as user `uid` (needs root): exit status, its
 * stderr in *err (malloc'd). */
static int run_as(uid_t uid, gid_t gid, const char *const *argv, double limit, char **err)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 2);
        if (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0)
            _exit(120);
        execv(srv_exe(), (char *const *)argv);
        _exit(121);
    }
    close(p[1]);
    char buf[4096];
    size_t n = 0;
    double end = now_s() + limit;
    int status = -1;
    for (;;) {
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        if (poll(&pfd, 1, 50) > 0) {
            ssize_t k = read(p[0], buf + n, sizeof buf - 1 - n);
            if (k > 0)
                n += (size_t)k;
        }
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
        if (now_s() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
    }
    ssize_t k;
    while (n < sizeof buf - 1 && (k = read(p[0], buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)k;
    close(p[0]);
    buf[n] = 0;
    *err = strdup(buf);
    return status;
}

/* H5.  --worker-user: a ppserver started as root runs its workers as that
 * user, who drop their privileges before they load any module: job code
 * can then neither read ppserver's memory or environment nor write to the
 * module cache.  Started by anyone but root, ppserver refuses the option
 * (exit 78).  The first part needs root: without it, it is skipped (said
 * so) and only the refusal is checked. */
static void test_h5_worker_user(void)
{
    srv_harness h0;
    CU_ASSERT_EQUAL_FATAL(srv_prepare(&h0), 0);
    struct passwd *pw = getpwnam("nobody");
    const char *const argv[] = {"ppserver", "-p", "0", "-i", "127.0.0.1", "-w", "0",
                                "--secret-file", h0.secret_file, "--worker-user", "nobody",
                                NULL};
    char *err = NULL;
    int st;
    if (geteuid() != 0) {
        st = srv_run_once(argv, NULL, 3, &err);
    } else {
        CU_ASSERT_PTR_NOT_NULL_FATAL(pw);
        st = run_as(pw->pw_uid, pw->pw_gid, argv, 3, &err);
    }
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 78);
    CU_ASSERT(err && strstr(err, "--worker-user") && strstr(err, "root"));
    if (!(WIFEXITED(st) && WEXITSTATUS(st) == 78))
        fprintf(stderr, "\n    --worker-user not as root: status 0x%x: %s\n", st, err);
    free(err);
    srv_cleanup(&h0);
    if (geteuid() != 0) {
        printf("\n    (skipped: running workers as another user needs root; this is uid %d) ",
               (int)geteuid());
        return;
    }
    srv_harness *h = calloc(1, sizeof *h);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_EQUAL_FATAL(srv_prepare(h), 0);
    CU_ASSERT_EQUAL(chmod(h->dir, 0711), 0); /* the workers reach the cache through it */
    h = cl_server_start_on(h, &(srv_opts){.args = ARGS("-w", "1", "--worker-user", "nobody")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT(served(h)); /* the module, read from the cache as nobody */
    pp_server *s = client_new(&(client_cfg){.ncpus = 0}, &h, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_job *j = pp_submit(s, t_ids, NULL, 0, NULL);
    long uid = -1, gid = -1;
    CU_ASSERT(j && pp_job_wait_for(j, 20) == PP_DONE && pp_job_unpack(j, "ll", &uid, &gid) == 0);
    CU_ASSERT_EQUAL(uid, (long)pw->pw_uid);
    CU_ASSERT_EQUAL(gid, (long)pw->pw_gid);
    pp_job_free(j);
    cl_client_free(s);
    static const char *const secret_files[] = {"environ", "mem"};
    for (size_t i = 0; i < PP_ARRAY_LEN(secret_files); i++) {
        char *got = run_on(h, t_parent_file, secret_files[i], NULL);
        if (!got || strncmp(got, "(cannot open", 12) != 0)
            fprintf(stderr, "\n    H5 a worker read /proc/<ppserver>/%s: %.60s\n",
                    secret_files[i], got ? got : "(no result)");
        CU_ASSERT(got && strncmp(got, "(cannot open", 12) == 0);
        free(got);
    }
    char planted[400];
    snprintf(planted, sizeof planted, "%s/planted.so", h->cache_dir);
    s = client_new(&(client_cfg){.ncpus = 0}, &h, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    j = pp_submitf(s, t_try_create, NULL, "s", planted);
    long e = 0;
    CU_ASSERT(j && pp_job_wait_for(j, 20) == PP_DONE && pp_job_unpack(j, "l", &e) == 0);
    CU_ASSERT_EQUAL(e, EACCES);
    pp_job_free(j);
    cl_client_free(s);
    CU_ASSERT(served(h));
}

/* ---- H6: a node announcing absurd limits ---- */

/* A fake node that knows the secret: TLS with its key, then a correct
 * handshake (pp_handshake.h's server side, bound to the TLS session)
 * announcing max_frame and ncpus as told; PING answered; with `bomb` 1, a JOB
 * gets a compressed RESULT that declares 0xFFFFFFF0 bytes; with 2, every
 * job gets a well-formed one-item batch result with the batch flag (a lie
 * for a plain job); with 3, a batch job gets a batch result of one item
 * whatever its count; with 4, a 2 MiB plain result whose status is none
 * (99); with 5, a 2 MiB result flagged as a batch's for a plain job. */
typedef struct fake_node {
    int lfd, port;
    char secret[80];
    uint32_t max_frame, ncpus;
    int bomb;
    pp_auth_key key;
    atomic_int stop;
    atomic_int seen[256];
    atomic_int conns, tls_up, tls_refused;
    atomic_int accepted;     /* handshakes it completed */
    pthread_t th;
    int running;
} fake_node;

/* One client connection of a fake node: its handshake's state. */
typedef struct fake_node_conn {
    fake_node *fn;
    pp_hs hs;
    uint8_t binding[PP_TLS_BINDING_LEN];
} fake_node_conn;

/* A 2 MiB uncompressed RRESULT that lies (fake_node's bomb 4 and 5): a
 * client receives it into a shared buffer before it can tell. */
static void big_lie(int cfd, uint64_t id, int bomb)
{
    size_t n = 2u << 20;
    uint8_t *p = calloc(1, n);
    if (!p)
        return;
    pp_proto_result_head(p, PP_DONE, 1000);
    if (bomb == 4)
        p[0] = 99; /* the status byte: no such status */
    send_frame(cfd, PP_T_RRESULT, bomb == 5 ? PP_WIRE_F_BATCH : 0, id, p, n);
    free(p);
}

/* Handles one frame of a fake node's client. */
static void fake_node_frame(int cfd, const pp_frame *fr, void *arg)
{
    fake_node_conn *c = arg;
    fake_node *fn = c->fn;
    atomic_fetch_add(&fn->seen[fr->hdr.type], 1);
    if (fr->hdr.type == PP_T_HELLO) {
        uint8_t chal[PP_CHALLENGE_LEN];
        if (pp_hs_server_hello(&c->hs, &fn->key, c->binding, fr, fn->max_frame, fn->ncpus,
                               chal) == PP_HS_OK)
            send_frame(cfd, PP_T_CHALLENGE, 0, 0, chal, sizeof chal);
    } else if (fr->hdr.type == PP_T_PROOF) {
        uint8_t mac[PP_MAC_LEN];
        if (pp_hs_server_proof(&c->hs, fr, mac) == PP_HS_OK) {
            send_frame(cfd, PP_T_ACCEPT, 0, 0, mac, sizeof mac);
            atomic_fetch_add(&fn->accepted, 1);
        }
    } else if (fr->hdr.type == PP_T_PING) {
        send_frame(cfd, PP_T_PONG, 0, fr->hdr.id, NULL, 0);
    } else if (fr->hdr.type == PP_T_RJOB && fn->bomb >= 4) {
        big_lie(cfd, fr->hdr.id, fn->bomb);
    } else if (fr->hdr.type == PP_T_RJOB && fn->bomb >= 2) {
        if (fn->bomb == 3 && !(fr->hdr.flags & PP_WIRE_F_BATCH))
            return;
        /* One item, "4", in a batch result after the result head. */
        pp_buf b, items;
        pp_buf_init(&b, 1u << 20);
        pp_buf_init(&items, 1u << 20);
        uint8_t head[PP_RESULT_HDR];
        pp_proto_result_head(head, PP_DONE, 1000);
        if (pp_buf_append(&b, head, sizeof head) == 0) {
            long four = 4;
            if (pp_proto_batch_begin(&items) == 0 &&
                pp_proto_batch_add_result(&items, PP_DONE, &four, sizeof four) == 0 &&
                pp_buf_append(&b, items.data, items.len) == 0)
                send_frame(cfd, PP_T_RRESULT, PP_WIRE_F_BATCH, fr->hdr.id, b.data, b.len);
        }
        pp_buf_reset(&items);
        pp_buf_reset(&b);
    } else if (fr->hdr.type == PP_T_RJOB && fn->bomb) {
        /* A result declaring 0xFFFFFFF0 bytes (its stream holds only the
         * head: a receiver that believed the size allocated it first). */
        uint8_t head[PP_RESULT_HDR];
        pp_proto_result_head(head, PP_DONE, 1000);
        void *zip = NULL;
        size_t zlen = 0;
        if (pp_zip_deflate(head, sizeof head, 6, &zip, &zlen) == 0) {
            pp_store32(zip, 0xFFFFFFF0u);
            send_frame(cfd, PP_T_RRESULT, PP_WIRE_F_ZLIB, fr->hdr.id, zip, zlen);
        }
        free(zip);
    }
}

static void *fake_node_main(void *arg)
{
    fake_node *fn = arg;
    while (!atomic_load(&fn->stop)) {
        int cfd = fake_accept(fn->lfd, fn->secret, &fn->conns, &fn->tls_up, &fn->tls_refused);
        if (cfd < 0)
            continue;
        fake_node_conn c = {.fn = fn};
        if (rt_binding(cfd, c.binding) == 0) {
            fake_serve(cfd, 1u << 20, &fn->stop, fake_node_frame, &c);
        } else {
            rt_forget(cfd);
            close(cfd);
        }
        pp_hs_wipe(&c.hs);
    }
    return NULL;
}

static fake_node *fake_nodes[4];

static fake_node *fake_node_start(const char *secret, uint32_t max_frame, uint32_t ncpus,
                                  int bomb)
{
    fake_node *fn = calloc(1, sizeof *fn);
    if (!fn)
        return NULL;
    snprintf(fn->secret, sizeof fn->secret, "%s", secret);
    fn->max_frame = max_frame;
    fn->ncpus = ncpus;
    fn->bomb = bomb;
    if (rt_key(secret, &fn->key) != 0 || (fn->lfd = fake_listen(&fn->port)) < 0) {
        free(fn);
        return NULL;
    }
    if (pthread_create(&fn->th, NULL, fake_node_main, fn) != 0) {
        close(fn->lfd);
        free(fn);
        return NULL;
    }
    fn->running = 1;
    for (int i = 0; i < 4; i++)
        if (!fake_nodes[i]) {
            fake_nodes[i] = fn;
            break;
        }
    return fn;
}

static void fake_nodes_stop(void)
{
    for (int i = 0; i < 4; i++) {
        fake_node *fn = fake_nodes[i];
        if (!fn)
            continue;
        atomic_store(&fn->stop, 1);
        pthread_join(fn->th, NULL);
        close(fn->lfd);
        pp_auth_wipe(&fn->key, sizeof fn->key);
        free(fn);
        fake_nodes[i] = NULL;
    }
}

/* A client of one fake node (no local workers), jobs submitted. */
static pp_server *fake_client(fake_node *fn, const char *secret, char *name, size_t namelen,
                              pp_job **jobs, int n)
{
    snprintf(name, namelen, "127.0.0.1:%d", fn->port);
    const char *list[] = {name, NULL};
    pp_server *s = pp_server_new(&(pp_config){.ncpus = 0, .ppservers = list, .secret = secret});
    if (!s)
        return NULL;
    cl_track(s);
    for (long i = 0; i < n; i++)
        jobs[i] = pp_submitf(s, t_square, NULL, "l", i);
    return s;
}

/* The jobs finish on a local worker once there is one. */
static void finish_locally(pp_server *s, pp_job **jobs, int n)
{
    CU_ASSERT_EQUAL(pp_set_ncpus(s, 1), 0);
    CU_ASSERT_EQUAL(cl_wait_jobs(jobs, n, 30), n);
    for (long i = 0; i < n; i++) {
        long v = -1;
        CU_ASSERT(pp_job_unpack(jobs[i], "l", &v) == 0 && v == i * i);
        CU_ASSERT_STRING_EQUAL(pp_job_node(jobs[i]), "local");
        pp_job_free(jobs[i]);
    }
}

/* The end of a test with a lying node: its jobs finish locally, the
 * client and the fake nodes go, libpp's log is shown again. */
static void liar_end(pp_server *s, pp_job **jobs, int n)
{
    finish_locally(s, jobs, n);
    cl_client_free(s);
    fake_nodes_stop();
    free(capture_end());
}

/* H6.  Attack: a node that knows the secret (so the handshake is correct
 * both ways) announces a largest frame of 0xFFFFFFFF bytes and 4294967295
 * CPUs, hoping libpp wraps its limit around or sizes its window (and its
 * memory) by the CPUs: libpp refuses the CHALLENGE.  One announcing 0 CPUs
 * is up but gets no job. */
static void test_h6_node_limits(void)
{
    static const char secret[] = "the-fake-node-knows-it-0123456789abcdef";
    enum { N = 5 };
    pp_job *jobs[N];
    char name[64];
    long hwm0 = srv_status_kb(getpid(), "VmHWM");
    /* Absurd limits. */
    fake_node *fn = fake_node_start(secret, 0xFFFFFFFFu, 0xFFFFFFFFu, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fn);
    pp_server *s = fake_client(fn, secret, name, sizeof name, jobs, N);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    double end = now_s() + 5;
    while (atomic_load(&fn->seen[PP_T_HELLO]) < 2 && now_s() < end)
        sleep_s(0.02);
    sleep_s(0.3);
    CU_ASSERT(atomic_load(&fn->seen[PP_T_HELLO]) >= 1);
    CU_ASSERT_EQUAL(atomic_load(&fn->seen[PP_T_PROOF]), 0); /* the CHALLENGE was refused */
    CU_ASSERT_EQUAL(atomic_load(&fn->seen[PP_T_RJOB]), 0);
    CU_ASSERT(cl_node_state(s, name) != PP_NODE_UP);
    finish_locally(s, jobs, N);
    cl_client_free(s);
    /* No CPU. */
    fn = fake_node_start(secret, 1u << 20, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fn);
    s = fake_client(fn, secret, name, sizeof name, jobs, N);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT(cl_wait_state(s, name, PP_NODE_UP, 5));
    pp_node_info ni;
    CU_ASSERT(cl_node_info(s, name, &ni) == 0 && ni.ncpus == 0);
    sleep_s(0.5);
    CU_ASSERT_EQUAL(atomic_load(&fn->seen[PP_T_RJOB]), 0);
    finish_locally(s, jobs, N);
    CU_ASSERT_EQUAL(atomic_load(&fn->seen[PP_T_RJOB]), 0);
    cl_client_free(s);
    long hwm = srv_status_kb(getpid(), "VmHWM");
    printf("\n    this process's VmHWM %ld kB -> %ld kB ", hwm0, hwm);
    CU_ASSERT(hwm - hwm0 < 256 * 1024);
    fake_nodes_stop();
}

/* H6.  Attack: the same node announcing 0xFFFFFFFF as its largest frame
 * but 1 CPU is believed for what it may receive, gets a job, and answers
 * with a compressed result declaring 0xFFFFFFF0 bytes: libpp must refuse it
 * on its own limit (1 GiB) before allocating, not on the node's. */
static void test_h6_result_bomb(void)
{
    static const char secret[] = "the-fake-node-knows-it-0123456789abcdef";
    enum { N = 1 };
    pp_job *jobs[N];
    char name[64];
    CU_ASSERT_EQUAL_FATAL(capture_start(tmpdir), 0);
    fake_node *fn = fake_node_start(secret, 0xFFFFFFFFu, 1, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fn);
    pp_server *s = fake_client(fn, secret, name, sizeof name, jobs, N);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    wait_captured("bad compressed result", 1, 10);
    char *said = captured();
    CU_ASSERT(atomic_load(&fn->seen[PP_T_RJOB]) >= 1);
    const char *why = said ? strstr(said, "bad compressed result") : NULL;
    CU_ASSERT_PTR_NOT_NULL(why);
    CU_ASSERT(why && strstr(why, "exceeds the limit"));
    free(said);
    liar_end(s, jobs, N);
}

/* H7.  Attack: a node that knows the secret answers a plain job with a
 * well-formed batch result (the batch flag set), hoping libpp hands the
 * batch bytes over as the job's result: libpp drops the node and the job
 * runs elsewhere, with its right result. */
static void test_h7_batch_flag_lie(void)
{
    static const char secret[] = "the-fake-node-knows-it-0123456789abcdef";
    enum { N = 3 };
    pp_job *jobs[N];
    char name[64];
    CU_ASSERT_EQUAL_FATAL(capture_start(tmpdir), 0);
    fake_node *fn = fake_node_start(secret, 1u << 20, 1, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fn);
    pp_server *s = fake_client(fn, secret, name, sizeof name, jobs, N);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    int said = wait_captured("a batch result for a job that is not a batch", 1, 10);
    CU_ASSERT(atomic_load(&fn->seen[PP_T_RJOB]) >= 1);
    CU_ASSERT(said >= 1);
    for (int i = 0; i < N; i++) /* none took the node's bytes */
        CU_ASSERT_EQUAL(pp_job_status(jobs[i]), PP_PENDING);
    liar_end(s, jobs, N);
}

/* H7.  Attack: a node answers with 2 MiB that lie -- a status that is
 * none, or a batch's flag on a plain job's result -- which libpp receives
 * into one of its shared buffers before it can tell: it drops the node
 * saying why, lets the buffer go (no leak under ASan), and the jobs run
 * elsewhere with their right results. */
static void test_h7_large_lie(void)
{
    static const char secret[] = "the-fake-node-knows-it-0123456789abcdef";
    static const char *const why[] = {"the node sent a malformed result",
                                      "a batch result for a job that is not a batch"};
    enum { N = 3 };
    for (int k = 0; k < 2; k++) {
        pp_job *jobs[N];
        char name[64];
        CU_ASSERT_EQUAL_FATAL(capture_start(tmpdir), 0);
        fake_node *fn = fake_node_start(secret, 8u << 20, 1, 4 + k);
        CU_ASSERT_PTR_NOT_NULL_FATAL(fn);
        pp_server *s = fake_client(fn, secret, name, sizeof name, jobs, N);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        CU_ASSERT(wait_captured(why[k], 1, 10) >= 1);
        for (int i = 0; i < N; i++) /* none took the node's bytes */
            CU_ASSERT_EQUAL(pp_job_status(jobs[i]), PP_PENDING);
        liar_end(s, jobs, N);
    }
}

/* H7.  Attack: a node answers a map's batch job with a batch result of one
 * item, whatever the batch held: the map never takes an item's result from
 * the wrong place; the items of that batch fail saying why, none is "done"
 * with a wrong value. */
static void test_h7_batch_count_lie(void)
{
    static const char secret[] = "the-fake-node-knows-it-0123456789abcdef";
    enum { N = 40 };
    char name[64];
    fake_node *fn = fake_node_start(secret, 1u << 20, 1, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fn);
    snprintf(name, sizeof name, "127.0.0.1:%d", fn->port);
    const char *list[] = {name, NULL};
    pp_server *s = pp_server_new(&(pp_config){.ncpus = 0, .ppservers = list, .secret = secret});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    cl_track(s);
    long items[N];
    for (long i = 0; i < N; i++)
        items[i] = i;
    pp_map *m = pp_map_new(s, t_sq8, items, sizeof items[0], N,
                           &(pp_map_opts){.batch = 10});
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    int failed = 0, wrong = 0;
    double end = now_s() + 20;
    for (size_t i = 0; i < N && now_s() < end; i++) {
        const void *data = NULL;
        size_t len = 0;
        int st = pp_map_result(m, i, &data, &len);
        if (st == PP_DONE) {
            long v;
            memcpy(&v, data, sizeof v);
            wrong += len != sizeof v || v != (long)(i * i);
        } else {
            failed++;
            if (failed == 1)
                CU_ASSERT_PTR_NOT_NULL(strstr((const char *)data, "pp_map"));
        }
    }
    CU_ASSERT_EQUAL(wrong, 0);
    CU_ASSERT_EQUAL(failed, N);
    pp_map_free(m);
    cl_client_free(s);
    fake_nodes_stop();
}

/* ==== registration ==================================================== */

static int suite_init(void)
{
    if (cl_suite_env() != 0)
        return -1;
    if (!tmpdir[0] && tmpdir_make(tmpdir, sizeof tmpdir, "remote") != 0)
        return -1;
    return 0;
}

static int suite_clean(void)
{
    if (tmpdir[0]) {
        rmdir(tmpdir);
        tmpdir[0] = 0;
    }
    return 0;
}

static int add_suite(const char *name, const pp_test *tests)
{
    return pp_add_suite_with(name, suite_init, suite_clean, test_setup, test_teardown, tests);
}

/* ==== control over jobs: CANCEL, priorities, batches, recycling ======== */

/* A raw client that runs real jobs: the test task module is sent when the
 * node asks for it (NEED), PINGs are answered, and results are read one
 * by one with their header. */
typedef struct rawc {
    int fd;
    uint8_t hash[PP_SHA256_LEN];
    void *zip;                /* the module as a MODULE frame carries it */
    size_t zlen;
} rawc;

static int rc_open(rawc *c, const srv_harness *h)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    size_t mlen = 0;
    char *mod = srv_slurp(getenv("PP_TEST_TASKS"), &mlen);
    if (!mod)
        return -1;
    pp_sha256(mod, mlen, c->hash);
    int rc = pp_zip_deflate(mod, mlen, 6, &c->zip, &c->zlen);
    free(mod);
    hs_state x;
    if (rc == 0)
        c->fd = raw_auth(h->port, h->secret, &x);
    return c->fd >= 0 ? 0 : -1;
}

static void rc_close(rawc *c)
{
    raw_close(c->fd);
    c->fd = -1;
    free(c->zip);
    c->zip = NULL;
}

/* A one-worker node and two raw clients of it, or a fatal failure. */
static srv_harness *rc_pair(rawc *a, rawc *b)
{
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-w", "1")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_EQUAL_FATAL(rc_open(a, h), 0);
    CU_ASSERT_EQUAL_FATAL(rc_open(b, h), 0);
    return h;
}

/* An RJOB of the test module's `symbol` with this id, priority and flags. */
static int rc_job(rawc *c, uint64_t id, const char *symbol, int32_t prio, uint16_t flags,
                  const void *arg, size_t len)
{
    uint8_t head[PP_RJOB_HEAD_MAX];
    size_t hl = pp_proto_rjob_head(head, c->hash, symbol, 0, prio);
    uint8_t *p = malloc(hl + len + 1);
    if (!hl || !p) {
        free(p);
        return -1;
    }
    memcpy(p, head, hl);
    if (len)
        memcpy(p + hl, arg, len);
    int rc = send_frame(c->fd, PP_T_RJOB, flags, id, p, hl + len);
    free(p);
    return rc;
}

/* A job whose argument is pp_pack(fmt, one value). */
static int rc_job_l(rawc *c, uint64_t id, const char *symbol, int32_t prio, long v)
{
    pp_buf b;
    pp_buf_init(&b, 64);
    int rc = pp_pack(&b, "l", v) != 0 ? -1 : rc_job(c, id, symbol, prio, 0, b.data, b.len);
    pp_buf_reset(&b);
    return rc;
}

/* A result as read by rc_result(). */
typedef struct rres {
    uint64_t id;
    uint16_t flags;
    int status;
    uint8_t *payload;         /* malloc'd (the frame's payload) */
    const uint8_t *data;      /* the result or error text, in payload */
    size_t len;
} rres;

/* The next RRESULT within `limit` seconds, sending the module when asked
 * and answering PINGs: 1, 0 when the connection ended, -1 on timeout or
 * anything else. */
static int rc_result(rawc *c, double limit, rres *r)
{
    double end = now_s() + limit;
    memset(r, 0, sizeof *r);
    for (;;) {
        double left = end - now_s();
        if (left <= 0)
            return -1;
        pp_frame_hdr h;
        uint8_t *p = NULL;
        int k = read_frame(c->fd, left, &h, &p);
        if (k != 1)
            return k;
        if (h.type == PP_T_NEED) {
            int ok = h.len == PP_SHA256_LEN && memcmp(p, c->hash, PP_SHA256_LEN) == 0 &&
                     send_module(c->fd, c->hash, c->zip, c->zlen) == 0;
            free(p);
            if (!ok)
                return -1;
            continue;
        }
        if (h.type == PP_T_PING) {
            send_frame(c->fd, PP_T_PONG, 0, h.id, NULL, 0);
            free(p);
            continue;
        }
        if (h.type != PP_T_RRESULT || (h.flags & PP_WIRE_F_ZLIB)) {
            if (h.type != PP_T_NCPUS) {
                fprintf(stderr, "\n  unexpected frame type %u, flags %u\n", h.type, h.flags);
                free(p);
                return -1;
            }
            free(p);
            continue;
        }
        pp_msg_result m;
        if (pp_proto_result_decode(p, h.len, 0xFFFFu, &m) != 0) {
            free(p);
            return -1;
        }
        *r = (rres){.id = h.id, .flags = h.flags, .status = m.status, .payload = p,
                    .data = m.data, .len = m.len};
        return 1;
    }
}

/* The "l" value of a result (a pid, for t_pid and t_sleep), or -1. */
static long rres_long(const rres *r)
{
    long v = -1;
    if (r->status != PP_DONE || pp_unpack(r->data, r->len, "l", &v) != 0)
        return -1;
    return v;
}

/* Reads n results into out[] (ids recorded in order); the count read. */
static int rc_results(rawc *c, int n, double limit, rres *out)
{
    double end = now_s() + limit;
    int got = 0;
    while (got < n && rc_result(c, end - now_s(), &out[got]) == 1)
        got++;
    return got;
}

static void rres_free(rres *r, int n)
{
    for (int i = 0; i < n; i++) {
        free(r[i].payload);
        r[i].payload = NULL;
    }
}

static int pid_gone_within(long pid, double limit)
{
    for (double end = now_s() + limit; now_s() < end; sleep_s(0.01))
        if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
            return 1;
    return 0;
}

/* CANCEL of a job still queued: it ends PP_CANCELLED at once and never
 * runs (its file never appears); the job running meanwhile is not
 * disturbed; CANCELs of an unknown id, of an answered one and a second
 * CANCEL of the same job are ignored, and the connection stays up. */
static void test_cancel_queued(void)
{
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-w", "1")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    rawc c;
    CU_ASSERT_EQUAL_FATAL(rc_open(&c, h), 0);
    char running[600], never[600];
    snprintf(running, sizeof running, "%s/cancel-running.pid", tmpdir);
    snprintf(never, sizeof never, "%s/cancel-never.pid", tmpdir);
    unlink(running);
    unlink(never);
    /* A sleeper holds the one worker (its pid file says it runs). */
    CU_ASSERT_EQUAL(rc_job_l(&c, 1, "t_sleep", 0, 700), 0);
    rres r;
    CU_ASSERT_EQUAL(rc_result(&c, 0.3, &r), -1); /* sends the module meanwhile */
    CU_ASSERT_EQUAL(rc_job(&c, 2, "t_pid_file_sleep", 0, 0, never, strlen(never)), 0);
    CU_ASSERT_EQUAL(send_frame(c.fd, PP_T_CANCEL, 0, 2, NULL, 0), 0);
    CU_ASSERT_EQUAL(send_frame(c.fd, PP_T_CANCEL, 0, 2, NULL, 0), 0);     /* again */
    CU_ASSERT_EQUAL(send_frame(c.fd, PP_T_CANCEL, 0, 777, NULL, 0), 0);   /* never sent */
    double t0 = now_s();
    CU_ASSERT_EQUAL_FATAL(rc_result(&c, 5, &r), 1);
    CU_ASSERT(r.id == 2 && r.status == PP_CANCELLED && r.flags == 0);
    CU_ASSERT(r.len == strlen("cancelled by the client") &&
              memcmp(r.data, "cancelled by the client", r.len) == 0);
    CU_ASSERT(now_s() - t0 < 0.5); /* at once, not after the sleeper */
    rres_free(&r, 1);
    /* The sleeper ends as it would have; then nothing more comes (one
     * result per job), and the cancelled job never ran. */
    CU_ASSERT_EQUAL_FATAL(rc_result(&c, 10, &r), 1);
    CU_ASSERT(r.id == 1 && r.status == PP_DONE);
    rres_free(&r, 1);
    CU_ASSERT_EQUAL(send_frame(c.fd, PP_T_CANCEL, 0, 1, NULL, 0), 0); /* answered already */
    CU_ASSERT_EQUAL(rc_result(&c, 0.5, &r), -1);
    struct stat st;
    CU_ASSERT_NOT_EQUAL(stat(never, &st), 0);
    /* The connection is still up and runs jobs. */
    CU_ASSERT_EQUAL(rc_job(&c, 3, "t_pid", 0, 0, NULL, 0), 0);
    CU_ASSERT_EQUAL_FATAL(rc_result(&c, 10, &r), 1);
    CU_ASSERT(r.id == 3 && rres_long(&r) > 0);
    rres_free(&r, 1);
    CU_ASSERT_NOT_EQUAL(stat(never, &st), 0);
    /* A CANCEL with a payload is not the protocol: refused, closed. */
    CU_ASSERT_EQUAL(send_frame(c.fd, PP_T_CANCEL, 0, 3, "x", 1), 0);
    refusal rf = expect_close(c.fd, 5);
    CU_ASSERT(rf.got_error && rf.code == PP_E_PROTOCOL && rf.closed);
    CU_ASSERT_PTR_NOT_NULL(strstr(rf.msg, "malformed CANCEL"));
    rc_close(&c);
    unlink(running);
    CU_ASSERT(served(h));
}

/* CANCEL of a job running on a worker: that worker is killed (its pid is
 * gone) and replaced, the client gets PP_CANCELLED, its next job starts
 * within a second on the new worker, and another client's job queued on
 * the same node completes as usual. */
static void test_cancel_running(void)
{
    rawc a, b;
    srv_harness *h = rc_pair(&a, &b);
    char path[600];
    snprintf(path, sizeof path, "%s/cancel-long.pid", tmpdir);
    unlink(path);
    /* A's job would sleep 30 s. */
    CU_ASSERT_EQUAL(rc_job(&a, 1, "t_pid_file_sleep", 0, 0, path, strlen(path)), 0);
    rres r;
    long pid = -1;
    for (double end = now_s() + 10; pid <= 0 && now_s() < end;) {
        rc_result(&a, 0.05, &r); /* sends the module when asked */
        rres_free(&r, 1);
        pid = read_pid_file(path);
    }
    CU_ASSERT_FATAL(pid > 0);
    /* B's job and A's next one wait for the worker. */
    CU_ASSERT_EQUAL(rc_job_l(&b, 9, "t_sleep", 0, 100), 0);
    CU_ASSERT_EQUAL(rc_job(&a, 2, "t_pid", 0, 0, NULL, 0), 0);
    CU_ASSERT_EQUAL(rc_result(&b, 0.3, &r), -1); /* B's module: already here */
    double t0 = now_s();
    CU_ASSERT_EQUAL(send_frame(a.fd, PP_T_CANCEL, 0, 1, NULL, 0), 0);
    CU_ASSERT_EQUAL_FATAL(rc_result(&a, 5, &r), 1);
    CU_ASSERT(r.id == 1 && r.status == PP_CANCELLED);
    CU_ASSERT(r.len == strlen("cancelled by the client") &&
              memcmp(r.data, "cancelled by the client", r.len) == 0);
    rres_free(&r, 1);
    CU_ASSERT(pid_gone_within(pid, 2));
    /* A's next job, on a new worker, within a second of the CANCEL (B's
     * 100 ms job may go first: workers are shared in turn). */
    CU_ASSERT_EQUAL_FATAL(rc_result(&a, 5, &r), 1);
    double waited = now_s() - t0;
    long npid = rres_long(&r);
    CU_ASSERT(r.id == 2 && npid > 0 && npid != pid);
    CU_ASSERT(waited < 1.0);
    printf("\n    cancelled worker %ld gone; next job on worker %ld %.0f ms after the CANCEL ",
           pid, npid, waited * 1e3);
    rres_free(&r, 1);
    CU_ASSERT_EQUAL_FATAL(rc_result(&b, 5, &r), 1);
    CU_ASSERT(r.id == 9 && r.status == PP_DONE);
    rres_free(&r, 1);
    /* Nothing more for either: one result per job. */
    CU_ASSERT_EQUAL(rc_result(&a, 0.3, &r), -1);
    CU_ASSERT_EQUAL(rc_result(&b, 0.1, &r), -1);
    rc_close(&a);
    rc_close(&b);
    unlink(path);
    CU_ASSERT(served(h));
}

/* Priorities on a one-worker node: 20 jobs of priority 0 and 20 of
 * priority 10, sent interleaved while the worker is busy, run all the
 * priority-10 ones first, each priority in arrival order. */
static void test_priorities(void)
{
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-w", "1")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    rawc c;
    CU_ASSERT_EQUAL_FATAL(rc_open(&c, h), 0);
    rres r;
    /* The module first, so that nothing waits for it below. */
    CU_ASSERT_EQUAL(rc_job(&c, 1000, "t_echo", 0, 0, "w", 1), 0);
    CU_ASSERT_EQUAL_FATAL(rc_result(&c, 10, &r), 1);
    rres_free(&r, 1);
    /* The worker busy for 500 ms: a running job that long gets nothing
     * sent behind it, so everything below waits in the node's queue. */
    CU_ASSERT_EQUAL(rc_job_l(&c, 999, "t_sleep", 0, 500), 0);
    sleep_s(0.15);
    enum { N = 40 };
    for (int i = 0; i < N; i++) {
        char arg[16];
        int n = snprintf(arg, sizeof arg, "%d", i);
        CU_ASSERT_EQUAL(rc_job(&c, (uint64_t)i + 1, "t_echo", i % 2 ? 10 : 0, 0, arg,
                               (size_t)n), 0);
    }
    rres got[N + 1];
    int n = rc_results(&c, N + 1, 20, got);
    CU_ASSERT_EQUAL_FATAL(n, N + 1);
    CU_ASSERT_EQUAL(got[0].id, 999);
    int ok = 1;
    for (int k = 0; k < N; k++) {
        /* 2, 4, ..., 40 (priority 10), then 1, 3, ..., 39. */
        uint64_t want = k < N / 2 ? (uint64_t)(2 * k + 2) : (uint64_t)(2 * (k - N / 2) + 1);
        if (got[k + 1].id != want || got[k + 1].status != PP_DONE) {
            fprintf(stderr, "\n  result %d: job %llu, expected %llu", k + 1,
                    (unsigned long long)got[k + 1].id, (unsigned long long)want);
            ok = 0;
        }
    }
    CU_ASSERT(ok);
    rres_free(got, n);
    rc_close(&c);
    CU_ASSERT(served(h));
}

/* Two clients on a one-worker node, one flooding high-priority jobs: the
 * other still gets its turn (priorities order a client's own jobs only;
 * the workers go round the clients). */
static void test_priority_no_starvation(void)
{
    rawc a, b;
    srv_harness *h = rc_pair(&a, &b);
    rres r;
    CU_ASSERT_EQUAL(rc_job(&a, 1000, "t_echo", 0, 0, "w", 1), 0);
    CU_ASSERT_EQUAL_FATAL(rc_result(&a, 10, &r), 1);
    rres_free(&r, 1);
    enum { FLOOD = 100, OWN = 5 };
    for (int i = 0; i < FLOOD; i++) /* 100 x 20 ms = 2 s of work at priority 1000 */
        CU_ASSERT_EQUAL(rc_job_l(&a, (uint64_t)i + 1, "t_sleep", 1000, 20), 0);
    sleep_s(0.1);
    double t0 = now_s();
    for (int i = 0; i < OWN; i++)
        CU_ASSERT_EQUAL(rc_job(&b, (uint64_t)i + 1, "t_echo", -5, 0, "b", 1), 0);
    rres mine[OWN];
    int n = rc_results(&b, OWN, 10, mine);
    double took = now_s() - t0;
    CU_ASSERT_EQUAL(n, OWN);
    rres_free(mine, n);
    printf("\n    the other client's %d jobs done %.0f ms into a 2 s flood ", OWN, took * 1e3);
    CU_ASSERT(took < 1.0); /* one of its jobs per turn of the worker: about 5 x 20 ms */
    static rres flood[FLOOD];
    n = rc_results(&a, FLOOD, 30, flood);
    CU_ASSERT_EQUAL(n, FLOOD);
    rres_free(flood, n);
    rc_close(&a);
    rc_close(&b);
    CU_ASSERT(served(h));
}

/* A batch through a node: the RRESULT carries PP_WIRE_F_BATCH and the
 * worker's batch result (items in order, a failed one among them); a batch
 * whose item crashes ends PP_CRASHED as a whole; a malformed batch is a
 * protocol error, refused before any worker sees it. */
static void test_batch_through_node(void)
{
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-w", "2")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    rawc c;
    CU_ASSERT_EQUAL_FATAL(rc_open(&c, h), 0);
    static const char *const items[] = {"alpha", "fail", "", "omega"};
    pp_buf b;
    pp_buf_init(&b, 1 << 16);
    CU_ASSERT_EQUAL(pp_proto_batch_begin(&b), 0);
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL(pp_proto_batch_add(&b, items[i], strlen(items[i])), 0);
    CU_ASSERT_EQUAL(rc_job(&c, 5, "t_item", 3, PP_WIRE_F_BATCH, b.data, b.len), 0);
    rres r;
    CU_ASSERT_EQUAL_FATAL(rc_result(&c, 10, &r), 1);
    CU_ASSERT(r.id == 5 && r.status == PP_DONE && r.flags == PP_WIRE_F_BATCH);
    pp_batch_iter it;
    pp_batch_item item;
    CU_ASSERT_EQUAL_FATAL(pp_proto_batch_open(&it, r.data, r.len, PP_BATCH_RESULTS), 0);
    CU_ASSERT_EQUAL(it.count, 4);
    static const char *const want[] = {"alpha", "item failed", "", "omega"};
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_EQUAL_FATAL(pp_proto_batch_next(&it, &item), 1);
        CU_ASSERT_EQUAL(item.status, i == 1 ? PP_FAILED : PP_DONE);
        CU_ASSERT(item.len == strlen(want[i]) && memcmp(item.data, want[i], item.len) == 0);
    }
    CU_ASSERT_EQUAL(pp_proto_batch_next(&it, &item), 0);
    rres_free(&r, 1);
    /* A crash in an item: the batch as a whole, not flagged as a batch
     * result. */
    CU_ASSERT_EQUAL(pp_proto_batch_begin(&b), 0);
    CU_ASSERT_EQUAL(pp_proto_batch_add(&b, "ok", 2), 0);
    CU_ASSERT_EQUAL(pp_proto_batch_add(&b, "segv", 4), 0);
    CU_ASSERT_EQUAL(rc_job(&c, 6, "t_item", 0, PP_WIRE_F_BATCH, b.data, b.len), 0);
    CU_ASSERT_EQUAL_FATAL(rc_result(&c, 10, &r), 1);
    CU_ASSERT(r.id == 6 && r.status == PP_CRASHED && r.flags == 0);
    rres_free(&r, 1);
    /* A count the bytes cannot hold: refused as the protocol error it is. */
    static const uint8_t bad[] = {0, 0, 0, 9, 0, 0, 0, 1, 'x'};
    CU_ASSERT_EQUAL(rc_job(&c, 7, "t_item", 0, PP_WIRE_F_BATCH, bad, sizeof bad), 0);
    refusal rf = expect_close(c.fd, 5);
    CU_ASSERT(rf.got_error && rf.code == PP_E_PROTOCOL && rf.closed);
    CU_ASSERT_PTR_NOT_NULL(strstr(rf.msg, "malformed batch"));
    rc_close(&c);
    /* The batch flag on a frame that is not a job: refused too. */
    CU_ASSERT_EQUAL_FATAL(rc_open(&c, h), 0);
    CU_ASSERT_EQUAL(send_frame(c.fd, PP_T_PING, PP_WIRE_F_BATCH, 1, NULL, 0), 0);
    rf = expect_close(c.fd, 5);
    CU_ASSERT(rf.got_error && rf.code == PP_E_PROTOCOL && rf.closed);
    rc_close(&c);
    pp_buf_reset(&b);
    CU_ASSERT(served(h));
}

/* --max-jobs-per-worker 3 on a one-worker node: 10 jobs run on 4 distinct
 * worker processes, each job once, none lost. */
static void test_max_jobs_per_worker_node(void)
{
    srv_harness *h = cl_server_start(&(srv_opts){.args = ARGS("-w", "1", "--max-jobs-per-worker",
                                                           "3")});
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    rawc c;
    CU_ASSERT_EQUAL_FATAL(rc_open(&c, h), 0);
    enum { N = 10 };
    for (int i = 0; i < N; i++)
        CU_ASSERT_EQUAL(rc_job(&c, (uint64_t)i + 1, "t_pid", 0, 0, NULL, 0), 0);
    rres got[N];
    int n = rc_results(&c, N, 30, got);
    CU_ASSERT_EQUAL_FATAL(n, N);
    long pids[N];
    int seen_id[N + 1] = {0}, distinct = 0, ok = 1;
    for (int i = 0; i < N; i++) {
        pids[i] = rres_long(&got[i]);
        ok = ok && pids[i] > 0 && got[i].id >= 1 && got[i].id <= N && !seen_id[got[i].id]++;
        int seen = 0;
        for (int k = 0; k < i; k++)
            seen = seen || pids[k] == pids[i];
        distinct += !seen;
    }
    CU_ASSERT(ok);
    CU_ASSERT_EQUAL(distinct, 4);
    rres_free(got, n);
    CU_ASSERT_EQUAL(rc_result(&c, 0.3, &got[0]), -1); /* nothing twice */
    rc_close(&c);
    CU_ASSERT(served(h));
}

int pp_register_suites(void)
{
    static const pp_test results[] = {
        {"remote results and node statistics", test_remote_results},
        {"jobs spread over two nodes and the local pool", test_spread_over_nodes},
        {"a module is shipped once", test_module_shipped_once},
        {"the shipped conf/ppserver.conf loads", test_shipped_config},
        {"--job-memory-mib caps a worker's memory", test_job_memory_limit},
        {"no job waits behind a long one beside an idle worker", test_no_wait_behind_long_job},
        {NULL, NULL}};
    static const pp_test names[] = {
        {"N1 node name localhost:PORT: the node comes up and runs jobs", test_node_by_name},
        {"N2 node name looked up slowly: jobs and heartbeats go on", test_slow_lookup},
        {"N3 node name unresolvable: down, reason logged, local jobs run",
         test_unresolvable_name},
        {"N4 node name lookup pending at pp_server_free(): returns at once, no leak",
         test_free_during_lookup},
        {NULL, NULL}};
    static const pp_test auth[] = {
        {"A1 wrong secret", test_a1_wrong_secret},
        {"A1 repeated wrong secrets: the address is refused for a while", test_a1_lockout},
        {"A2 fake server gets no job", test_a2_fake_server},
        {"A3 replayed and reflected proofs", test_a3_replay_reflection},
        {"A4 version mismatch names both ranges", test_a4_version_mismatch},
        {"A5 foreign protocols closed within 1 s", test_a5_not_our_protocol},
        {"A6 refuses to start without a good secret", test_a6_refuses_to_start},
        {"A7 -s warns; workers never see the secret", test_a7_secret_on_command_line},
        {NULL, NULL}};
    static const pp_test conns[] = {
        {"B1 handshake deadline (silent, trickling)", test_b1_handshake_deadline},
        {"B2 200 unauthenticated connections", test_b2_many_unauthenticated},
        {NULL, NULL}};
    static const pp_test frames[] = {
        {"C1 frame lengths before and after auth", test_c1_frame_lengths},
        {"C2 truncated frames then EOF", test_c2_truncated_frames},
        {"C3 unknown types, bad JOBs, unknown module", test_c3_protocol_errors},
        {"D1 zlib bombs and lying sizes", test_d1_zlib_bomb},
        {"D2 corrupt, truncated, trailing streams", test_d2_bad_streams},
        {NULL, NULL}};
    static const pp_test faults[] = {
        {"F1 kill -9 a node mid-batch", test_f1_kill9_mid_batch},
        {"F2 kill -STOP a node, then -CONT", test_f2_frozen_node},
        {"F4 poison job ends PP_LOST", test_f4_poison_job},
        {"F5 all nodes down, one restarted", test_f5_all_down_then_back},
        {"F6 a client that stops reading results is cut off", test_f6_client_not_reading},
        {"SIGTERM: jobs re-run elsewhere, exit 0", test_sigterm_redispatch},
        {NULL, NULL}};
    static const pp_test load[] = {
        {"G1 one client floods 20,000 jobs", test_g1_flood},
        {"G1 a raw client floods JOB frames: reading pauses", test_g1_raw_flood},
        {"G2 32 clients x 100 jobs, fair shares", test_g2_many_clients},
        {NULL, NULL}};
    static const pp_test holes[] = {
        {"H1 a cache directory others may write, or another user's, is refused",
         test_h1_cache_dir_refused},
        {"H1 a planted <hash>.so is never loaded: asked for and replaced", test_h1_planted_module},
        {"H2 3 JOBs inflating to 1 GiB each: budgets, memory given back", test_h2_inflated_jobs},
        {"H2 parked jobs expire PP_ELOAD; a job over the budget waits", test_h2_parked_deadline},
        {"H2 48,000 unknown modules: the table stays small and fast", test_h2_unknown_hashes},
        {"H2 a MODULE nobody asked for is refused", test_h2_module_not_asked},
        {"H3/H4 a handshake flood from one address: others served, logs bounded",
         test_h3_handshake_flood},
        {"H3 at the global cap, the address holding the most loses its oldest",
         test_h3_global_cap},
        {"H5 the secret is not in ppserver's cmdline or environ", test_h5_secret_out_of_reach},
        {"H5 --worker-user: workers drop to that user; refused unless root",
         test_h5_worker_user},
        {"H6 a node announcing 0xFFFFFFFF bytes and CPUs, or 0 CPUs", test_h6_node_limits},
        {"H6 a node's result declaring 4 GiB is refused before allocating",
         test_h6_result_bomb},
        {"H7 a node's batch result for a plain job is refused", test_h7_batch_flag_lie},
        {"H7 a node's 2 MiB lies, received into shared memory, let go", test_h7_large_lie},
        {"H7 a node's batch result with the wrong item count fails those items",
         test_h7_batch_count_lie},
        {NULL, NULL}};
    static const pp_test control[] = {
        {"CANCEL of a queued job: PP_CANCELLED, never run; unknown ids ignored",
         test_cancel_queued},
        {"CANCEL of a running job: worker killed and replaced, others go on",
         test_cancel_running},
        {"priorities: a client's higher priority jobs first, in order", test_priorities},
        {"priorities: a flood of high priority does not starve another client",
         test_priority_no_starvation},
        {"a batch through a node; a crashing item; a malformed batch refused",
         test_batch_through_node},
        {"--max-jobs-per-worker 3: 10 jobs on 4 workers, none lost",
         test_max_jobs_per_worker_node},
        {NULL, NULL}};
    static const pp_test partition[] = {
        {"F3 a node partitioned, then healed", test_f3_partition},
        {NULL, NULL}};
    /* F3 changes links: only inside the private network namespace that
     * tests/integration/netns_run.sh sets up. */
    if (getenv("PP_TEST_NETNS"))
        return add_suite("partition", partition);
    static const pp_test newcomer[] = {
        {"the secret from a file, a newline, PP_SECRET_FILE", test_secret_sources},
        {"no_node_timeout: a refused secret loses jobs at once", test_lost_on_auth_failure},
        {"no_node_timeout: no node up loses jobs; pp_wait_for", test_lost_when_nothing_is_up},
        {"a departed client's jobs are stopped on the node", test_orphans_stopped},
        {NULL, NULL}};
    if (add_suite("results", results) || add_suite("node names", names) ||
        add_suite("a newcomer's way in", newcomer) ||
        add_suite("authentication", auth) ||
        add_suite("connections", conns) || add_suite("frames and streams", frames) ||
        add_suite("node failures", faults) || add_suite("load", load) ||
        add_suite("the holes around the wire", holes) ||
        add_suite("control over jobs", control))
        return -1;
    return 0;
}
