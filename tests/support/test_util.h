/* SPDX-License-Identifier: MIT */
/* test_util.h -- small helpers the suites share: time, sleeping, the
 * processes this one started, and libpp's log read back. */
#ifndef PP_TEST_UTIL_H
#define PP_TEST_UTIL_H

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

/* stderr into a file in `dir`, so that a test reads libpp's log back; one
 * capture at a time.  0 or -1. */
int capture_start(const char *dir);
/* What was written since capture_start(), capture going on: malloc'd, ""
 * when nothing (or no capture). */
char *captured(void);
/* Puts stderr back; what was written meanwhile (malloc'd, also copied to
 * the real stderr), or NULL when nothing was captured. */
char *capture_end(void);

#endif
