/* SPDX-License-Identifier: MIT */
/* test_util.h -- small helpers the suites share: time, sleeping, and the
 * processes this one started. */
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

#endif
