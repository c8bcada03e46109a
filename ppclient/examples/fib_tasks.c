/* SPDX-License-Identifier: MIT */
/* fib_tasks.c -- the task module of pp-fib: the Fibonacci term, computed
 * iteratively in 64 bits (fib(92) is the largest that fits). */
#include <pp.h>

#include "fib_tasks.h"

int pp_fib(const void *arg, size_t len, pp_buf *out)
{
    long n;
    if (pp_unpack(arg, len, "l", &n) != 0) {
        pp_buf_printf(out, "%s", pp_last_error());
        return 1;
    }
    if (n < 0 || n > PP_FIB_MAX) {
        pp_buf_printf(out, "fib(%ld) is out of range 0..%d", n, PP_FIB_MAX);
        return 1;
    }
    unsigned long long a = 0, b = 1;
    for (long i = 0; i < n; i++) {
        unsigned long long t = a + b;
        a = b;
        b = t;
    }
    return pp_pack(out, "l", (long)a) == 0 ? 0 : 1;
}
