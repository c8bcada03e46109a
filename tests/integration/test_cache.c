/* SPDX-License-Identifier: MIT */
/* test_cache.c -- ppserver's module cache under --cache-max-mib: four
 * distinct modules of about 400 KiB each through a 1 MiB cache evict the
 * least recently used ones, never the one a running job uses; an evicted
 * module is asked of the client again and its job still succeeds.  At
 * start, stale temporary files go, links planted in the cache are neither
 * followed nor their targets touched, and a cache over a limit lowered
 * since the last run loses its oldest modules at once. */
#include <CUnit/CUnit.h>
#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <pp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cunit_main.h"
#include "server_harness.h"

int cache_task_1(const void *arg, size_t len, pp_buf *out);
int cache_task_2(const void *arg, size_t len, pp_buf *out);
int cache_task_3(const void *arg, size_t len, pp_buf *out);
int cache_task_4(const void *arg, size_t len, pp_buf *out);

static void nap(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The 16-hex prefixes of the modules the log says were stored (at most
 * max, in order) or evicted: how many. */
static int logged(const srv_harness *h, const char *what, char pre[][17], int max)
{
    char *log = srv_read_log(h);
    int n = 0;
    for (char *p = log; p && n < max && (p = strstr(p, "module ")) != NULL; p++) {
        const char *eol = strchr(p, '\n');
        const char *w = strstr(p, what);
        if (w && (!eol || w < eol) && strlen(p) > 7 + 16 && p[7 + 16] == '.') {
            memcpy(pre[n], p + 7, 16);
            pre[n++][16] = '\0';
        }
    }
    free(log);
    return n;
}

static pp_job *run(pp_server *s, pp_task t, int ms)
{
    return pp_submit(s, t, &ms, sizeof ms, NULL);
}

static int result_of(pp_job *j)
{
    size_t len = 0;
    const int *v = pp_job_result(j, &len);
    int r = v && len == sizeof *v ? *v : -1;
    if (r == -1)
        printf("\n    job: %s ", j ? pp_job_error(j) : pp_last_error());
    pp_job_free(j);
    return r;
}

/* A client of h's node with no local worker, or NULL. */
static pp_server *client_of(const srv_harness *h)
{
    char node[96];
    snprintf(node, sizeof node, "127.0.0.1:%d", h->port);
    const char *list[] = {node, NULL};
    return pp_server_new(&(pp_config){.ncpus = 0, .ppservers = list, .secret = h->secret});
}

/* Starts ppserver on h with these arguments, and a client of it (NULL on
 * failure).  A server that does not start fails the test: h->pid is then
 * 0. */
static pp_server *node_client(srv_harness *h, const char *const *args)
{
    if (srv_start(h, &(srv_opts){.args = args}) != 0) {
        CU_FAIL("ppserver did not start");
        srv_cleanup(h);
        return NULL;
    }
    return client_of(h);
}

static void test_eviction(void)
{
    srv_harness h = {0};
    const char *args[] = {"--cache-max-mib", "1", "-w", "2", NULL};
    pp_server *s = node_client(&h, args);
    if (!h.pid)
        return;
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_job *long_job = run(s, cache_task_1, 8000); /* holds module 1 in use */
    char st[8][17], ev[8][17];
    for (int i = 0; i < 200 && logged(&h, " stored", st, 8) < 1; i++)
        nap(50);
    CU_ASSERT_EQUAL(result_of(run(s, cache_task_2, 0)), 2002);
    CU_ASSERT_EQUAL(result_of(run(s, cache_task_3, 0)), 3003);
    CU_ASSERT_EQUAL(result_of(run(s, cache_task_4, 0)), 4004);
    int nev = logged(&h, " evicted", ev, 8);
    int nst = logged(&h, " stored", st, 8);
    if (pp_job_status(long_job) == PP_PENDING) { /* the snapshot saw it in use */
        CU_ASSERT(nst >= 1);
        for (int i = 0; i < nev && nst >= 1; i++)
            CU_ASSERT_STRING_NOT_EQUAL(ev[i], st[0]);
    } else {
        printf("(the long job ended early: in-use check skipped) ");
    }
    CU_ASSERT(nev >= 2); /* 4 x 400 KiB through 1 MiB, module 1 held */
    /* Module 2 was evicted first: its job asks for it again, and runs. */
    CU_ASSERT_EQUAL(result_of(run(s, cache_task_2, 0)), 2002);
    nst = logged(&h, " stored", st, 8);
    int again = 0;
    for (int i = 2; i < nst; i++)
        again += nst >= 2 && strcmp(st[i], st[1]) == 0;
    CU_ASSERT_EQUAL(again, 1);
    CU_ASSERT_EQUAL(result_of(long_job), 1001);
    pp_server_free(s);
    srv_cleanup(&h);
}

static int put_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    int rc = fputs(text, f) < 0 ? -1 : 0;
    return fclose(f) != 0 ? -1 : rc;
}

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define HEX64B "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

/* A hostile cache: a stale temporary file, a link named like one and a link
 * named like a module, both to a file outside. */
static void test_start_scan(void)
{
    srv_harness h = {0};
    if (srv_prepare(&h) != 0) {
        CU_FAIL("cannot prepare a server directory");
        return;
    }
    char outside[400], stale[400], link_tmp[400], link_mod[400];
    snprintf(outside, sizeof outside, "%s/outside", h.dir);
    snprintf(stale, sizeof stale, "%s/" HEX64 ".so.tmp.0a0b", h.cache_dir);
    snprintf(link_tmp, sizeof link_tmp, "%s/" HEX64B ".so.tmp.0c0d", h.cache_dir);
    snprintf(link_mod, sizeof link_mod, "%s/" HEX64B ".so", h.cache_dir);
    CU_ASSERT_FATAL(mkdir(h.cache_dir, 0700) == 0 || errno == EEXIST);
    CU_ASSERT_FATAL(put_file(outside, "keep me") == 0);
    CU_ASSERT_FATAL(put_file(stale, "half a module") == 0);
    CU_ASSERT_FATAL(symlink(outside, link_tmp) == 0);
    CU_ASSERT_FATAL(symlink(outside, link_mod) == 0);
    CU_ASSERT_FATAL(srv_start(&h, &(srv_opts){0}) == 0);
    CU_ASSERT_EQUAL(access(stale, F_OK), -1);
    struct stat sb;
    CU_ASSERT_EQUAL(lstat(link_tmp, &sb), -1); /* the link went, not its target */
    size_t len = 0;
    char *text = srv_slurp(outside, &len);
    CU_ASSERT(text && strcmp(text, "keep me") == 0);
    free(text);
    CU_ASSERT(srv_alive(&h));
    srv_cleanup(&h);
}

/* How many " stored" lines of the log name the module prefix pre. */
static int stored_count(const srv_harness *h, const char *pre)
{
    char st[16][17];
    int n = logged(h, " stored", st, 16), k = 0;
    for (int i = 0; i < n; i++)
        k += strcmp(st[i], pre) == 0;
    return k;
}

/* Sets the modification time of the cache file whose name starts with pre
 * to `age` seconds ago.  0 or -1. */
static int age_module(const srv_harness *h, const char *pre, int age)
{
    DIR *d = opendir(h->cache_dir);
    int rc = -1;
    for (struct dirent *e; d && rc != 0 && (e = readdir(d)) != NULL;)
        if (strncmp(e->d_name, pre, 16) == 0 && strstr(e->d_name, ".so")) {
            struct timespec t[2];
            clock_gettime(CLOCK_REALTIME, &t[0]);
            t[0].tv_sec -= age;
            t[1] = t[0];
            rc = utimensat(dirfd(d), e->d_name, t, AT_SYMLINK_NOFOLLOW);
        }
    if (d)
        closedir(d);
    return rc;
}

/* Four modules stored with no limit, aged oldest first (module 1); the node
 * started again with 1 MiB evicts modules 1 and 2 at start, keeps 3 and 4
 * (4 then runs without being sent again) and takes module 1 back when a
 * job needs it. */
static void test_lowered_limit(void)
{
    srv_harness h = {0};
    const char *unlimited[] = {"--cache-max-mib", "0", NULL};
    pp_server *s = node_client(&h, unlimited);
    if (!h.pid)
        return;
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_task tasks[4] = {cache_task_1, cache_task_2, cache_task_3, cache_task_4};
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL(result_of(run(s, tasks[i], 0)), 1001 * (i + 1));
    pp_server_free(s);
    char st[8][17];
    CU_ASSERT_EQUAL_FATAL(logged(&h, " stored", st, 8), 4);
    CU_ASSERT_EQUAL_FATAL(srv_stop(&h, 10), 0);
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL(age_module(&h, st[i], 400 - 100 * i), 0);
    int before4 = stored_count(&h, st[3]), before1 = stored_count(&h, st[0]);
    const char *limited[] = {"--cache-max-mib", "1", NULL};
    CU_ASSERT_FATAL(srv_start(&h, &(srv_opts){.args = limited}) == 0);
    char ev[8][17];
    int nev = logged(&h, " evicted", ev, 8);
    CU_ASSERT_EQUAL(nev, 2);
    for (int i = 0; i < nev && i < 2; i++) /* the two oldest, and those alone */
        CU_ASSERT(strcmp(ev[i], st[0]) == 0 || strcmp(ev[i], st[1]) == 0);
    s = client_of(&h);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(result_of(run(s, cache_task_4, 0)), 4004);
    CU_ASSERT_EQUAL(stored_count(&h, st[3]), before4); /* from the cache, verified */
    CU_ASSERT_EQUAL(result_of(run(s, cache_task_1, 0)), 1001);
    CU_ASSERT_EQUAL(stored_count(&h, st[0]), before1 + 1); /* asked for again */
    pp_server_free(s);
    srv_cleanup(&h);
}

int pp_register_suites(void)
{
    static const pp_test tests[] = {
        {"eviction: LRU, in-use kept, asked again", test_eviction},
        {"start: stale temporaries, planted links", test_start_scan},
        {"start: a lowered limit evicts the oldest", test_lowered_limit},
        {NULL, NULL},
    };
    return pp_add_suite("module cache", NULL, NULL, tests);
}
