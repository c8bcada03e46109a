/* SPDX-License-Identifier: MIT */
/* bench_util.c -- see bench_util.h. */
#include "bench_util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double bu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int64_t bu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bu_quantile(double *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    double r = ceil(q * (double)n);
    size_t k = r < 1 ? 0 : (size_t)r - 1;
    return v[k < n ? k : n - 1];
}

int bu_parse_long(const char *s, long lo, long hi, const char *what, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "%s: \"%s\" is not a number in %ld..%ld\n", what, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int bu_parse_double(const char *s, double lo, double hi, const char *what, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "%s: \"%s\" is not a number in %g..%g\n", what, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

void bu_random_bytes(void *buf, size_t n, uint64_t seed)
{
    uint64_t x = seed ? seed : 0x2545F4914F6CDD1DULL;
    unsigned char *p = buf;
    size_t i = 0;
    while (i < n) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t k = n - i < sizeof x ? n - i : sizeof x;
        memcpy(p + i, &x, k);
        i += k;
    }
}

char *bu_read_secret(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        fprintf(stderr, "--secret-file %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = 0;
    while (n > 0 && isspace((unsigned char)buf[n - 1]))
        buf[--n] = 0;
    if (n == 0) {
        fprintf(stderr, "--secret-file %s: empty\n", path);
        return NULL;
    }
    char *s = strdup(buf);
    memset(buf, 0, sizeof buf);
    return s;
}

char **bu_split_list(const char *s, int *n)
{
    size_t cap = 2;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    char **list = calloc(cap, sizeof *list);
    char *copy = strdup(s);
    if (!list || !copy) {
        free(list);
        free(copy);
        return NULL;
    }
    int k = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (!*tok)
            continue;
        list[k] = strdup(tok);
        if (!list[k])
            break;
        k++;
    }
    free(copy);
    if (k == 0) {
        free(list);
        return NULL;
    }
    *n = k;
    return list;
}

void bu_free_list(char **list)
{
    if (!list)
        return;
    for (char **p = list; *p; p++)
        free(*p);
    free(list);
}

/* The value in KiB of the "Key:   123 kB" line of a /proc file, or -1. */
static long proc_kb(const char *path, const char *key)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return -1;
    char line[256];
    size_t klen = strlen(key);
    long v = -1;
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            v = strtol(line + klen + 1, NULL, 10);
            break;
        }
    }
    fclose(fp);
    return v;
}

long bu_vmrss_kb(const char *pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%s/status", pid);
    return proc_kb(path, "VmRSS");
}

/* The parent of a process, from /proc/PID/stat, or -1. */
static pid_t parent_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = 0;
    char *rp = strrchr(buf, ')'); /* the command name may hold anything */
    int ppid;
    char state;
    if (!rp || sscanf(rp + 1, " %c %d", &state, &ppid) != 2)
        return -1;
    return (pid_t)ppid;
}

#define MAX_PROCS 65536

int bu_tree_mem(pid_t pid, long *rss_kb, long *pss_kb, int *nproc)
{
    pid_t *pids = malloc(MAX_PROCS * sizeof *pids);
    pid_t *ppids = malloc(MAX_PROCS * sizeof *ppids);
    char *in = calloc(MAX_PROCS, 1);
    if (!pids || !ppids || !in) {
        free(pids);
        free(ppids);
        free(in);
        return -1;
    }
    size_t n = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) && n < MAX_PROCS) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        pid_t p = (pid_t)atoi(e->d_name);
        pid_t pp = parent_of(p);
        if (pp < 0)
            continue;
        pids[n] = p;
        ppids[n] = pp;
        n++;
    }
    if (d)
        closedir(d);
    int found = 0;
    for (size_t i = 0; i < n; i++)
        if (pids[i] == pid)
            in[i] = 1, found = 1;
    /* Mark descendants: repeat until nothing changes (depth-bounded by n). */
    for (size_t pass = 0, changed = 1; changed && pass < n; pass++) {
        changed = 0;
        for (size_t i = 0; i < n; i++) {
            if (in[i])
                continue;
            for (size_t k = 0; k < n; k++)
                if (in[k] && pids[k] == ppids[i]) {
                    in[i] = 1;
                    changed = 1;
                    break;
                }
        }
    }
    long rss = 0, pss = 0;
    int cnt = 0;
    for (size_t i = 0; found && i < n; i++) {
        if (!in[i])
            continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/status", (int)pids[i]);
        long r = proc_kb(path, "VmRSS");
        snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pids[i]);
        long p = proc_kb(path, "Pss");
        if (r < 0)
            continue;
        rss += r;
        pss += p > 0 ? p : 0;
        cnt++;
    }
    free(pids);
    free(ppids);
    free(in);
    if (!found || cnt == 0)
        return -1;
    *rss_kb = rss;
    *pss_kb = pss;
    *nproc = cnt;
    return 0;
}

/* ---- JSON ---- */

static int json_first;

void bu_json_begin(void)
{
    fputc('{', stdout);
    json_first = 1;
}

static void json_key(const char *key)
{
    if (!json_first)
        fputc(',', stdout);
    json_first = 0;
    printf("\"%s\":", key);
}

void bu_json_str(const char *key, const char *val)
{
    json_key(key);
    fputc('"', stdout);
    for (const unsigned char *p = (const unsigned char *)val; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            fputc(*p, stdout);
    }
    fputc('"', stdout);
}

void bu_json_long(const char *key, long long val)
{
    json_key(key);
    printf("%lld", val);
}

void bu_json_num(const char *key, double val)
{
    json_key(key);
    if (isfinite(val))
        printf("%.6g", val);
    else
        fputs("null", stdout);
}

void bu_json_end(void)
{
    fputs("}\n", stdout);
    fflush(stdout);
}
