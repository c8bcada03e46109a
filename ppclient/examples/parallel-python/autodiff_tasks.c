/* SPDX-License-Identifier: MIT */
/* autodiff_tasks.c -- the job of Parallel Python's auto_diff example.  The
 * original overloads Python's operators in a class AD(x, dx); here a dual
 * number is a struct and each operator a function, applied in the same
 * order, so the values come out the same. */
#include <math.h>
#include <pp.h>

#include "autodiff_tasks.h"

/* A dual number: a value and its derivative. */
typedef struct dual {
    double x, dx;
} dual;

/* a ** k, k an integer: (x^k, k x^(k-1) dx) */
static dual d_pow(dual a, long k)
{
    return (dual){pow(a.x, (double)k), (double)k * pow(a.x, (double)(k - 1)) * a.dx};
}

static dual d_add(dual a, dual b)
{
    return (dual){a.x + b.x, a.dx + b.dx};
}

/* a - c, c a constant */
static dual d_sub(dual a, double c)
{
    return (dual){a.x - c, a.dx};
}

/* a * c, c a constant */
static dual d_mul(dual a, double c)
{
    return (dual){a.x * c, c * a.dx};
}

/* a / c, c a constant: a * (1 / c) */
static dual d_div(dual a, double c)
{
    return d_mul(a, 1 / c);
}

/* The partial sum of the series of ln(1 + x), terms 1 .. n-1. */
static dual partial_sum(dual x, long n)
{
    dual sum = {0, 0};
    for (long i = 1; i < n; i++) {
        double sign = i % 2 ? 1.0 : -1.0;
        sum = d_add(sum, d_div(d_mul(d_pow(x, i), sign), (double)i));
    }
    return sum;
}

/* The truncated natural logarithm: ln(x) = ln(1 + (x - 1)). */
static dual t_log(dual x, long n)
{
    return partial_sum(d_sub(x, 1), n);
}

int ppex_t_log(const void *arg, size_t len, pp_buf *out)
{
    dual x;
    long n;
    if (pp_unpack(arg, len, "ddl", &x.x, &x.dx, &n) != 0)
        return pp_buf_printf(out, "t_log: %s", pp_last_error()), 1;
    if (n < 1 || n > PPEX_TERMS_MAX)
        return pp_buf_printf(out, "t_log: %ld terms is out of range 1..%ld", n, PPEX_TERMS_MAX), 1;
    dual r = t_log(x, n);
    return pp_pack(out, "dd", r.x, r.dx) == 0 ? 0 : 1;
}
