/* SPDX-License-Identifier: MIT */
/* fib_tasks.c -- the task module of pp-fib: the Fibonacci term, computed
 * iteratively in 64 bits (fib(92) is the largest that fits), or in any
 * precision (base 10^9 digits), as Python's integers would. */
#include <pp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fib_tasks.h"

/* The argument n, checked against 0..max; -1 with the reason in out. */
static long fib_arg(const void *arg, size_t len, long max, pp_buf *out)
{
    long n;
    if (pp_unpack(arg, len, "l", &n) != 0) {
        pp_buf_printf(out, "%s", pp_last_error());
        return -1;
    }
    if (n < 0 || n > max) {
        pp_buf_printf(out, "fib(%ld) is out of range 0..%ld", n, max);
        return -1;
    }
    return n;
}

int pp_fib(const void *arg, size_t len, pp_buf *out)
{
    long n = fib_arg(arg, len, PP_FIB_MAX, out);
    if (n < 0)
        return 1;
    unsigned long long a = 0, b = 1;
    for (long i = 0; i < n; i++) {
        unsigned long long t = a + b;
        a = b;
        b = t;
    }
    return pp_pack(out, "l", (long)a) == 0 ? 0 : 1;
}

enum { BASE = 1000000000 };

int pp_fib_big(const void *arg, size_t len, pp_buf *out)
{
    long n = fib_arg(arg, len, PP_FIB_BIG_MAX, out);
    if (n < 0)
        return 1;
    /* fib(n) < 2^(0.7 n): at most 0.7 n / 29.9 base-10^9 digits, plus one. */
    size_t cap = (size_t)n / 42 + 2;
    uint32_t *a = calloc(cap, sizeof *a), *b = calloc(cap, sizeof *b);
    if (!a || !b) {
        free(a);
        free(b);
        pp_buf_printf(out, "fib(%ld): out of memory", n);
        return 1;
    }
    size_t na = 1, nb = 1; /* digits in use, least significant first */
    b[0] = 1;
    /* (a, b) = (fib(i), fib(i + 1)); a step makes it (b, a + b) by adding b
     * into a, then swapping the two. */
    for (long i = 0; i < n; i++) {
        uint32_t carry = 0;
        size_t k = na > nb ? na : nb;
        for (size_t j = 0; j < k; j++) {
            uint32_t d = (j < na ? a[j] : 0) + (j < nb ? b[j] : 0) + carry;
            carry = d >= BASE;
            a[j] = carry ? d - BASE : d;
        }
        if (carry)
            a[k++] = 1;
        na = k;
        uint32_t *t = a;
        a = b;
        b = t;
        size_t tn = na;
        na = nb;
        nb = tn;
    }
    int rc = pp_buf_printf(out, "%u", a[na - 1]) == 0 ? 0 : 1;
    for (size_t j = na - 1; rc == 0 && j-- > 0;)
        rc = pp_buf_printf(out, "%09u", a[j]) == 0 ? 0 : 1;
    free(a);
    free(b);
    return rc;
}
