/* SPDX-License-Identifier: MIT */
/* test_logs.c -- ppserver's logs as a fleet reads them: real ppservers on
 * 127.0.0.1, a libpp client running jobs and a client with a wrong secret.
 *
 *  - --log-format json --log-file: every line of the file is one JSON
 *    object with the logger's fields (tests/support/log_json_check.py,
 *    /usr/bin/python3), the refusal and the client among them;
 *  - stderr named by $JOURNAL_STREAM (as systemd sets it): text and JSON
 *    lines start with their syslog level "<N>"; a variable naming another
 *    file, none, or a --log-file: no prefixes;
 *  - what tasks print on a node goes into its log a line at a time,
 *    escaped, cut and rate-limited, never raw onto its stderr;
 *  - an unknown --log-format is refused at start (exit 64).
 *
 * Skipped (exit 77, reason printed) without /usr/bin/python3.  Every wait
 * is bounded; every process started is reaped (per-test teardown). */
#include <CUnit/CUnit.h>
#include <fcntl.h>
#include <pp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client_util.h"
#include "cunit_main.h"
#include "server_harness.h"
#include "test_tasks.h"
#include "test_util.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define PYTHON "/usr/bin/python3"

static srv_harness node;
static pp_server *client, *intruder;

static void teardown(void)
{
    pp_server_free(intruder);
    intruder = NULL;
    pp_server_free(client);
    client = NULL;
    srv_cleanup(&node);
}

/* A wrong secret refused, then a client whose job runs; the node stopped.
 * 1 when all went as it should. */
static int traffic_then_stop(void)
{
    intruder = cl_client_of(node.port, "not-the-secret-of-this-node-0123456789");
    if (!intruder)
        return 0;
    int ok = cl_wait_node1_state(intruder, PP_NODE_AUTH_FAILED, 10);
    pp_server_free(intruder);
    intruder = NULL;
    client = cl_client_of(node.port, node.secret);
    pp_job *j = client ? pp_submitf(client, t_square, NULL, "l", 7L) : NULL;
    ok &= j && pp_job_wait_for(j, 30) == PP_DONE;
    pp_job_free(j);
    pp_server_free(client);
    client = NULL;
    int st = srv_stop(&node, 10);
    return ok && st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* log_json_check.py's output for `path` (malloc'd), or NULL when a line
 * did not pass (the reason on stderr). */
static char *json_checked(const char *path, int journal)
{
    const char *src = getenv("PP_SOURCE_DIR");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s/tests/support/log_json_check.py %s%s > %s.checked", PYTHON,
             src ? src : ".", path, journal ? " --journal" : "", path);
    if (system(cmd) != 0)
        return NULL;
    snprintf(cmd, sizeof cmd, "%s.checked", path);
    return srv_slurp(cmd, NULL);
}

/* The check's output has the refusal (warn) and the client (info). */
static void assert_events(const char *out)
{
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "info\t\"listening on 127.0.0.1:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "warn\t\"127.0.0.1:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "authentication failed"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, ": client authenticated\"\n"));
}

static void test_json_log_file(void)
{
    CU_ASSERT_FATAL(srv_start(&node, &(srv_opts){.args = ARGS("-w", "1", "--log-format",
                                                               "json", "--log-level",
                                                               "debug")}) == 0);
    CU_ASSERT(traffic_then_stop());
    char *out = json_checked(node.log_file, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    assert_events(out);
    char *log = srv_read_log(&node), *err = srv_read_stderr(&node);
    CU_ASSERT(log && strstr(log, "\"program\":\"ppserver\""));
    CU_ASSERT(err && !strstr(err, "Sanitizer") && !strstr(err, "runtime error"));
    free(err);
    free(log);
    free(out);
}

/* The dev:ino of path as JOURNAL_STREAM wants it ("JOURNAL_STREAM=D:I"),
 * the inode plus `skew`. */
static void journal_of(const char *path, int skew, char *out, size_t cap)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    struct stat st;
    CU_ASSERT_FATAL(fd >= 0 && fstat(fd, &st) == 0);
    close(fd);
    snprintf(out, cap, "JOURNAL_STREAM=%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + (unsigned long long)skew);
}

/* Every line starts with "<N>" and N is its level's. */
static int text_prefixed(const char *text)
{
    static const char *const pairs[][2] = {
        {"<3>", " ERROR ppserver: "}, {"<4>", " WARN ppserver: "},
        {"<6>", " INFO ppserver: "}, {"<7>", " DEBUG ppserver: "}};
    int lines = 0;
    for (const char *p = text; p && *p; lines++) {
        const char *end = strchr(p, '\n');
        if (!end)
            return 0;
        int ok = 0;
        for (size_t i = 0; i < 4; i++) {
            const char *tag = strstr(p, pairs[i][1]);
            ok |= strncmp(p, pairs[i][0], 3) == 0 && tag && tag < end;
        }
        if (!ok) {
            fprintf(stderr, "\n    not prefixed right: %.*s\n", (int)(end - p), p);
            return 0;
        }
        p = end + 1;
    }
    return lines;
}

static void test_journal_prefixes(void)
{
    char env[96];
    for (int json = 0; json < 2; json++) {
        CU_ASSERT_FATAL(srv_prepare(&node) == 0);
        journal_of(node.err_file, 0, env, sizeof env);
        const char *const envs[] = {env, NULL};
        CU_ASSERT_FATAL(srv_start(&node, &(srv_opts){
            .no_log_file = 1, .env = envs,
            .args = ARGS("-w", "1", "--log-level", "debug", "--log-format",
                         json ? "json" : "text")}) == 0);
        CU_ASSERT(traffic_then_stop());
        if (json) {
            char *out = json_checked(node.err_file, 1);
            CU_ASSERT_PTR_NOT_NULL(out);
            if (out)
                assert_events(out);
            free(out);
        } else {
            char *text = srv_read_stderr(&node);
            CU_ASSERT(text && text_prefixed(text) > 3);
            CU_ASSERT(text && strstr(text, "\n<4>") && strstr(text, "authentication failed"));
            CU_ASSERT(text && strstr(text, "\n<6>") && strstr(text, "client authenticated"));
            free(text);
        }
        srv_cleanup(&node);
    }
}

/* No prefix when the variable names another file, is unset, or stderr
 * went to a --log-file. */
static void test_journal_elsewhere(void)
{
    char env[96];
    for (int c = 0; c < 3; c++) {
        CU_ASSERT_FATAL(srv_prepare(&node) == 0);
        journal_of(node.err_file, c == 0 ? 1 : 0, env, sizeof env);
        const char *const envs[] = {env, NULL};
        CU_ASSERT_FATAL(srv_start(&node, &(srv_opts){
            .no_log_file = c != 2, .env = c == 1 ? NULL : envs,
            .args = ARGS("-w", "1", "--log-level", "debug")}) == 0);
        CU_ASSERT(traffic_then_stop());
        char *text = c == 2 ? srv_read_log(&node) : srv_read_stderr(&node);
        CU_ASSERT_FATAL(text != NULL);
        CU_ASSERT_PTR_NOT_NULL(strstr(text, " INFO ppserver: listening on "));
        CU_ASSERT(text[0] != '<' && !strstr(text, "\n<"));
        free(text);
        srv_cleanup(&node);
    }
}

static void test_bad_format(void)
{
    CU_ASSERT_FATAL(srv_prepare(&node) == 0);
    char *err = NULL;
    int st = srv_run_once(ARGS("ppserver", "-p", "0", "--secret-file", node.secret_file,
                               "--cache-dir", node.cache_dir, "--log-format", "xml"),
                          NULL, 20, &err);
    CU_ASSERT(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 64);
    CU_ASSERT(err && strstr(err, "unknown log format \"xml\""));
    free(err);
}

/* A t_print job of n flood lines on the client: its result, or -1. */
static long print_job(long n)
{
    pp_job *j = pp_submitf(client, t_print, NULL, "l", n);
    long got = -1;
    size_t len = 0;
    const void *r = j && pp_job_wait_for(j, 60) == PP_DONE ? pp_job_result(j, &len) : NULL;
    if (!r || pp_unpack(r, len, "l", &got) != 0)
        got = -1;
    pp_job_free(j);
    return got;
}

static size_t count_of(const char *text, const char *what)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
        n++;
    return n;
}

/* What a task prints (stdout and stderr) reaches the JSON log as lines of
 * its own, escaped: a forged log line and an escape sequence stay inside
 * a message, a long line is cut, a flood is rate-limited and summed up,
 * nothing raw reaches the node's stderr, and the jobs are unharmed. */
static void test_worker_output(void)
{
    CU_ASSERT_FATAL(srv_start(&node, &(srv_opts){.args = ARGS("-w", "1", "--log-format",
                                                               "json", "--log-rate",
                                                               "50")}) == 0);
    client = cl_client_of(node.port, node.secret);
    CU_ASSERT_FATAL(client != NULL);
    CU_ASSERT(print_job(0) == 0);
    CU_ASSERT(print_job(20000) == 20000);
    pp_job *j = pp_submitf(client, t_square, NULL, "l", 7L);
    CU_ASSERT(j && pp_job_wait_for(j, 30) == PP_DONE);
    pp_job_free(j);
    pp_server_free(client);
    client = NULL;
    int st = srv_stop(&node, 10);
    CU_ASSERT(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    char *out = json_checked(node.log_file, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "info\t\"worker output: task stdout line\"\n"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(out, "info\t\"worker output: INFO ppserver: forged\\u001b[31m\"\n"));
    char cut[1200] = "info\t\"worker output: ";
    size_t at = strlen(cut);
    memset(cut + at, 'x', 900);
    snprintf(cut + at + 900, sizeof cut - at - 900,
             " [cut: only its first 900 bytes are logged]\"\n");
    CU_ASSERT_PTR_NOT_NULL(strstr(out, cut));
    size_t flood = count_of(out, "worker output: flood line ");
    CU_ASSERT(flood > 0 && flood < 20000);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "suppressed in"));
    char *err = srv_read_stderr(&node);
    CU_ASSERT(err && !strstr(err, "task stdout line") && !strstr(err, "flood line"));
    free(err);
    free(out);
}

static const pp_test tests[] = {
    {"json_log_file", test_json_log_file},
    {"worker_output", test_worker_output},
    {"journal_prefixes", test_journal_prefixes},
    {"journal_elsewhere", test_journal_elsewhere},
    {"bad_format", test_bad_format},
    {NULL, NULL},
};

int pp_register_suites(void)
{
    if (access(PYTHON, X_OK) != 0) {
        printf("test_logs: skipped: no %s to parse the JSON lines with\n", PYTHON);
        exit(77);
    }
    unsetenv("JOURNAL_STREAM"); /* the journal is what each test says */
    return pp_add_suite_with("logs", NULL, NULL, NULL, teardown, tests);
}
