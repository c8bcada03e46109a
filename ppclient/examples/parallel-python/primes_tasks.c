/* SPDX-License-Identifier: MIT */
/* primes_tasks.c -- Parallel Python's sum_primes example, the job side:
 * the sum of the primes below n, each candidate tested by trial division up
 * to the ceiling of its square root, as isprime() does there. */
#include <pp.h>

#include "primes_tasks.h"

/* n >= 2; max = ceil(sqrt(n)). */
static int isprime(long n, long max)
{
    if (n == 2)
        return 1;
    for (long i = 2; i <= max; i++)
        if (n % i == 0)
            return 0;
    return 1;
}

int ppex_sum_primes(const void *arg, size_t len, pp_buf *out)
{
    long n;
    if (pp_unpack(arg, len, "l", &n) != 0)
        return pp_buf_printf(out, "sum_primes: %s", pp_last_error()), 1;
    if (n < 0 || n > PPEX_PRIMES_MAX)
        return pp_buf_printf(out, "sum_primes: %ld is out of range 0..%ld", n, PPEX_PRIMES_MAX), 1;
    long sum = 0, root = 1; /* root = ceil(sqrt(x)), kept up as x grows */
    for (long x = 2; x < n; x++) {
        while (root * root < x)
            root++;
        if (isprime(x, root))
            sum += x;
    }
    return pp_pack(out, "l", sum) == 0 ? 0 : 1;
}
