/* SPDX-License-Identifier: MIT */
/* soak_tasks.h -- the fault soak's task module. */
#ifndef PP_SOAK_TASKS_H
#define PP_SOAK_TASKS_H
#include <pp.h>
#include <stdint.h>

/* The mixing function soak_cpu runs: `iters` rounds of xorshift and a
 * multiply, from x.  The client computes it too, to check results. */
uint64_t soak_mix(uint64_t x, long iters);

/* "ll" seed, iterations -> "l" soak_mix(seed, iterations).  CPU only. */
int soak_cpu(const void *arg, size_t len, pp_buf *out);
#endif
