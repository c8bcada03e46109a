/* SPDX-License-Identifier: MIT */
/* series_tasks.c -- the job of Parallel Python's callback and dynamic_ncpus
 * examples: a slice of the alternating harmonic series, whose limit is
 * ln(2). */
#include <pp.h>

#include "series_tasks.h"

int ppex_part_sum(const void *arg, size_t len, pp_buf *out)
{
    long start, end;
    if (pp_unpack(arg, len, "ll", &start, &end) != 0)
        return pp_buf_printf(out, "part_sum: %s", pp_last_error()), 1;
    if (start < 1)
        return pp_buf_printf(out, "part_sum: start must be >= 1, not %ld", start), 1;
    double sum = 0;
    for (long x = start; x < end; x++) {
        if (x % 2 == 0)
            sum -= 1.0 / (double)x;
        else
            sum += 1.0 / (double)x;
    }
    return pp_pack(out, "d", sum) == 0 ? 0 : 1;
}
