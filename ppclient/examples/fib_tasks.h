/* SPDX-License-Identifier: MIT */
#ifndef FIB_TASKS_H
#define FIB_TASKS_H
#include <pp.h>

/* The largest n whose Fibonacci term fits in a signed 64-bit long. */
#define PP_FIB_MAX 92

/* The largest n pp_fib_big takes (fib(10^6) has 208,988 digits; about
 * half a minute of one CPU). */
#define PP_FIB_BIG_MAX 1000000

/* Argument: pp_pack "l" n; result: "l" fib(n). */
int pp_fib(const void *arg, size_t len, pp_buf *out);

/* Any precision.  Argument: "l" n; result: fib(n) as decimal text. */
int pp_fib_big(const void *arg, size_t len, pp_buf *out);
#endif
