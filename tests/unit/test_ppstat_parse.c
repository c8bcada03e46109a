/* SPDX-License-Identifier: MIT */
/* test_ppstat_parse.c -- ppstat's reader of STATUS replies, fed what a
 * hostile or broken node could send: a valid reply is read exactly; every
 * prefix of it (truncation), every byte flipped (three ways), garbage,
 * oversized replies, lines too long, list counts over the bound or not
 * matching the lines, keys unknown, missing or repeated, numbers that
 * overflow, NUL and control bytes.  Each must give 0 with sane values or
 * -1 with a message naming the problem; never a crash (ASan/UBSan run
 * this suite too) and never a leak. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cunit_main.h"
#include "ppstat_parse.h"

static const char good[] =
    "pp-status 1\n"
    "node version=0.1.0 uptime=12.500 port=60000 accepted=7 bytes_in=1000 bytes_out=2000\n"
    "workers target=2 busy=1 idle=1 listed=2\n"
    "worker pid=4242 inflight=2 busy=1 client=127.0.0.1:5555 job=17 run=1.250\n"
    "worker pid=4243 inflight=0 busy=0 client=- job=0 run=0.000\n"
    "conns hello=0 auth=0 ready=1 closing=0 listed=1\n"
    "client addr=127.0.0.1:5555 state=ready connected=3.000 queued=4 running=1 done=10 "
    "failed=2 bytes_in=900 bytes_out=1800\n"
    "queue depth=4 running=1\n"
    "jobs done=10 failed=1 crashed=1 timeout=0 lost=0 cancelled=0 eload=0\n"
    "runtime le0.001=1 le0.005=2 le0.01=0 le0.05=0 le0.1=0 le0.5=0 le1=9 le5=0 le10=0 le60=0 "
    "le300=0 le1800=0 inf=0 sum=3.250000\n"
    "modules cached=1 wanted=0 bytes=16384 max=1073741824 evictions=3\n"
    "auth failures=2 wrong_proof=1 tls_key=1 lockout=0 connections=0 per_address=0 "
    "handshakes=0\n"
    "errors handshake=5 frame=1\n"
    "end\n";

static int parse(const char *text, size_t len, ppstat_node *n, char *err)
{
    return ppstat_parse(text, len, n, err, 256);
}

static void test_good(void)
{
    ppstat_node n;
    char err[256] = "";
    CU_ASSERT_EQUAL_FATAL(parse(good, strlen(good), &n, err), 0);
    CU_ASSERT_STRING_EQUAL(n.version, "0.1.0");
    CU_ASSERT_DOUBLE_EQUAL(n.uptime, 12.5, 1e-9);
    CU_ASSERT_EQUAL(n.port, 60000);
    CU_ASSERT_EQUAL(n.nworkers, 2);
    CU_ASSERT_EQUAL(n.workers[0].pid, 4242);
    CU_ASSERT_STRING_EQUAL(n.workers[0].client, "127.0.0.1:5555");
    CU_ASSERT_EQUAL(n.workers[0].job, 17);
    CU_ASSERT_STRING_EQUAL(n.workers[1].client, ""); /* "-" = none */
    CU_ASSERT_EQUAL(n.nclients, 1);
    CU_ASSERT_STRING_EQUAL(n.clients[0].state, "ready");
    CU_ASSERT_EQUAL(n.clients[0].done, 10);
    CU_ASSERT_EQUAL(n.clients[0].failed, 2);
    CU_ASSERT_EQUAL(n.clients[0].bytes_out, 1800);
    CU_ASSERT_EQUAL(n.done, 10);
    CU_ASSERT_EQUAL(n.run[1], 2);
    CU_ASSERT_EQUAL(n.run[6], 9);
    CU_ASSERT_EQUAL(n.cache_max, 1073741824u);
    CU_ASSERT_EQUAL(n.cache_evictions, 3);
    CU_ASSERT_EQUAL(n.wrong_proof, 1);
    CU_ASSERT_EQUAL(n.tls_key, 1);
    CU_ASSERT_EQUAL(n.handshake_errors, 5);
    ppstat_node_free(&n);
    ppstat_node_free(NULL);
}

/* Every proper prefix is an error with a message. */
static void test_truncated(void)
{
    size_t len = strlen(good);
    for (size_t i = 0; i < len; i++) {
        ppstat_node n;
        char err[256] = "";
        char *copy = malloc(i ? i : 1); /* exactly i bytes: ASan sees any overread */
        CU_ASSERT_FATAL(copy != NULL);
        memcpy(copy, good, i);
        int rc = parse(copy, i, &n, err);
        CU_ASSERT_EQUAL(rc, -1);
        CU_ASSERT(strstr(err, "malformed status reply") != NULL);
        CU_ASSERT_PTR_NULL(n.workers);
        free(copy);
        if (rc != -1) {
            fprintf(stderr, "\n    prefix of %zu bytes accepted", i);
            ppstat_node_free(&n);
            break;
        }
    }
}

/* Each byte replaced by a flipped bit, a NUL and a space: accepted (a
 * digit for another digit) or refused with a message; never a crash. */
static void test_flipped(void)
{
    size_t len = strlen(good), refused = 0, accepted = 0;
    char *copy = malloc(len);
    CU_ASSERT_FATAL(copy != NULL);
    for (size_t i = 0; i < len; i++) {
        const char subst[3] = {(char)(good[i] ^ 0x01), 0, ' '};
        for (int k = 0; k < 3; k++) {
            memcpy(copy, good, len);
            copy[i] = subst[k];
            ppstat_node n;
            char err[256] = "";
            if (parse(copy, len, &n, err) == 0) {
                accepted++;
                CU_ASSERT(n.nworkers <= PPSTAT_LIST_MAX && n.nclients <= PPSTAT_LIST_MAX);
                ppstat_node_free(&n);
            } else {
                refused++;
                CU_ASSERT(err[0] != 0);
            }
        }
    }
    free(copy);
    CU_ASSERT(refused > accepted); /* most changes break it */
}

static void expect_refused(const char *text, size_t len, const char *why)
{
    ppstat_node n;
    char err[256] = "";
    int rc = parse(text, len, &n, err);
    CU_ASSERT_EQUAL(rc, -1);
    if (rc == 0)
        ppstat_node_free(&n);
    if (!strstr(err, why))
        fprintf(stderr, "\n    \"%s\" lacks \"%s\"", err, why);
    CU_ASSERT(strstr(err, why) != NULL);
}

/* good with the first occurrence of `from` replaced by `to`. */
static char *replaced(const char *from, const char *to, size_t *len)
{
    const char *at = strstr(good, from);
    size_t n = strlen(good) - strlen(from) + strlen(to);
    char *s = malloc(n + 1);
    if (!at || !s) {
        free(s);
        return NULL;
    }
    size_t pre = (size_t)(at - good);
    memcpy(s, good, pre);
    memcpy(s + pre, to, strlen(to));
    strcpy(s + pre + strlen(to), at + strlen(from));
    *len = n;
    return s;
}

static void test_malformed(void)
{
    static const struct {
        const char *from, *to, *why;
    } cases[] = {
        {"pp-status 1", "pp-status 2", "first line"},
        {"node version", "nodes version", "expected a \"node\" line"},
        {"port=60000", "port=60000 port=1", "given twice"},
        {"port=60000", "colour=red", "unknown key"},
        {" port=60000", "", "missing"},
        {"port=60000", "port=18446744073709551616", "bad value for port"},
        {"port=60000", "port=-1", "bad value for port"},
        {"port=60000", "port=", "bad value for port"},
        {"uptime=12.500", "uptime=1e9", "bad value for uptime"},
        {"uptime=12.500", "uptime=nan", "bad value for uptime"},
        {"uptime=12.500", "uptime=1.2.3", "bad value for uptime"},
        {"version=0.1.0", "version=\"x\"", "bad value for version"},
        {"state=ready", "state=evil", "bad value for state"},
        {"listed=2", "listed=3", "expected a \"worker\" line"},
        {"listed=2", "listed=1", "expected a \"conns\" line"},
        {"listed=2", "listed=99999", "at most"},
        {"port=60000 ", "port=60000  ", "expected key=value"},
        {"end\n", "end\nmore\n", "bytes after"},
        {"end\n", "end", "truncated"},
        {"end\n", "end x\n", "takes no fields"},
        {"\nqueue", "\r\nqueue", "printable"},
        {"le0.001=1", "le0.002=1", "unknown key"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t len;
        char *s = replaced(cases[i].from, cases[i].to, &len);
        if (!s)
            continue;
        expect_refused(s, len, cases[i].why);
        free(s);
    }
    /* A NUL inside a line. */
    char *s = malloc(sizeof good);
    CU_ASSERT_FATAL(s != NULL);
    memcpy(s, good, sizeof good);
    s[20] = 0;
    expect_refused(s, strlen(good), "printable");
    free(s);
}

/* Garbage, a line over the bound, a reply over the bound. */
static void test_oversized(void)
{
    expect_refused("", 0, "first line");
    expect_refused("GET / HTTP/1.0\r\n\r\n", 18, "first line");
    size_t big = PPSTAT_REPLY_MAX + 1;
    char *s = malloc(big);
    CU_ASSERT_FATAL(s != NULL);
    memset(s, 'a', big);
    expect_refused(s, big, "larger than");
    /* One line of 2000 bytes after the head. */
    memcpy(s, "pp-status 1\nnode version=", 25);
    expect_refused(s, 2000, "longer than");
    /* Random bytes after a valid head: refused, no crash. */
    unsigned x = 12345;
    for (int round = 0; round < 200; round++) {
        size_t n = 12 + (size_t)(round * 7 % 500);
        memcpy(s, "pp-status 1\n", 12);
        for (size_t i = 12; i < n; i++)
            s[i] = (char)((x = x * 1103515245u + 12345u) >> 16);
        ppstat_node nd;
        char err[256] = "";
        if (parse(s, n, &nd, err) == 0)
            ppstat_node_free(&nd);
        else
            CU_ASSERT(err[0] != 0);
    }
    free(s);
}

int pp_register_suites(void)
{
    static const pp_test tests[] = {
        {"a valid reply", test_good},
        {"every truncation refused", test_truncated},
        {"every byte flipped", test_flipped},
        {"malformed lines, keys and values", test_malformed},
        {"garbage and oversized replies", test_oversized},
        {NULL, NULL},
    };
    return pp_add_suite("ppstat_parse", NULL, NULL, tests);
}
