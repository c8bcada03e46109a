/* SPDX-License-Identifier: MIT */
/* pp_spawn.c -- starting and ending ppworker processes (see pp_spawn.h). */
#include "pp_spawn.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pp_common.h"

/* ---- environment ---- */

/* Workers get only these variables: job code never sees the secret. */
static const char *const env_keep[] = {
    "PATH", "LD_LIBRARY_PATH", "HOME", "TMPDIR", "TZ", "LANG", "LC_ALL",
    "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS",
};

char **pp_spawn_env(const char *const *extra)
{
    size_t nextra = 0;
    while (extra && extra[nextra])
        nextra++;
    char **env = calloc(PP_ARRAY_LEN(env_keep) + nextra + 1, sizeof *env);
    if (!env)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < PP_ARRAY_LEN(env_keep) + nextra; i++) {
        const char *name = i < PP_ARRAY_LEN(env_keep) ? env_keep[i]
                                                      : extra[i - PP_ARRAY_LEN(env_keep)];
        int dup = 0;
        for (size_t k = 0; k < i && !dup; k++)
            dup = strcmp(name, k < PP_ARRAY_LEN(env_keep)
                                   ? env_keep[k]
                                   : extra[k - PP_ARRAY_LEN(env_keep)]) == 0;
        const char *v = dup ? NULL : getenv(name);
        if (!v && !dup && strcmp(name, "PATH") == 0)
            v = "/usr/local/bin:/usr/bin:/bin";
        if (!v)
            continue;
        size_t len = strlen(name) + strlen(v) + 2;
        env[n] = malloc(len);
        if (!env[n])
            goto fail;
        snprintf(env[n], len, "%s=%s", name, v);
        n++;
    }
    return env;
fail:
    for (size_t i = 0; i < n; i++)
        free(env[i]);
    free(env);
    return NULL;
}

int pp_spawn_env_name_ok(const char *name, char *err)
{
    if (!name[0] || strlen(name) > 255 || strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                      "abcdefghijklmnopqrstuvwxyz"
                                                      "0123456789_") != strlen(name)) {
        pp_seterr(err, "\"%.64s\" is not an environment variable name", name);
        return -1;
    }
    if (strncmp(name, "PP_SECRET", 9) == 0) {
        pp_seterr(err, "%s is never passed to workers: job code must not see the secret",
                  name);
        return -1;
    }
    return 0;
}

void pp_spawn_env_free(char **env)
{
    if (!env)
        return;
    for (char **e = env; *e; e++)
        free(*e);
    free(env);
}

/* ---- worker lifecycle ---- */

/* ---- FIFOs ---- */

/* The worker's channel: a request and a response FIFO made in a private
 * 0700 directory, and the shared state page (a memfd).  Both ends of both
 * FIFOs are opened here, then the names are removed at once: the worker
 * inherits its ends (fds 3, 4, 5), so no name outlives this call, whenever
 * the program is killed afterwards.  Only a kill landing inside these few
 * calls can leave the directory, which the next pool of this user removes
 * (pp_spawn_sweep).  fds: our read end, our write end, then the worker's
 * request, response and state fds. */
static int make_channel(const char *tmpdir, int fds[5], char *err)
{
    char dir[PATH_MAX], req[PATH_MAX + 8], resp[PATH_MAX + 8];
    int rc = -1;
    for (int i = 0; i < 5; i++)
        fds[i] = -1;
    char q[200]; /* $TMPDIR in a message: quoted, and short enough to leave the reason */
    if (snprintf(dir, sizeof dir, "%s/pp-%d-XXXXXX", tmpdir, (int)getpid()) >=
        (int)sizeof dir) {
        pp_seterr(err, "the FIFO directory path in %s is too long",
                  pp_quote(tmpdir, strlen(tmpdir), q, sizeof q));
        return -1;
    }
    if (!mkdtemp(dir)) { /* mode 0700 */
        int e = errno;
        pp_seterr(err, "cannot create a FIFO directory in %s: %s",
                  pp_quote(tmpdir, strlen(tmpdir), q, sizeof q), strerror(e));
        return -1;
    }
    snprintf(req, sizeof req, "%s/req", dir);
    snprintf(resp, sizeof resp, "%s/resp", dir);
    if (mkfifo(req, 0600) != 0 || mkfifo(resp, 0600) != 0) {
        pp_seterr(err, "mkfifo in %s: %s", dir, strerror(errno));
        goto out;
    }
    /* Readers first, so that no open() blocks.  We hold the request FIFO
     * read-write: writing to it never raises SIGPIPE in the program. */
    fds[2] = open(req, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    fds[0] = open(resp, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    fds[1] = open(req, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    fds[3] = open(resp, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fds[0] < 0 || fds[1] < 0 || fds[2] < 0 || fds[3] < 0) {
        pp_seterr(err, "cannot open the FIFOs in %s: %s", dir, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    unlink(req);
    unlink(resp);
    rmdir(dir);
    if (rc != 0)
        return -1;
    /* The worker's ends block; ours do not. */
    if (fcntl(fds[2], F_SETFL, 0) != 0 || fcntl(fds[3], F_SETFL, 0) != 0) {
        pp_seterr(err, "cannot set up the FIFOs: %s", strerror(errno));
        return -1;
    }
    (void)fcntl(fds[1], F_SETPIPE_SZ, 1 << 20); /* fewer wake-ups for large arguments */
    (void)fcntl(fds[0], F_SETPIPE_SZ, 1 << 20);
    fds[4] = memfd_create("pp-worker-state", MFD_CLOEXEC);
    if (fds[4] < 0 || ftruncate(fds[4], sizeof(pp_worker_state)) != 0) {
        pp_seterr(err, "cannot create the worker's state page: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static void close_fds(int *fds, int n)
{
    for (int i = 0; i < n; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}

/* Whether `name` is a FIFO directory name: "pp-PID-XXXXXX"; its pid. */
static int fifo_dir_pid(const char *name)
{
    int pid = 0, end = 0;
    if (sscanf(name, "pp-%d-%*6[A-Za-z0-9]%n", &pid, &end) != 1 || end == 0 || name[end] ||
        strlen(name) < 11 || pid <= 0)
        return -1;
    return pid;
}

void pp_spawn_sweep(const char *tmpdir, const pp_log *log)
{
    int dfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        if (dfd >= 0)
            close(dfd);
        return;
    }
    int swept = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int pid = fifo_dir_pid(e->d_name);
        if (pid < 0 || pid == (int)getpid() || kill(pid, 0) == 0 || errno != ESRCH)
            continue; /* not ours to judge, or its process lives */
        int fd = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (fd < 0)
            continue;
        if (fstat(fd, &st) == 0 && st.st_uid == geteuid() && (st.st_mode & 0777) == 0700) {
            static const char *const names[] = {"req", "resp", "state"};
            for (size_t i = 0; i < PP_ARRAY_LEN(names); i++) {
                struct stat fst;
                if (fstatat(fd, names[i], &fst, AT_SYMLINK_NOFOLLOW) == 0 &&
                    (S_ISFIFO(fst.st_mode) || S_ISREG(fst.st_mode)))
                    unlinkat(fd, names[i], 0);
            }
            swept += unlinkat(dfd, e->d_name, AT_REMOVEDIR) == 0;
        }
        close(fd);
    }
    closedir(d);
    if (swept)
        pp_log(log, PP_LOG_INFO, "removed %d FIFO director%s left in %s by processes that "
                                 "were killed", swept, swept == 1 ? "y" : "ies", tmpdir);
}

/* ppworker's command line into argv (NULL-terminated), the numbers in it
 * written into nums. */
static void worker_argv(const pp_spawn_opts *o, char nums[4][48], char *argv[10])
{
    snprintf(nums[0], sizeof nums[0], "%d", (int)getpid());
    snprintf(nums[1], sizeof nums[1], "%u", o->max_frame);
    snprintf(nums[2], sizeof nums[2], "%u", o->job_memory_mib);
    snprintf(nums[3], sizeof nums[3], "%u:%u", (unsigned)o->uid, (unsigned)o->gid);
    int n = 0;
    argv[n++] = (char *)o->worker_path;
    argv[n++] = "--parent";
    argv[n++] = nums[0];
    argv[n++] = "--max-frame";
    argv[n++] = nums[1];
    if (o->job_memory_mib) {
        argv[n++] = "--max-memory-mib";
        argv[n++] = nums[2];
    }
    if (o->user_set) { /* it changes user itself, before it loads any module */
        argv[n++] = "--user";
        argv[n++] = nums[3];
    }
    argv[n] = NULL;
}

/* The worker's fds (pp_spawn_worker() above), in this order: 1 and 2
 * before the channel's 3 to 6, which may be where output_fd sits. */
static void child_fds(posix_spawn_file_actions_t *fa, const pp_spawn_opts *o, const int *fds)
{
    posix_spawn_file_actions_addopen(fa, 0, "/dev/null", O_RDONLY, 0);
    if (o->output_fd > 2) {
        posix_spawn_file_actions_adddup2(fa, o->output_fd, 1);
        posix_spawn_file_actions_adddup2(fa, o->output_fd, 2);
    }
    posix_spawn_file_actions_adddup2(fa, fds[2], PP_WORKER_FD_REQ);
    posix_spawn_file_actions_adddup2(fa, fds[3], PP_WORKER_FD_RESP);
    posix_spawn_file_actions_adddup2(fa, fds[4], PP_WORKER_FD_STATE);
    posix_spawn_file_actions_adddup2(fa, fds[5], PP_WORKER_FD_SHM);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    posix_spawn_file_actions_addclosefrom_np(fa, 7); /* the application's fds stay home */
#endif
}

int pp_spawn_worker(const pp_spawn_opts *o, pp_worker_proc *out, char *err)
{
    /* fds 0-4 as make_channel() says, 5 and 6: the worker's end of the
     * buffer socket, and ours. */
    int fds[7] = {-1, -1, -1, -1, -1, -1, -1};
    *out = (pp_worker_proc){.pid = -1, .pidfd = -1, .rfd = -1, .wfd = -1, .sfd = -1};
    if (make_channel(o->tmpdir, fds, err) != 0)
        goto fail;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds + 5) != 0 ||
        fcntl(fds[6], F_SETFL, O_NONBLOCK) != 0) {
        pp_seterr(err, "cannot create the worker's buffer socket: %s", strerror(errno));
        goto fail;
    }
    void *map = mmap(NULL, sizeof *out->st, PROT_READ | PROT_WRITE, MAP_SHARED, fds[4], 0);
    if (map == MAP_FAILED) {
        pp_seterr(err, "cannot map the worker's state page: %s", strerror(errno));
        goto fail;
    }
    out->st = map;
    /* The worker's fds go to 3 to 6; none of ours may sit there first. */
    for (int i = 2; i < 7; i++) {
        if (fds[i] < 7) {
            int moved = fcntl(fds[i], F_DUPFD_CLOEXEC, 7);
            if (moved < 0) {
                pp_seterr(err, "cannot set up the worker's fds: %s", strerror(errno));
                goto fail;
            }
            close(fds[i]);
            fds[i] = moved;
        }
    }
    char nums[4][48], *argv[10];
    worker_argv(o, nums, argv);

    posix_spawnattr_t attr;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_init(&fa);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    /* Own process group (a timeout kills the task's children too), default
     * signal dispositions and an empty mask whatever the application set. */
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    child_fds(&fa, o, fds);
    pid_t pid;
    int e = posix_spawn(&pid, o->worker_path, &fa, &attr, argv, o->envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close_fds(fds + 2, 4); /* the worker's now */
    if (e != 0) {
        pp_seterr(err, "cannot start worker %s: %s", o->worker_path, strerror(e));
        goto fail;
    }
    out->pid = pid;
    out->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    out->rfd = fds[0];
    out->wfd = fds[1];
    out->sfd = fds[6];
    return 0;
fail:
    close_fds(fds, 7);
    if (out->st)
        munmap(out->st, sizeof *out->st);
    out->st = NULL;
    return -1;
}

void pp_spawn_end(pp_worker_proc *w, char *desc, size_t desclen)
{
    if (w->pid > 0) {
        kill(-w->pid, SIGKILL); /* the task's children too */
        kill(w->pid, SIGKILL);
        int st = 0;
        pid_t r;
        while ((r = waitpid(w->pid, &st, 0)) < 0 && errno == EINTR) {
        }
        if (r == w->pid)
            pp_describe_exit(st, desc, desclen);
        else
            snprintf(desc, desclen, "worker %d ended (exit status unknown)", (int)w->pid);
        w->pid = -1;
    }
    if (w->pidfd >= 0)
        close(w->pidfd);
    w->pidfd = -1;
}

void pp_spawn_unmap(pp_worker_proc *w)
{
    if (w->st)
        munmap(w->st, sizeof *w->st);
    w->st = NULL;
}

static char *try_path(const char *path)
{
    return access(path, X_OK) == 0 ? realpath(path, NULL) : NULL;
}

/* Looks for ppworker around the directory of `file`. */
static char *near(const char *file)
{
    static const char *const rel[] = {"/ppworker", "/../bin/ppworker",
                                      "/../libexec/pp/ppworker", "/../../bin/ppworker",
                                      "/../../libexec/pp/ppworker"};
    char *real = file && *file ? realpath(file, NULL) : NULL;
    char *slash = real ? strrchr(real, '/') : NULL;
    char *found = NULL;
    if (slash) {
        *slash = 0;
        for (size_t i = 0; i < PP_ARRAY_LEN(rel) && !found; i++) {
            char path[PATH_MAX + 64];
            snprintf(path, sizeof path, "%s%s", real, rel[i]);
            found = try_path(path);
        }
    }
    free(real);
    return found;
}

char *pp_spawn_find_worker(const char *configured, char *err)
{
    if (configured && *configured) {
        char *p = try_path(configured);
        if (!p)
            pp_seterr(err, "the configured worker %s is not an executable file", configured);
        return p;
    }
    const char *env = getenv("PP_WORKER");
    if (env && *env) {
        char *p = try_path(env);
        if (!p)
            pp_seterr(err, "PP_WORKER=%s is not an executable file", env);
        return p;
    }
    /* Beside this code: libpp.so in build/lib or PREFIX/lib[/ARCH]; a
     * static libpp or ppserver: the program in build/bin or PREFIX/bin. */
    Dl_info info;
    void *self;
    char *(*fn)(const char *, char *) = pp_spawn_find_worker;
    memcpy(&self, &fn, sizeof self);
    char *p = dladdr(self, &info) ? near(info.dli_fname) : NULL;
    if (!p)
        p = near("/proc/self/exe");
#ifdef PP_INSTALL_WORKER
    if (!p)
        p = try_path(PP_INSTALL_WORKER);
#endif
    if (!p)
        pp_seterr(err, "cannot find the ppworker executable beside libpp or the program; set "
                       "PP_WORKER to its path");
    return p;
}
