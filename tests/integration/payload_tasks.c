/* SPDX-License-Identifier: MIT */
/* payload_tasks.c -- the task module of test_payload: tasks that transform
 * large arguments, make large results, die while writing them, and one
 * that attacks the shared memory its worker holds (payload_tasks.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "payload_tasks.h"

/* Chunk in which the tasks produce their results: large results grow by
 * many appends, as a real task's would. */
#define CHUNK (256 * 1024)

#ifdef __SANITIZE_THREAD__
/* The hostile thread races with its worker on purpose (the tests check
 * that the program never sees it): ThreadSanitizer ignores its accesses,
 * so that it still reports every race of the worker's own. */
void __tsan_ignore_thread_begin(void);
void __tsan_ignore_thread_end(void);
#define HOSTILE_UNWATCHED() __tsan_ignore_thread_begin()
#define HOSTILE_WATCHED() __tsan_ignore_thread_end()
#else
#define HOSTILE_UNWATCHED() ((void)0)
#define HOSTILE_WATCHED() ((void)0)
#endif

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Appends the bytes from..to of the payload (size, seed). */
static int append_pattern(pp_buf *out, uint64_t from, uint64_t to, uint64_t size,
                          uint64_t seed)
{
    static uint8_t chunk[CHUNK];
    for (uint64_t off = from; off < to; off += CHUNK) {
        size_t n = to - off < CHUNK ? (size_t)(to - off) : CHUNK;
        pl_pattern(chunk, off, n, size, seed);
        if (pp_buf_append(out, chunk, n) != 0)
            return -1;
    }
    return 0;
}

static int xor_into(const void *arg, size_t len, pp_buf *out)
{
    static uint8_t chunk[CHUNK];
    const uint8_t *a = arg;
    for (size_t off = 0; off < len; off += CHUNK) {
        size_t n = len - off < CHUNK ? len - off : CHUNK;
        for (size_t i = 0; i < n; i++)
            chunk[i] = a[off + i] ^ PL_XOR_KEY;
        if (pp_buf_append(out, chunk, n) != 0)
            return pp_buf_printf(out, "pl_xor: the result is over the limit"), 1;
    }
    return 0;
}

int pl_xor(const void *arg, size_t len, pp_buf *out)
{
    return xor_into(arg, len, out);
}

int pl_sleep(const void *arg, size_t len, pp_buf *out)
{
    uint64_t ms, pid = (uint64_t)getpid();
    if (len != sizeof ms)
        return pp_buf_printf(out, "pl_sleep: argument of %zu bytes", len), 1;
    memcpy(&ms, arg, sizeof ms);
    nap_ms((long)ms);
    return pp_buf_append(out, &pid, sizeof pid) == 0 ? 0 : 1;
}

int pl_gen(const void *arg, size_t len, pp_buf *out)
{
    pl_gen_arg g;
    if (len != sizeof g)
        return pp_buf_printf(out, "pl_gen: argument of %zu bytes", len), 1;
    memcpy(&g, arg, sizeof g);
    if (append_pattern(out, 0, g.n, g.n, g.seed) != 0)
        return pp_buf_printf(out, "pl_gen: the result is over the limit"), 1;
    return 0;
}

int pl_sum(const void *arg, size_t len, pp_buf *out)
{
    pl_sum_res r = {len, pl_hash(arg, len)};
    return pp_buf_append(out, &r, sizeof r) == 0 ? 0 : 1;
}

/* Creates `path` (an empty file); "" does nothing.  0 or -1. */
static int make_marker(const char *path, int excl)
{
    if (!path[0])
        return 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (excl ? O_EXCL : 0), 0600);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

/* Writes the worker's pid into `path`, whole or not at all (a reader may
 * be waiting for the file).  0 or -1. */
static int write_pid(const char *path)
{
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *fp = fopen(tmp, "w");
    if (!fp)
        return -1;
    int ok = fprintf(fp, "%ld\n", (long)getpid()) > 0;
    if (fclose(fp) != 0 || !ok || rename(tmp, path) != 0)
        return -1;
    return 0;
}

int pl_die(const void *arg, size_t len, pp_buf *out)
{
    long n, how;
    const char *marker;
    if (pp_unpack(arg, len, "lls", &n, &how, &marker) != 0 || n < 0)
        return pp_buf_printf(out, "pl_die: %s", pp_last_error()), 1;
    if (append_pattern(out, 0, (uint64_t)n, (uint64_t)n, 1) != 0)
        return 1;
    if (marker[0] && write_pid(marker) != 0)
        return pp_buf_printf(out, "pl_die: %s: %s", marker, strerror(errno)), 1;
    if (how == 0)
        raise(SIGSEGV);
    if (how == 1)
        abort();
    double end = mono_s() + 120;
    volatile unsigned long spins = 0;
    while (mono_s() < end)
        spins++;
    return pp_buf_printf(out, "pl_die: still running after 120 s"), 1;
}

int pl_once(const void *arg, size_t len, pp_buf *out)
{
    long n, seed;
    const char *marker;
    if (pp_unpack(arg, len, "lls", &n, &seed, &marker) != 0 || n < 0)
        return pp_buf_printf(out, "pl_once: %s", pp_last_error()), 1;
    if (make_marker(marker, 1) == 0) {
        append_pattern(out, 0, (uint64_t)n / 2, (uint64_t)n, (uint64_t)seed);
        raise(SIGSEGV);
    } else if (errno != EEXIST) {
        return pp_buf_printf(out, "pl_once: %s: %s", marker, strerror(errno)), 1;
    }
    return append_pattern(out, 0, (uint64_t)n, (uint64_t)n, (uint64_t)seed) == 0 ? 0 : 1;
}

/* ---- the hostile task ---- */

#define MAX_KEPT 64

typedef struct hostile {
    int mode;
    int kept[MAX_KEPT];     /* duplicates of the memfds seen, for later */
    int nkept;
    char end[600];          /* created when the thread is done */
} hostile;

/* Whether fd is a memfd (its link reads "/memfd:NAME (deleted)"). */
static int is_memfd(int fd)
{
    char path[64], link[256];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t k = readlink(path, link, sizeof link - 1);
    if (k <= 0)
        return 0;
    link[k] = 0;
    return strncmp(link, "/memfd:", 7) == 0;
}

/* Truncates every memfd of the process as the mode says, and keeps a
 * duplicate of each (while there is room) to map it again later. */
static void attack_fds(hostile *h)
{
    for (int fd = 0; fd < 1024; fd++) {
        if (!is_memfd(fd))
            continue;
        if (h->mode & PL_SHRINK)
            (void)!ftruncate(fd, 0);
        if (h->mode & PL_GROW)
            (void)!ftruncate(fd, (off_t)1 << 40);
        int seen = 0;
        for (int i = 0; i < h->nkept; i++) {
            struct stat a, b;
            if (fstat(h->kept[i], &a) == 0 && fstat(fd, &b) == 0 && a.st_ino == b.st_ino)
                seen = 1;
        }
        if (!seen && h->nkept < MAX_KEPT) {
            int d = fcntl(fd, F_DUPFD_CLOEXEC, 100);
            if (d >= 0)
                h->kept[h->nkept++] = d;
        }
    }
}

static void scribble(uint8_t *p, size_t len)
{
    memset(p, 0xEE, len < 65536 ? len : 65536);
    for (size_t off = 0; off < len; off += 4096)
        p[off] = 0xEE;
}

/* Writes into every memfd mapping of the process, made writable first if
 * it is not, and into every memfd kept, mapped anew. */
static void attack_maps(hostile *h)
{
    FILE *fp = fopen("/proc/self/maps", "r");
    char line[512];
    while (fp && fgets(line, sizeof line, fp)) {
        unsigned long lo, hi;
        char perms[8];
        if (!strstr(line, "/memfd:") || sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3)
            continue;
        if (perms[1] != 'w' && ((h->mode & PL_KEEP_PROT) ||
                                mprotect((void *)lo, hi - lo, PROT_READ | PROT_WRITE) != 0))
            continue;
        scribble((uint8_t *)lo, hi - lo);
    }
    if (fp)
        fclose(fp);
    for (int i = 0; i < h->nkept && !(h->mode & PL_NO_REMAP); i++) {
        struct stat st;
        if (fstat(h->kept[i], &st) != 0 || st.st_size <= 0 || st.st_size > (1l << 30))
            continue;
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                       h->kept[i], 0);
        if (p == MAP_FAILED)
            continue;
        scribble(p, (size_t)st.st_size);
        munmap(p, (size_t)st.st_size);
    }
}

static void *hostile_thread(void *arg)
{
    hostile *h = arg;
    HOSTILE_UNWATCHED();
    /* Let the task return and its worker hand the result over first: what
     * is attacked is the result after it was delivered, and the buffers of
     * the jobs after it. */
    nap_ms(200);
    double end = mono_s() + PL_HOSTILE_SECONDS;
    while (mono_s() < end) {
        attack_fds(h);
        if (h->mode & PL_SCRIBBLE)
            attack_maps(h);
        nap_ms(2);
    }
    for (int i = 0; i < h->nkept; i++)
        close(h->kept[i]);
    make_marker(h->end, 0);
    free(h);
    HOSTILE_WATCHED(); /* a thread must not end while ignored */
    return NULL;
}

/* Appends the payload, then attacks (see payload_tasks.h). */
static int hostile_run(long n, long seed, long mode, const char *pidfile, pp_buf *out)
{
    if (n < 0 || append_pattern(out, 0, (uint64_t)n, (uint64_t)n, (uint64_t)seed) != 0)
        return pp_buf_printf(out, "pl_hostile: no result of %ld bytes", n), 1;
    hostile *h = calloc(1, sizeof *h);
    if (!h)
        return pp_buf_printf(out, "pl_hostile: out of memory"), 1;
    h->mode = (int)mode;
    snprintf(h->end, sizeof h->end, "%s.end", pidfile);
    write_pid(pidfile);
    /* The channel attacked before the result is handed over: sizes only
     * (writing into the result now would only be the task's own output). */
    attack_fds(h);
    pthread_t th;
    if (pthread_create(&th, NULL, hostile_thread, h) != 0) {
        free(h);
        return pp_buf_printf(out, "pl_hostile: no thread"), 1;
    }
    pthread_detach(th);
    return 0;
}

int pl_hostile(const void *arg, size_t len, pp_buf *out)
{
    long n, seed, mode;
    const char *pidfile;
    if (pp_unpack(arg, len, "llls", &n, &seed, &mode, &pidfile) != 0)
        return pp_buf_printf(out, "pl_hostile: %s", pp_last_error()), 1;
    return hostile_run(n, seed, mode, pidfile, out);
}

int pl_hostile_raw(const void *arg, size_t len, pp_buf *out)
{
    pl_hostile_arg a;
    if (len < sizeof a)
        return pp_buf_printf(out, "pl_hostile_raw: argument of %zu bytes", len), 1;
    memcpy(&a, arg, sizeof a);
    a.pidfile[sizeof a.pidfile - 1] = 0;
    return hostile_run((long)a.n, (long)a.seed, (long)a.mode, a.pidfile, out);
}

typedef struct flipper {
    volatile uint8_t *count; /* the low byte of the array's count */
    double end;
} flipper;

static void *flip_thread(void *arg)
{
    flipper *f = arg;
    while (mono_s() < f->end)
        for (int i = 0; i < 4096; i++)
            *f->count = (uint8_t)(i & 1 ? PL_FLIP_COUNT + 2 : PL_FLIP_COUNT);
    *f->count = PL_FLIP_COUNT;
    free(f);
    return NULL;
}

/* Whether p lies in a writable memfd mapping of the process (a result
 * buffer the pool offered). */
static int in_memfd(const void *p)
{
    FILE *fp = fopen("/proc/self/maps", "r");
    char line[512];
    int in = 0;
    while (fp && !in && fgets(line, sizeof line, fp)) {
        unsigned long lo, hi;
        char perms[8];
        in = strstr(line, "/memfd:") && sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 &&
             perms[1] == 'w' && (uintptr_t)p >= lo && (uintptr_t)p < hi;
    }
    if (fp)
        fclose(fp);
    return in;
}

int pl_flip(const void *arg, size_t len, pp_buf *out)
{
    long ms;
    if (pp_unpack(arg, len, "l", &ms) != 0)
        return pp_buf_printf(out, "pl_flip: %s", pp_last_error()), 1;
    long longs[PL_FLIP_COUNT];
    for (int i = 0; i < PL_FLIP_COUNT; i++)
        longs[i] = i + 1;
    uint8_t *blob = malloc(PL_FLIP_BLOB);
    if (!blob)
        return pp_buf_printf(out, "pl_flip: out of memory"), 1;
    memset(blob, 0x7f, PL_FLIP_BLOB);
    int rc = pp_pack(out, "Lb", longs, (size_t)PL_FLIP_COUNT, blob, (size_t)PL_FLIP_BLOB);
    free(blob);
    if (rc != 0 || ms <= 0)
        return rc != 0;
    /* What lies behind a pp_buf: its data pointer first.  The count is a
     * big-endian u32 after the tag 'L'. */
    uint8_t *data = *(uint8_t **)out;
    if (!in_memfd(data)) /* a heap result: freed once sent, not ours to flip */
        return pp_buf_printf(out, "pl_flip: the result is not in shared memory"), 1;
    flipper *f = malloc(sizeof *f);
    if (!f)
        return pp_buf_printf(out, "pl_flip: out of memory"), 1;
    f->count = data + 4;
    f->end = mono_s() + (double)ms / 1000;
    pthread_t th;
    if (pthread_create(&th, NULL, flip_thread, f) != 0) {
        free(f);
        return pp_buf_printf(out, "pl_flip: no thread"), 1;
    }
    pthread_detach(th);
    return 0;
}

typedef struct filler {
    uint8_t *from, *to; /* the memfd mapping the result lies in, from it on */
    double end;
} filler;

static void *fill_thread(void *arg)
{
    filler *f = arg;
    while (mono_s() < f->end) {
        memset(f->from, 'a', (size_t)(f->to - f->from));
        nap_ms(1);
    }
    free(f);
    return NULL;
}

int pl_unterminated(const void *arg, size_t len, pp_buf *out)
{
    long ms;
    if (pp_unpack(arg, len, "l", &ms) != 0)
        return pp_buf_printf(out, "pl_unterminated: %s", pp_last_error()), 1;
    uint8_t *text = malloc(PL_UNTERMINATED_LEN);
    if (!text)
        return pp_buf_printf(out, "pl_unterminated: out of memory"), 1;
    memset(text, 'a', PL_UNTERMINATED_LEN);
    int rc = pp_buf_append(out, text, PL_UNTERMINATED_LEN);
    free(text);
    if (rc != 0 || ms <= 0)
        return rc != 0;
    uint8_t *data = *(uint8_t **)out; /* what lies behind a pp_buf: its data first */
    FILE *fp = fopen("/proc/self/maps", "r");
    char line[512];
    unsigned long lo = 0, hi = 0;
    char perms[8];
    int found = 0;
    while (fp && !found && fgets(line, sizeof line, fp))
        found = strstr(line, "/memfd:") && sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 &&
                perms[1] == 'w' && (uintptr_t)data >= lo && (uintptr_t)data < hi;
    if (fp)
        fclose(fp);
    if (!found) /* a heap result: freed once sent, not ours to fill */
        return pp_buf_printf(out, "pl_unterminated: the result is not in shared memory"), 1;
    filler *f = malloc(sizeof *f);
    if (!f)
        return pp_buf_printf(out, "pl_unterminated: out of memory"), 1;
    *f = (filler){.from = data, .to = (uint8_t *)hi, .end = mono_s() + (double)ms / 1000};
    pthread_t th;
    if (pthread_create(&th, NULL, fill_thread, f) != 0) {
        free(f);
        return pp_buf_printf(out, "pl_unterminated: no thread"), 1;
    }
    pthread_detach(th);
    return 0;
}
