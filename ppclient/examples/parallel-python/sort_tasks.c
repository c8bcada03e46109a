/* SPDX-License-Identifier: MIT */
/* sort_tasks.c -- the job of Parallel Python's quicksort example: one part
 * of the array, sorted to the end.  The original's job runs its recursive
 * list quicksort (pivot the first element, elements below it, then the
 * others); this one sorts in place: the pivot the median of three, a
 * three-way partition (the input has many equal elements), recursion into
 * the smaller side only, insertion sort for short runs. */
#include <pp.h>
#include <stdlib.h>

#include "sort_tasks.h"

static void swap(long *a, long *b)
{
    long t = *a;
    *a = *b;
    *b = t;
}

static void insertion_sort(long *a, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        long v = a[i];
        size_t j = i;
        for (; j > 0 && a[j - 1] > v; j--)
            a[j] = a[j - 1];
        a[j] = v;
    }
}

static long median3(long a, long b, long c)
{
    if (a < b)
        return b < c ? b : a < c ? c : a;
    return a < c ? a : b < c ? c : b;
}

static void quicksort(long *a, size_t n)
{
    while (n > 16) {
        long p = median3(a[0], a[n / 2], a[n - 1]);
        /* a[0..lt) < p, a[lt..i) == p, a[gt..n) > p */
        size_t lt = 0, i = 0, gt = n;
        while (i < gt) {
            if (a[i] < p)
                swap(&a[lt++], &a[i++]);
            else if (a[i] > p)
                swap(&a[i], &a[--gt]);
            else
                i++;
        }
        if (lt < n - gt) {
            quicksort(a, lt);
            a += gt;
            n -= gt;
        } else {
            quicksort(a + gt, n - gt);
            n = lt;
        }
    }
    insertion_sort(a, n);
}

int ppex_quicksort(const void *arg, size_t len, pp_buf *out)
{
    long *a;
    size_t n;
    if (pp_unpack(arg, len, "L", &a, &n) != 0)
        return pp_buf_printf(out, "quicksort: %s", pp_last_error()), 1;
    quicksort(a, n);
    int rc = pp_pack(out, "L", (const long *)a, n) == 0 ? 0 : 1;
    free(a);
    return rc;
}
