/* SPDX-License-Identifier: MIT */
/* test_util.c -- helpers the suites share. */
#include "test_util.h"

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

int proc_stat(const char *pid, char *name, size_t namelen, int *ppid)
{
    char path[300], buf[512];
    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return -1;
    size_t k = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[k] = 0;
    char *open = strchr(buf, '('), *close = strrchr(buf, ')'); /* names hold anything */
    char state;
    if (!open || !close || close < open || sscanf(close + 1, " %c %d", &state, ppid) != 2)
        return -1;
    snprintf(name, namelen, "%.*s", (int)(close - open - 1), open + 1);
    return 0;
}

int count_children(const char *prefix)
{
    DIR *d = opendir("/proc");
    if (!d)
        return -1;
    int n = 0, me = (int)getpid();
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char name[64];
        int ppid;
        if (proc_stat(e->d_name, name, sizeof name, &ppid) == 0 && ppid == me &&
            (!prefix || strncmp(name, prefix, strlen(prefix)) == 0))
            n++;
    }
    closedir(d);
    return n;
}

int wait_children(const char *prefix, int want, double limit)
{
    double end = now_s() + limit;
    int n;
    while ((n = count_children(prefix)) != want && now_s() < end)
        sleep_s(0.02);
    return n;
}

int parent_of(int pid)
{
    char id[24], name[64];
    int ppid;
    snprintf(id, sizeof id, "%d", pid);
    return proc_stat(id, name, sizeof name, &ppid) == 0 ? ppid : -1;
}

int wait_pid(int pid, int *status, double limit)
{
    int st = 0, done = 0;
    double end = now_s() + limit;
    while (!(done = waitpid(pid, &st, WNOHANG) == pid) && now_s() < end)
        sleep_s(0.01);
    if (done && status)
        *status = st;
    return done;
}

int tmpdir_make(char *dir, size_t cap, const char *tag)
{
    int n = snprintf(dir, cap, "/tmp/pp-test-%s-XXXXXX", tag);
    if (n < 0 || (size_t)n >= cap || !mkdtemp(dir)) {
        if (cap)
            dir[0] = 0;
        return -1;
    }
    return setenv("TMPDIR", dir, 1);
}

int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static int rm_failed;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    if (remove(path) != 0)
        rm_failed = 1;
    return 0; /* go on: remove what can go */
}

int rm_tree(const char *dir)
{
    rm_failed = 0;
    if (nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return -1;
    return rm_failed ? -1 : 0;
}

/* The capture (tests are single-threaded where they capture). */
static int saved_stderr = -1;
static char capture_path[4200];

int capture_start(const char *dir)
{
    snprintf(capture_path, sizeof capture_path, "%s/stderr-XXXXXX", dir);
    int fd = mkstemp(capture_path);
    if (fd < 0)
        return -1;
    fflush(stderr);
    saved_stderr = dup(2);
    if (saved_stderr < 0 || dup2(fd, 2) < 0) {
        close(fd);
        unlink(capture_path);
        if (saved_stderr >= 0)
            close(saved_stderr);
        saved_stderr = -1;
        return -1;
    }
    close(fd);
    return 0;
}

/* The capture file's bytes (malloc'd, NUL-terminated), or NULL. */
static char *capture_read(void)
{
    FILE *fp = fopen(capture_path, "r");
    if (!fp)
        return NULL;
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            char *t = realloc(text, cap = cap ? cap * 2 : 65536);
            if (!t)
                break;
            text = t;
        }
        size_t n = fread(text + len, 1, cap - len - 1, fp);
        len += n;
        if (n == 0)
            break;
    }
    fclose(fp);
    if (text)
        text[len] = 0;
    return text;
}

char *captured(void)
{
    fflush(stderr);
    char *text = saved_stderr >= 0 ? capture_read() : NULL;
    return text ? text : calloc(1, 1);
}

char *capture_end(void)
{
    if (saved_stderr < 0)
        return NULL;
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    saved_stderr = -1;
    char *text = capture_read();
    unlink(capture_path);
    if (text)
        fputs(text, stderr);
    return text;
}

int captured_count(const char *needle)
{
    char *text = captured();
    int n = 0;
    for (const char *p = text; p && (p = strstr(p, needle)); p++)
        n++;
    free(text);
    return n;
}

int wait_captured(const char *needle, int want, double limit)
{
    double end = now_s() + limit;
    int n;
    while ((n = captured_count(needle)) < want && now_s() < end)
        sleep_s(0.05);
    return n;
}
