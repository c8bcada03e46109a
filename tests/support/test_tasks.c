/* SPDX-License-Identifier: MIT */
/* test_tasks.c -- a task module for the test suites: tasks that succeed,
 * fail, crash, hang, fork, and report on their environment. */
#include <errno.h>
#include <fcntl.h>
#include <pp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "test_tasks.h"

int t_echo(const void *arg, size_t len, pp_buf *out)
{
    return pp_buf_append(out, arg, len) == 0 ? 0 : 1;
}

int t_square(const void *arg, size_t len, pp_buf *out)
{
    long n;
    if (pp_unpack(arg, len, "l", &n) != 0)
        return pp_buf_printf(out, "%s", pp_last_error()), 1;
    return pp_pack(out, "l", n * n) == 0 ? 0 : 1;
}

int t_fail(const void *arg, size_t len, pp_buf *out)
{
    pp_buf_printf(out, "task failed on purpose: %.*s", (int)len, (const char *)arg);
    return 1;
}

int t_segv(const void *arg, size_t len, pp_buf *out)
{
    (void)arg;
    (void)len;
    (void)out;
    raise(SIGSEGV);
    return 0;
}

int t_abort(const void *arg, size_t len, pp_buf *out)
{
    (void)arg;
    (void)len;
    (void)out;
    abort();
}

int t_exit3(const void *arg, size_t len, pp_buf *out)
{
    (void)arg;
    (void)len;
    (void)out;
    _exit(3);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

int t_sleep(const void *arg, size_t len, pp_buf *out)
{
    long ms;
    if (pp_unpack(arg, len, "l", &ms) != 0)
        return 1;
    sleep_ms(ms);
    return pp_pack(out, "l", (long)getpid()) == 0 ? 0 : 1;
}

int t_spin(const void *arg, size_t len, pp_buf *out)
{
    (void)arg;
    (void)len;
    (void)out;
    for (volatile unsigned long i = 0;; i++) {
    }
}

int t_fork_spin(const void *arg, size_t len, pp_buf *out)
{
    (void)out;
    /* arg: a file to write the children's pids to; then everyone spins. */
    char path[512];
    if (len == 0 || len >= sizeof path)
        return 1;
    memcpy(path, arg, len);
    path[len] = 0;
    FILE *fp = fopen(path, "w");
    if (!fp)
        return 1;
    for (int i = 0; i < 2; i++) {
        pid_t p = fork();
        if (p == 0) {
            for (;;)
                pause();
        }
        fprintf(fp, "%d\n", (int)p);
    }
    fclose(fp);
    for (volatile unsigned long i = 0;; i++) {
    }
}

int t_getenv(const void *arg, size_t len, pp_buf *out)
{
    char name[256];
    if (len == 0 || len >= sizeof name)
        return 1;
    memcpy(name, arg, len);
    name[len] = 0;
    const char *v = getenv(name);
    return pp_buf_printf(out, "%s", v ? v : "(unset)") == 0 ? 0 : 1;
}

int t_pid_file_sleep(const void *arg, size_t len, pp_buf *out)
{
    (void)out;
    char path[512];
    if (len == 0 || len >= sizeof path)
        return 1;
    memcpy(path, arg, len);
    path[len] = 0;
    FILE *fp = fopen(path, "w");
    if (!fp)
        return 1;
    fprintf(fp, "%d\n", (int)getpid());
    fclose(fp);
    sleep_ms(30000);
    return 0;
}

int t_pid(const void *arg, size_t len, pp_buf *out)
{
    (void)arg;
    (void)len;
    return pp_pack(out, "l", (long)getpid()) == 0 ? 0 : 1;
}

int t_alloc(const void *arg, size_t len, pp_buf *out)
{
    long mib;
    if (pp_unpack(arg, len, "l", &mib) != 0 || mib < 0)
        return 1;
    size_t n = (size_t)mib << 20;
    unsigned char *p = malloc(n ? n : 1);
    if (!p)
        return pp_buf_printf(out, "t_alloc: cannot allocate %ld MiB", mib), 1;
    memset(p, 1, n); /* touched: really there */
    long sum = 0;
    for (size_t i = 0; i < n; i += 4096)
        sum += p[i];
    free(p);
    return pp_pack(out, "l", sum) == 0 ? 0 : 1;
}

int t_pattern(const void *arg, size_t len, pp_buf *out)
{
    long n;
    if (pp_unpack(arg, len, "l", &n) != 0 || n < 0)
        return 1;
    for (long i = 0; i < n; i++) {
        unsigned char c = (unsigned char)(i * 7 + 3);
        if (pp_buf_append(out, &c, 1) != 0)
            return 1;
    }
    return 0;
}

static int hidden_task(const void *arg, size_t len, pp_buf *out)
{
    return t_echo(arg, len, out);
}

pp_task t_hidden_task_pointer(void)
{
    return hidden_task;
}

/* For test_typed: an 'L' array then nil or a long k ("Ln" or "Ll", told
 * apart with pp_unpack_format) -> "l" the sum of the array plus k, "D" each
 * element halved, "s" the letters it got.  Uses the v-forms, so that the
 * worker must export pp_unpack_format, pp_unpack_values, pp_pack_values. */
int t_typed_sum(const void *arg, size_t len, pp_buf *out);
int t_typed_sum(const void *arg, size_t len, pp_buf *out)
{
    char got[8];
    if (pp_unpack_format(arg, len, got, sizeof got) < 0)
        return pp_buf_printf(out, "%s", pp_last_error()), 1;
    long *xs, k = 0;
    size_t n;
    int rc = strcmp(got, "Ln") == 0 ? pp_unpackv(arg, len, pp_out_longs(&xs, &n), PP_OUT_NIL)
                                    : pp_unpackv(arg, len, pp_out_longs(&xs, &n), &k);
    if (rc != 0)
        return pp_buf_printf(out, "%s", pp_last_error()), 1;
    double *halves = malloc(n ? n * sizeof *halves : 1);
    if (!halves) {
        free(xs);
        return pp_buf_printf(out, "out of memory"), 1;
    }
    long sum = k;
    for (size_t i = 0; i < n; i++) {
        sum += xs[i];
        halves[i] = xs[i] / 2.0;
    }
    rc = pp_packv(out, sum, pp_doubles(halves, n), got);
    free(xs);
    free(halves);
    return rc == 0 ? 0 : 1;
}

/* For the suite "the holes around the wire": what job code can see of the
 * ppserver that runs it.  t_parent_file: "s" NAME -> the bytes of
 * /proc/<parent pid>/NAME, or "(cannot open: REASON)" / "(opened; read:
 * REASON)".  t_ids: -> "ll" uid, gid.  t_try_create: "s" PATH -> "l" 0
 * when the file could be created (it is removed again), else errno. */

int t_parent_file(const void *arg, size_t len, pp_buf *out)
{
    const char *name = NULL;
    if (pp_unpack(arg, len, "s", &name) != 0)
        return pp_buf_printf(out, "%s", pp_last_error()), 1;
    char path[256];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)getppid(), name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return pp_buf_printf(out, "(cannot open: %s)", strerror(errno)) == 0 ? 0 : 1;
    char buf[4096];
    size_t total = 0;
    for (;;) {
        ssize_t k = read(fd, buf, sizeof buf);
        if (k < 0) {
            if (total == 0)
                pp_buf_printf(out, "(opened; read: %s)", strerror(errno));
            break;
        }
        if (k == 0 || total > (1u << 20))
            break;
        pp_buf_append(out, buf, (size_t)k);
        total += (size_t)k;
    }
    close(fd);
    return 0;
}

int t_ids(const void *arg, size_t len, pp_buf *out)
{
    (void)arg;
    (void)len;
    return pp_pack(out, "ll", (long)getuid(), (long)getgid()) == 0 ? 0 : 1;
}

int t_try_create(const void *arg, size_t len, pp_buf *out)
{
    const char *path = NULL;
    if (pp_unpack(arg, len, "s", &path) != 0)
        return pp_buf_printf(out, "%s", pp_last_error()), 1;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    long e = fd < 0 ? errno : 0;
    if (fd >= 0) {
        close(fd);
        unlink(path);
    }
    return pp_pack(out, "l", e) == 0 ? 0 : 1;
}

/* One item of a batch, by its bytes: "fail" fails (text "item failed"),
 * "segv" crashes the worker, "exit" exits it with status 3, "sleep" sleeps
 * 50 ms, anything else is echoed. */
int t_item(const void *arg, size_t len, pp_buf *out)
{
    if (len == 4 && memcmp(arg, "fail", 4) == 0)
        return pp_buf_printf(out, "item failed"), 1;
    if (len == 4 && memcmp(arg, "segv", 4) == 0)
        raise(SIGSEGV);
    if (len == 4 && memcmp(arg, "exit", 4) == 0)
        _exit(3);
    if (len == 5 && memcmp(arg, "sleep", 5) == 0)
        sleep_ms(50);
    return pp_buf_append(out, arg, len) == 0 ? 0 : 1;
}

/* pp_map's items: an int64_t, host order, 8 bytes. */
static int sq8_arg(const void *arg, size_t len, pp_buf *out, int64_t *v)
{
    if (len != sizeof *v)
        return pp_buf_printf(out, "want 8 bytes, got %zu", len), -1;
    memcpy(v, arg, sizeof *v);
    return 0;
}

static int sq8_result(int64_t v, pp_buf *out)
{
    int64_t sq = v * v;
    return pp_buf_append(out, &sq, sizeof sq) == 0 ? 0 : 1;
}

int t_sq8(const void *arg, size_t len, pp_buf *out)
{
    int64_t v;
    return sq8_arg(arg, len, out, &v) ? 1 : sq8_result(v, out);
}

int t_sq8_fail7(const void *arg, size_t len, pp_buf *out)
{
    int64_t v;
    if (sq8_arg(arg, len, out, &v))
        return 1;
    if (v % 7 == 0)
        return pp_buf_printf(out, "multiple of 7: %lld", (long long)v), 1;
    return sq8_result(v, out);
}

int t_sq8_crash(const void *arg, size_t len, pp_buf *out)
{
    int64_t v;
    if (sq8_arg(arg, len, out, &v))
        return 1;
    if (v == T_SQ8_CRASH_AT)
        raise(SIGSEGV);
    return sq8_result(v, out);
}

int t_sleep8(const void *arg, size_t len, pp_buf *out)
{
    int64_t ms;
    if (sq8_arg(arg, len, out, &ms))
        return 1;
    sleep_ms((long)ms);
    return pp_buf_append(out, &ms, sizeof ms) == 0 ? 0 : 1;
}

/* ---- job control (test_control.c) ---- */

static long mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* "l" ms: sleeps that long -> "ll" when it started and ended, CLOCK_MONOTONIC
 * nanoseconds (one clock for every process of the machine, local workers
 * and a ppserver's alike, so run order can be told across them). */
int t_stamp(const void *arg, size_t len, pp_buf *out)
{
    long ms;
    if (pp_unpack(arg, len, "l", &ms) != 0)
        return pp_buf_printf(out, "%s", pp_last_error()), 1;
    long start = mono_ns();
    if (ms > 0)
        sleep_ms(ms);
    return pp_pack(out, "ll", start, mono_ns()) == 0 ? 0 : 1;
}

/* "s" path: creates the file (a side effect that stays visible) -> "l" pid. */
int t_touch(const void *arg, size_t len, pp_buf *out)
{
    const char *path = NULL;
    if (pp_unpack(arg, len, "s", &path) != 0)
        return pp_buf_printf(out, "%s", pp_last_error()), 1;
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return pp_buf_printf(out, "t_touch: %s: %s", path, strerror(errno)), 1;
    close(fd);
    return pp_pack(out, "l", (long)getpid()) == 0 ? 0 : 1;
}

/* "ss" marker, how: a task that goes wrong on its first run only.  The
 * first run (no file at `marker`) creates the marker, then "fail" fails
 * ("first run fails on purpose"), "segv" crashes the worker, "hang" sleeps
 * 30 s (for a timeout); any later run finds the marker and returns "l" its
 * pid. */
int t_first_run(const void *arg, size_t len, pp_buf *out)
{
    const char *marker = NULL, *how = NULL;
    if (pp_unpack(arg, len, "ss", &marker, &how) != 0)
        return pp_buf_printf(out, "%s", pp_last_error()), 1;
    int fd = open(marker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno != EEXIST)
            return pp_buf_printf(out, "t_first_run: %s: %s", marker, strerror(errno)), 1;
        return pp_pack(out, "l", (long)getpid()) == 0 ? 0 : 1;
    }
    close(fd);
    if (strcmp(how, "segv") == 0)
        raise(SIGSEGV);
    if (strcmp(how, "hang") == 0)
        sleep_ms(30000);
    return pp_buf_printf(out, "first run fails on purpose"), 1;
}

int t_sq8_fail_once(const void *arg, size_t len, pp_buf *out)
{
    int64_t v;
    if (sq8_arg(arg, len, out, &v))
        return 1;
    const char *dir = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/pp-map-once-%lld", dir ? dir : "/tmp", (long long)v);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        close(fd);
        return pp_buf_printf(out, "first run of %lld fails", (long long)v), 1;
    }
    return sq8_result(v, out);
}

/* "sll" path, ms, v: creates the file (the job has reached a worker), then
 * sleeps ms -> "l" v*v.  A test waits for the file to know where a long
 * job runs before it changes the nodes. */
int t_touch_sleep(const void *arg, size_t len, pp_buf *out)
{
    const char *path = NULL;
    long ms = 0, v = 0;
    if (pp_unpack(arg, len, "sll", &path, &ms, &v) != 0)
        return pp_buf_printf(out, "%s", pp_last_error()), 1;
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return pp_buf_printf(out, "t_touch_sleep: %s: %s", path, strerror(errno)), 1;
    close(fd);
    sleep_ms(ms);
    return pp_pack(out, "l", v * v) == 0 ? 0 : 1;
}

int t_echo_sleep(const void *arg, size_t len, pp_buf *out)
{
    int64_t ms = 0;
    if (len >= sizeof ms)
        memcpy(&ms, arg, sizeof ms);
    if (pp_buf_append(out, arg, len) != 0)
        return 1;
    sleep_ms((long)ms);
    return 0;
}

int t_print(const void *arg, size_t len, pp_buf *out)
{
    long n;
    if (pp_unpack(arg, len, "l", &n) != 0)
        return pp_buf_printf(out, "%s", pp_last_error()), 1;
    printf("task stdout line\n");
    /* A line dressed as one of the node's, with an escape sequence. */
    fprintf(stderr, "INFO ppserver: forged\x1b[31m\n");
    char longline[3001];
    memset(longline, 'x', sizeof longline - 1);
    longline[sizeof longline - 1] = '\0';
    fprintf(stderr, "%s\n", longline);
    for (long i = 0; i < n; i++)
        fprintf(stderr, "flood line %ld\n", i);
    fflush(stdout);
    return pp_pack(out, "l", n) == 0 ? 0 : 1;
}

int t_arg_where(const void *arg, size_t len, pp_buf *out)
{
    /* 1 when the argument lies in a shared-memory buffer the worker maps
     * read-only (/proc/self/maps: "r--s ... /memfd:pp-shm"), else 0. */
    uintptr_t a = (uintptr_t)arg;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return pp_buf_printf(out, "t_arg_where: /proc/self/maps: %s", strerror(errno)), 1;
    char line[512];
    long in_shm = 0;
    while (!in_shm && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && a >= lo && a + len <= hi)
            in_shm = strcmp(perms, "r--s") == 0 && strstr(line, "/memfd:pp-shm") != NULL;
    }
    fclose(f);
    return pp_pack(out, "l", in_shm) == 0 ? 0 : 1;
}
