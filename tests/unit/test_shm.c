/* SPDX-License-Identifier: MIT */
/* test_shm.c -- pp_shm: buffers and their cache (reuse, bounds, trimming,
 * references across threads), the seal against shrinking, fd passing, and
 * the SJOB/SRESULT/WSHM codecs with malformed input. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cunit_main.h"
#include "pp_common.h"
#include "pp_proto.h"
#include "pp_shm.h"

static void test_get_reuse(void)
{
    pp_shm_cache *c = pp_shm_cache_new(8u << 20);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    char err[PP_ERR_LEN];
    pp_shm *a = pp_shm_get(c, 100000, 0, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT(a->cap >= 100001 && a->cap % 4096 == 0);
    CU_ASSERT(a->id != 0);
    memset(a->base, 0xAB, 100000);
    uint8_t *base = a->base;
    uint64_t id = a->id;
    pp_shm_ref(a);
    pp_shm_unref(a); /* still one reference: not idle */
    size_t idle = 1, total = 0;
    pp_shm_cache_bytes(c, &idle, &total);
    CU_ASSERT_EQUAL(idle, 0);
    CU_ASSERT_EQUAL(total, a->cap);
    pp_shm_unref(a);
    pp_shm_cache_bytes(c, &idle, &total);
    CU_ASSERT_EQUAL(idle, total);
    /* The same buffer again, pages and all, for a request it fits. */
    pp_shm *b = pp_shm_get(c, 90000, 0, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(b->id, id);
    CU_ASSERT_PTR_EQUAL(b->base, base);
    CU_ASSERT_EQUAL(b->base[99999], 0xAB);
    /* Not for one that would leave most of it unused, nor one too big. */
    pp_shm *small = pp_shm_get(c, 100, 0, err);
    pp_shm *big = pp_shm_get(c, 200000, 0, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(small);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    CU_ASSERT(small->id != id && big->id != id && small->id != big->id);
    pp_shm_unref(b);
    pp_shm_unref(small);
    pp_shm_unref(big);
    pp_shm_cache_free(c);
}

static void test_bound_and_trim(void)
{
    pp_shm_cache *c = pp_shm_cache_new(1u << 20);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    char err[PP_ERR_LEN];
    pp_shm *b[4];
    for (int i = 0; i < 4; i++) {
        b[i] = pp_shm_get(c, 400000, 0, err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b[i]);
    }
    for (int i = 0; i < 4; i++)
        pp_shm_unref(b[i]);
    size_t idle, total;
    pp_shm_cache_bytes(c, &idle, &total);
    CU_ASSERT(idle <= (1u << 20)); /* the bound: the oldest went */
    CU_ASSERT_EQUAL(idle, total);
    CU_ASSERT(idle > 0);
    /* Larger than the bound: never kept. */
    pp_shm *huge = pp_shm_get(c, 2u << 20, 0, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(huge);
    pp_shm_unref(huge);
    pp_shm_cache_bytes(c, &idle, &total);
    CU_ASSERT_EQUAL(idle, total);
    CU_ASSERT(idle <= (1u << 20));
    /* Trim by age: nothing is 60 s old; then everything. */
    CU_ASSERT_EQUAL(pp_shm_cache_trim(c, 60), 0);
    CU_ASSERT(pp_shm_cache_trim(c, 0) > 0);
    pp_shm_cache_bytes(c, &idle, &total);
    CU_ASSERT_EQUAL(idle, 0);
    CU_ASSERT_EQUAL(total, 0);
    /* At most PP_SHM_IDLE_MAX idle buffers of one owner, whatever bytes. */
    pp_shm *s[PP_SHM_IDLE_MAX + 3];
    for (int i = 0; i < PP_SHM_IDLE_MAX + 3; i++) {
        s[i] = pp_shm_get(c, 100, 0, err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s[i]);
    }
    for (int i = 0; i < PP_SHM_IDLE_MAX + 3; i++)
        pp_shm_unref(s[i]);
    pp_shm_cache_bytes(c, &idle, &total);
    CU_ASSERT_EQUAL(idle, (size_t)PP_SHM_IDLE_MAX * 4096);
    CU_ASSERT_EQUAL(total, idle);
    pp_shm_cache_free(c);
}

/* A buffer outlives its cache while referenced. */
static void test_outlives_cache(void)
{
    pp_shm_cache *c = pp_shm_cache_new(1u << 20);
    char err[PP_ERR_LEN];
    pp_shm *b = pp_shm_get(c, 5000, 0, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    pp_shm_cache_free(c);
    memset(b->base, 1, 5000); /* still mapped (ASan would catch a use after free) */
    pp_shm_unref(b);
}

/* The program's buffers: only the program's own mapping writes them.  A
 * worker given the fd can map it read-only, nothing more: no writable
 * mapping, no mprotect to writable, no write(), no resizing. */
static void test_sealed_program(void)
{
    pp_shm_cache *c = pp_shm_cache_new(1u << 20);
    char err[PP_ERR_LEN];
    pp_shm *b = pp_shm_get(c, 70000, 0, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(b->owner, 0);
    b->base[0] = 'p'; /* ours stays writable */
    errno = 0;
    CU_ASSERT_EQUAL(ftruncate(b->fd, 0), -1);
    CU_ASSERT_EQUAL(errno, EPERM);
    CU_ASSERT_EQUAL(ftruncate(b->fd, (off_t)b->cap * 2), -1);
    CU_ASSERT_EQUAL(pwrite(b->fd, "x", 1, 0), -1);
    void *w = mmap(NULL, b->cap, PROT_READ | PROT_WRITE, MAP_SHARED, b->fd, 0);
    CU_ASSERT_EQUAL(w, MAP_FAILED);
    if (w != MAP_FAILED)
        munmap(w, b->cap);
    uint8_t *r = mmap(NULL, b->cap, PROT_READ, MAP_SHARED, b->fd, 0);
    CU_ASSERT_FATAL(r != MAP_FAILED);
    CU_ASSERT_EQUAL(r[0], 'p');
    CU_ASSERT_EQUAL(mprotect(r, b->cap, PROT_READ | PROT_WRITE), -1);
    /* Opened anew through /proc, read-write: still no writable mapping. */
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", b->fd);
    int fd2 = open(path, O_RDWR | O_CLOEXEC);
    if (fd2 >= 0) {
        w = mmap(NULL, b->cap, PROT_READ | PROT_WRITE, MAP_SHARED, fd2, 0);
        CU_ASSERT_EQUAL(w, MAP_FAILED);
        CU_ASSERT_EQUAL(write(fd2, "x", 1), -1);
        close(fd2);
    }
    CU_ASSERT_EQUAL(r[0], 'p');
    munmap(r, b->cap);
    pp_shm_unref(b);
    pp_shm_cache_free(c);
}

/* A worker's buffers: nobody can truncate one under its readers; its
 * worker may grow it (a result), and remapping follows; it goes back only
 * to its owner. */
static void test_sealed(void)
{
    pp_shm_cache *c = pp_shm_cache_new(1u << 20);
    char err[PP_ERR_LEN];
    uint64_t w1 = pp_shm_owner_new(c), w2 = pp_shm_owner_new(c);
    CU_ASSERT(w1 != 0 && w2 != 0 && w1 != w2);
    pp_shm *b = pp_shm_get(c, 70000, w1, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(b->owner, w1);
    errno = 0;
    CU_ASSERT_EQUAL(ftruncate(b->fd, 0), -1);
    CU_ASSERT_EQUAL(errno, EPERM);
    /* Growing is allowed (a worker's result), and remapping follows it. */
    size_t cap = b->cap;
    CU_ASSERT_EQUAL(ftruncate(b->fd, (off_t)(cap * 2)), 0);
    CU_ASSERT_EQUAL(pp_shm_remap(b, cap * 2), 0);
    CU_ASSERT_EQUAL(b->cap, cap * 2);
    b->base[cap * 2 - 1] = 7;
    /* A claim past the file's size is refused, the buffer unchanged. */
    CU_ASSERT_EQUAL(pp_shm_remap(b, cap * 4), -1);
    CU_ASSERT_EQUAL(b->cap, cap * 2);
    CU_ASSERT_EQUAL(pp_shm_remap(b, cap), -1); /* nor smaller */
    uint64_t id = b->id;
    pp_shm_unref(b);
    /* Idle now: not for the program, nor for another worker; for w1. */
    pp_shm *p0 = pp_shm_get(c, 70000, 0, err), *p2 = pp_shm_get(c, 70000, w2, err);
    pp_shm *p1 = pp_shm_get(c, 70000, w1, err);
    CU_ASSERT(p0 && p2 && p1);
    CU_ASSERT(p0 && p0->id != id);
    CU_ASSERT(p2 && p2->id != id);
    CU_ASSERT(p1 && p1->id == id);
    pp_shm_unref(p0);
    pp_shm_unref(p1);
    pp_shm_unref(p2);
    pp_shm_cache_free(c);
}

static void test_fd_passing(void)
{
    int sv[2];
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    pp_shm_cache *c = pp_shm_cache_new(1u << 20);
    char err[PP_ERR_LEN];
    pp_shm *b = pp_shm_get(c, 1000, 0, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    strcpy((char *)b->base, "through the socket");
    CU_ASSERT_EQUAL(pp_shm_send_fd(sv[0], 5, b->fd), 0);
    uint32_t tag = 0;
    int fd = pp_shm_recv_fd(sv[1], &tag);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(tag, 5);
    CU_ASSERT(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    char got[32] = "";
    CU_ASSERT_EQUAL(pread(fd, got, 18, 0), 18);
    CU_ASSERT_STRING_EQUAL(got, "through the socket");
    close(fd);
    /* A message without an fd, or of the wrong size, is refused. */
    uint32_t plain = 9;
    CU_ASSERT_EQUAL(send(sv[0], &plain, sizeof plain, 0), (ssize_t)sizeof plain);
    CU_ASSERT_EQUAL(pp_shm_recv_fd(sv[1], &tag), -1);
    CU_ASSERT_EQUAL(errno, EBADMSG);
    uint64_t wide = 1;
    CU_ASSERT_EQUAL(send(sv[0], &wide, sizeof wide, 0), (ssize_t)sizeof wide);
    CU_ASSERT_EQUAL(pp_shm_recv_fd(sv[1], &tag), -1);
    pp_shm_unref(b);
    pp_shm_cache_free(c);
    close(sv[0]);
    close(sv[1]);
}

/* References dropped from several threads at once: each buffer goes idle
 * exactly once (the counts add up). */
typedef struct {
    pp_shm_cache *c;
    pp_shm **bufs;
    int n;
} churn_arg;

static void *churn(void *p)
{
    churn_arg *a = p;
    char err[PP_ERR_LEN];
    for (int round = 0; round < 200; round++) {
        pp_shm *b = pp_shm_get(a->c, 70000 + (size_t)(round % 3) * 10000, 0, err);
        if (!b)
            return (void *)1;
        b->base[0] = (uint8_t)round;
        pp_shm_unref(b);
        for (int i = 0; i < a->n; i++) {
            pp_shm_ref(a->bufs[i]);
            pp_shm_unref(a->bufs[i]);
        }
    }
    return NULL;
}

static void test_threads(void)
{
    pp_shm_cache *c = pp_shm_cache_new(4u << 20);
    char err[PP_ERR_LEN];
    pp_shm *bufs[4];
    for (int i = 0; i < 4; i++)
        bufs[i] = pp_shm_get(c, 100000, 0, err);
    churn_arg a = {c, bufs, 4};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, churn, &a), 0);
    for (int i = 0; i < 4; i++) {
        void *rc = NULL;
        pthread_join(t[i], &rc);
        CU_ASSERT_PTR_NULL(rc);
    }
    for (int i = 0; i < 4; i++)
        pp_shm_unref(bufs[i]);
    size_t idle, total;
    pp_shm_cache_bytes(c, &idle, &total);
    CU_ASSERT_EQUAL(idle, total); /* nothing referenced, nothing lost */
    pp_shm_cache_free(c);
}

/* Open fds in this process. */
static int open_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 4096; fd++)
        n += fcntl(fd, F_GETFD) != -1;
    return n;
}

/* A program holding many results holds a bounded number of fds: past
 * PP_SHM_FDS_MAX, settled buffers keep only their mapping, and go when
 * released. */
static void test_settle(void)
{
    pp_shm_cache *c = pp_shm_cache_new(64u << 20);
    char err[PP_ERR_LEN];
    enum { N = PP_SHM_FDS_MAX + 100 };
    static pp_shm *b[N];
    int base = open_fds();
    uint64_t w = pp_shm_owner_new(c);
    for (int i = 0; i < N; i++) {
        b[i] = pp_shm_get(c, 100, w, err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b[i]);
        b[i]->base[0] = (uint8_t)i;
        pp_shm_settle(b[i]);
    }
    CU_ASSERT(open_fds() <= base + PP_SHM_FDS_MAX + 1);
    int readable = 0;
    for (int i = 0; i < N; i++)
        readable += b[i]->base[0] == (uint8_t)i; /* the mapping stays */
    CU_ASSERT_EQUAL(readable, N);
    CU_ASSERT_EQUAL(pp_shm_remap(b[N - 1], b[N - 1]->cap * 2), -1); /* no fd: no remap */
    for (int i = 0; i < N; i++)
        pp_shm_unref(b[i]);
    size_t idle, total;
    pp_shm_cache_bytes(c, &idle, &total);
    CU_ASSERT_EQUAL(idle, total);
    CU_ASSERT(total <= (size_t)PP_SHM_FDS_MAX * 4096 + 4096); /* the settled ones went */
    pp_shm_settle(NULL);
    pp_shm_cache_free(c);
    CU_ASSERT_EQUAL(open_fds(), base);
}

/* ---- frames ---- */

static pp_frame frame(uint8_t type, const uint8_t *p, size_t n)
{
    pp_frame f = {.hdr = {.type = type, .len = (uint32_t)n}, .payload = p};
    return f;
}

static void test_sjob_codec(void)
{
    uint8_t buf[PP_SJOB_HEAD + 3];
    pp_msg_sjob m = {.task = 7, .aslot = 2, .rslot = 5, .aoff = 4096, .alen = 70000};
    pp_proto_sjob(buf, &m);
    pp_frame f = frame(PP_T_SJOB, buf, PP_SJOB_HEAD);
    pp_msg_sjob d;
    CU_ASSERT_EQUAL(pp_proto_sjob_decode(&f, &d), 0);
    CU_ASSERT(d.task == 7 && d.aslot == 2 && d.rslot == 5 && d.aoff == 4096 && d.alen == 70000);
    CU_ASSERT_PTR_NULL(d.inl);
    /* In a slot, nothing may follow. */
    f = frame(PP_T_SJOB, buf, PP_SJOB_HEAD + 1);
    CU_ASSERT_EQUAL(pp_proto_sjob_decode(&f, &d), -1);
    /* Inline: the length must be what follows, the offset 0. */
    m = (pp_msg_sjob){.task = 1, .aslot = PP_SHM_NONE, .rslot = 0, .alen = 3};
    pp_proto_sjob(buf, &m);
    memcpy(buf + PP_SJOB_HEAD, "abc", 3);
    f = frame(PP_T_SJOB, buf, sizeof buf);
    CU_ASSERT_EQUAL(pp_proto_sjob_decode(&f, &d), 0);
    CU_ASSERT(d.inl && memcmp(d.inl, "abc", 3) == 0 && d.alen == 3);
    f = frame(PP_T_SJOB, buf, sizeof buf - 1);
    CU_ASSERT_EQUAL(pp_proto_sjob_decode(&f, &d), -1);
    pp_store64(buf + 16, 1);
    f = frame(PP_T_SJOB, buf, sizeof buf);
    CU_ASSERT_EQUAL(pp_proto_sjob_decode(&f, &d), -1);
    /* Short, and a non-zero pad. */
    f = frame(PP_T_SJOB, buf, PP_SJOB_HEAD - 1);
    CU_ASSERT_EQUAL(pp_proto_sjob_decode(&f, &d), -1);
    pp_proto_sjob(buf, &(pp_msg_sjob){.aslot = 0, .rslot = 0});
    buf[13] = 1;
    f = frame(PP_T_SJOB, buf, PP_SJOB_HEAD);
    CU_ASSERT_EQUAL(pp_proto_sjob_decode(&f, &d), -1);
}

static void test_sresult_codec(void)
{
    uint8_t buf[PP_SRESULT_LEN];
    pp_msg_sresult m = {.run_ns = 123, .rslot = 3, .len = 70000, .size = 73728};
    pp_proto_sresult(buf, &m);
    pp_frame f = frame(PP_T_SRESULT, buf, sizeof buf);
    pp_msg_sresult d;
    CU_ASSERT_EQUAL(pp_proto_sresult_decode(&f, &d), 0);
    CU_ASSERT(d.run_ns == 123 && d.rslot == 3 && d.len == 70000 && d.size == 73728);
    /* No room for the NUL after the result. */
    m.len = m.size;
    pp_proto_sresult(buf, &m);
    CU_ASSERT_EQUAL(pp_proto_sresult_decode(&f, &d), -1);
    /* Only PP_DONE, a zero pad, the exact length. */
    m.len = 10;
    pp_proto_sresult(buf, &m);
    buf[0] = PP_FAILED;
    CU_ASSERT_EQUAL(pp_proto_sresult_decode(&f, &d), -1);
    pp_proto_sresult(buf, &m);
    buf[PP_RESULT_HDR + 5] = 1;
    CU_ASSERT_EQUAL(pp_proto_sresult_decode(&f, &d), -1);
    pp_proto_sresult(buf, &m);
    f = frame(PP_T_SRESULT, buf, sizeof buf - 1);
    CU_ASSERT_EQUAL(pp_proto_sresult_decode(&f, &d), -1);
}

int pp_register_suites(void)
{
    static const pp_test shm[] = {
        {"buffers are reused with their pages", test_get_reuse},
        {"idle bytes bounded; trim by age", test_bound_and_trim},
        {"a buffer outlives its cache", test_outlives_cache},
        {"the program's buffers: read-only to everyone else", test_sealed_program},
        {"a worker's buffers: not shrunk, grown and remapped, its own", test_sealed},
        {"fd passing and malformed messages", test_fd_passing},
        {"references from several threads", test_threads},
        {"many results held: fds bounded", test_settle},
        {NULL, NULL},
    };
    static const pp_test frames[] = {
        {"SJOB codec and malformed SJOBs", test_sjob_codec},
        {"SRESULT codec and malformed SRESULTs", test_sresult_codec},
        {NULL, NULL},
    };
    if (pp_add_suite("pp_shm", NULL, NULL, shm) != 0 ||
        pp_add_suite("shared-memory frames", NULL, NULL, frames) != 0)
        return -1;
    return 0;
}
