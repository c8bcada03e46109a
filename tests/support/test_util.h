/* SPDX-License-Identifier: MIT */
/* test_util.h -- small helpers the suites share: time, sleeping, the
 * processes this one started, directories, and libpp's log read back. */
#ifndef PP_TEST_UTIL_H
#define PP_TEST_UTIL_H

#include <stddef.h>

/* Monotonic seconds. */
double now_s(void);
void sleep_s(double s);

/* Processes whose parent is this one (zombies included) and whose name
 * starts with prefix (NULL: any); -1 if /proc cannot be read. */
int count_children(const char *prefix);

/* Waits, at most `limit` seconds, until count_children(prefix) == want;
 * returns the last count. */
int wait_children(const char *prefix, int want, double limit);

/* The parent pid of a process, or -1. */
int parent_of(int pid);

/* /proc/PID/stat of process `pid` (a decimal string): its name (between
 * the parentheses, cut to namelen) and its ppid.  0 or -1. */
int proc_stat(const char *pid, char *name, size_t namelen, int *ppid);

/* Waits at most `limit` seconds for child `pid` to exit, its status in
 * *status (may be NULL): 1 when reaped, 0 when it still runs. */
int wait_pid(int pid, int *status, double limit);

/* Makes a private directory "/tmp/pp-test-TAG-XXXXXX" into dir (cap
 * bytes) and points TMPDIR at it (the workers' FIFO directories go
 * there).  0 or -1. */
int tmpdir_make(char *dir, size_t cap, const char *tag);

/* Entries of a directory other than "." and "..", or -1. */
int dir_entries(const char *dir);

/* Removes a directory and everything below it (symbolic links not
 * followed); what cannot go is left.  0, or -1 when not all went. */
int rm_tree(const char *dir);

/* stderr into a file in `dir`, so that a test reads libpp's log back; one
 * capture at a time.  0 or -1. */
int capture_start(const char *dir);
/* What was written since capture_start(), capture going on: malloc'd, ""
 * when nothing (or no capture). */
char *captured(void);
/* Puts stderr back; what was written meanwhile (malloc'd, also copied to
 * the real stderr), or NULL when nothing was captured. */
char *capture_end(void);
/* Occurrences of `needle` in what was captured. */
int captured_count(const char *needle);
/* Waits, at most `limit` seconds, until `needle` was captured `want`
 * times; the count. */
int wait_captured(const char *needle, int want, double limit);

#endif
