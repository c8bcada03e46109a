/* SPDX-License-Identifier: MIT */
/* bench_spin.c -- see bench_spin.h. */
#include "bench_spin.h"

#include <time.h>

static long long ns_of(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

unsigned long ppbench_spin_us(long us)
{
    if (us <= 0)
        return 0;
    long long cpu_end = ns_of(CLOCK_THREAD_CPUTIME_ID) + (long long)us * 1000LL;
    long long wall_end = ns_of(CLOCK_MONOTONIC) + 60LL * 1000000000LL; /* a bound */
    unsigned long x = 0x9e3779b97f4a7c15UL;
    for (;;) {
        /* About a microsecond of integer work between clock reads. */
        for (int i = 0; i < 256; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        __asm__ volatile("" : "+r"(x));
        if (ns_of(CLOCK_THREAD_CPUTIME_ID) >= cpu_end || ns_of(CLOCK_MONOTONIC) >= wall_end)
            break;
    }
    return x;
}
