/* SPDX-License-Identifier: MIT */
#ifndef FIB_TASKS_H
#define FIB_TASKS_H
#include <pp.h>

/* The largest n whose Fibonacci term fits in a signed 64-bit long. */
#define PP_FIB_MAX 92

/* Argument: pp_pack "l" n; result: "l" fib(n). */
int pp_fib(const void *arg, size_t len, pp_buf *out);
#endif
