/* tasks.c -- a task module: built as a shared library, loaded by workers. */
#include "tasks.h"

static int is_prime(long n)
{
    if (n < 2)
        return 0;
    for (long d = 2; d * d <= n; d++)
        if (n % d == 0)
            return 0;
    return 1;
}

int sum_primes(const void *arg, size_t len, pp_buf *out)
{
    long n, sum = 0;
    if (pp_unpack(arg, len, "l", &n) != 0)
        return pp_buf_printf(out, "bad argument: %s", pp_last_error()), 1;
    for (long i = 2; i < n; i++)
        if (is_prime(i))
            sum += i;
    return pp_pack(out, "l", sum);
}
