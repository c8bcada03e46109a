/* SPDX-License-Identifier: MIT */
/* test_common.c -- pp_common (byte order, time, signal names, exit
 * descriptions, CPU count, error text) and pp_log (levels, line format). */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cunit_main.h"
#include "pp_common.h"
#include "pp_log.h"

/* ---- byte order ---- */

static void test_store_load16(void)
{
    uint8_t b[4] = {0xEE, 0xEE, 0xEE, 0xEE};
    pp_store16(b + 1, 0x1234);
    CU_ASSERT_EQUAL(b[0], 0xEE);
    CU_ASSERT_EQUAL(b[1], 0x12);
    CU_ASSERT_EQUAL(b[2], 0x34);
    CU_ASSERT_EQUAL(b[3], 0xEE);
    CU_ASSERT_EQUAL(pp_load16(b + 1), 0x1234);
    static const uint8_t hi[] = {0xFF, 0xFE};
    CU_ASSERT_EQUAL(pp_load16(hi), 0xFFFE);
    pp_store16(b, 0);
    CU_ASSERT(b[0] == 0 && b[1] == 0);
    pp_store16(b, 0xFFFF);
    CU_ASSERT(b[0] == 0xFF && b[1] == 0xFF);
}

static void test_store_load32(void)
{
    uint8_t b[6];
    memset(b, 0xEE, sizeof b);
    pp_store32(b + 1, 0xDEADBEEFu);
    static const uint8_t want[] = {0xEE, 0xDE, 0xAD, 0xBE, 0xEF, 0xEE};
    CU_ASSERT_EQUAL(memcmp(b, want, sizeof want), 0);
    CU_ASSERT_EQUAL(pp_load32(b + 1), 0xDEADBEEFu);
    static const uint8_t top[] = {0x80, 0, 0, 0};
    CU_ASSERT_EQUAL(pp_load32(top), 0x80000000u);
    static const uint8_t seq[] = {0x01, 0x02, 0x03, 0x04};
    CU_ASSERT_EQUAL(pp_load32(seq), 0x01020304u);
}

static void test_store_load64(void)
{
    uint8_t b[10];
    memset(b, 0xEE, sizeof b);
    pp_store64(b + 1, 0x0102030405060708ull);
    static const uint8_t want[] = {0xEE, 1, 2, 3, 4, 5, 6, 7, 8, 0xEE};
    CU_ASSERT_EQUAL(memcmp(b, want, sizeof want), 0);
    CU_ASSERT(pp_load64(b + 1) == 0x0102030405060708ull);
    static const uint8_t ones[] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    CU_ASSERT(pp_load64(ones) == UINT64_MAX);
    static const uint8_t top[] = {0x80, 0, 0, 0, 0, 0, 0, 1};
    CU_ASSERT(pp_load64(top) == 0x8000000000000001ull);
    /* Round trips of assorted values. */
    static const uint64_t vals[] = {0, 1, 0xFF, 0x100, 0xFFFFFFFFull, 0x100000000ull,
                                    0x8000000000000000ull, UINT64_MAX};
    for (size_t i = 0; i < PP_ARRAY_LEN(vals); i++) {
        pp_store64(b, vals[i]);
        CU_ASSERT(pp_load64(b) == vals[i]);
        pp_store32(b, (uint32_t)vals[i]);
        CU_ASSERT_EQUAL(pp_load32(b), (uint32_t)vals[i]);
        pp_store16(b, (uint16_t)vals[i]);
        CU_ASSERT_EQUAL(pp_load16(b), (uint16_t)vals[i]);
    }
}

static void test_macros(void)
{
    int a[7];
    CU_ASSERT_EQUAL(PP_ARRAY_LEN(a), 7);
    CU_ASSERT_EQUAL(PP_MIN(3, 5), 3);
    CU_ASSERT_EQUAL(PP_MIN(-3, -5), -5);
    CU_ASSERT_EQUAL(PP_MAX(3, 5), 5);
    CU_ASSERT_EQUAL(PP_MAX(-3, -5), -3);
}

/* ---- time, errors, CPUs ---- */

static void test_now(void)
{
    double a = pp_now();
    CU_ASSERT(a > 0);
    double prev = a;
    int mono = 1;
    for (int i = 0; i < 1000; i++) {
        double t = pp_now();
        mono = mono && t >= prev;
        prev = t;
    }
    CU_ASSERT(mono);
    usleep(20000);
    double b = pp_now();
    CU_ASSERT(b - a >= 0.019);
    CU_ASSERT(b - a < 5.0);
}

static void test_seterr(void)
{
    pp_seterr(NULL, "nothing %d", 1); /* no-op */
    char err[PP_ERR_LEN + 8];
    memset(err, 'Z', sizeof err);
    pp_seterr(err, "bad %s at %d", "thing", 7);
    CU_ASSERT_STRING_EQUAL(err, "bad thing at 7");
    /* Long text is cut to PP_ERR_LEN bytes, NUL included. */
    char longs[600];
    memset(longs, 'y', sizeof longs - 1);
    longs[sizeof longs - 1] = 0;
    memset(err, 'Z', sizeof err);
    pp_seterr(err, "%s", longs);
    CU_ASSERT_EQUAL(strlen(err), PP_ERR_LEN - 1);
    CU_ASSERT_EQUAL(err[PP_ERR_LEN], 'Z'); /* nothing written past it */
}

static void test_ncpus(void)
{
    int n = pp_ncpus_available();
    CU_ASSERT(n >= 1);
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        CU_ASSERT_EQUAL(n, CPU_COUNT(&set));
    long conf = sysconf(_SC_NPROCESSORS_CONF);
    if (conf > 0)
        CU_ASSERT(n <= conf);
}

/* ---- signal names and exit descriptions ---- */

/* 1 if the VMA holding addr is marked eligible for huge pages, 0 if not,
 * -1 if smaps does not say. */
static int thp_eligible(uintptr_t addr)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return -1;
    char line[512];
    int inside = 0, r = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
            inside = addr >= lo && addr < hi;
            continue;
        }
        int v;
        if (inside && sscanf(line, "THPeligible: %d", &v) == 1) {
            r = v;
            break;
        }
    }
    fclose(f);
    return r;
}

static void test_malloc_big(void)
{
    size_t n = 16u << 20;
    unsigned char *p = pp_malloc_big(n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    memset(p, 0xA5, n);
    CU_ASSERT_EQUAL(p[0], 0xA5);
    CU_ASSERT_EQUAL(p[n - 1], 0xA5);
    /* Where THP is in "madvise" mode the hint is what makes the block
     * eligible ("always" makes everything eligible, "never" nothing). */
    char mode[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f) {
        if (!fgets(mode, sizeof mode, f))
            mode[0] = 0;
        fclose(f);
    }
    uintptr_t mid = ((uintptr_t)p + n / 2) & ~(uintptr_t)((2u << 20) - 1);
    int e = thp_eligible(mid);
    if (strstr(mode, "[madvise]") && e >= 0)
        CU_ASSERT_EQUAL(e, 1);
    free(p);
    /* Small blocks are plain malloc. */
    void *q = pp_malloc_big(100);
    CU_ASSERT_PTR_NOT_NULL(q);
    free(q);
}

static void test_signame(void)
{
    char buf[16];
    memset(buf, 'Z', sizeof buf);
    CU_ASSERT_STRING_EQUAL(pp_signame(11, buf), "SIGSEGV");
    CU_ASSERT_STRING_EQUAL(pp_signame(SIGSEGV, buf), "SIGSEGV");
    CU_ASSERT_STRING_EQUAL(pp_signame(SIGKILL, buf), "SIGKILL");
    CU_ASSERT_STRING_EQUAL(pp_signame(SIGTERM, buf), "SIGTERM");
    CU_ASSERT_STRING_EQUAL(pp_signame(SIGABRT, buf), "SIGABRT");
    CU_ASSERT_STRING_EQUAL(pp_signame(SIGBUS, buf), "SIGBUS");
    CU_ASSERT_STRING_EQUAL(pp_signame(SIGFPE, buf), "SIGFPE");
    CU_ASSERT_STRING_EQUAL(pp_signame(SIGPIPE, buf), "SIGPIPE");
    CU_ASSERT_STRING_EQUAL(pp_signame(SIGHUP, buf), "SIGHUP");
    CU_ASSERT_STRING_EQUAL(pp_signame(SIGXCPU, buf), "SIGXCPU");

    const char *s = pp_signame(64, buf);
    CU_ASSERT_STRING_EQUAL(s, "signal 64");
    CU_ASSERT_PTR_EQUAL(s, buf);
    CU_ASSERT_STRING_EQUAL(pp_signame(0, buf), "signal 0");
    CU_ASSERT_STRING_EQUAL(pp_signame(-5, buf), "signal -5");
    char want[16];
    snprintf(want, sizeof want, "signal %d", SIGRTMIN);
    CU_ASSERT_STRING_EQUAL(pp_signame(SIGRTMIN, buf), want);
    /* The widest int still fits the 16-byte buffer, cut and terminated. */
    s = pp_signame(-2147483647 - 1, buf);
    CU_ASSERT(strlen(s) <= 15);
    CU_ASSERT_EQUAL(strncmp(s, "signal -", 8), 0);
}

/* Runs a child that ends per `how` and returns its wait status. */
static int child_status(int how)
{
    fflush(NULL);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        struct rlimit nocore = {0, 0};
        setrlimit(RLIMIT_CORE, &nocore);
        switch (how) {
        case 0: _exit(0);
        case 1: _exit(3);
        case 2: _exit(255);
        case 3:
            signal(SIGSEGV, SIG_DFL);
            raise(SIGSEGV);
            _exit(99);
        default:
            raise(SIGKILL);
            _exit(99);
        }
    }
    int st = 0;
    pid_t w;
    do
        w = waitpid(pid, &st, 0);
    while (w < 0 && errno == EINTR);
    CU_ASSERT_EQUAL(w, pid);
    return st;
}

static void test_describe_exit(void)
{
    char out[128];
    pp_describe_exit(child_status(1), out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "worker exited with status 3");
    pp_describe_exit(child_status(0), out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "worker exited with status 0");
    pp_describe_exit(child_status(2), out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "worker exited with status 255");
    pp_describe_exit(child_status(3), out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "worker killed by signal 11 (SIGSEGV)");
    pp_describe_exit(child_status(4), out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "worker killed by signal 9 (SIGKILL)");
}

/* A stopped child: neither exited nor killed. */
static void test_describe_stopped(void)
{
    fflush(NULL);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        raise(SIGSTOP);
        _exit(0);
    }
    int st = 0;
    CU_ASSERT_EQUAL(waitpid(pid, &st, WUNTRACED), pid);
    CU_ASSERT(WIFSTOPPED(st));
    char out[128];
    pp_describe_exit(st, out, sizeof out);
    CU_ASSERT_EQUAL(strncmp(out, "worker ended (wait status 0x", 28), 0);
    kill(pid, SIGKILL);
    CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
}

/* A small output buffer: cut and NUL-terminated, nothing written past. */
static void test_describe_short_buffer(void)
{
    char out[12];
    memset(out, 'Z', sizeof out);
    pp_describe_exit(child_status(3), out, 8);
    CU_ASSERT_STRING_EQUAL(out, "worker ");
    CU_ASSERT_EQUAL(out[8], 'Z');
}

/* ---- pp_log ---- */

static void test_parse_level(void)
{
    CU_ASSERT_EQUAL(pp_log_parse_level("error"), PP_LOG_ERROR);
    CU_ASSERT_EQUAL(pp_log_parse_level("warn"), PP_LOG_WARN);
    CU_ASSERT_EQUAL(pp_log_parse_level("info"), PP_LOG_INFO);
    CU_ASSERT_EQUAL(pp_log_parse_level("debug"), PP_LOG_DEBUG);
    CU_ASSERT_EQUAL(pp_log_parse_level("0"), 0);
    CU_ASSERT_EQUAL(pp_log_parse_level("1"), 1);
    CU_ASSERT_EQUAL(pp_log_parse_level("2"), 2);
    CU_ASSERT_EQUAL(pp_log_parse_level("3"), 3);
    static const char *const junk[] = {"4",      "9",     "-1",    "03",    "1x",   "",
                                       "warning", "err",  "debugx", " info", "info ", "x"};
    for (size_t i = 0; i < PP_ARRAY_LEN(junk); i++)
        if (pp_log_parse_level(junk[i]) != -1) {
            fprintf(stderr, "\n  \"%s\" parsed as %d\n", junk[i], pp_log_parse_level(junk[i]));
            CU_FAIL("junk level accepted");
        }
    CU_ASSERT_EQUAL(pp_log_parse_level(NULL), -1);
}

/* Captures what pp_log_write()/pp_log() print at `level` with `lg`. */
typedef struct capture {
    char *text;
    size_t len;
    FILE *fp;
} capture;

static void cap_open(capture *c)
{
    c->text = NULL;
    c->len = 0;
    c->fp = open_memstream(&c->text, &c->len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c->fp);
}

static void cap_close(capture *c)
{
    fclose(c->fp);
    free(c->text);
    c->text = NULL;
}

static void test_log_write(void)
{
    capture c;
    cap_open(&c);
    pp_log lg = {.level = PP_LOG_DEBUG, .fp = c.fp, .who = "unitsys"};
    pp_log_write(&lg, PP_LOG_WARN, "hello %d %s", 42, "world");
    fflush(c.fp);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.text);
    CU_ASSERT_PTR_NOT_NULL(strstr(c.text, " WARN unitsys: hello 42 world\n"));
    /* One line, ending with the newline. */
    CU_ASSERT(c.len > 0 && c.text[c.len - 1] == '\n');
    CU_ASSERT_PTR_EQUAL(strchr(c.text, '\n'), c.text + c.len - 1);
    /* Time, pid, level, subsystem, message: the pid is the second field. */
    char pidf[32];
    snprintf(pidf, sizeof pidf, " %d WARN ", (int)getpid());
    CU_ASSERT_PTR_NOT_NULL(strstr(c.text, pidf));
    int y, mo, d, h, mi, s, ms;
    CU_ASSERT_EQUAL(sscanf(c.text, "%4d-%2d-%2d %2d:%2d:%2d.%3d", &y, &mo, &d, &h, &mi, &s, &ms),
                    7);
    cap_close(&c);

    /* Every level's tag. */
    static const struct { int level; const char *tag; } tags[] = {
        {PP_LOG_ERROR, " ERROR unitsys: m\n"},
        {PP_LOG_WARN, " WARN unitsys: m\n"},
        {PP_LOG_INFO, " INFO unitsys: m\n"},
        {PP_LOG_DEBUG, " DEBUG unitsys: m\n"},
    };
    for (size_t i = 0; i < PP_ARRAY_LEN(tags); i++) {
        cap_open(&c);
        lg.fp = c.fp;
        pp_log_write(&lg, tags[i].level, "m");
        fflush(c.fp);
        CU_ASSERT(c.text && strstr(c.text, tags[i].tag));
        cap_close(&c);
    }

    /* No subsystem: "pp". */
    cap_open(&c);
    pp_log anon = {.level = PP_LOG_INFO, .fp = c.fp, .who = NULL};
    pp_log_write(&anon, PP_LOG_INFO, "x");
    fflush(c.fp);
    CU_ASSERT(c.text && strstr(c.text, " INFO pp: x\n"));
    cap_close(&c);
}

static void test_log_long_message(void)
{
    capture c;
    cap_open(&c);
    pp_log lg = {.level = PP_LOG_DEBUG, .fp = c.fp, .who = "w"};
    char msg[3000];
    memset(msg, 'k', sizeof msg - 1);
    msg[sizeof msg - 1] = 0;
    pp_log_write(&lg, PP_LOG_ERROR, "%s", msg);
    fflush(c.fp);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.text);
    char *m = strstr(c.text, " ERROR w: ");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    m += strlen(" ERROR w: ");
    size_t k = strspn(m, "k");
    CU_ASSERT(k >= 1000); /* cut, at most, to the line buffer */
    CU_ASSERT_EQUAL(m[k], '\n');
    CU_ASSERT_EQUAL(m[k + 1], 0);
    cap_close(&c);
}

static void test_log_macro_filters(void)
{
    capture c;
    cap_open(&c);
    pp_log lg = {.level = PP_LOG_WARN, .fp = c.fp, .who = "f"};
    pp_log *lp = &lg; /* as owners hold it (and no -Waddress on &lg) */
    int evaluated = 0;
    pp_log(lp, PP_LOG_DEBUG, "dropped %d", ++evaluated);
    pp_log(lp, PP_LOG_INFO, "dropped %d", ++evaluated);
    fflush(c.fp);
    CU_ASSERT_EQUAL(c.len, 0);
    CU_ASSERT_EQUAL(evaluated, 0); /* dropped before formatting */
    pp_log(lp, PP_LOG_WARN, "kept %d", 1);
    pp_log(lp, PP_LOG_ERROR, "kept %d", 2);
    fflush(c.fp);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.text);
    CU_ASSERT_PTR_NOT_NULL(strstr(c.text, " WARN f: kept 1\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(c.text, " ERROR f: kept 2\n"));
    CU_ASSERT_PTR_NULL(strstr(c.text, "dropped"));
    size_t len = c.len;
    /* Level ERROR: only errors. */
    lg.level = PP_LOG_ERROR;
    pp_log(lp, PP_LOG_WARN, "dropped");
    fflush(c.fp);
    CU_ASSERT_EQUAL(c.len, len);
    /* A NULL log drops everything. */
    const pp_log *none = NULL;
    pp_log(none, PP_LOG_ERROR, "nowhere %d", ++evaluated);
    CU_ASSERT_EQUAL(evaluated, 0);
    cap_close(&c);
}

/* fp NULL writes to stderr. */
static void test_log_stderr(void)
{
    FILE *tmp = tmpfile();
    CU_ASSERT_PTR_NOT_NULL_FATAL(tmp);
    fflush(stderr);
    int saved = dup(2);
    CU_ASSERT_FATAL(saved >= 0);
    CU_ASSERT_FATAL(dup2(fileno(tmp), 2) == 2);
    pp_log lg = {.level = PP_LOG_INFO, .fp = NULL, .who = "toerr"};
    pp_log_write(&lg, PP_LOG_INFO, "on stderr");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char buf[256] = "";
    rewind(tmp);
    size_t n = fread(buf, 1, sizeof buf - 1, tmp);
    buf[n] = 0;
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, " INFO toerr: on stderr\n"));
    fclose(tmp);
}

/* pp_quote: text from outside as a message may show it; never past cap. */
static void test_quote(void)
{
    char out[80];
    CU_ASSERT_STRING_EQUAL(pp_quote("a\"b\\c\x1b[2J\n\xff", 11, out, sizeof out),
                           "a\\x22b\\x5cc\\x1b[2J\\x0a\\xff");
    CU_ASSERT_STRING_EQUAL(pp_quote("nul\0after", 9, out, sizeof out), "nul\\x00after");
    CU_ASSERT_STRING_EQUAL(pp_quote("", 0, out, sizeof out), "");
    char x[100];
    memset(x, 'x', sizeof x);
    CU_ASSERT_STRING_EQUAL(pp_quote(x, sizeof x, out, 16), "xxxxxxxxxxxx...");
    CU_ASSERT_STRING_EQUAL(pp_quote(x, 4, out, 8), "xxxx"); /* fits: not cut */
    CU_ASSERT_STRING_EQUAL(pp_quote("\x01", 1, out, 8), "\\x01");
    /* Every byte value at every capacity: the text fits and no byte past
     * cap is written. */
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    int fit = 1;
    for (size_t cap = 8; cap < sizeof out; cap++) {
        memset(out, '#', sizeof out);
        pp_quote(all, sizeof all, out, cap);
        fit = fit && strlen(out) < cap && out[cap] == '#' && strstr(out, "...");
        for (size_t i = 0; out[i]; i++)
            fit = fit && out[i] >= 0x20 && out[i] < 0x7f;
    }
    CU_ASSERT(fit);
}

int pp_register_suites(void)
{
    static const pp_test common[] = {
        {"store/load 16", test_store_load16},
        {"store/load 32", test_store_load32},
        {"store/load 64", test_store_load64},
        {"array length, min, max", test_macros},
        {"pp_now is monotonic", test_now},
        {"pp_seterr", test_seterr},
        {"pp_ncpus_available", test_ncpus},
        {"pp_signame", test_signame},
        {"pp_quote", test_quote},
        {"pp_malloc_big", test_malloc_big},
        {"pp_describe_exit of real children", test_describe_exit},
        {"pp_describe_exit of a stopped child", test_describe_stopped},
        {"pp_describe_exit into a short buffer", test_describe_short_buffer},
        {NULL, NULL},
    };
    static const pp_test log[] = {
        {"parse levels", test_parse_level},
        {"line format", test_log_write},
        {"long message", test_log_long_message},
        {"pp_log() drops above the level", test_log_macro_filters},
        {"NULL fp writes to stderr", test_log_stderr},
        {NULL, NULL},
    };
    if (pp_add_suite("pp_common", NULL, NULL, common) != 0 ||
        pp_add_suite("pp_log", NULL, NULL, log) != 0)
        return -1;
    return 0;
}
