/* SPDX-License-Identifier: MIT */
/* pp_common.c -- helpers shared by every module. */
#include "pp_common.h"

#include "pp.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void pp_seterr(char *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, PP_ERR_LEN, fmt, ap);
    va_end(ap);
}

void *pp_malloc_big(size_t n)
{
    void *p = malloc(n);
    enum { HUGE = 2u << 20 };
    if (p && n >= 2 * HUGE) {
        /* Only whole 2 MiB pages inside the block: the hint never covers
         * memory that is not ours. */
        uintptr_t lo = ((uintptr_t)p + HUGE - 1) & ~(uintptr_t)(HUGE - 1);
        uintptr_t hi = ((uintptr_t)p + n) & ~(uintptr_t)(HUGE - 1);
        if (hi > lo)
            (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
    }
    return p;
}

double pp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

const char *pp_signame(int sig, char buf[16])
{
    /* sigabbrev_np() is glibc 2.32+; a table keeps us portable to others. */
    static const struct { int sig; const char *name; } names[] = {
        {SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"},
        {SIGILL, "SIGILL"},   {SIGTRAP, "SIGTRAP"}, {SIGABRT, "SIGABRT"},
        {SIGBUS, "SIGBUS"},   {SIGFPE, "SIGFPE"},   {SIGKILL, "SIGKILL"},
        {SIGUSR1, "SIGUSR1"}, {SIGSEGV, "SIGSEGV"}, {SIGUSR2, "SIGUSR2"},
        {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"},
        {SIGCHLD, "SIGCHLD"}, {SIGCONT, "SIGCONT"}, {SIGSTOP, "SIGSTOP"},
        {SIGTSTP, "SIGTSTP"}, {SIGXCPU, "SIGXCPU"}, {SIGXFSZ, "SIGXFSZ"},
        {SIGSYS, "SIGSYS"},
    };
    for (size_t i = 0; i < PP_ARRAY_LEN(names); i++)
        if (names[i].sig == sig)
            return names[i].name;
    snprintf(buf, 16, "signal %d", sig);
    return buf;
}

void pp_describe_exit(int wstatus, char *out, size_t outlen)
{
    char b[16];
    if (WIFSIGNALED(wstatus)) {
        int sig = WTERMSIG(wstatus);
        snprintf(out, outlen, "worker killed by signal %d (%s)", sig, pp_signame(sig, b));
    } else if (WIFEXITED(wstatus)) {
        snprintf(out, outlen, "worker exited with status %d", WEXITSTATUS(wstatus));
    } else {
        snprintf(out, outlen, "worker ended (wait status 0x%x)", (unsigned)wstatus);
    }
}

int pp_ncpus_available(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* pp_strerror() and pp_version() belong to the public API but carry no
 * state: ppserver uses them without libpp. */
PP_API const char *pp_strerror(int status)
{
    switch (status) {
#define PP_STATUS_CASE(name, num, text)                                        \
    case num:                                                                  \
        return text;
        PP_STATUS_LIST(PP_STATUS_CASE)
#undef PP_STATUS_CASE
    default:
        return "unknown status";
    }
}

#define STR_(x) #x
#define STR(x) STR_(x)

PP_API const char *pp_version(void)
{
    return STR(PP_VERSION_MAJOR) "." STR(PP_VERSION_MINOR) "." STR(PP_VERSION_PATCH);
}

int pp_pipeline_depth(double target_s, double avg_run_s, double rtt_s)
{
    if (!(avg_run_s > 0))
        return 1;
    double d = target_s / avg_run_s;
    if (1.0 + rtt_s / avg_run_s > d)
        d = 1.0 + rtt_s / avg_run_s;
    return d >= PP_PIPELINE_MAX ? PP_PIPELINE_MAX : d <= 1.0 ? 1 : (int)ceil(d);
}

int pp_open_regular(const char *path, struct stat *st)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        errno = 0;
        return -1;
    }
    return fd;
}

ssize_t pp_read_full(int fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -1 : (ssize_t)got;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

char *pp_quote(const void *p, size_t len, char *out, size_t cap)
{
    const unsigned char *c = p;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int plain = c[i] >= 0x20 && c[i] < 0x7f && c[i] != '"' && c[i] != '\\';
        if (o + (plain ? 1 : 4) + 4 > cap) { /* then "..." and the NUL */
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (plain)
            out[o++] = (char)c[i];
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c[i]);
    }
    out[o] = 0;
    return out;
}

size_t pp_utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0], cp, min;
    size_t len;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, cp = c & 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0)
        len = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}
