/* SPDX-License-Identifier: MIT */
/* good.c -- right uses of pp.h's type-checked v-forms: this must compile
 * with -std=c11 -Wall -Wextra -Werror -pedantic (tests/typed_compile). */
#include <pp.h>
#include <stdlib.h>

int packs(pp_buf *b);
int unpacks(const void *data, size_t len);
pp_job *submits(pp_server *s, pp_task task);

int packs(pp_buf *b)
{
    _Bool yes = 1;
    char c = 'c';
    signed char sc = -1;
    unsigned char uc = 1;
    short sh = -2;
    unsigned short us = 2;
    int i = -3;
    unsigned int ui = 3;
    long l = -4;
    unsigned long ul = 4;
    long long ll = -5;
    unsigned long long ull = 5;
    size_t sz = 6;
    float f = 1.5f;
    double d = 2.5;
    const char *cs = "const";
    char arr[] = "array";
    char *ps = arr;
    long longs[] = {1, 2};
    double doubles[] = {1.0};
    enum { RED, GREEN } colour = GREEN;
    int rc = pp_packv(b, yes, c, sc, uc, sh, us, i, ui, l, ul, ll, ull, sz, f, d, cs);
    rc |= pp_packv(b, arr, ps, "literal", 'x', 42, 1.0, colour, RED, pp_double(i),
                   pp_bytes(arr, 3), pp_longs(longs, 2), pp_doubles(doubles, 1), PP_NIL,
                   PP_VALUE(7), pp_bytes(NULL, 0), pp_longs(NULL, 0));
    rc |= pp_packv(b, 1);
    pp_value v[] = {PP_VALUE(i), PP_VALUE("s"), pp_longs(longs, 2), PP_NIL};
    rc |= pp_pack_values(b, v, sizeof v / sizeof v[0]);
    return rc;
}

int unpacks(const void *data, size_t len)
{
    long l;
    double d;
    const char *s;
    const void *bytes;
    size_t nbytes, nl, nd;
    long *ls;
    double *ds;
    int rc = pp_unpackv(data, len, &l, &d, &s, pp_out_bytes(&bytes, &nbytes),
                        pp_out_longs(&ls, &nl), pp_out_doubles(&ds, &nd), PP_OUT_NIL,
                        PP_OUT(&l), (long *)NULL, pp_out_longs(NULL, &nl));
    if (rc == 0) {
        free(ls);
        free(ds);
    }
    rc |= pp_unpackv(data, len, &l, &l, &l, &l, &l, &l, &l, &l, &l, &l, &l, &l, &l, &l, &l, &l);
    pp_out o[] = {PP_OUT(&l), PP_OUT(&s)};
    rc |= pp_unpack_values(data, len, o, 2);
    char fmt[8];
    rc |= pp_unpack_format(data, len, fmt, sizeof fmt);
    return rc;
}

pp_job *submits(pp_server *s, pp_task task)
{
    long sum;
    pp_job *j = pp_submitv(s, task, NULL, 1, 2.0, "three", pp_longs(NULL, 0));
    if (j && pp_job_unpackv(j, &sum) != 0)
        return NULL;
    return pp_submitv(s, task, &(pp_submit_opts){.timeout = 1}, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
                      11, 12, 13, 14, 15, 16);
}
