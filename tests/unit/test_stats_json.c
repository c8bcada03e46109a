/* SPDX-License-Identifier: MIT */
/* test_stats_json.c -- pp_write_stats_json() and the counters pp_get_stats()
 * gained: a client with one local worker runs jobs that end done, failed
 * and crashed; its node list also names a fake node, a thread here that
 * answers the client's HELLO with an ERROR frame whose text holds quotes,
 * backslashes, control characters and bytes that are not UTF-8 (an
 * unauthenticated peer chooses that text, and it lands in the node's
 * `why`).  The JSON is parsed with python3's json module and its values
 * checked; NULL arguments and a stream that cannot be written fail.
 * Every wait is bounded. */
#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <netinet/in.h>
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

#include "cunit_main.h"
#include "pp_buf.h"
#include "pp_proto.h"
#include "pp_wire.h"
#include "test_tasks.h"
#include "test_util.h"

/* What the fake node says: every kind of byte a JSON writer must escape. */
static const char nasty[] = "quote \" backslash \\ nl \n tab \t bell \a del \x7f "
                            "bad utf8 \xff\xfe \xc3( \xed\xa0\x80 ok \xc3\xa9";

typedef struct fake_node {
    int lfd;
    int port;
    /* Both read by one thread while the other writes them. */
    atomic_int answered; /* connections answered */
    atomic_int stop;
    pthread_t thread;
} fake_node;

/* Reads the HELLO frame (bounded: the socket has a receive timeout) and
 * answers with ERROR(PP_E_VERSION, nasty), then closes. */
static void fake_answer(fake_node *f, int fd)
{
    uint8_t buf[512];
    (void)!recv(fd, buf, sizeof buf, 0);
    pp_buf payload;
    pp_buf_init(&payload, 4096);
    if (pp_proto_error(&payload, PP_E_VERSION, nasty) == 0) {
        uint8_t hdr[PP_WIRE_HDR];
        pp_wire_encode_hdr(hdr, PP_T_ERROR, 0, 0, (uint32_t)payload.len);
        (void)!send(fd, hdr, sizeof hdr, MSG_NOSIGNAL);
        (void)!send(fd, payload.data, payload.len, MSG_NOSIGNAL);
        f->answered++;
    }
    pp_buf_reset(&payload);
    close(fd);
}

static void *fake_run(void *arg)
{
    fake_node *f = arg;
    for (int i = 0; i < 200 && !f->stop; i++) { /* bounded: 200 x 50 ms */
        struct timeval tv = {.tv_sec = 0, .tv_usec = 50000};
        setsockopt(f->lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        struct timeval rt = {.tv_sec = 2, .tv_usec = 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rt, sizeof rt);
        fake_answer(f, fd);
    }
    return NULL;
}

static int fake_start(fake_node *f)
{
    memset(f, 0, sizeof *f);
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    socklen_t sl = sizeof sa;
    if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(f->lfd, 8) != 0 || getsockname(f->lfd, (struct sockaddr *)&sa, &sl) != 0)
        return -1;
    f->port = ntohs(sa.sin_port);
    return pthread_create(&f->thread, NULL, fake_run, f) == 0 ? 0 : -1;
}

static void fake_stop(fake_node *f)
{
    f->stop = 1;
    pthread_join(f->thread, NULL);
    close(f->lfd);
}

/* Runs python3 on the JSON file with a check script; its exit status. */
static int python_check(const char *json_path, const char *script)
{
    pid_t pid = fork();
    if (pid == 0) {
        execlp("python3", "python3", "-c", script, json_path, (char *)NULL);
        _exit(127);
    }
    int status = -1;
    for (int i = 0; i < 1500 && waitpid(pid, &status, WNOHANG) == 0; i++)
        sleep_s(0.02); /* at most 30 s */
    if (!WIFEXITED(status) && !WIFSIGNALED(status)) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The checks, in python: the document parses, and its values. */
static const char check_py[] =
    "import json, sys\n"
    "d = json.load(open(sys.argv[1], encoding='utf-8'))\n"
    "j = d['jobs']\n"
    "assert j['submitted'] == 6 and j['done'] == 3 and j['failed'] == 3, j\n"
    "b = j['by_status']\n"
    "assert b['done'] == 3 and b['failed'] == 2 and b['crashed'] == 1, b\n"
    "assert b['timeout'] == 0 and b['lost'] == 0 and b['cancelled'] == 0, b\n"
    "assert d['version'] and d['wall_seconds'] > 0, d\n"
    "n = {x['name']: x for x in d['nodes']}\n"
    "assert n['local']['jobs'] == 6 and n['local']['ncpus'] == 1, n\n"
    "fake = [x for x in d['nodes'] if x['name'] != 'local'][0]\n"
    "assert fake['handshake_errors'] >= 1 and fake['bytes_in'] > 0, fake\n"
    "assert fake['bytes_out'] > 0 and fake['connects'] >= 1, fake\n"
    "assert 'quote \" backslash \\\\ nl \\n tab \\t' in fake['why'], fake['why']\n"
    "assert '\\ufffd' in fake['why'] and '\\u00e9' in fake['why'], fake['why']\n"
    "assert d['handshake_errors'] == fake['handshake_errors'], d\n"
    "assert d['bytes_in'] == fake['bytes_in'], d\n"
    "h = d['run_seconds_histogram']\n"
    "assert len(h['counts']) == len(h['le']) + 1 and sum(h['counts']) == 6, h\n";

static void test_json_written(void)
{
    fake_node f;
    CU_ASSERT_FATAL(fake_start(&f) == 0);
    char fake_name[64];
    snprintf(fake_name, sizeof fake_name, "127.0.0.1:%d", f.port);
    const char *list[] = {fake_name, NULL};
    pp_server *s = pp_server_new(&(pp_config){.ncpus = 1, .ppservers = list, .no_tls = 1,
                                              .secret = "json-test-secret-0123456789",
                                              .log_level = "error"});
    CU_ASSERT_FATAL(s != NULL);
    pp_job *jobs[6] = {
        pp_submitf(s, t_square, NULL, "l", 3L), pp_submitf(s, t_square, NULL, "l", 4L),
        pp_submitf(s, t_square, NULL, "l", 5L), pp_submit(s, t_fail, "x", 1, NULL),
        pp_submit(s, t_fail, "y", 1, NULL),     pp_submit(s, t_segv, "", 0, NULL)};
    for (int i = 0; i < 6; i++) {
        CU_ASSERT(jobs[i] && pp_job_wait_for(jobs[i], 30) != PP_PENDING);
        pp_job_free(jobs[i]);
    }
    for (int i = 0; i < 500 && f.answered == 0; i++)
        sleep_s(0.01);
    sleep_s(0.1); /* the client has read the answer */
    pp_stats st;
    CU_ASSERT(pp_get_stats(s, &st) == 0);
    CU_ASSERT_EQUAL(st.by_status[PP_DONE], 3);
    CU_ASSERT_EQUAL(st.by_status[PP_FAILED], 2);
    CU_ASSERT_EQUAL(st.by_status[PP_CRASHED], 1);
    uint64_t ran = 0;
    for (int i = 0; i < PP_STATS_RUN_BUCKETS; i++)
        ran += st.run_hist[i];
    CU_ASSERT_EQUAL(ran, 6);
    char path[] = "/tmp/pp-stats-json-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    FILE *fp = fdopen(fd, "w");
    CU_ASSERT_FATAL(fp != NULL);
    CU_ASSERT_EQUAL(pp_write_stats_json(s, fp), 0);
    fclose(fp);
    int rc = python_check(path, check_py);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0) {
        char text[8192] = "";
        FILE *in = fopen(path, "r");
        size_t n = in ? fread(text, 1, sizeof text - 1, in) : 0;
        text[n] = 0;
        if (in)
            fclose(in);
        fprintf(stderr, "\n    the JSON:\n%s\n", text);
    }
    unlink(path);
    pp_server_free(s);
    fake_stop(&f);
}

static void test_json_errors(void)
{
    CU_ASSERT_EQUAL(pp_write_stats_json(NULL, stdout), -1);
    CU_ASSERT(strstr(pp_last_error(), "pp_write_stats_json") != NULL);
    pp_server *s = pp_server_new(&(pp_config){.ncpus = 0, .log_level = "error"});
    CU_ASSERT_FATAL(s != NULL);
    CU_ASSERT_EQUAL(pp_write_stats_json(s, NULL), -1);
    FILE *full = fopen("/dev/full", "w");
    if (full) { /* every write fails there: ENOSPC */
        CU_ASSERT_EQUAL(pp_write_stats_json(s, full), -1);
        CU_ASSERT(strstr(pp_last_error(), "cannot write") != NULL);
        fclose(full);
    }
    pp_server_free(s);
}

static const pp_test tests[] = {
    {"json_written", test_json_written},
    {"json_errors", test_json_errors},
    {NULL, NULL},
};

int pp_register_suites(void)
{
    return pp_add_suite("stats_json", NULL, NULL, tests);
}
