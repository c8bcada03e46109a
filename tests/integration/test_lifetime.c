/* SPDX-License-Identifier: MIT */
/* test_lifetime.c -- how a ppserver starts and ends, seen from outside, as a
 * launcher (scripts/slurm/pp.sbatch) relies on it, with real ppserver
 * processes on 127.0.0.1 and a real libpp client:
 *   --idle-exit: a node nobody uses exits by itself (status 0, one log line
 *   saying why); a connected client keeps it alive, and it exits once the
 *   client has left; a connection still in its handshake is no client.
 *   --secret-file -: the secret read from standard input, under a secret
 *   file's rules; a client with that secret is served.
 *   --port-file: a reader polling for it never sees a partial number.
 *   SIGHUP re-reads the worker count (announced to the client; a bad file
 *   changes nothing), SIGUSR1 logs the status, SIGTERM stops it at once.
 *
 * Every wait is bounded; every process started is reaped, also after a
 * failed assertion (per-test teardown). */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <fcntl.h>
#include <pp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "client_util.h"
#include "cunit_main.h"
#include "pp_common.h"
#include "server_harness.h"
#include "test_tasks.h"
#include "test_util.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* What a test leaves behind, freed by the teardown. */
static srv_harness node;
static pp_server *client;
static pid_t child = -1;   /* a ppserver started by hand (stdin tests) */
static int raw_fd = -1;

static void teardown(void)
{
    if (raw_fd >= 0)
        close(raw_fd);
    raw_fd = -1;
    pp_server_free(client);
    client = NULL;
    if (child > 0) {
        /* SIGTERM (its workers go with it), SIGKILL after 10 s. */
        kill(child, SIGTERM);
        if (!wait_pid(child, NULL, 10)) {
            kill(child, SIGKILL);
            waitpid(child, NULL, 0);
        }
    }
    child = -1;
    srv_cleanup(&node);
    memset(&node, 0, sizeof node);
}

/* One job through s: 1 when it ran there with the right result. */
static int one_job(pp_server *s)
{
    pp_job *j = pp_submitf(s, t_square, NULL, "l", 12L);
    long v = 0;
    int ok = j && pp_job_wait_for(j, 20) == PP_DONE && pp_job_unpack(j, "l", &v) == 0 &&
             v == 144;
    pp_job_free(j);
    return ok;
}

/* 1 when the node exited by itself with status 0 and logged why. */
static int exited_idle(const srv_harness *h)
{
    return WIFEXITED(h->status) && WEXITSTATUS(h->status) == 0 &&
           srv_log_count(h, ARGS("no client for 1 s (--idle-exit): exiting")) == 1;
}

static void print_log(const srv_harness *h)
{
    char *log = srv_read_log(h);
    fprintf(stderr, "\n    ppserver's log:\n%s\n", log ? log : "(none)");
    free(log);
}

/* Nobody connects: it exits on its own, not before the second is up. */
static void test_idle_exit_alone(void)
{
    double t0 = now_s();
    CU_ASSERT_FATAL(srv_start(&node, &(srv_opts){.args = ARGS("-w", "1", "--idle-exit", "1")})
                    == 0);
    int gone = srv_wait_exit(&node, 15);
    double took = now_s() - t0;
    CU_ASSERT(gone);
    CU_ASSERT(took >= 0.9); /* the promise: not before the time given */
    CU_ASSERT(exited_idle(&node));
    if (!gone || !exited_idle(&node))
        print_log(&node);
}

/* A client connected for longer than the idle time keeps it; once the
 * client has left, the node exits, counting from the departure. */
static void test_idle_exit_after_client(void)
{
    CU_ASSERT_FATAL(srv_start(&node, &(srv_opts){.args = ARGS("-w", "1", "--idle-exit", "1")})
                    == 0);
    client = cl_client_of(node.port, node.secret);
    CU_ASSERT_FATAL(client != NULL);
    CU_ASSERT_FATAL(one_job(client));
    sleep_s(2.5); /* more than twice the idle time, the client connected */
    CU_ASSERT_FATAL(srv_alive(&node));
    CU_ASSERT(one_job(client)); /* still serving */
    double left = now_s();
    pp_server_free(client);
    client = NULL;
    int gone = srv_wait_exit(&node, 15);
    CU_ASSERT(gone);
    CU_ASSERT(now_s() - left >= 0.9);
    CU_ASSERT(exited_idle(&node));
    if (!gone || !exited_idle(&node))
        print_log(&node);
}

/* A TCP connection that never completes its handshake is no client: the
 * node exits while it is open (its handshake deadline is far later). */
static void test_idle_exit_handshake_not_client(void)
{
    CU_ASSERT_FATAL(srv_start(&node, &(srv_opts){.args = ARGS("-w", "1", "--idle-exit", "1",
                                                               "--handshake-timeout", "60")})
                    == 0);
    raw_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)node.port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    CU_ASSERT_FATAL(raw_fd >= 0 && connect(raw_fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    int gone = srv_wait_exit(&node, 15);
    CU_ASSERT(gone);
    CU_ASSERT(exited_idle(&node));
    if (!gone || !exited_idle(&node))
        print_log(&node);
}

/* Starts ppserver with in_fd (closed here) as its standard input, in
 * node's directory (its secret file unused); its port file is
 * dir/port.stdin, its stderr dir/stdin.err.  Sets `child`.  0, or -1 with a
 * message. */
static int start_with_stdin_fd(int in_fd, char *port_file, size_t cap)
{
    if (!node.dir[0] && srv_prepare(&node) != 0)
        return -1;
    snprintf(port_file, cap, "%s/port.stdin", node.dir);
    char log[400], errf[400];
    snprintf(log, sizeof log, "%s/stdin.log", node.dir);
    snprintf(errf, sizeof errf, "%s/stdin.err", node.dir);
    const char *argv[] = {srv_exe(), "-p", "0", "-i", "127.0.0.1", "-w", "1",
                          "--cache-dir", node.cache_dir, "--log-file", log,
                          "--port-file", port_file, "--secret-file", "-", NULL};
    int efd = open(errf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (!argv[0] || efd < 0 || in_fd < 0) {
        fprintf(stderr, "\n    cannot start ppserver (PP_SERVER, %s, its input)\n", errf);
        if (efd >= 0)
            close(efd);
        if (in_fd >= 0)
            close(in_fd);
        return -1;
    }
    child = fork();
    if (child == 0) {
        unsetenv("PP_SECRET");
        unsetenv("PP_SECRET_FILE");
        dup2(in_fd, 0);
        dup2(efd, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(efd);
    close(in_fd);
    return child > 0 ? 0 : -1;
}

/* The same with `input` through a pipe (then closed). */
static int start_with_stdin(const char *input, size_t len, char *port_file, size_t cap)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    signal(SIGPIPE, SIG_IGN); /* a ppserver gone early fails the write, not us */
    if (start_with_stdin_fd(p[0], port_file, cap) != 0) {
        close(p[1]);
        return -1;
    }
    int ok = write(p[1], input, len) == (ssize_t)len;
    close(p[1]);
    return ok ? 0 : -1;
}

/* Polls for the port file as a launcher does, for at most `limit` seconds:
 * its port, or 0 if it never came (or ppserver exited first), -1 if a read
 * saw anything but a whole number and a newline. */
static int poll_port_file(const char *path, double limit)
{
    double end = now_s() + limit;
    while (now_s() < end) {
        size_t len = 0;
        char *text = srv_slurp(path, &len);
        if (text) {
            char *stop = NULL;
            long port = strtol(text, &stop, 10);
            int whole = len > 1 && stop == text + len - 1 && *stop == '\n' && port > 0 &&
                        port < 65536;
            free(text);
            return whole ? (int)port : -1;
        }
        if (waitpid(child, NULL, WNOHANG) == child) {
            child = -1;
            return 0;
        }
        /* Tight on purpose: a reader that raced the writer would see a
         * partial file here. */
    }
    return 0;
}

/* --secret-file -: the secret from a pipe, and a client with it served;
 * the port file seen whole by a tight poll, no temporary left beside it. */
static void test_secret_on_stdin(void)
{
    char port_file[400];
    CU_ASSERT_FATAL(srv_prepare(&node) == 0);
    char text[160];
    int n = snprintf(text, sizeof text, "%s\r\n\n", node.secret); /* newlines dropped */
    CU_ASSERT_FATAL(start_with_stdin(text, (size_t)n, port_file, sizeof port_file) == 0);
    int port = poll_port_file(port_file, 20);
    CU_ASSERT_FATAL(port > 0);
    client = cl_client_of(port, node.secret);
    CU_ASSERT_FATAL(client != NULL);
    CU_ASSERT(one_job(client));
    char tmp[480];
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", port_file, (int)child);
    CU_ASSERT(access(tmp, F_OK) != 0);
}

/* Its rules: a short secret, more than 4 KiB and a NUL byte are refused
 * (exit 78, saying why); an empty pipe is no secret; a file readable by
 * others redirected in is refused as --secret-file refuses it. */
/* The ppserver started by hand exits 78 within 10 s, its stderr saying
 * `says` (else shown, as case i's). */
static void refused_saying(const char *says, size_t i)
{
    int status = 0, done = wait_pid(child, &status, 10);
    CU_ASSERT(done && WIFEXITED(status) && WEXITSTATUS(status) == 78);
    if (done)
        child = -1;
    char errf[400];
    snprintf(errf, sizeof errf, "%s/stdin.err", node.dir);
    char *said = srv_slurp(errf, NULL);
    CU_ASSERT(said && strstr(said, says));
    if (!said || !strstr(said, says))
        fprintf(stderr, "\n    case %zu: wanted \"%s\", ppserver said: %s\n", i, says,
                said ? said : "(nothing)");
    free(said);
}

static void test_secret_on_stdin_refused(void)
{
    static char big[5000];
    memset(big, 'a', sizeof big);
    const struct {
        const char *in;
        size_t len;
        const char *says;
    } cases[] = {
        {"short\n", 6, "too short"},
        {big, sizeof big, "exceeds 4 KiB"},
        {"0123456789abcdef\0" "0123456789", 27, "NUL byte"},
        {"", 0, "no secret"},
    };
    for (size_t i = 0; i < PP_ARRAY_LEN(cases); i++) {
        char port_file[400];
        CU_ASSERT_FATAL(start_with_stdin(cases[i].in, cases[i].len, port_file,
                                         sizeof port_file) == 0);
        refused_saying(cases[i].says, i);
        CU_ASSERT(access(port_file, F_OK) != 0); /* never served */
    }
    /* A world-readable file as standard input: what the shell redirects in
     * is checked as a secret file is. */
    char path[400], port_file[400];
    snprintf(path, sizeof path, "%s/open-secret", node.dir);
    FILE *fp = fopen(path, "w");
    CU_ASSERT_FATAL(fp != NULL);
    fprintf(fp, "%s\n", node.secret);
    fclose(fp);
    CU_ASSERT_FATAL(chmod(path, 0644) == 0);
    CU_ASSERT_FATAL(start_with_stdin_fd(open(path, O_RDONLY | O_CLOEXEC), port_file,
                                        sizeof port_file) == 0);
    refused_saying("readable by others (mode 644)", PP_ARRAY_LEN(cases));
}

/* The node's CPU count as the client sees it, or -1. */
static int node_ncpus(pp_server *s)
{
    pp_node_info ni;
    return cl_node1(s, &ni) == 0 ? ni.ncpus : -1;
}

/* Waits (at most 10 s) until the client sees `want` CPUs on the node. */
static int ncpus_becomes(pp_server *s, int want)
{
    for (int i = 0; i < 500 && node_ncpus(s) != want; i++)
        sleep_s(0.02);
    return node_ncpus(s) == want;
}

static int write_conf(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int ok = fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text);
    if (fd >= 0)
        close(fd);
    return ok;
}

/* SIGHUP: the worker count from the configuration file, announced to the
 * client; a file turned bad changes nothing (and says so); SIGUSR1 then
 * logs the status; SIGTERM ends it at once, the loop idle each time. */
static void test_signals(void)
{
    CU_ASSERT_FATAL(srv_prepare(&node) == 0);
    char conf[300];
    snprintf(conf, sizeof conf, "%s/ppserver.conf", node.dir);
    CU_ASSERT_FATAL(write_conf(conf, "workers 1\n"));
    CU_ASSERT_FATAL(srv_start(&node, &(srv_opts){.args = ARGS("-c", conf)}) == 0);
    client = cl_client_of(node.port, node.secret);
    CU_ASSERT_FATAL(client != NULL);
    CU_ASSERT_FATAL(one_job(client));
    CU_ASSERT(ncpus_becomes(client, 1));
    CU_ASSERT_FATAL(write_conf(conf, "workers 3\n"));
    CU_ASSERT_FATAL(kill(node.pid, SIGHUP) == 0);
    CU_ASSERT(ncpus_becomes(client, 3));
    CU_ASSERT(one_job(client));
    CU_ASSERT_FATAL(write_conf(conf, "workers lots\n"));
    CU_ASSERT_FATAL(kill(node.pid, SIGHUP) == 0);
    int said = 0;
    for (int i = 0; i < 500 && !said; i++) {
        said = srv_log_count(&node, ARGS("SIGHUP: ")) == 1;
        if (!said)
            sleep_s(0.02);
    }
    CU_ASSERT(said);
    CU_ASSERT(node_ncpus(client) == 3);
    CU_ASSERT_FATAL(kill(node.pid, SIGUSR1) == 0);
    int dumped = 0;
    for (int i = 0; i < 500 && !dumped; i++) {
        dumped = srv_log_count(&node, ARGS("status: ppserver ")) == 1;
        if (!dumped)
            sleep_s(0.02);
    }
    CU_ASSERT(dumped);
    double term_at = now_s();
    CU_ASSERT_FATAL(kill(node.pid, SIGTERM) == 0);
    CU_ASSERT(srv_wait_exit(&node, 10));
    CU_ASSERT(now_s() - term_at < 5);
    CU_ASSERT(WIFEXITED(node.status) && WEXITSTATUS(node.status) == 0);
    if (!said || !dumped)
        print_log(&node);
}

static const pp_test tests[] = {
    {"SIGHUP, SIGUSR1, SIGTERM", test_signals},
    {"--idle-exit: nobody connects", test_idle_exit_alone},
    {"--idle-exit: a client keeps it, then it exits", test_idle_exit_after_client},
    {"--idle-exit: a handshake is no client", test_idle_exit_handshake_not_client},
    {"--secret-file -: the secret on stdin, the port file whole", test_secret_on_stdin},
    {"--secret-file -: refused like a bad secret file", test_secret_on_stdin_refused},
    {NULL, NULL},
};

int pp_register_suites(void)
{
    return pp_add_suite_with("lifetime", NULL, NULL, NULL, teardown, tests);
}
