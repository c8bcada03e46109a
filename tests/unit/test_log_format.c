/* SPDX-License-Identifier: MIT */
/* test_log_format.c -- pp_log's JSON lines and journal level prefixes.
 *
 * The attack it answers: a message carries text from outside (a peer's
 * address, what a client or a task sent); with a newline, quotes or bytes
 * that are not UTF-8 in it, a naive line would end early, forge a second
 * line or add fields of its own ("level":"error").  Every line written here
 * is read back by tests/support/log_json_check.py with /usr/bin/python3's
 * json module: one object per line, exactly the logger's fields, and the
 * message decoded as it was meant.  Text lines write control bytes as \xNN.
 * Journal prefixes ("<N>", sd-daemon(3)) follow the level, and only when
 * $JOURNAL_STREAM names the fd's device and inode.
 *
 * Skipped (exit 77, reason printed) without /usr/bin/python3. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cunit_main.h"
#include "pp_log.h"

#define PYTHON "/usr/bin/python3"

typedef struct sink {
    char *text;
    size_t len;
    FILE *fp;
} sink;

static void sink_open(sink *s)
{
    s->text = NULL;
    s->len = 0;
    s->fp = open_memstream(&s->text, &s->len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s->fp);
}

static void sink_close(sink *s)
{
    fclose(s->fp);
    free(s->text);
    s->text = NULL;
}

/* What log_json_check.py prints for the sink's lines ("LEVEL\tMESSAGE"
 * each, MESSAGE as an ASCII JSON string), malloc'd; NULL when a line did
 * not pass (its reason on stderr). */
static char *checked(sink *s, int journal)
{
    fflush(s->fp);
    char path[] = "/tmp/pp-logfmt-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(write(fd, s->text, s->len) == (ssize_t)s->len);
    close(fd);
    const char *src = getenv("PP_SOURCE_DIR");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s/tests/support/log_json_check.py %s%s", PYTHON,
             src ? src : ".", path, journal ? " --journal" : "");
    FILE *p = popen(cmd, "r");
    CU_ASSERT_FATAL(p != NULL);
    char *out = NULL;
    size_t cap = 0, len = 0, n;
    char chunk[4096];
    while ((n = fread(chunk, 1, sizeof chunk, p)) > 0) {
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            out = realloc(out, cap);
            CU_ASSERT_FATAL(out != NULL);
        }
        memcpy(out + len, chunk, n);
        len += n;
        out[len] = 0;
    }
    int st = pclose(p);
    unlink(path);
    if (st != 0) {
        free(out);
        return NULL;
    }
    return out ? out : strdup("");
}

static int count_lines(const char *t)
{
    int n = 0;
    for (; t && *t; t++)
        n += *t == '\n';
    return n;
}

/* The attack cases: each is written once and must come back as one line
 * with exactly the logger's fields and the message as it was. */
static const struct {
    const char *msg;
    const char *decoded; /* as json.dumps() prints it */
} attacks[] = {
    {"10.0.0.1:5: a\nforged line", "\"10.0.0.1:5: a\\nforged line\""},
    {"x\", \"level\": \"error\", \"extra\": \"1", "\"x\\\", \\\"level\\\": \\\"error\\\", "
                                                 "\\\"extra\\\": \\\"1\""},
    {"\"}\n{\"time\":\"0\",\"level\":\"error\",\"program\":\"ppserver\",\"pid\":1,\"message\":\"",
     "\"\\\"}\\n{\\\"time\\\":\\\"0\\\",\\\"level\\\":\\\"error\\\",\\\"program\\\":\\\"ppserver\\\","
     "\\\"pid\\\":1,\\\"message\\\":\\\"\""},
    {"ctl \x01\x1b[31m\x7f tab\tcr\r back\\slash", "\"ctl \\u0001\\u001b[31m\\u007f tab\\tcr\\r "
                                                  "back\\\\slash\""},
    {"bad \xff \xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 \xe2\x82",
     "\"bad \\ufffd \\ufffd\\ufffd \\ufffd\\ufffd\\ufffd \\ufffd\\ufffd\\ufffd\\ufffd "
     "\\ufffd\\ufffd\""},
    {"ok \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe2\x80\xa8", "\"ok \\u00e9 \\u20ac "
                                                               "\\ud83d\\ude00 \\u2028\""},
};

static void test_json_attacks(void)
{
    sink s;
    sink_open(&s);
    pp_log lg = {.level = PP_LOG_DEBUG, .fp = s.fp, .who = "ppserver",
                 .format = PP_LOG_FORMAT_JSON};
    for (size_t i = 0; i < PP_ARRAY_LEN(attacks); i++)
        pp_log_write(&lg, PP_LOG_INFO, "%s", attacks[i].msg);
    fflush(s.fp);
    CU_ASSERT_EQUAL(count_lines(s.text), (int)PP_ARRAY_LEN(attacks));
    char *out = checked(&s, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_EQUAL(count_lines(out), (int)PP_ARRAY_LEN(attacks));
    const char *line = out;
    for (size_t i = 0; i < PP_ARRAY_LEN(attacks) && line; i++) {
        char want[1024];
        snprintf(want, sizeof want, "info\t%s\n", attacks[i].decoded);
        CU_ASSERT_EQUAL(strncmp(line, want, strlen(want)), 0);
        if (strncmp(line, want, strlen(want)) != 0)
            fprintf(stderr, "\n    case %zu: got %.*s    want %s", i,
                    (int)(strchr(line, '\n') - line + 1), line, want);
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    free(out);
    sink_close(&s);
}

/* Every level, a rate-limited flood and its summary, messages at the
 * length limit that grow most when escaped: every line parses. */
static void test_json_mixed_run(void)
{
    sink s;
    sink_open(&s);
    pp_log_limit lim;
    pp_log_limit_init(&lim, 1, 3);
    pp_log lg = {.level = PP_LOG_DEBUG, .fp = s.fp, .who = "libpp", .limit = &lim,
                 .format = PP_LOG_FORMAT_JSON};
    pp_log *lp = &lg;
    pp_log(lp, PP_LOG_ERROR, "event loop: %s", "broken");
    pp_log(lp, PP_LOG_WARN, "%s: refused: %s", "127.0.0.1:4000", "too many connections");
    pp_log(lp, PP_LOG_INFO, "listening on %s:%d", "127.0.0.1", 60000);
    pp_log(lp, PP_LOG_DEBUG, "worker %d ready", 1234);
    for (int i = 0; i < 50; i++)
        pp_log(lp, PP_LOG_WARN, "flood \"%d\"\n", i);
    pp_log_flush(lp);
    static char quotes[3000], ctl[3000];
    memset(quotes, '"', sizeof quotes - 1);
    memset(ctl, '\x01', sizeof ctl - 1);
    pp_log(lp, PP_LOG_INFO, "%s", quotes);
    pp_log(lp, PP_LOG_INFO, "%s", ctl);
    fflush(s.fp);
    CU_ASSERT_EQUAL(count_lines(s.text), 4 + 3 + 1 + 2);
    char *out = checked(&s, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_EQUAL(count_lines(out), 10);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "error\t\"event loop: broken\"\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "debug\t\"worker 1234 ready\"\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "warn\t\"flood \\\"2\\\"\\n\"\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "warn\t\"... 47 more lines like"));
    /* The summary's count is a field of its own. */
    CU_ASSERT_PTR_NOT_NULL(strstr(s.text, ",\"suppressed\":47}\n"));
    free(out);
    pp_log_limit_destroy(&lim);
    sink_close(&s);
}

/* Text lines: the same attacks stay on one line each. */
static void test_text_one_line(void)
{
    sink s;
    sink_open(&s);
    pp_log lg = {.level = PP_LOG_DEBUG, .fp = s.fp, .who = "t"};
    for (size_t i = 0; i < PP_ARRAY_LEN(attacks); i++)
        pp_log_write(&lg, PP_LOG_INFO, "%s", attacks[i].msg);
    fflush(s.fp);
    CU_ASSERT_EQUAL(count_lines(s.text), (int)PP_ARRAY_LEN(attacks));
    CU_ASSERT_PTR_NOT_NULL(strstr(s.text, " INFO t: 10.0.0.1:5: a\\x0aforged line\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s.text, " INFO t: ctl \\x01\\x1b[31m\\x7f tab\\x09cr\\x0d "
                                          "back\\slash\n"));
    CU_ASSERT_PTR_NULL(strchr(s.text, '\r'));
    CU_ASSERT_PTR_NULL(strchr(s.text, '\x1b'));
    sink_close(&s);
}

/* With `journal` every line starts with the level's syslog prefix. */
static void test_journal_prefixes(void)
{
    static const struct { int level; const char *text, *json; } want[] = {
        {PP_LOG_ERROR, "<3>", "<3>{"},
        {PP_LOG_WARN, "<4>", "<4>{"},
        {PP_LOG_INFO, "<6>", "<6>{"},
        {PP_LOG_DEBUG, "<7>", "<7>{"},
    };
    for (int json = 0; json < 2; json++) {
        sink s;
        sink_open(&s);
        pp_log lg = {.level = PP_LOG_DEBUG, .fp = s.fp, .who = "ppserver", .journal = 1,
                     .format = json ? PP_LOG_FORMAT_JSON : PP_LOG_FORMAT_TEXT};
        for (size_t i = 0; i < PP_ARRAY_LEN(want); i++) {
            size_t at = (fflush(s.fp), s.len);
            pp_log_write(&lg, want[i].level, "level %d", want[i].level);
            fflush(s.fp);
            const char *p = json ? want[i].json : want[i].text;
            CU_ASSERT_EQUAL(strncmp(s.text + at, p, strlen(p)), 0);
        }
        if (json) {
            char *out = checked(&s, 1);
            CU_ASSERT_PTR_NOT_NULL(out);
            CU_ASSERT_EQUAL(count_lines(out), 4);
            free(out);
        }
        sink_close(&s);
    }
}

/* JOURNAL_STREAM: only the fd it names (device and inode) is the journal. */
static void test_journal_stream(void)
{
    FILE *f = tmpfile();
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    struct stat st;
    CU_ASSERT_FATAL(fstat(fileno(f), &st) == 0);
    char v[96];
    unsetenv("JOURNAL_STREAM");
    CU_ASSERT_EQUAL(pp_log_is_journal(fileno(f)), 0);
    snprintf(v, sizeof v, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", v, 1);
    CU_ASSERT_EQUAL(pp_log_is_journal(fileno(f)), 1);
    CU_ASSERT_EQUAL(pp_log_is_journal(-1), 0);
    /* Another file (a --log-file, a pipe) under an inherited variable. */
    FILE *g = tmpfile();
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    CU_ASSERT_EQUAL(pp_log_is_journal(fileno(g)), 0);
    snprintf(v, sizeof v, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + 1);
    setenv("JOURNAL_STREAM", v, 1);
    CU_ASSERT_EQUAL(pp_log_is_journal(fileno(f)), 0);
    /* Malformed values are no journal. */
    static const char *const bad[] = {"", ":", "12", "12:", ":34", " 1:2", "-1:2", "1:-2",
                                      "1:2x", "1:2:3", "99999999999999999999999:1", "x"};
    for (size_t i = 0; i < PP_ARRAY_LEN(bad); i++) {
        setenv("JOURNAL_STREAM", bad[i], 1);
        CU_ASSERT_EQUAL(pp_log_is_journal(fileno(f)), 0);
    }
    unsetenv("JOURNAL_STREAM");
    fclose(g);
    fclose(f);
}

static void test_parse_format(void)
{
    CU_ASSERT_EQUAL(pp_log_parse_format("text"), PP_LOG_FORMAT_TEXT);
    CU_ASSERT_EQUAL(pp_log_parse_format("json"), PP_LOG_FORMAT_JSON);
    CU_ASSERT_EQUAL(pp_log_parse_format("JSON"), -1);
    CU_ASSERT_EQUAL(pp_log_parse_format(""), -1);
    CU_ASSERT_EQUAL(pp_log_parse_format(NULL), -1);
}

int pp_register_suites(void)
{
    if (access(PYTHON, X_OK) != 0) {
        printf("test_log_format: skipped: no %s to parse the JSON lines with\n", PYTHON);
        exit(77);
    }
    static const pp_test tests[] = {
        {"JSON: escaping attacks stay one line, no fields added", test_json_attacks},
        {"JSON: a mixed run, every line parses", test_json_mixed_run},
        {"text: control bytes escaped, one line each", test_text_one_line},
        {"journal: <N> prefixes by level, text and JSON", test_journal_prefixes},
        {"journal: JOURNAL_STREAM must name the fd", test_journal_stream},
        {"--log-format values", test_parse_format},
        {NULL, NULL},
    };
    return pp_add_suite("pp_log formats", NULL, NULL, tests);
}
