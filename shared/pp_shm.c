/* SPDX-License-Identifier: MIT */
/* pp_shm.c -- shared-memory buffers and their cache. */
#include "pp_shm.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pp_common.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010 /* Linux 5.1 */
#endif

struct pp_shm_cache {
    pthread_mutex_t mu;
    pp_shm *idle;            /* most recently idle first */
    size_t idle_bytes, total_bytes, keep;
    size_t live;             /* buffers in existence, idle or not */
    size_t fds;              /* of those, with their fd open */
    uint64_t next_id, next_owner;
    int closing;             /* pp_shm_cache_free() was called */
};

pp_shm_cache *pp_shm_cache_new(size_t keep_bytes)
{
    pp_shm_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c);
        return NULL;
    }
    c->keep = keep_bytes;
    return c;
}

static size_t page_size(void)
{
    long page = sysconf(_SC_PAGESIZE);
    return page > 0 ? (size_t)page : 4096;
}

static size_t page_up(size_t n)
{
    size_t pg = page_size();
    return (n + pg - 1) / pg * pg;
}

/* Room for a mapping of `size` bytes and, after it, the page of zeros that
 * guards it: whatever a worker writes into a buffer (the NUL the library
 * keeps after a result too), a C string read from inside one ends within
 * it or on that page, never past it.  MAP_FAILED, or the area (read-only
 * zeros until the buffer is mapped over its start). */
static uint8_t *guarded_area(size_t size)
{
    return mmap(NULL, page_up(size) + page_size(), PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                0);
}

static void destroy(pp_shm *b)
{
    munmap(b->base, page_up(b->cap) + page_size()); /* and its guard */
    if (b->fd >= 0)
        close(b->fd);
    free(b);
}

/* Drops a buffer from the books (lock held); 1 when the cache must go too
 * (it was freed and this was its last buffer). */
static int forget_locked(pp_shm_cache *c, const pp_shm *b)
{
    c->total_bytes -= b->cap;
    c->live--;
    c->fds -= b->fd >= 0;
    return c->closing && c->live == 0;
}

static void cache_destroy(pp_shm_cache *c)
{
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void pp_shm_cache_free(pp_shm_cache *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    pp_shm *b = c->idle;
    c->idle = NULL;
    c->idle_bytes = 0;
    while (b) {
        pp_shm *n = b->next;
        (void)forget_locked(c, b);
        destroy(b);
        b = n;
    }
    c->closing = 1;
    int last = c->live == 0;
    pthread_mutex_unlock(&c->mu);
    if (last)
        cache_destroy(c);
}

/* A new memfd of `cap` bytes, mapped, sealed as its owner's kind says
 * (pp_shm.h): after the mapping, so that ours stays writable. */
static pp_shm *create(size_t cap, uint64_t owner, char *err)
{
    pp_shm *b = calloc(1, sizeof *b);
    if (!b) {
        pp_seterr(err, "out of memory");
        return NULL;
    }
    b->fd = memfd_create("pp-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (b->fd < 0) {
        pp_seterr(err, "memfd_create: %s", strerror(errno));
        free(b);
        return NULL;
    }
    if (ftruncate(b->fd, (off_t)cap) != 0) {
        pp_seterr(err, "cannot size a shared buffer of %zu bytes: %s", cap, strerror(errno));
        close(b->fd);
        free(b);
        return NULL;
    }
    uint8_t *area = guarded_area(cap);
    b->base = area == MAP_FAILED ? MAP_FAILED
                                 : mmap(area, cap, PROT_READ | PROT_WRITE,
                                        MAP_SHARED | MAP_FIXED, b->fd, 0);
    if (b->base == MAP_FAILED) {
        pp_seterr(err, "cannot map a shared buffer of %zu bytes: %s", cap, strerror(errno));
        if (area != MAP_FAILED)
            munmap(area, page_up(cap) + page_size());
        close(b->fd);
        free(b);
        return NULL;
    }
    int seals = owner ? F_SEAL_SHRINK : F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE;
    if (fcntl(b->fd, F_ADD_SEALS, seals) != 0) {
        pp_seterr(err, "cannot seal a shared buffer: %s", strerror(errno));
        munmap(b->base, page_up(cap) + page_size());
        close(b->fd);
        free(b);
        return NULL;
    }
    b->owner = owner;
    b->cap = cap;
    atomic_init(&b->refs, 1);
    return b;
}

uint64_t pp_shm_owner_new(pp_shm_cache *c)
{
    pthread_mutex_lock(&c->mu);
    uint64_t o = ++c->next_owner;
    pthread_mutex_unlock(&c->mu);
    return o;
}

pp_shm *pp_shm_get(pp_shm_cache *c, size_t len, uint64_t owner, char *err)
{
    size_t pg = page_size();
    if (len > SIZE_MAX / 2) {
        pp_seterr(err, "a shared buffer of %zu bytes is too large", len);
        return NULL;
    }
    size_t need = (len + 1 + pg - 1) / pg * pg;
    pthread_mutex_lock(&c->mu);
    /* The smallest idle buffer that fits, so that big ones stay for big
     * jobs; but not one more than twice too large (memory kept busy). */
    pp_shm **best = NULL;
    for (pp_shm **pb = &c->idle; *pb; pb = &(*pb)->next)
        if ((*pb)->owner == owner && (*pb)->cap >= need && (*pb)->cap / 2 <= need + pg &&
            (!best || (*pb)->cap < (*best)->cap))
            best = pb;
    if (best) {
        pp_shm *b = *best;
        *best = b->next;
        b->next = NULL;
        b->len = len;
        c->idle_bytes -= b->cap;
        atomic_store_explicit(&b->refs, 1, memory_order_relaxed);
        pthread_mutex_unlock(&c->mu);
        return b;
    }
    uint64_t id = ++c->next_id;
    c->live++;
    c->fds++;
    c->total_bytes += need;
    pthread_mutex_unlock(&c->mu);
    pp_shm *b = create(need, owner, err);
    if (!b) {
        pthread_mutex_lock(&c->mu);
        c->live--;
        c->fds--;
        c->total_bytes -= need;
        pthread_mutex_unlock(&c->mu);
        return NULL;
    }
    b->id = id;
    b->len = len;
    b->cache = c;
    return b;
}

void pp_shm_ref(pp_shm *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

/* Releases idle buffers, oldest first, until at most `keep` bytes stay
 * idle; those idle at least `age` seconds go whatever the bound (age < 0:
 * none for age).  Lock held; the buffers to destroy go to *out. */
static void shed_locked(pp_shm_cache *c, size_t keep, double age, pp_shm **out)
{
    double now = age >= 0 ? pp_now() : 0;
    pp_shm **pb = &c->idle;
    size_t kept = 0;
    while (*pb) {
        pp_shm *b = *pb;
        if (kept + b->cap <= keep && !(age >= 0 && now - b->idle_since >= age)) {
            kept += b->cap;
            pb = &b->next;
            continue;
        }
        *pb = b->next;
        c->idle_bytes -= b->cap;
        b->next = *out;
        *out = b;
    }
}

/* Keeps at most PP_SHM_IDLE_MAX idle buffers of an owner, the most
 * recently used: a mix of sizes does not pile up (lock held; the others go
 * to *out). */
static void shed_owner_locked(pp_shm_cache *c, uint64_t owner, pp_shm **out)
{
    int n = 0;
    for (pp_shm **pb = &c->idle; *pb;) {
        pp_shm *b = *pb;
        if (b->owner != owner || ++n <= PP_SHM_IDLE_MAX) {
            pb = &b->next;
            continue;
        }
        *pb = b->next;
        c->idle_bytes -= b->cap;
        b->next = *out;
        *out = b;
    }
}

/* Destroys the buffers of a list (no lock), and the cache when it is
 * closing and they were its last. */
static void destroy_list(pp_shm_cache *c, pp_shm *list)
{
    if (!list)
        return;
    int last = 0;
    pthread_mutex_lock(&c->mu);
    for (pp_shm *b = list; b; b = b->next)
        last = forget_locked(c, b);
    pthread_mutex_unlock(&c->mu);
    while (list) {
        pp_shm *n = list->next;
        destroy(list);
        list = n;
    }
    if (last)
        cache_destroy(c);
}

void pp_shm_unref(pp_shm *b)
{
    if (!b || atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
        return;
    pp_shm_cache *c = b->cache;
    pp_shm *gone = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->closing || b->cap > c->keep || b->fd < 0) {
        b->next = NULL;
        gone = b;
    } else {
        b->idle_since = pp_now();
        b->next = c->idle;
        c->idle = b;
        c->idle_bytes += b->cap;
        if (c->idle_bytes > c->keep)
            shed_locked(c, c->keep, -1, &gone);
        shed_owner_locked(c, b->owner, &gone);
    }
    pthread_mutex_unlock(&c->mu);
    destroy_list(c, gone);
}

void pp_shm_settle(pp_shm *b)
{
    if (!b)
        return;
    pp_shm_cache *c = b->cache;
    int fd = -1;
    pthread_mutex_lock(&c->mu);
    if (c->fds > PP_SHM_FDS_MAX && b->fd >= 0) {
        fd = b->fd;
        b->fd = -1;
        c->fds--;
    }
    pthread_mutex_unlock(&c->mu);
    if (fd >= 0)
        close(fd);
}

int pp_shm_remap(pp_shm *b, size_t size)
{
    struct stat st;
    if (b->fd < 0)
        return -1;
    if (size <= b->cap)
        return size == b->cap ? 0 : -1;
    if (fstat(b->fd, &st) != 0 || st.st_size < 0 || (size_t)st.st_size < size)
        return -1;
    /* Moved into a new guarded area: the old guard sits where it would grow. */
    uint8_t *area = guarded_area(size);
    void *p = area == MAP_FAILED ? MAP_FAILED
                                 : mremap(b->base, page_up(b->cap), page_up(size),
                                          MREMAP_MAYMOVE | MREMAP_FIXED, area);
    if (p == MAP_FAILED) {
        if (area != MAP_FAILED)
            munmap(area, page_up(size) + page_size());
        return -1;
    }
    munmap(b->base + page_up(b->cap), page_size()); /* the old guard */
    pthread_mutex_lock(&b->cache->mu);
    b->cache->total_bytes += size - b->cap;
    pthread_mutex_unlock(&b->cache->mu);
    b->base = p;
    b->cap = size;
    return 0;
}

size_t pp_shm_cache_trim(pp_shm_cache *c, double age)
{
    pp_shm *gone = NULL;
    pthread_mutex_lock(&c->mu);
    shed_locked(c, age > 0 ? SIZE_MAX : 0, age > 0 ? age : -1, &gone);
    pthread_mutex_unlock(&c->mu);
    size_t n = 0;
    for (pp_shm *b = gone; b; b = b->next)
        n += b->cap;
    destroy_list(c, gone);
    return n;
}

void pp_shm_cache_bytes(pp_shm_cache *c, size_t *idle, size_t *total)
{
    pthread_mutex_lock(&c->mu);
    if (idle)
        *idle = c->idle_bytes;
    if (total)
        *total = c->total_bytes;
    pthread_mutex_unlock(&c->mu);
}

int pp_shm_send_fd(int sock, uint32_t tag, int fd)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = {&tag, sizeof tag};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                        .msg_controllen = sizeof ctl.buf};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    ssize_t n;
    do
        n = sendmsg(sock, &mh, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof tag ? 0 : -1;
}

int pp_shm_recv_fd(int sock, uint32_t *tag)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {tag, sizeof *tag};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                        .msg_controllen = sizeof ctl.buf};
    ssize_t n;
    do
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    int fd = -1;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
        cm->cmsg_len == CMSG_LEN(sizeof(int)))
        memcpy(&fd, CMSG_DATA(cm), sizeof fd);
    if (n != (ssize_t)sizeof *tag || fd < 0 || (mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC))) {
        if (fd >= 0)
            close(fd);
        errno = EBADMSG;
        return -1;
    }
    return fd;
}
