/* SPDX-License-Identifier: MIT */
/* soak_tasks.c -- the fault soak's own task: CPU-bound work with a result
 * the client can check (see soak_tasks.h). */
#include <pp.h>
#include <stdint.h>

#include "soak_tasks.h"

uint64_t soak_mix(uint64_t x, long iters)
{
    for (long i = 0; i < iters; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = x * 0x9E3779B97F4A7C15ull + (uint64_t)i;
    }
    return x;
}

int soak_cpu(const void *arg, size_t len, pp_buf *out)
{
    long seed, iters;
    if (pp_unpack(arg, len, "ll", &seed, &iters) != 0)
        return pp_buf_printf(out, "%s", pp_last_error()), 1;
    if (iters < 0 || iters > 100000000L)
        return pp_buf_printf(out, "soak_cpu: %ld iterations is out of range", iters), 1;
    return pp_pack(out, "l", (long)soak_mix((uint64_t)seed, iters)) == 0 ? 0 : 1;
}
