/* SPDX-License-Identifier: MIT */
/* test_log.c -- pp_log's rate limit per kind of line.
 *
 * The attack it answers (H4): a flood of refused connections made ppserver
 * write one line per refusal, 21,296 lines in 3 s.  With a limit, each kind
 * of line (one format string) writes at most `burst` lines at once and
 * `rate` a second after that; what it drops is counted and summarized in
 * one line ("... N more lines like ... suppressed") by pp_log_flush(), once
 * per flush.  The clock is the test's. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cunit_main.h"
#include "pp_log.h"

static double fake_now;

static double fake_clock(void)
{
    return fake_now;
}

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

/* Lines containing needle. */
static int lines_with(sink *s, const char *needle)
{
    fflush(s->fp);
    int n = 0;
    for (const char *p = s->text; p && (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* The sum of N over the summaries "... N more line(s) like". */
static unsigned long suppressed_total(sink *s)
{
    fflush(s->fp);
    unsigned long sum = 0;
    const char *p = s->text;
    while (p && (p = strstr(p, "... "))) {
        unsigned long n = 0;
        if (sscanf(p, "... %lu more line", &n) == 1)
            sum += n;
        p += 4;
    }
    return sum;
}

static void test_burst_then_summary(void)
{
    sink s;
    sink_open(&s);
    pp_log_limit lim;
    pp_log_limit_init(&lim, 5, 10);
    lim.clock = fake_clock;
    fake_now = 100;
    pp_log log = {.level = PP_LOG_DEBUG, .fp = s.fp, .who = "t", .limit = &lim};
    pp_log *lg = &log; /* as owners hold it (and no -Waddress on &log) */
    for (int i = 0; i < 1000; i++)
        pp_log(lg, PP_LOG_WARN, "%s: refused: too many connections", "10.0.0.1:5");
    CU_ASSERT_EQUAL(lines_with(&s, "refused: too many"), 10); /* the burst */
    CU_ASSERT_EQUAL(lines_with(&s, "suppressed"), 0);
    fake_now = 100.5;
    pp_log_flush(lg);
    CU_ASSERT_EQUAL(lines_with(&s, "suppressed"), 1);
    CU_ASSERT_EQUAL(suppressed_total(&s), 990);
    CU_ASSERT_EQUAL(lines_with(&s, " WARN t: ... 990 more lines like \"%s: refused: too many "
                                   "connections\" suppressed in 0.5 s"), 1);
    /* Flushed once: a second flush says nothing more. */
    pp_log_flush(lg);
    CU_ASSERT_EQUAL(lines_with(&s, "suppressed"), 1);
    /* One second later: `rate` more lines (the half second before gave 2.5). */
    fake_now = 101.5;
    for (int i = 0; i < 100; i++)
        pp_log(lg, PP_LOG_WARN, "%s: refused: too many connections", "10.0.0.1:5");
    CU_ASSERT_EQUAL(lines_with(&s, "refused: too many") - 1 /* in the summary */, 10 + 7);
    fake_now = 102;
    pp_log_flush(lg);
    CU_ASSERT_EQUAL(suppressed_total(&s), 990 + 93);
    pp_log_limit_destroy(&lim);
    sink_close(&s);
}

static void test_kinds_are_separate(void)
{
    sink s;
    sink_open(&s);
    pp_log_limit lim;
    pp_log_limit_init(&lim, 1, 3);
    lim.clock = fake_clock;
    fake_now = 5;
    pp_log log = {.level = PP_LOG_DEBUG, .fp = s.fp, .who = "t", .limit = &lim};
    pp_log *lg = &log;
    for (int i = 0; i < 50; i++)
        pp_log(lg, PP_LOG_WARN, "flood %d", i);
    /* Another kind still gets through, and so does an error. */
    pp_log(lg, PP_LOG_INFO, "a client authenticated");
    pp_log(lg, PP_LOG_ERROR, "event loop: %s", "broken");
    CU_ASSERT_EQUAL(lines_with(&s, "flood "), 3);
    CU_ASSERT_EQUAL(lines_with(&s, "a client authenticated"), 1);
    CU_ASSERT_EQUAL(lines_with(&s, "event loop: broken"), 1);
    /* After a pause the flood writes again; its count waits for the flush,
     * and comes once. */
    fake_now = 7;
    pp_log(lg, PP_LOG_WARN, "flood %d", 99);
    pp_log(lg, PP_LOG_WARN, "flood %d", 100);
    CU_ASSERT_EQUAL(lines_with(&s, "flood 99"), 1);
    CU_ASSERT_EQUAL(lines_with(&s, "flood 100"), 1);
    CU_ASSERT_EQUAL(lines_with(&s, "suppressed"), 0);
    pp_log_flush(lg);
    CU_ASSERT_EQUAL(lines_with(&s, "... 47 more lines like \"flood %d\" suppressed in 2.0 s"),
                    1);
    CU_ASSERT_EQUAL(lines_with(&s, "suppressed"), 1);
    pp_log_limit_destroy(&lim);
    sink_close(&s);
}

static void test_no_limit(void)
{
    sink s;
    sink_open(&s);
    pp_log_limit lim;
    pp_log_limit_init(&lim, 0, 10); /* rate 0: no limit */
    pp_log log = {.level = PP_LOG_DEBUG, .fp = s.fp, .who = "t", .limit = &lim};
    pp_log log2 = {.level = PP_LOG_DEBUG, .fp = s.fp, .who = "u"}; /* no limit at all */
    pp_log *lg = &log, *lg2 = &log2;
    for (int i = 0; i < 500; i++)
        pp_log(lg, PP_LOG_INFO, "line %d", i);
    for (int i = 0; i < 500; i++)
        pp_log(lg2, PP_LOG_INFO, "line %d", i);
    pp_log_flush(lg);
    pp_log_flush(lg2);
    CU_ASSERT_EQUAL(lines_with(&s, " t: line "), 500);
    CU_ASSERT_EQUAL(lines_with(&s, " u: line "), 500);
    CU_ASSERT_EQUAL(lines_with(&s, "suppressed"), 0);
    pp_log_limit_destroy(&lim);
    sink_close(&s);
}

/* More kinds than the table holds: the one idle longest is forgotten, its
 * count summarized first, so nothing is lost from the totals. */
static void test_many_kinds(void)
{
    sink s;
    sink_open(&s);
    pp_log_limit lim;
    pp_log_limit_init(&lim, 1, 1);
    lim.clock = fake_clock;
    fake_now = 1;
    pp_log lg = {.level = PP_LOG_DEBUG, .fp = s.fp, .who = "t", .limit = &lim};
    /* PP_LOG_KINDS + 8 distinct format strings, 3 lines each. */
    static char fmts[PP_LOG_KINDS + 8][32];
    for (int k = 0; k < PP_LOG_KINDS + 8; k++) {
        snprintf(fmts[k], sizeof fmts[k], "kind %d line %%d", k);
        for (int i = 0; i < 3; i++) {
            fake_now += 0.001;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral" /* one format string per kind */
            pp_log_write(&lg, PP_LOG_INFO, fmts[k], i);
#pragma GCC diagnostic pop
        }
    }
    pp_log_flush(&lg);
    CU_ASSERT_EQUAL(lines_with(&s, " line 0\n"), PP_LOG_KINDS + 8);
    CU_ASSERT_EQUAL(suppressed_total(&s), 2ul * (PP_LOG_KINDS + 8));
    pp_log_limit_destroy(&lim);
    sink_close(&s);
}

/* Threads sharing one limited log: every line is written or counted. */
static pp_log shared_log;

static void *writer(void *arg)
{
    const pp_log *lg = arg;
    for (int i = 0; i < 20000; i++)
        pp_log(lg, PP_LOG_WARN, "from a thread %d", i);
    return NULL;
}

static void test_threads(void)
{
    sink s;
    sink_open(&s);
    pp_log_limit lim;
    pp_log_limit_init(&lim, 1000, 100);
    shared_log = (pp_log){.level = PP_LOG_DEBUG, .fp = s.fp, .who = "t", .limit = &lim};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, writer, &shared_log), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    pp_log_flush(&shared_log);
    unsigned long written = (unsigned long)lines_with(&s, "WARN t: from a thread");
    unsigned long dropped = suppressed_total(&s);
    CU_ASSERT_EQUAL(written + dropped, 80000ul);
    CU_ASSERT(written < 80000ul / 2);
    pp_log_limit_destroy(&lim);
    sink_close(&s);
}

int pp_register_suites(void)
{
    static const pp_test tests[] = {
        {"a flood of one kind: the burst, then one summary", test_burst_then_summary},
        {"kinds are limited separately; one summary per flush", test_kinds_are_separate},
        {"rate 0 or no limit: every line", test_no_limit},
        {"more kinds than the table: counts kept", test_many_kinds},
        {"threads sharing a limited log", test_threads},
        {NULL, NULL},
    };
    return pp_add_suite("pp_log rate limit", NULL, NULL, tests);
}
