/* SPDX-License-Identifier: MIT */
/* server_harness.c -- start, stop, freeze and inspect real ppserver
 * processes for the integration suites (see server_harness.h). */
#include "server_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void nap(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

const char *srv_exe(void)
{
    const char *e = getenv("PP_SERVER");
    return e && *e ? e : NULL;
}

char *srv_slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1024 > cap) {
            char *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
        size_t k = fread(buf + n, 1, cap - n - 1, fp);
        n += k;
        if (k == 0)
            break;
    }
    fclose(fp);
    if (!buf)
        return NULL;
    buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}

/* The environment for ppserver: ours without PP_SECRET and TMPDIR, then
 * TMPDIR=tmpdir (if given), PP_SECRET=secret (if given) and `extra`
 * ("NAME=VALUE" strings, or NULL).  The strings are owned by the caller's
 * arrays (freed with free_env). */
static char **make_env(const char *tmpdir, const char *secret, const char *const *extra)
{
    size_t n = 0;
    for (char **e = environ; *e; e++)
        n++;
    for (const char *const *e = extra; e && *e; e++)
        n++;
    char **env = calloc(n + 3, sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, "PP_SECRET=", 10) == 0 || (tmpdir && strncmp(*e, "TMPDIR=", 7) == 0))
            continue;
        env[k++] = strdup(*e);
    }
    if (tmpdir) {
        size_t l = strlen(tmpdir) + 8;
        env[k] = malloc(l);
        if (env[k])
            snprintf(env[k++], l, "TMPDIR=%s", tmpdir);
    }
    if (secret) {
        size_t l = strlen(secret) + 11;
        env[k] = malloc(l);
        if (env[k])
            snprintf(env[k++], l, "PP_SECRET=%s", secret);
    }
    for (const char *const *e = extra; e && *e; e++)
        if ((env[k] = strdup(*e)))
            k++;
    env[k] = NULL;
    return env;
}

static void free_env(char **env)
{
    if (!env)
        return;
    for (char **e = env; *e; e++)
        free(*e);
    free(env);
}

/* fork + exec with stdout and stderr into err_path; only async-signal-safe
 * calls in the child (the test process has threads). */
static pid_t spawn(char *const argv[], char *const envp[], const char *err_path, int own_netns)
{
    int efd = open(err_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (efd < 0) {
        fprintf(stderr, "harness: cannot open %s: %s\n", err_path, strerror(errno));
        return -1;
    }
    int nfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* A test that dies without its teardown (a sanitizer's abort, a
         * CTest timeout's kill) takes its servers with it: they get
         * SIGTERM when the test process ends (servers are started from the
         * main thread, whose end is the process's). */
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
            _exit(125);
        if (nfd >= 0)
            dup2(nfd, 0);
        dup2(efd, 1);
        dup2(efd, 2);
#ifdef SYS_close_range
        if (syscall(SYS_close_range, 3u, ~0u, 0u) != 0)
#endif
            for (int fd = 3; fd < 4096; fd++)
                close(fd);
        /* Default dispositions and mask (the test ignores SIGPIPE). */
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        for (int sig = 1; sig < 32; sig++)
            if (sig != SIGKILL && sig != SIGSTOP)
                sigaction(sig, &sa, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (own_netns && unshare(CLONE_NEWNET) != 0) {
            static const char msg[] = "harness: unshare(CLONE_NEWNET) failed\n";
            (void)!write(2, msg, sizeof msg - 1);
            _exit(126);
        }
        execve(argv[0], argv, envp);
        _exit(127);
    }
    int e = errno;
    close(efd);
    if (nfd >= 0)
        close(nfd);
    if (pid < 0)
        fprintf(stderr, "harness: fork: %s\n", strerror(e));
    return pid;
}

/* Waits up to `limit` seconds for pid; 1 with *status, 0 if still running. */
static int reap_within(pid_t pid, double limit, int *status)
{
    *status = -1;
    double end = mono() + limit;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 1;
        if (r < 0 && errno != EINTR)
            return 1; /* not ours any more: nothing to wait for */
        if (mono() >= end)
            return 0;
        nap(0.01);
    }
}

static void reap_hard(pid_t pid, int *status)
{
    kill(pid, SIGKILL);
    kill(pid, SIGCONT);
    while (waitpid(pid, status, 0) < 0 && errno == EINTR) {
    }
}

int srv_run_once(const char *const *argv, const char *env_secret, double limit,
                 char **err_text)
{
    const char *exe = srv_exe();
    if (!exe)
        return -1;
    char errp[] = "/tmp/pp-srv-run-XXXXXX";
    int tfd = mkstemp(errp);
    if (tfd < 0)
        return -1;
    close(tfd);
    size_t n = 0;
    while (argv[n])
        n++;
    char **av = calloc(n + 1, sizeof *av);
    char **env = make_env(NULL, env_secret, NULL);
    int status = -1;
    if (av && env) {
        av[0] = (char *)exe;
        for (size_t i = 1; i < n; i++)
            av[i] = (char *)argv[i];
        pid_t pid = spawn(av, env, errp, 0);
        if (pid > 0 && !reap_within(pid, limit, &status)) {
            fprintf(stderr, "harness: ppserver did not exit within %g s; killed\n", limit);
            reap_hard(pid, &status);
        }
    }
    free(av);
    free_env(env);
    if (err_text)
        *err_text = srv_slurp(errp, NULL);
    unlink(errp);
    return status;
}

static void strip_nl(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = 0;
}

int srv_prepare(srv_harness *h)
{
    memset(h, 0, sizeof *h);
    snprintf(h->dir, sizeof h->dir, "/tmp/pp-srv-XXXXXX");
    if (!mkdtemp(h->dir)) {
        fprintf(stderr, "harness: mkdtemp: %s\n", strerror(errno));
        h->dir[0] = 0;
        return -1;
    }
    snprintf(h->secret_file, sizeof h->secret_file, "%s/secret", h->dir);
    snprintf(h->port_file, sizeof h->port_file, "%s/port", h->dir);
    snprintf(h->log_file, sizeof h->log_file, "%s/server.log", h->dir);
    snprintf(h->err_file, sizeof h->err_file, "%s/stderr.txt", h->dir);
    snprintf(h->cache_dir, sizeof h->cache_dir, "%s/cache", h->dir);
    const char *gen[] = {"ppserver", "--gen-secret", h->secret_file, NULL};
    char *out = NULL;
    int st = srv_run_once(gen, NULL, 20, &out);
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "harness: ppserver --gen-secret failed (status %d): %s\n", st,
                out ? out : "");
        free(out);
        return -1;
    }
    free(out);
    char *text = srv_slurp(h->secret_file, NULL);
    if (!text || strlen(text) >= sizeof h->secret) {
        free(text);
        fprintf(stderr, "harness: cannot read %s\n", h->secret_file);
        return -1;
    }
    snprintf(h->secret, sizeof h->secret, "%s", text);
    strip_nl(h->secret);
    free(text);
    return 0;
}

int srv_start(srv_harness *h, const srv_opts *opts)
{
    const char *exe = srv_exe();
    if (!exe) {
        fprintf(stderr, "harness: PP_SERVER is not set\n");
        return -1;
    }
    srv_opts none = {0};
    if (!opts)
        opts = &none;
    if (!h->dir[0] && srv_prepare(h) != 0)
        return -1;
    if (opts->share_secret && opts->share_secret != h) {
        int fd = open(h->secret_file, O_WRONLY | O_TRUNC | O_CLOEXEC);
        size_t n = strlen(opts->share_secret->secret);
        int ok = fd >= 0 && write(fd, opts->share_secret->secret, n) == (ssize_t)n &&
                 write(fd, "\n", 1) == 1;
        if (fd >= 0)
            ok &= close(fd) == 0;
        if (!ok) {
            fprintf(stderr, "harness: cannot write %s\n", h->secret_file);
            return -1;
        }
        snprintf(h->secret, sizeof h->secret, "%s", opts->share_secret->secret);
    }
    if (h->pid > 0) {
        fprintf(stderr, "harness: ppserver %d already runs\n", (int)h->pid);
        return -1;
    }
    unlink(h->port_file);
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", opts->port);
    const char *av[96];
    size_t n = 0;
    av[n++] = exe;
    av[n++] = "-i";
    av[n++] = opts->addr ? opts->addr : "127.0.0.1";
    av[n++] = "-p";
    av[n++] = portstr;
    av[n++] = "--port-file";
    av[n++] = h->port_file;
    av[n++] = "--cache-dir";
    av[n++] = h->cache_dir;
    if (!opts->no_secret_file) {
        av[n++] = "--secret-file";
        av[n++] = h->secret_file;
    }
    if (!opts->no_log_file) {
        av[n++] = "--log-file";
        av[n++] = h->log_file;
    }
    for (const char *const *a = opts->args; a && *a && n < 94; a++)
        av[n++] = *a;
    av[n] = NULL;
    char **env = make_env(h->dir, opts->env_secret, opts->env);
    if (!env)
        return -1;
    pid_t pid = spawn((char *const *)av, env, h->err_file, opts->own_netns);
    free_env(env);
    if (pid < 0)
        return -1;
    h->pid = pid;
    h->port = 0;
    double end = mono() + (opts->start_timeout > 0 ? opts->start_timeout : 20);
    while (mono() < end) {
        char *text = srv_slurp(h->port_file, NULL);
        int port = 0;
        if (text && sscanf(text, "%d", &port) == 1 && port > 0) {
            free(text);
            h->port = port;
            return 0;
        }
        free(text);
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            h->pid = 0;
            h->status = st;
            char *err = srv_read_stderr(h);
            fprintf(stderr, "harness: ppserver exited at start (status 0x%x): %s\n", st,
                    err ? err : "");
            free(err);
            return -1;
        }
        nap(0.01);
    }
    fprintf(stderr, "harness: no port file from ppserver %d in time; killed\n", (int)pid);
    reap_hard(pid, &h->status);
    h->pid = 0;
    return -1;
}

int srv_wait_exit(srv_harness *h, double limit)
{
    if (h->pid <= 0)
        return 1;
    if (reap_within(h->pid, limit, &h->status)) {
        h->pid = 0;
        return 1;
    }
    return 0;
}

int srv_stop(srv_harness *h, double limit)
{
    if (h->pid <= 0)
        return -1;
    kill(h->pid, SIGTERM);
    kill(h->pid, SIGCONT); /* a frozen server must see it too */
    if (!reap_within(h->pid, limit, &h->status)) {
        fprintf(stderr, "harness: ppserver %d ignored SIGTERM for %g s; SIGKILL\n",
                (int)h->pid, limit);
        reap_hard(h->pid, &h->status);
    }
    h->pid = 0;
    return h->status;
}

void srv_kill9(srv_harness *h)
{
    if (h->pid <= 0)
        return;
    reap_hard(h->pid, &h->status);
    h->pid = 0;
}

int srv_freeze(srv_harness *h)
{
    return h->pid > 0 ? kill(h->pid, SIGSTOP) : -1;
}

int srv_thaw(srv_harness *h)
{
    return h->pid > 0 ? kill(h->pid, SIGCONT) : -1;
}

int srv_alive(srv_harness *h)
{
    if (h->pid <= 0)
        return 0;
    int st;
    pid_t r = waitpid(h->pid, &st, WNOHANG);
    if (r == h->pid) {
        h->status = st;
        h->pid = 0;
        return 0;
    }
    return 1;
}

char *srv_read_log(const srv_harness *h)
{
    char *t = srv_slurp(h->log_file, NULL);
    return t ? t : strdup("");
}

char *srv_read_stderr(const srv_harness *h)
{
    char *t = srv_slurp(h->err_file, NULL);
    return t ? t : strdup("");
}

int srv_sanitizer_report(const srv_harness *h)
{
    char *texts[2] = {srv_read_stderr(h), srv_read_log(h)};
    int found = 0;
    for (int i = 0; i < 2; i++) {
        if (texts[i] && (strstr(texts[i], "Sanitizer") || strstr(texts[i], "runtime error"))) {
            fprintf(stderr, "\n    sanitizer report from ppserver or its workers:\n%s\n",
                    texts[i]);
            found = 1;
        }
        free(texts[i]);
    }
    return found;
}

int srv_log_count(const srv_harness *h, const char *const *needles)
{
    char *text = srv_read_log(h);
    if (!text)
        return -1;
    int n = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        int all = 1;
        for (const char *const *k = needles; *k && all; k++)
            all = strstr(line, *k) != NULL;
        n += all;
    }
    free(text);
    return n;
}

long srv_status_kb(pid_t pid, const char *field)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    char *text = srv_slurp(path, NULL);
    if (!text)
        return -1;
    long kb = -1;
    size_t fl = strlen(field);
    for (char *line = text; line && *line;) {
        if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
            kb = strtol(line + fl + 1, NULL, 10);
            break;
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    free(text);
    return kb;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP || flag == FTW_D)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

void srv_cleanup(srv_harness *h)
{
    if (h->pid > 0)
        srv_stop(h, 5);
    if (h->dir[0] && strncmp(h->dir, "/tmp/pp-srv-", 12) == 0)
        nftw(h->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    h->dir[0] = 0;
}
