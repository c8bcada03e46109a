/* SPDX-License-Identifier: MIT */
/* test_tags.c -- node tags: ppserver --tag (and `tag` lines of its
 * configuration file), pp_config.local_tags, pp_submit_opts.tags.  Real
 * ppservers on 127.0.0.1 and real workers: jobs that need tags run only
 * where all of them are; a job no node can take waits, logged once, and
 * runs once a node with its tags is added; no_node_timeout ends it PP_LOST
 * saying why; failover, retries and cancel keep working for tagged jobs;
 * tags show in pp_get_active_nodes() and pp_print_stats().  A fake node
 * (TLS and the handshake done right, so its frames reach libpp's parser)
 * sends garbage and oversized TAGS: libpp drops it, saying why.
 *
 * Every wait is bounded; a per-test teardown stops what a test left. */
#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client_util.h"
#include "cunit_main.h"
#include "pp_auth.h"
#include "pp_common.h"
#include "pp_handshake.h"
#include "pp_proto.h"
#include "pp_tls.h"
#include "raw_tls.h"
#include "server_harness.h"
#include "test_tasks.h"
#include "test_util.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static char tmpdir[256];

/* ---- servers and clients this test started ---- */

/* Starts a ppserver with extra arguments; a test that cannot is skipped
 * (exit 77), saying why. */
static srv_harness *start_server(const char *const *args)
{
    srv_harness *h = cl_server_start(&(srv_opts){.args = args});
    if (!h) {
        fprintf(stderr, "test_tags: cannot start a ppserver (see above); skipped\n");
        exit(77);
    }
    return h;
}

/* A client of these servers (all of one secret, the first's). */
static pp_server *client_new(int ncpus, srv_harness *const *hs, int n, double no_node_timeout)
{
    return cl_nodes_client((pp_config){.ncpus = ncpus, .no_node_timeout = no_node_timeout}, hs,
                           n);
}

/* A client of a and b, their names in na and nb (64 bytes each); or a
 * fatal failure. */
static pp_server *client_of_both(srv_harness *a, srv_harness *b, char *na, char *nb)
{
    cl_node_name(a, na, 64);
    cl_node_name(b, nb, 64);
    srv_harness *both[] = {a, b};
    pp_server *s = client_new(0, both, 2, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    return s;
}

/* Waits (bounded) until the node is up and shows these tags. */
static int wait_tags(pp_server *s, const char *name, const char *tags, double limit)
{
    double end = now_s() + limit;
    pp_node_info ni;
    do {
        if (cl_node_info(s, name, &ni) == 0 && ni.state == PP_NODE_UP && !strcmp(ni.tags, tags))
            return 1;
        sleep_s(0.01);
    } while (now_s() < end);
    return 0;
}

static pp_job *submit_tagged(pp_server *s, long v, const char *tags)
{
    return pp_submitf(s, t_square, &(pp_submit_opts){.tags = tags}, "l", v);
}

/* Every job ended PP_DONE with v*v, on a node named in `where` (NULL:
 * anywhere); frees them.  How many did. */
static int check_squares(pp_job **jobs, int n, const char *const *where)
{
    int good = 0;
    for (long i = 0; i < n; i++) {
        long v = -1;
        int ok = pp_job_wait_for(jobs[i], 30) == PP_DONE &&
                 pp_job_unpack(jobs[i], "l", &v) == 0 && v == i * i;
        const char *node = pp_job_node(jobs[i]);
        int placed = !where;
        for (int k = 0; where && where[k]; k++)
            placed |= node && strcmp(node, where[k]) == 0;
        if (!ok || !placed)
            fprintf(stderr, "\n    job %ld: status %d on %s: %s", i, pp_job_status(jobs[i]),
                    node ? node : "(none)", pp_job_error(jobs[i]) ? pp_job_error(jobs[i]) : "");
        good += ok && placed;
        pp_job_free(jobs[i]);
    }
    return good;
}

/* ---- stderr captured: libpp's log ---- */


static int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; p && (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* ---- a fake node: TLS and the handshake right, then TAGS as told ---- */

typedef struct fake_node {
    int lfd, port;
    char secret[80];
    pp_auth_key key;
    const uint8_t *tags;     /* the TAGS payload it sends after ACCEPT */
    size_t tags_len;
    atomic_int stop, accepted, rjobs;
    pthread_t th;
    int running;
} fake_node;

static fake_node *the_fake;

static int send_frame(int fd, uint8_t type, uint64_t id, const void *p, size_t n)
{
    uint8_t hdr[PP_WIRE_HDR];
    pp_wire_encode_hdr(hdr, type, 0, id, (uint32_t)n);
    if (rt_send_all(fd, hdr, sizeof hdr, 3) != 0)
        return -1;
    return n ? rt_send_all(fd, p, n, 3) : 0;
}

static void fake_frame(int cfd, const pp_frame *fr, fake_node *fn, pp_hs *hs,
                       const uint8_t *binding)
{
    if (fr->hdr.type == PP_T_HELLO) {
        uint8_t chal[PP_CHALLENGE_LEN];
        if (pp_hs_server_hello(hs, &fn->key, binding, fr, 1u << 20, 2, chal) == PP_HS_OK)
            send_frame(cfd, PP_T_CHALLENGE, 0, chal, sizeof chal);
    } else if (fr->hdr.type == PP_T_PROOF) {
        uint8_t mac[PP_MAC_LEN];
        if (pp_hs_server_proof(hs, fr, mac) == PP_HS_OK) {
            send_frame(cfd, PP_T_ACCEPT, 0, mac, sizeof mac);
            send_frame(cfd, PP_T_TAGS, 0, fn->tags, fn->tags_len);
            atomic_fetch_add(&fn->accepted, 1);
        }
    } else if (fr->hdr.type == PP_T_PING) {
        send_frame(cfd, PP_T_PONG, fr->hdr.id, NULL, 0);
    } else if (fr->hdr.type == PP_T_RJOB) {
        atomic_fetch_add(&fn->rjobs, 1);
    }
}

/* One client connection: frames until it goes or the node stops. */
static void fake_serve(fake_node *fn, int cfd)
{
    uint8_t binding[PP_TLS_BINDING_LEN];
    pp_hs hs;
    memset(&hs, 0, sizeof hs);
    pp_wire_reader rd;
    pp_wire_reader_init(&rd, 1u << 20, 255);
    while (rt_binding(cfd, binding) == 0 && !atomic_load(&fn->stop)) {
        size_t room;
        void *dst = pp_wire_reader_space(&rd, &room);
        if (!dst || !room)
            break;
        ssize_t k = rt_recv(cfd, dst, room, now_s() + 0.1);
        if (k == -1)
            continue;
        if (k <= 0)
            break;
        pp_wire_reader_commit(&rd, (size_t)k);
        pp_frame fr;
        int r;
        while ((r = pp_wire_reader_next(&rd, &fr)) == 1)
            fake_frame(cfd, &fr, fn, &hs, binding);
        if (r < 0)
            break;
    }
    pp_wire_reader_free(&rd);
    pp_hs_wipe(&hs);
    rt_forget(cfd);
    close(cfd);
}

static void *fake_main(void *arg)
{
    fake_node *fn = arg;
    while (!atomic_load(&fn->stop)) {
        struct pollfd lp = {.fd = fn->lfd, .events = POLLIN};
        if (poll(&lp, 1, 100) <= 0)
            continue;
        int cfd = accept4(fn->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd < 0)
            continue;
        char why[PP_ERR_LEN];
        if (rt_server(cfd, fn->secret, 3, why) != 0) {
            close(cfd);
            continue;
        }
        fake_serve(fn, cfd);
    }
    return NULL;
}

static fake_node *fake_start(const char *secret, const uint8_t *tags, size_t tags_len)
{
    fake_node *fn = calloc(1, sizeof *fn);
    if (!fn)
        return NULL;
    snprintf(fn->secret, sizeof fn->secret, "%s", secret);
    fn->tags = tags;
    fn->tags_len = tags_len;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    fn->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (rt_key(secret, &fn->key) != 0 || fn->lfd < 0 ||
        bind(fn->lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fn->lfd, 8) != 0 ||
        getsockname(fn->lfd, (struct sockaddr *)&sa, &sl) != 0 ||
        pthread_create(&fn->th, NULL, fake_main, fn) != 0) {
        if (fn->lfd >= 0)
            close(fn->lfd);
        free(fn);
        return NULL;
    }
    fn->port = ntohs(sa.sin_port);
    fn->running = 1;
    return fn;
}

static void fake_stop(void)
{
    fake_node *fn = the_fake;
    if (!fn)
        return;
    atomic_store(&fn->stop, 1);
    pthread_join(fn->th, NULL);
    close(fn->lfd);
    pp_auth_wipe(&fn->key, sizeof fn->key);
    free(fn);
    the_fake = NULL;
}

/* ==== the tests ======================================================= */

/* Jobs that need tags run only on the nodes having all of them; untagged
 * jobs run anywhere; the tags show in pp_get_active_nodes() and in the
 * statistics table, and in the node's own log. */
static void test_placement(void)
{
    srv_harness *a = start_server(ARGS("-w", "2", "--tag", "gpu", "--tag", "fast"));
    srv_harness *b = start_server(ARGS("-w", "2", "--tag", "cpu", "--secret-file",
                                       a->secret_file));
    char na[64], nb[64];
    pp_server *s = client_of_both(a, b, na, nb);
    CU_ASSERT_FATAL(wait_tags(s, na, "fast,gpu", 10) && wait_tags(s, nb, "cpu", 10));
    pp_node_info ni;
    CU_ASSERT(cl_node_info(s, "local", &ni) == 0 && strcmp(ni.tags, "") == 0);
    enum { N = 12 };
    pp_job *gpu[N], *cpu[N], *fast_gpu[N], *any[N];
    for (long i = 0; i < N; i++) {
        gpu[i] = submit_tagged(s, i, "gpu");
        cpu[i] = submit_tagged(s, i, "cpu");
        fast_gpu[i] = submit_tagged(s, i, " gpu , fast"); /* blanks, any order */
        any[i] = submit_tagged(s, i, NULL);
    }
    CU_ASSERT_EQUAL(check_squares(gpu, N, ARGS(na)), N);
    CU_ASSERT_EQUAL(check_squares(cpu, N, ARGS(nb)), N);
    CU_ASSERT_EQUAL(check_squares(fast_gpu, N, ARGS(na)), N);
    CU_ASSERT_EQUAL(check_squares(any, N, ARGS(na, nb)), N);
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    pp_print_stats(s, fp);
    fclose(fp);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "tags"));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "fast,gpu"));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "cpu"));
    free(buf);
    cl_client_free(s);
    CU_ASSERT_EQUAL(srv_log_count(a, ARGS("listening", "tags fast,gpu")), 1);
}

/* ppserver --tag and `tag` lines: a tag not allowed is refused with a
 * clear message (exit 64); the file's lines add up and the command line's
 * tags replace them. */
static void test_server_options(void)
{
    static const char *const bad[] = {"g pu", "", "x,,y", "caf\xc3\xa9",
                                      "abcdefghijklmnopqrstuvwxyz0123456"};
    for (size_t i = 0; i < PP_ARRAY_LEN(bad); i++) {
        char *err = NULL;
        int st = srv_run_once(ARGS("ppserver", "--tag", bad[i], "-s",
                                   "a-long-enough-secret-0123456789"), NULL, 10, &err);
        CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 64);
        CU_ASSERT_PTR_NOT_NULL(err ? strstr(err, "--tag") : NULL);
        if (!err || !strstr(err, "--tag"))
            fprintf(stderr, "\n    --tag \"%s\": %s", bad[i], err ? err : "(nothing)");
        free(err);
    }
    char conf[300];
    snprintf(conf, sizeof conf, "%s/tags.conf", tmpdir);
    FILE *fp = fopen(conf, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fputs("# node tags\ntag gpu\ntag = avx512, fast\n", fp);
    fclose(fp);
    srv_harness *a = start_server(ARGS("-w", "1", "-c", conf));
    srv_harness *b = start_server(ARGS("-w", "1", "-c", conf, "--tag", "only",
                                       "--secret-file", a->secret_file));
    char na[64], nb[64];
    pp_server *s = client_of_both(a, b, na, nb);
    CU_ASSERT(wait_tags(s, na, "avx512,fast,gpu", 10));
    CU_ASSERT(wait_tags(s, nb, "only", 10));
    cl_client_free(s);
    unlink(conf);
}

/* A job that needs a tag no node has waits (the others run), libpp says
 * why once, and it runs once a node with that tag is added; one still
 * waiting when the server is freed ends PP_CANCELLED. */
static void test_waits_then_runs(void)
{
    srv_harness *b = start_server(ARGS("-w", "1", "--tag", "cpu"));
    char nb[64], nc[64];
    cl_node_name(b, nb, sizeof nb);
    CU_ASSERT_EQUAL_FATAL(capture_start(tmpdir), 0);
    pp_server *s = client_new(0, &b, 1, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_FATAL(wait_tags(s, nb, "cpu", 10)); /* so the log shows it up */
    enum { N = 3 };
    pp_job *gpu[N], *plain[N];
    for (long i = 0; i < N; i++) {
        gpu[i] = submit_tagged(s, i, "gpu");
        plain[i] = submit_tagged(s, i, NULL);
    }
    CU_ASSERT_EQUAL(check_squares(plain, N, ARGS(nb)), N);
    /* The count is what the scheduler had seen when it logged: 1 to N. */
    static const char why[] = " job(s) need tags gpu: no node has them (nodes: ";
    CU_ASSERT(wait_captured(why, 1, 10));
    sleep_s(1.5); /* heartbeats turn the loop meanwhile: still once */
    char *t = captured();
    CU_ASSERT_EQUAL(count_of(t, "need tags gpu"), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "[cpu] up"));
    free(t);
    for (int i = 0; i < N; i++)
        CU_ASSERT_EQUAL(pp_job_status(gpu[i]), PP_PENDING);
    srv_harness *c = start_server(ARGS("-w", "1", "--tag", "gpu", "--secret-file",
                                       b->secret_file));
    cl_node_name(c, nc, sizeof nc);
    CU_ASSERT_EQUAL(pp_add_node(s, nc), 0);
    CU_ASSERT_EQUAL(check_squares(gpu, N, ARGS(nc)), N);
    /* One still waiting when the server goes ends PP_CANCELLED. */
    pp_job *left = submit_tagged(s, 1, "tpu");
    CU_ASSERT_PTR_NOT_NULL_FATAL(left);
    cl_client_free(s);
    CU_ASSERT_EQUAL(pp_job_status(left), PP_CANCELLED);
    pp_job_free(left);
    t = capture_end();
    CU_ASSERT_EQUAL(count_of(t, "need tags gpu"), 1);
    free(t);
}

/* With no_node_timeout, a job no node can take ends PP_LOST saying why;
 * a waiting tagged job can be cancelled. */
static void test_lost_and_cancel(void)
{
    srv_harness *b = start_server(ARGS("-w", "1", "--tag", "cpu"));
    pp_server *s = client_new(0, &b, 1, 1.0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    double t0 = now_s();
    pp_job *j = submit_tagged(s, 3, "gpu,avx512");
    pp_job *c = submit_tagged(s, 4, "cuda");
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(pp_job_cancel(c), 0);
    CU_ASSERT_EQUAL(pp_job_status(c), PP_CANCELLED);
    CU_ASSERT_EQUAL(pp_job_wait_for(j, 20), PP_LOST);
    CU_ASSERT(now_s() - t0 >= 0.9);
    const char *e = pp_job_error(j);
    CU_ASSERT_PTR_NOT_NULL(e ? strstr(e, "needs tags avx512,gpu: no node has them") : NULL);
    CU_ASSERT_PTR_NOT_NULL(e ? strstr(e, "no_node_timeout") : NULL);
    if (e)
        printf("\n    %s ", e);
    pp_job_free(j);
    pp_job_free(c);
    /* Untagged jobs still run. */
    pp_job *p = submit_tagged(s, 5, NULL);
    CU_ASSERT(pp_job_wait_for(p, 20) == PP_DONE);
    pp_job_free(p);
    cl_client_free(s);
}

/* pp_config.local_tags: the local workers take the jobs whose tags they
 * have; bad tags in local_tags and in pp_submit_opts.tags are refused. */
static void test_local_tags(void)
{
    pp_server *s = cl_track(pp_server_new(&(pp_config){.ncpus = 1, .local_tags = "gpu, local1",
                                                    .no_node_timeout = 0.5}));
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_node_info ni;
    CU_ASSERT(cl_node_info(s, "local", &ni) == 0 && strcmp(ni.tags, "gpu,local1") == 0);
    enum { N = 4 };
    pp_job *jobs[N];
    for (long i = 0; i < N; i++)
        jobs[i] = submit_tagged(s, i, i % 2 ? "gpu" : "local1,gpu");
    CU_ASSERT_EQUAL(check_squares(jobs, N, ARGS("local")), N);
    pp_job *other = submit_tagged(s, 1, "tpu");
    CU_ASSERT(pp_job_wait_for(other, 20) == PP_LOST);
    pp_job_free(other);
    CU_ASSERT_PTR_NULL(submit_tagged(s, 1, "bad tag"));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "pp_submit"));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "A-Z a-z 0-9 _ . -"));
    CU_ASSERT_PTR_NULL(submit_tagged(s, 1, "a,"));
    /* A template keeps its own copy of the tags. */
    char tags[8] = "gpu";
    pp_template *t = pp_template_new(s, t_square, &(pp_submit_opts){.tags = tags});
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    strcpy(tags, "nope");
    pp_job *tj = pp_template_submitf(t, "l", 6L);
    long v = 0;
    CU_ASSERT(pp_job_wait_for(tj, 20) == PP_DONE && pp_job_unpack(tj, "l", &v) == 0 && v == 36);
    pp_job_free(tj);
    pp_template_free(t);
    cl_client_free(s);
    CU_ASSERT_PTR_NULL(pp_server_new(&(pp_config){.ncpus = 0, .local_tags = "x y"}));
    CU_ASSERT_PTR_NOT_NULL(strstr(pp_last_error(), "local_tags"));
}

/* Failover: tagged jobs in flight on a node killed run again on another
 * node with the tags, never on one without; a tagged job that fails
 * runs again (retries) on a node with its tags. */
static void test_failover(void)
{
    srv_harness *a = start_server(ARGS("-w", "2", "--tag", "gpu"));
    srv_harness *c = start_server(ARGS("-w", "2", "--tag", "gpu", "--secret-file",
                                       a->secret_file));
    srv_harness *b = start_server(ARGS("-w", "2", "--secret-file", a->secret_file));
    char na[64], nb[64], nc[64];
    cl_node_name(a, na, sizeof na);
    cl_node_name(b, nb, sizeof nb);
    cl_node_name(c, nc, sizeof nc);
    srv_harness *all[] = {a, b, c};
    pp_server *s = client_new(0, all, 3, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_FATAL(wait_tags(s, na, "gpu", 10) && wait_tags(s, nc, "gpu", 10));
    enum { N = 8 };
    pp_job *jobs[N];
    for (int i = 0; i < N; i++) {
        int64_t ms = 1500;
        jobs[i] = pp_submit(s, t_sleep8, &ms, sizeof ms, &(pp_submit_opts){.tags = "gpu"});
    }
    sleep_s(0.5); /* on their workers, A's and C's */
    srv_kill9(a);
    CU_ASSERT_EQUAL(cl_wait_jobs(jobs, N, 60), N);
    int on_c = 0;
    for (int i = 0; i < N; i++) {
        on_c += pp_job_status(jobs[i]) == PP_DONE && !strcmp(pp_job_node(jobs[i]), nc);
        pp_job_free(jobs[i]);
    }
    CU_ASSERT_EQUAL(on_c, N);
    char marker[300];
    snprintf(marker, sizeof marker, "%s/first-run", tmpdir);
    pp_job *r = pp_submitf(s, t_first_run, &(pp_submit_opts){.tags = "gpu", .retries = 1},
                           "ss", marker, "fail");
    CU_ASSERT(pp_job_wait_for(r, 30) == PP_DONE && !strcmp(pp_job_node(r), nc));
    pp_job_free(r);
    unlink(marker);
    cl_client_free(s);
}

/* Attack: a node that knows the secret announces tags that are not tags
 * (bytes outside the alphabet, a tag too long, a count too high, 2000
 * bytes): libpp drops it with a clear message, shows no tag for it, and
 * the jobs run elsewhere. */
static void test_fake_node_bad_tags(void)
{
    static const char secret[] = "the-fake-node-knows-it-0123456789abcdef";
    static uint8_t big[2000];
    static const struct {
        const uint8_t *p;
        size_t n;
        const char *why;
    } cases[] = {
        {(const uint8_t *)"\x01\x05g\x01\n\x1b]", 7, "\\x01"},
        {(const uint8_t *)"\x01\x21" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 35, "(33 bytes)"},
        {(const uint8_t *)"\xff", 1, "255 tags, more than 32"},
        {big, sizeof big, "2000 bytes of tags"},
    };
    memset(big, 'a', sizeof big);
    for (size_t k = 0; k < PP_ARRAY_LEN(cases); k++) {
        CU_ASSERT_EQUAL_FATAL(capture_start(tmpdir), 0);
        the_fake = fake_start(secret, cases[k].p, cases[k].n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(the_fake);
        char name[64];
        snprintf(name, sizeof name, "127.0.0.1:%d", the_fake->port);
        const char *list[] = {name, NULL};
        pp_server *s = cl_track(pp_server_new(&(pp_config){.ncpus = 0, .ppservers = list,
                                                        .secret = secret}));
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        CU_ASSERT(wait_captured("the node sent bad tags", 1, 10));
        char *t = captured();
        CU_ASSERT_PTR_NOT_NULL(strstr(t, cases[k].why));
        free(t);
        pp_node_info ni;
        double end = now_s() + 5; /* the log line comes just before the state */
        while (cl_node_info(s, name, &ni) == 0 && ni.state == PP_NODE_UP && now_s() < end)
            sleep_s(0.01);
        CU_ASSERT(cl_node_info(s, name, &ni) == 0 && ni.state != PP_NODE_UP &&
                  strcmp(ni.tags, "") == 0 && strstr(ni.why, "bad tags"));
        CU_ASSERT(atomic_load(&the_fake->accepted) >= 1);
        pp_job *j = submit_tagged(s, 7, NULL);
        CU_ASSERT_EQUAL(pp_set_ncpus(s, 1), 0);
        long v = 0;
        CU_ASSERT(pp_job_wait_for(j, 20) == PP_DONE && pp_job_unpack(j, "l", &v) == 0 &&
                  v == 49 && !strcmp(pp_job_node(j), "local"));
        pp_job_free(j);
        cl_client_free(s);
        fake_stop();
        free(capture_end());
    }
}

/* A plaintext client's handshake with a node, by hand: with the right
 * secret (`wrong` 0) or a proof that is wrong.  The types of the frames the
 * node sent, in order, into seen (NUL-terminated, at most n - 1), and
 * whether any of its bytes held `needle`.  0, or -1 when it could not run. */
static int raw_handshake(const srv_harness *h, int wrong, char *seen, size_t n,
                         const char *needle, int *found)
{
    pp_auth_key key;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)h->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || pp_auth_derive(h->secret, strlen(h->secret), &key) != 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    pp_hs hs;
    uint8_t hello[PP_HELLO_LEN], proof[PP_MAC_LEN], hdr[PP_WIRE_HDR];
    pp_hs_client_hello(&hs, &key, NULL, hello);
    pp_wire_encode_hdr(hdr, PP_T_HELLO, 0, 0, sizeof hello);
    int ok = write(fd, hdr, sizeof hdr) == (ssize_t)sizeof hdr &&
             write(fd, hello, sizeof hello) == (ssize_t)sizeof hello;
    pp_wire_reader rd;
    pp_wire_reader_init(&rd, 1u << 20, 255);
    size_t k = 0;
    *found = 0;
    double end = now_s() + 10;
    while (ok && now_s() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        uint8_t buf[4096];
        ssize_t got = poll(&p, 1, 100) == 1 ? read(fd, buf, sizeof buf) : -2;
        if (got == -2)
            continue;
        if (got <= 0 || pp_wire_reader_feed(&rd, buf, (size_t)got) != 0)
            break;
        *found |= memmem(buf, (size_t)got, needle, strlen(needle)) != NULL;
        pp_frame fr;
        while (pp_wire_reader_next(&rd, &fr) == 1) {
            if (k + 1 < n)
                seen[k++] = (char)fr.hdr.type;
            if (fr.hdr.type != PP_T_CHALLENGE)
                continue;
            pp_hs_client_challenge(&hs, &fr, proof);
            proof[0] ^= (uint8_t)wrong;
            pp_wire_encode_hdr(hdr, PP_T_PROOF, 0, 0, sizeof proof);
            ok = write(fd, hdr, sizeof hdr) == (ssize_t)sizeof hdr &&
                 write(fd, proof, sizeof proof) == (ssize_t)sizeof proof;
        }
        if (!wrong && memchr(seen, PP_T_TAGS, k))
            break;
    }
    seen[k] = 0;
    pp_wire_reader_free(&rd);
    pp_hs_wipe(&hs);
    pp_auth_wipe(&key, sizeof key);
    close(fd);
    return ok ? 0 : -1;
}

/* Only a client that proved the secret learns a node's tags: after a
 * wrong proof the node sends CHALLENGE, then ERROR, and none of its bytes
 * holds a tag; after the right one, ACCEPT then TAGS. */
static void test_tags_after_auth(void)
{
    srv_harness *a = start_server(ARGS("-w", "1", "--no-tls", "--auth-delay", "0",
                                       "--tag", "secretive-tag"));
    char seen[16];
    int found = 0;
    CU_ASSERT_EQUAL_FATAL(raw_handshake(a, 1, seen, sizeof seen, "secretive", &found), 0);
    CU_ASSERT_EQUAL(seen[0], PP_T_CHALLENGE);
    CU_ASSERT_EQUAL(seen[1], PP_T_ERROR);
    CU_ASSERT_PTR_NULL(memchr(seen, PP_T_TAGS, strlen(seen)));
    CU_ASSERT_EQUAL(found, 0);
    CU_ASSERT_EQUAL_FATAL(raw_handshake(a, 0, seen, sizeof seen, "secretive", &found), 0);
    CU_ASSERT_EQUAL(seen[0], PP_T_CHALLENGE);
    CU_ASSERT_EQUAL(seen[1], PP_T_ACCEPT);
    CU_ASSERT_EQUAL(seen[2], PP_T_TAGS);
    CU_ASSERT_EQUAL(found, 1);
}

/* ==== registration ==================================================== */

static int suite_init(void)
{
    if (cl_suite_env() != 0)
        return -1;
    return tmpdir_make(tmpdir, sizeof tmpdir, "tags");
}

static int suite_clean(void)
{
    rmdir(tmpdir);
    return 0;
}

static void test_setup(void)
{
}

/* A server still running exits 0 on SIGTERM; nothing it or its workers
 * wrote is a sanitizer's report. */
static void check_server_exit(srv_harness *h)
{
    if (h->pid > 0) {
        int st = srv_stop(h, 10);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fprintf(stderr, "\n    ppserver did not exit 0 on SIGTERM (status 0x%x)", st);
        CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    CU_ASSERT(!srv_sanitizer_report(h));
}

static void test_teardown(void)
{
    free(capture_end());
    cl_clients_free();
    fake_stop();
    rt_reset();
    cl_servers_end(check_server_exit);
}

int pp_register_suites(void)
{
    static const pp_test tests[] = {
        {"tagged jobs run only where their tags are; shown", test_placement},
        {"ppserver --tag and tag lines; bad tags refused", test_server_options},
        {"a job no node can take waits, logged once, then runs", test_waits_then_runs},
        {"no_node_timeout: PP_LOST saying why; cancel", test_lost_and_cancel},
        {"local_tags; bad tags refused; templates", test_local_tags},
        {"failover and retries stay on nodes with the tags", test_failover},
        {"a node sending bad or oversized tags is dropped", test_fake_node_bad_tags},
        {"only a client that proved the secret learns the tags", test_tags_after_auth},
        {NULL, NULL},
    };
    return pp_add_suite_with("node tags", suite_init, suite_clean, test_setup, test_teardown,
                             tests);
}
