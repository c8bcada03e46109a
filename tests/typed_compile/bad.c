/* SPDX-License-Identifier: MIT */
/* bad.c -- misuses of pp.h's v-forms, one per -D: each must fail to compile,
 * for the reason check.sh looks for (tests/typed_compile).  Without any -D
 * it compiles: the control that the failures come from the misuse. */
#include <pp.h>

int misuse(pp_buf *b, const void *data, size_t len, pp_job *j);

int misuse(pp_buf *b, const void *data, size_t len, pp_job *j)
{
    long l = 0;
    int rc = pp_packv(b, l) | pp_unpackv(data, len, &l) | pp_job_unpackv(j, &l);
#if defined(BAD_UNPACK_INT_PTR)
    int x;
    rc |= pp_unpackv(data, len, &x);
#elif defined(BAD_UNPACK_FLOAT_PTR)
    float x;
    rc |= pp_unpackv(data, len, &l, &x);
#elif defined(BAD_UNPACK_ULONG_PTR)
    unsigned long x;
    rc |= pp_unpackv(data, len, &x);
#elif defined(BAD_UNPACK_CHAR_PTR_PTR)
    char *x;
    rc |= pp_unpackv(data, len, &x);
#elif defined(BAD_JOB_UNPACK_INT_PTR)
    int x;
    rc |= pp_job_unpackv(j, &x);
#elif defined(BAD_PACK_INT_PTR)
    int x = 0;
    rc |= pp_packv(b, &x);
#elif defined(BAD_PACK_NULL)
    rc |= pp_packv(b, NULL);
#elif defined(BAD_PACK_LONG_DOUBLE)
    long double x = 1;
    rc |= pp_packv(b, x);
#elif defined(BAD_PACK_17)
    rc |= pp_packv(b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17);
#elif defined(BAD_UNPACK_17)
    rc |= pp_unpackv(data, len, &l, &l, &l, &l, &l, &l, &l, &l, &l, &l, &l, &l, &l, &l, &l, &l,
                     &l);
#elif defined(BAD_SUBMIT_40)
    pp_job *k = pp_submitv((pp_server *)NULL, (pp_task)NULL, NULL, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
                           1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2, 3,
                           4, 5, 6, 7, 8, 9, 10);
    pp_job_free(k);
#elif defined(BAD_PACK_70)
    rc |= pp_packv(b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2, 3, 4, 5,
                   6, 7, 8, 9, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
                   1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10);
#elif defined(BAD_LONGS_OF_INTS)
    int ints[2] = {1, 2};
    rc |= pp_packv(b, pp_longs(ints, 2));
#elif defined(BAD_OUT_LONGS_OF_INTS)
    int *ints;
    size_t n;
    rc |= pp_unpackv(data, len, pp_out_longs(&ints, &n));
#endif
    return rc;
}
