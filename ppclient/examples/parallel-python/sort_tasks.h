/* SPDX-License-Identifier: MIT */
/* sort_tasks.h -- the task module of pp-quicksort. */
#ifndef PP_EX_SORT_TASKS_H
#define PP_EX_SORT_TASKS_H
#include <pp.h>

/* Sorts an array of longs into increasing order (quicksort).
 * Argument: "L" the array; result: "L" the array sorted. */
int ppex_quicksort(const void *arg, size_t len, pp_buf *out);
#endif
