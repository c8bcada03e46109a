/* SPDX-License-Identifier: MIT */
/* bench_tasks.h -- the task module of pp-bench (libppbench_tasks.so). */
#ifndef PP_BENCH_TASKS_H
#define PP_BENCH_TASKS_H
#include <pp.h>

/* The result is the argument, byte for byte. */
int ppbench_echo(const void *arg, size_t len, pp_buf *out);

/* The argument is 8 bytes: an int64_t count of microseconds (host order).
 * Burns that much CPU time (ppbench_spin_us) and returns the worker's pid
 * (8 bytes, int64_t), so that the spread of jobs over workers can be told. */
int ppbench_spin(const void *arg, size_t len, pp_buf *out);

/* Returns the worker's process id: 8 bytes, int64_t (host order). */
int ppbench_pid(const void *arg, size_t len, pp_buf *out);

#endif
