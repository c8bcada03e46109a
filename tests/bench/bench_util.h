/* SPDX-License-Identifier: MIT */
/* bench_util.h -- what the benchmark programs share: clocks, statistics,
 * one-line JSON output, number parsing, /proc readers. */
#ifndef PP_BENCH_UTIL_H
#define PP_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* CLOCK_MONOTONIC in seconds / nanoseconds. */
double bu_now(void);
int64_t bu_now_ns(void);

/* Sorts v (n values) and returns the q-quantile (0..1, nearest rank). */
double bu_quantile(double *v, size_t n, double q);

/* Parses a non-negative integer / double in [lo, hi]; prints a message
 * naming `what` and returns -1 when it is not one. */
int bu_parse_long(const char *s, long lo, long hi, const char *what, long *out);
int bu_parse_double(const char *s, double lo, double hi, const char *what, double *out);

/* Fills buf with n pseudo-random (incompressible) bytes from seed. */
void bu_random_bytes(void *buf, size_t n, uint64_t seed);

/* Reads a secret file (trailing newline stripped) into a malloc'd string. */
char *bu_read_secret(const char *path);

/* Splits "a,b,c" into a NULL-terminated malloc'd array of strings (count in
 * *n).  NULL on an empty list or no memory. */
char **bu_split_list(const char *s, int *n);
void bu_free_list(char **list);

/* VmRSS of a process in KiB ("self" for this one), or -1. */
long bu_vmrss_kb(const char *pid);

/* Sum of VmRSS and of Pss (KiB) over `pid` and all its descendants; the
 * number of processes in *nproc.  -1 when pid does not exist. */
int bu_tree_mem(pid_t pid, long *rss_kb, long *pss_kb, int *nproc);

/* One JSON object on one line: bu_json_begin(), fields, bu_json_end(). */
void bu_json_begin(void);
void bu_json_str(const char *key, const char *val);
void bu_json_long(const char *key, long long val);
void bu_json_num(const char *key, double val);
void bu_json_end(void);

#endif
