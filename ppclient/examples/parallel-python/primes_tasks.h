/* SPDX-License-Identifier: MIT */
/* primes_tasks.h -- the task module of pp-sum-primes. */
#ifndef PP_EX_PRIMES_TASKS_H
#define PP_EX_PRIMES_TASKS_H
#include <pp.h>

/* The largest n ppex_sum_primes takes: the sum stays far below 2^63. */
#define PPEX_PRIMES_MAX 1000000000L

/* The sum of all primes below n.  Argument: "l" n; result: "l" sum. */
int ppex_sum_primes(const void *arg, size_t len, pp_buf *out);
#endif
