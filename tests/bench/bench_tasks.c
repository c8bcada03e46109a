/* SPDX-License-Identifier: MIT */
/* bench_tasks.c -- the tasks the benchmarks run: echo and a CPU spin. */
#include "bench_tasks.h"

#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "bench_spin.h"

int ppbench_echo(const void *arg, size_t len, pp_buf *out)
{
    return pp_buf_append(out, arg, len) == 0 ? 0 : 1;
}

int ppbench_spin(const void *arg, size_t len, pp_buf *out)
{
    int64_t us;
    if (len != sizeof us)
        return pp_buf_printf(out, "ppbench_spin: want 8 bytes, got %zu", len), 1;
    memcpy(&us, arg, sizeof us);
    volatile unsigned long sink = ppbench_spin_us((long)us);
    (void)sink;
    int64_t pid = (int64_t)getpid();
    return pp_buf_append(out, &pid, sizeof pid) == 0 ? 0 : 1;
}

int ppbench_pid(const void *arg, size_t len, pp_buf *out)
{
    (void)arg;
    (void)len;
    int64_t pid = (int64_t)getpid();
    return pp_buf_append(out, &pid, sizeof pid) == 0 ? 0 : 1;
}
