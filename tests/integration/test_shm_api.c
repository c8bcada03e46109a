/* SPDX-License-Identifier: MIT */
/* test_shm_api.c -- the zero-copy API (pp_shm_alloc, pp_submit_shm,
 * pp_shm_free) through real workers and a real ppserver: one buffer shared
 * by many jobs, sub-ranges, a buffer freed while its jobs run (and its
 * memory asked for again at once), results read in place while other jobs'
 * buffers are freed and reused, and every misuse refused with a message.
 * A suite of test_payload (test_payload.h lends the clients, nodes and
 * checks). */
#include <CUnit/CUnit.h>
#include <pp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "payload_tasks.h"
#include "test_payload.h"
#include "test_util.h"

#define MIB (1024u * 1024u)

/* 1 when the last error begins with `fn` (the failing function's name). */
static int error_from(const char *fn)
{
    const char *e = pp_last_error();
    int ok = e && strncmp(e, fn, strlen(fn)) == 0 && strlen(e) > strlen(fn) + 2;
    if (!ok)
        fprintf(stderr, "\n    expected an error from %s, got \"%s\"\n", fn, e ? e : "(null)");
    return ok;
}

/* 1 when a submit was refused (NULL with a message from pp_submit_shm);
 * a job it made anyway is waited for and freed. */
static int refused(pp_job *j)
{
    if (!j)
        return error_from("pp_submit_shm");
    pp_job_wait_for(j, 60);
    pp_job_free(j);
    return 0;
}

/* A buffer of n bytes holding the payload (n, seed); NULL on failure. */
static uint8_t *filled(pp_server *s, size_t n, uint64_t seed)
{
    uint8_t *b = pp_shm_alloc(s, n);
    if (!b) {
        fprintf(stderr, "\n    pp_shm_alloc(%zu): %s\n", n, pp_last_error());
        return NULL;
    }
    CU_ASSERT_EQUAL((uintptr_t)b % 4096, 0);
    pl_pattern(b, 0, n, n, seed);
    return b;
}

/* pl_sum of bytes off .. off + len of the buffer: 1 when its result is
 * their length and hash. */
static int sum_is(pp_job *j, const uint8_t *want, size_t len, const char *what)
{
    size_t got = 0;
    const pl_sum_res *r = j && pp_job_wait_for(j, 60) == PP_DONE ? pp_job_result(j, &got) : NULL;
    int ok = r && got == sizeof *r && r->len == len && r->hash == pl_hash(want, len);
    if (!ok)
        fprintf(stderr, "\n    %s: %s\n", what, j ? pp_job_error(j) : pp_last_error());
    return ok;
}

/* ---- one buffer, many jobs ---- */

#define SHARED_BYTES (4 * MIB)
#define SHARED_JOBS 20

/* 20 jobs over the whole buffer and 20 over sub-ranges, all in flight at
 * once; the buffer unchanged after; then refilled, and a job sees the new
 * bytes (nothing kept from the first fill). */
static void one_buffer_many_jobs(pp_server *s)
{
    uint8_t *b = filled(s, SHARED_BYTES, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    pp_job *sums[SHARED_JOBS], *xors[SHARED_JOBS];
    size_t off[SHARED_JOBS], len[SHARED_JOBS];
    for (int k = 0; k < SHARED_JOBS; k++) {
        off[k] = (size_t)k * 4097;
        len[k] = PP_SHM_MIN + (size_t)k * 10007;
        sums[k] = pp_submit_shm(s, pl_sum, b, SHARED_BYTES, NULL);
        xors[k] = pp_submit_shm(s, pl_xor, b + off[k], len[k], NULL);
    }
    for (int k = 0; k < SHARED_JOBS; k++) {
        CU_ASSERT(sum_is(sums[k], b, SHARED_BYTES, "a job over the whole buffer"));
        CU_ASSERT(pl_job_is(xors[k], 60, len[k], off[k], SHARED_BYTES, 1, PL_XOR_KEY,
                            "a job over a sub-range"));
        pp_job_free(sums[k]);
        pp_job_free(xors[k]);
    }
    CU_ASSERT(pl_check(b, SHARED_BYTES, 0, SHARED_BYTES, 1, 0, "the buffer after its jobs"));
    pl_pattern(b, 0, SHARED_BYTES, SHARED_BYTES, 2);
    pp_job *j = pp_submit_shm(s, pl_sum, b, SHARED_BYTES, NULL);
    CU_ASSERT(sum_is(j, b, SHARED_BYTES, "a job after the buffer was refilled"));
    pp_job_free(j);
    CU_ASSERT_EQUAL(pp_shm_free(s, b), 0);
}

static void test_shared_local(void)
{
    one_buffer_many_jobs(pl_client(PL_LOCAL, 2));
}

static void test_shared_node(void)
{
    one_buffer_many_jobs(pl_client(PL_NODE_TLS, 2));
}

/* Edges of a buffer: its last byte, nothing at its start, a range below
 * PP_SHM_MIN, an odd offset up to its very end. */
static void test_subranges(void)
{
    pp_server *s = pl_local(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    size_t n = PP_SHM_MIN * 3 + 5;
    uint8_t *b = filled(s, n, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    static const size_t offs[] = {PP_SHM_MIN * 3 + 4, 0, 100, 4097, 1};
    static const size_t lens[] = {1, 0, PP_SHM_MIN - 1, PP_SHM_MIN, PP_SHM_MIN * 3 + 4};
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        char what[96];
        snprintf(what, sizeof what, "bytes %zu .. %zu of a buffer", offs[i], offs[i] + lens[i]);
        pp_job *j = pp_submit_shm(s, pl_xor, b + offs[i], lens[i], NULL);
        CU_ASSERT(pl_job_is(j, 60, lens[i], offs[i], n, 3, PL_XOR_KEY, what));
        pp_job_free(j);
    }
    CU_ASSERT_EQUAL(pp_shm_free(s, b), 0);
}

/* ---- freed while in use ---- */

/* A buffer freed at once after its jobs were submitted (they wait behind
 * a sleeping job), then a buffer of the same size asked for and filled
 * with other bytes: the first jobs still see the first bytes. */
static void free_while_used(pp_server *s)
{
    uint64_t ms = 500;
    pp_job *sleeper = pp_submit(s, pl_sleep, &ms, sizeof ms, NULL);
    uint8_t *a = filled(s, 2 * MIB, 4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    uint8_t *want = pl_payload(2 * MIB, 4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(want);
    pp_job *jobs[10];
    for (int k = 0; k < 10; k++)
        jobs[k] = pp_submit_shm(s, pl_sum, a, 2 * MIB, NULL);
    CU_ASSERT_EQUAL(pp_shm_free(s, a), 0);
    uint8_t *b = filled(s, 2 * MIB, 5);
    CU_ASSERT_PTR_NOT_NULL(b);
    pp_job *jb = b ? pp_submit_shm(s, pl_sum, b, 2 * MIB, NULL) : NULL;
    for (int k = 0; k < 10; k++) {
        CU_ASSERT(sum_is(jobs[k], want, 2 * MIB, "a job whose buffer was freed"));
        pp_job_free(jobs[k]);
    }
    if (b) {
        CU_ASSERT(sum_is(jb, b, 2 * MIB, "a job on the buffer asked for after"));
        CU_ASSERT_EQUAL(pp_shm_free(s, b), 0);
    }
    pp_job_free(jb);
    CU_ASSERT_EQUAL(pp_job_wait_for(sleeper, 60), PP_DONE);
    pp_job_free(sleeper);
    free(want);
}

static void test_free_while_used_local(void)
{
    free_while_used(pl_client(PL_LOCAL, 1));
}

static void test_free_while_used_node(void)
{
    free_while_used(pl_client(PL_NODE_TLS, 1));
}

/* ---- results read in place ---- */

/* 8 results of 1 MiB held; 4 of their jobs freed; 8 more jobs (their
 * buffers the freed ones, reused): the 4 held still read right. */
static void results_in_place(pp_server *s)
{
    pp_job *held[8], *more[8];
    const void *r[8];
    for (int k = 0; k < 8; k++) {
        pl_gen_arg g = {MIB, 10 + (uint64_t)k};
        held[k] = pp_submit(s, pl_gen, &g, sizeof g, NULL);
    }
    for (int k = 0; k < 8; k++) {
        CU_ASSERT(pl_job_is(held[k], 60, MIB, 0, MIB, 10 + (uint64_t)k, 0, "a result"));
        r[k] = pp_job_status(held[k]) == PP_DONE ? pp_job_result(held[k], NULL) : NULL;
    }
    for (int k = 0; k < 4; k++)
        pp_job_free(held[k]);
    for (int k = 0; k < 8; k++) {
        pl_gen_arg g = {MIB, 20 + (uint64_t)k};
        more[k] = pp_submit(s, pl_gen, &g, sizeof g, NULL);
    }
    for (int k = 0; k < 8; k++) {
        CU_ASSERT(pl_job_is(more[k], 60, MIB, 0, MIB, 20 + (uint64_t)k, 0, "a later result"));
        pp_job_free(more[k]);
    }
    for (int k = 4; k < 8; k++) {
        CU_ASSERT(r[k] && pl_check(r[k], MIB, 0, MIB, 10 + (uint64_t)k, 0,
                                   "a result held while others were freed and reused"));
        pp_job_free(held[k]);
    }
}

static void test_in_place_local(void)
{
    results_in_place(pl_client(PL_LOCAL, 2));
}

static void test_in_place_node(void)
{
    results_in_place(pl_client(PL_NODE_TLS, 2));
}

/* ---- a hostile task ---- */

/* A task over a whole buffer whose thread (for 1.5 s after it returned)
 * writes into every shared-memory mapping of its worker, made writable if
 * it is not, and into every memfd it can map anew: the program's buffer
 * must not change (the worker may read it, never write it). */
static void task_cannot_write_buffer(int mode)
{
    pp_server *s = pl_local(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    size_t n = 4 * MIB;
    uint8_t *b = filled(s, n, 8);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    pl_hostile_arg a = {MIB, 9, (uint64_t)mode, ""};
    char end[600];
    snprintf(a.pidfile, sizeof a.pidfile, "%s/shm-hostile", pl_tmpdir);
    snprintf(end, sizeof end, "%s.end", a.pidfile);
    unlink(a.pidfile);
    unlink(end);
    memcpy(b, &a, sizeof a);
    pp_job *j = pp_submit_shm(s, pl_hostile_raw, b, n, NULL);
    CU_ASSERT_EQUAL(pp_job_wait_for(j, 60), PP_DONE);
    pp_job_free(j);
    char *t = srv_slurp(a.pidfile, NULL);
    long pid = t ? strtol(t, NULL, 10) : -1;
    free(t);
    double stop = now_s() + 30;
    while (access(end, F_OK) != 0 && pid > 0 && kill((pid_t)pid, 0) == 0 && now_s() < stop)
        sleep_s(0.01);
    CU_ASSERT(memcmp(b, &a, sizeof a) == 0);
    CU_ASSERT(pl_check(b + sizeof a, n - sizeof a, sizeof a, n, 8, 0,
                       "the program's buffer after its task wrote into every mapping"));
    CU_ASSERT_EQUAL(pp_shm_free(s, b), 0);
    cl_client_free(s);
}

/* Each way in: the worker's mappings as they are, made writable, and the
 * buffer's descriptor mapped anew. */
static void test_task_cannot_write_buffer(void)
{
    static const int modes[] = {PL_SCRIBBLE | PL_KEEP_PROT | PL_NO_REMAP,
                                PL_SCRIBBLE | PL_NO_REMAP, PL_SCRIBBLE | PL_KEEP_PROT};
    static const char *ways[] = {"as mapped", "mprotect()ed writable", "mapped anew"};
    for (int i = 0; i < 3; i++) {
        int before = CU_get_number_of_failures();
        task_cannot_write_buffer(modes[i]);
        fprintf(stderr, "[%s: %s] ", ways[i],
                (int)CU_get_number_of_failures() > before ? "written" : "unchanged");
    }
}

/* ---- misuse ---- */

static void test_alloc_bad(void)
{
    pp_server *s = pl_local(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_PTR_NULL(pp_shm_alloc(s, 0));
    CU_ASSERT(error_from("pp_shm_alloc"));
    CU_ASSERT_PTR_NULL(pp_shm_alloc(s, (size_t)1 << 30));
    CU_ASSERT(error_from("pp_shm_alloc"));
    CU_ASSERT_PTR_NULL(pp_shm_alloc(s, ((size_t)1 << 30) - 3));
    CU_ASSERT(error_from("pp_shm_alloc"));
    CU_ASSERT_PTR_NULL(pp_shm_alloc(s, SIZE_MAX));
    CU_ASSERT(error_from("pp_shm_alloc"));
    CU_ASSERT_PTR_NULL(pp_shm_alloc(NULL, 4096));
    /* The largest is given (its pages untouched cost nothing). */
    void *big = pp_shm_alloc(s, ((size_t)1 << 30) - 4);
    CU_ASSERT_PTR_NOT_NULL(big);
    if (!big)
        fprintf(stderr, "\n    pp_shm_alloc(1 GiB - 4): %s\n", pp_last_error());
    CU_ASSERT_EQUAL(pp_shm_free(s, big), 0);
    void *one = pp_shm_alloc(s, 1);
    CU_ASSERT_PTR_NOT_NULL(one);
    CU_ASSERT_EQUAL(pp_shm_free(s, one), 0);
}

static void test_free_bad(void)
{
    pp_server *s = pl_local(1), *other = pl_local(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(other);
    uint8_t *b = pp_shm_alloc(s, 3 * PP_SHM_MIN);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    char *heap = malloc(64), stack[64];
    CU_ASSERT_EQUAL(pp_shm_free(s, heap), -1);
    CU_ASSERT(error_from("pp_shm_free"));
    CU_ASSERT_EQUAL(pp_shm_free(s, stack), -1);
    CU_ASSERT(error_from("pp_shm_free"));
    CU_ASSERT_EQUAL(pp_shm_free(s, b + 1), -1);
    CU_ASSERT(error_from("pp_shm_free"));
    CU_ASSERT_EQUAL(pp_shm_free(other, b), -1); /* another server's */
    CU_ASSERT(error_from("pp_shm_free"));
    CU_ASSERT_EQUAL(pp_shm_free(s, NULL), 0);
    /* Still good after all that. */
    pl_pattern(b, 0, 3 * PP_SHM_MIN, 3 * PP_SHM_MIN, 6);
    pp_job *j = pp_submit_shm(s, pl_xor, b, 3 * PP_SHM_MIN, NULL);
    CU_ASSERT(pl_job_is(j, 60, 3 * PP_SHM_MIN, 0, 3 * PP_SHM_MIN, 6, PL_XOR_KEY,
                        "a buffer after bad frees"));
    pp_job_free(j);
    CU_ASSERT_EQUAL(pp_shm_free(s, b), 0);
    CU_ASSERT_EQUAL(pp_shm_free(s, b), -1); /* twice */
    CU_ASSERT(error_from("pp_shm_free"));
    free(heap);
}

static void test_submit_bad(void)
{
    pp_server *s = pl_local(1), *other = pl_local(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(other);
    size_t n = 2 * PP_SHM_MIN;
    uint8_t *b = filled(s, n, 7);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    char *heap = calloc(1, n);
    CU_ASSERT(refused(pp_submit_shm(s, pl_sum, heap, n, NULL)));
    CU_ASSERT(refused(pp_submit_shm(s, pl_sum, b + n - 10, 20, NULL))); /* over its end */
    CU_ASSERT(refused(pp_submit_shm(s, pl_sum, b + n, 1, NULL))); /* just past it */
    CU_ASSERT(refused(pp_submit_shm(s, pl_sum, b, SIZE_MAX, NULL)));
    CU_ASSERT(refused(pp_submit_shm(s, pl_sum, NULL, 5, NULL)));
    CU_ASSERT(refused(pp_submit_shm(other, pl_sum, b, n, NULL))); /* another server's */
    pp_job *j = pp_submit_shm(s, pl_sum, b, n, NULL);
    CU_ASSERT(sum_is(j, b, n, "a good submit after the bad ones"));
    pp_job_free(j);
    CU_ASSERT_EQUAL(pp_shm_free(s, b), 0);
    CU_ASSERT(refused(pp_submit_shm(s, pl_sum, b, n, NULL))); /* freed */
    free(heap);
}

int pl_register_shm_api(void)
{
    static const pp_test tests[] = {
        {"one buffer shared by many jobs, locally", test_shared_local},
        {"one buffer shared by many jobs, through a node", test_shared_node},
        {"sub-ranges at a buffer's edges", test_subranges},
        {"pp_shm_free while jobs use it, locally", test_free_while_used_local},
        {"pp_shm_free while jobs use it, through a node", test_free_while_used_node},
        {"results read in place while others are freed, locally", test_in_place_local},
        {"results read in place while others are freed, through a node", test_in_place_node},
        {"pp_shm_alloc of 0, too much, no server", test_alloc_bad},
        {"pp_shm_free of what is no buffer", test_free_bad},
        {"pp_submit_shm outside any buffer", test_submit_bad},
        {"a task cannot write into the program's buffer", test_task_cannot_write_buffer},
        {NULL, NULL}};
    return pl_add_suite("zero-copy API", tests);
}
