/* SPDX-License-Identifier: MIT */
/* series_tasks.h -- the task module of pp-callback and pp-dynamic-ncpus. */
#ifndef PP_EX_SERIES_TASKS_H
#define PP_EX_SERIES_TASKS_H
#include <pp.h>

/* The partial sum of 1 - 1/2 + 1/3 - 1/4 + ... over the terms start..end-1
 * (term x is +1/x for odd x, -1/x for even x), added in that order.
 * Argument: "ll" start, end (1 <= start); result: "d" the sum. */
int ppex_part_sum(const void *arg, size_t len, pp_buf *out);
#endif
